/* Internal to cpu/: the GQA walk and the prefetch the SIMD attention kernels share. cpu/attn_heads.h
 * writes, over each level's pieces, attention_heads(out, q, k, v, n_pos, head_dim, kv_stride,
 * kv_off, stream_kv, scratch, G) for G = 1..TERN_ATTN_GROUP query heads of one kv head, instantiates
 * it with TERN_ATTN_HEADS_TABLE(name) and calls tern_attention_groups with that table. Plain C, so
 * it compiles under each file's own ISA flags. */
#ifndef TERN_CPU_ATTN_GROUPS_H
#define TERN_CPU_ATTN_GROUPS_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels.h"

/* When the caller says the cache streams from DRAM (stream_kv: a decode step), V rows are fetched
 * TERN_ATTN_PF_ROWS ahead in software and K's blocks a few blocks ahead, a line at a time (a burst of
 * a whole block's prefetches at its start streamed slower), and V is summed in blocks of TERN_ATTN_V_BLOCK
 * positions, each block's rows read from DRAM once and then from L1 by every slice of the head
 * dimension (instead of one pass over V per slice). The hardware prefetcher alone left decode
 * attention near 17 GB/s on 2 threads. A prompt's tokens share their rows through the caches, where
 * the K prefetches cost ~10% of the attention: it keeps one pass per slice, unprefetched
 * (docs/cpu.md). Sums over positions keep their order, so the bits are the same either way. */
enum { TERN_ATTN_PF_ROWS = 16, TERN_ATTN_V_BLOCK = 64 };

/* Prefetches into L1 the first bytes of the V row TERN_ATTN_PF_ROWS after row (rows kv_stride
 * elements apart). The address is formed as an integer: past the cache's end the hint is harmless,
 * a pointer there would not be. */
static inline void tern_attn_prefetch_ahead(const uint16_t *row, int64_t kv_stride, int bytes) {
    const uintptr_t a = (uintptr_t)row + (uintptr_t)(TERN_ATTN_PF_ROWS * kv_stride * (int64_t)sizeof *row);
    for (int o = 0; o < bytes; o += 64)
        __builtin_prefetch((const void *)(a + (uintptr_t)o), 0, 3);
}

typedef void (*tern_attn_heads_fn)(float *out, const float *q, const uint16_t *k_cache,
                                   const uint16_t *v_cache, int n_pos, int head_dim, int64_t kv_stride,
                                   int64_t kv_off, bool stream_kv, float *scratch);

#define TERN_ATTN_HEADS_FN(G)                                                                                \
    static void attention_heads_##G(float *out, const float *q, const uint16_t *k, const uint16_t *v,        \
                                    int n_pos, int head_dim, int64_t kv_stride, int64_t kv_off,              \
                                    bool stream_kv, float *s) {                                              \
        attention_heads(out, q, k, v, n_pos, head_dim, kv_stride, kv_off, stream_kv, s, G);                  \
    }
#define TERN_ATTN_HEADS_TABLE(name)                                                                          \
    TERN_ATTN_HEADS_FN(1)                                                                                    \
    TERN_ATTN_HEADS_FN(2)                                                                                    \
    TERN_ATTN_HEADS_FN(3)                                                                                    \
    TERN_ATTN_HEADS_FN(4)                                                                                    \
    static const tern_attn_heads_fn name[TERN_ATTN_GROUP + 1] = {NULL, attention_heads_1, attention_heads_2, \
                                                                 attention_heads_3, attention_heads_4};

/* Every query head, in runs of up to TERN_ATTN_GROUP heads that share a kv head. */
static inline void tern_attention_groups(const tern_attn_heads_fn heads[TERN_ATTN_GROUP + 1], float *out,
                                         const float *q, const uint16_t *k_cache, const uint16_t *v_cache,
                                         int64_t kv_stride, int pos, int n_head, int n_head_kv, int head_dim,
                                         bool stream_kv, float *scratch) {
    const int group = n_head / n_head_kv;
    for (int h = 0; h < n_head;) {
        const int in_group = group - h % group;
        const int G = in_group < TERN_ATTN_GROUP ? in_group : TERN_ATTN_GROUP;
        heads[G](out + (int64_t)h * head_dim, q + (int64_t)h * head_dim, k_cache, v_cache, pos + 1, head_dim,
                 kv_stride, (int64_t)(h / group) * head_dim, stream_kv, scratch);
        h += G;
    }
}

#endif
