/* libasyncio: asyncio's event-loop API in C, on libevent 2.1 and OpenSSL.
 *
 * loop.method(...) is asyncio_loop_method(loop, ...).  Errors are negative
 * return codes (see asyncio/errors.h); objects are opaque and reference
 * counted; what a `**out` parameter receives carries one reference. */
#ifndef ASYNCIO_H
#define ASYNCIO_H

#include <asyncio/common.h>
#include <asyncio/version.h>
#include <asyncio/errors.h>
#include <asyncio/loop.h>
#include <asyncio/future.h>
#include <asyncio/transport.h>
#include <asyncio/net.h>
#include <asyncio/fd.h>
#include <asyncio/libevent.h>
#include <asyncio/executor.h>
#include <asyncio/tls.h>
#include <asyncio/task.h>
#include <asyncio/streams.h>
#include <asyncio/pipe.h>
#include <asyncio/subprocess.h>

#endif
