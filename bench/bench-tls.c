/* bench-tls: TLS echo round trips per second over loopback.
 *
 * Workload "pingpong": 10 connections each send a 16 KiB message over TLS
 * and wait for all of it to come back before sending the next, for a fixed
 * time (--min-ms, default 1000 ms), timed from the moment every handshake
 * is done.  The client is the same for every server: OpenSSL bufferevents
 * on a libevent base of its own, in the parent process.  The server runs
 * in a forked child, one per --impl:
 *   asyncio   create_server with an SSL_CTX; a protocol whose data_received
 *             writes the bytes back (the library's TLS transport)
 *   libevent  the same server on raw bufferevent_openssl, written as
 *             LIBEVENT-NOTES says one should (BEV_OPT_DEFER_CALLBACKS):
 *             the read callback moves the input buffer to the output
 * Both use one certificate (P-256, made in memory at start) and OpenSSL's
 * defaults (TLS 1.3 here).  Client and server get one core each on a
 * two-core machine. */
#define _GNU_SOURCE
#include "bench.h"

#include <asyncio.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define MSG (16 * 1024)
#define CONNS 10

/* A self-signed P-256 certificate, in memory. */
static SSL_CTX *make_server_ctx(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (key == NULL || x == NULL)
        BENCH_DIE("cannot make a key");
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    if (X509_sign(x, key, EVP_sha256()) == 0)
        BENCH_DIE("cannot sign");
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || SSL_CTX_use_certificate(ctx, x) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, key) != 1)
        BENCH_DIE("cannot make the server context");
    X509_free(x);
    EVP_PKEY_free(key);
    return ctx;
}

static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- asyncio -------------------------------------------------------------------- */

typedef struct {
    asyncio_protocol base;
    asyncio_transport *t;
} echo_proto;

static void ep_made(asyncio_protocol *p, asyncio_transport *t) { ((echo_proto *)(void *)p)->t = t; }
static void ep_data(asyncio_protocol *p, const void *d, size_t n)
{
    asyncio_transport_write(((echo_proto *)(void *)p)->t, d, n);
}
static void ep_lost(asyncio_protocol *p, int err) { free(p); }
static const asyncio_protocol_ops ep_ops = {
    .connection_made = ep_made, .data_received = ep_data, .connection_lost = ep_lost};

static asyncio_protocol *ep_factory(void *arg)
{
    echo_proto *p = calloc(1, sizeof(*p));
    p->base.ops = &ep_ops;
    return &p->base;
}

static void serve_asyncio(int lfd, SSL_CTX *ctx)
{
    asyncio_loop *loop;
    if (asyncio_new_event_loop(&loop) != 0)
        BENCH_DIE("asyncio_new_event_loop failed");
    asyncio_server_options so = ASYNCIO_SERVER_OPTIONS_INIT;
    so.sock = lfd;
    so.ssl = ctx;
    asyncio_future *f;
    if (asyncio_loop_create_server(loop, ep_factory, NULL, NULL, 0, &so, &f) != 0 ||
        asyncio_loop_run_until_complete(loop, f) != 0)
        BENCH_DIE("asyncio: create_server failed");
    asyncio_loop_run_forever(loop);
}

/* ---- libevent ------------------------------------------------------------------- */

static struct event_base *l_base;

static void l_read(struct bufferevent *bev, void *arg)
{
    bufferevent_write_buffer(bev, bufferevent_get_input(bev));
}

static void l_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_free(bev);
}

static void l_accept(evutil_socket_t lfd, short what, void *arg)
{
    SSL_CTX *ctx = arg;
    int fd;
    while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        nodelay(fd);
        struct bufferevent *bev =
            bufferevent_openssl_socket_new(l_base, fd, SSL_new(ctx), BUFFEREVENT_SSL_ACCEPTING,
                                           BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (bev == NULL)
            BENCH_DIE("libevent: bufferevent_openssl_socket_new failed");
        bufferevent_setcb(bev, l_read, NULL, l_event, NULL);
        bufferevent_enable(bev, EV_READ | EV_WRITE);
    }
}

static void serve_libevent(int lfd, SSL_CTX *ctx)
{
    l_base = event_base_new();
    struct event *ev = event_new(l_base, lfd, EV_READ | EV_PERSIST, l_accept, ctx);
    event_add(ev, NULL);
    event_base_dispatch(l_base);
}

/* ---- The client ------------------------------------------------------------------------ */

struct client {
    struct event_base *base;
    int connected;
    long trips;
    int timing;
    double t0;
};

struct cconn {
    struct client *cl;
    struct bufferevent *bev;
    size_t got;
};

static char msg[MSG];

static void c_read(struct bufferevent *bev, void *arg)
{
    struct cconn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    evbuffer_drain(in, n);
    c->got += n;
    if (c->got >= MSG) {
        c->got -= MSG;
        if (c->cl->timing)
            c->cl->trips++;
        bufferevent_write(bev, msg, MSG);
    }
}

static void c_event(struct bufferevent *bev, short what, void *arg)
{
    struct cconn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (++c->cl->connected == CONNS) {
            c->cl->timing = 1;
            c->cl->t0 = bench_now();
        }
        bufferevent_write(bev, msg, MSG);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        BENCH_DIE("the server closed a connection");
}

static double run_client(int port, double seconds)
{
    memset(msg, 'x', sizeof(msg));
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    struct client cl = {.base = event_base_new()};
    struct cconn cs[CONNS];
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < CONNS; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
            BENCH_DIE("connect: %s", strerror(errno));
        nodelay(fd);
        evutil_make_socket_nonblocking(fd);
        cs[i].cl = &cl;
        cs[i].got = 0;
        cs[i].bev = bufferevent_openssl_socket_new(
            cl.base, fd, SSL_new(cctx), BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
        bufferevent_setcb(cs[i].bev, c_read, NULL, c_event, &cs[i]);
        bufferevent_enable(cs[i].bev, EV_READ | EV_WRITE);
    }
    while (!cl.timing)
        event_base_loop(cl.base, EVLOOP_ONCE);
    while (bench_now() - cl.t0 < seconds)
        event_base_loop(cl.base, EVLOOP_ONCE);
    double t = bench_now() - cl.t0;
    for (int i = 0; i < CONNS; i++)
        bufferevent_free(cs[i].bev);
    event_base_free(cl.base);
    SSL_CTX_free(cctx);
    return (double)cl.trips / t;
}

static const char *const impls[] = {"asyncio", "libevent"};

int main(int argc, char **argv)
{
    struct bench_opts o = {0};
    bench_parse(&o, argc, argv);
    if (o.list_impls) {
        for (size_t i = 0; i < sizeof(impls) / sizeof(impls[0]); i++)
            printf("%s\n", impls[i]);
        return 0;
    }
    if (o.list_workloads) {
        printf("pingpong\n");
        return 0;
    }
    const char *impl = o.impl != NULL ? o.impl : "asyncio";
    if (o.workload != NULL && strcmp(o.workload, "pingpong") != 0)
        BENCH_DIE("unknown workload %s", o.workload);
    double seconds = (o.min_ms > 0 ? (double)o.min_ms : 1000.0) / 1000.0;

    SSL_CTX *sctx = make_server_ctx();
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 128) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
        BENCH_DIE("listen: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    pid_t pid = fork();
    if (pid < 0)
        BENCH_DIE("fork: %s", strerror(errno));
    if (pid == 0) {
        if (strcmp(impl, "asyncio") == 0)
            serve_asyncio(lfd, sctx);
        else if (strcmp(impl, "libevent") == 0)
            serve_libevent(lfd, sctx);
        else
            BENCH_DIE("unknown impl %s", impl);
        _exit(0);
    }
    close(lfd);
    double t0 = bench_now();
    double rate = run_client(ntohs(a.sin_port), seconds);
    double wall = bench_now() - t0;
    kill(pid, SIGKILL);
    struct rusage ru;
    wait4(pid, NULL, 0, &ru);
    /* The server's CPU per round trip: steadier than the rate on a busy
     * machine (handshakes included, spread over the run). */
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
    fprintf(stderr, "echo-tls %s: server CPU %.1f us per round trip\n", impl,
            cpu / (rate * wall) * 1e6);
    SSL_CTX_free(sctx);
    bench_report("echo-tls", "pingpong", impl, rate, 1.0);
    return 0;
}
