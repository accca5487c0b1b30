/* Delayed calls: a binary min-heap of handles keyed on (when, seq).
 *
 * libevent's own heap compares only the deadline, so timers with equal
 * deadlines come out in no particular order; asyncio promises scheduling
 * order.  The loop arms one evtimer for the earliest deadline just before
 * it polls (loop.c), so scheduling a timer costs a heap push and nothing
 * in libevent.  Every handle knows its index in the heap, so cancelling
 * removes it at once (O(log n)): a lazily-deleted heap fills with dead
 * handles under schedule+cancel churn and was measured 8x slower. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

static int earlier(const asyncio_handle *a, const asyncio_handle *b)
{
    if (a->when != b->when)
        return a->when < b->when;
    return a->seq < b->seq;
}

static void place(asyncio_handle **v, size_t i, asyncio_handle *h)
{
    v[i] = h;
    h->heap_index = i;
}

static void sift_up(asyncio_handle **v, size_t i)
{
    asyncio_handle *h = v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!earlier(h, v[parent]))
            break;
        place(v, i, v[parent]);
        i = parent;
    }
    place(v, i, h);
}

static void sift_down(asyncio_handle **v, size_t len, size_t i)
{
    asyncio_handle *h = v[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= len)
            break;
        if (child + 1 < len && earlier(v[child + 1], v[child]))
            child++;
        if (!earlier(v[child], h))
            break;
        place(v, i, v[child]);
        i = child;
    }
    place(v, i, h);
}

int asyncio__heap_push(asyncio__heap *heap, asyncio_handle *h)
{
    if (heap->len == heap->cap) {
        size_t cap = heap->cap ? heap->cap * 2 : 64;
        asyncio_handle **v = realloc(heap->v, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        heap->v = v;
        heap->cap = cap;
    }
    h->seq = heap->next_seq++;
    heap->v[heap->len] = h;
    sift_up(heap->v, heap->len++);
    return 0;
}

asyncio_handle *asyncio__heap_top(asyncio__heap *heap) { return heap->len ? heap->v[0] : NULL; }

void asyncio__heap_remove(asyncio__heap *heap, asyncio_handle *h)
{
    size_t i = h->heap_index;
    h->heap_index = ASYNCIO__NOT_IN_HEAP;
    asyncio_handle *last = heap->v[--heap->len];
    if (i == heap->len)
        return;
    place(heap->v, i, last);
    if (i > 0 && earlier(last, heap->v[(i - 1) / 2]))
        sift_up(heap->v, i);
    else
        sift_down(heap->v, heap->len, i);
}

void asyncio__heap_clear(asyncio__heap *heap)
{
    for (size_t i = 0; i < heap->len; i++) {
        heap->v[i]->heap_index = ASYNCIO__NOT_IN_HEAP;
        asyncio__handle_drop(heap->v[i]);
    }
    free(heap->v);
    heap->v = NULL;
    heap->len = heap->cap = 0;
}

int asyncio_loop_call_at(asyncio_loop *loop, double when, asyncio_callback cb, void *arg,
                         asyncio_handle **out)
{
    if (cb == NULL || isnan(when))
        return -EINVAL;
    ASYNCIO__CHECK_OPEN(loop);
    asyncio_handle *h = asyncio__handle_new(loop, cb, arg);
    if (h == NULL)
        return -ENOMEM;
    h->when = when;
    if (asyncio__heap_push(&loop->timers, h) < 0) {
        asyncio_handle_unref(h);
        return -ENOMEM;
    }
    if (out != NULL) {
        asyncio__ref_inc(&h->refs);
        *out = h;
    }
    return 0;
}

int asyncio_loop_call_later(asyncio_loop *loop, double delay, asyncio_callback cb, void *arg,
                            asyncio_handle **out)
{
    if (isnan(delay))
        return -EINVAL;
    if (delay < 0)
        delay = 0;
    return asyncio_loop_call_at(loop, asyncio__now() + delay, cb, arg, out);
}
