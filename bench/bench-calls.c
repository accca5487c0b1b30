/* bench-calls: callbacks per second through "call soon".
 *
 * The same work on five implementations, one per process (--impl):
 *   asyncio           asyncio_loop_call_soon() from inside the callback
 *   libevent          event_active() on preallocated events from inside their
 *                     own callback; base from event_base_new() (defaults)
 *   libevent-precise  the same on a base with the library's flags
 *                     (PRECISE_TIMER | NO_CACHE_TIME)
 *   libuv             uv_idle_t handles: libuv's cheapest per-iteration
 *                     callback, an idle handle "reschedules" itself by
 *                     staying active
 *   epoll             the floor: a ring of function pointers, run in batches,
 *                     one epoll_wait(0) per batch as an event loop does
 *
 * Workloads (--workload):
 *   chain   one callback in flight: each schedules the next, N in total
 *   fanout  K (1000) in flight: each schedules one more until N have run
 *
 * libuv and the floor run the callbacks that were ready when the iteration
 * began and then poll, so a chain pays one epoll_wait per callback there.
 * libevent runs an event activated inside a callback in the same pass and
 * never polls between them.  libasyncio runs asyncio's batches but decides
 * itself how often it polls while callbacks keep coming.  So a chain
 * mostly measures the poll policy; fanout amortises the poll over 1000
 * callbacks and measures the queue.  To make libuv and the floor poll for
 * real (with an empty epoll set libuv skips the syscall), both register one
 * never-signalled wake-up fd, like the asyncio loop's threadsafe eventfd. */
#include "bench.h"

#include <asyncio.h>
#include <event2/event.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#ifdef BENCH_HAVE_LIBUV
#include <uv.h>
#endif

/* What every implementation counts: `scheduled` calls were made, `ran`
 * of them ran; the run ends when ran == n. */
static long g_n, g_ran, g_scheduled;

static void reset(long n, long k)
{
    g_n = n;
    g_ran = 0;
    g_scheduled = k;
}

/* ---- asyncio ---------------------------------------------------------------- */

static asyncio_loop *a_loop;

static void a_cb(void *arg)
{
    g_ran++;
    if (g_scheduled < g_n) {
        g_scheduled++;
        if (asyncio_loop_call_soon(a_loop, a_cb, arg, NULL) != 0)
            BENCH_DIE("asyncio_loop_call_soon failed");
    } else if (g_ran == g_n) {
        asyncio_loop_stop(a_loop);
    }
}

static double run_asyncio(long n, long k)
{
    int rc = asyncio_new_event_loop(&a_loop);
    if (rc != 0)
        BENCH_DIE("asyncio_new_event_loop: %s", asyncio_strerror(rc));
    reset(n, k);
    double t0 = bench_now();
    for (long i = 0; i < k; i++)
        if (asyncio_loop_call_soon(a_loop, a_cb, NULL, NULL) != 0)
            BENCH_DIE("asyncio_loop_call_soon failed");
    rc = asyncio_loop_run_forever(a_loop);
    double t = bench_now() - t0;
    if (rc != 0)
        BENCH_DIE("asyncio_loop_run_forever: %s", asyncio_strerror(rc));
    asyncio_loop_close(a_loop);
    asyncio_loop_unref(a_loop);
    return t;
}

/* ---- libevent --------------------------------------------------------------- */

static struct event_base *le_base;

static void le_cb(evutil_socket_t fd, short what, void *arg)
{
    g_ran++;
    if (g_scheduled < g_n) {
        g_scheduled++;
        event_active(arg, EV_TIMEOUT, 0); /* the event reactivates itself */
    } else if (g_ran == g_n) {
        event_base_loopbreak(le_base);
    }
}

static struct event_base *le_new_base(int precise)
{
    if (!precise)
        return event_base_new();
    /* The flags libasyncio creates its base with (LIBEVENT-NOTES.md). */
    struct event_config *cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NO_CACHE_TIME);
    struct event_base *b = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return b;
}

static double run_libevent(long n, long k, int precise)
{
    le_base = le_new_base(precise);
    if (le_base == NULL)
        BENCH_DIE("event_base_new failed");
    struct event **evs = calloc((size_t)k, sizeof *evs);
    if (evs == NULL)
        BENCH_DIE("out of memory");
    for (long i = 0; i < k; i++) {
        evs[i] = event_new(le_base, -1, 0, le_cb, event_self_cbarg());
        if (evs[i] == NULL)
            BENCH_DIE("event_new failed");
    }
    reset(n, k);
    double t0 = bench_now();
    for (long i = 0; i < k; i++)
        event_active(evs[i], EV_TIMEOUT, 0);
    event_base_dispatch(le_base);
    double t = bench_now() - t0;
    for (long i = 0; i < k; i++)
        event_free(evs[i]);
    free(evs);
    event_base_free(le_base);
    return t;
}

/* ---- libuv ------------------------------------------------------------------ */

#ifdef BENCH_HAVE_LIBUV
static void uv_cb(uv_idle_t *idle)
{
    g_ran++;
    if (g_scheduled < g_n)
        g_scheduled++; /* staying active is libuv's "call again" */
    else
        uv_idle_stop(idle);
    if (g_ran == g_n)
        uv_stop(idle->loop);
}

static void uv_async_nop(uv_async_t *a) { (void)a; }

static double run_libuv(long n, long k)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        BENCH_DIE("uv_loop_init failed");
    /* The wake-up fd every real loop has (see the top of the file); unref'd
     * so that it does not keep the loop alive. */
    uv_async_t wake;
    uv_async_init(&loop, &wake, uv_async_nop);
    uv_unref((uv_handle_t *)&wake);
    uv_idle_t *idles = calloc((size_t)k, sizeof *idles);
    if (idles == NULL)
        BENCH_DIE("out of memory");
    for (long i = 0; i < k; i++)
        uv_idle_init(&loop, &idles[i]);
    reset(n, k);
    double t0 = bench_now();
    for (long i = 0; i < k; i++)
        uv_idle_start(&idles[i], uv_cb);
    uv_run(&loop, UV_RUN_DEFAULT);
    double t = bench_now() - t0;
    for (long i = 0; i < k; i++)
        uv_close((uv_handle_t *)&idles[i], NULL);
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(idles);
    return t;
}
#endif

/* ---- epoll floor ------------------------------------------------------------- */

/* A hand-written loop: a power-of-two ring of (fn, arg), run in batches of
 * what was queued when the batch began, with epoll_wait(0) before each
 * batch.  Nothing else: this is what any loop that polls between batches
 * must at least cost. */
struct ep_call {
    void (*fn)(void *);
    void *arg;
};

static struct ep_call *ep_ring;
static size_t ep_mask, ep_head, ep_tail;
static int ep_stop;

static void ep_soon(void (*fn)(void *), void *arg)
{
    if (ep_tail - ep_head > ep_mask)
        BENCH_DIE("epoll ring overflow");
    ep_ring[ep_tail & ep_mask] = (struct ep_call){fn, arg};
    ep_tail++;
}

static void ep_cb(void *arg)
{
    g_ran++;
    if (g_scheduled < g_n) {
        g_scheduled++;
        ep_soon(ep_cb, arg);
    } else if (g_ran == g_n) {
        ep_stop = 1;
    }
}

static double run_epoll(long n, long k)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    int wfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (epfd < 0 || wfd < 0)
        BENCH_DIE("epoll_create1/eventfd failed");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = wfd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, wfd, &ev) != 0)
        BENCH_DIE("epoll_ctl failed");
    size_t cap = 1;
    while (cap < (size_t)k * 2)
        cap <<= 1;
    ep_ring = malloc(cap * sizeof *ep_ring);
    if (ep_ring == NULL)
        BENCH_DIE("out of memory");
    ep_mask = cap - 1;
    ep_head = ep_tail = 0;
    ep_stop = 0;
    reset(n, k);

    double t0 = bench_now();
    for (long i = 0; i < k; i++)
        ep_soon(ep_cb, NULL);
    struct epoll_event out[64];
    while (!ep_stop) {
        if (epoll_wait(epfd, out, 64, 0) < 0 && errno != EINTR)
            BENCH_DIE("epoll_wait failed");
        size_t end = ep_tail;
        while (ep_head != end) {
            struct ep_call c = ep_ring[ep_head & ep_mask];
            ep_head++;
            c.fn(c.arg);
        }
    }
    double t = bench_now() - t0;
    free(ep_ring);
    close(wfd);
    close(epfd);
    return t;
}

/* ---- main ---------------------------------------------------------------------- */

static const char *const impls[] = {
    "asyncio", "libevent", "libevent-precise",
#ifdef BENCH_HAVE_LIBUV
    "libuv",
#endif
    "epoll",
};

int main(int argc, char **argv)
{
    struct bench_opts o = {.impl = "asyncio", .workload = "chain", .k = 0};
    bench_parse(&o, argc, argv);
    if (o.list_impls) {
        for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++)
            printf("%s\n", impls[i]);
        return 0;
    }
    if (o.list_workloads) {
        printf("chain\nfanout\n");
        return 0;
    }

    long k;
    if (strcmp(o.workload, "chain") == 0)
        k = 1;
    else if (strcmp(o.workload, "fanout") == 0)
        k = o.k > 0 ? o.k : 1000;
    else
        BENCH_DIE("unknown workload %s (chain, fanout)", o.workload);
    /* A chain polls once per callback in most loops (about 1 us), so it
     * gets fewer callbacks per round than a fanout. */
    long n = o.n > 0 ? o.n : (k == 1 ? 200000 : 1000000);
    if (k > n)
        k = n;
    double min_time = (double)(o.min_ms > 0 ? o.min_ms : 200) * 1e-3;

    /* Rounds of n callbacks, each on a fresh loop, until min_time was
     * measured: a fast implementation would otherwise be timed over a few
     * milliseconds, where one interruption is a large error. */
    double t = 0, ops = 0;
    do {
        double r;
        if (strcmp(o.impl, "asyncio") == 0)
            r = run_asyncio(n, k);
        else if (strcmp(o.impl, "libevent") == 0)
            r = run_libevent(n, k, 0);
        else if (strcmp(o.impl, "libevent-precise") == 0)
            r = run_libevent(n, k, 1);
#ifdef BENCH_HAVE_LIBUV
        else if (strcmp(o.impl, "libuv") == 0)
            r = run_libuv(n, k);
#endif
        else if (strcmp(o.impl, "epoll") == 0)
            r = run_epoll(n, k);
        else
            BENCH_DIE("unknown or unavailable impl %s", o.impl);
        if (g_ran != n)
            BENCH_DIE("%s %s: ran %ld callbacks, expected %ld", o.impl, o.workload, g_ran, n);
        t += r;
        ops += (double)n;
    } while (t < min_time);
    bench_report("calls", o.workload, o.impl, ops, t);
    return 0;
}
