/* Executors: the generic executor object, the jobs of run_in_executor and
 * the loop's default executor.  The built-in thread pool (thread_pool.c)
 * is one implementation of the public asyncio_executor_ops interface, as a
 * user's executor would be.
 *
 * A job has two sides, each holding one reference to it:
 *
 *   the loop side (loop thread only): the future, a reference to the
 *     executor (so that cancel can reach it), membership of the loop's
 *     executor_jobs list, and two flags -- completion_pending (on_complete
 *     has not run) and donecb_pending (on_future_done is registered on the
 *     future or scheduled).  It is released when both are clear, or by the
 *     loop's closable at close.
 *
 *   the worker side (whatever thread the implementation finishes the job
 *     on): a reference to the loop, so that call_soon_threadsafe never
 *     sees freed memory.  Finishing writes error/result, sets `finished`
 *     and posts on_complete with call_soon_threadsafe.  The worker never
 *     touches the future or anything else of the loop's.
 *
 * Who frees the result: exactly one of on_complete (it becomes the
 * future's, or is destroyed if the future was cancelled), the worker (the
 * post failed: loop closed) and the closable (the post succeeded but close
 * dropped the handle) -- whoever wins the exchange on `taken`.  The
 * closable only competes once `finished` is set; it runs after close has
 * set `closed` under the inbox lock, so a worker that has not posted yet
 * will fail with ASYNCIO_ECLOSED and compete itself.
 *
 * Cancellation: cancelling the future schedules on_future_done, which asks
 * the implementation to cancel the job; if it had not started (cancel
 * returns 1), the loop thread finishes the worker side itself.  A running
 * job finishes normally and on_complete drops its result. */
#include "internal.h"

#include <stdlib.h>
#include <time.h>

struct asyncio_executor {
    asyncio__refcount refs;
    const asyncio_executor_ops *ops;
    void *impl;
    int shut; /* atomic: shutdown called (by the user or the last unref) */
};

struct asyncio_executor_job {
    asyncio__refcount refs; /* the loop side and the worker side */

    /* Set at submission, read-only afterwards. */
    asyncio_loop *loop; /* the worker side's reference */
    asyncio_work_fn fn;
    void *arg;
    void (*arg_destroy)(void *arg);
    void (*result_destroy)(void *result);
    void *impl_data; /* the implementation's; synchronised by it */

    /* Written by the finishing thread before `finished` is set. */
    int error;
    void *result;
    int finished; /* atomic */
    int taken;    /* atomic: the result has an owner */

    /* The loop side: loop thread only. */
    asyncio__link link; /* loop->executor_jobs */
    asyncio_future *future;
    asyncio_executor *ex; /* NULL: a helper thread, not cancellable */
    unsigned char completion_pending;
    unsigned char donecb_pending;
};

/* ---- The executor object ---------------------------------------------------- */

int asyncio_executor_new(const asyncio_executor_ops *ops, void *impl, asyncio_executor **out)
{
    if (ops == NULL || ops->submit == NULL || out == NULL)
        return -EINVAL;
    asyncio_executor *ex = calloc(1, sizeof(*ex));
    if (ex == NULL)
        return -ENOMEM;
    asyncio__ref_init(&ex->refs);
    ex->ops = ops;
    ex->impl = impl;
    *out = ex;
    return 0;
}

int asyncio_executor_shutdown(asyncio_executor *ex, int wait)
{
    if (ex == NULL)
        return -EINVAL;
    __atomic_store_n(&ex->shut, 1, __ATOMIC_RELEASE);
    return ex->ops->shutdown != NULL ? ex->ops->shutdown(ex->impl, wait) : 0;
}

void asyncio_executor_ref(asyncio_executor *ex)
{
    if (ex != NULL)
        asyncio__ref_inc(&ex->refs);
}

void asyncio_executor_unref(asyncio_executor *ex)
{
    if (ex == NULL || !asyncio__ref_dec(&ex->refs))
        return;
    /* The implementation is promised a shutdown before destroy. */
    if (!__atomic_exchange_n(&ex->shut, 1, __ATOMIC_ACQ_REL) && ex->ops->shutdown != NULL)
        ex->ops->shutdown(ex->impl, 0);
    if (ex->ops->destroy != NULL)
        ex->ops->destroy(ex->impl);
    free(ex);
}

static int executor_is_shut(asyncio_executor *ex)
{
    return __atomic_load_n(&ex->shut, __ATOMIC_ACQUIRE);
}

/* ---- Job accessors (for implementations) ------------------------------------ */

asyncio_work_fn asyncio_executor_job_fn(const asyncio_executor_job *job)
{
    return job != NULL ? job->fn : NULL;
}

void *asyncio_executor_job_arg(const asyncio_executor_job *job)
{
    return job != NULL ? job->arg : NULL;
}

void *asyncio_executor_job_get_data(const asyncio_executor_job *job)
{
    return job != NULL ? job->impl_data : NULL;
}

void asyncio_executor_job_set_data(asyncio_executor_job *job, void *data)
{
    if (job != NULL)
        job->impl_data = data;
}

/* ---- Both sides ----------------------------------------------------------------- */

static void job_unref(asyncio_executor_job *job)
{
    /* Only the job's own memory: each side released what it held. */
    if (asyncio__ref_dec(&job->refs))
        free(job);
}

/* Destroy the result unless somebody else owns it already (see the top). */
static void drop_result(asyncio_executor_job *job)
{
    if (__atomic_exchange_n(&job->taken, 1, __ATOMIC_ACQ_REL))
        return;
    if (job->result != NULL && job->result_destroy != NULL)
        job->result_destroy(job->result);
}

static void on_future_done(asyncio_future *f, void *arg);

/* The loop side lets go: loop thread (or close). */
static void loop_side_release(asyncio_executor_job *job)
{
    asyncio__list_remove(&job->link);
    asyncio_future_unref(job->future);
    asyncio_executor_unref(job->ex);
    job_unref(job);
}

static void loop_side_maybe_release(asyncio_executor_job *job)
{
    if (!job->completion_pending && !job->donecb_pending)
        loop_side_release(job);
}

/* ---- The loop side ----------------------------------------------------------------- */

/* Posted by the worker with call_soon_threadsafe: runs on the loop thread. */
static void on_complete(void *arg)
{
    asyncio_executor_job *job = arg;
    asyncio_future *f = job->future;
    job->completion_pending = 0;
    /* Unhook first: completing the future would schedule it. */
    if (job->donecb_pending && asyncio_future_remove_done_callback(f, on_future_done, job) > 0)
        job->donecb_pending = 0;

    if (!__atomic_exchange_n(&job->taken, 1, __ATOMIC_ACQ_REL)) {
        if (!asyncio_future_done(f) && job->error == 0) {
            asyncio_future_set_result(f, job->result, job->result_destroy);
        } else {
            /* Failed, or the future was cancelled (or completed by
             * someone else) while the job ran: the result is nobody's. */
            if (!asyncio_future_done(f))
                asyncio_future_set_exception(f, job->error);
            if (job->result != NULL && job->result_destroy != NULL)
                job->result_destroy(job->result);
        }
    }
    loop_side_maybe_release(job);
}

/* The future became done before the job finished (cancelled, normally). */
static void on_future_done(asyncio_future *f, void *arg)
{
    asyncio_executor_job *job = arg;
    job->donecb_pending = 0;
    if (job->completion_pending && asyncio_future_cancelled(f) == 1 && job->ex != NULL &&
        job->ex->ops->cancel != NULL && job->ex->ops->cancel(job->ex->impl, job) == 1) {
        /* It never ran and never will: finish the worker side here. */
        job->completion_pending = 0;
        if (job->arg_destroy != NULL)
            job->arg_destroy(job->arg);
        asyncio_loop_unref(job->loop);
        job_unref(job);
    }
    loop_side_maybe_release(job);
}

/* The loop is closing (loop thread, `closed` already set and the inbox
 * detached, so no completion can arrive any more; the detached handles
 * are dropped after the closables ran): let go of the default executor
 * and of every job. */
static void executor_area_close(asyncio__closable *c)
{
    asyncio_loop *loop = asyncio__container_of(c, asyncio_loop, executor_closable);
    asyncio_executor *ex = loop->default_executor;
    loop->default_executor = NULL;
    if (ex != NULL) {
        asyncio_executor_shutdown(ex, 0); /* asyncio: close does not wait */
        asyncio_executor_unref(ex);
    }
    while (!asyncio__list_empty(&loop->executor_jobs)) {
        asyncio_executor_job *job =
            asyncio__container_of(loop->executor_jobs.next, asyncio_executor_job, link);
        if (job->donecb_pending)
            asyncio_future_remove_done_callback(job->future, on_future_done, job);
        /* A finished job whose on_complete was dropped with the inbox:
         * its result is ours to free, unless the worker saw ECLOSED and
         * frees it (the exchange decides).  An unfinished job's worker
         * will see ECLOSED. */
        if (job->completion_pending && __atomic_load_n(&job->finished, __ATOMIC_ACQUIRE))
            drop_result(job);
        job->completion_pending = job->donecb_pending = 0;
        loop_side_release(job);
    }
}

static void attach(asyncio_loop *loop)
{
    if (loop->executor_attached)
        return;
    loop->executor_attached = 1;
    asyncio__list_init(&loop->executor_jobs);
    loop->executor_closable.close = executor_area_close;
    asyncio__loop_add_closable(loop, &loop->executor_closable);
}

/* ---- The worker side ---------------------------------------------------------------- */

void asyncio_executor_job_complete(asyncio_executor_job *job, int error, void *result)
{
    if (job == NULL)
        return;
    job->error = error > 0 ? -error : error;
    job->result = result;
    /* Nothing uses arg any more; done before the future can complete, so
     * a caller who sees the result knows arg is released. */
    if (job->arg_destroy != NULL)
        job->arg_destroy(job->arg);
    __atomic_store_n(&job->finished, 1, __ATOMIC_RELEASE);

    asyncio_loop *loop = job->loop;
    int err;
    long backoff_ns = 1000000;
    /* -ENOMEM (a handle could not be allocated) is waited out: dropping
     * the completion would leave the future pending forever.  Closing the
     * loop ends the wait (ASYNCIO_ECLOSED). */
    while ((err = asyncio_loop_call_soon_threadsafe(loop, on_complete, job, NULL)) == -ENOMEM) {
        struct timespec ts = {0, backoff_ns};
        nanosleep(&ts, NULL);
        if (backoff_ns < 100000000)
            backoff_ns *= 2;
    }
    if (err < 0)
        drop_result(job); /* closed: no callback may reach the loop */
    job_unref(job);
    asyncio_loop_unref(loop);
}

void asyncio_executor_job_run(asyncio_executor_job *job)
{
    if (job == NULL)
        return;
    void *result = NULL;
    int error = job->fn(job->arg, &result);
    asyncio_executor_job_complete(job, error, result);
}

/* ---- Submitting ----------------------------------------------------------------------- */

static void *helper_main(void *arg)
{
    asyncio_executor_job_run(arg);
    return NULL;
}

/* Make a job for fn(arg) and hand it to `ex`, or to a helper thread of its
 * own if ex is NULL.  Takes arg over (arg_destroy) on failure too. */
static int submit(asyncio_loop *loop, asyncio_executor *ex, asyncio_work_fn fn, void *arg,
                  void (*arg_destroy)(void *), void (*result_destroy)(void *), asyncio_future **out)
{
    asyncio_future *f = NULL;
    asyncio_executor_job *job = NULL;
    int err;
    if (ex != NULL && executor_is_shut(ex)) {
        err = -ESHUTDOWN;
        goto fail;
    }
    if ((err = asyncio_loop_create_future(loop, &f)) < 0)
        goto fail;
    if ((job = calloc(1, sizeof(*job))) == NULL) {
        err = -ENOMEM;
        goto fail;
    }
    if ((err = asyncio_future_add_done_callback(f, on_future_done, job)) < 0)
        goto fail;
    asyncio__ref_init(&job->refs);
    asyncio__ref_inc(&job->refs); /* loop side + worker side */
    asyncio_loop_ref(loop);
    job->loop = loop;
    job->fn = fn;
    job->arg = arg;
    job->arg_destroy = arg_destroy;
    job->result_destroy = result_destroy;
    job->future = f;
    job->ex = ex;
    asyncio_executor_ref(ex);
    job->completion_pending = 1;
    job->donecb_pending = 1;
    asyncio__list_push_back(&loop->executor_jobs, &job->link);

    /* Once submitted the job may be finished at any moment on another
     * thread (or inline, right here): only the loop side's fields and `f`
     * may be used below, which the worker never touches. */
    if (ex != NULL)
        err = ex->ops->submit(ex->impl, job);
    else
        err = asyncio__spawn_detached(helper_main, job);
    if (err < 0) {
        /* Not taken: undo both sides. */
        asyncio__list_remove(&job->link);
        asyncio_executor_unref(ex);
        asyncio_loop_unref(loop);
        goto fail;
    }
    if (out != NULL) {
        asyncio_future_ref(f);
        *out = f;
    }
    return 0;

fail:
    if (f != NULL) {
        /* Done (no callbacks left) so that debug mode does not report a
         * pending future nobody could have seen. */
        asyncio_future_remove_done_callback(f, on_future_done, job);
        asyncio_future_cancel(f);
        asyncio_future_unref(f);
    }
    free(job);
    if (arg_destroy != NULL)
        arg_destroy(arg);
    return err;
}

int asyncio_loop_run_in_executor_full(asyncio_loop *loop, asyncio_executor *ex, asyncio_work_fn fn,
                                      void *arg, void (*arg_destroy)(void *arg),
                                      void (*result_destroy)(void *result), asyncio_future **out)
{
    int err = 0;
    if (loop == NULL || fn == NULL)
        err = -EINVAL;
    else if (loop->closed)
        err = ASYNCIO_ECLOSED;
    if (err < 0) {
        if (arg_destroy != NULL)
            arg_destroy(arg);
        return err;
    }
    attach(loop);
    if (ex == NULL) {
        if (loop->default_executor_shutdown) {
            err = -ESHUTDOWN;
        } else if (loop->default_executor == NULL) {
            /* Created on first use, as asyncio does. */
            err = asyncio_thread_pool_executor_new(0, &loop->default_executor);
        }
        if (err < 0) {
            if (arg_destroy != NULL)
                arg_destroy(arg);
            return err;
        }
        ex = loop->default_executor;
    }
    return submit(loop, ex, fn, arg, arg_destroy, result_destroy, out);
}

int asyncio_loop_run_in_executor(asyncio_loop *loop, asyncio_executor *ex, asyncio_work_fn fn,
                                 void *arg, asyncio_future **out)
{
    return asyncio_loop_run_in_executor_full(loop, ex, fn, arg, NULL, NULL, out);
}

/* ---- The default executor --------------------------------------------------------------- */

int asyncio_loop_set_default_executor(asyncio_loop *loop, asyncio_executor *ex)
{
    ASYNCIO__CHECK_OPEN(loop);
    attach(loop);
    asyncio_executor_ref(ex);
    asyncio_executor *old = loop->default_executor;
    loop->default_executor = ex;
    /* asyncio replaces it without shutting it down; if this was the last
     * reference the executor shuts down on its own (without waiting). */
    asyncio_executor_unref(old);
    return 0;
}

static int shutdown_and_wait(void *arg, void **result)
{
    (void)result;
    return asyncio_executor_shutdown(arg, 1);
}

static void executor_unref_cb(void *arg) { asyncio_executor_unref(arg); }

int asyncio_loop_shutdown_default_executor(asyncio_loop *loop, asyncio_future **out)
{
    ASYNCIO__CHECK_OPEN(loop);
    attach(loop);
    loop->default_executor_shutdown = 1;
    asyncio_executor *ex = loop->default_executor;
    if (ex == NULL) {
        if (out == NULL)
            return 0;
        asyncio_future *f;
        int err = asyncio_loop_create_future(loop, &f);
        if (err < 0)
            return err;
        asyncio_future_set_result(f, NULL, NULL);
        *out = f;
        return 0;
    }
    /* Waiting blocks: a helper thread does it (as asyncio does), through
     * the same job machinery, so a loop closed meanwhile is handled alike.
     * The helper holds its own reference to the executor. */
    asyncio_executor_ref(ex);
    return submit(loop, NULL, shutdown_and_wait, ex, executor_unref_cb, NULL, out);
}
