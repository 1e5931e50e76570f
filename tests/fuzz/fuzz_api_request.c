/* libFuzzer target for tern serve's request parsing (host/serve/api_request.c, docs/fuzzing.md):
 * each input is a request body, parsed as a chat and as a completions request and given to
 * /tokenize and /detokenize, with the vocabulary of the conformance vectors' model
 * (TERN_FUZZ_MODEL). Aborts when an accepted request breaks the parser's promises (a prompt id
 * outside the vocabulary, more prompts or logprobs than allowed, an empty prompt, a prompt whose
 * echo or its text offsets are missing, an offset that goes back or past the echo, a logit bias out of range,
 * tools without their schema) or a refused one has no status, parameter or message that says why.
 * The body is also read as a model's reply to a request with tools (api_tools.h), which gives calls
 * or content, never both. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/serve/api_request.h"
#include "host/serve/api_tools.h"
#include "scheduler/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(enum tern_log_level level, const char *msg, void *user) {
    (void)level;
    (void)msg;
    (void)user;
}

static tern_gguf *file; /* kept, as the tokenizer is, for every input */
static tern_tokenizer *tok;
static struct tern_server_params params;

static void setup(void) {
    tern_log_set_callback(quiet, NULL);
    if (tern_gguf_create(TERN_FUZZ_MODEL, &file) || tern_tokenizer_create(file, NULL, &tok)) {
        fprintf(stderr, "fuzz_api_request: cannot read the tokenizer of %s\n", TERN_FUZZ_MODEL);
        abort();
    }
    params.model_id = "model.gguf";
    params.sampling = (struct tern_sampler_params){
        .temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .repeat_penalty = 1.0f, .repeat_last_n = 64};
}

static void check_error(const struct tern_api_error *err) {
    if ((err->status != 400 && err->status != 404 && err->status != 500) || !err->type || !err->message[0])
        abort();
}

static void check_request(const struct tern_api_request *r) {
    if (r->n_prompts < 1 || r->n < 1 || r->n_prompts * r->n > TERN_API_MAX_CHOICES ||
        (r->chat && r->n_prompts != 1) || r->gen.logprobs > TERN_ENGINE_MAX_TOP_LOGPROBS ||
        r->gen.n_stop > TERN_ENGINE_MAX_STOP || r->gen.max_tokens < (r->echo ? 0 : -1) ||
        (!r->echo && !r->gen.max_tokens) || (r->tools && (!r->chat || !r->json || !r->json_schema)))
        abort();
    for (int i = 0; i < r->n_prompts; i++) {
        const struct tern_api_prompt *p = &r->prompts[i];
        if (p->n_ids == 0 || (r->echo && (!p->echo || !p->offsets)))
            abort();
        for (size_t k = 0; r->echo && k < p->n_ids; k++)
            if (p->offsets[k] > strlen(p->echo) || (k && p->offsets[k] < p->offsets[k - 1]))
                abort();
        for (size_t k = 0; k < p->n_ids; k++)
            if (p->ids[k] < 0 || p->ids[k] >= tern_tokenizer_n_vocab(tok))
                abort();
    }
    for (int i = 0; i < r->gen.n_stop; i++)
        if (!r->gen.stop[i])
            abort();
    const struct tern_sampler_params *sp = &r->gen.sampling;
    if (sp->n_logit_bias < 0 || sp->n_logit_bias > TERN_MAX_LOGIT_BIAS)
        abort();
    for (int i = 0; i < sp->n_logit_bias; i++)
        if (sp->logit_bias[i].id < 0 || sp->logit_bias[i].id >= tern_tokenizer_n_vocab(tok) ||
            !(sp->logit_bias[i].bias >= -100.0f && sp->logit_bias[i].bias <= 100.0f))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok)
        setup();
    json_t *calls = NULL;
    char *content = NULL;
    if (tern_api_tool_reply((const char *)data, size, "f", &calls, &content) != (calls || content) ||
        (calls && content))
        abort();
    json_decref(calls);
    free(content);
    json_t *body = json_loadb((const char *)data, size, 0, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    for (int chat = 0; chat < 2; chat++) {
        struct tern_api_request r;
        struct tern_api_error err;
        if (tern_api_parse(&params, tok, TERN_CHAT_LLAMA3, 42, body, chat, &r, &err)) {
            check_request(&r);
            tern_api_request_free(&r);
        } else {
            check_error(&err);
        }
    }
    json_t *reply = NULL;
    struct tern_api_error err;
    for (int tokenize = 0; tokenize < 2; tokenize++) {
        const bool ok = tokenize ? tern_api_tokenize(tok, 4096, body, &reply, &err)
                                 : tern_api_detokenize(tok, body, &reply, &err);
        if (ok != (reply != NULL))
            abort();
        if (!ok)
            check_error(&err);
        json_decref(reply);
        reply = NULL;
    }
    json_decref(body);
    return 0;
}
