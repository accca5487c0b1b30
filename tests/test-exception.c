/* The exception handler (errors that have no caller) and debug mode. */
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- A recording handler --------------------------------------------------------- */

struct report {
    asyncio_loop *loop;
    char message[256];
    int has_message;
    int error;
    asyncio_future *future;
    asyncio_handle *handle;
    asyncio_transport *transport;
    asyncio_server *server;
    void *arg;
};

static struct report reports[16];
static int n_reports;

static void recording_handler(asyncio_loop *loop, const asyncio_error_context *ctx, void *arg)
{
    ck_assert_ptr_nonnull(ctx);
    if (n_reports < 16) {
        struct report *r = &reports[n_reports];
        r->loop = loop;
        r->has_message = ctx->message != NULL;
        if (ctx->message != NULL)
            snprintf(r->message, sizeof(r->message), "%s", ctx->message);
        r->error = ctx->error;
        r->future = ctx->future;
        r->handle = ctx->handle;
        r->transport = ctx->transport;
        r->server = ctx->server;
        r->arg = arg;
    }
    n_reports++;
}

/* Let anything the library schedules for reporting run. */
static void run_one_batch(asyncio_loop *loop)
{
    tu_call_soon_stop(loop);
    tu_run(loop);
}

/* ---- Capturing stderr --------------------------------------------------------------- */

struct capture {
    int saved;
    FILE *file;
};

static void capture_begin(struct capture *c)
{
    fflush(stderr);
    c->file = tmpfile();
    ck_assert_ptr_nonnull(c->file);
    c->saved = dup(STDERR_FILENO);
    ck_assert_int_ge(c->saved, 0);
    ck_assert_int_ge(dup2(fileno(c->file), STDERR_FILENO), 0);
}

/* Restore stderr and return what was written (malloc'd, NUL-terminated). */
static char *capture_end(struct capture *c)
{
    fflush(stderr);
    ck_assert_int_ge(dup2(c->saved, STDERR_FILENO), 0);
    close(c->saved);
    ck_assert_int_eq(fseek(c->file, 0, SEEK_END), 0);
    long n = ftell(c->file);
    ck_assert_int_ge(n, 0);
    rewind(c->file);
    char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, c->file), (size_t)n);
    buf[n] = '\0';
    fclose(c->file);
    return buf;
}

static int count_char(const char *s, char ch)
{
    int n = 0;
    for (; *s; s++)
        n += *s == ch;
    return n;
}

static void expect_one_line_with(const char *out, const char *needle)
{
    size_t len = strlen(out);
    ck_assert_msg(len > 0, "nothing written to stderr");
    ck_assert_msg(count_char(out, '\n') == 1 && out[len - 1] == '\n',
                  "expected exactly one line on stderr, got \"%s\"", out);
    ck_assert_msg(strstr(out, needle) != NULL, "\"%s\" not in \"%s\"", needle, out);
}

/* ---- The handler ------------------------------------------------------------------------ */

START_TEST(custom_handler_receives_the_context_fields)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = NULL;
    asyncio_handle *h = NULL;
    ck_assert_int_eq(asyncio_loop_create_future(loop, &f), 0);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 100, tu_stop_cb, loop, &h), 0);
    int arg;
    ck_assert_int_eq(asyncio_loop_set_exception_handler(loop, recording_handler, &arg), 0);

    asyncio_error_context ctx = {"something broke", -EIO, f, h, NULL, NULL};
    asyncio_loop_call_exception_handler(loop, &ctx);
    ck_assert_int_eq(n_reports, 1);
    ck_assert_ptr_eq(reports[0].loop, loop);
    ck_assert_int_eq(reports[0].has_message, 1);
    ck_assert_str_eq(reports[0].message, "something broke");
    ck_assert_int_eq(reports[0].error, -EIO);
    ck_assert_ptr_eq(reports[0].future, f);
    ck_assert_ptr_eq(reports[0].handle, h);
    ck_assert_ptr_null(reports[0].transport);
    ck_assert_ptr_null(reports[0].server);
    ck_assert_ptr_eq(reports[0].arg, &arg);

    asyncio_handle_unref(h);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(setting_a_null_handler_restores_the_default)
{
    asyncio_loop *loop = tu_new_loop();
    ck_assert_int_eq(asyncio_loop_set_exception_handler(loop, recording_handler, NULL), 0);
    ck_assert_int_eq(asyncio_loop_set_exception_handler(loop, NULL, NULL), 0);
    asyncio_error_context ctx = {"after reset", -EIO, NULL, NULL, NULL, NULL};
    struct capture cap;
    capture_begin(&cap);
    asyncio_loop_call_exception_handler(loop, &ctx);
    char *out = capture_end(&cap);
    ck_assert_int_eq(n_reports, 0);
    expect_one_line_with(out, "after reset");
    free(out);
    tu_free_loop(loop);
}
END_TEST

START_TEST(default_handler_writes_one_line_to_stderr)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_error_context ctx = {"boom happened", -ECONNRESET, NULL, NULL, NULL, NULL};
    struct capture cap;
    capture_begin(&cap);
    asyncio_loop_default_exception_handler(loop, &ctx);
    char *out = capture_end(&cap);
    expect_one_line_with(out, "boom happened");
    free(out);
    tu_free_loop(loop);
}
END_TEST

START_TEST(call_exception_handler_without_a_handler_writes_one_line_to_stderr)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_error_context ctx = {"no handler here", 0, NULL, NULL, NULL, NULL};
    struct capture cap;
    capture_begin(&cap);
    asyncio_loop_call_exception_handler(loop, &ctx);
    char *out = capture_end(&cap);
    expect_one_line_with(out, "no handler here");
    free(out);
    tu_free_loop(loop);
}
END_TEST

START_TEST(default_handler_writes_one_line_for_a_multiline_message)
{
    /* "One line": a message with newlines must not break the format. */
    asyncio_loop *loop = tu_new_loop();
    asyncio_error_context ctx = {"first\nsecond", -EIO, NULL, NULL, NULL, NULL};
    struct capture cap;
    capture_begin(&cap);
    asyncio_loop_default_exception_handler(loop, &ctx);
    char *out = capture_end(&cap);
    expect_one_line_with(out, "first");
    free(out);
    tu_free_loop(loop);
}
END_TEST

/* ---- Futures freed with an error nobody retrieved ------------------------------------------ */

START_TEST(future_freed_with_an_unretrieved_error_reaches_the_handler)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_set_exception_handler(loop, recording_handler, NULL), 0);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_future(loop, &f), 0);
    ck_assert_int_eq(asyncio_future_set_exception(f, -ECONNRESET), 0);
    asyncio_future_unref(f);
    run_one_batch(loop);
    ck_assert_int_eq(n_reports, 1);
    ck_assert_int_eq(reports[0].error, -ECONNRESET);
    ck_assert_int_eq(reports[0].has_message, 1);
    ck_assert_ptr_eq(reports[0].loop, loop);
    tu_free_loop(loop);
}
END_TEST

START_TEST(future_whose_error_was_retrieved_by_result_is_not_reported)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_set_exception_handler(loop, recording_handler, NULL), 0);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_future(loop, &f), 0);
    ck_assert_int_eq(asyncio_future_set_exception(f, -ECONNRESET), 0);
    void *r = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &r), -ECONNRESET);
    asyncio_future_unref(f);
    run_one_batch(loop);
    ck_assert_int_eq(n_reports, 0);
    tu_free_loop(loop);
}
END_TEST

START_TEST(future_whose_error_was_retrieved_by_exception_is_not_reported)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_set_exception_handler(loop, recording_handler, NULL), 0);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_future(loop, &f), 0);
    ck_assert_int_eq(asyncio_future_set_exception(f, -ECONNRESET), 0);
    ck_assert_int_eq(asyncio_future_exception(f), -ECONNRESET);
    asyncio_future_unref(f);
    run_one_batch(loop);
    ck_assert_int_eq(n_reports, 0);
    tu_free_loop(loop);
}
END_TEST

START_TEST(future_freed_with_a_result_or_cancelled_is_not_reported)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_set_exception_handler(loop, recording_handler, NULL), 0);
    asyncio_future *f = NULL, *g = NULL;
    ck_assert_int_eq(asyncio_loop_create_future(loop, &f), 0);
    ck_assert_int_eq(asyncio_loop_create_future(loop, &g), 0);
    ck_assert_int_eq(asyncio_future_set_result(f, NULL, NULL), 0);
    ck_assert_int_eq(asyncio_future_cancel(g), 1);
    asyncio_future_unref(f);
    asyncio_future_unref(g);
    run_one_batch(loop);
    ck_assert_int_eq(n_reports, 0);
    tu_free_loop(loop);
}
END_TEST

/* ---- Debug mode ------------------------------------------------------------------------------ */

START_TEST(set_debug_and_get_debug)
{
    asyncio_loop *loop = tu_new_loop();
    ck_assert_int_eq(asyncio_loop_set_debug(loop, 1), 0);
    ck_assert_int_eq(asyncio_loop_get_debug(loop), 1);
    ck_assert_int_eq(asyncio_loop_set_debug(loop, 0), 0);
    ck_assert_int_eq(asyncio_loop_get_debug(loop), 0);
    ck_assert_int_eq(asyncio_loop_set_debug(loop, 7), 0);
    ck_assert_int_eq(asyncio_loop_get_debug(loop), 1);
    ck_assert_int_eq(asyncio_loop_set_debug(loop, 0), 0);
    tu_free_loop(loop);
}
END_TEST

static void slow_cb(void *arg)
{
    (void)arg;
    tu_busy_wait(0.05);
}

static void fast_cb(void *arg) { (void)arg; }

static int reports_for_callback(int debug, double duration, asyncio_callback cb)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_set_exception_handler(loop, recording_handler, NULL), 0);
    ck_assert_int_eq(asyncio_loop_set_debug(loop, debug), 0);
    if (duration >= 0)
        ck_assert_int_eq(asyncio_loop_set_slow_callback_duration(loop, duration), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, cb, NULL, NULL), 0);
    run_one_batch(loop);
    int n = n_reports;
    ck_assert_int_eq(asyncio_loop_set_debug(loop, 0), 0);
    tu_free_loop(loop);
    return n;
}

START_TEST(slow_callback_is_reported_in_debug_mode)
{
    ck_assert_int_eq(reports_for_callback(1, 0.01, slow_cb), 1);
    ck_assert_int_eq(reports[0].has_message, 1);
}
END_TEST

START_TEST(fast_callback_is_not_reported_in_debug_mode)
{
    ck_assert_int_eq(reports_for_callback(1, 0.01, fast_cb), 0);
}
END_TEST

START_TEST(slow_callback_is_not_reported_without_debug_mode)
{
    ck_assert_int_eq(reports_for_callback(0, 0.01, slow_cb), 0);
}
END_TEST

START_TEST(callback_below_the_default_slow_duration_is_not_reported)
{
    /* The default threshold is 0.1 s; 0.05 s is below it. */
    ck_assert_int_eq(reports_for_callback(1, -1, slow_cb), 0);
}
END_TEST

START_TEST(set_slow_callback_duration_rejects_negative_and_non_finite_values)
{
    asyncio_loop *loop = tu_new_loop();
    ck_assert_int_eq(asyncio_loop_set_slow_callback_duration(loop, -0.5), -EINVAL);
    ck_assert_int_eq(asyncio_loop_set_slow_callback_duration(loop, -1e-9), -EINVAL);
    ck_assert_int_eq(asyncio_loop_set_slow_callback_duration(loop, NAN), -EINVAL);
    ck_assert_int_eq(asyncio_loop_set_slow_callback_duration(loop, INFINITY), -EINVAL);
    ck_assert_int_eq(asyncio_loop_set_slow_callback_duration(loop, 0.0), 0);
    ck_assert_int_eq(asyncio_loop_set_slow_callback_duration(loop, 0.5), 0);
    tu_free_loop(loop);
}
END_TEST

START_TEST(pending_future_released_in_debug_mode_is_reported)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_set_exception_handler(loop, recording_handler, NULL), 0);
    ck_assert_int_eq(asyncio_loop_set_debug(loop, 1), 0);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_future(loop, &f), 0);
    asyncio_future_unref(f);
    run_one_batch(loop);
    ck_assert_int_eq(n_reports, 1);
    ck_assert_int_eq(reports[0].has_message, 1);
    ck_assert_int_eq(asyncio_loop_set_debug(loop, 0), 0);
    tu_free_loop(loop);
}
END_TEST

START_TEST(pending_future_released_without_debug_mode_is_not_reported)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_set_exception_handler(loop, recording_handler, NULL), 0);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_future(loop, &f), 0);
    asyncio_future_unref(f);
    run_one_batch(loop);
    ck_assert_int_eq(n_reports, 0);
    tu_free_loop(loop);
}
END_TEST

START_TEST(pending_handle_dropped_by_close_in_debug_mode_is_reported)
{
    asyncio_loop *loop = tu_new_loop();
    ck_assert_int_eq(asyncio_loop_set_exception_handler(loop, recording_handler, NULL), 0);
    ck_assert_int_eq(asyncio_loop_set_debug(loop, 1), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, fast_cb, NULL, NULL), 0);
    asyncio_handle *cancelled = NULL;
    ck_assert_int_eq(asyncio_loop_call_later(loop, 10, fast_cb, NULL, &cancelled), 0);
    ck_assert_int_eq(asyncio_handle_cancel(cancelled), 0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    /* The call that never ran is reported; the cancelled one is not. */
    ck_assert_int_eq(n_reports, 1);
    ck_assert_int_eq(reports[0].has_message, 1);
    asyncio_handle_unref(cancelled);
    asyncio_loop_unref(loop);
}
END_TEST

static void never_cb(asyncio_future *f, void *arg)
{
    (void)f;
    (void)arg;
    ck_abort_msg("done callback ran after close");
}

START_TEST(future_with_an_unretrieved_error_freed_by_close_is_reported)
{
    /* Only a scheduled done callback holds the future; close drops it. */
    asyncio_loop *loop = tu_new_loop();
    ck_assert_int_eq(asyncio_loop_set_exception_handler(loop, recording_handler, NULL), 0);
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_create_future(loop, &f), 0);
    ck_assert_int_eq(asyncio_future_add_done_callback(f, never_cb, NULL), 0);
    ck_assert_int_eq(asyncio_future_set_exception(f, -EPIPE), 0);
    asyncio_future_unref(f);
    ck_assert_int_eq(n_reports, 0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(n_reports, 1);
    ck_assert_int_eq(reports[0].error, -EPIPE);
    asyncio_loop_unref(loop);
}
END_TEST

static Suite *exception_suite(void)
{
    Suite *s = suite_create("exception");
    TCase *tc = tcase_create("handler");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, custom_handler_receives_the_context_fields);
    tcase_add_test(tc, setting_a_null_handler_restores_the_default);
    tcase_add_test(tc, default_handler_writes_one_line_to_stderr);
    tcase_add_test(tc, call_exception_handler_without_a_handler_writes_one_line_to_stderr);
    tcase_add_test(tc, default_handler_writes_one_line_for_a_multiline_message);
    suite_add_tcase(s, tc);

    tc = tcase_create("futures");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, future_freed_with_an_unretrieved_error_reaches_the_handler);
    tcase_add_test(tc, future_whose_error_was_retrieved_by_result_is_not_reported);
    tcase_add_test(tc, future_whose_error_was_retrieved_by_exception_is_not_reported);
    tcase_add_test(tc, future_freed_with_a_result_or_cancelled_is_not_reported);
    tcase_add_test(tc, future_with_an_unretrieved_error_freed_by_close_is_reported);
    suite_add_tcase(s, tc);

    tc = tcase_create("debug");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, set_debug_and_get_debug);
    tcase_add_test(tc, slow_callback_is_reported_in_debug_mode);
    tcase_add_test(tc, fast_callback_is_not_reported_in_debug_mode);
    tcase_add_test(tc, slow_callback_is_not_reported_without_debug_mode);
    tcase_add_test(tc, callback_below_the_default_slow_duration_is_not_reported);
    tcase_add_test(tc, set_slow_callback_duration_rejects_negative_and_non_finite_values);
    tcase_add_test(tc, pending_future_released_in_debug_mode_is_reported);
    tcase_add_test(tc, pending_future_released_without_debug_mode_is_not_reported);
    tcase_add_test(tc, pending_handle_dropped_by_close_in_debug_mode_is_reported);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(exception_suite()); }
