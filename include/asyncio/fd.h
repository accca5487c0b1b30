/* libasyncio: file descriptors, low-level sockets and name resolution.
 *
 * The caller keeps every fd: the loop watches and uses it, never closes it
 * (except an accepted one it hands over).  Close an fd only after removing
 * its reader and writer. */
#ifndef ASYNCIO_FD_H
#define ASYNCIO_FD_H

#include <asyncio/common.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Call cb(arg) whenever `fd` is readable (writable), as a loop callback.
 * A second add for the same fd replaces the first. */
ASYNCIO_EXTERN int asyncio_loop_add_reader(asyncio_loop *loop, int fd, asyncio_callback cb,
                                           void *arg);
ASYNCIO_EXTERN int asyncio_loop_remove_reader(asyncio_loop *loop, int fd); /* 1 removed, 0 none */
ASYNCIO_EXTERN int asyncio_loop_add_writer(asyncio_loop *loop, int fd, asyncio_callback cb,
                                           void *arg);
ASYNCIO_EXTERN int asyncio_loop_remove_writer(asyncio_loop *loop, int fd); /* 1 removed, 0 none */

/* Futures over a non-blocking socket; cancelling one stops the operation.
 * sock_recv: result bytes read (intptr_t), 0 at EOF; `buf` must stay valid
 * until the future is done.  sock_sendall copies `data`; result 0. */
ASYNCIO_EXTERN int asyncio_loop_sock_recv(asyncio_loop *loop, int fd, void *buf, size_t nbytes,
                                          asyncio_future **out);
ASYNCIO_EXTERN int asyncio_loop_sock_sendall(asyncio_loop *loop, int fd, const void *data,
                                             size_t len, asyncio_future **out);
ASYNCIO_EXTERN int asyncio_loop_sock_connect(asyncio_loop *loop, int fd,
                                             const struct sockaddr *addr, socklen_t len,
                                             asyncio_future **out);

/* sock_accept's result: the new socket (non-blocking, close-on-exec; the
 * caller owns it once read from the future) and the peer's address. */
typedef struct asyncio_accepted {
    int fd;
    struct sockaddr_storage addr;
    socklen_t addrlen;
} asyncio_accepted;
ASYNCIO_EXTERN int asyncio_loop_sock_accept(asyncio_loop *loop, int fd, asyncio_future **out);

/* Resolve with the loop's evdns base (asyncio_loop_get_evdns_base).  Result:
 * a struct addrinfo * list freed with the future.  Errors: ASYNCIO_EAI_*
 * (a numeric port outside 0..65535: ASYNCIO_EAI_SERVICE, never wrapped).
 * The future is never completed inside this call. */
ASYNCIO_EXTERN int asyncio_loop_getaddrinfo(asyncio_loop *loop, const char *host, const char *port,
                                            const struct addrinfo *hints, asyncio_future **out);

typedef struct asyncio_nameinfo {
    char host[NI_MAXHOST];
    char serv[NI_MAXSERV];
} asyncio_nameinfo;
/* Result: an asyncio_nameinfo * freed with the future. */
ASYNCIO_EXTERN int asyncio_loop_getnameinfo(asyncio_loop *loop, const struct sockaddr *sa,
                                            socklen_t salen, int flags, asyncio_future **out);

#ifdef __cplusplus
}
#endif
#endif
