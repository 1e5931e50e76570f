/* Reference BitLinear: per-token int8 activation quantization and the exact ternary product on the
 * shared packed format. */
#include <math.h>

#include "ref.h"

float tern_ref_quantize_act(int8_t *q, const float *x, int64_t n, int64_t n_pad, int32_t *sum_q) {
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(x[i]));
    const float s = 127.0f / fmaxf(m, 1e-5f);
    int32_t sum = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = nearbyintf(x[i] * s); /* default rounding mode: half to even */
        v = fminf(fmaxf(v, -128.0f), 127.0f);
        q[i] = (int8_t)v;
        sum += q[i];
    }
    for (int64_t i = n; i < n_pad; i++)
        q[i] = 0;
    if (sum_q)
        *sum_q = sum;
    return s;
}

int32_t tern_ref_ternary_dot(const uint8_t *row, const int8_t *q, int64_t k_pad) {
    int32_t acc = 0;
    for (int64_t b = 0; b < k_pad / 128; b++) {
        const uint8_t *blk = row + 32 * b;
        const int8_t *qb = q + 128 * b;
        for (int i = 0; i < 32; i++) {
            for (int j = 0; j < 4; j++) {
                int code = (blk[i] >> (6 - 2 * j)) & 3;
                acc += (code - 1) * qb[32 * j + i];
            }
        }
    }
    return acc;
}

void tern_ref_ternary_matmul(float *y, const struct tern_ternary *w, const int8_t *q, const float *act_scale,
                             int64_t n_tok, int64_t row_begin, int64_t row_end) {
    for (int64_t t = 0; t < n_tok; t++) {
        for (int64_t r = row_begin; r < row_end; r++) {
            int32_t acc = tern_ref_ternary_dot(w->codes + r * w->row_bytes, q + t * w->k_pad, w->k_pad);
            /* bitnet.cpp's order: integer sum / act scale * weight scale */
            y[t * w->n_out + r] = (float)acc / act_scale[t] * w->scale * w->out_scale;
        }
    }
}
