/* The cache folder shared by the OpenCL program binaries and tuning, the device probe and the
 * certified head's shadow, and the one way files in it are named and written. */
#ifndef TERN_CACHE_H
#define TERN_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* TERN_CACHE_DIR ("" disables caching), else $XDG_CACHE_HOME/tern, else ~/.cache/tern; created if
 * missing. False when caching is disabled or no folder can be named. */
bool tern_cache_dir(char *buf, size_t n);

/* FNV-1a over n bytes, continuing from h (start with TERN_FNV_SEED). */
#define TERN_FNV_SEED 0xcbf29ce484222325ULL
uint64_t tern_fnv1a(uint64_t h, const void *data, size_t n);

/* The cache file "<cache folder>/<prefix>-<16 hex digits of FNV-1a over name[0..name_len)><ext>";
 * false when caching is disabled. */
bool tern_cache_file(const char *prefix, const char *name, size_t name_len, const char *ext, char *path,
                     size_t n);

/* Write path whole or not at all: fill(f, user) writes a temporary file beside it (named by the
 * process id), which then replaces path. One warning naming what is cached and path when any step
 * fails (fill returns false on a failed write). */
void tern_cache_write(const char *path, const char *what, bool (*fill)(FILE *f, void *user), void *user);

/* Read a text cache file written as "<magic>\n<key>\n<body>": parse(f, user) reads the body and
 * returns whether it is valid. False when the file is missing or holds another key (the hash
 * collided; silently: the caller measures and replaces it), or with one notice naming what and path,
 * then what happens next (then, e.g. "measuring again"), when it is stale (a magic of the same name
 * and another version) or corrupt (anything else that does not parse). */
bool tern_cache_read(const char *path, const char *magic, const char *key, const char *what, const char *then,
                     bool (*parse)(FILE *f, void *user), void *user);

#endif
