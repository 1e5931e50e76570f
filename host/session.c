/* Sessions (see session.h): the devices come from host/devices.c, the plan from the scheduler's
 * planner (or an explicit split), and every batch goes through the executor. */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../scheduler/exec.h"
#include "../scheduler/log.h"
#include "devices.h"
#include "gguf.h"

struct tern_session {
    const tern_model *model;
    struct tern_registry reg;
    tern_exec *exec;
    char device_name[256];
    int n_ctx;
    int pos;
    int32_t *tokens; /* [n_ctx] evaluated so far: a failover rebuilds the KV cache from them */
    float *logits;   /* [n_vocab] */
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
    const struct tern_model_view *v = tern_model_view(s->model);
    struct tern_plan_device devs[TERN_MAX_DEVICES];
    const char *names[TERN_MAX_DEVICES];
    if (p->split) {
        int counts[TERN_MAX_DEVICES];
        if (!parse_split(p->split, s->reg.n, counts))
            return TERN_ERR_ARG;
        for (int i = 0; i < s->reg.n; i++) {
            devs[i] = s->reg.e[i].plan;
            names[i] = s->reg.e[i].id;
        }
        return tern_plan_split(pm, devs, s->reg.n, counts, names, plan);
    }
    if (s->reg.n > 1) {
        tern_status st = tern_devices_probe(&s->reg, v, p->reprobe);
        if (st != TERN_OK)
            return st;
    }
    for (int i = 0; i < s->reg.n; i++)
        devs[i] = s->reg.e[i].plan;
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
    tern_gguf_prefault(tern_model_gguf(m));
    s->n_ctx = p->n_ctx > 0 ? p->n_ctx : (v->hp.n_ctx_train < 4096 ? v->hp.n_ctx_train : 4096);
    s->logits = malloc((size_t)v->hp.n_vocab * sizeof(float));
    s->tokens = malloc((size_t)s->n_ctx * sizeof(int32_t));
    tern_status st = TERN_OK;
    if (!s->logits || !s->tokens) {
        tern_log_error("out of memory for a session of %d positions", s->n_ctx);
        st = TERN_ERR_NOMEM;
    }
    const char *spec = p->device ? p->device : getenv("TERN_DEVICE");
    if (st == TERN_OK)
        st = tern_devices_open(spec && spec[0] ? spec : "auto", p->n_threads, &s->reg);
    struct tern_plan_model pm;
    struct tern_plan plan;
    tern_devices_plan_model(v, s->n_ctx, &pm);
    if (st == TERN_OK)
        st = make_plan(s, p, &pm, &plan);
    if (st == TERN_OK)
        st = tern_exec_create(&s->reg, v, &pm, &plan, s->n_ctx, &s->exec);
    if (st != TERN_OK) {
        tern_session_free(s);
        return st;
    }
    name_devices(s);
    tern_log_debug("plan: %s (predicted %.2f ms per generated token, %.3f ms per prompt token)",
                   tern_exec_plan_str(s->exec), tern_exec_plan(s->exec)->decode_s * 1e3,
                   tern_exec_plan(s->exec)->prefill_s * 1e3);
    *out = s;
    return TERN_OK;
}

void tern_session_free(tern_session *s) {
    if (!s)
        return;
    tern_exec_free(s->exec);
    tern_registry_free(&s->reg);
    free(s->tokens);
    free(s->logits);
    free(s);
}

int tern_session_n_ctx(const tern_session *s) {
    return s->n_ctx;
}
int tern_session_pos(const tern_session *s) {
    return s->pos;
}
const char *tern_session_device_name(const tern_session *s) {
    return s->device_name;
}
const char *tern_session_plan(const tern_session *s) {
    return tern_exec_plan_str(s->exec);
}
void tern_session_reset(tern_session *s) {
    s->pos = 0;
}

tern_status tern_session_eval(tern_session *s, const int32_t *tokens, int n, const float **logits) {
    if (n <= 0)
        return TERN_ERR_ARG;
    if (n > s->n_ctx - s->pos) {
        tern_log_error("context is full: %d tokens at position %d exceed the context of %d", n, s->pos,
                       s->n_ctx);
        return TERN_ERR_CONTEXT_FULL;
    }
    memcpy(s->tokens + s->pos, tokens, (size_t)n * sizeof *tokens);
    tern_status st = tern_exec_eval(s->exec, s->tokens, s->pos, n, logits ? s->logits : NULL);
    if (st != TERN_OK)
        return st;
    s->pos += n;
    if (logits)
        *logits = s->logits;
    return TERN_OK;
}
