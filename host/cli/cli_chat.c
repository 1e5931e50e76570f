/* tern chat: a multi-turn conversation in the model's chat format. Each turn evaluates only what it
 * adds (the KV cache holds the conversation so far); when the context would overflow, the oldest
 * turns are dropped and the rest is evaluated again, with a notice. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../generate/chat.h"
#include "../tern.h"
#include "cli.h"

static const char chat_usage[] =
    "Usage: tern chat -m MODEL [options]\n"
    "\n"
    "Reads one message per line from stdin (a terminal or a pipe) and streams each reply to stdout;\n"
    "a line that ends with a backslash continues on the next (the backslash becomes a line break).\n"
    "/reset starts a new conversation, /system TEXT one with that system message (/system alone: none),\n"
    "/exit (or end of input) quits; Ctrl-C stops the current reply.\n"
    "  -m, --model PATH      GGUF model (required)\n"
    "      --system TEXT     system message\n"
    "      --chat-format F   bitnet, llama3 or falcon3 (default: chosen from the model)\n"
    "  -n, --n-predict N     most tokens per reply; -1 = until the end of the turn (default -1)\n"
    "      --lookup N        prompt lookup (1-7 draft tokens a step; see tern run --help; default 0)\n"
    "  -c, --ctx-size N      context positions (default: the model's, at most 4096)\n"
    "  -t, --threads N       CPU threads (default: physical cores)\n"
    "      --pre NAME        override the pre-tokenizer (llama-bpe, default, falcon3)\n"
    "  -h, --help            this help\n";

struct chat_opts {
    const char *system;
    struct cli_session s;
    long long n_predict;
    struct tern_sampler_params sp;
};

struct ids {
    int32_t *v;
    size_t n, cap;
};

static tern_status push_id(struct ids *a, int32_t id) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 256;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v)
            return TERN_ERR_NOMEM;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return TERN_OK;
}

struct turn {
    enum tern_chat_role role;
    char *text;
};

struct chat {
    tern_session *s;
    const tern_tokenizer *tok;
    tern_sampler *smp;
    enum tern_chat_format f;
    int n_predict;
    struct ids hist;    /* the conversation's tokens; hist[0..session pos) are in the KV cache */
    struct turn *turns; /* the conversation's messages, to render again after dropping turns */
    int n_turns, cap_turns;
    char *reply; /* the reply being generated */
    size_t reply_len, reply_cap;
    struct ids reply_ids;
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

enum { READ_END = -1, READ_INTERRUPTED = -2 };

/* One message from stdin into *msg (its length returned): a line, or lines joined by newlines where
 * each but the last ends with a backslash (the backslash dropped), so a message can span lines.
 * READ_END at the end of input, READ_INTERRUPTED when Ctrl-C cut the reading (what was read is
 * dropped). */
static ssize_t read_message(char **line, size_t *line_cap, char **msg, size_t *msg_cap, bool tty) {
    size_t len = 0;
    for (;;) {
        if (tty) {
            fputs(len ? ". " : "> ", stdout);
            fflush(stdout);
        }
        errno = 0;
        ssize_t n = getline(line, line_cap, stdin);
        if (n < 0) {
            if (errno == EINTR && interrupted) {
                interrupted = 0;
                clearerr(stdin);
                fputc('\n', stdout);
                return READ_INTERRUPTED;
            }
            if (tty)
                fputc('\n', stdout);
            if (!len)
                return READ_END;
            n = 0; /* the input ended after a backslash: the message so far */
        }
        while (n > 0 && ((*line)[n - 1] == '\n' || (*line)[n - 1] == '\r'))
            (*line)[--n] = 0;
        const bool more = n > 0 && (*line)[n - 1] == '\\';
        if (more)
            (*line)[n - 1] = '\n';
        if (len + (size_t)n + 1 > *msg_cap) {
            char *m = realloc(*msg, *msg_cap = 2 * (len + (size_t)n + 1));
            if (!m) {
                tern_log_error("out of memory for a message");
                return READ_END;
            }
            *msg = m;
        }
        memcpy(*msg + len, *line, (size_t)n);
        len += (size_t)n;
        (*msg)[len] = 0;
        if (!more)
            return (ssize_t)len;
    }
}

static int flag(int argc, char **argv, int *i, void *opts) {
    struct chat_opts *o = opts;
    const char *a = argv[*i], *v;
    if (!strcmp(a, "--system"))
        return (o->system = cli_value(argc, argv, i)) ? 1 : -1;
    if (!strcmp(a, "-n") || !strcmp(a, "--n-predict"))
        return (v = cli_value(argc, argv, i)) && cli_int(a, v, -1, 1 << 24, &o->n_predict) ? 1 : -1;
    return 0;
}

static int parse(int argc, char **argv, struct chat_opts *o) {
    const int rc = cli_parse(argc, argv, "chat", &o->s, flag, o);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (!o->s.model) {
        tern_log_error("tern chat needs -m MODEL (see tern chat --help)");
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

static bool on_token(int32_t id, const char *text, size_t len, void *user) {
    struct chat *c = user;
    if (id >= 0) {
        tern_status st = push_id(&c->reply_ids, id);
        if (st)
            return false;
    }
    if (c->reply_len + len + 1 > c->reply_cap) {
        size_t cap = (c->reply_len + len + 1) * 2;
        char *r = realloc(c->reply, cap);
        if (!r)
            return false;
        c->reply = r;
        c->reply_cap = cap;
    }
    memcpy(c->reply + c->reply_len, text, len);
    c->reply_len += len;
    c->reply[c->reply_len] = 0;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return !interrupted;
}

/* Append the tokens of text (special tokens parsed, no BOS added) to a. */
static tern_status push_text(struct chat *c, struct ids *a, const char *text) {
    int32_t *ids;
    size_t n;
    tern_status st = tern_tokenize(c->tok, text, strlen(text), false, true, &ids, &n);
    if (st)
        return st;
    for (size_t i = 0; i < n; i++) {
        st = push_id(a, ids[i]);
        if (st)
            goto done;
    }
done:
    free(ids);
    return st;
}

static tern_status push_message(struct chat *c, struct ids *a, enum tern_chat_role role, const char *content,
                                bool first) {
    char *text = tern_chat_render_message(c->f, role, content, first);
    if (!text)
        return TERN_ERR_NOMEM;
    tern_status st = push_text(c, a, text);
    free(text);
    return st;
}

static tern_status add_turn(struct chat *c, enum tern_chat_role role, const char *text) {
    if (c->n_turns == c->cap_turns) {
        int cap = c->cap_turns ? 2 * c->cap_turns : 16;
        struct turn *t = realloc(c->turns, (size_t)cap * sizeof *t);
        if (!t)
            return TERN_ERR_NOMEM;
        c->turns = t;
        c->cap_turns = cap;
    }
    char *copy = strdup(text);
    if (!copy)
        return TERN_ERR_NOMEM;
    c->turns[c->n_turns++] = (struct turn){role, copy};
    return TERN_OK;
}

/* Forget the conversation (the system message stays when keep_system). */
static void clear(struct chat *c, bool keep_system) {
    int kept = 0;
    for (int i = 0; i < c->n_turns; i++) {
        if (keep_system && c->turns[i].role == TERN_CHAT_SYSTEM)
            c->turns[kept++] = c->turns[i];
        else
            free(c->turns[i].text);
    }
    c->n_turns = kept;
    c->hist.n = 0;
    tern_session_reset(c->s);
}

/* A new conversation (/reset, /system): no KV, no repetition history. The system message stays, or
 * with system (not NULL) becomes that text (white space around it dropped; empty: none). */
static tern_status restart(struct chat *c, const struct tern_sampler_params *sp, int32_t n_vocab,
                           const char *system) {
    clear(c, system == NULL);
    tern_status st = TERN_OK;
    if (system) {
        while (*system == ' ')
            system++;
        if (*system)
            st = add_turn(c, TERN_CHAT_SYSTEM, system);
    }
    tern_sampler_free(c->smp);
    c->smp = NULL;
    if (!st)
        st = tern_sampler_create(sp, n_vocab, &c->smp);
    if (!st && c->n_turns) /* the system message, the one turn left */
        st = push_message(c, &c->hist, TERN_CHAT_SYSTEM, c->turns[0].text, true);
    return st;
}

/* The conversation without turns [skip, skip + n_skip), then the new user message and the reply
 * prompt, rendered into a (emptied first). */
static tern_status render(struct chat *c, struct ids *a, int skip, int n_skip, const char *user) {
    a->n = 0;
    tern_status st;
    for (int i = 0; i < c->n_turns; i++) {
        if (i >= skip && i < skip + n_skip)
            continue;
        st = push_message(c, a, c->turns[i].role, c->turns[i].text, a->n == 0);
        if (st)
            return st;
    }
    st = push_message(c, a, TERN_CHAT_USER, user, a->n == 0);
    if (st)
        return st;
    return push_text(c, a, tern_chat_generation_prompt(c->f));
}

/* Make the history, which ends with the new message, fit with room for a reply: drop the fewest
 * oldest user/assistant turns (after a system message) that leave room, or all of them, and evaluate
 * the rest again. Nothing changes when there is no turn to drop (the reply then gets the positions
 * left), or when the message does not fit even alone (TERN_ERR_CONTEXT_FULL, logged): the
 * conversation goes on as it was. */
static tern_status make_room(struct chat *c, const char *user) {
    const int n_ctx = tern_session_n_ctx(c->s);
    const size_t reserve = c->n_predict > 0 ? (size_t)c->n_predict : (size_t)n_ctx / 4;
    if (c->hist.n + reserve <= (size_t)n_ctx)
        return TERN_OK;
    const int first = c->n_turns > 0 && c->turns[0].role == TERN_CHAT_SYSTEM ? 1 : 0;
    struct ids kept = {0};
    int n_drop = 0, dropped = 0;
    tern_status st = TERN_OK;
    while (first + n_drop < c->n_turns) {
        /* the oldest message left, with the reply that follows it */
        const int next = first + n_drop;
        n_drop += next + 1 < c->n_turns && c->turns[next + 1].role == TERN_CHAT_ASSISTANT ? 2 : 1;
        dropped++;
        st = render(c, &kept, first, n_drop, user);
        if (st || kept.n + reserve <= (size_t)n_ctx)
            break;
    }
    const size_t need = dropped ? kept.n : c->hist.n;
    if (!st && need >= (size_t)n_ctx) {
        tern_log_error(
            "the message needs %zu tokens with the conversation's start, more than the context of %d "
            "(raise -c)",
            need, n_ctx);
        st = TERN_ERR_CONTEXT_FULL;
    }
    if (st || !dropped) {
        free(kept.v);
        return st;
    }
    for (int i = first; i < first + n_drop; i++)
        free(c->turns[i].text);
    memmove(&c->turns[first], &c->turns[first + n_drop],
            (size_t)(c->n_turns - first - n_drop) * sizeof *c->turns);
    c->n_turns -= n_drop;
    free(c->hist.v);
    c->hist = kept;
    tern_session_reset(c->s);
    fprintf(stderr,
            "tern: the context is full: dropped the %d oldest turn%s, evaluating the remaining %zu tokens "
            "again\n",
            dropped, dropped == 1 ? "" : "s", c->hist.n);
    return TERN_OK;
}

/* Add the user message and the reply prompt to the history, making room for them. */
static tern_status push_user(struct chat *c, const char *user) {
    tern_status st = push_message(c, &c->hist, TERN_CHAT_USER, user, c->hist.n == 0);
    if (st)
        return st;
    st = push_text(c, &c->hist, tern_chat_generation_prompt(c->f));
    if (st)
        return st;
    return make_room(c, user);
}

/* One user message: evaluate what it adds, stream the reply, keep both. */
static tern_status turn(struct chat *c, const char *user) {
    const size_t start = c->hist.n;
    tern_status st = push_user(c, user);
    if (st) {
        c->hist.n = start < c->hist.n ? start : c->hist.n;
        return st;
    }
    const int pos = tern_session_pos(c->s);
    c->reply_len = 0;
    c->reply_ids.n = 0;
    if (c->reply)
        c->reply[0] = 0;
    struct tern_generate_stats gs;
    st = tern_generate(c->s, c->tok, c->smp, c->hist.v + pos, (int)(c->hist.n - (size_t)pos), c->n_predict,
                       on_token, c, &gs);
    if (st)
        return st;
    fputc('\n', stdout);
    fflush(stdout);
    tern_log_debug("turn: %d new tokens evaluated at position %d, reply %d tokens, context %d/%d",
                   gs.n_prompt, pos, gs.n_generated, tern_session_pos(c->s), tern_session_n_ctx(c->s));
    if (interrupted)
        fprintf(stderr, "tern: reply stopped\n");
    else if (gs.stopped_ctx)
        fprintf(stderr,
                "tern: the reply was cut: the context is full (the oldest turns are dropped at the next "
                "message)\n");
    interrupted = 0;
    for (size_t i = 0; i < c->reply_ids.n; i++) {
        st = push_id(&c->hist, c->reply_ids.v[i]);
        if (st)
            return st;
    }
    st = push_text(c, &c->hist, tern_chat_assistant_end(c->f));
    if (st)
        return st;
    st = add_turn(c, TERN_CHAT_USER, user);
    if (st)
        return st;
    return add_turn(c, TERN_CHAT_ASSISTANT, c->reply ? c->reply : "");
}

int cli_chat(int argc, char **argv) {
    struct chat_opts o = {.n_predict = -1, .sp = tern_sampler_default_params()};
    o.s = (struct cli_session){.usage = chat_usage, .chat = true, .sp = &o.sp, .generates = true};
    int rc = parse(argc, argv, &o);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (!o.s.seed_set)
        o.sp.seed = (uint64_t)time(NULL);
    struct chat c = {.n_predict = (int)o.n_predict};
    tern_model *model = NULL;
    tern_tokenizer *tok = NULL;
    tern_json_vocab *json = NULL;
    tern_json_schema *schema = NULL;
    char *line = NULL;
    size_t line_cap = 0;
    char *msg = NULL;
    size_t msg_cap = 0;
    rc = CLI_EXIT_FAIL;
    tern_status st;
    if (o.s.format) {
        st = tern_chat_format_from_name(o.s.format, &c.f);
        if (st)
            return CLI_EXIT_USAGE;
    }
    st = cli_open_model(&o.s, &model, &tok);
    if (st)
        goto done;
    c.tok = tok;
    if (!o.s.format)
        c.f = tern_chat_format_detect(tern_model_gguf(model), tok);
    if (!cli_logit_bias_valid(&o.sp, tern_model_view(model)->hp.n_vocab)) {
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    st = cli_json_mode(&o.s, tok, &o.sp, &json, &schema);
    if (st)
        goto done;
    const struct tern_session_params spar = o.s.p;
    st = cli_session_create(model, &spar, &c.s);
    if (st) {
        rc = cli_session_exit(st);
        goto done;
    }
    tern_session_set_lookup(c.s, o.s.lookup);
    st = restart(&c, &o.sp, tern_model_view(model)->hp.n_vocab, o.system ? o.system : "");
    if (st) {
        tern_log_error(st == TERN_ERR_ARG ? "invalid sampling parameters" : "out of memory");
        goto done;
    }
    /* Ctrl-C stops a reply (or an input line), not the program: no SA_RESTART, so a read returns */
    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    const bool tty = isatty(STDIN_FILENO);
    bool refused = false;
    fprintf(stderr, "tern: chat format %s, %d positions; /reset starts over, /exit quits\n",
            tern_chat_format_name(c.f), tern_session_n_ctx(c.s));
    for (;;) {
        const ssize_t n = read_message(&line, &line_cap, &msg, &msg_cap, tty);
        if (n == READ_INTERRUPTED)
            continue;
        if (n < 0)
            break;
        if (!strcmp(msg, "/exit"))
            break;
        const bool set_system = !strncmp(msg, "/system", 7) && (msg[7] == 0 || msg[7] == ' ');
        if (!strcmp(msg, "/reset") || set_system) {
            st = restart(&c, &o.sp, tern_model_view(model)->hp.n_vocab, set_system ? msg + 7 : NULL);
            if (st)
                goto done;
            fprintf(stderr, "tern: new conversation%s\n",
                    !set_system ? ""
                    : c.n_turns ? " with that system message"
                                : " without a system message");
            continue;
        }
        if (n == 0)
            continue;
        st = turn(&c, msg);
        if (st == TERN_ERR_CONTEXT_FULL) {
            refused = true; /* reported; the conversation goes on, and the exit status tells */
            continue;
        }
        if (st)
            goto done;
    }
    rc = refused ? CLI_EXIT_FAIL : CLI_EXIT_OK;
done:
    free(line);
    free(msg);
    for (int i = 0; i < c.n_turns; i++)
        free(c.turns[i].text);
    free(c.turns);
    free(c.hist.v);
    free(c.reply_ids.v);
    free(c.reply);
    tern_sampler_free(c.smp);
    tern_json_vocab_free(json);
    free(schema);
    tern_session_free(c.s);
    tern_tokenizer_free(tok);
    tern_model_free(model);
    return rc;
}
