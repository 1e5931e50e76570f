/* Checking a batch against a device's KV cache (see device.h). */
#include "device.h"
#include "log.h"

tern_status tern_batch_check(const struct tern_batch *b, int n_ctx, int n_seq, const char *device) {
    if (b->n_tokens <= 0)
        return TERN_ERR_ARG;
    for (int t = 0; t < b->n_tokens; t++)
        if (b->pos[t] < 0 || b->pos[t] >= n_ctx || b->seq[t] < 0 || b->seq[t] >= n_seq) {
            tern_log_error("%s: token %d at position %d of sequence %d is outside the cache (%d sequences of %d "
                           "positions)",
                           device, t, b->pos[t], b->seq[t], n_seq, n_ctx);
            return TERN_ERR_CONTEXT_FULL;
        }
    return TERN_OK;
}
