/* The certified head's shadow (head_cert.h) cached in the cache folder (cache.h), so that later loads
 * of the same model read it instead of building it (issue 12). One file per model path,
 * <cache>/head-shadow-<hash of the path>.bin:
 *   a TERN_HEAD_CACHE_HEADER-byte header: a magic line; the key (the model's source_id, the head's
 *   type and shape and TERN_HEAD_SHADOW_VERSION); the shadow's size, its row count and a checksum
 *   of what follows; zeros;
 *   the shadow's blob (head_cert.h: its weights, block scales and the rows' bound coefficients).
 * A file whose key differs (the model file or the shadow's format changed) is stale, one whose size
 * or checksum does not match is corrupt: either is ignored with one notice, and the caller builds
 * the shadow again and replaces the file. */
#ifndef TERN_HEAD_CACHE_H
#define TERN_HEAD_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"

enum {
    TERN_HEAD_CACHE_HEADER = 4096,       /* the shadow starts on a page */
    TERN_HEAD_CACHE_MIN_BYTES = 1u << 20 /* smaller shadows are built at every load: faster than a file */
};

/* Reads the cached shadow of m's head, shadow_bytes long, into dst: a device keeps it in memory of its
 * own, since streamed from the file's mapping the shadow pass of a decode step ran slower
 * (docs/certified-head.md). False (dst's contents undefined) when caching is off, the model has no
 * source_id, or the file is missing, stale or corrupt (with a notice). */
bool tern_head_cache_read(const struct tern_model_view *m, void *dst, size_t shadow_bytes);

/* Writes the shadow blob of m's head to the cache (atomically; a failure is a warning). */
void tern_head_cache_store(const struct tern_model_view *m, const uint8_t *shadow, size_t shadow_bytes);

#endif
