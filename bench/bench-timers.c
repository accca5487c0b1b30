/* bench-timers: timer operations per second.
 *
 * Workloads (--workload):
 *   cancel  P (100,000) timers pending with deadlines 1..100 s, then time N
 *           (1,000,000) times "schedule a timer 1..100 s out, cancel it".
 *           Every B (10,000) operations each implementation runs one
 *           non-blocking loop iteration, inside the timed region: that is
 *           where a lazily cancelling heap (asyncio's) is compacted, so the
 *           cost of cancelling includes it.
 *   fire    P timers due 0..50 ms from now; run the loop until all fired.
 *           Reported per CPU second (scheduling + running): the wall time
 *           is at least 50 ms by construction, whatever the loop costs.
 *
 * Implementations (--impl):
 *   asyncio           call_later + handle_cancel + handle_unref
 *   asyncio-at        the same with call_at on a deadline computed from one
 *                     loop.time() per batch: the heap and handle costs
 *                     without the CLOCK_MONOTONIC read of every call_later
 *                     (default libevent reads the coarse clock per
 *                     evtimer_add, libevent-precise the precise one)
 *   libevent          evtimer_add / event_del on preallocated events, the
 *                     cost of libevent's own min-heap; event_base_new()
 *   libevent-precise  the same with the library's base flags
 *                     (PRECISE_TIMER | NO_CACHE_TIME)
 *   libevent-new      evtimer_new + evtimer_add + event_free per timer: an
 *                     allocation per timer, as call_later has
 *   libuv             uv_timer_start / uv_timer_stop on preallocated handles
 *   epoll             the floor: a plain binary min-heap of (deadline, seq)
 *                     with a lazy-delete flag, compacted like asyncio's;
 *                     epoll_wait only to sleep in "fire"
 *
 * The delays come from one seeded PRNG, so every implementation builds the
 * same heap. */
#include "bench.h"

#include <asyncio.h>
#include <event2/event.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <unistd.h>
#ifdef BENCH_HAVE_LIBUV
#include <uv.h>
#endif

struct params {
    int fire; /* 0: cancel workload, 1: fire workload */
    long pending;
    long n;
    long batch;
    uint64_t seed;
};

static long g_fired;  /* timers that ran */
static long g_target; /* fire: stop when g_fired reaches it */

/* The delay of the next timer: 1..100 s for cancel, 0..50 ms for fire. */
static double next_delay(const struct params *p, uint64_t *rng)
{
    return p->fire ? bench_uniform(rng, 0.0, 0.050) : bench_uniform(rng, 1.0, 100.0);
}

static struct timeval to_tv(double d)
{
    struct timeval tv;
    tv.tv_sec = (time_t)d;
    tv.tv_usec = (suseconds_t)((d - (double)tv.tv_sec) * 1e6);
    return tv;
}

/* ---- asyncio ---------------------------------------------------------------- */

static asyncio_loop *a_loop;

static void a_nop(void *arg) { (void)arg; }
static void a_stop(void *arg) { asyncio_loop_stop(arg); }

static void a_fired(void *arg)
{
    if (++g_fired == g_target)
        asyncio_loop_stop(a_loop);
}

/* One non-blocking iteration, the asyncio way. */
static void a_spin(void)
{
    if (asyncio_loop_call_soon(a_loop, a_stop, a_loop, NULL) != 0 ||
        asyncio_loop_run_forever(a_loop) != 0)
        BENCH_DIE("asyncio: one iteration failed");
}

static double run_asyncio(const struct params *p, int at)
{
    uint64_t rng = p->seed;
    int rc = asyncio_new_event_loop(&a_loop);
    if (rc != 0)
        BENCH_DIE("asyncio_new_event_loop: %s", asyncio_strerror(rc));
    double t;
    if (p->fire) {
        g_target = p->pending;
        double t0 = bench_cpu_now();
        double base = asyncio_loop_time(a_loop);
        for (long i = 0; i < p->pending; i++)
            if ((at ? asyncio_loop_call_at(a_loop, base + next_delay(p, &rng), a_fired, NULL, NULL)
                    : asyncio_loop_call_later(a_loop, next_delay(p, &rng), a_fired, NULL, NULL)) !=
                0)
                BENCH_DIE("asyncio_loop_call_later/at failed");
        if (asyncio_loop_run_forever(a_loop) != 0)
            BENCH_DIE("asyncio_loop_run_forever failed");
        t = bench_cpu_now() - t0;
    } else {
        for (long i = 0; i < p->pending; i++)
            if (asyncio_loop_call_later(a_loop, next_delay(p, &rng), a_nop, NULL, NULL) != 0)
                BENCH_DIE("asyncio_loop_call_later failed");
        a_spin();
        double t0 = bench_now();
        double base = asyncio_loop_time(a_loop);
        for (long i = 0; i < p->n; i++) {
            asyncio_handle *h;
            int err = at ? asyncio_loop_call_at(a_loop, base + next_delay(p, &rng), a_nop, NULL, &h)
                         : asyncio_loop_call_later(a_loop, next_delay(p, &rng), a_nop, NULL, &h);
            if (err != 0)
                BENCH_DIE("asyncio_loop_call_later/at failed");
            asyncio_handle_cancel(h);
            asyncio_handle_unref(h);
            if ((i + 1) % p->batch == 0) {
                a_spin();
                base = asyncio_loop_time(a_loop);
            }
        }
        t = bench_now() - t0;
    }
    asyncio_loop_close(a_loop);
    asyncio_loop_unref(a_loop);
    return t;
}

/* ---- libevent --------------------------------------------------------------- */

static struct event_base *le_base;

static void le_nop(evutil_socket_t fd, short what, void *arg) { (void)arg; }

static void le_fired(evutil_socket_t fd, short what, void *arg) { g_fired++; }

static void le_fired_free(evutil_socket_t fd, short what, void *arg)
{
    g_fired++;
    event_free(arg);
}

static struct event_base *le_new_base(int precise)
{
    if (!precise)
        return event_base_new();
    struct event_config *cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NO_CACHE_TIME);
    struct event_base *b = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return b;
}

/* precise: the library's base flags; alloc: an event_new/event_free per
 * timer instead of preallocated events. */
static double run_libevent(const struct params *p, int precise, int alloc)
{
    uint64_t rng = p->seed;
    le_base = le_new_base(precise);
    if (le_base == NULL)
        BENCH_DIE("event_base_new failed");
    /* The pending timers (cancel) or the timers to fire (fire, unless
     * alloc), made before the clock starts: a libevent user embeds or
     * preallocates its events. */
    long npre = p->fire && alloc ? 0 : p->pending;
    struct event **pre = calloc((size_t)npre + 1, sizeof *pre);
    if (pre == NULL)
        BENCH_DIE("out of memory");
    for (long i = 0; i < npre; i++)
        if ((pre[i] = evtimer_new(le_base, p->fire ? le_fired : le_nop, NULL)) == NULL)
            BENCH_DIE("evtimer_new failed");

    double t;
    if (p->fire) {
        double t0 = bench_cpu_now();
        for (long i = 0; i < p->pending; i++) {
            struct timeval tv = to_tv(next_delay(p, &rng));
            struct event *ev =
                alloc ? evtimer_new(le_base, le_fired_free, event_self_cbarg()) : pre[i];
            if (ev == NULL || evtimer_add(ev, &tv) != 0)
                BENCH_DIE("evtimer_add failed");
        }
        event_base_dispatch(le_base); /* returns when no event is left */
        t = bench_cpu_now() - t0;
    } else {
        for (long i = 0; i < p->pending; i++) {
            struct timeval tv = to_tv(next_delay(p, &rng));
            evtimer_add(pre[i], &tv);
        }
        struct event *op = evtimer_new(le_base, le_nop, NULL);
        double t0 = bench_now();
        for (long i = 0; i < p->n; i++) {
            struct timeval tv = to_tv(next_delay(p, &rng));
            if (alloc) {
                struct event *ev = evtimer_new(le_base, le_nop, NULL);
                if (ev == NULL || evtimer_add(ev, &tv) != 0)
                    BENCH_DIE("evtimer_add failed");
                event_free(ev); /* event_free deletes first */
            } else {
                if (evtimer_add(op, &tv) != 0)
                    BENCH_DIE("evtimer_add failed");
                event_del(op);
            }
            if ((i + 1) % p->batch == 0)
                event_base_loop(le_base, EVLOOP_NONBLOCK);
        }
        t = bench_now() - t0;
        event_free(op);
    }
    for (long i = 0; i < npre; i++)
        event_free(pre[i]);
    free(pre);
    event_base_free(le_base);
    if (p->fire && g_fired != p->pending)
        BENCH_DIE("libevent: %ld of %ld timers fired", g_fired, p->pending);
    return t;
}

/* ---- libuv ------------------------------------------------------------------ */

#ifdef BENCH_HAVE_LIBUV
static void uv_nop(uv_timer_t *t) { (void)t; }
static void uv_fired(uv_timer_t *t) { g_fired++; }

static uint64_t to_ms(double d) { return (uint64_t)(d * 1000.0); }

static double run_libuv(const struct params *p)
{
    uint64_t rng = p->seed;
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        BENCH_DIE("uv_loop_init failed");
    uv_timer_t *pre = calloc((size_t)p->pending, sizeof *pre);
    if (pre == NULL)
        BENCH_DIE("out of memory");
    for (long i = 0; i < p->pending; i++)
        uv_timer_init(&loop, &pre[i]);
    uv_timer_t op;
    uv_timer_init(&loop, &op);

    double t;
    if (p->fire) {
        double t0 = bench_cpu_now();
        uv_update_time(&loop);
        for (long i = 0; i < p->pending; i++)
            uv_timer_start(&pre[i], uv_fired, to_ms(next_delay(p, &rng)), 0);
        uv_run(&loop, UV_RUN_DEFAULT); /* returns when no timer is left */
        t = bench_cpu_now() - t0;
    } else {
        for (long i = 0; i < p->pending; i++)
            uv_timer_start(&pre[i], uv_nop, to_ms(next_delay(p, &rng)), 0);
        double t0 = bench_now();
        for (long i = 0; i < p->n; i++) {
            uv_timer_start(&op, uv_nop, to_ms(next_delay(p, &rng)), 0);
            uv_timer_stop(&op);
            if ((i + 1) % p->batch == 0)
                uv_run(&loop, UV_RUN_NOWAIT);
        }
        t = bench_now() - t0;
    }
    for (long i = 0; i < p->pending; i++)
        uv_close((uv_handle_t *)&pre[i], NULL);
    uv_close((uv_handle_t *)&op, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(pre);
    if (p->fire && g_fired != p->pending)
        BENCH_DIE("libuv: %ld of %ld timers fired", g_fired, p->pending);
    return t;
}
#endif

/* ---- epoll floor ------------------------------------------------------------- */

/* A timer the user holds: cancelling only sets the flag; the heap entry
 * goes when it reaches the top or at compaction.  Nodes are recycled
 * through a free list, as a real loop would pool them. */
struct tnode {
    int cancelled;
    void (*cb)(void *);
    void *arg;
    struct tnode *next_free;
};

struct hent {
    double when;
    uint64_t seq;
    struct tnode *node;
};

static struct hent *h_v;
static size_t h_len, h_cap, h_cancelled;
static uint64_t h_seq;
static struct tnode *h_free;

static int h_less(const struct hent *a, const struct hent *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void h_sift_down(size_t i)
{
    struct hent e = h_v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h_len)
            break;
        if (c + 1 < h_len && h_less(&h_v[c + 1], &h_v[c]))
            c++;
        if (!h_less(&h_v[c], &e))
            break;
        h_v[i] = h_v[c];
        i = c;
    }
    h_v[i] = e;
}

static struct tnode *h_push(double when, void (*cb)(void *), void *arg)
{
    struct tnode *n = h_free;
    if (n != NULL)
        h_free = n->next_free;
    else if ((n = malloc(sizeof *n)) == NULL)
        BENCH_DIE("out of memory");
    *n = (struct tnode){0, cb, arg, NULL};
    if (h_len == h_cap) {
        h_cap = h_cap ? 2 * h_cap : 1024;
        if ((h_v = realloc(h_v, h_cap * sizeof *h_v)) == NULL)
            BENCH_DIE("out of memory");
    }
    struct hent e = {when, h_seq++, n};
    size_t i = h_len++;
    while (i > 0 && h_less(&e, &h_v[(i - 1) / 2])) {
        h_v[i] = h_v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h_v[i] = e;
    return n;
}

static void h_release(struct tnode *n)
{
    n->next_free = h_free;
    h_free = n;
}

static struct tnode *h_pop(void)
{
    struct tnode *n = h_v[0].node;
    h_v[0] = h_v[--h_len];
    if (h_len > 0)
        h_sift_down(0);
    return n;
}

/* The floor's loop iteration, minus the callbacks: drop cancelled timers at
 * the top, and rebuild the heap when most of it is cancelled (CPython's
 * rule, which asyncio implementations follow). */
static void h_tidy(void)
{
    while (h_len > 0 && h_v[0].node->cancelled) {
        h_release(h_pop());
        h_cancelled--;
    }
    if (h_len > 100 && h_cancelled * 2 > h_len) {
        size_t j = 0;
        for (size_t i = 0; i < h_len; i++) {
            if (h_v[i].node->cancelled)
                h_release(h_v[i].node);
            else
                h_v[j++] = h_v[i];
        }
        h_len = j;
        h_cancelled = 0;
        for (size_t i = h_len / 2; i-- > 0;)
            h_sift_down(i);
    }
}

static void ep_nop(void *arg) { (void)arg; }
static void ep_fired(void *arg) { g_fired++; }

static double run_epoll(const struct params *p)
{
    uint64_t rng = p->seed;
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    int wfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = wfd};
    if (epfd < 0 || wfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, wfd, &ev) != 0)
        BENCH_DIE("epoll setup failed");
    struct epoll_event out[64];
    double t;
    if (p->fire) {
        double t0 = bench_cpu_now();
        double now = bench_now();
        for (long i = 0; i < p->pending; i++)
            h_push(now + next_delay(p, &rng), ep_fired, NULL);
        while (h_len > 0) {
            now = bench_now();
            while (h_len > 0 && h_v[0].when <= now) {
                struct tnode *n = h_pop();
                n->cb(n->arg);
                h_release(n);
            }
            if (h_len == 0)
                break;
            /* epoll_wait counts milliseconds: round up, never wake early. */
            double d = (h_v[0].when - now) * 1000.0;
            int ms = (int)d;
            if (ms < d)
                ms++;
            if (epoll_wait(epfd, out, 64, ms) < 0 && errno != EINTR)
                BENCH_DIE("epoll_wait failed");
        }
        t = bench_cpu_now() - t0;
    } else {
        /* The floor reads the clock once per iteration, as libuv does. */
        double now = bench_now();
        for (long i = 0; i < p->pending; i++)
            h_push(now + next_delay(p, &rng), ep_nop, NULL);
        double t0 = bench_now();
        for (long i = 0; i < p->n; i++) {
            struct tnode *n = h_push(now + next_delay(p, &rng), ep_nop, NULL);
            n->cancelled = 1;
            h_cancelled++;
            if ((i + 1) % p->batch == 0) {
                if (epoll_wait(epfd, out, 64, 0) < 0 && errno != EINTR)
                    BENCH_DIE("epoll_wait failed");
                now = bench_now();
                h_tidy();
            }
        }
        t = bench_now() - t0;
    }
    close(wfd);
    close(epfd);
    if (p->fire && g_fired != p->pending)
        BENCH_DIE("epoll: %ld of %ld timers fired", g_fired, p->pending);
    return t;
}

/* ---- main ---------------------------------------------------------------------- */

static const char *const impls[] = {
    "asyncio", "asyncio-at", "libevent", "libevent-precise", "libevent-new",
#ifdef BENCH_HAVE_LIBUV
    "libuv",
#endif
    "epoll",
};

int main(int argc, char **argv)
{
    struct bench_opts o = {.impl = "asyncio", .workload = "cancel", .seed = 12345};
    bench_parse(&o, argc, argv);
    if (o.list_impls) {
        for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++)
            printf("%s\n", impls[i]);
        return 0;
    }
    if (o.list_workloads) {
        printf("cancel\nfire\n");
        return 0;
    }

    struct params p = {
        .pending = o.pending > 0 ? o.pending : 100000,
        .n = o.n > 0 ? o.n : 1000000,
        .batch = o.batch > 0 ? o.batch : 10000,
        .seed = o.seed ? o.seed : 12345,
    };
    if (strcmp(o.workload, "fire") == 0)
        p.fire = 1;
    else if (strcmp(o.workload, "cancel") != 0)
        BENCH_DIE("unknown workload %s (cancel, fire)", o.workload);
    g_fired = 0;

    double t;
    if (strcmp(o.impl, "asyncio") == 0)
        t = run_asyncio(&p, 0);
    else if (strcmp(o.impl, "asyncio-at") == 0)
        t = run_asyncio(&p, 1);
    else if (strcmp(o.impl, "libevent") == 0)
        t = run_libevent(&p, 0, 0);
    else if (strcmp(o.impl, "libevent-precise") == 0)
        t = run_libevent(&p, 1, 0);
    else if (strcmp(o.impl, "libevent-new") == 0)
        t = run_libevent(&p, 0, 1);
#ifdef BENCH_HAVE_LIBUV
    else if (strcmp(o.impl, "libuv") == 0)
        t = run_libuv(&p);
#endif
    else if (strcmp(o.impl, "epoll") == 0)
        t = run_epoll(&p);
    else
        BENCH_DIE("unknown or unavailable impl %s", o.impl);

    if (p.fire && g_fired != p.pending)
        BENCH_DIE("%s fire: %ld of %ld timers fired", o.impl, g_fired, p.pending);
    bench_report("timers", o.workload, o.impl, (double)(p.fire ? p.pending : p.n), t);
    return 0;
}
