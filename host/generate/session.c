/* Sessions (see session.h): the devices come from host/generate/devices.c, the plan from the scheduler's
 * planner (or an explicit split), and every batch goes through the executor. */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../scheduler/exec.h"
#include "../../scheduler/log.h"
#include "../gguf/gguf.h"
#include "devices.h"

struct tern_session {
    const tern_model *model;
    struct tern_registry reg;
    tern_exec *exec;
    char device_name[256];
    int n_ctx, n_seq;
    int *pos;           /* [n_seq] tokens each sequence evaluated so far */
    int *next;          /* [n_seq] a batch's next position per sequence */
    int32_t **tokens;   /* [n_seq][n_ctx] those tokens: a failover rebuilds the KV cache from them */
    int32_t *batch_pos; /* [cap] positions of a batch */
    int32_t *batch_seq; /* [cap] */
    int batch_cap;
    float *logits; /* [n_vocab] */
    enum tern_head_mode head_mode;
    const struct tern_head_request *head_req; /* what the sampler reads of sequence 0; NULL: every row */
    int lookup;                               /* prompt lookup: draft tokens a step (0: off) */
};

/* "N1,N2,..." into counts[n]; false (logged) when malformed or of another length. */
static bool parse_split(const char *split, int n, int *counts) {
    const char *p = split;
    for (int i = 0; i < n; i++) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 1 << 20 || (i + 1 < n ? *end != ',' : *end != 0)) {
            tern_log_error(
                "split '%s' is not %d non-negative layer counts separated by commas (one per device)", split,
                n);
            return false;
        }
        counts[i] = (int)v;
        p = end + 1;
    }
    return true;
}

static tern_status make_plan(tern_session *s, const struct tern_session_params *p,
                             const struct tern_plan_model *pm, struct tern_plan *plan) {
    struct tern_plan_device devs[TERN_MAX_DEVICES];
    if (p->split) {
        int counts[TERN_MAX_DEVICES];
        const char *names[TERN_MAX_DEVICES];
        if (!parse_split(p->split, s->reg.n, counts))
            return TERN_ERR_ARG;
        for (int i = 0; i < s->reg.n; i++)
            names[i] = s->reg.e[i].id;
        tern_registry_plan_devices(&s->reg, devs);
        return tern_plan_split(pm, devs, s->reg.n, counts, names, plan);
    }
    if (s->reg.n > 1) { /* a choice to make: the devices' profiles */
        tern_status st = tern_devices_probe(&s->reg, tern_model_view(s->model), p->reprobe);
        if (st)
            return st;
    }
    tern_registry_plan_devices(&s->reg, devs);
    return tern_plan_make(pm, devs, s->reg.n, plan);
}

static void name_devices(tern_session *s) {
    const struct tern_plan *p = tern_exec_plan(s->exec);
    const int d = p->seg[0].dev;
    if (p->n_seg == 1 && p->embed_dev == d && p->head_dev == d)
        snprintf(s->device_name, sizeof s->device_name, "%s", s->reg.e[d].info.name);
    else
        snprintf(s->device_name, sizeof s->device_name, "%s", tern_exec_plan_str(s->exec));
}

int tern_session_params_n_ctx(const tern_model *m, const struct tern_session_params *p) {
    const int train = tern_model_view(m)->hp.n_ctx_train;
    return p->n_ctx > 0 ? p->n_ctx : (train < 4096 ? train : 4096);
}

tern_status tern_session_create(const tern_model *m, const struct tern_session_params *p,
                                tern_session **out) {
    *out = NULL;
    const struct tern_model_view *v = tern_model_view(m);
    tern_session *s = calloc(1, sizeof *s);
    if (!s) {
        tern_log_error("out of memory for a session");
        return TERN_ERR_NOMEM;
    }
    s->model = m;
    s->head_mode = p->head_mode;
    tern_gguf_prefault(tern_model_gguf(m));
    s->n_ctx = tern_session_params_n_ctx(m, p);
    s->n_seq = p->n_seq > 0 ? p->n_seq : 1;
    s->logits = malloc((size_t)v->hp.n_vocab * sizeof(float));
    s->pos = calloc((size_t)s->n_seq, sizeof *s->pos);
    s->next = calloc((size_t)s->n_seq, sizeof *s->next);
    s->tokens = calloc((size_t)s->n_seq, sizeof *s->tokens);
    bool ok = s->logits && s->pos && s->next && s->tokens;
    for (int i = 0; ok && i < s->n_seq; i++)
        ok = (s->tokens[i] = malloc((size_t)s->n_ctx * sizeof(int32_t))) != NULL;
    tern_status st = TERN_ERR_NOMEM;
    if (!ok) {
        tern_log_error("out of memory for a session of %d x %d positions", s->n_seq, s->n_ctx);
        goto done;
    }
    const char *env = getenv("TERN_DEVICE");
    const bool given = p->device && p->device[0], from_env = !given && env && env[0];
    struct tern_log_capture cap; /* a bad spec from the environment says where it came from */
    if (from_env)
        tern_log_capture_begin(&cap);
    st = tern_devices_create(given ? p->device : from_env ? env : "auto", p->n_threads, &s->reg);
    if (from_env) {
        tern_log_capture_end(&cap, !st);
        if (st)
            tern_log_error("TERN_DEVICE: %s", cap.msg);
    }
    if (st)
        goto done;
    struct tern_plan_model pm;
    struct tern_plan plan;
    tern_devices_plan_model(v, s->n_ctx * s->n_seq, &pm);
    st = make_plan(s, p, &pm, &plan);
    if (st)
        goto done;
    st = tern_exec_create(&s->reg, v, &pm, &plan, s->n_ctx, s->n_seq, s->head_mode, &s->exec);
    if (st)
        goto done;
    name_devices(s);
    tern_log_debug("plan: %s (predicted %.2f ms per generated token, %.3f ms per prompt token)",
                   tern_exec_plan_str(s->exec), tern_exec_plan(s->exec)->decode_s * 1e3,
                   tern_exec_plan(s->exec)->prefill_s * 1e3);
    *out = s;
    return TERN_OK;
done: /* failures only */
    tern_session_free(s);
    return st;
}

void tern_session_free(tern_session *s) {
    if (!s)
        return;
    tern_exec_free(s->exec);
    tern_registry_free(&s->reg);
    for (int i = 0; s->tokens && i < s->n_seq; i++)
        free(s->tokens[i]);
    free(s->tokens);
    free(s->pos);
    free(s->next);
    free(s->batch_pos);
    free(s->batch_seq);
    free(s->logits);
    free(s);
}

int tern_session_n_ctx(const tern_session *s) {
    return s->n_ctx;
}
int tern_session_n_seq(const tern_session *s) {
    return s->n_seq;
}
int tern_session_n_vocab(const tern_session *s) {
    return (int)tern_model_view(s->model)->hp.n_vocab;
}
int tern_session_pos(const tern_session *s) {
    return s->pos[0];
}
int tern_session_seq_pos(const tern_session *s, int seq) {
    return seq >= 0 && seq < s->n_seq ? s->pos[seq] : 0;
}
const char *tern_session_device_name(const tern_session *s) {
    return s->device_name;
}
const char *tern_session_plan(const tern_session *s) {
    return tern_exec_plan_str(s->exec);
}
void tern_session_reset(tern_session *s) {
    for (int i = 0; i < s->n_seq; i++)
        s->pos[i] = 0;
}
void tern_session_set_lookup(tern_session *s, int max_draft) {
    s->lookup = max_draft < 0 ? 0 : max_draft < TERN_LOOKUP_MAX ? max_draft : TERN_LOOKUP_MAX;
}
int tern_session_lookup(const tern_session *s) {
    return s->lookup;
}
void tern_session_set_head_request(tern_session *s, const struct tern_head_request *req) {
    s->head_req = req;
}
const int32_t *tern_session_seq_tokens(const tern_session *s, int seq) {
    return seq >= 0 && seq < s->n_seq ? s->tokens[seq] : NULL;
}
void tern_session_seq_keep(tern_session *s, int seq, int n) {
    if (seq >= 0 && seq < s->n_seq)
        s->pos[seq] = n < 0 ? 0 : n < s->pos[seq] ? n : s->pos[seq];
}

static tern_status reserve_batch(tern_session *s, int n) {
    if (n <= s->batch_cap)
        return TERN_OK;
    int32_t *bp = realloc(s->batch_pos, (size_t)n * sizeof *bp);
    if (bp)
        s->batch_pos = bp;
    int32_t *bs = bp ? realloc(s->batch_seq, (size_t)n * sizeof *bs) : NULL;
    if (!bs) {
        tern_log_error("out of memory for a batch of %d tokens", n);
        return TERN_ERR_NOMEM;
    }
    s->batch_seq = bs;
    s->batch_cap = n;
    return TERN_OK;
}

/* Evaluate the n tokens whose sequences are in batch_seq: positions follow each sequence's count,
 * all checked before anything runs. */
static tern_status run_batch(tern_session *s, const int32_t *tokens, int n, const int *out, int n_out,
                             const struct tern_head_request *const *req, float *logits) {
    memcpy(s->next, s->pos, (size_t)s->n_seq * sizeof *s->next);
    for (int i = 0; i < n; i++) {
        const int q = s->batch_seq[i];
        if (s->next[q] >= s->n_ctx) {
            tern_log_error("context is full: sequence %d needs more than its %d positions", q, s->n_ctx);
            return TERN_ERR_CONTEXT_FULL;
        }
        s->batch_pos[i] = s->next[q]++;
    }
    const struct tern_exec_history hist = {s->n_seq, (const int32_t *const *)s->tokens, s->pos};
    const struct tern_batch b = {n, s->batch_pos, s->batch_seq};
    tern_status st = tern_exec_eval(s->exec, tokens, &b, &hist, out, n_out,
                                    s->head_mode != TERN_HEAD_FULL ? req : NULL, logits);
    if (st)
        return st;
    for (int i = 0; i < n; i++)
        s->tokens[s->batch_seq[i]][s->batch_pos[i]] = tokens[i];
    memcpy(s->pos, s->next, (size_t)s->n_seq * sizeof *s->pos);
    return TERN_OK;
}

tern_status tern_session_eval_batch(tern_session *s, const int32_t *tokens, const int32_t *seq, int n,
                                    const int *out, int n_out, const struct tern_head_request *const *req,
                                    float *logits) {
    if (n <= 0) {
        tern_log_error("a batch needs at least one token (got %d)", n);
        return TERN_ERR_ARG;
    }
    tern_status st = reserve_batch(s, n);
    if (st)
        return st;
    for (int i = 0; i < n; i++) {
        if (seq[i] < 0 || seq[i] >= s->n_seq) {
            tern_log_error("sequence %d does not exist (the session has %d)", seq[i], s->n_seq);
            return TERN_ERR_ARG;
        }
        s->batch_seq[i] = seq[i];
    }
    return run_batch(s, tokens, n, out, n_out, req, logits);
}

tern_status tern_session_eval(tern_session *s, const int32_t *tokens, int n, const float **logits) {
    if (n <= 0) {
        tern_log_error("a batch needs at least one token (got %d)", n);
        return TERN_ERR_ARG;
    }
    if (n > s->n_ctx - s->pos[0]) {
        tern_log_error("context is full: %d tokens at position %d exceed the context of %d", n, s->pos[0],
                       s->n_ctx);
        return TERN_ERR_CONTEXT_FULL;
    }
    tern_status st = reserve_batch(s, n);
    if (st)
        return st;
    memset(s->batch_seq, 0, (size_t)n * sizeof *s->batch_seq);
    const int last = n - 1;
    const struct tern_head_request *req[1] = {s->head_req};
    st = run_batch(s, tokens, n, &last, logits ? 1 : 0, req, s->logits);
    if (st)
        return st;
    if (logits)
        *logits = s->logits;
    return TERN_OK;
}
