/* Typed rows (the file's own types: F32, F16, BF16, Q8_0, Q4_K, Q6_K; ggml block layouts): the
 * output-head matvec and the embedding lookup. Element values are computed as ggml's dequantizers
 * (and tern_ref_dequant_row) compute them, then used in f32.
 *
 * tern_matvec_<type>: out[t][i] = dot(row row_begin+i (or rows[i]), input t), t < nx (the frame
 *   below). TERN_RPW rows per work-group, TERN_LPR lanes per row; the inputs staged in local memory
 *   TERN_XCHUNK floats at a time. Plain types: lanes read
 *   consecutive elements (coalesced); block types: each lane takes one 32-element unit (a Q8_0 block,
 *   a Q4_K sub-block, a Q6_K quarter-half) with its scales decoded once. Lane sums reduce in local
 *   memory. Grid: row groups.
 * tern_embed: out[t][e] = element e of row tokens[t]; one item per element (a per-token gather, cheap
 *   next to the layers). */

#define TERN_T_F32 0
#define TERN_T_F16 1
#define TERN_T_Q8_0 8
#define TERN_T_Q4_K 12
#define TERN_T_Q6_K 14
#define TERN_T_BF16 30

float tern_f16_at(__global const uchar *p) { return vload_half(0, (__global const half *)p); }

float tern_bf16_at(__global const uchar *p) { return as_float(((uint)p[0] | ((uint)p[1] << 8)) << 16); }

/* Q4_K's 6-bit scale and min of sub-block j (ggml get_scale_min_k4). */
void tern_q4k_scale_min(int j, __global const uchar *s, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Element e of a row of the given type. */
float tern_typed_at(__global const uchar *row, int type, int e) {
    switch (type) {
    case TERN_T_F32:
        return ((__global const float *)row)[e];
    case TERN_T_F16:
        return tern_f16_at(row + 2 * (size_t)e);
    case TERN_T_BF16:
        return tern_bf16_at(row + 2 * (size_t)e);
    case TERN_T_Q8_0: {
        __global const uchar *b = row + (size_t)(e / 32) * 34;
        return tern_f16_at(b) * (float)((__global const char *)b)[2 + e % 32];
    }
    case TERN_T_Q4_K: {
        __global const uchar *b = row + (size_t)(e / 256) * 144;
        const int i = e % 256, j = i / 32, l = i % 32;
        int sc, mn;
        tern_q4k_scale_min(j, b + 4, &sc, &mn);
        const uchar byte = b[16 + 32 * (j / 2) + l];
        const int nib = (j & 1) ? byte >> 4 : byte & 0xF;
        return tern_f16_at(b) * (float)sc * (float)nib - tern_f16_at(b + 2) * (float)mn;
    }
    case TERN_T_Q6_K: {
        __global const uchar *b = row + (size_t)(e / 256) * 210;
        const int i = e % 256, h = i / 128, qq = (i % 128) / 32, l = i % 32;
        const uchar lo = b[64 * h + l + 32 * (qq & 1)];
        const int low = (qq >> 1) ? lo >> 4 : lo & 0xF;
        const int hi = (b[128 + 32 * h + l] >> (2 * qq)) & 3;
        const int v = (low | (hi << 4)) - 32;
        const int sc = ((__global const char *)b)[192 + 8 * h + l / 16 + 2 * qq];
        return tern_f16_at(b + 208) * (float)sc * (float)v;
    }
    default:
        return 0.0f;
    }
}

__kernel void tern_embed(__global float *out, __global const uchar *table, __global const int *tokens, int n,
                         ulong row_bytes, int type) {
    const int e = get_global_id(0);
    const int t = get_global_id(1);
    if (e >= n)
        return;
    out[(size_t)t * n + e] = tern_typed_at(table + (size_t)tokens[t] * row_bytes, type, e);
}

/* ---- matvec: the shared frame. Inputs x0 .. x0 + nx - 1 (rows of n floats in x, nx <=
 * TERN_MATVEC_MAX_NX) share each pass over the weights: a decode step of several sequences reads the
 * head once. out[t][n_rows] gets input t's dots. Every input has its own accumulator, fed the same
 * operations in the same order whatever nx, so a token's logits do not depend on its batch: xs
 * holds a chunk of cw = TERN_XCHUNK / nx elements (a multiple of 32) of each input, and a lane takes
 * the elements (or groups of g, TERN_FIRST) whose global index is its own modulo TERN_LPR, in
 * increasing order, for any chunk width. TERN_EACH_X(stmt) runs stmt for t < nx. */

/* Row i of the call: row_begin + i, or rows[i] when a row list is given (the certified head's
 * candidates: the same arithmetic as the full head's, so the same bits). */
#define TERN_ROW_OF(i) (rows ? (long)rows[i] : row_begin + (i))

#define TERN_EACH_X(...) TERN_FOR_EACH_T(nx, __VA_ARGS__)

/* The lane's first group of g elements in the chunk at c0 (a multiple of g). */
#define TERN_FIRST(c0, g) ((lane - ((c0) / (g)) % TERN_LPR + TERN_LPR) % TERN_LPR)

#define TERN_MATVEC_BEGIN                                                                     \
    __local float xs[TERN_XCHUNK];                                                            \
    __local float red[TERN_WG];                                                               \
    const int lid = get_local_id(0);                                                          \
    const int lane = lid % TERN_LPR;                                                          \
    const int i_row = get_group_id(0) * TERN_RPW + lid / TERN_LPR;                            \
    __global const uchar *row = w + (size_t)TERN_ROW_OF(min(i_row, n_rows - 1)) * row_bytes;  \
    const int cw = TERN_XCHUNK / nx / 32 * 32;                                                \
    float acc[TERN_MATVEC_MAX_NX];                                                            \
    TERN_EACH_X(acc[t] = 0.0f)                                                                \
    for (int c0 = 0; c0 < n; c0 += cw) {                                                      \
        const int len = min(cw, n - c0);                                                      \
        barrier(CLK_LOCAL_MEM_FENCE);                                                         \
        for (int t = 0; t < nx; t++)                                                          \
            for (int i = lid; i < len; i += TERN_WG)                                          \
                xs[t * cw + i] = x[(size_t)(x0 + t) * n + c0 + i];                            \
        barrier(CLK_LOCAL_MEM_FENCE);

#define TERN_MATVEC_END                                       \
    }                                                         \
    for (int t = 0; t < nx; t++) {                            \
        barrier(CLK_LOCAL_MEM_FENCE);                         \
        red[lid] = acc[t];                                    \
        barrier(CLK_LOCAL_MEM_FENCE);                         \
        for (int s = TERN_LPR / 2; s > 0; s >>= 1) {          \
            if (lane < s)                                     \
                red[lid] += red[lid + s];                     \
            barrier(CLK_LOCAL_MEM_FENCE);                     \
        }                                                     \
        if (lane == 0 && i_row < n_rows)                      \
            out[(size_t)t * n_rows + i_row] = red[lid];       \
    }

#define TERN_MATVEC_ARGS                                                                                      \
    __global float *out, __global const uchar *w, __global const float *x, int n, int n_rows, ulong row_bytes, \
        long row_begin, __global const int *rows, int nx, int x0

__kernel void tern_matvec_f32(TERN_MATVEC_ARGS) {
    TERN_MATVEC_BEGIN
    __global const float *r = (__global const float *)row + c0;
    for (int i = TERN_FIRST(c0, 1); i < len; i += TERN_LPR)
        TERN_EACH_X(acc[t] += r[i] * xs[t * cw + i])
    TERN_MATVEC_END
}

#if TERN_CPU_KERNELS
/* CPU drivers: one item per row (TERN_LPR is 1 there), x read straight from global memory (it stays
 * in cache), 16 partial sums per input in a float16 that the compiler keeps in one vector register. */
__kernel void tern_matvec_f16(TERN_MATVEC_ARGS) {
    const int i_row = get_global_id(0);
    if (i_row >= n_rows)
        return;
    __global const half *r = (__global const half *)(w + (size_t)TERN_ROW_OF(i_row) * row_bytes);
    __global const float *xt = x + (size_t)x0 * n;
    float16 acc16[TERN_MATVEC_MAX_NX];
    TERN_EACH_X(acc16[t] = 0.0f)
    int i = 0;
    for (; i + 15 < n; i += 16) {
        const float16 v = vload_half16(0, r + i);
        TERN_EACH_X(acc16[t] += v * vload16(0, xt + (size_t)t * n + i))
    }
    TERN_EACH_X(const float8 a8 = acc16[t].lo + acc16[t].hi; const float4 a4 = a8.lo + a8.hi;
                float acc = (a4.x + a4.y) + (a4.z + a4.w);
                for (int k = i; k < n; k++) acc += vload_half(k, r) * xt[(size_t)t * n + k];
                out[(size_t)t * n_rows + i_row] = acc)
}
#else
__kernel void tern_matvec_f16(TERN_MATVEC_ARGS) {
    TERN_MATVEC_BEGIN
    __global const half *r = (__global const half *)row + c0;
    int i = TERN_FIRST(c0, 4) * 4;
    for (; i + 3 < len; i += TERN_LPR * 4) {
        const float4 v = TERN_LOAD_HALF4(0, r + i);
        TERN_EACH_X(__local const float *xi = xs + t * cw + i;
                    acc[t] += v.x * xi[0] + v.y * xi[1] + v.z * xi[2] + v.w * xi[3])
    }
    for (int k = i; k < len && k < i + 4; k++) /* the ragged end (n % 4 != 0) */
        TERN_EACH_X(acc[t] += vload_half(k, r) * xs[t * cw + k])
    TERN_MATVEC_END
}
#endif

__kernel void tern_matvec_bf16(TERN_MATVEC_ARGS) {
    TERN_MATVEC_BEGIN
    __global const ushort *r = (__global const ushort *)row + c0;
    for (int i = TERN_FIRST(c0, 1); i < len; i += TERN_LPR)
        TERN_EACH_X(acc[t] += as_float((uint)r[i] << 16) * xs[t * cw + i])
    TERN_MATVEC_END
}

/* Block types: chunks are multiples of 32 elements, so they hold whole 32-element units. */
__kernel void tern_matvec_q8_0(TERN_MATVEC_ARGS) {
    TERN_MATVEC_BEGIN
    for (int u = TERN_FIRST(c0, 32); u < len / 32; u += TERN_LPR) {
        __global const uchar *b = row + (size_t)(c0 / 32 + u) * 34;
        __global const char *qv = (__global const char *)(b + 2);
        const float d = tern_f16_at(b);
        for (int l = 0; l < 32; l++) {
            const float wv = d * (float)qv[l];
            TERN_EACH_X(acc[t] += wv * xs[t * cw + 32 * u + l])
        }
    }
    TERN_MATVEC_END
}

__kernel void tern_matvec_q4_k(TERN_MATVEC_ARGS) {
    TERN_MATVEC_BEGIN
    for (int u = TERN_FIRST(c0, 32); u < len / 32; u += TERN_LPR) {
        const int gu = c0 / 32 + u, j = gu % 8;
        __global const uchar *b = row + (size_t)(gu / 8) * 144;
        int sc, mn;
        tern_q4k_scale_min(j, b + 4, &sc, &mn);
        const float d1 = tern_f16_at(b) * (float)sc, m1 = tern_f16_at(b + 2) * (float)mn;
        __global const uchar *qb = b + 16 + 32 * (j / 2);
        const int shift = (j & 1) * 4;
        for (int l = 0; l < 32; l++) {
            const float wv = d1 * (float)((qb[l] >> shift) & 0xF) - m1;
            TERN_EACH_X(acc[t] += wv * xs[t * cw + 32 * u + l])
        }
    }
    TERN_MATVEC_END
}

__kernel void tern_matvec_q6_k(TERN_MATVEC_ARGS) {
    TERN_MATVEC_BEGIN
    for (int u = TERN_FIRST(c0, 32); u < len / 32; u += TERN_LPR) {
        const int gu = c0 / 32 + u, j = gu % 8, h = j / 4, qq = j % 4;
        __global const uchar *b = row + (size_t)(gu / 8) * 210;
        __global const uchar *ql = b + 64 * h + 32 * (qq & 1);
        __global const uchar *qh = b + 128 + 32 * h;
        __global const char *scs = (__global const char *)(b + 192 + 8 * h + 2 * qq);
        const float d = tern_f16_at(b + 208);
        const float d0 = d * (float)scs[0], d1 = d * (float)scs[1];
        const int lshift = (qq >> 1) * 4, hshift = 2 * qq;
        for (int l = 0; l < 32; l++) {
            const int v = (((ql[l] >> lshift) & 0xF) | (((qh[l] >> hshift) & 3) << 4)) - 32;
            const float wv = (l < 16 ? d0 : d1) * (float)v;
            TERN_EACH_X(acc[t] += wv * xs[t * cw + 32 * u + l])
        }
    }
    TERN_MATVEC_END
}
