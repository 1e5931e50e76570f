/* Every SIMD kernel table this build holds and this machine runs (or only the one TERN_CPU_ISA
 * forces), op by op against the scalar reference: integer results (quantization, ternary products)
 * bit-exact, float results within NMSE limits (printed per op), guard bytes after outputs, results
 * independent of the thread count, plus thread-pool stress and ISA-selection checks. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/cpu_device.h"
#include "cpu/isa.h"
#include "cpu/kernels.h"
#include "cpu/peak.h"
#include "cpu/pool.h"
#include "cpu/ref.h"
#include "harness.h"
#include "scheduler/fp16.h"

enum { GUARD = 64 };
static const uint8_t GUARD_BYTE = 0xa5;

static const struct tern_cpu_kernels *levels[TERN_CPU_ISA_COUNT + 1];

#ifdef TERN_HAVE_VNNI_TWIN
/* the avxvnni kernels with EVEX encodings (tests/CMakeLists.txt): they run wherever avx512 does */
extern const struct tern_cpu_kernels tern_cpu_kernels_avxvnni_twin;
#endif
static int n_levels;

/* buffer of n bytes followed by GUARD guard bytes */
static void *alloc_guarded(size_t n) {
    uint8_t *p = malloc(n + GUARD);
    memset(p, 0, n);
    memset(p + n, GUARD_BYTE, GUARD);
    return p;
}

static int guard_intact(const void *p, size_t n) {
    const uint8_t *b = (const uint8_t *)p + n;
    for (int i = 0; i < GUARD; i++)
        if (b[i] != GUARD_BYTE)
            return 0;
    return 1;
}

static double nmse(const float *ref, const float *got, int64_t n) {
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(got[i]) != isnan(ref[i]) || isinf(got[i]) != isinf(ref[i]))
            return INFINITY;
        const double d = (double)got[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    return den > 0.0 ? num / den : num;
}

static void report_nmse(const char *level, const char *op, double worst, double limit) {
    fprintf(stderr, "  %-12s %-22s worst NMSE %.3g (limit %.0e)\n", level, op, worst, limit);
    if (!(worst <= limit))
        harness_fail(__FILE__, __LINE__, "%s %s: NMSE %g above %g", level, op, worst, limit);
}

/* ---- quantize_act ---- */

static void test_quantize_act(void) {
    static const int64_t sizes[] = {1, 5, 15, 16, 17, 31, 32, 33, 100, 127, 128, 129, 255, 2560, 3200, 6912};
    uint64_t rng = 1;
    for (int l = 0; l < n_levels; l++) {
        const struct tern_cpu_kernels *k = levels[l];
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            for (int variant = 0; variant < 4; variant++) {
                const int64_t n = sizes[si], n_pad = (n + 127) / 128 * 128;
                float *x = malloc((size_t)n * sizeof *x);
                for (int64_t i = 0; i < n; i++) {
                    if (variant == 0)
                        x[i] = test_rand_normal(&rng) * 3.0f;
                    else if (variant == 1) /* exact ties: max 127 gives scale 1 */
                        x[i] = i == 0 ? 127.0f : (float)((int)(test_rand_u64(&rng) % 254) - 127) + 0.5f;
                    else if (variant == 2)
                        x[i] = 0.0f;
                    else /* tiny values: the 1e-5 floor */
                        x[i] = test_rand_uniform(&rng, -1e-6f, 1e-6f);
                }
                int8_t *qr = alloc_guarded((size_t)n_pad), *qs = alloc_guarded((size_t)n_pad);
                memset(qs, 0x77, (size_t)n_pad);
                int32_t sr = 0, ss = -1;
                const float scr = tern_ref_quantize_act(qr, x, n, n_pad, &sr);
                const float scs = k->quantize_act(qs, x, n, n_pad, &ss);
                CHECK(memcmp(&scr, &scs, sizeof scr) == 0);
                CHECK_INT(sr, ss);
                if (memcmp(qr, qs, (size_t)n_pad) != 0) {
                    for (int64_t i = 0; i < n_pad; i++)
                        if (qr[i] != qs[i]) {
                            harness_fail(__FILE__, __LINE__,
                                         "%s quantize n=%lld variant %d: q[%lld] = %d, expected %d (x %.9g)",
                                         k->name, (long long)n, variant, (long long)i, qs[i], qr[i],
                                         i < n ? (double)x[i] : 0.0);
                            break;
                        }
                }
                CHECK(guard_intact(qs, (size_t)n_pad));
                /* sum_q may be NULL */
                CHECK(k->quantize_act(qs, x, n, n_pad, NULL) == scr);
                free(x);
                free(qr);
                free(qs);
            }
        }
    }
}

/* ---- ternary matmul ---- */

struct ternary_case {
    struct tern_ternary w;
    uint8_t *codes;
};

/* random codes 0..2 (or a fixed code), padding columns with code 1, as the shared format says */
static void make_ternary(struct ternary_case *c, int64_t n_in, int64_t n_out, int fixed_code, uint64_t *rng) {
    c->w.n_in = n_in;
    c->w.k_pad = (n_in + 127) / 128 * 128;
    c->w.row_bytes = c->w.k_pad / 4;
    c->w.n_out = n_out;
    c->w.scale = test_rand_uniform(rng, 0.5f, 2.0f);
    c->w.out_scale = test_rand_uniform(rng, 0.5f, 2.0f);
    c->codes = malloc((size_t)(n_out * c->w.row_bytes));
    memset(c->codes, 0, (size_t)(n_out * c->w.row_bytes));
    for (int64_t r = 0; r < n_out; r++) {
        uint8_t *row = c->codes + r * c->w.row_bytes;
        for (int64_t e = 0; e < c->w.k_pad; e++) {
            const int code = e >= n_in ? 1 : fixed_code >= 0 ? fixed_code : (int)(test_rand_u64(rng) % 3);
            const int64_t blk = e / 128, j = (e % 128) / 32, i = e % 32;
            row[32 * blk + i] |= (uint8_t)(code << (6 - 2 * j));
        }
    }
    c->w.codes = c->codes;
}

static int same_bits(const float *a, const float *b, int64_t n, int64_t *where) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(a + i, b + i, sizeof(float)) != 0) {
            *where = i;
            return 0;
        }
    return 1;
}

/* sum_q[t] = sum of token t's q, what quantize_act reports and ternary_matmul takes */
static void sum_rows(int32_t *sum_q, const int8_t *q, int64_t n_tok, int64_t k_pad) {
    for (int64_t t = 0; t < n_tok; t++) {
        sum_q[t] = 0;
        for (int64_t i = 0; i < k_pad; i++)
            sum_q[t] += q[t * k_pad + i];
    }
}

static void check_ternary(const struct tern_cpu_kernels *k, const struct ternary_case *c, const int8_t *q,
                          const float *act, int64_t n_tok, int64_t r0, int64_t r1, const char *what) {
    int32_t sum_q[32];
    sum_rows(sum_q, q, n_tok, c->w.k_pad);
    const int64_t n_out = c->w.n_out;
    const size_t ybytes = (size_t)(n_tok * n_out) * sizeof(float);
    float *yr = alloc_guarded(ybytes), *ys = alloc_guarded(ybytes);
    for (int64_t i = 0; i < n_tok * n_out; i++)
        yr[i] = ys[i] = -12345.0f; /* outside [r0, r1) must stay untouched */
    tern_ref_ternary_matmul(yr, &c->w, q, act, n_tok, r0, r1);
    k->ternary_matmul(ys, &c->w, q, act, sum_q, n_tok, r0, r1);
    int64_t at = 0;
    if (!same_bits(yr, ys, n_tok * n_out, &at))
        harness_fail(__FILE__, __LINE__,
                     "%s ternary %s K=%lld N=%lld n_tok=%lld rows [%lld,%lld): y[tok %lld][row %lld] = %.9g, "
                     "expected %.9g",
                     k->name, what, (long long)c->w.n_in, (long long)n_out, (long long)n_tok, (long long)r0,
                     (long long)r1, (long long)(at / n_out), (long long)(at % n_out), (double)ys[at],
                     (double)yr[at]);
    CHECK(guard_intact(ys, ybytes));
    free(yr);
    free(ys);
}

static void test_ternary_matmul(void) {
    static const int64_t shapes[][2] = {{128, 1},   {128, 7},   {256, 9}, {200, 13},  {2560, 67}, {640, 5},
                                        {3200, 37}, {6912, 11}, {100, 4}, {384, 129}, {1000, 3}};
    uint64_t rng = 2;
    for (int l = 0; l < n_levels; l++) {
        const struct tern_cpu_kernels *k = levels[l];
        int n_checked = 0;
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            struct ternary_case c;
            make_ternary(&c, shapes[si][0], shapes[si][1], -1, &rng);
            const int64_t k_pad = c.w.k_pad;
            for (int64_t n_tok = 1; n_tok <= 17; n_tok++) {
                if (shapes[si][0] > 2560 && n_tok > 9 && n_tok != 17)
                    continue; /* keep the big shapes quick */
                int8_t *q = malloc((size_t)(n_tok * k_pad));
                float act[17];
                float *x = malloc((size_t)c.w.n_in * sizeof *x);
                for (int64_t t = 0; t < n_tok; t++) {
                    for (int64_t i = 0; i < c.w.n_in; i++)
                        x[i] = test_rand_normal(&rng);
                    act[t] = tern_ref_quantize_act(q + t * k_pad, x, c.w.n_in, k_pad, NULL);
                }
                check_ternary(k, &c, q, act, n_tok, 0, c.w.n_out, "full");
                const int64_t n = c.w.n_out;
                if (n > 3)
                    check_ternary(k, &c, q, act, n_tok, 1, n - 2, "sub-range");
                check_ternary(k, &c, q, act, n_tok, n - 1, n, "last row");
                n_checked++;
                free(q);
                free(x);
            }
            free(c.codes);
        }
        /* extremes: every q = -128 or 127 against all codes 0 or 2 (int16 saturation in maddubs,
         * int32 range in the accumulators) */
        for (int code = 0; code <= 2; code += 2) {
            for (int qv = -128; qv <= 127; qv += 255) {
                struct ternary_case c;
                make_ternary(&c, 6912, 9, code, &rng);
                int8_t *q = malloc((size_t)(5 * c.w.k_pad));
                memset(q, qv, (size_t)(5 * c.w.k_pad));
                const float act[5] = {1.0f, 0.5f, 3.0f, 127.0f, 1e-3f};
                check_ternary(k, &c, q, act, 5, 0, 9, "extreme");
                check_ternary(k, &c, q, act, 1, 0, 9, "extreme");
                free(q);
                free(c.codes);
            }
        }
        fprintf(stderr, "  %-12s ternary_matmul          %d shape x n_tok cases bit-exact\n", k->name,
                n_checked);
    }
}

/* ---- float matvec (head types) ---- */

static uint16_t rand_half(uint64_t *rng, float lo, float hi) {
    return tern_fp32_to_fp16(test_rand_uniform(rng, lo, hi));
}

/* A random tensor of type with ne0 x ne1; returns the data (free it). */
static void *make_float_tensor(struct tern_tensor *t, uint32_t type, int64_t ne0, int64_t ne1,
                               uint64_t *rng) {
    const struct tern_type_traits *tr = tern_type_traits(type);
    t->type = type;
    t->ne0 = ne0;
    t->ne1 = ne1;
    t->row_bytes = (size_t)(ne0 / tr->block_size) * tr->block_bytes;
    uint8_t *d = malloc(t->row_bytes * (size_t)ne1);
    for (size_t i = 0; i < t->row_bytes * (size_t)ne1; i++)
        d[i] = (uint8_t)test_rand_u64(rng);
    const int64_t n_blocks = ne0 / tr->block_size * ne1;
    for (int64_t b = 0; b < n_blocks; b++) {
        uint8_t *blk = d + (size_t)b * tr->block_bytes;
        uint16_t h;
        switch (type) {
        case TERN_TYPE_F32: {
            const float f = test_rand_normal(rng);
            memcpy(blk, &f, 4);
            break;
        }
        case TERN_TYPE_F16:
            h = tern_fp32_to_fp16(test_rand_normal(rng));
            memcpy(blk, &h, 2);
            break;
        case TERN_TYPE_BF16:
            h = tern_fp32_to_bf16(test_rand_normal(rng));
            memcpy(blk, &h, 2);
            break;
        case TERN_TYPE_Q8_0:
            h = rand_half(rng, 0.001f, 0.1f);
            memcpy(blk, &h, 2);
            break;
        case TERN_TYPE_Q4_K:
            h = rand_half(rng, 0.001f, 0.1f);
            memcpy(blk, &h, 2);
            h = rand_half(rng, 0.001f, 0.1f);
            memcpy(blk + 2, &h, 2);
            break;
        case TERN_TYPE_Q6_K:
            h = rand_half(rng, 0.001f, 0.1f);
            memcpy(blk + 208, &h, 2);
            break;
        default:
            break;
        }
    }
    t->data = d;
    return d;
}

static void test_matvec(void) {
    static const struct {
        uint32_t type;
        int64_t ne0;
    } cases[] = {
        {TERN_TYPE_F16, 1},     {TERN_TYPE_F16, 7},     {TERN_TYPE_F16, 16},    {TERN_TYPE_F16, 33},
        {TERN_TYPE_F16, 100},   {TERN_TYPE_F16, 2560},  {TERN_TYPE_F32, 5},     {TERN_TYPE_F32, 48},
        {TERN_TYPE_F32, 2560},  {TERN_TYPE_BF16, 3},    {TERN_TYPE_BF16, 130},  {TERN_TYPE_BF16, 2560},
        {TERN_TYPE_Q8_0, 32},   {TERN_TYPE_Q8_0, 96},   {TERN_TYPE_Q8_0, 2560}, {TERN_TYPE_Q4_K, 256},
        {TERN_TYPE_Q4_K, 2560}, {TERN_TYPE_Q4_K, 8960}, {TERN_TYPE_Q6_K, 256},  {TERN_TYPE_Q6_K, 768},
        {TERN_TYPE_Q6_K, 2560}, {TERN_TYPE_Q6_K, 8960}};
    /* (8960 columns: more than one 8192-element pass of the avx512 K-quant kernels' permuted x) */
    static const int64_t row_counts[] = {1, 3, 4, 13};
    uint64_t rng = 3;
    for (int l = 0; l < n_levels; l++) {
        const struct tern_cpu_kernels *k = levels[l];
        double worst[TERN_TYPE_COUNT] = {0};
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            for (size_t ri = 0; ri < sizeof row_counts / sizeof row_counts[0]; ri++) {
                struct tern_tensor t;
                const int64_t rows = row_counts[ri] + 2;
                void *data = make_float_tensor(&t, cases[ci].type, cases[ci].ne0, rows, &rng);
                float *x = malloc((size_t)t.ne0 * sizeof *x);
                for (int64_t i = 0; i < t.ne0; i++)
                    x[i] = test_rand_normal(&rng);
                const int64_t r0 = 1, r1 = 1 + row_counts[ri];
                const size_t ob = (size_t)(r1 - r0) * sizeof(float);
                float *yr = alloc_guarded(ob), *ys = alloc_guarded(ob);
                tern_ref_matvec(yr, &t, x, r0, r1);
                k->matvec(ys, &t, x, r0, r1);
                const double e = nmse(yr, ys, r1 - r0);
                if (e > worst[t.type])
                    worst[t.type] = e;
                CHECK(guard_intact(ys, ob));
                free(data);
                free(x);
                free(yr);
                free(ys);
            }
        }
        static const uint32_t types[] = {TERN_TYPE_F32,  TERN_TYPE_F16,  TERN_TYPE_BF16,
                                         TERN_TYPE_Q8_0, TERN_TYPE_Q4_K, TERN_TYPE_Q6_K};
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
            char op[32];
            snprintf(op, sizeof op, "matvec %s", tern_type_name(types[i]));
            report_nmse(k->name, op, worst[types[i]], 1e-8);
        }
    }
}

/* matvec_tokens against matvec: every token's row values the same bits as matvec gives it alone,
 * for 1..9 tokens (past the SIMD levels' 4- and 8-token passes), odd widths, and rows past the
 * AVX-512 level's 16-row groups of 4 inputs (two groups and 5 rows left) with several of its
 * 320-column blocks. */
static void test_matvec_tokens(void) {
    static const struct {
        uint32_t type;
        int64_t ne0;
    } cases[] = {
        {TERN_TYPE_F16, 1},     {TERN_TYPE_F16, 7},    {TERN_TYPE_F16, 33},    {TERN_TYPE_F16, 100},
        {TERN_TYPE_F16, 2561},  {TERN_TYPE_F32, 5},    {TERN_TYPE_F32, 48},    {TERN_TYPE_F32, 2560},
        {TERN_TYPE_F32, 333},   {TERN_TYPE_BF16, 3},   {TERN_TYPE_BF16, 130},  {TERN_TYPE_BF16, 1000},
        {TERN_TYPE_Q8_0, 32},   {TERN_TYPE_Q8_0, 96},  {TERN_TYPE_Q8_0, 2560}, {TERN_TYPE_Q4_K, 256},
        {TERN_TYPE_Q4_K, 8448}, {TERN_TYPE_Q6_K, 768}, {TERN_TYPE_Q6_K, 8448}};
    enum { MAX_TOK = 9, ROWS = 37 };
    uint64_t rng = 11;
    for (int l = 0; l < n_levels; l++) {
        const struct tern_cpu_kernels *k = levels[l];
        int n_checked = 0;
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            struct tern_tensor t;
            void *data = make_float_tensor(&t, cases[ci].type, cases[ci].ne0, ROWS + 2, &rng);
            float *xs = malloc((size_t)(MAX_TOK * t.ne0) * sizeof *xs);
            for (int64_t i = 0; i < MAX_TOK * t.ne0; i++)
                xs[i] = test_rand_normal(&rng);
            const size_t ob = ROWS * sizeof(float);
            for (int n_tok = 1; n_tok <= MAX_TOK; n_tok++) {
                float *out[MAX_TOK];
                const float *x[MAX_TOK];
                for (int i = 0; i < n_tok; i++) {
                    out[i] = alloc_guarded(ob);
                    x[i] = xs + (size_t)((i * 5 + n_tok) % MAX_TOK) * (size_t)t.ne0; /* any order */
                }
                k->matvec_tokens(out, &t, x, n_tok, 1, 1 + ROWS);
                for (int i = 0; i < n_tok; i++) {
                    float alone[ROWS];
                    k->matvec(alone, &t, x[i], 1, 1 + ROWS);
                    if (memcmp(alone, out[i], ob) != 0)
                        harness_fail(__FILE__, __LINE__, "%s matvec_tokens %s x %lld, token %d of %d differs",
                                     k->name, tern_type_name(t.type), (long long)t.ne0, i, n_tok);
                    CHECK(guard_intact(out[i], ob));
                    free(out[i]);
                    n_checked++;
                }
            }
            free(xs);
            free(data);
        }
        fprintf(stderr, "  %-12s matvec_tokens           %d token cases bit-equal to matvec\n", k->name,
                n_checked);
    }
}

/* ---- float ops ---- */

static void test_rmsnorm_ffn(void) {
    static const int64_t sizes[] = {1, 7, 16, 33, 100, 2560, 6912};
    uint64_t rng = 4;
    for (int l = 0; l < n_levels; l++) {
        const struct tern_cpu_kernels *k = levels[l];
        double worst_norm = 0.0, worst_silu = 0.0;
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            const int64_t n = sizes[si];
            const size_t nb = (size_t)n * sizeof(float);
            float *x = malloc(nb), *w = malloc(nb), *u = malloc(nb);
            for (int64_t i = 0; i < n; i++) {
                x[i] = test_rand_normal(&rng) * 4.0f;
                w[i] = test_rand_uniform(&rng, 0.5f, 1.5f);
                u[i] = test_rand_normal(&rng);
            }
            x[0] = -0.0f;
            float *yr = alloc_guarded(nb), *ys = alloc_guarded(nb);
            tern_ref_rmsnorm(yr, x, w, n, 1e-5f);
            k->rmsnorm(ys, x, w, n, 1e-5f);
            double e = nmse(yr, ys, n);
            memcpy(ys, x, nb); /* in place */
            k->rmsnorm(ys, ys, w, n, 1e-5f);
            e = fmax(e, nmse(yr, ys, n));
            worst_norm = fmax(worst_norm, e);
            CHECK(guard_intact(ys, nb));
            if (n > 3)
                x[3] = NAN; /* relu(NaN)^2 is 0 in the reference */
            for (int act = 0; act <= 1; act++) {
                tern_ref_ffn_act(yr, x, u, n, (enum tern_ffn_act)act);
                k->ffn_act(ys, x, u, n, (enum tern_ffn_act)act);
                int64_t at = 0;
                if (act == TERN_FFN_RELU2 && !same_bits(yr, ys, n, &at))
                    harness_fail(__FILE__, __LINE__, "%s relu2 n=%lld: [%lld] = %.9g, expected %.9g", k->name,
                                 (long long)n, (long long)at, (double)ys[at], (double)yr[at]);
                if (act == TERN_FFN_SILU) {
                    if (n > 3)
                        yr[3] = ys[3] = 0.0f; /* silu(NaN) is NaN either way */
                    worst_silu = fmax(worst_silu, nmse(yr, ys, n));
                }
                CHECK(guard_intact(ys, nb));
            }
            free(x);
            free(w);
            free(u);
            free(yr);
            free(ys);
        }
        report_nmse(k->name, "rmsnorm", worst_norm, 1e-12);
        report_nmse(k->name, "ffn_act silu", worst_silu, 1e-10);
    }
}

/* The fused per-token passes against the level's own ops one after the other (the residual add or
 * gating, rmsnorm, quantize_act), bit for bit: q, scale, sum q and the row written back. */
static void test_norm_quantize(void) {
    static const int64_t sizes[] = {1, 5, 8, 15, 16, 17, 31, 33, 100, 640, 2560, 2571, 6912};
    uint64_t rng = 8;
    for (int l = 0; l < n_levels; l++) {
        const struct tern_cpu_kernels *k = levels[l];
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
            for (int variant = 0; variant < 5; variant++) {
                /* 0: add, 1: no add, 2: relu2, 3: silu, 4: add with a NaN and a huge value */
                const int64_t n = sizes[si], n_pad = (n + 127) / 128 * 128;
                const size_t nb = (size_t)n * sizeof(float);
                float *x = malloc(nb), *b = malloc(nb), *w = malloc(nb), *y = malloc(nb);
                float *xr = alloc_guarded(nb), *xs = alloc_guarded(nb);
                for (int64_t i = 0; i < n; i++) {
                    x[i] = test_rand_normal(&rng) * 3.0f;
                    b[i] = test_rand_normal(&rng);
                    w[i] = test_rand_uniform(&rng, 0.5f, 1.5f);
                }
                if (variant == 4 && n > 3) {
                    b[1] = NAN;
                    x[2] = 3e30f;
                }
                memcpy(xr, x, nb);
                memcpy(xs, x, nb);
                int8_t *qr = alloc_guarded((size_t)n_pad), *qs = alloc_guarded((size_t)n_pad);
                memset(qs, 0x77, (size_t)n_pad);
                int32_t sr = 0, ss = -1;
                float scr, scs;
                if (variant == 2 || variant == 3) {
                    const enum tern_ffn_act act = variant == 2 ? TERN_FFN_RELU2 : TERN_FFN_SILU;
                    k->ffn_act(xr, xr, b, n, act);
                    k->rmsnorm(y, xr, w, n, 1e-5f);
                    scr = k->quantize_act(qr, y, n, n_pad, &sr);
                    scs = k->act_norm_quantize(qs, y, xs, b, w, n, n_pad, 1e-5f, act, &ss);
                } else {
                    const float *add = variant == 1 ? NULL : b;
                    if (add)
                        for (int64_t i = 0; i < n; i++)
                            xr[i] += add[i];
                    k->rmsnorm(y, xr, w, n, 1e-5f);
                    scr = k->quantize_act(qr, y, n, n_pad, &sr);
                    scs = k->add_norm_quantize(qs, y, xs, add, w, n, n_pad, 1e-5f, &ss);
                }
                int64_t at = 0;
                if (memcmp(&scr, &scs, sizeof scr) != 0 || sr != ss || memcmp(qr, qs, (size_t)n_pad) != 0 ||
                    !same_bits(xr, xs, n, &at))
                    harness_fail(
                        __FILE__, __LINE__,
                        "%s norm_quantize n=%lld variant %d: scale %.9g sum %d, expected %.9g sum %d "
                        "(rows equal: q %d x %d)",
                        k->name, (long long)n, variant, (double)scs, ss, (double)scr, sr,
                        memcmp(qr, qs, (size_t)n_pad) == 0, same_bits(xr, xs, n, &at));
                CHECK(guard_intact(qs, (size_t)n_pad));
                CHECK(guard_intact(xs, nb));
                free(x);
                free(b);
                free(w);
                free(y);
                free(xr);
                free(xs);
                free(qr);
                free(qs);
            }
    }
}

/* The KV-cache rows against tern_fp32_to_fp16, bit for bit: rounding ties, subnormals, the overflow
 * edge, infinities and NaNs of either sign and any payload. */
static void test_f16_row(void) {
    static const uint32_t special[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u,
                                       0xffc00000u, 0x7f800001u, 0xff812345u, 0x7fbfffffu, 0x477fefffu,
                                       0x477ff000u, 0xc77ff000u, 0x38800000u, 0x387fffffu, 0x33000000u,
                                       0x33000001u, 0xb2ffffffu, 0x3f801000u, 0x3f803000u, 0x00000001u};
    static const int64_t sizes[] = {1, 7, 8, 15, 16, 17, 64, 128, 131};
    const int n_special = (int)(sizeof special / sizeof special[0]);
    uint64_t rng = 9;
    for (int l = 0; l < n_levels; l++) {
        const struct tern_cpu_kernels *k = levels[l];
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            const int64_t n = sizes[si];
            float *x = malloc((size_t)n * sizeof *x);
            for (int64_t i = 0; i < n; i++) {
                const uint64_t r = test_rand_u64(&rng);
                if (r % 4 == 0) /* any bit pattern */
                    x[i] = tern_f32_from_bits((uint32_t)(r >> 32));
                else if (r % 4 == 1)
                    x[i] = tern_f32_from_bits(special[(r >> 8) % (uint64_t)n_special]);
                else /* ties: 11 significant bits and a half */
                    x[i] = (float)((int)(r >> 40) % 4096 - 2048) + 0.5f * (float)((r >> 20) % 2);
            }
            uint16_t *hr = alloc_guarded((size_t)n * 2), *hs = alloc_guarded((size_t)n * 2);
            tern_ref_f16_row(hr, x, n);
            k->f16_row(hs, x, n);
            for (int64_t i = 0; i < n; i++)
                if (hr[i] != hs[i]) {
                    harness_fail(__FILE__, __LINE__,
                                 "%s f16_row n=%lld: [%lld] of 0x%08x = 0x%04x, expected 0x%04x", k->name,
                                 (long long)n, (long long)i, tern_f32_bits(x[i]), hs[i], hr[i]);
                    break;
                }
            CHECK(guard_intact(hs, (size_t)n * 2));
            free(x);
            free(hr);
            free(hs);
        }
    }
}

static void test_rope(void) {
    static const int positions[] = {0, 1, 17, 1000, 4095};
    static const int dims[][2] = {{128, 128}, {128, 64}, {64, 64}, {80, 80}};
    uint64_t rng = 5;
    for (int l = 0; l < n_levels; l++) {
        const struct tern_cpu_kernels *k = levels[l];
        double worst = 0.0;
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
            for (size_t pi = 0; pi < sizeof positions / sizeof positions[0]; pi++)
                for (int style = 0; style <= 1; style++) {
                    const int n_head = 5, head_dim = dims[di][0], n_rot = dims[di][1];
                    const int64_t n = (int64_t)n_head * head_dim;
                    float *a = malloc((size_t)n * sizeof *a), *b = alloc_guarded((size_t)n * sizeof *b);
                    for (int64_t i = 0; i < n; i++)
                        a[i] = b[i] = test_rand_normal(&rng);
                    tern_ref_rope(a, n_head, head_dim, n_rot, positions[pi], 500000.0f,
                                  (enum tern_rope_style)style);
                    float cs[64], sn[64]; /* the CPU device's per-token table */
                    tern_ref_rope_table(cs, sn, n_rot / 2, n_rot, positions[pi], 500000.0f);
                    k->rope(b, n_head, head_dim, n_rot, cs, sn, (enum tern_rope_style)style);
                    int64_t at = 0;
                    if (!same_bits(a, b, n, &at)) /* bit-exact by construction; NMSE reported anyway */
                        worst = fmax(worst, nmse(a, b, n));
                    CHECK(guard_intact(b, (size_t)n * sizeof *b));
                    free(a);
                    free(b);
                }
        report_nmse(k->name, "rope", worst, 1e-12);
    }
}

static void test_attention(void) {
    static const int positions[] = {0, 1, 3, 15, 16, 17, 31, 32, 47, 100, 513};
    /* GQA groups of 4 (2B-4T), 1, 3, 8 (two passes of 4), 2; head dims the SIMD paths take and not */
    static const int heads[][3] = {{20, 5, 128}, {4, 4, 64}, {12, 4, 64}, {16, 2, 128},
                                   {4, 2, 64},   {6, 2, 80}, {2, 1, 32}};
    uint64_t rng = 6;
    for (int l = 0; l < n_levels; l++) {
        const struct tern_cpu_kernels *k = levels[l];
        double worst = 0.0;
        for (size_t hi = 0; hi < sizeof heads / sizeof heads[0]; hi++)
            for (size_t pi = 0; pi < sizeof positions / sizeof positions[0]; pi++) {
                const int n_head = heads[hi][0], n_kv = heads[hi][1], hd = heads[hi][2], pos = positions[pi];
                const int64_t nq = (int64_t)n_head * hd, nkv = (int64_t)(pos + 1) * n_kv * hd;
                float *q = malloc((size_t)nq * sizeof *q);
                uint16_t *kc = malloc((size_t)nkv * 2), *vc = malloc((size_t)nkv * 2);
                for (int64_t i = 0; i < nq; i++)
                    q[i] = test_rand_normal(&rng) * 0.5f;
                for (int64_t i = 0; i < nkv; i++) {
                    kc[i] = tern_fp32_to_fp16(test_rand_normal(&rng));
                    vc[i] = tern_fp32_to_fp16(test_rand_normal(&rng));
                }
                float *yr = alloc_guarded((size_t)nq * 4), *ys = alloc_guarded((size_t)nq * 4);
                const size_t scratch_bytes = (size_t)TERN_ATTN_SCRATCH(hd, pos) * 4;
                float *scratch = alloc_guarded(scratch_bytes);
                const int64_t stride = (int64_t)n_kv * hd, group = n_head / n_kv;
                uint16_t *kb = test_k_blocks(kc, pos + 1, stride);
                tern_ref_attention(yr, q, kb, vc, stride, pos, n_head, n_kv, hd, false, scratch);
                k->attention(ys, q, kb, vc, stride, pos, n_head, n_kv, hd, false, scratch);
                worst = fmax(worst, nmse(yr, ys, nq));
                /* one call per kv head (the decode split across threads), streaming the cache as a
                 * decode step does, gives the same bits */
                float *yh = alloc_guarded((size_t)nq * 4);
                for (int g = 0; g < n_kv; g++)
                    k->attention(yh + g * group * hd, q + g * group * hd, kb + g * hd * TERN_ATTN_KBLOCK,
                                 vc + g * hd, stride, pos, (int)group, 1, hd, true, scratch);
                CHECK(memcmp(yh, ys, (size_t)nq * 4) == 0);
                CHECK(guard_intact(yh, (size_t)nq * 4));
                free(yh);
                CHECK(guard_intact(ys, (size_t)nq * 4));
                CHECK(guard_intact(scratch, scratch_bytes));
                free(q);
                free(kc);
                free(kb);
                free(vc);
                free(yr);
                free(ys);
                free(scratch);
            }
        report_nmse(k->name, "attention", worst, 1e-7);
    }
}

/* ---- threads: the same results for 1 and N threads through the pool ---- */

struct split_job {
    const struct tern_cpu_kernels *k;
    const struct tern_ternary *w;
    const int8_t *q;
    const float *act;
    const int32_t *sum_q;
    int64_t n_tok, rows_per_task;
    float *y;
    const struct tern_tensor *t;
    const float *x;
};

static void ternary_task(void *arg, int64_t task, int thread) {
    (void)thread;
    const struct split_job *j = arg;
    const int64_t r0 = task * j->rows_per_task;
    const int64_t r1 = r0 + j->rows_per_task < j->w->n_out ? r0 + j->rows_per_task : j->w->n_out;
    j->k->ternary_matmul(j->y, j->w, j->q, j->act, j->sum_q, j->n_tok, r0, r1);
}

static void matvec_task(void *arg, int64_t task, int thread) {
    (void)thread;
    const struct split_job *j = arg;
    const int64_t r0 = task * j->rows_per_task;
    const int64_t r1 = r0 + j->rows_per_task < j->t->ne1 ? r0 + j->rows_per_task : j->t->ne1;
    j->k->matvec(j->y + r0, j->t, j->x, r0, r1);
}

static void test_threads(void) {
    uint64_t rng = 7;
    struct ternary_case c;
    make_ternary(&c, 2560, 1000, -1, &rng);
    struct tern_tensor t;
    void *data = make_float_tensor(&t, TERN_TYPE_F16, 2560, 999, &rng);
    const int64_t n_tok = 9;
    int8_t *q = malloc((size_t)(n_tok * c.w.k_pad));
    float act[9], *x = malloc(2560 * sizeof *x);
    int32_t sum_q[9];
    for (int64_t tk = 0; tk < n_tok; tk++) {
        for (int i = 0; i < 2560; i++)
            x[i] = test_rand_normal(&rng);
        act[tk] = tern_ref_quantize_act(q + tk * c.w.k_pad, x, 2560, c.w.k_pad, sum_q + tk);
    }
    float *y1 = malloc((size_t)(n_tok * 1000) * sizeof(float)),
          *yn = malloc((size_t)(n_tok * 1000) * sizeof(float));
    float *m1 = malloc(999 * sizeof(float)), *mn = malloc(999 * sizeof(float));
    for (int l = 0; l < n_levels; l++) {
        const struct tern_cpu_kernels *k = levels[l];
        k->ternary_matmul(y1, &c.w, q, act, sum_q, n_tok, 0, 1000);
        k->matvec(m1, &t, x, 0, 999);
        for (int nt = 1; nt <= 4; nt++) {
            struct tern_pool *pool = NULL;
            CHECK_STATUS(TERN_OK, tern_pool_create(nt, &pool));
            CHECK_INT(nt, tern_pool_size(pool));
            for (int64_t rpt = 1; rpt <= 256; rpt *= 4) {
                struct split_job j = {k, &c.w, q, act, sum_q, n_tok, rpt, yn, &t, x};
                memset(yn, 0, (size_t)(n_tok * 1000) * sizeof(float));
                tern_pool_run(pool, (1000 + rpt - 1) / rpt, ternary_task, &j);
                CHECK(memcmp(y1, yn, (size_t)(n_tok * 1000) * sizeof(float)) == 0);
                j.y = mn;
                memset(mn, 0, 999 * sizeof(float));
                tern_pool_run(pool, (999 + rpt - 1) / rpt, matvec_task, &j);
                CHECK(memcmp(m1, mn, 999 * sizeof(float)) == 0);
            }
            tern_pool_free(pool);
        }
    }
    tern_pool_free(NULL);
    free(c.codes);
    free(data);
    free(q);
    free(x);
    free(y1);
    free(yn);
    free(m1);
    free(mn);
}

/* ---- pool stress ---- */

enum { STRESS_MAX_TASKS = 37 };
struct stress_job {
    atomic_int hits[STRESS_MAX_TASKS];
    atomic_int bad_thread;
    int n_threads;
    int busy; /* spin iterations per task, so workers take part and tasks overlap */
};

static void stress_task(void *arg, int64_t task, int thread) {
    struct stress_job *j = arg;
    for (int i = 0; i < j->busy; i++)
        atomic_signal_fence(memory_order_seq_cst); /* keeps the busy loop */
    atomic_fetch_add_explicit(&j->hits[task], 1, memory_order_relaxed);
    if (thread < 0 || thread >= j->n_threads)
        atomic_store(&j->bad_thread, 1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_pool_stress(void) {
    static const int counts[] = {1, 2, 3, 4, 8};
    for (size_t ci = 0; ci < 2 * sizeof counts / sizeof counts[0]; ci++) {
        const int busy = ci % 2 ? 300 : 0;
        struct tern_pool *pool = NULL;
        CHECK_STATUS(TERN_OK, tern_pool_create(counts[ci / 2], &pool));
        static struct stress_job j;
        j.n_threads = counts[ci / 2];
        j.busy = busy;
        atomic_store(&j.bad_thread, 0);
        const int n_calls = busy ? 5000 : 20000;
        int64_t expected[STRESS_MAX_TASKS] = {0};
        for (int i = 0; i < STRESS_MAX_TASKS; i++)
            atomic_store(&j.hits[i], 0);
        const double t0 = now_s();
        for (int call = 0; call < n_calls; call++) {
            const int64_t n_tasks = call % (STRESS_MAX_TASKS + 1); /* 0 tasks included */
            for (int64_t i = 0; i < n_tasks; i++)
                expected[i]++;
            tern_pool_run(pool, n_tasks, stress_task, &j);
        }
        const double dt = now_s() - t0;
        for (int i = 0; i < STRESS_MAX_TASKS; i++)
            CHECK_INT(expected[i], atomic_load(&j.hits[i]));
        CHECK_INT(0, atomic_load(&j.bad_thread));
        fprintf(stderr, "  pool %d threads: %.2f us per call (%d calls of 0..%d %s tasks)\n", counts[ci / 2],
                1e6 * dt / n_calls, n_calls, STRESS_MAX_TASKS, busy ? "short" : "empty");
        tern_pool_free(pool);
    }
    /* a pool that sleeps between calls must wake up */
    struct tern_pool *pool = NULL;
    CHECK_STATUS(TERN_OK, tern_pool_create(3, &pool));
    static struct stress_job j2;
    j2.n_threads = 3;
    for (int round = 0; round < 3; round++) {
        const struct timespec pause = {0, 5 * 1000 * 1000};
        nanosleep(&pause, NULL);
        for (int i = 0; i < 8; i++)
            atomic_store(&j2.hits[i], 0);
        tern_pool_run(pool, 8, stress_task, &j2);
        for (int i = 0; i < 8; i++)
            CHECK_INT(1, atomic_load(&j2.hits[i]));
    }
    tern_pool_free(pool);
}

/* ---- selection ---- */

/* Whether the kernel lists every flag of `flags` (space separated) for this CPU in /proc/cpuinfo:
 * an oracle for dispatch's own cpuid/XGETBV reading (Linux hides flags the OS does not enable).
 * -1 when /proc/cpuinfo has no flags line. */
static int cpuinfo_has(const char *flags) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    static char line[8192];
    int found = -1;
    while (f && found < 0 && fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5) || !strncmp(line, "Features", 8))
            found = 1;
    if (f)
        fclose(f);
    if (found < 0)
        return -1;
    char want[256];
    snprintf(want, sizeof want, "%s", flags);
    for (char *w = strtok(want, " "); w; w = strtok(NULL, " ")) {
        const size_t n = strlen(w);
        bool seen = false;
        for (const char *p = strstr(line, w); p && !seen; p = strstr(p + 1, w))
            seen = (p[-1] == ' ' || p[-1] == '\t') && (p[n] == ' ' || p[n] == '\n');
        found &= seen;
    }
    return found;
}

/* The compute probe of tern bench: each x86 level's dot_peak runs and counts its multiply-adds (12
 * chains of 64 (zmm) or 32 (ymm) per round); the whole probe gives positive rates. */
static void test_dot_peak(void) {
    for (int l = 0; l < n_levels; l++) {
        const struct tern_cpu_kernels *k = levels[l];
        if (!k->dot_peak)
            continue;
        const int64_t per_round = !strcmp(k->name, "avx512")                                ? 12 * 64
                                  : !strcmp(k->name, "neon") || !strcmp(k->name, "neondot") ? 12 * 16
                                                                                            : 12 * 32;
        CHECK_INT(1000 * per_round, k->dot_peak(1000));
        CHECK_INT(0, k->dot_peak(0));
    }
    struct tern_cpu_peak p;
    CHECK_INT(TERN_OK, tern_cpu_compute_peak(2, &p));
    CHECK(p.gemm_1 > 0 && p.gemm_n > 0);
    CHECK((p.dot_1 > 0) == (tern_cpu_kernels_select()->dot_peak != NULL));
    CHECK_INT(TERN_ERR_ARG, tern_cpu_compute_peak(0, &p));
}

static void test_select(void) {
    /* each level against the flags it needs, as the kernel reports them */
    static const char *const needs[TERN_CPU_ISA_COUNT] = {
        "",
        "avx2 fma f16c",
        "avx2 fma f16c avx_vnni",
        "avx2 fma f16c avx512f avx512dq avx512bw avx512vl avx512_vnni",
        "asimd",
        "asimd asimddp"};
    const char *saved = getenv("TERN_CPU_ISA");
    char saved_copy[64] = "";
    if (saved)
        snprintf(saved_copy, sizeof saved_copy, "%s", saved);
    unsetenv("TERN_CPU_ISA");
    const struct tern_cpu_kernels *best = tern_cpu_kernels_select();
    CHECK(best != NULL);
    fprintf(stderr, "  best level on this machine: %s\n", best ? best->name : "(none)");
    const char *best_name = "scalar";
    for (int i = 0; i < TERN_CPU_ISA_COUNT; i++) {
        const char *name = tern_cpu_isa_names[i];
        const int cpu = i == 0 ? 1 : cpuinfo_has(needs[i]);
        CHECK(cpu >= 0);
        const bool runs = cpu > 0 && tern_cpu_isa_built(name);
        fprintf(stderr, "  %-7s built %d, /proc/cpuinfo %d\n", name, tern_cpu_isa_built(name), cpu);
        CHECK_INT(cpu > 0, tern_cpu_isa_supported(name));
        setenv("TERN_CPU_ISA", name, 1);
        const struct tern_cpu_kernels *k = tern_cpu_kernels_select();
        CHECK_INT(runs, k != NULL);
        if (k)
            CHECK(strcmp(k->name, name) == 0);
        if (runs)
            best_name = name;
    }
    if (best && strcmp(best->name, best_name) != 0)
        harness_fail(__FILE__, __LINE__, "default level %s, expected the best one, %s", best->name,
                     best_name);
    setenv("TERN_CPU_ISA", "sse9", 1);
    CHECK(tern_cpu_kernels_select() == NULL);
    setenv("TERN_CPU_ISA", "scalar", 1);
    CHECK(tern_cpu_kernels_select() == &tern_cpu_kernels_scalar);
    if (saved)
        setenv("TERN_CPU_ISA", saved_copy, 1);
    else
        unsetenv("TERN_CPU_ISA");
}

static void physical_cores_as_lscpu_counts_them(void) {
    /* distinct (core, socket) pairs, as util-linux's lscpu reports them */
    FILE *f = popen("lscpu -p=CORE,SOCKET 2>/dev/null | grep -v '^#' | sort -u | wc -l", "r");
    int n = 0;
    CHECK(f && fscanf(f, "%d", &n) == 1);
    if (f)
        pclose(f);
    if (n > 0)
        CHECK_INT(n, tern_cpu_physical_cores());
    else
        harness_fail(__FILE__, __LINE__, "lscpu (util-linux) gave no core list");
}

int main(void) {
    const char *force = getenv("TERN_CPU_ISA");
    if (force && *force) {
        const struct tern_cpu_kernels *k = tern_cpu_kernels_select();
        if (!k) { /* a run asked to test a level it cannot: fail rather than pass untested */
            fprintf(stderr, "FAIL TERN_CPU_ISA=%s is not available here\n", force);
            return 1;
        }
        levels[n_levels++] = k;
    } else {
        for (int i = 0; i < TERN_CPU_ISA_COUNT; i++) {
            const struct tern_cpu_kernels *k = tern_cpu_kernels_get(tern_cpu_isa_names[i]);
            if (k && k != &tern_cpu_kernels_scalar)
                levels[n_levels++] = k;
        }
#ifdef TERN_HAVE_VNNI_TWIN
        if (tern_cpu_isa_supported("avx512") && !tern_cpu_isa_supported("avxvnni"))
            levels[n_levels++] = &tern_cpu_kernels_avxvnni_twin;
#endif
    }
    fprintf(stderr, "levels under test:");
    for (int i = 0; i < n_levels; i++)
        fprintf(stderr, " %s", levels[i]->name);
    fprintf(stderr, "\n");
    RUN(test_select);
    RUN(physical_cores_as_lscpu_counts_them);
    RUN(test_quantize_act);
    RUN(test_ternary_matmul);
    RUN(test_matvec);
    RUN(test_matvec_tokens);
    RUN(test_rmsnorm_ffn);
    RUN(test_norm_quantize);
    RUN(test_f16_row);
    RUN(test_rope);
    RUN(test_attention);
    RUN(test_threads);
    RUN(test_pool_stress);
    RUN(test_dot_peak);
    return harness_finish();
}
