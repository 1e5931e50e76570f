/* The CPU thread pool (see pool.h).
 *
 * One 64-bit word publishes each call and hands out its tasks: the call's generation (24 bits), its
 * task count and the next unclaimed task index (20 bits each). A thread claims a task by a
 * compare-and-swap of the whole word, so a worker that wakes up late (or is preempted by another
 * process) can never claim a task of another call (the count it checks is in the same word it
 * swaps), and the caller never waits for workers that have nothing to do: it returns as soon as
 * every task of its call has finished. Idle workers
 * spin on the word for up to TERN_POOL_SPIN_NS (yielding now and then once a wait passes
 * TERN_POOL_YIELD_NS, since the two cores may be shared with other processes), then sleep on a
 * condition variable. */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../scheduler/log.h"

/* How long an idle worker spins before sleeping: longer than the serial gaps between the kernel
 * calls of one token (norms, quantization, attention bookkeeping: tens of microseconds), short
 * enough that an idle pool stops costing CPU almost at once. */
enum { TERN_POOL_SPIN_NS = 1000000 };
/* A thread waiting on the pool (a worker for a call, the caller for running tasks) looks at the clock
 * every TERN_POOL_YIELD_SPINS spins, and once it has waited TERN_POOL_YIELD_NS yields its core
 * there (sched_yield). A yield is a system call, microseconds in a VM, and a task published for the
 * thread meanwhile waits for it to return: yielding from the first check on, the waits inside a
 * decode step (a few microseconds each, hundreds a step) spent more time in the kernel than
 * spinning, and a 4-sequence step of 2B-4T took 1-2% longer (docs/cpu.md, "Thread pool"). */
enum { TERN_POOL_YIELD_SPINS = 1024, TERN_POOL_YIELD_NS = 100000 };

struct tern_pool_worker {
    struct tern_pool *pool;
    int index; /* 1 .. n_threads-1; the caller is 0 */
    pthread_t thread;
};

struct tern_pool {
    /* the current call; written by the caller before it publishes a new generation, and stable
     * until every task of that generation has finished */
    _Atomic(tern_pool_fn) fn;
    _Atomic(void *) arg;
    int n_threads;
    int n_started; /* workers actually created */
    struct tern_pool_worker *workers;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    /* hot words, each on its own cache line */
    alignas(64) atomic_uint_least64_t work; /* generation << 40 | n_tasks << 20 | next task */
    alignas(64) atomic_llong done;          /* tasks of the current call that have finished */
    alignas(64) atomic_int sleepers;
    atomic_int stop;
};

enum { TASK_BITS = 20 };
#define TASK_MASK ((UINT64_C(1) << TASK_BITS) - 1)
#define GEN_MASK ((UINT64_C(1) << (64 - 2 * TASK_BITS)) - 1)

static uint32_t gen_of(uint64_t w) {
    return (uint32_t)(w >> (2 * TASK_BITS));
}
static int64_t count_of(uint64_t w) {
    return (int64_t)((w >> TASK_BITS) & TASK_MASK);
}
static int64_t next_of(uint64_t w) {
    return (int64_t)(w & TASK_MASK);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One check of a spin wait, at every TERN_POOL_YIELD_SPINS spins: how long the wait has lasted
 * since its first check (*t0, 0 before it), yielding the core once that passes TERN_POOL_YIELD_NS. */
static int64_t spin_waited(unsigned spins, int64_t *t0) {
    if (spins % TERN_POOL_YIELD_SPINS != 0)
        return 0;
    const int64_t now = now_ns();
    if (!*t0)
        *t0 = now;
    if (now - *t0 > TERN_POOL_YIELD_NS)
        sched_yield();
    return now - *t0;
}

/* Claims and runs tasks of generation gen until none are left (or a later call began). */
static void run_tasks(struct tern_pool *pool, uint32_t gen, int thread) {
    uint64_t w = atomic_load(&pool->work);
    for (;;) {
        if (gen_of(w) != gen)
            return;
        const int64_t idx = next_of(w);
        if (idx >= count_of(w))
            return;
        /* read before the claim: a successful claim proves this call still has unfinished tasks,
         * so the caller has not yet replaced them with the next call's. Atomic because a worker
         * late to a finished call may read them while the caller writes the next call's; its
         * claim then fails and it reads them again. */
        const tern_pool_fn fn = atomic_load_explicit(&pool->fn, memory_order_relaxed);
        void *arg = atomic_load_explicit(&pool->arg, memory_order_relaxed);
        if (atomic_compare_exchange_weak(&pool->work, &w, w + 1)) {
            fn(arg, idx, thread);
            atomic_fetch_add_explicit(&pool->done, 1, memory_order_release);
            w = atomic_load(&pool->work);
        }
    }
}

/* Waits until the generation differs from seen; returns the new one. */
static uint32_t wait_generation(struct tern_pool *pool, uint32_t seen) {
    uint32_t g = gen_of(atomic_load_explicit(&pool->work, memory_order_acquire));
    if (g != seen)
        return g;
    int64_t t0 = 0;
    for (unsigned spins = 1;; spins++) {
        g = gen_of(atomic_load_explicit(&pool->work, memory_order_acquire));
        if (g != seen)
            return g;
        if (spin_waited(spins, &t0) > TERN_POOL_SPIN_NS)
            break;
    }
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add(&pool->sleepers, 1);
    while ((g = gen_of(atomic_load(&pool->work))) == seen)
        pthread_cond_wait(&pool->cond, &pool->mutex);
    atomic_fetch_sub(&pool->sleepers, 1);
    pthread_mutex_unlock(&pool->mutex);
    return g;
}

static void *worker_main(void *p) {
    struct tern_pool_worker *w = p;
    struct tern_pool *pool = w->pool;
    uint32_t seen = 0;
    for (;;) {
        seen = wait_generation(pool, seen);
        if (atomic_load(&pool->stop))
            break;
        run_tasks(pool, seen, w->index);
    }
    return NULL;
}

/* Starts a new generation of n_tasks tasks, task 0 next, and wakes sleeping workers. The seq_cst store of
 * work followed by the seq_cst read of sleepers pairs with the worker's increment of sleepers before its
 * re-check of work under the mutex: a worker either sees the new generation or is counted and
 * woken. */
static void publish(struct tern_pool *pool, int64_t n_tasks) {
    const uint64_t gen = (gen_of(atomic_load(&pool->work)) + 1) & GEN_MASK;
    atomic_store(&pool->work, gen << (2 * TASK_BITS) | (uint64_t)n_tasks << TASK_BITS);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->cond);
        pthread_mutex_unlock(&pool->mutex);
    }
}

tern_status tern_pool_create(int n_threads, struct tern_pool **out) {
    *out = NULL;
    if (n_threads < 1)
        n_threads = 1;
    const size_t size = (sizeof(struct tern_pool) + 63) / 64 * 64;
    struct tern_pool *pool = aligned_alloc(64, size);
    if (!pool)
        return TERN_ERR_NOMEM;
    memset(pool, 0, sizeof *pool);
    pool->n_threads = n_threads;
    atomic_init(&pool->fn, NULL);
    atomic_init(&pool->arg, NULL);
    atomic_init(&pool->work, 0);
    atomic_init(&pool->done, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->stop, 0);
    if (pthread_mutex_init(&pool->mutex, NULL) != 0) {
        free(pool);
        return TERN_ERR_INTERNAL;
    }
    if (pthread_cond_init(&pool->cond, NULL) != 0) {
        pthread_mutex_destroy(&pool->mutex);
        free(pool);
        return TERN_ERR_INTERNAL;
    }
    if (n_threads > 1) {
        pool->workers = calloc((size_t)(n_threads - 1), sizeof *pool->workers);
        if (!pool->workers) {
            tern_pool_free(pool);
            return TERN_ERR_NOMEM;
        }
        for (int i = 0; i < n_threads - 1; i++) {
            pool->workers[i].pool = pool;
            pool->workers[i].index = i + 1;
            if (pthread_create(&pool->workers[i].thread, NULL, worker_main, &pool->workers[i]) != 0) {
                tern_log_error("thread pool: could not start worker %d of %d", i + 1, n_threads - 1);
                tern_pool_free(pool);
                return TERN_ERR_INTERNAL;
            }
            pool->n_started = i + 1;
        }
    }
    *out = pool;
    return TERN_OK;
}

void tern_pool_free(struct tern_pool *pool) {
    if (!pool)
        return;
    if (pool->n_started > 0) {
        atomic_store(&pool->stop, 1);
        publish(pool, 0);
        for (int i = 0; i < pool->n_started; i++)
            pthread_join(pool->workers[i].thread, NULL);
    }
    free(pool->workers);
    pthread_cond_destroy(&pool->cond);
    pthread_mutex_destroy(&pool->mutex);
    free(pool);
}

int tern_pool_size(const struct tern_pool *pool) {
    return pool ? pool->n_threads : 1;
}

void tern_pool_run(struct tern_pool *pool, int64_t n_tasks, tern_pool_fn fn, void *arg) {
    if (n_tasks <= 0)
        return;
    if (!pool || pool->n_started == 0 || n_tasks == 1 || n_tasks > (int64_t)TASK_MASK) {
        for (int64_t i = 0; i < n_tasks; i++)
            fn(arg, i, 0);
        return;
    }
    atomic_store_explicit(&pool->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&pool->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    publish(pool, n_tasks); /* seq_cst: orders the job fields above before the new generation */
    run_tasks(pool, gen_of(atomic_load(&pool->work)), 0);
    /* every task is claimed; wait for the ones still running on workers */
    int64_t t0 = 0;
    for (unsigned spins = 1; atomic_load_explicit(&pool->done, memory_order_acquire) < n_tasks; spins++)
        spin_waited(spins, &t0);
}
