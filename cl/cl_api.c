/* Run-time loading of the OpenCL ICD loader: dlopen + one dlsym per entry point, done once. */
#include "cl_api.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static struct tern_cl_api api;
static const struct tern_cl_api *api_ok;
static const char *api_why = "OpenCL loader not loaded";
static pthread_once_t api_once = PTHREAD_ONCE_INIT;

static void api_load_once(void) {
    const char *names[] = {getenv("TERN_OPENCL_LIB"), "libOpenCL.so.1", "libOpenCL.so",
                           "/System/Library/Frameworks/OpenCL.framework/OpenCL"};
    void *lib = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib; i++)
        if (names[i] && names[i][0])
            lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        api_why = "no OpenCL ICD loader (libOpenCL.so.1) found; install ocl-icd-libopencl1 and a driver";
        return;
    }
    /* memcpy, not a cast: ISO C has no conversion from object to function pointers */
#define TERN_CL_API_SYM(ret, name, args)                                                                     \
    {                                                                                                        \
        void *sym = dlsym(lib, #name);                                                                       \
        if (!sym) {                                                                                          \
            api_why = "the OpenCL ICD loader lacks " #name " (OpenCL 1.2 is required)";                      \
            return;                                                                                          \
        }                                                                                                    \
        memcpy(&api.name, &sym, sizeof sym);                                                                 \
    }
    TERN_CL_API_LIST(TERN_CL_API_SYM)
#undef TERN_CL_API_SYM
    api_ok = &api;
    api_why = NULL;
}

const struct tern_cl_api *tern_cl_api_load(const char **why) {
    pthread_once(&api_once, api_load_once);
    if (why)
        *why = api_why;
    return api_ok;
}

const char *tern_cl_error_name(cl_int err) {
    switch (err) {
#define E(x)                                                                                                 \
    case x:                                                                                                  \
        return #x;
        E(CL_SUCCESS)
        E(CL_DEVICE_NOT_FOUND)
        E(CL_DEVICE_NOT_AVAILABLE) E(CL_COMPILER_NOT_AVAILABLE) E(CL_MEM_OBJECT_ALLOCATION_FAILURE)
            E(CL_OUT_OF_RESOURCES) E(CL_OUT_OF_HOST_MEMORY) E(CL_PROFILING_INFO_NOT_AVAILABLE)
                E(CL_MEM_COPY_OVERLAP) E(CL_BUILD_PROGRAM_FAILURE) E(CL_MAP_FAILURE) E(
                    CL_MISALIGNED_SUB_BUFFER_OFFSET) E(CL_COMPILE_PROGRAM_FAILURE) E(CL_LINKER_NOT_AVAILABLE)
                    E(CL_LINK_PROGRAM_FAILURE) E(CL_INVALID_VALUE) E(CL_INVALID_DEVICE_TYPE)
                        E(CL_INVALID_PLATFORM) E(CL_INVALID_DEVICE) E(CL_INVALID_CONTEXT) E(
                            CL_INVALID_QUEUE_PROPERTIES) E(CL_INVALID_COMMAND_QUEUE) E(CL_INVALID_HOST_PTR)
                            E(CL_INVALID_MEM_OBJECT) E(CL_INVALID_BINARY) E(CL_INVALID_BUILD_OPTIONS) E(
                                CL_INVALID_PROGRAM) E(CL_INVALID_PROGRAM_EXECUTABLE) E(CL_INVALID_KERNEL_NAME)
                                E(CL_INVALID_KERNEL_DEFINITION) E(CL_INVALID_KERNEL) E(CL_INVALID_ARG_INDEX)
                                    E(CL_INVALID_ARG_VALUE) E(CL_INVALID_ARG_SIZE) E(CL_INVALID_KERNEL_ARGS)
                                        E(CL_INVALID_WORK_DIMENSION) E(CL_INVALID_WORK_GROUP_SIZE)
                                            E(CL_INVALID_WORK_ITEM_SIZE) E(CL_INVALID_GLOBAL_OFFSET)
                                                E(CL_INVALID_EVENT_WAIT_LIST) E(CL_INVALID_OPERATION)
                                                    E(CL_INVALID_BUFFER_SIZE) E(CL_INVALID_GLOBAL_WORK_SIZE)
                                                        E(CL_INVALID_PROPERTY) E(CL_INVALID_COMPILER_OPTIONS)
                                                            E(CL_INVALID_LINKER_OPTIONS)
#undef E
                                                                case -1001
            : return "CL_PLATFORM_NOT_FOUND_KHR";
    default:
        return "CL_UNKNOWN_ERROR";
    }
}
