/* libasyncio: TLS (OpenSSL) on stream transports.
 *
 * A TLS transport is a stream transport over an OpenSSL bufferevent: the
 * same calls, the same protocol order.  It is made by create_connection
 * (asyncio_connection_options.ssl or .use_default_ssl), by create_server
 * (asyncio_server_options.ssl) or by asyncio_loop_start_tls.  Its extra
 * info adds "ssl_object" (SSL *) and "peercert" (X509 *, NULL when the
 * peer sent none), both borrowed for as long as the transport is held.
 *
 * Client connections always verify the peer (SSL_VERIFY_PEER is set on
 * each connection, whatever the context says): the certificate chain
 * against the context's trust store, and the host name -- or the IP
 * address, for an IP literal -- unless server_hostname is "".  A context
 * whose verify callback accepts every certificate turns the chain check
 * off.  SNI is sent for host names, never for IP literals.  Without a host
 * (a socket handed over, a UNIX path) server_hostname is required ("" for
 * no host check): -EINVAL otherwise, as in asyncio.
 *
 * Errors: a failed certificate or host name check is ASYNCIO_ECERT, any
 * other TLS failure ASYNCIO_ESSL, a handshake that outlasts
 * ssl_handshake_timeout -ETIMEDOUT, and errors of the socket itself keep
 * their errno (-ECONNRESET).  OpenSSL's reason for a TLS failure is kept
 * (asyncio_future_ssl_error, asyncio_transport_ssl_error); a server's
 * failed handshake is reported through the exception handler with the
 * reason in its message, and no protocol is ever made for it.
 *
 * Closing: close() flushes, sends close_notify once, waits up to
 * ssl_shutdown_timeout for the peer's close_notify, then closes the
 * socket; connection_lost(0), or -ETIMEDOUT when the peer never
 * answered.  The peer's close_notify is the EOF (eof_received).  A peer
 * that closes the TCP connection without close_notify may have cut the
 * data short: what arrived is delivered, then connection_lost(ASYNCIO_ESSL)
 * with no eof_received; a reset is connection_lost(-ECONNRESET).
 * can_write_eof is 0 (TLS 1.2 has no half-close). */
#ifndef ASYNCIO_TLS_H
#define ASYNCIO_TLS_H

#include <asyncio/common.h>
#include <asyncio/transport.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ssl_ctx_st SSL_CTX;

/* Upgrade the plain stream transport `t` (a connected socket whose
 * connection_made has run) to TLS in place, for STARTTLS-style protocols.
 * What `t` still had queued is sent first; then the handshake runs as
 * client (server_side 0; server_hostname as in create_connection: NULL
 * means no host name to check or send, "" likewise) or as server.  `ctx`
 * is required; the default timeouts apply (60 s handshake, 30 s
 * shutdown).  From the call on `t` is closing and reads nothing; the
 * protocol moves to the new transport without a second connection_made.
 * Result: the new TLS transport.  If the handshake fails the protocol
 * hears connection_lost(error) and the future fails with that error.
 * -ENOTSUP for a transport that is not a plain socket stream (a pipe, a
 * bufferevent, TLS already); -EINVAL while it is closing, has unread
 * input, runs a sendfile or has not been made yet; -EINVAL for a NULL
 * `ctx` or a transport of another loop. */
ASYNCIO_EXTERN int asyncio_loop_start_tls(asyncio_loop *loop, asyncio_transport *t, SSL_CTX *ctx,
                                          int server_side, const char *server_hostname,
                                          asyncio_future **out);

/* OpenSSL's reason why the future of a create_connection or start_tls
 * failed in its TLS handshake (ASYNCIO_ECERT, ASYNCIO_ESSL, -ETIMEDOUT or
 * an error of the socket), e.g. "certificate verify failed: Hostname
 * mismatch"; NULL for any other future.  The loop remembers the reasons
 * of its 16 most recent failed handshakes until it is closed.  The string
 * is borrowed: valid until the loop closes or 16 more handshakes fail. */
ASYNCIO_EXTERN const char *asyncio_future_ssl_error(asyncio_future *f);

/* OpenSSL's reason for the TLS error a TLS transport ended with (the one
 * connection_lost heard), or NULL: not TLS, or no TLS error.  Borrowed:
 * valid while the caller holds `t`. */
ASYNCIO_EXTERN const char *asyncio_transport_ssl_error(asyncio_transport *t);

/* The library's verifying client context (use_default_ssl): the system's
 * trust store (SSL_CTX_set_default_verify_paths, so SSL_CERT_FILE and
 * SSL_CERT_DIR apply as they are when it is first used), TLS 1.2 or
 * later, peer verification on.  Made once per process; borrowed, never
 * NULL unless OpenSSL is out of memory. */
ASYNCIO_EXTERN SSL_CTX *asyncio_default_ssl_context(void);

#ifdef __cplusplus
}
#endif
#endif
