/* Assembling devices (see devices.h). */
#include "devices.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cl/cl_device.h"
#include "../../cpu/cpu_device.h"
#include "../../scheduler/log.h"
#include "../../scheduler/probe.h"
#include "../tern.h"

/* Next item of a spec list into item; returns the rest, or NULL at the end. */
static const char *next_item(const char *s, char *item, size_t n) {
    if (!s)
        return NULL;
    size_t len = strcspn(s, ",+");
    snprintf(item, n, "%.*s", (int)(len < n ? len : n - 1), s);
    return s[len] ? s + len + 1 : s + len;
}

static bool item_valid(const char *item) {
    if (!strcmp(item, "cpu") || !strcmp(item, "cl"))
        return true;
    return strncmp(item, "cl:", 3) == 0 && item[3];
}

bool tern_device_spec_valid(const char *spec) {
    if (!spec || !spec[0]) {
        tern_log_error("empty device spec (expected auto, cpu, cl, cl:N, cl:NAME or a list of them)");
        return false;
    }
    if (!strcmp(spec, "auto"))
        return true;
    char item[64];
    int n = 0;
    for (const char *s = spec; s && *s;) {
        s = next_item(s, item, sizeof item);
        if (!item_valid(item)) {
            tern_log_error("unknown device '%s' in '%s' (expected auto, cpu, cl, cl:N or cl:NAME)", item,
                           spec);
            return false;
        }
        if (++n > TERN_MAX_DEVICES) {
            tern_log_error("device spec '%s' lists more than %d devices", spec, TERN_MAX_DEVICES);
            return false;
        }
        if (s && !*s && (spec[strlen(spec) - 1] == ',' || spec[strlen(spec) - 1] == '+')) {
            tern_log_error("device spec '%s' ends with a separator", spec);
            return false;
        }
    }
    return true;
}

static tern_status add_cpu(struct tern_registry *reg, int n_threads) {
    struct tern_device dev;
    tern_status st = tern_cpu_device_create(n_threads, &dev);
    if (st)
        return st;
    return tern_registry_add(reg, "cpu", dev);
}

/* Open OpenCL device sel ("0", "NAME") as id; quiet: a failure is a notice, not an error. */
static tern_status add_cl(struct tern_registry *reg, const char *sel, const char *id, bool quiet) {
    if (tern_registry_find(reg, id) >= 0) { /* cl:0 after cl */
        tern_log_error("device %s is listed twice", id);
        return TERN_ERR_ARG;
    }
    struct tern_device dev;
    struct tern_log_capture cap;
    tern_log_capture_begin(&cap);
    tern_status st = tern_cl_device_create(sel, &dev);
    if (st)
        goto done;
    st = tern_registry_add(reg, id, dev);
done:
    tern_log_capture_end(&cap, !quiet);
    if (st && quiet)
        tern_log_info("notice: OpenCL device %s dropped: %s", id,
                      cap.n_errors ? cap.msg : tern_status_message(st));
    return st;
}

/* Every OpenCL device; false when none opened. */
static bool add_all_cl(struct tern_registry *reg, bool auto_mode) {
    int n = 0;
    tern_cl_device_count(&n);
    if (n == 0) {
        /* ask for device 0 only to learn why there is none (no loader, no platform) */
        struct tern_device dev;
        struct tern_log_capture cap;
        tern_log_capture_begin(&cap);
        tern_status st = tern_cl_device_create("0", &dev);
        if (!st)
            dev.ops->free(dev.ctx);
        tern_log_capture_end(&cap, 0);
        const char *why = strstr(cap.msg, "unavailable: ") ? strstr(cap.msg, "unavailable: ") + 13 : cap.msg;
        if (auto_mode)
            tern_log_info("notice: no OpenCL device (%s); running on the CPU", why);
        else
            tern_log_error("no OpenCL device: %s", why);
        return false;
    }
    int opened = 0;
    for (int i = 0; i < n && reg->n < TERN_MAX_DEVICES; i++) {
        char sel[16], id[32];
        snprintf(sel, sizeof sel, "%d", i);
        snprintf(id, sizeof id, "cl:%d", i);
        tern_status st = add_cl(reg, sel, id, true);
        if (!st)
            opened++;
    }
    if (!opened && !auto_mode)
        tern_log_error("no OpenCL device could be used (each was dropped above)");
    return opened > 0;
}

tern_status tern_devices_create(const char *spec, int n_threads, struct tern_registry *reg) {
    reg->n = 0;
    if (!tern_device_spec_valid(spec))
        return TERN_ERR_ARG;
    tern_status st;
    if (!strcmp(spec, "auto")) {
        st = add_cpu(reg, n_threads);
        if (st)
            return st;
        add_all_cl(reg, true);
        return TERN_OK;
    }
    char item[64];
    for (const char *s = spec; s && *s;) {
        s = next_item(s, item, sizeof item);
        if (tern_registry_find(reg, item) >= 0) {
            tern_log_error("device %s is listed twice in '%s'", item, spec);
            st = TERN_ERR_ARG;
        } else if (!strcmp(item, "cpu")) {
            st = add_cpu(reg, n_threads);
        } else if (!strcmp(item, "cl")) {
            st = add_all_cl(reg, false) ? TERN_OK : TERN_ERR_NO_DEVICE;
        } else {
            st = add_cl(reg, item + 3, item, false);
        }
        if (st)
            goto done;
    }
    return TERN_OK;
done: /* failures only */
    tern_registry_free(reg);
    return st;
}

static uint64_t ternary_bytes(const struct tern_ternary *w) {
    return (uint64_t)w->n_out * (uint64_t)w->row_bytes;
}

void tern_devices_plan_model(const struct tern_model_view *m, int n_ctx, struct tern_plan_model *out) {
    const struct tern_hparams *hp = &m->hp;
    memset(out, 0, sizeof *out);
    out->n_layer = hp->n_layer;
    const uint64_t kv_buf = (uint64_t)n_ctx * (uint64_t)hp->n_head_kv * (uint64_t)hp->head_dim * 2;
    out->layer_kv_bytes = 2 * kv_buf;
    out->layer_max_buffer = kv_buf;
    for (int l = 0; l < hp->n_layer; l++) {
        const struct tern_layer_weights *L = &m->layers[l];
        const struct tern_ternary *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wgate, &L->wup, &L->wdown};
        uint64_t bytes = (uint64_t)(2 * hp->n_embd + (L->attn_sub_norm ? hp->n_head * hp->head_dim : 0) +
                                    (L->ffn_sub_norm ? hp->n_ff : 0)) *
                         sizeof(float);
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
            bytes += ternary_bytes(ws[i]);
            if (ternary_bytes(ws[i]) > out->layer_max_buffer)
                out->layer_max_buffer = ternary_bytes(ws[i]);
        }
        if (bytes > out->layer_weight_bytes)
            out->layer_weight_bytes = bytes;
    }
    out->head_bytes = (uint64_t)m->output.row_bytes * (uint64_t)m->output.ne1 + (uint64_t)hp->n_embd * 4;
    out->embed_bytes = (uint64_t)m->tok_embd.row_bytes * (uint64_t)m->tok_embd.ne1;
    out->tied = m->output.data == m->tok_embd.data;
}

/* The probe cache key: the device as its driver names it, tern's version and the model's shape. */
static void probe_key(const struct tern_registry_entry *e, const struct tern_model_view *m, char *buf,
                      size_t n) {
    const struct tern_hparams *hp = &m->hp;
    snprintf(buf, n,
             "tern %s | %s | %s | %s | %s | embd %d ff %d heads %d/%d dim %d vocab %d head %s | sub-norms %d",
             TERN_VERSION, e->info.name, e->info.vendor, e->info.driver, e->info.build, hp->n_embd, hp->n_ff,
             hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_vocab, tern_type_name(m->output.type),
             hp->has_sub_norms);
}

tern_status tern_devices_probe(struct tern_registry *reg, const struct tern_model_view *m, bool reprobe) {
    int alive = 0;
    for (int i = 0; i < reg->n; i++) {
        struct tern_registry_entry *e = &reg->e[i];
        if (!e->plan.alive)
            continue;
        char key[768];
        probe_key(e, m, key, sizeof key);
        if (reprobe || !tern_probe_cache_load(key, &e->plan.probe)) {
            tern_log_info("notice: measuring %s (%s) on this model's shape (once; cached)", e->id,
                          e->info.name);
            struct tern_log_capture cap;
            tern_log_capture_begin(&cap);
            tern_status st = tern_probe_measure(&e->dev, m, &e->plan.probe);
            tern_log_capture_end(&cap, 0);
            if (st) {
                tern_log_info("notice: %s dropped: its probe failed: %s", e->id,
                              cap.n_errors ? cap.msg : tern_status_message(st));
                e->plan.alive = false;
                continue;
            }
            tern_probe_cache_store(key, &e->plan.probe);
        }
        e->info.certify_head = e->plan.probe.head_cert_s < e->plan.probe.head_s;
        alive++;
    }
    if (!alive) {
        tern_log_error("no device could run a layer of this model");
        return TERN_ERR_NO_DEVICE;
    }
    return TERN_OK;
}
