/* Token -> bytes (byte-level decoding for gpt2, U+2581 -> space and <0xXX> -> byte for
 * SentencePiece) and the streaming detokenizer, which holds back an incomplete UTF-8 tail until
 * the next token completes it and turns invalid bytes into U+FFFD (one per maximal invalid
 * subsequence, like WHATWG TextDecoder and Python's "replace"). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

static void put(char *buf, size_t cap, size_t *n, const char *src, size_t len) {
    if (*n < cap)
        memcpy(buf + *n, src, len <= cap - *n ? len : cap - *n);
    *n += len;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* "<0xXX>" -> XX, -1 otherwise */
static int byte_token_value(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

size_t tern_token_to_bytes(const tern_tokenizer *tok, int32_t id, bool special, char *buf, size_t cap) {
    if (!tok || id < 0 || id >= tok->n_vocab)
        return 0;
    const char *s = tern_tok_text(tok, id);
    size_t len = tok->text_len[id], n = 0;
    switch ((enum tern_token_type)tok->types[id]) {
    case TERN_TOKEN_CONTROL:
        if (special)
            put(buf, cap, &n, s, len);
        return n;
    case TERN_TOKEN_USER_DEFINED:
        put(buf, cap, &n, s, len);
        return n;
    case TERN_TOKEN_UNUSED:
        return 0;
    case TERN_TOKEN_UNKNOWN:
        if (tok->model == TERN_TOK_SPM)
            put(buf, cap, &n, "\xE2\x96\x85", 3); /* llama.cpp shows U+2585 */
        return n;
    case TERN_TOKEN_BYTE: {
        int v = byte_token_value(s, len);
        if (v >= 0) {
            char c = (char)v;
            put(buf, cap, &n, &c, 1);
            return n;
        }
        break;
    }
    case TERN_TOKEN_NORMAL:
        break;
    }
    if (tok->model == TERN_TOK_SPM) {
        for (size_t i = 0; i < len;) {
            if (len - i >= 3 && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
                put(buf, cap, &n, " ", 1);
                i += 3;
            } else {
                put(buf, cap, &n, s + i, 1);
                i++;
            }
        }
        return n;
    }
    /* Byte-level: each character stands for one byte; characters outside the map pass through. */
    for (size_t i = 0; i < len;) {
        size_t cl = tern_utf8_len((unsigned char)s[i]);
        if (cl > len - i)
            cl = len - i;
        uint32_t cp = (unsigned char)s[i];
        if (cl == 2)
            cp = ((cp & 0x1F) << 6) | ((unsigned char)s[i + 1] & 0x3F);
        int b = cl <= 2 ? tern_bpe_char_byte(cp) : -1;
        if (b >= 0) {
            char c = (char)b;
            put(buf, cap, &n, &c, 1);
        } else {
            put(buf, cap, &n, s + i, cl);
        }
        i += cl;
    }
    return n;
}

enum { UTF8_OK, UTF8_INVALID, UTF8_INCOMPLETE };

/* Length of the step at p[0..n): a whole valid character, the maximal invalid subsequence, or
 * an incomplete but so far valid prefix that reaches the end. */
static size_t utf8_step(const unsigned char *p, size_t n, int *kind) {
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c < 0x80) {
        *kind = UTF8_OK;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c == 0xE0)
        need = 2, lo = 0xA0;
    else if (c == 0xED)
        need = 2, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF)
        need = 2;
    else if (c == 0xF0)
        need = 3, lo = 0x90;
    else if (c == 0xF4)
        need = 3, hi = 0x8F;
    else if (c >= 0xF1 && c <= 0xF3)
        need = 3;
    else {
        *kind = UTF8_INVALID;
        return 1;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= n) {
            *kind = UTF8_INCOMPLETE;
            return i;
        }
        if (p[i] < lo || p[i] > hi) {
            *kind = UTF8_INVALID;
            return i;
        }
        lo = 0x80, hi = 0xBF;
    }
    *kind = UTF8_OK;
    return need + 1;
}

void tern_detok_init(struct tern_detok *d, const tern_tokenizer *tok) {
    memset(d, 0, sizeof *d);
    d->at_start = tok && tok->model == TERN_TOK_SPM && tok->add_space_prefix;
}

size_t tern_detok_push(struct tern_detok *d, const tern_tokenizer *tok, int32_t id, char *out, size_t cap) {
    char local[512];
    size_t n_tok = tern_token_to_bytes(tok, id, false, NULL, 0);
    size_t total = (size_t)d->n_pending + n_tok;
    char *buf = total <= sizeof local ? local : malloc(total);
    if (!buf)
        return 0;
    memcpy(buf, d->pending, (size_t)d->n_pending);
    tern_token_to_bytes(tok, id, false, buf + d->n_pending, n_tok);
    size_t i = 0, n = 0;
    if (d->at_start && total > 0) {
        if (buf[0] == ' ')
            i = 1; /* SentencePiece: the space the tokenizer prepended */
        d->at_start = false;
    }
    d->n_pending = 0;
    while (i < total) {
        int kind;
        size_t step = utf8_step((const unsigned char *)buf + i, total - i, &kind);
        if (kind == UTF8_INCOMPLETE) {
            memcpy(d->pending, buf + i, step);
            d->n_pending = (int)step;
            break;
        }
        const char *src = kind == UTF8_OK ? buf + i : "\xEF\xBF\xBD";
        size_t sl = kind == UTF8_OK ? step : 3;
        if (n + sl > cap)
            break; /* out of room: drop the rest at a character boundary */
        memcpy(out + n, src, sl);
        n += sl;
        i += step;
    }
    if (buf != local)
        free(buf);
    return n;
}

size_t tern_detok_flush(struct tern_detok *d, char *out, size_t cap) {
    size_t n = 0;
    if (d->n_pending > 0 && cap >= 3) {
        memcpy(out, "\xEF\xBF\xBD", 3);
        n = 3;
    }
    d->n_pending = 0;
    return n;
}

size_t tern_detok_max_bytes(const tern_tokenizer *tok) {
    /* a token's bytes never outnumber its text's, except the 3-byte U+2585 of an unknown token */
    size_t longest = 3;
    for (int32_t i = 0; i < tok->n_vocab; i++)
        if (tok->text_len[i] > longest)
            longest = tok->text_len[i];
    return 3 * (longest + sizeof((struct tern_detok *)0)->pending);
}
