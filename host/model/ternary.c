/* Ternary weight formats on the host: I2_S stream <-> shared packed format, TQ2_0/TQ1_0 block codecs
 * and whole-tensor repacking, absmean ternarization. See ternary.h. */
#include "ternary.h"

#include <math.h>
#include <string.h>

#include "../../scheduler/fp16.h"
#include "../../scheduler/log.h"
#include "../../scheduler/types.h"

static uint16_t u16_at(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static const char *name_or(const char *name) {
    return name ? name : "(unnamed)";
}

void tern_packed_fill_zero(uint8_t *packed, int64_t k, int64_t n_out) {
    /* code 1 in all four bit pairs */
    memset(packed, 0x55, (size_t)tern_packed_nbytes(k, n_out));
}

tern_status tern_packed_verify(const uint8_t *packed, int64_t k, int64_t n_out, const char *name) {
    const int64_t k_pad = tern_ternary_k_pad(k), row_bytes = k_pad / 4;
    const uint64_t nbytes = (uint64_t)row_bytes * (uint64_t)n_out;
    /* code 3 is the only pair with both bits set: one AND per 32 codes, which the compiler
     * vectorises, so the official file's 0.5 GB of codes are checked at load for little cost */
    uint64_t any3 = 0, i = 0;
    for (; i + 8 <= nbytes; i += 8) {
        uint64_t w;
        memcpy(&w, packed + i, 8);
        any3 |= w & (w >> 1) & 0x5555555555555555ull;
    }
    for (; i < nbytes; i++)
        any3 |= (uint64_t)(packed[i] & (packed[i] >> 1) & 0x55);
    if (!any3 && k == k_pad)
        return TERN_OK;
    for (int64_t r = 0; r < n_out; r++) {
        const uint8_t *row = packed + r * row_bytes;
        for (int64_t j = any3 ? 0 : k; j < k_pad; j++) {
            const int c = tern_packed_get(row, j);
            if (c == 3 || (j >= k && c != 1)) {
                tern_log_error("tensor %s: invalid ternary code %d at row %lld, column %lld", name_or(name),
                               c, (long long)r, (long long)j);
                return TERN_ERR_FORMAT;
            }
        }
    }
    return TERN_OK;
}

/* ---- I2_S ---- */

static tern_status i2s_check(const void *data, uint64_t nbytes, int64_t ne0, int64_t ne1, const char *name) {
    if (!data || ne0 <= 0 || ne1 <= 0 || (uint64_t)ne0 > UINT64_MAX / 4 / (uint64_t)ne1) {
        tern_log_error("tensor %s: invalid I2_S shape [%lld, %lld]", name_or(name), (long long)ne0,
                       (long long)ne1);
        return TERN_ERR_FORMAT;
    }
    const uint64_t n = (uint64_t)ne0 * (uint64_t)ne1;
    if (n % 128 != 0) {
        tern_log_error("tensor %s: I2_S element count %llu is not a multiple of 128", name_or(name),
                       (unsigned long long)n);
        return TERN_ERR_FORMAT;
    }
    /* the 28 padding bytes are never read, but a file must hold them to be an I2_S tensor */
    if (nbytes < n / 4 + 32) {
        tern_log_error("tensor %s: I2_S data is %llu bytes, expected %llu", name_or(name),
                       (unsigned long long)nbytes, (unsigned long long)(n / 4 + 32));
        return TERN_ERR_FORMAT;
    }
    return TERN_OK;
}

tern_status tern_i2s_scale(float *scale, const void *data, uint64_t nbytes, int64_t ne0, int64_t ne1,
                           const char *name) {
    tern_status st = i2s_check(data, nbytes, ne0, ne1, name);
    if (st)
        return st;
    const uint64_t n = (uint64_t)ne0 * (uint64_t)ne1;
    uint32_t bits;
    memcpy(&bits, (const uint8_t *)data + n / 4, 4); /* GGUF is little-endian, as is every host we run on */
    const float s = tern_f32_from_bits(bits);
    if (!isfinite(s)) {
        tern_log_error("tensor %s: I2_S scale is not finite", name_or(name));
        return TERN_ERR_FORMAT;
    }
    *scale = s;
    return TERN_OK;
}

tern_status tern_i2s_to_packed(uint8_t *dst, float *scale, const void *data, uint64_t nbytes, int64_t ne0,
                               int64_t ne1, const char *name) {
    tern_status st = tern_i2s_scale(scale, data, nbytes, ne0, ne1, name);
    if (st)
        return st;
    const uint8_t *src = data;
    const int64_t k_pad = tern_ternary_k_pad(ne0), row_bytes = k_pad / 4;
    tern_packed_fill_zero(dst, ne0, ne1);
    for (int64_t r = 0; r < ne1; r++) {
        uint8_t *row = dst + r * row_bytes;
        const int64_t base = r * ne0; /* element index of the row's start in the stream */
        for (int64_t j = 0; j < ne0; j++) {
            const int c = tern_packed_get(src, base + j);
            if (c == 3) {
                tern_log_error("tensor %s: I2_S code 3 at row %lld, column %lld", name_or(name), (long long)r,
                               (long long)j);
                return TERN_ERR_FORMAT;
            }
            tern_packed_set(row, j, c);
        }
    }
    return TERN_OK;
}

tern_status tern_packed_to_i2s(uint8_t *dst, const uint8_t *packed, int64_t ne0, int64_t ne1, float scale) {
    if (ne0 <= 0 || ne1 <= 0 || ((uint64_t)ne0 * (uint64_t)ne1) % 128 != 0)
        return TERN_ERR_SHAPE;
    const uint64_t n = (uint64_t)ne0 * (uint64_t)ne1;
    const int64_t row_bytes = tern_ternary_k_pad(ne0) / 4;
    if (ne0 % 128 == 0) {
        memcpy(dst, packed, (size_t)(n / 4));
    } else {
        memset(dst, 0, (size_t)(n / 4));
        for (int64_t r = 0; r < ne1; r++)
            for (int64_t j = 0; j < ne0; j++)
                tern_packed_set(dst, r * ne0 + j, tern_packed_get(packed + r * row_bytes, j));
    }
    const uint32_t bits = tern_f32_bits(scale);
    memcpy(dst + n / 4, &bits, 4);
    memset(dst + n / 4 + 4, 0, 28);
    return TERN_OK;
}

/* ---- TQ2_0 ---- */

void tern_tq2_0_decode(uint8_t *codes, float *d, const struct tern_block_tq2_0 *b) {
    /* element 128h + 32n + j sits in bits 2n+1:2n of qs[32h + j] */
    for (int h = 0; h < 2; h++)
        for (int n = 0; n < 4; n++)
            for (int j = 0; j < 32; j++)
                codes[128 * h + 32 * n + j] = (uint8_t)((b->qs[32 * h + j] >> (2 * n)) & 3);
    *d = tern_fp16_to_fp32(u16_at(b->d));
}

void tern_tq2_0_encode(struct tern_block_tq2_0 *b, const uint8_t *codes, float d) {
    memset(b->qs, 0, sizeof b->qs);
    for (int e = 0; e < 256; e++)
        b->qs[32 * (e / 128) + e % 32] |= (uint8_t)((codes[e] & 3) << (2 * ((e % 128) / 32)));
    put_u16(b->d, tern_fp32_to_fp16(d));
}

/* ---- TQ1_0 ---- */

uint8_t tern_tq1_0_pack5(const uint8_t *digits) {
    unsigned q = 0;
    for (int n = 0; n < 5; n++)
        q = q * 3 + digits[n];
    /* fixed-point base-3 fraction q/243, rounded up so that digit n is ((byte*3^n mod 256)*3) >> 8 */
    return (uint8_t)((q * 256 + 242) / 243);
}

/* Element of a TQ1_0 block carried by digit n of byte i (i 0..47 of qs, 48..51 of qh). */
static int tq1_0_element(int i, int n) {
    if (i < 32)
        return i + 32 * n;
    if (i < 48)
        return 160 + (i - 32) + 16 * n;
    return 240 + (i - 48) + 4 * n; /* n < 4 */
}

void tern_tq1_0_decode(uint8_t *codes, float *d, const struct tern_block_tq1_0 *b) {
    /* tq1_0_element's three ranges, written out so the digit loops vectorise (loading a 1.1 GB
     * TQ1_0 model spent seconds here) */
    for (int n = 0; n < 5; n++) {
        for (int i = 0; i < 32; i++)
            codes[i + 32 * n] = (uint8_t)tern_tq1_0_digit(b->qs[i], n);
        for (int i = 0; i < 16; i++)
            codes[160 + i + 16 * n] = (uint8_t)tern_tq1_0_digit(b->qs[32 + i], n);
    }
    for (int n = 0; n < 4; n++)
        for (int i = 0; i < 4; i++)
            codes[240 + i + 4 * n] = (uint8_t)tern_tq1_0_digit(b->qh[i], n);
    *d = tern_fp16_to_fp32(u16_at(b->d));
}

void tern_tq1_0_encode(struct tern_block_tq1_0 *b, const uint8_t *codes, float d) {
    uint8_t dig[5];
    for (int i = 0; i < 48; i++) {
        for (int n = 0; n < 5; n++)
            dig[n] = codes[tq1_0_element(i, n)];
        b->qs[i] = tern_tq1_0_pack5(dig);
    }
    for (int i = 0; i < 4; i++) {
        for (int n = 0; n < 4; n++)
            dig[n] = codes[tq1_0_element(48 + i, n)];
        dig[4] = 0;
        b->qh[i] = tern_tq1_0_pack5(dig);
    }
    put_u16(b->d, tern_fp32_to_fp16(d));
}

/* ---- TQ tensors <-> packed ---- */

/* Two f16 scales agree when they are within one f16 step of each other (relative 2^-10): the
 * rounding a converter may introduce when it computes d per block from slightly different maxima. */
static bool same_scale(float a, float b) {
    return fabsf(a - b) <= ldexpf(fmaxf(fabsf(a), fabsf(b)), -10);
}

/* Codes of 256 consecutive elements into two blocks of a packed row: byte j of a 128-element block
 * holds elements j, 32 + j, 64 + j, 96 + j from bit 7 down (tern_packed_set's order, a byte at a time). */
static void pack_256(uint8_t *dst, const uint8_t *codes) {
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 32; j++) {
            const uint8_t *c = codes + 128 * h + j;
            dst[32 * h + j] = (uint8_t)(c[0] << 6 | c[32] << 4 | c[64] << 2 | c[96]);
        }
}

/* valid[b] != 0 when byte b is one llama.cpp writes: the fixed-point form of five base-3 digits
 * (qs), or of four digits and a zero (qh, fifth_zero). 13 of the 256 values encode nothing. */
static void tq1_0_valid_bytes(uint8_t *valid, bool fifth_zero) {
    for (int b = 0; b < 256; b++) {
        uint8_t dig[5];
        for (int n = 0; n < 5; n++)
            dig[n] = (uint8_t)tern_tq1_0_digit((uint8_t)b, n);
        valid[b] = tern_tq1_0_pack5(dig) == b && !(fifth_zero && dig[4] != 0);
    }
}

tern_status tern_tq_to_packed(uint8_t *dst, float *scale, uint32_t type, const void *data, uint64_t nbytes,
                              int64_t ne0, int64_t ne1, const char *name) {
    if (type != TERN_TYPE_TQ2_0 && type != TERN_TYPE_TQ1_0)
        return TERN_ERR_ARG;
    const size_t bb =
        type == TERN_TYPE_TQ2_0 ? sizeof(struct tern_block_tq2_0) : sizeof(struct tern_block_tq1_0);
    if (!data || ne0 <= 0 || ne1 <= 0 || ne0 % 256 != 0 ||
        (uint64_t)(ne0 / 256) > UINT64_MAX / bb / (uint64_t)ne1) {
        tern_log_error("tensor %s: invalid %s shape [%lld, %lld]", name_or(name), tern_type_name(type),
                       (long long)ne0, (long long)ne1);
        return TERN_ERR_FORMAT;
    }
    const uint64_t n_blocks = (uint64_t)(ne0 / 256) * (uint64_t)ne1;
    if (nbytes < n_blocks * bb) {
        tern_log_error("tensor %s: %s data is %llu bytes, expected %llu", name_or(name), tern_type_name(type),
                       (unsigned long long)nbytes, (unsigned long long)(n_blocks * bb));
        return TERN_ERR_FORMAT;
    }
    const uint8_t *src = data;
    const int64_t row_bytes = tern_ternary_k_pad(ne0) / 4;
    const int64_t blocks_per_row = ne0 / 256;
    float common = 0.0f;
    uint8_t codes[256], valid_qs[256], valid_qh[256];
    tq1_0_valid_bytes(valid_qs, false);
    tq1_0_valid_bytes(valid_qh, true);
    tern_packed_fill_zero(dst, ne0, ne1);
    for (int64_t r = 0; r < ne1; r++) {
        for (int64_t b = 0; b < blocks_per_row; b++) {
            const uint8_t *blk = src + (uint64_t)(r * blocks_per_row + b) * bb;
            float d;
            if (type == TERN_TYPE_TQ2_0) {
                tern_tq2_0_decode(codes, &d, (const struct tern_block_tq2_0 *)blk);
            } else {
                const struct tern_block_tq1_0 *b1 = (const struct tern_block_tq1_0 *)blk;
                uint8_t ok = 1;
                for (int i = 0; i < 48; i++)
                    ok &= valid_qs[b1->qs[i]];
                for (int i = 0; i < 4; i++)
                    ok &= valid_qh[b1->qh[i]];
                if (!ok) {
                    tern_log_error("tensor %s: TQ1_0 block %lld of row %lld holds a byte that is not a "
                                   "base-3 code",
                                   name_or(name), (long long)b, (long long)r);
                    return TERN_ERR_FORMAT;
                }
                tern_tq1_0_decode(codes, &d, b1);
            }
            if (!isfinite(d)) {
                tern_log_error("tensor %s: %s block %lld of row %lld has a non-finite scale", name_or(name),
                               tern_type_name(type), (long long)b, (long long)r);
                return TERN_ERR_FORMAT;
            }
            if (d != 0.0f) {
                if (common == 0.0f) {
                    common = d;
                } else if (!same_scale(common, d)) {
                    tern_log_error("tensor %s: %s block scales differ (%g at row %lld, block %lld vs %g); "
                                   "tern needs one scale per tensor",
                                   name_or(name), tern_type_name(type), (double)d, (long long)r, (long long)b,
                                   (double)common);
                    return TERN_ERR_FORMAT;
                }
            }
            uint8_t bad = 0;
            for (int e = 0; e < 256; e++)
                bad |= codes[e] == 3;
            if (bad) {
                int e = 0;
                while (codes[e] != 3)
                    e++;
                tern_log_error("tensor %s: TQ2_0 code 3 at row %lld, column %lld", name_or(name),
                               (long long)r, (long long)(256 * b + e));
                return TERN_ERR_FORMAT;
            }
            /* a block with d = 0 is all zero whatever its codes say; it keeps the fill code 1 so the
             * common scale does not bring its codes to life */
            if (d != 0.0f)
                pack_256(dst + r * row_bytes + 64 * b, codes);
        }
    }
    *scale = common;
    return TERN_OK;
}

tern_status tern_packed_to_tq(void *dst, uint32_t type, const uint8_t *packed, int64_t ne0, int64_t ne1,
                              float scale) {
    if (type != TERN_TYPE_TQ2_0 && type != TERN_TYPE_TQ1_0)
        return TERN_ERR_ARG;
    if (ne0 <= 0 || ne1 <= 0 || ne0 % 256 != 0)
        return TERN_ERR_SHAPE;
    const size_t bb =
        type == TERN_TYPE_TQ2_0 ? sizeof(struct tern_block_tq2_0) : sizeof(struct tern_block_tq1_0);
    const int64_t row_bytes = tern_ternary_k_pad(ne0) / 4;
    uint8_t *out = dst;
    uint8_t codes[256];
    for (int64_t r = 0; r < ne1; r++) {
        for (int64_t b = 0; b < ne0 / 256; b++) {
            bool any = false;
            for (int e = 0; e < 256; e++) {
                codes[e] = (uint8_t)tern_packed_get(packed + r * row_bytes, 256 * b + e);
                any |= codes[e] != 1;
            }
            uint8_t *blk = out + (size_t)(r * (ne0 / 256) + b) * bb;
            const float d = any ? fabsf(scale) : 0.0f;
            /* a negative scale flips every sign: keep W = t*scale with d = |scale| */
            if (scale < 0.0f)
                for (int e = 0; e < 256; e++)
                    codes[e] = (uint8_t)(2 - codes[e]);
            if (type == TERN_TYPE_TQ2_0)
                tern_tq2_0_encode((struct tern_block_tq2_0 *)blk, codes, d);
            else
                tern_tq1_0_encode((struct tern_block_tq1_0 *)blk, codes, d);
        }
    }
    return TERN_OK;
}

/* ---- ternarization ---- */

static float float_at(uint32_t type, const void *data, int64_t i) {
    const uint8_t *p = data;
    if (type == TERN_TYPE_F32) {
        uint32_t bits;
        memcpy(&bits, p + 4 * i, 4);
        return tern_f32_from_bits(bits);
    }
    const uint16_t h = u16_at(p + 2 * i);
    return type == TERN_TYPE_F16 ? tern_fp16_to_fp32(h) : tern_bf16_to_fp32(h);
}

/* Absmean codes of ne1 rows of ne0 floats with scale s: t = clamp(round_half_even(w/s), -1, 1). */
static void absmean_pack(uint8_t *packed, uint32_t type, const void *w, int64_t ne0, int64_t ne1, float s) {
    const int64_t row_bytes = tern_ternary_k_pad(ne0) / 4;
    tern_packed_fill_zero(packed, ne0, ne1);
    for (int64_t r = 0; r < ne1; r++) {
        for (int64_t j = 0; j < ne0; j++) {
            /* torch.round is half to even, as is nearbyintf in the default rounding mode */
            float t = nearbyintf(float_at(type, w, r * ne0 + j) / s);
            t = fminf(fmaxf(t, -1.0f), 1.0f);
            tern_packed_set(packed + r * row_bytes, j, (int)t + 1);
        }
    }
}

static float absmean_scale(double sum_abs, int64_t n) {
    return fmaxf(n > 0 ? (float)(sum_abs / (double)n) : 0.0f, 1e-5f);
}

tern_status tern_float_to_packed(uint8_t *dst, float *scale, bool *absmean, uint32_t type, const void *data,
                                 uint64_t nbytes, int64_t ne0, int64_t ne1, const char *name) {
    const uint64_t esize = type == TERN_TYPE_F32 ? 4 : 2;
    if ((type != TERN_TYPE_F32 && type != TERN_TYPE_F16 && type != TERN_TYPE_BF16) || ne0 <= 0 || ne1 <= 0) {
        tern_log_error("tensor %s: cannot ternarize type %u of shape [%lld, %lld]", name_or(name),
                       (unsigned)type, (long long)ne0, (long long)ne1);
        return TERN_ERR_ARG;
    }
    if ((uint64_t)ne0 > UINT64_MAX / esize / (uint64_t)ne1 ||
        nbytes < (uint64_t)ne0 * (uint64_t)ne1 * esize) {
        tern_log_error("tensor %s: float data is %llu bytes, too short for [%lld, %lld]", name_or(name),
                       (unsigned long long)nbytes, (long long)ne0, (long long)ne1);
        return TERN_ERR_FORMAT;
    }
    /* pass 1: max|w|, sum|w|, and whether every value is 0 or +-c for one c */
    const int64_t n = ne0 * ne1;
    double sum = 0.0;
    float c = 0.0f, max_abs = 0.0f;
    bool ternary = true;
    for (int64_t i = 0; i < n; i++) {
        const float a = fabsf(float_at(type, data, i));
        if (!isfinite(a)) {
            tern_log_error("tensor %s: value %lld is not finite", name_or(name), (long long)i);
            return TERN_ERR_FORMAT;
        }
        sum += a;
        max_abs = fmaxf(max_abs, a);
        if (a < 1e-6f)
            continue;
        if (c == 0.0f)
            c = a;
        ternary &= a == c;
    }
    *absmean = !ternary;
    if (!ternary) {
        *scale = absmean_scale(sum, n);
        absmean_pack(dst, type, data, ne0, ne1, *scale);
        return TERN_OK;
    }
    /* bitnet.cpp's I2_S quantizer: 0 where |w| < 1e-6, else sign(w); scale = max|w| */
    const int64_t row_bytes = tern_ternary_k_pad(ne0) / 4;
    tern_packed_fill_zero(dst, ne0, ne1);
    for (int64_t r = 0; r < ne1; r++)
        for (int64_t j = 0; j < ne0; j++) {
            const float w = float_at(type, data, r * ne0 + j);
            tern_packed_set(dst + r * row_bytes, j, fabsf(w) < 1e-6f ? 1 : w > 0.0f ? 2 : 0);
        }
    *scale = max_abs;
    return TERN_OK;
}

void tern_ternarize(uint8_t *packed, float *scale, const float *w, int64_t n_out, int64_t k) {
    double sum = 0.0;
    for (int64_t i = 0; i < n_out * k; i++)
        sum += fabs((double)w[i]);
    *scale = absmean_scale(sum, n_out * k);
    absmean_pack(packed, TERN_TYPE_F32, w, k, n_out, *scale);
}
