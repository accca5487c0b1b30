/* libasyncio: coroutines and tasks.
 *
 * A coroutine is a C function run as a task, on a stack of its own, by
 * the loop: asyncio_await() inside it suspends the function until a future
 * is done, and the loop runs other callbacks and tasks meanwhile.  A task
 * is an asyncio_future (the same type, the same calls): done when its
 * function returns, with the result the function stored in *result when
 * it returned 0, failed with its error when it returned one, cancelled
 * when it returned -ECANCELED.
 *
 * Tasks run only from the loop's batch, one at a time, in the thread that
 * runs the loop: code between two awaits runs without interruption.
 *
 * Stacks are fixed in size (asyncio_loop_set_task_stack_size, 256 KiB by
 * default) with a guard page below: a task that overflows its stack
 * crashes with SIGSEGV.  Memory is committed only as a task touches it, so
 * a task that uses a few KiB of stack costs a few KiB, whatever the size.
 *
 * When the loop closes with tasks still suspended, each is resumed once
 * more, in asyncio_loop_close(): the await it is suspended in, and any it
 * makes afterwards, return ASYNCIO_ECLOSED at once, so that the function
 * can release what it holds and return (asyncio throws GeneratorExit into
 * the coroutine instead).  Its task then completes as cancelled, whatever
 * the function returns.  A task that had not started yet is started so.
 *
 * The function of a task always runs, exactly once -- also when the task
 * is cancelled before it started (its first await or sleep returns
 * -ECANCELED) or the loop closes first -- so `arg` may carry resources
 * for the function to release.  asyncio never starts such a coroutine. */
#ifndef ASYNCIO_TASK_H
#define ASYNCIO_TASK_H

#include <asyncio/common.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The function a task runs.  Returns 0 (the task's result is *result,
 * NULL unless set; it is not freed by the task) or a negative error. */
typedef int (*asyncio_coroutine)(void *arg, void **result);

/* Schedule fn(arg) as a task of `loop`: it starts in a later batch of the
 * loop, like a call_soon callback.  *task (may be NULL) receives a
 * reference to the task's future.  The loop keeps the task alive until the
 * function returns, references or not.  Errors: -EINVAL (loop or fn NULL),
 * ASYNCIO_ECLOSED, -ENOMEM (no memory, or no stack could be mapped). */
ASYNCIO_EXTERN int asyncio_loop_create_task(asyncio_loop *loop, asyncio_coroutine fn, void *arg,
                                            asyncio_future **task);

/* Inside a task: suspend until `f` is done, then return as
 * asyncio_future_result(f, result) does: 0 with *result (result may be
 * NULL), f's error, or -ECANCELED.  A done future returns at once, without
 * suspending.  Returns -ECANCELED too when the task itself was cancelled
 * while suspended here (see asyncio_future_cancel: cancelling a task
 * cancels the future it awaits, as asyncio does, so a future shared with
 * other waiters is cancelled for them as well).
 * Errors: ASYNCIO_ENOTASK (not inside a task), -EINVAL (f NULL, a future
 * of another loop, or the task's own future), ASYNCIO_ECLOSED (the loop
 * closed while the task was suspended; see above), -ENOMEM. */
ASYNCIO_EXTERN int asyncio_await(asyncio_future *f, void **result);

/* Inside a task: suspend for `delay` seconds (asyncio.sleep).  A delay of
 * 0 or less yields once: the task goes to the back of the ready queue.
 * 0, -ECANCELED when the task was cancelled meanwhile, ASYNCIO_ENOTASK,
 * ASYNCIO_ECLOSED, -EINVAL (delay NaN), -ENOMEM. */
ASYNCIO_EXTERN int asyncio_sleep(double delay);

/* The task running now (asyncio.current_task), borrowed; NULL outside a
 * task. */
ASYNCIO_EXTERN asyncio_future *asyncio_current_task(void);

/* The stack size of tasks that `loop` creates from now on: `bytes`
 * rounded up to whole pages; 0 restores the default, 256 KiB.  Each
 * stack also takes one guard page of address space.  -EINVAL below 16 KiB
 * or above 1 GiB; ASYNCIO_ECLOSED. */
ASYNCIO_EXTERN int asyncio_loop_set_task_stack_size(asyncio_loop *loop, size_t bytes);

#define ASYNCIO_TASK_STACK_SIZE_DEFAULT (256 * 1024)
#define ASYNCIO_TASK_STACK_SIZE_MIN (16 * 1024)

#ifdef __cplusplus
}
#endif
#endif
