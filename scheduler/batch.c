/* Checking a batch against a device's KV cache (see device.h). */
#include <stdlib.h>

#include "device.h"
#include "log.h"

tern_status tern_batch_check(const struct tern_batch *b, int n_ctx, int n_seq, const char *device) {
    if (b->n_tokens <= 0) {
        tern_log_error("%s: an empty batch", device);
        return TERN_ERR_ARG;
    }
    for (int t = 0; t < b->n_tokens; t++)
        if (b->pos[t] < 0 || b->pos[t] >= n_ctx || b->seq[t] < 0 || b->seq[t] >= n_seq) {
            tern_log_error("%s: token %d at position %d of sequence %d is outside the cache (%d sequences of %d "
                           "positions)",
                           device, t, b->pos[t], b->seq[t], n_seq, n_ctx);
            return TERN_ERR_CONTEXT_FULL;
        }
    /* a sequence's tokens in increasing positions: devices write every token's K and V at once */
    int stack_last[64], *last = n_seq <= 64 ? stack_last : malloc((size_t)n_seq * sizeof *last);
    if (!last) {
        tern_log_error("%s: out of memory checking a batch of %d sequences", device, n_seq);
        return TERN_ERR_NOMEM;
    }
    for (int s = 0; s < n_seq; s++)
        last[s] = -1;
    tern_status st = TERN_OK;
    for (int t = 0; t < b->n_tokens; t++) {
        if (b->pos[t] <= last[b->seq[t]]) {
            tern_log_error("%s: token %d at position %d of sequence %d does not follow its position %d", device, t,
                           b->pos[t], b->seq[t], last[b->seq[t]]);
            st = TERN_ERR_ARG;
            goto done;
        }
        last[b->seq[t]] = b->pos[t];
    }
done:
    if (last != stack_last)
        free(last);
    return st;
}
