/* Execution contexts for tasks: stacks and the switch (see coro.h).
 *
 * Owns nothing beyond what its callers hand it: the stacks they allocate
 * here and the sanitizer state of each context.  Everything runs in the
 * thread of the loop whose task is switched; `switching_from` is
 * thread-local and lives only across one switch.
 *
 * Measured (2 shared cores of a VM, -O2, best of 7 x 10^7): one round
 * trip, into a context and back, 45-70 ns with the assembly switch, 5.0-5.2
 * us with swapcontext (two rt_sigprocmask calls, dear on this VM).  In the
 * loop (bench/bench-task, yield): a task's asyncio_sleep(0) costs about
 * 3x one call_soon callback. */
#include "coro.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define CORO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORO_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CORO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CORO_TSAN 1
#endif
#endif

#ifdef CORO_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef CORO_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* ---- Stacks ------------------------------------------------------------------ */

size_t asyncio__page_size(void)
{
    static size_t page;
    if (page == 0) {
        long p = sysconf(_SC_PAGESIZE);
        page = p > 0 ? (size_t)p : 4096;
    }
    return page;
}

int asyncio__stack_alloc(asyncio__stack *s, size_t size)
{
    size_t page = asyncio__page_size();
    size = (size + page - 1) / page * page;
    /* MAP_NORESERVE: a task that touches two pages of its stack costs two
     * pages, whatever the stack size. */
    void *map = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED)
        return -errno;
    if (mprotect(map, page, PROT_NONE) < 0) {
        int err = -errno;
        munmap(map, size + page);
        return err;
    }
    s->map = map;
    s->map_size = size + page;
    s->lo = (char *)map + page;
    s->size = size;
#ifdef HAVE_VALGRIND_VALGRIND_H
    s->valgrind_id = VALGRIND_STACK_REGISTER(s->lo, s->lo + s->size);
#else
    s->valgrind_id = 0;
#endif
    return 0;
}

void asyncio__stack_reset(asyncio__stack *s)
{
#ifdef CORO_ASAN
    /* A task's last frames never returned: their redzones are still
     * poisoned in the shadow memory. */
    __asan_unpoison_memory_region(s->lo, s->size);
#else
    (void)s;
#endif
}

void asyncio__stack_free(asyncio__stack *s)
{
    if (s->map == NULL)
        return;
    /* The shadow would otherwise stay poisoned for whatever is mapped here
     * next. */
    asyncio__stack_reset(s);
#ifdef HAVE_VALGRIND_VALGRIND_H
    VALGRIND_STACK_DEREGISTER(s->valgrind_id);
#endif
    munmap(s->map, s->map_size);
    s->map = NULL;
}

/* ---- Sanitizer bookkeeping around a switch ------------------------------------- */

/* Who is switching: read by the context switched to, which records the
 * switcher's stack bounds (AddressSanitizer tells them only then). */
static ASYNCIO__THREAD_LOCAL asyncio__coro *switching_from;

static inline void before_switch(asyncio__coro *from, asyncio__coro *to, int exiting)
{
    switching_from = from;
#ifdef CORO_ASAN
    /* NULL: the fake stack of a context that ends is freed. */
    __sanitizer_start_switch_fiber(exiting ? NULL : &from->asan_fake_stack, to->stack_lo,
                                   to->stack_size);
#else
    (void)exiting;
#endif
#ifdef CORO_TSAN
    if (!from->tsan_own_fiber)
        from->tsan_fiber = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#else
    (void)to;
#endif
}

static inline void after_switch(asyncio__coro *self)
{
#ifdef CORO_ASAN
    const void *lo;
    size_t size;
    __sanitizer_finish_switch_fiber(self->asan_fake_stack, &lo, &size);
    switching_from->stack_lo = lo;
    switching_from->stack_size = size;
#else
    (void)self;
#endif
}

void asyncio__coro_started(asyncio__coro *self) { after_switch(self); }

/* ---- The switch: x86-64 ------------------------------------------------------ */

#ifdef ASYNCIO__CORO_ASM

/* System V AMD64: rbx, rbp, r12-r15, the MXCSR control bits and the x87
 * control word are callee-saved; everything else the compiler already
 * assumes clobbered by the call.  The old context's registers are pushed
 * on its own stack and its stack pointer stored in *save; then the new
 * stack pointer is loaded and the same frame popped from it.  A new
 * context gets a frame whose "return address" is coro_start, which calls
 * entry (r12) with arg (r13). */
void asyncio__coro_swap_x86_64(void **save, void *load);
void asyncio__coro_start_x86_64(void);
__asm__(".text\n"
        ".globl asyncio__coro_swap_x86_64\n"
        ".hidden asyncio__coro_swap_x86_64\n"
        ".type asyncio__coro_swap_x86_64, @function\n"
        ".p2align 4\n"
        "asyncio__coro_swap_x86_64:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    subq $8, %rsp\n"
        "    stmxcsr (%rsp)\n"
        "    fnstcw 4(%rsp)\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    ldmxcsr (%rsp)\n"
        "    fldcw 4(%rsp)\n"
        "    addq $8, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size asyncio__coro_swap_x86_64, .-asyncio__coro_swap_x86_64\n"
        ".globl asyncio__coro_start_x86_64\n"
        ".hidden asyncio__coro_start_x86_64\n"
        ".type asyncio__coro_start_x86_64, @function\n"
        ".p2align 4\n"
        "asyncio__coro_start_x86_64:\n"
        "    movq %r13, %rdi\n"
        "    callq *%r12\n"
        "    ud2\n"
        ".size asyncio__coro_start_x86_64, .-asyncio__coro_start_x86_64\n");

void asyncio__coro_make(asyncio__coro *c, asyncio__stack *s, void (*entry)(void *), void *arg)
{
    memset(c, 0, sizeof(*c));
    uintptr_t top = ((uintptr_t)s->lo + s->size) & ~(uintptr_t)15;
    /* The frame the switch pops, lowest address first.  After its `ret`
     * the stack pointer is top - 16, 16-byte aligned, so coro_start's call
     * gives entry the alignment of an ordinary call. */
    uint64_t *frame = (uint64_t *)(top - 80);
    uint32_t *ctl = (uint32_t *)frame;
    ctl[0] = 0x1F80;                       /* MXCSR: every exception masked, round to nearest */
    ctl[1] = 0x037F;                       /* x87 control word, the same defaults */
    frame[1] = 0;                          /* r15 */
    frame[2] = 0;                          /* r14 */
    frame[3] = (uint64_t)(uintptr_t)arg;   /* r13 */
    frame[4] = (uint64_t)(uintptr_t)entry; /* r12 */
    frame[5] = 0;                          /* rbx */
    frame[6] = 0;                          /* rbp: ends frame-pointer walks here */
    frame[7] = (uint64_t)(uintptr_t)asyncio__coro_start_x86_64;
    frame[8] = 0;
    frame[9] = 0;
    c->sp = frame;
    c->stack_lo = s->lo;
    c->stack_size = s->size;
#ifdef CORO_TSAN
    c->tsan_fiber = __tsan_create_fiber(0);
    c->tsan_own_fiber = 1;
#endif
}

static inline void raw_switch(asyncio__coro *from, asyncio__coro *to)
{
    asyncio__coro_swap_x86_64(&from->sp, to->sp);
}

#else /* ucontext */

/* makecontext passes int arguments only: the pointer travels in halves. */
static void uc_entry(unsigned hi, unsigned lo)
{
    uintptr_t p = ((uintptr_t)hi << 16 << 16) | (uintptr_t)lo;
    void **pair = (void **)p;
    void (*entry)(void *);
    memcpy(&entry, &pair[0], sizeof(entry));
    entry(pair[1]);
}

void asyncio__coro_make(asyncio__coro *c, asyncio__stack *s, void (*entry)(void *), void *arg)
{
    memset(c, 0, sizeof(*c));
    getcontext(&c->uc);
    /* entry and arg at the top of the new stack, where uc_entry finds them. */
    void **pair = (void **)(((uintptr_t)s->lo + s->size - 2 * sizeof(void *)) & ~(uintptr_t)15);
    memcpy(&pair[0], &entry, sizeof(entry));
    pair[1] = arg;
    c->uc.uc_stack.ss_sp = s->lo;
    c->uc.uc_stack.ss_size = (size_t)((char *)pair - s->lo);
    c->uc.uc_link = NULL;
    uintptr_t p = (uintptr_t)pair;
    makecontext(&c->uc, (void (*)(void))uc_entry, 2, (unsigned)(p >> 16 >> 16),
                (unsigned)(p & 0xffffffffu));
    c->stack_lo = s->lo;
    c->stack_size = s->size;
#ifdef CORO_TSAN
    c->tsan_fiber = __tsan_create_fiber(0);
    c->tsan_own_fiber = 1;
#endif
}

static inline void raw_switch(asyncio__coro *from, asyncio__coro *to)
{
    swapcontext(&from->uc, &to->uc);
}

#endif

void asyncio__coro_destroy(asyncio__coro *c)
{
#ifdef CORO_TSAN
    if (c->tsan_own_fiber && c->tsan_fiber != NULL)
        __tsan_destroy_fiber(c->tsan_fiber);
    c->tsan_fiber = NULL;
#else
    (void)c;
#endif
}

void asyncio__coro_switch(asyncio__coro *from, asyncio__coro *to)
{
    before_switch(from, to, 0);
    raw_switch(from, to);
    after_switch(from);
}

void asyncio__coro_exit(asyncio__coro *from, asyncio__coro *to)
{
    before_switch(from, to, 1);
    raw_switch(from, to);
    __builtin_unreachable();
}
