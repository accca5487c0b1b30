/* libasyncio: executors -- running blocking functions off the loop.
 *
 * asyncio_loop_run_in_executor() hands a function to an executor; the
 * executor runs it somewhere else (the built-in thread pool runs it in one
 * of its worker threads) and the returned future completes on the loop's
 * thread with what the function returned.  Executors are reference
 * counted and may be shared by several loops; every asyncio_executor_*
 * call may be made from any thread.
 *
 * An executor is an interface (asyncio_executor_ops): the built-in thread
 * pool is one implementation of it, and a user can supply another (a pool
 * of processes, a thread per job, ...) through asyncio_executor_new().
 *
 * Submitting to an executor that has been shut down fails with
 * -ESHUTDOWN (ASYNCIO_ECLOSED is kept for closed loops, so the caller can
 * tell which of the two refused). */
#ifndef ASYNCIO_EXECUTOR_H
#define ASYNCIO_EXECUTOR_H

#include <asyncio/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The work: runs in a worker, never on the loop's thread.  Returns 0 and
 * may set *result (NULL before the call), which becomes the future's
 * result; or returns an error: a negative code, or a positive errno value,
 * which is taken as its negation (pthread style).  On error whatever was
 * left in *result is not the future's: it is given to the result destroy
 * function of asyncio_loop_run_in_executor_full() if there is one. */
typedef int (*asyncio_work_fn)(void *arg, void **result);

/* ---- Running work ----------------------------------------------------------- */

/* Run fn(arg, &result) in `ex` (NULL: the loop's default executor, a
 * thread pool created on first use) and complete a future of `loop` on the
 * loop's thread with the result or the error.  *out (may be NULL) receives
 * a reference to the future.
 *
 * Cancelling the future while the job waits in the executor's queue means
 * fn never runs; a job already running finishes and its result is dropped.
 * If the loop is closed before the job finishes, the future stays pending
 * and the completion is dropped; no callback reaches a closed loop.
 * `arg` stays the caller's: it must live until the job has run or been
 * dropped (asyncio_loop_run_in_executor_full() can say when that is).
 *
 * Loop thread only.  -EINVAL (NULL loop or fn), ASYNCIO_ECLOSED (closed
 * loop), -ESHUTDOWN (`ex` shut down, or ex NULL after
 * asyncio_loop_shutdown_default_executor()), -ENOMEM, or what the
 * executor's submit returned. */
ASYNCIO_EXTERN int asyncio_loop_run_in_executor(asyncio_loop *loop, asyncio_executor *ex,
                                                asyncio_work_fn fn, void *arg,
                                                asyncio_future **out);

/* asyncio_loop_run_in_executor() with the two destroy functions a C caller
 * needs (either may be NULL); not in asyncio, where the garbage collector
 * does this.
 *
 * arg_destroy(arg) runs exactly once, when nothing will use `arg` any
 * more: in the worker right after fn returned (before the future
 * completes), on the loop's thread if the job was cancelled before it ran,
 * or before this call returns if it fails -- the call takes `arg` over on
 * failure too.
 *
 * result_destroy(result) runs on a non-NULL result that fn produced unless
 * the future took it: when the future is freed (it becomes the future's
 * destroy), or at once if the result was dropped (future cancelled while
 * fn ran, loop closed, fn failed) -- then on whichever thread dropped it,
 * which may be a worker. */
ASYNCIO_EXTERN int asyncio_loop_run_in_executor_full(asyncio_loop *loop, asyncio_executor *ex,
                                                     asyncio_work_fn fn, void *arg,
                                                     void (*arg_destroy)(void *arg),
                                                     void (*result_destroy)(void *result),
                                                     asyncio_future **out);

/* Make `ex` the loop's default executor; the loop keeps its own reference
 * (and drops the one it had on the previous default, without shutting it
 * down).  NULL: go back to a built-in thread pool created on next use.
 * Loop thread only.  ASYNCIO_ECLOSED on a closed loop. */
ASYNCIO_EXTERN int asyncio_loop_set_default_executor(asyncio_loop *loop, asyncio_executor *ex);

/* Shut the default executor down, waiting for its jobs in a helper thread
 * so that the loop keeps running; *out (may be NULL) receives a future
 * that completes (result NULL) once the executor has shut down -- at once
 * if the loop never had one.  Afterwards run_in_executor with ex NULL
 * fails with -ESHUTDOWN.  Loop thread only.  ASYNCIO_ECLOSED on a closed
 * loop; asyncio_loop_close() shuts the default executor down without
 * waiting. */
ASYNCIO_EXTERN int asyncio_loop_shutdown_default_executor(asyncio_loop *loop, asyncio_future **out);

/* ---- Executors -------------------------------------------------------------- */

/* A thread pool of at most `max_workers` threads (0: min(32, CPUs + 4), as
 * CPython's ThreadPoolExecutor), started one by one as work arrives and
 * kept until the pool shuts down.  Jobs run in submission order.  The
 * caller owns the reference.  -EINVAL if max_workers < 0 or out is NULL. */
ASYNCIO_EXTERN int asyncio_thread_pool_executor_new(int max_workers, asyncio_executor **out);

/* Stop taking work: later submissions fail with -ESHUTDOWN.  Jobs already
 * submitted still run (CPython's cancel_futures=False).  wait nonzero:
 * return once every one of them has finished and the workers are gone;
 * wait 0: return at once.  May be called again (a later wait=1 waits).
 * The thread pool returns -EDEADLK for wait=1 from one of its own
 * workers; -EINVAL for NULL.  Any thread. */
ASYNCIO_EXTERN int asyncio_executor_shutdown(asyncio_executor *ex, int wait);

/* Take / release a reference (any thread).  Releasing the last one shuts
 * the executor down without waiting (if that was not done yet); jobs
 * already submitted still run, and the implementation's memory lives until
 * they have.  NULL: a no-op. */
ASYNCIO_EXTERN void asyncio_executor_ref(asyncio_executor *ex);
ASYNCIO_EXTERN void asyncio_executor_unref(asyncio_executor *ex);

/* ---- Writing an executor ---------------------------------------------------- */

/* One submitted call of fn(arg).  Opaque; the library allocates it and it
 * stays valid until the implementation has finished it (see the ops). */
typedef struct asyncio_executor_job asyncio_executor_job;

/* What an executor implementation provides.  `impl` is the pointer given
 * to asyncio_executor_new().  Every submitted job must be finished exactly
 * once: by asyncio_executor_job_run(), by asyncio_executor_job_complete(),
 * or by `cancel` returning 1 for it -- shutdown and destroy included: a
 * job the implementation will not run is completed with an error.  After
 * finishing a job the implementation must not touch it again. */
typedef struct asyncio_executor_ops {
    /* Take `job` and arrange for it to be finished later; may run it at
     * once, in the calling thread.  0, or a negative error: then the job
     * was not taken (not run, not finished) and the error is what
     * run_in_executor returns.  Called from any thread, concurrently,
     * never after shutdown has been called through the library (a call
     * racing with shutdown may still arrive: refuse it with -ESHUTDOWN). */
    int (*submit)(void *impl, asyncio_executor_job *job);
    /* The job's future was cancelled: return 1 if the job had not started
     * and now never will (the library then finishes it itself; the
     * implementation forgets it), 0 if it runs or ran already.  Called on
     * the job's loop thread, concurrently with the workers, at most once
     * per job and only before the library has seen the job finished; the
     * job's memory is valid during the call.  NULL: jobs are never
     * cancelled once submitted. */
    int (*cancel)(void *impl, asyncio_executor_job *job);
    /* asyncio_executor_shutdown(): stop taking work; if `wait`, return
     * once every submitted job is finished.  May be called more than once
     * (from any thread), and before destroy with wait 0 if the user never
     * called it.  0 or a negative error (passed to the caller).  NULL:
     * nothing to stop. */
    int (*shutdown)(void *impl, int wait);
    /* The last reference to the executor is gone, after a shutdown.  Jobs
     * not yet finished must still be finished; free `impl` once they are.
     * Any thread -- possibly the loop's, possibly one of the executor's
     * own workers -- so it must not wait for them.  NULL: nothing to
     * free. */
    void (*destroy)(void *impl);
    /* NULL: room for members added later without an ABI break. */
    void (*reserved[4])(void);
} asyncio_executor_ops;

/* An executor on `ops` (which must outlive it; usually static) and `impl`.
 * The caller owns the reference.  -EINVAL if ops, ops->submit or out is
 * NULL, -ENOMEM.  On failure destroy is not called: impl stays the
 * caller's. */
ASYNCIO_EXTERN int asyncio_executor_new(const asyncio_executor_ops *ops, void *impl,
                                        asyncio_executor **out);

/* Finish `job` by running its function here, in the calling thread (the
 * implementation's worker), then handing the result to the loop.  The job
 * is gone when this returns.  Any thread but the job's loop thread is
 * fine; on the loop's own thread it works too, but blocks the loop.
 * NULL: a no-op (so for job_complete). */
ASYNCIO_EXTERN void asyncio_executor_job_run(asyncio_executor_job *job);

/* Finish `job` with an outcome obtained some other way (the function ran
 * in another process, say): `error` 0 completes the future with `result`
 * (given to the job's result destroy if the future does not take it), a
 * negative error fails it.  Dropping a job the implementation will not
 * run: error -ECANCELED.  Any thread.  The job is gone when this
 * returns. */
ASYNCIO_EXTERN void asyncio_executor_job_complete(asyncio_executor_job *job, int error,
                                                  void *result);

/* The job's function and argument, for implementations that run it
 * themselves rather than through asyncio_executor_job_run().  Valid until
 * the job is finished.  NULL for a NULL job. */
ASYNCIO_EXTERN asyncio_work_fn asyncio_executor_job_fn(const asyncio_executor_job *job);
ASYNCIO_EXTERN void *asyncio_executor_job_arg(const asyncio_executor_job *job);

/* One pointer of the implementation's own per job (NULL at submit), e.g.
 * its queue node, so that cancel finds it in O(1).  The library never
 * reads it; the implementation synchronises its own accesses.  A NULL
 * job: get_data gives NULL, set_data does nothing. */
ASYNCIO_EXTERN void *asyncio_executor_job_get_data(const asyncio_executor_job *job);
ASYNCIO_EXTERN void asyncio_executor_job_set_data(asyncio_executor_job *job, void *data);

#ifdef __cplusplus
}
#endif
#endif
