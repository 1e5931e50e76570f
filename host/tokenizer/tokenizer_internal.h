/* Private to the tokenizer files (tokenizer.c, tokenizer_bpe.c, tokenizer_spm.c, pretok.c,
 * detok.c): the tokenizer struct, the string and pair hash tables, and the helpers each
 * algorithm file exports to the others. */
#ifndef TERN_TOKENIZER_INTERNAL_H
#define TERN_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

enum tern_tok_model { TERN_TOK_GPT2 = 0, TERN_TOK_SPM = 1 };

/* One pair -> merge entry of the BPE rank table (open addressing, key 0 = empty slot;
 * keys are (left+1) << 32 | (right+1) so that no real pair hashes to 0). */
struct tern_merge_slot {
    uint64_t key;
    int32_t rank;   /* index in tokenizer.ggml.merges: lower merges first */
    int32_t result; /* id of the concatenated token */
};

struct tern_pretok;

struct tern_tokenizer {
    enum tern_tok_model model;
    const char *pre_name; /* static string; "" for SPM */
    int32_t n_vocab;

    char *arena;        /* all token strings, each NUL-terminated */
    uint64_t *text_off; /* [n_vocab] offset of each token string in arena */
    uint32_t *text_len; /* [n_vocab] byte length */
    float *scores;      /* [n_vocab], 0 when the file has none */
    uint8_t *types;     /* [n_vocab] enum tern_token_type */
    uint8_t *eog;       /* [n_vocab] 1 for end-of-generation tokens */

    int32_t *tok_hash; /* [tok_mask + 1] token ids, -1 empty */
    uint32_t tok_mask;

    struct tern_merge_slot *merges; /* [merge_mask + 1] */
    uint32_t merge_mask;
    int64_t n_merges;

    /* gpt2: id of the one-character token for each byte (after the byte-to-unicode map);
     * SPM: id of the <0xXX> token. -1 when absent. */
    int32_t byte_to_id[256];

    int32_t bos, eos, eot, unk; /* -1 when absent */
    bool add_bos;
    bool add_space_prefix; /* SPM: prepend U+2581 to the text */
    bool ignore_merges;    /* gpt2 llama-bpe/falcon3: a whole word found in the vocab wins */

    int32_t *specials; /* control + user-defined token ids, by first byte then longest first */
    int32_t n_specials;
    int32_t special_start[257]; /* specials[special_start[b] .. special_start[b+1]) start with byte b */

    struct tern_pretok *pretok; /* gpt2 only */
};

/* Growable id list. */
struct tern_tok_ids {
    int32_t *v;
    size_t n, cap;
};
tern_status tern_tok_ids_push(struct tern_tok_ids *ids, int32_t id);

/* Hashing and lookup (tokenizer.c). */
uint64_t tern_tok_hash_bytes(const char *s, size_t len);
int32_t tern_tok_lookup(const tern_tokenizer *tok, const char *s, size_t len);
static inline const char *tern_tok_text(const tern_tokenizer *tok, int32_t id) {
    return tok->arena + tok->text_off[id];
}

/* Byte-level BPE (tokenizer_bpe.c). */
/* UTF-8 of the GPT-2 byte-to-unicode image of byte b (1 or 2 bytes), NUL-terminated. */
const char *tern_bpe_byte_char(uint8_t b);
/* The byte a GPT-2 code point stands for, -1 when cp is not in the map. */
int tern_bpe_char_byte(uint32_t cp);
/* Read tokenizer.ggml.merges into the pair table and fill byte_to_id. */
tern_status tern_bpe_load(tern_tokenizer *tok, const tern_gguf *g);
/* Encode one pre-tokenized word (raw UTF-8 bytes) and append its ids. */
tern_status tern_bpe_encode_word(const tern_tokenizer *tok, const char *word, size_t len,
                                 struct tern_tok_ids *out);

/* SentencePiece BPE (tokenizer_spm.c): fill byte_to_id with the <0xXX> tokens. */
void tern_spm_load(tern_tokenizer *tok);
/* Encode one raw text fragment (escapes spaces; prefix_space prepends U+2581). */
tern_status tern_spm_encode(const tern_tokenizer *tok, const char *text, size_t len, bool prefix_space,
                            struct tern_tok_ids *out);

/* Pre-tokenizer (pretok.c). */
/* Known names, comma-separated, for messages. */
const char *tern_pretok_known_names(void);
/* Canonical name of a known pre-tokenizer (aliases resolved), NULL when unknown. */
const char *tern_pretok_canonical(const char *name, size_t len);
tern_status tern_pretok_create(const char *canonical_name, struct tern_pretok **out);
void tern_pretok_free(struct tern_pretok *p);
typedef tern_status (*tern_pretok_fn)(void *user, const char *piece, size_t len);
/* Split text into pieces (every byte lands in exactly one piece, in order) and call fn on each. */
tern_status tern_pretok_split(const struct tern_pretok *p, const char *text, size_t len, tern_pretok_fn fn,
                              void *user);

/* UTF-8 length of the sequence that starts with byte c (1 for an invalid lead byte). */
static inline size_t tern_utf8_len(unsigned char c) {
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0)
        return 2;
    if ((c & 0xF0) == 0xE0)
        return 3;
    if ((c & 0xF8) == 0xF0)
        return 4;
    return 1;
}

#endif
