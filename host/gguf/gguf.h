/* GGUF reader (v2, v3; mmap, fully validated) and writer. docs/formats.md#gguf-container.
 * The reader never trusts the file: every count, size and offset is checked (overflow included)
 * before use, and a failure logs one line naming the file and the fault. */
#ifndef TERN_GGUF_H
#define TERN_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../scheduler/status.h"

enum tern_gguf_vtype {
    TERN_GGUF_U8 = 0,
    TERN_GGUF_I8 = 1,
    TERN_GGUF_U16 = 2,
    TERN_GGUF_I16 = 3,
    TERN_GGUF_U32 = 4,
    TERN_GGUF_I32 = 5,
    TERN_GGUF_F32 = 6,
    TERN_GGUF_BOOL = 7,
    TERN_GGUF_STRING = 8,
    TERN_GGUF_ARRAY = 9,
    TERN_GGUF_U64 = 10,
    TERN_GGUF_I64 = 11,
    TERN_GGUF_F64 = 12,
    TERN_GGUF_VTYPE_COUNT
};

/* A string inside the mapping: not NUL-terminated. */
struct tern_str {
    const char *ptr;
    uint64_t len;
};

struct tern_gguf_tensor {
    const char *name; /* NUL-terminated copy */
    uint32_t type;    /* enum tern_type */
    int n_dims;       /* 1..4 */
    int64_t ne[4];    /* unused dims are 1; ne[0] is the row length */
    uint64_t offset;  /* from the start of the data section */
    uint64_t nbytes;
    const uint8_t *data; /* inside the mapping */
};

typedef struct tern_gguf tern_gguf;

/* Map and validate the file. On failure logs "PATH: fault" and returns TERN_ERR_IO (cannot open or
 * map), TERN_ERR_FORMAT (malformed) or TERN_ERR_UNSUPPORTED (v1, a type tern refuses). */
tern_status tern_gguf_create(const char *path, tern_gguf **out);
/* Same validation over a caller-owned buffer (used by the fuzz target); name appears in messages. */
tern_status tern_gguf_create_from_memory(const void *data, size_t size, const char *name, tern_gguf **out);
void tern_gguf_free(tern_gguf *g);
/* Fault the whole mapping in now (MADV_POPULATE_READ; where the kernel lacks it, MADV_WILLNEED
 * starts the reads): a session does this before its first token, so the page faults and disk reads
 * of the weights count as load time, not as the first prompt's. No-op for memory images. */
void tern_gguf_prefault(const tern_gguf *g);

const char *tern_gguf_path(const tern_gguf *g);
uint32_t tern_gguf_version(const tern_gguf *g);
uint32_t tern_gguf_alignment(const tern_gguf *g);
uint64_t tern_gguf_file_size(const tern_gguf *g);

/* Metadata */
int64_t tern_gguf_n_kv(const tern_gguf *g);
int64_t tern_gguf_find_key(const tern_gguf *g, const char *key); /* -1 when absent */
struct tern_str tern_gguf_key_name(const tern_gguf *g, int64_t idx);
enum tern_gguf_vtype tern_gguf_key_type(const tern_gguf *g, int64_t idx);

/* Typed getters by key. TERN_ERR_NOT_FOUND when absent (out untouched), TERN_ERR_FORMAT (with a
 * logged line naming the key) when the stored type cannot be represented in the requested one.
 * Integer getters accept any integer type whose value fits; get_f32 accepts f32, f64 and integers. */
tern_status tern_gguf_get_u32(const tern_gguf *g, const char *key, uint32_t *out);
tern_status tern_gguf_get_i64(const tern_gguf *g, const char *key, int64_t *out);
tern_status tern_gguf_get_f32(const tern_gguf *g, const char *key, float *out);
tern_status tern_gguf_get_bool(const tern_gguf *g, const char *key, bool *out);
tern_status tern_gguf_get_str(const tern_gguf *g, const char *key, struct tern_str *out);

/* Arrays: element type and count; for numeric arrays a pointer to the packed little-endian
 * elements in the mapping (unaligned: read with memcpy); NULL for string arrays. */
tern_status tern_gguf_get_arr(const tern_gguf *g, const char *key, enum tern_gguf_vtype *elem_type,
                              uint64_t *n, const void **data);
/* Element i of a string array (random access through an index built at open). */
tern_status tern_gguf_get_arr_str(const tern_gguf *g, const char *key, uint64_t i, struct tern_str *out);

/* Tensors */
int64_t tern_gguf_n_tensors(const tern_gguf *g);
const struct tern_gguf_tensor *tern_gguf_tensor(const tern_gguf *g, int64_t idx);
const struct tern_gguf_tensor *tern_gguf_find_tensor(const tern_gguf *g, const char *name);

/* Writer. Metadata values are copied; tensor data is referenced and must stay valid until
 * tern_gguf_writer_write returns. Keys and tensor names must be unique (TERN_ERR_ARG otherwise). */
typedef struct tern_gguf_writer tern_gguf_writer;

tern_status tern_gguf_writer_create(tern_gguf_writer **out);
void tern_gguf_writer_free(tern_gguf_writer *w);
/* default 32; must be a power of two; also stored as general.alignment when not 32 */
tern_status tern_gguf_writer_set_alignment(tern_gguf_writer *w, uint32_t alignment);
tern_status tern_gguf_writer_set_u32(tern_gguf_writer *w, const char *key, uint32_t v);
tern_status tern_gguf_writer_set_i32(tern_gguf_writer *w, const char *key, int32_t v);
tern_status tern_gguf_writer_set_u64(tern_gguf_writer *w, const char *key, uint64_t v);
tern_status tern_gguf_writer_set_f32(tern_gguf_writer *w, const char *key, float v);
tern_status tern_gguf_writer_set_bool(tern_gguf_writer *w, const char *key, bool v);
tern_status tern_gguf_writer_set_str(tern_gguf_writer *w, const char *key, const char *v);
/* numeric array: n elements of elem_type (not STRING/ARRAY), packed little-endian */
tern_status tern_gguf_writer_set_arr(tern_gguf_writer *w, const char *key, enum tern_gguf_vtype elem_type,
                                     const void *data, uint64_t n);
tern_status tern_gguf_writer_set_arr_str(tern_gguf_writer *w, const char *key, const char *const *strs,
                                         uint64_t n);
/* data must hold exactly the type's byte size for ne (checked). */
tern_status tern_gguf_writer_add_tensor(tern_gguf_writer *w, const char *name, uint32_t type, int n_dims,
                                        const int64_t *ne, const void *data, uint64_t nbytes);
/* A tensor whose data is produced at write time into dst (nbytes, exactly the type's size): the
 * writer holds one such tensor in memory at a time. A non-OK status (logged by fill) aborts the
 * write and leaves no file. */
typedef tern_status (*tern_gguf_fill_fn)(void *dst, uint64_t nbytes, void *user);
tern_status tern_gguf_writer_add_tensor_fill(tern_gguf_writer *w, const char *name, uint32_t type, int n_dims,
                                             const int64_t *ne, uint64_t nbytes, tern_gguf_fill_fn fill,
                                             void *user);
/* Write to path atomically (temporary file + rename): no partial file on failure. */
tern_status tern_gguf_writer_write(tern_gguf_writer *w, const char *path);

#endif
