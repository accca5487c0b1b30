/* The TLS layer of a stream transport: the OpenSSL bufferevent's
 * callbacks, what its errors mean for the stream, and closing with
 * close_notify.  (Handshakes and start_tls: tls-handshake.c; contexts and
 * OpenSSL's error codes: tls-context.c.)
 *
 * A TLS transport is a stream transport (stream.c) on its bufferevent
 * path, over bufferevent_openssl_socket_new(fd), with this file's layer
 * (stream.h: asyncio__stream_layer) for what libevent 2.1 does not do
 * (LIBEVENT-NOTES, pitfalls 2-4):
 *
 *   errors     The bufferevent's callbacks are ours, not stream-bev.c's:
 *              they queue the transport's read / write handles as
 *              stream-bev.c's do, but map BEV_EVENT_ERROR with OpenSSL's
 *              error queue and errno (tls-context.c).  They are not
 *              deferred: errno is only meaningful while libevent reports
 *              the error, and since they only record and queue, the data
 *              libevent commits to the input after an error (pitfall 4)
 *              is there before the read handle runs.  A peer that closes
 *              without close_notify, or resets, is an EOF for the stream
 *              (what was read is delivered first) whose layer says which
 *              error connection_lost gets instead of eof_received.
 *   shutdown   libevent never calls SSL_shutdown.  When close() has
 *              flushed the output (the layer's close_flushed hook), we
 *              send close_notify once, then read (and drop) until the
 *              peer's close_notify, EOF or an error, with the fd watched
 *              by an event of our own (the bufferevent is not reading any
 *              more) and a loop timer of ssl_shutdown_timeout; then the
 *              stream ends (connection_lost(0), -ETIMEDOUT on timeout).
 *
 * Owns, per connection, struct asyncio__tls (the callbacks' argument from
 * the handshake on; the transport frees it in destroy), the shutdown's
 * event and handles.  Loop thread only; libevent callbacks only record
 * and queue handles. */
#include "tls.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <stdlib.h>

/* ---- The bufferevent's callbacks (libevent: record and queue only) ------------- */

static void tls_readcb(struct bufferevent *bev, void *arg)
{
    struct asyncio__tls *t = arg;
    if (t->s != NULL)
        asyncio__stream_queue_read(t->s);
}

static void tls_writecb(struct bufferevent *bev, void *arg)
{
    struct asyncio__tls *t = arg;
    if (t->s != NULL)
        asyncio__stream_queue_write(t->s);
}

static void tls_eventcb(struct bufferevent *bev, short what, void *arg)
{
    int sys_errno = EVUTIL_SOCKET_ERROR(); /* first: anything below may change it */
    struct asyncio__tls *t = arg;
    if (what & BEV_EVENT_CONNECTED) {
        t->connected = 1;
        if (t->hs != NULL)
            asyncio__tls_handshake_event(t->hs, 0);
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    if (!t->connected) {
        int dirty;
        int err = asyncio__tls_map_error(bev, sys_errno, 1, t->detail, &dirty);
        if (t->hs != NULL)
            asyncio__tls_handshake_event(t->hs, err);
        return;
    }
    /* After the peer's close_notify we still write (layer_eof_error): a
     * failure of that writing (which libevent may call an EOF) ends the
     * transport with the socket's error. */
    if (t->err < 0 || (t->eof && (t->eof_err < 0 || !(what & BEV_EVENT_WRITING))))
        return;
    if (t->eof) {
        int dirty;
        int e = asyncio__tls_map_error(bev, sys_errno, 0, t->detail, &dirty);
        t->err = sys_errno > 0 ? -sys_errno : e < 0 ? e : -EPIPE;
    } else if (what & BEV_EVENT_EOF) {
        t->eof = 1; /* the peer's close_notify */
    } else {
        int dirty;
        int e = asyncio__tls_map_error(bev, sys_errno, 0, t->detail, &dirty);
        if (dirty || (e > -4096 && !(what & BEV_EVENT_WRITING))) {
            /* The input ends here, but what came before it is data.  (A
             * write error is fatal at once, even while reading is paused.) */
            t->eof = 1;
            t->eof_err = e;
        } else {
            t->err = e;
        }
    }
    if (t->s != NULL) {
        t->s->bev_eof = t->eof;
        if (t->err < 0)
            t->s->bev_err = t->err;
        asyncio__stream_queue_read(t->s);
    }
}

/* ---- The layer: closing with close_notify ---------------------------------------- */

static struct asyncio__tls *tls_of(asyncio__stream *s) { return s->layer_arg; }

static void shut_step(void *arg);

static void shut_end(struct asyncio__tls *t, int err) { asyncio__stream_force_close(t->s, err); }

static void shut_evcb(evutil_socket_t fd, short what, void *arg)
{
    struct asyncio__tls *t = arg;
    if (t->shut_h == NULL && asyncio_loop_call_soon(t->s->head.loop, shut_step, t, &t->shut_h) < 0)
        t->shut_h = NULL;
}

static void shut_timeout(void *arg)
{
    struct asyncio__tls *t = arg;
    asyncio_handle_unref(t->shut_timer);
    t->shut_timer = NULL;
    asyncio_transport_ref(&t->s->head);
    shut_end(t, -ETIMEDOUT); /* the peer never answered our close_notify */
    asyncio_transport_unref(&t->s->head);
}

/* Wait until the fd is ready for `what`, then run shut_step again. */
static int shut_wait(struct asyncio__tls *t, short what)
{
    if (t->shut_ev != NULL && t->shut_what != what) {
        event_free(t->shut_ev);
        t->shut_ev = NULL;
    }
    if (t->shut_ev == NULL) {
        t->shut_ev =
            event_new(t->s->head.loop->base, bufferevent_getfd(t->s->bev), what, shut_evcb, t);
        t->shut_what = what;
    }
    return t->shut_ev != NULL && event_add(t->shut_ev, NULL) == 0 ? 0 : -ENOMEM;
}

/* Send close_notify (once), then read until the peer's. */
static void shut_step(void *arg)
{
    struct asyncio__tls *t = arg;
    if (t->shut_h != NULL) {
        asyncio_handle_unref(t->shut_h);
        t->shut_h = NULL;
    }
    asyncio__stream *s = t->s;
    if (s->lost_queued)
        return;
    asyncio_transport_ref(&s->head);
    SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
    int end = 0;
    for (int rounds = 0; !end && rounds < 64; rounds++) {
        int r, want;
        ERR_clear_error();
        if (!t->notify_sent) {
            /* Again after WANT_WRITE: that flushes the pending alert. */
            r = SSL_shutdown(ssl);
            if (r >= 0) {
                t->notify_sent = 1;
                if (r == 1)
                    end = 1;
                continue;
            }
        } else if (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) {
            end = 1;
            break;
        } else {
            char scratch[4096];
            r = SSL_read(ssl, scratch, sizeof(scratch));
            if (r > 0)
                continue; /* data after our close: dropped, as asyncio does */
        }
        want = SSL_get_error(ssl, r);
        if (want == SSL_ERROR_WANT_READ || want == SSL_ERROR_WANT_WRITE) {
            if (shut_wait(t, want == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE) < 0)
                end = 1;
            break;
        }
        /* ZERO_RETURN (close_notify), EOF, a reset: the peer is done. */
        end = 1;
    }
    ERR_clear_error();
    if (end)
        shut_end(t, 0);
    else if (!s->lost_queued && t->shut_ev == NULL && t->shut_h == NULL)
        /* 64 records of data: give the loop a turn, then go on. */
        if (asyncio_loop_call_soon(s->head.loop, shut_step, t, &t->shut_h) < 0)
            shut_end(t, 0);
    asyncio_transport_unref(&s->head);
}

static int layer_close_flushed(asyncio__stream *s)
{
    struct asyncio__tls *t = tls_of(s);
    if (t->err < 0 || t->eof_err < 0)
        return 0; /* a broken session has nothing to shut down */
    if (t->shutting_down)
        return 1;
    t->shutting_down = 1;
    bufferevent_disable(s->bev, EV_READ | EV_WRITE);
    if (asyncio_loop_call_later(s->head.loop, t->shutdown_timeout, shut_timeout, t,
                                &t->shut_timer) < 0) {
        t->shut_timer = NULL;
        return 0;
    }
    shut_step(t);
    return 1;
}

static int layer_eof_error(asyncio__stream *s)
{
    struct asyncio__tls *t = tls_of(s);
    /* libevent 2.1 stops writing as well when it reads the peer's
     * close_notify (conn_closed), which would strand what is queued: a
     * close would wait for it forever, and so would a protocol that keeps
     * the transport open.  OpenSSL still writes after a received
     * close_notify, so writing is armed again. */
    if (t->eof_err == 0 && t->err == 0 && s->bev != NULL)
        bufferevent_enable(s->bev, EV_WRITE);
    return t->eof_err;
}

static void layer_release(asyncio__stream *s)
{
    struct asyncio__tls *t = tls_of(s);
    if (t->shut_ev != NULL) {
        event_free(t->shut_ev);
        t->shut_ev = NULL;
    }
    if (t->shut_h != NULL) {
        asyncio_handle_cancel(t->shut_h);
        asyncio_handle_unref(t->shut_h);
        t->shut_h = NULL;
    }
    if (t->shut_timer != NULL) {
        asyncio_handle_cancel(t->shut_timer);
        asyncio_handle_unref(t->shut_timer);
        t->shut_timer = NULL;
    }
}

static void layer_destroy(asyncio__stream *s)
{
    layer_release(s);
    free(tls_of(s));
    s->layer_arg = NULL;
}

const asyncio__stream_layer asyncio__tls_layer = {
    .close_flushed = layer_close_flushed,
    .eof_error = layer_eof_error,
    .release = layer_release,
    .destroy = layer_destroy,
};

const char *asyncio_transport_ssl_error(asyncio_transport *tr)
{
    asyncio__stream *s = tr != NULL ? asyncio__stream_of(tr) : NULL;
    if (s == NULL || s->layer != &asyncio__tls_layer)
        return NULL;
    struct asyncio__tls *t = tls_of(s);
    return t->detail[0] != '\0' ? t->detail : NULL;
}

void asyncio__tls_set_callbacks(struct bufferevent *bev, struct asyncio__tls *t)
{
    bufferevent_setcb(bev, tls_readcb, tls_writecb, tls_eventcb, t);
}
