/* RoPE in place on rows of heads, one item per rotated pair: grid (n_rot/2, n_head, tokens).
 * Pairing: NEOX (i, i + n_rot/2) for the bitnet archs, NORM (2i, 2i+1) for llama files. The angle is
 * pos * theta_scale^i built by i successive products, exactly as the reference builds it, so only
 * cos/sin (a few ulps in OpenCL) differ from the CPU. */

__kernel void tern_rope(__global float *x, int head_dim, int n_rot, int row_stride, __global const int *pos,
                        float theta_scale, int neox) {
    const int i = get_global_id(0);
    const int h = get_global_id(1);
    const int t = get_global_id(2);
    if (i >= n_rot / 2)
        return;
    float angle = (float)pos[t];
    for (int k = 0; k < i; k++)
        angle *= theta_scale;
    const float c = cos(angle), s = sin(angle);
    __global float *v = x + (size_t)t * row_stride + (size_t)h * head_dim;
    const int a = neox ? i : 2 * i;
    const int b = neox ? i + n_rot / 2 : 2 * i + 1;
    const float x0 = v[a], x1 = v[b];
    v[a] = x0 * c - x1 * s;
    v[b] = x0 * s + x1 * c;
}
