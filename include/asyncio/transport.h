/* libasyncio: protocols and transports.
 *
 * A protocol belongs to its user: embed asyncio_protocol as the first member
 * of your own struct.  The library calls, in this order and from the loop's
 * thread: connection_made once; data_received (or get_buffer/buffer_updated
 * for a buffered protocol) any number of times; eof_received at most once;
 * connection_lost exactly once.  After connection_lost the library never
 * touches the protocol again, so that is where a protocol frees itself.
 * A NULL member is skipped. */
#ifndef ASYNCIO_TRANSPORT_H
#define ASYNCIO_TRANSPORT_H

#include <asyncio/common.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asyncio_protocol asyncio_protocol;

typedef struct asyncio_protocol_ops {
    /* The transport is borrowed; take a reference to keep it. */
    void (*connection_made)(asyncio_protocol *self, asyncio_transport *transport);
    /* 0: closed cleanly (close(), or the peer's EOF); else the error. */
    void (*connection_lost)(asyncio_protocol *self, int error);
    void (*data_received)(asyncio_protocol *self, const void *data, size_t len);
    /* Nonzero: keep the transport half-open (we may still write). */
    int (*eof_received)(asyncio_protocol *self);
    /* The write buffer went above the high-water mark / back to the low. */
    void (*pause_writing)(asyncio_protocol *self);
    void (*resume_writing)(asyncio_protocol *self);
    /* Datagram endpoints. */
    void (*datagram_received)(asyncio_protocol *self, const void *data, size_t len,
                              const struct sockaddr *addr, socklen_t addrlen);
    void (*error_received)(asyncio_protocol *self, int error);
    /* Subprocesses. */
    void (*pipe_data_received)(asyncio_protocol *self, int fd, const void *data, size_t len);
    void (*pipe_connection_lost)(asyncio_protocol *self, int fd, int error);
    void (*process_exited)(asyncio_protocol *self);
    /* Buffered protocols: hand out memory to read into (at least 1 byte,
     * ideally `sizehint`), then hear how many bytes landed there. */
    void *(*get_buffer)(asyncio_protocol *self, size_t sizehint, size_t *len);
    void (*buffer_updated)(asyncio_protocol *self, size_t nbytes);
    /* NULL: room for members added later without an ABI break. */
    void (*reserved[4])(void);
} asyncio_protocol_ops;

struct asyncio_protocol {
    const asyncio_protocol_ops *ops;
};

/* Makes the protocol of a new connection; NULL refuses the connection. */
typedef asyncio_protocol *(*asyncio_protocol_factory)(void *arg);

/* Every transport call returns -ENOTSUP on a kind of transport that lacks
 * it, -EINVAL for a NULL transport; those that return no code give 0 or
 * NULL for it, and _ref / _unref do nothing. */

/* Queue `len` bytes (copied) for sending; tries the socket at once when
 * nothing is queued.  -EPIPE after write_eof or close. */
ASYNCIO_EXTERN int asyncio_transport_write(asyncio_transport *t, const void *data, size_t len);
ASYNCIO_EXTERN int asyncio_transport_writelines(asyncio_transport *t, const struct iovec *iov,
                                                int iovcnt);
/* Half-close after the queued data is sent. */
ASYNCIO_EXTERN int asyncio_transport_write_eof(asyncio_transport *t);
ASYNCIO_EXTERN int asyncio_transport_can_write_eof(asyncio_transport *t); /* 1 or 0 */
/* Stop reading, send what is queued, then connection_lost(0).  Idempotent. */
ASYNCIO_EXTERN int asyncio_transport_close(asyncio_transport *t);
/* Close at once, dropping what is queued; connection_lost(0). */
ASYNCIO_EXTERN int asyncio_transport_abort(asyncio_transport *t);
ASYNCIO_EXTERN int asyncio_transport_is_closing(asyncio_transport *t); /* 1 or 0 */
ASYNCIO_EXTERN int asyncio_transport_pause_reading(asyncio_transport *t);
ASYNCIO_EXTERN int asyncio_transport_resume_reading(asyncio_transport *t);
/* high 0 and low 0: the defaults (64 KiB, 16 KiB).  low > high: -EINVAL.
 * low 0 with high set: high / 4. */
ASYNCIO_EXTERN int asyncio_transport_set_write_buffer_limits(asyncio_transport *t, size_t high,
                                                             size_t low);
ASYNCIO_EXTERN size_t asyncio_transport_get_write_buffer_size(asyncio_transport *t);
ASYNCIO_EXTERN asyncio_protocol *asyncio_transport_get_protocol(asyncio_transport *t);
/* "peername", "sockname" (struct sockaddr *), "socket" (int *),
 * "bufferevent" (struct bufferevent *), "pipe" (int *), and with TLS
 * "ssl_object" (SSL *) and "peercert" (X509 *).  Borrowed; NULL when absent. */
ASYNCIO_EXTERN void *asyncio_transport_get_extra_info(asyncio_transport *t, const char *name);
/* Datagram transports: addr NULL sends to the connected remote address. */
ASYNCIO_EXTERN int asyncio_transport_sendto(asyncio_transport *t, const void *data, size_t len,
                                            const struct sockaddr *addr, socklen_t addrlen);
/* Subprocess transports. */
ASYNCIO_EXTERN int asyncio_transport_get_pid(asyncio_transport *t);
ASYNCIO_EXTERN int asyncio_transport_get_returncode(asyncio_transport *t, int *returncode);
ASYNCIO_EXTERN asyncio_transport *asyncio_transport_get_pipe_transport(asyncio_transport *t,
                                                                       int fd);
ASYNCIO_EXTERN int asyncio_transport_send_signal(asyncio_transport *t, int sig);
ASYNCIO_EXTERN int asyncio_transport_terminate(asyncio_transport *t);
ASYNCIO_EXTERN int asyncio_transport_kill(asyncio_transport *t);

/* Take / release a reference (any thread).  Releasing does not close. */
ASYNCIO_EXTERN void asyncio_transport_ref(asyncio_transport *t);
ASYNCIO_EXTERN void asyncio_transport_unref(asyncio_transport *t);

#ifdef __cplusplus
}
#endif
#endif
