/* tern serve's request parsing (host/serve/api_request.c) on the conformance vectors' vocabulary:
 * prompts as text, token ids and lists; echo texts; logit biases; n; the tokenizer endpoints and
 * /tokenizer_info. The HTTP side runs end to end in tests/serve/openai_test.mjs. */
#include <string.h>

#include "harness.h"
#include "host/generate/json_mode.h"
#include "host/gguf/gguf.h"
#include "host/serve/api_request.h"
#include "host/serve/api_tools.h"

static tern_gguf *file;
static tern_tokenizer *tok;
static struct tern_server_params params;

static bool parse(const char *body, bool chat, struct tern_api_request *r, struct tern_api_error *err) {
    json_t *j = json_loads(body, 0, NULL);
    CHECK(j != NULL);
    const bool ok = tern_api_parse(&params, tok, TERN_CHAT_LLAMA3, 42, j, chat, r, err);
    json_decref(j);
    return ok;
}

static void completion_prompts(void) {
    struct tern_api_request r;
    struct tern_api_error err;
    /* a text prompt gets BOS, noted so echo leaves it unwritten; echo keeps the text as sent */
    CHECK(parse("{\"prompt\": \"The capital\", \"echo\": true}", false, &r, &err));
    CHECK_INT(1, r.n_prompts);
    CHECK(r.prompts[0].bos_added && r.prompts[0].ids[0] == tern_tokenizer_bos(tok));
    CHECK(!strcmp(r.prompts[0].echo, "The capital"));
    CHECK_INT(16, r.gen.max_tokens);
    CHECK_INT(-1, r.gen.logprobs);
    CHECK(!r.gen.prompt_logprobs);
    tern_api_request_free(&r);
    /* token ids as they are, no BOS added; several prompts; echo writes control tokens out */
    char body[256];
    snprintf(body, sizeof body,
             "{\"prompt\": [[%d, 791], [272]], \"echo\": true, \"logprobs\": 1, \"max_tokens\": 0}",
             tern_tokenizer_bos(tok));
    CHECK(parse(body, false, &r, &err));
    CHECK_INT(2, r.n_prompts);
    CHECK(r.prompts[0].n_ids == 2 && r.prompts[0].ids[1] == 791 && !r.prompts[0].bos_added);
    CHECK(r.prompts[1].n_ids == 1 && r.prompts[1].ids[0] == 272);
    CHECK(!strcmp(r.prompts[0].echo, "<|begin_of_text|>The"));
    CHECK(r.gen.prompt_logprobs && r.gen.logprobs == 1 && r.gen.max_tokens == 0);
    tern_api_request_free(&r);
    /* a list of ids is one prompt, not a list of prompts */
    CHECK(parse("{\"prompt\": [791, 272]}", false, &r, &err));
    CHECK(r.n_prompts == 1 && r.prompts[0].n_ids == 2);
    tern_api_request_free(&r);
    /* refusals name the field */
    const struct {
        const char *body, *param;
    } bad[] = {{"{\"prompt\": [791, 100000]}", "prompt"},
               {"{\"prompt\": []}", "prompt"},
               {"{\"prompt\": \"x\", \"max_tokens\": 0}", "max_tokens"},
               {"{\"prompt\": [\"a\", \"b\"], \"stream\": 1}", "stream"},
               {"{\"prompt\": \"x\", \"n\": 65}", "n"},
               {"{\"prompt\": \"x\", \"logprobs\": 21}", "logprobs"},
               {"{\"prompt\": \"x\", \"logit_bias\": {\"1000\": 1}}", "logit_bias"},
               {"{\"prompt\": \"x\", \"logit_bias\": {\"5\": -101}}", "logit_bias"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(!parse(bad[i].body, false, &r, &err));
        CHECK(err.status == 400 && err.param && !strcmp(err.param, bad[i].param) && err.message[0]);
    }
}

static void chat_fields(void) {
    struct tern_api_request r;
    struct tern_api_error err;
    CHECK(parse(
        "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Hi \"}, "
        "{\"type\": \"text\", \"text\": \"there\"}]}], \"logprobs\": true, \"top_logprobs\": 3, \"n\": 2, "
        "\"logit_bias\": {\"7\": 2.5, \"9\": -100}, \"seed\": 5}",
        true, &r, &err));
    CHECK(r.chat && r.n_prompts == 1 && r.n == 2 && r.gen.logprobs == 3 && !r.gen.prompt_logprobs);
    CHECK(r.gen.sampling.seed == 5 && r.gen.max_tokens == -1);
    CHECK_INT(2, r.gen.sampling.n_logit_bias);
    for (int i = 0; i < 2; i++) { /* the object's order is not promised */
        const struct tern_logit_bias b = r.gen.sampling.logit_bias[i];
        CHECK((b.id == 7 && b.bias == 2.5f) || (b.id == 9 && b.bias == -100.0f));
    }
    /* the parts joined, in the llama3 format */
    int32_t *ids;
    size_t n;
    const char *want = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
                       "<|start_header_id|>assistant<|end_header_id|>\n\n";
    CHECK_STATUS(TERN_OK, tern_tokenize(tok, want, strlen(want), false, true, &ids, &n));
    CHECK(n == r.prompts[0].n_ids && !memcmp(ids, r.prompts[0].ids, n * sizeof *ids));
    free(ids);
    tern_api_request_free(&r);
    CHECK(!parse("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"top_logprobs\": 2}", true, &r,
                 &err));
    CHECK(!strcmp(err.param, "top_logprobs"));
}

/* response_format: json_object turns JSON mode on, text off, none leaves the server's --json and
 * --json-schema; a schema outside the subset and other types are refused by name */
static void response_formats(void) {
    struct tern_api_request r;
    struct tern_api_error err;
    const char *const forms[] = {"", ", \"response_format\": {\"type\": \"json_object\"}",
                                 ", \"response_format\": {\"type\": \"text\"}",
                                 ", \"response_format\": null"};
    const bool want[2][4] = {{false, true, false, false}, {true, true, false, true}};
    for (int server = 0; server < 2; server++) {
        params.json = server;
        for (int i = 0; i < 4; i++) {
            char body[160];
            snprintf(body, sizeof body, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]%s}",
                     forms[i]);
            CHECK(parse(body, true, &r, &err));
            CHECK(r.json == want[server][i]);
            tern_api_request_free(&r);
        }
    }
    params.json = false;
    /* a schema, OpenAI's form and llama-server's; the server's --json-schema where none is sent */
    const char *const with_schema[] = {"{\"prompt\": \"x\", \"response_format\": {\"type\": \"json_schema\", "
                                       "\"json_schema\": {\"name\": \"n\", "
                                       "\"strict\": true, \"schema\": {\"type\": \"object\", \"properties\": "
                                       "{\"a\": {\"type\": \"integer\"}}}}}}",
                                       "{\"prompt\": \"x\", \"response_format\": {\"type\": \"json_object\", "
                                       "\"schema\": {\"type\": \"object\"}}}"};
    for (int i = 0; i < 2; i++) {
        CHECK(parse(with_schema[i], false, &r, &err));
        CHECK(r.json && r.json_schema);
        tern_api_request_free(&r);
    }
    json_t *sj = json_loads("{\"type\": \"object\"}", 0, NULL);
    tern_json_schema *server_schema = NULL;
    char why[128];
    CHECK_STATUS(TERN_OK, tern_json_schema_compile(sj, &server_schema, why, sizeof why));
    json_decref(sj);
    params.json = true, params.json_schema = server_schema;
    CHECK(parse("{\"prompt\": \"x\"}", false, &r, &err));
    CHECK(r.json && r.json_schema && r.json_schema != server_schema);
    tern_api_request_free(&r);
    CHECK(parse("{\"prompt\": \"x\", \"response_format\": {\"type\": \"json_object\"}}", false, &r, &err));
    CHECK(r.json && !r.json_schema);
    tern_api_request_free(&r);
    params.json = false, params.json_schema = NULL;
    free(server_schema);
    const char *const bad[] = {
        "{\"prompt\": \"x\", \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {}}}",
        "{\"prompt\": \"x\", \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"schema\": "
        "{\"type\": \"object\", \"multipleOf\": 1}}}}",
        "{\"prompt\": \"x\", \"response_format\": {\"type\": \"yaml\"}}",
        "{\"prompt\": \"x\", \"response_format\": \"json_object\"}",
        "{\"prompt\": \"x\", \"response_format\": {}}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(!parse(bad[i], false, &r, &err));
        CHECK(err.status == 400 && err.param && !strcmp(err.param, "response_format") && err.message[0]);
    }
}

static void tokenizer_endpoints(void) {
    struct tern_api_error err;
    json_t *reply = NULL, *body = json_pack("{s:s,s:b}", "prompt", "The capital", "add_special_tokens", 1);
    CHECK(tern_api_tokenize(tok, 512, body, &reply, &err));
    const json_t *ids = json_object_get(reply, "tokens");
    CHECK(json_array_size(ids) > 1 && json_integer_value(json_array_get(ids, 0)) == tern_tokenizer_bos(tok));
    CHECK_INT(512, (int)json_integer_value(json_object_get(reply, "max_model_len")));
    json_decref(body);
    body = json_pack("{s:O}", "tokens", ids);
    json_decref(reply);
    CHECK(tern_api_detokenize(tok, body, &reply, &err));
    CHECK(!strcmp(json_string_value(json_object_get(reply, "prompt")), "<|begin_of_text|>The capital"));
    json_decref(reply);
    json_decref(body);
    /* /tokenizer_info gives the model's chat template where it has one in UTF-8 */
    const char tmpl[] = "{% for m in messages %}{{ m.content }}{% endfor %}", broken[] = "\xff\xfe";
    json_t *info = tern_api_tokenizer_info(tok, 64, (struct tern_str){tmpl, sizeof tmpl - 1});
    CHECK(!strcmp(json_string_value(json_object_get(info, "chat_template")), tmpl));
    CHECK(!strcmp(json_string_value(json_object_get(info, "eos_token")), "<|end_of_text|>"));
    json_decref(info);
    info = tern_api_tokenizer_info(tok, 64, (struct tern_str){broken, 2});
    CHECK(info && !json_object_get(info, "chat_template"));
    json_decref(info);
    info = tern_api_tokenizer_info(tok, 64, (struct tern_str){0});
    CHECK(info && !json_object_get(info, "chat_template"));
    json_decref(info);
}

/* Echo's text offsets on a SentencePiece vocabulary, whose tokenizer puts a space before the text
 * that the echoed text does not have: each offset is where the token's text begins in the echo. */
static void spm_echo_offsets(void) {
    static const char *const tokens[] = {"<unk>", "<s>", "</s>", "\u2581", "a", "b", "\u2581a", "\u2581b"};
    static const int32_t types[] = {
        TERN_TOKEN_UNKNOWN, TERN_TOKEN_CONTROL, TERN_TOKEN_CONTROL, 1, 1, 1, 1, 1};
    static const float scores[] = {0, 0, 0, -1, -2, -2, -3, -3};
    const char *path = test_tmp("spm_vocab.gguf", 0);
    tern_gguf_writer *w;
    CHECK_STATUS(TERN_OK, tern_gguf_writer_create(&w));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_str(w, "general.architecture", "test"));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama"));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, 8));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", TERN_GGUF_I32, types, 8));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_arr(w, "tokenizer.ggml.scores", TERN_GGUF_F32, scores, 8));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_write(w, path));
    tern_gguf_writer_free(w);
    tern_gguf *g = NULL;
    tern_tokenizer *spm = NULL;
    CHECK_STATUS(TERN_OK, tern_gguf_create(path, &g));
    CHECK_STATUS(TERN_OK, g ? tern_tokenizer_create(g, NULL, &spm) : TERN_ERR_ARG);
    if (!spm) {
        tern_gguf_free(g);
        return;
    }
    const struct {
        const char *body, *echo;
        int n;
        int32_t ids[3];
        size_t offsets[3];
    } cases[] = {
        /* "\u2581a" "\u2581b" after the BOS tern adds: "a" at 0, " b" at 1 (not 2) */
        {"{\"prompt\": \"a b\", \"echo\": true}", "a b", 3, {1, 6, 7}, {0, 0, 1}},
        {"{\"prompt\": \"ab\", \"echo\": true}", "ab", 3, {1, 6, 5}, {0, 0, 1}},
        {"{\"prompt\": [6, 7], \"echo\": true}", "a b", 2, {6, 7}, {0, 1}},
        {"{\"prompt\": [1, 6, 7], \"echo\": true}", "<s>a b", 3, {1, 6, 7}, {0, 3, 4}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *j = json_loads(cases[i].body, 0, NULL);
        struct tern_api_request r;
        struct tern_api_error err;
        const bool ok = tern_api_parse(&params, spm, TERN_CHAT_LLAMA3, 1, j, false, &r, &err);
        json_decref(j);
        CHECK(ok);
        if (!ok)
            continue;
        const struct tern_api_prompt *p = &r.prompts[0];
        CHECK(!strcmp(p->echo, cases[i].echo));
        CHECK_INT(cases[i].n, (int)p->n_ids);
        for (int k = 0; k < cases[i].n && k < (int)p->n_ids; k++) {
            CHECK_INT(cases[i].ids[k], p->ids[k]);
            CHECK_INT((int)cases[i].offsets[k], (int)p->offsets[k]);
        }
        tern_api_request_free(&r);
    }
    tern_tokenizer_free(spm);
    tern_gguf_free(g);
}

/* Function calling (host/serve/api_tools.c): the reply's schema and the tools' system message, tool
 * results and calls in the prompt as the model writes them, the model's object back into OpenAI's
 * fields */
static void tools(void) {
    struct tern_api_request r;
    struct tern_api_error err;
    static const char TOOL[] =
        "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
        "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"$ref\": "
        "\"#/$defs/City\"}}, \"required\": [\"city\"], \"$defs\": {\"City\": {\"type\": "
        "\"string\"}}}}}]";
    char body[1024];
    snprintf(
        body, sizeof body,
        "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", "
        "\"content\": "
        "\"Paris?\"}, {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\", "
        "\"type\": "
        "\"function\", \"function\": {\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": "
        "\\\"Paris\\\"}\"}}]}, {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"21 C\"}], %s, "
        "\"tool_choice\": \"required\"}",
        TOOL);
    CHECK(parse(body, true, &r, &err));
    CHECK(r.json && r.tools && r.json_schema);
    char *text = r.n_prompts ? tern_api_ids_text(tok, r.prompts[0].ids, r.prompts[0].n_ids, NULL) : NULL;
    static const char *const within[] = {"Be brief.\n\nYou can call these tools", "\"name\":\"get_weather\"",
                                         "{\"tool_calls\":[{\"get_weather\":{\"city\":\"Paris\"}}]}",
                                         "{\"tool_result\":{\"name\":\"get_weather\",\"content\":\"21 C\"}}"};
    for (size_t i = 0; text && i < sizeof within / sizeof *within; i++)
        if (!strstr(text, within[i]))
            harness_fail(__FILE__, __LINE__, "the prompt lacks '%s': %s", within[i], text);
    free(text);
    /* a reply only a call of get_weather with a city follows */
    struct tern_json_state st;
    tern_json_start(&st, r.json_schema);
    static const char CALL[] = "{\"tool_calls\":[{\"get_weather\":{\"city\":\"Rome\"}}]}";
    CHECK(tern_json_feed(&st, CALL, strlen(CALL)) && tern_json_complete(&st));
    tern_json_start(&st, r.json_schema);
    CHECK(!tern_json_feed(&st, "{\"response\":", 12));
    tern_api_request_free(&r);
    /* tool_choice auto: a reply in text too; none: no schema */
    snprintf(body, sizeof body,
             "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], %s, \"tool_choice\": \"%s\"}", TOOL,
             "auto");
    CHECK(parse(body, true, &r, &err));
    tern_json_start(&st, r.json_schema);
    CHECK(tern_json_feed(&st, "{\"response\":\"hi\"}", 17) && tern_json_complete(&st));
    tern_api_request_free(&r);
    snprintf(body, sizeof body,
             "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], %s, \"tool_choice\": \"%s\"}", TOOL,
             "none");
    CHECK(parse(body, true, &r, &err));
    CHECK(!r.json && !r.tools);
    tern_api_request_free(&r);
    /* the model's object into OpenAI's fields */
    json_t *calls;
    char *content;
    CHECK(tern_api_tool_reply(CALL, strlen(CALL), "7_0", &calls, &content) && calls && !content);
    const json_t *fn = json_object_get(json_array_get(calls, 0), "function");
    CHECK(!strcmp(json_string_value(json_object_get(json_array_get(calls, 0), "id")), "call_7_0_0"));
    CHECK(!strcmp(json_string_value(json_object_get(fn, "arguments")), "{\"city\":\"Rome\"}"));
    json_decref(calls);
    CHECK(tern_api_tool_reply("{\"response\":\"hi\"}", 17, "x", &calls, &content) && !calls &&
          !strcmp(content, "hi"));
    free(content);
    CHECK(!tern_api_tool_reply("{\"tool_calls\":[", 15, "x", &calls, &content) && !calls && !content);
    /* an agent's tool set: 40 tools of 10 parameters each */
    json_t *many = json_pack("{s:[{s:s,s:s}],s:[]}", "messages", "role", "user", "content", "x", "tools");
    for (int i = 0; many && i < 40; i++) {
        json_t *props = json_object();
        for (int k = 0; k < 10; k++) {
            char key[8];
            snprintf(key, sizeof key, "p%d", k);
            json_object_set_new(props, key, json_pack("{s:s}", "type", k % 2 ? "string" : "integer"));
        }
        char name[16];
        snprintf(name, sizeof name, "tool_%d", i);
        json_array_append_new(json_object_get(many, "tools"),
                              json_pack("{s:s,s:{s:s,s:{s:s,s:o}}}", "type", "function", "function", "name",
                                        name, "parameters", "type", "object", "properties", props));
    }
    CHECK(many && tern_api_parse(&params, tok, TERN_CHAT_LLAMA3, 42, many, true, &r, &err) && r.json_schema);
    static const char LAST[] = "{\"tool_calls\":[{\"tool_39\":{\"p0\":1,\"p9\":\"x\"}}]}"; /* any of the 40 */
    tern_json_start(&st, r.json_schema);
    CHECK(r.json_schema && tern_json_feed(&st, LAST, strlen(LAST)) && tern_json_complete(&st));
    tern_api_request_free(&r);
    json_decref(many);
    /* refused: a reference out of a tool's definitions, two tools of one name, logprobs beside */
    static const char *const bad[] = {
        "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": "
        "\"object\", "
        "\"properties\": {\"k\": {\"$ref\": \"#\"}}}}}]",
        "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}, {\"type\": \"function\", "
        "\"function\": "
        "{\"name\": \"f\"}}]",
        "\"logprobs\": true, \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]"};
    static const char *const why[] = {"'$ref' '#'", "two tools", "'logprobs' beside"};
    /* a call without its arguments, a tool's result without its call's id (found by fuzz_api_request) */
    static const char *const bad_messages[] = {
        "{\"messages\": [{\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"a\", "
        "\"function\": {\"name\": \"f\"}}]}]}",
        "{\"messages\": [{\"role\": \"tool\", \"content\": \"r\"}]}"};
    for (size_t i = 0; i < 2; i++)
        if (parse(bad_messages[i], true, &r, &err) || err.status != 400 || strcmp(err.param, "messages"))
            harness_fail(__FILE__, __LINE__, "%s: status %d, '%s'", bad_messages[i], err.status, err.message);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(body, sizeof body, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], %s}", bad[i]);
        if (parse(body, true, &r, &err) || err.status != 400 || !strstr(err.message, why[i]))
            harness_fail(__FILE__, __LINE__, "%s: status %d, '%s'", bad[i], err.status, err.message);
    }
}

int main(void) {
    if (tern_gguf_create(test_data("vectors/mini-b158-i2s.gguf", 0), &file) ||
        tern_tokenizer_create(file, NULL, &tok)) {
        harness_fail(__FILE__, __LINE__, "cannot read the conformance model's tokenizer");
        return harness_finish();
    }
    params.model_id = "model.gguf";
    params.sampling = tern_sampler_default_params();
    RUN(completion_prompts);
    RUN(chat_fields);
    RUN(response_formats);
    RUN(tokenizer_endpoints);
    RUN(spm_echo_offsets);
    RUN(tools);
    tern_tokenizer_free(tok);
    tern_gguf_free(file);
    return harness_finish();
}
