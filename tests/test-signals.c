/* Signal handlers: delivery as loop callbacks, validation, removal,
 * restoring dispositions and the one-loop-at-a-time rule. */
#include "testutil.h"

#include <event2/event.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sig_ctx {
    asyncio_loop *loop;
    tu_recorder rec;
    volatile sig_atomic_t in_kill;
    int ran_in_kill;
    int running_in_cb;
    int count;
    pthread_t thread;
    int other_thread;
};

static void sig_record_cb(void *arg)
{
    struct sig_ctx *c = arg;
    if (c->in_kill)
        c->ran_in_kill = 1;
    if (!pthread_equal(pthread_self(), c->thread))
        c->other_thread = 1;
    c->running_in_cb = asyncio_loop_is_running(c->loop);
    c->count++;
    tu_rec_push(&c->rec, 2);
    /* Not async-signal-safe: only allowed because this is a loop callback. */
    ck_assert_int_eq(asyncio_loop_stop(c->loop), 0);
}

static void kill_usr1_cb(void *arg)
{
    struct sig_ctx *c = arg;
    c->in_kill = 1;
    ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
    c->in_kill = 0;
    tu_rec_push(&c->rec, 1);
}

static void sig_ctx_init(struct sig_ctx *c)
{
    memset(c, 0, sizeof(*c));
    c->loop = tu_new_guarded_loop();
    c->thread = pthread_self();
    tu_rec_init(&c->rec);
}

static void sig_ctx_free(struct sig_ctx *c)
{
    tu_rec_free(&c->rec);
    tu_free_loop(c->loop);
}

START_TEST(signal_handler_runs_as_a_loop_callback_after_the_kill)
{
    struct sig_ctx c;
    sig_ctx_init(&c);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(c.loop, SIGUSR1, sig_record_cb, &c), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(c.loop, kill_usr1_cb, &c, NULL), 0);
    tu_run(c.loop);
    static const int expected[] = {1, 2};
    tu_rec_expect(&c.rec, expected, 2);
    ck_assert_int_eq(c.ran_in_kill, 0);
    ck_assert_int_eq(c.other_thread, 0);
    ck_assert_int_eq(c.running_in_cb, 1);
    sig_ctx_free(&c);
}
END_TEST

START_TEST(signal_arriving_before_run_forever_is_handled_once_it_runs)
{
    struct sig_ctx c;
    sig_ctx_init(&c);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(c.loop, SIGUSR1, sig_record_cb, &c), 0);
    ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
    ck_assert_int_eq(c.count, 0);
    tu_run(c.loop);
    ck_assert_int_eq(c.count, 1);
    sig_ctx_free(&c);
}
END_TEST

static void nop_cb(void *arg) { (void)arg; }

START_TEST(invalid_or_uncatchable_signals_return_einval)
{
    asyncio_loop *loop = tu_new_loop();
    static const int bad[] = {SIGKILL, SIGSTOP, 0, -1, NSIG + 5, NSIG};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(asyncio_loop_add_signal_handler(loop, bad[i], nop_cb, NULL) == -EINVAL,
                      "signal %d accepted", bad[i]);
    tu_free_loop(loop);
}
END_TEST

START_TEST(remove_signal_handler_returns_1_then_0)
{
    asyncio_loop *loop = tu_new_loop();
    ck_assert_int_eq(asyncio_loop_remove_signal_handler(loop, SIGUSR1), 0);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(loop, SIGUSR1, nop_cb, NULL), 0);
    ck_assert_int_eq(asyncio_loop_remove_signal_handler(loop, SIGUSR1), 1);
    ck_assert_int_eq(asyncio_loop_remove_signal_handler(loop, SIGUSR1), 0);
    tu_free_loop(loop);
}
END_TEST

static volatile sig_atomic_t old_handler_hits;

static void old_handler(int sig)
{
    (void)sig;
    old_handler_hits++;
}

static void install_old_handler(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = old_handler;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(sig, &sa, NULL), 0);
}

typedef void (*sig_handler_fn)(int);

static sig_handler_fn current_handler(int sig)
{
    struct sigaction sa;
    ck_assert_int_eq(sigaction(sig, NULL, &sa), 0);
    ck_assert_msg(!(sa.sa_flags & SA_SIGINFO) || sa.sa_handler != old_handler,
                  "unexpected SA_SIGINFO with the old handler");
    return sa.sa_handler;
}

START_TEST(removing_a_handler_restores_the_previous_disposition)
{
    install_old_handler(SIGUSR2);
    asyncio_loop *loop = tu_new_loop();
    ck_assert_int_eq(asyncio_loop_add_signal_handler(loop, SIGUSR2, nop_cb, NULL), 0);
    ck_assert(current_handler(SIGUSR2) != old_handler);
    ck_assert_int_eq(asyncio_loop_remove_signal_handler(loop, SIGUSR2), 1);
    ck_assert(current_handler(SIGUSR2) == old_handler);
    ck_assert_int_eq(raise(SIGUSR2), 0);
    ck_assert_int_eq(old_handler_hits, 1);
    tu_free_loop(loop);
}
END_TEST

START_TEST(removing_a_handler_restores_an_ignored_disposition)
{
    ck_assert(signal(SIGUSR2, SIG_IGN) != SIG_ERR);
    asyncio_loop *loop = tu_new_loop();
    ck_assert_int_eq(asyncio_loop_add_signal_handler(loop, SIGUSR2, nop_cb, NULL), 0);
    ck_assert(current_handler(SIGUSR2) != SIG_IGN);
    ck_assert_int_eq(asyncio_loop_remove_signal_handler(loop, SIGUSR2), 1);
    ck_assert(current_handler(SIGUSR2) == SIG_IGN);
    tu_free_loop(loop);
}
END_TEST

START_TEST(closing_the_loop_restores_the_previous_disposition)
{
    install_old_handler(SIGUSR1);
    install_old_handler(SIGUSR2);
    asyncio_loop *loop = tu_new_loop();
    ck_assert_int_eq(asyncio_loop_add_signal_handler(loop, SIGUSR1, nop_cb, NULL), 0);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(loop, SIGUSR2, nop_cb, NULL), 0);
    ck_assert(current_handler(SIGUSR1) != old_handler);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert(current_handler(SIGUSR1) == old_handler);
    ck_assert(current_handler(SIGUSR2) == old_handler);
    ck_assert_int_eq(raise(SIGUSR1), 0);
    ck_assert_int_eq(old_handler_hits, 1);
    asyncio_loop_unref(loop);
}
END_TEST

static void replaced_cb(void *arg)
{
    (void)arg;
    ck_abort_msg("the replaced signal handler ran");
}

START_TEST(replacing_a_handler_calls_only_the_new_one)
{
    struct sig_ctx c;
    sig_ctx_init(&c);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(c.loop, SIGUSR1, replaced_cb, NULL), 0);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(c.loop, SIGUSR1, sig_record_cb, &c), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(c.loop, kill_usr1_cb, &c, NULL), 0);
    tu_run(c.loop);
    ck_assert_int_eq(c.count, 1);
    /* Replacing keeps one handler: one removal empties it. */
    ck_assert_int_eq(asyncio_loop_remove_signal_handler(c.loop, SIGUSR1), 1);
    ck_assert_int_eq(asyncio_loop_remove_signal_handler(c.loop, SIGUSR1), 0);
    sig_ctx_free(&c);
}
END_TEST

static int usr1_hits, usr2_hits;

static void usr1_cb(void *arg)
{
    usr1_hits++;
    if (usr1_hits && usr2_hits)
        ck_assert_int_eq(asyncio_loop_stop(arg), 0);
}

static void usr2_cb(void *arg)
{
    usr2_hits++;
    if (usr1_hits && usr2_hits)
        ck_assert_int_eq(asyncio_loop_stop(arg), 0);
}

static void kill_both_cb(void *arg)
{
    (void)arg;
    ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
    ck_assert_int_eq(kill(getpid(), SIGUSR2), 0);
}

START_TEST(handlers_for_two_signals_each_run_their_own_callback)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_add_signal_handler(loop, SIGUSR1, usr1_cb, loop), 0);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(loop, SIGUSR2, usr2_cb, loop), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, kill_both_cb, loop, NULL), 0);
    tu_run(loop);
    ck_assert_int_eq(usr1_hits, 1);
    ck_assert_int_eq(usr2_hits, 1);
    tu_free_loop(loop);
}
END_TEST

START_TEST(second_loop_gets_ebusy_while_the_first_holds_a_handler)
{
    asyncio_loop *a = tu_new_loop(), *b = tu_new_loop();
    ck_assert_int_eq(asyncio_loop_add_signal_handler(a, SIGUSR1, nop_cb, NULL), 0);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(b, SIGUSR1, nop_cb, NULL), -EBUSY);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(b, SIGUSR2, nop_cb, NULL), -EBUSY);
    /* The first loop's handler is untouched by the refusal. */
    ck_assert_int_eq(asyncio_loop_remove_signal_handler(b, SIGUSR1), 0);
    ck_assert_int_eq(asyncio_loop_remove_signal_handler(a, SIGUSR1), 1);
    tu_free_loop(b);
    tu_free_loop(a);
}
END_TEST

START_TEST(second_loop_can_add_a_handler_after_the_first_closes)
{
    asyncio_loop *a = tu_new_loop();
    struct sig_ctx c;
    sig_ctx_init(&c);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(a, SIGUSR1, nop_cb, NULL), 0);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(c.loop, SIGUSR1, sig_record_cb, &c), -EBUSY);
    tu_free_loop(a);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(c.loop, SIGUSR1, sig_record_cb, &c), 0);
    /* And its handler works. */
    ck_assert_int_eq(asyncio_loop_call_soon(c.loop, kill_usr1_cb, &c, NULL), 0);
    tu_run(c.loop);
    ck_assert_int_eq(c.count, 1);
    sig_ctx_free(&c);
}
END_TEST

START_TEST(second_loop_can_add_a_handler_after_the_first_removes_its_last)
{
    asyncio_loop *a = tu_new_loop();
    struct sig_ctx c;
    sig_ctx_init(&c);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(a, SIGUSR1, nop_cb, NULL), 0);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(a, SIGUSR2, nop_cb, NULL), 0);
    ck_assert_int_eq(asyncio_loop_remove_signal_handler(a, SIGUSR1), 1);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(c.loop, SIGUSR1, sig_record_cb, &c), -EBUSY);
    ck_assert_int_eq(asyncio_loop_remove_signal_handler(a, SIGUSR2), 1);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(c.loop, SIGUSR1, sig_record_cb, &c), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(c.loop, kill_usr1_cb, &c, NULL), 0);
    tu_run(c.loop);
    ck_assert_int_eq(c.count, 1);
    sig_ctx_free(&c);
    tu_free_loop(a);
}
END_TEST

static int burst_count;

static void burst_sig_cb(void *arg)
{
    burst_count++;
    ck_assert_int_eq(asyncio_loop_stop(arg), 0);
}

static void burst_cb(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
    tu_busy_wait(0.05); /* the loop is busy while they arrive */
    ck_assert_int_eq(burst_count, 0);
}

START_TEST(burst_of_signals_while_the_loop_is_busy_runs_the_callback)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    ck_assert_int_eq(asyncio_loop_add_signal_handler(loop, SIGUSR1, burst_sig_cb, loop), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, burst_cb, loop, NULL), 0);
    tu_run(loop);
    ck_assert_int_ge(burst_count, 1);
    ck_assert_int_le(burst_count, 10);
    tu_free_loop(loop);
}
END_TEST

static void must_not_run_cb(void *arg)
{
    (void)arg;
    ck_abort_msg("a removed signal handler ran");
}

/* The signal is delivered and its callback queued (libevent is polled from
 * inside this callback), then the handler is removed before it runs. */
static void kill_then_remove_cb(void *arg)
{
    asyncio_loop *loop = arg;
    ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
    ck_assert_int_eq(event_base_loop(asyncio_loop_get_event_base(loop), EVLOOP_NONBLOCK), 0);
    ck_assert_int_eq(asyncio_loop_remove_signal_handler(loop, SIGUSR1), 1);
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.05, tu_stop_cb, loop, NULL), 0);
}

START_TEST(removing_a_handler_cancels_a_delivery_not_yet_run)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    /* Keep SIGUSR1 from killing the test once the handler is gone. */
    signal(SIGUSR1, SIG_IGN);
    ck_assert_int_eq(asyncio_loop_add_signal_handler(loop, SIGUSR1, must_not_run_cb, NULL), 0);
    ck_assert_int_eq(asyncio_loop_call_soon(loop, kill_then_remove_cb, loop, NULL), 0);
    tu_run(loop);
    tu_free_loop(loop);
}
END_TEST

static Suite *signals_suite(void)
{
    Suite *s = suite_create("signals");
    TCase *tc = tcase_create("delivery");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, signal_handler_runs_as_a_loop_callback_after_the_kill);
    tcase_add_test(tc, signal_arriving_before_run_forever_is_handled_once_it_runs);
    tcase_add_test(tc, replacing_a_handler_calls_only_the_new_one);
    tcase_add_test(tc, handlers_for_two_signals_each_run_their_own_callback);
    tcase_add_test(tc, burst_of_signals_while_the_loop_is_busy_runs_the_callback);
    suite_add_tcase(s, tc);

    tc = tcase_create("registration");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, invalid_or_uncatchable_signals_return_einval);
    tcase_add_test(tc, remove_signal_handler_returns_1_then_0);
    tcase_add_test(tc, removing_a_handler_cancels_a_delivery_not_yet_run);
    tcase_add_test(tc, removing_a_handler_restores_the_previous_disposition);
    tcase_add_test(tc, removing_a_handler_restores_an_ignored_disposition);
    tcase_add_test(tc, closing_the_loop_restores_the_previous_disposition);
    suite_add_tcase(s, tc);

    tc = tcase_create("one_loop");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, second_loop_gets_ebusy_while_the_first_holds_a_handler);
    tcase_add_test(tc, second_loop_can_add_a_handler_after_the_first_closes);
    tcase_add_test(tc, second_loop_can_add_a_handler_after_the_first_removes_its_last);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(signals_suite()); }
