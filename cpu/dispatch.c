/* Kernel-table selection: the best ISA level the CPU and OS support, or TERN_CPU_ISA. */
#include <stdlib.h>
#include <string.h>

#include "../scheduler/log.h"
#include "kernels.h"

const struct tern_cpu_kernels *tern_cpu_kernels_select(void) {
    const char *force = getenv("TERN_CPU_ISA");
    if (force && *force && strcmp(force, "scalar") != 0) {
        tern_log_error("TERN_CPU_ISA=%s: this build has no such kernel level (available: scalar)", force);
        return NULL;
    }
    return &tern_cpu_kernels_scalar;
}
