/* create_connection over real loopback sockets: echo, refused, trying every
 * address in order, happy eyeballs, local bind, a socket handed over,
 * TCP_NODELAY, cancelling (no fd left behind) and argument checks.
 *
 * Names with several addresses come from a hosts file loaded into the
 * loop's evdns base (evdns_base_load_hosts): no nameserver is ever asked.
 * 127.0.0.2 is a loopback address nobody listens on, and a listener whose
 * backlog is full makes a connect that never completes. */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/dns.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- Protocols ------------------------------------------------------------------ */

struct srv_ctx {
    int made, lost;
    int peer_port;
    int peer_family;
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
    const struct sockaddr *peer = asyncio_transport_get_extra_info(t, "peername");
    ck_assert_ptr_nonnull(peer);
    e->ctx->peer_family = peer->sa_family;
    if (peer->sa_family == AF_INET)
        e->ctx->peer_port = ntohs(((const struct sockaddr_in *)peer)->sin_port);
}

static void echo_data(asyncio_protocol *p, const void *data, size_t len)
{
    ck_assert_int_eq(asyncio_transport_write(((struct echo *)p)->t, data, len), 0);
}

static void echo_lost(asyncio_protocol *p, int err)
{
    struct echo *e = (struct echo *)p;
    e->ctx->lost++;
    free(e);
}

static const asyncio_protocol_ops echo_ops = {
    .connection_made = echo_made, .data_received = echo_data, .connection_lost = echo_lost};

static asyncio_protocol *echo_factory(void *arg)
{
    struct echo *e = calloc(1, sizeof(*e));
    ck_assert_ptr_nonnull(e);
    e->base.ops = &echo_ops;
    e->ctx = arg;
    return &e->base;
}

struct client {
    asyncio_protocol base;
    asyncio_loop *loop;
    asyncio_transport *t;
    unsigned char *buf;
    size_t len, cap, expect;
    int made, lost, lost_err;
};

static void client_made(asyncio_protocol *p, asyncio_transport *t)
{
    struct client *c = (struct client *)p;
    c->t = t;
    asyncio_transport_ref(t);
    c->made++;
}

static void client_data(asyncio_protocol *p, const void *data, size_t len)
{
    struct client *c = (struct client *)p;
    ck_assert_uint_le(c->len + len, c->cap);
    memcpy(c->buf + c->len, data, len);
    c->len += len;
    if (c->expect > 0 && c->len >= c->expect)
        asyncio_loop_stop(c->loop);
}

static void client_lost(asyncio_protocol *p, int err)
{
    struct client *c = (struct client *)p;
    c->lost++;
    c->lost_err = err;
    asyncio_transport_unref(c->t);
    c->t = NULL;
    asyncio_loop_stop(c->loop);
}

static const asyncio_protocol_ops client_ops = {
    .connection_made = client_made, .data_received = client_data, .connection_lost = client_lost};

static asyncio_protocol *client_factory(void *arg) { return arg; }
static asyncio_protocol *null_factory(void *arg) { return NULL; }

static void client_init(struct client *c, asyncio_loop *loop, size_t cap)
{
    memset(c, 0, sizeof(*c));
    c->base.ops = &client_ops;
    c->loop = loop;
    c->cap = cap;
    c->buf = malloc(cap > 0 ? cap : 1);
    ck_assert_ptr_nonnull(c->buf);
}

static void client_free(struct client *c)
{
    free(c->buf);
    c->buf = NULL;
}

/* ---- Helpers ---------------------------------------------------------------------- */

static void run_for(asyncio_loop *loop, double seconds)
{
    ck_assert_int_eq(asyncio_loop_call_later(loop, seconds, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
}

static struct sockaddr_in ipv4(const char *addr, int port)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    ck_assert_int_eq(inet_pton(AF_INET, addr, &sin.sin_addr), 1);
    return sin;
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

static asyncio_server *start_server(asyncio_loop *loop, struct srv_ctx *ctx, const char *host,
                                    int port)
{
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_server(loop, echo_factory, ctx, host, port, NULL, &f), 0);
    int err = asyncio_loop_run_until_complete(loop, f);
    ck_assert_msg(err == 0, "create_server %s:%d: %s", host, port, asyncio_strerror(err));
    void *s = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &s), 0);
    asyncio_server_ref(s);
    asyncio_future_unref(f);
    return s;
}

static int server_port(asyncio_server *s)
{
    int fd = -1;
    ck_assert_int_ge(asyncio_server_get_sockets(s, &fd, 1), 1);
    return sock_port(fd);
}

static void stop_server(asyncio_server *s)
{
    ck_assert_int_eq(asyncio_server_close(s), 0);
    asyncio_server_unref(s);
}

/* create_connection and run it to completion; the transport (if any) is
 * the client's from connection_made. */
static int connect_with(asyncio_loop *loop, struct client *c, const char *host, int port,
                        const asyncio_connection_options *o)
{
    asyncio_future *f = NULL;
    int err = asyncio_loop_create_connection(loop, client_factory, c, host, port, o, &f);
    if (err < 0)
        return err;
    ck_assert_int_eq(asyncio_future_done(f), 0);
    err = asyncio_loop_run_until_complete(loop, f);
    if (err == 0) {
        void *t = NULL;
        ck_assert_int_eq(asyncio_future_result(f, &t), 0);
        ck_assert_ptr_eq(t, c->t); /* the result is the protocol's transport */
    }
    asyncio_future_unref(f);
    return err;
}

static void client_close(asyncio_loop *loop, struct client *c)
{
    if (c->t != NULL) {
        ck_assert_int_eq(asyncio_transport_close(c->t), 0);
        while (!c->lost)
            tu_run(loop);
    }
}

/* A port on 127.0.0.1 that refuses: bound (so nobody takes it), not listening. */
static int refusing_port(int *holder)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = ipv4("127.0.0.1", 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    *holder = fd;
    return sock_port(fd);
}

/* A listener on addr:port whose backlog is full, so that a new connect()
 * to it stays in progress.  Returns the listener; the fillers go in fill[2]. */
static int hanging_listener(const char *addr, int port, int fill[2])
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    ck_assert_int_eq(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)), 0);
    struct sockaddr_in sin = ipv4(addr, port);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(l, 0), 0);
    socklen_t len = sizeof(sin);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sin, &len), 0);
    for (int i = 0; i < 2; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int rc = connect(fill[i], (struct sockaddr *)&sin, sizeof(sin));
        ck_assert(rc == 0 || errno == EINPROGRESS);
    }
    usleep(50000); /* let the handshakes that can complete do so */
    return l;
}

/* Give `name` these addresses in the loop's resolver (a hosts file). */
static void add_hosts(asyncio_loop *loop, const char *lines)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/asyncio-hosts-%ld", (long)getpid());
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(lines, fp);
    fclose(fp);
    struct evdns_base *dns = asyncio_loop_get_evdns_base(loop);
    ck_assert_ptr_nonnull(dns);
    ck_assert_int_eq(evdns_base_load_hosts(dns, path), 0);
    unlink(path);
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

static int transport_nodelay(asyncio_transport *t)
{
    int *fd = asyncio_transport_get_extra_info(t, "socket");
    ck_assert_ptr_nonnull(fd);
    int on = -1;
    socklen_t len = sizeof(on);
    ck_assert_int_eq(getsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
    return on;
}

static const char *peer_addr(asyncio_transport *t, char *buf, size_t len)
{
    const struct sockaddr *sa = asyncio_transport_get_extra_info(t, "peername");
    ck_assert_ptr_nonnull(sa);
    if (sa->sa_family == AF_INET6)
        return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, len);
    return inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, len);
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

/* ---- Tests ---------------------------------------------------------------------- */

START_TEST(connect_echo_is_byte_exact)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    asyncio_server *s = start_server(loop, &ctx, "127.0.0.1", 0);
    size_t n = 512 * 1024;
    unsigned char *msg = malloc(n);
    ck_assert_ptr_nonnull(msg);
    for (size_t i = 0; i < n; i++)
        msg[i] = (unsigned char)(i * 7 + i / 251);
    struct client c;
    client_init(&c, loop, n);
    ck_assert_int_eq(connect_with(loop, &c, "127.0.0.1", server_port(s), NULL), 0);
    ck_assert_int_eq(c.made, 1);
    c.expect = n;
    ck_assert_int_eq(asyncio_transport_write(c.t, msg, n), 0);
    tu_run(loop);
    ck_assert_uint_eq(c.len, n);
    ck_assert_int_eq(memcmp(c.buf, msg, n), 0);
    ck_assert_int_eq(transport_nodelay(c.t), 1);
    client_close(loop, &c);
    ck_assert_int_eq(c.lost, 1);
    client_free(&c);
    free(msg);
    stop_server(s);
    tu_free_loop(loop);
}
END_TEST

START_TEST(connect_refused)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int holder;
    int port = refusing_port(&holder);
    struct client c;
    client_init(&c, loop, 16);
    ck_assert_int_eq(connect_with(loop, &c, "127.0.0.1", port, NULL), -ECONNREFUSED);
    ck_assert_int_eq(c.made, 0);
    close(holder);
    client_free(&c);
    tu_free_loop(loop);
}
END_TEST

START_TEST(connect_tries_every_address_in_order)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    asyncio_server *s = start_server(loop, &ctx, "127.0.0.1", 0);
    int port = server_port(s);
    add_hosts(loop, "127.0.0.2 two.test\n127.0.0.1 two.test\n");

    /* The resolver gives both, 127.0.0.2 first. */
    asyncio_future *f = NULL;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    ck_assert_int_eq(asyncio_loop_getaddrinfo(loop, "two.test", "80", &hints, &f), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
    void *res = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &res), 0);
    struct addrinfo *ai = res;
    ck_assert_ptr_nonnull(ai);
    ck_assert_ptr_nonnull(ai->ai_next);
    ck_assert_uint_eq(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr, htonl(0x7f000002));
    ck_assert_uint_eq(((struct sockaddr_in *)ai->ai_next->ai_addr)->sin_addr.s_addr,
                      htonl(0x7f000001));
    asyncio_future_unref(f);

    /* 127.0.0.2 refuses, 127.0.0.1 answers. */
    struct client c;
    client_init(&c, loop, 64);
    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.family = AF_INET;
    ck_assert_int_eq(connect_with(loop, &c, "two.test", port, &o), 0);
    char buf[64];
    ck_assert_str_eq(peer_addr(c.t, buf, sizeof(buf)), "127.0.0.1");
    client_close(loop, &c);
    client_free(&c);

    /* When the first address answers, it is the one used. */
    int first = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = ipv4("127.0.0.2", port);
    ck_assert_int_eq(bind(first, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(first, 5), 0);
    client_init(&c, loop, 64);
    ck_assert_int_eq(connect_with(loop, &c, "two.test", port, &o), 0);
    ck_assert_str_eq(peer_addr(c.t, buf, sizeof(buf)), "127.0.0.2");
    client_close(loop, &c);
    client_free(&c);
    close(first);

    /* Every address refuses: the last attempt's error. */
    stop_server(s);
    client_init(&c, loop, 64);
    ck_assert_int_eq(connect_with(loop, &c, "two.test", port, &o), -ECONNREFUSED);
    client_free(&c);
    ck_assert_int_eq(ctx.made, 1);
    tu_free_loop(loop);
}
END_TEST

START_TEST(connect_happy_eyeballs_races_past_a_hanging_address)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    /* The hanging listener first, on an ephemeral port: the server then
     * takes the same port on another address. */
    int fill[2];
    int hang = hanging_listener("127.0.0.1", 0, fill);
    int port = sock_port(hang);
    asyncio_server *s = start_server(loop, &ctx, "127.0.0.2", port);
    add_hosts(loop, "127.0.0.1 race.test\n127.0.0.2 race.test\n");
    warm_resolver(loop);
    int before = tu_count_fds();

    struct client c;
    client_init(&c, loop, 64);
    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.family = AF_INET;
    o.happy_eyeballs_delay = 0.05;
    double t0 = tu_now();
    ck_assert_int_eq(connect_with(loop, &c, "race.test", port, &o), 0);
    double took = tu_now() - t0;
    char buf[64];
    ck_assert_str_eq(peer_addr(c.t, buf, sizeof(buf)), "127.0.0.2");
    ck_assert_msg(took >= 0.045 && took < 1.0, "connected after %.3f s", took);
    /* The losing attempt's socket is closed: only the winner (and the
     * server's side of it) is left. */
    while (ctx.made == 0)
        run_for(loop, 0.01);
    ck_assert_int_eq(tu_count_fds(), before + 2);
    client_close(loop, &c);
    client_free(&c);
    while (ctx.lost == 0)
        run_for(loop, 0.01);
    ck_assert_int_eq(tu_count_fds(), before);

    close(fill[0]);
    close(fill[1]);
    close(hang);
    stop_server(s);
    tu_free_loop(loop);
}
END_TEST

START_TEST(connect_happy_eyeballs_interleaves_families)
{
    if (!ipv6_loopback_works())
        return; /* only one family here: nothing to interleave */
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    /* IPv4 first: 127.0.0.2 refuses, 127.0.0.3 would hang.  Interleaved,
     * ::1 comes second, before 127.0.0.3. */
    int fill[2];
    int hang = hanging_listener("127.0.0.3", 0, fill);
    int port = sock_port(hang);
    asyncio_server *s = start_server(loop, &ctx, "::1", port);
    add_hosts(loop, "127.0.0.2 mixed.test\n127.0.0.3 mixed.test\n::1 mixed.test\n");
    struct client c;
    client_init(&c, loop, 64);
    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.happy_eyeballs_delay = 5.0; /* longer than the guard: only failures move on */
    ck_assert_int_eq(connect_with(loop, &c, "mixed.test", port, &o), 0);
    char buf[64];
    ck_assert_str_eq(peer_addr(c.t, buf, sizeof(buf)), "::1");
    ck_assert_int_eq(ctx.peer_family, AF_INET6);
    client_close(loop, &c);
    client_free(&c);
    close(fill[0]);
    close(fill[1]);
    close(hang);
    stop_server(s);
    tu_free_loop(loop);
}
END_TEST

START_TEST(connect_cancelled_leaks_no_fd)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int fill[2];
    int hang = hanging_listener("127.0.0.1", 0, fill);
    int port = sock_port(hang);
    struct client c;
    client_init(&c, loop, 16);
    warm_resolver(loop);
    int before = tu_count_fds();

    /* Cancelled at once, while resolving. */
    asyncio_future *f = NULL;
    ck_assert_int_eq(
        asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1", port, NULL, &f), 0);
    ck_assert_int_eq(asyncio_future_cancel(f), 1);
    run_for(loop, 0.02);
    asyncio_future_unref(f);
    ck_assert_int_eq(tu_count_fds(), before);

    /* Cancelled while connect() is in progress (sequential and racing). */
    for (int race = 0; race <= 1; race++) {
        asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
        o.happy_eyeballs_delay = race ? 0.01 : 0.0;
        ck_assert_int_eq(
            asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1", port, &o, &f), 0);
        run_for(loop, 0.05);
        ck_assert_int_eq(asyncio_future_done(f), 0);
        ck_assert_int_eq(tu_count_fds(), before + 1); /* the socket connecting */
        ck_assert_int_eq(asyncio_future_cancel(f), 1);
        run_for(loop, 0.02);
        ck_assert_int_eq(tu_count_fds(), before);
        asyncio_future_unref(f);
    }
    ck_assert_int_eq(c.made, 0);

    /* The loop closes while connecting: the future is cancelled, no fd left. */
    ck_assert_int_eq(
        asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1", port, NULL, &f), 0);
    run_for(loop, 0.05);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_future_cancelled(f), 1);
    asyncio_future_unref(f);
    asyncio_loop_unref(loop);
    close(fill[0]);
    close(fill[1]);
    close(hang);
    client_free(&c);
}
END_TEST

START_TEST(connect_binds_the_local_address)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    asyncio_server *s = start_server(loop, &ctx, "127.0.0.1", 0);
    int holder;
    int local = refusing_port(&holder);
    close(holder); /* free again: ours to bind */
    struct client c;
    client_init(&c, loop, 64);
    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.local_host = "127.0.0.1";
    o.local_port = local;
    ck_assert_int_eq(connect_with(loop, &c, "127.0.0.1", server_port(s), &o), 0);
    while (ctx.made == 0)
        run_for(loop, 0.01);
    ck_assert_int_eq(ctx.peer_port, local);
    client_close(loop, &c);
    client_free(&c);

    /* A local address of another family cannot be used: the bind error. */
    if (ipv6_loopback_works()) {
        client_init(&c, loop, 64);
        o.local_host = "::1";
        o.local_port = 0;
        ck_assert_int_eq(connect_with(loop, &c, "127.0.0.1", server_port(s), &o), -EADDRNOTAVAIL);
        client_free(&c);
    }
    stop_server(s);
    tu_free_loop(loop);
}
END_TEST

START_TEST(connect_takes_over_a_connected_socket)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    asyncio_server *s = start_server(loop, &ctx, "127.0.0.1", 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = ipv4("127.0.0.1", server_port(s));
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    struct client c;
    client_init(&c, loop, 64);
    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.sock = fd;
    ck_assert_int_eq(connect_with(loop, &c, NULL, 0, &o), 0);
    ck_assert_int_ne(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    ck_assert_int_eq(*(int *)asyncio_transport_get_extra_info(c.t, "socket"), fd);
    ck_assert_int_eq(transport_nodelay(c.t), 1);
    c.expect = 5;
    ck_assert_int_eq(asyncio_transport_write(c.t, "hello", 5), 0);
    tu_run(loop);
    ck_assert_int_eq(memcmp(c.buf, "hello", 5), 0);
    client_close(loop, &c);
    client_free(&c);

    /* host and sock together: -EINVAL, and the socket is still taken (closed). */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    o.sock = fd;
    ck_assert_int_eq(
        asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1", 1, &o, NULL),
        -EINVAL);
    ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
    stop_server(s);
    tu_free_loop(loop);
}
END_TEST

START_TEST(connect_factory_returning_null_fails_with_econnaborted)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    asyncio_server *s = start_server(loop, &ctx, "127.0.0.1", 0);
    int before = tu_count_fds();
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_connection(loop, null_factory, NULL, "127.0.0.1",
                                                    server_port(s), NULL, &f),
                     0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), -ECONNABORTED);
    asyncio_future_unref(f);
    while (ctx.lost < ctx.made || ctx.made == 0)
        run_for(loop, 0.01); /* the server saw it come and go */
    ck_assert_int_eq(tu_count_fds(), before);
    stop_server(s);
    tu_free_loop(loop);
}
END_TEST

START_TEST(connect_without_out_still_connects)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    asyncio_server *s = start_server(loop, &ctx, "127.0.0.1", 0);
    struct client c;
    client_init(&c, loop, 64);
    ck_assert_int_eq(asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1",
                                                    server_port(s), NULL, NULL),
                     0);
    while (c.made == 0 || ctx.made == 0)
        run_for(loop, 0.01);
    client_close(loop, &c);
    client_free(&c);
    stop_server(s);
    tu_free_loop(loop);
}
END_TEST

START_TEST(connect_over_ipv6)
{
    if (!ipv6_loopback_works())
        return;
    asyncio_loop *loop = tu_new_guarded_loop();
    struct srv_ctx ctx = {0};
    asyncio_server *s = start_server(loop, &ctx, "::1", 0);
    struct client c;
    client_init(&c, loop, 64);
    ck_assert_int_eq(connect_with(loop, &c, "::1", server_port(s), NULL), 0);
    ck_assert_int_eq(transport_nodelay(c.t), 1);
    c.expect = 2;
    ck_assert_int_eq(asyncio_transport_write(c.t, "v6", 2), 0);
    tu_run(loop);
    ck_assert_int_eq(memcmp(c.buf, "v6", 2), 0);
    client_close(loop, &c);
    client_free(&c);
    stop_server(s);
    tu_free_loop(loop);
}
END_TEST

START_TEST(connect_bad_arguments)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct client c;
    client_init(&c, loop, 16);
    asyncio_future *f = NULL;
    ck_assert_int_eq(
        asyncio_loop_create_connection(NULL, client_factory, &c, "127.0.0.1", 1, NULL, &f),
        -EINVAL);
    ck_assert_int_eq(asyncio_loop_create_connection(loop, NULL, &c, "127.0.0.1", 1, NULL, &f),
                     -EINVAL);
    ck_assert_int_eq(
        asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1", -1, NULL, &f),
        -EINVAL);
    ck_assert_int_eq(
        asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1", 65536, NULL, &f),
        -EINVAL);
    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.ssl = (SSL_CTX *)&o; /* never dereferenced: the timeouts are checked first */
    o.ssl_handshake_timeout = 0;
    ck_assert_int_eq(
        asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1", 1, &o, &f), -EINVAL);
    o = (asyncio_connection_options)ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.use_default_ssl = 1;
    o.ssl_shutdown_timeout = -1;
    ck_assert_int_eq(
        asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1", 1, &o, &f), -EINVAL);
    o = (asyncio_connection_options)ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.server_hostname = "example.org";
    ck_assert_int_eq(
        asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1", 1, &o, &f), -EINVAL);
    o = (asyncio_connection_options)ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.happy_eyeballs_delay = -1.0;
    ck_assert_int_eq(
        asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1", 1, &o, &f), -EINVAL);
    o = (asyncio_connection_options)ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.local_port = 70000;
    ck_assert_int_eq(
        asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1", 1, &o, &f), -EINVAL);
    ck_assert_ptr_null(f);

    /* Unresolvable (numeric only: no nameserver is asked). */
    o = (asyncio_connection_options)ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.flags = AI_NUMERICHOST;
    ck_assert_int_eq(
        asyncio_loop_create_connection(loop, client_factory, &c, "not-a-number", 1, &o, &f), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), ASYNCIO_EAI_NONAME);
    asyncio_future_unref(f);
    f = NULL;

    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(
        asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1", 1, NULL, &f),
        ASYNCIO_ECLOSED);
    ck_assert_ptr_null(f);
    asyncio_loop_unref(loop);
    client_free(&c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("connect");
    TCase *tc = tcase_create("connect");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, connect_echo_is_byte_exact);
    tcase_add_test(tc, connect_refused);
    tcase_add_test(tc, connect_tries_every_address_in_order);
    tcase_add_test(tc, connect_happy_eyeballs_races_past_a_hanging_address);
    tcase_add_test(tc, connect_happy_eyeballs_interleaves_families);
    tcase_add_test(tc, connect_cancelled_leaks_no_fd);
    tcase_add_test(tc, connect_binds_the_local_address);
    tcase_add_test(tc, connect_takes_over_a_connected_socket);
    tcase_add_test(tc, connect_factory_returning_null_fails_with_econnaborted);
    tcase_add_test(tc, connect_without_out_still_connects);
    tcase_add_test(tc, connect_over_ipv6);
    tcase_add_test(tc, connect_bad_arguments);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
