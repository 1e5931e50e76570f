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

#define tern_log_debug(...) tern_log(TERN_LOG_DEBUG, __VA_ARGS__)
#define tern_log_info(...) tern_log(TERN_LOG_INFO, __VA_ARGS__)
#define tern_log_warn(...) tern_log(TERN_LOG_WARN, __VA_ARGS__)
#define tern_log_error(...) tern_log(TERN_LOG_ERROR, __VA_ARGS__)

#endif
