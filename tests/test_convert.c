/* tern convert on Hugging Face checkpoints this test writes itself, one per family, from a model
 * the maker (host/model/maker.c) also writes directly as GGUF: the converted file must hold the same
 * ternary codes, scales, norms, embedding and tokenizer, and run to the same tokens. The HF side is
 * written from the formats' definitions (docs/formats.md#hugging-face-checkpoints): packed uint8 [out/4, in]
 * with row i*(out/4) + r in bits 2i of byte [r][c]; weight_scale multiplied (autobitlinear) or divided
 * (bitlinear); q/k rows in HF's half-split order for llama. Malformed inputs fail with one error
 * line and no output file. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpu/ref.h"
#include "harness.h"
#include "host/convert/convert.h"
#include "host/convert/hf_vocab.h"
#include "host/convert/safetensors.h"
#include "host/model/maker.h"
#include "host/model/ternary.h"
#include "host/tern.h"
#include "scheduler/fp16.h"

/* ---- writing a safetensors file ---- */

struct st_entry {
    char name[160];
    const char *dtype;
    int n_dims;
    int64_t shape[2];
    uint8_t *data; /* owned */
    uint64_t nbytes;
    int shard; /* 0 or 1 */
};

struct hf {
    struct st_entry e[128];
    int n;
};

static struct st_entry *hf_add(struct hf *h, const char *name, const char *dtype, int n_dims, int64_t d0,
                               int64_t d1, uint64_t nbytes) {
    struct st_entry *e = &h->e[h->n++];
    snprintf(e->name, sizeof e->name, "%.150s", name);
    e->dtype = dtype;
    e->n_dims = n_dims;
    e->shape[0] = d0;
    e->shape[1] = d1;
    e->data = calloc(1, nbytes ? nbytes : 1);
    e->nbytes = nbytes;
    e->shard = h->n % 2;
    return e;
}

static void hf_free(struct hf *h) {
    for (int i = 0; i < h->n; i++)
        free(h->e[i].data);
    h->n = 0;
}

static void write_shard(const struct hf *h, int shard, bool all, const char *path) {
    json_t *hdr = json_object();
    uint64_t off = 0;
    for (int i = 0; i < h->n; i++) {
        const struct st_entry *e = &h->e[i];
        if (!all && e->shard != shard)
            continue;
        json_t *shape = json_array();
        for (int d = 0; d < e->n_dims; d++)
            json_array_append_new(shape, json_integer(e->shape[d]));
        json_object_set_new(hdr, e->name,
                            json_pack("{s:s, s:o, s:[I, I]}", "dtype", e->dtype, "shape", shape,
                                      "data_offsets", (json_int_t)off, (json_int_t)(off + e->nbytes)));
        off += e->nbytes;
    }
    char *text = json_dumps(hdr, JSON_COMPACT);
    json_decref(hdr);
    uint64_t len = strlen(text), padded = (len + 7) / 8 * 8;
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) {
        free(text);
        return;
    }
    uint8_t lb[8];
    for (int i = 0; i < 8; i++)
        lb[i] = (uint8_t)(padded >> (8 * i));
    fwrite(lb, 1, 8, f);
    fwrite(text, 1, len, f);
    for (uint64_t i = len; i < padded; i++)
        fputc(' ', f);
    for (int i = 0; i < h->n; i++)
        if (all || h->e[i].shard == shard)
            fwrite(h->e[i].data, 1, h->e[i].nbytes, f);
    fclose(f);
    free(text);
}

static void write_json(json_t *v, const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK_INT(0, json_dump_file(v, path, JSON_INDENT(1)));
    json_decref(v);
}

/* ---- the model's HF twin ---- */

enum mode {
    PACKED_AUTO,  /* 2B-4T: packed uint8 + bf16 weight_scale, W = t * scale */
    PACKED_INV,   /* transformers BitLinear (Llama3-8B-1.58, Falcon3): f32 weight_scale = 1/scale */
    FLOAT_MASTER, /* bf16 / f16 values t * scale */
    NOISY_MASTER, /* f16 values t * scale * (1 +- 0.25): a full-precision master, not ternary */
};

struct family_case {
    const char *name;
    const char *arch;    /* maker arch */
    const char *hf_arch; /* config.json architectures[0] */
    const char *act;
    enum mode mode;
    const char *float_dtype; /* FLOAT_MASTER: BF16 or F16 */
    bool sharded;
    int n_embd, n_ff, n_head, n_head_kv;
};

static uint16_t bf16_bits(float v) {
    return tern_fp32_to_bf16(v);
}

/* HF row of GGUF row g for a llama q/k weight of heads of hd rows: g = h*hd + 2i + s comes from
 * HF row h*hd + s*hd/2 + i (HF rotates dimension i with i + hd/2; llama files pair 2i, 2i+1). */
static int64_t hf_row(int64_t g, int64_t hd) {
    const int64_t h = g / hd, i = (g % hd) / 2, s = g % 2;
    return h * hd + s * hd / 2 + i;
}

/* The row mapping against RoPE itself: rotating an HF-order q vector half-split (NEOX, as
 * transformers does) and then mapping it to GGUF order equals mapping first and rotating adjacent
 * pairs (a llama file, tern's and llama.cpp's TERN_ROPE_NORM). */
static void qk_row_order_matches_rope(void) {
    enum { HEADS = 2, HD = 8 };
    float hf[HEADS * HD], gg[HEADS * HD], want[HEADS * HD];
    uint64_t rng = 5;
    for (int i = 0; i < HEADS * HD; i++)
        hf[i] = test_rand_uniform(&rng, -1.0f, 1.0f);
    for (int g = 0; g < HEADS * HD; g++)
        gg[g] = hf[hf_row(g, HD)];
    tern_ref_rope(hf, HEADS, HD, HD, 7, 10000.0f, TERN_ROPE_NEOX);
    tern_ref_rope(gg, HEADS, HD, HD, 7, 10000.0f, TERN_ROPE_NORM);
    for (int g = 0; g < HEADS * HD; g++)
        want[g] = hf[hf_row(g, HD)];
    for (int g = 0; g < HEADS * HD; g++)
        CHECK_FLOAT(want[g], gg[g], 1e-6);
}

static void add_linear(struct hf *h, const struct family_case *fc, const char *name,
                       const struct tern_ternary *w, int64_t head_dim) {
    const int64_t in = w->n_in, out = w->n_out;
    char full[160];
    snprintf(full, sizeof full, "%.120s.weight", name);
    const bool perm = head_dim > 0;
    if (fc->mode == FLOAT_MASTER || fc->mode == NOISY_MASTER) {
        struct st_entry *e = hf_add(h, full, fc->float_dtype, 2, out, in, (uint64_t)(in * out) * 2);
        for (int64_t g = 0; g < out; g++) {
            const int64_t r = perm ? hf_row(g, head_dim) : g;
            for (int64_t c = 0; c < in; c++) {
                const float noise = fc->mode == NOISY_MASTER ? ((g + c) % 2 ? 1.25f : 0.75f) : 1.0f;
                const float v =
                    (float)(tern_packed_get(w->codes + g * w->row_bytes, c) - 1) * w->scale * noise;
                const uint16_t b = strcmp(fc->float_dtype, "BF16") == 0 ? bf16_bits(v) : tern_fp32_to_fp16(v);
                memcpy(e->data + 2 * (r * in + c), &b, 2);
            }
        }
        return;
    }
    struct st_entry *e = hf_add(h, full, "U8", 2, out / 4, in, (uint64_t)(in * out / 4));
    for (int64_t g = 0; g < out; g++) {
        const int64_t r = perm ? hf_row(g, head_dim) : g, q = out / 4;
        for (int64_t c = 0; c < in; c++)
            e->data[(r % q) * in + c] |=
                (uint8_t)(tern_packed_get(w->codes + g * w->row_bytes, c) << (2 * (r / q)));
    }
    snprintf(full, sizeof full, "%.120s.weight_scale", name);
    if (fc->mode == PACKED_AUTO) {
        struct st_entry *s = hf_add(h, full, "BF16", 1, 1, 0, 2);
        const uint16_t b = bf16_bits(w->scale);
        memcpy(s->data, &b, 2);
    } else {
        struct st_entry *s = hf_add(h, full, "F32", 0, 0, 0, 4);
        const float inv = 1.0f / w->scale;
        memcpy(s->data, &inv, 4);
    }
}

static void add_vector(struct hf *h, const char *name, const float *v, int64_t n) {
    struct st_entry *e = hf_add(h, name, "F32", 1, n, 0, (uint64_t)n * 4);
    memcpy(e->data, v, (size_t)n * 4);
}

/* tokenizer.json / tokenizer_config.json holding the maker's vocabulary */
static void write_tokenizer(const tern_gguf *g, const char *dir) {
    json_t *vocab = json_object(), *merges = json_array(), *added = json_array();
    uint64_t n = 0, n_merges = 0;
    enum tern_gguf_vtype et;
    const void *types;
    CHECK_STATUS(TERN_OK, tern_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n, &types));
    for (uint64_t i = 0; i < n; i++) {
        struct tern_str s;
        int32_t type;
        memcpy(&type, (const uint8_t *)types + 4 * i, 4);
        CHECK_STATUS(TERN_OK, tern_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &s));
        if (type == TERN_TOKEN_CONTROL)
            json_array_append_new(added, json_pack("{s:I, s:s%, s:b}", "id", (json_int_t)i, "content", s.ptr,
                                                   (size_t)s.len, "special", 1));
        else
            json_object_setn_new(vocab, s.ptr, (size_t)s.len, json_integer((json_int_t)i));
    }
    CHECK_STATUS(TERN_OK, tern_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n_merges, &types));
    for (uint64_t i = 0; i < n_merges; i++) {
        struct tern_str s;
        CHECK_STATUS(TERN_OK, tern_gguf_get_arr_str(g, "tokenizer.ggml.merges", i, &s));
        json_array_append_new(merges, json_stringn(s.ptr, (size_t)s.len));
    }
    write_json(json_pack("{s:o, s:{s:s, s:o, s:o}}", "added_tokens", added, "model", "type", "BPE", "vocab",
                         vocab, "merges", merges),
               dir, "tokenizer.json");
    write_json(json_pack("{s:s, s:s, s:b, s:s}", "bos_token", "<|begin_of_text|>", "eos_token",
                         "<|end_of_text|>", "add_bos_token", 1, "chat_template",
                         "{% for m in messages %}{{ m.content }}{% endfor %}"),
               dir, "tokenizer_config.json");
}

static void rm_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[600];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            remove(path);
        }
    closedir(d);
    rmdir(dir);
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* Write the HF folder of the maker model at gguf_path. */
static void write_hf(const struct family_case *fc, const tern_model *m, const char *dir) {
    rm_dir(dir);
    mkdir(dir, 0755);
    const struct tern_model_view *v = tern_model_view(m);
    const struct tern_hparams *hp = &v->hp;
    const bool llama = strcmp(fc->arch, "llama") == 0;
    json_t *cfg = json_pack(
        "{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:b}", "architectures", fc->hf_arch,
        "hidden_act", fc->act, "hidden_size", hp->n_embd, "intermediate_size", hp->n_ff, "num_hidden_layers",
        hp->n_layer, "num_attention_heads", hp->n_head, "num_key_value_heads", hp->n_head_kv, "vocab_size",
        hp->n_vocab, "max_position_embeddings", hp->n_ctx_train, "rms_norm_eps", (double)hp->norm_eps,
        "rope_theta", (double)hp->rope_theta, "tie_word_embeddings", 1);
    if (fc->mode == PACKED_AUTO || fc->mode == PACKED_INV)
        json_object_set_new(cfg, "quantization_config",
                            json_pack("{s:s, s:s, s:s}", "quant_method", "bitnet", "linear_class",
                                      fc->mode == PACKED_AUTO ? "autobitlinear" : "bitlinear",
                                      "quantization_mode", "offline"));
    write_json(cfg, dir, "config.json");
    write_tokenizer(tern_model_gguf(m), dir);

    static struct hf h;
    hf_free(&h);
    struct st_entry *e = hf_add(&h, "model.embed_tokens.weight", "F16", 2, hp->n_vocab, hp->n_embd,
                                (uint64_t)hp->n_vocab * (uint64_t)hp->n_embd * 2);
    memcpy(e->data, v->tok_embd.data, e->nbytes);
    add_vector(&h, "model.norm.weight", v->output_norm, hp->n_embd);
    char name[128];
    for (int il = 0; il < hp->n_layer; il++) {
        const struct tern_layer_weights *L = &v->layers[il];
        const struct {
            const char *hf;
            const struct tern_ternary *w;
            int64_t perm_hd;
        } lin[7] = {
            {"self_attn.q_proj", &L->wq, llama ? hp->head_dim : 0},
            {"self_attn.k_proj", &L->wk, llama ? hp->head_dim : 0},
            {"self_attn.v_proj", &L->wv, 0},
            {"self_attn.o_proj", &L->wo, 0},
            {"mlp.gate_proj", &L->wgate, 0},
            {"mlp.up_proj", &L->wup, 0},
            {"mlp.down_proj", &L->wdown, 0},
        };
        for (int i = 0; i < 7; i++) {
            snprintf(name, sizeof name, "model.layers.%d.%s", il, lin[i].hf);
            add_linear(&h, fc, name, lin[i].w, lin[i].perm_hd);
        }
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", il);
        add_vector(&h, name, L->attn_norm, hp->n_embd);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", il);
        add_vector(&h, name, L->ffn_norm, hp->n_embd);
        if (!llama) {
            const bool b158 = strcmp(fc->hf_arch, "BitNetForCausalLM") == 0;
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", il,
                     b158 ? "self_attn.attn_sub_norm" : "self_attn.inner_attn_ln");
            add_vector(&h, name, L->attn_sub_norm, (int64_t)hp->n_head * hp->head_dim);
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", il,
                     b158 ? "mlp.ffn_sub_norm" : "mlp.ffn_layernorm");
            add_vector(&h, name, L->ffn_sub_norm, hp->n_ff);
        }
    }
    char path[512];
    if (!fc->sharded) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        write_shard(&h, 0, true, path);
        return;
    }
    json_t *map = json_object();
    for (int s = 0; s < 2; s++) {
        char fn[64];
        snprintf(fn, sizeof fn, "model-%05d-of-00002.safetensors", s + 1);
        snprintf(path, sizeof path, "%s/%s", dir, fn);
        write_shard(&h, s, false, path);
        for (int i = 0; i < h.n; i++)
            if (h.e[i].shard == s)
                json_object_set_new(map, h.e[i].name, json_string(fn));
    }
    write_json(json_pack("{s:{}, s:o}", "metadata", "weight_map", map), dir, "model.safetensors.index.json");
}

/* ---- comparing the converted file with the maker's ---- */

static void same_ternary(const struct tern_ternary *a, const struct tern_ternary *b, const char *what,
                         bool exact_scale) {
    if (memcmp(a->codes, b->codes, (size_t)(a->row_bytes * a->n_out)) != 0)
        harness_fail(__FILE__, __LINE__, "%s: ternary codes differ", what);
    const double tol = exact_scale ? 0.0 : 1e-6 * fabs((double)b->scale);
    if (!(fabs((double)a->scale - (double)b->scale) <= tol))
        harness_fail(__FILE__, __LINE__, "%s: scale %.9g, maker's %.9g", what, (double)a->scale,
                     (double)b->scale);
}

static void same_vector(const float *a, const float *b, int64_t n, const char *what) {
    if (memcmp(a, b, (size_t)n * sizeof *a) != 0)
        harness_fail(__FILE__, __LINE__, "%s differs", what);
}

static void greedy_ids(const tern_model *m, int32_t *out, int n) {
    tern_session *s = NULL;
    struct tern_session_params sp = {.n_ctx = 64, .device = "cpu"};
    CHECK_STATUS(TERN_OK, tern_session_create(m, &sp, &s));
    if (!s)
        return;
    const int nv = tern_model_view(m)->hp.n_vocab;
    int32_t tok[4] = {nv - 2, 72, 101, 108};
    const float *logits;
    CHECK_STATUS(TERN_OK, tern_session_eval(s, tok, 4, &logits));
    for (int k = 0; k < n; k++) {
        int32_t best = 0;
        for (int i = 1; i < nv; i++)
            if (logits[i] > logits[best])
                best = i;
        out[k] = best;
        CHECK_STATUS(TERN_OK, tern_session_eval(s, &best, 1, &logits));
    }
    tern_session_free(s);
}

static void compare(const tern_model *got, const tern_model *want, bool exact_scale) {
    const struct tern_model_view *a = tern_model_view(got), *b = tern_model_view(want);
    CHECK_INT(b->hp.n_layer, a->hp.n_layer);
    CHECK_INT(b->hp.n_embd, a->hp.n_embd);
    CHECK_INT(b->hp.n_head_kv, a->hp.n_head_kv);
    CHECK_INT(b->hp.n_vocab, a->hp.n_vocab);
    CHECK_INT(b->hp.rope_style, a->hp.rope_style);
    CHECK_INT(b->hp.ffn_act, a->hp.ffn_act);
    CHECK_INT(b->hp.has_sub_norms, a->hp.has_sub_norms);
    CHECK(a->tok_embd.type == b->tok_embd.type &&
          memcmp(a->tok_embd.data, b->tok_embd.data, b->tok_embd.row_bytes * (size_t)b->hp.n_vocab) == 0);
    same_vector(a->output_norm, b->output_norm, b->hp.n_embd, "output_norm");
    char what[64];
    for (int il = 0; il < b->hp.n_layer && il < a->hp.n_layer; il++) {
        const struct tern_layer_weights *x = &a->layers[il], *y = &b->layers[il];
        const struct tern_ternary *xs[7] = {&x->wq, &x->wk, &x->wv, &x->wo, &x->wgate, &x->wup, &x->wdown};
        const struct tern_ternary *ys[7] = {&y->wq, &y->wk, &y->wv, &y->wo, &y->wgate, &y->wup, &y->wdown};
        for (int i = 0; i < 7; i++) {
            snprintf(what, sizeof what, "layer %d linear %d", il, i);
            same_ternary(xs[i], ys[i], what, exact_scale);
        }
        same_vector(x->attn_norm, y->attn_norm, b->hp.n_embd, "attn_norm");
        same_vector(x->ffn_norm, y->ffn_norm, b->hp.n_embd, "ffn_norm");
        if (b->hp.has_sub_norms) {
            same_vector(x->attn_sub_norm, y->attn_sub_norm, (int64_t)b->hp.n_head * b->hp.head_dim,
                        "attn_sub_norm");
            same_vector(x->ffn_sub_norm, y->ffn_sub_norm, b->hp.n_ff, "ffn_sub_norm");
        }
    }
    /* the tokenizer came through tokenizer.json: same ids for a text with a special token */
    tern_tokenizer *ta = NULL, *tb = NULL;
    CHECK_STATUS(TERN_OK, tern_tokenizer_create(tern_model_gguf(got), NULL, &ta));
    CHECK_STATUS(TERN_OK, tern_tokenizer_create(tern_model_gguf(want), NULL, &tb));
    const char text[] = "Hello world, 1234 tokens!<|end_of_text|> and more";
    int32_t *ia = NULL, *ib = NULL;
    size_t na = 0, nb = 0;
    if (ta && tb) {
        CHECK_STATUS(TERN_OK, tern_tokenize(ta, text, sizeof text - 1, true, true, &ia, &na));
        CHECK_STATUS(TERN_OK, tern_tokenize(tb, text, sizeof text - 1, true, true, &ib, &nb));
        CHECK(na == nb && na > 3 && memcmp(ia, ib, na * sizeof *ia) == 0);
    }
    free(ia);
    free(ib);
    tern_tokenizer_free(ta);
    tern_tokenizer_free(tb);
    struct tern_str tmpl;
    CHECK_STATUS(TERN_OK, tern_gguf_get_str(tern_model_gguf(got), "tokenizer.chat_template", &tmpl));
    /* and it runs to the same tokens */
    int32_t ga[6] = {0}, gb[6] = {0};
    greedy_ids(got, ga, 6);
    greedy_ids(want, gb, 6);
    CHECK(memcmp(ga, gb, sizeof ga) == 0);
}

static const struct family_case cases[] = {
    {"b158-packed", "bitnet-b1.58", "BitNetForCausalLM", "relu2", PACKED_AUTO, NULL, false, 256, 512, 4, 2},
    {"b158-bf16-sharded", "bitnet-b1.58", "BitNetForCausalLM", "relu2", FLOAT_MASTER, "BF16", true, 256, 512,
     4, 2},
    {"1bitllm-f16-odd", "bitnet", "BitnetForCausalLM", "silu", FLOAT_MASTER, "F16", false, 320, 864, 4, 4},
    {"llama-packed", "llama", "LlamaForCausalLM", "silu", PACKED_INV, NULL, true, 256, 512, 4, 2},
    {"llama-bf16", "llama", "LlamaForCausalLM", "silu", FLOAT_MASTER, "BF16", false, 256, 512, 4, 2},
};

static int n_warnings, n_errors;
static bool quiet; /* count without printing */
static void count_log(enum tern_log_level level, const char *msg, void *user) {
    (void)user;
    n_warnings += level == TERN_LOG_WARN;
    n_errors += level == TERN_LOG_ERROR;
    if (level >= TERN_LOG_WARN && !quiet)
        fprintf(stderr, "    (logged: %s)\n", msg);
}

static tern_status convert(const char *dir, const char *out, uint32_t type) {
    struct tern_convert_params p = {
        .hf_dir = dir, .out_path = out, .linear_type = type, .embd_type = TERN_TYPE_F16};
    n_warnings = n_errors = 0;
    tern_log_set_callback(count_log, NULL);
    tern_status st = tern_convert(&p);
    tern_log_set_callback(NULL, NULL);
    return st;
}

static void every_family_matches_the_maker(void) {
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct family_case *fc = &cases[c];
        fprintf(stderr, "  case %s\n", fc->name);
        struct tern_maker_params p;
        tern_maker_preset("tiny", &p);
        p.arch = fc->arch;
        p.n_embd = fc->n_embd;
        p.n_ff = fc->n_ff;
        p.n_head = fc->n_head;
        p.n_head_kv = fc->n_head_kv;
        p.seed = 11 + c;
        char gguf[64], dir[64], out[64];
        snprintf(gguf, sizeof gguf, "conv-%s-maker.gguf", fc->name);
        snprintf(dir, sizeof dir, "conv-%s-hf", fc->name);
        snprintf(out, sizeof out, "conv-%s.gguf", fc->name);
        const char *gpath = test_tmp(gguf, 0), *dpath = test_tmp(dir, 1), *opath = test_tmp(out, 2);
        CHECK_STATUS(TERN_OK, tern_maker_write(&p, gpath));
        tern_model *want = NULL, *got = NULL;
        CHECK_STATUS(TERN_OK, tern_model_create(gpath, &want));
        if (!want)
            continue;
        write_hf(fc, want, dpath);
        remove(opath);
        CHECK_STATUS(TERN_OK, convert(dpath, opath, TERN_TYPE_I2_S));
        /* already-ternary values: no absmean, no post-training warning */
        CHECK_INT(0, n_warnings);
        CHECK_STATUS(TERN_OK, tern_model_create(opath, &got));
        if (got) {
            CHECK(strcmp(tern_model_arch(got), fc->arch) == 0);
            /* bitlinear's 1/weight_scale round trip may move the scale by an ulp */
            compare(got, want, fc->mode != PACKED_INV);
        }
        tern_model_free(got);
        if (c == 0) {
            /* the same checkpoint as TQ2_0 and TQ1_0 holds the same codes and scales */
            const uint32_t tq[2] = {TERN_TYPE_TQ2_0, TERN_TYPE_TQ1_0};
            for (int t = 0; t < 2; t++) {
                CHECK_STATUS(TERN_OK, convert(dpath, opath, tq[t]));
                got = NULL;
                CHECK_STATUS(TERN_OK, tern_model_create(opath, &got));
                if (got)
                    compare(got, want, true);
                tern_model_free(got);
            }
        }
        tern_model_free(want);
    }
}

/* mean |w| of the ternary weight w as NOISY_MASTER writes it: nonzero values times 0.75 or 1.25 */
static double noisy_absmean(const struct tern_ternary *w) {
    double sum = 0.0;
    for (int64_t g = 0; g < w->n_out; g++)
        for (int64_t c = 0; c < w->n_in; c++)
            if (tern_packed_get(w->codes + g * w->row_bytes, c) != 1)
                sum += (double)w->scale * ((g + c) % 2 ? 1.25 : 0.75);
    return sum / (double)(w->n_in * w->n_out);
}

/* A plain f16 Llama checkpoint of full-precision weights: ternarized with absmean (each weight's
 * scale is its mean |w|, closed form; the codes survive the +-25% noise since |w|/mean|w| lies in
 * (0.5, 2.5)), with one warning about post-training ternarization. */
static void llama_master_absmean(void) {
    const struct family_case fc = {
        "llama-f16-master", "llama", "LlamaForCausalLM", "silu", NOISY_MASTER, "F16", false, 256, 512, 4, 2};
    struct tern_maker_params p;
    tern_maker_preset("tiny", &p);
    p.arch = "llama";
    const char *gpath = test_tmp("conv-master-maker.gguf", 0), *dpath = test_tmp("conv-master-hf", 1);
    const char *opath = test_tmp("conv-master.gguf", 2);
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, gpath));
    tern_model *want = NULL, *got = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(gpath, &want));
    if (!want)
        return;
    write_hf(&fc, want, dpath);
    CHECK_STATUS(TERN_OK, convert(dpath, opath, TERN_TYPE_I2_S));
    CHECK_INT(1, n_warnings);
    CHECK_STATUS(TERN_OK, tern_model_create(opath, &got));
    for (int il = 0; got && il < p.n_layer; il++) {
        const struct tern_layer_weights *x = &tern_model_view(got)->layers[il],
                                        *y = &tern_model_view(want)->layers[il];
        const struct tern_ternary *xs[7] = {&x->wq, &x->wk, &x->wv, &x->wo, &x->wgate, &x->wup, &x->wdown};
        const struct tern_ternary *ys[7] = {&y->wq, &y->wk, &y->wv, &y->wo, &y->wgate, &y->wup, &y->wdown};
        for (int i = 0; i < 7; i++) {
            CHECK(memcmp(xs[i]->codes, ys[i]->codes, (size_t)(ys[i]->row_bytes * ys[i]->n_out)) == 0);
            const double s = noisy_absmean(ys[i]);
            CHECK_FLOAT(s, xs[i]->scale, 1e-6 * s);
        }
    }
    tern_model_free(got);
    tern_model_free(want);
}

/* The scale direction, closed form: a packed weight of all +1 with weight_scale 0.5 is W = 0.5
 * under autobitlinear and W = 2 under bitlinear. Checked on the written I2_S tensor's scale. */
static void scale_direction(void) {
    const struct family_case *fc = &cases[0];
    struct tern_maker_params p;
    tern_maker_preset("tiny", &p);
    const char *gpath = test_tmp("conv-scale-maker.gguf", 0), *dpath = test_tmp("conv-scale-hf", 1);
    const char *opath = test_tmp("conv-scale.gguf", 2);
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, gpath));
    tern_model *m = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(gpath, &m));
    if (!m)
        return;
    write_hf(fc, m, dpath);
    tern_model_free(m);
    for (int inverse = 0; inverse < 2; inverse++) {
        /* rewrite config.json's linear_class and the scale of layer 0's q_proj (bf16 0.5 = 0x3f00) */
        char path[512];
        snprintf(path, sizeof path, "%s/config.json", dpath);
        json_error_t err;
        json_t *cfg = json_load_file(path, 0, &err);
        json_object_set_new(json_object_get(cfg, "quantization_config"), "linear_class",
                            json_string(inverse ? "bitlinear" : "autobitlinear"));
        write_json(cfg, dpath, "config.json");
        snprintf(path, sizeof path, "%s/model.safetensors", dpath);
        FILE *f = fopen(path, "r+b");
        CHECK(f != NULL);
        if (!f)
            return;
        static char buf[1 << 16];
        size_t n = fread(buf, 1, sizeof buf, f);
        uint64_t hlen;
        memcpy(&hlen, buf, 8);
        json_t *h = json_loadb(buf + 8, hlen, 0, &err);
        json_t *e = json_object_get(h, "model.layers.0.self_attn.q_proj.weight_scale");
        const long at =
            (long)(8 + hlen + json_integer_value(json_array_get(json_object_get(e, "data_offsets"), 0)));
        CHECK(e != NULL && n > 8);
        fseek(f, at, SEEK_SET);
        const uint8_t half[2] = {0x00, 0x3f};
        fwrite(half, 1, 2, f);
        fclose(f);
        json_decref(h);
        CHECK_STATUS(TERN_OK, convert(dpath, opath, TERN_TYPE_I2_S));
        tern_model *got = NULL;
        CHECK_STATUS(TERN_OK, tern_model_create(opath, &got));
        if (got)
            CHECK_FLOAT(inverse ? 2.0 : 0.5, tern_model_view(got)->layers[0].wq.scale, 0.0);
        tern_model_free(got);
    }
}

/* A SentencePiece tokenizer.json (byte_fallback, as 1bitLLM's): imported as tokenizer.ggml.model
 * llama, it must tokenize as Hugging Face's BPE does by merge rank. "hello world!" becomes
 * "▁hello▁world!": ranks ll, ▁h, or, ▁w, ell, ▁hell, ▁hello, ▁wor, lo give ▁hello ▁wor l d and "!"
 * falls back to <0x21>. The vocabulary's "el" and "hel" come from no merge and must not be used. */
static void spm_tokenizer_import(void) {
    const char *dir = test_tmp("conv-spm", 0);
    rm_dir(dir);
    mkdir(dir, 0755);
    json_t *vocab = json_object();
    json_object_set_new(vocab, "<unk>", json_integer(0));
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        json_object_set_new(vocab, name, json_integer(3 + b));
    }
    static const char *const pieces[] = {
        "\u2581", "h",       "e",  "l",       "o",   "w",          "r",           "d",         "el", "hel",
        "ll",     "\u2581h", "or", "\u2581w", "ell", "\u2581hell", "\u2581hello", "\u2581wor", "lo"};
    for (int i = 0; i < (int)(sizeof pieces / sizeof pieces[0]); i++) {
        char utf8[32];
        const char *src = pieces[i];
        size_t n = 0;
        for (; *src; src++) {
            if (!strncmp(src, "\\u2581", 6)) {
                memcpy(utf8 + n, "\xe2\x96\x81", 3);
                n += 3;
                src += 5;
            } else {
                utf8[n++] = *src;
            }
        }
        utf8[n] = 0;
        json_object_set_new(vocab, utf8, json_integer(259 + i));
    }
    json_t *merges =
        json_pack("[s, s, s, s, s, s, s, s, s]", "l l", "\xe2\x96\x81 h", "o r", "\xe2\x96\x81 w", "e ll",
                  "\xe2\x96\x81h ell", "\xe2\x96\x81hell o", "\xe2\x96\x81w or", "l o");
    json_t *added = json_pack("[{s:i, s:s, s:b}, {s:i, s:s, s:b}]", "id", 1, "content", "<s>", "special", 1,
                              "id", 2, "content", "</s>", "special", 1);
    write_json(json_pack("{s:o, s:{s:s, s:b, s:o, s:o}}", "added_tokens", added, "model", "type", "BPE",
                         "byte_fallback", 1, "vocab", vocab, "merges", merges),
               dir, "tokenizer.json");
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    struct tern_hf_vocab *v = NULL;
    tern_gguf_writer *w = NULL;
    CHECK_STATUS(TERN_OK, tern_hf_vocab_create(path, &v));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_create(&w));
    if (!v || !w)
        return;
    CHECK(v->spm);
    CHECK_INT(1, v->bos);
    CHECK_INT(2, v->eos);
    CHECK_STATUS(TERN_OK, tern_hf_vocab_write(v, w));
    snprintf(path, sizeof path, "%s/vocab.gguf", dir);
    CHECK_STATUS(TERN_OK, tern_gguf_writer_write(w, path));
    tern_gguf_writer_free(w);
    tern_hf_vocab_free(v);
    tern_gguf *g = NULL;
    tern_tokenizer *tok = NULL;
    CHECK_STATUS(TERN_OK, tern_gguf_create(path, &g));
    if (g)
        CHECK_STATUS(TERN_OK, tern_tokenizer_create(g, NULL, &tok));
    if (tok) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_STATUS(TERN_OK, tern_tokenize(tok, "hello world!", 12, true, true, &ids, &n));
        static const int32_t want[6] = {1, 259 + 16, 259 + 17, 259 + 3, 259 + 7, 3 + 0x21};
        if (n != 6 || memcmp(ids, want, sizeof want) != 0) {
            harness_fail(__FILE__, __LINE__, "SentencePiece import: tokenized to %zu ids", n);
            for (size_t i = 0; i < n; i++)
                fprintf(stderr, " %d", ids[i]);
            fputc('\n', stderr);
        }
        free(ids);
    }
    tern_tokenizer_free(tok);
    tern_gguf_free(g);
}

/* bitnet.cpp's own I2_S file as the oracle: the conformance model written as an HF folder (its F16
 * linears as masters) and converted must give each I2_S tensor byte for byte as bitnet.cpp's
 * llama-quantize wrote it (codes and f32 scale; the 28 padding bytes are uninitialised there). */
static void i2s_bytes_match_bitnet_cpp(void) {
    const struct family_case fc = {
        "mini", "bitnet-b1.58", "BitNetForCausalLM", "relu2", FLOAT_MASTER, "F16", false, 0, 0, 0, 0};
    const char *dir = test_tmp("conv-mini-hf", 1), *out = test_tmp("conv-mini.gguf", 2);
    tern_model *ref = NULL, *got = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(test_data("vectors/mini-b158-i2s.gguf", 0), &ref));
    if (!ref)
        return;
    write_hf(&fc, ref, dir);
    CHECK_STATUS(TERN_OK, convert(dir, out, TERN_TYPE_I2_S));
    CHECK_STATUS(TERN_OK, tern_model_create(out, &got));
    int n_i2s = 0;
    for (int64_t i = 0; got && i < tern_gguf_n_tensors(tern_model_gguf(ref)); i++) {
        const struct tern_gguf_tensor *a = tern_gguf_tensor(tern_model_gguf(ref), i);
        const struct tern_gguf_tensor *b = tern_gguf_find_tensor(tern_model_gguf(got), a->name);
        if (!b || a->type != b->type || a->nbytes != b->nbytes) {
            harness_fail(__FILE__, __LINE__, "tensor %s: missing, or another type or size", a->name);
            continue;
        }
        const uint64_t n = a->type == TERN_TYPE_I2_S ? (uint64_t)(a->ne[0] * a->ne[1]) / 4 + 4 : a->nbytes;
        n_i2s += a->type == TERN_TYPE_I2_S;
        if (memcmp(a->data, b->data, (size_t)n) != 0)
            harness_fail(__FILE__, __LINE__, "tensor %s differs from bitnet.cpp's", a->name);
    }
    CHECK_INT(14, n_i2s);
    tern_model_free(got);
    tern_model_free(ref);
}

/* ---- malformed inputs ---- */

/* Open dir's checkpoint: a failure must log exactly one line; an accepted file's tensors must lie
 * inside the file. Returns the status. */
static tern_status open_checked(const char *dir, uint64_t file_size) {
    n_warnings = n_errors = 0;
    tern_log_set_callback(count_log, NULL);
    quiet = true; /* thousands of expected error lines: counted, not printed */
    tern_safetensors *st = NULL;
    tern_status s = tern_safetensors_create(dir, &st);
    quiet = false;
    tern_log_set_callback(NULL, NULL);
    if (s != TERN_OK && n_errors != 1)
        harness_fail(__FILE__, __LINE__, "a rejected checkpoint logged %d error lines", n_errors);
    static const char *const names[3] = {"a", "b.weight", "c"};
    for (int i = 0; st && i < 3; i++) {
        const struct tern_st_tensor *t = tern_safetensors_find(st, names[i]);
        if (t && (t->offset > file_size || t->nbytes > file_size - t->offset))
            harness_fail(__FILE__, __LINE__, "tensor %s lies outside the file", names[i]);
    }
    tern_safetensors_free(st);
    return s;
}

/* The safetensors reader on a small valid file cut at every length (all refused) and with each
 * header byte changed (refused with one line, or opened with every tensor inside the file). */
static void safetensors_truncations_and_flips(void) {
    const char *dir = test_tmp("conv-st", 0);
    rm_dir(dir);
    mkdir(dir, 0755);
    static struct hf h;
    hf_free(&h);
    hf_add(&h, "a", "F32", 1, 3, 0, 12);
    hf_add(&h, "b.weight", "U8", 2, 2, 5, 10);
    hf_add(&h, "c", "BF16", 2, 2, 2, 8);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_shard(&h, 0, true, path);
    hf_free(&h);
    static uint8_t full[4096];
    FILE *f = fopen(path, "rb");
    const size_t n = f ? fread(full, 1, sizeof full, f) : 0;
    if (f)
        fclose(f);
    CHECK(n > 40);
    CHECK_STATUS(TERN_OK, open_checked(dir, n));
    for (size_t len = 0; len < n; len++) {
        f = fopen(path, "wb");
        fwrite(full, 1, len, f);
        fclose(f);
        if (open_checked(dir, len) == TERN_OK) {
            harness_fail(__FILE__, __LINE__, "the file cut at %zu of %zu bytes was accepted", len, n);
            break;
        }
    }
    uint64_t hlen = 0;
    memcpy(&hlen, full, 8);
    for (size_t at = 0; at < 8 + hlen && at < n; at++)
        for (int v = 0; v < 3; v++) {
            static const uint8_t subst[3] = {'9', '"', 0xff};
            static uint8_t mut[4096];
            memcpy(mut, full, n);
            mut[at] = subst[v];
            f = fopen(path, "wb");
            fwrite(mut, 1, n, f);
            fclose(f);
            open_checked(dir, n);
        }
}

static void expect_reject(const char *dir, tern_status want, const char *what) {
    const char *out_dir = test_tmp("conv-reject-out", 3);
    rm_dir(out_dir);
    mkdir(out_dir, 0755);
    char out[600];
    snprintf(out, sizeof out, "%s/out.gguf", out_dir);
    tern_status st = convert(dir, out, TERN_TYPE_I2_S);
    if (st != want || n_errors != 1 || count_files(out_dir) != 0)
        harness_fail(__FILE__, __LINE__, "%s: got %s with %d error lines and %d files, expected %s, 1, 0",
                     what, tern_status_name(st), n_errors, count_files(out_dir), tern_status_name(want));
}

static void edit_config(const char *dir, const char *key, json_t *value) {
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t err;
    json_t *cfg = json_load_file(path, 0, &err);
    if (value)
        json_object_set_new(cfg, key, value);
    else
        json_object_del(cfg, key);
    write_json(cfg, dir, "config.json");
}

static void write_text(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void malformed_inputs_rejected(void) {
    struct tern_maker_params p;
    tern_maker_preset("tiny", &p);
    p.n_layer = 1;
    const char *gpath = test_tmp("conv-bad-maker.gguf", 0), *dir = test_tmp("conv-bad-hf", 1);
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, gpath));
    tern_model *m = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(gpath, &m));
    if (!m)
        return;
    char path[512];
    for (int k = 0; k < 11; k++) {
        const struct family_case *fc = k == 5 ? &cases[1] : &cases[0]; /* case 5 needs shards */
        write_hf(fc, m, dir);
        switch (k) {
        case 0:
            write_text(dir, "config.json", "{\"architectures\": [\"BitNetForCausalLM\"], ");
            expect_reject(dir, TERN_ERR_FORMAT, "config.json not JSON");
            break;
        case 1:
            edit_config(dir, "hidden_size", NULL);
            expect_reject(dir, TERN_ERR_FORMAT, "config.json without hidden_size");
            break;
        case 2:
            edit_config(dir, "architectures", json_pack("[s]", "GPT2LMHeadModel"));
            expect_reject(dir, TERN_ERR_UNSUPPORTED, "unsupported architecture");
            break;
        case 3:
            edit_config(dir, "num_attention_heads", json_string("four"));
            expect_reject(dir, TERN_ERR_FORMAT, "num_attention_heads a string");
            break;
        case 4: {
            /* a linear weight of dtype I8 (same size as U8): rewritten in the header */
            snprintf(path, sizeof path, "%s/model.safetensors", dir);
            FILE *f = fopen(path, "r+b");
            static char buf[1 << 16];
            size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
            char *at =
                n ? strstr(buf + 8, "\"model.layers.0.self_attn.k_proj.weight\":{\"dtype\":\"U8\"") : NULL;
            CHECK(at != NULL);
            if (at) {
                memcpy(strstr(at, "\"U8\"") + 1, "I8", 2);
                fseek(f, 0, SEEK_SET);
                fwrite(buf, 1, n, f);
            }
            if (f)
                fclose(f);
            expect_reject(dir, TERN_ERR_FORMAT, "linear weight of dtype I8");
            break;
        }
        case 5:
            snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
            remove(path);
            expect_reject(dir, TERN_ERR_IO, "missing shard");
            break;
        case 6:
            snprintf(path, sizeof path, "%s/model.safetensors", dir);
            CHECK_INT(0, truncate(path, 4000));
            expect_reject(dir, TERN_ERR_FORMAT, "truncated safetensors");
            break;
        case 7:
            snprintf(path, sizeof path, "%s/model.safetensors", dir);
            write_text(dir, "model.safetensors", "\xff\xff\xff\xff\xff\xff\xff\x7f{}");
            expect_reject(dir, TERN_ERR_FORMAT, "header length past the file");
            break;
        case 8:
            snprintf(path, sizeof path, "%s/tokenizer.json", dir);
            remove(path);
            expect_reject(dir, TERN_ERR_IO, "missing tokenizer.json");
            break;
        case 9:
            snprintf(path, sizeof path, "%s/model.safetensors", dir);
            remove(path);
            expect_reject(dir, TERN_ERR_IO, "no checkpoint");
            break;
        case 10:
            /* refused before a billion-token vocabulary is allocated and padded */
            write_text(dir, "tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 1000000000}}}");
            expect_reject(dir, TERN_ERR_FORMAT, "a token id of 10^9");
            break;
        }
    }
    tern_model_free(m);
}

int main(void) {
    RUN(qk_row_order_matches_rope);
    RUN(every_family_matches_the_maker);
    RUN(scale_direction);
    RUN(llama_master_absmean);
    RUN(spm_tokenizer_import);
    RUN(i2s_bytes_match_bitnet_cpp);
    RUN(safetensors_truncations_and_flips);
    RUN(malformed_inputs_rejected);
    return harness_finish();
}
