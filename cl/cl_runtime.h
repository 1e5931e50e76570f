/* The OpenCL runtime of one device: context, in-order queue, the program built from cl/kernels/
 * (or loaded from the binary cache), its kernels, buffer helpers, and one launcher per kernel.
 * Private to cl/ (the device in cl_device.c) and to the OpenCL tests; the rest of tern sees only
 * cl_device.h. Launchers enqueue and return; reads block. */
#ifndef TERN_CL_RUNTIME_H
#define TERN_CL_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

#include "../scheduler/device.h"
#include "cl_api.h"
#include "cl_device.h"

/* X(enum suffix, kernel name in cl/kernels) */
#define TERN_CL_KERNEL_LIST(X)                                                                               \
    X(QUANTIZE_ACT, tern_quantize_act)                                                                       \
    X(TERNARY_MATVEC, tern_ternary_matvec)                                                                   \
    X(TERNARY_MATMUL, tern_ternary_matmul)                                                                   \
    X(MATVEC_F32, tern_matvec_f32)                                                                           \
    X(MATVEC_F16, tern_matvec_f16)                                                                           \
    X(MATVEC_BF16, tern_matvec_bf16)                                                                         \
    X(MATVEC_Q8_0, tern_matvec_q8_0)                                                                         \
    X(MATVEC_Q4_K, tern_matvec_q4_k)                                                                         \
    X(MATVEC_Q6_K, tern_matvec_q6_k)                                                                         \
    X(SHADOW_MATVEC, tern_shadow_matvec)                                                                     \
    X(EMBED, tern_embed)                                                                                     \
    X(RMSNORM, tern_rmsnorm)                                                                                 \
    X(ROPE, tern_rope)                                                                                       \
    X(KV_STORE, tern_kv_store)                                                                               \
    X(ATTENTION, tern_attention)                                                                             \
    X(FFN_ACT, tern_ffn_act)                                                                                 \
    X(ADD, tern_add)

enum tern_cl_kernel {
#define TERN_CL_KERNEL_ENUM(e, name) TERN_CLK_##e,
    TERN_CL_KERNEL_LIST(TERN_CL_KERNEL_ENUM)
#undef TERN_CL_KERNEL_ENUM
        TERN_CLK_COUNT
};

struct tern_cl_rt {
    const struct tern_cl_api *api;
    cl_platform_id platform;
    cl_device_id device;
    cl_context ctx;
    cl_command_queue queue; /* in order */
    cl_program program;
    cl_kernel kernels[TERN_CLK_COUNT];

    char name[256];          /* CL_DEVICE_NAME */
    char vendor[128];        /* CL_DEVICE_VENDOR */
    char driver[128];        /* CL_DRIVER_VERSION */
    char version[128];       /* CL_DEVICE_VERSION */
    char c_version[128];     /* CL_DEVICE_OPENCL_C_VERSION */
    char platform_name[128]; /* CL_PLATFORM_NAME */
    cl_device_type type;
    bool unified;          /* CL_DEVICE_HOST_UNIFIED_MEMORY */
    cl_ulong global_mem;   /* bytes */
    cl_ulong max_alloc;    /* bytes, largest single buffer */
    cl_ulong local_mem;    /* bytes per work-group */
    size_t max_wg;         /* CL_DEVICE_MAX_WORK_GROUP_SIZE */
    cl_uint compute_units; /* CL_DEVICE_MAX_COMPUTE_UNITS */

    /* Features the program was built to use (all false with TERN_CL_PORTABLE=1). */
    bool use_fp16;        /* cl_khr_fp16: half vector loads */
    bool use_subgroups;   /* cl_khr_subgroups or cl_intel_subgroups: reductions */
    bool intel_subgroups; /* the subgroups are cl_intel_subgroups (pragma differs) */
    bool use_dot;         /* cl_khr_integer_dot_product: packed 4x8-bit dots */
    bool exact_div;       /* -cl-fp32-correctly-rounded-divide-sqrt accepted */

    /* Tuning (the -D macros of the program; struct tern_cl_tuning in cl_device.h). */
    bool cpu_kernels; /* CPU-driver designs of the matvec/matmul kernels (TERN_CPU_KERNELS) */
    int wg;           /* work-group size of the 1-D kernels (power of two, 32..256) */
    int lpr;          /* lanes per row in the matvec kernels (power of two, <= wg) */
    int mm_kb;        /* 128-weight blocks per local-memory stage of the tiled matmul */
    int kchunk;       /* int8 activations staged per pass in the ternary matvec (bytes) */
    int xchunk;       /* f32 activations staged per pass in the typed matvec (floats) */
    int att_maxp;     /* attention scores kept in local memory (positions) */
    char options[1024];
    bool from_cache;            /* program came from the on-disk binary cache */
    struct tern_cl_tuning base; /* the built-in parameters of this device */
    bool tuned;                 /* the parameters came from a stored tuning (cl_tune.c) */

    /* TERN_CL_PROFILE=1: every launch waits for the queue before and after, and its wall time is
     * added to its kernel's row; the table is logged when the device closes. */
    bool profile;
    double prof_s[TERN_CLK_COUNT];
    long prof_n[TERN_CLK_COUNT];
};

/* Number of usable (OpenCL 1.2+) devices over all platforms; 0 without loader or platform. */
int tern_cl_rt_count(void);
/* Open the device of spec (index or name substring; see cl_device.h). portable forces the portable
 * fallbacks (no fp16, subgroup or integer-dot paths); TERN_CL_PORTABLE=1 does the same. tuning
 * (NULL: the stored tuning of the device if any, else the built-in parameters) sets the kernel
 * parameters; wg is lowered to what the device and kernels allow, lpr to wg. TERN_CL_KERNELS=cpu|gpu
 * forces a design with the built-in parameters. */
tern_status tern_cl_rt_create(const char *spec, bool portable, const struct tern_cl_tuning *tuning,
                              struct tern_cl_rt **out);
void tern_cl_rt_free(struct tern_cl_rt *rt);

/* The built-in parameters of a kernel design (cl_runtime.c). */
struct tern_cl_tuning tern_cl_builtin_tuning(bool cpu_kernels);
/* The runtime of an OpenCL device (cl_device.c). */
struct tern_cl_rt *tern_cl_device_rt(const struct tern_device *dev);

/* The stored tuning of rt's device (cl_tune.c): true when the cache folder holds a valid one; a file
 * that does not parse is ignored with one notice. */
bool tern_cl_tune_load(const struct tern_cl_rt *rt, struct tern_cl_tuning *out);

/* Buffers: what names the buffer in error messages. host may be NULL. */
tern_status tern_cl_buf_create(struct tern_cl_rt *rt, cl_mem_flags flags, size_t size, void *host,
                               const char *what, cl_mem *out);
void tern_cl_buf_free(struct tern_cl_rt *rt, cl_mem *buf);
tern_status tern_cl_write(struct tern_cl_rt *rt, cl_mem buf, size_t off, size_t size, const void *src);
tern_status tern_cl_read(struct tern_cl_rt *rt, cl_mem buf, size_t off, size_t size, void *dst);
tern_status tern_cl_finish(struct tern_cl_rt *rt);

/* ---- launchers (cl_ops.c); shapes as in cpu/ref.h, rows dense unless a stride is given ---- */

/* q[t][n_pad] (int8), act_scale[t], sum_q[t] <- x[t][x_stride] (first n used), t < n_tok. */
tern_status tern_cl_quantize_act(struct tern_cl_rt *rt, cl_mem q, cl_mem act_scale, cl_mem sum_q, cl_mem x,
                                 int n, int n_pad, int x_stride, int n_tok);

enum tern_cl_ternary_path { TERN_CL_TERNARY_AUTO = 0, TERN_CL_TERNARY_MATVEC, TERN_CL_TERNARY_MATMUL };

/* y[t][y_stride] (= or += with accumulate) <- ternary product of w (codes in buffer codes, shape and
 * scales from w) with q[t][w->k_pad]; acc (optional, NULL) gets the exact int32 sums. */
tern_status tern_cl_ternary(struct tern_cl_rt *rt, cl_mem y, cl_mem acc, cl_mem codes,
                            const struct tern_ternary *w, cl_mem q, cl_mem act_scale, cl_mem sum_q, int n_tok,
                            int y_stride, bool accumulate, enum tern_cl_ternary_path path);

/* Inputs one call of the two matvecs below takes (TERN_MATVEC_MAX_NX in cl/kernels/common.h). */
enum { TERN_CL_MATVEC_MAX_NX = 4 };

/* out[k][n_rows] <- for each input k < nx (x[x0 + k][t->ne0]): out[k][i] = dot(row row_begin+i of t,
 * that input), i < n_rows; rows in buffer data (t->data unused), each read once for all the inputs,
 * and each input's dots the bits it gets alone. With a row list (rows: n_rows int32 ids, else NULL)
 * row rows[i] instead; row_begin is then unused. */
tern_status tern_cl_matvec(struct tern_cl_rt *rt, cl_mem out, cl_mem data, const struct tern_tensor *t,
                           cl_mem x, int x0, int nx, int64_t row_begin, int64_t n_rows, cl_mem rows);
/* out[k][r] <- the certified head's shadow logit of row r (q: n_rows x n bytes, scales: n_rows x
 * n_blocks f32; scheduler/head_cert.h) for the input x[k][n], r < n_rows, k < nx (as above). */
tern_status tern_cl_shadow_matvec(struct tern_cl_rt *rt, cl_mem out, cl_mem q, cl_mem scales, cl_mem x,
                                  int nx, int64_t n, int64_t n_rows, int64_t n_blocks);
/* out[i][t->ne0] <- row tokens[i] of t (already range-checked by the caller), i < n_tok. */
tern_status tern_cl_embed(struct tern_cl_rt *rt, cl_mem out, cl_mem data, const struct tern_tensor *t,
                          cl_mem tokens, int n_tok);

/* out[t][n] <- rmsnorm(x[t][n]) * w, t < n_tok (out may be x). */
tern_status tern_cl_rmsnorm(struct tern_cl_rt *rt, cl_mem out, cl_mem x, cl_mem w, int n, float eps,
                            int n_tok);
/* In place on x[t][row_stride]: heads of head_dim, first n_rot dims rotated, position pos[t] (int). */
tern_status tern_cl_rope(struct tern_cl_rt *rt, cl_mem x, int n_head, int head_dim, int n_rot, int row_stride,
                         cl_mem pos, float theta, enum tern_rope_style style, int n_tok);
/* Caches [n_seq][n_ctx][kv_dim] (f16): row (seq[t], pos[t]) <- k[t][kv_dim], v[t][kv_dim]. */
tern_status tern_cl_kv_store(struct tern_cl_rt *rt, cl_mem k_cache, cl_mem v_cache, cl_mem k, cl_mem v,
                             int kv_dim, cl_mem pos, cl_mem seq, int n_ctx, int n_tok);
/* out[t][n_head*head_dim] <- causal attention of q[t] at position pos[t] over sequence seq[t]'s cache. */
tern_status tern_cl_attention(struct tern_cl_rt *rt, cl_mem out, cl_mem q, cl_mem k_cache, cl_mem v_cache,
                              int n_head, int n_head_kv, int head_dim, cl_mem pos, cl_mem seq, int n_ctx,
                              int n_tok);
/* out[i] = act(gate[i]) * up[i], i < n (out may be gate). */
tern_status tern_cl_ffn_act(struct tern_cl_rt *rt, cl_mem out, cl_mem gate, cl_mem up, int64_t n,
                            enum tern_ffn_act act);
/* y[i] += x[i], i < n. */
tern_status tern_cl_add(struct tern_cl_rt *rt, cl_mem y, cl_mem x, int64_t n);

#endif
