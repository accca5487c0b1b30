/* Starting a child process: posix_spawnp with the child's fds, signals,
 * working directory and environment set up, and the exec's own error
 * returned to the caller.
 *
 * Why posix_spawn and not fork+exec: glibc (>= 2.24) runs it as
 * clone(CLONE_VM|CLONE_VFORK), so the parent's memory is not copied and
 * the child's exec failure (ENOENT, EACCES, ENOEXEC, a bad cwd) comes back
 * as posix_spawn's return value -- no error pipe, no child that exits 127.
 *
 * The child's fd 0-2 are built by file actions run in order: a caller's fd
 * is dup2'd onto its slot, /dev/null is opened onto it, or it is left as
 * inherited; ASYNCIO__STDIO_STDOUT (stderr only) then dup2's the child's
 * new fd 1 onto 2.  Every source fd is first moved above 2
 * (F_DUPFD_CLOEXEC) so that no action can clobber the source of a later
 * one (a caller swapping stdout and stderr, or a pipe that landed on a low
 * fd because the parent closed its stdin), and so that dup2 always
 * changes the fd -- dup2(fd, fd) would keep a close-on-exec flag.  Last,
 * addclosefrom_np(3) closes everything else: fds another thread opens
 * without O_CLOEXEC during the spawn do not leak into the child either.
 *
 * Signals: every catchable signal goes back to SIG_DFL (SETSIGDEF with a
 * full set: a parent's SIG_IGN for SIGPIPE must not be inherited) and the
 * mask is emptied (SETSIGMASK): the loop's thread may block signals that
 * the child must see.  glibc keeps its two internal signals (32 and 33,
 * below SIGRTMIN) out of any set we can build and sets them to SIG_IGN in
 * the child; a glibc program never sees them.
 *
 * Stateless and thread-safe: any thread may spawn. */
#include "internal.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

extern char **environ;

int asyncio__spawn(const asyncio__spawn_opts *o, pid_t *pid)
{
    int moved[3] = {-1, -1, -1}; /* our duplicates of low source fds */
    int src[3];
    int err = 0;
    for (int i = 0; i < 3; i++) {
        src[i] = o->stdio[i];
        if (src[i] >= 0 && src[i] <= 2) {
            /* Two slots may name the same low fd: one duplicate serves both. */
            for (int j = 0; j < i; j++)
                if (o->stdio[j] == o->stdio[i]) {
                    src[i] = src[j];
                    break;
                }
            if (src[i] <= 2) {
                moved[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3);
                if (moved[i] < 0) {
                    err = -errno;
                    goto out;
                }
                src[i] = moved[i];
            }
        }
    }

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    if ((err = -posix_spawn_file_actions_init(&fa)) < 0)
        goto out;
    if ((err = -posix_spawnattr_init(&attr)) < 0) {
        posix_spawn_file_actions_destroy(&fa);
        goto out;
    }

    for (int i = 0; i < 3 && err == 0; i++) {
        if (src[i] >= 0)
            err = -posix_spawn_file_actions_adddup2(&fa, src[i], i);
        else if (src[i] == ASYNCIO__STDIO_DEVNULL)
            err = -posix_spawn_file_actions_addopen(&fa, i, "/dev/null",
                                                    i == 0 ? O_RDONLY : O_WRONLY, 0);
        else if (src[i] == ASYNCIO__STDIO_STDOUT && i == 2)
            err = -posix_spawn_file_actions_adddup2(&fa, 1, 2);
    }
    if (err == 0)
        err = -posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    if (err == 0 && o->cwd != NULL)
        err = -posix_spawn_file_actions_addchdir_np(&fa, o->cwd);

    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    if (err == 0)
        err = -posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    if (err == 0)
        err = -posix_spawnattr_setsigdefault(&attr, &all);
    if (err == 0)
        err = -posix_spawnattr_setsigmask(&attr, &none);
    if (err == 0)
        err = -posix_spawnp(pid, o->file, &fa, &attr, o->argv, o->envp != NULL ? o->envp : environ);

    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
out:
    for (int i = 0; i < 3; i++)
        if (moved[i] >= 0)
            close(moved[i]);
    return err;
}
