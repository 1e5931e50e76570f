/* A file built into the binary by cmake/embed.cmake (the OpenCL kernels, cl/cl_sources.h; tern
 * serve's web page, host/serve/web_ui.h): its name and its bytes, NUL-terminated so a text file is
 * also a C string. */
#ifndef TERN_EMBEDDED_H
#define TERN_EMBEDDED_H

#include <stddef.h>

struct tern_embedded_file {
    const char *name;           /* file name, e.g. "ternary.cl" */
    const unsigned char *bytes; /* len bytes, then a NUL */
    size_t len;
};

#endif
