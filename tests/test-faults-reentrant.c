/* Callbacks that close what they run on (issue 8, item 2).
 *
 * Protocol callbacks that close or abort their own transport, a server
 * closed by its own protocol factory or connection_made, a timer that
 * cancels and releases its own handle, a signal handler that removes
 * itself, a reader that removes itself and closes its fd, a subprocess
 * protocol that closes its transport, a callback that tries to close the
 * running loop, done callbacks that cancel a future.  Each tears its
 * object down while the library is still inside its own call for it: a
 * use after free, a second connection_lost, a callback after it, or a
 * callback run twice are what these catch.  The protocols count how
 * deeply their callbacks nest, so connection_lost is seen to come once,
 * last, and never inside another callback.
 *
 * Tests that open file descriptors count /proc/self/fd before and after;
 * those that start processes end by asserting that none is left (running
 * or a zombie). */
#define _GNU_SOURCE /* pipe2 */
#include "faults-util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- Helpers -------------------------------------------------------------------- */

static void assert_no_children(void)
{
    int rc = waitpid(-1, NULL, WNOHANG);
    ck_assert_msg(rc == -1 && errno == ECHILD,
                  "a child is left (running or a zombie): waitpid(-1) = %d", rc);
}

static void stop_soon_cb(void *loop) { asyncio_loop_stop(loop); }

/* Stop a little later, so that a callback wrongly queued after the one
 * that asks would still come and be caught. */
static void stop_shortly(asyncio_loop *loop)
{
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.02, stop_soon_cb, loop, NULL), 0);
}

/* ==== Callbacks that close what they run on ======================================== */

enum {
    RE_NONE,
    RE_CLOSE_IN_MADE,
    RE_ABORT_IN_MADE,
    RE_CLOSE_ABORT_IN_DATA,
    RE_CLOSE_IN_EOF_KEEP,
    RE_CLOSE_IN_EOF_END,
    RE_CLOSE_SERVER_IN_MADE,
    RE_REPLY_AND_CLOSE,
};

typedef struct {
    asyncio_protocol base;
    asyncio_loop *loop;
    asyncio_transport *t;
    asyncio_server *server; /* RE_CLOSE_SERVER_IN_MADE */
    int act;
    int depth;
    int made, data, eofs, lost, lost_err;
    int nested_lost, after_lost;
    size_t bytes;
} reent;

static void re_enter(reent *r)
{
    r->after_lost += r->lost > 0;
    r->depth++;
}

static void re_made(asyncio_protocol *self, asyncio_transport *t)
{
    reent *r = (reent *)self;
    re_enter(r);
    r->made++;
    r->t = t;
    asyncio_transport_ref(t);
    switch (r->act) {
    case RE_CLOSE_IN_MADE:
        ck_assert_int_eq(asyncio_transport_write(t, "bye", 3), 0);
        ck_assert_int_eq(asyncio_transport_close(t), 0);
        ck_assert_int_eq(asyncio_transport_is_closing(t), 1);
        ck_assert_int_eq(asyncio_transport_close(t), 0);
        ck_assert_int_eq(asyncio_transport_write(t, "x", 1), -EPIPE);
        break;
    case RE_ABORT_IN_MADE:
        ck_assert_int_eq(asyncio_transport_abort(t), 0);
        ck_assert_int_eq(asyncio_transport_abort(t), 0);
        ck_assert_int_eq(asyncio_transport_close(t), 0);
        break;
    case RE_CLOSE_SERVER_IN_MADE:
        ck_assert_int_eq(asyncio_server_close(r->server), 0);
        ck_assert_int_eq(asyncio_server_get_sockets(r->server, NULL, 0), 0);
        break;
    default:
        break;
    }
    r->depth--;
}

static void re_data(asyncio_protocol *self, const void *data, size_t len)
{
    reent *r = (reent *)self;
    (void)data;
    re_enter(r);
    r->data++;
    r->bytes += len;
    if (r->act == RE_CLOSE_ABORT_IN_DATA) {
        ck_assert_int_eq(asyncio_transport_close(r->t), 0);
        ck_assert_int_eq(asyncio_transport_abort(r->t), 0);
        ck_assert_int_eq(asyncio_transport_close(r->t), 0);
        ck_assert_int_eq(asyncio_transport_is_closing(r->t), 1);
    } else if (r->act == RE_REPLY_AND_CLOSE || r->act == RE_CLOSE_SERVER_IN_MADE) {
        ck_assert_int_eq(asyncio_transport_write(r->t, "pong", 4), 0);
        ck_assert_int_eq(asyncio_transport_close(r->t), 0);
    }
    r->depth--;
}

static int re_eof(asyncio_protocol *self)
{
    reent *r = (reent *)self;
    re_enter(r);
    r->eofs++;
    int keep = 0;
    if (r->act == RE_CLOSE_IN_EOF_KEEP || r->act == RE_CLOSE_IN_EOF_END) {
        ck_assert_int_eq(asyncio_transport_close(r->t), 0);
        keep = r->act == RE_CLOSE_IN_EOF_KEEP;
    }
    r->depth--;
    return keep;
}

static void re_lost(asyncio_protocol *self, int error)
{
    reent *r = (reent *)self;
    r->nested_lost += r->depth != 0;
    r->after_lost += r->lost > 0;
    r->lost++;
    r->lost_err = error;
    stop_shortly(r->loop);
}

static const asyncio_protocol_ops reent_ops = {
    .connection_made = re_made,
    .connection_lost = re_lost,
    .data_received = re_data,
    .eof_received = re_eof,
};

static void reent_init(reent *r, asyncio_loop *loop, int act)
{
    memset(r, 0, sizeof(*r));
    r->base.ops = &reent_ops;
    r->loop = loop;
    r->act = act;
}

static asyncio_protocol *reent_factory(void *arg) { return &((reent *)arg)->base; }

static void assert_lost_once_after(const reent *r)
{
    ck_assert_int_eq(r->made, 1);
    ck_assert_int_eq(r->lost, 1);
    ck_assert_int_eq(r->nested_lost, 0);
    ck_assert_int_eq(r->after_lost, 0);
    ck_assert_int_le(r->eofs, 1);
}

/* A connected socket pair; s[0] becomes a transport with protocol `r`, s[1]
 * is the test's peer.  `setup` runs on the peer before the loop does. */
static void run_on_socketpair(reent *r, int act, void (*setup)(int peer), int *peer_out)
{
    int s[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
    asyncio_loop *loop = tu_new_guarded_loop();
    reent_init(r, loop, act);
    if (setup != NULL)
        setup(s[1]);
    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.sock = s[0];
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_connection(loop, reent_factory, r, NULL, 0, &o, &f), 0);
    tu_run(loop);
    ck_assert_int_eq(asyncio_future_done(f), 1);
    asyncio_future_unref(f);
    asyncio_transport_unref(r->t);
    r->t = NULL;
    tu_free_loop(loop);
    *peer_out = s[1];
}

/* What the peer gets: the bytes before the end, then the end. */
static size_t drain_peer(int peer, char *buf, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(peer, buf + got, cap - got, MSG_DONTWAIT);
        if (n <= 0) {
            ck_assert_msg(n == 0 || errno == ECONNRESET, "peer: no end of stream (%s)",
                          strerror(errno));
            return got;
        }
        got += (size_t)n;
        ck_assert_uint_lt(got, cap);
    }
}

static void send_hello_twice(int peer)
{
    ck_assert_int_eq(send(peer, "hello", 5, 0), 5);
    ck_assert_int_eq(send(peer, "again", 5, 0), 5);
}

static void send_and_shut(int peer)
{
    ck_assert_int_eq(send(peer, "x", 1, 0), 1);
    ck_assert_int_eq(shutdown(peer, SHUT_WR), 0);
}

START_TEST(connection_made_that_closes_its_transport_hears_connection_lost_once_after)
{
    int fds = tu_count_fds();
    reent r;
    int peer;
    run_on_socketpair(&r, RE_CLOSE_IN_MADE, send_hello_twice, &peer);
    assert_lost_once_after(&r);
    ck_assert_int_eq(r.lost_err, 0);
    ck_assert_int_eq(r.data, 0); /* close stops reading at once */
    char buf[64];
    ck_assert_uint_eq(drain_peer(peer, buf, sizeof(buf)), 3); /* close sent what was queued */
    ck_assert_int_eq(memcmp(buf, "bye", 3), 0);
    close(peer);
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(connection_made_that_aborts_its_transport_hears_connection_lost_once_after)
{
    int fds = tu_count_fds();
    reent r;
    int peer;
    run_on_socketpair(&r, RE_ABORT_IN_MADE, send_hello_twice, &peer);
    assert_lost_once_after(&r);
    ck_assert_int_eq(r.data, 0);
    char buf[64];
    drain_peer(peer, buf, sizeof(buf));
    close(peer);
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(data_received_that_closes_then_aborts_hears_connection_lost_once_after)
{
    int fds = tu_count_fds();
    reent r;
    int peer;
    run_on_socketpair(&r, RE_CLOSE_ABORT_IN_DATA, send_hello_twice, &peer);
    assert_lost_once_after(&r);
    ck_assert_int_eq(r.data, 1); /* nothing more once closing */
    ck_assert_int_eq(r.eofs, 0);
    char buf[64];
    ck_assert_uint_eq(drain_peer(peer, buf, sizeof(buf)), 0);
    close(peer);
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(eof_received_that_closes_and_keeps_open_hears_connection_lost_once_after)
{
    int fds = tu_count_fds();
    reent r;
    int peer;
    run_on_socketpair(&r, RE_CLOSE_IN_EOF_KEEP, send_and_shut, &peer);
    assert_lost_once_after(&r);
    ck_assert_int_eq(r.eofs, 1);
    ck_assert_uint_eq(r.bytes, 1);
    ck_assert_int_eq(r.lost_err, 0);
    char buf[8];
    ck_assert_uint_eq(drain_peer(peer, buf, sizeof(buf)), 0);
    close(peer);
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(eof_received_that_closes_and_returns_0_hears_connection_lost_once_after)
{
    int fds = tu_count_fds();
    reent r;
    int peer;
    run_on_socketpair(&r, RE_CLOSE_IN_EOF_END, send_and_shut, &peer);
    assert_lost_once_after(&r);
    ck_assert_int_eq(r.eofs, 1);
    ck_assert_int_eq(r.lost_err, 0);
    char buf[8];
    ck_assert_uint_eq(drain_peer(peer, buf, sizeof(buf)), 0);
    close(peer);
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* ---- A server closed by its own connection -------------------------------------------- */

typedef struct {
    asyncio_server *server;
    reent proto;
    int factory_calls;
    int close_in_factory;
} srv_ctx;

static asyncio_protocol *closing_factory(void *arg)
{
    srv_ctx *c = arg;
    c->factory_calls++;
    if (c->close_in_factory) {
        ck_assert_int_eq(asyncio_server_close(c->server), 0);
        ck_assert_int_eq(asyncio_server_close(c->server), 0);
    }
    return &c->proto.base;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* The server's factory (or its protocol's connection_made) closes the
 * server: it stops listening, the connection it was making lives on and
 * works, wait_closed completes once that connection has gone. */
static void server_closed_from_inside(int in_factory)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    srv_ctx c;
    memset(&c, 0, sizeof(c));
    c.close_in_factory = in_factory;
    reent_init(&c.proto, loop, in_factory ? RE_REPLY_AND_CLOSE : RE_CLOSE_SERVER_IN_MADE);
    asyncio_future *f = NULL;
    ck_assert_int_eq(
        asyncio_loop_create_server(loop, closing_factory, &c, "127.0.0.1", 0, NULL, &f), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
    void *result = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &result), 0);
    c.server = result;
    c.proto.server = c.server;
    asyncio_server_ref(c.server);
    asyncio_future_unref(f);
    int lfd = -1;
    ck_assert_int_eq(asyncio_server_get_sockets(c.server, &lfd, 1), 1);
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
    int port = ntohs(sin.sin_port);

    int client = connect_to(port);
    ck_assert_int_ge(client, 0);
    ck_assert_int_eq(send(client, "ping", 4, 0), 4);
    tu_run(loop);
    ck_assert_int_eq(c.factory_calls, 1);
    assert_lost_once_after(&c.proto);
    ck_assert_int_eq(c.proto.lost_err, 0);
    ck_assert_int_eq(asyncio_server_get_sockets(c.server, NULL, 0), 0);
    char buf[16];
    ck_assert_uint_eq(drain_peer(client, buf, sizeof(buf)), 4);
    ck_assert_int_eq(memcmp(buf, "pong", 4), 0);
    ck_assert_int_eq(connect_to(port), -ECONNREFUSED); /* nobody listens any more */

    asyncio_future *closed = NULL;
    ck_assert_int_eq(asyncio_server_wait_closed(c.server, &closed), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, closed), 0);
    asyncio_future_unref(closed);
    asyncio_transport_unref(c.proto.t);
    asyncio_server_unref(c.server);
    close(client);
    tu_free_loop(loop);
    ck_assert_int_eq(tu_count_fds(), fds);
}

START_TEST(server_closed_by_its_own_protocol_factory_keeps_the_connection)
{
    server_closed_from_inside(1);
}
END_TEST

START_TEST(server_closed_by_its_connection_made_keeps_the_connection)
{
    server_closed_from_inside(0);
}
END_TEST

/* ---- Timers, signals, fd watches ------------------------------------------------------ */

typedef struct {
    asyncio_loop *loop;
    asyncio_handle *h;
    int calls;
} self_timer;

static void timer_cancels_itself(void *arg)
{
    self_timer *st = arg;
    st->calls++;
    /* Running: too late to cancel, and said so by cancelled() staying 0. */
    ck_assert_int_eq(asyncio_handle_cancel(st->h), 0);
    ck_assert_int_eq(asyncio_handle_cancelled(st->h), 0);
    asyncio_handle_unref(st->h);
    st->h = NULL;
    stop_shortly(st->loop);
}

START_TEST(timer_callback_that_cancels_and_releases_its_own_handle_runs_once)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    self_timer st = {loop, NULL, 0};
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.005, timer_cancels_itself, &st, &st.h), 0);
    /* call_soon too: the ready-queue path, not only the heap's. */
    self_timer soon = {loop, NULL, 0};
    ck_assert_int_eq(asyncio_loop_call_soon(loop, timer_cancels_itself, &soon, &soon.h), 0);
    tu_run(loop);
    ck_assert_int_eq(st.calls, 1);
    ck_assert_int_eq(soon.calls, 1);
    ck_assert_ptr_null(st.h);
    tu_free_loop(loop);
}
END_TEST

typedef struct {
    asyncio_loop *loop;
    int calls;
} self_sig;

static void signal_handler_removes_itself(void *arg)
{
    self_sig *ss = arg;
    ss->calls++;
    ck_assert_int_eq(asyncio_loop_remove_signal_handler(ss->loop, SIGUSR1), 1);
    ck_assert_int_eq(asyncio_loop_remove_signal_handler(ss->loop, SIGUSR1), 0);
    /* The disposition from before is back (ignore): this one goes nowhere. */
    ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
    stop_shortly(ss->loop);
}

static void send_usr1_twice(void *arg)
{
    (void)arg;
    ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
    ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
}

START_TEST(signal_handler_that_removes_itself_runs_once)
{
    int fds = tu_count_fds();
    signal(SIGUSR1, SIG_IGN);
    asyncio_loop *loop = tu_new_guarded_loop();
    self_sig ss = {loop, 0};
    ck_assert_int_eq(
        asyncio_loop_add_signal_handler(loop, SIGUSR1, signal_handler_removes_itself, &ss), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, send_usr1_twice, NULL, NULL), 0);
    tu_run(loop);
    ck_assert_int_eq(ss.calls, 1);
    struct sigaction sa;
    sigaction(SIGUSR1, NULL, &sa);
    ck_assert(sa.sa_handler == SIG_IGN);
    /* Added again, it works again. */
    ck_assert_int_eq(
        asyncio_loop_add_signal_handler(loop, SIGUSR1, signal_handler_removes_itself, &ss), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, send_usr1_twice, NULL, NULL), 0);
    tu_run(loop);
    ck_assert_int_eq(ss.calls, 2);
    tu_free_loop(loop);
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

typedef struct {
    asyncio_loop *loop;
    int rfd, wfd;
    int calls;
    int second_calls;
} self_reader;

static void second_reader(void *arg)
{
    self_reader *sr = arg;
    sr->second_calls++;
    char c;
    ck_assert_int_eq(read(sr->rfd, &c, 1), 1);
    ck_assert_int_eq(asyncio_loop_remove_reader(sr->loop, sr->rfd), 1);
    stop_shortly(sr->loop);
}

static void reader_removes_itself_and_closes(void *arg)
{
    self_reader *sr = arg;
    sr->calls++;
    ck_assert_int_eq(asyncio_loop_remove_reader(sr->loop, sr->rfd), 1);
    ck_assert_int_eq(asyncio_loop_remove_reader(sr->loop, sr->rfd), 0);
    ck_assert_int_eq(close(sr->rfd), 0);
    ck_assert_int_eq(close(sr->wfd), 0);
    /* A new pipe most likely reuses the number: the watch starts afresh,
     * nothing of the old one may fire for it. */
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    sr->rfd = p[0];
    sr->wfd = p[1];
    ck_assert_int_eq(asyncio_loop_add_reader(sr->loop, sr->rfd, second_reader, sr), 0);
    ck_assert_int_eq(write(sr->wfd, "y", 1), 1);
}

START_TEST(reader_callback_that_removes_itself_and_closes_its_fd_runs_once)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    self_reader sr = {loop, p[0], p[1], 0, 0};
    ck_assert_int_eq(asyncio_loop_add_reader(loop, sr.rfd, reader_removes_itself_and_closes, &sr),
                     0);
    ck_assert_int_eq(write(sr.wfd, "xx", 2), 2); /* stays readable: it must not fire again */
    tu_run(loop);
    ck_assert_int_eq(sr.calls, 1);
    ck_assert_int_eq(sr.second_calls, 1);
    close(sr.rfd);
    close(sr.wfd);
    tu_free_loop(loop);
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* ---- A subprocess protocol that closes its transport ------------------------------------ */

START_TEST(subprocess_protocol_closing_in_pipe_data_received_still_hears_the_rest_once)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    fu_victim v;
    fu_victim_init(&v, loop);
    v.act = FU_ACT_CLOSE_IN_DATA;
    const char *const argv[] = {"/bin/sh", "-c", "echo hi; exec sleep 30", NULL};
    fu_spawn_and_run(loop, &v, argv, NULL);
    fu_assert_victim_order(&v, 7);
    ck_assert_int_eq(v.act, FU_ACT_NONE); /* it did close */
    ck_assert_int_eq(fu_victim_returncode(&v), -SIGKILL);
    ck_assert_int_eq(v.lost_err, 0);
    tu_free_loop(loop);
    fu_victim_free(&v);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(subprocess_protocol_closing_in_process_exited_hears_connection_lost_once_after)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    fu_victim v;
    fu_victim_init(&v, loop);
    v.act = FU_ACT_CLOSE_IN_EXITED;
    /* Its stdout stays open after it exits, in a grandchild, so the
     * close comes while a pipe is still open. */
    const char *const argv[] = {"/bin/sh", "-c", "sleep 0.3 & exit 3", NULL};
    fu_spawn_and_run(loop, &v, argv, NULL);
    fu_assert_victim_order(&v, 7);
    ck_assert_int_eq(fu_victim_returncode(&v), 3);
    ck_assert_int_eq(v.lost_err, 0);
    tu_free_loop(loop);
    fu_victim_free(&v);
    /* The grandchild was re-parented to init, not ours to reap. */
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* ---- Closing the loop from inside ------------------------------------------------------ */

typedef struct {
    asyncio_loop *loop;
    tu_recorder rec;
    tu_rec_item late;
} closer;

static void try_close_cb(void *arg)
{
    closer *c = arg;
    tu_rec_push(&c->rec, 1);
    ck_assert_int_eq(asyncio_loop_close(c->loop), ASYNCIO_ERUNNING);
    ck_assert_int_eq(asyncio_loop_is_closed(c->loop), 0);
    ck_assert_int_eq(asyncio_loop_is_running(c->loop), 1);
}

static void after_close_cb(void *arg)
{
    closer *c = arg;
    tu_rec_push(&c->rec, 2);
    ck_assert_int_eq(asyncio_loop_stop(c->loop), 0);
    ck_assert_int_eq(asyncio_loop_close(c->loop), ASYNCIO_ERUNNING);
    /* Scheduled after the stop: runs in the next run, or is dropped by
     * close. */
    c->late = (tu_rec_item){&c->rec, 99};
    ck_assert_int_eq(asyncio_loop_call_soon(c->loop, tu_rec_cb, &c->late, NULL), 0);
}

START_TEST(loop_close_from_a_callback_is_erunning_and_the_loop_goes_on)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    closer c = {.loop = loop};
    tu_rec_init(&c.rec);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, try_close_cb, &c, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.01, after_close_cb, &c, NULL), 0);
    tu_run(loop);
    static const int expected[] = {1, 2};
    tu_rec_expect(&c.rec, expected, 2);
    ck_assert_int_eq(asyncio_loop_is_running(loop), 0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_loop_is_closed(loop), 1);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_loop_run_forever(loop), ASYNCIO_ECLOSED);
    tu_rec_expect(&c.rec, expected, 2); /* the call after the stop was dropped */
    asyncio_loop_unref(loop);
    tu_rec_free(&c.rec);
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* ---- Futures ---------------------------------------------------------------------------- */

typedef struct {
    asyncio_future *a, *b;
    tu_recorder rec;
} fut_pair;

static void b_done(asyncio_future *f, void *arg);

static void a_done_cancels_b(asyncio_future *f, void *arg)
{
    fut_pair *p = arg;
    (void)f;
    tu_rec_push(&p->rec, 1);
    /* b is done and its callback already queued: cancel is a no-op. */
    ck_assert_int_eq(asyncio_future_cancel(p->b), 0);
    ck_assert_int_eq(asyncio_future_cancelled(p->b), 0);
    /* Nor can it be taken back once queued (CPython's callbacks list is
     * emptied when it schedules them). */
    ck_assert_int_eq(asyncio_future_remove_done_callback(p->b, b_done, p), 0);
}

static void b_done(asyncio_future *f, void *arg)
{
    fut_pair *p = arg;
    tu_rec_push(&p->rec, 2);
    void *r = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &r), 0);
    ck_assert_ptr_eq(r, p);
    /* And back: a is done too. */
    ck_assert_int_eq(asyncio_future_cancel(p->a), 0);
}

START_TEST(done_callback_cancelling_a_future_whose_callback_is_queued_changes_nothing)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    fut_pair p;
    tu_rec_init(&p.rec);
    ck_assert_int_eq(asyncio_loop_create_future(loop, &p.a), 0);
    ck_assert_int_eq(asyncio_loop_create_future(loop, &p.b), 0);
    ck_assert_int_eq(asyncio_future_add_done_callback(p.a, a_done_cancels_b, &p), 0);
    ck_assert_int_eq(asyncio_future_add_done_callback(p.b, b_done, &p), 0);
    ck_assert_int_eq(asyncio_future_set_result(p.a, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_future_set_result(p.b, &p, NULL), 0);
    stop_shortly(loop);
    tu_run(loop);
    static const int expected[] = {1, 2};
    tu_rec_expect(&p.rec, expected, 2);
    ck_assert_int_eq(asyncio_future_cancelled(p.b), 0);
    asyncio_future_unref(p.a);
    asyncio_future_unref(p.b);
    tu_rec_free(&p.rec);
    tu_free_loop(loop);
}
END_TEST

static void a_done_cancels_pending_b(asyncio_future *f, void *arg)
{
    fut_pair *p = arg;
    (void)f;
    tu_rec_push(&p->rec, 1);
    ck_assert_int_eq(asyncio_future_cancel(p->b), 1);
    ck_assert_int_eq(asyncio_future_cancel(p->b), 0);
}

static void b_done_cancelled(asyncio_future *f, void *arg)
{
    fut_pair *p = arg;
    tu_rec_push(&p->rec, 2);
    ck_assert_int_eq(asyncio_future_cancelled(f), 1);
    ck_assert_int_eq(asyncio_future_result(f, NULL), -ECANCELED);
}

START_TEST(done_callback_cancelling_a_pending_future_schedules_its_callbacks_once)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    fut_pair p;
    tu_rec_init(&p.rec);
    ck_assert_int_eq(asyncio_loop_create_future(loop, &p.a), 0);
    ck_assert_int_eq(asyncio_loop_create_future(loop, &p.b), 0);
    ck_assert_int_eq(asyncio_future_add_done_callback(p.a, a_done_cancels_pending_b, &p), 0);
    ck_assert_int_eq(asyncio_future_add_done_callback(p.b, b_done_cancelled, &p), 0);
    ck_assert_int_eq(asyncio_future_add_done_callback(p.b, b_done_cancelled, &p), 0);
    ck_assert_int_eq(asyncio_future_set_result(p.a, NULL, NULL), 0);
    stop_shortly(loop);
    tu_run(loop);
    static const int expected[] = {1, 2, 2}; /* the same pair added twice runs twice */
    tu_rec_expect(&p.rec, expected, 3);
    asyncio_future_unref(p.a);
    asyncio_future_unref(p.b);
    tu_rec_free(&p.rec);
    tu_free_loop(loop);
}
END_TEST

/* ---- The suite ---------------------------------------------------------------------- */

static Suite *faults_reentrant_suite(void)
{
    Suite *s = suite_create("faults-reentrant");
    TCase *tc = tcase_create("re-entrant close");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, connection_made_that_closes_its_transport_hears_connection_lost_once_after);
    tcase_add_test(tc, connection_made_that_aborts_its_transport_hears_connection_lost_once_after);
    tcase_add_test(tc, data_received_that_closes_then_aborts_hears_connection_lost_once_after);
    tcase_add_test(tc, eof_received_that_closes_and_keeps_open_hears_connection_lost_once_after);
    tcase_add_test(tc, eof_received_that_closes_and_returns_0_hears_connection_lost_once_after);
    tcase_add_test(tc, server_closed_by_its_own_protocol_factory_keeps_the_connection);
    tcase_add_test(tc, server_closed_by_its_connection_made_keeps_the_connection);
    tcase_add_test(tc, timer_callback_that_cancels_and_releases_its_own_handle_runs_once);
    tcase_add_test(tc, signal_handler_that_removes_itself_runs_once);
    tcase_add_test(tc, reader_callback_that_removes_itself_and_closes_its_fd_runs_once);
    tcase_add_test(tc, subprocess_protocol_closing_in_pipe_data_received_still_hears_the_rest_once);
    tcase_add_test(tc,
                   subprocess_protocol_closing_in_process_exited_hears_connection_lost_once_after);
    tcase_add_test(tc, loop_close_from_a_callback_is_erunning_and_the_loop_goes_on);
    tcase_add_test(tc, done_callback_cancelling_a_future_whose_callback_is_queued_changes_nothing);
    tcase_add_test(tc, done_callback_cancelling_a_pending_future_schedules_its_callbacks_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(faults_reentrant_suite()); }
