/* libFuzzer target for the tokenizer (docs/fuzzing.md): each input describes a vocabulary and a
 * text. The vocabulary is written as a GGUF's tokenizer keys, loaded with tern_tokenizer_create
 * and, when accepted, the text (and a few fixed ones) is tokenized with and without BOS and
 * special-token parsing, every id is decoded (streamed and one by one) and every id near the
 * vocabulary's ends is rendered. Aborts when an id falls outside the vocabulary.
 *
 * Input layout:
 *   byte 0: bit 0 SentencePiece ("llama") else byte-level BPE ("gpt2"); bit 1 start from the base
 *           vocabulary (the 256 byte tokens, after <unk> <s> </s> for SentencePiece); bit 2 write
 *           token types; bit 3 scores; bit 4 merges; bit 5 BOS and EOS ids
 *   byte 1: the pre-tokenizer name (BPE), and the BOS id
 *   byte 2: how many tokens follow
 *   then that many NUL-terminated tokens, then (bit 4) NUL-terminated merges of up to 64 bytes,
 *   and the rest is the text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/gguf/gguf.h"
#include "host/tokenizer/tokenizer.h"
#include "host/tokenizer/tokenizer_internal.h"
#include "scheduler/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_TOKENS = 2048, MAX_MERGE = 64 };

static void quiet(enum tern_log_level level, const char *msg, void *user) {
    (void)level;
    (void)msg;
    (void)user;
}

static const char *const pre_names[8] = {"llama-bpe", "default", "gpt2", "llama3", "falcon3", "", "qwen2", "bogus"};

static char *tokens[MAX_TOKENS], *merges[MAX_TOKENS];
static int32_t types[MAX_TOKENS];
static float scores[MAX_TOKENS];
static char byte_names[256][8];
static char strings[1 << 16];

/* The next NUL-terminated string of [*p, end) copied into strings at *used; NULL when it does not
 * fit or is longer than max. */
static char *take(const uint8_t **p, const uint8_t *end, size_t *used, size_t max) {
    const uint8_t *z = memchr(*p, 0, (size_t)(end - *p));
    const size_t len = z ? (size_t)(z - *p) : (size_t)(end - *p);
    if (len > max || *used + len + 1 > sizeof strings)
        return NULL;
    char *s = strings + *used;
    memcpy(s, *p, len);
    s[len] = '\0';
    *used += len + 1;
    *p += len + (z ? 1 : 0);
    return s;
}

static void exercise(const tern_tokenizer *tok, const char *text, size_t len, int mode) {
    const int32_t n_vocab = tern_tokenizer_n_vocab(tok);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (tern_tokenize(tok, text, len, mode & 1, mode & 2, &ids, &n_ids) != TERN_OK) {
        free(ids);
        return;
    }
    struct tern_detok d;
    tern_detok_init(&d, tok);
    char out[4096], piece[256];
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= n_vocab)
            abort();
        tern_detok_push(&d, tok, ids[i], out, sizeof out);
        tern_token_to_bytes(tok, ids[i], i & 1, piece, sizeof piece);
    }
    tern_detok_flush(&d, out, sizeof out);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tern_log_set_callback(quiet, NULL);
    if (size < 3)
        return 0;
    const int flags = data[0], spm = flags & 1;
    const uint8_t *p = data + 3, *end = data + size;
    int n = 0, n_merges = 0;
    if (flags & 2) {
        if (spm) {
            static char *const head[3] = {"<unk>", "<s>", "</s>"};
            for (int i = 0; i < 3; i++) {
                tokens[n] = head[i];
                types[n] = i ? TERN_TOKEN_CONTROL : TERN_TOKEN_UNKNOWN;
                scores[n++] = 0.0f;
            }
        }
        for (int b = 0; b < 256; b++) {
            if (spm)
                snprintf(byte_names[b], sizeof byte_names[b], "<0x%02X>", b);
            tokens[n] = spm ? byte_names[b] : (char *)tern_bpe_byte_char((uint8_t)b);
            types[n] = spm ? TERN_TOKEN_BYTE : TERN_TOKEN_NORMAL;
            scores[n++] = 0.0f;
        }
    }
    size_t used = 0;
    for (int i = 0; i < data[2] && p < end && n < MAX_TOKENS; i++) {
        char *t = take(&p, end, &used, sizeof strings);
        if (!t)
            break;
        types[n] = 1 + (int)(strlen(t) % 7);
        scores[n++] = (float)strlen(t) - 3.0f;
        tokens[n - 1] = t;
    }
    while ((flags & 16) && p < end && n_merges < MAX_TOKENS) {
        char *m = take(&p, end, &used, MAX_MERGE);
        if (!m)
            break;
        merges[n_merges++] = m;
    }
    if (n == 0)
        return 0;
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz-tokenizer-%d.gguf", (int)getpid());
    tern_gguf_writer *w;
    if (tern_gguf_writer_create(&w) != TERN_OK)
        return 0;
    tern_status st = tern_gguf_writer_set_str(w, "general.architecture", "fuzz");
    if (!st)
        st = tern_gguf_writer_set_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
    if (!st && !spm)
        st = tern_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre_names[data[1] & 7]);
    if (!st)
        st = tern_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tokens, (uint64_t)n);
    if (!st && (flags & 4))
        st = tern_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", TERN_GGUF_I32, types, (uint64_t)n);
    if (!st && (flags & 8))
        st = tern_gguf_writer_set_arr(w, "tokenizer.ggml.scores", TERN_GGUF_F32, scores, (uint64_t)n);
    if (!st && (flags & 16))
        st = tern_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges,
                                          (uint64_t)n_merges);
    if (!st && (flags & 32))
        st = tern_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", data[1] * 7u);
    if (!st && (flags & 32))
        st = tern_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)n - 1);
    if (!st)
        st = tern_gguf_writer_write(w, path);
    tern_gguf_writer_free(w);
    tern_gguf *g = NULL;
    if (st || tern_gguf_create(path, &g) != TERN_OK) {
        unlink(path);
        return 0;
    }
    tern_tokenizer *tok;
    if (tern_tokenizer_create(g, NULL, &tok) == TERN_OK) {
        static const char *const fixed[3] = {"Hello world", " h\xC3\xA9llo  \n\n 123 4567 's \xC3 \xF0 ",
                                             "\xFF\xFE bad <s></s>\xC3"};
        for (int mode = 0; mode < 4; mode++) {
            for (int f = 0; f < 3; f++)
                exercise(tok, fixed[f], strlen(fixed[f]), mode);
            exercise(tok, (const char *)p, (size_t)(end - p), mode);
        }
        char piece[256];
        const int32_t n_vocab = tern_tokenizer_n_vocab(tok);
        for (int32_t id = 0; id < n_vocab; id += id == 300 && n_vocab > 600 ? n_vocab - 600 : 1) {
            tern_token_to_bytes(tok, id, id & 1, piece, sizeof piece);
            tern_tokenizer_is_eog(tok, id);
        }
        tern_tokenizer_free(tok);
    }
    tern_gguf_free(g);
    unlink(path);
    return 0;
}
