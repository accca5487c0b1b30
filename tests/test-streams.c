/* Streams: open_connection / start_server and the reader and writer, over
 * real loopback TCP, driven from tasks; the far end is either another
 * stream or a plain blocking socket of the test. */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int server_port(asyncio_server *server)
{
    int fd = -1;
    ck_assert_int_ge(asyncio_server_get_sockets(server, &fd, 1), 1);
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* A plain blocking client socket, connected (the listen backlog accepts
 * it before the loop runs). */
static int raw_connect(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void raw_send(int fd, const char *s)
{
    ck_assert_int_eq(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* What a server callback saw, and a future it completes when it is done. */
struct seen {
    asyncio_future *done;
    ssize_t rc[8];
    char data[8][64];
    int n;
    int fd; /* the test's raw client, for timers */
    const char *send_next[4];
    int nsend;
};

static void record(struct seen *s, ssize_t rc, const char *buf)
{
    ck_assert_int_lt(s->n, 8);
    s->rc[s->n] = rc;
    if (rc > 0)
        memcpy(s->data[s->n], buf, (size_t)rc < 63 ? (size_t)rc : 63);
    s->n++;
}

static void finish(struct seen *s) { asyncio_future_set_result(s->done, NULL, NULL); }

/* Start a server outside a task (the loop runs until it listens). */
static asyncio_server *start(asyncio_loop *loop, asyncio_client_connected cb, void *arg)
{
    ck_assert_int_eq(asyncio_set_event_loop(loop), 0);
    asyncio_server *server = NULL;
    int err = asyncio_start_server(cb, arg, "127.0.0.1", 0, NULL, &server);
    ck_assert_msg(err == 0, "start_server: %s", asyncio_strerror(err));
    ck_assert_ptr_nonnull(server);
    return server;
}

static void end(asyncio_loop *loop, asyncio_server *server)
{
    asyncio_server_close(server);
    asyncio_server_unref(server);
    ck_assert_int_eq(asyncio_set_event_loop(NULL), 0);
    tu_free_loop(loop);
}

/* ---- Echo -------------------------------------------------------------------------- */

#define ECHO_BYTES (1024 * 1024 + 17)

static int echo_handler(asyncio_stream_reader *r, asyncio_stream_writer *w, void *arg)
{
    char buf[5000];
    ssize_t n;
    while ((n = asyncio_stream_read(r, buf, sizeof(buf))) > 0) {
        ck_assert_int_eq(asyncio_stream_write(w, buf, (size_t)n), 0);
        ck_assert_int_eq(asyncio_stream_drain(w), 0);
    }
    ck_assert_int_eq(n, 0);
    return asyncio_stream_close(w);
}

static unsigned char *pattern(size_t n)
{
    unsigned char *p = malloc(n);
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)x;
    }
    return p;
}

struct sender {
    asyncio_stream_writer *w;
    const unsigned char *data;
};

static int send_all(void *arg, void **result)
{
    struct sender *s = arg;
    size_t off = 0, chunk = 1;
    while (off < ECHO_BYTES) {
        size_t n = chunk < ECHO_BYTES - off ? chunk : ECHO_BYTES - off;
        ck_assert_int_eq(asyncio_stream_write(s->w, s->data + off, n), 0);
        ck_assert_int_eq(asyncio_stream_drain(s->w), 0);
        off += n;
        chunk = chunk * 3 % 70001 + 1; /* sizes from 1 byte to ~70 KiB */
    }
    return asyncio_stream_write_eof(s->w);
}

static int echo_client(void *arg, void **result)
{
    unsigned char *data = pattern(ECHO_BYTES);
    asyncio_server *server = NULL;
    ck_assert_int_eq(asyncio_start_server(echo_handler, NULL, "127.0.0.1", 0, NULL, &server), 0);
    asyncio_stream_reader *r;
    asyncio_stream_writer *w;
    ck_assert_int_eq(asyncio_open_connection("127.0.0.1", server_port(server), NULL, &r, &w), 0);

    struct sender snd = {w, data};
    asyncio_future *sending;
    ck_assert_int_eq(asyncio_loop_create_task(asyncio_future_get_loop(asyncio_current_task()),
                                              send_all, &snd, &sending),
                     0);
    unsigned char *got = malloc(ECHO_BYTES + 1);
    size_t have = 0;
    ssize_t n;
    while ((n = asyncio_stream_read(r, got + have, ECHO_BYTES + 1 - have)) > 0)
        have += (size_t)n;
    ck_assert_int_eq(n, 0);
    ck_assert_uint_eq(have, ECHO_BYTES);
    ck_assert(memcmp(got, data, ECHO_BYTES) == 0);
    ck_assert_int_eq(asyncio_await(sending, NULL), 0);
    ck_assert_int_eq(asyncio_stream_close(w), 0);
    asyncio_future_unref(sending);
    asyncio_server_close(server);
    asyncio_server_unref(server);
    free(got);
    free(data);
    return 0;
}

START_TEST(a_streams_echo_returns_every_byte_unchanged)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *t = NULL;
    ck_assert_int_eq(asyncio_loop_create_task(loop, echo_client, NULL, &t), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, t), 0);
    asyncio_future_unref(t);
    tu_free_loop(loop);
}
END_TEST

/* ---- Reading ----------------------------------------------------------------------- */

/* The reader sleeps while the peer floods (the transport pauses above
 * the limit), then asks for everything at once: far more than the read
 * buffer or the pause limit, so the buffer must grow and reading resume. */
static int late_readexactly(asyncio_stream_reader *r, asyncio_stream_writer *w, void *arg)
{
    const unsigned char *want = arg;
    ck_assert_int_eq(asyncio_sleep(0.2), 0);
    unsigned char *got = malloc(ECHO_BYTES);
    ck_assert_int_eq(asyncio_stream_readexactly(r, got, ECHO_BYTES), 0);
    ck_assert(memcmp(got, want, ECHO_BYTES) == 0);
    char one;
    ck_assert_int_eq(asyncio_stream_read(r, &one, 1), 0);
    free(got);
    return asyncio_stream_close(w);
}

static int flood_client(void *arg, void **result)
{
    unsigned char *data = pattern(ECHO_BYTES);
    asyncio_server *server = NULL;
    ck_assert_int_eq(asyncio_start_server(late_readexactly, data, "127.0.0.1", 0, NULL, &server),
                     0);
    asyncio_stream_reader *r;
    asyncio_stream_writer *w;
    ck_assert_int_eq(asyncio_open_connection("127.0.0.1", server_port(server), NULL, &r, &w), 0);
    ck_assert_int_eq(asyncio_stream_write(w, data, ECHO_BYTES), 0);
    ck_assert_int_eq(asyncio_stream_drain(w), 0);
    ck_assert_int_eq(asyncio_stream_write_eof(w), 0);
    char one;
    ck_assert_int_eq(asyncio_stream_read(r, &one, 1), 0); /* the server closed */
    ck_assert_int_eq(asyncio_stream_close(w), 0);
    asyncio_server_close(server);
    asyncio_server_unref(server);
    free(data);
    return 0;
}

START_TEST(readexactly_beyond_the_buffer_after_a_paused_flood_loses_nothing)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *t = NULL;
    ck_assert_int_eq(asyncio_loop_create_task(loop, flood_client, NULL, &t), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, t), 0);
    asyncio_future_unref(t);
    tu_free_loop(loop);
}
END_TEST

static int two_lines(asyncio_stream_reader *r, asyncio_stream_writer *w, void *arg)
{
    struct seen *s = arg;
    char buf[64];
    for (int i = 0; i < 2; i++) {
        ssize_t n = asyncio_stream_readline(r, buf, sizeof(buf));
        record(s, n, buf);
    }
    finish(s);
    return asyncio_stream_close(w);
}

static void send_next_part(void *arg)
{
    struct seen *s = arg;
    raw_send(s->fd, s->send_next[s->nsend++]);
    if (s->send_next[s->nsend] != NULL)
        ck_assert_int_eq(asyncio_loop_call_later(asyncio_future_get_loop(s->done), 0.03,
                                                 send_next_part, s, NULL),
                         0);
}

START_TEST(readline_joins_a_line_split_across_packets)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct seen s = {.done = NULL, .send_next = {"hel", "lo\nwor", "ld\n", NULL}};
    ck_assert_int_eq(asyncio_loop_create_future(loop, &s.done), 0);
    asyncio_server *server = start(loop, two_lines, &s);
    s.fd = raw_connect(server_port(server), 0);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.03, send_next_part, &s, NULL), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, s.done), 0);
    ck_assert_int_eq(s.rc[0], 6);
    ck_assert(memcmp(s.data[0], "hello\n", 6) == 0);
    ck_assert_int_eq(s.rc[1], 6);
    ck_assert(memcmp(s.data[1], "world\n", 6) == 0);
    close(s.fd);
    asyncio_future_unref(s.done);
    end(loop, server);
}
END_TEST

static int lines_to_eof(asyncio_stream_reader *r, asyncio_stream_writer *w, void *arg)
{
    struct seen *s = arg;
    char buf[64];
    for (int i = 0; i < 3; i++) {
        ssize_t n = asyncio_stream_readline(r, buf, sizeof(buf));
        record(s, n, buf);
    }
    finish(s);
    return asyncio_stream_close(w);
}

START_TEST(readline_returns_the_rest_at_eof_then_0)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct seen s = {.done = NULL};
    ck_assert_int_eq(asyncio_loop_create_future(loop, &s.done), 0);
    asyncio_server *server = start(loop, lines_to_eof, &s);
    int fd = raw_connect(server_port(server), 0);
    raw_send(fd, "a\nbc");
    shutdown(fd, SHUT_WR);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, s.done), 0);
    ck_assert_int_eq(s.rc[0], 2);
    ck_assert(memcmp(s.data[0], "a\n", 2) == 0);
    ck_assert_int_eq(s.rc[1], 2);
    ck_assert(memcmp(s.data[1], "bc", 2) == 0);
    ck_assert_int_eq(s.rc[2], 0);
    close(fd);
    asyncio_future_unref(s.done);
    end(loop, server);
}
END_TEST

static int long_line(asyncio_stream_reader *r, asyncio_stream_writer *w, void *arg)
{
    struct seen *s = arg;
    char buf[64];
    record(s, asyncio_stream_readline(r, buf, 4), buf);
    record(s, asyncio_stream_readline(r, buf, sizeof(buf)), buf);
    finish(s);
    return asyncio_stream_close(w);
}

START_TEST(readline_of_a_line_longer_than_the_buffer_returns_enobufs_and_keeps_it)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct seen s = {.done = NULL};
    ck_assert_int_eq(asyncio_loop_create_future(loop, &s.done), 0);
    asyncio_server *server = start(loop, long_line, &s);
    int fd = raw_connect(server_port(server), 0);
    raw_send(fd, "abcdefgh\n");
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, s.done), 0);
    ck_assert_int_eq(s.rc[0], -ENOBUFS);
    ck_assert_int_eq(s.rc[1], 9);
    ck_assert(memcmp(s.data[1], "abcdefgh\n", 9) == 0);
    close(fd);
    asyncio_future_unref(s.done);
    end(loop, server);
}
END_TEST

static int exactly_then_eof(asyncio_stream_reader *r, asyncio_stream_writer *w, void *arg)
{
    struct seen *s = arg;
    char buf[64];
    int rc = asyncio_stream_readexactly(r, buf, 4);
    record(s, rc == 0 ? 4 : rc, buf);
    record(s, asyncio_stream_readexactly(r, buf, 4), buf);
    record(s, asyncio_stream_read(r, buf, sizeof(buf)), buf);
    record(s, asyncio_stream_read(r, buf, sizeof(buf)), buf);
    record(s, asyncio_stream_at_eof(r), buf);
    finish(s);
    return asyncio_stream_close(w);
}

START_TEST(readexactly_at_eof_returns_epipe_and_leaves_the_bytes_to_read)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct seen s = {.done = NULL};
    ck_assert_int_eq(asyncio_loop_create_future(loop, &s.done), 0);
    asyncio_server *server = start(loop, exactly_then_eof, &s);
    int fd = raw_connect(server_port(server), 0);
    raw_send(fd, "12345");
    shutdown(fd, SHUT_WR);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, s.done), 0);
    ck_assert_int_eq(s.rc[0], 4);
    ck_assert(memcmp(s.data[0], "1234", 4) == 0);
    ck_assert_int_eq(s.rc[1], -EPIPE);
    ck_assert_int_eq(s.rc[2], 1);
    ck_assert_int_eq(s.data[2][0], '5');
    ck_assert_int_eq(s.rc[3], 0);
    ck_assert_int_eq(s.rc[4], 1);
    close(fd);
    asyncio_future_unref(s.done);
    end(loop, server);
}
END_TEST

static void cancel_cb(void *task) { ck_assert_int_eq(asyncio_future_cancel(task), 1); }

static int read_until_cancelled(asyncio_stream_reader *r, asyncio_stream_writer *w, void *arg)
{
    struct seen *s = arg;
    char buf[16];
    ck_assert_int_eq(asyncio_loop_call_later(asyncio_future_get_loop(s->done), 0.02, cancel_cb,
                                             asyncio_current_task(), NULL),
                     0);
    record(s, asyncio_stream_read(r, buf, sizeof(buf)), buf);
    finish(s);
    return 0; /* without closing: the library closes the stream */
}

START_TEST(cancelling_a_task_waiting_in_read_returns_ecanceled_and_the_stream_is_closed_for_it)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct seen s = {.done = NULL};
    ck_assert_int_eq(asyncio_loop_create_future(loop, &s.done), 0);
    asyncio_server *server = start(loop, read_until_cancelled, &s);
    int fd = raw_connect(server_port(server), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, s.done), 0);
    ck_assert_int_eq(s.rc[0], -ECANCELED);
    /* The callback returned without closing: the library closes. */
    asyncio_loop_call_later(loop, 0.1, tu_stop_cb, loop, NULL);
    tu_run(loop);
    char c;
    ck_assert_int_eq(recv(fd, &c, 1, 0), 0);
    close(fd);
    asyncio_future_unref(s.done);
    end(loop, server);
}
END_TEST

static int read_forever(asyncio_stream_reader *r, asyncio_stream_writer *w, void *arg)
{
    struct seen *s = arg;
    char buf[16];
    char *held = malloc(64); /* leaks unless the task is resumed at close */
    finish(s);
    record(s, asyncio_stream_read(r, buf, sizeof(buf)), buf);
    record(s, asyncio_stream_close(w), buf);
    free(held);
    return 0;
}

START_TEST(loop_close_resumes_a_task_waiting_in_read_with_eclosed)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct seen s = {.done = NULL};
    ck_assert_int_eq(asyncio_loop_create_future(loop, &s.done), 0);
    asyncio_server *server = start(loop, read_forever, &s);
    int fd = raw_connect(server_port(server), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, s.done), 0);
    tu_call_soon_stop(loop); /* the task reaches its read */
    tu_run(loop);
    ck_assert_int_eq(s.n, 0);
    asyncio_server_close(server);
    asyncio_server_unref(server);
    ck_assert_int_eq(asyncio_set_event_loop(NULL), 0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(s.n, 2);
    ck_assert_int_eq(s.rc[0], ASYNCIO_ECLOSED);
    ck_assert_int_eq(s.rc[1], ASYNCIO_ECLOSED);
    close(fd);
    asyncio_future_unref(s.done);
    asyncio_loop_unref(loop);
}
END_TEST

/* ---- Writing ------------------------------------------------------------------------ */

struct flood {
    asyncio_future *done;
    size_t written, last_written;
    int in_drain;
    int drain_rc;
    size_t buffered_while_blocked;
    int fd;
    int stalls;
};

static int write_until_blocked(asyncio_stream_reader *r, asyncio_stream_writer *w, void *arg)
{
    struct flood *f = arg;
    static char chunk[16384];
    int sndbuf = 16384;
    int *sock = asyncio_transport_get_extra_info(asyncio_stream_writer_get_transport(w), "socket");
    ck_assert_ptr_nonnull(sock);
    setsockopt(*sock, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    for (;;) {
        ck_assert_int_eq(asyncio_stream_write(w, chunk, sizeof(chunk)), 0);
        f->written += sizeof(chunk);
        f->in_drain = 1;
        int rc = asyncio_stream_drain(w);
        f->in_drain = 0;
        if (rc < 0) {
            f->drain_rc = rc;
            break;
        }
    }
    asyncio_future_set_result(f->done, NULL, NULL);
    asyncio_stream_close(w);
    return 0;
}

/* Every 50 ms: once the writer has made no progress for two checks in a
 * row while waiting in drain, the peer goes away (with unread data: a
 * reset). */
static void watch_flood(void *arg)
{
    struct flood *f = arg;
    asyncio_loop *loop = asyncio_future_get_loop(f->done);
    if (f->in_drain && f->written == f->last_written && f->written > 0) {
        if (++f->stalls == 2) {
            f->buffered_while_blocked = f->written;
            close(f->fd);
            f->fd = -1;
            return;
        }
    } else {
        f->stalls = 0;
    }
    f->last_written = f->written;
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.05, watch_flood, f, NULL), 0);
}

START_TEST(drain_waits_while_the_peer_does_not_read_and_fails_when_it_goes)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct flood f = {.done = NULL, .fd = -1};
    ck_assert_int_eq(asyncio_loop_create_future(loop, &f.done), 0);
    asyncio_server *server = start(loop, write_until_blocked, &f);
    f.fd = raw_connect(server_port(server), 4096);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.05, watch_flood, &f, NULL), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f.done), 0);
    /* It stopped: blocked in drain, not writing without bound. */
    ck_assert_uint_gt(f.buffered_while_blocked, 64 * 1024);
    ck_assert_uint_lt(f.buffered_while_blocked, 8 * 1024 * 1024);
    ck_assert_int_lt(f.drain_rc, 0);
    asyncio_future_unref(f.done);
    end(loop, server);
}
END_TEST

/* ---- Connecting and closing ----------------------------------------------------------- */

START_TEST(open_connection_outside_a_task_returns_enotask)
{
    asyncio_stream_reader *r = NULL;
    asyncio_stream_writer *w = NULL;
    ck_assert_int_eq(asyncio_open_connection("127.0.0.1", 9, NULL, &r, &w), ASYNCIO_ENOTASK);
    ck_assert_ptr_null(r);
    ck_assert_ptr_null(w);
}
END_TEST

static int connect_refused(void *arg, void **result)
{
    asyncio_stream_reader *r;
    asyncio_stream_writer *w;
    return asyncio_open_connection("127.0.0.1", (int)(intptr_t)arg, NULL, &r, &w);
}

START_TEST(open_connection_to_a_port_nobody_listens_on_returns_econnrefused)
{
    /* A port that was free a moment ago, bound but not listening. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *t = NULL;
    ck_assert_int_eq(
        asyncio_loop_create_task(loop, connect_refused, (void *)(intptr_t)ntohs(a.sin_port), &t),
        0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, t), -ECONNREFUSED);
    close(fd);
    asyncio_future_unref(t);
    tu_free_loop(loop);
}
END_TEST

static int read_to_eof_and_close(asyncio_stream_reader *r, asyncio_stream_writer *w, void *arg)
{
    char buf[64];
    while (asyncio_stream_read(r, buf, sizeof(buf)) > 0) {
    }
    return asyncio_stream_close(w);
}

static int connect_and_close(void *arg, void **result)
{
    asyncio_server *server = arg;
    asyncio_stream_reader *r;
    asyncio_stream_writer *w;
    ck_assert_int_eq(asyncio_open_connection("127.0.0.1", server_port(server), NULL, &r, &w), 0);
    int *sock = asyncio_transport_get_extra_info(asyncio_stream_writer_get_transport(w), "socket");
    ck_assert_ptr_nonnull(sock);
    int fd = *sock;
    ck_assert_int_eq(asyncio_stream_write(w, "bye", 3), 0);
    ck_assert_int_eq(asyncio_stream_close(w), 0);
    /* Our socket is closed once close returns: connection_lost ran. */
    ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
    ck_assert_int_eq(errno, EBADF);
    return 0;
}

START_TEST(close_returns_once_the_connection_is_closed)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_server *server = start(loop, read_to_eof_and_close, NULL);
    asyncio_future *t = NULL;
    ck_assert_int_eq(asyncio_loop_create_task(loop, connect_and_close, server, &t), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, t), 0);
    asyncio_future_unref(t);
    end(loop, server);
}
END_TEST

static Suite *streams_suite(void)
{
    Suite *s = suite_create("streams");
    TCase *tc = tcase_create("echo");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, a_streams_echo_returns_every_byte_unchanged);
    tcase_add_test(tc, readexactly_beyond_the_buffer_after_a_paused_flood_loses_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("reading");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, readline_joins_a_line_split_across_packets);
    tcase_add_test(tc, readline_returns_the_rest_at_eof_then_0);
    tcase_add_test(tc, readline_of_a_line_longer_than_the_buffer_returns_enobufs_and_keeps_it);
    tcase_add_test(tc, readexactly_at_eof_returns_epipe_and_leaves_the_bytes_to_read);
    tcase_add_test(
        tc, cancelling_a_task_waiting_in_read_returns_ecanceled_and_the_stream_is_closed_for_it);
    tcase_add_test(tc, loop_close_resumes_a_task_waiting_in_read_with_eclosed);
    suite_add_tcase(s, tc);

    tc = tcase_create("writing");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, drain_waits_while_the_peer_does_not_read_and_fails_when_it_goes);
    suite_add_tcase(s, tc);

    tc = tcase_create("connecting");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, open_connection_outside_a_task_returns_enotask);
    tcase_add_test(tc, open_connection_to_a_port_nobody_listens_on_returns_econnrefused);
    tcase_add_test(tc, close_returns_once_the_connection_is_closed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(streams_suite()); }
