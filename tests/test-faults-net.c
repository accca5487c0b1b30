/* Network faults (issue 8): what the transports and servers do when the
 * network or the peer misbehaves.  Each test is one fault: accept running
 * out of descriptors, a peer that resets in the middle of a large write
 * (plain TCP and TLS), half-open connections in both directions, a reader
 * that takes one byte every 10 ms, and TLS peers that stop in the middle
 * of the handshake (on either side).
 *
 * Everything is real: loopback sockets, raw peers driven from loop
 * callbacks or forked children, certificates made by the openssl CLI at
 * suite start.  SIGPIPE keeps its default action on purpose: a write that
 * raised it would kill the test, so the library must never raise it.
 * Every test counts the process's fds before it makes its loop and after
 * it freed it. */
#define _GNU_SOURCE /* accept4 */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (1024 * 1024)

static unsigned char pat(size_t i) { return (unsigned char)((i * 2654435761u) >> 13); }

/* ---- Certificates (once, in main) ------------------------------------------------ */

static char dir[64];
static char ca_pem[128], srv_pem[128], srv_key[128];

static int make_certs(void)
{
    snprintf(dir, sizeof(dir), "/tmp/asyncio-faults-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
             " -nodes -days 2 -keyout ca.key -out ca.pem -subj /CN=libasyncio-faults-ca"
             " >/dev/null 2>&1 && openssl req -newkey ec -pkeyopt"
             " ec_paramgen_curve:prime256v1 -nodes -days 2 -keyout server.key"
             " -out server.csr -subj /CN=localhost >/dev/null 2>&1"
             " && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.cnf"
             " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
             " -days 2 -extfile san.cnf -out server.pem >/dev/null 2>&1",
             dir);
    if (system(cmd) != 0)
        return -1;
    snprintf(ca_pem, sizeof(ca_pem), "%s/ca.pem", dir);
    snprintf(srv_pem, sizeof(srv_pem), "%s/server.pem", dir);
    snprintf(srv_key, sizeof(srv_key), "%s/server.key", dir);
    return 0;
}

static SSL_CTX *server_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(SSL_CTX_use_certificate_chain_file(ctx, srv_pem), 1);
    ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(ctx, srv_key, SSL_FILETYPE_PEM), 1);
    return ctx;
}

static SSL_CTX *client_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(SSL_CTX_load_verify_locations(ctx, ca_pem, NULL), 1);
    return ctx;
}

/* ---- Sockets --------------------------------------------------------------------------- */

/* A listening socket on 127.0.0.1 and its port. */
static int listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A non-blocking connect to 127.0.0.1:port, under way or done. */
static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    ck_assert_msg(rc == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
    return fd;
}

static int server_port(asyncio_server *s)
{
    int fd = -1;
    ck_assert_int_eq(asyncio_server_get_sockets(s, &fd, 1), 1);
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

static void set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    ck_assert_int_ge(fl, 0);
    ck_assert_int_eq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

/* Close `fd` so that the peer gets a RST instead of a FIN. */
static void close_with_reset(int fd)
{
    struct linger lg = {1, 0};
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(fd);
}

static void run_for(asyncio_loop *loop, double seconds)
{
    ck_assert_int_eq(asyncio_loop_call_later(loop, seconds, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
}

static double cpu_seconds(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)r.ru_utime.tv_sec + (double)r.ru_utime.tv_usec / 1e6 +
           (double)r.ru_stime.tv_sec + (double)r.ru_stime.tv_usec / 1e6;
}

/* ---- The protocol under test ---------------------------------------------------------- */

/* Records every call and checks the protocol order as it goes: nothing
 * before connection_made, nothing after connection_lost, eof_received at
 * most once, pause/resume strictly alternating. */
typedef struct fp {
    asyncio_protocol base;
    asyncio_loop *loop;
    asyncio_transport *t; /* a reference, from connection_made to fp_done */
    int made, eofs, lost, lost_err;
    int npause, nresume, paused;
    int eof_ret;      /* what eof_received returns */
    int check;        /* received bytes must follow pat() */
    size_t got;       /* bytes received */
    int stop_on_eof;  /* stop the loop in eof_received */
    int stop_on_lost; /* stop the loop in connection_lost */
    size_t stop_at;   /* stop the loop once this many bytes came (0: never) */
    void (*on_made)(struct fp *);
    void (*on_pause)(struct fp *);
    void (*on_resume)(struct fp *);
    void (*on_event)(struct fp *); /* after every call */
    void *user;
} fp;

static fp *FP(asyncio_protocol *p) { return (fp *)(void *)p; }

static void fp_event(fp *p)
{
    if (p->on_event != NULL)
        p->on_event(p);
}

static void fp_made(asyncio_protocol *self, asyncio_transport *t)
{
    fp *p = FP(self);
    ck_assert_int_eq(p->made + p->lost, 0);
    p->made = 1;
    p->t = t;
    asyncio_transport_ref(t);
    if (p->on_made != NULL)
        p->on_made(p);
    fp_event(p);
}

static void fp_data(asyncio_protocol *self, const void *data, size_t len)
{
    fp *p = FP(self);
    ck_assert_int_eq(p->made, 1);
    ck_assert_int_eq(p->eofs + p->lost, 0);
    ck_assert_uint_gt(len, 0);
    if (p->check) {
        const unsigned char *b = data;
        for (size_t i = 0; i < len; i++)
            if (b[i] != pat(p->got + i))
                ck_abort_msg("received byte %zu differs", p->got + i);
    }
    size_t before = p->got;
    p->got += len;
    if (p->stop_at > 0 && before < p->stop_at && p->got >= p->stop_at)
        asyncio_loop_stop(p->loop);
    fp_event(p);
}

static int fp_eof(asyncio_protocol *self)
{
    fp *p = FP(self);
    ck_assert_int_eq(p->made, 1);
    ck_assert_int_eq(p->eofs + p->lost, 0);
    p->eofs++;
    if (p->stop_on_eof)
        asyncio_loop_stop(p->loop);
    fp_event(p);
    return p->eof_ret;
}

static void fp_pause(asyncio_protocol *self)
{
    fp *p = FP(self);
    ck_assert_int_eq(p->lost, 0);
    ck_assert_msg(!p->paused, "pause_writing twice in a row");
    p->paused = 1;
    p->npause++;
    if (p->on_pause != NULL)
        p->on_pause(p);
    fp_event(p);
}

static void fp_resume(asyncio_protocol *self)
{
    fp *p = FP(self);
    ck_assert_int_eq(p->lost, 0);
    ck_assert_msg(p->paused, "resume_writing without pause_writing");
    p->paused = 0;
    p->nresume++;
    if (p->on_resume != NULL)
        p->on_resume(p);
    fp_event(p);
}

static void fp_lost(asyncio_protocol *self, int err)
{
    fp *p = FP(self);
    ck_assert_int_eq(p->lost, 0);
    p->lost = 1;
    p->lost_err = err;
    if (p->stop_on_lost)
        asyncio_loop_stop(p->loop);
    fp_event(p);
}

static const asyncio_protocol_ops fp_ops = {.connection_made = fp_made,
                                            .data_received = fp_data,
                                            .eof_received = fp_eof,
                                            .pause_writing = fp_pause,
                                            .resume_writing = fp_resume,
                                            .connection_lost = fp_lost};

static void fp_init(fp *p, asyncio_loop *loop)
{
    memset(p, 0, sizeof(*p));
    p->base.ops = &fp_ops;
    p->loop = loop;
}

static void fp_done(fp *p)
{
    if (p->t != NULL)
        asyncio_transport_unref(p->t);
    p->t = NULL;
}

static asyncio_protocol *fp_factory(void *arg) { return &((fp *)arg)->base; }

/* create_connection to 127.0.0.1:port (TLS when ctx), run until it is
 * made; returns the future's error. */
static int fp_connect(asyncio_loop *loop, fp *p, int port, SSL_CTX *ctx, double hs_timeout)
{
    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.ssl = ctx;
    if (ctx != NULL) {
        o.server_hostname = "localhost";
        if (hs_timeout > 0)
            o.ssl_handshake_timeout = hs_timeout;
    }
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_connection(loop, fp_factory, p, "127.0.0.1", port, &o, &f),
                     0);
    int err = asyncio_loop_run_until_complete(loop, f);
    asyncio_future_unref(f);
    return err;
}

/* ---- A raw peer that reads from a loop callback ---------------------------------------- */

/* Reads everything (checking pat() when `check`) until EOF or an error;
 * calls `notify` after each read. */
typedef struct peer {
    asyncio_loop *loop;
    int fd;
    size_t got;
    int check, bad, eof, err;
    void (*notify)(struct peer *);
    void *user;
} peer;

static void peer_readable(void *arg)
{
    peer *r = arg;
    unsigned char buf[65536];
    ssize_t n = recv(r->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0) {
        if (r->check)
            for (ssize_t i = 0; i < n; i++)
                if (buf[i] != pat(r->got + (size_t)i))
                    r->bad++;
        r->got += (size_t)n;
    } else {
        r->eof = n == 0;
        r->err = n < 0 ? -errno : 0;
        asyncio_loop_remove_reader(r->loop, r->fd);
    }
    if (r->notify != NULL)
        r->notify(r);
}

static void peer_start(peer *r, asyncio_loop *loop, int fd, int check)
{
    memset(r, 0, sizeof(*r));
    r->loop = loop;
    r->fd = fd;
    r->check = check;
    set_nonblocking(fd);
    ck_assert_int_eq(asyncio_loop_add_reader(loop, fd, peer_readable, r), 0);
}

/* Write `len` bytes of pat() from `off`, `chunk` bytes per call. */
static void write_pattern(asyncio_transport *t, size_t off, size_t len, size_t chunk)
{
    unsigned char *b = malloc(chunk);
    ck_assert_ptr_nonnull(b);
    for (size_t done = 0; done < len;) {
        size_t n = len - done < chunk ? len - done : chunk;
        for (size_t i = 0; i < n; i++)
            b[i] = pat(off + done + i);
        ck_assert_int_eq(asyncio_transport_write(t, b, n), 0);
        done += n;
    }
    free(b);
}

/* ==== EMFILE on accept, then recovery ================================================== */

struct emfile {
    asyncio_server *server;
    int calls, resource, right_server;
};

static void emfile_handler(asyncio_loop *loop, const asyncio_error_context *ctx, void *arg)
{
    struct emfile *e = arg;
    e->calls++;
    if (ctx->error == -EMFILE || ctx->error == -ENFILE)
        e->resource++;
    if (ctx->server == e->server)
        e->right_server++;
}

/* The server's side: an echo protocol that counts, and stops the loop
 * when `want_made` connections were made or `want_lost` lost. */
struct echo_stats {
    asyncio_loop *loop;
    int made, lost, want_made, want_lost, factory_calls;
};

struct echo {
    asyncio_protocol base;
    asyncio_transport *t;
    struct echo_stats *st;
};

static void echo_made(asyncio_protocol *self, asyncio_transport *t)
{
    struct echo *e = (struct echo *)self;
    e->t = t;
    if (++e->st->made == e->st->want_made)
        asyncio_loop_stop(e->st->loop);
}

static void echo_data(asyncio_protocol *self, const void *data, size_t len)
{
    struct echo *e = (struct echo *)self;
    ck_assert_int_eq(asyncio_transport_write(e->t, data, len), 0);
}

static void echo_lost(asyncio_protocol *self, int err)
{
    struct echo *e = (struct echo *)self;
    if (++e->st->lost == e->st->want_lost)
        asyncio_loop_stop(e->st->loop);
    free(e);
}

static const asyncio_protocol_ops echo_ops = {
    .connection_made = echo_made, .data_received = echo_data, .connection_lost = echo_lost};

static asyncio_protocol *echo_factory(void *arg)
{
    struct echo_stats *st = arg;
    st->factory_calls++;
    struct echo *e = calloc(1, sizeof(*e));
    ck_assert_ptr_nonnull(e);
    e->base.ops = &echo_ops;
    e->st = st;
    return &e->base;
}

#define NCLIENTS 8

/* The raw clients' side of the echo: each reads its own message back. */
struct echo_clients {
    asyncio_loop *loop;
    int fd[NCLIENTS];
    char buf[NCLIENTS][32];
    size_t len[NCLIENTS], want[NCLIENTS];
    int complete;
};

struct echo_client_arg {
    struct echo_clients *ec;
    int i;
};

static void echo_client_readable(void *arg)
{
    struct echo_client_arg *a = arg;
    struct echo_clients *ec = a->ec;
    int i = a->i;
    ssize_t n =
        recv(ec->fd[i], ec->buf[i] + ec->len[i], sizeof(ec->buf[i]) - ec->len[i], MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN)
        return;
    ck_assert_int_gt(n, 0);
    ec->len[i] += (size_t)n;
    if (ec->len[i] >= ec->want[i]) {
        asyncio_loop_remove_reader(ec->loop, ec->fd[i]);
        if (++ec->complete == NCLIENTS)
            asyncio_loop_stop(ec->loop);
    }
}

START_TEST(accept_emfile_pauses_then_accepts_every_pending_client)
{
    int fds_at_start = tu_count_fds();
    asyncio_loop *loop = tu_new_loop();
    tu_guard(loop, 8.0);
    struct echo_stats st = {.loop = loop, .want_made = NCLIENTS, .want_lost = NCLIENTS};
    asyncio_future *f;
    ck_assert_int_eq(asyncio_loop_create_server(loop, echo_factory, &st, "127.0.0.1", 0, NULL, &f),
                     0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
    asyncio_server *srv;
    ck_assert_int_eq(asyncio_future_result(f, (void **)&srv), 0);
    asyncio_server_ref(srv);
    asyncio_future_unref(f);
    struct emfile e = {.server = srv};
    ck_assert_int_eq(asyncio_loop_set_exception_handler(loop, emfile_handler, &e), 0);
    int port = server_port(srv);

    /* The clients' sockets first; then a low limit and the fd table filled
     * up to it, so that every accept() fails with EMFILE. */
    struct echo_clients ec = {.loop = loop};
    for (int i = 0; i < NCLIENTS; i++)
        ec.fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct rlimit old;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    int lowest = dup(0);
    ck_assert_int_ge(lowest, 0);
    close(lowest);
    struct rlimit low = {(rlim_t)lowest + 32, old.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    int filler[64];
    int nfill = 0;
    while (nfill < 64 && (filler[nfill] = dup(0)) >= 0)
        nfill++;
    ck_assert_int_lt(nfill, 64);
    ck_assert_int_eq(errno, EMFILE);

    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < NCLIENTS; i++) {
        int rc = connect(ec.fd[i], (struct sockaddr *)&sin, sizeof(sin));
        ck_assert(rc == 0 || errno == EINPROGRESS);
    }

    /* Out of fds for 0.6 s: told, resting, not spinning. */
    double cpu0 = cpu_seconds();
    run_for(loop, 0.6);
    double cpu = cpu_seconds() - cpu0;
    ck_assert_int_ge(e.resource, 1);
    ck_assert_int_le(e.resource, 2); /* one per retry (1 s apart), not one per loop pass */
    ck_assert_int_eq(e.calls, e.resource);
    ck_assert_int_eq(e.right_server, e.calls);
    ck_assert_int_eq(st.factory_calls, 0);
    ck_assert_msg(cpu < 0.3, "%.3f s of CPU in 0.6 s without fds: a busy loop", cpu);

    /* fds again: the retry accepts every client that waited, and each
     * connection works. */
    for (int i = 0; i < nfill; i++)
        close(filler[i]);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    tu_run(loop); /* until the NCLIENTS-th connection_made */
    ck_assert_int_eq(st.made, NCLIENTS);
    ck_assert_int_eq(st.factory_calls, NCLIENTS);
    ck_assert_int_le(e.calls, 2);

    struct echo_client_arg args[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof(msg), "client %d says hi", i);
        ec.want[i] = (size_t)n;
        ck_assert_int_eq(send(ec.fd[i], msg, (size_t)n, MSG_NOSIGNAL), n);
        args[i].ec = &ec;
        args[i].i = i;
        ck_assert_int_eq(asyncio_loop_add_reader(loop, ec.fd[i], echo_client_readable, &args[i]),
                         0);
    }
    tu_run(loop); /* until every echo is back */
    for (int i = 0; i < NCLIENTS; i++) {
        char msg[32];
        snprintf(msg, sizeof(msg), "client %d says hi", i);
        ck_assert_uint_eq(ec.len[i], ec.want[i]);
        ck_assert_int_eq(memcmp(ec.buf[i], msg, ec.want[i]), 0);
    }

    for (int i = 0; i < NCLIENTS; i++)
        close(ec.fd[i]);
    tu_run(loop); /* until the server side lost all of them */
    ck_assert_int_eq(st.lost, NCLIENTS);
    ck_assert_int_eq(asyncio_server_close(srv), 0);
    asyncio_server_unref(srv);
    tu_free_loop(loop);
    ck_assert_int_eq(tu_count_fds(), fds_at_start);
}
END_TEST

/* ==== A peer reset in the middle of a large write ======================================= */

/* 16 MiB: far more than loopback's socket buffers take; one write of it
 * costs about 0.5 s under ASan (64 MiB took 2 s). */
#define LARGE_WRITE (16 * MiB)
#define READ_BEFORE_RESET (256 * 1024)

/* `len` bytes whose first MiB follows pat() (the peers check what they
 * read, at most that much); zeros after it, which are quick to make. */
static unsigned char *pattern_block(size_t len)
{
    unsigned char *b = calloc(1, len);
    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < len && i < MiB; i++)
        b[i] = pat(i);
    return b;
}

/* The raw TCP peer: reads READ_BEFORE_RESET bytes, then resets. */
static void reset_after_some(peer *r)
{
    if (r->got >= READ_BEFORE_RESET && r->fd >= 0) {
        asyncio_loop_remove_reader(r->loop, r->fd);
        close_with_reset(r->fd);
        r->fd = -1;
    }
}

/* What a transport must look like after the reset: lost once with the
 * socket's error, the buffer gone, nothing more called. */
static void check_reset_outcome(asyncio_loop *loop, fp *p, int eofs)
{
    ck_assert_int_eq(p->lost, 1);
    ck_assert_msg(p->lost_err == -ECONNRESET || p->lost_err == -EPIPE,
                  "connection_lost(%d: %s), expected ECONNRESET or EPIPE", p->lost_err,
                  asyncio_strerror(p->lost_err));
    ck_assert_int_eq(p->eofs, eofs);
    ck_assert_int_ge(p->npause, 1); /* far above the high-water mark */
    ck_assert_uint_eq(asyncio_transport_get_write_buffer_size(p->t), 0);
    ck_assert_int_eq(asyncio_transport_is_closing(p->t), 1);
    ck_assert_int_eq(asyncio_transport_write(p->t, "late", 4), -EPIPE);
    run_for(loop, 0.1); /* nothing may come after connection_lost (fp checks) */
    ck_assert_int_eq(p->lost, 1);
}

/* Our transport writes 16 MiB to a raw TCP peer that reads 256 KiB and
 * resets.  With `peer_eof_first` the peer has sent its FIN before (we keep
 * the connection half-open): our socket is in CLOSE_WAIT then, where
 * Linux reports the reset as EPIPE to the next send -- the send that
 * raises SIGPIPE unless the library says MSG_NOSIGNAL. */
static void tcp_reset_case(int peer_eof_first)
{
    int fds_at_start = tu_count_fds();
    int port;
    int lfd = listener(&port);
    asyncio_loop *loop = tu_new_loop();
    tu_guard(loop, 10.0); /* a large write under ASan on a loaded machine */
    fp p;
    fp_init(&p, loop);
    p.stop_on_lost = 1;
    p.eof_ret = 1;
    ck_assert_int_eq(fp_connect(loop, &p, port, NULL, 0), 0);
    int pfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(pfd, 0);
    if (peer_eof_first) {
        ck_assert_int_eq(shutdown(pfd, SHUT_WR), 0);
        p.stop_on_eof = 1;
        tu_run(loop); /* until eof_received */
        ck_assert_int_eq(p.eofs, 1);
        p.stop_on_eof = 0;
    }
    peer r;
    peer_start(&r, loop, pfd, 1);
    r.notify = reset_after_some;

    unsigned char *data = pattern_block(LARGE_WRITE);
    ck_assert_int_eq(asyncio_transport_write(p.t, data, LARGE_WRITE), 0);
    free(data); /* the transport copied what it could not send at once */
    ck_assert_uint_gt(asyncio_transport_get_write_buffer_size(p.t), 0);
    tu_run(loop); /* until connection_lost */
    ck_assert_int_eq(r.bad, 0);
    ck_assert_uint_ge(r.got, READ_BEFORE_RESET);
    ck_assert_int_eq(r.fd, -1); /* the peer did reset */
    check_reset_outcome(loop, &p, peer_eof_first);
    fp_done(&p);
    tu_free_loop(loop);
    close(lfd);
    ck_assert_int_eq(tu_count_fds(), fds_at_start);
}

START_TEST(peer_reset_during_a_large_write_is_one_connection_lost) { tcp_reset_case(0); }
END_TEST

START_TEST(peer_reset_after_its_eof_during_a_large_write_raises_no_sigpipe) { tcp_reset_case(1); }
END_TEST

/* A forked TLS server that reads READ_BEFORE_RESET bytes of pat() and
 * resets the connection.  With `go` >= 0 it first ends its side cleanly
 * (close_notify, then its FIN) and waits for a byte on `go` (sent once
 * our side heard the EOF) before the reset. */
static pid_t tls_resetting_peer(int lfd, int go)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid != 0)
        return pid;
    alarm(10); /* never outlive a test that failed before reaping us */
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate_chain_file(ctx, srv_pem);
    SSL_CTX_use_PrivateKey_file(ctx, srv_key, SSL_FILETYPE_PEM);
    int fd = accept(lfd, NULL, NULL);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1)
        _exit(2);
    size_t got = 0;
    unsigned char buf[16384];
    while (got < READ_BEFORE_RESET) {
        int n = SSL_read(ssl, buf, sizeof(buf));
        if (n <= 0)
            _exit(3);
        for (int i = 0; i < n; i++)
            if (buf[i] != pat(got + (size_t)i))
                _exit(4);
        got += (size_t)n;
    }
    if (go >= 0) {
        SSL_shutdown(ssl);
        shutdown(fd, SHUT_WR);
        char c;
        if (read(go, &c, 1) != 1)
            _exit(5);
    }
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    _exit(0);
}

static void tell_peer_at_eof(fp *p)
{
    int *go = p->user;
    if (p->eofs == 1 && *go >= 0) {
        ck_assert_int_eq(write(*go, "g", 1), 1);
        close(*go);
        *go = -1;
    }
}

/* Our TLS transport writes 16 MiB to a peer that reads 256 KiB and
 * resets.  With `peer_eof_first` the peer said goodbye first (our
 * eof_received keeps the transport open) and our socket is in
 * CLOSE_WAIT when the reset comes: OpenSSL's socket BIO write()s without
 * MSG_NOSIGNAL, and Linux answers that write with EPIPE and SIGPIPE. */
static void tls_reset_case(int peer_eof_first)
{
    int fds_at_start = tu_count_fds();
    int port;
    int lfd = listener(&port);
    int go[2] = {-1, -1};
    if (peer_eof_first)
        ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
    pid_t pid = tls_resetting_peer(lfd, go[0]);
    if (go[0] >= 0)
        close(go[0]);
    asyncio_loop *loop = tu_new_loop();
    tu_guard(loop, 10.0); /* a large write under ASan on a loaded machine */
    SSL_CTX *cctx = client_ctx();
    fp p;
    fp_init(&p, loop);
    p.stop_on_lost = 1;
    p.eof_ret = 1;
    p.user = &go[1];
    p.on_event = tell_peer_at_eof;
    ck_assert_int_eq(fp_connect(loop, &p, port, cctx, 0), 0);

    unsigned char *data = pattern_block(LARGE_WRITE);
    ck_assert_int_eq(asyncio_transport_write(p.t, data, LARGE_WRITE), 0);
    free(data);
    tu_run(loop); /* until connection_lost */
    int status = -1;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "TLS peer ended with %d", status);
    check_reset_outcome(loop, &p, peer_eof_first);
    fp_done(&p);
    tu_free_loop(loop);
    SSL_CTX_free(cctx);
    close(lfd);
    if (go[1] >= 0)
        close(go[1]);
    ck_assert_int_eq(tu_count_fds(), fds_at_start);
}

START_TEST(tls_peer_reset_during_a_large_write_is_one_connection_lost) { tls_reset_case(0); }
END_TEST

START_TEST(tls_peer_reset_after_its_close_notify_raises_no_sigpipe) { tls_reset_case(1); }
END_TEST

/* ==== Half-open connections ============================================================ */

/* Stops the loop once our transport is lost and the raw peer saw EOF. */
struct both {
    fp *p;
    peer *r;
    asyncio_loop *loop;
};

static void both_check(struct both *b)
{
    if (b->p->lost && (b->r->eof || b->r->err < 0))
        asyncio_loop_stop(b->loop);
}

static void both_from_fp(fp *p) { both_check(p->user); }
static void both_from_peer(peer *r) { both_check(r->user); }

START_TEST(peer_shutdown_wr_with_eof_received_true_keeps_us_writing)
{
    int fds_at_start = tu_count_fds();
    int port;
    int lfd = listener(&port);
    asyncio_loop *loop = tu_new_guarded_loop();
    fp p;
    fp_init(&p, loop);
    p.eof_ret = 1;
    p.stop_on_eof = 1;
    ck_assert_int_eq(fp_connect(loop, &p, port, NULL, 0), 0);
    int pfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(pfd, 0);
    ck_assert_int_eq(send(pfd, "hello", 5, MSG_NOSIGNAL), 5);
    ck_assert_int_eq(shutdown(pfd, SHUT_WR), 0);
    tu_run(loop); /* until eof_received */
    ck_assert_uint_eq(p.got, 5);
    ck_assert_int_eq(p.eofs, 1);
    ck_assert_int_eq(p.lost, 0);
    ck_assert_int_eq(asyncio_transport_is_closing(p.t), 0); /* half-open: still writable */

    /* Half-open: everything written now reaches the peer, then our FIN. */
    peer r;
    peer_start(&r, loop, pfd, 1);
    struct both b = {&p, &r, loop};
    p.user = r.user = &b;
    p.on_event = both_from_fp;
    r.notify = both_from_peer;
    write_pattern(p.t, 0, 1 * MiB, 64 * 1024);
    ck_assert_int_eq(asyncio_transport_close(p.t), 0);
    tu_run(loop); /* until lost and the peer's EOF */
    ck_assert_int_eq(r.eof, 1);
    ck_assert_uint_eq(r.got, 1 * MiB);
    ck_assert_int_eq(r.bad, 0);
    ck_assert_int_eq(p.eofs, 1);
    ck_assert_int_eq(p.lost, 1);
    ck_assert_int_eq(p.lost_err, 0);
    fp_done(&p);
    tu_free_loop(loop);
    close(pfd);
    close(lfd);
    ck_assert_int_eq(tu_count_fds(), fds_at_start);
}
END_TEST

/* The peer's reads go on after our eof_received returned 0: from then on
 * the transport is closing, flushing what it holds. */
static void closing_after_eof(peer *r)
{
    struct both *b = r->user;
    if (b->p->eofs == 1 && !b->p->lost)
        ck_assert_int_eq(asyncio_transport_is_closing(b->p->t), 1);
    both_check(b);
}

START_TEST(peer_shutdown_wr_with_eof_received_false_closes_after_flushing)
{
    int fds_at_start = tu_count_fds();
    int port;
    int lfd = listener(&port);
    asyncio_loop *loop = tu_new_guarded_loop();
    fp p;
    fp_init(&p, loop);
    p.eof_ret = 0;
    ck_assert_int_eq(fp_connect(loop, &p, port, NULL, 0), 0);
    int pfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(pfd, 0);
    /* 1 MiB queued (the peer does not read yet) when the EOF comes: the
     * close that eof_received's 0 asks for sends it all first.  Small
     * socket buffers, or loopback's would take the whole MiB. */
    int *sock = asyncio_transport_get_extra_info(p.t, "socket");
    ck_assert_ptr_nonnull(sock);
    int small = 64 * 1024;
    ck_assert_int_eq(setsockopt(*sock, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    ck_assert_int_eq(setsockopt(pfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    write_pattern(p.t, 0, 1 * MiB, 64 * 1024);
    ck_assert_uint_gt(asyncio_transport_get_write_buffer_size(p.t), 0);
    ck_assert_int_eq(send(pfd, "bye", 3, MSG_NOSIGNAL), 3);
    ck_assert_int_eq(shutdown(pfd, SHUT_WR), 0);
    peer r;
    peer_start(&r, loop, pfd, 1);
    struct both b = {&p, &r, loop};
    p.user = r.user = &b;
    p.on_event = both_from_fp;
    r.notify = closing_after_eof;
    tu_run(loop); /* until lost and the peer's EOF */
    ck_assert_uint_eq(p.got, 3);
    ck_assert_int_eq(p.eofs, 1);
    ck_assert_int_eq(p.lost, 1);
    ck_assert_int_eq(p.lost_err, 0);
    ck_assert_int_eq(r.eof, 1);
    ck_assert_uint_eq(r.got, 1 * MiB);
    ck_assert_int_eq(r.bad, 0);
    fp_done(&p);
    tu_free_loop(loop);
    close(pfd);
    close(lfd);
    ck_assert_int_eq(tu_count_fds(), fds_at_start);
}
END_TEST

/* The peer of write_eof: reads our request up to our EOF, then sends
 * `total` bytes of pat() as fast as the socket takes them, then its FIN. */
struct answerer {
    asyncio_loop *loop;
    int fd;
    char req[64];
    size_t reqlen, sent, total;
    int saw_eof, done;
};

static void answerer_writable(void *arg)
{
    struct answerer *a = arg;
    unsigned char buf[16384];
    size_t n = a->total - a->sent < sizeof(buf) ? a->total - a->sent : sizeof(buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = pat(a->sent + i);
    ssize_t w = send(a->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && errno == EAGAIN)
        return;
    ck_assert_int_gt(w, 0);
    a->sent += (size_t)w;
    if (a->sent == a->total) {
        asyncio_loop_remove_writer(a->loop, a->fd);
        ck_assert_int_eq(shutdown(a->fd, SHUT_WR), 0);
        a->done = 1;
    }
}

static void answerer_readable(void *arg)
{
    struct answerer *a = arg;
    ssize_t n = recv(a->fd, a->req + a->reqlen, sizeof(a->req) - a->reqlen, MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN)
        return;
    ck_assert_int_ge(n, 0);
    a->reqlen += (size_t)n;
    if (n == 0) {
        a->saw_eof = 1;
        asyncio_loop_remove_reader(a->loop, a->fd);
        ck_assert_int_eq(asyncio_loop_add_writer(a->loop, a->fd, answerer_writable, a), 0);
    }
}

static void lost_after_everything(fp *p)
{
    struct answerer *a = p->user;
    if (p->lost) {
        /* Only once both directions are done. */
        ck_assert_int_eq(a->done, 1);
        ck_assert_int_eq(p->eofs, 1);
        ck_assert_uint_eq(p->got, a->total);
        asyncio_loop_stop(p->loop);
    } else if (p->got > 0) {
        ck_assert_int_eq(asyncio_transport_is_closing(p->t), 0); /* our write_eof closed nothing */
    }
}

START_TEST(write_eof_keeps_receiving_until_the_peer_finishes)
{
    int fds_at_start = tu_count_fds();
    int port;
    int lfd = listener(&port);
    asyncio_loop *loop = tu_new_guarded_loop();
    fp p;
    fp_init(&p, loop);
    p.check = 1;
    p.eof_ret = 0;
    ck_assert_int_eq(fp_connect(loop, &p, port, NULL, 0), 0);
    int pfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    ck_assert_int_ge(pfd, 0);
    struct answerer a = {.loop = loop, .fd = pfd, .total = 4 * MiB};
    p.user = &a;
    p.on_event = lost_after_everything;
    ck_assert_int_eq(asyncio_loop_add_reader(loop, pfd, answerer_readable, &a), 0);

    ck_assert_int_eq(asyncio_transport_can_write_eof(p.t), 1);
    ck_assert_int_eq(asyncio_transport_write(p.t, "request", 7), 0);
    ck_assert_int_eq(asyncio_transport_write_eof(p.t), 0);
    ck_assert_int_eq(asyncio_transport_is_closing(p.t), 0);
    ck_assert_int_eq(asyncio_transport_write(p.t, "more", 4), -EPIPE);
    tu_run(loop); /* until connection_lost, after all 4 MiB and the peer's EOF */
    ck_assert_int_eq(a.saw_eof, 1);
    ck_assert_uint_eq(a.reqlen, 7);
    ck_assert_int_eq(memcmp(a.req, "request", 7), 0);
    ck_assert_uint_eq(p.got, 4 * MiB);
    ck_assert_int_eq(p.eofs, 1);
    ck_assert_int_eq(p.lost, 1);
    ck_assert_int_eq(p.lost_err, 0);
    fp_done(&p);
    tu_free_loop(loop);
    close(pfd);
    close(lfd);
    ck_assert_int_eq(tu_count_fds(), fds_at_start);
}
END_TEST

/* ==== A slow reader ===================================================================== */

#define SLOW_HIGH 16
#define SLOW_LOW 4
#define SLOW_CHUNK 4
#define SLOW_PHASE 1.5  /* seconds of one byte every 10 ms */
#define SLOW_TOTAL 8192 /* bytes written in all */

struct slow {
    asyncio_loop *loop;
    fp *p;
    int fd; /* the reader's socket */
    size_t written, read, max_buffered;
    int bad, fast, eof;
    int pauses_slow, resumes_slow; /* seen while the reader was slow */
    double slow_until;
    asyncio_handle *tick;
};

static void slow_check_buffer(struct slow *s)
{
    if (s->p->t == NULL || s->p->lost)
        return;
    size_t n = asyncio_transport_get_write_buffer_size(s->p->t);
    if (n > s->max_buffered)
        s->max_buffered = n;
    ck_assert_msg(n <= SLOW_HIGH + SLOW_CHUNK, "%zu bytes buffered: above high-water + one write",
                  n);
}

/* Write while not paused (pause_writing comes inside a write). */
static void slow_pump(fp *p)
{
    struct slow *s = p->user;
    unsigned char b[SLOW_CHUNK];
    while (!p->paused && s->written < SLOW_TOTAL) {
        for (size_t i = 0; i < SLOW_CHUNK; i++)
            b[i] = pat(s->written + i);
        ck_assert_int_eq(asyncio_transport_write(p->t, b, SLOW_CHUNK), 0);
        s->written += SLOW_CHUNK;
        slow_check_buffer(s);
    }
    if (s->written == SLOW_TOTAL && !asyncio_transport_is_closing(p->t))
        ck_assert_int_eq(asyncio_transport_close(p->t), 0);
}

static void slow_pause(fp *p)
{
    struct slow *s = p->user;
    if (!s->fast)
        s->pauses_slow++;
}

static void slow_resume(fp *p)
{
    struct slow *s = p->user;
    if (!s->fast)
        s->resumes_slow++;
    slow_pump(p);
}

static void slow_event(fp *p)
{
    struct slow *s = p->user;
    slow_check_buffer(s);
    if (p->lost && s->eof)
        asyncio_loop_stop(s->loop);
}

static void slow_got(struct slow *s, const unsigned char *b, ssize_t n)
{
    for (ssize_t i = 0; i < n; i++)
        if (b[i] != pat(s->read + (size_t)i))
            s->bad++;
    s->read += (size_t)n;
}

static void fast_readable(void *arg)
{
    struct slow *s = arg;
    unsigned char b[4096];
    ssize_t n = recv(s->fd, b, sizeof(b), MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN)
        return;
    ck_assert_int_ge(n, 0);
    slow_got(s, b, n);
    if (n == 0) {
        s->eof = 1;
        asyncio_loop_remove_reader(s->loop, s->fd);
        if (s->p->lost)
            asyncio_loop_stop(s->loop);
    }
}

/* One byte every 10 ms, then everything as fast as it comes. */
static void slow_tick(void *arg)
{
    struct slow *s = arg;
    asyncio_handle_unref(s->tick);
    s->tick = NULL;
    slow_check_buffer(s);
    if (tu_now() >= s->slow_until) {
        s->fast = 1;
        ck_assert_int_eq(asyncio_loop_add_reader(s->loop, s->fd, fast_readable, s), 0);
        return;
    }
    unsigned char b;
    ssize_t n = recv(s->fd, &b, 1, MSG_DONTWAIT);
    ck_assert_msg(n == 1 || (n < 0 && errno == EAGAIN), "slow read: %zd", n);
    if (n == 1)
        slow_got(s, &b, 1);
    ck_assert_int_eq(asyncio_loop_call_later(s->loop, 0.01, slow_tick, s, &s->tick), 0);
}

START_TEST(slow_reader_keeps_the_write_buffer_within_its_limits)
{
    int fds_at_start = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    /* A UNIX stream socket: its flow control counts each queued write
     * (with its kernel overhead) against the sender's SO_SNDBUF, so a
     * small buffer there turns one byte per 10 ms into room for our
     * next small write within the test's time.  On TCP the receive
     * window would stay shut for seconds (silly-window avoidance). */
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int small = 1; /* the kernel's minimum */
    ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    ck_assert_int_eq(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    fp p;
    fp_init(&p, loop);
    struct slow s = {.loop = loop, .p = &p, .fd = sv[1]};
    p.user = &s;
    p.on_pause = slow_pause;
    p.on_resume = slow_resume;
    p.on_event = slow_event;
    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.sock = sv[0];
    asyncio_future *f;
    ck_assert_int_eq(asyncio_loop_create_connection(loop, fp_factory, &p, NULL, 0, &o, &f), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
    asyncio_future_unref(f);
    ck_assert_int_eq(asyncio_transport_set_write_buffer_limits(p.t, SLOW_HIGH, SLOW_LOW), 0);

    s.slow_until = tu_now() + SLOW_PHASE;
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.01, slow_tick, &s, &s.tick), 0);
    slow_pump(&p);
    tu_run(loop); /* the slow phase, then the fast one until lost and EOF */

    ck_assert_int_eq(p.lost, 1);
    ck_assert_int_eq(p.lost_err, 0);
    ck_assert_int_eq(s.eof, 1);
    ck_assert_uint_eq(s.written, SLOW_TOTAL);
    ck_assert_uint_eq(s.read, SLOW_TOTAL); /* every byte, in order */
    ck_assert_int_eq(s.bad, 0);
    /* While the reader was slow the writer was held back, let go and held
     * back again (about every 0.4 s here; 1 byte per 10 ms frees room
     * for the next few small writes). */
    ck_assert_int_ge(s.pauses_slow, 2);
    ck_assert_int_ge(s.resumes_slow, 1);
    ck_assert_int_eq(p.npause, p.nresume + p.paused);
    ck_assert_uint_le(s.max_buffered, SLOW_HIGH + SLOW_CHUNK);
    fp_done(&p);
    tu_free_loop(loop);
    close(sv[1]);
    ck_assert_int_eq(tu_count_fds(), fds_at_start);
}
END_TEST

/* ==== A TLS peer that stops mid-handshake ============================================== */

struct hs_errors {
    int calls, timeouts;
};

static void hs_handler(asyncio_loop *loop, const asyncio_error_context *ctx, void *arg)
{
    struct hs_errors *h = arg;
    h->calls++;
    if (ctx->error == -ETIMEDOUT)
        h->timeouts++;
}

/* A raw client of our TLS server, watching for the server to drop it. */
struct stalled {
    asyncio_loop *loop;
    int fd, dropped;
    int *ndropped;
};

static void stalled_readable(void *arg)
{
    struct stalled *c = arg;
    char buf[4096];
    ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n > 0)
        return; /* a server speaks first only after a full ClientHello: not here */
    c->dropped = 1;
    asyncio_loop_remove_reader(c->loop, c->fd);
    if (++*c->ndropped == 2)
        asyncio_loop_stop(c->loop);
}

START_TEST(tls_server_drops_a_client_that_stalls_mid_handshake)
{
    int fds_at_start = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    SSL_CTX *sctx = server_ctx(), *cctx = client_ctx();
    struct echo_stats st = {.loop = loop};
    asyncio_server_options so = ASYNCIO_SERVER_OPTIONS_INIT;
    so.ssl = sctx;
    so.ssl_handshake_timeout = 0.3;
    asyncio_future *f;
    ck_assert_int_eq(asyncio_loop_create_server(loop, echo_factory, &st, "127.0.0.1", 0, &so, &f),
                     0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
    asyncio_server *srv;
    ck_assert_int_eq(asyncio_future_result(f, (void **)&srv), 0);
    asyncio_server_ref(srv);
    asyncio_future_unref(f);
    struct hs_errors h = {0};
    ck_assert_int_eq(asyncio_loop_set_exception_handler(loop, hs_handler, &h), 0);
    int port = server_port(srv);

    /* One client sends the first bytes of a ClientHello (a handshake
     * record announcing 512 bytes, of which 9 come), the other nothing. */
    static const unsigned char partial[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc};
    int ndropped = 0;
    struct stalled c[2];
    for (int i = 0; i < 2; i++) {
        c[i] = (struct stalled){.loop = loop, .fd = raw_connect(port), .ndropped = &ndropped};
        ck_assert_int_eq(asyncio_loop_add_reader(loop, c[i].fd, stalled_readable, &c[i]), 0);
    }
    run_for(loop, 0.05); /* both connected */
    ck_assert_int_eq(send(c[0].fd, partial, sizeof(partial), MSG_NOSIGNAL), (int)sizeof(partial));
    double t0 = tu_now();
    tu_run(loop); /* until the server dropped both */
    double took = tu_now() - t0;
    ck_assert_msg(took >= 0.2 && took < 2.0, "dropped after %.3f s", took);
    ck_assert_int_eq(c[0].dropped + c[1].dropped, 2);
    run_for(loop, 0.05); /* the reports are queued with the drop */
    ck_assert_int_eq(h.timeouts, 2);
    ck_assert_int_eq(h.calls, 2);
    /* A failed handshake makes no protocol (tls.h), so none is left
     * waiting for a connection_lost. */
    ck_assert_int_eq(st.factory_calls, 0);

    /* The server goes on serving a good client. */
    st.want_lost = 1;
    fp p;
    fp_init(&p, loop);
    ck_assert_int_eq(fp_connect(loop, &p, port, cctx, 0), 0);
    p.stop_at = 4;
    ck_assert_int_eq(asyncio_transport_write(p.t, "ping", 4), 0);
    tu_run(loop); /* until the echo */
    ck_assert_uint_eq(p.got, 4);
    p.stop_on_lost = 1;
    ck_assert_int_eq(asyncio_transport_close(p.t), 0);
    while (!p.lost || st.lost == 0)
        tu_run(loop); /* our side's connection_lost, then the server's */
    ck_assert_int_eq(p.lost_err, 0);
    ck_assert_int_eq(st.factory_calls, 1);
    ck_assert_int_eq(st.made, 1);
    ck_assert_int_eq(st.lost, 1);
    ck_assert_int_eq(h.calls, 2);

    for (int i = 0; i < 2; i++)
        close(c[i].fd);
    fp_done(&p);
    ck_assert_int_eq(asyncio_server_close(srv), 0);
    asyncio_server_unref(srv);
    tu_free_loop(loop);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    ck_assert_int_eq(tu_count_fds(), fds_at_start);
}
END_TEST

/* A raw TCP server that accepts, reads the ClientHello and never answers. */
struct mute_server {
    asyncio_loop *loop;
    int lfd, fd;
    size_t got;
};

static void mute_readable(void *arg)
{
    struct mute_server *m = arg;
    char buf[4096];
    ssize_t n = recv(m->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0)
        m->got += (size_t)n;
    else if (n == 0 || errno != EAGAIN)
        asyncio_loop_remove_reader(m->loop, m->fd);
}

static void mute_accept(void *arg)
{
    struct mute_server *m = arg;
    int fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    ck_assert_int_eq(m->fd, -1);
    m->fd = fd;
    asyncio_loop_remove_reader(m->loop, m->lfd);
    ck_assert_int_eq(asyncio_loop_add_reader(m->loop, fd, mute_readable, m), 0);
}

START_TEST(tls_client_times_out_on_a_server_that_stalls_mid_handshake)
{
    int fds_at_start = tu_count_fds();
    int port;
    int lfd = listener(&port);
    asyncio_loop *loop = tu_new_guarded_loop();
    SSL_CTX *cctx = client_ctx();
    struct mute_server m = {.loop = loop, .lfd = lfd, .fd = -1};
    ck_assert_int_eq(asyncio_loop_add_reader(loop, lfd, mute_accept, &m), 0);
    fp p;
    fp_init(&p, loop);
    double t0 = tu_now();
    int err = fp_connect(loop, &p, port, cctx, 0.3);
    double took = tu_now() - t0;
    ck_assert_msg(err == -ETIMEDOUT, "connect: %d (%s)", err, asyncio_strerror(err));
    ck_assert_msg(took >= 0.25 && took < 2.0, "failed after %.3f s", took);
    ck_assert_int_ge(m.fd, 0);
    ck_assert_uint_gt(m.got, 0);          /* the ClientHello came: stalled mid-handshake */
    ck_assert_int_eq(p.made + p.lost, 0); /* no protocol made for a failed handshake */
    tu_free_loop(loop);
    /* Our side's socket is closed: the mute server reads EOF. */
    int fl = fcntl(m.fd, F_GETFL);
    ck_assert_int_eq(fcntl(m.fd, F_SETFL, fl & ~O_NONBLOCK), 0);
    struct timeval tv = {2, 0};
    ck_assert_int_eq(setsockopt(m.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    char buf[4096];
    ssize_t n;
    while ((n = recv(m.fd, buf, sizeof(buf), 0)) > 0) {
    }
    ck_assert_int_eq(n, 0);
    close(m.fd);
    close(lfd);
    SSL_CTX_free(cctx);
    ck_assert_int_eq(tu_count_fds(), fds_at_start);
}
END_TEST

int main(void)
{
    /* SIGPIPE keeps its default action: see the design notes. */
    if (make_certs() != 0) {
        fprintf(stderr, "test-faults-net: cannot make certificates with the openssl CLI\n");
        return 1;
    }
    Suite *s = suite_create("faults-net");
    TCase *tc = tcase_create("faults-net");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, accept_emfile_pauses_then_accepts_every_pending_client);
    tcase_add_test(tc, peer_reset_during_a_large_write_is_one_connection_lost);
    tcase_add_test(tc, peer_reset_after_its_eof_during_a_large_write_raises_no_sigpipe);
    tcase_add_test(tc, tls_peer_reset_during_a_large_write_is_one_connection_lost);
    tcase_add_test(tc, tls_peer_reset_after_its_close_notify_raises_no_sigpipe);
    tcase_add_test(tc, peer_shutdown_wr_with_eof_received_true_keeps_us_writing);
    tcase_add_test(tc, peer_shutdown_wr_with_eof_received_false_closes_after_flushing);
    tcase_add_test(tc, write_eof_keeps_receiving_until_the_peer_finishes);
    tcase_add_test(tc, slow_reader_keeps_the_write_buffer_within_its_limits);
    tcase_add_test(tc, tls_server_drops_a_client_that_stalls_mid_handshake);
    tcase_add_test(tc, tls_client_times_out_on_a_server_that_stalls_mid_handshake);
    suite_add_tcase(s, tc);
    int rc = tu_run_suite(s);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
