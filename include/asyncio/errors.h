/* libasyncio: error codes.
 *
 * Every call that can fail returns an int: 0 (or a documented count) on
 * success, a negative code on failure.  Where an errno fits the code is
 * -errno (-EINVAL, -ECONNREFUSED, ...).  The library's own codes are below
 * -4095 so they never collide with an errno. */
#ifndef ASYNCIO_ERRORS_H
#define ASYNCIO_ERRORS_H

#include <errno.h> /* the codes are -errno: bring the E* names along */
#include <asyncio/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, description): the one table the enum, asyncio_strerror()
 * and asyncio_err_name() are all made from. */
#define ASYNCIO_ERROR_MAP(X)                                             \
    X(ECLOSED, -4096, "event loop is closed")                            \
    X(ERUNNING, -4097, "event loop is already running")                  \
    X(ESTOPPED, -4098, "event loop stopped before the future completed") \
    X(ENOLOOP, -4099, "no current event loop in this thread")            \
    X(EINVALSTATE, -4100, "invalid state for this operation")            \
    X(ENOTASK, -4101, "not inside a task")                               \
    X(ESSL, -4102, "TLS failure")                                        \
    X(ECERT, -4103, "certificate or hostname verification failed")       \
    X(EAI_ADDRFAMILY, -4110, "address family for host not supported")    \
    X(EAI_AGAIN, -4111, "temporary failure in name resolution")          \
    X(EAI_BADFLAGS, -4112, "invalid flags for name resolution")          \
    X(EAI_FAIL, -4113, "non-recoverable failure in name resolution")     \
    X(EAI_FAMILY, -4114, "address family not supported")                 \
    X(EAI_MEMORY, -4115, "memory allocation failure in name resolution") \
    X(EAI_NODATA, -4116, "no address associated with host name")         \
    X(EAI_NONAME, -4117, "name or service not known")                    \
    X(EAI_SERVICE, -4118, "service not supported for socket type")       \
    X(EAI_SOCKTYPE, -4119, "socket type not supported")                  \
    X(EAI_SYSTEM, -4120, "system error in name resolution")              \
    X(EAI_OVERFLOW, -4121, "argument buffer overflow in name resolution")

enum asyncio_error {
#define ASYNCIO__ERROR_ENUM(name, value, text) ASYNCIO_##name = (value),
    ASYNCIO_ERROR_MAP(ASYNCIO__ERROR_ENUM)
#undef ASYNCIO__ERROR_ENUM
};

/* A static, human-readable description of `err`: a library code or a
 * negative errno.  Never NULL; unknown codes give "unknown error". */
ASYNCIO_EXTERN const char *asyncio_strerror(int err);

/* The symbolic name of `err` ("ASYNCIO_ECLOSED", "ECONNREFUSED").  Never
 * NULL; unknown codes give "UNKNOWN". */
ASYNCIO_EXTERN const char *asyncio_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif
