/* Reference decoding of the non-ternary tensor types (F32, F16, BF16, Q8_0, Q4_K, Q6_K) and the
 * embedding/head matvec over them. Block layouts are ggml's; every field is bytes so a block may sit
 * at any address (f16 fields are read little-endian by hand). */
#include <assert.h>
#include <string.h>

#include "../scheduler/fp16.h"
#include "ref.h"

/* On-disk blocks. host/gguf/quantize.h declares the same layouts for writers; cpu/ may not include host/,
 * so they are repeated here, each pinned by its size. */
struct ref_block_q8_0 {
    uint8_t d[2];  /* f16 scale */
    int8_t qs[32]; /* value = d * qs[i] */
};
static_assert(sizeof(struct ref_block_q8_0) == 34, "Q8_0 block is 34 bytes");

struct ref_block_q4_k {
    uint8_t d[2];       /* f16 super-block scale of the 6-bit sub-block scales */
    uint8_t dmin[2];    /* f16 super-block scale of the 6-bit sub-block mins */
    uint8_t scales[12]; /* 8 scales + 8 mins, 6 bits each (see tern_ref_q4_k_scale_min) */
    uint8_t qs[128];    /* 4-bit quants: 64-element groups, low nibbles first then high nibbles */
};
static_assert(sizeof(struct ref_block_q4_k) == 144, "Q4_K block is 144 bytes");

struct ref_block_q6_k {
    uint8_t ql[128];   /* low 4 bits of the quants */
    uint8_t qh[64];    /* high 2 bits of the quants */
    int8_t scales[16]; /* signed 8-bit scale per 16 elements */
    uint8_t d[2];      /* f16 super-block scale */
};
static_assert(sizeof(struct ref_block_q6_k) == 210, "Q6_K block is 210 bytes");

static void dequant_q8_0(float *out, const struct ref_block_q8_0 *b) {
    const float d = tern_fp16_at(b->d);
    for (int i = 0; i < 32; i++)
        out[i] = d * (float)b->qs[i];
}

static void dequant_q4_k(float *out, const struct ref_block_q4_k *b) {
    const float d = tern_fp16_at(b->d), dmin = tern_fp16_at(b->dmin);
    /* four groups of 64: 32 bytes each, low nibbles are sub-block 2g, high nibbles 2g+1 */
    for (int g = 0; g < 4; g++) {
        int sc0, m0, sc1, m1;
        tern_ref_q4_k_scale_min(2 * g, b->scales, &sc0, &m0);
        tern_ref_q4_k_scale_min(2 * g + 1, b->scales, &sc1, &m1);
        const float d0 = d * (float)sc0, mm0 = dmin * (float)m0;
        const float d1 = d * (float)sc1, mm1 = dmin * (float)m1;
        const uint8_t *q = b->qs + 32 * g;
        for (int l = 0; l < 32; l++) {
            out[64 * g + l] = d0 * (float)(q[l] & 0x0f) - mm0;
            out[64 * g + 32 + l] = d1 * (float)(q[l] >> 4) - mm1;
        }
    }
}

static void dequant_q6_k(float *out, const struct ref_block_q6_k *b) {
    const float d = tern_fp16_at(b->d);
    /* two halves of 128: 64 bytes of ql, 32 bytes of qh and 8 scales each. Within a half, element
     * l + 32*k (k = 0..3) takes nibble (k/2 ? high : low) of ql[l + 32*(k%2)] and bits 2k+1:2k of
     * qh[l]; the quant is that 6-bit number minus 32, scaled by scales[8*half + 2*k + l/16]. */
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h;
        const uint8_t *qh = b->qh + 32 * h;
        const int8_t *sc = b->scales + 8 * h;
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            const int q0 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q1 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            float *o = out + 128 * h + l;
            o[0] = d * (float)sc[is + 0] * (float)q0;
            o[32] = d * (float)sc[is + 2] * (float)q1;
            o[64] = d * (float)sc[is + 4] * (float)q2;
            o[96] = d * (float)sc[is + 6] * (float)q3;
        }
    }
}

void tern_ref_dequant_row(float *out, const void *row, uint32_t type, int64_t n) {
    const uint8_t *p = row;
    switch (type) {
    case TERN_TYPE_F32:
        memcpy(out, p, (size_t)n * sizeof(float));
        break;
    case TERN_TYPE_F16:
        for (int64_t i = 0; i < n; i++)
            out[i] = tern_fp16_at(p + 2 * i);
        break;
    case TERN_TYPE_BF16:
        for (int64_t i = 0; i < n; i++)
            out[i] = tern_bf16_to_fp32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        break;
    case TERN_TYPE_Q8_0:
        for (int64_t b = 0; b < n / 32; b++)
            dequant_q8_0(out + 32 * b, (const struct ref_block_q8_0 *)p + b);
        break;
    case TERN_TYPE_Q4_K:
        for (int64_t b = 0; b < n / 256; b++)
            dequant_q4_k(out + 256 * b, (const struct ref_block_q4_k *)p + b);
        break;
    case TERN_TYPE_Q6_K:
        for (int64_t b = 0; b < n / 256; b++)
            dequant_q6_k(out + 256 * b, (const struct ref_block_q6_k *)p + b);
        break;
    default:
        assert(!"tern_ref_dequant_row: not a float tensor type");
        break;
    }
}

/* Rows are decoded in chunks of CHUNK elements (a multiple of every block size) into a stack buffer
 * and dotted in f32 in element order, so the result does not depend on the chunk size. */
enum { CHUNK = 256 };

void tern_ref_matvec(float *out, const struct tern_tensor *t, const float *x, int64_t row_begin,
                     int64_t row_end) {
    const struct tern_type_traits *tr = tern_type_traits(t->type);
    assert(tr && tr->cls == TERN_CLASS_FLOAT && CHUNK % tr->block_size == 0);
    const size_t chunk_bytes = (size_t)(CHUNK / tr->block_size) * tr->block_bytes;
    float buf[CHUNK];
    for (int64_t r = row_begin; r < row_end; r++) {
        const uint8_t *row = (const uint8_t *)t->data + (size_t)r * t->row_bytes;
        float acc = 0.0f;
        for (int64_t c = 0; c < t->ne0; c += CHUNK) {
            /* the tail may be a partial chunk of whole blocks (F16 rows of any length, Q8_0 rows of
             * 32*k elements) */
            const int64_t len = t->ne0 - c < CHUNK ? t->ne0 - c : CHUNK;
            tern_ref_dequant_row(buf, row + (size_t)(c / CHUNK) * chunk_bytes, t->type, len);
            for (int64_t i = 0; i < len; i++)
                acc += buf[i] * x[c + i];
        }
        out[r - row_begin] = acc;
    }
}

void tern_ref_matvec_tokens(float *const *out, const struct tern_tensor *t, const float *const *x, int n_tok,
                            int64_t row_begin, int64_t row_end) {
    for (int i = 0; i < n_tok; i++)
        tern_ref_matvec(out[i], t, x[i], row_begin, row_end);
}
