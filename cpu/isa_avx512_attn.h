/* Causal GQA attention for the AVX-512 level (see tern_ref_attention and cpu/attn_groups.h):
 * included by cpu/isa_avx512.c (compiled with its flags, after its f16 loads and exp_ps), not a
 * translation unit of its own. */
#ifndef TERN_ISA_AVX512_ATTN_H
#define TERN_ISA_AVX512_ATTN_H

#include "attn_groups.h"

/* Lane i of the result = sum of the 16 lanes of v[i] (a transpose-add tree, ~45 ops). */
TERN_INLINE __m512 reduce16_ps(const __m512 v[16]) {
    __m512 x[4];
    for (int g = 0; g < 4; g++) {
        const __m512 *u = v + 4 * g;
        const __m512 a = _mm512_add_ps(_mm512_unpacklo_ps(u[0], u[1]), _mm512_unpackhi_ps(u[0], u[1]));
        const __m512 c = _mm512_add_ps(_mm512_unpacklo_ps(u[2], u[3]), _mm512_unpackhi_ps(u[2], u[3]));
        x[g] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(c))),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(c))));
    }
    __m512 y[2];
    for (int i = 0; i < 2; i++)
        y[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(y[0], y[1], 0x88), _mm512_shuffle_f32x4(y[0], y[1], 0xdd));
}

/* Scores of G query heads (sharing one kv head) against positions [p, p + 16/G): 16 accumulators,
 * each K row converted once for the G heads, one transpose-add tree for the 16 sums. */
TERN_INLINE void scores_tile(float *wts, int64_t wts_stride, const float *q16, const uint16_t *k,
                             int64_t kv_stride, int head_dim, float scale, const int G) {
    const int P = 16 / G;
    __m512 a[16];
    for (int i = 0; i < 16; i++)
        a[i] = _mm512_setzero_ps();
    for (int d = 0; d < head_dim; d += 16)
        for (int j = 0; j < P; j++) {
            const __m512 kv = load_f16(k + j * kv_stride + d);
            for (int h = 0; h < G; h++)
                a[P * h + j] = _mm512_fmadd_ps(_mm512_loadu_ps(q16 + h * head_dim + d), kv, a[P * h + j]);
        }
    float sums[16];
    _mm512_storeu_ps(sums, _mm512_mul_ps(reduce16_ps(a), _mm512_set1_ps(scale)));
    for (int h = 0; h < G; h++)
        memcpy(wts + h * wts_stride, sums + P * h, (size_t)P * sizeof(float));
}

/* softmax over w[0 .. n_pos) in place (f64 sum), weights rounded to f16 as the contract says */
static void softmax_f16(float *w, int n_pos) {
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    int p = 0;
    for (; p + 16 <= n_pos; p += 16)
        vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(w + p));
    float max = _mm512_reduce_max_ps(vmax);
    for (; p < n_pos; p++)
        max = fmaxf(max, w[p]);
    const __m512 vm = _mm512_set1_ps(max);
    __m512d vsum = _mm512_setzero_pd();
    for (p = 0; p < n_pos; p += 16) {
        const __mmask16 m = n_pos - p >= 16 ? 0xffff : (__mmask16)((1u << (n_pos - p)) - 1);
        const __m512 e = _mm512_maskz_mov_ps(m, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, w + p), vm)));
        _mm512_mask_storeu_ps(w + p, m, e);
        vsum = _mm512_add_pd(vsum, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        vsum = _mm512_add_pd(
            vsum, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    const __m512 inv = _mm512_set1_ps((float)(1.0 / _mm512_reduce_add_pd(vsum)));
    for (p = 0; p < n_pos; p += 16) {
        const __mmask16 m = n_pos - p >= 16 ? 0xffff : (__mmask16)((1u << (n_pos - p)) - 1);
        const __m256i w16 = _mm512_cvtps_ph(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + p), inv),
                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm512_mask_storeu_ps(w + p, m, _mm512_cvtph_ps(w16));
    }
}

/* out[h][d .. d + 64) = sum over p in [p0, p1) of w[h][p] * V[p][d .. d + 64) for G heads, added to
 * the sums of the positions before p0 that out holds (none when p0 = 0): each V row is converted
 * once for the G heads. */
TERN_INLINE void weighted_v(float *out, int64_t out_stride, const float *w, int64_t w_stride,
                            const uint16_t *v, int64_t kv_stride, int p0, int p1, int pf_bytes, const int G) {
    __m512 o[4][4];
    for (int h = 0; h < G; h++)
        for (int j = 0; j < 4; j++)
            o[h][j] = p0 == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(out + h * out_stride + 16 * j);
    for (int p = p0; p < p1; p++) {
        const uint16_t *vp = v + p * kv_stride;
        tern_attn_prefetch_ahead(vp, kv_stride, pf_bytes);
        const __m512 v0 = load_f16(vp), v1 = load_f16(vp + 16), v2 = load_f16(vp + 32),
                     v3 = load_f16(vp + 48);
        for (int h = 0; h < G; h++) {
            const __m512 wgt = _mm512_set1_ps(w[h * w_stride + p]);
            o[h][0] = _mm512_fmadd_ps(wgt, v0, o[h][0]);
            o[h][1] = _mm512_fmadd_ps(wgt, v1, o[h][1]);
            o[h][2] = _mm512_fmadd_ps(wgt, v2, o[h][2]);
            o[h][3] = _mm512_fmadd_ps(wgt, v3, o[h][3]);
        }
    }
    for (int h = 0; h < G; h++)
        for (int j = 0; j < 4; j++)
            _mm512_storeu_ps(out + h * out_stride + 16 * j, o[h][j]);
}

enum { ATTN_TILE_LANES = 16, ATTN_HEAD_DIM_STEP = 64 };

TERN_INLINE int attn_v_slice(int G) {
    (void)G;
    return 64;
}

TERN_INLINE void attn_round_q(float *q16, const float *q, int head_dim, int G) {
    for (int h = 0; h < G; h++)
        for (int d = 0; d < head_dim; d += 16)
            _mm512_storeu_ps(q16 + h * head_dim + d,
                             _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(q + (int64_t)h * head_dim + d),
                                                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
}

TERN_INLINE float attn_score(const float *q16h, const uint16_t *k, int head_dim) {
    __m512 a = _mm512_setzero_ps();
    for (int d = 0; d < head_dim; d += 16)
        a = _mm512_fmadd_ps(_mm512_loadu_ps(q16h + d), load_f16(k + d), a);
    return _mm512_reduce_add_ps(a);
}

#include "attn_heads.h"

#endif
