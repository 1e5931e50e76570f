/* Shared header of tern's OpenCL kernels: prepended to every .cl file of cl/kernels/ to form one
 * program. Tuning macros come from the host as -D options (cl_runtime.c's per-vendor table):
 *   TERN_WG       work-group size of the 1-D kernels (power of two)
 *   TERN_LPR      lanes sharing one row in the matvec kernels (power of two, <= TERN_WG)
 *   TERN_MM_KB    128-weight blocks per local-memory stage of the tiled ternary matmul
 *   TERN_KCHUNK   int8 activations staged in local memory per pass of the ternary matvec (bytes)
 *   TERN_XCHUNK   f32 activations staged per pass of the typed (head) matvec (floats)
 *   TERN_ATT_MAXP attention scores kept in local memory per work-group (positions)
 *   TERN_CPU_KERNELS 1 selects the CPU-driver designs (one item per row, no local memory) of the
 *                 ternary and f16 matvec kernels; 0 the GPU designs (cl_runtime.c decides per device)
 *   TERN_USE_FP16, TERN_USE_SUBGROUPS (+ TERN_INTEL_SUBGROUPS), TERN_USE_DOT, TERN_EXACT_DIV
 *                 1 when the device has cl_khr_fp16, subgroups, cl_khr_integer_dot_product, and
 *                 correctly rounded division; 0 selects the portable fallbacks (TERN_CL_PORTABLE=1).
 * Numerics follow docs/architecture.md#numerics and cpu/ref_*.c: no contraction of a*b+c into fma,
 * so float results stay within a few ulps of the reference and integer results are exact. */

#ifndef TERN_WG
#define TERN_WG 256
#endif
#ifndef TERN_LPR
#define TERN_LPR 16
#endif
#ifndef TERN_MM_KB
#define TERN_MM_KB 2
#endif
#ifndef TERN_KCHUNK
#define TERN_KCHUNK 8192
#endif
#ifndef TERN_XCHUNK
#define TERN_XCHUNK 4096
#endif
#ifndef TERN_CPU_KERNELS
#define TERN_CPU_KERNELS 0
#endif
#ifndef TERN_USE_FP16
#define TERN_USE_FP16 0
#endif
#ifndef TERN_USE_SUBGROUPS
#define TERN_USE_SUBGROUPS 0
#endif
#ifndef TERN_INTEL_SUBGROUPS
#define TERN_INTEL_SUBGROUPS 0
#endif
#ifndef TERN_USE_DOT
#define TERN_USE_DOT 0
#endif
#ifndef TERN_EXACT_DIV
#define TERN_EXACT_DIV 0
#endif

/* Largest head_dim the attention kernel holds in local memory. */
#define TERN_ATT_MAXD 256
/* Positions whose scores the attention kernel keeps in local memory (beyond: recomputed). */
#ifndef TERN_ATT_MAXP
#define TERN_ATT_MAXP 1024
#endif
/* Rows per work-group of the matvec kernels. */
#define TERN_RPW (TERN_WG / TERN_LPR)
/* Inputs (tokens) one pass of the matvec kernels takes (TERN_CL_MATVEC_MAX_NX in cl_runtime.h). */
#define TERN_MATVEC_MAX_NX 4
/* The statements for t = 0 .. n - 1, n <= TERN_MATVEC_MAX_NX, unrolled so that per-input arrays
 * indexed by t stay in registers. */
#define TERN_FOR_EACH_T(n, ...)                                    \
    _Pragma("unroll") for (int t = 0; t < TERN_MATVEC_MAX_NX; t++) \
        if (t < (n)) {                                             \
            __VA_ARGS__;                                           \
        }

#pragma OPENCL FP_CONTRACT OFF

#if TERN_USE_FP16
#pragma OPENCL EXTENSION cl_khr_fp16 : enable
#endif
#if TERN_USE_SUBGROUPS
#if TERN_INTEL_SUBGROUPS
#pragma OPENCL EXTENSION cl_intel_subgroups : enable
#else
#pragma OPENCL EXTENSION cl_khr_subgroups : enable
#endif
#endif
/* The packed dot built-ins exist only where the compiler says so; otherwise fall back quietly. */
#if TERN_USE_DOT && !defined(__opencl_c_integer_dot_product_input_4x8bit_packed)
#undef TERN_USE_DOT
#define TERN_USE_DOT 0
#endif

/* a / b correctly rounded, so quantization scales match the CPU bit for bit. OpenCL allows 2.5 ulp
 * for plain division unless -cl-fp32-correctly-rounded-divide-sqrt was accepted; otherwise one
 * Markstein correction step (exact residual by fma) rounds the quotient correctly. */
float tern_div(float a, float b) {
#if TERN_EXACT_DIV
    return a / b;
#else
    float q = a / b;
    float r = fma(-q, b, a);
    return fma(r, 1.0f / b, q);
#endif
}

/* Half loads: native half vectors with cl_khr_fp16, vload_half (always available) otherwise;
 * both convert exactly. */
#if TERN_USE_FP16
#define TERN_LOAD_HALF4(off, p) convert_float4(vload4((off), (p)))
#else
#define TERN_LOAD_HALF4(off, p) vload_half4((off), (p))
#endif

/* x rounded to the nearest f16 (ties to even) and back, with the conversions every OpenCL device has. */
float tern_round_f16(float x) {
    ushort h;
    vstore_half_rte(x, 0, (__private half *)&h);
    return vload_half(0, (__private const half *)&h);
}

/* Work-group reductions over TERN_WG items (local size must be TERN_WG); red holds TERN_WG
 * entries. Every item gets the result. With subgroups: reduce in each subgroup, then one item adds
 * the subgroup results in order (deterministic); otherwise a local-memory tree. */
#if TERN_USE_SUBGROUPS
#define TERN_DEFINE_WG_REDUCE(NAME, T, OP, SG_OP)                                \
    T NAME(T v, __local T *red) {                                                \
        v = SG_OP(v);                                                            \
        const uint lid = get_local_id(0);                                        \
        barrier(CLK_LOCAL_MEM_FENCE);                                            \
        if (get_sub_group_local_id() == 0)                                       \
            red[get_sub_group_id()] = v;                                         \
        barrier(CLK_LOCAL_MEM_FENCE);                                            \
        if (lid == 0) {                                                          \
            T acc = red[0];                                                      \
            for (uint i = 1; i < get_num_sub_groups(); i++)                      \
                acc = OP(acc, red[i]);                                           \
            red[0] = acc;                                                        \
        }                                                                        \
        barrier(CLK_LOCAL_MEM_FENCE);                                            \
        T r = red[0];                                                            \
        barrier(CLK_LOCAL_MEM_FENCE);                                            \
        return r;                                                                \
    }
#else
#define TERN_DEFINE_WG_REDUCE(NAME, T, OP, SG_OP)                                \
    T NAME(T v, __local T *red) {                                                \
        const uint lid = get_local_id(0);                                        \
        red[lid] = v;                                                            \
        barrier(CLK_LOCAL_MEM_FENCE);                                            \
        for (uint s = TERN_WG / 2; s > 0; s >>= 1) {                             \
            if (lid < s)                                                         \
                red[lid] = OP(red[lid], red[lid + s]);                           \
            barrier(CLK_LOCAL_MEM_FENCE);                                        \
        }                                                                        \
        T r = red[0];                                                            \
        barrier(CLK_LOCAL_MEM_FENCE);                                            \
        return r;                                                                \
    }
#endif

#define TERN_OP_ADD(a, b) ((a) + (b))
TERN_DEFINE_WG_REDUCE(tern_wg_sum_f, float, TERN_OP_ADD, sub_group_reduce_add)
TERN_DEFINE_WG_REDUCE(tern_wg_max_f, float, fmax, sub_group_reduce_max)
TERN_DEFINE_WG_REDUCE(tern_wg_sum_i, int, TERN_OP_ADD, sub_group_reduce_add)

/* Sum of the 4 products of unsigned bytes a (ternary codes 0..2) and signed bytes b. */
int tern_dot4_us(uint a, uint b) {
#if TERN_USE_DOT
    return dot_4x8packed_us_int(a, b);
#else
    int4 p = convert_int4(as_uchar4(a)) * convert_int4(as_char4(b));
    return p.x + p.y + p.z + p.w;
#endif
}
