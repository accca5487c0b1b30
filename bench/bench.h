/* Helpers shared by the benchmark programs: clocks, a seeded PRNG, option
 * parsing and the one output format run.sh parses.
 *
 * Every program prints one line per measurement on stdout:
 *     <bench> <workload> <impl> <ops-per-second>
 * and nothing else there; diagnostics go to stderr. */
#ifndef BENCH_H
#define BENCH_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Wall time: what the issue asks to compare. */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of the process: used where wall time is fixed by the workload
 * itself (timers that fire over a 50 ms window). */
static inline double bench_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* xorshift64*: every implementation draws the same delays from one seed, so
 * their heaps see the same shape. */
static inline uint64_t bench_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [lo, hi). */
static inline double bench_uniform(uint64_t *state, double lo, double hi)
{
    return lo + (hi - lo) * (double)(bench_rand(state) >> 11) * (1.0 / 9007199254740992.0);
}

#define BENCH_DIE(...)                \
    do {                              \
        fprintf(stderr, __VA_ARGS__); \
        fputc('\n', stderr);          \
        exit(1);                      \
    } while (0)

struct bench_opts {
    const char *impl;
    const char *workload;
    long n;       /* operations to time; 0: the workload's default */
    long k;       /* callbacks in flight (calls) */
    long pending; /* timers already pending (timers) */
    long batch;   /* operations between non-blocking loop iterations */
    long min_ms;  /* repeat a round until this much time was measured */
    uint64_t seed;
    int list_impls;
    int list_workloads;
};

static inline long bench_parse_long(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0)
        BENCH_DIE("bad value for %s: %s", opt, s);
    return v;
}

/* --impl NAME --workload NAME --n N --k K --pending P --batch B --min-ms MS
 * --seed S --list-impls --list-workloads */
static inline void bench_parse(struct bench_opts *o, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--list-impls") == 0) {
            o->list_impls = 1;
            continue;
        }
        if (strcmp(a, "--list-workloads") == 0) {
            o->list_workloads = 1;
            continue;
        }
        if (i + 1 >= argc)
            BENCH_DIE("usage: %s [--impl NAME] [--workload NAME] [--n N] [--k K] "
                      "[--pending P] [--batch B] [--min-ms MS] [--seed S] [--list-impls] "
                      "[--list-workloads]",
                      argv[0]);
        const char *v = argv[++i];
        if (strcmp(a, "--impl") == 0)
            o->impl = v;
        else if (strcmp(a, "--workload") == 0)
            o->workload = v;
        else if (strcmp(a, "--n") == 0)
            o->n = bench_parse_long(a, v);
        else if (strcmp(a, "--k") == 0)
            o->k = bench_parse_long(a, v);
        else if (strcmp(a, "--pending") == 0)
            o->pending = bench_parse_long(a, v);
        else if (strcmp(a, "--batch") == 0)
            o->batch = bench_parse_long(a, v);
        else if (strcmp(a, "--min-ms") == 0)
            o->min_ms = bench_parse_long(a, v);
        else if (strcmp(a, "--seed") == 0)
            o->seed = (uint64_t)bench_parse_long(a, v);
        else
            BENCH_DIE("unknown option %s", a);
    }
}

static inline void bench_report(const char *bench, const char *workload, const char *impl,
                                double ops, double seconds)
{
    if (seconds <= 0)
        seconds = 1e-9;
    printf("%s %s %s %.1f\n", bench, workload, impl, ops / seconds);
    fflush(stdout);
}

#endif
