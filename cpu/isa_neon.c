/* AArch64 Advanced SIMD kernel table; built only for ARM targets (cpu/CMakeLists.txt) and chosen
 * when getauxval reports ASIMD (isa_neondot.c builds it again with the dot-product extension).
 * Ternary product: each 32-byte I2_S block is split into its four bit-pair planes with byte shifts
 * (the codes 0..2 of weights 0..31, 32..63, 64..95, 96..127 in natural q order) and multiplied with
 * q: sdot where the compiler targets the dot-product extension, else widening multiplies (|c*q| <=
 * 256 fits int16) with pairwise accumulation into int32; each token's sum of q is subtracted once.
 * Integers are exact, so results are bit-identical to the reference. Decode walks one row at a
 * time; a prompt takes two rows and up to 4 tokens a tile. */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "../scheduler/fp16.h"
#include "attn_groups.h"
#include "isa.h"
#include "norm_passes.h"
#include "ref.h"
#include "token_passes.h"

#define TERN_INLINE static inline __attribute__((always_inline))

#if defined(TERN_NEONDOT)
/* cpu/isa_neondot.c: these kernels compiled with the dot-product extension (sdot) */
#define NEON_TABLE tern_cpu_kernels_neondot
#define NEON_NAME "neondot"
#else
#define NEON_TABLE tern_cpu_kernels_neon
#define NEON_NAME "neon"
#endif

/* How far ahead a streaming pass prefetches its row (the x86 levels' distance). */
enum { PF_DIST = 8192 };

/* ---- activation quantization ---- */

/* v_i of a quantization: x_i, or where normed the normed row (x_i * scale) * w_i, as neon_rmsnorm
 * forms it (normed a constant after inlining) */
TERN_INLINE float32x4_t quant_in(const float *x, const float *w, float32x4_t vn, int64_t i,
                                 const bool normed) {
    const float32x4_t v = vld1q_f32(x + i);
    return normed ? vmulq_f32(vmulq_f32(v, vn), vld1q_f32(w + i)) : v;
}
TERN_INLINE float quant_in1(const float *x, const float *w, float scale, int64_t i, const bool normed) {
    return normed ? (x[i] * scale) * w[i] : x[i];
}

/* quantize_act of the v_i above: the level's quantize_act, and the fused norm passes' last two
 * passes (cpu/norm_passes.h) */
TERN_INLINE float quantize_core(int8_t *q, const float *x, const float *w, float scale, int64_t n,
                                int64_t n_pad, int32_t *sum_q, const bool normed) {
    const float32x4_t vn = vdupq_n_f32(scale);
    float32x4_t vmax = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) /* maxNum ignores NaN, like fmaxf */
        vmax = vmaxnmq_f32(vmax, vabsq_f32(quant_in(x, w, vn, i, normed)));
    float m = vmaxnmvq_f32(vmax);
    for (; i < n; i++)
        m = fmaxf(m, fabsf(quant_in1(x, w, scale, i, normed)));
    const float s = 127.0f / fmaxf(m, 1e-5f);
    const float32x4_t vs = vdupq_n_f32(s), lo = vdupq_n_f32(-128.0f), hi = vdupq_n_f32(127.0f);
    int32x4_t vsum = vdupq_n_s32(0);
    for (i = 0; i + 8 <= n; i += 8) {
        /* round half to even, then clamp with maxNum/minNum (NaN -> -128, as fmaxf/fminf do) */
        float32x4_t a = vrndnq_f32(vmulq_f32(quant_in(x, w, vn, i, normed), vs));
        float32x4_t b = vrndnq_f32(vmulq_f32(quant_in(x, w, vn, i + 4, normed), vs));
        a = vminnmq_f32(vmaxnmq_f32(a, lo), hi);
        b = vminnmq_f32(vmaxnmq_f32(b, lo), hi);
        const int32x4_t ia = vcvtq_s32_f32(a), ib = vcvtq_s32_f32(b);
        vsum = vaddq_s32(vsum, vaddq_s32(ia, ib));
        const int16x8_t h = vcombine_s16(vmovn_s32(ia), vmovn_s32(ib));
        vst1_s8(q + i, vmovn_s16(h));
    }
    int32_t sum = vaddvq_s32(vsum);
    for (; i < n; i++) {
        float v = nearbyintf(quant_in1(x, w, scale, i, normed) * s);
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

TERN_INLINE float quantize_normed(int8_t *q, const float *x, const float *w, float scale, int64_t n,
                                  int64_t n_pad, int32_t *sum_q) {
    return quantize_core(q, x, w, scale, n, n_pad, sum_q, true);
}

static float neon_quantize_act(int8_t *q, const float *x, int64_t n, int64_t n_pad, int32_t *sum_q) {
    return quantize_core(q, x, NULL, 1.0f, n, n_pad, sum_q, false);
}

/* ---- ternary matmul ---- */

static inline int32x4_t dot16(int32x4_t acc, int8x16_t t, int8x16_t q) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, t, q);
#else
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(t), vget_low_s8(q)));
    return vpadalq_s16(acc, vmull_high_s8(t, q));
#endif
}

/* Codes of one 16-byte half of a block: plane j (weights 32j + lane) as 0/1/2 (the weight + 1; the
 * product subtracts each token's sum of q once, as the x86 levels do). */
TERN_INLINE void planes16(int8x16_t t[4], uint8x16_t raw) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    t[0] = vreinterpretq_s8_u8(vshrq_n_u8(raw, 6));
    t[1] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(raw, 4), m3));
    t[2] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(raw, 2), m3));
    t[3] = vreinterpretq_s8_u8(vandq_u8(raw, m3));
}

/* Rows r .. r + R - 1 (R = 1 or 2) for tokens t0 .. t0 + T - 1 (T = 1..4), R and T constants after
 * inlining: every q vector loaded serves the R rows, every unpacked plane the T tokens. */
TERN_INLINE void ternary_tile(float *y, const struct tern_ternary *w, const int8_t *q, const float *act_scale,
                              const int32_t *sum_q, int64_t t0, int64_t r, const int R, const int T) {
    int32x4_t acc[2][4];
    for (int i = 0; i < R; i++)
        for (int tok = 0; tok < T; tok++)
            acc[i][tok] = vdupq_n_s32(0);
    const uint8_t *row = w->codes + r * w->row_bytes;
    const int8_t *qt = q + t0 * w->k_pad;
    for (int64_t b = 0; b < w->k_pad / 128; b++)
        for (int half = 0; half < 2; half++) {
            int8x16_t t[2][4];
            for (int i = 0; i < R; i++)
                planes16(t[i], vld1q_u8(row + i * w->row_bytes + 32 * b + 16 * half));
            for (int tok = 0; tok < T; tok++)
                for (int j = 0; j < 4; j++) {
                    const int8x16_t qv = vld1q_s8(qt + tok * w->k_pad + 128 * b + 16 * half + 32 * j);
                    for (int i = 0; i < R; i++)
                        acc[i][tok] = dot16(acc[i][tok], t[i][j], qv);
                }
        }
    for (int i = 0; i < R; i++)
        for (int tok = 0; tok < T; tok++) {
            const int32_t dot = vaddvq_s32(acc[i][tok]) - sum_q[t0 + tok];
            y[(t0 + tok) * w->n_out + r + i] = (float)dot / act_scale[t0 + tok] * w->scale * w->out_scale;
        }
}

/* rows [r0, r1) for tokens t0 .. t0 + T - 1: two rows at a time where several tokens share them (a
 * prompt), one row at a time for one token (decode: one stream) */
TERN_INLINE void ternary_rows(float *y, const struct tern_ternary *w, const int8_t *q, const float *act_scale,
                              const int32_t *sum_q, int64_t t0, int64_t r0, int64_t r1, const int T) {
    int64_t r = r0;
    if (T > 1)
        for (; r + 2 <= r1; r += 2)
            ternary_tile(y, w, q, act_scale, sum_q, t0, r, 2, T);
    for (; r < r1; r++)
        ternary_tile(y, w, q, act_scale, sum_q, t0, r, 1, T);
}

static void neon_ternary_matmul(float *y, const struct tern_ternary *w, const int8_t *q,
                                const float *act_scale, const int32_t *sum_q, int64_t n_tok,
                                int64_t row_begin, int64_t row_end) {
    const int64_t chunk = n_tok == 1 ? row_end - row_begin : 64; /* prefill: rows stay in L2 */
    for (int64_t c0 = row_begin; c0 < row_end; c0 += chunk) {
        const int64_t c1 = c0 + chunk < row_end ? c0 + chunk : row_end;
        for (int64_t t0 = 0; t0 < n_tok; t0 += 4) {
            switch (n_tok - t0) {
            case 1:
                ternary_rows(y, w, q, act_scale, sum_q, t0, c0, c1, 1);
                break;
            case 2:
                ternary_rows(y, w, q, act_scale, sum_q, t0, c0, c1, 2);
                break;
            case 3:
                ternary_rows(y, w, q, act_scale, sum_q, t0, c0, c1, 3);
                break;
            default:
                ternary_rows(y, w, q, act_scale, sum_q, t0, c0, c1, 4);
                break;
            }
        }
    }
}

/* ---- float matvec: F16/F32 loaded, Q8_0/Q4_K/Q6_K decoded in NEON, BF16 by the reference ---- */

/* 8 f16 values as two f32 vectors */
TERN_INLINE void load_f16x8(float32x4_t out[2], const uint16_t *p) {
    const uint16x8_t h = vld1q_u16(p);
    out[0] = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h)));
    out[1] = vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(h)));
}

/* acc[k] (two accumulators an input) += the 8 weights w0, w1 times x[k] + i */
TERN_INLINE void fma8_tokens(float32x4_t *a, float32x4_t *b, float32x4_t w0, float32x4_t w1,
                             const float *const *x, int64_t i, const int nt) {
    for (int k = 0; k < nt; k++) {
        a[k] = vfmaq_f32(a[k], w0, vld1q_f32(x[k] + i));
        b[k] = vfmaq_f32(b[k], w1, vld1q_f32(x[k] + i + 4));
    }
}

/* out[k][o] = the two accumulators' sum plus the last n - n8 weights (w_tail) times x[k] in order */
TERN_INLINE void finish_tokens(float *const *out, int64_t o, const float32x4_t *a, const float32x4_t *b,
                               const float *w_tail, int64_t n8, int64_t n, const float *const *x,
                               const int nt) {
    for (int k = 0; k < nt; k++) {
        float s = vaddvq_f32(vaddq_f32(a[k], b[k]));
        for (int64_t i = n8; i < n; i++)
            s += w_tail[i - n8] * x[k][i];
        out[k][o] = s;
    }
}

/* out[k][o] = the row's dot with x[k] for nt <= 4 inputs (nt a constant after inlining): each 8
 * weights are loaded and widened once for every input, and each input's two accumulators see the
 * same operations in the same order whatever nt is, so an input gets the bits it gets alone. The
 * row's last n % 8 weights go through the reference's dequantization, added in order. */
TERN_INLINE void plain_row_tokens(float *const *out, int64_t o, const uint8_t *row, uint32_t type, int64_t n,
                                  const float *const *x, const int nt) {
    const int64_t n8 = n & ~(int64_t)7;
    float32x4_t a[4], b[4];
    for (int k = 0; k < nt; k++)
        a[k] = b[k] = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n8; i += 8) {
        float32x4_t w[2];
        if (type == TERN_TYPE_F16) {
            load_f16x8(w, (const uint16_t *)row + i);
        } else {
            w[0] = vld1q_f32((const float *)row + i);
            w[1] = vld1q_f32((const float *)row + i + 4);
        }
        fma8_tokens(a, b, w[0], w[1], x, i, nt);
    }
    float tail[8];
    if (n8 < n)
        tern_ref_dequant_row(tail, row + (size_t)n8 * (type == TERN_TYPE_F16 ? 2 : 4), type, n - n8);
    finish_tokens(out, o, a, b, tail, n8, n, x, nt);
}

/* ---- block decoders: the reference's values (cpu/ref_dequant.c), in its operation order ---- */

/* 16 bytes as four f32 vectors (signed or unsigned bytes) */
TERN_INLINE void s8x16_f32(float32x4_t out[4], int8x16_t v) {
    const int16x8_t lo = vmovl_s8(vget_low_s8(v)), hi = vmovl_s8(vget_high_s8(v));
    out[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
    out[1] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo)));
    out[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
    out[3] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi)));
}

/* Q8_0 (34 bytes: f16 d, 32 int8): d * q */
static void decode_q8_0(float *out, const uint8_t *blk) {
    const float d = tern_fp16_at(blk);
    for (int h = 0; h < 2; h++) {
        float32x4_t f[4];
        s8x16_f32(f, vld1q_s8((const int8_t *)blk + 2 + 16 * h));
        for (int j = 0; j < 4; j++)
            vst1q_f32(out + 16 * h + 4 * j, vmulq_n_f32(f[j], d));
    }
}

/* Q4_K (144 bytes): per group of 64, (d * scale) * nibble - dmin * min for the low nibbles of 32
 * bytes, then for their high nibbles (sub-blocks 2g and 2g + 1) */
static void decode_q4_k(float *out, const uint8_t *blk) {
    const float d = tern_fp16_at(blk), dmin = tern_fp16_at(blk + 2);
    const uint8_t *s = blk + 4, *qs = blk + 16;
    for (int g = 0; g < 4; g++)
        for (int hn = 0; hn < 2; hn++) {
            int sc, m;
            tern_ref_q4_k_scale_min(2 * g + hn, s, &sc, &m);
            const float dj = d * (float)sc, mj = dmin * (float)m;
            for (int h = 0; h < 2; h++) {
                const uint8x16_t q = vld1q_u8(qs + 32 * g + 16 * h);
                const uint8x16_t nib = hn ? vshrq_n_u8(q, 4) : vandq_u8(q, vdupq_n_u8(0x0f));
                float32x4_t f[4];
                s8x16_f32(f, vreinterpretq_s8_u8(nib)); /* 0..15: the same as unsigned */
                for (int k = 0; k < 4; k++)
                    vst1q_f32(out + 64 * g + 32 * hn + 16 * h + 4 * k,
                              vsubq_f32(vmulq_n_f32(f[k], dj), vdupq_n_f32(mj)));
            }
        }
}

/* Q6_K (210 bytes: ql[128], qh[64], int8 scales[16], f16 d): per half of 128, element l + 32 k
 * takes a nibble of ql and two bits of qh[l], minus 32, times (d * scales[8 half + 2 k + l / 16]) */
static void decode_q6_k(float *out, const uint8_t *blk) {
    const float d = tern_fp16_at(blk + 208);
    const int8_t *scales = (const int8_t *)blk + 192;
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m2 = vdupq_n_u8(3);
    const int8x16_t off = vdupq_n_s8(32);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = blk + 64 * h, *qh = blk + 128 + 32 * h;
        for (int l0 = 0; l0 < 32; l0 += 16) {
            const uint8x16_t a = vld1q_u8(ql + l0), b = vld1q_u8(ql + l0 + 32), hb = vld1q_u8(qh + l0);
            const uint8x16_t u[4] = {
                vorrq_u8(vandq_u8(a, m4), vshlq_n_u8(vandq_u8(hb, m2), 4)),
                vorrq_u8(vandq_u8(b, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), m2), 4)),
                vorrq_u8(vshrq_n_u8(a, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), m2), 4)),
                vorrq_u8(vshrq_n_u8(b, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4))};
            for (int k = 0; k < 4; k++) {
                const float ds = d * (float)scales[8 * h + 2 * k + l0 / 16];
                float32x4_t f[4];
                s8x16_f32(f, vsubq_s8(vreinterpretq_s8_u8(u[k]), off));
                for (int j = 0; j < 4; j++)
                    vst1q_f32(out + 128 * h + 32 * k + l0 + 4 * j, vmulq_n_f32(f[j], ds));
            }
        }
    }
}

/* n (a multiple of the block size, at most DQ_CHUNK) weights of a BF16/Q8_0/Q4_K/Q6_K row */
enum { DQ_CHUNK = 256 }; /* a multiple of every block size */
TERN_INLINE void decode_chunk(float *out, const uint8_t *p, uint32_t type, int64_t n) {
    switch (type) {
    case TERN_TYPE_Q8_0:
        for (int64_t b = 0; b < n / 32; b++)
            decode_q8_0(out + 32 * b, p + 34 * b);
        break;
    case TERN_TYPE_Q4_K:
        decode_q4_k(out, p);
        break;
    case TERN_TYPE_Q6_K:
        decode_q6_k(out, p);
        break;
    default: /* BF16 */
        tern_ref_dequant_row(out, p, type, n);
        break;
    }
}

/* The same as plain_row_tokens for BF16, Q8_0, Q4_K and Q6_K: each chunk of DQ_CHUNK weights decoded
 * once for every input into the reference's f32 values, then dotted as above. The reference's
 * matvec sums in one chain (an add's latency an element); here that is two chains an input. */
TERN_INLINE void decoded_row_tokens(float *const *out, int64_t o, const uint8_t *row, uint32_t type,
                                    size_t chunk_bytes, int64_t n, const float *const *x, const int nt) {
    float buf[DQ_CHUNK];
    float32x4_t a[4], b[4];
    for (int k = 0; k < nt; k++)
        a[k] = b[k] = vdupq_n_f32(0.0f);
    int64_t c = 0, len8 = 0;
    for (;; c += DQ_CHUNK) {
        const int64_t len = n - c < DQ_CHUNK ? n - c : DQ_CHUNK;
        decode_chunk(buf, row + (size_t)(c / DQ_CHUNK) * chunk_bytes, type, len);
        len8 = len & ~(int64_t)7;
        for (int64_t i = 0; i < len8; i += 8)
            fma8_tokens(a, b, vld1q_f32(buf + i), vld1q_f32(buf + i + 4), x, c + i, nt);
        if (c + DQ_CHUNK >= n)
            break;
    }
    finish_tokens(out, o, a, b, buf + len8, c + len8, n, x, nt);
}

/* rows [r0, r1) for nt <= MT inputs (nt a constant after inlining), each row read and decoded once
 * for all of them */
enum { MT = 4 };
TERN_INLINE void rows_tokens(float *const *out, const struct tern_tensor *t, const float *const *x,
                             int64_t r0, int64_t r1, const int nt) {
    const uint8_t *data = t->data;
    if (t->type == TERN_TYPE_F16 || t->type == TERN_TYPE_F32) {
        for (int64_t r = r0; r < r1; r++)
            plain_row_tokens(out, r - r0, data + (size_t)r * t->row_bytes, t->type, t->ne0, x, nt);
        return;
    }
    const struct tern_type_traits *tr = tern_type_traits(t->type);
    const size_t chunk_bytes = (size_t)(DQ_CHUNK / tr->block_size) * tr->block_bytes;
    for (int64_t r = r0; r < r1; r++)
        decoded_row_tokens(out, r - r0, data + (size_t)r * t->row_bytes, t->type, chunk_bytes, t->ne0, x, nt);
}

static void neon_matvec(float *out, const struct tern_tensor *t, const float *x, int64_t row_begin,
                        int64_t row_end) {
    rows_tokens(&out, t, &x, row_begin, row_end, 1);
}

TERN_MATVEC_TOKENS_FN(neon_matvec_tokens, neon_matvec)

/* ---- the certified head's shadow dot (scheduler/head_cert.h) ---- */

/* Per block of 256, each 16 bytes of a row give every input's 4 int32 lanes their exact share of
 * the dots of the signed weights q (the stored q + 128 with its top bit flipped) with both levels of
 * the input (p, p2), through dot16; 128 * (p sums) + (p2 sums) is the lane's share of I_b,
 * converted and scaled by d_b t_b into per-lane f32 sums, reduced at the row's end. Each row is
 * read once for up to 4 inputs, every input with its own accumulators fed the same operations in
 * the same order whatever the others, so its bits do not depend on the batch. n is a multiple of
 * 32 (tern_head_cert_supported), and p, p2 are zero past it. */
TERN_INLINE void shadow_rows_tokens(float *const *out, const struct tern_head_shadow *s,
                                    const struct tern_head_xq *const *x, int64_t r0, int64_t r1,
                                    const int nt) {
    const int64_t n = s->n, nb = s->n_blocks;
    const int8_t *p[TERN_SHADOW_MT], *p2[TERN_SHADOW_MT];
    const float *tb[TERN_SHADOW_MT];
    for (int k = 0; k < nt; k++)
        p[k] = x[k]->p, p2[k] = x[k]->p2, tb[k] = x[k]->t;
    const uint8x16_t flip = vdupq_n_u8(0x80);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = s->q + (size_t)r * (size_t)n;
        const float *d = s->d + r * nb;
        float32x4_t acc[TERN_SHADOW_MT];
        for (int k = 0; k < nt; k++)
            acc[k] = vdupq_n_f32(0.0f);
        for (int64_t b = 0; b < nb; b++) {
            const int64_t i0 = TERN_HEAD_SHADOW_BLOCK * b;
            const int64_t i1 = i0 + TERN_HEAD_SHADOW_BLOCK < n ? i0 + TERN_HEAD_SHADOW_BLOCK : n;
            int32x4_t ia[TERN_SHADOW_MT], ia2[TERN_SHADOW_MT];
            for (int k = 0; k < nt; k++)
                ia[k] = ia2[k] = vdupq_n_s32(0);
            for (int64_t i = i0; i < i1; i += 16) {
                if ((i & 63) == 0)
                    __builtin_prefetch(row + i + PF_DIST);
                const int8x16_t w = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(row + i), flip));
                for (int k = 0; k < nt; k++) {
                    ia[k] = dot16(ia[k], w, vld1q_s8(p[k] + i));
                    ia2[k] = dot16(ia2[k], w, vld1q_s8(p2[k] + i));
                }
            }
            for (int k = 0; k < nt; k++) {
                const int32x4_t isum = vaddq_s32(vshlq_n_s32(ia[k], 7), ia2[k]);
                acc[k] = vfmaq_f32(acc[k], vcvtq_f32_s32(isum), vdupq_n_f32(d[b] * tb[k][b]));
            }
        }
        for (int k = 0; k < nt; k++)
            out[k][r - r0] = vaddvq_f32(acc[k]);
    }
}

TERN_SHADOW_DOT_FN(neon_shadow_dot)

/* ---- float ops ---- */

/* e^x for x <= 0, as the AVX2 level's exp_ps: Cephes-style range reduction, degree-6 polynomial,
 * 2^n built in the exponent field (n clamped so the result underflows to ~0 instead of wrapping). */
static inline float32x4_t exp_ps(float32x4_t x) {
    x = vmaxq_f32(x, vdupq_n_f32(-87.0f));
    const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

/* silu(g) * u as the x86 levels compute it: g s / (1 + e) * u with e = e^-|g| and s = e where g < 0,
 * else 1; a tail goes through the same vector code from a padded copy. */
static inline float32x4_t silu_mul(float32x4_t g, float32x4_t u) {
    const float32x4_t e = exp_ps(vnegq_f32(vabsq_f32(g)));
    const float32x4_t num = vbslq_f32(vcltq_f32(g, vdupq_n_f32(0.0f)), vmulq_f32(g, e), g);
    return vmulq_f32(vdivq_f32(num, vaddq_f32(vdupq_n_f32(1.0f), e)), u);
}

static void neon_ffn_act(float *out, const float *gate, const float *up, int64_t n, enum tern_ffn_act act) {
    int64_t i = 0;
    if (act == TERN_FFN_SILU) {
        for (; i + 4 <= n; i += 4)
            vst1q_f32(out + i, silu_mul(vld1q_f32(gate + i), vld1q_f32(up + i)));
        if (i < n) {
            float g[4] = {0}, u[4] = {0};
            memcpy(g, gate + i, (size_t)(n - i) * sizeof(float));
            memcpy(u, up + i, (size_t)(n - i) * sizeof(float));
            vst1q_f32(g, silu_mul(vld1q_f32(g), vld1q_f32(u)));
            memcpy(out + i, g, (size_t)(n - i) * sizeof(float));
        }
        return;
    }
    for (; i + 4 <= n; i += 4) {
        /* g > 0 ? g : 0 (NaN -> 0), as the reference */
        const float32x4_t g = vld1q_f32(gate + i);
        const float32x4_t r = vbslq_f32(vcgtq_f32(g, vdupq_n_f32(0.0f)), g, vdupq_n_f32(0.0f));
        vst1q_f32(out + i, vmulq_f32(vmulq_f32(r, r), vld1q_f32(up + i)));
    }
    if (i < n)
        tern_ref_ffn_act(out + i, gate + i, up + i, n - i, act);
}

/* 1 / sqrt(mean(v^2) + eps) of v = pre(x, b), which goes into x_out unless PRE_NONE: squares in f32
 * summed in f64 as the reference (only the summation order differs); PRE_RELU2 forms v as
 * neon_ffn_act does. */
TERN_INLINE float rms_scale(float *x_out, const float *x, const float *b, int64_t n, float eps,
                            const enum tern_pre_norm pre) {
    float64x2_t s0 = vdupq_n_f64(0.0), s1 = s0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t v = vld1q_f32(x + i);
        if (pre == PRE_ADD)
            v = vaddq_f32(v, vld1q_f32(b + i));
        if (pre == PRE_RELU2) {
            const float32x4_t r = vbslq_f32(vcgtq_f32(v, vdupq_n_f32(0.0f)), v, vdupq_n_f32(0.0f));
            v = vmulq_f32(vmulq_f32(r, r), vld1q_f32(b + i));
        }
        if (pre != PRE_NONE)
            vst1q_f32(x_out + i, v);
        const float32x4_t sq = vmulq_f32(v, v);
        s0 = vaddq_f64(s0, vcvt_f64_f32(vget_low_f32(sq)));
        s1 = vaddq_f64(s1, vcvt_high_f64_f32(sq));
    }
    return tern_rms_tail(vaddvq_f64(vaddq_f64(s0, s1)), x_out, x, b, i, n, eps, pre);
}

static void neon_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    const float scale = rms_scale(NULL, x, NULL, n, eps, PRE_NONE);
    const float32x4_t vs = vdupq_n_f32(scale);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(out + i, quant_in(x, w, vs, i, true));
    for (; i < n; i++)
        out[i] = quant_in1(x, w, scale, i, true);
}

TERN_NORM_QUANTIZE_FNS(neon)

/* A row of K or V into the f16 cache: fcvtn rounds to nearest even as tern_fp32_to_fp16 does, but
 * keeps a NaN's payload bits; NaN lanes become the sign and 0x7fc00000 first, which converts to the
 * sign and 0x7e00, the reference's NaN. */
static void neon_f16_row(uint16_t *dst, const float *x, int64_t n) {
    const uint32x4_t sign = vdupq_n_u32(0x80000000u), qnan = vdupq_n_u32(0x7fc00000u);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t v = vld1q_f32(x + i);
        const uint32x4_t quiet = vorrq_u32(vandq_u32(vreinterpretq_u32_f32(v), sign), qnan);
        const float32x4_t f = vbslq_f32(vceqq_f32(v, v), v, vreinterpretq_f32_u32(quiet));
        vst1_u16(dst + i, vreinterpret_u16_f16(vcvt_f16_f32(f)));
    }
    if (i < n)
        tern_ref_f16_row(dst + i, x + i, n - i);
}

/* The reference's table applied to every head with separate multiplies (no FMA), as the reference
 * does: bit-identical. */
static void neon_rope(float *x, int n_head, int head_dim, int n_rot, const float *cs, const float *sn,
                      enum tern_rope_style style) {
    const int half = n_rot / 2;
    if (style != TERN_ROPE_NEOX || half % 4 != 0) {
        tern_ref_rope_apply(x, n_head, head_dim, n_rot, cs, sn, style);
        return;
    }
    for (int h = 0; h < n_head; h++) {
        float *v = x + (int64_t)h * head_dim;
        for (int i = 0; i < half; i += 4) {
            const float32x4_t c = vld1q_f32(cs + i), s = vld1q_f32(sn + i);
            const float32x4_t x0 = vld1q_f32(v + i), x1 = vld1q_f32(v + i + half);
            vst1q_f32(v + i, vsubq_f32(vmulq_f32(x0, c), vmulq_f32(x1, s)));
            vst1q_f32(v + i + half, vaddq_f32(vmulq_f32(x0, s), vmulq_f32(x1, c)));
        }
    }
}

/* ---- attention: cpu/attn_heads.h over the pieces below ---- */

enum { ATTN_HEAD_DIM_STEP = 32 };

TERN_INLINE float32x4_t round_f16(float32x4_t v) {
    return vcvt_f32_f16(vcvt_f16_f32(v));
}

/* 16 f16 values as four f32 vectors */
TERN_INLINE void load_f16x16(float32x4_t out[4], const uint16_t *p) {
    load_f16x8(out, p);
    load_f16x8(out + 2, p + 8);
}

/* Scores of G query heads (sharing one kv head) against the first n positions of the K block kb
 * (dimension-major, 16 positions a dimension): positions in the lanes of four 4-wide quarters, each
 * FMA'd with the query's element; dimensions d = a mod A into accumulator a of each quarter (16, G =
 * 3: 12, independent FMA chains), summed pairwise at the end; no horizontal sums. Lanes past n hold
 * the block's unwritten positions and are not stored. */
TERN_INLINE void scores_block1(float *wts, int64_t wts_stride, const float *q16, const uint16_t *kb,
                               int64_t pf_ahead, int head_dim, float scale, int n, const int G) {
    const int A = G >= 3 ? 1 : 4 / G;
    float32x4_t acc[4][4];
    for (int qt = 0; qt < 4; qt++)
        for (int i = 0; i < G * A; i++)
            acc[qt][i] = vdupq_n_f32(0.0f);
    for (int d = 0; d < head_dim; d += A)
        for (int a = 0; a < A; a++) {
            if (pf_ahead && (d + a) % 2 == 0) /* its line pf_ahead on, one line at a time */
                __builtin_prefetch(
                    (const void *)((uintptr_t)(kb + (d + a) * TERN_ATTN_KBLOCK) + (uintptr_t)(2 * pf_ahead)),
                    0, 3);
            float32x4_t kv[4];
            load_f16x16(kv, kb + (d + a) * TERN_ATTN_KBLOCK);
            for (int h = 0; h < G; h++) {
                const float qe = q16[h * head_dim + d + a];
                for (int qt = 0; qt < 4; qt++)
                    acc[qt][h * A + a] = vfmaq_n_f32(acc[qt][h * A + a], kv[qt], qe);
            }
        }
    for (int h = 0; h < G; h++) {
        float sums[16];
        for (int qt = 0; qt < 4; qt++) {
            float32x4_t *a = acc[qt] + h * A;
            for (int w = 1; w < A; w *= 2)
                for (int i = 0; i + w < A; i += 2 * w)
                    a[i] = vaddq_f32(a[i], a[i + w]);
            vst1q_f32(sums + 4 * qt, vmulq_n_f32(a[0], scale));
        }
        memcpy(wts + h * wts_stride, sums, (size_t)n * sizeof(float));
    }
}

/* NB (1-4) blocks, kb_stride apart, one after another */
TERN_INLINE void scores_block(float *wts, int64_t wts_stride, const float *q16, const uint16_t *kb,
                              int64_t kb_stride, int head_dim, float scale, int n, bool pf, const int G,
                              const int NB) {
    for (int b = 0; b < NB; b++)
        scores_block1(wts + 16 * b, wts_stride, q16, kb + b * kb_stride, pf ? 2 * kb_stride : 0, head_dim,
                      scale, n - 16 * b < 16 ? n - 16 * b : 16, G);
}

/* softmax over w[0 .. n_pos) in place (f64 sum), weights rounded to f16 as the contract says; the
 * last n_pos % 4 go through the same vector code from a padded copy */
static void softmax_f16(float *w, int n_pos) {
    const int n4 = n_pos & ~3;
    float32x4_t vmax = vdupq_n_f32(-INFINITY);
    for (int p = 0; p < n4; p += 4)
        vmax = vmaxq_f32(vmax, vld1q_f32(w + p));
    float max = vmaxvq_f32(vmax);
    for (int p = n4; p < n_pos; p++)
        max = fmaxf(max, w[p]);
    const float32x4_t vm = vdupq_n_f32(max);
    float tail[4] = {0};
    memcpy(tail, w + n4, (size_t)(n_pos - n4) * sizeof(float));
    float64x2_t s0 = vdupq_n_f64(0.0), s1 = s0;
    for (int p = 0; p < n4; p += 4) {
        const float32x4_t e = exp_ps(vsubq_f32(vld1q_f32(w + p), vm));
        vst1q_f32(w + p, e);
        s0 = vaddq_f64(s0, vcvt_f64_f32(vget_low_f32(e)));
        s1 = vaddq_f64(s1, vcvt_high_f64_f32(e));
    }
    double sum = vaddvq_f64(vaddq_f64(s0, s1));
    vst1q_f32(tail, exp_ps(vsubq_f32(vld1q_f32(tail), vm)));
    for (int p = n4; p < n_pos; p++)
        sum += (double)tail[p - n4];
    const float32x4_t inv = vdupq_n_f32((float)(1.0 / sum));
    for (int p = 0; p < n4; p += 4)
        vst1q_f32(w + p, round_f16(vmulq_f32(vld1q_f32(w + p), inv)));
    vst1q_f32(tail, round_f16(vmulq_f32(vld1q_f32(tail), inv)));
    memcpy(w + n4, tail, (size_t)(n_pos - n4) * sizeof(float));
}

/* 16 accumulators in weighted_v: eight 4-wide slices of one or two heads, four of three or four */
TERN_INLINE int attn_v_slice(int G) {
    return 4 * (G <= 2 ? 8 : 4);
}

/* out[h][0 .. 4 * NV) = sum over p in [p0, p1) of w[h][p] * V[p][0 .. 4 * NV) for G heads (NV =
 * attn_v_slice(G) / 4), added to the sums of the positions before p0 that out holds (none when p0
 * = 0): each V row is converted once for the G heads. */
TERN_INLINE void weighted_v(float *out, int64_t out_stride, const float *w, int64_t w_stride,
                            const uint16_t *v, int64_t kv_stride, int p0, int p1, int pf_bytes, const int G) {
    const int NV = attn_v_slice(G) / 4;
    float32x4_t o[16];
    for (int h = 0; h < G; h++)
        for (int j = 0; j < NV; j++)
            o[NV * h + j] = p0 == 0 ? vdupq_n_f32(0.0f) : vld1q_f32(out + h * out_stride + 4 * j);
    for (int p = p0; p < p1; p++) {
        tern_attn_prefetch_ahead(v + p * kv_stride, kv_stride, pf_bytes);
        float32x4_t vv[8];
        for (int j = 0; j < NV; j += 4)
            load_f16x16(vv + j, v + p * kv_stride + 4 * j);
        for (int h = 0; h < G; h++) {
            const float wgt = w[h * w_stride + p];
            for (int j = 0; j < NV; j++)
                o[NV * h + j] = vfmaq_n_f32(o[NV * h + j], vv[j], wgt);
        }
    }
    for (int h = 0; h < G; h++)
        for (int j = 0; j < NV; j++)
            vst1q_f32(out + h * out_stride + 4 * j, o[NV * h + j]);
}

TERN_INLINE void attn_round_q(float *q16, const float *q, int head_dim, int G) {
    for (int h = 0; h < G; h++)
        for (int d = 0; d < head_dim; d += 4)
            vst1q_f32(q16 + h * head_dim + d, round_f16(vld1q_f32(q + (int64_t)h * head_dim + d)));
}

#include "attn_heads.h"

/* The compute probe (cpu/peak.h): 12 independent chains of dot16, the ternary product's int8 dot
 * (sdot, or two vmull + two vpadal), 16 multiply-adds each. */
static int64_t neon_dot_peak(int64_t rounds) {
    const int8x16_t a = vdupq_n_s8((int8_t)(rounds | 1)), b = vdupq_n_s8(3);
    int32x4_t c0 = vdupq_n_s32(0), c1 = vdupq_n_s32(1), c2 = vdupq_n_s32(2), c3 = vdupq_n_s32(3),
              c4 = vdupq_n_s32(4), c5 = vdupq_n_s32(5), c6 = vdupq_n_s32(6), c7 = vdupq_n_s32(7),
              c8 = vdupq_n_s32(8), c9 = vdupq_n_s32(9), c10 = vdupq_n_s32(10), c11 = vdupq_n_s32(11);
    for (int64_t r = 0; r < rounds; r++) {
        c0 = dot16(c0, a, b), c1 = dot16(c1, a, b), c2 = dot16(c2, a, b), c3 = dot16(c3, a, b);
        c4 = dot16(c4, a, b), c5 = dot16(c5, a, b), c6 = dot16(c6, a, b), c7 = dot16(c7, a, b);
        c8 = dot16(c8, a, b), c9 = dot16(c9, a, b), c10 = dot16(c10, a, b), c11 = dot16(c11, a, b);
    }
    const int32x4_t s = veorq_s32(veorq_s32(veorq_s32(c0, c1), veorq_s32(c2, c3)),
                                  veorq_s32(veorq_s32(veorq_s32(c4, c5), veorq_s32(c6, c7)),
                                            veorq_s32(veorq_s32(c8, c9), veorq_s32(c10, c11))));
    atomic_store_explicit(&tern_cpu_peak_sink, vaddvq_s32(s), memory_order_relaxed);
    return rounds * 12 * 16;
}

const struct tern_cpu_kernels NEON_TABLE = {
    .name = NEON_NAME,
    .quantize_act = neon_quantize_act,
    .ternary_matmul = neon_ternary_matmul,
    .matvec = neon_matvec,
    .matvec_tokens = neon_matvec_tokens,
    .rmsnorm = neon_rmsnorm,
    .rope = neon_rope,
    .attention = attention_entry,
    .ffn_act = neon_ffn_act,
    .add_norm_quantize = neon_add_norm_quantize,
    .act_norm_quantize = neon_act_norm_quantize,
    .f16_row = neon_f16_row,
    .head_shadow = tern_head_shadow_rows,
    .shadow_dot = neon_shadow_dot,
    .dot_peak = neon_dot_peak,
};
