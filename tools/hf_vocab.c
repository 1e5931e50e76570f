/* Hugging Face tokenizer.json -> tokenizer.ggml.* metadata (see hf_vocab.h). */
#include "hf_vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/tokenizer.h"
#include "json.h"
#include "scheduler/log.h"

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

static tern_status fill(struct tern_hf_vocab *v, const struct tern_json *root, const char *path) {
    const struct tern_json *model = tern_json_get_type(root, "model", TERN_JSON_OBJECT);
    if (!model)
        return bad(path, "model: missing or not an object");
    const struct tern_json *type = tern_json_get_type(model, "type", TERN_JSON_STRING);
    if (type && strcmp(type->str, "BPE") != 0) {
        tern_log_error("%s: model.type: \"%s\" is not supported (only BPE)", path, type->str);
        return TERN_ERR_UNSUPPORTED;
    }
    const struct tern_json *vocab = tern_json_get_type(model, "vocab", TERN_JSON_OBJECT);
    if (!vocab)
        return bad(path, "model.vocab: missing or not an object");
    const struct tern_json *added = tern_json_get(root, "added_tokens");
    if (added && added->type != TERN_JSON_ARRAY)
        return bad(path, "added_tokens: not an array");

    int64_t max_id = -1;
    for (size_t i = 0; i < vocab->len; i++) {
        const struct tern_json *id = &vocab->items[i];
        if (id->type != TERN_JSON_NUMBER || !id->is_int || id->integer < 0 || id->integer >= INT32_MAX / 2)
            return bad(path, "model.vocab: ids must be non-negative integers");
        if (id->integer > max_id)
            max_id = id->integer;
    }
    for (size_t i = 0; added && i < added->len; i++) {
        const struct tern_json *id = tern_json_get_type(&added->items[i], "id", TERN_JSON_NUMBER);
        const struct tern_json *content = tern_json_get_type(&added->items[i], "content", TERN_JSON_STRING);
        if (!id || !content || !id->is_int || id->integer < 0 || id->integer >= INT32_MAX / 2)
            return bad(path, "added_tokens: each entry needs an integer id and a string content");
        if (id->integer > max_id)
            max_id = id->integer;
    }
    if (max_id < 0)
        return bad(path, "model.vocab: empty");
    v->n_tokens = (int32_t)(max_id + 1);
    v->tokens = calloc((size_t)v->n_tokens, sizeof *v->tokens);
    v->types = calloc((size_t)v->n_tokens, sizeof *v->types);
    if (!v->tokens || !v->types)
        return TERN_ERR_NOMEM;
    for (size_t i = 0; i < vocab->len; i++) {
        int32_t id = (int32_t)vocab->items[i].integer;
        if (v->tokens[id]) {
            tern_log_error("%s: model.vocab: id %d given twice", path, id);
            return TERN_ERR_FORMAT;
        }
        if (!(v->tokens[id] = dup_bytes(vocab->keys[i], vocab->key_lens[i])))
            return TERN_ERR_NOMEM;
        v->types[id] = TERN_TOKEN_NORMAL;
    }
    for (size_t i = 0; added && i < added->len; i++) {
        const struct tern_json *e = &added->items[i];
        int32_t id = (int32_t)tern_json_get(e, "id")->integer;
        const struct tern_json *content = tern_json_get(e, "content");
        const struct tern_json *special = tern_json_get_type(e, "special", TERN_JSON_BOOL);
        free(v->tokens[id]); /* an added token overrides a vocab entry of the same id */
        if (!(v->tokens[id] = dup_bytes(content->str, content->len)))
            return TERN_ERR_NOMEM;
        v->types[id] = special && special->boolean ? TERN_TOKEN_CONTROL : TERN_TOKEN_USER_DEFINED;
    }
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (v->tokens[i])
            continue;
        char name[32];
        snprintf(name, sizeof name, "[PAD%d]", (int)i);
        if (!(v->tokens[i] = dup_bytes(name, strlen(name))))
            return TERN_ERR_NOMEM;
        v->types[i] = TERN_TOKEN_UNUSED;
    }

    const struct tern_json *merges = tern_json_get(model, "merges");
    if (merges && merges->type != TERN_JSON_ARRAY)
        return bad(path, "model.merges: not an array");
    v->n_merges = merges ? merges->len : 0;
    v->merges = calloc(v->n_merges ? v->n_merges : 1, sizeof *v->merges);
    if (!v->merges)
        return TERN_ERR_NOMEM;
    for (uint64_t i = 0; i < v->n_merges; i++) {
        const struct tern_json *m = &merges->items[i];
        if (m->type == TERN_JSON_STRING) {
            v->merges[i] = dup_bytes(m->str, m->len);
        } else if (m->type == TERN_JSON_ARRAY && m->len == 2 && m->items[0].type == TERN_JSON_STRING &&
                   m->items[1].type == TERN_JSON_STRING) {
            size_t la = m->items[0].len, lb = m->items[1].len;
            char *s = malloc(la + lb + 2);
            if (s) {
                memcpy(s, m->items[0].str, la);
                s[la] = ' ';
                memcpy(s + la + 1, m->items[1].str, lb);
                s[la + lb + 1] = 0;
            }
            v->merges[i] = s;
        } else {
            tern_log_error("%s: model.merges[%llu]: expected \"a b\" or [\"a\", \"b\"]", path,
                           (unsigned long long)i);
            return TERN_ERR_FORMAT;
        }
        if (!v->merges[i])
            return TERN_ERR_NOMEM;
    }
    v->bos = find_token(v, "<|begin_of_text|>");
    v->eos = find_token(v, "<|end_of_text|>");
    v->eot = find_token(v, "<|eot_id|>");
    v->add_bos = true;
    snprintf(v->pre, sizeof v->pre, "%s", "llama-bpe");
    return TERN_OK;
}

tern_status tern_hf_vocab_load(const char *tokenizer_json_path, struct tern_hf_vocab **out) {
    if (!tokenizer_json_path || !out)
        return TERN_ERR_ARG;
    *out = NULL;
    struct tern_json *root;
    tern_status st = tern_json_parse_file(tokenizer_json_path, &root);
    if (st != TERN_OK)
        return st;
    struct tern_hf_vocab *v = calloc(1, sizeof *v);
    if (!v) {
        tern_json_free(root);
        return TERN_ERR_NOMEM;
    }
    st = fill(v, root, tokenizer_json_path);
    tern_json_free(root);
    if (st == TERN_OK) {
        /* tokenizer_config.json beside tokenizer.json, when there is one */
        const char *slash = strrchr(tokenizer_json_path, '/');
        size_t dir = slash ? (size_t)(slash - tokenizer_json_path + 1) : 0;
        char *cfg = malloc(dir + sizeof "tokenizer_config.json");
        if (!cfg)
            st = TERN_ERR_NOMEM;
        else {
            memcpy(cfg, tokenizer_json_path, dir);
            memcpy(cfg + dir, "tokenizer_config.json", sizeof "tokenizer_config.json");
            FILE *f = fopen(cfg, "rb");
            if (f) {
                fclose(f);
                st = tern_hf_vocab_apply_config(v, cfg);
            }
            free(cfg);
        }
    }
    if (st != TERN_OK) {
        tern_hf_vocab_free(v);
        return st;
    }
    *out = v;
    return TERN_OK;
}

/* bos_token / eos_token as a string or an AddedToken object; absent or null leaves *id alone. */
static tern_status config_token(struct tern_hf_vocab *v, const struct tern_json *cfg, const char *key,
                                const char *path, int32_t *id) {
    const struct tern_json *t = tern_json_get(cfg, key);
    if (t && t->type == TERN_JSON_OBJECT)
        t = tern_json_get_type(t, "content", TERN_JSON_STRING);
    if (!t || t->type == TERN_JSON_NULL)
        return TERN_OK;
    if (t->type != TERN_JSON_STRING) {
        tern_log_error("%s: %s: expected a string", path, key);
        return TERN_ERR_FORMAT;
    }
    int32_t found = find_token(v, t->str);
    if (found < 0) {
        tern_log_error("%s: %s: \"%s\" is not in the vocabulary", path, key, t->str);
        return TERN_ERR_FORMAT;
    }
    *id = found;
    return TERN_OK;
}

tern_status tern_hf_vocab_apply_config(struct tern_hf_vocab *v, const char *config_path) {
    if (!v || !config_path)
        return TERN_ERR_ARG;
    struct tern_json *cfg;
    tern_status st = tern_json_parse_file(config_path, &cfg);
    if (st != TERN_OK)
        return st;
    st = config_token(v, cfg, "bos_token", config_path, &v->bos);
    if (st == TERN_OK)
        st = config_token(v, cfg, "eos_token", config_path, &v->eos);
    const struct tern_json *ab = tern_json_get_type(cfg, "add_bos_token", TERN_JSON_BOOL);
    if (ab)
        v->add_bos = ab->boolean;
    tern_json_free(cfg);
    return st;
}

tern_status tern_hf_vocab_write(const struct tern_hf_vocab *v, tern_gguf_writer *w) {
    if (!v || !w)
        return TERN_ERR_ARG;
    tern_status st = tern_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    if (st == TERN_OK)
        st = tern_gguf_writer_set_str(w, "tokenizer.ggml.pre", v->pre);
    if (st == TERN_OK)
        st = tern_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens,
                                          (uint64_t)v->n_tokens);
    if (st == TERN_OK)
        st = tern_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", TERN_GGUF_I32, v->types,
                                      (uint64_t)v->n_tokens);
    if (st == TERN_OK)
        st = tern_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges,
                                          v->n_merges);
    if (st == TERN_OK && v->bos >= 0)
        st = tern_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    if (st == TERN_OK && v->eos >= 0)
        st = tern_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    if (st == TERN_OK && v->eot >= 0)
        st = tern_gguf_writer_set_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)v->eot);
    if (st == TERN_OK)
        st = tern_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos && v->bos >= 0);
    return st;
}
