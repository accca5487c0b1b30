/* Fuzz target: servers.
 *   create_server: host, port and every asyncio_server_options field
 *     (family, flags, a socket handed over, backlog, a TLS context,
 *     reuse_address, reuse_port, both TLS timeouts), reaching the argument
 *     checks, resolution with AI_PASSIVE, socket options, bind and listen;
 *   create_unix_server: the path (inside the harness's directory: the call
 *     replaces a socket file it finds there), its length limit;
 *   on a server made: get_sockets with a fuzzed capacity, a client that
 *     connects (accept, the factory, with TLS the handshake set-up),
 *     close and wait_closed.
 * Ports 1-65535 other than the harness's own busy one become 0, so that a
 * fuzzed port never shares another program's port on this machine. */
#include "fuzz.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int busy_fd = -1, busy_port;
static SSL_CTX *server_ctx;

static void setup(void)
{
    if (busy_fd >= 0)
        return;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    busy_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (busy_fd < 0 || bind(busy_fd, (struct sockaddr *)&sin, len) < 0 || listen(busy_fd, 1) < 0 ||
        getsockname(busy_fd, (struct sockaddr *)&sin, &len) < 0)
        abort();
    busy_port = ntohs(sin.sin_port);
    if ((server_ctx = SSL_CTX_new(TLS_server_method())) == NULL)
        abort();
}

static int pick_port(fz_input *in)
{
    int port = fz_int(in);
    if (port == 1)
        return busy_port; /* -EADDRINUSE */
    return port >= 1 && port <= 65535 ? 0 : port;
}

static const char *pick_host(fz_input *in)
{
    static const char *const hosts[] = {"127.0.0.1", "localhost", "::1", "127.0.0.2", "0.0.0.0"};
    uint8_t sel = fz_u8(in);
    if (sel < 64)
        return hosts[sel % (sizeof(hosts) / sizeof(hosts[0]))];
    return fz_opt_str(in, 300);
}

/* A socket for opts.sock (taken over by the call whatever it returns). */
static int make_sock(fz_input *in)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd;
    switch (fz_u8(in) % 6) {
    case 0:
    case 1:
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
            abort();
        if (fd >= 0 && (fz_u8(in) & 1) && listen(fd, 8) < 0)
            abort();
        return fd;
    case 2:
        return socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    case 3: {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/handed-%u", fz_tmpdir(), fz_u8(in));
        unlink(sun.sun_path);
        if (fd >= 0 && bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
            abort();
        return fd;
    }
    case 4:
        return 900000; /* never open: EBADF */
    default:
        return -1;
    }
}

static void fill_options(fz_input *in, asyncio_server_options *o)
{
    static const int families[] = {AF_UNSPEC, AF_INET, AF_INET6, AF_UNIX, -1};
    uint8_t bits = fz_u8(in);
    if (bits & 1) {
        o->family = families[fz_u8(in) % 5];
        o->flags = (int)(fz_u16(in) & 0x47f);
    }
    if (bits & 2)
        o->sock = make_sock(in);
    if (bits & 4)
        o->backlog = fz_int(in);
    if (bits & 8)
        o->ssl = server_ctx;
    if (bits & 16) {
        o->reuse_address = fz_u8(in) & 1;
        o->reuse_port = fz_u8(in) & 1;
    }
    if (bits & 32) {
        o->ssl_handshake_timeout = fz_double(in);
        o->ssl_shutdown_timeout = fz_double(in);
    }
}

/* Connect a plain client to the server's first socket, if any. */
static int connect_client(asyncio_server *s)
{
    int fds[1];
    if (asyncio_server_get_sockets(s, fds, 1) < 1)
        return -1;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fds[0], (struct sockaddr *)&ss, &len) < 0)
        return -1;
    int c = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c >= 0)
        (void)connect(c, (struct sockaddr *)&ss, len);
    return c;
}

static void use_server(asyncio_loop *loop, fz_input *in, asyncio_server *s)
{
    size_t cap = fz_u8(in) % 5;
    int fds[4];
    int n = asyncio_server_get_sockets(s, cap > 0 ? fds : NULL, cap);
    if (n > 0 && cap > 0)
        for (int i = 0; i < n && (size_t)i < cap; i++)
            if (fds[i] < 0)
                abort();
    fz_check_count(n, 16, "get_sockets");

    int client = -1;
    if (fz_u8(in) & 1) {
        client = connect_client(s);
        fz_loop_run(loop, NULL, 4);
    }
    fz_check(asyncio_server_close(s), "server_close");
    asyncio_future *w = NULL;
    int rc = asyncio_server_wait_closed(s, &w);
    fz_check(rc, "wait_closed");
    if (client >= 0)
        close(client);
    if (rc == 0) {
        fz_loop_run(loop, w, 4);
        asyncio_future_unref(w);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    fz_input in;
    fz_input_init(&in, data, size);
    asyncio_loop *loop = fz_loop_new();

    uint8_t mode = fz_u8(&in);
    asyncio_server_options o = ASYNCIO_SERVER_OPTIONS_INIT;
    asyncio_server_options *op = mode & 2 ? NULL : &o;
    asyncio_future *f = NULL;
    asyncio_future **out = mode & 4 ? NULL : &f;
    int rc;
    if (!(mode & 1)) {
        const char *host = pick_host(&in);
        int port = pick_port(&in);
        fill_options(&in, &o);
        rc = asyncio_loop_create_server(loop, fz_protocol_factory, NULL, host, port, op, out);
    } else {
        const char *path;
        switch (fz_u8(&in) % 3) {
        case 0:
            path = fz_path_in_tmpdir(&in, fz_str(&in, 300));
            break;
        case 1:
            path = NULL;
            break;
        default:
            path = "";
            break;
        }
        fill_options(&in, &o);
        rc = asyncio_loop_create_unix_server(loop, fz_protocol_factory, NULL, path, op, out);
    }
    fz_check(rc, "create_server");
    if (rc == 0 && f != NULL) {
        fz_loop_run(loop, f, 8);
        asyncio_server *s = fz_result(f);
        if (s != NULL)
            use_server(loop, &in, s);
        asyncio_future_unref(f);
    } else if (rc == 0) {
        fz_loop_run(loop, NULL, 4);
    }
    fz_loop_free(loop);
    fz_input_free(&in);
    return 0;
}
