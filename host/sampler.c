/* The sampler chain: repetition penalty -> (greedy | top-k -> temperature -> softmax -> top-p ->
 * min-p -> draw). The random generator is xoshiro256** seeded through splitmix64. */
#include "sampler.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct candidate {
    int32_t id;
    float logit;
    float p;
};

struct tern_sampler {
    struct tern_sampler_params p;
    int32_t n_vocab;
    struct candidate *cand; /* [n_vocab] */
    int32_t *recent;        /* ring of the last repeat_last_n tokens */
    int32_t n_recent, recent_head;
    uint64_t rng[4];
};

struct tern_sampler_params tern_sampler_default_params(void) {
    struct tern_sampler_params p = {
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .seed = 0,
    };
    return p;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t *s) {
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* uniform in [0, 1) with 53 random bits */
static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

tern_status tern_sampler_init(const struct tern_sampler_params *p, int32_t n_vocab, tern_sampler **out) {
    *out = NULL;
    if (n_vocab <= 0 || p->repeat_last_n < 0 || !(p->top_p > 0.0f) || p->min_p > 1.0f)
        return TERN_ERR_ARG;
    tern_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return TERN_ERR_NOMEM;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    s->recent = malloc((size_t)(p->repeat_last_n > 0 ? p->repeat_last_n : 1) * sizeof *s->recent);
    if (!s->cand || !s->recent) {
        tern_sampler_free(s);
        return TERN_ERR_NOMEM;
    }
    uint64_t seed = p->seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&seed);
    *out = s;
    return TERN_OK;
}

void tern_sampler_free(tern_sampler *s) {
    if (!s)
        return;
    free(s->cand);
    free(s->recent);
    free(s);
}

void tern_sampler_accept(tern_sampler *s, int32_t token) {
    if (s->p.repeat_last_n <= 0)
        return;
    s->recent[s->recent_head] = token;
    s->recent_head = (s->recent_head + 1) % s->p.repeat_last_n;
    if (s->n_recent < s->p.repeat_last_n)
        s->n_recent++;
}

static int by_logit_desc(const void *a, const void *b) {
    const struct candidate *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id; /* stable order for equal logits */
}

/* heap helpers for top-k selection: a min-heap on (logit, then larger id first) */
static bool worse(const struct candidate *a, const struct candidate *b) { return by_logit_desc(a, b) > 0; }

static void sift_down(struct candidate *h, int32_t n, int32_t i) {
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(&h[l], &h[m]))
            m = l;
        if (r < n && worse(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        struct candidate t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* c[0..k) <- the k best tokens in descending order; a heap keeps this O(n log k) per token,
 * where sorting the whole 128k vocabulary would cost milliseconds. Returns k. */
static int32_t select_top(struct candidate *c, const float *logits, int32_t n, int32_t k) {
    for (int32_t i = 0; i < k; i++)
        c[i] = (struct candidate){.id = i, .logit = logits[i]};
    for (int32_t i = k / 2 - 1; i >= 0; i--)
        sift_down(c, k, i);
    for (int32_t i = k; i < n; i++) {
        struct candidate x = {.id = i, .logit = logits[i]};
        if (worse(&c[0], &x)) {
            c[0] = x;
            sift_down(c, k, 0);
        }
    }
    qsort(c, (size_t)k, sizeof *c, by_logit_desc);
    return k;
}

static void apply_repeat_penalty(tern_sampler *s, float *logits) {
    const float pen = s->p.repeat_penalty;
    if (pen == 1.0f || s->n_recent == 0)
        return;
    /* each distinct recent token is penalised once, as llama.cpp does */
    for (int32_t i = 0; i < s->n_recent; i++) {
        int32_t id = s->recent[i];
        if (id < 0 || id >= s->n_vocab)
            continue;
        bool seen = false;
        for (int32_t j = 0; j < i; j++)
            if (s->recent[j] == id)
                seen = true;
        if (seen)
            continue;
        logits[id] = logits[id] > 0.0f ? logits[id] / pen : logits[id] * pen;
    }
}

int32_t tern_sampler_sample(tern_sampler *s, float *logits) {
    apply_repeat_penalty(s, logits);
    const int32_t n = s->n_vocab;
    if (s->p.temperature <= 0.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < n; i++)
            if (logits[i] > logits[best])
                best = i;
        return best;
    }
    struct candidate *c = s->cand;
    const int32_t m_k = s->p.top_k > 0 && s->p.top_k < n ? s->p.top_k : n;
    int32_t m = select_top(c, logits, n, m_k);
    /* softmax with temperature over the survivors (sorted, so c[0] has the largest logit) */
    double sum = 0.0;
    for (int32_t i = 0; i < m; i++) {
        c[i].p = expf((c[i].logit - c[0].logit) / s->p.temperature);
        sum += c[i].p;
    }
    for (int32_t i = 0; i < m; i++)
        c[i].p = (float)(c[i].p / sum);
    if (s->p.top_p < 1.0f) {
        double cum = 0.0;
        for (int32_t i = 0; i < m; i++) {
            cum += c[i].p;
            if (cum >= s->p.top_p) {
                m = i + 1;
                break;
            }
        }
    }
    if (s->p.min_p > 0.0f) {
        const float floor_p = c[0].p * s->p.min_p;
        int32_t keep = 1;
        while (keep < m && c[keep].p >= floor_p)
            keep++;
        m = keep;
    }
    double total = 0.0;
    for (int32_t i = 0; i < m; i++)
        total += c[i].p;
    double r = rng_uniform(s->rng) * total;
    for (int32_t i = 0; i < m; i++) {
        r -= c[i].p;
        if (r < 0.0)
            return c[i].id;
    }
    return c[m - 1].id;
}
