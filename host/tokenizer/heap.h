/* A binary heap of fixed-size elements ordered by a caller's `before` (the element that comes out
 * first). Used by both BPE tokenizers (merge candidates) and the sampler (top-k selection). */
#ifndef TERN_HEAP_H
#define TERN_HEAP_H

#include <stdbool.h>
#include <stddef.h>

#include "../../scheduler/status.h"

struct tern_heap {
    unsigned char *v; /* n elements of elem bytes */
    size_t n, cap, elem;
    bool (*before)(const void *a, const void *b);
};

/* An empty heap; no allocation until the first push. */
static inline struct tern_heap tern_heap_create(size_t elem, bool (*before)(const void *, const void *)) {
    struct tern_heap h = {NULL, 0, 0, elem, before};
    return h;
}

tern_status tern_heap_push(struct tern_heap *h, const void *e);
/* Remove the first element into out (n must be > 0). */
void tern_heap_pop(struct tern_heap *h, void *out);
/* The first element (n must be > 0). */
static inline const void *tern_heap_top(const struct tern_heap *h) {
    return h->v;
}
void tern_heap_free(struct tern_heap *h);

#endif
