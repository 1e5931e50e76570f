/* The certified head (scheduler/head_cert.h, issue 12) against the full head, whose own kernels are
 * the oracle here: the bound holds for every row on random data of every head type, on every CPU
 * level; every level's shadow dot is exact with the input levels at the ends of their ranges; on
 * every CPU level and the OpenCL device (PoCL in CI), the device's top-k set and its logits, with
 * and without a repetition penalty, equal the full head's bit for bit for k in {1, 40, 100}; near
 * ties below the shadow's resolution pick what the full head picks; greedy and top-k sampling on
 * random models and on the conformance vectors give the full head's ids. */
#define _DEFAULT_SOURCE /* setenv, truncate */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cl/cl_device.h"
#include "cpu/cpu_device.h"
#include "cpu/isa.h"
#include "cpu/kernels.h"
#include "cpu/ref.h"
#include "harness.h"
#include "host/generate/json_mode.h"
#include "host/model/maker.h"
#include "host/tern.h"
#include "scheduler/fp16.h"
#include "scheduler/head_cert.h"
#include "scheduler/log.h"

static const uint32_t head_types[3] = {TERN_TYPE_F16, TERN_TYPE_BF16, TERN_TYPE_F32};

static size_t elt_bytes(uint32_t type) {
    return type == TERN_TYPE_F32 ? 4 : 2;
}

static void put(void *data, uint32_t type, size_t i, float v) {
    if (type == TERN_TYPE_F32) {
        ((float *)data)[i] = v;
        return;
    }
    ((uint16_t *)data)[i] = type == TERN_TYPE_F16 ? tern_fp32_to_fp16(v) : tern_fp32_to_bf16(v);
}

/* A head of n_rows x n: kind 0 uniform [-1, 1]; 1 normal with every 7th row scaled by 1e-3 and
 * every 11th by 30, and a few outlier weights (the shape of trained embeddings); 2 rows of mostly
 * zeros with a few large values. */
static void *make_head(uint32_t type, int64_t n, int64_t n_rows, int kind, uint64_t seed) {
    void *data = malloc((size_t)(n * n_rows) * elt_bytes(type));
    uint64_t r = seed;
    for (int64_t row = 0; row < n_rows; row++)
        for (int64_t i = 0; i < n; i++) {
            float v;
            if (kind == 0) {
                v = test_rand_uniform(&r, -1.0f, 1.0f);
            } else if (kind == 1) {
                v = 0.02f * test_rand_normal(&r) * (row % 7 == 0 ? 1e-3f : row % 11 == 0 ? 30.0f : 1.0f);
                if (test_rand_u64(&r) % 97 == 0)
                    v *= 40.0f;
            } else {
                v = test_rand_u64(&r) % 13 == 0 ? test_rand_uniform(&r, -8.0f, 8.0f) : 0.0f;
            }
            put(data, type, (size_t)(row * n + i), v);
        }
    return data;
}

/* x: kind 0 normal, 1 normal with a few huge dimensions (as final hidden states have), 2 constant,
 * 3 normal with a few elements 1e30 times the rest (adversarial: every other element of their
 * blocks quantizes to 0), 4 tiny (normal times 1e-33: subnormal block scales and products). */
enum { N_X_KINDS = 5 };
static void make_x(float *x, int64_t n, int kind, uint64_t seed) {
    uint64_t r = seed;
    for (int64_t i = 0; i < n; i++) {
        const float v = test_rand_normal(&r);
        x[i] = kind == 2   ? 0.75f
               : kind == 1 ? v * (i % 61 == 5 ? 50.0f : 1.0f)
               : kind == 3 ? v * (i % 97 == 13 ? 1e30f : 1e-6f)
               : kind == 4 ? v * 1e-33f
                           : v;
    }
}

/* The reference's shadow of an n_rows x n head (its blob, to free; sh views it). */
static void *shadow_of(struct tern_head_shadow *sh, void *data, uint32_t type, int64_t n, int64_t n_rows) {
    const struct tern_tensor head = {data, type, n, n_rows, (size_t)n * elt_bytes(type)};
    void *blob = aligned_alloc(64, tern_head_shadow_bytes(n, n_rows));
    tern_head_shadow_rows(blob, &head, 0, n_rows);
    tern_head_shadow_view(sh, blob, n, n_rows);
    return blob;
}

/* The shadow's logits of rows [0, n_rows) for x on level k, and the bound's two norms. */
static void shadow_logits(float *out, const struct tern_cpu_kernels *k, const struct tern_head_shadow *s,
                          const float *x, float *x_norm, float *d_norm) {
    const size_t n_p = (size_t)s->n_blocks * TERN_HEAD_SHADOW_BLOCK;
    int8_t *p = aligned_alloc(64, 2 * n_p);
    float *t = malloc((size_t)s->n_blocks * sizeof(float));
    struct tern_head_xq xq = {p, p + n_p, t, 0, 0};
    tern_head_quantize_x(&xq, x, s->n);
    const struct tern_head_xq *xs[1] = {&xq};
    k->shadow_dot((float *const[]){out}, s, xs, 1, 0, s->n_rows);
    *x_norm = xq.x_norm;
    *d_norm = xq.d_norm;
    free(p);
    free(t);
}

/* Every level's shadow builder gives the reference's weights and scales, and |full - shadow| <=
 * coef |x| + dcoef |delta| for every row, every type, data kind, input kind and kernel level. */
static void bounds_hold(void) {
    static const int64_t widths[3] = {32, 256, 2560};
    const int64_t n_rows = 300;
    int levels = 0;
    for (int l = 0; l < TERN_CPU_ISA_COUNT; l++) {
        const struct tern_cpu_kernels *k = tern_cpu_kernels_get(tern_cpu_isa_names[l]);
        if (!k)
            continue;
        levels++;
        double worst = 0.0; /* largest |full - shadow| / bound seen */
        for (int t = 0; t < 3; t++)
            for (int w = 0; w < 3; w++)
                for (int kind = 0; kind < 3; kind++) {
                    const int64_t n = widths[w];
                    void *data = make_head(head_types[t], n, n_rows, kind, 11 + kind);
                    const struct tern_tensor head = {data, head_types[t], n, n_rows,
                                                     (size_t)n * elt_bytes(head_types[t])};
                    CHECK(tern_head_cert_supported(&head));
                    const size_t sb = tern_head_shadow_bytes(n, n_rows);
                    void *blob = aligned_alloc(64, sb), *ref_blob = aligned_alloc(64, sb);
                    float *x = malloc((size_t)n * sizeof(float));
                    float *full = malloc((size_t)n_rows * sizeof(float));
                    float *approx = malloc((size_t)n_rows * sizeof(float));
                    k->head_shadow(blob, &head, 0, n_rows);
                    struct tern_head_shadow sh, ref;
                    tern_head_shadow_view(&sh, blob, n, n_rows);
                    /* every level quantizes as the reference does */
                    tern_head_shadow_rows(ref_blob, &head, 0, n_rows);
                    tern_head_shadow_view(&ref, ref_blob, n, n_rows);
                    if (memcmp(ref.q, sh.q, (size_t)(n * n_rows)) != 0 ||
                        memcmp(ref.d, sh.d, (size_t)(sh.n_blocks * n_rows) * sizeof(float)) != 0)
                        harness_fail(__FILE__, __LINE__,
                                     "%s, %s head, n %lld, data %d: shadow bytes differ from the reference's",
                                     k->name, tern_type_name(head_types[t]), (long long)n, kind);
                    for (int xk = 0; xk < N_X_KINDS; xk++) {
                        make_x(x, n, xk, 100 + xk);
                        float xn, dn;
                        k->matvec(full, &head, x, 0, n_rows);
                        shadow_logits(approx, k, &sh, x, &xn, &dn);
                        for (int64_t r = 0; r < n_rows; r++) {
                            const double err = fabs((double)full[r] - (double)approx[r]);
                            const double bound =
                                (double)sh.coef[r] * (double)xn + (double)sh.dcoef[r] * (double)dn + 1e-30;
                            if (!(err <= bound)) {
                                harness_fail(__FILE__, __LINE__,
                                             "%s, %s head, n %lld, data %d, x %d, row %lld: |%.9g - %.9g| = "
                                             "%.3g exceeds the bound %.3g",
                                             k->name, tern_type_name(head_types[t]), (long long)n, kind, xk,
                                             (long long)r, full[r], approx[r], err, bound);
                                break;
                            }
                            if (bound > 0 && err / bound > worst)
                                worst = err / bound;
                        }
                    }
                    free(data);
                    free(blob);
                    free(ref_blob);
                    free(x);
                    free(full);
                    free(approx);
                }
        fprintf(stderr, "  level %s: every row within its bound (largest error %.2f of the bound)\n", k->name,
                worst);
    }
    CHECK(levels >= 1);
}

/* The shadow dot's integer parts are every level's: with block scales d_b t_b = 1 (powers of two)
 * and inputs small enough that every partial sum is an integer below 2^24, each level's logits
 * equal the reference's bit for bit; and on real data each input's logits carry the same bits in a
 * call of 1 to 6 inputs as alone. Rows of 2560 (whole blocks) and 2592 (a short last block). */
static void shadow_dot_exact(void) {
    static const int64_t widths[2] = {2560, 2592};
    const int64_t n_rows = 40;
    for (int w = 0; w < 2; w++) {
        const int64_t n = widths[w];
        void *data = make_head(TERN_TYPE_F16, n, n_rows, 0, 3);
        struct tern_head_shadow sh;
        void *blob = shadow_of(&sh, data, TERN_TYPE_F16, n, n_rows);
        const size_t n_p = (size_t)sh.n_blocks * TERN_HEAD_SHADOW_BLOCK;
        enum { NT = 6 };
        struct tern_head_xq xq[NT];
        const struct tern_head_xq *xs[NT];
        int8_t *p = aligned_alloc(64, NT * 2 * n_p);
        float *t = malloc(NT * (size_t)sh.n_blocks * sizeof(float)), *x = malloc((size_t)n * sizeof(float));
        float *ref[NT], *got[NT], *alone[1];
        uint64_t rs = 99;
        for (int i = 0; i < NT; i++) {
            xq[i] = (struct tern_head_xq){p + 2 * i * n_p, p + (2 * i + 1) * n_p, t + i * sh.n_blocks, 0, 0};
            xs[i] = &xq[i];
            ref[i] = malloc((size_t)n_rows * sizeof(float));
            got[i] = malloc((size_t)n_rows * sizeof(float));
        }
        alone[0] = malloc((size_t)n_rows * sizeof(float));
        for (int exact = 1; exact >= 0; exact--) {
            for (int i = 0; i < NT; i++) {
                make_x(x, n, i % 3, 7 + (uint64_t)i);
                tern_head_quantize_x(&xq[i], x, n);
                if (exact)
                    for (int64_t j = 0; j < n; j++) {
                        xq[i].p[j] = (int8_t)((int)(test_rand_u64(&rs) % 3) - 1);
                        xq[i].p2[j] = (int8_t)((int)(test_rand_u64(&rs) % 17) - 8);
                    }
            }
            float *const d_saved = sh.d;
            float *ones = malloc((size_t)(sh.n_blocks * n_rows) * sizeof(float));
            if (exact) {
                for (int64_t j = 0; j < sh.n_blocks * n_rows; j++)
                    ones[j] = 0.125f;
                for (int i = 0; i < NT; i++)
                    for (int64_t b = 0; b < sh.n_blocks; b++)
                        xq[i].t[b] = 8.0f;
                sh.d = ones;
            }
            tern_ref_shadow_dot(ref, &sh, xs, NT, 0, n_rows);
            for (int l = 0; l < TERN_CPU_ISA_COUNT; l++) {
                const struct tern_cpu_kernels *k = tern_cpu_kernels_get(tern_cpu_isa_names[l]);
                if (!k)
                    continue;
                /* row ranges of an even and an odd count (kernels may take rows in pairs) */
                for (int64_t r0 = 0; r0 < 2; r0++)
                    for (int nt = 1; nt <= NT; nt++) {
                        const size_t bytes = (size_t)(n_rows - r0) * sizeof(float);
                        k->shadow_dot(got, &sh, xs, nt, r0, n_rows);
                        for (int i = 0; i < nt; i++) {
                            k->shadow_dot(alone, &sh, xs + i, 1, 0, n_rows);
                            if (memcmp(alone[0] + r0, got[i], bytes) != 0 ||
                                (exact && memcmp(ref[i] + r0, got[i], bytes) != 0)) {
                                harness_fail(__FILE__, __LINE__,
                                             "%s, n %lld, %s, rows %lld.., input %d of %d: %.9g, alone %.9g, "
                                             "reference %.9g",
                                             k->name, (long long)n, exact ? "integer" : "real", (long long)r0,
                                             i, nt, got[i][0], alone[0][r0], ref[i][r0]);
                                nt = NT;
                                break;
                            }
                        }
                    }
            }
            sh.d = d_saved;
            free(ones);
        }
        for (int i = 0; i < NT; i++) {
            free(ref[i]);
            free(got[i]);
        }
        free(alone[0]);
        free(p);
        free(t);
        free(x);
        free(blob);
        free(data);
    }
}

/* The input levels at the ends of their ranges (p = +-63, p2 = +-64) against weights +-127 fill
 * every pair of products the AVX2 maddubs forms to its largest (2 x 255 x 64 < 2^15): each level's
 * dot must still equal the reference exactly. Only the first two weights of a block are nonzero,
 * so each block's dot (2 x 127 x 8128) and the logit stay exact in f32 on every level. */
static void shadow_dot_extremes(void) {
    enum { NT = 4, NB = 3, N_ROWS = 6 };
    const int64_t n = NB * TERN_HEAD_SHADOW_BLOCK, n_rows = N_ROWS;
    void *blob = aligned_alloc(64, tern_head_shadow_bytes(n, n_rows));
    struct tern_head_shadow sh;
    tern_head_shadow_view(&sh, blob, n, n_rows);
    const size_t n_p = (size_t)sh.n_blocks * TERN_HEAD_SHADOW_BLOCK;
    int8_t *p = aligned_alloc(64, NT * 2 * n_p);
    float t[NT][NB], ref_v[NT][N_ROWS], got_v[NT][N_ROWS];
    struct tern_head_xq xq[NT];
    const struct tern_head_xq *xs[NT];
    float *ref[NT], *got[NT];
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t i = 0; i < n; i++) {
            const int q = i % TERN_HEAD_SHADOW_BLOCK < 2 ? (r % 2 ? -127 : 127) : 0;
            sh.q[r * n + i] = (uint8_t)(q + 128);
            if (i % TERN_HEAD_SHADOW_BLOCK == 0)
                sh.d[r * sh.n_blocks + i / TERN_HEAD_SHADOW_BLOCK] = 0.125f;
        }
    for (int k = 0; k < NT; k++) {
        const int sign = k % 2 ? -1 : 1;
        xq[k] = (struct tern_head_xq){p + 2 * k * n_p, p + (2 * k + 1) * n_p, t[k], 0, 0};
        for (size_t i = 0; i < n_p; i++) {
            xq[k].p[i] = (int8_t)(sign * TERN_HEAD_P_MAX);
            xq[k].p2[i] = (int8_t)((k < 2 ? sign : -sign) * TERN_HEAD_P2_MAX);
        }
        for (int64_t b = 0; b < sh.n_blocks; b++)
            t[k][b] = 8.0f;
        xs[k] = &xq[k];
        ref[k] = ref_v[k];
        got[k] = got_v[k];
    }
    tern_ref_shadow_dot(ref, &sh, xs, NT, 0, n_rows);
    CHECK(ref_v[0][0] == (float)NB * 2 * 127 * (128 * 63 + 64));
    for (int l = 0; l < TERN_CPU_ISA_COUNT; l++) {
        const struct tern_cpu_kernels *k = tern_cpu_kernels_get(tern_cpu_isa_names[l]);
        if (!k)
            continue;
        for (int nt = 1; nt <= NT; nt++) {
            k->shadow_dot(got, &sh, xs, nt, 0, n_rows);
            for (int i = 0; i < nt; i++)
                if (memcmp(got_v[i], ref_v[i], sizeof ref_v[i]) != 0)
                    harness_fail(__FILE__, __LINE__, "%s, input %d of %d: %.9g, reference %.9g", k->name, i,
                                 nt, got_v[i][0], ref_v[i][0]);
        }
    }
    free(p);
    free(blob);
}

/* The bound is tight enough to be useful: uniform rows of 2560, normal x (the 2b4t bench's
 * shape), bound within a quarter of the logits' spread (measured 0.21; a 4-bit shadow gives ~3.5). */
static void bound_is_tight(void) {
    const int64_t n = 2560, n_rows = 64;
    void *data = make_head(TERN_TYPE_F16, n, n_rows, 0, 5);
    struct tern_head_shadow sh;
    void *blob = shadow_of(&sh, data, TERN_TYPE_F16, n, n_rows);
    float x[2560], logits[64], xn, dn;
    make_x(x, n, 0, 9);
    shadow_logits(logits, &tern_cpu_kernels_scalar, &sh, x, &xn, &dn);
    const double spread = sqrt(1.0 / 3.0) * xn; /* std of a uniform [-1, 1] row dotted with x */
    for (int r = 0; r < n_rows; r++) {
        const double bound = (double)sh.coef[r] * xn + (double)sh.dcoef[r] * dn;
        if (!(bound < 0.25 * spread)) {
            harness_fail(__FILE__, __LINE__, "row %d: bound %.3g is not below 25%% of the spread %.3g", r,
                         bound, spread);
            break;
        }
    }
    free(data);
    free(blob);
}

/* The device the device-level cases run on: NULL the CPU (at the level TERN_CPU_ISA forces), else
 * the OpenCL device of this spec. */
static const char *cl_spec;

/* A device holding only a head (no layers), certified. */
struct head_dev {
    struct tern_device dev;
    struct tern_model_view mv;
    float *norm;
};

static bool head_dev_open(struct head_dev *h, void *data, uint32_t type, int64_t n, int64_t n_rows) {
    memset(h, 0, sizeof *h);
    h->norm = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        h->norm[i] = 1.0f;
    /* attention shape only for the devices' checks (no layers run): heads of 64 */
    h->mv.hp = (struct tern_hparams){.n_vocab = (int32_t)n_rows,
                                     .n_embd = (int32_t)n,
                                     .n_ff = (int32_t)n,
                                     .n_layer = 0,
                                     .n_head = (int32_t)(n / 64),
                                     .n_head_kv = (int32_t)(n / 64),
                                     .head_dim = 64,
                                     .n_rot = 64,
                                     .n_ctx_train = 8,
                                     .rope_theta = 10000.0f,
                                     .norm_eps = 1e-5f};
    h->mv.output_norm = h->norm;
    h->mv.output = (struct tern_tensor){data, type, n, n_rows, (size_t)n * elt_bytes(type)};
    h->mv.tok_embd = h->mv.output;
    CHECK_STATUS(TERN_OK,
                 cl_spec ? tern_cl_device_create(cl_spec, &h->dev) : tern_cpu_device_create(2, &h->dev));
    if (!h->dev.ops)
        return false;
    tern_status st = h->dev.ops->load(h->dev.ctx, &h->mv, 0, 0, TERN_PART_HEAD | TERN_PART_HEAD_CERT, 8, 1);
    CHECK_STATUS(TERN_OK, st);
    return st == TERN_OK;
}

static void head_dev_close(struct head_dev *h) {
    if (h->dev.ops)
        h->dev.ops->free(h->dev.ctx);
    free(h->norm);
}

static float penalize(float v, float pen) {
    return v > 0.0f ? v / pen : v * pen; /* as the sampler does */
}

static const float *rank_by;
static int by_rank(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (rank_by[x] != rank_by[y])
        return rank_by[x] < rank_by[y] ? 1 : -1;
    return x < y ? -1 : x > y;
}

/* ids of the k largest of v (ties: lower id first), as the sampler ranks them */
static void top_ids(int32_t *ids, const float *v, int64_t n, int k) {
    int32_t *all = malloc((size_t)n * sizeof *all);
    for (int64_t r = 0; r < n; r++)
        all[r] = (int32_t)r;
    rank_by = v;
    qsort(all, (size_t)n, sizeof *all, by_rank);
    memcpy(ids, all, (size_t)k * sizeof *ids);
    free(all);
}

/* Certified logits against the full head's on device h: candidates carry the same bits, and the
 * top k of the penalized values is the same set with the same values; with allowed (JSON mode's
 * tokens), of the rows allowed, the others -INFINITY. Returns rows recomputed. */
static int64_t compare_topk(struct head_dev *h, const float *hidden, int k, float pen, const int32_t *pen_ids,
                            const float *sub, int n_pen, const uint8_t *allowed, const char *what) {
    const int64_t n_rows = h->mv.output.ne1;
    float *full = malloc((size_t)n_rows * sizeof(float));
    float *cert = malloc((size_t)n_rows * sizeof(float));
    int32_t *ids_full = malloc((size_t)k * sizeof(int32_t)), *ids_cert = malloc((size_t)k * sizeof(int32_t));
    struct tern_head_stats stats = {0};
    const struct tern_head_request req = {.top_k = k,
                                          .repeat_penalty = pen,
                                          .penalized = pen_ids,
                                          .penalty_sub = sub,
                                          .n_penalized = n_pen,
                                          .allowed = allowed,
                                          .stats = &stats};
    CHECK_STATUS(TERN_OK, h->dev.ops->logits(h->dev.ctx, full, hidden, 1, NULL));
    CHECK_STATUS(TERN_OK,
                 h->dev.ops->logits(h->dev.ctx, cert, hidden, 1, (const struct tern_head_request *[]){&req}));
    for (int64_t r = 0; r < n_rows && allowed; r++)
        full[r] = allowed[r] ? full[r] : -INFINITY;
    for (int64_t r = 0; r < n_rows; r++)
        if (cert[r] != -INFINITY && memcmp(&cert[r], &full[r], sizeof(float)) != 0) {
            harness_fail(__FILE__, __LINE__, "%s: row %lld: certified %.9g, full %.9g", what, (long long)r,
                         cert[r], full[r]);
            break;
        }
    for (int i = 0; i < n_pen; i++) {
        full[pen_ids[i]] = penalize(full[pen_ids[i]], pen) - (sub ? sub[i] : 0.0f);
        cert[pen_ids[i]] = penalize(cert[pen_ids[i]], pen) - (sub ? sub[i] : 0.0f);
    }
    top_ids(ids_full, full, n_rows, k);
    top_ids(ids_cert, cert, n_rows, k);
    for (int i = 0; i < k; i++)
        if (ids_full[i] != ids_cert[i] ||
            memcmp(&full[ids_full[i]], &cert[ids_cert[i]], sizeof(float)) != 0) {
            harness_fail(__FILE__, __LINE__, "%s: top-%d rank %d: full id %d (%.9g), certified id %d (%.9g)",
                         what, k, i, ids_full[i], full[ids_full[i]], ids_cert[i], cert[ids_cert[i]]);
            break;
        }
    CHECK_INT(1, stats.n_tokens);
    CHECK_INT(0, stats.n_full); /* it certified, not fell back */
    const int64_t rows = (int64_t)stats.n_rows;
    free(full);
    free(cert);
    free(ids_full);
    free(ids_cert);
    return rows;
}

/* fn on every CPU level, then on the first OpenCL device when there is one (PoCL in CI; the
 * OpenCL suites fail without a platform, this one only says so). */
static void each_device(void (*fn)(const char *device)) {
    for (int l = 0; l < TERN_CPU_ISA_COUNT; l++) {
        const char *level = tern_cpu_isa_names[l];
        if (!tern_cpu_isa_built(level) || !tern_cpu_isa_supported(level))
            continue;
        setenv("TERN_CPU_ISA", level, 1);
        fn(level);
    }
    unsetenv("TERN_CPU_ISA");
    int n_cl = 0;
    if (tern_cl_device_count(&n_cl) != TERN_OK || n_cl == 0) {
        fprintf(stderr, "  no OpenCL device: the OpenCL certified head is not tested here\n");
        return;
    }
    cl_spec = "0";
    fn("cl:0");
    cl_spec = NULL;
}

static void topk_device(const char *level) {
    const int64_t n = 512, n_rows = 6000;
    static const int ks[3] = {1, 40, 100};
    for (int t = 0; t < 3; t++) {
        void *data = make_head(head_types[t], n, n_rows, 0, 21 + t);
        struct head_dev h;
        if (head_dev_open(&h, data, head_types[t], n, n_rows)) {
            float hidden[512], full[6000];
            uint8_t allowed[6000];
            int64_t rows = 0, calls = 0;
            for (int trial = 0; trial < 4; trial++) {
                make_x(hidden, n, trial % 2, 300 + trial);
                /* penalize the full head's current top 10 and 10 others, ascending */
                CHECK_STATUS(TERN_OK, h.dev.ops->logits(h.dev.ctx, full, hidden, 1, NULL));
                int32_t top[10], pen_ids[20];
                top_ids(top, full, n_rows, 10);
                for (int i = 0; i < 10; i++) {
                    pen_ids[i] = top[i];
                    pen_ids[10 + i] = (int32_t)(97 * i + trial);
                }
                for (int i = 1; i < 20; i++) /* insertion sort, then drop duplicates */
                    for (int j = i; j > 0 && pen_ids[j - 1] > pen_ids[j]; j--) {
                        const int32_t s = pen_ids[j];
                        pen_ids[j] = pen_ids[j - 1];
                        pen_ids[j - 1] = s;
                    }
                int n_pen = 0;
                for (int i = 0; i < 20; i++)
                    if (n_pen == 0 || pen_ids[n_pen - 1] != pen_ids[i])
                        pen_ids[n_pen++] = pen_ids[i];
                for (int ki = 0; ki < 3; ki++) {
                    char what[96];
                    snprintf(what, sizeof what, "%s, %s head, trial %d, k %d", level,
                             tern_type_name(head_types[t]), trial, ks[ki]);
                    rows += compare_topk(&h, hidden, ks[ki], 1.0f, NULL, NULL, 0, NULL, what);
                    snprintf(what, sizeof what, "%s, %s head, trial %d, k %d, penalty 1.5", level,
                             tern_type_name(head_types[t]), trial, ks[ki]);
                    rows += compare_topk(&h, hidden, ks[ki], 1.5f, pen_ids, NULL, n_pen, NULL, what);
                    snprintf(what, sizeof what, "%s, %s head, trial %d, k %d, penalty 0.7", level,
                             tern_type_name(head_types[t]), trial, ks[ki]);
                    rows += compare_topk(&h, hidden, ks[ki], 0.7f, pen_ids, NULL, n_pen, NULL, what);
                    /* frequency and presence penalties: an amount subtracted per id after it, large
                     * enough to take the penalized top 10 out of the top k, so rows below them enter */
                    float sub[20];
                    for (int i = 0; i < n_pen; i++)
                        sub[i] = 0.5f + 1e3f * (float)(i % 2);
                    snprintf(what, sizeof what, "%s, %s head, trial %d, k %d, penalty 1.2 and subtracted",
                             level, tern_type_name(head_types[t]), trial, ks[ki]);
                    rows += compare_topk(&h, hidden, ks[ki], 1.2f, pen_ids, sub, n_pen, NULL, what);
                    /* JSON mode's allowed rows: the full head's top 10 not allowed, a third of the
                     * others allowed; and only 12 rows, fewer than k can be */
                    for (int64_t r = 0; r < n_rows; r++)
                        allowed[r] = (uint8_t)((r * 7 + trial) % 3 == 0);
                    for (int i = 0; i < 10; i++)
                        allowed[top[i]] = 0;
                    snprintf(what, sizeof what, "%s, %s head, trial %d, k %d, a third allowed", level,
                             tern_type_name(head_types[t]), trial, ks[ki]);
                    rows += compare_topk(&h, hidden, ks[ki], 1.5f, pen_ids, NULL, n_pen, allowed, what);
                    memset(allowed, 0, sizeof allowed);
                    for (int i = 0; i < 12; i++)
                        allowed[(997 * i + trial) % n_rows] = 1;
                    snprintf(what, sizeof what, "%s, %s head, trial %d, k %d, 12 allowed", level,
                             tern_type_name(head_types[t]), trial, ks[ki]);
                    rows += compare_topk(&h, hidden, ks[ki], 1.0f, NULL, NULL, 0, allowed, what);
                    calls += 6;
                }
            }
            fprintf(stderr, "  %s, %s head: %.1f of %lld rows recomputed per call\n", level,
                    tern_type_name(head_types[t]), (double)rows / (double)calls, (long long)n_rows);
        }
        head_dev_close(&h);
        free(data);
    }
}

static void topk_equals_full(void) {
    each_device(topk_device);
}

/* 32 x 1024 + 1 rows: the CPU device builds the shadow 1024 rows per task, so the last row is a task
 * of its own (and the shadow's arrays are fresh, zeroed pages, so a row left out would not pass by
 * luck); x points along it, so it leads, and the certified head must find it as the full head does. */
static void last_row_device(const char *level) {
    const int64_t n = 256, n_rows = 32 * 1024 + 1;
    uint16_t *data = make_head(TERN_TYPE_F16, n, n_rows, 0, 5);
    float hidden[256];
    for (int64_t i = 0; i < n; i++) {
        hidden[i] = 0.5f + 0.25f * (float)((i * 37) % 11) / 11.0f;
        data[(n_rows - 1) * n + i] = tern_fp32_to_fp16(hidden[i]);
    }
    struct head_dev h;
    char what[64];
    snprintf(what, sizeof what, "%s, the last row leads", level);
    if (head_dev_open(&h, data, TERN_TYPE_F16, n, n_rows)) {
        compare_topk(&h, hidden, 1, 1.0f, NULL, NULL, 0, NULL, what);
        compare_topk(&h, hidden, 5, 1.0f, NULL, NULL, 0, NULL, what);
    }
    head_dev_close(&h);
    free(data);
}

static void last_row_found(void) {
    each_device(last_row_device);
}

/* Several tokens in one logits call (a batched decode step; on OpenCL passes of 4 and 2), certified
 * and not mixed, then all full: every token's logits carry the bits of the call that holds it alone,
 * the rows left out (-INFINITY) included, for each head type. */
static void batch_device(const char *level) {
    enum { NT = 6 };
    const int64_t n = 512, n_rows = 3000;
    float *hidden = malloc(NT * (size_t)n * sizeof(float));
    float *batch = malloc(NT * (size_t)n_rows * sizeof(float)),
          *alone = malloc((size_t)n_rows * sizeof(float));
    for (int t = 0; t < NT; t++)
        make_x(hidden + t * n, n, t % 2, 40 + (uint64_t)t);
    for (int ty = 0; ty < 3; ty++) {
        void *data = make_head(head_types[ty], n, n_rows, 0, 31 + (uint64_t)ty);
        struct tern_head_stats stats = {0};
        const struct tern_head_request r1 = {.top_k = 1, .repeat_penalty = 1.0f, .stats = &stats},
                                       r40 = {.top_k = 40, .repeat_penalty = 1.0f, .stats = &stats};
        const struct tern_head_request *req[NT] = {&r1, &r40, NULL, &r1, &r40, &r1};
        struct head_dev h;
        if (head_dev_open(&h, data, head_types[ty], n, n_rows)) {
            for (int mode = 0; mode < 2; mode++) {
                const struct tern_head_request *const *rq = mode == 0 ? req : NULL;
                CHECK_STATUS(TERN_OK, h.dev.ops->logits(h.dev.ctx, batch, hidden, NT, rq));
                for (int t = 0; t < NT; t++) {
                    CHECK_STATUS(TERN_OK,
                                 h.dev.ops->logits(h.dev.ctx, alone, hidden + t * n, 1, rq ? rq + t : NULL));
                    if (memcmp(alone, batch + t * n_rows, (size_t)n_rows * sizeof(float)) != 0)
                        harness_fail(__FILE__, __LINE__,
                                     "%s, %s head, %s: token %d of %d: batched logits differ "
                                     "from its own call",
                                     level, tern_type_name(head_types[ty]), mode == 0 ? "certified" : "full",
                                     t, NT);
                }
            }
            CHECK_INT(10, stats.n_tokens);
            CHECK_INT(0, stats.n_full); /* each certified */
        }
        head_dev_close(&h);
        free(data);
    }
    free(hidden);
    free(batch);
    free(alone);
}

static void batch_equals_alone(void) {
    each_device(batch_device);
}

/* Rows 3 and 7 differ in one weight by one f16 step, far below the shadow's resolution (their
 * shadows are equal), and x points along them: the two lead, a hair apart. Rows 20..119 are row 3
 * with one weight nudged, so over 64 rows tie within the bound. Greedy picks what the full head
 * picks; exact ties (row 9 = row 3) go to the lower id, as the sampler's argmax does. */
static void near_tie_device(const char *level) {
    const int64_t n = 256, n_rows = 1200; /* over 8 x 100 rows: the candidates stay under the fallback */
    uint16_t *data = make_head(TERN_TYPE_F16, n, n_rows, 0, 77);
    for (int64_t i = 0; i < n; i++)
        data[3 * n + i] = tern_fp32_to_fp16(0.5f + 0.25f * (float)((i * 37) % 11) / 11.0f);
    memcpy(data + 7 * n, data + 3 * n, (size_t)n * 2);
    data[7 * n + 100] = (uint16_t)(data[3 * n + 100] + 1); /* one f16 step up */
    for (int64_t r = 20; r < 120; r++) {
        memcpy(data + r * n, data + 3 * n, (size_t)n * 2);
        data[r * n + r] = (uint16_t)(data[3 * n + r] - 1 - (r & 1));
    }
    struct tern_head_shadow sh;
    void *blob = shadow_of(&sh, data, TERN_TYPE_F16, n, n_rows);
    /* the test is adversarial: the two rows' shadows are equal */
    CHECK(memcmp(sh.q + 3 * n, sh.q + 7 * n, (size_t)n) == 0);
    CHECK(memcmp(sh.d + 3 * sh.n_blocks, sh.d + 7 * sh.n_blocks, (size_t)sh.n_blocks * sizeof(float)) == 0);
    struct head_dev h;
    if (head_dev_open(&h, data, TERN_TYPE_F16, n, n_rows)) {
        float hidden[256];
        for (int64_t i = 0; i < n; i++)
            hidden[i] = tern_fp16_to_fp32(data[3 * n + i]);
        for (int variant = 0; variant < 2; variant++) {
            if (variant == 1) /* row 9 = row 7: an exact tie at the top */
                memcpy(data + 9 * n, data + 7 * n, (size_t)n * 2);
            else
                hidden[100] += 0.01f; /* row 7 ahead of row 3 */
            /* the device's shadow was built from the head at load: rebuild it */
            CHECK_STATUS(TERN_OK,
                         h.dev.ops->load(h.dev.ctx, &h.mv, 0, 0, TERN_PART_HEAD | TERN_PART_HEAD_CERT, 8, 1));
            char what[64];
            snprintf(what, sizeof what, "%s, near tie %d", level, variant);
            const int64_t rows = compare_topk(&h, hidden, 1, 1.0f, NULL, NULL, 0, NULL, what);
            CHECK(rows > 64);
        }
    }
    head_dev_close(&h);
    free(data);
    free(blob);
}

static void near_ties(void) {
    each_device(near_tie_device);
}

/* 48 tokens after a fixed prompt; with json, in JSON mode (any object) */
static void generate(const char *path, enum tern_head_mode mode, const struct tern_sampler_params *sp,
                     bool json, struct harness_ids *out, struct tern_generate_stats *stats) {
    memset(out, 0, sizeof *out);
    tern_model *m = NULL;
    tern_tokenizer *tok = NULL;
    tern_session *s = NULL;
    tern_sampler *smp = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(path, &m));
    if (!m)
        return;
    CHECK_STATUS(TERN_OK, tern_tokenizer_create(tern_model_gguf(m), NULL, &tok));
    char device[16];
    snprintf(device, sizeof device, "%s%s", cl_spec ? "cl:" : "cpu", cl_spec ? cl_spec : "");
    struct tern_session_params p = {.n_ctx = 128, .device = device, .head_mode = mode};
    CHECK_STATUS(TERN_OK, tern_session_create(m, &p, &s));
    tern_json_vocab *jv = NULL;
    struct tern_sampler_params p2 = *sp;
    if (json && tok)
        CHECK_STATUS(TERN_OK, tern_json_vocab_create(tok, &jv));
    p2.json = jv;
    CHECK_STATUS(TERN_OK, tern_sampler_create(&p2, tern_model_view(m)->hp.n_vocab, &smp));
    const int32_t prompt[6] = {tern_model_view(m)->hp.n_vocab - 2, 72, 101, 108, 108, 111};
    memset(stats, 0, sizeof *stats);
    if (tok && s && smp)
        CHECK_STATUS(TERN_OK, tern_generate(s, tok, smp, prompt, 6, 48, harness_collect_id, out, stats));
    tern_sampler_free(smp);
    tern_json_vocab_free(jv);
    tern_session_free(s);
    tern_tokenizer_free(tok);
    tern_model_free(m);
}

/* Random models with F16, BF16 and F32 heads (tied, and a separate F16 output), and a Q8_0 head
 * that the certified mode leaves full: greedy, top-k
 * sampling with a repetition penalty, and sampling without top-k (full logits: no request) give the
 * same ids in both head modes. */
static void models_device(const char *level) {
    static const uint32_t out_types[5] = {TERN_TYPE_COUNT, TERN_TYPE_COUNT, TERN_TYPE_COUNT, TERN_TYPE_F16,
                                          TERN_TYPE_COUNT};
    static const uint32_t embd_types[5] = {TERN_TYPE_F16, TERN_TYPE_BF16, TERN_TYPE_F32, TERN_TYPE_Q8_0,
                                           TERN_TYPE_Q8_0};
    for (int f = 0; f < 5; f++) {
        struct tern_maker_params p;
        tern_maker_preset("tiny", &p);
        p.embd_type = embd_types[f];
        p.output_type = out_types[f];
        p.seed = 40 + (uint64_t)f;
        const char *path = test_tmp("head_cert.gguf", 0);
        CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
        for (int smode = 0; smode < 3; smode++) {
            struct tern_sampler_params sp = tern_sampler_default_params();
            sp.seed = 9;
            if (smode == 0) {
                sp.temperature = 0.0f;
            } else if (smode == 1) {
                sp.top_k = 40;
                sp.repeat_penalty = 1.3f;
                sp.frequency_penalty = 0.4f;
                sp.presence_penalty = 0.3f;
            } else {
                sp.top_k = 0;
            }
            struct harness_ids full, cert;
            struct tern_generate_stats gs_full, gs_cert;
            generate(path, TERN_HEAD_FULL, &sp, false, &full, &gs_full);
            generate(path, TERN_HEAD_CERTIFIED, &sp, false, &cert, &gs_cert);
            const struct tern_head_stats *hs_full = &gs_full.head, *hs_cert = &gs_cert.head;
            if (full.n != cert.n || memcmp(full.ids, cert.ids, sizeof full.ids) != 0)
                harness_fail(__FILE__, __LINE__, "%s, model %d, sampling %d: certified ids differ from full",
                             level, f, smode);
            CHECK_INT(0, hs_full->n_tokens); /* a full session ignores requests */
            /* one logits call per sampled token: the prompt's, then each decode step's */
            CHECK_INT(smode == 2 ? 0 : gs_cert.n_generated, hs_cert->n_tokens);
            /* a Q8_0 head has no shadow: every row, counted as full */
            CHECK_INT(f == 4 && smode != 2 ? gs_cert.n_generated : 0, hs_cert->n_full);
        }
    }
}

static void random_models(void) {
    each_device(models_device);
}

/* The conformance vectors (tests/data/vectors; conformance and cl_model check their ids against
 * bitnet.cpp's): greedy and top-k sampling with a penalty give the same ids in both head modes, on
 * every device, in JSON mode too (the head told the tokens the sampler can take), and the certified
 * head certifies every greedy token. */
static void vectors_device(const char *device) {
    static const char *const files[3] = {"vectors/mini-b158-i2s.gguf", "vectors/mini-bitnet-tq1.gguf",
                                         "vectors/mini-bitnet-tq2.gguf"};
    for (int f = 0; f < 3; f++)
        for (int smode = 0; smode < 4; smode++) {
            const bool greedy = smode % 2 == 0, json = smode >= 2;
            struct tern_sampler_params sp = tern_sampler_default_params();
            sp.seed = 3;
            sp.temperature = greedy ? 0.0f : 0.8f;
            sp.repeat_penalty = greedy ? 1.0f : 1.2f;
            sp.frequency_penalty = greedy ? 0.0f : 0.5f;
            sp.presence_penalty = greedy ? 0.0f : 0.25f;
            struct harness_ids full, cert;
            struct tern_generate_stats gs_full, gs_cert;
            generate(test_data(files[f], 0), TERN_HEAD_FULL, &sp, json, &full, &gs_full);
            generate(test_data(files[f], 0), TERN_HEAD_CERTIFIED, &sp, json, &cert, &gs_cert);
            if (full.n != cert.n || memcmp(full.ids, cert.ids, sizeof full.ids) != 0)
                harness_fail(__FILE__, __LINE__, "%s, %s, sampling %d: certified ids differ from full",
                             device, files[f], smode);
            CHECK_INT(gs_cert.n_generated, gs_cert.head.n_tokens);
            if (greedy)
                CHECK_INT(0, gs_cert.head.n_full);
        }
}

static void vectors(void) {
    each_device(vectors_device);
}

/* ---- the shadow cache (scheduler/head_cache.h) ---- */

struct log_lines {
    int n_read, n_built, n_corrupt, n_stale;
};

static void count_lines(enum tern_log_level level, const char *msg, void *user) {
    (void)level;
    struct log_lines *l = user;
    l->n_read += strstr(msg, "read from the cache") != NULL;
    l->n_built += strstr(msg, "shadow written to the cache") != NULL;
    l->n_corrupt += strstr(msg, "ignoring the corrupt certified-head cache") != NULL;
    l->n_stale += strstr(msg, "ignoring the stale certified-head cache") != NULL;
}

/* Greedy ids of the model at path with the certified head, and what the load logged. */
static void generate_logged(const char *path, struct harness_ids *ids, struct log_lines *lines) {
    memset(lines, 0, sizeof *lines);
    const enum tern_log_level level = tern_log_get_level();
    tern_log_set_level(TERN_LOG_DEBUG);
    tern_log_set_callback(count_lines, lines);
    struct tern_sampler_params sp = tern_sampler_default_params();
    sp.temperature = 0.0f;
    struct tern_generate_stats gs;
    generate(path, TERN_HEAD_CERTIFIED, &sp, false, ids, &gs);
    tern_log_set_callback(NULL, NULL);
    tern_log_set_level(level);
    CHECK_INT(0, gs.head.n_full);
}

/* The one shadow file in dir (its path in buf), or false. */
static bool shadow_file(const char *dir, char *buf, size_t n) {
    DIR *d = opendir(dir);
    int found = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (!strncmp(e->d_name, "head-shadow-", 12) && strstr(e->d_name, ".bin")) {
            snprintf(buf, n, "%s/%s", dir, e->d_name);
            found++;
        }
    if (d)
        closedir(d);
    CHECK(found <= 1);
    return found == 1;
}

static void flip_byte(const char *path, long at) {
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (!f)
        return;
    fseek(f, at, SEEK_SET);
    const int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
}

/* The OpenCL device reads the file the CPU device wrote, and writes one the CPU device reads: the
 * shadow and its bound serve every device. Each gives its own full head's greedy ids. */
static void shadow_cache_shared(const char *path, const char *dir, char *file, size_t n) {
    int n_cl = 0;
    if (tern_cl_device_count(&n_cl) != TERN_OK || n_cl == 0) {
        fprintf(stderr, "  no OpenCL device: the shared shadow cache is not tested here\n");
        return;
    }
    struct tern_sampler_params sp = tern_sampler_default_params();
    sp.temperature = 0.0f;
    struct harness_ids full, ids;
    struct tern_generate_stats gs;
    struct log_lines l;
    cl_spec = "0";
    generate(path, TERN_HEAD_FULL, &sp, false, &full, &gs);
    generate_logged(path, &ids, &l); /* the CPU's file */
    CHECK(l.n_built == 0 && l.n_read == 1);
    CHECK(ids.n == full.n && memcmp(ids.ids, full.ids, sizeof ids.ids) == 0);
    CHECK(shadow_file(dir, file, n) && remove(file) == 0);
    generate_logged(path, &ids, &l); /* built and written by the OpenCL device */
    CHECK(l.n_built == 1 && l.n_read == 0);
    CHECK(ids.n == full.n && memcmp(ids.ids, full.ids, sizeof ids.ids) == 0);
    cl_spec = NULL;
    generate(path, TERN_HEAD_FULL, &sp, false, &full, &gs);
    generate_logged(path, &ids, &l); /* the CPU reads it */
    CHECK(l.n_built == 0 && l.n_read == 1);
    CHECK(ids.n == full.n && memcmp(ids.ids, full.ids, sizeof ids.ids) == 0);
}

/* A model whose shadow is worth caching (4096 x 256 F16 head: 1.05 MiB of shadow): the first load
 * builds and writes it, later loads read it and give the same greedy ids as the full head; a flipped
 * byte in the shadow, in a coefficient or in the header, a truncated file, a rewritten model and a
 * file of an older shadow format are each ignored with one notice, and the shadow is built and
 * cached again. */
static void shadow_cache(void) {
    char dir[1024], file[1200];
    snprintf(dir, sizeof dir, "%s", test_tmp("head_cache", 0));
    mkdir(dir, 0755);
    if (shadow_file(dir, file, sizeof file))
        remove(file);
    setenv("TERN_CACHE_DIR", dir, 1);
    struct tern_maker_params p;
    tern_maker_preset("tiny", &p);
    p.n_vocab = 4096;
    const char *path = test_tmp("head_cache.gguf", 1);
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    struct tern_sampler_params sp = tern_sampler_default_params();
    sp.temperature = 0.0f;
    struct harness_ids full, ids;
    struct tern_generate_stats gs;
    struct log_lines l;
    generate(path, TERN_HEAD_FULL, &sp, false, &full, &gs);
    CHECK(full.n > 0);

    generate_logged(path, &ids, &l); /* built and written */
    CHECK(l.n_built == 1 && l.n_read == 0 && l.n_corrupt == 0 && l.n_stale == 0);
    CHECK(ids.n == full.n && memcmp(ids.ids, full.ids, sizeof ids.ids) == 0);
    CHECK(shadow_file(dir, file, sizeof file));
    generate_logged(path, &ids, &l); /* read from the cache */
    CHECK(l.n_built == 0 && l.n_read == 1);
    CHECK(ids.n == full.n && memcmp(ids.ids, full.ids, sizeof ids.ids) == 0);
    shadow_cache_shared(path, dir, file, sizeof file);

    struct stat sb;
    CHECK(stat(file, &sb) == 0);
    const long shadow_at = 4096 + 1000, coef_at = (long)sb.st_size - 4 * 1000 + 2, header_at = 3;
    const long spots[3] = {shadow_at, coef_at, header_at};
    for (int i = 0; i < 4; i++) {
        if (i < 3) {
            flip_byte(file, spots[i]);
        } else {
            CHECK(truncate(file, sb.st_size - 4) == 0);
        }
        generate_logged(path, &ids, &l); /* rejected, built and written again */
        CHECK(l.n_corrupt == 1 && l.n_read == 0 && l.n_built == 1);
        CHECK(ids.n == full.n && memcmp(ids.ids, full.ids, sizeof ids.ids) == 0);
        generate_logged(path, &ids, &l);
        CHECK(l.n_corrupt == 0 && l.n_read == 1);
    }

    p.seed += 1; /* the same path, another model: the cached shadow is stale */
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, path));
    generate(path, TERN_HEAD_FULL, &sp, false, &full, &gs);
    generate_logged(path, &ids, &l);
    CHECK(l.n_stale == 1 && l.n_read == 0 && l.n_built == 1);
    CHECK(ids.n == full.n && memcmp(ids.ids, full.ids, sizeof ids.ids) == 0);
    generate_logged(path, &ids, &l);
    CHECK(l.n_stale == 0 && l.n_read == 1);
    CHECK(ids.n == full.n && memcmp(ids.ids, full.ids, sizeof ids.ids) == 0);

    /* a file of an older shadow format (its version in the key, its own size) is stale too */
    FILE *f = fopen(file, "r+b");
    char header[4096];
    CHECK(f && fread(header, 1, sizeof header, f) == sizeof header);
    char *version = strstr(header, "| shadow ");
    CHECK(version != NULL);
    if (f && version) {
        version[9] = '1';
        CHECK(fseek(f, 0, SEEK_SET) == 0 && fwrite(header, 1, sizeof header, f) == sizeof header);
    }
    if (f)
        fclose(f);
    CHECK(stat(file, &sb) == 0 && truncate(file, sb.st_size - 4096) == 0);
    generate_logged(path, &ids, &l);
    CHECK(l.n_stale == 1 && l.n_corrupt == 0 && l.n_read == 0 && l.n_built == 1);
    CHECK(ids.n == full.n && memcmp(ids.ids, full.ids, sizeof ids.ids) == 0);
    generate_logged(path, &ids, &l);
    CHECK(l.n_stale == 0 && l.n_read == 1);
    unsetenv("TERN_CACHE_DIR");
}

int main(void) {
    RUN(bounds_hold);
    RUN(shadow_dot_exact);
    RUN(shadow_dot_extremes);
    RUN(bound_is_tight);
    RUN(topk_equals_full);
    RUN(last_row_found);
    RUN(batch_equals_alone);
    RUN(near_ties);
    RUN(random_models);
    RUN(vectors);
    RUN(shadow_cache);
    return harness_finish();
}
