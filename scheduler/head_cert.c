/* The certified head's shared parts (see head_cert.h): the shadow's layout and build with its bound
 * coefficients, the input's quantization and norms, and the candidate selection. */
#include "head_cert.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "fp16.h"
#include "types.h"

bool tern_head_cert_supported(const struct tern_tensor *head) {
    return (head->type == TERN_TYPE_F16 || head->type == TERN_TYPE_BF16 || head->type == TERN_TYPE_F32) &&
           head->ne0 > 0 && head->ne0 % TERN_HEAD_SHADOW_UNIT == 0;
}

static size_t up64(size_t v) {
    return (v + 63) / 64 * 64;
}

static int64_t n_blocks_of(int64_t n) {
    return (n + TERN_HEAD_SHADOW_BLOCK - 1) / TERN_HEAD_SHADOW_BLOCK;
}

size_t tern_head_shadow_bytes(int64_t n, int64_t n_rows) {
    const size_t rows = (size_t)n_rows;
    return up64(rows * (size_t)n) + up64(rows * (size_t)n_blocks_of(n) * sizeof(float)) +
           2 * up64(rows * sizeof(float));
}

size_t tern_head_shadow_row_bytes(int64_t n) {
    return (size_t)n + ((size_t)n_blocks_of(n) + 2) * sizeof(float);
}

void tern_head_shadow_view(struct tern_head_shadow *s, void *blob, int64_t n, int64_t n_rows) {
    const size_t rows = (size_t)n_rows, nb = (size_t)n_blocks_of(n);
    uint8_t *p = blob;
    s->q = p;
    p += up64(rows * (size_t)n);
    s->d = (float *)(void *)p;
    p += up64(rows * nb * sizeof(float));
    s->coef = (float *)(void *)p;
    p += up64(rows * sizeof(float));
    s->dcoef = (float *)(void *)p;
    s->n = n;
    s->n_rows = n_rows;
    s->n_blocks = (int64_t)nb;
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

/* The scale of a block whose largest magnitude is amax, quantized to levels steps each side: 0 where
 * it would not be a normal float, so 1 / scale stays finite. */
static float block_scale(float amax, float levels) {
    const float d = amax / levels;
    return d >= FLT_MIN && d <= FLT_MAX ? d : 0.0f;
}

/* round(t * inv) clamped to [-lim, lim], halves away from zero, NaN 0: written without libm calls
 * (the shadow build runs it 328M times for 2B-4T) */
static int quantize_one(float t, float inv, float lim) {
    t *= inv;
    t = t > lim ? lim : t < -lim ? -lim : t == t ? t : 0.0f;
    return (int)(t + copysignf(0.5f, t));
}

void tern_head_shadow_rows(void *blob, const struct tern_tensor *head, int64_t row_begin, int64_t row_end) {
    struct tern_head_shadow s;
    tern_head_shadow_view(&s, blob, head->ne0, head->ne1);
    const int64_t n = head->ne0;
    for (int64_t r = row_begin; r < row_end; r++) {
        const uint8_t *row = (const uint8_t *)head->data + (size_t)r * head->row_bytes;
        uint8_t *q = s.q + (size_t)r * (size_t)n;
        /* e and v in double are exact (v = d q: 24 + 8 bits; e: w and v of about the same
         * exponent); the squares and their sums err by far less than tern_head_cert_coef allows */
        double se = 0.0, sw = 0.0, sv = 0.0;
        for (int64_t b = 0; b < s.n_blocks; b++) {
            const int64_t i0 = b * TERN_HEAD_SHADOW_BLOCK;
            const int len = (int)(n - i0 < TERN_HEAD_SHADOW_BLOCK ? n - i0 : TERN_HEAD_SHADOW_BLOCK);
            float w[TERN_HEAD_SHADOW_BLOCK], amax = 0.0f;
            weights_at(w, row, head->type, i0, len);
            for (int i = 0; i < len; i++)
                amax = fabsf(w[i]) > amax ? fabsf(w[i]) : amax;
            const float d = block_scale(amax, TERN_HEAD_Q_MAX), inv_d = d > 0.0f ? 1.0f / d : 0.0f;
            s.d[r * s.n_blocks + b] = d;
            for (int i = 0; i < len; i++) {
                const int qi = quantize_one(w[i], inv_d, TERN_HEAD_Q_MAX);
                q[i0 + i] = (uint8_t)(qi + 128);
                const double v = (double)d * qi, e = (double)w[i] - v;
                se += e * e;
                sw += (double)w[i] * w[i];
                sv += v * v;
            }
        }
        tern_head_cert_coef(&s, r, se, sw, sv);
    }
}

void tern_head_cert_coef(const struct tern_head_shadow *s, int64_t r, double se, double sw, double sv) {
    const double u = 0x1p-24, m = (double)s->n + 64.0, g = m * u / (1.0 - m * u);
    const double tiny = (double)s->n * 0x1p-100; /* squares that underflowed */
    se = se * (1.0 + 1e-5) + tiny;
    sw = sw * (1.0 + 1e-5) + tiny;
    sv = sv * (1.0 + 1e-5) + tiny;
    if (!isfinite(sw) || !isfinite(se) || !isfinite(sv)) {
        s->coef[r] = s->dcoef[r] = INFINITY; /* inf or NaN weights, or squares past f32: a candidate */
        return;
    }
    const double nw = sqrt(sw), nv = sqrt(sv), ne = sqrt(se);
    /* 4u per norm: the rounding of the selection's own S -/+ (c |x| + c' |delta|), with
     * |S| <= |v| (|x| + |delta|) (1 + g) */
    const double c = ne * (1.0 + 4.0 * u) + (g + 4.0 * u) * (nw + nv), c2 = (1.0 + g + 4.0 * u) * nv;
    s->coef[r] = float_up(c * (1.0 + 1e-9) * (1.0 + 0x1p-20));
    s->dcoef[r] = float_up(c2 * (1.0 + 1e-9) * (1.0 + 0x1p-20));
}

void tern_head_quantize_x(struct tern_head_xq *xq, const float *x, int64_t n) {
    const int64_t nb = n_blocks_of(n);
    double sd = 0.0;
    for (int64_t b = 0; b < nb; b++) {
        const int64_t i0 = b * TERN_HEAD_SHADOW_BLOCK;
        const int64_t len = n - i0 < TERN_HEAD_SHADOW_BLOCK ? n - i0 : TERN_HEAD_SHADOW_BLOCK;
        float amax = 0.0f;
        for (int64_t i = i0; i < i0 + len; i++)
            amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        const float s = block_scale(amax, TERN_HEAD_P_MAX), inv = s > 0.0f ? 1.0f / s : 0.0f, t = s / 128.0f;
        xq->t[b] = t;
        for (int64_t i = i0; i < i0 + len; i++) {
            const int p = quantize_one(x[i], inv, TERN_HEAD_P_MAX),
                      p2 = quantize_one(x[i] - s * (float)p, 128.0f * inv, TERN_HEAD_P2_MAX);
            xq->p[i] = (int8_t)p;
            xq->p2[i] = (int8_t)p2;
            /* t P: 24 + 14 bits, and x within a factor 2^8 of it or P = 0: exact in double */
            const double delta = (double)x[i] - (double)t * (128 * p + p2);
            sd += delta * delta;
        }
    }
    memset(xq->p + n, 0, (size_t)(nb * TERN_HEAD_SHADOW_BLOCK - n));
    memset(xq->p2 + n, 0, (size_t)(nb * TERN_HEAD_SHADOW_BLOCK - n));
    xq->x_norm = tern_head_x_norm(x, n);
    xq->d_norm = float_up(sqrt(sd) * (1.0 + 1e-9) + (double)n * 0x1p-100);
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

/* Rows per chunk of tern_head_cert_select's passes. */
enum { SELECT_CHUNK = 64 };

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

int64_t tern_head_cert_select(int32_t *cand, float *logits, float *heap, const struct tern_head_shadow *s,
                              float x_norm, float d_norm, const struct tern_head_request *req) {
    const int64_t n_rows = s->n_rows, k = req->top_k < n_rows ? req->top_k : n_rows;
    if (k < 1 || !isfinite(x_norm) || !isfinite(d_norm) || !(req->repeat_penalty > 0.0f))
        return -1;
    /* pass 1: logits[r] <- upper bound; the k largest lower bounds in the heap. The absolute 1e-30
     * covers products that underflow (flushed to zero on some OpenCL devices). Rows go in chunks
     * whose bounds are branch-free loops the compiler vectorizes; only a chunk whose largest lower
     * bound can enter the heap is walked row by row (a few of 2004 on 2B-4T once the heap is full):
     * 180 -> 64 us a token for 128256 rows. */
    int64_t n_heap = 0, j = 0;
    int bad = 0;
    for (int64_t r0 = 0; r0 < n_rows; r0 += SELECT_CHUNK) {
        const int64_t m = n_rows - r0 < SELECT_CHUNK ? n_rows - r0 : SELECT_CHUNK;
        const float *c = s->coef + r0, *dc = s->dcoef + r0;
        float *hi = logits + r0, lo[SELECT_CHUNK];
        for (int64_t i = 0; i < m; i++) {
            const float b = c[i] * x_norm + dc[i] * d_norm + 1e-30f, v = hi[i];
            /* NaN, or a logit past f32 (an overflow the bound does not cover) */
            bad |= !(fabsf(v) < INFINITY) | !(v - b <= v + b);
            lo[i] = v - b;
            hi[i] = v + b;
        }
        for (; j < req->n_penalized && req->penalized[j] < r0 + m; j++) {
            const int64_t i = req->penalized[j] - r0;
            if (i < 0)
                continue;
            const float sub = req->penalty_sub ? req->penalty_sub[j] : 0.0f;
            lo[i] = penalize(lo[i], req->repeat_penalty) - sub;
            hi[i] = penalize(hi[i], req->repeat_penalty) - sub;
            bad |= !(lo[i] <= hi[i]);
        }
        if (bad)
            return -1;
        if (req->allowed) /* rows the sampler will not take: below every other, never candidates */
            for (int64_t i = 0; i < m; i++)
                if (!req->allowed[r0 + i])
                    lo[i] = hi[i] = -INFINITY;
        if (n_heap == k) {
            const float level = heap[0];
            int enters = 0;
            for (int64_t i = 0; i < m; i++)
                enters |= lo[i] > level;
            if (!enters)
                continue;
        }
        for (int64_t i = 0; i < m; i++)
            if (n_heap < k) {
                heap[n_heap] = lo[i];
                sift_up(heap, n_heap++);
            } else if (lo[i] > heap[0]) {
                heap[0] = lo[i];
                sift_down(heap, k, 0);
            }
    }
    /* pass 2: a row whose upper bound is below k lower bounds is outside the top k (ties included:
     * its exact logit is strictly below k others); chunks without one are skipped whole. With fewer
     * than k rows allowed the threshold is -INFINITY, and the rows not allowed stay out. */
    const float threshold = heap[0];
    const int64_t most = n_rows / 8 + 2 * k;
    int64_t n = 0;
    for (int64_t r0 = 0; r0 < n_rows; r0 += SELECT_CHUNK) {
        const int64_t m = n_rows - r0 < SELECT_CHUNK ? n_rows - r0 : SELECT_CHUNK;
        int any = 0;
        for (int64_t i = 0; i < m; i++)
            any |= (logits[r0 + i] >= threshold) & (logits[r0 + i] > -INFINITY);
        if (!any)
            continue;
        for (int64_t i = 0; i < m; i++)
            if (logits[r0 + i] >= threshold && logits[r0 + i] > -INFINITY) {
                if (n >= most)
                    return -1;
                cand[n++] = (int32_t)(r0 + i);
            }
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
