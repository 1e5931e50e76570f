/* Internal to cpu/: the per-ISA kernel tables (each defined in its own translation unit, compiled
 * with that ISA's flags and only when the compiler supports them) and what this machine can run. */
#ifndef TERN_CPU_ISA_H
#define TERN_CPU_ISA_H

#include <stdatomic.h>
#include <stdbool.h>

#include "kernels.h"

/* Defined in cpu/isa_avx2.c (AVX2 + FMA + F16C), cpu/isa_avxvnni.c (the same + AVX-VNNI),
 * cpu/isa_avx512.c (AVX-512 F/BW/DQ/VL + VNNI), cpu/isa_neon.c (AArch64 Advanced SIMD),
 * cpu/isa_neondot.c (the same + the dot-product extension). Present
 * only when dispatch.c sees TERN_BUILT_<ISA>. */
extern const struct tern_cpu_kernels tern_cpu_kernels_avx2;
extern const struct tern_cpu_kernels tern_cpu_kernels_avxvnni;
extern const struct tern_cpu_kernels tern_cpu_kernels_avx512;
extern const struct tern_cpu_kernels tern_cpu_kernels_neon;
extern const struct tern_cpu_kernels tern_cpu_kernels_neondot;

/* The level names in preference order, best last: "scalar", "avx2", "avxvnni", "avx512", "neon",
 * "neondot". */
enum { TERN_CPU_ISA_COUNT = 6 };
extern const char *const tern_cpu_isa_names[TERN_CPU_ISA_COUNT];

/* Where the dot_peak probes leave their sums, so no compiler drops the chains (cpu/peak.c); atomic,
 * since the probe runs them on several threads at once. */
extern volatile _Atomic int32_t tern_cpu_peak_sink;

/* Whether this build holds the level's table. */
bool tern_cpu_isa_built(const char *name);
/* Whether this CPU and OS can run the level (cpuid + XGETBV on x86, getauxval on ARM). */
bool tern_cpu_isa_supported(const char *name);
/* The table of a level that is built and supported, else NULL (no log). */
const struct tern_cpu_kernels *tern_cpu_kernels_get(const char *name);

#endif
