/* Text generation: the prompt as one batch, then one token per step through the sampler, streaming
 * complete UTF-8 text as it is produced, stopping at end-of-generation tokens or after n_predict. */
#ifndef TERN_GENERATE_H
#define TERN_GENERATE_H

#include <stdbool.h>
#include <stddef.h>

#include "../tokenizer/tokenizer.h"
#include "sampler.h"
#include "session.h"

/* Called for every generated token with the text it completes (may be empty while a UTF-8
 * character is split across tokens; the final call may carry a flushed tail with id -1).
 * Return false to stop. */
typedef bool (*tern_token_fn)(int32_t id, const char *text, size_t len, void *user);

struct tern_generate_stats {
    int n_prompt;     /* tokens evaluated as the prompt */
    int n_generated;  /* tokens sampled */
    double prompt_s;  /* seconds for the prompt batch (including its logits) */
    int n_decoded;    /* decode steps run (the last sampled token is not evaluated) */
    int n_drafted;    /* prompt-lookup draft tokens evaluated beside them (tern_session_set_lookup) */
    int n_accepted;   /* drafts the sampler then chose: tokens a step gave beyond its first */
    double gen_s;     /* seconds from the first sample to the end: the steps plus sampling, which gave
                         n_decoded + n_accepted tokens */
    bool stopped_eog; /* ended at an end-of-generation token */
    bool stopped_ctx; /* ended because the context was full */
    /* certified head counters (all zero when the sampler needs every logit) */
    struct tern_head_stats head;
};

/* Generate up to n_predict tokens (< 0: until the context is full) after prompt[n_prompt]. With
 * prompt lookup on (tern_session_set_lookup), a step also evaluates the tokens that followed the
 * latest earlier occurrence of the last few tokens, and every draft the sampler then picks saves a
 * step; the tokens are the same as without it (batch invariance: each position's logits are the
 * same bits, and the sampler draws in the same order). */
tern_status tern_generate(tern_session *s, const tern_tokenizer *tok, tern_sampler *smp,
                          const int32_t *prompt, int n_prompt, int n_predict, tern_token_fn on_token,
                          void *user, struct tern_generate_stats *stats);

/* Monotonic clock in seconds. */
double tern_time_s(void);

#endif
