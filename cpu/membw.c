/* The read-bandwidth probe (see membw.h). Plain C: the sum loop vectorises at -O2/-O3 with the
 * baseline ISA, which is enough to saturate memory from a few cores. */
#include "membw.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../scheduler/log.h"

struct slice {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
};

static void *read_slice(void *arg) {
    struct slice *s = arg;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 4 <= s->n; i += 4) {
        a += s->p[i];
        b += s->p[i + 1];
        c += s->p[i + 2];
        d += s->p[i + 3];
    }
    for (; i < s->n; i++)
        a += s->p[i];
    s->sum = a + b + c + d;
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

tern_status tern_cpu_read_bandwidth(int n_threads, size_t bytes, int reps, double *gb_per_s) {
    if (n_threads < 1 || n_threads > 256 || bytes < (1u << 20) || reps < 1)
        return TERN_ERR_ARG;
    const size_t n = bytes / sizeof(uint64_t);
    uint64_t *buf = malloc(n * sizeof *buf);
    pthread_t *th = malloc((size_t)n_threads * sizeof *th);
    struct slice *sl = malloc((size_t)n_threads * sizeof *sl);
    if (!buf || !th || !sl) {
        free(buf);
        free(th);
        free(sl);
        return TERN_ERR_NOMEM;
    }
    memset(buf, 1, n * sizeof *buf); /* fault every page in before timing */
    double best = 0.0;
    volatile uint64_t sink = 0;
    tern_status st = TERN_OK;
    for (int r = 0; r < reps; r++) {
        /* thread start-up (tens of microseconds) is noise against a pass over >= 256 MiB */
        const double t0 = now_s();
        int started = 0;
        for (int t = 0; t < n_threads; t++) {
            const size_t lo = n * (size_t)t / (size_t)n_threads, hi = n * (size_t)(t + 1) / (size_t)n_threads;
            sl[t] = (struct slice){buf + lo, hi - lo, 0};
            if (pthread_create(&th[t], NULL, read_slice, &sl[t]) != 0) {
                tern_log_warn("bandwidth probe: cannot start a thread");
                st = TERN_ERR_INTERNAL;
                break;
            }
            started++;
        }
        for (int t = 0; t < started; t++) {
            pthread_join(th[t], NULL);
            sink += sl[t].sum;
        }
        if (st)
            break;
        const double dt = now_s() - t0;
        if (dt > 0 && (double)(n * sizeof *buf) / dt / 1e9 > best)
            best = (double)(n * sizeof *buf) / dt / 1e9;
    }
    (void)sink;
    free(buf);
    free(th);
    free(sl);
    *gb_per_s = best;
    return st;
}
