/* Futures (not tasks): results, errors, cancellation, done callbacks and
 * ownership. */
#include "testutil.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

static asyncio_future *new_future(asyncio_loop *loop)
{
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_future(loop, &f), 0);
    ck_assert_ptr_nonnull(f);
    return f;
}

static int destroyed;
static void *destroyed_with;

static void destroy_cb(void *p)
{
    destroyed++;
    destroyed_with = p;
}

/* ---- Results and errors ----------------------------------------------------- */

START_TEST(create_future_returns_a_pending_future)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = new_future(loop);
    ck_assert_int_eq(asyncio_future_done(f), 0);
    ck_assert_int_eq(asyncio_future_cancelled(f), 0);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(set_result_makes_the_result_available)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = new_future(loop);
    int value = 42;
    ck_assert_int_eq(asyncio_future_set_result(f, &value, NULL), 0);
    ck_assert_int_eq(asyncio_future_done(f), 1);
    ck_assert_int_eq(asyncio_future_cancelled(f), 0);
    void *r = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &r), 0);
    ck_assert_ptr_eq(r, &value);
    ck_assert_int_eq(asyncio_future_exception(f), 0);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(intptr_t_results_round_trip)
{
    asyncio_loop *loop = tu_new_loop();
    static const intptr_t values[] = {0, 1, -1, 65536, INTPTR_MAX, INTPTR_MIN};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        asyncio_future *f = new_future(loop);
        ck_assert_int_eq(asyncio_future_set_result(f, (void *)values[i], NULL), 0);
        void *r = (void *)(intptr_t)12345;
        ck_assert_int_eq(asyncio_future_result(f, &r), 0);
        ck_assert((intptr_t)r == values[i]);
        asyncio_future_unref(f);
    }
    tu_free_loop(loop);
}
END_TEST

START_TEST(result_destroy_runs_once_when_the_future_is_freed)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = new_future(loop);
    int value;
    ck_assert_int_eq(asyncio_future_set_result(f, &value, destroy_cb), 0);
    ck_assert_int_eq(destroyed, 0);
    void *r = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &r), 0);
    ck_assert_int_eq(destroyed, 0);
    asyncio_future_ref(f);
    asyncio_future_unref(f);
    ck_assert_int_eq(destroyed, 0);
    asyncio_future_unref(f);
    ck_assert_int_eq(destroyed, 1);
    ck_assert_ptr_eq(destroyed_with, &value);
    tu_free_loop(loop);
    ck_assert_int_eq(destroyed, 1);
}
END_TEST

START_TEST(set_result_on_a_done_future_returns_einvalstate_and_keeps_the_first)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = new_future(loop);
    int first, second;
    ck_assert_int_eq(asyncio_future_set_result(f, &first, NULL), 0);
    ck_assert_int_eq(asyncio_future_set_result(f, &second, destroy_cb), ASYNCIO_EINVALSTATE);
    ck_assert_int_eq(asyncio_future_set_exception(f, -EIO), ASYNCIO_EINVALSTATE);
    void *r = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &r), 0);
    ck_assert_ptr_eq(r, &first);
    asyncio_future_unref(f);
    /* The refused result was not taken: its destroy never runs. */
    ck_assert_int_eq(destroyed, 0);
    tu_free_loop(loop);
}
END_TEST

START_TEST(set_exception_makes_result_and_exception_return_the_error)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = new_future(loop);
    ck_assert_int_eq(asyncio_future_set_exception(f, -ECONNREFUSED), 0);
    ck_assert_int_eq(asyncio_future_done(f), 1);
    ck_assert_int_eq(asyncio_future_cancelled(f), 0);
    void *r = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &r), -ECONNREFUSED);
    ck_assert_int_eq(asyncio_future_exception(f), -ECONNREFUSED);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(set_exception_accepts_library_codes)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = new_future(loop);
    ck_assert_int_eq(asyncio_future_set_exception(f, ASYNCIO_ECERT), 0);
    ck_assert_int_eq(asyncio_future_exception(f), ASYNCIO_ECERT);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(set_exception_with_a_nonnegative_error_returns_einval)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = new_future(loop);
    ck_assert_int_eq(asyncio_future_set_exception(f, 0), -EINVAL);
    ck_assert_int_eq(asyncio_future_set_exception(f, 5), -EINVAL);
    ck_assert_int_eq(asyncio_future_set_exception(f, ECONNREFUSED), -EINVAL);
    ck_assert_int_eq(asyncio_future_done(f), 0);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(result_and_exception_of_a_pending_future_return_einvalstate)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = new_future(loop);
    void *r = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &r), ASYNCIO_EINVALSTATE);
    ck_assert_int_eq(asyncio_future_exception(f), ASYNCIO_EINVALSTATE);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

/* ---- Cancellation ----------------------------------------------------------------- */

START_TEST(cancel_returns_1_then_0)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = new_future(loop);
    ck_assert_int_eq(asyncio_future_cancel(f), 1);
    ck_assert_int_eq(asyncio_future_cancel(f), 0);
    ck_assert_int_eq(asyncio_future_cancelled(f), 1);
    ck_assert_int_eq(asyncio_future_done(f), 1);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(cancel_of_a_future_with_a_result_returns_0)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = new_future(loop);
    ck_assert_int_eq(asyncio_future_set_result(f, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_future_cancel(f), 0);
    ck_assert_int_eq(asyncio_future_cancelled(f), 0);
    void *r = (void *)1;
    ck_assert_int_eq(asyncio_future_result(f, &r), 0);
    ck_assert_ptr_null(r);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(result_of_a_cancelled_future_returns_ecanceled)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = new_future(loop);
    ck_assert_int_eq(asyncio_future_cancel(f), 1);
    void *r = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &r), -ECANCELED);
    ck_assert_int_eq(asyncio_future_exception(f), -ECANCELED);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(set_result_on_a_cancelled_future_returns_einvalstate)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = new_future(loop);
    ck_assert_int_eq(asyncio_future_cancel(f), 1);
    ck_assert_int_eq(asyncio_future_set_result(f, NULL, destroy_cb), ASYNCIO_EINVALSTATE);
    ck_assert_int_eq(asyncio_future_set_exception(f, -EIO), ASYNCIO_EINVALSTATE);
    ck_assert_int_eq(asyncio_future_cancelled(f), 1);
    asyncio_future_unref(f);
    ck_assert_int_eq(destroyed, 0);
    tu_free_loop(loop);
}
END_TEST

/* ---- Done callbacks --------------------------------------------------------------- */

struct done_rec {
    tu_recorder *rec;
    int value;
    asyncio_future *expect_future;
};

static void done_record_cb(asyncio_future *f, void *arg)
{
    struct done_rec *d = arg;
    ck_assert_ptr_eq(f, d->expect_future);
    ck_assert_int_eq(asyncio_future_done(f), 1);
    tu_rec_push(d->rec, d->value);
}

START_TEST(done_callbacks_are_not_called_inline)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = new_future(loop);
    tu_recorder rec;
    tu_rec_init(&rec);
    struct done_rec d = {&rec, 1, f};
    ck_assert_int_eq(asyncio_future_add_done_callback(f, done_record_cb, &d), 0);
    ck_assert_int_eq(asyncio_future_set_result(f, NULL, NULL), 0);
    ck_assert_int_eq((int)rec.len, 0);
    tu_call_soon_stop(loop);
    tu_run(loop);
    static const int expected[] = {1};
    tu_rec_expect(&rec, expected, 1);
    tu_rec_free(&rec);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(done_callbacks_run_in_the_order_added_each_once)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = new_future(loop);
    tu_recorder rec;
    tu_rec_init(&rec);
    struct done_rec d[5];
    for (int i = 0; i < 5; i++) {
        d[i] = (struct done_rec){&rec, i, f};
        ck_assert_int_eq(asyncio_future_add_done_callback(f, done_record_cb, &d[i]), 0);
    }
    ck_assert_int_eq(asyncio_future_set_result(f, NULL, NULL), 0);
    tu_call_soon_stop(loop);
    tu_run(loop);
    tu_call_soon_stop(loop);
    tu_run(loop);
    static const int expected[] = {0, 1, 2, 3, 4};
    tu_rec_expect(&rec, expected, 5);
    tu_rec_free(&rec);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(done_callbacks_run_after_callbacks_scheduled_before_completion)
{
    /* They go through call_soon at completion: FIFO with other calls. */
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = new_future(loop);
    tu_recorder rec;
    tu_rec_init(&rec);
    struct done_rec d = {&rec, 2, f};
    tu_rec_item before = {&rec, 1}, after = {&rec, 3};
    ck_assert_int_eq(asyncio_future_add_done_callback(f, done_record_cb, &d), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, tu_rec_cb, &before, NULL), 0);
    ck_assert_int_eq(asyncio_future_set_result(f, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, tu_rec_cb, &after, NULL), 0);
    tu_call_soon_stop(loop);
    tu_run(loop);
    static const int expected[] = {1, 2, 3};
    tu_rec_expect(&rec, expected, 3);
    tu_rec_free(&rec);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(done_callbacks_run_when_the_future_is_cancelled_or_fails)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = new_future(loop), *g = new_future(loop);
    tu_recorder rec;
    tu_rec_init(&rec);
    struct done_rec df = {&rec, 1, f}, dg = {&rec, 2, g};
    ck_assert_int_eq(asyncio_future_add_done_callback(f, done_record_cb, &df), 0);
    ck_assert_int_eq(asyncio_future_add_done_callback(g, done_record_cb, &dg), 0);
    ck_assert_int_eq(asyncio_future_cancel(f), 1);
    ck_assert_int_eq(asyncio_future_set_exception(g, -EPIPE), 0);
    ck_assert_int_eq((int)rec.len, 0);
    tu_call_soon_stop(loop);
    tu_run(loop);
    static const int expected[] = {1, 2};
    tu_rec_expect(&rec, expected, 2);
    ck_assert_int_eq(asyncio_future_exception(g), -EPIPE);
    tu_rec_free(&rec);
    asyncio_future_unref(f);
    asyncio_future_unref(g);
    tu_free_loop(loop);
}
END_TEST

START_TEST(add_done_callback_on_a_done_future_schedules_it)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = new_future(loop);
    tu_recorder rec;
    tu_rec_init(&rec);
    ck_assert_int_eq(asyncio_future_set_result(f, NULL, NULL), 0);
    struct done_rec d = {&rec, 7, f};
    ck_assert_int_eq(asyncio_future_add_done_callback(f, done_record_cb, &d), 0);
    ck_assert_int_eq((int)rec.len, 0);
    tu_call_soon_stop(loop);
    tu_run(loop);
    static const int expected[] = {7};
    tu_rec_expect(&rec, expected, 1);
    tu_rec_free(&rec);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

static void done_other_cb(asyncio_future *f, void *arg) { done_record_cb(f, arg); }

START_TEST(remove_done_callback_returns_the_count_removed)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = new_future(loop);
    tu_recorder rec;
    tu_rec_init(&rec);
    struct done_rec a = {&rec, 1, f}, b = {&rec, 2, f}, c = {&rec, 3, f};
    ck_assert_int_eq(asyncio_future_add_done_callback(f, done_record_cb, &a), 0);
    ck_assert_int_eq(asyncio_future_add_done_callback(f, done_record_cb, &b), 0);
    ck_assert_int_eq(asyncio_future_add_done_callback(f, done_record_cb, &a), 0);
    ck_assert_int_eq(asyncio_future_add_done_callback(f, done_other_cb, &c), 0);
    ck_assert_int_eq(asyncio_future_add_done_callback(f, done_record_cb, &a), 0);
    /* Same callback with another arg, and another callback with the same
     * arg, are different pairs. */
    ck_assert_int_eq(asyncio_future_add_done_callback(f, done_other_cb, &a), 0);
    ck_assert_int_eq(asyncio_future_remove_done_callback(f, done_record_cb, &a), 3);
    ck_assert_int_eq(asyncio_future_remove_done_callback(f, done_record_cb, &a), 0);
    ck_assert_int_eq(asyncio_future_remove_done_callback(f, done_record_cb, &c), 0);
    ck_assert_int_eq(asyncio_future_set_result(f, NULL, NULL), 0);
    tu_call_soon_stop(loop);
    tu_run(loop);
    static const int expected[] = {2, 3, 1};
    tu_rec_expect(&rec, expected, 3);
    tu_rec_free(&rec);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(remove_done_callback_after_completion_returns_0)
{
    /* Once the future is done its callbacks are scheduled, not pending. */
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = new_future(loop);
    tu_recorder rec;
    tu_rec_init(&rec);
    struct done_rec a = {&rec, 1, f};
    ck_assert_int_eq(asyncio_future_add_done_callback(f, done_record_cb, &a), 0);
    ck_assert_int_eq(asyncio_future_set_result(f, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_future_remove_done_callback(f, done_record_cb, &a), 0);
    tu_call_soon_stop(loop);
    tu_run(loop);
    static const int expected[] = {1};
    tu_rec_expect(&rec, expected, 1);
    tu_rec_free(&rec);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

/* ---- Ownership ---------------------------------------------------------------------- */

START_TEST(get_loop_returns_the_futures_loop)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = new_future(loop);
    ck_assert_ptr_eq(asyncio_future_get_loop(f), loop);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(a_future_keeps_its_loop_alive)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = new_future(loop);
    asyncio_loop_unref(loop);
    asyncio_loop *l = asyncio_future_get_loop(f);
    ck_assert_ptr_eq(l, loop);
    ck_assert_int_eq(asyncio_loop_is_closed(l), 0);
    tu_guard(l, TU_GUARD_SECONDS);
    ck_assert_int_eq(asyncio_future_set_result(f, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(l, f), 0);
    ck_assert_int_eq(asyncio_loop_close(l), 0);
    asyncio_future_unref(f);
}
END_TEST

static asyncio_future *held;

static void hold_done_cb(asyncio_future *f, void *arg)
{
    (void)arg;
    held = f;
    void *r = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &r), 0);
    ck_assert_ptr_eq(r, &destroyed);
}

START_TEST(a_scheduled_done_callback_keeps_its_future_alive)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = new_future(loop);
    ck_assert_int_eq(asyncio_future_add_done_callback(f, hold_done_cb, NULL), 0);
    ck_assert_int_eq(asyncio_future_set_result(f, &destroyed, destroy_cb), 0);
    asyncio_future_unref(f);
    ck_assert_int_eq(destroyed, 0);
    tu_call_soon_stop(loop);
    tu_run(loop);
    ck_assert_ptr_eq(held, f);
    /* Freed once the callback that held it has run. */
    ck_assert_int_eq(destroyed, 1);
    tu_free_loop(loop);
}
END_TEST

START_TEST(releasing_a_future_does_not_cancel_it)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = new_future(loop);
    asyncio_future_ref(f);
    asyncio_future_unref(f);
    ck_assert_int_eq(asyncio_future_cancelled(f), 0);
    ck_assert_int_eq(asyncio_future_done(f), 0);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

static Suite *future_suite(void)
{
    Suite *s = suite_create("future");
    TCase *tc = tcase_create("results");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, create_future_returns_a_pending_future);
    tcase_add_test(tc, set_result_makes_the_result_available);
    tcase_add_test(tc, intptr_t_results_round_trip);
    tcase_add_test(tc, result_destroy_runs_once_when_the_future_is_freed);
    tcase_add_test(tc, set_result_on_a_done_future_returns_einvalstate_and_keeps_the_first);
    tcase_add_test(tc, set_exception_makes_result_and_exception_return_the_error);
    tcase_add_test(tc, set_exception_accepts_library_codes);
    tcase_add_test(tc, set_exception_with_a_nonnegative_error_returns_einval);
    tcase_add_test(tc, result_and_exception_of_a_pending_future_return_einvalstate);
    suite_add_tcase(s, tc);

    tc = tcase_create("cancel");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, cancel_returns_1_then_0);
    tcase_add_test(tc, cancel_of_a_future_with_a_result_returns_0);
    tcase_add_test(tc, result_of_a_cancelled_future_returns_ecanceled);
    tcase_add_test(tc, set_result_on_a_cancelled_future_returns_einvalstate);
    suite_add_tcase(s, tc);

    tc = tcase_create("done_callbacks");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, done_callbacks_are_not_called_inline);
    tcase_add_test(tc, done_callbacks_run_in_the_order_added_each_once);
    tcase_add_test(tc, done_callbacks_run_after_callbacks_scheduled_before_completion);
    tcase_add_test(tc, done_callbacks_run_when_the_future_is_cancelled_or_fails);
    tcase_add_test(tc, add_done_callback_on_a_done_future_schedules_it);
    tcase_add_test(tc, remove_done_callback_returns_the_count_removed);
    tcase_add_test(tc, remove_done_callback_after_completion_returns_0);
    suite_add_tcase(s, tc);

    tc = tcase_create("ownership");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, get_loop_returns_the_futures_loop);
    tcase_add_test(tc, a_future_keeps_its_loop_alive);
    tcase_add_test(tc, a_scheduled_done_callback_keeps_its_future_alive);
    tcase_add_test(tc, releasing_a_future_does_not_cancel_it);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(future_suite()); }
