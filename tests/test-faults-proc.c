/* Process, signal, executor and re-entrancy faults (issue 8, item 2):
 *
 *   - a child killed (by the transport, by send_signal, by kill(2) from
 *     outside the library) while megabytes wait for its stdin;
 *   - a thousand signals in a burst, from this process and from a child;
 *   - the loop closed while executor jobs still run;
 *   - callbacks that close their own transport, server, timer, signal
 *     handler, fd watch or loop, or cancel a future whose callback is
 *     already scheduled.
 *
 * Each test counts /proc/self/fd before and after; tests that start
 * processes end by asserting that none is left (running or a zombie).
 * Worker threads never call ck_assert: they count in atomics and the
 * test's thread asserts.  SIGPIPE is left at its default disposition and
 * unblocked on purpose: a write that raised it would kill the test. */
#define _GNU_SOURCE /* pipe2 */
#include "testutil.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Live heap bytes from the sanitizer's allocator when there is one (its
 * malloc replaces glibc's, whose mallinfo2 would then say nothing). */
size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

/* ---- Helpers -------------------------------------------------------------------- */

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static size_t heap_in_use(void)
{
    if (__sanitizer_get_current_allocated_bytes != NULL)
        return __sanitizer_get_current_allocated_bytes();
    return mallinfo2().uordblks;
}

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void *nothing_main(void *arg) { return arg; }

/* ThreadSanitizer starts a thread of its own at the first pthread_create:
 * start and join one first so that it is not counted as ours. */
static int thread_baseline(void)
{
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, nothing_main, NULL), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    return count_threads();
}

/* Detached threads leave a moment after they said they are done. */
static int wait_threads(int want, double timeout)
{
    double end = tu_now() + timeout;
    while (count_threads() != want) {
        if (tu_now() > end)
            return 0;
        sleep_s(0.001);
    }
    return 1;
}

static int wait_atomic(atomic_int *v, int want, double timeout)
{
    double end = tu_now() + timeout;
    while (atomic_load(v) < want) {
        if (tu_now() > end)
            return 0;
        sleep_s(0.0005);
    }
    return 1;
}

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

static int count_of(const tu_recorder *r, int value)
{
    int n = 0;
    for (size_t i = 0; i < r->len; i++)
        n += r->v[i] == value;
    return n;
}

static void stop_soon_cb(void *loop) { asyncio_loop_stop(loop); }

/* Stop a little later, so that a callback wrongly queued after the one
 * that asks would still come and be caught. */
static void stop_shortly(asyncio_loop *loop)
{
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.02, stop_soon_cb, loop, NULL), 0);
}

/* ==== A child killed while we write to its stdin ================================== */

#define MIB (1024 * 1024)
#define CHUNK (64 * 1024)

enum { EV_MADE = 1, EV_PIPE_LOST = 10 /* + fd */, EV_EXITED = 20, EV_LOST = 30 };
enum { KILL_BY_TRANSPORT, KILL_BY_SEND_SIGNAL, KILL_FROM_OUTSIDE };
enum { ACT_NONE, ACT_CLOSE_IN_DATA, ACT_CLOSE_IN_EXITED };

typedef struct victim victim;
struct victim {
    asyncio_protocol base;
    asyncio_loop *loop;
    asyncio_transport *t; /* our reference */
    tu_recorder events;
    int pipe_err[3];
    int lost_err;
    int returncode_at_exit;
    int depth; /* protocol callbacks running right now */
    int nested_lost;
    int after_lost;
    int pauses, resumes;
    int kill_how;
    int act;
    size_t written;
    unsigned char *payload; /* CHUNK bytes */
    int drain_then_kill;    /* let the child drain its stdin, then kill it */
};

/* Every callback but connection_lost. */
static void v_enter(victim *v)
{
    if (count_of(&v->events, EV_LOST) > 0)
        v->after_lost++;
    v->depth++;
}

static void v_write(victim *v, size_t n)
{
    asyncio_transport *in = asyncio_transport_get_pipe_transport(v->t, 0);
    ck_assert_ptr_nonnull(in);
    for (size_t done = 0; done < n; done += CHUNK) {
        ck_assert_int_eq(asyncio_transport_write(in, v->payload, CHUNK), 0);
        v->written += CHUNK;
    }
}

static void do_kill(void *arg)
{
    victim *v = arg;
    /* The child may have drained what it was given (cat keeps up with us
     * under a slow sanitizer).  Stopped, it reads no more, and a mebibyte
     * more is more than a pipe holds: data is waiting when it dies. */
    pid_t pid = asyncio_transport_get_pid(v->t);
    ck_assert_int_eq(kill(pid, SIGSTOP), 0);
    siginfo_t si;
    ck_assert_int_eq(waitid(P_PID, (id_t)pid, &si, WSTOPPED | WNOWAIT), 0);
    v_write(v, MIB);
    asyncio_transport *in = asyncio_transport_get_pipe_transport(v->t, 0);
    ck_assert_uint_gt(asyncio_transport_get_write_buffer_size(in), 0);
    switch (v->kill_how) {
    case KILL_BY_TRANSPORT:
        ck_assert_int_eq(asyncio_transport_kill(v->t), 0);
        break;
    case KILL_BY_SEND_SIGNAL:
        ck_assert_int_eq(asyncio_transport_send_signal(v->t, SIGKILL), 0);
        break;
    default:
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
    }
    /* Still writing after the kill, before the loop has noticed. */
    v_write(v, CHUNK);
}

/* The stdin pipe is empty and its reader has just died: the next write
 * goes straight to writev, which fails with EPIPE -- and would raise
 * SIGPIPE were it not blocked around the call. */
static void write_after_the_death(void *arg)
{
    victim *v = arg;
    asyncio_transport *in = asyncio_transport_get_pipe_transport(v->t, 0);
    if (asyncio_transport_get_write_buffer_size(in) > 0) {
        ck_assert_int_eq(asyncio_loop_call_later(v->loop, 0.002, write_after_the_death, v, NULL),
                         0);
        return;
    }
    pid_t pid = asyncio_transport_get_pid(v->t);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    siginfo_t si;
    ck_assert_int_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0); /* dead, not reaped */
    /* The write itself was fine; its error reaches a later callback. */
    size_t events = v->events.len;
    ck_assert_int_eq(asyncio_transport_write(in, v->payload, CHUNK), 0);
    ck_assert_uint_eq(v->events.len, events);
    ck_assert_int_eq(asyncio_transport_is_closing(in), 1);
    ck_assert_int_eq(asyncio_transport_write(in, v->payload, CHUNK), -EPIPE);
}

static void v_made(asyncio_protocol *self, asyncio_transport *t)
{
    victim *v = (victim *)self;
    v_enter(v);
    tu_rec_push(&v->events, EV_MADE);
    asyncio_transport_ref(t);
    v->t = t;
    if (v->drain_then_kill) {
        v_write(v, 4 * CHUNK);
        ck_assert_int_eq(asyncio_loop_call_soon(v->loop, write_after_the_death, v, NULL), 0);
    } else if (v->payload != NULL) {
        v_write(v, 4 * MIB);
        ck_assert_int_eq(asyncio_loop_call_later(v->loop, 0.01, do_kill, v, NULL), 0);
    }
    v->depth--;
}

static void v_data(asyncio_protocol *self, int fd, const void *data, size_t len)
{
    victim *v = (victim *)self;
    (void)data;
    (void)len;
    v_enter(v);
    ck_assert_msg(fd == 1 || fd == 2, "pipe_data_received on fd %d", fd);
    if (v->act == ACT_CLOSE_IN_DATA) {
        ck_assert_int_eq(asyncio_transport_close(v->t), 0);
        ck_assert_int_eq(asyncio_transport_is_closing(v->t), 1);
        ck_assert_int_eq(asyncio_transport_close(v->t), 0);
        v->act = ACT_NONE;
    }
    v->depth--;
}

static void v_pipe_lost(asyncio_protocol *self, int fd, int error)
{
    victim *v = (victim *)self;
    v_enter(v);
    ck_assert_msg(fd >= 0 && fd <= 2, "pipe_connection_lost on fd %d", fd);
    tu_rec_push(&v->events, EV_PIPE_LOST + fd);
    v->pipe_err[fd] = error;
    v->depth--;
}

static void v_exited(asyncio_protocol *self)
{
    victim *v = (victim *)self;
    v_enter(v);
    tu_rec_push(&v->events, EV_EXITED);
    ck_assert_int_eq(asyncio_transport_get_returncode(v->t, &v->returncode_at_exit), 0);
    if (v->act == ACT_CLOSE_IN_EXITED) {
        ck_assert_int_eq(asyncio_transport_close(v->t), 0);
        ck_assert_int_eq(asyncio_transport_close(v->t), 0);
    }
    v->depth--;
}

static void v_pause(asyncio_protocol *self)
{
    victim *v = (victim *)self;
    v_enter(v);
    v->pauses++;
    v->depth--;
}

static void v_resume(asyncio_protocol *self)
{
    victim *v = (victim *)self;
    v_enter(v);
    v->resumes++;
    v->depth--;
}

static void v_lost(asyncio_protocol *self, int error)
{
    victim *v = (victim *)self;
    if (v->depth != 0)
        v->nested_lost++;
    if (count_of(&v->events, EV_LOST) > 0)
        v->after_lost++;
    tu_rec_push(&v->events, EV_LOST);
    v->lost_err = error;
    stop_shortly(v->loop);
}

static const asyncio_protocol_ops victim_ops = {
    .connection_made = v_made,
    .connection_lost = v_lost,
    .pipe_data_received = v_data,
    .pipe_connection_lost = v_pipe_lost,
    .process_exited = v_exited,
    .pause_writing = v_pause,
    .resume_writing = v_resume,
};

static void victim_init(victim *v, asyncio_loop *loop)
{
    memset(v, 0, sizeof(*v));
    v->base.ops = &victim_ops;
    v->loop = loop;
    tu_rec_init(&v->events);
    for (int i = 0; i < 3; i++)
        v->pipe_err[i] = 12345;
}

static void victim_free(victim *v)
{
    asyncio_transport_unref(v->t);
    tu_rec_free(&v->events);
    free(v->payload);
}

static asyncio_protocol *victim_factory(void *arg) { return &((victim *)arg)->base; }

/* connection_made first and once, each pipe lost once, process_exited
 * once, connection_lost last and once, never inside another callback and
 * nothing after it. */
static void assert_victim_order(const victim *v, int piped)
{
    const tu_recorder *r = &v->events;
    ck_assert_int_ge(r->len, 3);
    ck_assert_int_eq(r->v[0], EV_MADE);
    ck_assert_int_eq(r->v[r->len - 1], EV_LOST);
    ck_assert_int_eq(count_of(r, EV_MADE), 1);
    ck_assert_int_eq(count_of(r, EV_EXITED), 1);
    ck_assert_int_eq(count_of(r, EV_LOST), 1);
    for (int fd = 0; fd < 3; fd++)
        ck_assert_int_eq(count_of(r, EV_PIPE_LOST + fd), (piped >> fd) & 1);
    ck_assert_int_eq(v->nested_lost, 0);
    ck_assert_int_eq(v->after_lost, 0);
}

static int victim_returncode(const victim *v)
{
    int rc = 12345;
    ck_assert_int_eq(asyncio_transport_get_returncode(v->t, &rc), 0);
    return rc;
}

static void spawn_and_run(asyncio_loop *loop, victim *v, const char *const argv[],
                          const asyncio_subprocess_options *opts)
{
    asyncio_future *f = NULL;
    int rc = asyncio_loop_subprocess_exec(loop, victim_factory, v, argv, opts, &f);
    ck_assert_msg(rc == 0, "subprocess_exec(%s): %s", argv[0], asyncio_strerror(rc));
    tu_run(loop);
    ck_assert_int_eq(asyncio_future_done(f), 1);
    asyncio_future_unref(f);
}

/* `argv` reads its stdin (cat) or never does (sleep); four mebibytes are
 * written, then the child is SIGKILLed with more still queued. */
static void kill_while_writing(const char *const argv[], int how)
{
    int fds = tu_count_fds();
    sigpipe_would_kill();
    asyncio_loop *loop = tu_new_guarded_loop();
    victim v;
    victim_init(&v, loop);
    v.kill_how = how;
    v.payload = malloc(CHUNK);
    ck_assert_ptr_nonnull(v.payload);
    memset(v.payload, 'x', CHUNK);
    asyncio_subprocess_options opts = ASYNCIO_SUBPROCESS_OPTIONS_INIT;
    opts.stdout_fd = ASYNCIO_DEVNULL; /* cat would echo it all back */
    spawn_and_run(loop, &v, argv, &opts);

    assert_victim_order(&v, 1 | 4);
    ck_assert_int_eq(v.pipe_err[0], -EPIPE); /* data was waiting */
    ck_assert_int_eq(v.pipe_err[2], 0);
    ck_assert_int_eq(v.lost_err, 0);
    ck_assert_int_eq(victim_returncode(&v), -SIGKILL);
    ck_assert_int_eq(v.returncode_at_exit, -SIGKILL);
    ck_assert_int_ge(v.pauses, 1); /* four mebibytes went over the high-water mark */
    asyncio_transport *in = asyncio_transport_get_pipe_transport(v.t, 0);
    ck_assert_int_eq(asyncio_transport_write(in, "x", 1), -EPIPE);
    ck_assert_int_eq(asyncio_transport_kill(v.t), -ESRCH); /* reaped: never signalled again */
    assert_sigpipe_untouched();
    tu_free_loop(loop);
    victim_free(&v);
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
    victim v;
    victim_init(&v, loop);
    v.drain_then_kill = 1;
    v.payload = calloc(1, CHUNK);
    ck_assert_ptr_nonnull(v.payload);
    asyncio_subprocess_options opts = ASYNCIO_SUBPROCESS_OPTIONS_INIT;
    opts.stdout_fd = ASYNCIO_DEVNULL;
    spawn_and_run(loop, &v, cat_argv, &opts);
    assert_victim_order(&v, 1 | 4);
    ck_assert_int_eq(v.pipe_err[0], -EPIPE);
    ck_assert_int_eq(v.lost_err, 0);
    ck_assert_int_eq(victim_returncode(&v), -SIGKILL);
    assert_sigpipe_untouched();
    tu_free_loop(loop);
    victim_free(&v);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(child_killed_by_transport_kill_while_its_full_stdin_waits)
{
    kill_while_writing(sleep_argv, KILL_BY_TRANSPORT);
}
END_TEST

START_TEST(child_killed_by_send_signal_while_it_reads_its_stdin)
{
    kill_while_writing(cat_argv, KILL_BY_SEND_SIGNAL);
}
END_TEST

START_TEST(child_killed_by_kill_2_from_outside_while_it_reads_its_stdin)
{
    kill_while_writing(cat_argv, KILL_FROM_OUTSIDE);
}
END_TEST

START_TEST(child_killed_by_kill_2_from_outside_while_its_full_stdin_waits)
{
    kill_while_writing(sleep_argv, KILL_FROM_OUTSIDE);
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
    for (int i = 0; i < 4 * MIB / CHUNK; i++)
        ck_assert_int_eq(asyncio_transport_write(t, w->payload, CHUNK), 0);
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
    w.payload = calloc(1, CHUNK);
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

/* ==== Loop close with executor jobs still running ================================== */

#define SLOW_JOB 0.2

static atomic_int jobs_started, jobs_finished, args_destroyed, results_destroyed, done_calls;
static atomic_uint jobs_ran_mask;

static int slow_fn(void *arg, void **result)
{
    int i = (int)(intptr_t)arg;
    atomic_fetch_add(&jobs_started, 1);
    atomic_fetch_or(&jobs_ran_mask, 1u << i);
    sleep_s(SLOW_JOB);
    *result = malloc(32);
    atomic_fetch_add(&jobs_finished, 1);
    return 0;
}

static void count_arg_destroy(void *arg)
{
    (void)arg;
    atomic_fetch_add(&args_destroyed, 1);
}

static void count_result_destroy(void *result)
{
    free(result);
    atomic_fetch_add(&results_destroyed, 1);
}

static void count_done_cb(asyncio_future *f, void *arg)
{
    (void)f;
    (void)arg;
    atomic_fetch_add(&done_calls, 1);
}

static asyncio_future *submit_slow(asyncio_loop *loop, asyncio_executor *ex, int i)
{
    asyncio_future *f = NULL;
    int rc = asyncio_loop_run_in_executor_full(loop, ex, slow_fn, (void *)(intptr_t)i,
                                               count_arg_destroy, count_result_destroy, &f);
    ck_assert_msg(rc == 0, "run_in_executor: %s", asyncio_strerror(rc));
    ck_assert_int_eq(asyncio_future_add_done_callback(f, count_done_cb, NULL), 0);
    return f;
}

/* Close must not wait for the jobs (asyncio: shutdown(wait=False)). */
static void close_without_waiting(asyncio_loop *loop)
{
    ck_assert(wait_atomic(&jobs_started, 1, 5.0));
    double t0 = tu_now();
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    double took = tu_now() - t0;
    ck_assert_msg(took < SLOW_JOB / 2, "close took %.3f s: it waited for the jobs", took);
    ck_assert_int_eq(asyncio_loop_is_closed(loop), 1);
    ck_assert_int_eq(asyncio_loop_run_in_executor(loop, NULL, slow_fn, NULL, NULL),
                     ASYNCIO_ECLOSED);
    asyncio_loop_unref(loop); /* the jobs' references keep the memory */
}

/* What the executor documents for a closed loop: the future stays pending
 * (the completion is dropped), its done callbacks never run. */
static void assert_futures_left_pending(asyncio_future **fs, int n)
{
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(asyncio_future_done(fs[i]), 0);
        asyncio_future_unref(fs[i]);
    }
}

#define N_DEFAULT 8

START_TEST(closing_the_loop_with_default_executor_jobs_running_drops_their_completions)
{
    int fds = tu_count_fds();
    int threads = thread_baseline();
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *fs[N_DEFAULT];
    for (int i = 0; i < N_DEFAULT; i++)
        fs[i] = submit_slow(loop, NULL, i);
    close_without_waiting(loop);
    /* The default pool was shut down without waiting: what was submitted
     * still runs to its end (cancel_futures=False), in the pool alone. */
    ck_assert(wait_atomic(&jobs_finished, N_DEFAULT, 10.0));
    ck_assert(wait_atomic(&results_destroyed, N_DEFAULT, 5.0));
    ck_assert_int_eq(atomic_load(&jobs_started), N_DEFAULT);
    ck_assert_int_eq(atomic_load(&args_destroyed), N_DEFAULT);
    ck_assert(wait_threads(threads, 5.0));
    ck_assert_int_eq(atomic_load(&done_calls), 0);
    assert_futures_left_pending(fs, N_DEFAULT); /* the last loop references go */
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

#define N_POOL 6

START_TEST(closing_the_loop_with_user_pool_jobs_running_lets_shutdown_join_them)
{
    int fds = tu_count_fds();
    int threads = thread_baseline();
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = NULL;
    ck_assert_int_eq(asyncio_thread_pool_executor_new(2, &ex), 0);
    asyncio_future *fs[N_POOL];
    for (int i = 0; i < N_POOL; i++)
        fs[i] = submit_slow(loop, ex, i);
    /* The last one waits behind four others on two workers: cancelled
     * before it starts, it never runs.  Its done callbacks are ordinary
     * ones, run by the loop. */
    ck_assert_int_eq(asyncio_future_cancel(fs[N_POOL - 1]), 1);
    tu_call_soon_stop(loop);
    tu_run(loop);
    ck_assert_int_eq(atomic_load(&done_calls), 1);
    ck_assert_int_eq(atomic_load(&args_destroyed), 1);
    close_without_waiting(loop);
    /* The pool is the user's and was not shut down by the loop: it still
     * takes work, and shutdown(wait=1) joins everything. */
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0);
    ck_assert_int_eq(atomic_load(&jobs_finished), N_POOL - 1);
    ck_assert_int_eq(atomic_load(&jobs_started), N_POOL - 1);
    ck_assert_uint_eq(atomic_load(&jobs_ran_mask) & (1u << (N_POOL - 1)), 0);
    ck_assert_int_eq(atomic_load(&args_destroyed), N_POOL);
    ck_assert_int_eq(atomic_load(&results_destroyed), N_POOL - 1);
    ck_assert_int_eq(atomic_load(&done_calls), 1);
    ck_assert_int_eq(asyncio_future_cancelled(fs[N_POOL - 1]), 1);
    asyncio_future_unref(fs[N_POOL - 1]);
    assert_futures_left_pending(fs, N_POOL - 1);
    asyncio_executor_unref(ex);
    ck_assert(wait_threads(threads, 5.0));
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* A user executor on the public interface: one detached thread per job,
 * no cancel.  Its state is static (destroy frees nothing) so that threads
 * still finishing never meet freed memory. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int live;
    int shut;
    atomic_int destroyed;
} tpj = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void *tpj_main(void *job)
{
    asyncio_executor_job_run(job);
    pthread_mutex_lock(&tpj.lock);
    tpj.live--;
    pthread_cond_broadcast(&tpj.idle);
    pthread_mutex_unlock(&tpj.lock);
    return NULL;
}

static int tpj_submit(void *impl, asyncio_executor_job *job)
{
    (void)impl;
    pthread_mutex_lock(&tpj.lock);
    if (tpj.shut) {
        pthread_mutex_unlock(&tpj.lock);
        return -ESHUTDOWN;
    }
    tpj.live++;
    pthread_mutex_unlock(&tpj.lock);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int err = pthread_create(&t, &attr, tpj_main, job);
    pthread_attr_destroy(&attr);
    if (err != 0) {
        pthread_mutex_lock(&tpj.lock);
        tpj.live--;
        pthread_mutex_unlock(&tpj.lock);
        return -err;
    }
    return 0;
}

static int tpj_shutdown(void *impl, int wait)
{
    (void)impl;
    pthread_mutex_lock(&tpj.lock);
    tpj.shut = 1;
    while (wait && tpj.live > 0)
        pthread_cond_wait(&tpj.idle, &tpj.lock);
    pthread_mutex_unlock(&tpj.lock);
    return 0;
}

static void tpj_destroy(void *impl)
{
    (void)impl;
    atomic_fetch_add(&tpj.destroyed, 1);
}

static const asyncio_executor_ops tpj_ops = {
    .submit = tpj_submit, .shutdown = tpj_shutdown, .destroy = tpj_destroy};

#define N_TPJ 4

START_TEST(closing_the_loop_with_user_executor_jobs_running_lets_shutdown_join_them)
{
    int fds = tu_count_fds();
    int threads = thread_baseline();
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = NULL;
    ck_assert_int_eq(asyncio_executor_new(&tpj_ops, NULL, &ex), 0);
    /* As the default executor too: close shuts it down without waiting. */
    ck_assert_int_eq(asyncio_loop_set_default_executor(loop, ex), 0);
    asyncio_future *fs[N_TPJ];
    for (int i = 0; i < N_TPJ; i++)
        fs[i] = submit_slow(loop, i % 2 ? ex : NULL, i);
    close_without_waiting(loop);
    ck_assert_int_eq(asyncio_loop_run_in_executor(loop, ex, slow_fn, NULL, NULL), ASYNCIO_ECLOSED);
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0);
    ck_assert_int_eq(atomic_load(&jobs_finished), N_TPJ);
    ck_assert_int_eq(atomic_load(&args_destroyed), N_TPJ);
    ck_assert_int_eq(atomic_load(&results_destroyed), N_TPJ);
    ck_assert_int_eq(atomic_load(&done_calls), 0);
    assert_futures_left_pending(fs, N_TPJ);
    ck_assert_int_eq(atomic_load(&tpj.destroyed), 0);
    asyncio_executor_unref(ex); /* the loop let go of its reference at close */
    ck_assert_int_eq(atomic_load(&tpj.destroyed), 1);
    ck_assert(wait_threads(threads, 5.0));
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

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
    victim v;
    victim_init(&v, loop);
    v.act = ACT_CLOSE_IN_DATA;
    const char *const argv[] = {"/bin/sh", "-c", "echo hi; exec sleep 30", NULL};
    spawn_and_run(loop, &v, argv, NULL);
    assert_victim_order(&v, 7);
    ck_assert_int_eq(v.act, ACT_NONE); /* it did close */
    ck_assert_int_eq(victim_returncode(&v), -SIGKILL);
    ck_assert_int_eq(v.lost_err, 0);
    tu_free_loop(loop);
    victim_free(&v);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(subprocess_protocol_closing_in_process_exited_hears_connection_lost_once_after)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    victim v;
    victim_init(&v, loop);
    v.act = ACT_CLOSE_IN_EXITED;
    /* Its stdout stays open after it exits, in a grandchild, so the
     * close comes while a pipe is still open. */
    const char *const argv[] = {"/bin/sh", "-c", "sleep 0.3 & exit 3", NULL};
    spawn_and_run(loop, &v, argv, NULL);
    assert_victim_order(&v, 7);
    ck_assert_int_eq(victim_returncode(&v), 3);
    ck_assert_int_eq(v.lost_err, 0);
    tu_free_loop(loop);
    victim_free(&v);
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

/* An executor future cancelled by a callback that runs just before the
 * job's completion, already posted, in the same batch: the result is
 * dropped exactly once and nothing is touched twice. */
static int quick_fn(void *arg, void **result)
{
    (void)arg;
    *result = malloc(32);
    atomic_fetch_add(&jobs_finished, 1);
    return 0;
}

static void cancel_future_cb(void *arg) { ck_assert_int_eq(asyncio_future_cancel(arg), 1); }

START_TEST(cancelling_an_executor_future_whose_completion_is_queued_drops_the_result_once)
{
    int fds = tu_count_fds();
    int threads = thread_baseline();
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_executor *ex = NULL;
    ck_assert_int_eq(asyncio_thread_pool_executor_new(1, &ex), 0);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_run_in_executor_full(loop, ex, quick_fn, NULL, count_arg_destroy,
                                                       count_result_destroy, &f),
                     0);
    ck_assert_int_eq(asyncio_future_add_done_callback(f, count_done_cb, NULL), 0);
    /* Joined: the job has run and posted its completion to the loop. */
    ck_assert_int_eq(asyncio_executor_shutdown(ex, 1), 0);
    ck_assert_int_eq(atomic_load(&jobs_finished), 1);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, cancel_future_cb, f, NULL), 0);
    stop_shortly(loop);
    tu_run(loop);
    ck_assert_int_eq(asyncio_future_cancelled(f), 1);
    ck_assert_int_eq(atomic_load(&done_calls), 1);
    ck_assert_int_eq(atomic_load(&args_destroyed), 1);
    ck_assert_int_eq(atomic_load(&results_destroyed), 1);
    asyncio_future_unref(f);
    asyncio_executor_unref(ex);
    tu_free_loop(loop);
    ck_assert(wait_threads(threads, 5.0));
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* ---- The suite ---------------------------------------------------------------------- */

static Suite *faults_proc_suite(void)
{
    Suite *s = suite_create("faults-proc");
    TCase *tc = tcase_create("killed child");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, child_killed_by_transport_kill_while_its_full_stdin_waits);
    tcase_add_test(tc, child_killed_by_send_signal_while_it_reads_its_stdin);
    tcase_add_test(tc, child_killed_by_kill_2_from_outside_while_it_reads_its_stdin);
    tcase_add_test(tc, child_killed_by_kill_2_from_outside_while_its_full_stdin_waits);
    tcase_add_test(tc, write_pipe_whose_reader_is_killed_loses_with_epipe_once);
    tcase_add_test(tc, writing_to_the_stdin_of_a_child_just_killed_fails_with_epipe_not_sigpipe);
    suite_add_tcase(s, tc);

    tc = tcase_create("signal burst");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, thousand_signals_from_this_process_run_the_handler_as_loop_callbacks);
    tcase_add_test(tc, thousand_signals_of_two_kinds_run_both_handlers);
    tcase_add_test(tc, thousand_signals_from_a_child_process_run_the_handler_as_loop_callbacks);
    suite_add_tcase(s, tc);

    tc = tcase_create("close with executor jobs");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, closing_the_loop_with_default_executor_jobs_running_drops_their_completions);
    tcase_add_test(tc, closing_the_loop_with_user_pool_jobs_running_lets_shutdown_join_them);
    tcase_add_test(tc, closing_the_loop_with_user_executor_jobs_running_lets_shutdown_join_them);
    tcase_add_test(tc,
                   cancelling_an_executor_future_whose_completion_is_queued_drops_the_result_once);
    suite_add_tcase(s, tc);

    tc = tcase_create("re-entrant close");
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

int main(void) { return tu_run_suite(faults_proc_suite()); }
