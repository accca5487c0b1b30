/* Datagram endpoints over loopback: creation (resolution, bind, connect,
 * options, errors, cancellation), sendto and datagram_received, errors
 * through error_received, flow control, close/abort, loop close, and no
 * descriptor left behind.
 *
 * UDP over loopback never makes sendto() return EAGAIN (the kernel frees
 * the sender's buffer space at once), so the tests that need a full send
 * queue interpose sendto(): this program defines it, the library's call
 * binds to it, and it fails with EAGAIN for one chosen socket. */
#define _GNU_SOURCE
#include "testutil.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- sendto interposition --------------------------------------------------- */

static int eagain_fd = -1; /* sendto on this fd fails with EAGAIN */
static int eagain_hits;    /* how often it did */

typedef ssize_t (*sendto_fn)(int, const void *, size_t, int, __CONST_SOCKADDR_ARG, socklen_t);

ssize_t sendto(int fd, const void *buf, size_t len, int flags, __CONST_SOCKADDR_ARG addr,
               socklen_t addrlen)
{
    static sendto_fn real;
    if (fd >= 0 && fd == eagain_fd) {
        eagain_hits++;
        errno = EAGAIN;
        return -1;
    }
    if (real == NULL)
        real = (sendto_fn)dlsym(RTLD_NEXT, "sendto");
    return real(fd, buf, len, flags, addr, addrlen);
}

/* ---- A recording protocol ------------------------------------------------------ */

typedef struct tp {
    asyncio_protocol base;
    asyncio_loop *loop;
    asyncio_transport *t; /* borrowed, from connection_made */
    int factory_calls, made, lost, lost_error;
    int errors, last_error, paused, resumed;
    int received;
    size_t bytes;
    unsigned char last[256];
    size_t last_len;
    struct sockaddr_storage from;
    socklen_t fromlen;
    int echo;    /* send every datagram back to its sender */
    int stop_at; /* stop the loop when `received` gets here */
    int stop_on_lost, stop_on_error, stop_on_resume;
    asyncio_future *cancel_in_factory;
    void (*on_datagram)(struct tp *self, const void *data, size_t len);
} tp;

static void tp_made(asyncio_protocol *self, asyncio_transport *t)
{
    tp *p = (tp *)self;
    ck_assert_int_eq(p->made, 0);
    ck_assert_int_eq(p->lost, 0);
    ck_assert_ptr_nonnull(t);
    p->made = 1;
    p->t = t;
}

static void tp_lost(asyncio_protocol *self, int error)
{
    tp *p = (tp *)self;
    ck_assert_int_eq(p->lost, 0);
    p->lost = 1;
    p->lost_error = error;
    if (p->stop_on_lost)
        asyncio_loop_stop(p->loop);
}

static void tp_datagram(asyncio_protocol *self, const void *data, size_t len,
                        const struct sockaddr *addr, socklen_t addrlen)
{
    tp *p = (tp *)self;
    ck_assert_int_eq(p->made, 1);
    ck_assert_int_eq(p->lost, 0);
    ck_assert_ptr_nonnull(addr);
    ck_assert_uint_le(addrlen, sizeof(p->from));
    p->received++;
    p->bytes += len;
    p->last_len = len < sizeof(p->last) ? len : sizeof(p->last);
    memcpy(p->last, data, p->last_len);
    memcpy(&p->from, addr, addrlen);
    p->fromlen = addrlen;
    if (p->echo)
        ck_assert_int_eq(asyncio_transport_sendto(p->t, data, len, addr, addrlen), 0);
    if (p->on_datagram != NULL)
        p->on_datagram(p, data, len);
    if (p->stop_at > 0 && p->received == p->stop_at)
        asyncio_loop_stop(p->loop);
}

static void tp_error(asyncio_protocol *self, int error)
{
    tp *p = (tp *)self;
    ck_assert_int_eq(p->made, 1);
    ck_assert_int_eq(p->lost, 0);
    ck_assert_int_lt(error, 0);
    p->errors++;
    p->last_error = error;
    if (p->stop_on_error)
        asyncio_loop_stop(p->loop);
}

static void tp_pause(asyncio_protocol *self)
{
    tp *p = (tp *)self;
    ck_assert_int_eq(p->lost, 0);
    ck_assert_int_eq(p->paused, p->resumed); /* alternates */
    p->paused++;
}

static void tp_resume(asyncio_protocol *self)
{
    tp *p = (tp *)self;
    ck_assert_int_eq(p->lost, 0);
    ck_assert_int_eq(p->paused, p->resumed + 1);
    p->resumed++;
    if (p->stop_on_resume)
        asyncio_loop_stop(p->loop);
}

static const asyncio_protocol_ops tp_ops = {
    .connection_made = tp_made,
    .connection_lost = tp_lost,
    .datagram_received = tp_datagram,
    .error_received = tp_error,
    .pause_writing = tp_pause,
    .resume_writing = tp_resume,
};

static void tp_init(tp *p, asyncio_loop *loop)
{
    memset(p, 0, sizeof(*p));
    p->base.ops = &tp_ops;
    p->loop = loop;
}

static asyncio_protocol *tp_factory(void *arg)
{
    tp *p = arg;
    p->factory_calls++;
    if (p->cancel_in_factory != NULL)
        ck_assert_int_eq(asyncio_future_cancel(p->cancel_in_factory), 1);
    return &p->base;
}

static asyncio_protocol *null_factory(void *arg)
{
    int *calls = arg;
    (*calls)++;
    return NULL;
}

/* ---- Helpers ---------------------------------------------------------------------- */

/* Create an endpoint and run until it exists; returns the transport with a
 * reference of the caller's.  connection_made must have run by then. */
static asyncio_transport *open_ep(asyncio_loop *loop, tp *p, const char *lh, int lp, const char *rh,
                                  int rp, const asyncio_datagram_options *o)
{
    asyncio_future *f = NULL;
    int rc = asyncio_loop_create_datagram_endpoint(loop, tp_factory, p, lh, lp, rh, rp, o, &f);
    ck_assert_msg(rc == 0, "create_datagram_endpoint: %s", asyncio_err_name(rc));
    rc = asyncio_loop_run_until_complete(loop, f);
    ck_assert_msg(rc == 0, "endpoint future: %s", asyncio_err_name(rc));
    ck_assert_int_eq(p->made, 1); /* before the future completed */
    void *r = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &r), 0);
    ck_assert_ptr_eq(r, p->t);
    asyncio_transport_ref(r);
    asyncio_future_unref(f);
    return r;
}

/* Create an endpoint that must fail; returns the future's error. */
static int open_fails(asyncio_loop *loop, asyncio_protocol_factory factory, void *arg,
                      const char *lh, int lp, const char *rh, int rp,
                      const asyncio_datagram_options *o)
{
    asyncio_future *f = NULL;
    int rc = asyncio_loop_create_datagram_endpoint(loop, factory, arg, lh, lp, rh, rp, o, &f);
    ck_assert_msg(rc == 0, "create_datagram_endpoint: %s", asyncio_err_name(rc));
    rc = asyncio_loop_run_until_complete(loop, f);
    ck_assert_int_lt(rc, 0);
    ck_assert_int_eq(asyncio_future_exception(f), rc);
    asyncio_future_unref(f);
    return rc;
}

/* Close, run until connection_lost, release. */
static void close_and_wait(tp *p, asyncio_transport *t)
{
    ck_assert_int_eq(asyncio_transport_close(t), 0);
    if (!p->lost) {
        p->stop_on_lost = 1;
        tu_run(p->loop);
    }
    ck_assert_int_eq(p->lost, 1);
    ck_assert_int_eq(p->lost_error, 0);
    asyncio_transport_unref(t);
}

/* Resolve once, so that whatever the loop's resolver opens on first use is
 * open before a test counts descriptors. */
static void warm_resolver(asyncio_loop *loop)
{
    asyncio_future *f = NULL;
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM};
    ck_assert_int_eq(asyncio_loop_getaddrinfo(loop, "127.0.0.1", "9", &hints, &f), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
    asyncio_future_unref(f);
}

/* Run the loop for `seconds` (bounded by the guard timer as well). */
static void run_for(asyncio_loop *loop, double seconds)
{
    ck_assert_int_eq(asyncio_loop_call_later(loop, seconds, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
}

static const struct sockaddr *sockname_of(asyncio_transport *t)
{
    const struct sockaddr *sa = asyncio_transport_get_extra_info(t, "sockname");
    ck_assert_ptr_nonnull(sa);
    return sa;
}

static socklen_t len_of(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static int port_of(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
    return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
}

static void assert_same_address(const struct sockaddr *a, const struct sockaddr *b)
{
    ck_assert_int_eq(a->sa_family, b->sa_family);
    ck_assert_int_eq(port_of(a), port_of(b));
    if (a->sa_family == AF_INET)
        ck_assert(((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr ==
                  ((const struct sockaddr_in *)(const void *)b)->sin_addr.s_addr);
    else
        ck_assert(memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
                         &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr,
                         sizeof(struct in6_addr)) == 0);
}

static int fd_of(asyncio_transport *t)
{
    int *fd = asyncio_transport_get_extra_info(t, "socket");
    ck_assert_ptr_nonnull(fd);
    ck_assert_int_ge(*fd, 0);
    return *fd;
}

static int sockopt_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof(v);
    ck_assert_int_eq(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

/* A loopback UDP port that nothing listens on (bound, then closed). */
static int closed_udp_port(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(s, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
    socklen_t len = sizeof(sin);
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&sin, &len), 0);
    close(s);
    return ntohs(sin.sin_port);
}

/* ---- Echo and addresses ---------------------------------------------------------- */

static void echo_between_two_endpoints(const char *host)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp srv, cli;
    tp_init(&srv, loop);
    tp_init(&cli, loop);
    srv.echo = 1;
    cli.stop_at = 1;
    asyncio_transport *s = open_ep(loop, &srv, host, 0, NULL, 0, NULL);
    asyncio_transport *c = open_ep(loop, &cli, host, 0, NULL, 0, NULL);
    struct sockaddr_storage saddr, caddr;
    memcpy(&saddr, sockname_of(s), len_of(sockname_of(s)));
    memcpy(&caddr, sockname_of(c), len_of(sockname_of(c)));
    ck_assert_int_ne(port_of((struct sockaddr *)&saddr), 0);
    ck_assert_ptr_null(asyncio_transport_get_extra_info(s, "peername"));

    ck_assert_int_eq(asyncio_transport_sendto(c, "ping", 4, (struct sockaddr *)&saddr,
                                              len_of((struct sockaddr *)&saddr)),
                     0);
    tu_run(loop);

    ck_assert_int_eq(srv.received, 1);
    ck_assert_uint_eq(srv.last_len, 4);
    ck_assert(memcmp(srv.last, "ping", 4) == 0);
    assert_same_address((struct sockaddr *)&srv.from, (struct sockaddr *)&caddr);
    ck_assert_int_eq(cli.received, 1);
    ck_assert(memcmp(cli.last, "ping", 4) == 0);
    assert_same_address((struct sockaddr *)&cli.from, (struct sockaddr *)&saddr);
    ck_assert_int_eq(srv.errors + cli.errors, 0);

    close_and_wait(&cli, c);
    close_and_wait(&srv, s);
    tu_free_loop(loop);
}

START_TEST(echo_between_two_endpoints_reports_the_senders_address)
{
    echo_between_two_endpoints("127.0.0.1");
}
END_TEST

START_TEST(echo_between_two_ipv6_endpoints_reports_the_senders_address)
{
    echo_between_two_endpoints("::1");
}
END_TEST

START_TEST(connected_endpoint_sends_to_its_remote_with_a_null_address)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp srv, cli;
    tp_init(&srv, loop);
    tp_init(&cli, loop);
    srv.echo = 1;
    cli.stop_at = 2;
    asyncio_transport *s = open_ep(loop, &srv, "127.0.0.1", 0, NULL, 0, NULL);
    const struct sockaddr *sa = sockname_of(s);
    struct sockaddr_in saddr;
    memcpy(&saddr, sa, sizeof(saddr));
    asyncio_transport *c = open_ep(loop, &cli, NULL, 0, "127.0.0.1", port_of(sa), NULL);

    const struct sockaddr *peer = asyncio_transport_get_extra_info(c, "peername");
    ck_assert_ptr_nonnull(peer);
    assert_same_address(peer, (struct sockaddr *)&saddr);

    ck_assert_int_eq(asyncio_transport_sendto(c, "one", 3, NULL, 0), 0);
    /* The connected address itself is accepted, as asyncio does... */
    ck_assert_int_eq(
        asyncio_transport_sendto(c, "two", 3, (struct sockaddr *)&saddr, sizeof(saddr)), 0);
    /* ...any other is refused. */
    struct sockaddr_in other = saddr;
    other.sin_port = htons((uint16_t)(port_of(sa) == 65535 ? 1 : port_of(sa) + 1));
    ck_assert_int_eq(
        asyncio_transport_sendto(c, "bad", 3, (struct sockaddr *)&other, sizeof(other)), -EISCONN);
    tu_run(loop);

    ck_assert_int_eq(srv.received, 2);
    ck_assert_int_eq(cli.received, 2);
    ck_assert(memcmp(cli.last, "two", 3) == 0);
    assert_same_address((struct sockaddr *)&cli.from, (struct sockaddr *)&saddr);
    assert_same_address((struct sockaddr *)&srv.from, sockname_of(c));

    close_and_wait(&cli, c);
    close_and_wait(&srv, s);
    tu_free_loop(loop);
}
END_TEST

START_TEST(unbound_endpoint_of_a_family_gets_its_port_at_the_first_sendto)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp srv, cli;
    tp_init(&srv, loop);
    tp_init(&cli, loop);
    srv.stop_at = 1;
    asyncio_datagram_options o = ASYNCIO_DATAGRAM_OPTIONS_INIT;
    o.family = AF_INET;
    asyncio_transport *s = open_ep(loop, &srv, "127.0.0.1", 0, NULL, 0, NULL);
    asyncio_transport *c = open_ep(loop, &cli, NULL, 0, NULL, 0, &o);
    ck_assert_int_eq(sockname_of(c)->sa_family, AF_INET);
    ck_assert_int_eq(port_of(sockname_of(c)), 0);
    ck_assert_ptr_null(asyncio_transport_get_extra_info(c, "peername"));

    const struct sockaddr *sa = sockname_of(s);
    ck_assert_int_eq(asyncio_transport_sendto(c, "x", 1, sa, len_of(sa)), 0);
    tu_run(loop);
    ck_assert_int_eq(srv.received, 1);
    ck_assert_int_ne(port_of(sockname_of(c)), 0);
    ck_assert_int_eq(port_of(sockname_of(c)), port_of((struct sockaddr *)&srv.from));

    close_and_wait(&cli, c);
    close_and_wait(&srv, s);
    tu_free_loop(loop);
}
END_TEST

START_TEST(an_empty_datagram_is_sent_and_received)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp srv, cli;
    tp_init(&srv, loop);
    tp_init(&cli, loop);
    srv.stop_at = 1;
    asyncio_transport *s = open_ep(loop, &srv, "127.0.0.1", 0, NULL, 0, NULL);
    asyncio_transport *c = open_ep(loop, &cli, NULL, 0, "127.0.0.1", port_of(sockname_of(s)), NULL);
    ck_assert_int_eq(asyncio_transport_sendto(c, NULL, 0, NULL, 0), 0);
    tu_run(loop);
    ck_assert_int_eq(srv.received, 1);
    ck_assert_uint_eq(srv.bytes, 0);
    close_and_wait(&cli, c);
    close_and_wait(&srv, s);
    tu_free_loop(loop);
}
END_TEST

/* ---- Many datagrams -------------------------------------------------------------- */

#define MANY 1000
#define BATCH 100 /* a batch fits the receive buffer; more than one readiness reads */
#define MANY_SIZE 200

static struct {
    asyncio_transport *sender;
    int sent;
    unsigned char seen[MANY];
    int duplicates, out_of_range;
} many;

static void many_send_batch(void)
{
    unsigned char buf[MANY_SIZE];
    for (int i = 0; i < BATCH && many.sent < MANY; i++) {
        memset(buf, many.sent & 0xff, sizeof(buf));
        uint32_t seq = (uint32_t)many.sent;
        memcpy(buf, &seq, sizeof(seq));
        ck_assert_int_eq(asyncio_transport_sendto(many.sender, buf, sizeof(buf), NULL, 0), 0);
        many.sent++;
    }
}

static void many_on_datagram(tp *p, const void *data, size_t len)
{
    ck_assert_uint_eq(len, MANY_SIZE);
    uint32_t seq;
    memcpy(&seq, data, sizeof(seq));
    if (seq >= MANY) {
        many.out_of_range++;
    } else {
        if (many.seen[seq])
            many.duplicates++;
        many.seen[seq] = 1;
        ck_assert_int_eq(((const unsigned char *)data)[MANY_SIZE - 1], seq & 0xff);
    }
    /* The receiver kept up with a whole batch: send the next one. */
    if (p->received == many.sent && many.sent < MANY)
        many_send_batch();
}

START_TEST(a_thousand_datagrams_all_arrive_exactly_once)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp srv, cli;
    tp_init(&srv, loop);
    tp_init(&cli, loop);
    srv.stop_at = MANY;
    srv.on_datagram = many_on_datagram;
    asyncio_transport *s = open_ep(loop, &srv, "127.0.0.1", 0, NULL, 0, NULL);
    int rcvbuf = 1 << 20;
    ck_assert_int_eq(setsockopt(fd_of(s), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    asyncio_transport *c = open_ep(loop, &cli, NULL, 0, "127.0.0.1", port_of(sockname_of(s)), NULL);
    memset(&many, 0, sizeof(many));
    many.sender = c;
    many_send_batch();
    tu_run(loop);

    ck_assert_int_eq(srv.received, MANY);
    ck_assert_uint_eq(srv.bytes, (size_t)MANY * MANY_SIZE);
    ck_assert_int_eq(many.duplicates, 0);
    ck_assert_int_eq(many.out_of_range, 0);
    for (int i = 0; i < MANY; i++)
        ck_assert_msg(many.seen[i], "datagram %d missing", i);
    ck_assert_int_eq(cli.errors + srv.errors, 0);
    ck_assert_uint_eq(asyncio_transport_get_write_buffer_size(c), 0);

    close_and_wait(&cli, c);
    close_and_wait(&srv, s);
    tu_free_loop(loop);
}
END_TEST

/* ---- Errors ------------------------------------------------------------------------- */

START_TEST(error_received_reports_econnrefused_from_a_closed_port)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp cli;
    tp_init(&cli, loop);
    cli.stop_on_error = 1;
    int port = closed_udp_port();
    asyncio_transport *c = open_ep(loop, &cli, NULL, 0, "127.0.0.1", port, NULL);
    ck_assert_int_eq(asyncio_transport_sendto(c, "x", 1, NULL, 0), 0);
    tu_run(loop);
    ck_assert_int_ge(cli.errors, 1);
    ck_assert_int_eq(cli.last_error, -ECONNREFUSED);
    /* Not fatal: the endpoint stays open and usable. */
    ck_assert_int_eq(cli.lost, 0);
    ck_assert_int_eq(asyncio_transport_is_closing(c), 0);
    ck_assert_int_eq(asyncio_transport_sendto(c, "y", 1, NULL, 0), 0);
    close_and_wait(&cli, c);
    tu_free_loop(loop);
}
END_TEST

START_TEST(sendto_errors_go_to_error_received)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp srv, cli;
    tp_init(&srv, loop);
    tp_init(&cli, loop);
    asyncio_transport *s = open_ep(loop, &srv, "127.0.0.1", 0, NULL, 0, NULL);
    asyncio_transport *c = open_ep(loop, &cli, NULL, 0, "127.0.0.1", port_of(sockname_of(s)), NULL);
    size_t big = 70000;
    char *buf = calloc(1, big);
    ck_assert_ptr_nonnull(buf);
    /* Larger than any datagram. */
    ck_assert_int_eq(asyncio_transport_sendto(c, buf, big, NULL, 0), 0);
    ck_assert_int_eq(cli.errors, 1);
    ck_assert_int_eq(cli.last_error, -EMSGSIZE);
    /* One byte over IPv4's limit: the kernel's own EMSGSIZE. */
    ck_assert_int_eq(asyncio_transport_sendto(c, buf, 65508, NULL, 0), 0);
    ck_assert_int_eq(cli.errors, 2);
    ck_assert_int_eq(cli.last_error, -EMSGSIZE);
    free(buf);
    ck_assert_int_eq(asyncio_transport_is_closing(c), 0);
    ck_assert_uint_eq(asyncio_transport_get_write_buffer_size(c), 0);
    close_and_wait(&cli, c);
    close_and_wait(&srv, s);
    tu_free_loop(loop);
}
END_TEST

START_TEST(sendto_rejects_bad_arguments)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp cli, con;
    tp_init(&cli, loop);
    tp_init(&con, loop);
    asyncio_transport *c = open_ep(loop, &cli, "127.0.0.1", 0, NULL, 0, NULL);
    asyncio_transport *k = open_ep(loop, &con, NULL, 0, "127.0.0.1", closed_udp_port(), NULL);

    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(9)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(9)};
    ck_assert_int_eq(asyncio_transport_sendto(NULL, "x", 1, (struct sockaddr *)&sin, sizeof(sin)),
                     -EINVAL);
    ck_assert_int_eq(asyncio_transport_sendto(c, NULL, 1, (struct sockaddr *)&sin, sizeof(sin)),
                     -EINVAL);
    ck_assert_int_eq(asyncio_transport_sendto(c, "x", 1, (struct sockaddr *)&sin, 0), -EINVAL);
    ck_assert_int_eq(asyncio_transport_sendto(c, "x", 1, (struct sockaddr *)&sin, 4), -EINVAL);
    ck_assert_int_eq(asyncio_transport_sendto(c, "x", 1, (struct sockaddr *)&sin6, sizeof(sin6)),
                     -EINVAL);
    ck_assert_int_eq(asyncio_transport_sendto(c, "x", 1, NULL, 0), -EDESTADDRREQ);
    ck_assert_int_eq(cli.errors + con.errors, 0);

    /* Not what a datagram transport does. */
    ck_assert_int_eq(asyncio_transport_write(c, "x", 1), -ENOTSUP);
    ck_assert_int_eq(asyncio_transport_write_eof(c), -ENOTSUP);
    ck_assert_int_eq(asyncio_transport_pause_reading(c), -ENOTSUP);
    ck_assert_int_eq(asyncio_transport_resume_reading(c), -ENOTSUP);
    ck_assert_int_eq(asyncio_transport_set_write_buffer_limits(c, 100, 200), -EINVAL);
    ck_assert_int_eq(asyncio_transport_set_write_buffer_limits(c, 0, 0), 0);
    ck_assert_ptr_null(asyncio_transport_get_extra_info(c, "no-such-thing"));
    ck_assert_ptr_eq(asyncio_transport_get_protocol(c), &cli.base);

    ck_assert_int_eq(asyncio_transport_close(c), 0);
    ck_assert_int_eq(asyncio_transport_sendto(c, "x", 1, (struct sockaddr *)&sin, sizeof(sin)),
                     -EPIPE);
    close_and_wait(&cli, c);
    close_and_wait(&con, k);
    tu_free_loop(loop);
}
END_TEST

/* ---- Options ------------------------------------------------------------------------ */

START_TEST(allow_broadcast_sets_so_broadcast)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp a, b;
    tp_init(&a, loop);
    tp_init(&b, loop);
    asyncio_datagram_options o = ASYNCIO_DATAGRAM_OPTIONS_INIT;
    o.allow_broadcast = 1;
    asyncio_transport *ta = open_ep(loop, &a, "127.0.0.1", 0, NULL, 0, &o);
    asyncio_transport *tb = open_ep(loop, &b, "127.0.0.1", 0, NULL, 0, NULL);
    ck_assert_int_ne(sockopt_int(fd_of(ta), SOL_SOCKET, SO_BROADCAST), 0);
    ck_assert_int_eq(sockopt_int(fd_of(tb), SOL_SOCKET, SO_BROADCAST), 0);
    close_and_wait(&a, ta);
    close_and_wait(&b, tb);
    tu_free_loop(loop);
}
END_TEST

START_TEST(reuse_address_sets_so_reuseaddr)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp a, b, c;
    tp_init(&a, loop);
    tp_init(&b, loop);
    tp_init(&c, loop);
    asyncio_datagram_options o = ASYNCIO_DATAGRAM_OPTIONS_INIT;
    o.reuse_address = 1;
    asyncio_transport *ta = open_ep(loop, &a, "127.0.0.1", 0, NULL, 0, &o);
    ck_assert_int_ne(sockopt_int(fd_of(ta), SOL_SOCKET, SO_REUSEADDR), 0);
    /* Two UDP sockets with SO_REUSEADDR may share a port. */
    asyncio_transport *tb = open_ep(loop, &b, "127.0.0.1", port_of(sockname_of(ta)), NULL, 0, &o);
    ck_assert_int_ne(sockopt_int(fd_of(tb), SOL_SOCKET, SO_REUSEADDR), 0);
    ck_assert_int_eq(port_of(sockname_of(ta)), port_of(sockname_of(tb)));
    asyncio_transport *tc = open_ep(loop, &c, "127.0.0.1", 0, NULL, 0, NULL);
    ck_assert_int_eq(sockopt_int(fd_of(tc), SOL_SOCKET, SO_REUSEADDR), 0);
    close_and_wait(&a, ta);
    close_and_wait(&b, tb);
    close_and_wait(&c, tc);
    tu_free_loop(loop);
}
END_TEST

START_TEST(the_socket_is_a_nonblocking_close_on_exec_datagram_socket)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp a;
    tp_init(&a, loop);
    asyncio_transport *t = open_ep(loop, &a, "127.0.0.1", 0, NULL, 0, NULL);
    int fd = fd_of(t);
    ck_assert_int_eq(sockopt_int(fd, SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
    ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close_and_wait(&a, t);
    tu_free_loop(loop);
}
END_TEST

START_TEST(bind_to_a_port_in_use_fails_with_eaddrinuse_and_makes_no_protocol)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp a, b;
    tp_init(&a, loop);
    tp_init(&b, loop);
    asyncio_transport *ta = open_ep(loop, &a, "127.0.0.1", 0, NULL, 0, NULL);
    int fds = tu_count_fds();
    ck_assert_int_eq(
        open_fails(loop, tp_factory, &b, "127.0.0.1", port_of(sockname_of(ta)), NULL, 0, NULL),
        -EADDRINUSE);
    ck_assert_int_eq(b.factory_calls, 0);
    ck_assert_int_eq(tu_count_fds(), fds);
    close_and_wait(&a, ta);
    tu_free_loop(loop);
}
END_TEST

START_TEST(local_and_remote_of_different_families_fail_with_eafnosupport)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp a;
    tp_init(&a, loop);
    warm_resolver(loop);
    int fds = tu_count_fds();
    ck_assert_int_eq(open_fails(loop, tp_factory, &a, "127.0.0.1", 0, "::1", 9, NULL),
                     -EAFNOSUPPORT);
    ck_assert_int_eq(a.factory_calls, 0);
    ck_assert_int_eq(tu_count_fds(), fds);
    tu_free_loop(loop);
}
END_TEST

/* ---- Flow control, close, abort ----------------------------------------------------- */

START_TEST(close_flushes_queued_datagrams_then_calls_connection_lost_0)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp srv, cli;
    tp_init(&srv, loop);
    tp_init(&cli, loop);
    asyncio_transport *s = open_ep(loop, &srv, "127.0.0.1", 0, NULL, 0, NULL);
    asyncio_transport *c = open_ep(loop, &cli, NULL, 0, "127.0.0.1", port_of(sockname_of(s)), NULL);
    eagain_fd = fd_of(c);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(asyncio_transport_sendto(c, "0123456789", 10, NULL, 0), 0);
    ck_assert_int_ge(eagain_hits, 1);
    ck_assert_uint_eq(asyncio_transport_get_write_buffer_size(c), 30);
    ck_assert_int_eq(asyncio_transport_close(c), 0);
    ck_assert_int_eq(asyncio_transport_is_closing(c), 1);
    ck_assert_int_eq(asyncio_transport_close(c), 0); /* idempotent */

    /* While the socket refuses, the datagrams wait and the endpoint lives. */
    run_for(loop, 0.05);
    ck_assert_int_eq(cli.lost, 0);
    ck_assert_uint_eq(asyncio_transport_get_write_buffer_size(c), 30);
    ck_assert_int_eq(srv.received, 0);

    eagain_fd = -1;
    cli.stop_on_lost = 1;
    tu_run(loop);
    ck_assert_int_eq(cli.lost, 1);
    ck_assert_int_eq(cli.lost_error, 0);
    ck_assert_uint_eq(asyncio_transport_get_write_buffer_size(c), 0);
    if (srv.received < 3) {
        srv.stop_at = 3;
        tu_run(loop);
    }
    ck_assert_int_eq(srv.received, 3);
    ck_assert_int_eq(cli.errors, 0);
    asyncio_transport_unref(c);
    close_and_wait(&srv, s);
    tu_free_loop(loop);
}
END_TEST

START_TEST(pause_writing_above_high_and_resume_writing_at_low)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp srv, cli;
    tp_init(&srv, loop);
    tp_init(&cli, loop);
    asyncio_transport *s = open_ep(loop, &srv, "127.0.0.1", 0, NULL, 0, NULL);
    asyncio_transport *c = open_ep(loop, &cli, NULL, 0, "127.0.0.1", port_of(sockname_of(s)), NULL);
    ck_assert_int_eq(asyncio_transport_set_write_buffer_limits(c, 250, 100), 0);
    char buf[100] = {0};
    eagain_fd = fd_of(c);
    ck_assert_int_eq(asyncio_transport_sendto(c, buf, sizeof(buf), NULL, 0), 0);
    ck_assert_int_eq(asyncio_transport_sendto(c, buf, sizeof(buf), NULL, 0), 0);
    ck_assert_int_eq(cli.paused, 0); /* 200 <= 250 */
    ck_assert_int_eq(asyncio_transport_sendto(c, buf, sizeof(buf), NULL, 0), 0);
    ck_assert_int_eq(cli.paused, 1); /* 300 > 250 */
    ck_assert_int_eq(asyncio_transport_sendto(c, buf, sizeof(buf), NULL, 0), 0);
    ck_assert_int_eq(cli.paused, 1); /* once */
    ck_assert_uint_eq(asyncio_transport_get_write_buffer_size(c), 400);
    eagain_fd = -1;
    cli.stop_on_resume = 1;
    tu_run(loop);
    ck_assert_int_eq(cli.resumed, 1);
    ck_assert_uint_eq(asyncio_transport_get_write_buffer_size(c), 0);
    if (srv.received < 4) {
        srv.stop_at = 4;
        tu_run(loop);
    }
    ck_assert_int_eq(srv.received, 4);

    /* Lowering the high-water mark below what is queued pauses at once. */
    eagain_fd = fd_of(c);
    ck_assert_int_eq(asyncio_transport_sendto(c, buf, sizeof(buf), NULL, 0), 0);
    ck_assert_int_eq(cli.paused, 1);
    ck_assert_int_eq(asyncio_transport_set_write_buffer_limits(c, 50, 0), 0);
    ck_assert_int_eq(cli.paused, 2);
    eagain_fd = -1;
    tu_run(loop);
    ck_assert_int_eq(cli.resumed, 2);
    close_and_wait(&cli, c);
    close_and_wait(&srv, s);
    tu_free_loop(loop);
}
END_TEST

START_TEST(abort_drops_queued_datagrams_and_calls_connection_lost_0)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp srv, cli;
    tp_init(&srv, loop);
    tp_init(&cli, loop);
    asyncio_transport *s = open_ep(loop, &srv, "127.0.0.1", 0, NULL, 0, NULL);
    int fds = tu_count_fds();
    asyncio_transport *c = open_ep(loop, &cli, NULL, 0, "127.0.0.1", port_of(sockname_of(s)), NULL);
    eagain_fd = fd_of(c);
    ck_assert_int_eq(asyncio_transport_sendto(c, "a", 1, NULL, 0), 0);
    ck_assert_int_eq(asyncio_transport_sendto(c, "b", 1, NULL, 0), 0);
    ck_assert_uint_eq(asyncio_transport_get_write_buffer_size(c), 2);
    ck_assert_int_eq(asyncio_transport_abort(c), 0);
    ck_assert_int_eq(asyncio_transport_is_closing(c), 1);
    ck_assert_uint_eq(asyncio_transport_get_write_buffer_size(c), 0);
    ck_assert_int_eq(asyncio_transport_abort(c), 0);
    ck_assert_int_eq(asyncio_transport_close(c), 0);
    ck_assert_int_eq(cli.lost, 0); /* never inside the call */
    eagain_fd = -1;
    cli.stop_on_lost = 1;
    tu_run(loop);
    ck_assert_int_eq(cli.lost, 1);
    ck_assert_int_eq(cli.lost_error, 0);
    ck_assert_ptr_null(asyncio_transport_get_extra_info(c, "socket"));
    ck_assert_int_eq(tu_count_fds(), fds);
    run_for(loop, 0.05);
    ck_assert_int_eq(srv.received, 0);
    asyncio_transport_unref(c);
    close_and_wait(&srv, s);
    tu_free_loop(loop);
}
END_TEST

static void close_on_first(tp *p, const void *data, size_t len)
{
    if (p->received == 1) {
        ck_assert_int_eq(asyncio_transport_close(p->t), 0);
        ck_assert_int_eq(asyncio_transport_is_closing(p->t), 1);
    }
}

START_TEST(close_inside_datagram_received_stops_reading)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp srv, cli;
    tp_init(&srv, loop);
    tp_init(&cli, loop);
    asyncio_transport *s = open_ep(loop, &srv, "127.0.0.1", 0, NULL, 0, NULL);
    asyncio_transport *c = open_ep(loop, &cli, NULL, 0, "127.0.0.1", port_of(sockname_of(s)), NULL);
    /* Five datagrams wait in the socket when the first readiness reads. */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(asyncio_transport_sendto(c, "z", 1, NULL, 0), 0);
    srv.on_datagram = close_on_first;
    srv.stop_on_lost = 1;
    tu_run(loop);
    ck_assert_int_eq(srv.lost, 1);
    ck_assert_int_eq(srv.lost_error, 0);
    ck_assert_int_eq(srv.received, 1);
    asyncio_transport_unref(s);
    close_and_wait(&cli, c);
    tu_free_loop(loop);
}
END_TEST

/* ---- Loop close, descriptors -------------------------------------------------------- */

START_TEST(loop_close_with_open_endpoints_calls_connection_lost_eclosed_once)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    tp a, b;
    tp_init(&a, loop);
    tp_init(&b, loop);
    asyncio_transport *ta = open_ep(loop, &a, "127.0.0.1", 0, NULL, 0, NULL);
    asyncio_transport *tb = open_ep(loop, &b, "127.0.0.1", 0, NULL, 0, NULL);
    /* b's connection_lost(0) is queued, but the loop never runs it. */
    ck_assert_int_eq(asyncio_transport_close(tb), 0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(a.lost, 1);
    ck_assert_int_eq(a.lost_error, ASYNCIO_ECLOSED);
    ck_assert_int_eq(b.lost, 1);
    ck_assert_int_eq(b.lost_error, ASYNCIO_ECLOSED);
    ck_assert_int_eq(asyncio_transport_is_closing(ta), 1);
    ck_assert_int_eq(asyncio_transport_sendto(ta, "x", 1, NULL, 0), -EPIPE);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    asyncio_transport_unref(ta);
    asyncio_transport_unref(tb);
    asyncio_loop_unref(loop);
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(loop_close_during_creation_fails_the_future_with_eclosed)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    tp a;
    tp_init(&a, loop);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_datagram_endpoint(loop, tp_factory, &a, "127.0.0.1", 0,
                                                           NULL, 0, NULL, &f),
                     0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_future_done(f), 1);
    ck_assert_int_eq(asyncio_future_exception(f), ASYNCIO_ECLOSED);
    ck_assert_int_eq(a.factory_calls, 0);
    asyncio_future_unref(f);
    asyncio_loop_unref(loop);
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(no_descriptor_is_left_behind)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    warm_resolver(loop);
    int base = tu_count_fds();
    for (int round = 0; round < 5; round++) {
        tp srv, cli;
        tp_init(&srv, loop);
        tp_init(&cli, loop);
        srv.echo = 1;
        cli.stop_at = 1;
        asyncio_transport *s = open_ep(loop, &srv, "127.0.0.1", 0, NULL, 0, NULL);
        asyncio_transport *c =
            open_ep(loop, &cli, NULL, 0, "127.0.0.1", port_of(sockname_of(s)), NULL);
        ck_assert_int_eq(tu_count_fds(), base + 2);
        ck_assert_int_eq(asyncio_transport_sendto(c, "r", 1, NULL, 0), 0);
        tu_run(loop);
        close_and_wait(&cli, c);
        close_and_wait(&srv, s);
        ck_assert_int_eq(tu_count_fds(), base);
    }
    tu_free_loop(loop);
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* ---- Creation: arguments, factory, cancellation ------------------------------------- */

START_TEST(invalid_arguments_return_einval)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp a;
    tp_init(&a, loop);
    asyncio_future *f = NULL;
    asyncio_datagram_options o = ASYNCIO_DATAGRAM_OPTIONS_INIT;
    ck_assert_int_eq(asyncio_loop_create_datagram_endpoint(NULL, tp_factory, &a, "127.0.0.1", 0,
                                                           NULL, 0, NULL, &f),
                     -EINVAL);
    ck_assert_int_eq(
        asyncio_loop_create_datagram_endpoint(loop, NULL, &a, "127.0.0.1", 0, NULL, 0, NULL, &f),
        -EINVAL);
    ck_assert_int_eq(asyncio_loop_create_datagram_endpoint(loop, tp_factory, &a, "127.0.0.1", -1,
                                                           NULL, 0, NULL, &f),
                     -EINVAL);
    ck_assert_int_eq(asyncio_loop_create_datagram_endpoint(loop, tp_factory, &a, "127.0.0.1", 65536,
                                                           NULL, 0, NULL, &f),
                     -EINVAL);
    ck_assert_int_eq(asyncio_loop_create_datagram_endpoint(loop, tp_factory, &a, NULL, 0,
                                                           "127.0.0.1", 70000, NULL, &f),
                     -EINVAL);
    ck_assert_int_eq(asyncio_loop_create_datagram_endpoint(loop, tp_factory, &a, NULL, 0,
                                                           "127.0.0.1", -5, NULL, &f),
                     -EINVAL);
    /* Nothing to bind or connect, and no family. */
    ck_assert_int_eq(
        asyncio_loop_create_datagram_endpoint(loop, tp_factory, &a, NULL, 0, NULL, 0, NULL, &f),
        -EINVAL);
    ck_assert_int_eq(
        asyncio_loop_create_datagram_endpoint(loop, tp_factory, &a, NULL, 0, NULL, 0, &o, &f),
        -EINVAL);
    /* A port without its host. */
    ck_assert_int_eq(
        asyncio_loop_create_datagram_endpoint(loop, tp_factory, &a, NULL, 5, NULL, 0, &o, &f),
        -EINVAL);
    ck_assert_int_eq(asyncio_loop_create_datagram_endpoint(loop, tp_factory, &a, "127.0.0.1", 0,
                                                           NULL, 5, NULL, &f),
                     -EINVAL);
    o.family = AF_UNIX;
    ck_assert_int_eq(asyncio_loop_create_datagram_endpoint(loop, tp_factory, &a, "127.0.0.1", 0,
                                                           NULL, 0, &o, &f),
                     -EAFNOSUPPORT);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_loop_create_datagram_endpoint(loop, tp_factory, &a, "127.0.0.1", 0,
                                                           NULL, 0, NULL, &f),
                     ASYNCIO_ECLOSED);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(a.factory_calls, 0);
    asyncio_loop_unref(loop);
}
END_TEST

START_TEST(a_null_out_still_creates_the_endpoint)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp a;
    tp_init(&a, loop);
    a.stop_at = 1;
    int port = closed_udp_port();
    ck_assert_int_eq(asyncio_loop_create_datagram_endpoint(loop, tp_factory, &a, "127.0.0.1", port,
                                                           NULL, 0, NULL, NULL),
                     0);
    /* Run until connection_made, then send to it from a plain socket. */
    while (!a.made)
        run_for(loop, 0.01);
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(sendto(s, "q", 1, 0, (struct sockaddr *)&sin, sizeof(sin)), 1);
    close(s);
    tu_run(loop);
    ck_assert_int_eq(a.received, 1);
    asyncio_transport_ref(a.t);
    close_and_wait(&a, a.t);
    tu_free_loop(loop);
}
END_TEST

START_TEST(a_factory_returning_null_fails_the_future_with_econnaborted)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    warm_resolver(loop);
    int base = tu_count_fds();
    int calls = 0;
    ck_assert_int_eq(open_fails(loop, null_factory, &calls, "127.0.0.1", 0, NULL, 0, NULL),
                     -ECONNABORTED);
    ck_assert_int_eq(calls, 1);
    ck_assert_int_eq(tu_count_fds(), base);
    tu_free_loop(loop);
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(cancelling_the_future_before_resolution_makes_no_socket)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    warm_resolver(loop);
    int fds = tu_count_fds();
    tp a;
    tp_init(&a, loop);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_datagram_endpoint(loop, tp_factory, &a, "127.0.0.1", 0,
                                                           "127.0.0.1", 9, NULL, &f),
                     0);
    ck_assert_int_eq(asyncio_future_cancel(f), 1);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), -ECANCELED);
    run_for(loop, 0.05); /* whatever was in flight finishes */
    ck_assert_int_eq(a.factory_calls, 0);
    ck_assert_int_eq(a.made, 0);
    ck_assert_int_eq(tu_count_fds(), fds);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(cancelling_the_future_after_the_socket_exists_closes_it)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    warm_resolver(loop);
    int fds = tu_count_fds();
    tp a;
    tp_init(&a, loop);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_datagram_endpoint(loop, tp_factory, &a, "127.0.0.1", 0,
                                                           NULL, 0, NULL, &f),
                     0);
    a.cancel_in_factory = f; /* the socket exists when the factory runs */
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), -ECANCELED);
    if (!a.lost) {
        a.stop_on_lost = 1;
        tu_run(loop);
    }
    ck_assert_int_eq(a.factory_calls, 1);
    /* The protocol was made, so it hears both ends of its life. */
    ck_assert_int_eq(a.made, 1);
    ck_assert_int_eq(a.lost, 1);
    ck_assert_int_eq(a.lost_error, 0);
    ck_assert_int_eq(tu_count_fds(), fds);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

/* ---- Suite ------------------------------------------------------------------------- */

static int have_ipv6_loopback(void)
{
    int s = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return 0;
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    sin6.sin6_addr = in6addr_loopback;
    int ok = bind(s, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
    close(s);
    return ok;
}

static Suite *dgram_suite(void)
{
    Suite *s = suite_create("dgram");
    TCase *tc = tcase_create("echo");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, echo_between_two_endpoints_reports_the_senders_address);
    tcase_add_test(tc, connected_endpoint_sends_to_its_remote_with_a_null_address);
    tcase_add_test(tc, unbound_endpoint_of_a_family_gets_its_port_at_the_first_sendto);
    tcase_add_test(tc, an_empty_datagram_is_sent_and_received);
    tcase_add_test(tc, a_thousand_datagrams_all_arrive_exactly_once);
    suite_add_tcase(s, tc);

    if (have_ipv6_loopback()) {
        tc = tcase_create("ipv6");
        tcase_set_timeout(tc, 10);
        tcase_add_test(tc, echo_between_two_ipv6_endpoints_reports_the_senders_address);
        suite_add_tcase(s, tc);
    } else {
        fprintf(stderr, "test-dgram: no ::1 here, skipping the IPv6 cases\n");
    }

    tc = tcase_create("errors");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, error_received_reports_econnrefused_from_a_closed_port);
    tcase_add_test(tc, sendto_errors_go_to_error_received);
    tcase_add_test(tc, sendto_rejects_bad_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("options");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, allow_broadcast_sets_so_broadcast);
    tcase_add_test(tc, reuse_address_sets_so_reuseaddr);
    tcase_add_test(tc, the_socket_is_a_nonblocking_close_on_exec_datagram_socket);
    tcase_add_test(tc, bind_to_a_port_in_use_fails_with_eaddrinuse_and_makes_no_protocol);
    tcase_add_test(tc, local_and_remote_of_different_families_fail_with_eafnosupport);
    suite_add_tcase(s, tc);

    tc = tcase_create("close");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, close_flushes_queued_datagrams_then_calls_connection_lost_0);
    tcase_add_test(tc, pause_writing_above_high_and_resume_writing_at_low);
    tcase_add_test(tc, abort_drops_queued_datagrams_and_calls_connection_lost_0);
    tcase_add_test(tc, close_inside_datagram_received_stops_reading);
    tcase_add_test(tc, loop_close_with_open_endpoints_calls_connection_lost_eclosed_once);
    tcase_add_test(tc, loop_close_during_creation_fails_the_future_with_eclosed);
    tcase_add_test(tc, no_descriptor_is_left_behind);
    suite_add_tcase(s, tc);

    tc = tcase_create("create");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, invalid_arguments_return_einval);
    tcase_add_test(tc, a_null_out_still_creates_the_endpoint);
    tcase_add_test(tc, a_factory_returning_null_fails_the_future_with_econnaborted);
    tcase_add_test(tc, cancelling_the_future_before_resolution_makes_no_socket);
    tcase_add_test(tc, cancelling_the_future_after_the_socket_exists_closes_it);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(dgram_suite()); }
