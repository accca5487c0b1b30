/* The event loop: one iteration, run/stop, close, and the loop object.
 *
 * An iteration (CPython's _run_once, on libevent):
 *   1. arm the loop's one evtimer for the earliest live deadline;
 *   2. poll libevent once, without blocking if callbacks are ready or a stop
 *      is pending; libevent callbacks only append handles to the ready
 *      queue (or, for the timer, do nothing at all);
 *   3. move every due timer to the ready queue;
 *   4. run exactly the handles that were ready when step 3 ended.
 * run_forever repeats that until `stopping` is set, so a stop takes effect
 * at a batch boundary and a stop before run_forever gives one
 * non-blocking pass.  event_base_loopbreak is never used: libevent forgets
 * a break issued before its loop starts.
 *
 * Owns: the event_base (unless the caller gave it), the timer and wake-up
 * events, the eventfd, every queued handle, and through `closables` every
 * other libevent object made on this loop.  All of it belongs to the
 * thread that runs the loop, except the inbox (handle.c). */
#include "internal.h"

#include <event2/event.h>
#include <math.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* While callbacks keep scheduling callbacks, libevent is not polled before
 * every batch but once every POLL_EVERY_CALLBACKS callbacks, or sooner when
 * the coarse clock has ticked (every 1-4 ms), so slow callbacks cannot
 * starve I/O.  A zero-timeout poll costs two syscalls (epoll_wait, and
 * timerfd_settime with a precise-timer base), measured at 5-10 us on these
 * VMs: with 256 a chain of call_soon ran at 0.8x libevent, with 1024 at
 * 1.6x, with 4096 no faster (doc/design.md).  Even the coarse clock costs
 * as much as a callback (a vDSO read, 6-20 ns under kvm-clock), so it is
 * read only every CLOCK_CHECK_EVERY callbacks: a storm of fast callbacks
 * polls every ~50 us, one of slow callbacks within a tick and 32 callbacks.
 * Timers are still collected every batch.  The same idea as libevent's
 * event_config_set_max_dispatch_interval. */
#ifndef POLL_EVERY_CALLBACKS
#define POLL_EVERY_CALLBACKS 1024
#endif
#ifndef CLOCK_CHECK_EVERY
#define CLOCK_CHECK_EVERY 32
#endif

static long coarse_ticks(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether a loop with callbacks ready should still poll libevent now. */
static int poll_due(asyncio_loop *loop)
{
    if (loop->ran_since_poll >= POLL_EVERY_CALLBACKS)
        return 1;
    if (loop->ran_since_poll < loop->clock_check_at)
        return 0;
    loop->clock_check_at = loop->ran_since_poll + CLOCK_CHECK_EVERY;
    return coarse_ticks() != loop->polled_at;
}

static ASYNCIO__THREAD_LOCAL asyncio_loop *running_loop;

asyncio_loop *asyncio__running_loop(void) { return running_loop; }

double asyncio__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double asyncio_loop_time(asyncio_loop *loop)
{
    if (loop == NULL)
        return NAN;
    return asyncio__now();
}

/* ---- Creation ---------------------------------------------------------------- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    /* Nothing to do here: waking the poll is the point; due timers are
     * collected after every poll. */
    asyncio_loop *loop = arg;
    loop->timer_armed = -1.0;
}

static void on_wake(evutil_socket_t fd, short what, void *arg) { asyncio__inbox_drain(arg); }

static int loop_new(struct event_base *base, int own_base, asyncio_loop **out)
{
    asyncio_loop *loop = calloc(1, sizeof(*loop));
    if (loop == NULL)
        return -ENOMEM;
    asyncio__ref_init(&loop->refs);
    loop->base = base;
    loop->own_base = own_base;
    loop->timer_armed = -1.0;
    loop->slow_callback_duration = 0.1;
    loop->wake_fd = -1;
    asyncio__list_init(&loop->closables);
    pthread_mutex_init(&loop->inbox_lock, NULL);

    int err = -ENOMEM;
    loop->timer_ev = evtimer_new(base, on_timer, loop);
    if (loop->timer_ev == NULL)
        goto fail;
    loop->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->wake_fd < 0) {
        err = -errno;
        goto fail;
    }
    loop->wake_ev = event_new(base, loop->wake_fd, EV_READ | EV_PERSIST, on_wake, loop);
    if (loop->wake_ev == NULL || event_add(loop->wake_ev, NULL) < 0)
        goto fail;
    *out = loop;
    return 0;

fail:
    if (loop->wake_ev != NULL)
        event_free(loop->wake_ev);
    if (loop->wake_fd >= 0)
        close(loop->wake_fd);
    if (loop->timer_ev != NULL)
        event_free(loop->timer_ev);
    pthread_mutex_destroy(&loop->inbox_lock);
    free(loop);
    return err;
}

/* A loop on a base of its own: precise CLOCK_MONOTONIC timers (libevent's
 * default is the coarse clock, 1-4 ms) and no cached time (a timer added
 * late in an iteration would otherwise fire early). */
int asyncio__loop_create(asyncio_loop **out)
{
    struct event_config *cfg = event_config_new();
    if (cfg == NULL)
        return -ENOMEM;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER | EVENT_BASE_FLAG_NO_CACHE_TIME);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (base == NULL)
        return -ENOMEM;
    int err = loop_new(base, 1, out);
    if (err < 0)
        event_base_free(base);
    return err;
}

int asyncio_loop_new_from_event_base(struct event_base *base, asyncio_loop **out)
{
    if (base == NULL || out == NULL)
        return -EINVAL;
    return loop_new(base, 0, out);
}

struct event_base *asyncio_loop_get_event_base(asyncio_loop *loop)
{
    if (loop == NULL || loop->closed)
        return NULL;
    return loop->base;
}

void asyncio_loop_ref(asyncio_loop *loop)
{
    if (loop != NULL)
        asyncio__ref_inc(&loop->refs);
}

void asyncio_loop_unref(asyncio_loop *loop)
{
    if (loop == NULL || !asyncio__ref_dec(&loop->refs))
        return;
    /* The last reference: nothing can be running it. */
    asyncio__ref_init(&loop->refs); /* close() may take and drop references */
    asyncio_loop_close(loop);
    if (!asyncio__ref_dec(&loop->refs))
        return; /* something taken during close keeps it alive */
    pthread_mutex_destroy(&loop->inbox_lock);
    free(loop);
}

/* ---- Closables --------------------------------------------------------------- */

void asyncio__loop_add_closable(asyncio_loop *loop, asyncio__closable *c)
{
    asyncio__list_push_back(&loop->closables, &c->link);
}

void asyncio__loop_remove_closable(asyncio__closable *c) { asyncio__list_remove(&c->link); }

/* ---- One iteration ------------------------------------------------------------- */

/* Arm the evtimer for the earliest deadline; returns 1 if a timer is
 * already due (the poll must not block). */
static int arm_timer(asyncio_loop *loop, double now)
{
    asyncio_handle *top = asyncio__heap_top(&loop->timers);
    if (top == NULL)
        return 0;
    double delay = top->when - now;
    if (delay <= 0)
        return 1;
    if (top->when == loop->timer_armed)
        return 0;
    /* Rounded up: libevent must not wake us before the deadline, or the
     * iteration finds nothing due and polls again. */
    double usec = ceil(delay * 1e6);
    if (usec > 1e6 * 86400.0 * 365) /* far enough to be "never" */
        usec = 1e6 * 86400.0 * 365;
    struct timeval tv = {(time_t)(usec / 1e6), (suseconds_t)fmod(usec, 1e6)};
    event_add(loop->timer_ev, &tv);
    loop->timer_armed = top->when;
    return 0;
}

static void collect_due_timers(asyncio_loop *loop, double now)
{
    asyncio_handle *top;
    while ((top = asyncio__heap_top(&loop->timers)) != NULL && top->when <= now) {
        asyncio__heap_remove(&loop->timers, top);
        asyncio__queue_push(&loop->ready, top); /* the heap's reference moves */
    }
}

static void run_handle(asyncio_loop *loop, asyncio_handle *h)
{
    h->loop = NULL;
    if (!h->cancelled) {
        h->ran = 1;
        double t0 = loop->debug ? asyncio__now() : 0.0;
        if (h->done_cb != NULL)
            h->done_cb(h->future, h->arg);
        else
            h->cb(h->arg);
        if (loop->debug && asyncio__now() - t0 >= loop->slow_callback_duration)
            asyncio__report(loop, "slow callback: ran longer than the slow-callback duration", 0,
                            NULL, h);
    }
    asyncio_handle_unref(h);
}

static void run_once(asyncio_loop *loop)
{
    /* The clock is read only when timers need it. */
    double now = loop->timers.len > 0 ? asyncio__now() : 0.0;
    int must_not_block = loop->ready.len > 0 || loop->stopping;
    if (loop->timers.len > 0 && arm_timer(loop, now))
        must_not_block = 1;

    if (!must_not_block || poll_due(loop)) {
        event_base_loop(loop->base, EVLOOP_ONCE | (must_not_block ? EVLOOP_NONBLOCK : 0));
        loop->ran_since_poll = 0;
        loop->clock_check_at = CLOCK_CHECK_EVERY;
        loop->polled_at = coarse_ticks();
        if (loop->timers.len > 0)
            now = asyncio__now();
    }
    if (loop->timers.len > 0)
        collect_due_timers(loop, now);

    /* Only what is ready now: callbacks scheduled by these run next time. */
    size_t n = loop->ready.len;
    loop->ran_since_poll += (unsigned)n;
    while (n-- > 0)
        run_handle(loop, asyncio__queue_pop(&loop->ready));
}

/* ---- Running ---------------------------------------------------------------- */

int asyncio_loop_run_forever(asyncio_loop *loop)
{
    ASYNCIO__CHECK_OPEN(loop);
    if (loop->running || running_loop != NULL)
        return ASYNCIO_ERUNNING;
    asyncio_loop_ref(loop); /* a callback may drop the caller's reference */
    loop->running = 1;
    running_loop = loop;
    loop->ran_since_poll = POLL_EVERY_CALLBACKS; /* the first pass polls */
    for (;;) {
        run_once(loop);
        if (loop->stopping)
            break;
    }
    loop->stopping = 0;
    loop->running = 0;
    running_loop = NULL;
    asyncio_loop_unref(loop);
    return 0;
}

static void stop_when_done(asyncio_future *f, void *arg)
{
    asyncio_loop_stop(asyncio_future_get_loop(f));
}

int asyncio_loop_run_until_complete(asyncio_loop *loop, asyncio_future *future)
{
    ASYNCIO__CHECK_OPEN(loop);
    if (future == NULL || asyncio_future_get_loop(future) != loop)
        return -EINVAL;
    if (loop->running || running_loop != NULL)
        return ASYNCIO_ERUNNING;
    int err = asyncio_future_add_done_callback(future, stop_when_done, NULL);
    if (err < 0)
        return err;
    err = asyncio_loop_run_forever(loop);
    asyncio_future_remove_done_callback(future, stop_when_done, NULL);
    if (err < 0)
        return err;
    if (!asyncio_future_done(future))
        return ASYNCIO_ESTOPPED;
    return asyncio_future_exception(future);
}

int asyncio_loop_stop(asyncio_loop *loop)
{
    ASYNCIO__CHECK_OPEN(loop);
    loop->stopping = 1;
    return 0;
}

int asyncio_loop_is_running(asyncio_loop *loop)
{
    if (loop == NULL)
        return -EINVAL;
    return loop->running;
}

int asyncio_loop_is_closed(asyncio_loop *loop)
{
    if (loop == NULL)
        return -EINVAL;
    return loop->closed;
}

/* ---- Closing ---------------------------------------------------------------- */

int asyncio_loop_close(asyncio_loop *loop)
{
    if (loop == NULL)
        return -EINVAL;
    if (loop->running)
        return ASYNCIO_ERUNNING;
    if (loop->closed)
        return 0;
    asyncio_loop_ref(loop); /* dropped handles may hold the last references */

    pthread_mutex_lock(&loop->inbox_lock);
    loop->closed = 1;
    asyncio__queue inbox = loop->inbox;
    loop->inbox.head = loop->inbox.tail = NULL;
    loop->inbox.len = 0;
    pthread_mutex_unlock(&loop->inbox_lock);

    /* Objects on the loop first: they cancel their own queued handles and
     * tell their protocols (connection_lost), so what is dropped below is
     * only what was scheduled and never ran. */
    while (!asyncio__list_empty(&loop->closables)) {
        asyncio__closable *c = asyncio__container_of(loop->closables.next, asyncio__closable, link);
        asyncio__list_remove(&c->link);
        c->close(c);
    }
    asyncio__signals_close(loop);

    asyncio_handle *h;
    while ((h = asyncio__queue_pop(&loop->ready)) != NULL)
        asyncio__handle_drop(h);
    while ((h = asyncio__queue_pop(&inbox)) != NULL)
        asyncio__handle_drop(h);
    asyncio__heap_clear(&loop->timers);

    event_free(loop->timer_ev);
    event_free(loop->wake_ev);
    loop->timer_ev = loop->wake_ev = NULL;
    pthread_mutex_lock(&loop->inbox_lock);
    close(loop->wake_fd);
    loop->wake_fd = -1;
    pthread_mutex_unlock(&loop->inbox_lock);
    if (loop->own_base) {
        /* libevent finishes freeing a bufferevent (and closes its fd) in the
         * base's next pass: give it that pass before the base goes. */
        event_base_loop(loop->base, EVLOOP_NONBLOCK);
        event_base_free(loop->base);
    }
    loop->base = NULL;

    asyncio_loop_unref(loop);
    return 0;
}
