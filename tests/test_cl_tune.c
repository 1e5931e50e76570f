/* The OpenCL tuning (cl/cl_tune.c, docs/opencl.md#tuning) on the first OpenCL device (PoCL in CI):
 * a tuning run stores its result in the cache folder, later opens of the device use the stored
 * parameters, and whatever parameters are stored, the device reproduces bitnet.cpp's recorded greedy
 * ids (tests/data/vectors/mini-refs.json). A stored file that does not parse is ignored. The suite
 * has its own cache folder (tests/cl.cmake), so no other suite sees its stored tunings. */
#include <stdlib.h>
#include <string.h>

#include "cl/cl_device.h"
#include "harness.h"
#include "host/tern.h"
#include "scheduler/log.h"

#if TERN_HAVE_OPENCL
#include "cl/cl_runtime.h"

static const char *model_path(void) {
    return test_data("vectors/mini-b158-i2s.gguf", 0);
}

/* The parameters the device of a plain open (no explicit tuning) runs with. */
static struct tern_cl_tuning opened_tuning(bool *stored) {
    struct tern_device dev;
    struct tern_cl_tuning t = {0};
    *stored = false;
    CHECK_STATUS(TERN_OK, tern_cl_device_create("0", &dev));
    if (dev.ctx) {
        const struct tern_cl_rt *rt = tern_cl_device_rt(&dev);
        t = (struct tern_cl_tuning){rt->cpu_kernels, rt->wg, rt->lpr, rt->mm_kb};
        *stored = rt->tuned;
        dev.ops->free(dev.ctx);
    }
    return t;
}

/* Greedy ids of a session on cl:0 (prompt as one batch, then one token per step) against bitnet.cpp's. */
static void ids_match_bitnet_cpp(const char *label) {
    struct harness_ref refs[8];
    const int n = harness_refs("mini-b158-i2s.gguf", refs, 8);
    tern_model *m = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(model_path(), &m));
    for (int p = 0; p < n && m; p++) {
        tern_session *s = NULL;
        struct tern_session_params sp = {.n_ctx = 64, .device = "cl:0"};
        CHECK_STATUS(TERN_OK, tern_session_create(m, &sp, &s));
        if (!s)
            break;
        const int nv = tern_model_view(m)->hp.n_vocab;
        const float *logits = NULL;
        tern_status st = tern_session_eval(s, refs[p].prompt_ids, refs[p].n_prompt, &logits);
        for (int i = 0; i < refs[p].n_generated && st == TERN_OK; i++) {
            const int32_t id = harness_argmax(logits, nv);
            if (id != refs[p].generated[i]) {
                harness_fail(__FILE__, __LINE__, "%s, prompt %d, token %d: %d, bitnet.cpp %d", label, p, i,
                             id, refs[p].generated[i]);
                break;
            }
            st = tern_session_eval(s, &id, 1, &logits);
        }
        CHECK_STATUS(TERN_OK, st);
        tern_session_free(s);
    }
    tern_model_free(m);
}

/* The one cl-tune-*.txt of the cache folder (the suite's own), "" when there is none. */
static const char *stored_file(void) {
    static char path[4096];
    char cmd[4200];
    path[0] = 0;
    snprintf(cmd, sizeof cmd, "ls %s/cl-tune-*.txt 2>/dev/null", getenv("TERN_CACHE_DIR"));
    FILE *p = popen(cmd, "r");
    if (p && fgets(path, sizeof path, p))
        path[strcspn(path, "\n")] = 0;
    if (p)
        pclose(p);
    return path;
}

static void write_stored(const char *path, const char *params) {
    /* keep the magic and key lines of the file the tuning run wrote, replace the parameters */
    char head[2][1200] = {"", ""};
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f)
        return;
    for (int i = 0; i < 2; i++)
        CHECK(fgets(head[i], sizeof head[i], f) != NULL);
    fclose(f);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fprintf(f, "%s%s%s\n", head[0], head[1], params);
        fclose(f);
    }
}

static void tuning_stored_reloaded_same_ids(void) {
    const char *dir = getenv("TERN_CACHE_DIR");
    CHECK(dir != NULL && dir[0]);
    if (!dir)
        return;
    remove(stored_file());
    bool stored;
    const struct tern_cl_tuning before = opened_tuning(&stored);
    CHECK(!stored);

    tern_model *m = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(model_path(), &m));
    if (!m)
        return;
    struct tern_cl_tune_result r;
    CHECK_STATUS(TERN_OK, tern_cl_device_tune("0", tern_model_view(m), true, &r));
    tern_model_free(m);
    /* quick: the device's own design over wg 32..256 (the built-in one among them) */
    CHECK(r.base.cpu_kernels == before.cpu_kernels && r.base.wg == before.wg);
    CHECK(r.best.cpu_kernels == r.base.cpu_kernels);
    CHECK(r.n_tried >= 2);
    CHECK(r.best.wg == 32 || r.best.wg == 64 || r.best.wg == 128 || r.best.wg == 256);
    CHECK(r.base_s > 0 && r.best_s > 0 && r.best_s <= r.base_s);
    CHECK(strcmp(r.path, stored_file()) == 0);

    const struct tern_cl_tuning after = opened_tuning(&stored);
    CHECK(stored);
    CHECK(after.cpu_kernels == r.best.cpu_kernels && after.wg == r.best.wg && after.lpr == r.best.lpr &&
          after.mm_kb == r.best.mm_kb);
    ids_match_bitnet_cpp("tuned");

    /* stored parameters that differ from the built-in ones are used, in both designs */
    static const struct {
        const char *line;
        struct tern_cl_tuning want;
    } cases[] = {
        {"1 32 1 1", {true, 32, 1, 1}},
        {"0 64 8 1", {false, 64, 8, 1}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_stored(r.path, cases[i].line);
        const struct tern_cl_tuning got = opened_tuning(&stored);
        CHECK(stored);
        CHECK(got.cpu_kernels == cases[i].want.cpu_kernels && got.wg == cases[i].want.wg &&
              got.lpr == cases[i].want.lpr && got.mm_kb == cases[i].want.mm_kb);
        ids_match_bitnet_cpp(cases[i].line);
    }

    /* a file that does not parse, or parameters the kernels cannot take, are ignored */
    static const char *const bad[] = {"x", "1 48 1 2", "0 64 128 2", "0 64 8 0", "2 64 1 2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_stored(r.path, bad[i]);
        const struct tern_cl_tuning got = opened_tuning(&stored);
        CHECK(!stored);
        CHECK(got.cpu_kernels == before.cpu_kernels && got.wg == before.wg && got.lpr == before.lpr &&
              got.mm_kb == before.mm_kb);
    }
    remove(r.path);
}

/* TERN_CL_KERNELS=cpu|gpu forces that design with its built-in parameters, over a stored tuning;
 * another value is ignored with a warning. */
static int n_warnings;
static void count_warnings(enum tern_log_level level, const char *msg, void *user) {
    (void)msg;
    (void)user;
    n_warnings += level == TERN_LOG_WARN;
}

static void design_forced_by_env(void) {
    struct tern_cl_rt *rt = NULL;
    /* a stored tuning that differs from both built-in sets: wg 32 */
    struct tern_cl_tune_result r = {0};
    tern_model *m = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(model_path(), &m));
    if (m)
        CHECK_STATUS(TERN_OK, tern_cl_device_tune("0", tern_model_view(m), true, &r));
    tern_model_free(m);
    write_stored(r.path, "1 32 1 1");

    static const struct {
        const char *env;
        bool cpu, tuned;
        int wg, warnings;
    } cases[] = {{"cpu", true, false, 64, 0}, {"GPU", false, false, 256, 0}, {"fast", true, true, 32, 1}};
    tern_log_set_callback(count_warnings, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("TERN_CL_KERNELS", cases[i].env, 1);
        n_warnings = 0;
        rt = NULL;
        CHECK_STATUS(TERN_OK, tern_cl_rt_create("0", false, NULL, &rt));
        if (!rt)
            continue;
        CHECK(rt->cpu_kernels == cases[i].cpu);
        CHECK(rt->tuned == cases[i].tuned);
        CHECK_INT(cases[i].wg, rt->wg);
        CHECK_INT(cases[i].warnings, n_warnings);
        tern_cl_rt_free(rt);
    }
    tern_log_set_callback(NULL, NULL);
    unsetenv("TERN_CL_KERNELS");
    remove(r.path);
}

/* The program binary is cached: a second open of the device loads it instead of building. */
static void program_binary_cached(void) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -f %s/cl-*.bin", getenv("TERN_CACHE_DIR"));
    CHECK(system(cmd) == 0);
    for (int i = 0; i < 2; i++) {
        struct tern_cl_rt *rt = NULL;
        CHECK_STATUS(TERN_OK, tern_cl_rt_create("0", false, NULL, &rt));
        if (!rt)
            return;
        CHECK(rt->from_cache == (i == 1));
        tern_cl_rt_free(rt);
    }
}

int main(void) {
    int n = 0;
    tern_cl_device_count(&n);
    const int gate = harness_opencl_gate(n);
    if (gate >= 0)
        return gate;
    RUN(tuning_stored_reloaded_same_ids);
    RUN(design_forced_by_env);
    RUN(program_binary_cached);
    return harness_finish();
}

#else /* built without the OpenCL headers: the stub has no runtime to tune (the gate says so) */

int main(void) {
    return harness_opencl_gate(0);
}

#endif
