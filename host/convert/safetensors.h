/* Hugging Face safetensors checkpoints (docs/formats.md#hugging-face-checkpoints): model.safetensors, or
 * shards listed by model.safetensors.index.json. Each file: u64 little-endian header length, a JSON header
 * (tensor name -> dtype, shape, data_offsets relative to the data that follows), the raw data. Every size and
 * offset is checked when the checkpoint is opened (inside its file, matching dtype x shape, no overlap); data
 * is read tensor by tensor, so memory stays bounded by the largest tensor. */
#ifndef TERN_CONVERT_SAFETENSORS_H
#define TERN_CONVERT_SAFETENSORS_H

#include <stdint.h>

#include "../../scheduler/status.h"

enum tern_st_dtype {
    TERN_ST_F32 = 0,
    TERN_ST_F16 = 1,
    TERN_ST_BF16 = 2,
    TERN_ST_U8 = 3,
    TERN_ST_I8 = 4,
    TERN_ST_OTHER = 5, /* any other dtype: listed, refused where a tensor is used */
    TERN_ST_DTYPE_COUNT
};

struct tern_st_tensor {
    char *name;
    char dtype_name[16]; /* as written in the header */
    enum tern_st_dtype dtype;
    int n_dims;
    int64_t shape[8]; /* row-major, outermost first (as in PyTorch) */
    uint64_t n_elem;
    int file;        /* index into the checkpoint's files */
    uint64_t offset; /* absolute byte offset in that file */
    uint64_t nbytes;
};

typedef struct tern_safetensors tern_safetensors;

/* Open the checkpoint of a Hugging Face model folder. One logged line naming the file (and
 * tensor) on any fault: TERN_ERR_IO for a missing or unreadable file (a missing shard included),
 * TERN_ERR_FORMAT for a malformed or truncated one. */
tern_status tern_safetensors_create(const char *dir, tern_safetensors **out);
void tern_safetensors_free(tern_safetensors *st);

/* The tensor of that name, NULL when absent. */
const struct tern_st_tensor *tern_safetensors_find(const tern_safetensors *st, const char *name);
/* Read a tensor's nbytes of raw data into dst. */
tern_status tern_safetensors_read(const tern_safetensors *st, const struct tern_st_tensor *t, void *dst);
/* Read bytes [offset, offset + nbytes) of a tensor's data into dst. */
tern_status tern_safetensors_read_part(const tern_safetensors *st, const struct tern_st_tensor *t,
                                       uint64_t offset, uint64_t nbytes, void *dst);
/* Path of file i (for messages). */
const char *tern_safetensors_file(const tern_safetensors *st, int i);

#endif
