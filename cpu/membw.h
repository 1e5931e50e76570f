/* Memory read bandwidth of this machine, measured the way generation reads weights: n_threads
 * threads each streaming its slice of a large buffer once (a read-sum). `tern bench` reports the
 * achieved bandwidth of token generation as a share of this. */
#ifndef TERN_CPU_MEMBW_H
#define TERN_CPU_MEMBW_H

#include <stddef.h>

#include "../scheduler/status.h"

/* Best of `reps` passes over a buffer of `bytes` (pages touched before timing). GB/s = 1e9 B/s. */
tern_status tern_cpu_read_bandwidth(int n_threads, size_t bytes, int reps, double *gb_per_s);

#endif
