/* The loop closed while executor jobs still run (issue 8, item 2).
 *
 * Close shuts the default executor down without waiting (asyncio:
 * shutdown(wait=False)), so jobs still running finish in their pool after
 * the loop is gone.  Their completions must then be dropped -- no freed
 * memory touched, no done callback run -- and nothing leaked: not the
 * argument, not the result, not a thread.  A user's executor (the thread
 * pool, or one written on the public executor interface) is shut down by
 * close only when it is the default one, and its owner's shutdown(wait=1)
 * joins the jobs.  And a future cancelled in the same batch as its
 * already posted completion drops the result exactly once.
 *
 * Worker threads never call ck_assert: they count in atomics and the
 * test's thread asserts.  Each test counts /proc/self/fd and this
 * process's threads before and after. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* ---- Helpers -------------------------------------------------------------------- */

static int wait_atomic(atomic_int *v, int want, double timeout)
{
    double end = tu_now() + timeout;
    while (atomic_load(v) < want) {
        if (tu_now() > end)
            return 0;
        tu_sleep(0.0005);
    }
    return 1;
}

static void stop_soon_cb(void *loop) { asyncio_loop_stop(loop); }

/* Stop a little later, so that a callback wrongly queued after the one
 * that asks would still come and be caught. */
static void stop_shortly(asyncio_loop *loop)
{
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.02, stop_soon_cb, loop, NULL), 0);
}

/* ==== Loop close with executor jobs still running ================================== */

#define SLOW_JOB 0.2

static atomic_int jobs_started, jobs_finished, args_destroyed, results_destroyed, done_calls;
static atomic_uint jobs_ran_mask;

static int slow_fn(void *arg, void **result)
{
    int i = (int)(intptr_t)arg;
    atomic_fetch_add(&jobs_started, 1);
    atomic_fetch_or(&jobs_ran_mask, 1u << i);
    tu_sleep(SLOW_JOB);
    *result = malloc(32);
    atomic_fetch_add(&jobs_finished, 1);
    return 0;
}

static void count_arg_destroy(void *arg)
{
    (void)arg;
    atomic_fetch_add(&args_destroyed, 1);
}

static void count_result_destroy(void *result)
{
    free(result);
    atomic_fetch_add(&results_destroyed, 1);
}

static void count_done_cb(asyncio_future *f, void *arg)
{
    (void)f;
    (void)arg;
    atomic_fetch_add(&done_calls, 1);
}

static asyncio_future *submit_slow(asyncio_loop *loop, asyncio_executor *ex, int i)
{
    asyncio_future *f = NULL;
    int rc = asyncio_loop_run_in_executor_full(loop, ex, slow_fn, (void *)(intptr_t)i,
                                               count_arg_destroy, count_result_destroy, &f);
    ck_assert_msg(rc == 0, "run_in_executor: %s", asyncio_strerror(rc));
    ck_assert_int_eq(asyncio_future_add_done_callback(f, count_done_cb, NULL), 0);
    return f;
}

/* Close must not wait for the jobs (asyncio: shutdown(wait=False)). */
static void close_without_waiting(asyncio_loop *loop)
{
    ck_assert(wait_atomic(&jobs_started, 1, 5.0));
    double t0 = tu_now();
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    double took = tu_now() - t0;
    ck_assert_msg(took < SLOW_JOB / 2, "close took %.3f s: it waited for the jobs", took);
    ck_assert_int_eq(asyncio_loop_is_closed(loop), 1);
    ck_assert_int_eq(asyncio_loop_run_in_executor(loop, NULL, slow_fn, NULL, NULL),
                     ASYNCIO_ECLOSED);
    asyncio_loop_unref(loop); /* the jobs' references keep the memory */
}

/* What the executor documents for a closed loop: the future stays pending
 * (the completion is dropped), its done callbacks never run. */
static void assert_futures_left_pending(asyncio_future **fs, int n)
{
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(asyncio_future_done(fs[i]), 0);
        asyncio_future_unref(fs[i]);
    }
}

#define N_DEFAULT 8

START_TEST(closing_the_loop_with_default_executor_jobs_running_drops_their_completions)
{
    int fds = tu_count_fds();
    int threads = tu_thread_baseline();
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *fs[N_DEFAULT];
    for (int i = 0; i < N_DEFAULT; i++)
        fs[i] = submit_slow(loop, NULL, i);
    close_without_waiting(loop);
    /* The default pool was shut down without waiting: what was submitted
     * still runs to its end (cancel_futures=False), in the pool alone. */
    ck_assert(wait_atomic(&jobs_finished, N_DEFAULT, 10.0));
    ck_assert(wait_atomic(&results_destroyed, N_DEFAULT, 5.0));
    ck_assert_int_eq(atomic_load(&jobs_started), N_DEFAULT);
    ck_assert_int_eq(atomic_load(&args_destroyed), N_DEFAULT);
    ck_assert(tu_wait_threads(threads, 5.0));
    ck_assert_int_eq(atomic_load(&done_calls), 0);
    assert_futures_left_pending(fs, N_DEFAULT); /* the last loop references go */
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

#define N_POOL 6

START_TEST(closing_the_loop_with_user_pool_jobs_running_lets_shutdown_join_them)
{
    int fds = tu_count_fds();
    int threads = tu_thread_baseline();
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = NULL;
    ck_assert_int_eq(asyncio_thread_pool_executor_new(2, &ex), 0);
    asyncio_future *fs[N_POOL];
    for (int i = 0; i < N_POOL; i++)
        fs[i] = submit_slow(loop, ex, i);
    /* The last one waits behind four others on two workers: cancelled
     * before it starts, it never runs.  Its done callbacks are ordinary
     * ones, run by the loop. */
    ck_assert_int_eq(asyncio_future_cancel(fs[N_POOL - 1]), 1);
    tu_call_soon_stop(loop);
    tu_run(loop);
    ck_assert_int_eq(atomic_load(&done_calls), 1);
    ck_assert_int_eq(atomic_load(&args_destroyed), 1);
    close_without_waiting(loop);
    /* The pool is the user's and was not shut down by the loop: it still
     * takes work, and shutdown(wait=1) joins everything. */
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0);
    ck_assert_int_eq(atomic_load(&jobs_finished), N_POOL - 1);
    ck_assert_int_eq(atomic_load(&jobs_started), N_POOL - 1);
    ck_assert_uint_eq(atomic_load(&jobs_ran_mask) & (1u << (N_POOL - 1)), 0);
    ck_assert_int_eq(atomic_load(&args_destroyed), N_POOL);
    ck_assert_int_eq(atomic_load(&results_destroyed), N_POOL - 1);
    ck_assert_int_eq(atomic_load(&done_calls), 1);
    ck_assert_int_eq(asyncio_future_cancelled(fs[N_POOL - 1]), 1);
    asyncio_future_unref(fs[N_POOL - 1]);
    assert_futures_left_pending(fs, N_POOL - 1);
    asyncio_executor_unref(ex);
    ck_assert(tu_wait_threads(threads, 5.0));
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* A user executor on the public interface: one detached thread per job,
 * no cancel.  Its state is static (destroy frees nothing) so that threads
 * still finishing never meet freed memory. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int live;
    int shut;
    atomic_int destroyed;
} tpj = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void *tpj_main(void *job)
{
    asyncio_executor_job_run(job);
    pthread_mutex_lock(&tpj.lock);
    tpj.live--;
    pthread_cond_broadcast(&tpj.idle);
    pthread_mutex_unlock(&tpj.lock);
    return NULL;
}

static int tpj_submit(void *impl, asyncio_executor_job *job)
{
    (void)impl;
    pthread_mutex_lock(&tpj.lock);
    if (tpj.shut) {
        pthread_mutex_unlock(&tpj.lock);
        return -ESHUTDOWN;
    }
    tpj.live++;
    pthread_mutex_unlock(&tpj.lock);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int err = pthread_create(&t, &attr, tpj_main, job);
    pthread_attr_destroy(&attr);
    if (err != 0) {
        pthread_mutex_lock(&tpj.lock);
        tpj.live--;
        pthread_mutex_unlock(&tpj.lock);
        return -err;
    }
    return 0;
}

static int tpj_shutdown(void *impl, int wait)
{
    (void)impl;
    pthread_mutex_lock(&tpj.lock);
    tpj.shut = 1;
    while (wait && tpj.live > 0)
        pthread_cond_wait(&tpj.idle, &tpj.lock);
    pthread_mutex_unlock(&tpj.lock);
    return 0;
}

static void tpj_destroy(void *impl)
{
    (void)impl;
    atomic_fetch_add(&tpj.destroyed, 1);
}

static const asyncio_executor_ops tpj_ops = {
    .submit = tpj_submit, .shutdown = tpj_shutdown, .destroy = tpj_destroy};

#define N_TPJ 4

START_TEST(closing_the_loop_with_user_executor_jobs_running_lets_shutdown_join_them)
{
    int fds = tu_count_fds();
    int threads = tu_thread_baseline();
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = NULL;
    ck_assert_int_eq(asyncio_executor_new(&tpj_ops, NULL, &ex), 0);
    /* As the default executor too: close shuts it down without waiting. */
    ck_assert_int_eq(asyncio_loop_set_default_executor(loop, ex), 0);
    asyncio_future *fs[N_TPJ];
    for (int i = 0; i < N_TPJ; i++)
        fs[i] = submit_slow(loop, i % 2 ? ex : NULL, i);
    close_without_waiting(loop);
    ck_assert_int_eq(asyncio_loop_run_in_executor(loop, ex, slow_fn, NULL, NULL), ASYNCIO_ECLOSED);
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0);
    ck_assert_int_eq(atomic_load(&jobs_finished), N_TPJ);
    ck_assert_int_eq(atomic_load(&args_destroyed), N_TPJ);
    ck_assert_int_eq(atomic_load(&results_destroyed), N_TPJ);
    ck_assert_int_eq(atomic_load(&done_calls), 0);
    assert_futures_left_pending(fs, N_TPJ);
    ck_assert_int_eq(atomic_load(&tpj.destroyed), 0);
    asyncio_executor_unref(ex); /* the loop let go of its reference at close */
    ck_assert_int_eq(atomic_load(&tpj.destroyed), 1);
    ck_assert(tu_wait_threads(threads, 5.0));
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* An executor future cancelled by a callback that runs just before the
 * job's completion, already posted, in the same batch: the result is
 * dropped exactly once and nothing is touched twice. */
static int quick_fn(void *arg, void **result)
{
    (void)arg;
    *result = malloc(32);
    atomic_fetch_add(&jobs_finished, 1);
    return 0;
}

static void cancel_future_cb(void *arg) { ck_assert_int_eq(asyncio_future_cancel(arg), 1); }

START_TEST(cancelling_an_executor_future_whose_completion_is_queued_drops_the_result_once)
{
    int fds = tu_count_fds();
    int threads = tu_thread_baseline();
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = NULL;
    ck_assert_int_eq(asyncio_thread_pool_executor_new(1, &ex), 0);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_run_in_executor_full(loop, ex, quick_fn, NULL, count_arg_destroy,
                                                       count_result_destroy, &f),
                     0);
    ck_assert_int_eq(asyncio_future_add_done_callback(f, count_done_cb, NULL), 0);
    /* Joined: the job has run and posted its completion to the loop. */
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0);
    ck_assert_int_eq(atomic_load(&jobs_finished), 1);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, cancel_future_cb, f, NULL), 0);
    stop_shortly(loop);
    tu_run(loop);
    ck_assert_int_eq(asyncio_future_cancelled(f), 1);
    ck_assert_int_eq(atomic_load(&done_calls), 1);
    ck_assert_int_eq(atomic_load(&args_destroyed), 1);
    ck_assert_int_eq(atomic_load(&results_destroyed), 1);
    asyncio_future_unref(f);
    asyncio_executor_unref(ex);
    tu_free_loop(loop);
    ck_assert(tu_wait_threads(threads, 5.0));
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* ---- The suite ---------------------------------------------------------------------- */

static Suite *faults_executor_suite(void)
{
    Suite *s = suite_create("faults-executor");
    TCase *tc = tcase_create("close with executor jobs");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, closing_the_loop_with_default_executor_jobs_running_drops_their_completions);
    tcase_add_test(tc, closing_the_loop_with_user_pool_jobs_running_lets_shutdown_join_them);
    tcase_add_test(tc, closing_the_loop_with_user_executor_jobs_running_lets_shutdown_join_them);
    tcase_add_test(tc,
                   cancelling_an_executor_future_whose_completion_is_queued_drops_the_result_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(faults_executor_suite()); }
