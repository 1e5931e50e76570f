/* Whole-model tests on random models from the maker: one model written as I2_S, TQ2_0 and TQ1_0
 * gives identical logits; odd shapes (the 1bitLLM 3B widths, K not a multiple of 128) load through
 * the repacking path and run; every architecture variant runs; inconsistent files are rejected. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "host/maker.h"
#include "host/tern.h"
#include "host/ternary.h"

/* Logits after each of a few prompt tokens and greedy steps: n_steps x n_vocab floats. */
static float *run_logits(const char *path, int n_steps, int *n_vocab) {
    tern_model *m = NULL;
    tern_session *s = NULL;
    float *all = NULL;
    CHECK_STATUS(TERN_OK, tern_model_open(path, &m));
    if (!m)
        return NULL;
    const int nv = tern_model_view(m)->hp.n_vocab;
    struct tern_session_params sp = {.n_ctx = 64, .device = "cpu"};
    CHECK_STATUS(TERN_OK, tern_session_create(m, &sp, &s));
    all = malloc((size_t)n_steps * (size_t)nv * sizeof(float));
    if (s && all) {
        int32_t prompt[5] = {nv - 2, 72, 101, 108, 33}; /* BOS and a few byte tokens */
        const float *logits;
        CHECK_STATUS(TERN_OK, tern_session_eval(s, prompt, 5, &logits));
        memcpy(all, logits, (size_t)nv * sizeof(float));
        for (int step = 1; step < n_steps; step++) {
            int32_t best = 0;
            for (int i = 1; i < nv; i++)
                if (logits[i] > logits[best])
                    best = i;
            CHECK_STATUS(TERN_OK, tern_session_eval(s, &best, 1, &logits));
            memcpy(all + (size_t)step * nv, logits, (size_t)nv * sizeof(float));
        }
    }
    *n_vocab = nv;
    tern_session_free(s);
    tern_model_close(m);
    return all;
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
        logits[f] = run_logits(test_tmp(names[f], 0), 8, &nv);
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
    CHECK_STATUS(TERN_OK, tern_model_open(path, &m));
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
    tern_model_close(m);
    int nv = 0;
    float *l = run_logits(path, 3, &nv);
    CHECK(l != NULL);
    for (int i = 0; l && i < 3 * nv; i++)
        if (!isfinite(l[i])) {
            harness_fail(__FILE__, __LINE__, "non-finite logit %d", i);
            break;
        }
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
        float *l = run_logits(path, 2, &nv);
        CHECK(l != NULL);
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
static void count_errors(enum tern_log_level level, const char *msg, void *user) {
    (void)user;
    if (level == TERN_LOG_ERROR) {
        n_errors++;
        fprintf(stderr, "    (logged: %s)\n", msg);
    }
}

static void expect_open_fails(const char *path, tern_status want) {
    n_errors = 0;
    tern_log_set_callback(count_errors, NULL);
    tern_model *m = NULL;
    CHECK_STATUS(want, tern_model_open(path, &m));
    CHECK(m == NULL);
    CHECK_INT(1, n_errors);
    tern_log_set_callback(NULL, NULL);
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
    return harness_finish();
}
