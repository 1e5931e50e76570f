/* Helpers of the JSON mode suites (test_json_mode.c, test_json_schema.c): schemas from text, and
 * the recognizer's verdict on a text. */
#ifndef TERN_TEST_JSON_H
#define TERN_TEST_JSON_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "host/generate/json_mode.h"

/* A schema of the common keywords: test_json_schema.c checks texts against it, test_json_mode.c
 * samples under it */
static const char SCHEMA[] =
    "{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\", \"description\": \"who\"}, "
    "\"age\": {\"type\": \"integer\"}, \"tags\": {\"type\": \"array\", \"items\": {\"enum\": [\"a\", "
    "\"bc\"]}, "
    "\"maxItems\": 2}, \"ok\": {\"type\": [\"boolean\", \"null\"]}, \"pos\": {\"type\": \"object\", "
    "\"properties\": {\"x\": {\"type\": \"number\"}}, \"required\": [\"x\"]}}, "
    "\"required\": [\"name\", \"age\"], \"additionalProperties\": false}";

static inline tern_json_schema *compile(const char *text, char *why, size_t size) {
    json_t *j = json_loads(text, 0, NULL);
    tern_json_schema *g = NULL;
    if (j)
        tern_json_schema_compile(j, &g, why, size);
    json_decref(j);
    return g;
}

/* 1: a whole object of schema g, 0: a prefix of one, -1: neither */
static inline int schema_verdict(const tern_json_schema *g, const char *text) {
    struct tern_json_state st;
    tern_json_start(&st, g);
    if (!tern_json_feed(&st, text, strlen(text)))
        return -1;
    return tern_json_complete(&st) ? 1 : 0;
}

/* Schema verdict of {"v":TEXT} under the schema whose property v is `value` (a JSON schema text);
 * texts are NUL-terminated */
static inline tern_json_schema *value_schema(const char *value) {
    char text[4096], why[256] = "";
    snprintf(text, sizeof text, "{\"type\": \"object\", \"properties\": {\"v\": %s}, \"required\": [\"v\"]}",
             value);
    tern_json_schema *g = compile(text, why, sizeof why);
    if (!g)
        harness_fail(__FILE__, __LINE__, "schema %s refused: %s", text, why);
    return g;
}

static inline int value_verdict(const tern_json_schema *g, const char *value, bool close) {
    char text[512];
    snprintf(text, sizeof text, "{\"v\":%s%s", value, close ? "}" : "");
    return schema_verdict(g, text);
}

/* Characters (code points) of a jansson string */
static inline size_t code_points(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

#endif
