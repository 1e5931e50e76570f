/* The scalar kernel table: the reference kernels behind the kernel-table interface. */
#include "kernels.h"
#include "ref.h"

const struct tern_cpu_kernels tern_cpu_kernels_scalar = {
    .name = "scalar",
    .quantize_act = tern_ref_quantize_act,
    .ternary_matmul = tern_ref_ternary_matmul,
    .matvec = tern_ref_matvec,
    .rmsnorm = tern_ref_rmsnorm,
    .rope = tern_ref_rope,
    .attention = tern_ref_attention,
    .ffn_act = tern_ref_ffn_act,
};
