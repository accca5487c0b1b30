/* bench-spawn: children spawned and reaped per second.
 *
 * Each operation starts /bin/true with stdin, stdout and stderr on
 * /dev/null and ends when the child has been reaped and its handle is
 * gone; the next child starts from the completion callback.  So it
 * measures what starting and reaping a process costs through each library:
 * the spawn itself (fork or vfork, exec), the exit notification, waitpid.
 *
 * Implementations (--impl):
 *   asyncio      asyncio_loop_subprocess_exec() (posix_spawnp; a pidfd per
 *                child on the loop); the next child starts from
 *                connection_lost
 *   libuv        uv_spawn() with UV_IGNORE stdio (SIGCHLD + waitpid); the
 *                next child starts from the handle's close callback
 *   posix_spawn  the floor: posix_spawn() with the same /dev/null file
 *                actions, then a blocking waitpid() -- no loop, no
 *                notification, nothing in flight but the child
 *
 * Workloads (--workload):
 *   serial   one child at a time
 *   k8       eight children in flight (--k sets the number); the floor
 *            reaps with waitpid(-1) and starts one child per reaped one
 * Rounds of N children (default 200) repeat until --min-ms (default 300)
 * were measured. */
#include "bench.h"

#include <asyncio.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef BENCH_HAVE_LIBUV
#include <uv.h>
#endif

extern char **environ;

static long g_n, g_started, g_done, g_k;
static char *g_argv[] = {"/bin/true", NULL};

/* ---- asyncio ------------------------------------------------------------------ */

static asyncio_loop *a_loop;

static void a_start(void);

static void a_exited(asyncio_protocol *self) { (void)self; }

static void a_lost(asyncio_protocol *self, int error)
{
    (void)self;
    if (error != 0)
        BENCH_DIE("asyncio: connection_lost(%d)", error);
    if (++g_done == g_n)
        asyncio_loop_stop(a_loop);
    else if (g_started < g_n)
        a_start();
}

static const asyncio_protocol_ops a_ops = {
    .connection_lost = a_lost,
    .process_exited = a_exited,
};
static asyncio_protocol a_proto = {&a_ops};

static asyncio_protocol *a_factory(void *arg)
{
    (void)arg;
    return &a_proto; /* stateless: one serves every child */
}

static void a_start(void)
{
    static const asyncio_subprocess_options o = {
        .stdin_fd = ASYNCIO_DEVNULL, .stdout_fd = ASYNCIO_DEVNULL, .stderr_fd = ASYNCIO_DEVNULL};
    g_started++;
    int rc = asyncio_loop_subprocess_exec(a_loop, a_factory, NULL, (const char *const *)g_argv, &o,
                                          NULL);
    if (rc != 0)
        BENCH_DIE("asyncio_loop_subprocess_exec: %s", asyncio_strerror(rc));
}

static double run_asyncio(long n)
{
    int rc = asyncio_new_event_loop(&a_loop);
    if (rc != 0)
        BENCH_DIE("asyncio_new_event_loop: %s", asyncio_strerror(rc));
    g_n = n;
    g_started = g_done = 0;
    double t0 = bench_now();
    for (long i = 0; i < g_k && i < n; i++)
        a_start();
    rc = asyncio_loop_run_forever(a_loop);
    double t = bench_now() - t0;
    if (rc != 0)
        BENCH_DIE("asyncio_loop_run_forever: %s", asyncio_strerror(rc));
    asyncio_loop_close(a_loop);
    asyncio_loop_unref(a_loop);
    return t;
}

/* ---- libuv --------------------------------------------------------------------- */

#ifdef BENCH_HAVE_LIBUV
static uv_loop_t uv_l;

static void uv_start(uv_process_t *p);

static void uv_closed(uv_handle_t *h)
{
    if (++g_done < g_n && g_started < g_n)
        uv_start((uv_process_t *)h);
    else
        free(h);
}

static void uv_exited(uv_process_t *p, int64_t status, int sig)
{
    if (status != 0 || sig != 0)
        BENCH_DIE("libuv: /bin/true exited %d, signal %d", (int)status, sig);
    uv_close((uv_handle_t *)p, uv_closed);
}

static void uv_start(uv_process_t *p)
{
    uv_stdio_container_t stdio[3] = {{UV_IGNORE, {0}}, {UV_IGNORE, {0}}, {UV_IGNORE, {0}}};
    uv_process_options_t o = {
        .exit_cb = uv_exited,
        .file = g_argv[0],
        .args = g_argv,
        .stdio_count = 3,
        .stdio = stdio,
    };
    g_started++;
    int rc = uv_spawn(&uv_l, p, &o);
    if (rc != 0)
        BENCH_DIE("uv_spawn: %s", uv_strerror(rc));
}

static double run_libuv(long n)
{
    if (uv_loop_init(&uv_l) != 0)
        BENCH_DIE("uv_loop_init failed");
    g_n = n;
    g_started = g_done = 0;
    double t0 = bench_now();
    for (long i = 0; i < g_k && i < n; i++) {
        uv_process_t *p = malloc(sizeof(*p));
        if (p == NULL)
            BENCH_DIE("out of memory");
        uv_start(p);
    }
    uv_run(&uv_l, UV_RUN_DEFAULT);
    double t = bench_now() - t0;
    uv_loop_close(&uv_l);
    return t;
}
#endif

/* ---- posix_spawn floor ---------------------------------------------------------- */

static pid_t f_spawn(posix_spawn_file_actions_t *fa)
{
    pid_t pid;
    int rc = posix_spawn(&pid, g_argv[0], fa, NULL, g_argv, environ);
    if (rc != 0)
        BENCH_DIE("posix_spawn: %s", strerror(rc));
    g_started++;
    return pid;
}

static double run_floor(long n)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    g_n = n;
    g_started = g_done = 0;
    double t0 = bench_now();
    for (long i = 0; i < g_k && i < n; i++)
        f_spawn(&fa);
    while (g_done < n) {
        int status;
        pid_t r = waitpid(-1, &status, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            BENCH_DIE("waitpid: %s", strerror(errno));
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            BENCH_DIE("posix_spawn: /bin/true failed");
        g_done++;
        if (g_started < n)
            f_spawn(&fa);
    }
    double t = bench_now() - t0;
    posix_spawn_file_actions_destroy(&fa);
    return t;
}

/* ---- main -------------------------------------------------------------------------- */

static const char *const impls[] = {
    "asyncio",
#ifdef BENCH_HAVE_LIBUV
    "libuv",
#endif
    "posix_spawn",
};

int main(int argc, char **argv)
{
    struct bench_opts o = {.impl = "asyncio", .workload = "serial"};
    bench_parse(&o, argc, argv);
    if (o.list_impls) {
        for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++)
            printf("%s\n", impls[i]);
        return 0;
    }
    if (o.list_workloads) {
        printf("serial\nk8\n");
        return 0;
    }
    if (strcmp(o.workload, "serial") == 0)
        g_k = 1;
    else if (strcmp(o.workload, "k8") == 0)
        g_k = o.k > 0 ? o.k : 8;
    else
        BENCH_DIE("unknown workload %s (serial, k8)", o.workload);
    long n = o.n > 0 ? o.n : 200;
    double min_time = (double)(o.min_ms > 0 ? o.min_ms : 300) * 1e-3;

    double t = 0, ops = 0;
    do {
        double r;
        if (strcmp(o.impl, "asyncio") == 0)
            r = run_asyncio(n);
#ifdef BENCH_HAVE_LIBUV
        else if (strcmp(o.impl, "libuv") == 0)
            r = run_libuv(n);
#endif
        else if (strcmp(o.impl, "posix_spawn") == 0)
            r = run_floor(n);
        else
            BENCH_DIE("unknown or unavailable impl %s", o.impl);
        if (g_done != n)
            BENCH_DIE("%s: %ld children reaped, expected %ld", o.impl, g_done, n);
        t += r;
        ops += (double)n;
    } while (t < min_time);
    bench_report("spawn", o.workload, o.impl, ops, t);
    return 0;
}
