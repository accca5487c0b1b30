/* Event loop policies: the default one-loop-per-thread policy and user
 * policies. */
#include "testutil.h"

#include <pthread.h>
#include <stdlib.h>

/* ---- The default policy ------------------------------------------------------ */

START_TEST(get_event_loop_in_main_thread_creates_a_loop_on_first_use)
{
    asyncio_loop *a = NULL, *b = NULL;
    ck_assert_int_eq(asyncio_get_event_loop(&a), 0);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(asyncio_loop_is_closed(a), 0);
    ck_assert_int_eq(asyncio_get_event_loop(&b), 0);
    ck_assert_ptr_eq(a, b);
    /* It is a working loop. */
    tu_guard(a, TU_GUARD_SECONDS);
    tu_call_soon_stop(a);
    tu_run(a);
    ck_assert_int_eq(asyncio_set_event_loop(NULL), 0);
}
END_TEST

struct thread_result {
    int rc, rc2, rc3;
    asyncio_loop *loop, *loop2;
    asyncio_loop *seen;
};

static void *get_in_thread(void *arg)
{
    struct thread_result *r = arg;
    r->loop = NULL;
    r->rc = asyncio_get_event_loop(&r->loop);
    return NULL;
}

static void run_thread(void *(*fn)(void *), struct thread_result *r)
{
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, fn, r), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
}

START_TEST(get_event_loop_in_another_thread_without_a_loop_returns_enoloop)
{
    struct thread_result r = {0};
    run_thread(get_in_thread, &r);
    ck_assert_int_eq(r.rc, ASYNCIO_ENOLOOP);
}
END_TEST

START_TEST(get_event_loop_in_another_thread_returns_enoloop_even_when_main_has_a_loop)
{
    asyncio_loop *main_loop = NULL;
    ck_assert_int_eq(asyncio_get_event_loop(&main_loop), 0);
    struct thread_result r = {0};
    run_thread(get_in_thread, &r);
    ck_assert_int_eq(r.rc, ASYNCIO_ENOLOOP);
    ck_assert_int_eq(asyncio_set_event_loop(NULL), 0);
}
END_TEST

static void *set_then_get_in_thread(void *arg)
{
    struct thread_result *r = arg;
    r->rc = asyncio_new_event_loop(&r->loop);
    if (r->rc != 0)
        return NULL;
    r->rc2 = asyncio_set_event_loop(r->loop);
    r->rc3 = asyncio_get_event_loop(&r->seen);
    asyncio_set_event_loop(NULL);
    return NULL;
}

START_TEST(set_event_loop_in_a_thread_makes_get_event_loop_return_it)
{
    struct thread_result r = {0};
    run_thread(set_then_get_in_thread, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.rc2, 0);
    ck_assert_int_eq(r.rc3, 0);
    ck_assert_ptr_eq(r.seen, r.loop);
    tu_free_loop(r.loop);
}
END_TEST

static void *set_null_then_get_in_thread(void *arg)
{
    struct thread_result *r = arg;
    r->rc = asyncio_new_event_loop(&r->loop);
    if (r->rc != 0)
        return NULL;
    r->rc2 = asyncio_set_event_loop(r->loop);
    if (r->rc2 == 0)
        r->rc2 = asyncio_set_event_loop(NULL);
    r->seen = NULL;
    r->rc3 = asyncio_get_event_loop(&r->seen);
    return NULL;
}

START_TEST(set_event_loop_null_unsets_the_current_loop)
{
    struct thread_result r = {0};
    run_thread(set_null_then_get_in_thread, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.rc2, 0);
    ck_assert_int_eq(r.rc3, ASYNCIO_ENOLOOP);
    /* The policy let go of its reference, ours is still good. */
    ck_assert_int_eq(asyncio_loop_is_closed(r.loop), 0);
    tu_free_loop(r.loop);
}
END_TEST

START_TEST(event_loops_are_per_thread)
{
    asyncio_loop *main_loop = NULL;
    ck_assert_int_eq(asyncio_get_event_loop(&main_loop), 0);
    struct thread_result r = {0};
    run_thread(set_then_get_in_thread, &r);
    ck_assert_int_eq(r.rc3, 0);
    ck_assert_ptr_eq(r.seen, r.loop);
    ck_assert_ptr_ne(r.seen, main_loop);
    asyncio_loop *again = NULL;
    ck_assert_int_eq(asyncio_get_event_loop(&again), 0);
    ck_assert_ptr_eq(again, main_loop);
    tu_free_loop(r.loop);
    ck_assert_int_eq(asyncio_set_event_loop(NULL), 0);
}
END_TEST

START_TEST(set_event_loop_keeps_its_own_reference)
{
    asyncio_loop *loop = tu_new_loop();
    ck_assert_int_eq(asyncio_set_event_loop(loop), 0);
    asyncio_loop_unref(loop);
    asyncio_loop *cur = NULL;
    ck_assert_int_eq(asyncio_get_event_loop(&cur), 0);
    ck_assert_ptr_eq(cur, loop);
    ck_assert_int_eq(asyncio_loop_is_closed(cur), 0);
    tu_guard(cur, TU_GUARD_SECONDS);
    tu_call_soon_stop(cur);
    tu_run(cur);
    ck_assert_int_eq(asyncio_set_event_loop(NULL), 0);
}
END_TEST

START_TEST(set_event_loop_in_main_thread_replaces_the_current_loop)
{
    asyncio_loop *loop = tu_new_loop();
    ck_assert_int_eq(asyncio_set_event_loop(loop), 0);
    asyncio_loop *cur = NULL;
    ck_assert_int_eq(asyncio_get_event_loop(&cur), 0);
    ck_assert_ptr_eq(cur, loop);
    ck_assert_int_eq(asyncio_set_event_loop(NULL), 0);
    tu_free_loop(loop);
}
END_TEST

START_TEST(new_event_loop_returns_a_fresh_loop_that_is_not_current)
{
    asyncio_loop *a = tu_new_loop(), *b = tu_new_loop();
    ck_assert_ptr_ne(a, b);
    ck_assert_int_eq(asyncio_loop_is_closed(a), 0);
    ck_assert_int_eq(asyncio_loop_is_running(a), 0);
    asyncio_loop *cur = NULL;
    ck_assert_int_eq(asyncio_get_event_loop(&cur), 0);
    ck_assert_ptr_ne(cur, a);
    ck_assert_ptr_ne(cur, b);
    /* Each is independently owned: closing one leaves the other open. */
    tu_free_loop(a);
    ck_assert_int_eq(asyncio_loop_is_closed(b), 0);
    tu_free_loop(b);
    ck_assert_int_eq(asyncio_set_event_loop(NULL), 0);
}
END_TEST

struct running_ctx {
    asyncio_loop *loop;
    asyncio_loop *seen;
    int rc;
};

static void get_running_cb(void *arg)
{
    struct running_ctx *c = arg;
    c->rc = asyncio_get_event_loop(&c->seen);
    asyncio_loop_stop(c->loop);
}

START_TEST(get_event_loop_inside_a_callback_returns_the_running_loop)
{
    struct running_ctx c = {tu_new_guarded_loop(), NULL, 1};
    ck_assert_int_eq(asyncio_loop_call_soon(c.loop, get_running_cb, &c, NULL), 0);
    tu_run(c.loop);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_ptr_eq(c.seen, c.loop);
    /* Outside the run it is the policy's loop again, not this one. */
    asyncio_loop *cur = NULL;
    ck_assert_int_eq(asyncio_get_event_loop(&cur), 0);
    ck_assert_ptr_ne(cur, c.loop);
    tu_free_loop(c.loop);
    ck_assert_int_eq(asyncio_set_event_loop(NULL), 0);
}
END_TEST

static void *run_loop_in_thread(void *arg)
{
    struct thread_result *r = arg;
    r->rc = asyncio_new_event_loop(&r->loop);
    if (r->rc != 0)
        return NULL;
    struct running_ctx c = {r->loop, NULL, 1};
    tu_guard(r->loop, TU_GUARD_SECONDS);
    r->rc2 = asyncio_loop_call_soon(r->loop, get_running_cb, &c, NULL);
    if (r->rc2 == 0)
        r->rc2 = asyncio_loop_run_forever(r->loop);
    r->rc3 = c.rc;
    r->seen = c.seen;
    return NULL;
}

START_TEST(get_event_loop_in_another_thread_returns_its_running_loop)
{
    struct thread_result r = {0};
    run_thread(run_loop_in_thread, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.rc2, 0);
    ck_assert_int_eq(r.rc3, 0);
    ck_assert_ptr_eq(r.seen, r.loop);
    tu_free_loop(r.loop);
}
END_TEST

/* ---- User policies --------------------------------------------------------------- */

struct counting_policy {
    asyncio_event_loop_policy base; /* first member */
    asyncio_event_loop_policy *fallback;
    asyncio_loop *current;
    int gets, sets, news;
};

static int cp_get(asyncio_event_loop_policy *self, asyncio_loop **loop)
{
    struct counting_policy *p = (struct counting_policy *)self;
    p->gets++;
    if (p->current == NULL)
        return ASYNCIO_ENOLOOP;
    *loop = p->current;
    return 0;
}

static int cp_set(asyncio_event_loop_policy *self, asyncio_loop *loop)
{
    struct counting_policy *p = (struct counting_policy *)self;
    p->sets++;
    if (loop != NULL)
        asyncio_loop_ref(loop);
    if (p->current != NULL)
        asyncio_loop_unref(p->current);
    p->current = loop;
    return 0;
}

static int cp_new(asyncio_event_loop_policy *self, asyncio_loop **loop)
{
    struct counting_policy *p = (struct counting_policy *)self;
    p->news++;
    return p->fallback->new_event_loop(p->fallback, loop);
}

static struct counting_policy policy;

static void install_counting_policy(void)
{
    policy.base.get_event_loop = cp_get;
    policy.base.set_event_loop = cp_set;
    policy.base.new_event_loop = cp_new;
    policy.fallback = asyncio_get_event_loop_policy();
    ck_assert_ptr_nonnull(policy.fallback);
    ck_assert_int_eq(asyncio_set_event_loop_policy(&policy.base), 0);
}

START_TEST(default_policy_is_not_null_and_stable)
{
    asyncio_event_loop_policy *p = asyncio_get_event_loop_policy();
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(p->get_event_loop);
    ck_assert_ptr_nonnull(p->set_event_loop);
    ck_assert_ptr_nonnull(p->new_event_loop);
    ck_assert_ptr_eq(asyncio_get_event_loop_policy(), p);
}
END_TEST

START_TEST(user_policy_is_used_by_the_module_functions)
{
    install_counting_policy();
    ck_assert_ptr_eq(asyncio_get_event_loop_policy(), &policy.base);

    asyncio_loop *loop = NULL;
    ck_assert_int_eq(asyncio_get_event_loop(&loop), ASYNCIO_ENOLOOP);
    ck_assert_int_eq(policy.gets, 1);

    ck_assert_int_eq(asyncio_new_event_loop(&loop), 0);
    ck_assert_int_eq(policy.news, 1);
    ck_assert_ptr_nonnull(loop);

    ck_assert_int_eq(asyncio_set_event_loop(loop), 0);
    ck_assert_int_eq(policy.sets, 1);
    ck_assert_ptr_eq(policy.current, loop);

    asyncio_loop *cur = NULL;
    ck_assert_int_eq(asyncio_get_event_loop(&cur), 0);
    ck_assert_int_eq(policy.gets, 2);
    ck_assert_ptr_eq(cur, loop);

    ck_assert_int_eq(asyncio_set_event_loop(NULL), 0);
    ck_assert_int_eq(policy.sets, 2);
    tu_free_loop(loop);
    ck_assert_int_eq(asyncio_set_event_loop_policy(NULL), 0);
}
END_TEST

static void policy_get_cb(void *arg)
{
    struct running_ctx *c = arg;
    c->rc = asyncio_get_event_loop(&c->seen);
    asyncio_loop_stop(c->loop);
}

START_TEST(user_policy_is_not_asked_for_the_loop_while_one_runs)
{
    install_counting_policy();
    asyncio_loop *loop = NULL;
    ck_assert_int_eq(asyncio_new_event_loop(&loop), 0);
    tu_guard(loop, TU_GUARD_SECONDS);
    struct running_ctx c = {loop, NULL, 1};
    ck_assert_int_eq(asyncio_loop_call_soon(loop, policy_get_cb, &c, NULL), 0);
    tu_run(loop);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_ptr_eq(c.seen, loop);
    ck_assert_int_eq(policy.gets, 0);
    tu_free_loop(loop);
    ck_assert_int_eq(asyncio_set_event_loop_policy(NULL), 0);
}
END_TEST

START_TEST(set_event_loop_policy_null_restores_the_default)
{
    asyncio_event_loop_policy *def = asyncio_get_event_loop_policy();
    install_counting_policy();
    ck_assert_ptr_eq(asyncio_get_event_loop_policy(), &policy.base);
    ck_assert_int_eq(asyncio_set_event_loop_policy(NULL), 0);
    ck_assert_ptr_eq(asyncio_get_event_loop_policy(), def);

    /* The module functions no longer reach the user policy. */
    asyncio_loop *loop = NULL, *cur = NULL;
    ck_assert_int_eq(asyncio_new_event_loop(&loop), 0);
    ck_assert_int_eq(asyncio_get_event_loop(&cur), 0);
    ck_assert_int_eq(policy.news, 0);
    ck_assert_int_eq(policy.gets, 0);
    tu_free_loop(loop);
    ck_assert_int_eq(asyncio_set_event_loop(NULL), 0);
    ck_assert_int_eq(policy.sets, 0);
}
END_TEST

static Suite *policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("default");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, get_event_loop_in_main_thread_creates_a_loop_on_first_use);
    tcase_add_test(tc, get_event_loop_in_another_thread_without_a_loop_returns_enoloop);
    tcase_add_test(tc, get_event_loop_in_another_thread_returns_enoloop_even_when_main_has_a_loop);
    tcase_add_test(tc, set_event_loop_in_a_thread_makes_get_event_loop_return_it);
    tcase_add_test(tc, set_event_loop_null_unsets_the_current_loop);
    tcase_add_test(tc, event_loops_are_per_thread);
    tcase_add_test(tc, set_event_loop_keeps_its_own_reference);
    tcase_add_test(tc, set_event_loop_in_main_thread_replaces_the_current_loop);
    tcase_add_test(tc, new_event_loop_returns_a_fresh_loop_that_is_not_current);
    tcase_add_test(tc, get_event_loop_inside_a_callback_returns_the_running_loop);
    tcase_add_test(tc, get_event_loop_in_another_thread_returns_its_running_loop);
    tcase_add_test(tc, default_policy_is_not_null_and_stable);
    suite_add_tcase(s, tc);

    tc = tcase_create("user");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, user_policy_is_used_by_the_module_functions);
    tcase_add_test(tc, user_policy_is_not_asked_for_the_loop_while_one_runs);
    tcase_add_test(tc, set_event_loop_policy_null_restores_the_default);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(policy_suite()); }
