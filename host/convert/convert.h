/* Hugging Face checkpoint folder -> GGUF (`tern convert`, docs/formats.md#architectures-and-tensor-names,
 * #hugging-face-checkpoints).
 *
 * Reads config.json, the safetensors checkpoint (single or sharded), tokenizer.json and
 * tokenizer_config.json. Families, chosen by config.json `architectures`:
 *   BitNetForCausalLM (microsoft bitnet-b1.58-2B-4T: packed uint8 + weight_scale, or its bf16
 *     masters)                                   -> arch bitnet-b1.58
 *   BitnetForCausalLM (1bitLLM bitnet_b1_58-*: fp masters, SiLU) -> arch bitnet
 *   LlamaForCausalLM (HF1BitLLM Llama3-8B-1.58, Falcon3-*-1.58bit: packed + weight_scale; any
 *     other fp checkpoint through absmean with a warning) -> arch llama, q/k rows permuted for
 *     adjacent-pair RoPE.
 * Linear weights are written as I2_S (bitnet.cpp's layout, as in the official file), TQ2_0 or
 * TQ1_0; the embedding (and a separate head) as F16, Q8_0 or Q6_K; norms as F32. Tensors are
 * produced one at a time while the file is written (memory bounded by the largest tensor); the
 * output appears by rename only when complete. */
#ifndef TERN_CONVERT_H
#define TERN_CONVERT_H

#include <stdint.h>

#include "../../scheduler/status.h"

struct tern_convert_params {
    const char *hf_dir;   /* Hugging Face model folder */
    const char *out_path; /* GGUF to write */
    uint32_t linear_type; /* TERN_TYPE_I2_S, TQ2_0 or TQ1_0 */
    uint32_t embd_type;   /* TERN_TYPE_F16, Q8_0 or Q6_K */
    /* called after each tensor is written (may be NULL) */
    void (*progress)(int done, int total, void *user);
    void *progress_user;
};

/* Convert. On failure one error line has been logged naming the file, key or tensor at fault, and
 * no output file exists. */
tern_status tern_convert(const struct tern_convert_params *p);

#endif
