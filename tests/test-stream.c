/* Stream transports (src/stream.c): the socket path, reached through
 * asyncio_transport_new_from_bufferevent() with a plain socket
 * bufferevent (whose fd the transport takes over), and the bufferevent
 * path with a bufferevent pair and a filter.
 *
 * The far end of each connection is a plain fd driven either from loop
 * callbacks or, for bulk transfers, from a thread doing blocking I/O, so
 * the loop under test is the only event loop involved. */
#define _GNU_SOURCE /* accept4 */
#include "testutil.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { EV_MADE = 1, EV_DATA, EV_EOF, EV_LOST };

#define MiB (1024 * 1024)

static unsigned char pat(size_t i) { return (unsigned char)((i * 2654435761u) >> 13); }

/* ---- A protocol that records what happens ------------------------------------------ */

typedef struct tp {
    asyncio_protocol base;
    asyncio_loop *loop;
    asyncio_transport *t; /* borrowed from connection_made */
    tu_recorder ev;       /* EV_* in the order they came, EV_DATA once per call */
    size_t got;           /* bytes received, checked against pat() when `check` */
    int check;
    size_t max_chunk;
    size_t data_calls;
    int lost_err;
    int nlost;
    int npause, nresume; /* kept out of `ev`: a write may pause before connection_made */
    int eof_ret;         /* what eof_received returns */
    int close_in_data;   /* close() inside the first data_received */
    int abort_in_data;
    int pause_in_data;          /* pause_reading inside the first data_received */
    double sleep_in_first_data; /* let the peer fill the socket */
    size_t close_at;            /* close once this many bytes came (0: never) */
    int stop_on_lost;
    int unref_in_lost;   /* the protocol holds the only reference */
    int free_in_lost;    /* the protocol is malloc'd and frees itself */
    unsigned char *keep; /* a copy of what came, if non-NULL (capacity keep_cap) */
    size_t keep_cap;
    void (*on_pause)(struct tp *);
    void (*on_resume)(struct tp *);
    void (*on_data)(struct tp *, const void *, size_t);
    void (*on_made)(struct tp *);
    void *user;
} tp;

static tp *P(asyncio_protocol *p) { return (tp *)(void *)p; }

static void tp_made(asyncio_protocol *self, asyncio_transport *t)
{
    tp *p = P(self);
    ck_assert_int_eq(p->nlost, 0);
    tu_rec_push(&p->ev, EV_MADE);
    p->t = t;
    if (p->on_made != NULL)
        p->on_made(p);
}

static void tp_note_data(tp *p, const void *data, size_t len)
{
    tu_rec_push(&p->ev, EV_DATA);
    ck_assert_int_eq(p->nlost, 0);
    ck_assert_msg(len > 0, "data_received with no data");
    if (p->check) {
        const unsigned char *b = data;
        for (size_t i = 0; i < len; i++)
            if (b[i] != pat(p->got + i))
                ck_abort_msg("byte %zu differs", p->got + i);
    }
    if (p->keep != NULL) {
        ck_assert_uint_le(p->got + len, p->keep_cap);
        memcpy(p->keep + p->got, data, len);
    }
    p->got += len;
    p->data_calls++;
    if (len > p->max_chunk)
        p->max_chunk = len;
}

static void tp_data(asyncio_protocol *self, const void *data, size_t len)
{
    tp *p = P(self);
    tp_note_data(p, data, len);
    if (p->data_calls == 1) {
        if (p->sleep_in_first_data > 0)
            tu_busy_wait(p->sleep_in_first_data);
        if (p->close_in_data)
            ck_assert_int_eq(asyncio_transport_close(p->t), 0);
        if (p->abort_in_data)
            ck_assert_int_eq(asyncio_transport_abort(p->t), 0);
        if (p->pause_in_data) {
            ck_assert_int_eq(asyncio_transport_pause_reading(p->t), 0);
            ck_assert_int_eq(asyncio_transport_pause_reading(p->t), 0); /* idempotent */
        }
    }
    if (p->on_data != NULL)
        p->on_data(p, data, len);
    if (p->close_at > 0 && p->got >= p->close_at && !asyncio_transport_is_closing(p->t))
        ck_assert_int_eq(asyncio_transport_close(p->t), 0);
}

static int tp_eof(asyncio_protocol *self)
{
    tp *p = P(self);
    ck_assert_int_eq(p->nlost, 0);
    tu_rec_push(&p->ev, EV_EOF);
    return p->eof_ret;
}

static void tp_lost(asyncio_protocol *self, int err)
{
    tp *p = P(self);
    tu_rec_push(&p->ev, EV_LOST);
    p->nlost++;
    p->lost_err = err;
    if (p->stop_on_lost)
        asyncio_loop_stop(p->loop);
    if (p->unref_in_lost)
        asyncio_transport_unref(p->t);
    if (p->free_in_lost) {
        int *flag = p->user;
        *flag = err == 0 ? 1 : 2;
        tu_rec_free(&p->ev);
        free(p);
    }
}

static void tp_pause(asyncio_protocol *self)
{
    tp *p = P(self);
    ck_assert_int_eq(p->nlost, 0);
    ck_assert_int_eq(p->npause, p->nresume); /* alternate, starting with a pause */
    p->npause++;
    if (p->on_pause != NULL)
        p->on_pause(p);
}

static void tp_resume(asyncio_protocol *self)
{
    tp *p = P(self);
    ck_assert_int_eq(p->nlost, 0);
    ck_assert_int_eq(p->npause, p->nresume + 1);
    p->nresume++;
    if (p->on_resume != NULL)
        p->on_resume(p);
}

static const asyncio_protocol_ops tp_ops = {
    .connection_made = tp_made,
    .connection_lost = tp_lost,
    .data_received = tp_data,
    .eof_received = tp_eof,
    .pause_writing = tp_pause,
    .resume_writing = tp_resume,
};

static void tp_init(tp *p, asyncio_loop *loop)
{
    memset(p, 0, sizeof(*p));
    p->base.ops = &tp_ops;
    p->loop = loop;
    p->stop_on_lost = 1;
    tu_rec_init(&p->ev);
}

static size_t count_ev(const tp *p, int what)
{
    size_t n = 0;
    for (size_t i = 0; i < p->ev.len; i++)
        n += p->ev.v[i] == what;
    return n;
}

/* made first, lost last and once, eof at most once and after every data. */
static void check_order(const tp *p)
{
    ck_assert_uint_ge(p->ev.len, 2);
    ck_assert_int_eq(p->ev.v[0], EV_MADE);
    ck_assert_int_eq(p->ev.v[p->ev.len - 1], EV_LOST);
    ck_assert_uint_eq(count_ev(p, EV_MADE), 1);
    ck_assert_uint_eq(count_ev(p, EV_LOST), 1);
    ck_assert_uint_le(count_ev(p, EV_EOF), 1);
    int seen_eof = 0;
    for (size_t i = 0; i < p->ev.len; i++) {
        if (p->ev.v[i] == EV_EOF)
            seen_eof = 1;
        if (p->ev.v[i] == EV_DATA)
            ck_assert_msg(!seen_eof, "data_received after eof_received");
    }
}

/* ---- Connected sockets -------------------------------------------------------------- */

/* fds[0] for the transport (non-blocking), fds[1] for the peer (blocking). */
static void unix_pair(int fds[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    ck_assert_int_eq(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
}

static void tcp_pair(int fds[2])
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(l, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(l, 1), 0);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(c, 0);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(s, 0);
    close(l);
    ck_assert_int_eq(fcntl(c, F_SETFL, O_NONBLOCK), 0);
    fds[0] = c;
    fds[1] = s;
}

/* The socket path: a plain socket bufferevent, whose fd is taken over. */
static asyncio_transport *wrap_socket(asyncio_loop *loop, int fd, tp *p)
{
    struct bufferevent *bev =
        bufferevent_socket_new(asyncio_loop_get_event_base(loop), fd, BEV_OPT_CLOSE_ON_FREE);
    ck_assert_ptr_nonnull(bev);
    asyncio_transport *t = NULL;
    ck_assert_int_eq(asyncio_transport_new_from_bufferevent(loop, bev, &p->base, &t), 0);
    ck_assert_ptr_nonnull(t);
    p->t = t; /* borrowed, as connection_made will give it */
    /* Taken over: no bufferevent any more, the fd is the transport's. */
    ck_assert_ptr_null(asyncio_transport_get_extra_info(t, "bufferevent"));
    int *sock = asyncio_transport_get_extra_info(t, "socket");
    ck_assert_ptr_nonnull(sock);
    ck_assert_int_eq(*sock, fd);
    return t;
}

/* ---- Peers on threads ------------------------------------------------------------------ */

typedef struct peer {
    int fd;
    size_t n;       /* writer: bytes to write; reader: bytes read */
    size_t chunk;   /* writer: bytes per write() */
    size_t offset;  /* pattern offset of the first byte */
    int shut_after; /* writer: shutdown(SHUT_WR) when done */
    int bad;        /* reader: a byte differed */
    int check;
    unsigned char *keep;
    size_t keep_cap;
    pthread_t th;
} peer;

static void *peer_write(void *arg)
{
    peer *pe = arg;
    size_t chunk = pe->chunk ? pe->chunk : 256 * 1024;
    unsigned char *buf = malloc(chunk);
    size_t done = 0;
    while (done < pe->n) {
        size_t len = pe->n - done < chunk ? pe->n - done : chunk;
        for (size_t i = 0; i < len; i++)
            buf[i] = pat(pe->offset + done + i);
        size_t off = 0;
        while (off < len) {
            ssize_t w = write(pe->fd, buf + off, len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                goto out;
            off += (size_t)w;
        }
        done += len;
    }
    if (pe->shut_after)
        shutdown(pe->fd, SHUT_WR);
out:
    free(buf);
    return NULL;
}

static void *peer_read(void *arg)
{
    peer *pe = arg;
    unsigned char *buf = malloc(256 * 1024);
    for (;;) {
        ssize_t r = read(pe->fd, buf, 256 * 1024);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (pe->check)
            for (ssize_t i = 0; i < r; i++)
                if (buf[i] != pat(pe->offset + pe->n + (size_t)i))
                    pe->bad = 1;
        if (pe->keep != NULL && pe->n + (size_t)r <= pe->keep_cap)
            memcpy(pe->keep + pe->n, buf, (size_t)r);
        pe->n += (size_t)r;
    }
    free(buf);
    return NULL;
}

static void peer_start(peer *pe, void *(*fn)(void *))
{
    ck_assert_int_eq(pthread_create(&pe->th, NULL, fn, pe), 0);
}

static void peer_join(peer *pe) { pthread_join(pe->th, NULL); }

/* Write the pattern into a transport, `total` bytes in `chunk`s. */
static void write_pattern(asyncio_transport *t, size_t offset, size_t total, size_t chunk)
{
    unsigned char *buf = malloc(chunk);
    ck_assert_ptr_nonnull(buf);
    for (size_t done = 0; done < total; done += chunk) {
        size_t len = total - done < chunk ? total - done : chunk;
        for (size_t i = 0; i < len; i++)
            buf[i] = pat(offset + done + i);
        ck_assert_int_eq(asyncio_transport_write(t, buf, len), 0);
    }
    free(buf);
}

static void peer_write_all(int fd, const void *data, size_t len)
{
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
}

/* ---- Tests ------------------------------------------------------------------------------- */

START_TEST(test_callback_order)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int fds[2];
    unix_pair(fds);
    tp p;
    tp_init(&p, loop);
    asyncio_transport *t = wrap_socket(loop, fds[0], &p);
    /* Nothing runs before the loop does. */
    ck_assert_uint_eq(p.ev.len, 0);
    peer_write_all(fds[1], "hello", 5);
    peer_write_all(fds[1], " world", 6);
    shutdown(fds[1], SHUT_WR);
    tu_run(loop);
    check_order(&p);
    ck_assert_uint_eq(p.got, 11);
    ck_assert_uint_eq(count_ev(&p, EV_EOF), 1);
    ck_assert_int_eq(p.lost_err, 0);
    ck_assert_int_eq(asyncio_transport_is_closing(t), 1);
    /* The peer sees our side closed. */
    char c;
    ck_assert_int_eq(read(fds[1], &c, 1), 0);
    asyncio_transport_unref(t);
    close(fds[1]);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

/* Both directions at once, byte-exact: we send `n`, the peer sends `n`. */
static void bulk(size_t n, int use_tcp)
{
    asyncio_loop *loop = tu_new_loop();
    tu_guard(loop, 20.0);
    int fds[2];
    if (use_tcp)
        tcp_pair(fds);
    else
        unix_pair(fds);
    tp p;
    tp_init(&p, loop);
    p.check = 1;
    p.close_at = n;
    asyncio_transport *t = wrap_socket(loop, fds[0], &p);
    peer w = {.fd = fds[1], .n = n, .chunk = 100000};
    peer r = {.fd = fds[1], .check = 1};
    peer_start(&w, peer_write);
    peer_start(&r, peer_read);
    write_pattern(t, 0, n, 1000 * 1000);
    tu_run(loop);
    peer_join(&w);
    peer_join(&r);
    check_order(&p);
    ck_assert_int_eq(p.lost_err, 0);
    ck_assert_uint_eq(p.got, n);
    ck_assert_uint_eq(r.n, n);
    ck_assert_int_eq(r.bad, 0);
    asyncio_transport_unref(t);
    close(fds[1]);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}

START_TEST(test_bulk_1mib_both_ways) { bulk(1 * MiB, 0); }
END_TEST

START_TEST(test_bulk_16mib_both_ways) { bulk(16 * MiB, 1); }
END_TEST

START_TEST(test_reads_not_capped_at_4k)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int fds[2];
    unix_pair(fds);
    int big = 4 * MiB;
    setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    tp p;
    tp_init(&p, loop);
    p.check = 1;
    p.close_at = 1 * MiB;
    p.sleep_in_first_data = 0.05; /* the peer fills the socket meanwhile */
    asyncio_transport *t = wrap_socket(loop, fds[0], &p);
    peer w = {.fd = fds[1], .n = 1 * MiB, .chunk = 1 * MiB};
    peer_start(&w, peer_write);
    tu_run(loop);
    peer_join(&w);
    ck_assert_uint_eq(p.got, 1 * MiB);
    ck_assert_msg(p.max_chunk > 64 * 1024, "largest data_received was %zu bytes", p.max_chunk);
    asyncio_transport_unref(t);
    close(fds[1]);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

/* A buffered protocol: the bytes land in its own memory. */
typedef struct bp {
    tp base;
    unsigned char *mem;
    size_t cap, used;
    size_t updates;
    void *last_handed;
    int outside; /* buffer_updated with a count beyond what was handed out */
} bp;

static void *bp_get_buffer(asyncio_protocol *self, size_t hint, size_t *len)
{
    bp *b = (bp *)(void *)self;
    ck_assert_uint_gt(hint, 0);
    size_t room = b->cap - b->used;
    *len = room < 100000 ? room : 100000; /* odd size on purpose */
    b->last_handed = b->mem + b->used;
    return b->last_handed;
}

static void bp_updated(asyncio_protocol *self, size_t n)
{
    bp *b = (bp *)(void *)self;
    if (n > 100000)
        b->outside = 1;
    b->used += n;
    b->updates++;
    if (b->used == b->cap)
        asyncio_transport_close(b->base.t);
}

static void bp_data(asyncio_protocol *self, const void *d, size_t n)
{
    ck_abort_msg("data_received called on a buffered protocol");
}

START_TEST(test_buffered_protocol)
{
    static const asyncio_protocol_ops ops = {
        .connection_made = tp_made,
        .connection_lost = tp_lost,
        .data_received = bp_data,
        .eof_received = tp_eof,
        .get_buffer = bp_get_buffer,
        .buffer_updated = bp_updated,
    };
    asyncio_loop *loop = tu_new_guarded_loop();
    int fds[2];
    tcp_pair(fds);
    bp b;
    tp_init(&b.base, loop);
    b.base.base.ops = &ops;
    b.cap = 1 * MiB;
    b.used = 0;
    b.updates = 0;
    b.outside = 0;
    b.mem = malloc(b.cap);
    asyncio_transport *t = wrap_socket(loop, fds[0], &b.base);
    peer w = {.fd = fds[1], .n = 1 * MiB};
    peer_start(&w, peer_write);
    tu_run(loop);
    peer_join(&w);
    ck_assert_uint_eq(b.used, 1 * MiB);
    ck_assert_int_eq(b.outside, 0);
    ck_assert_uint_gt(b.updates, 1); /* 100000-byte buffers: several reads */
    for (size_t i = 0; i < b.cap; i++)
        if (b.mem[i] != pat(i))
            ck_abort_msg("byte %zu differs", i);
    ck_assert_int_eq(b.base.lost_err, 0);
    free(b.mem);
    asyncio_transport_unref(t);
    close(fds[1]);
    tu_rec_free(&b.base.ev);
    tu_free_loop(loop);
}
END_TEST

START_TEST(test_write_tries_at_once)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int fds[2];
    unix_pair(fds);
    tp p;
    tp_init(&p, loop);
    asyncio_transport *t = wrap_socket(loop, fds[0], &p);
    ck_assert_int_eq(asyncio_transport_write(t, "0123456789", 10), 0);
    /* Sent already, without the loop running: nothing is queued and the
     * peer can read it now. */
    ck_assert_uint_eq(asyncio_transport_get_write_buffer_size(t), 0);
    char buf[16];
    ck_assert_int_eq(read(fds[1], buf, sizeof(buf)), 10);
    ck_assert_int_eq(memcmp(buf, "0123456789", 10), 0);
    struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cde", 3}};
    ck_assert_int_eq(asyncio_transport_writelines(t, iov, 3), 0);
    ck_assert_uint_eq(asyncio_transport_get_write_buffer_size(t), 0);
    ck_assert_int_eq(read(fds[1], buf, sizeof(buf)), 5);
    ck_assert_int_eq(memcmp(buf, "abcde", 5), 0);
    ck_assert_int_eq(asyncio_transport_close(t), 0);
    tu_run(loop);
    ck_assert_int_eq(p.nlost, 1);
    asyncio_transport_unref(t);
    close(fds[1]);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

/* Fill until pause_writing comes; then let a peer thread read. */
static peer flow_reader;
static void flow_on_pause(tp *p)
{
    ck_assert_uint_gt(asyncio_transport_get_write_buffer_size(p->t), 64 * 1024);
    peer_start(&flow_reader, peer_read);
}
static void flow_on_resume(tp *p)
{
    ck_assert_uint_le(asyncio_transport_get_write_buffer_size(p->t), 16 * 1024);
    ck_assert_int_eq(asyncio_transport_close(p->t), 0);
}

START_TEST(test_pause_resume_writing)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int fds[2];
    unix_pair(fds);
    tp p;
    tp_init(&p, loop);
    p.on_pause = flow_on_pause;
    p.on_resume = flow_on_resume;
    asyncio_transport *t = wrap_socket(loop, fds[0], &p);
    memset(&flow_reader, 0, sizeof(flow_reader));
    flow_reader.fd = fds[1];
    flow_reader.check = 1;
    /* The peer is not reading: the socket fills, then our buffer. */
    size_t written = 0;
    while (p.npause == 0) {
        write_pattern(t, written, 8192, 8192);
        written += 8192;
        ck_assert_uint_lt(written, 64 * MiB);
    }
    ck_assert_uint_eq(p.npause, 1);
    tu_run(loop);
    peer_join(&flow_reader);
    ck_assert_uint_eq(p.npause, 1);
    ck_assert_uint_eq(p.nresume, 1);
    ck_assert_uint_eq(flow_reader.n, written);
    ck_assert_int_eq(flow_reader.bad, 0);
    ck_assert_int_eq(p.lost_err, 0);
    asyncio_transport_unref(t);
    close(fds[1]);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

START_TEST(test_write_buffer_limits)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int fds[2];
    unix_pair(fds);
    tp p;
    tp_init(&p, loop);
    asyncio_transport *t = wrap_socket(loop, fds[0], &p);
    ck_assert_int_eq(asyncio_transport_set_write_buffer_limits(t, 10, 20), -EINVAL);
    ck_assert_int_eq(asyncio_transport_set_write_buffer_limits(t, 0, 5), -EINVAL);
    ck_assert_int_eq(asyncio_transport_set_write_buffer_limits(NULL, 0, 0), -EINVAL);
    ck_assert_int_eq(asyncio_transport_set_write_buffer_limits(t, 0, 0), 0);
    ck_assert_int_eq(asyncio_transport_set_write_buffer_limits(t, 100, 100), 0);
    /* high 1 MiB: low becomes 256 KiB. */
    ck_assert_int_eq(asyncio_transport_set_write_buffer_limits(t, 1 * MiB, 0), 0);
    size_t written = 0;
    while (asyncio_transport_get_write_buffer_size(t) < 512 * 1024) {
        write_pattern(t, written, 65536, 65536);
        written += 65536;
    }
    /* Above the defaults but below 1 MiB: no pause. */
    ck_assert_uint_eq(p.npause, 0);
    /* Lowering high below the buffer pauses at once. */
    ck_assert_int_eq(asyncio_transport_set_write_buffer_limits(t, 4096, 0), 0);
    ck_assert_uint_eq(p.npause, 1);
    /* Low was derived as 1024: draining to <= 1024 resumes once. */
    flow_reader.fd = fds[1];
    flow_reader.n = 0;
    flow_reader.check = 1;
    flow_reader.bad = 0;
    peer_start(&flow_reader, peer_read);
    p.on_resume = flow_on_resume;
    tu_run(loop);
    peer_join(&flow_reader);
    ck_assert_uint_eq(p.nresume, 1);
    ck_assert_uint_eq(flow_reader.n, written);
    asyncio_transport_unref(t);
    close(fds[1]);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

/* pause_reading inside the first data_received; the peer writes more;
 * nothing arrives until resume_reading. */
struct pr {
    tp *p;
    int peer;
    size_t calls_at_pause;
};
static void pr_write_more(void *arg)
{
    struct pr *x = arg;
    peer_write_all(x->peer, "more", 4);
}
static void pr_resume(void *arg)
{
    struct pr *x = arg;
    ck_assert_uint_eq(x->p->data_calls, 1); /* still paused */
    ck_assert_int_eq(asyncio_transport_resume_reading(x->p->t), 0);
    ck_assert_int_eq(asyncio_transport_resume_reading(x->p->t), 0); /* idempotent */
}

static void pause_reading_case(asyncio_transport *(*make)(asyncio_loop *, tp *, int *peer))
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp p;
    tp_init(&p, loop);
    p.pause_in_data = 1;
    p.close_at = 5;
    int peer_fd;
    asyncio_transport *t = make(loop, &p, &peer_fd);
    struct pr x = {&p, peer_fd, 0};
    peer_write_all(peer_fd, "a", 1);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.05, pr_write_more, &x, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.2, pr_resume, &x, NULL), 0);
    tu_run(loop);
    ck_assert_uint_eq(p.got, 5);
    ck_assert_uint_eq(p.data_calls, 2);
    check_order(&p);
    asyncio_transport_unref(t);
    close(peer_fd);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}

static asyncio_transport *make_socket(asyncio_loop *loop, tp *p, int *peer_fd)
{
    int fds[2];
    unix_pair(fds);
    *peer_fd = fds[1];
    return wrap_socket(loop, fds[0], p);
}

START_TEST(test_pause_reading) { pause_reading_case(make_socket); }
END_TEST

/* write_eof: the peer sees EOF after our data; we still read. */
struct we {
    tp *p;
    int peer;
    int saw_eof;
};
static void we_peer(void *arg)
{
    struct we *x = arg;
    char buf[16];
    ck_assert_int_eq(read(x->peer, buf, sizeof(buf)), 3);
    ck_assert_int_eq(memcmp(buf, "xyz", 3), 0);
    ck_assert_int_eq(read(x->peer, buf, sizeof(buf)), 0); /* EOF */
    x->saw_eof = 1;
    peer_write_all(x->peer, "back", 4);
    shutdown(x->peer, SHUT_WR);
}
static void we_made(tp *p)
{
    struct we *x = p->user;
    ck_assert_int_eq(asyncio_transport_can_write_eof(p->t), 1);
    ck_assert_int_eq(asyncio_transport_write(p->t, "xyz", 3), 0);
    ck_assert_int_eq(asyncio_transport_write_eof(p->t), 0);
    ck_assert_int_eq(asyncio_transport_write_eof(p->t), 0); /* idempotent */
    ck_assert_int_eq(asyncio_transport_write(p->t, "no", 2), -EPIPE);
    ck_assert_int_eq(asyncio_loop_call_later(p->loop, 0.02, we_peer, x, NULL), 0);
}

START_TEST(test_write_eof)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp p;
    tp_init(&p, loop);
    int peer_fd;
    asyncio_transport *t = make_socket(loop, &p, &peer_fd);
    struct we x = {&p, peer_fd, 0};
    p.user = &x;
    p.on_made = we_made;
    tu_run(loop);
    ck_assert_int_eq(x.saw_eof, 1);
    ck_assert_uint_eq(p.got, 4);
    ck_assert_uint_eq(count_ev(&p, EV_EOF), 1);
    check_order(&p);
    ck_assert_int_eq(p.lost_err, 0);
    asyncio_transport_unref(t);
    close(peer_fd);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

START_TEST(test_eof_received_zero_closes)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp p;
    tp_init(&p, loop);
    p.eof_ret = 0;
    int peer_fd;
    asyncio_transport *t = make_socket(loop, &p, &peer_fd);
    shutdown(peer_fd, SHUT_WR);
    tu_run(loop);
    static const int want[] = {EV_MADE, EV_EOF, EV_LOST};
    tu_rec_expect(&p.ev, want, 3);
    ck_assert_int_eq(p.lost_err, 0);
    asyncio_transport_unref(t);
    close(peer_fd);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

struct ho {
    tp *p;
    int peer;
    int got_after;
};
static void ho_after_eof(void *arg)
{
    struct ho *x = arg;
    ck_assert_int_eq(asyncio_transport_is_closing(x->p->t), 0);
    ck_assert_int_eq(asyncio_transport_write(x->p->t, "after", 5), 0);
    char buf[8];
    ck_assert_int_eq(read(x->peer, buf, sizeof(buf)), 5);
    ck_assert_int_eq(memcmp(buf, "after", 5), 0);
    x->got_after = 1;
    ck_assert_int_eq(asyncio_transport_close(x->p->t), 0);
}
static int ho_eof(asyncio_protocol *self)
{
    tp *p = P(self);
    tp_eof(self);
    ck_assert_int_eq(asyncio_loop_call_later(p->loop, 0.02, ho_after_eof, p->user, NULL), 0);
    return 1;
}

START_TEST(test_eof_received_nonzero_half_open)
{
    static asyncio_protocol_ops ops;
    ops = tp_ops;
    ops.eof_received = ho_eof;
    asyncio_loop *loop = tu_new_guarded_loop();
    tp p;
    tp_init(&p, loop);
    p.base.ops = &ops;
    int peer_fd;
    asyncio_transport *t = make_socket(loop, &p, &peer_fd);
    struct ho x = {&p, peer_fd, 0};
    p.user = &x;
    shutdown(peer_fd, SHUT_WR);
    tu_run(loop);
    ck_assert_int_eq(x.got_after, 1);
    static const int want[] = {EV_MADE, EV_EOF, EV_LOST};
    tu_rec_expect(&p.ev, want, 3);
    ck_assert_int_eq(p.lost_err, 0);
    char c;
    ck_assert_int_eq(read(peer_fd, &c, 1), 0);
    asyncio_transport_unref(t);
    close(peer_fd);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

START_TEST(test_close_flushes)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp p;
    tp_init(&p, loop);
    int peer_fd;
    asyncio_transport *t = make_socket(loop, &p, &peer_fd);
    write_pattern(t, 0, 4 * MiB, 1 * MiB);
    ck_assert_uint_gt(asyncio_transport_get_write_buffer_size(t), 0);
    ck_assert_int_eq(asyncio_transport_close(t), 0);
    ck_assert_int_eq(asyncio_transport_close(t), 0); /* idempotent */
    ck_assert_int_eq(asyncio_transport_is_closing(t), 1);
    peer r = {.fd = peer_fd, .check = 1};
    peer_start(&r, peer_read);
    tu_run(loop);
    peer_join(&r); /* ends at EOF: after everything */
    ck_assert_uint_eq(r.n, 4 * MiB);
    ck_assert_int_eq(r.bad, 0);
    static const int want[] = {EV_MADE, EV_LOST};
    tu_rec_expect(&p.ev, want, 2);
    ck_assert_int_eq(p.lost_err, 0);
    ck_assert_uint_eq(asyncio_transport_get_write_buffer_size(t), 0);
    asyncio_transport_unref(t);
    close(peer_fd);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

START_TEST(test_abort_drops)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp p;
    tp_init(&p, loop);
    int peer_fd;
    asyncio_transport *t = make_socket(loop, &p, &peer_fd);
    write_pattern(t, 0, 4 * MiB, 1 * MiB);
    ck_assert_uint_gt(asyncio_transport_get_write_buffer_size(t), 0);
    ck_assert_int_eq(asyncio_transport_abort(t), 0);
    ck_assert_uint_eq(asyncio_transport_get_write_buffer_size(t), 0);
    ck_assert_int_eq(asyncio_transport_is_closing(t), 1);
    tu_run(loop);
    static const int want[] = {EV_MADE, EV_LOST};
    tu_rec_expect(&p.ev, want, 2);
    ck_assert_int_eq(p.lost_err, 0);
    peer r = {.fd = peer_fd, .check = 1};
    peer_read(&r);
    ck_assert_uint_lt(r.n, 4 * MiB);
    ck_assert_int_eq(r.bad, 0);
    asyncio_transport_unref(t);
    close(peer_fd);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

START_TEST(test_peer_reset)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int fds[2];
    tcp_pair(fds);
    tp p;
    tp_init(&p, loop);
    asyncio_transport *t = wrap_socket(loop, fds[0], &p);
    /* Unread data at close makes the peer's close a reset, and so does
     * SO_LINGER 0. */
    ck_assert_int_eq(asyncio_transport_write(t, "unread", 6), 0);
    struct linger lg = {1, 0};
    ck_assert_int_eq(setsockopt(fds[1], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    usleep(10000);
    close(fds[1]);
    tu_run(loop);
    ck_assert_int_eq(p.nlost, 1);
    ck_assert_msg(p.lost_err == -ECONNRESET || p.lost_err == -EPIPE, "lost with %d", p.lost_err);
    ck_assert_uint_eq(count_ev(&p, EV_EOF), 0);
    check_order(&p);
    asyncio_transport_unref(t);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

START_TEST(test_close_inside_data_received)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp p;
    tp_init(&p, loop);
    p.close_in_data = 1;
    int peer_fd;
    asyncio_transport *t = make_socket(loop, &p, &peer_fd);
    peer_write_all(peer_fd, "one", 3);
    tu_run(loop);
    ck_assert_uint_eq(p.data_calls, 1);
    static const int want[] = {EV_MADE, EV_DATA, EV_LOST};
    tu_rec_expect(&p.ev, want, 3);
    ck_assert_int_eq(p.lost_err, 0);
    /* More data after the close never reaches the protocol. */
    asyncio_transport_unref(t);
    close(peer_fd);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

START_TEST(test_abort_inside_data_received)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp p;
    tp_init(&p, loop);
    p.abort_in_data = 1;
    int peer_fd;
    asyncio_transport *t = make_socket(loop, &p, &peer_fd);
    peer_write_all(peer_fd, "one", 3);
    shutdown(peer_fd, SHUT_WR);
    tu_run(loop);
    static const int want[] = {EV_MADE, EV_DATA, EV_LOST};
    tu_rec_expect(&p.ev, want, 3);
    asyncio_transport_unref(t);
    close(peer_fd);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

/* The protocol owns the only reference and frees itself in connection_lost. */
START_TEST(test_unref_inside_connection_lost)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int flag = 0;
    tp *p = malloc(sizeof(*p));
    tp_init(p, loop);
    p->unref_in_lost = 1;
    p->free_in_lost = 1;
    p->close_in_data = 1;
    p->user = &flag;
    int fds[2];
    unix_pair(fds);
    asyncio_transport *t = wrap_socket(loop, fds[0], p);
    asyncio_transport_ref(t);   /* the protocol's, dropped in connection_lost */
    asyncio_transport_unref(t); /* the test's */
    peer_write_all(fds[1], "x", 1);
    /* No stop_on_lost from a freed protocol: stop a little later. */
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.2, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
    ck_assert_int_eq(flag, 1);
    close(fds[1]);
    tu_free_loop(loop);
}
END_TEST

START_TEST(test_write_after_close)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp p;
    tp_init(&p, loop);
    int peer_fd;
    asyncio_transport *t = make_socket(loop, &p, &peer_fd);
    ck_assert_int_eq(asyncio_transport_close(t), 0);
    ck_assert_int_eq(asyncio_transport_write(t, "x", 1), -EPIPE);
    struct iovec iov = {"y", 1};
    ck_assert_int_eq(asyncio_transport_writelines(t, &iov, 1), -EPIPE);
    ck_assert_int_eq(asyncio_transport_write(t, NULL, 1), -EINVAL);
    tu_run(loop);
    ck_assert_int_eq(asyncio_transport_write(t, "x", 1), -EPIPE);
    ck_assert_int_eq(asyncio_transport_abort(t), 0);
    ck_assert_int_eq(asyncio_transport_close(t), 0);
    ck_assert_int_eq(p.nlost, 1);
    asyncio_transport_unref(t);
    close(peer_fd);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

START_TEST(test_get_extra_info)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int fds[2];
    tcp_pair(fds);
    struct sockaddr_in peer_name, peer_peer;
    socklen_t l1 = sizeof(peer_name), l2 = sizeof(peer_peer);
    ck_assert_int_eq(getsockname(fds[1], (struct sockaddr *)&peer_name, &l1), 0);
    ck_assert_int_eq(getpeername(fds[1], (struct sockaddr *)&peer_peer, &l2), 0);
    tp p;
    tp_init(&p, loop);
    asyncio_transport *t = wrap_socket(loop, fds[0], &p);
    struct sockaddr_in *pn = asyncio_transport_get_extra_info(t, "peername");
    struct sockaddr_in *sn = asyncio_transport_get_extra_info(t, "sockname");
    ck_assert_ptr_nonnull(pn);
    ck_assert_ptr_nonnull(sn);
    ck_assert_int_eq(pn->sin_family, AF_INET);
    ck_assert_int_eq(pn->sin_port, peer_name.sin_port);
    ck_assert_int_eq(sn->sin_port, peer_peer.sin_port);
    int *fd = asyncio_transport_get_extra_info(t, "socket");
    ck_assert_ptr_nonnull(fd);
    ck_assert_int_eq(*fd, fds[0]);
    ck_assert_ptr_null(asyncio_transport_get_extra_info(t, "bufferevent"));
    ck_assert_ptr_null(asyncio_transport_get_extra_info(t, "ssl_object"));
    ck_assert_ptr_null(asyncio_transport_get_extra_info(t, "no such thing"));
    ck_assert_ptr_null(asyncio_transport_get_extra_info(t, NULL));
    ck_assert_ptr_eq(asyncio_transport_get_protocol(t), &p.base);
    ck_assert_int_eq(asyncio_transport_close(t), 0);
    tu_run(loop);
    /* Closed: no socket any more. */
    ck_assert_ptr_null(asyncio_transport_get_extra_info(t, "socket"));
    asyncio_transport_unref(t);
    close(fds[1]);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

START_TEST(test_loop_close_with_open_transport)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp p, q;
    tp_init(&p, loop);
    tp_init(&q, loop);
    int peer1, peer2;
    asyncio_transport *t1 = make_socket(loop, &p, &peer1);
    asyncio_transport *t2 = make_socket(loop, &q, &peer2);
    /* t2 has data queued (the peer does not read), t1 is idle. */
    write_pattern(t2, 0, 2 * MiB, 1 * MiB);
    tu_call_soon_stop(loop);
    tu_run(loop);
    ck_assert_uint_eq(count_ev(&p, EV_MADE), 1);
    ck_assert_int_eq(p.nlost, 0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(p.nlost, 1);
    ck_assert_int_eq(q.nlost, 1);
    ck_assert_int_eq(p.lost_err, ASYNCIO_ECLOSED);
    ck_assert_int_eq(q.lost_err, ASYNCIO_ECLOSED);
    check_order(&p);
    check_order(&q);
    ck_assert_int_eq(asyncio_transport_is_closing(t1), 1);
    ck_assert_int_eq(asyncio_transport_write(t1, "x", 1), -EPIPE);
    ck_assert_int_eq(asyncio_transport_close(t1), 0);
    ck_assert_int_eq(asyncio_transport_pause_reading(t1), 0);
    ck_assert_int_eq(asyncio_transport_resume_reading(t1), 0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(p.nlost, 1);
    asyncio_transport_unref(t1);
    asyncio_transport_unref(t2);
    char c;
    ck_assert_int_eq(read(peer1, &c, 1), 0); /* closed */
    close(peer1);
    close(peer2);
    tu_rec_free(&p.ev);
    tu_rec_free(&q.ev);
    asyncio_loop_unref(loop);
}
END_TEST

START_TEST(test_no_fd_leak)
{
    int before = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    tp p, q, r;
    tp_init(&p, loop);
    tp_init(&q, loop);
    tp_init(&r, loop);
    p.close_at = 3;
    q.stop_on_lost = 0;
    int peer1, peer2;
    asyncio_transport *t1 = make_socket(loop, &p, &peer1);
    asyncio_transport *t2 = make_socket(loop, &q, &peer2);
    /* a bufferevent-path transport too */
    struct bufferevent *pair[2];
    ck_assert_int_eq(
        bufferevent_pair_new(asyncio_loop_get_event_base(loop), BEV_OPT_CLOSE_ON_FREE, pair), 0);
    asyncio_transport *t3 = NULL;
    ck_assert_int_eq(asyncio_transport_new_from_bufferevent(loop, pair[0], &r.base, &t3), 0);
    peer_write_all(peer1, "abc", 3);
    asyncio_transport_abort(t2);
    tu_run(loop); /* t1 closes after 3 bytes */
    ck_assert_int_eq(p.nlost, 1);
    ck_assert_int_eq(q.nlost, 1);
    asyncio_transport_unref(t1);
    asyncio_transport_unref(t2);
    asyncio_transport_unref(t3);
    close(peer1);
    close(peer2);
    bufferevent_free(pair[1]);
    tu_free_loop(loop); /* t3 is closed by the loop */
    ck_assert_int_eq(r.nlost, 1);
    ck_assert_int_eq(r.lost_err, ASYNCIO_ECLOSED);
    tu_rec_free(&p.ev);
    tu_rec_free(&q.ev);
    tu_rec_free(&r.ev);
    ck_assert_int_eq(tu_count_fds(), before);
}
END_TEST

/* sendfile of a 4 MiB temp file; `pre` bytes written before it, "tail"
 * written while it runs. */
static int temp_file(size_t n, size_t offset)
{
    char name[] = "/tmp/test-stream-XXXXXX";
    int fd = mkstemp(name);
    ck_assert_int_ge(fd, 0);
    unlink(name);
    unsigned char *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = pat(offset + i);
    ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
    free(buf);
    return fd;
}

struct sfx {
    asyncio_transport *t;
    intptr_t result;
    int err;
    int done;
};
static void sf_done(asyncio_future *f, void *arg)
{
    struct sfx *x = arg;
    void *res = NULL;
    x->err = asyncio_future_result(f, &res);
    x->result = (intptr_t)res;
    x->done = 1;
    ck_assert_int_eq(asyncio_transport_close(x->t), 0);
}

/* The receiving end of a bufferevent pair hears its bytes only when the
 * loop polls libevent, which may be after the sender's connection_lost
 * stopped the loop: keep running until everything has come. */
struct until_got {
    asyncio_loop *loop;
    const tp *p;
    size_t want;
};

static void stop_when_got(void *arg)
{
    struct until_got *u = arg;
    if (u->p->got >= u->want)
        asyncio_loop_stop(u->loop);
    else
        ck_assert_int_eq(asyncio_loop_call_later(u->loop, 0.001, stop_when_got, u, NULL), 0);
}

static void sendfile_case(size_t pre, int bev_pair)
{
    const size_t fsize = 4 * MiB;
    asyncio_loop *loop = tu_new_loop();
    tu_guard(loop, 20.0);
    tp p;
    tp_init(&p, loop);
    int peer_fd = -1;
    asyncio_transport *t;
    struct bufferevent *pair[2] = {NULL, NULL};
    tp other;
    tp_init(&other, loop);
    asyncio_transport *ot = NULL;
    size_t total = pre + fsize + 4;
    unsigned char *got = malloc(total + 16);
    size_t got_n = 0;
    if (bev_pair) {
        ck_assert_int_eq(bufferevent_pair_new(asyncio_loop_get_event_base(loop), 0, pair), 0);
        ck_assert_int_eq(asyncio_transport_new_from_bufferevent(loop, pair[0], &p.base, &t), 0);
        other.keep = got;
        other.keep_cap = total + 16;
        other.stop_on_lost = 0;
        ck_assert_int_eq(asyncio_transport_new_from_bufferevent(loop, pair[1], &other.base, &ot),
                         0);
    } else {
        t = make_socket(loop, &p, &peer_fd);
    }
    int fd = temp_file(fsize + 1000, pre);
    /* Start 1000 bytes before the end of a pre-written prefix: offset 0
     * of the file holds pattern bytes pre.. */
    if (pre > 0)
        write_pattern(t, 0, pre, pre);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_sendfile(loop, t, fd, 0, fsize, &f), 0);
    ck_assert_int_eq(asyncio_loop_sendfile(loop, t, fd, 0, fsize, NULL), -EBUSY);
    /* Written during the operation: sent after the file. */
    ck_assert_int_eq(asyncio_transport_write(t, "tail", 4), 0);
    struct sfx x = {t, 0, 1, 0};
    ck_assert_int_eq(asyncio_future_add_done_callback(f, sf_done, &x), 0);
    peer r = {.fd = peer_fd, .keep = got, .keep_cap = total + 16};
    if (!bev_pair)
        peer_start(&r, peer_read);
    tu_run(loop);
    if (!bev_pair) {
        peer_join(&r);
        got_n = r.n;
    } else {
        struct until_got u = {loop, &other, total};
        ck_assert_int_eq(asyncio_loop_call_soon(loop, stop_when_got, &u, NULL), 0);
        tu_run(loop);
        got_n = other.got;
    }
    ck_assert_int_eq(x.done, 1);
    ck_assert_int_eq(x.err, 0);
    ck_assert_int_eq((long)x.result, (long)fsize);
    ck_assert_uint_eq(got_n, total);
    for (size_t i = 0; i < pre + fsize; i++)
        if (got[i] != pat(i))
            ck_abort_msg("byte %zu differs", i);
    ck_assert_int_eq(memcmp(got + pre + fsize, "tail", 4), 0);
    /* The file position follows what was sent. */
    ck_assert_int_eq((long)lseek(fd, 0, SEEK_CUR), (long)fsize);
    ck_assert_int_eq(p.lost_err, 0);
    asyncio_future_unref(f);
    asyncio_transport_unref(t);
    if (ot != NULL)
        asyncio_transport_unref(ot);
    if (peer_fd >= 0)
        close(peer_fd);
    close(fd);
    free(got);
    tu_free_loop(loop);
    tu_rec_free(&p.ev);
    tu_rec_free(&other.ev);
}

START_TEST(test_sendfile) { sendfile_case(0, 0); }
END_TEST

START_TEST(test_sendfile_after_queued_data) { sendfile_case(3 * MiB, 0); }
END_TEST

START_TEST(test_sendfile_bufferevent_fallback) { sendfile_case(100000, 1); }
END_TEST

START_TEST(test_sendfile_bad_input)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    tp p;
    tp_init(&p, loop);
    int peer_fd;
    asyncio_transport *t = make_socket(loop, &p, &peer_fd);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_sendfile(NULL, t, 0, 0, 0, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_sendfile(loop, NULL, 0, 0, 0, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_sendfile(loop, t, -1, 0, 0, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_sendfile(loop, t, 0, -5, 0, &f), -EINVAL);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(asyncio_transport_close(t), 0);
    ck_assert_int_eq(asyncio_loop_sendfile(loop, t, 0, 0, 0, &f), -EPIPE);
    tu_run(loop);
    asyncio_transport_unref(t);
    close(peer_fd);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

/* The bufferevent path with a pair: both ways, write_eof, the partner's
 * EOF, close. */
struct pairx {
    struct bufferevent *other;
    size_t other_got;
    int other_eof;
};
static void pair_other_read(struct bufferevent *bev, void *arg)
{
    struct pairx *x = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    x->other_got += evbuffer_get_length(in);
    evbuffer_drain(in, evbuffer_get_length(in));
}
static void pair_other_event(struct bufferevent *bev, short what, void *arg)
{
    struct pairx *x = arg;
    if (what & BEV_EVENT_EOF)
        x->other_eof = 1;
}
static void pair_made(tp *p)
{
    struct pairx *x = p->user;
    ck_assert_int_eq(asyncio_transport_can_write_eof(p->t), 1);
    ck_assert_ptr_eq(asyncio_transport_get_extra_info(p->t, "bufferevent"),
                     asyncio_transport_get_extra_info(p->t, "bufferevent"));
    ck_assert_ptr_null(asyncio_transport_get_extra_info(p->t, "socket"));
    write_pattern(p->t, 0, 300000, 300000);
    ck_assert_int_eq(asyncio_transport_write_eof(p->t), 0);
    /* The partner sends 3 chunks and its EOF. */
    for (size_t off = 0; off < 3 * 70000; off += 70000) {
        unsigned char buf[70000];
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = pat(off + i);
        ck_assert_int_eq(bufferevent_write(x->other, buf, sizeof(buf)), 0);
    }
    ck_assert_int_eq(bufferevent_flush(x->other, EV_WRITE, BEV_FINISHED), 0);
}

START_TEST(test_bufferevent_pair)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct bufferevent *pair[2];
    ck_assert_int_eq(bufferevent_pair_new(asyncio_loop_get_event_base(loop),
                                          BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, pair),
                     0);
    struct pairx x = {pair[1], 0, 0};
    bufferevent_setcb(pair[1], pair_other_read, NULL, pair_other_event, &x);
    bufferevent_enable(pair[1], EV_READ | EV_WRITE);
    tp p;
    tp_init(&p, loop);
    p.check = 1;
    p.user = &x;
    p.on_made = pair_made;
    asyncio_transport *t = NULL;
    ck_assert_int_eq(asyncio_transport_new_from_bufferevent(loop, pair[0], &p.base, &t), 0);
    ck_assert_ptr_eq(asyncio_transport_get_extra_info(t, "bufferevent"), pair[0]);
    tu_run(loop);
    ck_assert_uint_eq(p.got, 3 * 70000);
    ck_assert_uint_eq(count_ev(&p, EV_EOF), 1);
    check_order(&p);
    ck_assert_int_eq(p.lost_err, 0);
    ck_assert_uint_eq(x.other_got, 300000);
    ck_assert_int_eq(x.other_eof, 1);
    asyncio_transport_unref(t);
    bufferevent_free(pair[1]);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

static asyncio_transport *make_filter(asyncio_loop *loop, tp *p, int *peer_fd)
{
    /* A filter over a socket bufferevent: the bufferevent path with a
     * socket underneath, so the peer is an fd. */
    int fds[2];
    unix_pair(fds);
    *peer_fd = fds[1];
    struct event_base *base = asyncio_loop_get_event_base(loop);
    struct bufferevent *under = bufferevent_socket_new(base, fds[0], BEV_OPT_CLOSE_ON_FREE);
    ck_assert_ptr_nonnull(under);
    struct bufferevent *f =
        bufferevent_filter_new(under, NULL, NULL, BEV_OPT_CLOSE_ON_FREE, NULL, NULL);
    ck_assert_ptr_nonnull(f);
    asyncio_transport *t = NULL;
    ck_assert_int_eq(asyncio_transport_new_from_bufferevent(loop, f, &p->base, &t), 0);
    p->t = t;
    ck_assert_ptr_eq(asyncio_transport_get_extra_info(t, "bufferevent"), f);
    return t;
}

START_TEST(test_bufferevent_pause_reading) { pause_reading_case(make_filter); }
END_TEST

START_TEST(test_bufferevent_filter_bulk)
{
    asyncio_loop *loop = tu_new_loop();
    tu_guard(loop, 20.0);
    tp p;
    tp_init(&p, loop);
    p.check = 1;
    p.close_at = 1 * MiB;
    int peer_fd;
    asyncio_transport *t = make_filter(loop, &p, &peer_fd);
    ck_assert_int_eq(asyncio_transport_can_write_eof(t), 0);
    ck_assert_int_eq(asyncio_transport_write_eof(t), -ENOTSUP);
    peer w = {.fd = peer_fd, .n = 1 * MiB};
    peer r = {.fd = peer_fd, .check = 1};
    peer_start(&w, peer_write);
    peer_start(&r, peer_read);
    write_pattern(t, 0, 1 * MiB, 100000);
    tu_run(loop);
    peer_join(&w);
    /* Freeing the filter frees the socket bufferevent under it, which
     * libevent finalizes (closes) in its next pass: the peer's EOF. */
    tu_call_soon_stop(loop);
    tu_run(loop);
    peer_join(&r);
    check_order(&p);
    ck_assert_uint_eq(p.got, 1 * MiB);
    ck_assert_int_eq(r.bad, 0);
    ck_assert_uint_eq(r.n, 1 * MiB);
    asyncio_transport_unref(t);
    close(peer_fd);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

static peer late_reader;
static int late_reader_started;

static void start_late_reader(void *arg)
{
    (void)arg;
    peer_start(&late_reader, peer_read);
    late_reader_started = 1;
}

/* close() through a filter finishes only when the bytes have left the
 * bufferevent under it too: the peer starts reading well after the close
 * was asked for, when the filter's own output is long empty. */
START_TEST(test_close_through_a_filter_waits_for_the_bufferevent_below)
{
    asyncio_loop *loop = tu_new_loop();
    tu_guard(loop, 20.0);
    tp p;
    tp_init(&p, loop);
    p.stop_on_lost = 1;
    int peer_fd;
    asyncio_transport *t = make_filter(loop, &p, &peer_fd);
    memset(&late_reader, 0, sizeof(late_reader));
    late_reader.fd = peer_fd;
    late_reader.check = 1;
    write_pattern(t, 0, 4 * MiB, 256 * 1024);
    ck_assert_int_eq(asyncio_transport_close(t), 0);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.3, start_late_reader, NULL, NULL), 0);
    tu_run(loop);
    ck_assert_int_eq(p.nlost, 1);
    ck_assert_int_eq(p.lost_err, 0);
    if (!late_reader_started)
        start_late_reader(NULL);
    /* libevent finalizes the freed bufferevents (closing the socket) in
     * its next pass: then the peer sees EOF. */
    tu_call_soon_stop(loop);
    tu_run(loop);
    peer_join(&late_reader);
    ck_assert_int_eq(late_reader.bad, 0);
    ck_assert_uint_eq(late_reader.n, 4 * MiB);
    asyncio_transport_unref(t);
    close(peer_fd);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

START_TEST(test_close_inside_data_received_bufferevent)
{
    /* Several chunks already in the input buffer: only the first is
     * delivered. */
    asyncio_loop *loop = tu_new_guarded_loop();
    struct bufferevent *pair[2];
    ck_assert_int_eq(bufferevent_pair_new(asyncio_loop_get_event_base(loop), 0, pair), 0);
    bufferevent_enable(pair[1], EV_WRITE);
    tp p;
    tp_init(&p, loop);
    p.close_in_data = 1;
    asyncio_transport *t = NULL;
    ck_assert_int_eq(asyncio_transport_new_from_bufferevent(loop, pair[0], &p.base, &t), 0);
    char big[5000];
    memset(big, 'z', sizeof(big));
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(bufferevent_write(pair[1], big, sizeof(big)), 0);
    tu_run(loop);
    ck_assert_uint_eq(p.data_calls, 1);
    static const int want[] = {EV_MADE, EV_DATA, EV_LOST};
    tu_rec_expect(&p.ev, want, 3);
    asyncio_transport_unref(t);
    bufferevent_free(pair[1]);
    /* libevent finalizes freed bufferevents in its next pass. */
    tu_call_soon_stop(loop);
    tu_run(loop);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

START_TEST(test_takeover_keeps_buffered_bytes)
{
    /* A socket bufferevent that already read and queued data: both move
     * to the transport, in order. */
    asyncio_loop *loop = tu_new_guarded_loop();
    int fds[2];
    unix_pair(fds);
    struct event_base *base = asyncio_loop_get_event_base(loop);
    struct bufferevent *bev = bufferevent_socket_new(base, fds[0], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_enable(bev, EV_READ);
    peer_write_all(fds[1], "early", 5);
    /* Let libevent read it into the bufferevent. */
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    ck_assert_uint_eq(evbuffer_get_length(bufferevent_get_input(bev)), 5);
    ck_assert_int_eq(bufferevent_write(bev, "queued", 6), 0);
    tp p;
    tp_init(&p, loop);
    p.keep = malloc(64);
    p.keep_cap = 64;
    p.close_at = 10;
    asyncio_transport *t = NULL;
    ck_assert_int_eq(asyncio_transport_new_from_bufferevent(loop, bev, &p.base, &t), 0);
    ck_assert_int_eq(asyncio_transport_write(t, "+more", 5), 0);
    peer_write_all(fds[1], "later", 5);
    tu_run(loop);
    ck_assert_uint_eq(p.got, 10);
    ck_assert_int_eq(memcmp(p.keep, "earlylater", 10), 0);
    char buf[32];
    ssize_t n = 0, r;
    while ((r = read(fds[1], buf + n, sizeof(buf) - (size_t)n)) > 0)
        n += r;
    ck_assert_int_eq(n, 11);
    ck_assert_int_eq(memcmp(buf, "queued+more", 11), 0);
    free(p.keep);
    asyncio_transport_unref(t);
    close(fds[1]);
    tu_rec_free(&p.ev);
    tu_free_loop(loop);
}
END_TEST

START_TEST(test_bad_input)
{
    int at_start = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    tp p;
    tp_init(&p, loop);
    asyncio_transport *t = NULL;
    struct event_base *base = asyncio_loop_get_event_base(loop);
    ck_assert_int_eq(asyncio_transport_new_from_bufferevent(loop, NULL, &p.base, &t), -EINVAL);
    int before = tu_count_fds();
    int fds[2];
    unix_pair(fds);
    /* Taken over on failure too: the bufferevent (and its fd) are freed. */
    struct bufferevent *bev = bufferevent_socket_new(base, fds[0], BEV_OPT_CLOSE_ON_FREE);
    ck_assert_int_eq(asyncio_transport_new_from_bufferevent(NULL, bev, &p.base, &t), -EINVAL);
    bev = bufferevent_socket_new(base, fds[1], BEV_OPT_CLOSE_ON_FREE);
    ck_assert_int_eq(asyncio_transport_new_from_bufferevent(loop, bev, NULL, &t), -EINVAL);
    /* libevent finalizes a freed bufferevent (closing its fd) in the
     * next pass of its loop. */
    tu_call_soon_stop(loop);
    tu_run(loop);
    ck_assert_int_eq(tu_count_fds(), before);
    ck_assert_ptr_null(t);
    /* A bufferevent of another base. */
    struct event_base *other = event_base_new();
    unix_pair(fds);
    bev = bufferevent_socket_new(other, fds[0], BEV_OPT_CLOSE_ON_FREE);
    ck_assert_int_eq(asyncio_transport_new_from_bufferevent(loop, bev, &p.base, &t), -EINVAL);
    close(fds[1]);
    event_base_free(other);
    ck_assert_int_eq(tu_count_fds(), before);
    ck_assert_uint_eq(p.ev.len, 0);
    tu_free_loop(loop);
    /* A closed loop (over a base of the test's, which outlives it). */
    struct event_base *own = event_base_new();
    ck_assert_int_eq(asyncio_loop_new_from_event_base(own, &loop), 0);
    unix_pair(fds);
    bev = bufferevent_socket_new(own, fds[0], BEV_OPT_CLOSE_ON_FREE);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_transport_new_from_bufferevent(loop, bev, &p.base, &t),
                     ASYNCIO_ECLOSED);
    close(fds[1]);
    asyncio_loop_unref(loop);
    event_base_loop(own, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    event_base_free(own);
    ck_assert_int_eq(tu_count_fds(), at_start);
    tu_rec_free(&p.ev);
}
END_TEST

static Suite *stream_suite(void)
{
    Suite *s = suite_create("stream");
    TCase *tc = tcase_create("socket");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_callback_order);
    tcase_add_test(tc, test_bulk_1mib_both_ways);
    tcase_add_test(tc, test_bulk_16mib_both_ways);
    tcase_add_test(tc, test_reads_not_capped_at_4k);
    tcase_add_test(tc, test_buffered_protocol);
    tcase_add_test(tc, test_write_tries_at_once);
    tcase_add_test(tc, test_pause_resume_writing);
    tcase_add_test(tc, test_write_buffer_limits);
    tcase_add_test(tc, test_pause_reading);
    tcase_add_test(tc, test_write_eof);
    tcase_add_test(tc, test_eof_received_zero_closes);
    tcase_add_test(tc, test_eof_received_nonzero_half_open);
    tcase_add_test(tc, test_close_flushes);
    tcase_add_test(tc, test_abort_drops);
    tcase_add_test(tc, test_peer_reset);
    tcase_add_test(tc, test_close_inside_data_received);
    tcase_add_test(tc, test_abort_inside_data_received);
    tcase_add_test(tc, test_unref_inside_connection_lost);
    tcase_add_test(tc, test_write_after_close);
    tcase_add_test(tc, test_get_extra_info);
    tcase_add_test(tc, test_loop_close_with_open_transport);
    tcase_add_test(tc, test_no_fd_leak);
    tcase_add_test(tc, test_sendfile);
    tcase_add_test(tc, test_sendfile_after_queued_data);
    tcase_add_test(tc, test_sendfile_bad_input);
    tcase_add_test(tc, test_takeover_keeps_buffered_bytes);
    tcase_add_test(tc, test_bad_input);
    suite_add_tcase(s, tc);
    TCase *tb = tcase_create("bufferevent");
    tcase_set_timeout(tb, 30);
    tcase_add_test(tb, test_bufferevent_pair);
    tcase_add_test(tb, test_bufferevent_pause_reading);
    tcase_add_test(tb, test_bufferevent_filter_bulk);
    tcase_add_test(tb, test_close_through_a_filter_waits_for_the_bufferevent_below);
    tcase_add_test(tb, test_close_inside_data_received_bufferevent);
    tcase_add_test(tb, test_sendfile_bufferevent_fallback);
    suite_add_tcase(s, tb);
    return s;
}

int main(void) { return tu_run_suite(stream_suite()); }
