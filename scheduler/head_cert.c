/* The certified head's shared parts (see head_cert.h): the shadow build with its bound
 * coefficients, the norm of the input and the candidate selection. */
#include "head_cert.h"

#include <math.h>
#include <string.h>

#include "fp16.h"
#include "types.h"

bool tern_head_cert_supported(const struct tern_tensor *head) {
    return (head->type == TERN_TYPE_F16 || head->type == TERN_TYPE_BF16 || head->type == TERN_TYPE_F32) &&
           head->ne0 > 0 && head->ne0 % TERN_HEAD_SHADOW_BLOCK == 0;
}

size_t tern_head_shadow_row_bytes(int64_t ne0) {
    return (size_t)(ne0 / TERN_HEAD_SHADOW_BLOCK) * TERN_HEAD_SHADOW_BLOCK_BYTES;
}

/* Weights [i0, i0 + n) of a row as f32 (exact for all three types). */
static void weights_at(float *w, const uint8_t *row, uint32_t type, int64_t i0, int n) {
    if (type == TERN_TYPE_F32) {
        memcpy(w, row + 4 * i0, (size_t)n * sizeof(float));
        return;
    }
    const uint8_t *p = row + 2 * i0;
    for (int i = 0; i < n; i++) {
        const uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
        w[i] = type == TERN_TYPE_F16 ? tern_fp16_to_fp32(h) : tern_bf16_to_fp32(h);
    }
}

/* The smallest float >= v (v >= 0). */
static float float_up(double v) {
    float f = (float)v;
    if ((double)f < v)
        f = nextafterf(f, INFINITY);
    return f;
}

void tern_head_shadow_rows(uint8_t *shadow, float *coef, const struct tern_tensor *head, int64_t row_begin,
                           int64_t row_end) {
    const int64_t n = head->ne0, nb = n / TERN_HEAD_SHADOW_BLOCK;
    const size_t out_bytes = tern_head_shadow_row_bytes(n);
    for (int64_t r = row_begin; r < row_end; r++) {
        const uint8_t *row = (const uint8_t *)head->data + (size_t)r * head->row_bytes;
        uint8_t *out = shadow + (size_t)r * out_bytes;
        /* Sums of squares: per block in f32 over 8 lanes, blocks summed in double. Every f32
         * operation here errs by at most u relative (e = w - d q is exact for F16/BF16 weights and
         * one rounding for F32), < 1e-5 over a block's chain, covered by tern_head_cert_coef. */
        double se = 0.0, sw = 0.0, sv = 0.0;
        for (int64_t b = 0; b < nb; b++) {
            float w[TERN_HEAD_SHADOW_BLOCK], amax = 0.0f;
            weights_at(w, row, head->type, b * TERN_HEAD_SHADOW_BLOCK, TERN_HEAD_SHADOW_BLOCK);
            for (int i = 0; i < TERN_HEAD_SHADOW_BLOCK; i++)
                amax = fabsf(w[i]) > amax ? fabsf(w[i]) : amax;
            uint16_t dh = tern_fp32_to_fp16(amax / 127.0f);
            float d = tern_fp16_to_fp32(dh);
            if (!(d > 0.0f) || !isfinite(d)) { /* an all-zero, non-finite or tiny block: q = 0 */
                dh = 0;
                d = 0.0f;
            }
            const float inv_d = d > 0.0f ? 1.0f / d : 0.0f;
            uint8_t *blk = out + (size_t)b * TERN_HEAD_SHADOW_BLOCK_BYTES;
            blk[0] = (uint8_t)(dh & 0xff);
            blk[1] = (uint8_t)(dh >> 8);
            float le[8] = {0}, lw[8] = {0}, lv[8] = {0};
            for (int i = 0; i < TERN_HEAD_SHADOW_BLOCK; i++) {
                /* any q keeps the bound rigorous (e is measured); nearest keeps it tight. Written
                 * without libm calls (this loop runs 328M times for 2B-4T); a NaN goes to 0 */
                float t = w[i] * inv_d;
                t = t > 127.0f ? 127.0f : t < -127.0f ? -127.0f : t == t ? t : 0.0f;
                const int q = (int)(t + copysignf(0.5f, t));
                blk[2 + i] = (uint8_t)(int8_t)q;
                const float v = d * (float)q, e = w[i] - v; /* d q: 11 + 8 bits, exact */
                le[i % 8] += e * e;
                lw[i % 8] += w[i] * w[i];
                lv[i % 8] += v * v;
            }
            for (int l = 0; l < 8; l++) {
                se += le[l];
                sw += lw[l];
                sv += lv[l];
            }
        }
        coef[r] = tern_head_cert_coef(se, sw, sv, n);
    }
}

float tern_head_cert_coef(double se, double sw, double sv, int64_t n) {
    const double u = 0x1p-24, m = (double)n + 64.0, g = m * u / (1.0 - m * u);
    se = se * (1.0 + 1e-5) + (double)n * 0x1p-100;
    sw = sw * (1.0 + 1e-5) + (double)n * 0x1p-100;
    sv = sv * (1.0 + 1e-5) + (double)n * 0x1p-100;
    if (!isfinite(sw) || !isfinite(se) || !isfinite(sv))
        return INFINITY; /* inf or NaN weights, or squares past f32: always a candidate */
    const double nw = sqrt(sw), nv = sqrt(sv), ne = sqrt(se);
    /* 4u per norm: the rounding of the selection's own a -/+ c |x| (|a| <= |v| |x| (1 + g)) */
    const double c = ne * (1.0 + 4.0 * u) + (g + 4.0 * u) * (nw + nv);
    return float_up(c * (1.0 + 1e-9) * (1.0 + 0x1p-20));
}

float tern_head_x_norm(const float *x, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)x[i] * (double)x[i];
    return float_up(sqrt(s) * (1.0 + 1e-9));
}

static float penalize(float v, float pen) {
    return v > 0.0f ? v / pen : v * pen; /* the sampler's map, monotonic for pen > 0 */
}

/* heap[0 .. n) is a min-heap of the largest lower bounds seen so far */
static void sift_down(float *heap, int64_t n, int64_t i) {
    const float v = heap[i];
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap[c + 1] < heap[c])
            c++;
        if (heap[c] >= v)
            break;
        heap[i] = heap[c];
        i = c;
    }
    heap[i] = v;
}

static void sift_up(float *heap, int64_t i) {
    const float v = heap[i];
    while (i > 0 && heap[(i - 1) / 2] > v) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = v;
}

int64_t tern_head_cert_select(int32_t *cand, float *logits, float *heap, const float *coef, float x_norm,
                              int64_t n_rows, const struct tern_head_request *req) {
    const int64_t k = req->top_k < n_rows ? req->top_k : n_rows;
    if (k < 1 || !isfinite(x_norm) || !(req->repeat_penalty > 0.0f))
        return -1;
    /* pass 1: logits[r] <- upper bound; the k largest lower bounds in the heap. The absolute 1e-30
     * covers products that underflow (flushed to zero on some OpenCL devices). */
    int64_t n_heap = 0, j = 0;
    for (int64_t r = 0; r < n_rows; r++) {
        const float b = coef[r] * x_norm + 1e-30f;
        float lo = logits[r] - b, hi = logits[r] + b;
        if (j < req->n_penalized && req->penalized[j] == r) {
            lo = penalize(lo, req->repeat_penalty);
            hi = penalize(hi, req->repeat_penalty);
            j++;
        }
        if (!(lo <= hi))
            return -1; /* NaN */
        logits[r] = hi;
        if (n_heap < k) {
            heap[n_heap] = lo;
            sift_up(heap, n_heap++);
        } else if (lo > heap[0]) {
            heap[0] = lo;
            sift_down(heap, k, 0);
        }
    }
    /* pass 2: a row whose upper bound is below k lower bounds is outside the top k (ties included:
     * its exact logit is strictly below k others) */
    const float threshold = heap[0];
    const int64_t most = n_rows / 8 + 2 * k;
    int64_t n = 0;
    for (int64_t r = 0; r < n_rows; r++)
        if (logits[r] >= threshold) {
            if (n >= most)
                return -1;
            cand[n++] = (int32_t)r;
        }
    return n;
}

void tern_head_cert_count(const struct tern_head_request *req, int64_t n_rows, bool full) {
    struct tern_head_stats *s = req->stats;
    if (!s)
        return;
    s->n_tokens++;
    s->n_rows += (uint64_t)n_rows;
    s->n_over_64 += n_rows > 64;
    s->n_full += full;
}
