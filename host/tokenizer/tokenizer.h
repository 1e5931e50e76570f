/* Tokenizer built from GGUF metadata (docs/formats.md#tokenizer-metadata): byte-level BPE (`gpt2`) with the
 * pre-tokenizers llama-bpe, default and falcon3 (regexes through PCRE2), and SentencePiece-style
 * BPE with scores (`llama`). Control tokens in the text are matched verbatim when parse_special is
 * set. A streaming detokenizer never emits half a UTF-8 character. */
#ifndef TERN_TOKENIZER_H
#define TERN_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../gguf/gguf.h"

typedef struct tern_tokenizer tern_tokenizer;

enum tern_token_type {
    TERN_TOKEN_NORMAL = 1,
    TERN_TOKEN_UNKNOWN = 2,
    TERN_TOKEN_CONTROL = 3,
    TERN_TOKEN_USER_DEFINED = 4,
    TERN_TOKEN_UNUSED = 5,
    TERN_TOKEN_BYTE = 6
};

/* pre_override: NULL, or a pre-tokenizer name that replaces tokenizer.ggml.pre (--pre).
 * Errors name the key at fault (TERN_ERR_FORMAT) or the unknown model/pre name (TERN_ERR_UNSUPPORTED). */
tern_status tern_tokenizer_create(const tern_gguf *g, const char *pre_override, tern_tokenizer **out);
void tern_tokenizer_free(tern_tokenizer *tok);

int32_t tern_tokenizer_n_vocab(const tern_tokenizer *tok);
const char *tern_tokenizer_model_name(const tern_tokenizer *tok); /* "gpt2" or "llama" */
const char *tern_tokenizer_pre_name(const tern_tokenizer *tok);   /* "llama-bpe", ...; "" for llama */
int32_t tern_tokenizer_bos(const tern_tokenizer *tok);            /* -1 when the model has none */
int32_t tern_tokenizer_eos(const tern_tokenizer *tok);
bool tern_tokenizer_add_bos(const tern_tokenizer *tok); /* tokenizer.ggml.add_bos_token, default true */
/* End of generation: EOS, EOT, and other end-of-turn control tokens (<|eot_id|>, <|end_of_text|>, ...). */
bool tern_tokenizer_is_eog(const tern_tokenizer *tok, int32_t id);
enum tern_token_type tern_tokenizer_token_type(const tern_tokenizer *tok, int32_t id);
/* The vocabulary string of a token as stored (byte-level encoded for gpt2). */
struct tern_str tern_tokenizer_token_text(const tern_tokenizer *tok, int32_t id);
/* id of a vocabulary string, -1 if absent */
int32_t tern_tokenizer_find(const tern_tokenizer *tok, const char *text, size_t len);

/* Encode text[len] (UTF-8; invalid bytes are kept as byte tokens). add_bos prepends BOS when the
 * model has one and the text does not already start with it (parsed as a special token);
 * parse_special matches control tokens written in the text (leftmost, longest);
 * user-defined tokens always match, as in llama.cpp and Hugging Face. *ids is malloc'd (free()
 * it, also when *n_ids is 0); *n_ids its length. Safe to call from several threads at once. */
tern_status tern_tokenize(const tern_tokenizer *tok, const char *text, size_t len, bool add_bos,
                          bool parse_special, int32_t **ids, size_t *n_ids);

/* The raw bytes a token stands for (byte-level decoded; SentencePiece ▁ -> space, <0xXX> -> byte).
 * Control tokens give their text only with `special`. Returns the byte count, which may exceed cap
 * (then nothing past cap is written). */
size_t tern_token_to_bytes(const tern_tokenizer *tok, int32_t id, bool special, char *buf, size_t cap);

/* Streaming detokenizer: push ids, get back only complete UTF-8 characters; flush emits whatever
 * is left (an invalid tail as U+FFFD). */
struct tern_detok {
    char pending[8];
    int n_pending;
    bool at_start; /* SentencePiece: drop the leading space of the first piece */
};
void tern_detok_init(struct tern_detok *d, const tern_tokenizer *tok);
/* Appends complete characters to out (cap bytes) and returns the number written. Control tokens
 * give nothing. Output that does not fit is dropped at a character boundary: give it
 * tern_detok_max_bytes(tok) bytes and nothing is ever dropped. */
size_t tern_detok_push(struct tern_detok *d, const tern_tokenizer *tok, int32_t id, char *out, size_t cap);
size_t tern_detok_flush(struct tern_detok *d, char *out, size_t cap);
/* The most bytes one push or flush can produce with this vocabulary: its longest token and a held
 * UTF-8 tail, every byte possibly replaced by the 3-byte U+FFFD. */
size_t tern_detok_max_bytes(const tern_tokenizer *tok);

#endif
