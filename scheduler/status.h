/* tern status codes: one X-macro table generates the enum, the names and the messages.
 * Every fallible function in tern returns a tern_status; results go through out-parameters. */
#ifndef TERN_STATUS_H
#define TERN_STATUS_H

/* X(name, value, message). Append only; values are stable. */
#define TERN_STATUS_MAP(X)                                                                                   \
    X(OK, 0, "success")                                                                                      \
    X(ERR_ARG, -1, "invalid argument")                                                                       \
    X(ERR_IO, -2, "input/output error")                                                                      \
    X(ERR_NOMEM, -3, "out of memory")                                                                        \
    X(ERR_FORMAT, -4, "malformed file")                                                                      \
    X(ERR_UNSUPPORTED, -5, "unsupported feature")                                                            \
    X(ERR_NOT_FOUND, -6, "not found")                                                                        \
    X(ERR_SHAPE, -7, "tensor shape does not match the model")                                                \
    X(ERR_CONTEXT_FULL, -8, "context is full")                                                               \
    X(ERR_DEVICE, -9, "device error")                                                                        \
    X(ERR_NO_DEVICE, -10, "no such device")                                                                  \
    X(ERR_TOKENIZER, -11, "tokenizer error")                                                                 \
    X(ERR_INTERNAL, -12, "internal error")                                                                   \
    X(ERR_BUSY, -13, "busy")

typedef enum tern_status {
#define TERN_STATUS_ENUM(name, value, msg) TERN_##name = value,
    TERN_STATUS_MAP(TERN_STATUS_ENUM)
#undef TERN_STATUS_ENUM
} tern_status;

/* "TERN_ERR_FORMAT" style name; "TERN_UNKNOWN" for values outside the table. */
const char *tern_status_name(tern_status s);
/* Human-readable message for the status. */
const char *tern_status_message(tern_status s);

#endif
