/* Element-wise ops of the block: FFN gating (ReLU^2 or SiLU of the gate times up) and residual adds.
 * One item per element, grid rounded up to the work-group size. */

__kernel void tern_ffn_act(__global float *out, __global const float *gate, __global const float *up, long n,
                           int silu) {
    const size_t i = get_global_id(0);
    if (i >= (size_t)n)
        return;
    const float g = gate[i];
    float a;
    if (silu) {
        a = g / (1.0f + exp(-g));
    } else {
        const float r = g > 0.0f ? g : 0.0f;
        a = r * r;
    }
    out[i] = a * up[i];
}

__kernel void tern_add(__global float *y, __global const float *x, long n) {
    const size_t i = get_global_id(0);
    if (i < (size_t)n)
        y[i] = y[i] + x[i];
}
