/* libasyncio: pipe transports (asyncio's connect_read_pipe and
 * connect_write_pipe).
 *
 * `fd` is a pipe end, a socket or a character device that can be polled
 * (a tty, a pty); anything else (a regular file, a directory): -EINVAL;
 * a device the kernel cannot poll (/dev/null, /dev/zero): -EPERM.  The
 * call makes `fd` non-blocking and takes it over, on failure too: the
 * transport closes it at its end.  The factory is called once, inside the
 * call; a factory that returns NULL: -ECONNABORTED.  The future's result
 * is the transport (the future holds a reference to it), set after
 * connection_made ran.  get_extra_info("pipe") gives an int * to the fd. */
#ifndef ASYNCIO_PIPE_H
#define ASYNCIO_PIPE_H

#include <asyncio/common.h>
#include <asyncio/transport.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A read transport: the protocol hears connection_made, data_received*
 * (or get_buffer/buffer_updated), eof_received when the writer closed,
 * then connection_lost(0) -- whatever eof_received returns, as a pipe has
 * no half-open state.  It supports pause_reading, resume_reading, close,
 * abort, is_closing, get_extra_info; write calls return -ENOTSUP. */
ASYNCIO_EXTERN int asyncio_loop_connect_read_pipe(asyncio_loop *loop,
                                                  asyncio_protocol_factory factory, void *arg,
                                                  int fd, asyncio_future **out);

/* A write transport: write, writelines, write_eof (sends what is queued,
 * then closes the fd: connection_lost(0)), can_write_eof (1), close,
 * abort, buffer limits with pause_writing / resume_writing.  When the read
 * end closes, connection_lost comes by itself: 0 if nothing was waiting to
 * be written, else -EPIPE (asyncio's BrokenPipeError); a write that meets
 * a closed reader ends the transport with -EPIPE (no SIGPIPE is raised).
 * pause_reading / resume_reading return -ENOTSUP. */
ASYNCIO_EXTERN int asyncio_loop_connect_write_pipe(asyncio_loop *loop,
                                                   asyncio_protocol_factory factory, void *arg,
                                                   int fd, asyncio_future **out);

#ifdef __cplusplus
}
#endif

#endif
