/* The built-in executor: a pool of worker threads, written on the public
 * asyncio_executor_ops interface exactly as a user's executor would be.
 *
 * Owns: a FIFO queue of jobs (one node per queued job, found from the job
 * through its data pointer so that cancel is O(1)), a free list of nodes,
 * and the worker threads.  Everything is guarded by `lock`; `work` wakes
 * idle workers, `gone` wakes shutdown(wait=1) when a worker exits.
 *
 * Threads: submit and shutdown come from any thread, cancel from a loop's
 * thread, destroy from whichever thread drops the last executor reference.
 * Workers are started lazily, one per submission that finds no idle
 * worker, up to max_workers, and are detached: they live until the pool
 * is shut down and the queue is empty.  The pool's memory is reference
 * counted -- one reference for the executor, one per live worker -- so
 * after shutdown(wait=0) or the last unref, workers finish what is queued
 * (CPython's cancel_futures=False) and the last one out frees the pool. */
#include "internal.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

/* CPython's ThreadPoolExecutor default: min(32, cpus + 4) -- I/O-bound
 * work is what run_in_executor is mostly used for. */
#define DEFAULT_MAX_CAP 32
#define DEFAULT_EXTRA 4

/* Freed nodes kept for reuse; beyond this they go back to malloc. */
#define NODE_CACHE_MAX 256

struct node {
    asyncio__link link; /* pool->queue, or the free list */
    asyncio_executor_job *job;
};

struct pool {
    asyncio__refcount refs; /* the executor's + one per live worker */
    pthread_mutex_t lock;
    pthread_cond_t work; /* queue non-empty or shutdown */
    pthread_cond_t gone; /* a worker exited */
    asyncio__link queue; /* struct node, oldest first */
    asyncio__link free_nodes;
    size_t nfree;
    size_t nqueued;
    int max_workers;
    int nthreads; /* live workers, started or starting */
    int nidle;    /* workers waiting on `work` */
    int shutdown;
};

/* The pool whose worker this thread is: shutdown(wait=1) from inside one
 * of its own jobs would wait for itself. */
static ASYNCIO__THREAD_LOCAL struct pool *current_pool;

static void pool_unref(struct pool *p)
{
    if (!asyncio__ref_dec(&p->refs))
        return;
    while (!asyncio__list_empty(&p->free_nodes)) {
        asyncio__link *l = p->free_nodes.next;
        asyncio__list_remove(l);
        free(asyncio__container_of(l, struct node, link));
    }
    pthread_cond_destroy(&p->gone);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* Under the lock. */
static void node_release(struct pool *p, struct node *n)
{
    if (p->nfree < NODE_CACHE_MAX) {
        asyncio__list_push_back(&p->free_nodes, &n->link);
        p->nfree++;
    } else {
        free(n);
    }
}

/* ---- Signals and threads ------------------------------------------------------- */

int asyncio__spawn_detached(void *(*main)(void *), void *arg)
{
    /* A new thread inherits the creator's mask: block around the create.
     * Synchronous signals stay open, a fault must still kill the process
     * the usual way. */
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGTRAP);
    sigdelset(&all, SIGABRT);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_attr_t attr;
    int err = pthread_attr_init(&attr);
    if (err == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t t;
        err = pthread_create(&t, &attr, main, arg);
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -err;
}

/* ---- Workers ------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    struct pool *p = arg;
    current_pool = p;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (asyncio__list_empty(&p->queue) && !p->shutdown) {
            p->nidle++;
            pthread_cond_wait(&p->work, &p->lock);
            p->nidle--;
        }
        /* Shut down: still run what is queued, then leave. */
        if (asyncio__list_empty(&p->queue))
            break;
        struct node *n = asyncio__container_of(p->queue.next, struct node, link);
        asyncio__list_remove(&n->link);
        p->nqueued--;
        asyncio_executor_job *job = n->job;
        /* No longer cancellable: cancel finds no node. */
        asyncio_executor_job_set_data(job, NULL);
        node_release(p, n);
        pthread_mutex_unlock(&p->lock);

        asyncio_executor_job_run(job);

        pthread_mutex_lock(&p->lock);
    }
    if (--p->nthreads == 0)
        pthread_cond_broadcast(&p->gone);
    pthread_mutex_unlock(&p->lock);
    current_pool = NULL;
    pool_unref(p);
    return NULL;
}

/* ---- The ops ---------------------------------------------------------------------- */

static int pool_submit(void *impl, asyncio_executor_job *job)
{
    struct pool *p = impl;
    pthread_mutex_lock(&p->lock);
    if (p->shutdown) {
        pthread_mutex_unlock(&p->lock);
        return -ESHUTDOWN;
    }
    struct node *n;
    if (!asyncio__list_empty(&p->free_nodes)) {
        n = asyncio__container_of(p->free_nodes.next, struct node, link);
        asyncio__list_remove(&n->link);
        p->nfree--;
    } else if ((n = malloc(sizeof(*n))) == NULL) {
        pthread_mutex_unlock(&p->lock);
        return -ENOMEM;
    }
    n->job = job;
    asyncio_executor_job_set_data(job, n);
    asyncio__list_push_back(&p->queue, &n->link);
    p->nqueued++;

    /* A worker that was signalled but has not woken yet still counts as
     * idle, so a burst of submissions starts workers as it should. */
    if (p->nqueued <= (size_t)p->nidle || p->nthreads >= p->max_workers) {
        pthread_mutex_unlock(&p->lock);
        pthread_cond_signal(&p->work);
        return 0;
    }
    p->nthreads++;
    asyncio__ref_inc(&p->refs); /* the new worker's */
    pthread_mutex_unlock(&p->lock);

    int err = asyncio__spawn_detached(worker_main, p);
    if (err == 0)
        return 0;

    pthread_mutex_lock(&p->lock);
    p->nthreads--;
    asyncio__ref_dec(&p->refs); /* never the last: the executor holds one */
    if (p->nthreads > 0) {
        /* The workers there are will get to it. */
        pthread_mutex_unlock(&p->lock);
        return 0;
    }
    /* No worker at all: nobody would ever run it.  Still queued, since no
     * worker could have taken it. */
    asyncio__list_remove(&n->link);
    p->nqueued--;
    asyncio_executor_job_set_data(job, NULL);
    node_release(p, n);
    pthread_cond_broadcast(&p->gone);
    pthread_mutex_unlock(&p->lock);
    return err;
}

static int pool_cancel(void *impl, asyncio_executor_job *job)
{
    struct pool *p = impl;
    pthread_mutex_lock(&p->lock);
    struct node *n = asyncio_executor_job_get_data(job);
    if (n != NULL) {
        asyncio__list_remove(&n->link);
        p->nqueued--;
        asyncio_executor_job_set_data(job, NULL);
        node_release(p, n);
    }
    pthread_mutex_unlock(&p->lock);
    return n != NULL;
}

static int pool_shutdown(void *impl, int wait)
{
    struct pool *p = impl;
    pthread_mutex_lock(&p->lock);
    p->shutdown = 1;
    pthread_cond_broadcast(&p->work);
    int err = 0;
    if (wait) {
        if (current_pool == p)
            err = -EDEADLK;
        else
            while (p->nthreads > 0)
                pthread_cond_wait(&p->gone, &p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return err;
}

static void pool_destroy(void *impl) { pool_unref(impl); }

static const asyncio_executor_ops pool_ops = {
    .submit = pool_submit,
    .cancel = pool_cancel,
    .shutdown = pool_shutdown,
    .destroy = pool_destroy,
};

static int default_max_workers(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    long n = cpus + DEFAULT_EXTRA;
    return (int)(n < DEFAULT_MAX_CAP ? n : DEFAULT_MAX_CAP);
}

int asyncio_thread_pool_executor_new(int max_workers, asyncio_executor **out)
{
    if (max_workers < 0 || out == NULL)
        return -EINVAL;
    struct pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    asyncio__ref_init(&p->refs);
    asyncio__list_init(&p->queue);
    asyncio__list_init(&p->free_nodes);
    p->max_workers = max_workers > 0 ? max_workers : default_max_workers();
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->gone, NULL);
    int err = asyncio_executor_new(&pool_ops, p, out);
    if (err < 0)
        pool_unref(p);
    return err;
}
