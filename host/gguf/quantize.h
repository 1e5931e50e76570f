/* f32 -> F16 / BF16 / Q8_0 / Q6_K / Q4_K row quantizers (reference quality), for writers such as the
 * model maker and the converter. The block layouts are ggml's; cpu/ref_dequant.c decodes them. */
#ifndef TERN_HOST_QUANTIZE_H
#define TERN_HOST_QUANTIZE_H

#include <assert.h>
#include <stdint.h>

#include "../../scheduler/status.h"

/* Every field is bytes (f16 as two little-endian bytes) so a block can sit at any address. */

/* Q8_0: 32 weights, value = d * qs[i]. */
struct tern_block_q8_0 {
    uint8_t d[2];
    int8_t qs[32];
};
static_assert(sizeof(struct tern_block_q8_0) == 34, "Q8_0 block is 34 bytes");

/* Q4_K: 256 weights in 8 sub-blocks of 32; value = d*sc[j]*q - dmin*m[j], q 0..15, sc/m 6-bit.
 * scales[]: sub-blocks 0-3 in the low 6 bits of bytes j (sc) and j+4 (m); sub-blocks 4-7 in the
 * nibbles of byte j+4 (sc low, m high) plus the top 2 bits of bytes j-4 (sc) and j (m).
 * qs[]: four 32-byte groups; group g holds sub-block 2g in low nibbles, 2g+1 in high nibbles. */
struct tern_block_q4_k {
    uint8_t d[2];
    uint8_t dmin[2];
    uint8_t scales[12];
    uint8_t qs[128];
};
static_assert(sizeof(struct tern_block_q4_k) == 144, "Q4_K block is 144 bytes");

/* Q6_K: 256 weights in 16 sub-blocks of 16; value = d*scales[e/16]*(q-32), q 0..63 split into
 * 4 low bits (ql) and 2 high bits (qh). Half h (128 weights): element 128h + 32k + l (k 0..3,
 * l 0..31) has its low nibble in ql[64h + l + 32*(k%2)] (low nibble for k < 2, high for k >= 2)
 * and its high bits in qh[32h + l] at bit shift 2k. */
struct tern_block_q6_k {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint8_t d[2];
};
static_assert(sizeof(struct tern_block_q6_k) == 210, "Q6_K block is 210 bytes");

/* n halves, little-endian, round to nearest even. */
void tern_quantize_row_f16(void *dst, const float *x, int64_t n);
void tern_quantize_row_bf16(void *dst, const float *x, int64_t n);
/* n % 32 == 0: d = max|x|/127, q = round(x/d) (ggml's reference). */
void tern_quantize_row_q8_0(struct tern_block_q8_0 *dst, const float *x, int64_t n);
/* n % 256 == 0: per sub-block least-squares scale search, then 8-bit sub-block scales. */
void tern_quantize_row_q6_k(struct tern_block_q6_k *dst, const float *x, int64_t n);
/* n % 256 == 0: per sub-block least-squares (scale, min) search, then 6-bit scales and mins. */
void tern_quantize_row_q4_k(struct tern_block_q4_k *dst, const float *x, int64_t n);

/* Quantize one row of n floats to `type` (F32, F16, BF16, Q8_0, Q6_K, Q4_K); dst holds the row's
 * bytes. TERN_ERR_UNSUPPORTED for other types, TERN_ERR_SHAPE when n is not a multiple of the
 * type's block size. */
tern_status tern_quantize_row(void *dst, uint32_t type, const float *x, int64_t n);

#endif
