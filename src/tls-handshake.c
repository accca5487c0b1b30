/* TLS handshakes (create_connection, create_server) and start_tls.
 *
 * A handshake object (struct asyncio__tls_handshake) runs before any transport or
 * protocol exists: the OpenSSL bufferevent connects or accepts, a loop
 * timer bounds it (ssl_handshake_timeout), and when it is done the `done`
 * handle -- a loop callback -- either fails it (the client's future gets
 * ASYNCIO_ECERT / ASYNCIO_ESSL / -ETIMEDOUT / -errno with OpenSSL's reason
 * remembered; a server reports to the exception handler and never calls
 * its factory) or calls the protocol factory and hands the bufferevent to
 * a new stream transport with the TLS layer (tls.c), which schedules
 * connection_made and completes the future as for a plain socket.
 * Reading is not enabled until connection_made ran (libevent then reads
 * what followed the handshake), so nothing is buffered unbounded.
 *
 * start_tls detaches the plain transport's fd: its events freed, its
 * queued output moved to the handshake (sent before the handshake
 * starts), the transport marked lost without a word to the protocol,
 * which moves to the new TLS transport (no second connection_made:
 * stream.c's moved_in).
 *
 * Lifetime: `refs` counts the operation and the waiter's done callback
 * (hs_waiter_done, which cancels the handshake when the caller's future
 * is cancelled).  A handshake is a closable: loop close frees its
 * bufferevent and fails its future with ASYNCIO_ECLOSED (a start_tls
 * protocol hears connection_lost(ASYNCIO_ECLOSED)).  Loop thread only. */
#include "tls.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum role { ROLE_CLIENT, ROLE_SERVER, ROLE_START_TLS };

struct asyncio__tls_handshake {
    asyncio__closable closable;
    int refs; /* the operation, and the waiter's done callback */
    asyncio_loop *loop;
    enum role role;
    struct asyncio__tls *tls;
    int fd;   /* until the bufferevent has it */
    SSL *ssl; /* until the bufferevent has it */
    struct bufferevent *bev;
    /* start_tls: what the plain transport had queued, sent first. */
    struct evbuffer *plain;
    struct event *plain_ev;
    asyncio_handle *plain_h, *timer_h, *done_h;
    asyncio_future *waiter; /* client, start_tls */
    int waiter_cb;          /* hs_waiter_done is registered */
    asyncio_server *server; /* server; start_tls of an accepted one */
    asyncio_protocol_factory factory;
    void *arg;
    asyncio_protocol *protocol; /* start_tls */
    double handshake_timeout;
    int connected;
    int finished;
    int err;
};

/* ---- Handshakes ----------------------------------------------------------------------- */

static void hs_unref(struct asyncio__tls_handshake *hs)
{
    if (--hs->refs > 0)
        return;
    free(hs->tls);
    free(hs);
}

static void cancel_slot(asyncio_handle **slot)
{
    if (*slot != NULL) {
        asyncio_handle_cancel(*slot);
        asyncio_handle_unref(*slot);
        *slot = NULL;
    }
}

static void hs_waiter_done(asyncio_future *f, void *arg);

/* Let go of everything but what the caller is about to hand on. */
static void hs_release(struct asyncio__tls_handshake *hs)
{
    hs->finished = 1;
    cancel_slot(&hs->timer_h);
    cancel_slot(&hs->done_h);
    cancel_slot(&hs->plain_h);
    if (hs->plain_ev != NULL) {
        event_free(hs->plain_ev);
        hs->plain_ev = NULL;
    }
    if (hs->plain != NULL) {
        evbuffer_free(hs->plain);
        hs->plain = NULL;
    }
    if (hs->bev != NULL) {
        bufferevent_free(hs->bev); /* closes the fd, frees the SSL */
        hs->bev = NULL;
    }
    if (hs->ssl != NULL) {
        SSL_free(hs->ssl);
        hs->ssl = NULL;
    }
    if (hs->fd >= 0) {
        close(hs->fd);
        hs->fd = -1;
    }
    asyncio__loop_remove_closable(&hs->closable);
    if (hs->waiter_cb) {
        /* Removed, or scheduled and about to find `finished`: either way
         * its reference is ours to drop only if it will never run. */
        if (asyncio_future_remove_done_callback(hs->waiter, hs_waiter_done, hs) > 0) {
            hs->waiter_cb = 0;
            hs->refs--;
        }
    }
}

/* The end of a handshake that made no transport. */
static void hs_fail(struct asyncio__tls_handshake *hs, int err)
{
    asyncio_loop *loop = hs->loop;
    asyncio_loop_ref(loop);
    hs_release(hs);
    const char *detail = hs->tls->detail;
    if (hs->role == ROLE_SERVER) {
        if (err != ASYNCIO_ECLOSED) {
            char msg[ASYNCIO__TLS_DETAIL + 64];
            snprintf(msg, sizeof(msg), "TLS handshake failed%s%s", detail[0] ? ": " : "", detail);
            asyncio_error_context ctx = {msg, err, NULL, NULL, NULL, hs->server};
            asyncio_loop_call_exception_handler(loop, &ctx);
        }
    } else {
        if (hs->role == ROLE_START_TLS && hs->protocol != NULL) {
            asyncio_protocol *p = hs->protocol;
            hs->protocol = NULL;
            if (p->ops->connection_lost != NULL)
                p->ops->connection_lost(p, err);
        }
        if (!asyncio_future_done(hs->waiter)) {
            asyncio__tls_remember(loop, hs->waiter, detail);
            asyncio_future_set_exception(hs->waiter, err);
        }
    }
    if (hs->server != NULL) {
        asyncio__server_connection_done(hs->server);
        asyncio_server_unref(hs->server);
        hs->server = NULL;
    }
    if (hs->waiter != NULL) {
        asyncio_future_unref(hs->waiter);
        hs->waiter = NULL;
    }
    hs_unref(hs);
    asyncio_loop_unref(loop);
}

/* The handshake succeeded: protocol, transport. */
static void hs_succeed(struct asyncio__tls_handshake *hs)
{
    asyncio_loop *loop = hs->loop;
    asyncio_protocol *p = hs->protocol;
    if (hs->role != ROLE_START_TLS) {
        p = hs->factory(hs->arg); /* user code */
        if (loop->closed || hs->finished)
            return; /* the loop closed under it: the closable ended us */
        if (hs->role == ROLE_CLIENT && asyncio_future_done(hs->waiter)) {
            /* Cancelled while the factory ran: the protocol never saw a
             * transport and stays the caller's (as a plain connection). */
            hs_fail(hs, -ECANCELED);
            return;
        }
        if (p == NULL) {
            snprintf(hs->tls->detail, ASYNCIO__TLS_DETAIL, "the protocol factory refused");
            hs_fail(hs, -ECONNABORTED);
            return;
        }
    }
    hs->protocol = NULL;
    asyncio__stream *s = asyncio__stream_alloc(loop, p);
    if (s == NULL) {
        if (hs->role == ROLE_START_TLS)
            hs->protocol = p;
        hs_fail(hs, -ENOMEM);
        return;
    }
    struct bufferevent *bev = hs->bev;
    struct asyncio__tls *t = hs->tls;
    asyncio_future *waiter = hs->waiter;
    asyncio_server *server = hs->server;
    int moved_in = hs->role == ROLE_START_TLS;
    hs->bev = NULL;
    hs->tls = NULL;
    hs->server = NULL;
    hs_release(hs); /* still sees the waiter: takes its done callback off */
    hs->waiter = NULL;
    hs_unref(hs);

    t->hs = NULL;
    t->s = s;
    s->bev = bev;
    s->layer = &asyncio__tls_layer;
    s->layer_arg = t;
    s->moved_in = moved_in;
    s->bev_eof = t->eof;
    if (t->err < 0)
        s->bev_err = t->err;
    bufferevent_enable(bev, EV_WRITE); /* reading starts after connection_made */
    asyncio__stream_update_events(s);
    int err = asyncio__stream_open(s, server, waiter, NULL); /* frees s on failure */
    if (err < 0 && waiter != NULL && !asyncio_future_done(waiter))
        asyncio_future_set_exception(waiter, err);
    if (server != NULL) {
        if (err < 0)
            asyncio__server_connection_done(server);
        asyncio_server_unref(server); /* the transport holds its own */
    }
    if (waiter != NULL)
        asyncio_future_unref(waiter);
}

static void hs_done(void *arg)
{
    struct asyncio__tls_handshake *hs = arg;
    asyncio_handle_unref(hs->done_h);
    hs->done_h = NULL;
    if (hs->finished)
        return;
    hs->refs++;
    if (hs->err < 0)
        hs_fail(hs, hs->err);
    else if (hs->role != ROLE_SERVER && asyncio_future_done(hs->waiter))
        hs_fail(hs, -ECANCELED);
    else
        hs_succeed(hs);
    hs_unref(hs);
}

static void hs_queue_done(struct asyncio__tls_handshake *hs);

void asyncio__tls_handshake_event(struct asyncio__tls_handshake *hs, int err)
{
    if (err < 0)
        hs->err = err;
    else
        hs->connected = 1;
    hs_queue_done(hs);
}

static void hs_queue_done(struct asyncio__tls_handshake *hs)
{
    if (hs->done_h == NULL && !hs->finished &&
        asyncio_loop_call_soon(hs->loop, hs_done, hs, &hs->done_h) < 0)
        hs->done_h = NULL; /* only a closed loop: its closable ends us */
}

static void hs_timeout(void *arg)
{
    struct asyncio__tls_handshake *hs = arg;
    asyncio_handle_unref(hs->timer_h);
    hs->timer_h = NULL;
    if (hs->finished || hs->connected || hs->err < 0)
        return;
    hs->err = -ETIMEDOUT;
    snprintf(hs->tls->detail, ASYNCIO__TLS_DETAIL, "TLS handshake timed out after %g s",
             hs->handshake_timeout);
    hs->refs++;
    hs_fail(hs, -ETIMEDOUT);
    hs_unref(hs);
}

/* The caller's future completed first: cancelled (or the loop closing). */
static void hs_waiter_done(asyncio_future *f, void *arg)
{
    struct asyncio__tls_handshake *hs = arg;
    hs->waiter_cb = 0; /* its reference keeps hs through hs_fail */
    if (!hs->finished) {
        snprintf(hs->tls->detail, ASYNCIO__TLS_DETAIL, "cancelled");
        hs_fail(hs, -ECANCELED);
    }
    hs_unref(hs);
}

static void hs_loop_close(asyncio__closable *c)
{
    struct asyncio__tls_handshake *hs =
        asyncio__container_of(c, struct asyncio__tls_handshake, closable);
    hs->refs++;
    if (hs->waiter_cb) {
        /* Never to run now: the loop drops its queue after the closables. */
        asyncio_future_remove_done_callback(hs->waiter, hs_waiter_done, hs);
        hs->waiter_cb = 0;
        hs->refs--;
    }
    hs_fail(hs, ASYNCIO_ECLOSED);
    hs_unref(hs);
}

/* Wrap fd + SSL in the OpenSSL bufferevent: the handshake starts. */
static int hs_begin(struct asyncio__tls_handshake *hs)
{
    SSL *ssl = hs->ssl;
    int fd = hs->fd;
    hs->ssl = NULL;
    hs->fd = -1;
    /* Our socket BIO, which libevent adopts (it finds the fd in it). */
    BIO *bio = asyncio__tls_socket_bio(fd);
    if (bio == NULL) {
        SSL_free(ssl);
        close(fd);
        return -ENOMEM;
    }
    SSL_set_bio(ssl, bio, bio);
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        hs->loop->base, fd, ssl,
        hs->role == ROLE_SERVER || SSL_is_server(ssl) ? BUFFEREVENT_SSL_ACCEPTING
                                                      : BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        close(fd); /* libevent freed the SSL (CLOSE_ON_FREE), not the fd */
        return -ENOMEM;
    }
    hs->bev = bev;
    asyncio__tls_set_callbacks(bev, hs->tls);
    return 0;
}

/* start_tls: send what the plain transport had queued, then begin. */
static void plain_step(void *arg);

static void plain_evcb(evutil_socket_t fd, short what, void *arg)
{
    struct asyncio__tls_handshake *hs = arg;
    if (hs->plain_h == NULL && asyncio_loop_call_soon(hs->loop, plain_step, hs, &hs->plain_h) < 0)
        hs->plain_h = NULL;
}

static void plain_step(void *arg)
{
    struct asyncio__tls_handshake *hs = arg;
    if (hs->plain_h != NULL) {
        asyncio_handle_unref(hs->plain_h);
        hs->plain_h = NULL;
    }
    if (hs->finished)
        return;
    hs->refs++;
    int err = 0;
    while (evbuffer_get_length(hs->plain) > 0) {
        int n = evbuffer_write(hs->plain, hs->fd);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (hs->plain_ev == NULL)
                    hs->plain_ev = event_new(hs->loop->base, hs->fd, EV_WRITE, plain_evcb, hs);
                if (hs->plain_ev == NULL || event_add(hs->plain_ev, NULL) < 0)
                    err = -ENOMEM;
                break;
            }
            if (errno != EINTR) {
                err = -errno;
                break;
            }
        }
    }
    if (err == 0 && evbuffer_get_length(hs->plain) == 0) {
        if (hs->plain_ev != NULL) {
            event_free(hs->plain_ev);
            hs->plain_ev = NULL;
        }
        err = hs_begin(hs);
    }
    if (err < 0)
        hs_fail(hs, err);
    hs_unref(hs);
}

/* A handshake object for `fd`; takes fd and ssl over on failure too. */
static struct asyncio__tls_handshake *hs_new(asyncio_loop *loop, enum role role, int fd, SSL *ssl,
                                             double handshake_timeout, double shutdown_timeout)
{
    struct asyncio__tls_handshake *hs = calloc(1, sizeof(*hs));
    struct asyncio__tls *t = calloc(1, sizeof(*t));
    if (hs == NULL || t == NULL) {
        free(hs);
        free(t);
        SSL_free(ssl);
        close(fd);
        return NULL;
    }
    hs->refs = 1;
    hs->loop = loop;
    hs->role = role;
    hs->fd = fd;
    hs->ssl = ssl;
    hs->tls = t;
    hs->handshake_timeout = handshake_timeout;
    t->hs = hs;
    t->shutdown_timeout = shutdown_timeout;
    hs->closable.close = hs_loop_close;
    asyncio__loop_add_closable(loop, &hs->closable);
    return hs;
}

/* Start the timer (and watch the waiter); then the bufferevent, unless
 * start_tls has plain output to send first.  On failure everything is
 * freed but the waiter, server and protocol, which stay the caller's. */
static int hs_start(struct asyncio__tls_handshake *hs)
{
    int err =
        asyncio_loop_call_later(hs->loop, hs->handshake_timeout, hs_timeout, hs, &hs->timer_h);
    if (err == 0 && hs->plain != NULL)
        err = asyncio_loop_call_soon(hs->loop, plain_step, hs, &hs->plain_h);
    else if (err == 0)
        err = hs_begin(hs);
    if (err == 0 && hs->waiter != NULL) {
        err = asyncio_future_add_done_callback(hs->waiter, hs_waiter_done, hs);
        if (err == 0) {
            hs->waiter_cb = 1;
            hs->refs++;
        }
    }
    if (err < 0) {
        hs->waiter = NULL;
        hs->server = NULL;
        hs->protocol = NULL;
        hs_release(hs);
        hs_unref(hs);
    }
    return err;
}

static int check_timeouts(double handshake_timeout, double shutdown_timeout)
{
    /* NaN fails both comparisons. */
    if (!(handshake_timeout > 0) || !(shutdown_timeout > 0))
        return -EINVAL;
    return 0;
}

int asyncio__tls_connect(asyncio_loop *loop, int fd, SSL_CTX *ctx, const char *hostname,
                         double handshake_timeout, double shutdown_timeout,
                         asyncio_protocol_factory factory, void *arg, asyncio_future *waiter)
{
    int err = check_timeouts(handshake_timeout, shutdown_timeout);
    if (err == 0 && loop->closed)
        err = ASYNCIO_ECLOSED;
    if (err == 0 && ctx == NULL && (ctx = asyncio_default_ssl_context()) == NULL)
        err = -ENOMEM;
    SSL *ssl = err == 0 ? asyncio__tls_new_ssl(ctx, 0, hostname, &err) : NULL;
    if (ssl == NULL) {
        close(fd);
        return err;
    }
    struct asyncio__tls_handshake *hs =
        hs_new(loop, ROLE_CLIENT, fd, ssl, handshake_timeout, shutdown_timeout);
    if (hs == NULL)
        return -ENOMEM;
    hs->factory = factory;
    hs->arg = arg;
    asyncio_future_ref(waiter);
    hs->waiter = waiter;
    err = hs_start(hs);
    if (err < 0)
        asyncio_future_unref(waiter);
    return err;
}

int asyncio__tls_accept(asyncio_loop *loop, asyncio_server *server, int fd, SSL_CTX *ctx,
                        double handshake_timeout, double shutdown_timeout,
                        asyncio_protocol_factory factory, void *arg)
{
    int err = check_timeouts(handshake_timeout, shutdown_timeout);
    if (err == 0 && loop->closed)
        err = ASYNCIO_ECLOSED;
    SSL *ssl = err == 0 ? asyncio__tls_new_ssl(ctx, 1, NULL, &err) : NULL;
    if (ssl == NULL) {
        close(fd);
        return err;
    }
    struct asyncio__tls_handshake *hs =
        hs_new(loop, ROLE_SERVER, fd, ssl, handshake_timeout, shutdown_timeout);
    if (hs == NULL)
        return -ENOMEM;
    hs->factory = factory;
    hs->arg = arg;
    asyncio_server_ref(server);
    hs->server = server;
    err = hs_start(hs);
    if (err < 0)
        asyncio_server_unref(server);
    return err;
}

/* ---- start_tls ------------------------------------------------------------------------- */

/* Take the fd and the queued output out of a plain socket transport that
 * the caller holds: it ends without a word to its protocol, which moves. */
static void detach_plain(asyncio__stream *s, struct asyncio__tls_handshake *hs)
{
    if (s->read_ev != NULL) {
        event_free(s->read_ev);
        s->read_ev = NULL;
    }
    if (s->write_ev != NULL) {
        event_free(s->write_ev);
        s->write_ev = NULL;
    }
    s->read_armed = s->write_armed = 0;
    hs->fd = s->fd;
    s->fd = -1;
    if (evbuffer_get_length(s->out) > 0)
        evbuffer_add_buffer(hs->plain, s->out);
    hs->server = s->server; /* its reference moves along */
    s->server = NULL;
    s->closing = 1;
    s->lost_queued = 1; /* its queued handles find this and do nothing */
    s->lost_done = 1;
    if (s->registered) {
        asyncio__loop_remove_closable(&s->closable);
        s->registered = 0;
    }
    asyncio_transport_unref(&s->head); /* the transport's own reference */
}

int asyncio_loop_start_tls(asyncio_loop *loop, asyncio_transport *tr, SSL_CTX *ctx, int server_side,
                           const char *server_hostname, asyncio_future **out)
{
    if (loop == NULL || tr == NULL || ctx == NULL)
        return -EINVAL;
    if (loop->closed)
        return ASYNCIO_ECLOSED;
    if (tr->loop != loop)
        return -EINVAL;
    asyncio__stream *s = asyncio__stream_of(tr);
    if (s == NULL || s->fd_kind != ASYNCIO__FD_SOCKET || s->layer != NULL)
        return -ENOTSUP;
    /* Closed (its fd already released) is closing, as documented: -EINVAL. */
    if (s->closing || s->lost_queued)
        return -EINVAL;
    if (s->fd < 0) /* a bufferevent transport */
        return -ENOTSUP;
    if (!s->started || s->eof_pending || s->sf != NULL ||
        (s->in != NULL && evbuffer_get_length(s->in) > 0))
        return -EINVAL;
    int err;
    SSL *ssl = asyncio__tls_new_ssl(ctx, server_side, server_side ? NULL : server_hostname, &err);
    if (ssl == NULL)
        return err;
    asyncio_future *f;
    err = asyncio_loop_create_future(loop, &f);
    struct evbuffer *plain = err == 0 ? evbuffer_new() : NULL;
    if (plain == NULL) {
        if (err == 0)
            asyncio_future_unref(f);
        SSL_free(ssl);
        return err < 0 ? err : -ENOMEM;
    }
    /* From here on the plain transport is given up, whatever happens. */
    struct asyncio__tls_handshake *hs = hs_new(loop, ROLE_START_TLS, -1, ssl, 60.0, 30.0);
    if (hs == NULL) {
        evbuffer_free(plain);
        asyncio_future_unref(f);
        return -ENOMEM;
    }
    hs->plain = plain;
    hs->protocol = tr->protocol;
    hs->waiter = f;
    asyncio_future_ref(f);
    /* Everything that can fail comes before the plain transport is given
     * up: the plain output is sent from a queued step, after the detach. */
    err = hs_start(hs);
    if (err < 0) {
        asyncio_future_unref(f);
        asyncio_future_unref(f);
        return err;
    }
    detach_plain(s, hs);
    if (out != NULL)
        *out = f;
    else
        asyncio_future_unref(f);
    return 0;
}
