/* The probe (see probe.h). Each figure is the best of a few runs: the minimum is what the device
 * can do, and the planner compares devices, not the noise of the moment. */
#include "probe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "head_cert.h"
#include "log.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static tern_status sync_dev(const struct tern_device *dev) {
    return dev->ops->sync ? dev->ops->sync(dev->ctx) : TERN_OK;
}

/* Best time of reps runs of layers [0, n_layers) on n tokens of sequence 0 from pos; h is restored
 * from h0 before each run so the values stay those of real embeddings. */
static tern_status time_layers(const struct tern_device *dev, float *h, const float *h0, size_t floats, int n,
                               int pos, int n_layers, int reps, double *best) {
    int32_t positions[TERN_PROBE_CHUNK], seqs[TERN_PROBE_CHUNK] = {0};
    *best = INFINITY;
    for (int r = 0; r < reps; r++) {
        memcpy(h, h0, floats * sizeof(float));
        for (int i = 0; i < n; i++)
            positions[i] = pos + r * n + i;
        const struct tern_batch b = {n, positions, seqs};
        const double t0 = now_s();
        tern_status st = dev->ops->run_layers(dev->ctx, h, &b, 0, n_layers);
        if (st)
            return st;
        st = sync_dev(dev);
        if (st)
            return st;
        const double t = now_s() - t0;
        *best = t < *best ? t : *best;
    }
    return TERN_OK;
}

/* Best time of 3 head calls on one token (hidden state h0); req: NULL for the full head, or a greedy
 * request for the certified head. */
static tern_status time_head(const struct tern_device *dev, const struct tern_model_view *m, const float *h0,
                             const struct tern_head_request *req, double *best) {
    float *logits = malloc((size_t)m->output.ne1 * sizeof(float));
    if (!logits)
        return TERN_ERR_NOMEM;
    tern_status st = TERN_OK;
    for (int r = 0; r < 3; r++) {
        const double t0 = now_s();
        st = dev->ops->logits(dev->ctx, logits, h0, 1, req ? &req : NULL);
        if (st)
            goto done;
        st = sync_dev(dev);
        if (st)
            goto done;
        const double t = now_s() - t0;
        *best = t < *best ? t : *best;
    }
done:
    free(logits);
    return st;
}

tern_status tern_probe_measure(const struct tern_device *dev, const struct tern_model_view *m,
                               struct tern_probe *out) {
    enum { C = TERN_PROBE_CHUNK, REPS = 5 };
    const int n_ctx = 2 * C + REPS + 8;
    /* several layers, so that a token streams weights from memory as a whole model's does: one
     * layer run again and again stays in a large L3 (2B-4T's is 17.6 MiB) and reads half as slow */
    const int L = m->hp.n_layer < TERN_PROBE_LAYERS ? m->hp.n_layer : TERN_PROBE_LAYERS;
    const size_t n_embd = (size_t)m->hp.n_embd;
    memset(out, 0, sizeof *out);
    /* the head as the executor would load it with --head-mode auto allowed to certify; then without
     * the certified head, then without a head (e.g. one larger than the device's largest buffer) */
    const unsigned heads[3] = {
        tern_head_cert_supported(&m->output) ? TERN_PART_HEAD | TERN_PART_HEAD_CERT : 0, TERN_PART_HEAD, 0};
    tern_status st = TERN_ERR_ARG;
    int h_try = heads[0] ? 0 : 1;
    for (; h_try < 3; h_try++) {
        struct tern_log_capture cap;
        tern_log_capture_begin(&cap);
        st = dev->ops->load(dev->ctx, m, 0, L, TERN_PART_EMBED | heads[h_try], n_ctx, 1);
        tern_log_capture_end(&cap, 0);
        if (!st)
            break;
    }
    if (st)
        return st;
    float *h = malloc(2 * C * n_embd * sizeof(float)), *h0 = h ? h + C * n_embd : NULL;
    int32_t tokens[C];
    for (int i = 0; i < C; i++)
        tokens[i] = (int32_t)((i * 7919 + 13) % m->hp.n_vocab);
    out->head_s = out->head_cert_s = INFINITY;
    st = TERN_ERR_NOMEM;
    if (!h)
        goto done;
    st = dev->ops->embed(dev->ctx, h0, tokens, C);
    if (st)
        goto done;
    double t;
    /* warm-up (first touch of weights and scratch), then a prefill chunk at position 0 */
    st = time_layers(dev, h, h0, C * n_embd, C, 0, L, 1, &t);
    if (st)
        goto done;
    st = time_layers(dev, h, h0, C * n_embd, C, 0, L, 2, &t);
    if (st)
        goto done;
    out->prefill_layer_s = t / C / L;
    st = time_layers(dev, h, h0, n_embd, 1, C, L, REPS, &t);
    if (st)
        goto done;
    out->decode_layer_s = t / L;
    st = time_layers(dev, h, h0, n_embd, 1, 0, 0, REPS, &out->call_s);
    if (st)
        goto done;
    st = time_layers(dev, h, h0, C * n_embd, C, 0, 0, 2, &t);
    if (st)
        goto done;
    out->call_token_s = t / C;
    if (heads[h_try])
        st = time_head(dev, m, h0, NULL, &out->head_s);
    if (!st && (heads[h_try] & TERN_PART_HEAD_CERT)) {
        const struct tern_head_request greedy = {.top_k = 1, .repeat_penalty = 1.0f};
        st = time_head(dev, m, h0, &greedy, &out->head_cert_s);
    }
done:
    free(h);
    return st;
}

static bool probe_path(const char *key, char *buf, size_t n) {
    return tern_cache_file("probe", key, strlen(key), ".txt", buf, n);
}

static const char probe_magic[] = "tern-probe 3"; /* 2: times over several layers; 3: the certified head */

static bool parse_probe(FILE *f, void *user) {
    double *v = user;
    bool ok = fscanf(f, "%lf %lf %lf %lf %lf %lf", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) == 6;
    for (int i = 0; i < 6 && ok; i++) /* the head times are +inf where there is no such head */
        ok = (isfinite(v[i]) || ((i == 2 || i == 5) && isinf(v[i]) && v[i] > 0)) && v[i] >= 0;
    return ok;
}

bool tern_probe_cache_load(const char *key, struct tern_probe *out) {
    char path[4096];
    double v[6];
    if (!probe_path(key, path, sizeof path) ||
        !tern_cache_read(path, probe_magic, key, "probe cache", "measuring again", parse_probe, v))
        return false;
    *out = (struct tern_probe){.decode_layer_s = v[0],
                               .prefill_layer_s = v[1],
                               .head_s = v[2],
                               .call_s = v[3],
                               .call_token_s = v[4],
                               .head_cert_s = v[5]};
    return true;
}

struct probe_file {
    const char *key;
    const struct tern_probe *p;
};

static bool fill_probe(FILE *f, void *user) {
    const struct probe_file *pf = user;
    const struct tern_probe *p = pf->p;
    return fprintf(f, "%s\n%s\n%.9g %.9g %.9g %.9g %.9g %.9g\n", probe_magic, pf->key, p->decode_layer_s,
                   p->prefill_layer_s, p->head_s, p->call_s, p->call_token_s, p->head_cert_s) > 0;
}

void tern_probe_cache_store(const char *key, const struct tern_probe *p) {
    char path[4096];
    if (!probe_path(key, path, sizeof path))
        return;
    struct probe_file pf = {key, p};
    tern_cache_write(path, "probe cache", fill_probe, &pf);
}
