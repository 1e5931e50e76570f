/* The CPU device's state and the helpers its two files share: cpu_device.c (creation, loading, the
 * embedding and the layers' forward pass) and cpu_head.c (the output head, full and certified). Not
 * part of the device interface (cpu_device.h). */
#ifndef TERN_CPU_DEVICE_INTERNAL_H
#define TERN_CPU_DEVICE_INTERNAL_H

#include <stdint.h>

#include "../scheduler/device.h"
#include "../scheduler/head_cert.h"
#include "kernels.h"
#include "pool.h"

struct cpu_layer_kv {
    /* f16 [n_seq][n_head_kv][n_ctx rounded up to whole K blocks][head_dim]: each kv head's positions are
     * one contiguous stream, K's in blocks of TERN_ATTN_KBLOCK positions (kernels.h). With positions
     * outermost, a kv head read 256 of every 1280 bytes (2B-4T) and decode attention at depth 4096 ran
     * 3x slower from DRAM (the prefetchers lose such a stream at every page). */
    uint16_t *k;
    uint16_t *v;
};

struct cpu_scratch {
    int cap;                 /* tokens the buffers below hold */
    float *x;                /* [cap][max(n_embd, n_ff)] normed input of a BitLinear */
    int8_t *q;               /* [cap][k_pad max] quantized activations */
    float *act_scale;        /* [cap] */
    int32_t *sum_q;          /* [cap] sum of each token's q */
    float *qh;               /* [cap][n_head*head_dim] queries */
    float *kh;               /* [cap][n_kv] keys */
    float *vh;               /* [cap][n_kv] values */
    float *attn;             /* [cap][n_head*head_dim] attention output */
    float *gate;             /* [cap][n_ff] */
    float *up;               /* [cap][n_ff] */
    float *out;              /* [cap][n_embd] projection output */
    float *angles;           /* [cap][n_rot] the token's RoPE cos (n_rot / 2), then sin, for every layer */
    float *scores;           /* [n_threads][TERN_ATTN_SCRATCH(head_dim, n_ctx - 1)] attention scratch */
    int *head_toks;          /* [2][cap] the tokens of a logits call, certified and full */
    struct tern_head_xq *xq; /* [cap] the certified head's quantized inputs, over the two below */
    int8_t *xq_p;            /* [cap][2][shadow n_blocks * TERN_HEAD_SHADOW_BLOCK] */
    float *xq_t;             /* [cap][shadow n_blocks] */
};

struct cpu_device {
    const struct tern_cpu_kernels *k;
    int n_threads;
    struct tern_pool *pool;
    const struct tern_model_view *model;
    int layer_begin, layer_end;
    unsigned parts;
    int n_ctx, n_seq;
    struct cpu_layer_kv *kv; /* [layer_end - layer_begin], in kv_mem */
    void *kv_mem;
    struct cpu_scratch s;
    /* certified head (TERN_PART_HEAD_CERT, scheduler/head_cert.h); shadow.q NULL when absent */
    struct tern_head_shadow shadow; /* int8 copy of the head and its bound coefficients */
    void *shadow_blob;              /* its memory, built here or read from the cache */
    /* per certified token of a logits call, cand_slots of them: */
    int32_t *cand;   /* [n_vocab] its candidate rows */
    float *heap;     /* [n_vocab] its k largest lower bounds */
    int64_t *n_cand; /* its number of candidates, -1 for the full head */
    int cand_slots;
};

/* A decode product's or head's runs a thread (cpu_device.c, tern_cpu_run_offset). */
enum { DECODE_RUNS_PER_THREAD = 4 };

/* Memory for buffers the kernels stream through: cache-line aligned, in huge pages from 2 MiB. */
void *tern_cpu_buf_alloc(size_t bytes);

/* Scratch for batches of up to n_tokens tokens. */
tern_status tern_cpu_scratch_reserve(struct cpu_device *d, int n_tokens);

/* Where run t of DECODE_RUNS_PER_THREAD x T (T threads) begins in a stream of `total`. */
int64_t tern_cpu_run_offset(int64_t total, int64_t t, int64_t T);

/* cpu_head.c: the certified head's shadow for d's model (built, or read from the cache) and its
 * candidate slots; their release; the device's logits entry. */
tern_status tern_cpu_head_load(struct cpu_device *d);
void tern_cpu_head_free(struct cpu_device *d);
tern_status tern_cpu_logits(void *ctx, float *logits, const float *hidden, int n,
                            const struct tern_head_request *const *req);

#endif
