/* Delayed calls: a binary min-heap of handles keyed on (when, seq).
 *
 * libevent's own heap compares only the deadline, so timers with equal
 * deadlines come out in no particular order; asyncio promises scheduling
 * order.  The loop arms one evtimer for the earliest deadline just before
 * it polls (loop.c), so scheduling a timer costs a heap push and nothing
 * in libevent.  Cancellation is lazy (a flag); cancelled handles are
 * dropped when they reach the top, or all at once when they are the bulk
 * of the heap, which keeps cancel O(1) amortised. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

/* Compaction thresholds, as CPython's: not worth it for a small heap. */
#define COMPACT_MIN_CANCELLED 100

static int earlier(const asyncio_handle *a, const asyncio_handle *b)
{
    if (a->when != b->when)
        return a->when < b->when;
    return a->seq < b->seq;
}

static void sift_up(asyncio_handle **v, size_t i)
{
    asyncio_handle *h = v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!earlier(h, v[parent]))
            break;
        v[i] = v[parent];
        i = parent;
    }
    v[i] = h;
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
        v[i] = v[child];
        i = child;
    }
    v[i] = h;
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
    h->in_heap = 1;
    heap->v[heap->len] = h;
    sift_up(heap->v, heap->len++);
    return 0;
}

asyncio_handle *asyncio__heap_top(asyncio__heap *heap)
{
    return heap->len ? heap->v[0] : NULL;
}

asyncio_handle *asyncio__heap_pop(asyncio__heap *heap)
{
    if (heap->len == 0)
        return NULL;
    asyncio_handle *top = heap->v[0];
    if (--heap->len > 0) {
        heap->v[0] = heap->v[heap->len];
        sift_down(heap->v, heap->len, 0);
    }
    top->in_heap = 0;
    if (top->cancelled)
        heap->cancelled--;
    return top;
}

void asyncio__heap_maybe_compact(asyncio__heap *heap)
{
    if (heap->cancelled < COMPACT_MIN_CANCELLED || heap->cancelled * 2 < heap->len)
        return;
    size_t kept = 0;
    for (size_t i = 0; i < heap->len; i++) {
        asyncio_handle *h = heap->v[i];
        if (h->cancelled) {
            h->in_heap = 0;
            h->loop = NULL;
            asyncio_handle_unref(h);
        } else {
            heap->v[kept++] = h;
        }
    }
    heap->len = kept;
    heap->cancelled = 0;
    /* Bottom-up heapify; seq numbers keep the order among equal deadlines. */
    for (size_t i = kept / 2; i-- > 0;)
        sift_down(heap->v, kept, i);
}

void asyncio__heap_clear(asyncio__heap *heap)
{
    for (size_t i = 0; i < heap->len; i++)
        asyncio__handle_drop(heap->v[i]);
    free(heap->v);
    heap->v = NULL;
    heap->len = heap->cap = heap->cancelled = 0;
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
