/* Fuzz target: datagram endpoints and raw socket addresses.
 *   create_datagram_endpoint: local and remote host and port and every
 *     asyncio_datagram_options field (family, proto, flags, reuse_address,
 *     allow_broadcast), reaching the argument checks, resolution of both
 *     ends, bind and connect;
 *   on an endpoint made: sendto with raw sockaddr bytes and length (the
 *     family and length checks, the connected-address comparison), with
 *     no address, and get_extra_info with a fuzzed name;
 *   sock_connect: raw sockaddr bytes and length on a fresh non-blocking
 *     socket of a chosen family and type.
 * A remote port other than an edge value becomes the harness's own UDP
 * socket's, which never answers. */
#include "fuzz.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int sink_fd = -1, sink_port;

static void setup(void)
{
    if (sink_fd >= 0) {
        char buf[512];
        while (recv(sink_fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
            ;
        return;
    }
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    sink_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sink_fd < 0 || bind(sink_fd, (struct sockaddr *)&sin, len) < 0 ||
        getsockname(sink_fd, (struct sockaddr *)&sin, &len) < 0)
        abort();
    sink_port = ntohs(sin.sin_port);
}

static const char *pick_host(fz_input *in)
{
    static const char *const hosts[] = {"127.0.0.1", "localhost", "::1", "0.0.0.0",
                                        "255.255.255.255"};
    uint8_t sel = fz_u8(in);
    if (sel < 96)
        return hosts[sel % (sizeof(hosts) / sizeof(hosts[0]))];
    return fz_opt_str(in, 300);
}

/* Edges stay (they test the range check); real ports become one of ours. */
static int pick_port(fz_input *in, int ours)
{
    int port = fz_int(in);
    return port >= 1 && port <= 65535 ? ours : port;
}

static void fuzz_sendto(fz_input *in, asyncio_transport *t)
{
    struct sockaddr_storage ss;
    fz_bytes(in, &ss, sizeof(ss));
    static const sa_family_t families[] = {AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC};
    uint8_t sel = fz_u8(in);
    if (sel < 192)
        ss.ss_family = families[sel % 4];
    if (sel & 1) { /* aimed at the sink, so that it is often deliverable */
        if (ss.ss_family == AF_INET) {
            ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)sink_port);
            ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        } else if (ss.ss_family == AF_INET6) {
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)sink_port);
        }
    }
    socklen_t len = (socklen_t)(fz_u8(in) % (sizeof(ss) + 8));
    const struct sockaddr *sa = fz_u8(in) & 1 ? NULL : (const struct sockaddr *)&ss;
    size_t n = fz_u16(in) % 2048;
    if (fz_u8(in) == 0xff)
        n = 70000; /* larger than any datagram */
    char *data = fz_alloc(in, n);
    fz_bytes(in, data, n < 256 ? n : 256);
    fz_check(asyncio_transport_sendto(t, data, n, sa, len), "sendto");
}

static void fuzz_endpoint(asyncio_loop *loop, fz_input *in)
{
    static const int families[] = {AF_UNSPEC, AF_INET, AF_INET6, AF_UNIX, -1};
    uint8_t bits = fz_u8(in);
    const char *local = bits & 1 ? pick_host(in) : NULL;
    int local_port = bits & 2 ? pick_port(in, 0) : 0;
    const char *remote = bits & 4 ? pick_host(in) : NULL;
    int remote_port = bits & 8 ? pick_port(in, sink_port) : 0;
    asyncio_datagram_options o = ASYNCIO_DATAGRAM_OPTIONS_INIT;
    if (bits & 16) {
        o.family = families[fz_u8(in) % 5];
        o.proto = fz_u8(in) % 8 == 0 ? fz_int(in) : 0;
        o.flags = (int)(fz_u16(in) & 0x47f);
        o.reuse_address = fz_u8(in) & 1;
        o.allow_broadcast = fz_u8(in) & 1;
    }
    asyncio_future *f = NULL;
    int rc = asyncio_loop_create_datagram_endpoint(loop, fz_protocol_factory, NULL, local,
                                                   local_port, remote, remote_port,
                                                   bits & 32 ? NULL : &o, bits & 64 ? NULL : &f);
    fz_check(rc, "create_datagram_endpoint");
    if (rc < 0)
        return;
    if (f == NULL) {
        fz_loop_run(loop, NULL, 6);
        return;
    }
    fz_loop_run(loop, f, 8);
    asyncio_transport *t = fz_result(f);
    if (t != NULL) {
        (void)asyncio_transport_get_extra_info(t, "peername");
        (void)asyncio_transport_get_extra_info(t, "sockname");
        (void)asyncio_transport_get_extra_info(t, fz_str(in, 64));
        for (int i = fz_u8(in) % 4; i > 0; i--)
            fuzz_sendto(in, t);
        fz_loop_run(loop, NULL, 2);
        fz_check(fz_u8(in) & 1 ? asyncio_transport_abort(t) : asyncio_transport_close(t),
                 "close");
        fz_loop_run(loop, NULL, 2);
    }
    asyncio_future_unref(f);
}

/* Returns the socket, for the caller to close once the loop is closed. */
static int fuzz_sock_connect(asyncio_loop *loop, fz_input *in)
{
    static const int families[] = {AF_INET, AF_INET6, AF_UNIX};
    static const int types[] = {SOCK_STREAM, SOCK_DGRAM};
    uint8_t sel = fz_u8(in);
    int fd = socket(families[sel % 3], types[(sel / 3) % 2] | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_storage ss;
    fz_bytes(in, &ss, sizeof(ss));
    sel = fz_u8(in);
    if (sel < 192)
        ss.ss_family = (sa_family_t)families[sel % 3];
    socklen_t len = (socklen_t)(fz_u16(in) % (sizeof(ss) + 64));
    asyncio_future *f = NULL;
    int rc = asyncio_loop_sock_connect(loop, fd, fz_u8(in) == 0xff ? NULL : (struct sockaddr *)&ss,
                                       len, &f);
    fz_check(rc, "sock_connect");
    if (rc == 0) {
        fz_loop_run(loop, f, 4);
        asyncio_future_unref(f);
    }
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    fz_input in;
    fz_input_init(&in, data, size);
    asyncio_loop *loop = fz_loop_new();
    int fd = -1;
    if (fz_u8(&in) & 1)
        fd = fuzz_sock_connect(loop, &in);
    else
        fuzz_endpoint(loop, &in);
    fz_loop_free(loop);
    if (fd >= 0)
        close(fd); /* ours: closed once the loop no longer watches it */
    fz_input_free(&in);
    return 0;
}
