/* The OpenCL device behind scheduler/device.h: it owns its layers' weights (on unified-memory devices
 * the buffers wrap the host copy, CL_MEM_USE_HOST_PTR, so weights are not held twice), their f16 KV
 * cache and the batch scratch; run_layers uploads the hidden state, runs the layers with the kernels
 * of cl/kernels/ and downloads it. The forward pass is the one of cpu/cpu_device.c, op for op. */
#include "cl_device.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../scheduler/head_cache.h"
#include "../scheduler/head_cert.h"
#include "../scheduler/log.h"
#include "cl_runtime.h"
#include "cl_sources.h"

/* Buffers the head may be split into when it exceeds the device's largest allocation. */
#define CL_MAX_HEAD_PARTS 16

/* Tokens per pass through the layers: bounds the scratch; larger batches run in causal chunks. */
#define TERN_CL_MAX_BATCH 256

enum { W_Q, W_K, W_V, W_O, W_GATE, W_UP, W_DOWN, W_COUNT };

struct cl_layer {
    cl_mem attn_norm, attn_sub_norm, ffn_norm, ffn_sub_norm; /* f32 vectors (sub-norms may be NULL) */
    cl_mem w[W_COUNT];                                       /* packed codes, n_out * row_bytes */
    struct tern_ternary desc[W_COUNT];                       /* shapes and scales (codes unused) */
    cl_mem k_cache, v_cache;                                 /* f16 [n_seq][n_ctx][n_head_kv*head_dim] */
};

struct cl_scratch {
    int cap;           /* tokens the buffers hold */
    cl_mem h;          /* [cap][n_embd] hidden state */
    cl_mem x;          /* [cap][max(n_embd, q_dim)] normed input */
    cl_mem q8;         /* [cap][k_pad max] int8 activations */
    cl_mem act_scale;  /* [cap] */
    cl_mem sum_q;      /* [cap] */
    cl_mem qh, kh, vh; /* [cap][q_dim], [cap][kv_dim] x 2 */
    cl_mem attn;       /* [cap][q_dim] */
    cl_mem gate, up;   /* [cap][n_ff] */
    cl_mem tokens;     /* [cap] int32 */
    cl_mem pos, seq;   /* [cap] int32: each token's position and sequence */
};

struct cl_device {
    struct tern_cl_rt *rt;
    const struct tern_model_view *model;
    struct tern_hparams hp;
    int layer_begin, layer_end, n_ctx, n_seq;
    unsigned parts;
    struct cl_layer *layers; /* layer_end - layer_begin */
    cl_mem embd, out_norm, logits;
    /* the head in row ranges of head_rows rows, each one buffer within the device's largest
     * allocation; head[0] NULL with one part: the tied embedding buffer serves (see head_part) */
    cl_mem head[CL_MAX_HEAD_PARTS];
    int n_head_parts;
    int64_t head_rows;
    int64_t kpad_max;
    struct cl_scratch s;
    /* certified head (TERN_PART_HEAD_CERT, scheduler/head_cert.h); shadow NULL when absent */
    cl_mem shadow;                    /* the shadow's int8 weights (q + 128) */
    cl_mem shadow_scales;             /* and block scales */
    cl_mem cand_rows;                 /* [n_vocab] int32: the candidates, for the head's matvec */
    struct tern_head_shadow shadow_s; /* the host's view (its coefficients serve the selection) */
    void *shadow_blob;                /* the host copy, built or read from the cache: the whole shadow
                                       * on unified memory (used in place), else only the coefficients */
    int32_t *cand;                    /* [n_vocab] candidate rows of one token */
    float *heap;                      /* [n_vocab] the k largest lower bounds */
    float *x_host;                    /* [TERN_CL_MATVEC_MAX_NX][n_embd] a logits pass's normed inputs,
                                       * read back for their norms */
};

static void rel(struct cl_device *d, cl_mem *m) {
    tern_cl_buf_free(d->rt, m);
}

static void scratch_free(struct cl_device *d) {
    struct cl_scratch *s = &d->s;
    cl_mem *all[] = {&s->h,  &s->x,    &s->q8,   &s->act_scale, &s->sum_q,  &s->qh,  &s->kh,
                     &s->vh, &s->attn, &s->gate, &s->up,        &s->tokens, &s->pos, &s->seq};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        rel(d, all[i]);
    s->cap = 0;
}

static void unload(struct cl_device *d) {
    if (d->layers) {
        for (int i = 0; i < d->layer_end - d->layer_begin; i++) {
            struct cl_layer *L = &d->layers[i];
            rel(d, &L->attn_norm);
            rel(d, &L->attn_sub_norm);
            rel(d, &L->ffn_norm);
            rel(d, &L->ffn_sub_norm);
            for (int w = 0; w < W_COUNT; w++)
                rel(d, &L->w[w]);
            rel(d, &L->k_cache);
            rel(d, &L->v_cache);
        }
        free(d->layers);
        d->layers = NULL;
    }
    rel(d, &d->embd);
    for (int i = 0; i < CL_MAX_HEAD_PARTS; i++)
        rel(d, &d->head[i]);
    d->n_head_parts = 0;
    rel(d, &d->out_norm);
    rel(d, &d->logits);
    rel(d, &d->shadow);
    rel(d, &d->shadow_scales);
    rel(d, &d->cand_rows);
    free(d->shadow_blob);
    free(d->cand);
    free(d->heap);
    free(d->x_host);
    memset(&d->shadow_s, 0, sizeof d->shadow_s);
    d->shadow_blob = NULL;
    d->heap = d->x_host = NULL;
    d->cand = NULL;
    scratch_free(d);
    d->model = NULL;
    d->layer_begin = d->layer_end = 0;
    d->parts = 0;
}

static tern_status cl_describe(void *ctx, struct tern_device_info *out) {
    struct cl_device *d = ctx;
    const struct tern_cl_rt *rt = d->rt;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%.127s", rt->name);
    snprintf(out->vendor, sizeof out->vendor, "%.63s", rt->vendor);
    snprintf(out->driver, sizeof out->driver, "%.63s", rt->driver);
    out->kind = (rt->type & CL_DEVICE_TYPE_GPU)   ? TERN_DEVICE_GPU
                : (rt->type & CL_DEVICE_TYPE_CPU) ? TERN_DEVICE_CPU
                                                  : TERN_DEVICE_ACCEL;
    out->mem_bytes = rt->global_mem;
    out->max_alloc = rt->max_alloc;
    out->compute_units = (int)rt->compute_units;
    out->unified_memory = rt->unified;
    out->shares_cpu_cores = (rt->type & CL_DEVICE_TYPE_CPU) != 0;
    /* on PoCL level with the full head at one stream (docs/opencl.md), and GPUs not measured yet:
     * full unless the probe of a several-device run measures the certified head faster */
    out->certify_head = false;
    snprintf(out->features, sizeof out->features, "%s%s%s%s", rt->use_fp16 ? "fp16 " : "",
             rt->use_subgroups ? "subgroups " : "", rt->use_dot ? "int-dot " : "",
             rt->cpu_kernels ? "cpu-kernels" : "gpu-kernels");
    snprintf(out->build, sizeof out->build, "kernels %016llx", (unsigned long long)tern_cl_sources_hash());
    return TERN_OK;
}

/* A read-only weight buffer over host data: wrapped on unified memory, copied otherwise. */
static tern_status weight_buf(struct cl_device *d, const void *data, size_t size, const char *what,
                              cl_mem *out) {
    cl_mem_flags flags = CL_MEM_READ_ONLY | (d->rt->unified ? CL_MEM_USE_HOST_PTR : CL_MEM_COPY_HOST_PTR);
    /* the device only reads it; OpenCL's API takes a non-const pointer */
    void *host;
    memcpy(&host, &data, sizeof host);
    return tern_cl_buf_create(d->rt, flags, size, host, what, out);
}

static tern_status small_buf(struct cl_device *d, const float *data, int64_t n, const char *what,
                             cl_mem *out) {
    void *host;
    memcpy(&host, &data, sizeof host);
    return tern_cl_buf_create(d->rt, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, (size_t)n * sizeof(float), host,
                              what, out);
}

/* The certified head's shadow, read from the cache (scheduler/head_cache.h, the file the CPU device
 * writes too: the shadow and its bound serve every device) or else built on the host (one thread)
 * and cached, then uploaded like a weight. */
static tern_status shadow_load(struct cl_device *d, const struct tern_model_view *m) {
    const struct tern_tensor *head = &m->output;
    const size_t rows = (size_t)head->ne1, bytes = tern_head_shadow_bytes(head->ne0, head->ne1);
    const bool cache = bytes >= TERN_HEAD_CACHE_MIN_BYTES;
    d->cand = malloc(rows * sizeof(int32_t));
    d->heap = malloc(rows * sizeof(float));
    d->x_host = malloc((size_t)TERN_CL_MATVEC_MAX_NX * (size_t)head->ne0 * sizeof(float));
    void *blob = d->cand && d->heap && d->x_host ? aligned_alloc(64, (bytes + 63) / 64 * 64) : NULL;
    if (blob) {
        d->shadow_blob = blob;
        if (cache && tern_head_cache_read(m, blob, bytes)) {
            tern_log_debug("cl: certified head: int8 shadow (%zu MiB) read from the cache", bytes >> 20);
        } else {
            tern_head_shadow_rows(blob, head, 0, head->ne1);
            if (cache) {
                tern_head_cache_store(m, blob, bytes);
                tern_log_debug("cl: certified head: shadow written to the cache");
            }
        }
    }
    if (!blob) {
        tern_log_error("cl: out of memory for the certified head's shadow (%zu MiB)", bytes >> 20);
        return TERN_ERR_NOMEM;
    }
    struct tern_head_shadow *s = &d->shadow_s;
    tern_head_shadow_view(s, blob, head->ne0, head->ne1);
    tern_status st = weight_buf(d, s->q, rows * (size_t)s->n, "head shadow", &d->shadow);
    if (!st)
        st = weight_buf(d, s->d, rows * (size_t)s->n_blocks * sizeof(float), "head shadow scales",
                        &d->shadow_scales);
    if (!st)
        st = tern_cl_buf_create(d->rt, CL_MEM_READ_ONLY, rows * sizeof(int32_t), NULL, "head candidates",
                                &d->cand_rows);
    if (st || d->rt->unified)
        return st;
    /* copied to the device: keep only the coefficients */
    float *coef = malloc(2 * rows * sizeof(float));
    if (!coef) {
        tern_log_error("cl: out of memory for the certified head's bounds");
        return TERN_ERR_NOMEM;
    }
    memcpy(coef, s->coef, rows * sizeof(float));
    memcpy(coef + rows, s->dcoef, rows * sizeof(float));
    free(d->shadow_blob);
    d->shadow_blob = coef;
    s->q = NULL;
    s->d = NULL;
    s->coef = coef;
    s->dcoef = coef + rows;
    return TERN_OK;
}

static tern_status check_ternary(const struct tern_ternary *w, int64_t n_in, int64_t n_out, int il,
                                 const char *nm) {
    if (w->n_in != n_in || w->n_out != n_out || w->k_pad < w->n_in || w->k_pad % 128 ||
        w->row_bytes != w->k_pad / 4 || !w->codes) {
        tern_log_error("cl: layer %d %s: shape %lldx%lld (k_pad %lld) does not match the model (%lldx%lld)",
                       il, nm, (long long)w->n_in, (long long)w->n_out, (long long)w->k_pad, (long long)n_in,
                       (long long)n_out);
        return TERN_ERR_SHAPE;
    }
    return TERN_OK;
}

/* The head's buffers: the tied embedding's when it is loaded, else the output rows in as few parts
 * as the device's largest allocation allows (integrated GPUs often allow a quarter of memory, less
 * than a 128k-vocabulary F16 head). */
static tern_status load_head(struct cl_device *d, const struct tern_model_view *model) {
    const struct tern_tensor *o = &model->output;
    if (o->data == model->tok_embd.data && d->embd) {
        d->n_head_parts = 1;
        d->head_rows = o->ne1;
        return TERN_OK;
    }
    const int64_t fit = (int64_t)(d->rt->max_alloc / o->row_bytes);
    const int64_t parts = fit > 0 ? (o->ne1 + fit - 1) / fit : CL_MAX_HEAD_PARTS + 1;
    if (parts > CL_MAX_HEAD_PARTS) {
        tern_log_error(
            "cl: the output head (%lld rows of %zu bytes) needs more than %d buffers of at most %llu "
            "bytes on %s",
            (long long)o->ne1, o->row_bytes, CL_MAX_HEAD_PARTS, (unsigned long long)d->rt->max_alloc,
            d->rt->name);
        return TERN_ERR_NOMEM;
    }
    d->head_rows = (o->ne1 + parts - 1) / parts;
    for (int64_t i = 0; i < parts; i++) {
        const int64_t r0 = i * d->head_rows, r1 = r0 + d->head_rows < o->ne1 ? r0 + d->head_rows : o->ne1;
        tern_status st = weight_buf(d, (const uint8_t *)o->data + (size_t)r0 * o->row_bytes,
                                    (size_t)(r1 - r0) * o->row_bytes, "output", &d->head[i]);
        d->n_head_parts++; /* unload frees what was made */
        if (st)
            return st;
    }
    return TERN_OK;
}

static tern_status cl_load(void *ctx, const struct tern_model_view *model, int layer_begin, int layer_end,
                           unsigned parts, int n_ctx, int n_seq) {
    struct cl_device *d = ctx;
    unload(d);
    const struct tern_hparams *hp = &model->hp;
    if (layer_begin < 0 || layer_end < layer_begin || layer_end > hp->n_layer || n_ctx <= 0 || n_seq <= 0) {
        tern_log_error(
            "cl: cannot load layers [%d, %d) of a %d-layer model with %d sequences of %d positions",
            layer_begin, layer_end, hp->n_layer, n_seq, n_ctx);
        return TERN_ERR_ARG;
    }
    if (hp->head_dim <= 0 || hp->head_dim > 256 || hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv ||
        hp->n_rot > hp->head_dim || hp->n_rot % 2) {
        tern_log_error(
            "cl: head_dim %d / n_rot %d / %d heads / %d kv heads are not supported by the OpenCL device",
            hp->head_dim, hp->n_rot, hp->n_head, hp->n_head_kv);
        return TERN_ERR_UNSUPPORTED;
    }
    d->model = model;
    d->hp = *hp;
    d->n_ctx = n_ctx;
    d->n_seq = n_seq;
    d->parts = parts;
    const int64_t n_embd = hp->n_embd, n_ff = hp->n_ff;
    const int64_t q_dim = (int64_t)hp->n_head * hp->head_dim, kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    d->kpad_max = 128;
    tern_status st;
    int n_l = layer_end - layer_begin;
    d->layers = calloc(n_l ? (size_t)n_l : 1, sizeof *d->layers);
    if (!d->layers) {
        tern_log_error("cl: out of memory for %d layers", n_l);
        return TERN_ERR_NOMEM;
    }
    d->layer_begin = layer_begin;
    d->layer_end = layer_end;
    static const char *const wnames[W_COUNT] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                                "ffn_gate", "ffn_up", "ffn_down"};
    for (int il = layer_begin; il < layer_end; il++) {
        const struct tern_layer_weights *W = &model->layers[il];
        struct cl_layer *L = &d->layers[il - layer_begin];
        const struct tern_ternary *src[W_COUNT] = {&W->wq,    &W->wk,  &W->wv,   &W->wo,
                                                   &W->wgate, &W->wup, &W->wdown};
        const int64_t n_in[W_COUNT] = {n_embd, n_embd, n_embd, q_dim, n_embd, n_embd, n_ff};
        const int64_t n_out[W_COUNT] = {q_dim, kv_dim, kv_dim, n_embd, n_ff, n_ff, n_embd};
        for (int w = 0; w < W_COUNT; w++) {
            st = check_ternary(src[w], n_in[w], n_out[w], il, wnames[w]);
            if (st)
                goto done;
            st = weight_buf(d, src[w]->codes, (size_t)(src[w]->n_out * src[w]->row_bytes), wnames[w],
                            &L->w[w]);
            if (st)
                goto done;
            L->desc[w] = *src[w];
            L->desc[w].codes = NULL;
            if (src[w]->k_pad > d->kpad_max)
                d->kpad_max = src[w]->k_pad;
        }
        st = small_buf(d, W->attn_norm, n_embd, "attn_norm", &L->attn_norm);
        if (st)
            goto done;
        st = small_buf(d, W->ffn_norm, n_embd, "ffn_norm", &L->ffn_norm);
        if (st)
            goto done;
        if (W->attn_sub_norm) {
            st = small_buf(d, W->attn_sub_norm, q_dim, "attn_sub_norm", &L->attn_sub_norm);
            if (st)
                goto done;
        }
        if (W->ffn_sub_norm) {
            st = small_buf(d, W->ffn_sub_norm, n_ff, "ffn_sub_norm", &L->ffn_sub_norm);
            if (st)
                goto done;
        }
        const size_t kv_bytes = (size_t)n_seq * (size_t)n_ctx * (size_t)kv_dim * 2;
        st = tern_cl_buf_create(d->rt, CL_MEM_READ_WRITE, kv_bytes, NULL, "k cache", &L->k_cache);
        if (st)
            goto done;
        st = tern_cl_buf_create(d->rt, CL_MEM_READ_WRITE, kv_bytes, NULL, "v cache", &L->v_cache);
        if (st)
            goto done;
    }
    if (parts & TERN_PART_EMBED) {
        st = weight_buf(d, model->tok_embd.data, model->tok_embd.row_bytes * (size_t)model->tok_embd.ne1,
                        "token_embd", &d->embd);
        if (st)
            goto done;
    }
    if (parts & TERN_PART_HEAD) {
        if (model->output.ne0 != n_embd) {
            tern_log_error("cl: output head rows hold %lld values, not n_embd %lld",
                           (long long)model->output.ne0, (long long)n_embd);
            st = TERN_ERR_SHAPE;
            goto done;
        }
        st = load_head(d, model);
        if (st)
            goto done;
        st = small_buf(d, model->output_norm, n_embd, "output_norm", &d->out_norm);
        if (st)
            goto done;
        st = tern_cl_buf_create(d->rt, CL_MEM_WRITE_ONLY,
                                (size_t)TERN_CL_MATVEC_MAX_NX * (size_t)model->output.ne1 * sizeof(float),
                                NULL, "logits", &d->logits);
        if (st)
            goto done;
        /* the certified head needs the head in one buffer, and its shadow too */
        const uint64_t shadow_bytes = (uint64_t)model->output.ne1 * (uint64_t)model->output.ne0;
        if ((parts & TERN_PART_HEAD_CERT) && tern_head_cert_supported(&model->output) &&
            d->n_head_parts == 1 && shadow_bytes <= d->rt->max_alloc) {
            st = shadow_load(d, model);
            if (st)
                goto done;
        }
    }
    return TERN_OK;
done: /* failures only */
    unload(d);
    return st;
}

static cl_mem head_part(struct cl_device *d, int i) {
    return d->head[i] ? d->head[i] : d->embd;
}

static tern_status scratch_reserve(struct cl_device *d, int n) {
    if (n <= d->s.cap)
        return TERN_OK;
    scratch_free(d);
    const struct tern_hparams *hp = &d->hp;
    const size_t q_dim = (size_t)hp->n_head * hp->head_dim, kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t x_dim = q_dim > (size_t)hp->n_embd ? q_dim : (size_t)hp->n_embd;
    struct cl_scratch *s = &d->s;
    const size_t f = sizeof(float), N = (size_t)n;
    struct {
        cl_mem *m;
        size_t bytes;
        const char *what;
    } bufs[] = {
        {&s->h, N * (size_t)hp->n_embd * f, "hidden"},
        {&s->x, N * x_dim * f, "normed input"},
        {&s->q8, N * (size_t)d->kpad_max, "int8 activations"},
        {&s->act_scale, N * f, "act scales"},
        {&s->sum_q, N * sizeof(cl_int), "act sums"},
        {&s->qh, N * q_dim * f, "q"},
        {&s->kh, N * kv_dim * f, "k"},
        {&s->vh, N * kv_dim * f, "v"},
        {&s->attn, N * q_dim * f, "attention output"},
        {&s->gate, N * (size_t)hp->n_ff * f, "ffn gate"},
        {&s->up, N * (size_t)hp->n_ff * f, "ffn up"},
        {&s->tokens, N * sizeof(cl_int), "tokens"},
        {&s->pos, N * sizeof(cl_int), "positions"},
        {&s->seq, N * sizeof(cl_int), "sequences"},
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        tern_status st =
            tern_cl_buf_create(d->rt, CL_MEM_READ_WRITE, bufs[i].bytes, NULL, bufs[i].what, bufs[i].m);
        if (st) {
            scratch_free(d);
            return st;
        }
    }
    s->cap = n;
    return TERN_OK;
}

static tern_status cl_embed(void *ctx, float *hidden, const int32_t *tokens, int n_tokens) {
    struct cl_device *d = ctx;
    if (!(d->parts & TERN_PART_EMBED) || !d->embd || n_tokens < 0)
        return TERN_ERR_ARG;
    const struct tern_tensor *e = &d->model->tok_embd;
    for (int t = 0; t < n_tokens; t++) {
        if (tokens[t] < 0 || tokens[t] >= e->ne1) {
            tern_log_error("cl: token id %d out of range (vocabulary of %lld)", tokens[t], (long long)e->ne1);
            return TERN_ERR_ARG;
        }
    }
    for (int t0 = 0; t0 < n_tokens; t0 += TERN_CL_MAX_BATCH) {
        int n = n_tokens - t0 < TERN_CL_MAX_BATCH ? n_tokens - t0 : TERN_CL_MAX_BATCH;
        tern_status st = scratch_reserve(d, n);
        if (st)
            return st;
        st = tern_cl_write(d->rt, d->s.tokens, 0, (size_t)n * sizeof(cl_int), tokens + t0);
        if (st)
            return st;
        st = tern_cl_embed(d->rt, d->s.h, d->embd, e, d->s.tokens, n);
        if (st)
            return st;
        st = tern_cl_read(d->rt, d->s.h, 0, (size_t)n * (size_t)e->ne0 * sizeof(float),
                          hidden + (size_t)t0 * (size_t)e->ne0);
        if (st)
            return st;
    }
    return TERN_OK;
}

/* BitLinear of weights ws[0..n_w) sharing one input x[n][stride] (quantized once). */
static tern_status bitlinear(struct cl_device *d, struct cl_layer *L, const int *wi, cl_mem *ys, int n_w,
                             cl_mem x, int x_stride, int n, bool accumulate) {
    struct tern_cl_rt *rt = d->rt;
    const struct tern_ternary *w0 = &L->desc[wi[0]];
    tern_status st = tern_cl_quantize_act(rt, d->s.q8, d->s.act_scale, d->s.sum_q, x, (int)w0->n_in,
                                          (int)w0->k_pad, x_stride, n);
    if (st)
        return st;
    for (int i = 0; i < n_w; i++) {
        const struct tern_ternary *w = &L->desc[wi[i]];
        st = tern_cl_ternary(rt, ys[i], NULL, L->w[wi[i]], w, d->s.q8, d->s.act_scale, d->s.sum_q, n,
                             (int)w->n_out, accumulate, TERN_CL_TERNARY_AUTO);
        if (st)
            return st;
    }
    return TERN_OK;
}

/* Layer il on the n tokens in the scratch (hidden state, positions and sequences uploaded). */
static tern_status run_layer(struct cl_device *d, int il, int n) {
    const struct tern_hparams *hp = &d->hp;
    struct cl_layer *L = &d->layers[il - d->layer_begin];
    struct cl_scratch *s = &d->s;
    struct tern_cl_rt *rt = d->rt;
    const int n_embd = hp->n_embd, n_ff = hp->n_ff;
    const int q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    /* attention */
    tern_status st = tern_cl_rmsnorm(rt, s->x, s->h, L->attn_norm, n_embd, hp->norm_eps, n);
    if (st)
        return st;
    const int qkv[3] = {W_Q, W_K, W_V};
    cl_mem qkv_out[3] = {s->qh, s->kh, s->vh};
    st = bitlinear(d, L, qkv, qkv_out, 3, s->x, n_embd, n, false);
    if (st)
        return st;
    st = tern_cl_rope(rt, s->qh, hp->n_head, hp->head_dim, hp->n_rot, q_dim, s->pos, hp->rope_theta,
                      hp->rope_style, n);
    if (st)
        return st;
    st = tern_cl_rope(rt, s->kh, hp->n_head_kv, hp->head_dim, hp->n_rot, kv_dim, s->pos, hp->rope_theta,
                      hp->rope_style, n);
    if (st)
        return st;
    st = tern_cl_kv_store(rt, L->k_cache, L->v_cache, s->kh, s->vh, kv_dim, s->pos, s->seq, d->n_ctx, n);
    if (st)
        return st;
    st = tern_cl_attention(rt, s->attn, s->qh, L->k_cache, L->v_cache, hp->n_head, hp->n_head_kv,
                           hp->head_dim, s->pos, s->seq, d->n_ctx, n);
    if (st)
        return st;
    if (L->attn_sub_norm) {
        st = tern_cl_rmsnorm(rt, s->attn, s->attn, L->attn_sub_norm, q_dim, hp->norm_eps, n);
        if (st)
            return st;
    }
    const int o[1] = {W_O};
    st = bitlinear(d, L, o, &s->h, 1, s->attn, q_dim, n, true); /* h += o */
    if (st)
        return st;

    /* feed-forward */
    st = tern_cl_rmsnorm(rt, s->x, s->h, L->ffn_norm, n_embd, hp->norm_eps, n);
    if (st)
        return st;
    const int gate_up[2] = {W_GATE, W_UP};
    cl_mem gate_up_out[2] = {s->gate, s->up};
    st = bitlinear(d, L, gate_up, gate_up_out, 2, s->x, n_embd, n, false);
    if (st)
        return st;
    st = tern_cl_ffn_act(rt, s->gate, s->gate, s->up, (int64_t)n * n_ff, hp->ffn_act);
    if (st)
        return st;
    if (L->ffn_sub_norm) {
        st = tern_cl_rmsnorm(rt, s->gate, s->gate, L->ffn_sub_norm, n_ff, hp->norm_eps, n);
        if (st)
            return st;
    }
    const int down[1] = {W_DOWN};
    return bitlinear(d, L, down, &s->h, 1, s->gate, n_ff, n, true); /* h += down */
}

static tern_status cl_run_layers(void *ctx, float *hidden, const struct tern_batch *b, int layer_begin,
                                 int layer_end) {
    struct cl_device *d = ctx;
    if (!d->model || layer_begin < d->layer_begin || layer_end > d->layer_end || layer_begin > layer_end)
        return TERN_ERR_ARG;
    tern_status st = tern_batch_check(b, d->n_ctx, d->n_seq, "cl");
    if (st)
        return st;
    const size_t row = (size_t)d->hp.n_embd * sizeof(float);
    /* Causal chunks: a chunk's layers see earlier chunks through the KV cache. */
    for (int t0 = 0; t0 < b->n_tokens; t0 += TERN_CL_MAX_BATCH) {
        int n = b->n_tokens - t0 < TERN_CL_MAX_BATCH ? b->n_tokens - t0 : TERN_CL_MAX_BATCH;
        float *h = hidden + (size_t)t0 * (size_t)d->hp.n_embd;
        st = scratch_reserve(d, n);
        if (st)
            return st;
        st = tern_cl_write(d->rt, d->s.h, 0, (size_t)n * row, h);
        if (st)
            return st;
        st = tern_cl_write(d->rt, d->s.pos, 0, (size_t)n * sizeof(cl_int), b->pos + t0);
        if (st)
            return st;
        st = tern_cl_write(d->rt, d->s.seq, 0, (size_t)n * sizeof(cl_int), b->seq + t0);
        if (st)
            return st;
        for (int il = layer_begin; il < layer_end; il++) {
            st = run_layer(d, il, n);
            if (st)
                return st;
        }
        st = tern_cl_read(d->rt, d->s.h, 0, (size_t)n * row, h);
        if (st)
            return st;
    }
    return TERN_OK;
}

/* Certified head for the nx tokens of a logits pass whose requests allow it: every row of every
 * token from the shadow in one pass, each token's candidates selected on the host, then recomputed
 * by the full head's own kernel given the candidate list (the same arithmetic per row, so the same
 * bits). Clears full[k] for the tokens it completes; the others need the full head. */
static tern_status certified_logits(struct cl_device *d, float *logits, int nx,
                                    const struct tern_head_request *const *req, bool *full) {
    const struct tern_head_shadow *s = &d->shadow_s;
    const size_t n_vocab = (size_t)s->n_rows, n_embd = (size_t)d->hp.n_embd;
    tern_status st = tern_cl_shadow_matvec(d->rt, d->logits, d->shadow, d->shadow_scales, d->s.x, nx, s->n,
                                           s->n_rows, s->n_blocks);
    if (!st)
        st = tern_cl_read(d->rt, d->logits, 0, (size_t)nx * n_vocab * sizeof(float), logits);
    if (!st)
        st = tern_cl_read(d->rt, d->s.x, 0, (size_t)nx * n_embd * sizeof(float), d->x_host);
    for (int k = 0; k < nx && !st; k++) {
        if (!req[k])
            continue;
        float *lk = logits + (size_t)k * n_vocab;
        /* a float dot over the shadow: no input quantization (delta = 0) */
        const int64_t n = tern_head_cert_select(
            d->cand, lk, d->heap, s, tern_head_x_norm(d->x_host + (size_t)k * n_embd, d->hp.n_embd), 0.0f,
            req[k]);
        if (n < 0)
            continue;
        st = tern_cl_write(d->rt, d->cand_rows, 0, (size_t)n * sizeof(int32_t), d->cand);
        if (!st)
            st = tern_cl_matvec(d->rt, d->logits, head_part(d, 0), &d->model->output, d->s.x, k, 1, 0, n,
                                d->cand_rows);
        /* the selection is done with the heap: it takes the candidates' logits */
        if (!st)
            st = tern_cl_read(d->rt, d->logits, 0, (size_t)n * sizeof(float), d->heap);
        if (st)
            break;
        for (size_t r = 0; r < n_vocab; r++)
            lk[r] = -INFINITY;
        for (int64_t i = 0; i < n; i++)
            lk[d->cand[i]] = d->heap[i];
        tern_head_cert_count(req[k], n, false);
        full[k] = false;
    }
    return st;
}

/* Logits of the nx <= TERN_CL_MATVEC_MAX_NX hidden rows in s.h: the final norm, the certified head
 * for the tokens whose request allows it, then one pass of the full head (each row read once) for
 * the tokens left. */
static tern_status logits_pass(struct cl_device *d, float *logits, int nx,
                               const struct tern_head_request *const *req) {
    const struct tern_tensor *o = &d->model->output;
    const size_t n_vocab = (size_t)o->ne1;
    tern_status st = tern_cl_rmsnorm(d->rt, d->s.x, d->s.h, d->out_norm, d->hp.n_embd, d->hp.norm_eps, nx);
    bool full[TERN_CL_MATVEC_MAX_NX], any_req = false;
    for (int k = 0; k < nx; k++) {
        full[k] = true;
        any_req |= req && req[k];
    }
    if (!st && any_req && d->shadow)
        st = certified_logits(d, logits, nx, req, full);
    bool any_full = false;
    for (int k = 0; k < nx; k++) {
        any_full |= full[k];
        if (full[k] && req && req[k])
            tern_head_cert_count(req[k], o->ne1, true);
    }
    for (int i = 0; i < d->n_head_parts && !st && any_full; i++) {
        const int64_t r0 = i * d->head_rows, rows = o->ne1 - r0 < d->head_rows ? o->ne1 - r0 : d->head_rows;
        struct tern_tensor part = *o;
        part.ne1 = rows;
        st = tern_cl_matvec(d->rt, d->logits, head_part(d, i), &part, d->s.x, 0, nx, 0, rows, NULL);
        for (int k = 0; k < nx && !st; k++)
            if (full[k])
                st = tern_cl_read(d->rt, d->logits, (size_t)k * (size_t)rows * sizeof(float),
                                  (size_t)rows * sizeof(float), logits + (size_t)k * n_vocab + r0);
    }
    return st;
}

/* In passes of up to TERN_CL_MATVEC_MAX_NX tokens, each pass reading the head (or its shadow) once
 * for all of them: a decode step of several sequences (tern serve) costs about one token's head. */
static tern_status cl_logits(void *ctx, float *logits, const float *hidden, int n,
                             const struct tern_head_request *const *req) {
    struct cl_device *d = ctx;
    if (!(d->parts & TERN_PART_HEAD) || !d->logits || n <= 0)
        return TERN_ERR_ARG;
    const size_t n_vocab = (size_t)d->model->output.ne1, n_embd = (size_t)d->hp.n_embd;
    for (int t0 = 0; t0 < n; t0 += TERN_CL_MATVEC_MAX_NX) {
        const int nx = n - t0 < TERN_CL_MATVEC_MAX_NX ? n - t0 : TERN_CL_MATVEC_MAX_NX;
        tern_status st = scratch_reserve(d, nx);
        if (!st)
            st = tern_cl_write(d->rt, d->s.h, 0, (size_t)nx * n_embd * sizeof(float),
                               hidden + (size_t)t0 * n_embd);
        if (!st)
            st = logits_pass(d, logits + (size_t)t0 * n_vocab, nx, req ? req + t0 : NULL);
        if (st)
            return st;
    }
    return TERN_OK;
}

static tern_status cl_sync(void *ctx) {
    struct cl_device *d = ctx;
    return tern_cl_finish(d->rt);
}

static void cl_free(void *ctx) {
    struct cl_device *d = ctx;
    if (!d)
        return;
    unload(d);
    tern_cl_rt_free(d->rt);
    free(d);
}

static const struct tern_device_ops cl_ops = {
    .describe = cl_describe,
    .load = cl_load,
    .embed = cl_embed,
    .run_layers = cl_run_layers,
    .logits = cl_logits,
    .sync = cl_sync,
    .free = cl_free,
};

/* A tiny known-answer run of the quantize and both ternary kernels (docs/architecture.md#device-interface): a
 * device whose driver miscompiles them is refused with one line instead of producing wrong tokens later. The
 * expected values are computed here with the reference's formulas (cl/ may not include cpu/). */
static tern_status self_test(struct tern_cl_rt *rt) {
    enum { K = 256, N = 8, T = 5 };
    float x[T * K];
    uint8_t codes[N * K / 4];
    int32_t want[T * N], got[T * N];
    int8_t q[T * K];
    for (int i = 0; i < T * K; i++)
        x[i] = (float)((i * 37) % 101 - 50) * 0.173f + (float)(i % 7) * 0.01f;
    for (int i = 0; i < N * K / 4; i++)
        codes[i] =
            (uint8_t)((i * 11 + 3) % 3 << 6 | (i * 5 + 1) % 3 << 4 | (i * 7) % 3 << 2 | (i * 13 + 2) % 3);
    for (int t = 0; t < T; t++) {
        float m = 0.0f;
        for (int i = 0; i < K; i++)
            m = fmaxf(m, fabsf(x[t * K + i]));
        const float sc = 127.0f / fmaxf(m, 1e-5f);
        for (int i = 0; i < K; i++)
            q[t * K + i] = (int8_t)fminf(fmaxf(nearbyintf(x[t * K + i] * sc), -128.0f), 127.0f);
        for (int r = 0; r < N; r++) {
            int32_t acc = 0;
            for (int k = 0; k < K; k++) {
                const uint8_t byte = codes[r * K / 4 + 32 * (k / 128) + k % 32];
                acc += (((byte >> (6 - 2 * ((k % 128) / 32))) & 3) - 1) * q[t * K + k];
            }
            want[t * N + r] = acc;
        }
    }
    const struct tern_ternary w = {NULL, K, K, K / 4, N, 1.0f, 1.0f};
    cl_mem bx = NULL, bw = NULL, bq = NULL, bs = NULL, bsum = NULL, by = NULL, bacc = NULL;
    cl_mem *all[] = {&bx, &bw, &bq, &bs, &bsum, &by, &bacc};
    tern_status st =
        tern_cl_buf_create(rt, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof x, x, "self-test x", &bx);
    if (st)
        goto done;
    st = tern_cl_buf_create(rt, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof codes, codes, "self-test w",
                            &bw);
    if (st)
        goto done;
    st = tern_cl_buf_create(rt, CL_MEM_READ_WRITE, (size_t)T * K, NULL, "self-test q", &bq);
    if (st)
        goto done;
    st = tern_cl_buf_create(rt, CL_MEM_READ_WRITE, T * 4, NULL, "self-test scales", &bs);
    if (st)
        goto done;
    st = tern_cl_buf_create(rt, CL_MEM_READ_WRITE, T * 4, NULL, "self-test sums", &bsum);
    if (st)
        goto done;
    st = tern_cl_buf_create(rt, CL_MEM_READ_WRITE, sizeof got, NULL, "self-test y", &by);
    if (st)
        goto done;
    st = tern_cl_buf_create(rt, CL_MEM_READ_WRITE, sizeof got, NULL, "self-test acc", &bacc);
    if (st)
        goto done;
    st = tern_cl_quantize_act(rt, bq, bs, bsum, bx, K, K, K, T);
    if (st)
        goto done;
    for (int path = TERN_CL_TERNARY_MATVEC; path <= TERN_CL_TERNARY_MATMUL; path++) {
        st =
            tern_cl_ternary(rt, by, bacc, bw, &w, bq, bs, bsum, T, N, false, (enum tern_cl_ternary_path)path);
        if (st)
            goto done;
        st = tern_cl_read(rt, bacc, 0, sizeof got, got);
        if (st)
            goto done;
        if (memcmp(want, got, sizeof got) != 0) {
            tern_log_error("cl: %s fails tern's self-test (ternary %s gives wrong sums); not using it",
                           rt->name, path == TERN_CL_TERNARY_MATVEC ? "matvec" : "matmul");
            st = TERN_ERR_DEVICE;
            goto done;
        }
    }
done:
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tern_cl_buf_free(rt, all[i]);
    return st;
}

tern_status tern_cl_device_count(int *n) {
    *n = tern_cl_rt_count();
    return TERN_OK;
}

tern_status tern_cl_device_create(const char *spec, struct tern_device *out) {
    return tern_cl_device_create_tuned(spec, NULL, out);
}

tern_status tern_cl_device_create_tuned(const char *spec, const struct tern_cl_tuning *tuning,
                                        struct tern_device *out) {
    out->ops = NULL;
    out->ctx = NULL;
    struct cl_device *d = calloc(1, sizeof *d);
    if (!d) {
        tern_log_error("cl: out of memory for the device");
        return TERN_ERR_NOMEM;
    }
    tern_status st = tern_cl_rt_create(spec, false, tuning, &d->rt);
    if (st)
        goto done;
    st = self_test(d->rt);
    if (st)
        goto done;
    out->ops = &cl_ops;
    out->ctx = d;
    return TERN_OK;
done: /* failures only */
    tern_cl_rt_free(d->rt);
    free(d);
    return st;
}

struct tern_cl_rt *tern_cl_device_rt(const struct tern_device *dev) {
    return ((const struct cl_device *)dev->ctx)->rt;
}
