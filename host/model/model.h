/* Model loading: architecture and hyperparameters from GGUF metadata, every tensor bound and
 * shape-checked, ternary weights as views of the mapping (I2_S with K % 128 == 0) or repacked once
 * into the shared packed format (TQ2_0, TQ1_0, I2_S with odd K, and F32/F16/BF16 linear weights,
 * ternarized at load). docs/formats.md#architectures-and-tensor-names. */
#ifndef TERN_MODEL_H
#define TERN_MODEL_H

#include "../../scheduler/device.h"
#include "../gguf/gguf.h"

typedef struct tern_model tern_model;

/* Open and validate. On failure one error line has been logged naming the file and the fault. */
tern_status tern_model_create(const char *path, tern_model **out);
void tern_model_free(tern_model *m);

const struct tern_model_view *tern_model_view(const tern_model *m);
const tern_gguf *tern_model_gguf(const tern_model *m);
const char *tern_model_arch(const tern_model *m);
/* Bytes the model holds in RAM beyond the file mapping (repacked weights, f32 norms). */
uint64_t tern_model_owned_bytes(const tern_model *m);
/* Bytes of the mapped tensors a generated token reads (weights used in place, the head). An untied
 * token embedding, of which a token reads one row, is not counted. */
uint64_t tern_model_mapped_bytes(const tern_model *m);
/* Linear weights the file stores as F32/F16/BF16 (ternarized at load); *n_absmean of them were
 * full-precision masters (absmean rule) rather than already-ternary values. */
int tern_model_n_float_linear(const tern_model *m, int *n_absmean);
/* Bytes of f16 KV cache for n_ctx positions over all layers. */
uint64_t tern_model_kv_bytes(const tern_model *m, int n_ctx);

/* Parse an architecture's hyperparameters only (used by model_open and `tern info`). */
tern_status tern_model_read_hparams(const tern_gguf *g, struct tern_hparams *hp, const char **arch);

#endif
