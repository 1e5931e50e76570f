/* The HTTP API (see http.h). */
#include "http.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include "../../scheduler/log.h"
#include "../generate/generate.h"

struct tern_server {
    struct MHD_Daemon *d;
    struct tern_server_params p;
    char *api_key, *model_id, *cors;
    int port;
    /* set once by tern_server_ready, read by connection threads */
    _Atomic(tern_engine *) engine;
    const tern_tokenizer *tok;
    enum tern_chat_format format;
    int n_ctx;
    atomic_long next_id;
};

enum kind { COMPLETION, CHAT };

struct conn;

/* One streamed reply: server-sent events produced as the engine emits text. */
struct stream {
    tern_server *srv;
    tern_job *job;
    enum kind kind;
    long id;
    long created;
    bool usage; /* stream_options.include_usage */
    int phase;  /* 0: role chunk (chat), 1: text, 2: final chunk, 3: usage, 4: [DONE], 5: end */
    char *text; /* the job's text taken so far */
    size_t text_cap, text_len, sent;
    char *out; /* pending event bytes */
    size_t out_len, out_off;
    struct conn *conn; /* whose log line reads the token counts */
};

/* Per connection (one request): the body, and what the log line says. */
struct conn {
    const tern_server *srv;
    char *body;
    size_t len, cap;
    bool too_big;
    double t0;
    char method[8], path[64];
    int status;
    int tokens, cached; /* prompt and generated tokens; prompt tokens found in the slot's cache */
};

/* The connection's log line counts the job's tokens. */
static void log_usage(struct conn *cs, const tern_job *j) {
    int p, c, k;
    tern_job_usage(j, &p, &c, &k);
    cs->tokens = p + c;
    cs->cached = k;
}

static double now_s(void) {
    return tern_time_s();
}

/* Whether a page from origin ("scheme://host[:port]") may call the API from a browser: by default
 * pages served from this machine (host localhost, 127.x or [::1]), so that a local chat front-end
 * works and a web site the user visits cannot drive the model; else what --cors lists. */
static bool origin_allowed(const tern_server *srv, const char *origin) {
    if (srv->cors) {
        if (!strcmp(srv->cors, "*"))
            return true;
        const size_t n = strlen(origin);
        for (const char *p = srv->cors; *p;) {
            const char *end = strchr(p, ',');
            const size_t len = end ? (size_t)(end - p) : strlen(p);
            if (len == n && !strncmp(p, origin, n))
                return true;
            p += len + (end != NULL);
        }
        return false;
    }
    const char *host = strstr(origin, "://");
    if (!host)
        return false;
    host += 3;
    static const char *const local[] = {"localhost", "127.", "[::1]"};
    for (int i = 0; i < 3; i++) {
        const size_t len = strlen(local[i]);
        if (strncmp(host, local[i], len) != 0)
            continue;
        if (i == 1) /* 127.x.y.z: digits and dots up to the port or the end */
            for (host += len; (*host >= '0' && *host <= '9') || *host == '.'; host++)
                ;
        else
            host += len;
        return *host == 0 || *host == ':';
    }
    return false;
}

/* The CORS headers of a response to a browser's request from an allowed origin (none otherwise,
 * and the browser keeps the page from reading it). */
static void add_cors(const tern_server *srv, struct MHD_Connection *c, struct MHD_Response *r) {
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    MHD_add_response_header(r, "Vary", "Origin");
    if (!origin || !origin_allowed(srv, origin))
        return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(r, "Access-Control-Max-Age", "600");
}

static enum MHD_Result send_json(struct MHD_Connection *c, struct conn *cs, int status, json_t *body) {
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    add_cors(cs->srv, c, r);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    cs->status = status;
    return ret;
}

/* An OpenAI-style error object. */
static enum MHD_Result send_error(struct MHD_Connection *c, struct conn *cs, int status, const char *type,
                                  const char *code, const char *param, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *err = json_pack("{s:{s:s,s:s,s:s?,s:s?}}", "error", "message", msg, "type", type, "param", param,
                            "code", code);
    return send_json(c, cs, status, err);
}

static enum MHD_Result bad_request(struct MHD_Connection *c, struct conn *cs, const char *param,
                                   const char *fmt, const char *detail) {
    return send_error(c, cs, 400, "invalid_request_error", NULL, param, fmt, detail);
}

/* ---------------------------------------------------------------- request parsing */

struct gen {
    enum kind kind;
    int32_t *ids;
    size_t n_ids;
    struct tern_gen_request req;
    bool stream, usage;
};

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
    s[0] = 0;
    for (size_t i = 0; i < json_array_size(content); i++)
        strcat(s, json_string_value(json_object_get(json_array_get(content, i), "text")));
    return s;
}

/* The prompt text of a chat request; NULL with *why set when the messages are malformed. */
static char *render_chat(const tern_server *srv, const json_t *messages, const char **why) {
    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        *why = "'messages' must be a non-empty array";
        return NULL;
    }
    size_t len = 0, cap = 256;
    char *all = malloc(cap);
    if (!all)
        return NULL;
    all[0] = 0;
    for (size_t i = 0; i < json_array_size(messages); i++) {
        const json_t *m = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        enum tern_chat_role r;
        if (role && !strcmp(role, "system"))
            r = TERN_CHAT_SYSTEM;
        else if (role && (!strcmp(role, "user") || !strcmp(role, "developer")))
            r = role[0] == 'u' ? TERN_CHAT_USER : TERN_CHAT_SYSTEM;
        else if (role && !strcmp(role, "assistant"))
            r = TERN_CHAT_ASSISTANT;
        else {
            *why = "each message needs a 'role' of system, user or assistant";
            free(all);
            return NULL;
        }
        char *content = message_text(json_object_get(m, "content"));
        if (!content) {
            *why = "each message needs a 'content' string";
            free(all);
            return NULL;
        }
        char *text = tern_chat_render_message(srv->format, r, content, i == 0);
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
    const char *gp = tern_chat_generation_prompt(srv->format);
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

/* Parse a completion or chat request into g; on a client error sends the 4xx and returns false
 * with *ret set. */
static bool parse_request(tern_server *srv, struct MHD_Connection *c, struct conn *cs, enum kind kind,
                          const json_t *body, struct gen *g, enum MHD_Result *ret) {
    memset(g, 0, sizeof *g);
    g->kind = kind;
    const char *why = NULL;
    const json_t *model = json_object_get(body, "model");
    if (model && !json_is_string(model)) {
        *ret = bad_request(c, cs, "model", "%s", "'model' must be a string");
        return false;
    }
    if (model && strcmp(json_string_value(model), srv->model_id) != 0) {
        *ret = send_error(c, cs, 404, "invalid_request_error", "model_not_found", "model",
                          "the model '%s' does not exist (this server runs '%s')", json_string_value(model),
                          srv->model_id);
        return false;
    }
    char *prompt = NULL;
    bool add_bos = false;
    if (kind == CHAT) {
        prompt = render_chat(srv, json_object_get(body, "messages"), &why);
        if (!prompt) {
            *ret = why ? bad_request(c, cs, "messages", "%s", why)
                       : send_error(c, cs, 500, "server_error", NULL, NULL, "out of memory");
            return false;
        }
    } else {
        const json_t *p = json_object_get(body, "prompt");
        if (json_is_array(p) && json_array_size(p) == 1)
            p = json_array_get(p, 0);
        if (!json_is_string(p) || !json_string_length(p)) {
            *ret = bad_request(c, cs, "prompt", "%s", "'prompt' must be a non-empty string");
            return false;
        }
        prompt = strdup(json_string_value(p));
        add_bos = tern_tokenizer_add_bos(srv->tok);
    }
    tern_status st = prompt
                         ? tern_tokenize(srv->tok, prompt, strlen(prompt), add_bos, true, &g->ids, &g->n_ids)
                         : TERN_ERR_NOMEM;
    free(prompt);
    if (st) {
        *ret = send_error(c, cs, 500, "server_error", NULL, NULL, "the prompt could not be tokenized");
        return false;
    }
    struct tern_sampler_params *sp = &g->req.sampling;
    *sp = srv->p.sampling;
    if (!srv->p.seed_set)
        sp->seed = (uint64_t)time(NULL) ^ (uint64_t)atomic_load(&srv->next_id) * 0x9e3779b97f4a7c15ULL;
    g->req.max_tokens = kind == COMPLETION ? 16 : -1;
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
    if (sp->top_p < 1e-6f) /* top_p 0: the most likely token alone */
        sp->top_p = 1e-6f;
    const json_t *mt = json_object_get(body, "max_completion_tokens");
    if (!mt || json_is_null(mt))
        mt = json_object_get(body, "max_tokens");
    if (!param && mt && !json_is_null(mt)) {
        if (!json_is_integer(mt) || json_integer_value(mt) < 1)
            param = "max_tokens";
        else
            g->req.max_tokens =
                (int)(json_integer_value(mt) < (1 << 24) ? json_integer_value(mt) : (1 << 24));
    }
    const json_t *seed = json_object_get(body, "seed");
    if (!param && seed && !json_is_null(seed)) {
        if (!json_is_integer(seed))
            param = "seed";
        else
            sp->seed = (uint64_t)json_integer_value(seed);
    }
    const json_t *n = json_object_get(body, "n");
    if (!param && n && !json_is_null(n) && (!json_is_integer(n) || json_integer_value(n) != 1))
        param = "n";
    const json_t *stream = json_object_get(body, "stream");
    if (!param && stream && !json_is_null(stream)) {
        if (!json_is_boolean(stream))
            param = "stream";
        g->stream = json_is_true(stream);
    }
    const json_t *so = json_object_get(body, "stream_options");
    if (!param && so && !json_is_null(so)) {
        const json_t *iu = json_object_get(so, "include_usage");
        if (!json_is_object(so) || (iu && !json_is_boolean(iu)))
            param = "stream_options";
        g->usage = json_is_true(iu);
    }
    const json_t *stop = json_object_get(body, "stop");
    if (!param && stop && !json_is_null(stop)) {
        if (json_is_string(stop)) {
            g->req.stop[g->req.n_stop++] = json_string_value(stop);
        } else if (json_is_array(stop) && json_array_size(stop) <= TERN_ENGINE_MAX_STOP) {
            for (size_t i = 0; i < json_array_size(stop) && !param; i++) {
                if (!json_is_string(json_array_get(stop, i)))
                    param = "stop";
                else
                    g->req.stop[g->req.n_stop++] = json_string_value(json_array_get(stop, i));
            }
        } else {
            param = "stop";
        }
    }
    if (param && !strcmp(param, "stop")) {
        *ret = send_error(c, cs, 400, "invalid_request_error", NULL, param,
                          "'stop' must be a string or an array of at most %d strings", TERN_ENGINE_MAX_STOP);
        return false;
    }
    if (param) {
        *ret = bad_request(c, cs, param, "'%s' has the wrong type or an out-of-range value", param);
        return false;
    }
    g->req.prompt = g->ids;
    g->req.n_prompt = (int)g->n_ids;
    return true;
}

/* ---------------------------------------------------------------- replies */

static json_t *usage_object(const tern_job *j) {
    int p, c, k;
    tern_job_usage(j, &p, &c, &k);
    return json_pack("{s:i,s:i,s:i,s:{s:i}}", "prompt_tokens", p, "completion_tokens", c, "total_tokens",
                     p + c, "prompt_tokens_details", "cached_tokens", k);
}

static const char *finish_reason(const tern_job *j) {
    return tern_finish_name(tern_job_finish(j));
}

/* A chunk of a streamed reply (text may be NULL for the role and final chunks). */
static json_t *chunk_object(const struct stream *s, const char *text, size_t len, const char *finish,
                            bool role) {
    const char *object = s->kind == CHAT ? "chat.completion.chunk" : "text_completion";
    char id[48];
    snprintf(id, sizeof id, "%s-%ld", s->kind == CHAT ? "chatcmpl" : "cmpl", s->id);
    json_t *choice;
    if (s->kind == CHAT) {
        json_t *delta = json_object();
        if (role)
            json_object_set_new(delta, "role", json_string("assistant"));
        if (text)
            json_object_set_new(delta, "content", json_stringn(text, len));
        choice = json_pack("{s:i,s:o,s:o}", "index", 0, "delta", delta, "finish_reason",
                           finish ? json_string(finish) : json_null());
    } else {
        choice = json_pack("{s:i,s:s%,s:n,s:o}", "index", 0, "text", text ? text : "", text ? len : 0,
                           "logprobs", "finish_reason", finish ? json_string(finish) : json_null());
    }
    return json_pack("{s:s,s:s,s:I,s:s,s:[o]}", "id", id, "object", object, "created", (json_int_t)s->created,
                     "model", s->srv->model_id, "choices", choice);
}

static void queue_event(struct stream *s, json_t *obj) {
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    const char *payload = text ? text : "[DONE]";
    const size_t n = strlen(payload) + 8;
    char *out = realloc(s->out, n + 1);
    if (out) {
        s->out = out;
        s->out_len = (size_t)snprintf(out, n + 1, "data: %s\n\n", payload);
        s->out_off = 0;
    }
    free(text);
}

/* The next event of a stream into s->out; false at the end. */
static bool next_event(struct stream *s) {
    for (;;) {
        switch (s->phase) {
        case 0:
            s->phase = 1;
            if (s->kind == CHAT) {
                queue_event(s, chunk_object(s, NULL, 0, NULL, true));
                return true;
            }
            break;
        case 1:
            if (s->text_len > s->sent) {
                queue_event(s, chunk_object(s, s->text + s->sent, s->text_len - s->sent, NULL, false));
                s->sent = s->text_len;
                return true;
            }
            if (!tern_job_next(s->job, &s->text, &s->text_cap, &s->text_len))
                s->phase = 2;
            break;
        case 2:
            s->phase = s->usage ? 3 : 4;
            queue_event(s, chunk_object(s, NULL, 0, finish_reason(s->job), false));
            return true;
        case 3: {
            s->phase = 4;
            char id[48];
            snprintf(id, sizeof id, "%s-%ld", s->kind == CHAT ? "chatcmpl" : "cmpl", s->id);
            queue_event(s, json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", id, "object",
                                     s->kind == CHAT ? "chat.completion.chunk" : "text_completion", "created",
                                     (json_int_t)s->created, "model", s->srv->model_id, "choices", "usage",
                                     usage_object(s->job)));
            return true;
        }
        case 4:
            s->phase = 5;
            queue_event(s, NULL);
            return true;
        default:
            return false;
        }
    }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    struct stream *s = cls;
    if (s->out_off == s->out_len) {
        if (!next_event(s)) {
            log_usage(s->conn, s->job);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
    }
    const size_t n = s->out_len - s->out_off < max ? s->out_len - s->out_off : max;
    memcpy(buf, s->out + s->out_off, n);
    s->out_off += n;
    return (ssize_t)n;
}

/* The stream is over, or the client went away: the job stops and its slot frees. */
static void stream_free(void *cls) {
    struct stream *s = cls;
    tern_job_free(s->job);
    free(s->text);
    free(s->out);
    free(s);
}

static enum MHD_Result reply_whole(tern_server *srv, struct MHD_Connection *c, struct conn *cs,
                                   enum kind kind, tern_job *job, long id) {
    char *text = NULL;
    size_t cap = 0, len = 0;
    while (tern_job_next(job, &text, &cap, &len))
        ;
    char sid[48];
    snprintf(sid, sizeof sid, "%s-%ld", kind == CHAT ? "chatcmpl" : "cmpl", id);
    json_t *choice = kind == CHAT
                         ? json_pack("{s:i,s:{s:s,s:s%},s:s}", "index", 0, "message", "role", "assistant",
                                     "content", text ? text : "", len, "finish_reason", finish_reason(job))
                         : json_pack("{s:i,s:s%,s:n,s:s}", "index", 0, "text", text ? text : "", len,
                                     "logprobs", "finish_reason", finish_reason(job));
    json_t *body =
        json_pack("{s:s,s:s,s:I,s:s,s:[o],s:o}", "id", sid, "object",
                  kind == CHAT ? "chat.completion" : "text_completion", "created", (json_int_t)time(NULL),
                  "model", srv->model_id, "choices", choice, "usage", usage_object(job));
    log_usage(cs, job);
    free(text);
    tern_job_free(job);
    return send_json(c, cs, 200, body);
}

static enum MHD_Result generate(tern_server *srv, struct MHD_Connection *c, struct conn *cs, enum kind kind) {
    json_error_t jerr;
    json_t *body = cs->body ? json_loadb(cs->body, cs->len, 0, &jerr) : NULL;
    if (!body && cs->body)
        return send_error(c, cs, 400, "invalid_request_error", NULL, NULL,
                          "the body is not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                          jerr.column);
    if (!json_is_object(body)) {
        json_decref(body);
        return bad_request(c, cs, NULL, "the body is not a JSON object%s", cs->body ? "" : " (it is empty)");
    }
    struct gen g;
    enum MHD_Result ret;
    bool ok = parse_request(srv, c, cs, kind, body, &g, &ret);
    tern_job *job = NULL;
    tern_status st = ok ? tern_engine_submit(atomic_load(&srv->engine), &g.req, &job) : TERN_OK;
    json_decref(body); /* the stop strings were copied at submit */
    free(g.ids);
    if (!ok)
        return ret;
    if (st == TERN_ERR_CONTEXT_FULL)
        return send_error(c, cs, 400, "invalid_request_error", "context_length_exceeded",
                          kind == CHAT ? "messages" : "prompt",
                          "the prompt has %zu tokens; the context holds %d", g.n_ids, srv->n_ctx);
    if (st == TERN_ERR_BUSY)
        return send_error(c, cs, 503, "server_error", "busy", NULL,
                          "the server is busy: every slot and queue place is taken; retry later");
    if (st)
        return send_error(c, cs, 500, "server_error", NULL, NULL, "the request could not be queued");
    const long id = atomic_fetch_add(&srv->next_id, 1);
    if (!g.stream)
        return reply_whole(srv, c, cs, kind, job, id);
    struct stream *s = calloc(1, sizeof *s);
    struct MHD_Response *r =
        s ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free) : NULL;
    if (!r) {
        free(s);
        tern_job_free(job);
        return MHD_NO;
    }
    *s = (struct stream){.srv = srv,
                         .job = job,
                         .kind = kind,
                         .id = id,
                         .created = (long)time(NULL),
                         .usage = g.usage,
                         .conn = cs};
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    add_cors(srv, c, r);
    ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    cs->status = 200;
    return ret;
}

/* ---------------------------------------------------------------- routing */

static bool authorized(const tern_server *srv, struct MHD_Connection *c) {
    if (!srv->api_key)
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    return h && strncmp(h, "Bearer ", 7) == 0 && strcmp(h + 7, srv->api_key) == 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    tern_server *srv = cls;
    struct conn *cs = *con_cls;
    if (!cs) { /* first call: headers only */
        cs = calloc(1, sizeof *cs);
        if (!cs)
            return MHD_NO;
        cs->srv = srv;
        cs->t0 = now_s();
        snprintf(cs->method, sizeof cs->method, "%s", method);
        snprintf(cs->path, sizeof cs->path, "%s", url);
        *con_cls = cs;
        return MHD_YES;
    }
    if (*upload_size) { /* body data */
        if (!cs->too_big && cs->len + *upload_size > srv->p.max_body)
            cs->too_big = true;
        if (!cs->too_big) {
            if (cs->len + *upload_size + 1 > cs->cap) {
                size_t cap = (cs->len + *upload_size + 1) * 2;
                char *b = realloc(cs->body, cap);
                if (!b)
                    return MHD_NO;
                cs->body = b;
                cs->cap = cap;
            }
            memcpy(cs->body + cs->len, upload, *upload_size);
            cs->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    const bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    tern_engine *engine = atomic_load(&srv->engine);
    const char *one = !strncmp(url, "/v1/models/", 11) ? url + 11 : NULL; /* GET /v1/models/ID */
    const bool models = one || !strcmp(url, "/v1/models"), completions = !strcmp(url, "/v1/completions"),
               chat = !strcmp(url, "/v1/chat/completions"), health = !strcmp(url, "/health");
    if (!strcmp(method, "OPTIONS") && (models || completions || chat || health)) {
        /* a browser's preflight: no key (it never carries one), the CORS headers if the origin may */
        struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        add_cors(srv, c, r);
        const enum MHD_Result ret = MHD_queue_response(c, 204, r);
        MHD_destroy_response(r);
        cs->status = 204;
        return ret;
    }
    if (health) {
        if (!get)
            return send_error(c, cs, 405, "invalid_request_error", NULL, NULL, "use GET on %s", url);
        return send_json(c, cs, engine ? 200 : 503, json_pack("{s:s}", "status", engine ? "ok" : "loading"));
    }
    if (!models && !completions && !chat)
        return send_error(c, cs, 404, "invalid_request_error", "unknown_url", NULL, "no such endpoint: %s %s",
                          method, url);
    if (!authorized(srv, c))
        return send_error(c, cs, 401, "invalid_request_error", "invalid_api_key", NULL,
                          "a valid API key is required: Authorization: Bearer KEY");
    if (models ? !get : !post)
        return send_error(c, cs, 405, "invalid_request_error", NULL, NULL, "use %s on %s",
                          models ? "GET" : "POST", url);
    if (one && strcmp(one, srv->model_id) != 0)
        return send_error(c, cs, 404, "invalid_request_error", "model_not_found", "model",
                          "the model '%s' does not exist (this server runs '%s')", one, srv->model_id);
    if (models) {
        json_t *model = json_pack("{s:s,s:s,s:i,s:s}", "id", srv->model_id, "object", "model", "created", 0,
                                  "owned_by", "tern");
        return send_json(c, cs, 200, one ? model : json_pack("{s:s,s:[o]}", "object", "list", "data", model));
    }
    if (cs->too_big)
        return send_error(c, cs, 413, "invalid_request_error", "request_too_large", NULL,
                          "the body is larger than %zu bytes", srv->p.max_body);
    if (!engine)
        return send_error(c, cs, 503, "server_error", "loading", NULL, "the model is still loading");
    return generate(srv, c, cs, chat ? CHAT : COMPLETION);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    struct conn *cs = *con_cls;
    if (!cs)
        return;
    char cached[40] = "";
    if (cs->cached)
        snprintf(cached, sizeof cached, " (%d cached)", cs->cached);
    tern_log_info("%s %s %d %d tokens%s %.3f s%s", cs->method, cs->path, cs->status, cs->tokens, cached,
                  now_s() - cs->t0, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (client gone)");
    free(cs->body);
    free(cs);
    *con_cls = NULL;
}

/* ---------------------------------------------------------------- life cycle */

/* Whether a listening address is the machine's own loopback (127.0.0.0/8, ::1, or 127.x mapped into
 * IPv6): only local processes reach it. */
static bool loopback(const struct sockaddr *a) {
    if (a->sa_family == AF_INET)
        return ntohl(((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr) >> 24 == 127;
    if (a->sa_family != AF_INET6)
        return false;
    const struct in6_addr *v6 = &((const struct sockaddr_in6 *)(const void *)a)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(v6) || (IN6_IS_ADDR_V4MAPPED(v6) && v6->s6_addr[12] == 127);
}

tern_status tern_server_create(const struct tern_server_params *p, tern_server **out) {
    *out = NULL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", p->port);
    const int gai = getaddrinfo(p->host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        tern_log_error("cannot listen on host '%s': %s", p->host, gai_strerror(gai));
        return TERN_ERR_ARG;
    }
    tern_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        freeaddrinfo(ai);
        return TERN_ERR_NOMEM;
    }
    srv->p = *p;
    srv->api_key = p->api_key ? strdup(p->api_key) : NULL;
    srv->model_id = strdup(p->model_id);
    srv->cors = p->cors ? strdup(p->cors) : NULL;
    srv->p.api_key = srv->api_key;
    srv->p.model_id = srv->model_id;
    srv->p.cors = srv->cors;
    atomic_store(&srv->next_id, 1);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    srv->d =
        MHD_start_daemon(flags, (uint16_t)p->port, NULL, NULL, handle, srv, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                         MHD_OPTION_NOTIFY_COMPLETED, completed, srv, MHD_OPTION_CONNECTION_LIMIT, 256u,
                         MHD_OPTION_CONNECTION_TIMEOUT, 600u, MHD_OPTION_END);
    const bool local = loopback(ai->ai_addr);
    freeaddrinfo(ai);
    if (!srv->d) {
        tern_log_error("cannot listen on %s:%d (address in use, or not an address of this machine)", p->host,
                       p->port);
        tern_server_free(srv);
        return TERN_ERR_IO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : p->port;
    if (!local && !srv->api_key)
        tern_log_warn("no --api-key: anyone who can reach %s:%d can use this server", p->host, srv->port);
    *out = srv;
    return TERN_OK;
}

int tern_server_port(const tern_server *srv) {
    return srv->port;
}

void tern_server_ready(tern_server *srv, tern_engine *e, const tern_tokenizer *tok, enum tern_chat_format f,
                       int n_ctx) {
    srv->tok = tok;
    srv->format = f;
    srv->n_ctx = n_ctx;
    atomic_store(&srv->engine, e);
}

void tern_server_free(tern_server *srv) {
    if (!srv)
        return;
    if (srv->d)
        MHD_stop_daemon(srv->d);
    free(srv->api_key);
    free(srv->model_id);
    free(srv->cors);
    free(srv);
}
