/* Generator of the malformed GGUF corpus in tests/data/malformed: one small file per fault the
 * reader must reject, each named for its fault. Standalone (no tern library): build and run by
 * hand or through tests/fuzz.cmake (target make_malformed), then check the files in:
 *   cc -std=c11 -o /tmp/make_malformed tests/fuzz/make_malformed.c
 *   /tmp/make_malformed tests/data/malformed */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_U8 = 0, T_U32 = 4, T_STRING = 8, T_ARRAY = 9, T_U64 = 10 };
enum { F32 = 0, Q8_0 = 8, I2_S = 36, I8_S = 37, TL1 = 38, TL2 = 39 };

struct bb {
    uint8_t p[4096];
    size_t n;
};

static const char *out_dir;
static int n_written;

static void bytes(struct bb *b, const void *src, size_t n) {
    if (b->n + n > sizeof b->p) {
        fprintf(stderr, "make_malformed: buffer overflow\n");
        exit(1);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void u8(struct bb *b, uint8_t v) {
    bytes(b, &v, 1);
}
static void u32(struct bb *b, uint32_t v) {
    for (int i = 0; i < 4; i++)
        u8(b, (uint8_t)(v >> (8 * i)));
}
static void u64(struct bb *b, uint64_t v) {
    for (int i = 0; i < 8; i++)
        u8(b, (uint8_t)(v >> (8 * i)));
}
static void str(struct bb *b, const char *s) {
    u64(b, strlen(s));
    bytes(b, s, strlen(s));
}
static void pad(struct bb *b) {
    while (b->n % 32)
        u8(b, 0);
}
static void zeros(struct bb *b, size_t n) {
    while (n--)
        u8(b, 0);
}
static void header(struct bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b->n = 0;
    bytes(b, "GGUF", 4);
    u32(b, version);
    u64(b, n_tensors);
    u64(b, n_kv);
}
static void kv_str(struct bb *b, const char *key, const char *v) {
    str(b, key);
    u32(b, T_STRING);
    str(b, v);
}
static void kv_u32(struct bb *b, const char *key, uint32_t v) {
    str(b, key);
    u32(b, T_U32);
    u32(b, v);
}
/* tensor info with n_dims dims from ne */
static void tinfo(struct bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                  uint64_t off) {
    str(b, name);
    u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++)
        u64(b, ne[i]);
    u32(b, type);
    u64(b, off);
}

static void save(const struct bb *b, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.gguf", out_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b->p, 1, b->n, f) != b->n || fclose(f) != 0) {
        fprintf(stderr, "make_malformed: cannot write %s\n", path);
        exit(1);
    }
    n_written++;
}

/* A valid file with one F32 [8] tensor; variants below change one thing. */
static void valid_prefix(struct bb *b, uint64_t n_tensors, uint64_t n_kv) {
    header(b, 3, n_tensors, n_kv);
    kv_str(b, "general.architecture", "test");
}

static void one_tensor_file(struct bb *b, const char *name, uint32_t n_dims, const uint64_t *ne,
                            uint32_t type, uint64_t off, size_t data_bytes) {
    valid_prefix(b, 1, 1);
    tinfo(b, name, n_dims, ne, type, off);
    pad(b);
    zeros(b, data_bytes);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_malformed OUT_DIR\n");
        return 2;
    }
    out_dir = argv[1];
    static struct bb b;
    const uint64_t ne8[] = {8};

    /* -- header */
    b.n = 0;
    save(&b, "empty");
    bytes(&b, "GGUF\3\0", 6);
    save(&b, "short_header");
    header(&b, 3, 0, 0);
    b.n = 12; /* cut inside the tensor count */
    save(&b, "truncated_header");
    one_tensor_file(&b, "t", 1, ne8, F32, 0, 32);
    memcpy(b.p, "GGUX", 4);
    save(&b, "bad_magic");
    b.n = 0;
    bytes(&b, "GGUF", 4);
    u32(&b, 1), u32(&b, 0), u32(&b, 1); /* v1: u32 counts */
    kv_str(&b, "general.architecture", "test");
    save(&b, "v1");
    one_tensor_file(&b, "t", 1, ne8, F32, 0, 32);
    b.p[4] = 4;
    save(&b, "v4");
    b.p[4] = 0, b.p[7] = 3; /* version 3 written big-endian */
    save(&b, "big_endian");
    valid_prefix(&b, 0, 1);
    memcpy(b.p + 16, (uint8_t[]){0, 0, 0, 0, 0, 0, 0, 0x10}, 8); /* n_kv = 2^60 */
    save(&b, "huge_kv_count");
    valid_prefix(&b, 0, 1);
    memcpy(b.p + 8, (uint8_t[]){0, 0, 0, 0, 0, 0, 0, 0x10}, 8); /* n_tensors = 2^60 */
    save(&b, "huge_tensor_count");
    valid_prefix(&b, 0, 5); /* claims 5 keys, holds 1 */
    save(&b, "kv_count_lies");

    /* -- metadata */
    header(&b, 3, 0, 1);
    u64(&b, 1000), bytes(&b, "general.name", 12), u32(&b, T_U32), u32(&b, 1);
    save(&b, "key_len_past_end");
    header(&b, 3, 0, 1);
    u64(&b, 1ULL << 63), bytes(&b, "general.name", 12), u32(&b, T_U32), u32(&b, 1);
    save(&b, "key_len_huge");
    header(&b, 3, 0, 1);
    kv_u32(&b, "", 1);
    save(&b, "empty_key");
    header(&b, 3, 0, 1);
    u64(&b, 3), bytes(&b, "a\0b", 3), u32(&b, T_U32), u32(&b, 1);
    save(&b, "key_nul");
    header(&b, 3, 0, 2);
    kv_str(&b, "general.name", "a");
    kv_str(&b, "general.name", "b");
    save(&b, "dup_key");
    header(&b, 3, 0, 1);
    str(&b, "general.name"), u32(&b, 13), u32(&b, 0);
    save(&b, "unknown_value_type");
    header(&b, 3, 0, 1);
    str(&b, "general.name"), u32(&b, 0x80000008u), u32(&b, 0);
    save(&b, "unknown_value_type_high");
    header(&b, 3, 0, 1);
    str(&b, "general.name"), u32(&b, T_STRING), u64(&b, 64), bytes(&b, "short", 5);
    save(&b, "string_len_past_end");
    header(&b, 3, 0, 1);
    str(&b, "general.name"), u32(&b, T_STRING), u64(&b, UINT64_MAX);
    save(&b, "string_len_huge");
    header(&b, 3, 0, 1);
    str(&b, "bitnet.block_count"), u32(&b, T_U32), u8(&b, 1), u8(&b, 0);
    save(&b, "truncated_value");
    header(&b, 3, 0, 1);
    str(&b, "bitnet.block_count"), u32(&b, T_U64), u32(&b, 1);
    save(&b, "truncated_u64_value");
    header(&b, 3, 0, 1);
    str(&b, "a"), u32(&b, T_ARRAY), u32(&b, T_ARRAY), u64(&b, 1), u32(&b, T_U8), u64(&b, 1), u8(&b, 0);
    save(&b, "nested_array");
    header(&b, 3, 0, 1);
    str(&b, "a"), u32(&b, T_ARRAY), u32(&b, 77), u64(&b, 1), u32(&b, 0);
    save(&b, "array_unknown_elem_type");
    header(&b, 3, 0, 1);
    str(&b, "a"), u32(&b, T_ARRAY), u32(&b, T_U32), u64(&b, 1ULL << 60), u32(&b, 0);
    save(&b, "huge_array_count");
    header(&b, 3, 0, 1);
    str(&b, "a"), u32(&b, T_ARRAY), u32(&b, T_U64), u64(&b, (1ULL << 61) + 1), u64(&b, 0);
    save(&b, "array_size_overflow"); /* count * 8 wraps to 8 in 64 bits */
    header(&b, 3, 0, 1);
    str(&b, "tokenizer.ggml.tokens"), u32(&b, T_ARRAY), u32(&b, T_STRING), u64(&b, 1ULL << 61), str(&b, "x");
    save(&b, "huge_string_array_count");
    header(&b, 3, 0, 1);
    str(&b, "tokenizer.ggml.tokens"), u32(&b, T_ARRAY), u32(&b, T_STRING), u64(&b, 3), str(&b, "a");
    u64(&b, 500), bytes(&b, "bcdefgh", 7), str(&b, "c");
    save(&b, "string_array_elem_past_end");

    /* -- alignment */
    header(&b, 3, 1, 1);
    kv_u32(&b, "general.alignment", 48);
    tinfo(&b, "t", 1, ne8, F32, 0);
    pad(&b), zeros(&b, 32);
    save(&b, "bad_alignment");
    header(&b, 3, 1, 1);
    kv_u32(&b, "general.alignment", 0);
    tinfo(&b, "t", 1, ne8, F32, 0);
    pad(&b), zeros(&b, 32);
    save(&b, "zero_alignment");
    header(&b, 3, 1, 1);
    str(&b, "general.alignment"), u32(&b, T_U64), u64(&b, 64);
    tinfo(&b, "t", 1, ne8, F32, 0);
    pad(&b), zeros(&b, 32);
    save(&b, "alignment_wrong_type");

    /* -- tensor infos */
    one_tensor_file(&b, "", 1, ne8, F32, 0, 32);
    save(&b, "empty_tensor_name");
    valid_prefix(&b, 1, 1);
    u64(&b, 3), bytes(&b, "t\0x", 3), u32(&b, 1), u64(&b, 8), u32(&b, F32), u64(&b, 0);
    pad(&b), zeros(&b, 32);
    save(&b, "tensor_name_nul");
    valid_prefix(&b, 2, 1);
    tinfo(&b, "blk.0.attn_norm.weight", 1, ne8, F32, 0);
    tinfo(&b, "blk.0.attn_norm.weight", 1, ne8, F32, 32);
    pad(&b), zeros(&b, 64);
    save(&b, "dup_tensor");
    one_tensor_file(&b, "t", 0, ne8, F32, 0, 32);
    save(&b, "ndims_0");
    one_tensor_file(&b, "t", 5, (const uint64_t[]){8, 1, 1, 1, 1}, F32, 0, 32);
    save(&b, "ndims_5");
    one_tensor_file(&b, "t", 2, (const uint64_t[]){8, UINT64_MAX}, F32, 0, 32);
    save(&b, "negative_dim");
    one_tensor_file(&b, "t", 3, (const uint64_t[]){1ULL << 32, 1ULL << 32, 4}, F32, 0, 32);
    save(&b, "dim_product_overflow");
    one_tensor_file(&b, "t", 2, (const uint64_t[]){1ULL << 31, 1ULL << 31}, F32, 0, 32);
    save(&b, "size_overflow"); /* 2^62 elements: count fits, bytes do not */
    one_tensor_file(&b, "t", 1, ne8, 99, 0, 32);
    save(&b, "unknown_tensor_type");
    one_tensor_file(&b, "t", 1, ne8, 2, 0, 32); /* Q4_0: a ggml type tern does not know */
    save(&b, "unknown_tensor_type_q4_0");
    one_tensor_file(&b, "blk.0.attn_q.weight", 2, (const uint64_t[]){128, 1}, TL1, 0, 64);
    save(&b, "tl1_type");
    one_tensor_file(&b, "blk.0.attn_q.weight", 2, (const uint64_t[]){128, 1}, TL2, 0, 64);
    save(&b, "tl2_type");
    one_tensor_file(&b, "t", 1, ne8, I8_S, 0, 32);
    save(&b, "i8s_type");
    one_tensor_file(&b, "t", 2, (const uint64_t[]){33, 1}, Q8_0, 0, 64);
    save(&b, "block_mismatch");
    one_tensor_file(&b, "t", 2, (const uint64_t[]){100, 1}, I2_S, 0, 64);
    save(&b, "i2s_bad_count");
    valid_prefix(&b, 1, 1);
    tinfo(&b, "blk.0.attn_norm.weight", 1, ne8, F32, 0);
    b.n -= 5; /* cut inside the offset (the long name keeps the count bound satisfied) */
    save(&b, "truncated_tensor_info");

    /* -- data section */
    one_tensor_file(&b, "t", 1, ne8, F32, 4, 64);
    save(&b, "misaligned_offset");
    one_tensor_file(&b, "t", 1, ne8, F32, 1024, 32);
    save(&b, "offset_past_end");
    one_tensor_file(&b, "t", 1, (const uint64_t[]){64}, F32, 0, 32);
    save(&b, "size_past_end");
    one_tensor_file(&b, "t", 1, (const uint64_t[]){64}, F32, UINT64_MAX - 31, 32);
    save(&b, "offset_size_overflow");
    valid_prefix(&b, 2, 1);
    tinfo(&b, "a", 1, (const uint64_t[]){16}, F32, 0);
    tinfo(&b, "b", 1, ne8, F32, 32);
    pad(&b), zeros(&b, 64);
    save(&b, "overlap");
    valid_prefix(&b, 3, 1);
    tinfo(&b, "a", 1, ne8, F32, 64);
    tinfo(&b, "b", 1, ne8, F32, 0);
    tinfo(&b, "c", 1, (const uint64_t[]){16}, F32, 32); /* overlaps a, found only after sorting */
    pad(&b), zeros(&b, 96);
    save(&b, "overlap_unsorted");
    valid_prefix(&b, 3, 1);
    tinfo(&b, "a", 1, (const uint64_t[]){16}, F32, 0);
    tinfo(&b, "empty", 1, (const uint64_t[]){0}, F32, 32); /* between a and b, occupies nothing */
    tinfo(&b, "b", 1, ne8, F32, 32);                       /* overlaps a, not its sorted neighbour */
    pad(&b), zeros(&b, 64);
    save(&b, "overlap_across_empty");
    valid_prefix(&b, 1, 1);
    tinfo(&b, "t", 1, (const uint64_t[]){0}, F32, 0); /* 0 bytes, but the data section is missing */
    if (b.n % 32 == 0)
        u8(&b, 0);
    save(&b, "data_start_past_end");

    fprintf(stderr, "make_malformed: wrote %d files to %s\n", n_written, out_dir);
    return 0;
}
