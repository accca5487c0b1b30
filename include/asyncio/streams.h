/* libasyncio: streams, asyncio's high-level connections, used from tasks.
 *
 * A connection is a reader and a writer, used by one task at a time with
 * calls that suspend it (asyncio_await) until they can complete.  They are
 * built on the public transport and protocol API: a protocol of the
 * library's buffers what arrives, pausing the transport's reading while
 * more than 128 KiB wait (twice asyncio's 64 KiB stream limit) and
 * resuming it when a read brings the buffer to 64 KiB or below, or when a
 * read waits for more.
 *
 * Ownership: asyncio_open_connection, and the callback of
 * asyncio_start_server, get a reader and a writer that belong together;
 * asyncio_stream_close(writer) closes the connection and releases both.
 *
 * Calls that may wait need a task: outside one they return
 * ASYNCIO_ENOTASK when they would have to wait.  Every waiting call
 * returns -ECANCELED when its task is cancelled meanwhile, and
 * ASYNCIO_ECLOSED when the loop closes (see asyncio/task.h).  Only one
 * task may wait to read a stream at a time: a second gets -EBUSY. */
#ifndef ASYNCIO_STREAMS_H
#define ASYNCIO_STREAMS_H

#include <asyncio/common.h>
#include <asyncio/net.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asyncio_stream_reader asyncio_stream_reader;
typedef struct asyncio_stream_writer asyncio_stream_writer;

/* Inside a task: connect as asyncio_loop_create_connection does (same
 * host, port and options) on the task's loop, and wait until the
 * connection is made.  0 with *reader and *writer (both required), or the
 * connection's error; ASYNCIO_ENOTASK outside a task. */
ASYNCIO_EXTERN int asyncio_open_connection(const char *host, int port,
                                           const asyncio_connection_options *opts,
                                           asyncio_stream_reader **reader,
                                           asyncio_stream_writer **writer);

/* Runs as a task per accepted connection; its return value becomes the
 * task's (an error nobody retrieves reaches the exception handler).  The
 * reader and writer are the callback's: if it returns without having
 * called asyncio_stream_close(w), the library closes them after it. */
typedef int (*asyncio_client_connected)(asyncio_stream_reader *r, asyncio_stream_writer *w,
                                        void *arg);

/* Listen as asyncio_loop_create_server does, on the running loop (inside
 * a task: its loop) or else on asyncio_get_event_loop()'s, and run
 * cb(reader, writer, arg) as a task for each connection.  Inside a task
 * the call waits until the server listens; outside one it runs the loop
 * until then (ASYNCIO_ERUNNING if that loop is running: call it from a
 * task there).  *server (may be NULL) receives a reference to the
 * ordinary server object: asyncio_server_close stops listening. */
ASYNCIO_EXTERN int asyncio_start_server(asyncio_client_connected cb, void *arg, const char *host,
                                        int port, const asyncio_server_options *opts,
                                        asyncio_server **server);

/* Up to n bytes, waiting until at least one is there: the count, 0 at EOF
 * (or when n is 0).  Bytes that arrived before the connection failed are
 * read first; then the connection's error is returned. */
ASYNCIO_EXTERN ssize_t asyncio_stream_read(asyncio_stream_reader *r, void *buf, size_t n);

/* One line, up to and including '\n', waiting until it is complete: the
 * count; at EOF what remains (0 when nothing does).  The line is not
 * NUL-terminated.  A line longer than n bytes: -ENOBUFS, and nothing is
 * consumed (read it with asyncio_stream_read, or with a bigger buffer);
 * asyncio raises LimitOverrunError there. */
ASYNCIO_EXTERN ssize_t asyncio_stream_readline(asyncio_stream_reader *r, void *buf, size_t n);

/* Exactly n bytes: 0 when they are in buf, -EPIPE when EOF comes first
 * (asyncio's IncompleteReadError); the bytes that did come are not
 * consumed, asyncio_stream_read returns them. */
ASYNCIO_EXTERN int asyncio_stream_readexactly(asyncio_stream_reader *r, void *buf, size_t n);

/* 1 when the peer's EOF came and every byte before it was read, else 0;
 * -EINVAL for NULL. */
ASYNCIO_EXTERN int asyncio_stream_at_eof(asyncio_stream_reader *r);

/* Queue `len` bytes (copied) for sending; never waits.  The transport's
 * errors: -EPIPE once closing or after write_eof. */
ASYNCIO_EXTERN int asyncio_stream_write(asyncio_stream_writer *w, const void *data, size_t len);

/* Half-close: the peer reads EOF once what is queued is sent. */
ASYNCIO_EXTERN int asyncio_stream_write_eof(asyncio_stream_writer *w);

/* Wait while the transport's write buffer is above its high-water mark
 * (asyncio_transport_set_write_buffer_limits; 64 KiB by default), i.e.
 * until the peer has taken enough.  0; the connection's error, or
 * -ECONNRESET, once it is lost. */
ASYNCIO_EXTERN int asyncio_stream_drain(asyncio_stream_writer *w);

/* Close the connection (queued bytes are still sent), wait until the
 * transport has closed, and release the writer and its reader.  0, or
 * the error the connection was lost with.  They are released on every
 * return, errors included; outside a task the call does not wait. */
ASYNCIO_EXTERN int asyncio_stream_close(asyncio_stream_writer *w);

/* The connection's transport (borrowed, valid until asyncio_stream_close;
 * NULL for NULL):
 * for get_extra_info ("peername", "socket", ...) and write buffer limits. */
ASYNCIO_EXTERN asyncio_transport *asyncio_stream_writer_get_transport(asyncio_stream_writer *w);

#ifdef __cplusplus
}
#endif
#endif
