/* JSON mode (see json_mode.h): the schema compiler, the recognizer and the token mask. */
#include "json_mode.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../scheduler/log.h"

/* ---------------------------------------------------------------- the compiled schema */

enum {
    MAX_NODES = 256,
    MAX_PROPS = 512,
    MAX_ENUM = 512,
    MAX_ALTS = 256,
    MAX_TEXT = 16384,
    MAX_MEMBERS = 64,
    MAX_NAME = 255,
    MAX_REFS = 64
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

/* Node 0 takes any value (any_keys, items 0); a schema's root is an object node. */
struct node {
    uint8_t types;
    bool any_keys;                 /* object: any keys, each value node 0 (no "properties") */
    uint16_t items;                /* array: its items' node */
    uint16_t min_items, max_items; /* array */
    uint16_t prop0, n_props;       /* object: props[prop0 ..], written in this order */
    uint16_t enum0, n_enum;        /* string: enums[enum0 ..] (n_enum 0: any string) */
    uint16_t alt0, n_alt;          /* anyOf: alts[alt0 ..], each beginning with other characters */
};

struct name {
    uint16_t off, len; /* in text: bytes without a quote, backslash or control byte */
};

struct prop {
    uint16_t node;
    bool required;
};

struct tern_json_schema {
    uint16_t root, n_nodes, n_props, n_enum, text_len;
    struct node nodes[MAX_NODES];
    struct prop props[MAX_PROPS];
    struct name prop_names[MAX_PROPS]; /* beside props, so that keys match as enumerated strings do */
    struct name enums[MAX_ENUM];
    uint16_t alts[MAX_ALTS];
    uint16_t n_alts;
    char text[MAX_TEXT];
};

/* JSON mode without a schema: any object */
static const tern_json_schema ANY_OBJECT = {
    .root = 1,
    .n_nodes = 2,
    .nodes = {{.types = TY_ALL, .any_keys = true, .max_items = UINT16_MAX},
              {.types = TY_OBJ, .any_keys = true, .max_items = UINT16_MAX}},
};

tern_json_schema *tern_json_schema_copy(const tern_json_schema *g) {
    tern_json_schema *c = malloc(sizeof *c);
    if (c)
        memcpy(c, g, sizeof *c);
    return c;
}

struct compiler {
    tern_json_schema *g;
    char *why;
    size_t why_size;
    const json_t *doc;           /* the whole schema, which $ref points into */
    const char *ref[MAX_REFS];   /* the references compiled (or being compiled), */
    uint16_t ref_node[MAX_REFS]; /* and their nodes */
    int n_refs;
    bool busy[MAX_NODES]; /* nodes being compiled (a reference back to one is recursion) */
};

/* Why the schema is refused, on one line (a key or value it quotes may hold line breaks). */
static int refuse(struct compiler *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, c->why_size, fmt, ap);
    va_end(ap);
    for (char *p = c->why; *p; p++)
        *p = (unsigned char)*p < 0x20 ? '?' : *p;
    return -1;
}

/* A property name or an enumerated string into the schema's text; false (c->why) when it cannot be
 * matched byte for byte or there is no room. */
static bool add_name(struct compiler *c, const char *s, size_t len, struct name *out) {
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == '"' || s[i] == '\\') {
            refuse(c, "the name or value '%.*s' holds a quote, backslash or control character", (int)len, s);
            return false;
        }
    if (len > MAX_NAME || c->g->text_len + len > MAX_TEXT) {
        refuse(c, "the schema's names and values are too long");
        return false;
    }
    memcpy(c->g->text + c->g->text_len, s, len);
    *out = (struct name){c->g->text_len, (uint16_t)len};
    c->g->text_len += (uint16_t)len;
    return true;
}

static uint8_t type_bit(const char *t) {
    static const char *const names[] = {"object", "array", "string", "number", "integer", "boolean", "null"};
    for (int i = 0; i < 7; i++)
        if (!strcmp(t, names[i]))
            return (uint8_t)(1u << i);
    return 0;
}

/* 2: a keyword that says nothing of the value (or holds definitions), 1: one of the subset, 0: one
 * tern does not take */
static int keyword(const char *k) {
    static const char *const notes[] = {"description", "title", "default", "examples",   "$schema",
                                        "$comment",    "$id",   "$defs",   "definitions"};
    static const char *const keys[] = {"type",  "properties", "required", "additionalProperties",
                                       "items", "minItems",   "maxItems", "enum",
                                       "const", "nullable",   "anyOf",    "oneOf",
                                       "$ref"};
    for (size_t i = 0; i < sizeof notes / sizeof *notes; i++)
        if (!strcmp(k, notes[i]))
            return 2;
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!strcmp(k, keys[i]))
            return 1;
    return 0;
}

/* The enumerated values (enum, or const as one) of node n: strings and null. */
static int compile_enum(struct compiler *c, struct node *n, const json_t *values) {
    n->enum0 = c->g->n_enum;
    uint8_t types = 0;
    for (size_t i = 0; i < json_array_size(values); i++) {
        const json_t *v = json_array_get(values, i);
        if (json_is_null(v)) {
            types |= TY_NULL;
            continue;
        }
        if (!json_is_string(v))
            return refuse(c, "'enum' and 'const' values other than strings and null are not supported");
        if (c->g->n_enum == MAX_ENUM || n->n_enum == MAX_MEMBERS)
            return refuse(c, "more than %d enumerated strings", MAX_MEMBERS);
        if (!add_name(c, json_string_value(v), json_string_length(v), &c->g->enums[c->g->n_enum]))
            return -1;
        c->g->n_enum++, n->n_enum++;
        types |= TY_STR;
    }
    if (!types)
        return refuse(c, "'enum' is empty");
    n->types = n->types ? n->types & types : types;
    return n->types ? 0 : refuse(c, "'enum' or 'const' values are not of the schema's 'type'");
}

static int compile_node(struct compiler *c, const json_t *s, int depth);

static int compile_object(struct compiler *c, int index, const json_t *s, int depth) {
    const json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required"),
                 *extra = json_object_get(s, "additionalProperties");
    struct node *n = &c->g->nodes[index];
    if (extra && !json_is_boolean(extra))
        return refuse(c, "'additionalProperties' other than true or false is not supported");
    if (props && !json_is_object(props))
        return refuse(c, "'properties' must be an object");
    if (req && !json_is_array(req))
        return refuse(c, "'required' must be a list of names");
    n->any_keys = !props && !json_is_false(extra);
    if (!props)
        return req && json_array_size(req)
                   ? refuse(c, "'required' names keys that 'properties' does not list")
                   : 0;
    if (json_object_size(props) > MAX_MEMBERS || c->g->n_props + json_object_size(props) > MAX_PROPS)
        return refuse(c, "more than %d properties in an object", MAX_MEMBERS);
    const uint16_t p0 = c->g->n_props;
    n->prop0 = p0;
    n->n_props = (uint16_t)json_object_size(props);
    c->g->n_props += n->n_props;
    const char *key;
    const json_t *v;
    int i = 0;
    json_object_foreach((json_t *)props, key, v) {
        struct prop *p = &c->g->props[p0 + i];
        if (!add_name(c, key, strlen(key), &c->g->prop_names[p0 + i++]))
            return -1;
        const int child = compile_node(c, v, depth + 1);
        if (child < 0)
            return -1;
        p->node = (uint16_t)child;
    }
    for (size_t k = 0; k < json_array_size(req); k++) {
        const char *r = json_string_value(json_array_get(req, k));
        int found = -1;
        for (int j = 0; r && j < i; j++)
            if (strlen(r) == c->g->prop_names[p0 + j].len &&
                !memcmp(r, c->g->text + c->g->prop_names[p0 + j].off, strlen(r)))
                found = j;
        if (found < 0)
            return refuse(c, "'required' names '%s', which 'properties' does not list",
                          r ? r : "(not a string)");
        c->g->props[p0 + found].required = true;
    }
    return 0;
}

static int compile_array(struct compiler *c, int index, const json_t *s, int depth) {
    const json_t *items = json_object_get(s, "items"), *lo = json_object_get(s, "minItems"),
                 *hi = json_object_get(s, "maxItems");
    struct node *n = &c->g->nodes[index];
    n->max_items = UINT16_MAX;
    if ((lo && (!json_is_integer(lo) || json_integer_value(lo) < 0 || json_integer_value(lo) > 4096)) ||
        (hi && (!json_is_integer(hi) || json_integer_value(hi) < 0 || json_integer_value(hi) > 4096)))
        return refuse(c, "'minItems' and 'maxItems' must be integers from 0 to 4096");
    n->min_items = lo ? (uint16_t)json_integer_value(lo) : 0;
    n->max_items = hi ? (uint16_t)json_integer_value(hi) : UINT16_MAX;
    if (n->min_items > n->max_items)
        return refuse(c, "'minItems' is above 'maxItems'");
    if (items && !json_is_object(items) && !json_is_true(items))
        return refuse(c, "'items' must be one schema (lists of schemas are not supported)");
    const int child = items ? compile_node(c, items, depth + 1) : 0;
    if (child < 0)
        return -1;
    c->g->nodes[index].items = (uint16_t)child;
    return 0;
}

static bool digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

/* The types a value that begins with byte c can be of. */
static uint8_t starts(unsigned char c) {
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
        return c == '-' || digit(c) ? TY_NUM | TY_INT : 0;
    }
}

/* The first characters a node's values can begin with, as type classes (numbers and integers one). */
static uint8_t first_classes(uint8_t types) {
    return (uint8_t)((types & ~TY_INT) | (types & TY_INT ? TY_NUM : 0));
}

/* The schema a local reference ("#", "#/$defs/Name", any JSON pointer into the document) names. */
static const json_t *resolve(const json_t *doc, const char *ref) {
    if (ref[0] != '#' || (ref[1] && ref[1] != '/'))
        return NULL;
    const json_t *at = doc;
    for (const char *p = ref + 1; at && *p == '/';) {
        const char *end = strchr(p + 1, '/');
        const size_t len = end ? (size_t)(end - p - 1) : strlen(p + 1);
        char key[256];
        size_t k = 0;
        for (size_t i = 0; i < len && k < sizeof key - 1; i++) { /* ~1 is '/', ~0 is '~' */
            if (p[1 + i] == '~' && i + 1 < len && (p[2 + i] == '0' || p[2 + i] == '1'))
                key[k++] = p[2 + i++] == '1' ? '/' : '~';
            else
                key[k++] = p[1 + i];
        }
        key[k] = 0;
        at = json_object_get(at, key);
        p += 1 + len;
    }
    return at;
}

static int compile_node_at(struct compiler *c, const json_t *s, int depth, int index);

static int compile_node(struct compiler *c, const json_t *s, int depth) {
    return compile_node_at(c, s, depth, -1);
}

/* A node index, reserved for a schema that references may reach before it is compiled. */
static int reserve(struct compiler *c) {
    return c->g->n_nodes == MAX_NODES ? refuse(c, "more than %d schemas", MAX_NODES) : c->g->n_nodes++;
}

/* {"$ref": ...}: the node of the schema it names, compiled once (so references may recurse). */
static int compile_ref(struct compiler *c, const json_t *ref, int depth) {
    const char *r = json_string_value(ref);
    if (!r)
        return refuse(c, "'$ref' must be a string");
    for (int i = 0; i < c->n_refs; i++)
        if (!strcmp(c->ref[i], r))
            return c->ref_node[i];
    const json_t *target = resolve(c->doc, r);
    if (!target)
        return refuse(c, "'$ref' '%s' does not name a schema of this document", r);
    if (c->n_refs == MAX_REFS)
        return refuse(c, "more than %d references", MAX_REFS);
    const int index = reserve(c);
    if (index < 0)
        return -1;
    c->ref[c->n_refs] = r;
    c->ref_node[c->n_refs++] = (uint16_t)index;
    return compile_node_at(c, target, depth + 1, index);
}

/* anyOf / oneOf: alternatives whose values begin with different characters (a value's first byte
 * picks its alternative); alternatives that are such lists themselves are taken apart. */
static int compile_any_of(struct compiler *c, int index, const json_t *list, int depth) {
    if (!json_is_array(list) || json_array_size(list) == 0)
        return refuse(c, "'anyOf' and 'oneOf' must be non-empty lists of schemas");
    c->g->nodes[index].alt0 = c->g->n_alts;
    uint8_t seen = 0;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const int a = compile_node(c, json_array_get(list, i), depth + 1);
        if (a < 0)
            return -1;
        if (c->busy[a])
            return refuse(c, "an 'anyOf' alternative refers back to the 'anyOf'");
        const struct node *alt = &c->g->nodes[a];
        const int n_one = alt->n_alt ? alt->n_alt : 1;
        for (int k = 0; k < n_one; k++) { /* a, or its own alternatives */
            const uint16_t one = alt->n_alt ? c->g->alts[alt->alt0 + k] : (uint16_t)a;
            const uint8_t classes = first_classes(c->g->nodes[one].types);
            if (classes & seen)
                return refuse(c, "'anyOf' alternatives that can begin with the same character (two of one "
                                 "type) are not supported");
            if (c->g->n_alts == MAX_ALTS)
                return refuse(c, "more than %d 'anyOf' alternatives", MAX_ALTS);
            seen |= classes;
            c->g->alts[c->g->n_alts++] = one;
            c->g->nodes[index].n_alt++;
            c->g->nodes[index].types |= c->g->nodes[one].types;
        }
    }
    return 0;
}

static int compile_node_at(struct compiler *c, const json_t *s, int depth, int index) {
    if (json_is_true(s) || (json_is_object(s) && json_object_size(s) == 0)) {
        if (index > 0) /* a reference to any value */
            c->g->nodes[index] = c->g->nodes[0];
        return index > 0 ? index : 0;
    }
    if (!json_is_object(s))
        return refuse(c, "a schema must be an object");
    if (depth >= TERN_JSON_MAX_DEPTH / 2)
        return refuse(c, "the schema nests deeper than %d levels", TERN_JSON_MAX_DEPTH / 2);
    const char *key;
    const json_t *v;
    int kinds = 0; /* the keywords that say what the value is */
    json_object_foreach((json_t *)s, key, v) {
        const int k = keyword(key);
        if (!k)
            return refuse(c, "the keyword '%s' is not supported", key);
        kinds += k == 1;
    }
    const json_t *ref = json_object_get(s, "$ref"), *any_of = json_object_get(s, "anyOf");
    if (!any_of)
        any_of = json_object_get(s, "oneOf");
    if ((ref || any_of) && kinds > 1)
        return refuse(c, "'%s' beside other keywords is not supported", ref ? "$ref" : "anyOf");
    if (ref) {
        const int r = compile_ref(c, ref, depth);
        if (r < 0 || index <= 0)
            return r;
        if (c->busy[r])
            return refuse(c, "a reference that stands for itself");
        c->g->nodes[index] = c->g->nodes[r]; /* a reference reached through another: a copy */
        return index;
    }
    if (index < 0 && (index = reserve(c)) < 0)
        return -1;
    c->busy[index] = true;
    if (any_of) {
        const int r = compile_any_of(c, index, any_of, depth);
        c->busy[index] = false;
        return r < 0 ? -1 : index;
    }
    struct node *n = &c->g->nodes[index];
    const json_t *type = json_object_get(s, "type");
    for (size_t i = 0; json_is_array(type) && i < json_array_size(type); i++) {
        const uint8_t b = json_is_string(json_array_get(type, i))
                              ? type_bit(json_string_value(json_array_get(type, i)))
                              : 0;
        if (!b)
            return refuse(c, "'type' lists an unknown type");
        n->types |= b;
    }
    if (json_is_string(type) && !(n->types = type_bit(json_string_value(type))))
        return refuse(c, "'type' '%s' is unknown", json_string_value(type));
    if (type && !n->types)
        return refuse(c, "'type' must be a type name or a list of them");
    if (!type) /* what the other keywords say it is */
        n->types = json_object_get(s, "properties") ? TY_OBJ : json_object_get(s, "items") ? TY_ARR : TY_ALL;
    const json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
    if (en && !json_is_array(en))
        return refuse(c, "'enum' must be a list");
    if (en || cn) {
        json_t *one = cn ? json_pack("[O]", cn) : NULL;
        const int r = compile_enum(c, n, cn ? one : en);
        json_decref(one);
        if (r < 0)
            return -1;
    }
    if (json_is_true(json_object_get(s, "nullable"))) /* OpenAPI's: null besides what the rest allows */
        n->types |= TY_NULL;
    if ((n->types & TY_OBJ) && compile_object(c, index, s, depth) < 0)
        return -1;
    if ((n->types & TY_ARR) && compile_array(c, index, s, depth) < 0)
        return -1;
    c->busy[index] = false;
    return index;
}

tern_status tern_json_schema_compile(const json_t *schema, tern_json_schema **out, char *why,
                                     size_t why_size) {
    *out = NULL;
    struct compiler c = {
        .g = calloc(1, sizeof(tern_json_schema)), .why = why, .why_size = why_size, .doc = schema};
    if (!c.g) {
        snprintf(why, why_size, "out of memory");
        return TERN_ERR_NOMEM;
    }
    c.g->nodes[0] = ANY_OBJECT.nodes[0];
    c.g->n_nodes = 2; /* node 1: the root, which "#" names */
    c.ref[0] = "#";
    c.ref_node[0] = 1;
    c.n_refs = 1;
    const int root = compile_node_at(&c, schema, 0, 1);
    if (root > 0 && c.g->nodes[root].types != TY_OBJ)
        refuse(&c, "the schema's root must be an object (\"type\": \"object\")");
    if (root <= 0 || c.g->nodes[root].types != TY_OBJ) {
        free(c.g);
        return TERN_ERR_ARG;
    }
    c.g->root = (uint16_t)root;
    *out = c.g;
    return TERN_OK;
}

/* ---------------------------------------------------------------- the recognizer */

/* What a level expects next (each string's three modes in this order: text_byte). */
enum {
    M_VALUE,     /* a value of its node */
    M_OBJ_FIRST, /* after '{': a key or '}' */
    M_OBJ_KEY,   /* after ',' in an object: a key */
    M_KEY,       /* inside a key */
    M_KEY_ESC,   /* after a backslash in a key (any_keys) */
    M_KEY_U,     /* in a key's \uXXXX (aux: hex digits read) */
    M_COLON,     /* after a key (pos: its value's node) */
    M_OBJ_AFTER, /* after a member's value: ',' or '}' */
    M_ARR_FIRST, /* after '[': a value or ']' */
    M_ARR_AFTER, /* after an item: ',' or ']' */
    M_STR,       /* inside a string value */
    M_STR_ESC,   /* after a backslash */
    M_STR_U,     /* in \uXXXX (aux: hex digits read) */
    M_MINUS,     /* a number's '-' (aux: integer only) */
    M_ZERO,      /* its integer part is 0 */
    M_INT,       /* in its integer part */
    M_DOT,       /* after its '.' */
    M_FRAC,      /* in its fraction */
    M_EXP_MARK,  /* after its 'e' or 'E' */
    M_EXP_SIGN,  /* after the exponent's sign */
    M_EXP,       /* in its exponent */
    M_LIT        /* in true, false or null (aux: which; pos: letters matched) */
};

static const char *const LITERALS[3] = {"true", "false", "null"};

void tern_json_start(struct tern_json_state *st, const tern_json_schema *g) {
    st->g = g ? g : &ANY_OBJECT;
    st->depth = 1;
    st->space = 0;
    st->done = false;
    st->f[0] = (struct tern_json_frame){.node = st->g->root, .mode = M_VALUE};
}

bool tern_json_complete(const struct tern_json_state *st) {
    return st->done;
}

bool tern_json_same(const struct tern_json_state *a, const struct tern_json_state *b) {
    return a->g == b->g && a->depth == b->depth && a->space == b->space && a->done == b->done &&
           !memcmp(a->f, b->f, a->depth * sizeof *a->f);
}

static bool hex(unsigned char c) {
    return digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* The level's value is whole: back to its parent, which already expects what follows a value. */
static bool finish(struct tern_json_state *st) {
    if (--st->depth == 0)
        st->done = true;
    return true;
}

static bool push(struct tern_json_state *st, uint16_t node) {
    if (st->depth == TERN_JSON_MAX_DEPTH)
        return false;
    st->f[st->depth++] = (struct tern_json_frame){.node = node, .mode = M_VALUE};
    return true;
}

/* The properties a key may be next, from property `next` on: up to and with the first required
 * one (properties are written in the schema's order). */
static uint64_t next_keys(const tern_json_schema *g, const struct node *n, int next) {
    uint64_t m = 0;
    for (int i = next; i < n->n_props; i++) {
        m |= 1ull << i;
        if (g->props[n->prop0 + i].required)
            break;
    }
    return m;
}

static bool may_close(const tern_json_schema *g, const struct node *n, int next) {
    for (int i = next; i < n->n_props; i++)
        if (g->props[n->prop0 + i].required)
            return false;
    return true;
}

/* Narrow the candidates of f (names[0 ..) of the schema) by byte c at position f->pos. */
static bool narrow(const tern_json_schema *g, struct tern_json_frame *f, const struct name *names, int n,
                   unsigned char c) {
    uint64_t m = 0;
    for (int i = 0; i < n; i++)
        if (((f->cand >> i) & 1) && names[i].len > f->pos &&
            (unsigned char)g->text[names[i].off + f->pos] == c)
            m |= 1ull << i;
    f->cand = m;
    f->pos++;
    return m != 0;
}

/* The candidate of f whose name ends here, -1 when none does. */
static int whole_name(const struct tern_json_frame *f, const struct name *names, int n) {
    for (int i = 0; i < n; i++)
        if (((f->cand >> i) & 1) && names[i].len == f->pos)
            return i;
    return -1;
}

/* The first byte of a value of f's node. */
static bool value_start(const tern_json_schema *g, struct tern_json_frame *f, unsigned char c) {
    const struct node *n = &g->nodes[f->node];
    for (int i = 0; i < n->n_alt; i++) /* anyOf: the alternative this byte begins */
        if (starts(c) & g->nodes[g->alts[n->alt0 + i]].types) {
            f->node = g->alts[n->alt0 + i];
            return value_start(g, f, c);
        }
    if (n->n_alt || !(starts(c) & n->types))
        return false;
    switch (c) {
    case '{':
        f->mode = M_OBJ_FIRST, f->count = 0;
        break;
    case '[':
        f->mode = M_ARR_FIRST, f->count = 0;
        break;
    case '"':
        f->mode = M_STR, f->pos = 0, f->cand = n->n_enum == 64 ? ~0ull : (1ull << n->n_enum) - 1;
        break;
    case 't':
    case 'f':
    case 'n':
        f->mode = M_LIT, f->aux = c == 't' ? 0 : c == 'f' ? 1 : 2, f->pos = 1;
        break;
    default: /* a number */
        f->aux = !(n->types & TY_NUM);
        f->mode = c == '-' ? M_MINUS : c == '0' ? M_ZERO : M_INT;
    }
    return true;
}

/* A byte of a string of any text, whose modes are text (outside escapes), text + 1 (after a
 * backslash) and text + 2 (in \uXXXX): 1 the string goes on, 0 c is its closing quote, -1 c cannot
 * be there. */
static int text_byte(struct tern_json_frame *f, unsigned char c, int text) {
    if (f->mode == text) {
        if (c == '"')
            return 0;
        if (c == '\\')
            f->mode = (uint8_t)(text + 1);
        return c >= 0x20 ? 1 : -1;
    }
    if (f->mode == text + 1) {
        if (c == 'u')
            f->mode = (uint8_t)(text + 2), f->aux = 0;
        else if (c && strchr("\"\\/bfnrt", c))
            f->mode = (uint8_t)text;
        else
            return -1;
        return 1;
    }
    if (!hex(c))
        return -1;
    if (++f->aux == 4)
        f->mode = (uint8_t)text;
    return 1;
}

static bool step(struct tern_json_state *st, unsigned char c) {
    if (st->done)
        return false;
    const tern_json_schema *g = st->g;
    struct tern_json_frame *f = &st->f[st->depth - 1];
    const struct node *n = &g->nodes[f->node];
    int r;
    switch (f->mode) {
    case M_STR:
        if (n->n_enum) {
            if (c == '"')
                return whole_name(f, g->enums + n->enum0, n->n_enum) >= 0 && finish(st);
            return narrow(g, f, g->enums + n->enum0, n->n_enum, c);
        }
        /* fall through */
    case M_STR_ESC:
    case M_STR_U:
        r = text_byte(f, c, M_STR);
        return r > 0 || (r == 0 && finish(st));
    case M_KEY:
        if (!n->any_keys) { /* a property's name: its value's node is the property's */
            if (c != '"')
                return narrow(g, f, g->prop_names + n->prop0, n->n_props, c);
            const int i = whole_name(f, g->prop_names + n->prop0, n->n_props);
            if (i < 0)
                return false;
            f->count = (uint16_t)(i + 1), f->pos = g->props[n->prop0 + i].node, f->mode = M_COLON;
            return true;
        }
        /* fall through */
    case M_KEY_ESC:
    case M_KEY_U:
        r = text_byte(f, c, M_KEY);
        if (r == 0) /* any key: any value */
            f->mode = M_COLON, f->pos = 0;
        return r >= 0;
    case M_MINUS:
    case M_DOT:
    case M_EXP_SIGN:
        if (!digit(c))
            return false;
        f->mode = f->mode == M_MINUS ? (c == '0' ? M_ZERO : M_INT) : f->mode == M_DOT ? M_FRAC : M_EXP;
        return true;
    case M_EXP_MARK:
        if (c == '+' || c == '-')
            f->mode = M_EXP_SIGN;
        else if (digit(c))
            f->mode = M_EXP;
        else
            return false;
        return true;
    case M_ZERO:
    case M_INT:
    case M_FRAC:
    case M_EXP:
        if (digit(c) && f->mode != M_ZERO)
            return true;
        if (c == '.' && f->mode <= M_INT && !f->aux) {
            f->mode = M_DOT;
            return true;
        }
        if ((c == 'e' || c == 'E') && f->mode != M_EXP && !f->aux) {
            f->mode = M_EXP_MARK;
            return true;
        }
        finish(st); /* the number ended (numbers lie inside the object): c comes after it */
        return step(st, c);
    case M_LIT: {
        const char *lit = LITERALS[f->aux];
        if (c != (unsigned char)lit[f->pos])
            return false;
        return !lit[++f->pos] ? finish(st) : true;
    }
    default:
        break;
    }
    /* between tokens: whitespace, a bounded run of it, inside the object */
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        if ((f->mode == M_VALUE && st->depth == 1) || st->space == TERN_JSON_MAX_SPACE)
            return false;
        st->space++;
        return true;
    }
    st->space = 0;
    switch (f->mode) {
    case M_VALUE:
        return value_start(g, f, c);
    case M_OBJ_FIRST:
    case M_OBJ_AFTER:
        if (c == '}')
            return (n->any_keys || may_close(g, n, f->count)) && finish(st);
        if (f->mode == M_OBJ_AFTER) {
            if (c != ',' || (!n->any_keys && !next_keys(g, n, f->count)))
                return false;
            f->mode = M_OBJ_KEY;
            return true;
        }
        /* fall through */
    case M_OBJ_KEY:
        if (c != '"')
            return false;
        f->mode = M_KEY, f->pos = 0;
        f->cand = n->any_keys ? 0 : next_keys(g, n, f->count);
        return n->any_keys || f->cand;
    case M_COLON:
        if (c != ':')
            return false;
        f->mode = M_OBJ_AFTER;
        return push(st, f->pos);
    case M_ARR_FIRST:
    case M_ARR_AFTER:
        if (c == ']')
            return f->count >= n->min_items && finish(st);
        if (f->mode == M_ARR_AFTER && c != ',')
            return false;
        if (f->count == n->max_items)
            return false;
        f->count++;
        if (!push(st, n->items))
            return false;
        if (f->mode == M_ARR_AFTER)
            return true;
        f->mode = M_ARR_AFTER;
        return value_start(g, &st->f[st->depth - 1], c);
    default:
        return false;
    }
}

bool tern_json_feed(struct tern_json_state *st, const char *bytes, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!step(st, (unsigned char)bytes[i]))
            return false;
    return true;
}

/* dst <- src: the levels in use (a step writes a level before it reads it) */
static void copy_state(struct tern_json_state *dst, const struct tern_json_state *src) {
    dst->g = src->g;
    dst->depth = src->depth;
    dst->space = src->space;
    dst->done = src->done;
    memcpy(dst->f, src->f, src->depth * sizeof *src->f);
}

/* Inside a string that takes any text: a token without a quote, backslash or control byte leaves
 * the state as it was. */
static bool in_plain_string(const struct tern_json_state *st) {
    if (st->done)
        return false;
    const struct tern_json_frame *f = &st->f[st->depth - 1];
    const struct node *n = &st->g->nodes[f->node];
    return (f->mode == M_STR && !n->n_enum) || (f->mode == M_KEY && n->any_keys);
}

/* ---------------------------------------------------------------- the vocabulary */

/* A token's lead: its first byte (0-255), or one of these; its class: what its first byte leaves
 * to decide. */
enum { LEAD_NONE = 256, LEAD_EOG = 257 }; /* no bytes (control tokens); end of generation */
enum {
    C_DONE = 0,  /* one byte: its lead decides */
    C_REST = 1,  /* more bytes: the recognizer runs them */
    C_PLAIN = 2, /* more bytes, none a quote, backslash or control byte: a string takes them whole */
    C_CTRL = 4,  /* more bytes, the first of those three kinds a control byte: no string takes it */
};

struct tern_json_vocab {
    int32_t n;
    uint16_t *lead;  /* [n] */
    uint8_t *cls;    /* [n] */
    uint32_t *start; /* [n + 1] token id's bytes: bytes[start[id] .. start[id + 1]) */
    char *bytes;
};

void tern_json_vocab_free(tern_json_vocab *v) {
    if (!v)
        return;
    free(v->lead);
    free(v->cls);
    free(v->start);
    free(v->bytes);
    free(v);
}

tern_status tern_json_vocab_create(const tern_tokenizer *tok, tern_json_vocab **out) {
    *out = NULL;
    const int32_t n = tern_tokenizer_n_vocab(tok);
    const size_t piece = tern_detok_max_bytes(tok) + 1;
    tern_json_vocab *v = calloc(1, sizeof *v);
    char *buf = malloc(piece);
    size_t cap = (size_t)n * 8, len = 0;
    if (v) {
        v->n = n;
        v->lead = malloc((size_t)n * sizeof *v->lead);
        v->cls = malloc((size_t)n);
        v->start = malloc(((size_t)n + 1) * sizeof *v->start);
        v->bytes = malloc(cap);
    }
    bool ok = v && buf && v->lead && v->cls && v->start && v->bytes;
    for (int32_t id = 0; ok && id < n; id++) {
        v->start[id] = (uint32_t)len;
        v->cls[id] = C_DONE;
        if (tern_tokenizer_is_eog(tok, id)) {
            v->lead[id] = LEAD_EOG;
            continue;
        }
        size_t k = tern_tokenizer_token_type(tok, id) == TERN_TOKEN_CONTROL
                       ? 0
                       : tern_token_to_bytes(tok, id, false, buf, piece);
        k = k < piece ? k : piece;
        if (len + k > cap) {
            char *b = realloc(v->bytes, cap = 2 * (len + k));
            if (!(ok = b != NULL))
                break;
            v->bytes = b;
        }
        memcpy(v->bytes + len, buf, k);
        len += k;
        size_t i = 0;
        while (i < k && (unsigned char)buf[i] >= 0x20 && buf[i] != '"' && buf[i] != '\\')
            i++;
        v->lead[id] = k ? (unsigned char)buf[0] : LEAD_NONE;
        v->cls[id] = k <= 1                         ? C_DONE
                     : i == k                       ? C_PLAIN
                     : (unsigned char)buf[i] < 0x20 ? C_REST | C_CTRL
                                                    : C_REST;
    }
    free(buf);
    if (!ok) {
        tern_json_vocab_free(v);
        tern_log_error("out of memory for JSON mode's table of %d tokens", n);
        return TERN_ERR_NOMEM;
    }
    v->start[n] = (uint32_t)len;
    *out = v;
    return TERN_OK;
}

int32_t tern_json_allowed(const tern_json_vocab *v, const struct tern_json_state *st, uint8_t *allowed,
                          int32_t n_vocab) {
    /* what each lead allows: most tokens are decided there without running the recognizer, and
     * inside a string so are the plain ones and those with a control byte before any quote. One
     * mask over the 2b4t shape's synthetic vocabulary of 128256 tokens (random merges, many of
     * them with quotes and control bytes), one core: after '{' 0.21 ms, in a string 0.98, after
     * ':' 0.73, in a number 0.55 (running every token from its first byte: 0.62, 1.50, 1.13,
     * 0.97) */
    struct tern_json_state s;
    bool allow[LEAD_EOG + 1];
    for (int b = 0; b < 256; b++) {
        copy_state(&s, st);
        allow[b] = step(&s, (unsigned char)b);
    }
    allow[LEAD_NONE] = false;
    allow[LEAD_EOG] = tern_json_complete(st);
    /* the classes to run, and those a string refuses */
    const bool in_string = in_plain_string(st);
    const uint8_t run = in_string ? C_REST : C_REST | C_PLAIN, refuse = in_string ? C_CTRL : 0;
    int32_t kept = 0;
    for (int32_t id = v->n; id < n_vocab; id++)
        allowed[id] = 0;
    for (int32_t id = 0; id < v->n && id < n_vocab; id++) {
        bool keep = allow[v->lead[id]] && !(v->cls[id] & refuse);
        if (keep && (v->cls[id] & run)) {
            copy_state(&s, st);
            keep = tern_json_feed(&s, v->bytes + v->start[id], v->start[id + 1] - v->start[id]);
        }
        kept += keep;
        allowed[id] = keep;
    }
    return kept;
}

void tern_json_advance(const tern_json_vocab *v, struct tern_json_state *st, int32_t id) {
    if (id >= 0 && id < v->n && v->lead[id] != LEAD_EOG)
        tern_json_feed(st, v->bytes + v->start[id], v->start[id + 1] - v->start[id]);
}
