/* Tokenizer construction from GGUF metadata (docs/formats.md#tokenizer-metadata), the token hash table,
 * accessors, and tern_tokenize: control/user-defined tokens written in the text are cut out first (leftmost,
 * longest), then each stretch of plain text goes to byte-level BPE (pre-tokenizer + merges,
 * tokenizer_bpe.c, pretok.c) or SentencePiece BPE (tokenizer_spm.c). */
#include <stdlib.h>
#include <string.h>

#include "../../scheduler/log.h"
#include "tokenizer_internal.h"

/* Control tokens that end a turn in the chat formats tern knows, besides EOS and EOT. */
static const char *const EOG_NAMES[] = {"<|eot_id|>", "<|end_of_text|>", "<|eom_id|>", "<|im_end|>",
                                        "</s>",       "<|endoftext|>",   "<|end|>"};

tern_status tern_tok_ids_push(struct tern_tok_ids *ids, int32_t id) {
    if (ids->n == ids->cap) {
        size_t nc = ids->cap ? ids->cap * 2 : 64;
        int32_t *nv = realloc(ids->v, nc * sizeof *nv);
        if (!nv)
            return TERN_ERR_NOMEM;
        ids->v = nv;
        ids->cap = nc;
    }
    ids->v[ids->n++] = id;
    return TERN_OK;
}

uint64_t tern_tok_hash_bytes(const char *s, size_t len) {
    /* FNV-1a with a final mix: short keys, and the table only needs a good spread of low bits. */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 0x100000001b3ULL;
    h ^= h >> 29;
    return h;
}

int32_t tern_tok_lookup(const tern_tokenizer *tok, const char *s, size_t len) {
    for (uint32_t i = (uint32_t)tern_tok_hash_bytes(s, len) & tok->tok_mask;; i = (i + 1) & tok->tok_mask) {
        int32_t id = tok->tok_hash[i];
        if (id < 0)
            return -1;
        if (tok->text_len[id] == len && memcmp(tern_tok_text(tok, id), s, len) == 0)
            return id;
    }
}

static bool str_eq(struct tern_str s, const char *c) {
    return s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0;
}

/* Optional token-id key: absent -> *id = dflt; negative -> none; >= n_vocab -> TERN_ERR_FORMAT. */
static tern_status read_id(const tern_gguf *g, const char *key, int32_t n_vocab, int32_t dflt, int32_t *id) {
    int64_t v;
    tern_status st = tern_gguf_get_i64(g, key, &v);
    if (st == TERN_ERR_NOT_FOUND) {
        *id = dflt < n_vocab ? dflt : -1;
        return TERN_OK;
    }
    if (st)
        return st;
    if (v >= n_vocab) {
        tern_log_error("%s: %s: id %lld out of range (vocabulary of %d tokens)", tern_gguf_path(g), key,
                       (long long)v, n_vocab);
        return TERN_ERR_FORMAT;
    }
    *id = v < 0 ? -1 : (int32_t)v;
    return TERN_OK;
}

/* tokenizer.ggml.tokens into the arena and the hash table. */
static tern_status load_tokens(tern_tokenizer *tok, const tern_gguf *g) {
    const char *key = "tokenizer.ggml.tokens";
    enum tern_gguf_vtype et;
    uint64_t n = 0;
    const void *data;
    tern_status st = tern_gguf_get_arr(g, key, &et, &n, &data);
    if (st == TERN_ERR_NOT_FOUND) {
        tern_log_error("%s: %s: missing", tern_gguf_path(g), key);
        return TERN_ERR_FORMAT;
    }
    if (st)
        return st;
    if (et != TERN_GGUF_STRING || n == 0 || n > (uint64_t)INT32_MAX / 4) {
        tern_log_error("%s: %s: expected a non-empty array of strings", tern_gguf_path(g), key);
        return TERN_ERR_FORMAT;
    }
    tok->n_vocab = (int32_t)n;
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct tern_str s;
        st = tern_gguf_get_arr_str(g, key, i, &s);
        if (st)
            return st;
        if (s.len > UINT32_MAX / 2) {
            tern_log_error("%s: %s[%llu]: token too long", tern_gguf_path(g), key, (unsigned long long)i);
            return TERN_ERR_FORMAT;
        }
        total += s.len + 1;
    }
    uint64_t cap = 16;
    while (cap < n * 2)
        cap <<= 1;
    tok->arena = malloc(total);
    tok->text_off = malloc(n * sizeof *tok->text_off);
    tok->text_len = malloc(n * sizeof *tok->text_len);
    tok->tok_hash = malloc(cap * sizeof *tok->tok_hash);
    if (!tok->arena || !tok->text_off || !tok->text_len || !tok->tok_hash)
        return TERN_ERR_NOMEM;
    tok->tok_mask = (uint32_t)(cap - 1);
    memset(tok->tok_hash, 0xff, cap * sizeof *tok->tok_hash);
    uint64_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct tern_str s;
        tern_gguf_get_arr_str(g, key, i, &s);
        memcpy(tok->arena + off, s.ptr, s.len);
        tok->arena[off + s.len] = 0;
        tok->text_off[i] = off;
        tok->text_len[i] = (uint32_t)s.len;
        off += s.len + 1;
        /* Duplicate strings: the first id keeps the string, later ones stay reachable by id only. */
        if (tern_tok_lookup(tok, s.ptr, s.len) >= 0)
            continue;
        uint32_t h = (uint32_t)tern_tok_hash_bytes(s.ptr, s.len) & tok->tok_mask;
        while (tok->tok_hash[h] >= 0)
            h = (h + 1) & tok->tok_mask;
        tok->tok_hash[h] = (int32_t)i;
    }
    return TERN_OK;
}

/* Optional per-token numeric array with exactly n_vocab elements. */
static tern_status load_token_array(const tern_gguf *g, const char *key, int32_t n_vocab,
                                    enum tern_gguf_vtype want, const void **data) {
    enum tern_gguf_vtype et;
    uint64_t n = 0;
    *data = NULL;
    tern_status st = tern_gguf_get_arr(g, key, &et, &n, data);
    if (st == TERN_ERR_NOT_FOUND)
        return TERN_OK;
    if (st)
        return st;
    bool type_ok = et == want || (want == TERN_GGUF_I32 && et == TERN_GGUF_U32);
    if (!type_ok || n != (uint64_t)n_vocab) {
        tern_log_error("%s: %s: expected %d elements of type %d, found %llu of type %d", tern_gguf_path(g),
                       key, n_vocab, (int)want, (unsigned long long)n, (int)et);
        return TERN_ERR_FORMAT;
    }
    return TERN_OK;
}

static const tern_tokenizer *sort_tok;

static int special_cmp(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint8_t fx = (uint8_t)tern_tok_text(sort_tok, x)[0], fy = (uint8_t)tern_tok_text(sort_tok, y)[0];
    if (fx != fy)
        return fx < fy ? -1 : 1;
    uint32_t lx = sort_tok->text_len[x], ly = sort_tok->text_len[y];
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

static tern_status build_specials(tern_tokenizer *tok) {
    int32_t n = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++)
        if ((tok->types[i] == TERN_TOKEN_CONTROL || tok->types[i] == TERN_TOKEN_USER_DEFINED) &&
            tok->text_len[i] > 0)
            n++;
    tok->specials = malloc((size_t)(n ? n : 1) * sizeof *tok->specials);
    if (!tok->specials)
        return TERN_ERR_NOMEM;
    n = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++)
        if ((tok->types[i] == TERN_TOKEN_CONTROL || tok->types[i] == TERN_TOKEN_USER_DEFINED) &&
            tok->text_len[i] > 0)
            tok->specials[n++] = i;
    tok->n_specials = n;
    /* qsort has no context argument in C11; loads are not expected to race on this. */
    sort_tok = tok;
    qsort(tok->specials, (size_t)n, sizeof *tok->specials, special_cmp);
    int32_t k = 0;
    for (int b = 0; b < 256; b++) {
        tok->special_start[b] = k;
        while (k < n && (uint8_t)tern_tok_text(tok, tok->specials[k])[0] == b)
            k++;
    }
    tok->special_start[256] = n;
    return TERN_OK;
}

static tern_status load(tern_tokenizer *tok, const tern_gguf *g, const char *pre_override) {
    const char *path = tern_gguf_path(g);
    struct tern_str model;
    tern_status st = tern_gguf_get_str(g, "tokenizer.ggml.model", &model);
    if (st == TERN_ERR_NOT_FOUND) {
        tern_log_error("%s: tokenizer.ggml.model: missing", path);
        return TERN_ERR_FORMAT;
    }
    if (st)
        return st;
    if (str_eq(model, "gpt2")) {
        tok->model = TERN_TOK_GPT2;
    } else if (str_eq(model, "llama")) {
        tok->model = TERN_TOK_SPM;
    } else {
        tern_log_error("%s: tokenizer.ggml.model: \"%.*s\" is not supported (known: gpt2, llama)", path,
                       (int)(model.len > 64 ? 64 : model.len), model.ptr);
        return TERN_ERR_UNSUPPORTED;
    }
    st = load_tokens(tok, g);
    if (st)
        return st;
    int32_t n = tok->n_vocab;

    const void *types_data, *scores_data;
    st = load_token_array(g, "tokenizer.ggml.token_type", n, TERN_GGUF_I32, &types_data);
    if (st)
        return st;
    st = load_token_array(g, "tokenizer.ggml.scores", n, TERN_GGUF_F32, &scores_data);
    if (st)
        return st;
    tok->types = malloc((size_t)n);
    tok->eog = calloc((size_t)n, 1);
    tok->scores = calloc((size_t)n, sizeof *tok->scores);
    if (!tok->types || !tok->eog || !tok->scores)
        return TERN_ERR_NOMEM;
    for (int32_t i = 0; i < n; i++) {
        int32_t t = TERN_TOKEN_NORMAL;
        if (types_data)
            memcpy(&t, (const char *)types_data + 4 * (size_t)i, 4);
        if (t < TERN_TOKEN_NORMAL || t > TERN_TOKEN_BYTE) {
            tern_log_error("%s: tokenizer.ggml.token_type[%d]: unknown type %d", path, i, t);
            return TERN_ERR_FORMAT;
        }
        tok->types[i] = (uint8_t)t;
        if (scores_data)
            memcpy(&tok->scores[i], (const char *)scores_data + 4 * (size_t)i, 4);
    }

    /* llama.cpp's defaults for SentencePiece files without the keys: <unk> 0, <s> 1, </s> 2. */
    bool spm = tok->model == TERN_TOK_SPM;
    st = read_id(g, "tokenizer.ggml.bos_token_id", n, spm ? 1 : -1, &tok->bos);
    if (st)
        return st;
    st = read_id(g, "tokenizer.ggml.eos_token_id", n, spm ? 2 : -1, &tok->eos);
    if (st)
        return st;
    st = read_id(g, "tokenizer.ggml.eot_token_id", n, -1, &tok->eot);
    if (st)
        return st;
    st = read_id(g, "tokenizer.ggml.unknown_token_id", n, spm ? 0 : -1, &tok->unk);
    if (st)
        return st;
    bool b = true;
    st = tern_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b);
    if (st && st != TERN_ERR_NOT_FOUND)
        return st;
    tok->add_bos = b && tok->bos >= 0;
    b = true;
    st = tern_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &b);
    if (st && st != TERN_ERR_NOT_FOUND)
        return st;
    tok->add_space_prefix = spm && b;

    if (tok->eos >= 0)
        tok->eog[tok->eos] = 1;
    if (tok->eot >= 0)
        tok->eog[tok->eot] = 1;
    for (size_t i = 0; i < sizeof EOG_NAMES / sizeof EOG_NAMES[0]; i++) {
        int32_t id = tern_tok_lookup(tok, EOG_NAMES[i], strlen(EOG_NAMES[i]));
        if (id >= 0 && tok->types[id] == TERN_TOKEN_CONTROL)
            tok->eog[id] = 1;
    }
    st = build_specials(tok);
    if (st)
        return st;

    if (spm) {
        tok->pre_name = "";
        tern_spm_load(tok);
        return TERN_OK;
    }
    st = tern_bpe_load(tok, g);
    if (st)
        return st;
    const char *pre = NULL;
    if (pre_override) {
        pre = tern_pretok_canonical(pre_override, strlen(pre_override));
        if (!pre) {
            tern_log_error("pre-tokenizer '%s' is not supported (known: %s)", pre_override,
                           tern_pretok_known_names());
            return TERN_ERR_UNSUPPORTED;
        }
    } else {
        struct tern_str s;
        st = tern_gguf_get_str(g, "tokenizer.ggml.pre", &s);
        if (!st) {
            pre = tern_pretok_canonical(s.ptr, s.len);
            if (!pre) {
                tern_log_error("%s: tokenizer.ggml.pre: \"%.*s\" is not supported (known: %s)", path,
                               (int)(s.len > 64 ? 64 : s.len), s.ptr, tern_pretok_known_names());
                return TERN_ERR_UNSUPPORTED;
            }
        } else if (st == TERN_ERR_NOT_FOUND) {
            /* The official BitNet 2B-4T file has no pre key but was trained with the Llama-3 split. */
            bool llama3 = n >= 128000 && tern_tok_lookup(tok, "<|begin_of_text|>", 17) >= 0;
            pre = llama3 ? "llama-bpe" : "default";
            tern_log_debug("%s: no tokenizer.ggml.pre; using %s", path, pre);
        } else {
            return st;
        }
    }
    tok->pre_name = pre;
    tok->ignore_merges = strcmp(pre, "default") != 0;
    return tern_pretok_create(pre, &tok->pretok);
}

tern_status tern_tokenizer_create(const tern_gguf *g, const char *pre_override, tern_tokenizer **out) {
    if (!g || !out)
        return TERN_ERR_ARG;
    *out = NULL;
    tern_tokenizer *tok = calloc(1, sizeof *tok);
    tern_status st = TERN_ERR_NOMEM;
    if (!tok)
        goto done;
    st = load(tok, g, pre_override);
    if (st)
        goto done;
    *out = tok;
    return TERN_OK;
done:                         /* failures only */
    if (st == TERN_ERR_NOMEM) /* the loader's allocations fail silently: one line here */
        tern_log_error("%s: out of memory while loading the tokenizer", tern_gguf_path(g));
    tern_tokenizer_free(tok);
    return st;
}

void tern_tokenizer_free(tern_tokenizer *tok) {
    if (!tok)
        return;
    tern_pretok_free(tok->pretok);
    free(tok->specials);
    free(tok->merges);
    free(tok->eog);
    free(tok->types);
    free(tok->scores);
    free(tok->tok_hash);
    free(tok->text_len);
    free(tok->text_off);
    free(tok->arena);
    free(tok);
}

int32_t tern_tokenizer_n_vocab(const tern_tokenizer *tok) {
    return tok->n_vocab;
}
const char *tern_tokenizer_model_name(const tern_tokenizer *tok) {
    return tok->model == TERN_TOK_GPT2 ? "gpt2" : "llama";
}
const char *tern_tokenizer_pre_name(const tern_tokenizer *tok) {
    return tok->pre_name;
}
int32_t tern_tokenizer_bos(const tern_tokenizer *tok) {
    return tok->bos;
}
int32_t tern_tokenizer_eos(const tern_tokenizer *tok) {
    return tok->eos;
}
bool tern_tokenizer_add_bos(const tern_tokenizer *tok) {
    return tok->add_bos;
}

bool tern_tokenizer_is_eog(const tern_tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->n_vocab && tok->eog[id];
}

enum tern_token_type tern_tokenizer_token_type(const tern_tokenizer *tok, int32_t id) {
    if (id < 0 || id >= tok->n_vocab)
        return TERN_TOKEN_UNUSED;
    return (enum tern_token_type)tok->types[id];
}

struct tern_str tern_tokenizer_token_text(const tern_tokenizer *tok, int32_t id) {
    struct tern_str s = {"", 0};
    if (id < 0 || id >= tok->n_vocab)
        return s;
    s.ptr = tern_tok_text(tok, id);
    s.len = tok->text_len[id];
    return s;
}

int32_t tern_tokenizer_find(const tern_tokenizer *tok, const char *text, size_t len) {
    return tern_tok_lookup(tok, text, len);
}

struct bpe_ctx {
    const tern_tokenizer *tok;
    struct tern_tok_ids *out;
};

static tern_status bpe_piece(void *user, const char *piece, size_t len) {
    struct bpe_ctx *c = user;
    return tern_bpe_encode_word(c->tok, piece, len, c->out);
}

/* Plain text between special tokens. Every fragment starts the text or follows a special token,
 * so SentencePiece prepends its space to each one, as llama.cpp does. */
static tern_status encode_fragment(const tern_tokenizer *tok, const char *text, size_t len,
                                   struct tern_tok_ids *out) {
    if (tok->model == TERN_TOK_SPM)
        return tern_spm_encode(tok, text, len, tok->add_space_prefix, out);
    struct bpe_ctx c = {tok, out};
    return tern_pretok_split(tok->pretok, text, len, bpe_piece, &c);
}

/* The special token that starts at text[0] (longest first), -1 when none. User-defined tokens
 * always match (as in llama.cpp and Hugging Face); control tokens only with parse_special. */
static int32_t match_special(const tern_tokenizer *tok, const char *text, size_t len, bool parse_special) {
    uint8_t b = (uint8_t)text[0];
    for (int32_t k = tok->special_start[b]; k < tok->special_start[b + 1]; k++) {
        int32_t id = tok->specials[k];
        if (!parse_special && tok->types[id] != TERN_TOKEN_USER_DEFINED)
            continue;
        uint32_t l = tok->text_len[id];
        if (l <= len && memcmp(tern_tok_text(tok, id), text, l) == 0)
            return id;
    }
    return -1;
}

tern_status tern_tokenize(const tern_tokenizer *tok, const char *text, size_t len, bool add_bos,
                          bool parse_special, int32_t **ids, size_t *n_ids) {
    if (!tok || (!text && len) || !ids || !n_ids)
        return TERN_ERR_ARG;
    *ids = NULL;
    *n_ids = 0;
    struct tern_tok_ids out = {0};
    tern_status st;
    /* no second BOS when the text spells it (a chat prompt written with <|begin_of_text|>), as the
     * Hugging Face tokenizer, llama.cpp and bitnet.cpp do */
    if (add_bos && tok->bos >= 0 &&
        !(len > 0 && tok->n_specials && match_special(tok, text, len, parse_special) == tok->bos)) {
        st = tern_tok_ids_push(&out, tok->bos);
        if (st)
            goto done;
    }
    size_t seg = 0;
    for (size_t pos = 0; pos < len;) {
        int32_t id = tok->n_specials ? match_special(tok, text + pos, len - pos, parse_special) : -1;
        if (id < 0) {
            pos++;
            continue;
        }
        if (pos > seg) {
            st = encode_fragment(tok, text + seg, pos - seg, &out);
            if (st)
                goto done;
        }
        st = tern_tok_ids_push(&out, id);
        if (st)
            goto done;
        pos += tok->text_len[id];
        seg = pos;
    }
    if (len > seg) {
        st = encode_fragment(tok, text + seg, len - seg, &out);
        if (st)
            goto done;
    }
    st = TERN_ERR_NOMEM;
    *ids = out.v ? out.v : malloc(sizeof(int32_t));
    if (!*ids)
        goto done;
    *n_ids = out.n;
    return TERN_OK;
done: /* failures only */
    if (st == TERN_ERR_NOMEM)
        tern_log_error("out of memory while tokenizing %zu bytes of text", len);
    free(out.v);
    return st;
}
