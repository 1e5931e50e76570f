/* Tuning the OpenCL kernel parameters of a device (cl_device.h, docs/opencl.md#tuning): the search
 * over kernel designs, work-group sizes, lanes per row and matmul block sizes, each candidate timed
 * by the probe on the loaded model, and the stored result in the cache folder that
 * tern_cl_rt_create reads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../scheduler/cache.h"
#include "../scheduler/log.h"
#include "../scheduler/probe.h"
#include "cl_device.h"
#include "cl_runtime.h"
#include "cl_sources.h"

static const char tune_magic[] = "tern-cl-tune 1";

/* The device, its driver and platform, tern's version and the kernel sources: a new driver or new
 * kernels are measured again. */
static void tune_key(const struct tern_cl_rt *rt, char *buf, size_t n) {
    snprintf(buf, n, "%s|%s|%s|%s|%s|tern %s|kernels %016llx", rt->name, rt->vendor, rt->driver,
             rt->platform_name, rt->version, TERN_PROJECT_VERSION,
             (unsigned long long)tern_cl_sources_hash());
    buf[strcspn(buf, "\r\n")] = 0;
}

static bool tune_path(const char *key, char *buf, size_t n) {
    return tern_cache_file("cl-tune", key, strlen(key), ".txt", buf, n);
}

static bool pow2(int v) {
    return v > 0 && (v & (v - 1)) == 0;
}

/* What the runtime can build: see struct tern_cl_tuning. */
static bool tuning_valid(int cpu, int wg, int lpr, int mm_kb) {
    return (cpu == 0 || cpu == 1) && pow2(wg) && wg >= 32 && wg <= 1024 && pow2(lpr) && lpr <= wg &&
           mm_kb >= 1 && mm_kb <= 8;
}

static bool parse_tune(FILE *f, void *user) {
    int *v = user;
    return fscanf(f, "%d %d %d %d", &v[0], &v[1], &v[2], &v[3]) == 4 && tuning_valid(v[0], v[1], v[2], v[3]);
}

bool tern_cl_tune_load(const struct tern_cl_rt *rt, struct tern_cl_tuning *out) {
    char key[1024], path[4096];
    int v[4];
    tune_key(rt, key, sizeof key);
    if (!tune_path(key, path, sizeof path) ||
        !tern_cache_read(path, tune_magic, key, "OpenCL tuning", "using the built-in parameters", parse_tune,
                         v))
        return false;
    *out = (struct tern_cl_tuning){v[0] == 1, v[1], v[2], v[3]};
    return true;
}

struct tune_file {
    const char *key;
    const struct tern_cl_tune_result *r;
};

static bool fill_tune(FILE *f, void *user) {
    const struct tune_file *tf = user;
    const struct tern_cl_tune_result *r = tf->r;
    const struct tern_cl_tuning *b = &r->best;
    return fprintf(f,
                   "%s\n%s\n%d %d %d %d\n"
                   "cost %.6f ms per layer (decode + prefill token); built-in %d %d %d %d: %.6f ms\n",
                   tune_magic, tf->key, b->cpu_kernels, b->wg, b->lpr, b->mm_kb, r->best_s * 1e3,
                   r->base.cpu_kernels, r->base.wg, r->base.lpr, r->base.mm_kb, r->base_s * 1e3) > 0;
}

/* Store the result in path; one warning when the file cannot be written, path "" when caching is
 * off. */
static void tune_store(const struct tern_cl_rt *rt, const struct tern_cl_tune_result *r, char *path,
                       size_t n) {
    char key[1024];
    tune_key(rt, key, sizeof key);
    if (!tune_path(key, path, n)) {
        path[0] = 0;
        return;
    }
    struct tune_file tf = {key, r};
    tern_cache_write(path, "OpenCL tuning", fill_tune, &tf);
}

/* ---------------------------------------------------------------- the search */

enum { MAX_TRIED = 64 };

struct search {
    const char *spec;
    const struct tern_model_view *m;
    struct tern_cl_tuning tried[MAX_TRIED];
    double cost[MAX_TRIED];
    int n;
};

static bool same(const struct tern_cl_tuning *a, const struct tern_cl_tuning *b) {
    return a->cpu_kernels == b->cpu_kernels && a->wg == b->wg && a->lpr == b->lpr && a->mm_kb == b->mm_kb;
}

/* The cost of want (INFINITY when the device cannot build or run it: its error is dropped); used
 * gets the parameters the device really ran, each set measured once. */
static double measure(struct search *s, const struct tern_cl_tuning *want, struct tern_cl_tuning *used) {
    struct tern_device dev;
    struct tern_log_capture cap;
    double cost = INFINITY;
    *used = *want;
    tern_log_capture_begin(&cap);
    tern_status st = tern_cl_device_create_tuned(s->spec, want, &dev);
    if (st)
        goto done;
    const struct tern_cl_rt *rt = tern_cl_device_rt(&dev);
    *used = (struct tern_cl_tuning){rt->cpu_kernels, rt->wg, rt->lpr, rt->mm_kb};
    for (int i = 0; i < s->n; i++)
        if (same(&s->tried[i], used)) {
            dev.ops->free(dev.ctx);
            tern_log_capture_end(&cap, 0);
            return s->cost[i];
        }
    struct tern_probe p;
    st = tern_probe_measure(&dev, s->m, &p);
    dev.ops->free(dev.ctx);
    if (!st)
        cost = p.decode_layer_s + p.prefill_layer_s;
done:
    tern_log_capture_end(&cap, 0);
    if (st)
        tern_log_debug("cl: tuning: %s wg %d lpr %d mm_kb %d fails: %s", want->cpu_kernels ? "cpu" : "gpu",
                       want->wg, want->lpr, want->mm_kb, cap.msg);
    if (s->n < MAX_TRIED) {
        s->tried[s->n] = *used;
        s->cost[s->n++] = cost;
    }
    tern_log_info("cl: tuning %s: %s design, wg %d, lpr %d, mm_kb %d: %.4f ms per layer", s->spec,
                  used->cpu_kernels ? "cpu" : "gpu", used->wg, used->lpr, used->mm_kb, cost * 1e3);
    return cost;
}

/* A candidate must beat the current choice by this share to replace it (timing noise). */
#define TUNE_MARGIN 0.98

enum param { P_WG, P_LPR, P_MM_KB };

static int *param(struct tern_cl_tuning *t, enum param which) {
    return which == P_WG ? &t->wg : which == P_LPR ? &t->lpr : &t->mm_kb;
}

/* One parameter of cur over the powers of two lo..hi (at most limit), keeping the best. */
static void sweep(struct search *s, struct tern_cl_tuning *cur, double *cur_s, enum param which, int lo,
                  int hi, int limit) {
    const int start = *param(cur, which);
    for (int v = lo; v <= hi && v <= limit; v *= 2) {
        if (v == start)
            continue;
        struct tern_cl_tuning cand = *cur, used;
        *param(&cand, which) = v;
        const double c = measure(s, &cand, &used);
        if (c < *cur_s * TUNE_MARGIN) {
            *cur = used;
            *cur_s = c;
        }
    }
}

tern_status tern_cl_device_tune(const char *spec, const struct tern_model_view *m, bool quick,
                                struct tern_cl_tune_result *out) {
    memset(out, 0, sizeof *out);
    struct tern_device dev;
    tern_status st = tern_cl_device_create_tuned(spec, NULL, &dev);
    if (st)
        return st;
    const struct tern_cl_rt *rt = tern_cl_device_rt(&dev);
    out->base = rt->base;
    snprintf(out->name, sizeof out->name, "%.127s", rt->name);
    dev.ops->free(dev.ctx);

    struct search s = {.spec = spec, .m = m};
    out->base_s = measure(&s, &out->base, &out->base);
    if (!isfinite(out->base_s)) {
        tern_log_error("cl: cannot tune %s: its built-in kernel parameters fail on this model", out->name);
        return TERN_ERR_DEVICE;
    }
    out->best = out->base;
    out->best_s = out->base_s;
    for (int design = 0; design < (quick ? 1 : 2); design++) {
        struct tern_cl_tuning cur = out->base;
        double cur_s = out->base_s;
        if (design == 1) {
            const struct tern_cl_tuning other = tern_cl_builtin_tuning(!out->base.cpu_kernels);
            cur_s = measure(&s, &other, &cur);
            if (!(cur_s < 2 * out->best_s))
                continue; /* a design far behind is not refined */
        }
        sweep(&s, &cur, &cur_s, P_WG, 32, 256, 1024);
        if (!cur.cpu_kernels && !quick) { /* lanes and matmul stages exist only in the GPU design */
            sweep(&s, &cur, &cur_s, P_LPR, 1, 32, cur.wg);
            sweep(&s, &cur, &cur_s, P_MM_KB, 1, 4, 4);
        }
        if (cur_s < out->best_s * TUNE_MARGIN) {
            out->best = cur;
            out->best_s = cur_s;
        }
    }
    out->n_tried = s.n;

    /* stored through a device opened with the result: the key is the one later opens compute */
    st = tern_cl_device_create_tuned(spec, &out->best, &dev);
    if (st)
        return st;
    tune_store(tern_cl_device_rt(&dev), out, out->path, sizeof out->path);
    dev.ops->free(dev.ctx);
    return TERN_OK;
}
