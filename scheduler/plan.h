/* The planner: which device runs which layers, the embedding and the head. A pure function of
 * measured device profiles (scheduler/probe.h) and the model's sizes, so its decisions can be
 * tested on synthetic devices. A plan is a chain of contiguous layer ranges, one per device, run in
 * order; the hidden state crosses to the host at each boundary (docs/scheduler.md). */
#ifndef TERN_PLAN_H
#define TERN_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

enum { TERN_MAX_DEVICES = 8 };

/* Measured costs of one device on one model shape (seconds). */
struct tern_probe {
    double decode_layer_s;  /* one layer, one token (a decode step) */
    double prefill_layer_s; /* one layer, per token of a prefill chunk */
    double head_s;          /* final norm + head for one token, hidden state in and logits out */
    double call_s;          /* a layer-range call with no layers for one token: the hidden state in and out */
    double call_token_s;    /* the same per token of a prefill chunk */
    double head_cert_s;     /* final norm + certified head for a greedy token (INFINITY: none) */
};

struct tern_plan_device {
    struct tern_probe probe;
    uint64_t mem_bytes;    /* usable memory */
    uint64_t max_alloc;    /* largest single buffer (0: no limit beyond mem_bytes) */
    bool unified;          /* weights are used in place from host memory, not copied */
    bool shares_cpu_cores; /* runs on the CPU's cores: never busy at the same time as another such */
    bool alive;            /* false: failed, or not to be used */
};

struct tern_plan_model {
    int n_layer;
    uint64_t layer_weight_bytes; /* one layer's weights (ternary codes and norms) */
    uint64_t layer_kv_bytes;     /* one layer's KV cache for the session's context */
    uint64_t layer_max_buffer;   /* largest single buffer a layer needs (a weight or a K/V cache) */
    uint64_t head_bytes;         /* output head (final norm + matrix) */
    uint64_t embed_bytes;        /* token embedding table */
    bool tied;                   /* the head is the embedding table */
};

struct tern_plan_seg {
    int dev;        /* index into the device array */
    int begin, end; /* layers [begin, end) */
};

struct tern_plan {
    int n_seg;
    struct tern_plan_seg seg[TERN_MAX_DEVICES];
    int embed_dev, head_dev;
    double decode_s;  /* predicted seconds per generated token */
    double prefill_s; /* predicted seconds per prompt token (prompt of TERN_PLAN_PROMPT tokens) */
};

/* The prompt length the planner weighs prefill by: a plan is chosen for the time of a request of
 * TERN_PLAN_PROMPT prompt tokens and as many generated tokens. A prompt of at least two chunks of
 * TERN_PIPELINE_CHUNK tokens is pipelined across the ranges of a plan whose devices do not share
 * cores (tern_plan_pipelined). */
enum { TERN_PLAN_PROMPT = 128, TERN_PIPELINE_CHUNK = 64 };

/* Whether the plan's ranges may run at the same time on different prompt chunks: two or more
 * ranges, and at most one of their devices on the CPU's cores. */
bool tern_plan_pipelined(const struct tern_plan_device *devs, const struct tern_plan *p);

/* The best plan over the alive devices, within each device's memory. Device 0 is the preferred
 * device (the CPU under `auto`): it keeps the whole model unless another plan is predicted at
 * least 5% faster, so noise in the probe does not move the model between near-equal devices.
 * TERN_ERR_NOMEM when no placement fits (one line logged). */
tern_status tern_plan_make(const struct tern_plan_model *m, const struct tern_plan_device *devs, int n_dev,
                           struct tern_plan *out);

/* A plan from explicit layer counts: counts[i] layers on device i in order, the embedding on the
 * first device and the head on the last. Counts may be 0. TERN_ERR_ARG (logged) when the counts do
 * not add up to n_layer, TERN_ERR_NOMEM (logged, naming names[i]) when a device cannot hold its part. */
tern_status tern_plan_split(const struct tern_plan_model *m, const struct tern_plan_device *devs, int n_dev,
                            const int *counts, const char *const *names, struct tern_plan *out);

/* Layers plan p gives device d. */
int tern_plan_layers_on(const struct tern_plan *p, int d);

/* Predicted decode and prefill time of a plan (fills out->decode_s and out->prefill_s). */
void tern_plan_predict(const struct tern_plan_model *m, const struct tern_plan_device *devs,
                       struct tern_plan *p);

/* Bytes device d needs under plan p; false when a layer buffer or the embedding exceeds its
 * largest allocation (a head that does is split into several buffers by the device) or the total
 * exceeds its memory. */
bool tern_plan_fits(const struct tern_plan_model *m, const struct tern_plan_device *devs, int d,
                    const struct tern_plan *p, uint64_t *need);

/* "cl:0[0-19] cpu[20-29]" with the embedding and head places when they are not at the chain's
 * ends ("embd:cpu head:cpu"); names[i] is device i's name. */
void tern_plan_format(const struct tern_plan *p, const char *const *names, char *buf, size_t n);

#endif
