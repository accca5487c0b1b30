/* Low-level socket operations as futures: sock_recv, sock_sendall,
 * sock_connect, sock_accept.
 *
 * Each tries its syscall at once (the future may then be done when the call
 * returns: its done callbacks still run from the loop).  Only on EAGAIN
 * does it make a `struct sock_op`: a one-shot libevent event (not
 * event_base_once, which cannot be cancelled) whose callback retries the
 * syscall and completes the future.  That callback is libevent's, but it
 * runs no user code: completing a future only schedules its callbacks.
 * Loop thread only.
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

enum op_kind { OP_RECV, OP_SENDALL, OP_CONNECT, OP_ACCEPT };

struct sock_op {
    asyncio__closable closable;
    asyncio_loop *loop;
    asyncio_future *future;         /* one reference */
    struct event *ev;               /* one-shot */
    enum op_kind kind;
    int fd;
    /* recv: the caller's buffer; sendall: our copy of what is left. */
    unsigned char *buf;
    size_t len, off;
    /* connect after EAGAIN (AF_UNIX backlog full): connect() again. */
    int reconnect;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int close_accepted;             /* accept with out == NULL */
};

static void on_ready(evutil_socket_t fd, short what, void *arg);
static void on_future_done(asyncio_future *f, void *arg);

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

static void op_free(struct sock_op *op)
{
    asyncio_future *f = op->future;
    asyncio__loop_remove_closable(&op->closable);
    if (op->ev != NULL)
        event_free(op->ev);
    if (op->kind == OP_SENDALL)
        free(op->buf);
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

static void close_accepted(void *p);

/* set_result takes nothing on an error (no memory, loop closed): an
 * accepted fd must then be closed rather than leaked. */
static void set_result(asyncio_future *f, void *result, void (*destroy)(void *), int is_accepted)
{
    if (asyncio_future_set_result(f, result, destroy) < 0 && is_accepted)
        close_accepted(result);
}

/* Complete the future ourselves (error < 0, else `result`) and free the op. */
static void op_finish(struct sock_op *op, int error, void *result, void (*destroy)(void *))
{
    asyncio_future_remove_done_callback(op->future, on_future_done, op);
    if (error < 0)
        asyncio_future_set_exception(op->future, error);
    else
        set_result(op->future, result, destroy, op->kind == OP_ACCEPT);
    op_free(op);
}

/* Wait for `what` on op->fd; takes over `op` on failure too. */
static int op_start(struct sock_op *op, short what)
{
    op->ev = event_new(op->loop->base, op->fd, what, on_ready, op);
    if (op->ev == NULL || event_add(op->ev, NULL) < 0)
        goto fail;
    if (asyncio_future_add_done_callback(op->future, on_future_done, op) < 0)
        goto fail;
    op->closable.close = op_close;
    asyncio__loop_add_closable(op->loop, &op->closable);
    return 0;
fail:
    /* Not registered yet: nothing else points at the op. */
    asyncio__list_init(&op->closable.link);
    asyncio_future_set_exception(op->future, -ENOMEM);
    op_free(op);
    return -ENOMEM;
}

static struct sock_op *op_new(asyncio_loop *loop, asyncio_future *f, enum op_kind kind, int fd)
{
    struct sock_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->loop = loop;
    op->future = f;
    asyncio_future_ref(f);
    op->kind = kind;
    op->fd = fd;
    asyncio__list_init(&op->closable.link);
    return op;
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

/* ---- The syscalls: each returns 1 done, 0 would block, < 0 an error ---------------- */

static int try_recv(int fd, void *buf, size_t n, ssize_t *got)
{
    ssize_t r;
    do
        r = recv(fd, buf, n, 0);
    while (r < 0 && errno == EINTR);
    if (r >= 0) {
        *got = r;
        return 1;
    }
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
}

static int try_send(int fd, const unsigned char *data, size_t len, size_t *off)
{
    while (*off < len) {
        ssize_t r = send(fd, data + *off, len - *off, MSG_NOSIGNAL);
        if (r >= 0)
            *off += (size_t)r;
        else if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        else if (errno != EINTR)
            return -errno;
    }
    return 1;
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

static int try_accept(int fd, asyncio_accepted **out)
{
    asyncio_accepted *a = malloc(sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    for (;;) {
        a->addrlen = sizeof(a->addr);
        a->fd = accept4(fd, (struct sockaddr *)&a->addr, &a->addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (a->fd >= 0) {
            *out = a;
            return 1;
        }
        if (errno != EINTR)
            break;
    }
    int err = errno;
    free(a);
    return accept_retryable(err) ? 0 : -err;
}

static int try_connect(int fd, const struct sockaddr *addr, socklen_t len, int *reconnect)
{
    if (connect(fd, addr, len) == 0)
        return 1;
    switch (errno) {
    case EINPROGRESS:
    case EINTR: /* the connection goes on asynchronously */
        *reconnect = 0;
        return 0;
    case EAGAIN: /* AF_UNIX, backlog full: nothing started */
        *reconnect = 1;
        return 0;
    case EISCONN:
        return *reconnect ? 1 : -EISCONN;
    default:
        return -errno;
    }
}

static int connect_result(int fd)
{
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        return -errno;
    return soerr == 0 ? 1 : -soerr;
}

/* ---- The event: retry, or complete ----------------------------------------------------- */

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    struct sock_op *op = arg;
    /* Cancelled: the done callback (or loop close) frees the op; the
     * caller's buffer must not be touched any more. */
    if (asyncio_future_done(op->future))
        return;
    int rc;
    switch (op->kind) {
    case OP_RECV: {
        ssize_t got = 0;
        rc = try_recv(op->fd, op->buf, op->len, &got);
        if (rc > 0) {
            op_finish(op, 0, (void *)(intptr_t)got, NULL);
            return;
        }
        break;
    }
    case OP_SENDALL:
        rc = try_send(op->fd, op->buf, op->len, &op->off);
        if (rc > 0) {
            op_finish(op, 0, NULL, NULL);
            return;
        }
        break;
    case OP_CONNECT:
        if (op->reconnect)
            rc = try_connect(op->fd, (struct sockaddr *)&op->addr, op->addrlen, &op->reconnect);
        else
            rc = connect_result(op->fd);
        if (rc > 0) {
            op_finish(op, 0, NULL, NULL);
            return;
        }
        break;
    case OP_ACCEPT: {
        asyncio_accepted *a = NULL;
        rc = try_accept(op->fd, &a);
        if (rc > 0) {
            op_finish(op, 0, a, op->close_accepted ? close_accepted : free);
            return;
        }
        break;
    }
    default:
        rc = -EINVAL;
        break;
    }
    if (rc < 0) {
        op_finish(op, rc, NULL, NULL);
        return;
    }
    if (event_add(op->ev, NULL) < 0)
        op_finish(op, -ENOMEM, NULL, NULL);
}

/* ---- The calls ------------------------------------------------------------------------- */

int asyncio_loop_sock_recv(asyncio_loop *loop, int fd, void *buf, size_t nbytes,
                           asyncio_future **out)
{
    if (buf == NULL && nbytes > 0)
        return -EINVAL;
    int err = check_fd(loop, fd);
    if (err < 0)
        return err;
    asyncio_future *f;
    if ((err = asyncio_loop_create_future(loop, &f)) < 0)
        return err;
    ssize_t got = 0;
    int rc = try_recv(fd, buf, nbytes, &got);
    if (rc > 0) {
        asyncio_future_set_result(f, (void *)(intptr_t)got, NULL);
    } else if (rc < 0) {
        asyncio_future_set_exception(f, rc);
    } else {
        struct sock_op *op = op_new(loop, f, OP_RECV, fd);
        if (op == NULL) {
            asyncio_future_unref(f);
            return -ENOMEM;
        }
        op->buf = buf;
        op->len = nbytes;
        op_start(op, EV_READ);
    }
    return give(f, out);
}

int asyncio_loop_sock_sendall(asyncio_loop *loop, int fd, const void *data, size_t len,
                              asyncio_future **out)
{
    if (data == NULL && len > 0)
        return -EINVAL;
    int err = check_fd(loop, fd);
    if (err < 0)
        return err;
    asyncio_future *f;
    if ((err = asyncio_loop_create_future(loop, &f)) < 0)
        return err;
    size_t off = 0;
    int rc = try_send(fd, data, len, &off);
    if (rc > 0) {
        asyncio_future_set_result(f, NULL, NULL);
    } else if (rc < 0) {
        asyncio_future_set_exception(f, rc);
    } else {
        struct sock_op *op = op_new(loop, f, OP_SENDALL, fd);
        if (op != NULL) {
            op->len = len - off;
            op->buf = malloc(op->len);
        }
        if (op == NULL || op->buf == NULL) {
            /* Part of the data may be out already: only the future can say so. */
            if (op != NULL)
                op_free(op);
            asyncio_future_set_exception(f, -ENOMEM);
            return give(f, out);
        }
        memcpy(op->buf, (const unsigned char *)data + off, op->len);
        op_start(op, EV_WRITE);
    }
    return give(f, out);
}

int asyncio_loop_sock_connect(asyncio_loop *loop, int fd, const struct sockaddr *addr,
                              socklen_t len, asyncio_future **out)
{
    if (addr == NULL || len < (socklen_t)sizeof(sa_family_t) ||
        len > (socklen_t)sizeof(struct sockaddr_storage))
        return -EINVAL;
    int err = check_fd(loop, fd);
    if (err < 0)
        return err;
    asyncio_future *f;
    if ((err = asyncio_loop_create_future(loop, &f)) < 0)
        return err;
    int reconnect = 0;
    int rc = try_connect(fd, addr, len, &reconnect);
    if (rc > 0) {
        asyncio_future_set_result(f, NULL, NULL);
    } else if (rc < 0) {
        asyncio_future_set_exception(f, rc);
    } else {
        struct sock_op *op = op_new(loop, f, OP_CONNECT, fd);
        if (op == NULL) {
            asyncio_future_unref(f);
            return -ENOMEM;
        }
        op->reconnect = reconnect;
        memcpy(&op->addr, addr, len);
        op->addrlen = len;
        op_start(op, EV_WRITE);
    }
    return give(f, out);
}

int asyncio_loop_sock_accept(asyncio_loop *loop, int fd, asyncio_future **out)
{
    int err = check_fd(loop, fd);
    if (err < 0)
        return err;
    asyncio_future *f;
    if ((err = asyncio_loop_create_future(loop, &f)) < 0)
        return err;
    asyncio_accepted *a = NULL;
    int rc = try_accept(fd, &a);
    if (rc > 0) {
        set_result(f, a, out == NULL ? close_accepted : free, 1);
    } else if (rc < 0) {
        asyncio_future_set_exception(f, rc);
    } else {
        struct sock_op *op = op_new(loop, f, OP_ACCEPT, fd);
        if (op == NULL) {
            asyncio_future_unref(f);
            return -ENOMEM;
        }
        op->close_accepted = out == NULL;
        op_start(op, EV_READ);
    }
    return give(f, out);
}
