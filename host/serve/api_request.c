/* Requests of the OpenAI-compatible API (see api_request.h). */
#include "api_request.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../generate/json_mode.h"
#include "api_tools.h"

bool tern_api_fail(struct tern_api_error *err, int status, const char *code, const char *param,
                   const char *fmt, ...) {
    err->status = status;
    err->type = status >= 500 ? "server_error" : "invalid_request_error";
    err->code = code;
    err->param = param;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return false;
}

/* Message content: a string, or an array of {"type": "text", "text": ...} parts joined. */
static char *message_text(const json_t *content) {
    if (json_is_string(content))
        return strdup(json_string_value(content));
    if (!json_is_array(content))
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(content); i++) {
        const char *t = json_string_value(json_object_get(json_array_get(content, i), "text"));
        if (!t)
            return NULL;
        n += strlen(t);
    }
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    n = 0; /* each part copied after the last, not by strcat, which rescans what is there */
    for (size_t i = 0; i < json_array_size(content); i++) {
        const char *t = json_string_value(json_object_get(json_array_get(content, i), "text"));
        const size_t len = strlen(t);
        memcpy(s + n, t, len);
        n += len;
    }
    s[n] = 0;
    return s;
}

/* The text of message i of a chat request's messages, its role in *r: a tool's result or an
 * assistant's tool calls as api_tools.h writes them, the others' content, and tools (the tools'
 * system text, or NULL) after the content of a first system message. NULL with *why set when the
 * message is malformed. */
static char *message_at(const json_t *messages, size_t i, const char *tools, enum tern_chat_role *r,
                        const char **why) {
    const json_t *m = json_array_get(messages, i);
    const char *role = json_string_value(json_object_get(m, "role")), *as = NULL;
    char *text = tern_api_tool_message(messages, i, &as, why);
    if (text)
        *r = as[0] == 'u' ? TERN_CHAT_USER : TERN_CHAT_ASSISTANT;
    if (text || *why)
        return text;
    if (role && !strcmp(role, "system"))
        *r = TERN_CHAT_SYSTEM;
    else if (role && (!strcmp(role, "user") || !strcmp(role, "developer")))
        *r = role[0] == 'u' ? TERN_CHAT_USER : TERN_CHAT_SYSTEM;
    else if (role && !strcmp(role, "assistant"))
        *r = TERN_CHAT_ASSISTANT;
    else {
        *why = "each message needs a 'role' of system, user, assistant or tool";
        return NULL;
    }
    char *content = message_text(json_object_get(m, "content"));
    if (!content) {
        *why = "each message needs a 'content' string";
        return NULL;
    }
    if (!tools || i > 0 || *r != TERN_CHAT_SYSTEM)
        return content;
    char *both = malloc(strlen(content) + strlen(tools) + 3);
    if (both)
        sprintf(both, "%s\n\n%s", content, tools);
    free(content);
    return both;
}

/* The prompt text of a chat request (tools: the tools' system text, or NULL); NULL with *why set when
 * the messages are malformed. */
static char *render_chat(enum tern_chat_format format, const json_t *messages, const char *tools,
                         const char **why) {
    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        *why = "'messages' must be a non-empty array";
        return NULL;
    }
    size_t len = 0, cap = 256;
    char *all = malloc(cap);
    if (!all)
        return NULL;
    all[0] = 0;
    const char *first = json_string_value(json_object_get(json_array_get(messages, 0), "role"));
    const size_t own = tools && !(first && !strcmp(first, "system")); /* the tools' own system message */
    for (size_t i = 0; i < json_array_size(messages) + own; i++) {
        enum tern_chat_role r = TERN_CHAT_SYSTEM;
        char *content =
            own && i == 0 ? strdup(tools) : message_at(messages, i - own, own ? NULL : tools, &r, why);
        if (!content) {
            free(all);
            return NULL;
        }
        char *text = tern_chat_render_message(format, r, content, i == 0);
        free(content);
        const size_t n = text ? strlen(text) : 0;
        char *grown = text && len + n + 1 > cap ? realloc(all, (cap = (len + n + 1) * 2)) : all;
        if (!text || !grown) {
            free(text);
            free(grown ? grown : all);
            return NULL;
        }
        all = grown;
        memcpy(all + len, text, n + 1);
        len += n;
        free(text);
    }
    const char *gp = tern_chat_generation_prompt(format);
    char *grown = realloc(all, len + strlen(gp) + 1);
    if (!grown) {
        free(all);
        return NULL;
    }
    strcpy(grown + len, gp);
    return grown;
}

static bool get_number(const json_t *o, const char *key, double lo, double hi, double *out, bool *bad) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return false;
    if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi) {
        *bad = true;
        return false;
    }
    *out = json_number_value(v);
    return true;
}

/* A prompt's echo: the text as sent (sent: len bytes), or else its tokens' text, and where each
 * token's text begins in it, taken from the tokens' own text (a BOS tern added has none: 0), so a
 * SentencePiece vocabulary's leading space, which the detokenizer drops, moves none of them; at
 * most the echo's length, should the tokens not give back a text prompt byte for byte or hold a
 * NUL. */
static bool add_echo(const tern_tokenizer *tok, struct tern_api_prompt *p, const char *sent, size_t len) {
    const size_t skip = p->bos_added;
    if (!(p->offsets = malloc((p->n_ids ? p->n_ids : 1) * sizeof *p->offsets)))
        return false;
    p->offsets[0] = 0;
    char *text = tern_api_ids_text(tok, p->ids + skip, p->n_ids - skip, p->offsets + skip);
    if (!text)
        return false;
    if (sent) {
        free(text);
        if (!(text = strndup(sent, len)))
            return false;
    }
    p->echo = text;
    const size_t n = strlen(text);
    for (size_t i = skip; i < p->n_ids; i++)
        p->offsets[i] = p->offsets[i] < n ? p->offsets[i] : n;
    return true;
}

/* A text prompt, tokenized as tern run does (control tokens in the text recognised), BOS first
 * where the model adds one. */
static bool text_prompt(const tern_tokenizer *tok, const char *text, size_t len, bool add_bos, bool echo,
                        struct tern_api_prompt *out) {
    if (tern_tokenize(tok, text, len, false, true, &out->ids, &out->n_ids))
        return false;
    const int32_t bos = tern_tokenizer_bos(tok);
    if (add_bos && bos >= 0 && (out->n_ids == 0 || out->ids[0] != bos)) {
        int32_t *ids = realloc(out->ids, (out->n_ids + 1) * sizeof *ids);
        if (!ids)
            return false;
        memmove(ids + 1, ids, out->n_ids * sizeof *ids);
        ids[0] = bos;
        out->ids = ids;
        out->n_ids++;
        out->bos_added = true;
    }
    return !echo || add_echo(tok, out, text, len);
}

char *tern_api_ids_text(const tern_tokenizer *tok, const int32_t *ids, size_t n, size_t *offsets) {
    const size_t piece = tern_detok_max_bytes(tok) + 1;
    size_t len = 0, cap = 64 + n * 8;
    char *s = malloc(cap);
    struct tern_detok dt;
    tern_detok_init(&dt, tok);
    for (size_t i = 0; s && i <= n; i++) {
        if (len + 2 * piece > cap) {
            char *t = realloc(s, cap = 2 * (len + 2 * piece));
            if (!t)
                free(s);
            s = t;
            if (!s)
                break;
        }
        if (i < n && offsets)
            offsets[i] = len;
        if (i == n || tern_tokenizer_token_type(tok, ids[i]) == TERN_TOKEN_CONTROL) {
            len += tern_detok_flush(&dt, s + len, piece);
            if (i < n)
                len += tern_token_to_bytes(tok, ids[i], true, s + len, piece);
        } else {
            len += tern_detok_push(&dt, tok, ids[i], s + len, piece);
        }
    }
    if (s)
        s[len] = 0;
    return s;
}

/* A prompt of token ids (a JSON array of integers); false with *bad set when one is not an id. */
static bool ids_prompt(const tern_tokenizer *tok, const json_t *a, bool echo, struct tern_api_prompt *out,
                       bool *bad) {
    const size_t n = json_array_size(a);
    out->ids = malloc((n ? n : 1) * sizeof *out->ids);
    if (!out->ids)
        return false;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) >= tern_tokenizer_n_vocab(tok)) {
            *bad = true;
            return false;
        }
        out->ids[i] = (int32_t)json_integer_value(v);
    }
    out->n_ids = n;
    return !echo || add_echo(tok, out, NULL, 0);
}

/* A list of token ids (not a list of prompts): its first element is a number. */
static bool is_ids(const json_t *v) {
    return json_is_array(v) && json_array_size(v) > 0 && json_is_number(json_array_get(v, 0));
}

/* The prompts of a completions request: a string, a list of token ids, or a list of either. */
static bool completion_prompts(const tern_tokenizer *tok, const json_t *p, bool echo,
                               struct tern_api_request *r, struct tern_api_error *err) {
    const char *why = "'prompt' must be a non-empty string, a list of token ids, or a list of up to 64 of "
                      "those";
    const size_t n = json_is_array(p) && !is_ids(p) ? json_array_size(p) : 1;
    if (n == 0 || n > TERN_API_MAX_CHOICES || (!json_is_array(p) && !json_is_string(p)))
        return tern_api_fail(err, 400, NULL, "prompt", "%s", why);
    r->prompts = calloc(n, sizeof *r->prompts);
    if (!r->prompts)
        return tern_api_fail(err, 500, NULL, NULL, "out of memory");
    r->n_prompts = (int)n;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_is_array(p) && !is_ids(p) ? json_array_get(p, i) : p;
        const bool text = json_is_string(v) && json_string_length(v) > 0;
        bool bad = !text && !is_ids(v);
        const bool ok = !bad && (text ? text_prompt(tok, json_string_value(v), json_string_length(v),
                                                    tern_tokenizer_add_bos(tok), echo, &r->prompts[i])
                                      : ids_prompt(tok, v, echo, &r->prompts[i], &bad));
        if (!ok)
            return bad ? tern_api_fail(err, 400, NULL, "prompt", "%s", why)
                       : tern_api_fail(err, 500, NULL, NULL, "the prompt could not be tokenized");
    }
    return true;
}

/* The logprobs fields: chat's "logprobs" (a boolean) and "top_logprobs" (0-20, with logprobs),
 * completions' "logprobs" (0-20, null: none). r->gen.logprobs: -1 for none. */
static bool logprobs_fields(const json_t *body, bool chat, struct tern_api_request *r,
                            struct tern_api_error *err) {
    const json_t *lp = json_object_get(body, "logprobs"), *top = json_object_get(body, "top_logprobs");
    r->gen.logprobs = -1;
    const int max = TERN_ENGINE_MAX_TOP_LOGPROBS;
    if (chat) {
        if (lp && !json_is_null(lp) && !json_is_boolean(lp))
            return tern_api_fail(err, 400, NULL, "logprobs", "'logprobs' must be a boolean");
        if (top && !json_is_null(top) &&
            (!json_is_integer(top) || json_integer_value(top) < 0 || json_integer_value(top) > max))
            return tern_api_fail(err, 400, NULL, "top_logprobs",
                                 "'top_logprobs' must be an integer from 0 to %d", max);
        if (top && !json_is_null(top) && !json_is_true(lp))
            return tern_api_fail(err, 400, NULL, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
        if (json_is_true(lp))
            r->gen.logprobs = top && !json_is_null(top) ? (int)json_integer_value(top) : 0;
        return true;
    }
    if (lp && !json_is_null(lp)) {
        if (!json_is_integer(lp) || json_integer_value(lp) < 0 || json_integer_value(lp) > max)
            return tern_api_fail(err, 400, NULL, "logprobs", "'logprobs' must be an integer from 0 to %d",
                                 max);
        r->gen.logprobs = (int)json_integer_value(lp);
    }
    return true;
}

/* OpenAI's logit_bias: {"token id": bias from -100 to 100, ...}, at most TERN_MAX_LOGIT_BIAS; it
 * replaces the server's --logit-bias. */
static bool logit_bias_field(const tern_tokenizer *tok, const json_t *body, struct tern_sampler_params *sp,
                             struct tern_api_error *err) {
    const json_t *lb = json_object_get(body, "logit_bias");
    if (!lb || json_is_null(lb))
        return true;
    if (!json_is_object(lb) || json_object_size(lb) > TERN_MAX_LOGIT_BIAS)
        return tern_api_fail(err, 400, NULL, "logit_bias",
                             "'logit_bias' must be an object of at most %d token ids", TERN_MAX_LOGIT_BIAS);
    sp->n_logit_bias = 0;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)lb, key, v) {
        char *end;
        errno = 0;
        const long long id = strtoll(key, &end, 10);
        if (errno || end == key || *end || id < 0 || id >= tern_tokenizer_n_vocab(tok))
            return tern_api_fail(err, 400, NULL, "logit_bias",
                                 "'logit_bias': '%s' is not a token id (0 to %d)", key,
                                 tern_tokenizer_n_vocab(tok) - 1);
        if (!json_is_number(v) || !(fabs(json_number_value(v)) <= 100.0))
            return tern_api_fail(err, 400, NULL, "logit_bias",
                                 "'logit_bias': the bias of token %lld must be a number from "
                                 "-100 to 100",
                                 id);
        sp->logit_bias[sp->n_logit_bias++] =
            (struct tern_logit_bias){(int32_t)id, (float)json_number_value(v)};
    }
    return true;
}

/* response_format: {"type": "text"}, {"type": "json_object"} (any object; llama-server's form may add
 * "schema"), or OpenAI's {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}; none:
 * the server's --json and --json-schema. A schema outside the subset json_mode.h holds replies to
 * is refused by name rather than ignored. */
static bool response_format(const struct tern_server_params *p, const json_t *body,
                            struct tern_api_request *r, struct tern_api_error *err) {
    const json_t *rf = json_object_get(body, "response_format");
    if (!rf || json_is_null(rf)) {
        r->json = p->json;
        return !p->json_schema || (r->json_schema = tern_json_schema_copy(p->json_schema)) ||
               tern_api_fail(err, 500, NULL, NULL, "out of memory");
    }
    const char *type = json_string_value(json_object_get(rf, "type"));
    if (!json_is_object(rf) || !type)
        return tern_api_fail(err, 400, NULL, "response_format",
                             "'response_format' must be an object with a 'type'");
    const json_t *schema = NULL;
    if (!strcmp(type, "json_schema")) {
        schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
        if (!schema)
            return tern_api_fail(
                err, 400, NULL, "response_format",
                "'response_format' of type 'json_schema' needs 'json_schema': {\"schema\": {...}}");
    } else if (!strcmp(type, "json_object")) {
        schema = json_object_get(rf, "schema");
    } else if (strcmp(type, "text") != 0) {
        return tern_api_fail(
            err, 400, NULL, "response_format",
            "'response_format' type '%s' is not one of 'text', 'json_object' and 'json_schema'", type);
    }
    r->json = strcmp(type, "text") != 0;
    if (!schema)
        return true;
    char why[256];
    const tern_status st = tern_json_schema_compile(schema, &r->json_schema, why, sizeof why);
    if (st == TERN_ERR_NOMEM)
        return tern_api_fail(err, 500, NULL, NULL, "out of memory");
    return !st || tern_api_fail(err, 400, NULL, "response_format",
                                "the response_format schema cannot be used: %s", why);
}

/* tools, tool_choice and parallel_tool_calls (api_tools.h): where a tool may be called, the reply's
 * JSON schema in place of the server's --json or --json-schema (a response_format beside them is
 * refused), and the tools' system text in *t. */
static bool tools_fields(const json_t *body, struct tern_api_tools *t, struct tern_api_request *r,
                         struct tern_api_error *err) {
    if (!tern_api_tools_parse(body, t, err))
        return false;
    if (!t->schema)
        return true;
    const json_t *rf = json_object_get(body, "response_format");
    const char *type = json_string_value(json_object_get(rf, "type"));
    const char *beside = r->gen.logprobs >= 0                                          ? "logprobs"
                         : rf && !json_is_null(rf) && !(type && !strcmp(type, "text")) ? "response_format"
                                                                                       : NULL;
    if (beside) { /* the reply is held whole, and to the tools' object */
        tern_api_tools_free(t);
        return tern_api_fail(err, 400, NULL, beside, "'%s' beside 'tools' is not supported", beside);
    }
    free(r->json_schema);
    r->json_schema = NULL;
    char why[256];
    const tern_status st = tern_json_schema_compile(t->schema, &r->json_schema, why, sizeof why);
    if (st) {
        tern_api_tools_free(t);
        return st == TERN_ERR_NOMEM
                   ? tern_api_fail(err, 500, NULL, NULL, "out of memory")
                   : tern_api_fail(err, 400, NULL, "tools", "the tools' parameters cannot be used: %s", why);
    }
    r->json = r->tools = true;
    return true;
}

static bool parse(const struct tern_server_params *p, const tern_tokenizer *tok, enum tern_chat_format format,
                  uint64_t seed, const json_t *body, bool chat, struct tern_api_request *r,
                  struct tern_api_error *err) {
    r->chat = chat;
    const json_t *model = json_object_get(body, "model");
    if (model && !json_is_string(model))
        return tern_api_fail(err, 400, NULL, "model", "'model' must be a string");
    if (model && strcmp(json_string_value(model), p->model_id) != 0)
        return tern_api_fail(err, 404, "model_not_found", "model",
                             "the model '%s' does not exist (this server runs '%s')",
                             json_string_value(model), p->model_id);
    const json_t *echo = json_object_get(body, "echo");
    if (!chat && echo && !json_is_null(echo) && !json_is_boolean(echo))
        return tern_api_fail(err, 400, NULL, "echo", "'echo' must be a boolean");
    r->echo = !chat && json_is_true(echo);
    if (!logprobs_fields(body, chat, r, err) || !response_format(p, body, r, err))
        return false;
    r->gen.prompt_logprobs = r->echo && r->gen.logprobs >= 0;
    struct tern_api_tools tools = {0};
    if (chat && !tools_fields(body, &tools, r, err))
        return false;
    if (chat) {
        const char *why = NULL;
        char *prompt = render_chat(format, json_object_get(body, "messages"), tools.system, &why);
        tern_api_tools_free(&tools);
        if (!prompt)
            return why ? tern_api_fail(err, 400, NULL, "messages", "%s", why)
                       : tern_api_fail(err, 500, NULL, NULL, "out of memory");
        r->prompts = calloc(1, sizeof *r->prompts);
        r->n_prompts = r->prompts ? 1 : 0;
        const bool ok = r->prompts && !tern_tokenize(tok, prompt, strlen(prompt), false, true,
                                                     &r->prompts[0].ids, &r->prompts[0].n_ids);
        free(prompt);
        if (!ok)
            return tern_api_fail(err, 500, NULL, NULL, "the prompt could not be tokenized");
    } else if (!completion_prompts(tok, json_object_get(body, "prompt"), r->echo, r, err)) {
        return false;
    }
    struct tern_sampler_params *sp = &r->gen.sampling;
    *sp = p->sampling;
    if (!p->seed_set)
        sp->seed = seed;
    r->gen.max_tokens = chat ? -1 : 16;
    bool bad = false;
    double v;
    const char *param = NULL;
    /* OpenAI's fields, and llama-server's top_k, min_p, repeat_penalty and repeat_last_n */
    const struct {
        const char *key;
        double lo, hi;
        float *real;
        int32_t *integer;
    } fields[] = {{"temperature", 0, 2, &sp->temperature, NULL},
                  {"top_p", 0, 1, &sp->top_p, NULL},
                  {"top_k", 0, 1 << 30, NULL, &sp->top_k},
                  {"min_p", 0, 1, &sp->min_p, NULL},
                  {"frequency_penalty", -2, 2, &sp->frequency_penalty, NULL},
                  {"presence_penalty", -2, 2, &sp->presence_penalty, NULL},
                  {"repeat_penalty", 0.01, 100, &sp->repeat_penalty, NULL},
                  {"repeat_last_n", 0, 1 << 20, NULL, &sp->repeat_last_n}};
    for (size_t i = 0; i < sizeof fields / sizeof *fields && !param; i++) {
        if (get_number(body, fields[i].key, fields[i].lo, fields[i].hi, &v, &bad)) {
            if (!fields[i].integer)
                *fields[i].real = (float)v;
            else if (json_is_integer(json_object_get(body, fields[i].key)))
                *fields[i].integer = (int32_t)v;
            else
                bad = true;
        }
        if (bad)
            param = fields[i].key;
    }
    if (!param && !logit_bias_field(tok, body, sp, err))
        return false;
    if (sp->top_p < 1e-6f) /* top_p 0: the most likely token alone */
        sp->top_p = 1e-6f;
    const json_t *mt = json_object_get(body, "max_completion_tokens");
    if (!mt || json_is_null(mt))
        mt = json_object_get(body, "max_tokens");
    if (!param && mt && !json_is_null(mt)) {
        /* 0 with echo: the prompt alone, to score it */
        if (!json_is_integer(mt) || json_integer_value(mt) < (r->echo ? 0 : 1))
            param = "max_tokens";
        else
            r->gen.max_tokens =
                (int)(json_integer_value(mt) < (1 << 24) ? json_integer_value(mt) : (1 << 24));
    }
    const json_t *sd = json_object_get(body, "seed");
    if (!param && sd && !json_is_null(sd)) {
        if (!json_is_integer(sd))
            param = "seed";
        else
            sp->seed = (uint64_t)json_integer_value(sd);
    }
    const json_t *n = json_object_get(body, "n");
    r->n = 1;
    if (!param && n && !json_is_null(n)) {
        if (!json_is_integer(n) || json_integer_value(n) < 1 ||
            json_integer_value(n) * r->n_prompts > TERN_API_MAX_CHOICES)
            return tern_api_fail(err, 400, NULL, "n",
                                 "'n' must be an integer from 1 to %d (%d choices in all)",
                                 TERN_API_MAX_CHOICES / r->n_prompts, TERN_API_MAX_CHOICES);
        r->n = (int)json_integer_value(n);
    }
    const json_t *stream = json_object_get(body, "stream");
    if (!param && stream && !json_is_null(stream)) {
        if (!json_is_boolean(stream))
            param = "stream";
        r->stream = json_is_true(stream);
    }
    const json_t *so = json_object_get(body, "stream_options");
    if (!param && so && !json_is_null(so)) {
        const json_t *iu = json_object_get(so, "include_usage");
        if (!json_is_object(so) || (iu && !json_is_boolean(iu)))
            param = "stream_options";
        r->usage = json_is_true(iu);
    }
    const json_t *stop = json_object_get(body, "stop");
    if (!param && stop && !json_is_null(stop)) {
        if (json_is_string(stop)) {
            r->gen.stop[r->gen.n_stop++] = json_string_value(stop);
        } else if (json_is_array(stop) && json_array_size(stop) <= TERN_ENGINE_MAX_STOP) {
            for (size_t i = 0; i < json_array_size(stop) && !param; i++) {
                if (!json_is_string(json_array_get(stop, i)))
                    param = "stop";
                else
                    r->gen.stop[r->gen.n_stop++] = json_string_value(json_array_get(stop, i));
            }
        } else {
            param = "stop";
        }
    }
    if (param && !strcmp(param, "stop"))
        return tern_api_fail(err, 400, NULL, param,
                             "'stop' must be a string or an array of at most %d strings",
                             TERN_ENGINE_MAX_STOP);
    if (param)
        return tern_api_fail(err, 400, NULL, param, "'%s' has the wrong type or an out-of-range value",
                             param);
    return true;
}

bool tern_api_parse(const struct tern_server_params *p, const tern_tokenizer *tok,
                    enum tern_chat_format format, uint64_t seed, const json_t *body, bool chat,
                    struct tern_api_request *r, struct tern_api_error *err) {
    memset(r, 0, sizeof *r);
    if (parse(p, tok, format, seed, body, chat, r, err))
        return true;
    tern_api_request_free(r);
    return false;
}

void tern_api_request_free(struct tern_api_request *r) {
    for (int i = 0; i < r->n_prompts; i++) {
        free(r->prompts[i].ids);
        free(r->prompts[i].echo);
        free(r->prompts[i].offsets);
    }
    free(r->prompts);
    free(r->json_schema);
    memset(r, 0, sizeof *r);
}

bool tern_api_tokenize(const tern_tokenizer *tok, int n_ctx, const json_t *body, json_t **reply,
                       struct tern_api_error *err) {
    const char *key = json_object_get(body, "prompt") ? "prompt" : "content";
    const json_t *text = json_object_get(body, key);
    if (!json_is_string(text))
        return tern_api_fail(err, 400, NULL, key, "'prompt' (or 'content') must be a string");
    const char *flag = json_object_get(body, "add_special_tokens") ? "add_special_tokens" : "add_special";
    const json_t *special = json_object_get(body, flag);
    if (special && !json_is_null(special) && !json_is_boolean(special))
        return tern_api_fail(err, 400, NULL, flag, "'%s' must be a boolean", flag);
    struct tern_api_prompt p = {0};
    const bool ok =
        text_prompt(tok, json_string_value(text), json_string_length(text), json_is_true(special), false, &p);
    json_t *ids = json_array();
    for (size_t i = 0; ok && i < p.n_ids; i++)
        json_array_append_new(ids, json_integer(p.ids[i]));
    free(p.ids);
    if (!ok) {
        json_decref(ids);
        return tern_api_fail(err, 500, NULL, NULL, "the text could not be tokenized");
    }
    *reply = json_pack("{s:o,s:I,s:i}", "tokens", ids, "count", (json_int_t)p.n_ids, "max_model_len", n_ctx);
    return *reply != NULL || tern_api_fail(err, 500, NULL, NULL, "out of memory");
}

bool tern_api_detokenize(const tern_tokenizer *tok, const json_t *body, json_t **reply,
                         struct tern_api_error *err) {
    const json_t *a = json_object_get(body, "tokens");
    struct tern_api_prompt p = {0};
    bool bad = !json_is_array(a);
    if (!bad && json_array_size(a) == 0) {
        *reply = json_pack("{s:s,s:s}", "prompt", "", "content", "");
        return true;
    }
    if (bad || !ids_prompt(tok, a, true, &p, &bad)) {
        free(p.ids);
        free(p.offsets);
        return bad ? tern_api_fail(err, 400, NULL, "tokens", "'tokens' must be a list of token ids (0 to %d)",
                                   tern_tokenizer_n_vocab(tok) - 1)
                   : tern_api_fail(err, 500, NULL, NULL, "out of memory");
    }
    *reply = json_pack("{s:s,s:s}", "prompt", p.echo, "content", p.echo);
    free(p.ids);
    free(p.echo);
    free(p.offsets);
    return *reply != NULL || tern_api_fail(err, 500, NULL, NULL, "out of memory");
}

/* A token's text for /tokenizer_info; NULL for none (id < 0). */
static json_t *special_text(const tern_tokenizer *tok, int32_t id) {
    if (id < 0)
        return json_null();
    char *s = tern_api_ids_text(tok, &id, 1, NULL);
    json_t *t = s ? json_string(s) : NULL;
    free(s);
    return t ? t : json_null();
}

json_t *tern_api_tokenizer_info(const tern_tokenizer *tok, int n_ctx, struct tern_str chat_template) {
    json_t *info = json_pack("{s:o,s:o,s:n,s:i,s:i}", "eos_token", special_text(tok, tern_tokenizer_eos(tok)),
                             "bos_token", special_text(tok, tern_tokenizer_bos(tok)), "pad_token",
                             "model_max_length", n_ctx, "vocab_size", tern_tokenizer_n_vocab(tok));
    json_t *t = chat_template.ptr ? json_stringn(chat_template.ptr, (size_t)chat_template.len) : NULL;
    if (info && t) /* a template that is not UTF-8 is left out */
        json_object_set_new(info, "chat_template", t);
    return info;
}
