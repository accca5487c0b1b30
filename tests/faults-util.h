/* The subprocess protocol shared by test-faults-child and
 * test-faults-reentrant.
 *
 * fu_victim records every callback of a subprocess transport's protocol --
 * their order, how deeply they nest, the errors they carry -- so that a
 * test can assert asyncio's order after a fault: connection_made first,
 * each pipe lost once, process_exited once, connection_lost last and once,
 * never inside another callback, nothing after it.  Set up before the
 * spawn, it also drives the fault: write megabytes to the child's stdin and
 * kill it (payload, kill_how), let the child drain its stdin, kill it and
 * write again (drain_then_kill), or close the transport from
 * pipe_data_received or process_exited (act). */
#ifndef FAULTS_UTIL_H
#define FAULTS_UTIL_H

#include "testutil.h"

#include <stddef.h>

#define FU_MIB (1024 * 1024)
#define FU_CHUNK (64 * 1024)

/* How the child is killed once the payload is written: by
 * asyncio_transport_kill, by send_signal, or by kill(2) behind the
 * library's back. */
enum { FU_KILL_BY_TRANSPORT, FU_KILL_BY_SEND_SIGNAL, FU_KILL_FROM_OUTSIDE };
/* What the protocol does to its own transport, once. */
enum { FU_ACT_NONE, FU_ACT_CLOSE_IN_DATA, FU_ACT_CLOSE_IN_EXITED };

typedef struct fu_victim fu_victim;
struct fu_victim {
    asyncio_protocol base;
    asyncio_loop *loop;
    asyncio_transport *t; /* our reference */
    tu_recorder events;
    int pipe_err[3];
    int lost_err;
    int returncode_at_exit;
    int depth; /* protocol callbacks running right now */
    int nested_lost;
    int after_lost;
    int pauses, resumes;
    int kill_how;
    int act;
    size_t written;
    unsigned char *payload; /* FU_CHUNK bytes */
    int drain_then_kill;    /* let the child drain its stdin, then kill it */
};

/* Zero `v`, hook its protocol ops and recorder up to `loop`; the caller
 * sets payload (malloc'd, FU_CHUNK bytes, freed by fu_victim_free),
 * kill_how, act or drain_then_kill afterwards. */
void fu_victim_init(fu_victim *v, asyncio_loop *loop);

/* Drop the transport reference, the recorder and the payload. */
void fu_victim_free(fu_victim *v);

/* subprocess_exec(argv, opts) with `v` as the protocol, run the loop until
 * connection_lost stops it, and assert the exec future is done. */
void fu_spawn_and_run(asyncio_loop *loop, fu_victim *v, const char *const argv[],
                      const asyncio_subprocess_options *opts);

/* Assert asyncio's order (above).  Bit fd of `piped` set: fd was a pipe
 * and must have been lost exactly once; clear: never. */
void fu_assert_victim_order(const fu_victim *v, int piped);

/* The transport's returncode; asserts it is known. */
int fu_victim_returncode(const fu_victim *v);

#endif
