/* Minimal test harness: checks that print expected and actual, per-case reporting, and helpers
 * to find fixtures. Each test_*.c has a main() that calls RUN(case) for each case and returns
 * harness_finish(). */
#ifndef TERN_TEST_HARNESS_H
#define TERN_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int harness_case_failed;

void harness_fail(const char *file, int line, const char *fmt, ...);
void harness_run(const char *name, void (*fn)(void));
int harness_finish(void);
/* OpenCL suites start with this: with devices it returns -1 (go on); with none it returns the
 * exit code, 1 with a FAIL line (CI must not skip), or 0 when TERN_CL_OPTIONAL=1 allows it. The line
 * says why there is none: no platform, or a tern built without the OpenCL headers (cl_stub.c). */
int harness_opencl_gate(int n_devices);

/* A copy of the K cache k (n_pos rows of f16, kv_stride apart) in the attention's K block layout
 * (cpu/kernels.h), the last block's unwritten positions zero; free() it. */
uint16_t *test_k_blocks(const uint16_t *k, int64_t n_pos, int64_t kv_stride);

/* Absolute path of a fixture: $TERN_TEST_DATA/rel (static buffer, one at a time per slot 0..3). */
const char *test_data(const char *rel, int slot);
/* Path in the build's scratch folder: $TERN_BUILD_TMP/name (static buffer per slot 0..3). */
const char *test_tmp(const char *name, int slot);
/* Path of a built binary: $TERN_BIN_DIR/name (static buffer per slot 0..3). */
const char *test_bin(const char *name, int slot);

/* A greedy generation recorded by a reference tool (bitnet.cpp, llama.cpp) in
 * tests/data/vectors/mini-refs.json. */
struct harness_ref {
    char prompt[64];
    int32_t prompt_ids[32];
    int n_prompt;
    int32_t generated[32];
    int n_generated;
};
/* The recorded cases of `model` (a file name in tests/data/vectors), at most max; the count, 0
 * after a failure line when the file cannot be read or holds no case of that model. */
int harness_refs(const char *model, struct harness_ref *out, int max);

/* The ids a generation produced: harness_collect_id is the tern_token_fn that fills it. */
struct harness_ids {
    int32_t ids[64];
    int n;
};
bool harness_collect_id(int32_t id, const char *text, size_t len, void *user);
/* Index of the largest value (the first of equals): greedy without a sampler. */
int32_t harness_argmax(const float *v, int n);

/* Deterministic random numbers for tests (xorshift64*). */
uint64_t test_rand_u64(uint64_t *state);
float test_rand_uniform(uint64_t *state, float lo, float hi);
float test_rand_normal(uint64_t *state);

#define RUN(fn) harness_run(#fn, fn)

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond))                                                                                         \
            harness_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);                                     \
    } while (0)

#define CHECK_INT(expected, actual)                                                                          \
    do {                                                                                                     \
        long long e_ = (long long)(expected), a_ = (long long)(actual);                                      \
        if (e_ != a_)                                                                                        \
            harness_fail(__FILE__, __LINE__, "%s: expected %lld, got %lld", #actual, e_, a_);                \
    } while (0)

#define CHECK_FLOAT(expected, actual, tol)                                                                   \
    do {                                                                                                     \
        double e_ = (double)(expected), a_ = (double)(actual);                                               \
        if (!(e_ - a_ <= (tol) && a_ - e_ <= (tol)))                                                         \
            harness_fail(__FILE__, __LINE__, "%s: expected %.9g, got %.9g (tol %g)", #actual, e_, a_,        \
                         (double)(tol));                                                                     \
    } while (0)

#define CHECK_STATUS(expected, actual)                                                                       \
    do {                                                                                                     \
        int e_ = (int)(expected), a_ = (int)(actual);                                                        \
        if (e_ != a_)                                                                                        \
            harness_fail(__FILE__, __LINE__, "%s: expected %s, got %s", #actual,                             \
                         tern_status_name((tern_status)e_), tern_status_name((tern_status)a_));              \
    } while (0)

#endif
