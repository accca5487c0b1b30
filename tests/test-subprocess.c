/* Subprocesses: subprocess_exec and subprocess_shell with real children
 * (/bin/echo, /bin/sh, /bin/cat, /bin/true, /bin/false), their stdio
 * options, the subprocess transport's calls, the protocol's order, close
 * and loop close, reaping on a loop in another thread.
 *
 * Every test counts /proc/self/fd before and after (no fd leaked) and
 * ends by asserting that this process has no child left, neither running
 * nor a zombie (waitpid(-1, WNOHANG) fails with ECHILD): the library
 * reaped every child it started. */
#define _GNU_SOURCE /* pipe2 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- A recording protocol ---------------------------------------------------------- */

enum { EV_MADE = 1, EV_PIPE_LOST = 10 /* + fd */, EV_EXITED = 20, EV_LOST = 30 };

typedef struct proc proc;
struct proc {
    asyncio_protocol base;
    asyncio_loop *loop;
    asyncio_transport *t; /* a reference, taken in connection_made */
    tu_recorder events;   /* EV_*, data excluded */
    char *out[3];         /* what came on fd 1 and 2 */
    size_t outlen[3], outcap[3];
    int pipe_lost_err[3];
    int lost_err;
    int returncode_at_exit;
    int stop_on_lost;         /* stop the loop at connection_lost */
    int *live;                /* decremented at connection_lost; 0 stops */
    void (*on_made)(proc *p); /* test hooks, may be NULL */
    void (*on_pipe_lost)(proc *p, int fd);
    void (*on_exited)(proc *p);
    void (*on_data)(proc *p, int fd);
};

static void p_made(asyncio_protocol *self, asyncio_transport *t)
{
    proc *p = (proc *)self;
    tu_rec_push(&p->events, EV_MADE);
    asyncio_transport_ref(t);
    p->t = t;
    if (p->on_made != NULL)
        p->on_made(p);
}

static void p_data(asyncio_protocol *self, int fd, const void *data, size_t len)
{
    proc *p = (proc *)self;
    ck_assert_msg(fd == 1 || fd == 2, "pipe_data_received on fd %d", fd);
    ck_assert_int_gt(len, 0);
    if (p->outlen[fd] + len > p->outcap[fd]) {
        size_t cap = p->outcap[fd] ? p->outcap[fd] : 256;
        while (cap < p->outlen[fd] + len)
            cap *= 2;
        p->out[fd] = realloc(p->out[fd], cap + 1);
        ck_assert_ptr_nonnull(p->out[fd]);
        p->outcap[fd] = cap;
    }
    memcpy(p->out[fd] + p->outlen[fd], data, len);
    p->outlen[fd] += len;
    p->out[fd][p->outlen[fd]] = '\0';
    if (p->on_data != NULL)
        p->on_data(p, fd);
}

static void p_pipe_lost(asyncio_protocol *self, int fd, int error)
{
    proc *p = (proc *)self;
    ck_assert_msg(fd >= 0 && fd <= 2, "pipe_connection_lost on fd %d", fd);
    tu_rec_push(&p->events, EV_PIPE_LOST + fd);
    p->pipe_lost_err[fd] = error;
    if (p->on_pipe_lost != NULL)
        p->on_pipe_lost(p, fd);
}

static void p_exited(asyncio_protocol *self)
{
    proc *p = (proc *)self;
    tu_rec_push(&p->events, EV_EXITED);
    ck_assert_int_eq(asyncio_transport_get_returncode(p->t, &p->returncode_at_exit), 0);
    if (p->on_exited != NULL)
        p->on_exited(p);
}

static void p_lost(asyncio_protocol *self, int error)
{
    proc *p = (proc *)self;
    tu_rec_push(&p->events, EV_LOST);
    p->lost_err = error;
    if (p->live != NULL) {
        if (--*p->live == 0)
            asyncio_loop_stop(p->loop);
    } else if (p->stop_on_lost) {
        asyncio_loop_stop(p->loop);
    }
}

static const asyncio_protocol_ops proc_ops = {
    .connection_made = p_made,
    .connection_lost = p_lost,
    .pipe_data_received = p_data,
    .pipe_connection_lost = p_pipe_lost,
    .process_exited = p_exited,
};

static void proc_init(proc *p, asyncio_loop *loop)
{
    memset(p, 0, sizeof(*p));
    p->base.ops = &proc_ops;
    p->loop = loop;
    p->stop_on_lost = 1;
    tu_rec_init(&p->events);
    for (int i = 0; i < 3; i++)
        p->pipe_lost_err[i] = 12345;
}

static void proc_free(proc *p)
{
    asyncio_transport_unref(p->t);
    for (int i = 0; i < 3; i++)
        free(p->out[i]);
    tu_rec_free(&p->events);
}

static asyncio_protocol *proc_factory(void *arg) { return &((proc *)arg)->base; }

static int factory_calls;
static asyncio_protocol *counting_factory(void *arg)
{
    factory_calls++;
    return &((proc *)arg)->base;
}

static int count(const tu_recorder *r, int value)
{
    int n = 0;
    for (size_t i = 0; i < r->len; i++)
        n += r->v[i] == value;
    return n;
}

static int position(const tu_recorder *r, int value)
{
    for (size_t i = 0; i < r->len; i++)
        if (r->v[i] == value)
            return (int)i;
    return -1;
}

/* asyncio's promises for a child whose pipes are `piped` (bit i: fd i):
 * connection_made first, each pipe lost once, process_exited once,
 * connection_lost last and once. */
static void assert_protocol_order(const proc *p, int piped)
{
    const tu_recorder *r = &p->events;
    ck_assert_int_ge(r->len, 3);
    ck_assert_int_eq(r->v[0], EV_MADE);
    ck_assert_int_eq(r->v[r->len - 1], EV_LOST);
    ck_assert_int_eq(count(r, EV_MADE), 1);
    ck_assert_int_eq(count(r, EV_EXITED), 1);
    ck_assert_int_eq(count(r, EV_LOST), 1);
    for (int fd = 0; fd < 3; fd++)
        ck_assert_int_eq(count(r, EV_PIPE_LOST + fd), (piped >> fd) & 1);
    ck_assert_int_eq(r->len, 3 + __builtin_popcount((unsigned)piped));
}

static void assert_no_children(void)
{
    int rc = waitpid(-1, NULL, WNOHANG);
    ck_assert_msg(rc == -1 && errno == ECHILD,
                  "a child is left (running or a zombie): waitpid(-1) = %d", rc);
}

/* Spawn argv with `opts` (NULL: three pipes), run until connection_lost,
 * assert the future's result is the transport. */
static void run_child(asyncio_loop *loop, proc *p, const char *const argv[],
                      const asyncio_subprocess_options *opts)
{
    asyncio_future *f = NULL;
    int rc = asyncio_loop_subprocess_exec(loop, proc_factory, p, argv, opts, &f);
    ck_assert_msg(rc == 0, "subprocess_exec(%s): %d (%s)", argv[0], rc, asyncio_strerror(rc));
    tu_run(loop);
    ck_assert_int_eq(asyncio_future_done(f), 1);
    void *result = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &result), 0);
    ck_assert_ptr_eq(result, p->t);
    asyncio_future_unref(f);
}

static int returncode(const proc *p)
{
    int rc = 12345;
    ck_assert_int_eq(asyncio_transport_get_returncode(p->t, &rc), 0);
    return rc;
}

static const asyncio_subprocess_options no_pipes = {
    .stdin_fd = ASYNCIO_DEVNULL, .stdout_fd = ASYNCIO_DEVNULL, .stderr_fd = ASYNCIO_DEVNULL};

/* ---- Running programs ---------------------------------------------------------------- */

START_TEST(echo_hello_arrives_through_pipe_data_received)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    const char *const argv[] = {"/bin/echo", "hello", NULL};
    run_child(loop, &p, argv, NULL);
    ck_assert_str_eq(p.out[1], "hello\n");
    ck_assert_int_eq(p.outlen[2], 0);
    ck_assert_int_eq(returncode(&p), 0);
    ck_assert_int_eq(p.returncode_at_exit, 0);
    assert_protocol_order(&p, 7);
    ck_assert_int_eq(p.pipe_lost_err[1], 0);
    ck_assert_int_eq(p.pipe_lost_err[2], 0);
    ck_assert_int_eq(p.lost_err, 0);
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

static void check_exit_code(const char *const argv[], int want)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    run_child(loop, &p, argv, &no_pipes);
    ck_assert_int_eq(returncode(&p), want);
    ck_assert_int_eq(p.returncode_at_exit, want);
    assert_protocol_order(&p, 0);
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}

START_TEST(exit_codes_become_the_returncode)
{
    const char *const t[] = {"/bin/true", NULL};
    const char *const f[] = {"/bin/false", NULL};
    const char *const e42[] = {"/bin/sh", "-c", "exit 42", NULL};
    const char *const path[] = {"true", NULL}; /* looked up in PATH */
    check_exit_code(t, 0);
    check_exit_code(f, 1);
    check_exit_code(e42, 42);
    check_exit_code(path, 0);
}
END_TEST

START_TEST(shell_exit_codes_become_the_returncode)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    const char *cmds[] = {"exit 0", "exit 7", "false", "kill -TERM $$", "exit 255"};
    const int want[] = {0, 7, 1, -SIGTERM, 255};
    for (int i = 0; i < 5; i++) {
        proc p;
        proc_init(&p, loop);
        asyncio_future *f = NULL;
        ck_assert_int_eq(
            asyncio_loop_subprocess_shell(loop, proc_factory, &p, cmds[i], &no_pipes, &f), 0);
        tu_run(loop);
        ck_assert_msg(returncode(&p) == want[i], "%s: returncode %d, want %d", cmds[i],
                      returncode(&p), want[i]);
        assert_protocol_order(&p, 0);
        asyncio_future_unref(f);
        proc_free(&p);
    }
    tu_free_loop(loop);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* The future of a subprocess call whose program cannot be run: it has
 * failed with the exec's errno by the time the call returns. */
static int exec_error(asyncio_loop *loop, proc *p, const char *const argv[],
                      const asyncio_subprocess_options *o)
{
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_subprocess_exec(loop, counting_factory, p, argv, o, &f), 0);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), asyncio_future_exception(f));
    int err = asyncio_future_exception(f);
    asyncio_future_unref(f);
    return err;
}

START_TEST(a_missing_program_fails_the_future_with_enoent)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    factory_calls = 0;
    const char *const abs[] = {"/nonexistent/program", NULL};
    const char *const rel[] = {"no-such-program-in-path-xyz", NULL};
    ck_assert_int_eq(exec_error(loop, &p, abs, NULL), -ENOENT);
    ck_assert_int_eq(exec_error(loop, &p, rel, NULL), -ENOENT);
    ck_assert_int_eq(factory_calls, 0);
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(a_file_that_is_not_executable_fails_the_future_with_eacces)
{
    int fds = tu_count_fds();
    char path[] = "/tmp/test-subprocess-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "#!/bin/sh\nexit 0\n", 17), 17);
    close(fd);
    ck_assert_int_eq(chmod(path, 0644), 0);
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    factory_calls = 0;
    const char *const argv[] = {path, NULL};
    int rc = exec_error(loop, &p, argv, NULL);
    unlink(path);
    ck_assert_int_eq(rc, -EACCES);
    ck_assert_int_eq(factory_calls, 0);
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(a_missing_cwd_fails_the_future_with_enoent)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    factory_calls = 0;
    asyncio_subprocess_options o = ASYNCIO_SUBPROCESS_OPTIONS_INIT;
    o.cwd = "/nonexistent/dir";
    const char *const argv[] = {"/bin/true", NULL};
    ck_assert_int_eq(exec_error(loop, &p, argv, &o), -ENOENT);
    ck_assert_int_eq(factory_calls, 0);
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(cwd_and_env_reach_the_child)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    char *const env[] = {"FOO=bar baz", NULL};
    asyncio_subprocess_options o = ASYNCIO_SUBPROCESS_OPTIONS_INIT;
    o.cwd = "/";
    o.env = env;
    const char *const argv[] = {"/bin/sh", "-c", "echo \"$FOO\"; pwd; echo \"[$HOME]\"", NULL};
    run_child(loop, &p, argv, &o);
    ck_assert_str_eq(p.out[1], "bar baz\n/\n[]\n");
    ck_assert_int_eq(returncode(&p), 0);
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(a_null_env_inherits_the_environment)
{
    int fds = tu_count_fds();
    ck_assert_int_eq(setenv("TEST_SUBPROCESS_VAR", "inherited", 1), 0);
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    const char *const argv[] = {"/bin/sh", "-c", "echo $TEST_SUBPROCESS_VAR", NULL};
    run_child(loop, &p, argv, NULL);
    ck_assert_str_eq(p.out[1], "inherited\n");
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* ---- Pipes --------------------------------------------------------------------------- */

#define MIB (1024 * 1024)

static unsigned char *pattern(size_t n)
{
    unsigned char *b = malloc(n);
    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 7 + i / 251);
    return b;
}

static unsigned char *g_payload;

static void write_payload_then_close(proc *p)
{
    asyncio_transport *in = asyncio_transport_get_pipe_transport(p->t, 0);
    ck_assert_ptr_nonnull(in);
    ck_assert_int_eq(asyncio_transport_write(in, g_payload, MIB), 0);
    ck_assert_int_eq(asyncio_transport_close(in), 0);
}

START_TEST(a_mebibyte_goes_through_cat_both_ways)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    g_payload = pattern(MIB);
    proc p;
    proc_init(&p, loop);
    p.on_made = write_payload_then_close;
    const char *const argv[] = {"/bin/cat", NULL};
    run_child(loop, &p, argv, NULL);
    ck_assert_int_eq(p.outlen[1], MIB);
    ck_assert(memcmp(p.out[1], g_payload, MIB) == 0);
    ck_assert_int_eq(returncode(&p), 0);
    assert_protocol_order(&p, 7);
    ck_assert_int_eq(p.pipe_lost_err[0], 0);
    ck_assert_int_eq(p.pipe_lost_err[1], 0);
    tu_free_loop(loop);
    proc_free(&p);
    free(g_payload);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(stderr_merged_into_stdout_arrives_on_fd_1)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    asyncio_subprocess_options o = ASYNCIO_SUBPROCESS_OPTIONS_INIT;
    o.stdin_fd = ASYNCIO_DEVNULL;
    o.stderr_fd = ASYNCIO_STDOUT;
    const char *const argv[] = {"/bin/sh", "-c", "echo out; echo err >&2; echo out2", NULL};
    run_child(loop, &p, argv, &o);
    ck_assert_str_eq(p.out[1], "out\nerr\nout2\n");
    ck_assert_int_eq(p.outlen[2], 0);
    ck_assert_ptr_null(asyncio_transport_get_pipe_transport(p.t, 0));
    ck_assert_ptr_nonnull(asyncio_transport_get_pipe_transport(p.t, 1));
    ck_assert_ptr_null(asyncio_transport_get_pipe_transport(p.t, 2));
    ck_assert_ptr_null(asyncio_transport_get_pipe_transport(p.t, 3));
    assert_protocol_order(&p, 2);
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(stderr_merged_into_an_inherited_stdout_follows_it)
{
    int fds = tu_count_fds();
    /* Our own fd 1 becomes a pipe (a forked test may do that). */
    int pp[2];
    ck_assert_int_eq(pipe(pp), 0);
    int saved = dup(1);
    ck_assert_int_eq(dup2(pp[1], 1), 1);
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    asyncio_subprocess_options o = ASYNCIO_SUBPROCESS_OPTIONS_INIT;
    o.stdin_fd = ASYNCIO_DEVNULL;
    o.stdout_fd = ASYNCIO_INHERIT;
    o.stderr_fd = ASYNCIO_STDOUT;
    const char *const argv[] = {"/bin/sh", "-c", "echo out; echo err >&2", NULL};
    run_child(loop, &p, argv, &o);
    dup2(saved, 1);
    close(saved);
    close(pp[1]);
    char buf[64] = {0};
    ck_assert_int_eq(read(pp[0], buf, sizeof(buf) - 1), 8);
    close(pp[0]);
    ck_assert_str_eq(buf, "out\nerr\n");
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* Our fds 1 and 2 are pipes A and B; the child gets stdout = our 2 and
 * stderr = our 1: a naive dup2 sequence would send both to the same one. */
START_TEST(callers_low_fds_may_be_swapped)
{
    int fds = tu_count_fds();
    int a[2], b[2];
    ck_assert_int_eq(pipe(a), 0);
    ck_assert_int_eq(pipe(b), 0);
    int saved1 = dup(1), saved2 = dup(2);
    ck_assert_int_eq(dup2(a[1], 1), 1);
    ck_assert_int_eq(dup2(b[1], 2), 2);
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    asyncio_subprocess_options o = ASYNCIO_SUBPROCESS_OPTIONS_INIT;
    o.stdin_fd = ASYNCIO_DEVNULL;
    o.stdout_fd = 2;
    o.stderr_fd = 1;
    const char *const argv[] = {"/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2", NULL};
    asyncio_future *f = NULL;
    int rc = asyncio_loop_subprocess_exec(loop, proc_factory, &p, argv, &o, &f);
    if (rc == 0)
        tu_run(loop);
    dup2(saved1, 1);
    dup2(saved2, 2);
    close(saved1);
    close(saved2);
    close(a[1]);
    close(b[1]);
    ck_assert_int_eq(rc, 0);
    char bufa[64] = {0}, bufb[64] = {0};
    ck_assert_int_gt(read(a[0], bufa, sizeof(bufa) - 1), 0);
    ck_assert_int_gt(read(b[0], bufb, sizeof(bufb) - 1), 0);
    close(a[0]);
    close(b[0]);
    ck_assert_str_eq(bufb, "to-stdout\n"); /* our 2 */
    ck_assert_str_eq(bufa, "to-stderr\n"); /* our 1 */
    asyncio_future_unref(f);
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(an_fd_of_ours_becomes_the_childs_stdout_and_stays_ours)
{
    int fds = tu_count_fds();
    int pp[2];
    ck_assert_int_eq(pipe2(pp, O_CLOEXEC), 0);
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    asyncio_subprocess_options o = ASYNCIO_SUBPROCESS_OPTIONS_INIT;
    o.stdin_fd = ASYNCIO_DEVNULL;
    o.stdout_fd = pp[1];
    o.stderr_fd = ASYNCIO_DEVNULL;
    const char *const argv[] = {"/bin/echo", "via fd", NULL};
    run_child(loop, &p, argv, &o);
    ck_assert_int_ge(fcntl(pp[1], F_GETFD), 0); /* still open: the caller's */
    close(pp[1]);
    char buf[64] = {0};
    ck_assert_int_eq(read(pp[0], buf, sizeof(buf) - 1), 7);
    ck_assert_str_eq(buf, "via fd\n");
    close(pp[0]);
    assert_protocol_order(&p, 0);
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* /bin/true exits at once while a mebibyte waits for its stdin: the write
 * fails with EPIPE (no SIGPIPE kills us), the stdin pipe reports it. */
static void write_payload_keep_open(proc *p)
{
    asyncio_transport *in = asyncio_transport_get_pipe_transport(p->t, 0);
    ck_assert_ptr_nonnull(in);
    ck_assert_int_eq(asyncio_transport_write(in, g_payload, MIB), 0);
}

START_TEST(a_child_exiting_while_we_write_its_stdin_ends_the_stdin_pipe)
{
    int fds = tu_count_fds();
    signal(SIGPIPE, SIG_DFL); /* an EPIPE must not become a signal */
    asyncio_loop *loop = tu_new_guarded_loop();
    g_payload = pattern(MIB);
    proc p;
    proc_init(&p, loop);
    p.on_made = write_payload_keep_open;
    const char *const argv[] = {"/bin/true", NULL};
    run_child(loop, &p, argv, NULL);
    ck_assert_int_eq(returncode(&p), 0);
    assert_protocol_order(&p, 7);
    ck_assert_int_eq(p.pipe_lost_err[0], -EPIPE);
    ck_assert_int_eq(p.lost_err, 0);
    asyncio_transport *in = asyncio_transport_get_pipe_transport(p.t, 0);
    ck_assert_int_eq(asyncio_transport_write(in, "x", 1), -EPIPE);
    tu_free_loop(loop);
    proc_free(&p);
    free(g_payload);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* The far end of each pipe closes while the child lives on: each pipe
 * reports pipe_connection_lost(fd, 0) before the process exits (we then
 * end it). */
static void kill_when_all_pipes_lost(proc *p, int fd)
{
    (void)fd;
    if (count(&p->events, EV_PIPE_LOST + 0) && count(&p->events, EV_PIPE_LOST + 1) &&
        count(&p->events, EV_PIPE_LOST + 2)) {
        ck_assert_int_eq(count(&p->events, EV_EXITED), 0);
        ck_assert_int_eq(asyncio_transport_terminate(p->t), 0);
    }
}

START_TEST(pipes_report_connection_lost_when_the_far_end_closes)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    p.on_pipe_lost = kill_when_all_pipes_lost;
    const char *const argv[] = {"/bin/sh", "-c", "exec 0<&- 1>&- 2>&-; exec sleep 10", NULL};
    run_child(loop, &p, argv, NULL);
    ck_assert_int_eq(returncode(&p), -SIGTERM);
    assert_protocol_order(&p, 7);
    ck_assert_int_lt(position(&p.events, EV_PIPE_LOST + 0), position(&p.events, EV_EXITED));
    ck_assert_int_lt(position(&p.events, EV_PIPE_LOST + 1), position(&p.events, EV_EXITED));
    ck_assert_int_lt(position(&p.events, EV_PIPE_LOST + 2), position(&p.events, EV_EXITED));
    ck_assert_int_eq(p.pipe_lost_err[0], 0);
    ck_assert_int_eq(p.pipe_lost_err[1], 0);
    ck_assert_int_eq(p.pipe_lost_err[2], 0);
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* The process exits while a grandchild holds its stdout open (and waits
 * on its stdin): process_exited comes first, connection_lost waits for
 * the pipes.  The grandchild goes on only when process_exited has come. */
static void release_grandchild(proc *p)
{
    asyncio_transport *in = asyncio_transport_get_pipe_transport(p->t, 0);
    ck_assert_int_eq(count(&p->events, EV_PIPE_LOST + 1), 0);
    ck_assert_int_eq(asyncio_transport_write(in, "go\n", 3), 0);
    ck_assert_int_eq(asyncio_transport_close(in), 0);
}

START_TEST(connection_lost_waits_for_the_pipes_after_the_exit)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    p.on_exited = release_grandchild;
    asyncio_subprocess_options o = ASYNCIO_SUBPROCESS_OPTIONS_INIT;
    o.stdin_fd = ASYNCIO_PIPE;
    o.stdout_fd = ASYNCIO_PIPE;
    o.stderr_fd = ASYNCIO_DEVNULL;
    /* An asynchronous list's stdin is /dev/null unless redirected: fd 3
     * carries the pipe over. */
    const char *const argv[] = {"/bin/sh", "-c",
                                "exec 3<&0; (read x <&3; echo \"late $x\") & exit 3", NULL};
    run_child(loop, &p, argv, &o);
    ck_assert_int_eq(returncode(&p), 3);
    assert_protocol_order(&p, 3);
    ck_assert_int_lt(position(&p.events, EV_EXITED), position(&p.events, EV_PIPE_LOST + 1));
    ck_assert_str_eq(p.out[1], "late go\n");
    tu_free_loop(loop);
    proc_free(&p);
    /* The grandchild was not ours to reap (it was reparented). */
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* ---- Signals, kill, terminate, close ---------------------------------------------------- */

static void kill_on_made(proc *p)
{
    int rc = 0;
    ck_assert_int_eq(asyncio_transport_get_returncode(p->t, &rc), ASYNCIO_EINVALSTATE);
    ck_assert_int_gt(asyncio_transport_get_pid(p->t), 0);
    ck_assert_int_eq(asyncio_transport_kill(p->t), 0);
}

static void terminate_on_made(proc *p) { ck_assert_int_eq(asyncio_transport_terminate(p->t), 0); }

static void usr1_on_made(proc *p)
{
    ck_assert_int_eq(asyncio_transport_send_signal(p->t, SIGUSR1), 0);
}

static void signal_child(void (*hook)(proc *), int want)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    p.on_made = hook;
    const char *const argv[] = {"/bin/cat", NULL}; /* waits on its stdin pipe */
    run_child(loop, &p, argv, NULL);
    ck_assert_int_eq(returncode(&p), want);
    assert_protocol_order(&p, 7);
    /* Reaped: the pid may be anybody's now and is never signalled. */
    ck_assert_int_eq(asyncio_transport_kill(p.t), -ESRCH);
    ck_assert_int_eq(asyncio_transport_send_signal(p.t, 0), -ESRCH);
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}

START_TEST(kill_gives_returncode_minus_sigkill) { signal_child(kill_on_made, -SIGKILL); }
END_TEST

START_TEST(terminate_gives_returncode_minus_sigterm) { signal_child(terminate_on_made, -SIGTERM); }
END_TEST

START_TEST(send_signal_delivers_the_signal) { signal_child(usr1_on_made, -SIGUSR1); }
END_TEST

START_TEST(send_signal_rejects_an_invalid_signal)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    p.on_made = kill_on_made;
    const char *const argv[] = {"/bin/sleep", "10", NULL};
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_subprocess_exec(loop, proc_factory, &p, argv, &no_pipes, &f), 0);
    ck_assert_int_eq(asyncio_transport_send_signal(NULL, SIGTERM), -EINVAL);
    tu_run(loop);
    ck_assert_int_eq(asyncio_transport_send_signal(p.t, -1), -EINVAL);
    ck_assert_int_eq(asyncio_transport_send_signal(p.t, 100000), -EINVAL);
    asyncio_future_unref(f);
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

static pid_t g_pid;

static void close_on_made(proc *p)
{
    g_pid = asyncio_transport_get_pid(p->t);
    ck_assert_int_eq(asyncio_transport_is_closing(p->t), 0);
    ck_assert_int_eq(asyncio_transport_close(p->t), 0);
    ck_assert_int_eq(asyncio_transport_is_closing(p->t), 1);
    ck_assert_int_eq(asyncio_transport_close(p->t), 0); /* idempotent */
}

START_TEST(close_kills_a_running_child_and_still_reaps_it)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    p.on_made = close_on_made;
    const char *const argv[] = {"/bin/sleep", "10", NULL};
    run_child(loop, &p, argv, NULL);
    ck_assert_int_eq(returncode(&p), -SIGKILL);
    assert_protocol_order(&p, 7);
    ck_assert_int_eq(p.lost_err, 0);
    /* Reaped by the library: the pid names nobody (no zombie either). */
    ck_assert_int_eq(kill(g_pid, 0), -1);
    ck_assert_int_eq(errno, ESRCH);
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

static void stop_on_made(proc *p)
{
    g_pid = asyncio_transport_get_pid(p->t);
    asyncio_loop_stop(p->loop);
}

START_TEST(loop_close_kills_and_reaps_a_running_child)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    p.on_made = stop_on_made;
    const char *const argv[] = {"/bin/sleep", "10", NULL};
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_subprocess_exec(loop, proc_factory, &p, argv, NULL, &f), 0);
    tu_run(loop);
    ck_assert_int_eq(kill(g_pid, 0), 0); /* still running */
    tu_free_loop(loop);
    /* The protocol heard connection_lost alone: neither pipe_connection_lost
     * nor process_exited after the loop closed. */
    int want[] = {EV_MADE, EV_LOST};
    tu_rec_expect(&p.events, want, 2);
    ck_assert_int_eq(p.lost_err, ASYNCIO_ECLOSED);
    ck_assert_int_eq(returncode(&p), -SIGKILL);
    ck_assert_int_eq(kill(g_pid, 0), -1);
    ck_assert_int_eq(errno, ESRCH);
    asyncio_future_unref(f);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(loop_close_before_connection_made_fails_the_future_with_eclosed)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    const char *const argv[] = {"/bin/sleep", "10", NULL};
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_subprocess_exec(loop, proc_factory, &p, argv, NULL, &f), 0);
    tu_free_loop(loop);
    int want[] = {EV_LOST};
    tu_rec_expect(&p.events, want, 1);
    ck_assert_int_eq(p.lost_err, ASYNCIO_ECLOSED);
    ck_assert_int_eq(asyncio_future_exception(f), ASYNCIO_ECLOSED);
    asyncio_future_unref(f);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* ---- The child's environment: fds, signals ------------------------------------------------ */

START_TEST(the_child_gets_no_fd_beyond_2)
{
    int fds = tu_count_fds();
    /* An fd without close-on-exec, as careless code elsewhere makes. */
    int leaky = open("/dev/null", O_RDONLY);
    ck_assert_int_ge(leaky, 3);
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    /* ls lists its own fds: 0-2 and the one it opened for the listing. */
    const char *const argv[] = {"/bin/ls", "/proc/self/fd", NULL};
    run_child(loop, &p, argv, NULL);
    ck_assert_str_eq(p.out[1], "0\n1\n2\n3\n");
    close(leaky);
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(the_childs_signals_are_default_and_unblocked)
{
    int fds = tu_count_fds();
    /* Ignored and blocked here: neither may reach the child. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGRTMIN + 1, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGTERM);
    ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    const char *const argv[] = {"/bin/grep", "^Sig\\(Blk\\|Ign\\)", "/proc/self/status", NULL};
    run_child(loop, &p, argv, NULL);
    unsigned long long blk = 1, ign = 1;
    ck_assert_int_eq(sscanf(p.out[1], "SigBlk:\t%llx\nSigIgn:\t%llx", &blk, &ign), 2);
    ck_assert_uint_eq(blk, 0);
    /* Signals 32 and 33 (bits 31, 32) are glibc's own, below SIGRTMIN:
     * its posix_spawn leaves them ignored in the child, whatever we ask. */
    ck_assert_uint_eq(ign & ~(3ULL << 31), 0);
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* ---- Many children, threads ------------------------------------------------------------ */

START_TEST(a_hundred_concurrent_children_are_all_reaped)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    enum { N = 100 };
    static proc ps[N];
    int live = N;
    for (int i = 0; i < N; i++) {
        proc_init(&ps[i], loop);
        ps[i].live = &live;
        char cmd[32];
        snprintf(cmd, sizeof(cmd), "exit %d", i % 50);
        /* Half with three pipes, half with none. */
        ck_assert_int_eq(asyncio_loop_subprocess_shell(loop, proc_factory, &ps[i], cmd,
                                                       i % 2 ? &no_pipes : NULL, NULL),
                         0);
    }
    tu_run(loop);
    ck_assert_int_eq(live, 0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(returncode(&ps[i]), i % 50);
        assert_protocol_order(&ps[i], i % 2 ? 0 : 7);
        proc_free(&ps[i]);
    }
    tu_free_loop(loop);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* A loop in another thread spawns and reaps; that thread records, the
 * test's thread asserts. */
typedef struct {
    int spawn_rc, run_rc, close_rc;
    int returncode, events;
    char out[32];
} thread_result;

static void *thread_main(void *arg)
{
    thread_result *r = arg;
    asyncio_loop *loop = NULL;
    if (asyncio_new_event_loop(&loop) != 0)
        return NULL;
    proc p;
    memset(&p, 0, sizeof(p));
    p.base.ops = &proc_ops;
    p.loop = loop;
    p.stop_on_lost = 1;
    tu_rec_init(&p.events);
    const char *const argv[] = {"/bin/sh", "-c", "echo threaded; exit 5", NULL};
    r->spawn_rc = asyncio_loop_subprocess_exec(loop, proc_factory, &p, argv, NULL, NULL);
    if (r->spawn_rc == 0)
        r->run_rc = asyncio_loop_run_forever(loop);
    if (p.t != NULL)
        asyncio_transport_get_returncode(p.t, &r->returncode);
    r->events = (int)p.events.len;
    if (p.out[1] != NULL)
        snprintf(r->out, sizeof(r->out), "%s", p.out[1]);
    r->close_rc = asyncio_loop_close(loop);
    asyncio_loop_unref(loop);
    proc_free(&p);
    return NULL;
}

START_TEST(a_loop_in_another_thread_reaps_its_children)
{
    int fds = tu_count_fds();
    thread_result r;
    memset(&r, 0, sizeof(r));
    r.returncode = -1000;
    /* SIGCHLD blocked here and in the thread: reaping needs no signal. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, thread_main, &r), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(r.spawn_rc, 0);
    ck_assert_int_eq(r.run_rc, 0);
    ck_assert_int_eq(r.close_rc, 0);
    ck_assert_int_eq(r.returncode, 5);
    ck_assert_int_eq(r.events, 6); /* made, 3 pipes lost, exited, lost */
    ck_assert_str_eq(r.out, "threaded\n");
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

/* ---- Creation ------------------------------------------------------------------------- */

START_TEST(invalid_arguments_return_einval)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    factory_calls = 0;
    const char *const argv[] = {"/bin/true", NULL};
    const char *const empty[] = {NULL};
    asyncio_subprocess_options o = ASYNCIO_SUBPROCESS_OPTIONS_INIT;
    ck_assert_int_eq(asyncio_loop_subprocess_exec(NULL, counting_factory, &p, argv, NULL, NULL),
                     -EINVAL);
    ck_assert_int_eq(asyncio_loop_subprocess_exec(loop, NULL, &p, argv, NULL, NULL), -EINVAL);
    ck_assert_int_eq(asyncio_loop_subprocess_exec(loop, counting_factory, &p, NULL, NULL, NULL),
                     -EINVAL);
    ck_assert_int_eq(asyncio_loop_subprocess_exec(loop, counting_factory, &p, empty, NULL, NULL),
                     -EINVAL);
    ck_assert_int_eq(asyncio_loop_subprocess_shell(loop, counting_factory, &p, NULL, NULL, NULL),
                     -EINVAL);
    o.stdin_fd = ASYNCIO_STDOUT;
    ck_assert_int_eq(asyncio_loop_subprocess_exec(loop, counting_factory, &p, argv, &o, NULL),
                     -EINVAL);
    o.stdin_fd = ASYNCIO_PIPE;
    o.stdout_fd = ASYNCIO_STDOUT;
    ck_assert_int_eq(asyncio_loop_subprocess_exec(loop, counting_factory, &p, argv, &o, NULL),
                     -EINVAL);
    o.stdout_fd = ASYNCIO_PIPE;
    o.stderr_fd = -5;
    ck_assert_int_eq(asyncio_loop_subprocess_exec(loop, counting_factory, &p, argv, &o, NULL),
                     -EINVAL);
    ck_assert_int_eq(factory_calls, 0);
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(a_closed_loop_returns_eclosed)
{
    asyncio_loop *loop = tu_new_loop();
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    proc p;
    proc_init(&p, loop);
    const char *const argv[] = {"/bin/true", NULL};
    ck_assert_int_eq(asyncio_loop_subprocess_exec(loop, proc_factory, &p, argv, NULL, NULL),
                     ASYNCIO_ECLOSED);
    asyncio_loop_unref(loop);
    proc_free(&p);
    assert_no_children();
}
END_TEST

static asyncio_protocol *refusing_factory(void *arg)
{
    (void)arg;
    return NULL;
}

START_TEST(a_factory_returning_null_kills_the_child_and_fails_with_econnaborted)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    const char *const argv[] = {"/bin/sleep", "10", NULL};
    ck_assert_int_eq(asyncio_loop_subprocess_exec(loop, refusing_factory, NULL, argv, NULL, NULL),
                     -ECONNABORTED);
    assert_no_children(); /* killed and reaped inside the call */
    /* The pipes it had made close in the loop's next pass. */
    tu_call_soon_stop(loop);
    tu_run(loop);
    tu_free_loop(loop);
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

static void cancel_future_cb(void *f) { asyncio_future_cancel(f); }

START_TEST(cancelling_the_future_closes_the_transport)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    const char *const argv[] = {"/bin/sleep", "10", NULL};
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_subprocess_exec(loop, proc_factory, &p, argv, NULL, &f), 0);
    /* Cancelled before the start handle runs: it closes (kills) the child. */
    cancel_future_cb(f);
    tu_run(loop);
    ck_assert_int_eq(asyncio_future_cancelled(f), 1);
    ck_assert_int_eq(returncode(&p), -SIGKILL);
    assert_protocol_order(&p, 7);
    asyncio_future_unref(f);
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

START_TEST(the_subprocess_transport_refuses_stream_calls)
{
    int fds = tu_count_fds();
    asyncio_loop *loop = tu_new_guarded_loop();
    proc p;
    proc_init(&p, loop);
    const char *const argv[] = {"/bin/true", NULL};
    run_child(loop, &p, argv, &no_pipes);
    ck_assert_int_eq(asyncio_transport_write(p.t, "x", 1), -ENOTSUP);
    ck_assert_int_eq(asyncio_transport_pause_reading(p.t), -ENOTSUP);
    ck_assert_ptr_null(asyncio_transport_get_pipe_transport(p.t, 0));
    ck_assert_ptr_eq(asyncio_transport_get_protocol(p.t), &p.base);
    tu_free_loop(loop);
    proc_free(&p);
    assert_no_children();
    ck_assert_int_eq(tu_count_fds(), fds);
}
END_TEST

static Suite *subprocess_suite(void)
{
    Suite *s = suite_create("subprocess");
    TCase *tc = tcase_create("run");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, echo_hello_arrives_through_pipe_data_received);
    tcase_add_test(tc, exit_codes_become_the_returncode);
    tcase_add_test(tc, shell_exit_codes_become_the_returncode);
    tcase_add_test(tc, a_missing_program_fails_the_future_with_enoent);
    tcase_add_test(tc, a_file_that_is_not_executable_fails_the_future_with_eacces);
    tcase_add_test(tc, a_missing_cwd_fails_the_future_with_enoent);
    tcase_add_test(tc, cwd_and_env_reach_the_child);
    tcase_add_test(tc, a_null_env_inherits_the_environment);
    suite_add_tcase(s, tc);

    tc = tcase_create("pipes");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, a_mebibyte_goes_through_cat_both_ways);
    tcase_add_test(tc, stderr_merged_into_stdout_arrives_on_fd_1);
    tcase_add_test(tc, stderr_merged_into_an_inherited_stdout_follows_it);
    tcase_add_test(tc, callers_low_fds_may_be_swapped);
    tcase_add_test(tc, an_fd_of_ours_becomes_the_childs_stdout_and_stays_ours);
    tcase_add_test(tc, a_child_exiting_while_we_write_its_stdin_ends_the_stdin_pipe);
    tcase_add_test(tc, pipes_report_connection_lost_when_the_far_end_closes);
    tcase_add_test(tc, connection_lost_waits_for_the_pipes_after_the_exit);
    suite_add_tcase(s, tc);

    tc = tcase_create("signals");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, kill_gives_returncode_minus_sigkill);
    tcase_add_test(tc, terminate_gives_returncode_minus_sigterm);
    tcase_add_test(tc, send_signal_delivers_the_signal);
    tcase_add_test(tc, send_signal_rejects_an_invalid_signal);
    tcase_add_test(tc, close_kills_a_running_child_and_still_reaps_it);
    tcase_add_test(tc, loop_close_kills_and_reaps_a_running_child);
    tcase_add_test(tc, loop_close_before_connection_made_fails_the_future_with_eclosed);
    suite_add_tcase(s, tc);

    tc = tcase_create("child");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, the_child_gets_no_fd_beyond_2);
    tcase_add_test(tc, the_childs_signals_are_default_and_unblocked);
    tcase_add_test(tc, a_hundred_concurrent_children_are_all_reaped);
    tcase_add_test(tc, a_loop_in_another_thread_reaps_its_children);
    suite_add_tcase(s, tc);

    tc = tcase_create("create");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, invalid_arguments_return_einval);
    tcase_add_test(tc, a_closed_loop_returns_eclosed);
    tcase_add_test(tc, a_factory_returning_null_kills_the_child_and_fails_with_econnaborted);
    tcase_add_test(tc, cancelling_the_future_closes_the_transport);
    tcase_add_test(tc, the_subprocess_transport_refuses_stream_calls);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(subprocess_suite()); }
