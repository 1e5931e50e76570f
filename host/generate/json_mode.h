/* JSON mode (OpenAI's response_format json_object and json_schema): generation is held to text that
 * is a prefix of one JSON object (RFC 8259), without whitespace before or after it, that follows a
 * schema where one is given, and may end only once that object is whole. A byte-level recognizer (a
 * pushdown automaton, one frame a nesting level) runs each candidate token's bytes from the state
 * of the text so far; tokens that would break the object get a logit of -INFINITY before the
 * sampler chooses. The sampler holds the state (sampler.h: tern_sampler_params.json). */
#ifndef TERN_JSON_MODE_H
#define TERN_JSON_MODE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../scheduler/status.h"
#include "../tokenizer/tokenizer.h"

/* Nesting deeper than TERN_JSON_MAX_DEPTH is refused, and so is a run of more than
 * TERN_JSON_MAX_SPACE whitespace bytes (the model cannot pad forever). */
enum { TERN_JSON_MAX_DEPTH = 64, TERN_JSON_MAX_SPACE = 16, TERN_JSON_MAX_BRANCHES = 8 };

/* A compiled JSON schema: one block of memory (no pointers inside), so it can be copied whole. */
typedef struct tern_json_schema tern_json_schema;

/* Compile a JSON schema (the subset below) into *out (free with free()). On a schema tern cannot
 * hold a reply to, TERN_ERR_ARG with why[why_size] naming the keyword or value. The subset: "type"
 * (a name or a list: object, array, string, number, integer, boolean, null), "properties" (written
 * in the schema's order; those not in "required" may be left out; no other keys), "required",
 * "additionalProperties" (false, or left out: only the listed keys are written), "minProperties",
 * "maxProperties", "items",
 * "minItems", "maxItems", "enum" and "const" (strings, numbers, true, false, null), "minLength" and
 * "maxLength" (characters), "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum" (whole
 * bounds), "pattern" and "format" (json_pattern.c), "nullable", "anyOf" and "oneOf" (taken
 * alike: a text two alternatives take is not refused), "allOf" of one schema, and "$ref" to a schema of the
 * document ("#", "#/$defs/Name": recursion allowed); "description", "title", "default", "examples",
 * "$schema", "$comment", "$id", "$defs", "definitions" are ignored. The root is an object. An object schema
 * without "properties" takes any keys with any values. Text in strings is UTF-8. */
tern_status tern_json_schema_compile(const json_t *schema, tern_json_schema **out, char *why,
                                     size_t why_size);
/* A copy of g (free with free()); NULL when out of memory. */
tern_json_schema *tern_json_schema_copy(const tern_json_schema *g);

/* One nesting level of the recognizer (json_mode.c). */
struct tern_json_frame {
    uint16_t node;  /* the schema node this level follows */
    uint8_t mode;   /* what comes next */
    uint8_t aux;    /* a literal's index, a \u escape's digits read, a number's integer-only flag */
    uint16_t count; /* an array's items; an object's next property */
    uint16_t pos;   /* bytes of a key or enumerated string matched; a literal's letters; the node of
                       the member whose key was read */
    uint16_t keys;  /* an object's keys written (at most 65535 counted) */
    uint64_t cand;  /* the properties or enumerated strings the bytes so far still match */
};

/* One reading of the text: the open levels, innermost last. */
struct tern_json_branch {
    uint8_t depth; /* open levels */
    uint8_t space; /* whitespace bytes in a row */
    bool done;     /* the object is whole */
    struct tern_json_frame f[TERN_JSON_MAX_DEPTH];
};

/* Where the recognizer stands in the text: its readings. Where a schema's anyOf alternatives can
 * begin alike (two objects, an integer and a number), each is followed as a reading of its own
 * until the text rules it out; at most TERN_JSON_MAX_BRANCHES at once (past that, later
 * alternatives are left out: the text still follows one of those kept). */
struct tern_json_state {
    const tern_json_schema *g;
    uint8_t n; /* readings */
    struct tern_json_branch b[TERN_JSON_MAX_BRANCHES];
};

/* The state before any text, for schema g (NULL: any object). The object's '{' comes first. */
void tern_json_start(struct tern_json_state *st, const tern_json_schema *g);
/* Feed n bytes; false (st then undefined) when the text so far plus these is no prefix of such an
 * object within the limits above. */
bool tern_json_feed(struct tern_json_state *st, const char *bytes, size_t n);
/* The object is whole: only the end of the text may follow. */
bool tern_json_complete(const struct tern_json_state *st);
/* a and b stand at the same place: the same tokens can follow them (inside a string, say, text
 * without quotes or escapes leaves the state as it was). */
bool tern_json_same(const struct tern_json_state *a, const struct tern_json_state *b);

/* Every token's bytes, built once per tokenizer and shared (read only) by samplers. */
typedef struct tern_json_vocab tern_json_vocab;
tern_status tern_json_vocab_create(const tern_tokenizer *tok, tern_json_vocab **out);
void tern_json_vocab_free(tern_json_vocab *v);
/* allowed[n_vocab] <- 1 for the tokens that can follow st, 0 for the others: those whose bytes
 * break the object, control tokens, ids past the tokenizer's vocabulary, and end-of-generation
 * tokens until the object is whole (after which they alone are allowed). Returns how many are. */
int32_t tern_json_allowed(const tern_json_vocab *v, const struct tern_json_state *st, uint8_t *allowed,
                          int32_t n_vocab);
/* The state after token id (a token tern_json_mask left; end-of-generation tokens change nothing). */
void tern_json_advance(const tern_json_vocab *v, struct tern_json_state *st, int32_t id);

#endif
