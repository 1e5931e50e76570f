/* Internal to cpu/: the GQA walk shared by the SIMD attention kernels. Each isa_*.c defines its
 * own TERN_INLINE attention_heads(out, q, k, v, n_pos, head_dim, kv_stride, kv_off, scratch, G)
 * for G = 1..TERN_ATTN_GROUP query heads of one kv head, instantiates it with
 * TERN_ATTN_HEADS_TABLE(name), and calls tern_attention_groups with that table. Plain C, so it
 * compiles under each file's own ISA flags. */
#ifndef TERN_CPU_ATTN_GROUPS_H
#define TERN_CPU_ATTN_GROUPS_H

#include <stdint.h>

#include "kernels.h"

typedef void (*tern_attn_heads_fn)(float *out, const float *q, const uint16_t *k_cache,
                                   const uint16_t *v_cache, int n_pos, int head_dim, int64_t kv_stride,
                                   int64_t kv_off, float *scratch);

#define TERN_ATTN_HEADS_FN(G)                                                                                \
    static void attention_heads_##G(float *out, const float *q, const uint16_t *k, const uint16_t *v,        \
                                    int n_pos, int head_dim, int64_t kv_stride, int64_t kv_off, float *s) {  \
        attention_heads(out, q, k, v, n_pos, head_dim, kv_stride, kv_off, s, G);                             \
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
                                         float *scratch) {
    const int group = n_head / n_head_kv;
    for (int h = 0; h < n_head;) {
        const int in_group = group - h % group;
        const int G = in_group < TERN_ATTN_GROUP ? in_group : TERN_ATTN_GROUP;
        heads[G](out + (int64_t)h * head_dim, q + (int64_t)h * head_dim, k_cache, v_cache, pos + 1, head_dim,
                 kv_stride, (int64_t)(h / group) * head_dim, scratch);
        h += G;
    }
}

#endif
