#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void guard_fired(void *arg)
{
    (void)arg;
    ck_abort_msg("guard timer fired: the loop ran longer than its guard");
}

void tu_guard(asyncio_loop *loop, double seconds)
{
    ck_assert_int_eq(asyncio_loop_call_later(loop, seconds, guard_fired, NULL, NULL), 0);
}

asyncio_loop *tu_new_loop(void)
{
    asyncio_loop *loop = NULL;
    int rc = asyncio_new_event_loop(&loop);
    ck_assert_msg(rc == 0, "asyncio_new_event_loop: %d (%s)", rc, asyncio_strerror(rc));
    ck_assert_ptr_nonnull(loop);
    return loop;
}

asyncio_loop *tu_new_guarded_loop(void)
{
    asyncio_loop *loop = tu_new_loop();
    tu_guard(loop, TU_GUARD_SECONDS);
    return loop;
}

void tu_free_loop(asyncio_loop *loop)
{
    int rc = asyncio_loop_close(loop);
    ck_assert_msg(rc == 0, "asyncio_loop_close: %d (%s)", rc, asyncio_strerror(rc));
    asyncio_loop_unref(loop);
}

void tu_stop_cb(void *loop) { ck_assert_int_eq(asyncio_loop_stop(loop), 0); }

void tu_call_soon_stop(asyncio_loop *loop)
{
    ck_assert_int_eq(asyncio_loop_call_soon(loop, tu_stop_cb, loop, NULL), 0);
}

void tu_run(asyncio_loop *loop)
{
    int rc = asyncio_loop_run_forever(loop);
    ck_assert_msg(rc == 0, "asyncio_loop_run_forever: %d (%s)", rc, asyncio_strerror(rc));
}

double tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void tu_busy_wait(double seconds)
{
    double end = tu_now() + seconds;
    while (tu_now() < end) {
    }
}

/* The entries of a /proc directory, "." and ".." left out. */
static int count_entries(const char *path)
{
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

int tu_count_threads(void) { return count_entries("/proc/self/task"); }

void tu_sleep(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *nothing_main(void *arg) { return arg; }

int tu_thread_baseline(void)
{
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, nothing_main, NULL), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    return tu_count_threads();
}

int tu_wait_threads(int want, double timeout)
{
    double end = tu_now() + timeout;
    while (tu_count_threads() != want) {
        if (tu_now() > end)
            return 0;
        tu_sleep(0.001);
    }
    return 1;
}

int tu_count_fds(void)
{
    return count_entries("/proc/self/fd") - 1; /* the directory stream's own fd */
}

void tu_rec_init(tu_recorder *r)
{
    r->v = NULL;
    r->len = 0;
    r->cap = 0;
}

void tu_rec_push(tu_recorder *r, int value)
{
    if (r->len == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        int *v = realloc(r->v, cap * sizeof(*v));
        ck_assert_ptr_nonnull(v);
        r->v = v;
        r->cap = cap;
    }
    r->v[r->len++] = value;
}

void tu_rec_free(tu_recorder *r)
{
    free(r->v);
    tu_rec_init(r);
}

void tu_rec_expect_at(const tu_recorder *r, const int *expected, size_t n, const char *file,
                      int line)
{
    ck_assert_msg(r->len == n, "%s:%d: recorded %zu events, expected %zu", file, line, r->len, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(r->v[i] == expected[i], "%s:%d: event %zu is %d, expected %d", file, line, i,
                      r->v[i], expected[i]);
}

void tu_rec_cb(void *item)
{
    tu_rec_item *it = item;
    tu_rec_push(it->rec, it->value);
}

int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
