/* Internal to cpu/: the fused per-token passes before a BitLinear (add_norm_quantize,
 * act_norm_quantize; see tern_ref_add_norm_quantize) that the SIMD levels share. Each isa_*.c
 * defines its own TERN_INLINE rms_scale(x_out, x, b, n, eps, pre), which returns rmsnorm's
 * 1 / sqrt(mean(v^2) + eps) for v = pre(x, b) with the level's rmsnorm summation and writes v into
 * x_out unless PRE_NONE, and TERN_INLINE quantize_normed(q, x, w, scale, n, n_pad, sum_q), its
 * quantize_act of (x * scale) * w; then it instantiates TERN_NORM_QUANTIZE_FNS(prefix). Plain C, so
 * it compiles under each file's own ISA flags. */
#ifndef TERN_CPU_NORM_PASSES_H
#define TERN_CPU_NORM_PASSES_H

#include <math.h>

#include "ref.h"

/* What a pass does to x before its norm: nothing, a residual add x + b, or the FFN gating
 * relu(x)^2 * b (the level's ffn_act, bit-exact with the reference). */
enum tern_pre_norm { PRE_NONE, PRE_ADD, PRE_RELU2 };

/* rms_scale's elements i .. n after its vector part (sum: that part's f64 sum), one at a time in
 * the order of the level's rmsnorm, which runs the reference's loop on them. */
static inline float tern_rms_tail(double sum, float *x_out, const float *x, const float *b, int64_t i,
                                  int64_t n, float eps, enum tern_pre_norm pre) {
    if (i < n && pre == PRE_ADD)
        for (int64_t j = i; j < n; j++)
            x_out[j] = x[j] + b[j];
    if (i < n && pre == PRE_RELU2)
        tern_ref_ffn_act(x_out + i, x + i, b + i, n - i, TERN_FFN_RELU2);
    for (; i < n; i++) {
        const float v = pre == PRE_NONE ? x[i] : x_out[i];
        sum += (double)(v * v);
    }
    const float mean = (float)(sum / (double)n);
    return 1.0f / sqrtf(mean + eps);
}

/* One pass for the add or the gating and the sum of squares, then quantize_normed's two passes
 * over (x * scale) * w: the normed row is never written. Silu gating takes the level's ffn_act
 * (prefix##_ffn_act, defined before the instantiation), then the fused norm. */
#define TERN_NORM_QUANTIZE_FNS(prefix)                                                                       \
    static float prefix##_add_norm_quantize(int8_t *q, float *y, float *x, const float *add, const float *w, \
                                            int64_t n, int64_t n_pad, float eps, int32_t *sum_q) {           \
        (void)y;                                                                                             \
        const float scale =                                                                                  \
            add ? rms_scale(x, x, add, n, eps, PRE_ADD) : rms_scale(NULL, x, NULL, n, eps, PRE_NONE);        \
        return quantize_normed(q, x, w, scale, n, n_pad, sum_q);                                             \
    }                                                                                                        \
    static float prefix##_act_norm_quantize(int8_t *q, float *y, float *gate, const float *up,               \
                                            const float *w, int64_t n, int64_t n_pad, float eps,             \
                                            enum tern_ffn_act act, int32_t *sum_q) {                         \
        if (act != TERN_FFN_RELU2) {                                                                         \
            prefix##_ffn_act(gate, gate, up, n, act);                                                        \
            return prefix##_add_norm_quantize(q, y, gate, NULL, w, n, n_pad, eps, sum_q);                    \
        }                                                                                                    \
        const float scale = rms_scale(gate, gate, up, n, eps, PRE_RELU2);                                    \
        return quantize_normed(q, gate, w, scale, n, n_pad, sum_q);                                          \
    }

#endif
