/* Perplexity of a model over a text, computed as llama.cpp's llama-perplexity does so the figures
 * compare: the tokens are cut into chunks of n_ctx, each chunk is evaluated from an empty context
 * with its first token replaced by BOS (where the model adds one), and the second half of every
 * chunk is scored: the negative log-likelihood of each token there given the chunk before it. */
#ifndef TERN_PERPLEXITY_H
#define TERN_PERPLEXITY_H

#include <stdbool.h>

#include "session.h"

struct tern_perplexity {
    int n_chunks;    /* chunks evaluated so far */
    long n_scored;   /* tokens scored so far */
    double nll_sum;  /* their negative log-likelihoods (natural log), summed */
    double nll2_sum; /* and their squares */
};

/* exp(mean NLL), and its standard error (from the NLLs' spread, as llama.cpp reports it). */
double tern_perplexity_value(const struct tern_perplexity *p);
double tern_perplexity_error(const struct tern_perplexity *p);

/* Called after each chunk with the running totals; return false to stop. */
typedef bool (*tern_perplexity_fn)(const struct tern_perplexity *p, void *user);

/* Score tokens[n_tokens] in chunks of n_ctx (at most max_chunks; <= 0: every whole chunk) on
 * session s, whose context must hold n_ctx positions; bos < 0 keeps each chunk's first token.
 * Every logit row is computed by the full head. TERN_ERR_ARG (logged) when n_ctx < 16 or the tokens
 * do not fill one chunk. */
tern_status tern_perplexity_run(tern_session *s, const int32_t *tokens, int n_tokens, int n_ctx, int32_t bos,
                                int max_chunks, tern_perplexity_fn on_chunk, void *user,
                                struct tern_perplexity *out);

#endif
