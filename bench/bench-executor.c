/* bench-executor: round trips per second through an executor.
 *
 * One empty job in flight: submit it, a worker thread runs the (empty)
 * function, the completion comes back to the loop thread, and the loop
 * submits the next one from there.  So each operation is two thread
 * hand-offs and two wake-ups -- what run_in_executor costs on top of the
 * work itself.
 *
 * Implementations (--impl):
 *   asyncio  asyncio_loop_run_in_executor() on a 4-worker thread pool; the
 *            next job is submitted from the future's done callback
 *   libuv    uv_queue_work() (libuv's pool, 4 threads by default); the next
 *            job is queued from the after_work callback
 *   epoll    the floor: one pthread blocked in read() on an eventfd; it
 *            runs the function and writes a second eventfd the main thread
 *            waits for in epoll_wait -- no queue, no allocation, no loop
 *
 * Workload (--workload): roundtrip (rounds of N = 20,000 jobs, repeated
 * until --min-ms, default 200 ms, were measured; one warm-up job before
 * each round starts the worker threads untimed). */
#include "bench.h"

#include <asyncio.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#ifdef BENCH_HAVE_LIBUV
#include <uv.h>
#endif

/* The same count for every implementation: the run ends when done == n. */
static long g_n, g_done;

/* The work: nothing, so that only the round trip is measured. */
static volatile long g_work;

/* ---- asyncio ------------------------------------------------------------------ */

static asyncio_loop *a_loop;
static asyncio_executor *a_ex;

static int a_work(void *arg, void **result)
{
    (void)arg;
    (void)result;
    g_work++;
    return 0;
}

static void a_submit(void);

static void a_done(asyncio_future *f, void *arg)
{
    (void)arg;
    if (asyncio_future_exception(f) != 0)
        BENCH_DIE("asyncio: job failed");
    if (++g_done < g_n)
        a_submit();
    else
        asyncio_loop_stop(a_loop);
}

static void a_submit(void)
{
    asyncio_future *f;
    int rc = asyncio_loop_run_in_executor(a_loop, a_ex, a_work, NULL, &f);
    if (rc != 0)
        BENCH_DIE("asyncio_loop_run_in_executor: %s", asyncio_strerror(rc));
    if (asyncio_future_add_done_callback(f, a_done, NULL) != 0)
        BENCH_DIE("asyncio_future_add_done_callback failed");
    asyncio_future_unref(f);
}

static double run_asyncio(long n)
{
    int rc = asyncio_new_event_loop(&a_loop);
    if (rc != 0)
        BENCH_DIE("asyncio_new_event_loop: %s", asyncio_strerror(rc));
    if ((rc = asyncio_thread_pool_executor_new(4, &a_ex)) != 0)
        BENCH_DIE("asyncio_thread_pool_executor_new: %s", asyncio_strerror(rc));
    g_n = 1; /* warm-up: the first worker starts */
    g_done = 0;
    a_submit();
    asyncio_loop_run_forever(a_loop);

    g_n = n;
    g_done = 0;
    double t0 = bench_now();
    a_submit();
    rc = asyncio_loop_run_forever(a_loop);
    double t = bench_now() - t0;
    if (rc != 0)
        BENCH_DIE("asyncio_loop_run_forever: %s", asyncio_strerror(rc));
    asyncio_executor_shutdown(a_ex, 1);
    asyncio_executor_unref(a_ex);
    asyncio_loop_close(a_loop);
    asyncio_loop_unref(a_loop);
    return t;
}

/* ---- libuv --------------------------------------------------------------------- */

#ifdef BENCH_HAVE_LIBUV
static uv_work_t uv_req;

static void uv_work(uv_work_t *req)
{
    (void)req;
    g_work++;
}

static void uv_after(uv_work_t *req, int status)
{
    if (status != 0)
        BENCH_DIE("libuv: job failed");
    if (++g_done < g_n && uv_queue_work(req->loop, &uv_req, uv_work, uv_after) != 0)
        BENCH_DIE("uv_queue_work failed");
}

static double run_libuv(long n)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        BENCH_DIE("uv_loop_init failed");
    g_n = 1; /* warm-up: libuv starts its pool on first use */
    g_done = 0;
    uv_queue_work(&loop, &uv_req, uv_work, uv_after);
    uv_run(&loop, UV_RUN_DEFAULT);

    g_n = n;
    g_done = 0;
    double t0 = bench_now();
    if (uv_queue_work(&loop, &uv_req, uv_work, uv_after) != 0)
        BENCH_DIE("uv_queue_work failed");
    uv_run(&loop, UV_RUN_DEFAULT);
    double t = bench_now() - t0;
    uv_loop_close(&loop);
    return t;
}
#endif

/* ---- epoll floor ----------------------------------------------------------------- */

static int ep_to_worker, ep_to_main;

static void *ep_worker(void *arg)
{
    (void)arg;
    for (;;) {
        uint64_t v;
        if (read(ep_to_worker, &v, sizeof v) != sizeof v) {
            if (errno == EINTR)
                continue;
            BENCH_DIE("epoll: worker read failed");
        }
        if (v >= 1000000) /* the stop signal */
            return NULL;
        g_work++;
        uint64_t one = 1;
        if (write(ep_to_main, &one, sizeof one) != sizeof one)
            BENCH_DIE("epoll: worker write failed");
    }
}

static void ep_send(uint64_t v)
{
    if (write(ep_to_worker, &v, sizeof v) != sizeof v)
        BENCH_DIE("epoll: write failed");
}

static double run_epoll(long n)
{
    ep_to_worker = eventfd(0, EFD_CLOEXEC); /* blocking: the worker sleeps in read */
    ep_to_main = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ep_to_worker < 0 || ep_to_main < 0 || epfd < 0)
        BENCH_DIE("eventfd/epoll_create1 failed");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ep_to_main};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, ep_to_main, &ev) != 0)
        BENCH_DIE("epoll_ctl failed");
    pthread_t worker;
    if (pthread_create(&worker, NULL, ep_worker, NULL) != 0)
        BENCH_DIE("pthread_create failed");

    double t0 = 0;
    for (long round = 0; round < 2; round++) {
        /* Round 0 is the warm-up job. */
        g_n = round == 0 ? 1 : n;
        g_done = 0;
        t0 = bench_now();
        ep_send(1);
        while (g_done < g_n) {
            struct epoll_event out;
            int k = epoll_wait(epfd, &out, 1, -1);
            if (k < 0 && errno != EINTR)
                BENCH_DIE("epoll_wait failed");
            if (k <= 0)
                continue;
            uint64_t v;
            if (read(ep_to_main, &v, sizeof v) != sizeof v)
                continue;
            g_done += (long)v;
            if (g_done < g_n)
                ep_send(1);
        }
    }
    double t = bench_now() - t0;
    ep_send(1000000);
    pthread_join(worker, NULL);
    close(epfd);
    close(ep_to_main);
    close(ep_to_worker);
    return t;
}

/* ---- main -------------------------------------------------------------------------- */

static const char *const impls[] = {
    "asyncio",
#ifdef BENCH_HAVE_LIBUV
    "libuv",
#endif
    "epoll",
};

int main(int argc, char **argv)
{
    struct bench_opts o = {.impl = "asyncio", .workload = "roundtrip"};
    bench_parse(&o, argc, argv);
    if (o.list_impls) {
        for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++)
            printf("%s\n", impls[i]);
        return 0;
    }
    if (o.list_workloads) {
        printf("roundtrip\n");
        return 0;
    }
    if (strcmp(o.workload, "roundtrip") != 0)
        BENCH_DIE("unknown workload %s (roundtrip)", o.workload);
    long n = o.n > 0 ? o.n : 20000;
    double min_time = (double)(o.min_ms > 0 ? o.min_ms : 200) * 1e-3;

    double t = 0, ops = 0;
    do {
        double r;
        if (strcmp(o.impl, "asyncio") == 0)
            r = run_asyncio(n);
#ifdef BENCH_HAVE_LIBUV
        else if (strcmp(o.impl, "libuv") == 0)
            r = run_libuv(n);
#endif
        else if (strcmp(o.impl, "epoll") == 0)
            r = run_epoll(n);
        else
            BENCH_DIE("unknown or unavailable impl %s", o.impl);
        if (g_done != n)
            BENCH_DIE("%s: %ld round trips, expected %ld", o.impl, g_done, n);
        t += r;
        ops += (double)n;
    } while (t < min_time);
    bench_report("executor", o.workload, o.impl, ops, t);
    return 0;
}
