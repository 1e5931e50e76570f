/* The reference of the certified head's shadow dot (scheduler/head_cert.h): exact int32 block dots
 * of the weights with the input's 15-bit P = 128 p + p2, scaled and summed in f32 block by block. */
#include "ref.h"

void tern_ref_shadow_dot(float *const *out, const struct tern_head_shadow *s,
                         const struct tern_head_xq *const *x, int n_tok, int64_t row_begin, int64_t row_end) {
    for (int k = 0; k < n_tok; k++)
        for (int64_t r = row_begin; r < row_end; r++) {
            const uint8_t *q = s->q + (size_t)r * (size_t)s->n;
            const float *d = s->d + r * s->n_blocks;
            float acc = 0.0f;
            for (int64_t b = 0; b < s->n_blocks; b++) {
                const int64_t i0 = b * TERN_HEAD_SHADOW_BLOCK;
                const int64_t i1 = i0 + TERN_HEAD_SHADOW_BLOCK < s->n ? i0 + TERN_HEAD_SHADOW_BLOCK : s->n;
                int32_t isum = 0;
                for (int64_t i = i0; i < i1; i++)
                    isum += ((int32_t)q[i] - 128) * (128 * x[k]->p[i] + x[k]->p2[i]);
                acc += (d[b] * x[k]->t[b]) * (float)isum;
            }
            out[k][r - row_begin] = acc;
        }
}
