/* The exception handler (errors that have no caller) and debug mode. */
#include "internal.h"

#include <math.h>
#include <stdio.h>

int asyncio_loop_set_exception_handler(asyncio_loop *loop, asyncio_exception_handler h, void *arg)
{
    ASYNCIO__CHECK_OPEN(loop);
    loop->exc_handler = h;
    loop->exc_handler_arg = arg;
    return 0;
}

/* The message on one line: control characters become spaces, and very long
 * messages are cut, so that one report is always one line of the log. */
static const char *one_line(const char *message, char *buf, size_t size)
{
    if (message == NULL)
        return "unhandled error";
    size_t i = 0;
    for (; message[i] != '\0' && i + 1 < size; i++)
        buf[i] = (unsigned char)message[i] < 0x20 || message[i] == 0x7f ? ' ' : message[i];
    buf[i] = '\0';
    return buf;
}

void asyncio_loop_default_exception_handler(asyncio_loop *loop, const asyncio_error_context *ctx)
{
    if (ctx == NULL)
        return;
    char buf[512];
    /* One fprintf: glibc formats an unbuffered stream into one write. */
    fprintf(stderr, "asyncio: %s%s%s%s%s [loop %p future %p handle %p transport %p server %p]\n",
            one_line(ctx->message, buf, sizeof(buf)), ctx->error != 0 ? ": " : "",
            ctx->error != 0 ? asyncio_err_name(ctx->error) : "", ctx->error != 0 ? " " : "",
            ctx->error != 0 ? asyncio_strerror(ctx->error) : "", (void *)loop, (void *)ctx->future,
            (void *)ctx->handle, (void *)ctx->transport, (void *)ctx->server);
}

void asyncio_loop_call_exception_handler(asyncio_loop *loop, const asyncio_error_context *ctx)
{
    if (loop == NULL || ctx == NULL)
        return;
    if (loop->exc_handler != NULL)
        loop->exc_handler(loop, ctx, loop->exc_handler_arg);
    else
        asyncio_loop_default_exception_handler(loop, ctx);
}

void asyncio__report(asyncio_loop *loop, const char *message, int error, asyncio_future *future,
                     asyncio_handle *handle)
{
    asyncio_error_context ctx = {message, error, future, handle, NULL, NULL};
    asyncio_loop_call_exception_handler(loop, &ctx);
}

int asyncio_loop_set_debug(asyncio_loop *loop, int enabled)
{
    ASYNCIO__CHECK_OPEN(loop);
    loop->debug = enabled != 0;
    return 0;
}

int asyncio_loop_get_debug(asyncio_loop *loop)
{
    if (loop == NULL)
        return -EINVAL;
    return loop->debug;
}

int asyncio_loop_set_slow_callback_duration(asyncio_loop *loop, double seconds)
{
    if (!isfinite(seconds) || seconds < 0)
        return -EINVAL;
    ASYNCIO__CHECK_OPEN(loop);
    loop->slow_callback_duration = seconds;
    return 0;
}
