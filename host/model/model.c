/* Model loading (see model.h). */
#define _XOPEN_SOURCE 700 /* realpath */
#define _DEFAULT_SOURCE   /* madvise (MADV_HUGEPAGE) */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "../../cpu/ref.h"
#include "../../scheduler/fp16.h"
#include "../../scheduler/log.h"
#include "ternary.h"

struct arch_desc {
    const char *name;
    enum tern_ffn_act ffn_act;
    enum tern_rope_style rope_style;
    bool sub_norms;
    bool scale_tensors; /* optional blk.N.<t>.scale tensors ({1} f32, multiplied onto outputs) */
};

static const struct arch_desc archs[] = {
    {"bitnet-b1.58", TERN_FFN_RELU2, TERN_ROPE_NEOX, true, false},
    {"bitnet-25", TERN_FFN_RELU2, TERN_ROPE_NEOX, true, false},
    {"bitnet", TERN_FFN_SILU, TERN_ROPE_NEOX, true, true},
    {"llama", TERN_FFN_SILU, TERN_ROPE_NORM, false, false},
};

struct tern_model {
    tern_gguf *g;
    const struct arch_desc *arch;
    struct tern_model_view view;
    struct tern_layer_weights *layers; /* [n_layer] */
    void **owned;                      /* buffers the model allocated (repacked weights, norms) */
    int n_owned, cap_owned;
    uint64_t owned_bytes;
    uint8_t *arena; /* the packed-weight arena being filled (own_packed), an owned buffer */
    size_t arena_used, arena_cap;
    uint64_t mapped_bytes;
    int n_float_linear;   /* linear weights stored as F32/F16/BF16, ternarized at load */
    int n_absmean_linear; /* of those, full-precision masters (absmean rule) */
    char *source_id;      /* view.source_id */
};

static const char *path_of(const tern_gguf *g) {
    return tern_gguf_path(g);
}

static bool keep(tern_model *m, void *b) {
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **p = realloc(m->owned, (size_t)cap * sizeof *p);
        if (!p)
            return false;
        m->owned = p;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = b;
    return true;
}

/* A small buffer the model owns (a norm vector), cache-line aligned. */
static void *own(tern_model *m, size_t bytes) {
    void *b = aligned_alloc(64, bytes ? (bytes + 63) / 64 * 64 : 64);
    if (!b || !keep(m, b)) {
        free(b);
        return NULL;
    }
    m->owned_bytes += bytes;
    return b;
}

/* Repacked ternary weights (TQ1_0, TQ2_0, float files) go one after another, 64-byte aligned (with
 * malloc's 16 bytes every other 32-byte weight load straddled two lines: ~10% of decode), into
 * arenas of ARENA_BYTES in 2 MiB transparent huge pages. In 4 KiB pages of separate allocations,
 * decode from a repacked TQ2_0 file of the 2B-4T shape ran 10-13% slower than from the I2_S file's
 * mapping (`tern bench -p 0 -n 64 -t 2`, four alternating rounds: full head 38.8 against 43.8
 * t/s, certified 49.9 against 57.2); in huge pages 41.7 and 56.1. One arena rather than a huge
 * allocation per tensor, so the last partly used page of each of 210 tensors does not cost 2 MiB.
 * A tensor larger than an arena gets one of its own size. */
enum { ARENA_BYTES = 64 << 20, HUGE_PAGE = 2 << 20 };

static void *own_packed(tern_model *m, size_t bytes) {
    bytes = (bytes + 63) / 64 * 64;
    if (m->arena_cap - m->arena_used < bytes) {
        const size_t cap =
            bytes > ARENA_BYTES ? (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE : ARENA_BYTES;
        uint8_t *a = aligned_alloc(HUGE_PAGE, cap);
        if (!a || !keep(m, a)) {
            free(a);
            return NULL;
        }
#ifdef MADV_HUGEPAGE
        (void)madvise(a, cap, MADV_HUGEPAGE);
#endif
        m->arena = a;
        m->arena_used = 0;
        m->arena_cap = cap;
    }
    void *b = m->arena + m->arena_used;
    m->arena_used += bytes;
    m->owned_bytes += bytes;
    return b;
}

/* Integer hyperparameter "<arch>.<suffix>"; absent: *out = def when has_def, else an error. */
static tern_status get_int(const tern_gguf *g, const char *arch, const char *suffix, bool has_def,
                           int64_t def, int64_t lo, int64_t hi, int32_t *out) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v;
    tern_status st = tern_gguf_get_i64(g, key, &v);
    if (st == TERN_ERR_NOT_FOUND) {
        if (!has_def) {
            tern_log_error("%s: missing metadata key %s", path_of(g), key);
            return TERN_ERR_FORMAT;
        }
        v = def;
    } else if (st) {
        return st;
    }
    if (v < lo || v > hi) {
        tern_log_error("%s: %s = %lld is out of range [%lld, %lld]", path_of(g), key, (long long)v,
                       (long long)lo, (long long)hi);
        return TERN_ERR_FORMAT;
    }
    *out = (int32_t)v;
    return TERN_OK;
}

static tern_status get_float(const tern_gguf *g, const char *arch, const char *suffix, float def, float lo,
                             float hi, float *out) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    float v;
    tern_status st = tern_gguf_get_f32(g, key, &v);
    if (st == TERN_ERR_NOT_FOUND)
        v = def;
    else if (st)
        return st;
    if (!(v >= lo && v <= hi)) {
        tern_log_error("%s: %s = %g is out of range [%g, %g]", path_of(g), key, (double)v, (double)lo,
                       (double)hi);
        return TERN_ERR_FORMAT;
    }
    *out = v;
    return TERN_OK;
}

static const struct arch_desc *find_arch(const tern_gguf *g, const char **name) {
    struct tern_str a;
    tern_status st = tern_gguf_get_str(g, "general.architecture", &a);
    if (st) {
        tern_log_error("%s: missing metadata key general.architecture", path_of(g));
        return NULL;
    }
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strlen(archs[i].name) == a.len && memcmp(archs[i].name, a.ptr, a.len) == 0) {
            *name = archs[i].name;
            return &archs[i];
        }
    tern_log_error(
        "%s: architecture '%.*s' is not supported (supported: bitnet-b1.58, bitnet-25, bitnet, llama)",
        path_of(g), (int)(a.len > 64 ? 64 : a.len), a.ptr);
    return NULL;
}

tern_status tern_model_read_hparams(const tern_gguf *g, struct tern_hparams *hp, const char **arch_name) {
    const char *a = NULL;
    const struct arch_desc *arch = find_arch(g, &a);
    if (!arch)
        return TERN_ERR_UNSUPPORTED;
    *arch_name = a;
    memset(hp, 0, sizeof *hp);
    const int64_t big = 1 << 24;
    tern_status st;
    st = get_int(g, a, "block_count", false, 0, 1, 4096, &hp->n_layer);
    if (st)
        return st;
    st = get_int(g, a, "embedding_length", false, 0, 1, big, &hp->n_embd);
    if (st)
        return st;
    st = get_int(g, a, "feed_forward_length", false, 0, 1, big, &hp->n_ff);
    if (st)
        return st;
    st = get_int(g, a, "attention.head_count", false, 0, 1, 4096, &hp->n_head);
    if (st)
        return st;
    st = get_int(g, a, "attention.head_count_kv", true, hp->n_head, 1, hp->n_head, &hp->n_head_kv);
    if (st)
        return st;
    st = get_int(g, a, "attention.key_length", true, hp->n_embd / hp->n_head, 1, 65536, &hp->head_dim);
    if (st)
        return st;
    st = get_int(g, a, "rope.dimension_count", true, hp->head_dim, 2, hp->head_dim, &hp->n_rot);
    if (st)
        return st;
    st = get_int(g, a, "context_length", true, 4096, 1, big, &hp->n_ctx_train);
    if (st)
        return st;
    st = get_float(g, a, "rope.freq_base", 10000.0f, 1.0f, 1e12f, &hp->rope_theta);
    if (st)
        return st;
    st = get_float(g, a, "attention.layer_norm_rms_epsilon", 1e-5f, 0.0f, 1.0f, &hp->norm_eps);
    if (st)
        return st;
    if (hp->n_head % hp->n_head_kv != 0) {
        tern_log_error("%s: head_count %d is not a multiple of head_count_kv %d", path_of(g), hp->n_head,
                       hp->n_head_kv);
        return TERN_ERR_FORMAT;
    }
    if (hp->n_rot % 2 != 0) {
        tern_log_error("%s: rope.dimension_count %d is odd", path_of(g), hp->n_rot);
        return TERN_ERR_FORMAT;
    }
    /* vocabulary: <arch>.vocab_size, else the token list, else the embedding rows */
    int64_t n_vocab = -1;
    char key[256];
    snprintf(key, sizeof key, "%s.vocab_size", a);
    st = tern_gguf_get_i64(g, key, &n_vocab);
    if (st == TERN_ERR_NOT_FOUND) {
        enum tern_gguf_vtype et;
        uint64_t n;
        const void *data;
        st = tern_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &data);
        if (!st) {
            n_vocab = (int64_t)n;
        } else {
            const struct tern_gguf_tensor *e = tern_gguf_find_tensor(g, "token_embd.weight");
            n_vocab = e ? e->ne[1] : -1;
        }
    } else if (st) {
        return st;
    }
    if (n_vocab < 1 || n_vocab > big) {
        tern_log_error("%s: cannot determine a valid vocabulary size", path_of(g));
        return TERN_ERR_FORMAT;
    }
    hp->n_vocab = (int32_t)n_vocab;
    hp->ffn_act = arch->ffn_act;
    hp->rope_style = arch->rope_style;
    hp->has_sub_norms = arch->sub_norms;
    return TERN_OK;
}

static const struct tern_gguf_tensor *find(const tern_gguf *g, const char *name, bool required) {
    const struct tern_gguf_tensor *t = tern_gguf_find_tensor(g, name);
    if (!t && required)
        tern_log_error("%s: missing tensor %s", path_of(g), name);
    return t;
}

static bool check_shape(const tern_gguf *g, const struct tern_gguf_tensor *t, int64_t ne0, int64_t ne1) {
    const int64_t want_ne1 = ne1 > 0 ? ne1 : 1;
    if (t->ne[0] == ne0 && t->ne[1] == want_ne1 && t->ne[2] == 1 && t->ne[3] == 1 &&
        (ne1 > 0 || t->n_dims == 1))
        return true;
    if (ne1 > 0)
        tern_log_error("%s: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", path_of(g),
                       t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                       (long long)t->ne[3], (long long)ne0, (long long)ne1);
    else
        tern_log_error("%s: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld]", path_of(g),
                       t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                       (long long)t->ne[3], (long long)ne0);
    return false;
}

/* Whether a float tensor's data holds only finite values. Plain floats are tested eight bytes at
 * a time through their exponent bits: adding the exponent's lowest bit to an all-ones exponent
 * carries into the lane's top bit, and never further (a loop the compiler vectorises: 0.66 GB of
 * F16 in about 30 ms). The block types test their f16 scales, the only floats they hold. */
static bool all_finite(const uint8_t *p, uint32_t type, uint64_t nbytes) {
    uint64_t acc = 0, exp, one, top;
    switch (type) {
    case TERN_TYPE_F32:
        exp = 0x7f8000007f800000ull, one = 0x0080000000800000ull, top = 0x8000000080000000ull;
        break;
    case TERN_TYPE_F16:
        exp = 0x7c007c007c007c00ull, one = 0x0400040004000400ull, top = 0x8000800080008000ull;
        break;
    case TERN_TYPE_BF16:
        exp = 0x7f807f807f807f80ull, one = 0x0080008000800080ull, top = 0x8000800080008000ull;
        break;
    default: {
        /* Q8_0: d at byte 0; Q4_K: d and dmin at bytes 0 and 2; Q6_K: d at byte 208 */
        const struct tern_type_traits *tr = tern_type_traits(type);
        const size_t at = type == TERN_TYPE_Q6_K ? 208 : 0, n_half = type == TERN_TYPE_Q4_K ? 2 : 1;
        for (uint64_t b = 0; b + tr->block_bytes <= nbytes; b += tr->block_bytes)
            for (size_t k = 0; k < n_half; k++) {
                uint16_t h;
                memcpy(&h, p + b + at + 2 * k, 2);
                acc |= (uint16_t)((h & 0x7c00u) + 0x0400u) & 0x8000u;
            }
        return !acc;
    }
    }
    uint64_t i = 0;
    for (; i + 8 <= nbytes; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        acc |= ((w & exp) + one) & top;
    }
    uint64_t w = 0; /* the tail, zero-filled (zero is finite) */
    memcpy(&w, p + i, (size_t)(nbytes - i));
    return !(acc | (((w & exp) + one) & top));
}

static tern_status check_finite(const tern_gguf *g, const struct tern_gguf_tensor *t) {
    if (all_finite(t->data, t->type, t->nbytes))
        return TERN_OK;
    tern_log_error("%s: tensor %s holds a non-finite value (NaN or infinity)", path_of(g), t->name);
    return TERN_ERR_FORMAT;
}

/* A vector of n floats (norm weights) as an owned f32 copy, whatever float type the file uses. */
static tern_status bind_vector(tern_model *m, const float **out, const char *name, int64_t n, bool required) {
    *out = NULL;
    const struct tern_gguf_tensor *t = find(m->g, name, required);
    if (!t)
        return required ? TERN_ERR_FORMAT : TERN_OK;
    if (!check_shape(m->g, t, n, 0))
        return TERN_ERR_SHAPE;
    if (t->type != TERN_TYPE_F32 && t->type != TERN_TYPE_F16 && t->type != TERN_TYPE_BF16) {
        tern_log_error("%s: tensor %s has type %s; norm weights must be F32, F16 or BF16", path_of(m->g),
                       name, tern_type_name(t->type));
        return TERN_ERR_UNSUPPORTED;
    }
    tern_status st = check_finite(m->g, t);
    if (st)
        return st;
    float *v = own(m, (size_t)n * sizeof(float));
    if (!v)
        return TERN_ERR_NOMEM;
    tern_ref_dequant_row(v, t->data, t->type, n);
    *out = v;
    return TERN_OK;
}

static tern_status bind_ternary(tern_model *m, struct tern_ternary *w, const char *name, int64_t n_in,
                                int64_t n_out) {
    const struct tern_gguf_tensor *t = find(m->g, name, true);
    if (!t)
        return TERN_ERR_FORMAT;
    const struct tern_type_traits *tr = tern_type_traits(t->type);
    const bool is_float = t->type == TERN_TYPE_F32 || t->type == TERN_TYPE_F16 || t->type == TERN_TYPE_BF16;
    if (!is_float && (!tr || tr->cls != TERN_CLASS_TERNARY)) {
        tern_log_error("%s: linear weight %s has type %s; tern runs ternary linear weights (I2_S, TQ2_0, "
                       "TQ1_0) and ternarizes F32, F16 and BF16 ones at load: requantize the source with "
                       "llama.cpp's llama-quantize (TQ1_0, TQ2_0) or bitnet.cpp's (I2_S)",
                       path_of(m->g), name, tern_type_name(t->type));
        return TERN_ERR_UNSUPPORTED;
    }
    if (!check_shape(m->g, t, n_in, n_out))
        return TERN_ERR_SHAPE;
    w->n_in = n_in;
    w->n_out = n_out;
    w->k_pad = tern_ternary_k_pad(n_in);
    w->row_bytes = w->k_pad / 4;
    w->out_scale = 1.0f;
    tern_status st;
    if (t->type == TERN_TYPE_I2_S && tern_i2s_is_packed(n_in)) {
        /* the official layout: used in place from the mapping, after a scan for code 3 */
        st = tern_i2s_scale(&w->scale, t->data, t->nbytes, n_in, n_out, name);
        if (st)
            return st;
        st = tern_packed_verify(t->data, n_in, n_out, name);
        if (st)
            return st;
        w->codes = t->data;
        m->mapped_bytes += t->nbytes;
        return TERN_OK;
    }
    uint8_t *packed = own_packed(m, (size_t)(w->row_bytes * n_out));
    if (!packed)
        return TERN_ERR_NOMEM;
    bool absmean = false;
    if (is_float) {
        st =
            tern_float_to_packed(packed, &w->scale, &absmean, t->type, t->data, t->nbytes, n_in, n_out, name);
        m->n_float_linear++;
        m->n_absmean_linear += absmean;
    } else if (t->type == TERN_TYPE_I2_S)
        st = tern_i2s_to_packed(packed, &w->scale, t->data, t->nbytes, n_in, n_out, name);
    else
        st = tern_tq_to_packed(packed, &w->scale, t->type, t->data, t->nbytes, n_in, n_out, name);
    if (st)
        return st;
    w->codes = packed;
    return TERN_OK;
}

/* Optional bitnet `blk.N.<t>.scale` tensor: one f32 multiplied onto the matmul output. */
static tern_status bind_out_scale(tern_model *m, struct tern_ternary *w, const char *name) {
    const struct tern_gguf_tensor *t = find(m->g, name, false);
    if (!t)
        return TERN_OK;
    if (!check_shape(m->g, t, 1, 0))
        return TERN_ERR_SHAPE;
    if (t->type != TERN_TYPE_F32) {
        tern_log_error("%s: tensor %s must be F32, not %s", path_of(m->g), name, tern_type_name(t->type));
        return TERN_ERR_UNSUPPORTED;
    }
    float v;
    memcpy(&v, t->data, sizeof v);
    if (!isfinite(v)) {
        tern_log_error("%s: tensor %s holds a non-finite scale", path_of(m->g), name);
        return TERN_ERR_FORMAT;
    }
    w->out_scale = v;
    return TERN_OK;
}

static tern_status bind_matrix(tern_model *m, struct tern_tensor *out, const struct tern_gguf_tensor *t,
                               int64_t ne0, int64_t ne1) {
    const struct tern_type_traits *tr = tern_type_traits(t->type);
    if (!tr || tr->cls != TERN_CLASS_FLOAT) {
        tern_log_error(
            "%s: tensor %s has type %s; embeddings and the output head must be F32, F16, BF16, Q8_0, "
            "Q4_K or Q6_K",
            path_of(m->g), t->name, tern_type_name(t->type));
        return TERN_ERR_UNSUPPORTED;
    }
    if (!check_shape(m->g, t, ne0, ne1))
        return TERN_ERR_SHAPE;
    tern_status st = check_finite(m->g, t);
    if (st)
        return st;
    out->data = t->data;
    out->type = t->type;
    out->ne0 = ne0;
    out->ne1 = ne1;
    out->row_bytes = (size_t)(ne0 / tr->block_size) * tr->block_bytes;
    return TERN_OK;
}

static const char *const lin_names[7] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                         "ffn_gate", "ffn_up", "ffn_down"};

static tern_status bind_layer(tern_model *m, int il) {
    const struct tern_hparams *hp = &m->view.hp;
    struct tern_layer_weights *L = &m->layers[il];
    const int64_t n_embd = hp->n_embd, n_ff = hp->n_ff;
    const int64_t n_q = (int64_t)hp->n_head * hp->head_dim, n_kv = (int64_t)hp->n_head_kv * hp->head_dim;
    struct tern_ternary *ws[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wgate, &L->wup, &L->wdown};
    const int64_t in[7] = {n_embd, n_embd, n_embd, n_q, n_embd, n_embd, n_ff};
    const int64_t outs[7] = {n_q, n_kv, n_kv, n_embd, n_ff, n_ff, n_embd};
    char name[128];
    tern_status st;
    for (int i = 0; i < 7; i++) {
        snprintf(name, sizeof name, "blk.%d.%s.weight", il, lin_names[i]);
        st = bind_ternary(m, ws[i], name, in[i], outs[i]);
        if (st)
            return st;
        if (m->arch->scale_tensors) {
            snprintf(name, sizeof name, "blk.%d.%s.scale", il, lin_names[i]);
            st = bind_out_scale(m, ws[i], name);
            if (st)
                return st;
        }
    }
    snprintf(name, sizeof name, "blk.%d.attn_norm.weight", il);
    st = bind_vector(m, &L->attn_norm, name, n_embd, true);
    if (st)
        return st;
    snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", il);
    st = bind_vector(m, &L->ffn_norm, name, n_embd, true);
    if (st)
        return st;
    if (hp->has_sub_norms) {
        snprintf(name, sizeof name, "blk.%d.attn_sub_norm.weight", il);
        st = bind_vector(m, &L->attn_sub_norm, name, n_q, true);
        if (st)
            return st;
        snprintf(name, sizeof name, "blk.%d.ffn_sub_norm.weight", il);
        st = bind_vector(m, &L->ffn_sub_norm, name, n_ff, true);
        if (st)
            return st;
    }
    return TERN_OK;
}

static tern_status bind_all(tern_model *m) {
    const struct tern_hparams *hp = &m->view.hp;
    tern_status st;
    const struct tern_gguf_tensor *e = find(m->g, "token_embd.weight", true);
    if (!e)
        return TERN_ERR_FORMAT;
    st = bind_matrix(m, &m->view.tok_embd, e, hp->n_embd, hp->n_vocab);
    if (st)
        return st;
    /* every token the tokenizer can produce needs an embedding row */
    enum tern_gguf_vtype et;
    uint64_t n_tokens;
    const void *tokens;
    st = tern_gguf_get_arr(m->g, "tokenizer.ggml.tokens", &et, &n_tokens, &tokens);
    if (st)
        n_tokens = 0; /* no token list: nothing to check */
    if (n_tokens > (uint64_t)hp->n_vocab) {
        tern_log_error("%s: tokenizer.ggml.tokens holds %llu tokens but token_embd.weight has %d rows",
                       path_of(m->g), (unsigned long long)n_tokens, hp->n_vocab);
        return TERN_ERR_FORMAT;
    }
    const struct tern_gguf_tensor *o = find(m->g, "output.weight", false);
    if (o) {
        st = bind_matrix(m, &m->view.output, o, hp->n_embd, hp->n_vocab);
        if (st)
            return st;
        m->mapped_bytes += o->nbytes;
    } else {
        m->view.output = m->view.tok_embd; /* tied head */
        m->mapped_bytes += e->nbytes;
    }
    st = bind_vector(m, &m->view.output_norm, "output_norm.weight", hp->n_embd, true);
    if (st)
        return st;
    for (int il = 0; il < hp->n_layer; il++) {
        st = bind_layer(m, il);
        if (st)
            return st;
    }
    return TERN_OK;
}

/* The file's identity for caches (see tern_model_view.source_id), or NULL. */
static char *source_id(const char *path) {
    char *abs = realpath(path, NULL);
    struct stat sb;
    char *id = NULL;
    if (abs && stat(abs, &sb) == 0) {
        const size_t n = strlen(abs) + 96;
        id = malloc(n);
        if (id)
            snprintf(id, n, "%s|size %lld|mtime %lld.%09ld|inode %llu", abs, (long long)sb.st_size,
                     (long long)sb.st_mtim.tv_sec, (long)sb.st_mtim.tv_nsec, (unsigned long long)sb.st_ino);
    }
    free(abs);
    return id;
}

tern_status tern_model_create(const char *path, tern_model **out) {
    *out = NULL;
    tern_model *m = calloc(1, sizeof *m);
    if (!m)
        return TERN_ERR_NOMEM;
    const char *arch_name = NULL;
    tern_status st = tern_gguf_create(path, &m->g);
    if (st)
        goto done;
    st = tern_model_read_hparams(m->g, &m->view.hp, &arch_name);
    if (st)
        goto done;
    m->arch = find_arch(m->g, &arch_name);
    m->layers = calloc((size_t)m->view.hp.n_layer, sizeof *m->layers);
    st = TERN_ERR_NOMEM;
    if (!m->layers)
        goto done;
    st = bind_all(m);
    if (st)
        goto done;
    if (m->n_absmean_linear)
        tern_log_warn("%s: %d of %d linear weights are full-precision, not ternary: ternarized at load with "
                      "absmean (post-training ternarization loses quality)",
                      path, m->n_absmean_linear, m->n_float_linear);
    m->view.layers = m->layers;
    m->view.source_id = m->source_id = source_id(path);
    *out = m;
    return TERN_OK;
done: /* failures only */
    if (st == TERN_ERR_NOMEM)
        tern_log_error("%s: out of memory while loading the model", path);
    tern_model_free(m);
    return st;
}

void tern_model_free(tern_model *m) {
    if (!m)
        return;
    for (int i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    free(m->source_id);
    tern_gguf_free(m->g);
    free(m);
}

const struct tern_model_view *tern_model_view(const tern_model *m) {
    return &m->view;
}
const tern_gguf *tern_model_gguf(const tern_model *m) {
    return m->g;
}
const char *tern_model_arch(const tern_model *m) {
    return m->arch->name;
}
uint64_t tern_model_owned_bytes(const tern_model *m) {
    return m->owned_bytes;
}
int tern_model_n_float_linear(const tern_model *m, int *n_absmean) {
    *n_absmean = m->n_absmean_linear;
    return m->n_float_linear;
}
uint64_t tern_model_mapped_bytes(const tern_model *m) {
    return m->mapped_bytes;
}

uint64_t tern_model_kv_bytes(const tern_model *m, int n_ctx) {
    const struct tern_hparams *hp = &m->view.hp;
    return 2ull * (uint64_t)hp->n_layer * (uint64_t)n_ctx * (uint64_t)hp->n_head_kv * (uint64_t)hp->head_dim *
           sizeof(uint16_t);
}
