/* add_reader / add_writer: callbacks as loop callbacks, asyncio's replace
 * semantics, removal (also of a callback whose fd already fired), and
 * closing the loop with fds still watched. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static void nonblocking_pair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static void put_byte(int fd) { ck_assert_int_eq(write(fd, "x", 1), 1); }

/* A callback that counts, optionally reads one byte, and stops the loop
 * after `stop_after` calls. */
struct counter {
    asyncio_loop *loop;
    int fd; /* read one byte from it per call, or -1 */
    int calls;
    int stop_after; /* 0: never */
};

static void count_cb(void *arg)
{
    struct counter *c = arg;
    c->calls++;
    if (c->fd >= 0) {
        char b;
        ck_assert_int_eq(read(c->fd, &b, 1), 1);
    }
    if (c->stop_after > 0 && c->calls == c->stop_after)
        asyncio_loop_stop(c->loop);
}

/* Run the loop for `seconds`, then stop it. */
static void run_for(asyncio_loop *loop, double seconds)
{
    ck_assert_int_eq(asyncio_loop_call_later(loop, seconds, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
}

START_TEST(reader_runs_when_the_fd_is_readable)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int sv[2];
    nonblocking_pair(sv);
    struct counter c = {loop, sv[0], 0, 1};
    ck_assert_int_eq(asyncio_loop_add_reader(loop, sv[0], count_cb, &c), 0);
    run_for(loop, 0.05);
    ck_assert_int_eq(c.calls, 0); /* nothing to read yet */
    put_byte(sv[1]);
    tu_run(loop); /* stopped by the callback */
    ck_assert_int_eq(c.calls, 1);
    ck_assert_int_eq(asyncio_loop_remove_reader(loop, sv[0]), 1);
    tu_free_loop(loop);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(reader_is_never_called_inside_add_reader)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int sv[2];
    nonblocking_pair(sv);
    put_byte(sv[1]);
    struct counter c = {loop, sv[0], 0, 1};
    ck_assert_int_eq(asyncio_loop_add_reader(loop, sv[0], count_cb, &c), 0);
    ck_assert_int_eq(c.calls, 0);
    tu_run(loop);
    ck_assert_int_eq(c.calls, 1);
    tu_free_loop(loop);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(reader_keeps_firing_while_data_remains)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int sv[2];
    nonblocking_pair(sv);
    ck_assert_int_eq(write(sv[1], "abc", 3), 3);
    struct counter c = {loop, sv[0], 0, 3};
    ck_assert_int_eq(asyncio_loop_add_reader(loop, sv[0], count_cb, &c), 0);
    tu_run(loop);
    ck_assert_int_eq(c.calls, 3);
    run_for(loop, 0.05); /* drained: no more calls */
    ck_assert_int_eq(c.calls, 3);
    tu_free_loop(loop);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(second_add_reader_replaces_the_first)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int sv[2];
    nonblocking_pair(sv);
    struct counter first = {loop, sv[0], 0, 1};
    struct counter second = {loop, sv[0], 0, 1};
    ck_assert_int_eq(asyncio_loop_add_reader(loop, sv[0], count_cb, &first), 0);
    ck_assert_int_eq(asyncio_loop_add_reader(loop, sv[0], count_cb, &second), 0);
    put_byte(sv[1]);
    tu_run(loop);
    ck_assert_int_eq(first.calls, 0);
    ck_assert_int_eq(second.calls, 1);
    /* One reader, so one removal. */
    ck_assert_int_eq(asyncio_loop_remove_reader(loop, sv[0]), 1);
    ck_assert_int_eq(asyncio_loop_remove_reader(loop, sv[0]), 0);
    tu_free_loop(loop);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(remove_returns_1_then_0)
{
    asyncio_loop *loop = tu_new_loop();
    int sv[2];
    nonblocking_pair(sv);
    struct counter c = {loop, -1, 0, 0};
    ck_assert_int_eq(asyncio_loop_remove_reader(loop, sv[0]), 0);
    ck_assert_int_eq(asyncio_loop_remove_writer(loop, sv[0]), 0);
    ck_assert_int_eq(asyncio_loop_remove_reader(loop, 100000), 0);
    ck_assert_int_eq(asyncio_loop_add_reader(loop, sv[0], count_cb, &c), 0);
    ck_assert_int_eq(asyncio_loop_remove_writer(loop, sv[0]), 0);
    ck_assert_int_eq(asyncio_loop_remove_reader(loop, sv[0]), 1);
    ck_assert_int_eq(asyncio_loop_remove_reader(loop, sv[0]), 0);
    ck_assert_int_eq(asyncio_loop_add_writer(loop, sv[0], count_cb, &c), 0);
    ck_assert_int_eq(asyncio_loop_remove_reader(loop, sv[0]), 0);
    ck_assert_int_eq(asyncio_loop_remove_writer(loop, sv[0]), 1);
    ck_assert_int_eq(asyncio_loop_remove_writer(loop, sv[0]), 0);
    tu_free_loop(loop);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(removed_reader_is_not_called)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int sv[2];
    nonblocking_pair(sv);
    put_byte(sv[1]);
    struct counter c = {loop, sv[0], 0, 0};
    ck_assert_int_eq(asyncio_loop_add_reader(loop, sv[0], count_cb, &c), 0);
    ck_assert_int_eq(asyncio_loop_remove_reader(loop, sv[0]), 1);
    run_for(loop, 0.05);
    ck_assert_int_eq(c.calls, 0);
    tu_free_loop(loop);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* Reader and writer on one fd are independent. */
static void writer_once_cb(void *arg)
{
    struct counter *c = arg;
    c->calls++;
    ck_assert_int_eq(asyncio_loop_remove_writer(c->loop, c->fd), 1);
    put_byte(c->fd); /* makes the peer readable */
}

START_TEST(reader_and_writer_on_one_fd_coexist)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int a[2];
    nonblocking_pair(a);
    /* a[0] is writable at once: the writer removes itself and writes into
     * a[0]; the reader on a[0] only fires once a[1] writes back. */
    struct counter writer = {loop, a[0], 0, 0};
    struct counter reader = {loop, a[0], 0, 1};
    ck_assert_int_eq(asyncio_loop_add_reader(loop, a[0], count_cb, &reader), 0);
    ck_assert_int_eq(asyncio_loop_add_writer(loop, a[0], writer_once_cb, &writer), 0);
    run_for(loop, 0.05);
    ck_assert_int_eq(writer.calls, 1);
    ck_assert_int_eq(reader.calls, 0); /* the reader is still there, nothing to read */
    char ch;
    ck_assert_int_eq(read(a[1], &ch, 1), 1);
    put_byte(a[1]);
    tu_run(loop); /* the reader stops it */
    ck_assert_int_eq(reader.calls, 1);
    ck_assert_int_eq(writer.calls, 1);
    ck_assert_int_eq(asyncio_loop_remove_writer(loop, a[0]), 0);
    ck_assert_int_eq(asyncio_loop_remove_reader(loop, a[0]), 1);
    tu_free_loop(loop);
    close(a[0]);
    close(a[1]);
}
END_TEST

/* Two fds readable in the same poll: both callbacks are queued in one
 * batch, and whichever runs first removes (or replaces) the other's reader.
 * The other must then not run, although its fd already fired. */
struct pair_state {
    asyncio_loop *loop;
    int fds[2];
    int calls[2];
    int replaced_calls;
    int replace; /* 0: remove the other reader, 1: replace it */
};
struct pair_arg {
    struct pair_state *st;
    int i;
};

static void replaced_cb(void *arg)
{
    struct pair_state *st = arg;
    st->replaced_calls++;
    asyncio_loop_stop(st->loop);
    asyncio_loop_remove_reader(st->loop, st->fds[0]);
    asyncio_loop_remove_reader(st->loop, st->fds[1]);
}

static void pair_cb(void *arg)
{
    struct pair_arg *pa = arg;
    struct pair_state *st = pa->st;
    st->calls[pa->i]++;
    int other = st->fds[!pa->i];
    if (st->replace)
        ck_assert_int_eq(asyncio_loop_add_reader(st->loop, other, replaced_cb, st), 0);
    else
        ck_assert_int_eq(asyncio_loop_remove_reader(st->loop, other), 1);
    ck_assert_int_eq(asyncio_loop_remove_reader(st->loop, st->fds[pa->i]), 1);
}

static void check_fired_then_removed(int replace)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int a[2], b[2];
    nonblocking_pair(a);
    nonblocking_pair(b);
    put_byte(a[1]);
    put_byte(b[1]);
    struct pair_state st = {loop, {a[0], b[0]}, {0, 0}, 0, replace};
    struct pair_arg pa0 = {&st, 0}, pa1 = {&st, 1};
    ck_assert_int_eq(asyncio_loop_add_reader(loop, a[0], pair_cb, &pa0), 0);
    ck_assert_int_eq(asyncio_loop_add_reader(loop, b[0], pair_cb, &pa1), 0);
    if (replace)
        tu_run(loop); /* replaced_cb stops it */
    else
        run_for(loop, 0.05);
    ck_assert_int_eq(st.calls[0] + st.calls[1], 1);
    ck_assert_int_eq(st.replaced_calls, replace ? 1 : 0);
    tu_free_loop(loop);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

START_TEST(reader_removed_after_its_fd_fired_is_not_called) { check_fired_then_removed(0); }
END_TEST

START_TEST(reader_replaced_after_its_fd_fired_runs_the_new_callback_only)
{
    check_fired_then_removed(1);
}
END_TEST

START_TEST(writer_runs_when_writable)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int sv[2];
    nonblocking_pair(sv);
    struct counter c = {loop, -1, 0, 2};
    ck_assert_int_eq(asyncio_loop_add_writer(loop, sv[0], count_cb, &c), 0);
    tu_run(loop); /* writable twice in a row: persistent */
    ck_assert_int_eq(c.calls, 2);
    ck_assert_int_eq(asyncio_loop_remove_writer(loop, sv[0]), 1);
    tu_free_loop(loop);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(bad_arguments_are_rejected)
{
    asyncio_loop *loop = tu_new_loop();
    int sv[2];
    nonblocking_pair(sv);
    struct counter c = {loop, -1, 0, 0};
    ck_assert_int_eq(asyncio_loop_add_reader(NULL, sv[0], count_cb, &c), -EINVAL);
    ck_assert_int_eq(asyncio_loop_add_reader(loop, -1, count_cb, &c), -EINVAL);
    ck_assert_int_eq(asyncio_loop_add_writer(loop, -5, count_cb, &c), -EINVAL);
    ck_assert_int_eq(asyncio_loop_add_reader(loop, sv[0], NULL, &c), -EINVAL);
    ck_assert_int_eq(asyncio_loop_remove_reader(loop, -1), -EINVAL);
    ck_assert_int_eq(asyncio_loop_remove_writer(NULL, sv[0]), -EINVAL);
    int closed_fd = dup(sv[0]);
    close(closed_fd);
    ck_assert_int_eq(asyncio_loop_add_reader(loop, closed_fd, count_cb, &c), -EBADF);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_loop_add_reader(loop, sv[0], count_cb, &c), ASYNCIO_ECLOSED);
    ck_assert_int_eq(asyncio_loop_add_writer(loop, sv[0], count_cb, &c), ASYNCIO_ECLOSED);
    ck_assert_int_eq(asyncio_loop_remove_reader(loop, sv[0]), ASYNCIO_ECLOSED);
    ck_assert_int_eq(asyncio_loop_remove_writer(loop, sv[0]), ASYNCIO_ECLOSED);
    asyncio_loop_unref(loop);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* Close frees what it watched, and never closes the caller's fds; a
 * callback already queued does not run. */
START_TEST(close_frees_watches_and_keeps_the_fds)
{
    asyncio_loop *loop = tu_new_loop();
    int sv[2];
    nonblocking_pair(sv);
    int fds_before = tu_count_fds();
    struct counter c = {loop, -1, 0, 0};
    ck_assert_int_eq(asyncio_loop_add_reader(loop, sv[0], count_cb, &c), 0);
    ck_assert_int_eq(asyncio_loop_add_writer(loop, sv[0], count_cb, &c), 0);
    ck_assert_int_eq(asyncio_loop_add_writer(loop, sv[1], count_cb, &c), 0);
    tu_free_loop(loop);
    ck_assert_int_eq(c.calls, 0);
    ck_assert_int_ge(fcntl(sv[0], F_GETFD), 0);
    ck_assert_int_ge(fcntl(sv[1], F_GETFD), 0);
    ck_assert_int_le(tu_count_fds(), fds_before);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* Removing and re-adding inside the callback itself. */
static void readd_cb(void *arg)
{
    struct counter *c = arg;
    c->calls++;
    char b;
    ck_assert_int_eq(read(c->fd, &b, 1), 1);
    ck_assert_int_eq(asyncio_loop_remove_reader(c->loop, c->fd), 1);
    if (c->calls < 3)
        ck_assert_int_eq(asyncio_loop_add_reader(c->loop, c->fd, readd_cb, c), 0);
    else
        asyncio_loop_stop(c->loop);
}

START_TEST(callback_may_remove_and_re_add_itself)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    int sv[2];
    nonblocking_pair(sv);
    ck_assert_int_eq(write(sv[1], "abcd", 4), 4);
    struct counter c = {loop, sv[0], 0, 0};
    ck_assert_int_eq(asyncio_loop_add_reader(loop, sv[0], readd_cb, &c), 0);
    tu_run(loop);
    ck_assert_int_eq(c.calls, 3);
    ck_assert_int_eq(asyncio_loop_remove_reader(loop, sv[0]), 0);
    tu_free_loop(loop);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

static Suite *fdwatch_suite(void)
{
    Suite *s = suite_create("fdwatch");
    TCase *tc = tcase_create("readers and writers");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, reader_runs_when_the_fd_is_readable);
    tcase_add_test(tc, reader_is_never_called_inside_add_reader);
    tcase_add_test(tc, reader_keeps_firing_while_data_remains);
    tcase_add_test(tc, second_add_reader_replaces_the_first);
    tcase_add_test(tc, remove_returns_1_then_0);
    tcase_add_test(tc, removed_reader_is_not_called);
    tcase_add_test(tc, reader_and_writer_on_one_fd_coexist);
    tcase_add_test(tc, reader_removed_after_its_fd_fired_is_not_called);
    tcase_add_test(tc, reader_replaced_after_its_fd_fired_runs_the_new_callback_only);
    tcase_add_test(tc, writer_runs_when_writable);
    tcase_add_test(tc, callback_may_remove_and_re_add_itself);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors and close");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, bad_arguments_are_rejected);
    tcase_add_test(tc, close_frees_watches_and_keeps_the_fds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(fdwatch_suite()); }
