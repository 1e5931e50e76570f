/* The scheduler: planner decisions on synthetic device profiles; real splits over the CPU and an
 * OpenCL device (PoCL in CI) giving bitnet.cpp's greedy ids on its I2_S file; batch invariance on
 * each device; failover injected at several places giving the same ids as a run without fault. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cl/cl_device.h"
#include "harness.h"
#include "host/model/maker.h"
#include "host/tern.h"
#include "scheduler/cache.h"
#include "scheduler/device.h"
#include "scheduler/log.h"
#include "scheduler/plan.h"
#include "scheduler/probe.h"

/* ---------------------------------------------------------------- planner on synthetic devices */

enum { MiB = 1 << 20 };
static const uint64_t GiB = (uint64_t)1 << 30;

/* The 2B-4T shape at a 4096 context: 30 layers of 17.6 MiB weights + 20 MiB KV, a 626 MiB tied head. */
static struct tern_plan_model shape_2b4t(void) {
    return (struct tern_plan_model){.n_layer = 30,
                                    .layer_weight_bytes = 18 * (uint64_t)MiB,
                                    .layer_kv_bytes = 20 * (uint64_t)MiB,
                                    .layer_max_buffer = 10 * (uint64_t)MiB,
                                    .head_bytes = 627 * (uint64_t)MiB,
                                    .embed_bytes = 626 * (uint64_t)MiB,
                                    .tied = true};
}

static struct tern_plan_device device(double decode_ms, double prefill_ms, double head_ms, double call_ms,
                                      uint64_t mem, uint64_t max_alloc, bool unified) {
    struct tern_plan_device d = {.mem_bytes = mem, .max_alloc = max_alloc, .unified = unified, .alive = true};
    d.probe = (struct tern_probe){decode_ms * 1e-3, prefill_ms * 1e-3,   head_ms * 1e-3,
                                  call_ms * 1e-3,   call_ms * 1e-3 / 16, INFINITY};
    return d;
}

/* The segments cover [0, n_layer) in order without gaps. */
static void check_chain(const struct tern_plan *p, int n_layer) {
    int at = 0;
    for (int i = 0; i < p->n_seg; i++) {
        CHECK_INT(at, p->seg[i].begin);
        CHECK(p->seg[i].end > p->seg[i].begin);
        at = p->seg[i].end;
    }
    CHECK_INT(n_layer, at);
}

static const char *const names[] = {"cpu", "gpu", "npu"};

static void plan_fast_gpu_short_of_memory(void) {
    const struct tern_plan_model m = shape_2b4t();
    /* a discrete GPU 5x faster with room for 12 layers (38 MiB each) and nothing else */
    struct tern_plan_device d[2] = {device(1.2, 0.2, 20, 0, 16 * GiB, 0, true),
                                    device(0.24, 0.04, 4, 0.05, 12 * 38 * (uint64_t)MiB, GiB, false)};
    struct tern_plan p;
    CHECK_STATUS(TERN_OK, tern_plan_make(&m, d, 2, &p));
    check_chain(&p, 30);
    CHECK_INT(12, tern_plan_layers_on(&p, 1));
    CHECK_INT(18, tern_plan_layers_on(&p, 0));
    CHECK_INT(0, p.head_dev); /* the head does not fit beside 12 layers */
    char buf[128];
    tern_plan_format(&p, names, buf, sizeof buf);
    fprintf(stderr, "  fast GPU, 12 layers of memory: %s\n", buf);
    /* with room for everything it takes everything */
    d[1].mem_bytes = 8 * GiB;
    CHECK_STATUS(TERN_OK, tern_plan_make(&m, d, 2, &p));
    CHECK_INT(30, tern_plan_layers_on(&p, 1));
    CHECK_INT(1, p.head_dev);
}

static void plan_integrated_gpu_small_max_alloc(void) {
    const struct tern_plan_model m = shape_2b4t();
    /* unified memory (weights in place), 2x faster, but buffers of at most 512 MiB: the 626 MiB
     * embedding stays on the CPU; the layers and the head (split into two buffers by the device) go
     * to the GPU */
    struct tern_plan_device d[2] = {device(1.2, 0.2, 20, 0, 16 * GiB, 0, true),
                                    device(0.6, 0.05, 10, 0.02, 8 * GiB, 512 * (uint64_t)MiB, true)};
    struct tern_plan p;
    CHECK_STATUS(TERN_OK, tern_plan_make(&m, d, 2, &p));
    check_chain(&p, 30);
    CHECK_INT(30, tern_plan_layers_on(&p, 1));
    CHECK_INT(1, p.head_dev);
    CHECK_INT(0, p.embed_dev);
    /* a layer buffer above the limit keeps the layers off the GPU too */
    struct tern_plan_model big = m;
    big.layer_max_buffer = 600 * (uint64_t)MiB;
    CHECK_STATUS(TERN_OK, tern_plan_make(&big, d, 2, &p));
    CHECK_INT(30, tern_plan_layers_on(&p, 0));
}

static void plan_devices_sharing_cores(void) {
    const struct tern_plan_model m = shape_2b4t();
    /* a CPU OpenCL driver (PoCL) on the same cores: 3% faster is noise, the CPU keeps the model */
    struct tern_plan_device d[2] = {device(1.2, 0.2, 20, 0, 16 * GiB, 0, true),
                                    device(1.164, 0.194, 19.4, 0.001, 16 * GiB, 4 * GiB, true)};
    struct tern_plan p;
    CHECK_STATUS(TERN_OK, tern_plan_make(&m, d, 2, &p));
    CHECK_INT(1, p.n_seg);
    CHECK_INT(30, tern_plan_layers_on(&p, 0));
    /* 30% faster: it takes the whole model (a split only adds boundaries) */
    d[1] = device(0.84, 0.14, 14, 0.001, 16 * GiB, 4 * GiB, true);
    CHECK_STATUS(TERN_OK, tern_plan_make(&m, d, 2, &p));
    CHECK_INT(1, p.n_seg);
    CHECK_INT(30, tern_plan_layers_on(&p, 1));
    CHECK_INT(1, p.head_dev);
}

/* Ranges on devices that do not share cores pipeline the prompt: predicted prefill drops from the
 * sum of the ranges to about 1.5x the slowest (two chunks, two ranges); core-sharing devices never. */
static void plan_pipelined_prefill(void) {
    const struct tern_plan_model m = shape_2b4t();
    struct tern_plan_device d[2] = {device(1.2, 0.2, 20, 0, 16 * GiB, 0, true),
                                    device(1.2, 0.2, 20, 0, 16 * GiB, 4 * GiB, true)};
    d[0].shares_cpu_cores = true;
    const int half[2] = {15, 15};
    struct tern_plan p;
    CHECK_STATUS(TERN_OK, tern_plan_split(&m, d, 2, half, names, &p));
    CHECK(tern_plan_pipelined(d, &p));
    CHECK_FLOAT(1.5 * 15 * 0.2e-3 + 20e-3 / TERN_PLAN_PROMPT, p.prefill_s, 1e-9);
    d[1].shares_cpu_cores = true; /* PoCL beside the CPU device: one after the other */
    CHECK_STATUS(TERN_OK, tern_plan_split(&m, d, 2, half, names, &p));
    CHECK(!tern_plan_pipelined(d, &p));
    CHECK_FLOAT(30 * 0.2e-3 + 20e-3 / TERN_PLAN_PROMPT, p.prefill_s, 1e-9);
}

static void plan_gpu_slower_than_cpu(void) {
    const struct tern_plan_model m = shape_2b4t();
    struct tern_plan_device d[3] = {device(1.2, 0.2, 20, 0, 16 * GiB, 0, true),
                                    device(3.0, 0.5, 50, 0.1, 8 * GiB, 2 * GiB, false),
                                    device(2.0, 0.3, 40, 0.1, 8 * GiB, 2 * GiB, true)};
    struct tern_plan p;
    CHECK_STATUS(TERN_OK, tern_plan_make(&m, d, 3, &p));
    CHECK_INT(1, p.n_seg);
    CHECK_INT(30, tern_plan_layers_on(&p, 0));
    CHECK_INT(0, p.head_dev);
    CHECK_INT(0, p.embed_dev);
}

/* Two identical devices: every choice ties, and ties go to the lower device id, so a plan is the
 * same from run to run. */
static void plan_ties_go_to_the_first_device(void) {
    const struct tern_plan_model m = shape_2b4t();
    const struct tern_plan_device d[2] = {device(1.2, 0.2, 20, 0.05, 16 * GiB, 0, true),
                                          device(1.2, 0.2, 20, 0.05, 16 * GiB, 0, true)};
    struct tern_plan p;
    CHECK_STATUS(TERN_OK, tern_plan_make(&m, d, 2, &p));
    check_chain(&p, 30);
    CHECK_INT(30, tern_plan_layers_on(&p, 0));
    CHECK_INT(0, p.embed_dev);
    CHECK_INT(0, p.head_dev);
}

static void plan_cpu_only_and_dead_devices(void) {
    const struct tern_plan_model m = shape_2b4t();
    struct tern_plan_device d[2] = {device(1.2, 0.2, 20, 0, 16 * GiB, 0, true),
                                    device(0.2, 0.02, 2, 0.01, 16 * GiB, 4 * GiB, false)};
    struct tern_plan p;
    CHECK_STATUS(TERN_OK, tern_plan_make(&m, d, 1, &p)); /* no OpenCL at all */
    CHECK_INT(30, tern_plan_layers_on(&p, 0));
    d[1].alive = false; /* a failed GPU is never planned */
    CHECK_STATUS(TERN_OK, tern_plan_make(&m, d, 2, &p));
    CHECK_INT(30, tern_plan_layers_on(&p, 0));
    CHECK_INT(0, p.head_dev);
    d[0].mem_bytes = 100 * (uint64_t)MiB; /* nothing fits anywhere */
    CHECK_STATUS(TERN_ERR_NOMEM, tern_plan_make(&m, d, 2, &p));
}

static void plan_explicit_split(void) {
    const struct tern_plan_model m = shape_2b4t();
    struct tern_plan_device d[2] = {device(1.2, 0.2, 20, 0, 16 * GiB, 0, true),
                                    device(0.6, 0.1, 10, 0.05, 16 * GiB, 4 * GiB, true)};
    const int counts[2] = {20, 10}, zero_first[2] = {0, 30}, bad[2] = {20, 11};
    struct tern_plan p;
    CHECK_STATUS(TERN_OK, tern_plan_split(&m, d, 2, counts, names, &p));
    CHECK_INT(2, p.n_seg);
    CHECK_INT(20, p.seg[0].end);
    CHECK_INT(1, p.seg[1].dev);
    CHECK_INT(0, p.embed_dev);
    CHECK_INT(1, p.head_dev);
    /* predicted time is the sum of the parts: 20 CPU layers + 10 GPU layers + the GPU's head */
    CHECK_FLOAT(20 * 1.2e-3 + 10 * 0.6e-3 + 0.05e-3 + 10e-3, p.decode_s, 1e-9);
    char buf[128];
    tern_plan_format(&p, names, buf, sizeof buf);
    CHECK(strcmp(buf, "cpu[0-19] gpu[20-29]") == 0);
    CHECK_STATUS(TERN_OK, tern_plan_split(&m, d, 2, zero_first, names, &p));
    CHECK_INT(1, p.n_seg);
    CHECK_INT(0, p.embed_dev);
    tern_plan_format(&p, names, buf, sizeof buf);
    CHECK(strcmp(buf, "gpu[0-29] embd:cpu") == 0);
    CHECK_STATUS(TERN_ERR_ARG, tern_plan_split(&m, d, 2, bad, names, &p));
}

/* ---------------------------------------------------------------- whole model over real devices */

/* bitnet.cpp's three greedy cases on its I2_S file (tests/data/vectors/mini-refs.json). */
static int bitnet_cpp_cases(struct harness_ref *c) {
    const int n = harness_refs("mini-b158-i2s.gguf", c, 3);
    CHECK_INT(3, n);
    return n;
}

static tern_status greedy(const char *model, const char *device, const char *split, const int32_t *prompt,
                          int n_prompt, int n, struct harness_ids *out) {
    memset(out, 0, sizeof *out);
    tern_model *m = NULL;
    tern_tokenizer *tok = NULL;
    tern_session *s = NULL;
    tern_sampler *smp = NULL;
    struct tern_sampler_params p = tern_sampler_default_params();
    p.temperature = 0.0f;
    struct tern_session_params sp = {.n_ctx = 128, .n_threads = 2, .device = device, .split = split};
    struct tern_generate_stats st;
    tern_status r = tern_model_create(model, &m);
    if (r == TERN_OK)
        r = tern_tokenizer_create(tern_model_gguf(m), NULL, &tok);
    if (r == TERN_OK)
        r = tern_session_create(m, &sp, &s);
    if (r == TERN_OK)
        r = tern_sampler_create(&p, tern_model_view(m)->hp.n_vocab, &smp);
    if (r == TERN_OK)
        r = tern_generate(s, tok, smp, prompt, n_prompt, n, harness_collect_id, out, &st);
    tern_sampler_free(smp);
    tern_session_free(s);
    tern_tokenizer_free(tok);
    tern_model_free(m);
    return r;
}

static void check_ids(const char *what, const int32_t *want, const struct harness_ids *got, int n) {
    if (got->n != n || memcmp(want, got->ids, (size_t)n * sizeof *want) != 0) {
        harness_fail(__FILE__, __LINE__, "%s: greedy ids differ from bitnet.cpp's", what);
        fprintf(stderr, "  expected:");
        for (int i = 0; i < n; i++)
            fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n  actual:  ");
        for (int i = 0; i < got->n; i++)
            fprintf(stderr, " %d", got->ids[i]);
        fputc('\n', stderr);
    }
}

/* Every way to split the 2-layer model over the CPU and OpenCL device 0, both orders, the embedding
 * and the head on either side, gives bitnet.cpp's ids. */
static void splits_match_bitnet_cpp(void) {
    static const struct {
        const char *device, *split;
    } splits[] = {
        {"cpu", NULL},       {"cl:0", NULL},      {"cpu,cl:0", "1,1"},
        {"cl:0,cpu", "1,1"}, {"cpu,cl:0", "0,2"}, {"cl:0,cpu", "0,2"},
        {"cpu,cl:0", "2,0"}, {"cl:0,cpu", "2,0"}, {"cpu+cl:0", "1,1"},
    };
    struct harness_ref cases[3];
    const int n_cases = bitnet_cpp_cases(cases);
    for (size_t i = 0; i < sizeof splits / sizeof splits[0]; i++)
        for (int c = 0; c < n_cases; c++) {
            struct harness_ids got;
            char what[96];
            snprintf(what, sizeof what, "--device %s --split %s, case %d", splits[i].device,
                     splits[i].split ? splits[i].split : "-", c);
            CHECK_STATUS(TERN_OK, greedy(test_data("vectors/mini-b158-i2s.gguf", 0), splits[i].device,
                                         splits[i].split, cases[c].prompt_ids, cases[c].n_prompt, 16, &got));
            check_ids(what, cases[c].generated, &got, 16);
        }
}

/* An OpenCL device whose largest buffer is smaller than the head (TERN_CL_MAX_ALLOC emulates an
 * integrated GPU's limit) splits the head into several buffers, and the embedding, which it cannot
 * hold, stays on the CPU: bitnet.cpp's ids, planned and split by hand. */
static void small_max_alloc(void) {
    struct harness_ref cases[3];
    bitnet_cpp_cases(cases);
    setenv("TERN_CL_MAX_ALLOC", "100000", 1); /* the 1000 x 256 F16 head is 512000 bytes: 6 buffers */
    struct harness_ids got;
    CHECK_STATUS(TERN_OK, greedy(test_data("vectors/mini-b158-i2s.gguf", 0), "cpu,cl:0", "0,2",
                                 cases[2].prompt_ids, cases[2].n_prompt, 16, &got));
    check_ids("head in 6 buffers", cases[2].generated, &got, 16);
    CHECK_STATUS(TERN_ERR_NOMEM, greedy(test_data("vectors/mini-b158-i2s.gguf", 0), "cl:0,cpu", "2,0",
                                        cases[2].prompt_ids, cases[2].n_prompt, 16, &got));
    unsetenv("TERN_CL_MAX_ALLOC");
}

/* Bad splits and device lists are refused with TERN_ERR_ARG. */
static void bad_splits_refused(void) {
    struct harness_ref cases[3];
    bitnet_cpp_cases(cases);
    struct harness_ids got;
    const char *model = test_data("vectors/mini-b158-i2s.gguf", 0);
    CHECK_STATUS(TERN_ERR_ARG,
                 greedy(model, "cpu,cl:0", "1,2", cases[0].prompt_ids, cases[0].n_prompt, 4, &got));
    CHECK_STATUS(TERN_ERR_ARG,
                 greedy(model, "cpu,cl:0", "2", cases[0].prompt_ids, cases[0].n_prompt, 4, &got));
    CHECK_STATUS(TERN_ERR_ARG,
                 greedy(model, "cpu,cpu", NULL, cases[0].prompt_ids, cases[0].n_prompt, 4, &got));
    CHECK_STATUS(TERN_ERR_ARG, greedy(model, "gpu", NULL, cases[0].prompt_ids, cases[0].n_prompt, 4, &got));
}

/* Logits of every position of a prompt, evaluated as chunks of `chunk` tokens (chunk >= n: one
 * batch); each position's logits come from a run ending at that position. */
static void logits_by_chunks(tern_model *m, const char *device, const int32_t *tokens, int n, int chunk,
                             float *out) {
    const int n_vocab = tern_model_view(m)->hp.n_vocab;
    struct tern_session_params sp = {.n_ctx = 64, .n_threads = 2, .device = device};
    tern_session *s = NULL;
    CHECK_STATUS(TERN_OK, tern_session_create(m, &sp, &s));
    if (!s)
        return;
    for (int end = 1; end <= n; end++) {
        /* the logits at position end-1: tokens [0, end) in chunks, the last chunk ending there */
        tern_session_reset(s);
        const float *lg = NULL;
        for (int at = 0; at < end;) {
            const int k = end - at < chunk ? end - at : chunk;
            CHECK_STATUS(TERN_OK, tern_session_eval(s, tokens + at, k, &lg));
            at += k;
        }
        if (lg)
            memcpy(out + (size_t)(end - 1) * n_vocab, lg, (size_t)n_vocab * sizeof(float));
    }
    tern_session_free(s);
}

/* Batch invariance: on each device, one batch, chunks of 3 and token by token give the same bits. */
static void batch_invariance(void) {
    tern_model *m = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(test_data("vectors/mini-b158-i2s.gguf", 0), &m));
    if (!m)
        return;
    const int n_vocab = tern_model_view(m)->hp.n_vocab;
    enum { N = 12 };
    const int32_t tokens[N] = {998, 791, 272, 391, 275, 278, 315, 435, 81, 685, 374, 703};
    const char *devices[] = {"cpu", "cl:0"};
    const int chunks[] = {N, 3, 1};
    float *ref = malloc((size_t)N * n_vocab * sizeof(float)),
          *got = malloc((size_t)N * n_vocab * sizeof(float));
    for (size_t d = 0; d < 2 && ref && got; d++) {
        logits_by_chunks(m, devices[d], tokens, N, N, ref);
        for (size_t c = 1; c < 3; c++) {
            logits_by_chunks(m, devices[d], tokens, N, chunks[c], got);
            for (int pos = 0; pos < N; pos++)
                if (memcmp(ref + (size_t)pos * n_vocab, got + (size_t)pos * n_vocab, (size_t)n_vocab * 4) !=
                    0) {
                    harness_fail(__FILE__, __LINE__,
                                 "%s: position %d: logits in chunks of %d differ from one batch", devices[d],
                                 pos, chunks[c]);
                    break;
                }
        }
    }
    free(ref);
    free(got);
    tern_model_free(m);
}

/* A prompt pipelined over two devices (forced with TERN_PIPELINE=1: PoCL shares the CPU's cores)
 * gives the same bits as the ranges run one after the other. */
static void pipelined_prompt_same_bits(void) {
    tern_model *m = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(test_data("vectors/mini-b158-i2s.gguf", 0), &m));
    if (!m)
        return;
    const int n_vocab = tern_model_view(m)->hp.n_vocab;
    enum { N = 2 * TERN_PIPELINE_CHUNK + 37 };
    int32_t tokens[N];
    uint64_t r = 7;
    for (int i = 0; i < N; i++)
        tokens[i] = (int32_t)(test_rand_u64(&r) % (uint64_t)n_vocab);
    float *lg[2] = {malloc((size_t)n_vocab * 4), malloc((size_t)n_vocab * 4)};
    for (int mode = 0; mode < 2 && lg[0] && lg[1]; mode++) {
        setenv("TERN_PIPELINE", mode ? "1" : "0", 1);
        struct tern_session_params sp = {.n_ctx = 256, .n_threads = 2, .device = "cpu,cl:0", .split = "1,1"};
        tern_session *s = NULL;
        const float *out = NULL;
        CHECK_STATUS(TERN_OK, tern_session_create(m, &sp, &s));
        if (s)
            CHECK_STATUS(TERN_OK, tern_session_eval(s, tokens, N, &out));
        if (out)
            memcpy(lg[mode], out, (size_t)n_vocab * 4);
        tern_session_free(s);
    }
    unsetenv("TERN_PIPELINE");
    CHECK(lg[0] && lg[1] && memcmp(lg[0], lg[1], (size_t)n_vocab * 4) == 0);
    free(lg[0]);
    free(lg[1]);
    tern_model_free(m);
}

enum { SEQ_GEN = 16, SEQ_N = 3 };

/* Three sequences in one session on device/split, sequence q's prompt joining at step 3q while the
 * earlier ones decode (continuous batching), greedy: ids[q][g]. With alone (each sequence's logits
 * at every step evaluated by itself), every step's logits must be those bits. */
static void run_sequences(tern_model *m, const char *device, const char *split,
                          const struct harness_ref *cases, const float *alone, int32_t ids[SEQ_N][SEQ_GEN]) {
    const int n_vocab = tern_model_view(m)->hp.n_vocab;
    struct tern_session_params sp = {
        .n_ctx = 64, .n_threads = 2, .device = device, .split = split, .n_seq = SEQ_N};
    tern_session *s = NULL;
    CHECK_STATUS(TERN_OK, tern_session_create(m, &sp, &s));
    float *lg = malloc((size_t)SEQ_N * n_vocab * 4);
    int generated[SEQ_N] = {0}, next[SEQ_N] = {0};
    for (int step = 0; s && lg && step < 3 * SEQ_N + SEQ_GEN; step++) {
        int32_t tokens[64], seqs[64];
        int out[SEQ_N], owner[SEQ_N], n = 0, n_out = 0;
        for (int q = 0; q < SEQ_N; q++) {
            if (step == 3 * q) { /* the prompt */
                for (int i = 0; i < cases[q].n_prompt; i++, n++) {
                    tokens[n] = cases[q].prompt_ids[i];
                    seqs[n] = q;
                }
            } else if (step > 3 * q && generated[q] < SEQ_GEN) {
                tokens[n] = next[q];
                seqs[n++] = q;
            } else {
                continue;
            }
            owner[n_out] = q;
            out[n_out++] = n - 1;
        }
        if (!n)
            continue;
        CHECK_STATUS(TERN_OK, tern_session_eval_batch(s, tokens, seqs, n, out, n_out, NULL, lg));
        for (int j = 0; j < n_out; j++) {
            const int q = owner[j], g = generated[q];
            const float *got = lg + (size_t)j * n_vocab;
            if (alone && memcmp(got, alone + ((size_t)q * SEQ_GEN + g) * n_vocab, (size_t)n_vocab * 4) != 0)
                harness_fail(__FILE__, __LINE__, "%s: sequence %d step %d: logits differ from it alone",
                             device, q, g);
            next[q] = ids[q][g] = harness_argmax(got, n_vocab);
            generated[q]++;
        }
    }
    free(lg);
    tern_session_free(s);
}

/* alone[q][g]: the logits of greedy step g of case q's sequence evaluated by itself */
static void logits_alone(tern_model *m, const char *device, const char *split,
                         const struct harness_ref *cases, float *alone) {
    const int n_vocab = tern_model_view(m)->hp.n_vocab;
    for (int q = 0; q < SEQ_N; q++) {
        struct tern_session_params sp = {.n_ctx = 64, .n_threads = 2, .device = device, .split = split};
        tern_session *s = NULL;
        CHECK_STATUS(TERN_OK, tern_session_create(m, &sp, &s));
        const float *out = NULL;
        if (s)
            CHECK_STATUS(TERN_OK, tern_session_eval(s, cases[q].prompt_ids, cases[q].n_prompt, &out));
        for (int g = 0; g < SEQ_GEN && out; g++) {
            memcpy(alone + ((size_t)q * SEQ_GEN + g) * n_vocab, out, (size_t)n_vocab * 4);
            int32_t id = harness_argmax(out, n_vocab);
            if (g + 1 < SEQ_GEN)
                CHECK_STATUS(TERN_OK, tern_session_eval(s, &id, 1, &out));
        }
        tern_session_free(s);
    }
}

/* Every step's logits are the bits of the sequence evaluated alone on the same devices, and greedy
 * decoding gives bitnet.cpp's ids, on the CPU, on OpenCL and split over both. */
static void sequences_share_batches(void) {
    struct harness_ref cases[3];
    bitnet_cpp_cases(cases);
    tern_model *m = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(test_data("vectors/mini-b158-i2s.gguf", 0), &m));
    if (!m)
        return;
    const int n_vocab = tern_model_view(m)->hp.n_vocab;
    static const struct {
        const char *device, *split;
    } where[] = {{"cpu", NULL}, {"cl:0", NULL}, {"cl:0,cpu", "1,1"}};
    float *alone = malloc((size_t)SEQ_N * SEQ_GEN * n_vocab * 4);
    for (size_t w = 0; w < 3 && alone; w++) {
        logits_alone(m, where[w].device, where[w].split, cases, alone);
        int32_t ids[SEQ_N][SEQ_GEN];
        run_sequences(m, where[w].device, where[w].split, cases, alone, ids);
        for (int q = 0; q < SEQ_N; q++) {
            struct harness_ids c = {.n = SEQ_GEN};
            memcpy(c.ids, ids[q], sizeof ids[q]);
            check_ids(where[w].device, cases[q].generated, &c, SEQ_GEN);
        }
    }
    free(alone);
    tern_model_free(m);
}

/* The same for heads of llama-quantize's k-quant types (a tied Q6_K embedding, a separate Q4_K
 * output), whose batched steps decode each head row once for all their sequences. */
static void quantized_heads_share_batches(void) {
    static const uint32_t embd[2] = {TERN_TYPE_Q6_K, TERN_TYPE_F16},
                          head[2] = {TERN_TYPE_COUNT, TERN_TYPE_Q4_K};
    struct harness_ref cases[SEQ_N];
    memset(cases, 0, sizeof cases);
    for (int q = 0; q < SEQ_N; q++) {
        cases[q].n_prompt = 3 + 2 * q;
        for (int i = 0; i < cases[q].n_prompt; i++)
            cases[q].prompt_ids[i] = (int32_t)((37 * q + 11 * i + 5) % 500);
    }
    for (int f = 0; f < 2; f++) {
        struct tern_maker_params p;
        CHECK_STATUS(TERN_OK, tern_maker_preset("tiny", &p));
        p.embd_type = embd[f];
        p.output_type = head[f];
        p.seed = 60 + (uint64_t)f;
        const char *path = test_tmp("kquant-head.gguf", 0);
        CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
        tern_model *m = NULL;
        CHECK_STATUS(TERN_OK, tern_model_create(path, &m));
        if (!m)
            continue;
        float *alone = malloc((size_t)SEQ_N * SEQ_GEN * (size_t)p.n_vocab * 4);
        static const char *const devices[2] = {"cpu", "cl:0"};
        for (int d = 0; d < 2 && alone; d++) {
            int32_t ids[SEQ_N][SEQ_GEN];
            logits_alone(m, devices[d], NULL, cases, alone);
            run_sequences(m, devices[d], NULL, cases, alone, ids);
        }
        free(alone);
        tern_model_free(m);
    }
}

/* A device failing in the prompt or in decode, at a layer, the embedding or the head: the run goes
 * on over the devices left with bitnet.cpp's ids. */
static void failover_keeps_output(void) {
    static const struct {
        const char *device, *split, *fault;
    } faults[] = {
        {"cl:0,cpu", "1,1", "cl:0:0:0"},    {"cl:0,cpu", "1,1", "cl:0:0:5"},
        {"cpu,cl:0", "1,1", "cl:0:1:0"},    {"cpu,cl:0", "1,1", "cl:0:head:9"},
        {"cl:0,cpu", "1,1", "cl:0:embd:3"}, {"cpu,cl:0", "1,1", "cpu:0:2"},
        {"cl:0", NULL, "cl:0:1:15"},
    };
    struct harness_ref cases[3];
    bitnet_cpp_cases(cases);
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        setenv("TERN_FAULT", faults[i].fault, 1);
        struct harness_ids got;
        char what[96];
        snprintf(what, sizeof what, "--device %s, TERN_FAULT=%s", faults[i].device, faults[i].fault);
        tern_status st = greedy(test_data("vectors/mini-b158-i2s.gguf", 0), faults[i].device, faults[i].split,
                                cases[1].prompt_ids, cases[1].n_prompt, 16, &got);
        if (strcmp(faults[i].device, "cl:0") == 0) {
            /* the only device failed: a clean error, nothing to fail over to */
            CHECK_STATUS(TERN_ERR_DEVICE, st);
        } else {
            CHECK_STATUS(TERN_OK, st);
            check_ids(what, cases[1].generated, &got, 16);
        }
    }
    /* with three sequences: every sequence's KV cache is rebuilt */
    tern_model *m = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(test_data("vectors/mini-b158-i2s.gguf", 0), &m));
    setenv("TERN_FAULT", "cl:0:1:7", 1);
    int32_t ids[SEQ_N][SEQ_GEN];
    if (m)
        run_sequences(m, "cpu,cl:0", "1,1", cases, NULL, ids);
    for (int q = 0; q < SEQ_N && m; q++) {
        struct harness_ids c = {.n = SEQ_GEN};
        memcpy(c.ids, ids[q], sizeof ids[q]);
        check_ids("three sequences, TERN_FAULT=cl:0:1:7", cases[q].generated, &c, SEQ_GEN);
    }
    tern_model_free(m);
    unsetenv("TERN_FAULT");
}

/* tern_batch_check at the edges of a cache of 3 sequences of 8 positions (closed form: position
 * 0..7, sequence 0..2), with the error logged once. */
static int n_batch_errors;
static void count_batch_errors(enum tern_log_level level, const char *msg, void *user) {
    (void)msg;
    (void)user;
    n_batch_errors += level == TERN_LOG_ERROR;
}

static void batch_check_edges(void) {
    static const struct {
        int32_t pos, seq;
        tern_status want;
    } cases[] = {
        {0, 0, TERN_OK},
        {7, 2, TERN_OK},
        {-1, 0, TERN_ERR_CONTEXT_FULL},
        {8, 0, TERN_ERR_CONTEXT_FULL},
        {0, -1, TERN_ERR_CONTEXT_FULL},
        {0, 3, TERN_ERR_CONTEXT_FULL},
    };
    tern_log_set_callback(count_batch_errors, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* the case as the second token, after a valid one of another sequence: every token is
         * checked */
        const int32_t pos[2] = {0, cases[i].pos}, seq[2] = {cases[i].seq == 0 ? 1 : 0, cases[i].seq};
        const struct tern_batch b = {2, pos, seq};
        n_batch_errors = 0;
        CHECK_STATUS(cases[i].want, tern_batch_check(&b, 8, 3, "test"));
        CHECK_INT(cases[i].want == TERN_OK ? 0 : 1, n_batch_errors);
    }
    const struct tern_batch empty = {0, NULL, NULL};
    n_batch_errors = 0;
    CHECK_STATUS(TERN_ERR_ARG, tern_batch_check(&empty, 8, 3, "test"));
    CHECK_INT(1, n_batch_errors);
    /* a sequence's positions must increase (interleaved with another sequence's is fine): a repeated
     * or earlier position would write a K/V slot twice in one batch; 100 sequences take the heap */
    static const struct {
        int32_t pos[4], seq[4];
        tern_status want;
    } order[] = {
        {{0, 0, 1, 1}, {0, 1, 0, 1}, TERN_OK},      {{3, 5, 4, 6}, {0, 0, 1, 1}, TERN_OK},
        {{0, 1, 1, 2}, {0, 0, 0, 0}, TERN_ERR_ARG}, {{2, 0, 1, 3}, {0, 1, 0, 1}, TERN_ERR_ARG},
        {{0, 1, 2, 1}, {0, 1, 2, 99}, TERN_OK},     {{5, 0, 2, 5}, {99, 98, 97, 99}, TERN_ERR_ARG},
    };
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const struct tern_batch b = {4, order[i].pos, order[i].seq};
        n_batch_errors = 0;
        CHECK_STATUS(order[i].want, tern_batch_check(&b, 8, 100, "test"));
        CHECK_INT(order[i].want == TERN_OK ? 0 : 1, n_batch_errors);
    }
    tern_log_set_callback(NULL, NULL);
}

/* tern_cache_dir's order of precedence (scheduler/cache.h), closed form. */
static void cache_dir_precedence(void) {
    char buf[4096], want[4096];
    const char *tmp = test_tmp("cache-dir", 0);
    char saved_tern[4096] = "", saved_xdg[4096] = "", saved_home[4096] = "";
    const char *e;
    bool had_tern = (e = getenv("TERN_CACHE_DIR")) != NULL;
    if (had_tern)
        snprintf(saved_tern, sizeof saved_tern, "%s", e);
    bool had_xdg = (e = getenv("XDG_CACHE_HOME")) != NULL;
    if (had_xdg)
        snprintf(saved_xdg, sizeof saved_xdg, "%s", e);
    bool had_home = (e = getenv("HOME")) != NULL;
    if (had_home)
        snprintf(saved_home, sizeof saved_home, "%s", e);

    setenv("TERN_CACHE_DIR", tmp, 1);
    CHECK(tern_cache_dir(buf, sizeof buf) && strcmp(buf, tmp) == 0);
    setenv("TERN_CACHE_DIR", "", 1);
    CHECK(!tern_cache_dir(buf, sizeof buf));
    unsetenv("TERN_CACHE_DIR");
    setenv("XDG_CACHE_HOME", ".", 1); /* one character: the whole value counts */
    CHECK(tern_cache_dir(buf, sizeof buf) && strcmp(buf, "./tern") == 0);
    setenv("XDG_CACHE_HOME", "", 1);
    setenv("HOME", tmp, 1);
    snprintf(want, sizeof want, "%s/.cache/tern", tmp);
    CHECK(tern_cache_dir(buf, sizeof buf) && strcmp(buf, want) == 0);
    unsetenv("XDG_CACHE_HOME");
    unsetenv("HOME");
    CHECK(!tern_cache_dir(buf, sizeof buf));
    setenv("HOME", "", 1);
    CHECK(!tern_cache_dir(buf, sizeof buf));

    had_tern ? setenv("TERN_CACHE_DIR", saved_tern, 1) : unsetenv("TERN_CACHE_DIR");
    had_xdg ? setenv("XDG_CACHE_HOME", saved_xdg, 1) : unsetenv("XDG_CACHE_HOME");
    had_home ? setenv("HOME", saved_home, 1) : unsetenv("HOME");
}

/* FNV-1a 64 against the published test vectors (offset basis 0xcbf29ce484222325). */
static void fnv1a_test_vectors(void) {
    CHECK(tern_fnv1a(TERN_FNV_SEED, "", 0) == 0xcbf29ce484222325ULL);
    CHECK(tern_fnv1a(TERN_FNV_SEED, "a", 1) == 0xaf63dc4c8601ec8cULL);
    CHECK(tern_fnv1a(TERN_FNV_SEED, "foobar", 6) == 0x85944171f73967e8ULL);
    /* continuing from a hash is hashing the concatenation */
    CHECK(tern_fnv1a(tern_fnv1a(TERN_FNV_SEED, "foo", 3), "bar", 3) == 0x85944171f73967e8ULL);
}

/* The probe cache: a stored profile reads back exactly under its key only; files of another
 * version are stale, files that do not parse or hold a non-finite or negative figure corrupt: each
 * is refused with one notice saying which (the head times alone may be +inf). */
static int n_notices, n_stale;
static void count_notices(enum tern_log_level level, const char *msg, void *user) {
    (void)user;
    n_notices += level == TERN_LOG_INFO && strstr(msg, "corrupt probe cache") != NULL;
    n_stale += level == TERN_LOG_INFO && strstr(msg, "stale probe cache") != NULL;
}

static void probe_cache_round_trip(void) {
    const char *saved = getenv("TERN_CACHE_DIR");
    char saved_dir[4096] = "";
    if (saved)
        snprintf(saved_dir, sizeof saved_dir, "%s", saved);
    const char *dir = test_tmp("probe-cache", 0);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    CHECK(system(cmd) == 0);
    setenv("TERN_CACHE_DIR", dir, 1);

    const struct tern_probe p = {1.25e-3, 2.5e-5, INFINITY, 3.75e-6, 4.5e-7, 6.5e-4};
    struct tern_probe q;
    CHECK(!tern_probe_cache_load("key one", &q));
    tern_probe_cache_store("key one", &p);
    memset(&q, 0, sizeof q);
    CHECK(tern_probe_cache_load("key one", &q));
    CHECK(q.decode_layer_s == p.decode_layer_s && q.prefill_layer_s == p.prefill_layer_s && isinf(q.head_s) &&
          q.call_s == p.call_s && q.call_token_s == p.call_token_s && q.head_cert_s == p.head_cert_s);
    CHECK(!tern_probe_cache_load("key two", &q));

    /* the file of "key one", rewritten with each bad body */
    char path[4096] = "";
    snprintf(cmd, sizeof cmd, "ls '%s'/probe-*.txt", dir);
    FILE *ls = popen(cmd, "r");
    if (ls && fgets(path, sizeof path, ls))
        path[strcspn(path, "\n")] = 0;
    if (ls)
        pclose(ls);
    static const char *const bad[] = {
        "tern-probe 2\nkey one\n1 1 1 1 1 1\n",   "tern-probe 3 \nkey one\n1 1 1 1 1 1\n",
        "tern-probe x\nkey one\n1 1 1 1 1 1\n",   "tern-probe 12\nkey one\n1 1 1 1 1 1\n",
        "tern-probe 3\nkey one\nnan 1 1 1 1 1\n", "tern-probe 3\nkey one\n1 1 1 1 -1 1\n",
        "tern-probe 3\nkey one\n1 inf 1 1 1 1\n", "tern-probe 3\nkey one\n1 1 -inf 1 1 1\n",
        "tern-probe 3\nkey one\n1 1 1 1 1\n",     "tern-probe 3\nkey one\n1 1 1 1 1 -inf\n",
    };
    tern_log_set_callback(count_notices, NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        CHECK(f != NULL);
        if (!f)
            break;
        fputs(bad[i], f);
        fclose(f);
        n_notices = n_stale = 0;
        CHECK(!tern_probe_cache_load("key one", &q));
        const bool stale = i == 0 || i == 3; /* version 2 and 12: a number, not 3 */
        CHECK_INT(stale ? 0 : 1, n_notices);
        CHECK_INT(stale ? 1 : 0, n_stale);
    }
    tern_log_set_callback(NULL, NULL);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("tern-probe 3\nkey one\n1 2 inf 4 5 inf\n", f);
        fclose(f);
    }
    CHECK(tern_probe_cache_load("key one", &q));
    CHECK(q.decode_layer_s == 1 && q.prefill_layer_s == 2 && isinf(q.head_s) && q.call_s == 4 &&
          q.call_token_s == 5 && isinf(q.head_cert_s));
    saved ? setenv("TERN_CACHE_DIR", saved_dir, 1) : unsetenv("TERN_CACHE_DIR");
}

/* TERN_FAULT values that are not ID:WHERE:STEP, or whose WHERE is no layer, embd or head, are
 * ignored with one warning saying which: the run keeps bitnet.cpp's ids. A valid one on the only
 * device fails the run (the control). */
static int n_fault_warnings;
static char fault_warning[512];
static void capture_fault_warning(enum tern_log_level level, const char *msg, void *user) {
    (void)user;
    if (level == TERN_LOG_WARN) {
        n_fault_warnings++;
        snprintf(fault_warning, sizeof fault_warning, "%s", msg);
    }
}

static void malformed_fault_ignored(void) {
    static const struct {
        const char *fault, *says;
    } cases[] = {
        {"cpu", "is not ID:WHERE:STEP"},
        {":0:3", "is not ID:WHERE:STEP"},
        {"cpu:0:x", "is not ID:WHERE:STEP"},
        {"cpu:wherewithsixteen:1", "is not ID:WHERE:STEP"},
        {"a-device-id-of-thirty-two-chars!:0:1", "is not ID:WHERE:STEP"},
        {"cpu::3", "is not a layer, embd or head"},
        {"cl:0::3", "is not a layer, embd or head"},
        {"cpu:middle:1", "is not a layer, embd or head"},
    };
    struct harness_ref refs[3];
    bitnet_cpp_cases(refs);
    struct harness_ids got;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("TERN_FAULT", cases[i].fault, 1);
        n_fault_warnings = 0;
        fault_warning[0] = 0;
        tern_log_set_callback(capture_fault_warning, NULL);
        const tern_status st = greedy(test_data("vectors/mini-b158-i2s.gguf", 0), "cpu", NULL,
                                      refs[1].prompt_ids, refs[1].n_prompt, 8, &got);
        tern_log_set_callback(NULL, NULL);
        CHECK_STATUS(TERN_OK, st);
        if (st == TERN_OK)
            check_ids(cases[i].fault, refs[1].generated, &got, 8);
        CHECK_INT(1, n_fault_warnings);
        if (!strstr(fault_warning, cases[i].says))
            harness_fail(__FILE__, __LINE__, "TERN_FAULT=%s: warning '%s' lacks '%s'", cases[i].fault,
                         fault_warning, cases[i].says);
    }
    setenv("TERN_FAULT", "cpu:0:2", 1);
    tern_log_set_callback(capture_fault_warning, NULL); /* the error line is expected */
    CHECK_STATUS(TERN_ERR_DEVICE, greedy(test_data("vectors/mini-b158-i2s.gguf", 0), "cpu", NULL,
                                         refs[1].prompt_ids, refs[1].n_prompt, 8, &got));
    tern_log_set_callback(NULL, NULL);
    unsetenv("TERN_FAULT");
}

int main(void) {
    RUN(batch_check_edges);
    RUN(malformed_fault_ignored);
    RUN(cache_dir_precedence);
    RUN(fnv1a_test_vectors);
    RUN(probe_cache_round_trip);
    RUN(plan_fast_gpu_short_of_memory);
    RUN(plan_integrated_gpu_small_max_alloc);
    RUN(plan_devices_sharing_cores);
    RUN(plan_pipelined_prefill);
    RUN(plan_gpu_slower_than_cpu);
    RUN(plan_ties_go_to_the_first_device);
    RUN(plan_cpu_only_and_dead_devices);
    RUN(plan_explicit_split);
    int n = 0;
    tern_cl_device_count(&n);
    const int gate = harness_opencl_gate(n);
    if (gate >= 0)
        return gate ? gate : harness_finish();
    RUN(splits_match_bitnet_cpp);
    RUN(bad_splits_refused);
    RUN(small_max_alloc);
    RUN(batch_invariance);
    RUN(pipelined_prompt_same_bits);
    RUN(sequences_share_batches);
    RUN(quantized_heads_share_batches);
    RUN(failover_keeps_output);
    return harness_finish();
}
