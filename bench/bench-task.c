/* bench-task: what a task costs against the same work in callbacks.
 *
 * Two implementations of each workload (--impl):
 *   callback  plain loop callbacks and protocols
 *   task      the same written sequentially in a task
 *
 * Workloads (--workload):
 *   yield   N steps.  callback: a chain of call_soon callbacks, each
 *           scheduling the next (one callback per step).  task: one task
 *           calling asyncio_sleep(0) N times: one call_soon callback plus
 *           a switch into the task and back per step.  The ratio is the
 *           cost of one await/resume round trip against one callback.
 *   await   N futures, each completed by a call_soon callback.  callback:
 *           a done callback creates the next future; task: one task
 *           awaiting each in turn (asyncio_await: a done callback that
 *           switches into the task).
 *   echo    echo round trips per second over loopback TCP, 100 connections
 *           each sending 16 KiB and waiting for all of it to come back (as
 *           bench-echo).  The server runs in a forked child: callback is a
 *           protocol whose data_received writes the bytes back
 *           (create_server); task is a streams server whose client task
 *           loops read (64 KiB) / write / drain (start_server).  The client
 *           is a bare epoll program, the same for both.
 * yield and await repeat rounds of N (1,000,000) until --min-ms (200 ms)
 * were measured; echo runs for --min-ms (1000 ms). */
#define _GNU_SOURCE
#include "bench.h"

#include <asyncio.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static asyncio_loop *loop;
static long left;

static void new_loop(void)
{
    int rc = asyncio_new_event_loop(&loop);
    if (rc != 0)
        BENCH_DIE("asyncio_new_event_loop: %s", asyncio_strerror(rc));
}

static void free_loop(void)
{
    asyncio_loop_close(loop);
    asyncio_loop_unref(loop);
}

/* ---- yield ------------------------------------------------------------------------ */

static void chain_cb(void *arg)
{
    if (--left > 0) {
        if (asyncio_loop_call_soon(loop, chain_cb, NULL, NULL) != 0)
            BENCH_DIE("call_soon failed");
    } else {
        asyncio_loop_stop(loop);
    }
}

static int yield_task(void *arg, void **result)
{
    long n = *(long *)arg;
    for (long i = 0; i < n; i++)
        if (asyncio_sleep(0) != 0)
            BENCH_DIE("asyncio_sleep failed");
    return 0;
}

/* ---- await ------------------------------------------------------------------------ */

static void complete_cb(void *f) { asyncio_future_set_result(f, NULL, NULL); }

static asyncio_future *next_future(void)
{
    asyncio_future *f;
    if (asyncio_loop_create_future(loop, &f) != 0 ||
        asyncio_loop_call_soon(loop, complete_cb, f, NULL) != 0)
        BENCH_DIE("create_future / call_soon failed");
    return f;
}

static void done_cb(asyncio_future *f, void *arg)
{
    asyncio_future_unref(f);
    if (--left == 0) {
        asyncio_loop_stop(loop);
        return;
    }
    if (asyncio_future_add_done_callback(next_future(), done_cb, NULL) != 0)
        BENCH_DIE("add_done_callback failed");
}

static int await_task(void *arg, void **result)
{
    long n = *(long *)arg;
    for (long i = 0; i < n; i++) {
        asyncio_future *f = next_future();
        if (asyncio_await(f, NULL) != 0)
            BENCH_DIE("asyncio_await failed");
        asyncio_future_unref(f);
    }
    return 0;
}

static double run_round(const char *workload, int task, long n)
{
    new_loop();
    left = n;
    asyncio_future *t = NULL;
    double t0 = bench_now();
    int yield = strcmp(workload, "yield") == 0;
    if (task) {
        if (asyncio_loop_create_task(loop, yield ? yield_task : await_task, &n, &t) != 0)
            BENCH_DIE("create_task failed");
        if (asyncio_loop_run_until_complete(loop, t) != 0)
            BENCH_DIE("the task failed");
        asyncio_future_unref(t);
    } else {
        int rc = yield ? asyncio_loop_call_soon(loop, chain_cb, NULL, NULL)
                       : asyncio_future_add_done_callback(next_future(), done_cb, NULL);
        if (rc != 0)
            BENCH_DIE("cannot start");
        asyncio_loop_run_forever(loop);
    }
    double elapsed = bench_now() - t0;
    free_loop();
    return elapsed;
}

/* ---- echo: the servers ------------------------------------------------------------ */

#define MSG (16 * 1024)
#define CONNS 100

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
    if (p == NULL)
        return NULL;
    p->base.ops = &ep_ops;
    return &p->base;
}

static int stream_echo(asyncio_stream_reader *r, asyncio_stream_writer *w, void *arg)
{
    static char buf[64 * 1024]; /* one task runs at a time */
    ssize_t n;
    while ((n = asyncio_stream_read(r, buf, sizeof(buf))) > 0) {
        asyncio_stream_write(w, buf, (size_t)n);
        asyncio_stream_drain(w);
    }
    return asyncio_stream_close(w);
}

static void serve(int task, int lfd)
{
    new_loop();
    asyncio_server_options o = ASYNCIO_SERVER_OPTIONS_INIT;
    o.sock = lfd;
    int rc;
    if (task) {
        asyncio_set_event_loop(loop);
        rc = asyncio_start_server(stream_echo, NULL, NULL, 0, &o, NULL);
    } else {
        asyncio_future *f;
        rc = asyncio_loop_create_server(loop, ep_factory, NULL, NULL, 0, &o, &f);
        if (rc == 0)
            rc = asyncio_loop_run_until_complete(loop, f);
    }
    if (rc != 0)
        BENCH_DIE("server: %s", asyncio_strerror(rc));
    asyncio_loop_run_forever(loop);
}

/* ---- echo: the client ------------------------------------------------------------- */

typedef struct {
    int fd;
    size_t sent, got;
} conn;

static void watch(int ep, conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static double run_client(int port, double seconds)
{
    static char msg[MSG], buf[256 * 1024];
    memset(msg, 'x', sizeof(msg));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    conn *cs = calloc(CONNS, sizeof(*cs));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < CONNS; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
            BENCH_DIE("connect: %s", strerror(errno));
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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
            conn *c = evs[i].data.ptr;
            if ((evs[i].events & EPOLLOUT) && c->sent < MSG) {
                ssize_t w = send(c->fd, msg + c->sent, MSG - c->sent, MSG_NOSIGNAL);
                if (w > 0)
                    c->sent += (size_t)w;
                if (c->sent == MSG)
                    watch(ep, c, EPOLLIN);
            }
            if (evs[i].events & EPOLLIN) {
                ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
                if (r == 0 || (r < 0 && errno != EAGAIN))
                    BENCH_DIE("the server closed a connection");
                if (r > 0)
                    c->got += (size_t)r;
                if (c->got == MSG && c->sent == MSG) {
                    trips++;
                    c->got = c->sent = 0;
                    watch(ep, c, EPOLLIN | EPOLLOUT);
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

static double run_echo(int task, double seconds)
{
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
        serve(task, lfd);
        _exit(0);
    }
    close(lfd);
    double rate = run_client(ntohs(a.sin_port), seconds);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return rate;
}

int main(int argc, char **argv)
{
    struct bench_opts o = {0};
    bench_parse(&o, argc, argv);
    if (o.list_impls) {
        printf("callback\ntask\n");
        return 0;
    }
    if (o.list_workloads) {
        printf("yield\nawait\necho\n");
        return 0;
    }
    const char *impl = o.impl != NULL ? o.impl : "task";
    const char *workload = o.workload != NULL ? o.workload : "yield";
    int task = strcmp(impl, "task") == 0;
    if (!task && strcmp(impl, "callback") != 0)
        BENCH_DIE("unknown impl %s", impl);
    if (strcmp(workload, "echo") == 0) {
        double rate = run_echo(task, (o.min_ms > 0 ? (double)o.min_ms : 1000.0) / 1000.0);
        bench_report("task", workload, impl, rate, 1.0);
        return 0;
    }
    if (strcmp(workload, "yield") != 0 && strcmp(workload, "await") != 0)
        BENCH_DIE("unknown workload %s", workload);
    long n = o.n > 0 ? o.n : 1000000;
    double min = (o.min_ms > 0 ? (double)o.min_ms : 200.0) / 1000.0;
    double total = 0, ops = 0;
    while (total < min) {
        total += run_round(workload, task, n);
        ops += (double)n;
    }
    fprintf(stderr, "%s %s: %.1f ns per step\n", workload, impl, total / ops * 1e9);
    bench_report("task", workload, impl, ops, total);
    return 0;
}
