/* Linear weights stored as F32/F16/BF16 in a GGUF, ternarized at load
 * (docs/formats.md#hugging-face-checkpoints): the conformance F16 sources give packed codes and scales
 * bit-identical to bitnet.cpp's I2_S file made from them, and bitnet.cpp's recorded greedy ids (read from
 * mini-refs.json); a full-precision master is ternarized with absmean, checked against a closed-form
 * expectation. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "host/model/ternary.h"
#include "host/tern.h"
#include "scheduler/fp16.h"

static void same_ternary(const struct tern_ternary *a, const struct tern_ternary *b, int il, int i) {
    if (a->n_out != b->n_out || a->row_bytes != b->row_bytes) {
        harness_fail(__FILE__, __LINE__, "layer %d linear %d: shapes differ", il, i);
        return;
    }
    if (memcmp(&a->scale, &b->scale, sizeof a->scale) != 0)
        harness_fail(__FILE__, __LINE__, "layer %d linear %d: scale %.9g, I2_S twin %.9g", il, i,
                     (double)a->scale, (double)b->scale);
    if (memcmp(a->codes, b->codes, (size_t)(a->row_bytes * a->n_out)) != 0)
        harness_fail(__FILE__, __LINE__, "layer %d linear %d: packed codes differ from the I2_S twin", il, i);
}

/* Both F16 sources (arch bitnet-b1.58 and bitnet) against bitnet.cpp's I2_S quantization. */
static void f16_sources_match_i2s_twin(void) {
    const char *f16[2] = {"vectors/mini-b158-f16.gguf", "vectors/mini-bitnet-f16.gguf"};
    tern_model *twin = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(test_data("vectors/mini-b158-i2s.gguf", 0), &twin));
    for (int f = 0; f < 2 && twin; f++) {
        tern_model *m = NULL;
        CHECK_STATUS(TERN_OK, tern_model_create(test_data(f16[f], 1), &m));
        if (!m)
            continue;
        int n_absmean = -1;
        CHECK_INT(14, tern_model_n_float_linear(m, &n_absmean));
        CHECK_INT(0, n_absmean);
        const struct tern_model_view *a = tern_model_view(m), *b = tern_model_view(twin);
        for (int il = 0; il < a->hp.n_layer; il++) {
            const struct tern_layer_weights *x = &a->layers[il], *y = &b->layers[il];
            const struct tern_ternary *xs[7] = {&x->wq,    &x->wk,  &x->wv,   &x->wo,
                                                &x->wgate, &x->wup, &x->wdown};
            const struct tern_ternary *ys[7] = {&y->wq,    &y->wk,  &y->wv,   &y->wo,
                                                &y->wgate, &y->wup, &y->wdown};
            for (int i = 0; i < 7; i++)
                same_ternary(xs[i], ys[i], il, i);
        }
        tern_model_free(m);
    }
    tern_model_free(twin);
}

/* Greedy ids on the F16 source equal bitnet.cpp's on its I2_S file (mini-refs.json). */
static void f16_greedy_matches_bitnet_cpp(void) {
    json_error_t err;
    json_t *refs = json_load_file(test_data("vectors/mini-refs.json", 0), 0, &err);
    CHECK(refs != NULL);
    if (!refs)
        return;
    json_t *cases = NULL;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(refs, "references"), i, r) {
        const char *model = json_string_value(json_object_get(r, "model"));
        if (model && strcmp(model, "mini-b158-i2s.gguf") == 0)
            cases = json_object_get(r, "cases");
    }
    CHECK_INT(3, json_array_size(cases));
    tern_model *m = NULL;
    tern_session *s = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(test_data("vectors/mini-b158-f16.gguf", 0), &m));
    if (m) {
        const int nv = tern_model_view(m)->hp.n_vocab;
        json_t *c;
        json_array_foreach(cases, i, c) {
            json_t *prompt = json_object_get(c, "prompt_ids"), *want = json_object_get(c, "generated_ids");
            int32_t ids[64];
            int n = (int)json_array_size(prompt), n_want = (int)json_array_size(want);
            CHECK(n > 0 && n < 64 && n_want == 16);
            if (!(n > 0 && n < 64 && n_want == 16))
                break;
            for (int k = 0; k < n; k++)
                ids[k] = (int32_t)json_integer_value(json_array_get(prompt, (size_t)k));
            struct tern_session_params sp = {.n_ctx = 256, .device = "cpu"};
            CHECK_STATUS(TERN_OK, tern_session_create(m, &sp, &s));
            if (!s)
                break;
            const float *logits;
            CHECK_STATUS(TERN_OK, tern_session_eval(s, ids, n, &logits));
            for (int k = 0; k < 16; k++) {
                int32_t next = harness_argmax(logits, nv),
                        expect = (int32_t)json_integer_value(json_array_get(want, (size_t)k));
                if (next != expect) {
                    harness_fail(__FILE__, __LINE__, "case %zu token %d: expected %d, got %d", i, k, expect,
                                 next);
                    break;
                }
                CHECK_STATUS(TERN_OK, tern_session_eval(s, &next, 1, &logits));
            }
            tern_session_free(s);
            s = NULL;
        }
    }
    tern_model_free(m);
    json_decref(refs);
}

static void put_f32(uint8_t *p, float v) {
    uint32_t b = tern_f32_bits(v);
    memcpy(p, &b, 4);
}

/* A full-precision master whose values cycle -0.75, -0.25, 0.25, 0.75: s = mean|W| = 0.5 and
 * w/s = -1.5, -0.5, 0.5, 1.5 round half to even to -2, 0, 0, 2, clamped to -1, 0, 0, +1. */
static void absmean_master_closed_form(void) {
    const int64_t k = 256, n_out = 2;
    uint8_t data[256 * 2 * 4];
    for (int64_t i = 0; i < k * n_out; i++)
        put_f32(data + 4 * i, ((float)(i % 4) - 1.5f) * 0.5f);
    uint8_t packed[2 * 64];
    float scale = 0.0f;
    bool absmean = false;
    CHECK_STATUS(TERN_OK, tern_float_to_packed(packed, &scale, &absmean, TERN_TYPE_F32, data, sizeof data, k,
                                               n_out, "master"));
    CHECK(absmean);
    CHECK_FLOAT(0.5, scale, 0.0);
    static const int want[4] = {0, 1, 1, 2}; /* -0.75 -> -1, -0.25 -> 0, 0.25 -> 0, 0.75 -> +1 */
    for (int64_t r = 0; r < n_out; r++)
        for (int64_t j = 0; j < k; j++)
            if (tern_packed_get(packed + r * 64, j) != want[j % 4]) {
                harness_fail(__FILE__, __LINE__, "row %lld col %lld: code %d, expected %d", (long long)r,
                             (long long)j, tern_packed_get(packed + r * 64, j), want[j % 4]);
                return;
            }
    /* an already-ternary BF16 tensor: sign and max|w|, not absmean (bitnet.cpp's I2_S rule) */
    uint8_t bf[256 * 2];
    for (int j = 0; j < 256; j++) {
        uint16_t h = tern_fp32_to_bf16(j % 3 == 0 ? 0.0f : j % 3 == 1 ? 0.375f : -0.375f);
        memcpy(bf + 2 * j, &h, 2);
    }
    CHECK_STATUS(TERN_OK, tern_float_to_packed(packed, &scale, &absmean, TERN_TYPE_BF16, bf, sizeof bf, 256,
                                               1, "ternary"));
    CHECK(!absmean);
    CHECK_FLOAT(0.375, scale, 0.0);
    for (int j = 0; j < 256; j++)
        CHECK_INT(j % 3 == 0 ? 1 : j % 3 == 1 ? 2 : 0, tern_packed_get(packed, j));
    /* short data and non-finite values are refused */
    CHECK_STATUS(TERN_ERR_FORMAT, tern_float_to_packed(packed, &scale, &absmean, TERN_TYPE_BF16, bf,
                                                       sizeof bf - 2, 256, 1, "short"));
    put_f32(data, NAN);
    CHECK_STATUS(TERN_ERR_FORMAT, tern_float_to_packed(packed, &scale, &absmean, TERN_TYPE_F32, data,
                                                       sizeof data, k, n_out, "nan"));
}

int main(void) {
    RUN(f16_sources_match_i2s_twin);
    RUN(f16_greedy_matches_bitnet_cpp);
    RUN(absmean_master_closed_form);
    return harness_finish();
}
