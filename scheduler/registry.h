/* The device registry: the devices a session may use, each with its description, its profile for
 * the planner and whether it is still alive. host/ opens the devices (it alone may include cpu/ and
 * cl/) and hands them over; the registry owns them from then on. */
#ifndef TERN_REGISTRY_H
#define TERN_REGISTRY_H

#include "device.h"
#include "plan.h"

struct tern_registry_entry {
    struct tern_device dev;
    struct tern_device_info info;
    char id[32];                  /* how a device spec names it: "cpu", "cl:0" */
    struct tern_plan_device plan; /* profile (after probing), memory, alive */
};

struct tern_registry {
    int n;
    struct tern_registry_entry e[TERN_MAX_DEVICES];
};

/* Take ownership of dev under id (describes it). On failure dev is released. */
tern_status tern_registry_add(struct tern_registry *r, const char *id, struct tern_device dev);
/* devs[i] <- the planner's view of device i (profile, memory, alive), i < r->n. */
void tern_registry_plan_devices(const struct tern_registry *r, struct tern_plan_device *devs);
/* Index of the device named id, or -1. */
int tern_registry_find(const struct tern_registry *r, const char *id);
/* Release every device; r is empty afterwards. */
void tern_registry_free(struct tern_registry *r);

#endif
