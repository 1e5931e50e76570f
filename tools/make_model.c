/* tern-make-model: write a random BitNet model of any shape as a GGUF file, with the ternary
 * weights in I2_S, TQ2_0 or TQ1_0 (the same seed gives the same weights in every type), and either
 * a synthetic vocabulary or a real one from a Hugging Face tokenizer.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/convert/hf_vocab.h"
#include "host/model/maker.h"
#include "scheduler/log.h"
#include "scheduler/types.h"

static const char usage[] =
    "Usage: tern-make-model [options] -o OUT.gguf\n"
    "\n"
    "  --preset NAME        tiny (default), 2b4t (BitNet b1.58 2B-4T shape), 3b (1bitLLM 3B shape, 2 "
    "layers)\n"
    "  --type T             ternary weight type: i2_s (default), tq2_0, tq1_0\n"
    "  --embd-type T        token embedding type: f16 (default), f32, bf16, q8_0, q6_k, q4_k\n"
    "  --head T             write a separate output.weight of type T (default: tied to the embedding)\n"
    "  --arch NAME          bitnet-b1.58, bitnet-25, bitnet, llama (default: the preset's)\n"
    "  --layers N --embd N --ff N --heads N --kv-heads N --head-dim N --vocab N --ctx N\n"
    "                       override the preset's shape\n"
    "  --vocab-json PATH    take the vocabulary from a Hugging Face tokenizer.json (and the\n"
    "                       tokenizer_config.json beside it); --vocab then follows it\n"
    "  --vocab-only         write only the tokenizer metadata (no tensors)\n"
    "  --seed S             weights seed (default 1)\n"
    "  -o, --output PATH    output file (written atomically)\n";

static int n_errors;

/* stderr sink that counts errors, so a failure is reported exactly once */
static void log_to_stderr(enum tern_log_level level, const char *msg, void *user) {
    (void)user;
    if (level == TERN_LOG_ERROR)
        n_errors++;
    if (level >= tern_log_get_level())
        fprintf(stderr, "tern-make-model: %s%s\n", level == TERN_LOG_ERROR ? "error: " : "", msg);
}

static bool parse_type(const char *s, uint32_t *out) {
    static const struct {
        const char *name;
        uint32_t type;
    } names[] = {{"i2_s", TERN_TYPE_I2_S}, {"tq2_0", TERN_TYPE_TQ2_0}, {"tq1_0", TERN_TYPE_TQ1_0},
                 {"f32", TERN_TYPE_F32},   {"f16", TERN_TYPE_F16},     {"bf16", TERN_TYPE_BF16},
                 {"q8_0", TERN_TYPE_Q8_0}, {"q6_k", TERN_TYPE_Q6_K},   {"q4_k", TERN_TYPE_Q4_K}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].type;
            return true;
        }
    return false;
}

static bool parse_int(const char *flag, const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < 1 || v > (1 << 24)) {
        tern_log_error("%s: '%s' is not a positive integer", flag, s);
        return false;
    }
    *out = (int)v;
    return true;
}

int main(int argc, char **argv) {
    tern_log_set_callback(log_to_stderr, NULL);
    struct tern_maker_params p;
    const char *preset = "tiny", *out = NULL, *vocab_json = NULL, *arch = NULL;
    bool vocab_only = false;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--preset") && i + 1 < argc)
            preset = argv[++i];
    tern_status st = tern_maker_preset(preset, &p);
    if (st)
        return 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *ip = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--vocab-only")) {
            vocab_only = true;
            continue;
        }
        if (!v) {
            tern_log_error("unknown option or missing value: %s (see --help)", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--preset")) {
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out = v;
        } else if (!strcmp(a, "--vocab-json")) {
            vocab_json = v;
        } else if (!strcmp(a, "--arch")) {
            arch = v;
        } else if (!strcmp(a, "--type") || !strcmp(a, "--embd-type") || !strcmp(a, "--head")) {
            uint32_t t;
            const struct tern_type_traits *tr = parse_type(v, &t) ? tern_type_traits(t) : NULL;
            const bool ternary = tr && tr->cls == TERN_CLASS_TERNARY;
            if (!tr || ternary != !strcmp(a, "--type")) {
                tern_log_error("%s: '%s' is not a valid type here", a, v);
                return 2;
            }
            if (!strcmp(a, "--type"))
                p.linear_type = t;
            else if (!strcmp(a, "--embd-type"))
                p.embd_type = t;
            else
                p.output_type = t;
        } else if (!strcmp(a, "--seed")) {
            p.seed = strtoull(v, NULL, 10);
        } else if (!strcmp(a, "--layers")) {
            ip = &p.n_layer;
        } else if (!strcmp(a, "--embd")) {
            ip = &p.n_embd;
        } else if (!strcmp(a, "--ff")) {
            ip = &p.n_ff;
        } else if (!strcmp(a, "--heads")) {
            ip = &p.n_head;
        } else if (!strcmp(a, "--kv-heads")) {
            ip = &p.n_head_kv;
        } else if (!strcmp(a, "--head-dim")) {
            ip = &p.head_dim;
        } else if (!strcmp(a, "--vocab")) {
            ip = &p.n_vocab;
        } else if (!strcmp(a, "--ctx")) {
            ip = &p.n_ctx;
        } else {
            tern_log_error("unknown option %s (see --help)", a);
            return 2;
        }
        if (ip && !parse_int(a, v, ip))
            return 2;
    }
    if (!out) {
        tern_log_error("no output file: -o OUT.gguf");
        return 2;
    }
    if (arch)
        p.arch = arch;

    tern_gguf_writer *w = NULL;
    struct tern_hf_vocab *vocab = NULL;
    tern_maker *maker = NULL;
    st = tern_gguf_writer_create(&w);
    if (st)
        goto done;
    if (vocab_json) {
        st = tern_hf_vocab_create(vocab_json, &vocab);
        if (st)
            goto done;
        p.n_vocab = vocab->n_tokens;
        st = tern_hf_vocab_write(vocab, w);
    } else {
        st = tern_maker_add_synthetic_vocab(w, p.n_vocab, p.seed);
    }
    if (st)
        goto done;
    if (vocab_only)
        st = tern_gguf_writer_set_str(w, "general.architecture", p.arch);
    else
        st = tern_maker_create(&p, w, &maker);
    if (st)
        goto done;
    st = tern_gguf_writer_write(w, out);
done:
    tern_maker_free(maker);
    tern_hf_vocab_free(vocab);
    tern_gguf_writer_free(w);
    if (st) {
        if (n_errors == 0) /* every failure names its cause once; add one line if none did */
            tern_log_error("%s: not written (%s)", out, tern_status_message(st));
        return 1;
    }
    return 0;
}
