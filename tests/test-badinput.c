/* Bad input on every public function: NULL for each required pointer,
 * negative and closed fds, ports outside 0..65535, NaN / infinite / negative
 * numbers, and objects that are closed, shut down or done.  Each call must
 * return its documented code (-EINVAL for a bad argument, ASYNCIO_ECLOSED
 * for a closed loop, ...) and never crash; void calls must be no-ops and
 * pointer calls must return NULL.
 *
 * Each case is one EXPECT_* line naming the call as written, so a failure
 * (or a crash: every case marks its line first) names the function and
 * the argument.  A test checks every case of its group and then fails
 * with the first wrong one; the others are listed on stderr.
 * tests/badinput-coverage.sh fails when an exported function has no
 * EXPECT_* line here. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

/* ---- Cases -------------------------------------------------------------------- */

static int n_cases, n_wrong;
static char first_wrong[600];

static void wrong(const char *file, int line, const char *fmt, ...)
{
    char msg[500];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s:%d: %s\n", file, line, msg);
    if (n_wrong++ == 0)
        snprintf(first_wrong, sizeof(first_wrong), "%s:%d: %s", file, line, msg);
}

static void expect_rc_at(long long got, long long want, const char *call, const char *file,
                         int line)
{
    n_cases++;
    if (got != want)
        wrong(file, line, "%s returned %lld (%s), expected %lld (%s)", call, got,
              asyncio_err_name((int)got), want, asyncio_err_name((int)want));
}

static void expect_ptr_at(const void *got, int want_null, const char *call, const char *file,
                          int line)
{
    n_cases++;
    if ((got == NULL) != want_null)
        wrong(file, line, "%s returned %p, expected %s", call, got,
              want_null ? "NULL" : "non-NULL");
}

static void expect_dbl_at(double got, double want, const char *call, const char *file, int line)
{
    n_cases++;
    if (isnan(want) ? !isnan(got) : got != want)
        wrong(file, line, "%s returned %g, expected %g", call, got, want);
}

static void expect_void_at(void) { n_cases++; }

/* `call` returns `want` (an int, ssize_t or size_t code). */
#define EXPECT_RC(want, call) \
    expect_rc_at((mark_point(), (long long)(call)), (want), #call, __FILE__, __LINE__)
/* `call` returns NULL (non-NULL). */
#define EXPECT_NULL(call) expect_ptr_at((mark_point(), (call)), 1, #call, __FILE__, __LINE__)
#define EXPECT_NONNULL(call) expect_ptr_at((mark_point(), (call)), 0, #call, __FILE__, __LINE__)
/* `call` returns the double `want` (NAN: any NaN). */
#define EXPECT_DBL(want, call) \
    expect_dbl_at((mark_point(), (call)), (want), #call, __FILE__, __LINE__)
/* `call` returns nothing; it must simply not crash. */
#define EXPECT_VOID(call) (mark_point(), (call), expect_void_at())

/* Ends a group: fails with the first wrong case. */
static void cases_done(void)
{
    fprintf(stderr, "%d cases, %d wrong\n", n_cases, n_wrong);
    ck_assert_msg(n_wrong == 0, "%d of %d cases wrong; first: %s", n_wrong, n_cases, first_wrong);
}

/* ---- Bad values ------------------------------------------------------------------ */

/* A descriptor number that is not open: large, below the usual limit. */
static int closed_fd(void)
{
    for (int fd = 1000; fd > 100; fd--)
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF)
            return fd;
    ck_abort_msg("no closed fd below 1000");
    return -1;
}

/* -EBADF once `fd` is closed: what a call that takes an fd over on
 * failure must have done with it. */
static int fd_state(int fd) { return fcntl(fd, F_GETFD) < 0 ? -errno : 0; }
#define EXPECT_FD_CLOSED(fd) expect_rc_at(fd_state(fd), -EBADF, "fd " #fd, __FILE__, __LINE__)

static const int bad_ports[] = {-1, 65536, INT_MAX, INT_MIN};
#define N_BAD_PORTS (sizeof(bad_ports) / sizeof(bad_ports[0]))

static const double bad_durations[] = {NAN, -1.0, -INFINITY, INFINITY};
#define N_BAD_DURATIONS (sizeof(bad_durations) / sizeof(bad_durations[0]))

/* ---- Objects to misuse ------------------------------------------------------------ */

static void nop_cb(void *arg) { (void)arg; }
static void nop_done_cb(asyncio_future *f, void *arg) { (void)f, (void)arg; }
static int nop_work(void *arg, void **result) { return (void)arg, (void)result, 0; }
static int nop_coro(void *arg, void **result) { return (void)arg, (void)result, 0; }
static void nop_handler(asyncio_loop *l, const asyncio_error_context *c, void *arg)
{
    (void)l, (void)c, (void)arg;
}
static int nop_client(asyncio_stream_reader *r, asyncio_stream_writer *w, void *arg)
{
    return (void)r, (void)w, (void)arg, 0;
}

/* A protocol that counts its calls and may stop a loop when lost. */
typedef struct {
    asyncio_protocol base;
    int made, lost;
    asyncio_loop *stop_when_lost;
} proto;

static void p_made(asyncio_protocol *self, asyncio_transport *t)
{
    (void)t;
    ((proto *)self)->made++;
}

static void p_lost(asyncio_protocol *self, int err)
{
    (void)err;
    proto *p = (proto *)self;
    p->lost++;
    if (p->stop_when_lost != NULL)
        asyncio_loop_stop(p->stop_when_lost);
}

static const asyncio_protocol_ops p_ops = {.connection_made = p_made, .connection_lost = p_lost};

static asyncio_protocol *p_factory(void *arg)
{
    proto *p = arg;
    p->base.ops = &p_ops;
    return &p->base;
}

/* The result of `f` once the loop completed it; asserts success. */
static void *result_of(asyncio_loop *loop, asyncio_future *f)
{
    void *r = NULL;
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
    ck_assert_int_eq(asyncio_future_result(f, &r), 0);
    return r;
}

/* A loop that was closed (the caller releases it). */
static asyncio_loop *closed_loop(void)
{
    asyncio_loop *loop = tu_new_loop();
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    return loop;
}

/* A connected stream transport of `loop` over a socketpair; *peer is the
 * other end. */
static asyncio_transport *stream_transport(asyncio_loop *loop, proto *p, int *peer)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.sock = sv[0];
    asyncio_future *f;
    ck_assert_int_eq(asyncio_loop_create_unix_connection(loop, p_factory, p, NULL, &o, &f), 0);
    asyncio_transport *t = result_of(loop, f);
    asyncio_transport_ref(t);
    asyncio_future_unref(f);
    *peer = sv[1];
    return t;
}

/* Close `t` and run the loop until its protocol heard connection_lost. */
static void close_and_wait(asyncio_loop *loop, asyncio_transport *t, proto *p)
{
    p->stop_when_lost = loop;
    ck_assert_int_eq(asyncio_transport_close(t), 0);
    if (p->lost == 0)
        tu_run(loop);
    ck_assert_int_eq(p->lost, 1);
    p->stop_when_lost = NULL;
}

/* ---- Error names and the version ------------------------------------------------ */

START_TEST(error_names_and_version_take_any_code)
{
    static const int codes[] = {0, 1, -1, INT_MAX, INT_MIN, -4095, -4096 - 1000, 4096};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        EXPECT_NONNULL(asyncio_strerror(codes[i]));
        EXPECT_NONNULL(asyncio_err_name(codes[i]));
    }
    EXPECT_NONNULL(asyncio_version_string());
    EXPECT_RC((long long)asyncio_version(), asyncio_version());
    cases_done();
}
END_TEST

/* ---- Loop -------------------------------------------------------------------------- */

START_TEST(loop_calls_reject_bad_input)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_loop *closed = closed_loop();
    asyncio_future *f, *other_f;
    asyncio_loop *other = tu_new_loop();
    ck_assert_int_eq(asyncio_loop_create_future(loop, &f), 0);
    ck_assert_int_eq(asyncio_loop_create_future(other, &other_f), 0);

    EXPECT_RC(-EINVAL, asyncio_loop_run_forever(NULL));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_run_forever(closed));
    EXPECT_RC(-EINVAL, asyncio_loop_run_until_complete(NULL, f));
    EXPECT_RC(-EINVAL, asyncio_loop_run_until_complete(loop, NULL));
    EXPECT_RC(-EINVAL, asyncio_loop_run_until_complete(loop, other_f));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_run_until_complete(closed, f));
    EXPECT_RC(-EINVAL, asyncio_loop_stop(NULL));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_stop(closed));
    EXPECT_RC(-EINVAL, asyncio_loop_is_running(NULL));
    EXPECT_RC(0, asyncio_loop_is_running(closed));
    EXPECT_RC(-EINVAL, asyncio_loop_is_closed(NULL));
    EXPECT_RC(1, asyncio_loop_is_closed(closed));
    EXPECT_RC(-EINVAL, asyncio_loop_close(NULL));
    EXPECT_RC(0, asyncio_loop_close(closed));
    EXPECT_DBL(NAN, asyncio_loop_time(NULL));
    EXPECT_VOID(asyncio_loop_ref(NULL));
    EXPECT_VOID(asyncio_loop_unref(NULL));
    EXPECT_RC(-EINVAL, asyncio_loop_set_debug(NULL, 1));
    EXPECT_RC(-EINVAL, asyncio_loop_get_debug(NULL));
    EXPECT_RC(-EINVAL, asyncio_loop_set_slow_callback_duration(NULL, 0.1));
    for (size_t i = 0; i < N_BAD_DURATIONS; i++) {
        if (bad_durations[i] == INFINITY)
            continue; /* "never slow" is a fine threshold */
        EXPECT_RC(-EINVAL, asyncio_loop_set_slow_callback_duration(loop, bad_durations[i]));
    }
    EXPECT_RC(-EINVAL, asyncio_loop_set_exception_handler(NULL, nop_handler, NULL));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_set_exception_handler(closed, nop_handler, NULL));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_set_debug(closed, 1));
    EXPECT_RC(0, asyncio_loop_get_debug(closed));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_set_slow_callback_duration(closed, 0.1));
    asyncio_error_context ctx = {"bad input test", -EINVAL, NULL, NULL, NULL, NULL};
    EXPECT_VOID(asyncio_loop_call_exception_handler(NULL, &ctx));
    EXPECT_VOID(asyncio_loop_call_exception_handler(loop, NULL));
    EXPECT_VOID(asyncio_loop_default_exception_handler(NULL, NULL));
    EXPECT_VOID(asyncio_loop_default_exception_handler(loop, NULL));
    asyncio_error_context empty = {NULL, 0, NULL, NULL, NULL, NULL};
    EXPECT_VOID(asyncio_loop_default_exception_handler(loop, &empty));
    EXPECT_VOID(asyncio_loop_call_exception_handler(closed, &empty));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_set_task_stack_size(closed, 0));
    EXPECT_RC(-EINVAL, asyncio_loop_set_task_stack_size(NULL, 0));
    EXPECT_RC(-EINVAL, asyncio_loop_set_task_stack_size(loop, 1));
    EXPECT_RC(-EINVAL, asyncio_loop_set_task_stack_size(loop, SIZE_MAX));
    EXPECT_RC(-EINVAL, asyncio_loop_set_task_stack_size(loop, (size_t)-1 / 2));

    asyncio_future_cancel(f);
    asyncio_future_unref(f);
    asyncio_future_cancel(other_f);
    asyncio_future_unref(other_f);
    tu_free_loop(other);
    asyncio_loop_unref(closed);
    tu_free_loop(loop);
    cases_done();
}
END_TEST

/* ---- Policy ----------------------------------------------------------------------- */

START_TEST(policy_calls_reject_bad_input)
{
    EXPECT_NONNULL(asyncio_get_event_loop_policy());
    asyncio_event_loop_policy half = {NULL, NULL, NULL, {NULL}};
    EXPECT_RC(-EINVAL, asyncio_set_event_loop_policy(&half));
    EXPECT_RC(0, asyncio_set_event_loop_policy(NULL));
    EXPECT_RC(-EINVAL, asyncio_get_event_loop(NULL));
    EXPECT_RC(-EINVAL, asyncio_new_event_loop(NULL));
    EXPECT_RC(0, asyncio_set_event_loop(NULL));
    asyncio_loop *closed = closed_loop();
    EXPECT_RC(0, asyncio_set_event_loop(closed)); /* allowed, as in asyncio */
    EXPECT_RC(0, asyncio_set_event_loop(NULL));
    asyncio_loop_unref(closed);
    cases_done();
}
END_TEST

/* ---- Calls, timers, handles ------------------------------------------------------ */

static int inf_timer_ran;
static void count_cb(void *arg) { (*(int *)arg)++; }

START_TEST(calls_and_handles_reject_bad_input)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_loop *closed = closed_loop();
    asyncio_handle *h = NULL;

    EXPECT_RC(-EINVAL, asyncio_loop_call_soon(NULL, nop_cb, NULL, &h));
    EXPECT_RC(-EINVAL, asyncio_loop_call_soon(loop, NULL, NULL, &h));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_call_soon(closed, nop_cb, NULL, &h));
    EXPECT_RC(-EINVAL, asyncio_loop_call_soon_threadsafe(NULL, nop_cb, NULL, &h));
    EXPECT_RC(-EINVAL, asyncio_loop_call_soon_threadsafe(loop, NULL, NULL, &h));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_call_soon_threadsafe(closed, nop_cb, NULL, &h));
    EXPECT_RC(-EINVAL, asyncio_loop_call_later(NULL, 0.0, nop_cb, NULL, &h));
    EXPECT_RC(-EINVAL, asyncio_loop_call_later(loop, 0.0, NULL, NULL, &h));
    EXPECT_RC(-EINVAL, asyncio_loop_call_later(loop, NAN, nop_cb, NULL, &h));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_call_later(closed, 0.0, nop_cb, NULL, &h));
    EXPECT_RC(-EINVAL, asyncio_loop_call_at(NULL, 0.0, nop_cb, NULL, &h));
    EXPECT_RC(-EINVAL, asyncio_loop_call_at(loop, 0.0, NULL, NULL, &h));
    EXPECT_RC(-EINVAL, asyncio_loop_call_at(loop, NAN, nop_cb, NULL, &h));
    EXPECT_RC(-EINVAL, asyncio_loop_call_at(loop, -NAN, nop_cb, NULL, &h));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_call_at(closed, 0.0, nop_cb, NULL, &h));
    ck_assert_ptr_null(h); /* no failing call wrote it */

    /* Negative and -inf delays run at once; +inf never does, and neither
     * hangs nor overflows the loop's timeout. */
    int soon = 0;
    asyncio_handle *never = NULL, *never_at = NULL;
    EXPECT_RC(0, asyncio_loop_call_later(loop, -1.0, count_cb, &soon, NULL));
    EXPECT_RC(0, asyncio_loop_call_later(loop, -INFINITY, count_cb, &soon, NULL));
    EXPECT_RC(0, asyncio_loop_call_at(loop, -INFINITY, count_cb, &soon, NULL));
    EXPECT_RC(0, asyncio_loop_call_later(loop, INFINITY, count_cb, &inf_timer_ran, &never));
    EXPECT_RC(0, asyncio_loop_call_at(loop, INFINITY, count_cb, &inf_timer_ran, &never_at));
    EXPECT_RC(0, asyncio_loop_call_later(loop, 0.02, tu_stop_cb, loop, NULL));
    tu_run(loop);
    ck_assert_int_eq(soon, 3);
    ck_assert_int_eq(inf_timer_ran, 0);
    EXPECT_DBL(INFINITY, asyncio_handle_when(never));

    EXPECT_RC(-EINVAL, asyncio_handle_cancel(NULL));
    EXPECT_RC(-EINVAL, asyncio_handle_cancelled(NULL));
    EXPECT_DBL(-1.0, asyncio_handle_when(NULL));
    EXPECT_VOID(asyncio_handle_ref(NULL));
    EXPECT_VOID(asyncio_handle_unref(NULL));
    /* A handle whose loop closed: cancelling is still a harmless no-op. */
    asyncio_loop *l2 = tu_new_loop();
    asyncio_handle *h2;
    ck_assert_int_eq(asyncio_loop_call_later(l2, 10.0, nop_cb, NULL, &h2), 0);
    tu_free_loop(l2);
    EXPECT_RC(0, asyncio_handle_cancel(h2));
    EXPECT_RC(0, asyncio_handle_cancel(h2));
    asyncio_handle_unref(h2);

    asyncio_handle_cancel(never);
    asyncio_handle_unref(never);
    asyncio_handle_cancel(never_at);
    asyncio_handle_unref(never_at);
    asyncio_loop_unref(closed);
    tu_free_loop(loop);
    cases_done();
}
END_TEST

/* ---- Futures ------------------------------------------------------------------------- */

START_TEST(futures_reject_bad_input)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_loop *closed = closed_loop();
    asyncio_future *f = NULL, *done, *cancelled;
    void *r;

    EXPECT_RC(-EINVAL, asyncio_loop_create_future(NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_create_future(loop, NULL));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_create_future(closed, &f));
    ck_assert_ptr_null(f);

    EXPECT_RC(-EINVAL, asyncio_future_set_result(NULL, NULL, NULL));
    EXPECT_RC(-EINVAL, asyncio_future_set_exception(NULL, -EIO));
    EXPECT_RC(-EINVAL, asyncio_future_cancel(NULL));
    EXPECT_RC(-EINVAL, asyncio_future_done(NULL));
    EXPECT_RC(-EINVAL, asyncio_future_cancelled(NULL));
    EXPECT_RC(-EINVAL, asyncio_future_result(NULL, &r));
    EXPECT_RC(-EINVAL, asyncio_future_exception(NULL));
    EXPECT_RC(-EINVAL, asyncio_future_add_done_callback(NULL, nop_done_cb, NULL));
    EXPECT_RC(-EINVAL, asyncio_future_remove_done_callback(NULL, nop_done_cb, NULL));
    EXPECT_NULL(asyncio_future_get_loop(NULL));
    EXPECT_VOID(asyncio_future_ref(NULL));
    EXPECT_VOID(asyncio_future_unref(NULL));

    ck_assert_int_eq(asyncio_loop_create_future(loop, &f), 0);
    EXPECT_RC(-EINVAL, asyncio_future_set_exception(f, 0));
    EXPECT_RC(-EINVAL, asyncio_future_set_exception(f, EIO));
    EXPECT_RC(-EINVAL, asyncio_future_set_exception(f, INT_MAX));
    EXPECT_RC(-EINVAL, asyncio_future_add_done_callback(f, NULL, NULL));
    EXPECT_RC(-EINVAL, asyncio_future_remove_done_callback(f, NULL, NULL));
    EXPECT_RC(ASYNCIO_EINVALSTATE, asyncio_future_result(f, &r));
    EXPECT_RC(ASYNCIO_EINVALSTATE, asyncio_future_result(f, NULL));
    EXPECT_RC(ASYNCIO_EINVALSTATE, asyncio_future_exception(f));
    EXPECT_RC(0, asyncio_future_done(f)); /* the failed calls left it pending */

    /* Done: the second completion is refused and takes nothing. */
    ck_assert_int_eq(asyncio_loop_create_future(loop, &done), 0);
    ck_assert_int_eq(asyncio_future_set_result(done, NULL, NULL), 0);
    EXPECT_RC(ASYNCIO_EINVALSTATE, asyncio_future_set_result(done, (void *)1, free));
    EXPECT_RC(ASYNCIO_EINVALSTATE, asyncio_future_set_exception(done, -EIO));
    EXPECT_RC(0, asyncio_future_cancel(done));
    EXPECT_RC(0, asyncio_future_result(done, NULL));
    ck_assert_int_eq(asyncio_loop_create_future(loop, &cancelled), 0);
    ck_assert_int_eq(asyncio_future_cancel(cancelled), 1);
    EXPECT_RC(ASYNCIO_EINVALSTATE, asyncio_future_set_result(cancelled, NULL, NULL));
    EXPECT_RC(ASYNCIO_EINVALSTATE, asyncio_future_set_exception(cancelled, -EIO));
    EXPECT_RC(0, asyncio_future_cancel(cancelled));
    EXPECT_RC(-ECANCELED, asyncio_future_result(cancelled, &r));
    EXPECT_RC(-ECANCELED, asyncio_future_exception(cancelled));

    /* A future of a loop that closed: it still completes; callbacks that
     * could never run are refused. */
    asyncio_loop *l2 = tu_new_loop();
    asyncio_future *orphan;
    ck_assert_int_eq(asyncio_loop_create_future(l2, &orphan), 0);
    tu_free_loop(l2);
    EXPECT_RC(0, asyncio_future_set_result(orphan, NULL, NULL));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_future_add_done_callback(orphan, nop_done_cb, NULL));
    EXPECT_RC(0, asyncio_future_remove_done_callback(orphan, nop_done_cb, NULL));
    EXPECT_NONNULL(asyncio_future_get_loop(orphan));

    asyncio_future_unref(orphan);
    asyncio_future_unref(cancelled);
    asyncio_future_unref(done);
    asyncio_future_cancel(f);
    asyncio_future_unref(f);
    asyncio_loop_unref(closed);
    tu_free_loop(loop);
    cases_done();
}
END_TEST

/* ---- Tasks ---------------------------------------------------------------------------- */

struct task_ctx {
    asyncio_future *other_loop_future;
};

static int misuse_inside_task(void *arg, void **result)
{
    struct task_ctx *c = arg;
    (void)result;
    EXPECT_RC(-EINVAL, asyncio_await(NULL, NULL));
    EXPECT_RC(-EINVAL, asyncio_await(c->other_loop_future, NULL));
    EXPECT_RC(-EINVAL, asyncio_await(asyncio_current_task(), NULL));
    EXPECT_RC(-EINVAL, asyncio_sleep(NAN));
    EXPECT_RC(0, asyncio_sleep(-1.0));
    EXPECT_RC(0, asyncio_sleep(-INFINITY));
    EXPECT_NONNULL(asyncio_current_task());
    return 0;
}

START_TEST(tasks_reject_bad_input)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_loop *closed = closed_loop();
    asyncio_loop *other = tu_new_loop();
    asyncio_future *t = NULL;
    struct task_ctx c;
    ck_assert_int_eq(asyncio_loop_create_future(other, &c.other_loop_future), 0);

    EXPECT_RC(-EINVAL, asyncio_loop_create_task(NULL, nop_coro, NULL, &t));
    EXPECT_RC(-EINVAL, asyncio_loop_create_task(loop, NULL, NULL, &t));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_create_task(closed, nop_coro, NULL, &t));
    ck_assert_ptr_null(t);
    /* Outside a task. */
    EXPECT_RC(ASYNCIO_ENOTASK, asyncio_await(c.other_loop_future, NULL));
    EXPECT_RC(ASYNCIO_ENOTASK, asyncio_sleep(0.0));
    EXPECT_NULL(asyncio_current_task());

    ck_assert_int_eq(asyncio_loop_create_task(loop, misuse_inside_task, &c, &t), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, t), 0);
    asyncio_future_unref(t);

    asyncio_future_cancel(c.other_loop_future);
    asyncio_future_unref(c.other_loop_future);
    tu_free_loop(other);
    asyncio_loop_unref(closed);
    tu_free_loop(loop);
    cases_done();
}
END_TEST

/* ---- Transports ------------------------------------------------------------------- */

START_TEST(transports_reject_bad_input)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct iovec iov = {(void *)"x", 1};
    int rc;

    /* Every call with a NULL transport. */
    EXPECT_RC(-EINVAL, asyncio_transport_write(NULL, "x", 1));
    EXPECT_RC(-EINVAL, asyncio_transport_writelines(NULL, &iov, 1));
    EXPECT_RC(-EINVAL, asyncio_transport_write_eof(NULL));
    EXPECT_RC(-EINVAL, asyncio_transport_can_write_eof(NULL));
    EXPECT_RC(-EINVAL, asyncio_transport_close(NULL));
    EXPECT_RC(-EINVAL, asyncio_transport_abort(NULL));
    EXPECT_RC(-EINVAL, asyncio_transport_is_closing(NULL));
    EXPECT_RC(-EINVAL, asyncio_transport_pause_reading(NULL));
    EXPECT_RC(-EINVAL, asyncio_transport_resume_reading(NULL));
    EXPECT_RC(-EINVAL, asyncio_transport_set_write_buffer_limits(NULL, 0, 0));
    EXPECT_RC(0, asyncio_transport_get_write_buffer_size(NULL));
    EXPECT_NULL(asyncio_transport_get_protocol(NULL));
    EXPECT_NULL(asyncio_transport_get_extra_info(NULL, "peername"));
    EXPECT_RC(-EINVAL, asyncio_transport_sendto(NULL, "x", 1, NULL, 0));
    EXPECT_RC(-EINVAL, asyncio_transport_get_pid(NULL));
    EXPECT_RC(-EINVAL, asyncio_transport_get_returncode(NULL, &rc));
    EXPECT_NULL(asyncio_transport_get_pipe_transport(NULL, 0));
    EXPECT_RC(-EINVAL, asyncio_transport_send_signal(NULL, SIGTERM));
    EXPECT_RC(-EINVAL, asyncio_transport_terminate(NULL));
    EXPECT_RC(-EINVAL, asyncio_transport_kill(NULL));
    EXPECT_VOID(asyncio_transport_ref(NULL));
    EXPECT_VOID(asyncio_transport_unref(NULL));
    EXPECT_NULL(asyncio_transport_ssl_error(NULL));

    /* Bad arguments to an open stream transport. */
    proto p = {0};
    int peer;
    asyncio_transport *t = stream_transport(loop, &p, &peer);
    struct iovec bad_iov[2] = {{(void *)"x", 1}, {NULL, 5}};
    EXPECT_RC(-EINVAL, asyncio_transport_write(t, NULL, 1));
    EXPECT_RC(-EINVAL, asyncio_transport_writelines(t, NULL, 1));
    EXPECT_RC(-EINVAL, asyncio_transport_writelines(t, &iov, -1));
    EXPECT_RC(-EINVAL, asyncio_transport_writelines(t, &iov, INT_MIN));
    EXPECT_RC(-EINVAL, asyncio_transport_writelines(t, bad_iov, 2));
    EXPECT_RC(-EINVAL, asyncio_transport_set_write_buffer_limits(t, 10, 20));
    EXPECT_RC(-EINVAL, asyncio_transport_set_write_buffer_limits(t, 0, SIZE_MAX));
    EXPECT_RC(0, asyncio_transport_get_write_buffer_size(t)); /* nothing was queued */
    EXPECT_NULL(asyncio_transport_get_extra_info(t, NULL));
    EXPECT_NULL(asyncio_transport_get_extra_info(t, ""));
    EXPECT_NULL(asyncio_transport_get_extra_info(t, "no such thing"));
    /* Calls of other transport kinds. */
    EXPECT_RC(-ENOTSUP, asyncio_transport_sendto(t, "x", 1, NULL, 0));
    EXPECT_RC(-ENOTSUP, asyncio_transport_get_pid(t));
    EXPECT_RC(-ENOTSUP, asyncio_transport_get_returncode(t, &rc));
    EXPECT_NULL(asyncio_transport_get_pipe_transport(t, 0));
    EXPECT_RC(-ENOTSUP, asyncio_transport_send_signal(t, SIGTERM));
    EXPECT_RC(-ENOTSUP, asyncio_transport_terminate(t));
    EXPECT_RC(-ENOTSUP, asyncio_transport_kill(t));
    EXPECT_NULL(asyncio_transport_ssl_error(t));

    /* A closed transport: writes refused, the rest idempotent no-ops. */
    close_and_wait(loop, t, &p);
    EXPECT_RC(-EPIPE, asyncio_transport_write(t, "x", 1));
    EXPECT_RC(-EPIPE, asyncio_transport_writelines(t, &iov, 1));
    EXPECT_RC(0, asyncio_transport_write_eof(t)); /* a no-op once closing, as in asyncio */
    EXPECT_RC(0, asyncio_transport_close(t));
    EXPECT_RC(0, asyncio_transport_abort(t));
    EXPECT_RC(1, asyncio_transport_is_closing(t));
    EXPECT_RC(0, asyncio_transport_pause_reading(t));
    EXPECT_RC(0, asyncio_transport_resume_reading(t));
    EXPECT_RC(0, asyncio_transport_get_write_buffer_size(t));
    EXPECT_NULL(asyncio_transport_get_extra_info(t, "socket"));
    /* ... and the loop ran nothing for them. */
    EXPECT_RC(0, asyncio_loop_call_soon(loop, tu_stop_cb, loop, NULL));
    tu_run(loop);
    ck_assert_int_eq(p.lost, 1);
    asyncio_transport_unref(t);
    close(peer);

    /* A transport whose loop closed. */
    proto p2 = {0};
    asyncio_loop *l2 = tu_new_guarded_loop();
    asyncio_transport *t2 = stream_transport(l2, &p2, &peer);
    tu_free_loop(l2);
    ck_assert_int_eq(p2.lost, 1);
    EXPECT_RC(-EPIPE, asyncio_transport_write(t2, "x", 1));
    EXPECT_RC(0, asyncio_transport_close(t2));
    EXPECT_RC(0, asyncio_transport_abort(t2));
    EXPECT_RC(1, asyncio_transport_is_closing(t2));
    asyncio_transport_unref(t2);
    close(peer);

    tu_free_loop(loop);
    cases_done();
}
END_TEST

/* ---- Servers ------------------------------------------------------------------------- */

START_TEST(servers_reject_bad_input)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_future *f = NULL;
    int fds[4];

    EXPECT_RC(-EINVAL, asyncio_server_close(NULL));
    EXPECT_RC(-EINVAL, asyncio_server_wait_closed(NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_server_get_sockets(NULL, fds, 4));
    EXPECT_VOID(asyncio_server_ref(NULL));
    EXPECT_VOID(asyncio_server_unref(NULL));
    ck_assert_ptr_null(f);

    proto p = {0};
    ck_assert_int_eq(asyncio_loop_create_server(loop, p_factory, &p, "127.0.0.1", 0, NULL, &f), 0);
    asyncio_server *s = result_of(loop, f);
    asyncio_server_ref(s);
    asyncio_future_unref(f);
    EXPECT_RC(-EINVAL, asyncio_server_get_sockets(s, NULL, 4));
    EXPECT_RC(1, asyncio_server_get_sockets(s, NULL, 0));

    /* Closed: closing again is a no-op, wait_closed completes. */
    EXPECT_RC(0, asyncio_server_close(s));
    EXPECT_RC(0, asyncio_server_close(s));
    EXPECT_RC(0, asyncio_server_get_sockets(s, fds, 4));
    EXPECT_RC(0, asyncio_server_wait_closed(s, &f));
    ck_assert_ptr_null(result_of(loop, f));
    asyncio_future_unref(f);
    asyncio_server_unref(s);

    /* A server whose loop closed. */
    asyncio_loop *l2 = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_create_server(l2, p_factory, &p, "127.0.0.1", 0, NULL, &f), 0);
    s = result_of(l2, f);
    asyncio_server_ref(s);
    asyncio_future_unref(f);
    tu_free_loop(l2);
    EXPECT_RC(0, asyncio_server_close(s));
    EXPECT_RC(0, asyncio_server_get_sockets(s, fds, 4));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_server_wait_closed(s, &f));
    asyncio_server_unref(s);
    ck_assert_int_eq(p.made, 0);

    tu_free_loop(loop);
    cases_done();
}
END_TEST

/* ---- Connections, servers, datagrams, sendfile: argument checks ---------------------- */

START_TEST(network_calls_reject_bad_input)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_loop *closed = closed_loop();
    asyncio_future *f = NULL;
    proto p = {0};
    int bad_fd = closed_fd();
    SSL_CTX *server_ctx = SSL_CTX_new(TLS_server_method());
    ck_assert_ptr_nonnull(server_ctx);

    EXPECT_RC(-EINVAL,
              asyncio_loop_create_connection(NULL, p_factory, &p, "127.0.0.1", 1, NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_create_connection(loop, NULL, &p, "127.0.0.1", 1, NULL, &f));
    EXPECT_RC(ASYNCIO_ECLOSED,
              asyncio_loop_create_connection(closed, p_factory, &p, "127.0.0.1", 1, NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_create_server(NULL, p_factory, &p, "127.0.0.1", 0, NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_create_server(loop, NULL, &p, "127.0.0.1", 0, NULL, &f));
    EXPECT_RC(ASYNCIO_ECLOSED,
              asyncio_loop_create_server(closed, p_factory, &p, "127.0.0.1", 0, NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_create_datagram_endpoint(NULL, p_factory, &p, "127.0.0.1", 0,
                                                             NULL, 0, NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_create_datagram_endpoint(loop, NULL, &p, "127.0.0.1", 0, NULL,
                                                             0, NULL, &f));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_create_datagram_endpoint(
                                   closed, p_factory, &p, "127.0.0.1", 0, NULL, 0, NULL, &f));
    for (size_t i = 0; i < N_BAD_PORTS; i++) {
        int port = bad_ports[i];
        EXPECT_RC(-EINVAL,
                  asyncio_loop_create_connection(loop, p_factory, &p, "127.0.0.1", port, NULL, &f));
        EXPECT_RC(-EINVAL,
                  asyncio_loop_create_server(loop, p_factory, &p, "127.0.0.1", port, NULL, &f));
        EXPECT_RC(-EINVAL, asyncio_loop_create_datagram_endpoint(loop, p_factory, &p, "127.0.0.1",
                                                                 port, NULL, 0, NULL, &f));
        EXPECT_RC(-EINVAL, asyncio_loop_create_datagram_endpoint(loop, p_factory, &p, NULL, 0,
                                                                 "127.0.0.1", port, NULL, &f));
        asyncio_connection_options lo = ASYNCIO_CONNECTION_OPTIONS_INIT;
        lo.local_host = "127.0.0.1";
        lo.local_port = port;
        EXPECT_RC(-EINVAL,
                  asyncio_loop_create_connection(loop, p_factory, &p, "127.0.0.1", 1, &lo, &f));
    }

    /* Options out of range. */
    asyncio_connection_options co = ASYNCIO_CONNECTION_OPTIONS_INIT;
    co.server_hostname = "example.test"; /* without TLS */
    EXPECT_RC(-EINVAL,
              asyncio_loop_create_connection(loop, p_factory, &p, "127.0.0.1", 1, &co, &f));
    for (size_t i = 0; i < N_BAD_DURATIONS; i++) {
        double d = bad_durations[i];
        co = (asyncio_connection_options)ASYNCIO_CONNECTION_OPTIONS_INIT;
        co.happy_eyeballs_delay = d;
        if (!(d == INFINITY)) /* an infinite delay is "never race" */
            EXPECT_RC(-EINVAL,
                      asyncio_loop_create_connection(loop, p_factory, &p, "127.0.0.1", 1, &co, &f));
        if (d == INFINITY) /* TLS timeouts: infinite is "no timeout" */
            continue;
        co = (asyncio_connection_options)ASYNCIO_CONNECTION_OPTIONS_INIT;
        co.use_default_ssl = 1;
        co.ssl_handshake_timeout = d;
        EXPECT_RC(-EINVAL,
                  asyncio_loop_create_connection(loop, p_factory, &p, "127.0.0.1", 1, &co, &f));
        co.ssl_handshake_timeout = 60.0;
        co.ssl_shutdown_timeout = d;
        EXPECT_RC(-EINVAL,
                  asyncio_loop_create_connection(loop, p_factory, &p, "127.0.0.1", 1, &co, &f));
        asyncio_server_options so = ASYNCIO_SERVER_OPTIONS_INIT;
        so.ssl = server_ctx; /* the timeouts apply only with TLS */
        so.ssl_handshake_timeout = d;
        EXPECT_RC(-EINVAL,
                  asyncio_loop_create_server(loop, p_factory, &p, "127.0.0.1", 0, &so, &f));
        so.ssl_handshake_timeout = 60.0;
        so.ssl_shutdown_timeout = d;
        EXPECT_RC(-EINVAL,
                  asyncio_loop_create_server(loop, p_factory, &p, "127.0.0.1", 0, &so, &f));
    }
    /* A socket given: host must be NULL; a closed fd is refused. */
    co = (asyncio_connection_options)ASYNCIO_CONNECTION_OPTIONS_INIT;
    co.sock = bad_fd;
    EXPECT_RC(-EBADF, asyncio_loop_create_connection(loop, p_factory, &p, NULL, 0, &co, &f));
    EXPECT_RC(-EBADF, asyncio_loop_create_unix_connection(loop, p_factory, &p, NULL, &co, &f));
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    co.sock = sv[0];
    EXPECT_RC(-EINVAL,
              asyncio_loop_create_connection(loop, p_factory, &p, "127.0.0.1", 1, &co, &f));
    EXPECT_FD_CLOSED(sv[0]); /* taken over on failure too */
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv + 0), 0);
    close(sv[1]);
    co.sock = sv[0];
    EXPECT_RC(-EINVAL, asyncio_loop_create_connection(NULL, p_factory, &p, NULL, 0, &co, &f));
    EXPECT_FD_CLOSED(sv[0]);
    asyncio_server_options so = ASYNCIO_SERVER_OPTIONS_INIT;
    so.sock = bad_fd;
    EXPECT_RC(-EBADF, asyncio_loop_create_server(loop, p_factory, &p, NULL, 0, &so, &f));
    EXPECT_RC(-EBADF, asyncio_loop_create_unix_server(loop, p_factory, &p, NULL, &so, &f));
    so = (asyncio_server_options)ASYNCIO_SERVER_OPTIONS_INIT;
    so.backlog = -1;
    EXPECT_RC(-EINVAL, asyncio_loop_create_server(loop, p_factory, &p, "127.0.0.1", 0, &so, &f));

    /* UNIX paths. */
    char long_path[sizeof(((struct sockaddr_un *)0)->sun_path) + 10];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[sizeof(long_path) - 1] = '\0';
    EXPECT_RC(-EINVAL, asyncio_loop_create_unix_connection(NULL, p_factory, &p, "/x", NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_create_unix_connection(loop, NULL, &p, "/x", NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_create_unix_connection(loop, p_factory, &p, NULL, NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_create_unix_connection(loop, p_factory, &p, "", NULL, &f));
    EXPECT_RC(-ENAMETOOLONG,
              asyncio_loop_create_unix_connection(loop, p_factory, &p, long_path, NULL, &f));
    EXPECT_RC(ASYNCIO_ECLOSED,
              asyncio_loop_create_unix_connection(closed, p_factory, &p, "/x", NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_create_unix_server(NULL, p_factory, &p, "/x", NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_create_unix_server(loop, NULL, &p, "/x", NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_create_unix_server(loop, p_factory, &p, NULL, NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_create_unix_server(loop, p_factory, &p, "", NULL, &f));
    EXPECT_RC(-ENAMETOOLONG,
              asyncio_loop_create_unix_server(loop, p_factory, &p, long_path, NULL, &f));
    EXPECT_RC(ASYNCIO_ECLOSED,
              asyncio_loop_create_unix_server(closed, p_factory, &p, "/x", NULL, &f));

    /* sendfile: on no transport, a closed one, from a bad fd. */
    int peer;
    asyncio_transport *t = stream_transport(loop, &p, &peer);
    int file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(file, 0);
    EXPECT_RC(-EINVAL, asyncio_loop_sendfile(NULL, t, file, 0, 0, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_sendfile(loop, NULL, file, 0, 0, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_sendfile(loop, t, -1, 0, 0, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_sendfile(loop, t, file, -1, 0, &f));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_sendfile(closed, t, file, 0, 0, &f));
    EXPECT_RC(-EBADF, asyncio_loop_sendfile(loop, t, bad_fd, 0, 0, &f));
    ck_assert_ptr_null(f);
    close_and_wait(loop, t, &p);
    EXPECT_RC(-EPIPE, asyncio_loop_sendfile(loop, t, file, 0, 0, &f));
    asyncio_transport_unref(t);
    close(peer);
    close(file);
    ck_assert_int_eq(p.made, 1); /* only the transport made for sendfile */

    SSL_CTX_free(server_ctx);
    asyncio_loop_unref(closed);
    tu_free_loop(loop);
    cases_done();
}
END_TEST

/* ---- fds, low-level sockets, name resolution ---------------------------------------- */

START_TEST(fd_and_socket_calls_reject_bad_input)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_loop *closed = closed_loop();
    asyncio_future *f = NULL;
    int bad_fd = closed_fd();
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    char buf[16];
    struct sockaddr_in sin = {.sin_family = AF_INET};
    const struct sockaddr *sa = (const struct sockaddr *)&sin;

    const int bad_fds[] = {-1, INT_MIN, bad_fd};
    for (size_t i = 0; i < sizeof(bad_fds) / sizeof(bad_fds[0]); i++) {
        int fd = bad_fds[i];
        long long want = fd < 0 ? -EINVAL : -EBADF;
        EXPECT_RC(want, asyncio_loop_add_reader(loop, fd, nop_cb, NULL));
        EXPECT_RC(want, asyncio_loop_add_writer(loop, fd, nop_cb, NULL));
        EXPECT_RC(fd < 0 ? -EINVAL : 0, asyncio_loop_remove_reader(loop, fd));
        EXPECT_RC(fd < 0 ? -EINVAL : 0, asyncio_loop_remove_writer(loop, fd));
        EXPECT_RC(want, asyncio_loop_sock_recv(loop, fd, buf, sizeof(buf), &f));
        EXPECT_RC(want, asyncio_loop_sock_sendall(loop, fd, "x", 1, &f));
        EXPECT_RC(want, asyncio_loop_sock_connect(loop, fd, sa, sizeof(sin), &f));
        EXPECT_RC(want, asyncio_loop_sock_accept(loop, fd, &f));
    }
    EXPECT_RC(-EINVAL, asyncio_loop_add_reader(NULL, sv[0], nop_cb, NULL));
    EXPECT_RC(-EINVAL, asyncio_loop_add_reader(loop, sv[0], NULL, NULL));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_add_reader(closed, sv[0], nop_cb, NULL));
    EXPECT_RC(-EINVAL, asyncio_loop_remove_reader(NULL, sv[0]));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_remove_reader(closed, sv[0]));
    EXPECT_RC(-EINVAL, asyncio_loop_add_writer(NULL, sv[0], nop_cb, NULL));
    EXPECT_RC(-EINVAL, asyncio_loop_add_writer(loop, sv[0], NULL, NULL));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_add_writer(closed, sv[0], nop_cb, NULL));
    EXPECT_RC(-EINVAL, asyncio_loop_remove_writer(NULL, sv[0]));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_remove_writer(closed, sv[0]));

    EXPECT_RC(-EINVAL, asyncio_loop_sock_recv(NULL, sv[0], buf, sizeof(buf), &f));
    EXPECT_RC(-EINVAL, asyncio_loop_sock_recv(loop, sv[0], NULL, sizeof(buf), &f));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_sock_recv(closed, sv[0], buf, sizeof(buf), &f));
    EXPECT_RC(-EINVAL, asyncio_loop_sock_sendall(NULL, sv[0], "x", 1, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_sock_sendall(loop, sv[0], NULL, 1, &f));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_sock_sendall(closed, sv[0], "x", 1, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_sock_connect(NULL, sv[0], sa, sizeof(sin), &f));
    EXPECT_RC(-EINVAL, asyncio_loop_sock_connect(loop, sv[0], NULL, sizeof(sin), &f));
    EXPECT_RC(-EINVAL, asyncio_loop_sock_connect(loop, sv[0], sa, 0, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_sock_connect(loop, sv[0], sa, 100000, &f));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_sock_connect(closed, sv[0], sa, sizeof(sin), &f));
    EXPECT_RC(-EINVAL, asyncio_loop_sock_accept(NULL, sv[0], &f));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_sock_accept(closed, sv[0], &f));
    ck_assert_ptr_null(f);

    /* Name resolution: numeric only, never the machine's nameserver. */
    EXPECT_RC(-EINVAL, asyncio_loop_getaddrinfo(NULL, "127.0.0.1", "80", NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_getaddrinfo(loop, "127.0.0.1", "80", NULL, NULL));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_getaddrinfo(closed, "127.0.0.1", "80", NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_getnameinfo(NULL, sa, sizeof(sin), 0, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_getnameinfo(loop, NULL, sizeof(sin), 0, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_getnameinfo(loop, sa, 0, 0, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_getnameinfo(loop, sa, sizeof(sin), 0, NULL));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_getnameinfo(closed, sa, sizeof(sin), 0, &f));
    ck_assert_ptr_null(f);
    /* Neither host nor port: asyncio's gaierror, in the future. */
    EXPECT_RC(0, asyncio_loop_getaddrinfo(loop, NULL, NULL, NULL, &f));
    EXPECT_RC(ASYNCIO_EAI_NONAME, asyncio_loop_run_until_complete(loop, f));
    asyncio_future_unref(f);
    /* A service number out of range is refused by the resolver. */
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    const char *const bad_services[] = {"65536", "-1", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad_services) / sizeof(bad_services[0]); i++) {
        for (int numeric = 0; numeric < 2; numeric++) {
            struct addrinfo *h = numeric ? &hints : NULL;
            EXPECT_RC(0, asyncio_loop_getaddrinfo(loop, "127.0.0.1", bad_services[i], h, &f));
            EXPECT_RC(ASYNCIO_EAI_SERVICE, asyncio_loop_run_until_complete(loop, f));
            asyncio_future_unref(f);
        }
    }

    close(sv[0]);
    close(sv[1]);
    asyncio_loop_unref(closed);
    tu_free_loop(loop);
    cases_done();
}
END_TEST

/* ---- Subprocesses and pipes ----------------------------------------------------------- */

static int pipe_fd(void)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    close(p[1]);
    return p[0];
}

START_TEST(subprocess_and_pipe_calls_reject_bad_input)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_loop *closed = closed_loop();
    asyncio_future *f = NULL;
    proto p = {0};
    int bad_fd = closed_fd();
    const char *const argv[] = {"true", NULL};
    const char *const empty[] = {NULL};
    int fd;

    /* Pipes: the fd is taken over on failure too. */
    const int bad_fds[] = {-1, INT_MIN, bad_fd};
    for (size_t i = 0; i < sizeof(bad_fds) / sizeof(bad_fds[0]); i++) {
        long long want = bad_fds[i] < 0 ? -EINVAL : -EBADF;
        EXPECT_RC(want, asyncio_loop_connect_read_pipe(loop, p_factory, &p, bad_fds[i], &f));
        EXPECT_RC(want, asyncio_loop_connect_write_pipe(loop, p_factory, &p, bad_fds[i], &f));
    }
    fd = pipe_fd();
    EXPECT_RC(-EINVAL, asyncio_loop_connect_read_pipe(NULL, p_factory, &p, fd, &f));
    EXPECT_FD_CLOSED(fd);
    fd = pipe_fd();
    EXPECT_RC(-EINVAL, asyncio_loop_connect_read_pipe(loop, NULL, &p, fd, &f));
    EXPECT_FD_CLOSED(fd);
    fd = pipe_fd();
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_connect_read_pipe(closed, p_factory, &p, fd, &f));
    EXPECT_FD_CLOSED(fd);
    fd = pipe_fd();
    EXPECT_RC(-EINVAL, asyncio_loop_connect_write_pipe(NULL, p_factory, &p, fd, &f));
    EXPECT_FD_CLOSED(fd);
    fd = pipe_fd();
    EXPECT_RC(-EINVAL, asyncio_loop_connect_write_pipe(loop, NULL, &p, fd, &f));
    EXPECT_FD_CLOSED(fd);
    fd = pipe_fd();
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_connect_write_pipe(closed, p_factory, &p, fd, &f));
    EXPECT_FD_CLOSED(fd);
    fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC); /* a regular file */
    EXPECT_RC(-EINVAL, asyncio_loop_connect_read_pipe(loop, p_factory, &p, fd, &f));
    EXPECT_FD_CLOSED(fd);
    ck_assert_ptr_null(f);

    /* Subprocesses. */
    EXPECT_RC(-EINVAL, asyncio_loop_subprocess_exec(NULL, p_factory, &p, argv, NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_subprocess_exec(loop, NULL, &p, argv, NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_subprocess_exec(loop, p_factory, &p, NULL, NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_subprocess_exec(loop, p_factory, &p, empty, NULL, &f));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_subprocess_exec(closed, p_factory, &p, argv, NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_subprocess_shell(NULL, p_factory, &p, "true", NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_subprocess_shell(loop, NULL, &p, "true", NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_subprocess_shell(loop, p_factory, &p, NULL, NULL, &f));
    EXPECT_RC(ASYNCIO_ECLOSED,
              asyncio_loop_subprocess_shell(closed, p_factory, &p, "true", NULL, &f));
    /* Stream settings: constants that do not exist or do not apply, bad fds. */
    const int bad_streams[] = {ASYNCIO_INHERIT - 1, INT_MIN, bad_fd};
    for (size_t i = 0; i < sizeof(bad_streams) / sizeof(bad_streams[0]); i++) {
        long long want = bad_streams[i] < 0 ? -EINVAL : -EBADF;
        asyncio_subprocess_options o = ASYNCIO_SUBPROCESS_OPTIONS_INIT;
        o.stdin_fd = bad_streams[i];
        EXPECT_RC(want, asyncio_loop_subprocess_exec(loop, p_factory, &p, argv, &o, &f));
        o = (asyncio_subprocess_options)ASYNCIO_SUBPROCESS_OPTIONS_INIT;
        o.stdout_fd = bad_streams[i];
        EXPECT_RC(want, asyncio_loop_subprocess_exec(loop, p_factory, &p, argv, &o, &f));
        o = (asyncio_subprocess_options)ASYNCIO_SUBPROCESS_OPTIONS_INIT;
        o.stderr_fd = bad_streams[i];
        EXPECT_RC(want, asyncio_loop_subprocess_shell(loop, p_factory, &p, "true", &o, &f));
    }
    asyncio_subprocess_options o = ASYNCIO_SUBPROCESS_OPTIONS_INIT;
    o.stdin_fd = ASYNCIO_STDOUT;
    EXPECT_RC(-EINVAL, asyncio_loop_subprocess_exec(loop, p_factory, &p, argv, &o, &f));
    o = (asyncio_subprocess_options)ASYNCIO_SUBPROCESS_OPTIONS_INIT;
    o.stdout_fd = ASYNCIO_STDOUT;
    EXPECT_RC(-EINVAL, asyncio_loop_subprocess_exec(loop, p_factory, &p, argv, &o, &f));
    ck_assert_ptr_null(f);
    ck_assert_int_eq(p.made, 0);

    /* A real child: bad arguments to its transport, then after it ended. */
    o = (asyncio_subprocess_options)ASYNCIO_SUBPROCESS_OPTIONS_INIT;
    o.stdin_fd = o.stdout_fd = o.stderr_fd = ASYNCIO_DEVNULL;
    const char *const sleeper[] = {"sleep", "10", NULL};
    ck_assert_int_eq(asyncio_loop_subprocess_exec(loop, p_factory, &p, sleeper, &o, &f), 0);
    asyncio_transport *t = result_of(loop, f);
    asyncio_transport_ref(t);
    asyncio_future_unref(f);
    int rc;
    EXPECT_RC(-EINVAL, asyncio_transport_get_returncode(t, NULL));
    EXPECT_RC(ASYNCIO_EINVALSTATE, asyncio_transport_get_returncode(t, &rc));
    EXPECT_NULL(asyncio_transport_get_pipe_transport(t, -1));
    EXPECT_NULL(asyncio_transport_get_pipe_transport(t, 3));
    EXPECT_NULL(asyncio_transport_get_pipe_transport(t, INT_MAX));
    EXPECT_NULL(asyncio_transport_get_pipe_transport(t, 0)); /* DEVNULL, not a pipe */
    EXPECT_RC(-EINVAL, asyncio_transport_send_signal(t, -1));
    EXPECT_RC(-EINVAL, asyncio_transport_send_signal(t, 100000));
    EXPECT_RC(-EINVAL, asyncio_transport_send_signal(t, INT_MIN));
    EXPECT_RC(-EINVAL, asyncio_transport_write(t, NULL, 1));
    EXPECT_RC(-ENOTSUP, asyncio_transport_write(t, "x", 1));
    ck_assert_int_gt(asyncio_transport_get_pid(t), 0);
    close_and_wait(loop, t, &p); /* kills the child, which is reaped */
    EXPECT_RC(-ESRCH, asyncio_transport_send_signal(t, SIGTERM));
    EXPECT_RC(-ESRCH, asyncio_transport_terminate(t));
    EXPECT_RC(-ESRCH, asyncio_transport_kill(t));
    EXPECT_RC(0, asyncio_transport_get_returncode(t, &rc));
    EXPECT_RC(0, asyncio_transport_close(t));
    asyncio_transport_unref(t);

    asyncio_loop_unref(closed);
    tu_free_loop(loop);
    cases_done();
}
END_TEST

/* ---- Signals ---------------------------------------------------------------------------- */

START_TEST(signal_calls_reject_bad_input)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_loop *closed = closed_loop();
    const int bad_signals[] = {-1, 0, SIGKILL, SIGSTOP, 65, 100000, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof(bad_signals) / sizeof(bad_signals[0]); i++) {
        int sig = bad_signals[i];
        EXPECT_RC(-EINVAL, asyncio_loop_add_signal_handler(loop, sig, nop_cb, NULL));
        EXPECT_RC(-EINVAL, asyncio_loop_remove_signal_handler(loop, sig));
    }
    EXPECT_RC(-EINVAL, asyncio_loop_add_signal_handler(NULL, SIGUSR1, nop_cb, NULL));
    EXPECT_RC(-EINVAL, asyncio_loop_add_signal_handler(loop, SIGUSR1, NULL, NULL));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_add_signal_handler(closed, SIGUSR1, nop_cb, NULL));
    EXPECT_RC(-EINVAL, asyncio_loop_remove_signal_handler(NULL, SIGUSR1));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_remove_signal_handler(closed, SIGUSR1));
    EXPECT_RC(0, asyncio_loop_remove_signal_handler(loop, SIGUSR1));
    asyncio_loop_unref(closed);
    tu_free_loop(loop);
    cases_done();
}
END_TEST

/* ---- Executors ------------------------------------------------------------------------- */

static int arg_destroyed;
static void count_destroy(void *arg)
{
    (void)arg;
    arg_destroyed++;
}

static int refuse_submit(void *impl, asyncio_executor_job *job)
{
    return (void)impl, (void)job, -EAGAIN;
}

START_TEST(executor_calls_reject_bad_input)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_loop *closed = closed_loop();
    asyncio_executor *ex = NULL, *down;
    asyncio_future *f = NULL;

    EXPECT_RC(-EINVAL, asyncio_thread_pool_executor_new(-1, &ex));
    EXPECT_RC(-EINVAL, asyncio_thread_pool_executor_new(INT_MIN, &ex));
    EXPECT_RC(-EINVAL, asyncio_thread_pool_executor_new(1, NULL));
    static const asyncio_executor_ops no_submit = {NULL, NULL, NULL, NULL, {NULL}};
    static const asyncio_executor_ops refusing = {refuse_submit, NULL, NULL, NULL, {NULL}};
    EXPECT_RC(-EINVAL, asyncio_executor_new(NULL, NULL, &ex));
    EXPECT_RC(-EINVAL, asyncio_executor_new(&no_submit, NULL, &ex));
    EXPECT_RC(-EINVAL, asyncio_executor_new(&refusing, NULL, NULL));
    ck_assert_ptr_null(ex);
    EXPECT_RC(-EINVAL, asyncio_executor_shutdown(NULL, 0));
    EXPECT_RC(-EINVAL, asyncio_executor_shutdown(NULL, 1));
    EXPECT_VOID(asyncio_executor_ref(NULL));
    EXPECT_VOID(asyncio_executor_unref(NULL));
    EXPECT_VOID(asyncio_executor_job_run(NULL));
    EXPECT_VOID(asyncio_executor_job_complete(NULL, 0, NULL));
    EXPECT_VOID(asyncio_executor_job_complete(NULL, -EIO, NULL));
    EXPECT_NULL(asyncio_executor_job_fn(NULL));
    EXPECT_NULL(asyncio_executor_job_arg(NULL));
    EXPECT_NULL(asyncio_executor_job_get_data(NULL));
    EXPECT_VOID(asyncio_executor_job_set_data(NULL, &ex));

    EXPECT_RC(-EINVAL, asyncio_loop_run_in_executor(NULL, NULL, nop_work, NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_run_in_executor(loop, NULL, NULL, NULL, &f));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_run_in_executor(closed, NULL, nop_work, NULL, &f));
    EXPECT_RC(-EINVAL, asyncio_loop_set_default_executor(NULL, NULL));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_set_default_executor(closed, NULL));
    EXPECT_RC(-EINVAL, asyncio_loop_shutdown_default_executor(NULL, &f));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_shutdown_default_executor(closed, &f));
    ck_assert_ptr_null(f);

    /* _full takes arg over on failure: arg_destroy runs before it returns. */
    arg_destroyed = 0;
    EXPECT_RC(-EINVAL, asyncio_loop_run_in_executor_full(NULL, NULL, nop_work, &ex, count_destroy,
                                                         NULL, &f));
    EXPECT_RC(-EINVAL,
              asyncio_loop_run_in_executor_full(loop, NULL, NULL, &ex, count_destroy, NULL, &f));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_run_in_executor_full(closed, NULL, nop_work, &ex,
                                                                 count_destroy, NULL, &f));
    ck_assert_int_eq(arg_destroyed, 3);

    /* A shut-down executor, and an implementation that refuses. */
    ck_assert_int_eq(asyncio_thread_pool_executor_new(1, &down), 0);
    ck_assert_int_eq(asyncio_executor_shutdown(down, 1), 0);
    EXPECT_RC(0, asyncio_executor_shutdown(down, 1));
    EXPECT_RC(0, asyncio_executor_shutdown(down, 0));
    EXPECT_RC(-ESHUTDOWN, asyncio_loop_run_in_executor(loop, down, nop_work, NULL, &f));
    EXPECT_RC(-ESHUTDOWN, asyncio_loop_run_in_executor_full(loop, down, nop_work, &ex,
                                                            count_destroy, NULL, &f));
    ck_assert_int_eq(arg_destroyed, 4);
    EXPECT_RC(0, asyncio_loop_set_default_executor(loop, down));
    EXPECT_RC(-ESHUTDOWN, asyncio_loop_run_in_executor(loop, NULL, nop_work, NULL, &f));
    EXPECT_RC(0, asyncio_loop_set_default_executor(loop, NULL));
    EXPECT_RC(0, asyncio_loop_shutdown_default_executor(loop, NULL));
    EXPECT_RC(-ESHUTDOWN, asyncio_loop_run_in_executor(loop, NULL, nop_work, NULL, &f));
    asyncio_executor *refuser;
    ck_assert_int_eq(asyncio_executor_new(&refusing, NULL, &refuser), 0);
    EXPECT_RC(-EAGAIN, asyncio_loop_run_in_executor(loop, refuser, nop_work, NULL, &f));
    ck_assert_ptr_null(f);
    asyncio_executor_unref(refuser);
    asyncio_executor_unref(down);

    asyncio_loop_unref(closed);
    tu_free_loop(loop);
    cases_done();
}
END_TEST

/* ---- TLS ------------------------------------------------------------------------------------ */

START_TEST(tls_calls_reject_bad_input)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_loop *closed = closed_loop();
    asyncio_loop *other = tu_new_guarded_loop();
    asyncio_future *f = NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(ctx);
    proto p = {0}, po = {0}, pp = {0};
    int peer, other_peer;
    asyncio_transport *t = stream_transport(loop, &p, &peer);
    asyncio_transport *ot = stream_transport(other, &po, &other_peer);

    EXPECT_RC(-EINVAL, asyncio_loop_start_tls(NULL, t, ctx, 0, "", &f));
    EXPECT_RC(-EINVAL, asyncio_loop_start_tls(loop, NULL, ctx, 0, "", &f));
    EXPECT_RC(-EINVAL, asyncio_loop_start_tls(loop, t, NULL, 0, "", &f));
    EXPECT_RC(-EINVAL, asyncio_loop_start_tls(loop, ot, ctx, 0, "", &f));
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_loop_start_tls(closed, t, ctx, 0, "", &f));
    EXPECT_NULL(asyncio_future_ssl_error(NULL));
    asyncio_future *plain;
    ck_assert_int_eq(asyncio_loop_create_future(loop, &plain), 0);
    EXPECT_NULL(asyncio_future_ssl_error(plain));
    asyncio_future_cancel(plain);
    asyncio_future_unref(plain);
    EXPECT_NONNULL(asyncio_default_ssl_context());

    /* A pipe transport is not a socket stream. */
    int pfd = pipe_fd();
    ck_assert_int_eq(asyncio_loop_connect_read_pipe(loop, p_factory, &pp, pfd, &f), 0);
    asyncio_transport *pt = result_of(loop, f);
    asyncio_transport_ref(pt);
    asyncio_future_unref(f);
    f = NULL;
    EXPECT_RC(-ENOTSUP, asyncio_loop_start_tls(loop, pt, ctx, 0, "", &f));

    /* A closed stream transport. */
    close_and_wait(loop, t, &p);
    EXPECT_RC(-EINVAL, asyncio_loop_start_tls(loop, t, ctx, 0, "", &f));
    ck_assert_ptr_null(f);

    asyncio_transport_abort(pt);
    asyncio_transport_unref(pt);
    asyncio_transport_unref(t);
    asyncio_transport_unref(ot);
    close(peer);
    close(other_peer);
    SSL_CTX_free(ctx);
    tu_free_loop(other);
    asyncio_loop_unref(closed);
    tu_free_loop(loop);
    cases_done();
}
END_TEST

/* ---- Streams --------------------------------------------------------------------------------- */

struct streams_ctx {
    int sock;
};

static int misuse_streams_inside_task(void *arg, void **result)
{
    struct streams_ctx *c = arg;
    asyncio_stream_reader *r = NULL;
    asyncio_stream_writer *w = NULL;
    char buf[8];
    (void)result;

    EXPECT_RC(-EINVAL, asyncio_open_connection("127.0.0.1", 1, NULL, NULL, &w));
    EXPECT_RC(-EINVAL, asyncio_open_connection("127.0.0.1", 1, NULL, &r, NULL));
    for (size_t i = 0; i < N_BAD_PORTS; i++)
        EXPECT_RC(-EINVAL, asyncio_open_connection("127.0.0.1", bad_ports[i], NULL, &r, &w));
    EXPECT_RC(-EINVAL, asyncio_start_server(NULL, NULL, "127.0.0.1", 0, NULL, NULL));
    for (size_t i = 0; i < N_BAD_PORTS; i++)
        EXPECT_RC(-EINVAL,
                  asyncio_start_server(nop_client, NULL, "127.0.0.1", bad_ports[i], NULL, NULL));

    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.sock = c->sock;
    ck_assert_int_eq(asyncio_open_connection(NULL, 0, &o, &r, &w), 0);
    EXPECT_RC(-EINVAL, asyncio_stream_read(r, NULL, 1));
    EXPECT_RC(-EINVAL, asyncio_stream_readline(r, NULL, 1));
    EXPECT_RC(-EINVAL, asyncio_stream_readexactly(r, NULL, 1));
    EXPECT_RC(0, asyncio_stream_read(r, buf, 0));
    EXPECT_RC(0, asyncio_stream_readexactly(r, buf, 0));
    EXPECT_RC(-EINVAL, asyncio_stream_write(w, NULL, 1));
    EXPECT_RC(0, asyncio_stream_at_eof(r));
    EXPECT_NONNULL(asyncio_stream_writer_get_transport(w));
    EXPECT_RC(0, asyncio_stream_close(w));
    return 0;
}

START_TEST(stream_calls_reject_bad_input)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    char buf[8];
    asyncio_stream_reader *r;
    asyncio_stream_writer *w;

    EXPECT_RC(-EINVAL, asyncio_stream_read(NULL, buf, sizeof(buf)));
    EXPECT_RC(-EINVAL, asyncio_stream_readline(NULL, buf, sizeof(buf)));
    EXPECT_RC(-EINVAL, asyncio_stream_readexactly(NULL, buf, sizeof(buf)));
    EXPECT_RC(-EINVAL, asyncio_stream_at_eof(NULL));
    EXPECT_RC(-EINVAL, asyncio_stream_write(NULL, "x", 1));
    EXPECT_RC(-EINVAL, asyncio_stream_write_eof(NULL));
    EXPECT_RC(-EINVAL, asyncio_stream_drain(NULL));
    EXPECT_RC(-EINVAL, asyncio_stream_close(NULL));
    EXPECT_NULL(asyncio_stream_writer_get_transport(NULL));
    /* Outside a task; start_server then uses the current loop. */
    EXPECT_RC(ASYNCIO_ENOTASK, asyncio_open_connection("127.0.0.1", 1, NULL, &r, &w));
    EXPECT_RC(-EINVAL, asyncio_start_server(NULL, NULL, "127.0.0.1", 0, NULL, NULL));
    asyncio_loop *closed = closed_loop();
    ck_assert_int_eq(asyncio_set_event_loop(closed), 0);
    EXPECT_RC(ASYNCIO_ECLOSED, asyncio_start_server(nop_client, NULL, "127.0.0.1", 0, NULL, NULL));
    ck_assert_int_eq(asyncio_set_event_loop(NULL), 0);
    asyncio_loop_unref(closed);

    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct streams_ctx c = {sv[0]};
    asyncio_future *t;
    ck_assert_int_eq(asyncio_loop_create_task(loop, misuse_streams_inside_task, &c, &t), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, t), 0);
    asyncio_future_unref(t);
    close(sv[1]);

    tu_free_loop(loop);
    cases_done();
}
END_TEST

/* ---- libevent interop --------------------------------------------------------------- */

START_TEST(libevent_calls_reject_bad_input)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    asyncio_loop *closed = closed_loop();
    asyncio_loop *l = NULL;
    asyncio_transport *t = NULL;
    proto p = {0};
    struct event_base *foreign = event_base_new();
    ck_assert_ptr_nonnull(foreign);

    EXPECT_NULL(asyncio_loop_get_event_base(NULL));
    EXPECT_NULL(asyncio_loop_get_event_base(closed));
    EXPECT_NULL(asyncio_loop_get_evdns_base(NULL));
    EXPECT_NULL(asyncio_loop_get_evdns_base(closed));
    EXPECT_RC(-EINVAL, asyncio_loop_new_from_event_base(NULL, &l));
    EXPECT_RC(-EINVAL, asyncio_loop_new_from_event_base(foreign, NULL));
    ck_assert_ptr_null(l);

    /* The bufferevent is taken over on failure too (ASan sees a leak if
     * it is not freed). */
    p.base.ops = &p_ops;
    struct event_base *base = asyncio_loop_get_event_base(loop);
    EXPECT_RC(-EINVAL,
              asyncio_transport_new_from_bufferevent(
                  NULL, bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE), &p.base, &t));
    EXPECT_RC(-EINVAL, asyncio_transport_new_from_bufferevent(loop, NULL, &p.base, &t));
    EXPECT_RC(-EINVAL,
              asyncio_transport_new_from_bufferevent(
                  loop, bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE), NULL, &t));
    EXPECT_RC(-EINVAL,
              asyncio_transport_new_from_bufferevent(
                  loop, bufferevent_socket_new(foreign, -1, BEV_OPT_CLOSE_ON_FREE), &p.base, &t));
    EXPECT_RC(ASYNCIO_ECLOSED,
              asyncio_transport_new_from_bufferevent(
                  closed, bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE), &p.base, &t));
    ck_assert_ptr_null(t);
    ck_assert_int_eq(p.made + p.lost, 0);

    event_base_free(foreign);
    asyncio_loop_unref(closed);
    tu_free_loop(loop);
    cases_done();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("badinput");
    struct {
        const char *name;
        const TTest *test;
    } groups[] = {
        {"errors", error_names_and_version_take_any_code},
        {"loop", loop_calls_reject_bad_input},
        {"policy", policy_calls_reject_bad_input},
        {"calls", calls_and_handles_reject_bad_input},
        {"futures", futures_reject_bad_input},
        {"tasks", tasks_reject_bad_input},
        {"transports", transports_reject_bad_input},
        {"servers", servers_reject_bad_input},
        {"network", network_calls_reject_bad_input},
        {"fd", fd_and_socket_calls_reject_bad_input},
        {"subprocess", subprocess_and_pipe_calls_reject_bad_input},
        {"signals", signal_calls_reject_bad_input},
        {"executor", executor_calls_reject_bad_input},
        {"tls", tls_calls_reject_bad_input},
        {"streams", stream_calls_reject_bad_input},
        {"libevent", libevent_calls_reject_bad_input},
    };
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        TCase *tc = tcase_create(groups[i].name);
        tcase_set_timeout(tc, 20);
        tcase_add_test(tc, groups[i].test);
        suite_add_tcase(s, tc);
    }
    return tu_run_suite(s);
}
