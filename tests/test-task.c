/* Tasks: coroutines on their own stacks, await, sleep, cancellation,
 * errors, loop close, stacks, and 10,000 of them at once. */
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static asyncio_future *new_future(asyncio_loop *loop)
{
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_future(loop, &f), 0);
    return f;
}

static asyncio_future *new_task(asyncio_loop *loop, asyncio_coroutine fn, void *arg)
{
    asyncio_future *t = NULL;
    ck_assert_int_eq(asyncio_loop_create_task(loop, fn, arg, &t), 0);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* Run the loop until `f` is done; returns what run_until_complete does. */
static int run_until(asyncio_loop *loop, asyncio_future *f)
{
    return asyncio_loop_run_until_complete(loop, f);
}

static void set_result_cb(void *f) { ck_assert_int_eq(asyncio_future_set_result(f, f, NULL), 0); }
static void set_eio_cb(void *f) { ck_assert_int_eq(asyncio_future_set_exception(f, -EIO), 0); }
static void cancel_cb(void *f) { ck_assert_int_eq(asyncio_future_cancel(f), 1); }

/* ---- Basics ------------------------------------------------------------------------ */

static int return_arg(void *arg, void **result)
{
    *result = arg;
    return 0;
}

START_TEST(a_task_completes_with_what_its_function_returned)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int value;
    asyncio_future *t = new_task(loop, return_arg, &value);
    ck_assert_int_eq(asyncio_future_done(t), 0);
    ck_assert_int_eq(run_until(loop, t), 0);
    void *r = NULL;
    ck_assert_int_eq(asyncio_future_result(t, &r), 0);
    ck_assert_ptr_eq(r, &value);
    asyncio_future_unref(t);
    tu_free_loop(loop);
}
END_TEST

static int return_eio(void *arg, void **result) { return -EIO; }

START_TEST(a_task_whose_function_fails_fails_with_its_error)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *t = new_task(loop, return_eio, NULL);
    ck_assert_int_eq(run_until(loop, t), -EIO);
    ck_assert_int_eq(asyncio_future_exception(t), -EIO);
    ck_assert_int_eq(asyncio_future_cancelled(t), 0);
    asyncio_future_unref(t);
    tu_free_loop(loop);
}
END_TEST

static int record_1(void *arg, void **result)
{
    tu_rec_push(arg, 1);
    return 0;
}

START_TEST(a_task_starts_in_a_later_batch_not_inside_create_task)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tu_recorder rec;
    tu_rec_init(&rec);
    tu_rec_item first = {&rec, 0};
    ck_assert_int_eq(asyncio_loop_call_soon(loop, tu_rec_cb, &first, NULL), 0);
    asyncio_future *t = new_task(loop, record_1, &rec);
    ck_assert_int_eq(rec.len, 0);
    ck_assert_int_eq(run_until(loop, t), 0);
    static const int expected[] = {0, 1};
    tu_rec_expect(&rec, expected, 2);
    tu_rec_free(&rec);
    asyncio_future_unref(t);
    tu_free_loop(loop);
}
END_TEST

START_TEST(a_task_runs_when_nobody_holds_a_reference)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tu_recorder rec;
    tu_rec_init(&rec);
    ck_assert_int_eq(asyncio_loop_create_task(loop, record_1, &rec, NULL), 0);
    asyncio_future *later = new_future(loop);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, set_result_cb, later, NULL), 0);
    ck_assert_int_eq(run_until(loop, later), 0);
    static const int expected[] = {1};
    tu_rec_expect(&rec, expected, 1);
    tu_rec_free(&rec);
    asyncio_future_unref(later);
    tu_free_loop(loop);
}
END_TEST

START_TEST(create_task_rejects_bad_arguments)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *t = NULL;
    ck_assert_int_eq(asyncio_loop_create_task(NULL, return_arg, NULL, &t), -EINVAL);
    ck_assert_int_eq(asyncio_loop_create_task(loop, NULL, NULL, &t), -EINVAL);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_loop_create_task(loop, return_arg, NULL, &t), ASYNCIO_ECLOSED);
    asyncio_loop_unref(loop);
}
END_TEST

static int current_is_self(void *arg, void **result)
{
    *result = asyncio_current_task();
    return 0;
}

START_TEST(current_task_is_the_task_inside_and_null_outside)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_ptr_null(asyncio_current_task());
    asyncio_future *t = new_task(loop, current_is_self, NULL);
    ck_assert_int_eq(run_until(loop, t), 0);
    void *r = NULL;
    asyncio_future_result(t, &r);
    ck_assert_ptr_eq(r, t);
    ck_assert_ptr_null(asyncio_current_task());
    asyncio_future_unref(t);
    tu_free_loop(loop);
}
END_TEST

/* ---- Ordering ------------------------------------------------------------------------ */

struct stepper {
    tu_recorder *rec;
    int id;
};

static int step_three_times(void *arg, void **result)
{
    struct stepper *s = arg;
    for (int i = 0; i < 3; i++) {
        tu_rec_push(s->rec, s->id * 10 + i);
        ck_assert_int_eq(asyncio_sleep(0), 0);
    }
    return 0;
}

START_TEST(tasks_take_turns_in_fifo_order_at_each_await)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tu_recorder rec;
    tu_rec_init(&rec);
    struct stepper s[3] = {{&rec, 1}, {&rec, 2}, {&rec, 3}};
    asyncio_future *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = new_task(loop, step_three_times, &s[i]);
    ck_assert_int_eq(run_until(loop, t[2]), 0);
    static const int expected[] = {10, 20, 30, 11, 21, 31, 12, 22, 32};
    tu_rec_expect(&rec, expected, 9);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(asyncio_future_done(t[i]), 1);
        asyncio_future_unref(t[i]);
    }
    tu_rec_free(&rec);
    tu_free_loop(loop);
}
END_TEST

struct await_order {
    asyncio_future *f;
    tu_recorder *rec;
    int id;
};

static int await_and_record(void *arg, void **result)
{
    struct await_order *a = arg;
    ck_assert_int_eq(asyncio_await(a->f, NULL), 0);
    tu_rec_push(a->rec, a->id);
    return 0;
}

START_TEST(tasks_awaiting_one_future_resume_in_the_order_they_awaited)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tu_recorder rec;
    tu_rec_init(&rec);
    asyncio_future *f = new_future(loop);
    struct await_order a[3] = {{f, &rec, 1}, {f, &rec, 2}, {f, &rec, 3}};
    asyncio_future *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = new_task(loop, await_and_record, &a[i]);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.01, set_result_cb, f, NULL), 0);
    ck_assert_int_eq(run_until(loop, t[2]), 0);
    static const int expected[] = {1, 2, 3};
    tu_rec_expect(&rec, expected, 3);
    for (int i = 0; i < 3; i++)
        asyncio_future_unref(t[i]);
    asyncio_future_unref(f);
    tu_rec_free(&rec);
    tu_free_loop(loop);
}
END_TEST

/* ---- Awaiting -------------------------------------------------------------------------- */

/* Three levels of plain C calls between the task's function and the await,
 * with locals on every level that must survive the suspension. */
static int level3(asyncio_future *f, long *sum)
{
    char pad[3000];
    memset(pad, 3, sizeof(pad));
    void *r = NULL;
    int err = asyncio_await(f, &r);
    *sum += pad[0] + pad[sizeof(pad) - 1] + (r == f ? 100 : 0);
    return err;
}

static int level2(asyncio_future *f, long *sum)
{
    volatile long local = 20;
    int err = level3(f, sum);
    *sum += local;
    return err;
}

static int level1(void *arg, void **result)
{
    asyncio_future *f = arg;
    long sum = 0;
    int err = level2(f, &sum);
    *result = (void *)(intptr_t)sum;
    return err;
}

START_TEST(await_works_through_nested_helper_functions)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = new_future(loop);
    asyncio_future *t = new_task(loop, level1, f);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.01, set_result_cb, f, NULL), 0);
    ck_assert_int_eq(run_until(loop, t), 0);
    void *r = NULL;
    asyncio_future_result(t, &r);
    ck_assert_int_eq((intptr_t)r, 3 + 3 + 100 + 20);
    asyncio_future_unref(t);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

static int await_arg(void *arg, void **result) { return asyncio_await(arg, result); }

START_TEST(await_returns_the_error_of_a_failed_future)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = new_future(loop);
    asyncio_future *t = new_task(loop, await_arg, f);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, set_eio_cb, f, NULL), 0);
    ck_assert_int_eq(run_until(loop, t), -EIO);
    asyncio_future_unref(t);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

static int fail_after_a_sleep(void *arg, void **result)
{
    ck_assert_int_eq(asyncio_sleep(0.001), 0);
    return -ENOSPC;
}

static int await_a_new_task(void *arg, void **result)
{
    asyncio_future *inner;
    int err = asyncio_loop_create_task(asyncio_future_get_loop(asyncio_current_task()),
                                       fail_after_a_sleep, NULL, &inner);
    ck_assert_int_eq(err, 0);
    err = asyncio_await(inner, NULL);
    asyncio_future_unref(inner);
    return err;
}

START_TEST(an_error_propagates_through_awaited_tasks)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *t = new_task(loop, await_a_new_task, NULL);
    ck_assert_int_eq(run_until(loop, t), -ENOSPC);
    asyncio_future_unref(t);
    tu_free_loop(loop);
}
END_TEST

static int await_done_then_record(void *arg, void **result)
{
    struct await_order *a = arg;
    void *r = NULL;
    ck_assert_int_eq(asyncio_await(a->f, &r), 0);
    tu_rec_push(a->rec, r == a->f ? 1 : -1);
    return 0;
}

START_TEST(await_of_a_done_future_returns_at_once)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tu_recorder rec;
    tu_rec_init(&rec);
    asyncio_future *f = new_future(loop);
    ck_assert_int_eq(asyncio_future_set_result(f, f, NULL), 0);
    struct await_order a = {f, &rec, 0};
    asyncio_future *t = new_task(loop, await_done_then_record, &a);
    /* Queued after the task's first step: runs after it only if the await
     * did not suspend. */
    tu_rec_item two = {&rec, 2};
    ck_assert_int_eq(asyncio_loop_call_soon(loop, tu_rec_cb, &two, NULL), 0);
    ck_assert_int_eq(run_until(loop, t), 0);
    static const int expected[] = {1, 2};
    tu_rec_expect(&rec, expected, 2);
    tu_rec_free(&rec);
    asyncio_future_unref(t);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(await_and_sleep_outside_a_task_return_enotask)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = new_future(loop);
    ck_assert_int_eq(asyncio_await(f, NULL), ASYNCIO_ENOTASK);
    ck_assert_int_eq(asyncio_sleep(0), ASYNCIO_ENOTASK);
    ck_assert_int_eq(asyncio_future_done(f), 0);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

static void await_in_callback(void *f)
{
    ck_assert_int_eq(asyncio_await(f, NULL), ASYNCIO_ENOTASK);
    asyncio_loop_stop(asyncio_future_get_loop(f));
}

START_TEST(await_in_a_plain_callback_returns_enotask)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = new_future(loop);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, await_in_callback, f, NULL), 0);
    tu_run(loop);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

static int await_bad(void *arg, void **result)
{
    asyncio_future *other = arg;
    ck_assert_int_eq(asyncio_await(NULL, NULL), -EINVAL);
    ck_assert_int_eq(asyncio_await(other, NULL), -EINVAL);
    ck_assert_int_eq(asyncio_await(asyncio_current_task(), NULL), -EINVAL);
    ck_assert_int_eq(asyncio_sleep(NAN), -EINVAL);
    return 0;
}

START_TEST(await_of_another_loops_future_or_of_itself_returns_einval)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_loop *other = tu_new_loop();
    asyncio_future *f = new_future(other);
    asyncio_future *t = new_task(loop, await_bad, f);
    ck_assert_int_eq(run_until(loop, t), 0);
    asyncio_future_unref(t);
    asyncio_future_unref(f);
    tu_free_loop(other);
    tu_free_loop(loop);
}
END_TEST

START_TEST(set_result_and_set_exception_on_a_task_return_einval)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *t = new_task(loop, return_arg, NULL);
    ck_assert_int_eq(asyncio_future_set_result(t, NULL, NULL), -EINVAL);
    ck_assert_int_eq(asyncio_future_set_exception(t, -EIO), -EINVAL);
    ck_assert_int_eq(run_until(loop, t), 0);
    asyncio_future_unref(t);
    tu_free_loop(loop);
}
END_TEST

/* ---- Sleeping ----------------------------------------------------------------------------- */

static int sleep_arg_ms(void *arg, void **result)
{
    double t0 = tu_now();
    int err = asyncio_sleep((double)(intptr_t)arg / 1000.0);
    double *elapsed = malloc(sizeof(*elapsed));
    *elapsed = tu_now() - t0;
    *result = elapsed;
    return err;
}

START_TEST(sleep_suspends_for_at_least_the_delay)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *t = new_task(loop, sleep_arg_ms, (void *)(intptr_t)50);
    ck_assert_int_eq(run_until(loop, t), 0);
    double *elapsed = NULL;
    asyncio_future_result(t, (void **)&elapsed);
    ck_assert_double_ge(*elapsed, 0.050);
    ck_assert_double_lt(*elapsed, 2.0);
    free(elapsed);
    asyncio_future_unref(t);
    tu_free_loop(loop);
}
END_TEST

static int sleep0_twice_recording(void *arg, void **result)
{
    tu_rec_push(arg, 1);
    ck_assert_int_eq(asyncio_sleep(0), 0);
    tu_rec_push(arg, 3);
    return 0;
}

START_TEST(sleep_0_lets_the_callbacks_queued_meanwhile_run_first)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tu_recorder rec;
    tu_rec_init(&rec);
    asyncio_future *t = new_task(loop, sleep0_twice_recording, &rec);
    /* Runs after the task's first step (same batch); its call_soon goes
     * ahead of the task's next step only if sleep(0) yielded. */
    tu_rec_item two = {&rec, 2};
    ck_assert_int_eq(asyncio_loop_call_soon(loop, tu_rec_cb, &two, NULL), 0);
    ck_assert_int_eq(run_until(loop, t), 0);
    static const int expected[] = {1, 2, 3};
    tu_rec_expect(&rec, expected, 3);
    tu_rec_free(&rec);
    asyncio_future_unref(t);
    tu_free_loop(loop);
}
END_TEST

/* ---- Cancellation ---------------------------------------------------------------------------- */

struct cancel_probe {
    asyncio_future *f; /* what it awaits (NULL: sleeps 10 s) */
    int await_rc;
    int ret;       /* what the function returns after the await */
    int second_rc; /* a second sleep(0) after the first wait */
};

static int wait_then_return(void *arg, void **result)
{
    struct cancel_probe *p = arg;
    p->await_rc = p->f != NULL ? asyncio_await(p->f, NULL) : asyncio_sleep(10);
    p->second_rc = asyncio_sleep(0);
    *result = p;
    return p->ret == 1 ? p->await_rc : p->ret;
}

START_TEST(cancelling_a_suspended_task_makes_its_await_return_ecanceled)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = new_future(loop);
    struct cancel_probe p = {f, 1, 1, 1};
    asyncio_future *t = new_task(loop, wait_then_return, &p);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.01, cancel_cb, t, NULL), 0);
    ck_assert_int_eq(run_until(loop, t), -ECANCELED);
    ck_assert_int_eq(p.await_rc, -ECANCELED);
    ck_assert_int_eq(p.second_rc, 0); /* one cancel, one -ECANCELED */
    ck_assert_int_eq(asyncio_future_cancelled(t), 1);
    /* As asyncio: the future the task waited on is cancelled with it. */
    ck_assert_int_eq(asyncio_future_cancelled(f), 1);
    asyncio_future_unref(t);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(cancelling_a_sleeping_task_wakes_it_at_once)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct cancel_probe p = {NULL, 1, 1, 1};
    asyncio_future *t = new_task(loop, wait_then_return, &p);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.01, cancel_cb, t, NULL), 0);
    double t0 = tu_now();
    ck_assert_int_eq(run_until(loop, t), -ECANCELED);
    ck_assert_double_lt(tu_now() - t0, 1.0);
    ck_assert_int_eq(p.await_rc, -ECANCELED);
    asyncio_future_unref(t);
    tu_free_loop(loop);
}
END_TEST

START_TEST(a_task_that_swallows_the_cancel_completes_with_its_result)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = new_future(loop);
    struct cancel_probe p = {f, 1, 0, 1};
    asyncio_future *t = new_task(loop, wait_then_return, &p);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.01, cancel_cb, t, NULL), 0);
    ck_assert_int_eq(run_until(loop, t), 0);
    ck_assert_int_eq(p.await_rc, -ECANCELED);
    ck_assert_int_eq(asyncio_future_cancelled(t), 0);
    void *r = NULL;
    ck_assert_int_eq(asyncio_future_result(t, &r), 0);
    ck_assert_ptr_eq(r, &p);
    asyncio_future_unref(t);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(cancel_after_the_awaited_future_completed_still_returns_ecanceled)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = new_future(loop);
    struct cancel_probe p = {f, 1, 1, 1};
    asyncio_future *t = new_task(loop, wait_then_return, &p);
    tu_call_soon_stop(loop);
    tu_run(loop);
    /* The task now waits on f.  Complete f, then cancel before the task's
     * wake-up has run: asyncio throws CancelledError in regardless. */
    ck_assert_int_eq(asyncio_future_set_result(f, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_future_cancel(t), 1);
    ck_assert_int_eq(run_until(loop, t), -ECANCELED);
    ck_assert_int_eq(p.await_rc, -ECANCELED);
    ck_assert_int_eq(asyncio_future_cancelled(f), 0);
    asyncio_future_unref(t);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(a_task_cancelled_before_it_started_runs_and_its_first_wait_returns_ecanceled)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct cancel_probe p = {NULL, 1, 1, 1};
    asyncio_future *t = new_task(loop, wait_then_return, &p);
    ck_assert_int_eq(asyncio_future_cancel(t), 1);
    ck_assert_int_eq(asyncio_future_done(t), 0);
    ck_assert_int_eq(run_until(loop, t), -ECANCELED);
    ck_assert_int_eq(p.await_rc, -ECANCELED);
    ck_assert_int_eq(p.second_rc, 0);
    asyncio_future_unref(t);
    tu_free_loop(loop);
}
END_TEST

static int cancel_self_then_sleep(void *arg, void **result)
{
    ck_assert_int_eq(asyncio_future_cancel(asyncio_current_task()), 1);
    int *rc = arg;
    *rc = asyncio_sleep(0.5);
    return 0;
}

START_TEST(a_running_task_that_is_cancelled_gets_ecanceled_at_its_next_wait)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int rc = 1;
    asyncio_future *t = new_task(loop, cancel_self_then_sleep, &rc);
    double t0 = tu_now();
    /* It returns 0 after the -ECANCELED: the task completes with it. */
    ck_assert_int_eq(run_until(loop, t), 0);
    ck_assert_int_eq(rc, -ECANCELED);
    ck_assert_double_lt(tu_now() - t0, 0.4);
    asyncio_future_unref(t);
    tu_free_loop(loop);
}
END_TEST

static int cancel_self_and_return(void *arg, void **result)
{
    asyncio_future_cancel(asyncio_current_task());
    return 0;
}

START_TEST(a_task_that_returns_with_a_cancel_pending_is_cancelled)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *t = new_task(loop, cancel_self_and_return, NULL);
    ck_assert_int_eq(run_until(loop, t), -ECANCELED);
    ck_assert_int_eq(asyncio_future_cancelled(t), 1);
    ck_assert_int_eq(asyncio_future_cancel(t), 0);
    asyncio_future_unref(t);
    tu_free_loop(loop);
}
END_TEST

static int await_inner_task(void *arg, void **result) { return asyncio_await(arg, NULL); }

START_TEST(cancelling_a_task_cancels_the_task_it_awaits)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct cancel_probe p = {NULL, 1, 1, 1};
    asyncio_future *inner = new_task(loop, wait_then_return, &p);
    asyncio_future *outer = new_task(loop, await_inner_task, inner);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.01, cancel_cb, outer, NULL), 0);
    ck_assert_int_eq(run_until(loop, outer), -ECANCELED);
    ck_assert_int_eq(asyncio_future_cancelled(inner), 1);
    ck_assert_int_eq(p.await_rc, -ECANCELED);
    asyncio_future_unref(outer);
    asyncio_future_unref(inner);
    tu_free_loop(loop);
}
END_TEST

/* ---- Loop close -------------------------------------------------------------------------------- */

struct closing_probe {
    asyncio_future *f;
    int await_rc, again_rc, sleep_rc;
};

static int hold_and_wait(void *arg, void **result)
{
    struct closing_probe *p = arg;
    char *held = malloc(100); /* leaks (LeakSanitizer) unless the task runs on */
    p->await_rc = asyncio_await(p->f, NULL);
    p->again_rc = asyncio_await(p->f, NULL);
    p->sleep_rc = asyncio_sleep(1);
    free(held);
    return 0;
}

START_TEST(loop_close_resumes_a_suspended_task_with_eclosed_and_cancels_it)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = new_future(loop);
    struct closing_probe p = {f, 1, 1, 1};
    asyncio_future *t = new_task(loop, hold_and_wait, &p);
    tu_call_soon_stop(loop);
    tu_run(loop);
    ck_assert_int_eq(p.await_rc, 1); /* suspended */
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(p.await_rc, ASYNCIO_ECLOSED);
    ck_assert_int_eq(p.again_rc, ASYNCIO_ECLOSED);
    ck_assert_int_eq(p.sleep_rc, ASYNCIO_ECLOSED);
    ck_assert_int_eq(asyncio_future_done(t), 1);
    ck_assert_int_eq(asyncio_future_cancelled(t), 1);
    ck_assert_int_eq(asyncio_future_done(f), 0);
    asyncio_future_unref(t);
    asyncio_future_unref(f);
    asyncio_loop_unref(loop);
}
END_TEST

START_TEST(loop_close_runs_a_task_that_never_started_with_eclosed)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = new_future(loop);
    struct closing_probe p = {f, 1, 1, 1};
    asyncio_future *t = new_task(loop, hold_and_wait, &p);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(p.await_rc, ASYNCIO_ECLOSED);
    ck_assert_int_eq(asyncio_future_cancelled(t), 1);
    asyncio_future_unref(t);
    asyncio_future_unref(f);
    asyncio_loop_unref(loop);
}
END_TEST

START_TEST(loop_close_resumes_a_task_whose_wakeup_was_queued)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = new_future(loop);
    struct closing_probe p = {f, 1, 1, 1};
    asyncio_future *t = new_task(loop, hold_and_wait, &p);
    tu_call_soon_stop(loop);
    tu_run(loop);
    ck_assert_int_eq(asyncio_future_set_result(f, NULL, NULL), 0); /* wake-up queued */
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(p.await_rc, ASYNCIO_ECLOSED);
    ck_assert_int_eq(asyncio_future_cancelled(t), 1);
    asyncio_future_unref(t);
    asyncio_future_unref(f);
    asyncio_loop_unref(loop);
}
END_TEST

/* ---- Stacks --------------------------------------------------------------------------------- */

/* The mapping of /proc/self/maps that holds `addr`: start, end, perms;
 * and whether a PROT_NONE mapping ends exactly where it starts. */
static int find_mapping(uintptr_t addr, uintptr_t *start, uintptr_t *end, int *guarded)
{
    FILE *m = fopen("/proc/self/maps", "r");
    ck_assert_ptr_nonnull(m);
    char line[512];
    uintptr_t prev_end = 0;
    char prev_perms[8] = "";
    int found = 0;
    while (fgets(line, sizeof(line), m) != NULL) {
        unsigned long s, e;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) != 3)
            continue;
        if (addr >= s && addr < e) {
            *start = s;
            *end = e;
            *guarded = prev_end == s && strcmp(prev_perms, "---p") == 0;
            found = 1;
            break;
        }
        prev_end = e;
        memcpy(prev_perms, perms, sizeof(perms));
    }
    fclose(m);
    return found;
}

static int stack_probe(void *arg, void **result)
{
    volatile char here = 0;
    uintptr_t *out = arg;
    int guarded = 0;
    ck_assert(find_mapping((uintptr_t)&here, &out[0], &out[1], &guarded));
    out[2] = (uintptr_t)guarded;
    return here;
}

START_TEST(a_task_runs_on_its_own_stack_with_a_guard_page_below)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    uintptr_t info[3] = {0, 0, 0};
    asyncio_future *t = new_task(loop, stack_probe, info);
    ck_assert_int_eq(run_until(loop, t), 0);
    ck_assert_uint_eq(info[1] - info[0], ASYNCIO_TASK_STACK_SIZE_DEFAULT);
    ck_assert_uint_eq(info[2], 1);
    asyncio_future_unref(t);
    tu_free_loop(loop);
}
END_TEST

START_TEST(set_task_stack_size_sets_the_size_of_new_stacks)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_set_task_stack_size(loop, 64 * 1024 + 1), 0);
    uintptr_t info[3] = {0, 0, 0};
    asyncio_future *t = new_task(loop, stack_probe, info);
    ck_assert_int_eq(run_until(loop, t), 0);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    ck_assert_uint_eq(info[1] - info[0], 64 * 1024 + page); /* whole pages */
    ck_assert_uint_eq(info[2], 1);
    asyncio_future_unref(t);
    tu_free_loop(loop);
}
END_TEST

START_TEST(set_task_stack_size_rejects_sizes_out_of_range)
{
    asyncio_loop *loop = tu_new_loop();
    ck_assert_int_eq(asyncio_loop_set_task_stack_size(NULL, 65536), -EINVAL);
    ck_assert_int_eq(asyncio_loop_set_task_stack_size(loop, 1024), -EINVAL);
    ck_assert_int_eq(asyncio_loop_set_task_stack_size(loop, (size_t)2 << 30), -EINVAL);
    ck_assert_int_eq(asyncio_loop_set_task_stack_size(loop, 0), 0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_loop_set_task_stack_size(loop, 65536), ASYNCIO_ECLOSED);
    asyncio_loop_unref(loop);
}
END_TEST

/* ---- Many ------------------------------------------------------------------------------------- */

#define MANY 10000

struct many {
    asyncio_future *gate;
    int started, finished;
};

static int many_task(void *arg, void **result)
{
    struct many *m = arg;
    m->started++;
    char buf[512]; /* a little real stack use per task */
    memset(buf, m->started & 0xff, sizeof(buf));
    int err = asyncio_await(m->gate, NULL);
    m->finished += err == 0 && buf[0] == buf[sizeof(buf) - 1];
    return err;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(f);
    long size = 0, resident = 0;
    ck_assert_int_eq(fscanf(f, "%ld %ld", &size, &resident), 2);
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void many_all_suspended(void *arg)
{
    struct many *m = arg;
    long *rss = (long *)(m + 1);
    rss[1] = rss_kib();
    ck_assert_int_eq(asyncio_future_set_result(m->gate, NULL, NULL), 0);
}

START_TEST(ten_thousand_tasks_suspend_and_finish)
{
    asyncio_loop *loop = tu_new_loop();
    tu_guard(loop, 30);
    struct {
        struct many m;
        long rss[2];
    } s = {{new_future(loop), 0, 0}, {0, 0}};
    s.rss[0] = rss_kib();
    asyncio_future **tasks = malloc(MANY * sizeof(*tasks));
    for (int i = 0; i < MANY; i++)
        tasks[i] = new_task(loop, many_task, &s.m);
    /* Queued after every first step: by then all 10,000 are suspended. */
    ck_assert_int_eq(asyncio_loop_call_soon(loop, many_all_suspended, &s.m, NULL), 0);
    ck_assert_int_eq(run_until(loop, tasks[MANY - 1]), 0);
    ck_assert_int_eq(s.m.started, MANY);
    ck_assert_int_eq(s.m.finished, MANY);
    for (int i = 0; i < MANY; i++) {
        ck_assert_int_eq(asyncio_future_done(tasks[i]), 1);
        asyncio_future_unref(tasks[i]);
    }
    free(tasks);
    fprintf(stderr,
            "ten_thousand_tasks: RSS %ld KiB before, %ld KiB with all suspended: "
            "%.1f KiB per task\n",
            s.rss[0], s.rss[1], (double)(s.rss[1] - s.rss[0]) / MANY);
    asyncio_future_unref(s.m.gate);
    tu_free_loop(loop);
}
END_TEST

static Suite *task_suite(void)
{
    Suite *s = suite_create("task");
    TCase *tc = tcase_create("basics");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, a_task_completes_with_what_its_function_returned);
    tcase_add_test(tc, a_task_whose_function_fails_fails_with_its_error);
    tcase_add_test(tc, a_task_starts_in_a_later_batch_not_inside_create_task);
    tcase_add_test(tc, a_task_runs_when_nobody_holds_a_reference);
    tcase_add_test(tc, create_task_rejects_bad_arguments);
    tcase_add_test(tc, current_task_is_the_task_inside_and_null_outside);
    suite_add_tcase(s, tc);

    tc = tcase_create("ordering");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, tasks_take_turns_in_fifo_order_at_each_await);
    tcase_add_test(tc, tasks_awaiting_one_future_resume_in_the_order_they_awaited);
    suite_add_tcase(s, tc);

    tc = tcase_create("await");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, await_works_through_nested_helper_functions);
    tcase_add_test(tc, await_returns_the_error_of_a_failed_future);
    tcase_add_test(tc, an_error_propagates_through_awaited_tasks);
    tcase_add_test(tc, await_of_a_done_future_returns_at_once);
    tcase_add_test(tc, await_and_sleep_outside_a_task_return_enotask);
    tcase_add_test(tc, await_in_a_plain_callback_returns_enotask);
    tcase_add_test(tc, await_of_another_loops_future_or_of_itself_returns_einval);
    tcase_add_test(tc, set_result_and_set_exception_on_a_task_return_einval);
    suite_add_tcase(s, tc);

    tc = tcase_create("sleep");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, sleep_suspends_for_at_least_the_delay);
    tcase_add_test(tc, sleep_0_lets_the_callbacks_queued_meanwhile_run_first);
    suite_add_tcase(s, tc);

    tc = tcase_create("cancel");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, cancelling_a_suspended_task_makes_its_await_return_ecanceled);
    tcase_add_test(tc, cancelling_a_sleeping_task_wakes_it_at_once);
    tcase_add_test(tc, a_task_that_swallows_the_cancel_completes_with_its_result);
    tcase_add_test(tc, cancel_after_the_awaited_future_completed_still_returns_ecanceled);
    tcase_add_test(tc,
                   a_task_cancelled_before_it_started_runs_and_its_first_wait_returns_ecanceled);
    tcase_add_test(tc, a_running_task_that_is_cancelled_gets_ecanceled_at_its_next_wait);
    tcase_add_test(tc, a_task_that_returns_with_a_cancel_pending_is_cancelled);
    tcase_add_test(tc, cancelling_a_task_cancels_the_task_it_awaits);
    suite_add_tcase(s, tc);

    tc = tcase_create("close");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, loop_close_resumes_a_suspended_task_with_eclosed_and_cancels_it);
    tcase_add_test(tc, loop_close_runs_a_task_that_never_started_with_eclosed);
    tcase_add_test(tc, loop_close_resumes_a_task_whose_wakeup_was_queued);
    suite_add_tcase(s, tc);

    tc = tcase_create("stacks");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, a_task_runs_on_its_own_stack_with_a_guard_page_below);
    tcase_add_test(tc, set_task_stack_size_sets_the_size_of_new_stacks);
    tcase_add_test(tc, set_task_stack_size_rejects_sizes_out_of_range);
    tcase_add_test(tc, ten_thousand_tasks_suspend_and_finish);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(task_suite()); }
