/* Reference float ops of a transformer block: RMSNorm, RoPE, causal attention, FFN gating, the
 * fused per-token passes before a BitLinear (compositions of these and quantize_act), the f16
 * KV-cache row. */
#include <math.h>

#include "../scheduler/fp16.h"
#include "kernels.h"
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

void tern_ref_rope_table(float *cs, float *sn, int n_pairs, int n_rot, int pos, float theta) {
    const float theta_scale = powf(theta, -2.0f / (float)n_rot);
    float angle = (float)pos;
    for (int i = 0; i < n_pairs; i++) {
        cs[i] = cosf(angle);
        sn[i] = sinf(angle);
        angle *= theta_scale;
    }
}

void tern_ref_rope_apply(float *x, int n_head, int head_dim, int n_rot, const float *cs, const float *sn,
                         enum tern_rope_style style) {
    const int half = n_rot / 2;
    for (int h = 0; h < n_head; h++) {
        float *v = x + (int64_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            const int a = style == TERN_ROPE_NEOX ? i : 2 * i;
            const int b = style == TERN_ROPE_NEOX ? i + half : 2 * i + 1;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * cs[i] - x1 * sn[i];
            v[b] = x0 * sn[i] + x1 * cs[i];
        }
    }
}

void tern_ref_attention(float *out, const float *q, const uint16_t *k_cache, const uint16_t *v_cache,
                        int64_t kv_stride, int pos, int n_head, int n_head_kv, int head_dim, bool stream_kv,
                        float *scratch) {
    (void)stream_kv; /* one pass in plain loads: nothing to prefetch for */
    const int group = n_head / n_head_kv;
    const float scale = 1.0f / sqrtf((float)head_dim);
    float *q16 = scratch;          /* [head_dim] the query rounded to f16 */
    float *w = scratch + head_dim; /* [pos + 1] scores, then weights */
    for (int h = 0; h < n_head; h++) {
        const int64_t kv_off = (int64_t)(h / group) * head_dim;
        /* The f16 KV path of ggml (bitnet.cpp's reference) rounds the query to f16 for Q.K and the
         * softmax weights to f16 for the weighted sum of V; doing the same keeps greedy tokens
         * identical to bitnet.cpp's on near ties. */
        for (int d = 0; d < head_dim; d++)
            q16[d] = tern_fp16_to_fp32(tern_fp32_to_fp16(q[(int64_t)h * head_dim + d]));
        float max = -INFINITY;
        for (int p = 0; p <= pos; p++) {
            float dot = 0.0f;
            for (int d = 0; d < head_dim; d++)
                dot += q16[d] * tern_fp16_to_fp32(k_cache[tern_k_index(p, kv_stride, kv_off + d)]);
            w[p] = dot * scale;
            max = fmaxf(max, w[p]);
        }
        double sum = 0.0;
        for (int p = 0; p <= pos; p++) {
            w[p] = expf(w[p] - max);
            sum += (double)w[p];
        }
        const float inv_sum = (float)(1.0 / sum);
        for (int p = 0; p <= pos; p++)
            w[p] = tern_fp16_to_fp32(tern_fp32_to_fp16(w[p] * inv_sum));
        float *oh = out + (int64_t)h * head_dim;
        for (int d = 0; d < head_dim; d++)
            oh[d] = 0.0f;
        for (int p = 0; p <= pos; p++) {
            const uint16_t *v = v_cache + p * kv_stride + kv_off;
            for (int d = 0; d < head_dim; d++)
                oh[d] += w[p] * tern_fp16_to_fp32(v[d]);
        }
    }
}

void tern_ref_ffn_act(float *out, const float *gate, const float *up, int64_t n, enum tern_ffn_act act) {
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

float tern_ref_add_norm_quantize(int8_t *q, float *y, float *x, const float *add, const float *w, int64_t n,
                                 int64_t n_pad, float eps, int32_t *sum_q) {
    if (add)
        for (int64_t i = 0; i < n; i++)
            x[i] += add[i];
    tern_ref_rmsnorm(y, x, w, n, eps);
    return tern_ref_quantize_act(q, y, n, n_pad, sum_q);
}

float tern_ref_act_norm_quantize(int8_t *q, float *y, float *gate, const float *up, const float *w, int64_t n,
                                 int64_t n_pad, float eps, enum tern_ffn_act act, int32_t *sum_q) {
    tern_ref_ffn_act(gate, gate, up, n, act);
    return tern_ref_add_norm_quantize(q, y, gate, NULL, w, n, n_pad, eps, sum_q);
}

void tern_ref_f16_row(uint16_t *dst, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        dst[i] = tern_fp32_to_fp16(x[i]);
}
