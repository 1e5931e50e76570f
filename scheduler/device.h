/* The device interface: what every device (CPU, OpenCL) sees of a model, and the few coarse
 * operations the executor asks of it. A device owns the layers it loaded and their KV cache;
 * the hidden state (n_tokens x n_embd f32, host memory) is the only thing that crosses devices. */
#ifndef TERN_DEVICE_H
#define TERN_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "types.h"

enum tern_ffn_act { TERN_FFN_RELU2 = 0, TERN_FFN_SILU = 1 };

enum tern_rope_style {
    TERN_ROPE_NEOX = 0, /* pairs (i, i + n_rot/2): bitnet archs, HF row order */
    TERN_ROPE_NORM = 1  /* adjacent pairs (2i, 2i+1): llama arch files */
};

struct tern_hparams {
    int32_t n_vocab;
    int32_t n_embd; /* hidden size */
    int32_t n_ff;   /* FFN inner size */
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;    /* per head; n_head * head_dim is the q width */
    int32_t n_rot;       /* rotated dims per head (<= head_dim) */
    int32_t n_ctx_train; /* context length the model was trained with */
    float rope_theta;
    float norm_eps;
    enum tern_ffn_act ffn_act;
    enum tern_rope_style rope_style;
    bool has_sub_norms; /* attn_sub_norm and ffn_sub_norm present (bitnet archs) */
};

/* A ternary weight in the shared packed format (docs/architecture.md#packed-weights): n_out rows, each
 * row_bytes = k_pad/4 bytes of I2_S blocks (128 weights per 32 bytes, byte i of a block holds weights i,
 * i+32, i+64, i+96 in bit pairs 7:6, 5:4, 3:2, 1:0; codes 0,1,2 = -1,0,+1), rows padded with code 1. */
struct tern_ternary {
    const uint8_t *codes; /* n_out * row_bytes bytes; may point into the file mapping */
    int64_t n_in;         /* K: logical input length */
    int64_t k_pad;        /* K rounded up to a multiple of 128 */
    int64_t row_bytes;    /* k_pad / 4 */
    int64_t n_out;        /* rows */
    float scale;          /* W = t * scale */
    float out_scale;      /* extra multiplier from a bitnet `.scale` tensor; 1 when absent */
};

/* A non-ternary tensor as stored in the file (embedding, head, norms). Rows of ne0 elements. */
struct tern_tensor {
    const void *data;
    uint32_t type;    /* enum tern_type */
    int64_t ne0, ne1; /* row length, rows */
    size_t row_bytes; /* bytes per row */
};

struct tern_layer_weights {
    const float *attn_norm;     /* n_embd */
    const float *attn_sub_norm; /* n_head*head_dim; NULL without sub-norms */
    const float *ffn_norm;      /* n_embd */
    const float *ffn_sub_norm;  /* n_ff; NULL without sub-norms */
    struct tern_ternary wq;     /* n_embd -> n_head*head_dim */
    struct tern_ternary wk;     /* n_embd -> n_head_kv*head_dim */
    struct tern_ternary wv;     /* n_embd -> n_head_kv*head_dim */
    struct tern_ternary wo;     /* n_head*head_dim -> n_embd */
    struct tern_ternary wgate;  /* n_embd -> n_ff */
    struct tern_ternary wup;    /* n_embd -> n_ff */
    struct tern_ternary wdown;  /* n_ff -> n_embd */
};

/* Everything a device needs to know of a model; owned by host/, valid while the model is open. */
struct tern_model_view {
    struct tern_hparams hp;
    const struct tern_layer_weights *layers; /* n_layer */
    struct tern_tensor tok_embd;             /* n_vocab rows of n_embd */
    const float *output_norm;                /* n_embd */
    struct tern_tensor output;               /* head: n_vocab rows of n_embd (tok_embd when tied) */
    /* The file the weights come from, "PATH|size S|mtime NS|inode I" (PATH absolute), for caches of
     * data derived from them (scheduler/head_cache.h); NULL when there is none. */
    const char *source_id;
};

enum tern_device_kind { TERN_DEVICE_CPU = 0, TERN_DEVICE_GPU = 1, TERN_DEVICE_ACCEL = 2 };

struct tern_device_info {
    char name[128];
    char vendor[64];
    char driver[64]; /* driver version (OpenCL) or the kernel level in use (CPU) */
    enum tern_device_kind kind;
    uint64_t mem_bytes;    /* memory the device can use for weights and KV cache */
    uint64_t max_alloc;    /* largest single buffer; 0: no limit beyond mem_bytes */
    int compute_units;     /* cores or compute units */
    bool unified_memory;   /* shares physical memory with the host: weights are used in place */
    bool shares_cpu_cores; /* runs on the CPU's cores (CPU device, PoCL): never concurrent with it */
    bool certify_head;     /* its certified head is faster than its full head, so auto uses it: the
                            * device's own default, replaced by the probe's measurement where
                            * devices are probed (scheduler/probe.h) */
    char features[96];     /* optional features in use, space-separated (fp16 subgroups dot ...) */
    char build[32];        /* what identifies the device's kernels beyond tern's version (OpenCL: a
                            * hash of their sources), so a probe cached for other kernels is not
                            * reused; empty when the version says it all */
};

/* Parts a device may own besides layers. TERN_PART_HEAD_CERT (with TERN_PART_HEAD): also build at
 * load what the certified head needs (scheduler/head_cert.h), where the head's type allows it. */
enum { TERN_PART_EMBED = 1u << 0, TERN_PART_HEAD = 1u << 1, TERN_PART_HEAD_CERT = 1u << 2 };

/* How a session's head computes the logits a sampler asks for with a request. */
enum tern_head_mode {
    TERN_HEAD_AUTO = 0,      /* certified where the device says it pays (certify_head), else full */
    TERN_HEAD_CERTIFIED = 1, /* low-bit shadow + exact recompute of the candidates (head_cert.h) */
    TERN_HEAD_FULL = 2       /* every row from the head */
};

/* Counters of the certified head, summed over logits calls by the device. */
struct tern_head_stats {
    uint64_t n_tokens;  /* logits calls that took a request */
    uint64_t n_rows;    /* head rows recomputed exactly, summed over those calls */
    uint64_t n_over_64; /* calls that recomputed more than 64 rows */
    uint64_t n_full;    /* calls that computed the full head (no shadow, NaN, or too many rows) */
};

/* What the sampler will read of one token's logits, so a device may certify instead of computing
 * every row: logits outside the top_k of the penalized values may come back as -INFINITY; every
 * other row carries exactly the bits the full head gives. The penalties are the sampler's monotonic
 * map on each listed id: (v > 0 ? v / repeat_penalty : v * repeat_penalty) - penalty_sub[i]. */
struct tern_head_request {
    int32_t top_k;            /* >= 1 */
    float repeat_penalty;     /* > 0; 1 = none */
    const int32_t *penalized; /* ids the penalties apply to, ascending and distinct */
    const float *penalty_sub; /* [n_penalized] subtracted after the repeat penalty (frequency and
                                 presence penalties); NULL: none */
    int32_t n_penalized;
    /* [n_rows] 0 for a row the sampler will not take whatever its logit (JSON mode), which the
     * device leaves out of the top k; NULL: every row may be taken */
    const uint8_t *allowed;
    struct tern_head_stats *stats; /* added to by the device; may be NULL */
};

/* A batch of tokens for run_layers: token t belongs to sequence seq[t] (a KV cache slot) at
 * position pos[t]. Tokens of one sequence come in increasing position order; each attends the
 * positions 0..pos[t] of its own sequence, those written by earlier tokens of the batch included
 * (every token's K and V enter the cache before any token attends). Sequences never see each other:
 * a token's result is the same whatever else shares its batch (docs/scheduler.md). */
struct tern_batch {
    int n_tokens;
    const int32_t *pos; /* [n_tokens] in [0, n_ctx) */
    const int32_t *seq; /* [n_tokens] in [0, n_seq) */
};

/* For devices: TERN_ERR_CONTEXT_FULL when a token of b lies outside a cache of n_seq sequences of
 * n_ctx positions; TERN_ERR_ARG for an empty batch or a sequence whose positions do not increase
 * (two tokens would write one K/V slot). One line naming `device` either way. */
tern_status tern_batch_check(const struct tern_batch *b, int n_ctx, int n_seq, const char *device);

struct tern_device_ops {
    tern_status (*describe)(void *ctx, struct tern_device_info *out);
    /* Take layers [layer_begin, layer_end) and the parts in `parts`; sets up KV cache for n_seq
     * sequences of n_ctx positions for those layers. May be called again to change the set (frees
     * the old one). */
    tern_status (*load)(void *ctx, const struct tern_model_view *model, int layer_begin, int layer_end,
                        unsigned parts, int n_ctx, int n_seq);
    /* hidden[n_tokens][n_embd] <- embedding rows of tokens (TERN_PART_EMBED). */
    tern_status (*embed)(void *ctx, float *hidden, const int32_t *tokens, int n_tokens);
    /* Run layers [layer_begin, layer_end) (a subrange of what was loaded) in place on
     * hidden[b->n_tokens][n_embd]. */
    tern_status (*run_layers)(void *ctx, float *hidden, const struct tern_batch *b, int layer_begin,
                              int layer_end);
    /* logits[t][n_vocab] <- head(final_norm(hidden[t][n_embd])) for n tokens (TERN_PART_HEAD), the
     * head read once for all of them. req is NULL (every row of every token) or n requests, each
     * NULL or what the sampler reads of that token: rows proven outside its top-k may then be
     * -INFINITY instead. A token's logits are the same bits whatever else is in the call. */
    tern_status (*logits)(void *ctx, float *logits, const float *hidden, int n,
                          const struct tern_head_request *const *req);
    /* Wait for queued work. Optional (NULL: synchronous device). */
    tern_status (*sync)(void *ctx);
    /* Free everything; ctx is invalid afterwards. */
    void (*free)(void *ctx);
};

struct tern_device {
    const struct tern_device_ops *ops;
    void *ctx;
};

#endif
