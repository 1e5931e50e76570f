/* The OpenCL C sources of cl/kernels/, embedded at build time by cmake/embed.cmake (common.h first,
 * then the .cl files in name order). TERN_CL_KERNEL_DIR makes the runtime read the same names from
 * disk instead. */
#ifndef TERN_CL_SOURCES_H
#define TERN_CL_SOURCES_H

#include <stdint.h>

#include "../scheduler/embedded.h"

extern const struct tern_embedded_file tern_cl_sources[];
extern const int tern_cl_n_sources;

/* FNV-1a over the embedded sources (cl_runtime.c): what keys measurements cached for these kernels
 * (the tuning, the device probe). */
uint64_t tern_cl_sources_hash(void);

#endif
