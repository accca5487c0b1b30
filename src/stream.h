/* Stream transports, private to the files that implement them (never
 * installed): stream.c (the object, its state machine, protocol delivery,
 * close/abort/lost, the ops), stream-fd.c (the fd data path), stream-bev.c
 * (the bufferevent path), sendfile.c (asyncio_loop_sendfile), pipe.c (pipe
 * transports on the fd path).  stream.c's design notes describe the whole;
 * each file's notes describe its part.
 *
 * Every function here runs in the loop's thread and takes a transport the
 * caller holds a reference to (or is inside one of its handles, which hold
 * one). */
#ifndef ASYNCIO_STREAM_H
#define ASYNCIO_STREAM_H

#include "internal.h"

#include <signal.h>
#include <sys/types.h>

struct bufferevent;
struct evbuffer;
struct asyncio__sendfile; /* sendfile.c */

/* What the fd path's fd is; fixed when the transport is made. */
enum asyncio__fd_kind {
    ASYNCIO__FD_SOCKET, /* recv / sendmsg(MSG_NOSIGNAL), shutdown(SHUT_WR) */
    ASYNCIO__FD_PIPE,   /* a FIFO: read / writev with SIGPIPE blocked */
    ASYNCIO__FD_CHAR,   /* a character device (tty, /dev/zero): as a pipe */
};

typedef struct asyncio__stream asyncio__stream;

/* A layer between a transport and its bufferevent that needs a say in
 * how the stream ends (TLS, tls.c).  Every member may be NULL. */
/* How many bufferevents under a filter a stream watches (filters over
 * filters are rare; deeper ones are not waited for). */
#define ASYNCIO__STREAM_BELOW_MAX 4

typedef struct asyncio__stream_layer {
    /* close() has sent everything: 0 to end now (connection_lost(0)), 1
     * when the layer ends the transport itself later (with
     * asyncio__stream_force_close).  Called again after each flush while
     * it returns 1. */
    int (*close_flushed)(asyncio__stream *s);
    /* The input ended (bev_eof): 0 for an EOF (eof_received), or the error
     * connection_lost gets instead -- after what was read is delivered. */
    int (*eof_error)(asyncio__stream *s);
    /* Free the layer's events and handles before the bufferevent goes
     * (connection_lost, loop close), and everything at destroy. */
    void (*release)(asyncio__stream *s);
    void (*destroy)(asyncio__stream *s);
} asyncio__stream_layer;

struct asyncio__stream {
    asyncio_transport head; /* first: the transport calls cast it back */
    asyncio__closable closable;
    int registered; /* closable is on the loop's list */

    /* fd path (stream-fd.c); fd is -1 on the bufferevent path or once closed. */
    int fd;
    enum asyncio__fd_kind fd_kind;
    int read_only;  /* a read pipe: never written to */
    int write_only; /* a write pipe: read_ev only watches for the peer closing */
    struct event *read_ev;
    struct event *write_ev;
    int read_armed, write_armed;
    struct evbuffer *out; /* queued output */
    struct evbuffer *in;  /* what a taken-over bufferevent had read */

    /* bufferevent path (stream-bev.c) */
    struct bufferevent *bev;
    /* The bufferevents under a filter `bev`, whose output evbuffers are
     * watched so that a close waits for them too (stream-bev.c). */
    struct bufferevent *below[ASYNCIO__STREAM_BELOW_MAX];
    struct evbuffer_cb_entry *below_cb[ASYNCIO__STREAM_BELOW_MAX];
    int nbelow;
    int bev_eof; /* the bufferevent reported EOF */
    int bev_err; /* ... or an error (negative) */

    struct evbuffer *held; /* writes made during a sendfile */
    struct asyncio__sendfile *sf;

    asyncio_server *server;
    asyncio_future *waiter;

    asyncio_handle *start_h, *read_h, *write_h, *lost_h;

    size_t high, low;
    int started;     /* connection_made ran */
    int paused;      /* pause_reading */
    int closing;     /* close, abort or an error: no more writes or reads */
    int read_eof;    /* EOF seen: no more reading */
    int eof_pending; /* write_eof asked for */
    int eof_sent;
    int proto_paused; /* pause_writing was called, resume_writing not yet */
    int lost_queued;
    int lost_done;
    int can_eof; /* can_write_eof, fixed when the transport is made */
    int lost_err;

    struct sockaddr_storage peer, sock; /* cached by get_extra_info */
    socklen_t peerlen, socklen;
    int info_fd; /* what get_extra_info("socket") / ("pipe") points at */

    /* -- TLS area: the layer (NULL: none) and its state; moved_in: the
     * protocol came from another transport (start_tls), so the start
     * handle does not call connection_made again. -- */
    const asyncio__stream_layer *layer;
    void *layer_arg;
    int moved_in;
};

/* ---- stream.c: the object ---------------------------------------------------- */

/* A new transport with the defaults (one reference: its own, held while it
 * is open), neither path set up yet; NULL without memory. */
asyncio__stream *asyncio__stream_alloc(asyncio_loop *loop, asyncio_protocol *protocol);
/* Register with the loop and queue connection_made (the start handle: it
 * runs before anything else of the transport; reading starts after it,
 * then `waiter` gets the transport).  `server`, `waiter` (may be NULL):
 * as asyncio__stream_new_socket.  *out (may be NULL) gets a reference.
 * On failure the transport is freed, with its fd / bufferevent. */
int asyncio__stream_open(asyncio__stream *s, asyncio_server *server, asyncio_future *waiter,
                         asyncio_transport **out);
/* The stream behind `t`, or NULL if `t` is another kind of transport. */
asyncio__stream *asyncio__stream_of(asyncio_transport *t);

/* Queue the read / write handle (once: no-op while it is queued).  The
 * libevent callbacks of both paths do nothing else. */
void asyncio__stream_queue_read(asyncio__stream *s);
void asyncio__stream_queue_write(asyncio__stream *s);
/* Arm or disarm the path's events after a state change. */
void asyncio__stream_update_events(asyncio__stream *s);
/* Drop what is queued and end with connection_lost(err) (0: abort). */
void asyncio__stream_force_close(asyncio__stream *s, int err);
/* Reading may go on: not paused, closing or lost. */
int asyncio__stream_can_deliver(asyncio__stream *s);
/* Hand what `evb` holds to the protocol while it wants data.  0 or a
 * fatal error (the caller force-closes). */
int asyncio__stream_deliver(asyncio__stream *s, struct evbuffer *evb);
/* The end of the input: eof_received, then close unless it kept the
 * transport half-open. */
void asyncio__stream_eof(asyncio__stream *s);
/* The output buffer of the path and its length (file data of a sendfile
 * included). */
struct evbuffer *asyncio__stream_output(asyncio__stream *s);
size_t asyncio__stream_out_len(asyncio__stream *s);
/* Bytes queued in the bufferevents under a filter (not sent yet either). */
size_t asyncio__stream_bev_below_len(asyncio__stream *s);
/* Stop watching them: before the bufferevent is freed. */
void asyncio__stream_bev_release(asyncio__stream *s);

static inline int asyncio__stream_buffered(asyncio_protocol *p)
{
    return p->ops->get_buffer != NULL;
}

/* ---- stream-fd.c: the fd path -------------------------------------------------- */

/* Take `fd` (any stream fd: socket, FIFO, character device) into the fd
 * path: O_NONBLOCK, its events, the output buffer.  `kind` says which
 * calls move its data.  On failure s->fd is set (the transport's destroy
 * closes it) and -errno / -ENOMEM returned. */
int asyncio__stream_fd_setup(asyncio__stream *s, int fd, enum asyncio__fd_kind kind);
/* The fd path's half of update_events. */
void asyncio__stream_fd_update_events(asyncio__stream *s);
/* One read from the fd (read handle), delivered. */
void asyncio__stream_fd_read(asyncio__stream *s);
/* Write `iov` from the caller's memory, once, without blocking: bytes
 * written, 0 when the fd is full, or -errno. */
ssize_t asyncio__stream_fd_send(asyncio__stream *s, const struct iovec *iov, int iovcnt);
/* Send from the output buffer until it is empty or the fd full.  0 or
 * -errno of the fd. */
int asyncio__stream_fd_flush(asyncio__stream *s);
/* The fd path's write_eof, once the output is empty. */
void asyncio__stream_fd_write_eof(asyncio__stream *s);

/* SIGPIPE around a call that cannot say MSG_NOSIGNAL (writev on a pipe,
 * sendfile): block it in this thread, and afterwards swallow the one the
 * call raised (when it failed with EPIPE), unless one was pending already
 * (then it is not ours).  errno is kept across _end. */
typedef struct {
    sigset_t old;
    int was_pending;
} asyncio__sigpipe_guard;
void asyncio__sigpipe_begin(asyncio__sigpipe_guard *g);
void asyncio__sigpipe_end(asyncio__sigpipe_guard *g, int failed_with_epipe);

/* ---- stream-bev.c: the bufferevent path ---------------------------------------- */

void asyncio__stream_bev_update_events(asyncio__stream *s);
void asyncio__stream_bev_read(asyncio__stream *s);
/* 1 unless TLS or a filter (see stream-bev.c). */
int asyncio__stream_bev_can_write_eof(asyncio__stream *s);
void asyncio__stream_bev_write_eof(asyncio__stream *s);
/* Input, an EOF or an error held without libevent reporting it again. */
int asyncio__stream_bev_has_unread(asyncio__stream *s);
/* "bufferevent", "ssl_object", "peercert"; NULL for other names. */
void *asyncio__stream_bev_extra_info(asyncio__stream *s, const char *name);

/* ---- sendfile.c ------------------------------------------------------------------ */

/* One step of the operation, from the write handle: 0, or a fatal error of
 * the connection (the caller force-closes). */
int asyncio__sendfile_step(asyncio__stream *s);
/* End the operation now: its future gets the count, or err < 0. */
void asyncio__sendfile_end(asyncio__stream *s, int err);
/* 1 while the operation still sends what was queued before it. */
int asyncio__sendfile_flushing(const struct asyncio__sendfile *op);

#endif
