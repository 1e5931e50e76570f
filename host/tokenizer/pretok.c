/* Regex pre-tokenizers of the byte-level BPE models, compiled with PCRE2 (UTF + UCP, JIT when
 * available). The patterns are the ones llama.cpp uses for each tokenizer.ggml.pre name; every
 * byte of the input lands in one piece (text between matches, e.g. invalid UTF-8, becomes a piece
 * of its own, like Hugging Face's "Isolated" split). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "../../scheduler/log.h"
#include "tokenizer_internal.h"

/* Llama-3 (tokenizer.json's Split regex). The case-insensitive contraction group is spelled out
 * as llama.cpp and transformers.js do: PCRE2's (?i) would also fold U+017F (long s) into 's'. */
static const char LLAMA3_PATTERN[] = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
                                     "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                     "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* GPT-2 (llama.cpp's LLAMA_VOCAB_PRE_TYPE_GPT2 pattern). */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* name -> canonical name -> pattern. llama.cpp treats falcon3 exactly as llama-bpe. */
static const struct {
    const char *name;
    const char *canonical;
    const char *pattern;
} PRETOKS[] = {
    {"llama-bpe", "llama-bpe", LLAMA3_PATTERN}, {"llama3", "llama-bpe", LLAMA3_PATTERN},
    {"llama-v3", "llama-bpe", LLAMA3_PATTERN},  {"falcon3", "falcon3", LLAMA3_PATTERN},
    {"default", "default", GPT2_PATTERN},       {"gpt2", "default", GPT2_PATTERN},
    {"gpt-2", "default", GPT2_PATTERN},
};
#define N_PRETOKS (sizeof PRETOKS / sizeof PRETOKS[0])

struct tern_pretok {
    pcre2_code *re;
    bool jit;
};

const char *tern_pretok_known_names(void) {
    return "llama-bpe (llama3, llama-v3), falcon3, default (gpt2, gpt-2)";
}

const char *tern_pretok_canonical(const char *name, size_t len) {
    for (size_t i = 0; i < N_PRETOKS; i++)
        if (strlen(PRETOKS[i].name) == len && memcmp(PRETOKS[i].name, name, len) == 0)
            return PRETOKS[i].canonical;
    return NULL;
}

tern_status tern_pretok_create(const char *canonical_name, struct tern_pretok **out) {
    *out = NULL;
    const char *pattern = NULL;
    for (size_t i = 0; i < N_PRETOKS && !pattern; i++)
        if (strcmp(PRETOKS[i].name, canonical_name) == 0)
            pattern = PRETOKS[i].pattern;
    if (!pattern)
        return TERN_ERR_UNSUPPORTED;
    struct tern_pretok *p = calloc(1, sizeof *p);
    if (!p)
        return TERN_ERR_NOMEM;
    int err = 0;
    PCRE2_SIZE err_off = 0;
    p->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_off, NULL);
    if (!p->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        tern_log_error("pre-tokenizer %s: PCRE2 compile failed at offset %zu: %s", canonical_name,
                       (size_t)err_off, (const char *)msg);
        free(p);
        return TERN_ERR_INTERNAL;
    }
    p->jit = pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE) == 0;
    *out = p;
    return TERN_OK;
}

void tern_pretok_free(struct tern_pretok *p) {
    if (!p)
        return;
    pcre2_code_free(p->re);
    free(p);
}

tern_status tern_pretok_split(const struct tern_pretok *p, const char *text, size_t len, tern_pretok_fn fn,
                              void *user) {
    if (len == 0)
        return TERN_OK;
    /* Match data per call keeps one tokenizer usable from several threads. */
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->re, NULL);
    if (!md)
        return TERN_ERR_NOMEM;
    tern_status st = TERN_OK;
    size_t pos = 0, emitted = 0; /* text[0, emitted) went to fn */
    while (pos < len) {
        int rc = p->jit ? pcre2_jit_match(p->re, (PCRE2_SPTR)text, len, pos, 0, md, NULL)
                        : pcre2_match(p->re, (PCRE2_SPTR)text, len, pos, 0, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            tern_log_error("pre-tokenizer: PCRE2 match failed: %s", (const char *)msg);
            st = TERN_ERR_TOKENIZER;
            goto done;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t s = ov[0], e = ov[1];
        if (s > emitted) {
            st = fn(user, text + emitted, s - emitted);
            if (st)
                goto done;
        }
        if (e == s) { /* the patterns never match empty; step over one character anyway */
            pos = s + tern_utf8_len((unsigned char)text[s]);
            if (pos > len)
                pos = len;
            continue;
        }
        st = fn(user, text + s, e - s);
        if (st)
            goto done;
        emitted = pos = e;
    }
    if (emitted < len)
        st = fn(user, text + emitted, len - emitted);
done:
    pcre2_match_data_free(md);
    return st;
}
