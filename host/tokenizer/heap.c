/* The binary heap (see heap.h): sift-up on push, sift-down of the last element on pop. */
#include "heap.h"

#include <stdlib.h>
#include <string.h>

#define AT(h, i) ((h)->v + (i) * (h)->elem)

tern_status tern_heap_push(struct tern_heap *h, const void *e) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        unsigned char *v = realloc(h->v, cap * h->elem);
        if (!v)
            return TERN_ERR_NOMEM;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!h->before(e, AT(h, p)))
            break;
        memcpy(AT(h, i), AT(h, p), h->elem);
        i = p;
    }
    memcpy(AT(h, i), e, h->elem);
    return TERN_OK;
}

void tern_heap_pop(struct tern_heap *h, void *out) {
    memcpy(out, h->v, h->elem);
    const unsigned char *last = AT(h, --h->n);
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const void *mv = last;
        if (l < h->n && h->before(AT(h, l), mv))
            m = l, mv = AT(h, l);
        if (r < h->n && h->before(AT(h, r), mv))
            m = r;
        if (m == i)
            break;
        memcpy(AT(h, i), AT(h, m), h->elem);
        i = m;
    }
    if (h->n)
        memcpy(AT(h, i), last, h->elem);
}

void tern_heap_free(struct tern_heap *h) {
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
