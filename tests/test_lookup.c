/* Prompt lookup (tern_session_set_lookup; host/generate/generate.c): the same tokens with it as
 * without, greedy and sampled, with the full and the certified head, and the session ends at the
 * position it would without drafts (a chat's next turn starts there). The vectors' model takes some
 * drafts, so the path that accepts them runs. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "host/tern.h"

struct outcome {
    struct harness_ids ids;
    struct tern_generate_stats gs;
    int pos; /* the session's position after the generation */
};

static void generate(const char *file, int lookup, enum tern_head_mode mode, float temp, struct outcome *o) {
    memset(o, 0, sizeof *o);
    tern_model *m = NULL;
    tern_tokenizer *tok = NULL;
    tern_session *s = NULL;
    tern_sampler *smp = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(test_data(file, 0), &m));
    if (!m)
        return;
    CHECK_STATUS(TERN_OK, tern_tokenizer_create(tern_model_gguf(m), NULL, &tok));
    const struct tern_session_params sp = {.n_ctx = 256, .device = "cpu", .head_mode = mode};
    CHECK_STATUS(TERN_OK, tern_session_create(m, &sp, &s));
    struct tern_sampler_params par = tern_sampler_default_params();
    par.temperature = temp;
    par.seed = 17;
    CHECK_STATUS(TERN_OK, tern_sampler_create(&par, tern_model_view(m)->hp.n_vocab, &smp));
    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    const char *text = "The capital of France is";
    if (tok && s && smp && tern_tokenize(tok, text, strlen(text), true, false, &prompt, &n_prompt) == TERN_OK) {
        tern_session_set_lookup(s, lookup);
        CHECK_STATUS(TERN_OK, tern_generate(s, tok, smp, prompt, (int)n_prompt, 64, harness_collect_id,
                                            &o->ids, &o->gs));
        o->pos = tern_session_pos(s);
    }
    free(prompt);
    tern_sampler_free(smp);
    tern_session_free(s);
    tern_tokenizer_free(tok);
    tern_model_free(m);
}

static void same_tokens(void) {
    static const char *const files[] = {"vectors/mini-b158-i2s.gguf", "vectors/mini-bitnet-tq1.gguf"};
    int drafted = 0, accepted = 0;
    for (int f = 0; f < 2; f++)
        for (int mode = 0; mode < 2; mode++)
            for (int sampled = 0; sampled < 2; sampled++) {
                const enum tern_head_mode hm = mode ? TERN_HEAD_CERTIFIED : TERN_HEAD_FULL;
                const float temp = sampled ? 0.9f : 0.0f;
                struct outcome plain, look;
                generate(files[f], 0, hm, temp, &plain);
                CHECK_INT(0, plain.gs.n_drafted);
                for (int lookup = 1; lookup <= TERN_LOOKUP_MAX; lookup += 3) {
                    generate(files[f], lookup, hm, temp, &look);
                    if (look.ids.n != plain.ids.n || memcmp(look.ids.ids, plain.ids.ids, sizeof plain.ids.ids))
                        harness_fail(__FILE__, __LINE__, "%s, %s head, %s, lookup %d: other tokens", files[f],
                                     mode ? "certified" : "full", sampled ? "sampled" : "greedy", lookup);
                    CHECK_INT(plain.pos, look.pos);
                    /* every token after the first came from a step's first row or a taken draft */
                    CHECK_INT(plain.gs.n_decoded, look.gs.n_decoded + look.gs.n_accepted);
                    drafted += look.gs.n_drafted;
                    accepted += look.gs.n_accepted;
                }
            }
    fprintf(stderr, "  %d of %d drafts taken\n", accepted, drafted);
    CHECK(accepted > 0 && drafted > accepted);
}

int main(void) {
    RUN(same_tokens);
    return harness_finish();
}
