/* OpenCL kernels against the scalar reference (cpu/ref_*.c) on random inputs over many shapes, on
 * the first OpenCL device (PoCL in CI): integer parts bit-exact (quantized activations, act scales,
 * ternary int32 sums, f16 KV cache), float parts within per-op NMSE limits, and guard bytes after
 * every output buffer. Runs twice: the device's own kernel design (cl_runtime.c's table: the CPU-driver
 * design on PoCL) with its fast paths, then the other design (TERN_CL_KERNELS) with the portable
 * fallbacks forced, so CI on PoCL tests both the CPU and the GPU designs. Without any OpenCL platform
 * this suite FAILS unless TERN_CL_OPTIONAL=1.
 * `test_cl_kernels --no-platform` checks the clear failure when the loader finds no platform (ctest
 * runs it with OCL_ICD_VENDORS pointing to an empty folder). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl/cl_device.h"
#include "cpu/ref.h"
#include "harness.h"
#include "scheduler/fp16.h"
#include "scheduler/head_cert.h"
#include "scheduler/log.h"

#if TERN_HAVE_OPENCL
#include "cl/cl_runtime.h"

#define GUARD 64
#define GUARD_BYTE 0xA5

static struct tern_cl_rt *rt;
static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static int n_checks;

/* Per-op NMSE limits (sum (a-b)^2 / sum a^2). */
#define NMSE_TERNARY 1e-12 /* same formula, correctly rounded division: equal in practice */
#define NMSE_TYPED 1e-8    /* f32 dot products summed in another order (cancellation in long rows) */
#define NMSE_EMBED 0.0     /* element decoding is exact */
#define NMSE_RMSNORM 1e-11
#define NMSE_ROPE 1e-10
#define NMSE_ATTENTION 1e-9
#define NMSE_FFN 1e-12

/* ---- device buffers with guard bytes */

struct gbuf {
    cl_mem mem;
    size_t size; /* payload bytes; GUARD more follow */
};

static struct gbuf gbuf_new(size_t size, const void *init) {
    struct gbuf b = {NULL, size};
    uint8_t *tmp = malloc(size + GUARD);
    memset(tmp, GUARD_BYTE, size + GUARD);
    if (init)
        memcpy(tmp, init, size);
    CHECK_STATUS(TERN_OK,
                 tern_cl_buf_create(rt, CL_MEM_READ_WRITE, size + GUARD, NULL, "test buffer", &b.mem));
    if (b.mem)
        CHECK_STATUS(TERN_OK, tern_cl_write(rt, b.mem, 0, size + GUARD, tmp));
    free(tmp);
    return b;
}

/* Read the payload into out and check the guard bytes are untouched. */
static void gbuf_read(struct gbuf *b, void *out, const char *what) {
    uint8_t *tmp = malloc(b->size + GUARD);
    CHECK_STATUS(TERN_OK, tern_cl_read(rt, b->mem, 0, b->size + GUARD, tmp));
    int bad = 0;
    for (size_t i = 0; i < GUARD; i++)
        bad += tmp[b->size + i] != GUARD_BYTE;
    if (bad)
        harness_fail(__FILE__, __LINE__, "%s: %d guard bytes after the output were overwritten", what, bad);
    if (out)
        memcpy(out, tmp, b->size);
    free(tmp);
}

static void gbuf_free(struct gbuf *b) {
    tern_cl_buf_free(rt, &b->mem);
}

/* NaN/Inf first, then NMSE against the limit. */
static void check_nmse(const float *expected, const float *actual, size_t n, double limit, const char *what) {
    double num = 0, den = 0;
    n_checks++;
    for (size_t i = 0; i < n; i++) {
        if (isnan(actual[i]) != isnan(expected[i]) || isinf(actual[i]) != isinf(expected[i])) {
            harness_fail(__FILE__, __LINE__, "%s: element %zu: expected %.9g, got %.9g", what, i, expected[i],
                         actual[i]);
            return;
        }
        if (isnan(expected[i]) || isinf(expected[i]))
            continue;
        double d = (double)expected[i] - (double)actual[i];
        num += d * d;
        den += (double)expected[i] * expected[i];
    }
    double nmse = den > 0 ? num / den : num;
    if (!(nmse <= limit)) {
        size_t worst = 0;
        for (size_t i = 1; i < n; i++)
            if (fabsf(expected[i] - actual[i]) > fabsf(expected[worst] - actual[worst]))
                worst = i;
        harness_fail(__FILE__, __LINE__, "%s: NMSE %.3g > %.3g (worst element %zu: expected %.9g, got %.9g)",
                     what, nmse, limit, worst, expected[worst], actual[worst]);
    }
}

static void check_bytes(const void *expected, const void *actual, size_t n, const char *what) {
    n_checks++;
    const uint8_t *e = expected, *a = actual;
    for (size_t i = 0; i < n; i++) {
        if (e[i] != a[i]) {
            harness_fail(__FILE__, __LINE__, "%s: byte %zu: expected 0x%02x, got 0x%02x", what, i, e[i],
                         a[i]);
            return;
        }
    }
}

static float *rand_floats(size_t n, float sigma) {
    float *x = malloc(n * sizeof *x + 1);
    for (size_t i = 0; i < n; i++)
        x[i] = sigma * test_rand_normal(&rng);
    return x;
}

/* ---- quantization */

static void quant_case(int n, int n_tok, int x_stride, float sigma) {
    const int n_pad = (n + 127) / 128 * 128;
    float *x = rand_floats((size_t)n_tok * x_stride, sigma);
    if (n_tok > 1)
        for (int i = 0; i < n; i++) /* an all-zero row: scale from the 1e-5 floor */
            x[(size_t)x_stride + i] = 0.0f;
    for (int i = 0; i < n; i += 17) /* exact .5 ties at scale 127/max: x = (k + 0.5) * max/127 */
        x[i] = (float)((i % 50) - 25 + 0.5) * (fabsf(x[0]) + 1.0f) / 127.0f;
    int8_t *q_ref = calloc((size_t)n_tok * n_pad, 1), *q_cl = calloc((size_t)n_tok * n_pad, 1);
    float *s_ref = malloc(n_tok * sizeof(float)), *s_cl = malloc(n_tok * sizeof(float));
    int32_t *sum_ref = malloc(n_tok * 4), *sum_cl = malloc(n_tok * 4);
    for (int t = 0; t < n_tok; t++)
        s_ref[t] =
            tern_ref_quantize_act(q_ref + (size_t)t * n_pad, x + (size_t)t * x_stride, n, n_pad, &sum_ref[t]);
    struct gbuf bx = gbuf_new((size_t)n_tok * x_stride * 4, x), bq = gbuf_new((size_t)n_tok * n_pad, NULL),
                bs = gbuf_new(n_tok * 4, NULL), bsum = gbuf_new(n_tok * 4, NULL);
    CHECK_STATUS(TERN_OK,
                 tern_cl_quantize_act(rt, bq.mem, bs.mem, bsum.mem, bx.mem, n, n_pad, x_stride, n_tok));
    gbuf_read(&bq, q_cl, "quantize q");
    gbuf_read(&bs, s_cl, "quantize act_scale");
    gbuf_read(&bsum, sum_cl, "quantize sum_q");
    char what[96];
    snprintf(what, sizeof what, "quantize n=%d tok=%d: q", n, n_tok);
    check_bytes(q_ref, q_cl, (size_t)n_tok * n_pad, what);
    snprintf(what, sizeof what, "quantize n=%d tok=%d: act_scale", n, n_tok);
    check_bytes(s_ref, s_cl, n_tok * 4, what);
    snprintf(what, sizeof what, "quantize n=%d tok=%d: sum_q", n, n_tok);
    check_bytes(sum_ref, sum_cl, n_tok * 4, what);
    gbuf_free(&bx);
    gbuf_free(&bq);
    gbuf_free(&bs);
    gbuf_free(&bsum);
    free(x), free(q_ref), free(q_cl), free(s_ref), free(s_cl), free(sum_ref), free(sum_cl);
}

static void test_quantize(void) {
    static const int ns[] = {1, 7, 128, 255, 256, 1000, 2560, 3200, 6912};
    static const int toks[] = {1, 3, 17};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (size_t j = 0; j < sizeof toks / sizeof toks[0]; j++)
            quant_case(ns[i], toks[j], ns[i] + (int)j * 3, j == 2 ? 1e-3f : 2.0f);
}

/* ---- ternary products */

/* Random packed weights for n_out x n_in (codes 0..2; padding code 1). */
static uint8_t *rand_codes(int64_t n_in, int64_t k_pad, int64_t n_out) {
    uint8_t *codes = malloc((size_t)(n_out * k_pad / 4));
    for (int64_t r = 0; r < n_out; r++) {
        uint8_t *row = codes + r * (k_pad / 4);
        memset(row, 0, (size_t)(k_pad / 4));
        for (int64_t k = 0; k < k_pad; k++) {
            int c = k < n_in ? (int)(test_rand_u64(&rng) % 3) : 1;
            int64_t b = k / 128, j = (k % 128) / 32, i = k % 32;
            row[32 * b + i] |= (uint8_t)(c << (6 - 2 * j));
        }
    }
    return codes;
}

static void ternary_case(int n_in, int n_out, int n_tok, enum tern_cl_ternary_path path, bool accumulate) {
    const int k_pad = (n_in + 127) / 128 * 128;
    struct tern_ternary w = {
        rand_codes(n_in, k_pad, n_out), n_in, k_pad, k_pad / 4, n_out, test_rand_uniform(&rng, 0.25f, 1.0f),
        n_tok % 2 ? 1.0f : 0.75f};
    float *x = rand_floats((size_t)n_tok * n_in, 1.5f);
    int8_t *q = malloc((size_t)n_tok * k_pad);
    float *s = malloc(n_tok * 4);
    int32_t *sum = malloc(n_tok * 4);
    for (int t = 0; t < n_tok; t++)
        s[t] = tern_ref_quantize_act(q + (size_t)t * k_pad, x + (size_t)t * n_in, n_in, k_pad, &sum[t]);
    const size_t ny = (size_t)n_tok * n_out;
    float *y0 = rand_floats(ny, 1.0f), *y_ref = malloc(ny * 4), *y_cl = malloc(ny * 4);
    int32_t *acc_ref = malloc(ny * 4), *acc_cl = malloc(ny * 4);
    tern_ref_ternary_matmul(y_ref, &w, q, s, n_tok, 0, n_out);
    for (int t = 0; t < n_tok; t++)
        for (int r = 0; r < n_out; r++) {
            acc_ref[(size_t)t * n_out + r] =
                tern_ref_ternary_dot(w.codes + (size_t)r * w.row_bytes, q + (size_t)t * k_pad, k_pad);
            if (accumulate)
                y_ref[(size_t)t * n_out + r] = y0[(size_t)t * n_out + r] + y_ref[(size_t)t * n_out + r];
        }
    struct gbuf bw = gbuf_new((size_t)n_out * w.row_bytes, w.codes), bq = gbuf_new((size_t)n_tok * k_pad, q),
                bs = gbuf_new(n_tok * 4, s), bsum = gbuf_new(n_tok * 4, sum), by = gbuf_new(ny * 4, y0),
                bacc = gbuf_new(ny * 4, NULL);
    CHECK_STATUS(TERN_OK, tern_cl_ternary(rt, by.mem, bacc.mem, bw.mem, &w, bq.mem, bs.mem, bsum.mem, n_tok,
                                          n_out, accumulate, path));
    gbuf_read(&by, y_cl, "ternary y");
    gbuf_read(&bacc, acc_cl, "ternary acc");
    char what[128];
    snprintf(what, sizeof what, "ternary %s K=%d N=%d tok=%d%s: int32 sums",
             path == TERN_CL_TERNARY_MATVEC ? "matvec" : "matmul", n_in, n_out, n_tok,
             accumulate ? " +=" : "");
    check_bytes(acc_ref, acc_cl, ny * 4, what);
    snprintf(what, sizeof what, "ternary %s K=%d N=%d tok=%d%s: y",
             path == TERN_CL_TERNARY_MATVEC ? "matvec" : "matmul", n_in, n_out, n_tok,
             accumulate ? " +=" : "");
    check_nmse(y_ref, y_cl, ny, NMSE_TERNARY, what);
    gbuf_free(&bw), gbuf_free(&bq), gbuf_free(&bs), gbuf_free(&bsum), gbuf_free(&by), gbuf_free(&bacc);
    free((void *)w.codes), free(x), free(q), free(s), free(sum), free(y0), free(y_ref), free(y_cl),
        free(acc_ref), free(acc_cl);
}

static void test_ternary(void) {
    static const int shapes[][2] = {{128, 1},    {200, 3},   {256, 64},  {384, 129}, {1000, 31},
                                    {2560, 257}, {3200, 45}, {6912, 40}, {9000, 33}, {256, 513}};
    /* token groups of 4 (the matvec) and 8 (the CPU design's matmul), and their remainders */
    static const int toks[] = {1, 2, 3, 4, 5, 7, 33, 70};
    int c = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (size_t j = 0; j < sizeof toks / sizeof toks[0]; j++, c++) {
            ternary_case(shapes[i][0], shapes[i][1], toks[j], TERN_CL_TERNARY_MATVEC, c % 3 == 1);
            ternary_case(shapes[i][0], shapes[i][1], toks[j], TERN_CL_TERNARY_MATMUL, c % 3 == 2);
        }
}

/* ---- typed rows: head matvec and embedding */

static void put_half(uint8_t *p, float v) {
    uint16_t h = tern_fp32_to_fp16(v);
    memcpy(p, &h, 2);
}

/* A random row of type with n elements (block types get sane f16 scales). */
static void rand_row(uint8_t *row, uint32_t type, int64_t n) {
    const struct tern_type_traits *tr = tern_type_traits(type);
    size_t bytes = (size_t)(n / tr->block_size) * tr->block_bytes;
    for (size_t i = 0; i < bytes; i++)
        row[i] = (uint8_t)test_rand_u64(&rng);
    for (int64_t b = 0; b < n / tr->block_size; b++) {
        uint8_t *blk = row + (size_t)b * tr->block_bytes;
        switch (type) {
        case TERN_TYPE_F32:
            for (int k = 0; k < 1; k++) {
                float v = test_rand_normal(&rng);
                memcpy(blk, &v, 4);
            }
            break;
        case TERN_TYPE_F16:
            put_half(blk, test_rand_normal(&rng));
            break;
        case TERN_TYPE_BF16: {
            uint16_t h = tern_fp32_to_bf16(test_rand_normal(&rng));
            memcpy(blk, &h, 2);
            break;
        }
        case TERN_TYPE_Q8_0:
            put_half(blk, test_rand_uniform(&rng, 0.001f, 0.02f));
            break;
        case TERN_TYPE_Q4_K:
            put_half(blk, test_rand_uniform(&rng, 0.001f, 0.01f));
            put_half(blk + 2, test_rand_uniform(&rng, 0.001f, 0.01f));
            break;
        case TERN_TYPE_Q6_K:
            put_half(blk + 208, test_rand_uniform(&rng, 0.0005f, 0.005f));
            break;
        }
    }
}

/* A matvec of nx inputs (rows x0 .. x0 + nx - 1 of five) gives each input the bits of its own call, for
 * nx = 2, 3 and TERN_CL_MATVEC_MAX_NX (a batched decode step's head); rows [begin, begin + rows) of t
 * in data. */
static void multi_input_case(const struct tern_tensor *t, cl_mem data, int64_t begin, int64_t rows,
                             const char *what) {
    enum { NXS = 5 };
    float *x = rand_floats((size_t)NXS * (size_t)t->ne0, 1.0f);
    float *multi = malloc((size_t)TERN_CL_MATVEC_MAX_NX * (size_t)rows * 4 + 4),
          *one = malloc((size_t)rows * 4 + 4);
    struct gbuf bx = gbuf_new((size_t)NXS * (size_t)t->ne0 * 4, x),
                bm = gbuf_new((size_t)TERN_CL_MATVEC_MAX_NX * (size_t)rows * 4, NULL),
                b1 = gbuf_new((size_t)rows * 4, NULL);
    static const int nxs[3] = {2, 3, TERN_CL_MATVEC_MAX_NX};
    for (int i = 0; i < 3; i++) {
        const int nx = nxs[i], x0 = NXS - nx;
        CHECK_STATUS(TERN_OK, tern_cl_matvec(rt, bm.mem, data, t, bx.mem, x0, nx, begin, rows, NULL));
        gbuf_read(&bm, multi, "matvec out (several inputs)");
        for (int k = 0; k < nx; k++) {
            CHECK_STATUS(TERN_OK, tern_cl_matvec(rt, b1.mem, data, t, bx.mem, x0 + k, 1, begin, rows, NULL));
            gbuf_read(&b1, one, "matvec out");
            char w[128];
            snprintf(w, sizeof w, "%s, input %d of %d", what, k, nx);
            check_bytes(one, multi + (size_t)k * (size_t)rows, (size_t)rows * 4, w);
        }
    }
    CHECK_STATUS(TERN_ERR_ARG, tern_cl_matvec(rt, bm.mem, data, t, bx.mem, 0, TERN_CL_MATVEC_MAX_NX + 1,
                                              begin, rows, NULL));
    CHECK_STATUS(TERN_ERR_ARG, tern_cl_matvec(rt, bm.mem, data, t, bx.mem, 0, 0, begin, rows, NULL));
    gbuf_free(&bx), gbuf_free(&bm), gbuf_free(&b1);
    free(x), free(multi), free(one);
}

static void typed_case(uint32_t type, int64_t ne0, int64_t ne1) {
    const struct tern_type_traits *tr = tern_type_traits(type);
    struct tern_tensor t = {NULL, type, ne0, ne1, (size_t)(ne0 / tr->block_size) * tr->block_bytes};
    uint8_t *data = malloc(t.row_bytes * (size_t)ne1);
    for (int64_t r = 0; r < ne1; r++)
        rand_row(data + t.row_bytes * (size_t)r, type, ne0);
    t.data = data;
    float *x = rand_floats((size_t)ne0, 1.0f);
    const int64_t begin = ne1 > 3 ? 2 : 0, rows = ne1 - begin;
    float *y_ref = malloc((size_t)rows * 4 + 4), *y_cl = malloc((size_t)rows * 4 + 4);
    tern_ref_matvec(y_ref, &t, x, begin, ne1);
    struct gbuf bd = gbuf_new(t.row_bytes * (size_t)ne1, data), bx = gbuf_new((size_t)ne0 * 4, x),
                by = gbuf_new((size_t)rows * 4, NULL);
    CHECK_STATUS(TERN_OK, tern_cl_matvec(rt, by.mem, bd.mem, &t, bx.mem, 0, 1, begin, rows, NULL));
    gbuf_read(&by, y_cl, "matvec out");
    char what[96];
    snprintf(what, sizeof what, "matvec %s %lldx%lld", tr->name, (long long)ne0, (long long)ne1);
    check_nmse(y_ref, y_cl, (size_t)rows, NMSE_TYPED, what);
    multi_input_case(&t, bd.mem, begin, rows, what);

    /* embedding: a few tokens, repeats included */
    const int n_tok = 5;
    int32_t tokens[5];
    for (int i = 0; i < n_tok; i++)
        tokens[i] = (int32_t)(test_rand_u64(&rng) % (uint64_t)ne1);
    tokens[3] = tokens[1];
    float *e_ref = malloc((size_t)n_tok * ne0 * 4), *e_cl = malloc((size_t)n_tok * ne0 * 4);
    for (int i = 0; i < n_tok; i++)
        tern_ref_dequant_row(e_ref + i * ne0, data + t.row_bytes * (size_t)tokens[i], type, ne0);
    struct gbuf btok = gbuf_new(sizeof tokens, tokens), be = gbuf_new((size_t)n_tok * ne0 * 4, NULL);
    CHECK_STATUS(TERN_OK, tern_cl_embed(rt, be.mem, bd.mem, &t, btok.mem, n_tok));
    gbuf_read(&be, e_cl, "embed out");
    snprintf(what, sizeof what, "embed %s %lldx%lld", tr->name, (long long)ne0, (long long)ne1);
    check_nmse(e_ref, e_cl, (size_t)n_tok * ne0, NMSE_EMBED, what);
    gbuf_free(&bd), gbuf_free(&bx), gbuf_free(&by), gbuf_free(&btok), gbuf_free(&be);
    free(data), free(x), free(y_ref), free(y_cl), free(e_ref), free(e_cl);
}

static void test_typed(void) {
    static const uint32_t types[] = {TERN_TYPE_F32,  TERN_TYPE_F16,  TERN_TYPE_BF16,
                                     TERN_TYPE_Q8_0, TERN_TYPE_Q4_K, TERN_TYPE_Q6_K};
    static const int64_t ne0s[] = {256, 512, 2560, 4608, 8448};
    static const int64_t ne1s[] = {1, 7, 100, 333};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        for (size_t j = 0; j < sizeof ne0s / sizeof ne0s[0]; j++)
            typed_case(types[i], ne0s[j], ne1s[(i + j) % 4]);
        if (types[i] == TERN_TYPE_Q8_0)
            typed_case(types[i], 96, 9);
    }
    /* plain types: any row length, including odd ones */
    static const int64_t odd[] = {1, 7, 33, 1001};
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < sizeof odd / sizeof odd[0]; j++)
            typed_case(types[i], odd[j], 50);
}

/* ---- the certified head's shadow (scheduler/head_cert.h) */

/* Rows of n (a multiple of 32; 544 leaves a short last block) built by the reference's shadow
 * builder from a random F16 head: the kernel's float dot of each input against the sums in double,
 * and several inputs in one pass with each input's own bits. */
static void shadow_case(int64_t n, int64_t n_rows) {
    enum { NX = TERN_CL_MATVEC_MAX_NX };
    uint16_t *head = malloc((size_t)(n * n_rows) * 2);
    for (int64_t i = 0; i < n * n_rows; i++)
        head[i] = tern_fp32_to_fp16(test_rand_normal(&rng));
    const struct tern_tensor t = {head, TERN_TYPE_F16, n, n_rows, (size_t)n * 2};
    void *blob = malloc(tern_head_shadow_bytes(n, n_rows));
    tern_head_shadow_rows(blob, &t, 0, n_rows);
    struct tern_head_shadow sh;
    tern_head_shadow_view(&sh, blob, n, n_rows);
    float *x = rand_floats((size_t)(NX * n), 1.0f), *ref = malloc((size_t)(NX * n_rows) * 4),
          *got = malloc((size_t)(NX * n_rows) * 4), *one = malloc((size_t)n_rows * 4);
    for (int k = 0; k < NX; k++)
        for (int64_t r = 0; r < n_rows; r++) {
            double acc = 0.0;
            for (int64_t b = 0; b < sh.n_blocks; b++) {
                double part = 0.0;
                for (int64_t i = b * TERN_HEAD_SHADOW_BLOCK; i < n && i < (b + 1) * TERN_HEAD_SHADOW_BLOCK;
                     i++)
                    part += ((int)sh.q[r * n + i] - 128) * (double)x[k * n + i];
                acc += sh.d[r * sh.n_blocks + b] * part;
            }
            ref[k * n_rows + r] = (float)acc;
        }
    struct gbuf bq = gbuf_new((size_t)(n * n_rows), sh.q),
                bd = gbuf_new((size_t)(n_rows * sh.n_blocks) * 4, sh.d),
                bx = gbuf_new((size_t)(NX * n) * 4, x), by = gbuf_new((size_t)(NX * n_rows) * 4, NULL);
    CHECK_STATUS(TERN_OK,
                 tern_cl_shadow_matvec(rt, by.mem, bq.mem, bd.mem, bx.mem, NX, n, n_rows, sh.n_blocks));
    gbuf_read(&by, got, "shadow out");
    char what[96];
    snprintf(what, sizeof what, "shadow %lldx%lld", (long long)n, (long long)n_rows);
    check_nmse(ref, got, (size_t)(NX * n_rows), NMSE_TYPED, what);
    for (int k = 0; k < NX; k++) {
        struct gbuf bxk = gbuf_new((size_t)n * 4, x + k * n), byk = gbuf_new((size_t)n_rows * 4, NULL);
        CHECK_STATUS(TERN_OK,
                     tern_cl_shadow_matvec(rt, byk.mem, bq.mem, bd.mem, bxk.mem, 1, n, n_rows, sh.n_blocks));
        gbuf_read(&byk, one, "shadow out");
        snprintf(what, sizeof what, "shadow %lldx%lld, input %d of %d", (long long)n, (long long)n_rows, k,
                 NX);
        check_bytes(one, got + k * n_rows, (size_t)n_rows * 4, what);
        gbuf_free(&bxk), gbuf_free(&byk);
    }
    gbuf_free(&bq), gbuf_free(&bd), gbuf_free(&bx), gbuf_free(&by);
    free(head), free(blob), free(x), free(ref), free(got), free(one);
}

static void test_shadow(void) {
    static const int64_t ns[] = {256, 544, 2560};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        shadow_case(ns[i], 97);
}

/* ---- RMSNorm */

static void test_rmsnorm(void) {
    static const int ns[] = {1, 7, 256, 2560, 6912};
    static const int toks[] = {1, 5};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (size_t j = 0; j < sizeof toks / sizeof toks[0]; j++) {
            const int n = ns[i], n_tok = toks[j];
            const size_t nn = (size_t)n * n_tok;
            float *x = rand_floats(nn, 3.0f), *w = rand_floats((size_t)n, 1.0f);
            float *y_ref = malloc(nn * 4), *y_cl = malloc(nn * 4);
            for (int t = 0; t < n_tok; t++)
                tern_ref_rmsnorm(y_ref + (size_t)t * n, x + (size_t)t * n, w, n, 1e-5f);
            struct gbuf bx = gbuf_new(nn * 4, x), bw = gbuf_new((size_t)n * 4, w),
                        by = gbuf_new(nn * 4, NULL);
            CHECK_STATUS(TERN_OK, tern_cl_rmsnorm(rt, by.mem, bx.mem, bw.mem, n, 1e-5f, n_tok));
            gbuf_read(&by, y_cl, "rmsnorm out");
            char what[64];
            snprintf(what, sizeof what, "rmsnorm n=%d tok=%d", n, n_tok);
            check_nmse(y_ref, y_cl, nn, NMSE_RMSNORM, what);
            /* in place */
            CHECK_STATUS(TERN_OK, tern_cl_rmsnorm(rt, bx.mem, bx.mem, bw.mem, n, 1e-5f, n_tok));
            gbuf_read(&bx, y_cl, "rmsnorm in place");
            snprintf(what, sizeof what, "rmsnorm in place n=%d tok=%d", n, n_tok);
            check_nmse(y_ref, y_cl, nn, NMSE_RMSNORM, what);
            gbuf_free(&bx), gbuf_free(&bw), gbuf_free(&by);
            free(x), free(w), free(y_ref), free(y_cl);
        }
}

/* ---- RoPE */

static void test_rope(void) {
    static const int cfg[][3] = {{1, 64, 64}, {2, 128, 128}, {20, 128, 128}, {3, 128, 32}, {4, 80, 80}};
    static const int pos0s[] = {0, 5, 4000};
    static const int toks[] = {1, 9};
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++)
        for (size_t p = 0; p < 3; p++)
            for (size_t j = 0; j < 2; j++)
                for (int style = 0; style < 2; style++) {
                    const int n_head = cfg[c][0], head_dim = cfg[c][1], n_rot = cfg[c][2], n_tok = toks[j];
                    const int stride = n_head * head_dim + (int)j * 5;
                    const size_t nn = (size_t)n_tok * stride;
                    float *x = rand_floats(nn, 1.0f), *y_ref = malloc(nn * 4), *y_cl = malloc(nn * 4);
                    memcpy(y_ref, x, nn * 4);
                    const float theta = style ? 10000.0f : 500000.0f;
                    for (int t = 0; t < n_tok; t++)
                        tern_ref_rope(y_ref + (size_t)t * stride, n_head, head_dim, n_rot, pos0s[p] + t,
                                      theta, (enum tern_rope_style)style);
                    int32_t pos[9];
                    for (int t = 0; t < n_tok; t++)
                        pos[t] = pos0s[p] + t;
                    struct gbuf bx = gbuf_new(nn * 4, x), bpos = gbuf_new((size_t)n_tok * 4, pos);
                    CHECK_STATUS(TERN_OK, tern_cl_rope(rt, bx.mem, n_head, head_dim, n_rot, stride, bpos.mem,
                                                       theta, (enum tern_rope_style)style, n_tok));
                    gbuf_free(&bpos);
                    gbuf_read(&bx, y_cl, "rope");
                    char what[96];
                    snprintf(what, sizeof what, "rope %s heads=%d dim=%d rot=%d pos0=%d tok=%d",
                             style ? "norm" : "neox", n_head, head_dim, n_rot, pos0s[p], n_tok);
                    check_nmse(y_ref, y_cl, nn, NMSE_ROPE, what);
                    gbuf_free(&bx);
                    free(x), free(y_ref), free(y_cl);
                }
}

/* ---- KV store and attention */

static void attention_case(int n_head, int n_head_kv, int head_dim, int pos0, int n_tok) {
    const int kv_dim = n_head_kv * head_dim, q_dim = n_head * head_dim, n_ctx = pos0 + n_tok;
    /* earlier positions: random cache contents; the batch's own k/v come through kv_store */
    uint16_t *kc = malloc((size_t)n_ctx * kv_dim * 2), *vc = malloc((size_t)n_ctx * kv_dim * 2);
    for (size_t i = 0; i < (size_t)pos0 * kv_dim; i++) {
        kc[i] = tern_fp32_to_fp16(test_rand_normal(&rng));
        vc[i] = tern_fp32_to_fp16(test_rand_normal(&rng));
    }
    float *k = rand_floats((size_t)n_tok * kv_dim, 1.0f), *v = rand_floats((size_t)n_tok * kv_dim, 1.0f);
    for (size_t i = 0; i < (size_t)n_tok * kv_dim; i++) {
        kc[(size_t)pos0 * kv_dim + i] = tern_fp32_to_fp16(k[i]);
        vc[(size_t)pos0 * kv_dim + i] = tern_fp32_to_fp16(v[i]);
    }
    float *q = rand_floats((size_t)n_tok * q_dim, 2.0f);
    float *o_ref = malloc((size_t)n_tok * q_dim * 4), *o_cl = malloc((size_t)n_tok * q_dim * 4);
    float *scratch = malloc((size_t)(head_dim + n_ctx) * 4);
    uint16_t *kb = test_k_blocks(kc, n_ctx, kv_dim); /* the reference reads K in its block layout */
    for (int t = 0; t < n_tok; t++)
        tern_ref_attention(o_ref + (size_t)t * q_dim, q + (size_t)t * q_dim, kb, vc, kv_dim, pos0 + t, n_head,
                           n_head_kv, head_dim, false, scratch);
    free(kb);
    /* device cache: earlier positions uploaded, the batch written by kv_store */
    struct gbuf bkc = gbuf_new((size_t)n_ctx * kv_dim * 2, kc),
                bvc = gbuf_new((size_t)n_ctx * kv_dim * 2, vc);
    uint16_t fill = 0x7e00; /* NaN: kv_store must overwrite every batch entry */
    for (size_t i = (size_t)pos0 * kv_dim; i < (size_t)n_ctx * kv_dim; i++)
        CHECK_STATUS(TERN_OK, i % 997 ? TERN_OK : tern_cl_write(rt, bkc.mem, i * 2, 2, &fill));
    struct gbuf bk = gbuf_new((size_t)n_tok * kv_dim * 4, k), bv = gbuf_new((size_t)n_tok * kv_dim * 4, v),
                bq = gbuf_new((size_t)n_tok * q_dim * 4, q), bo = gbuf_new((size_t)n_tok * q_dim * 4, NULL);
    int32_t *pos = malloc((size_t)n_tok * 4), *seq = calloc((size_t)n_tok, 4);
    for (int t = 0; t < n_tok; t++)
        pos[t] = pos0 + t;
    struct gbuf bpos = gbuf_new((size_t)n_tok * 4, pos), bseq = gbuf_new((size_t)n_tok * 4, seq);
    CHECK_STATUS(TERN_OK, tern_cl_kv_store(rt, bkc.mem, bvc.mem, bk.mem, bv.mem, kv_dim, bpos.mem, bseq.mem,
                                           n_ctx, n_tok));
    CHECK_STATUS(TERN_OK, tern_cl_attention(rt, bo.mem, bq.mem, bkc.mem, bvc.mem, n_head, n_head_kv, head_dim,
                                            bpos.mem, bseq.mem, n_ctx, n_tok));
    gbuf_free(&bpos), gbuf_free(&bseq);
    free(pos), free(seq);
    uint16_t *kc_cl = malloc((size_t)n_ctx * kv_dim * 2), *vc_cl = malloc((size_t)n_ctx * kv_dim * 2);
    gbuf_read(&bkc, kc_cl, "k cache");
    gbuf_read(&bvc, vc_cl, "v cache");
    gbuf_read(&bo, o_cl, "attention out");
    char what[112];
    snprintf(what, sizeof what, "kv_store heads=%d/%d dim=%d pos0=%d tok=%d: k cache", n_head, n_head_kv,
             head_dim, pos0, n_tok);
    check_bytes(kc, kc_cl, (size_t)n_ctx * kv_dim * 2, what);
    snprintf(what, sizeof what, "kv_store heads=%d/%d dim=%d pos0=%d tok=%d: v cache", n_head, n_head_kv,
             head_dim, pos0, n_tok);
    check_bytes(vc, vc_cl, (size_t)n_ctx * kv_dim * 2, what);
    snprintf(what, sizeof what, "attention heads=%d/%d dim=%d pos0=%d tok=%d", n_head, n_head_kv, head_dim,
             pos0, n_tok);
    check_nmse(o_ref, o_cl, (size_t)n_tok * q_dim, NMSE_ATTENTION, what);
    gbuf_free(&bkc), gbuf_free(&bvc), gbuf_free(&bk), gbuf_free(&bv), gbuf_free(&bq), gbuf_free(&bo);
    free(kc), free(vc), free(k), free(v), free(q), free(o_ref), free(o_cl), free(scratch), free(kc_cl),
        free(vc_cl);
}

static void test_attention(void) {
    static const int heads[][3] = {{2, 1, 128}, {4, 2, 64}, {20, 5, 128}, {3, 3, 72}, {2, 2, 256}};
    static const int pos0s[] = {0, 1, 37, 300};
    static const int toks[] = {1, 4, 13};
    for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++)
        for (size_t p = 0; p < 4; p++)
            for (size_t j = 0; j < 3; j++) {
                if (heads[h][0] == 20 && pos0s[p] == 300 && toks[j] == 13)
                    continue; /* the largest case adds little but time */
                attention_case(heads[h][0], heads[h][1], heads[h][2], pos0s[p], toks[j]);
            }
}

/* ---- FFN gating and residual add */

static void test_ffn(void) {
    static const int64_t ns[] = {1, 1000, 70001};
    for (size_t i = 0; i < 3; i++)
        for (int act = 0; act < 2; act++) {
            const size_t n = (size_t)ns[i];
            float *g = rand_floats(n, 3.0f), *u = rand_floats(n, 1.0f), *y_ref = malloc(n * 4),
                  *y_cl = malloc(n * 4);
            tern_ref_ffn_act(y_ref, g, u, (int64_t)n, (enum tern_ffn_act)act);
            struct gbuf bg = gbuf_new(n * 4, g), bu = gbuf_new(n * 4, u);
            CHECK_STATUS(TERN_OK,
                         tern_cl_ffn_act(rt, bg.mem, bg.mem, bu.mem, (int64_t)n, (enum tern_ffn_act)act));
            gbuf_read(&bg, y_cl, "ffn_act");
            char what[64];
            snprintf(what, sizeof what, "ffn_act %s n=%zu", act ? "silu" : "relu2", n);
            check_nmse(y_ref, y_cl, n, NMSE_FFN, what);
            /* residual add: u += y */
            for (size_t k = 0; k < n; k++)
                y_ref[k] = u[k] + y_cl[k];
            CHECK_STATUS(TERN_OK, tern_cl_add(rt, bu.mem, bg.mem, (int64_t)n));
            gbuf_read(&bu, y_cl, "add");
            snprintf(what, sizeof what, "add n=%zu", n);
            check_nmse(y_ref, y_cl, n, 0.0, what);
            gbuf_free(&bg), gbuf_free(&bu);
            free(g), free(u), free(y_ref), free(y_cl);
        }
}

/* ---- device interface basics: count, open by index and by name, describe */

static void test_device_open(void) {
    int n = 0;
    CHECK_STATUS(TERN_OK, tern_cl_device_count(&n));
    CHECK(n >= 1);
    struct tern_device dev;
    tern_status st = tern_cl_device_create("0", &dev);
    CHECK_STATUS(TERN_OK, st);
    if (st != TERN_OK)
        return;
    struct tern_device_info info;
    CHECK_STATUS(TERN_OK, dev.ops->describe(dev.ctx, &info));
    CHECK(info.name[0] != 0);
    CHECK(info.mem_bytes > 0);
    char part[8] = {0};
    memcpy(part, info.name, 4); /* a name substring selects the same device */
    dev.ops->free(dev.ctx);
    st = tern_cl_device_create(part, &dev);
    CHECK_STATUS(TERN_OK, st);
    if (st == TERN_OK)
        dev.ops->free(dev.ctx);
    CHECK_STATUS(TERN_ERR_NO_DEVICE, tern_cl_device_create("no-such-device-xyz", &dev));
    CHECK_STATUS(TERN_ERR_NO_DEVICE, tern_cl_device_create("99", &dev));
}

static void run_all(const char *label) {
    struct {
        const char *name;
        void (*fn)(void);
    } cases[] = {{"quantize", test_quantize},   {"ternary", test_ternary}, {"typed", test_typed},
                 {"shadow", test_shadow},       {"rmsnorm", test_rmsnorm}, {"rope", test_rope},
                 {"attention", test_attention}, {"ffn", test_ffn}};
    const char *only = getenv("TERN_CL_TEST_ONLY"); /* while developing: one case by name */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (only && only[0] && strcmp(only, cases[i].name) != 0)
            continue;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int before = n_checks;
        harness_run(cases[i].name, cases[i].fn);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        fprintf(stderr, "     %s/%s: %d checks, %.2f s\n", label, cases[i].name, n_checks - before,
                (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    }
}

static int captured_no_platform;
static void capture_log(enum tern_log_level level, const char *msg, void *user) {
    (void)user;
    fprintf(stderr, "[log %d] %s\n", (int)level, msg);
    if (level == TERN_LOG_ERROR && strstr(msg, "no platform"))
        captured_no_platform = 1;
}

static void test_no_platform(void) {
    int n = -1;
    CHECK_STATUS(TERN_OK, tern_cl_device_count(&n));
    CHECK_INT(0, n);
    struct tern_device dev;
    tern_log_set_callback(capture_log, NULL);
    CHECK_STATUS(TERN_ERR_NO_DEVICE, tern_cl_device_create("0", &dev));
    tern_log_set_callback(NULL, NULL);
    CHECK(captured_no_platform);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--no-platform") == 0) {
        RUN(test_no_platform);
        return harness_finish();
    }
    const int gate = harness_opencl_gate(tern_cl_rt_count());
    if (gate >= 0)
        return gate;
    RUN(test_device_open);
    const char *env_design = getenv("TERN_CL_KERNELS");
    char design[16] = "";
    if (env_design)
        snprintf(design, sizeof design, "%s", env_design);
    bool cpu_design = false;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) /* the other kernel design */
            setenv("TERN_CL_KERNELS", cpu_design ? "gpu" : "cpu", 1);
        tern_status st = tern_cl_rt_create("0", pass == 1, NULL, &rt);
        if (st != TERN_OK) {
            fprintf(stderr, "FAIL: cannot open OpenCL device 0: %s\n", tern_status_name(st));
            return 1;
        }
        fprintf(stderr, "pass %d: %s (%s), %s%s\n", pass, rt->name, rt->platform_name, rt->options,
                rt->from_cache ? " [cached binary]" : "");
        if (pass == 1) {
            CHECK(!rt->use_fp16 && !rt->use_subgroups && !rt->use_dot);
            CHECK(rt->cpu_kernels != cpu_design);
        }
        cpu_design = rt->cpu_kernels;
        char label[32];
        snprintf(label, sizeof label, "%s-%s", pass == 0 ? "native" : "portable",
                 rt->cpu_kernels ? "cpu" : "gpu");
        run_all(label);
        tern_cl_rt_free(rt);
        rt = NULL;
    }
    if (design[0])
        setenv("TERN_CL_KERNELS", design, 1);
    else
        unsetenv("TERN_CL_KERNELS");
    return harness_finish();
}

#else /* built without the OpenCL headers */

int main(void) {
    return harness_opencl_gate(0);
}

#endif
