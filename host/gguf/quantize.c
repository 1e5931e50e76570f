/* Row quantizers f32 -> F16, BF16, Q8_0, Q6_K, Q4_K. Reference quality, not speed: the k-quants
 * search a few candidate scales per sub-block and keep the least-squares best, in the spirit of
 * ggml's make_qx_quants / make_qkx2_quants (unweighted). */
#include "quantize.h"

#include <math.h>
#include <string.h>

#include "../../scheduler/fp16.h"
#include "../../scheduler/types.h"

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static int nearest(float v) {
    return (int)lrintf(v);
}

static int clampi(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

void tern_quantize_row_f16(void *dst, const float *x, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++)
        put_u16(p + 2 * i, tern_fp32_to_fp16(x[i]));
}

void tern_quantize_row_bf16(void *dst, const float *x, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++)
        put_u16(p + 2 * i, tern_fp32_to_bf16(x[i]));
}

void tern_quantize_row_q8_0(struct tern_block_q8_0 *dst, const float *x, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + 32 * b;
        float amax = 0.0f;
        for (int i = 0; i < 32; i++)
            amax = fmaxf(amax, fabsf(xb[i]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_u16(dst[b].d, tern_fp32_to_fp16(d));
        for (int i = 0; i < 32; i++)
            dst[b].qs[i] = (int8_t)clampi((int)roundf(xb[i] * id), -127, 127);
    }
}

/* Symmetric quantization of x[n] to L in [-nmax, nmax-1]: tries scales around max/nmax (max being
 * the signed element of largest magnitude, mapped to -nmax so the asymmetric range is used fully)
 * and keeps the least-squares scale with the smallest error. Returns the scale (x ~ scale*L). */
static float quant_symmetric(int8_t *L, const float *x, int n, int nmax) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax < 1e-30f) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float best_scale = 0.0f, best_err = INFINITY;
    for (int is = -9; is <= 9; is++) {
        const float iscale = -((float)nmax + 0.1f * (float)is) / max;
        double sum_lx = 0.0, sum_ll = 0.0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
            sum_lx += (double)l * x[i];
            sum_ll += (double)l * l;
        }
        if (sum_ll <= 0.0)
            continue;
        const float scale = (float)(sum_lx / sum_ll);
        /* error of the fit with this scale, re-rounding each element to it */
        double err = 0.0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(nearest(x[i] / scale), -nmax, nmax - 1);
            const double e = (double)x[i] - (double)scale * l;
            err += e * e;
        }
        if (err < best_err) {
            best_err = (float)err;
            best_scale = scale;
        }
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(best_scale != 0.0f ? clampi(nearest(x[i] / best_scale), -nmax, nmax - 1) : 0);
    return best_scale;
}

void tern_quantize_row_q6_k(struct tern_block_q6_k *dst, const float *x, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++) {
        const float *xb = x + 256 * b;
        struct tern_block_q6_k *y = &dst[b];
        int8_t L[256];
        float scales[16];
        float amax = 0.0f;
        for (int j = 0; j < 16; j++) {
            scales[j] = quant_symmetric(L + 16 * j, xb + 16 * j, 16, 32);
            amax = fmaxf(amax, fabsf(scales[j]));
        }
        const float d = amax / 127.0f;
        put_u16(y->d, tern_fp32_to_fp16(d));
        const float d16 = tern_fp16_to_fp32(tern_fp32_to_fp16(d)); /* what a reader will use */
        for (int j = 0; j < 16; j++) {
            const int sc = d16 != 0.0f ? clampi(nearest(scales[j] / d16), -128, 127) : 0;
            y->scales[j] = (int8_t)sc;
            const float ds = d16 * (float)sc;
            for (int i = 0; i < 16; i++) {
                const int q = ds != 0.0f ? clampi(nearest(xb[16 * j + i] / ds), -32, 31) : 0;
                L[16 * j + i] = (int8_t)(q + 32); /* 0..63 */
            }
        }
        for (int h = 0; h < 2; h++) {
            for (int l = 0; l < 32; l++) {
                const int q0 = L[128 * h + l], q1 = L[128 * h + 32 + l];
                const int q2 = L[128 * h + 64 + l], q3 = L[128 * h + 96 + l];
                y->ql[64 * h + l] = (uint8_t)((q0 & 0x0f) | ((q2 & 0x0f) << 4));
                y->ql[64 * h + 32 + l] = (uint8_t)((q1 & 0x0f) | ((q3 & 0x0f) << 4));
                y->qh[32 * h + l] =
                    (uint8_t)((q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) | ((q3 >> 4) << 6));
            }
        }
    }
}

/* Asymmetric quantization of x[n] to L in [0, nmax]: x ~ scale*L - min with min >= 0. Tries grid
 * steps around (max-min)/nmax and refits (scale, min) by least squares for each. */
static void quant_asymmetric(float *out_scale, float *out_min, const float *x, int n, int nmax) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    if (lo > 0.0f) /* the min is stored as a non-negative offset subtracted from the value */
        lo = 0.0f;
    if (hi <= lo) {
        *out_scale = 0.0f;
        *out_min = -lo;
        return;
    }
    float best_scale = (hi - lo) / (float)nmax, best_min = lo;
    double best_err = INFINITY;
    for (int is = -10; is <= 10; is++) {
        const float iscale = ((float)nmax + 0.1f * (float)is) / (hi - lo);
        double sl = 0.0, sll = 0.0, sx = 0.0, slx = 0.0;
        int Lq[256];
        for (int i = 0; i < n; i++) {
            Lq[i] = clampi(nearest(iscale * (x[i] - lo)), 0, nmax);
            sl += Lq[i];
            sll += (double)Lq[i] * Lq[i];
            sx += x[i];
            slx += (double)Lq[i] * x[i];
        }
        const double det = n * sll - sl * sl;
        if (det <= 0.0)
            continue;
        double scale = (n * slx - sl * sx) / det;
        double mn = (sll * sx - sl * slx) / det; /* x ~ scale*L + mn */
        if (mn > 0.0) {
            mn = 0.0;
            scale = slx / sll;
        }
        double err = 0.0;
        for (int i = 0; i < n; i++) {
            const double e = scale * Lq[i] + mn - x[i];
            err += e * e;
        }
        if (err < best_err) {
            best_err = err;
            best_scale = (float)scale;
            best_min = (float)mn;
        }
    }
    *out_scale = best_scale;
    *out_min = -best_min;
}

void tern_quantize_row_q4_k(struct tern_block_q4_k *dst, const float *x, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++) {
        const float *xb = x + 256 * b;
        struct tern_block_q4_k *y = &dst[b];
        float scales[8], mins[8], max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < 8; j++) {
            quant_asymmetric(&scales[j], &mins[j], xb + 32 * j, 32, 15);
            max_scale = fmaxf(max_scale, scales[j]);
            max_min = fmaxf(max_min, mins[j]);
        }
        const uint16_t dh = tern_fp32_to_fp16(max_scale / 63.0f);
        const uint16_t mh = tern_fp32_to_fp16(max_min / 63.0f);
        put_u16(y->d, dh);
        put_u16(y->dmin, mh);
        const float d = tern_fp16_to_fp32(dh), dmin = tern_fp16_to_fp32(mh);
        int ls[8], lm[8];
        for (int j = 0; j < 8; j++) {
            ls[j] = d > 0.0f ? clampi(nearest(scales[j] / d), 0, 63) : 0;
            lm[j] = dmin > 0.0f ? clampi(nearest(mins[j] / dmin), 0, 63) : 0;
        }
        memset(y->scales, 0, sizeof y->scales);
        for (int j = 0; j < 4; j++) {
            y->scales[j] = (uint8_t)ls[j];
            y->scales[j + 4] = (uint8_t)lm[j];
        }
        for (int j = 4; j < 8; j++) {
            y->scales[j + 4] = (uint8_t)((ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4));
            y->scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            y->scales[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
        uint8_t L[256];
        for (int j = 0; j < 8; j++) {
            const float dd = d * (float)ls[j], dm = dmin * (float)lm[j];
            for (int i = 0; i < 32; i++)
                L[32 * j + i] = (uint8_t)(dd > 0.0f ? clampi(nearest((xb[32 * j + i] + dm) / dd), 0, 15) : 0);
        }
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++)
                y->qs[32 * g + l] = (uint8_t)(L[64 * g + l] | (L[64 * g + 32 + l] << 4));
    }
}

tern_status tern_quantize_row(void *dst, uint32_t type, const float *x, int64_t n) {
    const struct tern_type_traits *t = tern_type_traits(type);
    if (!t || t->cls != TERN_CLASS_FLOAT)
        return TERN_ERR_UNSUPPORTED;
    if (n < 0 || n % t->block_size != 0)
        return TERN_ERR_SHAPE;
    switch (type) {
    case TERN_TYPE_F32:
        memcpy(dst, x, (size_t)n * sizeof(float));
        return TERN_OK;
    case TERN_TYPE_F16:
        tern_quantize_row_f16(dst, x, n);
        return TERN_OK;
    case TERN_TYPE_BF16:
        tern_quantize_row_bf16(dst, x, n);
        return TERN_OK;
    case TERN_TYPE_Q8_0:
        tern_quantize_row_q8_0(dst, x, n);
        return TERN_OK;
    case TERN_TYPE_Q6_K:
        tern_quantize_row_q6_k(dst, x, n);
        return TERN_OK;
    case TERN_TYPE_Q4_K:
        tern_quantize_row_q4_k(dst, x, n);
        return TERN_OK;
    default:
        return TERN_ERR_UNSUPPORTED;
    }
}
