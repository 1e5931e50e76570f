/* The random model maker (see maker.h). */
#include "maker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../scheduler/log.h"
#include "../../scheduler/types.h"
#include "../generate/rng.h"
#include "../gguf/quantize.h"
#include "../tokenizer/tokenizer_internal.h"
#include "ternary.h"

struct tern_maker {
    void **bufs;
    int n, cap;
};

static void *maker_alloc(tern_maker *m, size_t bytes) {
    if (m->n == m->cap) {
        int cap = m->cap ? 2 * m->cap : 256;
        void **b = realloc(m->bufs, (size_t)cap * sizeof *b);
        if (!b)
            return NULL;
        m->bufs = b;
        m->cap = cap;
    }
    void *p = calloc(1, bytes ? bytes : 1);
    if (p)
        m->bufs[m->n++] = p;
    return p;
}

void tern_maker_free(tern_maker *m) {
    if (!m)
        return;
    for (int i = 0; i < m->n; i++)
        free(m->bufs[i]);
    free(m->bufs);
    free(m);
}

static float rng_uniform(struct tern_rng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)((tern_rng_next(r) >> 40) * (1.0 / 16777216.0));
}

tern_status tern_maker_preset(const char *preset, struct tern_maker_params *p) {
    memset(p, 0, sizeof *p);
    p->arch = "bitnet-b1.58";
    p->linear_type = TERN_TYPE_I2_S;
    p->embd_type = TERN_TYPE_F16;
    p->output_type = TERN_TYPE_COUNT;
    p->rope_theta = 500000.0f;
    p->seed = 1;
    if (strcmp(preset, "tiny") == 0) {
        p->name = "tern-tiny";
        p->n_layer = 2, p->n_embd = 256, p->n_ff = 512, p->n_head = 4, p->n_head_kv = 2, p->n_vocab = 512;
        p->n_ctx = 256;
    } else if (strcmp(preset, "2b4t") == 0) {
        p->name = "tern-random-2b4t";
        p->n_layer = 30, p->n_embd = 2560, p->n_ff = 6912, p->n_head = 20, p->n_head_kv = 5;
        p->n_vocab = 128256, p->n_ctx = 4096;
    } else if (strcmp(preset, "3b") == 0) {
        p->name = "tern-random-3b-shape";
        p->arch = "bitnet";
        p->n_layer = 2, p->n_embd = 3200, p->n_ff = 8640, p->n_head = 32, p->n_head_kv = 32,
        p->n_vocab = 1000;
        p->n_ctx = 256;
        p->rope_theta = 10000.0f;
    } else {
        tern_log_error("unknown model preset '%s' (known: tiny, 2b4t, 3b)", preset);
        return TERN_ERR_ARG;
    }
    return TERN_OK;
}

/* One ternary tensor of n_out rows of k weights in the requested file type. */
static tern_status add_ternary(tern_maker *m, tern_gguf_writer *w, struct tern_rng *r, const char *name,
                               int64_t k, int64_t n_out, uint32_t type) {
    const int64_t row_bytes = tern_ternary_k_pad(k) / 4;
    uint8_t *packed = malloc((size_t)(row_bytes * n_out));
    if (!packed)
        return TERN_ERR_NOMEM;
    tern_packed_fill_zero(packed, k, n_out);
    /* whole 128-weight blocks a byte (4 codes) at a time: one of the 81 bytes whose four 2-bit
     * codes are each 0..2, ten draws per random word; the tail block weight by weight */
    uint8_t four[81];
    for (int i = 0; i < 81; i++)
        four[i] = (uint8_t)((i / 27) << 6 | (i / 9 % 3) << 4 | (i / 3 % 3) << 2 | (i % 3));
    const int64_t full = k / 128 * 32;
    for (int64_t o = 0; o < n_out; o++) {
        uint8_t *row = packed + o * row_bytes;
        uint64_t bits = 0;
        for (int64_t b = 0; b < full; b++) {
            if (b % 10 == 0)
                bits = tern_rng_next(r);
            row[b] = four[bits % 81];
            bits /= 81;
        }
        for (int64_t j = k / 128 * 128; j < k; j++)
            tern_packed_set(row, j, (int)(tern_rng_next(r) % 3));
    }
    /* bf16-exact scales, like the conformance vectors */
    const float scale = (float)((int)(rng_uniform(r, 0.25f, 1.0f) * 256.0f)) / 256.0f;
    const int64_t ne[2] = {k, n_out};
    uint64_t nbytes;
    tern_status st = tern_type_nbytes(type, 2, ne, &nbytes);
    if (st) {
        tern_log_error("%s: %s cannot hold rows of %lld weights (%s needs a multiple of %lld)", name,
                       tern_type_name(type), (long long)k, tern_type_name(type),
                       (long long)tern_type_traits(type)->block_size);
        st = TERN_ERR_SHAPE;
        goto done;
    }
    void *data = maker_alloc(m, (size_t)nbytes);
    st = TERN_ERR_NOMEM;
    if (!data)
        goto done;
    if (type == TERN_TYPE_I2_S)
        st = tern_packed_to_i2s(data, packed, k, n_out, scale);
    else
        st = tern_packed_to_tq(data, type, packed, k, n_out, scale);
    if (st)
        goto done;
    st = tern_gguf_writer_add_tensor(w, name, type, 2, ne, data, nbytes);
done:
    free(packed);
    return st;
}

static tern_status add_vector(tern_maker *m, tern_gguf_writer *w, struct tern_rng *r, const char *name,
                              int64_t n) {
    float *v = maker_alloc(m, (size_t)n * sizeof(float));
    if (!v)
        return TERN_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++)
        v[i] = rng_uniform(r, 0.8f, 1.2f);
    return tern_gguf_writer_add_tensor(w, name, TERN_TYPE_F32, 1, &n, v, (uint64_t)n * sizeof(float));
}

static tern_status add_matrix(tern_maker *m, tern_gguf_writer *w, struct tern_rng *r, const char *name,
                              int64_t k, int64_t n_rows, uint32_t type) {
    const int64_t ne[2] = {k, n_rows};
    uint64_t nbytes;
    tern_status st = tern_type_nbytes(type, 2, ne, &nbytes);
    if (st) {
        tern_log_error("%s: type %s cannot hold rows of %lld values", name, tern_type_name(type),
                       (long long)k);
        return TERN_ERR_SHAPE;
    }
    uint8_t *data = maker_alloc(m, (size_t)nbytes);
    float *row = malloc((size_t)k * sizeof(float));
    st = TERN_ERR_NOMEM;
    if (!data || !row)
        goto done;
    const size_t row_bytes = (size_t)(nbytes / (uint64_t)n_rows);
    for (int64_t i = 0; i < n_rows; i++) {
        for (int64_t j = 0; j < k; j++)
            row[j] = rng_uniform(r, -1.0f, 1.0f);
        st = tern_quantize_row(data + (size_t)i * row_bytes, type, row, k);
        if (st)
            goto done;
    }
    st = tern_gguf_writer_add_tensor(w, name, type, 2, ne, data, nbytes);
done:
    free(row);
    return st;
}

static tern_status add_hparams(const struct tern_maker_params *p, tern_gguf_writer *w) {
    char key[128];
    tern_status st = tern_gguf_writer_set_str(w, "general.architecture", p->arch);
    if (st)
        return st;
    st = tern_gguf_writer_set_str(w, "general.name", p->name ? p->name : "tern-random");
    if (st)
        return st;
    const struct {
        const char *suffix;
        int value;
    } ints[] = {
        {"block_count", p->n_layer},
        {"embedding_length", p->n_embd},
        {"feed_forward_length", p->n_ff},
        {"attention.head_count", p->n_head},
        {"attention.head_count_kv", p->n_head_kv},
        {"context_length", p->n_ctx},
        {"vocab_size", p->n_vocab},
        {"rope.dimension_count", p->head_dim ? p->head_dim : p->n_embd / p->n_head},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        snprintf(key, sizeof key, "%s.%s", p->arch, ints[i].suffix);
        st = tern_gguf_writer_set_u32(w, key, (uint32_t)ints[i].value);
        if (st)
            return st;
    }
    if (p->head_dim) {
        snprintf(key, sizeof key, "%s.attention.key_length", p->arch);
        st = tern_gguf_writer_set_u32(w, key, (uint32_t)p->head_dim);
        if (st)
            return st;
    }
    snprintf(key, sizeof key, "%s.rope.freq_base", p->arch);
    st = tern_gguf_writer_set_f32(w, key, p->rope_theta);
    if (st)
        return st;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", p->arch);
    return tern_gguf_writer_set_f32(w, key, 1e-5f);
}

tern_status tern_maker_create(const struct tern_maker_params *p, tern_gguf_writer *w, tern_maker **out) {
    *out = NULL;
    if (p->n_layer < 1 || p->n_embd < 1 || p->n_ff < 1 || p->n_head < 1 || p->n_head_kv < 1 ||
        p->n_head % p->n_head_kv != 0 || p->n_vocab < 4 || p->n_ctx < 1 ||
        (!p->head_dim && p->n_embd % p->n_head != 0)) {
        tern_log_error("inconsistent model shape (layers %d, embd %d, ff %d, heads %d/%d, vocab %d, ctx %d)",
                       p->n_layer, p->n_embd, p->n_ff, p->n_head, p->n_head_kv, p->n_vocab, p->n_ctx);
        return TERN_ERR_ARG;
    }
    tern_maker *m = calloc(1, sizeof *m);
    if (!m)
        return TERN_ERR_NOMEM;
    struct tern_rng r;
    tern_rng_seed(&r, p->seed);
    const int64_t hd = p->head_dim ? p->head_dim : p->n_embd / p->n_head;
    const int64_t n_q = hd * p->n_head, n_kv = hd * p->n_head_kv;
    const bool sub_norms = strcmp(p->arch, "llama") != 0;
    static const char *const lin[7] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                       "ffn_gate", "ffn_up", "ffn_down"};
    const int64_t in[7] = {p->n_embd, p->n_embd, p->n_embd, n_q, p->n_embd, p->n_embd, p->n_ff};
    const int64_t outs[7] = {n_q, n_kv, n_kv, p->n_embd, p->n_ff, p->n_ff, p->n_embd};
    char name[96];
    tern_status st = add_hparams(p, w);
    if (st)
        goto done;
    /* draw order: embedding, then per layer q, k, v, o, gate, up, down, then the norms */
    st = add_matrix(m, w, &r, "token_embd.weight", p->n_embd, p->n_vocab, p->embd_type);
    if (st)
        goto done;
    for (int il = 0; il < p->n_layer; il++)
        for (int i = 0; i < 7; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", il, lin[i]);
            st = add_ternary(m, w, &r, name, in[i], outs[i], p->linear_type);
            if (st)
                goto done;
        }
    for (int il = 0; il < p->n_layer; il++) {
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", il);
        st = add_vector(m, w, &r, name, p->n_embd);
        if (st)
            goto done;
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", il);
        st = add_vector(m, w, &r, name, p->n_embd);
        if (st)
            goto done;
        if (sub_norms) {
            snprintf(name, sizeof name, "blk.%d.attn_sub_norm.weight", il);
            st = add_vector(m, w, &r, name, n_q);
            if (st)
                goto done;
            snprintf(name, sizeof name, "blk.%d.ffn_sub_norm.weight", il);
            st = add_vector(m, w, &r, name, p->n_ff);
            if (st)
                goto done;
        }
    }
    st = add_vector(m, w, &r, "output_norm.weight", p->n_embd);
    if (st)
        goto done;
    if (p->output_type != TERN_TYPE_COUNT) {
        st = add_matrix(m, w, &r, "output.weight", p->n_embd, p->n_vocab, p->output_type);
        if (st)
            goto done;
    }
    *out = m;
    return TERN_OK;
done: /* failures only */
    tern_maker_free(m);
    return st;
}

tern_status tern_maker_write(const struct tern_maker_params *p, const char *path) {
    tern_gguf_writer *w = NULL;
    tern_maker *m = NULL;
    tern_status st = tern_gguf_writer_create(&w);
    if (st)
        goto done;
    st = tern_maker_add_synthetic_vocab(w, p->n_vocab, p->seed);
    if (st)
        goto done;
    st = tern_maker_create(p, w, &m);
    if (st)
        goto done;
    st = tern_gguf_writer_write(w, path);
done:
    tern_maker_free(m);
    tern_gguf_writer_free(w);
    return st;
}

/* Open-addressing set of token strings, to keep merged tokens unique. */
struct strset {
    const char **slot;
    size_t mask;
};

static bool strset_insert(struct strset *s, const char *str) {
    size_t h = (size_t)tern_tok_hash_bytes(str, strlen(str)) & s->mask;
    while (s->slot[h]) {
        if (strcmp(s->slot[h], str) == 0)
            return false;
        h = (h + 1) & s->mask;
    }
    s->slot[h] = str;
    return true;
}

tern_status tern_maker_add_synthetic_vocab(tern_gguf_writer *w, int n_vocab, uint64_t seed) {
    if (n_vocab < 258 + 2) {
        tern_log_error("a synthetic vocabulary needs at least 260 tokens, not %d", n_vocab);
        return TERN_ERR_ARG;
    }
    const int n_normal = n_vocab - 2, n_merges = n_normal - 256;
    char **tokens = calloc((size_t)n_vocab, sizeof *tokens);
    char **merges = calloc((size_t)(n_merges > 0 ? n_merges : 1), sizeof *merges);
    int32_t *types = malloc((size_t)n_vocab * sizeof *types);
    struct strset set = {NULL, 0};
    size_t slots = 1;
    while (slots < (size_t)n_vocab * 2)
        slots <<= 1;
    set.slot = calloc(slots, sizeof *set.slot);
    set.mask = slots - 1;
    tern_status st = TERN_ERR_NOMEM; /* until the tables are built */
    if (!tokens || !merges || !types || !set.slot)
        goto done;
    struct tern_rng r;
    tern_rng_seed(&r, seed ^ 0x766f636162ULL);
    for (int i = 0; i < 256; i++) {
        tokens[i] = strdup(tern_bpe_byte_char((uint8_t)i));
        types[i] = TERN_TOKEN_NORMAL;
        if (!tokens[i])
            goto done;
        strset_insert(&set, tokens[i]);
    }
    /* merged tokens: pairs of short earlier tokens, half of them starting from a letter, digit or
     * space so that ordinary text exercises the merges */
    for (int i = 256; i < n_normal; i++) {
        char *tok = NULL;
        int a = 0, b = 0;
        while (!tok) {
            a = (int)(tern_rng_next(&r) % (uint64_t)i);
            b = (int)(tern_rng_next(&r) % (uint64_t)i);
            if (tern_rng_next(&r) % 2)
                a = (int)(tern_rng_next(&r) % 2 ? 'a' + tern_rng_next(&r) % 26
                                                : ' ' + tern_rng_next(&r) % 64);
            if (strlen(tokens[a]) + strlen(tokens[b]) > 12)
                continue;
            char buf[32];
            snprintf(buf, sizeof buf, "%s%s", tokens[a], tokens[b]);
            if (!(tok = strdup(buf)))
                goto done;
            if (!strset_insert(&set, tok)) {
                free(tok);
                tok = NULL;
            }
        }
        tokens[i] = tok;
        types[i] = TERN_TOKEN_NORMAL;
        char mbuf[40];
        snprintf(mbuf, sizeof mbuf, "%s %s", tokens[a], tokens[b]);
        if (!(merges[i - 256] = strdup(mbuf)))
            goto done;
    }
    tokens[n_normal] = strdup("<|begin_of_text|>");
    tokens[n_normal + 1] = strdup("<|end_of_text|>");
    types[n_normal] = types[n_normal + 1] = TERN_TOKEN_CONTROL;
    if (!tokens[n_normal] || !tokens[n_normal + 1])
        goto done;
    st = tern_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    if (st)
        goto done;
    st = tern_gguf_writer_set_str(w, "tokenizer.ggml.pre", "llama-bpe");
    if (st)
        goto done;
    st = tern_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tokens,
                                      (uint64_t)n_vocab);
    if (st)
        goto done;
    st = tern_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", TERN_GGUF_I32, types, (uint64_t)n_vocab);
    if (st)
        goto done;
    st = tern_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges,
                                      (uint64_t)n_merges);
    if (st)
        goto done;
    st = tern_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)n_normal);
    if (st)
        goto done;
    st = tern_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(n_normal + 1));
    if (st)
        goto done;
    st = tern_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
done:
    for (int i = 0; tokens && i < n_vocab; i++)
        free(tokens[i]);
    for (int i = 0; merges && i < n_merges; i++)
        free(merges[i]);
    free(tokens);
    free(merges);
    free(types);
    free(set.slot);
    return st;
}
