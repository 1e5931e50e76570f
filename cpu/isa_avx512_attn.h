/* Causal GQA attention for the AVX-512 level (see tern_ref_attention and cpu/attn_groups.h):
 * included by cpu/isa_avx512.c (compiled with its flags, after its f16 loads and exp_ps), not a
 * translation unit of its own. */
#ifndef TERN_ISA_AVX512_ATTN_H
#define TERN_ISA_AVX512_ATTN_H

#include "attn_groups.h"

/* a[0] = the pairwise sum of a[0 .. A) (A a power of two): ((a0 + a1) + (a2 + a3)) + ... */
TERN_INLINE __m512 pairwise_sum(__m512 *a, int A) {
    for (int w = 1; w < A; w *= 2)
        for (int i = 0; i + w < A; i += 2 * w)
            a[i] = _mm512_add_ps(a[i], a[i + w]);
    return a[0];
}

/* Scores of G query heads (sharing one kv head) against the first n positions of NB (1-4) K blocks
 * from kb, kb_stride apart (dimension-major, 16 positions a dimension): the positions in the lanes,
 * each FMA'd with the query's element broadcast, no horizontal sums. The NB blocks share each
 * broadcast (with 4 heads, 8 loads per 16 FMAs; one block at a time took 10 per 8 and was load
 * bound). Dimensions d = a mod A go into accumulator a, A enough for 8 independent FMA chains (6
 * for G = 3), summed pairwise at the end. Lanes past n hold unwritten positions and are not stored.
 * pf: prefetch each line a step (4 blocks) on. */
TERN_INLINE void scores_block(float *wts, int64_t wts_stride, const float *q16, const uint16_t *kb,
                              int64_t kb_stride, int head_dim, float scale, int n, bool pf, const int G,
                              const int NB) {
    const int per_head = G >= 3 ? 2 : 8 / G; /* accumulators a head takes with one block */
    const int A = per_head / NB > 0 ? per_head / NB : 1;
    __m512 acc[4][8];
    for (int b = 0; b < NB; b++)
        for (int i = 0; i < G * A; i++)
            acc[b][i] = _mm512_setzero_ps();
    for (int d = 0; d < head_dim; d += A)
        for (int a = 0; a < A; a++) {
            __m512 kv[4];
            for (int b = 0; b < NB; b++) {
                const uint16_t *row = kb + b * kb_stride + (d + a) * TERN_ATTN_KBLOCK;
                if (pf && (d + a) % 2 == 0) /* a line at a time: a burst at each step's start was slower */
                    __builtin_prefetch((const void *)((uintptr_t)row + (uintptr_t)(8 * kb_stride)), 0, 3);
                kv[b] = load_f16(row);
            }
            for (int h = 0; h < G; h++) {
                const __m512 qe = _mm512_set1_ps(q16[h * head_dim + d + a]);
                for (int b = 0; b < NB; b++)
                    acc[b][h * A + a] = _mm512_fmadd_ps(qe, kv[b], acc[b][h * A + a]);
            }
        }
    for (int b = 0; b < NB; b++) {
        const int nb = n - 16 * b < 16 ? n - 16 * b : 16;
        const __mmask16 m = (__mmask16)(nb == 16 ? 0xffffu : (1u << nb) - 1);
        for (int h = 0; h < G; h++)
            _mm512_mask_storeu_ps(wts + h * wts_stride + 16 * b, m,
                                  _mm512_mul_ps(pairwise_sum(acc[b] + h * A, A), _mm512_set1_ps(scale)));
    }
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

enum { ATTN_HEAD_DIM_STEP = 64 };

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

#include "attn_heads.h"

#endif
