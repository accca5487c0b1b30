/* libasyncio: futures.
 *
 * A future belongs to one loop and holds a reference to it.  Done
 * callbacks are scheduled with call_soon when the future completes, in
 * the order they were added, never called inline. */
#ifndef ASYNCIO_FUTURE_H
#define ASYNCIO_FUTURE_H

#include <asyncio/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*asyncio_done_callback)(asyncio_future *future, void *arg);

/* A new pending future of `loop`; the caller owns the reference. */
ASYNCIO_EXTERN int asyncio_loop_create_future(asyncio_loop *loop, asyncio_future **future);

/* Complete with `result`.  `destroy` (may be NULL) runs on the result when
 * the future is freed.  On an error (ASYNCIO_EINVALSTATE if already done,
 * -ENOMEM) the future is unchanged and the result not taken (its destroy
 * is not called).  If the loop is closed the future still completes, but
 * its done callbacks can no longer run and are dropped. */
ASYNCIO_EXTERN int asyncio_future_set_result(asyncio_future *f, void *result,
                                             void (*destroy)(void *result));

/* Complete with `error` (< 0, else -EINVAL); errors as set_result. */
ASYNCIO_EXTERN int asyncio_future_set_exception(asyncio_future *f, int error);

/* 1 if the future was cancelled now, 0 if it was already done. */
ASYNCIO_EXTERN int asyncio_future_cancel(asyncio_future *f);

/* 1 or 0; -EINVAL for NULL. */
ASYNCIO_EXTERN int asyncio_future_done(asyncio_future *f);
ASYNCIO_EXTERN int asyncio_future_cancelled(asyncio_future *f);

/* 0 with *result set (result may be NULL), the future's error, -ECANCELED,
 * or ASYNCIO_EINVALSTATE while pending.  The result stays the future's. */
ASYNCIO_EXTERN int asyncio_future_result(asyncio_future *f, void **result);

/* The future's error, 0 with a result, -ECANCELED when cancelled,
 * ASYNCIO_EINVALSTATE while pending. */
ASYNCIO_EXTERN int asyncio_future_exception(asyncio_future *f);

/* Run cb(f, arg) through call_soon once the future is done (at once if it
 * is).  The same pair may be added more than once.  ASYNCIO_ECLOSED if the
 * future is done and its loop closed: the callback could never run. */
ASYNCIO_EXTERN int asyncio_future_add_done_callback(asyncio_future *f, asyncio_done_callback cb,
                                                    void *arg);

/* Remove every pending (cb, arg) pair; returns how many were removed. */
ASYNCIO_EXTERN int asyncio_future_remove_done_callback(asyncio_future *f, asyncio_done_callback cb,
                                                       void *arg);

/* The future's loop, borrowed; NULL for NULL. */
ASYNCIO_EXTERN asyncio_loop *asyncio_future_get_loop(asyncio_future *f);

/* Take / release a reference (any thread).  Releasing does not cancel.
 * NULL: a no-op. */
ASYNCIO_EXTERN void asyncio_future_ref(asyncio_future *f);
ASYNCIO_EXTERN void asyncio_future_unref(asyncio_future *f);

#ifdef __cplusplus
}
#endif
#endif
