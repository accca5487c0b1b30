/* Pipe transports: connect_read_pipe / connect_write_pipe over real pipes,
 * a socketpair and character devices; the other end is read or written
 * by the test itself, through the loop (add_reader) where it must wait. */
#define _GNU_SOURCE /* pipe2 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MiB (1024 * 1024)

enum { EV_MADE = 1, EV_DATA, EV_EOF, EV_LOST, EV_PAUSE, EV_RESUME };

typedef struct {
    asyncio_protocol base;
    asyncio_loop *loop;
    asyncio_transport *t; /* borrowed, until connection_lost */
    tu_recorder ev;       /* EV_* in order (EV_DATA once per call) */
    unsigned char *data;
    size_t len, cap;
    int lost_err;
    int stop_on_lost;
    int pause_in_made;
    size_t close_after;           /* close once this many bytes came (0: never) */
    void (*lost_hook)(void *arg); /* run after connection_lost */
    void *hook_arg;
} proto;

static void p_made(asyncio_protocol *self, asyncio_transport *t)
{
    proto *p = (proto *)self;
    p->t = t;
    tu_rec_push(&p->ev, EV_MADE);
    if (p->pause_in_made)
        ck_assert_int_eq(asyncio_transport_pause_reading(t), 0);
}

static void p_data(asyncio_protocol *self, const void *data, size_t len)
{
    proto *p = (proto *)self;
    tu_rec_push(&p->ev, EV_DATA);
    if (p->len + len > p->cap) {
        p->cap = (p->len + len) * 2;
        p->data = realloc(p->data, p->cap);
        ck_assert_ptr_nonnull(p->data);
    }
    memcpy(p->data + p->len, data, len);
    p->len += len;
    if (p->close_after > 0 && p->len >= p->close_after)
        asyncio_transport_close(p->t);
}

static int p_eof(asyncio_protocol *self)
{
    tu_rec_push(&((proto *)self)->ev, EV_EOF);
    return 1; /* a pipe closes anyway */
}

static void p_lost(asyncio_protocol *self, int err)
{
    proto *p = (proto *)self;
    tu_rec_push(&p->ev, EV_LOST);
    p->lost_err = err;
    p->t = NULL;
    if (p->stop_on_lost)
        asyncio_loop_stop(p->loop);
    if (p->lost_hook != NULL)
        p->lost_hook(p->hook_arg);
}

static void p_pause(asyncio_protocol *self) { tu_rec_push(&((proto *)self)->ev, EV_PAUSE); }
static void p_resume(asyncio_protocol *self) { tu_rec_push(&((proto *)self)->ev, EV_RESUME); }

static const asyncio_protocol_ops proto_ops = {
    .connection_made = p_made,
    .connection_lost = p_lost,
    .data_received = p_data,
    .eof_received = p_eof,
    .pause_writing = p_pause,
    .resume_writing = p_resume,
};

static void proto_init(proto *p, asyncio_loop *loop)
{
    memset(p, 0, sizeof(*p));
    p->base.ops = &proto_ops;
    p->loop = loop;
    p->lost_err = 12345;
    p->stop_on_lost = 1;
    tu_rec_init(&p->ev);
}

static void proto_free(proto *p)
{
    free(p->data);
    tu_rec_free(&p->ev);
}

static asyncio_protocol *factory(void *arg) { return arg; }
static asyncio_protocol *null_factory(void *arg) { return NULL; }

static size_t count(const tu_recorder *r, int v)
{
    size_t n = 0;
    for (size_t i = 0; i < r->len; i++)
        n += r->v[i] == v;
    return n;
}

/* Connect, run until the future is done, return the transport (borrowed:
 * the future's reference is dropped with the future; the protocol's
 * p->t stays valid until connection_lost). */
static asyncio_transport *connect_pipe(asyncio_loop *loop, proto *p, int fd, int write)
{
    asyncio_future *f = NULL;
    int err = write ? asyncio_loop_connect_write_pipe(loop, factory, p, fd, &f)
                    : asyncio_loop_connect_read_pipe(loop, factory, p, fd, &f);
    ck_assert_int_eq(err, 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
    void *t = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &t), 0);
    ck_assert_ptr_eq(t, p->t); /* completed after connection_made */
    asyncio_future_unref(f);
    return p->t;
}

static void fill(unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 7 + i / 251);
}

static int fd_closed(int fd) { return fcntl(fd, F_GETFD) < 0 && errno == EBADF; }

/* ---- Reading -------------------------------------------------------------------------- */

START_TEST(test_read_pipe_data_eof_lost)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    proto p;
    proto_init(&p, loop);
    asyncio_transport *t = connect_pipe(loop, &p, fds[0], 0);
    ck_assert_int_eq(*(int *)asyncio_transport_get_extra_info(t, "pipe"), fds[0]);
    ck_assert_ptr_null(asyncio_transport_get_extra_info(t, "socket"));
    ck_assert_ptr_null(asyncio_transport_get_extra_info(t, "peername"));
    ck_assert_int_eq(fcntl(fds[0], F_GETFL) & O_NONBLOCK, O_NONBLOCK);
    ck_assert_int_eq(asyncio_transport_write(t, "x", 1), -ENOTSUP);
    ck_assert_int_eq(asyncio_transport_can_write_eof(t), 0);
    ck_assert_int_eq(write(fds[1], "hello pipe", 10), 10);
    close(fds[1]);
    tu_run(loop);
    ck_assert_uint_eq(p.len, 10);
    ck_assert(memcmp(p.data, "hello pipe", 10) == 0);
    /* eof_received returned nonzero, and the pipe closed all the same. */
    int expect[] = {EV_MADE, EV_DATA, EV_EOF, EV_LOST};
    tu_rec_expect(&p.ev, expect, 4);
    ck_assert_int_eq(p.lost_err, 0);
    ck_assert(fd_closed(fds[0]));
    tu_free_loop(loop);
    proto_free(&p);
}
END_TEST

static void resume_cb(void *arg)
{
    proto *p = arg;
    /* Nothing arrived while paused, although the pipe held data. */
    ck_assert_uint_eq(p->len, 0);
    ck_assert_int_eq(asyncio_transport_resume_reading(p->t), 0);
}

START_TEST(test_pause_resume_reading)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    ck_assert_int_eq(write(fds[1], "abc", 3), 3);
    close(fds[1]);
    proto p;
    proto_init(&p, loop);
    p.pause_in_made = 1;
    connect_pipe(loop, &p, fds[0], 0);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.1, resume_cb, &p, NULL), 0);
    tu_run(loop);
    ck_assert_uint_eq(p.len, 3);
    int expect[] = {EV_MADE, EV_DATA, EV_EOF, EV_LOST};
    tu_rec_expect(&p.ev, expect, 4);
    tu_free_loop(loop);
    proto_free(&p);
}
END_TEST

START_TEST(test_socketpair_accepted)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    proto p;
    proto_init(&p, loop);
    asyncio_transport *t = connect_pipe(loop, &p, sv[0], 0);
    /* A pipe transport answers "pipe" whatever its fd is, as asyncio's. */
    ck_assert_int_eq(*(int *)asyncio_transport_get_extra_info(t, "pipe"), sv[0]);
    ck_assert_ptr_null(asyncio_transport_get_extra_info(t, "socket"));
    ck_assert_int_eq(write(sv[1], "over a socket", 13), 13);
    close(sv[1]);
    tu_run(loop);
    ck_assert_uint_eq(p.len, 13);
    ck_assert(memcmp(p.data, "over a socket", 13) == 0);
    ck_assert_int_eq(p.lost_err, 0);
    tu_free_loop(loop);
    proto_free(&p);
}
END_TEST

/* /dev/random: a character device the kernel can poll, always readable. */
START_TEST(test_char_device_accepted)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int fd = open("/dev/random", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    proto p;
    proto_init(&p, loop);
    p.close_after = 64;
    connect_pipe(loop, &p, fd, 0);
    tu_run(loop);
    ck_assert_uint_ge(p.len, 64);
    ck_assert_int_eq(p.lost_err, 0);
    ck_assert_uint_eq(count(&p.ev, EV_LOST), 1);
    ck_assert(fd_closed(fd));
    tu_free_loop(loop);
    proto_free(&p);
}
END_TEST

/* The kernel cannot poll /dev/zero: the call fails instead of making a
 * transport that never hears anything (CPython: PermissionError). */
START_TEST(test_unpollable_device_rejected)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int before = tu_count_fds();
    int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    proto p;
    proto_init(&p, loop);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_connect_read_pipe(loop, factory, &p, fd, &f), -EPERM);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(tu_count_fds(), before);
    ck_assert_uint_eq(p.ev.len, 0);
    tu_free_loop(loop);
    proto_free(&p);
}
END_TEST

START_TEST(test_regular_file_rejected)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int before = tu_count_fds();
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    int fd = dup(fileno(tmp));
    fclose(tmp);
    proto p;
    proto_init(&p, loop);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_connect_read_pipe(loop, factory, &p, fd, &f), -EINVAL);
    ck_assert_ptr_null(f);
    ck_assert(fd_closed(fd)); /* taken over on failure too */
    fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_eq(asyncio_loop_connect_write_pipe(loop, factory, &p, fd, &f), -EINVAL);
    ck_assert_int_eq(tu_count_fds(), before);
    ck_assert_uint_eq(p.ev.len, 0); /* the factory never ran */
    tu_free_loop(loop);
    proto_free(&p);
}
END_TEST

/* ---- Writing ------------------------------------------------------------------------- */

/* The test's end of a pipe, read through the loop. */
typedef struct {
    asyncio_loop *loop;
    int fd;
    unsigned char *data;
    size_t len, cap;
    int eof;
    proto *writer; /* stop when both saw their end */
} sink;

static void sink_stop_if_done(sink *k)
{
    if (k->eof && count(&k->writer->ev, EV_LOST) == 1)
        asyncio_loop_stop(k->loop);
}

static void sink_check(void *arg) { sink_stop_if_done(arg); }

static void sink_readable(void *arg)
{
    sink *k = arg;
    for (;;) {
        if (k->cap - k->len < 65536) {
            k->cap = k->cap * 2 + 65536;
            k->data = realloc(k->data, k->cap);
            ck_assert_ptr_nonnull(k->data);
        }
        ssize_t n = read(k->fd, k->data + k->len, k->cap - k->len);
        if (n > 0) {
            k->len += (size_t)n;
            continue;
        }
        if (n == 0) {
            k->eof = 1;
            asyncio_loop_remove_reader(k->loop, k->fd);
            sink_stop_if_done(k);
        } else {
            ck_assert_int_eq(errno, EAGAIN);
        }
        return;
    }
}

START_TEST(test_write_pipe_1mib_byte_exact)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int fds[2];
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
    proto p;
    proto_init(&p, loop);
    p.stop_on_lost = 0;
    asyncio_transport *t = connect_pipe(loop, &p, fds[1], 1);
    ck_assert_int_eq(*(int *)asyncio_transport_get_extra_info(t, "pipe"), fds[1]);
    ck_assert_int_eq(asyncio_transport_can_write_eof(t), 1);
    ck_assert_int_eq(asyncio_transport_pause_reading(t), -ENOTSUP);
    unsigned char *buf = malloc(MiB);
    fill(buf, MiB);
    /* One write that the pipe (64 KiB) cannot take: the rest is queued,
     * above the high mark, so the protocol is paused until it drains. */
    ck_assert_int_eq(asyncio_transport_write(t, buf, MiB / 2), 0);
    ck_assert_uint_gt(asyncio_transport_get_write_buffer_size(t), 0);
    struct iovec iov[2] = {{buf + MiB / 2, MiB / 4}, {buf + 3 * MiB / 4, MiB / 4}};
    ck_assert_int_eq(asyncio_transport_writelines(t, iov, 2), 0);
    ck_assert_int_eq(asyncio_transport_close(t), 0);
    ck_assert_int_eq(asyncio_transport_write(t, "x", 1), -EPIPE);
    sink k = {.loop = loop, .fd = fds[0], .writer = &p};
    p.lost_hook = sink_check;
    p.hook_arg = &k;
    ck_assert_int_eq(asyncio_loop_add_reader(loop, fds[0], sink_readable, &k), 0);
    tu_run(loop); /* until the sink's EOF and the writer's connection_lost */
    ck_assert_uint_eq(k.len, MiB);
    ck_assert(memcmp(k.data, buf, MiB) == 0);
    int expect[] = {EV_MADE, EV_PAUSE, EV_RESUME, EV_LOST};
    tu_rec_expect(&p.ev, expect, 4);
    ck_assert_int_eq(p.lost_err, 0);
    ck_assert(fd_closed(fds[1]));
    close(fds[0]);
    free(k.data);
    free(buf);
    tu_free_loop(loop);
    proto_free(&p);
}
END_TEST

START_TEST(test_write_eof_closes)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int fds[2];
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
    proto p;
    proto_init(&p, loop);
    asyncio_transport *t = connect_pipe(loop, &p, fds[1], 1);
    ck_assert_int_eq(asyncio_transport_write(t, "last words", 10), 0);
    ck_assert_int_eq(asyncio_transport_write_eof(t), 0);
    ck_assert_int_eq(asyncio_transport_is_closing(t), 1);
    ck_assert_int_eq(asyncio_transport_write(t, "x", 1), -EPIPE);
    tu_run(loop);
    ck_assert_int_eq(p.lost_err, 0);
    char buf[32];
    ck_assert_int_eq(read(fds[0], buf, sizeof(buf)), 10);
    ck_assert(memcmp(buf, "last words", 10) == 0);
    ck_assert_int_eq(read(fds[0], buf, sizeof(buf)), 0); /* the writer's fd is closed */
    close(fds[0]);
    tu_free_loop(loop);
    proto_free(&p);
}
END_TEST

/* The reader goes while nothing is queued: connection_lost(0) by itself,
 * from the write end's EPOLLERR, with no write to notice it. */
START_TEST(test_reader_closed_idle_lost)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int fds[2];
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    proto p;
    proto_init(&p, loop);
    connect_pipe(loop, &p, fds[1], 1);
    close(fds[0]);
    tu_run(loop);
    int expect[] = {EV_MADE, EV_LOST};
    tu_rec_expect(&p.ev, expect, 2);
    ck_assert_int_eq(p.lost_err, 0);
    ck_assert(fd_closed(fds[1]));
    tu_free_loop(loop);
    proto_free(&p);
}
END_TEST

static void close_reader(void *arg) { close(*(int *)arg); }

/* The reader goes while data waits: -EPIPE (asyncio's BrokenPipeError),
 * and no SIGPIPE kills the process (its default action would). */
START_TEST(test_reader_closed_pending_epipe)
{
    ck_assert(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
    asyncio_loop *loop = tu_new_guarded_loop();
    int fds[2];
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    proto p;
    proto_init(&p, loop);
    asyncio_transport *t = connect_pipe(loop, &p, fds[1], 1);
    unsigned char *buf = malloc(MiB);
    fill(buf, MiB);
    ck_assert_int_eq(asyncio_transport_write(t, buf, MiB), 0);
    ck_assert_uint_gt(asyncio_transport_get_write_buffer_size(t), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, close_reader, &fds[0], NULL), 0);
    tu_run(loop);
    ck_assert_uint_eq(count(&p.ev, EV_LOST), 1);
    ck_assert_int_eq(p.lost_err, -EPIPE);
    free(buf);
    tu_free_loop(loop);
    proto_free(&p);
}
END_TEST

/* A write straight into a pipe whose reader is gone (before the loop
 * noticed): the write is fine for the caller, connection_lost(-EPIPE)
 * follows, and no SIGPIPE is raised or left pending. */
START_TEST(test_write_to_closed_reader_no_sigpipe)
{
    ck_assert(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
    asyncio_loop *loop = tu_new_guarded_loop();
    int fds[2];
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    proto p;
    proto_init(&p, loop);
    asyncio_transport *t = connect_pipe(loop, &p, fds[1], 1);
    close(fds[0]);
    ck_assert_int_eq(asyncio_transport_write(t, "lost", 4), 0);
    tu_run(loop);
    ck_assert_int_eq(p.lost_err, -EPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    ck_assert_int_eq(sigpending(&pending), 0);
    ck_assert(!sigismember(&pending, SIGPIPE));
    tu_free_loop(loop);
    proto_free(&p);
}
END_TEST

/* ---- Lifetime ---------------------------------------------------------------------------- */

START_TEST(test_loop_close_with_open_pipes)
{
    int before = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    int fds[2];
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    proto r, w;
    proto_init(&r, loop);
    proto_init(&w, loop);
    connect_pipe(loop, &r, fds[0], 0);
    connect_pipe(loop, &w, fds[1], 1);
    ck_assert_int_eq(asyncio_transport_write(w.t, "queued?", 7), 0);
    tu_free_loop(loop);
    ck_assert_int_eq(r.lost_err, ASYNCIO_ECLOSED);
    ck_assert_int_eq(w.lost_err, ASYNCIO_ECLOSED);
    int expect[] = {EV_MADE, EV_LOST};
    tu_rec_expect(&r.ev, expect, 2);
    tu_rec_expect(&w.ev, expect, 2);
    ck_assert_int_eq(tu_count_fds(), before);
    proto_free(&r);
    proto_free(&w);
}
END_TEST

START_TEST(test_no_fd_leak)
{
    int before = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    for (int i = 0; i < 20; i++) {
        int fds[2];
        ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
        proto r, w;
        proto_init(&r, loop);
        proto_init(&w, loop);
        r.stop_on_lost = 1;
        w.stop_on_lost = 0;
        connect_pipe(loop, &r, fds[0], 0);
        asyncio_transport *t = connect_pipe(loop, &w, fds[1], 1);
        ck_assert_int_eq(asyncio_transport_write(t, "ping", 4), 0);
        ck_assert_int_eq(asyncio_transport_write_eof(t), 0);
        tu_run(loop); /* until the reader's connection_lost */
        ck_assert_uint_eq(r.len, 4);
        ck_assert_uint_eq(count(&w.ev, EV_LOST), 1);
        proto_free(&r);
        proto_free(&w);
    }
    tu_free_loop(loop);
    ck_assert_int_eq(tu_count_fds(), before);
}
END_TEST

START_TEST(test_bad_input)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int before = tu_count_fds();
    proto p;
    proto_init(&p, loop);
    asyncio_future *f = NULL;
    int fds[2];
    ck_assert_int_eq(asyncio_loop_connect_read_pipe(loop, factory, &p, -1, &f), -EINVAL);
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    ck_assert_int_eq(asyncio_loop_connect_read_pipe(NULL, factory, &p, fds[0], &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_connect_write_pipe(loop, NULL, &p, fds[1], &f), -EINVAL);
    ck_assert_int_eq(tu_count_fds(), before); /* both taken over and closed */
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    close(fds[1]);
    ck_assert_int_eq(asyncio_loop_connect_read_pipe(loop, null_factory, NULL, fds[0], &f),
                     -ECONNABORTED);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(tu_count_fds(), before);
    ck_assert_uint_eq(p.ev.len, 0);
    tu_free_loop(loop);
    proto_free(&p);
}
END_TEST

static Suite *pipe_suite(void)
{
    Suite *s = suite_create("pipe");
    TCase *tr = tcase_create("read");
    tcase_set_timeout(tr, 30);
    tcase_add_test(tr, test_read_pipe_data_eof_lost);
    tcase_add_test(tr, test_pause_resume_reading);
    tcase_add_test(tr, test_socketpair_accepted);
    tcase_add_test(tr, test_char_device_accepted);
    tcase_add_test(tr, test_unpollable_device_rejected);
    tcase_add_test(tr, test_regular_file_rejected);
    suite_add_tcase(s, tr);
    TCase *tw = tcase_create("write");
    tcase_set_timeout(tw, 30);
    tcase_add_test(tw, test_write_pipe_1mib_byte_exact);
    tcase_add_test(tw, test_write_eof_closes);
    tcase_add_test(tw, test_reader_closed_idle_lost);
    tcase_add_test(tw, test_reader_closed_pending_epipe);
    tcase_add_test(tw, test_write_to_closed_reader_no_sigpipe);
    suite_add_tcase(s, tw);
    TCase *tl = tcase_create("lifetime");
    tcase_set_timeout(tl, 30);
    tcase_add_test(tl, test_loop_close_with_open_pipes);
    tcase_add_test(tl, test_no_fd_leak);
    tcase_add_test(tl, test_bad_input);
    suite_add_tcase(s, tl);
    return s;
}

int main(void) { return tu_run_suite(pipe_suite()); }
