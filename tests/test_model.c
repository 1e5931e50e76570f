/* Whole-model tests on random models from the maker: one model written as I2_S, TQ2_0 and TQ1_0
 * gives identical logits; odd shapes (the 1bitLLM 3B widths, K not a multiple of 128) load through
 * the repacking path and run; every architecture variant runs; inconsistent files are rejected. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels.h"
#include "cpu/ref.h"
#include "harness.h"
#include "host/model/maker.h"
#include "host/model/ternary.h"
#include "host/tern.h"
#include "host/tokenizer/tokenizer_internal.h"
#include "scheduler/fp16.h"

/* One BitLinear of the reference: per-token int8 quantization of x, exact ternary product. */
static void ref_bitlinear(float *y, const struct tern_ternary *w, const float *x, int8_t *q8) {
    const float act_scale = tern_ref_quantize_act(q8, x, w->n_in, w->k_pad, NULL);
    tern_ref_ternary_matmul(y, w, q8, &act_scale, 1, 0, w->n_out);
}

/* The forward pass written top-down from the scalar reference kernels (cpu/ref.h), one token at a
 * time: logits[n][n_vocab] of every position of tokens[n]. The oracle of the whole-model tests: a
 * bug of the devices' staged, batched, threaded code does not cancel out against it. */
static float *ref_forward(const struct tern_model_view *v, const int32_t *tokens, int n) {
    const struct tern_hparams *hp = &v->hp;
    const int64_t n_embd = hp->n_embd, n_ff = hp->n_ff, n_q = (int64_t)hp->n_head * hp->head_dim,
                  n_kv = (int64_t)hp->n_head_kv * hp->head_dim, nv = hp->n_vocab;
    const int64_t wide =
        tern_ternary_k_pad(n_ff > n_q ? (n_ff > n_embd ? n_ff : n_embd) : (n_q > n_embd ? n_q : n_embd));
    float *x = malloc(sizeof(float) * (size_t)n_embd), *xn = malloc(sizeof(float) * (size_t)wide);
    float *q = malloc(sizeof(float) * (size_t)n_q), *k = malloc(sizeof(float) * (size_t)n_kv);
    float *val = malloc(sizeof(float) * (size_t)n_kv), *att = malloc(sizeof(float) * (size_t)n_q);
    float *o = malloc(sizeof(float) * (size_t)n_embd), *g = malloc(sizeof(float) * (size_t)n_ff);
    float *u = malloc(sizeof(float) * (size_t)n_ff),
          *scratch = malloc(sizeof(float) * (size_t)(hp->head_dim + n));
    int8_t *q8 = malloc((size_t)wide);
    /* K in the attention's block layout (cpu/kernels.h), a whole block's room a layer */
    const size_t k_layer = (size_t)tern_k_elems(n, n_kv),
                 cache = (size_t)hp->n_layer * (size_t)n * (size_t)n_kv;
    uint16_t *kc = calloc((size_t)hp->n_layer * k_layer, sizeof(uint16_t)),
             *vc = malloc(sizeof(uint16_t) * cache);
    float *logits = malloc(sizeof(float) * (size_t)n * (size_t)nv);
    for (int pos = 0; pos < n; pos++) {
        tern_ref_dequant_row(x,
                             (const uint8_t *)v->tok_embd.data + (size_t)tokens[pos] * v->tok_embd.row_bytes,
                             v->tok_embd.type, n_embd);
        for (int il = 0; il < hp->n_layer; il++) {
            const struct tern_layer_weights *L = &v->layers[il];
            uint16_t *lk = kc + (size_t)il * k_layer, *lv = vc + (size_t)il * (size_t)n * (size_t)n_kv;
            tern_ref_rmsnorm(xn, x, L->attn_norm, n_embd, hp->norm_eps);
            ref_bitlinear(q, &L->wq, xn, q8);
            ref_bitlinear(k, &L->wk, xn, q8);
            ref_bitlinear(val, &L->wv, xn, q8);
            tern_ref_rope(q, hp->n_head, hp->head_dim, hp->n_rot, pos, hp->rope_theta, hp->rope_style);
            tern_ref_rope(k, hp->n_head_kv, hp->head_dim, hp->n_rot, pos, hp->rope_theta, hp->rope_style);
            for (int64_t i = 0; i < n_kv; i++) {
                lk[tern_k_index(pos, n_kv, i)] = tern_fp32_to_fp16(k[i]);
                lv[(size_t)pos * (size_t)n_kv + (size_t)i] = tern_fp32_to_fp16(val[i]);
            }
            tern_ref_attention(att, q, lk, lv, n_kv, pos, hp->n_head, hp->n_head_kv, hp->head_dim, false,
                               scratch);
            if (hp->has_sub_norms)
                tern_ref_rmsnorm(att, att, L->attn_sub_norm, n_q, hp->norm_eps);
            ref_bitlinear(o, &L->wo, att, q8);
            for (int64_t i = 0; i < n_embd; i++)
                x[i] += o[i];
            tern_ref_rmsnorm(xn, x, L->ffn_norm, n_embd, hp->norm_eps);
            ref_bitlinear(g, &L->wgate, xn, q8);
            ref_bitlinear(u, &L->wup, xn, q8);
            tern_ref_ffn_act(g, g, u, n_ff, hp->ffn_act);
            if (hp->has_sub_norms)
                tern_ref_rmsnorm(g, g, L->ffn_sub_norm, n_ff, hp->norm_eps);
            ref_bitlinear(o, &L->wdown, g, q8);
            for (int64_t i = 0; i < n_embd; i++)
                x[i] += o[i];
        }
        tern_ref_rmsnorm(xn, x, v->output_norm, n_embd, hp->norm_eps);
        tern_ref_matvec(logits + (size_t)pos * (size_t)nv, &v->output, xn, 0, nv);
    }
    free(x), free(xn), free(q), free(k), free(val), free(att), free(o), free(g), free(u), free(scratch);
    free(q8), free(kc), free(vc);
    return logits;
}

/* Normalized mean squared error of got against ref over n values (infinite on NaN). */
static double nmse(const float *ref, const float *got, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)got[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    return num == num ? num / (den > 0.0 ? den : 1.0) : INFINITY;
}

enum { N_PROMPT = 5 };

/* Logits after each of a few prompt tokens and greedy steps: n_steps x n_vocab floats. When
 * ref_nmse is not NULL, the same tokens also run through ref_forward, and it gets the worst NMSE
 * of tern's logits against the reference's. */
static float *run_logits_ref(const char *path, int n_steps, int *n_vocab, double *ref_nmse) {
    tern_model *m = NULL;
    tern_session *s = NULL;
    float *all = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(path, &m));
    if (!m)
        return NULL;
    const int nv = tern_model_view(m)->hp.n_vocab;
    struct tern_session_params sp = {.n_ctx = 64, .device = "cpu"};
    CHECK_STATUS(TERN_OK, tern_session_create(m, &sp, &s));
    all = malloc((size_t)n_steps * (size_t)nv * sizeof(float));
    int32_t tokens[N_PROMPT + 64] = {nv - 2, 72, 101, 108, 33}; /* BOS and a few byte tokens */
    if (s && all && n_steps <= 64) {
        const float *logits;
        CHECK_STATUS(TERN_OK, tern_session_eval(s, tokens, N_PROMPT, &logits));
        memcpy(all, logits, (size_t)nv * sizeof(float));
        for (int step = 1; step < n_steps; step++) {
            int32_t best = 0;
            for (int i = 1; i < nv; i++)
                if (logits[i] > logits[best])
                    best = i;
            tokens[N_PROMPT + step - 1] = best;
            CHECK_STATUS(TERN_OK, tern_session_eval(s, &best, 1, &logits));
            memcpy(all + (size_t)step * nv, logits, (size_t)nv * sizeof(float));
        }
        if (ref_nmse) {
            float *ref = ref_forward(tern_model_view(m), tokens, N_PROMPT + n_steps - 1);
            *ref_nmse = 0.0;
            for (int step = 0; step < n_steps; step++) {
                const double e =
                    nmse(ref + (size_t)(N_PROMPT - 1 + step) * nv, all + (size_t)step * nv, (size_t)nv);
                *ref_nmse = e > *ref_nmse ? e : *ref_nmse;
            }
            free(ref);
        }
    }
    *n_vocab = nv;
    tern_session_free(s);
    tern_model_free(m);
    return all;
}

static float *run_logits(const char *path, int n_steps, int *n_vocab) {
    return run_logits_ref(path, n_steps, n_vocab, NULL);
}

/* Float parts may differ from the reference in the last bits, which can move one int8 activation
 * across a rounding boundary; a wrong op gives NMSE near 1. */
#define NMSE_REF 1e-4

static void check_nmse(const char *label, double e) {
    fprintf(stderr, "  %s: worst logits NMSE against the reference forward pass %.3g\n", label, e);
    if (!(e <= NMSE_REF))
        harness_fail(__FILE__, __LINE__, "%s: logits NMSE %.3g against the reference above %g", label, e,
                     NMSE_REF);
}

static void three_formats_identical_logits(void) {
    static const char *const names[3] = {"fmt-i2s.gguf", "fmt-tq2.gguf", "fmt-tq1.gguf"};
    static const uint32_t types[3] = {TERN_TYPE_I2_S, TERN_TYPE_TQ2_0, TERN_TYPE_TQ1_0};
    float *logits[3] = {0};
    int nv = 0;
    for (int f = 0; f < 3; f++) {
        struct tern_maker_params p;
        tern_maker_preset("tiny", &p);
        p.seed = 11;
        p.linear_type = types[f];
        CHECK_STATUS(TERN_OK, tern_maker_write(&p, test_tmp(names[f], 0)));
        double e = INFINITY;
        logits[f] = run_logits_ref(test_tmp(names[f], 0), 8, &nv, &e);
        check_nmse(names[f], e);
    }
    for (int f = 1; f < 3; f++)
        if (logits[0] && logits[f] && memcmp(logits[0], logits[f], (size_t)8 * nv * sizeof(float)) != 0)
            harness_fail(__FILE__, __LINE__, "%s logits differ from I2_S's", names[f]);
    /* and the model is not degenerate: logits vary */
    if (logits[0]) {
        float lo = logits[0][0], hi = logits[0][0];
        for (int i = 0; i < nv; i++)
            lo = fminf(lo, logits[0][i]), hi = fmaxf(hi, logits[0][i]);
        CHECK(hi - lo > 1.0f);
    }
    for (int f = 0; f < 3; f++)
        free(logits[f]);
}

static void conformance_vectors_tq_formats_agree(void) {
    /* llama.cpp's TQ2_0 and TQ1_0 files of one model (arch bitnet) must run identically */
    int nv = 0;
    float *a = run_logits(test_data("vectors/mini-bitnet-tq2.gguf", 0), 6, &nv);
    float *b = run_logits(test_data("vectors/mini-bitnet-tq1.gguf", 0), 6, &nv);
    CHECK(a && b && memcmp(a, b, (size_t)6 * nv * sizeof(float)) == 0);
    free(a);
    free(b);
}

static void odd_shape_3b_widths(void) {
    /* n_embd 3200 (25 x 128) and n_ff 8640 (not a multiple of 128): ffn_down's I2_S stream does not
     * start its rows on block boundaries, so the loader repacks it with padded rows. */
    struct tern_maker_params p;
    CHECK_STATUS(TERN_OK, tern_maker_preset("3b", &p));
    p.n_layer = 1;
    p.n_vocab = 300;
    const char *path = test_tmp("odd-3b.gguf", 0);
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    tern_model *m = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(path, &m));
    if (!m)
        return;
    const struct tern_model_view *v = tern_model_view(m);
    const struct tern_ternary *down = &v->layers[0].wdown;
    CHECK_INT(8640, down->n_in);
    CHECK_INT(8704, down->k_pad);
    CHECK_INT(100, v->hp.head_dim);
    /* the repacked rows hold the file's codes, in order, and zero padding */
    const struct tern_gguf_tensor *t = tern_gguf_find_tensor(tern_model_gguf(m), "blk.0.ffn_down.weight");
    int bad = 0;
    for (int64_t r = 0; r < down->n_out && t; r += 777)
        for (int64_t j = 0; j < down->k_pad; j++) {
            int want = j < 8640 ? tern_packed_get(t->data, r * 8640 + j) : 1;
            bad += tern_packed_get(down->codes + r * down->row_bytes, j) != want;
        }
    CHECK_INT(0, bad);
    tern_model_free(m);
    int nv = 0;
    double e = INFINITY;
    float *l = run_logits_ref(path, 3, &nv, &e);
    CHECK(l != NULL);
    check_nmse("3b widths", e);
    free(l);
}

static void every_arch_runs(void) {
    static const char *const archs[4] = {"bitnet-b1.58", "bitnet-25", "bitnet", "llama"};
    float *first = NULL;
    for (int a = 0; a < 4; a++) {
        struct tern_maker_params p;
        tern_maker_preset("tiny", &p);
        p.arch = archs[a];
        p.seed = 5;
        const char *path = test_tmp("arch.gguf", 0);
        CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
        int nv = 0;
        double e = INFINITY;
        float *l = run_logits_ref(path, 2, &nv, &e);
        CHECK(l != NULL);
        check_nmse(archs[a], e);
        if (a == 0)
            first = l;
        else if (l && first) {
            /* bitnet-25 is the same graph as bitnet-b1.58; the others differ (SiLU, RoPE, sub-norms) */
            const bool same = memcmp(first, l, (size_t)2 * nv * sizeof(float)) == 0;
            if (same != (a == 1))
                harness_fail(__FILE__, __LINE__, "arch %s: logits %s those of bitnet-b1.58", archs[a],
                             same ? "equal" : "differ from");
            free(l);
        }
    }
    free(first);
}

static int n_errors;
static char last_error[1024];
static void count_errors(enum tern_log_level level, const char *msg, void *user) {
    (void)user;
    if (level == TERN_LOG_ERROR) {
        n_errors++;
        snprintf(last_error, sizeof last_error, "%s", msg);
        fprintf(stderr, "    (logged: %s)\n", msg);
    }
}

static void expect_open_fails(const char *path, tern_status want) {
    n_errors = 0;
    last_error[0] = 0;
    tern_log_set_callback(count_errors, NULL);
    tern_model *m = NULL;
    CHECK_STATUS(want, tern_model_create(path, &m));
    CHECK(m == NULL);
    tern_model_free(m);
    CHECK_INT(1, n_errors);
    tern_log_set_callback(NULL, NULL);
}

/* expect_open_fails, and the one line names `what` (a tensor or key). */
static void expect_open_fails_naming(const char *path, tern_status want, const char *what) {
    expect_open_fails(path, want);
    if (!strstr(last_error, what))
        harness_fail(__FILE__, __LINE__, "the error does not name %s: %s", what, last_error);
}

/* Overwrite n bytes at byte `at` of tensor `name` in a model file. */
static void patch_tensor(const char *path, const char *name, uint64_t at, const void *bytes, size_t n) {
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    uint8_t *buf = malloc((size_t)size);
    rewind(f);
    CHECK(buf && fread(buf, 1, (size_t)size, f) == (size_t)size);
    tern_gguf *g = NULL;
    CHECK_STATUS(TERN_OK, tern_gguf_create_from_memory(buf, (size_t)size, path, &g));
    const struct tern_gguf_tensor *t = g ? tern_gguf_find_tensor(g, name) : NULL;
    CHECK(t && at + n <= t->nbytes);
    if (t && at + n <= t->nbytes) {
        fseek(f, (long)(t->data - buf + (long)at), SEEK_SET);
        CHECK_INT(n, fwrite(bytes, 1, n, f));
    }
    tern_gguf_free(g);
    free(buf);
    fclose(f);
}

static void non_finite_weights_refused(void) {
    /* a NaN norm weight or embedding value would run to garbage with exit code 0 */
    struct tern_maker_params p;
    tern_maker_preset("tiny", &p);
    const char *path = test_tmp("nonfinite.gguf", 0);
    const float nan = NAN, inf = -INFINITY;
    const uint16_t f16_inf = 0x7c00, f16_nan = 0xfe01, bf16_nan = 0x7fc0;
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    patch_tensor(path, "blk.1.attn_norm.weight", 4 * 255, &nan, 4);
    expect_open_fails_naming(path, TERN_ERR_FORMAT, "blk.1.attn_norm.weight");
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    patch_tensor(path, "output_norm.weight", 0, &inf, 4);
    expect_open_fails_naming(path, TERN_ERR_FORMAT, "output_norm.weight");
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    patch_tensor(path, "token_embd.weight", 2 * (511 * 256 + 255), &f16_inf, 2); /* the last value */
    expect_open_fails_naming(path, TERN_ERR_FORMAT, "token_embd.weight");
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    patch_tensor(path, "token_embd.weight", 2 * 1000, &f16_nan, 2);
    expect_open_fails_naming(path, TERN_ERR_FORMAT, "token_embd.weight");
    /* the largest finite values load */
    const uint16_t f16_max = 0x7bff;
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    patch_tensor(path, "token_embd.weight", 2 * 77, &f16_max, 2);
    tern_model *m = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(path, &m));
    tern_model_free(m);
    /* block types: the f16 scales (Q8_0's d at byte 0, Q4_K's dmin at 2, Q6_K's d at 208) */
    struct {
        uint32_t type;
        uint64_t at;
        uint16_t bits;
    } blocks[4] = {{TERN_TYPE_Q8_0, 34 * 9, f16_inf},
                   {TERN_TYPE_Q4_K, 144 * 3 + 2, f16_nan},
                   {TERN_TYPE_Q6_K, 210 * 5 + 208, f16_inf},
                   {TERN_TYPE_BF16, 2 * 300, bf16_nan}};
    for (int i = 0; i < 4; i++) {
        struct tern_maker_params q = p;
        q.embd_type = blocks[i].type;
        CHECK_STATUS(TERN_OK, tern_maker_write(&q, path));
        patch_tensor(path, "token_embd.weight", blocks[i].at, &blocks[i].bits, 2);
        expect_open_fails_naming(path, TERN_ERR_FORMAT, "token_embd.weight");
    }
    /* a separate output head is checked too */
    struct tern_maker_params q = p;
    q.output_type = TERN_TYPE_F32;
    CHECK_STATUS(TERN_OK, tern_maker_write(&q, path));
    patch_tensor(path, "output.weight", 4 * 12345, &nan, 4);
    expect_open_fails_naming(path, TERN_ERR_FORMAT, "output.weight");
}

static void invalid_ternary_codes_refused(void) {
    struct tern_maker_params p;
    tern_maker_preset("tiny", &p);
    const char *path = test_tmp("badcodes.gguf", 0);
    /* I2_S used in place from the mapping: code 3 in the last byte of the codes */
    const uint8_t ff = 0xff, b3 = 0x5d; /* 01 01 11 01: one code 3 among zeros */
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    patch_tensor(path, "blk.1.ffn_down.weight", 256 * 512 / 4 - 1, &ff, 1);
    expect_open_fails_naming(path, TERN_ERR_FORMAT, "blk.1.ffn_down.weight");
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    patch_tensor(path, "blk.0.attn_q.weight", 4097, &b3, 1);
    expect_open_fails_naming(path, TERN_ERR_FORMAT, "blk.0.attn_q.weight");
    /* TQ1_0: a byte no base-3 digits encode, in qs and in qh (whose fifth digit must be 0) */
    int bad_qs = -1, bad_qh = -1;
    for (int b = 0; b < 256; b++) {
        uint8_t dig[5];
        for (int n = 0; n < 5; n++)
            dig[n] = (uint8_t)tern_tq1_0_digit((uint8_t)b, n);
        if (tern_tq1_0_pack5(dig) != b && bad_qs < 0)
            bad_qs = b;
        if (tern_tq1_0_pack5(dig) == b && dig[4] != 0 && bad_qh < 0)
            bad_qh = b;
    }
    CHECK(bad_qs >= 0 && bad_qh >= 0);
    p.linear_type = TERN_TYPE_TQ1_0;
    const uint8_t qs = (uint8_t)bad_qs, qh = (uint8_t)bad_qh;
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    patch_tensor(path, "blk.0.ffn_gate.weight", 54 * 17 + 40, &qs, 1);
    expect_open_fails_naming(path, TERN_ERR_FORMAT, "blk.0.ffn_gate.weight");
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    patch_tensor(path, "blk.1.attn_v.weight", 54 * 3 + 49, &qh, 1);
    expect_open_fails_naming(path, TERN_ERR_FORMAT, "blk.1.attn_v.weight");
}

/* Write the tiny model with its own vocabulary: the 256 byte tokens, n_long user-defined tokens of
 * 1500 + 7i letters (longer than any fixed text buffer) and the first two bytes of a three-byte
 * UTF-8 character (which the detokenizer holds back), then BOS and EOS. */
static void write_long_token_model(const char *path, int n_long) {
    struct tern_maker_params p;
    tern_maker_preset("tiny", &p);
    p.seed = 21;
    const int n = 256 + n_long + 2;
    char **tokens = calloc((size_t)n, sizeof *tokens);
    int32_t *types = malloc((size_t)n * sizeof *types);
    for (int i = 0; i < n; i++) {
        const int len = i < 256 ? 0 : 1500 + 7 * (i - 256);
        tokens[i] = calloc((size_t)len + 32, 1);
        types[i] = i < 256 ? TERN_TOKEN_NORMAL : TERN_TOKEN_USER_DEFINED;
        if (i < 256) {
            strcpy(tokens[i], tern_bpe_byte_char((uint8_t)i));
        } else {
            memset(tokens[i], 'a' + i % 26, (size_t)len);
            memcpy(tokens[i] + len, "\xE2\x82", 2);
        }
    }
    strcpy(tokens[n - 2], "<|begin_of_text|>");
    strcpy(tokens[n - 1], "<|end_of_text|>");
    types[n - 2] = types[n - 1] = TERN_TOKEN_CONTROL;
    tern_gguf_writer *w = NULL;
    tern_maker *mk = NULL;
    CHECK_STATUS(TERN_OK, tern_gguf_writer_create(&w));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_str(w, "tokenizer.ggml.pre", "llama-bpe"));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens",
                                                       (const char *const *)tokens, (uint64_t)n));
    CHECK_STATUS(TERN_OK,
                 tern_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", TERN_GGUF_I32, types, (uint64_t)n));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", NULL, 0));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)(n - 2)));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(n - 1)));
    CHECK_STATUS(TERN_OK, tern_maker_create(&p, w, &mk));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_write(w, path));
    tern_maker_free(mk);
    tern_gguf_writer_free(w);
    for (int i = 0; i < n; i++)
        free(tokens[i]);
    free(tokens);
    free(types);
}

struct text_sink {
    char *text;
    size_t len;
    int32_t ids[32];
    int n_ids;
};

static bool append_text(int32_t id, const char *text, size_t len, void *user) {
    struct text_sink *t = user;
    t->text = realloc(t->text, t->len + len);
    memcpy(t->text + t->len, text, len);
    t->len += len;
    if (id >= 0 && t->n_ids < 32)
        t->ids[t->n_ids++] = id;
    return true;
}

/* Drop the bytes >= 0x80 of s[n] in place; the new length. */
static size_t ascii_only(char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x80)
            s[k++] = s[i];
    return k;
}

static void long_token_text_not_cut(void) {
    const char *path = test_tmp("longtok.gguf", 0);
    write_long_token_model(path, 254); /* 512 tokens: the tiny model's embedding rows */
    tern_model *m = NULL;
    tern_tokenizer *tok = NULL;
    tern_session *s = NULL;
    tern_sampler *smp = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(path, &m));
    if (!m)
        return;
    CHECK_STATUS(TERN_OK, tern_tokenizer_create(tern_model_gguf(m), NULL, &tok));
    struct tern_session_params sp = {.n_ctx = 64, .device = "cpu"};
    CHECK_STATUS(TERN_OK, tern_session_create(m, &sp, &s));
    struct tern_sampler_params par = tern_sampler_default_params();
    par.temperature = 0.0f;
    CHECK_STATUS(TERN_OK, tern_sampler_create(&par, 512, &smp));
    const int32_t prompt[3] = {510, 'H', 'i'};
    struct text_sink out = {0};
    struct tern_generate_stats st;
    if (tok && s && smp)
        CHECK_STATUS(TERN_OK, tern_generate(s, tok, smp, prompt, 3, 24, append_text, &out, &st));
    /* the oracle: each generated token's own bytes, concatenated */
    size_t want_len = 0;
    int n_long = 0;
    char *want = NULL;
    for (int i = 0; i < out.n_ids; i++) {
        const struct tern_str t = tern_tokenizer_token_text(tok, out.ids[i]);
        n_long += t.len >= 1500;
        want = realloc(want, want_len + t.len);
        want_len += tern_token_to_bytes(tok, out.ids[i], false, want + want_len, t.len);
    }
    CHECK(n_long > 0); /* else this test proves nothing */
    /* random byte tokens may form invalid UTF-8, which the detokenizer replaces: compare ASCII */
    want_len = ascii_only(want, want_len);
    out.len = ascii_only(out.text, out.len);
    CHECK_INT(want_len, out.len);
    CHECK(want_len == out.len && memcmp(out.text, want, want_len) == 0);
    free(want);
    free(out.text);
    /* ending on a long token leaves its held-back bytes: the end of generation flushes them as U+FFFD */
    int last_long = -1;
    for (int i = 0; i < out.n_ids; i++)
        if (tern_tokenizer_token_text(tok, out.ids[i]).len >= 1500)
            last_long = i;
    struct text_sink tail = {0};
    if (s && last_long >= 0) {
        tern_session_reset(s);
        CHECK_STATUS(TERN_OK, tern_generate(s, tok, smp, prompt, 3, last_long + 1, append_text, &tail, &st));
        CHECK_INT(last_long + 1, tail.n_ids);
        CHECK(tail.len >= 3 && memcmp(tail.text + tail.len - 3, "\xEF\xBF\xBD", 3) == 0);
    }
    free(tail.text);
    tern_sampler_free(smp);
    tern_session_free(s);

    /* tern tokenize prints a long piece whole: token 300 is 1500 + 7*44 letters 'o' and 2 bytes */
    char cmd[4096];
    const struct tern_str t300 = tern_tokenizer_token_text(tok, 300);
    const int len300 = (int)t300.len;
    CHECK_INT(1810, len300);
    snprintf(cmd, sizeof cmd, "'%s' tokenize --no-bos -m '%s' -p '%.*s'", test_bin("tern", 1), path, len300,
             t300.ptr);
    FILE *f = popen(cmd, "r");
    static char line[8192];
    CHECK(f && fgets(line, sizeof line, f));
    if (f)
        CHECK_INT(0, pclose(f));
    char want_line[4096];
    snprintf(want_line, sizeof want_line, "   300 -> '%.*s'\n", len300, t300.ptr);
    if (strcmp(line, want_line) != 0)
        harness_fail(__FILE__, __LINE__, "tern tokenize printed %zu bytes, expected %zu", strlen(line),
                     strlen(want_line));
    tern_tokenizer_free(tok);
    tern_model_free(m);
}

/* Token ids at the vocabulary's edges on one device: the last id evaluates, n_vocab and -1 are
 * refused with one line (an id of n_vocab would read the row past the embedding). */
static void check_embed_bounds(const char *device) {
    struct tern_maker_params p;
    tern_maker_preset("tiny", &p);
    const char *path = test_tmp("bounds.gguf", 0);
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    tern_model *m = NULL;
    tern_session *s = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(path, &m));
    struct tern_session_params sp = {.n_ctx = 16, .device = device};
    if (m)
        CHECK_STATUS(TERN_OK, tern_session_create(m, &sp, &s));
    const int32_t bad[3][2] = {{512, 0}, {-1, 0}, {7, 512}};
    for (int i = 0; s && i < 3; i++) {
        n_errors = 0;
        tern_log_set_callback(count_errors, NULL);
        CHECK_STATUS(TERN_ERR_ARG, tern_session_eval(s, bad[i], i == 2 ? 2 : 1, NULL));
        tern_log_set_callback(NULL, NULL);
        CHECK_INT(1, n_errors);
        CHECK_INT(0, tern_session_pos(s));
    }
    const int32_t last = 511;
    const float *logits = NULL;
    if (s)
        CHECK_STATUS(TERN_OK, tern_session_eval(s, &last, 1, &logits));
    tern_session_free(s);
    tern_model_free(m);
}

static void embed_refuses_ids_outside_the_vocabulary(void) {
    check_embed_bounds("cpu");
}

static void tokenizer_larger_than_embedding_refused(void) {
    /* 513 tokens over 512 embedding rows: token 512 would be evaluated out of bounds */
    const char *path = test_tmp("bigvocab.gguf", 0);
    write_long_token_model(path, 255);
    expect_open_fails_naming(path, TERN_ERR_FORMAT, "tokenizer.ggml.tokens");
}

/* Rewrite the u32 value of a metadata key in a written file (a file that lies about itself). */
static void patch_u32_key(const char *path, const char *key, uint32_t value) {
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (!f)
        return;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    const size_t klen = strlen(key);
    for (size_t i = 0; i + klen + 8 <= n; i++)
        if (memcmp(buf + i, key, klen) == 0) {
            uint32_t type;
            memcpy(&type, buf + i + klen, 4);
            CHECK_INT(TERN_GGUF_U32, type);
            fseek(f, (long)(i + klen + 4), SEEK_SET);
            fwrite(&value, 4, 1, f);
            fclose(f);
            return;
        }
    harness_fail(__FILE__, __LINE__, "key %s not found in %s", key, path);
    fclose(f);
}

static void kv_bytes_closed_form(void) {
    /* K and V, f16, per layer and position: 2 * 2 layers * 256 positions * 2 KV heads * 64 dims * 2 */
    struct tern_maker_params p;
    tern_maker_preset("tiny", &p);
    const char *path = test_tmp("kv.gguf", 0);
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    tern_model *m = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(path, &m));
    if (m) {
        CHECK_INT(262144, tern_model_kv_bytes(m, 256));
        CHECK_INT(1024, tern_model_kv_bytes(m, 1));
    }
    tern_model_free(m);
}

static bool keep_going(int32_t id, const char *text, size_t len, void *user) {
    (void)id, (void)text, (void)len, (void)user;
    return true;
}

static void generation_stops_at_a_full_context(void) {
    /* n_predict -1 runs until the context is full: 3 prompt positions + 5 decoded = 8, and the
     * token sampled from the last position is the 6th generated */
    struct tern_maker_params p;
    tern_maker_preset("tiny", &p);
    const char *path = test_tmp("ctxfull.gguf", 0);
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    tern_model *m = NULL;
    tern_tokenizer *tok = NULL;
    tern_session *s = NULL;
    tern_sampler *smp = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(path, &m));
    if (!m)
        return;
    CHECK_STATUS(TERN_OK, tern_tokenizer_create(tern_model_gguf(m), NULL, &tok));
    struct tern_session_params sp = {.n_ctx = 8, .device = "cpu"};
    CHECK_STATUS(TERN_OK, tern_session_create(m, &sp, &s));
    struct tern_sampler_params par = tern_sampler_default_params();
    par.temperature = 0.0f;
    CHECK_STATUS(TERN_OK, tern_sampler_create(&par, 512, &smp));
    const int32_t prompt[3] = {510, 'H', 'i'};
    struct tern_generate_stats st = {0};
    /* n_predict 0 samples nothing */
    struct tern_generate_stats none = {0};
    if (tok && s && smp) {
        tern_session_reset(s);
        CHECK_STATUS(TERN_OK, tern_generate(s, tok, smp, prompt, 3, 0, keep_going, NULL, &none));
        CHECK_INT(0, none.n_generated);
        CHECK_INT(3, tern_session_pos(s));
        tern_session_reset(s);
        CHECK_STATUS(TERN_OK, tern_generate(s, tok, smp, prompt, 3, -1, keep_going, NULL, &st));
    }
    CHECK(!st.stopped_eog); /* the greedy path of this seed meets no end-of-generation token */
    CHECK(st.stopped_ctx);
    CHECK_INT(6, st.n_generated);
    CHECK_INT(5, st.n_decoded);
    CHECK_INT(8, s ? tern_session_pos(s) : 0);
    tern_sampler_free(smp);
    tern_session_free(s);
    tern_tokenizer_free(tok);
    tern_model_free(m);
}

static void repeat_penalty_covers_the_whole_prompt(void) {
    /* find a prompt {a, 'H', 'i'} whose greedy next token is a itself; with a strong repetition
     * penalty, generation must then pick something else: every prompt token counts as recent */
    struct tern_maker_params p;
    tern_maker_preset("tiny", &p);
    const char *path = test_tmp("penalty.gguf", 0);
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    tern_model *m = NULL;
    tern_tokenizer *tok = NULL;
    tern_session *s = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(path, &m));
    if (!m)
        return;
    CHECK_STATUS(TERN_OK, tern_tokenizer_create(tern_model_gguf(m), NULL, &tok));
    struct tern_session_params sp = {.n_ctx = 8, .device = "cpu"};
    CHECK_STATUS(TERN_OK, tern_session_create(m, &sp, &s));
    int32_t prompt[3] = {-1, 'H', 'i'};
    for (int32_t a = 0; s && a < 500 && prompt[0] < 0; a++) {
        const int32_t try[3] = {a, 'H', 'i'};
        const float *logits = NULL;
        tern_session_reset(s);
        CHECK_STATUS(TERN_OK, tern_session_eval(s, try, 3, &logits));
        int32_t best = 0;
        for (int32_t i = 1; logits && i < 512; i++)
            best = logits[i] > logits[best] ? i : best;
        if (best == a)
            prompt[0] = a;
    }
    CHECK(prompt[0] >= 0); /* else this test proves nothing */
    struct tern_sampler_params par = tern_sampler_default_params();
    par.temperature = 0.0f;
    par.repeat_penalty = 1e6f;
    tern_sampler *smp = NULL;
    CHECK_STATUS(TERN_OK, tern_sampler_create(&par, 512, &smp));
    struct text_sink out = {0};
    struct tern_generate_stats st;
    if (s && smp && prompt[0] >= 0) {
        tern_session_reset(s);
        CHECK_STATUS(TERN_OK, tern_generate(s, tok, smp, prompt, 3, 1, append_text, &out, &st));
        CHECK_INT(1, out.n_ids);
        CHECK(out.ids[0] != prompt[0] && out.ids[0] != 'H' && out.ids[0] != 'i');
    }
    free(out.text);
    tern_sampler_free(smp);
    tern_session_free(s);
    tern_tokenizer_free(tok);
    tern_model_free(m);
}

static void inconsistent_models_rejected(void) {
    struct tern_maker_params p;
    tern_maker_preset("tiny", &p);
    const char *path = test_tmp("bad.gguf", 0);

    /* hyperparameters that disagree with the tensors */
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    patch_u32_key(path, "bitnet-b1.58.feed_forward_length", 384);
    expect_open_fails(path, TERN_ERR_SHAPE);
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    patch_u32_key(path, "bitnet-b1.58.block_count", 3); /* a layer missing */
    expect_open_fails(path, TERN_ERR_FORMAT);
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    patch_u32_key(path, "bitnet-b1.58.attention.head_count_kv", 3); /* 4 heads do not split into 3 groups */
    expect_open_fails(path, TERN_ERR_FORMAT);

    /* an architecture tern does not run */
    struct tern_maker_params q = p;
    q.arch = "gpt-neox";
    CHECK_STATUS(TERN_OK, tern_maker_write(&q, path));
    expect_open_fails(path, TERN_ERR_UNSUPPORTED);
    /* a missing file */
    expect_open_fails(test_tmp("does-not-exist.gguf", 0), TERN_ERR_IO);
}

int main(void) {
    RUN(three_formats_identical_logits);
    RUN(conformance_vectors_tq_formats_agree);
    RUN(odd_shape_3b_widths);
    RUN(every_arch_runs);
    RUN(inconsistent_models_rejected);
    RUN(non_finite_weights_refused);
    RUN(invalid_ternary_codes_refused);
    RUN(long_token_text_not_cut);
    RUN(tokenizer_larger_than_embedding_refused);
    RUN(embed_refuses_ids_outside_the_vocabulary);
    RUN(kv_bytes_closed_form);
    RUN(generation_stops_at_a_full_context);
    RUN(repeat_penalty_covers_the_whole_prompt);
    return harness_finish();
}
