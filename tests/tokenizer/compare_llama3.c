/* Compares tern's Llama-3 tokenization with the JavaScript reference (llama3_ref.mjs output).
 * usage: compare_llama3 TOKENIZER_JSON REF_JSONL SCRATCH_GGUF
 * Builds a vocab-only GGUF from tokenizer.json with host/convert/hf_vocab, loads it, tokenizes every
 * line with add_bos = false and parse_special = true (as the reference does), and checks that
 * the ids are equal and that decoding them gives the line back. Prints the count compared, every
 * mismatch (both id lists, up to 20) and the timings; exits non-zero on any mismatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host/convert/hf_vocab.h"
#include "host/gguf/gguf.h"
#include "host/tokenizer/tokenizer.h"
#include "scheduler/status.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    printf("  %s (%zu):", label, n);
    for (size_t i = 0; i < n; i++)
        printf(" %d", ids[i]);
    printf("\n");
}

static int die(const char *what, tern_status st) {
    fprintf(stderr, "compare_llama3: %s: %s\n", what, tern_status_name(st));
    return 2;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: compare_llama3 TOKENIZER_JSON REF_JSONL SCRATCH_GGUF\n");
        return 2;
    }
    double t0 = now_s();
    struct tern_hf_vocab *v;
    tern_status st = tern_hf_vocab_create(argv[1], &v);
    if (st != TERN_OK)
        return die("tern_hf_vocab_create", st);
    tern_gguf_writer *w;
    if ((st = tern_gguf_writer_create(&w)) != TERN_OK)
        return die("tern_gguf_writer_create", st);
    st = tern_hf_vocab_write(v, w);
    if (st == TERN_OK)
        st = tern_gguf_writer_write(w, argv[3]);
    tern_gguf_writer_free(w);
    tern_hf_vocab_free(v);
    if (st != TERN_OK)
        return die("writing the vocab GGUF", st);
    double t1 = now_s();

    tern_gguf *g;
    if ((st = tern_gguf_create(argv[3], &g)) != TERN_OK)
        return die("tern_gguf_create", st);
    tern_tokenizer *tok;
    double t2 = now_s();
    st = tern_tokenizer_create(g, NULL, &tok);
    double t3 = now_s();
    if (st != TERN_OK)
        return die("tern_tokenizer_create", st);
    printf("vocab: %d tokens, model %s, pre %s; hf -> gguf %.3f s, tokenizer load %.3f s\n",
           tern_tokenizer_n_vocab(tok), tern_tokenizer_model_name(tok), tern_tokenizer_pre_name(tok), t1 - t0,
           t3 - t2);

    /* BOS: added once, also when the text already starts with <|begin_of_text|> (the Hugging Face
     * tokenizer, llama.cpp and bitnet.cpp all give 128000 791 1212 here) */
    static const char bos_text[] = "<|begin_of_text|>The start";
    static const int32_t bos_want[] = {128000, 791, 1212};
    int32_t *bos_ids;
    size_t n_bos_ids;
    if ((st = tern_tokenize(tok, bos_text, strlen(bos_text), true, true, &bos_ids, &n_bos_ids)) != TERN_OK)
        return die("tern_tokenize", st);
    bool bos_ok = n_bos_ids == 3 && memcmp(bos_ids, bos_want, sizeof bos_want) == 0;
    if (!bos_ok) {
        printf("MISMATCH with add_bos: %s\n", bos_text);
        print_ids("reference", bos_want, 3);
        print_ids("tern     ", bos_ids, n_bos_ids);
    }
    free(bos_ids);

    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        fprintf(stderr, "compare_llama3: cannot open %s\n", argv[2]);
        return 2;
    }
    size_t cap = 1 << 16, n_lines = 0, n_bad = 0, n_bad_decode = 0, n_tokens = 0, n_bytes = 0;
    char *line = malloc(cap);
    char *dec = malloc(1 << 20);
    double t_tok = 0;
    for (;;) {
        size_t len = 0;
        int c;
        while ((c = fgetc(f)) != EOF && c != '\n') {
            if (len + 1 >= cap)
                line = realloc(line, cap *= 2);
            line[len++] = (char)c;
        }
        if (len == 0 && c == EOF)
            break;
        if (len == 0)
            continue;
        json_error_t jerr;
        json_t *rec = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
        if (!rec)
            return die("parsing a reference line", TERN_ERR_FORMAT);
        const json_t *text_v = json_object_get(rec, "text"), *ids = json_object_get(rec, "ids");
        if (!json_is_string(text_v) || !json_is_array(ids))
            return die("reference line without text/ids", TERN_ERR_FORMAT);
        const char *text = json_string_value(text_v);
        const size_t text_len = json_string_length(text_v);
        int32_t *got;
        size_t n_got;
        double a = now_s();
        st = tern_tokenize(tok, text, text_len, false, true, &got, &n_got);
        t_tok += now_s() - a;
        if (st != TERN_OK)
            return die("tern_tokenize", st);
        n_lines++;
        n_tokens += n_got;
        n_bytes += text_len;
        bool same = n_got == json_array_size(ids);
        for (size_t i = 0; same && i < n_got; i++)
            same = json_integer_value(json_array_get(ids, i)) == got[i];
        if (!same) {
            if (n_bad < 20) {
                printf("MISMATCH line %zu: %s\n", n_lines, line);
                int32_t *want = malloc((json_array_size(ids) + 1) * sizeof *want);
                for (size_t i = 0; i < json_array_size(ids); i++)
                    want[i] = (int32_t)json_integer_value(json_array_get(ids, i));
                print_ids("reference", want, json_array_size(ids));
                print_ids("tern     ", got, n_got);
                free(want);
            }
            n_bad++;
        }
        size_t dn = 0;
        for (size_t i = 0; i < n_got; i++)
            dn += tern_token_to_bytes(tok, got[i], true, dec + dn, dn < (1 << 20) ? (1 << 20) - dn : 0);
        if (dn != text_len || memcmp(dec, text, dn) != 0) {
            if (n_bad_decode < 5)
                printf("DECODE MISMATCH line %zu: %s\n", n_lines, line);
            n_bad_decode++;
        }
        free(got);
        json_decref(rec);
    }
    fclose(f);
    free(line);
    free(dec);
    printf("compared %zu lines (%zu bytes, %zu tokens): %zu mismatches, %zu decode mismatches; "
           "tokenize %.3f s (%.1f MB/s)\n",
           n_lines, n_bytes, n_tokens, n_bad, n_bad_decode, t_tok,
           t_tok > 0 ? (double)n_bytes / t_tok / 1e6 : 0.0);
    tern_tokenizer_free(tok);
    tern_gguf_free(g);
    if (n_lines < 2000) {
        printf("FAIL: only %zu lines compared (need at least 2000)\n", n_lines);
        return 1;
    }
    return n_bad || n_bad_decode || !bos_ok ? 1 : 0;
}
