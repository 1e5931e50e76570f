/* Minimal JSON DOM parser (RFC 8259) for the tools: tokenizer.json, tokenizer_config.json,
 * config.json and safetensors headers. Strings are decoded to UTF-8 (\u escapes and surrogate
 * pairs included; a lone surrogate becomes U+FFFD) and NUL-terminated; object members keep their
 * file order. Nesting deeper than 512 is refused. */
#ifndef TERN_JSON_H
#define TERN_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scheduler/status.h"

enum tern_json_type {
    TERN_JSON_NULL = 0,
    TERN_JSON_BOOL = 1,
    TERN_JSON_NUMBER = 2,
    TERN_JSON_STRING = 3,
    TERN_JSON_ARRAY = 4,
    TERN_JSON_OBJECT = 5
};

struct tern_json {
    enum tern_json_type type;
    bool boolean;            /* BOOL */
    double number;           /* NUMBER */
    bool is_int;             /* NUMBER written without fraction or exponent and fits int64 */
    int64_t integer;         /* NUMBER when is_int */
    char *str;               /* STRING: decoded UTF-8, NUL-terminated (may hold NULs: use len) */
    size_t len;              /* STRING: byte length; ARRAY/OBJECT: element count */
    struct tern_json *items; /* ARRAY/OBJECT: [len] values */
    char **keys;             /* OBJECT: [len] decoded keys, NUL-terminated */
    size_t *key_lens;        /* OBJECT: [len] key byte lengths */
};

/* Parse text[len]; name appears in error messages ("NAME: line L col C: fault"). *out is a tree
 * to free with tern_json_free. TERN_ERR_FORMAT on malformed input. */
tern_status tern_json_parse(const char *text, size_t len, const char *name, struct tern_json **out);
/* Read and parse a whole file (TERN_ERR_IO when it cannot be read). */
tern_status tern_json_parse_file(const char *path, struct tern_json **out);
void tern_json_free(struct tern_json *v);

/* Member of an object by key (first match), NULL when absent or v is not an object. */
const struct tern_json *tern_json_get(const struct tern_json *v, const char *key);
/* Member of the given type, NULL when absent or of another type. */
const struct tern_json *tern_json_get_type(const struct tern_json *v, const char *key,
                                           enum tern_json_type type);

#endif
