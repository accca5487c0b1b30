/* Fuzz target: outgoing connections and what hangs off them.
 *   create_connection: host, port and every asyncio_connection_options
 *     field (TLS context or use_default_ssl, server_hostname, family,
 *     proto, flags, a socket handed over, local_host and local_port, the
 *     happy eyeballs delay, interleave, both TLS timeouts), reaching the
 *     argument checks, resolution, local binds, the connect attempts and,
 *     with TLS, the SSL set-up of server_hostname (IP literal or name);
 *   create_unix_connection: the path (length limit, missing files);
 *   on a connection made: get_extra_info with a fuzzed name, a write of
 *     fuzzed bytes, and start_tls with a fuzzed server_hostname.
 * The peers are a TCP and a UNIX listener of the harness on loopback,
 * whose pending connections are accepted and closed before each input. */
#define _GNU_SOURCE /* accept4 */
#include "fuzz.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Made once per process. */
static int tcp_listener = -1, unix_listener = -1;
static int tcp_port;
static char unix_path[108];
static SSL_CTX *client_ctx, *server_ctx;

static void drain(int fd)
{
    int c;
    while ((c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
        close(c);
}

static void setup(void)
{
    if (tcp_listener >= 0) {
        drain(tcp_listener);
        drain(unix_listener);
        return;
    }
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    tcp_listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (tcp_listener < 0 || bind(tcp_listener, (struct sockaddr *)&sin, len) < 0 ||
        listen(tcp_listener, 512) < 0 ||
        getsockname(tcp_listener, (struct sockaddr *)&sin, &len) < 0)
        abort();
    tcp_port = ntohs(sin.sin_port);

    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(unix_path, sizeof(unix_path), "%s/listener", fz_tmpdir());
    strcpy(sun.sun_path, unix_path);
    unix_listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (unix_listener < 0 || bind(unix_listener, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
        listen(unix_listener, 512) < 0)
        abort();

    client_ctx = SSL_CTX_new(TLS_client_method());
    server_ctx = SSL_CTX_new(TLS_server_method());
    if (client_ctx == NULL || server_ctx == NULL)
        abort();
}

/* A socket for opts.sock: each is taken over by the call, whatever it
 * returns, so only sockets made here (or an fd number never open). */
static int make_sock(fz_input *in)
{
    int fd;
    switch (fz_u8(in) % 8) {
    case 0: {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)tcp_port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
            close(fd);
            fd = -1;
        }
        return fd;
    }
    case 1:
        return socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* not connected */
    case 2:
        return socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    case 3:
        return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    case 4:
        return 900000; /* never open: EBADF */
    default:
        return -1;
    }
}

static const char *pick_host(fz_input *in)
{
    static const char *const hosts[] = {"127.0.0.1", "localhost", "::1", "127.0.0.1 ",
                                        "0x7f.1",    "[::1]",     "::ffff:127.0.0.1"};
    uint8_t sel = fz_u8(in);
    if (sel < 64)
        return hosts[sel % (sizeof(hosts) / sizeof(hosts[0]))];
    return fz_opt_str(in, 300);
}

static void fill_options(fz_input *in, asyncio_connection_options *o, int unix_socket)
{
    static const int families[] = {AF_UNSPEC, AF_INET, AF_INET6, AF_UNIX, -1};
    uint8_t bits = fz_u8(in);
    o->ssl = bits & 1 ? client_ctx : NULL;
    o->use_default_ssl = (bits & 2) != 0;
    if (bits & 4)
        o->server_hostname = pick_host(in);
    if (bits & 8) {
        o->family = families[fz_u8(in) % 5];
        o->proto = fz_u8(in) % 8 == 0 ? fz_int(in) : 0;
        o->flags = (int)(fz_u16(in) & 0x47f);
    }
    if (bits & 16)
        o->sock = make_sock(in);
    if (bits & 32) {
        o->local_host = unix_socket && !(fz_u8(in) & 1) ? "x" : pick_host(in);
        o->local_port = fz_u8(in) & 1 ? fz_int(in) : 0;
    }
    if (bits & 64) {
        o->happy_eyeballs_delay = fz_double(in);
        o->interleave = fz_int(in);
    }
    if (bits & 128) {
        o->ssl_handshake_timeout = fz_double(in);
        o->ssl_shutdown_timeout = fz_double(in);
    }
}

static void use_transport(asyncio_loop *loop, fz_input *in, asyncio_transport *t)
{
    static const char *const names[] = {"peername", "sockname", "socket", "bufferevent",
                                        "pipe",     "ssl_object", "peercert"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        void *v = asyncio_transport_get_extra_info(t, names[i]);
        if (v != NULL && strcmp(names[i], "socket") == 0 && *(int *)v < 0)
            abort();
    }
    (void)asyncio_transport_get_extra_info(t, fz_str(in, 64));

    size_t n = fz_u8(in);
    char *data = fz_alloc(in, n);
    fz_bytes(in, data, n);
    fz_check(asyncio_transport_write(t, data, n), "write");

    if (fz_u8(in) & 1) {
        int server_side = fz_u8(in) & 1;
        const char *name = fz_u8(in) & 1 ? pick_host(in) : NULL;
        asyncio_future *tf = NULL;
        int rc = asyncio_loop_start_tls(loop, t, server_side ? server_ctx : client_ctx,
                                        server_side, name, &tf);
        fz_check(rc, "start_tls");
        if (rc == 0) {
            fz_loop_run(loop, tf, 4);
            asyncio_future_unref(tf);
        }
    }
    fz_check(fz_u8(in) & 1 ? asyncio_transport_abort(t) : asyncio_transport_close(t), "close");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    fz_input in;
    fz_input_init(&in, data, size);
    asyncio_loop *loop = fz_loop_new();

    uint8_t mode = fz_u8(&in);
    int unix_socket = mode & 1;
    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    asyncio_connection_options *op = mode & 2 ? NULL : &o;
    asyncio_future *f = NULL;
    asyncio_future **out = mode & 4 ? NULL : &f;
    int rc;
    if (!unix_socket) {
        const char *host = pick_host(&in);
        int port = fz_u8(&in) & 1 ? tcp_port : fz_int(&in);
        fill_options(&in, &o, 0);
        rc = asyncio_loop_create_connection(loop, fz_protocol_factory, NULL, host, port, op, out);
    } else {
        const char *path;
        switch (fz_u8(&in) % 4) {
        case 0:
            path = unix_path;
            break;
        case 1:
            path = fz_path_in_tmpdir(&in, fz_str(&in, 300));
            break;
        case 2:
            path = NULL;
            break;
        default:
            path = fz_str(&in, 300); /* anywhere: the guard refuses what is outside */
            break;
        }
        fill_options(&in, &o, 1);
        rc = asyncio_loop_create_unix_connection(loop, fz_protocol_factory, NULL, path, op, out);
    }
    fz_check(rc, "create_connection");
    if (rc == 0 && f != NULL) {
        fz_loop_run(loop, f, 12);
        asyncio_transport *t = fz_result(f);
        if (t != NULL)
            use_transport(loop, &in, t);
        else if (!asyncio_future_done(f) && (fz_u8(&in) & 1))
            fz_check_count(asyncio_future_cancel(f), 1, "cancel");
        asyncio_future_unref(f);
        fz_loop_run(loop, NULL, 2);
    } else if (rc == 0) {
        fz_loop_run(loop, NULL, 8);
    }
    fz_loop_free(loop);
    fz_input_free(&in);
    return 0;
}
