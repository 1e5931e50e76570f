/* The OpenCL device: every OpenCL 1.2+ device of every platform the ICD loader finds. */
#ifndef TERN_CL_DEVICE_H
#define TERN_CL_DEVICE_H

#include "../scheduler/device.h"

/* Number of OpenCL devices across all platforms (0 when the loader or any platform is missing;
 * that is not an error). */
tern_status tern_cl_device_count(int *n);

/* Open the device selected by spec: a decimal index ("0", over all platforms in enumeration order)
 * or a case-insensitive substring of the device name. Builds the kernels (or loads them from the
 * binary cache). TERN_ERR_NO_DEVICE with one log line when nothing matches or no platform exists;
 * TERN_ERR_DEVICE when the device fails to build the kernels. */
tern_status tern_cl_device_create(const char *spec, struct tern_device *out);

/* The kernel parameters of a device: the design of the matvec/matmul kernels (cpu_kernels: one item
 * per row, for CPU drivers), the work-group size of the 1-D kernels (wg, a power of two >= 32),
 * lanes per row in the GPU design's matvecs (lpr, a power of two <= wg) and 128-weight blocks per
 * local-memory stage of its tiled matmul (mm_kb). See docs/opencl.md#tuning. */
struct tern_cl_tuning {
    bool cpu_kernels;
    int wg, lpr, mm_kb;
};

/* tern_cl_device_create with the given kernel parameters instead of the stored or built-in ones
 * (wg lowered to what the device allows, lpr to wg). */
tern_status tern_cl_device_create_tuned(const char *spec, const struct tern_cl_tuning *tuning,
                                        struct tern_device *out);

/* What tern_cl_device_tune measured: the device's default parameters and the best, each with its
 * cost (seconds per layer for one decoded token plus one prefill token, tern_probe_measure). */
struct tern_cl_tune_result {
    char name[128];
    struct tern_cl_tuning base, best;
    double base_s, best_s;
    int n_tried;     /* parameter sets measured */
    char path[4096]; /* where the result was stored; "" when caching is off */
};

/* Measure the device of spec on the model (decode and prefill through its first layers, as the
 * probe does) over work-group sizes, lanes per row and matmul block sizes for each kernel design,
 * and store the best in the cache folder, keyed by the device, its driver and tern's version and
 * kernels: later opens of the device use it. With quick, only the device's own design and its
 * work-group sizes are tried. */
tern_status tern_cl_device_tune(const char *spec, const struct tern_model_view *m, bool quick,
                                struct tern_cl_tune_result *out);

#endif
