/* The OpenCL entry points tern uses, loaded at run time from the ICD loader (libOpenCL) with dlopen,
 * so tern starts on machines without any OpenCL package and simply finds no OpenCL device there.
 * Types come from the Khronos headers (OpenCL 1.2 API). */
#ifndef TERN_CL_API_H
#define TERN_CL_API_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>

#include "../scheduler/status.h"

typedef void(CL_CALLBACK *tern_cl_ctx_notify)(const char *, const void *, size_t, void *);
typedef void(CL_CALLBACK *tern_cl_build_notify)(cl_program, void *);

/* X(return type, name, parameter list) */
#define TERN_CL_API_LIST(X)                                                                                  \
    X(cl_int, clGetPlatformIDs, (cl_uint, cl_platform_id *, cl_uint *))                                      \
    X(cl_int, clGetPlatformInfo, (cl_platform_id, cl_platform_info, size_t, void *, size_t *))               \
    X(cl_int, clGetDeviceIDs, (cl_platform_id, cl_device_type, cl_uint, cl_device_id *, cl_uint *))          \
    X(cl_int, clGetDeviceInfo, (cl_device_id, cl_device_info, size_t, void *, size_t *))                     \
    X(cl_context, clCreateContext,                                                                           \
      (const cl_context_properties *, cl_uint, const cl_device_id *, tern_cl_ctx_notify, void *, cl_int *))  \
    X(cl_int, clReleaseContext, (cl_context))                                                                \
    X(cl_command_queue, clCreateCommandQueue,                                                                \
      (cl_context, cl_device_id, cl_command_queue_properties, cl_int *))                                     \
    X(cl_int, clReleaseCommandQueue, (cl_command_queue))                                                     \
    X(cl_program, clCreateProgramWithSource, (cl_context, cl_uint, const char **, const size_t *, cl_int *)) \
    X(cl_program, clCreateProgramWithBinary,                                                                 \
      (cl_context, cl_uint, const cl_device_id *, const size_t *, const unsigned char **, cl_int *,          \
       cl_int *))                                                                                            \
    X(cl_int, clBuildProgram,                                                                                \
      (cl_program, cl_uint, const cl_device_id *, const char *, tern_cl_build_notify, void *))               \
    X(cl_int, clGetProgramBuildInfo,                                                                         \
      (cl_program, cl_device_id, cl_program_build_info, size_t, void *, size_t *))                           \
    X(cl_int, clGetProgramInfo, (cl_program, cl_program_info, size_t, void *, size_t *))                     \
    X(cl_int, clReleaseProgram, (cl_program))                                                                \
    X(cl_kernel, clCreateKernel, (cl_program, const char *, cl_int *))                                       \
    X(cl_int, clReleaseKernel, (cl_kernel))                                                                  \
    X(cl_int, clSetKernelArg, (cl_kernel, cl_uint, size_t, const void *))                                    \
    X(cl_int, clGetKernelWorkGroupInfo,                                                                      \
      (cl_kernel, cl_device_id, cl_kernel_work_group_info, size_t, void *, size_t *))                        \
    X(cl_int, clEnqueueNDRangeKernel,                                                                        \
      (cl_command_queue, cl_kernel, cl_uint, const size_t *, const size_t *, const size_t *, cl_uint,        \
       const cl_event *, cl_event *))                                                                        \
    X(cl_mem, clCreateBuffer, (cl_context, cl_mem_flags, size_t, void *, cl_int *))                          \
    X(cl_int, clReleaseMemObject, (cl_mem))                                                                  \
    X(cl_int, clEnqueueWriteBuffer,                                                                          \
      (cl_command_queue, cl_mem, cl_bool, size_t, size_t, const void *, cl_uint, const cl_event *,           \
       cl_event *))                                                                                          \
    X(cl_int, clEnqueueReadBuffer,                                                                           \
      (cl_command_queue, cl_mem, cl_bool, size_t, size_t, void *, cl_uint, const cl_event *, cl_event *))    \
    X(cl_int, clEnqueueFillBuffer,                                                                           \
      (cl_command_queue, cl_mem, const void *, size_t, size_t, size_t, cl_uint, const cl_event *,            \
       cl_event *))                                                                                          \
    X(cl_int, clFinish, (cl_command_queue))                                                                  \
    X(cl_int, clFlush, (cl_command_queue))

struct tern_cl_api {
#define TERN_CL_API_FIELD(ret, name, args) ret(CL_API_CALL *name) args;
    TERN_CL_API_LIST(TERN_CL_API_FIELD)
#undef TERN_CL_API_FIELD
};

/* Load the ICD loader once per process (TERN_OPENCL_LIB overrides its path). NULL when it is missing
 * or lacks an entry point; *why (if not NULL) then gets a static one-line reason. The table stays
 * valid for the life of the process: ICD drivers keep threads and atexit handlers that make
 * unloading them unsafe, so the library is never dlclose'd. */
const struct tern_cl_api *tern_cl_api_load(const char **why);

/* "CL_OUT_OF_RESOURCES" style name of an OpenCL error code. */
const char *tern_cl_error_name(cl_int err);

#endif
