/* tern: the command-line front end over the library (host/tern.h). */
#include <stdio.h>
#include <string.h>

#include "../tern.h"
#include "cli.h"

static const char usage[] =
    "tern " TERN_VERSION " - ternary (BitNet b1.58) LLM runtime\n"
    "\n"
    "Usage: tern COMMAND [options]   (tern COMMAND --help for its options)\n"
    "\n"
    "Commands:\n"
    "  run         generate text from a prompt\n"
    "  chat        talk with an instruct model in its chat format\n"
    "  info        print a model's architecture, hyperparameters, tensors and memory needs\n"
    "  tokenize    print the token ids (and pieces) of a text\n"
    "  convert     convert a Hugging Face checkpoint folder into a GGUF file\n"
    "  bench       measure prompt and generation speed (on a file or a random model of a known shape)\n"
    "  perplexity  a model's perplexity over a text file (as llama.cpp's llama-perplexity computes it)\n"
    "  serve       an OpenAI-compatible HTTP API with continuous batching\n"
    "  devices     list the devices tern can use (and, with --probe, their speed on a model)\n"
    "  help        print this help\n"
    "  version     print the version\n"
    "\n"
    "Environment: TERN_LOG=debug|info|warn|error,\n"
    "             TERN_CPU_ISA=scalar|avx2|avxvnni|avx512|neon|neondot (force a CPU kernel level),\n"
    "             TERN_DEVICE=SPEC (default device spec), TERN_CACHE_DIR (probe and kernel cache).\n";

static int n_errors;

/* stderr sink that counts errors, so that every failure reports exactly one line */
static void log_to_stderr(enum tern_log_level level, const char *msg, void *user) {
    (void)user;
    static const char *const prefix[TERN_LOG_COUNT] = {"debug: ", "", "warning: ", "error: "};
    if (level == TERN_LOG_ERROR)
        n_errors++;
    if (level >= tern_log_get_level())
        fprintf(stderr, "tern: %s%s\n", prefix[level], msg);
}

static int dispatch(int argc, char **argv);

int main(int argc, char **argv) {
    tern_log_set_callback(log_to_stderr, NULL);
    int rc = dispatch(argc, argv);
    if (rc != CLI_EXIT_OK && rc != CLI_EXIT_INTERRUPTED && n_errors == 0)
        fprintf(stderr, "tern: error: %s failed\n", argc > 1 ? argv[1] : "tern");
    return rc;
}

static int dispatch(int argc, char **argv) {
    if (argc < 2) {
        tern_log_error("no command given");
        fputs(usage, stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0)
        return cli_run(argc - 1, argv + 1);
    if (strcmp(cmd, "chat") == 0)
        return cli_chat(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0)
        return cli_info(argc - 1, argv + 1);
    if (strcmp(cmd, "tokenize") == 0)
        return cli_tokenize(argc - 1, argv + 1);
    if (strcmp(cmd, "convert") == 0)
        return cli_convert(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0)
        return cli_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "perplexity") == 0)
        return cli_perplexity(argc - 1, argv + 1);
    if (strcmp(cmd, "devices") == 0)
        return cli_devices(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0)
        return cli_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(usage, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("tern %s\n", TERN_VERSION);
        return CLI_EXIT_OK;
    }
    tern_log_error("unknown command '%s' (see tern help)", cmd);
    return CLI_EXIT_USAGE;
}
