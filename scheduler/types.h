/* Tensor element types (ggml type ids, as stored in GGUF files) and their traits.
 * One table indexed by type id replaces switch statements spread around the code. */
#ifndef TERN_TYPES_H
#define TERN_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Explicit values: these are the on-disk ids. Append only. */
enum tern_type {
    TERN_TYPE_F32 = 0,
    TERN_TYPE_F16 = 1,
    TERN_TYPE_Q8_0 = 8,
    TERN_TYPE_Q4_K = 12,
    TERN_TYPE_Q6_K = 14,
    TERN_TYPE_BF16 = 30,
    TERN_TYPE_TQ1_0 = 34,
    TERN_TYPE_TQ2_0 = 35,
    TERN_TYPE_I2_S = 36, /* bitnet.cpp's meaning of 36 */
    TERN_TYPE_I8_S = 37, /* bitnet.cpp activation scratch: never valid in a file */
    TERN_TYPE_TL1 = 38,
    TERN_TYPE_TL2 = 39,
    TERN_TYPE_COUNT = 40
};

enum tern_type_class {
    TERN_CLASS_NONE = 0, /* id not known to tern */
    TERN_CLASS_FLOAT,    /* F32/F16/BF16/Q8_0/Q4_K/Q6_K: embeddings, head, norms */
    TERN_CLASS_TERNARY,  /* I2_S/TQ2_0/TQ1_0: linear weights */
    TERN_CLASS_REFUSED   /* known, but tern will not load it (see refusal) */
};

struct tern_type_traits {
    const char *name; /* "F16", "I2_S", ... */
    enum tern_type_class cls;
    int64_t block_size;  /* elements per block; ne0 must be a multiple (I2_S: see nbytes) */
    size_t block_bytes;  /* bytes per block */
    const char *refusal; /* for TERN_CLASS_REFUSED: what to use instead */
};

/* NULL when id is not a type tern knows. */
const struct tern_type_traits *tern_type_traits(uint32_t id);
/* Type name, or "unknown" for ids tern does not know. */
const char *tern_type_name(uint32_t id);

/* Byte size of a tensor of this type with n_dims dims ne[], with overflow checks.
 * Rows of block types must hold whole blocks; I2_S is n/4 codes + 32 bytes (scale and padding)
 * with n a multiple of 128 (the stream is cut into 128-element blocks). */
tern_status tern_type_nbytes(uint32_t id, int n_dims, const int64_t *ne, uint64_t *out);

#endif
