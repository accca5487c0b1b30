/* A child killed while we write to its stdin (issue 8, item 2).
 *
 * The child dies -- by asyncio_transport_kill, by send_signal, or by
 * kill(2) from outside the library -- while megabytes wait for its stdin;
 * one level down, the reader of a connect_write_pipe transport is killed.
 * A dead reader turns the next write into EPIPE, and into SIGPIPE unless
 * the library keeps it from being raised: that would kill a program that
 * never asked for signals.  The protocol must still hear each pipe lost
 * once, process_exited once and connection_lost last, and the child must
 * be reaped, not left a zombie.
 *
 * SIGPIPE is left at its default disposition and unblocked on purpose: a
 * write that raised it would kill the test.  Each test counts
 * /proc/self/fd before and after and ends by asserting that no child is
 * left (running or a zombie). */
#define _GNU_SOURCE /* pipe2 */
#include "faults-util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- Helpers -------------------------------------------------------------------- */

static void assert_no_children(void)
{
    int rc = waitpid(-1, NULL, WNOHANG);
    ck_assert_msg(rc == -1 && errno == ECHILD,
                  "a child is left (running or a zombie): waitpid(-1) = %d", rc);
}

/* SIGPIPE at its default and not blocked: if the library let one be
 * raised at us, the test process would die of it. */
static void sigpipe_would_kill(void)
{
    signal(SIGPIPE, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    ck_assert_int_eq(pthread_sigmask(SIG_UNBLOCK, &set, NULL), 0);
}

static void assert_sigpipe_untouched(void)
{
    sigset_t cur, pending;
    ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, NULL, &cur), 0);
    ck_assert_msg(!sigismember(&cur, SIGPIPE), "SIGPIPE left blocked");
    sigpending(&pending);
    ck_assert_msg(!sigismember(&pending, SIGPIPE), "a SIGPIPE is left pending");
    struct sigaction sa;
    sigaction(SIGPIPE, NULL, &sa);
    ck_assert_msg(sa.sa_handler == SIG_DFL, "SIGPIPE's disposition was changed");
}

static void stop_soon_cb(void *loop) { asyncio_loop_stop(loop); }

/* Stop a little later, so that a callback wrongly queued after the one
 * that asks would still come and be caught. */
static void stop_shortly(asyncio_loop *loop)
{
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.02, stop_soon_cb, loop, NULL), 0);
}

/* ==== A child killed while we write to its stdin ================================== */

/* `argv` reads its stdin (cat) or never does (sleep); four mebibytes are
 * written, then the child is SIGKILLed with more still queued. */
static void kill_while_writing(const char *const argv[], int how)
{
    int fds = tu_count_fds();
    sigpipe_would_kill();
    asyncio_loop *loop = tu_new_guarded_loop();
    fu_victim v;
    fu_victim_init(&v, loop);
    v.kill_how = how;
    v.payload = malloc(FU_CHUNK);
    ck_assert_ptr_nonnull(v.payload);
    memset(v.payload, 'x', FU_CHUNK);
    asyncio_subprocess_options opts = ASYNCIO_SUBPROCESS_OPTIONS_INIT;
    opts.stdout_fd = ASYNCIO_DEVNULL; /* cat would echo it all back */
    fu_spawn_and_run(loop, &v, argv, &opts);

    fu_assert_victim_order(&v, 1 | 4);
    ck_assert_int_eq(v.pipe_err[0], -EPIPE); /* data was waiting */
    ck_assert_int_eq(v.pipe_err[2], 0);
    ck_assert_int_eq(v.lost_err, 0);
    ck_assert_int_eq(fu_victim_returncode(&v), -SIGKILL);
    ck_assert_int_eq(v.returncode_at_exit, -SIGKILL);
    ck_assert_int_ge(v.pauses, 1); /* four mebibytes went over the high-water mark */
    asyncio_transport *in = asyncio_transport_get_pipe_transport(v.t, 0);
    ck_assert_int_eq(asyncio_transport_write(in, "x", 1), -EPIPE);
    ck_assert_int_eq(asyncio_transport_kill(v.t), -ESRCH); /* reaped: never signalled again */
    assert_sigpipe_untouched();
    tu_free_loop(loop);
    fu_victim_free(&v);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}

static const char *const sleep_argv[] = {"/bin/sleep", "30", NULL};
static const char *const cat_argv[] = {"/bin/cat", NULL};

START_TEST(writing_to_the_stdin_of_a_child_just_killed_fails_with_epipe_not_sigpipe)
{
    int fds = tu_count_fds();
    sigpipe_would_kill();
    asyncio_loop *loop = tu_new_guarded_loop();
    fu_victim v;
    fu_victim_init(&v, loop);
    v.drain_then_kill = 1;
    v.payload = calloc(1, FU_CHUNK);
    ck_assert_ptr_nonnull(v.payload);
    asyncio_subprocess_options opts = ASYNCIO_SUBPROCESS_OPTIONS_INIT;
    opts.stdout_fd = ASYNCIO_DEVNULL;
    fu_spawn_and_run(loop, &v, cat_argv, &opts);
    fu_assert_victim_order(&v, 1 | 4);
    ck_assert_int_eq(v.pipe_err[0], -EPIPE);
    ck_assert_int_eq(v.lost_err, 0);
    ck_assert_int_eq(fu_victim_returncode(&v), -SIGKILL);
    assert_sigpipe_untouched();
    tu_free_loop(loop);
    fu_victim_free(&v);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(child_killed_by_transport_kill_while_its_full_stdin_waits)
{
    kill_while_writing(sleep_argv, FU_KILL_BY_TRANSPORT);
}
END_TEST

START_TEST(child_killed_by_send_signal_while_it_reads_its_stdin)
{
    kill_while_writing(cat_argv, FU_KILL_BY_SEND_SIGNAL);
}
END_TEST

START_TEST(child_killed_by_kill_2_from_outside_while_it_reads_its_stdin)
{
    kill_while_writing(cat_argv, FU_KILL_FROM_OUTSIDE);
}
END_TEST

START_TEST(child_killed_by_kill_2_from_outside_while_its_full_stdin_waits)
{
    kill_while_writing(sleep_argv, FU_KILL_FROM_OUTSIDE);
}
END_TEST

/* The same fault one level down: a write pipe (connect_write_pipe) whose
 * reader, a child we started and reap ourselves, is killed. */
typedef struct {
    asyncio_protocol base;
    asyncio_loop *loop;
    asyncio_transport *t;
    pid_t pid;
    int made, lost, lost_err, depth, nested;
    unsigned char *payload;
} wpipe;

static void wp_kill(void *arg)
{
    wpipe *w = arg;
    ck_assert_uint_gt(asyncio_transport_get_write_buffer_size(w->t), 0);
    ck_assert_int_eq(kill(w->pid, SIGKILL), 0);
}

static void wp_made(asyncio_protocol *self, asyncio_transport *t)
{
    wpipe *w = (wpipe *)self;
    w->depth++;
    w->made++;
    w->t = t;
    asyncio_transport_ref(t);
    for (int i = 0; i < 4 * FU_MIB / FU_CHUNK; i++)
        ck_assert_int_eq(asyncio_transport_write(t, w->payload, FU_CHUNK), 0);
    ck_assert_int_eq(asyncio_loop_call_later(w->loop, 0.01, wp_kill, w, NULL), 0);
    w->depth--;
}

static void wp_lost(asyncio_protocol *self, int error)
{
    wpipe *w = (wpipe *)self;
    w->nested += w->depth != 0;
    w->lost++;
    w->lost_err = error;
    stop_shortly(w->loop);
}

static const asyncio_protocol_ops wpipe_ops = {.connection_made = wp_made,
                                               .connection_lost = wp_lost};

static asyncio_protocol *wpipe_factory(void *arg) { return &((wpipe *)arg)->base; }

START_TEST(write_pipe_whose_reader_is_killed_loses_with_epipe_once)
{
    int fds = tu_count_fds();
    sigpipe_would_kill();
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[0], 0);
    wpipe w;
    memset(&w, 0, sizeof(w));
    w.base.ops = &wpipe_ops;
    char *const argv[] = {(char *)"/bin/sleep", (char *)"30", NULL};
    ck_assert_int_eq(posix_spawn(&w.pid, argv[0], &fa, NULL, argv, NULL), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(p[0]);

    asyncio_loop *loop = tu_new_guarded_loop();
    w.loop = loop;
    w.payload = calloc(1, FU_CHUNK);
    ck_assert_int_eq(asyncio_loop_connect_write_pipe(loop, wpipe_factory, &w, p[1], NULL), 0);
    tu_run(loop);
    ck_assert_int_eq(w.made, 1);
    ck_assert_int_eq(w.lost, 1);
    ck_assert_int_eq(w.lost_err, -EPIPE);
    ck_assert_int_eq(w.nested, 0);
    ck_assert_int_eq(asyncio_transport_write(w.t, "x", 1), -EPIPE);
    assert_sigpipe_untouched();
    int status = 0;
    ck_assert_int_eq(waitpid(w.pid, &status, 0), w.pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    asyncio_transport_unref(w.t);
    free(w.payload);
    tu_free_loop(loop);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* ---- The suite ---------------------------------------------------------------------- */

static Suite *faults_child_suite(void)
{
    Suite *s = suite_create("faults-child");
    TCase *tc = tcase_create("killed child");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, child_killed_by_transport_kill_while_its_full_stdin_waits);
    tcase_add_test(tc, child_killed_by_send_signal_while_it_reads_its_stdin);
    tcase_add_test(tc, child_killed_by_kill_2_from_outside_while_it_reads_its_stdin);
    tcase_add_test(tc, child_killed_by_kill_2_from_outside_while_its_full_stdin_waits);
    tcase_add_test(tc, write_pipe_whose_reader_is_killed_loses_with_epipe_once);
    tcase_add_test(tc, writing_to_the_stdin_of_a_child_just_killed_fails_with_epipe_not_sigpipe);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(faults_child_suite()); }
