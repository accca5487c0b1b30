/* bench-echo: echo round trips per second over loopback TCP.
 *
 * Workload "pingpong": C connections (100) each send a 16 KiB message and
 * wait for all of it to come back before sending the next, for a fixed
 * time (--min-ms, default 1000 ms); the result is round trips per second.
 * The client is the same for every server: a bare epoll program in the
 * parent process.  The server runs in a forked child, one per --impl:
 *   asyncio   a libasyncio protocol whose data_received writes the bytes
 *             back (connections accepted by an event on the loop's base and
 *             wrapped with asyncio_transport_new_from_bufferevent, i.e. the
 *             library's socket transport)
 *   libevent  a plain socket bufferevent echo: read callback moves the
 *             input buffer to the output buffer
 *   libuv     uv_read_start + uv_write of each read (when built with libuv)
 *   epoll     the floor: level-triggered epoll, recv of up to 256 KiB,
 *             send at once, the rest queued until EPOLLOUT
 * Client and server get one core each on a two-core machine. */
#define _GNU_SOURCE
#include "bench.h"

#include <asyncio.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef BENCH_HAVE_LIBUV
#include <uv.h>
#endif

#define MSG (16 * 1024)
#define CONNS 100
#define RBUF (256 * 1024)

static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int accept_one(int lfd)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0)
        nodelay(fd);
    return fd;
}

/* ---- asyncio ---------------------------------------------------------------- */

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

static asyncio_loop *a_loop;

static void a_accept(evutil_socket_t lfd, short what, void *arg)
{
    int fd;
    while ((fd = accept_one(lfd)) >= 0) {
        struct bufferevent *bev =
            bufferevent_socket_new(asyncio_loop_get_event_base(a_loop), fd, BEV_OPT_CLOSE_ON_FREE);
        echo_proto *p = calloc(1, sizeof(*p));
        p->base.ops = &ep_ops;
        if (bev == NULL || asyncio_transport_new_from_bufferevent(a_loop, bev, &p->base, NULL) < 0)
            BENCH_DIE("asyncio: cannot wrap a connection");
    }
}

static void serve_asyncio(int lfd)
{
    if (asyncio_new_event_loop(&a_loop) != 0)
        BENCH_DIE("asyncio_new_event_loop failed");
    struct event *ev =
        event_new(asyncio_loop_get_event_base(a_loop), lfd, EV_READ | EV_PERSIST, a_accept, NULL);
    event_add(ev, NULL);
    asyncio_loop_run_forever(a_loop);
}

/* ---- libevent ------------------------------------------------------------------ */

static void l_read(struct bufferevent *bev, void *arg)
{
    bufferevent_write_buffer(bev, bufferevent_get_input(bev));
}
static void l_event(struct bufferevent *bev, short what, void *arg) { bufferevent_free(bev); }

static void l_accept(evutil_socket_t lfd, short what, void *arg)
{
    int fd;
    while ((fd = accept_one(lfd)) >= 0) {
        struct bufferevent *bev = bufferevent_socket_new(arg, fd, BEV_OPT_CLOSE_ON_FREE);
        bufferevent_setcb(bev, l_read, NULL, l_event, NULL);
        bufferevent_enable(bev, EV_READ | EV_WRITE);
    }
}

static void serve_libevent(int lfd)
{
    struct event_base *base = event_base_new();
    struct event *ev = event_new(base, lfd, EV_READ | EV_PERSIST, l_accept, base);
    event_add(ev, NULL);
    event_base_dispatch(base);
}

/* ---- libuv ---------------------------------------------------------------------- */

#ifdef BENCH_HAVE_LIBUV
typedef struct {
    uv_write_t req;
    char *buf;
} u_write;

static void u_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    buf->base = malloc(65536);
    buf->len = 65536;
}
static void u_written(uv_write_t *req, int status)
{
    u_write *w = (u_write *)req;
    free(w->buf);
    free(w);
}
static void u_closed(uv_handle_t *h) { free(h); }
static void u_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n < 0) {
        free(buf->base);
        uv_close((uv_handle_t *)s, u_closed);
        return;
    }
    if (n == 0) {
        free(buf->base);
        return;
    }
    u_write *w = malloc(sizeof(*w));
    w->buf = buf->base;
    uv_buf_t out = uv_buf_init(buf->base, (unsigned)n);
    uv_write(&w->req, s, &out, 1, u_written);
}
static void u_conn(uv_stream_t *server, int status)
{
    uv_tcp_t *c = malloc(sizeof(*c));
    uv_tcp_init(server->loop, c);
    if (uv_accept(server, (uv_stream_t *)c) != 0) {
        uv_close((uv_handle_t *)c, u_closed);
        return;
    }
    uv_tcp_nodelay(c, 1);
    uv_read_start((uv_stream_t *)c, u_alloc, u_read);
}
static void serve_libuv(int lfd)
{
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    uv_tcp_init(loop, &server);
    if (uv_tcp_open(&server, lfd) != 0 || uv_listen((uv_stream_t *)&server, 128, u_conn) != 0)
        BENCH_DIE("libuv: cannot listen");
    uv_run(loop, UV_RUN_DEFAULT);
}
#endif

/* ---- epoll ------------------------------------------------------------------------- */

typedef struct {
    int fd;
    char *pend; /* bytes not sent yet */
    size_t plen, pcap;
} e_conn;

static void serve_epoll(int lfd)
{
    static char buf[RBUF];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event evs[128];
    for (;;) {
        int n = epoll_wait(ep, evs, 128, -1);
        for (int i = 0; i < n; i++) {
            e_conn *c = evs[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept_one(lfd)) >= 0) {
                    c = calloc(1, sizeof(*c));
                    c->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            if ((evs[i].events & EPOLLOUT) && c->plen > 0) {
                ssize_t w = send(c->fd, c->pend, c->plen, MSG_NOSIGNAL);
                if (w > 0) {
                    memmove(c->pend, c->pend + w, c->plen - (size_t)w);
                    c->plen -= (size_t)w;
                }
                if (c->plen == 0) {
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
                }
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
                if (r <= 0) {
                    if (r < 0 && errno == EAGAIN)
                        continue;
                    close(c->fd);
                    free(c->pend);
                    free(c);
                    continue;
                }
                ssize_t w = 0;
                if (c->plen == 0) {
                    w = send(c->fd, buf, (size_t)r, MSG_NOSIGNAL);
                    if (w < 0)
                        w = 0;
                }
                if (w < r) {
                    size_t rest = (size_t)(r - w);
                    if (c->plen + rest > c->pcap) {
                        c->pcap = (c->plen + rest) * 2;
                        c->pend = realloc(c->pend, c->pcap);
                    }
                    memcpy(c->pend + c->plen, buf + w, rest);
                    c->plen += rest;
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
                }
            }
        }
    }
}

/* ---- The client ----------------------------------------------------------------------- */

typedef struct {
    int fd;
    size_t sent, got;
} c_conn;

static double run_client(int port, double seconds)
{
    static char msg[MSG], buf[RBUF];
    memset(msg, 'x', sizeof(msg));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    c_conn *cs = calloc(CONNS, sizeof(*cs));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < CONNS; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
            BENCH_DIE("connect: %s", strerror(errno));
        nodelay(fd);
        fcntl(fd, F_SETFL, O_NONBLOCK);
        cs[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    long trips = 0;
    double t0 = bench_now(), end = t0 + seconds;
    struct epoll_event evs[CONNS];
    while (bench_now() < end) {
        int n = epoll_wait(ep, evs, CONNS, 100);
        for (int i = 0; i < n; i++) {
            c_conn *c = evs[i].data.ptr;
            if ((evs[i].events & EPOLLOUT) && c->sent < MSG) {
                ssize_t w = send(c->fd, msg + c->sent, MSG - c->sent, MSG_NOSIGNAL);
                if (w > 0)
                    c->sent += (size_t)w;
                if (c->sent == MSG) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (evs[i].events & EPOLLIN) {
                ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
                if (r == 0 || (r < 0 && errno != EAGAIN))
                    BENCH_DIE("server closed a connection");
                if (r > 0)
                    c->got += (size_t)r;
                if (c->got == MSG && c->sent == MSG) {
                    trips++;
                    c->got = c->sent = 0;
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
        }
    }
    double t = bench_now() - t0;
    for (int i = 0; i < CONNS; i++)
        close(cs[i].fd);
    free(cs);
    close(ep);
    return (double)trips / t;
}

static const char *const impls[] = {"asyncio", "libevent",
#ifdef BENCH_HAVE_LIBUV
                                    "libuv",
#endif
                                    "epoll"};

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

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 1024) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
        BENCH_DIE("listen: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    pid_t pid = fork();
    if (pid < 0)
        BENCH_DIE("fork: %s", strerror(errno));
    if (pid == 0) {
        if (strcmp(impl, "asyncio") == 0)
            serve_asyncio(lfd);
        else if (strcmp(impl, "libevent") == 0)
            serve_libevent(lfd);
#ifdef BENCH_HAVE_LIBUV
        else if (strcmp(impl, "libuv") == 0)
            serve_libuv(lfd);
#endif
        else if (strcmp(impl, "epoll") == 0)
            serve_epoll(lfd);
        else
            BENCH_DIE("unknown impl %s", impl);
        _exit(0);
    }
    close(lfd);
    double rate = run_client(ntohs(a.sin_port), seconds);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    bench_report("echo", "pingpong", impl, rate, 1.0);
    return 0;
}
