/* A thousand signals in a burst (issue 8, item 2).
 *
 * SIGUSR1 (and SIGUSR2) sent a thousand times by this process, and by a
 * child, whose signals arrive whenever they arrive (inside epoll_wait or
 * between callbacks).  Signals of a kind coalesce, so a handler may run
 * fewer times than its signal was sent, but at least once and never more;
 * always as a loop callback on the loop's thread with the signals
 * unblocked, never inside the signal handler.  One more signal afterwards
 * must make exactly one more call: an overflowed wakeup pipe or a lost
 * wakeup would wedge the program's signal handling for good.  Heap and
 * file descriptors must not grow with the bursts.
 *
 * Each test counts /proc/self/fd before and after; the test that forks
 * ends by asserting that no child is left (running or a zombie). */
#define _GNU_SOURCE /* pipe2 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Live heap bytes from the sanitizer's allocator when there is one (its
 * malloc replaces glibc's, whose mallinfo2 would then say nothing). */
size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

/* ---- Helpers -------------------------------------------------------------------- */

static size_t heap_in_use(void)
{
    if (__sanitizer_get_current_allocated_bytes != NULL)
        return __sanitizer_get_current_allocated_bytes();
    return mallinfo2().uordblks;
}

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

/* ==== A thousand signals in a burst ============================================== */

#define BURST 1000

typedef struct burst burst;
typedef struct {
    burst *b;
    int which; /* 0: SIGUSR1, 1: SIGUSR2 */
} burst_arg;

struct burst {
    asyncio_loop *loop;
    pthread_t thread;
    volatile sig_atomic_t in_burst; /* the kill() loop is running */
    int calls[2];
    int inside_burst; /* a handler ran while the kills were being sent */
    int bad_context;  /* another thread, loop not running, or signal blocked */
    int base[2];      /* calls when the single signals went */
    int waiting_single;
    burst_arg args[2];
};

static void burst_handler(void *arg)
{
    burst_arg *a = arg;
    burst *b = a->b;
    if (b->in_burst)
        b->inside_burst++;
    /* Inside a signal handler its own signal is blocked (no SA_NODEFER):
     * a handler run from the signal handler would see it so. */
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    if (!pthread_equal(pthread_self(), b->thread) || asyncio_loop_is_running(b->loop) != 1 ||
        sigismember(&cur, SIGUSR1) || sigismember(&cur, SIGUSR2))
        b->bad_context++;
    b->calls[a->which]++;
    if (b->waiting_single && b->calls[0] > b->base[0] &&
        (b->args[1].b == NULL || b->calls[1] > b->base[1]))
        stop_shortly(b->loop);
}

static void burst_init(burst *b, asyncio_loop *loop, int both)
{
    memset(b, 0, sizeof(*b));
    b->loop = loop;
    b->thread = pthread_self();
    b->args[0] = (burst_arg){b, 0};
    ck_assert_int_eq(asyncio_loop_add_signal_handler(loop, SIGUSR1, burst_handler, &b->args[0]), 0);
    if (both) {
        b->args[1] = (burst_arg){b, 1};
        ck_assert_int_eq(asyncio_loop_add_signal_handler(loop, SIGUSR2, burst_handler, &b->args[1]),
                         0);
    }
}

/* After the burst has been handled: one more of each signal, which must
 * make one more call each (nothing was lost or wedged). */
static void send_single(void *arg)
{
    burst *b = arg;
    b->base[0] = b->calls[0];
    b->base[1] = b->calls[1];
    b->waiting_single = 1;
    ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
    if (b->args[1].b != NULL)
        ck_assert_int_eq(kill(getpid(), SIGUSR2), 0);
}

static void self_burst(void *arg)
{
    burst *b = arg;
    b->in_burst = 1;
    for (int i = 0; i < BURST; i++) {
        ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
        if (b->args[1].b != NULL)
            ck_assert_int_eq(kill(getpid(), SIGUSR2), 0);
    }
    b->in_burst = 0;
    ck_assert_int_eq(b->calls[0] + b->calls[1], 0);
    /* A timer, not call_soon: the burst is polled for before it fires. */
    ck_assert_int_eq(asyncio_loop_call_later(b->loop, 0.02, send_single, b, NULL), 0);
}

static void assert_burst_handled(const burst *b, int both)
{
    ck_assert_int_eq(b->inside_burst, 0);
    ck_assert_int_eq(b->bad_context, 0);
    for (int i = 0; i <= both; i++) {
        ck_assert_msg(b->base[i] >= 1 && b->base[i] <= BURST, "signal %d: %d calls for the burst",
                      i, b->base[i]);
        ck_assert_int_eq(b->calls[i], b->base[i] + 1);
    }
}

static void burst_round(asyncio_loop *loop, int both)
{
    burst b;
    burst_init(&b, loop, both);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, self_burst, &b, NULL), 0);
    tu_run(loop);
    assert_burst_handled(&b, both);
    ck_assert_int_eq(asyncio_loop_remove_signal_handler(loop, SIGUSR1), 1);
    if (both)
        ck_assert_int_eq(asyncio_loop_remove_signal_handler(loop, SIGUSR2), 1);
}

START_TEST(thousand_signals_from_this_process_run_the_handler_as_loop_callbacks)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_loop();
    tu_guard(loop, 20.0);
    burst_round(loop, 0); /* warms up what the loop allocates once */
    size_t heap = heap_in_use();
    int fds_loop = tu_count_fds();
    for (int round = 0; round < 4; round++) {
        burst_round(loop, 0);
        ck_assert_int_eq(tu_count_fds(), fds_loop);
    }
    size_t grown = heap_in_use() > heap ? heap_in_use() - heap : 0;
    ck_assert_msg(grown < 16 * 1024, "heap grew by %zu bytes over four bursts", grown);
    tu_free_loop(loop);
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(thousand_signals_of_two_kinds_run_both_handlers)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    burst_round(loop, 1);
    tu_free_loop(loop);
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* The burst from a child process, arriving whenever it arrives (inside
 * epoll_wait or between callbacks).  The child writes a byte once it is
 * done; its signals are pending or handled by then. */
typedef struct {
    burst *b;
    int rfd;
} child_burst;

static void child_done_reader(void *arg)
{
    child_burst *c = arg;
    char byte;
    ck_assert_int_eq(read(c->rfd, &byte, 1), 1);
    ck_assert_int_eq(asyncio_loop_remove_reader(c->b->loop, c->rfd), 1);
    ck_assert_int_eq(asyncio_loop_call_later(c->b->loop, 0.02, send_single, c->b, NULL), 0);
}

START_TEST(thousand_signals_from_a_child_process_run_the_handler_as_loop_callbacks)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    burst b;
    burst_init(&b, loop, 1);
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    size_t heap = heap_in_use();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Only async-signal-safe calls here. */
        pid_t parent = getppid();
        for (int i = 0; i < BURST; i++) {
            if (kill(parent, SIGUSR1) < 0 || kill(parent, SIGUSR2) < 0)
                _exit(1);
        }
        _exit(write(p[1], "!", 1) == 1 ? 0 : 2);
    }
    close(p[1]);
    child_burst c = {&b, p[0]};
    ck_assert_int_eq(asyncio_loop_add_reader(loop, p[0], child_done_reader, &c), 0);
    tu_run(loop);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_eq(b.bad_context, 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(b.base[i] >= 1 && b.base[i] <= BURST, "signal %d: %d calls for the burst", i,
                      b.base[i]);
        ck_assert_int_eq(b.calls[i], b.base[i] + 1);
    }
    size_t grown = heap_in_use() > heap ? heap_in_use() - heap : 0;
    ck_assert_msg(grown < 64 * 1024, "heap grew by %zu bytes over the burst", grown);
    close(p[0]);
    tu_free_loop(loop);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* ---- The suite ---------------------------------------------------------------------- */

static Suite *faults_signals_suite(void)
{
    Suite *s = suite_create("faults-signals");
    TCase *tc = tcase_create("signal burst");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, thousand_signals_from_this_process_run_the_handler_as_loop_callbacks);
    tcase_add_test(tc, thousand_signals_of_two_kinds_run_both_handlers);
    tcase_add_test(tc, thousand_signals_from_a_child_process_run_the_handler_as_loop_callbacks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(faults_signals_suite()); }
