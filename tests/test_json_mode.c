/* JSON mode (host/generate/json_mode.c): the recognizer against hand-picked documents and against
 * jansson on random objects and their mutations; the token mask and the sampler on the
 * conformance vectors' vocabulary, whose generations jansson must parse whenever they end. */
#include <jansson.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "host/generate/json_mode.h"
#include "host/generate/sampler.h"
#include "host/gguf/gguf.h"
#include "host/model/maker.h"

static tern_gguf *file;
static tern_tokenizer *tok;

/* 1: a whole object, 0: a prefix of one, -1: neither; fed a byte at a time */
static int verdict(const char *text, size_t n) {
    struct tern_json_state st;
    tern_json_start(&st, NULL);
    for (size_t i = 0; i < n; i++)
        if (!tern_json_feed(&st, text + i, 1))
            return -1;
    return tern_json_complete(&st) ? 1 : 0;
}

static void documents(void) {
    static const char *const whole[] = {
        "{}",
        "{\"a\":1}",
        "{\"a\": [1, -2.5e+3, 0, 0.25, 1E9, -0, true, false, null, \"x\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\"],\n"
        "  \"b\": {\"c\": {}, \"d\": []}, \"\": \"caf\xc3\xa9\"}",
        "{\"k\":{\"k\":{\"k\":[[[]]]}}}",
    };
    for (size_t i = 0; i < sizeof whole / sizeof *whole; i++) {
        CHECK_INT(1, verdict(whole[i], strlen(whole[i])));
        for (size_t n = 0; n < strlen(whole[i]); n++)
            CHECK_INT(0, verdict(whole[i], n));
    }
    static const char *const broken[] = {
        "[]",
        "\"a\"",
        "1",
        " {}",
        "\n{}",
        "{\"a\"}",
        "{\"a\":01}",
        "{\"a\":1,}",
        "{,}",
        "{\"a\":tru}",
        "{\"a\":-}",
        "{\"a\":1.}",
        "{\"a\":1e}",
        "{\"a\":\"\x01\"}",
        "{\"a\":\"\\q\"}",
        "{\"a\":\"\\u12G4\"}",
        "{} ",
        "{}x",
        "{\"a\":1]",
        "{\"a\":[1}",
        "{a:1}",
        "{\"a\" 1}",
        "{\"a\":.5}",
        "{\"a\":+1}",
        "{\"a\":nul}",
        "{\"a\":[,]}",
        "{{}}",
        "{\"a\":\"\n\"}",
    };
    for (size_t i = 0; i < sizeof broken / sizeof *broken; i++) {
        const int v = verdict(broken[i], strlen(broken[i]));
        if (v != -1)
            harness_fail(__FILE__, __LINE__, "'%s' was taken (%d)", broken[i], v);
    }
    /* a run of whitespace is bounded, and so is the nesting */
    char text[512] = "{";
    memset(text + 1, ' ', TERN_JSON_MAX_SPACE);
    strcpy(text + 1 + TERN_JSON_MAX_SPACE, "}");
    CHECK_INT(1, verdict(text, strlen(text)));
    text[1 + TERN_JSON_MAX_SPACE] = ' ';
    strcpy(text + 2 + TERN_JSON_MAX_SPACE, "}");
    CHECK_INT(-1, verdict(text, strlen(text)));
    size_t n = 0;
    text[n++] = '{';
    for (int d = 1; d < TERN_JSON_MAX_DEPTH; d++)
        memcpy(text + n, "\"\":{", 4), n += 4;
    CHECK_INT(0, verdict(text, n));
    memcpy(text + n, "\"\":[", 4);
    CHECK_INT(-1, verdict(text, n + 4));
}

/* A random JSON value of ASCII strings (jansson writes no \u escapes but for control bytes). */
static json_t *random_value(uint64_t *rng, int depth) {
    const int kind = (int)(test_rand_u64(rng) % (depth > 3 ? 5 : 7));
    switch (kind) {
    case 0:
        return json_integer((json_int_t)(test_rand_u64(rng) % 2001) - 1000);
    case 1:
        return json_real(test_rand_normal(rng) * 1e3);
    case 2: {
        char s[12];
        const int n = (int)(test_rand_u64(rng) % 11);
        for (int i = 0; i < n; i++)
            s[i] = (char)(1 + test_rand_u64(rng) % 126); /* control bytes and quotes included */
        s[n] = 0;
        return json_string(s);
    }
    case 3:
        return json_boolean(test_rand_u64(rng) & 1);
    case 4:
        return json_null();
    case 5: {
        json_t *a = json_array();
        for (int i = (int)(test_rand_u64(rng) % 4); i > 0; i--)
            json_array_append_new(a, random_value(rng, depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (int i = (int)(test_rand_u64(rng) % 4); i > 0; i--) {
            char key[8];
            snprintf(key, sizeof key, "k%d", (int)(test_rand_u64(rng) % 100));
            json_object_set_new(o, key, random_value(rng, depth + 1));
        }
        return o;
    }
    }
}

/* Whether jansson reads an object; one it refuses only for a number out of a double's range
 * ("1e999", which a mutation makes of a long fraction) counts, as JSON's grammar takes it. */
static bool jansson_object(const char *text, size_t n) {
    json_error_t err;
    json_t *v = json_loadb(text, n, JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &err);
    const bool ok = json_is_object(v) || (!v && strstr(err.text, "overflow"));
    json_decref(v);
    return ok;
}

/* Random objects, written compact and indented, are whole objects; a mutation of one byte is a
 * whole object exactly when jansson reads one without whitespace around it (ours begins and ends
 * with the object). */
static void against_jansson(void) {
    uint64_t rng = 7;
    static const char alphabet[] = "{}[]:,\"\\ 0123456789.eE+-truefalsnlx\n";
    int mutations = 0, agreed_whole = 0;
    for (int it = 0; it < 3000; it++) {
        json_t *o = json_object();
        for (int i = (int)(test_rand_u64(&rng) % 5); i > 0; i--) {
            char key[8];
            snprintf(key, sizeof key, "k%d", i);
            json_object_set_new(o, key, random_value(&rng, 1));
        }
        char *text = json_dumps(o, it % 2 ? JSON_INDENT(2) : JSON_COMPACT);
        json_decref(o);
        const size_t n = strlen(text);
        if (verdict(text, n) != 1)
            harness_fail(__FILE__, __LINE__, "jansson's object not taken: %s", text);
        /* one byte replaced, inserted or deleted */
        char *m = malloc(n + 2);
        const size_t at = test_rand_u64(&rng) % n;
        const int op = (int)(test_rand_u64(&rng) % 3);
        const char c = alphabet[test_rand_u64(&rng) % (sizeof alphabet - 1)];
        size_t k = 0;
        for (size_t i = 0; i <= n; i++) {
            if (i == at && op == 1)
                m[k++] = c;
            if (i == n)
                break;
            if (i == at && op == 2)
                continue;
            m[k++] = i == at && op == 0 ? c : text[i];
        }
        const bool ours = verdict(m, k) == 1, theirs = jansson_object(m, k) && m[0] != ' ' && m[0] != '\n' &&
                                                       m[k - 1] != ' ' && m[k - 1] != '\n';
        if (ours != theirs)
            harness_fail(__FILE__, __LINE__, "'%.*s': ours %d, jansson %d", (int)k, m, ours, theirs);
        mutations++;
        agreed_whole += ours;
        free(m);
        free(text);
    }
    CHECK(mutations == 3000 && agreed_whole > 100 && agreed_whole < 2900);
}

/* UTF-8 in strings and keys: random runs of valid characters, overlong forms, surrogates, code
 * points past U+10FFFF, stray and missing continuation bytes; ours agrees with jansson's reading
 * (RFC 3629) on each, byte by byte and whole. */
static void utf8_text(void) {
    static const char *const pieces[] = {"a",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80",
                                         "\xf4\x8f\xbf\xbf",
                                         "\xc0\x80",
                                         "\xc1\xbf",
                                         "\xe0\x80\x80",
                                         "\xe0\x9f\xbf",
                                         "\xed\xa0\x80",
                                         "\xed\x9f\xbf",
                                         "\xf0\x8f\xbf\xbf",
                                         "\xf4\x90\x80\x80",
                                         "\xf5\x80",
                                         "\x80",
                                         "\xbf",
                                         "\xc3",
                                         "\xe2\x82",
                                         "\xf0\x9f\x98",
                                         "\xff"};
    const size_t n_pieces = sizeof pieces / sizeof *pieces;
    uint64_t rng = 13;
    int valid = 0;
    for (int it = 0; it < 3000; it++) {
        char run[64] = "";
        for (int i = (int)(test_rand_u64(&rng) % 4); i >= 0; i--)
            strcat(run, pieces[test_rand_u64(&rng) % (it % 2 ? n_pieces : 5)]);
        char text[96];
        snprintf(text, sizeof text, it % 3 ? "{\"k\":\"%s\"}" : "{\"%s\":1}", run);
        const bool theirs = jansson_object(text, strlen(text));
        valid += theirs;
        if ((verdict(text, strlen(text)) == 1) != theirs)
            harness_fail(__FILE__, __LINE__, "'%s': ours %d, jansson %d", text, verdict(text, strlen(text)),
                         theirs);
    }
    CHECK(valid > 1000 && valid < 2900);
}

/* Generations on the conformance vocabulary with random logits that favour the bytes that close an
 * object (half as much in the last four runs, whose strings may run on): every one that ends (an
 * end-of-generation token) is an object jansson reads, one that does not is a prefix of one, and
 * the mask leaves only end-of-generation tokens once it is whole. Greedy and sampled, through the
 * sampler. */
static void sampler_generations(void) {
    tern_json_vocab *v = NULL;
    CHECK_STATUS(TERN_OK, tern_json_vocab_create(tok, &v));
    if (!v)
        return;
    const int32_t n_vocab = tern_tokenizer_n_vocab(tok);
    float *bonus = calloc((size_t)n_vocab, sizeof *bonus), *logits = malloc((size_t)n_vocab * sizeof *logits);
    static const char *const closers[] = {"}", "\"", "1", ":", ",", "]", "{", "["};
    for (size_t i = 0; i < sizeof closers / sizeof *closers; i++) {
        const int32_t id = tern_tokenizer_find(tok, closers[i], 1);
        CHECK(id >= 0);
        if (id >= 0)
            bonus[id] = i == 0 ? 7.0f : i == 1 ? 6.0f : 5.0f;
    }
    int ended = 0;
    uint64_t rng = 11;
    for (int run = 0; run < 8; run++) {
        struct tern_sampler_params p = tern_sampler_default_params();
        p.temperature = run % 2 ? 1.0f : 0.0f;
        p.seed = (uint64_t)run;
        p.json = v;
        tern_sampler *s = NULL;
        CHECK_STATUS(TERN_OK, tern_sampler_create(&p, n_vocab, &s));
        struct tern_head_request req;
        /* a certified head is told the tokens the sampler can take */
        CHECK(tern_sampler_head_request(s, &req) && req.allowed != NULL);
        char text[4096];
        size_t len = 0;
        bool eog = false;
        for (int t = 0; t < 120 && !eog; t++) {
            for (int32_t i = 0; i < n_vocab; i++)
                logits[i] = test_rand_normal(&rng) + bonus[i] * (run < 4 ? 1.0f : 0.5f);
            int32_t id = -1;
            CHECK_STATUS(TERN_OK, tern_sampler_sample(s, logits, &id));
            eog = tern_tokenizer_is_eog(tok, id);
            if (!eog)
                len += tern_token_to_bytes(tok, id, false, text + len, sizeof text - len);
        }
        CHECK_INT(eog ? 1 : 0, verdict(text, len));
        if (eog && !jansson_object(text, len))
            harness_fail(__FILE__, __LINE__, "jansson refuses the generation '%.*s'", (int)len, text);
        ended += eog && run < 4;
        tern_sampler_free(s);
    }
    CHECK_INT(4, ended); /* with the full bonus every run closes its object */
    /* once whole, only end-of-generation tokens are left */
    struct tern_json_state st;
    tern_json_start(&st, NULL);
    CHECK(tern_json_feed(&st, "{}", 2));
    uint8_t *allowed = malloc((size_t)n_vocab);
    const int32_t kept = tern_json_allowed(v, &st, allowed, n_vocab);
    CHECK(kept >= 1);
    for (int32_t i = 0; i < n_vocab; i++)
        if (tern_tokenizer_is_eog(tok, i) != (allowed[i] == 1))
            harness_fail(__FILE__, __LINE__, "token %d after the object: allowed %d", i, allowed[i]);
    /* at the start only tokens that open the object are left */
    tern_json_start(&st, NULL);
    tern_json_allowed(v, &st, allowed, n_vocab);
    char piece[256];
    for (int32_t i = 0; i < n_vocab; i++) {
        if (!allowed[i])
            continue;
        const size_t k = tern_token_to_bytes(tok, i, false, piece, sizeof piece);
        if (k == 0 || piece[0] != '{')
            harness_fail(__FILE__, __LINE__, "token %d '%.*s' allowed first", i, (int)k, piece);
    }
    free(allowed);
    free(bonus);
    free(logits);
    tern_json_vocab_free(v);
}

static const char SCHEMA[] =
    "{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\", \"description\": \"who\"}, "
    "\"age\": {\"type\": \"integer\"}, \"tags\": {\"type\": \"array\", \"items\": {\"enum\": [\"a\", "
    "\"bc\"]}, "
    "\"maxItems\": 2}, \"ok\": {\"type\": [\"boolean\", \"null\"]}, \"pos\": {\"type\": \"object\", "
    "\"properties\": {\"x\": {\"type\": \"number\"}}, \"required\": [\"x\"]}}, "
    "\"required\": [\"name\", \"age\"], \"additionalProperties\": false}";

static tern_json_schema *compile(const char *text, char *why, size_t size) {
    json_t *j = json_loads(text, 0, NULL);
    tern_json_schema *g = NULL;
    if (j)
        tern_json_schema_compile(j, &g, why, size);
    json_decref(j);
    return g;
}

/* 1: a whole object of schema g, 0: a prefix of one, -1: neither */
static int schema_verdict(const tern_json_schema *g, const char *text) {
    struct tern_json_state st;
    tern_json_start(&st, g);
    if (!tern_json_feed(&st, text, strlen(text)))
        return -1;
    return tern_json_complete(&st) ? 1 : 0;
}

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

/* The token mask against the recognizer run on every token's bytes of vocabulary t, in states where
 * its shortcuts apply or must not: between and within UTF-8 characters of a string and a key, after
 * a number, in a bounded string and an enumerated value, and once the object is whole. Returns how
 * many tokens the recognizer takes inside a string; *partial counts those that leave it within a
 * character, *invalid the tokens without quotes, backslashes or control bytes it refuses there
 * after their first byte (not UTF-8). */
static int mask_on(const tern_tokenizer *t, int *partial, int *invalid) {
    static const struct {
        const char *schema, *text;
    } states[] = {
        {NULL, "{\"k\":\""},
        {NULL, "{\"k\":\"ab"},
        {NULL, "{\"k\":\"\xc3"},
        {NULL, "{\"k\":\"\xe2\x82"},
        {NULL, "{\"k\":\"\xf0"},
        {NULL, "{\"\xe2"},
        {NULL, "{\"k\":\"\\u00"},
        {NULL, "{\"k\":12"},
        {NULL, "{\"k\":[1,"},
        {NULL, "{\"k\":1}"},
        {"{\"type\": \"object\", \"properties\": {\"s\": {\"type\": \"string\", \"maxLength\": 3}}}",
         "{\"s\":\"a"},
        {"{\"type\": \"object\", \"properties\": {\"s\": {\"type\": \"string\", \"minLength\": 2}}}",
         "{\"s\":\"\xc3\xa9"},
        {"{\"type\": \"object\", \"properties\": {\"e\": {\"enum\": [1, 12, 2.5, true]}}}", "{\"e\":1"},
        {"{\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"number\", \"minimum\": 3, \"maximum\": "
         "40}}}",
         "{\"n\":"},
        {"{\"type\": \"object\", \"properties\": {\"u\": {\"anyOf\": [{\"properties\": {\"s\": {\"type\": "
         "\"string\"}, \"a\": {}}}, {\"properties\": {\"s\": {\"type\": \"string\"}}}]}}}",
         "{\"u\":{\"s\":\"ab"},
        {"{\"type\": \"object\", \"properties\": {\"u\": {\"anyOf\": [{\"properties\": {\"s\": {\"type\": "
         "\"string\"}}}, {\"properties\": {\"s\": {\"enum\": [\"abc\", \"a,\"]}}}]}}}",
         "{\"u\":{\"s\":\"a"},
    };
    tern_json_vocab *v = NULL;
    CHECK_STATUS(TERN_OK, tern_json_vocab_create(t, &v));
    const int32_t n_vocab = tern_tokenizer_n_vocab(t);
    uint8_t *allowed = malloc((size_t)n_vocab);
    char piece[256], why[256];
    int in_string = 0;
    for (size_t i = 0; v && i < sizeof states / sizeof *states; i++) {
        tern_json_schema *g = states[i].schema ? compile(states[i].schema, why, sizeof why) : NULL;
        struct tern_json_state st;
        tern_json_start(&st, g);
        CHECK(tern_json_feed(&st, states[i].text, strlen(states[i].text)));
        const int32_t kept = tern_json_allowed(v, &st, allowed, n_vocab);
        int32_t want_kept = 0;
        for (int32_t id = 0; id < n_vocab; id++) {
            bool want;
            if (tern_tokenizer_is_eog(t, id)) {
                want = tern_json_complete(&st);
            } else if (tern_tokenizer_token_type(t, id) == TERN_TOKEN_CONTROL) {
                want = false;
            } else {
                const size_t k = tern_token_to_bytes(t, id, false, piece, sizeof piece);
                struct tern_json_state s2 = st;
                want = k > 0 && k <= sizeof piece && tern_json_feed(&s2, piece, k);
                in_string += i == 0 && want;
                *partial +=
                    i == 0 && want && s2.b[0].f[s2.b[0].depth - 1].aux != 0; /* left within a character */
                s2 = st;
                bool plain = k > 1;
                for (size_t j = 0; j < k && plain; j++)
                    plain = (unsigned char)piece[j] >= 0x20 && piece[j] != '"' && piece[j] != '\\';
                *invalid += i == 0 && plain && !want && tern_json_feed(&s2, piece, 1);
            }
            want_kept += want;
            if (want != allowed[id]) {
                harness_fail(__FILE__, __LINE__, "state %zu '%s': token %d allowed %d, recognizer %d", i,
                             states[i].text, id, allowed[id], want);
                break;
            }
        }
        CHECK_INT(want_kept, kept);
        free(g);
    }
    free(allowed);
    tern_json_vocab_free(v);
    return in_string;
}

/* The mask on the conformance vocabulary (byte-level BPE of real text: some tokens end within a
 * character) and on a synthetic one of random merges (many tokens are not UTF-8) */
static void mask_against_recognizer(void) {
    int partial = 0, invalid = 0;
    CHECK(mask_on(tok, &partial, &invalid) > 500);
    CHECK(partial > 0);
    struct tern_maker_params p;
    tern_maker_preset("tiny", &p);
    const char *path = test_tmp("json_mode_vocab.gguf", 0);
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    tern_gguf *f = NULL;
    tern_tokenizer *t = NULL;
    CHECK_STATUS(TERN_OK, tern_gguf_create(path, &f));
    CHECK_STATUS(TERN_OK, f ? tern_tokenizer_create(f, NULL, &t) : TERN_ERR_ARG);
    invalid = 0;
    if (t)
        mask_on(t, &partial, &invalid);
    CHECK(invalid > 10);
    tern_tokenizer_free(t);
    tern_gguf_free(f);
}

/* Schema verdict of {"v":TEXT} under the schema whose property v is `value` (a JSON schema text);
 * texts are NUL-terminated */
static tern_json_schema *value_schema(const char *value) {
    char text[4096], why[256] = "";
    snprintf(text, sizeof text, "{\"type\": \"object\", \"properties\": {\"v\": %s}, \"required\": [\"v\"]}",
             value);
    tern_json_schema *g = compile(text, why, sizeof why);
    if (!g)
        harness_fail(__FILE__, __LINE__, "schema %s refused: %s", text, why);
    return g;
}

static int value_verdict(const tern_json_schema *g, const char *value, bool close) {
    char text[512];
    snprintf(text, sizeof text, "{\"v\":%s%s", value, close ? "}" : "");
    return schema_verdict(g, text);
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

/* Characters (code points) of a jansson string */
static size_t code_points(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
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

/* A jansson value against SCHEMA: the keys in order, the required ones, and the types. */
static bool follows_schema(const json_t *v) {
    static const char *const order[] = {"name", "age", "tags", "ok", "pos"};
    const char *key;
    json_t *m;
    int at = 0;
    json_object_foreach((json_t *)v, key, m) {
        while (at < 5 && strcmp(order[at], key))
            at++;
        if (at == 5)
            return false;
        bool ok = true;
        switch (at) {
        case 0:
            ok = json_is_string(m);
            break;
        case 1:
            ok = json_is_integer(m);
            break;
        case 2:
            ok = json_is_array(m) && json_array_size(m) <= 2;
            for (size_t i = 0; ok && i < json_array_size(m); i++) {
                const char *t = json_string_value(json_array_get(m, i));
                ok = t && (!strcmp(t, "a") || !strcmp(t, "bc"));
            }
            break;
        case 3:
            ok = json_is_boolean(m) || json_is_null(m);
            break;
        default:
            ok = json_is_object(m) && json_is_number(json_object_get(m, "x")) && json_object_size(m) == 1;
        }
        if (!ok)
            return false;
    }
    return json_object_get(v, "name") && json_object_get(v, "age");
}

/* Sampled generations under schema g (random logits favouring quotes, digits and closing bytes):
 * each that ends is an object jansson reads that follows(); those that do not end are prefixes.
 * Returns how many ended. */
static int sampled_generations(const tern_json_schema *g, bool (*follows)(const json_t *)) {
    tern_json_vocab *v = NULL;
    CHECK_STATUS(TERN_OK, tern_json_vocab_create(tok, &v));
    const int32_t n_vocab = tern_tokenizer_n_vocab(tok);
    float *bonus = calloc((size_t)n_vocab, sizeof *bonus), *logits = malloc((size_t)n_vocab * sizeof *logits);
    static const char *const favoured[] = {"}", "\"", "1", ",", "]", "a", "0", "."};
    for (size_t i = 0; i < sizeof favoured / sizeof *favoured; i++) {
        const int32_t id = tern_tokenizer_find(tok, favoured[i], 1);
        if (id >= 0)
            bonus[id] = i < 2 ? 7.0f : 5.0f;
    }
    uint64_t rng = 5;
    int ended = 0;
    for (int run = 0; g && v && run < 12; run++) {
        struct tern_sampler_params p = tern_sampler_default_params();
        p.temperature = run % 3 ? 1.0f : 0.0f;
        p.seed = (uint64_t)run;
        p.json = v;
        p.json_schema = g;
        tern_sampler *s = NULL;
        CHECK_STATUS(TERN_OK, tern_sampler_create(&p, n_vocab, &s));
        char text[4096];
        size_t len = 0;
        bool eog = false;
        for (int t = 0; t < 200 && !eog && s; t++) {
            for (int32_t i = 0; i < n_vocab; i++)
                logits[i] = test_rand_normal(&rng) + bonus[i];
            int32_t id = -1;
            CHECK_STATUS(TERN_OK, tern_sampler_sample(s, logits, &id));
            eog = tern_tokenizer_is_eog(tok, id);
            if (!eog)
                len += tern_token_to_bytes(tok, id, false, text + len, sizeof text - len - 1);
        }
        text[len] = 0;
        if (eog) {
            json_t *j = json_loadb(text, len, 0, NULL);
            if (!j || !follows(j))
                harness_fail(__FILE__, __LINE__, "generation '%s' does not follow the schema", text);
            json_decref(j);
        } else {
            CHECK_INT(0, schema_verdict(g, text));
        }
        ended += eog;
        tern_sampler_free(s);
    }
    free(bonus);
    free(logits);
    tern_json_vocab_free(v);
    return ended;
}

static void schema_generations(void) {
    char why[256];
    tern_json_schema *g = compile(SCHEMA, why, sizeof why);
    CHECK(g != NULL);
    CHECK(sampled_generations(g, follows_schema) >= 6);
    free(g);
}

static const char BOUNDED[] =
    "{\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"integer\", \"minimum\": -5, \"maximum\": "
    "120}, "
    "\"x\": {\"type\": \"number\", \"exclusiveMinimum\": 0, \"maximum\": 1}, \"s\": {\"type\": \"string\", "
    "\"minLength\": 2, \"maxLength\": 4}, \"e\": {\"enum\": [1, 2.5, true, \"x\", null]}}, \"required\": "
    "[\"n\", "
    "\"x\", \"s\", \"e\"]}";

/* A jansson value against BOUNDED */
static bool follows_bounded(const json_t *v) {
    const json_t *n = json_object_get(v, "n"), *x = json_object_get(v, "x"), *s = json_object_get(v, "s"),
                 *e = json_object_get(v, "e");
    const char *es = json_string_value(e);
    return json_object_size(v) == 4 && json_is_integer(n) && json_integer_value(n) >= -5 &&
           json_integer_value(n) <= 120 && json_is_number(x) && json_number_value(x) > 0 &&
           json_number_value(x) <= 1 && json_is_string(s) && code_points(json_string_value(s)) >= 2 &&
           code_points(json_string_value(s)) <= 4 &&
           ((json_is_integer(e) && json_integer_value(e) == 1) ||
            (json_is_real(e) && json_real_value(e) == 2.5) || json_is_true(e) || json_is_null(e) ||
            (es && !strcmp(es, "x")));
}

static const char UNION[] =
    "{\"type\": \"object\", \"properties\": {\"pets\": {\"type\": \"array\", \"maxItems\": 3, \"items\": "
    "{\"anyOf\": [{\"type\": \"object\", \"properties\": {\"kind\": {\"const\": \"cat\"}, \"lives\": "
    "{\"type\": "
    "\"integer\", \"minimum\": 1, \"maximum\": 9}}, \"required\": [\"kind\", \"lives\"]}, {\"type\": "
    "\"object\", "
    "\"properties\": {\"kind\": {\"const\": \"dog\"}, \"good\": {\"type\": \"boolean\"}}, \"required\": "
    "[\"kind\", \"good\"]}]}}}, \"required\": [\"pets\"]}";

/* A jansson value against UNION */
static bool follows_union(const json_t *v) {
    const json_t *pets = json_object_get(v, "pets");
    bool ok = json_object_size(v) == 1 && json_is_array(pets) && json_array_size(pets) <= 3;
    for (size_t i = 0; ok && i < json_array_size(pets); i++) {
        const json_t *p = json_array_get(pets, i), *lives = json_object_get(p, "lives");
        const char *kind = json_string_value(json_object_get(p, "kind"));
        ok = json_object_size(p) == 2 && kind &&
             ((!strcmp(kind, "cat") && json_is_integer(lives) && json_integer_value(lives) >= 1 &&
               json_integer_value(lives) <= 9) ||
              (!strcmp(kind, "dog") && json_is_boolean(json_object_get(p, "good"))));
    }
    return ok;
}

/* Sampled generations under a union of objects that begin alike */
static void union_generations(void) {
    char why[256];
    tern_json_schema *g = compile(UNION, why, sizeof why);
    CHECK(g != NULL);
    CHECK(sampled_generations(g, follows_union) >= 6);
    free(g);
}

/* Sampled generations under enumerated values, string lengths and numeric bounds */
static void bounded_generations(void) {
    char why[256];
    tern_json_schema *g = compile(BOUNDED, why, sizeof why);
    CHECK(g != NULL);
    CHECK(sampled_generations(g, follows_bounded) >= 6);
    free(g);
}

int main(void) {
    if (tern_gguf_create(test_data("vectors/mini-b158-i2s.gguf", 0), &file) ||
        tern_tokenizer_create(file, NULL, &tok)) {
        harness_fail(__FILE__, __LINE__, "cannot read the conformance model's tokenizer");
        return harness_finish();
    }
    RUN(documents);
    RUN(against_jansson);
    RUN(utf8_text);
    RUN(mask_against_recognizer);
    RUN(sampler_generations);
    RUN(schemas);
    RUN(enumerated_values);
    RUN(bounded_numbers);
    RUN(bounded_strings);
    RUN(patterns);
    RUN(unions);
    RUN(schema_generations);
    RUN(bounded_generations);
    RUN(union_generations);
    tern_tokenizer_free(tok);
    tern_gguf_free(file);
    return harness_finish();
}
