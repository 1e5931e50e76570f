/* The test harness (see harness.h). */
#include "harness.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tools/json.h"

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
    const char *optional = getenv("TERN_CL_OPTIONAL");
    if (optional && strcmp(optional, "1") == 0) {
        fprintf(stderr, "no OpenCL platform; skipped because TERN_CL_OPTIONAL=1\n");
        return 0;
    }
    fprintf(stderr,
            "FAIL: no OpenCL platform/device found (install pocl-opencl-icd, or set TERN_CL_OPTIONAL=1 "
            "on a development machine without OpenCL)\n");
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
static int read_ids(const struct tern_json *a, int32_t *ids, int max) {
    if (!a || a->type != TERN_JSON_ARRAY || a->len > (size_t)max)
        return -1;
    for (size_t i = 0; i < a->len; i++) {
        if (!a->items[i].is_int)
            return -1;
        ids[i] = (int32_t)a->items[i].integer;
    }
    return (int)a->len;
}

int harness_refs(const char *model, struct harness_ref *out, int max) {
    struct tern_json *root = NULL;
    int n = 0;
    if (tern_json_parse_file(test_data("vectors/mini-refs.json", 3), &root) == TERN_OK) {
        const struct tern_json *refs = tern_json_get_type(root, "references", TERN_JSON_ARRAY);
        for (size_t r = 0; refs && r < refs->len; r++) {
            const struct tern_json *m = tern_json_get_type(&refs->items[r], "model", TERN_JSON_STRING);
            const struct tern_json *cases = tern_json_get_type(&refs->items[r], "cases", TERN_JSON_ARRAY);
            if (!m || !cases || strcmp(m->str, model) != 0)
                continue;
            for (size_t c = 0; c < cases->len && n < max; c++, n++) {
                const struct tern_json *cs = &cases->items[c];
                const struct tern_json *prompt = tern_json_get_type(cs, "prompt", TERN_JSON_STRING);
                snprintf(out[n].prompt, sizeof out[n].prompt, "%s", prompt ? prompt->str : "?");
                out[n].n_prompt = read_ids(tern_json_get(cs, "prompt_ids"), out[n].prompt_ids, 32);
                out[n].n_generated = read_ids(tern_json_get(cs, "generated_ids"), out[n].generated, 32);
                if (out[n].n_prompt < 1 || out[n].n_generated < 1) {
                    n = 0;
                    break;
                }
            }
            break;
        }
    }
    tern_json_free(root);
    if (n == 0)
        harness_fail(__FILE__, __LINE__, "mini-refs.json: no valid reference cases for %s", model);
    return n;
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
