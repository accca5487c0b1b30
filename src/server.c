/* Servers: create_server, create_unix_server and the asyncio_server object.
 *
 * Creation runs in loop callbacks, never inside the call: resolve the host
 * (asyncio_loop_getaddrinfo), or for a UNIX path or a socket the caller
 * hands over a call_soon; then make one own socket per address (or take
 * the caller's), bind, listen(backlog) and wrap each in an evconnlistener
 * (evconnlistener_new with backlog 0, so it does not listen again;
 * evconnlistener_new_bind would reject backlog 0 and force SO_KEEPALIVE).
 *
 * Accepting: libevent's listener callback only queues the accepted fd
 * (accept4 with SOCK_NONBLOCK|SOCK_CLOEXEC, from LEV_OPT_CLOSE_ON_EXEC) and
 * schedules one `drain` handle; `drain`, a loop callback, calls the
 * protocol factory (user code) and asyncio__stream_new_socket, which
 * schedules connection_made; with TLS, asyncio__tls_accept, whose
 * handshake comes before the factory (a failed one is reported and makes
 * no protocol; it counts in `active` meanwhile).  An accept error is queued the same way and
 * reported through the exception handler in order.  EMFILE and the other
 * out-of-resources errors would busy-loop (libevent keeps the listener
 * enabled after its error callback), so that listener is disabled and
 * re-enabled ACCEPT_RETRY_DELAY later, as asyncio does.
 *
 * References to the server: the creating future's result; every caller's;
 * "serving" (held from the moment the server listens until close, so a
 * listening server lives on although the caller dropped it, as in
 * asyncio); each stream transport it accepted (stream.c); a pending drain
 * handle; each done callback registered on a future.  Other handles hold
 * none: the server cancels them before it can be freed.
 *
 * wait_closed futures complete once the server is closed and every
 * accepted connection has gone (asyncio__server_connection_done), always
 * through a loop callback.  Loop close stops listening and cancels them. */
#include "internal.h"

#include <event2/event.h>
#include <openssl/ssl.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Seconds a listener rests after accept ran out of fds or memory
 * (asyncio's constants.ACCEPT_RETRY_DELAY). */
#define ACCEPT_RETRY_DELAY 1.0

struct listener {
    asyncio_server *server;
    struct evconnlistener *lev; /* owns the fd (LEV_OPT_CLOSE_ON_FREE) */
    int fd;
    asyncio_handle *retry_h; /* re-enable after a resource error */
};

/* An accepted fd, or an accept error (fd -1), waiting for `drain`. */
struct pending {
    int fd;
    int error;
};

struct asyncio_server {
    asyncio__refcount refs;
    asyncio__closable closable;
    asyncio_loop *loop;
    asyncio_protocol_factory factory;
    void *arg;
    int backlog;

    /* Creation. */
    asyncio_future *creating; /* until the server listens or fails */
    int create_cb;            /* on_create_done registered, not run */
    asyncio_future *gai;
    asyncio_handle *setup_h;
    int sock;   /* the caller's socket, until adopted */
    char *path; /* create_unix_server */
    int reuse_address, reuse_port;

    struct listener *listeners;
    size_t nlisteners;
    int serving; /* holds the "serving" reference */
    int closed;

    size_t active; /* accepted connections not yet gone */
    asyncio_future **waiters;
    size_t nwaiters, capwaiters;
    asyncio_handle *wakeup_h;

    struct pending *queue;
    size_t qlen, qcap;
    asyncio_handle *drain_h; /* holds a reference while queued */

    /* TLS: each accepted socket runs a handshake (tls.c) first. */
    SSL_CTX *ssl; /* a reference, or NULL */
    double handshake_timeout, shutdown_timeout;
};

static void on_create_done(asyncio_future *f, void *arg);
static void on_resolved(asyncio_future *f, void *arg);

static void close_listeners(asyncio_server *s)
{
    for (size_t i = 0; i < s->nlisteners; i++) {
        struct listener *l = &s->listeners[i];
        asyncio__handle_forget(&l->retry_h);
        if (l->lev != NULL)
            evconnlistener_free(l->lev);
        else if (l->fd >= 0)
            close(l->fd);
    }
    free(s->listeners);
    s->listeners = NULL;
    s->nlisteners = 0;
}

/* Complete every wait_closed future: with a result (the server is closed
 * and its connections are gone), or cancelled (the loop closed). */
static void complete_waiters(asyncio_server *s, int cancel)
{
    for (size_t i = 0; i < s->nwaiters; i++) {
        if (cancel)
            asyncio_future_cancel(s->waiters[i]);
        else if (!asyncio_future_done(s->waiters[i]))
            asyncio_future_set_result(s->waiters[i], NULL, NULL);
        asyncio_future_unref(s->waiters[i]);
    }
    s->nwaiters = 0;
}

static void close_queued(asyncio_server *s)
{
    for (size_t i = 0; i < s->qlen; i++)
        if (s->queue[i].fd >= 0)
            close(s->queue[i].fd);
    s->qlen = 0;
}

void asyncio_server_ref(asyncio_server *s)
{
    if (s != NULL)
        asyncio__ref_inc(&s->refs);
}

void asyncio_server_unref(asyncio_server *s)
{
    if (s == NULL || !asyncio__ref_dec(&s->refs))
        return;
    /* No reference left: nobody waits on a callback of ours (drain and
     * done callbacks hold references), so only free what is left. */
    asyncio__loop_remove_closable(&s->closable);
    asyncio__handle_forget(&s->wakeup_h);
    asyncio__handle_forget(&s->setup_h);
    complete_waiters(s, 0);
    close_listeners(s);
    close_queued(s);
    if (s->sock >= 0)
        close(s->sock);
    free(s->waiters);
    free(s->queue);
    free(s->path);
    SSL_CTX_free(s->ssl);
    asyncio_loop_unref(s->loop);
    free(s);
}

static void server_unref_result(void *s) { asyncio_server_unref(s); }

/* ---- wait_closed ---------------------------------------------------------------- */

static void wakeup(void *arg)
{
    asyncio_server *s = arg;
    asyncio_handle_unref(s->wakeup_h);
    s->wakeup_h = NULL;
    if (s->closed && s->active == 0)
        complete_waiters(s, 0);
}

static void maybe_wakeup(asyncio_server *s)
{
    if (s->closed && s->active == 0 && s->nwaiters > 0 && s->wakeup_h == NULL &&
        asyncio_loop_call_soon(s->loop, wakeup, s, &s->wakeup_h) < 0)
        s->wakeup_h = NULL; /* the loop is closed: its closable cancelled them */
}

int asyncio_server_wait_closed(asyncio_server *s, asyncio_future **out)
{
    if (s == NULL)
        return -EINVAL;
    ASYNCIO__CHECK_OPEN(s->loop);
    if (out == NULL)
        return 0; /* nothing to wait with */
    if (s->nwaiters == s->capwaiters) {
        size_t cap = s->capwaiters ? s->capwaiters * 2 : 4;
        asyncio_future **v = realloc(s->waiters, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        s->waiters = v;
        s->capwaiters = cap;
    }
    asyncio_future *f;
    int err = asyncio_loop_create_future(s->loop, &f);
    if (err < 0)
        return err;
    s->waiters[s->nwaiters++] = f; /* the server's reference */
    asyncio_future_ref(f);
    *out = f;
    maybe_wakeup(s);
    return 0;
}

void asyncio__server_connection_done(asyncio_server *s)
{
    if (s == NULL || s->active == 0)
        return;
    s->active--;
    maybe_wakeup(s);
}

/* ---- Closing ------------------------------------------------------------------ */

int asyncio_server_close(asyncio_server *s)
{
    if (s == NULL)
        return -EINVAL;
    if (s->closed)
        return 0;
    s->closed = 1;
    asyncio_server_ref(s);
    close_listeners(s);
    if (s->serving) {
        s->serving = 0;
        asyncio_server_unref(s);
    }
    maybe_wakeup(s);
    asyncio_server_unref(s);
    return 0;
}

int asyncio_server_get_sockets(asyncio_server *s, int *fds, size_t capacity)
{
    if (s == NULL || (fds == NULL && capacity > 0))
        return -EINVAL;
    for (size_t i = 0; i < s->nlisteners && i < capacity; i++)
        fds[i] = s->listeners[i].fd;
    return (int)s->nlisteners;
}

/* ---- Accepting ------------------------------------------------------------------- */

static void report(asyncio_server *s, const char *message, int error)
{
    asyncio_error_context ctx = {message, error, NULL, NULL, NULL, s};
    asyncio_loop_call_exception_handler(s->loop, &ctx);
}

static void accept_one(asyncio_server *s, int fd)
{
    if (s->ssl != NULL) {
        /* The factory runs after the handshake: a failed one makes no
         * protocol.  The handshake counts as a connection already. */
        asyncio__sock_set_nodelay(fd);
        s->active++;
        int err = asyncio__tls_accept(s->loop, s, fd, s->ssl, s->handshake_timeout,
                                      s->shutdown_timeout, s->factory, s->arg);
        if (err < 0) {
            s->active--;
            report(s, "accepted connection: cannot start its TLS handshake", err);
            maybe_wakeup(s);
        }
        return;
    }
    asyncio_protocol *protocol = s->factory(s->arg);
    if (protocol == NULL) {
        close(fd); /* the factory refused the connection */
        return;
    }
    asyncio__sock_set_nodelay(fd);
    s->active++;
    int err = asyncio__stream_new_socket(s->loop, fd, protocol, s, NULL, NULL);
    if (err < 0) {
        s->active--;
        report(s, "accepted connection: cannot make its transport", err);
        maybe_wakeup(s);
    }
}

/* The loop callback that hands accepted fds to protocols, in order. */
static void drain(void *arg)
{
    asyncio_server *s = arg;
    asyncio_handle_unref(s->drain_h);
    s->drain_h = NULL;
    /* Entries pushed while we run (none today: libevent does not run
     * inside loop callbacks) wait for the next drain. */
    size_t n = s->qlen;
    for (size_t i = 0; i < n; i++) {
        struct pending p = s->queue[i];
        s->queue[i].fd = -1;
        if (p.fd >= 0)
            accept_one(s, p.fd);
        else if (p.error == -EMFILE || p.error == -ENFILE || p.error == -ENOBUFS ||
                 p.error == -ENOMEM)
            report(s, "accept() out of system resources; retrying later", p.error);
        else
            report(s, "accept() failed", p.error);
    }
    memmove(s->queue, s->queue + n, (s->qlen - n) * sizeof(*s->queue));
    s->qlen -= n;
    asyncio_server_unref(s); /* the drain handle's reference */
}

static void push(asyncio_server *s, int fd, int error)
{
    if (s->qlen == s->qcap) {
        size_t cap = s->qcap ? s->qcap * 2 : 8;
        struct pending *q = realloc(s->queue, cap * sizeof(*q));
        if (q == NULL) {
            if (fd >= 0)
                close(fd);
            return;
        }
        s->queue = q;
        s->qcap = cap;
    }
    s->queue[s->qlen].fd = fd;
    s->queue[s->qlen].error = error;
    s->qlen++;
    if (s->drain_h == NULL) {
        if (asyncio_loop_call_soon(s->loop, drain, s, &s->drain_h) < 0)
            s->drain_h = NULL;
        else
            asyncio_server_ref(s);
    }
}

/* libevent: a new connection (the fd is already non-blocking, close-on-exec). */
static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    struct listener *l = arg;
    push(l->server, fd, 0);
}

static void retry(void *arg)
{
    struct listener *l = arg;
    asyncio_handle_unref(l->retry_h);
    l->retry_h = NULL;
    if (l->lev != NULL)
        evconnlistener_enable(l->lev);
}

/* libevent: accept() failed with something other than EAGAIN, EINTR or
 * ECONNABORTED. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    int err = -EVUTIL_SOCKET_ERROR();
    struct listener *l = arg;
    asyncio_server *s = l->server;
    if (err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM) {
        /* The fd stays readable: without a rest this would spin. */
        evconnlistener_disable(lev);
        if (l->retry_h == NULL &&
            asyncio_loop_call_later(s->loop, ACCEPT_RETRY_DELAY, retry, l, &l->retry_h) < 0)
            l->retry_h = NULL;
    }
    push(s, -1, err < 0 ? err : -EIO);
}

/* ---- Creation ------------------------------------------------------------------------ */

/* Wrap a bound socket: listen (unless it is already) and make its listener.
 * The fd belongs to the listener entry from here on. */
static int add_listener(asyncio_server *s, int fd)
{
    struct listener *l = &s->listeners[s->nlisteners++];
    l->server = s;
    l->fd = fd;
    l->lev = NULL;
    l->retry_h = NULL;
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
        listening = 0;
    if (!listening && listen(fd, s->backlog) < 0)
        return -errno;
    l->lev = evconnlistener_new(s->loop->base, on_accept, l,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    if (l->lev == NULL)
        return -ENOMEM;
    evconnlistener_set_error_cb(l->lev, on_accept_error);
    return 0;
}

static int setup_addrinfo(asyncio_server *s, const struct addrinfo *ai)
{
    size_t n = 0;
    for (const struct addrinfo *p = ai; p != NULL; p = p->ai_next)
        n++;
    if (n == 0)
        return ASYNCIO_EAI_NONAME;
    s->listeners = calloc(n, sizeof(*s->listeners));
    if (s->listeners == NULL)
        return -ENOMEM;
    unsigned opts = (s->reuse_address ? ASYNCIO__SOCK_REUSEADDR : 0) |
                    (s->reuse_port ? ASYNCIO__SOCK_REUSEPORT : 0);
    int socket_error = 0;
    for (const struct addrinfo *p = ai; p != NULL; p = p->ai_next) {
        /* A name may resolve to one address twice: bind it once. */
        int seen = 0;
        for (const struct addrinfo *q = ai; q != p && !seen; q = q->ai_next)
            seen = q->ai_family == p->ai_family && q->ai_addrlen == p->ai_addrlen &&
                   memcmp(q->ai_addr, p->ai_addr, p->ai_addrlen) == 0;
        if (seen)
            continue;
        int fd = asyncio__sock_open(p->ai_family, SOCK_STREAM, p->ai_protocol);
        if (fd < 0) {
            /* asyncio skips a family/protocol the system lacks. */
            socket_error = fd;
            continue;
        }
        /* Without V6ONLY Linux's dual-stack "::" would take the IPv4 port
         * that the "0.0.0.0" socket binds too. */
        unsigned v6only = p->ai_family == AF_INET6 ? ASYNCIO__SOCK_V6ONLY : 0;
        int err = asyncio__sock_setopts(fd, opts | v6only);
        if (!err && bind(fd, p->ai_addr, p->ai_addrlen) < 0)
            err = -errno;
        if (err < 0) {
            close(fd);
            return err;
        }
        if ((err = add_listener(s, fd)) < 0)
            return err;
    }
    if (s->nlisteners == 0)
        return socket_error < 0 ? socket_error : -EAFNOSUPPORT;
    return 0;
}

static int setup_unix(asyncio_server *s)
{
    s->listeners = calloc(1, sizeof(*s->listeners));
    if (s->listeners == NULL)
        return -ENOMEM;
    int fd = asyncio__sock_open(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    /* A socket file left by an earlier server is replaced; anything else
     * there makes bind fail with EADDRINUSE (as in asyncio). */
    struct stat st;
    if (stat(s->path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(s->path);
    struct sockaddr_un sun;
    socklen_t len = asyncio__sock_unix_addr(&sun, s->path);
    if (bind(fd, (struct sockaddr *)&sun, len) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return add_listener(s, fd);
}

static int setup_sock(asyncio_server *s)
{
    s->listeners = calloc(1, sizeof(*s->listeners));
    if (s->listeners == NULL)
        return -ENOMEM;
    int fd = s->sock;
    s->sock = -1;
    return add_listener(s, fd);
}

/* Unregister a done callback that has not run: its reference is ours to
 * drop if it will never run -- removed before being scheduled, or the loop
 * is closed (the ready queue was dropped, nothing is scheduled any more). */
static void drop_done_callback(asyncio_server *s, asyncio_future *f, asyncio_done_callback cb)
{
    if (asyncio_future_remove_done_callback(f, cb, s) > 0 || s->loop->closed)
        asyncio__ref_dec(&s->refs); /* never the last: the creation's is held */
}

/* The end of creation: listening (err 0), or failed, or cancelled. */
static void creation_done(asyncio_server *s, int err)
{
    asyncio_future *f = s->creating;
    s->creating = NULL;
    if (s->create_cb) {
        s->create_cb = 0;
        drop_done_callback(s, f, on_create_done);
    }
    if (s->gai != NULL) {
        drop_done_callback(s, s->gai, on_resolved);
        asyncio_future_cancel(s->gai);
        asyncio_future_unref(s->gai);
        s->gai = NULL;
    }
    asyncio__handle_forget(&s->setup_h);
    if (err == 0 && !asyncio_future_done(f)) {
        s->serving = 1;
        asyncio_server_ref(s);
        /* The creation's reference becomes the future's. */
        asyncio_future_set_result(f, s, server_unref_result);
    } else {
        s->closed = 1;
        close_listeners(s);
        if (!asyncio_future_done(f)) {
            if (err == -ECANCELED)
                asyncio_future_cancel(f);
            else
                asyncio_future_set_exception(f, err);
        }
        asyncio_server_unref(s); /* the creation's reference */
    }
    asyncio_future_unref(f);
}

/* The caller's future completed before the server listened: cancelled. */
static void on_create_done(asyncio_future *f, void *arg)
{
    asyncio_server *s = arg;
    s->create_cb = 0;
    if (s->creating == f)
        creation_done(s, -ECANCELED);
    asyncio_server_unref(s); /* this callback's reference */
}

static void on_resolved(asyncio_future *f, void *arg)
{
    asyncio_server *s = arg;
    if (s->gai == f) {
        struct addrinfo *ai = NULL;
        int err = asyncio_future_result(f, (void **)&ai);
        if (err == 0)
            err = setup_addrinfo(s, ai);
        s->gai = NULL; /* this callback has run: creation_done must not drop it */
        creation_done(s, err);
        asyncio_future_unref(f);
    }
    asyncio_server_unref(s); /* this callback's reference */
}

static void setup(void *arg)
{
    asyncio_server *s = arg;
    asyncio_handle_unref(s->setup_h);
    s->setup_h = NULL;
    creation_done(s, s->path != NULL ? setup_unix(s) : setup_sock(s));
}

static void on_loop_close(asyncio__closable *closable)
{
    asyncio_server *s = asyncio__container_of(closable, asyncio_server, closable);
    asyncio_server_ref(s);
    if (s->creating != NULL)
        creation_done(s, -ECANCELED);
    asyncio_server_close(s);
    complete_waiters(s, 1);
    asyncio__handle_forget(&s->wakeup_h);
    if (s->drain_h != NULL) {
        /* Dropped with the ready queue: it will never run. */
        asyncio__handle_forget(&s->drain_h);
        close_queued(s);
        asyncio_server_unref(s);
    }
    asyncio_server_unref(s);
}

static int check_options(const asyncio_server_options *o)
{
    /* NaN fails the comparisons too. */
    if (o->ssl != NULL && (!(o->ssl_handshake_timeout > 0) || !(o->ssl_shutdown_timeout > 0)))
        return -EINVAL;
    if (o->backlog < 0)
        return -EINVAL;
    return 0;
}

/* The server object and its creating future; `sock` is consumed. */
static int server_new(asyncio_loop *loop, asyncio_protocol_factory factory, void *arg,
                      const asyncio_server_options *o, int sock, asyncio_server **sp)
{
    asyncio_server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        if (sock >= 0)
            close(sock);
        return -ENOMEM;
    }
    asyncio__ref_init(&s->refs); /* the creation's */
    asyncio__list_init(&s->closable.link);
    s->closable.close = on_loop_close;
    asyncio_loop_ref(loop);
    s->loop = loop;
    s->factory = factory;
    s->arg = arg;
    s->backlog = o->backlog;
    s->sock = sock;
    s->reuse_address = o->reuse_address;
    s->reuse_port = o->reuse_port;
    if (o->ssl != NULL) {
        if (SSL_CTX_up_ref(o->ssl) != 1) {
            asyncio_server_unref(s);
            return -ENOMEM;
        }
        s->ssl = o->ssl;
        s->handshake_timeout = o->ssl_handshake_timeout;
        s->shutdown_timeout = o->ssl_shutdown_timeout;
    }
    int err = asyncio_loop_create_future(loop, &s->creating);
    if (err < 0) {
        s->creating = NULL;
        asyncio_server_unref(s);
        return err;
    }
    asyncio_server_ref(s);
    if ((err = asyncio_future_add_done_callback(s->creating, on_create_done, s)) < 0) {
        asyncio__ref_dec(&s->refs);
        asyncio_future_unref(s->creating);
        s->creating = NULL;
        asyncio_server_unref(s);
        return err;
    }
    s->create_cb = 1;
    asyncio__loop_add_closable(loop, &s->closable);
    *sp = s;
    return 0;
}

/* Hand the creating future to the caller, or give up on an error found
 * before anything was pending. */
static int server_started(asyncio_server *s, int err, asyncio_future **out)
{
    if (err < 0) {
        /* The future was never handed out: cancelled quietly. */
        creation_done(s, -ECANCELED);
        return err;
    }
    if (out != NULL) {
        asyncio_future_ref(s->creating);
        *out = s->creating;
    }
    return 0;
}

int asyncio_loop_create_server(asyncio_loop *loop, asyncio_protocol_factory factory, void *arg,
                               const char *host, int port, const asyncio_server_options *opts,
                               asyncio_future **out)
{
    static const asyncio_server_options defaults = ASYNCIO_SERVER_OPTIONS_INIT;
    const asyncio_server_options *o = opts != NULL ? opts : &defaults;
    int sock = o->sock;
    int err = 0;
    if (loop == NULL || factory == NULL || port < 0 || port > 65535 ||
        (sock >= 0 && host != NULL && host[0] != '\0'))
        err = -EINVAL;
    else if (loop->closed)
        err = ASYNCIO_ECLOSED;
    else if ((err = check_options(o)) == 0 && sock >= 0)
        err = asyncio__sock_adopt(sock, SOCK_STREAM, AF_UNSPEC);
    if (err < 0) {
        if (sock >= 0)
            close(sock); /* taken over on failure too */
        return err;
    }

    asyncio_server *s;
    if ((err = server_new(loop, factory, arg, o, sock, &s)) < 0)
        return err;
    if (sock >= 0) {
        err = asyncio_loop_call_soon(loop, setup, s, &s->setup_h);
        return server_started(s, err, out);
    }
    /* NULL or "": every interface (with AI_PASSIVE, the wildcards). */
    err = asyncio__sock_getaddrinfo(loop, host != NULL && host[0] != '\0' ? host : NULL, port,
                                    o->family, SOCK_STREAM, 0, o->flags, &s->gai);
    if (err < 0) {
        s->gai = NULL;
        return server_started(s, err, out);
    }
    asyncio_server_ref(s);
    if ((err = asyncio_future_add_done_callback(s->gai, on_resolved, s)) < 0)
        asyncio__ref_dec(&s->refs);
    return server_started(s, err, out);
}

int asyncio_loop_create_unix_server(asyncio_loop *loop, asyncio_protocol_factory factory, void *arg,
                                    const char *path, const asyncio_server_options *opts,
                                    asyncio_future **out)
{
    static const asyncio_server_options defaults = ASYNCIO_SERVER_OPTIONS_INIT;
    const asyncio_server_options *o = opts != NULL ? opts : &defaults;
    int sock = o->sock;
    struct sockaddr_un sun;
    int err = 0;
    if (loop == NULL || factory == NULL || (sock >= 0) == (path != NULL) ||
        (path != NULL && path[0] == '\0'))
        err = -EINVAL; /* exactly one of path and sock */
    else if (loop->closed)
        err = ASYNCIO_ECLOSED;
    else if (path != NULL && strlen(path) >= sizeof(sun.sun_path))
        err = -ENAMETOOLONG;
    else if ((err = check_options(o)) == 0 && sock >= 0)
        err = asyncio__sock_adopt(sock, SOCK_STREAM, AF_UNIX);
    if (err < 0) {
        if (sock >= 0)
            close(sock);
        return err;
    }

    asyncio_server *s;
    if ((err = server_new(loop, factory, arg, o, sock, &s)) < 0)
        return err;
    if (path != NULL && (s->path = strdup(path)) == NULL)
        return server_started(s, -ENOMEM, out);
    err = asyncio_loop_call_soon(loop, setup, s, &s->setup_h);
    return server_started(s, err, out);
}
