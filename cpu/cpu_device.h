/* The CPU device: runs layers, embedding and head on the host's cores with the kernel table of
 * kernels.h. */
#ifndef TERN_CPU_DEVICE_H
#define TERN_CPU_DEVICE_H

#include "../scheduler/device.h"

/* n_threads <= 0: the number of physical cores. Fails (TERN_ERR_UNSUPPORTED) when TERN_CPU_ISA
 * forces a level this machine lacks. */
tern_status tern_cpu_device_create(int n_threads, struct tern_device *out);

/* Physical cores of this machine (SMT siblings counted once); at least 1. */
int tern_cpu_physical_cores(void);

#endif
