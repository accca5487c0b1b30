/* call_later, call_at and timer handles. */
#include "testutil.h"

#include <stdint.h>
#include <stdlib.h>

static int ran;

static void count_cb(void *arg)
{
    (void)arg;
    ran++;
}

static void fail_cb(void *arg) { ck_abort_msg("%s", (const char *)arg); }

/* A small seeded generator, the same on every platform. */
static uint32_t rng_state;

static void rng_seed(uint32_t seed) { rng_state = seed; }

static uint32_t rng_next(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

/* ---- Ordering -------------------------------------------------------------- */

START_TEST(call_later_runs_timers_in_deadline_order)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tu_recorder rec;
    tu_rec_init(&rec);
    enum { N = 5 };
    static const double delays[N] = {0.05, 0.01, 0.03, 0.02, 0.04};
    tu_rec_item items[N];
    asyncio_handle *h[N];
    for (int i = 0; i < N; i++) {
        items[i].rec = &rec;
        items[i].value = i;
        ck_assert_int_eq(asyncio_loop_call_later(loop, delays[i], tu_rec_cb, &items[i], &h[i]), 0);
    }
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.06, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
    /* Deadline order.  It is the order of the delays unless scheduling
     * itself was slowed down (a loaded machine), so it is checked against
     * the deadlines the handles report. */
    ck_assert_int_eq((int)rec.len, N);
    for (int j = 1; j < N; j++) {
        double a = asyncio_handle_when(h[rec.v[j - 1]]), b = asyncio_handle_when(h[rec.v[j]]);
        ck_assert_msg(a <= b, "timer %d (deadline %.6f) ran before timer %d (deadline %.6f)",
                      rec.v[j - 1], a, rec.v[j], b);
    }
    for (int i = 0; i < N; i++)
        asyncio_handle_unref(h[i]);
    tu_rec_free(&rec);
    tu_free_loop(loop);
}
END_TEST

START_TEST(call_at_with_equal_deadlines_runs_in_scheduling_order)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tu_recorder rec;
    tu_rec_init(&rec);
    enum { N = 100 };
    static tu_rec_item items[N];
    static int expected[N];
    double when = asyncio_loop_time(loop) + 0.02;
    for (int i = 0; i < N; i++) {
        items[i].rec = &rec;
        items[i].value = i;
        expected[i] = i;
        ck_assert_int_eq(asyncio_loop_call_at(loop, when, tu_rec_cb, &items[i], NULL), 0);
    }
    ck_assert_int_eq(asyncio_loop_call_at(loop, when, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
    tu_rec_expect(&rec, expected, N);
    tu_rec_free(&rec);
    tu_free_loop(loop);
}
END_TEST

/* Check that `rec` holds every index 0..n-1 sorted by (slot[i], i). */
static void expect_deadline_then_sequence_order(const tu_recorder *rec, const int *slot, int n)
{
    ck_assert_int_eq((int)rec->len, n);
    for (int j = 1; j < n; j++) {
        int a = rec->v[j - 1], b = rec->v[j];
        ck_assert_msg(slot[a] < slot[b] || (slot[a] == slot[b] && a < b),
                      "timer %d (slot %d) ran before timer %d (slot %d)", a, slot[a], b, slot[b]);
    }
}

#define N_TIED 10000

START_TEST(many_timers_with_tied_deadlines_fire_in_deadline_then_sequence_order)
{
    asyncio_loop *loop = tu_new_loop();
    tu_guard(loop, 20);
    tu_recorder rec;
    tu_rec_init(&rec);
    static tu_rec_item items[N_TIED];
    static int slot[N_TIED];
    rng_seed(12345);
    double base = asyncio_loop_time(loop) + 0.05;
    for (int i = 0; i < N_TIED; i++) {
        slot[i] = (int)(rng_next() % 10);
        items[i].rec = &rec;
        items[i].value = i;
        ck_assert_int_eq(
            asyncio_loop_call_at(loop, base + slot[i] * 0.002, tu_rec_cb, &items[i], NULL), 0);
    }
    ck_assert_int_eq(asyncio_loop_call_at(loop, base + 0.1, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
    expect_deadline_then_sequence_order(&rec, slot, N_TIED);
    tu_rec_free(&rec);
    tu_free_loop(loop);
}
END_TEST

#define N_MANY 100000

START_TEST(cancelling_most_of_many_timers_still_fires_the_rest_in_order)
{
    asyncio_loop *loop = tu_new_loop();
    tu_guard(loop, 20);
    tu_recorder rec;
    tu_rec_init(&rec);
    static asyncio_handle *handles[N_MANY];
    static int slot[N_MANY];
    static tu_rec_item items[N_MANY];
    rng_seed(777);
    double base = asyncio_loop_time(loop) + 0.3;
    for (int i = 0; i < N_MANY; i++) {
        slot[i] = (int)(rng_next() % 1000);
        items[i].rec = &rec;
        items[i].value = i;
        ck_assert_int_eq(asyncio_loop_call_at(
                             loop, base + slot[i] * 0.0001, (i % 10000 == 7) ? tu_rec_cb : fail_cb,
                             (i % 10000 == 7) ? (void *)&items[i] : (void *)"cancelled timer ran",
                             &handles[i]),
                         0);
    }
    int cancelled = 0;
    for (int i = 0; i < N_MANY; i++) {
        if (i % 10000 != 7) {
            ck_assert_int_eq(asyncio_handle_cancel(handles[i]), 0);
            cancelled++;
        }
        asyncio_handle_unref(handles[i]);
    }
    ck_assert_int_eq(cancelled, 99990);
    ck_assert_int_eq(asyncio_loop_call_at(loop, base + 0.2, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);

    ck_assert_int_eq((int)rec.len, 10);
    for (size_t j = 1; j < rec.len; j++) {
        int a = rec.v[j - 1], b = rec.v[j];
        ck_assert_msg(slot[a] < slot[b] || (slot[a] == slot[b] && a < b),
                      "timer %d (slot %d) ran before timer %d (slot %d)", a, slot[a], b, slot[b]);
    }
    for (size_t j = 0; j < rec.len; j++)
        ck_assert_int_eq(rec.v[j] % 10000, 7);
    tu_rec_free(&rec);
    tu_free_loop(loop);
}
END_TEST

/* ---- Deadlines -------------------------------------------------------------- */

START_TEST(negative_delay_is_treated_as_zero)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_handle *h = NULL;
    double t0 = asyncio_loop_time(loop);
    ck_assert_int_eq(asyncio_loop_call_later(loop, -5, count_cb, NULL, &h), 0);
    double t1 = asyncio_loop_time(loop);
    double when = asyncio_handle_when(h);
    ck_assert_msg(when >= t0 && when <= t1, "deadline %.6f for delay -5 at [%.6f, %.6f]", when, t0,
                  t1);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.01, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
    ck_assert_int_eq(ran, 1);
    asyncio_handle_unref(h);
    tu_free_loop(loop);
}
END_TEST

START_TEST(zero_delay_timer_runs_after_already_queued_call_soon_callbacks)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tu_recorder rec;
    tu_rec_init(&rec);
    tu_rec_item a = {&rec, 'A'}, b = {&rec, 'B'}, c = {&rec, 'C'};
    ck_assert_int_eq(asyncio_loop_call_soon(loop, tu_rec_cb, &a, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0, tu_rec_cb, &b, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, tu_rec_cb, &c, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.01, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
    static const int expected[] = {'A', 'C', 'B'};
    tu_rec_expect(&rec, expected, 3);
    tu_rec_free(&rec);
    tu_free_loop(loop);
}
END_TEST

struct early {
    asyncio_loop *loop;
    asyncio_handle *h;
    double loop_time, mono;
};

static void early_cb(void *arg)
{
    struct early *e = arg;
    e->loop_time = asyncio_loop_time(e->loop);
    e->mono = tu_now();
}

START_TEST(timer_does_not_fire_before_its_deadline)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    static const double delays[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.05};
    enum { N = sizeof(delays) / sizeof(delays[0]) };
    struct early e[N];
    for (int i = 0; i < N; i++) {
        e[i].loop = loop;
        e[i].loop_time = e[i].mono = -1;
        ck_assert_int_eq(asyncio_loop_call_later(loop, delays[i], early_cb, &e[i], &e[i].h), 0);
    }
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.06, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
    for (int i = 0; i < N; i++) {
        double when = asyncio_handle_when(e[i].h);
        ck_assert_msg(e[i].loop_time >= when, "timer %d ran at loop time %.9f, deadline %.9f", i,
                      e[i].loop_time, when);
        ck_assert_msg(e[i].mono >= when, "timer %d ran at %.9f (CLOCK_MONOTONIC), deadline %.9f", i,
                      e[i].mono, when);
        asyncio_handle_unref(e[i].h);
    }
    tu_free_loop(loop);
}
END_TEST

START_TEST(call_later_fires_close_to_its_deadline)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct early e = {loop, NULL, -1, -1};
    double t0 = tu_now();
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.05, early_cb, &e, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.05, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
    ck_assert_msg(e.mono - t0 >= 0.05 && e.mono - t0 < 0.5, "0.05 s timer fired after %.4f s",
                  e.mono - t0);
    tu_free_loop(loop);
}
END_TEST

static asyncio_loop *sooner_loop;

static void add_sooner_cb(void *arg)
{
    struct early *e = arg;
    ck_assert_int_eq(asyncio_loop_call_later(sooner_loop, 0.02, early_cb, e, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_later(sooner_loop, 0.02, tu_stop_cb, sooner_loop, NULL), 0);
}

START_TEST(sooner_timer_added_while_a_later_one_is_pending_fires_on_time)
{
    sooner_loop = tu_new_guarded_loop();
    struct early e = {sooner_loop, NULL, -1, -1};
    ck_assert_int_eq(asyncio_loop_call_later(sooner_loop, 3, fail_cb, "late timer ran", NULL), 0);
    /* Added from a timer callback, once the loop already waits for 3 s. */
    ck_assert_int_eq(asyncio_loop_call_later(sooner_loop, 0.01, add_sooner_cb, &e, NULL), 0);
    double t0 = tu_now();
    tu_run(sooner_loop);
    ck_assert_msg(e.mono > 0 && e.mono - t0 < 1.0, "sooner timer ran %.3f s after start",
                  e.mono - t0);
    tu_free_loop(sooner_loop);
}
END_TEST

START_TEST(handle_when_returns_the_deadline)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_handle *at = NULL, *later = NULL;
    double when = asyncio_loop_time(loop) + 1.2345;
    ck_assert_int_eq(asyncio_loop_call_at(loop, when, count_cb, NULL, &at), 0);
    ck_assert(asyncio_handle_when(at) == when);
    double t0 = asyncio_loop_time(loop);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 2, count_cb, NULL, &later), 0);
    double t1 = asyncio_loop_time(loop);
    double w = asyncio_handle_when(later);
    ck_assert_msg(w >= t0 + 2 && w <= t1 + 2, "deadline %.6f for +2 s at [%.6f, %.6f]", w, t0, t1);
    asyncio_handle_unref(at);
    asyncio_handle_unref(later);
    tu_free_loop(loop);
}
END_TEST

START_TEST(call_at_in_the_past_runs_soon)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_handle *h = NULL;
    double when = asyncio_loop_time(loop) - 10;
    ck_assert_int_eq(asyncio_loop_call_at(loop, when, tu_stop_cb, loop, &h), 0);
    ck_assert(asyncio_handle_when(h) == when);
    double t0 = tu_now();
    tu_run(loop);
    ck_assert_msg(tu_now() - t0 < 1.0, "past timer ran after %.3f s", tu_now() - t0);
    asyncio_handle_unref(h);
    tu_free_loop(loop);
}
END_TEST

START_TEST(very_far_timer_neither_fires_nor_delays_other_timers)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_handle *far = NULL;
    ck_assert_int_eq(asyncio_loop_call_later(loop, 1e9, fail_cb, "far timer ran", &far), 0);
    ck_assert(asyncio_handle_when(far) > asyncio_loop_time(loop) + 1e8);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.01, count_cb, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.02, tu_stop_cb, loop, NULL), 0);
    double t0 = tu_now();
    tu_run(loop);
    ck_assert_int_eq(ran, 1);
    ck_assert(tu_now() - t0 < 1.0);
    asyncio_handle_unref(far);
    tu_free_loop(loop);
}
END_TEST

/* ---- Cancelling ---------------------------------------------------------------- */

START_TEST(cancelled_timer_does_not_run)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_handle *h = NULL;
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.01, fail_cb, "cancelled timer ran", &h), 0);
    ck_assert_int_eq(asyncio_handle_cancel(h), 0);
    ck_assert_int_eq(asyncio_handle_cancelled(h), 1);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.03, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
    asyncio_handle_unref(h);
    tu_free_loop(loop);
}
END_TEST

static asyncio_handle *victim;

static void cancel_victim_cb(void *arg)
{
    (void)arg;
    ck_assert_int_eq(asyncio_handle_cancel(victim), 0);
}

START_TEST(timer_cancelled_by_an_earlier_timer_due_at_the_same_time_does_not_run)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    double when = asyncio_loop_time(loop) + 0.01;
    ck_assert_int_eq(asyncio_loop_call_at(loop, when, cancel_victim_cb, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_at(loop, when, fail_cb, "cancelled timer ran", &victim), 0);
    ck_assert_int_eq(asyncio_loop_call_at(loop, when + 0.01, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
    asyncio_handle_unref(victim);
    tu_free_loop(loop);
}
END_TEST

START_TEST(cancelling_a_timer_that_ran_is_a_noop)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_handle *h = NULL;
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.001, count_cb, NULL, &h), 0);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.01, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
    ck_assert_int_eq(ran, 1);
    ck_assert_int_eq(asyncio_handle_cancel(h), 0);
    ck_assert_int_eq(asyncio_handle_cancelled(h), 0);
    asyncio_handle_unref(h);
    tu_free_loop(loop);
}
END_TEST

START_TEST(releasing_a_timer_handle_does_not_cancel_it)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_handle *h = NULL;
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.001, count_cb, NULL, &h), 0);
    asyncio_handle_unref(h);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.01, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
    ck_assert_int_eq(ran, 1);
    tu_free_loop(loop);
}
END_TEST

static Suite *timers_suite(void)
{
    Suite *s = suite_create("timers");
    TCase *tc = tcase_create("order");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, call_later_runs_timers_in_deadline_order);
    tcase_add_test(tc, call_at_with_equal_deadlines_runs_in_scheduling_order);
    suite_add_tcase(s, tc);

    tc = tcase_create("many");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, many_timers_with_tied_deadlines_fire_in_deadline_then_sequence_order);
    tcase_add_test(tc, cancelling_most_of_many_timers_still_fires_the_rest_in_order);
    suite_add_tcase(s, tc);

    tc = tcase_create("deadlines");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, negative_delay_is_treated_as_zero);
    tcase_add_test(tc, zero_delay_timer_runs_after_already_queued_call_soon_callbacks);
    tcase_add_test(tc, timer_does_not_fire_before_its_deadline);
    tcase_add_test(tc, call_later_fires_close_to_its_deadline);
    tcase_add_test(tc, sooner_timer_added_while_a_later_one_is_pending_fires_on_time);
    tcase_add_test(tc, handle_when_returns_the_deadline);
    tcase_add_test(tc, call_at_in_the_past_runs_soon);
    tcase_add_test(tc, very_far_timer_neither_fires_nor_delays_other_timers);
    suite_add_tcase(s, tc);

    tc = tcase_create("cancel");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, cancelled_timer_does_not_run);
    tcase_add_test(tc, timer_cancelled_by_an_earlier_timer_due_at_the_same_time_does_not_run);
    tcase_add_test(tc, cancelling_a_timer_that_ran_is_a_noop);
    tcase_add_test(tc, releasing_a_timer_handle_does_not_cancel_it);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(timers_suite()); }
