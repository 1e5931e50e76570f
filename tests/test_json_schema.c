/* JSON schemas in JSON mode (host/generate/json_schema.c, json_pattern.c, the recognizer in
 * json_mode.c): what compiles and what is refused by name; enumerated values, numeric bounds and
 * string lengths against independent oracles, patterns against PCRE2, unions of alternatives that
 * begin alike. No model is needed. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "json_test.h"

/* Schemas: what compiles, what is refused by name, and texts that follow one or break it; $ref,
 * $defs and anyOf */
static void schemas(void) {
    char why[256];
    static const struct {
        const char *schema, *why;
    } refused[] = {
        {"{\"type\": \"array\"}", "root must be an object"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\", \"pattern\": \"(?=x)\"}}}",
         "lookaround"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"pattern\": \"(a)\\\\1\"}}}", "backreferences"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"pattern\": \"^a|b\"}}}", "'|'"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"pattern\": \"a\\\"\"}}}", "unescaped"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"pattern\": \"[\u00e9]\"}}}", "past ASCII"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"pattern\": \"a{2000}\"}}}", "1000"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"pattern\": \"(a{999}){9}\"}}}", "complex"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"format\": \"ipv6\"}}}", "'ipv6'"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"pattern\": \"a\", \"maxLength\": 3}}}", "beside"},
        {"{\"allOf\": [{\"type\": \"object\"}, {\"type\": \"object\"}]}", "'allOf'"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"$ref\": \"#/$defs/B\"}}}", "does not name"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"$ref\": \"#\", \"type\": \"object\"}}}",
         "beside"},
        {"{\"$defs\": {\"A\": {\"anyOf\": [{\"$ref\": \"#/$defs/A\"}, {\"type\": \"null\"}]}}, \"type\": "
         "\"object\", "
         "\"properties\": {\"a\": {\"$ref\": \"#/$defs/A\"}}}",
         "refers back"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"enum\": [1, [2]]}}}", "objects or lists"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"number\", \"maximum\": 0.5}}}",
         "whole"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"maximum\": 1e16}}}", "10^15"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"minimum\": 2, \"exclusiveMaximum\": 2}}}",
         "no number"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"exclusiveMinimum\": true}}}", "without"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"enum\": [1], \"maximum\": 3}}}", "beside"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"minLength\": 3, \"maxLength\": 2}}}",
         "'minLength'"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"enum\": [\"abc\"], \"maxLength\": 2}}}",
         "length"},
        {"{\"type\": \"object\", \"properties\": {}, \"required\": [\"b\"]}", "'b'"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"items\": [{}]}}}", "'items'"},
        {"{\"type\": \"object\", \"properties\": {\"a\\\"b\": {}}}", "quote"},
        {"{\"type\": \"thing\"}", "unknown"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\", \"enum\": [\"x\"]}}}",
         "'type'"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        why[0] = 0;
        tern_json_schema *g = compile(refused[i].schema, why, sizeof why);
        if (g || !strstr(why, refused[i].why))
            harness_fail(__FILE__, __LINE__, "schema %s: compiled %d, why '%s'", refused[i].schema, g != NULL,
                         why);
        free(g);
    }
    tern_json_schema *g = compile(SCHEMA, why, sizeof why);
    CHECK(g != NULL);
    if (!g)
        return;
    static const char *const whole[] = {
        "{\"name\":\"x\",\"age\":3}",
        "{\"name\": \"J\\u00e9r\\\"o\", \"age\": -30, \"tags\": [\"a\", \"bc\"]}",
        "{\"name\":\"\",\"age\":0,\"tags\":[],\"ok\":null}",
        "{\"name\":\"x\",\"age\":12,\"ok\":true,\"pos\":{\"x\":-1.5e3}}",
    };
    for (size_t i = 0; i < sizeof whole / sizeof *whole; i++) {
        CHECK_INT(1, schema_verdict(g, whole[i]));
        char prefix[256];
        for (size_t n = 0; n < strlen(whole[i]); n++) {
            snprintf(prefix, sizeof prefix, "%.*s", (int)n, whole[i]);
            CHECK_INT(0, schema_verdict(g, prefix));
        }
    }
    static const char *const broken[] = {
        "{\"age\":3,\"name\":\"x\"}",   /* the schema's order */
        "{\"name\":\"x\"}",             /* age is required */
        "{\"name\":1,\"age\":1}",       /* a number for a string */
        "{\"name\":\"x\",\"age\":1.5}", /* integer */
        "{\"name\":\"x\",\"age\":1e3}", /* integer */
        "{\"name\":\"x\",\"age\":1,\"tags\":[\"b\"]}",
        "{\"name\":\"x\",\"age\":1,\"tags\":[\"a\",\"a\",\"a\"]}", /* maxItems */
        "{\"name\":\"x\",\"age\":1,\"extra\":1}",
        "{\"name\":\"x\",\"age\":1,\"ok\":\"yes\"}",
        "{\"name\":\"x\",\"age\":1,\"pos\":{}}", /* pos.x is required */
        "{\"name\":\"x\",\"age\":1,}",
        "{\"nam\":\"x\",\"age\":1}",
        "{\"names\":\"x\",\"age\":1}",
        "{\"name\":\"x\",\"age\":1,\"tags\":[\"ab\"]}",
    };
    for (size_t i = 0; i < sizeof broken / sizeof *broken; i++)
        if (schema_verdict(g, broken[i]) != -1)
            harness_fail(__FILE__, __LINE__, "'%s' was taken", broken[i]);
    free(g);
    /* minItems, const, nullable, an object without properties (any keys), additionalProperties false
     * without properties (only {}) */
    g = compile("{\"type\": \"object\", \"properties\": {\"l\": {\"type\": \"array\", \"minItems\": 2, "
                "\"items\": {\"type\": \"integer\"}}, \"c\": {\"const\": \"v\", \"nullable\": true}, "
                "\"any\": {\"type\": \"object\"}, \"none\": {\"type\": \"object\", \"additionalProperties\": "
                "false}}}",
                why, sizeof why);
    CHECK(g != NULL);
    if (!g)
        return;
    CHECK_INT(1, schema_verdict(g, "{\"l\":[1,2],\"c\":null,\"any\":{\"q\":[{}]},\"none\":{}}"));
    CHECK_INT(1, schema_verdict(g, "{\"c\":\"v\"}"));
    CHECK_INT(1, schema_verdict(g, "{}"));
    CHECK_INT(-1, schema_verdict(g, "{\"l\":[1]}"));
    CHECK_INT(-1, schema_verdict(g, "{\"c\":\"w\"}"));
    CHECK_INT(-1, schema_verdict(g, "{\"none\":{\"a\":1}}"));
    free(g);
    /* $defs and $ref (as pydantic writes them), anyOf with null for an optional value, and a
     * reference to the root: a tree */
    g = compile(
        "{\"$defs\": {\"Pet\": {\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\"}, "
        "\"age\": {\"anyOf\": [{\"type\": \"integer\"}, {\"type\": \"null\"}]}}, \"required\": [\"name\", "
        "\"age\"]}}, "
        "\"type\": \"object\", \"properties\": {\"owner\": {\"type\": \"string\"}, \"pets\": {\"type\": "
        "\"array\", "
        "\"items\": {\"$ref\": \"#/$defs/Pet\"}}, \"best\": {\"anyOf\": [{\"$ref\": \"#/$defs/Pet\"}, "
        "{\"type\": \"null\"}]}}, \"required\": [\"owner\", \"pets\", \"best\"]}",
        why, sizeof why);
    CHECK(g != NULL);
    if (!g)
        return;
    CHECK_INT(1,
              schema_verdict(
                  g, "{\"owner\":\"a\",\"pets\":[{\"name\":\"x\",\"age\":null},{\"name\":\"y\",\"age\":3}],"
                     "\"best\":null}"));
    CHECK_INT(1, schema_verdict(g, "{\"owner\":\"a\",\"pets\":[],\"best\":{\"name\":\"z\",\"age\":1}}"));
    CHECK_INT(-1, schema_verdict(g, "{\"owner\":\"a\",\"pets\":[],\"best\":\"z\"}"));
    CHECK_INT(-1, schema_verdict(g, "{\"owner\":\"a\",\"pets\":[{\"name\":\"x\",\"age\":\"3\"}]"));
    CHECK_INT(-1, schema_verdict(g, "{\"owner\":\"a\",\"pets\":[{\"name\":\"x\"}]"));
    free(g);
    g = compile("{\"type\": \"object\", \"properties\": {\"v\": {\"type\": \"integer\"}, \"kids\": "
                "{\"type\": \"array\", "
                "\"items\": {\"$ref\": \"#\"}}}, \"required\": [\"v\"]}",
                why, sizeof why);
    CHECK(g != NULL);
    if (!g)
        return;
    CHECK_INT(1, schema_verdict(g, "{\"v\":1,\"kids\":[{\"v\":2,\"kids\":[{\"v\":3}]},{\"v\":4}]}"));
    CHECK_INT(-1, schema_verdict(g, "{\"v\":1,\"kids\":[{}]}"));
    free(g);
}

/* enum and const of numbers, booleans, null and strings; allOf of one schema; nullable enums */
static void enumerated_values(void) {
    tern_json_schema *g = value_schema("{\"enum\": [1, 2.5, true, \"x\", null, -3, 12]}");
    static const char *const taken[] = {"1", "2.5", "true", "\"x\"", "null", "-3", "12"};
    static const char *const refused[] = {"2", "false", "\"y\"", "1.0",    "123",
                                          "-", "2.50",  "3",     "\"xx\"", "nul"};
    for (size_t i = 0; g && i < sizeof taken / sizeof *taken; i++)
        if (value_verdict(g, taken[i], true) != 1)
            harness_fail(__FILE__, __LINE__, "enumerated %s refused", taken[i]);
    for (size_t i = 0; g && i < sizeof refused / sizeof *refused; i++)
        if (value_verdict(g, refused[i], true) != -1)
            harness_fail(__FILE__, __LINE__, "%s taken as one of the enumerated values", refused[i]);
    CHECK_INT(0, g ? value_verdict(g, "1", false) : -2); /* 1 or 12 */
    free(g);
    g = value_schema("{\"type\": \"integer\", \"enum\": [1, 2.5, \"x\", 4.0]}");
    CHECK_INT(1, g ? value_verdict(g, "1", true) : -2);
    CHECK_INT(1, g ? value_verdict(g, "4", true) : -2);
    CHECK_INT(-1, g ? value_verdict(g, "2.5", true) : -2);
    CHECK_INT(-1, g ? value_verdict(g, "\"x\"", true) : -2);
    free(g);
    g = value_schema("{\"allOf\": [{\"const\": false}], \"description\": \"no\"}");
    CHECK_INT(1, g ? value_verdict(g, "false", true) : -2);
    CHECK_INT(-1, g ? value_verdict(g, "true", true) : -2);
    free(g);
    g = value_schema("{\"enum\": [0.1, 1e+300], \"nullable\": true}");
    CHECK_INT(1, g ? value_verdict(g, "0.1", true) : -2);
    CHECK_INT(1, g ? value_verdict(g, "1e+300", true) : -2);
    CHECK_INT(1, g ? value_verdict(g, "null", true) : -2);
    CHECK_INT(-1, g ? value_verdict(g, "0.10", true) : -2);
    free(g);
}

/* A JSON number without an exponent (integers: without a fraction either) that reads as a value
 * within [lo, hi] (ends exclusive as asked); the independent oracle for bounded numbers */
static bool number_oracle(const char *t, bool integer, int lo, bool has_lo, bool lo_ex, int hi, bool has_hi,
                          bool hi_ex) {
    const char *p = t + (*t == '-');
    if (!(*p >= '0' && *p <= '9') || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '.') {
        if (integer || !(p[1] >= '0' && p[1] <= '9'))
            return false;
        for (p++; *p >= '0' && *p <= '9'; p++) {
        }
    }
    if (*p)
        return false;
    const double v = strtod(t, NULL);
    return (!has_lo || v > lo || (v == lo && !lo_ex)) && (!has_hi || v < hi || (v == hi && !hi_ex));
}

/* minimum, maximum and the exclusive ones on integers and numbers, against the oracle on random
 * texts: the verdict on each whole value; every prefix the recognizer takes has a completion the
 * oracle takes (found by a search the recognizer guides), and the first it refuses has none of up
 * to three more characters */
static void bounded_numbers(void) {
    static const char ALPHA[] = "0123456789.-";
    uint64_t rng = 11;
    int taken = 0, checked = 0;
    for (int round = 0; round < 300; round++) {
        const bool integer = round % 3 == 0, has_lo = test_rand_u64(&rng) % 4 != 0,
                   has_hi = test_rand_u64(&rng) % 4 != 0;
        int lo = (int)(test_rand_u64(&rng) % 41) - 20, hi = lo + (int)(test_rand_u64(&rng) % 25);
        const bool lo_ex = !integer && test_rand_u64(&rng) % 2, hi_ex = !integer && test_rand_u64(&rng) % 2;
        if (lo == hi && (lo_ex || hi_ex))
            hi++;
        char schema[256];
        int k = snprintf(schema, sizeof schema, "{\"type\": \"%s\"", integer ? "integer" : "number");
        if (has_lo)
            k += snprintf(schema + k, sizeof schema - k, ", \"%s\": %d",
                          lo_ex ? "exclusiveMinimum" : "minimum", lo);
        if (has_hi)
            k += snprintf(schema + k, sizeof schema - k, ", \"%s\": %d",
                          hi_ex ? "exclusiveMaximum" : "maximum", hi);
        snprintf(schema + k, sizeof schema - k, "}");
        tern_json_schema *g = value_schema(schema);
        for (int t = 0; g && t < 40; t++) {
            char text[16];
            if (t % 2) { /* a random number near the bounds */
                const int whole = (int)(test_rand_u64(&rng) % 61) - 30;
                k = snprintf(text, sizeof text, "%d", whole);
                if (test_rand_u64(&rng) % 2)
                    snprintf(text + k, sizeof text - k, ".%d", (int)(test_rand_u64(&rng) % 100));
            } else { /* random characters */
                const int len = 1 + (int)(test_rand_u64(&rng) % 6);
                for (k = 0; k < len; k++)
                    text[k] = ALPHA[test_rand_u64(&rng) % 12];
                text[k] = 0;
            }
            const bool want = number_oracle(text, integer, lo, has_lo, lo_ex, hi, has_hi, hi_ex);
            taken += want;
            if ((value_verdict(g, text, true) == 1) != want)
                harness_fail(__FILE__, __LINE__, "%s under %s: verdict %d", text, schema,
                             value_verdict(g, text, true));
            for (size_t n = 1; n <= strlen(text); n++) {
                char prefix[24];
                snprintf(prefix, sizeof prefix, "%.*s", (int)n, text);
                checked++;
                if (value_verdict(g, prefix, false) == 0) { /* a completion: depth-first, at most 4 more */
                    char stack[24];
                    bool found = false;
                    int depth = 0;
                    int choice[5] = {0};
                    strcpy(stack, prefix);
                    while (!found && depth >= 0) {
                        if (number_oracle(stack, integer, lo, has_lo, lo_ex, hi, has_hi, hi_ex)) {
                            found = true;
                            break;
                        }
                        if (depth < 4 && choice[depth] < 12) {
                            const size_t at = strlen(stack);
                            stack[at] = ALPHA[choice[depth]++], stack[at + 1] = 0;
                            if (value_verdict(g, stack, false) == 0) {
                                choice[++depth] = 0;
                                continue;
                            }
                            stack[at] = 0;
                            continue;
                        }
                        stack[strlen(stack) - (depth > 0)] = 0;
                        depth--;
                    }
                    if (!found)
                        harness_fail(__FILE__, __LINE__, "%s under %s: taken, and no completion found",
                                     prefix, schema);
                    continue;
                }
                for (int a = 0; a < 12 * 12 * 12 + 12 * 12 + 12 + 1; a++) { /* refused: no completion */
                    char more[32];
                    int left = a, len = 0;
                    const int digits = a == 0 ? 0 : a <= 12 ? 1 : a <= 156 ? 2 : 3;
                    left -= digits == 0 ? 0 : digits == 1 ? 1 : digits == 2 ? 13 : 157;
                    k = snprintf(more, sizeof more, "%s", prefix);
                    for (len = 0; len < digits; len++, left /= 12)
                        more[k++] = ALPHA[left % 12];
                    more[k] = 0;
                    if (number_oracle(more, integer, lo, has_lo, lo_ex, hi, has_hi, hi_ex))
                        harness_fail(__FILE__, __LINE__, "%s under %s: refused, but %s lies within", prefix,
                                     schema, more);
                }
                break;
            }
        }
        free(g);
    }
    CHECK(taken > 1000);
    CHECK(checked > 10000);
    /* integer parts past every bound (the recognizer stops counting there) */
    tern_json_schema *g = value_schema("{\"type\": \"integer\", \"minimum\": -1000000000000000}");
    CHECK_INT(1, g ? value_verdict(g, "123456789012345678901234567890", true) : -2);
    CHECK_INT(1, g ? value_verdict(g, "-1000000000000000", true) : -2);
    CHECK_INT(-1, g ? value_verdict(g, "-1000000000000001", true) : -2);
    free(g);
    g = value_schema("{\"type\": \"number\", \"maximum\": 1000000000000000}");
    CHECK_INT(1, g ? value_verdict(g, "1000000000000000.0", true) : -2);
    CHECK_INT(-1, g ? value_verdict(g, "1000000000000000.5", true) : -2);
    CHECK_INT(-1, g ? value_verdict(g, "99999999999999999999999", true) : -2);
    CHECK_INT(1, g ? value_verdict(g, "-99999999999999999999999.5", true) : -2);
    CHECK_INT(-1, g ? value_verdict(g, "1e3", true) : -2); /* no exponents within bounds */
    free(g);
    /* draft 4's boolean exclusive bounds; an integer's fractional bounds, rounded inward */
    g = value_schema("{\"type\": \"integer\", \"minimum\": 5, \"exclusiveMinimum\": true, \"maximum\": 9}");
    CHECK_INT(-1, g ? value_verdict(g, "5", false) : -2);
    CHECK_INT(1, g ? value_verdict(g, "6", true) : -2);
    free(g);
    g = value_schema("{\"type\": \"number\", \"maximum\": 2, \"exclusiveMaximum\": true}");
    CHECK_INT(1, g ? value_verdict(g, "1.99", true) : -2);
    CHECK_INT(-1, g ? value_verdict(g, "2", true) : -2);
    free(g);
    g = value_schema("{\"type\": \"integer\", \"exclusiveMinimum\": 0.5, \"maximum\": 2.5}");
    CHECK_INT(-1, g ? value_verdict(g, "0", true) : -2);
    CHECK_INT(1, g ? value_verdict(g, "1", true) : -2);
    CHECK_INT(1, g ? value_verdict(g, "2", true) : -2);
    CHECK_INT(-1, g ? value_verdict(g, "3", true) : -2);
    free(g);
}

/* The shortest text (breadth first over states, each reached once) that closes the string the value
 * text {"v":PREFIX leaves open under g, written without its quotes to done; false when none of up
 * to 64 states reaches one. Bytes tried: printable ASCII and two characters past it. */
static bool string_completion(const tern_json_schema *g, const char *prefix, char *done, size_t size) {
    enum { MAX = 64 };
    struct tern_json_state *q = malloc(MAX * sizeof *q);
    char(*text)[64] = calloc(MAX, 64);
    int n = 0;
    bool found = false;
    char head[256];
    snprintf(head, sizeof head, "{\"v\":%s", prefix);
    tern_json_start(&q[0], g);
    if (q && text && tern_json_feed(&q[0], head, strlen(head)))
        n = 1;
    for (int at = 0; at < n && !found; at++) {
        struct tern_json_state s = q[at];
        if (tern_json_feed(&s, "\"}", 2) && tern_json_complete(&s)) {
            snprintf(done, size, "%s%s", prefix + 1, text[at]);
            found = true;
            break;
        }
        static const char *const wide[] = {"\xc3\xa9", "\xe6\x97\xa5"};
        for (int b = 0x20; b < 0x7f + 2 && n < MAX; b++) {
            const char *piece = b < 0x7f ? (char[]){(char)b, 0} : wide[b - 0x7f];
            s = q[at];
            if (b == '"' || b == '\\' || strlen(text[at]) + 4 >= 64 ||
                !tern_json_feed(&s, piece, strlen(piece)))
                continue;
            bool seen = false;
            for (int k = 0; k < n && !seen; k++)
                seen = tern_json_same(&q[k], &s);
            if (!seen) {
                q[n] = s;
                memcpy(text[n], text[at], 64);
                strcat(text[n++], piece);
            }
        }
    }
    free(q);
    free(text);
    return found;
}

/* Whether PCRE2 finds pattern in s (JSON Schema's search: unanchored unless the pattern says; \u and \x
 * as ECMA-262 writes them) */
static bool pcre2_finds(const char *pattern, const char *s) {
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_ALT_BSUX, &err, &off, NULL);
    if (!re)
        return false;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    const int rc = pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rc >= 0;
}

/* "pattern" and "format" against PCRE2 on random strings: the verdict on each whole string; every
 * prefix taken has a completion PCRE2 takes (found by a search the recognizer guides), the first
 * refused has none of up to two more pieces */
static void patterns(void) {
    static const char *const res[] = {
        "^\\d{3}-\\d{4}$",
        "^[A-Z]{2,3}$",
        "ab",
        "^a(b|c)*d$",
        "^[^,]+$",
        "x+y?z*",
        "^(?:\\+?1[- ]?)?\\(?\\d{3}\\)?[- ]?\\d{3}$",
        "^\xc3\xa9+$",
        ".a.",
        "^[\\w.-]+@[\\w-]+\\.[a-z]{2,}$",
        "^$",
        "colou?r",
        "^\\x41\\u00e9$",
        "^[a-c]{2}b?$",
        "^.{2,4}$",
        "(ab){2,}",
        "^[-+]?\\d+(\\.\\d+)?$",
        "^\\S+$",
        "\\d\\s\\d",
        "a{2}b{0,1}$",
        "^[^a-z]*$",
        "\\W",
    };
    static const char *const pieces[] = {"a", "b", "c", "d", "r", "o", "u", "l",        "x",
                                         "y", "z", "A", "Z", "0", "1", "5", "-",        ".",
                                         "@", "(", ")", "+", " ", ",", "_", "\xc3\xa9", "\xe6\x97\xa5"};
    const int n_pieces = (int)(sizeof pieces / sizeof *pieces);
    uint64_t rng = 17;
    int matched = 0;
    for (size_t i = 0; i < sizeof res / sizeof *res; i++) {
        json_t *pj = json_pack("{s:s,s:s}", "type", "string", "pattern", res[i]);
        char *ps = json_dumps(pj, JSON_COMPACT);
        json_decref(pj);
        tern_json_schema *g = value_schema(ps);
        const bool ascii_only = strstr(res[i], "\\S") != NULL; /* ours: \S takes ASCII alone */
        for (int t = 0; g && t < 120; t++) {
            char text[128] = "\"", str[128] = "";
            for (int k = (int)(test_rand_u64(&rng) % 9); k > 0; k--)
                strcat(str, pieces[test_rand_u64(&rng) % (size_t)(ascii_only ? n_pieces - 2 : n_pieces)]);
            strcat(text, str);
            const bool want = pcre2_finds(res[i], str);
            matched += want;
            strcat(text, "\"");
            if ((value_verdict(g, text, true) == 1) != want)
                harness_fail(__FILE__, __LINE__, "'%s' under %s: ours %d, PCRE2 %d", str, res[i],
                             value_verdict(g, text, true), want);
            for (size_t n = 1; n <= strlen(text) - 1; n++) {
                char prefix[160];
                snprintf(prefix, sizeof prefix, "%.*s", (int)n, text);
                if (((unsigned char)text[n] & 0xc0) == 0x80) /* within a character */
                    continue;
                if (value_verdict(g, prefix, false) ==
                    0) { /* a completion: the shortest the recognizer takes */
                    char done[256];
                    if (!string_completion(g, prefix, done, sizeof done))
                        harness_fail(__FILE__, __LINE__, "%s under %s: taken, and no completion found",
                                     prefix, res[i]);
                    else if (!pcre2_finds(res[i], done))
                        harness_fail(__FILE__, __LINE__, "'%s' closed under %s, PCRE2 refuses", done, res[i]);
                    continue;
                }
                for (int a = 0; a < n_pieces * n_pieces + n_pieces + 1; a++) { /* refused: no completion */
                    char more[200];
                    const int digits = a == 0 ? 0 : a <= n_pieces ? 1 : 2;
                    const int left = a - (digits == 0 ? 0 : digits == 1 ? 1 : n_pieces + 1);
                    snprintf(more, sizeof more, "%s%s%s", prefix + 1, digits ? pieces[left % n_pieces] : "",
                             digits == 2 ? pieces[left / n_pieces] : "");
                    if (pcre2_finds(res[i], more))
                        harness_fail(__FILE__, __LINE__, "%s under %s: refused, but '%s' matches", prefix,
                                     res[i], more);
                }
                break;
            }
        }
        free(ps);
        free(g);
    }
    CHECK(matched > 300);
    /* formats: a few texts each way */
    static const struct {
        const char *format, *text;
        int want;
    } formats[] = {
        {"date-time", "2024-02-29T23:59:60.123+05:30", 1},
        {"date-time", "2024-13-01T00:00:00Z", -1},
        {"date-time", "2024-01-01 00:00:00Z", -1},
        {"date", "1999-12-31", 1},
        {"time", "12:00:00Z", 1},
        {"time", "24:00:00Z", -1},
        {"uuid", "123e4567-e89b-12d3-a456-426614174000", 1},
        {"uuid", "123e4567e89b12d3a456426614174000", -1},
        {"email", "a.b+c@example.co", 1},
        {"email", "a@b", -1},
        {"ipv4", "192.168.0.255", 1},
        {"ipv4", "256.1.1.1", -1},
        {"uri", "https://example.com/a?b=c", 1},
        {"uri", "no scheme", -1},
    };
    for (size_t i = 0; i < sizeof formats / sizeof *formats; i++) {
        char schema[96], text[96];
        snprintf(schema, sizeof schema, "{\"type\": \"string\", \"format\": \"%s\"}", formats[i].format);
        snprintf(text, sizeof text, "\"%s\"", formats[i].text);
        tern_json_schema *g = value_schema(schema);
        if (g && value_verdict(g, text, true) != formats[i].want)
            harness_fail(__FILE__, __LINE__, "format %s, %s: verdict %d", formats[i].format, text,
                         value_verdict(g, text, true));
        free(g);
    }
    /* ECMA's '.' leaves line terminators out: U+2028 and U+2029 too */
    tern_json_schema *dot = value_schema("{\"pattern\": \"^.$\"}");
    CHECK_INT(1, dot ? value_verdict(dot, "\"\xe2\x80\xa7\"", true) : -2);
    CHECK_INT(-1, dot ? value_verdict(dot, "\"\xe2\x80\xa8\"", true) : -2);
    CHECK_INT(-1, dot ? value_verdict(dot, "\"\xe2\x80\xa9\"", true) : -2);
    CHECK_INT(1, dot ? value_verdict(dot, "\"\xe2\x81\xa8\"", true) : -2);
    free(dot);
    /* an enum under a pattern keeps the strings that match */
    tern_json_schema *g = value_schema("{\"enum\": [\"ab\", \"cd\", \"ax\"], \"pattern\": \"^a\"}");
    CHECK_INT(1, g ? value_verdict(g, "\"ax\"", true) : -2);
    CHECK_INT(-1, g ? value_verdict(g, "\"cd\"", true) : -2);
    free(g);
}

/* anyOf and oneOf of alternatives that begin alike, followed side by side: unions of objects told
 * apart by a const key (pydantic's and zod's discriminated unions) or by their keys, integer or
 * number, arrays of either kind, strings of two kinds; ten alternatives past the readings' room */
static void unions(void) {
    tern_json_schema *g = value_schema("{\"oneOf\": [{\"type\": \"object\", \"properties\": {\"kind\": "
                                       "{\"const\": \"cat\"}, \"meows\": {\"type\": "
                                       "\"integer\"}}, \"required\": [\"kind\", \"meows\"], "
                                       "\"additionalProperties\": false}, {\"type\": \"object\", "
                                       "\"properties\": {\"kind\": {\"const\": \"dog\"}, \"barks\": "
                                       "{\"type\": \"boolean\"}}, \"required\": [\"kind\", "
                                       "\"barks\"]}, {\"type\": \"object\", \"properties\": {\"name\": "
                                       "{\"type\": \"string\"}}}], \"discriminator\": "
                                       "{\"propertyName\": \"kind\"}}");
    static const char *const taken[] = {"{\"kind\":\"cat\",\"meows\":3}", "{\"kind\":\"dog\",\"barks\":true}",
                                        "{\"name\":\"x\"}", "{}"};
    static const char *const refused[] = {"{\"kind\":\"cat\",\"barks\":true}",
                                          "{\"kind\":\"cow\",\"meows\":1}", "{\"kind\":\"dog\",\"meows\":1}",
                                          "{\"kind\":\"cat\"}", "[]"};
    for (size_t i = 0; g && i < sizeof taken / sizeof *taken; i++)
        if (value_verdict(g, taken[i], true) != 1)
            harness_fail(__FILE__, __LINE__, "union: %s refused", taken[i]);
    for (size_t i = 0; g && i < sizeof refused / sizeof *refused; i++)
        if (value_verdict(g, refused[i], true) != -1)
            harness_fail(__FILE__, __LINE__, "union: %s taken", refused[i]);
    free(g);
    g = value_schema(
        "{\"anyOf\": [{\"type\": \"integer\", \"maximum\": 5}, {\"type\": \"number\", \"minimum\": 10}]}");
    CHECK_INT(1, g ? value_verdict(g, "3", true) : -2);
    CHECK_INT(1, g ? value_verdict(g, "10.5", true) : -2);
    CHECK_INT(-1, g ? value_verdict(g, "7", true) : -2);
    CHECK_INT(-1, g ? value_verdict(g, "4.5", true) : -2);
    free(g);
    /* readings that meet again are one: a list of many such items keeps both kinds open */
    g = value_schema("{\"type\": \"array\", \"items\": {\"anyOf\": [{\"type\": \"integer\", \"maximum\": 5}, "
                     "{\"type\": \"number\", \"minimum\": 0}]}}");
    CHECK_INT(1, g ? value_verdict(g, "[1,1,1,1,1,1,1,1,1,1,1,1,10.5]", true) : -2);
    free(g);
    g = value_schema(
        "{\"anyOf\": [{\"type\": \"array\", \"items\": {\"type\": \"integer\"}}, {\"type\": \"array\", "
        "\"items\": {\"type\": \"string\"}}, {\"type\": \"string\", \"format\": \"date\"}, {\"enum\": "
        "[\"now\"]}]}");
    CHECK_INT(1, g ? value_verdict(g, "[1,2]", true) : -2);
    CHECK_INT(1, g ? value_verdict(g, "[\"a\"]", true) : -2);
    CHECK_INT(1, g ? value_verdict(g, "[]", true) : -2);
    CHECK_INT(-1, g ? value_verdict(g, "[1,\"a\"]", true) : -2);
    CHECK_INT(1, g ? value_verdict(g, "\"2024-05-06\"", true) : -2);
    CHECK_INT(1, g ? value_verdict(g, "\"now\"", true) : -2);
    CHECK_INT(-1, g ? value_verdict(g, "\"later\"", true) : -2);
    free(g);
    /* ten objects alike up to their last key: the first eight are followed */
    char schema[2048] = "{\"anyOf\": [";
    for (int i = 0; i < 10; i++)
        snprintf(
            schema + strlen(schema), sizeof schema - strlen(schema),
            "%s{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}, \"k%d\": {\"type\": "
            "\"integer\"}}, \"required\": [\"a\", \"k%d\"]}",
            i ? ", " : "", i, i);
    strcat(schema, "]}");
    g = value_schema(schema);
    for (int i = 0; g && i < 10; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"a\":1,\"k%d\":2}", i);
        CHECK_INT(i < TERN_JSON_MAX_BRANCHES ? 1 : -1, value_verdict(g, text, true));
    }
    free(g);
}

/* minLength and maxLength, against jansson's reading of random strings (ASCII, two- and four-byte
 * UTF-8, escapes; surrogate escapes are refused in bounded strings) */
static void bounded_strings(void) {
    static const char *const pieces[] = {
        "a", "\xc3\xa9", "\xf0\x9f\x98\x80", "\\n", "\\u00e9", "\\ud83d\\ude00", "\\\""};
    uint64_t rng = 3;
    for (int round = 0; round < 40; round++) {
        const int lo = (int)(test_rand_u64(&rng) % 4), hi = lo + (int)(test_rand_u64(&rng) % 4);
        char schema[128];
        snprintf(schema, sizeof schema, "{\"type\": \"string\", \"minLength\": %d, \"maxLength\": %d}", lo,
                 hi);
        tern_json_schema *g = value_schema(schema);
        for (int t = 0; g && t < 60; t++) {
            char text[128] = "\"";
            bool surrogate = false;
            const int n = (int)(test_rand_u64(&rng) % 8);
            for (int i = 0; i < n; i++) {
                const char *piece = pieces[test_rand_u64(&rng) % 7];
                surrogate |= piece[1] == 'u' && piece[2] == 'd';
                strcat(text, piece);
            }
            strcat(text, "\"");
            char whole[160];
            snprintf(whole, sizeof whole, "{\"v\":%s}", text);
            json_t *j = json_loads(whole, 0, NULL);
            const size_t len = j ? code_points(json_string_value(json_object_get(j, "v"))) : 0;
            json_decref(j);
            const bool want = j && !surrogate && len >= (size_t)lo && len <= (size_t)hi;
            if ((value_verdict(g, text, true) == 1) != want)
                harness_fail(__FILE__, __LINE__, "%s under %s: verdict %d", text, schema,
                             value_verdict(g, text, true));
            /* a taken prefix completes: the string closes once it has minLength characters */
            for (size_t k = 1; k < strlen(text); k++) {
                char prefix[192];
                snprintf(prefix, sizeof prefix, "%.*s", (int)k, text);
                if (value_verdict(g, prefix, false) != 0)
                    break;
                bool closed = false;
                for (int pad = 0; pad <= lo && !closed; pad++) {
                    char done[200];
                    snprintf(done, sizeof done, "%s%.*s\"", prefix, pad, "aaaa");
                    closed = value_verdict(g, done, true) == 1;
                }
                if (!closed && prefix[k - 1] != '\\' && !strstr(prefix + (k > 5 ? k - 5 : 0), "\\u") &&
                    ((unsigned char)text[k] & 0xc0) != 0x80) /* not within an escape or a character */
                    harness_fail(__FILE__, __LINE__, "%s under %s: taken, but cannot close", prefix, schema);
            }
        }
        free(g);
    }
}

/* minProperties and maxProperties, on five listed keys (random required ones) and on any keys,
 * against an oracle over every subset of the keys: the verdict on each object, and on each prefix
 * that stops after k keys (with or without a comma after them) whether an object the oracle takes
 * begins so */
static void property_counts(void) {
    uint64_t rng = 23;
    int checked = 0;
    for (int round = 0; round < 200; round++) {
        const int req = (int)(test_rand_u64(&rng) % 32), lo = (int)(test_rand_u64(&rng) % 6),
                  hi = lo + (int)(test_rand_u64(&rng) % (7 - lo)); /* hi 6: no maxProperties */
        char schema[512] = "{\"type\": \"object\", \"properties\": {";
        for (int k = 0; k < 5; k++)
            snprintf(schema + strlen(schema), sizeof schema - strlen(schema), "%s\"p%d\": {}", k ? ", " : "",
                     k);
        strcat(schema, "}, \"required\": [");
        for (int k = 0, first = 1; k < 5; k++)
            if (req >> k & 1)
                snprintf(schema + strlen(schema), sizeof schema - strlen(schema), "%s\"p%d\"",
                         first ? "" : ", ", k),
                    first = 0;
        snprintf(schema + strlen(schema), sizeof schema - strlen(schema), "], \"minProperties\": %d%s%.0d}",
                 lo, hi < 6 ? ", \"maxProperties\": " : "", hi < 6 ? hi : 0);
        if (hi < 6 && hi == 0)
            strcpy(schema + strlen(schema) - 1, "0}");
        char why[256] = "";
        tern_json_schema *g = compile(schema, why, sizeof why);
        if (!g) { /* only where the required keys pass maxProperties */
            if (__builtin_popcount((unsigned)req) <= hi || !strstr(why, "maxProperties"))
                harness_fail(__FILE__, __LINE__, "%s refused: %s", schema, why);
            continue;
        }
        bool valid[32];
        for (int set = 0; set < 32; set++) {
            const int n = __builtin_popcount((unsigned)set);
            valid[set] = (set & req) == req && n >= lo && (hi == 6 || n <= hi);
        }
        for (int set = 0; set < 32; set++) {
            char text[128] = "{";
            int keys[5], n = 0;
            for (int k = 0; k < 5; k++)
                if (set >> k & 1)
                    keys[n++] = k;
            for (int i = 0; i <= n; i++) { /* the prefix of the first i keys, then with a comma */
                char prefix[160];
                for (int comma = 0; comma < 2 && (i || !comma); comma++) {
                    snprintf(prefix, sizeof prefix, "%s%s", text, comma ? "," : "");
                    bool open = false; /* a valid object begins with these i keys (and has more) */
                    for (int t = 0; t < 32 && !open; t++) {
                        int m = 0, ok = 1;
                        for (int k = 0; k < 5 && ok; k++)
                            if (t >> k & 1)
                                ok = m >= i || keys[m] == k, m++;
                        open = valid[t] && ok && m >= i + comma &&
                               (t & ((1 << (i ? keys[i - 1] + 1 : 0)) - 1)) ==
                                   (set & ((1 << (i ? keys[i - 1] + 1 : 0)) - 1));
                    }
                    checked++;
                    if ((schema_verdict(g, prefix) == 0) != open)
                        harness_fail(__FILE__, __LINE__, "%s under %s: verdict %d, oracle %d", prefix, schema,
                                     schema_verdict(g, prefix), open);
                }
                if (i < n)
                    snprintf(text + strlen(text), sizeof text - strlen(text), "%s\"p%d\":1", i ? "," : "",
                             keys[i]);
            }
            strcat(text, "}");
            if ((schema_verdict(g, text) == 1) != valid[set])
                harness_fail(__FILE__, __LINE__, "%s under %s: verdict %d", text, schema,
                             schema_verdict(g, text));
        }
        free(g);
    }
    CHECK(checked > 10000);
    /* any keys: between two and three */
    tern_json_schema *g = value_schema("{\"type\": \"object\", \"minProperties\": 2, \"maxProperties\": 3}");
    CHECK_INT(-1, g ? value_verdict(g, "{\"a\":1}", true) : -2);
    CHECK_INT(1, g ? value_verdict(g, "{\"a\":1,\"b\":2}", true) : -2);
    CHECK_INT(1, g ? value_verdict(g, "{\"a\":1,\"b\":2,\"c\":3}", true) : -2);
    CHECK_INT(-1, g ? value_verdict(g, "{\"a\":1,\"b\":2,\"c\":3,", false) : -2);
    free(g);
}

int main(void) {
    RUN(schemas);
    RUN(enumerated_values);
    RUN(bounded_numbers);
    RUN(bounded_strings);
    RUN(patterns);
    RUN(unions);
    RUN(property_counts);
    return harness_finish();
}
