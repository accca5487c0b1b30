/* libasyncio: subprocesses.
 *
 * asyncio_loop_subprocess_exec() starts a program with its standard
 * streams connected as the options say and hands it to a protocol through
 * a subprocess transport.  The protocol hears, on the loop's thread:
 * connection_made(the subprocess transport) first; pipe_data_received(fd,
 * ...) for what the child writes to a PIPE'd stdout (fd 1) or stderr
 * (fd 2); pipe_connection_lost(fd, error) once each PIPE'd stream has
 * closed (error 0 on a clean end of file); process_exited once the child
 * has exited and been reaped (asyncio_transport_get_returncode then gives
 * its status); and connection_lost last, once the child has exited AND
 * every pipe has closed.  pause_writing / resume_writing of the stdin
 * pipe are passed on to the protocol too.
 *
 * The child: argv[0] is looked up in PATH (posix_spawnp); every fd other
 * than 0, 1 and 2 is closed; every signal has its default disposition
 * (but glibc's internal signals 32 and 33, which its posix_spawn leaves
 * ignored) and none is blocked; cwd and env as the options say.  A
 * program that cannot be run fails the future with the exec's errno
 * (-ENOENT, -EACCES, -ENOEXEC...), not a child exiting 127: no child is
 * left behind and the factory is not called.  The same holds for a cwd
 * that cannot be entered.  Bad arguments come back from the call.
 *
 * The subprocess transport: asyncio_transport_get_pid,
 * asyncio_transport_get_returncode (ASYNCIO_EINVALSTATE while the child
 * runs; a negative signal number when a signal killed it),
 * asyncio_transport_get_pipe_transport (0, 1, 2: the pipe transport of
 * that stream, borrowed for the life of the subprocess transport; NULL
 * for a stream that is not a PIPE), asyncio_transport_send_signal /
 * _terminate / _kill (-ESRCH once the child has been reaped: a pid that
 * may have been reused is never signalled), asyncio_transport_close
 * (closes the pipes and kills a child that still runs with SIGKILL; the
 * child is still reaped, process_exited and connection_lost(0) still
 * come) and asyncio_transport_is_closing.
 *
 * Reaping needs no SIGCHLD handler: each child is watched through a pidfd
 * on the loop that started it, so it works on any loop in any thread.  A
 * process-wide waitpid(-1) elsewhere (or SIGCHLD set to SIG_IGN) can take
 * the status first; the return code is then 255, as in asyncio.
 *
 * Loop close with a child still running: the child is killed (SIGKILL)
 * and reaped at once -- waiting for a SIGKILLed child is brief -- so no
 * zombie is left, and the protocol hears connection_lost(ASYNCIO_ECLOSED)
 * (not process_exited).  Pipes are closed by the loop like any transport. */
#ifndef ASYNCIO_SUBPROCESS_H
#define ASYNCIO_SUBPROCESS_H

#include <asyncio/common.h>
#include <asyncio/transport.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a child's stdin, stdout or stderr is connected to: one of these,
 * or an fd >= 0 of the caller's (duplicated into the child; the caller
 * keeps it and closes it when it likes). */
enum {
    ASYNCIO_PIPE = -1,    /* a new pipe, read and written through a pipe transport */
    ASYNCIO_STDOUT = -2,  /* stderr only: wherever stdout goes */
    ASYNCIO_DEVNULL = -3, /* /dev/null */
    ASYNCIO_INHERIT = -4, /* the parent's own fd 0, 1 or 2 */
};

typedef struct asyncio_subprocess_options {
    int stdin_fd, stdout_fd, stderr_fd; /* one of the above, or an fd >= 0; default ASYNCIO_PIPE */
    const char *cwd;                    /* NULL: inherit */
    char *const *env;                   /* "NAME=value" ... NULL; NULL: inherit (environ) */
    /* Zero (the _INIT macro does it): room for options added later
     * without an ABI break. */
    void *reserved[4];
} asyncio_subprocess_options;

#define ASYNCIO_SUBPROCESS_OPTIONS_INIT                             \
    {                                                               \
        ASYNCIO_PIPE, ASYNCIO_PIPE, ASYNCIO_PIPE, NULL, NULL, { 0 } \
    }

/* Start argv[0] with arguments argv (NULL-terminated), connected as `opts`
 * says (NULL: the defaults, three pipes).  On success the protocol made by
 * factory(arg) hears connection_made, then the future in *out (may be
 * NULL) completes with the subprocess transport as its result (the future
 * holds a reference; take your own to keep it).  The factory is called
 * once the child runs, inside this call; NULL from it kills the child and
 * the call fails with -ECONNABORTED.  -EINVAL: a NULL argument, an empty
 * argv, ASYNCIO_STDOUT for stdin or stdout, an unknown constant; -EBADF:
 * a caller's fd in `opts` that is not open. */
ASYNCIO_EXTERN int asyncio_loop_subprocess_exec(asyncio_loop *loop,
                                                asyncio_protocol_factory factory, void *arg,
                                                const char *const argv[],
                                                const asyncio_subprocess_options *opts,
                                                asyncio_future **out);

/* The same for "/bin/sh -c cmd". */
ASYNCIO_EXTERN int asyncio_loop_subprocess_shell(asyncio_loop *loop,
                                                 asyncio_protocol_factory factory, void *arg,
                                                 const char *cmd,
                                                 const asyncio_subprocess_options *opts,
                                                 asyncio_future **out);

#ifdef __cplusplus
}
#endif
#endif
