/* The CPU device: the forward pass of docs/architecture.md#numerics over the kernel table, for a layer range,
 * and the embedding (the head is cpu_head.c). Scratch is sized for the largest batch seen and reused, so the
 * decode loop allocates nothing. */
#define _DEFAULT_SOURCE /* madvise (MADV_HUGEPAGE) beside the POSIX baseline */
#include "cpu_device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../scheduler/log.h"
#include "cpu_device_internal.h"
#include "ref.h"

static int64_t round_up(int64_t x, int64_t m) {
    return (x + m - 1) / m * m;
}

/* Buffers the kernels stream through start on a cache line: with malloc's 16-byte alignment every
 * 64-byte activation load of the prefill tile was split across two lines. Those of 2 MiB or more
 * (the KV cache, a built shadow head, a prompt's scratch) lie in 2 MiB transparent huge pages where
 * the kernel gives them (THP "madvise" or "always"): in 4 KiB pages every first write faults, and in
 * this VM a fault cost ~12 us (300 MiB written once: 0.93 s against 0.02-0.7 s in huge pages). The
 * KV cache's kv heads take a new page every 16 positions, which cost a decode step of 4 sequences
 * (2B-4T) ~0.55 ms of its 26 (the RoPE stage with its K/V writes: 33-39 us a layer, 13-15 in huge
 * pages); and a process's first prompt of 651 tokens (`tern run`) ran at 237-248 t/s with its scratch
 * in 4 KiB pages, 256-260 in huge pages (`tern bench`, whose warm-up faults its scratch in: 276-279). */
void *tern_cpu_buf_alloc(size_t bytes) {
    const size_t huge = (size_t)1 << 21;
    if (bytes < huge)
        return aligned_alloc(64, (bytes + 63) / 64 * 64);
    bytes = (bytes + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, bytes);
#ifdef MADV_HUGEPAGE
    if (p)
        (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

static void scratch_free(struct cpu_scratch *s) {
    free(s->x);
    free(s->q);
    free(s->act_scale);
    free(s->sum_q);
    free(s->qh);
    free(s->kh);
    free(s->vh);
    free(s->attn);
    free(s->gate);
    free(s->up);
    free(s->out);
    free(s->angles);
    free(s->scores);
    free(s->head_toks);
    free(s->xq);
    free(s->xq_p);
    free(s->xq_t);
    memset(s, 0, sizeof *s);
}

tern_status tern_cpu_scratch_reserve(struct cpu_device *d, int n_tokens) {
    struct cpu_scratch *s = &d->s;
    if (n_tokens <= s->cap)
        return TERN_OK;
    scratch_free(s);
    const struct tern_hparams *hp = &d->model->hp;
    const size_t n = (size_t)n_tokens;
    const size_t n_q = (size_t)hp->n_head * hp->head_dim;
    const size_t n_kv = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t widest = (size_t)(hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd);
    const size_t widest_q = (size_t)round_up((int64_t)(widest > n_q ? widest : n_q), 128);
    s->x = tern_cpu_buf_alloc(n * widest_q * sizeof(float));
    s->q = tern_cpu_buf_alloc(n * widest_q);
    s->act_scale = tern_cpu_buf_alloc(n * sizeof(float));
    s->sum_q = tern_cpu_buf_alloc(n * sizeof(int32_t));
    s->qh = tern_cpu_buf_alloc(n * n_q * sizeof(float));
    s->kh = tern_cpu_buf_alloc(n * n_kv * sizeof(float));
    s->vh = tern_cpu_buf_alloc(n * n_kv * sizeof(float));
    s->attn = tern_cpu_buf_alloc(n * n_q * sizeof(float));
    s->gate = tern_cpu_buf_alloc(n * (size_t)hp->n_ff * sizeof(float));
    s->up = tern_cpu_buf_alloc(n * (size_t)hp->n_ff * sizeof(float));
    s->out = tern_cpu_buf_alloc(n * (size_t)hp->n_embd * sizeof(float));
    s->angles = malloc(n * (size_t)hp->n_rot * sizeof(float));
    s->scores =
        malloc((size_t)d->n_threads * (size_t)TERN_ATTN_SCRATCH(hp->head_dim, d->n_ctx - 1) * sizeof(float));
    s->head_toks = malloc(2 * n * sizeof(int));
    const size_t nb = (size_t)(hp->n_embd + TERN_HEAD_SHADOW_BLOCK - 1) / TERN_HEAD_SHADOW_BLOCK;
    const size_t n_p = nb * TERN_HEAD_SHADOW_BLOCK;
    s->xq = malloc(n * sizeof *s->xq);
    s->xq_p = tern_cpu_buf_alloc(n * 2 * n_p);
    s->xq_t = malloc(n * nb * sizeof(float));
    if (!s->x || !s->q || !s->act_scale || !s->sum_q || !s->qh || !s->kh || !s->vh || !s->attn || !s->gate ||
        !s->up || !s->out || !s->angles || !s->scores || !s->head_toks || !s->xq || !s->xq_p || !s->xq_t) {
        scratch_free(s);
        tern_log_error("cpu: out of memory for a batch of %d tokens", n_tokens);
        return TERN_ERR_NOMEM;
    }
    for (size_t t = 0; t < n; t++)
        s->xq[t] =
            (struct tern_head_xq){s->xq_p + 2 * t * n_p, s->xq_p + (2 * t + 1) * n_p, s->xq_t + t * nb, 0, 0};
    s->cap = n_tokens;
    return TERN_OK;
}

static void kv_free(struct cpu_device *d) {
    free(d->kv_mem);
    free(d->kv);
    d->kv_mem = NULL;
    d->kv = NULL;
}

/* Memory the host can give: MemAvailable from /proc/meminfo, else physical pages x page size. */
static uint64_t host_available_bytes(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                fclose(f);
                return (uint64_t)kb * 1024;
            }
        fclose(f);
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

static tern_status cpu_describe(void *ctx, struct tern_device_info *out) {
    struct cpu_device *d = ctx;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "CPU (%s, %d threads)", d->k->name, d->n_threads);
    snprintf(out->vendor, sizeof out->vendor, "host");
    snprintf(out->driver, sizeof out->driver, "tern %s kernels", d->k->name);
    out->kind = TERN_DEVICE_CPU;
    out->mem_bytes = host_available_bytes();
    out->compute_units = d->n_threads;
    out->unified_memory = true;
    out->shares_cpu_cores = true;
    out->certify_head = true; /* 1.41x the full F16 head's decode on 2b4t (docs/certified-head.md) */
    snprintf(out->features, sizeof out->features, "%s", d->k->name);
    return TERN_OK;
}

static tern_status cpu_load(void *ctx, const struct tern_model_view *model, int layer_begin, int layer_end,
                            unsigned parts, int n_ctx, int n_seq) {
    struct cpu_device *d = ctx;
    kv_free(d);
    scratch_free(&d->s);
    tern_cpu_head_free(d);
    if (layer_begin < 0 || layer_end < layer_begin || layer_end > model->hp.n_layer || n_ctx <= 0 ||
        n_seq <= 0) {
        tern_log_error(
            "cpu: cannot load layers [%d, %d) of a %d-layer model with %d sequences of %d positions",
            layer_begin, layer_end, model->hp.n_layer, n_seq, n_ctx);
        return TERN_ERR_ARG;
    }
    d->model = model;
    d->layer_begin = layer_begin;
    d->layer_end = layer_end;
    d->parts = parts;
    d->n_ctx = n_ctx;
    d->n_seq = n_seq;
    const int n_layers = layer_end - layer_begin;
    /* K is kept in blocks of TERN_ATTN_KBLOCK positions (kernels.h): each kv head's positions run to a
     * whole block */
    const size_t kv_elems =
        (size_t)n_seq * model->hp.n_head_kv * (size_t)tern_k_elems(n_ctx, model->hp.head_dim);
    const size_t half = (kv_elems * sizeof(uint16_t) + 63) / 64 * 64; /* one layer's K, or its V */
    const size_t kv_bytes = 2 * half * (size_t)n_layers;
    d->kv = calloc((size_t)(n_layers > 0 ? n_layers : 1), sizeof *d->kv);
    d->kv_mem = d->kv && n_layers > 0 ? tern_cpu_buf_alloc(kv_bytes) : NULL;
    if (!d->kv || (n_layers > 0 && !d->kv_mem)) {
        kv_free(d);
        tern_log_error("cpu: out of memory for the KV cache (%d sequences of %d positions, %zu MiB)", n_seq,
                       n_ctx, kv_bytes >> 20);
        return TERN_ERR_NOMEM;
    }
    for (int l = 0; l < n_layers; l++) {
        d->kv[l].k = (uint16_t *)((uint8_t *)d->kv_mem + 2 * (size_t)l * half);
        d->kv[l].v = (uint16_t *)((uint8_t *)d->kv_mem + (2 * (size_t)l + 1) * half);
    }
    if ((parts & TERN_PART_HEAD) && (parts & TERN_PART_HEAD_CERT)) {
        tern_status st = tern_cpu_head_load(d);
        if (st)
            return st;
    }
    return tern_cpu_scratch_reserve(d, 1);
}

static tern_status cpu_embed(void *ctx, float *hidden, const int32_t *tokens, int n_tokens) {
    struct cpu_device *d = ctx;
    const struct tern_tensor *e = &d->model->tok_embd;
    for (int t = 0; t < n_tokens; t++) {
        if (tokens[t] < 0 || tokens[t] >= e->ne1) {
            tern_log_error("token id %d is outside the vocabulary (%lld tokens)", tokens[t],
                           (long long)e->ne1);
            return TERN_ERR_ARG;
        }
        tern_ref_dequant_row(hidden + (size_t)t * e->ne0,
                             (const uint8_t *)e->data + (size_t)tokens[t] * e->row_bytes, e->type, e->ne0);
    }
    return TERN_OK;
}

/* Work split: per-token ops split by token, the head (cpu_head.c) by blocks of rows. */

/* A product over n_tok tokens. Prefill (PREFILL_TOKENS or more) hands out 64-row chunks of each
 * weight, which stay in L2 while every token tile of a block passes (docs/cpu.md), block by block
 * of tokens whose activations (PREFILL_Q_BYTES) stay in L2 too: all 512 tokens' activations in one
 * pass (1.3 MB at K = 2560) came back from L3 for every chunk (pp512 +1-3%, pp2048 +7% once
 * blocked; blocks of 160-640 KB measured level). A few tokens (decode, or a batched decode step of
 * a few sequences) are bound by the weight stream: the call's weights, one after another, are cut
 * into runs of bytes, each one linear stream, of decreasing length: first a run of 60% / n_threads
 * for each thread, then one of 20% / n_threads, then two of 10% / n_threads (run_start). Every
 * task costs a claim on a line the other core owns and a restart of both
 * prefetchers, so few, long runs stream faster: 2B-4T's 120 products a token, read through the
 * pool, went from 49-50 GB/s in tasks of 256 KB to 54-55 in four equal runs a call and 57-59 as one
 * unbroken run a thread (docs/cpu.md). The short runs at the end let a thread whose core gets less
 * of the memory (another process, another VM) hand work to the other instead of holding up the
 * call. */
enum { PREFILL_TOKENS = 16, PREFILL_ROWS_PER_TASK = 64, PREFILL_Q_BYTES = 320 << 10 };
_Static_assert(DECODE_RUNS_PER_THREAD == 4, "run_start cuts a thread's share into 6, 2, 1 and 1 units");

struct matmul_job {
    const struct tern_cpu_kernels *k;
    float *const *ys;
    const struct tern_ternary *const *ws;
    int n_w;
    const int8_t *q;
    const float *act_scale;
    const int32_t *sum_q;
    int n_tok;
    int64_t n_tasks, bytes; /* decode: the runs (DECODE_RUNS_PER_THREAD a thread), and the weights' bytes */
    int64_t tok_block, row_tasks; /* prefill: tokens a block, and the (weight, row chunk) tasks a block */
};

static int64_t weight_bytes(const struct tern_ternary *w) {
    return w->n_out * w->row_bytes;
}

/* Where run t of DECODE_RUNS_PER_THREAD x T (T threads) begins in a stream of `total` (bytes, head
 * rows): runs 0 .. T-1 take 6 units each, T .. 2T-1 2 units, 2T .. 4T-1 one (10 T units in all).
 * Monotonic in t; run 4T begins at the end. */
int64_t tern_cpu_run_offset(int64_t total, int64_t t, int64_t T) {
    const int64_t units = t <= T ? 6 * t : t <= 2 * T ? 6 * T + 2 * (t - T) : 8 * T + (t - 2 * T);
    return total * units / (10 * T);
}

/* Where decode run t begins: weight *wi at row *row (a multiple of 16, the row kernel's passes, or
 * n_out); run 4T begins at the last weight's end. */
static void run_start(const struct matmul_job *j, int64_t t, int *wi, int64_t *row) {
    int64_t off = tern_cpu_run_offset(j->bytes, t, j->n_tasks / DECODE_RUNS_PER_THREAD);
    for (int i = 0;; i++) {
        const struct tern_ternary *w = j->ws[i];
        if (off < weight_bytes(w) || i == j->n_w - 1) {
            const int64_t r = (off / w->row_bytes + 8) / 16 * 16;
            *wi = i;
            *row = r < w->n_out ? r : w->n_out;
            return;
        }
        off -= weight_bytes(w);
    }
}

static void matmul_task(void *arg, int64_t task, int thread) {
    (void)thread;
    const struct matmul_job *j = arg;
    /* prefill: tasks enumerate (token block, weight, row chunk), token block major */
    if (j->n_tok >= PREFILL_TOKENS) {
        const int64_t t0 = task / j->row_tasks * j->tok_block;
        const int n = j->n_tok - t0 < j->tok_block ? (int)(j->n_tok - t0) : (int)j->tok_block;
        task %= j->row_tasks;
        for (int i = 0; i < j->n_w; i++) {
            const struct tern_ternary *w = j->ws[i];
            const int64_t blocks = (w->n_out + PREFILL_ROWS_PER_TASK - 1) / PREFILL_ROWS_PER_TASK;
            if (task < blocks) {
                const int64_t r0 = task * PREFILL_ROWS_PER_TASK;
                const int64_t r1 =
                    r0 + PREFILL_ROWS_PER_TASK < w->n_out ? r0 + PREFILL_ROWS_PER_TASK : w->n_out;
                j->k->ternary_matmul(j->ys[i] + t0 * w->n_out, w, j->q + t0 * w->k_pad, j->act_scale + t0,
                                     j->sum_q + t0, n, r0, r1);
                return;
            }
            task -= blocks;
        }
        return;
    }
    int i0, i1;
    int64_t r0, r1;
    run_start(j, task, &i0, &r0);
    run_start(j, task + 1, &i1, &r1);
    for (int i = i0; i <= i1; i++) {
        const int64_t from = i == i0 ? r0 : 0, to = i == i1 ? r1 : j->ws[i]->n_out;
        if (from < to)
            j->k->ternary_matmul(j->ys[i], j->ws[i], j->q, j->act_scale, j->sum_q, j->n_tok, from, to);
    }
}

/* ys[i][n][ws[i]->n_out] = BitLinear_i(x) for weights sharing one input (q/k/v, gate/up), whose
 * quantized rows (s->q, act_scale, sum_q) the per-token stage before it wrote: the input is
 * quantized once per token, as the numerics contract says, for all of them. */
static void bitlinear(struct cpu_device *d, float *const *ys, const struct tern_ternary *const *ws, int n_w,
                      int n) {
    struct cpu_scratch *s = &d->s;
    struct matmul_job mj = {d->k, ys, ws, n_w, s->q, s->act_scale, s->sum_q, n, 0, 0, 0, 0};
    if (n >= PREFILL_TOKENS) {
        /* token blocks whose activations stay in L2 while every row chunk of the weights passes them */
        const int64_t fit = PREFILL_Q_BYTES / ws[0]->k_pad / 4 * 4;
        mj.tok_block = fit > PREFILL_TOKENS ? fit : PREFILL_TOKENS;
        for (int i = 0; i < n_w; i++)
            mj.row_tasks += (ws[i]->n_out + PREFILL_ROWS_PER_TASK - 1) / PREFILL_ROWS_PER_TASK;
        mj.n_tasks = (n + mj.tok_block - 1) / mj.tok_block * mj.row_tasks;
    } else {
        for (int i = 0; i < n_w; i++)
            mj.bytes += weight_bytes(ws[i]);
        mj.n_tasks = (int64_t)d->n_threads * DECODE_RUNS_PER_THREAD;
    }
    tern_pool_run(d->pool, mj.n_tasks, matmul_task, &mj);
}

/* Per-token parts of a layer: a pool task per token, except STAGE_ATTN_KV_HEAD and
 * STAGE_ROPE_KV_HEAD (a decode step's attention, a task per token and kv head, so long-context
 * attention uses every thread however many sequences the step holds: as token tasks, 3 sequences on
 * 2 threads split 2:1). Each stage that feeds a BitLinear ends by quantizing the token's input to
 * it, and the residual adds and the KV-cache writes ride along with the stages around them, so a
 * layer is 9 pool calls (4 of them the products; a decode step's attention and sub-norm make it 10,
 * or 9 again when its tokens are of distinct sequences, each token's RoPE and K/V writes then going
 * with its kv heads' attention: the median decode step of 2B-4T 0.5-0.6% shorter at 1 and at 4
 * sequences, docs/decode.md) and nothing runs on the caller alone. */
enum stage {
    STAGE_ANGLES,        /* the token's RoPE angles, once for every layer of the call */
    STAGE_ATTN_NORM,     /* (the previous layer's FFN residual,) the norm, quantized for q/k/v */
    STAGE_ROPE,          /* RoPE, then the token's K and V into the cache */
    STAGE_ATTN,          /* a prompt's token: all its heads, then STAGE_ATTN_SUB_NORM */
    STAGE_ATTN_KV_HEAD,  /* a decode step: one kv head's heads of one token (token * n_head_kv + kv) */
    STAGE_ROPE_KV_HEAD,  /* a step of distinct sequences: STAGE_ROPE's part for one kv head of one
                            token (its query heads, its K and V), then STAGE_ATTN_KV_HEAD */
    STAGE_ATTN_SUB_NORM, /* the attention sub-norm, quantized for the output projection */
    STAGE_FFN_NORM,      /* the attention residual, the norm, quantized for gate/up */
    STAGE_GATING,        /* gating, then the FFN sub-norm, quantized for down */
    STAGE_RESIDUAL,      /* the last layer's FFN residual */
};

struct token_job {
    struct cpu_device *d;
    const struct tern_layer_weights *L;
    struct cpu_layer_kv *kv;
    float *h;
    const struct tern_batch *b;
    enum stage stage;
    bool residual; /* STAGE_ATTN_NORM first adds s->out (the previous layer's FFN output) to h */
};

/* Element offset of sequence seq's kv head kvh at position pos in a layer's head-major V cache, and
 * with pos 0 of that head's first block in the K cache (tern_k_index places its positions). */
static size_t kv_at(const struct cpu_device *d, int seq, int kvh, int pos) {
    const size_t head_dim = (size_t)d->model->hp.head_dim;
    const size_t head = (size_t)seq * (size_t)d->model->hp.n_head_kv + (size_t)kvh;
    return head * (size_t)tern_k_elems(d->n_ctx, (int64_t)head_dim) + (size_t)pos * head_dim;
}

/* Writes one position's K row (x, head_dim floats) into kv head k_head's blocks as f16 (tmp:
 * head_dim scratch values). */
static void k_store(const struct tern_cpu_kernels *k, uint16_t *k_head, int pos, const float *x, int head_dim,
                    uint16_t *tmp) {
    k->f16_row(tmp, x, head_dim);
    for (int d = 0; d < head_dim; d++)
        k_head[tern_k_index(pos, head_dim, d)] = tmp[d];
}

/* The query heads of kv head kvh (q and out: one token's heads) attend positions 0 .. pos of
 * sequence seq. stream_kv: a decode step's token, whose cache rows come from DRAM (a prompt's tokens
 * share theirs through the caches). */
static void attend_kv_head(const struct cpu_device *d, const struct cpu_layer_kv *kv, float *out,
                           const float *q, int seq, int kvh, int pos, bool stream_kv, float *scratch) {
    const struct tern_hparams *hp = &d->model->hp;
    const int group = hp->n_head / hp->n_head_kv;
    const int64_t q_off = (int64_t)kvh * group * hp->head_dim;
    const size_t kv_off = kv_at(d, seq, kvh, 0);
    d->k->attention(out + q_off, q + q_off, kv->k + kv_off, kv->v + kv_off, hp->head_dim, pos, group, 1,
                    hp->head_dim, stream_kv, scratch);
}

/* Token t's input x (n_in wide) of weight w, quantized into the rows bitlinear reads. */
static void quantize_token(struct cpu_device *d, const struct tern_ternary *w, const float *x, int64_t t) {
    struct cpu_scratch *s = &d->s;
    s->act_scale[t] = d->k->quantize_act(s->q + t * w->k_pad, x, w->n_in, w->k_pad, s->sum_q + t);
}

/* Token t's residual stream: (the last product's output added to it, if residual), then normed with
 * weight norm and quantized for w in one fused pass (s->x: the reference's scratch). */
static void residual_norm(const struct token_job *j, int64_t t, bool residual, const float *norm,
                          const struct tern_ternary *w) {
    struct cpu_device *d = j->d;
    struct cpu_scratch *s = &d->s;
    const int64_t n_embd = d->model->hp.n_embd;
    float *h = j->h + t * n_embd;
    const float *out = residual ? s->out + t * n_embd : NULL;
    if (norm) {
        s->act_scale[t] = d->k->add_norm_quantize(s->q + t * w->k_pad, s->x + t * n_embd, h, out, norm,
                                                  n_embd, w->k_pad, d->model->hp.norm_eps, s->sum_q + t);
        return;
    }
    if (out)
        for (int64_t i = 0; i < n_embd; i++)
            h[i] += out[i];
}

/* Token t's kv head kvh: RoPE on its query heads and on its K, then its K and V into the cache. The
 * rotation is per head and element, so a head's bits do not depend on how many heads a call takes. */
static void rope_kv_head(const struct token_job *j, int64_t t, int kvh, float *scratch) {
    struct cpu_device *d = j->d;
    const struct tern_hparams *hp = &d->model->hp;
    const struct tern_cpu_kernels *k = d->k;
    struct cpu_scratch *s = &d->s;
    const struct tern_batch *b = j->b;
    const int group = hp->n_head / hp->n_head_kv;
    const int64_t n_q = (int64_t)hp->n_head * hp->head_dim, n_kv = (int64_t)hp->n_head_kv * hp->head_dim;
    const float *cs = s->angles + t * hp->n_rot, *sn = cs + hp->n_rot / 2;
    const int64_t from = t * n_kv + (int64_t)kvh * hp->head_dim;
    k->rope(s->qh + t * n_q + (int64_t)kvh * group * hp->head_dim, group, hp->head_dim, hp->n_rot, cs, sn,
            hp->rope_style);
    k->rope(s->kh + from, 1, hp->head_dim, hp->n_rot, cs, sn, hp->rope_style);
    k_store(k, j->kv->k + kv_at(d, b->seq[t], kvh, 0), b->pos[t], s->kh + from, hp->head_dim,
            (uint16_t *)scratch);
    k->f16_row(j->kv->v + kv_at(d, b->seq[t], kvh, b->pos[t]), s->vh + from, hp->head_dim);
}

static void token_task(void *arg, int64_t t, int thread) {
    const struct token_job *j = arg;
    struct cpu_device *d = j->d;
    const struct tern_hparams *hp = &d->model->hp;
    const struct tern_cpu_kernels *k = d->k;
    struct cpu_scratch *s = &d->s;
    const int64_t n_ff = hp->n_ff;
    const int64_t n_q = (int64_t)hp->n_head * hp->head_dim;
    const struct tern_batch *b = j->b;
    float *const scratch = s->scores + (size_t)thread * (size_t)TERN_ATTN_SCRATCH(hp->head_dim, d->n_ctx - 1);
    const struct tern_layer_weights *L = j->L;
    const int half = hp->n_rot / 2;
    switch (j->stage) {
    case STAGE_ATTN_NORM:
        residual_norm(j, t, j->residual, L->attn_norm, &L->wq);
        break;
    case STAGE_ANGLES:
        tern_ref_rope_table(s->angles + t * hp->n_rot, s->angles + t * hp->n_rot + half, half, hp->n_rot,
                            b->pos[t], hp->rope_theta);
        break;
    case STAGE_ROPE:
        for (int kvh = 0; kvh < hp->n_head_kv; kvh++)
            rope_kv_head(j, t, kvh, scratch);
        break;
    case STAGE_ROPE_KV_HEAD:
        rope_kv_head(j, t / hp->n_head_kv, (int)(t % hp->n_head_kv), scratch);
        __attribute__((fallthrough)); /* then its query heads attend */
    case STAGE_ATTN_KV_HEAD: {
        const int64_t tok = t / hp->n_head_kv;
        attend_kv_head(d, j->kv, s->attn + tok * n_q, s->qh + tok * n_q, b->seq[tok],
                       (int)(t % hp->n_head_kv), b->pos[tok], true, scratch);
    } break;
    case STAGE_ATTN:
        for (int kvh = 0; kvh < hp->n_head_kv; kvh++)
            attend_kv_head(d, j->kv, s->attn + t * n_q, s->qh + t * n_q, b->seq[t], kvh, b->pos[t], false,
                           scratch);
        __attribute__((fallthrough)); /* then the token's sub-norm */
    case STAGE_ATTN_SUB_NORM:
        if (L->attn_sub_norm)
            s->act_scale[t] =
                k->add_norm_quantize(s->q + t * L->wo.k_pad, s->x + t * n_q, s->attn + t * n_q, NULL,
                                     L->attn_sub_norm, n_q, L->wo.k_pad, hp->norm_eps, s->sum_q + t);
        else
            quantize_token(d, &L->wo, s->attn + t * n_q, t);
        break;
    case STAGE_FFN_NORM:
        residual_norm(j, t, true, L->ffn_norm, &L->wgate);
        break;
    case STAGE_GATING:
        if (L->ffn_sub_norm) {
            s->act_scale[t] = k->act_norm_quantize(
                s->q + t * L->wdown.k_pad, s->x + t * n_ff, s->gate + t * n_ff, s->up + t * n_ff,
                L->ffn_sub_norm, n_ff, L->wdown.k_pad, hp->norm_eps, hp->ffn_act, s->sum_q + t);
        } else {
            k->ffn_act(s->gate + t * n_ff, s->gate + t * n_ff, s->up + t * n_ff, n_ff, hp->ffn_act);
            quantize_token(d, &L->wdown, s->gate + t * n_ff, t);
        }
        break;
    case STAGE_RESIDUAL:
        residual_norm(j, t, true, NULL, NULL);
        break;
    }
}

static void per_token(struct token_job *j, enum stage stage, int n) {
    j->stage = stage;
    tern_pool_run(j->d->pool, n, token_task, j);
}

/* Layer il over the batch. residual: s->out still holds the previous layer's FFN output, not yet
 * added to h; on return this layer's is (the caller adds the last one, STAGE_RESIDUAL). */
static void run_layer(struct cpu_device *d, int il, float *h, const struct tern_batch *b, bool residual,
                      bool distinct) {
    const struct tern_hparams *hp = &d->model->hp;
    const struct tern_layer_weights *L = &d->model->layers[il];
    struct cpu_scratch *s = &d->s;
    const int n = b->n_tokens;
    struct token_job tj = {d, L, &d->kv[il - d->layer_begin], h, b, 0, residual};

    /* attention: every token's K and V enter the cache before any token attends (causal batch) */
    per_token(&tj, STAGE_ATTN_NORM, n);
    {
        float *ys[3] = {s->qh, s->kh, s->vh};
        const struct tern_ternary *ws[3] = {&L->wq, &L->wk, &L->wv};
        bitlinear(d, ys, ws, 3, n);
    }
    /* distinct (a decode-sized batch): each token attends its own sequence only, so its RoPE and K/V
     * writes go with its kv heads' attention */
    if (!distinct)
        per_token(&tj, STAGE_ROPE, n);
    if (n < PREFILL_TOKENS) {
        per_token(&tj, distinct ? STAGE_ROPE_KV_HEAD : STAGE_ATTN_KV_HEAD, n * hp->n_head_kv);
        per_token(&tj, STAGE_ATTN_SUB_NORM, n);
    } else {
        per_token(&tj, STAGE_ATTN, n);
    }
    {
        float *ys[1] = {s->out};
        const struct tern_ternary *ws[1] = {&L->wo};
        bitlinear(d, ys, ws, 1, n);
    }

    /* feed-forward */
    per_token(&tj, STAGE_FFN_NORM, n);
    {
        float *ys[2] = {s->gate, s->up};
        const struct tern_ternary *ws[2] = {&L->wgate, &L->wup};
        bitlinear(d, ys, ws, 2, n);
    }
    per_token(&tj, STAGE_GATING, n);
    {
        float *ys[1] = {s->out};
        const struct tern_ternary *ws[1] = {&L->wdown};
        bitlinear(d, ys, ws, 1, n);
    }
}

/* Whether a decode-sized batch's tokens all belong to different sequences (so none attends another's
 * K and V, and a token's RoPE and cache writes can go with its attention). */
static bool distinct_seqs(const struct tern_batch *b) {
    if (b->n_tokens >= PREFILL_TOKENS)
        return false;
    for (int t = 1; t < b->n_tokens; t++)
        for (int u = 0; u < t; u++)
            if (b->seq[u] == b->seq[t])
                return false;
    return true;
}

static tern_status cpu_run_layers(void *ctx, float *hidden, const struct tern_batch *b, int layer_begin,
                                  int layer_end) {
    struct cpu_device *d = ctx;
    if (layer_begin < d->layer_begin || layer_end > d->layer_end)
        return TERN_ERR_ARG;
    tern_status st = tern_batch_check(b, d->n_ctx, d->n_seq, "cpu");
    if (st)
        return st;
    st = tern_cpu_scratch_reserve(d, b->n_tokens);
    if (st)
        return st;
    if (layer_end == layer_begin)
        return TERN_OK;
    struct token_job tj = {d, NULL, NULL, hidden, b, 0, false};
    per_token(&tj, STAGE_ANGLES, b->n_tokens);
    const bool distinct = distinct_seqs(b);
    for (int il = layer_begin; il < layer_end; il++)
        run_layer(d, il, hidden, b, il > layer_begin, distinct);
    per_token(&tj, STAGE_RESIDUAL, b->n_tokens);
    return TERN_OK;
}

static void cpu_free(void *ctx) {
    struct cpu_device *d = ctx;
    if (!d)
        return;
    kv_free(d);
    scratch_free(&d->s);
    tern_cpu_head_free(d);
    tern_pool_free(d->pool);
    free(d);
}

static const struct tern_device_ops cpu_ops = {
    .describe = cpu_describe,
    .load = cpu_load,
    .embed = cpu_embed,
    .run_layers = cpu_run_layers,
    .logits = tern_cpu_logits,
    .sync = NULL,
    .free = cpu_free,
};

int tern_cpu_physical_cores(void) {
    /* count distinct (package, core) pairs in sysfs; fall back to the online CPU count */
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (n_cpu < 1)
        return 1;
    int n_cores = 0;
    long seen[1024];
    for (long cpu = 0; cpu < n_cpu && cpu < 1024; cpu++) {
        char path[128];
        long core = -1, pkg = -1;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/core_id", cpu);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%ld", &core) != 1)
                core = -1;
            fclose(f);
        }
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/physical_package_id", cpu);
        if ((f = fopen(path, "r"))) {
            if (fscanf(f, "%ld", &pkg) != 1)
                pkg = -1;
            fclose(f);
        }
        if (core < 0 || pkg < 0)
            return (int)n_cpu;
        const long key = pkg * 65536 + core;
        bool dup = false;
        for (int i = 0; i < n_cores; i++)
            dup |= seen[i] == key;
        if (!dup)
            seen[n_cores++] = key;
    }
    return n_cores > 0 ? n_cores : 1;
}

tern_status tern_cpu_device_create(int n_threads, struct tern_device *out) {
    const struct tern_cpu_kernels *k = tern_cpu_kernels_select();
    if (!k)
        return TERN_ERR_UNSUPPORTED;
    struct cpu_device *d = calloc(1, sizeof *d);
    if (!d) {
        tern_log_error("cpu: out of memory for the device");
        return TERN_ERR_NOMEM;
    }
    d->k = k;
    d->n_threads = n_threads > 0 ? n_threads : tern_cpu_physical_cores();
    tern_status st = tern_pool_create(d->n_threads, &d->pool);
    if (st) {
        free(d);
        return st;
    }
    out->ops = &cpu_ops;
    out->ctx = d;
    return TERN_OK;
}
