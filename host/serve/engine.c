/* The serving engine (see engine.h). One mutex guards the queue, the slots and every job's text;
 * the loop thread releases it while the forward pass runs, so submitting and streaming never wait
 * for a step. */
#include "engine.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../scheduler/log.h"
#include "../generate/logprob.h"

/* Prompt tokens one step evaluates for one request: a long prompt is taken in chunks, so the
 * requests already decoding keep producing tokens while it is read. */
enum { PROMPT_CHUNK = 256 };
/* Prompt positions whose logits one step computes for prompt_logprobs, over all requests: each
 * takes n_vocab floats (512 KB for a 128k vocabulary). */
enum { SCORED_PER_STEP = 32 };

/* A stop string and its Knuth-Morris-Pratt matcher: fail[k] is the length of the longest proper
 * prefix of s[0 .. k] that is also a suffix of it; state (guarded by the engine's mutex) the length
 * of the longest prefix of s that the reply so far ends with. */
struct stop {
    char *s;
    uint32_t len, state;
    uint32_t *fail;
};

struct tern_job {
    tern_engine *e;
    int32_t *prompt;
    int n_prompt, max_tokens;
    struct tern_sampler_params sampling;
    struct stop stop[TERN_ENGINE_MAX_STOP];
    int n_stop;
    int logprobs; /* < 0: none */
    bool prompt_logprobs;
    /* guarded by the engine's mutex */
    char *text; /* the reply so far; [0, emitted) may be shown, the rest may still turn into a stop */
    size_t len, cap, emitted, taken;
    size_t scanned; /* bytes of text the stop matchers have seen */
    bool done, cancelled, released;
    bool in_engine; /* in the queue or a slot: the engine still points at it */
    enum tern_finish finish;
    int completion_tokens;
    struct tern_token_logprob *lp; /* with logprobs: the prompt's records (prompt_logprobs), then the
                                      reply's */
    size_t n_lp, cap_lp, lp_taken;
    bool prompt_scored;    /* every prompt record is in lp */
    struct tern_job *next; /* in the queue */
    /* the loop thread's */
    int fed;      /* prompt tokens evaluated so far, or found in the slot's cache */
    int cached;   /* prompt tokens found in the slot's cache */
    int32_t last; /* the sampled token the next step evaluates */
    tern_sampler *smp;
    struct tern_detok dt;
};

/* The logprob records of a slot's cached tokens, left by the last request that scored its prompt:
 * r[p] is the record of the token at position p, with n_top top tokens (see pick_slot). */
struct slot_records {
    struct tern_token_logprob *r;
    int n, cap, n_top;
};

struct tern_engine {
    tern_session *s;
    const tern_tokenizer *tok;
    int n_slots, queue_max, n_queued, n_vocab, n_ctx;
    tern_job **slots;
    bool reuse_prefix;            /* a slot's cached tokens serve the next prompt that begins with them */
    uint64_t *last_used;          /* [n_slots] when each slot last took a request, in admissions */
    struct slot_records *slot_lp; /* [n_slots] */
    uint64_t clock;
    tern_job *queue_head, *queue_tail;
    pthread_mutex_t mu;
    pthread_cond_t work;    /* the loop waits for requests */
    pthread_cond_t changed; /* owners wait for text */
    pthread_t thread;
    bool running, started;
    /* one step's batch */
    int32_t *tokens, *seq;
    int *out;
    int *out_pos; /* [outputs: n_slots + SCORED_PER_STEP] the prompt position of a scored output; -1: sampled
                   */
    tern_job **owner;
    struct tern_head_request *req;         /* [outputs] what each output's sampler reads */
    const struct tern_head_request **reqs; /* [outputs] &req[k], or NULL when every row matters */
    float *logits;                         /* [n_slots][n_vocab], and SCORED_PER_STEP more rows once a
                                              request scores its prompt */
    bool scoring_rows;                     /* logits has those rows */
    float *raw;                            /* [n_vocab] a copy for the sampler (logprobs) */
    char *piece;                           /* one token's text */
    size_t piece_cap;
};

const char *tern_finish_name(enum tern_finish f) {
    static const char *const names[] = {"", "stop", "length", "cancelled", "error"};
    return names[f];
}

static void job_free(tern_job *j) {
    free(j->prompt);
    for (int i = 0; i < j->n_stop; i++) {
        free(j->stop[i].s);
        free(j->stop[i].fail);
    }
    free(j->text);
    free(j->lp);
    tern_sampler_free(j->smp);
    free(j);
}

/* Under the lock: the job is over; its owner sees the rest of the text and the end. */
static void finish(tern_job *j, enum tern_finish why) {
    if (j->done)
        return;
    j->done = true;
    j->finish = why;
    j->emitted = j->len;
    j->prompt_scored = true;
    /* the tokens a stop string's cut text stands for, or that never got text */
    while (j->n_lp > 0 && !j->lp[j->n_lp - 1].prompt && j->lp[j->n_lp - 1].start >= j->len)
        j->n_lp--;
    tern_sampler_free(j->smp);
    j->smp = NULL;
}

/* Under the lock: the engine lets go of a finished job; freed here if its owner already did. */
static void let_go(tern_job *j) {
    j->in_engine = false;
    if (j->released)
        job_free(j);
}

static bool append(tern_job *j, const char *s, size_t n) {
    if (j->len + n + 1 > j->cap) {
        size_t cap = (j->len + n + 1) * 2;
        char *t = realloc(j->text, cap);
        if (!t)
            return false;
        j->text = t;
        j->cap = cap;
    }
    memcpy(j->text + j->len, s, n);
    j->len += n;
    j->text[j->len] = 0;
    return true;
}

/* Under the lock: a record of token id of job j (prompt: a prompt token; else a generated token whose
 * text begins at start) scored from logits, the raw logits of the position before it, with lse
 * their tern_log_sum_exp (NULL logits: the prompt's first token). False when out of memory. */
static bool record(tern_job *j, int32_t id, const float *logits, double lse, int n_vocab, bool prompt,
                   size_t start) {
    if (j->n_lp == j->cap_lp) {
        const size_t cap = j->cap_lp ? 2 * j->cap_lp : 64;
        struct tern_token_logprob *lp = realloc(j->lp, cap * sizeof *lp);
        if (!lp)
            return false;
        j->lp = lp;
        j->cap_lp = cap;
    }
    struct tern_token_logprob *r = &j->lp[j->n_lp++];
    *r = (struct tern_token_logprob){.id = id, .logprob = NAN, .prompt = prompt, .start = start};
    if (logits) {
        r->logprob = (float)((double)logits[id] - lse);
        r->n_top = j->logprobs;
        tern_top_ids(logits, n_vocab, r->n_top, r->top_id);
        for (int k = 0; k < r->n_top; k++)
            r->top_logprob[k] = (float)((double)logits[r->top_id[k]] - lse);
    }
    return true;
}

/* The log-sum-exp of a position's logits for its records; false (logged) when they are not finite:
 * no probabilities from broken numbers. */
static bool scorable(const float *logits, int n_vocab, double *lse) {
    *lse = tern_log_sum_exp(logits, n_vocab);
    if (isfinite(*lse))
        return true;
    tern_log_error("serve: a logit is NaN or infinite; the request ends");
    return false;
}

/* After new text: cut the reply at the earliest stop string that ends in the new text (true), or
 * show all of it but the longest tail that could still begin one. Every byte of the reply passes
 * each stop string's matcher once, so a request's stop strings cost their length once, not at
 * every token (rescanning the reply's tail for them at every token made a 1585-token reply with a
 * 200 KB stop string take 6.1 s instead of 0.09, and every other request waited). */
static bool check_stop(tern_job *j) {
    size_t cut = SIZE_MAX;
    for (; j->scanned < j->len; j->scanned++) {
        const char ch = j->text[j->scanned];
        for (int i = 0; i < j->n_stop; i++) {
            struct stop *st = &j->stop[i];
            uint32_t q = st->state;
            while (q > 0 && st->s[q] != ch)
                q = st->fail[q - 1];
            q += st->s[q] == ch;
            if (q == st->len) { /* an occurrence ends here: note where it begins, look on */
                const size_t at = j->scanned + 1 - q;
                cut = at < cut ? at : cut;
                q = st->fail[q - 1];
            }
            st->state = q;
        }
    }
    if (cut != SIZE_MAX) {
        j->len = cut;
        j->text[cut] = 0;
        return true;
    }
    size_t hold = 0;
    for (int i = 0; i < j->n_stop; i++)
        hold = j->stop[i].state > hold ? j->stop[i].state : hold;
    j->emitted = j->len - hold > j->emitted ? j->len - hold : j->emitted;
    return false;
}

/* A copy of stop string s (not empty, shorter than 2^32 bytes) with its matcher; false when out of
 * memory. */
static bool stop_init(struct stop *st, const char *s) {
    const size_t n = strlen(s);
    st->s = strdup(s);
    st->fail = malloc(n * sizeof *st->fail);
    if (!st->s || !st->fail)
        return false;
    st->len = (uint32_t)n;
    st->state = 0;
    st->fail[0] = 0;
    for (uint32_t k = 1, q = 0; k < st->len; k++) {
        while (q > 0 && s[k] != s[q])
            q = st->fail[q - 1];
        q += s[k] == s[q];
        st->fail[k] = q;
    }
    return true;
}

/* Under the lock: job j (scoring its prompt) starts from the slot's first n records, its prompt's
 * now (some may have been an earlier request's reply). */
static bool take_records(tern_job *j, const struct slot_records *sr, int n) {
    j->lp = malloc((size_t)n * sizeof *j->lp);
    if (!j->lp)
        return false;
    for (int k = 0; k < n; k++) {
        j->lp[k] = sr->r[k];
        j->lp[k].prompt = true;
        j->lp[k].start = 0;
    }
    j->n_lp = j->cap_lp = (size_t)n;
    return true;
}

/* Under the lock: slot i's request is over; one that scored its prompt leaves its records (prompt
 * and reply, position by position) to the slot's next prompt to score. */
static void release_slot(tern_engine *e, int i) {
    tern_job *j = e->slots[i];
    struct slot_records *sr = &e->slot_lp[i]; /* else it keeps the records of the prefix admit kept */
    if (j->prompt_logprobs && j->finish != TERN_FINISH_ERROR && e->reuse_prefix && j->n_lp > 0) {
        if ((size_t)sr->cap < j->n_lp) {
            struct tern_token_logprob *r = realloc(sr->r, j->n_lp * sizeof *r);
            if (r) {
                sr->r = r;
                sr->cap = (int)j->n_lp;
            }
        }
        if ((size_t)sr->cap >= j->n_lp) {
            memcpy(sr->r, j->lp, j->n_lp * sizeof *sr->r);
            sr->n = (int)j->n_lp;
            sr->n_top = j->logprobs;
        }
    }
    e->slots[i] = NULL;
    let_go(j);
}

/* The free slot for a prompt, and in *keep the positions of its cache the prompt can use: a
 * prefix of the slot's cached tokens (an earlier request's prompt and reply). The slot that saves
 * the most work wins: the tokens the prompt reuses, less a quarter of the cached tokens it
 * discards (they may serve that slot's conversation later), so an empty slot (0) beats a cache
 * that shares only its first tokens, and the least recently used slot among equals. At least the
 * prompt's last token is evaluated again, for its logits. A prompt to score (prompt_logprobs)
 * reuses only the tokens whose records the slot holds (scored with as many top tokens), and
 * evaluates its common prefix's last token again: its logits score the next token. -1: no free
 * slot. */
static int pick_slot(const tern_engine *e, const tern_job *j, int *keep) {
    int best = -1, best_score = 0;
    *keep = 0;
    for (int i = 0; i < e->n_slots; i++) {
        if (e->slots[i])
            continue;
        const int pos = e->reuse_prefix ? tern_session_seq_pos(e->s, i) : 0;
        const int32_t *cached = tern_session_seq_tokens(e->s, i);
        const struct slot_records *sr = &e->slot_lp[i];
        int m = pos < j->n_prompt - 1 ? pos : j->n_prompt - 1;
        if (j->prompt_logprobs) {
            m = sr->n_top != j->logprobs ? 0 : sr->n < pos ? sr->n : pos;
            m = m < j->n_prompt ? m : j->n_prompt;
        }
        int n = 0;
        while (n < m && cached[n] == j->prompt[n])
            n++;
        if (j->prompt_logprobs) /* the records of the common prefix are kept; its last token goes again */
            n = n > 0 ? n - 1 : 0;
        const int score = 4 * n - (pos - n); /* 4 x (reused - discarded / 4) */
        if (best < 0 || score > best_score || (score == best_score && e->last_used[i] < e->last_used[best])) {
            best = i;
            best_score = score;
            *keep = n;
        }
    }
    return best;
}

/* Under the lock: give free slots to queued requests. */
static void admit(tern_engine *e) {
    while (e->queue_head) {
        tern_job *j = e->queue_head;
        int keep;
        const int i = pick_slot(e, j, &keep);
        if (i < 0)
            return;
        e->queue_head = j->next;
        if (!e->queue_head)
            e->queue_tail = NULL;
        e->n_queued--;
        tern_status st = TERN_OK;
        if (!j->cancelled)
            st = tern_sampler_create(&j->sampling, e->n_vocab, &j->smp);
        if (!st && !j->cancelled && j->prompt_logprobs &&
            !(keep > 0 ? take_records(j, &e->slot_lp[i], keep + 1)
                       : record(j, j->prompt[0], NULL, 0.0, 0, true, 0)))
            st = TERN_ERR_NOMEM;
        if (j->cancelled || st) {
            finish(j, j->cancelled ? TERN_FINISH_CANCELLED : TERN_FINISH_ERROR);
            let_go(j);
            continue;
        }
        for (int t = 0; t < j->n_prompt; t++)
            tern_sampler_accept(j->smp, j->prompt[t]);
        tern_detok_init(&j->dt, e->tok);
        tern_session_seq_keep(e->s, i, keep);
        e->slot_lp[i].n = e->slot_lp[i].n < keep ? e->slot_lp[i].n : keep; /* past keep the tokens change */
        j->fed = j->cached = keep;
        e->last_used[i] = ++e->clock;
        e->slots[i] = j;
    }
}

/* Under the lock: the logits rows prompt scoring needs, allocated at its first use; false when out
 * of memory. */
static bool scoring_rows(tern_engine *e) {
    if (e->scoring_rows)
        return true;
    float *l = realloc(e->logits, (size_t)(e->n_slots + SCORED_PER_STEP) * (size_t)e->n_vocab * sizeof *l);
    if (!l)
        return false;
    e->logits = l;
    e->scoring_rows = true;
    return true;
}

/* Under the lock: the batch of one step; the number of tokens (0: nothing to do). A prompt being
 * scored (prompt_logprobs) takes up to SCORED_PER_STEP positions a step, shared by such prompts,
 * each an output of its own. */
static int build_batch(tern_engine *e, int *n_out) {
    int n = 0, scored = 0;
    *n_out = 0;
    for (int i = 0; i < e->n_slots; i++) {
        tern_job *j = e->slots[i];
        if (j && j->cancelled) {
            finish(j, TERN_FINISH_CANCELLED);
            release_slot(e, i);
            continue;
        }
        if (!j)
            continue;
        if (j->fed < j->n_prompt && j->prompt_logprobs) {
            if (!scoring_rows(e)) {
                tern_log_error("serve: out of memory for scoring a prompt");
                finish(j, TERN_FINISH_ERROR);
                release_slot(e, i);
                continue;
            }
            int k = j->n_prompt - j->fed < PROMPT_CHUNK ? j->n_prompt - j->fed : PROMPT_CHUNK;
            k = k < SCORED_PER_STEP - scored ? k : SCORED_PER_STEP - scored;
            for (int t = 0; t < k; t++, n++) {
                e->tokens[n] = j->prompt[j->fed];
                e->seq[n] = i;
                e->out[*n_out] = n;
                e->out_pos[*n_out] = j->fed + 1 < j->n_prompt ? j->fed : -1;
                e->reqs[*n_out] = NULL;
                e->owner[(*n_out)++] = j;
                j->fed++;
            }
            scored += k;
            continue;
        }
        if (j->fed < j->n_prompt) {
            const int k = j->n_prompt - j->fed < PROMPT_CHUNK ? j->n_prompt - j->fed : PROMPT_CHUNK;
            for (int t = 0; t < k; t++, n++) {
                e->tokens[n] = j->prompt[j->fed + t];
                e->seq[n] = i;
            }
            j->fed += k;
            if (j->fed < j->n_prompt)
                continue; /* no logits until the whole prompt is in */
        } else {
            e->tokens[n] = j->last;
            e->seq[n++] = i;
        }
        e->out[*n_out] = n - 1;
        e->out_pos[*n_out] = -1;
        e->req[*n_out] = (struct tern_head_request){0};
        e->reqs[*n_out] =
            j->logprobs < 0 && tern_sampler_head_request(j->smp, &e->req[*n_out]) ? &e->req[*n_out] : NULL;
        e->owner[(*n_out)++] = j;
    }
    return n;
}

/* Under the lock: sample job j's next token from its logits and extend its text. */
static void advance(tern_engine *e, tern_job *j, float *logits) {
    if (j->max_tokens == 0) { /* the prompt alone */
        finish(j, TERN_FINISH_LENGTH);
        return;
    }
    int32_t id;
    double lse = 0.0;
    if (j->logprobs >= 0 && !scorable(logits, e->n_vocab, &lse)) {
        finish(j, TERN_FINISH_ERROR);
        return;
    }
    tern_status st = tern_sampler_sample(
        j->smp, j->logprobs < 0 ? logits : memcpy(e->raw, logits, (size_t)e->n_vocab * sizeof *logits), &id);
    if (st) {
        finish(j, TERN_FINISH_ERROR);
        return;
    }
    j->prompt_scored = true;
    j->completion_tokens++;
    if (j->logprobs >= 0 && !tern_tokenizer_is_eog(e->tok, id) &&
        !record(j, id, logits, lse, e->n_vocab, false, j->len)) {
        finish(j, TERN_FINISH_ERROR);
        return;
    }
    if (tern_tokenizer_is_eog(e->tok, id)) {
        const size_t n = tern_detok_flush(&j->dt, e->piece, e->piece_cap);
        if (append(j, e->piece, n))
            check_stop(j);
        finish(j, TERN_FINISH_STOP);
        return;
    }
    tern_sampler_accept(j->smp, id);
    const size_t n = tern_detok_push(&j->dt, e->tok, id, e->piece, e->piece_cap);
    if (!append(j, e->piece, n)) {
        finish(j, TERN_FINISH_ERROR);
        return;
    }
    if (check_stop(j)) {
        finish(j, TERN_FINISH_STOP);
        return;
    }
    /* the sampled token is evaluated next step: it needs a position */
    const int slot_pos = j->n_prompt + j->completion_tokens;
    if ((j->max_tokens >= 0 && j->completion_tokens >= j->max_tokens) || slot_pos >= e->n_ctx) {
        const size_t m = tern_detok_flush(&j->dt, e->piece, e->piece_cap);
        append(j, e->piece, m);
        check_stop(j);
        finish(j, TERN_FINISH_LENGTH);
        return;
    }
    j->last = id;
}

static void *loop(void *arg) {
    tern_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    while (e->running) {
        admit(e);
        int n_out;
        const int n = build_batch(e, &n_out);
        if (n == 0) {
            bool any = false;
            for (int i = 0; i < e->n_slots; i++)
                any |= e->slots[i] != NULL;
            if (!any && !e->queue_head)
                pthread_cond_wait(&e->work, &e->mu);
            pthread_cond_broadcast(&e->changed);
            continue;
        }
        pthread_mutex_unlock(&e->mu);
        tern_status st =
            tern_session_eval_batch(e->s, e->tokens, e->seq, n, e->out, n_out, e->reqs, e->logits);
        pthread_mutex_lock(&e->mu);
        for (int k = 0; k < n_out; k++) {
            tern_job *j = e->owner[k];
            float *logits = e->logits + (size_t)k * (size_t)e->n_vocab;
            double lse;
            if (st)
                finish(j, TERN_FINISH_ERROR);
            else if (j->cancelled || j->done)
                continue;
            else if (e->out_pos[k] < 0)
                advance(e, j, logits);
            else if (!scorable(logits, e->n_vocab, &lse) ||
                     !record(j, j->prompt[e->out_pos[k] + 1], logits, lse, e->n_vocab, true, 0))
                finish(j, TERN_FINISH_ERROR);
        }
        for (int i = 0; i < e->n_slots; i++) {
            tern_job *j = e->slots[i];
            if (j && st)
                finish(j, TERN_FINISH_ERROR);
            if (j && j->done)
                release_slot(e, i);
        }
        pthread_cond_broadcast(&e->changed);
    }
    /* shutting down: every request ends */
    for (int i = 0; i < e->n_slots; i++) {
        tern_job *j = e->slots[i];
        if (j) {
            finish(j, TERN_FINISH_CANCELLED);
            release_slot(e, i);
        }
    }
    while (e->queue_head) {
        tern_job *j = e->queue_head;
        e->queue_head = j->next;
        finish(j, TERN_FINISH_CANCELLED);
        let_go(j);
    }
    e->queue_tail = NULL;
    e->n_queued = 0;
    pthread_cond_broadcast(&e->changed);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

tern_status tern_engine_create(tern_session *s, const tern_tokenizer *tok, int queue_max, bool reuse_prefix,
                               tern_engine **out) {
    *out = NULL;
    tern_engine *e = calloc(1, sizeof *e);
    if (!e) {
        tern_log_error("out of memory for the serving engine");
        return TERN_ERR_NOMEM;
    }
    e->s = s;
    e->tok = tok;
    e->n_slots = tern_session_n_seq(s);
    e->queue_max = queue_max;
    e->reuse_prefix = reuse_prefix;
    e->n_vocab = tern_tokenizer_n_vocab(tok);
    e->n_ctx = tern_session_n_ctx(s);
    const size_t batch = (size_t)e->n_slots * PROMPT_CHUNK;
    e->slots = calloc((size_t)e->n_slots, sizeof *e->slots);
    e->last_used = calloc((size_t)e->n_slots, sizeof *e->last_used);
    e->slot_lp = calloc((size_t)e->n_slots, sizeof *e->slot_lp);
    e->tokens = malloc(batch * sizeof *e->tokens);
    e->seq = malloc(batch * sizeof *e->seq);
    const size_t outs = (size_t)e->n_slots + SCORED_PER_STEP;
    e->out = malloc(outs * sizeof *e->out);
    e->out_pos = malloc(outs * sizeof *e->out_pos);
    e->owner = malloc(outs * sizeof *e->owner);
    e->req = malloc(outs * sizeof *e->req);
    e->reqs = malloc(outs * sizeof *e->reqs);
    e->logits = malloc((size_t)e->n_slots * (size_t)e->n_vocab * sizeof(float));
    e->raw = malloc((size_t)e->n_vocab * sizeof(float));
    e->piece_cap = tern_detok_max_bytes(tok) + 1;
    e->piece = malloc(e->piece_cap);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->work, NULL);
    pthread_cond_init(&e->changed, NULL);
    e->running = true;
    if (!e->slots || !e->last_used || !e->slot_lp || !e->tokens || !e->seq || !e->out || !e->out_pos ||
        !e->owner || !e->req || !e->reqs || !e->logits || !e->raw || !e->piece) {
        tern_log_error("out of memory for the serving engine");
        tern_engine_free(e);
        return TERN_ERR_NOMEM;
    }
    if (pthread_create(&e->thread, NULL, loop, e) != 0) {
        tern_log_error("cannot start the serving engine's thread");
        tern_engine_free(e);
        return TERN_ERR_INTERNAL;
    }
    e->started = true;
    *out = e;
    return TERN_OK;
}

void tern_engine_stop(tern_engine *e) {
    if (!e || !e->started)
        return;
    pthread_mutex_lock(&e->mu);
    e->running = false;
    pthread_cond_broadcast(&e->work);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    e->started = false;
}

void tern_engine_free(tern_engine *e) {
    if (!e)
        return;
    tern_engine_stop(e);
    free(e->slots);
    free(e->last_used);
    for (int i = 0; e->slot_lp && i < e->n_slots; i++)
        free(e->slot_lp[i].r);
    free(e->slot_lp);
    free(e->tokens);
    free(e->seq);
    free(e->out);
    free(e->out_pos);
    free(e->owner);
    free(e->req);
    free(e->reqs);
    free(e->logits);
    free(e->raw);
    free(e->piece);
    pthread_cond_destroy(&e->changed);
    pthread_cond_destroy(&e->work);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

tern_status tern_engine_submit(tern_engine *e, const struct tern_gen_request *r, tern_job **out) {
    *out = NULL;
    if (r->n_prompt <= 0 || r->n_stop < 0 || r->n_stop > TERN_ENGINE_MAX_STOP ||
        r->logprobs > TERN_ENGINE_MAX_TOP_LOGPROBS)
        return TERN_ERR_ARG;
    for (int i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= e->n_vocab)
            return TERN_ERR_ARG;
    for (int i = 0; i < r->n_stop; i++)
        if (strlen(r->stop[i]) >= UINT32_MAX)
            return TERN_ERR_ARG;
    if (r->n_prompt >= e->n_ctx)
        return TERN_ERR_CONTEXT_FULL;
    tern_job *j = calloc(1, sizeof *j);
    if (!j)
        return TERN_ERR_NOMEM;
    j->e = e;
    j->n_prompt = r->n_prompt;
    j->max_tokens = r->max_tokens;
    j->sampling = r->sampling;
    j->logprobs = r->logprobs < 0 ? -1 : r->logprobs;
    j->prompt_logprobs = j->logprobs >= 0 && r->prompt_logprobs;
    j->prompt = malloc((size_t)r->n_prompt * sizeof *j->prompt);
    bool ok = j->prompt != NULL;
    if (ok)
        memcpy(j->prompt, r->prompt, (size_t)r->n_prompt * sizeof *j->prompt);
    for (int i = 0; ok && i < r->n_stop; i++) {
        if (!r->stop[i][0])
            continue;
        ok = stop_init(&j->stop[j->n_stop], r->stop[i]);
        j->n_stop++; /* freed with the job, whole or not */
    }
    if (!ok) {
        job_free(j);
        return TERN_ERR_NOMEM;
    }
    pthread_mutex_lock(&e->mu);
    /* a free slot takes the request at the engine's next step: only requests beyond the free slots
     * wait in the queue (counting them as queued would refuse a request an idle slot could take) */
    int free_slots = 0;
    for (int i = 0; i < e->n_slots; i++)
        free_slots += !e->slots[i];
    if (!e->running || e->n_queued >= e->queue_max + free_slots) {
        pthread_mutex_unlock(&e->mu);
        job_free(j);
        return TERN_ERR_BUSY;
    }
    if (e->queue_tail)
        e->queue_tail->next = j;
    else
        e->queue_head = j;
    e->queue_tail = j;
    e->n_queued++;
    j->in_engine = true;
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
    *out = j;
    return TERN_OK;
}

/* Under the lock: the job has text its owner has not taken, or is over. */
static bool job_ready(const tern_job *j) {
    return j->taken < j->emitted || j->done;
}

bool tern_job_next(tern_job *j, char **buf, size_t *cap, size_t *len) {
    tern_engine *e = j->e;
    pthread_mutex_lock(&e->mu);
    while (!job_ready(j))
        pthread_cond_wait(&e->changed, &e->mu);
    const size_t n = j->emitted - j->taken;
    bool more = n > 0 || !j->done;
    if (n > 0) {
        if (*len + n + 1 > *cap) {
            char *b = realloc(*buf, (*len + n + 1) * 2);
            if (!b) {
                pthread_mutex_unlock(&e->mu);
                return false;
            }
            *buf = b;
            *cap = (*len + n + 1) * 2;
        }
        memcpy(*buf + *len, j->text + j->taken, n);
        *len += n;
        (*buf)[*len] = 0;
        j->taken += n;
    }
    pthread_mutex_unlock(&e->mu);
    return more;
}

int tern_job_wait_any(tern_job *const *jobs, int n, int from) {
    tern_engine *e = NULL;
    for (int i = 0; i < n && !e; i++)
        e = jobs[i] ? jobs[i]->e : NULL;
    if (!e)
        return -1;
    pthread_mutex_lock(&e->mu);
    int found = -1;
    while (found < 0) {
        for (int k = 0; k < n && found < 0; k++) {
            const tern_job *j = jobs[(from + k) % n];
            if (j && job_ready(j))
                found = (from + k) % n;
        }
        if (found < 0)
            pthread_cond_wait(&e->changed, &e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return found;
}

bool tern_job_logprobs(tern_job *j, struct tern_token_logprob **buf, size_t *cap, size_t *n) {
    pthread_mutex_lock(&j->e->mu);
    size_t end = j->lp_taken;
    while (end < j->n_lp && (j->lp[end].prompt ? j->prompt_scored : j->lp[end].start < j->taken))
        end++;
    const size_t k = end - j->lp_taken;
    bool ok = true;
    if (*n + k > *cap) {
        struct tern_token_logprob *b = realloc(*buf, (*n + k) * 2 * sizeof *b);
        ok = b != NULL;
        if (ok) {
            *buf = b;
            *cap = (*n + k) * 2;
        }
    }
    if (ok && k) {
        memcpy(*buf + *n, j->lp + j->lp_taken, k * sizeof **buf);
        *n += k;
        j->lp_taken = end;
    }
    pthread_mutex_unlock(&j->e->mu);
    return ok;
}

void tern_job_cancel(tern_job *j) {
    pthread_mutex_lock(&j->e->mu);
    j->cancelled = true;
    pthread_cond_signal(&j->e->work);
    pthread_mutex_unlock(&j->e->mu);
}

enum tern_finish tern_job_finish(const tern_job *j) {
    return j->finish;
}

void tern_job_usage(const tern_job *j, int *prompt_tokens, int *completion_tokens, int *cached_tokens) {
    *prompt_tokens = j->n_prompt;
    *cached_tokens = j->cached;
    *completion_tokens = j->completion_tokens;
}

void tern_job_free(tern_job *j) {
    tern_engine *e = j->e;
    pthread_mutex_lock(&e->mu);
    j->cancelled = true;
    j->released = true;
    const bool mine = !j->in_engine; /* else the engine frees it when it lets go */
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
    if (mine)
        job_free(j);
}
