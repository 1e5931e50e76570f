/* The random generator of the sampler and the model maker: xoshiro256** seeded through
 * splitmix64. Deterministic across platforms, so a seed names the same tokens and weights
 * everywhere. */
#ifndef TERN_RNG_H
#define TERN_RNG_H

#include <stdint.h>

struct tern_rng {
    uint64_t s[4];
};

static inline void tern_rng_seed(struct tern_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) {
        uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        r->s[i] = z ^ (z >> 31);
    }
}

static inline uint64_t tern_rng_rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t tern_rng_next(struct tern_rng *r) {
    uint64_t *s = r->s;
    const uint64_t out = tern_rng_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = tern_rng_rotl(s[3], 45);
    return out;
}

/* uniform in [0, 1) with 53 random bits */
static inline double tern_rng_uniform(struct tern_rng *r) {
    return (double)(tern_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

#endif
