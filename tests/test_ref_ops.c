/* The reference kernels (cpu/ref.h) against independent double-precision computations written
 * here: RMSNorm, RoPE (both pairings), GQA attention, FFN gating, activation quantization and the
 * ternary product. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/ref.h"
#include "harness.h"
#include "scheduler/fp16.h"

static void rmsnorm(void) {
    uint64_t rng = 1;
    enum { N = 2560 };
    static float x[N], w[N], out[N];
    for (int i = 0; i < N; i++) {
        x[i] = test_rand_normal(&rng) * 3.0f;
        w[i] = test_rand_uniform(&rng, 0.5f, 1.5f);
    }
    const float eps = 1e-5f;
    double ss = 0.0;
    for (int i = 0; i < N; i++)
        ss += (double)x[i] * x[i];
    const double inv = 1.0 / sqrt(ss / N + eps);
    tern_ref_rmsnorm(out, x, w, N, eps);
    for (int i = 0; i < N; i++)
        CHECK_FLOAT((double)x[i] * inv * w[i], out[i], 1e-5 * fabs((double)x[i] * inv * w[i]) + 1e-7);
    /* in place, and eps dominating a tiny input */
    float t[4] = {1e-6f, -1e-6f, 2e-6f, 0.0f};
    const float one[4] = {1, 1, 1, 1};
    tern_ref_rmsnorm(t, t, one, 4, 1e-5f);
    const double inv2 = 1.0 / sqrt((1e-12 + 1e-12 + 4e-12) / 4 + 1e-5);
    CHECK_FLOAT(1e-6 * inv2, t[0], 1e-9);
    CHECK_FLOAT(2e-6 * inv2, t[2], 1e-9);
    CHECK_FLOAT(0.0, t[3], 0.0);
}

/* Rotation of pair (a, b) by pos * theta^(-2i/n_rot) in double. */
static void rope_double(double *v, int head_dim, int n_rot, int pos, double theta, int neox) {
    (void)head_dim;
    for (int i = 0; i < n_rot / 2; i++) {
        const double ang = pos * pow(theta, -2.0 * i / n_rot);
        const int a = neox ? i : 2 * i, b = neox ? i + n_rot / 2 : 2 * i + 1;
        const double x0 = v[a], x1 = v[b];
        v[a] = x0 * cos(ang) - x1 * sin(ang);
        v[b] = x0 * sin(ang) + x1 * cos(ang);
    }
}

static void rope(void) {
    enum { NH = 3, HD = 64 };
    uint64_t rng = 2;
    static const int n_rots[2] = {64, 32}; /* full and partial rotation */
    static const int positions[4] = {0, 1, 17, 255};
    for (int style = 0; style < 2; style++) {
        const enum tern_rope_style st = style == 0 ? TERN_ROPE_NEOX : TERN_ROPE_NORM;
        for (int ri = 0; ri < 2; ri++) {
            for (int pi = 0; pi < 4; pi++) {
                const int n_rot = n_rots[ri], pos = positions[pi];
                float x[NH * HD], x0[NH * HD];
                double want[NH * HD];
                for (int i = 0; i < NH * HD; i++)
                    x0[i] = x[i] = test_rand_normal(&rng);
                for (int i = 0; i < NH * HD; i++)
                    want[i] = x0[i];
                for (int h = 0; h < NH; h++)
                    rope_double(want + h * HD, HD, n_rot, pos, 500000.0, style == 0);
                tern_ref_rope(x, NH, HD, n_rot, pos, 500000.0f, st);
                /* angles are built by float products: error grows with pos */
                const double tol = 5e-6 + 5e-7 * pos;
                for (int i = 0; i < NH * HD; i++) {
                    if (pos == 0) /* identity, exactly */
                        CHECK(x[i] == x0[i]);
                    else if (fabs(want[i] - x[i]) > tol)
                        harness_fail(__FILE__, __LINE__,
                                     "style %d n_rot %d pos %d dim %d: expected %.9g, got %.9g", style, n_rot,
                                     pos, i, want[i], (double)x[i]);
                    if (i % HD >= n_rot) /* dims past n_rot are untouched */
                        CHECK(x[i] == x0[i]);
                }
            }
        }
    }
    /* the pairing: a unit vector on dim 1 at pos 1 moves into its partner only, and the first
     * pair turns by exactly 1 radian */
    for (int style = 0; style < 2; style++) {
        float v[8] = {0, 1, 0, 0, 0, 0, 0, 0};
        tern_ref_rope(v, 1, 8, 8, 1, 10000.0f, style == 0 ? TERN_ROPE_NEOX : TERN_ROPE_NORM);
        const int partner = style == 0 ? 5 : 0; /* NEOX: (1, 5); NORM: (0, 1) */
        const double ang = style == 0 ? pow(10000.0, -2.0 / 8) : 1.0;
        const double sgn = style == 0 ? 1.0 : -1.0; /* dim 1 is the first of its NEOX pair */
        for (int i = 0; i < 8; i++) {
            if (i == 1)
                CHECK_FLOAT(cos(ang), v[i], 1e-6);
            else if (i == partner)
                CHECK_FLOAT(sgn * sin(ang), v[i], 1e-6);
            else
                CHECK_FLOAT(0.0, v[i], 0.0);
        }
    }
}

/* GQA attention in double: head h reads kv head h / (n_head / n_head_kv). The query is rounded to
 * f16 first, as the reference's contract says (ggml's f16 KV path); the weights stay exact here. */
static void attention_double(double *out, const float *q, const uint16_t *k, const uint16_t *v, int pos,
                             int n_head, int n_head_kv, int hd) {
    const int kvw = n_head_kv * hd;
    for (int h = 0; h < n_head; h++) {
        const int kvh = h / (n_head / n_head_kv);
        double s[64], mx = -INFINITY, sum = 0.0;
        for (int p = 0; p <= pos; p++) {
            double dot = 0.0;
            for (int d = 0; d < hd; d++)
                dot += (double)tern_fp16_to_fp32(tern_fp32_to_fp16(q[h * hd + d])) *
                       tern_fp16_to_fp32(k[p * kvw + kvh * hd + d]);
            s[p] = dot / sqrt((double)hd);
            mx = fmax(mx, s[p]);
        }
        for (int p = 0; p <= pos; p++)
            sum += (s[p] = exp(s[p] - mx));
        for (int d = 0; d < hd; d++) {
            double acc = 0.0;
            for (int p = 0; p <= pos; p++)
                acc += s[p] / sum * tern_fp16_to_fp32(v[p * kvw + kvh * hd + d]);
            out[h * hd + d] = acc;
        }
    }
}

static void attention(void) {
    enum { NH = 4, NKV = 2, HD = 32, CTX = 40 };
    uint64_t rng = 3;
    static uint16_t k[CTX * NKV * HD], v[CTX * NKV * HD];
    double vmax = 0.0;
    for (int i = 0; i < CTX * NKV * HD; i++) {
        k[i] = tern_fp32_to_fp16(test_rand_normal(&rng));
        v[i] = tern_fp32_to_fp16(test_rand_normal(&rng));
        vmax = fmax(vmax, fabs(tern_fp16_to_fp32(v[i])));
    }
    /* the reference rounds each softmax weight to f16 (relative error <= 2^-11) before the sum
     * over V: the output may move by up to 2^-11 * max|v| from the exact-weight value */
    const double tol = ldexp(vmax, -11) + 1e-5;
    uint16_t *kb = test_k_blocks(k, CTX, NKV * HD);
    static const int positions[4] = {0, 1, 9, CTX - 1};
    for (int pi = 0; pi < 4; pi++) {
        const int pos = positions[pi];
        float q[NH * HD], out[NH * HD + 1], scratch[HD + CTX + 1];
        double want[NH * HD];
        for (int i = 0; i < NH * HD; i++)
            q[i] = test_rand_normal(&rng) * 2.0f;
        out[NH * HD] = 777.0f;
        scratch[HD + pos + 1] = 555.0f;
        tern_ref_attention(out, q, kb, v, NKV * HD, pos, NH, NKV, HD, false, scratch);
        attention_double(want, q, k, v, pos, NH, NKV, HD);
        for (int i = 0; i < NH * HD; i++)
            CHECK_FLOAT(want[i], out[i], tol);
        CHECK_FLOAT(777.0, out[NH * HD], 0.0);
        CHECK_FLOAT(555.0, scratch[HD + pos + 1], 0.0); /* scratch holds head_dim + pos + 1 floats */
        if (pos == 0) /* one position: the output is that position's value row of the head's kv head */
            for (int h = 0; h < NH; h++)
                for (int d = 0; d < HD; d++)
                    CHECK_FLOAT(tern_fp16_to_fp32(v[(h / 2) * HD + d]), out[h * HD + d], 0.0);
    }
    /* the query is rounded to f16 before Q.K: a query that differs only below f16 precision gives
     * the same output bit for bit */
    float qa[NH * HD], qb[NH * HD], oa[NH * HD], ob[NH * HD], scratch[HD + CTX + 1];
    for (int i = 0; i < NH * HD; i++) {
        qa[i] = tern_fp16_to_fp32(tern_fp32_to_fp16(test_rand_normal(&rng)));
        qb[i] = qa[i] * (1.0f + 1e-5f);
    }
    tern_ref_attention(oa, qa, kb, v, NKV * HD, 9, NH, NKV, HD, false, scratch);
    tern_ref_attention(ob, qb, kb, v, NKV * HD, 9, NH, NKV, HD, false, scratch);
    CHECK(memcmp(oa, ob, sizeof oa) == 0);
    free(kb);
}

static void ffn_act(void) {
    uint64_t rng = 4;
    enum { N = 1000 };
    static float g[N], u[N], out[N];
    for (int i = 0; i < N; i++) {
        g[i] = test_rand_normal(&rng) * 4.0f;
        u[i] = test_rand_normal(&rng);
    }
    g[0] = 0.0f;
    g[1] = -30.0f;
    g[2] = 30.0f;
    tern_ref_ffn_act(out, g, u, N, TERN_FFN_RELU2);
    for (int i = 0; i < N; i++) {
        const double r = g[i] > 0 ? g[i] : 0.0;
        CHECK_FLOAT(r * r * u[i], out[i], 1e-6 * fabs(r * r * u[i]) + 1e-7);
    }
    tern_ref_ffn_act(out, g, u, N, TERN_FFN_SILU);
    for (int i = 0; i < N; i++) {
        const double s = g[i] / (1.0 + exp(-(double)g[i]));
        CHECK_FLOAT(s * u[i], out[i], 1e-6 * fabs(s * u[i]) + 1e-7);
    }
    /* in place over gate */
    float gg[3] = {2.0f, -1.0f, 0.5f};
    const float uu[3] = {3.0f, 5.0f, -2.0f};
    tern_ref_ffn_act(gg, gg, uu, 3, TERN_FFN_RELU2);
    CHECK_FLOAT(12.0, gg[0], 0.0);
    CHECK_FLOAT(0.0, gg[1], 0.0);
    CHECK_FLOAT(-0.5, gg[2], 0.0);
}

static void quantize_act(void) {
    /* max |x| = 127 makes the scale exactly 1: x values land on .5 and round half to even */
    const float x[10] = {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f, -127.0f, 3.49f};
    static const int want[10] = {127, 0, 2, 2, 0, -2, -2, 126, -127, 3};
    int8_t q[16];
    memset(q, 99, sizeof q);
    int32_t sum = 0;
    const float s = tern_ref_quantize_act(q, x, 10, 16, &sum);
    CHECK_FLOAT(1.0, s, 0.0);
    int32_t want_sum = 0;
    for (int i = 0; i < 10; i++) {
        CHECK_INT(want[i], q[i]);
        want_sum += want[i];
    }
    for (int i = 10; i < 16; i++)
        CHECK_INT(0, q[i]); /* padding zero-filled */
    CHECK_INT(want_sum, sum);

    /* zero vector: the 1e-5 floor, all zeros, no NaN */
    const float z[5] = {0};
    const float sz = tern_ref_quantize_act(q, z, 5, 5, NULL);
    CHECK_FLOAT(127.0 / 1e-5, sz, 1.0);
    for (int i = 0; i < 5; i++)
        CHECK_INT(0, q[i]);
    /* below the floor: values are scaled by 127/1e-5, not blown up to +-127 */
    const float tiny[2] = {5e-6f, -2.5e-6f};
    tern_ref_quantize_act(q, tiny, 2, 2, NULL);
    CHECK(q[0] == 63 || q[0] == 64); /* about 63.5 */
    CHECK_INT(-32, q[1]);            /* -31.75 -> -32 */

    /* random rows: every q within the clamp, the max maps to +-127, matches a double computation */
    uint64_t rng = 5;
    for (int iter = 0; iter < 20; iter++) {
        float r[300];
        int8_t qq[384];
        double m = 0.0;
        for (int i = 0; i < 300; i++) {
            r[i] = test_rand_normal(&rng) * (float)(iter + 1);
            m = fmax(m, fabs(r[i]));
        }
        const float sr = tern_ref_quantize_act(qq, r, 300, 384, NULL);
        CHECK_FLOAT(127.0 / m, sr, 1e-6 * 127.0 / m);
        int maxq = 0;
        for (int i = 0; i < 300; i++) {
            CHECK(qq[i] >= -128 && qq[i] <= 127);
            const double e = r[i] * (double)sr;
            if (fabs(e - qq[i]) > 0.5 + 1e-4)
                harness_fail(__FILE__, __LINE__, "q[%d] = %d for x*s = %g", i, qq[i], e);
            maxq = abs(qq[i]) > maxq ? abs(qq[i]) : maxq;
        }
        CHECK_INT(127, maxq);
    }
}

/* Pack codes t+1 of row[K] into the packed layout, padding with code 1 (docs/formats.md#i2_s, by hand). */
static void pack_row(uint8_t *dst, const int8_t *t, int64_t k, int64_t k_pad) {
    memset(dst, 0x55, (size_t)(k_pad / 4));
    for (int64_t j = 0; j < k; j++) {
        const int shift = 6 - 2 * (int)((j % 128) / 32);
        uint8_t *p = &dst[(j / 128) * 32 + j % 32];
        *p = (uint8_t)((*p & ~(3 << shift)) | ((t[j] + 1) << shift));
    }
}

static void ternary_matmul(void) {
    static const int64_t ks[3] = {200, 384, 8640};
    uint64_t rng = 6;
    for (int ki = 0; ki < 3; ki++) {
        const int64_t K = ks[ki], k_pad = (K + 127) / 128 * 128, n_out = 7, n_tok = 3;
        int8_t *t = malloc((size_t)(K * n_out));
        uint8_t *codes = malloc((size_t)(k_pad / 4 * n_out));
        float *x = malloc(sizeof(float) * (size_t)(K * n_tok));
        int8_t *q = malloc((size_t)(k_pad * n_tok));
        float act[3], y[3 * 7];
        for (int64_t i = 0; i < K * n_out; i++)
            t[i] = (int8_t)((int)(test_rand_u64(&rng) % 3) - 1);
        for (int64_t r = 0; r < n_out; r++)
            pack_row(codes + r * (k_pad / 4), t + r * K, K, k_pad);
        for (int64_t i = 0; i < K * n_tok; i++)
            x[i] = test_rand_normal(&rng);
        for (int64_t tk = 0; tk < n_tok; tk++) {
            /* garbage in the padding of q must be zeroed by quantize_act */
            memset(q + tk * k_pad, 0x7f, (size_t)k_pad);
            act[tk] = tern_ref_quantize_act(q + tk * k_pad, x + tk * K, K, k_pad, NULL);
        }
        const struct tern_ternary w = {codes, K, k_pad, k_pad / 4, n_out, 0.6875f, 1.25f};
        for (int i = 0; i < 3 * 7; i++)
            y[i] = -999.0f;
        tern_ref_ternary_matmul(y, &w, q, act, n_tok, 2, 6);
        for (int64_t tk = 0; tk < n_tok; tk++) {
            for (int64_t r = 0; r < n_out; r++) {
                int64_t acc = 0;
                for (int64_t j = 0; j < K; j++)
                    acc += (int64_t)t[r * K + j] * q[tk * k_pad + j];
                CHECK_INT(acc, tern_ref_ternary_dot(codes + r * (k_pad / 4), q + tk * k_pad, k_pad));
                const double want = (double)acc / act[tk] * 0.6875 * 1.25;
                if (r >= 2 && r < 6)
                    CHECK_FLOAT(want, y[tk * n_out + r], 1e-5 * fabs(want) + 1e-6);
                else
                    CHECK_FLOAT(-999.0, y[tk * n_out + r], 0.0); /* outside the row range */
            }
        }
        free(t);
        free(codes);
        free(x);
        free(q);
    }
    /* extreme integers: all +1 weights against q = -128 and +127 */
    enum { K = 256 };
    int8_t tp[K], qe[K];
    uint8_t row[K / 4];
    for (int j = 0; j < K; j++) {
        tp[j] = 1;
        qe[j] = (int8_t)(j % 2 ? 127 : -128);
    }
    pack_row(row, tp, K, K);
    CHECK_INT(-128, tern_ref_ternary_dot(row, qe, K));
}

int main(void) {
    RUN(rmsnorm);
    RUN(rope);
    RUN(attention);
    RUN(ffn_act);
    RUN(quantize_act);
    RUN(ternary_matmul);
    return harness_finish();
}
