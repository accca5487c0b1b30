/* Executors: run_in_executor, the thread pool, cancellation, shutdown, the
 * default executor, loop close with work in flight, and a user executor
 * written on the public interface.
 *
 * Worker threads never call ck_assert (a failure there would end the
 * child from the wrong thread): they record what they saw in atomics and
 * the test's thread asserts. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- Helpers ---------------------------------------------------------------------- */

/* Wait (sleeping) until *v >= want or `timeout` passed; 1 if reached. */
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

/* A gate jobs wait at until the test opens it. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int open;
} gate;

static void gate_init(gate *g)
{
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->open = 0;
}

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->open = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

/* Bounded, so a broken test ends by its timeout rather than never. */
static void gate_pass(gate *g)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&g->lock);
    while (!g->open)
        if (pthread_cond_timedwait(&g->cond, &g->lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&g->lock);
}

static void gate_destroy(gate *g)
{
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
}

/* Run the loop until *v >= want, checking every millisecond. */
typedef struct {
    asyncio_loop *loop;
    atomic_int *v;
    int want;
} until_ctx;

static void until_cb(void *arg)
{
    until_ctx *c = arg;
    if (atomic_load(c->v) >= c->want)
        asyncio_loop_stop(c->loop);
    else
        ck_assert_int_eq(asyncio_loop_call_later(c->loop, 0.001, until_cb, c, NULL), 0);
}

static void run_until_atomic(asyncio_loop *loop, atomic_int *v, int want)
{
    until_ctx c = {loop, v, want};
    ck_assert_int_eq(asyncio_loop_call_soon(loop, until_cb, &c, NULL), 0);
    tu_run(loop);
    ck_assert_int_ge(atomic_load(v), want);
}

static asyncio_executor *new_pool(int max_workers)
{
    asyncio_executor *ex = NULL;
    ck_assert_int_eq(asyncio_thread_pool_executor_new(max_workers, &ex), 0);
    ck_assert_ptr_nonnull(ex);
    return ex;
}

/* Submit and run the loop until the future is done; returns what
 * run_until_complete returned and the result in *result. */
static int run_job(asyncio_loop *loop, asyncio_executor *ex, asyncio_work_fn fn, void *arg,
                   void **result)
{
    asyncio_future *f = NULL;
    int rc = asyncio_loop_run_in_executor(loop, ex, fn, arg, &f);
    ck_assert_msg(rc == 0, "run_in_executor: %s", asyncio_strerror(rc));
    rc = asyncio_loop_run_until_complete(loop, f);
    if (result != NULL) {
        *result = NULL;
        asyncio_future_result(f, result);
    }
    asyncio_future_unref(f);
    return rc;
}

static void fail_done_cb(asyncio_future *f, void *arg)
{
    (void)f;
    ck_abort_msg("%s", (const char *)arg);
}

/* Counters for the destroy functions of run_in_executor_full. */
static atomic_int arg_destroyed, result_destroyed;

static void count_arg_destroy(void *arg)
{
    (void)arg;
    atomic_fetch_add(&arg_destroyed, 1);
}

static void count_result_destroy(void *result)
{
    atomic_fetch_add(&result_destroyed, 1);
    free(result);
}

/* ---- Results and errors -------------------------------------------------------------- */

static pthread_t loop_thread;
static atomic_int ran_on_loop_thread;

static int answer_fn(void *arg, void **result)
{
    if (pthread_equal(pthread_self(), loop_thread))
        atomic_store(&ran_on_loop_thread, 1);
    *result = arg;
    return 0;
}

START_TEST(result_becomes_the_futures_result)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = new_pool(2);
    loop_thread = pthread_self();
    void *result = NULL;
    ck_assert_int_eq(run_job(loop, ex, answer_fn, (void *)(intptr_t)42, &result), 0);
    ck_assert_int_eq((int)(intptr_t)result, 42);
    ck_assert_int_eq(atomic_load(&ran_on_loop_thread), 0);
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0);
    asyncio_executor_unref(ex);
    tu_free_loop(loop);
}
END_TEST

static int error_fn(void *arg, void **result)
{
    (void)result;
    return (int)(intptr_t)arg;
}

START_TEST(error_becomes_the_futures_exception)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = new_pool(1);
    ck_assert_int_eq(run_job(loop, ex, error_fn, (void *)(intptr_t)-ENOENT, NULL), -ENOENT);
    /* A positive errno value is an error too, negated. */
    ck_assert_int_eq(run_job(loop, ex, error_fn, (void *)(intptr_t)EIO, NULL), -EIO);
    asyncio_executor_unref(ex);
    tu_free_loop(loop);
}
END_TEST

static int leaky_error_fn(void *arg, void **result)
{
    (void)arg;
    *result = malloc(16);
    return -EPERM;
}

START_TEST(result_left_by_a_failing_function_is_destroyed)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = new_pool(1);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_run_in_executor_full(loop, ex, leaky_error_fn, NULL, NULL,
                                                       count_result_destroy, &f),
                     0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), -EPERM);
    ck_assert_int_eq(atomic_load(&result_destroyed), 1);
    asyncio_future_unref(f);
    asyncio_executor_unref(ex);
    tu_free_loop(loop);
}
END_TEST

/* The result's destroy belongs to the future; arg is released before the
 * future completes. */
static int malloc_fn(void *arg, void **result)
{
    (void)arg;
    int *p = malloc(sizeof(*p));
    *p = 7;
    *result = p;
    return 0;
}

static atomic_int arg_released_when_done;

static void check_arg_released_cb(asyncio_future *f, void *arg)
{
    (void)f;
    (void)arg;
    atomic_store(&arg_released_when_done, atomic_load(&arg_destroyed));
}

START_TEST(full_variant_releases_arg_before_completion_and_result_with_the_future)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = new_pool(1);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_run_in_executor_full(loop, ex, malloc_fn, NULL, count_arg_destroy,
                                                       count_result_destroy, &f),
                     0);
    ck_assert_int_eq(asyncio_future_add_done_callback(f, check_arg_released_cb, NULL), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
    tu_call_soon_stop(loop); /* let the done callback run */
    tu_run(loop);
    ck_assert_int_eq(atomic_load(&arg_released_when_done), 1);
    void *r = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &r), 0);
    ck_assert_int_eq(*(int *)r, 7);
    ck_assert_int_eq(atomic_load(&result_destroyed), 0);
    asyncio_future_unref(f); /* the last reference: the result goes with it */
    ck_assert_int_eq(atomic_load(&result_destroyed), 1);
    ck_assert_int_eq(atomic_load(&arg_destroyed), 1);
    asyncio_executor_unref(ex);
    tu_free_loop(loop);
}
END_TEST

/* ---- Many jobs, bounded concurrency ---------------------------------------------------- */

#define N_MANY 1000
#define MANY_WORKERS 4

static atomic_int many_runs[N_MANY];
static atomic_int many_current, many_max, many_done, many_bad_result;

static int many_fn(void *arg, void **result)
{
    int now = atomic_fetch_add(&many_current, 1) + 1;
    int seen = atomic_load(&many_max);
    while (now > seen && !atomic_compare_exchange_weak(&many_max, &seen, now)) {
    }
    atomic_fetch_add(&many_runs[(intptr_t)arg], 1);
    tu_sleep(0.0001); /* long enough for the workers to overlap */
    atomic_fetch_sub(&many_current, 1);
    *result = arg;
    return 0;
}

static void many_done_cb(asyncio_future *f, void *arg)
{
    void *r = NULL;
    if (asyncio_future_result(f, &r) != 0 || r != arg)
        atomic_fetch_add(&many_bad_result, 1);
    atomic_fetch_add(&many_done, 1);
}

START_TEST(thousand_jobs_on_four_workers_run_once_each_at_most_four_at_once)
{
    asyncio_loop *loop = tu_new_loop();
    tu_guard(loop, 20.0);
    asyncio_executor *ex = new_pool(MANY_WORKERS);
    int threads_before = tu_thread_baseline();
    for (intptr_t i = 0; i < N_MANY; i++) {
        asyncio_future *f = NULL;
        ck_assert_int_eq(asyncio_loop_run_in_executor(loop, ex, many_fn, (void *)i, &f), 0);
        ck_assert_int_eq(asyncio_future_add_done_callback(f, many_done_cb, (void *)i), 0);
        asyncio_future_unref(f);
    }
    ck_assert_int_le(tu_count_threads() - threads_before, MANY_WORKERS);
    run_until_atomic(loop, &many_done, N_MANY);
    ck_assert_int_eq(atomic_load(&many_done), N_MANY);
    ck_assert_int_eq(atomic_load(&many_bad_result), 0);
    for (int i = 0; i < N_MANY; i++)
        ck_assert_msg(atomic_load(&many_runs[i]) == 1, "job %d ran %d times", i,
                      atomic_load(&many_runs[i]));
    ck_assert_int_le(atomic_load(&many_max), MANY_WORKERS);
    ck_assert_int_ge(atomic_load(&many_max), 1);
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0);
    asyncio_executor_unref(ex);
    tu_free_loop(loop);
}
END_TEST

static pthread_t lazy_threads[8];
static atomic_int lazy_n;

static int record_thread_fn(void *arg, void **result)
{
    (void)arg;
    (void)result;
    int i = atomic_fetch_add(&lazy_n, 1);
    if (i < 8)
        lazy_threads[i] = pthread_self();
    return 0;
}

START_TEST(workers_start_lazily_and_are_reused)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int before = tu_thread_baseline();
    asyncio_executor *ex = new_pool(8);
    ck_assert_int_eq(tu_count_threads(), before); /* nothing started yet */
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(run_job(loop, ex, record_thread_fn, NULL, NULL), 0);
        tu_sleep(0.02); /* the worker goes back to waiting */
    }
    ck_assert_int_eq(atomic_load(&lazy_n), 5);
    for (int i = 1; i < 5; i++)
        ck_assert(pthread_equal(lazy_threads[i], lazy_threads[0]));
    ck_assert_int_eq(tu_count_threads(), before + 1);
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0);
    ck_assert(tu_wait_threads(before, 2.0));
    asyncio_executor_unref(ex);
    tu_free_loop(loop);
}
END_TEST

/* ---- Cancellation ----------------------------------------------------------------------- */

static gate g_gate;
static atomic_int blocker_started, blocker_finished, second_ran;

static int blocker_fn(void *arg, void **result)
{
    (void)arg;
    atomic_store(&blocker_started, 1);
    gate_pass(&g_gate);
    *result = malloc(32);
    atomic_store(&blocker_finished, 1);
    return 0;
}

static int second_fn(void *arg, void **result)
{
    (void)arg;
    (void)result;
    atomic_store(&second_ran, 1);
    return 0;
}

START_TEST(cancelling_a_queued_job_means_it_never_runs)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = new_pool(1);
    gate_init(&g_gate);
    asyncio_future *first = NULL, *second = NULL;
    ck_assert_int_eq(asyncio_loop_run_in_executor_full(loop, ex, blocker_fn, NULL, NULL,
                                                       count_result_destroy, &first),
                     0);
    ck_assert(wait_atomic(&blocker_started, 1, 5.0)); /* the one worker is busy */
    ck_assert_int_eq(asyncio_loop_run_in_executor_full(loop, ex, second_fn, NULL, count_arg_destroy,
                                                       NULL, &second),
                     0);
    ck_assert_int_eq(asyncio_future_cancel(second), 1);
    /* The cancellation reaches the executor through a done callback. */
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, second), -ECANCELED);
    tu_call_soon_stop(loop);
    tu_run(loop);
    ck_assert_int_eq(atomic_load(&arg_destroyed), 1); /* released by the loop */
    gate_open(&g_gate);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, first), 0);
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0); /* everything ran that will */
    ck_assert_int_eq(atomic_load(&second_ran), 0);
    ck_assert_int_eq(atomic_load(&arg_destroyed), 1);
    asyncio_future_unref(first);
    asyncio_future_unref(second);
    ck_assert_int_eq(atomic_load(&result_destroyed), 1);
    asyncio_executor_unref(ex);
    tu_free_loop(loop);
    gate_destroy(&g_gate);
}
END_TEST

START_TEST(cancelling_a_running_job_lets_it_finish_and_drops_its_result)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = new_pool(1);
    gate_init(&g_gate);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_run_in_executor_full(loop, ex, blocker_fn, NULL, NULL,
                                                       count_result_destroy, &f),
                     0);
    ck_assert(wait_atomic(&blocker_started, 1, 5.0));
    ck_assert_int_eq(asyncio_future_cancel(f), 1);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), -ECANCELED);
    ck_assert_int_eq(atomic_load(&blocker_finished), 0);
    gate_open(&g_gate);
    /* The completion still comes back to the loop, which drops the result. */
    run_until_atomic(loop, &result_destroyed, 1);
    ck_assert_int_eq(atomic_load(&blocker_finished), 1);
    ck_assert_int_eq(asyncio_future_cancelled(f), 1);
    ck_assert_int_eq(atomic_load(&result_destroyed), 1);
    asyncio_future_unref(f);
    ck_assert_int_eq(atomic_load(&result_destroyed), 1);
    asyncio_executor_unref(ex);
    tu_free_loop(loop);
    gate_destroy(&g_gate);
}
END_TEST

/* ---- Shutdown --------------------------------------------------------------------------- */

static atomic_int slow_done;

static int slow_fn(void *arg, void **result)
{
    (void)arg;
    (void)result;
    tu_sleep(0.2);
    atomic_fetch_add(&slow_done, 1);
    return 0;
}

START_TEST(shutdown_with_wait_waits_for_running_and_queued_jobs)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = new_pool(1);
    asyncio_future *a = NULL, *b = NULL;
    ck_assert_int_eq(asyncio_loop_run_in_executor(loop, ex, slow_fn, NULL, &a), 0);
    ck_assert_int_eq(asyncio_loop_run_in_executor(loop, ex, slow_fn, NULL, &b), 0);
    double t0 = tu_now();
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0);
    double took = tu_now() - t0;
    ck_assert_int_eq(atomic_load(&slow_done), 2); /* the queued one too */
    ck_assert_msg(took >= 0.3, "shutdown(wait=1) returned after %.3f s", took);
    /* Both completions still reach the (open) loop. */
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, a), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, b), 0);
    /* Again, after the fact: nothing to wait for. */
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0);
    asyncio_future_unref(a);
    asyncio_future_unref(b);
    asyncio_executor_unref(ex);
    tu_free_loop(loop);
}
END_TEST

START_TEST(shutdown_without_wait_returns_at_once)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = new_pool(1);
    gate_init(&g_gate);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_run_in_executor_full(loop, ex, blocker_fn, NULL, NULL,
                                                       count_result_destroy, &f),
                     0);
    ck_assert(wait_atomic(&blocker_started, 1, 5.0));
    double t0 = tu_now();
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 0), 0);
    ck_assert_double_lt(tu_now() - t0, 0.1);
    /* The executor's memory outlives our reference while its worker runs. */
    asyncio_executor_unref(ex);
    gate_open(&g_gate);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
    asyncio_future_unref(f);
    ck_assert_int_eq(atomic_load(&result_destroyed), 1);
    tu_free_loop(loop);
    gate_destroy(&g_gate);
}
END_TEST

START_TEST(submitting_after_shutdown_fails_with_eshutdown)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = new_pool(2);
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 0), 0);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_run_in_executor(loop, ex, second_fn, NULL, &f), -ESHUTDOWN);
    ck_assert_ptr_null(f);
    /* The full variant takes arg over on failure too. */
    ck_assert_int_eq(
        asyncio_loop_run_in_executor_full(loop, ex, second_fn, NULL, count_arg_destroy, NULL, NULL),
        -ESHUTDOWN);
    ck_assert_int_eq(atomic_load(&arg_destroyed), 1);
    ck_assert_int_eq(atomic_load(&second_ran), 0);
    asyncio_executor_unref(ex);
    tu_free_loop(loop);
}
END_TEST

static asyncio_executor *self_ex;

static int shutdown_self_fn(void *arg, void **result)
{
    (void)arg;
    (void)result;
    return asyncio_executor_shutdown(self_ex, 1);
}

START_TEST(shutdown_with_wait_from_its_own_worker_is_edeadlk)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    self_ex = new_pool(1);
    ck_assert_int_eq(run_job(loop, self_ex, shutdown_self_fn, NULL, NULL), -EDEADLK);
    ck_assert_int_eq(asyncio_executor_shutdown(self_ex, 1), 0);
    asyncio_executor_unref(self_ex);
    tu_free_loop(loop);
}
END_TEST

/* ---- The default executor --------------------------------------------------------------- */

static pthread_t default_threads[2];
static atomic_int default_n;

static int record_default_fn(void *arg, void **result)
{
    (void)arg;
    (void)result;
    int i = atomic_fetch_add(&default_n, 1);
    if (i < 2)
        default_threads[i] = pthread_self();
    return 0;
}

START_TEST(default_executor_is_created_lazily_and_reused)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int before = tu_thread_baseline();
    ck_assert_int_eq(run_job(loop, NULL, record_default_fn, NULL, NULL), 0);
    ck_assert_int_eq(tu_count_threads(), before + 1);
    tu_sleep(0.02);
    ck_assert_int_eq(run_job(loop, NULL, record_default_fn, NULL, NULL), 0);
    ck_assert_int_eq(tu_count_threads(), before + 1); /* the same pool, the same worker */
    ck_assert(pthread_equal(default_threads[0], default_threads[1]));
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_shutdown_default_executor(loop, &f), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
    asyncio_future_unref(f);
    ck_assert(tu_wait_threads(before, 2.0));
    tu_free_loop(loop);
}
END_TEST

/* A user executor: a new thread per job.  mode RUN finishes jobs with
 * asyncio_executor_job_run; mode COMPLETE calls the function itself and
 * hands the outcome over with asyncio_executor_job_complete, as an
 * executor that runs work elsewhere (another process) would. */
enum { MODE_RUN, MODE_COMPLETE };

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int mode;
    int outstanding;
    int shut;
    atomic_int submitted, shutdowns, destroyed, last_wait;
} per_job_executor;

typedef struct {
    per_job_executor *pj;
    asyncio_executor_job *job;
} per_job_thread;

static void *per_job_main(void *arg)
{
    per_job_thread *t = arg;
    per_job_executor *pj = t->pj;
    if (pj->mode == MODE_RUN) {
        asyncio_executor_job_run(t->job);
    } else {
        void *result = NULL;
        asyncio_work_fn fn = asyncio_executor_job_fn(t->job);
        int err = fn(asyncio_executor_job_arg(t->job), &result);
        asyncio_executor_job_complete(t->job, err, result);
    }
    free(t);
    pthread_mutex_lock(&pj->lock);
    pj->outstanding--;
    pthread_cond_broadcast(&pj->cond);
    pthread_mutex_unlock(&pj->lock);
    return NULL;
}

static int per_job_submit(void *impl, asyncio_executor_job *job)
{
    per_job_executor *pj = impl;
    per_job_thread *t = malloc(sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->pj = pj;
    t->job = job;
    pthread_mutex_lock(&pj->lock);
    if (pj->shut) {
        pthread_mutex_unlock(&pj->lock);
        free(t);
        return -ESHUTDOWN;
    }
    pj->outstanding++;
    pthread_mutex_unlock(&pj->lock);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    int err = pthread_create(&th, &attr, per_job_main, t);
    pthread_attr_destroy(&attr);
    if (err != 0) {
        pthread_mutex_lock(&pj->lock);
        pj->outstanding--;
        pthread_mutex_unlock(&pj->lock);
        free(t);
        return -err;
    }
    atomic_fetch_add(&pj->submitted, 1);
    return 0;
}

static int per_job_shutdown(void *impl, int wait)
{
    per_job_executor *pj = impl;
    atomic_fetch_add(&pj->shutdowns, 1);
    atomic_store(&pj->last_wait, wait);
    pthread_mutex_lock(&pj->lock);
    pj->shut = 1;
    while (wait && pj->outstanding > 0)
        pthread_cond_wait(&pj->cond, &pj->lock);
    pthread_mutex_unlock(&pj->lock);
    return 0;
}

static void per_job_destroy(void *impl)
{
    per_job_executor *pj = impl;
    atomic_fetch_add(&pj->destroyed, 1);
}

/* No cancel: a job cannot be taken back once its thread exists. */
static const asyncio_executor_ops per_job_ops = {
    .submit = per_job_submit,
    .shutdown = per_job_shutdown,
    .destroy = per_job_destroy,
};

static per_job_executor pj;

static asyncio_executor *new_per_job_executor(int mode)
{
    pthread_mutex_init(&pj.lock, NULL);
    pthread_cond_init(&pj.cond, NULL);
    pj.mode = mode;
    asyncio_executor *ex = NULL;
    ck_assert_int_eq(asyncio_executor_new(&per_job_ops, &pj, &ex), 0);
    return ex;
}

START_TEST(set_default_executor_is_used_and_kept_by_the_loop)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = new_per_job_executor(MODE_RUN);
    ck_assert_int_eq(asyncio_loop_set_default_executor(loop, ex), 0);
    asyncio_executor_unref(ex); /* the loop keeps its own reference */
    ck_assert_int_eq(atomic_load(&pj.destroyed), 0);
    void *result = NULL;
    ck_assert_int_eq(run_job(loop, NULL, answer_fn, (void *)(intptr_t)5, &result), 0);
    ck_assert_int_eq((int)(intptr_t)result, 5);
    ck_assert_int_eq(atomic_load(&pj.submitted), 1);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    /* close shut it down without waiting and let go of it. */
    ck_assert_int_eq(atomic_load(&pj.shutdowns), 1);
    ck_assert_int_eq(atomic_load(&pj.destroyed), 1);
    asyncio_loop_unref(loop);
}
END_TEST

#define N_RACE 200

static int slow_malloc_fn(void *arg, void **result)
{
    tu_sleep(0.00002); /* spreads the completions over the rounds' close times */
    return malloc_fn(arg, result);
}

/* Close lands at a different point of the jobs' completions each round:
 * whichever of on_complete, the worker (ECLOSED) and close's clean-up ends
 * up with a result, it is freed exactly once. */
START_TEST(closing_while_jobs_finish_frees_every_result_exactly_once)
{
    static asyncio_future *fs[N_RACE];
    for (int round = 0; round < 20; round++) {
        atomic_store(&arg_destroyed, 0);
        atomic_store(&result_destroyed, 0);
        asyncio_loop *loop = tu_new_guarded_loop();
        asyncio_executor *ex = new_pool(4);
        for (int i = 0; i < N_RACE; i++)
            ck_assert_int_eq(asyncio_loop_run_in_executor_full(loop, ex, slow_malloc_fn, NULL,
                                                               count_arg_destroy,
                                                               count_result_destroy, &fs[i]),
                             0);
        ck_assert_int_eq(asyncio_loop_call_later(loop, 0.0002 * round, tu_stop_cb, loop, NULL), 0);
        tu_run(loop);
        ck_assert_int_eq(asyncio_loop_close(loop), 0);
        ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0);
        for (int i = 0; i < N_RACE; i++)
            asyncio_future_unref(fs[i]);
        ck_assert_int_eq(atomic_load(&arg_destroyed), N_RACE);
        ck_assert_int_eq(atomic_load(&result_destroyed), N_RACE);
        asyncio_executor_unref(ex);
        asyncio_loop_unref(loop);
    }
}
END_TEST

START_TEST(closing_the_loop_shuts_the_default_executor_down_without_waiting)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = new_per_job_executor(MODE_RUN);
    atomic_store(&pj.last_wait, -1);
    ck_assert_int_eq(asyncio_loop_set_default_executor(loop, ex), 0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    /* Shut down although we still hold a reference: close did it. */
    ck_assert_int_eq(atomic_load(&pj.shutdowns), 1);
    ck_assert_int_eq(atomic_load(&pj.last_wait), 0);
    ck_assert_int_eq(atomic_load(&pj.destroyed), 0);
    ck_assert_int_eq(asyncio_loop_run_in_executor(loop, ex, second_fn, NULL, NULL),
                     ASYNCIO_ECLOSED);
    asyncio_executor_unref(ex);
    ck_assert_int_eq(atomic_load(&pj.shutdowns), 1);
    ck_assert_int_eq(atomic_load(&pj.destroyed), 1);
    asyncio_loop_unref(loop);
}
END_TEST

START_TEST(setting_a_new_default_releases_the_old_one)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = new_per_job_executor(MODE_RUN);
    ck_assert_int_eq(asyncio_loop_set_default_executor(loop, ex), 0);
    asyncio_executor_unref(ex);
    ck_assert_int_eq(asyncio_loop_set_default_executor(loop, NULL), 0);
    ck_assert_int_eq(atomic_load(&pj.destroyed), 1);
    /* NULL: back to a built-in pool, made on next use. */
    ck_assert_int_eq(run_job(loop, NULL, second_fn, NULL, NULL), 0);
    ck_assert_int_eq(atomic_load(&second_ran), 1);
    ck_assert_int_eq(atomic_load(&pj.submitted), 0);
    tu_free_loop(loop);
}
END_TEST

static atomic_int timer_ran_first;
static asyncio_future *shutdown_future;

static void timer_while_shutting_down(void *arg)
{
    (void)arg;
    if (!asyncio_future_done(shutdown_future))
        atomic_store(&timer_ran_first, 1);
}

START_TEST(shutdown_default_executor_completes_a_future_without_blocking_the_loop)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int before = tu_thread_baseline();
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_run_in_executor(loop, NULL, slow_fn, NULL, &f), 0);
    double t0 = tu_now();
    ck_assert_int_eq(asyncio_loop_shutdown_default_executor(loop, &shutdown_future), 0);
    ck_assert_double_lt(tu_now() - t0, 0.1); /* the waiting is done elsewhere */
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.05, timer_while_shutting_down, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, shutdown_future), 0);
    ck_assert_int_eq(atomic_load(&timer_ran_first), 1);
    ck_assert_int_eq(atomic_load(&slow_done), 1);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
    /* No more default executor. */
    asyncio_future *g = NULL;
    ck_assert_int_eq(asyncio_loop_run_in_executor(loop, NULL, second_fn, NULL, &g), -ESHUTDOWN);
    ck_assert_int_eq(asyncio_loop_run_in_executor(loop, NULL, second_fn, NULL, NULL), -ESHUTDOWN);
    ck_assert(tu_wait_threads(before, 2.0)); /* the pool's and the helper thread are gone */
    asyncio_future_unref(shutdown_future);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(shutdown_default_executor_without_one_is_done_at_once)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_shutdown_default_executor(loop, &f), 0);
    ck_assert_int_eq(asyncio_future_done(f), 1);
    ck_assert_int_eq(asyncio_future_result(f, NULL), 0);
    asyncio_future_unref(f);
    ck_assert_int_eq(asyncio_loop_shutdown_default_executor(loop, NULL), 0);
    tu_free_loop(loop);
}
END_TEST

/* ---- Loop close with work in flight ------------------------------------------------------ */

START_TEST(closing_the_loop_does_not_wait_and_drops_the_completion)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = new_pool(2);
    ck_assert_int_eq(asyncio_loop_set_default_executor(loop, ex), 0);
    gate_init(&g_gate);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_run_in_executor_full(loop, NULL, blocker_fn, NULL,
                                                       count_arg_destroy, count_result_destroy, &f),
                     0);
    ck_assert_int_eq(
        asyncio_future_add_done_callback(f, fail_done_cb, "a completion reached a closed loop"), 0);
    ck_assert(wait_atomic(&blocker_started, 1, 5.0));
    double t0 = tu_now();
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_double_lt(tu_now() - t0, 0.1);
    asyncio_loop_unref(loop); /* the worker's reference keeps the memory */
    gate_open(&g_gate);
    /* close shut the pool down; waiting for it means the job is finished. */
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0);
    ck_assert_int_eq(atomic_load(&blocker_finished), 1);
    ck_assert_int_eq(atomic_load(&arg_destroyed), 1);
    ck_assert_int_eq(atomic_load(&result_destroyed), 1);
    ck_assert_int_eq(asyncio_future_done(f), 0); /* never completed */
    asyncio_future_unref(f);                     /* the last reference to the loop, too */
    asyncio_executor_unref(ex);
    gate_destroy(&g_gate);
}
END_TEST

START_TEST(closing_the_loop_frees_a_completion_already_posted)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = new_pool(1);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_run_in_executor_full(loop, ex, malloc_fn, NULL, NULL,
                                                       count_result_destroy, &f),
                     0);
    ck_assert_int_eq(
        asyncio_future_add_done_callback(f, fail_done_cb, "a completion reached a closed loop"), 0);
    /* The job finishes and posts its completion; the loop never runs. */
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0);
    ck_assert_int_eq(atomic_load(&result_destroyed), 0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(atomic_load(&result_destroyed), 1);
    ck_assert_int_eq(asyncio_future_done(f), 0);
    asyncio_future_unref(f);
    asyncio_loop_unref(loop);
    asyncio_executor_unref(ex);
}
END_TEST

START_TEST(closing_the_loop_with_the_lazy_default_pool_busy_leaks_nothing)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int before = tu_thread_baseline();
    gate_init(&g_gate);
    ck_assert_int_eq(asyncio_loop_run_in_executor_full(loop, NULL, blocker_fn, NULL,
                                                       count_arg_destroy, count_result_destroy,
                                                       NULL),
                     0);
    /* Queued behind it (one job each is not guaranteed a worker of its
     * own, so it may also run on a second worker): runs after close. */
    ck_assert_int_eq(asyncio_loop_run_in_executor_full(loop, NULL, malloc_fn, NULL,
                                                       count_arg_destroy, count_result_destroy,
                                                       NULL),
                     0);
    ck_assert(wait_atomic(&blocker_started, 1, 5.0));
    double t0 = tu_now();
    tu_free_loop(loop);
    ck_assert_double_lt(tu_now() - t0, 0.1);
    gate_open(&g_gate);
    /* The pool lives on without the loop until its workers are done. */
    ck_assert(wait_atomic(&result_destroyed, 2, 5.0));
    ck_assert(wait_atomic(&arg_destroyed, 2, 5.0));
    ck_assert(tu_wait_threads(before, 2.0));
    gate_destroy(&g_gate);
}
END_TEST

/* ---- A user executor --------------------------------------------------------------------- */

#define N_USER 10

static void user_executor_runs_jobs(int mode)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = new_per_job_executor(mode);
    loop_thread = pthread_self();
    asyncio_future *fs[N_USER];
    for (intptr_t i = 0; i < N_USER; i++)
        ck_assert_int_eq(asyncio_loop_run_in_executor(loop, ex, answer_fn, (void *)i, &fs[i]), 0);
    asyncio_future *failing = NULL;
    ck_assert_int_eq(
        asyncio_loop_run_in_executor(loop, ex, error_fn, (void *)(intptr_t)-EBADF, &failing), 0);
    for (int i = 0; i < N_USER; i++) {
        ck_assert_int_eq(asyncio_loop_run_until_complete(loop, fs[i]), 0);
        void *r = NULL;
        ck_assert_int_eq(asyncio_future_result(fs[i], &r), 0);
        ck_assert_int_eq((int)(intptr_t)r, i);
        asyncio_future_unref(fs[i]);
    }
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, failing), -EBADF);
    asyncio_future_unref(failing);
    ck_assert_int_eq(atomic_load(&ran_on_loop_thread), 0);
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0);
    ck_assert_int_eq(atomic_load(&pj.submitted), N_USER + 1);
    ck_assert_int_eq(asyncio_loop_run_in_executor(loop, ex, answer_fn, NULL, NULL), -ESHUTDOWN);
    asyncio_executor_unref(ex);
    ck_assert_int_eq(atomic_load(&pj.destroyed), 1);
    ck_assert_int_eq(atomic_load(&pj.shutdowns), 1); /* not again at the last unref */
    tu_free_loop(loop);
}

START_TEST(user_executor_through_the_public_interface_runs_jobs)
{
    user_executor_runs_jobs(MODE_RUN);
}
END_TEST

START_TEST(user_executor_can_complete_jobs_it_ran_itself)
{
    user_executor_runs_jobs(MODE_COMPLETE);
}
END_TEST

START_TEST(user_executor_without_cancel_still_drops_a_cancelled_result)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = new_per_job_executor(MODE_RUN);
    gate_init(&g_gate);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_run_in_executor_full(loop, ex, blocker_fn, NULL, NULL,
                                                       count_result_destroy, &f),
                     0);
    ck_assert_int_eq(asyncio_future_cancel(f), 1);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), -ECANCELED);
    gate_open(&g_gate);
    run_until_atomic(loop, &result_destroyed, 1);
    ck_assert_int_eq(atomic_load(&blocker_finished), 1);
    asyncio_future_unref(f);
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0);
    asyncio_executor_unref(ex);
    tu_free_loop(loop);
    gate_destroy(&g_gate);
}
END_TEST

static int refuse_submit(void *impl, asyncio_executor_job *job)
{
    (void)impl;
    (void)job;
    return -EAGAIN;
}

static const asyncio_executor_ops refusing_ops = {.submit = refuse_submit};

START_TEST(a_refused_submission_returns_the_executors_error)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = NULL;
    ck_assert_int_eq(asyncio_executor_new(&refusing_ops, NULL, &ex), 0);
    asyncio_future *f = NULL;
    ck_assert_int_eq(
        asyncio_loop_run_in_executor_full(loop, ex, second_fn, NULL, count_arg_destroy, NULL, &f),
        -EAGAIN);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(atomic_load(&arg_destroyed), 1);
    /* shutdown and destroy are optional. */
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0);
    asyncio_executor_unref(ex);
    tu_free_loop(loop);
}
END_TEST

/* ---- Several loops, one pool --------------------------------------------------------------- */

#define N_LOOPS 4
#define N_PER_LOOP 200

static asyncio_executor *shared_ex;
static atomic_int shared_bad;

static void *loop_thread_main(void *arg)
{
    (void)arg;
    asyncio_loop *loop = NULL;
    if (asyncio_new_event_loop(&loop) != 0) {
        atomic_fetch_add(&shared_bad, 1);
        return NULL;
    }
    tu_guard(loop, 10.0);
    for (intptr_t i = 0; i < N_PER_LOOP; i++) {
        void *r = NULL;
        asyncio_future *f = NULL;
        if (asyncio_loop_run_in_executor(loop, shared_ex, answer_fn, (void *)i, &f) != 0 ||
            asyncio_loop_run_until_complete(loop, f) != 0 || asyncio_future_result(f, &r) != 0 ||
            r != (void *)i)
            atomic_fetch_add(&shared_bad, 1);
        asyncio_future_unref(f);
    }
    asyncio_loop_close(loop);
    asyncio_loop_unref(loop);
    return NULL;
}

START_TEST(one_pool_serves_loops_in_several_threads)
{
    loop_thread = pthread_self();
    shared_ex = new_pool(3);
    pthread_t t[N_LOOPS];
    for (int i = 0; i < N_LOOPS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, loop_thread_main, NULL), 0);
    for (int i = 0; i < N_LOOPS; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(atomic_load(&shared_bad), 0);
    ck_assert_int_eq(asyncio_executor_shutdown(shared_ex, 1), 0);
    asyncio_executor_unref(shared_ex);
}
END_TEST

/* ---- Bad input, resources ---------------------------------------------------------------- */

START_TEST(bad_arguments_are_rejected)
{
    int threads = tu_thread_baseline();
    asyncio_loop *loop = tu_new_loop();
    asyncio_executor *ex = NULL;
    ck_assert_int_eq(asyncio_thread_pool_executor_new(-1, &ex), -EINVAL);
    ck_assert_int_eq(asyncio_thread_pool_executor_new(1, NULL), -EINVAL);
    ck_assert_int_eq(asyncio_executor_new(NULL, NULL, &ex), -EINVAL);
    static const asyncio_executor_ops no_submit = {.submit = NULL};
    ck_assert_int_eq(asyncio_executor_new(&no_submit, NULL, &ex), -EINVAL);
    ck_assert_int_eq(asyncio_executor_new(&refusing_ops, NULL, NULL), -EINVAL);
    ck_assert_ptr_null(ex);
    ck_assert_int_eq(asyncio_executor_shutdown(NULL, 1), -EINVAL);
    asyncio_executor_ref(NULL);
    asyncio_executor_unref(NULL);
    asyncio_executor_job_run(NULL);
    asyncio_executor_job_complete(NULL, 0, NULL);
    ck_assert_ptr_null(asyncio_executor_job_fn(NULL));
    ck_assert_ptr_null(asyncio_executor_job_arg(NULL));
    ck_assert_ptr_null(asyncio_executor_job_get_data(NULL));

    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_run_in_executor(NULL, NULL, second_fn, NULL, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_run_in_executor(loop, NULL, NULL, NULL, &f), -EINVAL);
    ck_assert_int_eq(
        asyncio_loop_run_in_executor_full(loop, NULL, NULL, NULL, count_arg_destroy, NULL, &f),
        -EINVAL);
    ck_assert_int_eq(atomic_load(&arg_destroyed), 1);
    ck_assert_int_eq(asyncio_loop_set_default_executor(NULL, NULL), -EINVAL);
    ck_assert_int_eq(asyncio_loop_shutdown_default_executor(NULL, &f), -EINVAL);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(tu_count_threads(), threads); /* none of that started a thread */

    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_loop_run_in_executor(loop, NULL, second_fn, NULL, &f),
                     ASYNCIO_ECLOSED);
    ck_assert_int_eq(
        asyncio_loop_run_in_executor_full(loop, NULL, second_fn, NULL, count_arg_destroy, NULL, &f),
        ASYNCIO_ECLOSED);
    ck_assert_int_eq(atomic_load(&arg_destroyed), 2);
    asyncio_executor *pool = new_pool(1);
    ck_assert_int_eq(asyncio_loop_set_default_executor(loop, pool), ASYNCIO_ECLOSED);
    ck_assert_int_eq(asyncio_loop_shutdown_default_executor(loop, &f), ASYNCIO_ECLOSED);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(atomic_load(&second_ran), 0);
    asyncio_executor_unref(pool);
    asyncio_loop_unref(loop);
}
END_TEST

START_TEST(no_file_descriptor_or_thread_is_left_behind)
{
    int fds = tu_count_fds();
    int threads = tu_thread_baseline();
    for (int round = 0; round < 3; round++) {
        asyncio_loop *loop = tu_new_guarded_loop();
        asyncio_executor *ex = new_pool(4);
        for (int i = 0; i < 50; i++) {
            asyncio_future *f = NULL;
            ck_assert_int_eq(asyncio_loop_run_in_executor(loop, ex, second_fn, NULL, &f), 0);
            if (i % 10 == 0)
                ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
            asyncio_future_unref(f);
        }
        ck_assert_int_eq(run_job(loop, NULL, second_fn, NULL, NULL), 0); /* the default too */
        ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0);
        asyncio_executor_unref(ex);
        tu_free_loop(loop);
    }
    ck_assert(tu_wait_threads(threads, 2.0));
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

static Suite *executor_suite(void)
{
    Suite *s = suite_create("executor");
    TCase *tc = tcase_create("results");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, result_becomes_the_futures_result);
    tcase_add_test(tc, error_becomes_the_futures_exception);
    tcase_add_test(tc, result_left_by_a_failing_function_is_destroyed);
    tcase_add_test(tc, full_variant_releases_arg_before_completion_and_result_with_the_future);
    suite_add_tcase(s, tc);

    tc = tcase_create("pool");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, thousand_jobs_on_four_workers_run_once_each_at_most_four_at_once);
    tcase_add_test(tc, workers_start_lazily_and_are_reused);
    tcase_add_test(tc, one_pool_serves_loops_in_several_threads);
    suite_add_tcase(s, tc);

    tc = tcase_create("cancel");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, cancelling_a_queued_job_means_it_never_runs);
    tcase_add_test(tc, cancelling_a_running_job_lets_it_finish_and_drops_its_result);
    suite_add_tcase(s, tc);

    tc = tcase_create("shutdown");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, shutdown_with_wait_waits_for_running_and_queued_jobs);
    tcase_add_test(tc, shutdown_without_wait_returns_at_once);
    tcase_add_test(tc, submitting_after_shutdown_fails_with_eshutdown);
    tcase_add_test(tc, shutdown_with_wait_from_its_own_worker_is_edeadlk);
    suite_add_tcase(s, tc);

    tc = tcase_create("default");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, default_executor_is_created_lazily_and_reused);
    tcase_add_test(tc, set_default_executor_is_used_and_kept_by_the_loop);
    tcase_add_test(tc, setting_a_new_default_releases_the_old_one);
    tcase_add_test(tc, shutdown_default_executor_completes_a_future_without_blocking_the_loop);
    tcase_add_test(tc, shutdown_default_executor_without_one_is_done_at_once);
    suite_add_tcase(s, tc);

    tc = tcase_create("close");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, closing_the_loop_does_not_wait_and_drops_the_completion);
    tcase_add_test(tc, closing_the_loop_frees_a_completion_already_posted);
    tcase_add_test(tc, closing_the_loop_with_the_lazy_default_pool_busy_leaks_nothing);
    tcase_add_test(tc, closing_the_loop_shuts_the_default_executor_down_without_waiting);
    tcase_add_test(tc, closing_while_jobs_finish_frees_every_result_exactly_once);
    suite_add_tcase(s, tc);

    tc = tcase_create("interface");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, user_executor_through_the_public_interface_runs_jobs);
    tcase_add_test(tc, user_executor_can_complete_jobs_it_ran_itself);
    tcase_add_test(tc, user_executor_without_cancel_still_drops_a_cancelled_result);
    tcase_add_test(tc, a_refused_submission_returns_the_executors_error);
    suite_add_tcase(s, tc);

    tc = tcase_create("resources");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, bad_arguments_are_rejected);
    tcase_add_test(tc, no_file_descriptor_or_thread_is_left_behind);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(executor_suite()); }
