/* Random BitNet models of any shape, for tests and benchmarks: ternary weights drawn uniformly
 * from {-1, 0, +1} with one scale per tensor in [0.25, 1], norms in [0.8, 1.2], embedding uniform
 * in [-1, 1]. The same seed gives the same weights whatever the ternary type, so files written as
 * I2_S, TQ2_0 and TQ1_0 hold one model. */
#ifndef TERN_MAKER_H
#define TERN_MAKER_H

#include <stdbool.h>
#include <stdint.h>

#include "../gguf/gguf.h"

struct tern_maker_params {
    const char *name; /* general.name */
    const char *arch; /* bitnet-b1.58 (default), bitnet-25, bitnet, llama */
    int n_layer, n_embd, n_ff, n_head, n_head_kv, n_vocab, n_ctx;
    int head_dim; /* 0: n_embd / n_head */
    float rope_theta;
    uint32_t linear_type; /* TERN_TYPE_I2_S, TQ2_0 or TQ1_0 */
    uint32_t embd_type;   /* token_embd type (F32, F16, BF16, Q8_0, Q6_K, Q4_K) */
    uint32_t output_type; /* separate output.weight of this type; TERN_TYPE_COUNT: tied head */
    uint64_t seed;
};

/* Fill p from a preset: "tiny" (tests: 2 layers, 256/512, 4 heads, 2 KV heads, 512 tokens),
 * "2b4t" (BitNet b1.58 2B-4T: 30 layers, 2560/6912, 20/5 heads, 128256 tokens), "3b" (1bitLLM
 * bitnet_b1_58-3B shape with 2 layers: 3200/8640, 32 heads of 100). TERN_ERR_ARG if unknown. */
tern_status tern_maker_preset(const char *preset, struct tern_maker_params *p);

typedef struct tern_maker tern_maker;

/* Add the model's metadata and tensors to w (the caller adds tokenizer keys, or calls
 * tern_maker_add_synthetic_vocab). The returned maker owns the tensor data, which w references:
 * free it after tern_gguf_writer_write. Logs one line on a shape the type cannot hold. */
tern_status tern_maker_create(const struct tern_maker_params *p, tern_gguf_writer *w, tern_maker **out);
void tern_maker_free(tern_maker *m);

/* Build the model with a synthetic vocabulary and write it to path (atomically). */
tern_status tern_maker_write(const struct tern_maker_params *p, const char *path);

/* A synthetic byte-level BPE vocabulary of n_vocab tokens: the 256 byte tokens, merged tokens
 * built from them, then <|begin_of_text|> (BOS) and <|end_of_text|> (EOS) as control tokens. */
tern_status tern_maker_add_synthetic_vocab(tern_gguf_writer *w, int n_vocab, uint64_t seed);

#endif
