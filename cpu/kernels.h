/* The CPU device's kernel table. One table per ISA level (scalar reference, AVX2, AVX-VNNI, AVX-512, NEON),
 * chosen once at start; every entry computes the same function as the reference in ref.h
 * (integer parts bit-exact, float parts within NMSE limits). Entries that split work across threads
 * take a row range so the thread pool can hand out slices. */
#ifndef TERN_CPU_KERNELS_H
#define TERN_CPU_KERNELS_H

#include <stdint.h>

#include "../scheduler/device.h"
#include "../scheduler/head_cert.h"

enum { TERN_ATTN_GROUP = 4 };
#define TERN_ATTN_SCRATCH(head_dim, pos) ((int64_t)TERN_ATTN_GROUP * ((int64_t)(head_dim) + (pos) + 1))

/* The attention's K cache is kept in blocks of TERN_ATTN_KBLOCK positions, each block dimension-major
 * (16 positions of dimension 0, then of dimension 1, ...), so a SIMD level computes the scores of 16
 * positions in the lanes of one vector with no horizontal sums (docs/cpu.md, "Attention"). V stays
 * row-major: position p, kv head j, dimension d at v_cache[p * kv_stride + j * head_dim + d]. K's
 * element of the same (p, j, d) is at k_cache[tern_k_index(p, kv_stride, j * head_dim + d)]; a cache of
 * n positions holds whole blocks, tern_k_elems(n, kv_stride) elements (positions past the last
 * written one are read and their lanes discarded, never used). */
enum { TERN_ATTN_KBLOCK = 16 };
static inline int64_t tern_k_index(int64_t p, int64_t kv_stride, int64_t col) {
    return ((p / TERN_ATTN_KBLOCK) * kv_stride + col) * TERN_ATTN_KBLOCK + p % TERN_ATTN_KBLOCK;
}
static inline int64_t tern_k_elems(int64_t n_pos, int64_t kv_stride) {
    return (n_pos + TERN_ATTN_KBLOCK - 1) / TERN_ATTN_KBLOCK * TERN_ATTN_KBLOCK * kv_stride;
}

struct tern_cpu_kernels {
    const char *name; /* "scalar", "avx2", "avxvnni", "avx512", "neon", "neondot" */
    /* see tern_ref_quantize_act */
    float (*quantize_act)(int8_t *q, const float *x, int64_t n, int64_t n_pad, int32_t *sum_q);
    /* rows [row_begin, row_end) of tern_ref_ternary_matmul; y keeps stride w->n_out. sum_q[t] is
     * sum q of token t as quantize_act returned it: kernels that multiply the unsigned codes 0..2
     * subtract it once instead of summing q again in every call. */
    void (*ternary_matmul)(float *y, const struct tern_ternary *w, const int8_t *q, const float *act_scale,
                           const int32_t *sum_q, int64_t n_tok, int64_t row_begin, int64_t row_end);
    /* see tern_ref_matvec (head / embedding-type matvec over a row range) */
    void (*matvec)(float *out, const struct tern_tensor *t, const float *x, int64_t row_begin,
                   int64_t row_end);
    /* matvec for n_tok inputs at once (the head of a step's tokens): out[i][r - row_begin] = row r of t
     * dotted with x[i], the same bits matvec gives x[i] alone; SIMD levels read and decode each row
     * once for all inputs */
    void (*matvec_tokens)(float *const *out, const struct tern_tensor *t, const float *const *x, int n_tok,
                          int64_t row_begin, int64_t row_end);
    void (*rmsnorm)(float *out, const float *x, const float *w, int64_t n, float eps);
    /* see tern_ref_rope_apply: cs and sn are the position's n_rot / 2 angles (tern_ref_rope_table) */
    void (*rope)(float *x, int n_head, int head_dim, int n_rot, const float *cs, const float *sn,
                 enum tern_rope_style style);
    /* see tern_ref_attention; scratch holds TERN_ATTN_SCRATCH(head_dim, pos) floats (more than the
     * reference needs: SIMD kernels take up to TERN_ATTN_GROUP query heads of a kv head at once) */
    void (*attention)(float *out, const float *q, const uint16_t *k_cache, const uint16_t *v_cache,
                      int64_t kv_stride, int pos, int n_head, int n_head_kv, int head_dim, bool stream_kv,
                      float *scratch);
    void (*ffn_act)(float *out, const float *gate, const float *up, int64_t n, enum tern_ffn_act act);
    /* see tern_ref_add_norm_quantize and tern_ref_act_norm_quantize: a token's residual add or FFN
     * gating, norm and quantization in three passes over the token's row, with the bits of the level's own
     * rmsnorm, ffn_act and quantize_act one after the other (y is scratch the reference writes) */
    float (*add_norm_quantize)(int8_t *q, float *y, float *x, const float *add, const float *w, int64_t n,
                               int64_t n_pad, float eps, int32_t *sum_q);
    float (*act_norm_quantize)(int8_t *q, float *y, float *gate, const float *up, const float *w, int64_t n,
                               int64_t n_pad, float eps, enum tern_ffn_act act, int32_t *sum_q);
    /* see tern_ref_f16_row (bit-exact) */
    void (*f16_row)(uint16_t *dst, const float *x, int64_t n);
    /* rows [row_begin, row_end) of the certified head's shadow blob (weights, scales, bound
     * coefficients): see tern_head_shadow_rows (scheduler/head_cert.h), the reference */
    void (*head_shadow)(void *blob, const struct tern_tensor *head, int64_t row_begin, int64_t row_end);
    /* see tern_ref_shadow_dot: the shadow's logits of rows [row_begin, row_end) for n_tok quantized
     * inputs; SIMD levels read each row once for up to 4 inputs, and every input gets the bits it gets
     * alone */
    void (*shadow_dot)(float *const *out, const struct tern_head_shadow *s,
                       const struct tern_head_xq *const *x, int n_tok, int64_t row_begin, int64_t row_end);
    /* The compute probe of `tern bench` (cpu/peak.h): `rounds` rounds of the level's int8 dot instruction
     * (the one its ternary product is built on) in independent chains; returns the multiply-adds done.
     * NULL where the level has none (scalar, NEON). */
    int64_t (*dot_peak)(int64_t rounds);
};

/* The scalar reference table. */
extern const struct tern_cpu_kernels tern_cpu_kernels_scalar;

/* The table for this machine: the best level the CPU and OS support, or the one TERN_CPU_ISA
 * forces (an unsupported forced level is an error: returns NULL and logs why). */
const struct tern_cpu_kernels *tern_cpu_kernels_select(void);

#endif
