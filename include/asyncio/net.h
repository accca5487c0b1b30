/* libasyncio: connections, servers and datagram endpoints.
 *
 * Each call completes a future: on success its result is the new object
 * (an asyncio_transport * or asyncio_server *), owned by the future and
 * borrowed by whoever reads it; take a reference to keep it past the
 * future.  NULL options mean the defaults, which the _INIT macros spell
 * out. */
#ifndef ASYNCIO_NET_H
#define ASYNCIO_NET_H

#include <asyncio/common.h>
#include <asyncio/transport.h>
#include <netdb.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ssl_ctx_st SSL_CTX;

typedef struct asyncio_connection_options {
    SSL_CTX *ssl;                /* NULL: plain TCP */
    int use_default_ssl;         /* nonzero: TLS with a verifying context of the library's */
    const char *server_hostname; /* NULL: host; "": no hostname check */
    int family, proto, flags;    /* passed to getaddrinfo */
    int sock;                    /* -1: none; else an already connected socket, taken
                                      over on success and failure alike; host must be NULL */
    const char *local_host;      /* NULL: no bind */
    int local_port;
    double happy_eyeballs_delay;  /* 0: one address after another; else RFC 8305 racing */
    int interleave;               /* interleave address families; 0: the default (1 when
                                      racing, else none) */
    double ssl_handshake_timeout; /* 60 s */
    double ssl_shutdown_timeout;  /* 30 s */
    /* Zero (the _INIT macro does it): room for options added later
     * without an ABI break. */
    void *reserved[4];
} asyncio_connection_options;

#define ASYNCIO_CONNECTION_OPTIONS_INIT                                        \
    {                                                                          \
        NULL, 0, NULL, AF_UNSPEC, 0, 0, -1, NULL, 0, 0.0, 0, 60.0, 30.0, { 0 } \
    }

/* Resolve `host`, try each address in order (or race them, RFC 8305, when
 * happy_eyeballs_delay > 0) and connect.  TCP_NODELAY is set.  Result: the
 * transport, its protocol already connected.  The error is the last
 * attempt's, or ASYNCIO_EAI_* when the name did not resolve; a factory
 * that returns NULL fails it with -ECONNABORTED.  Argument errors come back
 * from the call; everything that happens on the network (bind, connect)
 * comes back in the future.  server_hostname without TLS: -EINVAL. */
ASYNCIO_EXTERN int asyncio_loop_create_connection(asyncio_loop *loop,
                                                  asyncio_protocol_factory factory, void *arg,
                                                  const char *host, int port,
                                                  const asyncio_connection_options *opts,
                                                  asyncio_future **out);

typedef struct asyncio_server_options {
    int family, flags; /* AF_UNSPEC, AI_PASSIVE */
    int sock;          /* -1: none; else a listening or bound socket (taken over) */
    int backlog;       /* 100 */
    SSL_CTX *ssl;
    int reuse_address;            /* 1 */
    int reuse_port;               /* 0 */
    double ssl_handshake_timeout; /* 60 s */
    double ssl_shutdown_timeout;  /* 30 s */
    /* Zero (the _INIT macro does it): room for options added later
     * without an ABI break. */
    void *reserved[4];
} asyncio_server_options;

#define ASYNCIO_SERVER_OPTIONS_INIT                                   \
    {                                                                 \
        AF_UNSPEC, AI_PASSIVE, -1, 100, NULL, 1, 0, 60.0, 30.0, { 0 } \
    }

/* Listen on every address `host` resolves to (NULL or "": every interface,
 * IPv4 and IPv6, IPV6_V6ONLY on the v6 socket).  Port 0 picks a free port
 * (see get_sockets).  Result: the asyncio_server *; bind and listen errors
 * (-EADDRINUSE) come back in the future.  A listening server serves until
 * asyncio_server_close() or the loop closes, whoever holds references.
 * Accept errors reach the exception handler; running out of descriptors
 * (EMFILE, ENFILE, ENOBUFS, ENOMEM) pauses that listener for one second
 * instead of spinning. */
ASYNCIO_EXTERN int asyncio_loop_create_server(asyncio_loop *loop, asyncio_protocol_factory factory,
                                              void *arg, const char *host, int port,
                                              const asyncio_server_options *opts,
                                              asyncio_future **out);

ASYNCIO_EXTERN int asyncio_loop_create_unix_connection(asyncio_loop *loop,
                                                       asyncio_protocol_factory factory, void *arg,
                                                       const char *path,
                                                       const asyncio_connection_options *opts,
                                                       asyncio_future **out);
/* Listens on `path`: a socket file left there is replaced, any other file
 * is -EADDRINUSE (in the future); the socket file stays after close.
 * A path too long for sun_path: -ENAMETOOLONG.  SO_REUSEADDR does not
 * apply to UNIX sockets. */
ASYNCIO_EXTERN int asyncio_loop_create_unix_server(asyncio_loop *loop,
                                                   asyncio_protocol_factory factory, void *arg,
                                                   const char *path,
                                                   const asyncio_server_options *opts,
                                                   asyncio_future **out);

/* Stop listening; connections already accepted stay open.  Idempotent. */
ASYNCIO_EXTERN int asyncio_server_close(asyncio_server *s);
/* A future done once the server is closed and its connections are gone. */
ASYNCIO_EXTERN int asyncio_server_wait_closed(asyncio_server *s, asyncio_future **out);
/* Copies up to `capacity` listening fds (borrowed) and returns how many
 * the server has (0 once closed).  -EINVAL for a NULL server, or NULL fds
 * with a capacity. */
ASYNCIO_EXTERN int asyncio_server_get_sockets(asyncio_server *s, int *fds, size_t capacity);
/* NULL: a no-op. */
ASYNCIO_EXTERN void asyncio_server_ref(asyncio_server *s);
ASYNCIO_EXTERN void asyncio_server_unref(asyncio_server *s);

typedef struct asyncio_datagram_options {
    int family, proto, flags;
    int reuse_address;
    int allow_broadcast;
    /* Zero (the _INIT macro does it): room for options added later
     * without an ABI break. */
    void *reserved[4];
} asyncio_datagram_options;

#define ASYNCIO_DATAGRAM_OPTIONS_INIT \
    {                                 \
        AF_UNSPEC, 0, 0, 0, 0, { 0 }  \
    }

/* A UDP endpoint bound to local_host:local_port and/or connected to
 * remote_host:remote_port (either host may be NULL).  Result: the
 * transport. */
ASYNCIO_EXTERN int asyncio_loop_create_datagram_endpoint(
    asyncio_loop *loop, asyncio_protocol_factory factory, void *arg, const char *local_host,
    int local_port, const char *remote_host, int remote_port, const asyncio_datagram_options *opts,
    asyncio_future **out);

/* Send `count` bytes of `fd` from `offset` (count 0: to EOF) over a stream
 * transport, with sendfile(2) where possible.  Result: bytes sent
 * (intptr_t).  -EINVAL for a NULL argument, a negative fd or offset;
 * -EBADF for an fd that is not open; -EPIPE once `t` is closing. */
ASYNCIO_EXTERN int asyncio_loop_sendfile(asyncio_loop *loop, asyncio_transport *t, int fd,
                                         off_t offset, size_t count, asyncio_future **out);

#ifdef __cplusplus
}
#endif
#endif
