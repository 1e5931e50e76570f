/* GGUF reader: maps a file (or takes a caller buffer), validates everything in it and builds the
 * indexes the rest of tern uses (key hash, tensor-name hash, per-string-array offset tables).
 * docs/formats.md#gguf-container. Every failure logs exactly one line "NAME: fault" and returns a status; the
 * parser records the first fault only, so nested helpers never log twice. */
#define _DEFAULT_SOURCE /* madvise (MADV_POPULATE_READ) beside the POSIX baseline */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../scheduler/log.h"
#include "../../scheduler/types.h"

#define GGUF_DEFAULT_ALIGNMENT 32u
#define ALIGNMENT_KEY "general.alignment"

/* Smallest encodings, used to bound counts by the bytes left before anything is allocated. */
#define MIN_KV_BYTES 14     /* u64 key length, 1 key byte, u32 type, 1 value byte */
#define MIN_TENSOR_BYTES 33 /* u64 name length, 1 name byte, u32 n_dims, 1 dim, u32 type, u64 offset */

/* Byte size of each scalar value type; 0 for STRING and ARRAY (variable). */
static const uint8_t vtype_size[TERN_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
static const char *const vtype_names[TERN_GGUF_VTYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};

struct gguf_kv {
    struct tern_str key;
    uint32_t type;      /* enum tern_gguf_vtype */
    uint32_t elem_type; /* arrays only */
    uint64_t n;         /* arrays: element count; strings: byte length */
    const uint8_t *val; /* scalars: the value bytes; strings: the chars; arrays: first element */
    uint64_t *str_off;  /* string arrays: offset (from val) of each element's u64 length prefix */
};

/* Open-addressing hash from (name bytes) to an index; slots hold index + 1, 0 = empty. */
struct name_index {
    int64_t *slots;
    uint64_t mask;
};

struct tern_gguf {
    char *path;
    const uint8_t *base;
    uint64_t size;
    bool mapped; /* base came from mmap (unmap at close) */
    uint32_t version;
    uint32_t alignment;
    uint64_t data_start;
    int64_t n_kv;
    struct gguf_kv *kv;
    struct name_index key_index;
    int64_t n_tensors;
    struct tern_gguf_tensor *tensors;
    char *names;            /* NUL-terminated copies of all tensor names, back to back */
    struct tern_str *tname; /* [n_tensors] views of those copies, for the name index */
    struct name_index tensor_index;
};

/* ---- little-endian decoding (memcpy-free byte assembly: no alignment or endianness assumptions) */

static uint16_t le16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) {
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* ---- hashing */

static uint64_t hash_bytes(const char *s, uint64_t n) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (uint64_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void index_free(struct name_index *ix) {
    free(ix->slots);
    ix->slots = NULL;
}

static tern_status index_create(struct name_index *ix, int64_t n) {
    uint64_t cap = 16;
    while (cap < (uint64_t)n * 2) /* load factor <= 1/2; n is bounded by the file size */
        cap *= 2;
    ix->slots = calloc(cap, sizeof *ix->slots);
    if (!ix->slots)
        return TERN_ERR_NOMEM;
    ix->mask = cap - 1;
    return TERN_OK;
}

/* Finds name; when absent and insert_idx >= 0, inserts it. Returns the stored index or -1. */
static int64_t index_lookup(struct name_index *ix, const struct tern_str *names, size_t stride, const char *s,
                            uint64_t n, int64_t insert_idx) {
    if (!ix->slots)
        return -1;
    for (uint64_t h = hash_bytes(s, n) & ix->mask;; h = (h + 1) & ix->mask) {
        int64_t v = ix->slots[h];
        if (v == 0) {
            if (insert_idx >= 0)
                ix->slots[h] = insert_idx + 1;
            return -1;
        }
        const struct tern_str *e = (const struct tern_str *)((const char *)names + (size_t)(v - 1) * stride);
        if (e->len == n && memcmp(e->ptr, s, n) == 0)
            return v - 1;
    }
}

/* ---- the parser */

struct parser {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    const char *name;
    bool failed;
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static tern_status
fail(struct parser *p, tern_status st, const char *fmt, ...) {
    if (!p->failed) {
        char msg[768];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        tern_log_error("%s: %s", p->name, msg);
        p->failed = true;
    }
    return st;
}

/* A printable, bounded copy of a file string for messages (file bytes may hold anything). */
static const char *printable(char *buf, size_t cap, const char *s, uint64_t n) {
    size_t j = 0;
    for (uint64_t i = 0; i < n && j + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (j + 4 >= cap && (uint64_t)j < n) {
        buf[j++] = '.';
        buf[j++] = '.';
        buf[j++] = '.';
    }
    buf[j] = '\0';
    return buf;
}

static uint64_t left(const struct parser *p) {
    return p->size - p->pos;
}

static tern_status need(struct parser *p, uint64_t n, const char *what) {
    if (n > left(p))
        return fail(p, TERN_ERR_FORMAT, "truncated: %s at offset %llu needs %llu bytes, %llu left", what,
                    (unsigned long long)p->pos, (unsigned long long)n, (unsigned long long)left(p));
    return TERN_OK;
}

static tern_status rd_u32(struct parser *p, uint32_t *v, const char *what) {
    tern_status st = need(p, 4, what);
    if (st)
        return st;
    *v = le32(p->base + p->pos);
    p->pos += 4;
    return TERN_OK;
}

static tern_status rd_u64(struct parser *p, uint64_t *v, const char *what) {
    tern_status st = need(p, 8, what);
    if (st)
        return st;
    *v = le64(p->base + p->pos);
    p->pos += 8;
    return TERN_OK;
}

static tern_status rd_str(struct parser *p, struct tern_str *s, const char *what) {
    uint64_t len;
    tern_status st = rd_u64(p, &len, what);
    if (st)
        return st;
    if (len > left(p))
        return fail(p, TERN_ERR_FORMAT,
                    "%s: string length %llu at offset %llu runs past the end (%llu bytes left)", what,
                    (unsigned long long)len, (unsigned long long)(p->pos - 8), (unsigned long long)left(p));
    s->ptr = (const char *)p->base + p->pos;
    s->len = len;
    p->pos += len;
    return TERN_OK;
}

/* Reads one metadata value of type t (already read) into kv. `what` names the key for messages. */
static tern_status rd_value(struct parser *p, struct gguf_kv *kv, uint32_t t, const char *what) {
    if (t >= TERN_GGUF_VTYPE_COUNT)
        return fail(p, TERN_ERR_FORMAT, "%s: unknown value type %u", what, t);
    kv->type = t;
    if (t == TERN_GGUF_STRING) {
        struct tern_str s;
        tern_status st = rd_str(p, &s, what);
        if (st)
            return st;
        kv->val = (const uint8_t *)s.ptr;
        kv->n = s.len;
        return TERN_OK;
    }
    if (t != TERN_GGUF_ARRAY) {
        tern_status st = need(p, vtype_size[t], what);
        if (st)
            return st;
        kv->val = p->base + p->pos;
        p->pos += vtype_size[t];
        return TERN_OK;
    }
    uint32_t et;
    uint64_t n;
    tern_status st = rd_u32(p, &et, what);
    if (st)
        return st;
    st = rd_u64(p, &n, what);
    if (st)
        return st;
    if (et >= TERN_GGUF_VTYPE_COUNT)
        return fail(p, TERN_ERR_FORMAT, "%s: array of unknown element type %u", what, et);
    if (et == TERN_GGUF_ARRAY)
        return fail(p, TERN_ERR_FORMAT, "%s: arrays of arrays are not supported", what);
    kv->elem_type = et;
    kv->n = n;
    kv->val = p->base + p->pos;
    if (et != TERN_GGUF_STRING) {
        if (n > left(p) / vtype_size[et])
            return fail(p, TERN_ERR_FORMAT,
                        "%s: array of %llu %s elements runs past the end (%llu bytes left)", what,
                        (unsigned long long)n, vtype_names[et], (unsigned long long)left(p));
        p->pos += n * vtype_size[et];
        return TERN_OK;
    }
    /* Every string element takes at least its 8-byte length: bound n before allocating. */
    if (n > left(p) / 8)
        return fail(p, TERN_ERR_FORMAT, "%s: array of %llu strings cannot fit in the %llu bytes left", what,
                    (unsigned long long)n, (unsigned long long)left(p));
    if (n == 0)
        return TERN_OK;
    kv->str_off = malloc((size_t)n * sizeof *kv->str_off);
    if (!kv->str_off)
        return fail(p, TERN_ERR_NOMEM, "%s: out of memory for %llu string offsets", what,
                    (unsigned long long)n);
    uint64_t start = p->pos;
    for (uint64_t i = 0; i < n; i++) {
        kv->str_off[i] = p->pos - start;
        struct tern_str s;
        st = rd_str(p, &s, what);
        if (st)
            return st;
    }
    return TERN_OK;
}

static bool has_nul(const struct tern_str *s) {
    return s->len && memchr(s->ptr, 0, s->len) != NULL;
}

static tern_status parse_kvs(struct parser *p, tern_gguf *g) {
    char what[160], pk[96];
    for (int64_t i = 0; i < g->n_kv; i++) {
        struct gguf_kv *kv = &g->kv[i];
        snprintf(what, sizeof what, "metadata key #%lld", (long long)i);
        tern_status st = rd_str(p, &kv->key, what);
        if (st)
            return st;
        if (kv->key.len == 0)
            return fail(p, TERN_ERR_FORMAT, "metadata key #%lld is empty", (long long)i);
        printable(pk, sizeof pk, kv->key.ptr, kv->key.len);
        if (has_nul(&kv->key))
            return fail(p, TERN_ERR_FORMAT, "metadata key '%s' contains a NUL byte", pk);
        if (index_lookup(&g->key_index, &g->kv[0].key, sizeof *g->kv, kv->key.ptr, kv->key.len, i) >= 0)
            return fail(p, TERN_ERR_FORMAT, "duplicate metadata key '%s'", pk);
        snprintf(what, sizeof what, "value of key '%s'", pk);
        uint32_t t;
        st = rd_u32(p, &t, what);
        if (st)
            return st;
        st = rd_value(p, kv, t, what);
        if (st)
            return st;
    }
    return TERN_OK;
}

static tern_status read_alignment(struct parser *p, tern_gguf *g) {
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t i = tern_gguf_find_key(g, ALIGNMENT_KEY);
    if (i < 0)
        return TERN_OK;
    const struct gguf_kv *kv = &g->kv[i];
    if (kv->type != TERN_GGUF_U32)
        return fail(p, TERN_ERR_FORMAT, "key '" ALIGNMENT_KEY "' must be a u32, found %s",
                    vtype_names[kv->type]);
    uint32_t a = le32(kv->val);
    if (a == 0 || (a & (a - 1)) != 0)
        return fail(p, TERN_ERR_FORMAT, "key '" ALIGNMENT_KEY "' is %u, not a power of two", a);
    g->alignment = a;
    return TERN_OK;
}

static tern_status parse_tensor_info(struct parser *p, tern_gguf *g, int64_t i, struct tern_str *name) {
    struct tern_gguf_tensor *t = &g->tensors[i];
    char what[160], pn[96];
    snprintf(what, sizeof what, "tensor info #%lld", (long long)i);
    tern_status st = rd_str(p, name, what);
    if (st)
        return st;
    if (name->len == 0)
        return fail(p, TERN_ERR_FORMAT, "tensor #%lld has an empty name", (long long)i);
    printable(pn, sizeof pn, name->ptr, name->len);
    if (has_nul(name))
        return fail(p, TERN_ERR_FORMAT, "tensor name '%s' contains a NUL byte", pn);
    snprintf(what, sizeof what, "tensor '%s'", pn);
    uint32_t n_dims;
    st = rd_u32(p, &n_dims, what);
    if (st)
        return st;
    if (n_dims == 0 || n_dims > 4)
        return fail(p, TERN_ERR_FORMAT, "tensor '%s': n_dims is %u, must be 1..4", pn, n_dims);
    t->n_dims = (int)n_dims;
    for (int d = 0; d < 4; d++)
        t->ne[d] = 1;
    uint64_t n_elem = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t v;
        st = rd_u64(p, &v, what);
        if (st)
            return st;
        if (v > (uint64_t)INT64_MAX)
            return fail(p, TERN_ERR_FORMAT, "tensor '%s': ne[%u] = %llu is negative as int64", pn, d,
                        (unsigned long long)v);
        if (v != 0 && n_elem > (uint64_t)INT64_MAX / v)
            return fail(p, TERN_ERR_FORMAT, "tensor '%s': element count overflows (ne[%u] = %llu)", pn, d,
                        (unsigned long long)v);
        n_elem *= v;
        t->ne[d] = (int64_t)v;
    }
    st = rd_u32(p, &t->type, what);
    if (st)
        return st;
    st = rd_u64(p, &t->offset, what);
    if (st)
        return st;
    const struct tern_type_traits *tr = tern_type_traits(t->type);
    if (!tr)
        return fail(p, TERN_ERR_FORMAT, "tensor '%s': unknown tensor type id %u", pn, t->type);
    if (tr->cls == TERN_CLASS_REFUSED)
        return fail(p, TERN_ERR_UNSUPPORTED, "tensor '%s' has type %s, which tern does not load: %s", pn,
                    tr->name, tr->refusal);
    st = tern_type_nbytes(t->type, t->n_dims, t->ne, &t->nbytes);
    if (st) {
        /* tern_type_nbytes refuses partial blocks and byte sizes that overflow: say which. */
        bool whole = t->type == TERN_TYPE_I2_S ? n_elem % 128 == 0
                                               : (uint64_t)t->ne[0] % (uint64_t)tr->block_size == 0;
        if (whole)
            return fail(p, TERN_ERR_FORMAT, "tensor '%s': byte size of %llu %s elements overflows", pn,
                        (unsigned long long)n_elem, tr->name);
        return fail(
            p, TERN_ERR_FORMAT,
            "tensor '%s': shape [%lld, %lld, %lld, %lld] is not valid for type %s (%s must hold whole "
            "%lld-element blocks)",
            pn, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3], tr->name,
            t->type == TERN_TYPE_I2_S ? "the element count" : "rows", (long long)tr->block_size);
    }
    if (t->offset % g->alignment != 0)
        return fail(p, TERN_ERR_FORMAT, "tensor '%s': offset %llu is not a multiple of the alignment %u", pn,
                    (unsigned long long)t->offset, g->alignment);
    return TERN_OK;
}

static int cmp_by_offset(const void *a, const void *b) {
    const struct tern_gguf_tensor *x = *(const struct tern_gguf_tensor *const *)a;
    const struct tern_gguf_tensor *y = *(const struct tern_gguf_tensor *const *)b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* Bounds of every tensor region, and no two regions overlap (checked on offset order). */
static tern_status check_regions(struct parser *p, tern_gguf *g) {
    uint64_t data_size = g->size - g->data_start;
    char pa[96], pb[96];
    for (int64_t i = 0; i < g->n_tensors; i++) {
        struct tern_gguf_tensor *t = &g->tensors[i];
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return fail(p, TERN_ERR_FORMAT,
                        "tensor '%s': data at offset %llu + %llu bytes runs past the end of the data section "
                        "(%llu bytes)",
                        printable(pa, sizeof pa, t->name, strlen(t->name)), (unsigned long long)t->offset,
                        (unsigned long long)t->nbytes, (unsigned long long)data_size);
        t->data = g->base + g->data_start + t->offset;
    }
    if (g->n_tensors < 2)
        return TERN_OK;
    const struct tern_gguf_tensor **order = malloc((size_t)g->n_tensors * sizeof *order);
    if (!order)
        return fail(p, TERN_ERR_NOMEM, "out of memory sorting %lld tensors", (long long)g->n_tensors);
    for (int64_t i = 0; i < g->n_tensors; i++)
        order[i] = &g->tensors[i];
    qsort(order, (size_t)g->n_tensors, sizeof *order, cmp_by_offset);
    /* Sorted by offset, a region overlaps an earlier one exactly when it starts before the furthest
     * end seen so far. Zero-byte tensors occupy nothing: they are skipped, not compared. */
    tern_status st = TERN_OK;
    const struct tern_gguf_tensor *last = NULL; /* the non-empty region with the furthest end */
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const struct tern_gguf_tensor *b = order[i];
        if (b->nbytes == 0)
            continue;
        if (last && b->offset < last->offset + last->nbytes) {
            st = fail(p, TERN_ERR_FORMAT,
                      "tensors '%s' (offset %llu, %llu bytes) and '%s' (offset %llu) overlap",
                      printable(pa, sizeof pa, last->name, strlen(last->name)),
                      (unsigned long long)last->offset, (unsigned long long)last->nbytes,
                      printable(pb, sizeof pb, b->name, strlen(b->name)), (unsigned long long)b->offset);
            break;
        }
        if (!last || b->offset + b->nbytes > last->offset + last->nbytes)
            last = b;
    }
    free(order);
    return st;
}

static tern_status parse_tensors(struct parser *p, tern_gguf *g) {
    if ((uint64_t)g->n_tensors > left(p) / MIN_TENSOR_BYTES)
        return fail(p, TERN_ERR_FORMAT, "tensor count %lld cannot fit in the %llu bytes left",
                    (long long)g->n_tensors, (unsigned long long)left(p));
    if (g->n_tensors > 0) {
        g->tensors = calloc((size_t)g->n_tensors, sizeof *g->tensors);
        g->tname = calloc((size_t)g->n_tensors, sizeof *g->tname);
        if (!g->tensors || !g->tname)
            return fail(p, TERN_ERR_NOMEM, "out of memory for %lld tensor infos", (long long)g->n_tensors);
    }
    uint64_t name_bytes = 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        tern_status st = parse_tensor_info(p, g, i, &g->tname[i]);
        if (st)
            return st;
        name_bytes += g->tname[i].len + 1; /* names lie inside the file: cannot overflow */
    }
    if (g->n_tensors > 0) {
        /* NUL-terminated copies in one block; the index and tname then refer to the copies. */
        g->names = malloc((size_t)name_bytes);
        tern_status st = g->names ? index_create(&g->tensor_index, g->n_tensors) : TERN_ERR_NOMEM;
        if (st)
            return fail(p, st, "out of memory for tensor names");
        char *dst = g->names;
        for (int64_t i = 0; i < g->n_tensors; i++) {
            struct tern_str *nm = &g->tname[i];
            memcpy(dst, nm->ptr, (size_t)nm->len);
            dst[nm->len] = '\0';
            g->tensors[i].name = dst;
            nm->ptr = dst;
            dst += nm->len + 1;
            if (index_lookup(&g->tensor_index, g->tname, sizeof *g->tname, nm->ptr, nm->len, i) >= 0) {
                char pn[96];
                return fail(p, TERN_ERR_FORMAT, "duplicate tensor name '%s'",
                            printable(pn, sizeof pn, nm->ptr, nm->len));
            }
        }
    }
    /* Data section: the next multiple of the alignment after the tensor infos. */
    uint64_t pad = (g->alignment - p->pos % g->alignment) % g->alignment;
    g->data_start = p->pos + pad;
    if (g->data_start > g->size) {
        if (g->n_tensors > 0)
            return fail(p, TERN_ERR_FORMAT,
                        "data section would start at offset %llu, past the end (%llu bytes)",
                        (unsigned long long)g->data_start, (unsigned long long)g->size);
        g->data_start = g->size; /* no tensors: a file may end right after the infos */
    }
    return check_regions(p, g);
}

static tern_status parse(struct parser *p, tern_gguf *g) {
    if (p->size < 4)
        return fail(p, TERN_ERR_FORMAT, "file is too short for a GGUF header (%llu bytes)",
                    (unsigned long long)p->size);
    if (memcmp(p->base, "GGUF", 4) != 0)
        return fail(p, TERN_ERR_FORMAT, "bad magic (not a GGUF file)");
    p->pos = 4;
    tern_status st = rd_u32(p, &g->version, "header version");
    if (st)
        return st;
    if (g->version == 1)
        return fail(p, TERN_ERR_UNSUPPORTED,
                    "GGUF v1 is not supported (32-bit counts); re-convert the model");
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return fail(p, TERN_ERR_UNSUPPORTED, "big-endian GGUF files are not supported");
    if (g->version != 2 && g->version != 3)
        return fail(p, TERN_ERR_FORMAT, "unsupported GGUF version %u (tern reads v2 and v3)", g->version);
    uint64_t n_tensors, n_kv;
    st = rd_u64(p, &n_tensors, "header tensor count");
    if (st)
        return st;
    st = rd_u64(p, &n_kv, "header metadata count");
    if (st)
        return st;
    if (n_tensors > p->size / MIN_TENSOR_BYTES)
        return fail(p, TERN_ERR_FORMAT, "tensor count %llu cannot fit in a %llu-byte file",
                    (unsigned long long)n_tensors, (unsigned long long)p->size);
    if (n_kv > left(p) / MIN_KV_BYTES)
        return fail(p, TERN_ERR_FORMAT, "metadata count %llu cannot fit in the %llu bytes left",
                    (unsigned long long)n_kv, (unsigned long long)left(p));
    g->n_tensors = (int64_t)n_tensors;
    g->n_kv = (int64_t)n_kv;
    if (n_kv > 0) {
        g->kv = calloc((size_t)n_kv, sizeof *g->kv);
        st = g->kv ? index_create(&g->key_index, g->n_kv) : TERN_ERR_NOMEM;
        if (st)
            return fail(p, st, "out of memory for %llu metadata entries", (unsigned long long)n_kv);
    }
    st = parse_kvs(p, g);
    if (st)
        return st;
    st = read_alignment(p, g);
    if (st)
        return st;
    return parse_tensors(p, g);
}

static tern_status gguf_create_common(const uint8_t *base, uint64_t size, const char *name, bool mapped,
                                      tern_gguf **out) {
    tern_gguf *g = calloc(1, sizeof *g);
    char *path = strdup(name);
    if (!g || !path) {
        free(g);
        free(path);
        if (mapped)
            munmap((void *)base, (size_t)size);
        tern_log_error("%s: out of memory", name);
        return TERN_ERR_NOMEM;
    }
    g->path = path;
    g->base = base;
    g->size = size;
    g->mapped = mapped;
    struct parser p = {base, size, 0, name, false};
    tern_status st = parse(&p, g);
    if (st) {
        tern_gguf_free(g);
        return st;
    }
    *out = g;
    return TERN_OK;
}

tern_status tern_gguf_create(const char *path, tern_gguf **out) {
    if (!path || !out)
        return TERN_ERR_ARG;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        tern_log_error("%s: cannot open: %s", path, strerror(errno));
        return TERN_ERR_IO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        tern_log_error("%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return TERN_ERR_IO;
    }
    if (!S_ISREG(sb.st_mode)) {
        tern_log_error("%s: not a regular file", path);
        close(fd);
        return TERN_ERR_IO;
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
        tern_log_error("%s: file of %llu bytes cannot be mapped", path, (unsigned long long)sb.st_size);
        close(fd);
        return TERN_ERR_IO;
    }
    if (sb.st_size == 0) {
        /* mmap of 0 bytes fails; an empty file is a format fault, not an I/O one. */
        close(fd);
        static const uint8_t empty[1];
        return gguf_create_common(empty, 0, path, false, out);
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd); /* the mapping keeps the file alive */
    if (m == MAP_FAILED) {
        tern_log_error("%s: cannot map: %s", path, strerror(map_errno));
        return TERN_ERR_IO;
    }
    return gguf_create_common(m, (uint64_t)sb.st_size, path, true, out);
}

tern_status tern_gguf_create_from_memory(const void *data, size_t size, const char *name, tern_gguf **out) {
    if (!out || (!data && size))
        return TERN_ERR_ARG;
    *out = NULL;
    static const uint8_t empty[1];
    return gguf_create_common(data ? data : empty, size, name ? name : "<memory>", false, out);
}

void tern_gguf_prefault(const tern_gguf *g) {
    if (!g || !g->mapped)
        return;
#ifdef MADV_POPULATE_READ
    if (madvise((void *)g->base, (size_t)g->size, MADV_POPULATE_READ) == 0)
        return;
#endif
    (void)madvise((void *)g->base, (size_t)g->size, MADV_WILLNEED);
}

void tern_gguf_free(tern_gguf *g) {
    if (!g)
        return;
    for (int64_t i = 0; i < g->n_kv && g->kv; i++)
        free(g->kv[i].str_off);
    free(g->kv);
    index_free(&g->key_index);
    index_free(&g->tensor_index);
    free(g->tensors);
    free(g->names);
    free(g->tname);
    if (g->mapped)
        munmap((void *)g->base, (size_t)g->size);
    free(g->path);
    free(g);
}

/* ---- accessors */

const char *tern_gguf_path(const tern_gguf *g) {
    return g->path;
}
uint32_t tern_gguf_version(const tern_gguf *g) {
    return g->version;
}
uint32_t tern_gguf_alignment(const tern_gguf *g) {
    return g->alignment;
}
uint64_t tern_gguf_file_size(const tern_gguf *g) {
    return g->size;
}
int64_t tern_gguf_n_kv(const tern_gguf *g) {
    return g->n_kv;
}
int64_t tern_gguf_n_tensors(const tern_gguf *g) {
    return g->n_tensors;
}

int64_t tern_gguf_find_key(const tern_gguf *g, const char *key) {
    if (!g || !key)
        return -1;
    /* index_lookup does not modify the index when insert_idx < 0. */
    return index_lookup((struct name_index *)&g->key_index, g->kv ? &g->kv[0].key : NULL, sizeof *g->kv, key,
                        strlen(key), -1);
}

struct tern_str tern_gguf_key_name(const tern_gguf *g, int64_t idx) {
    struct tern_str none = {NULL, 0};
    return (idx < 0 || idx >= g->n_kv) ? none : g->kv[idx].key;
}

enum tern_gguf_vtype tern_gguf_key_type(const tern_gguf *g, int64_t idx) {
    return (idx < 0 || idx >= g->n_kv) ? TERN_GGUF_VTYPE_COUNT : (enum tern_gguf_vtype)g->kv[idx].type;
}

const struct tern_gguf_tensor *tern_gguf_tensor(const tern_gguf *g, int64_t idx) {
    return (idx < 0 || idx >= g->n_tensors) ? NULL : &g->tensors[idx];
}

const struct tern_gguf_tensor *tern_gguf_find_tensor(const tern_gguf *g, const char *name) {
    if (!g || !name)
        return NULL;
    int64_t i = index_lookup((struct name_index *)&g->tensor_index, g->tname, sizeof *g->tname, name,
                             strlen(name), -1);
    return i < 0 ? NULL : &g->tensors[i];
}

/* Two's-complement reinterpretation without implementation-defined conversions. */
static int64_t as_signed(uint64_t x, int bits) {
    uint64_t sign = 1ULL << (bits - 1);
    if (!(x & sign))
        return (int64_t)x;
    uint64_t mag = (~x & (sign - 1)) + 1; /* magnitude of the negative value, <= 2^(bits-1) */
    return mag == (1ULL << 63) ? INT64_MIN : -(int64_t)mag;
}

/* The value of an integer-typed scalar: in *s (signed types) or *u (unsigned types). */
static bool kv_integer(const struct gguf_kv *kv, bool *is_signed, int64_t *s, uint64_t *u) {
    const uint8_t *v = kv->val;
    *is_signed = false;
    switch (kv->type) {
    case TERN_GGUF_U8:
        *u = v[0];
        return true;
    case TERN_GGUF_U16:
        *u = le16(v);
        return true;
    case TERN_GGUF_U32:
        *u = le32(v);
        return true;
    case TERN_GGUF_U64:
        *u = le64(v);
        return true;
    default:
        break;
    }
    *is_signed = true;
    switch (kv->type) {
    case TERN_GGUF_I8:
        *s = as_signed(v[0], 8);
        return true;
    case TERN_GGUF_I16:
        *s = as_signed(le16(v), 16);
        return true;
    case TERN_GGUF_I32:
        *s = as_signed(le32(v), 32);
        return true;
    case TERN_GGUF_I64:
        *s = as_signed(le64(v), 64);
        return true;
    default:
        return false;
    }
}

static tern_status lookup(const tern_gguf *g, const char *key, const struct gguf_kv **kv) {
    int64_t i = tern_gguf_find_key(g, key);
    if (i < 0)
        return TERN_ERR_NOT_FOUND;
    *kv = &g->kv[i];
    return TERN_OK;
}

static tern_status wrong_type(const tern_gguf *g, const char *key, const struct gguf_kv *kv,
                              const char *want) {
    if (kv->type == TERN_GGUF_ARRAY)
        tern_log_error("%s: key '%s' holds an array of %s, expected %s", g->path, key,
                       vtype_names[kv->elem_type], want);
    else
        tern_log_error("%s: key '%s' holds a %s, expected %s", g->path, key, vtype_names[kv->type], want);
    return TERN_ERR_FORMAT;
}

static tern_status int_range(const tern_gguf *g, const char *key, const struct gguf_kv *kv,
                             const char *want) {
    bool sg;
    int64_t s = 0;
    uint64_t u = 0;
    kv_integer(kv, &sg, &s, &u);
    if (sg)
        tern_log_error("%s: key '%s' value %lld does not fit in %s", g->path, key, (long long)s, want);
    else
        tern_log_error("%s: key '%s' value %llu does not fit in %s", g->path, key, (unsigned long long)u,
                       want);
    return TERN_ERR_FORMAT;
}

/* key's value of any integer type: in s when *sg (signed types), else in u. */
static tern_status get_integer(const tern_gguf *g, const char *key, const struct gguf_kv **kv, bool *sg,
                               int64_t *s, uint64_t *u) {
    tern_status st = lookup(g, key, kv);
    if (st)
        return st;
    if (!kv_integer(*kv, sg, s, u))
        return wrong_type(g, key, *kv, "an integer");
    return TERN_OK;
}

tern_status tern_gguf_get_u32(const tern_gguf *g, const char *key, uint32_t *out) {
    const struct gguf_kv *kv;
    bool sg;
    int64_t s;
    uint64_t u;
    tern_status st = get_integer(g, key, &kv, &sg, &s, &u);
    if (st)
        return st;
    if (sg ? (s < 0 || s > (int64_t)UINT32_MAX) : u > UINT32_MAX)
        return int_range(g, key, kv, "u32");
    *out = sg ? (uint32_t)s : (uint32_t)u;
    return TERN_OK;
}

tern_status tern_gguf_get_i64(const tern_gguf *g, const char *key, int64_t *out) {
    const struct gguf_kv *kv;
    bool sg;
    int64_t s;
    uint64_t u;
    tern_status st = get_integer(g, key, &kv, &sg, &s, &u);
    if (st)
        return st;
    if (!sg && u > (uint64_t)INT64_MAX)
        return int_range(g, key, kv, "i64");
    *out = sg ? s : (int64_t)u;
    return TERN_OK;
}

tern_status tern_gguf_get_f32(const tern_gguf *g, const char *key, float *out) {
    const struct gguf_kv *kv;
    tern_status st = lookup(g, key, &kv);
    if (st)
        return st;
    if (kv->type == TERN_GGUF_F32) {
        uint32_t bits = le32(kv->val);
        memcpy(out, &bits, sizeof *out);
        return TERN_OK;
    }
    if (kv->type == TERN_GGUF_F64) {
        uint64_t bits = le64(kv->val);
        double d;
        memcpy(&d, &bits, sizeof d);
        /* Converting an out-of-range finite double to float is undefined in C: refuse it. */
        if (isfinite(d) && fabs(d) > FLT_MAX) {
            tern_log_error("%s: key '%s' value %g does not fit in f32", g->path, key, d);
            return TERN_ERR_FORMAT;
        }
        *out = (float)d;
        return TERN_OK;
    }
    bool sg;
    int64_t s;
    uint64_t u;
    if (!kv_integer(kv, &sg, &s, &u))
        return wrong_type(g, key, kv, "a number");
    *out = sg ? (float)s : (float)u;
    return TERN_OK;
}

tern_status tern_gguf_get_bool(const tern_gguf *g, const char *key, bool *out) {
    const struct gguf_kv *kv;
    tern_status st = lookup(g, key, &kv);
    if (st)
        return st;
    if (kv->type != TERN_GGUF_BOOL)
        return wrong_type(g, key, kv, "a bool");
    *out = kv->val[0] != 0;
    return TERN_OK;
}

tern_status tern_gguf_get_str(const tern_gguf *g, const char *key, struct tern_str *out) {
    const struct gguf_kv *kv;
    tern_status st = lookup(g, key, &kv);
    if (st)
        return st;
    if (kv->type != TERN_GGUF_STRING)
        return wrong_type(g, key, kv, "a string");
    out->ptr = (const char *)kv->val;
    out->len = kv->n;
    return TERN_OK;
}

tern_status tern_gguf_get_arr(const tern_gguf *g, const char *key, enum tern_gguf_vtype *elem_type,
                              uint64_t *n, const void **data) {
    const struct gguf_kv *kv;
    tern_status st = lookup(g, key, &kv);
    if (st)
        return st;
    if (kv->type != TERN_GGUF_ARRAY)
        return wrong_type(g, key, kv, "an array");
    if (elem_type)
        *elem_type = (enum tern_gguf_vtype)kv->elem_type;
    if (n)
        *n = kv->n;
    if (data)
        *data = kv->elem_type == TERN_GGUF_STRING ? NULL : (const void *)kv->val;
    return TERN_OK;
}

tern_status tern_gguf_get_arr_str(const tern_gguf *g, const char *key, uint64_t i, struct tern_str *out) {
    const struct gguf_kv *kv;
    tern_status st = lookup(g, key, &kv);
    if (st)
        return st;
    if (kv->type != TERN_GGUF_ARRAY || kv->elem_type != TERN_GGUF_STRING)
        return wrong_type(g, key, kv, "an array of strings");
    if (i >= kv->n) {
        tern_log_error("%s: key '%s': index %llu out of range (%llu strings)", g->path, key,
                       (unsigned long long)i, (unsigned long long)kv->n);
        return TERN_ERR_ARG;
    }
    const uint8_t *p = kv->val + kv->str_off[i];
    out->len = le64(p);
    out->ptr = (const char *)p + 8;
    return TERN_OK;
}
