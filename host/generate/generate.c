/* The generation loop (see generate.h). */
#include "generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../scheduler/log.h"

double tern_time_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

tern_status tern_generate(tern_session *s, const tern_tokenizer *tok, tern_sampler *smp,
                          const int32_t *prompt, int n_prompt, int n_predict, tern_token_fn on_token,
                          void *user, struct tern_generate_stats *stats) {
    memset(stats, 0, sizeof *stats);
    if (n_prompt <= 0) {
        tern_log_error("the prompt is empty");
        return TERN_ERR_ARG;
    }
    const int room = tern_session_n_ctx(s) - tern_session_pos(s);
    if (n_prompt > room) {
        tern_log_error("the prompt has %d tokens but the context has room for %d", n_prompt, room);
        return TERN_ERR_CONTEXT_FULL;
    }
    for (int i = 0; i < n_prompt; i++)
        tern_sampler_accept(smp, prompt[i]);
    /* tell the head what the sampler will read, so a certified head may skip the rest; the
     * penalized ids change with every accepted token, so the request is renewed before each step */
    struct tern_head_request req = {.stats = &stats->head};
    const bool certify = tern_sampler_head_request(smp, &req);
    tern_session_set_head_request(s, certify ? &req : NULL);
    const float *logits;
    char *text = NULL;
    double t0 = tern_time_s();
    tern_status st = tern_session_eval(s, prompt, n_prompt, &logits);
    if (st)
        goto done;
    stats->n_prompt = n_prompt;
    stats->prompt_s = tern_time_s() - t0;

    const int n_vocab = tern_tokenizer_n_vocab(tok);
    struct tern_detok dt;
    tern_detok_init(&dt, tok);
    const size_t cap = tern_detok_max_bytes(tok);
    if (!(text = malloc(cap))) {
        tern_log_error("out of memory for the text of a token (%zu bytes)", cap);
        st = TERN_ERR_NOMEM;
        goto done;
    }
    const double t1 = tern_time_s();
    bool go = true;
    while (go && (n_predict < 0 || stats->n_generated < n_predict)) {
        /* the sampler may modify logits: they belong to this step only */
        int32_t id;
        st = tern_sampler_sample(smp, (float *)logits, &id);
        if (st)
            break;
        stats->n_generated++;
        if (tern_tokenizer_is_eog(tok, id) || id >= n_vocab) {
            stats->stopped_eog = true;
            break;
        }
        tern_sampler_accept(smp, id);
        if (certify)
            tern_sampler_head_request(smp, &req);
        size_t n = tern_detok_push(&dt, tok, id, text, cap);
        go = on_token(id, text, n, user);
        if (!go || (n_predict >= 0 && stats->n_generated >= n_predict))
            break;
        if (tern_session_pos(s) >= tern_session_n_ctx(s)) {
            stats->stopped_ctx = true;
            break;
        }
        st = tern_session_eval(s, &id, 1, &logits);
        if (st)
            break;
        stats->n_decoded++;
    }
    stats->gen_s = tern_time_s() - t1;
    if (!st) {
        size_t n = tern_detok_flush(&dt, text, cap);
        if (n)
            on_token(-1, text, n, user);
    }
    const struct tern_head_stats *h = &stats->head;
    if (h->n_tokens)
        tern_log_debug(
            "certified head: %llu tokens, %.1f rows recomputed per token, %.1f%% of tokens over 64 "
            "rows, %llu full heads",
            (unsigned long long)h->n_tokens, (double)h->n_rows / (double)h->n_tokens,
            100.0 * (double)h->n_over_64 / (double)h->n_tokens, (unsigned long long)h->n_full);
done:
    free(text);
    tern_session_set_head_request(s, NULL);
    return st;
}
