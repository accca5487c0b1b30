/* Stress: 10,000 concurrent echo connections on one loop, every byte
 * accounted for, no fd leaked, the RSS per connection reported.  The same
 * program is the soak (`make soak`): with ASYNCIO_SOAK_SECONDS set it runs
 * only the soak test, which repeats rounds of the same code with larger
 * payloads for that long and fails on any drift.
 *
 * Two processes.  The loop under test is the test process's own: an echo
 * server made with create_server, holding the server end of every
 * connection.  The clients, made with create_connection, run in a child
 * forked before that loop exists, on a loop of the child's own (so nothing
 * of the parent's loop is ever reached from the child).  Holding both ends
 * in one process would need twice the fds, more than the hard
 * RLIMIT_NOFILE of an unprivileged container; this way each process holds
 * one end of each connection.  Two pipes join them: commands to the child
 * (round, go, quit), which it waits for with poll between loop runs, and
 * messages to the parent (echoed, report, failed, bye), which the parent's
 * loop reads with add_reader, so a failing child fails the test at once
 * with its own text.  The child dies with the parent (PR_SET_PDEATHSIG),
 * every loop run has a guard timer and every wait a timeout.
 *
 * One round:
 *   connect  the child keeps at most MAX_CONNECTING create_connection calls
 *            in flight, so the listen backlog never overflows (an overflow
 *            turns into SYN retransmits a second apart, not errors).  The
 *            parent waits until its server has every connection live at the
 *            same moment, nothing closed yet, and then sends "go"; the child
 *            waits for every connection_made and for "go";
 *   echo     each client writes its payload (derived from its index, so a
 *            byte that lands in the wrong connection or at the wrong offset
 *            is caught), honouring pause_writing / resume_writing; the
 *            server writes back what it reads and pauses reading while its
 *            own write buffer is above the high-water mark; each client
 *            checks every byte as it arrives.  Clients with a large
 *            payload (and small socket buffers) hold their reads until
 *            they are pushed back, so that writes go partial and flow
 *            control engages on both ends.  When every echo is verified the
 *            child says "echoed";
 *   close    then the SERVER side closes first: the first FIN decides who
 *            keeps TIME_WAIT, and on the server's side that is a socket on
 *            the listening port, which uses no ephemeral port (about 28k on
 *            loopback), so repeated runs cannot run out of them.  (That is
 *            also why the clients do not write_eof: their FIN would come
 *            first.)  The server has read everything by then, so its
 *            close() sends FIN, not RST.  The clients see EOF, their
 *            eof_received returning 0 closes them, and the child reports
 *            its totals, which the parent checks against its own.
 * The server's protocols sit on a list (the test's own) so that the close
 * phase can reach them; each frees itself in connection_lost. */
#define _GNU_SOURCE /* pipe2 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONNECTIONS 10000
/* create_connection calls in flight at once; well under the backlog. */
#define MAX_CONNECTING 256
#define BACKLOG 4096
/* Bytes a client hands to one write(); also the scratch buffer's size. */
#define CHUNK (64 * 1024)
/* fds besides the connections' own that either process may hold. */
#define FD_SLACK 64
/* SO_SNDBUF of every server socket and both buffers of a large client's
 * (the kernel doubles it): small enough that a large payload cannot hide
 * in the kernel, so the writes go partial and flow control engages. */
#define SMALL_SOCKBUF (32 * 1024)

/* ---- Failing ---------------------------------------------------------------------- */

/* Set in the client process: its failures go to the parent as a message
 * (Check's own reporting belongs to the test process). */
static int client_report_fd = -1;

static void send_failure(const char *text);

/* Check's ck_assert records its location on every call, passing or not (a
 * write to the message file): at a million calls a run that is most of the
 * time.  Everything that runs per byte, per callback or per connection
 * checks with this instead, which does something only on failure; it
 * works in both processes. */
#define REQUIRE(cond, ...)                  \
    do {                                    \
        if (!(cond))                        \
            fail_at(__LINE__, __VA_ARGS__); \
    } while (0)

__attribute__((format(printf, 2, 3))) static _Noreturn void fail_at(int line, const char *fmt, ...)
{
    char text[900];
    int n = snprintf(text, sizeof(text), "test-stress.c:%d: ", line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text + n, sizeof(text) - (size_t)n, fmt, ap);
    va_end(ap);
    if (client_report_fd >= 0) {
        send_failure(text);
        _exit(1);
    }
    ck_abort_msg("%s", text);
}

/* ---- Payloads --------------------------------------------------------------------- */

static uint32_t mix(uint32_t a, uint32_t b)
{
    uint32_t x = a * 0x9E3779B1u ^ b * 0x85EBCA77u;
    x ^= x >> 15;
    x *= 0x2C1B3C6Du;
    x ^= x >> 12;
    x *= 0x297A2D39u;
    x ^= x >> 15;
    return x;
}

/* Byte `offset` of client `index`'s payload: a hash of both, so each
 * connection's stream is its own and a shifted byte shows. */
static unsigned char payload_byte(uint32_t index, size_t offset)
{
    return (unsigned char)(mix(index, (uint32_t)(offset >> 2)) >> ((offset & 3) * 8));
}

static void payload_fill(uint32_t index, size_t offset, unsigned char *buf, size_t len)
{
    for (size_t k = 0; k < len; k++)
        buf[k] = payload_byte(index, offset + k);
}

struct round_params {
    int connections;
    size_t small_min, small_span; /* most payloads: small_min + (hash % small_span) */
    int large_every;              /* every large_every-th client sends a large one */
    size_t large_min, large_span;
    double guard; /* seconds a round may take */
};

static int is_large(const struct round_params *p, uint32_t index)
{
    return p->large_every > 0 && index % (uint32_t)p->large_every == (uint32_t)p->large_every - 1;
}

static size_t payload_size(const struct round_params *p, uint32_t index)
{
    if (is_large(p, index))
        return p->large_min + mix(index, 0xFFFFFFFFu) % p->large_span;
    return p->small_min + mix(index, 0xFFFFFFFEu) % p->small_span;
}

static size_t payload_total(const struct round_params *p)
{
    size_t total = 0;
    for (int i = 0; i < p->connections; i++)
        total += payload_size(p, (uint32_t)i);
    return total;
}

/* ---- Between the processes -------------------------------------------------------- */

enum cmd_op { CMD_ROUND = 1, CMD_GO, CMD_QUIT };

struct cmd {
    int op;
    int port; /* CMD_ROUND: the server's */
};

enum msg_kind {
    MSG_ECHOED = 1, /* every echo of the round verified */
    MSG_REPORT,     /* the round is over on the client side: its totals */
    MSG_FAILED,     /* text: why; the child exits */
    MSG_BYE         /* after CMD_QUIT: the child's loop is closed */
};

/* What the client process saw in one round (MSG_REPORT), or over its life
 * (MSG_BYE: fds_idle at its start, fds_after once its loop is closed). */
struct client_report {
    size_t bytes_expected, bytes_sent, bytes_received;
    int made, lost, eofs, paused;
    int fds_idle, fds_open, fds_after;
    long rss_idle_kb, rss_open_kb, rss_after_kb;
    double t_connect, t_echo, t_close;
};

struct msg {
    int kind;
    struct client_report r;
    char text[1024];
};

/* One write each way, so a message is never split or interleaved. */
_Static_assert(sizeof(struct msg) <= PIPE_BUF, "a message must fit one atomic pipe write");

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The bytes read: len, or fewer at EOF; -errno on error. */
static ssize_t read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* 1 once `fd` is readable (or at EOF), 0 after `seconds`. */
static int wait_readable(int fd, double seconds)
{
    double end = tu_now() + seconds;
    for (;;) {
        double left = end - tu_now();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int n = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (n > 0)
            return 1;
        REQUIRE(n == 0 || errno == EINTR, "poll: %s", strerror(errno));
    }
}

static void send_msg(const struct msg *m)
{
    /* The parent gone: nobody to tell, and PR_SET_PDEATHSIG is on its way. */
    if (write_all(client_report_fd, m, sizeof(*m)) != 0)
        _exit(1);
}

static void send_failure(const char *text)
{
    struct msg m;
    memset(&m, 0, sizeof(m));
    m.kind = MSG_FAILED;
    snprintf(m.text, sizeof(m.text), "%s", text);
    send_msg(&m);
}

/* ---- Process resources ---------------------------------------------------------------- */

/* VmRSS in kB. */
static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    REQUIRE(f != NULL, "/proc/self/status: %s", strerror(errno));
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    REQUIRE(kb >= 0, "no VmRSS in /proc/self/status");
    return kb;
}

/* Make room for one end of each of `connections` connections: each of the
 * two processes holds that many, and the child inherits the limit.  Up to
 * the hard limit the soft one is ours to raise; past it only privilege
 * (CAP_SYS_RESOURCE) helps, and without it the test fails rather than
 * quietly testing fewer connections. */
static void raise_nofile(int connections)
{
    rlim_t need = (rlim_t)connections + FD_SLACK;
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        struct rlimit want = rl;
        want.rlim_cur = need;
        if (want.rlim_max != RLIM_INFINITY && want.rlim_max < need)
            want.rlim_max = need;
        ck_assert_msg(setrlimit(RLIMIT_NOFILE, &want) == 0,
                      "cannot raise RLIMIT_NOFILE to %lu (soft %lu, hard %lu): %s; each of the "
                      "two processes holds one end of each of the %d connections (raising the "
                      "hard limit needs CAP_SYS_RESOURCE)",
                      (unsigned long)need, (unsigned long)rl.rlim_cur, (unsigned long)rl.rlim_max,
                      strerror(errno), connections);
    }
}

/* ---- Common ------------------------------------------------------------------------- */

enum phase { PHASE_IDLE, PHASE_CONNECT, PHASE_ECHO, PHASE_CLOSE };

static const char *const phase_names[] = {"idle", "connect", "echo", "close"};

static void on_exception(asyncio_loop *loop, const asyncio_error_context *ctx, void *arg)
{
    (void)loop;
    (void)arg;
    fail_at(__LINE__, "exception handler: %s (%s)", ctx->message != NULL ? ctx->message : "?",
            asyncio_strerror(ctx->error));
}

static void set_sockbuf(asyncio_transport *t, int option)
{
    const int *fd = asyncio_transport_get_extra_info(t, "socket");
    int size = SMALL_SOCKBUF;
    REQUIRE(fd != NULL && setsockopt(*fd, SOL_SOCKET, option, &size, sizeof(size)) == 0,
            "cannot set the socket buffer size");
}

static void stop_loop(asyncio_loop *loop)
{
    REQUIRE(asyncio_loop_stop(loop) == 0, "loop_stop failed");
}

static asyncio_handle *round_guard(asyncio_loop *loop, double seconds, asyncio_callback cb,
                                   void *arg)
{
    asyncio_handle *h = NULL;
    int err = asyncio_loop_call_later(loop, seconds, cb, arg, &h);
    REQUIRE(err == 0, "call_later: %s", asyncio_strerror(err));
    return h;
}

static void cancel_guard(asyncio_handle **h)
{
    REQUIRE(asyncio_handle_cancel(*h) == 0, "handle_cancel failed");
    asyncio_handle_unref(*h);
    *h = NULL;
}

/* ---- The client process ------------------------------------------------------------ */

struct client_side;

struct client {
    asyncio_protocol base;
    struct client_side *cs;
    asyncio_transport *t; /* a reference of ours from connection_made to _lost */
    uint32_t index;
    size_t size, sent, received;
    int made, lost, eof, paused, done, lost_err;
    int holding; /* reading paused until pushed back or all sent (large payloads) */
};

struct client_side {
    asyncio_loop *loop;
    const struct round_params *p;
    int cmd_fd, port;
    unsigned char *scratch; /* CHUNK bytes */
    enum phase phase;
    asyncio_handle *round_guard;
    struct client *clients;
    int n, next_connect, connecting, connected, done, lost, paused;
    size_t bytes_sent, bytes_received;
};

/* Stop the loop once what the current phase waits for has happened. */
static void client_check_phase(struct client_side *cs)
{
    int reached = 0;
    switch (cs->phase) {
    case PHASE_CONNECT:
        reached = cs->connecting == 0 && cs->connected == cs->n;
        break;
    case PHASE_ECHO:
        reached = cs->done == cs->n;
        break;
    case PHASE_CLOSE:
        reached = cs->lost == cs->n;
        break;
    case PHASE_IDLE:
        break;
    }
    if (reached) {
        cs->phase = PHASE_IDLE;
        stop_loop(cs->loop);
    }
}

static void client_guard_fired(void *arg)
{
    struct client_side *cs = arg;
    /* The first few clients still waiting, for the log. */
    int shown = 0;
    for (int i = 0; i < cs->n && shown < 8; i++) {
        const struct client *c = &cs->clients[i];
        if ((cs->phase == PHASE_ECHO && !c->done) || (cs->phase == PHASE_CLOSE && !c->lost)) {
            fprintf(stderr,
                    "stress: client %d: size %zu, sent %zu, received %zu, paused %d, write "
                    "buffer %zu\n",
                    i, c->size, c->sent, c->received, c->paused,
                    c->t != NULL ? asyncio_transport_get_write_buffer_size(c->t) : 0);
            shown++;
        }
    }
    fail_at(__LINE__,
            "client process: round guard fired in phase %s: connecting %d, connected %d/%d, "
            "echoes done %d, lost %d",
            phase_names[cs->phase], cs->connecting, cs->connected, cs->n, cs->done, cs->lost);
}

/* A client holding its reads lets the echo pile up: the server's writes
 * go partial, its buffer passes the high-water mark and it pauses reading,
 * so this client's writes back up in turn until it is paused itself.  Then
 * (or once everything is sent, if the kernel took it all) it reads again,
 * so nobody waits forever. */
static void client_release(struct client *c)
{
    if (!c->holding)
        return;
    c->holding = 0;
    REQUIRE(asyncio_transport_resume_reading(c->t) == 0, "client %u: resume_reading failed",
            c->index);
}

static void client_send_more(struct client *c)
{
    struct client_side *cs = c->cs;
    while (!c->paused && c->sent < c->size) {
        size_t n = c->size - c->sent < CHUNK ? c->size - c->sent : CHUNK;
        payload_fill(c->index, c->sent, cs->scratch, n);
        /* pause_writing, if the buffer goes above the mark, runs inside. */
        int err = asyncio_transport_write(c->t, cs->scratch, n);
        REQUIRE(err == 0, "client %u: write: %s", c->index, asyncio_strerror(err));
        c->sent += n;
        cs->bytes_sent += n;
    }
    if (c->sent == c->size)
        client_release(c);
}

static void client_start(struct client *c)
{
    if (is_large(c->cs->p, c->index)) {
        set_sockbuf(c->t, SO_SNDBUF);
        set_sockbuf(c->t, SO_RCVBUF);
        c->holding = 1;
        REQUIRE(asyncio_transport_pause_reading(c->t) == 0, "client %u: pause_reading failed",
                c->index);
    }
    client_send_more(c);
}

static void client_made(asyncio_protocol *p, asyncio_transport *t)
{
    struct client *c = (struct client *)p;
    REQUIRE(!c->made, "client %u: connection_made twice", c->index);
    c->made = 1;
    c->t = t;
    asyncio_transport_ref(t);
    c->cs->connected++;
    client_check_phase(c->cs);
}

static void client_data(asyncio_protocol *p, const void *data, size_t len)
{
    struct client *c = (struct client *)p;
    REQUIRE(c->made && !c->lost && !c->eof, "client %u: data out of order", c->index);
    REQUIRE(c->received + len <= c->size, "client %u: %zu bytes echoed, sent %zu", c->index,
            c->received + len, c->size);
    const unsigned char *b = data;
    for (size_t k = 0; k < len; k++) {
        unsigned char want = payload_byte(c->index, c->received + k);
        REQUIRE(b[k] == want, "client %u: byte %zu is %#x, expected %#x", c->index, c->received + k,
                b[k], want);
    }
    c->received += len;
    c->cs->bytes_received += len;
    if (c->received == c->size) {
        c->done = 1;
        c->cs->done++;
        client_check_phase(c->cs);
    }
}

static int client_eof(asyncio_protocol *p)
{
    struct client *c = (struct client *)p;
    REQUIRE(c->made && !c->lost && !c->eof, "client %u: EOF out of order", c->index);
    REQUIRE(c->cs->phase == PHASE_CLOSE, "client %u: EOF in phase %s", c->index,
            phase_names[c->cs->phase]);
    c->eof = 1;
    return 0; /* close our side too */
}

static void client_pause_writing(asyncio_protocol *p)
{
    struct client *c = (struct client *)p;
    c->paused = 1;
    c->cs->paused++;
    client_release(c);
}

static void client_resume_writing(asyncio_protocol *p)
{
    struct client *c = (struct client *)p;
    c->paused = 0;
    client_send_more(c);
}

static void client_lost(asyncio_protocol *p, int err)
{
    struct client *c = (struct client *)p;
    REQUIRE(c->made && !c->lost, "client %u: connection_lost out of order", c->index);
    c->lost = 1;
    c->lost_err = err;
    asyncio_transport_unref(c->t);
    c->t = NULL;
    c->cs->lost++;
    client_check_phase(c->cs);
}

static const asyncio_protocol_ops client_ops = {.connection_made = client_made,
                                                .data_received = client_data,
                                                .eof_received = client_eof,
                                                .pause_writing = client_pause_writing,
                                                .resume_writing = client_resume_writing,
                                                .connection_lost = client_lost};

static asyncio_protocol *client_factory(void *arg) { return arg; }

static void launch_connects(struct client_side *cs);

static void on_connected(asyncio_future *f, void *arg)
{
    struct client *c = arg;
    struct client_side *cs = c->cs;
    int err = asyncio_future_exception(f);
    REQUIRE(err == 0, "connection %u of %d: %s", c->index, cs->n, asyncio_strerror(err));
    asyncio_future_unref(f);
    cs->connecting--;
    launch_connects(cs);
    client_check_phase(cs);
}

static void launch_connects(struct client_side *cs)
{
    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.family = AF_INET;
    o.flags = AI_NUMERICHOST | AI_NUMERICSERV;
    while (cs->connecting < MAX_CONNECTING && cs->next_connect < cs->n) {
        struct client *c = &cs->clients[cs->next_connect++];
        asyncio_future *f = NULL;
        int err = asyncio_loop_create_connection(cs->loop, client_factory, c, "127.0.0.1", cs->port,
                                                 &o, &f);
        REQUIRE(err == 0, "create_connection: %s", asyncio_strerror(err));
        err = asyncio_future_add_done_callback(f, on_connected, c);
        REQUIRE(err == 0, "add_done_callback: %s", asyncio_strerror(err));
        cs->connecting++;
    }
}

/* The next command from the parent, waiting at most `seconds`. */
static struct cmd client_wait_cmd(int fd, double seconds)
{
    struct cmd c;
    REQUIRE(wait_readable(fd, seconds), "client process: no command from the test in %.0f s",
            seconds);
    ssize_t n = read_all(fd, &c, sizeof(c));
    if (n == 0)
        _exit(1); /* the parent is gone */
    REQUIRE(n == (ssize_t)sizeof(c), "client process: command pipe: %zd bytes", n);
    return c;
}

static void client_round(struct client_side *cs, struct client_report *r)
{
    const struct round_params *p = cs->p;
    memset(r, 0, sizeof(*r));
    cs->n = p->connections;
    cs->next_connect = cs->connecting = cs->connected = cs->done = cs->lost = cs->paused = 0;
    cs->bytes_sent = cs->bytes_received = 0;

    r->fds_idle = tu_count_fds();
    r->rss_idle_kb = rss_kb();
    cs->clients = calloc((size_t)cs->n, sizeof(*cs->clients));
    REQUIRE(cs->clients != NULL, "out of memory");
    for (int i = 0; i < cs->n; i++) {
        struct client *c = &cs->clients[i];
        c->base.ops = &client_ops;
        c->cs = cs;
        c->index = (uint32_t)i;
        c->size = payload_size(p, c->index);
        r->bytes_expected += c->size;
    }
    cs->round_guard = round_guard(cs->loop, p->guard, client_guard_fired, cs);

    /* Connect everybody; nobody writes before the server has them all. */
    double t0 = tu_now();
    cs->phase = PHASE_CONNECT;
    launch_connects(cs);
    tu_run(cs->loop);
    REQUIRE(cs->phase == PHASE_IDLE && cs->connected == cs->n, "client process: %d of %d connected",
            cs->connected, cs->n);
    r->fds_open = tu_count_fds();
    r->rss_open_kb = rss_kb();
    struct cmd go = client_wait_cmd(cs->cmd_fd, p->guard);
    REQUIRE(go.op == CMD_GO, "client process: command %d, expected go", go.op);

    /* Echo: every client writes its whole payload and checks the echo. */
    double t1 = tu_now();
    cs->phase = PHASE_ECHO;
    for (int i = 0; i < cs->n; i++)
        client_start(&cs->clients[i]);
    tu_run(cs->loop);
    REQUIRE(cs->done == cs->n && cs->lost == 0, "client process: %d echoes done, %d lost", cs->done,
            cs->lost);

    /* Close: the server's FINs come once it hears that all is echoed. */
    double t2 = tu_now();
    cs->phase = PHASE_CLOSE;
    struct msg m;
    memset(&m, 0, sizeof(m));
    m.kind = MSG_ECHOED;
    send_msg(&m);
    tu_run(cs->loop);
    double t3 = tu_now();
    cancel_guard(&cs->round_guard);

    for (int i = 0; i < cs->n; i++) {
        const struct client *c = &cs->clients[i];
        REQUIRE(c->made == 1 && c->lost == 1 && c->eof == 1 && c->lost_err == 0,
                "client %d: made %d, eof %d, lost %d (%s)", i, c->made, c->eof, c->lost,
                asyncio_strerror(c->lost_err));
        REQUIRE(c->sent == c->size && c->received == c->size,
                "client %d: %zu bytes, sent %zu, received %zu", i, c->size, c->sent, c->received);
        r->made += c->made;
        r->lost += c->lost;
        r->eofs += c->eof;
    }
    r->bytes_sent = cs->bytes_sent;
    r->bytes_received = cs->bytes_received;
    r->paused = cs->paused;
    r->fds_after = tu_count_fds();
    free(cs->clients);
    cs->clients = NULL;
    r->rss_after_kb = rss_kb();
    r->t_connect = t1 - t0;
    r->t_echo = t2 - t1;
    r->t_close = t3 - t2;
}

static void on_resolved(asyncio_future *f, void *arg)
{
    (void)f;
    stop_loop(arg);
}

/* The child's life: a loop of its own, rounds until told to quit. */
static _Noreturn void client_process(pid_t parent, int cmd_fd, int report_fd,
                                     const struct round_params *p)
{
    client_report_fd = report_fd;
    /* Never outlive the test (a failing test process just exits). */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(1);
    int fds_start = tu_count_fds();

    struct client_side cs;
    memset(&cs, 0, sizeof(cs));
    cs.p = p;
    cs.cmd_fd = cmd_fd;
    cs.loop = tu_new_loop();
    int err = asyncio_loop_set_exception_handler(cs.loop, on_exception, NULL);
    REQUIRE(err == 0, "set_exception_handler: %s", asyncio_strerror(err));
    cs.scratch = malloc(CHUNK);
    REQUIRE(cs.scratch != NULL, "out of memory");
    /* The resolver opens its fds on first use: before the first round's
     * idle count, not inside the round. */
    asyncio_future *f = NULL;
    err = asyncio_loop_getaddrinfo(cs.loop, "127.0.0.1", NULL, NULL, &f);
    REQUIRE(err == 0, "getaddrinfo: %s", asyncio_strerror(err));
    REQUIRE(asyncio_future_add_done_callback(f, on_resolved, cs.loop) == 0, "add_done_callback");
    asyncio_handle *guard = round_guard(cs.loop, p->guard, client_guard_fired, &cs);
    tu_run(cs.loop);
    cancel_guard(&guard);
    REQUIRE(asyncio_future_exception(f) == 0, "getaddrinfo 127.0.0.1 failed");
    asyncio_future_unref(f);

    for (;;) {
        struct cmd c = client_wait_cmd(cmd_fd, p->guard);
        if (c.op == CMD_QUIT)
            break;
        REQUIRE(c.op == CMD_ROUND, "client process: command %d, expected a round", c.op);
        cs.port = c.port;
        struct msg m;
        memset(&m, 0, sizeof(m));
        m.kind = MSG_REPORT;
        client_round(&cs, &m.r);
        send_msg(&m);
    }
    free(cs.scratch);
    tu_free_loop(cs.loop);
    struct msg bye;
    memset(&bye, 0, sizeof(bye));
    bye.kind = MSG_BYE;
    bye.r.fds_idle = fds_start;
    bye.r.fds_after = tu_count_fds();
    send_msg(&bye);
    exit(0); /* not _exit: LeakSanitizer checks this process too */
}

struct client_proc {
    pid_t pid;
    int cmd_fd;    /* ours: commands to the child */
    int report_fd; /* ours: the child's messages */
};

/* Fork the client process, before this process has a loop. */
static void spawn_clients(struct client_proc *cp, const struct round_params *p)
{
    int cmd[2], rep[2];
    ck_assert_int_eq(pipe2(cmd, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(rep, O_CLOEXEC), 0);
    /* A write to a dead child returns EPIPE and fails with a message. */
    signal(SIGPIPE, SIG_IGN);
    fflush(NULL); /* or the child's stdio would repeat what is buffered */
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(cmd[1]);
        close(rep[0]);
        client_process(parent, cmd[0], rep[1], p);
    }
    close(cmd[0]);
    close(rep[1]);
    cp->pid = pid;
    cp->cmd_fd = cmd[1];
    cp->report_fd = rep[0];
}

static void send_cmd(const struct client_proc *cp, int op, int port)
{
    struct cmd c = {.op = op, .port = port};
    int err = write_all(cp->cmd_fd, &c, sizeof(c));
    REQUIRE(err == 0, "command to the client process: %s", strerror(-err));
}

/* Fails the test: the child's pipe is at EOF, so it has exited. */
static _Noreturn void client_died(const struct client_proc *cp)
{
    int status = 0;
    pid_t r = waitpid(cp->pid, &status, 0);
    REQUIRE(r == cp->pid, "waitpid: %s", strerror(errno));
    if (WIFSIGNALED(status))
        fail_at(__LINE__, "the client process was killed by signal %d", WTERMSIG(status));
    fail_at(__LINE__,
            "the client process exited with status %d without a word (a Check assertion in it "
            "fails like that)",
            WEXITSTATUS(status));
}

/* The child's next message; its failure fails the test here, with its text. */
static void read_msg(const struct client_proc *cp, struct msg *m)
{
    ssize_t n = read_all(cp->report_fd, m, sizeof(*m));
    if (n == 0)
        client_died(cp);
    REQUIRE(n == (ssize_t)sizeof(*m), "message pipe: %zd of %zu bytes", n, sizeof(*m));
    if (m->kind == MSG_FAILED)
        fail_at(__LINE__, "client process: %s", m->text);
}

/* Ask the child to quit, check what it says of its fds, and reap it. */
static void finish_clients(struct client_proc *cp)
{
    send_cmd(cp, CMD_QUIT, 0);
    struct msg m;
    REQUIRE(wait_readable(cp->report_fd, 30), "the client process did not say bye");
    read_msg(cp, &m);
    REQUIRE(m.kind == MSG_BYE, "message %d from the client process, expected bye", m.kind);
    REQUIRE(m.r.fds_after == m.r.fds_idle, "client process: %d fds at its start, %d at its end",
            m.r.fds_idle, m.r.fds_after);
    close(cp->cmd_fd);
    int status = 0;
    pid_t r;
    double end = tu_now() + 30;
    while ((r = waitpid(cp->pid, &status, WNOHANG)) == 0 && tu_now() < end)
        wait_readable(cp->report_fd, 0.1); /* EOF once it has exited */
    if (r == 0) {
        kill(cp->pid, SIGKILL);
        waitpid(cp->pid, &status, 0);
        fail_at(__LINE__, "the client process did not exit after bye");
    }
    REQUIRE(r == cp->pid, "waitpid: %s", strerror(errno));
    REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "the client process ended with wait status %#x (a sanitizer's report above, if any, "
            "says why)",
            status);
    close(cp->report_fd);
}

/* ---- The echo server (the test process) ------------------------------------------ */

struct server_conn;

struct echo_server {
    asyncio_loop *loop;
    asyncio_server *server;
    int port;
    struct client_proc *cp;
    enum phase phase;
    asyncio_handle *round_guard;
    int n;
    int made, lost, live, paused;
    size_t max_read; /* the largest data_received */
    size_t bytes_read, bytes_echoed;
    struct server_conn *conns; /* live connections */
    int echoed;                /* the child said so */
    int have_report;
    struct client_report report;
};

struct server_conn {
    asyncio_protocol base;
    struct echo_server *es;
    asyncio_transport *t; /* borrowed: alive until connection_lost */
    struct server_conn *prev, *next;
    int made, paused;
};

static void server_check_phase(struct echo_server *es)
{
    int reached = 0;
    switch (es->phase) {
    case PHASE_CONNECT:
        reached = es->live == es->n;
        break;
    case PHASE_ECHO:
        reached = es->echoed;
        break;
    case PHASE_CLOSE:
        reached = es->live == 0 && es->have_report;
        break;
    case PHASE_IDLE:
        break;
    }
    if (reached) {
        es->phase = PHASE_IDLE;
        stop_loop(es->loop);
    }
}

static void server_guard_fired(void *arg)
{
    struct echo_server *es = arg;
    for (const struct server_conn *c = es->conns; c != NULL; c = c->next) {
        size_t queued = asyncio_transport_get_write_buffer_size(c->t);
        if (c->paused || queued > 0)
            fprintf(stderr, "stress: server connection: paused %d, write buffer %zu\n", c->paused,
                    queued);
    }
    ck_abort_msg("round guard fired in phase %s: server made %d, live %d, lost %d, echoed %zu of "
                 "%zu bytes read; client process: echoed %d, report %d",
                 phase_names[es->phase], es->made, es->live, es->lost, es->bytes_echoed,
                 es->bytes_read, es->echoed, es->have_report);
}

static void on_child_msg(void *arg)
{
    struct echo_server *es = arg;
    struct msg m;
    read_msg(es->cp, &m);
    switch (m.kind) {
    case MSG_ECHOED:
        REQUIRE(es->phase == PHASE_ECHO, "client process: echoed in phase %s",
                phase_names[es->phase]);
        es->echoed = 1;
        break;
    case MSG_REPORT:
        REQUIRE(es->phase == PHASE_CLOSE, "client process: report in phase %s",
                phase_names[es->phase]);
        es->report = m.r;
        es->have_report = 1;
        break;
    default:
        fail_at(__LINE__, "client process: message %d in phase %s", m.kind, phase_names[es->phase]);
    }
    server_check_phase(es);
}

/* A client process that failed or died closes its sockets too; its own
 * word (a failure message, or its exit status) says more than what that
 * does to the server, so look for it first. */
static void blame_client_process_first(struct echo_server *es)
{
    if (wait_readable(es->cp->report_fd, 1.0)) {
        struct msg m;
        read_msg(es->cp, &m);
    }
}

static void srv_made(asyncio_protocol *p, asyncio_transport *t)
{
    struct server_conn *c = (struct server_conn *)p;
    struct echo_server *es = c->es;
    REQUIRE(!c->made, "server: connection_made twice");
    REQUIRE(es->phase == PHASE_CONNECT, "server: connection in phase %s", phase_names[es->phase]);
    c->made = 1;
    c->t = t;
    set_sockbuf(t, SO_SNDBUF);
    c->next = es->conns;
    if (es->conns != NULL)
        es->conns->prev = c;
    es->conns = c;
    es->made++;
    es->live++;
    server_check_phase(es);
}

static void srv_data(asyncio_protocol *p, const void *data, size_t len)
{
    struct server_conn *c = (struct server_conn *)p;
    struct echo_server *es = c->es;
    es->bytes_read += len;
    int err = asyncio_transport_write(c->t, data, len);
    REQUIRE(err == 0, "server: write: %s", asyncio_strerror(err));
    es->bytes_echoed += len;
    if (len > es->max_read)
        es->max_read = len;
}

/* The server closes first: an EOF here means a client did not wait. */
static int srv_eof(asyncio_protocol *p)
{
    blame_client_process_first(((struct server_conn *)p)->es);
    fail_at(__LINE__, "the server saw EOF: a client closed first");
}

static void srv_pause_writing(asyncio_protocol *p)
{
    struct server_conn *c = (struct server_conn *)p;
    c->es->paused++;
    c->paused = 1;
    REQUIRE(asyncio_transport_pause_reading(c->t) == 0, "server: pause_reading failed");
}

static void srv_resume_writing(asyncio_protocol *p)
{
    struct server_conn *c = (struct server_conn *)p;
    c->paused = 0;
    REQUIRE(asyncio_transport_resume_reading(c->t) == 0, "server: resume_reading failed");
}

static void srv_lost(asyncio_protocol *p, int err)
{
    struct server_conn *c = (struct server_conn *)p;
    struct echo_server *es = c->es;
    if (err != 0) {
        blame_client_process_first(es);
        fail_at(__LINE__, "server: connection lost with %s", asyncio_strerror(err));
    }
    REQUIRE(c->made, "server: connection_lost without connection_made");
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        es->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    es->lost++;
    es->live--;
    free(c);
    server_check_phase(es);
}

static const asyncio_protocol_ops srv_ops = {.connection_made = srv_made,
                                             .data_received = srv_data,
                                             .eof_received = srv_eof,
                                             .pause_writing = srv_pause_writing,
                                             .resume_writing = srv_resume_writing,
                                             .connection_lost = srv_lost};

static asyncio_protocol *srv_factory(void *arg)
{
    struct server_conn *c = calloc(1, sizeof(*c));
    REQUIRE(c != NULL, "out of memory");
    c->base.ops = &srv_ops;
    c->es = arg;
    return &c->base;
}

static void server_open(struct echo_server *es, struct client_proc *cp, double guard)
{
    memset(es, 0, sizeof(*es));
    es->cp = cp;
    es->loop = tu_new_loop();
    tu_guard(es->loop, guard);
    ck_assert_int_eq(asyncio_loop_set_exception_handler(es->loop, on_exception, NULL), 0);

    asyncio_server_options so = ASYNCIO_SERVER_OPTIONS_INIT;
    so.family = AF_INET;
    so.backlog = BACKLOG;
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_server(es->loop, srv_factory, es, "127.0.0.1", 0, &so, &f),
                     0);
    int err = asyncio_loop_run_until_complete(es->loop, f);
    ck_assert_msg(err == 0, "create_server: %s", asyncio_strerror(err));
    void *result = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &result), 0);
    es->server = result;
    asyncio_server_ref(es->server);
    asyncio_future_unref(f);

    int fd = -1;
    ck_assert_int_eq(asyncio_server_get_sockets(es->server, &fd, 1), 1);
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    es->port = ntohs(sin.sin_port);
    ck_assert_int_eq(asyncio_loop_add_reader(es->loop, cp->report_fd, on_child_msg, es), 0);
}

static void server_close(struct echo_server *es)
{
    ck_assert_int_eq(asyncio_loop_remove_reader(es->loop, es->cp->report_fd), 1);
    ck_assert_int_eq(asyncio_server_close(es->server), 0);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_server_wait_closed(es->server, &f), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(es->loop, f), 0);
    asyncio_future_unref(f);
    asyncio_server_unref(es->server);
    tu_free_loop(es->loop);
}

/* The parent's view of a round, and the child's report of it. */
struct round_result {
    size_t bytes_expected;
    long rss_idle_kb, rss_open_kb, rss_after_kb;
    int fds_idle, fds_open;
    double t_connect, t_echo, t_close;
    struct client_report client;
};

static void run_round(struct echo_server *es, const struct round_params *p, struct round_result *r)
{
    memset(r, 0, sizeof(*r));
    es->n = p->connections;
    es->made = es->lost = es->paused = 0;
    es->max_read = es->bytes_read = es->bytes_echoed = 0;
    es->echoed = es->have_report = 0;
    ck_assert_int_eq(es->live, 0);
    ck_assert_ptr_null(es->conns);

    /* create_server resolved its host, so the resolver's fds are counted
     * here already. */
    r->fds_idle = tu_count_fds();
    r->rss_idle_kb = rss_kb();
    r->bytes_expected = payload_total(p);
    es->round_guard = round_guard(es->loop, p->guard, server_guard_fired, es);

    /* Connect: every connection live here at one moment, none closed. */
    double t0 = tu_now();
    es->phase = PHASE_CONNECT;
    send_cmd(es->cp, CMD_ROUND, es->port);
    tu_run(es->loop);
    ck_assert_int_eq(es->phase, PHASE_IDLE);
    ck_assert_int_eq(es->live, es->n);
    ck_assert_int_eq(es->made, es->n);
    ck_assert_int_eq(es->lost, 0);
    ck_assert_uint_eq(es->bytes_read, 0);
    r->fds_open = tu_count_fds();
    ck_assert_int_eq(r->fds_open, r->fds_idle + es->n);
    r->rss_open_kb = rss_kb();

    /* Echo, until the child has verified every byte. */
    double t1 = tu_now();
    es->phase = PHASE_ECHO;
    send_cmd(es->cp, CMD_GO, 0);
    tu_run(es->loop);
    ck_assert_int_eq(es->live, es->n);
    ck_assert_int_eq(es->lost, 0);
    ck_assert_uint_eq(es->bytes_read, r->bytes_expected);
    ck_assert_uint_eq(es->bytes_echoed, r->bytes_expected);

    /* Close: the server side first (see the notes at the top). */
    double t2 = tu_now();
    es->phase = PHASE_CLOSE;
    for (struct server_conn *c = es->conns, *next; c != NULL; c = next) {
        next = c->next;
        ck_assert_int_eq(asyncio_transport_close(c->t), 0);
    }
    tu_run(es->loop);
    double t3 = tu_now();
    cancel_guard(&es->round_guard);
    ck_assert_int_eq(es->made, es->n);
    ck_assert_int_eq(es->lost, es->n);
    ck_assert_int_eq(tu_count_fds(), r->fds_idle);
    r->rss_after_kb = rss_kb();
    r->t_connect = t1 - t0;
    r->t_echo = t2 - t1;
    r->t_close = t3 - t2;

    /* The client process's side of the same round. */
    const struct client_report *c = &es->report;
    r->client = *c;
    ck_assert_uint_eq(c->bytes_expected, r->bytes_expected);
    ck_assert_uint_eq(c->bytes_sent, r->bytes_expected);
    ck_assert_uint_eq(c->bytes_received, r->bytes_expected);
    ck_assert_int_eq(c->made, es->n);
    ck_assert_int_eq(c->eofs, es->n);
    ck_assert_int_eq(c->lost, es->n);
    ck_assert_msg(c->fds_open == c->fds_idle + es->n,
                  "client process: %d fds idle, %d with all connections open", c->fds_idle,
                  c->fds_open);
    ck_assert_msg(c->fds_after == c->fds_idle, "client process: %d fds idle, %d after the round",
                  c->fds_idle, c->fds_after);
}

/* ---- Tests ----------------------------------------------------------------------------- */

/* A positive number from the environment, or `dflt` when unset. */
static double env_double(const char *name, double dflt)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return dflt;
    char *end;
    double v = strtod(s, &end);
    ck_assert_msg(*end == '\0' && v > 0, "%s=%s: not a positive number", name, s);
    return v;
}

/* A few KiB each, and every 250th client a quarter to three quarters of a
 * MiB: more than one 256 KiB read, more than the socket buffers, so reads
 * come in pieces, writes are partial and flow control pauses both ends. */
static const struct round_params stress_params = {
    .connections = CONNECTIONS,
    .small_min = 512,
    .small_span = 4096,
    .large_every = 250,
    .large_min = 256 * 1024,
    .large_span = 512 * 1024,
    .guard = 50.0,
};

/* ASYNCIO_STRESS_CONNECTIONS overrides the count, for measuring; the
 * count is printed. */
static int stress_connections(void)
{
    return (int)env_double("ASYNCIO_STRESS_CONNECTIONS", CONNECTIONS);
}

static long per_conn_bytes(long open_kb, long idle_kb, int connections)
{
    return (open_kb - idle_kb) * 1024 / connections;
}

START_TEST(stress_ten_thousand_echo_connections_on_one_loop)
{
    struct round_params p = stress_params;
    p.connections = stress_connections();
    raise_nofile(p.connections);
    int fds_before = tu_count_fds();
    struct client_proc cp;
    spawn_clients(&cp, &p);
    struct echo_server es;
    server_open(&es, &cp, 55.0);
    struct round_result r;
    run_round(&es, &p, &r);
    server_close(&es);
    finish_clients(&cp);
    ck_assert_int_eq(tu_count_fds(), fds_before);

    const struct client_report *c = &r.client;
    printf("stress: %d connections, %zu bytes each way, RSS per connection: server %ld bytes "
           "(test process), client %ld bytes (client process)\n",
           p.connections, r.bytes_expected,
           per_conn_bytes(r.rss_open_kb, r.rss_idle_kb, p.connections),
           per_conn_bytes(c->rss_open_kb, c->rss_idle_kb, p.connections));
    printf("stress: connect %.2f s, echo %.2f s, close %.2f s (client process: %.2f / %.2f / "
           "%.2f s); RSS idle / all open: server %ld / %ld kB, client %ld / %ld kB; "
           "pause_writing: %d server, %d client; largest server read %zu bytes\n",
           r.t_connect, r.t_echo, r.t_close, c->t_connect, c->t_echo, c->t_close, r.rss_idle_kb,
           r.rss_open_kb, c->rss_idle_kb, c->rss_open_kb, es.paused, c->paused, es.max_read);
    fflush(stdout);
    if (p.connections >= p.large_every) {
        /* The large payloads did what they are for: flow control paused
         * both ends, and a read took more than 64 KiB at once. */
        ck_assert_int_ge(es.paused, 1);
        ck_assert_int_ge(c->paused, 1);
        ck_assert_uint_gt(es.max_read, 64 * 1024);
    }
}
END_TEST

/* ---- Soak ------------------------------------------------------------------------------ */

/* RSS may settle over the first rounds (allocator arenas, libevent's
 * tables); after those it must stay within this much of where it was, in
 * either process. */
#define SOAK_WARMUP_ROUNDS 2
#define SOAK_RSS_SLACK_KB (32 * 1024)

START_TEST(soak_rounds_do_not_drift)
{
    double seconds = env_double("ASYNCIO_SOAK_SECONDS", 600);
    struct round_params p = {
        .connections = stress_connections(),
        .small_min = 1024,
        .small_span = 32 * 1024,
        .large_every = 100,
        .large_min = 1024 * 1024,
        .large_span = 3 * 1024 * 1024,
        .guard = 300.0,
    };
    raise_nofile(p.connections);
    int fds_before = tu_count_fds();
    struct client_proc cp;
    spawn_clients(&cp, &p);
    struct echo_server es;
    server_open(&es, &cp, seconds + 600);
    double start = tu_now();
    int fds_idle = -1, client_fds_idle = -1;
    long rss_base = 0, client_rss_base = 0;
    size_t total = 0;
    int round = 0;
    while (round < SOAK_WARMUP_ROUNDS + 1 || tu_now() - start < seconds) {
        struct round_result r;
        run_round(&es, &p, &r);
        const struct client_report *c = &r.client;
        round++;
        total += r.bytes_expected;
        printf("soak: round %d: %d connections, %zu bytes, %.2f s connect, %.2f s echo, %.2f s "
               "close; server: fds %d idle / %d open, RSS %ld / %ld / %ld kB idle / open / "
               "after; client: fds %d / %d, RSS %ld / %ld / %ld kB\n",
               round, p.connections, r.bytes_expected, r.t_connect, r.t_echo, r.t_close, r.fds_idle,
               r.fds_open, r.rss_idle_kb, r.rss_open_kb, r.rss_after_kb, c->fds_idle, c->fds_open,
               c->rss_idle_kb, c->rss_open_kb, c->rss_after_kb);
        fflush(stdout);
        if (fds_idle < 0) {
            fds_idle = r.fds_idle;
            client_fds_idle = c->fds_idle;
        }
        ck_assert_msg(r.fds_idle == fds_idle, "round %d: %d fds idle, round 1 had %d", round,
                      r.fds_idle, fds_idle);
        ck_assert_msg(c->fds_idle == client_fds_idle,
                      "round %d: client process: %d fds idle, round 1 had %d", round, c->fds_idle,
                      client_fds_idle);
        if (round == SOAK_WARMUP_ROUNDS) {
            rss_base = r.rss_after_kb;
            client_rss_base = c->rss_after_kb;
        }
        if (round > SOAK_WARMUP_ROUNDS) {
            ck_assert_msg(r.rss_after_kb <= rss_base + SOAK_RSS_SLACK_KB,
                          "round %d: RSS %ld kB after the round, %ld kB after round %d: grew by "
                          "more than %d kB",
                          round, r.rss_after_kb, rss_base, SOAK_WARMUP_ROUNDS, SOAK_RSS_SLACK_KB);
            ck_assert_msg(c->rss_after_kb <= client_rss_base + SOAK_RSS_SLACK_KB,
                          "round %d: client process: RSS %ld kB after the round, %ld kB after "
                          "round %d: grew by more than %d kB",
                          round, c->rss_after_kb, client_rss_base, SOAK_WARMUP_ROUNDS,
                          SOAK_RSS_SLACK_KB);
        }
    }
    server_close(&es);
    finish_clients(&cp);
    ck_assert_int_eq(tu_count_fds(), fds_before);
    printf("soak: %d rounds in %.0f s, %zu bytes echoed, no drift\n", round, tu_now() - start,
           total);
    fflush(stdout);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stress");
    TCase *tc;
    const char *soak = getenv("ASYNCIO_SOAK_SECONDS");
    if (soak != NULL && *soak != '\0') {
        /* `make soak`: the soak alone, with a timeout that fits its length
         * (a bad value fails inside the test, with the message). */
        tc = tcase_create("soak");
        double seconds = strtod(soak, NULL);
        tcase_set_timeout(tc, (seconds > 0 ? seconds : 0) + 900);
        tcase_add_test(tc, soak_rounds_do_not_drift);
    } else {
        tc = tcase_create("stress");
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, stress_ten_thousand_echo_connections_on_one_loop);
    }
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
