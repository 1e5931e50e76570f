/* A session: one model on the devices chosen for it (scheduler/: registry, probe, planner,
 * executor), the tokens evaluated so far, its position and the last logits. It embeds tokens, runs
 * the layers as one batch over the plan, and computes the logits of the last token. */
#ifndef TERN_SESSION_H
#define TERN_SESSION_H

#include <stdbool.h>

#include "../model/model.h"

struct tern_session_params {
    int n_ctx;                     /* positions; <= 0: the model's training context, capped at 4096 */
    int n_threads;                 /* CPU threads; <= 0: physical cores */
    const char *device;            /* device spec (docs/scheduler.md); NULL: $TERN_DEVICE, else "auto" */
    const char *split;             /* "N1,N2,...": layers per listed device in order; NULL: planned */
    bool reprobe;                  /* measure the devices again instead of reading the probe cache */
    int n_seq;                     /* sequences (KV cache slots) evaluated side by side; <= 0: 1 */
    enum tern_head_mode head_mode; /* how logits are computed (TERN_HEAD_AUTO by default) */
};

typedef struct tern_session tern_session;

tern_status tern_session_create(const tern_model *m, const struct tern_session_params *p, tern_session **out);
void tern_session_free(tern_session *s);

/* The positions a session of model m with params p gets (its n_ctx, or the default above), known
 * before the session opens its devices. */
int tern_session_params_n_ctx(const tern_model *m, const struct tern_session_params *p);
int tern_session_n_ctx(const tern_session *s);
int tern_session_n_seq(const tern_session *s);
int tern_session_n_vocab(const tern_session *s);          /* logits per token */
int tern_session_pos(const tern_session *s);              /* tokens sequence 0 evaluated so far */
int tern_session_seq_pos(const tern_session *s, int seq); /* tokens sequence seq evaluated so far */
/* What runs the model: the device's name when one device runs all of it, else the plan
 * ("cl:0[0-19] cpu[20-29]"). */
const char *tern_session_device_name(const tern_session *s);
/* The plan in device ids ("cpu[0-29]"). */
const char *tern_session_plan(const tern_session *s);

/* Evaluate n tokens of sequence 0 at its current position as one batch and advance. *logits (may
 * be NULL) receives the last token's n_vocab logits, owned by the session until the next call.
 * TERN_ERR_CONTEXT_FULL (logged) when they do not fit. */
tern_status tern_session_eval(tern_session *s, const int32_t *tokens, int n, const float **logits);
/* Evaluate n tokens of several sequences as one batch: token i continues sequence seq[i] (in order
 * within a sequence). logits[j][n_vocab] receives the logits of token out[j], j < n_out; req
 * (NULL, or n_out entries that may be NULL) says what the sampler reads of each, as
 * tern_session_set_head_request does. A token's logits are the same bits whatever else shares its
 * batch. TERN_ERR_CONTEXT_FULL (logged) when a sequence would pass the context; nothing is
 * evaluated then. */
tern_status tern_session_eval_batch(tern_session *s, const int32_t *tokens, const int32_t *seq, int n,
                                    const int *out, int n_out, const struct tern_head_request *const *req,
                                    float *logits);
/* What the sampler reads of the next evaluations' logits (NULL, the default: every row). The
 * request must stay valid until replaced; with TERN_HEAD_CERTIFIED, rows it proves unread come
 * back as -INFINITY. TERN_HEAD_FULL sessions ignore it. */
void tern_session_set_head_request(tern_session *s, const struct tern_head_request *req);
/* Prompt lookup for tern_generate (generate.h): draft up to max_draft tokens a step (0, the
 * default: off; at most TERN_LOOKUP_MAX). */
enum { TERN_LOOKUP_MAX = 7 };
void tern_session_set_lookup(tern_session *s, int max_draft);
int tern_session_lookup(const tern_session *s);
/* Forget all positions of every sequence (the KV cache is overwritten from position 0). */
void tern_session_reset(tern_session *s);
/* The tokens sequence seq evaluated, at positions [0, tern_session_seq_pos): what its KV cache
 * holds. NULL for a sequence that does not exist. */
const int32_t *tern_session_seq_tokens(const tern_session *s, int seq);
/* Keep the first n positions of sequence seq (n is clamped to [0, its position]; 0 forgets them
 * all): its next token goes to position n, and the KV cache below n is used as it is. Since a
 * token's K and V are the same bits however it was batched, evaluating the rest after keeping a
 * prefix gives the bits evaluating everything would. */
void tern_session_seq_keep(tern_session *s, int seq, int n);

/* Check a device spec's syntax: auto | cpu | cl | cl:N | cl:NAME, or a list of the last four
 * joined by ',' or '+'. False (one line logged) when it is malformed. */
bool tern_device_spec_valid(const char *spec);

#endif
