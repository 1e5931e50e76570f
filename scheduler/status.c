/* Names and messages of the status codes, generated from TERN_STATUS_MAP. */
#include "status.h"

const char *tern_status_name(tern_status s) {
    switch (s) {
#define TERN_STATUS_NAME(name, value, msg)                                                                   \
    case TERN_##name:                                                                                        \
        return "TERN_" #name;
        TERN_STATUS_MAP(TERN_STATUS_NAME)
#undef TERN_STATUS_NAME
    }
    return "TERN_UNKNOWN";
}

const char *tern_status_message(tern_status s) {
    switch (s) {
#define TERN_STATUS_MSG(name, value, msg)                                                                    \
    case TERN_##name:                                                                                        \
        return msg;
        TERN_STATUS_MAP(TERN_STATUS_MSG)
#undef TERN_STATUS_MSG
    }
    return "unknown status";
}
