/* Whole models on the OpenCL device (PoCL in CI) against the CPU device: the conformance vectors
 * (bitnet.cpp's recorded greedy ids on the I2_S file; cl:0 == cpu on the TQ2_0/TQ1_0 files) and
 * random models of odd shapes, every embedding/head type and every architecture from the model
 * maker. Greedy tokens must be identical and logits close (NMSE). Without any OpenCL platform this
 * suite FAILS unless TERN_CL_OPTIONAL=1. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cl/cl_device.h"
#include "cpu/cpu_device.h"
#include "harness.h"
#include "host/model/maker.h"
#include "host/tern.h"

#define MAX_GEN 16
/* Per step, cl vs cpu. Integer parts are exact and floats differ in ulps, but an ulp can move one
 * activation across a rounding boundary of the int8 quantization, which then shows in the logits
 * (seen: up to 4e-4 with SiLU, whose exp differs by an ulp or two between libm and OpenCL; 1e-12
 * otherwise). Greedy tokens are the hard criterion. */
#define NMSE_LOGITS 2e-3

struct run {
    int32_t tokens[MAX_GEN];
    float *logits; /* [n_gen][n_vocab] */
    int n_vocab;
};

/* Greedy: evaluate the prompt as one batch, then n_gen - 1 single-token steps. */
static bool run_greedy(const char *path, const char *device, const int32_t *prompt, int n_prompt, int n_gen,
                       struct run *out) {
    tern_model *m = NULL;
    tern_session *s = NULL;
    memset(out, 0, sizeof *out);
    CHECK_STATUS(TERN_OK, tern_model_create(path, &m));
    if (!m)
        return false;
    const int nv = tern_model_view(m)->hp.n_vocab;
    struct tern_session_params sp = {.n_ctx = n_prompt + n_gen + 8, .device = device};
    tern_status st = tern_session_create(m, &sp, &s);
    CHECK_STATUS(TERN_OK, st);
    out->n_vocab = nv;
    out->logits = malloc((size_t)n_gen * (size_t)nv * sizeof(float));
    const float *logits = NULL;
    if (st == TERN_OK)
        st = tern_session_eval(s, prompt, n_prompt, &logits);
    for (int i = 0; i < n_gen && st == TERN_OK; i++) {
        int32_t best = 0;
        for (int k = 1; k < nv; k++)
            if (logits[k] > logits[best])
                best = k;
        out->tokens[i] = best;
        memcpy(out->logits + (size_t)i * nv, logits, (size_t)nv * sizeof(float));
        if (i + 1 < n_gen)
            st = tern_session_eval(s, &best, 1, &logits);
    }
    CHECK_STATUS(TERN_OK, st);
    tern_session_free(s);
    tern_model_free(m);
    return st == TERN_OK;
}

static double nmse(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i]))
            return INFINITY;
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)a[i] * a[i];
    }
    return den > 0 ? num / den : num;
}

/* cl:0 against cpu on one prompt; expected (may be NULL) are reference ids for both. */
static void compare_devices(const char *path, const int32_t *prompt, int n_prompt, int n_gen,
                            const int32_t *expected, const char *label) {
    struct run cpu, cl;
    bool ok_cpu = run_greedy(path, "cpu", prompt, n_prompt, n_gen, &cpu);
    bool ok_cl = run_greedy(path, "cl:0", prompt, n_prompt, n_gen, &cl);
    if (ok_cpu && ok_cl) {
        for (int i = 0; i < n_gen; i++) {
            if (cpu.tokens[i] != cl.tokens[i]) {
                harness_fail(__FILE__, __LINE__, "%s: token %d: cpu %d, cl:0 %d", label, i, cpu.tokens[i],
                             cl.tokens[i]);
                break;
            }
            if (expected && expected[i] != cl.tokens[i]) {
                harness_fail(__FILE__, __LINE__, "%s: token %d: reference %d, cl:0 %d", label, i, expected[i],
                             cl.tokens[i]);
                break;
            }
        }
        double worst = 0;
        for (int i = 0; i < n_gen; i++) {
            double e = nmse(cpu.logits + (size_t)i * cpu.n_vocab, cl.logits + (size_t)i * cl.n_vocab,
                            (size_t)cpu.n_vocab);
            worst = e > worst ? e : worst;
        }
        if (!(worst <= NMSE_LOGITS))
            harness_fail(__FILE__, __LINE__, "%s: logits NMSE %.3g > %.3g", label, worst, NMSE_LOGITS);
        fprintf(stderr, "     %s: %d tokens equal, worst logits NMSE %.2g\n", label, n_gen, worst);
    }
    free(cpu.logits);
    free(cl.logits);
}

/* The prompts and bitnet.cpp's greedy ids of tests/data/vectors/mini-refs.json. */
static void vectors_i2s_match_bitnet_cpp(void) {
    struct harness_ref refs[8];
    const int n = harness_refs("mini-b158-i2s.gguf", refs, 8);
    for (int p = 0; p < n; p++) {
        char label[64];
        snprintf(label, sizeof label, "mini-b158-i2s prompt %d", p);
        compare_devices(test_data("vectors/mini-b158-i2s.gguf", 0), refs[p].prompt_ids, refs[p].n_prompt,
                        refs[p].n_generated, refs[p].generated, label);
    }
}

static void vectors_tq_cl_equals_cpu(void) {
    static const char *const files[2] = {"vectors/mini-bitnet-tq2.gguf", "vectors/mini-bitnet-tq1.gguf"};
    struct harness_ref refs[8];
    const int n = harness_refs("mini-bitnet-tq2.gguf", refs, 8);
    for (int f = 0; f < 2; f++)
        for (int p = 0; p < n; p++) {
            char label[64];
            snprintf(label, sizeof label, "%s prompt %d", files[f] + 8, p);
            compare_devices(test_data(files[f], 0), refs[p].prompt_ids, refs[p].n_prompt, 16, NULL, label);
        }
}

static void random_prompt(int32_t *prompt, int n, int n_vocab, uint64_t seed) {
    prompt[0] = n_vocab - 2; /* BOS of the synthetic vocabulary */
    for (int i = 1; i < n; i++)
        prompt[i] = (int32_t)(test_rand_u64(&seed) % (uint64_t)(n_vocab - 2));
}

/* Odd shapes (K not a multiple of 128, head_dim 100) in every ternary type; embedding and head types. */
static void random_models(void) {
    static const uint32_t lin[3] = {TERN_TYPE_I2_S, TERN_TYPE_TQ2_0, TERN_TYPE_TQ1_0};
    static const uint32_t embd[6] = {TERN_TYPE_F16,  TERN_TYPE_BF16, TERN_TYPE_F32,
                                     TERN_TYPE_Q8_0, TERN_TYPE_Q6_K, TERN_TYPE_Q4_K};
    for (int i = 0; i < 6; i++) {
        struct tern_maker_params p;
        CHECK_STATUS(TERN_OK, tern_maker_preset(i < 3 ? "3b" : "tiny", &p));
        p.n_layer = 1;
        p.n_vocab = 512;
        p.seed = 100 + (uint64_t)i;
        p.linear_type = i < 3 ? TERN_TYPE_I2_S : lin[i % 3]; /* TQ types need rows of 256k */
        p.embd_type = embd[i];
        /* separate head (k-quants need rows of 256k, so F16 on the 3200-wide shape) or tied */
        p.output_type = i % 2 ? (i < 3 ? TERN_TYPE_F16 : embd[(i + 3) % 6]) : TERN_TYPE_COUNT;
        const char *path = test_tmp("cl-random.gguf", 0);
        tern_status st = tern_maker_write(&p, path);
        CHECK_STATUS(TERN_OK, st);
        if (st != TERN_OK)
            continue;
        int32_t prompt[9];
        random_prompt(prompt, 9, p.n_vocab, p.seed);
        char label[96];
        snprintf(label, sizeof label, "%s %s embd %s head %s", i < 3 ? "3b-shape" : "tiny",
                 tern_type_name(p.linear_type), tern_type_name(embd[i]),
                 p.output_type == TERN_TYPE_COUNT ? "tied" : tern_type_name(p.output_type));
        compare_devices(path, prompt, 9, 6, NULL, label);
    }
}

static void every_arch(void) {
    static const char *const archs[3] = {"bitnet-b1.58", "bitnet", "llama"};
    for (int a = 0; a < 3; a++) {
        struct tern_maker_params p;
        tern_maker_preset("tiny", &p);
        p.arch = archs[a];
        p.seed = 7;
        const char *path = test_tmp("cl-arch.gguf", 0);
        CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
        int32_t prompt[6];
        random_prompt(prompt, 6, p.n_vocab, 3);
        char label[64];
        snprintf(label, sizeof label, "arch %s", archs[a]);
        compare_devices(path, prompt, 6, 8, NULL, label);
    }
}

/* A prompt longer than one device batch (256) and than one attention chunk: causal chunking. */
static void long_prompt(void) {
    struct tern_maker_params p;
    tern_maker_preset("tiny", &p);
    p.n_layer = 1;
    p.seed = 9;
    const char *path = test_tmp("cl-long.gguf", 0);
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    enum { N = 300 };
    int32_t prompt[N];
    random_prompt(prompt, N, p.n_vocab, 5);
    compare_devices(path, prompt, N, 4, NULL, "tiny 300-token prompt");
}

static int n_errors;
static void count_errors(enum tern_log_level level, const char *msg, void *user) {
    (void)msg;
    (void)user;
    n_errors += level == TERN_LOG_ERROR;
}

/* Token ids at the vocabulary's edges: the last one evaluates, n_vocab and -1 are refused with one
 * line before anything reaches the device (whose kernel would read past the embedding). */
static void embed_refuses_ids_outside_the_vocabulary(void) {
    struct tern_maker_params p;
    tern_maker_preset("tiny", &p);
    p.n_layer = 1;
    const char *path = test_tmp("cl-bounds.gguf", 0);
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    tern_model *m = NULL;
    tern_session *s = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(path, &m));
    struct tern_session_params sp = {.n_ctx = 16, .device = "cl:0"};
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

/* A device's load checks what it is handed: a layer range or cache outside the model, and a ternary
 * weight whose shape does not match the hyperparameters, are refused with one line (the model's
 * loader already validates files; this is the device's own guard). Both devices, one layer. */
static void load_refuses_bad_ranges_and_shapes(void) {
    tern_model *m = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(test_data("vectors/mini-b158-i2s.gguf", 0), &m));
    if (!m)
        return;
    const struct tern_model_view *v = tern_model_view(m);
    const int L = v->hp.n_layer;
    struct tern_layer_weights *layers = malloc((size_t)L * sizeof *layers);
    memcpy(layers, v->layers, (size_t)L * sizeof *layers);
    struct tern_model_view bad = *v;
    bad.layers = layers;
    struct tern_device devs[2];
    CHECK_STATUS(TERN_OK, tern_cpu_device_create(1, &devs[0]));
    CHECK_STATUS(TERN_OK, tern_cl_device_create("0", &devs[1]));
    static const int ranges[][4] = {{-1, 1, 8, 1}, {1, 0, 8, 1}, {0, 99, 8, 1}, {0, 1, 0, 1}, {0, 1, 8, 0}};
    for (int d = 0; d < 2; d++) {
        const struct tern_device *dev = &devs[d];
        if (!dev->ctx)
            continue;
        tern_log_set_callback(count_errors, NULL);
        for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
            n_errors = 0;
            const int end = ranges[i][1] == 99 ? L + 1 : ranges[i][1];
            CHECK_STATUS(TERN_ERR_ARG,
                         dev->ops->load(dev->ctx, v, ranges[i][0], end, 0, ranges[i][2], ranges[i][3]));
            CHECK_INT(1, n_errors);
        }
        tern_log_set_callback(NULL, NULL);
        CHECK_STATUS(TERN_OK, dev->ops->load(dev->ctx, v, L - 1, L, 0, 8, 1));
        if (d == 0)
            continue; /* the CPU device reads the views as they are */
        const struct tern_ternary good = layers[0].wq;
        for (int c = 0; c < 6; c++) {
            struct tern_ternary *w = &layers[0].wq;
            *w = good;
            switch (c) {
            case 0:
                w->n_in++;
                break;
            case 1:
                w->n_out++;
                break;
            case 2:
                w->k_pad = w->n_in - 128, w->row_bytes = w->k_pad / 4;
                break;
            case 3:
                w->k_pad += 64, w->row_bytes = w->k_pad / 4;
                break;
            case 4:
                w->row_bytes++;
                break;
            default:
                w->codes = NULL;
                break;
            }
            n_errors = 0;
            tern_log_set_callback(count_errors, NULL);
            CHECK_STATUS(TERN_ERR_SHAPE, dev->ops->load(dev->ctx, &bad, 0, 1, 0, 8, 1));
            tern_log_set_callback(NULL, NULL);
            CHECK_INT(1, n_errors);
        }
        layers[0].wq = good;
        CHECK_STATUS(TERN_OK, dev->ops->load(dev->ctx, &bad, 0, 1, 0, 8, 1));
    }
    for (int d = 0; d < 2; d++)
        if (devs[d].ctx)
            devs[d].ops->free(devs[d].ctx);
    free(layers);
    tern_model_free(m);
}

/* A head larger than the device's largest buffer is split into at most 16 buffers: a limit that
 * allows 16 loads it (logits equal to the unsplit head's), one that needs 17 is refused with one
 * line (TERN_CL_MAX_ALLOC lowers the limit). */
static void head_split_limits(void) {
    tern_model *m = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(test_data("vectors/mini-b158-i2s.gguf", 0), &m));
    if (!m)
        return;
    const struct tern_model_view *v = tern_model_view(m);
    const unsigned long long row = v->output.row_bytes,
                             per_part = (unsigned long long)(v->output.ne1 + 15) / 16;
    const struct {
        unsigned long long max_alloc;
        tern_status want;
    } cases[] = {{0, TERN_OK}, {row * per_part, TERN_OK}, {row * per_part - 1, TERN_ERR_NOMEM}};
    float *want = malloc((size_t)v->hp.n_vocab * sizeof(float)),
          *got = malloc((size_t)v->hp.n_vocab * sizeof(float));
    float *hidden = malloc((size_t)v->hp.n_embd * sizeof(float));
    for (int i = 0; i < v->hp.n_embd; i++)
        hidden[i] = (float)((i * 29) % 17) * 0.125f - 1.0f;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char value[32];
        snprintf(value, sizeof value, "%llu", cases[c].max_alloc);
        if (cases[c].max_alloc)
            setenv("TERN_CL_MAX_ALLOC", value, 1);
        struct tern_device dev;
        CHECK_STATUS(TERN_OK, tern_cl_device_create("0", &dev));
        unsetenv("TERN_CL_MAX_ALLOC");
        if (!dev.ctx)
            continue;
        n_errors = 0;
        tern_log_set_callback(count_errors, NULL);
        const tern_status st = dev.ops->load(dev.ctx, v, 0, 0, TERN_PART_HEAD, 8, 1);
        tern_log_set_callback(NULL, NULL);
        CHECK_STATUS(cases[c].want, st);
        CHECK_INT(st == TERN_OK ? 0 : 1, n_errors);
        if (st == TERN_OK) {
            CHECK_STATUS(TERN_OK, dev.ops->logits(dev.ctx, c == 0 ? want : got, hidden, 1, NULL));
            if (c > 0)
                CHECK(memcmp(want, got, (size_t)v->hp.n_vocab * sizeof(float)) == 0);
        }
        dev.ops->free(dev.ctx);
    }
    free(want);
    free(got);
    free(hidden);
    tern_model_free(m);

    /* a limit below one head row (an F32 head of 2048 columns: 8 KiB rows) is refused with one line */
    struct tern_maker_params p;
    tern_maker_preset("tiny", &p);
    p.n_layer = 1;
    p.n_embd = 2048;
    p.n_head = p.n_head_kv = 16;
    p.n_vocab = 260;
    p.output_type = TERN_TYPE_F32;
    const char *path = test_tmp("cl-wide-head.gguf", 0);
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    CHECK_STATUS(TERN_OK, tern_model_create(path, &m));
    if (!m)
        return;
    setenv("TERN_CL_MAX_ALLOC", "6000", 1);
    struct tern_device dev;
    CHECK_STATUS(TERN_OK, tern_cl_device_create("0", &dev));
    unsetenv("TERN_CL_MAX_ALLOC");
    if (dev.ctx) {
        n_errors = 0;
        tern_log_set_callback(count_errors, NULL);
        CHECK_STATUS(TERN_ERR_NOMEM, dev.ops->load(dev.ctx, tern_model_view(m), 0, 0, TERN_PART_HEAD, 8, 1));
        tern_log_set_callback(NULL, NULL);
        CHECK_INT(1, n_errors);
        dev.ops->free(dev.ctx);
    }
    tern_model_free(m);
}

int main(void) {
    int n = 0;
    tern_cl_device_count(&n);
    const int gate = harness_opencl_gate(n);
    if (gate >= 0)
        return gate;
    RUN(vectors_i2s_match_bitnet_cpp);
    RUN(vectors_tq_cl_equals_cpu);
    RUN(random_models);
    RUN(every_arch);
    RUN(long_prompt);
    RUN(embed_refuses_ids_outside_the_vocabulary);
    RUN(load_refuses_bad_ranges_and_shapes);
    RUN(head_split_limits);
    return harness_finish();
}
