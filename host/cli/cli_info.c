/* tern info: architecture, hyperparameters, tensor table and memory needs of a model. */
#include <stdio.h>
#include <string.h>

#include "../../scheduler/head_cert.h"
#include "../tern.h"
#include "cli.h"

static const char info_usage[] =
    "Usage: tern info [options] MODEL\n"
    "\n"
    "Prints the architecture, hyperparameters, tokenizer keys, every tensor (type, shape, bytes) and\n"
    "the memory a run needs. Any well-formed GGUF is described; a line says whether and how tern\n"
    "runs it, with the reason when it cannot.\n"
    "  -c, --ctx-size N   context used for the KV-cache estimate (default: the model's, at most 4096)\n"
    "  -h, --help         this help\n";

static double mib(uint64_t b) {
    return (double)b / (1024.0 * 1024.0);
}

/* The first error (the reason a model does not load) and the first warning of tern_model_create. */
struct load_notes {
    char error[512];
    char warning[512];
};

static void keep_notes(enum tern_log_level level, const char *msg, void *user) {
    struct load_notes *n = user;
    char *dst = level == TERN_LOG_ERROR ? n->error : level == TERN_LOG_WARN ? n->warning : NULL;
    if (dst && !dst[0])
        snprintf(dst, sizeof n->error, "%s", msg);
}

/* How the linear weights run: in place, repacked, or ternarized at load. */
static void print_runnable(const tern_model *m, const struct load_notes *notes) {
    int n_absmean = 0;
    const int n_float = tern_model_n_float_linear(m, &n_absmean);
    if (n_float == 0)
        printf("runs: yes\n");
    else if (n_absmean == 0)
        printf("runs: yes; its %d F32/F16/BF16 linear weights are already ternary (0 or +-c) and are packed "
               "exactly at load (sign, scale = max|w|, as bitnet.cpp's I2_S quantizer)\n",
               n_float);
    else
        printf("runs: yes, with a quality loss; %d of its %d F32/F16/BF16 linear weights are full-precision "
               "and are ternarized at load with absmean (%s)\n",
               n_absmean, n_float, notes->warning);
}

static void print_str_key(const tern_gguf *g, const char *label, const char *key) {
    struct tern_str s;
    tern_status st = tern_gguf_get_str(g, key, &s);
    if (!st)
        printf("  %-22s %.*s\n", label, (int)(s.len > 200 ? 200 : s.len), s.ptr);
    else
        printf("  %-22s (absent)\n", label);
}

static void print_tokenizer(const tern_gguf *g) {
    printf("tokenizer:\n");
    print_str_key(g, "model", "tokenizer.ggml.model");
    print_str_key(g, "pre-tokenizer", "tokenizer.ggml.pre");
}

/* The tensor table; by_class[cls] (when given) sums the bytes of each type class. */
static void print_tensors_by_class(const tern_gguf *g, uint64_t *by_class) {
    printf("tensors:\n  %-34s %-6s %-24s %12s\n", "name", "type", "shape", "bytes");
    for (int64_t i = 0; i < tern_gguf_n_tensors(g); i++) {
        const struct tern_gguf_tensor *t = tern_gguf_tensor(g, i);
        char shape[64];
        int n = snprintf(shape, sizeof shape, "[%lld", (long long)t->ne[0]);
        for (int d = 1; d < t->n_dims && n < (int)sizeof shape; d++)
            n += snprintf(shape + n, sizeof shape - (size_t)n, ", %lld", (long long)t->ne[d]);
        snprintf(shape + (n < (int)sizeof shape ? n : (int)sizeof shape - 2), 2, "]");
        printf("  %-34s %-6s %-24s %12llu\n", t->name, tern_type_name(t->type), shape,
               (unsigned long long)t->nbytes);
        const struct tern_type_traits *tr = tern_type_traits(t->type);
        if (by_class)
            by_class[tr ? tr->cls : 0] += t->nbytes;
    }
}

int cli_info(int argc, char **argv) {
    const char *path = NULL;
    long long n_ctx = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(info_usage, stdout);
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (!(v = cli_value(argc, argv, &i)) || !cli_int(a, v, 1, 1 << 24, &n_ctx))
                return CLI_EXIT_USAGE;
        } else if (a[0] == '-' && a[1]) {
            cli_unknown("info", a);
            return CLI_EXIT_USAGE;
        } else if (path) {
            tern_log_error("tern info takes one model, got '%s' and '%s'", path, a);
            return CLI_EXIT_USAGE;
        } else {
            path = a;
        }
    }
    if (!path) {
        tern_log_error("tern info needs a model path (see tern info --help)");
        return CLI_EXIT_USAGE;
    }
    /* a file that is not well-formed GGUF is an error; a well-formed one tern cannot run is described */
    tern_gguf *g;
    tern_status st = tern_gguf_create(path, &g);
    if (st)
        return CLI_EXIT_FAIL;
    struct load_notes notes = {{0}, {0}};
    tern_log_set_callback(keep_notes, &notes);
    tern_model *m = NULL;
    st = tern_model_create(path, &m);
    tern_log_set_callback(NULL, NULL);

    printf("file: %s\n  %.1f MiB, GGUF v%u, %lld tensors, %lld metadata keys, alignment %u\n", path,
           mib(tern_gguf_file_size(g)), tern_gguf_version(g), (long long)tern_gguf_n_tensors(g),
           (long long)tern_gguf_n_kv(g), tern_gguf_alignment(g));
    print_str_key(g, "name", "general.name");
    if (st) {
        printf("runs: no: %s\n", notes.error[0] ? notes.error : "the model does not load");
        print_str_key(g, "architecture", "general.architecture");
        print_tokenizer(g);
        print_tensors_by_class(g, NULL);
        tern_gguf_free(g);
        return CLI_EXIT_OK;
    }
    print_runnable(m, &notes);
    const struct tern_hparams *hp = &tern_model_view(m)->hp;
    n_ctx = tern_session_params_n_ctx(m, &(struct tern_session_params){.n_ctx = n_ctx});
    printf("architecture: %s\n", tern_model_arch(m));
    printf("  %-22s %d\n  %-22s %d\n  %-22s %d\n  %-22s %d\n", "vocabulary", hp->n_vocab,
           "embedding (n_embd)", hp->n_embd, "feed-forward (n_ff)", hp->n_ff, "layers", hp->n_layer);
    printf("  %-22s %d (kv %d, head dim %d, rope dims %d)\n", "attention heads", hp->n_head, hp->n_head_kv,
           hp->head_dim, hp->n_rot);
    printf("  %-22s %d\n  %-22s %g\n  %-22s %g\n", "training context", hp->n_ctx_train, "rope theta",
           (double)hp->rope_theta, "rms norm eps", (double)hp->norm_eps);
    printf("  %-22s %s, %s rope, %s, %s head\n", "block",
           hp->ffn_act == TERN_FFN_RELU2 ? "relu^2 gated FFN" : "silu gated FFN",
           hp->rope_style == TERN_ROPE_NEOX ? "neox (half-split)" : "adjacent-pair",
           hp->has_sub_norms ? "sub-norms" : "no sub-norms",
           tern_gguf_find_tensor(g, "output.weight") ? "separate" : "tied");
    print_tokenizer(g);
    uint64_t by_class[4] = {0};
    print_tensors_by_class(g, by_class);
    const uint64_t kv = tern_model_kv_bytes(m, (int)n_ctx);
    printf("memory:\n");
    printf("  %-34s %10.1f MiB\n", "ternary weights in file", mib(by_class[TERN_CLASS_TERNARY]));
    printf("  %-34s %10.1f MiB\n", "other tensors in file", mib(by_class[TERN_CLASS_FLOAT]));
    printf("  %-34s %10.1f MiB\n", "mapped tensors read per token", mib(tern_model_mapped_bytes(m)));
    printf("  %-34s %10.1f MiB\n", "repacked weights and norms (RAM)", mib(tern_model_owned_bytes(m)));
    printf("  %-34s %10.1f MiB  (f16, %lld positions)\n", "KV cache", mib(kv), n_ctx);
    /* the int8 copy the CPU device builds of an F16/BF16/F32 head for the certified head (its default) */
    const struct tern_tensor *head = &tern_model_view(m)->output;
    const uint64_t shadow = tern_head_cert_supported(head) ? tern_head_shadow_bytes(head->ne0, head->ne1) : 0;
    if (shadow)
        printf("  %-34s %10.1f MiB  (none with --head-mode full)\n", "certified head's int8 copy (RAM)",
               mib(shadow));
    printf("  %-34s %10.1f MiB\n", "total",
           mib(tern_model_mapped_bytes(m) + tern_model_owned_bytes(m) + kv + shadow));
    tern_model_free(m);
    tern_gguf_free(g);
    return CLI_EXIT_OK;
}
