/* libasyncio: interop with libevent, for code that moves piece by piece.
 *
 * Events that existing libevent code adds to the loop's base run beside the
 * loop's own callbacks. */
#ifndef ASYNCIO_LIBEVENT_H
#define ASYNCIO_LIBEVENT_H

#include <asyncio/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

/* The event_base under the loop, borrowed; NULL once the loop is closed. */
ASYNCIO_EXTERN struct event_base *asyncio_loop_get_event_base(asyncio_loop *loop);

/* A loop over an existing base.  The base stays the caller's: closing the
 * loop frees what the loop added to it, never the base.  The base should be
 * made with EVENT_BASE_FLAG_PRECISE_TIMER for timers finer than a few ms. */
ASYNCIO_EXTERN int asyncio_loop_new_from_event_base(struct event_base *base, asyncio_loop **loop);

#ifdef __cplusplus
}
#endif
#endif
