/* Token sampling: greedy, temperature, top-k, top-p, min-p, and repetition, frequency and presence
 * penalties, with a seeded random generator (same seed and inputs, same tokens). */
#ifndef TERN_SAMPLER_H
#define TERN_SAMPLER_H

#include <stdint.h>

#include <stdbool.h>

#include "../../scheduler/device.h"
#include "../../scheduler/status.h"

/* A fixed offset added to one token's logit before everything else (OpenAI's logit_bias); at most
 * TERN_MAX_LOGIT_BIAS of them, as the OpenAI API allows. */
enum { TERN_MAX_LOGIT_BIAS = 300 };
struct tern_logit_bias {
    int32_t id;
    float bias; /* -100 to 100 */
};

struct tern_sampler_params {
    float temperature;       /* <= 0: greedy (argmax) */
    int32_t top_k;           /* <= 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float repeat_penalty;    /* 1: off */
    float frequency_penalty; /* subtracted per occurrence in the recent tokens; 0: off */
    float presence_penalty;  /* subtracted once from every recent token; 0: off */
    int32_t repeat_last_n;   /* how many recent tokens the penalties look at */
    uint64_t seed;
    int32_t n_logit_bias; /* entries of logit_bias, applied first (ids need not be distinct: they add) */
    struct tern_logit_bias logit_bias[TERN_MAX_LOGIT_BIAS];
    /* JSON mode (json_mode.h): the vocabulary's table, which must outlive the sampler; the tokens
     * the sampler chooses then make one JSON object, one that follows json_schema where it is set
     * (the sampler keeps a copy). json NULL: off. */
    const struct tern_json_vocab *json;
    const struct tern_json_schema *json_schema;
};

/* Defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, penalties off (repeat 1.0, frequency
 * and presence 0) over the last 64 tokens, seed 0. */
struct tern_sampler_params tern_sampler_default_params(void);

typedef struct tern_sampler tern_sampler;

tern_status tern_sampler_create(const struct tern_sampler_params *p, int32_t n_vocab, tern_sampler **out);
void tern_sampler_free(tern_sampler *s);
/* A reply begins: JSON mode expects a new object (tern_generate calls it). */
void tern_sampler_start_reply(tern_sampler *s);
/* Remember a token of the context (prompt or generated) for the repetition penalty. */
void tern_sampler_accept(tern_sampler *s, int32_t token);
/* What the next tern_sampler_sample reads of the logits, for a certified head: the top-k the chain
 * keeps (1 when greedy), the penalties and the ids they apply to, and in JSON mode the tokens it may
 * take (req->allowed, worked out here for the text so far). Returns false when every logit
 * matters (sampling without top-k, a repeat penalty that is not a monotonic map, or a logit bias):
 * the head must be full. req->penalized, req->penalty_sub and req->allowed point into the sampler and
 * change with tern_sampler_accept and tern_sampler_sample, so ask again after each token.
 * req->stats is left as it was. */
bool tern_sampler_head_request(tern_sampler *s, struct tern_head_request *req);
/* Choose the next token from logits[n_vocab] into *id: the generated text's next token (JSON mode
 * follows it). logits may be modified. A NaN or infinite logit is refused (TERN_ERR_INTERNAL, one
 * logged line): no token is chosen from broken numbers; so is JSON mode left with no token. */
tern_status tern_sampler_sample(tern_sampler *s, float *logits, int32_t *id);

#endif
