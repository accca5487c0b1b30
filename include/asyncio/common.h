/* libasyncio: declarations every public header shares.
 *
 * The object types are opaque and reference counted (see each *_ref/_unref
 * pair); only the option structs, the policy and the protocol are public. */
#ifndef ASYNCIO_COMMON_H
#define ASYNCIO_COMMON_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ASYNCIO_EXTERN __attribute__((visibility("default")))
#else
#define ASYNCIO_EXTERN
#endif

typedef struct asyncio_loop asyncio_loop;
typedef struct asyncio_handle asyncio_handle;
typedef struct asyncio_future asyncio_future;
typedef struct asyncio_transport asyncio_transport;
typedef struct asyncio_server asyncio_server;
typedef struct asyncio_executor asyncio_executor;

/* A plain callback: what call_soon, call_later, add_reader and signal
 * handlers run.  `arg` is passed through untouched. */
typedef void (*asyncio_callback)(void *arg);

#ifdef __cplusplus
}
#endif
#endif
