/* JSON mode (host/generate/json_mode.c): the recognizer against hand-picked documents and against
 * jansson on random objects, their mutations and UTF-8; the token mask against the recognizer, and
 * the sampler on the conformance vectors' vocabulary, whose generations jansson must parse (and
 * find following their schema) whenever they end. The schemas themselves: test_json_schema.c. */
#include <math.h>

#include "host/generate/sampler.h"
#include "host/gguf/gguf.h"
#include "host/model/maker.h"
#include "json_test.h"

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
        {"{\"type\": \"object\", \"properties\": {\"p\": {\"pattern\": \"^[a-c]*x?$\"}}}", "{\"p\":\"ab"},
        {"{\"type\": \"object\", \"properties\": {\"p\": {\"pattern\": \"[^0-9]\"}}}", "{\"p\":\"1"},
        {"{\"type\": \"object\", \"properties\": {\"p\": {\"format\": \"date-time\"}}}", "{\"p\":\"2024-0"},
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

/* Sampled generations under the schema of text `schema` (random logits favouring quotes, digits and
 * closing bytes): each that ends is an object jansson reads that follows(); those that do not end
 * are prefixes; at least half of the 12 end. */
static void sampled_generations(const char *schema, bool (*follows)(const json_t *)) {
    char why[256];
    tern_json_schema *g = compile(schema, why, sizeof why);
    CHECK(g != NULL);
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
    CHECK(ended >= 6);
    free(bonus);
    free(logits);
    tern_json_vocab_free(v);
    free(g);
}

static void schema_generations(void) {
    sampled_generations(SCHEMA, follows_schema);
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
    sampled_generations(UNION, follows_union);
}

/* Sampled generations under enumerated values, string lengths and numeric bounds */
static void bounded_generations(void) {
    sampled_generations(BOUNDED, follows_bounded);
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
    RUN(schema_generations);
    RUN(bounded_generations);
    RUN(union_generations);
    tern_tokenizer_free(tok);
    tern_gguf_free(file);
    return harness_finish();
}
