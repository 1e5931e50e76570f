/* The certified head's shadow (scheduler/head_cert.h) for the AVX-512 level, its load-time build
 * and its dot: included by cpu/isa_avx512.c (compiled with its flags, after its F16/BF16 loads),
 * not a translation unit of its own. */
#ifndef TERN_ISA_AVX512_SHADOW_H
#define TERN_ISA_AVX512_SHADOW_H

#include <float.h>

#include "token_passes.h"

/* The build (load time), F16/BF16 heads as tern_head_shadow_rows quantizes them (the same q and d
 * bytes: every float op below is the reference's, and the rounding (int)(t + copysign(0.5, t)) is
 * truncation), with e = w - d q in one FMA rounding, the sums of squares in f32 over at most 16
 * elements per lane per block and in double across blocks (< 1e-5 relative, as
 * tern_head_cert_coef allows). F32 heads take the reference. */
static void avx512_head_shadow(void *blob, const struct tern_tensor *head, int64_t r0, int64_t r1) {
    if (head->type == TERN_TYPE_F32) {
        tern_head_shadow_rows(blob, head, r0, r1);
        return;
    }
    struct tern_head_shadow s;
    tern_head_shadow_view(&s, blob, head->ne0, head->ne1);
    const int elt = head->type == TERN_TYPE_F16 ? ELT_F16 : ELT_BF16;
    const int64_t n = head->ne0;
    const __m512 half = _mm512_set1_ps(0.5f), hi = _mm512_set1_ps(TERN_HEAD_Q_MAX),
                 lo = _mm512_set1_ps(-TERN_HEAD_Q_MAX);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u), bias = _mm512_set1_epi32(128);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)head->data + (size_t)r * head->row_bytes;
        uint8_t *q = s.q + (size_t)r * (size_t)n;
        __m512d se = _mm512_setzero_pd(), sw = se, sv = se;
        for (int64_t b = 0; b < s.n_blocks; b++) {
            const int64_t i0 = b * TERN_HEAD_SHADOW_BLOCK;
            const int nv = (int)((n - i0 < TERN_HEAD_SHADOW_BLOCK ? n - i0 : TERN_HEAD_SHADOW_BLOCK) / 16);
            __m512 w[TERN_HEAD_SHADOW_BLOCK / 16], m = _mm512_setzero_ps();
            for (int j = 0; j < nv; j++) {
                w[j] = load_elt(row, i0 + 16 * j, elt);
                m = _mm512_max_ps(m, _mm512_abs_ps(w[j]));
            }
            float d = _mm512_reduce_max_ps(m) / (float)TERN_HEAD_Q_MAX;
            d = d >= FLT_MIN && d <= FLT_MAX ? d : 0.0f;
            s.d[r * s.n_blocks + b] = d;
            const __m512 vd = _mm512_set1_ps(d), inv_d = _mm512_set1_ps(d > 0.0f ? 1.0f / d : 0.0f);
            __m512 le = _mm512_setzero_ps(), lw = le, lv = le;
            for (int j = 0; j < nv; j++) {
                /* NaN weights: max/min give -127 where the reference gives 0; such rows get an
                 * infinite coefficient either way */
                const __m512 t = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(w[j], inv_d), lo), hi);
                const __m512 rnd = _mm512_castsi512_ps(_mm512_or_si512(
                    _mm512_and_si512(_mm512_castps_si512(t), sign), _mm512_castps_si512(half)));
                const __m512i qi = _mm512_cvttps_epi32(_mm512_add_ps(t, rnd));
                _mm_storeu_si128((__m128i *)(q + i0 + 16 * j),
                                 _mm512_cvtepi32_epi8(_mm512_add_epi32(qi, bias)));
                const __m512 qf = _mm512_cvtepi32_ps(qi);
                const __m512 v = _mm512_mul_ps(vd, qf), e = _mm512_fnmadd_ps(vd, qf, w[j]);
                le = _mm512_fmadd_ps(e, e, le);
                lw = _mm512_fmadd_ps(w[j], w[j], lw);
                lv = _mm512_fmadd_ps(v, v, lv);
            }
            se = _mm512_add_pd(se, _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(le)),
                                                 _mm512_cvtps_pd(_mm512_extractf32x8_ps(le, 1))));
            sw = _mm512_add_pd(sw, _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(lw)),
                                                 _mm512_cvtps_pd(_mm512_extractf32x8_ps(lw, 1))));
            sv = _mm512_add_pd(sv, _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(lv)),
                                                 _mm512_cvtps_pd(_mm512_extractf32x8_ps(lv, 1))));
        }
        tern_head_cert_coef(&s, r, _mm512_reduce_add_pd(se), _mm512_reduce_add_pd(sw),
                            _mm512_reduce_add_pd(sv));
    }
}

/* Blocks [b0, b1) of rows r .. r + R - 1 (R = 1 or 2) of the shadow dot for nt inputs, into acc. With
 * R = 2 the two rows share every input load: at 4 inputs one row at a time took 9 loads per 8
 * vpdpbusd and its pass streamed at about half the one-input pass's speed (2b4t, tern bench
 * --parallel 4 --head-mode certified: 121-128 -> 131-138 t/s in alternating runs). pf NULL: with 2
 * or 3 inputs each row prefetched into L2 PF_DIST ahead (without, a 3-token decode step of 2B-4T
 * took 1.11-1.16x as long); one input's row is left to the hardware prefetchers, as the F16 head's
 * (the median one-token step 0.990 of its time with T1 prefetches, eleven in-process A/B runs,
 * docs/certified-head.md; NTA there 1.004-1.012). Otherwise the stream to prefetch, 64 x R bytes a step,
 * non-temporal as the ternary tiles' (tile_prefetch): a 4-token step 0.9913 of its time with T1. */
TERN_INLINE void shadow_span(__m512 acc[2][TERN_SHADOW_MT], const struct tern_head_shadow *s,
                             const int8_t *const *p, const int8_t *const *p2, const float *const *tb,
                             const __m512i corr[][TERN_SHADOW_MAX_BLOCKS], int64_t r, int64_t b0, int64_t b1,
                             const int nt, const int R, const uint8_t *pf) {
    const int64_t n = s->n, nb = s->n_blocks;
    const uint8_t *row[2];
    const float *d[2];
    for (int h = 0; h < R; h++) {
        row[h] = s->q + (size_t)(r + h) * (size_t)n;
        d[h] = s->d + (r + h) * nb;
    }
    for (int64_t b = b0; b < b1; b++) {
        const int64_t i0 = TERN_HEAD_SHADOW_BLOCK * b;
        __m512i ia[2][TERN_SHADOW_MT], ia2[2][TERN_SHADOW_MT];
        for (int h = 0; h < R; h++)
            for (int k = 0; k < nt; k++) {
                ia[h][k] = _mm512_setzero_si512();
                ia2[h][k] = corr[k][b];
            }
        if (i0 + TERN_HEAD_SHADOW_BLOCK <= n) {
            for (int j = 0; j < TERN_HEAD_SHADOW_BLOCK / 64; j++) {
                __m512i w[2];
                for (int h = 0; h < R; h++) {
                    if (pf)
                        _mm_prefetch((const char *)pf + 64 * h, _MM_HINT_NTA);
                    else if (nt > 1)
                        _mm_prefetch((const char *)row[h] + i0 + 64 * j + PF_DIST, _MM_HINT_T1);
                    w[h] = _mm512_loadu_si512(row[h] + i0 + 64 * j);
                }
                if (pf)
                    pf += 64 * R;
                for (int k = 0; k < nt; k++) {
                    __m512i x1 = _mm512_load_si512(p[k] + i0 + 64 * j),
                            x2 = _mm512_load_si512(p2[k] + i0 + 64 * j);
                    if (R > 1) /* one load for both rows: gcc would fold a load into each vpdpbusd */
                        __asm__("" : "+v"(x1), "+v"(x2));
                    for (int h = 0; h < R; h++) {
                        ia[h][k] = _mm512_dpbusd_epi32(ia[h][k], w[h], x1);
                        ia2[h][k] = _mm512_dpbusd_epi32(ia2[h][k], w[h], x2);
                    }
                }
            }
        } else { /* the row's last, shorter block (a multiple of 32) */
            for (int64_t i = i0; i < n; i += 64) {
                const __mmask64 m = n - i >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << (n - i)) - 1;
                for (int h = 0; h < R; h++) {
                    const __m512i w = _mm512_maskz_loadu_epi8(m, row[h] + i);
                    for (int k = 0; k < nt; k++) {
                        ia[h][k] = _mm512_dpbusd_epi32(ia[h][k], w, _mm512_load_si512(p[k] + i));
                        ia2[h][k] = _mm512_dpbusd_epi32(ia2[h][k], w, _mm512_load_si512(p2[k] + i));
                    }
                }
            }
        }
        for (int h = 0; h < R; h++)
            for (int k = 0; k < nt; k++) {
                const __m512i isum = _mm512_add_epi32(_mm512_slli_epi32(ia[h][k], 7), ia2[h][k]);
                acc[h][k] =
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d[h][b] * tb[k][b]), acc[h][k]);
            }
    }
}

/* Rows r .. r + R - 1 whole, into out */
TERN_INLINE void shadow_rows(float *const *out, const struct tern_head_shadow *s, const int8_t *const *p,
                             const int8_t *const *p2, const float *const *tb,
                             const __m512i corr[][TERN_SHADOW_MAX_BLOCKS], int64_t r0, int64_t r,
                             const int nt, const int R) {
    __m512 acc[2][TERN_SHADOW_MT];
    for (int h = 0; h < R; h++)
        for (int k = 0; k < nt; k++)
            acc[h][k] = _mm512_setzero_ps();
    shadow_span(acc, s, p, p2, tb, corr, r, 0, s->n_blocks, nt, R, NULL);
    for (int h = 0; h < R; h++)
        for (int k = 0; k < nt; k++)
            out[k][r + h - r0] = _mm512_reduce_add_ps(acc[h][k]);
}

/* With 4 inputs, 16 rows at a time go through in column blocks of up to 10 shadow blocks (2560
 * columns: 2B-4T's whole row), so that the inputs' two levels over the block (20 KB) stay in L1
 * while the rows stream past; each row's accumulators wait in acc between column blocks of wider
 * rows (every one fed the same operations in the same order), and the next 16 rows are prefetched
 * as one linear stream (non-temporal: see shadow_span). Harness, all 128256 rows of 2560 from DRAM,
 * 2 threads, each one contiguous half: 9.3 -> 7.4 ms with blocks of 5 (8 rows a group 7.8, 32 rows
 * 8.1, 3 or 4 blocks 8.6-9.1, whole rows one pair at a time without the group 10.0); in tasks of
 * 1024 rows handed out in turn, 9.1 -> 8.9, hence the head's runs for a step of several tokens in
 * cpu_head.c. In the whole model, with those runs, a group over whole rows beat blocks of 5: the
 * median 4-token step took 0.9777, 0.9793, 0.9730, 0.9743, 0.9766 and 0.9813 of its time with 5
 * (in-process A/B runs, docs/certified-head.md), blocks of 7 level, of 4 1.004-1.013. */
enum { SHADOW_GROUP_ROWS = 16, SHADOW_COL_BLOCKS = 10 };

TERN_INLINE void shadow_group(float *const *out, const struct tern_head_shadow *s, const int8_t *const *p,
                              const int8_t *const *p2, const float *const *tb,
                              const __m512i corr[][TERN_SHADOW_MAX_BLOCKS], int64_t r0, int64_t r,
                              const int nt) {
    const int64_t n = s->n, nb = s->n_blocks;
    __m512 acc[SHADOW_GROUP_ROWS][TERN_SHADOW_MT];
    const uint8_t *pf = s->q + (size_t)(r + SHADOW_GROUP_ROWS) * (size_t)n;
    for (int64_t b0 = 0; b0 < nb; b0 += SHADOW_COL_BLOCKS) {
        const int64_t b1 = b0 + SHADOW_COL_BLOCKS < nb ? b0 + SHADOW_COL_BLOCKS : nb;
        const int64_t cols =
            (b1 * TERN_HEAD_SHADOW_BLOCK < n ? b1 * TERN_HEAD_SHADOW_BLOCK : n) - b0 * TERN_HEAD_SHADOW_BLOCK;
        for (int g = 0; g < SHADOW_GROUP_ROWS; g += 2) {
            __m512 a[2][TERN_SHADOW_MT];
            for (int h = 0; h < 2; h++)
                for (int k = 0; k < nt; k++)
                    a[h][k] = b0 ? acc[g + h][k] : _mm512_setzero_ps();
            shadow_span(a, s, p, p2, tb, corr, r + g, b0, b1, nt, 2, pf);
            pf += (cols + 63) / 64 * 128;
            for (int h = 0; h < 2; h++)
                for (int k = 0; k < nt; k++)
                    acc[g + h][k] = a[h][k];
        }
    }
    for (int g = 0; g < SHADOW_GROUP_ROWS; g++)
        for (int k = 0; k < nt; k++)
            out[k][r + g - r0] = _mm512_reduce_add_ps(acc[g][k]);
}

/* The dot: per block of 256, vpdpbusd of the weights (q + 128, unsigned) with each level of the
 * input (p, p2), combined as 128 * (the p sums) + (the p2 sums) starting from -128 * (the lane's sum
 * of P), so each of the 16 lanes holds its exact share of I_b; the lanes are converted and scaled
 * by d_b t_b into per-lane f32 sums, reduced at the row's end. Each row is read once for up to 4
 * inputs, every input with its own accumulators fed the same operations in the same order whatever
 * the others, so its bits do not depend on the batch. */
TERN_INLINE void shadow_rows_tokens(float *const *out, const struct tern_head_shadow *s,
                                    const struct tern_head_xq *const *x, int64_t r0, int64_t r1,
                                    const int nt) {
    const int64_t nb = s->n_blocks;
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    __m512i corr[TERN_SHADOW_MT][TERN_SHADOW_MAX_BLOCKS];
    const int8_t *p[TERN_SHADOW_MT], *p2[TERN_SHADOW_MT];
    const float *tb[TERN_SHADOW_MT];
    for (int k = 0; k < nt; k++)
        p[k] = x[k]->p, p2[k] = x[k]->p2, tb[k] = x[k]->t;
    for (int k = 0; k < nt; k++)
        for (int64_t b = 0; b < nb; b++) { /* p and p2 are zero past n, so whole blocks */
            __m512i c = _mm512_setzero_si512(), c2 = c;
            for (int j = 0; j < TERN_HEAD_SHADOW_BLOCK / 64; j++) {
                c = _mm512_dpbusd_epi32(c, bias,
                                        _mm512_load_si512(x[k]->p + TERN_HEAD_SHADOW_BLOCK * b + 64 * j));
                c2 = _mm512_dpbusd_epi32(c2, bias,
                                         _mm512_load_si512(x[k]->p2 + TERN_HEAD_SHADOW_BLOCK * b + 64 * j));
            }
            corr[k][b] =
                _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_add_epi32(_mm512_slli_epi32(c, 7), c2));
        }
    int64_t r = r0;
    if (nt == TERN_SHADOW_MT)
        for (; r + SHADOW_GROUP_ROWS <= r1; r += SHADOW_GROUP_ROWS)
            shadow_group(out, s, p, p2, tb, corr, r0, r, nt);
    /* not below 3 inputs: two rows at once streamed ~11% slower at one (2b4t, tg32 x1), 0-5% at two,
     * level at three */
    if (nt > 2)
        for (; r + 2 <= r1; r += 2)
            shadow_rows(out, s, p, p2, tb, corr, r0, r, nt, 2);
    for (; r < r1; r++)
        shadow_rows(out, s, p, p2, tb, corr, r0, r, nt, 1);
}

TERN_SHADOW_DOT_FN(avx512_shadow_dot)

#endif
