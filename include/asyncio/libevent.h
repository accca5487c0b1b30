/* libasyncio: interop with libevent, for code that moves piece by piece.
 *
 * Events that existing libevent code adds to the loop's base run beside the
 * loop's own callbacks. */
#ifndef ASYNCIO_LIBEVENT_H
#define ASYNCIO_LIBEVENT_H

#include <asyncio/common.h>
#include <asyncio/transport.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
struct evdns_base;
struct bufferevent;

/* The event_base under the loop, borrowed; NULL once the loop is closed
 * (and for NULL). */
ASYNCIO_EXTERN struct event_base *asyncio_loop_get_event_base(asyncio_loop *loop);

/* A loop over an existing base.  The base stays the caller's: closing the
 * loop frees what the loop added to it, never the base.  The base should be
 * made with EVENT_BASE_FLAG_PRECISE_TIMER for timers finer than a few ms. */
ASYNCIO_EXTERN int asyncio_loop_new_from_event_base(struct event_base *base, asyncio_loop **loop);

/* The loop's resolver, made on first use with the system's nameservers.
 * Every name lookup of the loop goes through it, so nameservers, search
 * domains and options set on it apply to getaddrinfo, create_connection
 * and create_server alike.  NULL once the loop is closed (and for NULL). */
ASYNCIO_EXTERN struct evdns_base *asyncio_loop_get_evdns_base(asyncio_loop *loop);

/* Wrap a connected bufferevent of the loop's base (a socket, a filter or an
 * OpenSSL one) as a stream transport of `protocol`; connection_made is
 * scheduled on the loop.  Takes `bev` over on success and on failure alike
 * (it is freed on failure). */
ASYNCIO_EXTERN int asyncio_transport_new_from_bufferevent(asyncio_loop *loop,
                                                          struct bufferevent *bev,
                                                          asyncio_protocol *protocol,
                                                          asyncio_transport **out);

#ifdef __cplusplus
}
#endif
#endif
