/* Subprocess transports: asyncio_loop_subprocess_exec / _shell.
 *
 * Owns, per child: its pid until reaped, a pidfd and a persistent EV_READ
 * event on it, one reference to each of up to three pipe transports (one
 * per PIPE'd stdio stream), the handles it queued on the loop.
 *
 * Spawning (spawn.c) happens inside the call, so a program that cannot be
 * run fails the call with the exec's errno.  Everything that can fail
 * (the pidfd, the event, the handles, the pipe transports) is made before
 * the factory runs: once the user has a protocol, nothing fails any more
 * and the protocol is owed its callbacks.
 *
 * Reaping: pidfd_open(pid) -> the pidfd turns readable when the child has
 * exited -> the libevent callback queues the exit handle -> waitpid(pid,
 * WNOHANG) -> returncode, process_exited.  No SIGCHLD handler (there can
 * be only one per process, signals coalesce, and it would tie reaping to
 * one loop): a pidfd is per child and works on any loop in any thread.
 * Signals go through pidfd_send_signal, which after the reap could only
 * fail (ESRCH), never hit a process that reused the pid; send_signal
 * refuses with -ESRCH itself once the child is reaped (its pidfd closed).
 *
 * Pipes: each PIPE'd stream is a pipe transport whose protocol is an
 * adapter embedded here (`pipe_proto`): data_received becomes the
 * protocol's pipe_data_received(fd, ...), connection_lost becomes
 * pipe_connection_lost(fd, error), pause/resume_writing of the stdin pipe
 * are passed on.  Each adapter holds a reference to the subprocess
 * transport until its pipe's connection_lost, because the pipe transport
 * keeps pointing at it until then.
 *
 * Order: the start handle (connection_made of the subprocess protocol,
 * then the waiter) is queued before the pipe transports are made, so it
 * runs before their own start handles and before any read: the protocol
 * hears connection_made first, and may already use get_pipe_transport()
 * there.  connection_lost comes from its own handle, queued once the child
 * has been reaped and every pipe has reported connection_lost (CPython's
 * _try_finish); nothing is called after it.
 *
 * Lifetime: the transport holds one reference on itself until
 * connection_lost has been delivered; each queued handle borrows it and
 * sits in a slot so that delivering connection_lost can cancel it.
 *
 * close(): closes the pipe transports and SIGKILLs a child that still
 * runs; reaping goes on, so process_exited and connection_lost(0) follow
 * and no zombie stays.  Loop close (the closable): a child that still runs
 * is SIGKILLed and reaped with a blocking waitpid -- a SIGKILLed child
 * dies at once, and the loop will not be there to reap it later -- then
 * connection_lost(ASYNCIO_ECLOSED) alone; the pipes are closed by their
 * own closables (registered after ours, so they run later and find the
 * adapters quiet).
 *
 * Everything here belongs to the loop's thread. */
#include "internal.h"

#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct subproc subproc;

/* The protocol of one pipe transport. */
typedef struct pipe_proto {
    asyncio_protocol base; /* first: the pipe transport calls cast */
    subproc *owner;
    int fd;   /* 0, 1 or 2 */
    int open; /* connection_lost not heard yet */
} pipe_proto;

struct subproc {
    asyncio_transport base; /* first: the public calls cast */
    asyncio__closable closable;
    int registered; /* closable is on the loop's list */
    pid_t pid;
    int pidfd; /* -1 once reaped */
    struct event *exit_ev;
    int returncode;
    int exited;                  /* reaped: returncode is known */
    asyncio_transport *pipes[3]; /* our references; NULL: not a PIPE */
    pipe_proto pp[3];
    int pipes_open;         /* pipes whose connection_lost is still owed */
    asyncio_future *waiter; /* until the start handle ran */
    asyncio_handle *start_h, *exit_h, *lost_h;
    int closing; /* close() or loop close */
    int failed;  /* creation failed: the adapters stay quiet */
    int lost;    /* connection_lost delivered */
};

static void on_exit_h(void *arg);
static void on_lost(void *arg);

static void release_slot(asyncio_handle **slot)
{
    asyncio_handle_unref(*slot);
    *slot = NULL;
}

/* Exit status -> asyncio's returncode. */
static int returncode_of(int status)
{
    if (WIFSIGNALED(status))
        return -WTERMSIG(status);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 255;
}

/* Stop watching the child: the event goes before the pidfd it watches. */
static void drop_watch(subproc *s)
{
    if (s->exit_ev != NULL)
        event_free(s->exit_ev);
    s->exit_ev = NULL;
    if (s->pidfd >= 0)
        close(s->pidfd);
    s->pidfd = -1;
}

/* Kill the child if it still runs and wait for it: for failed creations
 * and loop close, where nobody will be there to reap it later. */
static void kill_and_reap(subproc *s)
{
    if (s->exited)
        return;
    if (s->pidfd >= 0)
        pidfd_send_signal(s->pidfd, SIGKILL, NULL, 0);
    else
        kill(s->pid, SIGKILL); /* not reaped yet: the pid is still ours */
    int status;
    pid_t r;
    do
        r = waitpid(s->pid, &status, 0);
    while (r < 0 && errno == EINTR);
    s->returncode = r == s->pid ? returncode_of(status) : 255;
    s->exited = 1;
    drop_watch(s);
}

/* connection_lost once; may free `s` (the self-reference goes last). */
static void deliver_lost(subproc *s, int error)
{
    if (s->lost)
        return;
    s->lost = 1;
    s->closing = 1;
    asyncio__handle_forget(&s->start_h);
    asyncio__handle_forget(&s->exit_h);
    asyncio__handle_forget(&s->lost_h);
    if (s->registered)
        asyncio__loop_remove_closable(&s->closable);
    s->registered = 0;

    /* Only loop close gets here before the start handle ran. */
    if (s->waiter != NULL) {
        if (!asyncio_future_done(s->waiter))
            asyncio_future_set_exception(s->waiter, error < 0 ? error : -ECANCELED);
        asyncio_future_unref(s->waiter);
        s->waiter = NULL;
    }

    asyncio_protocol *p = s->base.protocol;
    if (p->ops->connection_lost != NULL)
        p->ops->connection_lost(p, error);
    asyncio_transport_unref(&s->base);
}

/* CPython's _try_finish: connection_lost once the child is reaped and
 * every pipe has closed. */
static void try_finish(subproc *s)
{
    if (!s->exited || s->pipes_open > 0 || s->lost || s->lost_h != NULL || s->failed)
        return;
    if (s->base.loop->closed)
        return; /* loop close is running: our closable delivers it */
    asyncio_loop_call_soon(s->base.loop, on_lost, s, &s->lost_h);
    if (s->lost_h == NULL)
        deliver_lost(s, 0); /* no memory for a handle: now rather than never */
}

static void on_lost(void *arg)
{
    subproc *s = arg;
    release_slot(&s->lost_h);
    deliver_lost(s, 0);
}

/* ---- Reaping -------------------------------------------------------------------- */

/* libevent callback: queue, never call user code here. */
static void on_exit_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    subproc *s = arg;
    if (s->exit_h == NULL)
        asyncio_loop_call_soon(s->base.loop, on_exit_h, s, &s->exit_h);
}

static void on_exit_h(void *arg)
{
    subproc *s = arg;
    release_slot(&s->exit_h);
    if (s->exited)
        return;
    int status;
    pid_t r;
    do
        r = waitpid(s->pid, &status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return; /* not yet: the event is persistent and fires again */
    /* r < 0 (ECHILD): someone else took the status (a waitpid(-1)
     * elsewhere, SIGCHLD ignored); asyncio reports 255 then. */
    s->returncode = r == s->pid ? returncode_of(status) : 255;
    s->exited = 1;
    drop_watch(s);
    asyncio_protocol *p = s->base.protocol;
    if (p->ops->process_exited != NULL)
        p->ops->process_exited(p);
    try_finish(s);
}

/* ---- The pipe adapters ------------------------------------------------------------ */

static subproc *owner_if_live(asyncio_protocol *self)
{
    subproc *s = ((pipe_proto *)self)->owner;
    return s->lost || s->failed ? NULL : s;
}

static void pp_data_received(asyncio_protocol *self, const void *data, size_t len)
{
    subproc *s = owner_if_live(self);
    if (s == NULL)
        return;
    asyncio_protocol *p = s->base.protocol;
    if (p->ops->pipe_data_received != NULL)
        p->ops->pipe_data_received(p, ((pipe_proto *)self)->fd, data, len);
}

static void pp_pause_writing(asyncio_protocol *self)
{
    subproc *s = owner_if_live(self);
    if (s != NULL && s->base.protocol->ops->pause_writing != NULL)
        s->base.protocol->ops->pause_writing(s->base.protocol);
}

static void pp_resume_writing(asyncio_protocol *self)
{
    subproc *s = owner_if_live(self);
    if (s != NULL && s->base.protocol->ops->resume_writing != NULL)
        s->base.protocol->ops->resume_writing(s->base.protocol);
}

static void pp_connection_lost(asyncio_protocol *self, int error)
{
    pipe_proto *pp = (pipe_proto *)self;
    subproc *s = pp->owner;
    if (!pp->open)
        return;
    pp->open = 0;
    s->pipes_open--;
    if (owner_if_live(self) != NULL) {
        asyncio_protocol *p = s->base.protocol;
        if (p->ops->pipe_connection_lost != NULL)
            p->ops->pipe_connection_lost(p, pp->fd, error);
        try_finish(s);
    }
    asyncio_transport_unref(&s->base); /* the adapter's reference */
}

/* eof_received is left NULL: the pipe closes at its end of file, and that
 * close is what pipe_connection_lost reports (as in CPython). */
static const asyncio_protocol_ops pipe_proto_ops = {
    .connection_lost = pp_connection_lost,
    .data_received = pp_data_received,
    .pause_writing = pp_pause_writing,
    .resume_writing = pp_resume_writing,
};

/* ---- The transport ---------------------------------------------------------------- */

static int sp_close(asyncio_transport *t)
{
    subproc *s = (subproc *)t;
    if (s->closing)
        return 0;
    s->closing = 1;
    for (int i = 0; i < 3; i++)
        if (s->pipes[i] != NULL)
            asyncio_transport_close(s->pipes[i]);
    if (!s->exited && s->pidfd >= 0)
        pidfd_send_signal(s->pidfd, SIGKILL, NULL, 0); /* ESRCH: it is exiting */
    return 0;
}

static int sp_is_closing(asyncio_transport *t) { return ((subproc *)t)->closing; }

static int sp_get_pid(asyncio_transport *t) { return (int)((subproc *)t)->pid; }

static int sp_get_returncode(asyncio_transport *t, int *returncode)
{
    subproc *s = (subproc *)t;
    if (!s->exited)
        return ASYNCIO_EINVALSTATE;
    *returncode = s->returncode;
    return 0;
}

static asyncio_transport *sp_get_pipe_transport(asyncio_transport *t, int fd)
{
    return fd <= 2 ? ((subproc *)t)->pipes[fd] : NULL;
}

static int sp_send_signal(asyncio_transport *t, int sig)
{
    subproc *s = (subproc *)t;
    if (sig < 0 || sig >= NSIG)
        return -EINVAL;
    if (s->exited || s->pidfd < 0)
        return -ESRCH;
    if (pidfd_send_signal(s->pidfd, sig, NULL, 0) < 0)
        return -errno;
    return 0;
}

static void sp_destroy(asyncio_transport *t)
{
    subproc *s = (subproc *)t;
    /* By now connection_lost was delivered (or the creation failed) and
     * every adapter has let go: the pipes are closed, the child reaped. */
    for (int i = 0; i < 3; i++)
        asyncio_transport_unref(s->pipes[i]);
    drop_watch(s);
    free(s);
}

static const asyncio__transport_ops subprocess_ops = {
    .kind = "subprocess",
    .close = sp_close,
    .is_closing = sp_is_closing,
    .get_pid = sp_get_pid,
    .get_returncode = sp_get_returncode,
    .get_pipe_transport = sp_get_pipe_transport,
    .send_signal = sp_send_signal,
    .destroy = sp_destroy,
};

static void sp_closable_close(asyncio__closable *c)
{
    subproc *s = asyncio__container_of(c, subproc, closable);
    s->registered = 0; /* loop close took it off the list */
    s->closing = 1;
    kill_and_reap(s);
    deliver_lost(s, ASYNCIO_ECLOSED);
}

static void unref_transport_result(void *t) { asyncio_transport_unref(t); }

/* connection_made, then the waiter. */
static void on_start(void *arg)
{
    subproc *s = arg;
    release_slot(&s->start_h);
    asyncio_protocol *p = s->base.protocol;
    if (p->ops->connection_made != NULL)
        p->ops->connection_made(p, &s->base);

    asyncio_future *w = s->waiter;
    s->waiter = NULL;
    if (asyncio_future_cancelled(w) == 1) {
        /* Whoever cancelled will never see this transport. */
        sp_close(&s->base);
    } else if (asyncio_future_done(w) == 0) {
        asyncio_transport_ref(&s->base);
        asyncio_future_set_result(w, s, unref_transport_result);
    }
    asyncio_future_unref(w);
}

/* ---- Creation --------------------------------------------------------------------- */

static int valid_stdio(int v, int is_stderr)
{
    return v >= 0 || v == ASYNCIO_PIPE || v == ASYNCIO_DEVNULL || v == ASYNCIO_INHERIT ||
           (is_stderr && v == ASYNCIO_STDOUT);
}

/* The creation failed after the spawn: nobody else will reap the child.
 * Pipe transports already made are aborted; their connection_lost reaches
 * the quiet adapters later, and the last adapter frees `s`. */
static void fail_created(subproc *s)
{
    s->failed = 1;
    s->lost = 1;
    asyncio__handle_forget(&s->start_h);
    asyncio__loop_remove_closable(&s->closable);
    s->registered = 0;
    kill_and_reap(s);
    if (s->waiter != NULL) {
        asyncio_future_cancel(s->waiter);
        asyncio_future_unref(s->waiter);
        s->waiter = NULL;
    }
    for (int i = 0; i < 3; i++)
        if (s->pipes[i] != NULL)
            asyncio_transport_abort(s->pipes[i]);
    asyncio_transport_unref(&s->base);
}

/* A future of `loop` that has failed with `error`. */
static int failed_future(asyncio_loop *loop, int error, asyncio_future **out)
{
    asyncio_future *f;
    int err = asyncio_loop_create_future(loop, &f);
    if (err < 0)
        return err;
    asyncio_future_set_exception(f, error);
    if (out != NULL)
        *out = f;
    else
        asyncio_future_unref(f); /* reported as never retrieved, as asyncio logs it */
    return 0;
}

int asyncio_loop_subprocess_exec(asyncio_loop *loop, asyncio_protocol_factory factory, void *arg,
                                 const char *const argv[], const asyncio_subprocess_options *opts,
                                 asyncio_future **out)
{
    static const asyncio_subprocess_options defaults = ASYNCIO_SUBPROCESS_OPTIONS_INIT;
    if (opts == NULL)
        opts = &defaults;
    if (loop == NULL || factory == NULL || argv == NULL || argv[0] == NULL)
        return -EINVAL;
    const int want[3] = {opts->stdin_fd, opts->stdout_fd, opts->stderr_fd};
    for (int i = 0; i < 3; i++) {
        if (!valid_stdio(want[i], i == 2))
            return -EINVAL;
        /* A caller's fd that is not open is an argument error (-EBADF),
         * not an exec failure in the future. */
        if (want[i] >= 0 && fcntl(want[i], F_GETFD) < 0)
            return -errno;
    }
    ASYNCIO__CHECK_OPEN(loop);

    /* The pipes: ours[i] is the parent's end, theirs[i] the child's.  Both
     * close-on-exec (another thread's child must not inherit them); ours
     * non-blocking, theirs left blocking as programs expect of stdio. */
    int ours[3] = {-1, -1, -1}, theirs[3] = {-1, -1, -1};
    asyncio__spawn_opts so = {
        .file = argv[0],
        .argv = (char *const *)argv,
        .envp = opts->env,
        .cwd = opts->cwd,
    };
    int err = 0;
    for (int i = 0; i < 3 && err == 0; i++) {
        switch (want[i]) {
        case ASYNCIO_PIPE: {
            int p[2];
            if (pipe2(p, O_CLOEXEC) < 0) {
                err = -errno;
                break;
            }
            ours[i] = i == 0 ? p[1] : p[0];
            theirs[i] = i == 0 ? p[0] : p[1];
            if (fcntl(ours[i], F_SETFL, O_NONBLOCK) < 0)
                err = -errno;
            so.stdio[i] = theirs[i];
            break;
        }
        case ASYNCIO_DEVNULL:
            so.stdio[i] = ASYNCIO__STDIO_DEVNULL;
            break;
        case ASYNCIO_INHERIT:
            so.stdio[i] = ASYNCIO__STDIO_INHERIT;
            break;
        case ASYNCIO_STDOUT:
            so.stdio[i] = ASYNCIO__STDIO_STDOUT;
            break;
        default:
            so.stdio[i] = want[i];
        }
    }
    pid_t pid = -1;
    int exec_failed = 0;
    if (err == 0) {
        err = asyncio__spawn(&so, &pid);
        exec_failed = err < 0;
    }
    for (int i = 0; i < 3; i++)
        if (theirs[i] >= 0)
            close(theirs[i]);
    if (err < 0) {
        for (int i = 0; i < 3; i++)
            if (ours[i] >= 0)
                close(ours[i]);
        /* A program that cannot be run is the operation's outcome, not a
         * bad argument: it comes back in the future (API.md), with the
         * exec's errno, and no child is left behind. */
        return exec_failed ? failed_future(loop, err, out) : err;
    }

    /* The child runs.  From here a failure kills and reaps it. */
    subproc *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        for (int i = 0; i < 3; i++)
            if (ours[i] >= 0)
                close(ours[i]);
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        return -ENOMEM;
    }
    asyncio__transport_init(&s->base, &subprocess_ops, loop, NULL); /* the self-reference */
    s->pid = pid;
    /* Registered before the pipes make theirs: at loop close ours runs
     * first, so the protocol hears connection_lost(ASYNCIO_ECLOSED) alone,
     * and the pipes' connection_lost then finds the adapters quiet. */
    s->closable.close = sp_closable_close;
    asyncio__loop_add_closable(loop, &s->closable);
    s->registered = 1;
    s->pidfd = pidfd_open(pid, 0);
    if (s->pidfd < 0)
        err = -errno;
    if (err == 0) {
        s->exit_ev = event_new(loop->base, s->pidfd, EV_READ | EV_PERSIST, on_exit_event, s);
        if (s->exit_ev == NULL || event_add(s->exit_ev, NULL) < 0)
            err = -ENOMEM;
    }
    if (err == 0)
        err = asyncio_loop_create_future(loop, &s->waiter);
    /* Before the pipes: connection_made must run before their start. */
    if (err == 0)
        err = asyncio_loop_call_soon(loop, on_start, s, &s->start_h);
    for (int i = 0; i < 3; i++) {
        if (ours[i] < 0)
            continue;
        s->pp[i].base.ops = &pipe_proto_ops;
        s->pp[i].owner = s;
        s->pp[i].fd = i;
        if (err == 0) {
            err = asyncio__pipe_transport_new(loop, ours[i], i == 0, &s->pp[i].base, &s->pipes[i]);
            ours[i] = -1; /* taken over, on failure too */
            if (err == 0) {
                s->pp[i].open = 1;
                s->pipes_open++;
                asyncio_transport_ref(&s->base); /* the adapter's */
            }
        } else {
            close(ours[i]);
            ours[i] = -1;
        }
    }
    if (err < 0) {
        fail_created(s);
        return err;
    }

    asyncio_protocol *protocol = factory(arg);
    if (protocol == NULL) {
        fail_created(s);
        return -ECONNABORTED; /* the factory refused the child */
    }
    s->base.protocol = protocol;
    if (out != NULL) {
        asyncio_future_ref(s->waiter);
        *out = s->waiter;
    }
    return 0;
}

int asyncio_loop_subprocess_shell(asyncio_loop *loop, asyncio_protocol_factory factory, void *arg,
                                  const char *cmd, const asyncio_subprocess_options *opts,
                                  asyncio_future **out)
{
    if (cmd == NULL)
        return -EINVAL;
    const char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
    return asyncio_loop_subprocess_exec(loop, factory, arg, argv, opts, out);
}
