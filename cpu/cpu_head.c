/* The CPU device's output head (cpu_device_internal.h): the full head's passes over the rows, and the
 * certified head (scheduler/head_cert.h): its shadow, built or read from the cache, and per logits
 * call the shadow pass, the candidates' selection and their recomputation from the head itself. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../scheduler/head_cache.h"
#include "../scheduler/log.h"
#include "cpu_device_internal.h"
#include "token_passes.h"

void tern_cpu_head_free(struct cpu_device *d) {
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
 * every thread and cached (2B-4T's 128256 x 2560 F16 head: docs/certified-head.md has the times),
 * in the device's own memory either way: in huge pages (tern_cpu_buf_alloc), since in 4 KiB pages
 * the first-touch faults of 2B-4T's 320 MiB cost more than the build itself (1.5-2 s of a 2.1 s
 * load, 2 threads); and not in the cache file's mapping, which a decode step streamed slower
 * (docs/certified-head.md). Other head types keep the full head only. */
tern_status tern_cpu_head_load(struct cpu_device *d) {
    const struct tern_tensor *head = &d->model->output;
    if (!tern_head_cert_supported(head))
        return TERN_OK;
    const double t0 = now_s();
    const size_t shadow_bytes = tern_head_shadow_bytes(head->ne0, head->ne1);
    const bool cache = shadow_bytes >= TERN_HEAD_CACHE_MIN_BYTES;
    d->shadow_blob = tern_cpu_buf_alloc(shadow_bytes);
    if (!d->shadow_blob || !cand_reserve(d, 1)) {
        tern_cpu_head_free(d);
        tern_log_error("cpu: out of memory for the certified head's shadow (%zu MiB)", shadow_bytes >> 20);
        return TERN_ERR_NOMEM;
    }
    tern_head_shadow_view(&d->shadow, d->shadow_blob, head->ne0, head->ne1);
    const char *what = tern_type_name(head->type);
    if (cache) { /* read() faulted them one by one on this thread: 0.5-0.65 s for 2B-4T, 0.23-0.46 after */
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

/* One token's head goes in blocks of this many rows. */
enum { HEAD_ROWS_PER_TASK = 1024 };

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
    const int64_t r = (tern_cpu_run_offset(j->t->ne1, t, j->n_runs / DECODE_RUNS_PER_THREAD) + 8) / 16 * 16;
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

tern_status tern_cpu_logits(void *ctx, float *logits, const float *hidden, int n,
                            const struct tern_head_request *const *req) {
    struct cpu_device *d = ctx;
    const struct tern_model_view *m = d->model;
    const int64_t n_embd = m->hp.n_embd;
    if (n <= 0)
        return TERN_ERR_ARG;
    tern_status st = tern_cpu_scratch_reserve(d, n);
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
