/* tern convert: a Hugging Face checkpoint folder -> a GGUF file tern (and bitnet.cpp) runs. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../scheduler/types.h"
#include "../convert/convert.h"
#include "../tern.h"
#include "cli.h"

static const char convert_usage[] =
    "Usage: tern convert HF_DIR -o OUT.gguf [options]\n"
    "\n"
    "Converts a Hugging Face folder (config.json, model.safetensors or model.safetensors.index.json\n"
    "with its shards, tokenizer.json, tokenizer_config.json) of BitNetForCausalLM (bitnet-b1.58-2B-4T,\n"
    "packed or bf16), BitnetForCausalLM (1bitLLM) or LlamaForCausalLM (Llama3-8B-1.58, Falcon3-1.58bit;\n"
    "other fp checkpoints are ternarized with absmean, with a warning) into GGUF.\n"
    "  -o, --output PATH   GGUF to write (appears only when complete)\n"
    "      --type T        linear weights: i2_s (default; bitnet.cpp's layout), tq2_0, tq1_0\n"
    "      --embd T        token embedding (and separate head): f16 (default), q8_0, q6_k\n"
    "  -h, --help          this help\n";

static void show_progress(int done, int total, void *user) {
    (void)user;
    const int width = 40, fill = total ? done * width / total : width;
    fprintf(stderr, "\rconverting [%.*s%*s] %d/%d tensors", fill, "########################################",
            width - fill, "", done, total);
    if (done == total)
        fputc('\n', stderr);
}

static bool pick(const char *flag, const char *v, const char *const *names, const uint32_t *types, int n,
                 uint32_t *out) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) {
            *out = types[i];
            return true;
        }
    tern_log_error("option %s: '%s' is not one of %s%s%s%s%s", flag, v, names[0], n > 1 ? ", " : "",
                   n > 1 ? names[1] : "", n > 2 ? ", " : "", n > 2 ? names[2] : "");
    return false;
}

/* Whether out names a .json or .safetensors file in the folder dir: the conversion reads such
 * files, and its output would replace one of them. */
static bool replaces_input(const char *dir, const char *out) {
    const size_t n = strlen(out);
    if (!(n >= 5 && !strcmp(out + n - 5, ".json")) && !(n >= 12 && !strcmp(out + n - 12, ".safetensors")))
        return false;
    char *copy = strdup(out);
    struct stat a, b;
    const bool same = copy && stat(dirname(copy), &a) == 0 && stat(dir, &b) == 0 && a.st_dev == b.st_dev &&
                      a.st_ino == b.st_ino;
    free(copy);
    return same;
}

int cli_convert(int argc, char **argv) {
    static const char *const lin_names[3] = {"i2_s", "tq2_0", "tq1_0"};
    static const uint32_t lin_types[3] = {TERN_TYPE_I2_S, TERN_TYPE_TQ2_0, TERN_TYPE_TQ1_0};
    static const char *const embd_names[3] = {"f16", "q8_0", "q6_k"};
    static const uint32_t embd_types[3] = {TERN_TYPE_F16, TERN_TYPE_Q8_0, TERN_TYPE_Q6_K};
    struct tern_convert_params p = {.linear_type = TERN_TYPE_I2_S, .embd_type = TERN_TYPE_F16};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(convert_usage, stdout);
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!(p.out_path = cli_value(argc, argv, &i)))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--type")) {
            if (!(v = cli_value(argc, argv, &i)) || !pick(a, v, lin_names, lin_types, 3, &p.linear_type))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--embd")) {
            if (!(v = cli_value(argc, argv, &i)) || !pick(a, v, embd_names, embd_types, 3, &p.embd_type))
                return CLI_EXIT_USAGE;
        } else if (a[0] == '-' && a[1]) {
            cli_unknown("convert", a);
            return CLI_EXIT_USAGE;
        } else if (p.hf_dir) {
            tern_log_error("tern convert takes one folder, got '%s' and '%s'", p.hf_dir, a);
            return CLI_EXIT_USAGE;
        } else {
            p.hf_dir = a;
        }
    }
    if (!p.hf_dir || !p.out_path) {
        tern_log_error("tern convert needs a Hugging Face folder and -o OUT.gguf (see tern convert --help)");
        return CLI_EXIT_USAGE;
    }
    if (replaces_input(p.hf_dir, p.out_path)) {
        tern_log_error("-o %s would replace a file of the checkpoint in %s: write the GGUF elsewhere",
                       p.out_path, p.hf_dir);
        return CLI_EXIT_USAGE;
    }
    if (isatty(STDERR_FILENO))
        p.progress = show_progress;
    const double t0 = tern_time_s();
    tern_status st = tern_convert(&p);
    if (st)
        return CLI_EXIT_FAIL;
    struct stat sb;
    tern_log_info("wrote %s: %.1f MiB, %s linear weights, %s embedding, in %.1f s", p.out_path,
                  stat(p.out_path, &sb) == 0 ? (double)sb.st_size / (1 << 20) : 0.0,
                  tern_type_name(p.linear_type), tern_type_name(p.embd_type), tern_time_s() - t0);
    return CLI_EXIT_OK;
}
