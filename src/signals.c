/* Signal handlers on libevent's signal events.
 *
 * libevent delivers signals to one event_base only (the last one to add a
 * signal event steals them), so one loop at a time owns signals; another
 * loop gets -EBUSY until the owner removes its last handler or closes.
 * libevent already runs the signal event outside the signal handler; the
 * user callback goes through the ready queue like every other callback.
 * libevent saves the previous disposition when a signal's first event is
 * added and restores it when the last one is deleted. */
#include "internal.h"

#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>

struct signal_entry {
    asyncio_loop *loop;
    struct event *ev;
    asyncio_callback cb;
    void *arg;
    asyncio_handle *pending; /* a delivery queued and not yet run */
};

struct asyncio__signals {
    struct signal_entry entries[NSIG];
    int count;
};

static pthread_mutex_t owner_lock = PTHREAD_MUTEX_INITIALIZER;
static asyncio_loop *owner;

static int valid_signal(int signum)
{
    struct sigaction sa;
    if (signum <= 0 || signum >= NSIG || signum == SIGKILL || signum == SIGSTOP)
        return 0;
    /* Rejects the signals the C library keeps for itself. */
    return sigaction(signum, NULL, &sa) == 0;
}

/* The handler may be removed between the delivery and the callback: the
 * queued handle is then forgotten (cancelled), as remove_reader does. */
static void forget_pending(struct signal_entry *e) { asyncio__handle_forget(&e->pending); }

static void run_handler(void *arg)
{
    struct signal_entry *e = arg;
    asyncio_handle_unref(e->pending);
    e->pending = NULL;
    e->cb(e->arg);
}

static void on_signal(evutil_socket_t signum, short what, void *arg)
{
    struct signal_entry *e = arg;
    if (e->pending == NULL) /* deliveries coalesce until the callback runs */
        asyncio_loop_call_soon(e->loop, run_handler, e, &e->pending);
}

int asyncio_loop_add_signal_handler(asyncio_loop *loop, int signum, asyncio_callback cb, void *arg)
{
    if (cb == NULL || !valid_signal(signum))
        return -EINVAL;
    ASYNCIO__CHECK_OPEN(loop);

    pthread_mutex_lock(&owner_lock);
    if (owner != NULL && owner != loop) {
        pthread_mutex_unlock(&owner_lock);
        return -EBUSY;
    }
    owner = loop;
    pthread_mutex_unlock(&owner_lock);

    if (loop->signals == NULL && (loop->signals = calloc(1, sizeof(*loop->signals))) == NULL)
        goto nomem;
    struct signal_entry *e = &loop->signals->entries[signum];
    e->cb = cb; /* a delivery already queued runs the new handler */
    e->arg = arg;
    if (e->ev != NULL)
        return 0; /* replaced */
    e->loop = loop;
    e->ev = evsignal_new(loop->base, signum, on_signal, e);
    if (e->ev == NULL)
        goto nomem;
    if (event_add(e->ev, NULL) < 0) {
        event_free(e->ev);
        e->ev = NULL;
        goto nomem;
    }
    loop->signals->count++;
    return 0;

nomem:
    if (loop->signals == NULL || loop->signals->count == 0) {
        pthread_mutex_lock(&owner_lock);
        owner = NULL;
        pthread_mutex_unlock(&owner_lock);
    }
    return -ENOMEM;
}

static void release_ownership_if_idle(asyncio_loop *loop)
{
    if (loop->signals != NULL && loop->signals->count > 0)
        return;
    pthread_mutex_lock(&owner_lock);
    if (owner == loop)
        owner = NULL;
    pthread_mutex_unlock(&owner_lock);
}

int asyncio_loop_remove_signal_handler(asyncio_loop *loop, int signum)
{
    if (!valid_signal(signum))
        return -EINVAL;
    ASYNCIO__CHECK_OPEN(loop);
    if (loop->signals == NULL || loop->signals->entries[signum].ev == NULL)
        return 0;
    struct signal_entry *e = &loop->signals->entries[signum];
    forget_pending(e);
    event_free(e->ev); /* the last event of a signal: libevent restores it */
    e->ev = NULL;
    loop->signals->count--;
    release_ownership_if_idle(loop);
    return 1;
}

void asyncio__signals_close(asyncio_loop *loop)
{
    if (loop->signals != NULL) {
        for (int i = 0; i < NSIG; i++) {
            forget_pending(&loop->signals->entries[i]);
            if (loop->signals->entries[i].ev != NULL)
                event_free(loop->signals->entries[i].ev);
        }
        free(loop->signals);
        loop->signals = NULL;
    }
    release_ownership_if_idle(loop);
}
