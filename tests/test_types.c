/* Tensor types: decoding of F32/F16/BF16/Q8_0/Q4_K/Q6_K against hand-built blocks, the matvec over
 * them, the ternary formats (I2_S stream <-> packed, TQ2_0/TQ1_0 codecs and repacking,
 * ternarization) and the round-trip quality of the host quantizers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/ref.h"
#include "harness.h"
#include "host/gguf/quantize.h"
#include "host/model/ternary.h"
#include "scheduler/fp16.h"
#include "scheduler/log.h"
#include "scheduler/types.h"

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* ---- log capture: errors must be one line naming the tensor ---- */

static int n_errors;
static char last_error[512];

static void capture(enum tern_log_level level, const char *msg, void *user) {
    (void)user;
    if (level == TERN_LOG_ERROR) {
        n_errors++;
        snprintf(last_error, sizeof last_error, "%s", msg);
    }
}

static void capture_begin(void) {
    n_errors = 0;
    last_error[0] = 0;
    tern_log_set_callback(capture, NULL);
}

static void capture_end(void) {
    tern_log_set_callback(NULL, NULL);
}

/* ---- float types ---- */

static void f32_f16_bf16(void) {
    const float f[3] = {1.5f, -0.0f, 3.25e-20f};
    float out[8];
    tern_ref_dequant_row(out, f, TERN_TYPE_F32, 3);
    for (int i = 0; i < 3; i++)
        CHECK(memcmp(&out[i], &f[i], 4) == 0);

    /* F16: normal, negative, subnormals, largest finite, infinities, negative zero */
    const uint16_t h[8] = {0x3c00, 0xc000, 0x0001, 0x03ff, 0x7bff, 0x7c00, 0xfc00, 0x8000};
    const float he[8] = {1.0f,      -2.0f, 5.9604644775390625e-08f, 1023.0f / 16777216.0f, 65504.0f, INFINITY,
                         -INFINITY, -0.0f};
    uint8_t hb[16];
    for (int i = 0; i < 8; i++)
        put16(hb + 2 * i, h[i]);
    tern_ref_dequant_row(out, hb, TERN_TYPE_F16, 8);
    for (int i = 0; i < 8; i++) {
        if (isinf(he[i]))
            CHECK(isinf(out[i]) && (out[i] > 0) == (he[i] > 0));
        else
            CHECK_FLOAT(he[i], out[i], 0.0);
    }
    CHECK(signbit(out[7]));

    /* BF16: the top half of an f32 */
    const uint16_t b[5] = {0x3f80, 0xc040, 0x7f80, 0x0001, 0x4049};
    const float be[5] = {1.0f, -3.0f, INFINITY, ldexpf(1.0f, -133), 3.140625f};
    uint8_t bb[10];
    for (int i = 0; i < 5; i++)
        put16(bb + 2 * i, b[i]);
    tern_ref_dequant_row(out, bb, TERN_TYPE_BF16, 5);
    for (int i = 0; i < 5; i++) {
        if (isinf(be[i]))
            CHECK(isinf(out[i]) && out[i] > 0);
        else
            CHECK_FLOAT(be[i], out[i], 0.0);
    }
}

static void q8_0_blocks(void) {
    uint8_t blk[2 * 34];
    put16(blk, 0x3800);      /* 0.5 */
    put16(blk + 34, 0xb400); /* -0.25 */
    for (int i = 0; i < 32; i++) {
        blk[2 + i] = (uint8_t)(int8_t)(i - 16);
        blk[36 + i] = (uint8_t)(int8_t)(i == 0 ? -128 : 127 - i);
    }
    float out[64];
    tern_ref_dequant_row(out, blk, TERN_TYPE_Q8_0, 64);
    for (int i = 0; i < 32; i++) {
        CHECK_FLOAT(0.5 * (i - 16), out[i], 0.0);
        CHECK_FLOAT(-0.25 * (i == 0 ? -128 : 127 - i), out[32 + i], 0.0);
    }
}

/* Q4_K with hand-packed 6-bit scales: sub-blocks 4-7 need their high bits from bytes 0-7. */
static void q4_k_block(void) {
    static const int sc[8] = {1, 2, 3, 63, 17, 33, 48, 5};
    static const int mn[8] = {0, 10, 20, 62, 16, 31, 47, 63};
    /* packed by hand from the layout (see host/gguf/quantize.h) */
    static const uint8_t scales[12] = {0x41, 0x82, 0xC3, 0x3F, 0x40, 0x4A,
                                       0x94, 0xFE, 0x01, 0xF1, 0xF0, 0xF5};
    uint8_t blk[144] = {0};
    put16(blk, 0x3400);     /* d = 0.25 */
    put16(blk + 2, 0x3000); /* dmin = 0.125 */
    memcpy(blk + 4, scales, 12);
    int q[256];
    for (int e = 0; e < 256; e++) {
        q[e] = (e * 7 + 3) % 16;
        const int g = e / 64, r = e % 64;
        blk[16 + 32 * g + r % 32] |= (uint8_t)(r < 32 ? q[e] : q[e] << 4);
    }
    float out[256];
    tern_ref_dequant_row(out, blk, TERN_TYPE_Q4_K, 256);
    for (int e = 0; e < 256; e++) {
        const double want = 0.25 * sc[e / 32] * q[e] - 0.125 * mn[e / 32];
        if (out[e] != (float)want) {
            harness_fail(__FILE__, __LINE__, "Q4_K element %d (sub-block %d): expected %g, got %g", e, e / 32,
                         want, (double)out[e]);
            break;
        }
    }
}

/* Q6_K with negative and extreme sub-block scales, packed by hand from the layout. */
static void q6_k_block(void) {
    uint8_t blk[210] = {0};
    int8_t scales[16];
    for (int j = 0; j < 16; j++)
        scales[j] = (int8_t)((j % 2 ? -1 : 1) * (j * 8 + 1));
    scales[15] = -128;
    scales[14] = 127;
    int q[256];
    for (int e = 0; e < 256; e++) {
        q[e] = (e * 11 + 5) % 64;
        const int h = e / 128, r = e % 128, k = r / 32, l = r % 32;
        blk[64 * h + l + 32 * (k % 2)] |= (uint8_t)(k < 2 ? (q[e] & 15) : (q[e] & 15) << 4);
        blk[128 + 32 * h + l] |= (uint8_t)((q[e] >> 4) << (2 * k));
    }
    memcpy(blk + 192, scales, 16);
    put16(blk + 208, 0x3800); /* d = 0.5 */
    float out[256];
    tern_ref_dequant_row(out, blk, TERN_TYPE_Q6_K, 256);
    for (int e = 0; e < 256; e++) {
        const double want = 0.5 * scales[e / 16] * (q[e] - 32);
        if (out[e] != (float)want) {
            harness_fail(__FILE__, __LINE__, "Q6_K element %d: expected %g, got %g", e, want, (double)out[e]);
            break;
        }
    }
}

static double nmse(const float *a, const float *b, int64_t n) {
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)a[i] * a[i];
    }
    return den > 0.0 ? num / den : num;
}

/* matvec over row ranges for every float type, against double dots of the decoded rows. */
static void matvec_types(void) {
    static const uint32_t types[] = {TERN_TYPE_F32,  TERN_TYPE_F16,  TERN_TYPE_BF16,
                                     TERN_TYPE_Q8_0, TERN_TYPE_Q6_K, TERN_TYPE_Q4_K};
    static const int64_t ne0s[] = {768, 300, 512, 800, 512, 768};
    uint64_t rng = 7;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t type = types[ti];
        const int64_t ne0 = ne0s[ti], ne1 = 5;
        const struct tern_type_traits *tr = tern_type_traits(type);
        const size_t row_bytes = (size_t)(ne0 / tr->block_size) * tr->block_bytes;
        uint8_t *data = malloc(row_bytes * ne1);
        float *w = malloc(sizeof(float) * ne0), *x = malloc(sizeof(float) * ne0);
        float *dec = malloc(sizeof(float) * ne0 * ne1);
        for (int64_t r = 0; r < ne1; r++) {
            for (int64_t i = 0; i < ne0; i++)
                w[i] = test_rand_normal(&rng);
            CHECK_STATUS(TERN_OK, tern_quantize_row(data + r * row_bytes, type, w, ne0));
            tern_ref_dequant_row(dec + r * ne0, data + r * row_bytes, type, ne0);
        }
        for (int64_t i = 0; i < ne0; i++)
            x[i] = test_rand_normal(&rng);
        const struct tern_tensor t = {data, type, ne0, ne1, row_bytes};
        float out[6];
        out[4] = 12345.0f; /* guard after the range */
        tern_ref_matvec(out, &t, x, 1, 5);
        for (int64_t r = 1; r < 5; r++) {
            double want = 0.0, mag = 0.0;
            for (int64_t i = 0; i < ne0; i++) {
                want += (double)dec[r * ne0 + i] * x[i];
                mag += fabs((double)dec[r * ne0 + i] * x[i]);
            }
            CHECK_FLOAT(want, out[r - 1], 1e-5 * mag);
        }
        CHECK_FLOAT(12345.0, out[4], 0.0);
        free(data);
        free(w);
        free(x);
        free(dec);
    }
}

static void quantizer_round_trip(void) {
    enum { N = 256 * 64 };
    static const struct {
        uint32_t type;
        double limit;
    } cases[] = {{TERN_TYPE_F16, 1e-6},
                 {TERN_TYPE_BF16, 1e-4},
                 {TERN_TYPE_Q8_0, 1e-4},
                 {TERN_TYPE_Q6_K, 2e-3},
                 {TERN_TYPE_Q4_K, 1e-2}};
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    uint8_t *q = malloc(N * 4);
    uint64_t rng = 42;
    for (int i = 0; i < N; i++)
        x[i] = test_rand_normal(&rng) * 0.02f; /* embedding-like magnitude */
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        CHECK_STATUS(TERN_OK, tern_quantize_row(q, cases[c].type, x, N));
        tern_ref_dequant_row(y, q, cases[c].type, N);
        const double e = nmse(x, y, N);
        fprintf(stderr, "  %-5s nmse %.3g (limit %g)\n", tern_type_name(cases[c].type), e, cases[c].limit);
        if (!(e < cases[c].limit))
            harness_fail(__FILE__, __LINE__, "%s round trip: nmse %g >= %g", tern_type_name(cases[c].type), e,
                         cases[c].limit);
    }
    /* rows with structure: zeros, a constant, one spike, all positive */
    static const uint32_t kq[] = {TERN_TYPE_Q8_0, TERN_TYPE_Q6_K, TERN_TYPE_Q4_K};
    for (size_t c = 0; c < 3; c++) {
        memset(x, 0, sizeof(float) * 512);
        CHECK_STATUS(TERN_OK, tern_quantize_row(q, kq[c], x, 512));
        tern_ref_dequant_row(y, q, kq[c], 512);
        for (int i = 0; i < 512; i++)
            CHECK_FLOAT(0.0, y[i], 0.0);
        for (int i = 0; i < 256; i++)
            x[i] = 0.75f;
        x[300] = -4.0f;
        for (int i = 256; i < 512; i++)
            x[i] = i == 300 ? -4.0f : (float)(i % 7) * 0.125f;
        CHECK_STATUS(TERN_OK, tern_quantize_row(q, kq[c], x, 512));
        tern_ref_dequant_row(y, q, kq[c], 512);
        const double e = nmse(x, y, 512);
        if (!(e < 1e-2))
            harness_fail(__FILE__, __LINE__, "%s structured row: nmse %g", tern_type_name(kq[c]), e);
        CHECK_FLOAT(-4.0, y[300], 0.1);
    }
    CHECK_STATUS(TERN_ERR_SHAPE, tern_quantize_row(q, TERN_TYPE_Q6_K, x, 100));
    CHECK_STATUS(TERN_ERR_UNSUPPORTED, tern_quantize_row(q, TERN_TYPE_I2_S, x, 128));
    free(x);
    free(y);
    free(q);
}

/* ---- ternary formats ---- */

/* The I2_S stream built straight from docs/formats.md#i2_s, independent of host/model/ternary.c. */
static void stream_put(uint8_t *s, int64_t i, int code) {
    s[32 * (i / 128) + i % 32] |= (uint8_t)(code << (6 - 2 * ((i % 128) / 32)));
}

static int stream_get(const uint8_t *s, int64_t i) {
    return (s[32 * (i / 128) + i % 32] >> (6 - 2 * ((i % 128) / 32))) & 3;
}

static void i2s_stream_packed(void) {
    static const struct {
        int64_t ne0, ne1;
    } shapes[] = {{128, 3}, {256, 3}, {384, 3}, {200, 16}, {8640, 2}, {64, 2}};
    uint64_t rng = 99;
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        const int64_t ne0 = shapes[c].ne0, ne1 = shapes[c].ne1, n = ne0 * ne1;
        const int64_t k_pad = tern_ternary_k_pad(ne0), row_bytes = k_pad / 4;
        CHECK_INT((ne0 + 127) / 128 * 128, k_pad);
        uint8_t *codes = malloc((size_t)n);
        uint8_t *file = calloc((size_t)(n / 4 + 32), 1);
        for (int64_t i = 0; i < n; i++) {
            codes[i] = (uint8_t)(test_rand_u64(&rng) % 3);
            stream_put(file, i, codes[i]);
        }
        const float scale = 0.6015625f;
        memcpy(file + n / 4, &scale, 4);
        memset(file + n / 4 + 4, 0xAB, 28); /* bitnet.cpp leaves these uninitialised */
        CHECK_INT((uint64_t)(n / 4 + 32), tern_i2s_nbytes(ne0, ne1));
        CHECK(tern_i2s_is_packed(ne0) == (ne0 % 128 == 0));

        uint8_t *packed = malloc((size_t)(row_bytes * ne1));
        float s = 0.0f;
        CHECK_STATUS(TERN_OK, tern_i2s_to_packed(packed, &s, file, (uint64_t)(n / 4 + 32), ne0, ne1, "t"));
        CHECK_FLOAT(scale, s, 0.0);
        int bad = 0;
        for (int64_t r = 0; r < ne1 && !bad; r++) {
            for (int64_t j = 0; j < k_pad; j++) {
                const int want = j < ne0 ? codes[r * ne0 + j] : 1;
                const int got = stream_get(packed + r * row_bytes, j);
                CHECK_INT(want, tern_packed_get(packed + r * row_bytes, j));
                if (want != got) {
                    harness_fail(__FILE__, __LINE__, "K=%lld row %lld col %lld: expected code %d, got %d",
                                 (long long)ne0, (long long)r, (long long)j, want, got);
                    bad = 1;
                    break;
                }
            }
        }
        if (tern_i2s_is_packed(ne0))
            CHECK(memcmp(packed, file, (size_t)(n / 4)) == 0); /* usable in place */
        CHECK_STATUS(TERN_OK, tern_packed_verify(packed, ne0, ne1, "t"));

        /* back to the stream: codes equal, scale in place, padding zero */
        uint8_t *back = malloc((size_t)(n / 4 + 32));
        memset(back, 0xCD, (size_t)(n / 4 + 32));
        CHECK_STATUS(TERN_OK, tern_packed_to_i2s(back, packed, ne0, ne1, scale));
        CHECK(memcmp(back, file, (size_t)(n / 4 + 4)) == 0);
        for (int i = 0; i < 28; i++)
            CHECK_INT(0, back[n / 4 + 4 + i]);

        /* a short tensor and a code 3 are rejected with one line naming the tensor */
        capture_begin();
        CHECK_STATUS(TERN_ERR_FORMAT,
                     tern_i2s_to_packed(packed, &s, file, (uint64_t)(n / 4 + 31), ne0, ne1, "blk.3.attn_q"));
        CHECK_INT(1, n_errors);
        CHECK(strstr(last_error, "blk.3.attn_q") != NULL);
        file[5] |= 0xC0; /* element 5 of the stream becomes code 3 */
        CHECK_STATUS(TERN_ERR_FORMAT,
                     tern_i2s_to_packed(packed, &s, file, (uint64_t)(n / 4 + 32), ne0, ne1, "blk.3.attn_q"));
        CHECK_INT(2, n_errors);
        capture_end();
        free(codes);
        free(file);
        free(packed);
        free(back);
    }
    /* element counts the stream cannot hold */
    uint8_t buf[64] = {0};
    float s;
    capture_begin();
    CHECK_STATUS(TERN_ERR_FORMAT, tern_i2s_to_packed(buf, &s, buf, sizeof buf, 100, 1, "odd"));
    CHECK_STATUS(TERN_ERR_SHAPE, tern_packed_to_i2s(buf, buf, 100, 1, 1.0f));
    capture_end();
}

static void packed_accessors(void) {
    uint8_t row[64];
    tern_packed_fill_zero(row, 200, 1);
    for (int j = 0; j < 256; j++)
        CHECK_INT(1, tern_packed_get(row, j));
    tern_packed_set(row, 0, 2);
    tern_packed_set(row, 32, 0);
    tern_packed_set(row, 96, 2);
    tern_packed_set(row, 131, 0);
    /* byte 0 holds elements 0, 32, 64, 96 in bit pairs 7:6, 5:4, 3:2, 1:0 */
    CHECK_INT(0x86, row[0]);
    CHECK_INT(0x15, row[35]);
    CHECK_INT(2, tern_packed_get(row, 0));
    CHECK_INT(0, tern_packed_get(row, 131));
    CHECK_STATUS(TERN_OK, tern_packed_verify(row, 200, 1, "r"));
    tern_packed_set(row, 250, 0); /* padding must stay code 1 */
    capture_begin();
    CHECK_STATUS(TERN_ERR_FORMAT, tern_packed_verify(row, 200, 1, "r"));
    CHECK_INT(1, n_errors);
    capture_end();
}

static void tq1_0_bytes(void) {
    /* hand-computed: ceil(q*256/243) */
    const uint8_t d0[5] = {0, 0, 0, 0, 0}, d1[5] = {0, 0, 0, 0, 1}, d2[5] = {1, 0, 0, 0, 0};
    const uint8_t d3[5] = {1, 1, 1, 1, 1}, d4[5] = {2, 2, 2, 2, 2};
    CHECK_INT(0, tern_tq1_0_pack5(d0));
    CHECK_INT(2, tern_tq1_0_pack5(d1));
    CHECK_INT(86, tern_tq1_0_pack5(d2));
    CHECK_INT(128, tern_tq1_0_pack5(d3));
    CHECK_INT(255, tern_tq1_0_pack5(d4));
    /* all 3^5 digit combinations survive the byte */
    for (int q = 0; q < 243; q++) {
        uint8_t dig[5];
        for (int n = 0, v = q; n < 5; n++, v /= 3)
            dig[4 - n] = (uint8_t)(v % 3);
        const uint8_t b = tern_tq1_0_pack5(dig);
        CHECK_INT((q * 256 + 242) / 243, b);
        for (int n = 0; n < 5; n++)
            if (tern_tq1_0_digit(b, n) != dig[n])
                harness_fail(__FILE__, __LINE__, "q=%d byte %d digit %d: expected %d, got %d", q, b, n,
                             dig[n], tern_tq1_0_digit(b, n));
    }
}

/* llama.cpp's quantize_row_tq1_0_ref / tq2_0_ref structure, restated in the test: walk x in order,
 * d = max|x|, digits from lroundf(x/d) + 1. */
static void llama_tq1_0(uint8_t *blk, const float *x) {
    float amax = 0.0f;
    for (int i = 0; i < 256; i++)
        amax = fmaxf(amax, fabsf(x[i]));
    const float id = amax ? 1.0f / amax : 0.0f;
    int o = 0;
    for (int m = 0; m < 32; m++) {
        unsigned q = 0;
        for (int n = 0; n < 5; n++)
            q = q * 3 + (unsigned)(lroundf(x[m + 32 * n] * id) + 1);
        blk[o++] = (uint8_t)((q * 256 + 242) / 243);
    }
    x += 160;
    for (int m = 0; m < 16; m++) {
        unsigned q = 0;
        for (int n = 0; n < 5; n++)
            q = q * 3 + (unsigned)(lroundf(x[m + 16 * n] * id) + 1);
        blk[o++] = (uint8_t)((q * 256 + 242) / 243);
    }
    x += 80;
    for (int j = 0; j < 4; j++) {
        unsigned q = 0;
        for (int m = 0; m < 4; m++)
            q = q * 3 + (unsigned)(lroundf(x[j + 4 * m] * id) + 1);
        q *= 3;
        blk[o++] = (uint8_t)((q * 256 + 242) / 243);
    }
    put16(blk + 52, tern_fp32_to_fp16(amax));
}

static void llama_tq2_0(uint8_t *blk, const float *x) {
    float amax = 0.0f;
    for (int i = 0; i < 256; i++)
        amax = fmaxf(amax, fabsf(x[i]));
    const float id = amax ? 1.0f / amax : 0.0f;
    for (int j = 0; j < 64; j += 32) {
        for (int m = 0; m < 32; m++) {
            unsigned q = 0;
            for (int n = 0; n < 4; n++)
                q += (unsigned)((lroundf(x[m + 32 * n] * id) + 1) & 3) << (2 * n);
            blk[j + m] = (uint8_t)q;
        }
        x += 128;
    }
    put16(blk + 64, tern_fp32_to_fp16(amax));
}

static void tq_blocks(void) {
    uint64_t rng = 5;
    for (int iter = 0; iter < 50; iter++) {
        uint8_t codes[256], got[256];
        float x[256];
        const float d = iter == 0 ? 0.0f : test_rand_uniform(&rng, 0.25f, 1.0f);
        const float dh = tern_fp16_to_fp32(tern_fp32_to_fp16(d));
        for (int e = 0; e < 256; e++) {
            codes[e] = iter == 0 ? 1 : (uint8_t)(test_rand_u64(&rng) % 3);
            x[e] = (float)(codes[e] - 1) * d;
        }
        if (iter > 0)
            x[0] = d, codes[0] = 2; /* the block max is d */
        uint8_t ref[66];
        struct tern_block_tq2_0 b2;
        llama_tq2_0(ref, x);
        tern_tq2_0_encode(&b2, codes, d);
        CHECK(memcmp(&b2, ref, 66) == 0);
        float dd;
        tern_tq2_0_decode(got, &dd, &b2);
        CHECK(memcmp(got, codes, 256) == 0);
        CHECK_FLOAT(dh, dd, 0.0);

        struct tern_block_tq1_0 b1;
        llama_tq1_0(ref, x);
        tern_tq1_0_encode(&b1, codes, d);
        CHECK(memcmp(&b1, ref, 54) == 0);
        tern_tq1_0_decode(got, &dd, &b1);
        CHECK(memcmp(got, codes, 256) == 0);
        CHECK_FLOAT(dh, dd, 0.0);
    }
    /* hand-checked TQ2_0 bytes: code(e) = e % 3; byte 0 = c0 | c32<<2 | c64<<4 | c96<<6 */
    uint8_t codes[256];
    for (int e = 0; e < 256; e++)
        codes[e] = (uint8_t)(e % 3);
    struct tern_block_tq2_0 b2;
    tern_tq2_0_encode(&b2, codes, 1.0f);
    CHECK_INT(0x18, b2.qs[0]);  /* 0 | 2<<2 | 1<<4 | 0<<6 */
    CHECK_INT(0x61, b2.qs[1]);  /* 1 | 0<<2 | 2<<4 | 1<<6 */
    CHECK_INT(0x18, b2.qs[33]); /* elements 129, 161, 193, 225: 0, 2, 1, 0 */
    CHECK_INT(0x00, b2.d[0]);
    CHECK_INT(0x3c, b2.d[1]);
    /* hand-checked TQ1_0 bytes: qs[0] holds elements 0,32,64,96,128 = 0,2,1,0,2 -> q = 0+54+9+0+2 = 65,
     * ceil(65*256/243) = 69; qh[0] holds 240,244,248,252 = 0,1,2,0 -> q = (0+9+6+0)*3 = 45 -> 48 */
    struct tern_block_tq1_0 b1;
    tern_tq1_0_encode(&b1, codes, 1.0f);
    CHECK_INT(69, b1.qs[0]);
    CHECK_INT(48, b1.qh[0]);
    /* qs[32] holds 160,176,192,208,224 = 1,2,0,1,2 -> q = 81+54+0+3+2 = 140 -> ceil(147.49) = 148 */
    CHECK_INT(148, b1.qs[32]);
}

static void tq_repack(void) {
    const int64_t ne0 = 512, ne1 = 3;
    const float scale = 0.8125f;
    uint64_t rng = 11;
    uint8_t codes[512 * 3];
    for (int i = 0; i < ne0 * ne1; i++)
        codes[i] = (uint8_t)(test_rand_u64(&rng) % 3);
    for (int i = 256; i < 512; i++) /* row 0, block 1 is all zero: d = 0 */
        codes[i] = 1;
    /* the I2_S stream of the same codes */
    uint8_t file[512 * 3 / 4 + 32] = {0};
    for (int i = 0; i < ne0 * ne1; i++)
        stream_put(file, i, codes[i]);
    memcpy(file + ne0 * ne1 / 4, &scale, 4);
    uint8_t from_i2s[128 * 3], from_tq[128 * 3];
    float s_i2s, s_tq;
    CHECK_STATUS(TERN_OK, tern_i2s_to_packed(from_i2s, &s_i2s, file, sizeof file, ne0, ne1, "w"));

    static const uint32_t types[2] = {TERN_TYPE_TQ2_0, TERN_TYPE_TQ1_0};
    for (int ti = 0; ti < 2; ti++) {
        const size_t bb = ti == 0 ? 66 : 54, nbytes = bb * 6;
        uint8_t tq[66 * 6];
        CHECK_STATUS(TERN_OK, tern_packed_to_tq(tq, types[ti], from_i2s, ne0, ne1, scale));
        CHECK_INT(0, tq[2 * bb - 1]); /* the all-zero block's d is 0 (its high byte, last in the block) */
        /* the same bytes llama.cpp would write from W = t*scale */
        for (int b = 0; b < 6; b++) {
            float x[256];
            uint8_t ref[66];
            for (int e = 0; e < 256; e++)
                x[e] = (float)(codes[256 * b + e] - 1) * scale;
            if (ti == 0)
                llama_tq2_0(ref, x);
            else
                llama_tq1_0(ref, x);
            CHECK(memcmp(tq + bb * b, ref, bb) == 0);
        }
        CHECK_STATUS(TERN_OK, tern_tq_to_packed(from_tq, &s_tq, types[ti], tq, nbytes, ne0, ne1, "w"));
        CHECK(memcmp(from_tq, from_i2s, sizeof from_tq) == 0);
        CHECK_FLOAT(s_i2s, s_tq, 0.0);

        /* a d one f16 step away is f16 rounding: accepted, the first non-zero d wins */
        uint8_t *dlast = tq + bb * 5 + bb - 2;
        put16(dlast, (uint16_t)(tern_fp32_to_fp16(scale) + 1));
        CHECK_STATUS(TERN_OK, tern_tq_to_packed(from_tq, &s_tq, types[ti], tq, nbytes, ne0, ne1, "w"));
        CHECK_FLOAT(scale, s_tq, 0.0);
        /* a different scale is rejected, one line naming the tensor */
        put16(dlast, tern_fp32_to_fp16(0.75f));
        capture_begin();
        CHECK_STATUS(TERN_ERR_FORMAT, tern_tq_to_packed(from_tq, &s_tq, types[ti], tq, nbytes, ne0, ne1,
                                                        "blk.1.ffn_up.weight"));
        CHECK_INT(1, n_errors);
        CHECK(strstr(last_error, "blk.1.ffn_up.weight") != NULL);
        /* short data and a non-finite d are rejected too */
        put16(dlast, tern_fp32_to_fp16(scale));
        CHECK_STATUS(TERN_ERR_FORMAT,
                     tern_tq_to_packed(from_tq, &s_tq, types[ti], tq, nbytes - 1, ne0, ne1, "w"));
        put16(dlast, 0x7c00);
        CHECK_STATUS(TERN_ERR_FORMAT,
                     tern_tq_to_packed(from_tq, &s_tq, types[ti], tq, nbytes, ne0, ne1, "w"));
        capture_end();
    }
    /* a d = 0 block whose codes are not 1 still decodes to zero weights */
    uint8_t tq[66 * 6];
    CHECK_STATUS(TERN_OK, tern_packed_to_tq(tq, TERN_TYPE_TQ2_0, from_i2s, ne0, ne1, scale));
    put16(tq + 66 * 2 - 2, 0);
    tq[66] = 0x00; /* codes 0 (-1) under a zero d */
    CHECK_STATUS(TERN_OK, tern_tq_to_packed(from_tq, &s_tq, TERN_TYPE_TQ2_0, tq, sizeof tq, ne0, ne1, "w"));
    for (int j = 256; j < 512; j++)
        CHECK_INT(1, tern_packed_get(from_tq, j));
    /* TQ2_0 code 3 is rejected, the line naming where: element 0, then element 32 + 5 of block 1
     * (byte 5 of its codes, bits 3:2) */
    tq[0] |= 3;
    capture_begin();
    CHECK_STATUS(TERN_ERR_FORMAT,
                 tern_tq_to_packed(from_tq, &s_tq, TERN_TYPE_TQ2_0, tq, sizeof tq, ne0, ne1, "w"));
    capture_end();
    CHECK_INT(1, n_errors);
    CHECK(strstr(last_error, "code 3 at row 0, column 0") != NULL);
    tq[0] &= (uint8_t)~3u;
    tq[66 + 5] |= 3 << 2;
    capture_begin();
    CHECK_STATUS(TERN_ERR_FORMAT,
                 tern_tq_to_packed(from_tq, &s_tq, TERN_TYPE_TQ2_0, tq, sizeof tq, ne0, ne1, "w"));
    capture_end();
    CHECK(strstr(last_error, "code 3 at row 0, column 293") != NULL);
    CHECK_STATUS(TERN_ERR_SHAPE, tern_packed_to_tq(tq, TERN_TYPE_TQ1_0, from_i2s, 200, 1, scale));
}

static void ternarize(void) {
    /* mean|w| = 1: w/s hits .5 exactly, rounds half to even, then clamps */
    const float w[2][8] = {{0.5f, -0.5f, 1.5f, -1.5f, 0.0f, 2.0f, -2.0f, 0.0f},
                           {0.25f, 1.0f, -1.0f, 0.75f, -0.75f, 1.25f, 1.5f, 1.5f}};
    static const int want[2][8] = {{0, 0, 1, -1, 0, 1, -1, 0}, {0, 1, -1, 1, -1, 1, 1, 1}};
    uint8_t packed[2 * 32];
    float s = 0.0f;
    tern_ternarize(packed, &s, &w[0][0], 2, 8);
    CHECK_FLOAT(1.0, s, 0.0);
    for (int r = 0; r < 2; r++) {
        for (int j = 0; j < 128; j++)
            CHECK_INT(j < 8 ? want[r][j] + 1 : 1, tern_packed_get(packed + 32 * r, j));
    }
    /* exact half-way case with s = 1 */
    const float h[4] = {0.5f, -1.5f, 2.5f, -0.5f}; /* mean 1.25 */
    tern_ternarize(packed, &s, h, 1, 4);
    CHECK_FLOAT(1.25, s, 0.0);
    CHECK_INT(1, tern_packed_get(packed, 0));      /* 0.4 -> 0 */
    CHECK_INT(0, tern_packed_get(packed, 1));      /* -1.2 -> -1 */
    CHECK_INT(2, tern_packed_get(packed, 2));      /* 2 -> 1 */
    const float e[4] = {1.0f, 3.0f, -1.0f, -3.0f}; /* mean 2: 0.5 -> 0, 1.5 -> 2 -> 1 */
    tern_ternarize(packed, &s, e, 1, 4);
    CHECK_INT(1, tern_packed_get(packed, 0));
    CHECK_INT(2, tern_packed_get(packed, 1));
    CHECK_INT(1, tern_packed_get(packed, 2));
    CHECK_INT(0, tern_packed_get(packed, 3));
    /* all zero: the 1e-5 floor, all codes 1 */
    const float z[4] = {0};
    tern_ternarize(packed, &s, z, 1, 4);
    CHECK_FLOAT(1e-5, s, 1e-12);
    for (int j = 0; j < 4; j++)
        CHECK_INT(1, tern_packed_get(packed, j));
}

/* ---- the conformance vectors: the same ternary weights as I2_S, TQ2_0, TQ1_0 and F16 ---- */

/* Just enough GGUF (v3, little-endian) to find a tensor; the real reader is host/gguf/gguf.c. */
struct mini_gguf {
    uint8_t *buf;
    size_t size, data_off, pos;
    int ok;
};

static uint64_t rd(struct mini_gguf *g, size_t n) {
    uint64_t v = 0;
    if (g->pos + n > g->size) {
        g->ok = 0;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)g->buf[g->pos + i] << (8 * i);
    g->pos += n;
    return v;
}

static void skip_value(struct mini_gguf *g, uint32_t type) {
    static const uint8_t sizes[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == 8) {
        g->pos += rd(g, 8);
    } else if (type == 9) {
        const uint32_t at = (uint32_t)rd(g, 4);
        const uint64_t n = rd(g, 8);
        for (uint64_t i = 0; i < n && g->ok; i++)
            skip_value(g, at);
    } else if (type < 13) {
        g->pos += sizes[type];
    } else {
        g->ok = 0;
    }
}

static int mini_gguf_load(struct mini_gguf *g, const char *path) {
    memset(g, 0, sizeof *g);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    fseek(f, 0, SEEK_END);
    g->size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    g->buf = malloc(g->size);
    g->ok = g->buf && fread(g->buf, 1, g->size, f) == g->size;
    fclose(f);
    return g->ok;
}

/* Find tensor `name`: its data, type and ne0/ne1 (alignment 32, as every vector file uses). */
static const uint8_t *mini_gguf_tensor(struct mini_gguf *g, const char *name, uint32_t *type, int64_t *ne) {
    g->pos = 8;
    const uint64_t n_tensors = rd(g, 8), n_kv = rd(g, 8);
    for (uint64_t i = 0; i < n_kv && g->ok; i++) {
        g->pos += rd(g, 8);
        skip_value(g, (uint32_t)rd(g, 4));
    }
    const uint8_t *found = NULL;
    uint64_t found_off = 0;
    for (uint64_t i = 0; i < n_tensors && g->ok; i++) {
        const uint64_t len = rd(g, 8);
        const int match =
            g->pos + len <= g->size && len == strlen(name) && !memcmp(g->buf + g->pos, name, len);
        g->pos += len;
        const uint32_t nd = (uint32_t)rd(g, 4);
        int64_t dims[4] = {1, 1, 1, 1};
        for (uint32_t d = 0; d < nd && d < 4; d++)
            dims[d] = (int64_t)rd(g, 8);
        const uint32_t t = (uint32_t)rd(g, 4);
        const uint64_t off = rd(g, 8);
        if (match) {
            *type = t;
            ne[0] = dims[0];
            ne[1] = dims[1];
            found = g->buf;
            found_off = off;
        }
    }
    if (!found || !g->ok)
        return NULL;
    g->data_off = (g->pos + 31) / 32 * 32;
    return g->buf + g->data_off + found_off;
}

static void conformance_vectors(void) {
    static const char *files[4] = {"vectors/mini-b158-i2s.gguf", "vectors/mini-bitnet-tq2.gguf",
                                   "vectors/mini-bitnet-tq1.gguf", "vectors/mini-b158-f16.gguf"};
    static const uint32_t want_type[4] = {TERN_TYPE_I2_S, TERN_TYPE_TQ2_0, TERN_TYPE_TQ1_0, TERN_TYPE_F16};
    static const struct {
        const char *name;
        float scale;
    } tensors[] = {{"blk.0.attn_q.weight", 0.8125f},       {"blk.0.attn_k.weight", 0.6015625f},
                   {"blk.0.ffn_down.weight", 0.35546875f}, {"blk.1.attn_output.weight", 0.27734375f},
                   {"blk.1.ffn_up.weight", 0.84765625f},   {"blk.1.ffn_down.weight", 0.326171875f}};
    struct mini_gguf g[4];
    for (int f = 0; f < 4; f++) {
        if (!mini_gguf_load(&g[f], test_data(files[f], 0))) {
            harness_fail(__FILE__, __LINE__, "cannot read %s", test_data(files[f], 0));
            for (int k = 0; k < f; k++)
                free(g[k].buf);
            free(g[f].buf);
            return;
        }
    }
    for (size_t ti = 0; ti < sizeof tensors / sizeof tensors[0]; ti++) {
        uint8_t *packed[3] = {NULL, NULL, NULL};
        float scales[3] = {0, 0, 0};
        int64_t ne[2] = {0, 0};
        for (int f = 0; f < 4; f++) {
            uint32_t type = 0;
            const uint8_t *data = mini_gguf_tensor(&g[f], tensors[ti].name, &type, ne);
            if (!data) {
                harness_fail(__FILE__, __LINE__, "%s: no tensor %s", files[f], tensors[ti].name);
                continue;
            }
            CHECK_INT(want_type[f], type);
            uint64_t nbytes = 0;
            CHECK_STATUS(TERN_OK, tern_type_nbytes(type, 2, ne, &nbytes));
            CHECK(data + nbytes <= g[f].buf + g[f].size);
            if (f < 3) {
                packed[f] = malloc((size_t)tern_packed_nbytes(ne[0], ne[1]));
                if (f == 0) {
                    CHECK(tern_i2s_is_packed(ne[0]));
                    CHECK_STATUS(TERN_OK, tern_i2s_to_packed(packed[0], &scales[0], data, nbytes, ne[0],
                                                             ne[1], tensors[ti].name));
                    CHECK(memcmp(packed[0], data, (size_t)(ne[0] * ne[1] / 4)) == 0); /* in place */
                } else {
                    CHECK_STATUS(TERN_OK, tern_tq_to_packed(packed[f], &scales[f], type, data, nbytes, ne[0],
                                                            ne[1], tensors[ti].name));
                    /* and our writer reproduces llama.cpp's bytes from the packed codes */
                    uint8_t *again = malloc((size_t)nbytes);
                    CHECK_STATUS(TERN_OK, tern_packed_to_tq(again, type, packed[f], ne[0], ne[1], scales[f]));
                    CHECK(memcmp(again, data, (size_t)nbytes) == 0);
                    free(again);
                }
                CHECK_FLOAT(tensors[ti].scale, scales[f], 0.0);
                CHECK_STATUS(TERN_OK, tern_packed_verify(packed[f], ne[0], ne[1], tensors[ti].name));
            } else if (packed[0]) {
                /* the F16 source holds W = t*scale: decoded rows equal (code-1)*scale exactly */
                float *row = malloc(sizeof(float) * (size_t)ne[0]);
                int bad = 0;
                for (int64_t r = 0; r < ne[1] && !bad; r++) {
                    tern_ref_dequant_row(row, data + r * ne[0] * 2, TERN_TYPE_F16, ne[0]);
                    for (int64_t j = 0; j < ne[0]; j++) {
                        const float want =
                            (float)(tern_packed_get(packed[0] + r * (ne[0] / 4), j) - 1) * tensors[ti].scale;
                        if (row[j] != want) {
                            harness_fail(__FILE__, __LINE__, "%s row %lld col %lld: F16 %g, I2_S %g",
                                         tensors[ti].name, (long long)r, (long long)j, (double)row[j],
                                         (double)want);
                            bad = 1;
                            break;
                        }
                    }
                }
                free(row);
            }
        }
        if (packed[0] && packed[1] && packed[2]) {
            const size_t nb = (size_t)tern_packed_nbytes(ne[0], ne[1]);
            CHECK(memcmp(packed[0], packed[1], nb) == 0);
            CHECK(memcmp(packed[0], packed[2], nb) == 0);
        }
        for (int f = 0; f < 3; f++)
            free(packed[f]);
    }
    for (int f = 0; f < 4; f++)
        free(g[f].buf);
}

int main(void) {
    RUN(f32_f16_bf16);
    RUN(q8_0_blocks);
    RUN(q4_k_block);
    RUN(q6_k_block);
    RUN(matvec_types);
    RUN(quantizer_round_trip);
    RUN(packed_accessors);
    RUN(i2s_stream_packed);
    RUN(tq1_0_bytes);
    RUN(tq_blocks);
    RUN(tq_repack);
    RUN(ternarize);
    RUN(conformance_vectors);
    return harness_finish();
}
