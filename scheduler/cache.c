/* The cache folder (see cache.h). */
#include "cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

bool tern_cache_dir(char *buf, size_t n) {
    const char *dir = getenv("TERN_CACHE_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (dir) {
        if (!dir[0])
            return false;
        snprintf(buf, n, "%s", dir);
    } else if (xdg && xdg[0]) {
        snprintf(buf, n, "%s/tern", xdg);
    } else if (home && home[0]) {
        char parent[2048];
        snprintf(parent, sizeof parent, "%s/.cache", home);
        mkdir(parent, 0755);
        snprintf(buf, n, "%s/tern", parent);
    } else {
        return false;
    }
    mkdir(buf, 0755); /* may exist; a real failure shows when a file is written */
    return true;
}

uint64_t tern_fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

bool tern_cache_file(const char *prefix, const char *name, size_t name_len, const char *ext, char *path,
                     size_t n) {
    char dir[3072];
    if (!tern_cache_dir(dir, sizeof dir))
        return false;
    const uint64_t h = tern_fnv1a(TERN_FNV_SEED, name, name_len);
    const int len = snprintf(path, n, "%s/%s-%016llx%s", dir, prefix, (unsigned long long)h, ext);
    return len > 0 && (size_t)len < n;
}

void tern_cache_write(const char *path, const char *what, bool (*fill)(FILE *f, void *user), void *user) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fill(f, user);
    if (f)
        ok = fclose(f) == 0 && ok;
    if (ok)
        ok = rename(tmp, path) == 0;
    if (!ok) {
        tern_log_warn("cannot write the %s %s: %s", what, path, strerror(errno));
        remove(tmp);
    }
}

bool tern_cache_read(const char *path, const char *magic, const char *key, const char *what, const char *then,
                     bool (*parse)(FILE *f, void *user), void *user) {
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[1024] = "", file_key[4096];
    const size_t n_magic = strlen(magic), n_name = (size_t)(strrchr(magic, ' ') - magic + 1);
    const bool magic_ok =
        fgets(line, sizeof line, f) && strncmp(line, magic, n_magic) == 0 && line[n_magic] == '\n';
    const size_t n_version = strspn(line + n_name, "0123456789"); /* when the name matches */
    const bool stale =
        !magic_ok && strncmp(line, magic, n_name) == 0 && n_version > 0 && line[n_name + n_version] == '\n';
    bool other_key = false, ok = false;
    if (magic_ok && fgets(file_key, sizeof file_key, f)) {
        file_key[strcspn(file_key, "\n")] = 0;
        other_key = strcmp(file_key, key) != 0;
        ok = !other_key && parse(f, user);
    }
    fclose(f);
    if (!ok && !other_key)
        tern_log_info("notice: ignoring the %s %s %s (%s)", stale ? "stale" : "corrupt", what, path, then);
    return ok;
}
