/* sock_recv, sock_sendall, sock_connect, sock_accept over socketpairs and
 * loopback TCP: real data, the EAGAIN paths, errors, cancellation and loop
 * close with operations pending. */
#define _GNU_SOURCE /* accept4 */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void nonblocking_pair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static int tcp_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    return fd;
}

/* A listening socket on 127.0.0.1 and an ephemeral port. */
static int tcp_listener(struct sockaddr_in *addr)
{
    int fd = tcp_socket();
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0);
    socklen_t len = sizeof(*addr);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)addr, &len), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    return fd;
}

static int run_until(asyncio_loop *loop, asyncio_future *f)
{
    return asyncio_loop_run_until_complete(loop, f);
}

static intptr_t int_result(asyncio_future *f)
{
    void *r = NULL;
    int rc = asyncio_future_result(f, &r);
    ck_assert_msg(rc == 0, "future failed: %d (%s)", rc, asyncio_strerror(rc));
    return (intptr_t)r;
}

static void run_for(asyncio_loop *loop, double seconds)
{
    ck_assert_int_eq(asyncio_loop_call_later(loop, seconds, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
}

/* ---- sock_recv ------------------------------------------------------------------ */

START_TEST(recv_returns_data_already_there)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int sv[2];
    nonblocking_pair(sv);
    ck_assert_int_eq(write(sv[1], "hello", 5), 5);
    char buf[16] = {0};
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_sock_recv(loop, sv[0], buf, sizeof(buf), &f), 0);
    ck_assert_int_eq(run_until(loop, f), 0);
    ck_assert_int_eq(int_result(f), 5);
    ck_assert_mem_eq(buf, "hello", 5);
    asyncio_future_unref(f);
    tu_free_loop(loop);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

struct delayed_write {
    int fd;
    const char *data;
};

static void delayed_write_cb(void *arg)
{
    struct delayed_write *dw = arg;
    ssize_t n = (ssize_t)strlen(dw->data);
    ck_assert_int_eq(write(dw->fd, dw->data, (size_t)n), n);
}

START_TEST(recv_waits_for_data)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int sv[2];
    nonblocking_pair(sv);
    char buf[16] = {0};
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_sock_recv(loop, sv[0], buf, sizeof(buf), &f), 0);
    ck_assert_int_eq(asyncio_future_done(f), 0);
    struct delayed_write dw = {sv[1], "abc"};
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.02, delayed_write_cb, &dw, NULL), 0);
    ck_assert_int_eq(run_until(loop, f), 0);
    ck_assert_int_eq(int_result(f), 3);
    ck_assert_mem_eq(buf, "abc", 3);
    asyncio_future_unref(f);
    tu_free_loop(loop);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

static void shutdown_cb(void *arg) { ck_assert_int_eq(shutdown(*(int *)arg, SHUT_WR), 0); }

START_TEST(recv_gives_0_at_eof)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int sv[2];
    nonblocking_pair(sv);
    char buf[16];
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_sock_recv(loop, sv[0], buf, sizeof(buf), &f), 0);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.01, shutdown_cb, &sv[1], NULL), 0);
    ck_assert_int_eq(run_until(loop, f), 0);
    ck_assert_int_eq(int_result(f), 0);
    asyncio_future_unref(f);
    tu_free_loop(loop);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* A cancelled recv leaves the data in the socket and the buffer untouched. */
START_TEST(cancelled_recv_does_not_consume_data)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int sv[2];
    nonblocking_pair(sv);
    char buf[16];
    memset(buf, '-', sizeof(buf));
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_sock_recv(loop, sv[0], buf, sizeof(buf), &f), 0);
    ck_assert_int_eq(asyncio_future_cancel(f), 1);
    /* Readable in the very pass in which the cancel is delivered. */
    ck_assert_int_eq(write(sv[1], "data", 4), 4);
    run_for(loop, 0.05);
    ck_assert_int_eq(asyncio_future_cancelled(f), 1);
    for (size_t i = 0; i < sizeof(buf); i++)
        ck_assert_int_eq(buf[i], '-');
    char got[8];
    ck_assert_int_eq(read(sv[0], got, sizeof(got)), 4);
    ck_assert_mem_eq(got, "data", 4);
    asyncio_future_unref(f);
    tu_free_loop(loop);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* ---- sock_sendall ---------------------------------------------------------------- */

#define BIG (4u << 20)

struct slow_reader {
    asyncio_loop *loop;
    int fd;
    unsigned char *got;
    size_t len;
    int reads;
};

/* Reads at most 16 KiB per loop pass, so the sender sees EAGAIN many times. */
static void slow_read_cb(void *arg)
{
    struct slow_reader *r = arg;
    size_t want = BIG - r->len < 16384 ? BIG - r->len : 16384;
    ssize_t n = read(r->fd, r->got + r->len, want);
    if (n > 0) {
        r->len += (size_t)n;
        r->reads++;
    }
    if (r->len == BIG)
        ck_assert_int_eq(asyncio_loop_remove_reader(r->loop, r->fd), 1);
}

static unsigned char pattern(size_t i) { return (unsigned char)(i * 7 + (i >> 13)); }

static void check_sendall_big(int sender, int receiver)
{
    asyncio_loop *loop = tu_new_loop();
    tu_guard(loop, 20.0);
    unsigned char *data = malloc(BIG);
    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < BIG; i++)
        data[i] = pattern(i);
    /* Small fixed buffers (no autotuning: TCP on loopback can grow them
     * past 4 MiB), so 4 MiB cannot fit in them while the peer reads
     * nothing. */
    int small = 64 * 1024;
    ck_assert_int_eq(setsockopt(sender, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    ck_assert_int_eq(setsockopt(receiver, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_sock_sendall(loop, sender, data, BIG, &f), 0);
    ck_assert_int_eq(asyncio_future_done(f), 0);
    memset(data, 0, BIG); /* sendall copied what it has not sent */
    struct slow_reader r = {loop, receiver, malloc(BIG), 0, 0};
    ck_assert_ptr_nonnull(r.got);
    ck_assert_int_eq(asyncio_loop_add_reader(loop, receiver, slow_read_cb, &r), 0);
    ck_assert_int_eq(run_until(loop, f), 0);
    ck_assert_int_eq(int_result(f), 0);
    /* The rest is in the socket buffers: let the reader drain it. */
    while (r.len < BIG)
        run_for(loop, 0.001);
    ck_assert_int_gt(r.reads, 10);
    for (size_t i = 0; i < BIG; i++)
        if (r.got[i] != pattern(i))
            ck_abort_msg("byte %zu differs", i);
    asyncio_future_unref(f);
    tu_free_loop(loop);
    free(data);
    free(r.got);
}

START_TEST(sendall_of_4_mib_to_a_slow_reader_over_a_socketpair)
{
    int sv[2];
    nonblocking_pair(sv);
    check_sendall_big(sv[0], sv[1]);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(sendall_completes_at_once_when_it_fits)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int sv[2];
    nonblocking_pair(sv);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_sock_sendall(loop, sv[0], "ping", 4, &f), 0);
    ck_assert_int_eq(run_until(loop, f), 0);
    char got[8];
    ck_assert_int_eq(read(sv[1], got, sizeof(got)), 4);
    ck_assert_mem_eq(got, "ping", 4);
    asyncio_future_unref(f);
    /* Zero bytes: done, nothing sent. */
    ck_assert_int_eq(asyncio_loop_sock_sendall(loop, sv[0], NULL, 0, &f), 0);
    ck_assert_int_eq(run_until(loop, f), 0);
    asyncio_future_unref(f);
    tu_free_loop(loop);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(sendall_to_a_closed_peer_fails_with_epipe_without_sigpipe)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int sv[2];
    nonblocking_pair(sv);
    close(sv[1]);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_sock_sendall(loop, sv[0], "x", 1, &f), 0);
    ck_assert_int_eq(run_until(loop, f), -EPIPE); /* a SIGPIPE would kill the test */
    asyncio_future_unref(f);
    tu_free_loop(loop);
    close(sv[0]);
}
END_TEST

START_TEST(cancelled_sendall_stops_sending)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int sv[2];
    nonblocking_pair(sv);
    unsigned char *data = calloc(1, BIG);
    ck_assert_ptr_nonnull(data);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_sock_sendall(loop, sv[0], data, BIG, &f), 0);
    ck_assert_int_eq(asyncio_future_done(f), 0);
    ck_assert_int_eq(asyncio_future_cancel(f), 1);
    run_for(loop, 0.02);
    /* Drain what the kernel holds; then nothing more may arrive. */
    size_t total = 0;
    ssize_t n;
    while ((n = read(sv[1], data, BIG)) > 0)
        total += (size_t)n;
    ck_assert_uint_lt(total, BIG);
    run_for(loop, 0.05);
    ck_assert_int_eq(read(sv[1], data, BIG), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(asyncio_future_cancelled(f), 1);
    asyncio_future_unref(f);
    tu_free_loop(loop);
    free(data);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* ---- sock_connect / sock_accept over loopback TCP ---------------------------------- */

START_TEST(connect_accept_and_exchange_data_over_tcp)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct sockaddr_in addr;
    int lfd = tcp_listener(&addr);
    int cfd = tcp_socket();

    asyncio_future *acc = NULL, *con = NULL;
    ck_assert_int_eq(asyncio_loop_sock_accept(loop, lfd, &acc), 0);
    ck_assert_int_eq(asyncio_future_done(acc), 0); /* nobody connected yet */
    ck_assert_int_eq(
        asyncio_loop_sock_connect(loop, cfd, (struct sockaddr *)&addr, sizeof(addr), &con), 0);
    ck_assert_int_eq(run_until(loop, con), 0);
    ck_assert_int_eq(run_until(loop, acc), 0);

    void *r = NULL;
    ck_assert_int_eq(asyncio_future_result(acc, &r), 0);
    asyncio_accepted *a = r;
    ck_assert_int_ge(a->fd, 0);
    ck_assert_int_ne(fcntl(a->fd, F_GETFL) & O_NONBLOCK, 0);
    ck_assert_int_ne(fcntl(a->fd, F_GETFD) & FD_CLOEXEC, 0);
    ck_assert_int_eq(a->addrlen, sizeof(struct sockaddr_in));
    struct sockaddr_in *peer = (struct sockaddr_in *)&a->addr;
    ck_assert_int_eq(peer->sin_family, AF_INET);
    ck_assert_uint_eq(ntohl(peer->sin_addr.s_addr), INADDR_LOOPBACK);
    struct sockaddr_in local;
    socklen_t ll = sizeof(local);
    ck_assert_int_eq(getsockname(cfd, (struct sockaddr *)&local, &ll), 0);
    ck_assert_uint_eq(peer->sin_port, local.sin_port);
    int sfd = a->fd; /* ours now */

    /* Both directions, through the loop. */
    asyncio_future *send = NULL, *recv = NULL;
    char buf[32] = {0};
    ck_assert_int_eq(asyncio_loop_sock_recv(loop, sfd, buf, sizeof(buf), &recv), 0);
    ck_assert_int_eq(asyncio_loop_sock_sendall(loop, cfd, "from client", 11, &send), 0);
    ck_assert_int_eq(run_until(loop, recv), 0);
    ck_assert_int_eq(int_result(recv), 11);
    ck_assert_mem_eq(buf, "from client", 11);
    asyncio_future_unref(send);
    asyncio_future_unref(recv);
    ck_assert_int_eq(asyncio_loop_sock_sendall(loop, sfd, "from server", 11, &send), 0);
    ck_assert_int_eq(asyncio_loop_sock_recv(loop, cfd, buf, sizeof(buf), &recv), 0);
    ck_assert_int_eq(run_until(loop, recv), 0);
    ck_assert_int_eq(int_result(recv), 11);
    ck_assert_mem_eq(buf, "from server", 11);
    asyncio_future_unref(send);
    asyncio_future_unref(recv);

    asyncio_future_unref(acc);
    asyncio_future_unref(con);
    ck_assert_int_ge(fcntl(sfd, F_GETFD), 0); /* freeing the future kept it open */
    tu_free_loop(loop);
    close(sfd);
    close(cfd);
    close(lfd);
}
END_TEST

START_TEST(sendall_of_4_mib_over_tcp)
{
    struct sockaddr_in addr;
    int lfd = tcp_listener(&addr);
    int cfd = tcp_socket();
    int rc = connect(cfd, (struct sockaddr *)&addr, sizeof(addr));
    ck_assert(rc == 0 || errno == EINPROGRESS);
    int sfd = -1;
    for (int i = 0; i < 1000 && sfd < 0; i++) {
        sfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (sfd < 0)
            usleep(1000);
    }
    ck_assert_int_ge(sfd, 0);
    check_sendall_big(cfd, sfd);
    close(sfd);
    close(cfd);
    close(lfd);
}
END_TEST

START_TEST(connect_to_a_closed_port_fails_with_econnrefused)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    /* A port nobody listens on: bound, never listened. */
    int holder = tcp_socket();
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(holder, (struct sockaddr *)&addr, sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    ck_assert_int_eq(getsockname(holder, (struct sockaddr *)&addr, &len), 0);

    int cfd = tcp_socket();
    asyncio_future *f = NULL;
    ck_assert_int_eq(
        asyncio_loop_sock_connect(loop, cfd, (struct sockaddr *)&addr, sizeof(addr), &f), 0);
    ck_assert_int_eq(run_until(loop, f), -ECONNREFUSED);
    ck_assert_int_eq(asyncio_future_exception(f), -ECONNREFUSED);
    asyncio_future_unref(f);
    tu_free_loop(loop);
    close(cfd);
    close(holder);
}
END_TEST

START_TEST(connect_over_a_unix_socket)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(lfd, 0);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    /* Abstract namespace: nothing left on disk. */
    snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "libasyncio-test-sock-%d",
             (int)getpid());
    socklen_t alen = (socklen_t)(sizeof(sa_family_t) + 1 + strlen(addr.sun_path + 1));
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&addr, alen), 0);
    ck_assert_int_eq(listen(lfd, 4), 0);
    int cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    asyncio_future *con = NULL, *acc = NULL;
    ck_assert_int_eq(asyncio_loop_sock_connect(loop, cfd, (struct sockaddr *)&addr, alen, &con), 0);
    ck_assert_int_eq(asyncio_loop_sock_accept(loop, lfd, &acc), 0);
    ck_assert_int_eq(run_until(loop, con), 0);
    ck_assert_int_eq(run_until(loop, acc), 0);
    void *r = NULL;
    ck_assert_int_eq(asyncio_future_result(acc, &r), 0);
    int sfd = ((asyncio_accepted *)r)->fd;
    ck_assert_int_eq(write(cfd, "u", 1), 1);
    char c = 0;
    ck_assert_int_eq(read(sfd, &c, 1), 1);
    ck_assert_int_eq(c, 'u');
    asyncio_future_unref(con);
    asyncio_future_unref(acc);
    tu_free_loop(loop);
    close(sfd);
    close(cfd);
    close(lfd);
}
END_TEST

/* A cancelled accept leaves the connection in the backlog. */
START_TEST(cancelled_accept_leaves_the_connection_queued)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct sockaddr_in addr;
    int lfd = tcp_listener(&addr);
    asyncio_future *acc = NULL;
    ck_assert_int_eq(asyncio_loop_sock_accept(loop, lfd, &acc), 0);
    ck_assert_int_eq(asyncio_future_cancel(acc), 1);
    int cfd = tcp_socket();
    int rc = connect(cfd, (struct sockaddr *)&addr, sizeof(addr));
    ck_assert(rc == 0 || errno == EINPROGRESS);
    run_for(loop, 0.05);
    ck_assert_int_eq(asyncio_future_cancelled(acc), 1);
    int sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(sfd, 0);
    asyncio_future_unref(acc);
    tu_free_loop(loop);
    close(sfd);
    close(cfd);
    close(lfd);
}
END_TEST

/* out == NULL: nobody can ever read the accepted fd, so it is closed. */
START_TEST(accept_without_out_closes_the_accepted_fd)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct sockaddr_in addr;
    int lfd = tcp_listener(&addr);
    int cfd = tcp_socket();
    int fds_before = tu_count_fds();
    ck_assert_int_eq(asyncio_loop_sock_accept(loop, lfd, NULL), 0);
    int rc = connect(cfd, (struct sockaddr *)&addr, sizeof(addr));
    ck_assert(rc == 0 || errno == EINPROGRESS);
    run_for(loop, 0.05);
    ck_assert_int_eq(tu_count_fds(), fds_before);
    /* The server side was closed: the client sees EOF. */
    char c;
    for (int i = 0; i < 100; i++) {
        ssize_t n = read(cfd, &c, 1);
        if (n == 0)
            break;
        ck_assert_int_eq(errno, EAGAIN);
        ck_assert_int_lt(i, 99);
        usleep(1000);
    }
    tu_free_loop(loop);
    close(cfd);
    close(lfd);
}
END_TEST

/* ---- Errors and close ----------------------------------------------------------------- */

START_TEST(bad_arguments_are_rejected)
{
    asyncio_loop *loop = tu_new_loop();
    int sv[2];
    nonblocking_pair(sv);
    char buf[4];
    asyncio_future *f = NULL;
    struct sockaddr_in addr = {.sin_family = AF_INET};
    ck_assert_int_eq(asyncio_loop_sock_recv(NULL, sv[0], buf, 4, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_sock_recv(loop, -1, buf, 4, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_sock_recv(loop, sv[0], NULL, 4, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_sock_sendall(loop, sv[0], NULL, 4, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_sock_sendall(loop, -3, "x", 1, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_sock_connect(loop, sv[0], NULL, sizeof(addr), &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_sock_connect(loop, sv[0], (struct sockaddr *)&addr, 0, &f),
                     -EINVAL);
    ck_assert_int_eq(asyncio_loop_sock_accept(loop, -1, &f), -EINVAL);
    int closed_fd = dup(sv[0]);
    close(closed_fd);
    ck_assert_int_eq(asyncio_loop_sock_recv(loop, closed_fd, buf, 4, &f), -EBADF);
    ck_assert_int_eq(asyncio_loop_sock_accept(loop, closed_fd, &f), -EBADF);

    /* asyncio requires non-blocking sockets. */
    int blocking[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, blocking), 0);
    ck_assert_int_eq(asyncio_loop_sock_recv(loop, blocking[0], buf, 4, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_sock_sendall(loop, blocking[0], "x", 1, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_sock_accept(loop, blocking[0], &f), -EINVAL);
    ck_assert_int_eq(
        asyncio_loop_sock_connect(loop, blocking[0], (struct sockaddr *)&addr, sizeof(addr), &f),
        -EINVAL);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_loop_sock_recv(loop, sv[0], buf, 4, &f), ASYNCIO_ECLOSED);
    ck_assert_int_eq(asyncio_loop_sock_sendall(loop, sv[0], "x", 1, &f), ASYNCIO_ECLOSED);
    ck_assert_int_eq(asyncio_loop_sock_accept(loop, sv[0], &f), ASYNCIO_ECLOSED);
    ck_assert_int_eq(
        asyncio_loop_sock_connect(loop, sv[0], (struct sockaddr *)&addr, sizeof(addr), &f),
        ASYNCIO_ECLOSED);
    asyncio_loop_unref(loop);
    close(sv[0]);
    close(sv[1]);
    close(blocking[0]);
    close(blocking[1]);
}
END_TEST

START_TEST(recv_error_completes_the_future)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    /* A listening socket cannot recv: ENOTCONN from the first try. */
    struct sockaddr_in addr;
    int lfd = tcp_listener(&addr);
    char buf[4];
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_sock_recv(loop, lfd, buf, sizeof(buf), &f), 0);
    ck_assert_int_eq(run_until(loop, f), -ENOTCONN);
    asyncio_future_unref(f);
    tu_free_loop(loop);
    close(lfd);
}
END_TEST

/* Close with operations pending: their futures never complete, nothing
 * leaks (ASan), the caller's fds stay open, and no buffer is touched --
 * also when data arrives after the close. */
START_TEST(close_with_operations_pending_ends_them)
{
    asyncio_loop *loop = tu_new_loop();
    int sv[2];
    nonblocking_pair(sv);
    struct sockaddr_in addr;
    int lfd = tcp_listener(&addr);
    char buf[8];
    memset(buf, '-', sizeof(buf));
    asyncio_future *recv = NULL, *acc = NULL, *send = NULL, *dropped = NULL;
    unsigned char *big = calloc(1, BIG);
    ck_assert_ptr_nonnull(big);
    ck_assert_int_eq(asyncio_loop_sock_recv(loop, sv[0], buf, sizeof(buf), &recv), 0);
    ck_assert_int_eq(asyncio_loop_sock_accept(loop, lfd, &acc), 0);
    int out[2]; /* sendall into a pair of its own: nobody reads it */
    nonblocking_pair(out);
    ck_assert_int_eq(asyncio_loop_sock_sendall(loop, out[0], big, BIG, &send), 0);
    ck_assert_int_eq(asyncio_loop_sock_recv(loop, sv[0], buf, sizeof(buf), &dropped), 0);
    asyncio_future_unref(dropped); /* the op keeps it alive until close */
    ck_assert_int_eq(asyncio_future_done(send), 0);
    tu_free_loop(loop);
    /* Cancelled, or -- where the core freezes a closed loop's futures --
     * still pending; never completed. */
    ck_assert(!asyncio_future_done(recv) || asyncio_future_cancelled(recv));
    ck_assert(!asyncio_future_done(acc) || asyncio_future_cancelled(acc));
    ck_assert(!asyncio_future_done(send) || asyncio_future_cancelled(send));
    for (size_t i = 0; i < sizeof(buf); i++)
        ck_assert_int_eq(buf[i], '-');
    ck_assert_int_eq(write(sv[1], "late", 4), 4);
    for (size_t i = 0; i < sizeof(buf); i++)
        ck_assert_int_eq(buf[i], '-');
    asyncio_future_unref(recv);
    asyncio_future_unref(acc);
    asyncio_future_unref(send);
    ck_assert_int_ge(fcntl(sv[0], F_GETFD), 0);
    ck_assert_int_ge(fcntl(lfd, F_GETFD), 0);
    free(big);
    close(sv[0]);
    close(sv[1]);
    close(out[0]);
    close(out[1]);
    close(lfd);
}
END_TEST

static Suite *sock_suite(void)
{
    Suite *s = suite_create("sock");
    TCase *tc = tcase_create("recv");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, recv_returns_data_already_there);
    tcase_add_test(tc, recv_waits_for_data);
    tcase_add_test(tc, recv_gives_0_at_eof);
    tcase_add_test(tc, cancelled_recv_does_not_consume_data);
    tcase_add_test(tc, recv_error_completes_the_future);
    suite_add_tcase(s, tc);

    tc = tcase_create("sendall");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, sendall_of_4_mib_to_a_slow_reader_over_a_socketpair);
    tcase_add_test(tc, sendall_of_4_mib_over_tcp);
    tcase_add_test(tc, sendall_completes_at_once_when_it_fits);
    tcase_add_test(tc, sendall_to_a_closed_peer_fails_with_epipe_without_sigpipe);
    tcase_add_test(tc, cancelled_sendall_stops_sending);
    suite_add_tcase(s, tc);

    tc = tcase_create("connect and accept");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, connect_accept_and_exchange_data_over_tcp);
    tcase_add_test(tc, connect_to_a_closed_port_fails_with_econnrefused);
    tcase_add_test(tc, connect_over_a_unix_socket);
    tcase_add_test(tc, cancelled_accept_leaves_the_connection_queued);
    tcase_add_test(tc, accept_without_out_closes_the_accepted_fd);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors and close");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, bad_arguments_are_rejected);
    tcase_add_test(tc, close_with_operations_pending_ends_them);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(sock_suite()); }
