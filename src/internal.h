/* libasyncio internals shared between source files.  Never installed.
 *
 * The data path: libevent reports an fd, a timer or a signal -> the layer
 * appends a handle to the loop's FIFO ready queue -> one loop iteration
 * runs exactly the handles that were ready when it began.  Nothing the
 * user sees is ever called from inside a libevent callback directly,
 * which is how asyncio's ordering and stop semantics are kept on top of
 * libevent (whose active queues have no batch boundary).
 *
 * Names shared between files are asyncio__*; everything else is static. */
#ifndef ASYNCIO_INTERNAL_H
#define ASYNCIO_INTERNAL_H

#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <asyncio.h>

struct event;
struct event_base;

/* Thread-local state of the library.  initial-exec: the general TLS model
 * costs a __tls_get_addr call per access in a shared library, and these
 * are read on every callback; the variables are a few pointers, well
 * within the static TLS glibc keeps for libraries loaded by dlopen. */
#define ASYNCIO__THREAD_LOCAL __thread __attribute__((tls_model("initial-exec")))

/* ---- Reference counts (any thread) -------------------------------------- */

typedef struct {
    int n;
} asyncio__refcount;

static inline void asyncio__ref_init(asyncio__refcount *r) { r->n = 1; }
static inline void asyncio__ref_inc(asyncio__refcount *r)
{
    __atomic_add_fetch(&r->n, 1, __ATOMIC_RELAXED);
}
/* Returns 1 when the count reached zero: the caller frees.  A count of 1
 * seen by a holder means no other thread holds (or can take) a reference,
 * so the locked decrement -- costly on the hot path -- is skipped.  That
 * rests on one rule, kept everywhere in the library: a reference is only
 * ever taken from a reference one already holds, never from a borrowed or
 * cached pointer (no weak references). */
static inline int asyncio__ref_dec(asyncio__refcount *r)
{
    if (__atomic_load_n(&r->n, __ATOMIC_ACQUIRE) == 1)
        return 1;
    return __atomic_sub_fetch(&r->n, 1, __ATOMIC_ACQ_REL) == 0;
}

/* ---- Doubly linked list, intrusive -------------------------------------- */

typedef struct asyncio__link {
    struct asyncio__link *prev, *next;
} asyncio__link;

static inline void asyncio__list_init(asyncio__link *head) { head->prev = head->next = head; }
static inline int asyncio__list_empty(const asyncio__link *head) { return head->next == head; }
static inline void asyncio__list_push_back(asyncio__link *head, asyncio__link *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}
static inline void asyncio__list_remove(asyncio__link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}
#define asyncio__container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ---- Handles ------------------------------------------------------------ */

/* A scheduled call.  While it is queued (ready queue, timer heap or the
 * threadsafe inbox) the queue holds one reference and `loop` is set; once
 * it has run or been dropped, `loop` is NULL, so a handle the user keeps
 * never points at a freed loop. */
struct asyncio_handle {
    asyncio__refcount refs;
    asyncio_loop *loop;
    asyncio_handle *next; /* ready queue / inbox */
    asyncio_callback cb;
    void *arg;
    /* A future's done callback: run as done_cb(future, arg).  The handle
     * holds a reference to the future. */
    asyncio_done_callback done_cb;
    asyncio_future *future;
    double when;       /* timers only, else -1 */
    uint64_t seq;      /* timers: tie-break for equal `when` */
    size_t heap_index; /* timers: position, or ASYNCIO__NOT_IN_HEAP */
    unsigned char cancelled;
    unsigned char ran;
};

/* A queue of handles, FIFO, singly linked. */
typedef struct {
    asyncio_handle *head, *tail;
    size_t len;
} asyncio__queue;

static inline void asyncio__queue_push(asyncio__queue *q, asyncio_handle *h)
{
    h->next = NULL;
    if (q->tail != NULL)
        q->tail->next = h;
    else
        q->head = h;
    q->tail = h;
    q->len++;
}
static inline asyncio_handle *asyncio__queue_pop(asyncio__queue *q)
{
    asyncio_handle *h = q->head;
    if (h != NULL) {
        q->head = h->next;
        if (q->head == NULL)
            q->tail = NULL;
        q->len--;
        h->next = NULL;
    }
    return h;
}
/* Append all of `from` to `to`, leaving `from` empty. */
static inline void asyncio__queue_splice(asyncio__queue *to, asyncio__queue *from)
{
    if (from->head == NULL)
        return;
    if (to->tail != NULL)
        to->tail->next = from->head;
    else
        to->head = from->head;
    to->tail = from->tail;
    to->len += from->len;
    from->head = from->tail = NULL;
    from->len = 0;
}

/* Allocate a handle with one reference (the queue's) for `loop`. */
asyncio_handle *asyncio__handle_new(asyncio_loop *loop, asyncio_callback cb, void *arg);
/* Cancel the handle in *slot (if any), release the reference it holds and
 * clear the slot: for objects that keep the handle they queued. */
void asyncio__handle_forget(asyncio_handle **slot);
/* Drop a handle that will not run (loop closed): unref it, reporting it in
 * debug mode. */
void asyncio__handle_drop(asyncio_handle *h);
/* Move the threadsafe inbox to the ready queue (loop thread). */
void asyncio__inbox_drain(asyncio_loop *loop);

/* ---- Timer heap (timers.c) ------------------------------------------------ */

#define ASYNCIO__NOT_IN_HEAP ((size_t)-1)

/* A binary min-heap on (when, seq); each handle knows its index, so a
 * cancelled timer leaves the heap at once. */
typedef struct {
    asyncio_handle **v;
    size_t len, cap;
    uint64_t next_seq;
} asyncio__heap;

int asyncio__heap_push(asyncio__heap *heap, asyncio_handle *h);
asyncio_handle *asyncio__heap_top(asyncio__heap *heap);
/* Take `h` out of the heap (the heap's reference passes to the caller). */
void asyncio__heap_remove(asyncio__heap *heap, asyncio_handle *h);
void asyncio__heap_clear(asyncio__heap *heap); /* drops every handle */

/* ---- Things the loop closes ----------------------------------------------- */

/* Anything that owns libevent objects on the loop registers itself here so
 * that asyncio_loop_close() can free it before the base goes away. */
typedef struct asyncio__closable {
    asyncio__link link;
    void (*close)(struct asyncio__closable *self);
} asyncio__closable;

void asyncio__loop_add_closable(asyncio_loop *loop, asyncio__closable *c);
void asyncio__loop_remove_closable(asyncio__closable *c);

/* ---- Transports (transport.c dispatches, each kind implements) ------------- */

/* What a kind of transport implements; a NULL member makes the public call
 * return -ENOTSUP.  write covers write and writelines (the data is copied
 * before it returns).  destroy frees the kind's memory when the last
 * reference goes; by then the transport is closed (or was never opened). */
typedef struct asyncio__transport_ops {
    const char *kind;
    int (*write)(asyncio_transport *t, const struct iovec *iov, int iovcnt);
    int (*write_eof)(asyncio_transport *t);
    int (*can_write_eof)(asyncio_transport *t);
    int (*close)(asyncio_transport *t);
    int (*abort)(asyncio_transport *t);
    int (*is_closing)(asyncio_transport *t);
    int (*pause_reading)(asyncio_transport *t);
    int (*resume_reading)(asyncio_transport *t);
    int (*set_write_buffer_limits)(asyncio_transport *t, size_t high, size_t low);
    size_t (*get_write_buffer_size)(asyncio_transport *t);
    void *(*get_extra_info)(asyncio_transport *t, const char *name);
    int (*sendto)(asyncio_transport *t, const void *data, size_t len, const struct sockaddr *addr,
                  socklen_t addrlen);
    int (*get_pid)(asyncio_transport *t);
    int (*get_returncode)(asyncio_transport *t, int *returncode);
    asyncio_transport *(*get_pipe_transport)(asyncio_transport *t, int fd);
    int (*send_signal)(asyncio_transport *t, int sig);
    void (*destroy)(asyncio_transport *t);
} asyncio__transport_ops;

/* The common head of every transport; a kind embeds it as its first member.
 * The transport holds a reference to its loop. */
struct asyncio_transport {
    asyncio__refcount refs;
    const asyncio__transport_ops *ops;
    asyncio_loop *loop;
    asyncio_protocol *protocol;
};

/* Fill in the head: one reference (the caller's), a loop reference. */
void asyncio__transport_init(asyncio_transport *t, const asyncio__transport_ops *ops,
                             asyncio_loop *loop, asyncio_protocol *protocol);

/* A stream transport over a connected, non-blocking socket (stream.c).
 * Takes `fd` over, on failure too (it is closed).  Schedules
 * protocol->connection_made with call_soon, then starts reading; if
 * `waiter` is not NULL it is completed after connection_made with the
 * transport as result (holding a reference) -- or, if it was cancelled by
 * then, the transport is aborted.  `server` (may be NULL) is the server
 * that accepted the connection: the transport holds a reference to it and
 * calls asyncio__server_connection_done() after connection_lost.  *out
 * (may be NULL) receives a reference. */
int asyncio__stream_new_socket(asyncio_loop *loop, int fd, asyncio_protocol *protocol,
                               asyncio_server *server, asyncio_future *waiter,
                               asyncio_transport **out);

/* server.c: one of the server's connections has gone (connection_lost ran). */
void asyncio__server_connection_done(asyncio_server *server);

/* ---- socket helpers (sockutil.c) ------------------------------------------ */

struct sockaddr_un;

/* Take over a caller's socket: it must be of `type` (SOCK_STREAM, ...) and,
 * unless `family` is AF_UNSPEC, of that family (else -EINVAL); it is made
 * O_NONBLOCK.  0 or a negative error; the fd is the caller's either way. */
int asyncio__sock_adopt(int fd, int type, int family);
/* A new socket as the library makes them: non-blocking, close-on-exec.
 * The fd, or -errno. */
int asyncio__sock_open(int family, int type, int proto);
/* Socket options as asyncio's `reuse_address`, `reuse_port`,
 * `allow_broadcast` (and IPV6_V6ONLY for listeners) set them. */
enum {
    ASYNCIO__SOCK_REUSEADDR = 1 << 0,
    ASYNCIO__SOCK_REUSEPORT = 1 << 1,
    ASYNCIO__SOCK_BROADCAST = 1 << 2,
    ASYNCIO__SOCK_V6ONLY = 1 << 3, /* AF_INET6 sockets only */
};
/* Turn on each option in `opts`, in the order above; stops at the first
 * failure: 0 or -errno (the fd stays open, the caller's). */
int asyncio__sock_setopts(int fd, unsigned opts);
/* TCP_NODELAY on an AF_INET/AF_INET6 socket, as asyncio sets it on every
 * TCP transport; other sockets, and errors, are left alone. */
void asyncio__sock_set_nodelay(int fd);
/* Fill `sun` for `path` (strlen(path) < sizeof(sun->sun_path): the caller
 * checks, with its own error); returns the length to bind/connect with. */
socklen_t asyncio__sock_unix_addr(struct sockaddr_un *sun, const char *path);
/* asyncio_loop_getaddrinfo for host:port with hints (family, type, proto,
 * flags); its result in *out. */
int asyncio__sock_getaddrinfo(asyncio_loop *loop, const char *host, int port, int family, int type,
                              int proto, int flags, asyncio_future **out);
/* ---- end socket helpers */

/* ---- TLS (tls.c) ------------------------------------------------------------- */

/* Client: a TLS handshake over the connected socket `fd` (taken over on
 * success and failure alike), then protocol = factory(arg), then a TLS
 * stream transport: `waiter` completes with it after connection_made, or
 * fails (ASYNCIO_ECERT, ASYNCIO_ESSL, -ETIMEDOUT, -errno; -ECONNABORTED
 * when the factory refuses).  ctx NULL: the default verifying context.
 * hostname NULL or "": no host name check.  Returns 0, or an error
 * before anything started (then `waiter` is untouched). */
int asyncio__tls_connect(asyncio_loop *loop, int fd, SSL_CTX *ctx, const char *hostname,
                         double handshake_timeout, double shutdown_timeout,
                         asyncio_protocol_factory factory, void *arg, asyncio_future *waiter);
/* Server: the handshake over an accepted `fd` (taken over), which the
 * caller counts as one of `server`'s connections before the call (as for
 * asyncio__stream_new_socket; an error return means it is not one); after
 * it the factory and the transport.  A failed handshake, or a factory
 * that refuses, ends with asyncio__server_connection_done; the failure
 * is reported through the exception handler and makes no protocol. */
int asyncio__tls_accept(asyncio_loop *loop, asyncio_server *server, int fd, SSL_CTX *ctx,
                        double handshake_timeout, double shutdown_timeout,
                        asyncio_protocol_factory factory, void *arg);

/* resolve.c: the loop's evdns base, made on first use; NULL on failure. */
struct evdns_base *asyncio__loop_dns(asyncio_loop *loop);

/* Map an EAI_* / EVUTIL_EAI_* code to ASYNCIO_EAI_*. */
int asyncio__eai_error(int eai);

/* ---- The loop -------------------------------------------------------------- */

struct asyncio__signals; /* signals.c */

struct asyncio_loop {
    asyncio__refcount refs;
    struct event_base *base;
    int own_base; /* 0: asyncio_loop_new_from_event_base */

    asyncio__queue ready;
    asyncio__heap timers;
    struct event *timer_ev; /* armed for the earliest deadline */
    double timer_armed;     /* deadline it is armed for, or -1 */

    /* call_soon_threadsafe: other threads append under the lock and write
     * the eventfd; the loop moves the inbox to the ready queue. */
    pthread_mutex_t inbox_lock;
    asyncio__queue inbox;
    int wake_fd;
    int wake_pending; /* atomic: a wake-up is in flight */
    struct event *wake_ev;

    int running;
    int stopping;
    int closed;
    unsigned ran_since_poll; /* callbacks run since libevent was polled */
    long polled_at;          /* coarse clock (ms) at that poll */
    unsigned clock_check_at; /* ran_since_poll at which the coarse clock is read */

    int debug;
    double slow_callback_duration;
    asyncio_exception_handler exc_handler;
    void *exc_handler_arg;

    asyncio__link closables;
    struct asyncio__signals *signals;
    struct evdns_base *dns;           /* resolve.c, made on first use */
    struct asyncio__fdwatch *fdwatch; /* fdwatch.c: fd -> reader/writer */
    void *read_buffer;                /* stream.c: one scratch buffer for reads */
    size_t read_buffer_size;

    /* -- resolver area (resolve.c): the closable that owns `dns` and the
     * lookups still pending on it; made together with `dns`. -- */
    struct asyncio__resolver *resolver;

    /* -- executor area (executor.c): the default executor and the jobs of
     * run_in_executor whose loop side is still live.  Loop thread only;
     * set up on first use (executor_attached), when executor_closable is
     * registered: at close it drops the default executor (shut down
     * without waiting) and releases every job still listed. -- */
    asyncio_executor *default_executor; /* NULL until first needed or set */
    int default_executor_shutdown;      /* shutdown_default_executor called */
    int executor_attached;
    asyncio__closable executor_closable;
    asyncio__link executor_jobs;

    /* -- tasks area (task.c): the loop's tasks that have not finished, its
     * cache of stacks and the stack size; made on first use, freed by its
     * closable. -- */
    struct asyncio__tasks *tasks;

    /* -- TLS area (tls-context.c): why recent handshakes failed, for
     * asyncio_future_ssl_error; made on the first failure, freed by its
     * closable. -- */
    struct asyncio__tls_failures *tls_failures;
};

/* 1 if the loop is closed (and callers should return ASYNCIO_ECLOSED). */
#define ASYNCIO__CHECK_OPEN(loop)   \
    do {                            \
        if ((loop) == NULL)         \
            return -EINVAL;         \
        if ((loop)->closed)         \
            return ASYNCIO_ECLOSED; \
    } while (0)

/* A loop on a base of its own (the default policy's new_event_loop). */
int asyncio__loop_create(asyncio_loop **out);

/* The loop running in this thread, or NULL. */
asyncio_loop *asyncio__running_loop(void);

/* Report through the loop's exception handler (message is static). */
void asyncio__report(asyncio_loop *loop, const char *message, int error, asyncio_future *future,
                     asyncio_handle *handle);

/* Monotonic seconds. */
double asyncio__now(void);

/* Signals: close everything the loop holds (signals.c). */
void asyncio__signals_close(asyncio_loop *loop);

/* ---- Executor area (executor.c, thread_pool.c) ------------------------------ */

/* Start a detached thread running main(arg) with every asynchronous signal
 * blocked (signals are the loop's business, not a worker's).  0 or -errno. */
int asyncio__spawn_detached(void *(*main)(void *), void *arg);

/* ---- Tasks (task.c; hooks in future.c) ---------------------------------------- */

/* A task is an asyncio_future with a struct asyncio__task attached while
 * its coroutine has not returned.  The future then refuses set_result and
 * set_exception (-EINVAL), and asyncio_future_cancel calls
 * asyncio__task_cancel, which returns 1 (the request is made). */
struct asyncio__task;
void asyncio__future_attach_task(asyncio_future *f, struct asyncio__task *task); /* NULL: detach */
/* The task's own completion: error 0 with result, -ECANCELED (cancelled)
 * or another error.  The result has no destroy. */
int asyncio__future_finish_task(asyncio_future *f, int error, void *result);
int asyncio__task_cancel(struct asyncio__task *task);
/* ---- end tasks */

/* ---- Pipes (pipe.c; the stream transport's fd path, stream-fd.c) ---------- */

/* A pipe transport over `fd`, for the subprocess layer: a read pipe
 * (writable 0) or a write pipe (writable 1), the same transport that
 * asyncio_loop_connect_read_pipe / _write_pipe make (include/asyncio/pipe.h
 * says what each supports and what its protocol hears).
 *   fd        a FIFO, socket or pollable character device, else -EINVAL
 *             (-EPERM when the backend cannot watch it).  Made
 *             O_NONBLOCK and taken over on success and failure alike;
 *             closed when connection_lost has run (or on failure, before
 *             this returns).
 *   protocol  borrowed until its connection_lost, which it hears exactly
 *             once on success (on loop close: ASYNCIO_ECLOSED, then
 *             possibly without connection_made); on failure it hears
 *             nothing.  No factory, no future: nothing else is called.
 *   *out      (may be NULL) a reference to the transport; the transport
 *             also holds itself until connection_lost has run.
 * Order: connection_made is queued (call_soon) before this returns; the
 * read pipe starts reading, and the write pipe watching for its reader
 * going, only after it ran.  So a handle the caller queues after this call
 * runs after connection_made and before any data_received,
 * eof_received or connection_lost of the pipe.  A close() before then
 * still delivers connection_made first, then connection_lost(0).
 * Errors: -EINVAL (loop, protocol or its ops NULL, fd < 0 -- not closed --,
 * fd of another type), ASYNCIO_ECLOSED, -ENOMEM, -EPERM, -errno of fstat /
 * fcntl.  Loop thread only. */
int asyncio__pipe_transport_new(asyncio_loop *loop, int fd, int writable,
                                asyncio_protocol *protocol, asyncio_transport **out);
/* ---- end pipes */

/* ---- Subprocesses (spawn.c, subprocess.c) ----------------------------------- */

/* What one of the child's fds 0-2 becomes: an fd >= 0 of ours (dup2'd
 * onto it; we keep ours), or one of these. */
enum {
    ASYNCIO__STDIO_INHERIT = -1,
    ASYNCIO__STDIO_DEVNULL = -2,
    ASYNCIO__STDIO_STDOUT = -3, /* stderr only: the child's fd 1 */
};

typedef struct asyncio__spawn_opts {
    const char *file; /* looked up in PATH when it has no '/' */
    char *const *argv;
    char *const *envp; /* NULL: environ */
    const char *cwd;   /* NULL: ours */
    int stdio[3];
} asyncio__spawn_opts;

/* Start a child (posix_spawnp): fds 0-2 as `stdio` says, every other fd
 * closed, every signal at SIG_DFL and unblocked.  0 and *pid, or the
 * error -- for a program that cannot be run, the exec's own errno, and no
 * child exists.  Any thread. */
int asyncio__spawn(const asyncio__spawn_opts *o, pid_t *pid);

#endif
