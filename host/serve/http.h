/* tern's OpenAI-compatible HTTP API over the serving engine, on libmicrohttpd (one thread per
 * connection, so a streamed reply can wait for the engine's next tokens):
 *   POST /v1/chat/completions   messages rendered in the model's chat format
 *   POST /v1/completions        raw prompts (text or token ids), with echo and logprobs to score them
 *   GET  /v1/models, GET /health
 *   POST /tokenize, POST /detokenize, GET /tokenizer_info   the model's tokenizer (api_request.h)
 *   GET  /                      a chat page (web/chat.html, built in: web_ui.h)
 * Replies and errors follow the OpenAI API (error objects {"error": {"message", "type", "param",
 * "code"}}); streamed replies are server-sent events ending with `data: [DONE]`. One log line per
 * request: method, path, status, tokens, time. */
#ifndef TERN_HTTP_H
#define TERN_HTTP_H

#include <stddef.h>

#include "../generate/chat.h"
#include "engine.h"

struct tern_server_params {
    const char *host;    /* address to bind (numeric, or a name such as localhost) */
    int port;            /* 0: any free port */
    const char *api_key; /* NULL: no authorization required */
    const char *cors;    /* origins browsers may call from: NULL (loopback pages only), "*" (any), or a
                            comma-separated list of exact origins */
    const char *model_id;
    size_t max_body;                     /* largest request body accepted (bytes) */
    struct tern_sampler_params sampling; /* for the fields a request leaves out */
    bool seed_set;                       /* else each request without a seed gets its own */
    bool json;                           /* --json: JSON mode where a request has no response_format */
    const struct tern_json_schema
        *json_schema; /* --json-schema: that JSON mode's schema (NULL: any object) */
};

typedef struct tern_server tern_server;

/* Listen; until tern_server_ready, /health answers "loading" and the API 503. One line logged on
 * failure (address in use, bad host), and a warning when the address is not the loopback and no API
 * key is required. */
tern_status tern_server_create(const struct tern_server_params *p, tern_server **out);
/* The port listened on (useful with port 0). */
int tern_server_port(const tern_server *srv);
/* Serve requests through engine e (tokenizer tok, chat format f, n_ctx positions per request);
 * chat_template (not copied: it must outlive the server; ptr NULL when the model has none) is the
 * model's tokenizer.chat_template, which /tokenizer_info hands to clients that render chats
 * themselves. */
void tern_server_ready(tern_server *srv, tern_engine *e, const tern_tokenizer *tok, enum tern_chat_format f,
                       int n_ctx, struct tern_str chat_template);
/* Stop listening and wait for every connection's thread (end the engine first so streams finish).
 * Accepts NULL. */
void tern_server_free(tern_server *srv);

#endif
