/* Log-probabilities (see logprob.h). */
#include "logprob.h"

#include <math.h>

double tern_log_sum_exp(const float *logits, int32_t n) {
    float max = logits[0];
    for (int32_t i = 1; i < n; i++)
        max = logits[i] > max ? logits[i] : max;
    if (!isfinite(max))
        return (double)max;
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++)
        sum += exp((double)logits[i] - max);
    return (double)max + log(sum);
}

/* Insertion into the sorted list ids[0 .. k): a few compares for most ids, since after the first
 * k ids only those above the k-th enter. */
void tern_top_ids(const float *logits, int32_t n, int k, int32_t *ids) {
    int m = 0;
    for (int32_t i = 0; i < n && k > 0; i++) {
        if (m == k && !(logits[i] > logits[ids[k - 1]]))
            continue;
        int at = m < k ? m++ : k - 1;
        while (at > 0 && logits[i] > logits[ids[at - 1]]) {
            ids[at] = ids[at - 1];
            at--;
        }
        ids[at] = i;
    }
}
