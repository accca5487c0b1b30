/* Stream transports: a connected socket, a pipe or character device, or
 * any connected bufferevent.  This file is the transport object: its state
 * machine, protocol delivery through the ready queue, close / abort /
 * connection_lost, and the ops table.  The data paths live beside it:
 * stream-fd.c (an fd of our own: sockets, pipes, ttys), stream-bev.c (a
 * bufferevent), sendfile.c (loop.sendfile), pipe.c (connect_read_pipe /
 * connect_write_pipe); stream.h is what they share.
 *
 * Owns: per transport, either an fd with two events of its own and an
 * output evbuffer (stream-fd.c), or a bufferevent taken over from the
 * caller (stream-bev.c); the handles it has queued on the loop; a sendfile
 * operation in progress.  Everything here runs in the loop's thread; only
 * _ref/_unref of the head may come from elsewhere.
 *
 * Ordering.  A libevent callback (fd event, bufferevent read/write/event
 * callback) only queues one of the transport's handles on the loop's ready
 * queue (at most one of each kind at a time); the protocol is called from
 * those handles, in the loop's batch, never inside libevent.  The handles:
 *   start  connection_made, then reading starts, then the waiter completes;
 *          queued at creation, so it runs before anything else does;
 *   read   one read of the fd or everything the bufferevent has read,
 *          then data_received / buffer_updated, eof_received;
 *   write  flush the output, step a sendfile, resume_writing, and finish a
 *          close or write_eof once the output is empty;
 *   lost   connection_lost exactly once, then the fd / bufferevent is
 *          freed, the server told, and the transport's own reference
 *          dropped.  Once it is queued (close flushed, abort, an error) no
 *          other protocol call is made: every handle checks `lost_queued`.
 * While open the transport holds one reference to itself, so a user may
 * drop theirs; each handle holds one for its run, so a protocol may drop
 * the last user reference (or free itself) inside any callback.  Loop
 * close runs the closable: it calls connection_lost(ASYNCIO_ECLOSED) on an
 * open transport (its queued handles were dropped with the ready queue).
 *
 * Writes on a closing transport (close, abort, an error) or after
 * write_eof return -EPIPE (transport.h).  An error of the fd itself during
 * a write is not the caller's: write returns 0 and the error comes as
 * connection_lost(error), as in asyncio. */
#include "stream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_HIGH (64 * 1024)

typedef asyncio__stream stream;

static const asyncio__transport_ops stream_ops;

static stream *S(asyncio_transport *t) { return (stream *)(void *)t; }

static void sref(stream *s) { asyncio_transport_ref(&s->head); }
static void sunref(stream *s) { asyncio_transport_unref(&s->head); }

asyncio__stream *asyncio__stream_of(asyncio_transport *t)
{
    return t != NULL && t->ops == &stream_ops ? S(t) : NULL;
}

/* ---- Queueing the transport's handles ------------------------------------------ */

/* Queue cb(s) unless the handle in *slot is queued already.  The slot keeps
 * a reference to the handle (so that loop close, which drops the queue's,
 * leaves it to us); the callback clears the slot first thing. */
static int queue(stream *s, asyncio_handle **slot, asyncio_callback cb)
{
    if (*slot != NULL)
        return 0;
    asyncio_loop *loop = s->head.loop;
    if (loop->closed)
        return ASYNCIO_ECLOSED;
    asyncio_handle *h = asyncio__handle_new(loop, cb, s);
    if (h == NULL)
        return -ENOMEM;
    asyncio__ref_inc(&h->refs);
    asyncio__queue_push(&loop->ready, h);
    *slot = h;
    return 0;
}

static void unslot(asyncio_handle **slot)
{
    asyncio_handle *h = *slot;
    *slot = NULL;
    if (h != NULL) {
        asyncio_handle_cancel(h);
        asyncio_handle_unref(h);
    }
}

static void on_read(void *arg);
static void on_write(void *arg);

void asyncio__stream_queue_read(stream *s) { queue(s, &s->read_h, on_read); }

void asyncio__stream_queue_write(stream *s) { queue(s, &s->write_h, on_write); }

/* ---- Buffer sizes and flow control ---------------------------------------------- */

struct evbuffer *asyncio__stream_output(stream *s)
{
    return s->bev != NULL ? bufferevent_get_output(s->bev) : s->out;
}

size_t asyncio__stream_out_len(stream *s)
{
    struct evbuffer *o = asyncio__stream_output(s);
    size_t n = o != NULL ? evbuffer_get_length(o) : 0;
    return s->nbelow > 0 ? n + asyncio__stream_bev_below_len(s) : n;
}

/* What get_write_buffer_size reports: the user's bytes not sent yet.  While
 * a sendfile sends the file, the output holds only file data. */
static size_t user_queued(stream *s)
{
    size_t n = s->held != NULL ? evbuffer_get_length(s->held) : 0;
    if (s->sf == NULL || asyncio__sendfile_flushing(s->sf))
        n += asyncio__stream_out_len(s);
    return n;
}

static void maybe_pause(stream *s)
{
    if (s->proto_paused || s->lost_queued || user_queued(s) <= s->high)
        return;
    s->proto_paused = 1;
    asyncio_protocol *p = s->head.protocol;
    if (p->ops->pause_writing != NULL)
        p->ops->pause_writing(p);
}

static void maybe_resume(stream *s)
{
    if (!s->proto_paused || s->lost_queued || user_queued(s) > s->low)
        return;
    s->proto_paused = 0;
    asyncio_protocol *p = s->head.protocol;
    if (p->ops->resume_writing != NULL)
        p->ops->resume_writing(p);
}

void asyncio__stream_update_events(stream *s)
{
    if (s->bev != NULL)
        asyncio__stream_bev_update_events(s);
    else
        asyncio__stream_fd_update_events(s);
}

/* ---- connection_lost -------------------------------------------------------------- */

/* Free the fd / bufferevent and the events; the buffers stay (empty) for
 * get_write_buffer_size until destroy. */
static void release_io(stream *s)
{
    if (s->layer != NULL && s->layer->release != NULL)
        s->layer->release(s);
    if (s->read_ev != NULL) {
        event_free(s->read_ev);
        s->read_ev = NULL;
    }
    if (s->write_ev != NULL) {
        event_free(s->write_ev);
        s->write_ev = NULL;
    }
    s->read_armed = s->write_armed = 0;
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    if (s->bev != NULL) {
        asyncio__stream_bev_release(s);
        bufferevent_free(s->bev);
        s->bev = NULL;
    }
    if (s->out != NULL)
        evbuffer_drain(s->out, evbuffer_get_length(s->out));
    if (s->in != NULL)
        evbuffer_drain(s->in, evbuffer_get_length(s->in));
    if (s->held != NULL)
        evbuffer_drain(s->held, evbuffer_get_length(s->held));
}

/* The end, from the lost handle or from loop close: connection_lost once,
 * then everything else goes; drops the transport's own reference. */
static void finish(stream *s, int err)
{
    s->lost_done = 1;
    s->closing = 1;
    if (s->sf != NULL)
        asyncio__sendfile_end(s, err < 0 ? err : -ECONNABORTED);
    if (s->waiter != NULL) {
        /* The loop closed before connection_made ran. */
        asyncio_future_set_exception(s->waiter, err < 0 ? err : ASYNCIO_ECLOSED);
        asyncio_future_unref(s->waiter);
        s->waiter = NULL;
    }
    asyncio_protocol *p = s->head.protocol;
    if (p->ops->connection_lost != NULL)
        p->ops->connection_lost(p, err);
    /* The protocol may be gone now: never touched again. */
    release_io(s);
    if (s->registered) {
        asyncio__loop_remove_closable(&s->closable);
        s->registered = 0;
    }
    asyncio_server *server = s->server;
    s->server = NULL;
    if (server != NULL) {
        asyncio__server_connection_done(server);
        asyncio_server_unref(server);
    }
    sunref(s); /* the transport's own reference */
}

static void on_lost(void *arg)
{
    stream *s = arg;
    unslot(&s->lost_h);
    sref(s);
    if (!s->lost_done)
        finish(s, s->lost_err);
    sunref(s);
}

/* No more protocol calls but connection_lost(err), which is queued. */
static void queue_lost(stream *s, int err)
{
    /* lost_done without lost_queued: loop close finished it already (a
     * later abort must not call connection_lost or drop the reference
     * twice). */
    if (s->lost_queued || s->lost_done)
        return;
    s->lost_queued = 1;
    s->closing = 1;
    s->lost_err = err;
    asyncio__stream_update_events(s);
    if (queue(s, &s->lost_h, on_lost) < 0) {
        /* No memory for a handle: deliver it now rather than never. */
        sref(s);
        finish(s, err);
        sunref(s);
    }
}

void asyncio__stream_force_close(stream *s, int err)
{
    if (s->lost_queued || s->lost_done)
        return;
    if (s->sf != NULL)
        asyncio__sendfile_end(s, err < 0 ? err : -ECONNABORTED);
    struct evbuffer *o = asyncio__stream_output(s);
    if (o != NULL)
        evbuffer_drain(o, evbuffer_get_length(o));
    if (s->held != NULL)
        evbuffer_drain(s->held, evbuffer_get_length(s->held));
    queue_lost(s, err);
}

/* ---- Reading ------------------------------------------------------------------------ */

int asyncio__stream_can_deliver(stream *s) { return !s->paused && !s->closing && !s->lost_queued; }

int asyncio__stream_deliver(stream *s, struct evbuffer *evb)
{
    asyncio_protocol *p = s->head.protocol;
    while (evbuffer_get_length(evb) > 0 && asyncio__stream_can_deliver(s)) {
        if (asyncio__stream_buffered(p)) {
            size_t len = 0;
            void *buf = p->ops->get_buffer(p, evbuffer_get_length(evb), &len);
            if (buf == NULL || len == 0)
                return -ENOBUFS;
            int n = evbuffer_remove(evb, buf, len);
            if (n <= 0)
                return -EIO;
            if (p->ops->buffer_updated != NULL)
                p->ops->buffer_updated(p, (size_t)n);
        } else {
            struct evbuffer_iovec v;
            if (evbuffer_peek(evb, -1, NULL, &v, 1) < 1)
                break;
            if (p->ops->data_received != NULL)
                p->ops->data_received(p, v.iov_base, v.iov_len);
            /* Still there: the buffer is freed only by the lost handle,
             * and a bufferevent appends at the end, never the front. */
            evbuffer_drain(evb, v.iov_len);
        }
    }
    return 0;
}

static int do_close(stream *s);

void asyncio__stream_eof(stream *s)
{
    s->read_eof = 1;
    asyncio__stream_update_events(s);
    int err = s->layer != NULL && s->layer->eof_error != NULL ? s->layer->eof_error(s) : 0;
    if (err < 0) {
        asyncio__stream_force_close(s, err);
        return;
    }
    asyncio_protocol *p = s->head.protocol;
    int keep = 0;
    if (p->ops->eof_received != NULL)
        keep = p->ops->eof_received(p);
    /* A read pipe has nothing to keep half-open (CPython closes it too). */
    if ((!keep || s->read_only) && !s->lost_queued)
        do_close(s);
}

static void on_read(void *arg)
{
    stream *s = arg;
    unslot(&s->read_h);
    if (s->lost_queued || !s->started)
        return;
    if (s->bev != NULL && s->bev_err < 0) {
        /* Fatal even while paused or flushing a close: asyncio drops what
         * is unread on a fatal error too. */
        sref(s);
        asyncio__stream_force_close(s, s->bev_err);
        sunref(s);
        return;
    }
    if (s->write_only) {
        /* The write end of a pipe turned readable: its reader went away
         * (EPOLLERR arrives as EV_READ, LIBEVENT-NOTES 9).  As CPython's
         * write pipes: a clean end unless data was still waiting. */
        sref(s);
        asyncio__stream_force_close(s,
                                    asyncio__stream_out_len(s) > 0 || s->sf != NULL ? -EPIPE : 0);
        sunref(s);
        return;
    }
    if (s->read_eof || !asyncio__stream_can_deliver(s))
        return;
    sref(s);
    if (s->bev != NULL)
        asyncio__stream_bev_read(s);
    else
        asyncio__stream_fd_read(s);
    sunref(s);
}

/* ---- Writing ------------------------------------------------------------------------- */

static void do_write_eof_now(stream *s)
{
    s->eof_sent = 1;
    if (s->fd >= 0)
        asyncio__stream_fd_write_eof(s);
    else if (s->bev != NULL)
        asyncio__stream_bev_write_eof(s);
}

/* close() has nothing left to send: the end, unless a layer (TLS) has
 * its own goodbye to say first. */
static void close_flushed(stream *s)
{
    if (s->layer != NULL && s->layer->close_flushed != NULL && s->layer->close_flushed(s))
        return;
    queue_lost(s, 0);
}

/* The output may have drained: resume the protocol, finish a close or a
 * write_eof, re-arm the events. */
static void after_flush(stream *s)
{
    if (s->lost_queued)
        return;
    maybe_resume(s);
    if (s->lost_queued)
        return;
    if (s->sf == NULL && asyncio__stream_out_len(s) == 0) {
        if (s->closing) {
            close_flushed(s);
            return;
        }
        if (s->eof_pending && !s->eof_sent)
            do_write_eof_now(s);
    }
    asyncio__stream_update_events(s);
}

static void on_write(void *arg)
{
    stream *s = arg;
    unslot(&s->write_h);
    if (s->lost_queued)
        return;
    sref(s);
    int err = 0;
    if (s->sf != NULL)
        err = asyncio__sendfile_step(s);
    else if (s->bev == NULL && s->fd >= 0)
        err = asyncio__stream_fd_flush(s);
    if (err < 0)
        asyncio__stream_force_close(s, err);
    else
        after_flush(s);
    sunref(s);
}

static int s_write(asyncio_transport *t, const struct iovec *iov, int iovcnt)
{
    stream *s = S(t);
    if (s->read_only)
        return -ENOTSUP;
    if (s->closing || s->eof_pending)
        return -EPIPE;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;

    if (s->sf != NULL) {
        /* Paused for writing: these follow the file. */
        for (int i = 0; i < iovcnt; i++)
            if (iov[i].iov_len > 0 && evbuffer_add(s->held, iov[i].iov_base, iov[i].iov_len) < 0)
                return -ENOMEM;
        maybe_pause(s);
        return 0;
    }

    struct evbuffer *o = asyncio__stream_output(s);
    size_t sent = 0;
    if (s->bev == NULL && evbuffer_get_length(o) == 0) {
        /* Nothing queued: try the fd now, from the caller's memory. */
        ssize_t w = asyncio__stream_fd_send(s, iov, iovcnt);
        if (w < 0) {
            /* As asyncio: the error reaches connection_lost, not the
             * caller, whose write itself was fine. */
            asyncio__stream_force_close(s, (int)w);
            return 0;
        }
        sent = (size_t)w;
    }
    if (sent < total) {
        size_t skip = sent;
        for (int i = 0; i < iovcnt; i++) {
            size_t l = iov[i].iov_len;
            if (skip >= l) {
                skip -= l;
                continue;
            }
            if (evbuffer_add(o, (const char *)iov[i].iov_base + skip, l - skip) < 0)
                return -ENOMEM;
            skip = 0;
        }
        asyncio__stream_update_events(s);
        maybe_pause(s);
    }
    return 0;
}

/* ---- The transport calls ------------------------------------------------------------- */

static int do_close(stream *s)
{
    if (s->closing)
        return 0;
    s->closing = 1;
    if (s->sf == NULL && asyncio__stream_out_len(s) == 0)
        close_flushed(s);
    else
        asyncio__stream_update_events(s); /* stop reading; the write handle finishes the close */
    return 0;
}

static int s_close(asyncio_transport *t) { return do_close(S(t)); }

static int s_abort(asyncio_transport *t)
{
    asyncio__stream_force_close(S(t), 0);
    return 0;
}

static int s_is_closing(asyncio_transport *t) { return S(t)->closing; }

static int s_can_write_eof(asyncio_transport *t) { return S(t)->can_eof; }

static int s_write_eof(asyncio_transport *t)
{
    stream *s = S(t);
    if (!s->can_eof)
        return -ENOTSUP;
    if (s->closing || s->eof_pending)
        return 0;
    if (s->write_only)
        return do_close(s); /* a pipe's EOF is its close, as in CPython */
    s->eof_pending = 1;
    if (s->sf == NULL && asyncio__stream_out_len(s) == 0)
        do_write_eof_now(s);
    else
        asyncio__stream_update_events(s);
    return 0;
}

static int s_pause_reading(asyncio_transport *t)
{
    stream *s = S(t);
    if (s->write_only)
        return -ENOTSUP;
    if (s->closing || s->paused)
        return 0;
    s->paused = 1;
    asyncio__stream_update_events(s);
    return 0;
}

/* Bytes (or an EOF, an error) the transport holds without libevent going
 * to report them again. */
static int has_unread(stream *s)
{
    if (s->bev != NULL)
        return asyncio__stream_bev_has_unread(s);
    return s->in != NULL && evbuffer_get_length(s->in) > 0;
}

static int s_resume_reading(asyncio_transport *t)
{
    stream *s = S(t);
    if (s->write_only)
        return -ENOTSUP;
    if (s->closing || !s->paused)
        return 0;
    s->paused = 0;
    asyncio__stream_update_events(s);
    if (s->started && has_unread(s))
        queue(s, &s->read_h, on_read);
    return 0;
}

static int s_set_write_buffer_limits(asyncio_transport *t, size_t high, size_t low)
{
    stream *s = S(t);
    if (s->read_only)
        return -ENOTSUP;
    if (high == 0 && low == 0) {
        high = DEFAULT_HIGH;
        low = DEFAULT_HIGH / 4;
    } else if (low > high) {
        return -EINVAL;
    } else if (low == 0) {
        low = high / 4;
    }
    s->high = high;
    s->low = low;
    if (!s->lost_queued) {
        asyncio__stream_update_events(s);
        maybe_pause(s);
    }
    return 0;
}

static size_t s_get_write_buffer_size(asyncio_transport *t) { return user_queued(S(t)); }

static int current_fd(stream *s)
{
    if (s->bev != NULL)
        return bufferevent_getfd(s->bev);
    return s->fd;
}

static void *s_get_extra_info(asyncio_transport *t, const char *name)
{
    stream *s = S(t);
    int fd = current_fd(s);
    /* A pipe transport (pipe.c) answers "pipe" only, whatever its fd is,
     * as asyncio's pipe transports do; the others "socket" and names. */
    int pipe = s->read_only || s->write_only;
    int sock = !pipe && (s->bev != NULL || s->fd_kind == ASYNCIO__FD_SOCKET);
    if (strcmp(name, "socket") == 0 || strcmp(name, "pipe") == 0) {
        if (fd < 0 || (name[0] == 'p' ? !pipe : !sock))
            return NULL;
        s->info_fd = fd;
        return &s->info_fd;
    }
    if (strcmp(name, "peername") == 0) {
        if (s->peerlen == 0 && fd >= 0 && sock) {
            socklen_t len = sizeof(s->peer);
            if (getpeername(fd, (struct sockaddr *)&s->peer, &len) == 0)
                s->peerlen = len;
        }
        return s->peerlen > 0 ? &s->peer : NULL;
    }
    if (strcmp(name, "sockname") == 0) {
        if (s->socklen == 0 && fd >= 0 && sock) {
            socklen_t len = sizeof(s->sock);
            if (getsockname(fd, (struct sockaddr *)&s->sock, &len) == 0)
                s->socklen = len;
        }
        return s->socklen > 0 ? &s->sock : NULL;
    }
    return asyncio__stream_bev_extra_info(s, name);
}

static void s_destroy(asyncio_transport *t)
{
    stream *s = S(t);
    unslot(&s->start_h);
    unslot(&s->read_h);
    unslot(&s->write_h);
    unslot(&s->lost_h);
    release_io(s);
    if (s->registered)
        asyncio__loop_remove_closable(&s->closable);
    if (s->waiter != NULL)
        asyncio_future_unref(s->waiter);
    if (s->server != NULL)
        asyncio_server_unref(s->server);
    if (s->out != NULL)
        evbuffer_free(s->out);
    if (s->in != NULL)
        evbuffer_free(s->in);
    if (s->held != NULL)
        evbuffer_free(s->held);
    if (s->layer != NULL && s->layer->destroy != NULL)
        s->layer->destroy(s);
    free(s);
}

static const asyncio__transport_ops stream_ops = {
    .kind = "stream",
    .write = s_write,
    .write_eof = s_write_eof,
    .can_write_eof = s_can_write_eof,
    .close = s_close,
    .abort = s_abort,
    .is_closing = s_is_closing,
    .pause_reading = s_pause_reading,
    .resume_reading = s_resume_reading,
    .set_write_buffer_limits = s_set_write_buffer_limits,
    .get_write_buffer_size = s_get_write_buffer_size,
    .get_extra_info = s_get_extra_info,
    .destroy = s_destroy,
};

/* ---- Start and loop close ------------------------------------------------------------- */

static void result_unref(void *t) { asyncio_transport_unref(t); }

static void on_start(void *arg)
{
    stream *s = arg;
    unslot(&s->start_h);
    sref(s);
    s->started = 1;
    asyncio_protocol *p = s->head.protocol;
    if (p->ops->connection_made != NULL && !s->moved_in)
        p->ops->connection_made(p, &s->head);
    if (!s->lost_queued) {
        asyncio__stream_update_events(s);
        if (has_unread(s))
            queue(s, &s->read_h, on_read);
    }
    asyncio_future *w = s->waiter;
    s->waiter = NULL;
    if (w != NULL) {
        if (asyncio_future_cancelled(w)) {
            asyncio__stream_force_close(s, 0);
        } else if (!asyncio_future_done(w)) {
            sref(s); /* the future's result holds one */
            if (asyncio_future_set_result(w, &s->head, result_unref) < 0)
                sunref(s);
        }
        asyncio_future_unref(w);
    }
    sunref(s);
}

/* The loop closes: the queued handles were dropped with its ready queue. */
static void on_loop_close(asyncio__closable *c)
{
    stream *s = asyncio__container_of(c, stream, closable);
    s->registered = 0; /* the loop took it off its list */
    sref(s);
    unslot(&s->start_h);
    unslot(&s->read_h);
    unslot(&s->write_h);
    unslot(&s->lost_h);
    if (!s->lost_done)
        finish(s, s->lost_queued ? s->lost_err : ASYNCIO_ECLOSED);
    sunref(s);
}

/* ---- Construction -------------------------------------------------------------------- */

asyncio__stream *asyncio__stream_alloc(asyncio_loop *loop, asyncio_protocol *protocol)
{
    stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->fd = -1;
    s->info_fd = -1;
    s->high = DEFAULT_HIGH;
    s->low = DEFAULT_HIGH / 4;
    s->held = evbuffer_new();
    if (s->held == NULL) {
        free(s);
        return NULL;
    }
    /* The one reference this makes is the transport's own, held while open. */
    asyncio__transport_init(&s->head, &stream_ops, loop, protocol);
    return s;
}

int asyncio__stream_open(stream *s, asyncio_server *server, asyncio_future *waiter,
                         asyncio_transport **out)
{
    asyncio_loop *loop = s->head.loop;
    if (s->bev != NULL)
        s->can_eof = asyncio__stream_bev_can_write_eof(s);
    else
        s->can_eof = !s->read_only;
    int err = queue(s, &s->start_h, on_start);
    if (err < 0) {
        sunref(s);
        return err;
    }
    s->closable.close = on_loop_close;
    asyncio__loop_add_closable(loop, &s->closable);
    s->registered = 1;
    if (server != NULL) {
        asyncio_server_ref(server);
        s->server = server;
    }
    if (waiter != NULL) {
        asyncio_future_ref(waiter);
        s->waiter = waiter;
    }
    if (out != NULL) {
        sref(s);
        *out = &s->head;
    }
    return 0;
}
