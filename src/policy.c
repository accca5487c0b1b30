/* Event loop policies.  The default one keeps a current loop per thread:
 * in the main thread get_event_loop makes one on first use (unless
 * set_event_loop was called there), other threads must set one first. */
#include "internal.h"

#include <sys/syscall.h>
#include <unistd.h>

static pthread_key_t current_key;
static pthread_once_t current_once = PTHREAD_ONCE_INIT;
static ASYNCIO__THREAD_LOCAL int set_called; /* set_event_loop was called in this thread */

static void release_current(void *loop) { asyncio_loop_unref(loop); }

static void make_key(void) { pthread_key_create(&current_key, release_current); }

static int is_main_thread(void) { return syscall(SYS_gettid) == getpid(); }

static int default_set_event_loop(asyncio_event_loop_policy *self, asyncio_loop *loop)
{
    pthread_once(&current_once, make_key);
    asyncio_loop *old = pthread_getspecific(current_key);
    asyncio_loop_ref(loop);
    pthread_setspecific(current_key, loop);
    set_called = 1;
    asyncio_loop_unref(old);
    return 0;
}

static int default_new_event_loop(asyncio_event_loop_policy *self, asyncio_loop **loop)
{
    if (loop == NULL)
        return -EINVAL;
    return asyncio__loop_create(loop);
}

static int default_get_event_loop(asyncio_event_loop_policy *self, asyncio_loop **out)
{
    if (out == NULL)
        return -EINVAL;
    pthread_once(&current_once, make_key);
    asyncio_loop *loop = pthread_getspecific(current_key);
    if (loop == NULL) {
        if (set_called || !is_main_thread())
            return ASYNCIO_ENOLOOP;
        int err = asyncio__loop_create(&loop);
        if (err < 0)
            return err;
        pthread_setspecific(current_key, loop); /* the policy's reference */
    }
    *out = loop;
    return 0;
}

static asyncio_event_loop_policy default_policy = {
    .get_event_loop = default_get_event_loop,
    .set_event_loop = default_set_event_loop,
    .new_event_loop = default_new_event_loop,
};

static asyncio_event_loop_policy *current_policy;

asyncio_event_loop_policy *asyncio_get_event_loop_policy(void)
{
    asyncio_event_loop_policy *p = __atomic_load_n(&current_policy, __ATOMIC_ACQUIRE);
    return p != NULL ? p : &default_policy;
}

int asyncio_set_event_loop_policy(asyncio_event_loop_policy *policy)
{
    if (policy != NULL && (policy->get_event_loop == NULL || policy->set_event_loop == NULL ||
                           policy->new_event_loop == NULL))
        return -EINVAL;
    __atomic_store_n(&current_policy, policy, __ATOMIC_RELEASE);
    return 0;
}

int asyncio_get_event_loop(asyncio_loop **loop)
{
    if (loop == NULL)
        return -EINVAL;
    asyncio_loop *running = asyncio__running_loop();
    if (running != NULL) {
        *loop = running;
        return 0;
    }
    asyncio_event_loop_policy *p = asyncio_get_event_loop_policy();
    return p->get_event_loop(p, loop);
}

int asyncio_set_event_loop(asyncio_loop *loop)
{
    asyncio_event_loop_policy *p = asyncio_get_event_loop_policy();
    return p->set_event_loop(p, loop);
}

int asyncio_new_event_loop(asyncio_loop **loop)
{
    if (loop == NULL)
        return -EINVAL;
    asyncio_event_loop_policy *p = asyncio_get_event_loop_policy();
    return p->new_event_loop(p, loop);
}
