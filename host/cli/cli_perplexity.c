/* tern perplexity: a model's perplexity over a text file, computed as llama.cpp's llama-perplexity
 * does (host/generate/perplexity.h), so the figures compare. Running values to stdout, the final
 * estimate last; progress and timing to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tern.h"
#include "cli.h"

static const char perplexity_usage[] =
    "Usage: tern perplexity -m MODEL -f FILE [options]\n"
    "\n"
    "  -m, --model PATH     GGUF model\n"
    "  -f, --file PATH      UTF-8 text to score (e.g. wikitext-2's wiki.test.raw; - for standard\n"
    "                       input)\n"
    "  -c, --ctx-size N     tokens per chunk (default 512); each chunk starts from an empty context\n"
    "                       and its second half is scored\n"
    "      --chunks N       score at most N chunks (default: every whole chunk of the file)\n"
    "  -t, --threads N      CPU threads (default: physical cores)\n"
    "      --pre NAME       override the pre-tokenizer (llama-bpe, default, falcon3)\n"
    "  -h, --help           this help\n"
    "\n"
    "Prints [chunk]running perplexity after every chunk and 'Final estimate: PPL = P +/- E'.\n"
    "Every logit row comes from the full head (--head-mode is ignored).\n"
    "\n";

struct ppl_opts {
    const char *file;
    struct cli_session s;
    long long chunks;
};

struct progress {
    double t0;
    int n_chunks;
};

static bool on_chunk(const struct tern_perplexity *p, void *user) {
    struct progress *g = user;
    if (p->n_chunks == 1) {
        const double s = tern_time_s() - g->t0;
        fprintf(stderr, "tern: %.2f s per chunk, about %.0f s for %d\n", s, s * g->n_chunks, g->n_chunks);
    }
    const double v = tern_perplexity_value(p);
    printf(v < 1e6 ? "[%d]%.4f," : "[%d]%.4e,", p->n_chunks, v);
    fflush(stdout);
    return true;
}

static int flag(int argc, char **argv, int *i, void *opts) {
    struct ppl_opts *o = opts;
    const char *a = argv[*i], *v;
    if (!strcmp(a, "-f") || !strcmp(a, "--file"))
        return (o->file = cli_value(argc, argv, i)) ? 1 : -1;
    if (!strcmp(a, "--chunks"))
        return (v = cli_value(argc, argv, i)) && cli_int(a, v, 1, 1 << 24, &o->chunks) ? 1 : -1;
    return 0;
}

static int parse(int argc, char **argv, struct ppl_opts *o) {
    const int rc = cli_parse(argc, argv, "perplexity", &o->s, flag, o);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (!o->s.model || !o->file) {
        tern_log_error("tern perplexity needs a model and a text: -m MODEL -f FILE");
        return CLI_EXIT_USAGE;
    }
    if (o->s.p.n_ctx > 0 && o->s.p.n_ctx < 16) {
        tern_log_error("option -c: a perplexity chunk needs at least 16 tokens (got %d)", o->s.p.n_ctx);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

int cli_perplexity(int argc, char **argv) {
    struct ppl_opts o = {.s = {.usage = perplexity_usage}};
    int rc = parse(argc, argv, &o);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    const int n_ctx = o.s.p.n_ctx > 0 ? o.s.p.n_ctx : 512;
    size_t len = 0;
    char *text = cli_read_file(o.file, &len);
    if (!text)
        return CLI_EXIT_FAIL;
    tern_model *model = NULL;
    tern_tokenizer *tok = NULL;
    tern_session *sess = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    rc = CLI_EXIT_FAIL;
    const double t0 = tern_time_s();
    tern_status st = cli_open_model(&o.s, &model, &tok);
    if (st)
        goto done;
    /* as llama-perplexity: BOS first where the model adds it, control tokens not parsed */
    st = tern_tokenize(tok, text, len, tern_tokenizer_add_bos(tok), false, &ids, &n_ids);
    if (st)
        goto done;
    if (n_ids < (size_t)n_ctx) {
        tern_log_error("%s has %zu tokens, fewer than one chunk of %d (lower -c)", o.file, n_ids, n_ctx);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    struct tern_session_params spar = o.s.p;
    spar.n_ctx = n_ctx;
    spar.head_mode = TERN_HEAD_FULL;
    st = cli_session_create(model, &spar, &sess);
    if (st) {
        rc = cli_session_exit(st);
        goto done;
    }
    const int whole = (int)(n_ids / (size_t)n_ctx);
    struct progress g = {tern_time_s(), o.chunks > 0 && o.chunks < whole ? (int)o.chunks : whole};
    fprintf(stderr, "tern: %s on %s | load %.2f s | %zu tokens: %d chunks of %d, %d scored in each\n",
            o.s.model, tern_session_device_name(sess), g.t0 - t0, n_ids, g.n_chunks, n_ctx,
            n_ctx - 1 - n_ctx / 2);
    const int32_t bos = tern_tokenizer_add_bos(tok) ? tern_tokenizer_bos(tok) : -1;
    struct tern_perplexity p;
    st = tern_perplexity_run(sess, ids, (int)(n_ids < (size_t)1 << 30 ? n_ids : (size_t)1 << 30), n_ctx, bos,
                             g.n_chunks, on_chunk, &g, &p);
    if (st)
        goto done;
    const double v = tern_perplexity_value(&p), e = tern_perplexity_error(&p);
    printf(v < 1e6 ? "\nFinal estimate: PPL = %.4f +/- %.5f\n" : "\nFinal estimate: PPL = %.4e +/- %.4e\n", v,
           e);
    const double s = tern_time_s() - g.t0;
    fprintf(stderr, "tern: %d chunks, %ld tokens scored, %.1f s (%.1f tokens/s evaluated)\n", p.n_chunks,
            p.n_scored, s, (double)p.n_chunks * (n_ctx - 1) / (s > 0 ? s : 1e-9));
    rc = CLI_EXIT_OK;
done:
    free(ids);
    tern_session_free(sess);
    tern_tokenizer_free(tok);
    tern_model_free(model);
    free(text);
    return rc;
}
