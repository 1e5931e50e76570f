/* The compute probes (see peak.h). */
#include "peak.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../scheduler/log.h"
#include "isa.h"
#include "pool.h"

volatile _Atomic int32_t tern_cpu_peak_sink;

/* Rounds per thread and pass of the dot probe (12 instructions each: a few milliseconds), and passes
 * of each probe: short passes, best of many, so a busy machine still shows what the cores can do;
 * no more passes once a probe has run PROBE_S seconds (the scalar GEMM takes seconds a pass). */
enum { DOT_ROUNDS = 1000000, PASSES = 20 };
static const double PROBE_S = 0.25;
/* The GEMM: 2B-4T's gate/up shape, a prefill-sized token block, 64-row tasks as the device uses. */
enum { GEMM_K = 2560, GEMM_N = 6912, GEMM_T = 128, GEMM_ROWS = 64 };

static double clock_s(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now_s(void) {
    return clock_s(CLOCK_MONOTONIC);
}

struct dot_arg {
    int64_t (*fn)(int64_t);
    double gmacs; /* this thread's rate over its own CPU time */
};

static void *dot_thread(void *p) {
    struct dot_arg *a = p;
    const double t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    const int64_t macs = a->fn(DOT_ROUNDS);
    a->gmacs = (double)macs / (clock_s(CLOCK_THREAD_CPUTIME_ID) - t0) / 1e9;
    return NULL;
}

/* GMAC/s of n threads each running the probe once, started together (best of the passes): the sum
 * of each thread's rate over its own CPU time, so a thread that another process preempts still
 * counts at the rate its core ran it. */
static tern_status dot_rate(int64_t (*fn)(int64_t), int n, double *out) {
    pthread_t th[256];
    struct dot_arg args[256];
    double best = 0;
    const double start = now_s();
    for (int pass = 0; pass < PASSES && (pass == 0 || now_s() - start < PROBE_S); pass++) {
        int started = 0;
        for (int t = 0; t < n; t++) {
            args[t] = (struct dot_arg){fn, 0};
            if (pthread_create(&th[t], NULL, dot_thread, &args[t]) != 0)
                break;
            started++;
        }
        double r = 0;
        for (int t = 0; t < started; t++) {
            pthread_join(th[t], NULL);
            r += args[t].gmacs;
        }
        if (started < n) {
            tern_log_error("compute probe: could not start %d threads", n);
            return TERN_ERR_INTERNAL;
        }
        best = r > best ? r : best;
    }
    *out = best;
    return TERN_OK;
}

struct gemm_job {
    const struct tern_cpu_kernels *k;
    float *y;
    const struct tern_ternary *w;
    const int8_t *q;
    const float *act_scale;
    const int32_t *sum_q;
};

static void gemm_task(void *arg, int64_t task, int thread) {
    (void)thread;
    const struct gemm_job *j = arg;
    const int64_t r0 = task * GEMM_ROWS, r1 = r0 + GEMM_ROWS < GEMM_N ? r0 + GEMM_ROWS : GEMM_N;
    j->k->ternary_matmul(j->y, j->w, j->q, j->act_scale, j->sum_q, GEMM_T, r0, r1);
}

/* GMAC/s of the GEMM on a pool of n threads (best of the passes, after one untimed pass). One thread:
 * over the process's CPU time, so time another process takes does not count. Several: over wall
 * time, the pool's hand-offs and waits included (CPU time would leave out a worker's sleep while
 * it waits to be woken, and count the pass up to n times too fast: 1229 GMAC/s measured against an
 * 869 GMAC/s two-thread dot peak). */
static tern_status gemm_rate(const struct tern_cpu_kernels *k, int n, double *out) {
    uint8_t *codes = aligned_alloc(64, (size_t)GEMM_N * GEMM_K / 4);
    int8_t *q = aligned_alloc(64, (size_t)GEMM_T * GEMM_K);
    float *y = aligned_alloc(64, (size_t)GEMM_T * GEMM_N * sizeof(float));
    float act_scale[GEMM_T];
    int32_t sum_q[GEMM_T];
    struct tern_pool *pool = NULL;
    tern_status st = TERN_ERR_NOMEM;
    if (!codes || !q || !y) {
        tern_log_error("compute probe: out of memory");
        goto done;
    }
    st = tern_pool_create(n, &pool);
    if (st)
        goto done;
    uint32_t r = 0x9e3779b9u;
    for (size_t i = 0; i < (size_t)GEMM_N * GEMM_K / 4; i++) {
        r ^= r << 13, r ^= r >> 17, r ^= r << 5;
        codes[i] = (uint8_t)(r & 0x55); /* codes 0 and 1 only: never the unused code 3 */
    }
    for (int t = 0; t < GEMM_T; t++) {
        sum_q[t] = 0;
        for (int i = 0; i < GEMM_K; i++) {
            r ^= r << 13, r ^= r >> 17, r ^= r << 5;
            q[(size_t)t * GEMM_K + i] = (int8_t)(r % 255 - 127);
            sum_q[t] += q[(size_t)t * GEMM_K + i];
        }
        act_scale[t] = 1.0f;
    }
    const struct tern_ternary w = {codes, GEMM_K, GEMM_K, GEMM_K / 4, GEMM_N, 1.0f, 1.0f};
    struct gemm_job j = {k, y, &w, q, act_scale, sum_q};
    const int64_t tasks = (GEMM_N + GEMM_ROWS - 1) / GEMM_ROWS;
    tern_pool_run(pool, tasks, gemm_task, &j);
    double best = 0;
    const double start = now_s();
    for (int pass = 0; pass < PASSES && (pass == 0 || now_s() - start < PROBE_S); pass++) {
        const clockid_t clock = n == 1 ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC;
        const double t0 = clock_s(clock);
        tern_pool_run(pool, tasks, gemm_task, &j);
        const double rate = (double)GEMM_K * GEMM_N * GEMM_T / (clock_s(clock) - t0) / 1e9;
        best = rate > best ? rate : best;
    }
    *out = best;
done:
    tern_pool_free(pool);
    free(codes);
    free(q);
    free(y);
    return st;
}

tern_status tern_cpu_compute_peak(int n_threads, struct tern_cpu_peak *out) {
    memset(out, 0, sizeof *out);
    if (n_threads < 1 || n_threads > 256)
        return TERN_ERR_ARG;
    const struct tern_cpu_kernels *k = tern_cpu_kernels_select();
    if (!k)
        return TERN_ERR_UNSUPPORTED;
    out->isa = k->name;
    tern_status st;
    if (k->dot_peak) {
        st = dot_rate(k->dot_peak, 1, &out->dot_1);
        if (st)
            return st;
        st = dot_rate(k->dot_peak, n_threads, &out->dot_n);
        if (st)
            return st;
    }
    st = gemm_rate(k, 1, &out->gemm_1);
    if (st)
        return st;
    return gemm_rate(k, n_threads, &out->gemm_n);
}
