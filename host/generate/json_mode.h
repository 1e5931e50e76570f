/* JSON mode (OpenAI's response_format {"type": "json_object"}): generation is held to text that is
 * a prefix of one JSON object (RFC 8259), without whitespace before or after it, and may end only
 * once that object is whole. A byte-level
 * recognizer (a pushdown automaton in a few bytes of state) runs each candidate token's bytes from
 * the state of the text so far; tokens that would break the object get a logit of -INFINITY before
 * the sampler chooses. The sampler holds the state (sampler.h: tern_sampler_params.json). */
#ifndef TERN_JSON_MODE_H
#define TERN_JSON_MODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../scheduler/status.h"
#include "../tokenizer/tokenizer.h"

/* Nesting deeper than this is refused (the stack is one bit a level: object or array). */
enum { TERN_JSON_MAX_DEPTH = 64, TERN_JSON_MAX_SPACE = 16 };

/* Where the recognizer stands in the text: what it expects next and the open containers. */
struct tern_json_state {
    uint64_t stack; /* bit d: level d is an object (1) or an array (0) */
    uint8_t depth;  /* open containers */
    uint8_t mode;   /* what comes next (json_mode.c) */
    uint8_t aux;    /* a literal's letters matched, or a \u escape's hex digits */
    uint8_t space;  /* whitespace bytes in a row: at most TERN_JSON_MAX_SPACE, so the model cannot
                       pad forever */
    bool key;       /* the string being read is an object's key */
};

/* The state before any text: the object's '{' comes first. */
void tern_json_start(struct tern_json_state *st);
/* Feed n bytes; false (st then undefined) when the text so far plus these is no prefix of a JSON
 * object within the limits above. */
bool tern_json_feed(struct tern_json_state *st, const char *bytes, size_t n);
/* The object is whole: only the end of the text may follow. */
bool tern_json_complete(const struct tern_json_state *st);

/* Every token's bytes, built once per tokenizer and shared (read only) by samplers. */
typedef struct tern_json_vocab tern_json_vocab;
tern_status tern_json_vocab_create(const tern_tokenizer *tok, tern_json_vocab **out);
void tern_json_vocab_free(tern_json_vocab *v);
/* Sets to -INFINITY the logits[n_vocab] of tokens that cannot follow st: those whose bytes break the
 * object, control tokens, ids past the tokenizer's vocabulary, and end-of-generation tokens until
 * the object is whole (after which they alone remain). Returns how many tokens remain. */
int32_t tern_json_mask(const tern_json_vocab *v, const struct tern_json_state *st, float *logits,
                       int32_t n_vocab);
/* The state after token id (a token tern_json_mask left; end-of-generation tokens change nothing). */
void tern_json_advance(const tern_json_vocab *v, struct tern_json_state *st, int32_t id);

#endif
