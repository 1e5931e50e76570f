/* The executor (see exec.h). */
#include "exec.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct fault {
    char id[32];
    int layer; /* -1: the embedding, -2: the head */
    int step;
    bool armed;
};

struct tern_exec {
    struct tern_registry *reg;
    const struct tern_model_view *m;
    struct tern_plan_model pm;
    struct tern_plan plan;
    char plan_str[256];
    int n_ctx, n_seq;
    enum tern_head_mode head_mode;
    float *hidden; /* [cap][n_embd] */
    float *heads;  /* [heads_cap][n_embd] the hidden states of the tokens whose logits are wanted */
    int heads_cap;
    int32_t *pos, *seq; /* [cap] a rebuild's batch */
    int cap;
    int step; /* evaluations so far */
    struct fault fault;
};

enum { WHERE_EMBED = -1, WHERE_HEAD = -2 };

static void parse_fault(struct fault *f) {
    const char *env = getenv("TERN_FAULT");
    f->armed = false;
    if (!env || !env[0])
        return;
    /* ID may hold a colon (cl:0): read STEP and WHERE from the right */
    const char *c2 = strrchr(env, ':');
    const char *c1 = c2 ? c2 - 1 : NULL;
    while (c1 && c1 > env && *c1 != ':')
        c1--;
    char where[16];
    if (!c2 || !c1 || c1 <= env || (size_t)(c1 - env) >= sizeof f->id ||
        (size_t)(c2 - c1 - 1) >= sizeof where || sscanf(c2 + 1, "%d", &f->step) != 1) {
        tern_log_warn("TERN_FAULT=%s is not ID:WHERE:STEP; ignored", env);
        return;
    }
    memcpy(f->id, env, (size_t)(c1 - env));
    f->id[c1 - env] = 0;
    memcpy(where, c1 + 1, (size_t)(c2 - c1 - 1));
    where[c2 - c1 - 1] = 0;
    if (!strcmp(where, "embd"))
        f->layer = WHERE_EMBED;
    else if (!strcmp(where, "head"))
        f->layer = WHERE_HEAD;
    else if (sscanf(where, "%d", &f->layer) != 1) {
        tern_log_warn("TERN_FAULT=%s: '%s' is not a layer, embd or head; ignored", env, where);
        return;
    }
    f->armed = true;
}

/* The injected fault, if it is due on device d covering [begin, end) (or the embedding/head). */
static bool fault_due(tern_exec *x, int d, int begin, int end) {
    struct fault *f = &x->fault;
    if (!f->armed || f->step != x->step || strcmp(f->id, x->reg->e[d].id) != 0)
        return false;
    if (f->layer >= 0 ? (f->layer < begin || f->layer >= end) : f->layer != begin)
        return false;
    f->armed = false;
    tern_log_error("injected fault (TERN_FAULT)");
    return true;
}

static void format_plan(tern_exec *x) {
    const char *names[TERN_MAX_DEVICES];
    for (int i = 0; i < x->reg->n; i++)
        names[i] = x->reg->e[i].id;
    tern_plan_format(&x->plan, names, x->plan_str, sizeof x->plan_str);
}

/* Whether device d, holding the head, builds the certified head. */
static bool certifies(const tern_exec *x, int d) {
    return x->head_mode == TERN_HEAD_CERTIFIED ||
           (x->head_mode == TERN_HEAD_AUTO && x->reg->e[d].info.certify_head);
}

/* Load every alive device with its part of the plan (devices outside it with nothing, freeing what
 * they held). *failed: the device that failed, or -1. */
static tern_status load_plan(tern_exec *x, int *failed) {
    *failed = -1;
    for (int d = 0; d < x->reg->n; d++) {
        struct tern_registry_entry *e = &x->reg->e[d];
        if (!e->plan.alive)
            continue;
        int begin = 0, end = 0;
        for (int i = 0; i < x->plan.n_seg; i++)
            if (x->plan.seg[i].dev == d) {
                begin = x->plan.seg[i].begin;
                end = x->plan.seg[i].end;
            }
        const unsigned parts =
            (x->plan.embed_dev == d ? TERN_PART_EMBED : 0u) |
            (x->plan.head_dev == d ? TERN_PART_HEAD | (certifies(x, d) ? TERN_PART_HEAD_CERT : 0u) : 0u);
        tern_status st = e->dev.ops->load(e->dev.ctx, x->m, begin, end, parts, x->n_ctx, x->n_seq);
        if (st) {
            *failed = d;
            return st;
        }
    }
    return TERN_OK;
}

static tern_status reserve(tern_exec *x, int n) {
    if (n <= x->cap)
        return TERN_OK;
    float *h = realloc(x->hidden, (size_t)n * (size_t)x->m->hp.n_embd * sizeof(float));
    if (h)
        x->hidden = h;
    int32_t *pos = h ? realloc(x->pos, (size_t)n * sizeof *pos) : NULL;
    if (pos)
        x->pos = pos;
    int32_t *seq = pos ? realloc(x->seq, (size_t)n * sizeof *seq) : NULL;
    if (!seq) {
        tern_log_error("out of memory for a batch of %d tokens", n);
        return TERN_ERR_NOMEM;
    }
    x->seq = seq;
    x->cap = n;
    return TERN_OK;
}

/* Room for the hidden states of n tokens that want logits (one per sequence of a step, not one per
 * token of a prompt). */
static tern_status reserve_heads(tern_exec *x, int n) {
    if (n <= x->heads_cap)
        return TERN_OK;
    float *h = realloc(x->heads, (size_t)n * (size_t)x->m->hp.n_embd * sizeof(float));
    if (!h) {
        tern_log_error("out of memory for the logits of %d tokens", n);
        return TERN_ERR_NOMEM;
    }
    x->heads = h;
    x->heads_cap = n;
    return TERN_OK;
}

/* One layer range of the plan on a slice of the batch; fault: the injected fault is due here. */
struct range_job {
    tern_exec *x;
    int seg;
    float *hidden;
    struct tern_batch b;
    bool fault;
    tern_status st;
};

static void *run_range(void *arg) {
    struct range_job *j = arg;
    const struct tern_plan_seg *s = &j->x->plan.seg[j->seg];
    const struct tern_device *dev = &j->x->reg->e[s->dev].dev;
    j->st = j->fault ? TERN_ERR_DEVICE : dev->ops->run_layers(dev->ctx, j->hidden, &j->b, s->begin, s->end);
    return NULL;
}

/* Pipelining: prompt chunks move through the ranges in a wavefront, range i working on chunk k
 * while range i+1 works on chunk k-1, when the devices do not share cores (or TERN_PIPELINE=1
 * forces it, for tests; TERN_PIPELINE=0 turns it off). Each chunk is causal over the earlier ones
 * through the KV cache, and batch invariance makes the result the same bits as one batch. */
static bool pipelined(const tern_exec *x, int n) {
    if (x->plan.n_seg < 2 || n < 2 * TERN_PIPELINE_CHUNK)
        return false;
    const char *env = getenv("TERN_PIPELINE");
    if (env && env[0])
        return strcmp(env, "0") != 0;
    struct tern_plan_device devs[TERN_MAX_DEVICES];
    tern_registry_plan_devices(x->reg, devs);
    return tern_plan_pipelined(devs, &x->plan);
}

/* The plan's layer ranges over the batch. */
static tern_status run_ranges(tern_exec *x, const struct tern_batch *b, int *failed) {
    const struct tern_plan *p = &x->plan;
    const size_t n_embd = (size_t)x->m->hp.n_embd;
    const int n = b->n_tokens;
    const int chunk = pipelined(x, n) ? TERN_PIPELINE_CHUNK : n, n_chunks = (n + chunk - 1) / chunk;
    for (int t = 0; t < n_chunks + p->n_seg - 1; t++) {
        struct range_job jobs[TERN_MAX_DEVICES];
        int n_jobs = 0;
        for (int i = 0; i < p->n_seg; i++) {
            const int k = t - i;
            if (k < 0 || k >= n_chunks)
                continue;
            const int k0 = k * chunk, kn = n - k0 < chunk ? n - k0 : chunk;
            const struct tern_plan_seg *s = &p->seg[i];
            const struct tern_batch slice = {kn, b->pos + k0, b->seq + k0};
            jobs[n_jobs++] = (struct range_job){
                x,      i, x->hidden + (size_t)k0 * n_embd, slice, fault_due(x, s->dev, s->begin, s->end),
                TERN_OK};
        }
        pthread_t threads[TERN_MAX_DEVICES];
        bool started[TERN_MAX_DEVICES] = {false};
        for (int j = 1; j < n_jobs; j++)
            started[j] = pthread_create(&threads[j], NULL, run_range, &jobs[j]) == 0;
        for (int j = 0; j < n_jobs; j++)
            if (!started[j])
                run_range(&jobs[j]);
        for (int j = 1; j < n_jobs; j++)
            if (started[j])
                pthread_join(threads[j], NULL);
        for (int j = 0; j < n_jobs; j++)
            if (jobs[j].st) {
                *failed = p->seg[jobs[j].seg].dev;
                return jobs[j].st;
            }
    }
    return TERN_OK;
}

/* One pass of the plan over the batch; logits of the tokens out[0..n_out). *failed: the device
 * whose call failed, or -1. */
static tern_status run_plan(tern_exec *x, const int32_t *tokens, const struct tern_batch *b, const int *out,
                            int n_out, const struct tern_head_request *const *req, float *logits,
                            int *failed) {
    const struct tern_plan *p = &x->plan;
    struct tern_registry_entry *e = x->reg->e;
    *failed = p->embed_dev;
    tern_status st =
        fault_due(x, p->embed_dev, WHERE_EMBED, 0)
            ? TERN_ERR_DEVICE
            : e[p->embed_dev].dev.ops->embed(e[p->embed_dev].dev.ctx, x->hidden, tokens, b->n_tokens);
    if (st)
        return st;
    st = run_ranges(x, b, failed);
    if (st)
        return st;
    if (n_out > 0) {
        /* the rows of the tokens that want logits, side by side: the head reads its weights once */
        *failed = p->head_dev;
        const size_t row = (size_t)x->m->hp.n_embd * sizeof(float);
        for (int i = 0; i < n_out; i++)
            memcpy(x->heads + (size_t)i * (size_t)x->m->hp.n_embd,
                   x->hidden + (size_t)out[i] * (size_t)x->m->hp.n_embd, row);
        st = fault_due(x, p->head_dev, WHERE_HEAD, 0)
                 ? TERN_ERR_DEVICE
                 : e[p->head_dev].dev.ops->logits(e[p->head_dev].dev.ctx, logits, x->heads, n_out, req);
        if (st)
            return st;
    }
    for (int d = 0; d < x->reg->n; d++) {
        *failed = d;
        if (e[d].plan.alive && e[d].dev.ops->sync) {
            st = e[d].dev.ops->sync(e[d].dev.ctx);
            if (st)
                return st;
        }
    }
    *failed = -1;
    return TERN_OK;
}

/* Evaluate each sequence's history again (after a failover) to rebuild the KV cache. */
static tern_status rebuild(tern_exec *x, const struct tern_exec_history *hist, int *failed) {
    for (int s = 0; hist && s < hist->n_seq; s++) {
        const int n = hist->n[s];
        if (n <= 0)
            continue;
        tern_status st = reserve(x, n);
        if (st)
            return st;
        for (int i = 0; i < n; i++) {
            x->pos[i] = i;
            x->seq[i] = s;
        }
        const struct tern_batch b = {n, x->pos, x->seq};
        st = run_plan(x, hist->tokens[s], &b, NULL, 0, NULL, NULL, failed);
        if (st)
            return st;
    }
    return TERN_OK;
}

/* A status that means the device, not the input, failed: the work can go elsewhere. */
static bool device_failure(tern_status st) {
    return st == TERN_ERR_DEVICE || st == TERN_ERR_NOMEM || st == TERN_ERR_INTERNAL;
}

/* Drop device d, plan again over the devices left and load them. */
static tern_status fail_over(tern_exec *x, int d, const char *why) {
    struct tern_registry_entry *e = &x->reg->e[d];
    e->plan.alive = false;
    struct tern_plan_device devs[TERN_MAX_DEVICES];
    tern_registry_plan_devices(x->reg, devs);
    struct tern_log_capture cap;
    tern_log_capture_begin(&cap);
    tern_status st = tern_plan_make(&x->pm, devs, x->reg->n, &x->plan);
    tern_log_capture_end(&cap, 0);
    if (st) {
        tern_log_error("%s (%s) failed (%s) and no device left can run the model", e->id, e->info.name, why);
        return st;
    }
    format_plan(x);
    tern_log_warn("%s (%s) failed (%s); continuing on %s", e->id, e->info.name, why, x->plan_str);
    return TERN_OK;
}

/* One try: load the plan and rebuild the KV cache unless *loaded, then run the batch (if any). */
static tern_status try_eval(tern_exec *x, const int32_t *tokens, const struct tern_batch *b,
                            const struct tern_exec_history *hist, const int *out, int n_out,
                            const struct tern_head_request *const *req, float *logits, bool *loaded,
                            int *failed) {
    tern_status st;
    if (!*loaded) {
        st = load_plan(x, failed);
        if (st)
            return st;
        st = rebuild(x, hist, failed);
        if (st)
            return st;
        *loaded = true;
    }
    if (!b)
        return TERN_OK;
    st = reserve(x, b->n_tokens);
    if (st)
        return st;
    return run_plan(x, tokens, b, out, n_out, req, logits, failed);
}

/* Run the batch (if any), failing over as long as devices are left: after a failover the new
 * plan is loaded and every sequence's history evaluated again to rebuild the KV cache. */
static tern_status eval_with_failover(tern_exec *x, const int32_t *tokens, const struct tern_batch *b,
                                      const struct tern_exec_history *hist, const int *out, int n_out,
                                      const struct tern_head_request *const *req, float *logits,
                                      bool loaded) {
    for (;;) {
        struct tern_log_capture cap;
        tern_log_capture_begin(&cap);
        int failed = -1;
        tern_status st = try_eval(x, tokens, b, hist, out, n_out, req, logits, &loaded, &failed);
        tern_log_capture_end(&cap, !device_failure(st) || failed < 0);
        if (!st || !device_failure(st) || failed < 0)
            return st;
        tern_status fst = fail_over(x, failed, cap.n_errors ? cap.msg : tern_status_message(st));
        if (fst)
            return st;
        loaded = false;
    }
}

tern_status tern_exec_create(struct tern_registry *reg, const struct tern_model_view *m,
                             const struct tern_plan_model *pm, const struct tern_plan *plan, int n_ctx,
                             int n_seq, enum tern_head_mode head_mode, tern_exec **out) {
    *out = NULL;
    tern_exec *x = calloc(1, sizeof *x);
    if (!x)
        return TERN_ERR_NOMEM;
    x->reg = reg;
    x->m = m;
    x->pm = *pm;
    x->plan = *plan;
    x->n_ctx = n_ctx;
    x->n_seq = n_seq;
    x->head_mode = head_mode;
    parse_fault(&x->fault);
    format_plan(x);
    tern_status st = reserve(x, 1);
    if (st)
        goto done;
    st = eval_with_failover(x, NULL, NULL, NULL, NULL, 0, NULL, NULL, false);
    if (st)
        goto done;
    *out = x;
    return TERN_OK;
done: /* failures only */
    tern_exec_free(x);
    return st;
}

void tern_exec_free(tern_exec *x) {
    if (!x)
        return;
    free(x->hidden);
    free(x->heads);
    free(x->pos);
    free(x->seq);
    free(x);
}

tern_status tern_exec_eval(tern_exec *x, const int32_t *tokens, const struct tern_batch *b,
                           const struct tern_exec_history *hist, const int *out, int n_out,
                           const struct tern_head_request *const *req, float *logits) {
    if (b->n_tokens <= 0)
        return TERN_ERR_ARG;
    for (int i = 0; i < n_out; i++)
        if (out[i] < 0 || out[i] >= b->n_tokens)
            return TERN_ERR_ARG;
    tern_status st = reserve_heads(x, n_out);
    if (st)
        goto done;
    st = eval_with_failover(x, tokens, b, hist, out, n_out, req, logits, true);
done:
    x->step++;
    return st;
}

const char *tern_exec_plan_str(const tern_exec *x) {
    return x->plan_str;
}

const struct tern_plan *tern_exec_plan(const tern_exec *x) {
    return &x->plan;
}
