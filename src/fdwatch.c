/* add_reader / add_writer: asyncio's fd watching on libevent events.
 *
 * Owns: loop->fdwatch, a table indexed by fd (fds are small and dense, as
 * libevent's own evmap assumes) of {reader, writer}; each is a persistent
 * libevent event plus the user's callback and the handle last scheduled
 * for it.  Loop thread only.
 *
 * asyncio replaces where libevent stacks: a second add_reader for an fd
 * replaces the callback of the first (the event is kept).  The libevent
 * callback never calls user code: it schedules the callback through the
 * ready queue and keeps that handle, so that a remove or a replace made
 * after the fd fired but before the handle ran cancels it -- CPython's
 * remove_reader cancels the very handle its selector put in _ready.  While
 * a handle is still queued a new readiness is not queued again.
 *
 * The table is freed by loop close (a closable); the user's fds are never
 * closed here. */
#include "internal.h"

#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>

enum { READER, WRITER };

struct watch {
    struct event *ev; /* NULL: not watched */
    asyncio_loop *loop;
    asyncio_callback cb;
    void *arg;
    asyncio_handle *handle; /* last scheduled, one reference */
};

struct fd_entry {
    struct watch w[2];
};

struct asyncio__fdwatch {
    asyncio__closable closable;
    asyncio_loop *loop;
    struct fd_entry **fds; /* indexed by fd; NULL: nothing watched */
    size_t cap;
};

static void drop_handle(struct watch *w)
{
    if (w->handle != NULL) {
        asyncio_handle_cancel(w->handle); /* a no-op once it ran */
        asyncio_handle_unref(w->handle);
        w->handle = NULL;
    }
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    struct watch *w = arg;
    /* Still queued from an earlier poll: it will run, once. */
    if (w->handle != NULL && !asyncio_handle_cancelled(w->handle) && w->handle->loop != NULL)
        return;
    drop_handle(w);
    asyncio_handle *h;
    if (asyncio_loop_call_soon(w->loop, w->cb, w->arg, &h) == 0)
        w->handle = h;
}

static void fdwatch_close(asyncio__closable *c)
{
    struct asyncio__fdwatch *fw = asyncio__container_of(c, struct asyncio__fdwatch, closable);
    for (size_t fd = 0; fd < fw->cap; fd++) {
        struct fd_entry *e = fw->fds[fd];
        if (e == NULL)
            continue;
        for (int d = READER; d <= WRITER; d++) {
            if (e->w[d].ev != NULL)
                event_free(e->w[d].ev);
            drop_handle(&e->w[d]);
        }
        free(e);
    }
    fw->loop->fdwatch = NULL;
    free(fw->fds);
    free(fw);
}

static struct asyncio__fdwatch *fdwatch_get(asyncio_loop *loop)
{
    if (loop->fdwatch == NULL) {
        struct asyncio__fdwatch *fw = calloc(1, sizeof(*fw));
        if (fw == NULL)
            return NULL;
        fw->closable.close = fdwatch_close;
        fw->loop = loop;
        asyncio__loop_add_closable(loop, &fw->closable);
        loop->fdwatch = fw;
    }
    return loop->fdwatch;
}

static int add_watch(asyncio_loop *loop, int fd, int dir, asyncio_callback cb, void *arg)
{
    if (fd < 0 || cb == NULL)
        return -EINVAL;
    ASYNCIO__CHECK_OPEN(loop);
    /* A closed fd would sit in the table (and in epoll) unnoticed. */
    if (fcntl(fd, F_GETFD) < 0)
        return -errno;
    struct asyncio__fdwatch *fw = fdwatch_get(loop);
    if (fw == NULL)
        return -ENOMEM;
    if ((size_t)fd >= fw->cap) {
        size_t cap = fw->cap ? fw->cap : 64;
        while (cap <= (size_t)fd)
            cap *= 2;
        struct fd_entry **v = realloc(fw->fds, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        for (size_t i = fw->cap; i < cap; i++)
            v[i] = NULL;
        fw->fds = v;
        fw->cap = cap;
    }
    struct fd_entry *e = fw->fds[fd];
    if (e == NULL && (e = fw->fds[fd] = calloc(1, sizeof(*e))) == NULL)
        return -ENOMEM;
    struct watch *w = &e->w[dir];
    if (w->ev == NULL) {
        w->ev = event_new(loop->base, fd, (dir == READER ? EV_READ : EV_WRITE) | EV_PERSIST,
                          on_ready, w);
        if (w->ev == NULL || event_add(w->ev, NULL) < 0) {
            if (w->ev != NULL)
                event_free(w->ev);
            w->ev = NULL;
            if (e->w[!dir].ev == NULL) {
                free(e);
                fw->fds[fd] = NULL;
            }
            return -ENOMEM;
        }
        w->loop = loop;
    }
    /* Replacing: the old callback must not run, even if already queued. */
    drop_handle(w);
    w->cb = cb;
    w->arg = arg;
    return 0;
}

static int remove_watch(asyncio_loop *loop, int fd, int dir)
{
    if (fd < 0)
        return -EINVAL;
    ASYNCIO__CHECK_OPEN(loop);
    struct asyncio__fdwatch *fw = loop->fdwatch;
    if (fw == NULL || (size_t)fd >= fw->cap || fw->fds[fd] == NULL)
        return 0;
    struct fd_entry *e = fw->fds[fd];
    struct watch *w = &e->w[dir];
    if (w->ev == NULL)
        return 0;
    event_free(w->ev);
    w->ev = NULL;
    drop_handle(w);
    if (e->w[!dir].ev == NULL) {
        free(e);
        fw->fds[fd] = NULL;
    }
    return 1;
}

int asyncio_loop_add_reader(asyncio_loop *loop, int fd, asyncio_callback cb, void *arg)
{
    return add_watch(loop, fd, READER, cb, arg);
}

int asyncio_loop_remove_reader(asyncio_loop *loop, int fd)
{
    return remove_watch(loop, fd, READER);
}

int asyncio_loop_add_writer(asyncio_loop *loop, int fd, asyncio_callback cb, void *arg)
{
    return add_watch(loop, fd, WRITER, cb, arg);
}

int asyncio_loop_remove_writer(asyncio_loop *loop, int fd)
{
    return remove_watch(loop, fd, WRITER);
}
