/* Servers: create_server and create_unix_server over real loopback sockets,
 * listening options, close / wait_closed, refused connections, and accept
 * running out of fds (no busy loop, a retry after the delay). */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- An echo server protocol and a client protocol --------------------------- */

struct srv_ctx {
    int made, lost, refuse;
    int last_peer_port;
    int nodelay;             /* TCP_NODELAY seen on the last accepted socket */
    asyncio_transport *last; /* borrowed, while connected */
};

struct echo {
    asyncio_protocol base;
    asyncio_transport *t;
    struct srv_ctx *ctx;
};

static void echo_made(asyncio_protocol *p, asyncio_transport *t)
{
    struct echo *e = (struct echo *)p;
    e->t = t;
    e->ctx->made++;
    e->ctx->last = t;
    const struct sockaddr *peer = asyncio_transport_get_extra_info(t, "peername");
    if (peer != NULL && peer->sa_family == AF_INET)
        e->ctx->last_peer_port = ntohs(((const struct sockaddr_in *)peer)->sin_port);
    int *fd = asyncio_transport_get_extra_info(t, "socket");
    if (fd != NULL) {
        int on = 0;
        socklen_t len = sizeof(on);
        if (getsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0)
            e->ctx->nodelay = on;
    }
}

static void echo_data(asyncio_protocol *p, const void *data, size_t len)
{
    struct echo *e = (struct echo *)p;
    ck_assert_int_eq(asyncio_transport_write(e->t, data, len), 0);
}

static void echo_lost(asyncio_protocol *p, int err)
{
    struct echo *e = (struct echo *)p;
    e->ctx->lost++;
    if (e->ctx->last == e->t)
        e->ctx->last = NULL;
    free(e);
}

static const asyncio_protocol_ops echo_ops = {
    .connection_made = echo_made, .data_received = echo_data, .connection_lost = echo_lost};

static asyncio_protocol *echo_factory(void *arg)
{
    struct srv_ctx *ctx = arg;
    if (ctx->refuse)
        return NULL;
    struct echo *e = calloc(1, sizeof(*e));
    ck_assert_ptr_nonnull(e);
    e->base.ops = &echo_ops;
    e->ctx = ctx;
    return &e->base;
}

/* A client that sends `msg`, collects the echo, and stops the loop when it
 * has `expect` bytes or the connection is lost. */
struct client {
    asyncio_protocol base;
    asyncio_loop *loop;
    asyncio_transport *t;
    char buf[4096];
    size_t len, expect;
    int made, lost, lost_err, eof;
};

static void client_made(asyncio_protocol *p, asyncio_transport *t)
{
    struct client *c = (struct client *)p;
    c->t = t;
    asyncio_transport_ref(t);
    c->made = 1;
}

static void client_data(asyncio_protocol *p, const void *data, size_t len)
{
    struct client *c = (struct client *)p;
    ck_assert_uint_le(c->len + len, sizeof(c->buf));
    memcpy(c->buf + c->len, data, len);
    c->len += len;
    if (c->expect > 0 && c->len >= c->expect)
        asyncio_loop_stop(c->loop);
}

static int client_eof(asyncio_protocol *p)
{
    ((struct client *)p)->eof = 1;
    return 0;
}

static void client_lost(asyncio_protocol *p, int err)
{
    struct client *c = (struct client *)p;
    c->lost = 1;
    c->lost_err = err;
    asyncio_transport_unref(c->t);
    c->t = NULL;
    asyncio_loop_stop(c->loop);
}

static const asyncio_protocol_ops client_ops = {.connection_made = client_made,
                                                .data_received = client_data,
                                                .eof_received = client_eof,
                                                .connection_lost = client_lost};

static asyncio_protocol *client_factory(void *arg) { return arg; }

static void client_init(struct client *c, asyncio_loop *loop)
{
    memset(c, 0, sizeof(*c));
    c->base.ops = &client_ops;
    c->loop = loop;
}

/* ---- Helpers ---------------------------------------------------------------- */

/* Run `f` to completion and return its result (borrowed from f) or NULL;
 * *err gets the error. */
static void *await_result(asyncio_loop *loop, asyncio_future *f, int *err)
{
    void *result = NULL;
    *err = asyncio_loop_run_until_complete(loop, f);
    if (*err == 0)
        ck_assert_int_eq(asyncio_future_result(f, &result), 0);
    return result;
}

static asyncio_server *start_server(asyncio_loop *loop, struct srv_ctx *ctx, const char *host,
                                    int port, const asyncio_server_options *opts)
{
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_server(loop, echo_factory, ctx, host, port, opts, &f), 0);
    ck_assert_int_eq(asyncio_future_done(f), 0); /* never completed inside the call */
    int err;
    asyncio_server *s = await_result(loop, f, &err);
    ck_assert_msg(err == 0, "create_server: %s", asyncio_strerror(err));
    asyncio_server_ref(s);
    asyncio_future_unref(f);
    return s;
}

static int sock_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int server_port(asyncio_server *s)
{
    int fd = -1;
    ck_assert_int_ge(asyncio_server_get_sockets(s, &fd, 1), 1);
    return sock_port(fd);
}

/* Connect a client protocol; returns the error of the connection future. */
static int connect_client(asyncio_loop *loop, struct client *c, const char *host, int port)
{
    asyncio_future *f = NULL;
    int err = asyncio_loop_create_connection(loop, client_factory, c, host, port, NULL, &f);
    if (err < 0)
        return err;
    err = asyncio_loop_run_until_complete(loop, f);
    asyncio_future_unref(f);
    return err;
}

/* Send `msg` and run until its echo is back. */
static void echo_roundtrip(asyncio_loop *loop, struct client *c, const char *msg)
{
    size_t before = c->len;
    c->expect = before + strlen(msg);
    ck_assert_int_eq(asyncio_transport_write(c->t, msg, strlen(msg)), 0);
    tu_run(loop);
    ck_assert_uint_eq(c->len, c->expect);
    ck_assert_int_eq(memcmp(c->buf + before, msg, strlen(msg)), 0);
}

static void run_for(asyncio_loop *loop, double seconds)
{
    ck_assert_int_eq(asyncio_loop_call_later(loop, seconds, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
}

/* Close the client and run until its connection_lost. */
static void client_close(asyncio_loop *loop, struct client *c)
{
    if (c->t == NULL)
        return;
    ck_assert_int_eq(asyncio_transport_close(c->t), 0);
    while (!c->lost)
        tu_run(loop);
}

static int ipv6_loopback_works(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int ok = bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
    close(fd);
    return ok;
}

/* A blocking connect to 127.0.0.1:port: 0 or -errno. */
static int plain_connect(int port, int *out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 ? 0 : -errno;
    if (rc == 0 && out != NULL)
        *out = fd;
    else
        close(fd);
    return rc;
}

/* Make the loop's resolver (and whatever sockets evdns keeps) exist, so
 * that counting fds afterwards sees only ours.  A numeric host: nothing is
 * sent anywhere. */
static void warm_resolver(asyncio_loop *loop)
{
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_getaddrinfo(loop, "127.0.0.1", "1", NULL, &f), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
    asyncio_future_unref(f);
}

/* ---- Tests -------------------------------------------------------------------- */

START_TEST(server_echo_and_port_zero_get_sockets)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    asyncio_server *s = start_server(loop, &ctx, "127.0.0.1", 0, NULL);
    int fds[4] = {-1, -1, -1, -1};
    ck_assert_int_eq(asyncio_server_get_sockets(s, fds, 4), 1);
    ck_assert_int_eq(asyncio_server_get_sockets(s, NULL, 0), 1);
    int port = sock_port(fds[0]);
    ck_assert_int_gt(port, 0);
    ck_assert_int_ne(fcntl(fds[0], F_GETFD) & FD_CLOEXEC, 0);
    ck_assert_int_ne(fcntl(fds[0], F_GETFL) & O_NONBLOCK, 0);
    int on = 0;
    socklen_t len = sizeof(on);
    ck_assert_int_eq(getsockopt(fds[0], SOL_SOCKET, SO_REUSEADDR, &on, &len), 0);
    ck_assert_int_eq(on, 1); /* reuse_address defaults to 1 */

    struct client c;
    client_init(&c, loop);
    ck_assert_int_eq(connect_client(loop, &c, "127.0.0.1", port), 0);
    echo_roundtrip(loop, &c, "hello, server");
    echo_roundtrip(loop, &c, "and again");
    ck_assert_int_eq(ctx.made, 1);
    ck_assert_int_eq(ctx.nodelay, 1); /* TCP_NODELAY on the accepted socket */
    client_close(loop, &c);
    ck_assert_int_eq(asyncio_server_close(s), 0);
    ck_assert_int_eq(asyncio_server_close(s), 0); /* idempotent */
    ck_assert_int_eq(asyncio_server_get_sockets(s, fds, 4), 0);
    asyncio_server_unref(s);
    tu_free_loop(loop);
}
END_TEST

START_TEST(server_host_null_listens_on_ipv4_and_ipv6_with_v6only)
{
    if (!ipv6_loopback_works())
        return; /* no IPv6 here: the IPv4 half is covered elsewhere */
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    asyncio_server *s = start_server(loop, &ctx, NULL, 0, NULL);
    int fds[4];
    int n = asyncio_server_get_sockets(s, fds, 4);
    ck_assert_int_eq(n, 2);
    int families = 0;
    for (int i = 0; i < n; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        ck_assert_int_eq(getsockname(fds[i], (struct sockaddr *)&ss, &len), 0);
        if (ss.ss_family == AF_INET6) {
            families |= 2;
            int on = 0;
            len = sizeof(on);
            ck_assert_int_eq(getsockopt(fds[i], IPPROTO_IPV6, IPV6_V6ONLY, &on, &len), 0);
            ck_assert_int_eq(on, 1);
            ck_assert(IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr));
        } else {
            ck_assert_int_eq(ss.ss_family, AF_INET);
            ck_assert_uint_eq(((struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(INADDR_ANY));
            families |= 1;
        }
    }
    ck_assert_int_eq(families, 3);

    /* "" means the same as NULL. */
    asyncio_server *s2 = start_server(loop, &ctx, "", 0, NULL);
    ck_assert_int_eq(asyncio_server_get_sockets(s2, fds, 4), 2);
    asyncio_server_close(s2);
    asyncio_server_unref(s2);
    asyncio_server_close(s);
    asyncio_server_unref(s);
    tu_free_loop(loop);
}
END_TEST

START_TEST(server_reuse_port_lets_two_servers_share_a_port)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    asyncio_server_options o = ASYNCIO_SERVER_OPTIONS_INIT;
    o.reuse_port = 1;
    asyncio_server *a = start_server(loop, &ctx, "127.0.0.1", 0, &o);
    int port = server_port(a);
    int fd;
    asyncio_server_get_sockets(a, &fd, 1);
    int on = 0;
    socklen_t len = sizeof(on);
    ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, &len), 0);
    ck_assert_int_eq(on, 1);
    asyncio_server *b = start_server(loop, &ctx, "127.0.0.1", port, &o);
    ck_assert_int_eq(server_port(b), port);

    /* Without reuse_port the same port is taken: the future says so. */
    asyncio_server_options plain = ASYNCIO_SERVER_OPTIONS_INIT;
    asyncio_future *f = NULL;
    ck_assert_int_eq(
        asyncio_loop_create_server(loop, echo_factory, &ctx, "127.0.0.1", port, &plain, &f), 0);
    int err;
    ck_assert_ptr_null(await_result(loop, f, &err));
    ck_assert_int_eq(err, -EADDRINUSE);
    asyncio_future_unref(f);

    asyncio_server_close(a);
    asyncio_server_close(b);
    asyncio_server_unref(a);
    asyncio_server_unref(b);
    tu_free_loop(loop);
}
END_TEST

START_TEST(server_backlog_zero_still_accepts)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    asyncio_server_options o = ASYNCIO_SERVER_OPTIONS_INIT;
    o.backlog = 0;
    asyncio_server *s = start_server(loop, &ctx, "127.0.0.1", 0, &o);
    struct client c;
    client_init(&c, loop);
    ck_assert_int_eq(connect_client(loop, &c, "127.0.0.1", server_port(s)), 0);
    echo_roundtrip(loop, &c, "backlog 0");
    client_close(loop, &c);
    asyncio_server_close(s);
    asyncio_server_unref(s);

    o.backlog = -1;
    ck_assert_int_eq(asyncio_loop_create_server(loop, echo_factory, &ctx, "127.0.0.1", 0, &o, NULL),
                     -EINVAL);
    tu_free_loop(loop);
}
END_TEST

START_TEST(server_close_stops_listening_but_keeps_connections)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    asyncio_server *s = start_server(loop, &ctx, "127.0.0.1", 0, NULL);
    int port = server_port(s);
    struct client c;
    client_init(&c, loop);
    ck_assert_int_eq(connect_client(loop, &c, "127.0.0.1", port), 0);
    echo_roundtrip(loop, &c, "before close");

    ck_assert_int_eq(asyncio_server_close(s), 0);
    ck_assert_int_eq(plain_connect(port, NULL), -ECONNREFUSED);
    struct client c2;
    client_init(&c2, loop);
    ck_assert_int_eq(connect_client(loop, &c2, "127.0.0.1", port), -ECONNREFUSED);
    ck_assert_int_eq(c2.made, 0);

    echo_roundtrip(loop, &c, "after close"); /* the old connection still works */
    client_close(loop, &c);
    asyncio_server_unref(s);
    tu_free_loop(loop);
}
END_TEST

static void close_transport_cb(void *arg) { asyncio_transport_close(arg); }

START_TEST(server_wait_closed_waits_for_the_last_connection)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    asyncio_server *s = start_server(loop, &ctx, "127.0.0.1", 0, NULL);
    struct client c;
    client_init(&c, loop);
    ck_assert_int_eq(connect_client(loop, &c, "127.0.0.1", server_port(s)), 0);
    echo_roundtrip(loop, &c, "x"); /* the server side exists now */
    ck_assert_int_eq(ctx.made, 1);

    asyncio_future *w = NULL;
    ck_assert_int_eq(asyncio_server_wait_closed(s, &w), 0); /* before close: waits too */
    asyncio_server_close(s);
    run_for(loop, 0.05);
    ck_assert_int_eq(asyncio_future_done(w), 0); /* a connection is still open */

    /* The server closes its side: wait_closed is done after connection_lost. */
    ck_assert_ptr_nonnull(ctx.last);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, close_transport_cb, ctx.last, NULL), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, w), 0);
    ck_assert_int_eq(ctx.lost, 1);
    asyncio_future_unref(w);

    /* Already closed and idle: done through the loop, not inside the call. */
    ck_assert_int_eq(asyncio_server_wait_closed(s, &w), 0);
    ck_assert_int_eq(asyncio_future_done(w), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, w), 0);
    asyncio_future_unref(w);
    ck_assert_int_eq(asyncio_server_wait_closed(s, NULL), 0);

    while (!c.lost)
        tu_run(loop);
    asyncio_server_unref(s);
    tu_free_loop(loop);
}
END_TEST

START_TEST(server_factory_returning_null_refuses_the_connection)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {.refuse = 1};
    asyncio_server *s = start_server(loop, &ctx, "127.0.0.1", 0, NULL);
    struct client c;
    client_init(&c, loop);
    ck_assert_int_eq(connect_client(loop, &c, "127.0.0.1", server_port(s)), 0);
    while (!c.lost)
        tu_run(loop); /* the server closes at once: EOF or a reset */
    ck_assert(c.lost_err == 0 || c.lost_err == -ECONNRESET);
    ck_assert_int_eq(ctx.made, 0);
    ck_assert_uint_eq(c.len, 0);

    /* The server goes on: the next connection is served. */
    ctx.refuse = 0;
    client_init(&c, loop);
    ck_assert_int_eq(connect_client(loop, &c, "127.0.0.1", server_port(s)), 0);
    echo_roundtrip(loop, &c, "served");
    client_close(loop, &c);
    asyncio_server_close(s);
    asyncio_server_unref(s);
    tu_free_loop(loop);
}
END_TEST

/* EMFILE: the exception handler hears it once per retry, not in a loop. */
struct emfile_ctx {
    asyncio_loop *loop;
    asyncio_server *server;
    int calls, emfile, right_server;
};

static void emfile_handler(asyncio_loop *loop, const asyncio_error_context *ctx, void *arg)
{
    struct emfile_ctx *e = arg;
    e->calls++;
    if (ctx->error == -EMFILE)
        e->emfile++;
    if (ctx->server == e->server)
        e->right_server++;
}

START_TEST(server_accept_emfile_pauses_reports_once_and_retries)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    asyncio_server *s = start_server(loop, &ctx, "127.0.0.1", 0, NULL);
    struct emfile_ctx e = {loop, s, 0, 0, 0};
    ck_assert_int_eq(asyncio_loop_set_exception_handler(loop, emfile_handler, &e), 0);
    int port = server_port(s);

    /* Make the client socket first, then allow no new fd at all. */
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(cfd, 0);
    struct rlimit old;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    int lowest = dup(0);
    ck_assert_int_ge(lowest, 0);
    close(lowest);
    struct rlimit low = {(rlim_t)lowest, old.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    ck_assert_int_eq(dup(0), -1);

    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = connect(cfd, (struct sockaddr *)&sin, sizeof(sin));
    ck_assert(rc == 0 || errno == EINPROGRESS);

    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    run_for(loop, 0.5);
    getrusage(RUSAGE_SELF, &r1);
    ck_assert_int_eq(e.calls, 1);
    ck_assert_int_eq(e.emfile, 1);
    ck_assert_int_eq(e.right_server, 1);
    ck_assert_int_eq(ctx.made, 0);
    /* Paused, not spinning: far less CPU than the half second waited. */
    double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) +
                 (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6 +
                 (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
                 (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
    ck_assert_msg(cpu < 0.25, "%.3f s of CPU in 0.5 s: busy loop", cpu);

    /* fds again: the retry (1 s after the error) accepts the connection. */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    double t0 = tu_now();
    while (ctx.made == 0 && tu_now() - t0 < 2.0)
        run_for(loop, 0.05);
    ck_assert_int_eq(ctx.made, 1);
    ck_assert_int_eq(e.calls, 1);

    close(cfd);
    while (ctx.lost == 0)
        run_for(loop, 0.02);
    asyncio_server_close(s);
    asyncio_server_unref(s);
    tu_free_loop(loop);
}
END_TEST

START_TEST(server_takes_over_a_bound_or_listening_socket)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    for (int listening = 0; listening <= 1; listening++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
        if (listening)
            ck_assert_int_eq(listen(fd, 5), 0);
        asyncio_server_options o = ASYNCIO_SERVER_OPTIONS_INIT;
        o.sock = fd;
        asyncio_server *s = start_server(loop, &ctx, NULL, 0, &o);
        int got = -1;
        ck_assert_int_eq(asyncio_server_get_sockets(s, &got, 1), 1);
        ck_assert_int_eq(got, fd);
        ck_assert_int_ne(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
        struct client c;
        client_init(&c, loop);
        ck_assert_int_eq(connect_client(loop, &c, "127.0.0.1", sock_port(fd)), 0);
        echo_roundtrip(loop, &c, "adopted");
        client_close(loop, &c);
        asyncio_server_close(s);
        ck_assert_int_eq(fcntl(fd, F_GETFD), -1); /* the server closed it */
        asyncio_server_unref(s);
    }

    /* A datagram socket is no server socket; it is closed all the same. */
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    asyncio_server_options o = ASYNCIO_SERVER_OPTIONS_INIT;
    o.sock = u;
    ck_assert_int_eq(asyncio_loop_create_server(loop, echo_factory, &ctx, NULL, 0, &o, NULL),
                     -EINVAL);
    ck_assert_int_eq(fcntl(u, F_GETFD), -1);
    tu_free_loop(loop);
}
END_TEST

START_TEST(server_bad_arguments)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_server(NULL, echo_factory, &ctx, NULL, 0, NULL, &f),
                     -EINVAL);
    ck_assert_int_eq(asyncio_loop_create_server(loop, NULL, &ctx, NULL, 0, NULL, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_create_server(loop, echo_factory, &ctx, NULL, -1, NULL, &f),
                     -EINVAL);
    ck_assert_int_eq(asyncio_loop_create_server(loop, echo_factory, &ctx, NULL, 65536, NULL, &f),
                     -EINVAL);
    asyncio_server_options o = ASYNCIO_SERVER_OPTIONS_INIT;
    o.ssl = (SSL_CTX *)&o; /* never dereferenced: the timeouts are checked first */
    o.ssl_handshake_timeout = 0;
    ck_assert_int_eq(asyncio_loop_create_server(loop, echo_factory, &ctx, NULL, 0, &o, &f),
                     -EINVAL);
    ck_assert_int_eq(asyncio_server_close(NULL), -EINVAL);
    ck_assert_int_eq(asyncio_server_wait_closed(NULL, &f), -EINVAL);
    ck_assert_int_eq(asyncio_server_get_sockets(NULL, NULL, 0), -EINVAL);
    asyncio_server_ref(NULL);
    asyncio_server_unref(NULL);
    ck_assert_ptr_null(f);

    /* A name that cannot resolve (numeric only: no nameserver is asked). */
    asyncio_server_options num = ASYNCIO_SERVER_OPTIONS_INIT;
    num.flags = AI_PASSIVE | AI_NUMERICHOST;
    ck_assert_int_eq(
        asyncio_loop_create_server(loop, echo_factory, &ctx, "not-a-number", 0, &num, &f), 0);
    int err;
    await_result(loop, f, &err);
    ck_assert_int_eq(err, ASYNCIO_EAI_NONAME);
    asyncio_future_unref(f);

    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_loop_create_server(loop, echo_factory, &ctx, NULL, 0, NULL, &f),
                     ASYNCIO_ECLOSED);
    asyncio_loop_unref(loop);
}
END_TEST

START_TEST(server_cancelled_while_starting_leaks_nothing)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    warm_resolver(loop);
    int before = tu_count_fds();
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_server(loop, echo_factory, &ctx, "127.0.0.1", 0, NULL, &f),
                     0);
    ck_assert_int_eq(asyncio_future_cancel(f), 1);
    run_for(loop, 0.05);
    asyncio_future_unref(f);
    ck_assert_int_eq(tu_count_fds(), before);

    /* out NULL: the server is made all the same (and lives until loop close). */
    ck_assert_int_eq(
        asyncio_loop_create_server(loop, echo_factory, &ctx, "127.0.0.1", 0, NULL, NULL), 0);
    run_for(loop, 0.05);
    ck_assert_int_eq(tu_count_fds(), before + 1);
    tu_free_loop(loop);
}
END_TEST

START_TEST(server_loop_close_while_serving_frees_everything)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    asyncio_server *s = start_server(loop, &ctx, "127.0.0.1", 0, NULL);
    struct client c;
    client_init(&c, loop);
    ck_assert_int_eq(connect_client(loop, &c, "127.0.0.1", server_port(s)), 0);
    echo_roundtrip(loop, &c, "x");
    asyncio_future *w = NULL;
    ck_assert_int_eq(asyncio_server_wait_closed(s, &w), 0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_future_cancelled(w), 1);
    ck_assert_int_eq(asyncio_server_get_sockets(s, NULL, 0), 0);
    ck_assert_int_eq(asyncio_server_wait_closed(s, &w), ASYNCIO_ECLOSED);
    asyncio_future_unref(w);
    asyncio_server_unref(s);
    asyncio_loop_unref(loop);
}
END_TEST

/* ---- UNIX domain ---------------------------------------------------------------- */

static void tmp_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "/tmp/asyncio-test-%ld-%s", (long)getpid(), name);
    unlink(buf);
}

static asyncio_server *start_unix_server(asyncio_loop *loop, struct srv_ctx *ctx, const char *path,
                                         int *err)
{
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_unix_server(loop, echo_factory, ctx, path, NULL, &f), 0);
    asyncio_server *s = await_result(loop, f, err);
    if (s != NULL)
        asyncio_server_ref(s);
    asyncio_future_unref(f);
    return s;
}

static int connect_unix(asyncio_loop *loop, struct client *c, const char *path)
{
    asyncio_future *f = NULL;
    int err = asyncio_loop_create_unix_connection(loop, client_factory, c, path, NULL, &f);
    if (err < 0)
        return err;
    err = asyncio_loop_run_until_complete(loop, f);
    asyncio_future_unref(f);
    return err;
}

START_TEST(unix_echo_and_stale_socket_replaced)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    char path[108];
    tmp_path(path, sizeof(path), "echo");
    int err;
    asyncio_server *s = start_unix_server(loop, &ctx, path, &err);
    ck_assert_int_eq(err, 0);
    struct client c;
    client_init(&c, loop);
    ck_assert_int_eq(connect_unix(loop, &c, path), 0);
    echo_roundtrip(loop, &c, "over a UNIX socket");
    ck_assert_int_eq(ctx.nodelay, 0);
    client_close(loop, &c);
    asyncio_server_close(s);
    asyncio_server_unref(s);

    /* The socket file stays behind; a new server replaces it. */
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    s = start_unix_server(loop, &ctx, path, &err);
    ck_assert_int_eq(err, 0);
    client_init(&c, loop);
    ck_assert_int_eq(connect_unix(loop, &c, path), 0);
    echo_roundtrip(loop, &c, "second server");
    client_close(loop, &c);
    asyncio_server_close(s);
    asyncio_server_unref(s);
    unlink(path);

    /* Nobody listening there: refused / no such file. */
    client_init(&c, loop);
    ck_assert_int_eq(connect_unix(loop, &c, path), -ENOENT);
    tu_free_loop(loop);
}
END_TEST

START_TEST(unix_regular_file_is_not_replaced)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    char path[108];
    tmp_path(path, sizeof(path), "file");
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    int err;
    ck_assert_ptr_null(start_unix_server(loop, &ctx, path, &err));
    ck_assert_int_eq(err, -EADDRINUSE);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    unlink(path);
    tu_free_loop(loop);
}
END_TEST

START_TEST(unix_bad_paths)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    char longpath[200];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_unix_server(loop, echo_factory, &ctx, longpath, NULL, &f),
                     -ENAMETOOLONG);
    ck_assert_int_eq(
        asyncio_loop_create_unix_connection(loop, echo_factory, &ctx, longpath, NULL, &f),
        -ENAMETOOLONG);
    ck_assert_int_eq(asyncio_loop_create_unix_server(loop, echo_factory, &ctx, "", NULL, &f),
                     -EINVAL);
    ck_assert_int_eq(asyncio_loop_create_unix_server(loop, echo_factory, &ctx, NULL, NULL, &f),
                     -EINVAL);
    ck_assert_int_eq(asyncio_loop_create_unix_connection(loop, echo_factory, &ctx, NULL, NULL, &f),
                     -EINVAL);
    ck_assert_ptr_null(f);
    tu_free_loop(loop);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("server");
    TCase *tc = tcase_create("tcp");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, server_echo_and_port_zero_get_sockets);
    tcase_add_test(tc, server_host_null_listens_on_ipv4_and_ipv6_with_v6only);
    tcase_add_test(tc, server_reuse_port_lets_two_servers_share_a_port);
    tcase_add_test(tc, server_backlog_zero_still_accepts);
    tcase_add_test(tc, server_close_stops_listening_but_keeps_connections);
    tcase_add_test(tc, server_wait_closed_waits_for_the_last_connection);
    tcase_add_test(tc, server_factory_returning_null_refuses_the_connection);
    tcase_add_test(tc, server_accept_emfile_pauses_reports_once_and_retries);
    tcase_add_test(tc, server_takes_over_a_bound_or_listening_socket);
    tcase_add_test(tc, server_bad_arguments);
    tcase_add_test(tc, server_cancelled_while_starting_leaks_nothing);
    tcase_add_test(tc, server_loop_close_while_serving_frees_everything);
    suite_add_tcase(s, tc);
    TCase *tu = tcase_create("unix");
    tcase_set_timeout(tu, 10);
    tcase_add_test(tu, unix_echo_and_stale_socket_replaced);
    tcase_add_test(tu, unix_regular_file_is_not_replaced);
    tcase_add_test(tu, unix_bad_paths);
    suite_add_tcase(s, tu);
    return tu_run_suite(s);
}
