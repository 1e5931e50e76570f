/* The certified head's int8 shadow (scheduler/head_cert.h), in typed.cl's matvec frame: for each input
 * t < nx, out[t][i] = sum over the row's blocks b of scales[row][b] * (sum over the block of (q - 128)
 * x_t), in f32 (the shadow's float dot, the case delta = 0 of the bound). Rows of q are row_bytes
 * (= n, a multiple of 32) bytes, scales n_blocks floats a row. */
#if TERN_CPU_KERNELS
/* CPU drivers: one item per row, 16 products at a time per input in a float16, one block's sum per
 * input scaled once (the GPU design's 32-element units, local memory and lane tree compiled to
 * scalar code on PoCL: ~4 GB/s of shadow against the F16 head's ~25). */
__kernel void tern_shadow_matvec(TERN_MATVEC_ARGS, __global const float *scales, int n_blocks) {
    const int i_row = get_global_id(0);
    if (i_row >= n_rows)
        return;
    const long r = TERN_ROW_OF(i_row);
    __global const uchar *q = w + (size_t)r * row_bytes;
    __global const float *xt = x + (size_t)x0 * n;
    float acc[TERN_MATVEC_MAX_NX];
    TERN_EACH_X(acc[t] = 0.0f)
    for (int b = 0; b < n_blocks; b++) {
        const int i0 = 256 * b, i1 = min(i0 + 256, n);
        float16 p[TERN_MATVEC_MAX_NX];
        TERN_EACH_X(p[t] = 0.0f)
        for (int i = i0; i < i1; i += 16) {
            const float16 v = convert_float16(convert_int16(vload16(0, q + i)) - 128);
            TERN_EACH_X(p[t] += v * vload16(0, xt + (size_t)t * n + i))
        }
        const float d = scales[r * n_blocks + b];
        TERN_EACH_X(const float8 a8 = p[t].lo + p[t].hi; const float4 a4 = a8.lo + a8.hi;
                    acc[t] += d * ((a4.x + a4.y) + (a4.z + a4.w)))
    }
    TERN_EACH_X(out[(size_t)t * n_rows + i_row] = acc[t])
}
#else
/* Each lane takes 32-element units (chunks start at multiples of 32, so a unit lies in one block). */
__kernel void tern_shadow_matvec(TERN_MATVEC_ARGS, __global const float *scales, int n_blocks) {
    TERN_MATVEC_BEGIN
    const long r = TERN_ROW_OF(min(i_row, n_rows - 1));
    for (int u = TERN_FIRST(c0, 32); u < len / 32; u += TERN_LPR) {
        __global const uchar *qb = row + c0 + 32 * u;
        const float d = scales[r * n_blocks + (c0 + 32 * u) / 256];
        TERN_EACH_X(__local const float *xb = xs + t * cw + 32 * u; float part = 0.0f;
                    for (int l = 0; l < 32; l++) part += (float)((int)qb[l] - 128) * xb[l];
                    acc[t] += d * part)
    }
    TERN_MATVEC_END
}
#endif
