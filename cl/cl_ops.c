/* Kernel launchers: argument binding, grid shapes, shape checks. Each enqueues on the in-order queue
 * and returns; errors keep the OpenCL code in their one log line. */
#include <assert.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "../scheduler/head_cert.h"
#include "../scheduler/log.h"
#include "cl_runtime.h"

/* Tokens at or above this count use the GPU design's tiled matmul (weights read once per 32 tokens;
 * below it the matvec reads them once per 4). */
#define TERN_CL_MATMUL_MIN_TOKENS 4

struct arg {
    size_t size;
    const void *ptr; /* NULL with size sizeof(cl_mem): a NULL buffer */
};

#define A(v) ((struct arg){sizeof(v), &(v)})
#define A_NULLBUF ((struct arg){sizeof(cl_mem), NULL})

static tern_status launch(struct tern_cl_rt *rt, enum tern_cl_kernel k, const char *what, cl_uint dims,
                          const size_t *global, const size_t *local, const struct arg *args, int n_args) {
    cl_kernel kern = rt->kernels[k];
    for (int i = 0; i < n_args; i++) {
        cl_int err = rt->api->clSetKernelArg(kern, (cl_uint)i, args[i].size, args[i].ptr);
        if (err != CL_SUCCESS) {
            tern_log_error("cl: %s: argument %d: %s (%d)", what, i, tern_cl_error_name(err), err);
            return TERN_ERR_INTERNAL;
        }
    }
    for (cl_uint d = 0; d < dims; d++)
        if (global[d] == 0)
            return TERN_OK; /* nothing to do */
    struct timespec t0, t1;
    if (rt->profile) {
        rt->api->clFinish(rt->queue);
        clock_gettime(CLOCK_MONOTONIC, &t0);
    }
    cl_int err = rt->api->clEnqueueNDRangeKernel(rt->queue, kern, dims, NULL, global, local, 0, NULL, NULL);
    if (rt->profile) {
        rt->api->clFinish(rt->queue);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        rt->prof_s[k] += (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        rt->prof_n[k]++;
    }
    if (err != CL_SUCCESS) {
        tern_log_error("cl: launching %s on %s failed: %s (%d)", what, rt->name, tern_cl_error_name(err),
                       err);
        return TERN_ERR_DEVICE;
    }
    return TERN_OK;
}

static size_t round_up(size_t v, size_t m) {
    return (v + m - 1) / m * m;
}

tern_status tern_cl_quantize_act(struct tern_cl_rt *rt, cl_mem q, cl_mem act_scale, cl_mem sum_q, cl_mem x,
                                 int n, int n_pad, int x_stride, int n_tok) {
    if (n <= 0 || n_pad < n || x_stride < n || n_tok < 0)
        return TERN_ERR_ARG;
    size_t global = (size_t)rt->wg * (size_t)n_tok, local = (size_t)rt->wg;
    struct arg args[] = {A(q), A(act_scale), A(sum_q), A(x), A(n), A(n_pad), A(x_stride)};
    return launch(rt, TERN_CLK_QUANTIZE_ACT, "tern_quantize_act", 1, &global, &local, args, 7);
}

tern_status tern_cl_ternary(struct tern_cl_rt *rt, cl_mem y, cl_mem acc, cl_mem codes,
                            const struct tern_ternary *w, cl_mem q, cl_mem act_scale, cl_mem sum_q, int n_tok,
                            int y_stride, bool accumulate, enum tern_cl_ternary_path path) {
    if (w->k_pad <= 0 || w->k_pad % 128 || w->row_bytes != w->k_pad / 4 || w->n_out <= 0 ||
        w->n_out > INT32_MAX / 2 || w->k_pad > INT32_MAX / 4 || y_stride < w->n_out || n_tok < 0)
        return TERN_ERR_ARG;
    int n_out = (int)w->n_out, row_words = (int)(w->row_bytes / 4), accum = accumulate ? 1 : 0;
    float scale = w->scale, out_scale = w->out_scale;
    /* the CPU design's matmul decodes each row's codes once for its tokens from 2 on */
    if (path == TERN_CL_TERNARY_AUTO)
        path = n_tok >= (rt->cpu_kernels ? 2 : TERN_CL_MATMUL_MIN_TOKENS) ? TERN_CL_TERNARY_MATMUL
                                                                          : TERN_CL_TERNARY_MATVEC;
    struct arg args[13] = {A(y),         acc ? A(acc) : A_NULLBUF,
                           A(codes),     A(q),
                           A(act_scale), A(sum_q),
                           A(n_out),     A(row_words),
                           A(y_stride),  A(scale),
                           A(out_scale), A(accum),
                           A(n_tok)};
    if (path == TERN_CL_TERNARY_MATVEC) {
        /* GPU design: a work-group per row group and TERN_CL_MATVEC_MAX_NX tokens; CPU design: an
         * item per row and token */
        size_t rpw = (size_t)(rt->wg / rt->lpr), per = rt->cpu_kernels ? 1 : TERN_CL_MATVEC_MAX_NX;
        size_t global[2] = {(size_t)(n_out + rpw - 1) / rpw * (size_t)rt->wg,
                            ((size_t)n_tok + per - 1) / per};
        size_t local[2] = {(size_t)rt->wg, 1};
        return launch(rt, TERN_CLK_TERNARY_MATVEC, "tern_ternary_matvec", 2, global, local, args, 13);
    }
    if (rt->cpu_kernels) { /* one item per row and TERN_CPU_NT (8) tokens */
        size_t global[2] = {round_up((size_t)n_out, (size_t)rt->wg), (size_t)(n_tok + 7) / 8};
        size_t local[2] = {(size_t)rt->wg, 1};
        return launch(rt, TERN_CLK_TERNARY_MATMUL, "tern_ternary_matmul", 2, global, local, args, 13);
    }
    size_t tm = (size_t)rt->wg / 4;
    size_t global[2] = {(size_t)(n_out + tm - 1) / tm * (size_t)rt->wg, (size_t)(n_tok + 31) / 32};
    size_t local[2] = {(size_t)rt->wg, 1};
    return launch(rt, TERN_CLK_TERNARY_MATMUL, "tern_ternary_matmul", 2, global, local, args, 13);
}

tern_status tern_cl_matvec(struct tern_cl_rt *rt, cl_mem out, cl_mem data, const struct tern_tensor *t,
                           cl_mem x, int x0, int nx, int64_t row_begin, int64_t n_rows, cl_mem rows) {
    enum tern_cl_kernel k;
    switch (t->type) {
    case TERN_TYPE_F32:
        k = TERN_CLK_MATVEC_F32;
        break;
    case TERN_TYPE_F16:
        k = TERN_CLK_MATVEC_F16;
        break;
    case TERN_TYPE_BF16:
        k = TERN_CLK_MATVEC_BF16;
        break;
    case TERN_TYPE_Q8_0:
        k = TERN_CLK_MATVEC_Q8_0;
        break;
    case TERN_TYPE_Q4_K:
        k = TERN_CLK_MATVEC_Q4_K;
        break;
    case TERN_TYPE_Q6_K:
        k = TERN_CLK_MATVEC_Q6_K;
        break;
    default:
        tern_log_error("cl: no OpenCL matvec for tensor type %s", tern_type_name(t->type));
        return TERN_ERR_UNSUPPORTED;
    }
    if (t->ne0 <= 0 || t->ne0 > INT32_MAX || row_begin < 0 || n_rows < 0 || n_rows > INT32_MAX ||
        (!rows && row_begin + n_rows > t->ne1) || nx < 1 || nx > TERN_CL_MATVEC_MAX_NX || x0 < 0)
        return TERN_ERR_ARG;
    int n = (int)t->ne0, n_out = (int)n_rows;
    cl_ulong row_bytes = t->row_bytes;
    cl_long begin = row_begin;
    size_t rpw = (size_t)(rt->wg / rt->lpr);
    size_t global = ((size_t)n_out + rpw - 1) / rpw * (size_t)rt->wg, local = (size_t)rt->wg;
    struct arg args[] = {A(out),   A(data),      A(x),     A(n),
                         A(n_out), A(row_bytes), A(begin), rows ? A(rows) : A_NULLBUF,
                         A(nx),    A(x0)};
    return launch(rt, k, "tern_matvec", 1, &global, &local, args, 10);
}

tern_status tern_cl_shadow_matvec(struct tern_cl_rt *rt, cl_mem out, cl_mem q, cl_mem scales, cl_mem x,
                                  int nx, int64_t n, int64_t n_rows, int64_t n_blocks) {
    static_assert(TERN_HEAD_SHADOW_BLOCK == 256, "cl/kernels/typed_shadow.cl's block");
    if (n <= 0 || n > INT32_MAX || n % TERN_HEAD_SHADOW_UNIT || n_rows < 0 || n_rows > INT32_MAX ||
        n_blocks * TERN_HEAD_SHADOW_BLOCK < n || nx < 1 || nx > TERN_CL_MATVEC_MAX_NX)
        return TERN_ERR_ARG;
    int nn = (int)n, n_out = (int)n_rows, nb = (int)n_blocks, x0 = 0;
    cl_ulong row_bytes = (cl_ulong)n;
    cl_long begin = 0;
    size_t rpw = (size_t)(rt->wg / rt->lpr);
    size_t global = ((size_t)n_out + rpw - 1) / rpw * (size_t)rt->wg, local = (size_t)rt->wg;
    struct arg args[] = {A(out),   A(q),      A(x),  A(nn), A(n_out),  A(row_bytes),
                         A(begin), A_NULLBUF, A(nx), A(x0), A(scales), A(nb)};
    return launch(rt, TERN_CLK_SHADOW_MATVEC, "tern_shadow_matvec", 1, &global, &local, args, 12);
}

tern_status tern_cl_embed(struct tern_cl_rt *rt, cl_mem out, cl_mem data, const struct tern_tensor *t,
                          cl_mem tokens, int n_tok) {
    const struct tern_type_traits *tr = tern_type_traits(t->type);
    if (!tr || tr->cls != TERN_CLASS_FLOAT || t->ne0 <= 0 || t->ne0 > INT32_MAX || t->ne0 % tr->block_size)
        return TERN_ERR_UNSUPPORTED;
    int n = (int)t->ne0, type = (int)t->type;
    cl_ulong row_bytes = t->row_bytes;
    size_t global[2] = {round_up((size_t)n, (size_t)rt->wg), (size_t)n_tok};
    size_t local[2] = {(size_t)rt->wg, 1};
    struct arg args[] = {A(out), A(data), A(tokens), A(n), A(row_bytes), A(type)};
    return launch(rt, TERN_CLK_EMBED, "tern_embed", 2, global, local, args, 6);
}

tern_status tern_cl_rmsnorm(struct tern_cl_rt *rt, cl_mem out, cl_mem x, cl_mem w, int n, float eps,
                            int n_tok) {
    if (n <= 0 || n_tok < 0)
        return TERN_ERR_ARG;
    size_t global = (size_t)rt->wg * (size_t)n_tok, local = (size_t)rt->wg;
    struct arg args[] = {A(out), A(x), A(w), A(n), A(eps)};
    return launch(rt, TERN_CLK_RMSNORM, "tern_rmsnorm", 1, &global, &local, args, 5);
}

tern_status tern_cl_rope(struct tern_cl_rt *rt, cl_mem x, int n_head, int head_dim, int n_rot, int row_stride,
                         cl_mem pos, float theta, enum tern_rope_style style, int n_tok) {
    if (n_rot <= 0 || n_rot > head_dim || n_rot % 2 || row_stride < n_head * head_dim)
        return TERN_ERR_ARG;
    /* the reference's theta_scale, computed the same way */
    float theta_scale = powf(theta, -2.0f / (float)n_rot);
    int neox = style == TERN_ROPE_NEOX;
    size_t global[3] = {(size_t)n_rot / 2, (size_t)n_head, (size_t)n_tok};
    struct arg args[] = {A(x), A(head_dim), A(n_rot), A(row_stride), A(pos), A(theta_scale), A(neox)};
    if (rt->cpu_kernels) {
        /* CPU drivers may pick one-item work-groups for a NULL local size: a head's pairs per group */
        size_t local[3] = {(size_t)rt->wg, 1, 1};
        while (local[0] / 2 >= global[0] && local[0] > 1)
            local[0] /= 2;
        global[0] = round_up(global[0], local[0]);
        return launch(rt, TERN_CLK_ROPE, "tern_rope", 3, global, local, args, 7);
    }
    return launch(rt, TERN_CLK_ROPE, "tern_rope", 3, global, NULL, args, 7);
}

tern_status tern_cl_kv_store(struct tern_cl_rt *rt, cl_mem k_cache, cl_mem v_cache, cl_mem k, cl_mem v,
                             int kv_dim, cl_mem pos, cl_mem seq, int n_ctx, int n_tok) {
    size_t global[2] = {round_up((size_t)kv_dim, (size_t)rt->wg), (size_t)n_tok};
    size_t local[2] = {(size_t)rt->wg, 1};
    struct arg args[] = {A(k_cache), A(v_cache), A(k), A(v), A(kv_dim), A(pos), A(seq), A(n_ctx)};
    return launch(rt, TERN_CLK_KV_STORE, "tern_kv_store", 2, global, local, args, 8);
}

tern_status tern_cl_attention(struct tern_cl_rt *rt, cl_mem out, cl_mem q, cl_mem k_cache, cl_mem v_cache,
                              int n_head, int n_head_kv, int head_dim, cl_mem pos, cl_mem seq, int n_ctx,
                              int n_tok) {
    if (head_dim <= 0 || head_dim > 256 || n_head_kv <= 0 || n_head % n_head_kv) {
        tern_log_error("cl: attention with head_dim %d, %d heads, %d kv heads is not supported", head_dim,
                       n_head, n_head_kv);
        return TERN_ERR_UNSUPPORTED;
    }
    float scale = 1.0f / sqrtf((float)head_dim);
    size_t global[2] = {(size_t)n_head * (size_t)rt->wg, (size_t)n_tok};
    size_t local[2] = {(size_t)rt->wg, 1};
    struct arg args[] = {A(out),      A(q),   A(k_cache), A(v_cache), A(n_head), A(n_head_kv),
                         A(head_dim), A(pos), A(seq),     A(n_ctx),   A(scale)};
    return launch(rt, TERN_CLK_ATTENTION, "tern_attention", 2, global, local, args, 11);
}

tern_status tern_cl_ffn_act(struct tern_cl_rt *rt, cl_mem out, cl_mem gate, cl_mem up, int64_t n,
                            enum tern_ffn_act act) {
    cl_long nn = n;
    int silu = act == TERN_FFN_SILU;
    size_t global = round_up((size_t)n, (size_t)rt->wg), local = (size_t)rt->wg;
    struct arg args[] = {A(out), A(gate), A(up), A(nn), A(silu)};
    return launch(rt, TERN_CLK_FFN_ACT, "tern_ffn_act", 1, &global, &local, args, 5);
}

tern_status tern_cl_add(struct tern_cl_rt *rt, cl_mem y, cl_mem x, int64_t n) {
    cl_long nn = n;
    size_t global = round_up((size_t)n, (size_t)rt->wg), local = (size_t)rt->wg;
    struct arg args[] = {A(y), A(x), A(nn)};
    return launch(rt, TERN_CLK_ADD, "tern_add", 1, &global, &local, args, 3);
}
