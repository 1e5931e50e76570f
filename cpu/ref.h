/* The scalar reference kernels: the specification of every op (docs/architecture.md#numerics). Plain loops,
 * no intrinsics. SIMD kernels and OpenCL kernels are tested against these. Output first, then inputs, then
 * sizes. */
#ifndef TERN_CPU_REF_H
#define TERN_CPU_REF_H

#include <stdint.h>

#include "../scheduler/device.h"
#include "../scheduler/head_cert.h"

/* Per-token int8 quantization of one activation row x[n]:
 * s = 127 / max(max|x_i|, 1e-5); q_i = clamp(round_half_even(x_i * s), -128, 127).
 * q[n .. n_pad) is zero-filled. Returns s (the "act scale"); sum_q, if not NULL, gets sum q_i. */
float tern_ref_quantize_act(int8_t *q, const float *x, int64_t n, int64_t n_pad, int32_t *sum_q);

/* Exact integer ternary dot of one packed row (k_pad/4 bytes) with q[k_pad]: sum t_k * q_k. */
int32_t tern_ref_ternary_dot(const uint8_t *row, const int8_t *q, int64_t k_pad);

/* y[t][r] = dot(row r, q[t]) / act_scale[t] * w->scale * w->out_scale for t < n_tok and
 * r in [row_begin, row_end). q rows have stride w->k_pad; y rows have stride w->n_out. */
void tern_ref_ternary_matmul(float *y, const struct tern_ternary *w, const int8_t *q, const float *act_scale,
                             int64_t n_tok, int64_t row_begin, int64_t row_end);

/* out = x / sqrt(mean(x^2) + eps) * w  (out may alias x) */
void tern_ref_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);

/* Rotate the first n_rot dims of each of n_head heads (head_dim apart) of x for position pos.
 * Frequencies theta^(-2i/n_rot); pairing per style (NEOX: i with i+n_rot/2; NORM: 2i with 2i+1). */
void tern_ref_rope(float *x, int n_head, int head_dim, int n_rot, int pos, float theta,
                   enum tern_rope_style style);

/* The RoPE angles of the reference for pairs 0..n_pairs-1 at position pos: cos and sin of
 * pos * theta^(-2i/n_rot), the power built by repeated products exactly as tern_ref_rope does, so
 * kernels that apply this table (tern_ref_rope_apply) are bit-identical to the reference. */
void tern_ref_rope_table(float *cs, float *sn, int n_pairs, int n_rot, int pos, float theta);

/* tern_ref_rope with the position's angles given (cs and sn from tern_ref_rope_table, n_rot / 2
 * pairs): the same expressions, so the same bits. The CPU device computes a token's table once for
 * all its layers' queries and keys. */
void tern_ref_rope_apply(float *x, int n_head, int head_dim, int n_rot, const float *cs, const float *sn,
                         enum tern_rope_style style);

/* Causal attention of one query token at position pos over cached positions 0..pos.
 * q[n_head*head_dim]; k_cache/v_cache are f16, position p's n_head_kv*head_dim values at
 * p * kv_stride in V and in K's blocks as tern_k_index places them (kernels.h; kv_stride =
 * n_head_kv*head_dim for a whole cache row; a call for a slice of the kv heads passes the slice's
 * start, j * head_dim into V and j * head_dim * TERN_ATTN_KBLOCK into K, and the full row's
 * stride); head h uses kv head
 * h / (n_head/n_head_kv). out[n_head*head_dim]. scratch holds head_dim + pos + 1 floats.
 * As in ggml's f16 KV path: the query is rounded to f16 before Q.K, scores are scaled by
 * 1/sqrt(head_dim), softmax sums in double, and the weights are rounded to f16 before the sum
 * over V (f32 accumulation). stream_kv says the cache rows come from DRAM (a decode step), which
 * SIMD kernels answer by prefetching (cpu/attn_groups.h); it never changes the result. */
void tern_ref_attention(float *out, const float *q, const uint16_t *k_cache, const uint16_t *v_cache,
                        int64_t kv_stride, int pos, int n_head, int n_head_kv, int head_dim, bool stream_kv,
                        float *scratch);

/* out[i] = act(gate[i]) * up[i], act = relu(x)^2 or silu(x) (out may alias gate or up) */
void tern_ref_ffn_act(float *out, const float *gate, const float *up, int64_t n, enum tern_ffn_act act);

/* The per-token pass that feeds a BitLinear, as the composition of the reference ops above:
 * x += add (written back; skipped when add is NULL: a residual add), y = rmsnorm(x, w), then
 * quantize_act(q, y, n, n_pad, sum_q), whose scale it returns. y: n floats of scratch (SIMD levels
 * need not write it). A level's entry gives the bits of its own add, rmsnorm and quantize_act. */
float tern_ref_add_norm_quantize(int8_t *q, float *y, float *x, const float *add, const float *w, int64_t n,
                                 int64_t n_pad, float eps, int32_t *sum_q);

/* The same after the FFN gating: gate = ffn_act(gate, up) (written back), then rmsnorm with w and
 * quantize_act as tern_ref_add_norm_quantize does. */
float tern_ref_act_norm_quantize(int8_t *q, float *y, float *gate, const float *up, const float *w, int64_t n,
                                 int64_t n_pad, float eps, enum tern_ffn_act act, int32_t *sum_q);

/* dst[i] = x[i] rounded to f16 (tern_fp32_to_fp16: nearest even, NaN to a quiet NaN of the same
 * sign, 0x7e00): a token's K or V row into the f16 KV cache. */
void tern_ref_f16_row(uint16_t *dst, const float *x, int64_t n);

/* Scale and min of sub-block j (0..7) from Q4_K's 12 packed bytes s. Sub-blocks 0-3 use the low 6
 * bits of bytes j (scale) and j+4 (min); sub-blocks 4-7 take their low 4 bits from the nibbles of
 * byte j+4 and their high 2 bits from the top bits of bytes j-4 (scale) and j (min). Inline, so the
 * SIMD decoders that call it once per 32 weights pay no call. */
static inline void tern_ref_q4_k_scale_min(int j, const uint8_t *s, int *scale, int *min) {
    if (j < 4) {
        *scale = s[j] & 63;
        *min = s[j + 4] & 63;
    } else {
        *scale = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Decode n elements (a multiple of the type's block size) of a row of F32/F16/BF16/Q8_0/Q4_K/Q6_K. */
void tern_ref_dequant_row(float *out, const void *row, uint32_t type, int64_t n);

/* out[r - row_begin] = dot(row r of t, x) for r in [row_begin, row_end): embedding-head matvec,
 * rows decoded to f32 per the tensor's type. x has t->ne0 elements. */
void tern_ref_matvec(float *out, const struct tern_tensor *t, const float *x, int64_t row_begin,
                     int64_t row_end);

/* tern_ref_matvec of each x[i] into out[i]: the kernel table's matvec_tokens. */
void tern_ref_matvec_tokens(float *const *out, const struct tern_tensor *t, const float *const *x, int n_tok,
                            int64_t row_begin, int64_t row_end);

/* The certified head's shadow logits: out[k][r - row_begin] = sum over blocks b of
 * (d_b * t_b) * I_b for x[k] (k < n_tok, r in [row_begin, row_end)), I_b = sum (q_i - 128)
 * (128 p_i + p2_i) the exact block dot; SIMD levels sum in another order, within the bound of
 * scheduler/head_cert.h. */
void tern_ref_shadow_dot(float *const *out, const struct tern_head_shadow *s,
                         const struct tern_head_xq *const *x, int n_tok, int64_t row_begin, int64_t row_end);

#endif
