/* Reference float ops of a transformer block: RMSNorm, RoPE, causal attention, FFN gating. */
#include <math.h>

#include "../scheduler/fp16.h"
#include "ref.h"

void tern_ref_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    double sum = 0.0; /* double accumulation, as ggml does */
    for (int64_t i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++)
        out[i] = (x[i] * scale) * w[i];
}

void tern_ref_rope(float *x, int n_head, int head_dim, int n_rot, int pos, float theta,
                   enum tern_rope_style style) {
    const float theta_scale = powf(theta, -2.0f / (float)n_rot);
    for (int h = 0; h < n_head; h++) {
        float *v = x + (int64_t)h * head_dim;
        float angle = (float)pos; /* pos * theta_scale^i, built up by products as ggml does */
        for (int i = 0; i < n_rot / 2; i++) {
            const float c = cosf(angle), s = sinf(angle);
            const int a = style == TERN_ROPE_NEOX ? i : 2 * i;
            const int b = style == TERN_ROPE_NEOX ? i + n_rot / 2 : 2 * i + 1;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
            angle *= theta_scale;
        }
    }
}

void tern_ref_attention(float *out, const float *q, const uint16_t *k_cache, const uint16_t *v_cache,
                        int pos, int n_head, int n_head_kv, int head_dim, float *scratch) {
    const int group = n_head / n_head_kv;
    const int64_t kv_stride = (int64_t)n_head_kv * head_dim;
    const float scale = 1.0f / sqrtf((float)head_dim);
    for (int h = 0; h < n_head; h++) {
        const float *qh = q + (int64_t)h * head_dim;
        const int64_t kv_off = (int64_t)(h / group) * head_dim;
        float max = -INFINITY;
        for (int p = 0; p <= pos; p++) {
            const uint16_t *k = k_cache + p * kv_stride + kv_off;
            float dot = 0.0f;
            for (int d = 0; d < head_dim; d++)
                dot += qh[d] * tern_fp16_to_fp32(k[d]);
            scratch[p] = dot * scale;
            max = fmaxf(max, scratch[p]);
        }
        float sum = 0.0f;
        for (int p = 0; p <= pos; p++) {
            scratch[p] = expf(scratch[p] - max);
            sum += scratch[p];
        }
        float *oh = out + (int64_t)h * head_dim;
        for (int d = 0; d < head_dim; d++)
            oh[d] = 0.0f;
        for (int p = 0; p <= pos; p++) {
            const uint16_t *v = v_cache + p * kv_stride + kv_off;
            const float wgt = scratch[p] / sum;
            for (int d = 0; d < head_dim; d++)
                oh[d] += wgt * tern_fp16_to_fp32(v[d]);
        }
    }
}

void tern_ref_ffn_act(float *out, const float *gate, const float *up, int64_t n,
                      enum tern_ffn_act act) {
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        float a;
        if (act == TERN_FFN_RELU2) {
            const float r = g > 0.0f ? g : 0.0f;
            a = r * r;
        } else {
            a = g / (1.0f + expf(-g));
        }
        out[i] = a * up[i];
    }
}
