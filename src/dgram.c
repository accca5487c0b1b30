/* Datagram endpoints: asyncio_loop_create_datagram_endpoint and the UDP
 * transport.
 *
 * libevent has no datagram bufferevent, so the transport owns a plain
 * socket and two events on it: EV_READ|EV_PERSIST, added once
 * connection_made has run, and EV_WRITE|EV_PERSIST, added only while
 * datagrams wait in the send queue.  The libevent callbacks never call
 * user code: each only schedules a loop callback (at most one of each kind
 * pending), which does the syscalls and calls the protocol.  A readiness
 * reads at most READ_BATCH datagrams so that one busy socket cannot starve
 * the rest of the loop; the events are level-triggered, so what is left is
 * reported again by the next poll.
 *
 * Creation: resolve local and remote with asyncio_loop_getaddrinfo (never
 * completed inline), then, in a loop callback, try each (local, remote)
 * pair of one family in order: socket, options, bind, connect.  The first
 * that works gets a protocol from the factory and becomes the transport;
 * the error of the last attempt fails the future otherwise.  The
 * transport's memory is allocated before the factory runs so that nothing
 * can fail between "the user made a protocol" and "the protocol will hear
 * connection_lost".
 *
 * Lifetime: the transport holds one reference on itself from creation
 * until connection_lost has been delivered.  Every loop callback it
 * schedules borrows that reference and is remembered in a slot
 * (made_h/read_h/write_h/lost_h), so delivering connection_lost can cancel
 * whatever is still queued before the self-reference goes; the loop drops
 * a cancelled handle without touching its argument.  connection_lost is
 * delivered only from the lost_h callback or from loop close, never from
 * inside another of the transport's callbacks, so user code run from those
 * cannot free the transport under them.
 *
 * Loop close: both the pending creation and the open transport register
 * an asyncio__closable.  A pending creation fails its future with
 * ASYNCIO_ECLOSED; an open transport is aborted and its protocol hears
 * connection_lost(ASYNCIO_ECLOSED) once -- even if connection_made had not
 * run yet, because connection_lost is where a protocol frees itself.
 *
 * Everything here belongs to the loop's thread. */
#include "internal.h"

#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bigger than any UDP payload (65507 over IPv4, 65527 over IPv6), so a
 * datagram is never truncated. */
#define DGRAM_MAX 65536
/* Datagrams read per readiness before other callbacks get their turn
 * (libuv reads 32 per readiness too). */
#define READ_BATCH 32
/* asyncio's write buffer limits. */
#define DEFAULT_HIGH (64 * 1024)

/* ---- The transport ------------------------------------------------------------ */

struct packet {
    struct packet *next;
    size_t len;
    socklen_t addrlen; /* 0: to the connected peer */
    struct sockaddr_storage addr;
    unsigned char data[];
};

typedef struct dgram {
    asyncio_transport base; /* first: the public calls cast */
    asyncio__closable closable;
    int fd; /* -1 once closed */
    int family;
    struct event *read_ev, *write_ev;
    asyncio_handle *made_h, *read_h, *write_h, *lost_h;
    int lost_error;         /* what lost_h delivers */
    asyncio_future *waiter; /* the creation future until on_made */

    struct packet *head, *tail;
    size_t buffered; /* payload bytes queued */
    size_t high, low;

    struct sockaddr_storage sockname, peername;
    socklen_t sockname_len, peername_len; /* peername_len 0: not connected */

    unsigned char closing; /* close, abort or loop close happened */
    unsigned char aborted;
    unsigned char reading;        /* read_ev is added */
    unsigned char writing_paused; /* pause_writing was called */
    unsigned char lost;           /* connection_lost was delivered */
} dgram;

static void on_readable(void *arg);
static void on_writable(void *arg);
static void on_lost(void *arg);

/* Schedule cb(d) unless one is queued in *slot already.  The slot keeps a
 * reference to the handle so the call can be cancelled. */
static void schedule(dgram *d, asyncio_handle **slot, asyncio_callback cb)
{
    if (*slot == NULL)
        asyncio_loop_call_soon(d->base.loop, cb, d, slot);
}

/* At the top of a scheduled callback: it is no longer queued. */
static void release_slot(asyncio_handle **slot)
{
    asyncio_handle_unref(*slot);
    *slot = NULL;
}

static void drop_queue(dgram *d)
{
    struct packet *p = d->head;
    while (p != NULL) {
        struct packet *next = p->next;
        free(p);
        p = next;
    }
    d->head = d->tail = NULL;
    d->buffered = 0;
}

static void error_received(dgram *d, int error)
{
    asyncio_protocol *p = d->base.protocol;
    if (p->ops->error_received != NULL)
        p->ops->error_received(p, error);
}

static void maybe_pause(dgram *d)
{
    if (d->writing_paused || d->buffered <= d->high)
        return;
    d->writing_paused = 1;
    asyncio_protocol *p = d->base.protocol;
    if (p->ops->pause_writing != NULL)
        p->ops->pause_writing(p);
}

static void maybe_resume(dgram *d)
{
    if (!d->writing_paused || d->buffered > d->low)
        return;
    d->writing_paused = 0;
    asyncio_protocol *p = d->base.protocol;
    if (p->ops->resume_writing != NULL)
        p->ops->resume_writing(p);
}

static void schedule_lost(dgram *d, int error)
{
    if (d->lost_h != NULL || d->lost)
        return;
    d->lost_error = error;
    schedule(d, &d->lost_h, on_lost);
}

/* Tear everything down and tell the protocol, once.  May free `d` (the
 * self-reference goes last): the caller must not touch it afterwards. */
static void deliver_lost(dgram *d, int error)
{
    if (d->lost)
        return;
    d->lost = 1;
    d->closing = 1;
    asyncio__handle_forget(&d->made_h);
    asyncio__handle_forget(&d->read_h);
    asyncio__handle_forget(&d->write_h);
    asyncio__handle_forget(&d->lost_h);
    /* event_free deletes the event first: libevent must forget the fd
     * before it is closed (and its number reused). */
    if (d->read_ev != NULL)
        event_free(d->read_ev);
    if (d->write_ev != NULL)
        event_free(d->write_ev);
    d->read_ev = d->write_ev = NULL;
    d->reading = 0;
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    drop_queue(d);
    asyncio__loop_remove_closable(&d->closable);

    /* Only loop close gets here before on_made: the creation fails too. */
    if (d->waiter != NULL) {
        if (!asyncio_future_done(d->waiter))
            asyncio_future_set_exception(d->waiter, error < 0 ? error : -ECANCELED);
        asyncio_future_unref(d->waiter);
        d->waiter = NULL;
    }

    asyncio_protocol *p = d->base.protocol;
    if (p->ops->connection_lost != NULL)
        p->ops->connection_lost(p, error);
    asyncio_transport_unref(&d->base);
}

static void on_lost(void *arg)
{
    dgram *d = arg;
    release_slot(&d->lost_h);
    deliver_lost(d, d->lost_error);
}

/* libevent callbacks: schedule, never call user code here. */
static void on_read_event(evutil_socket_t fd, short what, void *arg)
{
    dgram *d = arg;
    schedule(d, &d->read_h, on_readable);
}

static void on_write_event(evutil_socket_t fd, short what, void *arg)
{
    dgram *d = arg;
    schedule(d, &d->write_h, on_writable);
}

static void on_readable(void *arg)
{
    dgram *d = arg;
    release_slot(&d->read_h);
    if (d->closing)
        return;
    /* Per readiness rather than per transport: an endpoint costs no 64 KiB
     * while idle, and one malloc per batch is noise beside the syscalls. */
    unsigned char *buf = malloc(DGRAM_MAX);
    if (buf == NULL)
        return; /* level-triggered: the next poll reports the socket again */
    asyncio_protocol *p = d->base.protocol;
    for (int i = 0; i < READ_BATCH && !d->closing; i++) {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        ssize_t n = recvfrom(d->fd, buf, DGRAM_MAX, 0, (struct sockaddr *)&ss, &sslen);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            /* A pending socket error, e.g. ECONNREFUSED from an ICMP port
             * unreachable on a connected socket: the endpoint lives on. */
            error_received(d, -errno);
            continue;
        }
        if (p->ops->datagram_received != NULL)
            p->ops->datagram_received(p, buf, (size_t)n, (const struct sockaddr *)&ss, sslen);
    }
    free(buf);
}

static ssize_t send_one(dgram *d, const void *data, size_t len, const struct sockaddr *addr,
                        socklen_t addrlen)
{
    ssize_t n;
    do
        n = sendto(d->fd, data, len, MSG_NOSIGNAL, addr, addrlen);
    while (n < 0 && errno == EINTR);
    return n;
}

static void on_writable(void *arg)
{
    dgram *d = arg;
    release_slot(&d->write_h);
    if (d->aborted || d->lost)
        return;
    while (d->head != NULL) {
        struct packet *p = d->head;
        ssize_t n = send_one(d, p->data, p->len,
                             p->addrlen ? (const struct sockaddr *)&p->addr : NULL, p->addrlen);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* still queued; write_ev stays added */
        int error = n < 0 ? -errno : 0;
        d->head = p->next;
        if (d->head == NULL)
            d->tail = NULL;
        d->buffered -= p->len;
        free(p);
        /* The datagram is dropped either way, as asyncio does. */
        if (error < 0) {
            error_received(d, error);
            if (d->aborted)
                return;
        }
    }
    event_del(d->write_ev);
    maybe_resume(d);
    if (d->closing && !d->aborted && d->head == NULL)
        schedule_lost(d, 0);
}

/* 1 if two socket addresses of the endpoint's family name the same peer. */
static int same_address(const struct sockaddr *a, const struct sockaddr_storage *b)
{
    if (a->sa_family != b->ss_family)
        return 0;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

static int dgram_sendto(asyncio_transport *t, const void *data, size_t len,
                        const struct sockaddr *addr, socklen_t addrlen)
{
    dgram *d = (dgram *)t;
    if (d->closing)
        return -EPIPE;
    if (addr != NULL) {
        socklen_t need =
            d->family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        if (addr->sa_family != d->family || addrlen < need ||
            addrlen > sizeof(struct sockaddr_storage))
            return -EINVAL;
        if (d->peername_len > 0) {
            /* asyncio accepts the connected address itself and refuses
             * any other; the socket would silently send elsewhere. */
            if (!same_address(addr, &d->peername))
                return -EISCONN;
            addr = NULL;
            addrlen = 0;
        }
    } else if (d->peername_len == 0) {
        return -EDESTADDRREQ;
    }
    if (len > DGRAM_MAX) {
        /* Larger than any datagram: the kernel's verdict, reported the way
         * every sendto error is, without copying the data first. */
        error_received(d, -EMSGSIZE);
        return 0;
    }

    if (d->head == NULL) {
        ssize_t n = send_one(d, data, len, addr, addrlen);
        if (n >= 0)
            return 0;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            error_received(d, -errno);
            return 0;
        }
    }

    struct packet *p = malloc(sizeof(*p) + len);
    if (p == NULL)
        return -ENOMEM;
    p->next = NULL;
    p->len = len;
    p->addrlen = addr != NULL ? addrlen : 0;
    if (addr != NULL)
        memcpy(&p->addr, addr, addrlen);
    if (len > 0)
        memcpy(p->data, data, len);
    if (d->tail != NULL) {
        d->tail->next = p;
    } else {
        d->head = p;
        event_add(d->write_ev, NULL);
    }
    d->tail = p;
    d->buffered += len;
    maybe_pause(d);
    return 0;
}

static int dgram_close(asyncio_transport *t)
{
    dgram *d = (dgram *)t;
    if (d->closing)
        return 0;
    d->closing = 1;
    if (d->reading)
        event_del(d->read_ev);
    d->reading = 0;
    asyncio__handle_forget(&d->read_h);
    if (d->head == NULL)
        schedule_lost(d, 0);
    return 0;
}

static int dgram_abort(asyncio_transport *t)
{
    dgram *d = (dgram *)t;
    if (d->aborted || d->lost)
        return 0;
    d->closing = 1;
    d->aborted = 1;
    if (d->reading)
        event_del(d->read_ev);
    d->reading = 0;
    event_del(d->write_ev);
    asyncio__handle_forget(&d->read_h);
    asyncio__handle_forget(&d->write_h);
    drop_queue(d);
    schedule_lost(d, 0);
    return 0;
}

static int dgram_is_closing(asyncio_transport *t) { return ((dgram *)t)->closing; }

static int dgram_set_limits(asyncio_transport *t, size_t high, size_t low)
{
    dgram *d = (dgram *)t;
    if (high == 0 && low == 0) {
        high = DEFAULT_HIGH;
        low = DEFAULT_HIGH / 4;
    } else if (high == 0) {
        if (low > SIZE_MAX / 4)
            return -EINVAL;
        high = low * 4; /* asyncio's default for a given low */
    } else if (low == 0) {
        low = high / 4;
    }
    if (low > high)
        return -EINVAL;
    d->high = high;
    d->low = low;
    maybe_pause(d);
    return 0;
}

static size_t dgram_buffer_size(asyncio_transport *t) { return ((dgram *)t)->buffered; }

static void *dgram_extra_info(asyncio_transport *t, const char *name)
{
    dgram *d = (dgram *)t;
    if (strcmp(name, "sockname") == 0) {
        /* Asked afresh: an unbound socket gets its port at the first
         * sendto. */
        if (d->fd >= 0) {
            socklen_t len = sizeof(d->sockname);
            if (getsockname(d->fd, (struct sockaddr *)&d->sockname, &len) == 0)
                d->sockname_len = len;
        }
        return d->sockname_len > 0 ? &d->sockname : NULL;
    }
    if (strcmp(name, "peername") == 0)
        return d->peername_len > 0 ? &d->peername : NULL;
    if (strcmp(name, "socket") == 0)
        return d->fd >= 0 ? &d->fd : NULL;
    return NULL;
}

static void dgram_destroy(asyncio_transport *t)
{
    dgram *d = (dgram *)t;
    /* The self-reference is released only by deliver_lost: by now the
     * socket, the events and the queue are gone. */
    free(d);
}

static const asyncio__transport_ops dgram_ops = {
    .kind = "datagram",
    .close = dgram_close,
    .abort = dgram_abort,
    .is_closing = dgram_is_closing,
    .set_write_buffer_limits = dgram_set_limits,
    .get_write_buffer_size = dgram_buffer_size,
    .get_extra_info = dgram_extra_info,
    .sendto = dgram_sendto,
    .destroy = dgram_destroy,
};

static void dgram_closable_close(asyncio__closable *c)
{
    deliver_lost(asyncio__container_of(c, dgram, closable), ASYNCIO_ECLOSED);
}

static void unref_transport_result(void *t) { asyncio_transport_unref(t); }

/* connection_made, then reading, then the creation future. */
static void on_made(void *arg)
{
    dgram *d = arg;
    release_slot(&d->made_h);
    asyncio_protocol *p = d->base.protocol;
    if (p->ops->connection_made != NULL)
        p->ops->connection_made(p, &d->base);
    if (!d->closing && event_add(d->read_ev, NULL) == 0)
        d->reading = 1;

    asyncio_future *w = d->waiter;
    d->waiter = NULL;
    if (asyncio_future_cancelled(w) == 1) {
        /* Whoever cancelled will never see this transport: close it (the
         * protocol hears connection_lost), so no socket is left behind. */
        dgram_close(&d->base);
    } else if (asyncio_future_done(w) == 0) {
        asyncio_transport_ref(&d->base);
        asyncio_future_set_result(w, d, unref_transport_result);
    }
    asyncio_future_unref(w);
}

/* ---- Opening the socket ------------------------------------------------------- */

static int open_socket(int family, int proto, const struct addrinfo *local,
                       const struct addrinfo *remote, const asyncio_datagram_options *o)
{
    int fd = asyncio__sock_open(family, SOCK_DGRAM, proto);
    if (fd < 0)
        return fd;
    unsigned opts = (o->reuse_address ? ASYNCIO__SOCK_REUSEADDR : 0) |
                    (o->allow_broadcast ? ASYNCIO__SOCK_BROADCAST : 0);
    int err = asyncio__sock_setopts(fd, opts);
    if (!err && local != NULL && bind(fd, local->ai_addr, local->ai_addrlen) < 0)
        err = -errno;
    if (!err && remote != NULL && connect(fd, remote->ai_addr, remote->ai_addrlen) < 0)
        err = -errno;
    if (err < 0) {
        close(fd);
        return err;
    }
    return fd;
}

/* Try the (local, remote) pairs of one family in asyncio's order.  Returns
 * the socket, or the last attempt's error; *connected_to is the remote
 * address that worked. */
static int open_first(const asyncio_datagram_options *o, const struct addrinfo *local,
                      const struct addrinfo *remote, const struct addrinfo **connected_to)
{
    int err = -EAFNOSUPPORT; /* no local and remote address of one family */
    *connected_to = NULL;
    if (remote != NULL) {
        for (const struct addrinfo *r = remote; r != NULL; r = r->ai_next) {
            if (local == NULL) {
                err = open_socket(r->ai_family, r->ai_protocol, NULL, r, o);
                if (err >= 0) {
                    *connected_to = r;
                    return err;
                }
                continue;
            }
            for (const struct addrinfo *l = local; l != NULL; l = l->ai_next) {
                if (l->ai_family != r->ai_family)
                    continue;
                err = open_socket(r->ai_family, r->ai_protocol, l, r, o);
                if (err >= 0) {
                    *connected_to = r;
                    return err;
                }
            }
        }
        return err;
    }
    if (local != NULL) {
        for (const struct addrinfo *l = local; l != NULL; l = l->ai_next) {
            err = open_socket(l->ai_family, l->ai_protocol, l, NULL, o);
            if (err >= 0)
                return err;
        }
        return err;
    }
    return open_socket(o->family, o->proto, NULL, NULL, o);
}

/* ---- Creation ------------------------------------------------------------------- */

/* A creation in progress.  `refs` counts the callbacks that may still run
 * with it as their argument, plus the creating call itself. */
typedef struct create {
    asyncio__closable closable;
    asyncio_loop *loop;
    asyncio_future *future; /* the caller's future */
    asyncio_protocol_factory factory;
    void *arg;
    asyncio_datagram_options opts;
    asyncio_future *resolving[2]; /* local, remote (NULL: not resolved) */
    asyncio_handle *start_h;      /* nothing to resolve: the open step */
    int refs;
    int done; /* the open step ran, or will not */
} create;

static void create_free(create *c)
{
    asyncio__loop_remove_closable(&c->closable);
    for (int i = 0; i < 2; i++) {
        /* A lookup that failed after the creation was cancelled is not an
         * error anybody missed: mark it seen before letting it go. */
        if (c->resolving[i] != NULL && asyncio_future_done(c->resolving[i]) == 1)
            asyncio_future_exception(c->resolving[i]);
        asyncio_future_unref(c->resolving[i]);
    }
    asyncio_handle_unref(c->start_h);
    asyncio_future_unref(c->future);
    free(c);
}

static void create_release(create *c)
{
    if (--c->refs == 0)
        create_free(c);
}

/* Resolution is over: make the socket, the protocol and the transport. */
static void open_endpoint(create *c)
{
    asyncio_future *f = c->future;
    c->done = 1;
    if (asyncio_future_done(f))
        return; /* cancelled while resolving: no socket was made */

    struct addrinfo *ai[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        if (c->resolving[i] == NULL)
            continue;
        void *r = NULL;
        int err = asyncio_future_result(c->resolving[i], &r);
        if (err == 0 && r == NULL)
            err = ASYNCIO_EAI_NONAME; /* asyncio: "getaddrinfo() returned empty list" */
        if (err < 0) {
            asyncio_future_set_exception(f, err);
            return;
        }
        ai[i] = r;
    }

    const struct addrinfo *remote = NULL;
    int fd = open_first(&c->opts, ai[0], ai[1], &remote);
    if (fd < 0) {
        asyncio_future_set_exception(f, fd);
        return;
    }

    /* Everything that can fail for want of memory happens before the
     * factory: after it, the protocol is owed connection_lost. */
    int err = -ENOMEM;
    dgram *d = calloc(1, sizeof(*d));
    if (d == NULL)
        goto fail;
    d->fd = fd;
    d->read_ev = event_new(c->loop->base, fd, EV_READ | EV_PERSIST, on_read_event, d);
    d->write_ev = event_new(c->loop->base, fd, EV_WRITE | EV_PERSIST, on_write_event, d);
    if (d->read_ev == NULL || d->write_ev == NULL)
        goto fail;
    d->sockname_len = sizeof(d->sockname);
    if (getsockname(fd, (struct sockaddr *)&d->sockname, &d->sockname_len) < 0) {
        err = -errno;
        goto fail;
    }
    d->family = d->sockname.ss_family;
    if (remote != NULL) {
        memcpy(&d->peername, remote->ai_addr, remote->ai_addrlen);
        d->peername_len = remote->ai_addrlen;
    }
    d->high = DEFAULT_HIGH;
    d->low = DEFAULT_HIGH / 4;

    asyncio_protocol *protocol = c->factory(c->arg);
    if (protocol == NULL) {
        err = -ECONNABORTED; /* the factory refused the endpoint */
        goto fail;
    }
    asyncio__transport_init(&d->base, &dgram_ops, c->loop, protocol); /* the self-reference */
    d->closable.close = dgram_closable_close;
    asyncio__loop_add_closable(c->loop, &d->closable);
    asyncio_future_ref(f);
    d->waiter = f;
    schedule(d, &d->made_h, on_made);
    if (d->made_h == NULL)
        deliver_lost(d, -ENOMEM); /* fails the future as well */
    return;

fail:
    if (d != NULL) {
        if (d->read_ev != NULL)
            event_free(d->read_ev);
        if (d->write_ev != NULL)
            event_free(d->write_ev);
        free(d);
    }
    close(fd);
    if (!asyncio_future_done(f)) /* the factory may have cancelled it */
        asyncio_future_set_exception(f, err);
}

static void on_resolved(asyncio_future *rf, void *arg)
{
    create *c = arg;
    int ready = !c->done;
    for (int i = 0; i < 2 && ready; i++)
        if (c->resolving[i] != NULL && !asyncio_future_done(c->resolving[i]))
            ready = 0;
    if (ready)
        open_endpoint(c);
    create_release(c);
}

static void on_start(void *arg)
{
    create *c = arg;
    asyncio_handle_unref(c->start_h);
    c->start_h = NULL;
    if (!c->done)
        open_endpoint(c);
    create_release(c);
}

/* The caller's future is done: if it was cancelled while names were being
 * resolved, stop resolving them. */
static void on_future_done(asyncio_future *f, void *arg)
{
    create *c = arg;
    if (!c->done && asyncio_future_cancelled(f) == 1)
        for (int i = 0; i < 2; i++)
            if (c->resolving[i] != NULL)
                asyncio_future_cancel(c->resolving[i]);
    create_release(c);
}

/* Loop close during the creation: nothing queued will run any more, so the
 * creation is freed here whatever its count. */
static void create_closable_close(asyncio__closable *closable)
{
    create *c = asyncio__container_of(closable, create, closable);
    c->done = 1;
    if (!asyncio_future_done(c->future))
        asyncio_future_set_exception(c->future, ASYNCIO_ECLOSED);
    asyncio_future_remove_done_callback(c->future, on_future_done, c);
    for (int i = 0; i < 2; i++)
        if (c->resolving[i] != NULL)
            asyncio_future_remove_done_callback(c->resolving[i], on_resolved, c);
    create_free(c);
}

static int valid_port(int port) { return port >= 0 && port <= 65535; }

int asyncio_loop_create_datagram_endpoint(asyncio_loop *loop, asyncio_protocol_factory factory,
                                          void *arg, const char *local_host, int local_port,
                                          const char *remote_host, int remote_port,
                                          const asyncio_datagram_options *opts,
                                          asyncio_future **out)
{
    static const asyncio_datagram_options defaults = ASYNCIO_DATAGRAM_OPTIONS_INIT;
    if (opts == NULL)
        opts = &defaults;
    if (loop == NULL || factory == NULL || !valid_port(local_port) || !valid_port(remote_port))
        return -EINVAL;
    /* A port without a host would be silently ignored: refuse it. */
    if ((local_host == NULL && local_port != 0) || (remote_host == NULL && remote_port != 0))
        return -EINVAL;
    if (opts->family != AF_UNSPEC && opts->family != AF_INET && opts->family != AF_INET6)
        return -EAFNOSUPPORT;
    /* Nothing to bind, nothing to connect: the family says what to make. */
    if (local_host == NULL && remote_host == NULL && opts->family == AF_UNSPEC)
        return -EINVAL;
    ASYNCIO__CHECK_OPEN(loop);

    create *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    int err = asyncio_loop_create_future(loop, &c->future);
    if (err < 0) {
        free(c);
        return err;
    }
    c->loop = loop;
    c->factory = factory;
    c->arg = arg;
    c->opts = *opts;
    c->refs = 1; /* this call's */
    c->closable.close = create_closable_close;
    asyncio__loop_add_closable(loop, &c->closable);

    const char *hosts[2] = {local_host, remote_host};
    const int ports[2] = {local_port, remote_port};
    for (int i = 0; i < 2 && err == 0; i++) {
        if (hosts[i] == NULL)
            continue;
        err = asyncio__sock_getaddrinfo(loop, hosts[i], ports[i], opts->family, SOCK_DGRAM,
                                        opts->proto, opts->flags, &c->resolving[i]);
        if (err == 0) {
            err = asyncio_future_add_done_callback(c->resolving[i], on_resolved, c);
            if (err == 0)
                c->refs++;
        }
    }
    if (err == 0 && local_host == NULL && remote_host == NULL) {
        err = asyncio_loop_call_soon(loop, on_start, c, &c->start_h);
        if (err == 0)
            c->refs++;
    }
    if (err == 0) {
        err = asyncio_future_add_done_callback(c->future, on_future_done, c);
        if (err == 0)
            c->refs++;
    }
    if (err < 0) {
        /* Callbacks already queued will find `done` set and only release
         * their count; the future was never handed out. */
        c->done = 1;
        for (int i = 0; i < 2; i++)
            if (c->resolving[i] != NULL)
                asyncio_future_cancel(c->resolving[i]);
        if (c->start_h != NULL)
            asyncio_handle_cancel(c->start_h);
        asyncio_future_cancel(c->future);
        /* A cancelled start handle never runs: give back its count. */
        if (c->start_h != NULL) {
            asyncio_handle_unref(c->start_h);
            c->start_h = NULL;
            c->refs--;
        }
        create_release(c);
        return err;
    }
    if (out != NULL) {
        asyncio_future_ref(c->future);
        *out = c->future;
    }
    create_release(c);
    return 0;
}
