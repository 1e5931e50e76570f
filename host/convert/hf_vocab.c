/* Hugging Face tokenizer.json -> tokenizer.ggml.* metadata (see hf_vocab.h). */
#include "hf_vocab.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../scheduler/log.h"
#include "../tokenizer/tokenizer.h"

void tern_hf_vocab_free(struct tern_hf_vocab *v) {
    if (!v)
        return;
    for (int32_t i = 0; v->tokens && i < v->n_tokens; i++)
        free(v->tokens[i]);
    for (uint64_t i = 0; v->merges && i < v->n_merges; i++)
        free(v->merges[i]);
    free(v->tokens);
    free(v->types);
    free(v->merges);
    free(v->chat_template);
    free(v->scores);
    free(v);
}

static int32_t find_token(const struct tern_hf_vocab *v, const char *s) {
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (v->tokens[i] && strcmp(v->tokens[i], s) == 0)
            return i;
    return -1;
}

static char *dup_bytes(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static tern_status bad(const char *path, const char *what) {
    tern_log_error("%s: %s", path, what);
    return TERN_ERR_FORMAT;
}

/* Ids past this are refused before the vocabulary is allocated: the largest vocabularies in use
 * have about 262k tokens, and an id of 10^9 would have made a billion "[PADn]" tokens. */
#define MAX_TOKENS (1 << 24)

/* A non-negative integer id below MAX_TOKENS, or -1. */
static int64_t json_id(const json_t *id) {
    if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= MAX_TOKENS)
        return -1;
    return (int64_t)json_integer_value(id);
}

static bool is_byte_token(const char *t) {
    return strlen(t) == 6 && t[0] == '<' && t[1] == '0' && t[2] == 'x' && t[5] == '>';
}

/* Score -rank for the token each merge produces (v->scores holds the other scores already). */
static tern_status spm_merge_scores(struct tern_hf_vocab *v) {
    /* token -> id through a jansson object (a hash table): tens of thousands of merges */
    json_t *ids = json_object();
    char *joined = malloc(1);
    size_t cap = 1;
    tern_status st = TERN_ERR_NOMEM;
    if (!ids || !joined)
        goto done;
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (json_object_set_new_nocheck(ids, v->tokens[i], json_integer(i)) != 0)
            goto done;
    for (uint64_t r = v->n_merges; r-- > 0;) { /* backwards: the first (best) rank wins */
        const char *m = v->merges[r], *sp = strchr(m, ' ');
        const size_t len = strlen(m);
        if (!sp)
            continue;
        if (len > cap) {
            char *j = realloc(joined, len);
            if (!j)
                goto done;
            joined = j;
            cap = len;
        }
        memcpy(joined, m, (size_t)(sp - m));
        memcpy(joined + (sp - m), sp + 1, len - (size_t)(sp - m)); /* the rest and its NUL */
        const json_t *id = json_object_get(ids, joined);
        if (id && v->types[json_integer_value(id)] == TERN_TOKEN_NORMAL)
            v->scores[json_integer_value(id)] = -(float)r;
    }
    st = TERN_OK;
done:
    free(joined);
    json_decref(ids);
    return st;
}

/* SentencePiece vocabulary: byte tokens <0xXX>, <unk>, and scores that make tern's SentencePiece
 * merge (best score first) follow the merge ranks of tokenizer.json: the token a merge produces
 * scores -rank; a normal token no merge produces scores below every merge result. */
static tern_status spm_finish(struct tern_hf_vocab *v) {
    if (!(v->scores = malloc((size_t)v->n_tokens * sizeof *v->scores)))
        return TERN_ERR_NOMEM;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        v->scores[i] = -1e6f - (float)i;
        if (v->types[i] == TERN_TOKEN_NORMAL && is_byte_token(v->tokens[i]))
            v->types[i] = TERN_TOKEN_BYTE;
        else if (strcmp(v->tokens[i], "<unk>") == 0)
            v->types[i] = TERN_TOKEN_UNKNOWN;
        if (v->types[i] != TERN_TOKEN_NORMAL)
            v->scores[i] = 0.0f;
    }
    tern_status st = spm_merge_scores(v);
    if (st)
        return st;
    v->bos = find_token(v, "<s>");
    v->eos = find_token(v, "</s>");
    v->eot = -1;
    v->add_bos = true;
    snprintf(v->pre, sizeof v->pre, "%s", "default");
    return TERN_OK;
}

static tern_status fill(struct tern_hf_vocab *v, const json_t *root, const char *path) {
    const json_t *model = json_object_get(root, "model");
    if (!json_is_object(model))
        return bad(path, "model: missing or not an object");
    const json_t *type = json_object_get(model, "type");
    if (json_is_string(type) && strcmp(json_string_value(type), "BPE") != 0) {
        tern_log_error("%s: model.type: \"%s\" is not supported (only BPE)", path, json_string_value(type));
        return TERN_ERR_UNSUPPORTED;
    }
    /* byte_fallback: a SentencePiece vocabulary (Llama-2 style, 1bitLLM) */
    v->spm = json_is_true(json_object_get(model, "byte_fallback"));
    const json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab))
        return bad(path, "model.vocab: missing or not an object");
    const json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_array(added) && !json_is_null(added))
        return bad(path, "added_tokens: not an array");

    int64_t max_id = -1;
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)vocab, key, val) {
        int64_t id = json_id(val);
        if (id < 0)
            return bad(path, "model.vocab: ids must be integers from 0 to 16777215");
        if (id > max_id)
            max_id = id;
    }
    size_t i;
    json_array_foreach(added, i, val) {
        int64_t id = json_id(json_object_get(val, "id"));
        if (id < 0 || !json_is_string(json_object_get(val, "content")))
            return bad(path, "added_tokens: each entry needs an id from 0 to 16777215 and a string content");
        if (id > max_id)
            max_id = id;
    }
    if (max_id < 0)
        return bad(path, "model.vocab: empty");
    v->n_tokens = (int32_t)(max_id + 1);
    v->tokens = calloc((size_t)v->n_tokens, sizeof *v->tokens);
    v->types = calloc((size_t)v->n_tokens, sizeof *v->types);
    if (!v->tokens || !v->types)
        return TERN_ERR_NOMEM;
    size_t key_len;
    json_object_keylen_foreach((json_t *)vocab, key, key_len, val) {
        int32_t id = (int32_t)json_integer_value(val);
        if (v->tokens[id]) {
            tern_log_error("%s: model.vocab: id %d given twice", path, id);
            return TERN_ERR_FORMAT;
        }
        if (!(v->tokens[id] = dup_bytes(key, key_len)))
            return TERN_ERR_NOMEM;
        v->types[id] = TERN_TOKEN_NORMAL;
    }
    json_array_foreach(added, i, val) {
        int32_t id = (int32_t)json_integer_value(json_object_get(val, "id"));
        const json_t *content = json_object_get(val, "content");
        free(v->tokens[id]); /* an added token overrides a vocab entry of the same id */
        if (!(v->tokens[id] = dup_bytes(json_string_value(content), json_string_length(content))))
            return TERN_ERR_NOMEM;
        v->types[id] =
            json_is_true(json_object_get(val, "special")) ? TERN_TOKEN_CONTROL : TERN_TOKEN_USER_DEFINED;
    }
    for (int32_t t = 0; t < v->n_tokens; t++) {
        if (v->tokens[t])
            continue;
        char name[32];
        snprintf(name, sizeof name, "[PAD%d]", (int)t);
        if (!(v->tokens[t] = dup_bytes(name, strlen(name))))
            return TERN_ERR_NOMEM;
        v->types[t] = TERN_TOKEN_UNUSED;
    }

    const json_t *merges = json_object_get(model, "merges");
    if (merges && !json_is_array(merges))
        return bad(path, "model.merges: not an array");
    v->n_merges = json_array_size(merges);
    v->merges = calloc(v->n_merges ? v->n_merges : 1, sizeof *v->merges);
    if (!v->merges)
        return TERN_ERR_NOMEM;
    json_array_foreach(merges, i, val) {
        const json_t *a = json_array_get(val, 0), *b = json_array_get(val, 1);
        if (json_is_string(val)) {
            v->merges[i] = dup_bytes(json_string_value(val), json_string_length(val));
        } else if (json_array_size(val) == 2 && json_is_string(a) && json_is_string(b)) {
            size_t la = json_string_length(a), lb = json_string_length(b);
            char *m = malloc(la + lb + 2);
            if (m) {
                memcpy(m, json_string_value(a), la);
                m[la] = ' ';
                memcpy(m + la + 1, json_string_value(b), lb);
                m[la + lb + 1] = 0;
            }
            v->merges[i] = m;
        } else {
            tern_log_error("%s: model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]", path, i);
            return TERN_ERR_FORMAT;
        }
        if (!v->merges[i])
            return TERN_ERR_NOMEM;
    }
    if (v->spm)
        return spm_finish(v);
    v->bos = find_token(v, "<|begin_of_text|>");
    v->eos = find_token(v, "<|end_of_text|>");
    v->eot = find_token(v, "<|eot_id|>");
    v->add_bos = true;
    /* Falcon3's vocabulary has its own pre-tokenizer name (same split as Llama-3) */
    snprintf(v->pre, sizeof v->pre, "%s", find_token(v, ">>TITLE<<") >= 0 ? "falcon3" : "llama-bpe");
    return TERN_OK;
}

tern_status tern_hf_json_load(const char *path, size_t flags, json_t **out) {
    json_error_t err;
    *out = json_load_file(path, JSON_ALLOW_NUL | flags, &err);
    if (*out)
        return TERN_OK;
    if (err.line < 0) {
        tern_log_error("%s: cannot read: %s", path, err.text);
        return TERN_ERR_IO;
    }
    tern_log_error("%s: line %d column %d: %s", path, err.line, err.column, err.text);
    return TERN_ERR_FORMAT;
}

tern_status tern_hf_vocab_create(const char *tokenizer_json_path, struct tern_hf_vocab **out) {
    if (!tokenizer_json_path || !out)
        return TERN_ERR_ARG;
    *out = NULL;
    json_t *root;
    tern_status st = tern_hf_json_load(tokenizer_json_path, 0, &root);
    if (st)
        return st;
    struct tern_hf_vocab *v = calloc(1, sizeof *v);
    if (!v) {
        json_decref(root);
        return TERN_ERR_NOMEM;
    }
    st = fill(v, root, tokenizer_json_path);
    json_decref(root);
    if (st)
        goto done;
    /* tokenizer_config.json beside tokenizer.json, when there is one */
    const char *slash = strrchr(tokenizer_json_path, '/');
    size_t dir = slash ? (size_t)(slash - tokenizer_json_path + 1) : 0;
    char *cfg = malloc(dir + sizeof "tokenizer_config.json");
    if (!cfg) {
        st = TERN_ERR_NOMEM;
        goto done;
    }
    memcpy(cfg, tokenizer_json_path, dir);
    memcpy(cfg + dir, "tokenizer_config.json", sizeof "tokenizer_config.json");
    FILE *f = fopen(cfg, "rb");
    if (f) {
        fclose(f);
        st = tern_hf_vocab_apply_config(v, cfg);
    }
    free(cfg);
    if (st)
        goto done;
    *out = v;
    return TERN_OK;
done: /* failures only */
    tern_hf_vocab_free(v);
    return st;
}

/* bos_token / eos_token as a string or an AddedToken object; absent or null leaves *id alone. */
static tern_status config_token(struct tern_hf_vocab *v, const json_t *cfg, const char *key, const char *path,
                                int32_t *id) {
    const json_t *t = json_object_get(cfg, key);
    if (json_is_object(t))
        t = json_object_get(t, "content");
    if (!t || json_is_null(t))
        return TERN_OK;
    if (!json_is_string(t)) {
        tern_log_error("%s: %s: expected a string", path, key);
        return TERN_ERR_FORMAT;
    }
    int32_t found = find_token(v, json_string_value(t));
    if (found < 0) {
        tern_log_error("%s: %s: \"%s\" is not in the vocabulary", path, key, json_string_value(t));
        return TERN_ERR_FORMAT;
    }
    *id = found;
    return TERN_OK;
}

tern_status tern_hf_vocab_apply_config(struct tern_hf_vocab *v, const char *config_path) {
    if (!v || !config_path)
        return TERN_ERR_ARG;
    json_t *cfg;
    /* integers as reals: model_max_length is often 1e30, past jansson's integer range */
    tern_status st = tern_hf_json_load(config_path, JSON_DECODE_INT_AS_REAL, &cfg);
    if (st)
        return st;
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return bad(config_path, "not a JSON object");
    }
    st = config_token(v, cfg, "bos_token", config_path, &v->bos);
    if (st)
        goto done;
    st = config_token(v, cfg, "eos_token", config_path, &v->eos);
    if (st)
        goto done;
    const json_t *ab = json_object_get(cfg, "add_bos_token");
    if (json_is_boolean(ab))
        v->add_bos = json_is_true(ab);
    const json_t *tmpl = json_object_get(cfg, "chat_template");
    if (json_is_string(tmpl)) {
        free(v->chat_template);
        if (!(v->chat_template = dup_bytes(json_string_value(tmpl), json_string_length(tmpl))))
            st = TERN_ERR_NOMEM;
    }
done:
    json_decref(cfg);
    return st;
}

tern_status tern_hf_vocab_pad(struct tern_hf_vocab *v, int32_t n_tokens) {
    if (n_tokens <= v->n_tokens)
        return TERN_OK;
    char **tokens = realloc(v->tokens, (size_t)n_tokens * sizeof *tokens);
    if (tokens)
        v->tokens = tokens;
    int32_t *types = realloc(v->types, (size_t)n_tokens * sizeof *types);
    if (types)
        v->types = types;
    float *scores = v->spm ? realloc(v->scores, (size_t)n_tokens * sizeof *scores) : NULL;
    if (scores)
        v->scores = scores;
    if (!tokens || !types || (v->spm && !scores))
        return TERN_ERR_NOMEM;
    for (; v->n_tokens < n_tokens; v->n_tokens++) {
        char name[32];
        snprintf(name, sizeof name, "[PAD%d]", (int)v->n_tokens);
        if (!(v->tokens[v->n_tokens] = dup_bytes(name, strlen(name))))
            return TERN_ERR_NOMEM;
        v->types[v->n_tokens] = TERN_TOKEN_UNUSED;
        if (v->spm)
            v->scores[v->n_tokens] = 0.0f;
    }
    return TERN_OK;
}

tern_status tern_hf_vocab_write(const struct tern_hf_vocab *v, tern_gguf_writer *w) {
    if (!v || !w)
        return TERN_ERR_ARG;
    tern_status st = tern_gguf_writer_set_str(w, "tokenizer.ggml.model", v->spm ? "llama" : "gpt2");
    if (st)
        return st;
    st = tern_gguf_writer_set_str(w, "tokenizer.ggml.pre", v->pre);
    if (st)
        return st;
    if (v->spm) {
        st = tern_gguf_writer_set_arr(w, "tokenizer.ggml.scores", TERN_GGUF_F32, v->scores,
                                      (uint64_t)v->n_tokens);
        if (st)
            return st;
    }
    st = tern_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens,
                                      (uint64_t)v->n_tokens);
    if (st)
        return st;
    st = tern_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", TERN_GGUF_I32, v->types,
                                  (uint64_t)v->n_tokens);
    if (st)
        return st;
    if (!v->spm) {
        st = tern_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges,
                                          v->n_merges);
        if (st)
            return st;
    }
    if (v->bos >= 0) {
        st = tern_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
        if (st)
            return st;
    }
    if (v->eos >= 0) {
        st = tern_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
        if (st)
            return st;
    }
    if (v->eot >= 0) {
        st = tern_gguf_writer_set_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)v->eot);
        if (st)
            return st;
    }
    st = tern_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos && v->bos >= 0);
    if (st)
        return st;
    if (v->chat_template)
        return tern_gguf_writer_set_str(w, "tokenizer.chat_template", v->chat_template);
    return TERN_OK;
}
