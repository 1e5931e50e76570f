/* tern tokenize: token ids and pieces of a text, as llama.cpp's llama-tokenize prints them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tern.h"
#include "cli.h"

static const char tokenize_usage[] =
    "Usage: tern tokenize -m MODEL (-p TEXT | -f FILE) [options]\n"
    "\n"
    "Prints one line per token: the id, then the piece in single quotes (bytes as they decode).\n"
    "  -m, --model PATH   GGUF model (only the tokenizer is read; tensors are validated)\n"
    "  -p, --prompt TEXT  text to tokenize\n"
    "  -f, --file PATH    read the text from a file (- for standard input)\n"
    "      --ids          print only the ids, as [1, 2, 3]\n"
    "      --no-bos       do not add the BOS token\n"
    "      --no-parse-special  treat control-token text as plain text\n"
    "      --pre NAME     override the pre-tokenizer (llama-bpe, default, falcon3)\n"
    "  -h, --help         this help\n";

int cli_tokenize(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *file = NULL, *pre = NULL;
    bool ids_only = false, no_bos = false, parse_special = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(tokenize_usage, stdout);
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model = cli_value(argc, argv, &i)))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!(prompt = cli_value(argc, argv, &i)))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!(file = cli_value(argc, argv, &i)))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--pre")) {
            if (!(pre = cli_value(argc, argv, &i)))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--ids")) {
            ids_only = true;
        } else if (!strcmp(a, "--no-bos")) {
            no_bos = true;
        } else if (!strcmp(a, "--no-parse-special")) {
            parse_special = false;
        } else {
            cli_unknown("tokenize", a);
            return CLI_EXIT_USAGE;
        }
    }
    if (!model) {
        tern_log_error("tern tokenize needs a model: -m MODEL");
        return CLI_EXIT_USAGE;
    }
    if (!prompt == !file) {
        tern_log_error("tern tokenize needs exactly one of -p TEXT or -f FILE");
        return CLI_EXIT_USAGE;
    }
    char *text = NULL;
    size_t len = 0;
    if (file && !(text = cli_read_file(file, &len)))
        return CLI_EXIT_FAIL;
    if (prompt)
        len = strlen(prompt);
    int rc = CLI_EXIT_FAIL;
    tern_gguf *g = NULL;
    tern_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    char *buf = NULL;
    size_t n = 0;
    tern_status st = tern_gguf_create(model, &g);
    if (st)
        goto done;
    st = tern_tokenizer_create(g, pre, &tok);
    if (st)
        goto done;
    st = tern_tokenize(tok, text ? text : prompt, len, !no_bos && tern_tokenizer_add_bos(tok), parse_special,
                       &ids, &n);
    if (st)
        goto done;
    if (ids_only) {
        putchar('[');
        for (size_t i = 0; i < n; i++)
            printf(i ? ", %d" : "%d", ids[i]);
        puts("]");
    } else {
        /* sized for the longest piece: a token's bytes never outnumber its text's, plus 3 */
        size_t cap = 3;
        for (size_t i = 0; i < n; i++) {
            const size_t len = tern_tokenizer_token_text(tok, ids[i]).len;
            cap = len > cap ? len : cap;
        }
        if (!(buf = malloc(cap))) {
            tern_log_error("out of memory for a token of %zu bytes", cap);
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            size_t b = tern_token_to_bytes(tok, ids[i], true, buf, cap);
            printf("%6d -> '", ids[i]);
            fwrite(buf, 1, b, stdout);
            fputs("'\n", stdout);
        }
    }
    rc = CLI_EXIT_OK;
done:
    free(buf);
    free(ids);
    tern_tokenizer_free(tok);
    tern_gguf_free(g);
    free(text);
    return rc;
}
