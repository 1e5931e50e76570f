/* Causal attention over an f16 KV cache (stored as IEEE half through vload_half/vstore_half, which
 * need no cl_khr_fp16). Cache layout per layer: [n_seq][n_ctx][n_head_kv * head_dim]; token t of a
 * batch is at position pos[t] of sequence seq[t]; query head h reads kv head h / (n_head / n_head_kv)
 * (GQA).
 *
 * tern_kv_store: cache row (seq[t], pos[t]) <- k[t], v[t], rounded to nearest even. Grid (kv_dim,
 * tokens).
 * tern_attention: one work-group per (head, token), the reference's computation (ggml's f16 KV path):
 *   the query rounded to f16 and staged in local memory; pass 1: each item scores positions
 *   lid, lid+WG, ... (dot over head_dim in the reference's order) into local memory (up to
 *   TERN_ATT_MAXP positions; later ones are recomputed) and the group takes the max; pass 2: exp and
 *   the group sum; pass 3, TERN_WG positions at a time: weights exp/sum rounded to f16, then items
 *   owning output dimensions accumulate weight * v in position order, reading v rows coalesced.
 *   Differences from the CPU: exp (a few ulps) and the f32 (not double) softmax sum. */

#define TERN_ATT_DPT ((TERN_ATT_MAXD + TERN_WG - 1) / TERN_WG) /* output dims per item */

__kernel void tern_kv_store(__global half *k_cache, __global half *v_cache, __global const float *k,
                            __global const float *v, int kv_dim, __global const int *pos,
                            __global const int *seq, int n_ctx) {
    const int i = get_global_id(0);
    const int t = get_global_id(1);
    if (i >= kv_dim)
        return;
    const size_t src = (size_t)t * kv_dim + i;
    const size_t dst = ((size_t)seq[t] * n_ctx + pos[t]) * kv_dim + i;
    vstore_half_rte(k[src], dst, k_cache);
    vstore_half_rte(v[src], dst, v_cache);
}

float tern_att_score(__local const float *qs, __global const half *kr, int head_dim, float scale) {
    float dot = 0.0f;
    int d = 0;
    for (; d + 3 < head_dim; d += 4) {
        const float4 kv = TERN_LOAD_HALF4(0, kr + d);
        dot += qs[d] * kv.x;
        dot += qs[d + 1] * kv.y;
        dot += qs[d + 2] * kv.z;
        dot += qs[d + 3] * kv.w;
    }
    for (; d < head_dim; d++)
        dot += qs[d] * vload_half(d, kr);
    return dot * scale;
}

__kernel void tern_attention(__global float *out, __global const float *q, __global const half *k_cache,
                             __global const half *v_cache, int n_head, int n_head_kv, int head_dim,
                             __global const int *pos_of, __global const int *seq_of, int n_ctx, float scale) {
    __local float qs[TERN_ATT_MAXD];
    __local float sc[TERN_ATT_MAXP];
    __local float wts[TERN_WG];
    __local float red[TERN_WG];
    const int h = get_group_id(0);
    const int t = get_group_id(1);
    const int lid = get_local_id(0);
    const int pos = pos_of[t];
    const int q_dim = n_head * head_dim;
    const int kv_dim = n_head_kv * head_dim;
    const size_t kv_off = (size_t)seq_of[t] * n_ctx * kv_dim + (size_t)(h / (n_head / n_head_kv)) * head_dim;
    __global const half *kh = k_cache + kv_off;

    for (int d = lid; d < head_dim; d += TERN_WG)
        qs[d] = tern_round_f16(q[(size_t)t * q_dim + (size_t)h * head_dim + d]);
    barrier(CLK_LOCAL_MEM_FENCE);

    /* pass 1: scores and their max */
    float m = -INFINITY;
    for (int p = lid; p <= pos; p += TERN_WG) {
        const float s = tern_att_score(qs, kh + (size_t)p * kv_dim, head_dim, scale);
        if (p < TERN_ATT_MAXP)
            sc[p] = s;
        m = fmax(m, s);
    }
    const float max = tern_wg_max_f(m, red);

    /* pass 2: exponentials and their sum (each item revisits its own positions: no barrier needed) */
    float sum = 0.0f;
    for (int p = lid; p <= pos; p += TERN_WG) {
        const float s = p < TERN_ATT_MAXP ? sc[p] : tern_att_score(qs, kh + (size_t)p * kv_dim, head_dim, scale);
        const float e = exp(s - max);
        if (p < TERN_ATT_MAXP)
            sc[p] = e;
        sum += e;
    }
    const float inv_sum = tern_div(1.0f, tern_wg_sum_f(sum, red));

    /* pass 3: f16-rounded weights, weighted sum of v in position order */
    float o[TERN_ATT_DPT];
    for (int k = 0; k < TERN_ATT_DPT; k++)
        o[k] = 0.0f;
    for (int c0 = 0; c0 <= pos; c0 += TERN_WG) {
        const int p = c0 + lid;
        float w = 0.0f;
        if (p <= pos) {
            const float e = p < TERN_ATT_MAXP
                                ? sc[p]
                                : exp(tern_att_score(qs, kh + (size_t)p * kv_dim, head_dim, scale) - max);
            w = tern_round_f16(e * inv_sum);
        }
        barrier(CLK_LOCAL_MEM_FENCE); /* the previous chunk's wts are consumed */
        wts[lid] = w;
        barrier(CLK_LOCAL_MEM_FENCE);
        const int n_p = min(TERN_WG, pos - c0 + 1);
        for (int k = 0; k < TERN_ATT_DPT; k++) {
            const int d = lid + k * TERN_WG;
            if (d < head_dim) {
                float acc = o[k];
                __global const half *vr = v_cache + (size_t)c0 * kv_dim + kv_off + d;
                for (int j = 0; j < n_p; j++)
                    acc += wts[j] * vload_half((size_t)j * kv_dim, vr);
                o[k] = acc;
            }
        }
    }
    for (int k = 0; k < TERN_ATT_DPT; k++) {
        const int d = lid + k * TERN_WG;
        if (d < head_dim)
            out[(size_t)t * q_dim + (size_t)h * head_dim + d] = o[k];
    }
}
