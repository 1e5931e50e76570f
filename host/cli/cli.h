/* Shared pieces of the tern command line: flag-value parsing with range checks and usage errors.
 * Exit codes: 0 success, 1 runtime failure (bad model, device, I/O), 2 usage error (bad flag). */
#ifndef TERN_CLI_H
#define TERN_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "../generate/json_mode.h"
#include "../generate/sampler.h"
#include "../generate/session.h"
#include "../model/model.h"
#include "../tokenizer/tokenizer.h"

/* 130: a run stopped by Ctrl-C (SIGINT), as shells report a process that SIGINT ended */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2, CLI_EXIT_INTERRUPTED = 130 };

/* The value after flag argv[*i]; advances *i. NULL (and a logged usage error) when missing. */
const char *cli_value(int argc, char **argv, int *i);
bool cli_int(const char *flag, const char *s, long long lo, long long hi, long long *out);
bool cli_float(const char *flag, const char *s, double lo, double hi, double *out);
/* Logs "unknown option X for 'tern CMD' (see tern CMD --help)". */
void cli_unknown(const char *cmd, const char *arg);
/* Read a whole file ("-": standard input) into a NUL-terminated malloc'd buffer; logs and returns NULL
 * on failure. */
char *cli_read_file(const char *path, size_t *len);

/* Sampling flags shared by run and chat (through cli_session_flag): returns 1 if argv[*i] was one
 * (consumed), 0 if not, -1 on a bad value. */
int cli_sampling_flag(int argc, char **argv, int *i, struct tern_sampler_params *p, bool *seed_set);
/* The --logit-bias ids lie in a vocabulary of n_vocab tokens (else one error line, false). */
bool cli_logit_bias_valid(const struct tern_sampler_params *p, int32_t n_vocab);
extern const char cli_sampling_help[];

/* The flags run, chat and serve share: -m/--model PATH, --pre NAME, --chat-format NAME (where chat
 * is set), -c/--ctx-size N, -t/--threads N, --device SPEC, --split N1,N2,..., --reprobe,
 * --head-mode M, --lookup N (where generates is set), the sampling flags (where sp is set) and -h/--help
 * (usage, then the shared help). Returns 1 if argv[*i] was one (consumed), 0 if not, -1 on a bad value
 * (logged), CLI_HELP after printing the help. */
enum { CLI_HELP = 3 };
struct cli_session {
    const char *usage; /* the command's own help */
    bool chat;
    struct tern_sampler_params *sp; /* NULL: no sampling flags */
    bool seed_set;                  /* --seed was given */
    bool json;                      /* --json: JSON mode (cli_json_mode, once the tokenizer is open) */
    const char *json_schema;        /* --json-schema TEXT or --json-schema-file PATH (its argument) */
    bool json_schema_file;          /* json_schema is a path */
    bool generates;                 /* run and chat: --lookup N is theirs */
    int lookup;                     /* --lookup: prompt-lookup draft tokens a step (0: off) */
    const char *model, *pre, *format;
    struct tern_session_params p; /* n_ctx, n_threads, device, split, reprobe, head_mode */
};
int cli_session_flag(int argc, char **argv, int *i, struct cli_session *s);
/* A command's own flags: 1 if argv[*i] was one (consumed), 0 if not, -1 on a bad value (logged). */
typedef int (*cli_flag_fn)(int argc, char **argv, int *i, void *opts);
/* The flag loop of the commands over a session (run, chat, serve, perplexity): each argument goes to
 * cli_session_flag, then to own. CLI_EXIT_OK, CLI_EXIT_USAGE for an unknown or bad flag (logged),
 * or -1 after printing the help. */
int cli_parse(int argc, char **argv, const char *cmd, struct cli_session *s, cli_flag_fn own, void *opts);
/* Open s->model and its tokenizer (s->pre); failures are logged. */
tern_status cli_open_model(const struct cli_session *s, tern_model **model, tern_tokenizer **tok);
/* --json-schema or --json-schema-file: the schema compiled into *out (NULL without one); logs a
 * failure (TERN_ERR_ARG: one that cannot be read or used). */
tern_status cli_json_schema(const struct cli_session *s, tern_json_schema **out);
/* --json (or a schema): JSON mode's table of tok into *v and the schema into *g, both set in p
 * (nothing without the flags); logs a failure. Free both after the sampler. */
tern_status cli_json_mode(const struct cli_session *s, const tern_tokenizer *tok,
                          struct tern_sampler_params *p, tern_json_vocab **v, tern_json_schema **g);
/* "certified" or "full" into *out; false (logged, naming flag) otherwise. */
bool cli_head_mode(const char *flag, const char *v, enum tern_head_mode *out);
extern const char cli_device_help[];
/* tern_session_create for the context a user chose (run, chat, serve, perplexity), with a warning
 * when a sequence's context is longer than the one the model was trained on. */
tern_status cli_session_create(const tern_model *m, const struct tern_session_params *p, tern_session **out);
/* Exit code for a failed session start: a bad split or device list is a usage error. */
int cli_session_exit(tern_status st);

/* Whether shape names a preset (else logged: a bad flag value). */
bool cli_shape_known(const char *shape);
/* Build a random model of a preset shape (tiny, 2b4t, 3b; type/head 0: the preset's) in memory
 * (/dev/shm when present) and open it; the file is unlinked, the mapping keeps it alive. */
tern_status cli_build_shape(const char *shape, uint32_t type, uint32_t head, tern_model **out);

int cli_run(int argc, char **argv);
int cli_devices(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_convert(int argc, char **argv);
int cli_perplexity(int argc, char **argv);
int cli_chat(int argc, char **argv);

#endif
