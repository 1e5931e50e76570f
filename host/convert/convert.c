/* Hugging Face checkpoint -> GGUF (see convert.h). First every input is read and checked (config,
 * tokenizer, each tensor's presence, dtype and shape); then the writer produces the tensors one at
 * a time through fill callbacks. */
#include "convert.h"

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../scheduler/fp16.h"
#include "../../scheduler/log.h"
#include "../../scheduler/types.h"
#include "../gguf/gguf.h"
#include "../gguf/quantize.h"
#include "../model/ternary.h"
#include "hf_vocab.h"
#include "safetensors.h"

struct family {
    const char *hf_arch;   /* config.json architectures[0] */
    const char *gguf_arch; /* general.architecture written */
    const char *act;       /* the hidden_act the graph computes */
    const char *attn_sub;  /* sub-norm tensor names under model.layers.N. (NULL: none) */
    const char *ffn_sub;
    bool permute_qk; /* llama files pair adjacent RoPE dimensions: permute q/k rows
                        (docs/formats.md#hugging-face-checkpoints) */
};

static const struct family families[] = {
    {"BitNetForCausalLM", "bitnet-b1.58", "relu2", "self_attn.attn_sub_norm", "mlp.ffn_sub_norm", false},
    {"BitnetForCausalLM", "bitnet", "silu", "self_attn.inner_attn_ln", "mlp.ffn_layernorm", false},
    {"LlamaForCausalLM", "llama", "silu", NULL, NULL, true},
};

enum job_kind { JOB_LINEAR, JOB_NORM, JOB_MATRIX };

struct conv;

/* One output tensor: where it comes from and how it is produced. */
struct job {
    struct conv *c;
    enum job_kind kind;
    const struct tern_st_tensor *src;   /* the weight */
    const struct tern_st_tensor *scale; /* packed linears: weight_scale */
    char name[96];                      /* GGUF name */
    uint32_t type;                      /* GGUF type written */
    int64_t ne0, ne1;                   /* GGUF shape (ne1 = 1 for vectors) */
    int perm_heads;                     /* > 0: permute rows, this many heads */
};

struct conv {
    const struct tern_convert_params *p;
    const struct family *fam;
    tern_safetensors *st;
    int n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim, n_vocab, n_ctx;
    float eps, theta;
    bool scale_is_inverse; /* linear_class bitlinear: W = t / weight_scale */
    bool quantized;        /* quantization_config of quant_method bitnet */
    int n_absmean;         /* linears ternarized with absmean (for the warning) */
    struct job *jobs;
    int n_jobs;
    int done;
};

/* ---- config.json ---- */

static tern_status cfg_int(const json_t *cfg, const char *path, const char *key, bool required, int64_t def,
                           int64_t lo, int64_t hi, int *out) {
    const json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        if (required) {
            tern_log_error("%s: missing key %s", path, key);
            return TERN_ERR_FORMAT;
        }
        *out = (int)def;
        return TERN_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        tern_log_error("%s: %s must be an integer in [%lld, %lld]", path, key, (long long)lo, (long long)hi);
        return TERN_ERR_FORMAT;
    }
    *out = (int)json_integer_value(v);
    return TERN_OK;
}

static tern_status cfg_float(const json_t *cfg, const char *path, const char *key, double def, double lo,
                             double hi, float *out) {
    const json_t *v = json_object_get(cfg, key);
    double d = def;
    if (v && !json_is_null(v)) {
        if (!json_is_number(v)) {
            tern_log_error("%s: %s must be a number", path, key);
            return TERN_ERR_FORMAT;
        }
        d = json_number_value(v);
    }
    if (!(d >= lo && d <= hi)) {
        tern_log_error("%s: %s = %g is out of range [%g, %g]", path, key, d, lo, hi);
        return TERN_ERR_FORMAT;
    }
    *out = (float)d;
    return TERN_OK;
}

static const char *cfg_str(const json_t *cfg, const char *key) {
    return json_string_value(json_object_get(cfg, key));
}

static tern_status read_config(struct conv *c, const char *path) {
    json_t *cfg;
    tern_status st = tern_hf_json_load(path, 0, &cfg);
    if (st)
        return st;
    st = TERN_ERR_FORMAT;
    const char *arch = json_string_value(json_array_get(json_object_get(cfg, "architectures"), 0));
    const json_t *q = json_object_get(cfg, "quantization_config");
    const char *act = cfg_str(cfg, "hidden_act");
    const json_t *rope_scaling = json_object_get(cfg, "rope_scaling");
    if (!json_is_object(cfg) || !arch) {
        tern_log_error("%s: architectures[0] is missing", path);
        goto done;
    }
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (strcmp(families[i].hf_arch, arch) == 0)
            c->fam = &families[i];
    if (!c->fam) {
        tern_log_error(
            "%s: architectures[0] \"%.64s\" is not supported (BitNetForCausalLM, BitnetForCausalLM, "
            "LlamaForCausalLM)",
            path, arch);
        st = TERN_ERR_UNSUPPORTED;
        goto done;
    }
    const int big = 1 << 24;
    st = cfg_int(cfg, path, "num_hidden_layers", true, 0, 1, 4096, &c->n_layer);
    if (st)
        goto done;
    st = cfg_int(cfg, path, "hidden_size", true, 0, 1, big, &c->n_embd);
    if (st)
        goto done;
    st = cfg_int(cfg, path, "intermediate_size", true, 0, 1, big, &c->n_ff);
    if (st)
        goto done;
    st = cfg_int(cfg, path, "num_attention_heads", true, 0, 1, 4096, &c->n_head);
    if (st)
        goto done;
    st = cfg_int(cfg, path, "num_key_value_heads", false, c->n_head, 1, c->n_head, &c->n_head_kv);
    if (st)
        goto done;
    st = cfg_int(cfg, path, "vocab_size", true, 0, 1, big, &c->n_vocab);
    if (st)
        goto done;
    st = cfg_int(cfg, path, "max_position_embeddings", false, 4096, 1, big, &c->n_ctx);
    if (st)
        goto done;
    st = cfg_float(cfg, path, "rms_norm_eps", 1e-6, 0.0, 1.0, &c->eps);
    if (st)
        goto done;
    st = cfg_float(cfg, path, "rope_theta", 10000.0, 1.0, 1e12, &c->theta);
    if (st)
        goto done;
    st = TERN_ERR_FORMAT;
    if (c->n_head % c->n_head_kv != 0) {
        tern_log_error("%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", path,
                       c->n_head, c->n_head_kv);
        goto done;
    }
    st = cfg_int(cfg, path, "head_dim", false, c->n_embd / c->n_head, 2, 65536, &c->head_dim);
    if (st)
        goto done;
    st = TERN_ERR_FORMAT;
    if (c->head_dim % 2 != 0 || (!json_object_get(cfg, "head_dim") && c->n_embd % c->n_head != 0)) {
        tern_log_error("%s: head dimension %d (hidden_size / num_attention_heads) is not a whole even number",
                       path, c->head_dim);
        goto done;
    }
    if (act && strcmp(act, c->fam->act) != 0) {
        tern_log_error("%s: hidden_act \"%.32s\" does not match %s, which uses %s", path, act, arch,
                       c->fam->act);
        st = TERN_ERR_UNSUPPORTED;
        goto done;
    }
    if (rope_scaling && !json_is_null(rope_scaling)) {
        tern_log_error("%s: rope_scaling is not supported", path);
        st = TERN_ERR_UNSUPPORTED;
        goto done;
    }
    if (q && !json_is_null(q)) {
        const char *method = cfg_str(q, "quant_method"), *cls = cfg_str(q, "linear_class");
        if (!method || strcmp(method, "bitnet") != 0) {
            tern_log_error("%s: quantization_config.quant_method \"%.32s\" is not supported (only bitnet)",
                           path, method ? method : "(missing)");
            st = TERN_ERR_UNSUPPORTED;
            goto done;
        }
        if (cls && strcmp(cls, "autobitlinear") != 0 && strcmp(cls, "bitlinear") != 0) {
            tern_log_error("%s: quantization_config.linear_class \"%.32s\" is not supported (autobitlinear, "
                           "bitlinear)",
                           path, cls);
            st = TERN_ERR_UNSUPPORTED;
            goto done;
        }
        c->quantized = true;
        /* transformers' BitLinear divides its output by weight_scale; AutoBitLinear multiplies */
        c->scale_is_inverse = !cls || strcmp(cls, "bitlinear") == 0;
    }
    st = TERN_OK;
done:
    json_decref(cfg);
    return st;
}

/* ---- planning: every tensor found and checked before anything is written ---- */

static tern_status need(struct conv *c, const char *name, const struct tern_st_tensor **out) {
    *out = tern_safetensors_find(c->st, name);
    if (!*out) {
        tern_log_error("%s: tensor %s is missing from the checkpoint", c->p->hf_dir, name);
        return TERN_ERR_FORMAT;
    }
    return TERN_OK;
}

static bool is_float(const struct tern_st_tensor *t) {
    return t->dtype == TERN_ST_F32 || t->dtype == TERN_ST_F16 || t->dtype == TERN_ST_BF16;
}

static tern_status bad_shape(struct conv *c, const struct tern_st_tensor *t, const char *want) {
    tern_log_error("%s: tensor %s has dtype %s and %d dimensions [%lld, %lld], expected %s",
                   tern_safetensors_file(c->st, t->file), t->name, t->dtype_name, t->n_dims,
                   (long long)t->shape[0], (long long)(t->n_dims > 1 ? t->shape[1] : 0), want);
    return TERN_ERR_FORMAT;
}

static struct job *add_job(struct conv *c, enum job_kind kind, const char *name, uint32_t type, int64_t ne0,
                           int64_t ne1) {
    struct job *j = &c->jobs[c->n_jobs++];
    memset(j, 0, sizeof *j);
    j->c = c;
    j->kind = kind;
    snprintf(j->name, sizeof j->name, "%s", name);
    j->type = type;
    j->ne0 = ne0;
    j->ne1 = ne1;
    return j;
}

static tern_status plan_vector(struct conv *c, const char *hf, const char *gguf, int64_t n) {
    const struct tern_st_tensor *t;
    tern_status st = need(c, hf, &t);
    if (st)
        return st;
    if (!is_float(t) || t->n_elem != (uint64_t)n || t->n_dims != 1) {
        char want[64];
        snprintf(want, sizeof want, "a float vector of %lld", (long long)n);
        return bad_shape(c, t, want);
    }
    add_job(c, JOB_NORM, gguf, TERN_TYPE_F32, n, 1)->src = t;
    return TERN_OK;
}

static tern_status plan_matrix(struct conv *c, const struct tern_st_tensor *t, const char *gguf) {
    if (!is_float(t) || t->n_dims != 2 || t->shape[0] != c->n_vocab || t->shape[1] != c->n_embd) {
        char want[96];
        snprintf(want, sizeof want, "a float matrix [%d, %d]", c->n_vocab, c->n_embd);
        return bad_shape(c, t, want);
    }
    const int64_t ne[2] = {c->n_embd, c->n_vocab};
    uint64_t nb;
    tern_status st = tern_type_nbytes(c->p->embd_type, 2, ne, &nb);
    if (st) {
        tern_log_error("--embd %s: tensor %s has rows of %d values, not a multiple of the type's block",
                       tern_type_name(c->p->embd_type), t->name, c->n_embd);
        return TERN_ERR_SHAPE;
    }
    add_job(c, JOB_MATRIX, gguf, c->p->embd_type, c->n_embd, c->n_vocab)->src = t;
    return TERN_OK;
}

static tern_status plan_linear(struct conv *c, const char *hf, const char *gguf, int64_t n_in, int64_t n_out,
                               int perm_heads) {
    const struct tern_st_tensor *t, *s = NULL;
    tern_status st = need(c, hf, &t);
    if (st)
        return st;
    char want[160];
    if (t->dtype == TERN_ST_U8) {
        /* packed: four rows per byte, [out/4, in], with a scalar weight_scale beside it */
        snprintf(want, sizeof want, "U8 [%lld, %lld] (packed ternary)", (long long)(n_out / 4),
                 (long long)n_in);
        if (n_out % 4 != 0 || t->n_dims != 2 || t->shape[0] != n_out / 4 || t->shape[1] != n_in)
            return bad_shape(c, t, want);
        char sname[192];
        snprintf(sname, sizeof sname, "%.*s_scale", (int)strlen(hf), hf);
        st = need(c, sname, &s);
        if (st)
            return st;
        if (!is_float(s) || s->n_elem != 1)
            return bad_shape(c, s, "one float (the weight scale)");
    } else if (is_float(t)) {
        snprintf(want, sizeof want, "[%lld, %lld]", (long long)n_out, (long long)n_in);
        if (t->n_dims != 2 || t->shape[0] != n_out || t->shape[1] != n_in)
            return bad_shape(c, t, want);
    } else {
        return bad_shape(c, t, "U8 (packed ternary), F32, F16 or BF16");
    }
    const uint32_t type = c->p->linear_type;
    if (type == TERN_TYPE_I2_S ? (n_in * n_out) % 128 != 0 : n_in % 256 != 0) {
        tern_log_error("--type %s: tensor %s has %lld x %lld weights; %s", tern_type_name(type), hf,
                       (long long)n_out, (long long)n_in,
                       type == TERN_TYPE_I2_S ? "I2_S needs a multiple of 128"
                                              : "TQ rows must be multiples of 256 (use --type i2_s)");
        return TERN_ERR_SHAPE;
    }
    struct job *j = add_job(c, JOB_LINEAR, gguf, type, n_in, n_out);
    j->src = t;
    j->scale = s;
    j->perm_heads = perm_heads;
    return TERN_OK;
}

static tern_status plan(struct conv *c) {
    const int n_per_layer = 13;
    if (!(c->jobs = calloc((size_t)c->n_layer * n_per_layer + 3, sizeof *c->jobs)))
        return TERN_ERR_NOMEM;
    const struct tern_st_tensor *e, *head;
    tern_status st = need(c, "model.embed_tokens.weight", &e);
    if (st)
        return st;
    st = plan_matrix(c, e, "token_embd.weight");
    if (st)
        return st;
    const int64_t n_q = (int64_t)c->n_head * c->head_dim, n_kv = (int64_t)c->n_head_kv * c->head_dim;
    const bool perm = c->fam->permute_qk;
    for (int il = 0; il < c->n_layer; il++) {
        const struct {
            const char *hf, *gguf;
            int64_t in, out;
            int perm_heads;
        } lin[7] = {
            {"self_attn.q_proj", "attn_q", c->n_embd, n_q, perm ? c->n_head : 0},
            {"self_attn.k_proj", "attn_k", c->n_embd, n_kv, perm ? c->n_head_kv : 0},
            {"self_attn.v_proj", "attn_v", c->n_embd, n_kv, 0},
            {"self_attn.o_proj", "attn_output", n_q, c->n_embd, 0},
            {"mlp.gate_proj", "ffn_gate", c->n_embd, c->n_ff, 0},
            {"mlp.up_proj", "ffn_up", c->n_embd, c->n_ff, 0},
            {"mlp.down_proj", "ffn_down", c->n_ff, c->n_embd, 0},
        };
        char hf[160], gguf[96];
        snprintf(hf, sizeof hf, "model.layers.%d.input_layernorm.weight", il);
        snprintf(gguf, sizeof gguf, "blk.%d.attn_norm.weight", il);
        st = plan_vector(c, hf, gguf, c->n_embd);
        if (st)
            return st;
        for (int i = 0; i < 7; i++) {
            snprintf(hf, sizeof hf, "model.layers.%d.%s.weight", il, lin[i].hf);
            snprintf(gguf, sizeof gguf, "blk.%d.%s.weight", il, lin[i].gguf);
            st = plan_linear(c, hf, gguf, lin[i].in, lin[i].out, lin[i].perm_heads);
            if (st)
                return st;
            if (i == 3 && c->fam->attn_sub) {
                snprintf(hf, sizeof hf, "model.layers.%d.%s.weight", il, c->fam->attn_sub);
                snprintf(gguf, sizeof gguf, "blk.%d.attn_sub_norm.weight", il);
                st = plan_vector(c, hf, gguf, n_q);
                if (st)
                    return st;
            }
            if (i == 3) {
                snprintf(hf, sizeof hf, "model.layers.%d.post_attention_layernorm.weight", il);
                snprintf(gguf, sizeof gguf, "blk.%d.ffn_norm.weight", il);
                st = plan_vector(c, hf, gguf, c->n_embd);
                if (st)
                    return st;
            }
        }
        if (c->fam->ffn_sub) {
            snprintf(hf, sizeof hf, "model.layers.%d.%s.weight", il, c->fam->ffn_sub);
            snprintf(gguf, sizeof gguf, "blk.%d.ffn_sub_norm.weight", il);
            st = plan_vector(c, hf, gguf, c->n_ff);
            if (st)
                return st;
        }
    }
    st = plan_vector(c, "model.norm.weight", "output_norm.weight", c->n_embd);
    if (st)
        return st;
    /* a separate head only when the checkpoint has one (a tied model stores none) */
    head = tern_safetensors_find(c->st, "lm_head.weight");
    if (head) {
        st = plan_matrix(c, head, "output.weight");
        if (st)
            return st;
    }
    return TERN_OK;
}

/* ---- producing tensors ---- */

static uint32_t gguf_float_type(enum tern_st_dtype d) {
    return d == TERN_ST_F32 ? TERN_TYPE_F32 : d == TERN_ST_F16 ? TERN_TYPE_F16 : TERN_TYPE_BF16;
}

static float float_at(enum tern_st_dtype d, const uint8_t *p, uint64_t i) {
    if (d == TERN_ST_F32) {
        uint32_t b;
        memcpy(&b, p + 4 * i, 4);
        return tern_f32_from_bits(b);
    }
    const uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
    return d == TERN_ST_F16 ? tern_fp16_to_fp32(h) : tern_bf16_to_fp32(h);
}

/* Packed HF weight [out/4, in]: bits 2i..2i+1 of byte [r][c] hold row i*(out/4) + r, column c, as t+1. */
static tern_status unpack_hf(uint8_t *packed, const uint8_t *src, const struct job *j) {
    const int64_t q = j->ne1 / 4, row_bytes = tern_ternary_k_pad(j->ne0) / 4;
    tern_packed_fill_zero(packed, j->ne0, j->ne1);
    for (int64_t r = 0; r < q; r++)
        for (int64_t col = 0; col < j->ne0; col++) {
            const uint8_t b = src[r * j->ne0 + col];
            for (int i = 0; i < 4; i++) {
                const int code = (b >> (2 * i)) & 3;
                if (code == 3) {
                    tern_log_error("%s: tensor %s holds the invalid ternary code 3 (row %lld, column %lld)",
                                   tern_safetensors_file(j->c->st, j->src->file), j->src->name,
                                   (long long)(i * q + r), (long long)col);
                    return TERN_ERR_FORMAT;
                }
                tern_packed_set(packed + (i * q + r) * row_bytes, col, code);
            }
        }
    return TERN_OK;
}

static tern_status fill_linear(struct job *j, void *dst) {
    struct conv *c = j->c;
    const int64_t row_bytes = tern_ternary_k_pad(j->ne0) / 4;
    uint8_t *src = malloc(j->src->nbytes ? j->src->nbytes : 1);
    uint8_t *packed = malloc((size_t)(row_bytes * j->ne1));
    uint8_t *perm = j->perm_heads ? malloc((size_t)(row_bytes * j->ne1)) : NULL;
    tern_status st = TERN_ERR_NOMEM;
    float scale = 0.0f;
    if (!src || !packed || (j->perm_heads && !perm))
        goto done;
    st = tern_safetensors_read(c->st, j->src, src);
    if (st)
        goto done;
    if (j->scale) {
        uint8_t sb[4];
        st = tern_safetensors_read(c->st, j->scale, sb);
        if (st)
            goto done;
        const float ws = float_at(j->scale->dtype, sb, 0);
        scale = c->scale_is_inverse ? 1.0f / ws : ws;
        if (!isfinite(scale) || ws == 0.0f) {
            tern_log_error("%s: tensor %s is not a finite non-zero scale", c->p->hf_dir, j->scale->name);
            st = TERN_ERR_FORMAT;
            goto done;
        }
        st = unpack_hf(packed, src, j);
    } else {
        bool absmean;
        st = tern_float_to_packed(packed, &scale, &absmean, gguf_float_type(j->src->dtype), src,
                                  j->src->nbytes, j->ne0, j->ne1, j->src->name);
        c->n_absmean += absmean;
    }
    if (st)
        goto done;
    if (j->perm_heads) {
        /* HF rotates half-split pairs (i, i + hd/2); a llama file pairs adjacent rows (2i, 2i+1):
         * GGUF row h*hd + 2i + s is HF row h*hd + s*hd/2 + i */
        const int64_t hd = j->ne1 / j->perm_heads;
        for (int64_t h = 0; h < j->perm_heads; h++)
            for (int64_t i = 0; i < hd / 2; i++)
                for (int64_t s = 0; s < 2; s++)
                    memcpy(perm + (h * hd + 2 * i + s) * row_bytes,
                           packed + (h * hd + s * hd / 2 + i) * row_bytes, (size_t)row_bytes);
        uint8_t *t = packed;
        packed = perm;
        perm = t;
    }
    if (j->type == TERN_TYPE_I2_S)
        st = tern_packed_to_i2s(dst, packed, j->ne0, j->ne1, scale);
    else
        st = tern_packed_to_tq(dst, j->type, packed, j->ne0, j->ne1, scale);
done:
    if (st == TERN_ERR_NOMEM)
        tern_log_error("out of memory converting %s", j->src->name);
    free(src);
    free(packed);
    free(perm);
    return st;
}

/* Norms and embedding-like matrices: read a few MiB of rows at a time (the output tensor is the
 * only whole-tensor buffer), check each value, write F32 or quantize. */
static tern_status fill_float(struct job *j, void *dst) {
    struct conv *c = j->c;
    const uint64_t src_row = j->src->nbytes / (uint64_t)j->ne1;
    const int64_t rows_per_read =
        src_row >= ((uint64_t)4 << 20) ? 1 : (int64_t)(((uint64_t)4 << 20) / src_row);
    const int64_t n_buf = rows_per_read < j->ne1 ? rows_per_read : j->ne1;
    uint8_t *src = malloc((size_t)(src_row * (uint64_t)n_buf));
    float *row = malloc((size_t)j->ne0 * sizeof *row);
    const int64_t ne[2] = {j->ne0, 1};
    uint64_t out_row = 0;
    tern_status st = tern_type_nbytes(j->type, 2, ne, &out_row);
    if (st)
        goto done;
    if (!src || !row) {
        tern_log_error("out of memory converting %s", j->src->name);
        st = TERN_ERR_NOMEM;
        goto done;
    }
    for (int64_t r0 = 0; r0 < j->ne1; r0 += n_buf) {
        const int64_t n = j->ne1 - r0 < n_buf ? j->ne1 - r0 : n_buf;
        st = tern_safetensors_read_part(c->st, j->src, (uint64_t)r0 * src_row, (uint64_t)n * src_row, src);
        if (st)
            goto done;
        for (int64_t r = 0; r < n; r++) {
            for (int64_t k = 0; k < j->ne0; k++) {
                row[k] = float_at(j->src->dtype, src, (uint64_t)(r * j->ne0 + k));
                if (!isfinite(row[k])) {
                    tern_log_error("%s: tensor %s holds a non-finite value at row %lld", c->p->hf_dir,
                                   j->src->name, (long long)(r0 + r));
                    st = TERN_ERR_FORMAT;
                    goto done;
                }
            }
            st = tern_quantize_row((uint8_t *)dst + (size_t)((r0 + r) * (int64_t)out_row), j->type, row,
                                   j->ne0);
            if (st)
                goto done;
        }
    }
done:
    free(src);
    free(row);
    return st;
}

static tern_status fill(void *dst, uint64_t nbytes, void *user) {
    (void)nbytes;
    struct job *j = user;
    tern_status st = j->kind == JOB_LINEAR ? fill_linear(j, dst) : fill_float(j, dst);
    if (st)
        return st;
    if (j->c->p->progress)
        j->c->p->progress(++j->c->done, j->c->n_jobs, j->c->p->progress_user);
    return TERN_OK;
}

/* ---- metadata ---- */

static tern_status write_hparams(const struct conv *c, tern_gguf_writer *w, const char *name) {
    const char *a = c->fam->gguf_arch;
    char key[128];
    const uint32_t ftype = c->p->linear_type == TERN_TYPE_I2_S    ? 40
                           : c->p->linear_type == TERN_TYPE_TQ2_0 ? 37
                                                                  : 36; /* llama.cpp / bitnet.cpp ftypes */
    tern_status st = tern_gguf_writer_set_str(w, "general.architecture", a);
    if (st)
        return st;
    st = tern_gguf_writer_set_str(w, "general.name", name);
    if (st)
        return st;
    st = tern_gguf_writer_set_u32(w, "general.file_type", ftype);
    if (st)
        return st;
    const struct {
        const char *suffix;
        int value;
    } ints[] = {
        {"block_count", c->n_layer},           {"context_length", c->n_ctx},
        {"embedding_length", c->n_embd},       {"feed_forward_length", c->n_ff},
        {"attention.head_count", c->n_head},   {"attention.head_count_kv", c->n_head_kv},
        {"attention.key_length", c->head_dim}, {"attention.value_length", c->head_dim},
        {"rope.dimension_count", c->head_dim}, {"vocab_size", c->n_vocab},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        snprintf(key, sizeof key, "%s.%s", a, ints[i].suffix);
        st = tern_gguf_writer_set_u32(w, key, (uint32_t)ints[i].value);
        if (st)
            return st;
    }
    snprintf(key, sizeof key, "%s.rope.freq_base", a);
    st = tern_gguf_writer_set_f32(w, key, c->theta);
    if (st)
        return st;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", a);
    return tern_gguf_writer_set_f32(w, key, c->eps);
}

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p)
        snprintf(p, a + b + 2, "%s/%s", dir, name);
    return p;
}

tern_status tern_convert(const struct tern_convert_params *p) {
    if (p->linear_type != TERN_TYPE_I2_S && p->linear_type != TERN_TYPE_TQ2_0 &&
        p->linear_type != TERN_TYPE_TQ1_0)
        return TERN_ERR_ARG;
    if (p->embd_type != TERN_TYPE_F16 && p->embd_type != TERN_TYPE_Q8_0 && p->embd_type != TERN_TYPE_Q6_K)
        return TERN_ERR_ARG;
    struct conv c = {.p = p};
    struct tern_hf_vocab *v = NULL;
    tern_gguf_writer *w = NULL;
    char *cfg_path = join(p->hf_dir, "config.json"), *tok_path = join(p->hf_dir, "tokenizer.json");
    tern_status st = TERN_ERR_NOMEM;
    if (!cfg_path || !tok_path)
        goto done;
    st = read_config(&c, cfg_path);
    if (st)
        goto done;
    /* the checkpoint's shapes before the vocabulary is padded to vocab_size: a config.json whose
     * vocab_size the embedding does not have fails at once, not after padding up to 2^24 tokens */
    st = tern_safetensors_create(p->hf_dir, &c.st);
    if (st)
        goto done;
    st = plan(&c);
    if (st)
        goto done;
    st = tern_hf_vocab_create(tok_path, &v);
    if (st)
        goto done;
    if (v->n_tokens > c.n_vocab) {
        tern_log_error("%s: %d tokens, more than config.json's vocab_size %d", tok_path, v->n_tokens,
                       c.n_vocab);
        st = TERN_ERR_FORMAT;
        goto done;
    }
    st = tern_hf_vocab_pad(v, c.n_vocab);
    if (st)
        goto done;
    st = tern_gguf_writer_create(&w);
    if (st)
        goto done;
    const char *base = strrchr(p->hf_dir, '/');
    base = base && base[1] ? base + 1 : p->hf_dir;
    st = write_hparams(&c, w, base);
    if (st)
        goto done;
    st = tern_hf_vocab_write(v, w);
    if (st)
        goto done;
    for (int i = 0; i < c.n_jobs; i++) {
        const struct job *j = &c.jobs[i];
        const int64_t ne[2] = {j->ne0, j->ne1};
        uint64_t nb;
        const int n_dims = j->kind == JOB_NORM ? 1 : 2;
        st = tern_type_nbytes(j->type, n_dims, ne, &nb);
        if (st)
            goto done;
        st = tern_gguf_writer_add_tensor_fill(w, j->name, j->type, n_dims, ne, nb, fill, &c.jobs[i]);
        if (st)
            goto done;
    }
    st = tern_gguf_writer_write(w, p->out_path);
    if (st)
        goto done;
    /* BitNet masters were trained through absmean; a plain Llama checkpoint was not */
    if (!c.quantized && !c.fam->attn_sub && c.n_absmean)
        tern_log_warn(
            "%s: %d linear weights of this full-precision LlamaForCausalLM checkpoint were ternarized "
            "with absmean after training: quality drops without ternary-aware training",
            p->hf_dir, c.n_absmean);
done:
    if (st == TERN_ERR_NOMEM)
        tern_log_error("%s: out of memory", p->hf_dir);
    tern_gguf_writer_free(w);
    tern_safetensors_free(c.st);
    tern_hf_vocab_free(v);
    free(c.jobs);
    free(cfg_path);
    free(tok_path);
    return st;
}
