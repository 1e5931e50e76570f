/* Flag parsing helpers shared by the tern subcommands. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../scheduler/log.h"
#include "../model/maker.h"
#include "../tern.h"
#include "cli.h"

const char *cli_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        tern_log_error("option %s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

bool cli_int(const char *flag, const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        tern_log_error("option %s: '%s' is not an integer in [%lld, %lld]", flag, s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool cli_float(const char *flag, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        tern_log_error("option %s: '%s' is not a number in [%g, %g]", flag, s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

void cli_unknown(const char *cmd, const char *arg) {
    tern_log_error("unknown option '%s' for 'tern %s' (see tern %s --help)", arg, cmd, cmd);
}

char *cli_read_file(const char *path, size_t *len) {
    const bool std_in = !strcmp(path, "-");
    FILE *f = std_in ? stdin : fopen(path, "rb");
    if (!f) {
        tern_log_error("%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *b = realloc(buf, 2 * cap + 1);
        if (!b) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = b;
        cap *= 2;
    }
    bool failed = ferror(f) != 0;
    if (!std_in)
        fclose(f);
    if (!buf || failed) {
        tern_log_error("%s: %s", std_in ? "standard input" : path, buf ? "read error" : "out of memory");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

const char cli_sampling_help[] =
    "Sampling:\n"
    "  --temp T               temperature; 0 = greedy (default 0.8)\n"
    "  --top-k K              keep the K most likely tokens; 0 = off (default 40)\n"
    "  --top-p P              keep the smallest set with probability >= P; 1 = off (default 0.95)\n"
    "  --min-p P              drop tokens below P x the top probability; 0 = off (default 0.05)\n"
    "  --repeat-penalty R     penalise tokens seen in the last --repeat-last-n; 1 = off (default 1.0)\n"
    "  --frequency-penalty F  subtract F x its count from each token seen there; 0 = off (default)\n"
    "  --presence-penalty P   subtract P from each token seen there; 0 = off (default)\n"
    "  --repeat-last-n N      window of the penalties (default 64)\n"
    "  --seed S               random seed (default: from the clock; in tern serve, one per request)\n"
    "  --logit-bias ID+B      add B (-100 to 100; ID-B subtracts) to token ID's logit before the\n"
    "                         rest; repeatable (-100 bans a token, 100 all but forces it)\n"
    "  --json                 JSON mode: each reply is one JSON object, and ends when it closes\n"
    "  --json-schema SCHEMA   JSON mode with a JSON schema (the subset in docs/cli.md) the object\n"
    "                         follows; --json-schema-file PATH reads it from a file\n";

int cli_sampling_flag(int argc, char **argv, int *i, struct tern_sampler_params *p, bool *seed_set) {
    const char *a = argv[*i], *v;
    double f;
    long long n;
    if (strcmp(a, "--temp") == 0) {
        if (!(v = cli_value(argc, argv, i)) || !cli_float(a, v, 0.0, 100.0, &f))
            return -1;
        p->temperature = (float)f;
    } else if (strcmp(a, "--top-k") == 0) {
        if (!(v = cli_value(argc, argv, i)) || !cli_int(a, v, 0, 1 << 30, &n))
            return -1;
        p->top_k = (int32_t)n;
    } else if (strcmp(a, "--top-p") == 0) {
        if (!(v = cli_value(argc, argv, i)) || !cli_float(a, v, 1e-6, 1.0, &f))
            return -1;
        p->top_p = (float)f;
    } else if (strcmp(a, "--min-p") == 0) {
        if (!(v = cli_value(argc, argv, i)) || !cli_float(a, v, 0.0, 1.0, &f))
            return -1;
        p->min_p = (float)f;
    } else if (strcmp(a, "--repeat-penalty") == 0) {
        if (!(v = cli_value(argc, argv, i)) || !cli_float(a, v, 0.01, 100.0, &f))
            return -1;
        p->repeat_penalty = (float)f;
    } else if (strcmp(a, "--frequency-penalty") == 0 || strcmp(a, "--presence-penalty") == 0) {
        if (!(v = cli_value(argc, argv, i)) || !cli_float(a, v, -2.0, 2.0, &f))
            return -1;
        float *dst = strcmp(a, "--frequency-penalty") == 0 ? &p->frequency_penalty : &p->presence_penalty;
        *dst = (float)f;
    } else if (strcmp(a, "--repeat-last-n") == 0) {
        if (!(v = cli_value(argc, argv, i)) || !cli_int(a, v, 0, 1 << 20, &n))
            return -1;
        p->repeat_last_n = (int32_t)n;
    } else if (strcmp(a, "--logit-bias") == 0) {
        if (!(v = cli_value(argc, argv, i)))
            return -1;
        char *end;
        errno = 0;
        const long long id = strtoll(v, &end, 10);
        if (errno || end == v || id < 0 || id > INT32_MAX || (*end != '+' && *end != '-')) {
            tern_log_error("option %s: '%s' is not a token id followed by +BIAS or -BIAS (e.g. 15043+5)", a,
                           v);
            return -1;
        }
        if (!cli_float(a, end, -100.0, 100.0, &f))
            return -1;
        if (p->n_logit_bias == TERN_MAX_LOGIT_BIAS) {
            tern_log_error("option %s: at most %d biases", a, TERN_MAX_LOGIT_BIAS);
            return -1;
        }
        p->logit_bias[p->n_logit_bias++] = (struct tern_logit_bias){(int32_t)id, (float)f};
    } else if (strcmp(a, "--seed") == 0) {
        if (!(v = cli_value(argc, argv, i)) || !cli_int(a, v, 0, INT64_MAX, &n))
            return -1;
        p->seed = (uint64_t)n;
        *seed_set = true;
    } else {
        return 0;
    }
    return 1;
}

const char cli_device_help[] =
    "Devices:\n"
    "      --device SPEC    auto (default, or $TERN_DEVICE): the CPU and every OpenCL device, layers\n"
    "                       placed by measured speed; cpu; cl (every OpenCL device); cl:N or\n"
    "                       cl:NAME (one OpenCL device, by index or name substring); or a list\n"
    "                       joined by ',' or '+' (e.g. cl:0,cpu), run in that order\n"
    "      --split N1,N2,.. layers per listed device, in order (the embedding runs on the first,\n"
    "                       the head on the last); default: planned from measured speed\n"
    "      --reprobe        measure the devices again instead of using the probe cache\n"
    "      --head-mode M    auto (default: certified on the CPU device, full on OpenCL devices),\n"
    "                       certified (exact top-k logits from a low-bit copy of the head and a\n"
    "                       recompute of the rows that could win) or full (every row)\n";

static bool split_valid(const char *s) {
    bool digit = false;
    for (; *s; s++) {
        if (*s >= '0' && *s <= '9')
            digit = true;
        else if (*s == ',' && digit)
            digit = false;
        else
            return false;
    }
    return digit;
}

int cli_session_flag(int argc, char **argv, int *i, struct cli_session *s) {
    const char *a = argv[*i], *v;
    const int r = s->sp ? cli_sampling_flag(argc, argv, i, s->sp, &s->seed_set) : 0;
    if (r)
        return r;
    if (s->sp && !strcmp(a, "--json")) {
        s->json = true;
        return 1;
    }
    if (s->sp && (!strcmp(a, "--json-schema") || !strcmp(a, "--json-schema-file"))) {
        if (!(s->json_schema = cli_value(argc, argv, i)))
            return -1;
        s->json_schema_file = !strcmp(a, "--json-schema-file");
        s->json = true;
        tern_json_schema *g; /* refused now rather than after the model loads */
        const tern_status st = cli_json_schema(s, &g);
        free(g);
        return st ? -1 : 1;
    }
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
        fputs(s->usage, stdout);
        if (s->sp)
            fputs(cli_sampling_help, stdout);
        fputs(cli_device_help, stdout);
        return CLI_HELP;
    }
    if (!strcmp(a, "--reprobe")) {
        s->p.reprobe = true;
        return 1;
    }
    if (s->generates && !strcmp(a, "--lookup")) {
        long long n;
        if (!(v = cli_value(argc, argv, i)) || !cli_int(a, v, 0, TERN_LOOKUP_MAX, &n))
            return -1;
        s->lookup = (int)n;
        return 1;
    }
    if (!strcmp(a, "--head-mode"))
        return (v = cli_value(argc, argv, i)) && cli_head_mode(a, v, &s->p.head_mode) ? 1 : -1;
    const char **text = !strcmp(a, "-m") || !strcmp(a, "--model") ? &s->model
                        : !strcmp(a, "--pre")                     ? &s->pre
                        : s->chat && !strcmp(a, "--chat-format")  ? &s->format
                        : !strcmp(a, "--device")                  ? &s->p.device
                        : !strcmp(a, "--split")                   ? &s->p.split
                                                                  : NULL;
    int *num = !strcmp(a, "-c") || !strcmp(a, "--ctx-size")  ? &s->p.n_ctx
               : !strcmp(a, "-t") || !strcmp(a, "--threads") ? &s->p.n_threads
                                                             : NULL;
    if (!text && !num)
        return 0;
    if (!(v = cli_value(argc, argv, i)))
        return -1;
    if (num) {
        long long n;
        if (!cli_int(a, v, 1, num == &s->p.n_ctx ? 1 << 24 : 1024, &n))
            return -1;
        *num = (int)n;
        return 1;
    }
    *text = v;
    if (text == &s->p.device)
        return tern_device_spec_valid(v) ? 1 : -1;
    if (text == &s->p.split && !split_valid(v)) {
        tern_log_error("option --split: '%s' is not a list of layer counts such as 20,10", v);
        return -1;
    }
    return 1;
}

int cli_parse(int argc, char **argv, const char *cmd, struct cli_session *s, cli_flag_fn own, void *opts) {
    for (int i = 1; i < argc; i++) {
        int r = cli_session_flag(argc, argv, &i, s);
        if (r == CLI_HELP)
            return -1;
        if (r == 0 && (r = own(argc, argv, &i, opts)) == 0)
            cli_unknown(cmd, argv[i]);
        if (r <= 0)
            return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

tern_status cli_open_model(const struct cli_session *s, tern_model **model, tern_tokenizer **tok) {
    tern_status st = tern_model_create(s->model, model);
    return st ? st : tern_tokenizer_create(tern_model_gguf(*model), s->pre, tok);
}

bool cli_head_mode(const char *flag, const char *v, enum tern_head_mode *out) {
    if (strcmp(v, "auto") && strcmp(v, "certified") && strcmp(v, "full")) {
        tern_log_error("option %s: '%s' is not a head mode (auto, certified, full)", flag, v);
        return false;
    }
    *out = !strcmp(v, "full")        ? TERN_HEAD_FULL
           : !strcmp(v, "certified") ? TERN_HEAD_CERTIFIED
                                     : TERN_HEAD_AUTO;
    return true;
}

tern_status cli_session_create(const tern_model *m, const struct tern_session_params *p, tern_session **out) {
    const int n_ctx = tern_session_params_n_ctx(m, p), train = tern_model_view(m)->hp.n_ctx_train;
    if (n_ctx > train)
        tern_log_warn("a context of %d positions is longer than the %d this model was trained on: text past "
                      "position %d may lose coherence",
                      n_ctx, train, train);
    return tern_session_create(m, p, out);
}

int cli_session_exit(tern_status st) {
    return st == TERN_ERR_ARG ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
}

bool cli_shape_known(const char *shape) {
    struct tern_maker_params p;
    return tern_maker_preset(shape, &p) == TERN_OK;
}

tern_status cli_build_shape(const char *shape, uint32_t type, uint32_t head, tern_model **out) {
    struct tern_maker_params p;
    tern_status st = tern_maker_preset(shape, &p);
    if (st)
        return st;
    if (type)
        p.linear_type = type;
    if (head)
        p.embd_type = head;
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                      : getenv("TMPDIR")            ? getenv("TMPDIR")
                                                    : "/tmp";
    char path[512];
    snprintf(path, sizeof path, "%s/tern-shape-%ld.gguf", dir, (long)getpid());
    tern_log_info("building a random %s model in %s ...", shape, dir);
    st = tern_maker_write(&p, path);
    if (st)
        return st;
    st = tern_model_create(path, out);
    unlink(path);
    return st;
}

tern_status cli_json_schema(const struct cli_session *s, tern_json_schema **out) {
    *out = NULL;
    if (!s->json_schema)
        return TERN_OK;
    const char *flag = s->json_schema_file ? "--json-schema-file" : "--json-schema";
    json_error_t je;
    json_t *j =
        s->json_schema_file ? json_load_file(s->json_schema, 0, &je) : json_loads(s->json_schema, 0, &je);
    if (!j) {
        if (je.line > 0)
            tern_log_error("option %s: not JSON: %s (line %d, column %d)", flag, je.text, je.line, je.column);
        else
            tern_log_error("option %s: %s", flag, je.text);
        return TERN_ERR_ARG;
    }
    char why[256];
    const tern_status st = tern_json_schema_compile(j, out, why, sizeof why);
    json_decref(j);
    if (st)
        tern_log_error("option %s: the schema cannot be used: %s", flag, why);
    return st;
}

tern_status cli_json_mode(const struct cli_session *s, const tern_tokenizer *tok,
                          struct tern_sampler_params *p, tern_json_vocab **v, tern_json_schema **g) {
    *v = NULL;
    tern_status st = cli_json_schema(s, g);
    if (!st && s->json)
        st = tern_json_vocab_create(tok, v);
    p->json = *v;
    p->json_schema = *g;
    return st;
}

bool cli_logit_bias_valid(const struct tern_sampler_params *p, int32_t n_vocab) {
    for (int32_t i = 0; i < p->n_logit_bias; i++)
        if (p->logit_bias[i].id >= n_vocab) {
            tern_log_error("option --logit-bias: token %d is not in the model's vocabulary (0 to %d)",
                           p->logit_bias[i].id, n_vocab - 1);
            return false;
        }
    return true;
}
