/* Assembling devices from a user's spec. */
#include <string.h>

#include "../cl/cl_device.h"
#include "../cpu/cpu_device.h"
#include "../scheduler/log.h"
#include "session.h"

tern_status tern_device_open(const char *spec, int n_threads, struct tern_device *out) {
    /* "auto" stays the CPU until the scheduler places layers across devices by measured speed */
    if (!spec || strcmp(spec, "cpu") == 0 || strcmp(spec, "auto") == 0)
        return tern_cpu_device_create(n_threads, out);
    if (strncmp(spec, "cl:", 3) == 0 && spec[3])
        return tern_cl_device_create(spec + 3, out);
    tern_log_error("unknown device '%s' (expected cpu, auto, cl:N or cl:NAME)", spec);
    return TERN_ERR_NO_DEVICE;
}
