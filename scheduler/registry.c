/* The device registry (see registry.h). */
#include "registry.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

tern_status tern_registry_add(struct tern_registry *r, const char *id, struct tern_device dev) {
    if (r->n >= TERN_MAX_DEVICES) {
        tern_log_error("too many devices (at most %d)", TERN_MAX_DEVICES);
        dev.ops->free(dev.ctx);
        return TERN_ERR_ARG;
    }
    struct tern_registry_entry *e = &r->e[r->n];
    memset(e, 0, sizeof *e);
    tern_status st = dev.ops->describe(dev.ctx, &e->info);
    if (st) {
        dev.ops->free(dev.ctx);
        return st;
    }
    e->dev = dev;
    snprintf(e->id, sizeof e->id, "%s", id);
    e->plan.mem_bytes = e->info.mem_bytes;
    e->plan.max_alloc = e->info.max_alloc;
    e->plan.unified = e->info.unified_memory;
    e->plan.shares_cpu_cores = e->info.shares_cpu_cores;
    e->plan.alive = true;
    r->n++;
    return TERN_OK;
}

void tern_registry_plan_devices(const struct tern_registry *r, struct tern_plan_device *devs) {
    for (int i = 0; i < r->n; i++)
        devs[i] = r->e[i].plan;
}

int tern_registry_find(const struct tern_registry *r, const char *id) {
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->e[i].id, id) == 0)
            return i;
    return -1;
}

void tern_registry_free(struct tern_registry *r) {
    for (int i = 0; i < r->n; i++)
        r->e[i].dev.ops->free(r->e[i].dev.ctx);
    r->n = 0;
}
