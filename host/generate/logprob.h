/* A token's log-probability under the model: the log-softmax of the raw logits (no temperature,
 * penalty or truncation), in double. tern perplexity scores with it and tern serve reports it
 * (`logprobs`). */
#ifndef TERN_LOGPROB_H
#define TERN_LOGPROB_H

#include <stdint.h>

/* log sum_i exp(logits[i]) over logits[n], n >= 1, taken around the largest logit so no exp
 * overflows; not finite when a logit is NaN or infinite. logits[id] - the result is id's
 * log-probability. */
double tern_log_sum_exp(const float *logits, int32_t n);

/* The k (<= n) most likely ids of logits[n] into ids[k], by logit from the largest, the lower id
 * first among equal logits. */
void tern_top_ids(const float *logits, int32_t n, int k, int32_t *ids);

#endif
