/* Sessions (see session.h): today one device runs every layer, the embedding and the head. */
#include "session.h"

#include <stdlib.h>
#include <string.h>

#include "../scheduler/log.h"
#include "gguf.h"

struct tern_session {
    const tern_model *model;
    struct tern_device dev;
    struct tern_device_info info;
    int n_ctx;
    int pos;
    float *hidden;  /* [cap][n_embd] */
    int hidden_cap; /* tokens */
    float *logits;  /* [n_vocab] */
    enum tern_head_mode head_mode;
    const struct tern_head_request *head_req; /* NULL: every row */
};

tern_status tern_session_create(const tern_model *m, const struct tern_session_params *p,
                                tern_session **out) {
    *out = NULL;
    const struct tern_model_view *v = tern_model_view(m);
    tern_session *s = calloc(1, sizeof *s);
    if (!s)
        return TERN_ERR_NOMEM;
    s->model = m;
    s->head_mode = p->head_mode;
    tern_gguf_prefault(tern_model_gguf(m));
    s->n_ctx = p->n_ctx > 0 ? p->n_ctx : (v->hp.n_ctx_train < 4096 ? v->hp.n_ctx_train : 4096);
    s->logits = malloc((size_t)v->hp.n_vocab * sizeof(float));
    tern_status st = s->logits ? tern_device_open(p->device, p->n_threads, &s->dev) : TERN_ERR_NOMEM;
    if (st == TERN_OK)
        st = s->dev.ops->describe(s->dev.ctx, &s->info);
    if (st == TERN_OK)
        st = s->dev.ops->load(s->dev.ctx, v, 0, v->hp.n_layer,
                              TERN_PART_EMBED | TERN_PART_HEAD |
                                  (p->head_mode == TERN_HEAD_CERTIFIED ? TERN_PART_HEAD_CERT : 0u),
                              s->n_ctx);
    if (st != TERN_OK) {
        if (st == TERN_ERR_NOMEM)
            tern_log_error("out of memory for a context of %d positions", s->n_ctx);
        tern_session_free(s);
        return st;
    }
    *out = s;
    return TERN_OK;
}

void tern_session_free(tern_session *s) {
    if (!s)
        return;
    if (s->dev.ops)
        s->dev.ops->release(s->dev.ctx);
    free(s->hidden);
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
    return s->info.name;
}
void tern_session_set_head_request(tern_session *s, const struct tern_head_request *req) {
    s->head_req = s->head_mode == TERN_HEAD_CERTIFIED ? req : NULL;
}
void tern_session_reset(tern_session *s) {
    s->pos = 0;
}

tern_status tern_session_eval(tern_session *s, const int32_t *tokens, int n, const float **logits) {
    const struct tern_model_view *v = tern_model_view(s->model);
    if (n <= 0)
        return TERN_ERR_ARG;
    if (n > s->n_ctx - s->pos) {
        tern_log_error("context is full: %d tokens at position %d exceed the context of %d (raise -c)", n,
                       s->pos, s->n_ctx);
        return TERN_ERR_CONTEXT_FULL;
    }
    if (n > s->hidden_cap) {
        float *h = realloc(s->hidden, (size_t)n * (size_t)v->hp.n_embd * sizeof(float));
        if (!h)
            return TERN_ERR_NOMEM;
        s->hidden = h;
        s->hidden_cap = n;
    }
    const struct tern_device_ops *ops = s->dev.ops;
    tern_status st = ops->embed(s->dev.ctx, s->hidden, tokens, n);
    if (st == TERN_OK)
        st = ops->run_layers(s->dev.ctx, s->hidden, n, s->pos, 0, v->hp.n_layer);
    if (st == TERN_OK && logits)
        st = ops->logits(s->dev.ctx, s->logits, s->hidden + (size_t)(n - 1) * v->hp.n_embd, s->head_req);
    if (st == TERN_OK && ops->sync)
        st = ops->sync(s->dev.ctx);
    if (st != TERN_OK)
        return st;
    s->pos += n;
    if (logits)
        *logits = s->logits;
    return TERN_OK;
}
