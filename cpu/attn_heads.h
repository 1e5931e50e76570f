/* Internal to cpu/: the attention of G (1-4) query heads that share one kv head, written once over
 * the pieces each SIMD level defines before including it (compiled with that file's flags):
 *   ATTN_HEAD_DIM_STEP: what the head size must be a multiple of (else the reference runs)
 *   attn_round_q(q16, q, head_dim, G): the G heads of q rounded to f16 (the contract), as f32
 *   scores_block(wts, wts_stride, q16, kb, kb_stride, head_dim, scale, n, pf, G, NB): the scores of
 *     the first n (<= 16 NB) positions of NB (1-4) K blocks from kb, kb_stride apart (kernels.h:
 *     dimension-major, 16 positions a dimension), the positions in the lanes; pf: prefetch ahead
 *   softmax_f16(w, n_pos); attn_v_slice(G): the slice of the head weighted_v sums at once
 *   weighted_v(out, out_stride, w, w_stride, v, kv_stride, p0, p1, pf_bytes, G)
 * It defines attention_heads, the level's table of it (heads_fn, cpu/attn_groups.h) and the level's
 * kernel entry, attention_entry. */
#ifndef TERN_CPU_ATTN_HEADS_H
#define TERN_CPU_ATTN_HEADS_H

#include "attn_groups.h"

/* G (1-4) query heads h0 .. h0 + G - 1 that share the kv head at kv_off. */
TERN_INLINE void attention_heads(float *out, const float *q, const uint16_t *k_cache, const uint16_t *v_cache,
                                 int n_pos, int head_dim, int64_t kv_stride, int64_t kv_off, bool stream_kv,
                                 float *scratch, const int G) {
    const float scale = 1.0f / sqrtf((float)head_dim);
    float *q16 = scratch, *wts = scratch + TERN_ATTN_GROUP * head_dim;
    attn_round_q(q16, q, head_dim, G);
    /* K four blocks at a time (64 positions), which share each broadcast element of the query */
    const int64_t kb_stride = TERN_ATTN_KBLOCK * kv_stride; /* from one K block to the next */
    for (int p0 = 0; p0 < n_pos; p0 += 4 * TERN_ATTN_KBLOCK) {
        const uint16_t *kb = k_cache + tern_k_index(p0, kv_stride, kv_off);
        const int n = n_pos - p0 < 4 * TERN_ATTN_KBLOCK ? n_pos - p0 : 4 * TERN_ATTN_KBLOCK;
        switch ((n + TERN_ATTN_KBLOCK - 1) / TERN_ATTN_KBLOCK) {
        case 1:
            scores_block(wts + p0, n_pos, q16, kb, kb_stride, head_dim, scale, n, stream_kv, G, 1);
            break;
        case 2:
            scores_block(wts + p0, n_pos, q16, kb, kb_stride, head_dim, scale, n, stream_kv, G, 2);
            break;
        case 3:
            scores_block(wts + p0, n_pos, q16, kb, kb_stride, head_dim, scale, n, stream_kv, G, 3);
            break;
        default:
            scores_block(wts + p0, n_pos, q16, kb, kb_stride, head_dim, scale, n, stream_kv, G, 4);
            break;
        }
    }
    for (int h = 0; h < G; h++)
        softmax_f16(wts + h * n_pos, n_pos);
    const int block = stream_kv ? TERN_ATTN_V_BLOCK : n_pos;
    for (int p0 = 0; p0 < n_pos; p0 += block) {
        const int p1 = n_pos - p0 < block ? n_pos : p0 + block;
        for (int d = 0; d < head_dim; d += attn_v_slice(G))
            weighted_v(out + d, head_dim, wts, n_pos, v_cache + kv_off + d, kv_stride, p0, p1,
                       stream_kv && d == 0 ? 2 * head_dim : 0, G);
    }
}

TERN_ATTN_HEADS_TABLE(heads_fn)

/* The level's attention entry. Follows the reference's f16 KV-path contract (query rounded to f16
 * for Q.K, softmax summed in f64, weights rounded to f16 before the sum over V). The query heads
 * that share a kv head (GQA) go through together, up to TERN_ATTN_GROUP at a time, so every K and
 * V row is read and converted once for all of them; head sizes that are not a multiple of
 * ATTN_HEAD_DIM_STEP take the reference. */
static void attention_entry(float *out, const float *q, const uint16_t *k_cache, const uint16_t *v_cache,
                            int64_t kv_stride, int pos, int n_head, int n_head_kv, int head_dim,
                            bool stream_kv, float *scratch) {
    if (head_dim % ATTN_HEAD_DIM_STEP != 0) {
        tern_ref_attention(out, q, k_cache, v_cache, kv_stride, pos, n_head, n_head_kv, head_dim, stream_kv,
                           scratch);
        return;
    }
    tern_attention_groups(heads_fn, out, q, k_cache, v_cache, kv_stride, pos, n_head, n_head_kv, head_dim,
                          stream_kv, scratch);
}

#endif
