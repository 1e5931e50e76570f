/* Assembling devices from a user's spec. */
#include <string.h>

#include "../cpu/cpu_device.h"
#include "../scheduler/log.h"
#include "session.h"

tern_status tern_device_open(const char *spec, int n_threads, struct tern_device *out) {
    if (!spec || strcmp(spec, "cpu") == 0 || strcmp(spec, "auto") == 0)
        return tern_cpu_device_create(n_threads, out);
    tern_log_error("unknown device '%s' (expected cpu, auto, cl:N or cl:NAME)", spec);
    return TERN_ERR_NO_DEVICE;
}
