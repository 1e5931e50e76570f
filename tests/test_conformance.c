/* Conformance with the reference tools (tests/data/vectors, from ../shared/vectors): tern's greedy
 * tokens on bitnet.cpp's own I2_S file must equal bitnet.cpp's recorded ids exactly; the decoded
 * weights of the I2_S, TQ2_0 and TQ1_0 files must equal the F16 source's; the three ternary
 * formats must give identical logits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/isa.h"
#include "harness.h"
#include "host/model/ternary.h"
#include "host/tern.h"

/* Greedy-generate n tokens from a prompt given as ids, on the CPU with n_threads (0: default) and
 * the head in mode. */
static void greedy_t(const char *model_path, const int32_t *prompt, int n_prompt, int n, int n_threads,
                     enum tern_head_mode mode, struct harness_ids *out) {
    memset(out, 0, sizeof *out);
    tern_model *m = NULL;
    tern_tokenizer *tok = NULL;
    tern_session *s = NULL;
    tern_sampler *smp = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(model_path, &m));
    if (!m)
        return;
    CHECK_STATUS(TERN_OK, tern_tokenizer_create(tern_model_gguf(m), NULL, &tok));
    struct tern_session_params sp = {
        .n_ctx = 256, .n_threads = n_threads, .device = "cpu", .head_mode = mode};
    CHECK_STATUS(TERN_OK, tern_session_create(m, &sp, &s));
    struct tern_sampler_params p = tern_sampler_default_params();
    p.temperature = 0.0f;
    CHECK_STATUS(TERN_OK, tern_sampler_create(&p, tern_model_view(m)->hp.n_vocab, &smp));
    struct tern_generate_stats st;
    if (tok && s && smp)
        CHECK_STATUS(TERN_OK, tern_generate(s, tok, smp, prompt, n_prompt, n, harness_collect_id, out, &st));
    tern_sampler_free(smp);
    tern_session_free(s);
    tern_tokenizer_free(tok);
    tern_model_free(m);
}

static void print_ids(const char *label, const int32_t *ids, int n) {
    fprintf(stderr, "  %s:", label);
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

static const char *mode_name(enum tern_head_mode mode) {
    return mode == TERN_HEAD_FULL ? "full" : "certified";
}

/* tern's greedy ids on `file` equal the first n_exact ids a reference tool recorded for `model` in
 * every case (n_exact 0: all of them). */
static void check_refs(const char *file, const char *model, int n_exact, const char *tool, const char *level,
                       int threads, enum tern_head_mode mode) {
    struct harness_ref refs[8];
    const int n = harness_refs(model, refs, 8);
    char path[256];
    snprintf(path, sizeof path, "vectors/%s", file);
    for (int c = 0; c < n; c++) {
        const int want = n_exact > 0 && n_exact < refs[c].n_generated ? n_exact : refs[c].n_generated;
        struct harness_ids got;
        greedy_t(test_data(path, 0), refs[c].prompt_ids, refs[c].n_prompt, want, threads, mode, &got);
        if (got.n != want || memcmp(got.ids, refs[c].generated, sizeof(int32_t) * (size_t)want) != 0) {
            harness_fail(__FILE__, __LINE__,
                         "%s, %s, %d threads, %s head, prompt '%s': greedy ids differ from %s's", file, level,
                         threads, mode_name(mode), refs[c].prompt, tool);
            print_ids("expected", refs[c].generated, want);
            print_ids("actual  ", got.ids, got.n);
        }
    }
}

static void i2s_matches_bitnet_cpp(void) {
    check_refs("mini-b158-i2s.gguf", "mini-b158-i2s.gguf", 0, "bitnet.cpp", "default level", 0,
               TERN_HEAD_FULL);
    check_refs("mini-b158-i2s.gguf", "mini-b158-i2s.gguf", 0, "bitnet.cpp", "default level", 0,
               TERN_HEAD_CERTIFIED);
}

/* llama.cpp quantizes TQ activations per 256 values where tern (and bitnet.cpp) quantize per token,
 * so its ids are an approximate oracle (tests/data/vectors/README.md): they agree with tern's for
 * the first 14, 13 and 4 tokens of the three cases. The TQ1_0 file holds the same weights. */
static void tq_files_agree_with_llama_cpp(void) {
    check_refs("mini-bitnet-tq2.gguf", "mini-bitnet-tq2.gguf", 4, "llama.cpp", "default level", 0,
               TERN_HEAD_FULL);
    check_refs("mini-bitnet-tq1.gguf", "mini-bitnet-tq2.gguf", 4, "llama.cpp", "default level", 0,
               TERN_HEAD_FULL);
}

/* Every kernel level this machine runs, forced through TERN_CPU_ISA, with 1 or 2 threads and the
 * head certified or full, gives bitnet.cpp's ids on its file and the full scalar head's ids on
 * longer runs of the random-weight vectors. */
static void every_isa_and_thread_count(void) {
    static const int32_t prompt[8] = {998, 46, 77, 346, 709, 263, 264, 892};
    static const char *const files[2] = {"vectors/mini-bitnet-tq1.gguf", "vectors/mini-bitnet-tq2.gguf"};
    static const enum tern_head_mode modes[2] = {TERN_HEAD_CERTIFIED, TERN_HEAD_FULL};
    struct harness_ids scalar_ids[2];
    setenv("TERN_CPU_ISA", "scalar", 1);
    for (int f = 0; f < 2; f++)
        greedy_t(test_data(files[f], 0), prompt, 8, 48, 1, TERN_HEAD_FULL, &scalar_ids[f]);
    for (int i = 0; i < TERN_CPU_ISA_COUNT; i++) {
        const char *level = tern_cpu_isa_names[i];
        if (!tern_cpu_isa_built(level) || !tern_cpu_isa_supported(level))
            continue;
        setenv("TERN_CPU_ISA", level, 1);
        for (int threads = 1; threads <= 2; threads++)
            for (int m = 0; m < 2; m++) {
                check_refs("mini-b158-i2s.gguf", "mini-b158-i2s.gguf", 0, "bitnet.cpp", level, threads,
                           modes[m]);
                for (int f = 0; f < 2; f++) {
                    struct harness_ids got;
                    greedy_t(test_data(files[f], 0), prompt, 8, 48, threads, modes[m], &got);
                    if (got.n != scalar_ids[f].n || memcmp(got.ids, scalar_ids[f].ids, sizeof got.ids) != 0) {
                        harness_fail(__FILE__, __LINE__,
                                     "%s, %d threads, %s head, %s: ids differ from the full "
                                     "scalar head's",
                                     level, threads, mode_name(modes[m]), files[f]);
                        print_ids("scalar", scalar_ids[f].ids, scalar_ids[f].n);
                        print_ids("actual", got.ids, got.n);
                    }
                }
            }
        fprintf(stderr,
                "  level %s: bitnet.cpp ids and scalar ids reproduced with 1 and 2 threads, head "
                "certified and full\n",
                level);
    }
    unsetenv("TERN_CPU_ISA");
}

int main(void) {
    RUN(i2s_matches_bitnet_cpp);
    RUN(tq_files_agree_with_llama_cpp);
    RUN(every_isa_and_thread_count);
    return harness_finish();
}
