/* The certified head (issue 12): beside an F16/BF16/F32 head a device keeps a Q8_0 shadow copy
 * (blocks of 32 int8 with an f16 scale, 1.06 bytes a weight instead of 2) and, per row, a
 * coefficient c_r such that for every input x
 *     |head_r . x (as the device's full-head kernel computes it) - shadow_r . x (as its Q8_0
 *      kernel computes it)| <= c_r * |x|_2.
 * Per token the device computes every row from the shadow, keeps as candidates the rows whose upper
 * bound reaches the k-th largest lower bound, and recomputes only those with the full head's own
 * kernel: the top-k set and its logits are then bit-identical to the full head's.
 *
 * The bound (all in exact arithmetic over the stored values; the row's weights w, the shadow's
 * dequantized weights v = d_b q_i, e = w - v):
 *   shadow_r . x - head_r . x = -e . x, |e . x| <= |e|_2 |x|_2                      (Cauchy-Schwarz)
 *   any f32 dot of m terms, in any summation order, with or without FMA, is within
 *   g = m u / (1 - m u) (u = 2^-24, m = n + 64 covers the per-block scaling and the final
 *   reductions) of sum |w_i x_i| <= |w|_2 |x|_2; the same for v.
 * So c_r = |e|_2 + g (|w|_2 + |v|_2), plus slack for the f32 arithmetic of the selection itself;
 * the bound therefore holds for the scalar reference, every SIMD level and every OpenCL kernel.
 * This file is plain C so the CPU and OpenCL devices share it. */
#ifndef TERN_HEAD_CERT_H
#define TERN_HEAD_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"

enum { TERN_HEAD_SHADOW_BLOCK = 32, TERN_HEAD_SHADOW_BLOCK_BYTES = 34 /* f16 d, int8 q[32]: Q8_0 */ };

/* Changes with the shadow's layout or its bound: keys the shadow cache (head_cache.h). */
#define TERN_HEAD_SHADOW_VERSION 1

/* Whether a head of this type and row length can be certified (F16, BF16, F32; rows of 32k). */
bool tern_head_cert_supported(const struct tern_tensor *head);

/* Bytes of one shadow row of ne0 weights. */
size_t tern_head_shadow_row_bytes(int64_t ne0);

/* Rows [row_begin, row_end) of the shadow (rows of tern_head_shadow_row_bytes, in Q8_0 layout:
 * d = fp16(max|w_b| / 127), q_i = round(w_i / d)) and their bound coefficients coef[r]. */
void tern_head_shadow_rows(uint8_t *shadow, float *coef, const struct tern_tensor *head, int64_t row_begin,
                           int64_t row_end);

/* The bound coefficient of a row from the sums of squares of e, w and v (in double, each with a
 * relative error below 1e-5 and the squares that underflow lost), or INFINITY when they are not
 * finite. For SIMD builders of the shadow, which must quantize as tern_head_shadow_rows does (any
 * q stays rigorous, since e is measured, but the same q keeps levels alike). */
float tern_head_cert_coef(double se, double sw, double sv, int64_t n);

/* An upper bound of |x|_2. */
float tern_head_x_norm(const float *x, int64_t n);

/* Candidates for one token. logits[n_rows] holds the shadow's logits on entry and is clobbered;
 * coef as built above; x_norm from tern_head_x_norm; heap holds req->top_k floats. Writes the
 * candidate rows, ascending, to cand and returns how many; returns -1 when the full head must be
 * computed instead (a NaN, or more than n_rows / 8 + 2 k candidates: reading every row then costs
 * about as much). */
int64_t tern_head_cert_select(int32_t *cand, float *logits, float *heap, const float *coef, float x_norm,
                              int64_t n_rows, const struct tern_head_request *req);

/* Adds one logits call that recomputed n_rows rows (n_full: the full head) to req->stats. */
void tern_head_cert_count(const struct tern_head_request *req, int64_t n_rows, bool full);

#endif
