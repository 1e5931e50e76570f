/* Ternary weight formats on the host: the shared packed format (docs/architecture.md#packed-weights), the
 * I2_S tensor stream of bitnet.cpp files, llama.cpp's TQ2_0 and TQ1_0 blocks, and absmean ternarization of
 * float weights (docs/formats.md). Readers validate file data and return tern_status; writers
 * produce bytes that bitnet.cpp / llama.cpp read.
 *
 * Codes everywhere: 0 = -1, 1 = 0, 2 = +1 (code = t + 1). */
#ifndef TERN_HOST_TERNARY_H
#define TERN_HOST_TERNARY_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

#include "../../scheduler/device.h"
#include "../../scheduler/status.h"

/* One TQ2_0 block: 256 weights. Element e is in qs[32*(e/128) + e%32] at bit shift
 * 2*((e%128)/32), low bits first. */
struct tern_block_tq2_0 {
    uint8_t qs[64];
    uint8_t d[2]; /* f16 scale, little-endian; value = (code-1)*d */
};
static_assert(sizeof(struct tern_block_tq2_0) == 66, "TQ2_0 block is 66 bytes");

/* One TQ1_0 block: 256 weights as base-3 fixed-point bytes (docs/formats.md#tq1_0). */
struct tern_block_tq1_0 {
    uint8_t qs[48]; /* 5 digits per byte: elements 0..159 (bytes 0..31), 160..239 (bytes 32..47) */
    uint8_t qh[4];  /* 4 digits per byte: elements 240..255 */
    uint8_t d[2];   /* f16 scale, little-endian */
};
static_assert(sizeof(struct tern_block_tq1_0) == 54, "TQ1_0 block is 54 bytes");

/* ---- the shared packed format / I2_S bit layout ---- */

/* K rounded up to a multiple of 128 (the packed row length in weights). */
static inline int64_t tern_ternary_k_pad(int64_t k) {
    return (k + 127) / 128 * 128;
}

/* Code of element j of a packed row (or of an I2_S stream: the same bit layout). */
static inline int tern_packed_get(const uint8_t *row, int64_t j) {
    return (row[(j / 128) * 32 + (j % 32)] >> (6 - 2 * ((j % 128) / 32))) & 3;
}

/* Set the code of element j of a packed row (or I2_S stream). */
static inline void tern_packed_set(uint8_t *row, int64_t j, int code) {
    uint8_t *p = &row[(j / 128) * 32 + (j % 32)];
    const int shift = 6 - 2 * (int)((j % 128) / 32);
    *p = (uint8_t)((*p & ~(3 << shift)) | ((code & 3) << shift));
}

/* Bytes of a packed weight of n_out rows of k weights: n_out * k_pad/4. */
static inline int64_t tern_packed_nbytes(int64_t k, int64_t n_out) {
    return tern_ternary_k_pad(k) / 4 * n_out;
}

/* Fill n_out packed rows with code 1 (all zero weights, padding included). */
void tern_packed_fill_zero(uint8_t *packed, int64_t k, int64_t n_out);

/* Scan a packed weight for code 3 anywhere and for padding codes other than 1 (a word-wide scan,
 * run at load on I2_S tensors used in place). TERN_ERR_FORMAT with one logged line naming `name`
 * on the first bad code. */
tern_status tern_packed_verify(const uint8_t *packed, int64_t k, int64_t n_out, const char *name);

/* ---- I2_S tensors as stored in a file ---- */

/* True when an I2_S tensor with rows of ne0 can be used in place as the packed format: its rows
 * start on block boundaries (ne0 % 128 == 0) so stream == packed rows. */
static inline bool tern_i2s_is_packed(int64_t ne0) {
    return ne0 > 0 && ne0 % 128 == 0;
}

/* Byte size of an I2_S tensor of ne0 x ne1: n/4 codes + f32 scale + 28 padding bytes. */
static inline uint64_t tern_i2s_nbytes(int64_t ne0, int64_t ne1) {
    return (uint64_t)ne0 * (uint64_t)ne1 / 4 + 32;
}

/* Read the tensor scale of an I2_S tensor (the f32 at byte n/4). Checks shape (n % 128 == 0),
 * size (nbytes >= n/4 + 4) and that the scale is finite. */
tern_status tern_i2s_scale(float *scale, const void *data, uint64_t nbytes, int64_t ne0, int64_t ne1,
                           const char *name);

/* Convert an I2_S tensor (ne1 rows of ne0) into the packed format: dst gets ne1 rows of
 * k_pad/4 bytes, padded with code 1; *scale gets the tensor scale. Works for any ne0 (for
 * ne0 % 128 == 0 it is a copy). Code 3 is rejected since every code is touched anyway. */
tern_status tern_i2s_to_packed(uint8_t *dst, float *scale, const void *data, uint64_t nbytes, int64_t ne0,
                               int64_t ne1, const char *name);

/* Write packed rows (ne1 rows of ne0 weights, rows k_pad/4 bytes) as an I2_S tensor:
 * ne0*ne1/4 bytes of stream, the f32 scale, 28 zero bytes (dst holds tern_i2s_nbytes bytes).
 * TERN_ERR_SHAPE when ne0*ne1 is not a multiple of 128. */
tern_status tern_packed_to_i2s(uint8_t *dst, const uint8_t *packed, int64_t ne0, int64_t ne1, float scale);

/* ---- TQ2_0 / TQ1_0 blocks ---- */

/* codes[256] (0..3) and *d of one TQ2_0 block. */
void tern_tq2_0_decode(uint8_t *codes, float *d, const struct tern_block_tq2_0 *b);
/* One TQ2_0 block from codes[256] (0..2) and d (stored as f16), bit-exact with
 * llama.cpp's quantize_row_tq2_0_ref for the same codes and d. */
void tern_tq2_0_encode(struct tern_block_tq2_0 *b, const uint8_t *codes, float d);

/* codes[256] (always 0..2) and *d of one TQ1_0 block. */
void tern_tq1_0_decode(uint8_t *codes, float *d, const struct tern_block_tq1_0 *b);
/* One TQ1_0 block, bit-exact with llama.cpp's quantize_row_tq1_0_ref. */
void tern_tq1_0_encode(struct tern_block_tq1_0 *b, const uint8_t *codes, float d);

/* One TQ1_0 byte from 5 digits (d[0] most significant), and digit n (0..4) of a byte. qh bytes
 * are tern_tq1_0_pack5 of their 4 digits followed by a 0 digit. */
uint8_t tern_tq1_0_pack5(const uint8_t *digits);
static inline int tern_tq1_0_digit(uint8_t byte, int n) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    return (int)(((unsigned)(uint8_t)(byte * pow3[n]) * 3u) >> 8);
}

/* Repack a TQ2_0 or TQ1_0 tensor (type = TERN_TYPE_TQ2_0 / TQ1_0; ne1 rows of ne0, ne0 % 256 == 0)
 * into the packed format (ne1 rows of k_pad/4 bytes) with one scale: the common non-zero block d
 * (0 when every block is 0). TERN_ERR_FORMAT, with one logged line naming `name`, when the data is
 * short, a TQ2_0 code is 3, a TQ1_0 byte is not a base-3 code, a d is not finite, or non-zero d
 * values differ by more than f16 rounding. */
tern_status tern_tq_to_packed(uint8_t *dst, float *scale, uint32_t type, const void *data, uint64_t nbytes,
                              int64_t ne0, int64_t ne1, const char *name);

/* Write packed rows as a TQ2_0 / TQ1_0 tensor the way llama.cpp quantizes an already-ternary tensor
 * W = t*scale: each block's d is max|W| of the block (scale, or 0 for an all-zero block).
 * TERN_ERR_SHAPE when ne0 % 256 != 0, TERN_ERR_ARG for another type. */
tern_status tern_packed_to_tq(void *dst, uint32_t type, const uint8_t *packed, int64_t ne0, int64_t ne1,
                              float scale);

/* ---- ternarization of float weights ---- */

/* Absmean ternarization of w[n_out][k] (docs/formats.md#ternarizing-float-weights): s = max(mean|w|, 1e-5),
 * t = clamp(round_half_even(w/s), -1, 1). Writes n_out packed rows (k_pad/4 bytes each, padding
 * code 1) and *scale = s. */
void tern_ternarize(uint8_t *packed, float *scale, const float *w, int64_t n_out, int64_t k);

/* Ternarize a float tensor as stored in a GGUF (type F32, F16 or BF16; ne1 rows of ne0 at data,
 * nbytes long) into ne1 packed rows. A tensor that is already ternary (every value 0 or +-c for
 * one c; |w| < 1e-6 counts as 0) gets t = sign(w) and scale = max|w|: bitnet.cpp's I2_S quantizer
 * rule, which reproduces its I2_S file. Any other tensor is a full-precision master and gets the
 * absmean rule of tern_ternarize; *absmean tells which rule ran. TERN_ERR_FORMAT, with one logged
 * line naming `name`, when the data is short or holds a non-finite value. */
tern_status tern_float_to_packed(uint8_t *dst, float *scale, bool *absmean, uint32_t type, const void *data,
                                 uint64_t nbytes, int64_t ne0, int64_t ne1, const char *name);

#endif
