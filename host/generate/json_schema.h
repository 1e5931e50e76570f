/* The compiled JSON schema (json_mode.h's tern_json_schema): json_schema.c builds it, json_mode.c's
 * recognizer follows it. Internal to host/generate. */
#ifndef TERN_JSON_SCHEMA_H
#define TERN_JSON_SCHEMA_H

#include <stdbool.h>
#include <stdint.h>

#include "json_mode.h"

enum {
    MAX_NODES = 2048, /* tools: 40 functions of 10 parameters each fit */
    MAX_PROPS = 4096,
    MAX_ENUM = 4096,
    MAX_ALTS = 1024,
    MAX_TEXT = 65535, /* offsets are 16-bit */
    MAX_MEMBERS = 64,
    MAX_NAME = 255,
    MAX_REFS = 64,
    MAX_PATTERNS = 16,
    MAX_DFA_STATES = 4096,
    MAX_DFA_CELLS = 16384
};
enum {
    TY_OBJ = 1,
    TY_ARR = 2,
    TY_STR = 4,
    TY_NUM = 8,
    TY_INT = 16,
    TY_BOOL = 32,
    TY_NULL = 64,
    TY_ALL = 127
};

/* What bounds a node's strings or numbers (struct node's limits). */
enum {
    LIM_LEN = 1,   /* strings: min_len .. max_len characters */
    LIM_LO = 2,    /* numbers: >= lo */
    LIM_LO_EX = 4, /* numbers: > lo (with LIM_LO) */
    LIM_HI = 8,    /* numbers: <= hi */
    LIM_HI_EX = 16 /* numbers: < hi (with LIM_HI) */
};

/* Node 0 takes any value (any_keys, items 0); a schema's root is an object node. */
struct node {
    uint8_t types;
    bool any_keys;                 /* object: any keys, each value node 0 (no "properties") */
    bool enumerated;               /* only the values enums[enum0 ..] (strings) and enums[lit0 ..] */
    uint8_t limits;                /* LIM_* */
    uint16_t items;                /* array: its items' node */
    uint16_t min_items, max_items; /* array */
    uint16_t min_props, max_props; /* object: keys written (UINT16_MAX: no bound) */
    uint16_t prop0, n_props;       /* object: props[prop0 ..], written in this order */
    uint16_t enum0, n_enum;        /* enumerated strings */
    uint16_t lit0, n_lit;          /* enumerated numbers, true, false and null, as JSON text */
    uint16_t alt0, n_alt;          /* anyOf: alts[alt0 ..], each beginning with other characters */
    uint32_t min_len, max_len;     /* strings, in characters (code points), with LIM_LEN */
    uint8_t pattern;               /* strings: 1 + the index of the pattern they match, 0 for none */
    int64_t lo, hi;                /* numbers: whole bounds, |bound| <= TERN_JSON_MAX_BOUND */
};

/* The largest bound in magnitude (so that the recognizer's arithmetic stays exact in 64 bits). */
#define TERN_JSON_MAX_BOUND 1000000000000000LL

struct name {
    uint16_t off, len; /* in text: bytes without a quote, backslash or control byte */
};

struct prop {
    uint16_t node;
    bool required;
};

/* A pattern's DFA (json_pattern.c): state d's edge on byte c is dfa_next[cell0 + d * n_classes +
 * pattern_class[pattern][c]], 1 + the next state or 0 for none; state d accepts where
 * dfa_accept[state0 + d]. State 0 begins. */
struct pattern {
    uint16_t cell0, state0, n_classes;
};

struct tern_json_schema {
    uint16_t root, n_nodes, n_props, n_enum, text_len;
    uint16_t n_patterns, n_dfa_states, n_dfa_cells;
    struct node nodes[MAX_NODES];
    struct prop props[MAX_PROPS];
    struct name prop_names[MAX_PROPS]; /* beside props, so that keys match as enumerated strings do */
    struct name enums[MAX_ENUM];
    uint16_t alts[MAX_ALTS];
    uint16_t n_alts;
    char text[MAX_TEXT];
    struct pattern patterns[MAX_PATTERNS];
    uint8_t pattern_class[MAX_PATTERNS][256];
    bool dfa_accept[MAX_DFA_STATES];
    uint16_t dfa_next[MAX_DFA_CELLS];
};

/* JSON mode without a schema: any object */
const tern_json_schema *tern_json_any_object(void);

/* Compile an ECMA-262 pattern of json_pattern.c's subset into g: its index, or -1 with why. */
int tern_json_pattern_compile(tern_json_schema *g, const char *re, size_t len, char *why, size_t why_size);
/* Whether pattern matches the raw text s[len] whole. */
bool tern_json_pattern_matches(const tern_json_schema *g, int pattern, const char *s, size_t len);

/* Pattern's DFA from *state on byte c: false where no match can follow (*state unchanged). */
static inline bool tern_json_pattern_next(const tern_json_schema *g, int pattern, uint16_t *state,
                                          unsigned char c) {
    const struct pattern *p = &g->patterns[pattern];
    const uint16_t t = g->dfa_next[p->cell0 + *state * p->n_classes + g->pattern_class[pattern][c]];
    if (t)
        *state = (uint16_t)(t - 1);
    return t != 0;
}

static inline bool tern_json_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

/* The types a value that begins with byte c can be of. */
static inline uint8_t tern_json_starts(unsigned char c) {
    switch (c) {
    case '{':
        return TY_OBJ;
    case '[':
        return TY_ARR;
    case '"':
        return TY_STR;
    case 't':
    case 'f':
        return TY_BOOL;
    case 'n':
        return TY_NULL;
    default:
        return c == '-' || tern_json_digit(c) ? TY_NUM | TY_INT : 0;
    }
}

#endif
