/* The cache folder shared by the OpenCL program binaries and the device probe. */
#ifndef TERN_CACHE_H
#define TERN_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* TERN_CACHE_DIR ("" disables caching), else $XDG_CACHE_HOME/tern, else ~/.cache/tern; created if
 * missing. False when caching is disabled or no folder can be named. */
bool tern_cache_dir(char *buf, size_t n);

/* FNV-1a over n bytes, continuing from h (start with TERN_FNV_SEED). */
#define TERN_FNV_SEED 0xcbf29ce484222325ULL
uint64_t tern_fnv1a(uint64_t h, const void *data, size_t n);

#endif
