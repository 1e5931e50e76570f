/* tern serve: the OpenAI-compatible HTTP API (host/serve/) with continuous batching. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../serve/http.h"
#include "../tern.h"
#include "cli.h"

static const char serve_usage[] =
    "Usage: tern serve -m MODEL [options]\n"
    "\n"
    "  -m, --model PATH      GGUF model (required)\n"
    "      --host ADDR       address to listen on (default 127.0.0.1: this machine only)\n"
    "      --port N          port (default 8080; 0: any free port, printed at start)\n"
    "      --parallel N      requests generated at once, each with its own KV cache slot (default 4)\n"
    "      --queue N         requests waiting for a slot before 503 (default 4 x parallel)\n"
    "  -c, --ctx-size N      total context positions, shared equally by the slots (default: the\n"
    "                        model's, at most 4096)\n"
    "      --api-key KEY     require Authorization: Bearer KEY on every endpoint but /health\n"
    "                        (default: none)\n"
    "      --cors ORIGINS    web pages that may call the API from a browser: '*' (any) or a\n"
    "                        comma-separated list such as https://app.example (default: pages\n"
    "                        served from this machine: localhost, 127.x, [::1])\n"
    "      --alias NAME      the model's id in the API (default: the model file's name)\n"
    "      --chat-format F   bitnet, llama3 or falcon3 (default: chosen from the model)\n"
    "      --max-body N      largest request body in bytes (default 1048576)\n"
    "      --no-prompt-cache evaluate every prompt whole; by default a slot keeps its last request's\n"
    "                        tokens and a prompt that begins with them (a chat resending its\n"
    "                        conversation) evaluates only the rest, with the same output\n"
    "      --pre NAME        override the pre-tokenizer (llama-bpe, default, falcon3)\n"
    "  -t, --threads N       CPU threads (default: physical cores)\n"
    "  -h, --help            this help\n"
    "\n"
    "Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, POST /tokenize,\n"
    "POST /detokenize, GET /tokenizer_info, GET /health; GET / is a chat page for a browser.\n"
    "The sampling flags below are the defaults for the fields a request leaves out.\n"
    "SIGINT or SIGTERM ends the requests in flight and exits.\n";

struct serve_opts {
    const char *host, *api_key, *cors, *alias;
    struct cli_session s;
    long long port, parallel, queue, max_body;
    bool no_prompt_cache;
    struct tern_sampler_params sp; /* for what a request leaves out */
};

static int flag(int argc, char **argv, int *i, void *opts) {
    struct serve_opts *o = opts;
    const char *a = argv[*i], *v;
    const char **text = !strcmp(a, "--host")      ? &o->host
                        : !strcmp(a, "--api-key") ? &o->api_key
                        : !strcmp(a, "--cors")    ? &o->cors
                        : !strcmp(a, "--alias")   ? &o->alias
                                                  : NULL;
    if (text)
        return (*text = cli_value(argc, argv, i)) ? 1 : -1;
    if (!strcmp(a, "--no-prompt-cache")) {
        o->no_prompt_cache = true;
        return 1;
    }
    static const char *const names[] = {"--port", "--parallel", "--queue", "--max-body"};
    static const long long lo[] = {0, 1, 0, 1024}, hi[] = {65535, 64, 1 << 16, 1 << 30};
    long long *const vals[] = {&o->port, &o->parallel, &o->queue, &o->max_body};
    for (int k = 0; k < 4; k++)
        if (!strcmp(a, names[k]))
            return (v = cli_value(argc, argv, i)) && cli_int(a, v, lo[k], hi[k], vals[k]) ? 1 : -1;
    return 0;
}

static int parse(int argc, char **argv, struct serve_opts *o) {
    const int rc = cli_parse(argc, argv, "serve", &o->s, flag, o);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (!o->s.model) {
        tern_log_error("tern serve needs a model: -m MODEL");
        return CLI_EXIT_USAGE;
    }
    json_t *alias = o->alias ? json_string(o->alias) : NULL; /* NULL for text that is not UTF-8 */
    const bool alias_ok = !o->alias || (alias && o->alias[0] && !strpbrk(o->alias, "/\t\n\r"));
    json_decref(alias);
    if (!alias_ok) {
        tern_log_error("option --alias: '%s' is not a model id (non-empty UTF-8 without '/' or line breaks)",
                       o->alias);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

int cli_serve(int argc, char **argv) {
    struct serve_opts o = {.sp = tern_sampler_default_params(),
                           .host = "127.0.0.1",
                           .port = 8080,
                           .parallel = 4,
                           .queue = -1,
                           .max_body = 1 << 20};
    o.s = (struct cli_session){.usage = serve_usage, .chat = true, .sp = &o.sp};
    int rc = parse(argc, argv, &o);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    enum tern_chat_format format = TERN_CHAT_LLAMA3;
    tern_status st;
    if (o.s.format) {
        st = tern_chat_format_from_name(o.s.format, &format);
        if (st)
            return CLI_EXIT_USAGE;
    }
    tern_json_schema *schema; /* --json-schema: the default of requests without response_format */
    if (cli_json_schema(&o.s, &schema))
        return CLI_EXIT_USAGE;
    /* SIGINT and SIGTERM are taken by sigwait below: block them before any thread starts */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    const char *slash = strrchr(o.s.model, '/');
    const struct tern_server_params sp = {.host = o.host,
                                          .port = (int)o.port,
                                          .api_key = o.api_key,
                                          .cors = o.cors,
                                          .model_id = o.alias ? o.alias
                                                      : slash ? slash + 1
                                                              : o.s.model,
                                          .max_body = (size_t)o.max_body,
                                          .sampling = o.sp,
                                          .seed_set = o.s.seed_set,
                                          .json = o.s.json,
                                          .json_schema = schema};
    tern_server *srv = NULL;
    tern_model *model = NULL;
    tern_tokenizer *tok = NULL;
    tern_session *sess = NULL;
    tern_engine *engine = NULL;
    rc = CLI_EXIT_FAIL;
    st = tern_server_create(&sp, &srv);
    if (st)
        goto done;
    tern_log_info("listening on http://%s:%d (loading %s)", o.host, tern_server_port(srv), o.s.model);
    st = cli_open_model(&o.s, &model, &tok);
    if (st)
        goto done;
    if (!o.s.format)
        format = tern_chat_format_detect(tern_model_gguf(model), tok);
    if (!cli_logit_bias_valid(&o.sp, tern_model_view(model)->hp.n_vocab)) {
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    const long long total = tern_session_params_n_ctx(model, &o.s.p);
    if (total < o.parallel * 8) {
        tern_log_error("a context of %lld positions leaves fewer than 8 to each of the %lld slots", total,
                       o.parallel);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    struct tern_session_params spar = o.s.p;
    spar.n_ctx = (int)(total / o.parallel);
    spar.n_seq = (int)o.parallel;
    st = cli_session_create(model, &spar, &sess);
    if (st) {
        rc = cli_session_exit(st);
        goto done;
    }
    st = tern_engine_create(sess, tok, (int)(o.queue >= 0 ? o.queue : 4 * o.parallel), !o.no_prompt_cache,
                            &engine);
    if (st)
        goto done;
    struct tern_str chat_template = {0};
    if (tern_gguf_get_str(tern_model_gguf(model), "tokenizer.chat_template", &chat_template))
        chat_template = (struct tern_str){0};
    tern_server_ready(srv, engine, tok, format, spar.n_ctx, chat_template);
    tern_log_info("ready: %s on %s, %lld slots of %d positions, chat format %s, prompt cache %s", sp.model_id,
                  tern_session_device_name(sess), o.parallel, spar.n_ctx, tern_chat_format_name(format),
                  o.no_prompt_cache ? "off" : "on");
    int sig = 0;
    sigwait(&stop_signals, &sig);
    tern_log_info("%s: ending the requests in flight", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = CLI_EXIT_OK;
done:
    tern_engine_stop(engine); /* streams end, so the connection threads can finish */
    tern_server_free(srv);
    tern_engine_free(engine);
    tern_session_free(sess);
    tern_tokenizer_free(tok);
    tern_model_free(model);
    free(schema);
    return rc;
}
