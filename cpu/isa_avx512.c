/* AVX-512 kernel table (F, BW, DQ, VL + VNNI; F16C and FMA): this file alone is compiled with those
 * flags (cpu/CMakeLists.txt) and is chosen at run time only on CPUs and OSes that support them.
 *
 * Ternary product: a 32-byte I2_S block is broadcast to both 256-bit halves of a zmm; one shift and
 * two ANDs with the per-half mask (0x0C | 0x03) give the codes of weights 0..63 and 64..127 in
 * natural q order, scaled by 4 in the low half (bits 7:6 and 3:2 stay in place two bits up) and by 1
 * in the high half. vpdpbusd (unsigned codes x signed q) accumulates exact int32 sums; the low half
 * is shifted right by 2 at the end (exact: every product there is a multiple of 4) and sum q is
 * subtracted, so acc = sum (c - 1) q is the reference's integer. Prefill reuses each unpacked
 * weight block for 4 tokens across 4 rows (16 accumulators); decode walks one row at a time, so
 * each thread reads one linear stream (measured: 4 interleaved row streams reached only ~55% of
 * the DRAM bandwidth of one linear stream; q stays in L1 either way). */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "isa.h"
#include "norm_passes.h"
#include "ref.h"
#include "token_passes.h"

#define TERN_INLINE static inline __attribute__((always_inline))

/* ---- activation quantization ---- */

/* 16 values from i on (lanes outside m zero) of y = x, or of y = (x * scale) * w when w is not NULL:
 * the level's rmsnorm output, recomputed by each pass of the quantization instead of stored. */
TERN_INLINE __m512 normed(const float *x, const float *w, __m512 vs, int64_t i, __mmask16 m) {
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    return w ? _mm512_mul_ps(_mm512_mul_ps(v, vs), _mm512_maskz_loadu_ps(m, w + i)) : v;
}

/* tern_ref_quantize_act of y (see normed) */
TERN_INLINE float quantize_normed(int8_t *q, const float *x, const float *w, float scale, int64_t n,
                                  int64_t n_pad, int32_t *sum_q) {
    const __m512 vn = _mm512_set1_ps(scale);
    const __mmask16 all = 0xffff, tail = (__mmask16)((1u << (n % 16)) - 1);
    __m512 vmax = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) /* max(a, b) returns b when a is NaN, like fmaxf(m, NaN) = m */
        vmax = _mm512_max_ps(_mm512_abs_ps(normed(x, w, vn, i, all)), vmax);
    if (i < n)
        vmax = _mm512_max_ps(_mm512_abs_ps(normed(x, w, vn, i, tail)), vmax);
    const float s = 127.0f / fmaxf(_mm512_reduce_max_ps(vmax), 1e-5f);
    const __m512 vs = _mm512_set1_ps(s);
    const __m512i lo = _mm512_set1_epi32(-128), hi = _mm512_set1_epi32(127);
    __m512i vsum = _mm512_setzero_si512();
    for (i = 0; i + 16 <= n; i += 16) {
        /* cvtps_epi32 rounds half to even under the default MXCSR; NaN gives INT_MIN -> -128 */
        __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(normed(x, w, vn, i, all), vs));
        v = _mm512_max_epi32(_mm512_min_epi32(v, hi), lo);
        vsum = _mm512_add_epi32(vsum, v);
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtepi32_epi8(v));
    }
    if (i < n) {
        __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(normed(x, w, vn, i, tail), vs));
        v = _mm512_maskz_mov_epi32(tail, _mm512_max_epi32(_mm512_min_epi32(v, hi), lo));
        vsum = _mm512_add_epi32(vsum, v);
        _mm512_mask_cvtepi32_storeu_epi8(q + i, tail, v);
    }
    if (n_pad > n)
        memset(q + n, 0, (size_t)(n_pad - n));
    if (sum_q)
        *sum_q = _mm512_reduce_add_epi32(vsum);
    return s;
}

static float avx512_quantize_act(int8_t *q, const float *x, int64_t n, int64_t n_pad, int32_t *sum_q) {
    return quantize_normed(q, x, NULL, 1.0f, n, n_pad, sum_q);
}

/* ---- ternary matmul ---- */

/* Sums 16 accumulators (of the broadcast-block scheme) into one vector: lane i = sum of v[i], the
 * low (x4) half unscaled. A transpose-add tree: 45 ops instead of 16 horizontal reductions. */
TERN_INLINE __m512i reduce16(const __m512i v[16]) {
    /* groups of four: interleave pairs, then the pairs: 128-bit lane j of x[g] holds the partial
     * sums of v[4g .. 4g+3] over that lane */
    __m512i x[4];
    for (int g = 0; g < 4; g++) {
        const __m512i *u = v + 4 * g;
        const __m512i a =
            _mm512_add_epi32(_mm512_unpacklo_epi32(u[0], u[1]), _mm512_unpackhi_epi32(u[0], u[1]));
        const __m512i c =
            _mm512_add_epi32(_mm512_unpacklo_epi32(u[2], u[3]), _mm512_unpackhi_epi32(u[2], u[3]));
        x[g] = _mm512_add_epi32(_mm512_unpacklo_epi64(a, c), _mm512_unpackhi_epi64(a, c));
    }
    /* 128-bit lanes 0-1 are the low (x4) half: [g lo, g hi, g+1 lo, g+1 hi], unscale the lo lanes */
    const __m512i shift = _mm512_setr_epi32(2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0);
    __m512i y[2];
    for (int i = 0; i < 2; i++) {
        const __m512i s = _mm512_add_epi32(_mm512_shuffle_i32x4(x[2 * i], x[2 * i + 1], 0x88),
                                           _mm512_shuffle_i32x4(x[2 * i], x[2 * i + 1], 0xdd));
        y[i] = _mm512_srav_epi32(s, shift);
    }
    return _mm512_add_epi32(_mm512_shuffle_i32x4(y[0], y[1], 0x88), _mm512_shuffle_i32x4(y[0], y[1], 0xdd));
}

/* Software prefetch of the decode weight stream, into L2 (T1) 8 KB ahead: one thread streaming
 * 640 MiB of 2560-column rows from DRAM measured 19-22 GB/s, against 15-16 GB/s with T0 1 KB
 * ahead, 17-19 with T1 4 KB and 13-15 with T1 2 KB (16 KB: as 8 KB). Into L1, the few fill
 * buffers cap how far ahead it can reach. The Q6_K/Q4_K head matvecs use the same (Q6_K head, one
 * thread: 13.3 -> 14.3 GB/s); the F16/BF16/F32 loop needs none (the hardware prefetcher alone
 * gives it ~22 GB/s). */
enum { PF_DIST = 8192 };

/* Block b of a 4-row tile's stream: its rows lie back to back (4 x k_pad / 4 bytes), 128 bytes of
 * that stream per block, fetched PF_DIST ahead. Batched decode steps (tern serve, bench --parallel)
 * read their weights once through the tiles and waited on DRAM without it: tg32 x4 on 2b4t 81.5 /
 * 91.8 -> 103.0 / 107.4 t/s, pp128 307 / 289 -> 318 / 309; x2 60-61 -> 76-80, x3 85-87 -> 108-112
 * once the 2- and 3-token tiles had it too (alternating runs). Non-temporal (NTA) rather than T1
 * since December 2026: the tiles' 131 MB of 2560-column rows from DRAM on 2 threads (alternating,
 * three runs) took 3.05 -> 2.71 ms with 2 tokens and 3.44 -> 3.28 with 4, and tg64 x2 with the
 * certified head went 73.4 -> 79.5 t/s (six rounds), x3 and x4 +1%, pp512 level (265 -> 276, noisy).
 * The one-token rows keep T1: NTA made them 8% slower (2.37 -> 2.58 ms). */
TERN_INLINE void tile_prefetch(const uint8_t *w, int64_t b) {
    _mm_prefetch((const char *)(w + 128 * b + PF_DIST), _MM_HINT_NTA);
    _mm_prefetch((const char *)(w + 128 * b + PF_DIST + 64), _MM_HINT_NTA);
}

/* Decode: one row against one token, left unreduced (lanes as in reduce16). A single accumulator
 * would chain every vpdpbusd on the one before it (a few cycles of latency each), capping one core
 * at ~11 GB/s of weights; four independent chains over two blocks per step keep the loads, not the
 * latency, the limit. */
TERN_INLINE __m512i ternary_row_acc(const uint8_t *w, const int8_t *q, int64_t k_pad) {
    const __m512i mask = _mm512_inserti64x4(_mm512_set1_epi8(0x0c), _mm256_set1_epi8(0x03), 1);
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    const int64_t n_blk = k_pad / 128;
    int64_t b = 0;
    for (; b + 2 <= n_blk; b += 2) {
        _mm_prefetch((const char *)(w + 32 * b + PF_DIST), _MM_HINT_T1);
        const __m512i r0 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w + 32 * b)));
        const __m512i r1 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w + 32 * b + 32)));
        const int8_t *qb = q + 128 * b;
        a0 =
            _mm512_dpbusd_epi32(a0, _mm512_and_si512(_mm512_srli_epi16(r0, 4), mask), _mm512_loadu_si512(qb));
        a1 = _mm512_dpbusd_epi32(a1, _mm512_and_si512(r0, mask), _mm512_loadu_si512(qb + 64));
        a2 = _mm512_dpbusd_epi32(a2, _mm512_and_si512(_mm512_srli_epi16(r1, 4), mask),
                                 _mm512_loadu_si512(qb + 128));
        a3 = _mm512_dpbusd_epi32(a3, _mm512_and_si512(r1, mask), _mm512_loadu_si512(qb + 192));
    }
    if (b < n_blk) {
        const __m512i r0 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w + 32 * b)));
        const int8_t *qb = q + 128 * b;
        a0 =
            _mm512_dpbusd_epi32(a0, _mm512_and_si512(_mm512_srli_epi16(r0, 4), mask), _mm512_loadu_si512(qb));
        a1 = _mm512_dpbusd_epi32(a1, _mm512_and_si512(r0, mask), _mm512_loadu_si512(qb + 64));
    }
    return _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3));
}

/* Up to 16 consecutive rows against one token: lane i = the dot of row i. The rows are still read
 * one after another (one linear stream), but 16 share one reduction tree and, in the caller, one
 * vector epilogue: per-row horizontal sums and scalar divides cost as much as the row itself at
 * K = 2560 (640 bytes). */
static __m512i ternary_rows16(const uint8_t *w, int64_t row_bytes, const int8_t *q, int64_t k_pad, int n) {
    __m512i acc[16];
    for (int i = 0; i < 16; i++)
        acc[i] = i < n ? ternary_row_acc(w + i * row_bytes, q, k_pad) : _mm512_setzero_si512();
    return reduce16(acc);
}

/* Prefill tile: TR rows x TT tokens. 2 x 8 (half the unpack work per product) measured ~30% slower:
 * gcc folds every q load into its vpdpbusd, so the loads (one zmm per cycle) become the limit; with
 * its q loads kept in registers it still ran decode steps of 8 sequences at 0.77x two 4 x 4 passes. */
enum { TR = 4, TT = 4 };

/* The 4-row tiles of T = 2, 3 or 4 tokens (decode steps of 2-4 sequences, prompts; the 2- and
 * 3-token tiles take a batch's last tokens, a last single token the decode rows): the integer dots
 * sum c*q of 4 rows x T tokens in one vector, lane TR * t + r (lanes of tokens past T zero). The 16
 * accumulators are named: over an array, gcc copies accumulators between registers and spills
 * some every block (188 -> 203 GMAC/s at K=2560 on one Zen 4 core once named; clang compiles both
 * well). The 2- and 3-token tiles were written over an array until December 2026: named, they ran
 * 259-276 -> 328-342 and 300-314 -> 388-406 GMAC/s (one Zen 5 core, 256 rows in L2). A tile stays a
 * call of its own: inlined into the row loop, gcc 12 spilled accumulators to the stack every block
 * and prefill fell to 0.67x (pp512 284 -> 192 t/s). TOKENS lists TERN_TOKEN(t) for t < T. */
#define TERN_TILE16_FN(T, TOKENS)                                                                            \
    static __m512i ternary_tile16_##T(const uint8_t *w, int64_t row_bytes, const int8_t *q, int64_t k_pad) { \
        const __m512i mask = _mm512_inserti64x4(_mm512_set1_epi8(0x0c), _mm256_set1_epi8(0x03), 1);          \
        const __m512i z = _mm512_setzero_si512();                                                            \
        __m512i a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z;                      \
        __m512i a20 = z, a21 = z, a22 = z, a23 = z, a30 = z, a31 = z, a32 = z, a33 = z;                      \
        const uint8_t *w0 = w, *w1 = w + row_bytes, *w2 = w + 2 * row_bytes, *w3 = w + 3 * row_bytes;        \
        for (int64_t b = 0; b < k_pad / 128; b++) {                                                          \
            tile_prefetch(w, b);                                                                             \
            TERN_UNPACK(0)                                                                                   \
            TERN_UNPACK(1)                                                                                   \
            TERN_UNPACK(2)                                                                                   \
            TERN_UNPACK(3)                                                                                   \
            TOKENS                                                                                           \
        }                                                                                                    \
        const __m512i acc[16] = {a00, a01, a02, a03, a10, a11, a12, a13,                                     \
                                 a20, a21, a22, a23, a30, a31, a32, a33};                                    \
        return reduce16(acc);                                                                                \
    }
#define TERN_UNPACK(r)                                                                                       \
    const __m512i raw##r = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w##r + 32 * b)));     \
    const __m512i wa##r = _mm512_and_si512(_mm512_srli_epi16(raw##r, 4), mask);                              \
    const __m512i wb##r = _mm512_and_si512(raw##r, mask);
#define TERN_TOKEN(t)                                                                                        \
    {                                                                                                        \
        const int8_t *qb = q + t * k_pad + 128 * b;                                                          \
        const __m512i qa = _mm512_loadu_si512(qb), qc = _mm512_loadu_si512(qb + 64);                         \
        a##t##0 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a##t##0, wa0, qa), wb0, qc);                       \
        a##t##1 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a##t##1, wa1, qa), wb1, qc);                       \
        a##t##2 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a##t##2, wa2, qa), wb2, qc);                       \
        a##t##3 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a##t##3, wa3, qa), wb3, qc);                       \
    }
TERN_TILE16_FN(2, TERN_TOKEN(0) TERN_TOKEN(1))
TERN_TILE16_FN(3, TERN_TOKEN(0) TERN_TOKEN(1) TERN_TOKEN(2))
TERN_TILE16_FN(4, TERN_TOKEN(0) TERN_TOKEN(1) TERN_TOKEN(2) TERN_TOKEN(3))
#undef TERN_TOKEN
#undef TERN_UNPACK
#undef TERN_TILE16_FN

typedef __m512i (*ternary_tile16_fn)(const uint8_t *, int64_t, const int8_t *, int64_t);
static const ternary_tile16_fn tiles_full[TT + 1] = {NULL, NULL, ternary_tile16_2, ternary_tile16_3,
                                                     ternary_tile16_4};

/* Rows per chunk in prefill: 64 rows of up to ~1.7 KB stay in L2 while every token tile passes. */
enum { ROW_CHUNK = 64 };

static void avx512_ternary_matmul(float *y, const struct tern_ternary *w, const int8_t *q,
                                  const float *act_scale, const int32_t *sum_q, int64_t n_tok,
                                  int64_t row_begin, int64_t row_end) {
    const float wscale = w->scale, oscale = w->out_scale;
    const __m512 vws = _mm512_set1_ps(wscale), vos = _mm512_set1_ps(oscale);
    const __m512i lane_tok =
        _mm512_srli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 2);
    const int64_t chunk = n_tok == 1 ? row_end - row_begin : ROW_CHUNK;
    for (int64_t c0 = row_begin; c0 < row_end; c0 += chunk) {
        const int64_t c1 = c0 + chunk < row_end ? c0 + chunk : row_end;
        for (int64_t t0 = 0; t0 < n_tok; t0 += TT) {
            const int T = n_tok - t0 < TT ? (int)(n_tok - t0) : TT;
            const int8_t *qt = q + t0 * w->k_pad;
            int32_t sq[16] = {0};
            float as[16];
            for (int t = 0; t < TT; t++)
                as[t] = 1.0f;
            for (int t = 0; t < T; t++) {
                sq[t] = sum_q[t0 + t];
                as[t] = act_scale[t0 + t];
            }
            /* lane TR * t + r: token t's sum q and act scale */
            const __m512i vsq = _mm512_permutexvar_epi32(lane_tok, _mm512_loadu_si512(sq));
            const __m512 vas = _mm512_permutexvar_ps(lane_tok, _mm512_loadu_ps(as));
            int64_t r = c0;
            if (T > 1)
                for (; r + TR <= c1; r += TR) {
                    const __m512i d = _mm512_sub_epi32(
                        tiles_full[T](w->codes + r * w->row_bytes, w->row_bytes, qt, w->k_pad), vsq);
                    const __m512 f =
                        _mm512_mul_ps(_mm512_mul_ps(_mm512_div_ps(_mm512_cvtepi32_ps(d), vas), vws), vos);
                    float out[16];
                    _mm512_storeu_ps(out, f);
                    for (int t = 0; t < T; t++)
                        memcpy(y + (t0 + t) * w->n_out + r, out + TR * t, TR * sizeof(float));
                }
            /* decode, and the rows of a range that do not fill a tile (odd n_out): 16 rows per pass */
            for (; r < c1; r += 16) {
                const int n = c1 - r < 16 ? (int)(c1 - r) : 16;
                for (int t = 0; t < T; t++) {
                    const __m512i d =
                        _mm512_sub_epi32(ternary_rows16(w->codes + r * w->row_bytes, w->row_bytes,
                                                        qt + t * w->k_pad, w->k_pad, n),
                                         _mm512_set1_epi32(sq[t]));
                    const __m512 f = _mm512_mul_ps(
                        _mm512_mul_ps(_mm512_div_ps(_mm512_cvtepi32_ps(d), _mm512_set1_ps(as[t])), vws), vos);
                    _mm512_mask_storeu_ps(y + (t0 + t) * w->n_out + r, (__mmask16)((1u << n) - 1), f);
                }
            }
        }
    }
}

/* The peak probe: 12 independent vpdpbusd zmm chains (latency ~4 cycles against 1-2 per cycle),
 * named (over an array gcc copies every chain between registers each round), each starting from its
 * own value (equal chains are one chain to the compiler). */
static int64_t avx512_dot_peak(int64_t rounds) {
    const __m512i a = _mm512_set1_epi8((char)(rounds | 1)), b = _mm512_set1_epi8(3);
    __m512i c0 = _mm512_set1_epi32(0), c1 = _mm512_set1_epi32(1), c2 = _mm512_set1_epi32(2),
            c3 = _mm512_set1_epi32(3), c4 = _mm512_set1_epi32(4), c5 = _mm512_set1_epi32(5),
            c6 = _mm512_set1_epi32(6), c7 = _mm512_set1_epi32(7), c8 = _mm512_set1_epi32(8),
            c9 = _mm512_set1_epi32(9), c10 = _mm512_set1_epi32(10), c11 = _mm512_set1_epi32(11);
    for (int64_t r = 0; r < rounds; r++) {
        c0 = _mm512_dpbusd_epi32(c0, a, b), c1 = _mm512_dpbusd_epi32(c1, a, b);
        c2 = _mm512_dpbusd_epi32(c2, a, b), c3 = _mm512_dpbusd_epi32(c3, a, b);
        c4 = _mm512_dpbusd_epi32(c4, a, b), c5 = _mm512_dpbusd_epi32(c5, a, b);
        c6 = _mm512_dpbusd_epi32(c6, a, b), c7 = _mm512_dpbusd_epi32(c7, a, b);
        c8 = _mm512_dpbusd_epi32(c8, a, b), c9 = _mm512_dpbusd_epi32(c9, a, b);
        c10 = _mm512_dpbusd_epi32(c10, a, b), c11 = _mm512_dpbusd_epi32(c11, a, b);
    }
    const __m512i all[12] = {c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11};
    __m512i s = all[0];
    for (int i = 1; i < 12; i++)
        s = _mm512_xor_si512(s, all[i]); /* sums could overflow, and gcc reduces them in scalar int */
    atomic_store_explicit(&tern_cpu_peak_sink, _mm512_reduce_or_epi32(s), memory_order_relaxed);
    return rounds * 12 * 64;
}

/* ---- float matvec (head / embedding types) ---- */

TERN_INLINE __m512 load_f16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
TERN_INLINE __m512 load_f16_mask(const uint16_t *p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
TERN_INLINE __m512 load_bf16(const uint16_t *p) {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
TERN_INLINE __m512 load_bf16_mask(const uint16_t *p, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

enum { ELT_F32 = 0, ELT_F16 = 1, ELT_BF16 = 2 };

TERN_INLINE __m512 load_elt(const void *row, int64_t i, int elt) {
    if (elt == ELT_F32)
        return _mm512_loadu_ps((const float *)row + i);
    if (elt == ELT_F16)
        return load_f16((const uint16_t *)row + i);
    return load_bf16((const uint16_t *)row + i);
}
TERN_INLINE __m512 load_elt_mask(const void *row, int64_t i, int elt, __mmask16 m) {
    if (elt == ELT_F32)
        return _mm512_maskz_loadu_ps(m, (const float *)row + i);
    if (elt == ELT_F16)
        return load_f16_mask((const uint16_t *)row + i, m);
    return load_bf16_mask((const uint16_t *)row + i, m);
}

/* One row at a time, two accumulators to hide the FMA latency. Four rows at once (sharing x loads)
 * measured slower from DRAM: one linear stream per thread is what the hardware prefetcher follows
 * best (F16 head, 1 thread: 14.5 GB/s with 4 rows, 16.7 GB/s with 1). */
TERN_INLINE void matvec_plain(float *out, const struct tern_tensor *t, const float *x, int64_t r0, int64_t r1,
                              const int elt) {
    const int64_t n = t->ne0;
    const int64_t n32 = n & ~(int64_t)31;
    const __mmask16 tail_lo = n - n32 >= 16 ? 0xffff : (__mmask16)((1u << (n - n32)) - 1);
    const __mmask16 tail_hi = n - n32 > 16 ? (__mmask16)((1u << (n - n32 - 16)) - 1) : 0;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)t->data + (size_t)r * t->row_bytes;
        __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
        for (int64_t i = 0; i < n32; i += 32) {
            a = _mm512_fmadd_ps(load_elt(row, i, elt), _mm512_loadu_ps(x + i), a);
            b = _mm512_fmadd_ps(load_elt(row, i + 16, elt), _mm512_loadu_ps(x + i + 16), b);
        }
        if (n32 < n) {
            a = _mm512_fmadd_ps(load_elt_mask(row, n32, elt, tail_lo),
                                _mm512_maskz_loadu_ps(tail_lo, x + n32), a);
            b = _mm512_fmadd_ps(load_elt_mask(row, n32 + 16, elt, tail_hi),
                                _mm512_maskz_loadu_ps(tail_hi, x + n32 + 16), b);
        }
        out[r - r0] = _mm512_reduce_add_ps(_mm512_add_ps(a, b));
    }
}

static float half_at(const uint8_t *p) {
    return _cvtsh_ss((unsigned short)(p[0] | (p[1] << 8)));
}

/* Q8_0: 34-byte blocks (f16 d, 32 int8); block sums scaled by d once. Two blocks per step into two
 * accumulators: with one, every block's scaling FMA waited on the previous one, and the certified
 * head's Q8_0 shadow (issue 12) streamed at 12 GB/s on 2 threads where the F16 head reached 15.5;
 * two chains read it in 49% of the F16 head's time (its bytes are 53%). */
TERN_INLINE __m512 q8_0_block(const uint8_t *blk, const float *xb) {
    const __m512 q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2))));
    const __m512 q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 18))));
    return _mm512_fmadd_ps(q1, _mm512_loadu_ps(xb + 16), _mm512_mul_ps(q0, _mm512_loadu_ps(xb)));
}

static void matvec_q8_0(float *out, const struct tern_tensor *t, const float *x, int64_t r0, int64_t r1) {
    const int64_t nb = t->ne0 / 32;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)t->data + (size_t)r * t->row_bytes;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        int64_t b = 0;
        for (; b + 2 <= nb; b += 2) {
            const uint8_t *blk = row + 34 * b;
            a0 = _mm512_fmadd_ps(q8_0_block(blk, x + 32 * b), _mm512_set1_ps(half_at(blk)), a0);
            a1 =
                _mm512_fmadd_ps(q8_0_block(blk + 34, x + 32 * b + 32), _mm512_set1_ps(half_at(blk + 34)), a1);
        }
        if (b < nb)
            a0 = _mm512_fmadd_ps(q8_0_block(row + 34 * b, x + 32 * b), _mm512_set1_ps(half_at(row + 34 * b)),
                                 a0);
        out[r - r0] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    }
}

/* Inputs a pass of matvec_tokens takes (each row read and decoded once for them): passes of 8
 * measured slower than two of 4 (8 x's, 80 KiB at 2560 wide, leave L1: tg32 x8 on 2b4t 79 against
 * 105 tokens/s). */
enum { MT = 4 };

#include "isa_avx512_kquants.h"

static void avx512_matvec(float *out, const struct tern_tensor *t, const float *x, int64_t row_begin,
                          int64_t row_end) {
    switch (t->type) {
    case TERN_TYPE_F32:
        matvec_plain(out, t, x, row_begin, row_end, ELT_F32);
        break;
    case TERN_TYPE_F16:
        matvec_plain(out, t, x, row_begin, row_end, ELT_F16);
        break;
    case TERN_TYPE_BF16:
        matvec_plain(out, t, x, row_begin, row_end, ELT_BF16);
        break;
    case TERN_TYPE_Q8_0:
        matvec_q8_0(out, t, x, row_begin, row_end);
        break;
    case TERN_TYPE_Q6_K:
        q6_k_tokens(&out, t, &x, row_begin, row_end, 1);
        break;
    case TERN_TYPE_Q4_K:
        q4_k_tokens(&out, t, &x, row_begin, row_end, 1);
        break;
    default:
        tern_ref_matvec(out, t, x, row_begin, row_end);
        break;
    }
}

/* ---- float matvec for several inputs (matvec_tokens) ---- */

/* Each row is loaded and decoded once for up to MT inputs (the Q6_K and Q4_K rows above, and
 * below); every input's accumulators see the operations of the one-input loops above in the same
 * order, so each gets the bits matvec gives it alone (2 x MT accumulators + the row's vectors stay
 * in the 32 zmm registers). */

/* Columns [c0, c1) (multiples of 32) of nr rows from row (row_bytes apart) for nt inputs, into the
 * accumulators a and b: every x load serves nr rows, every decoded weight vector nt inputs
 * (2 x nr x nt <= 16 accumulators). pf walks the stream to prefetch, 32 x nr elements a step. The
 * inputs' vectors are loaded once a step and held in registers (the empty asm): left to itself, gcc
 * folds an x load into every FMA that uses it, one per row, and the loads become the limit (F16
 * head, 128256 x 2560 from DRAM, 2 threads, alternating builds: 4 inputs with the column blocks
 * below 17.1 -> 15.4 ms, 3 inputs over 1 row 15.0 -> 13.9). */
TERN_INLINE void plain_span(__m512 a[4][MT], __m512 b[4][MT], const uint8_t *row, size_t row_bytes,
                            int64_t c0, int64_t c1, const float *const *x, const int elt, const int nr,
                            const int nt, const uint8_t *pf) {
    const int64_t eb = elt == ELT_F32 ? 4 : 2;
    for (int64_t i = c0; i < c1; i += 32) {
        for (int l = 0; l < nr * eb / 2; l++)
            _mm_prefetch((const char *)pf + 64 * l, _MM_HINT_T1);
        pf += 32 * nr * eb;
        __m512 w0[4], w1[4], x0[MT], x1[MT];
        for (int j = 0; j < nr; j++) {
            w0[j] = load_elt(row + j * row_bytes, i, elt);
            w1[j] = load_elt(row + j * row_bytes, i + 16, elt);
        }
        for (int k = 0; k < nt; k++) {
            x0[k] = _mm512_loadu_ps(x[k] + i);
            x1[k] = _mm512_loadu_ps(x[k] + i + 16);
            __asm__("" : "+v"(x0[k]), "+v"(x1[k]));
        }
        for (int k = 0; k < nt; k++)
            for (int j = 0; j < nr; j++) {
                a[j][k] = _mm512_fmadd_ps(w0[j], x0[k], a[j][k]);
                b[j][k] = _mm512_fmadd_ps(w1[j], x1[k], b[j][k]);
            }
    }
}

/* The last n % 32 columns of the nr rows, then each row's sum into out[k][o + j] */
TERN_INLINE void plain_finish(float *const *out, int64_t o, __m512 a[4][MT], __m512 b[4][MT],
                              const uint8_t *row, size_t row_bytes, int64_t n, const float *const *x,
                              const int elt, const int nr, const int nt) {
    const int64_t n32 = n & ~(int64_t)31;
    if (n32 < n) {
        const __mmask16 tail_lo = n - n32 >= 16 ? 0xffff : (__mmask16)((1u << (n - n32)) - 1);
        const __mmask16 tail_hi = n - n32 > 16 ? (__mmask16)((1u << (n - n32 - 16)) - 1) : 0;
        for (int j = 0; j < nr; j++) {
            const uint8_t *rj = row + j * row_bytes;
            const __m512 w0 = load_elt_mask(rj, n32, elt, tail_lo),
                         w1 = load_elt_mask(rj, n32 + 16, elt, tail_hi);
            for (int k = 0; k < nt; k++) {
                a[j][k] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(tail_lo, x[k] + n32), a[j][k]);
                b[j][k] = _mm512_fmadd_ps(w1, _mm512_maskz_loadu_ps(tail_hi, x[k] + n32 + 16), b[j][k]);
            }
        }
    }
    for (int j = 0; j < nr; j++)
        for (int k = 0; k < nt; k++)
            out[k][o + j] = _mm512_reduce_add_ps(_mm512_add_ps(a[j][k], b[j][k]));
}

/* nr rows for nt inputs, each row whole */
TERN_INLINE void plain_rows_tokens(float *const *out, int64_t o, const uint8_t *row, size_t row_bytes,
                                   int64_t n, const float *const *x, const int elt, const int nr,
                                   const int nt) {
    __m512 a[4][MT], b[4][MT];
    for (int j = 0; j < nr; j++)
        for (int k = 0; k < nt; k++)
            a[j][k] = b[j][k] = _mm512_setzero_ps();
    plain_span(a, b, row, row_bytes, 0, n & ~(int64_t)31, x, elt, nr, nt, row + PF_DIST);
    plain_finish(out, o, a, b, row, row_bytes, n, x, elt, nr, nt);
}

/* Four inputs' x (40 KB at 2560 wide) and the rows streaming past do not fit in L1 together, so with
 * four inputs GROUP_ROWS rows go through in column blocks of COL_BLOCK (the four inputs' block, 5
 * KB, stays in L1), nr rows at a time, their accumulators waiting in acc between blocks: each sees
 * the operations of plain_rows_tokens in the same order. The next group is prefetched as one linear
 * stream at the pace this one is read. F16 head, 4 inputs, 2 threads, 128256 x 2560 from DRAM
 * (alternating builds, medians of 8): 20.9 -> 15.4 ms with the x registers above; 8 rows a group
 * or 640-column blocks measured slower, 32 rows or 256 columns level. */
enum { GROUP_ROWS = 16, COL_BLOCK = 320 };

/* a, b <- rows p .. p + nr - 1 of a group's waiting accumulators, or zeros before the first block */
TERN_INLINE void group_acc_load(__m512 a[4][MT], __m512 b[4][MT], __m512 acc[][2][MT], int p, bool first,
                                const int nr, const int nt) {
    for (int j = 0; j < nr; j++)
        for (int k = 0; k < nt; k++) {
            a[j][k] = first ? _mm512_setzero_ps() : acc[p + j][0][k];
            b[j][k] = first ? _mm512_setzero_ps() : acc[p + j][1][k];
        }
}

TERN_INLINE void plain_group_tokens(float *const *out, int64_t o, const uint8_t *row, size_t row_bytes,
                                    int64_t n, const float *const *x, const int elt, const int nr,
                                    const int nt) {
    const int64_t n32 = n & ~(int64_t)31, eb = elt == ELT_F32 ? 4 : 2;
    __m512 acc[GROUP_ROWS][2][MT];
    const uint8_t *pf = row + GROUP_ROWS * row_bytes;
    for (int64_t c0 = 0; c0 < n32; c0 += COL_BLOCK) {
        const int64_t c1 = c0 + COL_BLOCK < n32 ? c0 + COL_BLOCK : n32;
        for (int p = 0; p < GROUP_ROWS; p += nr) {
            __m512 a[4][MT], b[4][MT];
            group_acc_load(a, b, acc, p, c0 == 0, nr, nt);
            plain_span(a, b, row + p * row_bytes, row_bytes, c0, c1, x, elt, nr, nt, pf);
            pf += (c1 - c0) * nr * eb;
            for (int j = 0; j < nr; j++)
                for (int k = 0; k < nt; k++) {
                    acc[p + j][0][k] = a[j][k];
                    acc[p + j][1][k] = b[j][k];
                }
        }
    }
    for (int p = 0; p < GROUP_ROWS; p += nr) {
        __m512 a[4][MT], b[4][MT];
        group_acc_load(a, b, acc, p, n32 == 0, nr, nt);
        plain_finish(out, o + p, a, b, row + p * row_bytes, row_bytes, n, x, elt, nr, nt);
    }
}

TERN_INLINE void q8_0_row_tokens(float *const *out, int64_t o, const uint8_t *row, int64_t nb,
                                 const float *const *x, const int nt) {
    __m512 a0[MT], a1[MT];
    for (int k = 0; k < nt; k++)
        a0[k] = a1[k] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b += 2) {
        const uint8_t *blk = row + 34 * b;
        _mm_prefetch((const char *)blk + PF_DIST, _MM_HINT_T1);
        const __m512 p0 =
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2))));
        const __m512 p1 =
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 18))));
        const __m512 dp = _mm512_set1_ps(half_at(blk));
        for (int k = 0; k < nt; k++) {
            const float *xb = x[k] + 32 * b;
            a0[k] = _mm512_fmadd_ps(
                _mm512_fmadd_ps(p1, _mm512_loadu_ps(xb + 16), _mm512_mul_ps(p0, _mm512_loadu_ps(xb))), dp,
                a0[k]);
        }
        if (b + 1 == nb)
            break;
        const __m512 q0 =
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 36))));
        const __m512 q1 =
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 52))));
        const __m512 dq = _mm512_set1_ps(half_at(blk + 34));
        for (int k = 0; k < nt; k++) {
            const float *xb = x[k] + 32 * b + 32;
            a1[k] = _mm512_fmadd_ps(
                _mm512_fmadd_ps(q1, _mm512_loadu_ps(xb + 16), _mm512_mul_ps(q0, _mm512_loadu_ps(xb))), dq,
                a1[k]);
        }
    }
    for (int k = 0; k < nt; k++)
        out[k][o] = _mm512_reduce_add_ps(_mm512_add_ps(a0[k], a1[k]));
}

/* rows [r0, r1) of an F32/F16/BF16 tensor for nt inputs, NR rows at a time (NR and nt constants
 * after inlining), in groups for MT inputs */
TERN_INLINE void plain_tokens(float *const *out, const struct tern_tensor *t, const float *const *x,
                              int64_t r0, int64_t r1, const int elt, const int NR, const int nt) {
    int64_t r = r0;
    if (nt == MT)
        for (; r + GROUP_ROWS <= r1; r += GROUP_ROWS)
            plain_group_tokens(out, r - r0, (const uint8_t *)t->data + (size_t)r * t->row_bytes, t->row_bytes,
                               t->ne0, x, elt, NR, nt);
    for (; r + NR <= r1; r += NR)
        plain_rows_tokens(out, r - r0, (const uint8_t *)t->data + (size_t)r * t->row_bytes, t->row_bytes,
                          t->ne0, x, elt, NR, nt);
    for (; r < r1; r++)
        plain_rows_tokens(out, r - r0, (const uint8_t *)t->data + (size_t)r * t->row_bytes, t->row_bytes,
                          t->ne0, x, elt, 1, nt);
}

/* rows [r0, r1) for nt <= MT inputs (nt a constant after inlining). Plain rows: four at a time for
 * one input, two for two or four, one for three (alternating builds, F16 head from DRAM, 2 threads:
 * two inputs over 4 rows 16.0 ms against 14.5 over 2; three over 2 rows 14.2 against 13.4 over 1). */
TERN_INLINE void rows_tokens(float *const *out, const struct tern_tensor *t, const float *const *x,
                             int64_t r0, int64_t r1, const int nt) {
    const int nr = nt == 1 ? 4 : nt == 3 ? 1 : 2;
    switch (t->type) {
    case TERN_TYPE_F32:
        plain_tokens(out, t, x, r0, r1, ELT_F32, nr, nt);
        break;
    case TERN_TYPE_F16:
        plain_tokens(out, t, x, r0, r1, ELT_F16, nr, nt);
        break;
    case TERN_TYPE_BF16:
        plain_tokens(out, t, x, r0, r1, ELT_BF16, nr, nt);
        break;
    case TERN_TYPE_Q6_K:
        q6_k_tokens(out, t, x, r0, r1, nt);
        break;
    case TERN_TYPE_Q4_K:
        q4_k_tokens(out, t, x, r0, r1, nt);
        break;
    default: /* TERN_TYPE_Q8_0 */
        for (int64_t r = r0; r < r1; r++)
            q8_0_row_tokens(out, r - r0, (const uint8_t *)t->data + (size_t)r * t->row_bytes, t->ne0 / 32, x,
                            nt);
        break;
    }
}

TERN_MATVEC_TOKENS_FN(avx512_matvec_tokens, avx512_matvec)

/* ---- float ops ---- */

/* 1 / sqrt(mean(v^2) + eps) of v = pre(x, b), which goes into x unless PRE_NONE: squares in f32
 * summed in f64 as the reference (only the summation order differs). */
TERN_INLINE float rms_scale(float *x_out, const float *x, const float *b, int64_t n, float eps,
                            const enum tern_pre_norm pre) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        if (pre == PRE_ADD)
            v = _mm512_add_ps(v, _mm512_loadu_ps(b + i));
        if (pre == PRE_RELU2) {
            const __m512 r = _mm512_max_ps(v, _mm512_setzero_ps());
            v = _mm512_mul_ps(_mm512_mul_ps(r, r), _mm512_loadu_ps(b + i));
        }
        if (pre != PRE_NONE)
            _mm512_storeu_ps(x_out + i, v);
        const __m512 sq = _mm512_mul_ps(v, v);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(sq)));
        s1 = _mm512_add_pd(
            s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(sq), 1))));
    }
    return tern_rms_tail(_mm512_reduce_add_pd(_mm512_add_pd(s0, s1)), x_out, x, b, i, n, eps, pre);
}

static void avx512_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    const __m512 vs = _mm512_set1_ps(rms_scale(NULL, x, NULL, n, eps, PRE_NONE));
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, normed(x, w, vs, i, 0xffff));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(out + i, m, normed(x, w, vs, i, m));
    }
}

/* e^x for x <= 0 (softmax arguments): Cephes-style range reduction and a degree-6 polynomial,
 * scaled by 2^n with vscalefps; relative error ~1e-7, exact 0 far below the f32 range. */
TERN_INLINE __m512 exp_ps(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* silu(g) * u = g / (1 + e^-g) * u, as g s / (1 + e) * u with e = e^-|g| (exp_ps's domain) and s = e
 * where g < 0, else 1: the reference's function to ~1e-7 relative, the same bits for an element
 * wherever it lies in a row (a tail goes through the same vector code, masked). */
TERN_INLINE __m512 silu_mul(__m512 g, __m512 u) {
    const __m512 e = exp_ps(_mm512_or_ps(g, _mm512_set1_ps(-0.0f)));
    const __mmask16 neg = _mm512_cmp_ps_mask(g, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 num = _mm512_mask_mul_ps(g, neg, g, e);
    return _mm512_mul_ps(_mm512_div_ps(num, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

static void avx512_ffn_act(float *out, const float *gate, const float *up, int64_t n, enum tern_ffn_act act) {
    int64_t i = 0;
    if (act == TERN_FFN_SILU) {
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(out + i, silu_mul(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
        if (i < n) {
            const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
            _mm512_mask_storeu_ps(
                out + i, m, silu_mul(_mm512_maskz_loadu_ps(m, gate + i), _mm512_maskz_loadu_ps(m, up + i)));
        }
        return;
    }
    for (; i + 16 <= n; i += 16) {
        const __m512 r = _mm512_max_ps(_mm512_loadu_ps(gate + i), _mm512_setzero_ps());
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(r, r), _mm512_loadu_ps(up + i)));
    }
    if (i < n)
        tern_ref_ffn_act(out + i, gate + i, up + i, n - i, act);
}

TERN_NORM_QUANTIZE_FNS(avx512)

/* A row of K or V into the f16 cache: vcvtps2ph rounds to nearest even as tern_fp32_to_fp16 does,
 * but keeps a NaN's payload bits; NaN lanes become the sign and 0x7fc00000 first, which converts to
 * the sign and 0x7e00, the reference's NaN. */
TERN_INLINE __m256i f16_of(__m512 v) {
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    const __m512 quiet = _mm512_or_ps(_mm512_and_ps(v, _mm512_set1_ps(-0.0f)),
                                      _mm512_castsi512_ps(_mm512_set1_epi32(0x7fc00000)));
    return _mm512_cvtps_ph(_mm512_mask_mov_ps(v, nan, quiet), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

static void avx512_f16_row(uint16_t *dst, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), f16_of(_mm512_loadu_ps(x + i)));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm256_mask_storeu_epi16(dst + i, m, f16_of(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* The reference's table applied to every head with separate multiplies and a subtract (no FMA), as
 * the reference does: bit-identical. */
static void avx512_rope(float *x, int n_head, int head_dim, int n_rot, const float *cs, const float *sn,
                        enum tern_rope_style style) {
    const int half = n_rot / 2;
    if (style != TERN_ROPE_NEOX || half % 16 != 0) {
        tern_ref_rope_apply(x, n_head, head_dim, n_rot, cs, sn, style);
        return;
    }
    for (int h = 0; h < n_head; h++) {
        float *v = x + (int64_t)h * head_dim;
        for (int i = 0; i < half; i += 16) {
            const __m512 c = _mm512_loadu_ps(cs + i), s = _mm512_loadu_ps(sn + i);
            const __m512 x0 = _mm512_loadu_ps(v + i), x1 = _mm512_loadu_ps(v + i + half);
            _mm512_storeu_ps(v + i, _mm512_sub_ps(_mm512_mul_ps(x0, c), _mm512_mul_ps(x1, s)));
            _mm512_storeu_ps(v + i + half, _mm512_add_ps(_mm512_mul_ps(x0, s), _mm512_mul_ps(x1, c)));
        }
    }
}

#include "isa_avx512_attn.h"

#include "isa_avx512_shadow.h"

const struct tern_cpu_kernels tern_cpu_kernels_avx512 = {
    .name = "avx512",
    .quantize_act = avx512_quantize_act,
    .ternary_matmul = avx512_ternary_matmul,
    .matvec = avx512_matvec,
    .matvec_tokens = avx512_matvec_tokens,
    .rmsnorm = avx512_rmsnorm,
    .rope = avx512_rope,
    .attention = attention_entry,
    .ffn_act = avx512_ffn_act,
    .add_norm_quantize = avx512_add_norm_quantize,
    .act_norm_quantize = avx512_act_norm_quantize,
    .f16_row = avx512_f16_row,
    .head_shadow = avx512_head_shadow,
    .shadow_dot = avx512_shadow_dot,
    .dot_peak = avx512_dot_peak,
};
