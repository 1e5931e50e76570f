/* The test harness (see harness.h). */
#include "harness.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../cpu/kernels.h"

int harness_case_failed;
static int n_passed, n_failed;

void harness_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    harness_case_failed = 1;
}

void harness_run(const char *name, void (*fn)(void)) {
    harness_case_failed = 0;
    fn();
    if (harness_case_failed) {
        n_failed++;
        fprintf(stderr, "FAIL %s\n", name);
    } else {
        n_passed++;
        fprintf(stderr, "ok   %s\n", name);
    }
}

int harness_finish(void) {
    fprintf(stderr, "%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}

int harness_opencl_gate(int n_devices) {
    if (n_devices > 0)
        return -1;
#if TERN_HAVE_OPENCL
    const char *none = "no OpenCL platform",
               *why = "no OpenCL platform/device found (install pocl-opencl-icd";
#else
    const char *none = "tern was built without OpenCL headers",
               *why = "tern was built without OpenCL headers (install opencl-headers and rebuild";
#endif
    const char *optional = getenv("TERN_CL_OPTIONAL");
    if (optional && strcmp(optional, "1") == 0) {
        fprintf(stderr, "%s; skipped because TERN_CL_OPTIONAL=1\n", none);
        return 0;
    }
    fprintf(stderr, "FAIL: %s, or set TERN_CL_OPTIONAL=1 on a development machine without OpenCL)\n", why);
    return 1;
}

static const char *join(const char *env, const char *fallback, const char *rel, int slot) {
    static char buf[4][4096];
    const char *dir = getenv(env);
    if (!dir)
        dir = fallback;
    snprintf(buf[slot & 3], sizeof buf[0], "%s/%s", dir, rel);
    return buf[slot & 3];
}

uint16_t *test_k_blocks(const uint16_t *k, int64_t n_pos, int64_t kv_stride) {
    uint16_t *b = calloc((size_t)tern_k_elems(n_pos, kv_stride), sizeof *b);
    if (!b) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    for (int64_t p = 0; p < n_pos; p++)
        for (int64_t c = 0; c < kv_stride; c++)
            b[tern_k_index(p, kv_stride, c)] = k[p * kv_stride + c];
    return b;
}

const char *test_data(const char *rel, int slot) {
    return join("TERN_TEST_DATA", "tests/data", rel, slot);
}
const char *test_tmp(const char *name, int slot) {
    return join("TERN_BUILD_TMP", "/tmp", name, slot);
}
const char *test_bin(const char *name, int slot) {
    return join("TERN_BIN_DIR", ".", name, slot);
}

/* ids[max] from a JSON array of integers; the count, -1 when it is not one or too long. */
static int read_ids(const json_t *a, int32_t *ids, int max) {
    if (!json_is_array(a) || json_array_size(a) > (size_t)max)
        return -1;
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_integer(v))
            return -1;
        ids[i] = (int32_t)json_integer_value(v);
    }
    return (int)json_array_size(a);
}

int harness_refs(const char *model, struct harness_ref *out, int max) {
    json_error_t err;
    json_t *root = json_load_file(test_data("vectors/mini-refs.json", 3), 0, &err);
    const json_t *refs = json_object_get(root, "references");
    int n = 0;
    for (size_t r = 0; json_is_array(refs) && r < json_array_size(refs); r++) {
        const json_t *ref = json_array_get(refs, r);
        const char *m = json_string_value(json_object_get(ref, "model"));
        const json_t *cases = json_object_get(ref, "cases");
        if (!m || !json_is_array(cases) || strcmp(m, model) != 0)
            continue;
        for (size_t c = 0; c < json_array_size(cases) && n < max; c++, n++) {
            const json_t *cs = json_array_get(cases, c);
            const char *prompt = json_string_value(json_object_get(cs, "prompt"));
            snprintf(out[n].prompt, sizeof out[n].prompt, "%s", prompt ? prompt : "?");
            out[n].n_prompt = read_ids(json_object_get(cs, "prompt_ids"), out[n].prompt_ids, 32);
            out[n].n_generated = read_ids(json_object_get(cs, "generated_ids"), out[n].generated, 32);
            if (out[n].n_prompt < 1 || out[n].n_generated < 1) {
                n = 0;
                break;
            }
        }
        break;
    }
    json_decref(root);
    if (n == 0)
        harness_fail(__FILE__, __LINE__, "mini-refs.json: no valid reference cases for %s", model);
    return n;
}

bool harness_collect_id(int32_t id, const char *text, size_t len, void *user) {
    (void)text;
    (void)len;
    struct harness_ids *c = user;
    if (id >= 0 && c->n < 64)
        c->ids[c->n++] = id;
    return true;
}

int32_t harness_argmax(const float *v, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

uint64_t test_rand_u64(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

float test_rand_uniform(uint64_t *s, float lo, float hi) {
    return lo + (hi - lo) * (float)((test_rand_u64(s) >> 40) * (1.0 / 16777216.0));
}

float test_rand_normal(uint64_t *s) {
    double u1 = ((test_rand_u64(s) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (test_rand_u64(s) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
