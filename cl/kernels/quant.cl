/* Per-token int8 activation quantization (BitLinear input, docs/architecture.md#numerics), one
 * work-group per token:
 *   m = max(max|x_i|, 1e-5), s = 127/m, q_i = clamp(rint(x_i * s), -128, 127), q[n..n_pad) = 0.
 * Also writes s (act_scale) and sum_i q_i (sum_q, for the codes-minus-one trick of the ternary
 * kernels). Bit-exact with tern_ref_quantize_act: max and integer sums do not depend on order, the
 * scale is divided with correct rounding, rint rounds half to even. */

__kernel void tern_quantize_act(__global char *q, __global float *act_scale, __global int *sum_q,
                                __global const float *x, int n, int n_pad, int x_stride) {
    __local float redf[TERN_WG];
    __local int redi[TERN_WG];
    const int t = get_group_id(0);
    const int lid = get_local_id(0);
    __global const float *xt = x + (size_t)t * x_stride;
    __global char *qt = q + (size_t)t * n_pad;

    float m = 0.0f;
    for (int i = lid; i < n; i += TERN_WG)
        m = fmax(m, fabs(xt[i]));
    m = tern_wg_max_f(m, redf);
    const float s = tern_div(127.0f, fmax(m, 1e-5f));

    int sum = 0;
    for (int i = lid; i < n_pad; i += TERN_WG) {
        int v = 0;
        if (i < n)
            v = (int)clamp(rint(xt[i] * s), -128.0f, 127.0f);
        qt[i] = (char)v;
        sum += v;
    }
    sum = tern_wg_sum_i(sum, redi);
    if (lid == 0) {
        act_scale[t] = s;
        sum_q[t] = sum;
    }
}
