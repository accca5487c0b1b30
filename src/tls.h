/* TLS internals shared by tls.c (the layer over a stream transport),
 * tls-handshake.c (handshakes, start_tls) and tls-context.c (contexts,
 * per-connection SSL setup, error mapping, remembered reasons).  Never
 * installed. */
#ifndef ASYNCIO_TLS_PRIVATE_H
#define ASYNCIO_TLS_PRIVATE_H

#include "stream.h"

#include <openssl/ssl.h>

/* Room for one OpenSSL reason ("certificate verify failed: ..."). */
#define ASYNCIO__TLS_DETAIL 256

struct asyncio__tls_handshake; /* tls-handshake.c */

/* The TLS state of one connection, from the handshake to the transport's
 * end; the bufferevent's callback argument throughout.  The handshake
 * owns it until the handover, then the transport (s->layer_arg). */
struct asyncio__tls {
    asyncio__stream *s;                /* the transport, once handed over */
    struct asyncio__tls_handshake *hs; /* the handshake, until then */
    int connected;                     /* BEV_EVENT_CONNECTED came */
    double shutdown_timeout;
    /* Input events libevent reported before or after the handover. */
    int eof;     /* the input ended (close_notify, or eof_err) */
    int eof_err; /* ... without close_notify / with a reset: the error */
    int err;     /* a fatal TLS error */
    /* Closing. */
    int shutting_down;
    int notify_sent; /* our close_notify left */
    struct event *shut_ev;
    short shut_what;
    asyncio_handle *shut_h, *shut_timer;
    char detail[ASYNCIO__TLS_DETAIL]; /* OpenSSL's reason for the last failure */
};

/* ---- tls.c ------------------------------------------------------------------ */

/* The stream layer of TLS transports (close_notify, dirty EOF). */
extern const asyncio__stream_layer asyncio__tls_layer;
/* Make `t` the OpenSSL bufferevent's callback argument, with the TLS
 * callbacks: they tell t->hs about the handshake, and t->s (once set)
 * about input, output and errors. */
void asyncio__tls_set_callbacks(struct bufferevent *bev, struct asyncio__tls *t);

/* ---- tls-handshake.c ---------------------------------------------------------- */

/* From the bufferevent's event callback (libevent): the handshake
 * succeeded (err 0) or failed (err < 0, reason in t->detail).  Only
 * queues the handshake's done handle. */
void asyncio__tls_handshake_event(struct asyncio__tls_handshake *hs, int err);

/* ---- tls-context.c ------------------------------------------------------------ */

/* A new SSL for one connection from `ctx`.  Client side: SSL_VERIFY_PEER;
 * with a non-empty `hostname`, SNI (host names only) and the host name or
 * IP address check.  NULL on failure (no memory, or OpenSSL refused the
 * name: then -EINVAL in *err). */
SSL *asyncio__tls_new_ssl(SSL_CTX *ctx, int server_side, const char *hostname, int *err);

/* A socket BIO over `fd` (not closing it) that writes with
 * send(MSG_NOSIGNAL); NULL without memory. */
BIO *asyncio__tls_socket_bio(int fd);

/* What an OpenSSL bufferevent's BEV_EVENT_ERROR means: drains its error
 * queue.  `sys_errno` is errno as the event was reported; `handshake`
 * is 1 while the handshake runs (a failed certificate check is ECERT
 * then).  Returns the code and writes OpenSSL's reason into
 * detail[ASYNCIO__TLS_DETAIL].  *dirty_eof is set when the peer closed
 * without close_notify. */
int asyncio__tls_map_error(struct bufferevent *bev, int sys_errno, int handshake, char *detail,
                           int *dirty_eof);

/* Remember why `f` failed its handshake (asyncio_future_ssl_error). */
void asyncio__tls_remember(asyncio_loop *loop, asyncio_future *f, const char *detail);

#endif
