/* Assembling a session's devices: parsing a device spec, opening the CPU and OpenCL devices into
 * the scheduler's registry, probing them on a model (with the probe cache), and the model sizes
 * the planner needs. */
#ifndef TERN_DEVICES_H
#define TERN_DEVICES_H

#include <stdbool.h>

#include "../../scheduler/plan.h"
#include "../../scheduler/registry.h"
#include "session.h"

/* Open the devices of spec (see tern_device_spec_valid) into reg, in spec order. `auto` is the CPU
 * and every OpenCL device; `cl` every OpenCL device. Under auto and cl a device that fails to open
 * (no kernels, failed self-test) is dropped with one notice naming it and why, and auto without
 * any OpenCL says so in one notice and runs on the CPU. A device named alone (cl:N, cl:NAME, cpu)
 * that fails is an error. */
tern_status tern_devices_create(const char *spec, int n_threads, struct tern_registry *reg);

/* Sizes of one layer, the head and the embedding, for a context of n_ctx positions. */
void tern_devices_plan_model(const struct tern_model_view *m, int n_ctx, struct tern_plan_model *out);

/* Give every alive device of reg its profile on m: from the probe cache, or measured (and cached)
 * when absent or when reprobe is set. A device whose probe fails is dropped with one notice. */
tern_status tern_devices_probe(struct tern_registry *reg, const struct tern_model_view *m, bool reprobe);

#endif
