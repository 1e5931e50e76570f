/* tern bench: prompt-processing and generation speed in llama-bench's spirit, on a model file or
 * on a random model of a known shape built in memory, with the achieved memory bandwidth of
 * generation as a share of the machine's read bandwidth measured in the same run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cpu/cpu_device.h"
#include "../../cpu/membw.h"
#include "../../cpu/peak.h"
#include "../../scheduler/head_cert.h"
#include "../tern.h"
#include "cli.h"

static const char bench_usage[] =
    "Usage: tern bench (-m MODEL | --shape NAME) [options]\n"
    "\n"
    "  -m, --model PATH    benchmark a model file\n"
    "      --shape NAME    build a random model in memory: tiny, 2b4t (BitNet b1.58 2B-4T), 3b\n"
    "      --type T        ternary type of the built model: i2_s (default), tq2_0, tq1_0\n"
    "      --head T        head (tied embedding) type of the built model: f16 (default), q6_k,\n"
    "                      q8_0, q4_k, bf16, f32\n"
    "  -p, --n-prompt LIST prompt tokens evaluated as one batch, comma-separated sizes (128,512);\n"
    "                      0 skips the test (default 512)\n"
    "  -n, --n-gen LIST    tokens generated one at a time, comma-separated; 0 skips (default 128)\n"
    "  -d, --depth N       run each test after N tokens already in the context (filled, untimed,\n"
    "                      before every repetition; with --parallel, in every stream; default 0)\n"
    "  -r, --repetitions N runs of each test (default 5)\n"
    "  -t, --threads N     CPU threads (default: physical cores)\n"
    "      --device LIST   device specs to compare, comma-separated, one set of rows each\n"
    "                      (default auto); join devices of one spec with '+': cpu,cl:0,cl:0+cpu\n"
    "      --split N1,N2.. layers per device, for the multi-device ('+') specs of the list\n"
    "      --reprobe       measure the devices again instead of using the probe cache\n"
    "      --head-mode LIST comma-separated head modes to compare: auto (default), certified, full\n"
    "      --parallel LIST stream counts (e.g. 1,2,4,8): generation of that many sequences side by\n"
    "                      side, one batched forward pass per step as tern serve runs them; the\n"
    "                      rows give the aggregate tokens/s and each stream's time per token;\n"
    "                      each repetition runs every count in turn\n"
    "      --json          print the results as JSON instead of a table\n"
    "  -h, --help          this help\n"
    "\n"
    "Generation reads every weight once per token, so its speed is bounded by memory bandwidth:\n"
    "the table reports bytes per token x tokens/s and its share of the measured read bandwidth\n"
    "(at a depth, the bytes include the KV cache each token reads). Prompt processing is bounded\n"
    "by the int8 dot instruction of the CPU kernels: its rows report ternary multiply-adds per\n"
    "token x tokens/s and their share of that instruction's measured rate on all threads; below\n"
    "the table, the same probe on one thread and the ternary GEMM kernel alone. Each row gives\n"
    "the mean ± standard deviation, the minimum and the median of the repetitions. The certified head "
    "computes\n"
    "greedy logits from a low-bit copy and recomputes only the rows that could win; rows/tok is\n"
    "how many it recomputed per token, >64 the share of tokens that needed more than 64. Every\n"
    "repetition runs on every (device spec, head mode) pair in turn, so drift slows all alike.\n";

enum { MAX_SIZES = 8, MAX_COUNTS = 16 };

struct bench_opts {
    const char *model, *shape, *devices, *head_modes, *split;
    bool reprobe;
    uint32_t type, head;
    long long pp[MAX_SIZES], tg[MAX_SIZES]; /* the sizes of the -p and -n lists, zeros left out */
    int n_pp, n_tg;
    int counts[MAX_COUNTS], n_counts; /* --parallel's stream counts (none: no --parallel) */
    long long depth, reps, threads;
    bool json;
};

struct result {
    char device[128];
    char spec[64];
    char plan[128];
    char head_mode[16];
    char test[64];
    double mean, sd, min, median;   /* tokens/s over the repetitions */
    double *samples;                /* [reps] tokens/s of each repetition, in order */
    double gbps;                    /* generation only: achieved bandwidth */
    double gmacs;                   /* prompt only: ternary multiply-adds per second, 1e9 */
    double rows_per_token, over_64; /* certified head: rows recomputed per token, share over 64 */
    bool certified;                 /* the head certified some tokens (else the columns stay empty) */
    int streams;                    /* --parallel rows: concurrent sequences (0 otherwise) */
    double step_ms;                 /* --parallel rows: mean time of a step, each stream's time per token */
};

static bool type_arg(const char *flag, const char *v, bool ternary, uint32_t *out) {
    static const struct {
        const char *name;
        uint32_t type;
        bool ternary;
    } names[] = {
        {"i2_s", TERN_TYPE_I2_S, true},  {"tq2_0", TERN_TYPE_TQ2_0, true}, {"tq1_0", TERN_TYPE_TQ1_0, true},
        {"f16", TERN_TYPE_F16, false},   {"q6_k", TERN_TYPE_Q6_K, false},  {"q8_0", TERN_TYPE_Q8_0, false},
        {"q4_k", TERN_TYPE_Q4_K, false}, {"bf16", TERN_TYPE_BF16, false},  {"f32", TERN_TYPE_F32, false}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(v, names[i].name) && names[i].ternary == ternary) {
            *out = names[i].type;
            return true;
        }
    tern_log_error("option %s: '%s' is not a valid type", flag, v);
    return false;
}

/* --parallel: a comma-separated list of up to MAX_COUNTS stream counts in [1, 64], into counts. */
static bool count_list(const char *list, int *counts, int *n) {
    const char *p = list;
    for (*n = 0;;) {
        char *end;
        const long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 64 || (*end && *end != ',')) {
            tern_log_error(
                "option --parallel: '%s' is not a list of stream counts in [1, 64] such as 1,2,4,8", list);
            return false;
        }
        if (*n == MAX_COUNTS) {
            tern_log_error("option --parallel: at most %d stream counts", MAX_COUNTS);
            return false;
        }
        counts[(*n)++] = (int)v;
        if (!*end)
            return true;
        p = end + 1;
    }
}

/* -p, -n: a comma-separated list of sizes in [0, 65536]; zeros (skip) are left out. */
static bool size_list(const char *flag, const char *v, long long *list, int *n) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    *n = 0;
    if (!buf[0] || buf[strlen(buf) - 1] == ',') {
        tern_log_error("option %s: '%s' is not a comma-separated list of sizes", flag, v);
        return false;
    }
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        long long x;
        if (!cli_int(flag, p, 0, 1 << 16, &x))
            return false;
        if (x > 0 && *n == MAX_SIZES) {
            tern_log_error("option %s: at most %d sizes", flag, MAX_SIZES);
            return false;
        }
        if (x > 0)
            list[(*n)++] = x;
    }
    return true;
}

/* Each comma-separated spec of the list (devices of one spec joined by '+'). */
static bool specs_valid(const char *list) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    if (!buf[0] || buf[strlen(buf) - 1] == ',') {
        tern_log_error("option --device: '%s' is not a comma-separated list of device specs", list);
        return false;
    }
    for (char *save = NULL, *d = strtok_r(buf, ",", &save); d; d = strtok_r(NULL, ",", &save))
        if (!tern_device_spec_valid(d))
            return false;
    return true;
}

static int parse(int argc, char **argv, struct bench_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(bench_usage, stdout);
            exit(CLI_EXIT_OK);
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(o->model = cli_value(argc, argv, &i)))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--shape")) {
            if (!(o->shape = cli_value(argc, argv, &i)))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--device")) {
            if (!(o->devices = cli_value(argc, argv, &i)) || !specs_valid(o->devices))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--split")) {
            if (!(o->split = cli_value(argc, argv, &i)))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--parallel")) {
            if (!(v = cli_value(argc, argv, &i)) || !count_list(v, o->counts, &o->n_counts))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--reprobe")) {
            o->reprobe = true;
        } else if (!strcmp(a, "--head-mode")) {
            if (!(o->head_modes = cli_value(argc, argv, &i)))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--type")) {
            if (!(v = cli_value(argc, argv, &i)) || !type_arg(a, v, true, &o->type))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--head")) {
            if (!(v = cli_value(argc, argv, &i)) || !type_arg(a, v, false, &o->head))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            if (!(v = cli_value(argc, argv, &i)) || !size_list(a, v, o->pp, &o->n_pp))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            if (!(v = cli_value(argc, argv, &i)) || !size_list(a, v, o->tg, &o->n_tg))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "-d") || !strcmp(a, "--depth")) {
            if (!(v = cli_value(argc, argv, &i)) || !cli_int(a, v, 0, 1 << 20, &o->depth))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) {
            if (!(v = cli_value(argc, argv, &i)) || !cli_int(a, v, 1, 1000, &o->reps))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!(v = cli_value(argc, argv, &i)) || !cli_int(a, v, 1, 1024, &o->threads))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--json")) {
            o->json = true;
        } else {
            cli_unknown("bench", a);
            return CLI_EXIT_USAGE;
        }
    }
    if (!o->model == !o->shape) {
        tern_log_error("tern bench needs exactly one of -m MODEL or --shape NAME");
        return CLI_EXIT_USAGE;
    }
    if (o->shape && !cli_shape_known(o->shape))
        return CLI_EXIT_USAGE;
    if (o->model && (o->type || o->head)) {
        tern_log_error("--type and --head describe a built model; they go with --shape, not -m");
        return CLI_EXIT_USAGE;
    }
    char modes[64];
    snprintf(modes, sizeof modes, "%s", o->head_modes);
    enum tern_head_mode mode;
    for (char *sh = NULL, *h = strtok_r(modes, ",", &sh); h; h = strtok_r(NULL, ",", &sh))
        if (!cli_head_mode("--head-mode", h, &mode))
            return CLI_EXIT_USAGE;
    if (o->n_pp == 0 && o->n_tg == 0) {
        tern_log_error("nothing to measure: -p and -n are both 0");
        return CLI_EXIT_USAGE;
    }
    if (o->n_counts && o->n_tg == 0) {
        tern_log_error("--parallel measures generation: -n must list a size above 0");
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

static void mean_sd(const double *v, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++)
        q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0.0;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Mean ± sd, minimum and median of a row's n repetitions, and a copy of them for the JSON rows. */
static void row_stats(struct result *x, const double *v, int n) {
    mean_sd(v, n, &x->mean, &x->sd);
    x->samples = malloc((size_t)n * sizeof *x->samples);
    double *sorted = malloc((size_t)n * sizeof *sorted);
    if (x->samples)
        memcpy(x->samples, v, (size_t)n * sizeof *v);
    if (sorted) {
        memcpy(sorted, v, (size_t)n * sizeof *v);
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_double);
        x->min = sorted[0];
        x->median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }
    free(sorted);
}

/* t[0 .. n) <- ids drawn from [0, n_vocab) by the xorshift state *r. */
static void random_tokens(int32_t *t, long long n, int n_vocab, uint64_t *r) {
    for (long long i = 0; i < n; i++) {
        *r ^= *r << 13, *r ^= *r >> 7, *r ^= *r << 17;
        t[i] = (int32_t)(*r % (uint64_t)n_vocab);
    }
}

/* tokens[0 .. n) into sequence seq, untimed filling, in batches of at most 512 (so the scratch stays
 * the size of the tests' own batches). */
enum { FILL_BATCH = 512 };
static tern_status fill_seq(tern_session *s, int seq, const int32_t *tokens, long long n) {
    int32_t seqs[FILL_BATCH];
    for (int i = 0; i < FILL_BATCH; i++)
        seqs[i] = seq;
    for (long long done = 0; done < n; done += FILL_BATCH) {
        const int m = (int)(n - done < FILL_BATCH ? n - done : FILL_BATCH);
        tern_status st = tern_session_eval_batch(s, tokens + done, seqs, m, NULL, 0, NULL, NULL);
        if (st)
            return st;
    }
    return TERN_OK;
}

/* Start a repetition: an empty context, then o->depth tokens in it. */
static tern_status fill_context(tern_session *s, const struct bench_opts *o, const int32_t *tokens) {
    tern_session_reset(s);
    return fill_seq(s, 0, tokens, o->depth);
}

static void test_name(char *out, size_t size, const char *kind, long long n, long long depth) {
    if (depth > 0)
        snprintf(out, size, "%s%lld @ d%lld", kind, n, depth);
    else
        snprintf(out, size, "%s%lld", kind, n);
}

static enum tern_head_mode head_mode_of(const char *name) {
    enum tern_head_mode m = TERN_HEAD_AUTO;
    cli_head_mode("--head-mode", name, &m); /* validated while parsing */
    return m;
}

static void name_result(struct result *x, const tern_session *s, const char *spec, const char *head_mode) {
    snprintf(x->device, sizeof x->device, "%s", tern_session_device_name(s));
    snprintf(x->spec, sizeof x->spec, "%s", spec);
    snprintf(x->plan, sizeof x->plan, "%s", tern_session_plan(s));
    snprintf(x->head_mode, sizeof x->head_mode, "%s", head_mode);
}

static void head_stats(struct result *x, const struct tern_head_stats *h) {
    x->certified = h->n_tokens > h->n_full;
    x->rows_per_token = h->n_tokens ? (double)h->n_rows / (double)h->n_tokens : 0.0;
    x->over_64 = h->n_tokens ? (double)h->n_over_64 / (double)h->n_tokens : 0.0;
}

/* The tests of a run: every -p size (prompt), then every -n size (generation). */
enum { MAX_TESTS = 2 * MAX_SIZES };
struct bench_test {
    bool gen;
    long long n;
};

static int bench_tests(const struct bench_opts *o, struct bench_test *t) {
    int n = 0;
    for (int i = 0; i < o->n_pp; i++)
        t[n++] = (struct bench_test){false, o->pp[i]};
    for (int i = 0; i < o->n_tg; i++)
        t[n++] = (struct bench_test){true, o->tg[i]};
    return n;
}

static long long longest(const long long *v, int n) {
    long long m = 0;
    for (int i = 0; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

/* One (device, head mode) pair under test. The logits are read as greedy decoding reads them (the
 * top 1), so a certified head may certify. */
struct bench_run {
    const char *device, *head_mode;
    tern_session *s;
    struct tern_head_request req;
    struct tern_head_stats stats[MAX_TESTS];
    double *tps; /* [test][rep] tokens/s */
};

/* A session for one (device spec, head mode) pair: n_ctx positions in each of n_seq sequences. */
static tern_status open_session(const struct bench_opts *o, const tern_model *m, int threads,
                                const char *device, const char *head_mode, int n_ctx, int n_seq,
                                tern_session **s) {
    char split[128] = "";
    for (size_t i = 0; o->split && o->split[i] && i + 1 < sizeof split; i++)
        split[i] = o->split[i] == '+' ? ',' : o->split[i];
    struct tern_session_params sp = {.n_ctx = n_ctx,
                                     .n_threads = threads,
                                     .device = device,
                                     .split = o->split && strchr(device, '+') ? split : NULL,
                                     .reprobe = o->reprobe,
                                     .n_seq = n_seq,
                                     .head_mode = head_mode_of(head_mode)};
    return tern_session_create(m, &sp, s);
}

static tern_status run_create(struct bench_run *b, const struct bench_opts *o, const tern_model *m,
                              int threads, const int32_t *tokens, int n_tok) {
    const long long pp = longest(o->pp, o->n_pp), tg = longest(o->tg, o->n_tg);
    tern_status st = open_session(o, m, threads, b->device, b->head_mode,
                                  (int)(o->depth + (pp > tg ? pp : tg) + 8), 1, &b->s);
    if (st)
        return st;
    b->tps = malloc((size_t)MAX_TESTS * (size_t)o->reps * sizeof *b->tps);
    if (!b->tps) {
        tern_log_error("out of memory for the benchmark's samples");
        return TERN_ERR_NOMEM;
    }
    b->req = (struct tern_head_request){.top_k = 1, .repeat_penalty = 1.0f};
    tern_session_set_head_request(b->s, &b->req);
    /* warm-up: fault in the weights, and size and first-touch the scratch buffers and the KV cache
     * with the longest prompt, so the first timed repetition pays no page faults (a 16-token warm-up
     * left pp512's first repetition to fault in ~50 MB of scratch) */
    const int warm = pp > 16 ? (int)pp : n_tok < 16 ? n_tok : 16; /* pp <= n_tok */
    st = tern_session_eval(b->s, tokens, warm, NULL);
    tern_session_reset(b->s);
    return st;
}

static void run_free(struct bench_run *b) {
    tern_session_free(b->s);
    free(b->tps);
}

/* One repetition of test `test` on one run. */
static tern_status run_rep(struct bench_run *b, const struct bench_opts *o, const int32_t *tokens, int n_tok,
                           const struct bench_test *t, int test, int rep) {
    tern_status st = fill_context(b->s, o, tokens);
    if (st)
        return st;
    b->req.stats = &b->stats[test];
    const float *logits;
    const double t0 = tern_time_s();
    if (!t->gen) {
        st = tern_session_eval(b->s, tokens, (int)t->n, &logits);
        if (st)
            return st;
    } else {
        for (int i = 0; i < t->n; i++) {
            st = tern_session_eval(b->s, &tokens[i % n_tok], 1, &logits);
            if (st)
                return st;
        }
    }
    b->tps[test * o->reps + rep] = (double)t->n / (tern_time_s() - t0);
    return TERN_OK;
}

/* The result row of one test of one run. Generation at a depth also reads the KV cache:
 * kv_bytes_per_pos for every position before the token. */
static void run_result(const struct bench_run *b, const struct bench_opts *o, const tern_model *m,
                       const struct bench_test *t, int test, uint64_t bytes_per_token,
                       uint64_t kv_bytes_per_pos, uint64_t macs_per_token, struct result *x) {
    name_result(x, b->s, b->device, b->head_mode);
    test_name(x->test, sizeof x->test, t->gen ? "tg" : "pp", t->n, o->depth);
    row_stats(x, b->tps + test * o->reps, (int)o->reps);
    head_stats(x, &b->stats[test]);
    if (!t->gen) {
        x->gmacs = x->mean * (double)macs_per_token / 1e9;
        return;
    }
    /* the average token attends over depth + (n + 1) / 2 positions */
    const double kv = (double)kv_bytes_per_pos * ((double)o->depth + (double)(t->n + 1) / 2.0);
    /* a certifying head reads its shadow and the recomputed rows instead of the whole head */
    const struct tern_tensor *head = &tern_model_view(m)->output;
    double bytes = (double)bytes_per_token;
    if (b->stats[test].n_tokens > b->stats[test].n_full && tern_head_cert_supported(head))
        bytes += (double)head->ne1 * (double)tern_head_shadow_row_bytes(head->ne0) +
                 x->rows_per_token * (double)head->row_bytes - (double)head->ne1 * (double)head->row_bytes;
    x->gbps = x->mean * (bytes + kv) / 1e9;
}

/* --parallel: each stream count a generation test of that many sequences side by side (as tern serve
 * runs them) for every -n size. One session per (device, head mode) pair holds as many sequences as
 * the largest count; the buffers below serve the largest count too. */
enum { STREAM_PROMPT = 8 };
struct streams {
    int most;
    int32_t *tokens, *seq;
    int *out;
    float *logits;
    const struct tern_head_request **req;
};

static tern_status streams_open(struct streams *w, const struct bench_opts *o, int n_vocab) {
    w->most = 0;
    for (int i = 0; i < o->n_counts; i++)
        w->most = o->counts[i] > w->most ? o->counts[i] : w->most;
    const size_t P = (size_t)w->most,
                 n_buf = P * STREAM_PROMPT > (size_t)o->depth ? P * STREAM_PROMPT : (size_t)o->depth;
    w->tokens = malloc(n_buf * sizeof *w->tokens);
    w->seq = malloc(P * STREAM_PROMPT * sizeof *w->seq);
    w->out = malloc(P * sizeof *w->out);
    w->logits = malloc(P * (size_t)n_vocab * sizeof *w->logits);
    w->req = malloc(P * sizeof *w->req);
    if (!w->tokens || !w->seq || !w->out || !w->logits || !w->req) {
        tern_log_error("out of memory for %d streams", w->most);
        return TERN_ERR_NOMEM;
    }
    return TERN_OK;
}

static void streams_free(struct streams *w) {
    free(w->tokens);
    free(w->seq);
    free(w->out);
    free(w->logits);
    free(w->req);
}

/* One repetition on session s: P sequences, each from o->depth tokens of its own (fill_seq, one
 * sequence at a time) and an 8-token prompt, then n_gen batched steps of their P next tokens, timed.
 * The tokens come from seed alone, so every (device, head mode) pair sees the same ones. Greedy
 * streams: each reads the top 1 of its logits, so a certified head may certify. */
static tern_status streams_rep(struct streams *w, tern_session *s, const struct bench_opts *o, int n_vocab,
                               int P, long long n_gen, uint64_t seed, struct tern_head_stats *stats,
                               double *tps, double *step_ms) {
    struct tern_head_request one = {.top_k = 1, .repeat_penalty = 1.0f, .stats = stats};
    for (int q = 0; q < P; q++)
        w->req[q] = &one;
    uint64_t r = seed;
    tern_session_reset(s);
    for (int q = 0; q < P; q++) {
        random_tokens(w->tokens, o->depth, n_vocab, &r);
        tern_status st = fill_seq(s, q, w->tokens, o->depth);
        if (st)
            return st;
    }
    random_tokens(w->tokens, P * STREAM_PROMPT, n_vocab, &r);
    for (int i = 0; i < P * STREAM_PROMPT; i++)
        w->seq[i] = i / STREAM_PROMPT;
    for (int q = 0; q < P; q++)
        w->out[q] = q * STREAM_PROMPT + STREAM_PROMPT - 1;
    tern_status st =
        tern_session_eval_batch(s, w->tokens, w->seq, P * STREAM_PROMPT, w->out, P, w->req, w->logits);
    if (st)
        return st;
    for (int q = 0; q < P; q++)
        w->seq[q] = q;
    const double t0 = tern_time_s();
    for (int g = 0; g < n_gen; g++) {
        for (int q = 0; q < P; q++) {
            w->tokens[q] = (int32_t)((w->tokens[q] * 31 + g + q) % n_vocab);
            w->out[q] = q;
        }
        st = tern_session_eval_batch(s, w->tokens, w->seq, P, w->out, P, w->req, w->logits);
        if (st)
            return st;
    }
    const double dt = tern_time_s() - t0;
    *tps = (double)P * (double)n_gen / dt;
    *step_ms = 1e3 * dt / (double)n_gen;
    return TERN_OK;
}

enum { MAX_RESULTS = 64, MAX_RUNS = 16 };

/* The slot of run i, -n size g and stream count c in bench_streams' per-row arrays. */
static int stream_row(const struct bench_opts *o, int i, int g, int c) {
    return (i * o->n_tg + g) * o->n_counts + c;
}

/* --parallel: rows tgN xP for every run (device spec, head mode), -n size and stream count, in that
 * order. Every repetition of every (size, count) runs on every pair in turn, so a machine whose speed
 * drifts slows every row alike and ratios such as x4 / x1 hold (with each row's repetitions one after
 * another, drift between rows showed as a ratio). */
static tern_status bench_streams(const struct bench_opts *o, const tern_model *m, int threads,
                                 struct bench_run *runs, int n_runs, struct result *res, int *n_res) {
    const int n_vocab = tern_model_view(m)->hp.n_vocab;
    struct streams w = {0};
    const int n_rows = n_runs * o->n_tg * o->n_counts;
    struct tern_head_stats *stats = calloc((size_t)n_rows, sizeof *stats);
    double *tps = malloc((size_t)n_rows * (size_t)o->reps * sizeof *tps),
           *steps = malloc((size_t)n_rows * (size_t)o->reps * sizeof *steps);
    tern_status st = streams_open(&w, o, n_vocab);
    if (!st && (!stats || !tps || !steps)) {
        tern_log_error("out of memory for the benchmark's samples");
        st = TERN_ERR_NOMEM;
    }
    const int n_ctx = (int)(o->depth + longest(o->tg, o->n_tg) + STREAM_PROMPT + 8);
    for (int i = 0; !st && i < n_runs; i++)
        st = open_session(o, m, threads, runs[i].device, runs[i].head_mode, n_ctx, w.most, &runs[i].s);
    for (int rep = 0; !st && rep < o->reps; rep++)
        for (int g = 0; !st && g < o->n_tg; g++)
            for (int c = 0; !st && c < o->n_counts; c++)
                for (int i = 0; !st && i < n_runs; i++) {
                    const int k = stream_row(o, i, g, c);
                    const uint64_t seed =
                        0x2545F4914F6CDD1DULL ^ ((uint64_t)(rep * MAX_SIZES + g) << 32 | (uint64_t)c);
                    st = streams_rep(&w, runs[i].s, o, n_vocab, o->counts[c], o->tg[g], seed, &stats[k],
                                     &tps[k * o->reps + rep], &steps[k * o->reps + rep]);
                }
    for (int i = 0; !st && i < n_runs; i++)
        for (int g = 0; g < o->n_tg; g++)
            for (int c = 0; c < o->n_counts && *n_res < MAX_RESULTS; c++) {
                const int k = stream_row(o, i, g, c);
                struct result *x = &res[(*n_res)++];
                name_result(x, runs[i].s, runs[i].device, runs[i].head_mode);
                head_stats(x, &stats[k]);
                char base[48];
                test_name(base, sizeof base, "tg", o->tg[g], o->depth);
                snprintf(x->test, sizeof x->test, "%s x%d", base, o->counts[c]);
                row_stats(x, &tps[k * o->reps], (int)o->reps);
                double sd;
                mean_sd(&steps[k * o->reps], (int)o->reps, &x->step_ms, &sd);
                x->streams = o->counts[c];
            }
    for (int i = 0; i < n_runs; i++)
        run_free(&runs[i]);
    streams_free(&w);
    free(stats);
    free(tps);
    free(steps);
    return st;
}

/* Every (device, head mode) pair, each repetition of each test run on every pair in turn, so a
 * machine whose speed drifts (other processes, clocks) slows every pair alike. */
static tern_status bench_runs(const struct bench_opts *o, const tern_model *m, int threads,
                              uint64_t bytes_per_token, uint64_t kv_bytes_per_pos, uint64_t macs_per_token,
                              struct result *res, int *n_res) {
    struct bench_run runs[MAX_RUNS];
    int n_runs = 0;
    char devs[256], modes[64];
    const char *mode[MAX_RUNS];
    int n_modes = 0;
    snprintf(modes, sizeof modes, "%s", o->head_modes);
    for (char *sh = NULL, *h = strtok_r(modes, ",", &sh); h && n_modes < MAX_RUNS;
         h = strtok_r(NULL, ",", &sh))
        mode[n_modes++] = h;
    snprintf(devs, sizeof devs, "%s", o->devices);
    for (char *sd = NULL, *d = strtok_r(devs, ",", &sd); d; d = strtok_r(NULL, ",", &sd))
        for (int h = 0; h < n_modes && n_runs < MAX_RUNS; h++)
            runs[n_runs++] = (struct bench_run){.device = d, .head_mode = mode[h]};
    if (o->n_counts)
        return bench_streams(o, m, threads, runs, n_runs, res, n_res);
    struct bench_test tests[MAX_TESTS];
    const int n_tests = bench_tests(o, tests);
    const int n_vocab = tern_model_view(m)->hp.n_vocab;
    const long long pp = longest(o->pp, o->n_pp), most = pp > o->depth ? pp : o->depth;
    const int n_tok = (int)(most > 8 ? most : 8);
    int32_t *tokens = malloc((size_t)n_tok * sizeof *tokens);
    if (!tokens) {
        tern_log_error("out of memory for %d benchmark tokens", n_tok);
        return TERN_ERR_NOMEM;
    }
    uint64_t r = 0x2545F4914F6CDD1DULL;
    random_tokens(tokens, n_tok, n_vocab, &r);
    tern_status st = TERN_OK;
    int opened = 0;
    while (opened < n_runs) {
        st = run_create(&runs[opened], o, m, threads, tokens, n_tok);
        opened++; /* run_free undoes what a failed run_create made */
        if (st)
            goto done;
    }
    for (int t = 0; t < n_tests; t++)
        for (int rep = 0; rep < o->reps; rep++)
            for (int i = 0; i < n_runs; i++) {
                st = run_rep(&runs[i], o, tokens, n_tok, &tests[t], t, rep);
                if (st)
                    goto done;
            }
    for (int i = 0; i < n_runs; i++)
        for (int t = 0; t < n_tests && *n_res < MAX_RESULTS; t++)
            run_result(&runs[i], o, m, &tests[t], t, bytes_per_token, kv_bytes_per_pos, macs_per_token,
                       &res[(*n_res)++]);
done:
    for (int i = 0; i < opened; i++)
        run_free(&runs[i]);
    free(tokens);
    return st;
}

/* Ternary multiply-adds of one token through every layer (the head is left out: a prompt runs it
 * for its last token only). */
static uint64_t ternary_macs(const struct tern_model_view *v) {
    uint64_t macs = 0;
    for (int l = 0; l < v->hp.n_layer; l++) {
        const struct tern_layer_weights *L = &v->layers[l];
        const struct tern_ternary *w[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wgate, &L->wup, &L->wdown};
        for (int i = 0; i < 7; i++)
            macs += (uint64_t)w[i]->n_in * (uint64_t)w[i]->n_out;
    }
    return macs;
}

/* The read bandwidth generation rows are set against: the mean of the probes before and after the
 * runs (the one that ran where the other failed), 0 for none */
static double probe_gbps(const double bw[2]) {
    return bw[0] > 0 && bw[1] > 0 ? (bw[0] + bw[1]) / 2 : bw[0] > 0 ? bw[0] : bw[1];
}

static void print_json(const struct result *res, int n_res, const char *model_desc, uint64_t file_bytes,
                       uint64_t params, int threads, long long reps, uint64_t bytes_per_token,
                       const double bw[2], uint64_t macs_per_token, const struct tern_cpu_peak *pk) {
    printf("[\n");
    for (int i = 0; i < n_res; i++) {
        const struct result *x = &res[i];
        printf("  {\"model\": \"%s\", \"size_bytes\": %llu, \"params\": %llu, \"device\": \"%s\", "
               "\"spec\": \"%s\", \"plan\": \"%s\", \"head_mode\": \"%s\", \"threads\": %d, "
               "\"test\": \"%s\", \"tokens_per_s\": %.3f, \"stddev\": %.3f, \"min\": %.3f, \"median\": %.3f, "
               "\"samples\": [",
               model_desc, (unsigned long long)file_bytes, (unsigned long long)params, x->device, x->spec,
               x->plan, x->head_mode, threads, x->test, x->mean, x->sd, x->min, x->median);
        for (long long r = 0; x->samples && r < reps; r++)
            printf("%s%.3f", r ? ", " : "", x->samples[r]);
        printf("], \"bytes_per_token\": %llu, \"achieved_gb_per_s\": %.2f, \"read_gb_per_s\": %.2f, "
               "\"read_gb_per_s_before\": %.2f, \"read_gb_per_s_after\": %.2f, "
               "\"macs_per_token\": %llu, \"achieved_gmac_per_s\": %.2f, \"dot_isa\": \"%s\", "
               "\"dot_gmac_per_s_1t\": %.2f, \"dot_gmac_per_s\": %.2f, \"gemm_gmac_per_s_1t\": %.2f, "
               "\"gemm_gmac_per_s\": %.2f, \"head_rows_per_token\": %.2f, \"head_over_64_share\": %.4f, "
               "\"streams\": %d, \"ms_per_step\": %.3f}%s\n",
               (unsigned long long)bytes_per_token, x->gbps, probe_gbps(bw), bw[0], bw[1],
               (unsigned long long)macs_per_token, x->gmacs, pk->isa ? pk->isa : "", pk->dot_1, pk->dot_n,
               pk->gemm_1, pk->gemm_n, x->rows_per_token, x->over_64, x->streams, x->step_ms,
               i + 1 < n_res ? "," : "");
    }
    printf("]\n");
}

static void print_table(const struct result *res, int n_res, const char *model_desc, uint64_t file_bytes,
                        uint64_t params, int threads, const double bw_probes[2],
                        const struct tern_cpu_peak *pk) {
    const double bw = probe_gbps(bw_probes);
    printf("| %-40s | %9s | %7s | %-28s | %-24s | %-9s | %7s | %14s | %16s | %17s | %-27s | %8s | %5s |\n",
           "model", "size", "params", "device", "plan", "head", "threads", "test", "t/s", "min / median",
           "against the probe", "rows/tok", ">64");
    printf("| %.40s | %.9s | %.7s | %.28s | %.24s | %.9s | %.7s | %.14s | %.16s | %.17s | %.27s | %.8s | "
           "%.5s |\n",
           "----------------------------------------", "---------", "-------", "----------------------------",
           "------------------------", "---------", "-------", "--------------", "----------------",
           "-----------------", "---------------------------", "--------", "-----");
    char pcol[16], scol[16];
    snprintf(pcol, sizeof pcol, params >= 1000000000 ? "%.2f B" : "%.1f M",
             (double)params / (params >= 1000000000 ? 1e9 : 1e6));
    snprintf(scol, sizeof scol, file_bytes >= (1u << 30) ? "%.2f GiB" : "%.1f MiB",
             (double)file_bytes / (file_bytes >= (1u << 30) ? 1073741824.0 : 1048576.0));
    for (int i = 0; i < n_res; i++) {
        const struct result *x = &res[i];
        char probe[64] = "";
        if (x->streams)
            snprintf(probe, sizeof probe, "%.2f ms/token per stream", x->step_ms);
        else if (x->gbps > 0)
            snprintf(probe, sizeof probe, "%.1f GB/s (%.0f%% of %.1f)", x->gbps,
                     bw > 0 ? 100.0 * x->gbps / bw : 0.0, bw);
        else if (x->gmacs > 0 && pk->dot_n > 0)
            snprintf(probe, sizeof probe, "%.0f GMAC/s (%.0f%% of %.0f)", x->gmacs,
                     100.0 * x->gmacs / pk->dot_n, pk->dot_n);
        char tps[32], mm[32];
        snprintf(tps, sizeof tps, "%.2f ± %.2f", x->mean, x->sd);
        snprintf(mm, sizeof mm, "%.2f / %.2f", x->min, x->median);
        char rows[16] = "", over[16] = "";
        if (x->certified) {
            snprintf(rows, sizeof rows, "%.1f", x->rows_per_token);
            snprintf(over, sizeof over, "%.0f%%", 100.0 * x->over_64);
        }
        printf(
            "| %-40s | %9s | %7s | %-28s | %-24s | %-9s | %7d | %14s | %16s | %17s | %-27s | %8s | %5s |\n",
            model_desc, scol, pcol, x->device, x->plan, x->head_mode, threads, x->test, tps, mm, probe, rows,
            over);
    }
    if (bw > 0) {
        printf("\nread probe: %.1f GB/s before the runs, %.1f after", bw_probes[0], bw_probes[1]);
        const double drift = bw_probes[1] > 0 ? fabs(bw_probes[0] - bw_probes[1]) / bw : 0;
        if (drift > 0.15)
            printf(
                " (the memory's speed drifted by %.0f%% during the run: shares against the probe are rough)",
                100 * drift);
        printf("\n");
    }
    if (pk->isa) {
        printf("\ncompute probe (%s kernels): ", pk->isa);
        if (pk->dot_1 > 0)
            printf("int8 dot %.0f GMAC/s on 1 thread, %.0f on %d; ", pk->dot_1, pk->dot_n, threads);
        printf("ternary GEMM 2560 -> 6912 x 128 tokens %.0f GMAC/s on 1 thread", pk->gemm_1);
        if (pk->dot_1 > 0)
            printf(" (%.0f%%)", 100.0 * pk->gemm_1 / pk->dot_1);
        printf(", %.0f on %d", pk->gemm_n, threads);
        if (pk->dot_n > 0)
            printf(" (%.0f%%)", 100.0 * pk->gemm_n / pk->dot_n);
        printf("\n");
    }
}

int cli_bench(int argc, char **argv) {
    struct bench_opts o = {
        .pp = {512}, .n_pp = 1, .tg = {128}, .n_tg = 1, .reps = 5, .devices = "auto", .head_modes = "auto"};
    int rc = parse(argc, argv, &o);
    if (rc != CLI_EXIT_OK)
        return rc;
    tern_model *m = NULL;
    tern_status st = o.model ? tern_model_create(o.model, &m) : cli_build_shape(o.shape, o.type, o.head, &m);
    if (st)
        return CLI_EXIT_FAIL;
    const struct tern_model_view *v = tern_model_view(m);
    const tern_gguf *g = tern_model_gguf(m);
    uint64_t params = 0, file_bytes = 0;
    for (int64_t i = 0; i < tern_gguf_n_tensors(g); i++) {
        const struct tern_gguf_tensor *t = tern_gguf_tensor(g, i);
        params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        file_bytes += t->nbytes;
    }
    /* generation reads every ternary weight and the whole head once per token */
    const uint64_t bytes_per_token = tern_model_mapped_bytes(m) + tern_model_owned_bytes(m);
    /* f16 K and V of every layer */
    const uint64_t kv_bytes_per_pos =
        (uint64_t)v->hp.n_layer * 2 * (uint64_t)v->hp.n_head_kv * v->hp.head_dim * 2;
    const int threads = o.threads > 0 ? (int)o.threads : tern_cpu_physical_cores();
    /* the read probe, before the runs and after them: a probe that fails leaves its figures out of
     * the table; generation rows are set against the mean of the two */
    double bw[2] = {0, 0};
    if (o.n_tg > 0 && tern_cpu_read_bandwidth(threads, (size_t)1 << 30, 5, &bw[0]))
        bw[0] = 0;
    struct tern_cpu_peak peak = {0};
    if (o.n_pp > 0 && !o.n_counts) {
        st = tern_cpu_compute_peak(threads, &peak);
        if (st)
            memset(&peak, 0, sizeof peak);
    }

    struct result res[MAX_RESULTS] = {0};
    int n_res = 0;
    st = bench_runs(&o, m, threads, bytes_per_token, kv_bytes_per_pos, ternary_macs(v), res, &n_res);
    rc = st ? cli_session_exit(st) : CLI_EXIT_OK;
    if (bw[0] > 0 && tern_cpu_read_bandwidth(threads, (size_t)1 << 30, 5, &bw[1]))
        bw[1] = 0;

    char model_desc[160];
    struct tern_str name = {"", 0};
    tern_gguf_get_str(g, "general.name", &name);
    snprintf(model_desc, sizeof model_desc, "%.*s %s, %s head", (int)(name.len > 60 ? 60 : name.len),
             name.ptr, tern_type_name(tern_gguf_find_tensor(g, "blk.0.attn_q.weight")->type),
             tern_type_name(v->output.type));
    if (o.json)
        print_json(res, n_res, model_desc, file_bytes, params, threads, o.reps, bytes_per_token, bw,
                   ternary_macs(v), &peak);
    else
        print_table(res, n_res, model_desc, file_bytes, params, threads, bw, &peak);
    for (int i = 0; i < n_res; i++)
        free(res[i].samples);
    tern_model_free(m);
    return rc;
}
