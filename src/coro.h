/* Execution contexts for tasks: a stack of their own and a switch between
 * two contexts (coro.c).  Internal to task.c; never installed.
 *
 * Two implementations, chosen when the library is compiled:
 *   x86-64   a dozen instructions of assembly (coro.c) that save the
 *            callee-saved registers, the SSE and x87 control words and the
 *            stack pointer on the old stack and restore them from the new;
 *   others   ucontext (makecontext/swapcontext), the portable fallback;
 *            -DASYNCIO_TASK_UCONTEXT selects it on x86-64 too.
 * swapcontext also saves and restores the signal mask, one sigprocmask
 * system call per switch; the assembly switch makes no system call.
 *
 * Stacks are mmap'ed with one PROT_NONE guard page below them, so an
 * overflow faults instead of overwriting the next allocation.  The switch
 * tells AddressSanitizer (fiber annotations), ThreadSanitizer (fibers) and
 * valgrind (stack registration) which stack is in use. */
#ifndef ASYNCIO_CORO_H
#define ASYNCIO_CORO_H

#include "internal.h"

#include <stddef.h>

#if defined(__x86_64__) && !defined(__ILP32__) && !defined(ASYNCIO_TASK_UCONTEXT)
#define ASYNCIO__CORO_ASM 1
#elif defined(HAVE_UCONTEXT_H)
#define ASYNCIO__CORO_UCONTEXT 1
#include <ucontext.h>
#else
#error "tasks need either x86-64 or <ucontext.h>"
#endif

/* A stack: `lo`..`lo + size` is usable, the guard page is below `lo`. */
typedef struct asyncio__stack {
    void *map; /* the whole mapping, guard page included */
    size_t map_size;
    char *lo;
    size_t size;
    unsigned valgrind_id;
} asyncio__stack;

/* A suspended execution context.  Either a task (it owns a stack) or
 * whoever resumed one (it runs on a stack of its own, e.g. the thread's). */
typedef struct asyncio__coro {
#ifdef ASYNCIO__CORO_ASM
    void *sp; /* where the switch saved the registers */
#else
    ucontext_t uc;
#endif
    /* The stack this context runs on, for the sanitizers: a task's is
     * known from the start; a resumer's is learned when it switches. */
    const void *stack_lo;
    size_t stack_size;
    void *asan_fake_stack; /* AddressSanitizer's fake stack while suspended */
    void *tsan_fiber;      /* ThreadSanitizer's fiber, or NULL */
    int tsan_own_fiber;    /* 1: created for this context, destroyed with it */
} asyncio__coro;

/* The system page size. */
size_t asyncio__page_size(void);

/* Map a stack of at least `size` bytes (rounded up to pages) with its guard
 * page.  0 or -errno (-ENOMEM). */
int asyncio__stack_alloc(asyncio__stack *s, size_t size);
/* Make the stack fit for a new task after an old one ended on it. */
void asyncio__stack_reset(asyncio__stack *s);
void asyncio__stack_free(asyncio__stack *s);

/* Prepare `c` to run entry(arg) on stack `s` when first switched to.
 * entry must never return: it ends by switching away for the last time
 * with asyncio__coro_exit. */
void asyncio__coro_make(asyncio__coro *c, asyncio__stack *s, void (*entry)(void *), void *arg);
/* Release what asyncio__coro_make set up besides the stack. */
void asyncio__coro_destroy(asyncio__coro *c);

/* Suspend the running context into `from` and continue `to`.  Returns when
 * something switches back to `from`. */
void asyncio__coro_switch(asyncio__coro *from, asyncio__coro *to);
/* The last switch out of a task context whose stack will be freed or
 * reused: `from` is never resumed. */
void asyncio__coro_exit(asyncio__coro *from, asyncio__coro *to) __attribute__((noreturn));
/* The first thing entry() must do: complete the switch that started
 * `self` (the sanitizers learn the stack of the context that switched). */
void asyncio__coro_started(asyncio__coro *self);

#endif
