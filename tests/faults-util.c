/* The fu_victim subprocess protocol (faults-util.h). */
#include "faults-util.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>

static int count_of(const tu_recorder *r, int value)
{
    int n = 0;
    for (size_t i = 0; i < r->len; i++)
        n += r->v[i] == value;
    return n;
}

static void stop_soon_cb(void *loop) { asyncio_loop_stop(loop); }

/* Stop a little later, so that a callback wrongly queued after the one
 * that asks would still come and be caught. */
static void stop_shortly(asyncio_loop *loop)
{
    ck_assert_int_eq(asyncio_loop_call_later(loop, 0.02, stop_soon_cb, loop, NULL), 0);
}

enum { EV_MADE = 1, EV_PIPE_LOST = 10 /* + fd */, EV_EXITED = 20, EV_LOST = 30 };

/* Every callback but connection_lost. */
static void v_enter(fu_victim *v)
{
    if (count_of(&v->events, EV_LOST) > 0)
        v->after_lost++;
    v->depth++;
}

static void v_write(fu_victim *v, size_t n)
{
    asyncio_transport *in = asyncio_transport_get_pipe_transport(v->t, 0);
    ck_assert_ptr_nonnull(in);
    for (size_t done = 0; done < n; done += FU_CHUNK) {
        ck_assert_int_eq(asyncio_transport_write(in, v->payload, FU_CHUNK), 0);
        v->written += FU_CHUNK;
    }
}

static void do_kill(void *arg)
{
    fu_victim *v = arg;
    /* The child may have drained what it was given (cat keeps up with us
     * under a slow sanitizer).  Stopped, it reads no more, and a mebibyte
     * more is more than a pipe holds: data is waiting when it dies. */
    pid_t pid = asyncio_transport_get_pid(v->t);
    ck_assert_int_eq(kill(pid, SIGSTOP), 0);
    siginfo_t si;
    ck_assert_int_eq(waitid(P_PID, (id_t)pid, &si, WSTOPPED | WNOWAIT), 0);
    v_write(v, FU_MIB);
    asyncio_transport *in = asyncio_transport_get_pipe_transport(v->t, 0);
    ck_assert_uint_gt(asyncio_transport_get_write_buffer_size(in), 0);
    switch (v->kill_how) {
    case FU_KILL_BY_TRANSPORT:
        ck_assert_int_eq(asyncio_transport_kill(v->t), 0);
        break;
    case FU_KILL_BY_SEND_SIGNAL:
        ck_assert_int_eq(asyncio_transport_send_signal(v->t, SIGKILL), 0);
        break;
    default:
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
    }
    /* Still writing after the kill, before the loop has noticed. */
    v_write(v, FU_CHUNK);
}

/* The stdin pipe is empty and its reader has just died: the next write
 * goes straight to writev, which fails with EPIPE -- and would raise
 * SIGPIPE were it not blocked around the call. */
static void write_after_the_death(void *arg)
{
    fu_victim *v = arg;
    asyncio_transport *in = asyncio_transport_get_pipe_transport(v->t, 0);
    if (asyncio_transport_get_write_buffer_size(in) > 0) {
        ck_assert_int_eq(asyncio_loop_call_later(v->loop, 0.002, write_after_the_death, v, NULL),
                         0);
        return;
    }
    pid_t pid = asyncio_transport_get_pid(v->t);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    siginfo_t si;
    ck_assert_int_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0); /* dead, not reaped */
    /* The write itself was fine; its error reaches a later callback. */
    size_t events = v->events.len;
    ck_assert_int_eq(asyncio_transport_write(in, v->payload, FU_CHUNK), 0);
    ck_assert_uint_eq(v->events.len, events);
    ck_assert_int_eq(asyncio_transport_is_closing(in), 1);
    ck_assert_int_eq(asyncio_transport_write(in, v->payload, FU_CHUNK), -EPIPE);
}

static void v_made(asyncio_protocol *self, asyncio_transport *t)
{
    fu_victim *v = (fu_victim *)self;
    v_enter(v);
    tu_rec_push(&v->events, EV_MADE);
    asyncio_transport_ref(t);
    v->t = t;
    if (v->drain_then_kill) {
        v_write(v, 4 * FU_CHUNK);
        ck_assert_int_eq(asyncio_loop_call_soon(v->loop, write_after_the_death, v, NULL), 0);
    } else if (v->payload != NULL) {
        v_write(v, 4 * FU_MIB);
        ck_assert_int_eq(asyncio_loop_call_later(v->loop, 0.01, do_kill, v, NULL), 0);
    }
    v->depth--;
}

static void v_data(asyncio_protocol *self, int fd, const void *data, size_t len)
{
    fu_victim *v = (fu_victim *)self;
    (void)data;
    (void)len;
    v_enter(v);
    ck_assert_msg(fd == 1 || fd == 2, "pipe_data_received on fd %d", fd);
    if (v->act == FU_ACT_CLOSE_IN_DATA) {
        ck_assert_int_eq(asyncio_transport_close(v->t), 0);
        ck_assert_int_eq(asyncio_transport_is_closing(v->t), 1);
        ck_assert_int_eq(asyncio_transport_close(v->t), 0);
        v->act = FU_ACT_NONE;
    }
    v->depth--;
}

static void v_pipe_lost(asyncio_protocol *self, int fd, int error)
{
    fu_victim *v = (fu_victim *)self;
    v_enter(v);
    ck_assert_msg(fd >= 0 && fd <= 2, "pipe_connection_lost on fd %d", fd);
    tu_rec_push(&v->events, EV_PIPE_LOST + fd);
    v->pipe_err[fd] = error;
    v->depth--;
}

static void v_exited(asyncio_protocol *self)
{
    fu_victim *v = (fu_victim *)self;
    v_enter(v);
    tu_rec_push(&v->events, EV_EXITED);
    ck_assert_int_eq(asyncio_transport_get_returncode(v->t, &v->returncode_at_exit), 0);
    if (v->act == FU_ACT_CLOSE_IN_EXITED) {
        ck_assert_int_eq(asyncio_transport_close(v->t), 0);
        ck_assert_int_eq(asyncio_transport_close(v->t), 0);
    }
    v->depth--;
}

static void v_pause(asyncio_protocol *self)
{
    fu_victim *v = (fu_victim *)self;
    v_enter(v);
    v->pauses++;
    v->depth--;
}

static void v_resume(asyncio_protocol *self)
{
    fu_victim *v = (fu_victim *)self;
    v_enter(v);
    v->resumes++;
    v->depth--;
}

static void v_lost(asyncio_protocol *self, int error)
{
    fu_victim *v = (fu_victim *)self;
    if (v->depth != 0)
        v->nested_lost++;
    if (count_of(&v->events, EV_LOST) > 0)
        v->after_lost++;
    tu_rec_push(&v->events, EV_LOST);
    v->lost_err = error;
    stop_shortly(v->loop);
}

static const asyncio_protocol_ops victim_ops = {
    .connection_made = v_made,
    .connection_lost = v_lost,
    .pipe_data_received = v_data,
    .pipe_connection_lost = v_pipe_lost,
    .process_exited = v_exited,
    .pause_writing = v_pause,
    .resume_writing = v_resume,
};

void fu_victim_init(fu_victim *v, asyncio_loop *loop)
{
    memset(v, 0, sizeof(*v));
    v->base.ops = &victim_ops;
    v->loop = loop;
    tu_rec_init(&v->events);
    for (int i = 0; i < 3; i++)
        v->pipe_err[i] = 12345;
}

void fu_victim_free(fu_victim *v)
{
    asyncio_transport_unref(v->t);
    tu_rec_free(&v->events);
    free(v->payload);
}

static asyncio_protocol *victim_factory(void *arg) { return &((fu_victim *)arg)->base; }

/* connection_made first and once, each pipe lost once, process_exited
 * once, connection_lost last and once, never inside another callback and
 * nothing after it. */
void fu_assert_victim_order(const fu_victim *v, int piped)
{
    const tu_recorder *r = &v->events;
    ck_assert_int_ge(r->len, 3);
    ck_assert_int_eq(r->v[0], EV_MADE);
    ck_assert_int_eq(r->v[r->len - 1], EV_LOST);
    ck_assert_int_eq(count_of(r, EV_MADE), 1);
    ck_assert_int_eq(count_of(r, EV_EXITED), 1);
    ck_assert_int_eq(count_of(r, EV_LOST), 1);
    for (int fd = 0; fd < 3; fd++)
        ck_assert_int_eq(count_of(r, EV_PIPE_LOST + fd), (piped >> fd) & 1);
    ck_assert_int_eq(v->nested_lost, 0);
    ck_assert_int_eq(v->after_lost, 0);
}

int fu_victim_returncode(const fu_victim *v)
{
    int rc = 12345;
    ck_assert_int_eq(asyncio_transport_get_returncode(v->t, &rc), 0);
    return rc;
}

void fu_spawn_and_run(asyncio_loop *loop, fu_victim *v, const char *const argv[],
                      const asyncio_subprocess_options *opts)
{
    asyncio_future *f = NULL;
    int rc = asyncio_loop_subprocess_exec(loop, victim_factory, v, argv, opts, &f);
    ck_assert_msg(rc == 0, "subprocess_exec(%s): %s", argv[0], asyncio_strerror(rc));
    tu_run(loop);
    ck_assert_int_eq(asyncio_future_done(f), 1);
    asyncio_future_unref(f);
}
