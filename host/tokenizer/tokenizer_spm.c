/* SentencePiece-style BPE (tokenizer.ggml.model = llama), as llama.cpp runs it: spaces become
 * U+2581 (and one is prepended), the text starts as UTF-8 characters, and the adjacent pair whose
 * concatenation is the best-scoring vocabulary entry merges first (ties: leftmost). Pieces that
 * are not tokens fall back to <0xXX> byte tokens, else to the unknown token. */
#include <stdlib.h>
#include <string.h>

#include "heap.h"
#include "tokenizer_internal.h"

void tern_spm_load(tern_tokenizer *tok) {
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
        tok->byte_to_id[b] = tern_tok_lookup(tok, name, 6);
    }
}

struct spm_sym {
    uint32_t off, n; /* bytes of the escaped text; n = 0 once merged into its left neighbour */
    int32_t prev, next;
};

struct bigram {
    float score;
    int32_t left;
    uint32_t size; /* byte length when pushed: a mismatch later means the pair went stale */
};

/* Max-heap: higher score first, then the smaller left index. */
static bool bigram_before(const void *a, const void *b) {
    const struct bigram *x = a, *y = b;
    return x->score > y->score || (x->score == y->score && x->left < y->left);
}

static tern_status try_bigram(const tern_tokenizer *tok, struct tern_heap *h, const char *text,
                              const struct spm_sym *syms, int32_t left) {
    if (left < 0 || syms[left].next < 0)
        return TERN_OK;
    const struct spm_sym *l = &syms[left], *r = &syms[l->next];
    int32_t id = tern_tok_lookup(tok, text + l->off, l->n + r->n);
    if (id < 0)
        return TERN_OK;
    const struct bigram b = {tok->scores[id], left, l->n + r->n};
    return tern_heap_push(h, &b);
}

tern_status tern_spm_encode(const tern_tokenizer *tok, const char *text, size_t len, bool prefix_space,
                            struct tern_tok_ids *out) {
    if (len == 0 && !prefix_space)
        return TERN_OK;
    if (len > UINT32_MAX / 4)
        return TERN_ERR_ARG;
    size_t cap = (len + 1) * 3;
    char *esc = malloc(cap);
    /* one symbol per escaped byte at most: a character cut short by the end of the text, or by
     * the U+2581 of a space that a lead byte before it claimed, leaves more characters than the
     * text had bytes ("\xC3 " escapes to C3 E2 96 81: three) */
    struct spm_sym *syms = malloc(cap * sizeof *syms);
    struct tern_heap h = tern_heap_create(sizeof(struct bigram), bigram_before);
    tern_status st = TERN_OK;
    if (!esc || !syms) {
        st = TERN_ERR_NOMEM;
        goto done;
    }
    size_t n = 0;
    if (prefix_space)
        n += (size_t)(memcpy(esc, "\xE2\x96\x81", 3), 3);
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(esc + n, "\xE2\x96\x81", 3);
            n += 3;
        } else {
            esc[n++] = text[i];
        }
    }
    int32_t n_syms = 0;
    for (size_t off = 0; off < n;) {
        size_t cl = tern_utf8_len((unsigned char)esc[off]);
        if (cl > n - off)
            cl = n - off;
        syms[n_syms] = (struct spm_sym){(uint32_t)off, (uint32_t)cl, n_syms - 1, -1};
        if (n_syms > 0)
            syms[n_syms - 1].next = n_syms;
        n_syms++;
        off += cl;
    }
    for (int32_t i = 0; i + 1 < n_syms; i++) {
        st = try_bigram(tok, &h, esc, syms, i);
        if (st)
            goto done;
    }
    while (h.n) {
        struct bigram b;
        tern_heap_pop(&h, &b);
        struct spm_sym *l = &syms[b.left];
        if (l->n == 0 || l->next < 0)
            continue;
        struct spm_sym *r = &syms[l->next];
        if (r->n == 0 || l->n + r->n != b.size)
            continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            syms[r->next].prev = b.left;
        st = try_bigram(tok, &h, esc, syms, l->prev);
        if (st)
            goto done;
        st = try_bigram(tok, &h, esc, syms, b.left);
        if (st)
            goto done;
    }
    for (int32_t i = n_syms ? 0 : -1; i >= 0; i = syms[i].next) {
        int32_t id = tern_tok_lookup(tok, esc + syms[i].off, syms[i].n);
        if (id >= 0) {
            st = tern_tok_ids_push(out, id);
            if (st)
                goto done;
            continue;
        }
        /* Only single characters reach here: every merge made a vocabulary entry. */
        for (uint32_t k = 0; k < syms[i].n; k++) {
            int32_t bid = tok->byte_to_id[(uint8_t)esc[syms[i].off + k]];
            if (bid < 0) {
                if (tok->unk >= 0) {
                    st = tern_tok_ids_push(out, tok->unk);
                    if (st)
                        goto done;
                }
                break; /* one unknown token for the whole character */
            }
            st = tern_tok_ids_push(out, bid);
            if (st)
                goto done;
        }
    }
done:
    tern_heap_free(&h);
    free(syms);
    free(esc);
    return st;
}
