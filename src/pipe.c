/* Pipe transports: asyncio_loop_connect_read_pipe / _write_pipe, and
 * asyncio__pipe_transport_new for the subprocess layer.  Loop thread only.
 *
 * A pipe transport is a stream transport on the fd path (stream-fd.c)
 * with one direction switched off: `read_only` (no writes, no write_eof,
 * EOF always closes) or `write_only` (no reading; write_eof is close).
 * The fd's kind decides the calls that move data: recv / sendmsg for a
 * socket, read / writev (SIGPIPE blocked around it) for a FIFO or a
 * character device.  Nothing else is needed here: flow control, close,
 * abort and connection_lost are the stream's.
 *
 * A write pipe watches its fd for readability, as CPython's
 * _UnixWritePipeTransport does: the write end of a FIFO turns "readable"
 * (EPOLLERR, reported as EV_READ|EV_WRITE) when the last reader closes,
 * which ends the transport even while nothing is being written (stream.c,
 * on_read).
 *
 * Checked when the transport is made, so that the call fails rather than
 * a transport that never hears anything: the fd's type (FIFO, socket,
 * character device, else -EINVAL), and that the backend can watch it (an
 * event added and deleted at once: epoll refuses /dev/null and /dev/zero
 * with EPERM, which CPython reports as PermissionError too). */
#include "stream.h"

#include <asyncio/pipe.h>

#include <event2/event.h>
#include <sys/stat.h>
#include <unistd.h>

typedef asyncio__stream stream;

/* A transport over `fd` with no protocol yet, not registered.  Takes fd
 * over: on failure it is closed. */
static int pipe_prepare(asyncio_loop *loop, int fd, int writable, stream **out)
{
    struct stat st;
    enum asyncio__fd_kind kind;
    if (fstat(fd, &st) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    if (S_ISFIFO(st.st_mode)) {
        kind = ASYNCIO__FD_PIPE;
    } else if (S_ISSOCK(st.st_mode)) {
        kind = ASYNCIO__FD_SOCKET;
    } else if (S_ISCHR(st.st_mode)) {
        kind = ASYNCIO__FD_CHAR;
    } else {
        close(fd);
        return -EINVAL;
    }
    stream *s = asyncio__stream_alloc(loop, NULL);
    if (s == NULL) {
        close(fd);
        return -ENOMEM;
    }
    s->read_only = !writable;
    s->write_only = writable;
    int err = asyncio__stream_fd_setup(s, fd, kind);
    if (err == 0) {
        if (event_add(s->read_ev, NULL) < 0)
            err = -EPERM;
        else
            event_del(s->read_ev);
    }
    if (err < 0) {
        asyncio_transport_unref(&s->head); /* closes fd */
        return err;
    }
    *out = s;
    return 0;
}

int asyncio__pipe_transport_new(asyncio_loop *loop, int fd, int writable,
                                asyncio_protocol *protocol, asyncio_transport **out)
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
    stream *s;
    err = pipe_prepare(loop, fd, writable, &s);
    if (err < 0)
        return err;
    s->head.protocol = protocol;
    return asyncio__stream_open(s, NULL, NULL, out);
}

static int connect_pipe(asyncio_loop *loop, asyncio_protocol_factory factory, void *arg, int fd,
                        int writable, asyncio_future **out)
{
    if (fd < 0)
        return -EINVAL;
    int err = -EINVAL;
    if (loop != NULL && loop->closed)
        err = ASYNCIO_ECLOSED;
    if (loop == NULL || loop->closed || factory == NULL) {
        close(fd);
        return err;
    }
    stream *s;
    err = pipe_prepare(loop, fd, writable, &s);
    if (err < 0)
        return err;
    asyncio_future *f;
    err = asyncio_loop_create_future(loop, &f);
    if (err < 0) {
        asyncio_transport_unref(&s->head);
        return err;
    }
    /* Last, so that the protocol it makes only ever meets a transport
     * that is ready to open. */
    asyncio_protocol *protocol = factory(arg);
    if (protocol == NULL || protocol->ops == NULL || loop->closed) {
        asyncio_transport_unref(&s->head);
        asyncio_future_unref(f);
        if (protocol == NULL || protocol->ops == NULL)
            return -ECONNABORTED;
        err = ASYNCIO_ECLOSED; /* the factory closed the loop */
        if (protocol->ops->connection_lost != NULL)
            protocol->ops->connection_lost(protocol, err);
        return err;
    }
    s->head.protocol = protocol;
    err = asyncio__stream_open(s, NULL, f, NULL);
    if (err < 0) {
        /* No memory for the start handle: the protocol the factory made
         * still hears its one connection_lost, before the call returns. */
        asyncio_future_unref(f);
        if (protocol->ops->connection_lost != NULL)
            protocol->ops->connection_lost(protocol, err);
        return err;
    }
    if (out != NULL)
        *out = f;
    else
        asyncio_future_unref(f);
    return 0;
}

int asyncio_loop_connect_read_pipe(asyncio_loop *loop, asyncio_protocol_factory factory, void *arg,
                                   int fd, asyncio_future **out)
{
    return connect_pipe(loop, factory, arg, fd, 0, out);
}

int asyncio_loop_connect_write_pipe(asyncio_loop *loop, asyncio_protocol_factory factory, void *arg,
                                    int fd, asyncio_future **out)
{
    return connect_pipe(loop, factory, arg, fd, 1, out);
}
