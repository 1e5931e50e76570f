/* The tensor type table. */
#include "types.h"

static const struct tern_type_traits type_table[TERN_TYPE_COUNT] = {
    [TERN_TYPE_F32] = {"F32", TERN_CLASS_FLOAT, 1, 4, NULL},
    [TERN_TYPE_F16] = {"F16", TERN_CLASS_FLOAT, 1, 2, NULL},
    [TERN_TYPE_Q8_0] = {"Q8_0", TERN_CLASS_FLOAT, 32, 34, NULL},
    [TERN_TYPE_Q4_K] = {"Q4_K", TERN_CLASS_FLOAT, 256, 144, NULL},
    [TERN_TYPE_Q6_K] = {"Q6_K", TERN_CLASS_FLOAT, 256, 210, NULL},
    [TERN_TYPE_BF16] = {"BF16", TERN_CLASS_FLOAT, 1, 2, NULL},
    [TERN_TYPE_TQ1_0] = {"TQ1_0", TERN_CLASS_TERNARY, 256, 54, NULL},
    [TERN_TYPE_TQ2_0] = {"TQ2_0", TERN_CLASS_TERNARY, 256, 66, NULL},
    [TERN_TYPE_I2_S] = {"I2_S", TERN_CLASS_TERNARY, 128, 32, NULL},
    [TERN_TYPE_I8_S] = {"I8_S", TERN_CLASS_REFUSED, 1, 1,
                        "I8_S is bitnet.cpp's activation scratch type and never valid in a model file"},
    [TERN_TYPE_TL1] = {"TL1", TERN_CLASS_REFUSED, 1, 1,
                       "TL1 is tied to one bitnet.cpp build's kernel tiling; use the i2_s file "
                       "(ggml-model-i2_s.gguf) or convert the model to I2_S"},
    [TERN_TYPE_TL2] = {"TL2", TERN_CLASS_REFUSED, 1, 1,
                       "TL2 is tied to one bitnet.cpp build's kernel tiling; use the i2_s file "
                       "(ggml-model-i2_s.gguf) or convert the model to I2_S"},
};

const struct tern_type_traits *tern_type_traits(uint32_t id) {
    if (id >= TERN_TYPE_COUNT || type_table[id].cls == TERN_CLASS_NONE)
        return NULL;
    return &type_table[id];
}

const char *tern_type_name(uint32_t id) {
    const struct tern_type_traits *t = tern_type_traits(id);
    return t ? t->name : "unknown";
}

tern_status tern_type_nbytes(uint32_t id, int n_dims, const int64_t *ne, uint64_t *out) {
    const struct tern_type_traits *t = tern_type_traits(id);
    if (!t || t->cls == TERN_CLASS_REFUSED)
        return TERN_ERR_UNSUPPORTED;
    if (n_dims < 1 || n_dims > 4)
        return TERN_ERR_FORMAT;
    uint64_t n = 1;
    for (int i = 0; i < n_dims; i++) {
        if (ne[i] < 0)
            return TERN_ERR_FORMAT;
        uint64_t d = (uint64_t)ne[i];
        if (d != 0 && n > UINT64_MAX / 4 / d) /* keep n*4 representable too */
            return TERN_ERR_FORMAT;
        n *= d;
    }
    if (id == TERN_TYPE_I2_S) {
        if (n % 128 != 0)
            return TERN_ERR_FORMAT;
        *out = n / 4 + 32;
        return TERN_OK;
    }
    if ((uint64_t)ne[0] % (uint64_t)t->block_size != 0)
        return TERN_ERR_FORMAT;
    uint64_t blocks = n / (uint64_t)t->block_size;
    if (blocks > UINT64_MAX / t->block_bytes)
        return TERN_ERR_FORMAT;
    *out = blocks * t->block_bytes;
    return TERN_OK;
}
