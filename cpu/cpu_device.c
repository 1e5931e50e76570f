/* The CPU device: the forward pass of docs/architecture.md#numerics over the kernel table, for a layer range,
 * the embedding and the head. Scratch is sized for the largest batch seen and reused, so the decode loop
 * allocates nothing. */
#define _DEFAULT_SOURCE /* madvise (MADV_HUGEPAGE) beside the POSIX baseline */
#include "cpu_device.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../scheduler/head_cache.h"
#include "../scheduler/head_cert.h"
#include "../scheduler/log.h"
#include "kernels.h"
#include "pool.h"
#include "ref.h"
#include "token_passes.h"

struct cpu_layer_kv {
    /* f16 [n_seq][n_head_kv][n_ctx rounded up to whole K blocks][head_dim]: each kv head's positions are
     * one contiguous stream, K's in blocks of TERN_ATTN_KBLOCK positions (kernels.h). With positions
     * outermost, a kv head read 256 of every 1280 bytes (2B-4T) and decode attention at depth 4096 ran
     * 3x slower from DRAM (the prefetchers lose such a stream at every page). */
    uint16_t *k;
    uint16_t *v;
};

struct cpu_scratch {
    int cap;                 /* tokens the buffers below hold */
    float *x;                /* [cap][max(n_embd, n_ff)] normed input of a BitLinear */
    int8_t *q;               /* [cap][k_pad max] quantized activations */
    float *act_scale;        /* [cap] */
    int32_t *sum_q;          /* [cap] sum of each token's q */
    float *qh;               /* [cap][n_head*head_dim] queries */
    float *kh;               /* [cap][n_kv] keys */
    float *vh;               /* [cap][n_kv] values */
    float *attn;             /* [cap][n_head*head_dim] attention output */
    float *gate;             /* [cap][n_ff] */
    float *up;               /* [cap][n_ff] */
    float *out;              /* [cap][n_embd] projection output */
    float *angles;           /* [cap][n_rot] the token's RoPE cos (n_rot / 2), then sin, for every layer */
    float *scores;           /* [n_threads][TERN_ATTN_SCRATCH(head_dim, n_ctx - 1)] attention scratch */
    int *head_toks;          /* [2][cap] the tokens of a logits call, certified and full */
    struct tern_head_xq *xq; /* [cap] the certified head's quantized inputs, over the two below */
    int8_t *xq_p;            /* [cap][2][shadow n_blocks * TERN_HEAD_SHADOW_BLOCK] */
    float *xq_t;             /* [cap][shadow n_blocks] */
};

struct cpu_device {
    const struct tern_cpu_kernels *k;
    int n_threads;
    struct tern_pool *pool;
    const struct tern_model_view *model;
    int layer_begin, layer_end;
    unsigned parts;
    int n_ctx, n_seq;
    struct cpu_layer_kv *kv; /* [layer_end - layer_begin], in kv_mem */
    void *kv_mem;
    struct cpu_scratch s;
    /* certified head (TERN_PART_HEAD_CERT, scheduler/head_cert.h); shadow.q NULL when absent */
    struct tern_head_shadow shadow; /* int8 copy of the head and its bound coefficients */
    void *shadow_blob;              /* its memory, built here or read from the cache */
    /* per certified token of a logits call, cand_slots of them: */
    int32_t *cand;   /* [n_vocab] its candidate rows */
    float *heap;     /* [n_vocab] its k largest lower bounds */
    int64_t *n_cand; /* its number of candidates, -1 for the full head */
    int cand_slots;
};

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
static void *buf_alloc(size_t bytes) {
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

static tern_status scratch_reserve(struct cpu_device *d, int n_tokens) {
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
    s->x = buf_alloc(n * widest_q * sizeof(float));
    s->q = buf_alloc(n * widest_q);
    s->act_scale = buf_alloc(n * sizeof(float));
    s->sum_q = buf_alloc(n * sizeof(int32_t));
    s->qh = buf_alloc(n * n_q * sizeof(float));
    s->kh = buf_alloc(n * n_kv * sizeof(float));
    s->vh = buf_alloc(n * n_kv * sizeof(float));
    s->attn = buf_alloc(n * n_q * sizeof(float));
    s->gate = buf_alloc(n * (size_t)hp->n_ff * sizeof(float));
    s->up = buf_alloc(n * (size_t)hp->n_ff * sizeof(float));
    s->out = buf_alloc(n * (size_t)hp->n_embd * sizeof(float));
    s->angles = malloc(n * (size_t)hp->n_rot * sizeof(float));
    s->scores =
        malloc((size_t)d->n_threads * (size_t)TERN_ATTN_SCRATCH(hp->head_dim, d->n_ctx - 1) * sizeof(float));
    s->head_toks = malloc(2 * n * sizeof(int));
    const size_t nb = (size_t)(hp->n_embd + TERN_HEAD_SHADOW_BLOCK - 1) / TERN_HEAD_SHADOW_BLOCK;
    const size_t n_p = nb * TERN_HEAD_SHADOW_BLOCK;
    s->xq = malloc(n * sizeof *s->xq);
    s->xq_p = buf_alloc(n * 2 * n_p);
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

static void shadow_free(struct cpu_device *d) {
    free(d->shadow_blob);
    free(d->cand);
    free(d->heap);
    free(d->n_cand);
    memset(&d->shadow, 0, sizeof d->shadow);
    d->shadow_blob = NULL;
    d->cand = NULL;
    d->heap = NULL;
    d->n_cand = NULL;
    d->cand_slots = 0;
}

/* Room for the candidates of n certified tokens of one logits call (n_vocab rows each). */
static bool cand_reserve(struct cpu_device *d, int n) {
    if (n <= d->cand_slots)
        return true;
    const size_t rows = (size_t)d->model->output.ne1;
    int32_t *cand = realloc(d->cand, (size_t)n * rows * sizeof *cand);
    if (cand)
        d->cand = cand;
    float *heap = realloc(d->heap, (size_t)n * rows * sizeof *heap);
    if (heap)
        d->heap = heap;
    int64_t *n_cand = realloc(d->n_cand, (size_t)n * sizeof *n_cand);
    if (n_cand)
        d->n_cand = n_cand;
    if (!cand || !heap || !n_cand)
        return false;
    d->cand_slots = n;
    return true;
}

enum { SHADOW_ROWS_PER_TASK = 1024 };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct shadow_job {
    const struct tern_cpu_kernels *k;
    const struct tern_tensor *head;
    void *blob;
};

static void shadow_task(void *arg, int64_t task, int thread) {
    (void)thread;
    const struct shadow_job *j = arg;
    const int64_t r0 = task * SHADOW_ROWS_PER_TASK;
    const int64_t r1 = r0 + SHADOW_ROWS_PER_TASK < j->head->ne1 ? r0 + SHADOW_ROWS_PER_TASK : j->head->ne1;
    j->k->head_shadow(j->blob, j->head, r0, r1);
}

/* Faults in the pages of a buffer about to be read into, FAULT_BYTES_PER_TASK a task (every 4 KiB,
 * in case the kernel gave no huge page). */
enum { FAULT_BYTES_PER_TASK = 16 << 20 };

struct fault_job {
    uint8_t *p;
    size_t n;
};

static void fault_task(void *arg, int64_t task, int thread) {
    (void)thread;
    const struct fault_job *j = arg;
    const size_t at = (size_t)task * FAULT_BYTES_PER_TASK,
                 end = j->n - at < FAULT_BYTES_PER_TASK ? j->n : at + FAULT_BYTES_PER_TASK;
    for (size_t i = at; i < end; i += 4096)
        ((volatile uint8_t *)j->p)[i] = 0;
}

/* The certified head's shadow of an F16/BF16/F32 head, read from the cache (head_cache.h) or built on
 * every thread and cached (2B-4T's 128256 x 2560 F16 head: see docs/cpu.md for the times), in the
 * device's own memory either way: in huge pages (buf_alloc), since in 4 KiB pages the first-touch
 * faults of 2B-4T's 320 MiB cost more than the build itself (1.5-2 s of a 2.1 s load, 2 threads);
 * and not in the cache file's mapping, which a decode step streamed slower (docs/cpu.md). Other head
 * types keep the full head only. */
static tern_status shadow_build(struct cpu_device *d) {
    const struct tern_tensor *head = &d->model->output;
    if (!tern_head_cert_supported(head))
        return TERN_OK;
    const double t0 = now_s();
    const size_t shadow_bytes = tern_head_shadow_bytes(head->ne0, head->ne1);
    const bool cache = shadow_bytes >= TERN_HEAD_CACHE_MIN_BYTES;
    d->shadow_blob = buf_alloc(shadow_bytes);
    if (!d->shadow_blob || !cand_reserve(d, 1)) {
        shadow_free(d);
        tern_log_error("cpu: out of memory for the certified head's shadow (%zu MiB)", shadow_bytes >> 20);
        return TERN_ERR_NOMEM;
    }
    tern_head_shadow_view(&d->shadow, d->shadow_blob, head->ne0, head->ne1);
    const char *what = tern_type_name(head->type);
    if (cache) { /* read() would fault its pages in one by one on this thread */
        struct fault_job f = {d->shadow_blob, shadow_bytes};
        tern_pool_run(d->pool, (int64_t)((shadow_bytes + FAULT_BYTES_PER_TASK - 1) / FAULT_BYTES_PER_TASK),
                      fault_task, &f);
    }
    if (cache && tern_head_cache_read(d->model, d->shadow_blob, shadow_bytes)) {
        tern_log_debug("cpu: certified head: int8 shadow of the %lld x %lld %s head (%zu MiB) read from the "
                       "cache in %.2f s",
                       (long long)head->ne1, (long long)head->ne0, what, shadow_bytes >> 20, now_s() - t0);
        return TERN_OK;
    }
    struct shadow_job j = {d->k, head, d->shadow_blob};
    tern_pool_run(d->pool, (head->ne1 + SHADOW_ROWS_PER_TASK - 1) / SHADOW_ROWS_PER_TASK, shadow_task, &j);
    tern_log_debug("cpu: certified head: int8 shadow of the %lld x %lld %s head (%zu MiB) built in %.2f s",
                   (long long)head->ne1, (long long)head->ne0, what, shadow_bytes >> 20, now_s() - t0);
    if (cache) {
        const double t1 = now_s();
        tern_head_cache_store(d->model, d->shadow_blob, shadow_bytes);
        tern_log_debug("cpu: certified head: shadow written to the cache in %.2f s", now_s() - t1);
    }
    return TERN_OK;
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
    out->certify_head = true; /* 1.41x the full F16 head's decode on 2b4t (docs/cpu.md) */
    snprintf(out->features, sizeof out->features, "%s", d->k->name);
    return TERN_OK;
}

static tern_status cpu_load(void *ctx, const struct tern_model_view *model, int layer_begin, int layer_end,
                            unsigned parts, int n_ctx, int n_seq) {
    struct cpu_device *d = ctx;
    kv_free(d);
    scratch_free(&d->s);
    shadow_free(d);
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
    d->kv_mem = d->kv && n_layers > 0 ? buf_alloc(kv_bytes) : NULL;
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
        tern_status st = shadow_build(d);
        if (st)
            return st;
    }
    return scratch_reserve(d, 1);
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

/* Work split. Per-token ops split by token; the head by blocks of rows. */
enum { HEAD_ROWS_PER_TASK = 1024 };

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
enum {
    PREFILL_TOKENS = 16,
    PREFILL_ROWS_PER_TASK = 64,
    PREFILL_Q_BYTES = 320 << 10,
    DECODE_RUNS_PER_THREAD = 4
};
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
static int64_t run_offset(int64_t total, int64_t t, int64_t T) {
    const int64_t units = t <= T ? 6 * t : t <= 2 * T ? 6 * T + 2 * (t - T) : 8 * T + (t - 2 * T);
    return total * units / (10 * T);
}

/* Where decode run t begins: weight *wi at row *row (a multiple of 16, the row kernel's passes, or
 * n_out); run 4T begins at the last weight's end. */
static void run_start(const struct matmul_job *j, int64_t t, int *wi, int64_t *row) {
    int64_t off = run_offset(j->bytes, t, j->n_tasks / DECODE_RUNS_PER_THREAD);
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
 * sequences, docs/cpu.md) and nothing runs on the caller alone. */
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
    st = scratch_reserve(d, b->n_tokens);
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

/* The head over n tokens at once: tasks are row blocks, and each block is applied to every token
 * while its rows are in cache, so the head is read from memory once for all of them. matvec_tokens
 * and shadow_dot read each row once for a pass of up to TERN_PASS_TOKENS tokens, and a call takes
 * up to HEAD_TOKS_PER_CALL tokens in several passes. One token's head goes in blocks of
 * HEAD_ROWS_PER_TASK rows. A step of 2 to TERN_PASS_TOKENS tokens is one pass, so its rows need not
 * stay in cache: it goes in runs as the decode products do (run_offset), so that each thread reads
 * long stretches and the AVX-512 passes' 16-row groups prefetch the next group of their own stretch
 * (tg64 x4 on 2b4t with the certified head 161.2 -> 168.9 and 164.3 -> 167.8 t/s against 1024-row
 * blocks with the shadow's groups, two sittings, alternating builds; the full head level; 1024-row
 * blocks had taken the full head's x4 from 119 to 135 t/s against 128 with its groups). More tokens
 * go in blocks of MULTI_ROWS_PER_TASK rows (about 640 KiB of a 2560-wide F16 head, within L2 for
 * the passes after the first). Every token gets the bits of the one-token matvec (or shadow dot), so
 * a token's logits are the same bits whatever else is in the call. */
enum { MULTI_ROWS_PER_TASK = 128, HEAD_TOKS_PER_CALL = 16 };

struct head_job {
    const struct tern_cpu_kernels *k;
    const struct tern_tensor *t;
    float *logits;   /* [token][ld] */
    const float *x;  /* [token][n_embd] */
    const int *toks; /* the tokens to compute */
    int n_toks;
    int64_t rows_per_task; /* 0: n_runs runs as the decode products' (run_offset) */
    int64_t n_runs;
    size_t ld, n_embd;
    const struct tern_head_shadow *shadow; /* not NULL: the shadow's logits of xq[toks[i]] instead of t's */
    const struct tern_head_xq *xq;
};

/* Where head run t begins: a multiple of 16 rows (whole 16-row groups of the AVX-512 passes,
 * GROUP_ROWS and SHADOW_GROUP_ROWS), or ne1 */
static int64_t head_run_row(const struct head_job *j, int64_t t) {
    const int64_t r = (run_offset(j->t->ne1, t, j->n_runs / DECODE_RUNS_PER_THREAD) + 8) / 16 * 16;
    return r < j->t->ne1 ? r : j->t->ne1;
}

static void head_task(void *arg, int64_t task, int thread) {
    (void)thread;
    const struct head_job *j = arg;
    int64_t r0, r1;
    if (j->rows_per_task) {
        r0 = task * j->rows_per_task;
        r1 = r0 + j->rows_per_task < j->t->ne1 ? r0 + j->rows_per_task : j->t->ne1;
    } else {
        r0 = head_run_row(j, task);
        r1 = head_run_row(j, task + 1);
        if (r0 == r1)
            return;
    }
    for (int i0 = 0; i0 < j->n_toks; i0 += HEAD_TOKS_PER_CALL) {
        const int n = j->n_toks - i0 < HEAD_TOKS_PER_CALL ? j->n_toks - i0 : HEAD_TOKS_PER_CALL;
        float *out[HEAD_TOKS_PER_CALL];
        const float *x[HEAD_TOKS_PER_CALL];
        const struct tern_head_xq *xq[HEAD_TOKS_PER_CALL];
        for (int i = 0; i < n; i++) {
            out[i] = j->logits + (size_t)j->toks[i0 + i] * j->ld + r0;
            x[i] = j->x + (size_t)j->toks[i0 + i] * j->n_embd;
            xq[i] = j->xq + j->toks[i0 + i];
        }
        if (j->shadow)
            j->k->shadow_dot(out, j->shadow, xq, n, r0, r1);
        else
            j->k->matvec_tokens(out, j->t, x, n, r0, r1);
    }
}

/* Every row of the head for the tokens toks[0 .. n_toks), from the head itself or (shadow) from the
 * certified head's shadow and the tokens' quantized inputs in d->s.xq. */
static void head_rows(struct cpu_device *d, float *logits, const float *x, const int *toks, int n_toks,
                      bool shadow) {
    const struct tern_tensor *t = &d->model->output;
    const size_t ld = (size_t)t->ne1, n_embd = (size_t)d->model->hp.n_embd;
    const int64_t per_task = n_toks > TERN_PASS_TOKENS ? MULTI_ROWS_PER_TASK
                             : n_toks > 1              ? 0
                                                       : HEAD_ROWS_PER_TASK;
    const int64_t n_runs = DECODE_RUNS_PER_THREAD * tern_pool_size(d->pool);
    struct head_job j = {
        d->k, t, logits, x, toks, n_toks, per_task, n_runs, ld, n_embd, shadow ? &d->shadow : NULL, d->s.xq};
    tern_pool_run(d->pool, per_task ? (t->ne1 + per_task - 1) / per_task : n_runs, head_task, &j);
}

/* The certified head for tokens toks[0 .. n_toks), whose shadow logits are already in their rows:
 * each token's candidates from the bounds (a task per token, into its own slot), then every
 * token's candidates again from the head itself (tasks of CAND_ROWS_PER_TASK rows, one row per
 * matvec call: the full head's kernel, so the full head's bits). */
enum { CAND_ROWS_PER_TASK = 32 };

struct cert_job {
    struct cpu_device *d;
    float *logits;  /* [token][n_vocab] */
    const float *x; /* [token][n_embd] */
    const int *toks;
    const struct tern_head_request *const *req;
};

static void select_task(void *arg, int64_t i, int thread) {
    (void)thread;
    const struct cert_job *j = arg;
    struct cpu_device *d = j->d;
    const int64_t n_vocab = d->model->output.ne1;
    float *row = j->logits + (size_t)j->toks[i] * (size_t)n_vocab;
    const struct tern_head_xq *xq = &d->s.xq[j->toks[i]];
    const int64_t n = tern_head_cert_select(d->cand + i * n_vocab, row, d->heap + i * n_vocab, &d->shadow,
                                            xq->x_norm, xq->d_norm, j->req[j->toks[i]]);
    if (n >= 0)
        for (int64_t r = 0; r < n_vocab; r++)
            row[r] = -INFINITY;
    d->n_cand[i] = n;
}

static int64_t cand_tasks(int64_t n_cand) {
    return n_cand > 0 ? (n_cand + CAND_ROWS_PER_TASK - 1) / CAND_ROWS_PER_TASK : 0;
}

static void recompute_task(void *arg, int64_t task, int thread) {
    (void)thread;
    const struct cert_job *j = arg;
    const struct cpu_device *d = j->d;
    const struct tern_tensor *head = &d->model->output;
    const int64_t n_vocab = head->ne1, n_embd = d->model->hp.n_embd;
    int i = 0;
    for (; task >= cand_tasks(d->n_cand[i]); i++)
        task -= cand_tasks(d->n_cand[i]);
    float *logits = j->logits + (size_t)j->toks[i] * (size_t)n_vocab;
    const float *x = j->x + (size_t)j->toks[i] * (size_t)n_embd;
    const int32_t *cand = d->cand + i * n_vocab;
    const int64_t c0 = task * CAND_ROWS_PER_TASK,
                  c1 = c0 + CAND_ROWS_PER_TASK < d->n_cand[i] ? c0 + CAND_ROWS_PER_TASK : d->n_cand[i];
    for (int64_t c = c0; c < c1; c++)
        d->k->matvec(logits + cand[c], head, x, cand[c], cand[c] + 1);
}

/* The tokens it cannot certify (whose bounds did not hold, or all of them when there is no memory
 * for their candidates) go to full[*n_full] for the full head. */
static void certify(struct cpu_device *d, float *logits, const float *x, const int *toks, int n_toks,
                    const struct tern_head_request *const *req, int *full, int *n_full) {
    if (!cand_reserve(d, n_toks)) {
        tern_log_warn("cpu: no memory for the candidates of %d tokens: the full head computes them", n_toks);
        for (int i = 0; i < n_toks; i++)
            full[(*n_full)++] = toks[i];
        return;
    }
    struct cert_job j = {d, logits, x, toks, req};
    tern_pool_run(d->pool, n_toks, select_task, &j);
    int64_t n_tasks = 0;
    for (int i = 0; i < n_toks; i++) {
        if (d->n_cand[i] < 0) {
            full[(*n_full)++] = toks[i];
            continue;
        }
        tern_head_cert_count(req[toks[i]], d->n_cand[i], false);
        n_tasks += cand_tasks(d->n_cand[i]);
    }
    tern_pool_run(d->pool, n_tasks, recompute_task, &j);
}

static tern_status cpu_logits(void *ctx, float *logits, const float *hidden, int n,
                              const struct tern_head_request *const *req) {
    struct cpu_device *d = ctx;
    const struct tern_model_view *m = d->model;
    const int64_t n_embd = m->hp.n_embd;
    if (n <= 0)
        return TERN_ERR_ARG;
    tern_status st = scratch_reserve(d, n);
    if (st)
        return st;
    float *x = d->s.x; /* [n][n_embd] */
    int *cert = d->s.head_toks, *full = d->s.head_toks + n, n_cert = 0, n_full = 0;
    for (int t = 0; t < n; t++) {
        d->k->rmsnorm(x + t * n_embd, hidden + t * n_embd, m->output_norm, n_embd, m->hp.norm_eps);
        if (req && req[t] && d->shadow.q) {
            tern_head_quantize_x(&d->s.xq[t], x + t * n_embd, n_embd);
            cert[n_cert++] = t;
        } else {
            full[n_full++] = t;
        }
    }
    if (n_cert) { /* the shadow read once for every certified token */
        head_rows(d, logits, x, cert, n_cert, true);
        certify(d, logits, x, cert, n_cert, req, full, &n_full);
    }
    for (int i = 0; i < n_full; i++)
        if (req && req[full[i]])
            tern_head_cert_count(req[full[i]], m->output.ne1, true);
    if (n_full)
        head_rows(d, logits, x, full, n_full, false);
    return TERN_OK;
}

static void cpu_free(void *ctx) {
    struct cpu_device *d = ctx;
    if (!d)
        return;
    kv_free(d);
    scratch_free(&d->s);
    shadow_free(d);
    tern_pool_free(d->pool);
    free(d);
}

static const struct tern_device_ops cpu_ops = {
    .describe = cpu_describe,
    .load = cpu_load,
    .embed = cpu_embed,
    .run_layers = cpu_run_layers,
    .logits = cpu_logits,
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
