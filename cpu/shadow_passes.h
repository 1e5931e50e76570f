/* Internal to cpu/: the certified head's shadow_dot entry (scheduler/head_cert.h) of a SIMD level.
 * Each isa_*.c defines its own TERN_INLINE shadow_rows_tokens(out, s, x, r0, r1, nt), which reads
 * each row once for nt <= TERN_SHADOW_MT inputs (nt a constant after inlining) and holds a table of
 * TERN_SHADOW_MAX_BLOCKS blocks per input, and instantiates TERN_SHADOW_DOT_FN(name): passes of up to
 * TERN_SHADOW_MT inputs, wider rows (past 16384) taking the reference. Plain C, so it compiles under
 * each file's own ISA flags. */
#ifndef TERN_CPU_SHADOW_PASSES_H
#define TERN_CPU_SHADOW_PASSES_H

#include "ref.h"

enum { TERN_SHADOW_MT = 4, TERN_SHADOW_MAX_BLOCKS = 64 };

#define TERN_SHADOW_DOT_FN(name)                                                                             \
    static void name(float *const *out, const struct tern_head_shadow *s,                                    \
                     const struct tern_head_xq *const *x, int n_tok, int64_t r0, int64_t r1) {               \
        if (s->n_blocks > TERN_SHADOW_MAX_BLOCKS) {                                                          \
            tern_ref_shadow_dot(out, s, x, n_tok, r0, r1);                                                   \
            return;                                                                                          \
        }                                                                                                    \
        for (int k0 = 0; k0 < n_tok; k0 += TERN_SHADOW_MT) {                                                 \
            switch (n_tok - k0) {                                                                            \
            case 1:                                                                                          \
                shadow_rows_tokens(out + k0, s, x + k0, r0, r1, 1);                                          \
                break;                                                                                       \
            case 2:                                                                                          \
                shadow_rows_tokens(out + k0, s, x + k0, r0, r1, 2);                                          \
                break;                                                                                       \
            case 3:                                                                                          \
                shadow_rows_tokens(out + k0, s, x + k0, r0, r1, 3);                                          \
                break;                                                                                       \
            default:                                                                                         \
                shadow_rows_tokens(out + k0, s, x + k0, r0, r1, 4);                                          \
                break;                                                                                       \
            }                                                                                                \
        }                                                                                                    \
    }

#endif
