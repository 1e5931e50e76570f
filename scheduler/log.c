/* The log sink: a callback plus a level threshold, initialised from TERN_LOG on first use. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tern_log_fn log_fn;
static void *log_user;
static int log_level = -1; /* -1: not yet read from the environment */
static struct tern_log_capture *log_capture;

static void log_init_level(void) {
    const char *env = getenv("TERN_LOG");
    log_level = TERN_LOG_INFO;
    if (!env || !env[0])
        return;
    static const char *const names[TERN_LOG_COUNT] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < TERN_LOG_COUNT; i++)
        if (strcmp(env, names[i]) == 0 || (i == TERN_LOG_WARN && strcmp(env, "warning") == 0)) {
            log_level = i;
            return;
        }
    tern_log(TERN_LOG_WARN, "TERN_LOG=%s is not a level (debug, info, warn, error): logging at info", env);
}

void tern_log_set_callback(tern_log_fn fn, void *user) {
    log_fn = fn;
    log_user = user;
}

void tern_log_set_level(enum tern_log_level level) {
    log_level = (int)level;
}

enum tern_log_level tern_log_get_level(void) {
    if (log_level < 0)
        log_init_level();
    return (enum tern_log_level)log_level;
}

void tern_log(enum tern_log_level level, const char *fmt, ...) {
    if ((int)level < (int)tern_log_get_level())
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (level == TERN_LOG_ERROR && log_capture) {
        if (log_capture->n_errors++ == 0)
            snprintf(log_capture->msg, sizeof log_capture->msg, "%.511s", buf);
        return;
    }
    if (log_fn) {
        log_fn(level, buf, log_user);
        return;
    }
    static const char *const prefix[TERN_LOG_COUNT] = {"debug: ", "", "warning: ", "error: "};
    fprintf(stderr, "tern: %s%s\n", prefix[level], buf);
}

void tern_log_capture_begin(struct tern_log_capture *c) {
    c->msg[0] = 0;
    c->n_errors = 0;
    c->prev = log_capture;
    log_capture = c;
}

void tern_log_capture_end(struct tern_log_capture *c, int emit) {
    log_capture = c->prev;
    if (emit && c->n_errors)
        tern_log(TERN_LOG_ERROR, "%s", c->msg);
}
