/* The probe: what one real layer of the loaded model costs on a device, for a decode step and for
 * a prefill chunk, plus the head and the hidden-state transfer (struct tern_probe, plan.h).
 * Profiles are cached in the cache folder per key (device, driver, tern version, model shape), so
 * only the first start on a machine measures. */
#ifndef TERN_PROBE_H
#define TERN_PROBE_H

#include <stdbool.h>

#include "device.h"
#include "plan.h"

/* Tokens of the prefill chunk the probe times, and the layers it runs them through. */
enum { TERN_PROBE_CHUNK = 64, TERN_PROBE_LAYERS = 6 };

/* Measure dev on model: loads its first TERN_PROBE_LAYERS layers with the embedding and head for a
 * short context and times them (under a second for a 2B model on the CPU, about 2 s on PoCL). The device is
 * left loaded with that set; the caller loads it again for its plan. head_s is INFINITY when the device
 * cannot hold the head. */
tern_status tern_probe_measure(const struct tern_device *dev, const struct tern_model_view *m,
                               struct tern_probe *out);

/* The cached profile of key: true when a valid entry exists. A file that does not parse is
 * ignored with one notice (and replaced by the next store), never trusted. */
bool tern_probe_cache_load(const char *key, struct tern_probe *out);
/* Store a profile; silent when caching is off, one warning when the file cannot be written. */
void tern_probe_cache_store(const char *key, const struct tern_probe *p);

#endif
