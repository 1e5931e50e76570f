/* The OpenCL device when tern is built without the Khronos headers: no devices, a clear message. */
#include "cl_device.h"

#include <string.h>

#include "../scheduler/log.h"

tern_status tern_cl_device_count(int *n) {
    *n = 0;
    return TERN_OK;
}

tern_status tern_cl_device_create(const char *spec, struct tern_device *out) {
    out->ops = NULL;
    out->ctx = NULL;
    tern_log_error("cl: device '%s' unavailable: this tern was built without OpenCL headers (opencl-headers)",
                   spec ? spec : "0");
    return TERN_ERR_NO_DEVICE;
}

tern_status tern_cl_device_create_tuned(const char *spec, const struct tern_cl_tuning *tuning,
                                        struct tern_device *out) {
    (void)tuning;
    return tern_cl_device_create(spec, out);
}

tern_status tern_cl_device_tune(const char *spec, const struct tern_model_view *m, bool quick,
                                struct tern_cl_tune_result *out) {
    (void)m;
    (void)quick;
    memset(out, 0, sizeof *out);
    struct tern_device dev;
    return tern_cl_device_create(spec, &dev);
}
