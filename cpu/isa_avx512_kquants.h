/* The Q6_K and Q4_K head rows for the AVX-512 level, one input or several (matvec and matvec_tokens):
 * included by cpu/isa_avx512.c (compiled with its flags, after its f16 loads, MT and half_at),
 * not a translation unit of its own. */
#ifndef TERN_ISA_AVX512_KQUANTS_H
#define TERN_ISA_AVX512_KQUANTS_H

/* Q6_K: 210-byte blocks of 256 (ql[128], qh[64], int8 scales[16], f16 d). Widening every 16
 * quants to f32 and scaling each by d*scale cost ~6 vector ops per 16 elements and capped one Zen 4
 * core at ~9 GB/s (the head is 269 MB per token). Instead, per 64 elements:
 * - ql/qh are decoded 64 quants at a time with byte ops into natural order (u = q + 32, 0..63);
 * - dword lane i then holds elements 4i..4i+3, all of sub-block i/4. vpdpbusd with one byte of each
 *   dword selected (x1) and -32 as the accumulator gives the int32 q of element 4i+j exactly; it
 *   is converted and FMA'd with x, which the caller's x is permuted for once per call (xp lane i of
 *   vector j = x[4i + j]);
 * - the four products of a lane share one scale, so the 64-element sum is scaled once by
 *   d*scale per lane. Only the rounding order differs from the reference (dequantize, then dot).
 * That is ~4.5 ops per 16 elements; one core streams ~14.5 GB/s from L2. With several inputs
 * (matvec_tokens: a batched decode step's head) the decode and the quants' conversion are done once
 * and each further input adds only its FMAs. */
enum { XP_CHUNK = 8192 }; /* x elements permuted per pass and input (32 KB of stack each) */

/* xp[64g + 16j + i] = x[64g + 4i + j] for every 64-element group g of x[0 .. n) */
static void permute_x_q6_k(float *xp, const float *x, int64_t n) {
    for (int64_t g = 0; g < n; g += 64)
        for (int j = 0; j < 4; j++)
            for (int i = 0; i < 16; i++)
                xp[g + 16 * j + i] = x[g + 4 * i + j];
}

/* The four f32 vectors of 64 quants u (one per byte) less the bias each lane starts from: vector j
 * holds byte j of every dword lane, extracted exactly by vpdpbusd with a one-byte selector. */
TERN_INLINE void k_quants(__m512 f[4], __m512i u, __m512i bias) {
    for (int j = 0; j < 4; j++)
        f[j] = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(bias, u, _mm512_set1_epi32(1 << (8 * j))));
}

/* acc + scale * (sum over j of f[j] * xg[16j ..]): one 64-element group against permuted x */
TERN_INLINE __m512 k_group(const __m512 f[4], const float *xg, __m512 scale, __m512 acc) {
    __m512 g = _mm512_mul_ps(f[0], _mm512_loadu_ps(xg));
    for (int j = 1; j < 4; j++)
        g = _mm512_fmadd_ps(f[j], _mm512_loadu_ps(xg + 16 * j), g);
    return _mm512_fmadd_ps(g, scale, acc);
}

/* out[k][r - r0] (+)= dot of columns [c0, c0 + n) of rows [r0, r1) with xp[k] (input k's permuted
 * x of those columns), k < nt: each group's quants are decoded once for every input, and each
 * input's accumulators see the one-input operations in the same order (its bits alone) */
TERN_INLINE void q6_k_rows(float *const *out, const struct tern_tensor *t, const float *const *xp, int64_t c0,
                           int64_t n, int64_t r0, int64_t r1, const int nt) {
    const __m512i m0f = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30), bias = _mm512_set1_epi32(-32);
    /* qh is broadcast to both 256-bit halves: elements 0-31 of a half take qh bits 1:0, 32-63 bits
     * 3:2 (for u of ql's low nibbles), 64-95 bits 5:4 and 96-127 bits 7:6 (high nibbles) */
    const __m512i mask_a = _mm512_inserti64x4(_mm512_set1_epi8(0x03), _mm256_set1_epi8(0x0c), 1);
    const __m512i shl_a = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i shr_b = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    /* lane i of 64-element group G of a block belongs to sub-block 4G + i/4 */
    const __m512i sub0 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    const __m512i sub[4] = {sub0, _mm512_add_epi32(sub0, _mm512_set1_epi32(4)),
                            _mm512_add_epi32(sub0, _mm512_set1_epi32(8)),
                            _mm512_add_epi32(sub0, _mm512_set1_epi32(12))};
    const int64_t nb = n / 256;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)t->data + (size_t)r * t->row_bytes + (size_t)(c0 / 256) * 210;
        __m512 acc0[MT], acc1[MT];
        for (int k = 0; k < nt; k++)
            acc0[k] = acc1[k] = _mm512_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = row + 210 * b;
            _mm_prefetch((const char *)(blk + PF_DIST), _MM_HINT_T1);
            _mm_prefetch((const char *)(blk + PF_DIST + 64), _MM_HINT_T1);
            _mm_prefetch((const char *)(blk + PF_DIST + 128), _MM_HINT_T1);
            _mm_prefetch((const char *)(blk + PF_DIST + 192), _MM_HINT_T1);
            const __m512 dsc = _mm512_mul_ps(
                _mm512_set1_ps(half_at(blk + 208)),
                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 192)))));
            for (int h = 0; h < 2; h++) {
                const __m512i ql = _mm512_loadu_si512(blk + 64 * h);
                const __m512i qh =
                    _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h)));
                /* ternary logic 0xE4: bits where m0f is set from the first operand, others from the
                 * second (whose bits 7:6 are clear) */
                const __m512i ua = _mm512_ternarylogic_epi32(
                    ql, _mm512_sllv_epi16(_mm512_and_si512(qh, mask_a), shl_a), m0f, 0xE4);
                const __m512i ub = _mm512_ternarylogic_epi32(
                    _mm512_srli_epi16(ql, 4), _mm512_and_si512(_mm512_srlv_epi16(qh, shr_b), m30), m0f, 0xE4);
                const __m512 sa = _mm512_permutexvar_ps(sub[2 * h], dsc),
                             sb = _mm512_permutexvar_ps(sub[2 * h + 1], dsc);
                __m512 f[4];
                k_quants(f, ua, bias);
                for (int k = 0; k < nt; k++)
                    acc0[k] = k_group(f, xp[k] + 256 * b + 128 * h, sa, acc0[k]);
                k_quants(f, ub, bias);
                for (int k = 0; k < nt; k++)
                    acc1[k] = k_group(f, xp[k] + 256 * b + 128 * h + 64, sb, acc1[k]);
            }
        }
        for (int k = 0; k < nt; k++) {
            const float s = _mm512_reduce_add_ps(_mm512_add_ps(acc0[k], acc1[k]));
            out[k][r - r0] = c0 ? out[k][r - r0] + s : s;
        }
    }
}

/* rows [r0, r1) of a Q6_K tensor for nt <= MT inputs, the columns in passes of XP_CHUNK */
TERN_INLINE void q6_k_tokens(float *const *out, const struct tern_tensor *t, const float *const *x,
                             int64_t r0, int64_t r1, const int nt) {
    float xp[MT][XP_CHUNK];
    const float *xpk[MT];
    for (int64_t c0 = 0; c0 < t->ne0; c0 += XP_CHUNK) {
        const int64_t n = t->ne0 - c0 < XP_CHUNK ? t->ne0 - c0 : XP_CHUNK;
        for (int k = 0; k < nt; k++) {
            permute_x_q6_k(xp[k], x[k] + c0, n);
            xpk[k] = xp[k];
        }
        q6_k_rows(out, t, xpk, c0, n, r0, r1, nt);
    }
}

/* Q4_K: 144-byte blocks of 256 (f16 d, f16 dmin, 12 scale bytes, 128 nibble bytes); element value
 * d*sc*q - dmin*m per 32-element sub-block. Same scheme as Q6_K (widening each nibble vector and
 * scaling it ran at ~8 GB/s per core): 64 nibble bytes give two vectors of 64 quants (low, high
 * nibbles), vpdpbusd extracts one byte per dword lane, and each lane's four products are scaled
 * once by d*sc. The min term is dmin*m times the sub-block's sum of x, computed once per call.
 * Vector v = 2c + n (c: bytes 64c..64c+63 of qs, n: nibble) holds in byte p = 4i + j the element
 * 128c + 64*(p/32) + 32n + p%32 of the block, of sub-block 4c + 2*(p/32) + n. */
static void permute_x_q4_k(float *xp, float *sums, const float *x, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++) {
        const float *xb = x + 256 * b;
        for (int v = 0; v < 4; v++)
            for (int j = 0; j < 4; j++)
                for (int i = 0; i < 16; i++) {
                    const int p = 4 * i + j;
                    xp[256 * b + 64 * v + 16 * j + i] =
                        xb[128 * (v / 2) + 64 * (p / 32) + 32 * (v % 2) + p % 32];
                }
        /* lanes 8-15 meet the mins in the block's scale vector (see q4_k_rows); lanes 0-7 the scales */
        for (int k = 0; k < 8; k++) {
            float s = 0.0f;
            for (int e = 0; e < 32; e++)
                s += xb[32 * k + e];
            sums[16 * b + k] = 0.0f;
            sums[16 * b + 8 + k] = s;
        }
    }
}

/* 8 scales then 8 mins (6 bits each, as tern_ref_q4_k_scale_min reads them) from the 12
 * packed bytes at s, as 16 bytes: dword 0 = bytes 0-3 & 63, dword 1 = (bytes 8-11 & 15) | (top
 * bits of bytes 0-3) << 4, dword 2 = bytes 4-7 & 63, dword 3 = (bytes 8-11 >> 4) | (top bits of
 * bytes 4-7) << 4. The 16-byte load reads 4 bytes of qs past the scales. */
TERN_INLINE __m128i q4_k_scales_mins(const uint8_t *s) {
    const __m128i v = _mm_loadu_si128((const __m128i *)s);
    const __m128i a = _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0));
    const __m128i hi = _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 1, 0, 0));
    const __m128i low = _mm_and_si128(_mm_srlv_epi32(a, _mm_setr_epi32(0, 0, 0, 4)),
                                      _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
    const __m128i top = _mm_and_si128(_mm_srli_epi32(hi, 2), _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
    return _mm_or_si128(low, top);
}

/* out[k][r - r0] (+)= dot of columns [c0, c0 + n) of rows [r0, r1) with xp[k] and sums[k], k < nt:
 * as q6_k_rows, each group decoded once for every input */
TERN_INLINE void q4_k_rows(float *const *out, const struct tern_tensor *t, const float *const *xp,
                           const float *const *sums, int64_t c0, int64_t n, int64_t r0, int64_t r1,
                           const int nt) {
    const __m512i m0f = _mm512_set1_epi8(0x0f);
    /* lanes 0-7 of vector v belong to sub-block 4*(v/2) + v%2, lanes 8-15 to that + 2 */
    const __m512i sub[4] = {_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2),
                            _mm512_setr_epi32(1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3),
                            _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6),
                            _mm512_setr_epi32(5, 5, 5, 5, 5, 5, 5, 5, 7, 7, 7, 7, 7, 7, 7, 7)};
    const __m512i d_dmin = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const int64_t nb = n / 256;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)t->data + (size_t)r * t->row_bytes + (size_t)(c0 / 256) * 144;
        __m512 acc0[MT], acc1[MT], mins[MT];
        for (int k = 0; k < nt; k++)
            acc0[k] = acc1[k] = mins[k] = _mm512_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = row + 144 * b;
            _mm_prefetch((const char *)(blk + PF_DIST), _MM_HINT_T1);
            _mm_prefetch((const char *)(blk + PF_DIST + 64), _MM_HINT_T1);
            _mm_prefetch((const char *)(blk + PF_DIST + 128), _MM_HINT_T1);
            /* lanes 0-7: d * scale, lanes 8-15: dmin * min */
            int32_t d_bits;
            memcpy(&d_bits, blk, sizeof d_bits);
            const __m512 dd = _mm512_permutexvar_ps(
                d_dmin, _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128(d_bits))));
            const __m512 sm =
                _mm512_mul_ps(dd, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q4_k_scales_mins(blk + 4))));
            for (int k = 0; k < nt; k++)
                mins[k] = _mm512_fmadd_ps(sm, _mm512_loadu_ps(sums[k] + 16 * b), mins[k]);
            for (int c = 0; c < 2; c++) {
                const __m512i q = _mm512_loadu_si512(blk + 16 + 64 * c);
                const __m512i u[2] = {_mm512_and_si512(q, m0f),
                                      _mm512_and_si512(_mm512_srli_epi16(q, 4), m0f)};
                for (int nib = 0; nib < 2; nib++) {
                    const int v = 2 * c + nib;
                    const __m512 scale = _mm512_permutexvar_ps(sub[v], sm);
                    __m512 f[4];
                    k_quants(f, u[nib], _mm512_setzero_si512());
                    for (int k = 0; k < nt; k++) {
                        const float *xv = xp[k] + 256 * b + 64 * v;
                        if (nib)
                            acc1[k] = k_group(f, xv, scale, acc1[k]);
                        else
                            acc0[k] = k_group(f, xv, scale, acc0[k]);
                    }
                }
            }
        }
        for (int k = 0; k < nt; k++) {
            const float s =
                _mm512_reduce_add_ps(_mm512_add_ps(acc0[k], acc1[k])) - _mm512_reduce_add_ps(mins[k]);
            out[k][r - r0] = c0 ? out[k][r - r0] + s : s;
        }
    }
}

/* rows [r0, r1) of a Q4_K tensor for nt <= MT inputs, the columns in passes of XP_CHUNK */
TERN_INLINE void q4_k_tokens(float *const *out, const struct tern_tensor *t, const float *const *x,
                             int64_t r0, int64_t r1, const int nt) {
    float xp[MT][XP_CHUNK], sums[MT][XP_CHUNK / 16];
    const float *xpk[MT], *sk[MT];
    for (int64_t c0 = 0; c0 < t->ne0; c0 += XP_CHUNK) {
        const int64_t n = t->ne0 - c0 < XP_CHUNK ? t->ne0 - c0 : XP_CHUNK;
        for (int k = 0; k < nt; k++) {
            permute_x_q4_k(xp[k], sums[k], x[k] + c0, n);
            xpk[k] = xp[k];
            sk[k] = sums[k];
        }
        q4_k_rows(out, t, xpk, sk, c0, n, r0, r1, nt);
    }
}

#endif
