/* Portable IEEE half and bfloat16 conversions (round to nearest even), shared by every device. */
#ifndef TERN_FP16_H
#define TERN_FP16_H

#include <stdint.h>
#include <string.h>

static inline float tern_f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t tern_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float tern_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) /* inf / nan */
        return tern_f32_from_bits(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0)
            return tern_f32_from_bits(sign);
        /* subnormal: man * 2^-24 */
        float f = (float)man * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    return tern_f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
}

/* The little-endian half at p (any alignment), as a float: a block format's scale field. */
static inline float tern_fp16_at(const uint8_t *p) {
    return tern_fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8)));
}

static inline uint16_t tern_fp32_to_fp16(float f) {
    uint32_t x = tern_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        /* adding 0.5 makes the FPU do the round-to-nearest-even at bit 2^-24 */
        float a = tern_f32_from_bits(ax) + 0.5f;
        return (uint16_t)(sign | (tern_f32_bits(a) - 0x3f000000u));
    }
    uint32_t mant_odd = (ax >> 13) & 1u;
    ax += 0xc8000fffu + mant_odd; /* rebias exponent (-112 << 23) and round to nearest even */
    return (uint16_t)(sign | (ax >> 13));
}

static inline float tern_bf16_to_fp32(uint16_t h) {
    return tern_f32_from_bits((uint32_t)h << 16);
}

static inline uint16_t tern_fp32_to_bf16(float f) {
    uint32_t x = tern_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* nan: keep it quiet */
        return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

#endif
