/* GGUF reader and writer: round trips of every value type, arrays, v2 parsing, alignment, tensors
 * of several types, getter conversion rules, writer errors, the checked-in malformed corpus
 * (tests/data/malformed) and programmatic truncation and byte-flip mutation. Every failed open
 * must log exactly one error line. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "host/gguf/gguf.h"
#include "scheduler/log.h"
#include "scheduler/types.h"

/* ---- log capture */

static int n_errors;
static char last_error[1024];

static void count_log(enum tern_log_level level, const char *msg, void *user) {
    (void)user;
    if (level == TERN_LOG_ERROR) {
        n_errors++;
        snprintf(last_error, sizeof last_error, "%s", msg);
    }
}

static void log_reset(void) {
    n_errors = 0;
    last_error[0] = '\0';
}

/* ---- a byte builder for hand-made files */

struct bb {
    uint8_t *p;
    size_t n, cap;
};

static void bb_bytes(struct bb *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void bb_u8(struct bb *b, uint8_t v) {
    bb_bytes(b, &v, 1);
}
static void bb_u16(struct bb *b, uint16_t v) {
    for (int i = 0; i < 2; i++)
        bb_u8(b, (uint8_t)(v >> (8 * i)));
}
static void bb_u32(struct bb *b, uint32_t v) {
    for (int i = 0; i < 4; i++)
        bb_u8(b, (uint8_t)(v >> (8 * i)));
}
static void bb_u64(struct bb *b, uint64_t v) {
    for (int i = 0; i < 8; i++)
        bb_u8(b, (uint8_t)(v >> (8 * i)));
}
static void bb_str(struct bb *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_bytes(b, s, strlen(s));
}
static void bb_pad(struct bb *b, size_t align) {
    while (b->n % align)
        bb_u8(b, 0);
}
static void bb_key(struct bb *b, const char *key, uint32_t type) {
    bb_str(b, key);
    bb_u32(b, type);
}

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    CHECK_INT(n, fwrite(p, 1, n, f));
    fclose(f);
}

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(len > 0 ? (size_t)len : 1);
    *n = fread(p, 1, (size_t)len, f);
    fclose(f);
    return p;
}

static bool str_eq(struct tern_str s, const char *c) {
    return s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0;
}

/* Visits everything a successfully opened file exposes (for mutation tests: must not crash). */
static uint64_t walk(const tern_gguf *g) {
    uint64_t sum = 0;
    char key[512];
    for (int64_t i = 0; i < tern_gguf_n_kv(g); i++) {
        struct tern_str k = tern_gguf_key_name(g, i);
        if (k.len >= sizeof key)
            continue;
        memcpy(key, k.ptr, k.len);
        key[k.len] = '\0';
        uint32_t u;
        int64_t s;
        float f;
        bool b;
        struct tern_str str;
        enum tern_gguf_vtype et;
        uint64_t n;
        const void *data;
        tern_gguf_get_u32(g, key, &u);
        tern_gguf_get_i64(g, key, &s);
        tern_gguf_get_f32(g, key, &f);
        tern_gguf_get_bool(g, key, &b);
        if (tern_gguf_get_str(g, key, &str) == TERN_OK && str.len)
            sum += (uint8_t)str.ptr[str.len - 1];
        if (tern_gguf_get_arr(g, key, &et, &n, &data) == TERN_OK && et == TERN_GGUF_STRING)
            for (uint64_t j = 0; j < n; j++)
                if (tern_gguf_get_arr_str(g, key, j, &str) == TERN_OK && str.len)
                    sum += (uint8_t)str.ptr[0] + (uint8_t)str.ptr[str.len - 1];
    }
    for (int64_t i = 0; i < tern_gguf_n_tensors(g); i++) {
        const struct tern_gguf_tensor *t = tern_gguf_tensor(g, i);
        CHECK(tern_gguf_find_tensor(g, t->name) == t);
        if (t->nbytes)
            sum += t->data[0] + t->data[t->nbytes - 1];
    }
    return sum;
}

/* ---- round trips */

static tern_gguf *write_and_open(tern_gguf_writer *w, const char *name) {
    const char *path = test_tmp(name, 0);
    CHECK_STATUS(TERN_OK, tern_gguf_writer_write(w, path));
    tern_gguf_writer_free(w);
    tern_gguf *g = NULL;
    CHECK_STATUS(TERN_OK, tern_gguf_create(path, &g));
    return g;
}

static void roundtrip_scalars(void) {
    tern_gguf_writer *w;
    CHECK_STATUS(TERN_OK, tern_gguf_writer_create(&w));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_str(w, "general.architecture", "bitnet-b1.58"));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_u32(w, "a.u32", 4000000000u));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_i32(w, "a.i32", -7));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_u64(w, "a.u64", 1ULL << 40));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_f32(w, "a.f32", 1e-5f));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_bool(w, "a.true", true));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_bool(w, "a.false", false));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_str(w, "a.empty", ""));
    tern_gguf *g = write_and_open(w, "scalars.gguf");
    if (!g)
        return;
    CHECK_INT(3, tern_gguf_version(g));
    CHECK_INT(32, tern_gguf_alignment(g));
    CHECK_INT(8, tern_gguf_n_kv(g));
    CHECK_INT(0, tern_gguf_n_tensors(g));
    CHECK_INT(-1, tern_gguf_find_key(g, "general.alignment"));
    int64_t idx = tern_gguf_find_key(g, "a.i32");
    CHECK_INT(2, idx);
    CHECK(str_eq(tern_gguf_key_name(g, idx), "a.i32"));
    CHECK_INT(TERN_GGUF_I32, tern_gguf_key_type(g, idx));
    CHECK_INT(TERN_GGUF_VTYPE_COUNT, tern_gguf_key_type(g, 99));
    CHECK(tern_gguf_key_name(g, -1).ptr == NULL);
    struct tern_str s;
    CHECK_STATUS(TERN_OK, tern_gguf_get_str(g, "general.architecture", &s));
    CHECK(str_eq(s, "bitnet-b1.58"));
    CHECK_STATUS(TERN_OK, tern_gguf_get_str(g, "a.empty", &s));
    CHECK_INT(0, s.len);
    uint32_t u;
    CHECK_STATUS(TERN_OK, tern_gguf_get_u32(g, "a.u32", &u));
    CHECK_INT(4000000000u, u);
    int64_t i64;
    CHECK_STATUS(TERN_OK, tern_gguf_get_i64(g, "a.i32", &i64));
    CHECK_INT(-7, i64);
    CHECK_STATUS(TERN_OK, tern_gguf_get_i64(g, "a.u64", &i64));
    CHECK_INT(1LL << 40, i64);
    float f;
    CHECK_STATUS(TERN_OK, tern_gguf_get_f32(g, "a.f32", &f));
    CHECK(f == 1e-5f);
    bool b = false;
    CHECK_STATUS(TERN_OK, tern_gguf_get_bool(g, "a.true", &b));
    CHECK(b);
    CHECK_STATUS(TERN_OK, tern_gguf_get_bool(g, "a.false", &b));
    CHECK(!b);
    /* missing keys: NOT_FOUND, out untouched, nothing logged */
    log_reset();
    u = 123;
    CHECK_STATUS(TERN_ERR_NOT_FOUND, tern_gguf_get_u32(g, "missing", &u));
    CHECK_INT(123, u);
    CHECK_STATUS(TERN_ERR_NOT_FOUND, tern_gguf_get_str(g, "a.u3", &s));
    CHECK_STATUS(TERN_ERR_NOT_FOUND, tern_gguf_get_arr(g, "", NULL, NULL, NULL));
    CHECK_INT(-1, tern_gguf_find_key(g, "a.u32x"));
    CHECK_INT(0, n_errors);
    tern_gguf_free(g);
}

static void roundtrip_arrays(void) {
    tern_gguf_writer *w;
    CHECK_STATUS(TERN_OK, tern_gguf_writer_create(&w));
    static const uint8_t u8s[] = {1, 2, 255};
    static const int16_t i16s[] = {-1, 300};
    static const float f32s[] = {0.5f, -2.0f, 3.25f};
    static const double f64s[] = {1e300, -0.0};
    static const int64_t i64s[] = {INT64_MIN, INT64_MAX};
    static const uint8_t bools[] = {1, 0, 1};
    const char *strs[] = {"hello", "", "Ġworld", "a b"};
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_arr(w, "u8", TERN_GGUF_U8, u8s, 3));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_arr(w, "i16", TERN_GGUF_I16, i16s, 2));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_arr(w, "f32", TERN_GGUF_F32, f32s, 3));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_arr(w, "f64", TERN_GGUF_F64, f64s, 2));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_arr(w, "i64", TERN_GGUF_I64, i64s, 2));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_arr(w, "bool", TERN_GGUF_BOOL, bools, 3));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_arr(w, "empty", TERN_GGUF_U32, NULL, 0));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_arr_str(w, "strs", strs, 4));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_arr_str(w, "nostrs", strs, 0));
    log_reset();
    CHECK_STATUS(TERN_ERR_ARG, tern_gguf_writer_set_arr(w, "bad", TERN_GGUF_STRING, strs, 1));
    CHECK_STATUS(TERN_ERR_ARG, tern_gguf_writer_set_arr(w, "bad", TERN_GGUF_ARRAY, strs, 1));
    CHECK_INT(2, n_errors);
    tern_gguf *g = write_and_open(w, "arrays.gguf");
    if (!g)
        return;
    enum tern_gguf_vtype et;
    uint64_t n;
    const void *data;
    CHECK_STATUS(TERN_OK, tern_gguf_get_arr(g, "u8", &et, &n, &data));
    CHECK_INT(TERN_GGUF_U8, et);
    CHECK_INT(3, n);
    CHECK(memcmp(data, u8s, 3) == 0);
    CHECK_STATUS(TERN_OK, tern_gguf_get_arr(g, "i16", &et, &n, &data));
    CHECK_INT(TERN_GGUF_I16, et);
    int16_t i16;
    memcpy(&i16, (const char *)data + 2, 2);
    CHECK_INT(300, i16);
    CHECK_STATUS(TERN_OK, tern_gguf_get_arr(g, "f32", &et, &n, &data));
    CHECK(n == 3 && memcmp(data, f32s, sizeof f32s) == 0);
    CHECK_STATUS(TERN_OK, tern_gguf_get_arr(g, "f64", &et, &n, &data));
    CHECK(n == 2 && et == TERN_GGUF_F64 && memcmp(data, f64s, sizeof f64s) == 0);
    CHECK_STATUS(TERN_OK, tern_gguf_get_arr(g, "i64", &et, &n, &data));
    CHECK(n == 2 && et == TERN_GGUF_I64 && memcmp(data, i64s, sizeof i64s) == 0);
    CHECK_STATUS(TERN_OK, tern_gguf_get_arr(g, "bool", &et, &n, &data));
    CHECK(n == 3 && et == TERN_GGUF_BOOL && memcmp(data, bools, 3) == 0);
    CHECK_STATUS(TERN_OK, tern_gguf_get_arr(g, "empty", &et, &n, &data));
    CHECK(n == 0 && et == TERN_GGUF_U32);
    CHECK_STATUS(TERN_OK, tern_gguf_get_arr(g, "strs", &et, &n, &data));
    CHECK(n == 4 && et == TERN_GGUF_STRING && data == NULL);
    for (uint64_t i = 0; i < 4; i++) {
        struct tern_str s;
        CHECK_STATUS(TERN_OK, tern_gguf_get_arr_str(g, "strs", i, &s));
        CHECK(str_eq(s, strs[i]));
    }
    CHECK_STATUS(TERN_OK, tern_gguf_get_arr(g, "nostrs", &et, &n, &data));
    CHECK(n == 0 && et == TERN_GGUF_STRING);
    log_reset();
    struct tern_str s;
    CHECK_STATUS(TERN_ERR_ARG, tern_gguf_get_arr_str(g, "strs", 4, &s));
    CHECK_STATUS(TERN_ERR_FORMAT, tern_gguf_get_arr_str(g, "u8", 0, &s));
    CHECK_STATUS(TERN_ERR_FORMAT, tern_gguf_get_u32(g, "u8", &(uint32_t){0}));
    CHECK_STATUS(TERN_ERR_FORMAT, tern_gguf_get_str(g, "strs", &s));
    CHECK_INT(4, n_errors);
    tern_gguf_free(g);
}

/* A v2 file built by hand with every scalar type, for the getters' conversion rules. */
static struct bb scalar_file(uint32_t version) {
    struct bb b = {0};
    bb_bytes(&b, "GGUF", 4);
    bb_u32(&b, version);
    bb_u64(&b, 1);  /* tensors */
    bb_u64(&b, 14); /* keys */
    bb_key(&b, "u8", TERN_GGUF_U8), bb_u8(&b, 200);
    bb_key(&b, "i8", TERN_GGUF_I8), bb_u8(&b, 0xfe); /* -2 */
    bb_key(&b, "u16", TERN_GGUF_U16), bb_u16(&b, 65535);
    bb_key(&b, "i16", TERN_GGUF_I16), bb_u16(&b, 0x8000); /* -32768 */
    bb_key(&b, "u32", TERN_GGUF_U32), bb_u32(&b, 7);
    bb_key(&b, "i32", TERN_GGUF_I32), bb_u32(&b, 0xffffffffu); /* -1 */
    bb_key(&b, "u64big", TERN_GGUF_U64), bb_u64(&b, 1ULL << 63);
    bb_key(&b, "u64", TERN_GGUF_U64), bb_u64(&b, 1ULL << 32);
    bb_key(&b, "i64", TERN_GGUF_I64), bb_u64(&b, (uint64_t)INT64_MIN);
    bb_key(&b, "f64", TERN_GGUF_F64);
    double d = 0.25;
    uint64_t bits;
    memcpy(&bits, &d, 8);
    bb_u64(&b, bits);
    bb_key(&b, "f64huge", TERN_GGUF_F64);
    d = 1e300;
    memcpy(&bits, &d, 8);
    bb_u64(&b, bits);
    bb_key(&b, "bool", TERN_GGUF_BOOL), bb_u8(&b, 1);
    bb_key(&b, "str", TERN_GGUF_STRING), bb_str(&b, "x");
    bb_key(&b, "f32", TERN_GGUF_F32), bb_u32(&b, 0x3f800000u); /* 1.0 */
    bb_str(&b, "t"), bb_u32(&b, 1), bb_u64(&b, 4), bb_u32(&b, TERN_TYPE_F32), bb_u64(&b, 0);
    bb_pad(&b, 32);
    for (uint32_t i = 0; i < 4; i++) {
        float f = (float)i + 0.5f;
        bb_bytes(&b, &f, 4);
    }
    return b;
}

static void v2_file(void) {
    struct bb b = scalar_file(2);
    const char *path = test_tmp("v2.gguf", 0);
    write_file(path, b.p, b.n);
    tern_gguf *g = NULL;
    CHECK_STATUS(TERN_OK, tern_gguf_create(path, &g));
    if (g) {
        CHECK_INT(2, tern_gguf_version(g));
        CHECK_INT(14, tern_gguf_n_kv(g));
        CHECK_INT(b.n, tern_gguf_file_size(g));
        CHECK(strcmp(tern_gguf_path(g), path) == 0);
        const struct tern_gguf_tensor *t = tern_gguf_find_tensor(g, "t");
        CHECK(t != NULL);
        if (t) {
            CHECK_INT(16, t->nbytes);
            CHECK_INT(1, t->n_dims);
            CHECK_INT(4, t->ne[0]);
            CHECK_INT(1, t->ne[3]);
            float f;
            memcpy(&f, t->data + 12, 4);
            CHECK(f == 3.5f);
        }
        tern_gguf_free(g);
    }
    free(b.p);
}

static void getter_conversions(void) {
    struct bb b = scalar_file(3);
    tern_gguf *g = NULL;
    CHECK_STATUS(TERN_OK, tern_gguf_create_from_memory(b.p, b.n, "scalars", &g));
    if (!g) {
        free(b.p);
        return;
    }
    CHECK(tern_gguf_tensor(g, 0)->data + 16 == b.p + b.n); /* a view of the caller's buffer */
    uint32_t u;
    int64_t s;
    float f;
    bool bo;
    struct tern_str str;
    CHECK_STATUS(TERN_OK, tern_gguf_get_u32(g, "u8", &u));
    CHECK_INT(200, u);
    CHECK_STATUS(TERN_OK, tern_gguf_get_u32(g, "u16", &u));
    CHECK_INT(65535, u);
    CHECK_STATUS(TERN_OK, tern_gguf_get_i64(g, "i8", &s));
    CHECK_INT(-2, s);
    CHECK_STATUS(TERN_OK, tern_gguf_get_i64(g, "i16", &s));
    CHECK_INT(-32768, s);
    CHECK_STATUS(TERN_OK, tern_gguf_get_i64(g, "i32", &s));
    CHECK_INT(-1, s);
    CHECK_STATUS(TERN_OK, tern_gguf_get_i64(g, "i64", &s));
    CHECK(s == INT64_MIN);
    CHECK_STATUS(TERN_OK, tern_gguf_get_i64(g, "u64", &s));
    CHECK_INT(1LL << 32, s);
    CHECK_STATUS(TERN_OK, tern_gguf_get_f32(g, "u8", &f));
    CHECK(f == 200.0f);
    CHECK_STATUS(TERN_OK, tern_gguf_get_f32(g, "i32", &f));
    CHECK(f == -1.0f);
    CHECK_STATUS(TERN_OK, tern_gguf_get_f32(g, "f64", &f));
    CHECK(f == 0.25f);
    CHECK_STATUS(TERN_OK, tern_gguf_get_f32(g, "f32", &f));
    CHECK(f == 1.0f);
    CHECK_STATUS(TERN_OK, tern_gguf_get_bool(g, "bool", &bo));
    CHECK(bo);
    /* each refusal logs one line naming the key; out stays untouched */
    static const struct {
        int getter; /* 0 u32, 1 i64, 2 f32, 3 bool, 4 str */
        const char *key;
    } bad[] = {{0, "i8"},   {0, "i32"},    {0, "u64"}, {0, "u64big"}, {0, "f32"},     {0, "str"},
               {0, "bool"}, {1, "u64big"}, {1, "f64"}, {1, "bool"},   {2, "f64huge"}, {2, "str"},
               {2, "bool"}, {3, "u8"},     {3, "str"}, {4, "u32"},    {4, "bool"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        log_reset();
        tern_status st = TERN_OK;
        u = 42;
        switch (bad[i].getter) {
        case 0:
            st = tern_gguf_get_u32(g, bad[i].key, &u);
            break;
        case 1:
            st = tern_gguf_get_i64(g, bad[i].key, &s);
            break;
        case 2:
            st = tern_gguf_get_f32(g, bad[i].key, &f);
            break;
        case 3:
            st = tern_gguf_get_bool(g, bad[i].key, &bo);
            break;
        default:
            st = tern_gguf_get_str(g, bad[i].key, &str);
            break;
        }
        CHECK_STATUS(TERN_ERR_FORMAT, st);
        CHECK_INT(1, n_errors);
        CHECK(strstr(last_error, bad[i].key) != NULL);
        CHECK_INT(42, u);
    }
    tern_gguf_free(g);
    free(b.p);
}

static void alignment_64(void) {
    tern_gguf_writer *w;
    CHECK_STATUS(TERN_OK, tern_gguf_writer_create(&w));
    CHECK_STATUS(TERN_ERR_ARG, tern_gguf_writer_set_alignment(w, 48));
    CHECK_STATUS(TERN_ERR_ARG, tern_gguf_writer_set_alignment(w, 0));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_alignment(w, 64));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_str(w, "general.name", "x"));
    float a[3] = {1, 2, 3}, b[70];
    for (int i = 0; i < 70; i++)
        b[i] = (float)i * 0.125f;
    CHECK_STATUS(TERN_OK, tern_gguf_writer_add_tensor(w, "a", TERN_TYPE_F32, 1, (int64_t[]){3}, a, sizeof a));
    CHECK_STATUS(TERN_OK,
                 tern_gguf_writer_add_tensor(w, "b", TERN_TYPE_F32, 2, (int64_t[]){7, 10}, b, sizeof b));
    tern_gguf *g = write_and_open(w, "align64.gguf");
    if (!g)
        return;
    CHECK_INT(64, tern_gguf_alignment(g));
    uint32_t al = 0;
    CHECK_STATUS(TERN_OK, tern_gguf_get_u32(g, "general.alignment", &al));
    CHECK_INT(64, al);
    CHECK_INT(TERN_GGUF_U32, tern_gguf_key_type(g, tern_gguf_find_key(g, "general.alignment")));
    const struct tern_gguf_tensor *ta = tern_gguf_find_tensor(g, "a"), *tb = tern_gguf_find_tensor(g, "b");
    CHECK(ta && tb);
    if (ta && tb) {
        CHECK_INT(0, ta->offset);
        CHECK_INT(64, tb->offset);
        CHECK_INT(0, (tb->data - ta->data) % 64);
        CHECK(memcmp(ta->data, a, sizeof a) == 0);
        CHECK(memcmp(tb->data, b, sizeof b) == 0);
        CHECK_INT(2, tb->n_dims);
        CHECK_INT(10, tb->ne[1]);
        CHECK_INT(1, tb->ne[2]);
    }
    tern_gguf_free(g);
}

static void tensor_types(void) {
    static const struct {
        uint32_t type;
        int n_dims;
        int64_t ne[4];
    } specs[] = {
        {TERN_TYPE_F32, 2, {3, 2, 1, 1}},     {TERN_TYPE_F16, 1, {5, 1, 1, 1}},
        {TERN_TYPE_BF16, 3, {2, 3, 4, 1}},    {TERN_TYPE_Q8_0, 2, {64, 2, 1, 1}},
        {TERN_TYPE_Q4_K, 1, {256, 1, 1, 1}},  {TERN_TYPE_Q6_K, 4, {256, 1, 1, 2}},
        {TERN_TYPE_TQ1_0, 2, {256, 3, 1, 1}}, {TERN_TYPE_TQ2_0, 2, {512, 2, 1, 1}},
        {TERN_TYPE_I2_S, 2, {128, 3, 1, 1}},  {TERN_TYPE_F32, 1, {0, 1, 1, 1}},
    };
    enum { N = sizeof specs / sizeof specs[0] };
    uint8_t *bufs[N];
    uint64_t sizes[N];
    uint64_t rng = 99;
    tern_gguf_writer *w;
    CHECK_STATUS(TERN_OK, tern_gguf_writer_create(&w));
    for (int i = 0; i < N; i++) {
        CHECK_STATUS(TERN_OK, tern_type_nbytes(specs[i].type, specs[i].n_dims, specs[i].ne, &sizes[i]));
        bufs[i] = malloc(sizes[i] + 1);
        for (uint64_t j = 0; j < sizes[i]; j++)
            bufs[i][j] = (uint8_t)test_rand_u64(&rng);
        char name[32];
        snprintf(name, sizeof name, "blk.%d.%s.weight", i, tern_type_name(specs[i].type));
        CHECK_STATUS(TERN_OK, tern_gguf_writer_add_tensor(w, name, specs[i].type, specs[i].n_dims,
                                                          specs[i].ne, bufs[i], sizes[i]));
    }
    tern_gguf *g = write_and_open(w, "types.gguf");
    if (g) {
        CHECK_INT(N, tern_gguf_n_tensors(g));
        for (int i = 0; i < N; i++) {
            const struct tern_gguf_tensor *t = tern_gguf_tensor(g, i);
            char name[32];
            snprintf(name, sizeof name, "blk.%d.%s.weight", i, tern_type_name(specs[i].type));
            CHECK(tern_gguf_find_tensor(g, name) == t);
            CHECK(strcmp(t->name, name) == 0);
            CHECK_INT(specs[i].type, t->type);
            CHECK_INT(specs[i].n_dims, t->n_dims);
            for (int d = 0; d < 4; d++)
                CHECK_INT(specs[i].ne[d], t->ne[d]);
            CHECK_INT(sizes[i], t->nbytes);
            CHECK_INT(0, t->offset % 32);
            CHECK(sizes[i] == 0 || memcmp(t->data, bufs[i], sizes[i]) == 0);
        }
        CHECK(tern_gguf_find_tensor(g, "blk.0.F32") == NULL);
        CHECK(tern_gguf_find_tensor(g, "") == NULL);
        CHECK(tern_gguf_tensor(g, N) == NULL);
        CHECK(tern_gguf_tensor(g, -1) == NULL);
        tern_gguf_free(g);
    }
    for (int i = 0; i < N; i++)
        free(bufs[i]);
}

static void many_tensors(void) {
    /* ~ the official file's 332 tensors and more: lookup through the hash index */
    enum { N = 1000 };
    static float vals[N];
    tern_gguf_writer *w;
    CHECK_STATUS(TERN_OK, tern_gguf_writer_create(&w));
    for (int i = 0; i < N; i++) {
        char name[48];
        vals[i] = (float)i;
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", i);
        CHECK_STATUS(TERN_OK,
                     tern_gguf_writer_add_tensor(w, name, TERN_TYPE_F32, 1, (int64_t[]){1}, &vals[i], 4));
    }
    tern_gguf *g = write_and_open(w, "many.gguf");
    if (!g)
        return;
    for (int i = 0; i < N; i++) {
        char name[48];
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", i);
        const struct tern_gguf_tensor *t = tern_gguf_find_tensor(g, name);
        CHECK(t != NULL);
        float f = -1;
        if (t)
            memcpy(&f, t->data, 4);
        CHECK(f == (float)i);
    }
    tern_gguf_free(g);
}

static char *dup_str(struct tern_str s) {
    char *c = malloc(s.len + 1);
    memcpy(c, s.ptr, s.len);
    c[s.len] = '\0';
    return c;
}

/* Copies every key and tensor of g through the writer (the value types the reference files use). */
static tern_status rewrite(const tern_gguf *g, const char *path) {
    tern_gguf_writer *w;
    tern_status st = tern_gguf_writer_create(&w);
    for (int64_t i = 0; i < tern_gguf_n_kv(g) && !st; i++) {
        char *key = dup_str(tern_gguf_key_name(g, i));
        uint32_t u;
        float f;
        bool b;
        struct tern_str s;
        enum tern_gguf_vtype et;
        uint64_t n;
        const void *data;
        switch (tern_gguf_key_type(g, i)) {
        case TERN_GGUF_U32:
            if (!(st = tern_gguf_get_u32(g, key, &u)))
                st = tern_gguf_writer_set_u32(w, key, u);
            break;
        case TERN_GGUF_F32:
            if (!(st = tern_gguf_get_f32(g, key, &f)))
                st = tern_gguf_writer_set_f32(w, key, f);
            break;
        case TERN_GGUF_BOOL:
            if (!(st = tern_gguf_get_bool(g, key, &b)))
                st = tern_gguf_writer_set_bool(w, key, b);
            break;
        case TERN_GGUF_STRING:
            if (!(st = tern_gguf_get_str(g, key, &s))) {
                char *v = dup_str(s);
                st = tern_gguf_writer_set_str(w, key, v);
                free(v);
            }
            break;
        case TERN_GGUF_ARRAY:
            if ((st = tern_gguf_get_arr(g, key, &et, &n, &data)))
                break;
            if (et != TERN_GGUF_STRING) {
                st = tern_gguf_writer_set_arr(w, key, et, data, n);
                break;
            }
            char **strs = malloc((n ? n : 1) * sizeof *strs);
            for (uint64_t j = 0; j < n; j++)
                strs[j] = tern_gguf_get_arr_str(g, key, j, &s) ? NULL : dup_str(s);
            st = tern_gguf_writer_set_arr_str(w, key, (const char *const *)strs, n);
            for (uint64_t j = 0; j < n; j++)
                free(strs[j]);
            free(strs);
            break;
        default:
            st = TERN_ERR_UNSUPPORTED;
            break;
        }
        free(key);
    }
    for (int64_t i = 0; i < tern_gguf_n_tensors(g) && !st; i++) {
        const struct tern_gguf_tensor *t = tern_gguf_tensor(g, i);
        st = tern_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
    }
    if (!st)
        st = tern_gguf_writer_write(w, path);
    tern_gguf_writer_free(w);
    return st;
}

/* The conformance vectors written by gguf-py and the reference quantizers open, and survive a
 * rewrite through our writer with every key and tensor intact. */
static void reference_files(void) {
    static const struct {
        const char *file;
        uint32_t ternary_type;
    } files[] = {{"vectors/mini-b158-f16.gguf", TERN_TYPE_F16},
                 {"vectors/mini-b158-i2s.gguf", TERN_TYPE_I2_S},
                 {"vectors/mini-bitnet-f16.gguf", TERN_TYPE_F16},
                 {"vectors/mini-bitnet-tq1.gguf", TERN_TYPE_TQ1_0},
                 {"vectors/mini-bitnet-tq2.gguf", TERN_TYPE_TQ2_0}};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        tern_gguf *g = NULL, *h = NULL;
        CHECK_STATUS(TERN_OK, tern_gguf_create(test_data(files[f].file, 0), &g));
        if (!g)
            continue;
        CHECK_INT(3, tern_gguf_version(g));
        CHECK_INT(24, tern_gguf_n_tensors(g));
        int n_tern = 0;
        for (int64_t i = 0; i < tern_gguf_n_tensors(g); i++)
            n_tern += tern_gguf_tensor(g, i)->type == files[f].ternary_type;
        CHECK(n_tern >= 14);
        const struct tern_gguf_tensor *q = tern_gguf_find_tensor(g, "blk.1.attn_q.weight");
        CHECK(q && q->type == files[f].ternary_type && q->ne[0] == 256 && q->ne[1] == 256);
        uint64_t n_tok = 0;
        CHECK_STATUS(TERN_OK, tern_gguf_get_arr(g, "tokenizer.ggml.tokens", NULL, &n_tok, NULL));
        CHECK(n_tok > 0);
        const char *out = test_tmp("rewrite.gguf", 1);
        CHECK_STATUS(TERN_OK, rewrite(g, out));
        CHECK_STATUS(TERN_OK, tern_gguf_create(out, &h));
        if (h) {
            CHECK_INT(tern_gguf_n_kv(g), tern_gguf_n_kv(h));
            CHECK_INT(tern_gguf_n_tensors(g), tern_gguf_n_tensors(h));
            for (uint64_t j = 0; j < n_tok; j += 1 + n_tok / 50) {
                struct tern_str a = {0}, b = {0};
                CHECK_STATUS(TERN_OK, tern_gguf_get_arr_str(g, "tokenizer.ggml.tokens", j, &a));
                CHECK_STATUS(TERN_OK, tern_gguf_get_arr_str(h, "tokenizer.ggml.tokens", j, &b));
                CHECK(a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0);
            }
            for (int64_t i = 0; i < tern_gguf_n_tensors(g); i++) {
                const struct tern_gguf_tensor *a = tern_gguf_tensor(g, i), *b = tern_gguf_tensor(h, i);
                CHECK(strcmp(a->name, b->name) == 0 && a->type == b->type && a->nbytes == b->nbytes);
                CHECK(memcmp(a->ne, b->ne, sizeof a->ne) == 0);
                CHECK(memcmp(a->data, b->data, a->nbytes) == 0);
            }
            tern_gguf_free(h);
        }
        tern_gguf_free(g);
    }
}

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void writer_errors(void) {
    tern_gguf_writer *w;
    float x[4] = {0};
    CHECK_STATUS(TERN_OK, tern_gguf_writer_create(&w));
    log_reset();
    CHECK_STATUS(TERN_OK, tern_gguf_writer_set_u32(w, "k", 1));
    CHECK_STATUS(TERN_ERR_ARG, tern_gguf_writer_set_str(w, "k", "dup"));
    CHECK_STATUS(TERN_ERR_ARG, tern_gguf_writer_set_u32(w, "", 1));
    CHECK_STATUS(TERN_ERR_ARG, tern_gguf_writer_set_u64(w, "general.alignment", 64));
    CHECK_STATUS(TERN_ERR_ARG, tern_gguf_writer_set_u32(w, "general.alignment", 3));
    CHECK_STATUS(TERN_OK, tern_gguf_writer_add_tensor(w, "t", TERN_TYPE_F32, 1, (int64_t[]){4}, x, 16));
    CHECK_STATUS(TERN_ERR_ARG, tern_gguf_writer_add_tensor(w, "t", TERN_TYPE_F32, 1, (int64_t[]){4}, x, 16));
    CHECK_STATUS(TERN_ERR_ARG, tern_gguf_writer_add_tensor(w, "u", TERN_TYPE_F32, 1, (int64_t[]){4}, x, 12));
    CHECK_STATUS(TERN_ERR_ARG, tern_gguf_writer_add_tensor(w, "u", TERN_TYPE_Q8_0, 1, (int64_t[]){4}, x, 16));
    CHECK_STATUS(TERN_ERR_ARG,
                 tern_gguf_writer_add_tensor(w, "u", TERN_TYPE_F32, 5, (int64_t[]){1, 1, 1, 1, 4}, x, 16));
    CHECK_STATUS(TERN_ERR_ARG, tern_gguf_writer_add_tensor(w, "u", TERN_TYPE_F32, 1, (int64_t[]){-4}, x, 16));
    CHECK_STATUS(TERN_ERR_UNSUPPORTED,
                 tern_gguf_writer_add_tensor(w, "u", TERN_TYPE_TL2, 1, (int64_t[]){4}, x, 4));
    CHECK_STATUS(TERN_ERR_UNSUPPORTED, tern_gguf_writer_add_tensor(w, "u", 99, 1, (int64_t[]){4}, x, 4));
    CHECK_INT(11, n_errors);
    /* a failed write leaves neither the output nor the temporary file */
    char tmp[4200];
    const char *nodir = test_tmp("no/such/dir/out.gguf", 0);
    CHECK_STATUS(TERN_ERR_IO, tern_gguf_writer_write(w, nodir));
    CHECK(!exists(nodir));
    const char *dir = test_tmp("out_is_a_dir.gguf", 1);
    mkdir(dir, 0755);
    log_reset();
    CHECK_STATUS(TERN_ERR_IO, tern_gguf_writer_write(w, dir)); /* rename onto a directory fails */
    CHECK_INT(1, n_errors);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dir, (long)getpid());
    CHECK(!exists(tmp));
    /* and a good write leaves only the output */
    const char *good = test_tmp("good.gguf", 2);
    CHECK_STATUS(TERN_OK, tern_gguf_writer_write(w, good));
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", good, (long)getpid());
    CHECK(exists(good) && !exists(tmp));
    tern_gguf_writer_free(w);
    tern_gguf_writer_free(NULL);
    tern_gguf_free(NULL);
}

static void open_errors(void) {
    tern_gguf *g = (tern_gguf *)&g;
    log_reset();
    CHECK_STATUS(TERN_ERR_IO, tern_gguf_create(test_tmp("does-not-exist.gguf", 0), &g));
    CHECK(g == NULL);
    CHECK_INT(1, n_errors);
    CHECK(strstr(last_error, "does-not-exist.gguf") != NULL);
    log_reset();
    CHECK_STATUS(TERN_ERR_IO, tern_gguf_create(test_data("malformed", 0), &g));
    CHECK_INT(1, n_errors);
    log_reset();
    CHECK_STATUS(TERN_ERR_FORMAT, tern_gguf_create_from_memory(NULL, 0, NULL, &g));
    CHECK_INT(1, n_errors);
}

/* ---- malformed inputs */

static void malformed_corpus(void) {
    DIR *d = opendir(test_data("malformed", 0));
    CHECK(d != NULL);
    if (!d)
        return;
    int n_files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".gguf") != 0)
            continue;
        char rel[300];
        snprintf(rel, sizeof rel, "malformed/%s", e->d_name);
        tern_gguf *g = NULL;
        log_reset();
        tern_status st = tern_gguf_create(test_data(rel, 1), &g);
        if (st == TERN_OK) {
            harness_fail(__FILE__, __LINE__, "%s: opened without error", e->d_name);
            tern_gguf_free(g);
            continue;
        }
        n_files++;
        CHECK(st == TERN_ERR_FORMAT || st == TERN_ERR_UNSUPPORTED);
        CHECK(g == NULL);
        if (n_errors != 1)
            harness_fail(__FILE__, __LINE__, "%s: %d error lines logged, expected 1", e->d_name, n_errors);
        if (!strstr(last_error, e->d_name))
            harness_fail(__FILE__, __LINE__, "%s: message does not name the file: %s", e->d_name, last_error);
        bool unsupported = !strcmp(e->d_name, "v1.gguf") || !strcmp(e->d_name, "big_endian.gguf") ||
                           !strncmp(e->d_name, "tl", 2) || !strcmp(e->d_name, "i8s_type.gguf");
        CHECK_STATUS(unsupported ? TERN_ERR_UNSUPPORTED : TERN_ERR_FORMAT, st);
        if (!strcmp(e->d_name, "v1.gguf"))
            CHECK(strstr(last_error, "GGUF v1 is not supported") != NULL);
        if (!strcmp(e->d_name, "tl2_type.gguf"))
            CHECK(strstr(last_error, "i2_s") != NULL);
        if (!strcmp(e->d_name, "dup_key.gguf"))
            CHECK(strstr(last_error, "general.name") != NULL);
    }
    closedir(d);
    if (n_files < 25)
        harness_fail(__FILE__, __LINE__, "only %d malformed files found", n_files);
    fprintf(stderr, "     %d malformed files rejected\n", n_files);
}

/* A small valid file whose last tensor ends exactly at the end of the file (no trailing padding),
 * so that every truncation must be detected. */
static uint8_t *small_valid_file(size_t *n) {
    tern_gguf_writer *w;
    if (tern_gguf_writer_create(&w))
        return NULL;
    static uint16_t h[16];
    static float f[8];
    const char *toks[] = {"a", "", "<|end|>"};
    for (int i = 0; i < 16; i++)
        h[i] = (uint16_t)(0x3c00 + i);
    tern_gguf_writer_set_str(w, "general.architecture", "bitnet");
    tern_gguf_writer_set_u32(w, "bitnet.block_count", 2);
    tern_gguf_writer_set_f32(w, "bitnet.rope.freq_base", 10000.0f);
    tern_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    tern_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    tern_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", TERN_GGUF_I32, (int32_t[]){1, 3, 3}, 3);
    tern_gguf_writer_add_tensor(w, "token_embd.weight", TERN_TYPE_F16, 2, (int64_t[]){4, 3}, h, 24);
    tern_gguf_writer_add_tensor(w, "output_norm.weight", TERN_TYPE_F32, 1, (int64_t[]){8}, f, 32);
    const char *path = test_tmp("small.gguf", 3);
    tern_status st = tern_gguf_writer_write(w, path);
    tern_gguf_writer_free(w);
    return st ? NULL : read_file(path, n);
}

static void truncation(void) {
    size_t n = 0;
    uint8_t *full = small_valid_file(&n);
    CHECK(full != NULL);
    if (!full)
        return;
    tern_gguf *g = NULL;
    CHECK_STATUS(TERN_OK, tern_gguf_create_from_memory(full, n, "small", &g));
    tern_gguf_free(g);
    int bad = 0;
    for (size_t len = 0; len < n; len++) {
        /* an exact-size heap copy so the sanitizers see any read past the end */
        uint8_t *cut = malloc(len ? len : 1);
        memcpy(cut, full, len);
        g = NULL;
        log_reset();
        tern_status st = tern_gguf_create_from_memory(cut, len, "cut", &g);
        if (st != TERN_ERR_FORMAT || n_errors != 1) {
            if (bad++ < 5)
                harness_fail(__FILE__, __LINE__, "truncated at %zu/%zu: %s, %d error lines", len, n,
                             tern_status_name(st), n_errors);
            tern_gguf_free(g);
        }
        free(cut);
    }
    /* through the file path too, at a few lengths */
    const char *path = test_tmp("trunc.gguf", 0);
    for (size_t len = 0; len < n; len += n / 7) {
        write_file(path, full, len);
        log_reset();
        CHECK_STATUS(TERN_ERR_FORMAT, tern_gguf_create(path, &g));
        CHECK_INT(1, n_errors);
    }
    free(full);
}

static void byte_flips(void) {
    size_t n = 0;
    uint8_t *full = small_valid_file(&n);
    CHECK(full != NULL);
    if (!full)
        return;
    uint64_t rng = 12345;
    int n_ok = 0, n_fail = 0;
    static const uint8_t xors[] = {0x01, 0x80, 0xff, 0x10};
    uint8_t *m = malloc(n);
    for (size_t pos = 0; pos < n; pos++) {
        for (size_t k = 0; k < sizeof xors + 2; k++) {
            memcpy(m, full, n);
            if (k < sizeof xors)
                m[pos] ^= xors[k];
            else /* a second random byte elsewhere too */
                m[pos] = (uint8_t)test_rand_u64(&rng),
                m[test_rand_u64(&rng) % n] = (uint8_t)test_rand_u64(&rng);
            tern_gguf *g = NULL;
            log_reset();
            tern_status st = tern_gguf_create_from_memory(m, n, "flip", &g);
            if (st == TERN_OK) {
                n_ok++;
                CHECK_INT(0, n_errors);
                walk(g);
                tern_gguf_free(g);
            } else {
                n_fail++;
                if (n_errors != 1)
                    harness_fail(__FILE__, __LINE__, "flip at %zu: %d error lines", pos, n_errors);
            }
        }
    }
    fprintf(stderr, "     %d mutants opened, %d rejected\n", n_ok, n_fail);
    free(m);
    free(full);
}

int main(void) {
    tern_log_set_callback(count_log, NULL);
    RUN(roundtrip_scalars);
    RUN(roundtrip_arrays);
    RUN(v2_file);
    RUN(getter_conversions);
    RUN(alignment_64);
    RUN(tensor_types);
    RUN(many_tensors);
    RUN(reference_files);
    RUN(writer_errors);
    RUN(open_errors);
    RUN(malformed_corpus);
    RUN(truncation);
    RUN(byte_flips);
    return harness_finish();
}
