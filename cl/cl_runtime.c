/* OpenCL runtime of one device: enumeration over all platforms, context and in-order queue, the
 * program (embedded sources or TERN_CL_KERNEL_DIR, per-device options from a small per-vendor table,
 * full build log on failure), the on-disk program-binary cache (TERN_CACHE_DIR), buffer helpers. */
#include "cl_runtime.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../scheduler/cache.h"
#include "../scheduler/log.h"
#include "cl_sources.h"

#define TERN_CL_MAX_DEVICES 64

/* ---------------------------------------------------------------- enumeration */

struct cl_dev_ref {
    cl_platform_id platform;
    cl_device_id device;
};

/* "OpenCL 1.2 ..." -> 12; 0 when unparsable. */
static int parse_cl_version(const char *s, const char *prefix) {
    size_t n = strlen(prefix);
    if (strncmp(s, prefix, n) != 0)
        return 0;
    int major = 0, minor = 0;
    if (sscanf(s + n, "%d.%d", &major, &minor) != 2)
        return 0;
    return major * 10 + minor;
}

static void dev_str(const struct tern_cl_api *api, cl_device_id d, cl_device_info what, char *buf, size_t n) {
    buf[0] = 0;
    if (api->clGetDeviceInfo(d, what, n, buf, NULL) != CL_SUCCESS)
        buf[0] = 0;
    buf[n - 1] = 0;
}

/* Every OpenCL 1.2+ device with a compiler, in platform then device order. */
static int enum_devices(const struct tern_cl_api *api, struct cl_dev_ref *out, int max) {
    cl_platform_id plats[16];
    cl_uint n_plat = 0;
    if (api->clGetPlatformIDs(16, plats, &n_plat) != CL_SUCCESS)
        return 0; /* includes CL_PLATFORM_NOT_FOUND_KHR */
    if (n_plat > 16)
        n_plat = 16;
    int n = 0;
    for (cl_uint p = 0; p < n_plat; p++) {
        cl_device_id devs[TERN_CL_MAX_DEVICES];
        cl_uint n_dev = 0;
        if (api->clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, TERN_CL_MAX_DEVICES, devs, &n_dev) !=
            CL_SUCCESS)
            continue;
        if (n_dev > TERN_CL_MAX_DEVICES)
            n_dev = TERN_CL_MAX_DEVICES;
        for (cl_uint d = 0; d < n_dev && n < max; d++) {
            char ver[128];
            cl_bool compiler = CL_FALSE;
            dev_str(api, devs[d], CL_DEVICE_VERSION, ver, sizeof ver);
            api->clGetDeviceInfo(devs[d], CL_DEVICE_COMPILER_AVAILABLE, sizeof compiler, &compiler, NULL);
            if (parse_cl_version(ver, "OpenCL ") < 12 || !compiler)
                continue;
            out[n].platform = plats[p];
            out[n].device = devs[d];
            n++;
        }
    }
    return n;
}

int tern_cl_rt_count(void) {
    const struct tern_cl_api *api = tern_cl_api_load(NULL);
    if (!api)
        return 0;
    struct cl_dev_ref refs[TERN_CL_MAX_DEVICES];
    return enum_devices(api, refs, TERN_CL_MAX_DEVICES);
}

/* case-insensitive substring */
static bool contains_ci(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return n == 0;
}

/* ---------------------------------------------------------------- tuning table */

/* The built-in parameters (struct tern_cl_tuning, cl_device.h): one per kernel design, used until
 * `tern devices --tune` stores measured ones for a device (cl_tune.c, docs/opencl.md#tuning). Only
 * a measurement may add a row per vendor here, cited with its device, command and figures.
 *
 * GPU design: wg 256, 16 lanes per row (each lane reads 4 bytes of packed codes, so 16 lanes read 64
 * contiguous bytes), 2 blocks per matmul stage; a starting point, not measured on any GPU.
 * CPU design (devices of type CPU: PoCL, Intel's CPU runtime): they run a work-group's items as a
 * loop, so lanes reduced through local memory and barriers cost more than they save, while one item
 * per row with wide vector types compiles to plain SIMD loops; lpr and mm_kb are unused there. wg 64
 * is measured: `tern devices --tune --shape 2b4t` on PoCL 3.1 (pthread-skylake-avx512, 2 Zen 4
 * cores, shared), ms per layer (decode + prefill token): wg 32 10.23, 64 7.86, 128 7.78 (within the
 * 2% noise margin), 256 8.91; the GPU design's built-in set 117.3 (docs/opencl.md#tuning). */
static const struct tern_cl_tuning gpu_tuning = {false, 256, 16, 2};
static const struct tern_cl_tuning cpu_tuning = {true, 64, 1, 2};

struct tern_cl_tuning tern_cl_builtin_tuning(bool cpu_kernels) {
    return cpu_kernels ? cpu_tuning : gpu_tuning;
}

/* The built-in parameters of a device type; *forced when TERN_CL_KERNELS=gpu|cpu picks the design
 * (the tests run both on PoCL). */
static struct tern_cl_tuning pick_tuning(cl_device_type type, bool *forced) {
    const char *force = getenv("TERN_CL_KERNELS");
    bool cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
    *forced = force && (strcasecmp(force, "cpu") == 0 || strcasecmp(force, "gpu") == 0);
    if (*forced)
        cpu = strcasecmp(force, "cpu") == 0;
    else if (force && force[0])
        tern_log_warn("cl: TERN_CL_KERNELS=%s is neither cpu nor gpu; ignored", force);
    return cpu ? cpu_tuning : gpu_tuning;
}

/* ---------------------------------------------------------------- sources */

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0) {
            buf = malloc((size_t)n + 1);
            if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
                free(buf);
                buf = NULL;
            }
            if (buf) {
                buf[n] = 0;
                *len = (size_t)n;
            }
        }
    }
    fclose(f);
    return buf;
}

uint64_t tern_cl_sources_hash(void) {
    uint64_t h = TERN_FNV_SEED;
    for (int i = 0; i < tern_cl_n_sources; i++)
        h = tern_fnv1a(h, tern_cl_sources[i].bytes, tern_cl_sources[i].len);
    return h;
}

/* The program text: every source with a #line marker, from memory or TERN_CL_KERNEL_DIR. */
static tern_status assemble_source(char **out) {
    const char *dir = getenv("TERN_CL_KERNEL_DIR");
    size_t cap = 1 << 16, len = 0;
    char *src = malloc(cap);
    if (!src)
        return TERN_ERR_NOMEM;
    src[0] = 0;
    for (int i = 0; i < tern_cl_n_sources; i++) {
        const struct tern_embedded_file *s = &tern_cl_sources[i];
        char *disk = NULL;
        const char *text = (const char *)s->bytes;
        size_t tlen = s->len;
        if (dir && dir[0]) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, s->name);
            disk = read_file(path, &tlen);
            if (!disk) {
                tern_log_error("cl: TERN_CL_KERNEL_DIR: cannot read %s: %s", path, strerror(errno));
                free(src);
                return TERN_ERR_IO;
            }
            text = disk;
        }
        char marker[256];
        int mlen = snprintf(marker, sizeof marker, "#line 1 \"%s\"\n", s->name);
        if (len + (size_t)mlen + tlen + 2 > cap) {
            while (len + (size_t)mlen + tlen + 2 > cap)
                cap *= 2;
            char *grown = realloc(src, cap);
            if (!grown) {
                free(disk);
                free(src);
                return TERN_ERR_NOMEM;
            }
            src = grown;
        }
        memcpy(src + len, marker, (size_t)mlen);
        len += (size_t)mlen;
        memcpy(src + len, text, tlen);
        len += tlen;
        src[len++] = '\n';
        src[len] = 0;
        free(disk);
    }
    *out = src;
    return TERN_OK;
}

/* ---------------------------------------------------------------- binary cache */

struct cache_key {
    uint64_t h1, h2; /* two FNV-1a hashes with different seeds over source + options + device + driver */
};

static struct cache_key make_key(const struct tern_cl_rt *rt, const char *src) {
    const char *parts[] = {src,        rt->options, rt->name,         rt->vendor,
                           rt->driver, rt->version, rt->platform_name};
    struct cache_key k = {TERN_FNV_SEED, 0x84222325cbf29ce4ULL};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        k.h1 = tern_fnv1a(k.h1, parts[i], strlen(parts[i]) + 1);
        k.h2 = tern_fnv1a(k.h2 ^ (0x9e3779b97f4a7c15ULL * (i + 1)), parts[i], strlen(parts[i]) + 1);
    }
    return k;
}

/* The binary's file in the cache folder (scheduler/cache.h); false when caching is off. */
static bool cache_path(const struct cache_key *k, char *buf, size_t n) {
    char base[3072];
    if (!tern_cache_dir(base, sizeof base))
        return false;
    snprintf(buf, n, "%s/cl-%016llx%016llx.bin", base, (unsigned long long)k->h1, (unsigned long long)k->h2);
    return true;
}

static const char cache_magic[8] = {'T', 'E', 'R', 'N', 'C', 'L', 'B', '1'};

/* The cached binary of key, or NULL. */
static unsigned char *cache_load(const char *path, const struct cache_key *k, size_t *len) {
    size_t n = 0;
    char *buf = read_file(path, &n);
    if (!buf)
        return NULL;
    struct cache_key stored;
    uint64_t blen;
    if (n < 32 || memcmp(buf, cache_magic, 8) != 0) {
        free(buf);
        return NULL;
    }
    memcpy(&stored.h1, buf + 8, 8);
    memcpy(&stored.h2, buf + 16, 8);
    memcpy(&blen, buf + 24, 8);
    if (stored.h1 != k->h1 || stored.h2 != k->h2 || blen != n - 32 || blen == 0) {
        free(buf);
        return NULL;
    }
    unsigned char *bin = malloc(blen);
    if (bin)
        memcpy(bin, buf + 32, blen);
    free(buf);
    *len = blen;
    return bin;
}

/* Write atomically (temp file + rename) so concurrent processes never read half a binary. */
static void cache_store(const char *path, const struct cache_key *k, const unsigned char *bin, size_t len) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        tern_log_debug("cl: cannot write the kernel cache %s: %s", tmp, strerror(errno));
        return;
    }
    uint64_t blen = len;
    bool ok = fwrite(cache_magic, 1, 8, f) == 8 && fwrite(&k->h1, 8, 1, f) == 1 &&
              fwrite(&k->h2, 8, 1, f) == 1 && fwrite(&blen, 8, 1, f) == 1 && fwrite(bin, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        tern_log_debug("cl: cannot write the kernel cache %s", path);
        remove(tmp);
    }
}

/* ---------------------------------------------------------------- program build */

static void log_build_log(struct tern_cl_rt *rt, cl_program prog) {
    size_t n = 0;
    if (rt->api->clGetProgramBuildInfo(prog, rt->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n) != CL_SUCCESS ||
        !n)
        return;
    char *buf = malloc(n + 1);
    if (!buf)
        return;
    if (rt->api->clGetProgramBuildInfo(prog, rt->device, CL_PROGRAM_BUILD_LOG, n, buf, NULL) == CL_SUCCESS) {
        buf[n] = 0;
        tern_log_error("cl: build log of the kernels on %s (options: %s):", rt->name, rt->options);
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
            tern_log_error("cl:   %s", line);
    }
    free(buf);
}

static tern_status build_from_binary(struct tern_cl_rt *rt, const unsigned char *bin, size_t len) {
    cl_int err, bin_status = CL_SUCCESS;
    cl_program prog =
        rt->api->clCreateProgramWithBinary(rt->ctx, 1, &rt->device, &len, &bin, &bin_status, &err);
    if (err != CL_SUCCESS || bin_status != CL_SUCCESS)
        return TERN_ERR_DEVICE;
    if (rt->api->clBuildProgram(prog, 1, &rt->device, rt->options, NULL, NULL) != CL_SUCCESS) {
        rt->api->clReleaseProgram(prog);
        return TERN_ERR_DEVICE;
    }
    rt->program = prog;
    return TERN_OK;
}

static tern_status build_program(struct tern_cl_rt *rt) {
    const struct tern_cl_api *api = rt->api;
    char *src = NULL;
    tern_status st = assemble_source(&src);
    if (st)
        return st;
    struct cache_key key = make_key(rt, src);
    char path[4096];
    bool cache = cache_path(&key, path, sizeof path);
    rt->from_cache = false;
    if (cache) {
        size_t blen = 0;
        unsigned char *bin = cache_load(path, &key, &blen);
        if (bin) {
            st = build_from_binary(rt, bin, blen);
            if (!st) {
                rt->from_cache = true;
                tern_log_debug("cl: kernels for %s from the cache %s", rt->name, path);
            } else {
                tern_log_debug("cl: cached kernels %s rejected by the driver; rebuilding", path);
            }
            free(bin);
        }
    }
    if (!rt->from_cache) {
        cl_int err;
        const char *text = src;
        cl_program prog = api->clCreateProgramWithSource(rt->ctx, 1, &text, NULL, &err);
        if (err != CL_SUCCESS) {
            tern_log_error("cl: clCreateProgramWithSource on %s failed: %s (%d)", rt->name,
                           tern_cl_error_name(err), err);
            st = TERN_ERR_DEVICE;
            goto done;
        }
        err = api->clBuildProgram(prog, 1, &rt->device, rt->options, NULL, NULL);
        if (err != CL_SUCCESS) {
            tern_log_error("cl: building the kernels on %s failed: %s (%d)", rt->name,
                           tern_cl_error_name(err), err);
            log_build_log(rt, prog);
            api->clReleaseProgram(prog);
            st = TERN_ERR_DEVICE;
            goto done;
        }
        rt->program = prog;
        if (cache) {
            size_t blen = 0;
            if (api->clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof blen, &blen, NULL) ==
                    CL_SUCCESS &&
                blen) {
                unsigned char *bin = malloc(blen);
                if (bin &&
                    api->clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) == CL_SUCCESS)
                    cache_store(path, &key, bin, blen);
                free(bin);
            }
        }
    }
    st = TERN_OK;
done:
    free(src);
    return st;
}

static void release_program(struct tern_cl_rt *rt) {
    for (int i = 0; i < TERN_CLK_COUNT; i++) {
        if (rt->kernels[i])
            rt->api->clReleaseKernel(rt->kernels[i]);
        rt->kernels[i] = NULL;
    }
    if (rt->program)
        rt->api->clReleaseProgram(rt->program);
    rt->program = NULL;
}

static const char *const kernel_names[TERN_CLK_COUNT] = {
#define TERN_CL_KERNEL_NAME(e, name) #name,
    TERN_CL_KERNEL_LIST(TERN_CL_KERNEL_NAME)
#undef TERN_CL_KERNEL_NAME
};

/* Build with the current tuning and create every kernel; *max_wg gets the smallest
 * CL_KERNEL_WORK_GROUP_SIZE over the kernels. */
static tern_status build_kernels(struct tern_cl_rt *rt, size_t *max_wg) {
    char std[32] = "";
    int cver = parse_cl_version(rt->c_version, "OpenCL C ");
    if (rt->use_dot)
        snprintf(std, sizeof std, "-cl-std=CL3.0 ");
    else if (cver >= 20)
        snprintf(std, sizeof std, "-cl-std=CL2.0 ");
    else if (cver >= 12)
        snprintf(std, sizeof std, "-cl-std=CL1.2 ");
    snprintf(rt->options, sizeof rt->options,
             "%s%s-DTERN_WG=%d -DTERN_LPR=%d -DTERN_MM_KB=%d -DTERN_KCHUNK=%d -DTERN_XCHUNK=%d "
             "-DTERN_USE_FP16=%d -DTERN_USE_SUBGROUPS=%d -DTERN_INTEL_SUBGROUPS=%d -DTERN_USE_DOT=%d "
             "-DTERN_EXACT_DIV=%d -DTERN_ATT_MAXP=%d -DTERN_CPU_KERNELS=%d",
             std, rt->exact_div ? "-cl-fp32-correctly-rounded-divide-sqrt " : "", rt->wg, rt->lpr, rt->mm_kb,
             rt->kchunk, rt->xchunk, rt->use_fp16, rt->use_subgroups, rt->intel_subgroups, rt->use_dot,
             rt->exact_div, rt->att_maxp, rt->cpu_kernels);
    tern_status st = build_program(rt);
    if (st)
        return st;
    *max_wg = rt->max_wg;
    for (int i = 0; i < TERN_CLK_COUNT; i++) {
        cl_int err;
        rt->kernels[i] = rt->api->clCreateKernel(rt->program, kernel_names[i], &err);
        if (err != CL_SUCCESS) {
            tern_log_error("cl: kernel %s missing on %s: %s (%d)", kernel_names[i], rt->name,
                           tern_cl_error_name(err), err);
            return TERN_ERR_DEVICE;
        }
        size_t kwg = 0;
        if (rt->api->clGetKernelWorkGroupInfo(rt->kernels[i], rt->device, CL_KERNEL_WORK_GROUP_SIZE,
                                              sizeof kwg, &kwg, NULL) == CL_SUCCESS &&
            kwg < *max_wg)
            *max_wg = kwg;
    }
    return TERN_OK;
}

/* ---------------------------------------------------------------- open / close */

static bool has_ext(const char *exts, const char *name) {
    size_t n = strlen(name);
    for (const char *p = strstr(exts, name); p; p = strstr(p + 1, name))
        if ((p == exts || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
            return true;
    return false;
}

static size_t pow2_floor(size_t v) {
    size_t p = 1;
    while (p * 2 <= v)
        p *= 2;
    return p;
}

tern_status tern_cl_rt_create(const char *spec, bool portable, const struct tern_cl_tuning *tuning,
                              struct tern_cl_rt **out) {
    *out = NULL;
    const char *why = NULL;
    const struct tern_cl_api *api = tern_cl_api_load(&why);
    if (!api) {
        tern_log_error("cl: device '%s' unavailable: %s", spec ? spec : "0", why);
        return TERN_ERR_NO_DEVICE;
    }
    struct cl_dev_ref refs[TERN_CL_MAX_DEVICES];
    int n = enum_devices(api, refs, TERN_CL_MAX_DEVICES);
    if (n == 0) {
        tern_log_error("cl: device '%s' unavailable: the OpenCL loader found no platform with an OpenCL 1.2+ "
                       "device (install a driver: see docs/opencl.md)",
                       spec ? spec : "0");
        return TERN_ERR_NO_DEVICE;
    }
    if (!spec || !spec[0])
        spec = "0";
    int pick = -1;
    bool numeric = true;
    for (const char *p = spec; *p; p++)
        numeric = numeric && isdigit((unsigned char)*p);
    if (numeric) {
        long idx = strtol(spec, NULL, 10);
        if (idx < n)
            pick = (int)idx;
    } else {
        for (int i = 0; i < n && pick < 0; i++) {
            char name[256];
            dev_str(api, refs[i].device, CL_DEVICE_NAME, name, sizeof name);
            if (contains_ci(name, spec))
                pick = i;
        }
    }
    if (pick < 0) {
        tern_log_error("cl: no OpenCL device matches '%s' (%d device%s found)", spec, n, n == 1 ? "" : "s");
        return TERN_ERR_NO_DEVICE;
    }

    struct tern_cl_rt *rt = calloc(1, sizeof *rt);
    if (!rt)
        return TERN_ERR_NOMEM;
    tern_status st;
    rt->api = api;
    rt->platform = refs[pick].platform;
    rt->device = refs[pick].device;
    dev_str(api, rt->device, CL_DEVICE_NAME, rt->name, sizeof rt->name);
    dev_str(api, rt->device, CL_DEVICE_VENDOR, rt->vendor, sizeof rt->vendor);
    dev_str(api, rt->device, CL_DRIVER_VERSION, rt->driver, sizeof rt->driver);
    dev_str(api, rt->device, CL_DEVICE_VERSION, rt->version, sizeof rt->version);
    dev_str(api, rt->device, CL_DEVICE_OPENCL_C_VERSION, rt->c_version, sizeof rt->c_version);
    if (api->clGetPlatformInfo(rt->platform, CL_PLATFORM_NAME, sizeof rt->platform_name, rt->platform_name,
                               NULL) != CL_SUCCESS)
        rt->platform_name[0] = 0;
    rt->platform_name[sizeof rt->platform_name - 1] = 0;
    cl_bool unified = CL_FALSE;
    cl_device_fp_config fp = 0;
    api->clGetDeviceInfo(rt->device, CL_DEVICE_TYPE, sizeof rt->type, &rt->type, NULL);
    api->clGetDeviceInfo(rt->device, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof unified, &unified, NULL);
    api->clGetDeviceInfo(rt->device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof rt->global_mem, &rt->global_mem, NULL);
    api->clGetDeviceInfo(rt->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof rt->max_alloc, &rt->max_alloc,
                         NULL);
    /* TERN_CL_MAX_ALLOC=BYTES lowers the largest buffer, to try the limits of integrated GPUs */
    const char *env_alloc = getenv("TERN_CL_MAX_ALLOC");
    if (env_alloc && env_alloc[0]) {
        const unsigned long long lim = strtoull(env_alloc, NULL, 10);
        if (lim > 0 && lim < rt->max_alloc)
            rt->max_alloc = lim;
    }
    api->clGetDeviceInfo(rt->device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof rt->local_mem, &rt->local_mem, NULL);
    api->clGetDeviceInfo(rt->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof rt->max_wg, &rt->max_wg, NULL);
    api->clGetDeviceInfo(rt->device, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL);
    api->clGetDeviceInfo(rt->device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof rt->compute_units,
                         &rt->compute_units, NULL);
    rt->unified = unified == CL_TRUE;

    size_t ext_len = 0;
    char *exts = NULL;
    if (api->clGetDeviceInfo(rt->device, CL_DEVICE_EXTENSIONS, 0, NULL, &ext_len) == CL_SUCCESS &&
        (exts = calloc(1, ext_len + 1)) != NULL)
        api->clGetDeviceInfo(rt->device, CL_DEVICE_EXTENSIONS, ext_len, exts, NULL);
    const char *ex = exts ? exts : "";
    const char *env_profile = getenv("TERN_CL_PROFILE");
    rt->profile = env_profile && env_profile[0] && strcmp(env_profile, "0") != 0;
    const char *env_portable = getenv("TERN_CL_PORTABLE");
    if (env_portable && env_portable[0] && strcmp(env_portable, "0") != 0)
        portable = true;
    if (!portable) {
        rt->use_fp16 = has_ext(ex, "cl_khr_fp16");
        rt->use_subgroups = has_ext(ex, "cl_khr_subgroups") || has_ext(ex, "cl_intel_subgroups");
        /* the packed dot built-ins need OpenCL C 3.0 feature macros */
        rt->use_dot =
            has_ext(ex, "cl_khr_integer_dot_product") && parse_cl_version(rt->version, "OpenCL ") >= 30;
    }
    bool intel_sg = !portable && !has_ext(ex, "cl_khr_subgroups") && has_ext(ex, "cl_intel_subgroups");
    rt->intel_subgroups = intel_sg;
    free(exts);
    rt->exact_div = (fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) != 0;

    bool forced;
    rt->base = pick_tuning(rt->type, &forced);
    struct tern_cl_tuning tune = rt->base;
    if (tuning)
        tune = *tuning;
    else if (!forced)
        rt->tuned = tern_cl_tune_load(rt, &tune);
    rt->cpu_kernels = tune.cpu_kernels;
    rt->wg = tune.wg;
    rt->lpr = tune.lpr;
    rt->mm_kb = tune.mm_kb;
    rt->kchunk = rt->local_mem >= 32768 ? 8192 : 2048;
    rt->xchunk = rt->local_mem >= 32768 ? 4096 : 1024;
    /* attention keeps scores in local memory next to ~3 KiB of other arrays */
    rt->att_maxp = rt->local_mem >= 32768 ? 4096 : 1024;
    if ((size_t)rt->wg > rt->max_wg)
        rt->wg = (int)pow2_floor(rt->max_wg);
    if (rt->wg < 32) {
        tern_log_error("cl: %s allows work-groups of only %zu items; tern needs 32", rt->name, rt->max_wg);
        st = TERN_ERR_DEVICE;
        goto done;
    }

    cl_int err;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)rt->platform, 0};
    rt->ctx = api->clCreateContext(props, 1, &rt->device, NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        tern_log_error("cl: clCreateContext on %s failed: %s (%d)", rt->name, tern_cl_error_name(err), err);
        st = TERN_ERR_DEVICE;
        goto done;
    }
    rt->queue = api->clCreateCommandQueue(rt->ctx, rt->device, 0, &err);
    if (err != CL_SUCCESS) {
        tern_log_error("cl: clCreateCommandQueue on %s failed: %s (%d)", rt->name, tern_cl_error_name(err),
                       err);
        st = TERN_ERR_DEVICE;
        goto done;
    }
    /* Build; if a kernel cannot run work-groups of wg items (registers), rebuild smaller. */
    for (;;) {
        if (rt->lpr > rt->wg)
            rt->lpr = rt->wg;
        size_t kmax = 0;
        st = build_kernels(rt, &kmax);
        if (st)
            goto done;
        if (kmax >= (size_t)rt->wg)
            break;
        release_program(rt);
        if (kmax < 32) {
            tern_log_error("cl: kernels on %s allow work-groups of only %zu items; tern needs 32", rt->name,
                           kmax);
            st = TERN_ERR_DEVICE;
            goto done;
        }
        rt->wg = (int)pow2_floor(kmax);
    }
    tern_log_debug("cl: %s (%s, %s): %s%s%s", rt->name, rt->platform_name, rt->driver, rt->options,
                   rt->from_cache ? " [cached]" : "", rt->tuned ? " [tuned]" : "");
    *out = rt;
    return TERN_OK;
done: /* failures only */
    tern_cl_rt_free(rt);
    return st;
}

static void log_profile(const struct tern_cl_rt *rt) {
    double total = 0;
    for (int i = 0; i < TERN_CLK_COUNT; i++)
        total += rt->prof_s[i];
    tern_log_info("cl: profile of %s: %.3f s in kernels", rt->name, total);
    for (int i = 0; i < TERN_CLK_COUNT; i++)
        if (rt->prof_n[i])
            tern_log_info("cl:   %-22s %8ld launches %9.3f s %9.1f us/launch %5.1f%%", kernel_names[i],
                          rt->prof_n[i], rt->prof_s[i], 1e6 * rt->prof_s[i] / (double)rt->prof_n[i],
                          total > 0 ? 100.0 * rt->prof_s[i] / total : 0.0);
}

void tern_cl_rt_free(struct tern_cl_rt *rt) {
    if (!rt)
        return;
    if (rt->queue)
        rt->api->clFinish(rt->queue);
    if (rt->profile)
        log_profile(rt);
    release_program(rt);
    if (rt->queue)
        rt->api->clReleaseCommandQueue(rt->queue);
    if (rt->ctx)
        rt->api->clReleaseContext(rt->ctx);
    free(rt);
}

/* ---------------------------------------------------------------- buffers */

tern_status tern_cl_buf_create(struct tern_cl_rt *rt, cl_mem_flags flags, size_t size, void *host,
                               const char *what, cl_mem *out) {
    cl_int err;
    *out = NULL;
    if (size == 0)
        size = 16; /* zero-sized buffers are invalid in OpenCL */
    if (size > rt->max_alloc) {
        tern_log_error("cl: %s needs %zu bytes, more than the %llu of one buffer on %s", what, size,
                       (unsigned long long)rt->max_alloc, rt->name);
        return TERN_ERR_NOMEM;
    }
    *out = rt->api->clCreateBuffer(rt->ctx, flags, size, host, &err);
    if (err != CL_SUCCESS) {
        tern_log_error("cl: allocating %s (%zu bytes) on %s failed: %s (%d)", what, size, rt->name,
                       tern_cl_error_name(err), err);
        *out = NULL;
        return err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_HOST_MEMORY ? TERN_ERR_NOMEM
                                                                                       : TERN_ERR_DEVICE;
    }
    return TERN_OK;
}

void tern_cl_buf_free(struct tern_cl_rt *rt, cl_mem *buf) {
    if (*buf)
        rt->api->clReleaseMemObject(*buf);
    *buf = NULL;
}

tern_status tern_cl_write(struct tern_cl_rt *rt, cl_mem buf, size_t off, size_t size, const void *src) {
    if (!size)
        return TERN_OK;
    cl_int err = rt->api->clEnqueueWriteBuffer(rt->queue, buf, CL_TRUE, off, size, src, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        tern_log_error("cl: writing %zu bytes to %s failed: %s (%d)", size, rt->name, tern_cl_error_name(err),
                       err);
        return TERN_ERR_DEVICE;
    }
    return TERN_OK;
}

tern_status tern_cl_read(struct tern_cl_rt *rt, cl_mem buf, size_t off, size_t size, void *dst) {
    if (!size)
        return TERN_OK;
    cl_int err = rt->api->clEnqueueReadBuffer(rt->queue, buf, CL_TRUE, off, size, dst, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        tern_log_error("cl: reading %zu bytes from %s failed: %s (%d)", size, rt->name,
                       tern_cl_error_name(err), err);
        return TERN_ERR_DEVICE;
    }
    return TERN_OK;
}

tern_status tern_cl_finish(struct tern_cl_rt *rt) {
    cl_int err = rt->api->clFinish(rt->queue);
    if (err != CL_SUCCESS) {
        tern_log_error("cl: clFinish on %s failed: %s (%d)", rt->name, tern_cl_error_name(err), err);
        return TERN_ERR_DEVICE;
    }
    return TERN_OK;
}
