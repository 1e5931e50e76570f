/* tern run: generate a continuation of a prompt, streamed to stdout; statistics to stderr. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../tern.h"
#include "cli.h"

static const char run_usage[] =
    "Usage: tern run -m MODEL (-p TEXT | -f FILE) [options]\n"
    "\n"
    "  -m, --model PATH     GGUF model (I2_S, TQ2_0 or TQ1_0 linear weights)\n"
    "  -p, --prompt TEXT    prompt text (control tokens such as <|eot_id|> are recognised)\n"
    "  -f, --file PATH      read the prompt from a file (- for standard input)\n"
    "  -n, --n-predict N    tokens to generate; -1 = until end of generation or full context (default 128)\n"
    "  -c, --ctx-size N     context positions (default: the model's, at most 4096)\n"
    "  -t, --threads N      CPU threads (default: physical cores)\n"
    "      --pre NAME       override the pre-tokenizer (llama-bpe, default, falcon3)\n"
    "      --no-bos         do not add the BOS token\n"
    "      --echo           print the prompt before the continuation\n"
    "      --lookup N       prompt lookup: each step also evaluates up to N (1-7) tokens that followed\n"
    "                       the last tokens' latest earlier occurrence; the same text, fewer steps\n"
    "                       when the output repeats its input (default 0: off)\n"
    "  -h, --help           this help\n"
    "\n";

struct run_opts {
    const char *prompt, *file;
    struct cli_session s;
    long long n_predict;
    bool no_bos, echo;
    struct tern_sampler_params sp;
};

/* --echo's prompt, written with the first token: a run that fails before it prints nothing */
struct echo {
    const char *text;
    size_t len;
};

static void flush_echo(struct echo *e) {
    if (e->len)
        fwrite(e->text, 1, e->len, stdout);
    e->len = 0;
}

/* Ctrl-C once tokens flow: the run stops after the token in hand and reports as usual; a second
 * Ctrl-C, or one while the model loads or the prompt is evaluated, ends it at once */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static bool print_token(int32_t id, const char *text, size_t len, void *user) {
    (void)id;
    static bool armed;
    if (!armed) { /* not where SIGINT is ignored (a script's background job) */
        struct sigaction sa = {.sa_handler = on_sigint, .sa_flags = SA_RESETHAND}, old;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGINT, NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaction(SIGINT, &sa, NULL);
        armed = true;
    }
    flush_echo(user);
    if (len) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    return !interrupted;
}

static int flag(int argc, char **argv, int *i, void *opts) {
    struct run_opts *o = opts;
    const char *a = argv[*i], *v;
    if (!strcmp(a, "-p") || !strcmp(a, "--prompt"))
        return (o->prompt = cli_value(argc, argv, i)) ? 1 : -1;
    if (!strcmp(a, "-f") || !strcmp(a, "--file"))
        return (o->file = cli_value(argc, argv, i)) ? 1 : -1;
    if (!strcmp(a, "-n") || !strcmp(a, "--n-predict"))
        return (v = cli_value(argc, argv, i)) && cli_int(a, v, -1, 1 << 24, &o->n_predict) ? 1 : -1;
    bool *set = !strcmp(a, "--no-bos") ? &o->no_bos : !strcmp(a, "--echo") ? &o->echo : NULL;
    if (set) {
        *set = true;
        return 1;
    }
    return 0;
}

static int parse(int argc, char **argv, struct run_opts *o) {
    const int rc = cli_parse(argc, argv, "run", &o->s, flag, o);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (!o->s.model) {
        tern_log_error("tern run needs a model: -m MODEL");
        return CLI_EXIT_USAGE;
    }
    if (!o->prompt == !o->file) {
        tern_log_error("tern run needs exactly one of -p TEXT or -f FILE");
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

int cli_run(int argc, char **argv) {
    struct run_opts o = {.n_predict = 128, .sp = tern_sampler_default_params()};
    o.s = (struct cli_session){.usage = run_usage, .sp = &o.sp, .generates = true};
    int rc = parse(argc, argv, &o);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (!o.s.seed_set)
        o.sp.seed = (uint64_t)time(NULL);

    char *file_text = NULL;
    size_t prompt_len = 0;
    if (o.file) {
        if (!(file_text = cli_read_file(o.file, &prompt_len)))
            return CLI_EXIT_FAIL;
    } else {
        prompt_len = strlen(o.prompt);
    }
    const char *prompt = file_text ? file_text : o.prompt;

    tern_model *model = NULL;
    tern_tokenizer *tok = NULL;
    tern_session *sess = NULL;
    tern_sampler *smp = NULL;
    tern_json_vocab *json = NULL;
    tern_json_schema *schema = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    rc = CLI_EXIT_FAIL;
    const double t0 = tern_time_s();
    tern_status st = cli_open_model(&o.s, &model, &tok);
    if (st)
        goto done;
    const double open_s = tern_time_s() - t0;
    const struct tern_session_params spar = o.s.p;
    /* the prompt is checked before the devices open (an OpenCL build, a probe, a shadow head) */
    bool add_bos = !o.no_bos && tern_tokenizer_add_bos(tok);
    st = tern_tokenize(tok, prompt, prompt_len, add_bos, true, &ids, &n_ids);
    if (st)
        goto done;
    if (!cli_logit_bias_valid(&o.sp, tern_model_view(model)->hp.n_vocab)) {
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    const int n_ctx = tern_session_params_n_ctx(model, &spar);
    if (n_ids > (size_t)n_ctx) {
        tern_log_error("the prompt has %zu tokens but the context has %d positions (raise -c)", n_ids, n_ctx);
        goto done;
    }
    st = cli_json_mode(&o.s, tok, &o.sp, &json, &schema);
    if (st)
        goto done;
    st = tern_sampler_create(&o.sp, tern_model_view(model)->hp.n_vocab, &smp);
    if (st) {
        tern_log_error("invalid sampling parameters");
        goto done;
    }
    const double t1 = tern_time_s();
    st = cli_session_create(model, &spar, &sess);
    if (st) {
        rc = cli_session_exit(st);
        goto done;
    }
    tern_session_set_lookup(sess, o.s.lookup);
    const double load_s = open_s + (tern_time_s() - t1); /* the model and the devices, not the tokenizer */
    struct echo echo = {prompt, o.echo ? prompt_len : 0};
    struct tern_generate_stats gs;
    st = tern_generate(sess, tok, smp, ids, (int)n_ids, (int)o.n_predict, print_token, &echo, &gs);
    if (st)
        goto done;
    flush_echo(&echo);         /* when generation ended before its first token */
    if (isatty(STDOUT_FILENO)) /* end the line on a terminal; keep piped output exact */
        fputc('\n', stdout);
    fflush(stdout);
    char sampling[64], lookup[64] = "";
    if (o.s.lookup)
        snprintf(lookup, sizeof lookup, " | lookup: %d of %d drafts taken", gs.n_accepted, gs.n_drafted);
    if (o.sp.temperature > 0.0f)
        snprintf(sampling, sizeof sampling, "seed %llu", (unsigned long long)o.sp.seed);
    else
        snprintf(sampling, sizeof sampling, "greedy");
    fprintf(
        stderr,
        "\ntern: %s | load %.2f s | prompt %d tokens, %.1f t/s | generation %d tokens, %.1f t/s | %s%s%s\n",
        tern_session_device_name(sess), load_s, gs.n_prompt,
        gs.n_prompt / (gs.prompt_s > 0 ? gs.prompt_s : 1e-9), gs.n_generated,
        (gs.n_decoded + gs.n_accepted) / (gs.gen_s > 0 ? gs.gen_s : 1e-9), sampling, lookup,
        interrupted      ? " | stopped: interrupted"
        : gs.stopped_eog ? " | stopped at end of generation"
        : gs.stopped_ctx ? " | stopped: the context is full (raise -c)"
                         : "");
    rc = interrupted ? CLI_EXIT_INTERRUPTED : CLI_EXIT_OK;
done:
    free(ids);
    tern_sampler_free(smp);
    tern_json_vocab_free(json);
    free(schema);
    tern_session_free(sess);
    tern_tokenizer_free(tok);
    tern_model_free(model);
    free(file_text);
    return rc;
}
