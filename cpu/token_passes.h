/* Internal to cpu/: the entries of a SIMD level that read each row once for several inputs, split
 * into passes of a few inputs whose count is a constant after inlining. Plain C, so it compiles
 * under each file's own ISA flags.
 *
 * matvec_tokens: each isa_*.c defines TERN_INLINE rows_tokens(out, t, x, r0, r1, nt) for the types
 * of tern_rows_tokens_type (every SIMD level reads each of them once for several inputs) and
 * instantiates TERN_MATVEC_TOKENS_FN(name, matvec): one input, or another type, goes to the level's
 * matvec; several go in passes of 4 and one of the 1-3 left (the
 * rows of a pass stay in L2 for the next; 3 as 2 + 1 read them twice: tg32 x3 below x2 with the
 * full head).
 *
 * shadow_dot (the certified head's, scheduler/head_cert.h): each isa_*.c defines its own
 * TERN_INLINE shadow_rows_tokens(out, s, x, r0, r1, nt), which reads each row once for nt <=
 * TERN_SHADOW_MT inputs and holds a table of TERN_SHADOW_MAX_BLOCKS blocks per input, and
 * instantiates TERN_SHADOW_DOT_FN(name): passes of up to TERN_SHADOW_MT inputs, wider rows (past
 * 16384) taking the reference. */
#ifndef TERN_CPU_TOKEN_PASSES_H
#define TERN_CPU_TOKEN_PASSES_H

#include "ref.h"

/* Inputs of one pass: each row is read once for up to this many (cpu_head.c sizes the head's
 * tasks by it). */
enum { TERN_PASS_TOKENS = 4 };
_Static_assert(TERN_PASS_TOKENS == 4, "TERN_PASSES_OF_4 cuts passes of 4");

/* Passes of up to 4 inputs over n_tok: PASS(k0, nt) with nt a constant 1-4 after inlining (the
 * kernels' per-input arrays, MT and TERN_SHADOW_MT, hold 4). */
#define TERN_PASSES_OF_4(n_tok, PASS)                                                                        \
    for (int k0 = 0; k0 < (n_tok); k0 += 4) {                                                                \
        switch ((n_tok)-k0) {                                                                                \
        case 1:                                                                                              \
            PASS(k0, 1);                                                                                     \
            break;                                                                                           \
        case 2:                                                                                              \
            PASS(k0, 2);                                                                                     \
            break;                                                                                           \
        case 3:                                                                                              \
            PASS(k0, 3);                                                                                     \
            break;                                                                                           \
        default:                                                                                             \
            PASS(k0, 4);                                                                                     \
            break;                                                                                           \
        }                                                                                                    \
    }

/* The head types whose rows matvec_tokens reads once for several inputs. */
static inline bool tern_rows_tokens_type(uint32_t type) {
    return type == TERN_TYPE_F32 || type == TERN_TYPE_F16 || type == TERN_TYPE_BF16 ||
           type == TERN_TYPE_Q8_0 || type == TERN_TYPE_Q6_K || type == TERN_TYPE_Q4_K;
}

#define TERN_MATVEC_PASS(k0, nt) rows_tokens(out + (k0), t, x + (k0), row_begin, row_end, nt)
#define TERN_MATVEC_TOKENS_FN(name, matvec)                                                                  \
    static void name(float *const *out, const struct tern_tensor *t, const float *const *x, int n_tok,       \
                     int64_t row_begin, int64_t row_end) {                                                   \
        _Static_assert((int)MT == (int)TERN_PASS_TOKENS,                                                     \
                       "rows_tokens takes the passes of TERN_PASSES_OF_4");                                  \
        if (!tern_rows_tokens_type(t->type) || n_tok == 1) {                                                 \
            for (int k = 0; k < n_tok; k++)                                                                  \
                matvec(out[k], t, x[k], row_begin, row_end);                                                 \
            return;                                                                                          \
        }                                                                                                    \
        TERN_PASSES_OF_4(n_tok, TERN_MATVEC_PASS)                                                            \
    }

enum { TERN_SHADOW_MT = TERN_PASS_TOKENS, TERN_SHADOW_MAX_BLOCKS = 64 };

#define TERN_SHADOW_PASS(k0, nt) shadow_rows_tokens(out + (k0), s, x + (k0), r0, r1, nt)
#define TERN_SHADOW_DOT_FN(name)                                                                             \
    static void name(float *const *out, const struct tern_head_shadow *s,                                    \
                     const struct tern_head_xq *const *x, int n_tok, int64_t r0, int64_t r1) {               \
        if (s->n_blocks > TERN_SHADOW_MAX_BLOCKS) {                                                          \
            tern_ref_shadow_dot(out, s, x, n_tok, r0, r1);                                                   \
            return;                                                                                          \
        }                                                                                                    \
        TERN_PASSES_OF_4(n_tok, TERN_SHADOW_PASS)                                                            \
    }

#endif
