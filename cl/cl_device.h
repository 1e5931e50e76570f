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

#endif
