/* Ternary products on the shared packed format (docs/architecture.md#packed-weights): rows of
 * k_pad/4 bytes, 32-byte blocks of 128 weights, byte i of a block holding weights i, i+32, i+64,
 * i+96 in bit pairs 7:6, 5:4, 3:2, 1:0, codes c = t + 1 in {0,1,2}.
 *
 * One 32-bit word of a row (bytes 4u..4u+3 of block b) masked with (w >> (6-2j)) & 0x03030303 gives
 * four codes that multiply four *consecutive* activations, q[128b + 32j + 4(u%8) .. +3]: so the inner
 * loop is four packed 4x8-bit dot products per word (cl_khr_integer_dot_product when present), with
 * no per-element branch on the codes. acc = sum c*q - sum q = sum t*q exactly (int32).
 * Output, in the reference's order: y = (float)acc / act_scale * scale * out_scale (+ y with
 * accumulate, for the residual adds), optional acc_out[] gets acc itself (tests compare it exactly).
 *
 * tern_ternary_matvec (decode, few tokens): TERN_RPW rows per work-group, TERN_LPR lanes per row
 *   reading consecutive words of the row (coalesced), for up to TERN_MATVEC_MAX_NX tokens (a decode
 *   step of a few sequences reads each row once), their activations staged in local memory
 *   TERN_KCHUNK bytes at a time, lane sums reduced in local memory. Grid: (row groups, token groups).
 * tern_ternary_matmul (prefill): a tile of TERN_WG/4 rows x 32 tokens per work-group; each item owns
 *   one row and 8 tokens (8 int accumulators); per stage TERN_MM_KB blocks of the rows' codes and of
 *   the 32 tokens' activations are staged in local memory with coalesced loads.
 * With TERN_CPU_KERNELS (CPU drivers) both kernels are replaced by the row-per-item design at the end
 * of this file. */

#define TERN_MM_TM (TERN_WG / 4)        /* rows per matmul tile */
#define TERN_MM_TN 32                   /* tokens per matmul tile */
#define TERN_MM_WPR (8 * TERN_MM_KB + 1) /* words per staged row (+1 against bank conflicts) */

float tern_ternary_out(int acc, float act_scale, float scale, float out_scale) {
    return tern_div((float)acc, act_scale) * scale * out_scale;
}

#if !TERN_CPU_KERNELS

__kernel void tern_ternary_matvec(__global float *y, __global int *acc_out, __global const uint *w,
                                  __global const uint *q, __global const float *act_scale,
                                  __global const int *sum_q, int n_out, int row_words, int y_stride,
                                  float scale, float out_scale, int accumulate, int n_tok) {
    __local uint qs[TERN_KCHUNK / 4];
    __local int red[TERN_WG];
    const int lid = get_local_id(0);
    const int lane = lid % TERN_LPR;
    const int row = get_group_id(0) * TERN_RPW + lid / TERN_LPR;
    const int t0 = get_group_id(1) * TERN_MATVEC_MAX_NX, nt = min(TERN_MATVEC_MAX_NX, n_tok - t0);
    const int q_words = row_words * 4; /* k_pad / 4 */
    const int cw = TERN_KCHUNK / 4 / nt / 32 * 32; /* words of q staged per token: whole blocks */
    __global const uint *wr = w + (size_t)min(row, n_out - 1) * row_words;

    int acc[TERN_MATVEC_MAX_NX];
    TERN_FOR_EACH_T(nt, acc[t] = 0)
    for (int c0 = 0; c0 < q_words; c0 += cw) {
        const int len = min(cw, q_words - c0); /* words of q, a multiple of 32 */
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int t = 0; t < nt; t++)
            for (int i = lid; i < len; i += TERN_WG)
                qs[t * cw + i] = q[(size_t)(t0 + t) * q_words + c0 + i];
        barrier(CLK_LOCAL_MEM_FENCE);
        __global const uint *wc = wr + c0 / 4;
        for (int u = lane; u < len / 4; u += TERN_LPR) {
            const uint word = wc[u];
            const uint p6 = (word >> 6) & 0x03030303u, p4 = (word >> 4) & 0x03030303u;
            const uint p2 = (word >> 2) & 0x03030303u, p0 = word & 0x03030303u;
            TERN_FOR_EACH_T(nt, __local const uint *qb = qs + t * cw + (u >> 3) * 32 + (u & 7);
                            acc[t] += tern_dot4_us(p6, qb[0]) + tern_dot4_us(p4, qb[8]) +
                                      tern_dot4_us(p2, qb[16]) + tern_dot4_us(p0, qb[24]))
        }
    }
    for (int t = 0; t < nt; t++) {
        barrier(CLK_LOCAL_MEM_FENCE);
        red[lid] = acc[t];
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int s = TERN_LPR / 2; s > 0; s >>= 1) {
            if (lane < s)
                red[lid] += red[lid + s];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        if (lane == 0 && row < n_out) {
            const int a = red[lid] - sum_q[t0 + t];
            const size_t o = (size_t)(t0 + t) * y_stride + row;
            if (acc_out)
                acc_out[o] = a;
            const float v = tern_ternary_out(a, act_scale[t0 + t], scale, out_scale);
            y[o] = accumulate ? y[o] + v : v;
        }
    }
}

__kernel void tern_ternary_matmul(__global float *y, __global int *acc_out, __global const uint *w,
                                  __global const uint *q, __global const float *act_scale,
                                  __global const int *sum_q, int n_out, int row_words, int y_stride,
                                  float scale, float out_scale, int accumulate, int n_tok) {
    __local uint ws[TERN_MM_TM * TERN_MM_WPR];
    __local uint qs[TERN_MM_TN * 32 * TERN_MM_KB];
    const int lid = get_local_id(0);
    const int r_loc = lid % TERN_MM_TM;
    const int tg = lid / TERN_MM_TM; /* token group 0..3: tokens tg*8 .. tg*8+7 of the tile */
    const int row0 = get_group_id(0) * TERN_MM_TM;
    const int tok0 = get_group_id(1) * TERN_MM_TN;
    const int q_words = row_words * 4;
    const int n_blocks = row_words / 8;

    int acc[8];
    for (int i = 0; i < 8; i++)
        acc[i] = 0;

    for (int b0 = 0; b0 < n_blocks; b0 += TERN_MM_KB) {
        barrier(CLK_LOCAL_MEM_FENCE);
        /* codes: TM rows x 8*KB words; consecutive items read consecutive words of a row */
        for (int i = lid; i < TERN_MM_TM * 8 * TERN_MM_KB; i += TERN_WG) {
            const int r = i / (8 * TERN_MM_KB), u = i % (8 * TERN_MM_KB);
            const int row = row0 + r, blk = b0 + u / 8;
            uint v = 0x55555555u; /* code 1 = zero weight outside the matrix */
            if (row < n_out && blk < n_blocks)
                v = w[(size_t)row * row_words + b0 * 8 + u];
            ws[r * TERN_MM_WPR + u] = v;
        }
        /* activations: TN tokens x 32*KB words */
        for (int i = lid; i < TERN_MM_TN * 32 * TERN_MM_KB; i += TERN_WG) {
            const int tt = i / (32 * TERN_MM_KB), u = i % (32 * TERN_MM_KB);
            const int tok = tok0 + tt, blk = b0 + u / 32;
            uint v = 0;
            if (tok < n_tok && blk < n_blocks)
                v = q[(size_t)tok * q_words + b0 * 32 + u];
            qs[i] = v;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int kb = 0; kb < TERN_MM_KB; kb++) {
            for (int u = 0; u < 8; u++) {
                const uint word = ws[r_loc * TERN_MM_WPR + kb * 8 + u];
                const uint c0 = (word >> 6) & 0x03030303u, c1 = (word >> 4) & 0x03030303u;
                const uint c2 = (word >> 2) & 0x03030303u, c3 = word & 0x03030303u;
                for (int i = 0; i < 8; i++) {
                    __local const uint *qb = qs + (tg * 8 + i) * 32 * TERN_MM_KB + kb * 32 + u;
                    acc[i] += tern_dot4_us(c0, qb[0]) + tern_dot4_us(c1, qb[8]) + tern_dot4_us(c2, qb[16]) +
                              tern_dot4_us(c3, qb[24]);
                }
            }
        }
    }
    const int row = row0 + r_loc;
    if (row >= n_out)
        return;
    for (int i = 0; i < 8; i++) {
        const int t = tok0 + tg * 8 + i;
        if (t < n_tok) {
            const int a = acc[i] - sum_q[t];
            const size_t o = (size_t)t * y_stride + row;
            if (acc_out)
                acc_out[o] = a;
            const float v = tern_ternary_out(a, act_scale[t], scale, out_scale);
            y[o] = accumulate ? y[o] + v : v;
        }
    }
}
#else /* TERN_CPU_KERNELS */

/* CPU drivers (PoCL, Intel's CPU runtime) run a work-group's items as a loop, split that loop at
 * every barrier (private values live across it go through memory) and vectorize straight-line vector
 * code well, but not lanes of one row reduced through local memory. So here one item owns one row:
 * the matvec one token of it (grid: rows, tokens), the matmul TERN_CPU_NT tokens, decoding each block
 * of codes once for all of them (the weights, the big stream, are read once per TERN_CPU_NT tokens).
 * No local memory, no barrier. Per 128-weight block: its 32 code bytes as two uchar16, shifted and
 * masked per bit pair into eight short16 of codes that line up with the block's 128 activations as
 * eight char16; the eight products per lane (|c*q| <= 256) sum in a short, then widen into int16
 * accumulators. Integer sums are exact whatever the order, so results equal the GPU kernels'. */

#define TERN_CPU_NT 8 /* tokens per item of the matmul */

int tern_hsum_int16(int16 v) {
    const int8 a = v.lo + v.hi;
    const int4 b = a.lo + a.hi;
    const int2 c = b.lo + b.hi;
    return c.x + c.y;
}

/* 16-byte loads at any byte address: code rows and activation rows are only 32-byte aligned when
 * the host's buffers are, and vload16 on bytes compiles to byte-pair loads on PoCL. */
typedef uchar16 tern_uchar16_u __attribute__((aligned(1)));
typedef char16 tern_char16_u __attribute__((aligned(1)));
#define TERN_LD_U16(p) (*(__global const tern_uchar16_u *)(p))
#define TERN_LD_C16(p) (*(__global const tern_char16_u *)(p))

/* The codes of the 128-weight block at wb: c<i> multiplies activations 16i .. 16i+15 of the block. */
#define TERN_CPU_CODES(wb)                                                                            \
    const uchar16 w0_ = TERN_LD_U16(wb), w1_ = TERN_LD_U16((wb) + 16);                             \
    const short16 c0 = convert_short16(w0_ >> (uchar)6), c1 = convert_short16(w1_ >> (uchar)6);       \
    const short16 c2 = convert_short16((w0_ >> (uchar)4) & (uchar)3);                                 \
    const short16 c3 = convert_short16((w1_ >> (uchar)4) & (uchar)3);                                 \
    const short16 c4 = convert_short16((w0_ >> (uchar)2) & (uchar)3);                                 \
    const short16 c5 = convert_short16((w1_ >> (uchar)2) & (uchar)3);                                 \
    const short16 c6 = convert_short16(w0_ & (uchar)3), c7 = convert_short16(w1_ & (uchar)3)

/* sum c*q over the block, 16 lanes (eight products each, |sum| <= 2048: exact in a short). */
#define TERN_CPU_DOT(qb)                                                                              \
    convert_int16(c0 * convert_short16(TERN_LD_C16(qb)) + c1 * convert_short16(TERN_LD_C16((qb) + 16)) + \
                  c2 * convert_short16(TERN_LD_C16((qb) + 32)) + c3 * convert_short16(TERN_LD_C16((qb) + 48)) + \
                  c4 * convert_short16(TERN_LD_C16((qb) + 64)) + c5 * convert_short16(TERN_LD_C16((qb) + 80)) + \
                  c6 * convert_short16(TERN_LD_C16((qb) + 96)) + c7 * convert_short16(TERN_LD_C16((qb) + 112)))

void tern_ternary_store(__global float *y, __global int *acc_out, int a, size_t o, float act_scale, float scale,
                        float out_scale, int accumulate) {
    if (acc_out)
        acc_out[o] = a;
    const float v = tern_ternary_out(a, act_scale, scale, out_scale);
    y[o] = accumulate ? y[o] + v : v;
}

__kernel void tern_ternary_matvec(__global float *y, __global int *acc_out, __global const uint *w,
                                  __global const uint *q, __global const float *act_scale,
                                  __global const int *sum_q, int n_out, int row_words, int y_stride,
                                  float scale, float out_scale, int accumulate, int n_tok) {
    const int row = get_global_id(0);
    const int t = get_global_id(1);
    if (row >= n_out)
        return;
    __global const uchar *wr = (__global const uchar *)(w + (size_t)row * row_words);
    __global const char *qt = (__global const char *)(q + (size_t)t * row_words * 4);
    int16 acc = 0;
    for (int b = 0; b < row_words / 8; b++) {
        TERN_CPU_CODES(wr + 32 * b);
        acc += TERN_CPU_DOT(qt + 128 * b);
    }
    tern_ternary_store(y, acc_out, tern_hsum_int16(acc) - sum_q[t], (size_t)t * y_stride + row, act_scale[t],
                       scale, out_scale, accumulate);
}

__kernel void tern_ternary_matmul(__global float *y, __global int *acc_out, __global const uint *w,
                                  __global const uint *q, __global const float *act_scale,
                                  __global const int *sum_q, int n_out, int row_words, int y_stride,
                                  float scale, float out_scale, int accumulate, int n_tok) {
    const int row = get_global_id(0);
    const int t0 = get_global_id(1) * TERN_CPU_NT;
    if (row >= n_out)
        return;
    __global const uchar *wr = (__global const uchar *)(w + (size_t)row * row_words);
    __global const char *qt = (__global const char *)q;
    const size_t q_bytes = (size_t)row_words * 16;
    const int nt = min(TERN_CPU_NT, n_tok - t0); /* the same for every item: a uniform branch */
    int16 acc[TERN_CPU_NT];
    for (int i = 0; i < TERN_CPU_NT; i++)
        acc[i] = 0;
    for (int b = 0; b < row_words / 8; b++) {
        TERN_CPU_CODES(wr + 32 * b);
#pragma unroll
        for (int i = 0; i < TERN_CPU_NT; i++)
            if (i < nt)
                acc[i] += TERN_CPU_DOT(qt + (size_t)(t0 + i) * q_bytes + 128 * b);
    }
    for (int i = 0; i < nt; i++)
        tern_ternary_store(y, acc_out, tern_hsum_int16(acc[i]) - sum_q[t0 + i], (size_t)(t0 + i) * y_stride + row,
                           act_scale[t0 + i], scale, out_scale, accumulate);
}

#endif
