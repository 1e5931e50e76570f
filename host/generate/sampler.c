/* The sampler chain: penalties (repetition, frequency, presence) -> (greedy | top-k -> temperature
 * -> softmax -> top-p -> min-p -> draw), with the project's seeded generator (rng.h). */
#include "sampler.h"

#include "../../scheduler/log.h"
#include "../tokenizer/heap.h"
#include "json_mode.h"
#include "rng.h"

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
    float *weight;          /* [n_vocab] exp((logit - max) / T), sampling without top-k */
    struct tern_heap top;   /* top-k selection */
    int32_t *recent;        /* ring of the last repeat_last_n tokens */
    int32_t n_recent, recent_head;
    int32_t *penalized;  /* [repeat_last_n] the distinct recent ids, ascending */
    float *penalty_sub;  /* [repeat_last_n] what the frequency and presence penalties take from each */
    int32_t *sorted;     /* [repeat_last_n] scratch */
    int32_t n_penalized; /* how many ids penalized holds for recent; -1 after accept changed recent */
    struct tern_json_state json; /* JSON mode: where the generated text stands */
    tern_json_schema *schema;    /* JSON mode: the sampler's copy of its schema */
    uint8_t *allowed;            /* JSON mode: [n_vocab] the tokens that can follow json */
    int32_t n_allowed;           /* how many; -1 until worked out for json as it stands */
    struct tern_rng rng;
};

struct tern_sampler_params tern_sampler_default_params(void) {
    struct tern_sampler_params p = {
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .frequency_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .repeat_last_n = 64,
        .seed = 0,
    };
    return p;
}

static int by_logit_desc(const void *a, const void *b) {
    const struct candidate *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id; /* stable order for equal logits */
}

static int32_t argmax(const float *logits, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

static bool worse(const void *a, const void *b) {
    return by_logit_desc(a, b) > 0;
}

tern_status tern_sampler_create(const struct tern_sampler_params *p, int32_t n_vocab, tern_sampler **out) {
    *out = NULL;
    if (n_vocab <= 0 || p->repeat_last_n < 0 || !(p->top_p > 0.0f) || p->min_p > 1.0f ||
        !isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty) || p->n_logit_bias < 0 ||
        p->n_logit_bias > TERN_MAX_LOGIT_BIAS)
        return TERN_ERR_ARG;
    for (int32_t i = 0; i < p->n_logit_bias; i++)
        if (p->logit_bias[i].id < 0 || p->logit_bias[i].id >= n_vocab ||
            !(fabsf(p->logit_bias[i].bias) <= 100.0f))
            return TERN_ERR_ARG;
    tern_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return TERN_ERR_NOMEM;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->top = tern_heap_create(sizeof(struct candidate), worse);
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    s->weight = malloc((size_t)n_vocab * sizeof *s->weight);
    s->recent = malloc((size_t)(p->repeat_last_n > 0 ? p->repeat_last_n : 1) * sizeof *s->recent);
    const size_t window = (size_t)(p->repeat_last_n > 0 ? p->repeat_last_n : 1);
    s->penalized = malloc(window * sizeof *s->penalized);
    s->penalty_sub = malloc(window * sizeof *s->penalty_sub);
    s->sorted = malloc(window * sizeof *s->sorted);
    if (!s->cand || !s->weight || !s->recent || !s->penalized || !s->penalty_sub || !s->sorted) {
        tern_sampler_free(s);
        return TERN_ERR_NOMEM;
    }
    if (p->json_schema && !(s->schema = tern_json_schema_copy(p->json_schema))) {
        tern_sampler_free(s);
        return TERN_ERR_NOMEM;
    }
    s->p.json_schema = s->schema;
    if (p->json && !(s->allowed = malloc((size_t)n_vocab))) {
        tern_sampler_free(s);
        return TERN_ERR_NOMEM;
    }
    s->n_allowed = -1;
    tern_rng_seed(&s->rng, p->seed);
    tern_json_start(&s->json, s->schema);
    *out = s;
    return TERN_OK;
}

void tern_sampler_free(tern_sampler *s) {
    if (!s)
        return;
    free(s->cand);
    free(s->weight);
    tern_heap_free(&s->top);
    free(s->recent);
    free(s->penalized);
    free(s->penalty_sub);
    free(s->sorted);
    free(s->schema);
    free(s->allowed);
    free(s);
}

void tern_sampler_start_reply(tern_sampler *s) {
    tern_json_start(&s->json, s->schema);
    s->n_allowed = -1;
}

void tern_sampler_accept(tern_sampler *s, int32_t token) {
    if (s->p.repeat_last_n <= 0)
        return;
    s->recent[s->recent_head] = token;
    s->recent_head = (s->recent_head + 1) % s->p.repeat_last_n;
    if (s->n_recent < s->p.repeat_last_n)
        s->n_recent++;
    s->n_penalized = -1;
}

/* c[0..k) <- the k best tokens in descending order. A heap of the k best so far, worst on top,
 * keeps this O(n log k) per token where sorting the 128k vocabulary would cost milliseconds; the
 * heap keeps its storage between calls, so sampling allocates only on the first token. */
static tern_status select_top(tern_sampler *s, const float *logits, int32_t n, int32_t k) {
    struct tern_heap *h = &s->top;
    h->n = 0;
    for (int32_t i = 0; i < n; i++) {
        const struct candidate x = {.id = i, .logit = logits[i]};
        if (h->n < (size_t)k) {
            tern_status st = tern_heap_push(h, &x);
            if (st)
                return st;
        } else if (worse(tern_heap_top(h), &x)) {
            struct candidate out;
            tern_heap_pop(h, &out);
            tern_heap_push(h, &x); /* cannot fail: the pop made room */
        }
    }
    for (int32_t i = k - 1; i >= 0; i--)
        tern_heap_pop(h, &s->cand[i]);
    return TERN_OK;
}

static bool penalties_on(const tern_sampler *s) {
    return s->p.repeat_penalty != 1.0f || s->p.frequency_penalty != 0.0f || s->p.presence_penalty != 0.0f;
}

static int by_id(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The distinct recent ids, ascending, into s->penalized, and what the frequency and presence
 * penalties take from each (count x frequency + presence) into s->penalty_sub; returns how many.
 * Worked out once per accepted token: the head request and the penalties both read it. */
static int32_t recent_ids(tern_sampler *s) {
    if (s->n_penalized >= 0)
        return s->n_penalized;
    memcpy(s->sorted, s->recent, (size_t)s->n_recent * sizeof *s->sorted);
    qsort(s->sorted, (size_t)s->n_recent, sizeof *s->sorted, by_id);
    int32_t n = 0;
    for (int32_t i = 0; i < s->n_recent;) {
        const int32_t id = s->sorted[i];
        int32_t j = i;
        while (j < s->n_recent && s->sorted[j] == id)
            j++;
        if (id >= 0 && id < s->n_vocab) {
            s->penalized[n] = id;
            s->penalty_sub[n++] = (float)(j - i) * s->p.frequency_penalty + s->p.presence_penalty;
        }
        i = j;
    }
    return s->n_penalized = n;
}

/* Each distinct recent token once, as llama.cpp does: v > 0 ? v / repeat : v * repeat, then minus
 * its count x frequency and the presence penalty (the map head_cert.c applies to a request's bounds). */
static void apply_penalties(tern_sampler *s, float *logits) {
    if (!penalties_on(s) || s->n_recent == 0)
        return;
    const float pen = s->p.repeat_penalty;
    const int32_t n = recent_ids(s);
    for (int32_t i = 0; i < n; i++) {
        const float v = logits[s->penalized[i]];
        logits[s->penalized[i]] = (v > 0.0f ? v / pen : v * pen) - s->penalty_sub[i];
    }
}

/* JSON mode: the tokens that can follow the text so far, worked out once a token */
static int32_t json_allowed(tern_sampler *s) {
    if (s->n_allowed < 0)
        s->n_allowed = tern_json_allowed(s->p.json, &s->json, s->allowed, s->n_vocab);
    return s->n_allowed;
}

bool tern_sampler_head_request(tern_sampler *s, struct tern_head_request *req) {
    const float pen = s->p.repeat_penalty;
    const bool greedy = s->p.temperature <= 0.0f;
    if (!(pen > 0.0f) || (!greedy && (s->p.top_k <= 0 || s->p.top_k >= s->n_vocab)) || s->p.n_logit_bias > 0)
        return false;
    req->allowed = NULL;
    if (s->p.json) {
        json_allowed(s);
        req->allowed = s->allowed;
    }
    req->top_k = greedy ? 1 : s->p.top_k;
    req->repeat_penalty = pen;
    req->n_penalized = penalties_on(s) ? recent_ids(s) : 0;
    req->penalized = s->penalized;
    req->penalty_sub =
        s->p.frequency_penalty != 0.0f || s->p.presence_penalty != 0.0f ? s->penalty_sub : NULL;
    return true;
}

/* -INFINITY marks a row a certified head proved the sampler will not pick (scheduler/device.h). */
static bool valid_logit(float v) {
    return isfinite(v) || v == -INFINITY;
}

/* Index of the first NaN or +infinity, -1 when there is none (a branch-free scan). */
static int32_t first_non_finite(const float *logits, int32_t n) {
    float acc = 0.0f;
    for (int32_t i = 0; i < n; i++)
        acc += logits[i] == -INFINITY ? 0.0f : logits[i] * 0.0f; /* NaN for NaN and infinities */
    if (acc == 0.0f)
        return -1;
    int32_t i = 0;
    while (valid_logit(logits[i]))
        i++;
    return i;
}

/* Draw from c[0..m) by their p. */
static int32_t draw(tern_sampler *s, const struct candidate *c, int32_t m) {
    double total = 0.0;
    for (int32_t i = 0; i < m; i++)
        total += c[i].p;
    double r = tern_rng_uniform(&s->rng) * total;
    int32_t last = 0; /* rounding can leave r >= 0: the last token with a chance, never one without */
    for (int32_t i = 0; i < m; i++) {
        r -= c[i].p;
        if (r < 0.0)
            return c[i].id;
        last = c[i].p > 0.0f ? i : last;
    }
    return c[last].id;
}

/* top-p then min-p over c[0..m), sorted with probabilities p: how many stay. */
static int32_t n_kept(const tern_sampler *s, const struct candidate *c, int32_t m) {
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
    return m;
}

/* Sampling over the whole vocabulary (no top-k). Sorting 128k candidates cost ~25 ms a token (a
 * 2B-4T decode step is ~20), so only what the filters can keep is sorted: the tokens above a
 * cutoff on exp((l - max) / T), lowered until they hold the top-p mass, or above the min-p floor.
 * Without either filter no order matters and the draw walks the ids. */
static int32_t sample_all(tern_sampler *s, const float *logits) {
    const int32_t n = s->n_vocab;
    struct candidate *c = s->cand;
    const float l0 = logits[argmax(logits, n)];
    float *e = s->weight;
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        e[i] = expf((logits[i] - l0) / s->p.temperature);
        sum += e[i];
    }
    if (s->p.top_p >= 1.0f && s->p.min_p <= 0.0f) {
        double r = tern_rng_uniform(&s->rng) * sum;
        for (int32_t i = 0; i < n; i++) {
            r -= e[i];
            if (r < 0.0)
                return i;
        }
        return argmax(logits, n);
    }
    /* the min-p floor is p_0 x min_p with p_0 = 1 / sum: tokens below min_p / 2 in e never stay */
    float cutoff = s->p.min_p > 0.0f ? s->p.min_p * 0.5f : 1.0f / 1024;
    for (;;) {
        int32_t m = 0;
        double held = 0.0;
        for (int32_t i = 0; i < n; i++)
            if (e[i] >= cutoff) {
                c[m++] = (struct candidate){.id = i, .logit = logits[i], .p = (float)(e[i] / sum)};
                held += e[i];
            }
        /* enough when the survivors hold the top-p mass (with a margin for rounding), or when a
         * min-p floor is set: every token it keeps is among them, and the chain cuts there */
        const bool enough =
            cutoff == 0.0f || s->p.min_p > 0.0f || (s->p.top_p < 1.0f && held >= (s->p.top_p + 1e-6) * sum);
        if (enough) {
            qsort(c, (size_t)m, sizeof *c, by_logit_desc);
            return draw(s, c, n_kept(s, c, m));
        }
        cutoff = cutoff > 1e-30f ? cutoff / 256 : 0.0f;
    }
}

static int32_t sample(tern_sampler *s, float *logits) {
    const int32_t n = s->n_vocab;
    if (s->p.temperature <= 0.0f)
        return argmax(logits, n);
    if (s->p.top_k <= 0 || s->p.top_k >= n)
        return sample_all(s, logits);
    struct candidate *c = s->cand;
    const int32_t k = s->p.top_k;
    tern_status st = select_top(s, logits, n, k);
    if (st) /* out of memory: greedy is still a fair answer */
        return argmax(logits, n);
    /* softmax with temperature over the survivors (sorted, so c[0] has the largest logit) */
    double sum = 0.0;
    for (int32_t i = 0; i < k; i++) {
        c[i].p = expf((c[i].logit - c[0].logit) / s->p.temperature);
        sum += c[i].p;
    }
    for (int32_t i = 0; i < k; i++)
        c[i].p = (float)(c[i].p / sum);
    return draw(s, c, n_kept(s, c, k));
}

tern_status tern_sampler_sample(tern_sampler *s, float *logits, int32_t *id) {
    const int32_t bad = first_non_finite(logits, s->n_vocab);
    if (bad >= 0) {
        tern_log_error("the logit of token %d is %g: the model computed a non-finite value", bad,
                       (double)logits[bad]);
        return TERN_ERR_INTERNAL;
    }
    if (s->p.json) {
        if (json_allowed(s) == 0) {
            tern_log_error("JSON mode: no token of the vocabulary continues the object");
            return TERN_ERR_INTERNAL;
        }
        for (int32_t i = 0; i < s->n_vocab; i++)
            logits[i] = s->allowed[i] ? logits[i] : -INFINITY;
    }
    for (int32_t i = 0; i < s->p.n_logit_bias; i++)
        logits[s->p.logit_bias[i].id] += s->p.logit_bias[i].bias;
    apply_penalties(s, logits);
    *id = sample(s, logits);
    if (s->p.json) { /* the allowed tokens stay while the state does (text inside a string) */
        const struct tern_json_state before = s->json;
        tern_json_advance(s->p.json, &s->json, *id);
        if (!tern_json_same(&before, &s->json))
            s->n_allowed = -1;
    }
    return TERN_OK;
}
