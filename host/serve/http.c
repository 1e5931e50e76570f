/* The HTTP API (see http.h). */
#include "http.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
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
#include "../generate/json_mode.h"
#include "api_request.h"
#include "api_tools.h"
#include "web_ui.h"

struct tern_server {
    struct MHD_Daemon *d;
    struct tern_server_params p;
    char *api_key, *model_id, *cors;
    int port;
    /* set once by tern_server_ready, read by connection threads */
    _Atomic(tern_engine *) engine;
    const tern_tokenizer *tok;
    enum tern_chat_format format;
    struct tern_str chat_template;
    int n_ctx;
    tern_json_vocab *json; /* JSON mode's table of the tokenizer (NULL: out of memory) */
    atomic_long next_id;
};

enum kind { COMPLETION, CHAT };

struct conn;

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

/* ---------------------------------------------------------------- replies */

struct usage {
    int prompt, completion, cached;
};

/* Adds job j's tokens to u; its prompt's only with prompt (a prompt counts once, whatever its n). */
static void add_usage(struct usage *u, const tern_job *j, bool prompt) {
    int p, c, k;
    tern_job_usage(j, &p, &c, &k);
    u->completion += c;
    if (prompt) {
        u->prompt += p;
        u->cached += k;
    }
}

/* A reply's id: chatcmpl-N or cmpl-N. */
static void reply_id(char *buf, size_t size, bool chat, long id) {
    snprintf(buf, size, "%s-%ld", chat ? "chatcmpl" : "cmpl", id);
}

static json_t *usage_object(const struct usage *u) {
    return json_pack("{s:i,s:i,s:i,s:{s:i}}", "prompt_tokens", u->prompt, "completion_tokens", u->completion,
                     "total_tokens", u->prompt + u->completion, "prompt_tokens_details", "cached_tokens",
                     u->cached);
}

/* The connection's log line counts the tokens. */
static void log_usage(struct conn *cs, const struct usage *u) {
    cs->tokens = u->prompt + u->completion;
    cs->cached = u->cached;
}

static const char *finish_reason(const tern_job *j) {
    return tern_finish_name(tern_job_finish(j));
}

/* The message fields of a chat choice of request r whose whole text is text[len] (choice k of reply
 * id): its content, or, where a tool may be called, what the model's object holds: the content of
 * its "response", or "tool_calls" (null content; *finish then "tool_calls"; with indexed, each call
 * numbered, as a stream's delta has them). A reply cut short is its text. NULL: out of memory. */
static json_t *message_fields(const struct tern_api_request *r, const char *text, size_t len, long id, int k,
                              bool indexed, const char **finish) {
    json_t *calls = NULL;
    char *content = NULL, base[64];
    snprintf(base, sizeof base, "%ld_%d", id, k);
    if (r->tools && tern_api_tool_reply(text, len, base, &calls, &content) && calls) {
        for (size_t i = 0; indexed && i < json_array_size(calls); i++)
            json_object_set_new(json_array_get(calls, i), "index", json_integer((json_int_t)i));
        *finish = "tool_calls";
        return json_pack("{s:n,s:o}", "content", "tool_calls", calls);
    }
    json_t *m = content ? json_pack("{s:s}", "content", content) : json_pack("{s:s%}", "content", text, len);
    free(content);
    return m;
}

/* Writes a choice's logprobs, record by record, as the reply's text grows. */
struct lp_writer {
    const tern_tokenizer *tok;
    bool chat;
    const size_t *offsets;      /* echo: where each prompt token's text begins (tern_api_prompt) */
    size_t n_prompt, n_offsets; /* the prompt records written; the prompt's tokens */
    size_t reply_base;          /* where the reply's text begins in the choice's text (after the echo) */
    char *piece;                /* one token's bytes */
    size_t piece_cap;
};

static bool lp_writer_init(struct lp_writer *w, const tern_tokenizer *tok, bool chat,
                           const struct tern_api_prompt *p) {
    *w = (struct lp_writer){.tok = tok,
                            .chat = chat,
                            .offsets = p->offsets,
                            .n_offsets = p->n_ids,
                            .reply_base = p->echo ? strlen(p->echo) : 0,
                            .piece_cap = tern_detok_max_bytes(tok) + 1};
    w->piece = malloc(w->piece_cap);
    return w->piece != NULL;
}

/* Token id's text (control tokens written out), and its length in *n: the bytes when they are
 * UTF-8, else "bytes:\xNN..." as OpenAI writes a token that ends inside a character. */
static json_t *token_string(struct lp_writer *w, int32_t id, size_t *n) {
    *n = tern_token_to_bytes(w->tok, id, true, w->piece, w->piece_cap);
    *n = *n < w->piece_cap ? *n : w->piece_cap;
    json_t *s = json_stringn(w->piece, *n);
    if (s)
        return s;
    char hex[4 * 64 + 8] = "bytes:";
    for (size_t i = 0; i < *n && i < 64; i++)
        snprintf(hex + 6 + 4 * i, 5, "\\x%02x", (unsigned char)w->piece[i]);
    return json_string(hex);
}

/* OpenAI's chat form of one token: {"token", "logprob", "bytes"}. */
static json_t *chat_token(struct lp_writer *w, int32_t id, float logprob) {
    size_t n;
    json_t *t = token_string(w, id, &n), *bytes = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(bytes, json_integer((unsigned char)w->piece[i]));
    return json_pack("{s:o,s:f,s:o}", "token", t, "logprob", (double)logprob, "bytes", bytes);
}

/* The logprobs of records r[0 .. n): chat {"content": [...]}, completions {"tokens",
 * "token_logprobs", "top_logprobs", "text_offset"} (top_logprobs: the record's most likely tokens
 * and itself, as OpenAI gives up to logprobs + 1). */
static json_t *logprobs_json(struct lp_writer *w, const struct tern_token_logprob *r, size_t n) {
    if (w->chat) {
        json_t *content = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *item = chat_token(w, r[i].id, r[i].logprob), *top = json_array();
            for (int k = 0; k < r[i].n_top; k++)
                json_array_append_new(top, chat_token(w, r[i].top_id[k], r[i].top_logprob[k]));
            json_object_set_new(item, "top_logprobs", top);
            json_array_append_new(content, item);
        }
        return json_pack("{s:o}", "content", content);
    }
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offsets = json_array();
    for (size_t i = 0; i < n; i++) {
        size_t len;
        json_t *t = token_string(w, r[i].id, &len);
        size_t off = w->reply_base + r[i].start;
        if (r[i].prompt) /* one record a prompt token, in order */
            off = w->n_prompt < w->n_offsets ? w->offsets[w->n_prompt++] : w->reply_base;
        const bool scored = !isnan(r[i].logprob);
        json_t *top = scored ? json_object() : json_null();
        for (int k = 0; k <= r[i].n_top && scored; k++) { /* the most likely, then the token itself */
            const int32_t id = k < r[i].n_top ? r[i].top_id[k] : r[i].id;
            size_t m;
            json_t *key = token_string(w, id, &m);
            if (!json_object_get(top, json_string_value(key)))
                json_object_set_new(top, json_string_value(key),
                                    json_real(k < r[i].n_top ? r[i].top_logprob[k] : r[i].logprob));
            json_decref(key);
        }
        json_array_append_new(tokens, t);
        json_array_append_new(lps, scored ? json_real(r[i].logprob) : json_null());
        json_array_append_new(tops, top);
        json_array_append_new(offsets, json_integer((json_int_t)off));
    }
    return json_pack("{s:o,s:o,s:o,s:o}", "tokens", tokens, "token_logprobs", lps, "top_logprobs", tops,
                     "text_offset", offsets);
}

/* The job of choice k of request r. */
static tern_status submit(tern_server *srv, const struct tern_api_request *r, int k, tern_job **job) {
    struct tern_gen_request g = r->gen;
    g.prompt = r->prompts[k / r->n].ids;
    g.n_prompt = (int)r->prompts[k / r->n].n_ids;
    g.sampling.seed += (uint64_t)(k % r->n);
    g.sampling.json = r->json ? srv->json : NULL;
    g.sampling.json_schema = r->json_schema;
    return tern_engine_submit(atomic_load(&srv->engine), &g, job);
}

/* One choice of a streamed reply. */
struct stream_choice {
    tern_job *job;      /* from its submission until its finish chunk */
    bool over;          /* the job has no more text */
    bool told;          /* where a tool may be called: the reply went out, whole, in one chunk */
    const char *finish; /* then its finish reason ("tool_calls" for calls) */
    char *text;         /* the job's text taken so far */
    size_t text_cap, text_len, sent;
    struct lp_writer lp;
    struct tern_token_logprob *rec; /* the job's logprob records taken and not yet sent */
    size_t rec_cap, rec_len;
};

/* One streamed reply: server-sent events produced as the engine emits text. A request of several
 * choices (n, or a list of prompts) streams them interleaved, each chunk naming its choice, as
 * OpenAI does; the choices the queue has no room for yet wait for this request's earlier ones. */
struct stream {
    tern_server *srv;
    struct tern_api_request r; /* the stream's: later choices are submitted from it */
    json_t *body;              /* held: the stop strings point into it */
    long id;
    long created;
    int n_choices;
    int submitted, open; /* choices submitted; of those, choices not finished */
    int opened;          /* choices whose first chunk (chat's role, completions' echo) went out */
    int turn;            /* the choice to look at first for the next chunk */
    tern_status failed;  /* why a choice could not be queued (TERN_OK: none failed) */
    int phase;           /* 0: first chunks, 1: text and finish chunks, 2: usage, 3: [DONE], 4: end */
    struct stream_choice *c;
    struct usage u;
    char *out; /* pending event bytes */
    size_t out_len, out_off;
    struct conn *conn; /* whose log line reads the token counts */
};

/* A chunk of choice k of a streamed reply (text may be NULL for the role and final chunks), with the
 * logprob records r[0 .. n). */
static json_t *chunk_object(struct stream *s, int k, const char *text, size_t len, const char *finish,
                            bool role, const struct tern_token_logprob *r, size_t n) {
    const bool chat = s->r.chat;
    char id[48];
    reply_id(id, sizeof id, chat, s->id);
    json_t *lp = n ? logprobs_json(&s->c[k].lp, r, n) : json_null(), *choice;
    if (chat) {
        json_t *delta = json_object();
        if (role)
            json_object_set_new(delta, "role", json_string("assistant"));
        if (text)
            json_object_set_new(delta, "content", json_stringn(text, len));
        choice = json_pack("{s:i,s:o,s:o,s:o}", "index", k, "delta", delta, "logprobs", lp, "finish_reason",
                           finish ? json_string(finish) : json_null());
    } else {
        choice = json_pack("{s:i,s:s%,s:o,s:o}", "index", k, "text", text ? text : "", text ? len : 0,
                           "logprobs", lp, "finish_reason", finish ? json_string(finish) : json_null());
    }
    return json_pack("{s:s,s:s,s:I,s:s,s:[o]}", "id", id, "object",
                     chat ? "chat.completion.chunk" : "text_completion", "created", (json_int_t)s->created,
                     "model", s->srv->model_id, "choices", choice);
}

/* The chunk of choice k that carries its whole message (delta: content or tool_calls; NULL when out of
 * memory, as the chunk then is) */
static json_t *tools_chunk(struct stream *s, int k, json_t *delta) {
    json_t *chunk = delta ? chunk_object(s, k, NULL, 0, NULL, false, NULL, 0) : NULL;
    if (chunk)
        json_object_set(json_array_get(json_object_get(chunk, "choices"), 0), "delta", delta);
    json_decref(delta);
    return chunk;
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

/* Submits the choices the queue takes now, and at least one when none of the stream's runs; false
 * when one could not be queued (s->failed says why). Tried at the start and as each choice ends,
 * not at every event: each try that finds the queue full builds a job only to drop it. */
static bool submit_choices(struct stream *s) {
    while (s->submitted < s->n_choices) {
        tern_job *job;
        const tern_status st = submit(s->srv, &s->r, s->submitted, &job);
        if (st == TERN_ERR_BUSY && s->open > 0)
            return true;
        if (st) {
            s->failed = st;
            return false;
        }
        s->c[s->submitted++].job = job;
        s->open++;
    }
    return true;
}

/* The next event of choice k, whose job has text not yet taken or is over (tern_job_wait_any). */
static void choice_event(struct stream *s, int k) {
    struct stream_choice *c = &s->c[k];
    for (;;) {
        if (s->r.gen.logprobs >= 0)
            tern_job_logprobs(c->job, &c->rec, &c->rec_cap, &c->rec_len);
        if (!s->r.tools && (c->text_len > c->sent || c->rec_len > 0)) {
            queue_event(s, chunk_object(s, k, c->text + c->sent, c->text_len - c->sent, NULL, false, c->rec,
                                        c->rec_len));
            c->sent = c->text_len;
            c->rec_len = 0;
            return;
        }
        if (c->over && s->r.tools && !c->told) { /* the model's object, made a message */
            c->told = true;
            c->finish = finish_reason(c->job);
            queue_event(s, tools_chunk(s, k,
                                       message_fields(&s->r, c->text ? c->text : "", c->text_len, s->id, k,
                                                      true, &c->finish)));
            return;
        }
        if (c->over) {
            queue_event(s, chunk_object(s, k, NULL, 0, s->r.tools ? c->finish : finish_reason(c->job), false,
                                        NULL, 0));
            add_usage(&s->u, c->job, k % s->r.n == 0);
            tern_job_free(c->job);
            c->job = NULL;
            s->open--;
            submit_choices(s); /* its place may take a choice still to submit (or s->failed) */
            return;
        }
        if (!tern_job_next(c->job, &c->text, &c->text_cap, &c->text_len))
            c->over = true;
    }
}

/* The next event of a stream into s->out; false at the end. */
static bool next_event(struct stream *s) {
    for (;;) {
        switch (s->phase) {
        case 0: {
            if (s->opened == s->n_choices) {
                s->phase = 1;
                break;
            }
            const int k = s->opened++;
            const char *echo = s->r.prompts[k / s->r.n].echo;
            if (s->r.chat || echo) {
                queue_event(s, chunk_object(s, k, echo, echo ? strlen(echo) : 0, NULL, s->r.chat, NULL, 0));
                return true;
            }
            break;
        }
        case 1: {
            if (s->failed) { /* an error event, as OpenAI ends a stream that fails */
                s->phase = 3;
                char msg[128];
                snprintf(msg, sizeof msg, "%s: choice %d of %d could not be queued",
                         s->failed == TERN_ERR_BUSY ? "the server is busy" : "the request failed",
                         s->submitted, s->n_choices);
                queue_event(s, json_pack("{s:{s:s,s:s,s:s?}}", "error", "message", msg, "type",
                                         "server_error", "code", s->failed == TERN_ERR_BUSY ? "busy" : NULL));
                return true;
            }
            if (s->open == 0) {
                s->phase = s->r.usage ? 2 : 3;
                break;
            }
            tern_job *jobs[TERN_API_MAX_CHOICES];
            for (int i = 0; i < s->n_choices; i++)
                jobs[i] = s->c[i].job;
            const int k = tern_job_wait_any(jobs, s->n_choices, s->turn);
            s->turn = (k + 1) % s->n_choices;
            choice_event(s, k);
            return true;
        }
        case 2: {
            s->phase = 3;
            char id[48];
            reply_id(id, sizeof id, s->r.chat, s->id);
            queue_event(s, json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", id, "object",
                                     s->r.chat ? "chat.completion.chunk" : "text_completion", "created",
                                     (json_int_t)s->created, "model", s->srv->model_id, "choices", "usage",
                                     usage_object(&s->u)));
            return true;
        }
        case 3:
            s->phase = 4;
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
            log_usage(s->conn, &s->u);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
    }
    const size_t n = s->out_len - s->out_off < max ? s->out_len - s->out_off : max;
    memcpy(buf, s->out + s->out_off, n);
    s->out_off += n;
    return (ssize_t)n;
}

/* The stream is over, or the client went away: the jobs stop and their slots free. */
static void stream_free(void *cls) {
    struct stream *s = cls;
    for (int k = 0; k < s->n_choices && s->c; k++) {
        if (s->c[k].job)
            tern_job_free(s->c[k].job);
        free(s->c[k].text);
        free(s->c[k].rec);
        free(s->c[k].lp.piece);
    }
    free(s->c);
    tern_api_request_free(&s->r);
    json_decref(s->body);
    free(s->out);
    free(s);
}

/* Choice k (of prompt k / r->n) whole, once its job is over; NULL when out of memory. */
static json_t *whole_choice(tern_server *srv, const struct tern_api_request *r, long id, int k,
                            tern_job *job) {
    const struct tern_api_prompt *prompt = &r->prompts[k / r->n];
    char *text = NULL;
    size_t cap = 0, len = 0;
    while (tern_job_next(job, &text, &cap, &len))
        ;
    json_t *lp = json_null();
    if (r->gen.logprobs >= 0) {
        struct tern_token_logprob *rec = NULL;
        size_t rcap = 0, n = 0;
        struct lp_writer w;
        if (!lp_writer_init(&w, srv->tok, r->chat, prompt) || !tern_job_logprobs(job, &rec, &rcap, &n))
            lp = NULL;
        else
            lp = logprobs_json(&w, rec, n);
        free(rec);
        free(w.piece);
    }
    json_t *choice = NULL;
    if (r->chat) {
        const char *finish = finish_reason(job);
        json_t *message = message_fields(r, text ? text : "", len, id, k, false, &finish);
        if (message)
            json_object_set_new(message, "role", json_string("assistant"));
        choice = json_pack("{s:i,s:o*,s:o*,s:s}", "index", k, "message", message, "logprobs", lp,
                           "finish_reason", finish);
    } else {
        const char *echo = prompt->echo ? prompt->echo : "";
        char *all = malloc(strlen(echo) + len + 1);
        if (all) {
            strcpy(all, echo);
            memcpy(all + strlen(echo), text ? text : "", len);
            all[strlen(echo) + len] = 0;
        }
        choice = all ? json_pack("{s:i,s:s,s:o*,s:s}", "index", k, "text", all, "logprobs", lp,
                                 "finish_reason", finish_reason(job))
                     : NULL;
        free(all);
    }
    free(text);
    return choice;
}

static enum MHD_Result busy_or_failed(struct MHD_Connection *c, struct conn *cs, tern_status st) {
    if (st == TERN_ERR_BUSY)
        return send_error(c, cs, 503, "server_error", "busy", NULL,
                          "the server is busy: every slot and queue place is taken; retry later");
    return send_error(c, cs, 500, "server_error", NULL, NULL, "the request could not be queued");
}

/* Every choice in one reply, each a job; when the queue is full, the choices still to submit wait
 * for this request's earlier ones to finish (503 only when none of them is running). */
static enum MHD_Result reply_whole(tern_server *srv, struct MHD_Connection *c, struct conn *cs,
                                   const struct tern_api_request *r, long id) {
    tern_job *jobs[TERN_API_MAX_CHOICES] = {0};
    const int n_choices = r->n_prompts * r->n;
    json_t *choices = json_array();
    struct usage u = {0};
    tern_status st = TERN_OK;
    int submitted = 0;
    for (int i = 0; i < n_choices && !st; i++) {
        /* submit what the queue takes; when it is full, wait for this request's job i if it has one */
        while (submitted < n_choices) {
            const tern_status sub = submit(srv, r, submitted, &jobs[submitted]);
            if (sub == TERN_ERR_BUSY && submitted > i)
                break;
            st = sub;
            if (st)
                break;
            submitted++;
        }
        if (st)
            break;
        json_t *choice = whole_choice(srv, r, id, i, jobs[i]);
        add_usage(&u, jobs[i], i % r->n == 0);
        tern_job_free(jobs[i]);
        jobs[i] = NULL;
        if (!choice || json_array_append_new(choices, choice))
            st = TERN_ERR_NOMEM;
    }
    for (int i = 0; i < submitted; i++)
        if (jobs[i])
            tern_job_free(jobs[i]);
    log_usage(cs, &u);
    if (st) {
        json_decref(choices);
        return busy_or_failed(c, cs, st);
    }
    char sid[48];
    reply_id(sid, sizeof sid, r->chat, id);
    json_t *body =
        json_pack("{s:s,s:s,s:I,s:s,s:o,s:o}", "id", sid, "object",
                  r->chat ? "chat.completion" : "text_completion", "created", (json_int_t)time(NULL), "model",
                  srv->model_id, "choices", choices, "usage", usage_object(&u));
    return send_json(c, cs, 200, body);
}

/* A streamed reply of request r, which the stream takes over (r is left empty), with body, which it
 * holds. 503 when not even its first choice can be queued. */
static enum MHD_Result stream_reply(tern_server *srv, struct MHD_Connection *c, struct conn *cs,
                                    struct tern_api_request *r, json_t *body, long id) {
    struct stream *s = calloc(1, sizeof *s);
    if (!s)
        return MHD_NO;
    *s = (struct stream){.srv = srv,
                         .r = *r,
                         .body = json_incref(body),
                         .id = id,
                         .created = (long)time(NULL),
                         .n_choices = r->n_prompts * r->n,
                         .conn = cs};
    memset(r, 0, sizeof *r);
    s->c = calloc((size_t)s->n_choices, sizeof *s->c);
    bool ok = s->c != NULL;
    for (int k = 0; ok && k < s->n_choices; k++)
        ok = lp_writer_init(&s->c[k].lp, srv->tok, s->r.chat, &s->r.prompts[k / s->r.n]);
    if (ok && !submit_choices(s)) {
        const tern_status st = s->failed;
        stream_free(s);
        return busy_or_failed(c, cs, st);
    }
    struct MHD_Response *resp =
        ok ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free) : NULL;
    if (!resp) {
        stream_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    add_cors(srv, c, resp);
    const enum MHD_Result ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    cs->status = 200;
    return ret;
}

/* The request's body as a JSON object; NULL after answering 400 (*ret) when it is not one. */
static json_t *json_body(struct MHD_Connection *c, struct conn *cs, enum MHD_Result *ret) {
    json_error_t jerr;
    json_t *body = cs->body ? json_loadb(cs->body, cs->len, 0, &jerr) : NULL;
    if (!body && cs->body) {
        *ret = send_error(c, cs, 400, "invalid_request_error", NULL, NULL,
                          "the body is not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                          jerr.column);
        return NULL;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        *ret = send_error(c, cs, 400, "invalid_request_error", NULL, NULL, "the body is not a JSON object%s",
                          cs->body ? "" : " (it is empty)");
        return NULL;
    }
    return body;
}

/* POST /tokenize and /detokenize (api_request.h). */
static enum MHD_Result tokenizer_endpoint(tern_server *srv, struct MHD_Connection *c, struct conn *cs,
                                          bool tokenize) {
    enum MHD_Result ret;
    json_t *body = json_body(c, cs, &ret), *reply = NULL;
    if (!body)
        return ret;
    struct tern_api_error err;
    const bool ok = tokenize ? tern_api_tokenize(srv->tok, srv->n_ctx, body, &reply, &err)
                             : tern_api_detokenize(srv->tok, body, &reply, &err);
    json_decref(body);
    return ok ? send_json(c, cs, 200, reply)
              : send_error(c, cs, err.status, err.type, err.code, err.param, "%s", err.message);
}

static enum MHD_Result generate(tern_server *srv, struct MHD_Connection *c, struct conn *cs, enum kind kind) {
    enum MHD_Result ret;
    json_t *body = json_body(c, cs, &ret);
    if (!body)
        return ret;
    const long id = atomic_fetch_add(&srv->next_id, 1);
    const uint64_t seed = (uint64_t)time(NULL) ^ (uint64_t)id * 0x9e3779b97f4a7c15ULL;
    struct tern_api_request r;
    struct tern_api_error err;
    if (!tern_api_parse(&srv->p, srv->tok, srv->format, seed, body, kind == CHAT, &r, &err)) {
        json_decref(body);
        return send_error(c, cs, err.status, err.type, err.code, err.param, "%s", err.message);
    }
    ret = MHD_NO;
    bool fits = true;
    for (int i = 0; i < r.n_prompts && fits; i++) {
        fits = r.prompts[i].n_ids < (size_t)srv->n_ctx;
        if (!fits)
            ret = send_error(c, cs, 400, "invalid_request_error", "context_length_exceeded",
                             kind == CHAT ? "messages" : "prompt",
                             "the prompt%s has %zu tokens; the context holds %d",
                             r.n_prompts > 1 ? " (one of the list)" : "", r.prompts[i].n_ids, srv->n_ctx);
    }
    if (fits && r.json && !srv->json) {
        fits = false;
        ret = send_error(c, cs, 500, "server_error", NULL, "response_format",
                         "JSON mode is unavailable: its table of the vocabulary could not be built");
    }
    if (fits)
        ret = r.stream ? stream_reply(srv, c, cs, &r, body, id) : reply_whole(srv, c, cs, &r, id);
    tern_api_request_free(&r);
    json_decref(body); /* the stop strings were copied at submit */
    return ret;
}

/* ---------------------------------------------------------------- routing */

/* GET /: the chat page (web/chat.html). Its script and style are inline and it talks to this
 * server alone, which the Content-Security-Policy holds it to. */
static enum MHD_Result web_page(struct MHD_Connection *c, struct conn *cs) {
    const struct tern_embedded_file *f = NULL;
    for (int i = 0; i < tern_web_n_files; i++)
        if (!strcmp(tern_web_files[i].name, "chat.html"))
            f = &tern_web_files[i];
    if (!f)
        return send_error(c, cs, 404, "invalid_request_error", "unknown_url", NULL,
                          "this build has no web page");
    struct MHD_Response *r =
        MHD_create_response_from_buffer(f->len, (void *)f->bytes, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                            "connect-src 'self'; frame-ancestors 'none'");
    const enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    cs->status = 200;
    return ret;
}

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
               chat = !strcmp(url, "/v1/chat/completions"), health = !strcmp(url, "/health"),
               tokenize = !strcmp(url, "/tokenize"), detokenize = !strcmp(url, "/detokenize"),
               info = !strcmp(url, "/tokenizer_info");
    const bool api = models || completions || chat || tokenize || detokenize || info;
    if (!strcmp(method, "OPTIONS") && (api || health)) {
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
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) /* the chat page: no key, it holds nothing */
        return get ? web_page(c, cs)
                   : send_error(c, cs, 405, "invalid_request_error", NULL, NULL, "use GET on %s", url);
    if (health) {
        if (!get)
            return send_error(c, cs, 405, "invalid_request_error", NULL, NULL, "use GET on %s", url);
        return send_json(c, cs, engine ? 200 : 503, json_pack("{s:s}", "status", engine ? "ok" : "loading"));
    }
    if (!api)
        return send_error(c, cs, 404, "invalid_request_error", "unknown_url", NULL, "no such endpoint: %s %s",
                          method, url);
    if (!authorized(srv, c))
        return send_error(c, cs, 401, "invalid_request_error", "invalid_api_key", NULL,
                          "a valid API key is required: Authorization: Bearer KEY");
    if (models || info ? !get : !post)
        return send_error(c, cs, 405, "invalid_request_error", NULL, NULL, "use %s on %s",
                          models || info ? "GET" : "POST", url);
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
    if (info)
        return send_json(c, cs, 200, tern_api_tokenizer_info(srv->tok, srv->n_ctx, srv->chat_template));
    if (tokenize || detokenize)
        return tokenizer_endpoint(srv, c, cs, tokenize);
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
                       int n_ctx, struct tern_str chat_template) {
    srv->tok = tok;
    tern_json_vocab_create(tok, &srv->json); /* failing, it logs; JSON requests then get 500 */
    srv->chat_template = chat_template;
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
    tern_json_vocab_free(srv->json);
    free(srv);
}
