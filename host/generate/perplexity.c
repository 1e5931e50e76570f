/* Perplexity (see perplexity.h). */
#include "perplexity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../scheduler/log.h"
#include "logprob.h"

/* Logit rows per evaluation call: 64 x 128k floats is 33 MB. Batch invariance makes the scores
 * the same bits whatever this is. */
enum { PPL_OUT_BATCH = 64 };

double tern_perplexity_value(const struct tern_perplexity *p) {
    return p->n_scored > 0 ? exp(p->nll_sum / (double)p->n_scored) : NAN;
}

double tern_perplexity_error(const struct tern_perplexity *p) {
    if (p->n_scored < 2)
        return NAN;
    const double n = (double)p->n_scored, mean = p->nll_sum / n;
    const double var = (p->nll2_sum / n - mean * mean) * n / (n - 1);
    return tern_perplexity_value(p) * sqrt(var > 0 ? var / n : 0);
}

tern_status tern_perplexity_run(tern_session *s, const int32_t *tokens, int n_tokens, int n_ctx, int32_t bos,
                                int max_chunks, tern_perplexity_fn on_chunk, void *user,
                                struct tern_perplexity *out) {
    memset(out, 0, sizeof *out);
    if (n_ctx < 16 || n_ctx > tern_session_n_ctx(s)) {
        tern_log_error("a perplexity chunk needs 16 to %d positions (got %d)", tern_session_n_ctx(s), n_ctx);
        return TERN_ERR_ARG;
    }
    int n_chunks = n_tokens / n_ctx;
    if (n_chunks < 1) {
        tern_log_error("the text has %d tokens, fewer than one chunk of %d (lower -c)", n_tokens, n_ctx);
        return TERN_ERR_ARG;
    }
    if (max_chunks > 0 && max_chunks < n_chunks)
        n_chunks = max_chunks;
    const int32_t n_vocab = tern_session_n_vocab(s);
    const int first = n_ctx / 2; /* positions first .. n_ctx - 2 predict tokens first + 1 .. n_ctx - 1 */
    int32_t *chunk = malloc((size_t)n_ctx * sizeof *chunk);
    int32_t *seq = calloc((size_t)n_ctx, sizeof *seq);
    int *outs = malloc(PPL_OUT_BATCH * sizeof *outs);
    float *logits = malloc((size_t)PPL_OUT_BATCH * (size_t)n_vocab * sizeof *logits);
    tern_status st = TERN_OK;
    if (!chunk || !seq || !outs || !logits) {
        tern_log_error("out of memory for perplexity over %d-token chunks", n_ctx);
        st = TERN_ERR_NOMEM;
    }
    for (int c = 0; c < n_chunks && !st; c++) {
        memcpy(chunk, tokens + (size_t)c * (size_t)n_ctx, (size_t)n_ctx * sizeof *chunk);
        if (bos >= 0)
            chunk[0] = bos;
        tern_session_reset(s);
        st = tern_session_eval_batch(s, chunk, seq, first, NULL, 0, NULL, NULL);
        for (int p = first; p < n_ctx - 1 && !st;) {
            const int n = n_ctx - 1 - p < PPL_OUT_BATCH ? n_ctx - 1 - p : PPL_OUT_BATCH;
            for (int i = 0; i < n; i++)
                outs[i] = i;
            st = tern_session_eval_batch(s, chunk + p, seq, n, outs, n, NULL, logits);
            for (int i = 0; i < n && !st; i++) {
                const float *row = logits + (size_t)i * (size_t)n_vocab;
                const double nll = tern_log_sum_exp(row, n_vocab) - (double)row[chunk[p + i + 1]];
                out->nll_sum += nll;
                out->nll2_sum += nll * nll;
                out->n_scored++;
            }
            p += n;
        }
        if (st)
            break;
        out->n_chunks++;
        if (on_chunk && !on_chunk(out, user))
            break;
    }
    free(chunk);
    free(seq);
    free(outs);
    free(logits);
    return st;
}
