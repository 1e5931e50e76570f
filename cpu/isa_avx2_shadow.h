/* The certified head's shadow dot (scheduler/head_cert.h) for the AVX2 levels: included by
 * cpu/isa_avx2.c (compiled with its flags, DPBUSD256 defined where the level has VNNI), not a
 * translation unit of its own.
 *
 * Per block of 256, each 32-byte chunk of a row gives every input's 8 int32 lanes their exact share
 * of the dots of the unsigned weights (q + 128) with both levels of the input (p, p2), the p2 sums
 * starting from -128 * (the lane's sum of P = 128 p + p2): vpdpbusd with VNNI, else maddubs widened
 * by madd (the levels' ranges keep each pair of products within int16, head_cert.h). 128 * (p sums)
 * + (p2 sums) is the lane's share of I_b, converted and scaled by d_b t_b into per-lane f32 sums,
 * reduced at the row's end. Each row is read once for up to 4 inputs, every input with its own
 * accumulators fed the same operations in the same order whatever the others, so its bits do not
 * depend on the batch. */
#ifndef TERN_ISA_AVX2_SHADOW_H
#define TERN_ISA_AVX2_SHADOW_H

#include "token_passes.h"

#ifdef DPBUSD256
#define SHADOW_DOT256 DPBUSD256
#else
/* acc + the int32 lane sums of u s over 32 bytes, exact where each pair of products fits int16 */
TERN_INLINE __m256i shadow_dot256(__m256i acc, __m256i u, __m256i s) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}
#define SHADOW_DOT256 shadow_dot256
#endif

TERN_INLINE void shadow_rows_tokens(float *const *out, const struct tern_head_shadow *s,
                                    const struct tern_head_xq *const *x, int64_t r0, int64_t r1,
                                    const int nt) {
    const int64_t n = s->n, nb = s->n_blocks;
    const int8_t *p[TERN_SHADOW_MT], *p2[TERN_SHADOW_MT];
    const float *tb[TERN_SHADOW_MT];
    for (int k = 0; k < nt; k++) /* hoisted: gcc reloaded them from x for every vector */
        p[k] = x[k]->p, p2[k] = x[k]->p2, tb[k] = x[k]->t;
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    __m256i corr[TERN_SHADOW_MT][TERN_SHADOW_MAX_BLOCKS];
    for (int k = 0; k < nt; k++)
        for (int64_t b = 0; b < nb; b++) { /* p and p2 are zero past n, so whole blocks */
            __m256i c = _mm256_setzero_si256(), c2 = c;
            for (int j = 0; j < TERN_HEAD_SHADOW_BLOCK / 32; j++) {
                c = SHADOW_DOT256(
                    c, bias,
                    _mm256_load_si256((const __m256i *)(p[k] + TERN_HEAD_SHADOW_BLOCK * b + 32 * j)));
                c2 = SHADOW_DOT256(
                    c2, bias,
                    _mm256_load_si256((const __m256i *)(p2[k] + TERN_HEAD_SHADOW_BLOCK * b + 32 * j)));
            }
            corr[k][b] =
                _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_add_epi32(_mm256_slli_epi32(c, 7), c2));
        }
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = s->q + (size_t)r * (size_t)n;
        const float *d = s->d + r * nb;
        __m256 acc[TERN_SHADOW_MT];
        for (int k = 0; k < nt; k++)
            acc[k] = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const int64_t i0 = TERN_HEAD_SHADOW_BLOCK * b;
            const int64_t i1 = i0 + TERN_HEAD_SHADOW_BLOCK < n ? i0 + TERN_HEAD_SHADOW_BLOCK : n;
            __m256i ia[TERN_SHADOW_MT], ia2[TERN_SHADOW_MT];
            for (int k = 0; k < nt; k++) {
                ia[k] = _mm256_setzero_si256();
                ia2[k] = corr[k][b];
            }
            for (int64_t i = i0; i < i1; i += 32) {
                if ((i & 63) == 0)
                    _mm_prefetch((const char *)row + i + PF_DIST, _MM_HINT_T1);
                const __m256i w = _mm256_loadu_si256((const __m256i *)(row + i));
                for (int k = 0; k < nt; k++) {
                    ia[k] = SHADOW_DOT256(ia[k], w, _mm256_load_si256((const __m256i *)(p[k] + i)));
                    ia2[k] = SHADOW_DOT256(ia2[k], w, _mm256_load_si256((const __m256i *)(p2[k] + i)));
                }
            }
            for (int k = 0; k < nt; k++) {
                const __m256i isum = _mm256_add_epi32(_mm256_slli_epi32(ia[k], 7), ia2[k]);
                acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d[b] * tb[k][b]), acc[k]);
            }
        }
        for (int k = 0; k < nt; k++)
            out[k][r - r0] = hsum_ps(acc[k]);
    }
}

TERN_SHADOW_DOT_FN(avx2_shadow_dot)

#endif
