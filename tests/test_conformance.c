/* Conformance with the reference tools (tests/data/vectors, from ../shared/vectors): tern's greedy
 * tokens on bitnet.cpp's own I2_S file must equal bitnet.cpp's recorded ids exactly; the decoded
 * weights of the I2_S, TQ2_0 and TQ1_0 files must equal the F16 source's; the three ternary
 * formats must give identical logits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/isa.h"
#include "harness.h"
#include "host/tern.h"
#include "host/ternary.h"

struct ref_case {
    const char *prompt;
    int32_t prompt_ids[16];
    int n_prompt;
    int32_t generated[16]; /* bitnet.cpp llama-cli, greedy, 16 tokens (mini-refs.json) */
};

static const struct ref_case bitnet_cpp_cases[3] = {
    {"The capital of France is",
     {998, 791, 272, 391, 275, 278, 315, 435, 81, 685, 374},
     11,
     {703, 851, 164, 5, 74, 708, 458, 713, 19, 638, 751, 261, 261, 261, 261, 261}},
    {"Once upon a time",
     {998, 46, 77, 346, 709, 263, 264, 892},
     8,
     {323, 140, 145, 277, 962, 962, 962, 962, 962, 951, 478, 708, 277, 489, 321, 473}},
    {"1, 2, 3, 4,",
     {998, 16, 11, 220, 17, 11, 220, 18, 11, 220, 19, 11},
     12,
     {161, 49, 487, 673, 839, 263, 74, 189, 121, 697, 655, 276, 554, 79, 26, 697}},
};

struct collect {
    int32_t ids[64];
    int n;
};

static bool collect_id(int32_t id, const char *text, size_t len, void *user) {
    (void)text;
    (void)len;
    struct collect *c = user;
    if (id >= 0 && c->n < 64)
        c->ids[c->n++] = id;
    return true;
}

/* Greedy-generate n tokens from a prompt given as ids, on the CPU with n_threads (0: default) and
 * the head in the given mode; a certified head must certify every token (no full-head fallback). */
static void greedy_m(const char *model_path, const int32_t *prompt, int n_prompt, int n, int n_threads,
                     enum tern_head_mode mode, struct collect *out) {
    memset(out, 0, sizeof *out);
    tern_model *m = NULL;
    tern_tokenizer *tok = NULL;
    tern_session *s = NULL;
    tern_sampler *smp = NULL;
    CHECK_STATUS(TERN_OK, tern_model_open(model_path, &m));
    if (!m)
        return;
    CHECK_STATUS(TERN_OK, tern_tokenizer_load(tern_model_gguf(m), NULL, &tok));
    struct tern_session_params sp = {
        .n_ctx = 256, .n_threads = n_threads, .device = "cpu", .head_mode = mode};
    CHECK_STATUS(TERN_OK, tern_session_create(m, &sp, &s));
    struct tern_sampler_params p = tern_sampler_default_params();
    p.temperature = 0.0f;
    CHECK_STATUS(TERN_OK, tern_sampler_init(&p, tern_model_view(m)->hp.n_vocab, &smp));
    struct tern_generate_stats st;
    if (tok && s && smp) {
        CHECK_STATUS(TERN_OK, tern_generate(s, tok, smp, prompt, n_prompt, n, collect_id, out, &st));
        CHECK_INT(mode == TERN_HEAD_CERTIFIED ? st.n_generated : 0, st.head.n_tokens);
        CHECK_INT(0, st.head.n_full);
    }
    tern_sampler_free(smp);
    tern_session_free(s);
    tern_tokenizer_free(tok);
    tern_model_close(m);
}

static void greedy(const char *model_path, const int32_t *prompt, int n_prompt, int n, struct collect *out) {
    greedy_m(model_path, prompt, n_prompt, n, 0, TERN_HEAD_CERTIFIED, out);
}

static void print_ids(const char *label, const int32_t *ids, int n) {
    fprintf(stderr, "  %s:", label);
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

static void i2s_matches_bitnet_cpp(void) {
    for (int c = 0; c < 3; c++) {
        const struct ref_case *rc = &bitnet_cpp_cases[c];
        struct collect got;
        greedy(test_data("vectors/mini-b158-i2s.gguf", 0), rc->prompt_ids, rc->n_prompt, 16, &got);
        if (got.n != 16 || memcmp(got.ids, rc->generated, sizeof rc->generated) != 0) {
            harness_fail(__FILE__, __LINE__, "prompt '%s': greedy ids differ from bitnet.cpp's", rc->prompt);
            print_ids("expected", rc->generated, 16);
            print_ids("actual  ", got.ids, got.n);
        }
    }
}

/* Every kernel level this machine runs, forced through TERN_CPU_ISA, with 1 or 2 threads and the
 * head certified or full, gives bitnet.cpp's ids on its file and the full scalar head's ids on
 * longer runs of the random-weight vectors. */
static void every_isa_and_thread_count(void) {
    static const int32_t prompt[8] = {998, 46, 77, 346, 709, 263, 264, 892};
    static const char *const files[2] = {"vectors/mini-bitnet-tq1.gguf", "vectors/mini-bitnet-tq2.gguf"};
    static const enum tern_head_mode modes[2] = {TERN_HEAD_CERTIFIED, TERN_HEAD_FULL};
    struct collect scalar_ids[2];
    setenv("TERN_CPU_ISA", "scalar", 1);
    for (int f = 0; f < 2; f++)
        greedy_m(test_data(files[f], 0), prompt, 8, 48, 1, TERN_HEAD_FULL, &scalar_ids[f]);
    int levels = 0;
    for (int i = 0; i < TERN_CPU_ISA_COUNT; i++) {
        const char *level = tern_cpu_isa_names[i];
        if (!tern_cpu_isa_built(level) || !tern_cpu_isa_supported(level))
            continue;
        levels++;
        setenv("TERN_CPU_ISA", level, 1);
        for (int threads = 1; threads <= 2; threads++)
            for (int m = 0; m < 2; m++) {
                const char *mode = modes[m] == TERN_HEAD_FULL ? "full" : "certified";
                for (int c = 0; c < 3; c++) {
                    const struct ref_case *rc = &bitnet_cpp_cases[c];
                    struct collect got;
                    greedy_m(test_data("vectors/mini-b158-i2s.gguf", 0), rc->prompt_ids, rc->n_prompt, 16,
                             threads, modes[m], &got);
                    if (got.n != 16 || memcmp(got.ids, rc->generated, sizeof rc->generated) != 0) {
                        harness_fail(__FILE__, __LINE__,
                                     "%s, %d threads, %s head, prompt '%s': ids differ from bitnet.cpp's",
                                     level, threads, mode, rc->prompt);
                        print_ids("expected", rc->generated, 16);
                        print_ids("actual  ", got.ids, got.n);
                    }
                }
                for (int f = 0; f < 2; f++) {
                    struct collect got;
                    greedy_m(test_data(files[f], 0), prompt, 8, 48, threads, modes[m], &got);
                    if (got.n != scalar_ids[f].n || memcmp(got.ids, scalar_ids[f].ids, sizeof got.ids) != 0) {
                        harness_fail(__FILE__, __LINE__,
                                     "%s, %d threads, %s head, %s: ids differ from the full "
                                     "scalar head's",
                                     level, threads, mode, files[f]);
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
    CHECK(levels >= 1);
}

int main(void) {
    RUN(i2s_matches_bitnet_cpp);
    RUN(every_isa_and_thread_count);
    return harness_finish();
}
