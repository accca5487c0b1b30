/* Model-based random testing (issue 8, item 3).
 *
 * Each test runs many scenarios.  A scenario is one loop with a few
 * connected transport pairs -- TCP and AF_UNIX through create_server /
 * create_connection, or pipe(2) pairs through connect_write_pipe /
 * connect_read_pipe -- and a random sequence of API calls (write,
 * writelines, write_eof, pause/resume_reading, set_write_buffer_limits,
 * close, abort, call_later / call_at / call_soon with cancels and dropped
 * handles, futures with done callbacks) made from a driver callback between
 * loop iterations, from timers and from inside data_received.  A model
 * records what every call promises; the callbacks check it as events
 * arrive, and the scenario checks the rest once everything is quiet (or
 * once the loop is closed under open transports, one scenario in five).
 *
 * The bytes a side writes are a pseudo-random stream keyed per side, so
 * the receiver checks every byte at its offset without keeping a copy.
 *
 * Every scenario comes from its own seed through splitmix64 (never
 * rand()), so a failure -- "model: seed N failed at step K: what" -- reruns
 * alone with ASYNCIO_MODEL_SEED=N; ASYNCIO_MODEL_RUNS sets how many
 * scenarios each test runs (doc/testing.md). */
#define _GNU_SOURCE /* pipe2 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define HAVE_DEATH_CALLBACK 1
#endif

enum { MAX_PAIRS = 3, MAX_TIMERS = 40, MAX_SOONS = 40, MAX_FUTS = 12, MAX_CBS = 6 };
enum { DEFAULT_RUNS = 300 };
enum { MAX_WRITE = 300 * 1024 };
#define GUARD_SECONDS 5.0
#define DEFAULT_HIGH (64 * 1024)

enum mode { M_SOCKETS = 1, M_PIPES, M_CALLBACKS };
enum kind { K_TCP, K_UNIX, K_PIPE };

typedef struct scen scen;
typedef struct side side;

struct side {
    scen *sc;
    side *peer;
    int id; /* 2 * pair + end, for messages */
    int can_read, can_write;
    asyncio_transport *t; /* our reference, taken in connection_made */
    int has_proto;
    /* What happened. */
    int made, lost, eof, lost_err;
    int npause, nresume;
    size_t got; /* bytes of the peer's stream received */
    /* What we did. */
    int closed, aborted, eof_sent, paused;
    int closing_at_close; /* is_closing when the loop was closed */
    int keep_open;        /* what eof_received returns outside the finish */
    size_t high, low;
    uint64_t key; /* the byte stream this side writes */
    size_t sent;  /* bytes write() accepted */
};

typedef struct {
    side s[2];
    int kind;
} pair;

typedef struct {
    asyncio_protocol base;
    side *sd;
} mproto;

typedef struct {
    scen *sc;
    asyncio_handle *h;      /* NULL once dropped */
    double when, scheduled; /* deadline; loop time of the call */
    uint64_t seq;
    int cancelled, fired, act;
} mtimer;

typedef struct {
    scen *sc;
    asyncio_handle *h;
    uint64_t seq; /* ready-queue order */
    int cancelled, fired;
} msoon;

typedef struct mfut mfut;

typedef struct {
    mfut *mf;
    int removed, scheduled, ran;
    uint64_t seq; /* ready-queue order, from when it was scheduled */
} mcb;

struct mfut {
    scen *sc;
    asyncio_future *f;
    int held;  /* we still hold our reference */
    int state; /* 0 pending, 1 result, 2 exception, 3 cancelled */
    int ncb;
    mcb cb[MAX_CBS];
};

struct scen {
    uint64_t seed;
    /* Two streams: the driver's steps draw from `main`, whatever runs from
     * a callback whose timing depends on I/O from `cb`, so the driver's
     * sequence of calls stays the same for a seed on every run. */
    uint64_t main_rng, cb_rng, *rng;
    int step, steps_left;
    enum mode mode;
    asyncio_loop *loop;
    pair pairs[MAX_PAIRS];
    int npairs;
    side *accepting; /* the server end waiting for its connection */
    int setup_wait;
    asyncio_server *tcp_server, *unix_server;
    int port;
    char path[64];
    int nalloc, nfree;
    mtimer timers[MAX_TIMERS];
    int ntimers;
    uint64_t timer_seq;
    msoon soons[MAX_SOONS];
    int nsoons;
    mfut futs[MAX_FUTS];
    int nfuts;
    uint64_t ready_seq, last_ready_run;
    int driver_pending;
    int finishing, by_loop_close, closing_loop, quiet;
};

static scen *current; /* for the sanitizer's death callback */

/* What the runs exercised, for the summary line. */
static struct {
    unsigned long long bytes;
    long eof_exact, pauses, lost_error, loop_closes, timers, cancels, callbacks;
} stats;
static unsigned char scratch[MAX_WRITE];
static unsigned char expect_buf[256 * 1024 + 64];

/* ---- Failing with the seed ------------------------------------------------------------ */

static void model_fail(scen *sc, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

static void model_fail(scen *sc, int line, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    unlink(sc->path); /* the unix server's socket file */
    ck_abort_msg("model: seed %" PRIu64 " failed at step %d: %s (test-model.c:%d)", sc->seed,
                 sc->step, what, line);
    abort(); /* not reached: ck_abort_msg ends the test */
}

#define MCHECK(sc, cond, ...)                        \
    do {                                             \
        if (!(cond))                                 \
            model_fail((sc), __LINE__, __VA_ARGS__); \
    } while (0)

#ifdef HAVE_DEATH_CALLBACK
static void on_death(void)
{
    char msg[128];
    if (current == NULL)
        return;
    int n = snprintf(msg, sizeof(msg), "model: seed %" PRIu64 " crashed at step %d\n",
                     current->seed, current->step);
    if (n > 0 && write(2, msg, (size_t)n) < 0)
        return;
}
#endif

/* ---- Randomness ------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15u;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t next(scen *sc)
{
    *sc->rng += 0x9e3779b97f4a7c15u;
    uint64_t z = *sc->rng;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static size_t rnd(scen *sc, size_t n) { return n == 0 ? 0 : (size_t)(next(sc) % n); }

/* Bytes [off, off+len) of the stream `key`: byte p is byte p%8 of mix64(key + p/8). */
static void gen(uint64_t key, size_t off, unsigned char *buf, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t p = off + i;
        uint64_t w = mix64(key + p / 8);
        for (unsigned sh = (unsigned)(p % 8); sh < 8 && i < len; sh++, i++)
            buf[i] = (unsigned char)(w >> (8 * sh));
    }
}

/* Mostly small, sometimes large, sometimes nothing. */
static size_t rand_size(scen *sc)
{
    size_t r = rnd(sc, 100);
    if (r < 8)
        return 0;
    if (r < 70)
        return rnd(sc, 4097);
    if (r < 92)
        return rnd(sc, 64 * 1024 + 1);
    return rnd(sc, MAX_WRITE + 1);
}

/* ---- Quiescence -------------------------------------------------------------------------- */

static int live(const side *sd) { return sd->made && !sd->lost; }

static int pending_work(scen *sc)
{
    int n = sc->driver_pending;
    for (int i = 0; i < sc->npairs; i++)
        for (int j = 0; j < 2; j++)
            n += live(&sc->pairs[i].s[j]);
    for (int i = 0; i < sc->ntimers; i++)
        n += !sc->timers[i].fired && !sc->timers[i].cancelled;
    for (int i = 0; i < sc->nsoons; i++)
        n += !sc->soons[i].fired && !sc->soons[i].cancelled;
    for (int i = 0; i < sc->nfuts; i++)
        for (int k = 0; k < sc->futs[i].ncb; k++)
            n += sc->futs[i].cb[k].scheduled && !sc->futs[i].cb[k].ran;
    return n;
}

static void maybe_quiet(scen *sc)
{
    if (sc->finishing && !sc->quiet && pending_work(sc) == 0) {
        sc->quiet = 1;
        asyncio_loop_stop(sc->loop);
    }
}

static void finisher(scen *sc);
static void do_step(scen *sc);
static void cb_step(scen *sc, size_t one_in);

/* ---- The protocol ------------------------------------------------------------------------ */

static side *SD(asyncio_protocol *p) { return ((mproto *)(void *)p)->sd; }

static void m_made(asyncio_protocol *self, asyncio_transport *t)
{
    side *sd = SD(self);
    scen *sc = sd->sc;
    MCHECK(sc, !sd->made, "side %d: connection_made twice", sd->id);
    MCHECK(sc, !sd->lost, "side %d: connection_made after connection_lost", sd->id);
    MCHECK(sc, asyncio_transport_get_protocol(t) == self, "side %d: get_protocol", sd->id);
    sd->made = 1;
    asyncio_transport_ref(t);
    sd->t = t;
    if (sc->setup_wait && sd == sc->accepting)
        asyncio_loop_stop(sc->loop);
}

static void m_data(asyncio_protocol *self, const void *data, size_t len)
{
    side *sd = SD(self);
    scen *sc = sd->sc;
    side *pe = sd->peer;
    MCHECK(sc, sd->made && !sd->lost, "side %d: data_received outside made..lost", sd->id);
    MCHECK(sc, len > 0, "side %d: data_received with no data", sd->id);
    MCHECK(sc, !sd->paused, "side %d: data_received while reading is paused", sd->id);
    MCHECK(sc, !sd->closed && !sd->aborted, "side %d: data_received after close/abort", sd->id);
    MCHECK(sc, !sd->eof, "side %d: data_received after eof_received", sd->id);
    MCHECK(sc, sd->got + len <= pe->sent, "side %d: received %zu bytes, the peer wrote %zu", sd->id,
           sd->got + len, pe->sent);
    gen(pe->key, sd->got, expect_buf, len);
    if (memcmp(expect_buf, data, len) != 0) {
        size_t i = 0;
        while (((const unsigned char *)data)[i] == expect_buf[i])
            i++;
        model_fail(sc, __LINE__, "side %d: byte %zu of the peer's stream differs", sd->id,
                   sd->got + i);
    }
    sd->got += len;
    stats.bytes += len;
    /* Re-entrancy: now and then the next step runs from inside the callback. */
    if (!sc->finishing && sc->steps_left > 0)
        cb_step(sc, 40);
}

static int m_eof(asyncio_protocol *self)
{
    side *sd = SD(self);
    scen *sc = sd->sc;
    side *pe = sd->peer;
    MCHECK(sc, sd->made && !sd->lost, "side %d: eof_received outside made..lost", sd->id);
    MCHECK(sc, !sd->eof, "side %d: eof_received twice", sd->id);
    MCHECK(sc, !sd->paused, "side %d: eof_received while reading is paused", sd->id);
    MCHECK(sc, !sd->closed && !sd->aborted, "side %d: eof_received after close/abort", sd->id);
    MCHECK(sc, pe->closed || pe->eof_sent || pe->aborted || pe->lost,
           "side %d: eof_received but the peer neither closed nor ended", sd->id);
    /* A peer that ended gracefully sent every byte it accepted. */
    if ((pe->closed || pe->eof_sent) && !pe->aborted && !(pe->lost && pe->lost_err != 0)) {
        MCHECK(sc, sd->got == pe->sent, "side %d: eof after %zu bytes, the peer wrote %zu", sd->id,
               sd->got, pe->sent);
        stats.eof_exact++;
    }
    sd->eof = 1;
    int keep = sc->finishing ? 0 : sd->keep_open;
    /* Returning 0 closes the transport (a read pipe closes whatever we say). */
    if (!keep || !sd->can_write)
        sd->closed = 1;
    return keep;
}

static void m_lost(asyncio_protocol *self, int err)
{
    side *sd = SD(self);
    scen *sc = sd->sc;
    MCHECK(sc, sd->made, "side %d: connection_lost before connection_made", sd->id);
    MCHECK(sc, !sd->lost, "side %d: connection_lost twice", sd->id);
    MCHECK(sc,
           err == 0 || err == -ECONNRESET || err == -EPIPE ||
               (err == ASYNCIO_ECLOSED && sc->closing_loop),
           "side %d: connection_lost(%s)", sd->id, asyncio_err_name(err));
    /* Loop close ends an open transport with ECLOSED; one whose end was
     * already queued (abort, an error, a flushed close) keeps its own. */
    if (sc->closing_loop)
        MCHECK(sc, err == ASYNCIO_ECLOSED || sd->closing_at_close,
               "side %d: lost %s while the loop closes", sd->id, asyncio_err_name(err));
    /* A clean end we did not ask for: only a write pipe whose reader went. */
    if (err == 0 && !sd->closed && !sd->aborted)
        MCHECK(sc, !sd->can_read && (sd->peer->closed || sd->peer->aborted || sd->peer->lost),
               "side %d: connection_lost(0) without close, abort or EOF", sd->id);
    sd->lost = 1;
    sd->lost_err = err;
    stats.lost_error += err != 0;
    ((mproto *)(void *)self)->sd = NULL;
    free(self);
    sc->nfree++;
    if (sc->finishing && !sc->closing_loop) {
        uint64_t *saved = sc->rng;
        sc->rng = &sc->cb_rng;
        finisher(sc);
        sc->rng = saved;
        maybe_quiet(sc);
    }
}

static void m_pause(asyncio_protocol *self)
{
    side *sd = SD(self);
    scen *sc = sd->sc;
    MCHECK(sc, sd->made && !sd->lost, "side %d: pause_writing outside made..lost", sd->id);
    MCHECK(sc, sd->npause == sd->nresume, "side %d: pause_writing twice", sd->id);
    size_t size = asyncio_transport_get_write_buffer_size(sd->t);
    MCHECK(sc, size > sd->high, "side %d: pause_writing at %zu bytes, high %zu", sd->id, size,
           sd->high);
    sd->npause++;
    stats.pauses++;
}

static void m_resume(asyncio_protocol *self)
{
    side *sd = SD(self);
    scen *sc = sd->sc;
    MCHECK(sc, sd->made && !sd->lost, "side %d: resume_writing outside made..lost", sd->id);
    MCHECK(sc, sd->npause == sd->nresume + 1, "side %d: resume_writing without pause", sd->id);
    size_t size = asyncio_transport_get_write_buffer_size(sd->t);
    MCHECK(sc, size <= sd->low, "side %d: resume_writing at %zu bytes, low %zu", sd->id, size,
           sd->low);
    sd->nresume++;
}

static const asyncio_protocol_ops m_ops = {
    .connection_made = m_made,
    .connection_lost = m_lost,
    .data_received = m_data,
    .eof_received = m_eof,
    .pause_writing = m_pause,
    .resume_writing = m_resume,
};

static asyncio_protocol *new_proto(side *sd)
{
    scen *sc = sd->sc;
    MCHECK(sc, sd != NULL, "a connection nobody asked for");
    MCHECK(sc, !sd->has_proto, "side %d: the factory was called twice", sd->id);
    mproto *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    p->base.ops = &m_ops;
    p->sd = sd;
    sd->has_proto = 1;
    sc->nalloc++;
    return &p->base;
}

static asyncio_protocol *side_factory(void *arg) { return new_proto(arg); }

static asyncio_protocol *server_factory(void *arg)
{
    scen *sc = arg;
    MCHECK(sc, sc->accepting != NULL, "the server accepted a connection nobody made");
    return new_proto(sc->accepting);
}

/* ---- Transport steps ---------------------------------------------------------------------- */

/* The limits set_write_buffer_limits promises (transport.h). */
static int model_limits(size_t high, size_t low, size_t *h, size_t *l)
{
    if (high == 0 && low == 0) {
        high = DEFAULT_HIGH;
        low = DEFAULT_HIGH / 4;
    } else if (low > high) {
        return -EINVAL;
    } else if (low == 0) {
        low = high / 4;
    }
    *h = high;
    *l = low;
    return 0;
}

/* After a call that may have queued bytes: above high means paused; an
 * empty buffer means not paused (nothing else can resume it). */
static void check_flow(scen *sc, side *sd)
{
    if (!sd->can_write || sd->lost || asyncio_transport_is_closing(sd->t))
        return;
    size_t size = asyncio_transport_get_write_buffer_size(sd->t);
    int paused = sd->npause > sd->nresume;
    if (size > sd->high)
        MCHECK(sc, paused, "side %d: %zu bytes queued, high %zu, pause_writing never came", sd->id,
               size, sd->high);
    if (size == 0)
        MCHECK(sc, !paused, "side %d: nothing queued but still paused", sd->id);
}

static void step_write(scen *sc, side *sd, int lines)
{
    size_t len = rand_size(sc);
    gen(sd->key, sd->sent, scratch, len);
    int closing = asyncio_transport_is_closing(sd->t);
    MCHECK(sc, closing == 1 || !(sd->closed || sd->aborted || sd->lost),
           "side %d: is_closing 0 after close/abort/lost", sd->id);
    int rc;
    if (lines) {
        struct iovec iov[4];
        int n = 1 + (int)rnd(sc, 4);
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            size_t piece = i == n - 1 ? len - off : rnd(sc, len - off + 1);
            iov[i].iov_base = scratch + off;
            iov[i].iov_len = piece;
            off += piece;
        }
        rc = asyncio_transport_writelines(sd->t, iov, n);
    } else {
        rc = asyncio_transport_write(sd->t, scratch, len);
    }
    if (!sd->can_write) {
        MCHECK(sc, rc == -ENOTSUP, "side %d: write on a read pipe gave %d", sd->id, rc);
        return;
    }
    if (closing || sd->eof_sent)
        MCHECK(sc, rc == -EPIPE, "side %d: write after close/write_eof gave %s", sd->id,
               asyncio_err_name(rc));
    else
        MCHECK(sc, rc == 0, "side %d: write of %zu gave %s", sd->id, len, asyncio_err_name(rc));
    if (rc == 0)
        sd->sent += len;
    check_flow(sc, sd);
}

static void step_write_eof(scen *sc, side *sd)
{
    int rc = asyncio_transport_write_eof(sd->t);
    MCHECK(sc, asyncio_transport_can_write_eof(sd->t) == sd->can_write,
           "side %d: can_write_eof wrong", sd->id);
    if (!sd->can_write) {
        MCHECK(sc, rc == -ENOTSUP, "side %d: write_eof on a read pipe gave %d", sd->id, rc);
        return;
    }
    MCHECK(sc, rc == 0, "side %d: write_eof gave %s", sd->id, asyncio_err_name(rc));
    if (sd->lost)
        return;
    if (!sd->can_read)
        sd->closed = 1; /* a pipe's EOF is its close */
    else
        sd->eof_sent = 1;
}

static void step_reading(scen *sc, side *sd, int pause)
{
    int rc =
        pause ? asyncio_transport_pause_reading(sd->t) : asyncio_transport_resume_reading(sd->t);
    if (!sd->can_read) {
        MCHECK(sc, rc == -ENOTSUP, "side %d: pause/resume on a write pipe gave %d", sd->id, rc);
        return;
    }
    MCHECK(sc, rc == 0, "side %d: pause/resume_reading gave %s", sd->id, asyncio_err_name(rc));
    sd->paused = pause;
}

static void step_limits(scen *sc, side *sd)
{
    size_t high, low;
    switch (rnd(sc, 4)) {
    case 0:
        high = low = 0;
        break;
    case 1:
        high = rnd(sc, 10000);
        low = high + 1 + rnd(sc, 100);
        break;
    case 2:
        high = 1 + rnd(sc, 256 * 1024);
        low = 0;
        break;
    default:
        /* Small limits half the time, so that writes pause often. */
        high = rnd(sc, rnd(sc, 2) ? 8 * 1024 : 256 * 1024);
        low = rnd(sc, high + 1);
        break;
    }
    size_t old_h = sd->high, old_l = sd->low, h, l;
    int expect = model_limits(high, low, &h, &l);
    if (sd->can_write && expect == 0) {
        /* Before the call: it may pause at once. */
        sd->high = h;
        sd->low = l;
    }
    int rc = asyncio_transport_set_write_buffer_limits(sd->t, high, low);
    if (!sd->can_write) {
        MCHECK(sc, rc == -ENOTSUP, "side %d: limits on a read pipe gave %d", sd->id, rc);
        return;
    }
    MCHECK(sc, rc == expect, "side %d: set_write_buffer_limits(%zu, %zu) gave %s", sd->id, high,
           low, asyncio_err_name(rc));
    if (rc != 0) {
        sd->high = old_h;
        sd->low = old_l;
    }
    check_flow(sc, sd);
}

static void step_close(scen *sc, side *sd, int abrt)
{
    int rc = abrt ? asyncio_transport_abort(sd->t) : asyncio_transport_close(sd->t);
    MCHECK(sc, rc == 0, "side %d: close/abort gave %s", sd->id, asyncio_err_name(rc));
    MCHECK(sc, asyncio_transport_is_closing(sd->t) == 1, "side %d: not closing after close",
           sd->id);
    if (sd->lost)
        return;
    if (abrt)
        sd->aborted = 1;
    else
        sd->closed = 1;
}

/* ---- Timers, handles, futures -------------------------------------------------------------- */

static void timer_cb(void *arg)
{
    mtimer *m = arg;
    scen *sc = m->sc;
    int id = (int)(m - sc->timers);
    double now = asyncio_loop_time(sc->loop);
    MCHECK(sc, !m->cancelled, "timer %d fired after cancel", id);
    MCHECK(sc, !m->fired, "timer %d fired twice", id);
    MCHECK(sc, now >= m->when, "timer %d fired %.6f s early", id, m->when - now);
    for (int i = 0; i < sc->ntimers; i++) {
        mtimer *o = &sc->timers[i];
        /* A timer made after this one fell due (call_at in the past) may
         * rightly wait for the next pass, as in asyncio. */
        if (o->fired || o->cancelled || o == m || o->scheduled >= m->when)
            continue;
        MCHECK(sc, o->when > m->when || (o->when == m->when && o->seq > m->seq),
               "timer %d fired before timer %d, which is due earlier", id, i);
    }
    m->fired = 1;
    stats.timers++;
    if (m->act && !sc->finishing && sc->steps_left > 0)
        cb_step(sc, 1);
    maybe_quiet(sc);
}

static void step_timer(scen *sc)
{
    if (sc->ntimers == MAX_TIMERS)
        return;
    mtimer *m = &sc->timers[sc->ntimers++];
    memset(m, 0, sizeof(*m));
    m->sc = sc;
    m->seq = ++sc->timer_seq;
    m->act = rnd(sc, 3) == 0;
    double delay = (double)rnd(sc, 5000) * 1e-6;
    if (rnd(sc, 10) == 0)
        delay = -0.001; /* a negative delay is 0 */
    double before = asyncio_loop_time(sc->loop);
    int at = rnd(sc, 5) == 0;
    int rc = at ? asyncio_loop_call_at(sc->loop, before + delay, timer_cb, m, &m->h)
                : asyncio_loop_call_later(sc->loop, delay, timer_cb, m, &m->h);
    double after = asyncio_loop_time(sc->loop);
    m->scheduled = before;
    MCHECK(sc, rc == 0, "call_later/call_at gave %s", asyncio_err_name(rc));
    m->when = asyncio_handle_when(m->h);
    if (at) {
        /* call_at keeps a deadline in the past; it is simply due. */
        MCHECK(sc, m->when == before + delay, "call_at deadline %.6f, asked %.6f", m->when,
               before + delay);
    } else {
        double d = delay > 0 ? delay : 0;
        MCHECK(sc, m->when >= before + d - 1e-6 && m->when <= after + d + 1e-6,
               "call_later deadline %.6f outside [%.6f, %.6f]", m->when, before + d, after + d);
    }
    if (rnd(sc, 3) == 0) {
        asyncio_handle_unref(m->h); /* dropped, not cancelled: still fires */
        m->h = NULL;
    }
}

static void step_timer_cancel(scen *sc)
{
    if (sc->ntimers == 0)
        return;
    mtimer *m = &sc->timers[rnd(sc, (size_t)sc->ntimers)];
    if (m->h == NULL)
        return;
    MCHECK(sc, asyncio_handle_cancel(m->h) == 0, "handle_cancel failed");
    if (!m->fired) {
        m->cancelled = 1;
        stats.cancels++;
    }
    MCHECK(sc, asyncio_handle_cancelled(m->h) == m->cancelled,
           "handle_cancelled %d, the model says %d", asyncio_handle_cancelled(m->h), m->cancelled);
}

static void soon_cb(void *arg)
{
    msoon *m = arg;
    scen *sc = m->sc;
    int id = (int)(m - sc->soons);
    MCHECK(sc, !m->cancelled, "call_soon %d ran after cancel", id);
    MCHECK(sc, !m->fired, "call_soon %d ran twice", id);
    MCHECK(sc, m->seq > sc->last_ready_run, "call_soon %d ran out of FIFO order", id);
    sc->last_ready_run = m->seq;
    m->fired = 1;
    maybe_quiet(sc);
}

static void step_soon(scen *sc)
{
    if (sc->nsoons == MAX_SOONS)
        return;
    msoon *m = &sc->soons[sc->nsoons++];
    memset(m, 0, sizeof(*m));
    m->sc = sc;
    m->seq = ++sc->ready_seq;
    int rc = asyncio_loop_call_soon(sc->loop, soon_cb, m, &m->h);
    MCHECK(sc, rc == 0, "call_soon gave %s", asyncio_err_name(rc));
    MCHECK(sc, asyncio_handle_when(m->h) == -1.0, "call_soon handle has a deadline");
    switch (rnd(sc, 4)) {
    case 0:
        asyncio_handle_unref(m->h);
        m->h = NULL;
        break;
    case 1:
        MCHECK(sc, asyncio_handle_cancel(m->h) == 0, "handle_cancel failed");
        m->cancelled = 1;
        break;
    default:
        break;
    }
}

static void step_soon_cancel(scen *sc)
{
    if (sc->nsoons == 0)
        return;
    msoon *m = &sc->soons[rnd(sc, (size_t)sc->nsoons)];
    if (m->h == NULL)
        return;
    MCHECK(sc, asyncio_handle_cancel(m->h) == 0, "handle_cancel failed");
    if (!m->fired) {
        m->cancelled = 1;
        stats.cancels++;
    }
    MCHECK(sc, asyncio_handle_cancelled(m->h) == m->cancelled,
           "handle_cancelled %d, the model says %d", asyncio_handle_cancelled(m->h), m->cancelled);
}

static void done_cb(asyncio_future *f, void *arg)
{
    mcb *c = arg;
    mfut *mf = c->mf;
    scen *sc = mf->sc;
    int id = (int)(mf - sc->futs), k = (int)(c - mf->cb);
    MCHECK(sc, f == mf->f, "future %d: done callback got another future", id);
    MCHECK(sc, !c->removed, "future %d: removed callback %d ran", id, k);
    MCHECK(sc, c->scheduled && !c->ran, "future %d: callback %d ran %s", id, k,
           c->ran ? "twice" : "unscheduled");
    MCHECK(sc, asyncio_future_done(f) == 1, "future %d: callback %d ran while pending", id, k);
    MCHECK(sc, asyncio_future_cancelled(f) == (mf->state == 3), "future %d: cancelled wrong", id);
    MCHECK(sc, c->seq > sc->last_ready_run, "future %d: callback %d ran out of order", id, k);
    sc->last_ready_run = c->seq;
    c->ran = 1;
    stats.callbacks++;
    maybe_quiet(sc);
}

static void add_cb(scen *sc, mfut *mf)
{
    if (mf->ncb == MAX_CBS)
        return;
    mcb *c = &mf->cb[mf->ncb++];
    memset(c, 0, sizeof(*c));
    c->mf = mf;
    int rc = asyncio_future_add_done_callback(mf->f, done_cb, c);
    MCHECK(sc, rc == 0, "add_done_callback gave %s", asyncio_err_name(rc));
    if (mf->state != 0) {
        c->scheduled = 1; /* done already: scheduled at once */
        c->seq = ++sc->ready_seq;
    }
}

static void complete(scen *sc, mfut *mf, int how)
{
    int id = (int)(mf - sc->futs);
    int was_pending = mf->state == 0;
    int rc = how == 1   ? asyncio_future_set_result(mf->f, NULL, NULL)
             : how == 2 ? asyncio_future_set_exception(mf->f, -EIO)
                        : asyncio_future_cancel(mf->f);
    if (how == 3)
        MCHECK(sc, rc == was_pending, "future %d: cancel gave %d", id, rc);
    else
        MCHECK(sc, rc == (was_pending ? 0 : ASYNCIO_EINVALSTATE), "future %d: completing gave %s",
               id, asyncio_err_name(rc));
    if (!was_pending)
        return;
    mf->state = how;
    for (int k = 0; k < mf->ncb; k++)
        if (!mf->cb[k].removed) {
            mf->cb[k].scheduled = 1;
            mf->cb[k].seq = ++sc->ready_seq;
        }
}

/* Our reference goes; an error is looked at first, so the release is quiet. */
static void drop_future(mfut *mf)
{
    if (mf->state != 0)
        asyncio_future_exception(mf->f);
    asyncio_future_unref(mf->f);
    mf->held = 0;
}

static void step_future(scen *sc)
{
    size_t op = rnd(sc, 8);
    if (op < 2 || sc->nfuts == 0) {
        if (sc->nfuts == MAX_FUTS)
            return;
        mfut *mf = &sc->futs[sc->nfuts++];
        memset(mf, 0, sizeof(*mf));
        mf->sc = sc;
        int rc = asyncio_loop_create_future(sc->loop, &mf->f);
        MCHECK(sc, rc == 0, "create_future gave %s", asyncio_err_name(rc));
        mf->held = 1;
        for (size_t n = rnd(sc, 4); n > 0; n--)
            add_cb(sc, mf);
        return;
    }
    mfut *mf = &sc->futs[rnd(sc, (size_t)sc->nfuts)];
    if (!mf->held)
        return;
    switch (op) {
    case 2:
        add_cb(sc, mf);
        break;
    case 3: {
        if (mf->ncb == 0)
            break;
        mcb *c = &mf->cb[rnd(sc, (size_t)mf->ncb)];
        int rc = asyncio_future_remove_done_callback(mf->f, done_cb, c);
        int expect = !c->removed && !c->scheduled;
        MCHECK(sc, rc == expect, "future %d: remove_done_callback gave %d, expected %d",
               (int)(mf - sc->futs), rc, expect);
        if (rc == 1)
            c->removed = 1;
        break;
    }
    case 4:
    case 5:
    case 6:
        complete(sc, mf, (int)op - 3);
        break;
    default:
        drop_future(mf); /* pending: its callbacks never run; done: they still do */
        break;
    }
}

/* ---- Driving --------------------------------------------------------------------------------- */

static side *pick_side(scen *sc)
{
    pair *pr = &sc->pairs[rnd(sc, (size_t)sc->npairs)];
    return &pr->s[rnd(sc, 2)];
}

static void do_step(scen *sc)
{
    sc->step++;
    sc->steps_left--;
    size_t r = rnd(sc, 100);
    if (sc->npairs == 0)
        r = 70 + rnd(sc, 30); /* callbacks only */
    if (r < 70) {
        side *sd = pick_side(sc);
        if (r < 28)
            step_write(sc, sd, 0);
        else if (r < 36)
            step_write(sc, sd, 1);
        else if (r < 40)
            step_write_eof(sc, sd);
        else if (r < 48)
            step_reading(sc, sd, 1);
        else if (r < 58)
            step_reading(sc, sd, 0);
        else if (r < 64)
            step_limits(sc, sd);
        else if (r < 68)
            step_close(sc, sd, 0);
        else
            step_close(sc, sd, 1);
    } else if (r < 78) {
        step_timer(sc);
    } else if (r < 82) {
        step_timer_cancel(sc);
    } else if (r < 88) {
        step_soon(sc);
    } else if (r < 91) {
        step_soon_cancel(sc);
    } else {
        step_future(sc);
    }
}

/* A step from inside a callback, one time in `one_in`. */
static void cb_step(scen *sc, size_t one_in)
{
    uint64_t *saved = sc->rng;
    sc->rng = &sc->cb_rng;
    if (rnd(sc, one_in) == 0)
        do_step(sc);
    sc->rng = saved;
}

static void driver(void *arg);

static void start_finish(scen *sc)
{
    sc->finishing = 1;
    if (sc->npairs > 0 && rnd(sc, 5) == 0) {
        /* End by closing the loop under whatever is still open. */
        sc->by_loop_close = 1;
        stats.loop_closes++;
        sc->quiet = 1;
        asyncio_loop_stop(sc->loop);
        return;
    }
    finisher(sc);
    maybe_quiet(sc);
}

static void schedule_driver(scen *sc)
{
    int rc;
    size_t r = rnd(sc, 10);
    if (r < 6) {
        rc = asyncio_loop_call_soon(sc->loop, driver, sc, NULL);
    } else if (r < 9) {
        rc = asyncio_loop_call_later(sc->loop, (double)rnd(sc, 2000) * 1e-6, driver, sc, NULL);
    } else {
        /* Stop the loop; the scenario runs it again. */
        asyncio_loop_stop(sc->loop);
        rc = asyncio_loop_call_soon(sc->loop, driver, sc, NULL);
    }
    MCHECK(sc, rc == 0, "scheduling the driver gave %s", asyncio_err_name(rc));
    sc->driver_pending = 1;
}

static void driver(void *arg)
{
    scen *sc = arg;
    sc->driver_pending = 0;
    for (size_t n = 1 + rnd(sc, 3); n > 0 && sc->steps_left > 0; n--)
        do_step(sc);
    for (int i = 0; i < sc->npairs; i++)
        for (int j = 0; j < 2; j++)
            check_flow(sc, &sc->pairs[i].s[j]);
    if (sc->steps_left > 0)
        schedule_driver(sc);
    else
        start_finish(sc);
}

/* End every pair without a deadlock: a transport that closes gracefully
 * needs its peer to read until it has flushed, so at most one end of a
 * pair closes at a time, a pair whose both ends are flushing a close loses
 * one to abort, and the other end follows once the first is gone. */
static void finish_end(scen *sc, side *sd) { step_close(sc, sd, rnd(sc, 4) == 0); }

static void finisher(scen *sc)
{
    for (int i = 0; i < sc->npairs; i++) {
        pair *pr = &sc->pairs[i];
        side *a = &pr->s[0], *b = &pr->s[1];
        for (int j = 0; j < 2; j++) {
            side *x = &pr->s[j];
            if (live(x) && x->can_read && x->paused)
                step_reading(sc, x, 0);
        }
        if (!live(a) && !live(b))
            continue;
        if (pr->kind == K_PIPE) {
            /* The reader reads to the EOF by itself. */
            if (live(a) && !asyncio_transport_is_closing(a->t))
                finish_end(sc, a);
            continue;
        }
        if (live(a) && live(b)) {
            int ca = asyncio_transport_is_closing(a->t), cb = asyncio_transport_is_closing(b->t);
            if (ca && cb && !a->aborted && !b->aborted)
                step_close(sc, rnd(sc, 2) ? a : b, 1);
            else if (!ca && !cb)
                finish_end(sc, rnd(sc, 2) ? a : b);
        } else {
            side *o = live(a) ? a : b;
            if (!asyncio_transport_is_closing(o->t))
                finish_end(sc, o);
        }
    }
}

static void guard_cb(void *arg)
{
    scen *sc = arg;
    model_fail(sc, __LINE__, "guard timer: not quiet after %.0f s (%d things pending)",
               GUARD_SECONDS, pending_work(sc));
}

static void handler(asyncio_loop *loop, const asyncio_error_context *ctx, void *arg)
{
    (void)loop;
    scen *sc = arg;
    model_fail(sc, __LINE__, "exception handler: %s (%s)",
               ctx->message != NULL ? ctx->message : "?", asyncio_err_name(ctx->error));
}

/* ---- Setting a scenario up ---------------------------------------------------------------- */

static void init_side(scen *sc, side *sd, side *peer, int id, int can_read, int can_write)
{
    memset(sd, 0, sizeof(*sd));
    sd->sc = sc;
    sd->peer = peer;
    sd->id = id;
    sd->can_read = can_read;
    sd->can_write = can_write;
    sd->keep_open = (int)rnd(sc, 2);
    sd->high = DEFAULT_HIGH;
    sd->low = DEFAULT_HIGH / 4;
    sd->key = next(sc);
}

static asyncio_server *start_server(scen *sc, int unix_socket)
{
    asyncio_future *f = NULL;
    int rc =
        unix_socket
            ? asyncio_loop_create_unix_server(sc->loop, server_factory, sc, sc->path, NULL, &f)
            : asyncio_loop_create_server(sc->loop, server_factory, sc, "127.0.0.1", 0, NULL, &f);
    MCHECK(sc, rc == 0, "create_server gave %s", asyncio_err_name(rc));
    rc = asyncio_loop_run_until_complete(sc->loop, f);
    MCHECK(sc, rc == 0, "create_server failed: %s", asyncio_err_name(rc));
    void *s = NULL;
    asyncio_future_result(f, &s);
    asyncio_server_ref(s);
    asyncio_future_unref(f);
    if (!unix_socket) {
        int fd = -1;
        ck_assert_int_eq(asyncio_server_get_sockets(s, &fd, 1), 1);
        struct sockaddr_in a;
        socklen_t alen = sizeof(a);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
        sc->port = ntohs(a.sin_port);
    }
    return s;
}

static void connect_sockets(scen *sc, pair *pr)
{
    side *c = &pr->s[0], *s = &pr->s[1];
    asyncio_future *f = NULL;
    int rc;
    sc->accepting = s;
    if (pr->kind == K_TCP) {
        if (sc->tcp_server == NULL)
            sc->tcp_server = start_server(sc, 0);
        rc = asyncio_loop_create_connection(sc->loop, side_factory, c, "127.0.0.1", sc->port, NULL,
                                            &f);
    } else {
        if (sc->unix_server == NULL)
            sc->unix_server = start_server(sc, 1);
        rc = asyncio_loop_create_unix_connection(sc->loop, side_factory, c, sc->path, NULL, &f);
    }
    MCHECK(sc, rc == 0, "create_connection gave %s", asyncio_err_name(rc));
    rc = asyncio_loop_run_until_complete(sc->loop, f);
    MCHECK(sc, rc == 0, "connecting failed: %s", asyncio_err_name(rc));
    asyncio_future_unref(f);
    MCHECK(sc, c->made, "create_connection done before connection_made");
    while (!s->made) {
        sc->setup_wait = 1;
        tu_run(sc->loop);
    }
    sc->setup_wait = 0;
    sc->accepting = NULL;
}

static void connect_pipes(scen *sc, pair *pr)
{
    int fds[2];
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    asyncio_future *fw = NULL, *fr = NULL;
    int rc = asyncio_loop_connect_write_pipe(sc->loop, side_factory, &pr->s[0], fds[1], &fw);
    MCHECK(sc, rc == 0, "connect_write_pipe gave %s", asyncio_err_name(rc));
    rc = asyncio_loop_connect_read_pipe(sc->loop, side_factory, &pr->s[1], fds[0], &fr);
    MCHECK(sc, rc == 0, "connect_read_pipe gave %s", asyncio_err_name(rc));
    MCHECK(sc, asyncio_loop_run_until_complete(sc->loop, fw) == 0, "write pipe failed");
    MCHECK(sc, asyncio_loop_run_until_complete(sc->loop, fr) == 0, "read pipe failed");
    asyncio_future_unref(fw);
    asyncio_future_unref(fr);
    MCHECK(sc, pr->s[0].made && pr->s[1].made, "pipe future done before connection_made");
}

/* Half the time, small kernel buffers: writes then stop at the kernel, and
 * the transport's own buffer, flow control and partial flushes all work. */
static void shrink_buffers(scen *sc, pair *pr)
{
    if (rnd(sc, 2) == 0)
        return;
    for (int j = 0; j < 2; j++) {
        asyncio_transport *t = pr->s[j].t;
        int *fd = asyncio_transport_get_extra_info(t, pr->kind == K_PIPE ? "pipe" : "socket");
        MCHECK(sc, fd != NULL, "side %d: no fd in get_extra_info", pr->s[j].id);
        int size = 4096 << rnd(sc, 4);
        if (pr->kind == K_PIPE) {
            if (j == 0)
                fcntl(*fd, F_SETPIPE_SZ, size);
        } else {
            /* Not SO_RCVBUF: a tiny TCP window stalls on delayed ACKs. */
            setsockopt(*fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
        }
    }
}

/* ---- One scenario ------------------------------------------------------------------------- */

static void final_checks(scen *sc)
{
    for (int i = 0; i < sc->npairs; i++)
        for (int j = 0; j < 2; j++) {
            side *sd = &sc->pairs[i].s[j];
            MCHECK(sc, sd->made && sd->lost, "side %d: made %d lost %d at the end", sd->id,
                   sd->made, sd->lost);
            MCHECK(sc, sd->got <= sd->peer->sent, "side %d: got more than sent", sd->id);
        }
    for (int i = 0; i < sc->ntimers; i++) {
        mtimer *m = &sc->timers[i];
        if (!sc->by_loop_close)
            MCHECK(sc, m->fired != m->cancelled, "timer %d: fired %d, cancelled %d", i, m->fired,
                   m->cancelled);
        if (m->h != NULL)
            MCHECK(sc, asyncio_handle_cancelled(m->h) == m->cancelled,
                   "timer %d: handle_cancelled wrong", i);
    }
    for (int i = 0; i < sc->nsoons; i++) {
        msoon *m = &sc->soons[i];
        if (!sc->by_loop_close)
            MCHECK(sc, m->fired != m->cancelled, "call_soon %d: ran %d, cancelled %d", i, m->fired,
                   m->cancelled);
    }
    for (int i = 0; i < sc->nfuts; i++)
        for (int k = 0; k < sc->futs[i].ncb; k++) {
            mcb *c = &sc->futs[i].cb[k];
            if (!sc->by_loop_close)
                MCHECK(sc, c->ran == c->scheduled, "future %d: callback %d ran %d, scheduled %d", i,
                       k, c->ran, c->scheduled);
        }
}

static long run_scenario(enum mode mode, uint64_t seed)
{
    scen *sc = calloc(1, sizeof(*sc));
    ck_assert_ptr_nonnull(sc);
    current = sc;
    sc->seed = seed;
    sc->mode = mode;
    sc->main_rng = mix64(seed * 16 + (uint64_t)mode);
    sc->cb_rng = mix64(sc->main_rng);
    sc->rng = &sc->main_rng;
    snprintf(sc->path, sizeof(sc->path), "/tmp/asyncio-model-%ld.sock", (long)getpid());
    unlink(sc->path);
    int fds0 = tu_count_fds();

    sc->loop = tu_new_loop();
    ck_assert_int_eq(asyncio_loop_set_exception_handler(sc->loop, handler, sc), 0);
    ck_assert_int_eq(asyncio_loop_call_later(sc->loop, GUARD_SECONDS, guard_cb, sc, NULL), 0);

    if (mode != M_CALLBACKS) {
        sc->npairs = 1 + (int)rnd(sc, MAX_PAIRS);
        for (int i = 0; i < sc->npairs; i++) {
            pair *pr = &sc->pairs[i];
            pr->kind = mode == M_PIPES ? K_PIPE : (int)rnd(sc, 2);
            int pipe = pr->kind == K_PIPE;
            init_side(sc, &pr->s[0], &pr->s[1], 2 * i, !pipe, 1);
            init_side(sc, &pr->s[1], &pr->s[0], 2 * i + 1, 1, !pipe);
            if (pipe)
                connect_pipes(sc, pr);
            else
                connect_sockets(sc, pr);
            shrink_buffers(sc, pr);
        }
    }
    sc->steps_left = mode == M_CALLBACKS ? 20 + (int)rnd(sc, 60) : 10 + (int)rnd(sc, 40);
    schedule_driver(sc);
    while (!sc->quiet) {
        int rc = asyncio_loop_run_forever(sc->loop);
        MCHECK(sc, rc == 0, "run_forever gave %s", asyncio_err_name(rc));
    }
    if (!sc->by_loop_close)
        final_checks(sc);

    if (sc->tcp_server != NULL) {
        ck_assert_int_eq(asyncio_server_close(sc->tcp_server), 0);
        asyncio_server_unref(sc->tcp_server);
    }
    if (sc->unix_server != NULL) {
        ck_assert_int_eq(asyncio_server_close(sc->unix_server), 0);
        asyncio_server_unref(sc->unix_server);
    }
    for (int i = 0; i < sc->npairs; i++)
        for (int j = 0; j < 2; j++) {
            side *sd = &sc->pairs[i].s[j];
            sd->closing_at_close = asyncio_transport_is_closing(sd->t);
        }
    sc->closing_loop = 1;
    int rc = asyncio_loop_close(sc->loop);
    MCHECK(sc, rc == 0, "loop close gave %s", asyncio_err_name(rc));
    sc->closing_loop = 0;
    final_checks(sc);

    for (int i = 0; i < sc->npairs; i++)
        for (int j = 0; j < 2; j++)
            asyncio_transport_unref(sc->pairs[i].s[j].t);
    for (int i = 0; i < sc->ntimers; i++)
        asyncio_handle_unref(sc->timers[i].h);
    for (int i = 0; i < sc->nsoons; i++)
        asyncio_handle_unref(sc->soons[i].h);
    for (int i = 0; i < sc->nfuts; i++)
        if (sc->futs[i].held)
            drop_future(&sc->futs[i]);
    asyncio_loop_unref(sc->loop);
    unlink(sc->path);

    MCHECK(sc, sc->nalloc == sc->nfree, "%d protocols made, %d freed", sc->nalloc, sc->nfree);
    int fds1 = tu_count_fds();
    MCHECK(sc, fds1 == fds0, "%d fds before, %d after", fds0, fds1);
    long steps = sc->step;
    current = NULL;
    free(sc);
    return steps;
}

/* ASYNCIO_MODEL_SEED=N: scenario N alone; else ASYNCIO_MODEL_RUNS (300) of them. */
static void run_model(enum mode mode, const char *name)
{
#ifdef HAVE_DEATH_CALLBACK
    __sanitizer_set_death_callback(on_death);
#endif
    const char *seed = getenv("ASYNCIO_MODEL_SEED");
    const char *runs_env = getenv("ASYNCIO_MODEL_RUNS");
    uint64_t first = 1, runs = DEFAULT_RUNS;
    if (seed != NULL && *seed != '\0') {
        first = strtoull(seed, NULL, 10);
        runs = 1;
    } else if (runs_env != NULL && *runs_env != '\0') {
        runs = strtoull(runs_env, NULL, 10);
    }
    long steps = 0;
    double t0 = tu_now();
    for (uint64_t i = 0; i < runs; i++)
        steps += run_scenario(mode, first + i);
    printf("model: %s: %" PRIu64 " scenarios, %ld steps, %.2f s; %llu bytes checked, %ld exact "
           "EOFs, %ld pause_writing, %ld connection_lost(error), %ld loop closes under open "
           "transports, %ld timers fired, %ld handles cancelled, %ld done callbacks\n",
           name, runs, steps, tu_now() - t0, stats.bytes, stats.eof_exact, stats.pauses,
           stats.lost_error, stats.loop_closes, stats.timers, stats.cancels, stats.callbacks);
    fflush(stdout);
}

/* ---- Tests ------------------------------------------------------------------------------------ */

START_TEST(socket_pairs_keep_the_model) { run_model(M_SOCKETS, "sockets"); }
END_TEST

START_TEST(pipe_pairs_keep_the_model) { run_model(M_PIPES, "pipes"); }
END_TEST

START_TEST(timers_handles_futures_keep_the_model) { run_model(M_CALLBACKS, "callbacks"); }
END_TEST

static Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    /* One case each, so that CK_RUN_CASE picks one; the timeout leaves room
     * for slow machines (CK_TIMEOUT_MULTIPLIER for long hunts). */
    const struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"sockets", socket_pairs_keep_the_model},
        {"pipes", pipe_pairs_keep_the_model},
        {"callbacks", timers_handles_futures_keep_the_model},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void) { return tu_run_suite(model_suite()); }
