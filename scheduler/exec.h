/* The executor: runs a plan over the registry's devices. Each device holds its layer range, and
 * the KV cache of those layers; the embedding, the ranges in order and the head each run on their
 * device, with the hidden state (n_tokens x n_embd f32, host memory) handed across at each
 * boundary. When a device fails (an error status from it: device lost, out of resources, a failed
 * kernel or transfer), it is marked dead, the model is planned again over the devices left, the
 * KV cache is rebuilt from the tokens so far, and the batch runs again: one warning, same output.
 *
 * TERN_FAULT=ID:WHERE:STEP injects such a failure for tests: device ID ("cpu", "cl:0") fails when
 * it runs layer WHERE (a number, or "embd"/"head") during evaluation STEP (0 = the first batch
 * evaluated by the session, usually the prompt; each later call counts one). */
#ifndef TERN_EXEC_H
#define TERN_EXEC_H

#include "plan.h"
#include "registry.h"

typedef struct tern_exec tern_exec;

/* Load the plan's parts onto reg's devices (reg stays the caller's and must outlive the executor).
 * A device that fails to load is handled as a failure (dropped, planned again). */
tern_status tern_exec_create(struct tern_registry *reg, const struct tern_model_view *m,
                             const struct tern_plan_model *pm, const struct tern_plan *plan, int n_ctx,
                             tern_exec **out);
void tern_exec_free(tern_exec *x);

/* Evaluate history[pos .. pos+n) as one causal batch at positions pos..; history[0 .. pos) are the
 * tokens evaluated before (a failover re-evaluates them to rebuild the KV cache). logits (may be
 * NULL) receives the last token's n_vocab logits. */
tern_status tern_exec_eval(tern_exec *x, const int32_t *history, int pos, int n, float *logits);

/* The plan in use ("cl:0[0-19] cpu[20-29]"). */
const char *tern_exec_plan_str(const tern_exec *x);
const struct tern_plan *tern_exec_plan(const tern_exec *x);

#endif
