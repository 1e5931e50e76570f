/* Requests of tern's OpenAI-compatible API (http.h) parsed into the serving engine's generation
 * requests: the prompt(s) tokenized (chat messages rendered in the model's chat format first), the
 * sampling fields checked and filled in from the server's defaults. */
#ifndef TERN_API_REQUEST_H
#define TERN_API_REQUEST_H

#include <jansson.h>

#include "http.h"

/* What a request that cannot be served gets: an OpenAI-style error object. */
struct tern_api_error {
    int status; /* 400, 404 or 500 */
    const char *type, *code, *param;
    char message[512];
};

struct tern_api_prompt {
    int32_t *ids;
    size_t n_ids;
    bool bos_added;  /* tern put BOS before a text prompt: echo leaves it unwritten */
    char *echo;      /* with echo: the prompt's text: a text prompt as sent, token ids' texts joined
                        (control tokens written out, invalid UTF-8 as U+FFFD) */
    size_t *offsets; /* with echo: where each token's text begins in echo (text_offset) */
};

/* /v1/completions takes several prompts (a list of strings or of token id lists), and a request `n`
 * choices of each: at most this many choices in all. */
enum { TERN_API_MAX_CHOICES = 64 };

struct tern_api_request {
    bool chat, stream, usage, echo;
    bool json;  /* response_format json_object or json_schema: each choice is one JSON object */
    bool tools; /* a tool may be called: each choice's object is api_tools.h's, made a message */
    struct tern_json_schema *json_schema; /* with json: the object's schema (NULL: any object) */
    struct tern_gen_request gen; /* everything but the prompt; its stop strings point into the body */
    struct tern_api_prompt *prompts;
    int n_prompts;
    int n; /* choices per prompt: choice k is prompt k / n, its seed the request's + k % n */
};

/* A client error (400, 404) or the server's own (500) into *err; false, for a parser to return. */
bool tern_api_fail(struct tern_api_error *err, int status, const char *code, const char *param,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Parse body (a JSON object) of a chat (chat) or completions request. seed: the one a request
 * without "seed" gets when the server has no --seed. On a client error fills *err and returns
 * false; r is then freed already. */
bool tern_api_parse(const struct tern_server_params *p, const tern_tokenizer *tok,
                    enum tern_chat_format format, uint64_t seed, const json_t *body, bool chat,
                    struct tern_api_request *r, struct tern_api_error *err);
void tern_api_request_free(struct tern_api_request *r);

/* The text of token ids n (control tokens written out, the rest detokenized, invalid UTF-8 as
 * U+FFFD), as echo and /detokenize give it, and with offsets (n of them) where each token's text
 * begins in it (a token whose bytes end inside a character: where those bytes begin).
 * malloc'd; NULL when out of memory. */
char *tern_api_ids_text(const tern_tokenizer *tok, const int32_t *ids, size_t n, size_t *offsets);

/* The tokenizer endpoints, in the forms of vLLM (which lm-evaluation-harness's remote tokenizer
 * calls) and of llama-server. POST /tokenize {"prompt" or "content": text, "add_special_tokens" or
 * "add_special": BOS first where the model adds one (default false)} -> {"tokens", "count",
 * "max_model_len"}; POST /detokenize {"tokens": ids} -> {"prompt", "content"}: the text; GET
 * /tokenizer_info -> {"eos_token", "bos_token", "pad_token", "model_max_length", "vocab_size", and
 * "chat_template" where the model has one (its Jinja text, as Hugging Face tokenizers give it)}. On
 * a client error the parsers fill *err and return false. */
bool tern_api_tokenize(const tern_tokenizer *tok, int n_ctx, const json_t *body, json_t **reply,
                       struct tern_api_error *err);
bool tern_api_detokenize(const tern_tokenizer *tok, const json_t *body, json_t **reply,
                         struct tern_api_error *err);
json_t *tern_api_tokenizer_info(const tern_tokenizer *tok, int n_ctx, struct tern_str chat_template);

#endif
