/* libFuzzer target for the GGUF reader: open any byte string with tern_gguf_create_from_memory and, when
 * it is accepted, walk every key, array element and tensor. Also checks the reader's logging
 * contract: a rejected input logs exactly one error line, an accepted one logs none. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/gguf/gguf.h"
#include "scheduler/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int n_errors;

static void count_log(enum tern_log_level level, const char *msg, void *user) {
    (void)msg;
    (void)user;
    if (level == TERN_LOG_ERROR)
        n_errors++;
}

static volatile uint64_t sink; /* keeps the reads of the walk alive */

/* Independent checks of what the reader promises about accepted files: every tensor lies inside
 * the input, and no two non-empty tensors overlap (pairwise, so only for small tables). */
static void check_tensors(const tern_gguf *g, const uint8_t *data, size_t size) {
    int64_t n = tern_gguf_n_tensors(g);
    for (int64_t i = 0; i < n; i++) {
        const struct tern_gguf_tensor *a = tern_gguf_tensor(g, i);
        if (a->data < data || a->nbytes > size || a->data > data + (size - a->nbytes))
            abort();
        for (int64_t j = i + 1; j < n && n <= 64; j++) {
            const struct tern_gguf_tensor *b = tern_gguf_tensor(g, j);
            if (a->nbytes && b->nbytes && a->data < b->data + b->nbytes && b->data < a->data + a->nbytes)
                abort();
        }
    }
}

static void walk(const tern_gguf *g) {
    char key[256];
    uint64_t sum = tern_gguf_version(g) + tern_gguf_alignment(g) + tern_gguf_file_size(g);
    for (int64_t i = 0; i < tern_gguf_n_kv(g); i++) {
        struct tern_str k = tern_gguf_key_name(g, i);
        if (k.len >= sizeof key)
            continue;
        memcpy(key, k.ptr, k.len);
        key[k.len] = '\0';
        if (tern_gguf_find_key(g, key) != i)
            abort();
        uint32_t u;
        int64_t s;
        float f;
        bool b;
        struct tern_str str;
        enum tern_gguf_vtype et;
        uint64_t n;
        const void *arr;
        if (tern_gguf_get_u32(g, key, &u) == TERN_OK)
            sum += u;
        if (tern_gguf_get_i64(g, key, &s) == TERN_OK)
            sum += (uint64_t)s;
        if (tern_gguf_get_f32(g, key, &f) == TERN_OK)
            sum += f > 0;
        if (tern_gguf_get_bool(g, key, &b) == TERN_OK)
            sum += b;
        if (tern_gguf_get_str(g, key, &str) == TERN_OK && str.len)
            sum += (uint8_t)str.ptr[0] + (uint8_t)str.ptr[str.len - 1];
        if (tern_gguf_get_arr(g, key, &et, &n, &arr) != TERN_OK)
            continue;
        if (et == TERN_GGUF_STRING) {
            for (uint64_t j = 0; j < n; j++)
                if (tern_gguf_get_arr_str(g, key, j, &str) == TERN_OK && str.len)
                    sum += (uint8_t)str.ptr[0] + (uint8_t)str.ptr[str.len - 1];
        } else if (n > 0) {
            sum += ((const uint8_t *)arr)[0];
        }
    }
    for (int64_t i = 0; i < tern_gguf_n_tensors(g); i++) {
        const struct tern_gguf_tensor *t = tern_gguf_tensor(g, i);
        if (tern_gguf_find_tensor(g, t->name) != t || t->n_dims < 1 || t->n_dims > 4)
            abort();
        if (t->offset % tern_gguf_alignment(g) != 0)
            abort();
        if (t->nbytes)
            sum += t->data[0] + t->data[t->nbytes - 1];
    }
    sink = sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tern_log_set_callback(count_log, NULL);
    tern_gguf *g = NULL;
    n_errors = 0;
    tern_status st = tern_gguf_create_from_memory(data, size, "fuzz", &g);
    if (st == TERN_OK ? n_errors != 0 : (n_errors != 1 || g != NULL))
        abort(); /* the one-line-per-failure contract is broken */
    if (st != TERN_OK)
        return 0;
    check_tensors(g, data, size);
    walk(g);
    tern_gguf_free(g);
    return 0;
}
