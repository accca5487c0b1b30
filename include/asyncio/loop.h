/* libasyncio: policies, the event loop, calls, timers and handles, the
 * exception handler and signals.
 *
 * Threads: a loop and everything on it is used from the thread that runs
 * it.  From any thread: asyncio_loop_call_soon_threadsafe() and the
 * _ref/_unref functions. */
#ifndef ASYNCIO_LOOP_H
#define ASYNCIO_LOOP_H

#include <asyncio/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Policies ---------------------------------------------------------- */

/* An event loop policy.  A user policy embeds this struct as its first
 * member and fills in all three functions; `self` is the policy itself. */
typedef struct asyncio_event_loop_policy asyncio_event_loop_policy;
struct asyncio_event_loop_policy {
    /* The loop of the current context, borrowed.  ASYNCIO_ENOLOOP if the
     * context has none and the policy does not make one. */
    int (*get_event_loop)(asyncio_event_loop_policy *self, asyncio_loop **loop);
    /* Make `loop` the current context's loop (NULL: unset).  The policy
     * keeps its own reference. */
    int (*set_event_loop)(asyncio_event_loop_policy *self, asyncio_loop *loop);
    /* A new loop by this policy's rules; the caller owns the reference. */
    int (*new_event_loop)(asyncio_event_loop_policy *self, asyncio_loop **loop);
    /* NULL: room for members added later without an ABI break. */
    void (*reserved[4])(void);
};

/* The process's current policy (the default one unless another was set). */
ASYNCIO_EXTERN asyncio_event_loop_policy *asyncio_get_event_loop_policy(void);

/* Install `policy` for the whole process; NULL restores the default one.
 * The policy must outlive its use: the library keeps only the pointer. */
ASYNCIO_EXTERN int asyncio_set_event_loop_policy(asyncio_event_loop_policy *policy);

/* The running loop of this thread if there is one, else the policy's
 * get_event_loop.  The default policy creates a loop on first use in the
 * main thread and fails with ASYNCIO_ENOLOOP in other threads that have
 * none set.  The loop is borrowed. */
ASYNCIO_EXTERN int asyncio_get_event_loop(asyncio_loop **loop);

/* The policy's set_event_loop: the policy keeps its own reference. */
ASYNCIO_EXTERN int asyncio_set_event_loop(asyncio_loop *loop);

/* The policy's new_event_loop: the caller owns the reference. */
ASYNCIO_EXTERN int asyncio_new_event_loop(asyncio_loop **loop);

/* ---- Running and stopping ---------------------------------------------- */

/* Run until asyncio_loop_stop().  ASYNCIO_ERUNNING if this loop runs
 * already or another loop runs in this thread; ASYNCIO_ECLOSED if closed.
 * A stop requested before the call gives one non-blocking iteration. */
ASYNCIO_EXTERN int asyncio_loop_run_forever(asyncio_loop *loop);

/* Run until `future` (a future of this loop) is done.  Returns 0 when it has
 * a result, its error when it failed, -ECANCELED when it was cancelled and
 * ASYNCIO_ESTOPPED when asyncio_loop_stop() ended the run first. */
ASYNCIO_EXTERN int asyncio_loop_run_until_complete(asyncio_loop *loop, asyncio_future *future);

/* Ask the loop to stop: the callbacks already scheduled in the current
 * batch run, those scheduled after wait for the next run. */
ASYNCIO_EXTERN int asyncio_loop_stop(asyncio_loop *loop);

/* 1 while the loop runs, else 0; -EINVAL for NULL. */
ASYNCIO_EXTERN int asyncio_loop_is_running(asyncio_loop *loop);

/* 1 once the loop was closed, else 0; -EINVAL for NULL. */
ASYNCIO_EXTERN int asyncio_loop_is_closed(asyncio_loop *loop);

/* Close the loop: drop every pending callback and timer, restore signal
 * dispositions, free the libevent objects the loop made and shut the
 * default executor down without waiting.  Idempotent.  ASYNCIO_ERUNNING
 * while running.  The memory lives on until the last reference goes. */
ASYNCIO_EXTERN int asyncio_loop_close(asyncio_loop *loop);

/* The loop's clock: CLOCK_MONOTONIC, in seconds (NaN for NULL). */
ASYNCIO_EXTERN double asyncio_loop_time(asyncio_loop *loop);

/* Take / release a reference.  Releasing the last one closes the loop if
 * it is still open.  Both are safe from any thread.  Futures, transports
 * and servers hold references to their loop, so a loop with open
 * transports lives until asyncio_loop_close(): close your loops.  NULL:
 * a no-op. */
ASYNCIO_EXTERN void asyncio_loop_ref(asyncio_loop *loop);
ASYNCIO_EXTERN void asyncio_loop_unref(asyncio_loop *loop);

/* ---- Calls, timers, handles ---------------------------------------------- */

/* Schedule cb(arg) to run once, after every callback scheduled before it.
 * `handle`, when not NULL, receives a reference to a handle that can
 * cancel the call. */
ASYNCIO_EXTERN int asyncio_loop_call_soon(asyncio_loop *loop, asyncio_callback cb, void *arg,
                                          asyncio_handle **handle);

/* call_soon from any thread; wakes the loop if it sleeps. */
ASYNCIO_EXTERN int asyncio_loop_call_soon_threadsafe(asyncio_loop *loop, asyncio_callback cb,
                                                     void *arg, asyncio_handle **handle);

/* Schedule cb(arg) `delay` seconds from now (a negative delay is 0).
 * Timers run in deadline order, equal deadlines in scheduling order. */
ASYNCIO_EXTERN int asyncio_loop_call_later(asyncio_loop *loop, double delay, asyncio_callback cb,
                                           void *arg, asyncio_handle **handle);

/* Schedule cb(arg) at `when` on the asyncio_loop_time() clock. */
ASYNCIO_EXTERN int asyncio_loop_call_at(asyncio_loop *loop, double when, asyncio_callback cb,
                                        void *arg, asyncio_handle **handle);

/* Cancel the call.  Idempotent; a no-op once the callback ran. */
ASYNCIO_EXTERN int asyncio_handle_cancel(asyncio_handle *handle);

/* 1 if asyncio_handle_cancel() was called before the callback ran;
 * -EINVAL for NULL. */
ASYNCIO_EXTERN int asyncio_handle_cancelled(asyncio_handle *handle);

/* A timer's deadline on the loop's clock; -1.0 for a call_soon handle
 * and for NULL. */
ASYNCIO_EXTERN double asyncio_handle_when(asyncio_handle *handle);

/* Take / release a reference (any thread).  Releasing does not cancel.
 * NULL: a no-op. */
ASYNCIO_EXTERN void asyncio_handle_ref(asyncio_handle *handle);
ASYNCIO_EXTERN void asyncio_handle_unref(asyncio_handle *handle);

/* ---- Errors that have no caller ---------------------------------------- */

/* What the exception handler hears.  Every pointer is borrowed for the
 * duration of the call and may be NULL. */
typedef struct asyncio_error_context {
    const char *message;
    int error;
    asyncio_future *future;
    asyncio_handle *handle;
    asyncio_transport *transport;
    asyncio_server *server;
} asyncio_error_context;

typedef void (*asyncio_exception_handler)(asyncio_loop *loop, const asyncio_error_context *ctx,
                                          void *arg);

/* Install `h` (NULL: the default handler) for errors that have no caller:
 * a failing accept, a server's failed TLS handshake, a future freed with an
 * error nobody retrieved, and in debug mode slow callbacks. */
ASYNCIO_EXTERN int asyncio_loop_set_exception_handler(asyncio_loop *loop,
                                                      asyncio_exception_handler h, void *arg);

/* Pass `ctx` to the loop's handler.  A NULL loop or ctx: a no-op. */
ASYNCIO_EXTERN void asyncio_loop_call_exception_handler(asyncio_loop *loop,
                                                        const asyncio_error_context *ctx);

/* The default handler: writes one line to stderr (nothing for a NULL
 * ctx). */
ASYNCIO_EXTERN void asyncio_loop_default_exception_handler(asyncio_loop *loop,
                                                           const asyncio_error_context *ctx);

/* Debug mode: callbacks slower than the slow-callback duration, handles
 * dropped without having run and futures released while pending are
 * reported through the exception handler. */
ASYNCIO_EXTERN int asyncio_loop_set_debug(asyncio_loop *loop, int enabled);
ASYNCIO_EXTERN int asyncio_loop_get_debug(asyncio_loop *loop); /* 1 or 0; NULL: -EINVAL */

/* The threshold for a slow callback in debug mode; 0.1 s by default.
 * -EINVAL for a negative or non-finite value. */
ASYNCIO_EXTERN int asyncio_loop_set_slow_callback_duration(asyncio_loop *loop, double seconds);

/* ---- Signals --------------------------------------------------------------- */

/* Run cb(arg) as an ordinary loop callback whenever `signum` arrives;
 * replaces a handler the loop had for it.  -EINVAL for an invalid or
 * uncatchable signal (SIGKILL, SIGSTOP).  Only one loop in the process
 * can handle signals at a time (libevent delivers them to one base): a
 * second loop gets -EBUSY until the first removes its last handler or
 * closes. */
ASYNCIO_EXTERN int asyncio_loop_add_signal_handler(asyncio_loop *loop, int signum,
                                                   asyncio_callback cb, void *arg);

/* 1 if a handler was removed, 0 if there was none.  The disposition the
 * signal had before the loop took it is restored (so too on close). */
ASYNCIO_EXTERN int asyncio_loop_remove_signal_handler(asyncio_loop *loop, int signum);

#ifdef __cplusplus
}
#endif
#endif
