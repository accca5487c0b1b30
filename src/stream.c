/* Stream transports: a connected socket, or any connected bufferevent.
 *
 * Owns: per transport, either a socket fd with two events of its own
 * (EV_READ|EV_PERSIST, EV_WRITE|EV_PERSIST) and an output evbuffer, or a
 * bufferevent (taken over from the caller); the handles it has queued on
 * the loop; a sendfile operation in progress.  Per loop, one scratch
 * buffer that every socket transport reads into (loop->read_buffer, freed
 * by a closable when the loop closes).  Everything here runs in the loop's
 * thread; only _ref/_unref of the head may come from elsewhere.
 *
 * Ordering.  A libevent callback (fd event, bufferevent read/write/event
 * callback) only queues one of the transport's handles on the loop's ready
 * queue (at most one of each kind at a time); the protocol is called from
 * those handles, in the loop's batch, never inside libevent.  The handles:
 *   start  connection_made, then reading starts, then the waiter completes;
 *          queued at creation, so it runs before anything else does;
 *   read   one recv() (socket) or everything the bufferevent has read,
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
 * Data path, socket transports (measured; see the numbers below):
 *   read   readable -> read handle -> one recv() of up to READ_SIZE
 *          (256 KiB) into the loop's scratch buffer -> data_received
 *          (buf, n) straight from it.  A buffered protocol gets recv()
 *          straight into the memory get_buffer() handed out, then
 *          buffer_updated(n): no copy at all.  libevent's evbuffer_read
 *          would cap each read at 4 KiB (EVBUFFER_MAX_READ in 2.1).
 *   write  write() first tries sendmsg(MSG_NOSIGNAL) on the caller's own
 *          iovecs when nothing is queued (asyncio, uvloop and libuv do; a
 *          bufferevent would write on the next loop pass); only what the
 *          socket did not take is copied into an evbuffer, which the write
 *          handle drains with sendmsg over evbuffer_peek'd chains.
 *          MSG_NOSIGNAL: a peer that went away gives EPIPE, not SIGPIPE.
 *   Measured here (2 shared cores, -O2, no sanitizers): 1 GiB one way
 *   over a unix socketpair, best of 7: this path 7.9 GB/s with 256 KiB
 *   reads (about 4,800 data_received calls, 222 KB each: what the socket
 *   held), 5.3 GB/s with 64 KiB reads (16,700 calls), 7.0 GB/s with 1 MiB;
 *   the bufferevent path (a filter, 4 KiB reads) 0.23 GB/s.  Echo, 100
 *   connections x 16 KiB ping-pong (bench/bench-echo, medians of 5): this
 *   path 26.0k round trips/s = 0.96 x a bare epoll server (27.1k) and
 *   5.9 x a plain bufferevent echo server (4.4k).  An own evbuffer +
 *   sendmsg is kept over a socket bufferevent for output because the
 *   bufferevent cannot write at once, and writes without MSG_NOSIGNAL.
 *
 * Data path, bufferevent transports (pairs, filters, OpenSSL): the
 * bufferevent reads into its input evbuffer; the read handle hands each
 * contiguous chain to data_received (evbuffer_peek, then drain) or copies
 * it into a buffered protocol's memory.  Writes go to the bufferevent's
 * output; its write callback (low watermark = our low mark, 0 while a
 * close, write_eof or sendfile waits for the buffer to empty) queues the
 * write handle.  A plain socket bufferevent is not wrapped at all: its fd
 * is taken over into the socket path (what it had read or queued moves
 * along), because that path is the faster one and migrating libevent code
 * should get it too.  The cost: get_extra_info("bufferevent") is then
 * NULL, and options set on the bufferevent (rate limits, timeouts) go.
 *
 * sendfile (asyncio's loop.sendfile): the transport is "paused for
 * writing" while it runs: what was queued before is sent first; writes made
 * during the operation go to `held` and follow the file.  Socket path:
 * sendfile(2) with SIGPIPE blocked around it (sendfile has no
 * MSG_NOSIGNAL); where the file cannot be sendfile'd (EINVAL, ESPIPE...)
 * and on the bufferevent path: pread chunks into the output buffer.
 * Reading goes on meanwhile.  The result is the byte count once all of it
 * left the output buffer.  A second sendfile while one runs: -EBUSY; on a
 * closing transport: -EPIPE.
 *
 * Writes on a closing transport (close, abort, an error) or after
 * write_eof return -EPIPE (transport.h).  An error of the socket itself
 * during a write is not the caller's: write returns 0 and the error comes
 * as connection_lost(error), as in asyncio.
 *
 * Bufferevent caveats (libevent 2.1): a freed bufferevent is finalized,
 * and its fd closed, in the base's next pass -- a base freed before that
 * pass leaked a freed pair bufferevent in tests/test-stream; a
 * filter's close waits for the filter's own output only, not for the
 * bufferevent under it. */
#include "internal.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <time.h>
#include <unistd.h>

/* 256 KiB, as CPython's selector transports: fewer recv() calls than 64 KiB
 * (3.4 x fewer on a bulk transfer, see the numbers above) and nothing more
 * to gain from 1 MiB, as a socket rarely holds more.  The buffer is one per
 * loop, so its size costs nothing per connection. */
#ifndef READ_SIZE /* settable only to measure it */
#define READ_SIZE (256 * 1024)
#endif
/* Chains handed to one sendmsg(). */
#define MAX_IOV 64
/* The bufferevent / fallback sendfile path reads the file in these. */
#define FILE_CHUNK (64 * 1024)
#define DEFAULT_HIGH (64 * 1024)

enum sf_phase {
    SF_FLUSH,    /* sending what was queued before the operation */
    SF_NATIVE,   /* sendfile(2) */
    SF_FALLBACK, /* pread into the output buffer */
};

struct sendfile_op {
    asyncio_future *future;
    int fd;
    off_t start;      /* offset asked for */
    off_t offset;     /* next byte of the file to send */
    size_t remaining; /* SIZE_MAX: to the end of the file */
    size_t sent;
    int file_eof;
    enum sf_phase phase;
};

typedef struct stream {
    asyncio_transport head; /* first: the transport calls cast it back */
    asyncio__closable closable;
    int registered; /* closable is on the loop's list */

    int fd;                  /* socket path; -1 on the bufferevent path or once closed */
    struct event *read_ev;   /* socket path */
    struct event *write_ev;
    int read_armed, write_armed;
    struct evbuffer *out;    /* socket path: queued output */
    struct evbuffer *in;     /* socket path: what a taken-over bufferevent had read */

    struct bufferevent *bev; /* bufferevent path */
    int bev_eof;             /* the bufferevent reported EOF */
    int bev_err;             /* ... or an error (negative) */

    struct evbuffer *held;   /* writes made during a sendfile */
    struct sendfile_op *sf;

    asyncio_server *server;
    asyncio_future *waiter;

    asyncio_handle *start_h, *read_h, *write_h, *lost_h;

    size_t high, low;
    int started;      /* connection_made ran */
    int paused;       /* pause_reading */
    int closing;      /* close, abort or an error: no more writes or reads */
    int read_eof;     /* EOF seen: no more reading */
    int eof_pending;  /* write_eof asked for */
    int eof_sent;
    int proto_paused; /* pause_writing was called, resume_writing not yet */
    int lost_queued;
    int lost_done;
    int can_eof;      /* can_write_eof, fixed when the transport is made */
    int lost_err;

    struct sockaddr_storage peer, sock; /* cached by get_extra_info */
    socklen_t peerlen, socklen;
    int info_fd; /* what get_extra_info("socket") points at */
} stream;

static const asyncio__transport_ops stream_ops;

static stream *S(asyncio_transport *t) { return (stream *)(void *)t; }

static void sref(stream *s) { asyncio_transport_ref(&s->head); }
static void sunref(stream *s) { asyncio_transport_unref(&s->head); }

/* ---- The loop's read buffer ---------------------------------------------------- */

struct read_buffer {
    asyncio__closable closable;
    asyncio_loop *loop;
    max_align_t data[]; /* READ_SIZE bytes */
};

static void read_buffer_close(asyncio__closable *c)
{
    struct read_buffer *rb = asyncio__container_of(c, struct read_buffer, closable);
    rb->loop->read_buffer = NULL;
    rb->loop->read_buffer_size = 0;
    free(rb);
}

static void *read_buffer(asyncio_loop *loop)
{
    if (loop->read_buffer != NULL)
        return loop->read_buffer;
    struct read_buffer *rb = malloc(sizeof(*rb) + READ_SIZE);
    if (rb == NULL)
        return NULL;
    rb->closable.close = read_buffer_close;
    rb->loop = loop;
    asyncio__loop_add_closable(loop, &rb->closable);
    loop->read_buffer = rb->data;
    loop->read_buffer_size = READ_SIZE;
    return rb->data;
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

/* ---- Buffer sizes and flow control ---------------------------------------------- */

static struct evbuffer *output(stream *s)
{
    return s->bev != NULL ? bufferevent_get_output(s->bev) : s->out;
}

/* Bytes in the output buffer (file data of a sendfile included). */
static size_t out_len(stream *s)
{
    struct evbuffer *o = output(s);
    return o != NULL ? evbuffer_get_length(o) : 0;
}

/* What get_write_buffer_size reports: the user's bytes not sent yet.  While
 * a sendfile sends the file, the output holds only file data. */
static size_t user_queued(stream *s)
{
    size_t n = s->held != NULL ? evbuffer_get_length(s->held) : 0;
    if (s->sf == NULL || s->sf->phase == SF_FLUSH)
        n += out_len(s);
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

/* ---- Events: what should be armed ---------------------------------------------- */

static int should_read(stream *s)
{
    return s->started && !s->paused && !s->closing && !s->read_eof && !s->lost_queued;
}

static void bev_set_watermark(stream *s)
{
    /* The write callback comes when the output falls to the low mark: at
     * 0 when something waits for it to be empty. */
    size_t wm = (s->closing || s->eof_pending || s->sf != NULL) ? 0 : s->low;
    bufferevent_setwatermark(s->bev, EV_WRITE, wm, 0);
}

static void update_events(stream *s)
{
    if (s->bev != NULL) {
        if (s->lost_queued) {
            bufferevent_disable(s->bev, EV_READ | EV_WRITE);
            return;
        }
        if (should_read(s))
            bufferevent_enable(s->bev, EV_READ);
        else
            bufferevent_disable(s->bev, EV_READ);
        bev_set_watermark(s);
        return;
    }
    if (s->fd < 0)
        return;
    int r = should_read(s);
    if (r != s->read_armed) {
        if (r)
            event_add(s->read_ev, NULL);
        else
            event_del(s->read_ev);
        s->read_armed = r;
    }
    int w = !s->lost_queued && (out_len(s) > 0 || s->sf != NULL);
    if (w != s->write_armed) {
        if (w)
            event_add(s->write_ev, NULL);
        else
            event_del(s->write_ev);
        s->write_armed = w;
    }
}

/* ---- connection_lost -------------------------------------------------------------- */

/* Free the fd / bufferevent and the events; the buffers stay (empty) for
 * get_write_buffer_size until destroy. */
static void release_io(stream *s)
{
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

static void sf_end(stream *s, int err);

/* The end, from the lost handle or from loop close: connection_lost once,
 * then everything else goes; drops the transport's own reference. */
static void finish(stream *s, int err)
{
    s->lost_done = 1;
    s->closing = 1;
    if (s->sf != NULL)
        sf_end(s, err < 0 ? err : -ECONNABORTED);
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
    if (s->lost_queued)
        return;
    s->lost_queued = 1;
    s->closing = 1;
    s->lost_err = err;
    update_events(s);
    if (queue(s, &s->lost_h, on_lost) < 0) {
        /* No memory for a handle: deliver it now rather than never. */
        sref(s);
        finish(s, err);
        sunref(s);
    }
}

/* Drop what is queued and end with `err` (0 for abort). */
static void force_close(stream *s, int err)
{
    if (s->lost_queued)
        return;
    if (s->sf != NULL)
        sf_end(s, err < 0 ? err : -ECONNABORTED);
    struct evbuffer *o = output(s);
    if (o != NULL)
        evbuffer_drain(o, evbuffer_get_length(o));
    if (s->held != NULL)
        evbuffer_drain(s->held, evbuffer_get_length(s->held));
    queue_lost(s, err);
}

/* ---- Reading ------------------------------------------------------------------------ */

static int can_deliver(stream *s) { return !s->paused && !s->closing && !s->lost_queued; }

static int buffered(asyncio_protocol *p) { return p->ops->get_buffer != NULL; }

/* Hand what `evb` holds to the protocol, a contiguous chunk at a time,
 * as long as the protocol wants data.  Returns 0 or a fatal error. */
static int deliver_evbuffer(stream *s, struct evbuffer *evb)
{
    asyncio_protocol *p = s->head.protocol;
    while (evbuffer_get_length(evb) > 0 && can_deliver(s)) {
        if (buffered(p)) {
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

static void on_eof(stream *s)
{
    s->read_eof = 1;
    update_events(s);
    asyncio_protocol *p = s->head.protocol;
    int keep = 0;
    if (p->ops->eof_received != NULL)
        keep = p->ops->eof_received(p);
    if (!keep && !s->lost_queued)
        do_close(s);
}

/* Socket path: one recv per readiness, as asyncio does. */
static void sock_read(stream *s)
{
    asyncio_protocol *p = s->head.protocol;
    if (s->in != NULL && evbuffer_get_length(s->in) > 0) {
        int err = deliver_evbuffer(s, s->in);
        if (err < 0)
            force_close(s, err);
        return;
    }
    void *buf;
    size_t len;
    if (buffered(p)) {
        len = 0;
        buf = p->ops->get_buffer(p, READ_SIZE, &len);
        if (buf == NULL || len == 0) {
            force_close(s, -ENOBUFS);
            return;
        }
    } else {
        buf = read_buffer(s->head.loop);
        len = READ_SIZE;
        if (buf == NULL) {
            force_close(s, -ENOMEM);
            return;
        }
    }
    ssize_t n;
    do
        n = recv(s->fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        if (buffered(p)) {
            if (p->ops->buffer_updated != NULL)
                p->ops->buffer_updated(p, (size_t)n);
        } else if (p->ops->data_received != NULL) {
            p->ops->data_received(p, buf, (size_t)n);
        }
    } else if (n == 0) {
        on_eof(s);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        force_close(s, -errno);
    }
}

static void bev_read(stream *s)
{
    int err = deliver_evbuffer(s, bufferevent_get_input(s->bev));
    if (err < 0) {
        force_close(s, err);
        return;
    }
    if (s->bev_eof && !s->read_eof && can_deliver(s) &&
        evbuffer_get_length(bufferevent_get_input(s->bev)) == 0)
        on_eof(s);
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
        force_close(s, s->bev_err);
        sunref(s);
        return;
    }
    if (s->read_eof || !can_deliver(s))
        return;
    sref(s);
    if (s->bev != NULL)
        bev_read(s);
    else
        sock_read(s);
    sunref(s);
}

/* ---- Writing ------------------------------------------------------------------------- */

/* One sendmsg of up to MAX_IOV iovecs; returns bytes sent, 0 when the
 * socket is full, or a negative errno. */
static ssize_t send_iov(int fd, const struct iovec *iov, int iovcnt)
{
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = (struct iovec *)iov;
    msg.msg_iovlen = (size_t)(iovcnt < IOV_MAX ? iovcnt : IOV_MAX);
    ssize_t n;
    do
        n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
    return n;
}

/* Send from `out` until it is empty or the socket is full. */
static int sock_flush(stream *s)
{
    while (evbuffer_get_length(s->out) > 0) {
        struct evbuffer_iovec v[MAX_IOV];
        struct iovec iov[MAX_IOV];
        int n = evbuffer_peek(s->out, -1, NULL, v, MAX_IOV);
        if (n > MAX_IOV)
            n = MAX_IOV;
        size_t total = 0;
        for (int i = 0; i < n; i++) {
            iov[i].iov_base = v[i].iov_base;
            iov[i].iov_len = v[i].iov_len;
            total += v[i].iov_len;
        }
        ssize_t w = send_iov(s->fd, iov, n);
        if (w < 0)
            return (int)w;
        evbuffer_drain(s->out, (size_t)w);
        if ((size_t)w < total)
            return 0; /* full: wait for EV_WRITE instead of an EAGAIN */
    }
    return 0;
}

static void do_write_eof_now(stream *s)
{
    s->eof_sent = 1;
    if (s->fd >= 0) {
        shutdown(s->fd, SHUT_WR);
    } else if (s->bev != NULL) {
        int fd = bufferevent_getfd(s->bev);
        if (fd >= 0 && bufferevent_get_underlying(s->bev) == NULL)
            shutdown(fd, SHUT_WR);
        else
            bufferevent_flush(s->bev, EV_WRITE, BEV_FINISHED);
    }
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
    if (s->sf == NULL && out_len(s) == 0) {
        if (s->closing) {
            queue_lost(s, 0);
            return;
        }
        if (s->eof_pending && !s->eof_sent)
            do_write_eof_now(s);
    }
    update_events(s);
}

static int sf_step(stream *s);

static void on_write(void *arg)
{
    stream *s = arg;
    unslot(&s->write_h);
    if (s->lost_queued)
        return;
    sref(s);
    int err = 0;
    if (s->sf != NULL)
        err = sf_step(s);
    else if (s->bev == NULL && s->fd >= 0)
        err = sock_flush(s);
    if (err < 0)
        force_close(s, err);
    else
        after_flush(s);
    sunref(s);
}

static int s_write(asyncio_transport *t, const struct iovec *iov, int iovcnt)
{
    stream *s = S(t);
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

    struct evbuffer *o = output(s);
    size_t sent = 0;
    if (s->bev == NULL && evbuffer_get_length(o) == 0) {
        /* Nothing queued: try the socket now, from the caller's memory. */
        ssize_t w = send_iov(s->fd, iov, iovcnt);
        if (w < 0) {
            /* As asyncio: the error reaches connection_lost, not the
             * caller, whose write itself was fine. */
            force_close(s, (int)w);
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
        update_events(s);
        maybe_pause(s);
    }
    return 0;
}


/* ---- sendfile ---------------------------------------------------------------------- */

/* sendfile(2) has no MSG_NOSIGNAL: block SIGPIPE around it and swallow the
 * one it raised, unless one was pending already (then it is not ours). */
static ssize_t sendfile_quiet(int sock, int fd, off_t *offset, size_t count)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t n;
    do
        n = sendfile(sock, fd, offset, count);
    while (n < 0 && errno == EINTR);
    int e = errno;
    if (n < 0 && e == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return n;
}

static void sf_account(struct sendfile_op *op, size_t n)
{
    op->sent += n;
    if (op->remaining != SIZE_MAX)
        op->remaining -= n;
}

/* Read the file's next chunk into the output buffer.  0 or a file error. */
static int sf_fill(stream *s)
{
    struct sendfile_op *op = s->sf;
    size_t want = op->remaining < FILE_CHUNK ? op->remaining : FILE_CHUNK;
    if (want == 0) {
        op->file_eof = 1;
        return 0;
    }
    struct evbuffer *o = output(s);
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(o, (ev_ssize_t)want, &v, 1) < 1)
        return -ENOMEM;
    if (v.iov_len < want)
        want = v.iov_len;
    ssize_t n;
    do
        n = pread(op->fd, v.iov_base, want, op->offset);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == ESPIPE) {
        /* A pipe or a socket: no offsets, read what comes. */
        do
            n = read(op->fd, v.iov_base, want);
        while (n < 0 && errno == EINTR);
    }
    if (n < 0)
        return errno == EAGAIN ? -EAGAIN : -errno; /* the reservation is simply not used */
    if (n == 0) {
        op->file_eof = 1;
        return 0;
    }
    v.iov_len = (size_t)n;
    if (evbuffer_commit_space(o, &v, 1) < 0)
        return -ENOMEM;
    op->offset += n;
    sf_account(op, (size_t)n);
    return 0;
}

/* End the operation: its future gets the count (or err), what was written
 * meanwhile follows in the output buffer. */
static void sf_end(stream *s, int err)
{
    struct sendfile_op *op = s->sf;
    s->sf = NULL;
    /* As asyncio: the file position ends after what was sent. */
    if (op->sent > 0)
        lseek(op->fd, op->start + (off_t)op->sent, SEEK_SET);
    if (!asyncio_future_done(op->future)) {
        if (err < 0)
            asyncio_future_set_exception(op->future, err);
        else
            asyncio_future_set_result(op->future, (void *)(intptr_t)op->sent, NULL);
    }
    asyncio_future_unref(op->future);
    free(op);
    if (evbuffer_get_length(s->held) > 0) {
        if (s->bev != NULL)
            bufferevent_write_buffer(s->bev, s->held);
        else if (s->out != NULL)
            evbuffer_add_buffer(s->out, s->held);
    }
}

/* Connection errors end the transport; anything else sendfile reports is
 * about the file and ends only the operation. */
static int is_connection_error(int e)
{
    switch (e) {
    case EPIPE:
    case ECONNRESET:
    case ENOTCONN:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENETDOWN:
        return 1;
    default:
        return 0;
    }
}

/* One step of the operation, from the write handle.  0, or a fatal error
 * of the connection. */
static int sf_step(stream *s)
{
    struct sendfile_op *op = s->sf;
    if (asyncio_future_done(op->future)) {
        sf_end(s, 0); /* cancelled by its owner: stop here */
        return 0;
    }
    if (op->phase == SF_FLUSH) {
        if (s->bev == NULL) {
            int err = sock_flush(s);
            if (err < 0)
                return err;
        }
        if (out_len(s) > 0)
            return 0;
        op->phase = s->bev == NULL ? SF_NATIVE : SF_FALLBACK;
    }
    if (op->phase == SF_NATIVE) {
        for (;;) {
            if (op->remaining == 0) {
                sf_end(s, 0);
                return 0;
            }
            size_t want = op->remaining > (1u << 30) ? (1u << 30) : op->remaining;
            ssize_t n = sendfile_quiet(s->fd, op->fd, &op->offset, want);
            if (n > 0) {
                sf_account(op, (size_t)n);
                continue;
            }
            if (n == 0) { /* end of the file */
                sf_end(s, 0);
                return 0;
            }
            int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK)
                return 0;
            if (is_connection_error(e))
                return -e;
            if (op->sent == 0 && (e == EINVAL || e == ENOSYS || e == ESPIPE || e == EOVERFLOW)) {
                op->phase = SF_FALLBACK; /* this file cannot be sendfile'd */
                break;
            }
            sf_end(s, -e);
            return 0;
        }
    }
    /* SF_FALLBACK: keep one chunk in the output buffer at a time. */
    for (int rounds = 0;; rounds++) {
        if (s->bev == NULL) {
            int err = sock_flush(s);
            if (err < 0)
                return err;
        }
        if (out_len(s) > 0)
            return 0; /* EV_WRITE, or the bufferevent's write callback at 0 */
        if (op->file_eof || op->remaining == 0) {
            sf_end(s, 0);
            return 0;
        }
        if (rounds == 16) {
            /* A bufferevent that passes data on at once (a pair): give
             * the other callbacks of the loop a turn. */
            queue(s, &s->write_h, on_write);
            return 0;
        }
        int err = sf_fill(s);
        if (err < 0) {
            sf_end(s, err);
            return 0;
        }
    }
}

int asyncio_loop_sendfile(asyncio_loop *loop, asyncio_transport *t, int fd, off_t offset,
                          size_t count, asyncio_future **out)
{
    if (loop == NULL || t == NULL || fd < 0 || offset < 0)
        return -EINVAL;
    if (loop->closed)
        return ASYNCIO_ECLOSED;
    if (t->loop != loop)
        return -EINVAL;
    if (t->ops != &stream_ops)
        return -ENOTSUP;
    stream *s = S(t);
    if (s->closing || s->eof_pending)
        return -EPIPE;
    if (s->sf != NULL)
        return -EBUSY;
    struct sendfile_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return -ENOMEM;
    int err = asyncio_loop_create_future(loop, &op->future);
    if (err < 0) {
        free(op);
        return err;
    }
    op->fd = fd;
    op->start = op->offset = offset;
    op->remaining = count > 0 ? count : SIZE_MAX;
    op->phase = SF_FLUSH;
    s->sf = op;
    if (out != NULL) {
        asyncio_future_ref(op->future);
        *out = op->future;
    }
    update_events(s);
    if (out_len(s) == 0)
        queue(s, &s->write_h, on_write); /* nothing to wait for */
    return 0;
}

/* ---- The transport calls ------------------------------------------------------------- */

static int kind_can_write_eof(stream *s)
{
    if (s->bev == NULL)
        return 1;
    /* TLS needs close_notify, which libevent 2.1 cannot send; a filter
     * would pass a shutdown to its underlying bufferevent too early. */
    return bufferevent_openssl_get_ssl(s->bev) == NULL &&
           bufferevent_get_underlying(s->bev) == NULL;
}

static int do_close(stream *s)
{
    if (s->closing)
        return 0;
    s->closing = 1;
    if (s->sf == NULL && out_len(s) == 0)
        queue_lost(s, 0);
    else
        update_events(s); /* stop reading; the write handle finishes the close */
    return 0;
}

static int s_close(asyncio_transport *t) { return do_close(S(t)); }

static int s_abort(asyncio_transport *t)
{
    force_close(S(t), 0);
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
    s->eof_pending = 1;
    if (s->sf == NULL && out_len(s) == 0)
        do_write_eof_now(s);
    else
        update_events(s);
    return 0;
}

static int s_pause_reading(asyncio_transport *t)
{
    stream *s = S(t);
    if (s->closing || s->paused)
        return 0;
    s->paused = 1;
    update_events(s);
    return 0;
}

/* Bytes (or an EOF, an error) the transport holds without libevent going
 * to report them again. */
static int has_unread(stream *s)
{
    if (s->bev != NULL)
        return evbuffer_get_length(bufferevent_get_input(s->bev)) > 0 || s->bev_eof ||
               s->bev_err < 0;
    return s->in != NULL && evbuffer_get_length(s->in) > 0;
}

static int s_resume_reading(asyncio_transport *t)
{
    stream *s = S(t);
    if (s->closing || !s->paused)
        return 0;
    s->paused = 0;
    update_events(s);
    if (s->started && has_unread(s))
        queue(s, &s->read_h, on_read);
    return 0;
}

static int s_set_write_buffer_limits(asyncio_transport *t, size_t high, size_t low)
{
    stream *s = S(t);
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
        update_events(s);
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
    if (strcmp(name, "bufferevent") == 0)
        return s->bev;
    if (strcmp(name, "socket") == 0) {
        if (fd < 0)
            return NULL;
        s->info_fd = fd;
        return &s->info_fd;
    }
    if (strcmp(name, "peername") == 0) {
        if (s->peerlen == 0 && fd >= 0) {
            socklen_t len = sizeof(s->peer);
            if (getpeername(fd, (struct sockaddr *)&s->peer, &len) == 0)
                s->peerlen = len;
        }
        return s->peerlen > 0 ? &s->peer : NULL;
    }
    if (strcmp(name, "sockname") == 0) {
        if (s->socklen == 0 && fd >= 0) {
            socklen_t len = sizeof(s->sock);
            if (getsockname(fd, (struct sockaddr *)&s->sock, &len) == 0)
                s->socklen = len;
        }
        return s->socklen > 0 ? &s->sock : NULL;
    }
    SSL *ssl = s->bev != NULL ? bufferevent_openssl_get_ssl(s->bev) : NULL;
    if (strcmp(name, "ssl_object") == 0)
        return ssl;
    if (strcmp(name, "peercert") == 0)
        return ssl != NULL ? SSL_get0_peer_certificate(ssl) : NULL;
    return NULL;
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

/* ---- Start, loop close, libevent callbacks ----------------------------------------- */

static void result_unref(void *t) { asyncio_transport_unref(t); }

static void on_start(void *arg)
{
    stream *s = arg;
    unslot(&s->start_h);
    sref(s);
    s->started = 1;
    asyncio_protocol *p = s->head.protocol;
    if (p->ops->connection_made != NULL)
        p->ops->connection_made(p, &s->head);
    if (!s->lost_queued) {
        update_events(s);
        if (has_unread(s))
            queue(s, &s->read_h, on_read);
    }
    asyncio_future *w = s->waiter;
    s->waiter = NULL;
    if (w != NULL) {
        if (asyncio_future_cancelled(w)) {
            force_close(s, 0);
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

static void on_fd_readable(evutil_socket_t fd, short what, void *arg)
{
    stream *s = arg;
    queue(s, &s->read_h, on_read);
}

static void on_fd_writable(evutil_socket_t fd, short what, void *arg)
{
    stream *s = arg;
    queue(s, &s->write_h, on_write);
}

static void bev_readcb(struct bufferevent *bev, void *arg)
{
    stream *s = arg;
    queue(s, &s->read_h, on_read);
}

static void bev_writecb(struct bufferevent *bev, void *arg)
{
    stream *s = arg;
    queue(s, &s->write_h, on_write);
}

static void bev_eventcb(struct bufferevent *bev, short what, void *arg)
{
    stream *s = arg;
    if (what & BEV_EVENT_ERROR) {
        int e = EVUTIL_SOCKET_ERROR();
        if (bufferevent_get_openssl_error(bev) != 0)
            s->bev_err = ASYNCIO_ESSL;
        else
            s->bev_err = e > 0 ? -e : -EIO;
    } else if (what & BEV_EVENT_EOF) {
        s->bev_eof = 1;
    } else {
        return; /* CONNECTED, TIMEOUT: nothing the protocol hears of */
    }
    queue(s, &s->read_h, on_read);
}

/* ---- Construction -------------------------------------------------------------------- */

static stream *stream_alloc(asyncio_loop *loop, asyncio_protocol *protocol)
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

static int sock_setup(stream *s, int fd)
{
    s->fd = fd;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0))
        return -errno;
    struct event_base *base = s->head.loop->base;
    s->out = evbuffer_new();
    s->read_ev = event_new(base, fd, EV_READ | EV_PERSIST, on_fd_readable, s);
    s->write_ev = event_new(base, fd, EV_WRITE | EV_PERSIST, on_fd_writable, s);
    if (s->out == NULL || s->read_ev == NULL || s->write_ev == NULL)
        return -ENOMEM;
    return 0;
}

/* Register with the loop and queue connection_made.  On failure the
 * transport is freed (with its fd / bufferevent). */
static int stream_open(stream *s, asyncio_server *server, asyncio_future *waiter,
                       asyncio_transport **out)
{
    asyncio_loop *loop = s->head.loop;
    s->can_eof = kind_can_write_eof(s);
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

int asyncio__stream_new_socket(asyncio_loop *loop, int fd, asyncio_protocol *protocol,
                               asyncio_server *server, asyncio_future *waiter,
                               asyncio_transport **out)
{
    if (fd < 0)
        return -EINVAL;
    int err = -EINVAL;
    if (loop != NULL && loop->closed)
        err = ASYNCIO_ECLOSED;
    if (loop == NULL || loop->closed || protocol == NULL || protocol->ops == NULL) {
        close(fd);
        return err;
    }
    stream *s = stream_alloc(loop, protocol);
    if (s == NULL) {
        close(fd);
        return -ENOMEM;
    }
    err = sock_setup(s, fd);
    if (err < 0) {
        sunref(s); /* closes fd */
        return err;
    }
    return stream_open(s, server, waiter, out);
}

/* A socket bufferevent (not a filter, a pair or TLS) over a stream socket. */
static int is_plain_socket_bev(struct bufferevent *bev)
{
    int fd = bufferevent_getfd(bev);
    if (fd < 0 || bufferevent_get_underlying(bev) != NULL || bufferevent_openssl_get_ssl(bev) != NULL)
        return 0;
    int type = 0;
    socklen_t len = sizeof(type);
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

int asyncio_transport_new_from_bufferevent(asyncio_loop *loop, struct bufferevent *bev,
                                           asyncio_protocol *protocol, asyncio_transport **out)
{
    if (bev == NULL)
        return -EINVAL;
    int err = -EINVAL;
    if (loop != NULL && loop->closed)
        err = ASYNCIO_ECLOSED;
    if (loop == NULL || loop->closed || protocol == NULL || protocol->ops == NULL ||
        bufferevent_get_base(bev) != loop->base) {
        bufferevent_free(bev);
        return err;
    }
    stream *s = stream_alloc(loop, protocol);
    if (s == NULL) {
        bufferevent_free(bev);
        return -ENOMEM;
    }
    bufferevent_disable(bev, EV_READ | EV_WRITE);
    bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
    if (is_plain_socket_bev(bev)) {
        /* Take the fd into the socket path; what the bufferevent read or
         * queued comes along, in order. */
        int fd = bufferevent_getfd(bev);
        s->in = evbuffer_new();
        err = s->in == NULL ? -ENOMEM : sock_setup(s, fd);
        struct evbuffer *bout = bufferevent_get_output(bev);
        evbuffer_unfreeze(bout, 1);
        if (err == 0 && (evbuffer_add_buffer(s->in, bufferevent_get_input(bev)) < 0 ||
                         evbuffer_add_buffer(s->out, bout) < 0))
            err = -ENOMEM;
        if (err < 0) {
            s->fd = -1; /* still the bufferevent's to close */
            sunref(s);
            bufferevent_free(bev);
            return err;
        }
        bufferevent_setfd(bev, -1); /* so that freeing it leaves the fd open */
        bufferevent_free(bev);
    } else {
        s->bev = bev;
        bufferevent_setcb(bev, bev_readcb, bev_writecb, bev_eventcb, s);
        bufferevent_enable(bev, EV_WRITE); /* reading starts after connection_made */
        bev_set_watermark(s);
    }
    return stream_open(s, NULL, NULL, out);
}
