/* The fd data path of stream transports: an fd of the transport's own (a
 * connected socket, a pipe end, a character device such as a tty) with two
 * events (EV_READ|EV_PERSIST, EV_WRITE|EV_PERSIST) and an output evbuffer.
 * Per loop, one scratch buffer that every fd transport reads into
 * (loop->read_buffer, freed by a closable when the loop closes).  Loop
 * thread only.
 *
 * Data path (measured; see the numbers below):
 *   read   readable -> read handle -> one recv() (socket) or read() (pipe,
 *          tty) of up to READ_SIZE (256 KiB) into the loop's scratch
 *          buffer -> data_received(buf, n) straight from it.  A buffered
 *          protocol gets the read straight into the memory get_buffer()
 *          handed out, then buffer_updated(n): no copy at all.  libevent's
 *          evbuffer_read would cap each read at 4 KiB (EVBUFFER_MAX_READ in
 *          2.1).
 *   write  write() first tries the fd on the caller's own iovecs when
 *          nothing is queued (asyncio, uvloop and libuv do; a bufferevent
 *          would write on the next loop pass); only what the fd did not
 *          take is copied into an evbuffer, which the write handle drains
 *          over evbuffer_peek'd chains.  Sockets: sendmsg(MSG_NOSIGNAL),
 *          so a peer that went away gives EPIPE, not SIGPIPE.  Pipes and
 *          ttys: writev, which has no such flag: SIGPIPE is blocked in the
 *          loop's thread around it and the one it raised is consumed with
 *          sigtimedwait (asyncio__sigpipe_begin/_end).  That was chosen
 *          over ignoring SIGPIPE process-wide (CPython's way) because a
 *          library must not change the process's dispositions; its cost is
 *          two pthread_sigmask calls per writev, which is one per loop
 *          pass and buffer drain, not per write() of the user's.
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
 * The fd's kind (socket, FIFO, character device) is fixed when the
 * transport is made (the caller knows it: a socket from connect/accept,
 * anything from pipe.c after an fstat), so no call here asks the kernel.
 * EPOLLHUP / EPOLLERR arrive as EV_READ|EV_WRITE (LIBEVENT-NOTES 9): on a
 * pipe's read end that is the EOF read() then sees; on a write end the
 * write fails with EPIPE, and a write pipe's read event (armed only to
 * see this, pipe.c) ends the transport. */
#include "stream.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* 256 KiB, as CPython's selector transports: fewer recv() calls than 64 KiB
 * (3.4 x fewer on a bulk transfer, see the numbers above) and nothing more
 * to gain from 1 MiB, as a socket rarely holds more.  The buffer is one per
 * loop, so its size costs nothing per connection. */
#ifndef READ_SIZE /* settable only to measure it */
#define READ_SIZE (256 * 1024)
#endif
/* Chains handed to one sendmsg() / writev(). */
#define MAX_IOV 64

typedef asyncio__stream stream;

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

/* ---- SIGPIPE ---------------------------------------------------------------------- */

void asyncio__sigpipe_begin(asyncio__sigpipe_guard *g)
{
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &g->old);
    g->was_pending = 0;
    if (sigismember(&g->old, SIGPIPE)) {
        /* Blocked already, so one may be pending that is not ours.  (While
         * it was unblocked in this thread, none could be pending for it.) */
        sigset_t pending;
        sigemptyset(&pending);
        sigpending(&pending);
        g->was_pending = sigismember(&pending, SIGPIPE);
    }
}

void asyncio__sigpipe_end(asyncio__sigpipe_guard *g, int failed_with_epipe)
{
    int e = errno;
    if (failed_with_epipe && !g->was_pending) {
        sigset_t pipe_set;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
    errno = e;
}

/* ---- Reading ------------------------------------------------------------------------ */

/* One read per readiness, as asyncio does. */
void asyncio__stream_fd_read(stream *s)
{
    asyncio_protocol *p = s->head.protocol;
    if (s->in != NULL && evbuffer_get_length(s->in) > 0) {
        int err = asyncio__stream_deliver(s, s->in);
        if (err < 0)
            asyncio__stream_force_close(s, err);
        return;
    }
    void *buf;
    size_t len;
    if (asyncio__stream_buffered(p)) {
        len = 0;
        buf = p->ops->get_buffer(p, READ_SIZE, &len);
        if (buf == NULL || len == 0) {
            asyncio__stream_force_close(s, -ENOBUFS);
            return;
        }
    } else {
        buf = read_buffer(s->head.loop);
        len = READ_SIZE;
        if (buf == NULL) {
            asyncio__stream_force_close(s, -ENOMEM);
            return;
        }
    }
    ssize_t n;
    do
        n = s->fd_kind == ASYNCIO__FD_SOCKET ? recv(s->fd, buf, len, 0) : read(s->fd, buf, len);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        if (asyncio__stream_buffered(p)) {
            if (p->ops->buffer_updated != NULL)
                p->ops->buffer_updated(p, (size_t)n);
        } else if (p->ops->data_received != NULL) {
            p->ops->data_received(p, buf, (size_t)n);
        }
    } else if (n == 0) {
        asyncio__stream_eof(s);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        asyncio__stream_force_close(s, -errno);
    }
}

/* ---- Writing ------------------------------------------------------------------------- */

ssize_t asyncio__stream_fd_send(stream *s, const struct iovec *iov, int iovcnt)
{
    int cnt = iovcnt < IOV_MAX ? iovcnt : IOV_MAX;
    ssize_t n;
    if (s->fd_kind == ASYNCIO__FD_SOCKET) {
        struct msghdr msg;
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = (struct iovec *)iov;
        msg.msg_iovlen = (size_t)cnt;
        do
            n = sendmsg(s->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
    } else {
        asyncio__sigpipe_guard g;
        asyncio__sigpipe_begin(&g);
        do
            n = writev(s->fd, iov, cnt);
        while (n < 0 && errno == EINTR);
        asyncio__sigpipe_end(&g, n < 0 && errno == EPIPE);
    }
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
    return n;
}

int asyncio__stream_fd_flush(stream *s)
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
        ssize_t w = asyncio__stream_fd_send(s, iov, n);
        if (w < 0)
            return (int)w;
        evbuffer_drain(s->out, (size_t)w);
        if ((size_t)w < total)
            return 0; /* full: wait for EV_WRITE instead of an EAGAIN */
    }
    return 0;
}

/* Only sockets get here: a write pipe's write_eof is its close (stream.c),
 * and a read pipe cannot write_eof. */
void asyncio__stream_fd_write_eof(stream *s) { shutdown(s->fd, SHUT_WR); }

/* ---- Events ---------------------------------------------------------------------------- */

void asyncio__stream_fd_update_events(stream *s)
{
    if (s->fd < 0)
        return;
    int r;
    if (s->write_only) /* only to see the reader go (pipe.c) */
        r = s->started && !s->lost_queued;
    else
        r = s->started && !s->paused && !s->closing && !s->read_eof && !s->lost_queued;
    if (r != s->read_armed) {
        if (r)
            event_add(s->read_ev, NULL);
        else
            event_del(s->read_ev);
        s->read_armed = r;
    }
    int w = !s->lost_queued && (asyncio__stream_out_len(s) > 0 || s->sf != NULL);
    if (w != s->write_armed) {
        if (w)
            event_add(s->write_ev, NULL);
        else
            event_del(s->write_ev);
        s->write_armed = w;
    }
}

static void on_fd_readable(evutil_socket_t fd, short what, void *arg)
{
    asyncio__stream_queue_read(arg);
}

static void on_fd_writable(evutil_socket_t fd, short what, void *arg)
{
    asyncio__stream_queue_write(arg);
}

int asyncio__stream_fd_setup(stream *s, int fd, enum asyncio__fd_kind kind)
{
    s->fd = fd;
    s->fd_kind = kind;
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
    stream *s = asyncio__stream_alloc(loop, protocol);
    if (s == NULL) {
        close(fd);
        return -ENOMEM;
    }
    err = asyncio__stream_fd_setup(s, fd, ASYNCIO__FD_SOCKET);
    if (err < 0) {
        asyncio_transport_unref(&s->head); /* closes fd */
        return err;
    }
    return asyncio__stream_open(s, server, waiter, out);
}
