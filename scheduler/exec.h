/* The executor: runs a plan over the registry's devices. Each device holds its layer range, and
 * the KV cache of those layers; the embedding, the ranges in order and the head each run on their
 * device, with the hidden state (n_tokens x n_embd f32, host memory) handed across at each
 * boundary; a batch may hold tokens of several sequences (each its own KV cache slot). When a device fails
 * (an error status from it: device lost, out of resources, a failed kernel or transfer), it is marked dead,
 * the model is planned again over the devices left, the KV cache is rebuilt from the tokens so far, and the
 * batch runs again: one warning, same output.
 *
 * TERN_FAULT=ID:WHERE:STEP injects such a failure for tests: device ID ("cpu", "cl:0") fails when
 * it runs layer WHERE (a number, or "embd"/"head") during evaluation STEP (0 = the first batch
 * evaluated by the session, usually the prompt; each later call counts one). */
#ifndef TERN_EXEC_H
#define TERN_EXEC_H

#include "plan.h"
#include "registry.h"

typedef struct tern_exec tern_exec;

/* Load the plan's parts onto reg's devices (reg stays the caller's and must outlive the executor),
 * with KV cache for n_seq sequences of n_ctx positions; the head's device also builds what the
 * certified head needs (TERN_PART_HEAD_CERT) when head_mode is certified, or auto and the device
 * certifies by default. A device that fails to load is handled as a
 * failure (dropped, planned again). */
tern_status tern_exec_create(struct tern_registry *reg, const struct tern_model_view *m,
                             const struct tern_plan_model *pm, const struct tern_plan *plan, int n_ctx,
                             int n_seq, enum tern_head_mode head_mode, tern_exec **out);
void tern_exec_free(tern_exec *x);

/* The tokens each sequence evaluated before a batch: a failover rebuilds the KV cache from them. */
struct tern_exec_history {
    int n_seq;
    const int32_t *const *tokens; /* [n_seq] -> [n[s]] */
    const int *n;                 /* [n_seq] */
};

/* Evaluate tokens[0 .. b->n_tokens) as batch b (positions and sequences). logits[i][n_vocab]
 * receives the logits of token out[i], i < n_out (logits may be NULL when n_out is 0); req (NULL,
 * or n_out entries that may be NULL) is what the sampler reads of each (scheduler/device.h). */
tern_status tern_exec_eval(tern_exec *x, const int32_t *tokens, const struct tern_batch *b,
                           const struct tern_exec_history *hist, const int *out, int n_out,
                           const struct tern_head_request *const *req, float *logits);

/* The plan in use ("cl:0[0-19] cpu[20-29]"). */
const char *tern_exec_plan_str(const tern_exec *x);
const struct tern_plan *tern_exec_plan(const tern_exec *x);

#endif
