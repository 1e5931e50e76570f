/* safetensors reader (see safetensors.h). */
#include "safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../scheduler/log.h"
#include "hf_vocab.h"

/* headers larger than this are refused (real ones are well under 1 MiB per shard) */
#define MAX_HEADER ((uint64_t)100 << 20)

struct st_file {
    char *path;
    FILE *f;
    uint64_t size;
};

struct tern_safetensors {
    struct st_file *files;
    int n_files;
    struct tern_st_tensor *tensors;
    size_t n_tensors, cap_tensors;
};

static const struct {
    const char *name;
    enum tern_st_dtype dtype;
    unsigned size;
} dtypes[] = {
    {"F32", TERN_ST_F32, 4},    {"F16", TERN_ST_F16, 2},       {"BF16", TERN_ST_BF16, 2},
    {"U8", TERN_ST_U8, 1},      {"I8", TERN_ST_I8, 1},         {"F64", TERN_ST_OTHER, 8},
    {"I16", TERN_ST_OTHER, 2},  {"I32", TERN_ST_OTHER, 4},     {"I64", TERN_ST_OTHER, 8},
    {"U16", TERN_ST_OTHER, 2},  {"U32", TERN_ST_OTHER, 4},     {"U64", TERN_ST_OTHER, 8},
    {"BOOL", TERN_ST_OTHER, 1}, {"F8_E4M3", TERN_ST_OTHER, 1}, {"F8_E5M2", TERN_ST_OTHER, 1},
};

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

void tern_safetensors_free(tern_safetensors *st) {
    if (!st)
        return;
    for (int i = 0; i < st->n_files; i++) {
        if (st->files[i].f)
            fclose(st->files[i].f);
        free(st->files[i].path);
    }
    for (size_t i = 0; i < st->n_tensors; i++)
        free(st->tensors[i].name);
    free(st->files);
    free(st->tensors);
    free(st);
}

const char *tern_safetensors_file(const tern_safetensors *st, int i) {
    return st->files[i].path;
}

const struct tern_st_tensor *tern_safetensors_find(const tern_safetensors *st, const char *name) {
    for (size_t i = 0; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0)
            return &st->tensors[i];
    return NULL;
}

static int cmp_offset(const void *a, const void *b) {
    const struct tern_st_tensor *x = *(const struct tern_st_tensor *const *)a;
    const struct tern_st_tensor *y = *(const struct tern_st_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* One tensor entry of a header: dtype, shape, data_offsets checked against the data size. */
static tern_status parse_entry(struct tern_st_tensor *t, const char *path, const char *name, const json_t *e,
                               uint64_t data_start, uint64_t data_size) {
    const json_t *dtype = json_object_get(e, "dtype"), *shape = json_object_get(e, "shape");
    const json_t *offs = json_object_get(e, "data_offsets");
    if (!json_is_string(dtype) || !json_is_array(shape) || json_array_size(offs) != 2) {
        tern_log_error("%s: tensor %s: header entry needs dtype, shape and data_offsets", path, name);
        return TERN_ERR_FORMAT;
    }
    unsigned esize = 0;
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dtypes[i].name, json_string_value(dtype)) == 0) {
            t->dtype = dtypes[i].dtype;
            esize = dtypes[i].size;
        }
    if (!esize) {
        tern_log_error("%s: tensor %s: unknown dtype \"%.15s\"", path, name, json_string_value(dtype));
        return TERN_ERR_FORMAT;
    }
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", json_string_value(dtype));
    if (json_array_size(shape) > 8) {
        tern_log_error("%s: tensor %s: more than 8 dimensions", path, name);
        return TERN_ERR_FORMAT;
    }
    t->n_dims = (int)json_array_size(shape);
    uint64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) {
        const json_t *v = json_array_get(shape, (size_t)d);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (json_integer_value(v) > 0 && n > UINT64_MAX / (uint64_t)json_integer_value(v))) {
            tern_log_error("%s: tensor %s: shape[%d] is not a valid size", path, name, d);
            return TERN_ERR_FORMAT;
        }
        t->shape[d] = (int64_t)json_integer_value(v);
        n *= (uint64_t)t->shape[d];
    }
    const json_t *b = json_array_get(offs, 0), *en = json_array_get(offs, 1);
    if (!json_is_integer(b) || !json_is_integer(en) || json_integer_value(b) < 0 ||
        json_integer_value(en) < json_integer_value(b) || (uint64_t)json_integer_value(en) > data_size) {
        tern_log_error("%s: tensor %s: data_offsets lie outside the file's %llu data bytes (file truncated?)",
                       path, name, (unsigned long long)data_size);
        return TERN_ERR_FORMAT;
    }
    t->n_elem = n;
    t->nbytes = (uint64_t)(json_integer_value(en) - json_integer_value(b));
    if (n > UINT64_MAX / esize || t->nbytes != n * esize) {
        tern_log_error("%s: tensor %s: %llu data bytes, but dtype %s and its shape need %llu", path, name,
                       (unsigned long long)t->nbytes, t->dtype_name, (unsigned long long)(n * esize));
        return TERN_ERR_FORMAT;
    }
    t->offset = data_start + (uint64_t)json_integer_value(b);
    return TERN_OK;
}

/* No two tensors of file `path` (its tensors are st->tensors[first..]) share bytes. */
static tern_status check_overlaps(const tern_safetensors *st, size_t first, const char *path) {
    size_t n = st->n_tensors - first;
    const struct tern_st_tensor **order = malloc((n ? n : 1) * sizeof *order);
    if (!order)
        return TERN_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        order[i] = &st->tensors[first + i];
    qsort(order, n, sizeof *order, cmp_offset);
    tern_status s = TERN_OK;
    for (size_t i = 1; i < n; i++)
        if (order[i]->offset < order[i - 1]->offset + order[i - 1]->nbytes) {
            tern_log_error("%s: tensors %s and %s overlap", path, order[i - 1]->name, order[i]->name);
            s = TERN_ERR_FORMAT;
            goto done;
        }
done:
    free(order);
    return s;
}

/* Open one file and add its tensors. */
static tern_status add_file(tern_safetensors *st, const char *path) {
    struct st_file *fl = &st->files[st->n_files];
    if (!(fl->path = strdup(path)))
        return TERN_ERR_NOMEM;
    const int fi = st->n_files++;
    if (!(fl->f = fopen(path, "rb"))) {
        tern_log_error("%s: cannot open: %s", path, strerror(errno));
        return TERN_ERR_IO;
    }
    struct stat sb;
    if (fstat(fileno(fl->f), &sb) != 0) {
        tern_log_error("%s: cannot stat: %s", path, strerror(errno));
        return TERN_ERR_IO;
    }
    fl->size = (uint64_t)sb.st_size;
    uint8_t lenb[8];
    if (fl->size < 8 || fread(lenb, 1, 8, fl->f) != 8) {
        tern_log_error("%s: too short for a safetensors file (%llu bytes)", path,
                       (unsigned long long)fl->size);
        return TERN_ERR_FORMAT;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | lenb[i];
    if (hlen > fl->size - 8 || hlen > MAX_HEADER) {
        tern_log_error("%s: header length %llu exceeds the file (%llu bytes; truncated?)", path,
                       (unsigned long long)hlen, (unsigned long long)fl->size);
        return TERN_ERR_FORMAT;
    }
    char *text = malloc(hlen ? hlen : 1);
    if (!text)
        return TERN_ERR_NOMEM;
    if (fread(text, 1, hlen, fl->f) != hlen) {
        free(text);
        tern_log_error("%s: cannot read the header: %s", path, strerror(errno));
        return TERN_ERR_IO;
    }
    json_error_t err;
    json_t *h = json_loadb(text, hlen, 0, &err);
    free(text);
    if (!json_is_object(h)) {
        tern_log_error("%s: header is not a JSON object (%s)", path, h ? "another value" : err.text);
        json_decref(h);
        return TERN_ERR_FORMAT;
    }
    const uint64_t data_start = 8 + hlen, data_size = fl->size - data_start;
    const size_t first = st->n_tensors;
    tern_status s;
    const char *name;
    json_t *e;
    json_object_foreach(h, name, e) {
        if (strcmp(name, "__metadata__") == 0)
            continue;
        if (tern_safetensors_find(st, name)) {
            tern_log_error("%s: tensor %s appears twice in the checkpoint", path, name);
            s = TERN_ERR_FORMAT;
            goto done;
        }
        if (st->n_tensors == st->cap_tensors) {
            size_t cap = st->cap_tensors ? 2 * st->cap_tensors : 256;
            struct tern_st_tensor *p = realloc(st->tensors, cap * sizeof *p);
            if (!p) {
                s = TERN_ERR_NOMEM;
                goto done;
            }
            st->tensors = p;
            st->cap_tensors = cap;
        }
        struct tern_st_tensor *t = &st->tensors[st->n_tensors];
        memset(t, 0, sizeof *t);
        s = parse_entry(t, path, name, e, data_start, data_size);
        if (s)
            goto done;
        if (!(t->name = strdup(name))) {
            s = TERN_ERR_NOMEM;
            goto done;
        }
        t->file = fi;
        st->n_tensors++;
    }
    s = check_overlaps(st, first, path);
done:
    json_decref(h);
    return s;
}

/* Shards named by model.safetensors.index.json: every file its weight_map names, each tensor
 * found in the shard the map gives. */
static tern_status open_index(tern_safetensors *st, const char *dir, const char *index_path) {
    json_t *idx;
    tern_status s = tern_hf_json_load(index_path, 0, &idx);
    if (s)
        return s;
    json_t *map = json_object_get(idx, "weight_map");
    const char *name;
    json_t *file;
    s = TERN_ERR_FORMAT;
    if (!json_is_object(map) || json_object_size(map) == 0) {
        tern_log_error("%s: weight_map is missing, empty or not an object", index_path);
        goto done;
    }
    s = TERN_ERR_NOMEM;
    if (!(st->files = calloc(json_object_size(map), sizeof *st->files)))
        goto done;
    json_object_foreach(map, name, file) {
        const char *fn = json_string_value(file);
        if (!fn || !*fn || strchr(fn, '/')) {
            tern_log_error("%s: weight_map[%s] is not a file name of the folder", index_path, name);
            s = TERN_ERR_FORMAT;
            goto done;
        }
        char *path = path_join(dir, fn);
        if (!path) {
            s = TERN_ERR_NOMEM;
            goto done;
        }
        int fi = -1;
        for (int i = 0; i < st->n_files; i++)
            if (strcmp(st->files[i].path, path) == 0)
                fi = i;
        if (fi < 0 && !file_exists(path)) {
            tern_log_error("%s: shard %s (listed in %s for %s) is missing", path, fn, index_path, name);
            free(path);
            s = TERN_ERR_IO;
            goto done;
        }
        s = TERN_OK;
        if (fi < 0) {
            fi = st->n_files;
            s = add_file(st, path);
        }
        free(path);
        if (s)
            goto done;
        const struct tern_st_tensor *t = tern_safetensors_find(st, name);
        if (t && t->file != fi) {
            tern_log_error("%s: tensor %s is in %s, not in %s as the index says", index_path, name,
                           st->files[t->file].path, fn);
            s = TERN_ERR_FORMAT;
            goto done;
        }
    }
    /* every mapped tensor must be in its shard */
    json_object_foreach(map, name, file) {
        if (!tern_safetensors_find(st, name)) {
            tern_log_error("%s: tensor %s is listed in the index but not in shard %s", index_path, name,
                           json_string_value(file));
            s = TERN_ERR_FORMAT;
            goto done;
        }
    }
    s = TERN_OK;
done:
    json_decref(idx);
    return s;
}

tern_status tern_safetensors_create(const char *dir, tern_safetensors **out) {
    *out = NULL;
    tern_safetensors *st = calloc(1, sizeof *st);
    char *single = path_join(dir, "model.safetensors");
    char *index = path_join(dir, "model.safetensors.index.json");
    tern_status s = TERN_ERR_NOMEM;
    if (!st || !single || !index)
        goto done;
    if (file_exists(single)) {
        if (!(st->files = calloc(1, sizeof *st->files)))
            goto done;
        s = add_file(st, single);
    } else if (file_exists(index)) {
        s = open_index(st, dir, index);
    } else {
        tern_log_error("%s: no model.safetensors and no model.safetensors.index.json", dir);
        s = TERN_ERR_IO;
    }
done:
    free(single);
    free(index);
    if (s) {
        tern_safetensors_free(st);
        return s;
    }
    *out = st;
    return TERN_OK;
}

tern_status tern_safetensors_read_part(const tern_safetensors *st, const struct tern_st_tensor *t,
                                       uint64_t offset, uint64_t nbytes, void *dst) {
    const struct st_file *fl = &st->files[t->file];
    if (offset > t->nbytes || nbytes > t->nbytes - offset) {
        tern_log_error("%s: tensor %s: bytes [%llu, +%llu) are outside its %llu", fl->path, t->name,
                       (unsigned long long)offset, (unsigned long long)nbytes, (unsigned long long)t->nbytes);
        return TERN_ERR_ARG;
    }
    if (fseeko(fl->f, (off_t)(t->offset + offset), SEEK_SET) != 0 || fread(dst, 1, nbytes, fl->f) != nbytes) {
        tern_log_error("%s: cannot read tensor %s (%llu bytes at offset %llu)", fl->path, t->name,
                       (unsigned long long)nbytes, (unsigned long long)(t->offset + offset));
        return TERN_ERR_IO;
    }
    return TERN_OK;
}

tern_status tern_safetensors_read(const tern_safetensors *st, const struct tern_st_tensor *t, void *dst) {
    return tern_safetensors_read_part(st, t, 0, t->nbytes, dst);
}
