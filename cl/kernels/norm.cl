/* RMSNorm, one work-group per token row: out = x * (1 / sqrt(mean(x^2) + eps)) * w. The sum of
 * squares is an f32 work-group reduction (the reference accumulates in double; the difference is
 * far inside the per-op NMSE limit). out may alias x: every item reads its elements before the
 * reduction's barriers and writes the same elements after. */

__kernel void tern_rmsnorm(__global float *out, __global const float *x, __global const float *w, int n,
                           float eps) {
    __local float red[TERN_WG];
    const int t = get_group_id(0);
    const int lid = get_local_id(0);
    __global const float *xt = x + (size_t)t * n;
    __global float *ot = out + (size_t)t * n;
    float sum = 0.0f;
    for (int i = lid; i < n; i += TERN_WG)
        sum += xt[i] * xt[i];
    sum = tern_wg_sum_f(sum, red);
    const float mean = sum / (float)n;
    const float scale = 1.0f / sqrt(mean + eps);
    for (int i = lid; i < n; i += TERN_WG)
        ot[i] = (xt[i] * scale) * w[i];
}
