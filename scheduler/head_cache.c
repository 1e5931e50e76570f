/* The certified head's shadow cache (see head_cache.h). */
#include "head_cache.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "head_cert.h"
#include "log.h"
#include "types.h"

static const char magic[] = "tern-head-shadow\n";

enum { KEY_MAX = TERN_HEAD_CACHE_HEADER - 128 }; /* the magic and the sizes line take the rest */

/* The cache file of m (named by the path part of its source_id) and the key its header must hold. */
static bool cache_names(const struct tern_model_view *m, char *path, size_t n_path, char *key, size_t n_key) {
    const char *id = m->source_id;
    if (!id)
        return false;
    const char *bar = strchr(id, '|');
    const size_t n_file = bar ? (size_t)(bar - id) : strlen(id);
    char file[4096];
    snprintf(file, sizeof file, "%.*s", (int)n_file, id);
    if (access(file, F_OK) != 0)
        return false; /* unlinked since it was opened (tern bench's random models): nothing to key */
    if (!tern_cache_file("head-shadow", id, n_file, ".bin", path, n_path))
        return false;
    const struct tern_tensor *o = &m->output;
    const int len = snprintf(key, n_key, "%s | head %s %lld x %lld, %zu bytes a row | shadow %d", id,
                             tern_type_name(o->type), (long long)o->ne1, (long long)o->ne0, o->row_bytes,
                             TERN_HEAD_SHADOW_VERSION);
    return len > 0 && (size_t)len < n_key;
}

/* A 64-bit checksum of n bytes: four interleaved FNV-style lanes over 8-byte words (a pass over
 * 2B-4T's 333 MB takes tens of milliseconds, where byte-wise FNV-1a takes most of a second). */
static uint64_t checksum(const uint8_t *p, size_t n) {
    uint64_t h[4] = {TERN_FNV_SEED, TERN_FNV_SEED ^ 1, TERN_FNV_SEED ^ 2, TERN_FNV_SEED ^ 3};
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int l = 0; l < 4; l++) {
            uint64_t w;
            memcpy(&w, p + i + 8 * l, 8);
            h[l] = (h[l] ^ w) * 0x100000001b3ULL;
        }
    uint64_t s = tern_fnv1a(TERN_FNV_SEED, p + i, n - i);
    for (int l = 0; l < 4; l++)
        s = (s ^ h[l]) * 0x100000001b3ULL;
    return s;
}

/* Reads n bytes at offset off of fd into dst (pread may return less than asked). */
static bool read_all(int fd, uint8_t *dst, size_t n, off_t off) {
    while (n > 0) {
        const ssize_t got = pread(fd, dst, n, off);
        if (got <= 0)
            return false;
        dst += got;
        n -= (size_t)got;
        off += got;
    }
    return true;
}

bool tern_head_cache_read(const struct tern_model_view *m, void *dst, size_t shadow_bytes) {
    char path[4096], key[KEY_MAX];
    if (!cache_names(m, path, sizeof path, key, sizeof key))
        return false;
    const int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false; /* not cached yet */
    const size_t n_rows = (size_t)m->output.ne1, key_len = strlen(key);
    /* the header first: a file of another model or shadow version is stale whatever its size */
    char h[TERN_HEAD_CACHE_HEADER];
    const bool header = read_all(fd, (uint8_t *)h, sizeof h, 0) && !memcmp(h, magic, sizeof magic - 1);
    h[sizeof h - 1] = 0;
    const bool stale =
        header && (memcmp(h + sizeof magic - 1, key, key_len) != 0 || h[sizeof magic - 1 + key_len] != '\n');
    struct stat sb;
    unsigned long long n_shadow = 0, n = 0, sum = 0;
    const bool ok = header && !stale && fstat(fd, &sb) == 0 &&
                    (uint64_t)sb.st_size == (uint64_t)(TERN_HEAD_CACHE_HEADER + shadow_bytes) &&
                    sscanf(h + sizeof magic + key_len, "%llu %llu %llx", &n_shadow, &n, &sum) == 3 &&
                    n_shadow == shadow_bytes && n == n_rows &&
                    read_all(fd, dst, shadow_bytes, TERN_HEAD_CACHE_HEADER) &&
                    checksum(dst, shadow_bytes) == sum;
    close(fd);
    if (!ok)
        tern_log_info("notice: ignoring the %s certified-head cache %s (building the shadow again)",
                      stale ? "stale" : "corrupt", path);
    return ok;
}

struct shadow_file {
    const char *header;
    const uint8_t *shadow;
    size_t shadow_bytes;
};

static bool fill_shadow(FILE *f, void *user) {
    const struct shadow_file *s = user;
    return fwrite(s->header, 1, TERN_HEAD_CACHE_HEADER, f) == TERN_HEAD_CACHE_HEADER &&
           fwrite(s->shadow, 1, s->shadow_bytes, f) == s->shadow_bytes;
}

void tern_head_cache_store(const struct tern_model_view *m, const uint8_t *shadow, size_t shadow_bytes) {
    char path[4096], key[KEY_MAX];
    if (!cache_names(m, path, sizeof path, key, sizeof key))
        return;
    const size_t n_rows = (size_t)m->output.ne1;
    char header[TERN_HEAD_CACHE_HEADER] = {0};
    snprintf(header, sizeof header, "%s%s\n%llu %llu %016llx\n", magic, key, (unsigned long long)shadow_bytes,
             (unsigned long long)n_rows, (unsigned long long)checksum(shadow, shadow_bytes));
    struct shadow_file sf = {header, shadow, shadow_bytes};
    tern_cache_write(path, "certified-head cache", fill_shadow, &sf);
}
