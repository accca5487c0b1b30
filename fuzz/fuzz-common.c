/* The harness the fuzz targets share: input decoding, a loop that stays
 * on loopback, protocol accounting, and the network guard.
 *
 * Owns: the silent resolver socket and the temporary directory, both made
 * once per process (and so not leaks); the protocol counters.  Single
 * threaded, as libFuzzer runs the targets. */
#define _GNU_SOURCE
#include "fuzz.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/dns.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- Input ---------------------------------------------------------------- */

void fz_input_init(fz_input *in, const uint8_t *data, size_t size)
{
    memset(in, 0, sizeof(*in));
    in->p = data;
    in->n = size;
}

void fz_input_free(fz_input *in)
{
    for (size_t i = 0; i < in->nallocs; i++)
        free(in->allocs[i]);
    free(in->allocs);
    in->allocs = NULL;
    in->nallocs = in->cap = 0;
}

void *fz_alloc(fz_input *in, size_t len)
{
    if (in->nallocs == in->cap) {
        size_t cap = in->cap ? in->cap * 2 : 16;
        void **a = realloc(in->allocs, cap * sizeof(*a));
        if (a == NULL)
            abort();
        in->allocs = a;
        in->cap = cap;
    }
    void *p = calloc(1, len + 1);
    if (p == NULL)
        abort();
    in->allocs[in->nallocs++] = p;
    return p;
}

void fz_bytes(fz_input *in, void *buf, size_t len)
{
    size_t take = len < in->n ? len : in->n;
    memcpy(buf, in->p, take);
    memset((char *)buf + take, 0, len - take);
    in->p += take;
    in->n -= take;
}

uint8_t fz_u8(fz_input *in)
{
    uint8_t v;
    fz_bytes(in, &v, 1);
    return v;
}

uint16_t fz_u16(fz_input *in)
{
    return (uint16_t)(fz_u8(in) | fz_u8(in) << 8);
}

uint32_t fz_u32(fz_input *in)
{
    return (uint32_t)fz_u16(in) | (uint32_t)fz_u16(in) << 16;
}

char *fz_str(fz_input *in, size_t max)
{
    size_t len = fz_u8(in);
    if (len == 255) /* room for paths longer than sun_path */
        len += fz_u8(in);
    if (len > max)
        len = max;
    if (len > in->n)
        len = in->n;
    char *s = fz_alloc(in, len);
    fz_bytes(in, s, len);
    return s; /* fz_alloc zeroed one byte past len: a C string up to the first NUL */
}

char *fz_opt_str(fz_input *in, size_t max)
{
    switch (fz_u8(in) % 4) {
    case 0:
        return NULL;
    case 1:
        return fz_alloc(in, 0);
    default:
        return fz_str(in, max);
    }
}

int fz_int(fz_input *in)
{
    static const int edges[] = {0, 1, -1, 2, 80, 65535, 65536, -65536, INT_MAX, INT_MIN, 1024};
    uint8_t sel = fz_u8(in);
    if (sel < 128)
        return edges[sel % (sizeof(edges) / sizeof(edges[0]))];
    return (int)fz_u32(in);
}

double fz_double(fz_input *in)
{
    static const double edges[] = {0.0, -1.0, 0.001, 1.0, 60.0, -0.0};
    uint8_t sel = fz_u8(in);
    if (sel < 96)
        return edges[sel % (sizeof(edges) / sizeof(edges[0]))];
    if (sel < 104)
        return NAN;
    if (sel < 112)
        return sel & 1 ? INFINITY : -INFINITY;
    double d;
    fz_bytes(in, &d, sizeof(d));
    return d;
}

/* ---- The temporary directory ------------------------------------------------- */

static char tmpdir[64];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_tmpdir(void)
{
    if (tmpdir[0] != '\0')
        nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fz_tmpdir(void)
{
    if (tmpdir[0] == '\0') {
        strcpy(tmpdir, "/tmp/asyncio-fuzz-XXXXXX");
        if (mkdtemp(tmpdir) == NULL)
            abort();
        atexit(remove_tmpdir);
    }
    return tmpdir;
}

char *fz_path_in_tmpdir(fz_input *in, const char *name)
{
    const char *dir = fz_tmpdir();
    size_t dlen = strlen(dir), nlen = strlen(name);
    char *p = fz_alloc(in, dlen + 1 + nlen);
    memcpy(p, dir, dlen);
    p[dlen] = '/';
    for (size_t i = 0; i < nlen; i++)
        p[dlen + 1 + i] = name[i] == '/' || (i == 0 && name[i] == '.') ? '_' : name[i];
    return p;
}

/* ---- The network guard ----------------------------------------------------------- */

/* The ports this process has bound: the only ones it may talk to, so that
 * a fuzzed port never reaches another program listening on loopback. */
static uint8_t own_ports[65536 / 8];

static int port_owned(in_port_t port_be)
{
    unsigned p = ntohs(port_be);
    return (own_ports[p / 8] >> (p % 8)) & 1;
}

/* Loopback or the wildcard (which Linux connects to locally) on a port of
 * ours, AF_UNSPEC (a UDP disconnect), and UNIX paths inside the temporary
 * directory. */
static int address_allowed(const struct sockaddr *sa, socklen_t len)
{
    if (sa == NULL || len < (socklen_t)sizeof(sa_family_t))
        return 1; /* the kernel refuses it; nothing is sent */
    switch (sa->sa_family) {
    case AF_UNSPEC:
        return 1;
    case AF_INET: {
        if (len < (socklen_t)sizeof(struct sockaddr_in))
            return 1;
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        uint32_t a = ntohl(sin->sin_addr.s_addr);
        return ((a >> 24) == 127 || a == 0) && port_owned(sin->sin_port);
    }
    case AF_INET6: {
        if (len < (socklen_t)sizeof(struct sockaddr_in6))
            return 1;
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        const struct in6_addr *a = &sin6->sin6_addr;
        if (!port_owned(sin6->sin6_port))
            return 0;
        if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a))
            return 1;
        if (IN6_IS_ADDR_V4MAPPED(a))
            return a->s6_addr[12] == 127 ||
                   (a->s6_addr[12] | a->s6_addr[13] | a->s6_addr[14] | a->s6_addr[15]) == 0;
        return 0;
    }
    case AF_UNIX: {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
        size_t plen = len - offsetof(struct sockaddr_un, sun_path);
        if (plen == 0)
            return 1; /* autobind */
        size_t dlen = strlen(fz_tmpdir());
        return plen > dlen && memcmp(sun->sun_path, tmpdir, dlen) == 0 &&
               sun->sun_path[dlen] == '/';
    }
    default:
        /* The targets make only INET, INET6 and UNIX sockets, which the
         * kernel will not connect to another family's address. */
        return 1;
    }
}

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (!address_allowed(sa, len)) {
        errno = ECONNREFUSED;
        return -1;
    }
    return (int)syscall(SYS_connect, fd, sa, len);
}

/* Servers listen on loopback only, never on the wildcard; a UNIX bind
 * makes a file, so only inside the temporary directory. */
static int bind_allowed(const struct sockaddr *sa, socklen_t len)
{
    if (sa == NULL || len < (socklen_t)sizeof(sa_family_t))
        return 1;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in))
        return ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24 == 127;
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return address_allowed(sa, len);
}

int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (!bind_allowed(sa, len)) {
        errno = EADDRNOTAVAIL;
        return -1;
    }
    int rc = (int)syscall(SYS_bind, fd, sa, len);
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    if (rc == 0 && getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0) {
        unsigned p = 0;
        if (ss.ss_family == AF_INET)
            p = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            p = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        own_ports[p / 8] |= (uint8_t)(1u << (p % 8));
    }
    return rc;
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *sa,
               socklen_t salen)
{
    if (sa != NULL && !address_allowed(sa, salen)) {
        errno = ENETUNREACH;
        return -1;
    }
    return syscall(SYS_sendto, fd, buf, len, flags, sa, salen);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (msg != NULL && msg->msg_name != NULL && !address_allowed(msg->msg_name, msg->msg_namelen)) {
        errno = ENETUNREACH;
        return -1;
    }
    return syscall(SYS_sendmsg, fd, msg, flags);
}

/* ---- Loops ---------------------------------------------------------------------- */

static int silent_fd = -1;
static struct sockaddr_in silent_addr;

/* A bound UDP socket nobody reads: queries sent there never get an answer
 * (and nothing else on the machine hears them). */
static void silent_resolver_init(void)
{
    if (silent_fd >= 0) {
        char buf[512];
        while (recv(silent_fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
            ;
        return;
    }
    silent_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    memset(&silent_addr, 0, sizeof(silent_addr));
    silent_addr.sin_family = AF_INET;
    silent_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(silent_addr);
    if (silent_fd < 0 || bind(silent_fd, (struct sockaddr *)&silent_addr, len) < 0 ||
        getsockname(silent_fd, (struct sockaddr *)&silent_addr, &len) < 0)
        abort();
}

static void quiet_handler(asyncio_loop *loop, const asyncio_error_context *ctx, void *arg)
{
    (void)loop;
    (void)ctx;
    (void)arg;
}

asyncio_loop *fz_loop_new(void)
{
    silent_resolver_init();
    asyncio_loop *loop;
    if (asyncio_new_event_loop(&loop) != 0)
        abort();
    struct evdns_base *dns = asyncio_loop_get_evdns_base(loop);
    if (dns == NULL || evdns_base_clear_nameservers_and_suspend(dns) != 0 ||
        evdns_base_nameserver_sockaddr_add(dns, (struct sockaddr *)&silent_addr,
                                           sizeof(silent_addr), 0) != 0 ||
        evdns_base_resume(dns) != 0)
        abort();
    fz_check(asyncio_loop_set_exception_handler(loop, quiet_handler, NULL), "set handler");
    return loop;
}

void fz_loop_run(asyncio_loop *loop, asyncio_future *f, int iterations)
{
    for (int i = 0; i < iterations && (f == NULL || !asyncio_future_done(f)); i++) {
        /* A stop before run_forever: one iteration that does not block. */
        fz_check(asyncio_loop_stop(loop), "stop");
        if (asyncio_loop_run_forever(loop) != 0)
            abort();
    }
}

/* ---- Protocols ---------------------------------------------------------------------- */

#define FZ_PROTOCOL_MAGIC 0x70726f74u

struct fz_protocol {
    asyncio_protocol base;
    unsigned magic;
};

static size_t protocols_made, protocols_lost;

static void p_connection_lost(asyncio_protocol *self, int error)
{
    struct fz_protocol *p = (struct fz_protocol *)self;
    if (p->magic != FZ_PROTOCOL_MAGIC || error > 0) {
        fprintf(stderr, "fuzz: connection_lost(%d) on a bad protocol\n", error);
        abort();
    }
    p->magic = 0;
    protocols_lost++;
    free(p);
}

static const asyncio_protocol_ops fz_ops = {.connection_lost = p_connection_lost};

asyncio_protocol *fz_protocol_factory(void *arg)
{
    (void)arg;
    struct fz_protocol *p = calloc(1, sizeof(*p));
    if (p == NULL)
        abort();
    p->base.ops = &fz_ops;
    p->magic = FZ_PROTOCOL_MAGIC;
    protocols_made++;
    return &p->base;
}

void fz_loop_free(asyncio_loop *loop)
{
    if (asyncio_loop_close(loop) != 0)
        abort();
    asyncio_loop_unref(loop);
    if (protocols_made != protocols_lost) {
        fprintf(stderr, "fuzz: %zu protocols made, %zu heard connection_lost\n", protocols_made,
                protocols_lost);
        abort();
    }
}

void *fz_result(asyncio_future *f)
{
    void *r = NULL;
    int rc = asyncio_future_result(f, &r);
    fz_check(rc, "future_result");
    return rc == 0 ? r : NULL;
}

/* ---- Return codes ------------------------------------------------------------------- */

void fz_check(int rc, const char *what)
{
    if (rc > 0) {
        fprintf(stderr, "fuzz: %s returned %d\n", what, rc);
        abort();
    }
}

void fz_check_count(int rc, int max, const char *what)
{
    if (rc > max) {
        fprintf(stderr, "fuzz: %s returned %d (at most %d expected)\n", what, rc, max);
        abort();
    }
}
