/* The event loop: running, stopping, closing, the clock,
 * run_until_complete, NULL arguments, libevent interop and fd leaks. */
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

/* ---- run_forever and stop ------------------------------------------------- */

static int ran;

static void count_cb(void *arg)
{
    (void)arg;
    ran++;
}

START_TEST(run_forever_returns_0_after_stop)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_call_soon(loop, count_cb, NULL, NULL), 0);
    tu_call_soon_stop(loop);
    ck_assert_int_eq(asyncio_loop_run_forever(loop), 0);
    ck_assert_int_eq(ran, 1);
    ck_assert_int_eq(asyncio_loop_is_running(loop), 0);
    tu_free_loop(loop);
}
END_TEST

START_TEST(run_forever_can_run_again_after_stop)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(asyncio_loop_call_soon(loop, count_cb, NULL, NULL), 0);
        tu_call_soon_stop(loop);
        tu_run(loop);
        ck_assert_int_eq(ran, i + 1);
    }
    tu_free_loop(loop);
}
END_TEST

/* Callbacks queued ahead of stop's caller's batch: a = stop, b = record. */
struct stop_ctx {
    asyncio_loop *loop;
    tu_recorder rec;
};

static void stop_then_record_cb(void *arg)
{
    struct stop_ctx *c = arg;
    tu_rec_push(&c->rec, 1);
    ck_assert_int_eq(asyncio_loop_stop(c->loop), 0);
}

static void record_2_cb(void *arg)
{
    struct stop_ctx *c = arg;
    tu_rec_push(&c->rec, 2);
}

static void record_3_and_stop_cb(void *arg)
{
    struct stop_ctx *c = arg;
    tu_rec_push(&c->rec, 3);
    ck_assert_int_eq(asyncio_loop_stop(c->loop), 0);
}

START_TEST(stop_runs_callbacks_scheduled_before_it)
{
    struct stop_ctx c = {tu_new_guarded_loop(), {0}};
    tu_rec_init(&c.rec);
    ck_assert_int_eq(asyncio_loop_call_soon(c.loop, stop_then_record_cb, &c, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(c.loop, record_2_cb, &c, NULL), 0);
    tu_run(c.loop);
    static const int expected[] = {1, 2};
    tu_rec_expect(&c.rec, expected, 2);
    tu_rec_free(&c.rec);
    tu_free_loop(c.loop);
}
END_TEST

static void stop_then_schedule_3_cb(void *arg)
{
    struct stop_ctx *c = arg;
    tu_rec_push(&c->rec, 1);
    ck_assert_int_eq(asyncio_loop_stop(c->loop), 0);
    /* Scheduled after stop: must wait for the next run_forever. */
    ck_assert_int_eq(asyncio_loop_call_soon(c->loop, record_3_and_stop_cb, c, NULL), 0);
}

START_TEST(callbacks_scheduled_after_stop_run_on_the_next_run_forever)
{
    struct stop_ctx c = {tu_new_guarded_loop(), {0}};
    tu_rec_init(&c.rec);
    ck_assert_int_eq(asyncio_loop_call_soon(c.loop, stop_then_schedule_3_cb, &c, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(c.loop, record_2_cb, &c, NULL), 0);
    tu_run(c.loop);
    static const int first[] = {1, 2};
    tu_rec_expect(&c.rec, first, 2);

    tu_run(c.loop);
    static const int second[] = {1, 2, 3};
    tu_rec_expect(&c.rec, second, 3);
    tu_rec_free(&c.rec);
    tu_free_loop(c.loop);
}
END_TEST

static void fail_cb(void *arg) { ck_abort_msg("%s", (const char *)arg); }

START_TEST(stop_before_run_forever_gives_one_nonblocking_iteration)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_call_later(loop, 30, fail_cb, "far timer ran", NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, count_cb, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_loop_stop(loop), 0);
    double t0 = tu_now();
    tu_run(loop);
    double elapsed = tu_now() - t0;
    ck_assert_msg(elapsed < 1.0, "run_forever after stop took %.3f s", elapsed);
    ck_assert_int_eq(ran, 1);
    tu_free_loop(loop);
}
END_TEST

START_TEST(stop_before_run_forever_is_consumed_by_that_run)
{
    /* The stop request applies to one run only: the next run_forever
     * runs until its own stop. */
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_stop(loop), 0);
    tu_run(loop);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.05, count_cb, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.06, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
    ck_assert_int_eq(ran, 1);
    tu_free_loop(loop);
}
END_TEST

/* ---- Running inside a running loop --------------------------------------- */

struct nest_ctx {
    asyncio_loop *loop;
    asyncio_loop *other;
    asyncio_future *fut;
    int rc;
    int rc2;
};

static void run_self_cb(void *arg)
{
    struct nest_ctx *c = arg;
    c->rc = asyncio_loop_run_forever(c->loop);
    ck_assert_int_eq(asyncio_loop_stop(c->loop), 0);
}

START_TEST(run_forever_inside_a_callback_of_the_same_loop_returns_erunning)
{
    struct nest_ctx c = {tu_new_guarded_loop(), NULL, NULL, 1, 1};
    ck_assert_int_eq(asyncio_loop_call_soon(c.loop, run_self_cb, &c, NULL), 0);
    tu_run(c.loop);
    ck_assert_int_eq(c.rc, ASYNCIO_ERUNNING);
    tu_free_loop(c.loop);
}
END_TEST

static void run_until_complete_self_cb(void *arg)
{
    struct nest_ctx *c = arg;
    c->rc = asyncio_loop_run_until_complete(c->loop, c->fut);
    ck_assert_int_eq(asyncio_loop_stop(c->loop), 0);
}

START_TEST(run_until_complete_inside_a_callback_of_the_same_loop_returns_erunning)
{
    struct nest_ctx c = {tu_new_guarded_loop(), NULL, NULL, 1, 1};
    ck_assert_int_eq(asyncio_loop_create_future(c.loop, &c.fut), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(c.loop, run_until_complete_self_cb, &c, NULL), 0);
    tu_run(c.loop);
    ck_assert_int_eq(c.rc, ASYNCIO_ERUNNING);
    asyncio_future_unref(c.fut);
    tu_free_loop(c.loop);
}
END_TEST

static void run_other_cb(void *arg)
{
    struct nest_ctx *c = arg;
    c->rc = asyncio_loop_run_forever(c->other);
    c->rc2 = asyncio_loop_run_until_complete(c->other, c->fut);
    ck_assert_int_eq(asyncio_loop_is_running(c->other), 0);
    ck_assert_int_eq(asyncio_loop_stop(c->loop), 0);
}

START_TEST(running_another_loop_inside_a_callback_returns_erunning)
{
    struct nest_ctx c = {tu_new_guarded_loop(), tu_new_guarded_loop(), NULL, 1, 1};
    ck_assert_int_eq(asyncio_loop_create_future(c.other, &c.fut), 0);
    /* If the nested run were allowed, this would end it. */
    tu_call_soon_stop(c.other);
    ck_assert_int_eq(asyncio_loop_call_soon(c.loop, run_other_cb, &c, NULL), 0);
    tu_run(c.loop);
    ck_assert_int_eq(c.rc, ASYNCIO_ERUNNING);
    ck_assert_int_eq(c.rc2, ASYNCIO_ERUNNING);
    asyncio_future_unref(c.fut);
    tu_free_loop(c.other);
    tu_free_loop(c.loop);
}
END_TEST

/* ---- is_running, close, is_closed ---------------------------------------- */

static void check_running_cb(void *arg)
{
    struct nest_ctx *c = arg;
    c->rc = asyncio_loop_is_running(c->loop);
    ck_assert_int_eq(asyncio_loop_stop(c->loop), 0);
}

START_TEST(is_running_is_1_inside_a_callback_and_0_outside)
{
    struct nest_ctx c = {tu_new_guarded_loop(), NULL, NULL, -1, -1};
    ck_assert_int_eq(asyncio_loop_is_running(c.loop), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(c.loop, check_running_cb, &c, NULL), 0);
    tu_run(c.loop);
    ck_assert_int_eq(c.rc, 1);
    ck_assert_int_eq(asyncio_loop_is_running(c.loop), 0);
    tu_free_loop(c.loop);
}
END_TEST

static void close_self_cb(void *arg)
{
    struct nest_ctx *c = arg;
    c->rc = asyncio_loop_close(c->loop);
    c->rc2 = asyncio_loop_is_closed(c->loop);
    ck_assert_int_eq(asyncio_loop_stop(c->loop), 0);
}

START_TEST(close_while_running_returns_erunning)
{
    struct nest_ctx c = {tu_new_guarded_loop(), NULL, NULL, 1, -1};
    ck_assert_int_eq(asyncio_loop_call_soon(c.loop, close_self_cb, &c, NULL), 0);
    tu_run(c.loop);
    ck_assert_int_eq(c.rc, ASYNCIO_ERUNNING);
    ck_assert_int_eq(c.rc2, 0);
    ck_assert_int_eq(asyncio_loop_is_closed(c.loop), 0);
    tu_free_loop(c.loop);
}
END_TEST

START_TEST(is_closed_is_0_before_close_and_1_after)
{
    asyncio_loop *loop = tu_new_loop();
    ck_assert_int_eq(asyncio_loop_is_closed(loop), 0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_loop_is_closed(loop), 1);
    asyncio_loop_unref(loop);
}
END_TEST

START_TEST(close_is_idempotent)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_loop_is_closed(loop), 1);
    asyncio_loop_unref(loop);
}
END_TEST

START_TEST(calls_on_a_closed_loop_return_eclosed)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_future(loop, &f), 0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);

    asyncio_handle *h = NULL;
    ck_assert_int_eq(asyncio_loop_call_soon(loop, count_cb, NULL, &h), ASYNCIO_ECLOSED);
    ck_assert_ptr_null(h);
    ck_assert_int_eq(asyncio_loop_call_soon_threadsafe(loop, count_cb, NULL, &h), ASYNCIO_ECLOSED);
    ck_assert_ptr_null(h);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.01, count_cb, NULL, &h), ASYNCIO_ECLOSED);
    ck_assert_ptr_null(h);
    ck_assert_int_eq(asyncio_loop_call_at(loop, asyncio_loop_time(loop), count_cb, NULL, &h),
                     ASYNCIO_ECLOSED);
    ck_assert_ptr_null(h);
    ck_assert_int_eq(asyncio_loop_run_forever(loop), ASYNCIO_ECLOSED);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), ASYNCIO_ECLOSED);
    asyncio_future *g = NULL;
    ck_assert_int_eq(asyncio_loop_create_future(loop, &g), ASYNCIO_ECLOSED);
    ck_assert_ptr_null(g);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(loop, SIGUSR1, count_cb, NULL),
                     ASYNCIO_ECLOSED);
    ck_assert_int_eq(ran, 0);

    asyncio_future_unref(f);
    asyncio_loop_unref(loop);
}
END_TEST

START_TEST(closing_drops_pending_calls_and_their_handles_report_not_run)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_handle *soon = NULL, *later = NULL, *ts = NULL;
    ck_assert_int_eq(asyncio_loop_call_soon(loop, count_cb, NULL, &soon), 0);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.001, count_cb, NULL, &later), 0);
    ck_assert_int_eq(asyncio_loop_call_soon_threadsafe(loop, count_cb, NULL, &ts), 0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    /* The loop's memory outlives close while we hold it; the handles
     * must not call anything. */
    ck_assert_int_eq(ran, 0);
    /* Cancelling a dropped handle is harmless. */
    ck_assert_int_eq(asyncio_handle_cancel(soon), 0);
    ck_assert_int_eq(asyncio_handle_cancel(later), 0);
    ck_assert_int_eq(asyncio_handle_cancel(ts), 0);
    asyncio_loop_unref(loop);
    /* Handles the user still holds stay valid after the loop is gone. */
    ck_assert_int_eq(asyncio_handle_cancel(soon), 0);
    asyncio_handle_unref(soon);
    asyncio_handle_unref(later);
    asyncio_handle_unref(ts);
    ck_assert_int_eq(ran, 0);
}
END_TEST

static int destroyed;

static void destroy_cb(void *p)
{
    (void)p;
    destroyed++;
}

static void never_done_cb(asyncio_future *f, void *arg)
{
    (void)f;
    (void)arg;
    ck_abort_msg("done callback ran after close");
}

START_TEST(closing_releases_pending_callbacks_and_what_they_hold)
{
    /* A scheduled done callback holds its future.  Close must drop it, so
     * the future is freed (and its result destroyed) once we let go. */
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_future(loop, &f), 0);
    ck_assert_int_eq(asyncio_future_add_done_callback(f, never_done_cb, NULL), 0);
    ck_assert_int_eq(asyncio_future_set_result(f, &destroyed, destroy_cb), 0);
    asyncio_future_unref(f);
    ck_assert_int_eq(destroyed, 0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(destroyed, 1);
    asyncio_loop_unref(loop);
    ck_assert_int_eq(destroyed, 1);
}
END_TEST

/* ---- The clock ------------------------------------------------------------ */

START_TEST(loop_time_is_monotonic)
{
    asyncio_loop *loop = tu_new_loop();
    double prev = asyncio_loop_time(loop);
    for (int i = 0; i < 100000; i++) {
        double t = asyncio_loop_time(loop);
        ck_assert_msg(t >= prev, "time went back from %.9f to %.9f", prev, t);
        prev = t;
    }
    tu_free_loop(loop);
}
END_TEST

START_TEST(loop_time_follows_clock_monotonic)
{
    asyncio_loop *loop = tu_new_loop();
    double a = tu_now();
    double t = asyncio_loop_time(loop);
    double b = tu_now();
    ck_assert_msg(t >= a - 0.001 && t <= b + 0.001, "loop time %.6f outside [%.6f, %.6f]", t, a, b);
    tu_busy_wait(0.05);
    double t2 = asyncio_loop_time(loop);
    ck_assert_msg(t2 - t >= 0.049 && t2 - t < 1.0, "loop time advanced %.6f in 0.05 s", t2 - t);
    tu_free_loop(loop);
}
END_TEST

/* ---- run_until_complete ---------------------------------------------------- */

struct fut_ctx {
    asyncio_future *f;
    int error;
};

static void complete_cb(void *arg)
{
    struct fut_ctx *c = arg;
    if (c->error == 0)
        ck_assert_int_eq(asyncio_future_set_result(c->f, (void *)(intptr_t)7, NULL), 0);
    else if (c->error == -ECANCELED)
        ck_assert_int_eq(asyncio_future_cancel(c->f), 1);
    else
        ck_assert_int_eq(asyncio_future_set_exception(c->f, c->error), 0);
}

static int run_until_completed_with(int error, int delayed)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct fut_ctx c = {NULL, error};
    ck_assert_int_eq(asyncio_loop_create_future(loop, &c.f), 0);
    if (delayed)
        ck_assert_int_eq(asyncio_loop_call_later(loop, 0.01, complete_cb, &c, NULL), 0);
    else
        ck_assert_int_eq(asyncio_loop_call_soon(loop, complete_cb, &c, NULL), 0);
    int rc = asyncio_loop_run_until_complete(loop, c.f);
    ck_assert_int_eq(asyncio_future_done(c.f), 1);
    ck_assert_int_eq(asyncio_loop_is_running(loop), 0);
    if (error == 0) {
        void *r = NULL;
        ck_assert_int_eq(asyncio_future_result(c.f, &r), 0);
        ck_assert_int_eq((intptr_t)r, 7);
    } else {
        ck_assert_int_eq(asyncio_future_exception(c.f), error);
    }
    asyncio_future_unref(c.f);
    tu_free_loop(loop);
    return rc;
}

START_TEST(run_until_complete_returns_0_for_a_result)
{
    ck_assert_int_eq(run_until_completed_with(0, 0), 0);
    ck_assert_int_eq(run_until_completed_with(0, 1), 0);
}
END_TEST

START_TEST(run_until_complete_returns_the_future_error)
{
    ck_assert_int_eq(run_until_completed_with(-ECONNREFUSED, 0), -ECONNREFUSED);
    ck_assert_int_eq(run_until_completed_with(ASYNCIO_ESSL, 1), ASYNCIO_ESSL);
}
END_TEST

START_TEST(run_until_complete_returns_ecanceled_for_a_cancelled_future)
{
    ck_assert_int_eq(run_until_completed_with(-ECANCELED, 0), -ECANCELED);
}
END_TEST

START_TEST(run_until_complete_of_a_done_future_returns_at_once)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_future(loop, &f), 0);
    ck_assert_int_eq(asyncio_future_set_result(f, NULL, NULL), 0);
    double t0 = tu_now();
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
    ck_assert(tu_now() - t0 < 1.0);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(run_until_complete_returns_estopped_when_stop_ends_the_run_first)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_future(loop, &f), 0);
    tu_call_soon_stop(loop);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), ASYNCIO_ESTOPPED);
    ck_assert_int_eq(asyncio_future_done(f), 0);
    ck_assert_int_eq(asyncio_loop_is_running(loop), 0);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(run_until_complete_rejects_a_future_of_another_loop)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_loop *other = tu_new_guarded_loop();
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_future(other, &f), 0);
    ck_assert_int_eq(asyncio_future_set_result(f, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), -EINVAL);
    asyncio_future_unref(f);
    tu_free_loop(other);
    tu_free_loop(loop);
}
END_TEST

/* ---- NULL arguments -------------------------------------------------------- */

static void done_nop(asyncio_future *f, void *arg)
{
    (void)f;
    (void)arg;
}

START_TEST(null_loop_arguments_return_einval)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_future(loop, &f), 0);
    asyncio_handle *h = NULL;
    asyncio_future *g = NULL;

    ck_assert_int_eq(asyncio_loop_run_forever(NULL), -EINVAL);
    ck_assert_int_eq(asyncio_loop_run_until_complete(NULL, f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_stop(NULL), -EINVAL);
    ck_assert_int_eq(asyncio_loop_close(NULL), -EINVAL);
    ck_assert_int_eq(asyncio_loop_call_soon(NULL, count_cb, NULL, &h), -EINVAL);
    ck_assert_int_eq(asyncio_loop_call_soon_threadsafe(NULL, count_cb, NULL, &h), -EINVAL);
    ck_assert_int_eq(asyncio_loop_call_later(NULL, 1, count_cb, NULL, &h), -EINVAL);
    ck_assert_int_eq(asyncio_loop_call_at(NULL, 1, count_cb, NULL, &h), -EINVAL);
    ck_assert_ptr_null(h);
    ck_assert_int_eq(asyncio_loop_create_future(NULL, &g), -EINVAL);
    ck_assert_ptr_null(g);
    ck_assert_int_eq(asyncio_loop_set_exception_handler(NULL, NULL, NULL), -EINVAL);
    ck_assert_int_eq(asyncio_loop_set_debug(NULL, 1), -EINVAL);
    ck_assert_int_eq(asyncio_loop_set_slow_callback_duration(NULL, 1), -EINVAL);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(NULL, SIGUSR1, count_cb, NULL), -EINVAL);
    ck_assert_int_eq(asyncio_loop_remove_signal_handler(NULL, SIGUSR1), -EINVAL);
    ck_assert_ptr_null(asyncio_loop_get_event_base(NULL));

    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(null_loop_in_status_queries_returns_einval)
{
    ck_assert_int_eq(asyncio_loop_is_running(NULL), -EINVAL);
    ck_assert_int_eq(asyncio_loop_is_closed(NULL), -EINVAL);
    ck_assert_int_eq(asyncio_loop_get_debug(NULL), -EINVAL);
}
END_TEST

START_TEST(null_callbacks_return_einval)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_future(loop, &f), 0);
    asyncio_handle *h = NULL;
    ck_assert_int_eq(asyncio_loop_call_soon(loop, NULL, NULL, &h), -EINVAL);
    ck_assert_int_eq(asyncio_loop_call_soon_threadsafe(loop, NULL, NULL, &h), -EINVAL);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0, NULL, NULL, &h), -EINVAL);
    ck_assert_int_eq(asyncio_loop_call_at(loop, 0, NULL, NULL, &h), -EINVAL);
    ck_assert_ptr_null(h);
    ck_assert_int_eq(asyncio_future_add_done_callback(f, NULL, NULL), -EINVAL);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(loop, SIGUSR1, NULL, NULL), -EINVAL);
    /* Nothing was scheduled: one iteration runs nothing and does not crash. */
    tu_call_soon_stop(loop);
    tu_run(loop);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(null_out_pointers_for_new_objects_return_einval)
{
    asyncio_loop *loop = tu_new_loop();
    ck_assert_int_eq(asyncio_loop_create_future(loop, NULL), -EINVAL);
    ck_assert_int_eq(asyncio_new_event_loop(NULL), -EINVAL);
    ck_assert_int_eq(asyncio_get_event_loop(NULL), -EINVAL);
    struct event_base *base = event_base_new();
    ck_assert_ptr_nonnull(base);
    ck_assert_int_eq(asyncio_loop_new_from_event_base(base, NULL), -EINVAL);
    asyncio_loop *l2 = NULL;
    ck_assert_int_eq(asyncio_loop_new_from_event_base(NULL, &l2), -EINVAL);
    ck_assert_ptr_null(l2);
    event_base_free(base);
    tu_free_loop(loop);
}
END_TEST

START_TEST(null_handle_arguments_return_einval)
{
    ck_assert_int_eq(asyncio_handle_cancel(NULL), -EINVAL);
    ck_assert_int_eq(asyncio_handle_cancelled(NULL), -EINVAL);
}
END_TEST

START_TEST(null_future_arguments_return_einval)
{
    void *r = NULL;
    ck_assert_int_eq(asyncio_future_set_result(NULL, NULL, NULL), -EINVAL);
    ck_assert_int_eq(asyncio_future_set_exception(NULL, -EIO), -EINVAL);
    ck_assert_int_eq(asyncio_future_cancel(NULL), -EINVAL);
    ck_assert_int_eq(asyncio_future_done(NULL), -EINVAL);
    ck_assert_int_eq(asyncio_future_cancelled(NULL), -EINVAL);
    ck_assert_int_eq(asyncio_future_result(NULL, &r), -EINVAL);
    ck_assert_int_eq(asyncio_future_exception(NULL), -EINVAL);
    ck_assert_int_eq(asyncio_future_add_done_callback(NULL, done_nop, NULL), -EINVAL);
    ck_assert_int_eq(asyncio_future_remove_done_callback(NULL, done_nop, NULL), -EINVAL);
    ck_assert_ptr_null(asyncio_future_get_loop(NULL));
}
END_TEST

START_TEST(null_pointers_to_void_functions_do_not_crash)
{
    asyncio_loop_ref(NULL);
    asyncio_loop_unref(NULL);
    asyncio_handle_ref(NULL);
    asyncio_handle_unref(NULL);
    asyncio_future_ref(NULL);
    asyncio_future_unref(NULL);
    asyncio_error_context ctx = {"test", -EIO, NULL, NULL, NULL, NULL};
    asyncio_loop_call_exception_handler(NULL, &ctx);
    asyncio_loop *loop = tu_new_loop();
    asyncio_loop_call_exception_handler(loop, NULL);
    asyncio_loop_default_exception_handler(loop, NULL);
    tu_free_loop(loop);
}
END_TEST

/* ---- libevent interop ------------------------------------------------------ */

START_TEST(get_event_base_is_non_null_while_open_and_null_after_close)
{
    asyncio_loop *loop = tu_new_loop();
    ck_assert_ptr_nonnull(asyncio_loop_get_event_base(loop));
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_ptr_null(asyncio_loop_get_event_base(loop));
    asyncio_loop_unref(loop);
}
END_TEST

static struct event_base *precise_base(void)
{
    struct event_config *cfg = event_config_new();
    ck_assert_ptr_nonnull(cfg);
    ck_assert_int_eq(event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER), 0);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    ck_assert_ptr_nonnull(base);
    return base;
}

START_TEST(loop_from_event_base_runs_calls_and_timers)
{
    struct event_base *base = precise_base();
    asyncio_loop *loop = NULL;
    ck_assert_int_eq(asyncio_loop_new_from_event_base(base, &loop), 0);
    ck_assert_ptr_nonnull(loop);
    ck_assert_ptr_eq(asyncio_loop_get_event_base(loop), base);
    tu_guard(loop, TU_GUARD_SECONDS);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, count_cb, NULL, NULL), 0);
    double t0 = asyncio_loop_time(loop);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.02, count_cb, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.03, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
    ck_assert_int_eq(ran, 2);
    ck_assert(asyncio_loop_time(loop) - t0 >= 0.03);
    tu_free_loop(loop);
    event_base_free(base);
}
END_TEST

START_TEST(loop_from_default_event_base_runs_calls)
{
    struct event_base *base = event_base_new();
    ck_assert_ptr_nonnull(base);
    asyncio_loop *loop = NULL;
    ck_assert_int_eq(asyncio_loop_new_from_event_base(base, &loop), 0);
    tu_guard(loop, TU_GUARD_SECONDS);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.01, count_cb, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.02, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
    ck_assert_int_eq(ran, 1);
    tu_free_loop(loop);
    event_base_free(base);
}
END_TEST

struct legacy_ctx {
    asyncio_loop *loop;
    tu_recorder rec;
    struct event *ev;
};

static void legacy_event_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct legacy_ctx *c = arg;
    tu_rec_push(&c->rec, 2);
    /* Legacy code calling into the loop from a libevent callback. */
    ck_assert_int_eq(asyncio_loop_call_soon(c->loop, tu_stop_cb, c->loop, NULL), 0);
}

static void record_1_cb(void *arg)
{
    struct legacy_ctx *c = arg;
    tu_rec_push(&c->rec, 1);
}

static void run_legacy_timer(asyncio_loop *loop, struct event_base *base)
{
    struct legacy_ctx c = {loop, {0}, NULL};
    tu_rec_init(&c.rec);
    tu_guard(loop, TU_GUARD_SECONDS);
    c.ev = evtimer_new(base, legacy_event_cb, &c);
    ck_assert_ptr_nonnull(c.ev);
    struct timeval tv = {0, 20000};
    ck_assert_int_eq(evtimer_add(c.ev, &tv), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, record_1_cb, &c, NULL), 0);
    tu_run(loop);
    static const int expected[] = {1, 2};
    tu_rec_expect(&c.rec, expected, 2);
    event_free(c.ev);
    tu_rec_free(&c.rec);
}

START_TEST(libevent_timer_on_a_loop_from_event_base_runs_beside_loop_callbacks)
{
    struct event_base *base = precise_base();
    asyncio_loop *loop = NULL;
    ck_assert_int_eq(asyncio_loop_new_from_event_base(base, &loop), 0);
    run_legacy_timer(loop, base);
    tu_free_loop(loop);
    event_base_free(base);
}
END_TEST

START_TEST(libevent_timer_on_get_event_base_runs_beside_loop_callbacks)
{
    asyncio_loop *loop = tu_new_loop();
    run_legacy_timer(loop, asyncio_loop_get_event_base(loop));
    tu_free_loop(loop);
}
END_TEST

static void activate_legacy_cb(void *arg)
{
    struct legacy_ctx *c = arg;
    tu_rec_push(&c->rec, 1);
    event_active(c->ev, EV_READ, 0);
}

START_TEST(libevent_event_activated_from_a_loop_callback_runs)
{
    struct event_base *base = precise_base();
    asyncio_loop *loop = NULL;
    ck_assert_int_eq(asyncio_loop_new_from_event_base(base, &loop), 0);
    tu_guard(loop, TU_GUARD_SECONDS);
    struct legacy_ctx c = {loop, {0}, NULL};
    tu_rec_init(&c.rec);
    c.ev = event_new(base, -1, 0, legacy_event_cb, &c);
    ck_assert_ptr_nonnull(c.ev);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, activate_legacy_cb, &c, NULL), 0);
    tu_run(loop);
    static const int expected[] = {1, 2};
    tu_rec_expect(&c.rec, expected, 2);
    event_free(c.ev);
    tu_rec_free(&c.rec);
    tu_free_loop(loop);
    event_base_free(base);
}
END_TEST

static int raw_fired;
static int raw_guard_fired;
static struct event *raw_guard;

static void raw_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    raw_fired++;
    if (raw_fired == 2 && raw_guard != NULL)
        event_del(raw_guard);
}

static void raw_guard_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    raw_guard_fired = 1;
    event_base_loopbreak(arg);
}

START_TEST(closing_a_loop_leaves_the_callers_event_base_and_events_working)
{
    struct event_base *base = precise_base();
    asyncio_loop *loop = NULL;
    ck_assert_int_eq(asyncio_loop_new_from_event_base(base, &loop), 0);
    tu_guard(loop, TU_GUARD_SECONDS);

    /* A legacy event that is still pending when the loop closes. */
    struct event *early = evtimer_new(base, raw_timer_cb, NULL);
    ck_assert_ptr_nonnull(early);
    struct timeval tv_early = {10, 0};
    ck_assert_int_eq(evtimer_add(early, &tv_early), 0);

    ck_assert_int_eq(asyncio_loop_call_soon_threadsafe(loop, count_cb, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.001, tu_stop_cb, loop, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 10, count_cb, NULL, NULL), 0);
    tu_run(loop);
    ck_assert_int_eq(ran, 1);
    ck_assert_int_eq(raw_fired, 0);
    tu_free_loop(loop);

    /* The base is still ours and works; our pending event survived and
     * still fires (made active now rather than waiting 10 s). */
    ck_assert(evtimer_pending(early, NULL));
    event_active(early, EV_TIMEOUT, 0);
    struct event *late = evtimer_new(base, raw_timer_cb, NULL);
    ck_assert_ptr_nonnull(late);
    struct timeval tv_late = {0, 10000};
    ck_assert_int_eq(evtimer_add(late, &tv_late), 0);
    /* If the loop left events of its own on the base, event_base_dispatch
     * would not return once ours ran: this guard ends it then. */
    raw_guard = evtimer_new(base, raw_guard_cb, base);
    struct timeval tv_guard = {3, 0};
    ck_assert_int_eq(evtimer_add(raw_guard, &tv_guard), 0);
    ck_assert_int_ne(event_base_dispatch(base), -1);
    ck_assert_int_eq(raw_fired, 2);
    ck_assert_msg(!raw_guard_fired, "the closed loop left events on the caller's base");
    ck_assert_int_eq(ran, 1);

    event_free(early);
    event_free(late);
    event_free(raw_guard);
    event_base_free(base);
}
END_TEST

/* ---- Resources ---------------------------------------------------------------- */

START_TEST(closing_100_loops_leaks_no_fds)
{
    /* Warm up anything the library or libevent sets up once per process. */
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_call_soon_threadsafe(loop, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
    tu_free_loop(loop);

    int before = tu_count_fds();
    for (int i = 0; i < 100; i++) {
        loop = tu_new_guarded_loop();
        ck_assert_int_eq(asyncio_loop_call_soon_threadsafe(loop, tu_stop_cb, loop, NULL), 0);
        ck_assert_int_eq(asyncio_loop_call_later(loop, 0.0, count_cb, NULL, NULL), 0);
        tu_run(loop);
        tu_free_loop(loop);
    }
    ck_assert_int_eq(tu_count_fds(), before);
}
END_TEST

START_TEST(releasing_100_unclosed_loops_leaks_no_fds)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_loop_unref(loop);

    int before = tu_count_fds();
    for (int i = 0; i < 100; i++) {
        loop = tu_new_guarded_loop();
        tu_call_soon_stop(loop);
        tu_run(loop);
        asyncio_loop_unref(loop);
    }
    ck_assert_int_eq(tu_count_fds(), before);
}
END_TEST

START_TEST(loop_ref_keeps_the_loop_alive_after_one_unref)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_loop_ref(loop);
    asyncio_loop_unref(loop);
    ck_assert_int_eq(asyncio_loop_is_closed(loop), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, count_cb, NULL, NULL), 0);
    tu_call_soon_stop(loop);
    tu_run(loop);
    ck_assert_int_eq(ran, 1);
    tu_free_loop(loop);
}
END_TEST

/* ---- Fairness: callbacks that keep coming do not starve I/O or timers ------------ */

/* A call_soon chain that never ends by itself: each callback schedules
 * the next (and may spin `spin` seconds first), until the event under
 * test (a ready fd, a due timer) has been seen.  The fd becomes readable
 * only once the chain runs (its WRITE_AT-th callback writes to the pipe),
 * so the loop's first poll cannot have seen it already. */
#define WRITE_AT 10
struct endless {
    asyncio_loop *loop;
    double spin;
    long ran;         /* chain callbacks run */
    long ran_at_seen; /* chain callbacks run when the event came; -1: not yet */
    int fds[2];
};

static void endless_step(void *arg)
{
    struct endless *e = arg;
    e->ran++;
    if (e->ran == WRITE_AT && e->fds[1] >= 0)
        ck_assert_int_eq(write(e->fds[1], "x", 1), 1);
    if (e->spin > 0)
        tu_busy_wait(e->spin);
    if (e->ran_at_seen < 0)
        ck_assert_int_eq(asyncio_loop_call_soon(e->loop, endless_step, e, NULL), 0);
    else
        asyncio_loop_stop(e->loop);
}

static void endless_saw_fd(void *arg)
{
    struct endless *e = arg;
    e->ran_at_seen = e->ran;
    ck_assert_int_eq(asyncio_loop_remove_reader(e->loop, e->fds[0]), 1);
}

static void endless_saw_timer(void *arg)
{
    struct endless *e = arg;
    e->ran_at_seen = e->ran;
}

/* The fd is seen at most `bound` chain callbacks after it became readable. */
static void fd_seen_within(double spin, long bound)
{
    struct endless e = {.loop = tu_new_guarded_loop(), .spin = spin, .ran_at_seen = -1};
    ck_assert_int_eq(pipe(e.fds), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(e.loop, endless_step, &e, NULL), 0);
    ck_assert_int_eq(asyncio_loop_add_reader(e.loop, e.fds[0], endless_saw_fd, &e), 0);
    tu_run(e.loop);
    ck_assert_msg(e.ran_at_seen >= WRITE_AT && e.ran_at_seen - WRITE_AT <= bound,
                  "the fd written at callback %d was seen at callback %ld (bound %ld later)",
                  WRITE_AT, e.ran_at_seen, bound);
    close(e.fds[0]);
    close(e.fds[1]);
    tu_free_loop(e.loop);
}

/* Fast callbacks: polled at least every 1024 of them. */
START_TEST(ready_fd_is_seen_while_fast_callbacks_keep_coming) { fd_seen_within(0.0, 2 * 1024); }
END_TEST

/* Slow callbacks (2 ms each): polled once the coarse clock ticked
 * (1-4 ms), read every 32 callbacks, long before 1024 of them. */
START_TEST(ready_fd_is_seen_while_slow_callbacks_keep_coming) { fd_seen_within(0.002, 2 * 32); }
END_TEST

START_TEST(due_timer_runs_while_callbacks_keep_coming)
{
    struct endless e = {.loop = tu_new_guarded_loop(), .ran_at_seen = -1, .fds = {-1, -1}};
    ck_assert_int_eq(asyncio_loop_call_soon(e.loop, endless_step, &e, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_later(e.loop, 0.01, endless_saw_timer, &e, NULL), 0);
    double t0 = tu_now();
    tu_run(e.loop);
    ck_assert_int_ge(e.ran_at_seen, 0);
    ck_assert_msg(tu_now() - t0 < 1.0, "the 10 ms timer ran after %.3f s", tu_now() - t0);
    tu_free_loop(e.loop);
}
END_TEST

static Suite *loop_suite(void)
{
    Suite *s = suite_create("loop");
    TCase *tc = tcase_create("run_stop");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, run_forever_returns_0_after_stop);
    tcase_add_test(tc, run_forever_can_run_again_after_stop);
    tcase_add_test(tc, stop_runs_callbacks_scheduled_before_it);
    tcase_add_test(tc, callbacks_scheduled_after_stop_run_on_the_next_run_forever);
    tcase_add_test(tc, stop_before_run_forever_gives_one_nonblocking_iteration);
    tcase_add_test(tc, stop_before_run_forever_is_consumed_by_that_run);
    tcase_add_test(tc, run_forever_inside_a_callback_of_the_same_loop_returns_erunning);
    tcase_add_test(tc, run_until_complete_inside_a_callback_of_the_same_loop_returns_erunning);
    tcase_add_test(tc, running_another_loop_inside_a_callback_returns_erunning);
    tcase_add_test(tc, is_running_is_1_inside_a_callback_and_0_outside);
    suite_add_tcase(s, tc);

    tc = tcase_create("close");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, close_while_running_returns_erunning);
    tcase_add_test(tc, is_closed_is_0_before_close_and_1_after);
    tcase_add_test(tc, close_is_idempotent);
    tcase_add_test(tc, calls_on_a_closed_loop_return_eclosed);
    tcase_add_test(tc, closing_drops_pending_calls_and_their_handles_report_not_run);
    tcase_add_test(tc, closing_releases_pending_callbacks_and_what_they_hold);
    tcase_add_test(tc, loop_ref_keeps_the_loop_alive_after_one_unref);
    suite_add_tcase(s, tc);

    tc = tcase_create("time");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, loop_time_is_monotonic);
    tcase_add_test(tc, loop_time_follows_clock_monotonic);
    suite_add_tcase(s, tc);

    tc = tcase_create("run_until_complete");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, run_until_complete_returns_0_for_a_result);
    tcase_add_test(tc, run_until_complete_returns_the_future_error);
    tcase_add_test(tc, run_until_complete_returns_ecanceled_for_a_cancelled_future);
    tcase_add_test(tc, run_until_complete_of_a_done_future_returns_at_once);
    tcase_add_test(tc, run_until_complete_returns_estopped_when_stop_ends_the_run_first);
    tcase_add_test(tc, run_until_complete_rejects_a_future_of_another_loop);
    suite_add_tcase(s, tc);

    tc = tcase_create("null_arguments");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, null_loop_arguments_return_einval);
    tcase_add_test(tc, null_loop_in_status_queries_returns_einval);
    tcase_add_test(tc, null_callbacks_return_einval);
    tcase_add_test(tc, null_out_pointers_for_new_objects_return_einval);
    tcase_add_test(tc, null_handle_arguments_return_einval);
    tcase_add_test(tc, null_future_arguments_return_einval);
    tcase_add_test(tc, null_pointers_to_void_functions_do_not_crash);
    suite_add_tcase(s, tc);

    tc = tcase_create("libevent");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, get_event_base_is_non_null_while_open_and_null_after_close);
    tcase_add_test(tc, loop_from_event_base_runs_calls_and_timers);
    tcase_add_test(tc, loop_from_default_event_base_runs_calls);
    tcase_add_test(tc, libevent_timer_on_a_loop_from_event_base_runs_beside_loop_callbacks);
    tcase_add_test(tc, libevent_timer_on_get_event_base_runs_beside_loop_callbacks);
    tcase_add_test(tc, libevent_event_activated_from_a_loop_callback_runs);
    tcase_add_test(tc, closing_a_loop_leaves_the_callers_event_base_and_events_working);
    suite_add_tcase(s, tc);

    tc = tcase_create("fairness");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, ready_fd_is_seen_while_fast_callbacks_keep_coming);
    tcase_add_test(tc, ready_fd_is_seen_while_slow_callbacks_keep_coming);
    tcase_add_test(tc, due_timer_runs_while_callbacks_keep_coming);
    suite_add_tcase(s, tc);

    tc = tcase_create("resources");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, closing_100_loops_leaks_no_fds);
    tcase_add_test(tc, releasing_100_unclosed_loops_leaks_no_fds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(loop_suite()); }
