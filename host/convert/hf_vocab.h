/* Hugging Face tokenizer.json -> GGUF tokenizer.ggml.* keys (docs/formats.md#tokenizer-metadata): byte-level
 * BPE (tokenizer.ggml.model gpt2), or, with model.byte_fallback, a SentencePiece vocabulary
 * (tokenizer.ggml.model llama: <0xXX> byte tokens, <unk>, <s>/</s>, and scores from the merge ranks).
 * Reads model.vocab, model.merges ("a b" strings or [a, b] pairs) and added_tokens ("special":
 * true -> CONTROL, else USER_DEFINED); ids missing from both become "[PADn]" UNUSED tokens.
 * BOS/EOS come from tokenizer_config.json beside tokenizer.json when it names them, else from the
 * tokens <|begin_of_text|> / <|end_of_text|>; EOT from <|eot_id|> when present; the chat template
 * from tokenizer_config.json. JSON is parsed with jansson. */
#ifndef TERN_HF_VOCAB_H
#define TERN_HF_VOCAB_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "../gguf/gguf.h"

struct tern_hf_vocab {
    int32_t n_tokens;
    char **tokens;  /* [n_tokens] NUL-terminated token strings (byte-level encoded) */
    int32_t *types; /* [n_tokens] enum tern_token_type */
    uint64_t n_merges;
    char **merges;         /* [n_merges] "a b" */
    int32_t bos, eos, eot; /* -1 when unknown */
    bool add_bos;          /* tokenizer_config.json add_bos_token, default true */
    char pre[32];          /* tokenizer.ggml.pre: "falcon3" for Falcon3's vocabulary, else "llama-bpe" */
    char *chat_template;   /* tokenizer_config.json chat_template, or NULL */
    bool spm;              /* byte_fallback: a SentencePiece vocabulary (tokenizer.ggml.model llama) */
    float *scores;         /* spm: [n_tokens] merge priorities (higher merges first) */
};

/* Parse tokenizer.json (and the tokenizer_config.json next to it, if any). TERN_ERR_FORMAT with
 * one logged line naming the file and field on malformed input; TERN_ERR_UNSUPPORTED for a model
 * type other than BPE. */
tern_status tern_hf_vocab_create(const char *tokenizer_json_path, struct tern_hf_vocab **out);
/* Parse a JSON file with jansson (flags: JSON_DECODE_INT_AS_REAL or 0; NULs in strings allowed):
 * TERN_ERR_IO when unreadable, TERN_ERR_FORMAT when malformed, one logged line naming the file (and
 * line, column). *out: json_decref it. */
tern_status tern_hf_json_load(const char *path, size_t flags, json_t **out);
/* Take bos_token / eos_token / add_bos_token / chat_template from a tokenizer_config.json (strings or
 * {"content": ...} objects naming tokens of the vocabulary). */
tern_status tern_hf_vocab_apply_config(struct tern_hf_vocab *v, const char *config_path);
/* Grow the vocabulary to n_tokens with "[PADn]" UNUSED tokens (an embedding with more rows than
 * the tokenizer has tokens, as most checkpoints pad it). */
tern_status tern_hf_vocab_pad(struct tern_hf_vocab *v, int32_t n_tokens);
/* Add tokenizer.ggml.{model, pre, tokens, token_type, merges, bos/eos/eot_token_id, add_bos_token}
 * and tokenizer.chat_template. */
tern_status tern_hf_vocab_write(const struct tern_hf_vocab *v, tern_gguf_writer *w);
void tern_hf_vocab_free(struct tern_hf_vocab *v);

#endif
