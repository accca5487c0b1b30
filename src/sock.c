/* Low-level socket operations as futures: sock_recv, sock_sendall,
 * sock_connect, sock_accept.
 *
 * All four are one skeleton (op_run) around a `struct sock_op` whose kind
 * says what differs: the step that tries the syscall once, the event to
 * wait for.  The first step runs at once, with the op on the caller's
 * stack (the future may then be done when the call returns: its done
 * callbacks still run from the loop).  Only on EAGAIN does the op move to
 * the heap and wait: a one-shot libevent event (not event_base_once, which
 * cannot be cancelled) whose callback runs the step again and completes
 * the future.  That callback is libevent's, but it runs no user code:
 * completing a future only schedules its callbacks.  Loop thread only.
 *
 * Ownership and cancellation:
 *   - an op holds a reference to its future and is itself a closable of the
 *     loop; it is freed when it completes the future, when its done
 *     callback sees the future completed by somebody else (a cancel), or
 *     by loop close, which cancels the future where the core lets a closed
 *     loop's future change (otherwise it stays pending, never completed);
 *   - once the future is done nothing touches the caller's buffer again: the
 *     event callback checks the future before every syscall, and the done
 *     callback deletes the event;
 *   - the op removes its done callback before completing the future itself,
 *     so the done callback only ever runs after a cancel;
 *   - sock_sendall copies whatever it could not send at once;
 *   - sock_accept: the accepted fd belongs to whoever holds the future once
 *     the future is done with it (asyncio_accepted.fd).  The library closes
 *     it only when nobody can ever read it: `out` was NULL.  An accept is
 *     never made for a future that is already done (cancelled). */
#include "internal.h"

#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sock_op;

/* What one operation does differently from the others. */
struct op_kind {
    short what; /* the event to wait for */
    /* Try the syscall once: 1 done (*result and *destroy for the future),
     * 0 would block, < 0 an error. */
    int (*step)(struct sock_op *op, void **result, void (**destroy)(void *));
    /* Release a result the future refused (no memory, loop closed), which
     * nobody else would; NULL: nothing to release. */
    void (*discard)(void *result);
    /* Before waiting: keep what the caller may reuse once the call has
     * returned.  0 or -ENOMEM; NULL: nothing to keep. */
    int (*park)(struct sock_op *op);
    /* The first step may have had an effect (sendall: part of the data
     * went out), so a failure to wait must be told through the future: the
     * call itself fails only having done nothing. */
    int acts_at_once;
};

struct sock_op {
    asyncio__closable closable;
    asyncio_loop *loop;
    asyncio_future *future; /* one reference */
    struct event *ev;       /* one-shot */
    const struct op_kind *kind;
    int fd;
    void *buf;                 /* recv: the caller's buffer */
    const unsigned char *data; /* sendall: the caller's data, or `copy` */
    unsigned char *copy;       /* sendall, waiting: what was left */
    size_t len, off;
    struct sockaddr_storage addr; /* connect */
    socklen_t addrlen;
    int in_progress;    /* connect: EINPROGRESS, SO_ERROR will tell */
    int retried;        /* connect: connect() again after EAGAIN */
    int close_accepted; /* accept with out == NULL */
};

/* asyncio requires non-blocking sockets; a blocking one would stall the loop. */
static int check_fd(asyncio_loop *loop, int fd)
{
    if (fd < 0)
        return -EINVAL;
    ASYNCIO__CHECK_OPEN(loop);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    if (!(fl & O_NONBLOCK))
        return -EINVAL;
    return 0;
}

/* Hand the future to the caller (out may be NULL: the operation goes on). */
static int give(asyncio_future *f, asyncio_future **out)
{
    if (out != NULL)
        *out = f;
    else
        asyncio_future_unref(f);
    return 0;
}

/* ---- The kinds: one step each --------------------------------------------------------- */

static int recv_step(struct sock_op *op, void **result, void (**destroy)(void *))
{
    ssize_t r;
    do
        r = recv(op->fd, op->buf, op->len, 0);
    while (r < 0 && errno == EINTR);
    if (r >= 0) {
        *result = (void *)(intptr_t)r;
        return 1;
    }
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
}

static int sendall_step(struct sock_op *op, void **result, void (**destroy)(void *))
{
    while (op->off < op->len) {
        ssize_t r = send(op->fd, op->data + op->off, op->len - op->off, MSG_NOSIGNAL);
        if (r >= 0)
            op->off += (size_t)r;
        else if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        else if (errno != EINTR)
            return -errno;
    }
    return 1;
}

static int sendall_park(struct sock_op *op)
{
    op->len -= op->off;
    op->copy = malloc(op->len);
    if (op->copy == NULL)
        return -ENOMEM;
    memcpy(op->copy, op->data + op->off, op->len);
    op->data = op->copy;
    op->off = 0;
    return 0;
}

static int connect_step(struct sock_op *op, void **result, void (**destroy)(void *))
{
    if (op->in_progress) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            return -errno;
        return soerr == 0 ? 1 : -soerr;
    }
    if (connect(op->fd, (const struct sockaddr *)&op->addr, op->addrlen) == 0)
        return 1;
    switch (errno) {
    case EINPROGRESS:
    case EINTR: /* the connection goes on asynchronously */
        op->in_progress = 1;
        return 0;
    case EAGAIN: /* AF_UNIX, backlog full: nothing started */
        op->retried = 1;
        return 0;
    case EISCONN:
        return op->retried ? 1 : -EISCONN;
    default:
        return -errno;
    }
}

/* Linux reports network errors pending on the new connection from
 * accept(); accept(2) says to treat them like EAGAIN. */
static int accept_retryable(int err)
{
    switch (err) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
        return 1;
    default:
        return 0;
    }
}

static void close_accepted(void *p)
{
    asyncio_accepted *a = p;
    if (a->fd >= 0)
        close(a->fd);
    free(a);
}

static int accept_step(struct sock_op *op, void **result, void (**destroy)(void *))
{
    asyncio_accepted *a = malloc(sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    for (;;) {
        a->addrlen = sizeof(a->addr);
        a->fd =
            accept4(op->fd, (struct sockaddr *)&a->addr, &a->addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (a->fd >= 0) {
            *result = a;
            *destroy = op->close_accepted ? close_accepted : free;
            return 1;
        }
        if (errno != EINTR)
            break;
    }
    int err = errno;
    free(a);
    return accept_retryable(err) ? 0 : -err;
}

static const struct op_kind recv_kind = {.what = EV_READ, .step = recv_step};
static const struct op_kind sendall_kind = {
    .what = EV_WRITE, .step = sendall_step, .park = sendall_park, .acts_at_once = 1};
static const struct op_kind connect_kind = {.what = EV_WRITE, .step = connect_step};
/* set_result takes nothing on an error: an accepted fd must then be closed
 * rather than leaked, whoever was to own it. */
static const struct op_kind accept_kind = {
    .what = EV_READ, .step = accept_step, .discard = close_accepted};

/* ---- The skeleton ------------------------------------------------------------------------ */

static void op_free(struct sock_op *op)
{
    asyncio_future *f = op->future;
    asyncio__loop_remove_closable(&op->closable);
    if (op->ev != NULL)
        event_free(op->ev);
    free(op->copy);
    free(op);
    asyncio_future_unref(f); /* last: it may hold the last reference to the loop */
}

/* Somebody else completed the future (a cancel): stop. */
static void on_future_done(asyncio_future *f, void *arg) { op_free(arg); }

static void op_close(asyncio__closable *c)
{
    struct sock_op *op = asyncio__container_of(c, struct sock_op, closable);
    if (!asyncio_future_done(op->future)) {
        asyncio_future_remove_done_callback(op->future, on_future_done, op);
        asyncio_future_cancel(op->future);
    }
    op_free(op);
}

/* Complete `f` with a step's outcome: rc < 0 an error, else `result`. */
static void complete(asyncio_future *f, const struct op_kind *kind, int rc, void *result,
                     void (*destroy)(void *))
{
    if (rc < 0)
        asyncio_future_set_exception(f, rc);
    else if (asyncio_future_set_result(f, result, destroy) < 0 && kind->discard != NULL)
        kind->discard(result);
}

/* Complete the future ourselves and free the op. */
static void op_finish(struct sock_op *op, int rc, void *result, void (*destroy)(void *))
{
    asyncio_future_remove_done_callback(op->future, on_future_done, op);
    complete(op->future, op->kind, rc, result, destroy);
    op_free(op);
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    struct sock_op *op = arg;
    /* Cancelled: the done callback (or loop close) frees the op; the
     * caller's buffer must not be touched any more. */
    if (asyncio_future_done(op->future))
        return;
    void *result = NULL;
    void (*destroy)(void *) = NULL;
    int rc = op->kind->step(op, &result, &destroy);
    if (rc != 0)
        op_finish(op, rc, result, destroy);
    else if (event_add(op->ev, NULL) < 0)
        op_finish(op, -ENOMEM, NULL, NULL);
}

/* Wait for the op's event; takes over `op`, and reports a failure through
 * the future. */
static void op_start(struct sock_op *op)
{
    op->ev = event_new(op->loop->base, op->fd, op->kind->what, on_ready, op);
    if (op->ev == NULL || event_add(op->ev, NULL) < 0)
        goto fail;
    if (asyncio_future_add_done_callback(op->future, on_future_done, op) < 0)
        goto fail;
    op->closable.close = op_close;
    asyncio__loop_add_closable(op->loop, &op->closable);
    return;
fail:
    /* Not registered yet: nothing else points at the op. */
    asyncio__list_init(&op->closable.link);
    asyncio_future_set_exception(op->future, -ENOMEM);
    op_free(op);
}

/* One operation, its arguments checked and in `first` (on the caller's
 * stack): try at once, and only if that would block, wait on a copy. */
static int op_run(asyncio_loop *loop, struct sock_op *first, asyncio_future **out)
{
    int err = check_fd(loop, first->fd);
    if (err < 0)
        return err;
    asyncio_future *f;
    if ((err = asyncio_loop_create_future(loop, &f)) < 0)
        return err;
    void *result = NULL;
    void (*destroy)(void *) = NULL;
    int rc = first->kind->step(first, &result, &destroy);
    if (rc != 0) {
        complete(f, first->kind, rc, result, destroy);
        return give(f, out);
    }
    struct sock_op *op = malloc(sizeof(*op));
    if (op != NULL) {
        *op = *first;
        op->loop = loop;
        op->future = f;
        asyncio_future_ref(f);
        asyncio__list_init(&op->closable.link);
        if (op->kind->park != NULL && op->kind->park(op) < 0) {
            op_free(op);
            op = NULL;
        }
    }
    if (op == NULL) {
        if (!first->kind->acts_at_once) {
            asyncio_future_unref(f);
            return -ENOMEM;
        }
        asyncio_future_set_exception(f, -ENOMEM);
        return give(f, out);
    }
    op_start(op);
    return give(f, out);
}

/* ---- The calls ------------------------------------------------------------------------- */

int asyncio_loop_sock_recv(asyncio_loop *loop, int fd, void *buf, size_t nbytes,
                           asyncio_future **out)
{
    if (buf == NULL && nbytes > 0)
        return -EINVAL;
    struct sock_op op = {.kind = &recv_kind, .fd = fd, .buf = buf, .len = nbytes};
    return op_run(loop, &op, out);
}

int asyncio_loop_sock_sendall(asyncio_loop *loop, int fd, const void *data, size_t len,
                              asyncio_future **out)
{
    if (data == NULL && len > 0)
        return -EINVAL;
    struct sock_op op = {.kind = &sendall_kind, .fd = fd, .data = data, .len = len};
    return op_run(loop, &op, out);
}

int asyncio_loop_sock_connect(asyncio_loop *loop, int fd, const struct sockaddr *addr,
                              socklen_t len, asyncio_future **out)
{
    if (addr == NULL || len < (socklen_t)sizeof(sa_family_t) ||
        len > (socklen_t)sizeof(struct sockaddr_storage))
        return -EINVAL;
    struct sock_op op = {.kind = &connect_kind, .fd = fd, .addrlen = len};
    memcpy(&op.addr, addr, len);
    return op_run(loop, &op, out);
}

int asyncio_loop_sock_accept(asyncio_loop *loop, int fd, asyncio_future **out)
{
    struct sock_op op = {.kind = &accept_kind, .fd = fd, .close_accepted = out == NULL};
    return op_run(loop, &op, out);
}
