/* GGUF writer (v3, little-endian). Metadata values are serialised to their on-disk bytes when set;
 * tensor data is referenced until write. The file is written to "<path>.tmp.<pid>" and renamed
 * into place, so a failure never leaves a partial file at path. docs/formats.md#gguf-container. */
#include "gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../scheduler/log.h"
#include "../../scheduler/types.h"

#define GGUF_DEFAULT_ALIGNMENT 32u
#define ALIGNMENT_KEY "general.alignment"
#define WRITE_CHUNK ((size_t)1 << 26) /* 64 MiB per fwrite: large tensors go out in a loop */

struct wkv {
    char *key;
    uint8_t *val; /* u32 type + value, exactly as on disk */
    size_t val_len;
};

struct wtensor {
    char *name;
    uint32_t type;
    int n_dims;
    int64_t ne[4];
    const void *data;
    uint64_t nbytes;
    tern_gguf_fill_fn fill; /* when set, produces the data at write time (data is NULL) */
    void *fill_user;
};

struct tern_gguf_writer {
    uint32_t alignment;
    struct wkv *kv;
    size_t n_kv, cap_kv;
    struct wtensor *tensors;
    size_t n_tensors, cap_tensors;
};

static const uint8_t elem_size[TERN_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

tern_status tern_gguf_writer_create(tern_gguf_writer **out) {
    if (!out)
        return TERN_ERR_ARG;
    *out = calloc(1, sizeof **out);
    if (!*out)
        return TERN_ERR_NOMEM;
    (*out)->alignment = GGUF_DEFAULT_ALIGNMENT;
    return TERN_OK;
}

void tern_gguf_writer_free(tern_gguf_writer *w) {
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->kv);
    free(w->tensors);
    free(w);
}

tern_status tern_gguf_writer_set_alignment(tern_gguf_writer *w, uint32_t alignment) {
    if (!w || alignment == 0 || (alignment & (alignment - 1)) != 0) {
        tern_log_error("gguf writer: alignment %u is not a power of two", alignment);
        return TERN_ERR_ARG;
    }
    w->alignment = alignment;
    return TERN_OK;
}

/* Takes ownership of val (freed on failure too). */
static tern_status add_kv(tern_gguf_writer *w, const char *key, uint8_t *val, size_t val_len) {
    tern_status st = TERN_ERR_ARG;
    if (!w || !key || !*key) {
        tern_log_error("gguf writer: empty metadata key");
        goto done;
    }
    if (strcmp(key, ALIGNMENT_KEY) == 0) {
        /* The alignment is the writer's own setting (set_u32 routes there); a second copy would clash. */
        tern_log_error("gguf writer: set '" ALIGNMENT_KEY "' with tern_gguf_writer_set_alignment or set_u32");
        goto done;
    }
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) {
            tern_log_error("gguf writer: duplicate metadata key '%s'", key);
            goto done;
        }
    st = TERN_ERR_NOMEM;
    if (!val)
        goto done;
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        struct wkv *kv = realloc(w->kv, cap * sizeof *kv);
        if (!kv)
            goto done;
        w->kv = kv;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k)
        goto done;
    w->kv[w->n_kv++] = (struct wkv){k, val, val_len};
    return TERN_OK;
done: /* failures only: val is ours to free */
    if (st == TERN_ERR_NOMEM)
        tern_log_error("gguf writer: out of memory");
    free(val);
    return st;
}

static tern_status set_scalar(tern_gguf_writer *w, const char *key, enum tern_gguf_vtype t, uint64_t bits) {
    size_t n = elem_size[t];
    uint8_t *val = malloc(4 + n);
    if (val) {
        put_u32(val, (uint32_t)t);
        for (size_t i = 0; i < n; i++)
            val[4 + i] = (uint8_t)(bits >> (8 * i));
    }
    return add_kv(w, key, val, 4 + n);
}

tern_status tern_gguf_writer_set_u32(tern_gguf_writer *w, const char *key, uint32_t v) {
    if (w && key && strcmp(key, ALIGNMENT_KEY) == 0)
        return tern_gguf_writer_set_alignment(w, v);
    return set_scalar(w, key, TERN_GGUF_U32, v);
}

tern_status tern_gguf_writer_set_i32(tern_gguf_writer *w, const char *key, int32_t v) {
    return set_scalar(w, key, TERN_GGUF_I32, (uint32_t)v);
}

tern_status tern_gguf_writer_set_u64(tern_gguf_writer *w, const char *key, uint64_t v) {
    return set_scalar(w, key, TERN_GGUF_U64, v);
}

tern_status tern_gguf_writer_set_f32(tern_gguf_writer *w, const char *key, float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return set_scalar(w, key, TERN_GGUF_F32, bits);
}

tern_status tern_gguf_writer_set_bool(tern_gguf_writer *w, const char *key, bool v) {
    return set_scalar(w, key, TERN_GGUF_BOOL, v ? 1 : 0);
}

tern_status tern_gguf_writer_set_str(tern_gguf_writer *w, const char *key, const char *v) {
    if (!v) {
        tern_log_error("gguf writer: NULL string for key '%s'", key ? key : "");
        return TERN_ERR_ARG;
    }
    size_t len = strlen(v);
    uint8_t *val = malloc(12 + len);
    if (val) {
        put_u32(val, TERN_GGUF_STRING);
        put_u64(val + 4, len);
        memcpy(val + 12, v, len);
    }
    return add_kv(w, key, val, 12 + len);
}

tern_status tern_gguf_writer_set_arr(tern_gguf_writer *w, const char *key, enum tern_gguf_vtype elem_type,
                                     const void *data, uint64_t n) {
    if ((unsigned)elem_type >= TERN_GGUF_VTYPE_COUNT || elem_size[elem_type] == 0 || (n && !data)) {
        tern_log_error("gguf writer: key '%s': bad numeric array (type %d, %llu elements)", key ? key : "",
                       (int)elem_type, (unsigned long long)n);
        return TERN_ERR_ARG;
    }
    if (n > (SIZE_MAX - 16) / elem_size[elem_type]) {
        tern_log_error("gguf writer: key '%s': array of %llu elements is too large", key ? key : "",
                       (unsigned long long)n);
        return TERN_ERR_ARG;
    }
    size_t bytes = (size_t)n * elem_size[elem_type];
    uint8_t *val = malloc(16 + bytes);
    if (val) {
        put_u32(val, TERN_GGUF_ARRAY);
        put_u32(val + 4, (uint32_t)elem_type);
        put_u64(val + 8, n);
        if (bytes)
            memcpy(val + 16, data, bytes);
    }
    return add_kv(w, key, val, 16 + bytes);
}

tern_status tern_gguf_writer_set_arr_str(tern_gguf_writer *w, const char *key, const char *const *strs,
                                         uint64_t n) {
    size_t total = 16;
    for (uint64_t i = 0; i < n; i++) {
        size_t len = strs && strs[i] ? strlen(strs[i]) : 0;
        if (!strs || !strs[i] || len > SIZE_MAX - 8 - total) {
            tern_log_error("gguf writer: key '%s': string %llu is NULL or too large", key ? key : "",
                           (unsigned long long)i);
            return TERN_ERR_ARG;
        }
        total += 8 + len;
    }
    uint8_t *val = malloc(total);
    if (val) {
        put_u32(val, TERN_GGUF_ARRAY);
        put_u32(val + 4, TERN_GGUF_STRING);
        put_u64(val + 8, n);
        uint8_t *p = val + 16;
        for (uint64_t i = 0; i < n; i++) {
            size_t len = strlen(strs[i]);
            put_u64(p, len);
            memcpy(p + 8, strs[i], len);
            p += 8 + len;
        }
    }
    return add_kv(w, key, val, total);
}

static tern_status add_tensor(tern_gguf_writer *w, const char *name, uint32_t type, int n_dims,
                              const int64_t *ne, const void *data, uint64_t nbytes, tern_gguf_fill_fn fill,
                              void *fill_user) {
    if (!w || !name || !*name || !ne || n_dims < 1 || n_dims > 4) {
        tern_log_error("gguf writer: tensor '%s': empty name or n_dims %d not in 1..4", name ? name : "",
                       n_dims);
        return TERN_ERR_ARG;
    }
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0) {
            tern_log_error("gguf writer: duplicate tensor name '%s'", name);
            return TERN_ERR_ARG;
        }
    uint64_t want;
    tern_status st = tern_type_nbytes(type, n_dims, ne, &want);
    if (st == TERN_ERR_UNSUPPORTED) {
        tern_log_error("gguf writer: tensor '%s': type %u (%s) cannot be written", name, type,
                       tern_type_name(type));
        return st;
    }
    if (st) {
        tern_log_error("gguf writer: tensor '%s': shape not valid for type %s", name, tern_type_name(type));
        return TERN_ERR_ARG;
    }
    if (want != nbytes || (nbytes && !data && !fill)) {
        tern_log_error("gguf writer: tensor '%s': %llu bytes given, type %s and shape need %llu", name,
                       (unsigned long long)nbytes, tern_type_name(type), (unsigned long long)want);
        return TERN_ERR_ARG;
    }
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 16;
        struct wtensor *t = realloc(w->tensors, cap * sizeof *t);
        if (!t) {
            tern_log_error("gguf writer: out of memory");
            return TERN_ERR_NOMEM;
        }
        w->tensors = t;
        w->cap_tensors = cap;
    }
    char *copy = strdup(name);
    if (!copy) {
        tern_log_error("gguf writer: out of memory");
        return TERN_ERR_NOMEM;
    }
    struct wtensor *t = &w->tensors[w->n_tensors++];
    *t = (struct wtensor){copy, type, n_dims, {1, 1, 1, 1}, data, nbytes, fill, fill_user};
    for (int d = 0; d < n_dims; d++)
        t->ne[d] = ne[d];
    return TERN_OK;
}

tern_status tern_gguf_writer_add_tensor(tern_gguf_writer *w, const char *name, uint32_t type, int n_dims,
                                        const int64_t *ne, const void *data, uint64_t nbytes) {
    return add_tensor(w, name, type, n_dims, ne, data, nbytes, NULL, NULL);
}

tern_status tern_gguf_writer_add_tensor_fill(tern_gguf_writer *w, const char *name, uint32_t type, int n_dims,
                                             const int64_t *ne, uint64_t nbytes, tern_gguf_fill_fn fill,
                                             void *user) {
    if (!fill)
        return TERN_ERR_ARG;
    return add_tensor(w, name, type, n_dims, ne, NULL, nbytes, fill, user);
}

/* ---- output */

struct out {
    FILE *f;
    uint64_t pos; /* bytes written so far */
    const char *path;
    bool failed;
};

static tern_status out_bytes(struct out *o, const void *p, uint64_t n) {
    const uint8_t *b = p;
    while (n > 0) {
        size_t chunk = n < WRITE_CHUNK ? (size_t)n : WRITE_CHUNK;
        size_t done = fwrite(b, 1, chunk, o->f);
        o->pos += done;
        if (done != chunk) {
            tern_log_error("%s: write failed at offset %llu: %s", o->path, (unsigned long long)o->pos,
                           strerror(errno));
            o->failed = true;
            return TERN_ERR_IO;
        }
        b += done;
        n -= done;
    }
    return TERN_OK;
}

static tern_status out_u32(struct out *o, uint32_t v) {
    uint8_t b[4];
    put_u32(b, v);
    return out_bytes(o, b, 4);
}

static tern_status out_u64(struct out *o, uint64_t v) {
    uint8_t b[8];
    put_u64(b, v);
    return out_bytes(o, b, 8);
}

static tern_status out_str(struct out *o, const char *s) {
    size_t len = strlen(s);
    tern_status st = out_u64(o, len);
    if (st)
        return st;
    return out_bytes(o, s, len);
}

/* Zero bytes up to the next multiple of alignment. */
static tern_status out_pad(struct out *o, uint32_t alignment) {
    static const uint8_t zeros[4096];
    uint64_t pad = (alignment - o->pos % alignment) % alignment;
    while (pad > 0) {
        uint64_t n = pad < sizeof zeros ? pad : sizeof zeros;
        tern_status st = out_bytes(o, zeros, n);
        if (st)
            return st;
        pad -= n;
    }
    return TERN_OK;
}

/* A produced tensor: one in memory at a time, so a converter's memory stays bounded. */
static tern_status out_filled(struct out *o, const struct wtensor *t) {
    void *buf = malloc(t->nbytes ? (size_t)t->nbytes : 1);
    if (!buf) {
        tern_log_error("%s: out of memory for tensor %s (%llu bytes)", o->path, t->name,
                       (unsigned long long)t->nbytes);
        return TERN_ERR_NOMEM;
    }
    tern_status st = t->fill(buf, t->nbytes, t->fill_user);
    if (st)
        goto done;
    st = out_bytes(o, buf, t->nbytes);
done:
    free(buf);
    return st;
}

static tern_status write_body(const tern_gguf_writer *w, struct out *o, const uint64_t *offsets) {
    bool align_key = w->alignment != GGUF_DEFAULT_ALIGNMENT;
    tern_status st = out_bytes(o, "GGUF", 4);
    if (st)
        return st;
    st = out_u32(o, 3);
    if (st)
        return st;
    st = out_u64(o, w->n_tensors);
    if (st)
        return st;
    st = out_u64(o, w->n_kv + (align_key ? 1 : 0));
    if (st)
        return st;
    if (align_key) {
        st = out_str(o, ALIGNMENT_KEY);
        if (st)
            return st;
        st = out_u32(o, TERN_GGUF_U32);
        if (st)
            return st;
        st = out_u32(o, w->alignment);
        if (st)
            return st;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        st = out_str(o, w->kv[i].key);
        if (st)
            return st;
        st = out_bytes(o, w->kv[i].val, w->kv[i].val_len);
        if (st)
            return st;
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        const struct wtensor *t = &w->tensors[i];
        st = out_str(o, t->name);
        if (st)
            return st;
        st = out_u32(o, (uint32_t)t->n_dims);
        if (st)
            return st;
        for (int d = 0; d < t->n_dims; d++) {
            st = out_u64(o, (uint64_t)t->ne[d]);
            if (st)
                return st;
        }
        st = out_u32(o, t->type);
        if (st)
            return st;
        st = out_u64(o, offsets[i]);
        if (st)
            return st;
    }
    st = out_pad(o, w->alignment);
    if (st)
        return st;
    /* Every tensor is padded to the alignment, the last one too, as ggml writes it: readers that
     * load the data section in one read expect the padded total. */
    for (size_t i = 0; i < w->n_tensors; i++) {
        const struct wtensor *t = &w->tensors[i];
        st = t->fill ? out_filled(o, t) : out_bytes(o, t->data, t->nbytes);
        if (st)
            return st;
        st = out_pad(o, w->alignment);
        if (st)
            return st;
    }
    return TERN_OK;
}

tern_status tern_gguf_writer_write(tern_gguf_writer *w, const char *path) {
    if (!w || !path || !*path)
        return TERN_ERR_ARG;
    /* Offsets of the tensors in the data section, each rounded up to the alignment. */
    uint64_t *offsets = malloc((w->n_tensors ? w->n_tensors : 1) * sizeof *offsets);
    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    struct out o = {NULL, 0, tmp, false};
    bool created = false; /* tmp exists: removed on failure */
    tern_status st = TERN_ERR_NOMEM;
    if (!offsets || !tmp) {
        tern_log_error("%s: out of memory", path);
        goto done;
    }
    st = TERN_ERR_ARG;
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        uint64_t n = w->tensors[i].nbytes;
        uint64_t padded = n + (w->alignment - n % w->alignment) % w->alignment;
        if (padded < n || off > UINT64_MAX - padded) {
            tern_log_error("%s: tensor data too large (offset overflow at '%s')", path, w->tensors[i].name);
            goto done;
        }
        offsets[i] = off;
        off += padded;
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    st = TERN_ERR_IO;
    o.f = fopen(tmp, "wb");
    if (!o.f) {
        tern_log_error("%s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    created = true;
    st = write_body(w, &o, offsets);
    if (st)
        goto done;
    st = TERN_ERR_IO;
    if (fflush(o.f) != 0) {
        tern_log_error("%s: write failed: %s", tmp, strerror(errno));
        goto done;
    }
    FILE *f = o.f;
    o.f = NULL;
    if (fclose(f) != 0) {
        tern_log_error("%s: close failed: %s", tmp, strerror(errno));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        tern_log_error("%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        goto done;
    }
    st = TERN_OK;
done:
    if (o.f)
        fclose(o.f);
    if (st && created)
        remove(tmp);
    free(tmp);
    free(offsets);
    return st;
}
