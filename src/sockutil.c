/* Socket helpers shared by the socket layers (connect.c, server.c, dgram.c).
 *
 * Stateless: each call is a few syscalls on an fd the caller owns, so the
 * rules every layer must keep live in one place -- a socket the library
 * makes is non-blocking and close-on-exec, a socket the caller hands over
 * is checked and made non-blocking, TCP connections run without Nagle.
 * Any thread (the fds are the caller's). */
#include "internal.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

int asyncio__sock_adopt(int fd, int type, int family)
{
    int got = 0;
    socklen_t len = sizeof(got);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &got, &len) < 0)
        return -errno;
    if (got != type)
        return -EINVAL;
    if (family != AF_UNSPEC) {
        struct sockaddr_storage ss;
        len = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
            return -errno;
        if (ss.ss_family != family)
            return -EINVAL;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

int asyncio__sock_open(int family, int type, int proto)
{
    int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
    return fd < 0 ? -errno : fd;
}

int asyncio__sock_setopts(int fd, unsigned opts)
{
    static const struct {
        unsigned flag;
        int level, name;
    } table[] = {
        {ASYNCIO__SOCK_REUSEADDR, SOL_SOCKET, SO_REUSEADDR},
        {ASYNCIO__SOCK_REUSEPORT, SOL_SOCKET, SO_REUSEPORT},
        {ASYNCIO__SOCK_BROADCAST, SOL_SOCKET, SO_BROADCAST},
        {ASYNCIO__SOCK_V6ONLY, IPPROTO_IPV6, IPV6_V6ONLY},
    };
    int on = 1;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if ((opts & table[i].flag) &&
            setsockopt(fd, table[i].level, table[i].name, &on, sizeof(on)) < 0)
            return -errno;
    return 0;
}

void asyncio__sock_set_nodelay(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
        (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
        int on = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    }
}

socklen_t asyncio__sock_unix_addr(struct sockaddr_un *sun, const char *path)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, strlen(path) + 1);
    return (socklen_t)sizeof(*sun);
}

int asyncio__sock_getaddrinfo(asyncio_loop *loop, const char *host, int port, int family, int type,
                              int proto, int flags, asyncio_future **out)
{
    char service[8];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = type;
    hints.ai_protocol = proto;
    hints.ai_flags = flags;
    return asyncio_loop_getaddrinfo(loop, host, service, &hints, out);
}
