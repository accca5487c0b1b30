/* Helpers shared by the Check test programs.
 *
 * Every test runs in its own forked child (CK_FORK), so a failing
 * ck_assert anywhere -- including inside a loop callback or another
 * thread -- ends that test only.  Every loop run is bounded by a guard
 * timer (tu_guard) so that a bug fails the test instead of hanging it. */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <stddef.h>

#include <check.h>

#include <asyncio.h>

/* Default seconds for the guard timer; below the tcase timeouts. */
#define TU_GUARD_SECONDS 5.0

/* A new loop from asyncio_new_event_loop(); asserts success. */
asyncio_loop *tu_new_loop(void);

/* A new loop with a guard timer of TU_GUARD_SECONDS already scheduled. */
asyncio_loop *tu_new_guarded_loop(void);

/* Close the loop (asserting 0) and release the caller's reference. */
void tu_free_loop(asyncio_loop *loop);

/* Schedule a call_later that fails the test with "guard timer fired" if
 * the loop is still running `seconds` from now. */
void tu_guard(asyncio_loop *loop, double seconds);

/* A call_soon/call_later callback that stops the loop passed as arg. */
void tu_stop_cb(void *loop);

/* Schedule tu_stop_cb with call_soon; asserts success. */
void tu_call_soon_stop(asyncio_loop *loop);

/* run_forever, asserting it returns 0. */
void tu_run(asyncio_loop *loop);

/* CLOCK_MONOTONIC in seconds. */
double tu_now(void);

/* Spin (without sleeping) for `seconds`. */
void tu_busy_wait(double seconds);

/* The number of open file descriptors of this process (/proc/self/fd). */
int tu_count_fds(void);

/* Sleep `seconds` (nanosleep, restarted after signals). */
void tu_sleep(double seconds);

/* The number of threads of this process (/proc/self/task). */
int tu_count_threads(void);

/* The thread count to compare against later.  A thread is started and
 * joined first: ThreadSanitizer starts a background thread of its own at
 * the first pthread_create, which would otherwise be counted as ours. */
int tu_thread_baseline(void);

/* Wait until the process has `want` threads (detached workers exit a
 * moment after they said they are done); 1 if it happened in time. */
int tu_wait_threads(int want, double timeout);

/* A record of events, e.g. the order callbacks ran in. */
typedef struct {
    int *v;
    size_t len, cap;
} tu_recorder;

void tu_rec_init(tu_recorder *r);
void tu_rec_push(tu_recorder *r, int value);
void tu_rec_free(tu_recorder *r);
/* Assert that r holds exactly the n values of `expected`; failures name
 * the caller's file and line. */
void tu_rec_expect_at(const tu_recorder *r, const int *expected, size_t n, const char *file,
                      int line);
#define tu_rec_expect(r, expected, n) tu_rec_expect_at((r), (expected), (n), __FILE__, __LINE__)

/* A callback argument that records `value` into `rec` when run. */
typedef struct {
    tu_recorder *rec;
    int value;
} tu_rec_item;

/* Callback: tu_rec_push(item->rec, item->value); arg is a tu_rec_item. */
void tu_rec_cb(void *item);

/* Run `s` with srunner in CK_FORK mode; returns the process exit status. */
int tu_run_suite(Suite *s);

#endif
