/* call_soon, call_soon_threadsafe and handles. */
#include "testutil.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static int ran;

static void count_cb(void *arg)
{
    (void)arg;
    ran++;
}

static void fail_cb(void *arg) { ck_abort_msg("%s", (const char *)arg); }

/* ---- call_soon ----------------------------------------------------------------- */

#define N_FIFO 1000

START_TEST(call_soon_runs_callbacks_in_fifo_order)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tu_recorder rec;
    tu_rec_init(&rec);
    static tu_rec_item items[N_FIFO];
    static int expected[N_FIFO];
    for (int i = 0; i < N_FIFO; i++) {
        items[i].rec = &rec;
        items[i].value = i;
        expected[i] = i;
        ck_assert_int_eq(asyncio_loop_call_soon(loop, tu_rec_cb, &items[i], NULL), 0);
    }
    tu_call_soon_stop(loop);
    tu_run(loop);
    tu_rec_expect(&rec, expected, N_FIFO);
    tu_rec_free(&rec);
    tu_free_loop(loop);
}
END_TEST

static int counts[N_FIFO];

static void count_index_cb(void *arg) { counts[(intptr_t)arg]++; }

START_TEST(call_soon_runs_each_callback_exactly_once)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    for (intptr_t i = 0; i < N_FIFO; i++)
        ck_assert_int_eq(asyncio_loop_call_soon(loop, count_index_cb, (void *)i, NULL), 0);
    tu_call_soon_stop(loop);
    tu_run(loop);
    /* A second run must not run any of them again. */
    tu_call_soon_stop(loop);
    tu_run(loop);
    for (int i = 0; i < N_FIFO; i++)
        ck_assert_msg(counts[i] == 1, "callback %d ran %d times", i, counts[i]);
    tu_free_loop(loop);
}
END_TEST

static void *seen_arg;

static void record_arg_cb(void *arg) { seen_arg = arg; }

START_TEST(call_soon_passes_its_argument)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int x;
    ck_assert_int_eq(asyncio_loop_call_soon(loop, record_arg_cb, &x, NULL), 0);
    tu_call_soon_stop(loop);
    tu_run(loop);
    ck_assert_ptr_eq(seen_arg, &x);
    tu_free_loop(loop);
}
END_TEST

START_TEST(call_soon_with_null_out_still_schedules)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_call_soon(loop, count_cb, NULL, NULL), 0);
    tu_call_soon_stop(loop);
    tu_run(loop);
    ck_assert_int_eq(ran, 1);
    tu_free_loop(loop);
}
END_TEST

START_TEST(call_soon_does_not_run_the_callback_inline)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_call_soon(loop, count_cb, NULL, NULL), 0);
    ck_assert_int_eq(ran, 0);
    tu_call_soon_stop(loop);
    tu_run(loop);
    ck_assert_int_eq(ran, 1);
    tu_free_loop(loop);
}
END_TEST

struct chain {
    asyncio_loop *loop;
    tu_recorder rec;
};

static struct chain chain;

static void chain_f(void *arg)
{
    (void)arg;
    tu_rec_push(&chain.rec, 'F');
    ck_assert_int_eq(asyncio_loop_stop(chain.loop), 0);
}

static void chain_leaf(void *arg) { tu_rec_push(&chain.rec, (int)(intptr_t)arg); }

static void chain_c(void *arg)
{
    (void)arg;
    tu_rec_push(&chain.rec, 'C');
    ck_assert_int_eq(asyncio_loop_call_soon(chain.loop, chain_f, NULL, NULL), 0);
}

static void chain_a(void *arg)
{
    (void)arg;
    tu_rec_push(&chain.rec, 'A');
    ck_assert_int_eq(asyncio_loop_call_soon(chain.loop, chain_c, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(chain.loop, chain_leaf, (void *)(intptr_t)'D', NULL),
                     0);
}

static void chain_b(void *arg)
{
    (void)arg;
    tu_rec_push(&chain.rec, 'B');
    ck_assert_int_eq(asyncio_loop_call_soon(chain.loop, chain_leaf, (void *)(intptr_t)'E', NULL),
                     0);
}

START_TEST(callbacks_scheduled_by_callbacks_keep_fifo_order_across_batches)
{
    chain.loop = tu_new_guarded_loop();
    tu_rec_init(&chain.rec);
    ck_assert_int_eq(asyncio_loop_call_soon(chain.loop, chain_a, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(chain.loop, chain_b, NULL, NULL), 0);
    tu_run(chain.loop);
    static const int expected[] = {'A', 'B', 'C', 'D', 'E', 'F'};
    tu_rec_expect(&chain.rec, expected, 6);
    tu_rec_free(&chain.rec);
    tu_free_loop(chain.loop);
}
END_TEST

/* ---- Handles ----------------------------------------------------------------- */

START_TEST(handle_cancel_before_run_prevents_the_call)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_handle *h = NULL;
    ck_assert_int_eq(asyncio_loop_call_soon(loop, fail_cb, "cancelled call ran", &h), 0);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, count_cb, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_handle_cancel(h), 0);
    tu_call_soon_stop(loop);
    tu_run(loop);
    ck_assert_int_eq(ran, 1);
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

START_TEST(handle_cancelled_by_an_earlier_callback_of_the_same_batch_does_not_run)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_call_soon(loop, cancel_victim_cb, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, fail_cb, "cancelled call ran", &victim), 0);
    tu_call_soon_stop(loop);
    tu_run(loop);
    ck_assert_int_eq(asyncio_handle_cancelled(victim), 1);
    asyncio_handle_unref(victim);
    tu_free_loop(loop);
}
END_TEST

START_TEST(handle_cancel_is_idempotent)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_handle *h = NULL;
    ck_assert_int_eq(asyncio_loop_call_soon(loop, fail_cb, "cancelled call ran", &h), 0);
    ck_assert_int_eq(asyncio_handle_cancel(h), 0);
    ck_assert_int_eq(asyncio_handle_cancel(h), 0);
    ck_assert_int_eq(asyncio_handle_cancel(h), 0);
    ck_assert_int_eq(asyncio_handle_cancelled(h), 1);
    tu_call_soon_stop(loop);
    tu_run(loop);
    ck_assert_int_eq(asyncio_handle_cancelled(h), 1);
    asyncio_handle_unref(h);
    tu_free_loop(loop);
}
END_TEST

START_TEST(handle_cancel_after_the_call_ran_is_a_noop)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_handle *h = NULL;
    ck_assert_int_eq(asyncio_loop_call_soon(loop, count_cb, NULL, &h), 0);
    tu_call_soon_stop(loop);
    tu_run(loop);
    ck_assert_int_eq(ran, 1);
    ck_assert_int_eq(asyncio_handle_cancel(h), 0);
    ck_assert_int_eq(asyncio_handle_cancelled(h), 0);
    tu_call_soon_stop(loop);
    tu_run(loop);
    ck_assert_int_eq(ran, 1);
    asyncio_handle_unref(h);
    tu_free_loop(loop);
}
END_TEST

START_TEST(handle_cancelled_is_0_until_cancel)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_handle *h = NULL;
    ck_assert_int_eq(asyncio_loop_call_soon(loop, count_cb, NULL, &h), 0);
    ck_assert_int_eq(asyncio_handle_cancelled(h), 0);
    ck_assert_int_eq(asyncio_handle_cancel(h), 0);
    ck_assert_int_eq(asyncio_handle_cancelled(h), 1);
    asyncio_handle_unref(h);
    tu_free_loop(loop);
}
END_TEST

START_TEST(handle_when_is_minus_one_for_call_soon)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_handle *h = NULL, *ts = NULL;
    ck_assert_int_eq(asyncio_loop_call_soon(loop, count_cb, NULL, &h), 0);
    ck_assert_int_eq(asyncio_loop_call_soon_threadsafe(loop, count_cb, NULL, &ts), 0);
    ck_assert(asyncio_handle_when(h) == -1.0);
    ck_assert(asyncio_handle_when(ts) == -1.0);
    asyncio_handle_unref(h);
    asyncio_handle_unref(ts);
    tu_free_loop(loop);
}
END_TEST

START_TEST(releasing_a_handle_does_not_cancel_the_call)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_handle *h = NULL;
    ck_assert_int_eq(asyncio_loop_call_soon(loop, count_cb, NULL, &h), 0);
    asyncio_handle_ref(h);
    asyncio_handle_unref(h);
    asyncio_handle_unref(h);
    tu_call_soon_stop(loop);
    tu_run(loop);
    ck_assert_int_eq(ran, 1);
    tu_free_loop(loop);
}
END_TEST

/* ---- call_soon_threadsafe ---------------------------------------------------- */

START_TEST(call_soon_threadsafe_from_the_loop_thread_runs_the_call)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_call_soon_threadsafe(loop, count_cb, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_soon_threadsafe(loop, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
    ck_assert_int_eq(ran, 1);
    tu_free_loop(loop);
}
END_TEST

START_TEST(call_soon_threadsafe_handle_cancel_prevents_the_call)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_handle *h = NULL;
    ck_assert_int_eq(asyncio_loop_call_soon_threadsafe(loop, fail_cb, "cancelled call ran", &h), 0);
    ck_assert_int_eq(asyncio_handle_cancel(h), 0);
    ck_assert_int_eq(asyncio_loop_call_soon_threadsafe(loop, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
    asyncio_handle_unref(h);
    tu_free_loop(loop);
}
END_TEST

struct wake {
    asyncio_loop *loop;
    pthread_t thread;
    double sent, received;
    int rc;
};

static void woke_cb(void *arg)
{
    struct wake *w = arg;
    w->received = tu_now();
    ck_assert_int_eq(asyncio_loop_stop(w->loop), 0);
}

static void *waker_main(void *arg)
{
    struct wake *w = arg;
    /* Not synchronisation: give the loop time to fall asleep on its
     * 30 s timer, which is the situation under test. */
    usleep(200000);
    w->sent = tu_now();
    w->rc = asyncio_loop_call_soon_threadsafe(w->loop, woke_cb, w, NULL);
    return NULL;
}

static void start_waker_cb(void *arg)
{
    struct wake *w = arg;
    ck_assert_int_eq(pthread_create(&w->thread, NULL, waker_main, w), 0);
}

START_TEST(call_soon_threadsafe_from_another_thread_wakes_a_sleeping_loop)
{
    struct wake w = {tu_new_loop(), 0, 0, 0, 1};
    tu_guard(w.loop, 8);
    ck_assert_int_eq(asyncio_loop_call_later(w.loop, 30, fail_cb, "far timer ran", NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(w.loop, start_waker_cb, &w, NULL), 0);
    double t0 = tu_now();
    tu_run(w.loop);
    ck_assert_int_eq(pthread_join(w.thread, NULL), 0);
    ck_assert_int_eq(w.rc, 0);
    ck_assert(w.received > 0);
    ck_assert_msg(w.received - w.sent < 5.0, "woke %.3f s after call_soon_threadsafe",
                  w.received - w.sent);
    ck_assert_msg(tu_now() - t0 < 5.0, "run took %.3f s", tu_now() - t0);
    tu_free_loop(w.loop);
}
END_TEST

#define N_THREADS 4
#define N_PER_THREAD 10000

static asyncio_loop *mt_loop;
static int mt_counts[N_THREADS * N_PER_THREAD];
static int mt_last[N_THREADS];
static int mt_total;
static int mt_out_of_order;
static int mt_rc[N_THREADS];
static pthread_t mt_threads[N_THREADS];

static void mt_cb(void *arg)
{
    intptr_t idx = (intptr_t)arg;
    int t = (int)(idx / N_PER_THREAD), i = (int)(idx % N_PER_THREAD);
    mt_counts[idx]++;
    if (i <= mt_last[t])
        mt_out_of_order++;
    mt_last[t] = i;
    if (++mt_total == N_THREADS * N_PER_THREAD)
        ck_assert_int_eq(asyncio_loop_stop(mt_loop), 0);
}

static void *mt_main(void *arg)
{
    intptr_t t = (intptr_t)arg;
    for (intptr_t i = 0; i < N_PER_THREAD; i++) {
        int rc =
            asyncio_loop_call_soon_threadsafe(mt_loop, mt_cb, (void *)(t * N_PER_THREAD + i), NULL);
        if (rc != 0 && mt_rc[t] == 0)
            mt_rc[t] = rc;
    }
    return NULL;
}

static void mt_start_cb(void *arg)
{
    (void)arg;
    for (intptr_t t = 0; t < N_THREADS; t++)
        ck_assert_int_eq(pthread_create(&mt_threads[t], NULL, mt_main, (void *)t), 0);
}

START_TEST(call_soon_threadsafe_from_many_threads_runs_every_call_once_in_order)
{
    mt_loop = tu_new_loop();
    tu_guard(mt_loop, 25);
    for (int t = 0; t < N_THREADS; t++)
        mt_last[t] = -1;
    ck_assert_int_eq(asyncio_loop_call_soon(mt_loop, mt_start_cb, NULL, NULL), 0);
    tu_run(mt_loop);
    for (int t = 0; t < N_THREADS; t++) {
        ck_assert_int_eq(pthread_join(mt_threads[t], NULL), 0);
        ck_assert_int_eq(mt_rc[t], 0);
    }
    ck_assert_int_eq(mt_total, N_THREADS * N_PER_THREAD);
    for (int i = 0; i < N_THREADS * N_PER_THREAD; i++)
        ck_assert_msg(mt_counts[i] == 1, "call %d ran %d times", i, mt_counts[i]);
    ck_assert_msg(mt_out_of_order == 0, "%d calls ran before an earlier call of their thread",
                  mt_out_of_order);
    tu_free_loop(mt_loop);
}
END_TEST

struct race {
    asyncio_loop *loop;
    pthread_t thread;
    volatile int go;
    int calls_ok, calls_closed, calls_other;
};

static void *race_main(void *arg)
{
    struct race *r = arg;
    for (;;) {
        int rc = asyncio_loop_call_soon_threadsafe(r->loop, count_cb, NULL, NULL);
        if (rc == 0) {
            r->calls_ok++;
            __atomic_store_n(&r->go, 1, __ATOMIC_RELEASE);
        } else if (rc == ASYNCIO_ECLOSED) {
            r->calls_closed++;
            break;
        } else {
            r->calls_other++;
            break;
        }
    }
    return NULL;
}

START_TEST(call_soon_threadsafe_racing_close_returns_eclosed_and_never_crashes)
{
    for (int round = 0; round < 20; round++) {
        struct race r = {tu_new_guarded_loop(), 0, 0, 0, 0, 0};
        /* The thread's own reference keeps the memory valid after close. */
        asyncio_loop_ref(r.loop);
        ck_assert_int_eq(pthread_create(&r.thread, NULL, race_main, &r), 0);
        while (!__atomic_load_n(&r.go, __ATOMIC_ACQUIRE)) {
        }
        ck_assert_int_eq(asyncio_loop_close(r.loop), 0);
        ck_assert_int_eq(pthread_join(r.thread, NULL), 0);
        ck_assert_int_ge(r.calls_ok, 1);
        ck_assert_int_eq(r.calls_closed, 1);
        ck_assert_int_eq(r.calls_other, 0);
        asyncio_loop_unref(r.loop);
        asyncio_loop_unref(r.loop);
    }
}
END_TEST

static Suite *calls_suite(void)
{
    Suite *s = suite_create("calls");
    TCase *tc = tcase_create("call_soon");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, call_soon_runs_callbacks_in_fifo_order);
    tcase_add_test(tc, call_soon_runs_each_callback_exactly_once);
    tcase_add_test(tc, call_soon_passes_its_argument);
    tcase_add_test(tc, call_soon_with_null_out_still_schedules);
    tcase_add_test(tc, call_soon_does_not_run_the_callback_inline);
    tcase_add_test(tc, callbacks_scheduled_by_callbacks_keep_fifo_order_across_batches);
    suite_add_tcase(s, tc);

    tc = tcase_create("handles");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, handle_cancel_before_run_prevents_the_call);
    tcase_add_test(tc, handle_cancelled_by_an_earlier_callback_of_the_same_batch_does_not_run);
    tcase_add_test(tc, handle_cancel_is_idempotent);
    tcase_add_test(tc, handle_cancel_after_the_call_ran_is_a_noop);
    tcase_add_test(tc, handle_cancelled_is_0_until_cancel);
    tcase_add_test(tc, handle_when_is_minus_one_for_call_soon);
    tcase_add_test(tc, releasing_a_handle_does_not_cancel_the_call);
    suite_add_tcase(s, tc);

    tc = tcase_create("threadsafe");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, call_soon_threadsafe_from_the_loop_thread_runs_the_call);
    tcase_add_test(tc, call_soon_threadsafe_handle_cancel_prevents_the_call);
    tcase_add_test(tc, call_soon_threadsafe_from_another_thread_wakes_a_sleeping_loop);
    suite_add_tcase(s, tc);

    tc = tcase_create("threadsafe_many");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, call_soon_threadsafe_from_many_threads_runs_every_call_once_in_order);
    tcase_add_test(tc, call_soon_threadsafe_racing_close_returns_eclosed_and_never_crashes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(calls_suite()); }
