/* JSON mode's schema compiler (json_mode.h: tern_json_schema_compile): a JSON schema of the subset
 * into one flat block (json_schema.h) that the recognizer follows. */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_schema.h"

/* JSON mode without a schema: any object */
/* Built at first use, so that its mostly empty tables take no room in the binary */
static tern_json_schema any_object;
static pthread_once_t any_object_once = PTHREAD_ONCE_INIT;

static void any_object_init(void) {
    any_object.root = 1;
    any_object.n_nodes = 2;
    any_object.nodes[0] =
        (struct node){.types = TY_ALL, .any_keys = true, .max_items = UINT16_MAX, .max_props = UINT16_MAX};
    any_object.nodes[1] =
        (struct node){.types = TY_OBJ, .any_keys = true, .max_items = UINT16_MAX, .max_props = UINT16_MAX};
}

const tern_json_schema *tern_json_any_object(void) {
    pthread_once(&any_object_once, any_object_init);
    return &any_object;
}

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
    static const char *const notes[] = {"description", "title", "default", "examples",    "$schema",
                                        "$comment",    "$id",   "$defs",   "definitions", "discriminator"};
    static const char *const keys[] = {"type",
                                       "properties",
                                       "required",
                                       "additionalProperties",
                                       "items",
                                       "minItems",
                                       "maxItems",
                                       "enum",
                                       "const",
                                       "nullable",
                                       "anyOf",
                                       "oneOf",
                                       "allOf",
                                       "$ref",
                                       "minLength",
                                       "maxLength",
                                       "minimum",
                                       "maximum",
                                       "exclusiveMinimum",
                                       "exclusiveMaximum",
                                       "pattern",
                                       "format",
                                       "minProperties",
                                       "maxProperties"};
    for (size_t i = 0; i < sizeof notes / sizeof *notes; i++)
        if (!strcmp(k, notes[i]))
            return 2;
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!strcmp(k, keys[i]))
            return 1;
    return 0;
}

/* Characters (code points) in UTF-8 text: the bytes that do not continue one. */
static uint32_t characters(const char *s, size_t len) {
    uint32_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

/* A number, true, false or null as the JSON text a reply writes for it (reals in the fewest digits
 * that read back as the same double), and its types; 0 for objects and lists. */
static uint8_t literal(const json_t *v, char *text, size_t size) {
    if (json_is_integer(v)) {
        snprintf(text, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return TY_NUM | TY_INT;
    }
    if (json_is_real(v)) {
        const double d = json_real_value(v);
        for (int digits = 1; digits <= 17; digits++) {
            snprintf(text, size, "%.*g", digits, d);
            if (strtod(text, NULL) == d)
                break;
        }
        return (uint8_t)(TY_NUM | (d == floor(d) ? TY_INT : 0));
    }
    snprintf(text, size, "%s", json_is_true(v) ? "true" : json_is_false(v) ? "false" : "null");
    return json_is_boolean(v) ? TY_BOOL : json_is_null(v) ? TY_NULL : 0;
}

/* One enumerated value of node n into the schema's text (strings: enums, others: literals). */
static int add_value(struct compiler *c, struct node *n, const char *text, size_t len, bool string) {
    if (c->g->n_enum == MAX_ENUM || (string ? n->n_enum : n->n_lit) == MAX_MEMBERS)
        return refuse(c, "more than %d enumerated values", MAX_MEMBERS);
    if (!add_name(c, text, len, &c->g->enums[c->g->n_enum]))
        return -1;
    c->g->n_enum++;
    string ? n->n_enum++ : n->n_lit++;
    return 0;
}

/* The enumerated values (enum, or const as one) of node n, those of its declared type (n->types,
 * 0 for any) and string lengths: strings in enums[enum0 ..], then the others as JSON text in
 * enums[lit0 ..]. */
static int compile_enum(struct compiler *c, struct node *n, const json_t *values) {
    const uint8_t declared = n->types;
    uint8_t types = 0;
    n->enum0 = c->g->n_enum;
    for (size_t i = 0; i < json_array_size(values); i++) {
        const json_t *v = json_array_get(values, i);
        if (!json_is_string(v) || (declared && !(declared & TY_STR)))
            continue;
        const uint32_t len = characters(json_string_value(v), json_string_length(v));
        if ((n->limits & LIM_LEN) && (len < n->min_len || len > n->max_len))
            continue;
        if (n->pattern &&
            !tern_json_pattern_matches(c->g, n->pattern - 1, json_string_value(v), json_string_length(v)))
            continue;
        if (add_value(c, n, json_string_value(v), json_string_length(v), true) < 0)
            return -1;
        types |= TY_STR;
    }
    n->lit0 = c->g->n_enum;
    for (size_t i = 0; i < json_array_size(values); i++) {
        const json_t *v = json_array_get(values, i);
        char text[40];
        const uint8_t t = json_is_string(v) ? 0 : literal(v, text, sizeof text);
        if (!json_is_string(v) && !t)
            return refuse(c, "'enum' and 'const' values that are objects or lists are not supported");
        if (!t || (declared && !(declared & t)))
            continue;
        if (add_value(c, n, text, strlen(text), false) < 0)
            return -1;
        types |= t;
    }
    if (!json_array_size(values))
        return refuse(c, "'enum' is empty");
    n->types = types;
    n->enumerated = true;
    return types ? 0 : refuse(c, "no 'enum' or 'const' value is of the schema's 'type', length and pattern");
}

/* JSON Schema's formats, as patterns (RFC 3339's date, time and date-time, RFC 4122's uuid; email
 * and uri as their common forms; ipv4 as dotted decimal) */
static const char *format_pattern(const char *format) {
    static const struct {
        const char *name, *pattern;
    } formats[] = {
        {"date", "^\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])$"},
        {"time", "^([01]\\d|2[0-3]):[0-5]\\d:([0-5]\\d|60)(\\.\\d+)?(Z|[+-]([01]\\d|2[0-3]):[0-5]\\d)$"},
        {"date-time", "^\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])T([01]\\d|2[0-3]):[0-5]\\d:([0-5]\\d|60)"
                      "(\\.\\d+)?(Z|[+-]([01]\\d|2[0-3]):[0-5]\\d)$"},
        {"uuid", "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"},
        {"email", "^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}$"},
        {"uri", "^[A-Za-z][A-Za-z0-9+.-]*:[^\\s<>]+$"},
        {"ipv4", "^((25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)$"},
    };
    for (size_t i = 0; i < sizeof formats / sizeof *formats; i++)
        if (!strcmp(format, formats[i].name))
            return formats[i].pattern;
    return NULL;
}

/* pattern, or format as one */
static int compile_pattern(struct compiler *c, struct node *n, const json_t *pattern, const json_t *format) {
    if (pattern && format)
        return refuse(c, "'pattern' beside 'format' is not supported");
    if (n->limits & LIM_LEN)
        return refuse(c, "'%s' beside 'minLength' or 'maxLength' is not supported",
                      pattern ? "pattern" : "format");
    const char *re = json_string_value(pattern ? pattern : format);
    size_t len = json_string_length(pattern ? pattern : format);
    if (!re)
        return refuse(c, "'%s' must be a string", pattern ? "pattern" : "format");
    if (format && !(re = format_pattern(json_string_value(format))))
        return refuse(c, "'format' '%s' is not supported (date, time, date-time, uuid, email, uri, ipv4 are)",
                      json_string_value(format));
    if (format)
        len = strlen(re);
    const int p = tern_json_pattern_compile(c->g, re, len, c->why, c->why_size);
    if (p < 0)
        return -1;
    n->pattern = (uint8_t)(p + 1);
    return 0;
}

/* minLength and maxLength */
static int compile_lengths(struct compiler *c, struct node *n, const json_t *lo, const json_t *hi) {
    if ((lo && (!json_is_integer(lo) || json_integer_value(lo) < 0 || json_integer_value(lo) > 65536)) ||
        (hi && (!json_is_integer(hi) || json_integer_value(hi) < 0)))
        return refuse(c, "'minLength' must be an integer from 0 to 65536, 'maxLength' one from 0 up");
    n->limits |= LIM_LEN;
    n->min_len = lo ? (uint32_t)json_integer_value(lo) : 0;
    n->max_len = !hi || json_integer_value(hi) > UINT32_MAX ? UINT32_MAX : (uint32_t)json_integer_value(hi);
    return n->min_len <= n->max_len ? 0 : refuse(c, "'minLength' is above 'maxLength'");
}

/* One numeric bound: minimum or maximum (inclusive), or the exclusive ones (a number, or draft 4's
 * boolean that makes minimum or maximum exclusive). Bounds are whole numbers (integers also take
 * fractional ones, rounded inward), the tighter of two kept. */
static int compile_bound(struct compiler *c, struct node *n, const json_t *s, bool upper) {
    const char *name = upper ? "maximum" : "minimum",
               *ex_name = upper ? "exclusiveMaximum" : "exclusiveMinimum";
    const json_t *in = json_object_get(s, name), *ex = json_object_get(s, ex_name);
    const uint8_t has = upper ? LIM_HI : LIM_LO, has_ex = upper ? LIM_HI_EX : LIM_LO_EX;
    for (int k = 0; k < 2; k++) {
        const json_t *v = k ? ex : in;
        bool exclusive = k == 1;
        if (k == 1 && json_is_boolean(ex)) { /* draft 4 */
            if (json_is_true(ex) && !(n->limits & has))
                return refuse(c, "'%s' true without '%s'", ex_name, name);
            if (json_is_true(ex) && !(n->types & TY_NUM)) /* integers: inclusive */
                upper ? n->hi-- : n->lo++;
            else if (json_is_true(ex))
                n->limits |= has_ex;
            continue;
        }
        if (!v)
            continue;
        const double d = json_number_value(v);
        if (!json_is_number(v) || !(fabs(d) <= (double)TERN_JSON_MAX_BOUND))
            return refuse(c, "'%s' must be a number within +-10^15", k ? ex_name : name);
        double whole = d;
        if (!(n->types & TY_NUM)) { /* integers: rounded inward, inclusive */
            whole = upper ? (exclusive ? ceil(d) - 1 : floor(d)) : (exclusive ? floor(d) + 1 : ceil(d));
            exclusive = false;
        }
        if (whole != floor(whole))
            return refuse(c, "'%s' %g: bounds on numbers must be whole (fractional ones are not supported)",
                          k ? ex_name : name, d);
        const int64_t b = (int64_t)whole;
        int64_t *at = upper ? &n->hi : &n->lo;
        const bool tighter = !(n->limits & has) || (upper ? b < *at : b > *at) ||
                             (b == *at && exclusive && !(n->limits & has_ex));
        if (tighter) {
            *at = b;
            n->limits = (uint8_t)((n->limits | has) & ~has_ex);
            if (exclusive)
                n->limits |= has_ex;
        }
    }
    return 0;
}

static int compile_range(struct compiler *c, struct node *n, const json_t *s) {
    if (compile_bound(c, n, s, false) < 0 || compile_bound(c, n, s, true) < 0)
        return -1;
    const bool empty = (n->limits & LIM_LO) && (n->limits & LIM_HI) &&
                       (n->lo > n->hi || (n->lo == n->hi && (n->limits & (LIM_LO_EX | LIM_HI_EX))));
    return empty ? refuse(c, "no number lies within 'minimum' and 'maximum'") : 0;
}

static int compile_node(struct compiler *c, const json_t *s, int depth);

static int compile_object(struct compiler *c, int index, const json_t *s, int depth) {
    const json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required"),
                 *extra = json_object_get(s, "additionalProperties");
    struct node *n = &c->g->nodes[index];
    if (extra && !json_is_boolean(extra))
        return refuse(c, "'additionalProperties' other than true or false is not supported");
    const json_t *lo = json_object_get(s, "minProperties"), *hi = json_object_get(s, "maxProperties");
    if ((lo &&
         (!json_is_integer(lo) || json_integer_value(lo) < 0 || json_integer_value(lo) > MAX_MEMBERS)) ||
        (hi && (!json_is_integer(hi) || json_integer_value(hi) < 0)))
        return refuse(c, "'minProperties' must be an integer from 0 to %d, 'maxProperties' one from 0 up",
                      MAX_MEMBERS);
    n->min_props = lo ? (uint16_t)json_integer_value(lo) : 0;
    n->max_props =
        !hi || json_integer_value(hi) >= UINT16_MAX ? UINT16_MAX : (uint16_t)json_integer_value(hi);
    if (n->min_props > n->max_props)
        return refuse(c, "'minProperties' is above 'maxProperties'");
    if (props && !json_is_object(props))
        return refuse(c, "'properties' must be an object");
    if (req && !json_is_array(req))
        return refuse(c, "'required' must be a list of names");
    n->any_keys = !props && !json_is_false(extra);
    if (!props && !n->any_keys && n->min_props)
        return refuse(c, "'minProperties' asks for keys where 'additionalProperties' is false");
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
    if (n->min_props > n->n_props)
        return refuse(c, "'minProperties' asks for more keys than 'properties' lists");
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
    int required = 0;
    for (int j = 0; j < n->n_props; j++)
        required += c->g->props[p0 + j].required;
    return required <= n->max_props ? 0 : refuse(c, "'required' lists more keys than 'maxProperties' allows");
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

/* anyOf / oneOf: the alternatives (the recognizer follows those a value's first byte can begin side
 * by side, json_mode.h); alternatives that are such lists themselves are taken apart. oneOf is taken
 * as anyOf: a text both alternatives take is not refused. */
static int compile_any_of(struct compiler *c, int index, const json_t *list, int depth) {
    if (!json_is_array(list) || json_array_size(list) == 0)
        return refuse(c, "'anyOf' and 'oneOf' must be non-empty lists of schemas");
    c->g->nodes[index].alt0 = c->g->n_alts;
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
            if (c->g->n_alts == MAX_ALTS)
                return refuse(c, "more than %d 'anyOf' alternatives", MAX_ALTS);
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
    const json_t *ref = json_object_get(s, "$ref"), *any_of = json_object_get(s, "anyOf"),
                 *all_of = json_object_get(s, "allOf");
    if (!any_of)
        any_of = json_object_get(s, "oneOf");
    if ((ref || any_of || all_of) && kinds > 1)
        return refuse(c, "'%s' beside other keywords is not supported",
                      ref      ? "$ref"
                      : any_of ? "anyOf"
                               : "allOf");
    if (all_of) { /* one schema (pydantic 1 wraps a described reference so) */
        if (!json_is_array(all_of) || json_array_size(all_of) != 1)
            return refuse(c, "'allOf' of other than one schema is not supported");
        return compile_node_at(c, json_array_get(all_of, 0), depth + 1, index);
    }
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
    const json_t *min_len = json_object_get(s, "minLength"), *max_len = json_object_get(s, "maxLength");
    if ((min_len || max_len) && compile_lengths(c, n, min_len, max_len) < 0)
        return -1;
    const json_t *pattern = json_object_get(s, "pattern"), *format = json_object_get(s, "format");
    if ((pattern || format) && compile_pattern(c, n, pattern, format) < 0)
        return -1;
    const json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
    const bool bounded = json_object_get(s, "minimum") || json_object_get(s, "maximum") ||
                         json_object_get(s, "exclusiveMinimum") || json_object_get(s, "exclusiveMaximum");
    if (en && !json_is_array(en))
        return refuse(c, "'enum' must be a list");
    if ((en || cn) && bounded)
        return refuse(c, "'minimum' or 'maximum' beside 'enum' or 'const' is not supported");
    if (bounded && compile_range(c, n, s) < 0)
        return -1;
    if (en || cn) {
        json_t *one = cn ? json_pack("[O]", cn) : NULL;
        const int r = compile_enum(c, n, cn ? one : en);
        json_decref(one);
        if (r < 0)
            return -1;
    }
    if (json_is_true(json_object_get(s, "nullable"))) { /* OpenAPI's: null besides what the rest allows */
        if (n->enumerated && !(n->types & TY_NULL) && add_value(c, n, "null", 4, false) < 0)
            return -1;
        n->types |= TY_NULL;
    }
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
    c.g->nodes[0] = tern_json_any_object()->nodes[0];
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
