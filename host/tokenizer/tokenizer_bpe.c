/* Byte-level BPE (tokenizer.ggml.model = gpt2): the GPT-2 byte-to-unicode map, the merge table
 * read from tokenizer.ggml.merges ("a b", rank = index), and the merge loop over one
 * pre-tokenized word. Symbols carry token ids, so merging never builds or hashes strings. */
#include <stdlib.h>
#include <string.h>

#include "../../scheduler/log.h"
#include "heap.h"
#include "tokenizer_internal.h"

/* GPT-2 maps the 188 printable Latin-1 bytes to themselves and the other 68 to U+0100.. in byte
 * order, so every byte has a visible one-character stand-in. */
static char byte_chars[256][3];
static int16_t char_bytes[256 + 68];
static bool byte_map_ready;

static bool byte_is_printable(int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static void byte_map_init(void) {
    /* Idempotent and deterministic, so a race between two loads writes the same values. */
    if (byte_map_ready)
        return;
    int n = 0;
    for (int i = 0; i < 256 + 68; i++)
        char_bytes[i] = -1;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = byte_is_printable(b) ? (uint32_t)b : 256u + (uint32_t)n++;
        char_bytes[cp] = (int16_t)b;
        if (cp < 0x80) {
            byte_chars[b][0] = (char)cp;
            byte_chars[b][1] = 0;
        } else {
            byte_chars[b][0] = (char)(0xC0 | (cp >> 6));
            byte_chars[b][1] = (char)(0x80 | (cp & 0x3F));
            byte_chars[b][2] = 0;
        }
    }
    byte_map_ready = true;
}

const char *tern_bpe_byte_char(uint8_t b) {
    byte_map_init();
    return byte_chars[b];
}

int tern_bpe_char_byte(uint32_t cp) {
    byte_map_init();
    return cp < 256 + 68 ? char_bytes[cp] : -1;
}

static uint64_t pair_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1);
}

static uint32_t pair_hash(uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (uint32_t)key;
}

static const struct tern_merge_slot *merge_find(const tern_tokenizer *tok, int32_t a, int32_t b) {
    if (!tok->merges)
        return NULL;
    uint64_t key = pair_key(a, b);
    for (uint32_t i = pair_hash(key) & tok->merge_mask;; i = (i + 1) & tok->merge_mask) {
        const struct tern_merge_slot *s = &tok->merges[i];
        if (s->key == key)
            return s;
        if (s->key == 0)
            return NULL;
    }
}

tern_status tern_bpe_load(tern_tokenizer *tok, const tern_gguf *g) {
    byte_map_init();
    for (int b = 0; b < 256; b++)
        tok->byte_to_id[b] = tern_tok_lookup(tok, byte_chars[b], strlen(byte_chars[b]));

    const char *key = "tokenizer.ggml.merges";
    enum tern_gguf_vtype et;
    uint64_t n = 0;
    const void *data;
    tern_status st = tern_gguf_get_arr(g, key, &et, &n, &data);
    if (st == TERN_ERR_NOT_FOUND) {
        tern_log_error("%s: %s: missing (gpt2 tokenizers need their merges)", tern_gguf_path(g), key);
        return TERN_ERR_FORMAT;
    }
    if (st)
        return st;
    if (et != TERN_GGUF_STRING || n > INT32_MAX) {
        tern_log_error("%s: %s: expected an array of strings", tern_gguf_path(g), key);
        return TERN_ERR_FORMAT;
    }
    uint64_t cap = 16;
    while (cap < n * 2)
        cap <<= 1;
    tok->merges = calloc(cap, sizeof *tok->merges);
    if (!tok->merges)
        return TERN_ERR_NOMEM;
    tok->merge_mask = (uint32_t)(cap - 1);

    char *buf = NULL;
    size_t buf_cap = 0;
    int64_t skipped = 0, first_skipped = -1;
    for (uint64_t i = 0; i < n; i++) {
        struct tern_str s;
        st = tern_gguf_get_arr_str(g, key, i, &s);
        if (st)
            break;
        /* Search from 1 like llama.cpp, so a part may itself start with a space. */
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!sp || sp == s.ptr + s.len - 1) {
            tern_log_error("%s: %s[%llu]: not of the form \"a b\"", tern_gguf_path(g), key,
                           (unsigned long long)i);
            st = TERN_ERR_FORMAT;
            break;
        }
        size_t la = (size_t)(sp - s.ptr), lb = s.len - la - 1;
        if (la + lb > buf_cap) {
            buf_cap = (la + lb) * 2 + 64;
            char *nb = realloc(buf, buf_cap);
            if (!nb) {
                st = TERN_ERR_NOMEM;
                break;
            }
            buf = nb;
        }
        int32_t a = tern_tok_lookup(tok, s.ptr, la);
        int32_t b = tern_tok_lookup(tok, sp + 1, lb);
        memcpy(buf, s.ptr, la);
        memcpy(buf + la, sp + 1, lb);
        int32_t r = (a >= 0 && b >= 0) ? tern_tok_lookup(tok, buf, la + lb) : -1;
        if (r < 0) {
            /* Trimmed vocabularies keep merges whose parts are gone; they can never apply. */
            if (first_skipped < 0)
                first_skipped = (int64_t)i;
            skipped++;
            continue;
        }
        uint64_t k = pair_key(a, b);
        for (uint32_t h = pair_hash(k) & tok->merge_mask;; h = (h + 1) & tok->merge_mask) {
            struct tern_merge_slot *slot = &tok->merges[h];
            if (slot->key == k)
                break; /* duplicate pair: the first (lowest) rank stays */
            if (slot->key == 0) {
                slot->key = k;
                slot->rank = (int32_t)i;
                slot->result = r;
                tok->n_merges++;
                break;
            }
        }
    }
    free(buf);
    if (st)
        return st;
    if (skipped)
        tern_log_warn(
            "%s: %s: skipped %lld merges that name tokens not in the vocabulary (first: index %lld)",
            tern_gguf_path(g), key, (long long)skipped, (long long)first_skipped);
    return TERN_OK;
}

/* Merge candidates form a binary min-heap on (rank, position): the lowest rank merges first and
 * equal pairs merge left to right, as in Hugging Face tokenizers. */
struct cand {
    int32_t rank;
    int32_t pos;  /* index of the left symbol */
    int32_t left; /* ids expected at pos and at its right neighbour (stale entries are skipped) */
    int32_t right;
};

struct sym {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
};

static bool cand_less(const void *a, const void *b) {
    const struct cand *x = a, *y = b;
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static tern_status try_pair(const tern_tokenizer *tok, struct tern_heap *h, const struct sym *syms,
                            int32_t pos) {
    if (pos < 0 || syms[pos].next < 0)
        return TERN_OK;
    int32_t a = syms[pos].id, b = syms[syms[pos].next].id;
    if (a < 0 || b < 0)
        return TERN_OK;
    const struct tern_merge_slot *m = merge_find(tok, a, b);
    if (!m)
        return TERN_OK;
    const struct cand c = {m->rank, pos, a, b};
    return tern_heap_push(h, &c);
}

tern_status tern_bpe_encode_word(const tern_tokenizer *tok, const char *word, size_t len,
                                 struct tern_tok_ids *out) {
    if (len == 0)
        return TERN_OK;
    tern_status st = TERN_OK;
    if (tok->ignore_merges && len <= 256) {
        char enc[512];
        size_t n = 0;
        for (size_t i = 0; i < len; i++) {
            const char *c = byte_chars[(uint8_t)word[i]];
            while (*c)
                enc[n++] = *c++;
        }
        int32_t id = tern_tok_lookup(tok, enc, n);
        if (id >= 0)
            return tern_tok_ids_push(out, id);
    }
    if (len == 1) {
        int32_t id = tok->byte_to_id[(uint8_t)word[0]];
        if (id < 0)
            id = tok->unk;
        return id >= 0 ? tern_tok_ids_push(out, id) : TERN_OK;
    }
    if (len > INT32_MAX / 2)
        return TERN_ERR_ARG;
    struct sym *syms = malloc(len * sizeof *syms);
    struct tern_heap h = tern_heap_create(sizeof(struct cand), cand_less);
    if (!syms)
        return TERN_ERR_NOMEM;
    for (size_t i = 0; i < len; i++) {
        syms[i].id = tok->byte_to_id[(uint8_t)word[i]];
        syms[i].prev = (int32_t)i - 1;
        syms[i].next = i + 1 < len ? (int32_t)i + 1 : -1;
    }
    for (int32_t i = 0; i + 1 < (int32_t)len; i++) {
        st = try_pair(tok, &h, syms, i);
        if (st)
            goto done;
    }
    while (h.n) {
        struct cand c;
        tern_heap_pop(&h, &c);
        struct sym *l = &syms[c.pos];
        if (l->id != c.left || l->next < 0 || syms[l->next].id != c.right)
            continue; /* stale */
        const struct tern_merge_slot *m = merge_find(tok, c.left, c.right);
        struct sym *r = &syms[l->next];
        l->id = m->result;
        l->next = r->next;
        if (r->next >= 0)
            syms[r->next].prev = c.pos;
        r->id = -2; /* dead */
        st = try_pair(tok, &h, syms, l->prev);
        if (st)
            goto done;
        st = try_pair(tok, &h, syms, c.pos);
        if (st)
            goto done;
    }
    for (int32_t i = 0; i >= 0; i = syms[i].next) {
        int32_t id = syms[i].id >= 0 ? syms[i].id : tok->unk; /* a byte with no token of its own */
        if (id >= 0) {
            st = tern_tok_ids_push(out, id);
            if (st)
                goto done;
        }
    }
done:
    tern_heap_free(&h);
    free(syms);
    return st;
}
