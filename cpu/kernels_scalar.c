/* The scalar kernel table: the reference kernels behind the kernel-table interface. */
#include "kernels.h"
#include "ref.h"

/* the reference sums (code - 1) * q directly and needs no sum q */
static void scalar_ternary_matmul(float *y, const struct tern_ternary *w, const int8_t *q,
                                  const float *act_scale, const int32_t *sum_q, int64_t n_tok,
                                  int64_t row_begin, int64_t row_end) {
    (void)sum_q;
    tern_ref_ternary_matmul(y, w, q, act_scale, n_tok, row_begin, row_end);
}

const struct tern_cpu_kernels tern_cpu_kernels_scalar = {
    .name = "scalar",
    .quantize_act = tern_ref_quantize_act,
    .ternary_matmul = scalar_ternary_matmul,
    .matvec = tern_ref_matvec,
    .matvec_tokens = tern_ref_matvec_tokens,
    .rmsnorm = tern_ref_rmsnorm,
    .rope = tern_ref_rope_apply,
    .attention = tern_ref_attention,
    .ffn_act = tern_ref_ffn_act,
    .add_norm_quantize = tern_ref_add_norm_quantize,
    .act_norm_quantize = tern_ref_act_norm_quantize,
    .f16_row = tern_ref_f16_row,
    .head_shadow = tern_head_shadow_rows,
    .shadow_dot = tern_ref_shadow_dot,
};
