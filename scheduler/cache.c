/* The cache folder (see cache.h). */
#include "cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

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
