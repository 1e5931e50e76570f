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

/* Prompt lookup: up to max tokens that followed the latest earlier occurrence of the history's last
 * 3 tokens (else its last 2) into draft; how many (0: no occurrence). */
static int lookup_draft(const int32_t *hist, int n_hist, int max, int32_t *draft) {
    for (int n = 3; n >= 2 && max > 0; n--) {
        if (n_hist <= n)
            continue;
        const int32_t *tail = hist + n_hist - n;
        for (int i = n_hist - n - 1; i >= 0; i--)
            if (memcmp(hist + i, tail, (size_t)n * sizeof *hist) == 0) {
                int k = 0;
                for (; k < max && i + n + k < n_hist; k++)
                    draft[k] = hist[i + n + k];
                return k;
            }
    }
    return 0;
}

tern_status tern_generate(tern_session *s, const tern_tokenizer *tok, tern_sampler *smp,
                          const int32_t *prompt, int n_prompt, int n_predict, tern_token_fn on_token,
                          void *user, struct tern_generate_stats *stats) {
    memset(stats, 0, sizeof *stats);
    if (n_prompt <= 0) {
        tern_log_error("the prompt is empty");
        return TERN_ERR_ARG;
    }
    const int n_ctx = tern_session_n_ctx(s), room = n_ctx - tern_session_pos(s);
    if (n_prompt > room) {
        tern_log_error("the prompt has %d tokens but the context has room for %d", n_prompt, room);
        return TERN_ERR_CONTEXT_FULL;
    }
    /* allocated first: a failure returns with the sampler and the session untouched (the head
     * request set below points into this frame, and `done` takes it back) */
    const int n_vocab = tern_tokenizer_n_vocab(tok), max_draft = tern_session_lookup(s);
    const size_t cap = tern_detok_max_bytes(tok);
    char *text = malloc(cap);
    /* prompt lookup: the history (what sequence 0 holds, then each sampled token) and a step's rows */
    int32_t *hist = max_draft ? malloc((size_t)(n_ctx + 1) * sizeof *hist) : NULL;
    float *rows = max_draft ? malloc((size_t)(max_draft + 1) * (size_t)n_vocab * sizeof *rows) : NULL;
    if (!text || (max_draft && (!hist || !rows))) {
        tern_log_error("out of memory for generation over %d positions", n_ctx);
        free(text);
        free(hist);
        free(rows);
        return TERN_ERR_NOMEM;
    }
    tern_sampler_start_reply(smp);
    for (int i = 0; i < n_prompt; i++)
        tern_sampler_accept(smp, prompt[i]);
    /* tell the head what the sampler will read, so a certified head may skip the rest; the
     * penalized ids change with every accepted token, so the request is renewed before each step */
    struct tern_head_request req = {.stats = &stats->head};
    const bool certify = tern_sampler_head_request(smp, &req);
    tern_session_set_head_request(s, certify ? &req : NULL);
    const float *logits;
    double t0 = tern_time_s();
    tern_status st = tern_session_eval(s, prompt, n_prompt, &logits);
    if (st)
        goto done;
    stats->n_prompt = n_prompt;
    stats->prompt_s = tern_time_s() - t0;
    int n_hist = 0;
    if (hist) {
        n_hist = tern_session_pos(s);
        memcpy(hist, tern_session_seq_tokens(s, 0), (size_t)n_hist * sizeof *hist);
    }
    int32_t draft[TERN_LOOKUP_MAX], tokens[TERN_LOOKUP_MAX + 1], seq[TERN_LOOKUP_MAX + 1] = {0};
    int outs[TERN_LOOKUP_MAX + 1];
    const struct tern_head_request *reqs[TERN_LOOKUP_MAX + 1];
    /* the position whose logits are the step's first row (the prompt's last); the row read, of n_rows */
    int base = tern_session_pos(s) - 1, row = 0, n_rows = 1;

    struct tern_detok dt;
    tern_detok_init(&dt, tok);
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
        if (hist)
            hist[n_hist++] = id;
        if (row + 1 < n_rows && id == draft[row]) { /* the step evaluated it already */
            logits = rows + (size_t)++row * (size_t)n_vocab;
            stats->n_accepted++;
            continue;
        }
        tern_session_seq_keep(s, 0, base + row + 1); /* drafts past a rejected one are forgotten */
        if (tern_session_pos(s) >= n_ctx) {
            stats->stopped_ctx = true;
            break;
        }
        /* drafts only where every row's request is this one: a certified head's penalized ids, or
         * the tokens JSON mode allows, would change along the drafts */
        int k = 0;
        if (max_draft && !(certify && (req.n_penalized > 0 || req.allowed))) {
            int most = n_ctx - tern_session_pos(s) - 1;
            most = most < max_draft ? most : max_draft;
            if (n_predict >= 0 && n_predict - stats->n_generated - 1 < most)
                most = n_predict - stats->n_generated - 1;
            k = lookup_draft(hist, n_hist, most, draft);
        }
        base = tern_session_pos(s), row = 0, n_rows = k + 1;
        stats->n_decoded++;
        if (k == 0) {
            st = tern_session_eval(s, &id, 1, &logits);
            if (st)
                break;
            continue;
        }
        tokens[0] = id;
        for (int i = 0; i <= k; i++) {
            if (i)
                tokens[i] = draft[i - 1];
            outs[i] = i;
            reqs[i] = certify ? &req : NULL;
        }
        st = tern_session_eval_batch(s, tokens, seq, k + 1, outs, k + 1, reqs, rows);
        if (st)
            break;
        stats->n_drafted += k;
        logits = rows;
    }
    if (!st) /* a step's drafts past the last token taken are not part of the sequence */
        tern_session_seq_keep(s, 0, base + row + 1);
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
    free(hist);
    free(rows);
    tern_session_set_head_request(s, NULL);
    return st;
}
