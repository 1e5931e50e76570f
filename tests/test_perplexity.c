/* Perplexity (host/generate/perplexity.h): the chunked, batched scoring equals a reference that
 * evaluates every chunk one token at a time and scores the second half with its own log-softmax;
 * the formats of one model's weights give the same figure; bad chunk sizes are refused. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "host/tern.h"

enum { N_CTX = 96, N_TOKENS = 3 * N_CTX + 17 };

static tern_session *open_session(const char *file, tern_model **m) {
    tern_session *s = NULL;
    CHECK_STATUS(TERN_OK, tern_model_create(test_data(file, 0), m));
    if (!*m)
        return NULL;
    const struct tern_session_params sp = {.n_ctx = N_CTX, .device = "cpu", .head_mode = TERN_HEAD_FULL};
    CHECK_STATUS(TERN_OK, tern_session_create(*m, &sp, &s));
    return s;
}

static void tokens_of(int32_t *t, int n, int32_t n_vocab) {
    uint64_t r = 5;
    for (int i = 0; i < n; i++)
        t[i] = (int32_t)(test_rand_u64(&r) % (uint64_t)n_vocab);
}

static bool count_chunks(const struct tern_perplexity *p, void *user) {
    int *seen = user;
    CHECK_INT(*seen + 1, p->n_chunks);
    *seen = p->n_chunks;
    return true;
}

static void equals_token_by_token(void) {
    tern_model *m = NULL;
    tern_session *s = open_session("vectors/mini-b158-i2s.gguf", &m);
    if (!s)
        return;
    const int32_t n_vocab = tern_session_n_vocab(s), bos = 998;
    int32_t tokens[N_TOKENS];
    tokens_of(tokens, N_TOKENS, n_vocab);
    struct tern_perplexity p;
    int seen = 0;
    CHECK_STATUS(TERN_OK, tern_perplexity_run(s, tokens, N_TOKENS, N_CTX, bos, 0, count_chunks, &seen, &p));
    CHECK_INT(3, p.n_chunks);
    CHECK_INT(3 * (N_CTX - 1 - N_CTX / 2), (int)p.n_scored);
    /* the reference: one token per call, the last token's logits */
    double sum = 0.0;
    long n = 0;
    for (int c = 0; c < 3; c++) {
        int32_t chunk[N_CTX];
        memcpy(chunk, tokens + c * N_CTX, sizeof chunk);
        chunk[0] = bos;
        tern_session_reset(s);
        for (int i = 0; i < N_CTX - 1; i++) {
            const float *l = NULL;
            CHECK_STATUS(TERN_OK, tern_session_eval(s, chunk + i, 1, &l));
            if (!l || i < N_CTX / 2)
                continue;
            double max = l[0], z = 0.0;
            for (int32_t v = 1; v < n_vocab; v++)
                max = l[v] > max ? l[v] : max;
            for (int32_t v = 0; v < n_vocab; v++)
                z += exp((double)l[v] - max);
            sum += log(z) + max - l[chunk[i + 1]];
            n++;
        }
    }
    CHECK_INT((int)n, (int)p.n_scored);
    CHECK_FLOAT(sum / (double)n, p.nll_sum / (double)p.n_scored, 1e-9 * fabs(sum / (double)n));
    CHECK(isfinite(tern_perplexity_value(&p)) && tern_perplexity_error(&p) > 0.0);
    /* at most two chunks: the first two's figure */
    struct tern_perplexity two;
    CHECK_STATUS(TERN_OK, tern_perplexity_run(s, tokens, N_TOKENS, N_CTX, bos, 2, NULL, NULL, &two));
    CHECK_INT(2, two.n_chunks);
    /* refused: chunks below 16 positions or beyond the context, and a text shorter than a chunk */
    CHECK_STATUS(TERN_ERR_ARG, tern_perplexity_run(s, tokens, N_TOKENS, 8, bos, 0, NULL, NULL, &two));
    CHECK_STATUS(TERN_ERR_ARG, tern_perplexity_run(s, tokens, N_TOKENS, N_CTX + 1, bos, 0, NULL, NULL, &two));
    CHECK_STATUS(TERN_ERR_ARG, tern_perplexity_run(s, tokens, N_CTX - 1, N_CTX, bos, 0, NULL, NULL, &two));
    tern_session_free(s);
    tern_model_free(m);
}

/* llama.cpp's TQ2_0 and TQ1_0 files and the F16 source hold the same weights: the same figure */
static void formats_agree(void) {
    static const char *const files[] = {"vectors/mini-bitnet-f16.gguf", "vectors/mini-bitnet-tq2.gguf",
                                        "vectors/mini-bitnet-tq1.gguf"};
    double nll[3] = {0};
    for (int f = 0; f < 3; f++) {
        tern_model *m = NULL;
        tern_session *s = open_session(files[f], &m);
        if (!s)
            continue;
        int32_t tokens[N_TOKENS];
        tokens_of(tokens, N_TOKENS, tern_session_n_vocab(s));
        struct tern_perplexity p;
        CHECK_STATUS(TERN_OK, tern_perplexity_run(s, tokens, N_TOKENS, N_CTX, 998, 0, NULL, NULL, &p));
        nll[f] = p.nll_sum;
        tern_session_free(s);
        tern_model_free(m);
    }
    CHECK(nll[0] > 0.0 && nll[0] == nll[1] && nll[1] == nll[2]);
}

int main(void) {
    RUN(equals_token_by_token);
    RUN(formats_agree);
    return harness_finish();
}
