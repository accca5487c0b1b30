/* loop.sendfile on stream transports (asyncio's loop.sendfile).
 *
 * Owns the operation in progress (s->sf) and its future.  Loop thread only.
 *
 * The transport is "paused for writing" while it runs: what was queued
 * before is sent first; writes made during the operation go to `held` and
 * follow the file.  fd path: sendfile(2) with SIGPIPE blocked around it
 * (sendfile has no MSG_NOSIGNAL); where the file cannot be sendfile'd
 * (EINVAL, ESPIPE...) and on the bufferevent path: pread chunks into the
 * output buffer.  Reading goes on meanwhile.  The result is the byte count
 * once all of it left the output buffer.  A second sendfile while one
 * runs: -EBUSY; on a closing transport: -EPIPE; on a read pipe: -ENOTSUP. */
#include "stream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <unistd.h>

/* The bufferevent / fallback path reads the file in these. */
#define FILE_CHUNK (64 * 1024)

typedef asyncio__stream stream;

enum sf_phase {
    SF_FLUSH,    /* sending what was queued before the operation */
    SF_NATIVE,   /* sendfile(2) */
    SF_FALLBACK, /* pread into the output buffer */
};

struct asyncio__sendfile {
    asyncio_future *future;
    int fd;
    off_t start;      /* offset asked for */
    off_t offset;     /* next byte of the file to send */
    size_t remaining; /* SIZE_MAX: to the end of the file */
    size_t sent;
    int file_eof;
    enum sf_phase phase;
};

int asyncio__sendfile_flushing(const struct asyncio__sendfile *op) { return op->phase == SF_FLUSH; }

/* sendfile(2) has no MSG_NOSIGNAL: SIGPIPE blocked around it. */
static ssize_t sendfile_quiet(int out_fd, int fd, off_t *offset, size_t count)
{
    asyncio__sigpipe_guard g;
    asyncio__sigpipe_begin(&g);
    ssize_t n;
    do
        n = sendfile(out_fd, fd, offset, count);
    while (n < 0 && errno == EINTR);
    asyncio__sigpipe_end(&g, n < 0 && errno == EPIPE);
    return n;
}

static void sf_account(struct asyncio__sendfile *op, size_t n)
{
    op->sent += n;
    if (op->remaining != SIZE_MAX)
        op->remaining -= n;
}

/* Read the file's next chunk into the output buffer.  0 or a file error. */
static int sf_fill(stream *s)
{
    struct asyncio__sendfile *op = s->sf;
    size_t want = op->remaining < FILE_CHUNK ? op->remaining : FILE_CHUNK;
    if (want == 0) {
        op->file_eof = 1;
        return 0;
    }
    struct evbuffer *o = asyncio__stream_output(s);
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
void asyncio__sendfile_end(stream *s, int err)
{
    struct asyncio__sendfile *op = s->sf;
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
int asyncio__sendfile_step(stream *s)
{
    struct asyncio__sendfile *op = s->sf;
    if (asyncio_future_done(op->future)) {
        asyncio__sendfile_end(s, 0); /* cancelled by its owner: stop here */
        return 0;
    }
    if (op->phase == SF_FLUSH) {
        if (s->bev == NULL) {
            int err = asyncio__stream_fd_flush(s);
            if (err < 0)
                return err;
        }
        if (asyncio__stream_out_len(s) > 0)
            return 0;
        op->phase = s->bev == NULL ? SF_NATIVE : SF_FALLBACK;
    }
    if (op->phase == SF_NATIVE) {
        for (;;) {
            if (op->remaining == 0) {
                asyncio__sendfile_end(s, 0);
                return 0;
            }
            size_t want = op->remaining > (1u << 30) ? (1u << 30) : op->remaining;
            ssize_t n = sendfile_quiet(s->fd, op->fd, &op->offset, want);
            if (n > 0) {
                sf_account(op, (size_t)n);
                continue;
            }
            if (n == 0) { /* end of the file */
                asyncio__sendfile_end(s, 0);
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
            asyncio__sendfile_end(s, -e);
            return 0;
        }
    }
    /* SF_FALLBACK: keep one chunk in the output buffer at a time. */
    for (int rounds = 0;; rounds++) {
        if (s->bev == NULL) {
            int err = asyncio__stream_fd_flush(s);
            if (err < 0)
                return err;
        }
        if (asyncio__stream_out_len(s) > 0)
            return 0; /* EV_WRITE, or the bufferevent's write callback at 0 */
        if (op->file_eof || op->remaining == 0) {
            asyncio__sendfile_end(s, 0);
            return 0;
        }
        if (rounds == 16) {
            /* A bufferevent that passes data on at once (a pair): give
             * the other callbacks of the loop a turn. */
            asyncio__stream_queue_write(s);
            return 0;
        }
        int err = sf_fill(s);
        if (err < 0) {
            asyncio__sendfile_end(s, err);
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
    if (fcntl(fd, F_GETFD) < 0) /* not open: an argument error, not the future's */
        return -errno;
    stream *s = asyncio__stream_of(t);
    if (s == NULL || s->read_only)
        return -ENOTSUP;
    if (s->closing || s->eof_pending)
        return -EPIPE;
    if (s->sf != NULL)
        return -EBUSY;
    struct asyncio__sendfile *op = calloc(1, sizeof(*op));
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
    asyncio__stream_update_events(s);
    if (asyncio__stream_out_len(s) == 0)
        asyncio__stream_queue_write(s); /* nothing to wait for */
    return 0;
}
