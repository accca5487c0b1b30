/* Tasks: C functions run on stacks of their own, suspended in
 * asyncio_await until a future is done.
 *
 * A task is an asyncio_future with a struct asyncio__task attached
 * (future.c's task hook) until its function returns.  Owns: the task's
 * stack and contexts (coro.c), one reference to its own future (the loop
 * keeping the task alive, as asyncio's loop does) and one to the future it
 * awaits.  Per loop (struct asyncio__tasks): the list of tasks that have
 * not finished, a cache of stacks, the stack size, and the closable.
 * Everything runs in the loop's thread.
 *
 * Scheduling.  A task runs only from the loop's batch: its first step is
 * a call_soon callback, and asyncio_await adds a done callback to the
 * awaited future which switches into the task when it runs -- the done
 * callback is the task's next step, queued by future.c like any other, so
 * a task is never resumed inside a libevent callback nor inside the call
 * that completed its future.  asyncio_sleep(0) queues the step with
 * call_soon directly.  The task switches back to whoever resumed it (the
 * loop's batch, or asyncio_loop_close) when it awaits again or returns.
 *
 * The function of every task runs exactly once, even when the task is
 * cancelled before it started or the loop closes first: in C the function
 * is the only one who can release what `arg` holds (asyncio instead never
 * starts such a coroutine and lets the garbage collector have its
 * arguments).
 *
 * Cancellation (asyncio's Task.cancel): a task suspended on a pending
 * future cancels that future, whose done callback then resumes the task
 * with -ECANCELED.  Otherwise (not started, queued to resume, running) the
 * request is remembered: a task about to resume gets -ECANCELED from its
 * await; one not started or running from its next await (which cancels
 * the future it would wait on, as asyncio does) or sleep.  A function that
 * returns 0 or an error after that completes its task with it -- unless a
 * request is still pending, then the task is cancelled.
 *
 * Loop close.  The tasks' closable runs after every other closable (it
 * moves itself to the end once), so transports have delivered
 * connection_lost by then.  Each task is resumed once with
 * `closing` set (or started so, if it never ran): its await returns
 * ASYNCIO_ECLOSED, and so does any other await or sleep, so the function
 * runs to its end, releasing what it holds; its task completes as
 * cancelled.  Then the stacks are freed. */
#include "coro.h"

#include <math.h>
#include <stdlib.h>

/* Stacks kept for reuse per loop: creating a task then costs no system
 * call while tasks come and go. */
#define STACK_CACHE_MAX 64
#define STACK_SIZE_MAX ((size_t)1 << 30)

struct asyncio__tasks {
    asyncio__closable closable;
    asyncio_loop *loop;
    int deferred; /* the closable has moved itself to the end */
    size_t stack_size;
    asyncio__link live; /* tasks whose function has not returned */
    asyncio__stack cache[STACK_CACHE_MAX];
    size_t ncached;
};

struct asyncio__task {
    asyncio__link link; /* in tasks->live */
    struct asyncio__tasks *tasks;
    asyncio_loop *loop;     /* borrowed: the future holds a reference */
    asyncio_future *future; /* one reference, dropped when it completes */
    asyncio_coroutine fn;
    void *arg;
    asyncio__stack stack;
    asyncio__coro ctx;        /* the task's own context */
    asyncio__coro back;       /* whoever resumed it */
    asyncio_future *awaiting; /* the future it is suspended on (a reference) */
    int finished, must_cancel, closing;
    int rc; /* what fn returned */
    void *result;
};

/* The task running in this thread, or NULL. */
static ASYNCIO__THREAD_LOCAL struct asyncio__task *current;

/* ---- Per-loop state ------------------------------------------------------------- */

static void stack_put(struct asyncio__tasks *ts, asyncio__stack *s)
{
    if (ts->ncached < STACK_CACHE_MAX && s->size == ts->stack_size) {
        asyncio__stack_reset(s);
        ts->cache[ts->ncached++] = *s;
    } else {
        asyncio__stack_free(s);
    }
    s->map = NULL;
}

static int stack_get(struct asyncio__tasks *ts, asyncio__stack *s)
{
    if (ts->ncached > 0) {
        *s = ts->cache[--ts->ncached];
        return 0;
    }
    return asyncio__stack_alloc(s, ts->stack_size);
}

static void cache_clear(struct asyncio__tasks *ts)
{
    while (ts->ncached > 0)
        asyncio__stack_free(&ts->cache[--ts->ncached]);
}

static void task_finish(struct asyncio__task *t);
static void task_resume(struct asyncio__task *t);

static void tasks_close(asyncio__closable *c)
{
    struct asyncio__tasks *ts = asyncio__container_of(c, struct asyncio__tasks, closable);
    asyncio_loop *loop = ts->loop;
    if (!ts->deferred && !asyncio__list_empty(&loop->closables)) {
        /* Last: let transports and servers deliver connection_lost first,
         * so what a task releases on its way out is already closed. */
        ts->deferred = 1;
        asyncio__loop_add_closable(loop, c);
        return;
    }
    while (!asyncio__list_empty(&ts->live)) {
        struct asyncio__task *t = asyncio__container_of(ts->live.next, struct asyncio__task, link);
        t->closing = 1;
        /* A step still queued (first step, sleep(0)) is dropped with the
         * ready queue after this, without running. */
        task_resume(t); /* runs to the end: nothing can suspend it now */
    }
    cache_clear(ts);
    loop->tasks = NULL;
    free(ts);
}

static struct asyncio__tasks *tasks_of(asyncio_loop *loop)
{
    if (loop->tasks != NULL)
        return loop->tasks;
    struct asyncio__tasks *ts = calloc(1, sizeof(*ts));
    if (ts == NULL)
        return NULL;
    ts->loop = loop;
    ts->stack_size = ASYNCIO_TASK_STACK_SIZE_DEFAULT;
    asyncio__list_init(&ts->live);
    ts->closable.close = tasks_close;
    asyncio__loop_add_closable(loop, &ts->closable);
    loop->tasks = ts;
    return ts;
}

int asyncio_loop_set_task_stack_size(asyncio_loop *loop, size_t bytes)
{
    ASYNCIO__CHECK_OPEN(loop);
    if (bytes == 0)
        bytes = ASYNCIO_TASK_STACK_SIZE_DEFAULT;
    if (bytes < ASYNCIO_TASK_STACK_SIZE_MIN || bytes > STACK_SIZE_MAX)
        return -EINVAL;
    struct asyncio__tasks *ts = tasks_of(loop);
    if (ts == NULL)
        return -ENOMEM;
    size_t page = asyncio__page_size();
    bytes = (bytes + page - 1) / page * page;
    if (bytes != ts->stack_size) {
        cache_clear(ts);
        ts->stack_size = bytes;
    }
    return 0;
}

/* ---- Running a task ----------------------------------------------------------------- */

static void task_main(void *arg)
{
    struct asyncio__task *t = arg;
    asyncio__coro_started(&t->ctx);
    void *result = NULL;
    t->rc = t->fn(t->arg, &result);
    t->result = result;
    t->finished = 1;
    asyncio__coro_exit(&t->ctx, &t->back);
}

/* Switch into the task until it awaits or returns.  Tasks nest when one
 * closes another loop (its tasks are resumed from inside it). */
static void task_resume(struct asyncio__task *t)
{
    struct asyncio__task *prev = current;
    current = t;
    asyncio__coro_switch(&t->back, &t->ctx);
    current = prev;
    if (t->finished)
        task_finish(t);
}

/* Back to whoever resumed the task, until something resumes it. */
static void task_suspend(struct asyncio__task *t) { asyncio__coro_switch(&t->ctx, &t->back); }

/* The function returned (or never ran): free the stack, complete the
 * future, drop the task's reference to it. */
static void task_finish(struct asyncio__task *t)
{
    asyncio__list_remove(&t->link);
    asyncio__coro_destroy(&t->ctx);
    stack_put(t->tasks, &t->stack);
    int error = t->rc;
    if (t->closing || (error >= 0 && t->must_cancel))
        error = -ECANCELED;
    else if (error > 0)
        error = 0;
    asyncio_future *f = t->future;
    asyncio__future_attach_task(f, NULL);
    asyncio__future_finish_task(f, error, t->result);
    free(t);
    asyncio_future_unref(f);
}

static void task_step(void *arg) { task_resume(arg); }

int asyncio_loop_create_task(asyncio_loop *loop, asyncio_coroutine fn, void *arg,
                             asyncio_future **out)
{
    if (fn == NULL)
        return -EINVAL;
    ASYNCIO__CHECK_OPEN(loop);
    struct asyncio__tasks *ts = tasks_of(loop);
    if (ts == NULL)
        return -ENOMEM;
    struct asyncio__task *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    int err = stack_get(ts, &t->stack);
    if (err < 0) {
        free(t);
        return err == -ENOMEM || err == -EAGAIN ? -ENOMEM : err;
    }
    if ((err = asyncio_loop_create_future(loop, &t->future)) < 0)
        goto fail;
    if ((err = asyncio_loop_call_soon(loop, task_step, t, NULL)) < 0) {
        asyncio_future_unref(t->future);
        goto fail;
    }
    t->tasks = ts;
    t->loop = loop;
    t->fn = fn;
    t->arg = arg;
    asyncio__coro_make(&t->ctx, &t->stack, task_main, t);
    asyncio__future_attach_task(t->future, t);
    asyncio__list_push_back(&ts->live, &t->link);
    if (out != NULL) {
        asyncio_future_ref(t->future);
        *out = t->future;
    }
    return 0;

fail:
    stack_put(ts, &t->stack);
    free(t);
    return err;
}

asyncio_future *asyncio_current_task(void) { return current != NULL ? current->future : NULL; }

/* ---- Cancelling (future.c's hook) ------------------------------------------------------ */

int asyncio__task_cancel(struct asyncio__task *t)
{
    if (t->awaiting != NULL && !asyncio_future_done(t->awaiting) &&
        asyncio_future_cancel(t->awaiting) == 1)
        return 1; /* its done callback resumes the task with -ECANCELED */
    t->must_cancel = 1;
    return 1;
}

/* ---- Awaiting -------------------------------------------------------------------------- */

/* The awaited future's done callback: the task's next step. */
static void task_wakeup(asyncio_future *f, void *arg)
{
    struct asyncio__task *t = arg;
    if (t->awaiting == f)
        task_resume(t);
}

int asyncio_await(asyncio_future *f, void **result)
{
    struct asyncio__task *t = current;
    if (t == NULL)
        return ASYNCIO_ENOTASK;
    if (f == NULL || asyncio_future_get_loop(f) != t->loop || f == t->future)
        return -EINVAL;
    if (t->closing)
        return ASYNCIO_ECLOSED;
    if (!asyncio_future_done(f)) {
        int err = asyncio_future_add_done_callback(f, task_wakeup, t);
        if (err < 0)
            return err;
        asyncio_future_ref(f);
        t->awaiting = f;
        if (t->must_cancel) {
            /* Cancelled while running: the wait it starts is cancelled. */
            t->must_cancel = 0;
            asyncio_future_cancel(f);
        }
        task_suspend(t);
        t->awaiting = NULL;
        if (t->closing) {
            asyncio_future_remove_done_callback(f, task_wakeup, t);
            asyncio_future_unref(f);
            return ASYNCIO_ECLOSED;
        }
        asyncio_future_unref(f); /* the done callback's handle still holds f */
    }
    if (t->must_cancel) {
        t->must_cancel = 0;
        return -ECANCELED;
    }
    return asyncio_future_result(f, result);
}

/* ---- Sleeping ---------------------------------------------------------------------------- */

static int yield_once(struct asyncio__task *t)
{
    int err = asyncio_loop_call_soon(t->loop, task_step, t, NULL);
    if (err < 0)
        return err;
    task_suspend(t);
    if (t->closing)
        return ASYNCIO_ECLOSED;
    if (t->must_cancel) {
        t->must_cancel = 0;
        return -ECANCELED;
    }
    return 0;
}

static void sleep_done(void *arg)
{
    asyncio_future *f = arg;
    if (!asyncio_future_done(f))
        asyncio_future_set_result(f, NULL, NULL);
}

int asyncio_sleep(double delay)
{
    struct asyncio__task *t = current;
    if (t == NULL)
        return ASYNCIO_ENOTASK;
    if (isnan(delay))
        return -EINVAL;
    if (t->closing)
        return ASYNCIO_ECLOSED;
    if (delay <= 0)
        return yield_once(t);
    asyncio_future *f;
    int err = asyncio_loop_create_future(t->loop, &f);
    if (err < 0)
        return err;
    /* The timer borrows f: it is cancelled below, before f goes. */
    asyncio_handle *h;
    if ((err = asyncio_loop_call_later(t->loop, delay, sleep_done, f, &h)) == 0) {
        err = asyncio_await(f, NULL);
        asyncio_handle_cancel(h);
        asyncio_handle_unref(h);
    }
    asyncio_future_unref(f);
    return err;
}
