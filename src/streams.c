/* Streams: asyncio's StreamReader / StreamWriter, for tasks, on the public
 * transport and protocol API.
 *
 * One struct stream per connection is its protocol, its reader and its
 * writer.  It is reference counted by two roles: the protocol (from the
 * factory until connection_lost) and the user (from open_connection or
 * the server's callback until asyncio_stream_close); a server's client
 * task holds a third while its callback runs.  Owns: a reference to the
 * transport (from connection_made), the read buffer, the `closed` future
 * (done at connection_lost) and the futures of drains waiting.
 * Everything runs in the loop's thread.
 *
 * Data path: the stream is a buffered protocol.  The read buffer is one
 * flat block per stream, kept for the stream's life: the transport reads
 * straight into its free end (get_buffer / buffer_updated), which then
 * completes the read waiter, if a task waits; the task resumes in a later
 * batch and copies out what it asked for.  The unread bytes are
 * [rstart, rend); emptied, both go back to 0, so a reader that keeps up
 * never moves a byte.  Only when the free end runs short are the unread
 * bytes moved to the front (if they fill at most half the block) or the
 * block doubled; a block grown past RBUF_KEEP is freed once emptied (the
 * next read allocates the default size).  A transport that does not read
 * into buffers gets the same through data_received (one copy more).
 * Above 2 x LIMIT buffered the transport's reading is paused (asyncio's
 * StreamReader), resumed once reads bring it to LIMIT or a read waits for
 * more than is there.  eof_received keeps the transport half-open, so
 * the writer can still answer.  Writes go straight to the transport;
 * pause_writing / resume_writing gate drain.
 *
 * A read waiter is a future of the waiting call's own (the stream only
 * borrows it while the call waits), so cancelling the task cancels that
 * future and nothing shared. */
#include "internal.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* asyncio's default StreamReader limit, 2**16. */
#define LIMIT (64 * 1024)
/* The read buffer: its size at first, the free end below which it is
 * compacted or grown, and the size above which an emptied one is freed. */
#define RBUF_MIN (64 * 1024)
#define RBUF_LOW (16 * 1024)
#define RBUF_KEEP (4 * RBUF_MIN)

struct stream;

struct asyncio_stream_reader {
    struct stream *s;
};
struct asyncio_stream_writer {
    struct stream *s;
};

struct stream {
    asyncio_protocol proto; /* first: the transport's protocol */
    asyncio_stream_reader reader;
    asyncio_stream_writer writer;
    int refs;
    asyncio_loop *loop;           /* borrowed: `closed` holds a reference */
    asyncio_transport *transport; /* a reference, from connection_made */
    char *rbuf;
    size_t rcap;         /* bytes at rbuf */
    size_t rstart, rend; /* the unread bytes */
    int eof;             /* eof_received (or connection_lost) */
    int lost;            /* connection_lost ran */
    int lost_error;
    int paused_reading, paused_writing;
    int user_closed;        /* asyncio_stream_close was called */
    asyncio_future *closed; /* done at connection_lost */
    asyncio_future *read_waiter;
    asyncio_future **drainers;
    size_t ndrainers, capdrainers;
    /* Server side: the callback the client task runs. */
    asyncio_client_connected cb;
    void *cb_arg;
};

static void stream_unref(struct stream *s)
{
    if (--s->refs > 0)
        return;
    for (size_t i = 0; i < s->ndrainers; i++)
        asyncio_future_unref(s->drainers[i]);
    free(s->drainers);
    free(s->rbuf);
    asyncio_transport_unref(s->transport);
    /* The error reached the reads and the close already: retrieved. */
    if (asyncio_future_done(s->closed))
        asyncio_future_exception(s->closed);
    asyncio_future_unref(s->closed);
    free(s);
}

static void wake(asyncio_future *f)
{
    if (f != NULL && !asyncio_future_done(f))
        asyncio_future_set_result(f, NULL, NULL);
}

static void wake_drainers(struct stream *s)
{
    for (size_t i = 0; i < s->ndrainers; i++) {
        wake(s->drainers[i]);
        asyncio_future_unref(s->drainers[i]);
    }
    s->ndrainers = 0;
}

/* ---- The protocol ------------------------------------------------------------- */

static void task_for_client(struct stream *s);

static void p_connection_made(asyncio_protocol *p, asyncio_transport *t)
{
    struct stream *s = (struct stream *)p;
    asyncio_transport_ref(t);
    s->transport = t;
    if (s->cb != NULL)
        task_for_client(s);
}

static size_t buffered(const struct stream *s) { return s->rend - s->rstart; }

/* At least `need` free bytes at the end of the read buffer: moves the
 * unread bytes to the front when they fill at most half of it, else
 * grows it.  0 or -ENOMEM. */
static int reserve(struct stream *s, size_t need)
{
    if (s->rcap - s->rend >= need)
        return 0;
    size_t used = buffered(s);
    if (used <= s->rcap / 2 && s->rcap - used >= need) {
        memmove(s->rbuf, s->rbuf + s->rstart, used);
        s->rstart = 0;
        s->rend = used;
        return 0;
    }
    size_t cap = s->rcap > 0 ? s->rcap : RBUF_MIN;
    while (cap - used < need) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    if (cap == s->rcap) { /* big enough once compacted */
        memmove(s->rbuf, s->rbuf + s->rstart, used);
    } else {
        /* A fresh block and one copy of the unread bytes only (realloc
         * would copy the consumed front too). */
        char *b = malloc(cap);
        if (b == NULL)
            return -ENOMEM;
        if (used > 0)
            memcpy(b, s->rbuf + s->rstart, used);
        free(s->rbuf);
        s->rbuf = b;
        s->rcap = cap;
    }
    s->rstart = 0;
    s->rend = used;
    return 0;
}

/* `n` new bytes at rend: wake the reader, pause above the limit. */
static void received(struct stream *s, size_t n)
{
    s->rend += n;
    wake(s->read_waiter);
    if (!s->paused_reading && buffered(s) > 2 * LIMIT &&
        asyncio_transport_pause_reading(s->transport) == 0)
        s->paused_reading = 1;
}

static void *p_get_buffer(asyncio_protocol *p, size_t sizehint, size_t *len)
{
    struct stream *s = (struct stream *)p;
    (void)sizehint; /* the whole free end, the cheapest read */
    if (reserve(s, RBUF_LOW) < 0 && s->rcap == s->rend) {
        asyncio_transport_abort(s->transport); /* no memory: nothing sane to go on with */
        return NULL;
    }
    *len = s->rcap - s->rend;
    return s->rbuf + s->rend;
}

static void p_buffer_updated(asyncio_protocol *p, size_t nbytes)
{
    struct stream *s = (struct stream *)p;
    if (nbytes > s->rcap - s->rend) /* more than get_buffer handed out */
        nbytes = s->rcap - s->rend;
    received(s, nbytes);
}

static void p_data_received(asyncio_protocol *p, const void *data, size_t len)
{
    struct stream *s = (struct stream *)p;
    if (reserve(s, len) < 0) {
        asyncio_transport_abort(s->transport); /* no memory: nothing sane to go on with */
        return;
    }
    if (len > 0)
        memcpy(s->rbuf + s->rend, data, len);
    received(s, len);
}

static int p_eof_received(asyncio_protocol *p)
{
    struct stream *s = (struct stream *)p;
    s->eof = 1;
    wake(s->read_waiter);
    return 1; /* half-open: the writer may still answer */
}

static void p_pause_writing(asyncio_protocol *p) { ((struct stream *)p)->paused_writing = 1; }

static void p_resume_writing(asyncio_protocol *p)
{
    struct stream *s = (struct stream *)p;
    s->paused_writing = 0;
    wake_drainers(s);
}

static void p_connection_lost(asyncio_protocol *p, int error)
{
    struct stream *s = (struct stream *)p;
    s->lost = 1;
    s->eof = 1;
    s->lost_error = error;
    wake(s->read_waiter);
    wake_drainers(s);
    if (!asyncio_future_done(s->closed)) {
        if (error < 0)
            asyncio_future_set_exception(s->closed, error);
        else
            asyncio_future_set_result(s->closed, NULL, NULL);
    }
    stream_unref(s);
}

static const asyncio_protocol_ops stream_ops = {
    .connection_made = p_connection_made,
    .data_received = p_data_received,
    .eof_received = p_eof_received,
    .pause_writing = p_pause_writing,
    .resume_writing = p_resume_writing,
    .connection_lost = p_connection_lost,
    .get_buffer = p_get_buffer,
    .buffer_updated = p_buffer_updated,
};

/* A stream with `refs` references, or NULL. */
static struct stream *stream_new(asyncio_loop *loop, int refs)
{
    struct stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    if (asyncio_loop_create_future(loop, &s->closed) < 0) {
        free(s);
        return NULL;
    }
    s->proto.ops = &stream_ops;
    s->reader.s = s;
    s->writer.s = s;
    s->refs = refs;
    s->loop = loop;
    return s;
}

/* ---- Waiting ------------------------------------------------------------------- */

static int wait_for_data(struct stream *s)
{
    if (asyncio_current_task() == NULL)
        return ASYNCIO_ENOTASK;
    if (s->read_waiter != NULL)
        return -EBUSY;
    /* Whatever the buffer holds is not enough for this read: the transport
     * must read on, over the limit if need be. */
    if (s->paused_reading) {
        s->paused_reading = 0;
        asyncio_transport_resume_reading(s->transport);
    }
    asyncio_future *w;
    int err = asyncio_loop_create_future(s->loop, &w);
    if (err < 0)
        return err;
    s->read_waiter = w;
    err = asyncio_await(w, NULL);
    s->read_waiter = NULL;
    asyncio_future_unref(w);
    return err;
}

/* Take `n` unread bytes out into `to`. */
static void take(struct stream *s, void *to, size_t n)
{
    memcpy(to, s->rbuf + s->rstart, n);
    s->rstart += n;
    if (s->rstart == s->rend) {
        s->rstart = s->rend = 0;
        if (s->rcap > RBUF_KEEP) { /* a burst is over: back to the default */
            free(s->rbuf);
            s->rbuf = NULL;
            s->rcap = 0;
        }
    }
}

static void consumed(struct stream *s)
{
    if (s->paused_reading && !s->lost && buffered(s) <= LIMIT) {
        s->paused_reading = 0;
        asyncio_transport_resume_reading(s->transport);
    }
}

/* What a read that found too little returns at the end of the stream. */
static int end_error(struct stream *s) { return s->lost_error < 0 ? s->lost_error : 0; }

/* ---- Reading ------------------------------------------------------------------ */

ssize_t asyncio_stream_read(asyncio_stream_reader *r, void *buf, size_t n)
{
    if (r == NULL || (buf == NULL && n > 0))
        return -EINVAL;
    struct stream *s = r->s;
    if (n == 0)
        return 0;
    if (n > INT_MAX) /* as asyncio_stream_readexactly: at most INT_MAX at once */
        n = INT_MAX;
    for (;;) {
        size_t have = buffered(s);
        if (have > 0) {
            size_t got = have < n ? have : n;
            take(s, buf, got);
            consumed(s);
            return (ssize_t)got;
        }
        if (s->eof)
            return end_error(s);
        int err = wait_for_data(s);
        if (err < 0)
            return err;
    }
}

ssize_t asyncio_stream_readline(asyncio_stream_reader *r, void *buf, size_t n)
{
    if (r == NULL || buf == NULL || n == 0)
        return -EINVAL;
    struct stream *s = r->s;
    if (n > INT_MAX)
        n = INT_MAX;
    size_t searched = 0; /* bytes known to hold no '\n' */
    for (;;) {
        size_t have = buffered(s);
        const char *start = have > 0 ? s->rbuf + s->rstart : NULL;
        const char *nl = have > searched ? memchr(start + searched, '\n', have - searched) : NULL;
        if (nl != NULL) {
            size_t len = (size_t)(nl - start) + 1;
            if (len > n)
                return -ENOBUFS;
            take(s, buf, len);
            consumed(s);
            return (ssize_t)len;
        }
        searched = have;
        if (have >= n)
            return -ENOBUFS; /* no '\n' within n bytes: the line cannot fit */
        if (s->eof) {
            if (have == 0)
                return end_error(s);
            take(s, buf, have);
            consumed(s);
            return (ssize_t)have;
        }
        int err = wait_for_data(s);
        if (err < 0)
            return err;
    }
}

int asyncio_stream_readexactly(asyncio_stream_reader *r, void *buf, size_t n)
{
    if (r == NULL || (buf == NULL && n > 0) || n > INT_MAX)
        return -EINVAL;
    struct stream *s = r->s;
    for (;;) {
        if (buffered(s) >= n) {
            if (n > 0)
                take(s, buf, n);
            consumed(s);
            return 0;
        }
        if (s->eof)
            return s->lost_error < 0 ? s->lost_error : -EPIPE;
        int err = wait_for_data(s);
        if (err < 0)
            return err;
    }
}

int asyncio_stream_at_eof(asyncio_stream_reader *r)
{
    if (r == NULL)
        return -EINVAL;
    return r->s->eof && buffered(r->s) == 0;
}

/* ---- Writing ------------------------------------------------------------------ */

int asyncio_stream_write(asyncio_stream_writer *w, const void *data, size_t len)
{
    if (w == NULL)
        return -EINVAL;
    return asyncio_transport_write(w->s->transport, data, len);
}

int asyncio_stream_write_eof(asyncio_stream_writer *w)
{
    if (w == NULL)
        return -EINVAL;
    return asyncio_transport_write_eof(w->s->transport);
}

asyncio_transport *asyncio_stream_writer_get_transport(asyncio_stream_writer *w)
{
    return w != NULL ? w->s->transport : NULL;
}

int asyncio_stream_drain(asyncio_stream_writer *w)
{
    if (w == NULL)
        return -EINVAL;
    struct stream *s = w->s;
    for (;;) {
        if (s->lost)
            return s->lost_error < 0 ? s->lost_error : -ECONNRESET;
        if (!s->paused_writing)
            return 0;
        if (asyncio_current_task() == NULL)
            return ASYNCIO_ENOTASK;
        if (s->ndrainers == s->capdrainers) {
            size_t cap = s->capdrainers ? s->capdrainers * 2 : 2;
            asyncio_future **v = realloc(s->drainers, cap * sizeof(*v));
            if (v == NULL)
                return -ENOMEM;
            s->drainers = v;
            s->capdrainers = cap;
        }
        asyncio_future *f;
        int err = asyncio_loop_create_future(s->loop, &f);
        if (err < 0)
            return err;
        asyncio_future_ref(f); /* the list's */
        s->drainers[s->ndrainers++] = f;
        err = asyncio_await(f, NULL);
        asyncio_future_unref(f);
        if (err < 0)
            return err;
    }
}

int asyncio_stream_close(asyncio_stream_writer *w)
{
    if (w == NULL)
        return -EINVAL;
    struct stream *s = w->s;
    s->user_closed = 1;
    asyncio_transport_close(s->transport);
    int err = 0;
    if (!s->lost && asyncio_current_task() != NULL)
        err = asyncio_await(s->closed, NULL);
    else if (s->lost)
        err = end_error(s);
    stream_unref(s);
    return err;
}

/* ---- open_connection ----------------------------------------------------------- */

struct connecting {
    asyncio_loop *loop;
    struct stream *made;
};

static asyncio_protocol *client_factory(void *arg)
{
    struct connecting *c = arg;
    /* Two references: the protocol's, and the one open_connection passes
     * to its caller (or drops on failure). */
    struct stream *s = stream_new(c->loop, 2);
    if (s == NULL)
        return NULL;
    c->made = s;
    return &s->proto;
}

int asyncio_open_connection(const char *host, int port, const asyncio_connection_options *opts,
                            asyncio_stream_reader **reader, asyncio_stream_writer **writer)
{
    if (reader == NULL || writer == NULL)
        return -EINVAL;
    asyncio_future *task = asyncio_current_task();
    if (task == NULL)
        return ASYNCIO_ENOTASK;
    struct connecting c = {asyncio_future_get_loop(task), NULL};
    asyncio_future *f;
    int err = asyncio_loop_create_connection(c.loop, client_factory, &c, host, port, opts, &f);
    if (err < 0)
        return err;
    err = asyncio_await(f, NULL);
    if (err == 0) {
        *reader = &c.made->reader;
        *writer = &c.made->writer;
    } else {
        /* Done now, so the factory (which writes to `c`) can run no more. */
        asyncio_future_cancel(f);
        if (c.made != NULL)
            stream_unref(c.made);
    }
    asyncio_future_unref(f);
    return err;
}

/* ---- start_server --------------------------------------------------------------- */

/* What the server's factory needs, alive while the server may accept: one
 * reference for that (dropped when the server's wait_closed completes, or
 * by the closable at loop close, whichever comes first) and one for
 * asyncio_start_server while it runs. */
struct serving {
    asyncio__closable closable;
    int registered;
    int refs;
    asyncio_loop *loop;
    asyncio_client_connected cb;
    void *arg;
};

static void serving_unref(struct serving *sv)
{
    if (--sv->refs == 0)
        free(sv);
}

static void serving_close(asyncio__closable *c)
{
    struct serving *sv = asyncio__container_of(c, struct serving, closable);
    sv->registered = 0; /* the loop took it off its list */
    serving_unref(sv);
}

static void serving_done(struct serving *sv)
{
    if (sv->registered) {
        asyncio__loop_remove_closable(&sv->closable);
        sv->registered = 0;
        serving_unref(sv);
    }
}

static void server_gone(asyncio_future *f, void *arg) { serving_done(arg); }

static asyncio_protocol *server_factory(void *arg)
{
    struct serving *sv = arg;
    struct stream *s = stream_new(sv->loop, 1);
    if (s == NULL)
        return NULL;
    s->cb = sv->cb;
    s->cb_arg = sv->arg;
    return &s->proto;
}

static int client_main(void *arg, void **result)
{
    struct stream *s = arg;
    int rc = s->cb(&s->reader, &s->writer, s->cb_arg);
    if (!s->user_closed)
        asyncio_stream_close(&s->writer);
    stream_unref(s); /* the task's own */
    return rc;
}

/* connection_made of a server's stream: the callback's task.  It holds
 * the user's reference and one of its own (to look at user_closed after
 * the callback). */
static void task_for_client(struct stream *s)
{
    s->refs += 2;
    if (asyncio_loop_create_task(s->loop, client_main, s, NULL) < 0) {
        s->refs -= 2;
        asyncio_transport_abort(s->transport);
    }
}

int asyncio_start_server(asyncio_client_connected cb, void *arg, const char *host, int port,
                         const asyncio_server_options *opts, asyncio_server **out)
{
    if (cb == NULL)
        return -EINVAL;
    asyncio_future *task = asyncio_current_task();
    asyncio_loop *loop;
    if (task != NULL) {
        loop = asyncio_future_get_loop(task);
    } else {
        int err = asyncio_get_event_loop(&loop);
        if (err < 0)
            return err;
        if (asyncio_loop_is_running(loop))
            return ASYNCIO_ERUNNING;
    }
    ASYNCIO__CHECK_OPEN(loop);
    struct serving *sv = calloc(1, sizeof(*sv));
    if (sv == NULL)
        return -ENOMEM;
    sv->refs = 1;
    sv->loop = loop;
    sv->cb = cb;
    sv->arg = arg;
    asyncio_future *f;
    int err = asyncio_loop_create_server(loop, server_factory, sv, host, port, opts, &f);
    if (err < 0) {
        free(sv);
        return err;
    }
    sv->refs = 2;
    sv->registered = 1;
    sv->closable.close = serving_close;
    asyncio__loop_add_closable(loop, &sv->closable);

    err = task != NULL ? asyncio_await(f, NULL) : asyncio_loop_run_until_complete(loop, f);
    asyncio_server *server = NULL;
    if (err == 0)
        err = asyncio_future_result(f, (void **)&server);
    asyncio_future *closed = NULL;
    if (err == 0)
        err = asyncio_server_wait_closed(server, &closed);
    if (err == 0)
        err = asyncio_future_add_done_callback(closed, server_gone, sv);
    if (err == 0) {
        if (out != NULL) {
            asyncio_server_ref(server);
            *out = server;
        }
    } else {
        asyncio_future_cancel(f); /* the factory may run no more */
        if (server != NULL)
            asyncio_server_close(server);
        serving_done(sv);
    }
    asyncio_future_unref(closed);
    asyncio_future_unref(f);
    serving_unref(sv);
    return err;
}
