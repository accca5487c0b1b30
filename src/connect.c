/* Outgoing connections: create_connection and create_unix_connection.
 *
 * A connector is one create_connection call in flight.  Its stages:
 *   1. resolve the remote (and, with local_host, the local) address with
 *      asyncio_loop_getaddrinfo -- or, for a UNIX path or a socket the
 *      caller hands over, skip straight to 3 or 4;
 *   2. copy the addresses into `targets` (interleaved by family when
 *      asked) and try them: each attempt is an own non-blocking socket,
 *      connect() -> EINPROGRESS -> a one-shot EV_WRITE event -> SO_ERROR.
 *      Without happy eyeballs one attempt runs at a time; with it (RFC
 *      8305, asyncio's staggered_race) the next attempt starts when the
 *      delay since the last start has passed or as soon as the most recent
 *      attempt fails, and the first to connect wins;
 *   3. `finish` runs as a loop callback (never inside libevent's): it calls
 *      the protocol factory, which is user code, and hands the socket to
 *      asyncio__stream_new_socket, which completes the future after
 *      connection_made; or it fails the future with the last error.
 *      With TLS (ssl / use_default_ssl) it hands the socket to
 *      asyncio__tls_connect instead, which runs the handshake first and
 *      calls the factory only once it succeeded (tls.c).
 *
 * Lifetime: the connector is reference counted because future done
 * callbacks cannot be unscheduled once their future completes.  One
 * reference is "the operation" (dropped by terminate()), and each done
 * callback still registered on a future (the caller's future, the
 * resolver's futures) holds one, dropped when it runs, or by terminate()
 * when it will never run (removed before being scheduled, or the loop is
 * closed).  Handles (the finish call, the happy
 * eyeballs timer) hold none: terminate() cancels them, and a cancelled
 * handle never runs.  terminate() closes every socket and event, so a
 * cancelled or failed connection leaks no fd.
 *
 * Who terminates: the connector itself when it completes the future; the
 * caller's future completing first (cancelled: on_future_done); or
 * asyncio_loop_close (the closable), which cancels the future. */
#include "internal.h"

#include <event2/event.h>
#include <math.h>
#include <openssl/ssl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

/* One address to connect to, or to bind to before connecting. */
struct target {
    int family, proto;
    socklen_t len;
    struct sockaddr_storage addr;
};

struct connector;

/* A connect() in flight: fd >= 0 and ev pending. */
struct attempt {
    struct connector *c;
    int fd;
    struct event *ev;
    size_t index;
};

struct connector {
    asyncio__refcount refs;
    asyncio__closable closable;
    asyncio_loop *loop;
    asyncio_future *future; /* the caller's; we hold a reference */
    asyncio_protocol_factory factory;
    void *arg;
    int terminated;
    int future_cb; /* on_future_done registered, not run */

    asyncio_future *gai_remote, *gai_local;
    int want_local;

    struct target *targets;
    size_t ntargets, next;
    struct target *locals;
    size_t nlocals;
    struct attempt *attempts; /* parallel to targets */
    size_t active;            /* attempts in flight */
    size_t latest;            /* the most recently started attempt */
    double delay;             /* happy eyeballs; 0: one at a time */
    int interleave;
    asyncio_handle *delay_h;
    asyncio_handle *finish_h;
    int last_error;
    int fd; /* the connected socket, once there is one */

    /* TLS: a handshake (tls.c) between the socket and the factory. */
    int tls;
    SSL_CTX *ssl;          /* a reference; NULL: the default context */
    char *server_hostname; /* NULL or "": no host name check */
    double handshake_timeout, shutdown_timeout;
};

static void connector_unref(struct connector *c)
{
    if (!asyncio__ref_dec(&c->refs))
        return;
    asyncio_future_unref(c->future);
    asyncio_loop_unref(c->loop);
    SSL_CTX_free(c->ssl);
    free(c->server_hostname);
    free(c->targets);
    free(c->locals);
    free(c->attempts);
    free(c);
}

static void attempt_close(struct attempt *a)
{
    if (a->ev != NULL) {
        event_free(a->ev);
        a->ev = NULL;
        a->c->active--;
    }
    if (a->fd >= 0) {
        close(a->fd);
        a->fd = -1;
    }
}

static void on_resolved(asyncio_future *f, void *arg);
static void on_future_done(asyncio_future *f, void *arg);

/* Unregister a done callback that has not run: its reference is ours to
 * drop if it will never run -- removed before being scheduled, or the loop
 * is closed (the ready queue was dropped, nothing is scheduled any more). */
static void drop_done_callback(struct connector *c, asyncio_future *f, asyncio_done_callback cb)
{
    if (asyncio_future_remove_done_callback(f, cb, c) > 0 || c->loop->closed)
        asyncio__ref_dec(&c->refs); /* never the last: the operation's is held */
}

/* Drop a resolver future whose callback has not run. */
static void release_gai(struct connector *c, asyncio_future **f)
{
    if (*f == NULL)
        return;
    drop_done_callback(c, *f, on_resolved);
    asyncio_future_cancel(*f);
    asyncio_future_unref(*f);
    *f = NULL;
}

/* Stop everything and drop the operation's reference.  Idempotent. */
static void terminate(struct connector *c)
{
    if (c->terminated)
        return;
    c->terminated = 1;
    release_gai(c, &c->gai_remote);
    release_gai(c, &c->gai_local);
    for (size_t i = 0; c->attempts != NULL && i < c->ntargets; i++)
        attempt_close(&c->attempts[i]);
    asyncio__handle_forget(&c->delay_h);
    asyncio__handle_forget(&c->finish_h);
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    asyncio__loop_remove_closable(&c->closable);
    if (c->future_cb) {
        c->future_cb = 0;
        drop_done_callback(c, c->future, on_future_done);
    }
    connector_unref(c);
}

/* Fail the caller's future and stop. */
static void fail(struct connector *c, int err)
{
    asyncio_future_ref(c->future);
    asyncio_future *f = c->future;
    asyncio_loop_ref(c->loop);
    asyncio_loop *loop = c->loop;
    terminate(c); /* removes on_future_done first: we complete it ourselves */
    asyncio_future_set_exception(f, err);
    asyncio_future_unref(f);
    asyncio_loop_unref(loop);
}

/* The caller's future completed under us (cancelled, or the loop closed). */
static void on_future_done(asyncio_future *f, void *arg)
{
    struct connector *c = arg;
    c->future_cb = 0;
    terminate(c);
    connector_unref(c); /* this callback's reference */
}

/* Stop and cancel the caller's future (held across terminate, which may
 * drop the connector's reference to it). */
static void terminate_cancelled(struct connector *c)
{
    asyncio_future *f = c->future;
    asyncio_future_ref(f);
    terminate(c);
    asyncio_future_cancel(f);
    asyncio_future_unref(f);
}

static void on_loop_close(asyncio__closable *closable)
{
    terminate_cancelled(asyncio__container_of(closable, struct connector, closable));
}

/* ---- Finishing: the factory and the transport (a loop callback) ---------------- */

static void finish(void *arg)
{
    struct connector *c = arg;
    asyncio_handle_unref(c->finish_h);
    c->finish_h = NULL;
    if (c->fd < 0) {
        fail(c, c->last_error < 0 ? c->last_error : -ECONNREFUSED);
        return;
    }
    asyncio__sock_set_nodelay(c->fd);

    /* The factory is user code: it may cancel the future or close the
     * loop's other objects.  Keep what we need across it. */
    asyncio_loop *loop = c->loop;
    asyncio_future *f = c->future;
    asyncio_protocol_factory factory = c->factory;
    void *factory_arg = c->arg;
    asyncio_loop_ref(loop);
    asyncio_future_ref(f);
    int fd = c->fd;
    c->fd = -1;
    if (c->tls) {
        /* The handshake first; the factory runs once it succeeded. */
        SSL_CTX *ctx = c->ssl;
        char *hostname = c->server_hostname;
        double hs = c->handshake_timeout, sd = c->shutdown_timeout;
        c->ssl = NULL;
        c->server_hostname = NULL;
        terminate(c); /* may free the connector */
        int err = 0;
        if (asyncio_future_done(f)) /* cancelled by now */
            close(fd);
        else
            err = asyncio__tls_connect(loop, fd, ctx, hostname, hs, sd, factory, factory_arg, f);
        if (err < 0 && !asyncio_future_done(f))
            asyncio_future_set_exception(f, err);
        SSL_CTX_free(ctx); /* the SSL made from it holds its own reference */
        free(hostname);
        asyncio_future_unref(f);
        asyncio_loop_unref(loop);
        return;
    }
    terminate(c); /* may free the connector: nothing of it is used below */

    asyncio_protocol *protocol = NULL;
    if (!asyncio_future_done(f))
        protocol = factory(factory_arg);
    if (asyncio_future_done(f)) {
        /* Cancelled while the factory ran: the protocol never saw a
         * transport and stays the caller's. */
        close(fd);
    } else if (protocol == NULL) {
        close(fd);
        asyncio_future_set_exception(f, -ECONNABORTED);
    } else {
        int err = asyncio__stream_new_socket(loop, fd, protocol, NULL, f, NULL);
        if (err < 0 && !asyncio_future_done(f))
            asyncio_future_set_exception(f, err);
    }
    asyncio_future_unref(f);
    asyncio_loop_unref(loop);
}

static void schedule_finish(struct connector *c)
{
    if (c->finish_h != NULL)
        return;
    int err = asyncio_loop_call_soon(c->loop, finish, c, &c->finish_h);
    if (err < 0) {
        c->finish_h = NULL;
        /* Only a closed loop or no memory: nothing can run any more. */
        fail(c, err);
    }
}

/* ---- Attempts ----------------------------------------------------------------------- */

static int bind_local(struct connector *c, int fd, int family)
{
    int err = 0;
    for (size_t i = 0; i < c->nlocals; i++) {
        const struct target *l = &c->locals[i];
        if (l->family != family)
            continue;
        if (bind(fd, (const struct sockaddr *)&l->addr, l->len) == 0)
            return 0;
        err = -errno;
    }
    /* asyncio: the last bind error, or "no matching local address". */
    return err < 0 ? err : -EADDRNOTAVAIL;
}

static void on_writable(evutil_socket_t fd, short what, void *arg);

/* Start connecting to target i: 1 connected at once (the socket is in
 * c->fd), 0 in flight, or a negative error (nothing left open). */
static int attempt_start(struct connector *c, size_t i)
{
    const struct target *t = &c->targets[i];
    struct attempt *a = &c->attempts[i];
    int fd = asyncio__sock_open(t->family, SOCK_STREAM, t->proto);
    if (fd < 0)
        return fd;
    int err;
    if (c->want_local && (err = bind_local(c, fd, t->family)) < 0) {
        close(fd);
        return err;
    }
    int rc;
    do
        rc = connect(fd, (const struct sockaddr *)&t->addr, t->len);
    while (rc < 0 && errno == EINTR);
    if (rc == 0) {
        c->fd = fd;
        return 1;
    }
    if (errno != EINPROGRESS) {
        err = -errno;
        close(fd);
        return err;
    }
    a->ev = event_new(c->loop->base, fd, EV_WRITE, on_writable, a);
    if (a->ev == NULL || event_add(a->ev, NULL) < 0) {
        if (a->ev != NULL)
            event_free(a->ev);
        a->ev = NULL;
        close(fd);
        return -ENOMEM;
    }
    a->fd = fd;
    c->active++;
    return 0;
}

/* Someone connected: the others lose. */
static void won(struct connector *c)
{
    for (size_t i = 0; i < c->ntargets; i++)
        attempt_close(&c->attempts[i]);
    asyncio__handle_forget(&c->delay_h);
    c->next = c->ntargets;
    schedule_finish(c);
}

static void on_delay(void *arg);

/* Start the next attempt(s): skip addresses that fail at once, stop at the
 * first one in flight (arming the happy eyeballs timer) or connected. */
static void start_next(struct connector *c)
{
    asyncio__handle_forget(&c->delay_h);
    while (c->next < c->ntargets) {
        size_t i = c->next++;
        int rc = attempt_start(c, i);
        if (rc == 1) {
            won(c);
            return;
        }
        if (rc == 0) {
            c->latest = i;
            if (c->delay > 0 && c->next < c->ntargets &&
                asyncio_loop_call_later(c->loop, c->delay, on_delay, c, &c->delay_h) < 0)
                c->delay_h = NULL; /* no timer: the next starts when this one fails */
            return;
        }
        c->last_error = rc;
    }
    if (c->active == 0)
        schedule_finish(c); /* every address failed */
}

static void on_delay(void *arg)
{
    struct connector *c = arg;
    asyncio_handle_unref(c->delay_h);
    c->delay_h = NULL;
    start_next(c);
}

/* libevent: an attempt's socket became writable.  No user code runs here:
 * the result goes through `finish`, a loop callback. */
static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct attempt *a = arg;
    struct connector *c = a->c;
    if (asyncio_future_done(c->future))
        return; /* cancelled: on_future_done is queued and cleans up */
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    event_free(a->ev);
    a->ev = NULL;
    c->active--;
    if (soerr == 0) {
        c->fd = a->fd;
        a->fd = -1;
        won(c);
        return;
    }
    close(a->fd);
    a->fd = -1;
    c->last_error = -soerr;
    /* Sequentially every failure moves on; when racing only the failure of
     * the newest attempt starts the next early (staggered_race). */
    if (c->delay <= 0 || a->index == c->latest)
        start_next(c);
    else if (c->active == 0 && c->next >= c->ntargets)
        schedule_finish(c);
}

/* ---- Resolution ----------------------------------------------------------------------- */

/* Copy a getaddrinfo list into targets. */
static int copy_addrinfo(const struct addrinfo *ai, struct target **out, size_t *n)
{
    size_t count = 0;
    for (const struct addrinfo *p = ai; p != NULL; p = p->ai_next)
        if (p->ai_addr != NULL && p->ai_addrlen <= sizeof(struct sockaddr_storage))
            count++;
    *n = 0;
    *out = NULL;
    if (count == 0)
        return ASYNCIO_EAI_NONAME; /* asyncio: "getaddrinfo() returned empty list" */
    struct target *t = calloc(count, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    size_t k = 0;
    for (const struct addrinfo *p = ai; p != NULL; p = p->ai_next) {
        if (p->ai_addr == NULL || p->ai_addrlen > sizeof(struct sockaddr_storage))
            continue;
        t[k].family = p->ai_family;
        t[k].proto = p->ai_protocol;
        t[k].len = p->ai_addrlen;
        memcpy(&t[k].addr, p->ai_addr, p->ai_addrlen);
        k++;
    }
    *out = t;
    *n = count;
    return 0;
}

/* asyncio's _interleave_addrinfos: group by family in order of first
 * appearance; `first` addresses of the first family, then one of each
 * family in turn. */
static int interleave(struct target *t, size_t n, size_t first)
{
    struct target *out = malloc(n * sizeof(*out));
    int *families = malloc(n * sizeof(*families));
    size_t *pos = calloc(n, sizeof(*pos));
    if (out == NULL || families == NULL || pos == NULL) {
        free(out);
        free(families);
        free(pos);
        return -ENOMEM;
    }
    size_t nfam = 0;
    for (size_t i = 0; i < n; i++) {
        size_t f = 0;
        while (f < nfam && families[f] != t[i].family)
            f++;
        if (f == nfam)
            families[nfam++] = t[i].family;
    }
    /* pos[f]: the index in t from which to look for family f's next one. */
    size_t k = 0;
    for (size_t j = 0; j + 1 < first; j++) {
        while (pos[0] < n && t[pos[0]].family != families[0])
            pos[0]++;
        if (pos[0] == n)
            break;
        out[k++] = t[pos[0]++];
    }
    while (k < n) {
        for (size_t f = 0; f < nfam; f++) {
            while (pos[f] < n && t[pos[f]].family != families[f])
                pos[f]++;
            if (pos[f] < n)
                out[k++] = t[pos[f]++];
        }
    }
    memcpy(t, out, n * sizeof(*t));
    free(out);
    free(families);
    free(pos);
    return 0;
}

/* Both lists are known: order them and start connecting. */
static void start_connecting(struct connector *c)
{
    int err = 0;
    if (c->interleave > 0)
        err = interleave(c->targets, c->ntargets, (size_t)c->interleave);
    if (err < 0) {
        fail(c, err);
        return;
    }
    c->attempts = calloc(c->ntargets, sizeof(*c->attempts));
    if (c->attempts == NULL) {
        fail(c, -ENOMEM);
        return;
    }
    for (size_t i = 0; i < c->ntargets; i++) {
        c->attempts[i].c = c;
        c->attempts[i].fd = -1;
        c->attempts[i].index = i;
    }
    start_next(c);
}

static void on_resolved(asyncio_future *f, void *arg)
{
    struct connector *c = arg;
    if (c->terminated) {
        connector_unref(c);
        return;
    }
    struct addrinfo *ai = NULL;
    int err = asyncio_future_result(f, (void **)&ai);
    if (err == 0) {
        if (f == c->gai_remote)
            err = copy_addrinfo(ai, &c->targets, &c->ntargets);
        else
            err = copy_addrinfo(ai, &c->locals, &c->nlocals);
    }
    /* The addresses are copied: the resolver's future can go. */
    if (f == c->gai_remote)
        c->gai_remote = NULL;
    else
        c->gai_local = NULL;
    asyncio_future_unref(f);
    if (err < 0)
        fail(c, err);
    else if (c->gai_remote == NULL && c->gai_local == NULL)
        start_connecting(c);
    connector_unref(c); /* this callback's reference */
}

static int resolve(struct connector *c, const char *host, int port,
                   const asyncio_connection_options *o, asyncio_future **slot)
{
    int err = asyncio__sock_getaddrinfo(c->loop, host, port, o->family, SOCK_STREAM, o->proto,
                                        o->flags, slot);
    if (err < 0) {
        *slot = NULL;
        return err;
    }
    asyncio__ref_inc(&c->refs);
    err = asyncio_future_add_done_callback(*slot, on_resolved, c);
    if (err < 0) {
        asyncio__ref_dec(&c->refs);
        asyncio_future_cancel(*slot);
        asyncio_future_unref(*slot);
        *slot = NULL;
    }
    return err;
}

/* ---- The calls ---------------------------------------------------------------------- */

static const asyncio_connection_options default_options = ASYNCIO_CONNECTION_OPTIONS_INIT;

/* The checks both calls make, in this order: `bad`, the call's own
 * arguments are wrong; the loop is closed; the common options; `more`, the
 * call's own check of the options. */
static int check_call(asyncio_loop *loop, asyncio_protocol_factory factory, int bad,
                      const asyncio_connection_options *o, int more)
{
    if (loop == NULL || factory == NULL || bad)
        return -EINVAL;
    if (loop->closed)
        return ASYNCIO_ECLOSED;
    int tls = o->ssl != NULL || o->use_default_ssl;
    if (o->server_hostname != NULL && !tls) /* asyncio: only meaningful with ssl */
        return -EINVAL;
    /* NaN fails the comparisons too. */
    if (tls && (!(o->ssl_handshake_timeout > 0) || !(o->ssl_shutdown_timeout > 0)))
        return -EINVAL;
    if (isnan(o->happy_eyeballs_delay) || o->happy_eyeballs_delay < 0 || o->interleave < 0)
        return -EINVAL;
    if (o->local_port < 0 || o->local_port > 65535)
        return -EINVAL;
    return more;
}

/* TLS without a host to name: the caller must say which name to verify
 * (server_hostname, "" for none), as asyncio insists. */
static int tls_needs_a_name(const asyncio_connection_options *o)
{
    return (o->ssl != NULL || o->use_default_ssl) && o->server_hostname == NULL ? -EINVAL : 0;
}

/* Everything common to both calls, once the arguments are checked.  `sock`
 * is consumed on every path. */
static int connector_new(asyncio_loop *loop, asyncio_protocol_factory factory, void *arg,
                         const asyncio_connection_options *o, const char *host, int sock,
                         asyncio_future **out, struct connector **cp)
{
    struct connector *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        if (sock >= 0)
            close(sock);
        return -ENOMEM;
    }
    asyncio__ref_init(&c->refs);
    asyncio__list_init(&c->closable.link);
    c->closable.close = on_loop_close;
    asyncio_loop_ref(loop);
    c->loop = loop;
    c->factory = factory;
    c->arg = arg;
    c->fd = sock;
    c->delay = o->happy_eyeballs_delay;
    c->interleave = o->interleave > 0 ? o->interleave : (c->delay > 0 ? 1 : 0);
    int err = 0;
    if (o->ssl != NULL || o->use_default_ssl) {
        c->tls = 1;
        if (o->ssl != NULL && SSL_CTX_up_ref(o->ssl) == 1)
            c->ssl = o->ssl;
        /* As asyncio: the host name checked is the host connected to. */
        const char *name = o->server_hostname != NULL ? o->server_hostname : host;
        if ((o->ssl != NULL && c->ssl == NULL) ||
            (name != NULL && (c->server_hostname = strdup(name)) == NULL))
            err = -ENOMEM;
        c->handshake_timeout = o->ssl_handshake_timeout;
        c->shutdown_timeout = o->ssl_shutdown_timeout;
    }
    if (err == 0)
        err = asyncio_loop_create_future(loop, &c->future);
    if (err < 0) {
        c->future = NULL;
        terminate(c);
        return err;
    }
    asyncio__ref_inc(&c->refs);
    err = asyncio_future_add_done_callback(c->future, on_future_done, c);
    if (err < 0) {
        asyncio__ref_dec(&c->refs);
        terminate(c);
        return err;
    }
    c->future_cb = 1;
    asyncio__loop_add_closable(loop, &c->closable);
    if (out != NULL) {
        asyncio_future_ref(c->future);
        *out = c->future;
    }
    *cp = c;
    return 0;
}

/* A failure after connector_new: the caller's future exists already.  The
 * call reports the error; the future is cancelled so that nobody waits. */
static int abandon(struct connector *c, asyncio_future **out, int err)
{
    terminate_cancelled(c);
    if (out != NULL) {
        asyncio_future_unref(*out);
        *out = NULL;
    }
    return err;
}

/* Both calls, once their arguments are checked (`err`): adopt the
 * caller's socket (of `family`, or any with AF_UNSPEC) -- or close it on any
 * error: it is taken over on failure too -- and make the connector.  With a
 * socket the connection is there already, finish is scheduled and *cp is
 * NULL; otherwise *cp is the connector, waiting for its targets. */
static int connector_start(asyncio_loop *loop, asyncio_protocol_factory factory, void *arg,
                           const asyncio_connection_options *o, const char *host, int family,
                           int err, asyncio_future **out, struct connector **cp)
{
    int sock = o->sock;
    if (err == 0 && sock >= 0)
        err = asyncio__sock_adopt(sock, SOCK_STREAM, family);
    if (err < 0) {
        if (sock >= 0)
            close(sock);
        return err;
    }
    struct connector *c;
    if ((err = connector_new(loop, factory, arg, o, host, sock, out, &c)) < 0)
        return err;
    *cp = NULL;
    if (sock >= 0)
        schedule_finish(c);
    else
        *cp = c;
    return 0;
}

int asyncio_loop_create_connection(asyncio_loop *loop, asyncio_protocol_factory factory, void *arg,
                                   const char *host, int port,
                                   const asyncio_connection_options *opts, asyncio_future **out)
{
    const asyncio_connection_options *o = opts != NULL ? opts : &default_options;
    int err = check_call(loop, factory, port < 0 || port > 65535 || (o->sock >= 0 && host != NULL),
                         o, host == NULL ? tls_needs_a_name(o) : 0);
    struct connector *c;
    if ((err = connector_start(loop, factory, arg, o, host, AF_UNSPEC, err, out, &c)) < 0 ||
        c == NULL)
        return err;
    c->want_local = o->local_host != NULL;
    if ((err = resolve(c, host, port, o, &c->gai_remote)) < 0 ||
        (c->want_local && (err = resolve(c, o->local_host, o->local_port, o, &c->gai_local)) < 0))
        return abandon(c, out, err);
    return 0;
}

int asyncio_loop_create_unix_connection(asyncio_loop *loop, asyncio_protocol_factory factory,
                                        void *arg, const char *path,
                                        const asyncio_connection_options *opts,
                                        asyncio_future **out)
{
    const asyncio_connection_options *o = opts != NULL ? opts : &default_options;
    struct sockaddr_un sun;
    int more = 0;
    if (o->local_host != NULL || (path != NULL && path[0] == '\0'))
        more = -EINVAL;
    else if (path != NULL && strlen(path) >= sizeof(sun.sun_path))
        more = -ENAMETOOLONG;
    if (more == 0)
        more = tls_needs_a_name(o);
    /* Exactly one of path and sock. */
    int err = check_call(loop, factory, (o->sock >= 0) == (path != NULL), o, more);
    struct connector *c;
    if ((err = connector_start(loop, factory, arg, o, NULL, AF_UNIX, err, out, &c)) < 0 ||
        c == NULL)
        return err;
    c->targets = calloc(1, sizeof(*c->targets));
    if (c->targets == NULL)
        return abandon(c, out, -ENOMEM);
    c->targets[0].family = AF_UNIX;
    c->targets[0].len = asyncio__sock_unix_addr(&sun, path);
    memcpy(&c->targets[0].addr, &sun, c->targets[0].len);
    c->ntargets = 1;
    /* Even a UNIX connect that succeeds or fails at once completes the
     * future from the loop (through `finish`), like every other path. */
    start_connecting(c);
    return 0;
}
