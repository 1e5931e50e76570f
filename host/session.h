/* A session: one model on the devices chosen for it, with its KV cache and position. It embeds
 * tokens, runs the layers as one batch, and computes the logits of the last token. */
#ifndef TERN_SESSION_H
#define TERN_SESSION_H

#include "model.h"

/* How the head computes logits that come with a request (tern_session_set_head_request). */
enum tern_head_mode {
    TERN_HEAD_CERTIFIED = 0, /* low-bit shadow + exact recompute of the candidates (head_cert.h) */
    TERN_HEAD_FULL = 1       /* every row from the head */
};

struct tern_session_params {
    int n_ctx;          /* positions; <= 0: the model's training context, capped at 4096 */
    int n_threads;      /* CPU threads; <= 0: physical cores */
    const char *device; /* "cpu" (default when NULL), "auto", "cl:N" or "cl:NAME" */
    enum tern_head_mode head_mode;
};

typedef struct tern_session tern_session;

tern_status tern_session_create(const tern_model *m, const struct tern_session_params *p, tern_session **out);
void tern_session_free(tern_session *s);

int tern_session_n_ctx(const tern_session *s);
int tern_session_pos(const tern_session *s); /* tokens evaluated so far */
const char *tern_session_device_name(const tern_session *s);

/* Evaluate n tokens at the current position as one batch and advance. *logits (may be NULL)
 * receives the last token's n_vocab logits, owned by the session until the next call.
 * TERN_ERR_CONTEXT_FULL (logged) when they do not fit. */
tern_status tern_session_eval(tern_session *s, const int32_t *tokens, int n, const float **logits);
/* What the sampler reads of the next evaluations' logits (NULL, the default: every row). The
 * request must stay valid until replaced; with TERN_HEAD_CERTIFIED, rows it proves unread come
 * back as -INFINITY. TERN_HEAD_FULL sessions ignore it. */
void tern_session_set_head_request(tern_session *s, const struct tern_head_request *req);
/* Forget all positions (the KV cache is overwritten from position 0). */
void tern_session_reset(tern_session *s);

/* Open one device by spec ("cpu", "auto", "cl:N", "cl:NAME"). One line is logged on failure. */
tern_status tern_device_open(const char *spec, int n_threads, struct tern_device *out);

#endif
