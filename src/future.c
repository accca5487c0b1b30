/* Futures: a result or an error that arrives later, and the callbacks
 * waiting for it.
 *
 * A future holds a reference to its loop.  Completing it schedules each
 * done callback through the ready queue (a handle that holds a reference
 * to the future), so callbacks never run inside set_result and always run
 * in the order they were added.  A future freed with an error nobody
 * retrieved is reported through the loop's exception handler, as asyncio
 * logs "exception was never retrieved". */
#include "internal.h"

#include <stdlib.h>

enum future_state { PENDING, CANCELLED, FINISHED };

struct done_callback {
    asyncio_done_callback cb;
    void *arg;
};

struct asyncio_future {
    asyncio__refcount refs;
    asyncio_loop *loop;
    enum future_state state;
    int error;
    int retrieved;
    void *result;
    void (*destroy)(void *result);
    struct done_callback *callbacks;
    size_t ncallbacks, capcallbacks;
    /* Task hook (task.c): set while this future is a task whose coroutine
     * has not returned.  Such a future is completed only by the task
     * (asyncio__future_finish_task); cancel asks the task instead. */
    struct asyncio__task *task;
};

int asyncio_loop_create_future(asyncio_loop *loop, asyncio_future **out)
{
    if (out == NULL)
        return -EINVAL;
    ASYNCIO__CHECK_OPEN(loop);
    asyncio_future *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    asyncio__ref_init(&f->refs);
    asyncio_loop_ref(loop);
    f->loop = loop;
    f->state = PENDING;
    *out = f;
    return 0;
}

static asyncio_handle *done_handle(asyncio_future *f, asyncio_done_callback cb, void *arg)
{
    asyncio_handle *h = asyncio__handle_new(f->loop, NULL, arg);
    if (h != NULL) {
        h->done_cb = cb;
        h->future = f;
        asyncio_future_ref(f);
    }
    return h;
}

/* Complete the future.  Every callback's handle is made before anything
 * changes, so -ENOMEM leaves the future pending, the result not taken and
 * no callback lost.  On a closed loop the future still completes (whoever
 * looks at it sees the outcome) but its callbacks can never run: they are
 * dropped, like every other handle of a closed loop. */
static int complete(asyncio_future *f, enum future_state state, int error, void *result,
                    void (*destroy)(void *))
{
    if (f->state != PENDING)
        return ASYNCIO_EINVALSTATE;
    asyncio__queue scheduled = {NULL, NULL, 0};
    for (size_t i = 0; i < f->ncallbacks && !f->loop->closed; i++) {
        asyncio_handle *h = done_handle(f, f->callbacks[i].cb, f->callbacks[i].arg);
        if (h == NULL) {
            while ((h = asyncio__queue_pop(&scheduled)) != NULL) {
                h->loop = NULL;
                asyncio_handle_unref(h);
            }
            return -ENOMEM;
        }
        asyncio__queue_push(&scheduled, h);
    }
    f->state = state;
    f->error = error;
    f->result = result;
    f->destroy = destroy;
    asyncio__queue_splice(&f->loop->ready, &scheduled);
    free(f->callbacks);
    f->callbacks = NULL;
    f->ncallbacks = f->capcallbacks = 0;
    return 0;
}

int asyncio_future_set_result(asyncio_future *f, void *result, void (*destroy)(void *result))
{
    if (f == NULL || f->task != NULL) /* task hook: asyncio's Task refuses set_result */
        return -EINVAL;
    return complete(f, FINISHED, 0, result, destroy);
}

int asyncio_future_set_exception(asyncio_future *f, int error)
{
    if (f == NULL || error >= 0 || f->task != NULL) /* task hook, as set_result */
        return -EINVAL;
    return complete(f, FINISHED, error, NULL, NULL);
}

/* ---- Task hooks (task.c) -------------------------------------------------------- */

void asyncio__future_attach_task(asyncio_future *f, struct asyncio__task *task) { f->task = task; }

int asyncio__future_finish_task(asyncio_future *f, int error, void *result)
{
    if (error == -ECANCELED)
        return complete(f, CANCELLED, -ECANCELED, NULL, NULL);
    return complete(f, FINISHED, error, error < 0 ? NULL : result, NULL);
}

int asyncio_future_cancel(asyncio_future *f)
{
    if (f == NULL)
        return -EINVAL;
    if (f->state != PENDING)
        return 0;
    /* Task hook: a task is cancelled by its coroutine, which hears of it
     * as -ECANCELED from the await it is suspended in (asyncio's
     * Task.cancel). */
    if (f->task != NULL)
        return asyncio__task_cancel(f->task);
    int err = complete(f, CANCELLED, -ECANCELED, NULL, NULL);
    return err < 0 ? err : 1;
}

int asyncio_future_done(asyncio_future *f)
{
    if (f == NULL)
        return -EINVAL;
    return f->state != PENDING;
}

int asyncio_future_cancelled(asyncio_future *f)
{
    if (f == NULL)
        return -EINVAL;
    return f->state == CANCELLED;
}

int asyncio_future_exception(asyncio_future *f)
{
    if (f == NULL)
        return -EINVAL;
    if (f->state == PENDING)
        return ASYNCIO_EINVALSTATE;
    f->retrieved = 1;
    return f->error;
}

int asyncio_future_result(asyncio_future *f, void **result)
{
    int err = asyncio_future_exception(f);
    if (err == 0 && result != NULL)
        *result = f->result;
    return err;
}

int asyncio_future_add_done_callback(asyncio_future *f, asyncio_done_callback cb, void *arg)
{
    if (f == NULL || cb == NULL)
        return -EINVAL;
    if (f->state != PENDING) {
        if (f->loop->closed)
            return ASYNCIO_ECLOSED;
        asyncio_handle *h = done_handle(f, cb, arg);
        if (h == NULL)
            return -ENOMEM;
        asyncio__queue_push(&f->loop->ready, h);
        return 0;
    }
    if (f->ncallbacks == f->capcallbacks) {
        size_t cap = f->capcallbacks ? f->capcallbacks * 2 : 2;
        struct done_callback *v = realloc(f->callbacks, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        f->callbacks = v;
        f->capcallbacks = cap;
    }
    f->callbacks[f->ncallbacks].cb = cb;
    f->callbacks[f->ncallbacks].arg = arg;
    f->ncallbacks++;
    return 0;
}

int asyncio_future_remove_done_callback(asyncio_future *f, asyncio_done_callback cb, void *arg)
{
    if (f == NULL || cb == NULL)
        return -EINVAL;
    size_t kept = 0;
    for (size_t i = 0; i < f->ncallbacks; i++)
        if (f->callbacks[i].cb != cb || f->callbacks[i].arg != arg)
            f->callbacks[kept++] = f->callbacks[i];
    int removed = (int)(f->ncallbacks - kept);
    f->ncallbacks = kept;
    return removed;
}

asyncio_loop *asyncio_future_get_loop(asyncio_future *f) { return f != NULL ? f->loop : NULL; }

void asyncio_future_ref(asyncio_future *f)
{
    if (f != NULL)
        asyncio__ref_inc(&f->refs);
}

/* Tell the loop about a future dying in a state somebody should have seen.
 * The handler borrows the future, so it is briefly brought back to life;
 * returns 1 if the handler kept a reference (the future must live on). */
static int report_on_release(asyncio_future *f)
{
    const char *message = NULL;
    if (f->state == FINISHED && f->error != 0 && !f->retrieved)
        message = "future exception was never retrieved";
    else if (f->state == PENDING && f->loop->debug)
        message = "future released while still pending";
    if (message == NULL)
        return 0;
    f->retrieved = 1; /* report once, even if resurrected */
    asyncio__ref_init(&f->refs);
    asyncio__report(f->loop, message, f->state == FINISHED ? f->error : 0, f, NULL);
    return !asyncio__ref_dec(&f->refs);
}

void asyncio_future_unref(asyncio_future *f)
{
    if (f == NULL || !asyncio__ref_dec(&f->refs))
        return;
    if (report_on_release(f))
        return;
    if (f->destroy != NULL)
        f->destroy(f->result);
    free(f->callbacks);
    asyncio_loop_unref(f->loop);
    free(f);
}
