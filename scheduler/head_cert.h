/* The certified head (issue 12): beside an F16/BF16/F32 head a device keeps an int8 shadow copy and,
 * per row, two coefficients c_r and c'_r such that for every input x
 *     |head_r . x (as the device's full-head kernel computes it) - the shadow's logit of row r|
 *         <= c_r * |x|_2 + c'_r * |delta|_2,
 * delta being the input's own quantization error (zero where the shadow dot is taken in float).
 * Per token the device computes every row from the shadow, keeps as candidates the rows whose upper
 * bound reaches the k-th largest lower bound, and recomputes only those with the full head's own
 * kernel: the top-k set and its logits are then bit-identical to the full head's.
 *
 * The shadow (tern_head_shadow): per row, blocks of TERN_HEAD_SHADOW_BLOCK weights along the row (the
 * last block of a row may be shorter; rows are multiples of 32) with an f32 scale d_b = max|w_b| / 127
 * and q_i = round(w_i / d_b) in [-127, 127], stored as the unsigned byte q_i + 128; 1.02 bytes a
 * weight. Per token the input is quantized in two int8 levels (tern_head_quantize_x): per block an
 * f32 scale s_b = max|x_b| / 63, p_i = round(x_i / s_b) in [-63, 63], and the remainder again at
 * 1/128 of that step, p2_i = round((x_i - s_b p_i) / t_b) in [-64, 64] with t_b = s_b / 128. So x_i
 * ~ t_b P_i with the 14-bit P_i = 128 p_i + p2_i, and each block's dot I_b = sum q_i P_i = 128 (sum
 * q_i p_i) + sum q_i p2_i is an exact int32 from two int8 dots (|I_b| <= 256 * 127 * 8128 < 2^28).
 * The limits 63 and 64 (TERN_HEAD_P_MAX, TERN_HEAD_P2_MAX) keep a pair of products of the stored
 * unsigned weights with either level within int16 (2 * 255 * 64 = 32640), so AVX2's maddubs takes
 * the weights as stored, exactly. One level left an input error about 1/127 of a block's largest
 * element, which on the 2b4t shape made the bound 2.8x the weights' own error (top-40 sampling:
 * 1506 candidate rows a token instead of 188); the second level makes it negligible for the price
 * of a second vpdpbusd per weight vector and input. The shadow's logit is S = sum_b fl(d_b t_b)
 * fl(I_b), summed in f32 in any order (SIMD levels sum per lane and reduce the lanes at the end).
 *
 * The bound (exact arithmetic over the stored values; w the row's weights, v_i = d_b q_i the
 * shadow's weights, e = w - v, delta = x - t P the input's quantization error, measured per token):
 *   v . (t P) = v . x - v . delta, |v . delta| <= |v|_2 |delta|_2              (Cauchy-Schwarz)
 *   w . x - v . x = e . x, |e . x| <= |e|_2 |x|_2
 *   any f32 evaluation of a sum of m terms, each a product of factors with at most three roundings
 *   (the conversion of an integer such as I_b counting as one), in any summation order, with or
 *   without FMA, is within g = m u / (1 - m u) (u = 2^-24, m = n + 64 covers the roundings, the block
 *   and lane structure and the final reductions) of the sum of the terms' magnitudes. The full head:
 *   |F - w . x| <= g |w|_2 |x|_2. The shadow: the terms fl(d_b t_b) fl(I_b) split into per-element
 *   products d_b t_b q_i P_i, whose magnitudes sum to at most |v|_2 |t P|_2 <= |v|_2 (|x|_2 +
 *   |delta|_2), so |S - v . (t P)| <= g |v|_2 (|x|_2 + |delta|_2); a float dot over the shadow
 *   (d_b (sum q_i x_i), OpenCL) is the case delta = 0.
 * So |F - S| <= (|e|_2 + g (|w|_2 + |v|_2)) |x|_2 + (1 + g) |v|_2 |delta|_2, plus slack for the f32
 * arithmetic of the selection itself (|S| <= |v|_2 (|x|_2 + |delta|_2) (1 + g)): c_r and c'_r below.
 * The bound therefore holds for the scalar reference, every SIMD level and every OpenCL kernel. Over-
 * and underflow leave this model: a non-finite logit, |x|_2 or |delta|_2 sends the token to the full
 * head (an infinite coefficient makes its row a candidate), and an absolute 1e-30 covers products
 * that underflow. This file is plain C so the CPU and OpenCL devices
 * share it. */
#ifndef TERN_HEAD_CERT_H
#define TERN_HEAD_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"

/* 256-weight blocks: one f32 scale and one int-to-float step per 256 products (per 32 the scaling cost
 * as much as the integer dot at 4 tokens); larger blocks lose resolution where a row's magnitudes
 * vary (docs/certified-head.md). */
enum { TERN_HEAD_SHADOW_BLOCK = 256, TERN_HEAD_SHADOW_UNIT = 32 /* rows are multiples of it */ };

/* Changes with the shadow's layout or its bound: keys the shadow cache (head_cache.h). */
#define TERN_HEAD_SHADOW_VERSION 2

/* The shadow of an n_rows x n head, one blob (tern_head_shadow_bytes) of four 64-byte aligned arrays
 * in this order. Read-only once built or read from the cache. */
struct tern_head_shadow {
    uint8_t *q;   /* [n_rows][n] q + 128 (1 .. 255) */
    float *d;     /* [n_rows][n_blocks] block scales */
    float *coef;  /* [n_rows] c_r, the factor of |x|_2 */
    float *dcoef; /* [n_rows] c'_r, the factor of |delta|_2 */
    int64_t n, n_rows, n_blocks;
};

/* Whether a head of this type and row length can be certified (F16, BF16, F32; rows of 32k). */
bool tern_head_cert_supported(const struct tern_tensor *head);

/* Bytes of the shadow of an n_rows x n head, and per row (what a pass over it reads). */
size_t tern_head_shadow_bytes(int64_t n, int64_t n_rows);
size_t tern_head_shadow_row_bytes(int64_t n);

/* The shadow's arrays inside blob (64-byte aligned). */
void tern_head_shadow_view(struct tern_head_shadow *s, void *blob, int64_t n, int64_t n_rows);

/* Rows [row_begin, row_end) of the shadow of head in blob (tern_head_shadow_bytes of head's shape):
 * d = max|w_b| / 127 (0 for a block that is zero, not finite, or whose d is below FLT_MIN),
 * q_i = round(w_i / d) (halves away from zero, clamped; NaN 0) and the rows' coefficients. */
void tern_head_shadow_rows(void *blob, const struct tern_tensor *head, int64_t row_begin, int64_t row_end);

/* Row r's coefficients from the sums of squares of e, w and v (in double, each with a relative error
 * below 1e-5 and the squares that underflow lost); INFINITY when they are not finite. For SIMD
 * builders, which must quantize as tern_head_shadow_rows does (any q stays rigorous, since e is
 * measured, but the same q keeps levels alike). */
void tern_head_cert_coef(const struct tern_head_shadow *s, int64_t r, double se, double sw, double sv);

/* The ranges of the shadow's weights and of the input's levels: |q| <= 127, |p| <= 63, |p2| <= 64
 * (see above). */
enum { TERN_HEAD_Q_MAX = 127, TERN_HEAD_P_MAX = 63, TERN_HEAD_P2_MAX = 64 };

/* One token's input quantized for the shadow: the two levels p and p2 (each n_blocks *
 * TERN_HEAD_SHADOW_BLOCK, zero past n, 64-byte aligned), t[n_blocks], and upper bounds of |x|_2 and
 * |delta|_2 = |x - t (128 p + p2)|_2. */
struct tern_head_xq {
    int8_t *p, *p2;
    float *t;
    float x_norm, d_norm;
};

/* xq <- x[n] (xq's arrays allocated by the caller): s_b = max|x_b| / 63 (0 when that is not a
 * normal float), p_i = round(x_i / s_b) and p2_i = round((x_i - s_b p_i) / t_b), t_b = s_b / 128,
 * rounded as the shadow's q and clamped to the ranges above. Every kernel level reads these
 * integers, so this one function serves them all (2560 elements a token). */
void tern_head_quantize_x(struct tern_head_xq *xq, const float *x, int64_t n);

/* An upper bound of |x|_2. */
float tern_head_x_norm(const float *x, int64_t n);

/* Candidates for one token. logits[n_rows] holds the shadow's logits on entry and is clobbered;
 * x_norm and d_norm as tern_head_quantize_x gives them (d_norm 0 for a float shadow dot); heap holds
 * req->top_k floats. Writes the candidate rows, ascending, to cand and returns how many; returns -1
 * when the full head must be computed instead (a NaN or infinity, or more than n_rows / 8 + 2 k
 * candidates: reading every row then costs about as much). */
int64_t tern_head_cert_select(int32_t *cand, float *logits, float *heap, const struct tern_head_shadow *s,
                              float x_norm, float d_norm, const struct tern_head_request *req);

/* Adds one logits call that recomputed n_rows rows (n_full: the full head) to req->stats. */
void tern_head_cert_count(const struct tern_head_request *req, int64_t n_rows, bool full);

#endif
