/* The CPU device's thread pool: n_threads - 1 workers created once, plus the calling thread.
 * tern_pool_run is a parallel-for over task indices with no allocation and no thread creation per
 * call; workers spin briefly between calls (a decode token makes ~250 calls, a few microseconds
 * apart) and then sleep on a condition variable, so an idle pool costs nothing. */
#ifndef TERN_CPU_POOL_H
#define TERN_CPU_POOL_H

#include <stdint.h>

#include "../scheduler/status.h"

struct tern_pool;

/* One task: index task in [0, n_tasks), run on thread `thread` in [0, tern_pool_size). Tasks of one
 * call run in any order and on any thread; each index runs exactly once. */
typedef void (*tern_pool_fn)(void *arg, int64_t task, int thread);

/* n_threads counts the caller (n_threads <= 1: no workers, every call runs inline). */
tern_status tern_pool_create(int n_threads, struct tern_pool **out);
/* Joins the workers. Accepts NULL. */
void tern_pool_free(struct tern_pool *pool);
/* Threads that run tasks, the caller included (1 for a NULL pool). */
int tern_pool_size(const struct tern_pool *pool);

/* Runs fn(arg, i, thread) for i in [0, n_tasks) across the pool and returns when all are done.
 * Tasks are handed out one index at a time from a shared counter, so a thread slowed by another
 * process takes fewer. pool may be NULL (runs inline); more than 2^20 - 1 tasks also run inline. Not
 * reentrant: call from one thread at a time, never from inside a task. */
void tern_pool_run(struct tern_pool *pool, int64_t n_tasks, tern_pool_fn fn, void *arg);

#endif
