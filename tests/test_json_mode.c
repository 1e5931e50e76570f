/* JSON mode (host/generate/json_mode.c): the recognizer against hand-picked documents and against
 * jansson on random objects and their mutations; the token mask and the sampler on the
 * conformance vectors' vocabulary, whose generations jansson must parse whenever they end. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "host/generate/json_mode.h"
#include "host/generate/sampler.h"
#include "host/gguf/gguf.h"

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
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\", \"pattern\": \"x\"}}}",
         "'pattern'"},
        {"{\"allOf\": [{\"type\": \"object\"}]}", "'allOf'"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"anyOf\": [{\"type\": \"string\"}, {\"enum\": "
         "[\"x\"]}]}}}",
         "same character"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"$ref\": \"#/$defs/B\"}}}", "does not name"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"$ref\": \"#\", \"type\": \"object\"}}}",
         "beside"},
        {"{\"$defs\": {\"A\": {\"anyOf\": [{\"$ref\": \"#/$defs/A\"}, {\"type\": \"null\"}]}}, \"type\": "
         "\"object\", "
         "\"properties\": {\"a\": {\"$ref\": \"#/$defs/A\"}}}",
         "refers back"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"enum\": [1, 2]}}}", "other than strings"},
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

/* Sampled generations under SCHEMA (random logits favouring quotes and closing bytes): each that
 * ends is an object jansson reads that follows the schema */
static void schema_generations(void) {
    char why[256];
    tern_json_schema *g = compile(SCHEMA, why, sizeof why);
    tern_json_vocab *v = NULL;
    CHECK_STATUS(TERN_OK, tern_json_vocab_create(tok, &v));
    CHECK(g != NULL);
    const int32_t n_vocab = tern_tokenizer_n_vocab(tok);
    float *bonus = calloc((size_t)n_vocab, sizeof *bonus), *logits = malloc((size_t)n_vocab * sizeof *logits);
    static const char *const favoured[] = {"}", "\"", "1", ",", "]", "a"};
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
            if (!j || !follows_schema(j))
                harness_fail(__FILE__, __LINE__, "generation '%s' does not follow the schema", text);
            json_decref(j);
        } else {
            CHECK_INT(0, schema_verdict(g, text));
        }
        ended += eog;
        tern_sampler_free(s);
    }
    CHECK(ended >= 6);
    free(bonus);
    free(logits);
    tern_json_vocab_free(v);
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
    RUN(sampler_generations);
    RUN(schemas);
    RUN(schema_generations);
    tern_tokenizer_free(tok);
    tern_gguf_free(file);
    return harness_finish();
}
