/* The sampler: greedy is argmax, the same seed gives the same tokens, each filter removes what it
 * should, and the draw follows the softmax distribution. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "host/generate/sampler.h"
#include "scheduler/log.h"

enum { NV = 1000 };

static void fill_logits(float *l, uint64_t seed) {
    uint64_t r = seed;
    for (int i = 0; i < NV; i++)
        l[i] = test_rand_normal(&r) * 3.0f;
}

static tern_sampler *make(struct tern_sampler_params p) {
    tern_sampler *s = NULL;
    CHECK_STATUS(TERN_OK, tern_sampler_create(&p, NV, &s));
    return s;
}

/* One token; the sampler must succeed on finite logits. */
static int32_t draw(tern_sampler *s, float *l) {
    int32_t id = -1;
    CHECK_STATUS(TERN_OK, tern_sampler_sample(s, l, &id));
    return id;
}

static int n_errors;
static void count_errors(enum tern_log_level level, const char *msg, void *user) {
    (void)msg;
    (void)user;
    n_errors += level == TERN_LOG_ERROR;
}

static void non_finite_logits_refused(void) {
    /* argmax over a NaN would answer 0, and a softmax over one is NaN: both refused loudly */
    const float bad[2] = {NAN, INFINITY};
    for (int greedy = 0; greedy < 2; greedy++)
        for (int b = 0; b < 2; b++) {
            struct tern_sampler_params p = tern_sampler_default_params();
            p.temperature = greedy ? 0.0f : 1.0f;
            tern_sampler *s = make(p);
            float l[NV];
            fill_logits(l, 5);
            l[NV - 1 - b] = bad[b];
            n_errors = 0;
            tern_log_set_callback(count_errors, NULL);
            int32_t id = -7;
            CHECK_STATUS(TERN_ERR_INTERNAL, tern_sampler_sample(s, l, &id));
            tern_log_set_callback(NULL, NULL);
            CHECK_INT(-7, id);
            CHECK_INT(1, n_errors);
            tern_sampler_free(s);
        }
    /* -INFINITY is a row a certified head proved out of reach: taken, never chosen */
    for (int greedy = 0; greedy < 2; greedy++) {
        struct tern_sampler_params p = tern_sampler_default_params();
        p.temperature = greedy ? 0.0f : 1.0f;
        tern_sampler *s = make(p);
        float l[NV];
        fill_logits(l, 5);
        for (int i = 0; i < NV; i += 2)
            l[i] = -INFINITY;
        int32_t id = -7;
        CHECK_STATUS(TERN_OK, tern_sampler_sample(s, l, &id));
        CHECK(id >= 0 && id % 2 == 1);
        tern_sampler_free(s);
    }
}

static void greedy_is_argmax(void) {
    struct tern_sampler_params p = tern_sampler_default_params();
    p.temperature = 0.0f;
    tern_sampler *s = make(p);
    float l[NV];
    for (int t = 0; t < 20 && s; t++) {
        fill_logits(l, 100 + t);
        int best = 0;
        for (int i = 1; i < NV; i++)
            if (l[i] > l[best])
                best = i;
        CHECK_INT(best, draw(s, l));
    }
    tern_sampler_free(s);
    /* top-k 1 with a temperature is also greedy */
    p = tern_sampler_default_params();
    p.top_k = 1;
    s = make(p);
    fill_logits(l, 7);
    int best = 0;
    for (int i = 1; i < NV; i++)
        if (l[i] > l[best])
            best = i;
    CHECK_INT(best, draw(s, l));
    tern_sampler_free(s);
}

static void same_seed_same_tokens(void) {
    int32_t a[200], b[200], c[200];
    for (int run = 0; run < 3; run++) {
        struct tern_sampler_params p = tern_sampler_default_params();
        p.seed = run == 2 ? 43 : 42;
        p.top_k = 0;
        p.top_p = 1.0f;
        p.min_p = 0.0f;
        p.temperature = 1.5f;
        tern_sampler *s = make(p);
        float l[NV];
        for (int t = 0; t < 200 && s; t++) {
            fill_logits(l, 1000 + t);
            (run == 0 ? a : run == 1 ? b : c)[t] = draw(s, l);
        }
        tern_sampler_free(s);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
}

static void filters_restrict_the_choice(void) {
    float base[NV];
    for (int i = 0; i < NV; i++)
        base[i] = -(float)i * 0.05f; /* token 0 most likely, then 1, 2, ... */
    /* top-k 5: only tokens 0..4 ever come out */
    struct tern_sampler_params p = tern_sampler_default_params();
    p.top_k = 5, p.top_p = 1.0f, p.min_p = 0.0f, p.temperature = 5.0f, p.seed = 3;
    tern_sampler *s = make(p);
    float l[NV];
    int max_id = 0;
    for (int t = 0; t < 500 && s; t++) {
        memcpy(l, base, sizeof l);
        int id = draw(s, l);
        max_id = id > max_id ? id : max_id;
    }
    CHECK_INT(4, max_id);
    tern_sampler_free(s);
    /* min-p 0.5 at temperature 1: p_i / p_0 = exp(-0.05 i) >= 0.5 for i <= 13 */
    p = tern_sampler_default_params();
    p.top_k = 0, p.top_p = 1.0f, p.min_p = 0.5f, p.temperature = 1.0f, p.seed = 4;
    s = make(p);
    max_id = 0;
    for (int t = 0; t < 2000 && s; t++) {
        memcpy(l, base, sizeof l);
        int id = draw(s, l);
        max_id = id > max_id ? id : max_id;
    }
    CHECK_INT(13, max_id);
    tern_sampler_free(s);
    /* top-p: with two tokens holding 0.6 and 0.3 of the mass, p = 0.5 keeps only the first */
    float two[NV];
    for (int i = 0; i < NV; i++)
        two[i] = -1e9f;
    two[10] = logf(0.6f), two[20] = logf(0.3f), two[30] = logf(0.1f);
    p = tern_sampler_default_params();
    p.top_k = 0, p.top_p = 0.5f, p.min_p = 0.0f, p.temperature = 1.0f, p.seed = 5;
    s = make(p);
    for (int t = 0; t < 200 && s; t++) {
        memcpy(l, two, sizeof l);
        CHECK_INT(10, draw(s, l));
    }
    tern_sampler_free(s);
}

static int by_logit(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Without top-k only what top-p and min-p can keep is sorted (host/generate/sampler.c): the draws
 * must still follow a reference that sorts the whole vocabulary, over spreads whose top-p mass
 * needs few tokens or most of them. */
static void whole_vocabulary_filters_match_a_full_sort(void) {
    const struct {
        float temp, top_p, min_p;
        bool tail; /* one token, and 999 at -8 holding a quarter of the mass in e < 1/1024 each */
    } cases[] = {{0.7f, 0.9f, 0.0f, false},   {1.5f, 0.99f, 0.0f, false}, {3.0f, 0.5f, 0.0f, false},
                 {1.0f, 0.95f, 0.02f, false}, {1.0f, 1.0f, 0.05f, false}, {1.0f, 0.9f, 0.0f, true}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        float base[NV], sorted[NV];
        fill_logits(base, 77 + c);
        for (int i = 0; i < NV && cases[c].tail; i++)
            base[i] = i == 0 ? 0.0f : -8.0f;
        memcpy(sorted, base, sizeof sorted);
        qsort(sorted, NV, sizeof *sorted, by_logit);
        /* the reference chain: softmax, top-p, then min-p, over the sorted logits */
        double sum = 0.0, q[NV];
        for (int i = 0; i < NV; i++)
            sum += q[i] = expf((sorted[i] - sorted[0]) / cases[c].temp);
        int kept = NV;
        double cum = 0.0;
        for (int i = 0; i < NV && cases[c].top_p < 1.0f; i++) {
            cum += (float)(q[i] / sum);
            if (cum >= cases[c].top_p) {
                kept = i + 1;
                break;
            }
        }
        int m = 1;
        while (m < kept && (float)(q[m] / sum) >= (float)(q[0] / sum) * cases[c].min_p)
            m++;
        kept = cases[c].min_p > 0.0f ? m : kept;
        double mass = 0.0;
        for (int i = 0; i < kept; i++)
            mass += q[i];
        struct tern_sampler_params p = tern_sampler_default_params();
        p.top_k = 0, p.top_p = cases[c].top_p, p.min_p = cases[c].min_p, p.temperature = cases[c].temp;
        p.seed = 11 + c;
        tern_sampler *s = make(p);
        const int n = 20000;
        int outside = 0, top = 0;
        float l[NV];
        for (int t = 0; t < n && s; t++) {
            memcpy(l, base, sizeof l);
            const int32_t id = draw(s, l);
            outside += base[id] < sorted[kept - 1];
            top += base[id] == sorted[0];
        }
        CHECK_INT(0, outside);
        CHECK_FLOAT(q[0] / mass, top / (double)n, 0.02);
        tern_sampler_free(s);
    }
}

static void draws_follow_softmax(void) {
    float three[NV];
    for (int i = 0; i < NV; i++)
        three[i] = -1e9f;
    three[1] = logf(0.5f), three[2] = logf(0.3f), three[3] = logf(0.2f);
    struct tern_sampler_params p = tern_sampler_default_params();
    p.top_k = 0, p.top_p = 1.0f, p.min_p = 0.0f, p.temperature = 1.0f, p.seed = 9;
    tern_sampler *s = make(p);
    int count[4] = {0};
    float l[NV];
    const int n = 20000;
    for (int t = 0; t < n && s; t++) {
        memcpy(l, three, sizeof l);
        int id = draw(s, l);
        if (id >= 1 && id <= 3)
            count[id]++;
    }
    CHECK_FLOAT(0.5, count[1] / (double)n, 0.02);
    CHECK_FLOAT(0.3, count[2] / (double)n, 0.02);
    CHECK_FLOAT(0.2, count[3] / (double)n, 0.02);
    tern_sampler_free(s);
}

/* Greedy over logits 0 but token 5 at 3 and token 6 at 2. */
static int32_t draw_5_or_6(tern_sampler *s) {
    float l[NV];
    for (int i = 0; i < NV; i++)
        l[i] = 0.0f;
    l[5] = 3.0f, l[6] = 2.0f;
    return draw(s, l);
}

static void repeat_penalty_demotes_recent_tokens(void) {
    struct tern_sampler_params p = tern_sampler_default_params();
    p.temperature = 0.0f, p.repeat_penalty = 2.0f, p.repeat_last_n = 4;
    tern_sampler *s = make(p);
    tern_sampler_accept(s, 5); /* 3 / 2 = 1.5 < 2: token 6 wins */
    CHECK_INT(6, draw_5_or_6(s));
    for (int i = 0; i < 4; i++)
        tern_sampler_accept(s, 100 + i); /* 5 leaves the window of 4 */
    CHECK_INT(5, draw_5_or_6(s));
    tern_sampler_free(s);
}

/* frequency: minus count x F; presence: minus P once; after the repeat penalty, over the window */
static void frequency_and_presence_penalties(void) {
    struct tern_sampler_params p = tern_sampler_default_params();
    p.temperature = 0.0f, p.frequency_penalty = 0.6f, p.repeat_last_n = 8;
    tern_sampler *s = make(p);
    tern_sampler_accept(s, 5); /* 3 - 0.6 = 2.4 > 2: token 5 still wins */
    CHECK_INT(5, draw_5_or_6(s));
    tern_sampler_accept(s, 5); /* twice: 3 - 1.2 = 1.8 < 2 */
    CHECK_INT(6, draw_5_or_6(s));
    tern_sampler_free(s);
    p = tern_sampler_default_params();
    p.temperature = 0.0f, p.presence_penalty = 0.9f, p.repeat_penalty = 1.2f, p.repeat_last_n = 8;
    s = make(p);
    for (int k = 0; k < 3; k++)
        tern_sampler_accept(s, 5); /* presence counts once: 3 / 1.2 - 0.9 = 1.6 < 2 */
    CHECK_INT(6, draw_5_or_6(s));
    /* the head request lists the id with what is subtracted, for a certified head */
    struct tern_head_request req = {0};
    CHECK(tern_sampler_head_request(s, &req));
    CHECK_INT(1, req.n_penalized);
    CHECK(req.penalized && req.penalized[0] == 5 && req.penalty_sub && req.penalty_sub[0] == 0.9f);
    tern_sampler_free(s);
    /* non-finite penalties are refused */
    p = tern_sampler_default_params();
    p.frequency_penalty = NAN;
    s = NULL;
    CHECK_STATUS(TERN_ERR_ARG, tern_sampler_create(&p, NV, &s));
}

/* logit biases come first (before the penalties), add up per token, need every row of the head, and
 * must name ids of the vocabulary with biases of -100 to 100 */
static void logit_bias_shifts_logits(void) {
    struct tern_sampler_params p = tern_sampler_default_params();
    p.temperature = 0.0f;
    p.logit_bias[p.n_logit_bias++] = (struct tern_logit_bias){6, 0.75f};
    p.logit_bias[p.n_logit_bias++] = (struct tern_logit_bias){6, 0.5f}; /* 2 + 1.25 > 3 */
    tern_sampler *s = make(p);
    CHECK_INT(6, draw_5_or_6(s));
    struct tern_head_request req = {0};
    CHECK(!tern_sampler_head_request(s, &req));
    tern_sampler_free(s);
    p.n_logit_bias = 1;
    p.logit_bias[0].bias = 2.5f; /* 2 + 2.5 > 3 */
    p.repeat_penalty = 2.0f, p.repeat_last_n = 4;
    s = make(p);
    CHECK_INT(6, draw_5_or_6(s));
    tern_sampler_accept(s, 6); /* (2 + 2.5) / 2 < 3: the penalty takes the biased logit (2 / 2 + 2.5 > 3) */
    CHECK_INT(5, draw_5_or_6(s));
    tern_sampler_free(s);
    const struct tern_logit_bias bad[] = {{-1, 1.0f}, {NV, 1.0f}, {3, 100.5f}, {3, NAN}};
    for (int i = 0; i < 4; i++) {
        p = tern_sampler_default_params();
        p.logit_bias[0] = bad[i];
        p.n_logit_bias = 1;
        s = NULL;
        CHECK_STATUS(TERN_ERR_ARG, tern_sampler_create(&p, NV, &s));
    }
}

int main(void) {
    RUN(greedy_is_argmax);
    RUN(same_seed_same_tokens);
    RUN(filters_restrict_the_choice);
    RUN(whole_vocabulary_filters_match_a_full_sort);
    RUN(draws_follow_softmax);
    RUN(repeat_penalty_demotes_recent_tokens);
    RUN(frequency_and_presence_penalties);
    RUN(non_finite_logits_refused);
    RUN(logit_bias_shifts_logits);
    return harness_finish();
}
