/* libFuzzer target for `tern convert` (host/convert/): a Hugging Face model folder made from the
 * input, converted to a GGUF.
 *
 * Input: a flags byte, then config.json, the safetensors JSON header, tokenizer.json and (when
 * present) tokenizer_config.json, separated by 0x01 bytes. The harness writes model.safetensors as
 * the header's length, the header and a data area as long as the largest data_offsets end the
 * header names (at most 8 MiB), so mutated shapes and offsets still reach the conversion itself.
 * Flags: bit 0 cuts the data area 7 bytes short; bits 1-2 fill it with pseudo-random bytes of four
 * 2-bit fields each 0-2 (valid packed ternary codes, and every F16, BF16 and F32 value finite, as no
 * exponent can be all ones), zeros (every scale 0), 0x55, or any pseudo-random bytes (invalid codes,
 * infinities and NaNs); bits 3-4 and 5-6 choose the linear and embedding output types.
 *
 * It aborts when a failed conversion logs other than exactly one error line or leaves an output
 * file, and when the GGUF reader rejects a conversion's output. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/convert/convert.h"
#include "host/gguf/gguf.h"
#include "scheduler/log.h"
#include "scheduler/types.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { SECTIONS = 4, MAX_DATA = 8 << 20 };
static const char *const section_file[SECTIONS] = {"config.json", NULL, "tokenizer.json", "tokenizer_config.json"};

static int n_errors;
static void count_errors(enum tern_log_level level, const char *msg, void *user) {
    (void)msg;
    (void)user;
    n_errors += level == TERN_LOG_ERROR;
}

static char dir[64], out[80];

static void path_of(char *p, size_t n, const char *name) {
    snprintf(p, n, "%s/%s", dir, name);
}

static void write_file(const char *name, const void *bytes, size_t n) {
    char p[128];
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(bytes, 1, n, f) != n) || fclose(f) != 0)
        abort();
}

static void remove_files(void) {
    char p[128];
    for (int i = 0; i < SECTIONS; i++)
        if (section_file[i]) {
            path_of(p, sizeof p, section_file[i]);
            unlink(p);
        }
    path_of(p, sizeof p, "model.safetensors");
    unlink(p);
    unlink(out);
    rmdir(dir);
}

/* The largest data_offsets end of a safetensors header, 0 when it is not a JSON object. */
static uint64_t data_end(const char *header, size_t n) {
    uint64_t end = 0;
    json_t *h = json_loadb(header, n, 0, NULL);
    const char *key;
    json_t *v;
    if (json_is_object(h))
        json_object_foreach(h, key, v) {
            const json_t *e = json_array_get(json_object_get(v, "data_offsets"), 1);
            if (json_is_integer(e) && json_integer_value(e) > 0 && (uint64_t)json_integer_value(e) > end)
                end = (uint64_t)json_integer_value(e);
        }
    json_decref(h);
    return end < MAX_DATA ? end : MAX_DATA;
}

static void write_checkpoint(const char *header, size_t n, uint8_t flags) {
    uint64_t end = data_end(header, n);
    if (flags & 1)
        end = end > 7 ? end - 7 : 0;
    uint8_t *f = malloc(8 + n + end);
    if (!f)
        abort();
    const uint64_t len = n;
    for (int i = 0; i < 8; i++)
        f[i] = (uint8_t)(len >> (8 * i));
    memcpy(f + 8, header, n);
    const int fill = (flags >> 1) & 3;
    uint32_t s = 0x9e3779b9u * (flags | 1u);
    for (uint64_t i = 0; i < end; i++) {
        s ^= s << 13, s ^= s >> 17, s ^= s << 5;
        uint8_t byte = fill == 1 ? 0 : fill == 2 ? 0x55 : (uint8_t)s;
        if (fill == 0) { /* four 2-bit fields of 0-2 */
            byte = 0;
            for (int k = 0; k < 4; k++)
                byte |= (uint8_t)(((s >> (8 * k)) % 3) << (2 * k));
        }
        f[8 + n + i] = byte;
    }
    write_file("model.safetensors", f, 8 + n + end);
    free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    if (!dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/fuzz_convert-%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
        snprintf(out, sizeof out, "%s.gguf", dir);
        if (mkdir(dir, 0755) != 0)
            abort();
        atexit(remove_files);
    }
    tern_log_set_callback(count_errors, NULL);
    const uint8_t flags = data[0];
    const char *p = (const char *)data + 1, *const e = (const char *)data + size;
    for (int i = 0; i < SECTIONS; i++) {
        const char *sep = memchr(p, 1, (size_t)(e - p));
        const size_t n = (size_t)((sep ? sep : e) - p);
        if (i == 1)
            write_checkpoint(p, n, flags);
        else if (i < 3 || p < e) /* config.json and tokenizer.json always, even empty */
            write_file(section_file[i], p, n);
        else {
            char path[128];
            path_of(path, sizeof path, section_file[i]);
            unlink(path); /* tokenizer_config.json is optional */
        }
        p = sep ? sep + 1 : e;
    }
    static const uint32_t linear[4] = {TERN_TYPE_I2_S, TERN_TYPE_TQ2_0, TERN_TYPE_TQ1_0, TERN_TYPE_I2_S};
    static const uint32_t embd[4] = {TERN_TYPE_F16, TERN_TYPE_Q8_0, TERN_TYPE_Q6_K, TERN_TYPE_F16};
    const struct tern_convert_params cp = {dir, out, linear[(flags >> 3) & 3], embd[(flags >> 5) & 3], NULL, NULL};
    n_errors = 0;
    const tern_status st = tern_convert(&cp);
    if (st != TERN_OK) {
        if (n_errors != 1) {
            fprintf(stderr, "fuzz_convert: status %d with %d error lines\n", (int)st, n_errors);
            abort();
        }
        if (access(out, F_OK) == 0) {
            fprintf(stderr, "fuzz_convert: an output file after a failed conversion\n");
            abort();
        }
        return 0;
    }
    tern_gguf *g = NULL;
    if (tern_gguf_create(out, &g) != TERN_OK) {
        fprintf(stderr, "fuzz_convert: the reader rejects the conversion's output\n");
        abort();
    }
    tern_gguf_free(g);
    unlink(out);
    return 0;
}
