/* Fuzz target: subprocess options.
 *   subprocess_exec: argv (its length and strings), cwd, env and each of
 *     the three stdio choices (PIPE, STDOUT, DEVNULL, INHERIT, an fd of
 *     ours, an fd never open, unknown constants), reaching the argument
 *     checks, the pipes, posix_spawn's failures (-ENOENT, -EACCES, a cwd
 *     that cannot be entered) and the transport;
 *   subprocess_shell: the command (as the argument of ':' inside single
 *     quotes, so the shell only parses it);
 *   on a child started: get_pid, get_pipe_transport and send_signal with
 *     fuzzed numbers, a write to its stdin, get_returncode, close.
 * The program is one of a fixed harmless set (true, false, cat, missing
 * or unrunnable files): only its arguments and surroundings are fuzzed.
 * Closing the loop kills and reaps a child that still runs. */
#include "fuzz.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int devnull_fd = -1;

static int pick_stdio(fz_input *in)
{
    static const int choices[] = {ASYNCIO_PIPE, ASYNCIO_STDOUT, ASYNCIO_DEVNULL, ASYNCIO_INHERIT,
                                  -5,           INT_MIN,        900000};
    uint8_t sel = fz_u8(in) % 8;
    return sel == 7 ? devnull_fd : choices[sel];
}

/* Environment entries that could make the dynamic loader load something
 * are renamed: the child stays one of the harmless programs. */
static char *safe_env_entry(char *s)
{
    if (strncmp(s, "LD_", 3) == 0 || strncmp(s, "GCONV", 5) == 0)
        s[0] = 'X';
    return s;
}

static const char *pick_program(fz_input *in)
{
    static const char *const programs[] = {"true", "/bin/true", "false", "cat",
                                           "asyncio-fuzz-no-such-program", "/", "/etc/hostname",
                                           "", "./true"};
    return programs[fz_u8(in) % (sizeof(programs) / sizeof(programs[0]))];
}

static void use_child(asyncio_loop *loop, fz_input *in, asyncio_transport *t)
{
    int pid = asyncio_transport_get_pid(t);
    if (pid <= 0)
        abort();
    (void)asyncio_transport_get_pipe_transport(t, fz_int(in));
    asyncio_transport *in_pipe = asyncio_transport_get_pipe_transport(t, 0);
    if (in_pipe != NULL) {
        size_t n = fz_u8(in);
        char *data = fz_alloc(in, n);
        fz_bytes(in, data, n);
        fz_check(asyncio_transport_write(in_pipe, data, n), "write");
        if (fz_u8(in) & 1)
            fz_check(asyncio_transport_write_eof(in_pipe), "write_eof");
    }
    if (fz_u8(in) & 1) {
        /* Only our own child hears it: the library signals it through its
         * pidfd and refuses once it is reaped. */
        int sig = fz_u8(in) & 1 ? fz_int(in) : (int)(fz_u8(in) % 65);
        fz_check(asyncio_transport_send_signal(t, sig), "send_signal");
    }
    fz_loop_run(loop, NULL, fz_u8(in) % 8);
    int rc = 0;
    fz_check(asyncio_transport_get_returncode(t, &rc), "get_returncode");
    fz_check(asyncio_transport_close(t), "close");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (devnull_fd < 0 && (devnull_fd = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
        abort();
    fz_input in;
    fz_input_init(&in, data, size);
    asyncio_loop *loop = fz_loop_new();

    uint8_t mode = fz_u8(&in);
    asyncio_subprocess_options o = ASYNCIO_SUBPROCESS_OPTIONS_INIT;
    if (mode & 2) {
        o.stdin_fd = pick_stdio(&in);
        o.stdout_fd = pick_stdio(&in);
        o.stderr_fd = pick_stdio(&in);
    }
    if (mode & 4)
        o.cwd = fz_opt_str(&in, 300);
    if (mode & 8) {
        size_t n = fz_u8(&in) % 6;
        char **env = fz_alloc(&in, (n + 1) * sizeof(char *));
        for (size_t i = 0; i < n; i++)
            env[i] = safe_env_entry(fz_str(&in, 100));
        o.env = env;
    }
    const asyncio_subprocess_options *op = mode & 16 ? NULL : &o;
    asyncio_future *f = NULL;
    asyncio_future **out = mode & 32 ? NULL : &f;
    int rc;
    if (mode & 1) {
        const char *arg = fz_str(&in, 200);
        char *cmd = fz_alloc(&in, strlen(arg) + 8);
        strcpy(cmd, ": '");
        for (size_t i = 0, j = 3; arg[i] != '\0'; i++, j++)
            cmd[j] = arg[i] == '\'' ? '_' : arg[i];
        strcat(cmd, "'");
        rc = asyncio_loop_subprocess_shell(loop, fz_protocol_factory, NULL, cmd, op, out);
    } else {
        size_t argc = fz_u8(&in) % 6;
        const char **argv = fz_alloc(&in, (argc + 2) * sizeof(char *));
        argv[0] = fz_u8(&in) == 0xff ? NULL : pick_program(&in);
        for (size_t i = 1; i <= argc && argv[0] != NULL; i++)
            argv[i] = fz_str(&in, 100);
        rc = asyncio_loop_subprocess_exec(loop, fz_protocol_factory, NULL,
                                          fz_u8(&in) == 0xff ? NULL : argv, op, out);
    }
    fz_check(rc, "subprocess");
    if (rc == 0 && f != NULL) {
        fz_loop_run(loop, f, 4);
        asyncio_transport *t = fz_result(f);
        if (t != NULL)
            use_child(loop, &in, t);
        asyncio_future_unref(f);
    }
    fz_loop_free(loop);
    fz_input_free(&in);
    return 0;
}
