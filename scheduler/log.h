/* Logging through a settable callback. The library never prints to stdout; by default messages at
 * or above the threshold (TERN_LOG=debug|info|warn|error, default info) go to stderr. */
#ifndef TERN_LOG_H
#define TERN_LOG_H

enum tern_log_level {
    TERN_LOG_DEBUG = 0,
    TERN_LOG_INFO = 1,
    TERN_LOG_WARN = 2,
    TERN_LOG_ERROR = 3,
    TERN_LOG_COUNT
};

/* msg is one line without the trailing newline. */
typedef void (*tern_log_fn)(enum tern_log_level level, const char *msg, void *user);

/* Replace the sink; NULL restores the default stderr sink. */
void tern_log_set_callback(tern_log_fn fn, void *user);
/* Messages below this level are dropped before formatting. */
void tern_log_set_level(enum tern_log_level level);
enum tern_log_level tern_log_get_level(void);

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void tern_log(enum tern_log_level level, const char *fmt, ...);

/* While a capture is active, error messages go into it instead of the sink (the first one is kept),
 * so a caller that can recover (a device dropped at start, a failover) reports the reason in its
 * own single line, and one that cannot passes it on with tern_log_capture_end(c, true). Captures
 * nest; use them from one thread. */
struct tern_log_capture {
    char msg[512]; /* the first captured error; "" when none */
    int n_errors;
    struct tern_log_capture *prev;
};
void tern_log_capture_begin(struct tern_log_capture *c);
/* Ends the capture; with emit, its first error goes to the sink (or the enclosing capture). */
void tern_log_capture_end(struct tern_log_capture *c, int emit);

#define tern_log_debug(...) tern_log(TERN_LOG_DEBUG, __VA_ARGS__)
#define tern_log_info(...) tern_log(TERN_LOG_INFO, __VA_ARGS__)
#define tern_log_warn(...) tern_log(TERN_LOG_WARN, __VA_ARGS__)
#define tern_log_error(...) tern_log(TERN_LOG_ERROR, __VA_ARGS__)

#endif
