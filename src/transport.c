/* The public transport calls: argument checks, then the kind's operation,
 * or -ENOTSUP where the kind has none. */
#include "internal.h"

#include <signal.h>

void asyncio__transport_init(asyncio_transport *t, const asyncio__transport_ops *ops,
                             asyncio_loop *loop, asyncio_protocol *protocol)
{
    asyncio__ref_init(&t->refs);
    t->ops = ops;
    asyncio_loop_ref(loop);
    t->loop = loop;
    t->protocol = protocol;
}

void asyncio_transport_ref(asyncio_transport *t)
{
    if (t != NULL)
        asyncio__ref_inc(&t->refs);
}

void asyncio_transport_unref(asyncio_transport *t)
{
    if (t == NULL || !asyncio__ref_dec(&t->refs))
        return;
    asyncio_loop *loop = t->loop;
    t->ops->destroy(t);
    asyncio_loop_unref(loop);
}

#define DISPATCH(t, op, ...)              \
    do {                                  \
        if ((t) == NULL)                  \
            return -EINVAL;               \
        if ((t)->ops->op == NULL)         \
            return -ENOTSUP;              \
        return (t)->ops->op(__VA_ARGS__); \
    } while (0)

int asyncio_transport_write(asyncio_transport *t, const void *data, size_t len)
{
    if (data == NULL && len > 0)
        return -EINVAL;
    struct iovec iov = {(void *)data, len};
    DISPATCH(t, write, t, &iov, 1);
}

int asyncio_transport_writelines(asyncio_transport *t, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0 || (iov == NULL && iovcnt > 0))
        return -EINVAL;
    for (int i = 0; i < iovcnt; i++)
        if (iov[i].iov_base == NULL && iov[i].iov_len > 0)
            return -EINVAL;
    DISPATCH(t, write, t, iov, iovcnt);
}

int asyncio_transport_write_eof(asyncio_transport *t) { DISPATCH(t, write_eof, t); }
int asyncio_transport_can_write_eof(asyncio_transport *t) { DISPATCH(t, can_write_eof, t); }
int asyncio_transport_close(asyncio_transport *t) { DISPATCH(t, close, t); }
int asyncio_transport_abort(asyncio_transport *t) { DISPATCH(t, abort, t); }
int asyncio_transport_is_closing(asyncio_transport *t) { DISPATCH(t, is_closing, t); }
int asyncio_transport_pause_reading(asyncio_transport *t) { DISPATCH(t, pause_reading, t); }
int asyncio_transport_resume_reading(asyncio_transport *t) { DISPATCH(t, resume_reading, t); }

int asyncio_transport_set_write_buffer_limits(asyncio_transport *t, size_t high, size_t low)
{
    DISPATCH(t, set_write_buffer_limits, t, high, low);
}

size_t asyncio_transport_get_write_buffer_size(asyncio_transport *t)
{
    if (t == NULL || t->ops->get_write_buffer_size == NULL)
        return 0;
    return t->ops->get_write_buffer_size(t);
}

asyncio_protocol *asyncio_transport_get_protocol(asyncio_transport *t)
{
    return t != NULL ? t->protocol : NULL;
}

void *asyncio_transport_get_extra_info(asyncio_transport *t, const char *name)
{
    if (t == NULL || name == NULL || t->ops->get_extra_info == NULL)
        return NULL;
    return t->ops->get_extra_info(t, name);
}

int asyncio_transport_sendto(asyncio_transport *t, const void *data, size_t len,
                             const struct sockaddr *addr, socklen_t addrlen)
{
    if ((data == NULL && len > 0) || (addr != NULL && addrlen == 0))
        return -EINVAL;
    DISPATCH(t, sendto, t, data, len, addr, addrlen);
}

int asyncio_transport_get_pid(asyncio_transport *t) { DISPATCH(t, get_pid, t); }

int asyncio_transport_get_returncode(asyncio_transport *t, int *returncode)
{
    if (returncode == NULL)
        return -EINVAL;
    DISPATCH(t, get_returncode, t, returncode);
}

asyncio_transport *asyncio_transport_get_pipe_transport(asyncio_transport *t, int fd)
{
    if (t == NULL || fd < 0 || t->ops->get_pipe_transport == NULL)
        return NULL;
    return t->ops->get_pipe_transport(t, fd);
}

int asyncio_transport_send_signal(asyncio_transport *t, int sig)
{
    DISPATCH(t, send_signal, t, sig);
}
int asyncio_transport_terminate(asyncio_transport *t) { DISPATCH(t, send_signal, t, SIGTERM); }
int asyncio_transport_kill(asyncio_transport *t) { DISPATCH(t, send_signal, t, SIGKILL); }
