/* The planner (see plan.h): enumerate chains of distinct devices, layer counts per device and the
 * places of the embedding and the head; keep the fitting plan with the least predicted time for a
 * request of TERN_PLAN_PROMPT prompt and as many generated tokens. Decode runs the chain one device
 * after another for every token, so a split only pays where memory forces it or the boundary is
 * cheap against what a faster device saves; prefill is weighed in the same request time. */
#include "plan.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

/* Chains longer than this are not searched: the enumeration grows as n_layer^(length-1) times the
 * device permutations. With 30 layers three-device chains take 0.5 ms over 3 devices and 36 ms
 * over 5; beyond 5 devices only two-device chains are searched. */
enum { MAX_CHAIN = 3, MAX_DEVICES_FOR_3 = 5 };

int tern_plan_layers_on(const struct tern_plan *p, int d) {
    int n = 0;
    for (int i = 0; i < p->n_seg; i++)
        if (p->seg[i].dev == d)
            n += p->seg[i].end - p->seg[i].begin;
    return n;
}

bool tern_plan_fits(const struct tern_plan_model *m, const struct tern_plan_device *devs, int d,
                    const struct tern_plan *p, uint64_t *need) {
    const struct tern_plan_device *dv = &devs[d];
    const uint64_t limit = dv->max_alloc ? dv->max_alloc : UINT64_MAX;
    const int n_l = tern_plan_layers_on(p, d);
    bool ok = true;
    uint64_t bytes = (uint64_t)n_l * (m->layer_kv_bytes + (dv->unified ? 0 : m->layer_weight_bytes));
    if (n_l > 0 && m->layer_max_buffer > limit)
        ok = false;
    /* a head larger than one buffer is split by rows (the devices do); the embedding is not */
    const bool head = p->head_dev == d, embed = p->embed_dev == d;
    if (embed && m->embed_bytes > limit)
        ok = false;
    if (!dv->unified) {
        if (head)
            bytes += m->head_bytes;
        if (embed && !(head && m->tied))
            bytes += m->embed_bytes;
    }
    if (need)
        *need = bytes;
    return ok && bytes <= dv->mem_bytes;
}

bool tern_plan_pipelined(const struct tern_plan_device *devs, const struct tern_plan *p) {
    int sharing = 0;
    for (int i = 0; i < p->n_seg; i++)
        sharing += devs[p->seg[i].dev].shares_cpu_cores;
    return p->n_seg >= 2 && sharing <= 1;
}

void tern_plan_predict(const struct tern_plan_model *m, const struct tern_plan_device *devs,
                       struct tern_plan *p) {
    (void)m;
    const struct tern_probe *e = &devs[p->embed_dev].probe, *h = &devs[p->head_dev].probe;
    double dec = e->call_s / 2 + h->head_s, pre = 0, slowest = 0;
    for (int i = 0; i < p->n_seg; i++) {
        const struct tern_probe *pr = &devs[p->seg[i].dev].probe;
        const int n = p->seg[i].end - p->seg[i].begin;
        dec += n * pr->decode_layer_s + pr->call_s;
        const double seg = n * pr->prefill_layer_s + pr->call_token_s;
        pre += seg;
        slowest = seg > slowest ? seg : slowest;
    }
    if (tern_plan_pipelined(devs, p)) {
        /* chunks move through the ranges in a wavefront: chunks + ranges - 1 steps of the slowest */
        const int chunks = TERN_PLAN_PROMPT / TERN_PIPELINE_CHUNK;
        const double piped = (chunks + p->n_seg - 1) * slowest / chunks;
        pre = piped < pre ? piped : pre;
    }
    p->decode_s = dec;
    p->prefill_s = pre + e->call_token_s / 2 + h->head_s / TERN_PLAN_PROMPT;
}

static double request_s(const struct tern_plan *p) {
    return TERN_PLAN_PROMPT * (p->prefill_s + p->decode_s);
}

static bool plan_fits(const struct tern_plan_model *m, const struct tern_plan_device *devs, int n_dev,
                      const struct tern_plan *p) {
    for (int d = 0; d < n_dev; d++)
        if (!tern_plan_fits(m, devs, d, p, NULL))
            return false;
    return true;
}

struct search {
    const struct tern_plan_model *m;
    const struct tern_plan_device *devs;
    int n_dev;
    int chain[TERN_MAX_DEVICES], counts[TERN_MAX_DEVICES], len;
    bool used[TERN_MAX_DEVICES];
    struct tern_plan best;
    bool found;
};

/* Every embedding and head place for the chain in s. */
static void try_chain(struct search *s) {
    struct tern_plan p = {0};
    int layer = 0;
    for (int i = 0; i < s->len; i++) {
        p.seg[i] = (struct tern_plan_seg){s->chain[i], layer, layer + s->counts[i]};
        layer += s->counts[i];
    }
    p.n_seg = s->len;
    for (int e = 0; e < s->n_dev; e++) {
        if (!s->devs[e].alive)
            continue;
        for (int h = 0; h < s->n_dev; h++) {
            if (!s->devs[h].alive)
                continue;
            p.embed_dev = e;
            p.head_dev = h;
            if (!plan_fits(s->m, s->devs, s->n_dev, &p))
                continue;
            tern_plan_predict(s->m, s->devs, &p);
            if (!s->found || request_s(&p) < request_s(&s->best)) {
                s->best = p;
                s->found = true;
            }
        }
    }
}

/* Chains of length s->len: position i gets an unused device and at least one layer. */
static void extend(struct search *s, int i, int layers_left) {
    if (i == s->len) {
        if (layers_left == 0)
            try_chain(s);
        return;
    }
    for (int d = 0; d < s->n_dev; d++) {
        if (s->used[d] || !s->devs[d].alive)
            continue;
        s->used[d] = true;
        s->chain[i] = d;
        const int lo = i + 1 == s->len ? layers_left : 1;
        const int hi = i + 1 == s->len ? layers_left : layers_left - (s->len - i - 1);
        for (int c = lo; c <= hi; c++) {
            s->counts[i] = c;
            extend(s, i + 1, layers_left - c);
        }
        s->used[d] = false;
    }
}

tern_status tern_plan_make(const struct tern_plan_model *m, const struct tern_plan_device *devs, int n_dev,
                           struct tern_plan *out) {
    memset(out, 0, sizeof *out);
    if (n_dev <= 0 || n_dev > TERN_MAX_DEVICES || m->n_layer <= 0)
        return TERN_ERR_ARG;
    struct search s = {.m = m, .devs = devs, .n_dev = n_dev};
    int n_alive = 0;
    for (int d = 0; d < n_dev; d++)
        n_alive += devs[d].alive;
    const int max_chain = n_alive <= MAX_DEVICES_FOR_3 ? MAX_CHAIN : 2;
    for (s.len = 1; s.len <= n_alive && s.len <= max_chain && s.len <= m->n_layer; s.len++)
        extend(&s, 0, m->n_layer);
    if (!s.found) {
        tern_log_error("no device placement fits the model: %d layers of %.1f MiB weights and %.1f MiB KV "
                       "cache each, head %.1f MiB (lower the context size or add memory)",
                       m->n_layer, (double)m->layer_weight_bytes / 1048576.0,
                       (double)m->layer_kv_bytes / 1048576.0, (double)m->head_bytes / 1048576.0);
        return TERN_ERR_NOMEM;
    }
    /* the preferred device keeps everything unless another plan is clearly faster */
    if (devs[0].alive) {
        struct tern_plan one = {.n_seg = 1, .seg = {{0, 0, m->n_layer}}, .embed_dev = 0, .head_dev = 0};
        if (plan_fits(m, devs, n_dev, &one)) {
            tern_plan_predict(m, devs, &one);
            if (request_s(&s.best) * 1.05 >= request_s(&one))
                s.best = one;
        }
    }
    *out = s.best;
    return TERN_OK;
}

tern_status tern_plan_split(const struct tern_plan_model *m, const struct tern_plan_device *devs, int n_dev,
                            const int *counts, const char *const *names, struct tern_plan *out) {
    memset(out, 0, sizeof *out);
    int total = 0;
    for (int d = 0; d < n_dev; d++) {
        if (counts[d] < 0)
            return TERN_ERR_ARG;
        total += counts[d];
    }
    if (n_dev <= 0 || n_dev > TERN_MAX_DEVICES || total != m->n_layer) {
        tern_log_error("the split gives %d layers to %d device%s but the model has %d layers", total, n_dev,
                       n_dev == 1 ? "" : "s", m->n_layer);
        return TERN_ERR_ARG;
    }
    int layer = 0;
    for (int d = 0; d < n_dev; d++) {
        if (counts[d] > 0)
            out->seg[out->n_seg++] = (struct tern_plan_seg){d, layer, layer + counts[d]};
        layer += counts[d];
    }
    out->embed_dev = 0;
    out->head_dev = n_dev - 1;
    for (int d = 0; d < n_dev; d++) {
        uint64_t need = 0;
        if (!tern_plan_fits(m, devs, d, out, &need)) {
            const uint64_t limit = devs[d].max_alloc ? devs[d].max_alloc : UINT64_MAX;
            const double mib = 1048576.0;
            if (out->embed_dev == d && m->embed_bytes > limit)
                tern_log_error(
                    "%s cannot hold the embedding of the split: %.1f MiB in one buffer, at most %.1f "
                    "MiB there (list another device first)",
                    names[d], (double)m->embed_bytes / mib, (double)limit / mib);
            else if (m->layer_max_buffer > limit)
                tern_log_error("%s cannot hold a layer: a %.1f MiB buffer, at most %.1f MiB there", names[d],
                               (double)m->layer_max_buffer / mib, (double)limit / mib);
            else
                tern_log_error("%s cannot hold its part of the split: %.1f MiB needed, %.1f MiB usable",
                               names[d], (double)need / mib, (double)devs[d].mem_bytes / mib);
            return TERN_ERR_NOMEM;
        }
    }
    tern_plan_predict(m, devs, out);
    return TERN_OK;
}

void tern_plan_format(const struct tern_plan *p, const char *const *names, char *buf, size_t n) {
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < p->n_seg && at < n; i++) {
        const struct tern_plan_seg *s = &p->seg[i];
        at += (size_t)snprintf(buf + at, n - at, "%s%s[%d-%d]", i ? " " : "", names[s->dev], s->begin,
                               s->end - 1);
    }
    if (p->n_seg && p->embed_dev != p->seg[0].dev && at < n)
        at += (size_t)snprintf(buf + at, n - at, " embd:%s", names[p->embed_dev]);
    if (p->n_seg && p->head_dev != p->seg[p->n_seg - 1].dev && at < n)
        snprintf(buf + at, n - at, " head:%s", names[p->head_dev]);
}
