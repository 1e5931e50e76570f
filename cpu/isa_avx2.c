/* AVX2 kernel tables (AVX2 + FMA + F16C): this file is compiled with those flags (cpu/CMakeLists.txt)
 * and is chosen at run time only on CPUs and OSes that support them. cpu/isa_avxvnni.c compiles it
 * again with AVX-VNNI (the 256-bit VEX vpdpbusd of Intel's AVX2-only client cores) as level
 * "avxvnni"; only the ternary product differs.
 *
 * Ternary product: each 32-byte I2_S block is split into its four bit-pair planes (shift + AND),
 * which are the codes of weights 0..31, 32..63, 64..95, 96..127 in natural q order. maddubs
 * (unsigned codes 0..2 x signed q) cannot saturate: a pair sums to at most 2*2*128 = 512, and the
 * four planes' int16 sums stay within 2048; madd with ones widens to int32. With VNNI, vpdpbusd
 * does both steps in one exact int32 instruction. sum q is subtracted at the end, so
 * acc = sum (c - 1) q is the reference's integer. Decode walks one row at a time (one linear
 * stream per thread); prefill reuses each unpacked weight block for 4 tokens. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "attn_groups.h"
#include "isa.h"
#include "norm_passes.h"
#include "ref.h"
#include "token_passes.h"

#define TERN_INLINE static inline __attribute__((always_inline))

#if defined(TERN_VNNI_TWIN)
/* Tests only (tests/CMakeLists.txt): the avxvnni kernels with the EVEX encoding of the same
 * instruction (AVX-512 VL + VNNI), so CPUs without AVX-VNNI, such as AMD Zen 4, can check them. */
#define DPBUSD256 _mm256_dpbusd_epi32
#define AVX2_TABLE tern_cpu_kernels_avxvnni_twin
#define AVX2_NAME "avxvnni-twin"
#elif defined(TERN_AVXVNNI)
/* The VEX vpdpbusd itself: with _mm256_dpbusd_avx_epi32, gcc 12 copied the eight decode
 * accumulators between registers (and through the stack) every step. */
static inline __attribute__((always_inline)) __m256i dpbusd_vex(__m256i acc, __m256i u, __m256i s) {
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(u), "xm"(s));
    return acc;
}
#define DPBUSD256 dpbusd_vex
#define AVX2_TABLE tern_cpu_kernels_avxvnni
#define AVX2_NAME "avxvnni"
#else
#define AVX2_TABLE tern_cpu_kernels_avx2
#define AVX2_NAME "avx2"
#endif

TERN_INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

TERN_INLINE int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* ---- activation quantization ---- */

/* 8 values from i on of y = x, or of y = (x * scale) * w when w is not NULL: the level's rmsnorm
 * output, recomputed by each pass of the quantization instead of stored. */
TERN_INLINE __m256 normed(const float *x, const float *w, __m256 vs, int64_t i) {
    const __m256 v = _mm256_loadu_ps(x + i);
    return w ? _mm256_mul_ps(_mm256_mul_ps(v, vs), _mm256_loadu_ps(w + i)) : v;
}

TERN_INLINE float normed1(const float *x, const float *w, float scale, int64_t i) {
    return w ? (x[i] * scale) * w[i] : x[i];
}

/* tern_ref_quantize_act of y (see normed) */
TERN_INLINE float quantize_normed(int8_t *q, const float *x, const float *w, float scale, int64_t n,
                                  int64_t n_pad, int32_t *sum_q) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 vn = _mm256_set1_ps(scale);
    __m256 vmax = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) /* max(a, b) returns b when a is NaN, like fmaxf(m, NaN) = m */
        vmax = _mm256_max_ps(_mm256_and_ps(normed(x, w, vn, i), absmask), vmax);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float m = _mm_cvtss_f32(m4);
    for (; i < n; i++)
        m = fmaxf(m, fabsf(normed1(x, w, scale, i)));
    const float s = 127.0f / fmaxf(m, 1e-5f);
    const __m256 vs = _mm256_set1_ps(s);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m256i ones8 = _mm256_set1_epi8(1);
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256i vsum = _mm256_setzero_si256();
    for (i = 0; i + 32 <= n; i += 32) {
        /* cvtps_epi32 rounds half to even under the default MXCSR; the saturating packs clamp to
         * [-128, 127] (NaN gives INT_MIN -> -128, as the reference's fmaxf/fminf do) */
        const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(normed(x, w, vn, i), vs));
        const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(normed(x, w, vn, i + 8), vs));
        const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(normed(x, w, vn, i + 16), vs));
        const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(normed(x, w, vn, i + 24), vs));
        const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        const __m256i b = _mm256_permutevar8x32_epi32(p, perm);
        _mm256_storeu_si256((__m256i *)(q + i), b);
        vsum = _mm256_add_epi32(vsum, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, b), ones16));
    }
    int32_t sum = hsum_epi32(vsum);
    for (; i < n; i++) {
        float v = nearbyintf(normed1(x, w, scale, i) * s);
        v = fminf(fmaxf(v, -128.0f), 127.0f);
        q[i] = (int8_t)v;
        sum += q[i];
    }
    if (n_pad > n)
        memset(q + n, 0, (size_t)(n_pad - n));
    if (sum_q)
        *sum_q = sum;
    return s;
}

static float avx2_quantize_act(int8_t *q, const float *x, int64_t n, int64_t n_pad, int32_t *sum_q) {
    return quantize_normed(q, x, NULL, 1.0f, n, n_pad, sum_q);
}

/* ---- ternary matmul ---- */

enum { PF_DIST = 8192 }; /* into L2, as isa_avx512.c measured */

#ifdef DPBUSD256
/* Block b of a row as four planes, two of them scaled by 4 (one shift instead of three):
 * c[0] = 4 x the codes of weights 0..31, c[1] = those of 32..63, c[2] = 4 x those of 64..95,
 * c[3] = those of 96..127 (bits 7:6 and 3:2 stay two bits up, as isa_avx512.c does). */
TERN_INLINE void unpack_block(__m256i c[4], const uint8_t *w, int64_t b) {
    const __m256i m03 = _mm256_set1_epi8(0x03), m0c = _mm256_set1_epi8(0x0c);
    const __m256i raw = _mm256_loadu_si256((const __m256i *)(w + 32 * b));
    const __m256i hi = _mm256_srli_epi16(raw, 4);
    c[0] = _mm256_and_si256(hi, m0c);
    c[1] = _mm256_and_si256(hi, m03);
    c[2] = _mm256_and_si256(raw, m0c);
    c[3] = _mm256_and_si256(raw, m03);
}

/* Prefill: one row x T tokens (T <= 4) of integer dots sum c*q (codes 0..2, before the sum-q
 * correction), left unreduced: acc[t] holds token t's partial sums. Token t's planes scaled by 4
 * and by 1 go to two accumulators (8 chains against vpdpbusd's latency of 4-5 cycles at 2 per
 * cycle); the x4 one is shifted back at the end (exact: all its products are multiples of 4). */
TERN_INLINE void ternary_row_acc(__m256i acc[4], const uint8_t *w, const int8_t *q, int64_t k_pad,
                                 const int T) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    const int64_t n_blk = k_pad / 128;
    for (int64_t b = 0; b < n_blk; b++) {
        if (b % 2 == 0) /* the row stream, as decode fetches it (batched decode steps take this) */
            _mm_prefetch((const char *)(w + 32 * b + PF_DIST), _MM_HINT_T1);
        __m256i c[4];
        unpack_block(c, w, b);
        const int8_t *qb = q + 128 * b;
#define DP(acc, plane, t)                                                                                    \
    acc = DPBUSD256(acc, c[plane], _mm256_loadu_si256((const __m256i *)(qb + (t)*k_pad + 32 * (plane))))
        DP(a0, 0, 0), DP(a0, 2, 0), DP(a1, 1, 0), DP(a1, 3, 0);
        if (T >= 2)
            DP(a2, 0, 1), DP(a2, 2, 1), DP(a3, 1, 1), DP(a3, 3, 1);
        if (T >= 3)
            DP(a4, 0, 2), DP(a4, 2, 2), DP(a5, 1, 2), DP(a5, 3, 2);
        if (T == 4)
            DP(a6, 0, 3), DP(a6, 2, 3), DP(a7, 1, 3), DP(a7, 3, 3);
#undef DP
    }
    acc[0] = _mm256_add_epi32(_mm256_srai_epi32(a0, 2), a1);
    acc[1] = _mm256_add_epi32(_mm256_srai_epi32(a2, 2), a3);
    acc[2] = _mm256_add_epi32(_mm256_srai_epi32(a4, 2), a5);
    acc[3] = _mm256_add_epi32(_mm256_srai_epi32(a6, 2), a7);
}

/* Decode: one row against one token, left unreduced. Each plane is masked in place (0xc0, 0x30,
 * 0x0c, 0x03: the codes times 64, 16, 4, 1; no shifts, four ops a block) into its own accumulator,
 * two blocks a step (8 chains: one per plane, as before, left the row waiting on vpdpbusd's
 * latency), and each plane is shifted back at the end (exact: its products are multiples of its
 * scale; |sum| <= 2^16 per lane and block, far from the int32 limit). The q loads (four a block,
 * two per cycle) are now the limit: two rows sharing them ran ~20% faster from L1 but, as two
 * interleaved streams, ~25% slower from DRAM. */
TERN_INLINE __m256i ternary_row_dec(const uint8_t *w, const int8_t *q, int64_t k_pad) {
    const __m256i m0 = _mm256_set1_epi8((char)0xc0), m1 = _mm256_set1_epi8(0x30), m2 = _mm256_set1_epi8(0x0c),
                  m3 = _mm256_set1_epi8(0x03);
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    const int64_t n_blk = k_pad / 128;
#define DP(acc, raw, qb, plane)                                                                              \
    acc = DPBUSD256(acc, _mm256_and_si256(raw, m##plane),                                                    \
                    _mm256_loadu_si256((const __m256i *)((qb) + 32 * (plane))))
    /* an odd block first: after the loop, gcc copied four accumulators between registers every step */
    int64_t b = n_blk % 2;
    if (b) {
        const __m256i r0 = _mm256_loadu_si256((const __m256i *)w);
        DP(a0, r0, q, 0), DP(a1, r0, q, 1), DP(a2, r0, q, 2), DP(a3, r0, q, 3);
    }
    for (; b < n_blk; b += 2) {
        _mm_prefetch((const char *)(w + 32 * b + PF_DIST), _MM_HINT_T1);
        const __m256i r0 = _mm256_loadu_si256((const __m256i *)(w + 32 * b));
        const __m256i r1 = _mm256_loadu_si256((const __m256i *)(w + 32 * b + 32));
        const int8_t *qb = q + 128 * b;
        DP(a0, r0, qb, 0), DP(a1, r0, qb, 1), DP(a2, r0, qb, 2), DP(a3, r0, qb, 3);
        DP(a4, r1, qb + 128, 0), DP(a5, r1, qb + 128, 1), DP(a6, r1, qb + 128, 2), DP(a7, r1, qb + 128, 3);
    }
#undef DP
    const __m256i hi = _mm256_add_epi32(_mm256_srai_epi32(_mm256_add_epi32(a0, a4), 6),
                                        _mm256_srai_epi32(_mm256_add_epi32(a1, a5), 4));
    const __m256i lo =
        _mm256_add_epi32(_mm256_srai_epi32(_mm256_add_epi32(a2, a6), 2), _mm256_add_epi32(a3, a7));
    return _mm256_add_epi32(hi, lo);
}
#else
/* Block b of a row split into its four bit-pair planes c[0..3] (the codes of weights 0..31,
 * 32..63, 64..95, 96..127). */
TERN_INLINE void unpack_block(__m256i c[4], const uint8_t *w, int64_t b) {
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i raw = _mm256_loadu_si256((const __m256i *)(w + 32 * b));
    c[0] = _mm256_and_si256(_mm256_srli_epi16(raw, 6), m3);
    c[1] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m3);
    c[2] = _mm256_and_si256(_mm256_srli_epi16(raw, 2), m3);
    c[3] = _mm256_and_si256(raw, m3);
}

/* Prefill: one row x T tokens (T <= 4) of integer dots sum c*q (codes 0..2, before the sum-q
 * correction), left unreduced: acc[t] holds token t's partial sums. Each block's four maddubs sums
 * per token are at most 4 * 2 * 2 * 128 = 2048 in magnitude per int16 lane, so up to 16 blocks add
 * in int16 exactly; they are widened (madd with ones) once per 8 blocks. */
enum { I16_BLOCKS = 8 };
TERN_INLINE void ternary_row_acc(__m256i acc[4], const uint8_t *w, const int8_t *q, int64_t k_pad,
                                 const int T) {
    const __m256i ones16 = _mm256_set1_epi16(1);
    for (int t = 0; t < 4; t++)
        acc[t] = _mm256_setzero_si256();
    const int64_t n_blk = k_pad / 128;
    for (int64_t b0 = 0; b0 < n_blk; b0 += I16_BLOCKS) {
        const int64_t b1 = b0 + I16_BLOCKS < n_blk ? b0 + I16_BLOCKS : n_blk;
        __m256i s[4];
        for (int t = 0; t < T; t++)
            s[t] = _mm256_setzero_si256();
        for (int64_t b = b0; b < b1; b++) {
            if (b % 2 == 0) /* the row stream, as decode fetches it (batched decode steps take this) */
                _mm_prefetch((const char *)(w + 32 * b + PF_DIST), _MM_HINT_T1);
            __m256i c[4];
            unpack_block(c, w, b);
            for (int t = 0; t < T; t++) {
                const int8_t *qb = q + t * k_pad + 128 * b;
                const __m256i p01 = _mm256_add_epi16(
                    _mm256_maddubs_epi16(c[0], _mm256_loadu_si256((const __m256i *)qb)),
                    _mm256_maddubs_epi16(c[1], _mm256_loadu_si256((const __m256i *)(qb + 32))));
                const __m256i p23 = _mm256_add_epi16(
                    _mm256_maddubs_epi16(c[2], _mm256_loadu_si256((const __m256i *)(qb + 64))),
                    _mm256_maddubs_epi16(c[3], _mm256_loadu_si256((const __m256i *)(qb + 96))));
                s[t] = _mm256_add_epi16(s[t], _mm256_add_epi16(p01, p23));
            }
        }
        for (int t = 0; t < T; t++)
            acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(s[t], ones16));
    }
}

/* One decode block: the planes of weights 32..63 and 96..127 (codes x1) and of 0..31 and 64..95
 * (codes x4, bits 7:6 and 3:2 left two bits up: one shift instead of three) into their int16 sums. */
TERN_INLINE void dec_block(__m256i *s1, __m256i *s4, __m256i raw, const int8_t *qb) {
    const __m256i m03 = _mm256_set1_epi8(0x03), m0c = _mm256_set1_epi8(0x0c);
    const __m256i hi = _mm256_srli_epi16(raw, 4);
#define MUL(c, off) _mm256_maddubs_epi16(c, _mm256_loadu_si256((const __m256i *)(qb + (off))))
    *s1 = _mm256_add_epi16(
        *s1, _mm256_add_epi16(MUL(_mm256_and_si256(hi, m03), 32), MUL(_mm256_and_si256(raw, m03), 96)));
    *s4 = _mm256_add_epi16(
        *s4, _mm256_add_epi16(MUL(_mm256_and_si256(hi, m0c), 0), MUL(_mm256_and_si256(raw, m0c), 64)));
#undef MUL
}

/* Decode: one row against one token, left unreduced. Per block 13 ops (a shift, four ANDs, four
 * maddubs, four int16 adds; the three-shift split took 15). The x4 sums are at most 2 * 2 * 8 *
 * 128 = 4096 a block in magnitude (8 blocks: -32768 .. 32512, exact in int16), widened once per 8
 * blocks and shifted back at the end (exact: multiples of 4). The row is prefetched non-temporal:
 * the median one-token step of 2B-4T (full head) took 0.9897, 0.9955, 0.9915, 0.9892, 0.9957 and
 * 0.9916 of its time with T1 (in-process A/B runs, docs/decode.md); the AVX-VNNI row, lighter on the
 * ALUs, measured level (0.998-1.002) and keeps T1. */
TERN_INLINE __m256i ternary_row_dec(const uint8_t *w, const int8_t *q, int64_t k_pad) {
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256i acc1 = _mm256_setzero_si256(), acc4 = acc1;
    const int64_t n_blk = k_pad / 128;
    for (int64_t b0 = 0; b0 < n_blk; b0 += 8) {
        const int64_t b1 = b0 + 8 < n_blk ? b0 + 8 : n_blk;
        __m256i s1 = _mm256_setzero_si256(), s4 = s1;
        int64_t b = b0;
        for (; b + 2 <= b1; b += 2) {
            _mm_prefetch((const char *)(w + 32 * b + PF_DIST), _MM_HINT_NTA);
            dec_block(&s1, &s4, _mm256_loadu_si256((const __m256i *)(w + 32 * b)), q + 128 * b);
            dec_block(&s1, &s4, _mm256_loadu_si256((const __m256i *)(w + 32 * b + 32)), q + 128 * b + 128);
        }
        if (b < b1)
            dec_block(&s1, &s4, _mm256_loadu_si256((const __m256i *)(w + 32 * b)), q + 128 * b);
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(s1, ones16));
        acc4 = _mm256_add_epi32(acc4, _mm256_madd_epi16(s4, ones16));
    }
    return _mm256_add_epi32(acc1, _mm256_srai_epi32(acc4, 2));
}

#endif

/* lane i = sum of v[i] (i < 4) */
TERN_INLINE __m128i reduce4_epi32(const __m256i v[4]) {
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* Prefill: one row x T tokens, lane t = token t's dot. */
#define TERN_ROW_FN(T)                                                                                       \
    static __m128i ternary_row_##T(const uint8_t *w, const int8_t *q, int64_t k_pad) {                       \
        __m256i acc[4];                                                                                      \
        ternary_row_acc(acc, w, q, k_pad, T);                                                                \
        return reduce4_epi32(acc);                                                                           \
    }
TERN_ROW_FN(1)
TERN_ROW_FN(2)
TERN_ROW_FN(3)
TERN_ROW_FN(4)
typedef __m128i (*ternary_row_fn)(const uint8_t *, const int8_t *, int64_t);
static const ternary_row_fn rows_t[5] = {NULL, ternary_row_1, ternary_row_2, ternary_row_3, ternary_row_4};

/* Decode: up to 8 consecutive rows against one token, lane i = row i's dot. The rows are read one
 * after another (one linear stream per thread: interleaved row streams measured slower from DRAM,
 * see isa_avx512.c); the 8 share one reduction tree and, in the caller, one vector epilogue. */
static __m256i ternary_rows8(const uint8_t *w, int64_t row_bytes, const int8_t *q, int64_t k_pad, int n) {
    __m256i v[8];
    for (int i = 0; i < 8; i++)
        v[i] = i < n ? ternary_row_dec(w + i * row_bytes, q, k_pad) : _mm256_setzero_si256();
    const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

enum { ROW_CHUNK = 64 };

static void avx2_ternary_matmul(float *y, const struct tern_ternary *w, const int8_t *q,
                                const float *act_scale, const int32_t *sum_q, int64_t n_tok,
                                int64_t row_begin, int64_t row_end) {
    const float wscale = w->scale, oscale = w->out_scale;
    if (n_tok == 1) {
        const __m256i vsq = _mm256_set1_epi32(sum_q[0]);
        const __m256 vas = _mm256_set1_ps(act_scale[0]), vws = _mm256_set1_ps(wscale),
                     vos = _mm256_set1_ps(oscale);
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        for (int64_t r = row_begin; r < row_end; r += 8) {
            const int n = row_end - r < 8 ? (int)(row_end - r) : 8;
            const __m256i d = _mm256_sub_epi32(
                ternary_rows8(w->codes + r * w->row_bytes, w->row_bytes, q, w->k_pad, n), vsq);
            const __m256 f =
                _mm256_mul_ps(_mm256_mul_ps(_mm256_div_ps(_mm256_cvtepi32_ps(d), vas), vws), vos);
            _mm256_maskstore_ps(y + r, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane), f);
        }
        return;
    }
    for (int64_t c0 = row_begin; c0 < row_end; c0 += ROW_CHUNK) {
        const int64_t c1 = c0 + ROW_CHUNK < row_end ? c0 + ROW_CHUNK : row_end;
        for (int64_t t0 = 0; t0 < n_tok; t0 += 4) {
            const int T = n_tok - t0 < 4 ? (int)(n_tok - t0) : 4;
            const int8_t *qt = q + t0 * w->k_pad;
            int32_t sq[4] = {0, 0, 0, 0};
            float as[4] = {1.0f, 1.0f, 1.0f, 1.0f};
            for (int t = 0; t < T; t++) {
                sq[t] = sum_q[t0 + t];
                as[t] = act_scale[t0 + t];
            }
            /* both 128-bit halves: lane t = token t */
            const __m256i vsq = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)sq));
            const __m256 vas = _mm256_broadcast_ps((const __m128 *)as), vws = _mm256_set1_ps(wscale),
                         vos = _mm256_set1_ps(oscale);
            /* 4 rows share the epilogue: two 256-bit divides instead of four dependent 128-bit ones
             * (the divide's latency showed as 7.7% of AVX2 prefill), then a 4x4 transpose so each
             * token stores its 4 rows at once */
            for (int64_t r = c0; r < c1; r += 4) {
                const int R = c1 - r < 4 ? (int)(c1 - r) : 4;
                __m128i d[4];
                for (int i = 0; i < 4; i++)
                    d[i] = i < R ? rows_t[T](w->codes + (r + i) * w->row_bytes, qt, w->k_pad)
                                 : _mm_setzero_si128();
                __m256 f[2];
                for (int i = 0; i < 2; i++) {
                    const __m256i di = _mm256_sub_epi32(_mm256_set_m128i(d[2 * i + 1], d[2 * i]), vsq);
                    f[i] = _mm256_mul_ps(_mm256_mul_ps(_mm256_div_ps(_mm256_cvtepi32_ps(di), vas), vws), vos);
                }
                __m128 o0 = _mm256_castps256_ps128(f[0]), o1 = _mm256_extractf128_ps(f[0], 1),
                       o2 = _mm256_castps256_ps128(f[1]), o3 = _mm256_extractf128_ps(f[1], 1);
                _MM_TRANSPOSE4_PS(o0, o1, o2, o3); /* now o_t = rows r .. r + 3 of token t */
                const __m128 o[4] = {o0, o1, o2, o3};
                for (int t = 0; t < T; t++) {
                    float *yt = y + (t0 + t) * w->n_out + r;
                    if (R == 4)
                        _mm_storeu_ps(yt, o[t]);
                    else
                        _mm_maskstore_ps(yt, _mm_cmpgt_epi32(_mm_set1_epi32(R), _mm_setr_epi32(0, 1, 2, 3)),
                                         o[t]);
                }
            }
        }
    }
}

/* The peak probe: 12 independent chains of the ternary product's multiply (vpdpbusd ymm with VNNI,
 * else maddubs, whose int16 pair sums the kernel still has to widen: an upper bound there), named
 * (over an array gcc copies every chain between registers each round), each from its own value
 * (equal chains are one chain to the compiler). */
#ifdef DPBUSD256
#define PEAK_OP(c) c = DPBUSD256(c, b, b)
#else
#define PEAK_OP(c) c = _mm256_maddubs_epi16(c, b) /* saturates: only the rate counts */
#endif
static int64_t avx2_dot_peak(int64_t rounds) {
    const __m256i b = _mm256_set1_epi8((char)(rounds | 1));
    __m256i c0 = _mm256_set1_epi32(0), c1 = _mm256_set1_epi32(1), c2 = _mm256_set1_epi32(2),
            c3 = _mm256_set1_epi32(3), c4 = _mm256_set1_epi32(4), c5 = _mm256_set1_epi32(5),
            c6 = _mm256_set1_epi32(6), c7 = _mm256_set1_epi32(7), c8 = _mm256_set1_epi32(8),
            c9 = _mm256_set1_epi32(9), c10 = _mm256_set1_epi32(10), c11 = _mm256_set1_epi32(11);
    for (int64_t r = 0; r < rounds; r++) {
        PEAK_OP(c0), PEAK_OP(c1), PEAK_OP(c2), PEAK_OP(c3), PEAK_OP(c4), PEAK_OP(c5);
        PEAK_OP(c6), PEAK_OP(c7), PEAK_OP(c8), PEAK_OP(c9), PEAK_OP(c10), PEAK_OP(c11);
    }
#undef PEAK_OP
    const __m256i all[12] = {c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11};
    __m256i s = all[0];
    for (int i = 1; i < 12; i++)
        s = _mm256_xor_si256(s, all[i]);
    atomic_store_explicit(&tern_cpu_peak_sink, hsum_epi32(s), memory_order_relaxed);
    return rounds * 12 * 32;
}

/* ---- float matvec ---- */

static float half_at(const uint8_t *p) {
    return _cvtsh_ss((unsigned short)(p[0] | (p[1] << 8)));
}

enum { ELT_F32 = 0, ELT_F16 = 1, ELT_BF16 = 2 };

TERN_INLINE __m256 load_elt(const void *row, int64_t i, int elt) {
    if (elt == ELT_F32)
        return _mm256_loadu_ps((const float *)row + i);
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + i));
    if (elt == ELT_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* Row dots for nt <= MT inputs (matvec: one; matvec_tokens: up to four, each row loaded and
 * converted once for all), two accumulators per input (columns i and i + 8 of every 16), the tail
 * past a multiple of 16 columns scalar; an input's bits do not depend on the others beside it. */
enum { MT = 4 };

TERN_INLINE void plain_row_tokens(float *const *out, int64_t o, const uint8_t *row, uint32_t type, int64_t n,
                                  const float *const *x, const int elt, const int nt) {
    const int64_t n16 = n & ~(int64_t)15;
    __m256 a[MT], b[MT];
    for (int k = 0; k < nt; k++)
        a[k] = b[k] = _mm256_setzero_ps();
    const int64_t eb = elt == ELT_F32 ? 4 : 2;
    for (int64_t i = 0; i < n16; i += 16) {
        if (elt == ELT_F32 || i % 32 == 0)
            _mm_prefetch((const char *)row + eb * i + PF_DIST, _MM_HINT_T1);
        const __m256 w0 = load_elt(row, i, elt), w1 = load_elt(row, i + 8, elt);
        for (int k = 0; k < nt; k++) {
            a[k] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[k] + i), a[k]);
            b[k] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[k] + i + 8), b[k]);
        }
    }
    float tail[16];
    if (n16 < n)
        tern_ref_dequant_row(tail, row + (size_t)n16 * (elt == ELT_F32 ? 4 : 2), type, n - n16);
    for (int k = 0; k < nt; k++) {
        float s = hsum_ps(_mm256_add_ps(a[k], b[k]));
        for (int64_t i = n16; i < n; i++)
            s += tail[i - n16] * x[k][i];
        out[k][o] = s;
    }
}

/* One row at a time: one linear stream per thread, prefetched into L2 PF_DIST ahead. Four rows
 * sharing each x load were four interleaved streams: 2560-column F16 rows on 2 threads from DRAM
 * (512 MiB) read 19-21 GB/s per CPU second that way, 21-27 this way (the same bits). Four
 * accumulators per row would lift the one-row rate from L2 (~32 GB/s a core, latency bound with
 * two), but matvec_tokens must give each token the same bits and 4 tokens x 4 accumulators
 * measured 12% slower there. */
TERN_INLINE void matvec_plain(float *out, const struct tern_tensor *t, const float *x, int64_t r0, int64_t r1,
                              const int elt) {
    float *const o[1] = {out};
    for (int64_t r = r0; r < r1; r++)
        plain_row_tokens(o, r - r0, (const uint8_t *)t->data + (size_t)r * t->row_bytes, t->type, t->ne0, &x,
                         elt, 1);
}

/* Q8_0: block sums in two chains of FMAs, blocks alternating between two accumulators, so no FMA
 * waits on more than one before it (one chain of four per block capped the certified head's shadow
 * well below the F16 head's speed per byte). */
TERN_INLINE __m256 q8_0_quarter(const uint8_t *blk, const float *xb, int j) {
    const __m256 qv =
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 2 + 8 * j))));
    return _mm256_mul_ps(qv, _mm256_loadu_ps(xb + 8 * j));
}

TERN_INLINE __m256 q8_0_block(const uint8_t *blk, const float *xb) {
    const __m256 lo = _mm256_add_ps(q8_0_quarter(blk, xb, 0), q8_0_quarter(blk, xb, 1));
    const __m256 hi = _mm256_add_ps(q8_0_quarter(blk, xb, 2), q8_0_quarter(blk, xb, 3));
    return _mm256_add_ps(lo, hi);
}

static void matvec_q8_0(float *out, const struct tern_tensor *t, const float *x, int64_t r0, int64_t r1) {
    const int64_t nb = t->ne0 / 32;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)t->data + (size_t)r * t->row_bytes;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int64_t b = 0;
        for (; b + 2 <= nb; b += 2) {
            const uint8_t *blk = row + 34 * b;
            a0 = _mm256_fmadd_ps(q8_0_block(blk, x + 32 * b), _mm256_set1_ps(half_at(blk)), a0);
            a1 =
                _mm256_fmadd_ps(q8_0_block(blk + 34, x + 32 * b + 32), _mm256_set1_ps(half_at(blk + 34)), a1);
        }
        if (b < nb)
            a0 = _mm256_fmadd_ps(q8_0_block(row + 34 * b, x + 32 * b), _mm256_set1_ps(half_at(row + 34 * b)),
                                 a0);
        out[r - r0] = hsum_ps(_mm256_add_ps(a0, a1));
    }
}

/* Q6_K: quants rebuilt 32 at a time with byte ops into natural element order, then widened to f32
 * per 8 and scaled by d*scale of their 16-element sub-block, as the reference dequantizes; each
 * scaled vector serves every input (nt <= MT, a constant after inlining: matvec takes one, a
 * batched decode step's head up to four), each with its own accumulators (its bits alone). */
TERN_INLINE void q6_k_tokens(float *const *out, const struct tern_tensor *t, const float *const *x,
                             int64_t r0, int64_t r1, const int nt) {
    const int64_t nb = t->ne0 / 256;
    const __m256i m0f = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30), m32 = _mm256_set1_epi8(32);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)t->data + (size_t)r * t->row_bytes;
        __m256 acc0[MT], acc1[MT];
        for (int k = 0; k < nt; k++)
            acc0[k] = acc1[k] = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = row + 210 * b;
            const float d = half_at(blk + 208);
            const int8_t *scales = (const int8_t *)(blk + 192);
            for (int h = 0; h < 2; h++) {
                const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h));
                const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h + 32));
                const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h));
                int8_t qs[128];
                _mm256_storeu_si256(
                    (__m256i *)qs,
                    _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(ql0, m0f),
                                                    _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30)),
                                    m32));
                _mm256_storeu_si256(
                    (__m256i *)(qs + 32),
                    _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(ql1, m0f),
                                                    _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30)),
                                    m32));
                _mm256_storeu_si256(
                    (__m256i *)(qs + 64),
                    _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m0f),
                                                    _mm256_and_si256(qh, m30)),
                                    m32));
                _mm256_storeu_si256(
                    (__m256i *)(qs + 96),
                    _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m0f),
                                                    _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30)),
                                    m32));
                const int64_t xo = 256 * b + 128 * h;
                for (int c = 0; c < 8; c++) {
                    const __m256 dsc = _mm256_set1_ps(d * (float)scales[8 * h + c]);
                    const __m256 w0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
                                                        _mm_loadl_epi64((const __m128i *)(qs + 16 * c)))),
                                                    dsc);
                    const __m256 w1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
                                                        _mm_loadl_epi64((const __m128i *)(qs + 16 * c + 8)))),
                                                    dsc);
                    for (int k = 0; k < nt; k++) {
                        acc0[k] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[k] + xo + 16 * c), acc0[k]);
                        acc1[k] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[k] + xo + 16 * c + 8), acc1[k]);
                    }
                }
            }
        }
        for (int k = 0; k < nt; k++)
            out[k][r - r0] = hsum_ps(_mm256_add_ps(acc0[k], acc1[k]));
    }
}

/* Q4_K: each 8 quants widened and turned into weights (d*sc*q - dmin*m) once for every input, as
 * q6_k_tokens */
TERN_INLINE void q4_k_tokens(float *const *out, const struct tern_tensor *t, const float *const *x,
                             int64_t r0, int64_t r1, const int nt) {
    const int64_t nb = t->ne0 / 256;
    const __m256i m0f = _mm256_set1_epi8(0x0f);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)t->data + (size_t)r * t->row_bytes;
        __m256 acc0[MT], acc1[MT];
        for (int k = 0; k < nt; k++)
            acc0[k] = acc1[k] = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = row + 144 * b;
            const float d = half_at(blk), dmin = half_at(blk + 2);
            for (int g = 0; g < 4; g++) {
                int sc0, mn0, sc1, mn1;
                tern_ref_q4_k_scale_min(2 * g, blk + 4, &sc0, &mn0);
                tern_ref_q4_k_scale_min(2 * g + 1, blk + 4, &sc1, &mn1);
                const __m256 dd[2] = {_mm256_set1_ps(d * (float)sc0), _mm256_set1_ps(d * (float)sc1)};
                const __m256 mm[2] = {_mm256_set1_ps(dmin * (float)mn0), _mm256_set1_ps(dmin * (float)mn1)};
                const __m256i qv = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * g));
                uint8_t qs[64];
                _mm256_storeu_si256((__m256i *)qs, _mm256_and_si256(qv, m0f));
                _mm256_storeu_si256((__m256i *)(qs + 32), _mm256_and_si256(_mm256_srli_epi16(qv, 4), m0f));
                const int64_t xo = 256 * b + 64 * g;
                for (int c = 0; c < 8; c += 2) {
                    const __m256 w0 = _mm256_fmsub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
                                                          _mm_loadl_epi64((const __m128i *)(qs + 8 * c)))),
                                                      dd[c / 4], mm[c / 4]);
                    const __m256 w1 = _mm256_fmsub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(
                                                          (const __m128i *)(qs + 8 * c + 8)))),
                                                      dd[c / 4], mm[c / 4]);
                    for (int k = 0; k < nt; k++) {
                        acc0[k] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[k] + xo + 8 * c), acc0[k]);
                        acc1[k] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[k] + xo + 8 * c + 8), acc1[k]);
                    }
                }
            }
        }
        for (int k = 0; k < nt; k++)
            out[k][r - r0] = hsum_ps(_mm256_add_ps(acc0[k], acc1[k]));
    }
}

static void avx2_matvec(float *out, const struct tern_tensor *t, const float *x, int64_t row_begin,
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

/* One row at a time, loaded and decoded once for up to MT inputs (plain_row_tokens, which matvec
 * uses for one, so each input gets the bits matvec gives it alone). */
TERN_INLINE void q8_0_row_tokens(float *const *out, int64_t o, const uint8_t *row, int64_t nb,
                                 const float *const *x, const int nt) {
    __m256 a[2][MT];
    for (int k = 0; k < nt; k++)
        a[0][k] = a[1][k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + 34 * b;
        _mm_prefetch((const char *)blk + PF_DIST, _MM_HINT_T1);
        __m256 q[4];
        for (int j = 0; j < 4; j++)
            q[j] =
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 2 + 8 * j))));
        const __m256 d = _mm256_set1_ps(half_at(blk));
        /* blocks alternate between the two chains; a final odd block goes to the first */
        __m256 *acc = a[b % 2];
        for (int k = 0; k < nt; k++) {
            const float *xb = x[k] + 32 * b;
            const __m256 lo = _mm256_add_ps(_mm256_mul_ps(q[0], _mm256_loadu_ps(xb)),
                                            _mm256_mul_ps(q[1], _mm256_loadu_ps(xb + 8)));
            const __m256 hi = _mm256_add_ps(_mm256_mul_ps(q[2], _mm256_loadu_ps(xb + 16)),
                                            _mm256_mul_ps(q[3], _mm256_loadu_ps(xb + 24)));
            acc[k] = _mm256_fmadd_ps(_mm256_add_ps(lo, hi), d, acc[k]);
        }
    }
    for (int k = 0; k < nt; k++)
        out[k][o] = hsum_ps(_mm256_add_ps(a[0][k], a[1][k]));
}

/* rows [r0, r1) for nt <= MT inputs (nt a constant after inlining) */
TERN_INLINE void rows_tokens(float *const *out, const struct tern_tensor *t, const float *const *x,
                             int64_t r0, int64_t r1, const int nt) {
    if (t->type == TERN_TYPE_Q6_K) {
        q6_k_tokens(out, t, x, r0, r1, nt);
        return;
    }
    if (t->type == TERN_TYPE_Q4_K) {
        q4_k_tokens(out, t, x, r0, r1, nt);
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)t->data + (size_t)r * t->row_bytes;
        switch (t->type) {
        case TERN_TYPE_F32:
            plain_row_tokens(out, r - r0, row, t->type, t->ne0, x, ELT_F32, nt);
            break;
        case TERN_TYPE_F16:
            plain_row_tokens(out, r - r0, row, t->type, t->ne0, x, ELT_F16, nt);
            break;
        case TERN_TYPE_BF16:
            plain_row_tokens(out, r - r0, row, t->type, t->ne0, x, ELT_BF16, nt);
            break;
        default: /* TERN_TYPE_Q8_0 */
            q8_0_row_tokens(out, r - r0, row, t->ne0 / 32, x, nt);
            break;
        }
    }
}

TERN_MATVEC_TOKENS_FN(avx2_matvec_tokens, avx2_matvec)

/* ---- float ops ---- */

/* 1 / sqrt(mean(v^2) + eps) of v = pre(x, b), which goes into x unless PRE_NONE: squares in f32
 * summed in f64 as the reference (only the summation order differs). */
TERN_INLINE float rms_scale(float *x_out, const float *x, const float *b, int64_t n, float eps,
                            const enum tern_pre_norm pre) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        if (pre == PRE_ADD)
            v = _mm256_add_ps(v, _mm256_loadu_ps(b + i));
        if (pre == PRE_RELU2) {
            const __m256 r = _mm256_max_ps(v, _mm256_setzero_ps());
            v = _mm256_mul_ps(_mm256_mul_ps(r, r), _mm256_loadu_ps(b + i));
        }
        if (pre != PRE_NONE)
            _mm256_storeu_ps(x_out + i, v);
        const __m256 sq = _mm256_mul_ps(v, v);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(s0, s1));
    return tern_rms_tail((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]), x_out, x, b, i, n, eps, pre);
}

static void avx2_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    const float scale = rms_scale(NULL, x, NULL, n, eps, PRE_NONE);
    const __m256 vs = _mm256_set1_ps(scale);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, normed(x, w, vs, i));
    for (; i < n; i++)
        out[i] = normed1(x, w, scale, i);
}

/* e^x for x <= 0: Cephes-style range reduction, degree-6 polynomial, 2^n built in the exponent
 * field (n clamped so the result underflows to ~0 instead of wrapping). */
TERN_INLINE __m256 exp_ps(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* silu(g) * u = g / (1 + e^-g) * u, as g s / (1 + e) * u with e = e^-|g| (exp_ps's domain) and s = e
 * where g < 0, else 1: the reference's function to ~1e-7 relative, the same bits for an element
 * wherever it lies in a row (a tail goes through the same vector code from a padded copy). */
TERN_INLINE __m256 silu_mul(__m256 g, __m256 u) {
    const __m256 e = exp_ps(_mm256_or_ps(g, _mm256_set1_ps(-0.0f)));
    const __m256 num = _mm256_blendv_ps(g, _mm256_mul_ps(g, e), g); /* by g's sign bit */
    return _mm256_mul_ps(_mm256_div_ps(num, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

static void avx2_ffn_act(float *out, const float *gate, const float *up, int64_t n, enum tern_ffn_act act) {
    int64_t i = 0;
    if (act == TERN_FFN_SILU) {
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(out + i, silu_mul(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
        if (i < n) {
            float g[8] = {0}, u[8] = {0};
            memcpy(g, gate + i, (size_t)(n - i) * sizeof(float));
            memcpy(u, up + i, (size_t)(n - i) * sizeof(float));
            _mm256_storeu_ps(g, silu_mul(_mm256_loadu_ps(g), _mm256_loadu_ps(u)));
            memcpy(out + i, g, (size_t)(n - i) * sizeof(float));
        }
        return;
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 r = _mm256_max_ps(_mm256_loadu_ps(gate + i), _mm256_setzero_ps());
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(r, r), _mm256_loadu_ps(up + i)));
    }
    if (i < n)
        tern_ref_ffn_act(out + i, gate + i, up + i, n - i, act);
}

TERN_NORM_QUANTIZE_FNS(avx2)

/* A row of K or V into the f16 cache: vcvtps2ph rounds to nearest even as tern_fp32_to_fp16 does,
 * but keeps a NaN's payload bits; NaN lanes become the sign and 0x7fc00000 first, which converts to
 * the sign and 0x7e00, the reference's NaN. */
static void avx2_f16_row(uint16_t *dst, const float *x, int64_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f), qnan = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fc00000));
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 quiet = _mm256_or_ps(_mm256_and_ps(v, sign), qnan);
        const __m256 f = _mm256_blendv_ps(v, quiet, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    if (i < n)
        tern_ref_f16_row(dst + i, x + i, n - i);
}

/* The reference's table applied to every head with separate multiplies (no FMA), as the reference
 * does: bit-identical. */
static void avx2_rope(float *x, int n_head, int head_dim, int n_rot, const float *cs, const float *sn,
                      enum tern_rope_style style) {
    const int half = n_rot / 2;
    if (style != TERN_ROPE_NEOX || half % 8 != 0) {
        tern_ref_rope_apply(x, n_head, head_dim, n_rot, cs, sn, style);
        return;
    }
    for (int h = 0; h < n_head; h++) {
        float *v = x + (int64_t)h * head_dim;
        for (int i = 0; i < half; i += 8) {
            const __m256 c = _mm256_loadu_ps(cs + i), s = _mm256_loadu_ps(sn + i);
            const __m256 x0 = _mm256_loadu_ps(v + i), x1 = _mm256_loadu_ps(v + i + half);
            _mm256_storeu_ps(v + i, _mm256_sub_ps(_mm256_mul_ps(x0, c), _mm256_mul_ps(x1, s)));
            _mm256_storeu_ps(v + i + half, _mm256_add_ps(_mm256_mul_ps(x0, s), _mm256_mul_ps(x1, c)));
        }
    }
}

/* Scores of G query heads (sharing one kv head) against the first n positions of the K block kb
 * (dimension-major, 16 positions a dimension): positions in the lanes of two 8-wide halves, each
 * FMA'd with the query's element broadcast; dimensions d = a mod A into accumulator a of each half
 * (8, G = 3: 6, independent FMA chains), summed pairwise at the end; no horizontal sums. Lanes past
 * n hold the block's unwritten positions and are not stored. */
TERN_INLINE void scores_block1(float *wts, int64_t wts_stride, const float *q16, const uint16_t *kb,
                               int64_t pf_ahead, int head_dim, float scale, int n, const int G) {
    const int A = G >= 3 ? 1 : 4 / G;
    __m256 acc[2][8];
    for (int half = 0; half < 2; half++)
        for (int i = 0; i < G * A; i++)
            acc[half][i] = _mm256_setzero_ps();
    for (int d = 0; d < head_dim; d += A)
        for (int a = 0; a < A; a++) {
            if (pf_ahead && (d + a) % 2 == 0) /* its line pf_ahead on, one line at a time */
                __builtin_prefetch(
                    (const void *)((uintptr_t)(kb + (d + a) * TERN_ATTN_KBLOCK) + (uintptr_t)(2 * pf_ahead)),
                    0, 3);
            for (int half = 0; half < 2; half++) {
                const __m256 kv = _mm256_cvtph_ps(
                    _mm_loadu_si128((const __m128i *)(kb + (d + a) * TERN_ATTN_KBLOCK + 8 * half)));
                for (int h = 0; h < G; h++)
                    acc[half][h * A + a] =
                        _mm256_fmadd_ps(_mm256_set1_ps(q16[h * head_dim + d + a]), kv, acc[half][h * A + a]);
            }
        }
    for (int h = 0; h < G; h++) {
        float sums[16];
        for (int half = 0; half < 2; half++) {
            __m256 *a = acc[half] + h * A;
            for (int w = 1; w < A; w *= 2)
                for (int i = 0; i + w < A; i += 2 * w)
                    a[i] = _mm256_add_ps(a[i], a[i + w]);
            _mm256_storeu_ps(sums + 8 * half, _mm256_mul_ps(a[0], _mm256_set1_ps(scale)));
        }
        memcpy(wts + h * wts_stride, sums, (size_t)n * sizeof(float));
    }
}

/* NB (1 or 2) blocks, kb_stride apart, one after another (16 ymm hold no more accumulators) */
TERN_INLINE void scores_block(float *wts, int64_t wts_stride, const float *q16, const uint16_t *kb,
                              int64_t kb_stride, int head_dim, float scale, int n, bool pf, const int G,
                              const int NB) {
    for (int b = 0; b < NB; b++)
        scores_block1(wts + 16 * b, wts_stride, q16, kb + b * kb_stride, pf ? 2 * kb_stride : 0, head_dim,
                      scale, n - 16 * b < 16 ? n - 16 * b : 16, G);
}

/* softmax over w[0 .. n_pos) in place (f64 sum), weights rounded to f16 as the contract says */
static void softmax_f16(float *w, int n_pos) {
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    int p = 0;
    for (; p + 8 <= n_pos; p += 8)
        vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(w + p));
    const __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    const __m128 m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    float max = _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)));
    for (; p < n_pos; p++)
        max = fmaxf(max, w[p]);
    const __m256 vm = _mm256_set1_ps(max);
    __m256d vsum = _mm256_setzero_pd();
    p = 0;
    for (; p + 8 <= n_pos; p += 8) {
        const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(w + p), vm));
        _mm256_storeu_ps(w + p, e);
        vsum = _mm256_add_pd(vsum, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        vsum = _mm256_add_pd(vsum, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, vsum);
    double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for (; p < n_pos; p++) {
        w[p] = expf(w[p] - max);
        sum += (double)w[p];
    }
    const __m256 inv = _mm256_set1_ps((float)(1.0 / sum));
    for (p = 0; p + 8 <= n_pos; p += 8)
        _mm256_storeu_ps(w + p,
                         _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_mul_ps(_mm256_loadu_ps(w + p), inv),
                                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
    for (; p < n_pos; p++)
        w[p] = _cvtsh_ss(_cvtss_sh(w[p] * _mm256_cvtss_f32(inv), _MM_FROUND_TO_NEAREST_INT));
}

enum { ATTN_HEAD_DIM_STEP = 32 };

/* 8 accumulators in weighted_v: four 8-wide slices of one or two heads, two of three or four */
TERN_INLINE int attn_v_slice(int G) {
    return 8 * (G <= 2 ? 4 : 2);
}

/* out[h][0 .. 8 * NV) = sum over p in [p0, p1) of w[h][p] * V[p][0 .. 8 * NV) for G heads (NV =
 * attn_v_slice(G) / 8, G * NV <= 8 accumulators), added to the sums of the positions before p0 that out holds
 * (none when p0 = 0): each V row is converted once for the G heads. */
TERN_INLINE void weighted_v(float *out, int64_t out_stride, const float *w, int64_t w_stride,
                            const uint16_t *v, int64_t kv_stride, int p0, int p1, int pf_bytes, const int G) {
    const int NV = attn_v_slice(G) / 8;
    __m256 o[8];
    for (int h = 0; h < G; h++)
        for (int j = 0; j < NV; j++)
            o[NV * h + j] = p0 == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(out + h * out_stride + 8 * j);
    for (int p = p0; p < p1; p++) {
        tern_attn_prefetch_ahead(v + p * kv_stride, kv_stride, pf_bytes);
        __m256 vv[4];
        for (int j = 0; j < NV; j++)
            vv[j] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + p * kv_stride + 8 * j)));
        for (int h = 0; h < G; h++) {
            const __m256 wgt = _mm256_set1_ps(w[h * w_stride + p]);
            for (int j = 0; j < NV; j++)
                o[NV * h + j] = _mm256_fmadd_ps(wgt, vv[j], o[NV * h + j]);
        }
    }
    for (int h = 0; h < G; h++)
        for (int j = 0; j < NV; j++)
            _mm256_storeu_ps(out + h * out_stride + 8 * j, o[NV * h + j]);
}

TERN_INLINE void attn_round_q(float *q16, const float *q, int head_dim, int G) {
    for (int h = 0; h < G; h++)
        for (int d = 0; d < head_dim; d += 8)
            _mm256_storeu_ps(q16 + h * head_dim + d,
                             _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(q + (int64_t)h * head_dim + d),
                                                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
}

#include "attn_heads.h"

#include "isa_avx2_shadow.h"

const struct tern_cpu_kernels AVX2_TABLE = {
    .name = AVX2_NAME,
    .quantize_act = avx2_quantize_act,
    .ternary_matmul = avx2_ternary_matmul,
    .matvec = avx2_matvec,
    .matvec_tokens = avx2_matvec_tokens,
    .rmsnorm = avx2_rmsnorm,
    .rope = avx2_rope,
    .attention = attention_entry,
    .ffn_act = avx2_ffn_act,
    .add_norm_quantize = avx2_add_norm_quantize,
    .act_norm_quantize = avx2_act_norm_quantize,
    .f16_row = avx2_f16_row,
    .head_shadow = tern_head_shadow_rows, /* load-time only: the scalar reference */
    .shadow_dot = avx2_shadow_dot,
    .dot_peak = avx2_dot_peak,
};
