/* The certified head's int8 shadow (scheduler/head_cert.h), in typed.cl's matvec frame:
 * out[i] = sum over the row's blocks b of scales[row][b] * (sum over the block of (q - 128) x), in
 * f32 (the shadow's float dot, the case delta = 0 of the bound). Rows of q are row_bytes (= n) bytes,
 * scales n_blocks floats a row; each lane takes 32-element units (TERN_XCHUNK is a multiple of 256, so
 * a unit lies in one block). */
__kernel void tern_shadow_matvec(TERN_MATVEC_ARGS, __global const float *scales, int n_blocks) {
    TERN_MATVEC_BEGIN
    const long r = TERN_ROW_OF(min(i_row, n_rows - 1));
    for (int u = lane; u < len / 32; u += TERN_LPR) {
        __global const uchar *qb = row + c0 + 32 * u;
        __local const float *xb = xs + 32 * u;
        float part = 0.0f;
        for (int l = 0; l < 32; l++)
            part += (float)((int)qb[l] - 128) * xb[l];
        acc += scales[r * n_blocks + (c0 + 32 * u) / 256] * part;
    }
    TERN_MATVEC_END
}
