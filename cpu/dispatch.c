/* Kernel-table selection: the best ISA level that is built (TERN_BUILT_* from cpu/CMakeLists.txt)
 * and that the CPU and OS support, or the level TERN_CPU_ISA forces. x86 support is read with cpuid
 * and XGETBV (the OS must save the YMM/ZMM state, not only the CPU have the units); ARM with
 * getauxval. This file is compiled without ISA flags: it only probes, never runs SIMD code. */
#include <stdlib.h>
#include <string.h>

#include "../scheduler/log.h"
#include "isa.h"
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define TERN_X86 1
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

const char *const tern_cpu_isa_names[TERN_CPU_ISA_COUNT] = {"scalar", "avx2", "avxvnni",
                                                            "avx512", "neon", "neondot"};

#ifdef TERN_X86
struct x86_features {
    bool avx2;    /* AVX2 + FMA + F16C, YMM state enabled by the OS */
    bool avxvnni; /* + AVX-VNNI (VEX vpdpbusd) */
    bool avx512;  /* AVX-512 F/BW/DQ/VL + VNNI, ZMM and opmask state enabled by the OS */
};

static unsigned long long xgetbv0(void) {
    unsigned lo, hi;
    /* encoded xgetbv, so the file needs no -mxsave */
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static struct x86_features x86_probe(void) {
    struct x86_features f = {false, false, false};
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return f;
    const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12), f16c = c & (1u << 29);
    if (!osxsave || !avx)
        return f;
    const unsigned long long xcr0 = xgetbv0();
    const bool ymm_state = (xcr0 & 0x6) == 0x6;   /* XMM + YMM */
    const bool zmm_state = (xcr0 & 0xe6) == 0xe6; /* + opmask, ZMM_Hi256, Hi16_ZMM */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return f;
    const bool avx2 = b & (1u << 5);
    const bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17), avx512bw = b & (1u << 30),
               avx512vl = b & (1u << 31), avx512vnni = c & (1u << 11);
    f.avx2 = ymm_state && avx2 && fma && f16c;
    unsigned a1 = 0, b1, c1, d1;
    const bool leaf7_1 = a >= 1 && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
    f.avxvnni = f.avx2 && leaf7_1 && (a1 & (1u << 4));
    f.avx512 = f.avx2 && zmm_state && avx512f && avx512dq && avx512bw && avx512vl && avx512vnni;
    return f;
}
#endif

bool tern_cpu_isa_built(const char *name) {
    if (strcmp(name, "scalar") == 0)
        return true;
#ifdef TERN_BUILT_AVX2
    if (strcmp(name, "avx2") == 0)
        return true;
#endif
#ifdef TERN_BUILT_AVXVNNI
    if (strcmp(name, "avxvnni") == 0)
        return true;
#endif
#ifdef TERN_BUILT_AVX512
    if (strcmp(name, "avx512") == 0)
        return true;
#endif
#ifdef TERN_BUILT_NEON
    if (strcmp(name, "neon") == 0)
        return true;
#endif
#ifdef TERN_BUILT_NEONDOT
    if (strcmp(name, "neondot") == 0)
        return true;
#endif
    return false;
}

bool tern_cpu_isa_supported(const char *name) {
    if (strcmp(name, "scalar") == 0)
        return true;
#ifdef TERN_X86
    const struct x86_features f = x86_probe();
    if (strcmp(name, "avx2") == 0)
        return f.avx2;
    if (strcmp(name, "avxvnni") == 0)
        return f.avxvnni;
    if (strcmp(name, "avx512") == 0)
        return f.avx512;
#endif
#if defined(__aarch64__)
    if (strcmp(name, "neon") == 0) {
#if defined(__linux__)
        return (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
#else
        return true;  /* Advanced SIMD is architectural on AArch64 */
#endif
    }
    if (strcmp(name, "neondot") == 0) {
#if defined(__linux__)
        return (getauxval(AT_HWCAP) & HWCAP_ASIMD) && (getauxval(AT_HWCAP) & HWCAP_ASIMDDP);
#else
        return false; /* no portable probe for the extension: the plain NEON level runs */
#endif
    }
#endif
    return false;
}

const struct tern_cpu_kernels *tern_cpu_kernels_get(const char *name) {
    if (!tern_cpu_isa_built(name) || !tern_cpu_isa_supported(name))
        return NULL;
    if (strcmp(name, "scalar") == 0)
        return &tern_cpu_kernels_scalar;
#ifdef TERN_BUILT_AVX2
    if (strcmp(name, "avx2") == 0)
        return &tern_cpu_kernels_avx2;
#endif
#ifdef TERN_BUILT_AVXVNNI
    if (strcmp(name, "avxvnni") == 0)
        return &tern_cpu_kernels_avxvnni;
#endif
#ifdef TERN_BUILT_AVX512
    if (strcmp(name, "avx512") == 0)
        return &tern_cpu_kernels_avx512;
#endif
#ifdef TERN_BUILT_NEON
    if (strcmp(name, "neon") == 0)
        return &tern_cpu_kernels_neon;
#endif
#ifdef TERN_BUILT_NEONDOT
    if (strcmp(name, "neondot") == 0)
        return &tern_cpu_kernels_neondot;
#endif
    return NULL;
}

const struct tern_cpu_kernels *tern_cpu_kernels_select(void) {
    const char *force = getenv("TERN_CPU_ISA");
    if (force && *force) {
        bool known = false;
        for (int i = 0; i < TERN_CPU_ISA_COUNT; i++)
            known = known || strcmp(force, tern_cpu_isa_names[i]) == 0;
        if (!known) {
            tern_log_error(
                "TERN_CPU_ISA=%s: unknown level (use scalar, avx2, avxvnni, avx512, neon or neondot)", force);
            return NULL;
        }
        if (!tern_cpu_isa_built(force)) {
            tern_log_error("TERN_CPU_ISA=%s: this build has no %s kernels (compiler or target lacks it)",
                           force, force);
            return NULL;
        }
        if (!tern_cpu_isa_supported(force)) {
            tern_log_error("TERN_CPU_ISA=%s: this CPU or OS does not support %s", force, force);
            return NULL;
        }
        return tern_cpu_kernels_get(force);
    }
    for (int i = TERN_CPU_ISA_COUNT - 1; i >= 0; i--) {
        const struct tern_cpu_kernels *k = tern_cpu_kernels_get(tern_cpu_isa_names[i]);
        if (k)
            return k;
    }
    return &tern_cpu_kernels_scalar;
}
