/* The serving engine: continuous batching of generation requests over one session with a KV cache
 * slot per sequence. One thread runs the loop: every step evaluates, in one batched forward pass,
 * the next token of every decoding request and the prompts of requests that just took a slot, so
 * a new request joins the running batch instead of waiting; the weights are read once per step for
 * all of them. Requests beyond the free slots wait in a bounded queue. Each request has its own
 * sampler, stop strings and token limit; its text is streamed out as it is produced. */
#ifndef TERN_ENGINE_H
#define TERN_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include "../generate/sampler.h"
#include "../generate/session.h"
#include "../tokenizer/tokenizer.h"

/* Stop strings: OpenAI allows 4, but evaluation harnesses send a task's stop strings and the end of
 * text together (lm-evaluation-harness's `until` lists), so a local server takes more. */
enum { TERN_ENGINE_MAX_STOP = 16, TERN_ENGINE_MAX_TOP_LOGPROBS = 20 };

struct tern_gen_request {
    const int32_t *prompt; /* copied at submit */
    int n_prompt;
    int max_tokens; /* < 0: until an end-of-generation token or the context is full; 0: the prompt
                       alone is evaluated (to score it, with prompt_logprobs) */
    struct tern_sampler_params sampling;
    const char *stop[TERN_ENGINE_MAX_STOP]; /* copied at submit; text that ends the reply */
    int n_stop;
    /* < 0: none. Else every generated token's log-probability (logprob.h: the raw logits'
     * log-softmax, whatever the sampling) and its position's `logprobs` most likely tokens (at most
     * TERN_ENGINE_MAX_TOP_LOGPROBS). The request's logits then come from every row of the head. */
    int logprobs;
    /* With logprobs: the prompt's tokens too, each scored from the logits at the position before
     * it (the first has none). Every prompt position's logits are computed, so such a prompt does
     * not use a slot's cached tokens. */
    bool prompt_logprobs;
};

/* One token of a request with logprobs, as tern_job_logprobs hands it out. */
struct tern_token_logprob {
    int32_t id;
    float logprob;                                   /* NAN for the prompt's first token */
    bool prompt;                                     /* a prompt token (prompt_logprobs) */
    int n_top;                                       /* the request's logprobs (the first prompt token: 0) */
    int32_t top_id[TERN_ENGINE_MAX_TOP_LOGPROBS];    /* the most likely tokens at its position, */
    float top_logprob[TERN_ENGINE_MAX_TOP_LOGPROBS]; /* from the most likely */
    size_t start; /* a generated token: where its text begins in the reply (its text may be empty, or
                     held by the detokenizer until the next token completes a character) */
};

enum tern_finish {
    TERN_FINISH_NONE = 0,
    TERN_FINISH_STOP,      /* an end-of-generation token or a stop string */
    TERN_FINISH_LENGTH,    /* max_tokens, or the context is full */
    TERN_FINISH_CANCELLED, /* cancelled by its owner, or the engine stopped */
    TERN_FINISH_ERROR      /* the forward pass or the sampler failed (logged) */
};

typedef struct tern_engine tern_engine;
typedef struct tern_job tern_job;

/* The engine over session s (its n_seq slots), tokenizer tok; at most queue_max requests wait for
 * a slot. With reuse_prefix, a slot keeps what its last request evaluated, and a new prompt that
 * begins with those tokens (a chat's next turn resends the conversation) takes that slot and
 * evaluates only the rest: the same bits as evaluating all of it (tern_session_seq_keep). Starts
 * the loop thread. */
tern_status tern_engine_create(tern_session *s, const tern_tokenizer *tok, int queue_max, bool reuse_prefix,
                               tern_engine **out);
/* Ends every request (finish reason cancelled: their owners wake up) and stops the loop thread;
 * new submissions are refused. */
void tern_engine_stop(tern_engine *e);
/* Stops the engine and frees it; every job must have been released. Accepts NULL. */
void tern_engine_free(tern_engine *e);

/* Queue a request. TERN_ERR_BUSY when the queue is full, TERN_ERR_CONTEXT_FULL when the prompt
 * leaves no room to generate, TERN_ERR_ARG for an empty prompt (nothing logged: the caller answers
 * the client). */
tern_status tern_engine_submit(tern_engine *e, const struct tern_gen_request *r, tern_job **out);

/* Block until the job has new text or has finished. Appends the new text to *buf (malloc'd,
 * grown as needed; *len bytes used) and returns true; returns false once everything was taken and
 * the job is over. */
bool tern_job_next(tern_job *j, char **buf, size_t *cap, size_t *len);
/* Block until one of jobs[0 .. n) (jobs of one engine; NULL entries left out) has text not yet
 * taken or is over, and return its index: the first such from index `from` on, in turn, so that
 * tern_job_next does not block on it. -1 when every entry is NULL. */
int tern_job_wait_any(tern_job *const *jobs, int n, int from);
/* With logprobs: appends to *buf (malloc'd, grown as needed; *n records used) the records not yet
 * taken: the prompt's (prompt_logprobs) once the whole prompt is scored, then every generated token
 * whose text begins in what tern_job_next handed out. Tokens that only a stop string's cut text
 * stands for are left out, and so are end-of-generation tokens. False when out of memory. */
bool tern_job_logprobs(tern_job *j, struct tern_token_logprob **buf, size_t *cap, size_t *n);
/* Stop generating (a client went away); the slot is freed at the next step. */
void tern_job_cancel(tern_job *j);
/* The outcome, once tern_job_next returned false. */
enum tern_finish tern_job_finish(const tern_job *j);
/* Prompt tokens (cached_tokens of them found in the slot's cache, not evaluated again) and
 * generated tokens. */
void tern_job_usage(const tern_job *j, int *prompt_tokens, int *completion_tokens, int *cached_tokens);
/* The owner is done with the job (after it finished or was cancelled). */
void tern_job_free(tern_job *j);

const char *tern_finish_name(enum tern_finish f);

#endif
