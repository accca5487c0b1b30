/* Handles and the two ways into the ready queue: call_soon (loop thread)
 * and call_soon_threadsafe (any thread, through the inbox).
 *
 * The ready queue is touched only by the loop's thread.  The inbox is the
 * one structure shared between threads: other threads append under
 * inbox_lock and write the eventfd once per drain (wake_pending), the loop
 * moves the inbox to the end of the ready queue when the eventfd fires. */
#include "internal.h"

#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Freed handles are kept for reuse by the thread that freed them, up to
 * HANDLE_CACHE_MAX: handles are plain memory, so any thread's cache serves
 * any loop, and a call_later + cancel + unref cycle never reaches malloc
 * (measured: malloc was the largest cost of timer churn).  The cache is
 * emptied when its thread exits. */
#define HANDLE_CACHE_MAX 256

struct handle_cache {
    asyncio_handle *head;
    unsigned len;
    int registered; /* its thread-exit destructor is set up */
};

static ASYNCIO__THREAD_LOCAL struct handle_cache cache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_clear(void *arg)
{
    struct handle_cache *c = arg;
    asyncio_handle *h;
    while ((h = c->head) != NULL) {
        c->head = h->next;
        free(h);
    }
    c->len = 0;
}

static void cache_make_key(void) { pthread_key_create(&cache_key, cache_clear); }

static asyncio_handle *handle_alloc(void)
{
    asyncio_handle *h = cache.head;
    if (h == NULL)
        return malloc(sizeof(*h));
    cache.head = h->next;
    cache.len--;
    return h;
}

static void handle_free(asyncio_handle *h)
{
    if (h->future != NULL)
        asyncio_future_unref(h->future);
    if (cache.len >= HANDLE_CACHE_MAX) {
        free(h);
        return;
    }
    if (!cache.registered) {
        pthread_once(&cache_once, cache_make_key);
        pthread_setspecific(cache_key, &cache);
        cache.registered = 1;
    }
    h->next = cache.head;
    cache.head = h;
    cache.len++;
}

static asyncio_handle *handle_init(asyncio_handle *h, asyncio_loop *loop, asyncio_callback cb,
                                   void *arg)
{
    asyncio__ref_init(&h->refs);
    h->loop = loop;
    h->next = NULL;
    h->cb = cb;
    h->arg = arg;
    h->done_cb = NULL;
    h->future = NULL;
    h->when = -1.0;
    h->seq = 0;
    h->heap_index = ASYNCIO__NOT_IN_HEAP;
    h->cancelled = 0;
    h->ran = 0;
    return h;
}

asyncio_handle *asyncio__handle_new(asyncio_loop *loop, asyncio_callback cb, void *arg)
{
    asyncio_handle *h = handle_alloc();
    return h != NULL ? handle_init(h, loop, cb, arg) : NULL;
}

void asyncio_handle_ref(asyncio_handle *h)
{
    if (h != NULL)
        asyncio__ref_inc(&h->refs);
}

void asyncio_handle_unref(asyncio_handle *h)
{
    if (h != NULL && asyncio__ref_dec(&h->refs))
        handle_free(h);
}

void asyncio__handle_forget(asyncio_handle **slot)
{
    if (*slot != NULL) {
        asyncio_handle_cancel(*slot);
        asyncio_handle_unref(*slot);
        *slot = NULL;
    }
}

void asyncio__handle_drop(asyncio_handle *h)
{
    asyncio_loop *loop = h->loop;
    if (loop != NULL && loop->debug && !h->cancelled)
        asyncio__report(loop, "handle dropped without having run (loop closed)", ASYNCIO_ECLOSED,
                        NULL, h);
    h->loop = NULL;
    asyncio_handle_unref(h);
}

int asyncio_handle_cancel(asyncio_handle *h)
{
    if (h == NULL)
        return -EINVAL;
    if (h->cancelled || h->ran)
        return 0;
    h->cancelled = 1;
    if (h->heap_index != ASYNCIO__NOT_IN_HEAP && h->loop != NULL) {
        asyncio_loop *loop = h->loop;
        asyncio__heap_remove(&loop->timers, h);
        h->loop = NULL;
        asyncio_handle_unref(h); /* the heap's reference */
    }
    return 0;
}

int asyncio_handle_cancelled(asyncio_handle *h)
{
    if (h == NULL)
        return -EINVAL;
    return h->cancelled;
}

double asyncio_handle_when(asyncio_handle *h)
{
    if (h == NULL)
        return -1.0;
    return h->when;
}

int asyncio_loop_call_soon(asyncio_loop *loop, asyncio_callback cb, void *arg, asyncio_handle **out)
{
    if (cb == NULL)
        return -EINVAL;
    ASYNCIO__CHECK_OPEN(loop);
    asyncio_handle *h = asyncio__handle_new(loop, cb, arg);
    if (h == NULL)
        return -ENOMEM;
    asyncio__queue_push(&loop->ready, h);
    if (out != NULL) {
        asyncio__ref_inc(&h->refs);
        *out = h;
    }
    return 0;
}

int asyncio_loop_call_soon_threadsafe(asyncio_loop *loop, asyncio_callback cb, void *arg,
                                      asyncio_handle **out)
{
    if (loop == NULL || cb == NULL)
        return -EINVAL;
    /* From the loop's own thread the ready queue is ours: appending there
     * keeps FIFO order with plain call_soon. */
    if (asyncio__running_loop() == loop)
        return asyncio_loop_call_soon(loop, cb, arg, out);

    asyncio_handle *h = asyncio__handle_new(loop, cb, arg);
    if (h == NULL)
        return -ENOMEM;
    if (out != NULL)
        asyncio__ref_inc(&h->refs);

    pthread_mutex_lock(&loop->inbox_lock);
    if (loop->closed) {
        pthread_mutex_unlock(&loop->inbox_lock);
        h->loop = NULL;
        if (out != NULL)
            asyncio_handle_unref(h);
        asyncio_handle_unref(h);
        return ASYNCIO_ECLOSED;
    }
    asyncio__queue_push(&loop->inbox, h);
    if (!loop->wake_pending) {
        /* Written under the lock so that close() cannot close the eventfd
         * (and the number be reused) between the check and the write. */
        uint64_t one = 1;
        ssize_t n;
        do
            n = write(loop->wake_fd, &one, sizeof(one));
        while (n < 0 && errno == EINTR);
        /* EAGAIN means the counter is saturated: the loop is awake anyway. */
        loop->wake_pending = 1;
    }
    pthread_mutex_unlock(&loop->inbox_lock);
    if (out != NULL)
        *out = h;
    return 0;
}

void asyncio__inbox_drain(asyncio_loop *loop)
{
    uint64_t count;
    ssize_t n;
    do
        n = read(loop->wake_fd, &count, sizeof(count));
    while (n < 0 && errno == EINTR);
    pthread_mutex_lock(&loop->inbox_lock);
    asyncio__queue_splice(&loop->ready, &loop->inbox);
    loop->wake_pending = 0;
    pthread_mutex_unlock(&loop->inbox_lock);
}
