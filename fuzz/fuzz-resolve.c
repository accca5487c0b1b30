/* Fuzz target: name resolution.  The first byte picks
 *   getaddrinfo: host and port strings and the hints (family, socktype,
 *     protocol, flags), reaching numeric-host and port parsing before
 *     evdns, the service-name check against /etc/services and evdns's
 *     own parsing; the answer's list is walked;
 *   getnameinfo: raw sockaddr bytes, their length and the flags, reaching
 *     the length and family checks, numeric formatting (scope ids),
 *     /etc/hosts and the reverse query.
 * Queries that go to the network go to a loopback socket that never
 * answers; closing the loop cancels them. */
#include "fuzz.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void walk_addrinfo(const struct addrinfo *ai)
{
    size_t n = 0;
    for (; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_addr == NULL || ai->ai_addrlen > sizeof(struct sockaddr_storage))
            abort();
        n++;
    }
    if (n == 0)
        abort(); /* success means at least one address */
}

static void fuzz_getaddrinfo(asyncio_loop *loop, fz_input *in)
{
    const char *host = fz_opt_str(in, 300);
    const char *port = fz_opt_str(in, 40);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    static const int families[] = {AF_UNSPEC, AF_INET, AF_INET6, AF_UNIX, 12345};
    static const int types[] = {0, SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, 99};
    uint8_t sel = fz_u8(in);
    hints.ai_family = families[sel % 5];
    hints.ai_socktype = types[(sel / 5) % 5];
    hints.ai_protocol = fz_u8(in) % 4 == 0 ? fz_int(in) : 0;
    hints.ai_flags = (int)(fz_u16(in) & 0x47f); /* the AI_* bits and a few unknown ones */
    const struct addrinfo *hp = fz_u8(in) & 1 ? &hints : NULL;

    asyncio_future *f = NULL;
    int rc = asyncio_loop_getaddrinfo(loop, host, port, hp, &f);
    fz_check(rc, "getaddrinfo");
    if (rc < 0)
        return;
    fz_loop_run(loop, f, 4);
    if (asyncio_future_exception(f) == 0)
        walk_addrinfo(fz_result(f));
    if (fz_u8(in) & 1)
        fz_check_count(asyncio_future_cancel(f), 1, "cancel");
    asyncio_future_unref(f);
    fz_loop_run(loop, NULL, 2);
}

static void fuzz_getnameinfo(asyncio_loop *loop, fz_input *in)
{
    struct sockaddr_storage ss;
    fz_bytes(in, &ss, sizeof(ss));
    static const sa_family_t families[] = {AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC};
    uint8_t sel = fz_u8(in);
    if (sel < 192)
        ss.ss_family = families[sel % 4];
    socklen_t len = (socklen_t)(fz_u8(in) % (sizeof(ss) + 8));
    int flags = (int)fz_u8(in);
    const struct sockaddr *sa = fz_u8(in) == 0xff ? NULL : (const struct sockaddr *)&ss;

    asyncio_future *f = NULL;
    int rc = asyncio_loop_getnameinfo(loop, sa, len, flags, &f);
    fz_check(rc, "getnameinfo");
    if (rc < 0)
        return;
    fz_loop_run(loop, f, 4);
    if (asyncio_future_exception(f) == 0) {
        const asyncio_nameinfo *ni = fz_result(f);
        if (ni == NULL || memchr(ni->host, '\0', sizeof(ni->host)) == NULL ||
            memchr(ni->serv, '\0', sizeof(ni->serv)) == NULL)
            abort();
    }
    asyncio_future_unref(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_input in;
    fz_input_init(&in, data, size);
    asyncio_loop *loop = fz_loop_new();
    if (fz_u8(&in) & 1)
        fuzz_getnameinfo(loop, &in);
    else
        fuzz_getaddrinfo(loop, &in);
    fz_loop_free(loop);
    fz_input_free(&in);
    return 0;
}
