/* Compute probes of `tern bench`, beside the read-bandwidth probe (membw.h): the rate of the int8 dot
 * instruction the selected kernel level builds its ternary product on, and the rate of that level's
 * ternary GEMM kernel alone on a prefill-sized product, so prompt speed can be read as a share of
 * what the cores allow (docs/prefill.md). */
#ifndef TERN_CPU_PEAK_H
#define TERN_CPU_PEAK_H

#include "../scheduler/status.h"

struct tern_cpu_peak {
    const char *isa; /* the kernel level measured */
    double dot_1;    /* GMAC/s of the dot instruction on one thread (0: the level has no probe) */
    double dot_n;    /* the same, n_threads threads at once */
    double gemm_1;   /* GMAC/s of ternary_matmul 2560 -> 6912 over 128 tokens, one thread */
    double gemm_n;   /* the same product split in 64-row tasks over n_threads threads */
};

/* Best of a few short passes of each (about a second in all), timed in CPU time so that other
 * processes on the machine move the figures little: each dot thread over its own CPU time, the
 * one-thread GEMM over the thread's, the N-thread GEMM as N x its rate over the process's CPU time
 * (the pool's hand-offs and waits count). */
tern_status tern_cpu_compute_peak(int n_threads, struct tern_cpu_peak *out);

#endif
