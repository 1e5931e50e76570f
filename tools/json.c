/* Recursive-descent JSON parser building a DOM (see json.h). */
#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/log.h"

#define JSON_MAX_DEPTH 512

struct parser {
    const char *s;
    size_t n, pos;
    const char *name;
    bool failed;
};

static void fail(struct parser *p, const char *what) {
    if (p->failed)
        return;
    p->failed = true;
    size_t line = 1, col = 1;
    for (size_t i = 0; i < p->pos && i < p->n; i++) {
        if (p->s[i] == '\n')
            line++, col = 1;
        else
            col++;
    }
    tern_log_error("%s: line %zu col %zu: %s", p->name, line, col, what);
}

static void skip_ws(struct parser *p) {
    while (p->pos < p->n) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static void free_value(struct tern_json *v) {
    if (v->type == TERN_JSON_STRING)
        free(v->str);
    if (v->type == TERN_JSON_ARRAY || v->type == TERN_JSON_OBJECT) {
        for (size_t i = 0; i < v->len; i++) {
            free_value(&v->items[i]);
            if (v->keys)
                free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
        free(v->key_lens);
    }
}

void tern_json_free(struct tern_json *v) {
    if (!v)
        return;
    free_value(v);
    free(v);
}

static int hex4(const char *s) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* At the opening quote. The decoded string is never longer than its source. */
static char *parse_string(struct parser *p, size_t *out_len) {
    p->pos++;
    size_t start = p->pos;
    size_t end = start;
    while (end < p->n && p->s[end] != '"')
        end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->n) {
        fail(p, "unterminated string");
        return NULL;
    }
    char *o = malloc(end - start + 1);
    if (!o) {
        fail(p, "out of memory");
        return NULL;
    }
    size_t n = 0;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) {
            fail(p, "control character in string");
            free(o);
            return NULL;
        }
        if (c != '\\') {
            o[n++] = (char)c;
            p->pos++;
            continue;
        }
        char e = p->s[p->pos + 1];
        p->pos += 2;
        switch (e) {
        case '"':
            o[n++] = '"';
            break;
        case '\\':
            o[n++] = '\\';
            break;
        case '/':
            o[n++] = '/';
            break;
        case 'b':
            o[n++] = '\b';
            break;
        case 'f':
            o[n++] = '\f';
            break;
        case 'n':
            o[n++] = '\n';
            break;
        case 'r':
            o[n++] = '\r';
            break;
        case 't':
            o[n++] = '\t';
            break;
        case 'u': {
            int u = p->pos + 4 <= end ? hex4(p->s + p->pos) : -1;
            if (u < 0) {
                fail(p, "bad \\u escape");
                free(o);
                return NULL;
            }
            p->pos += 4;
            uint32_t cp = (uint32_t)u;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int lo = p->pos + 6 <= end && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u'
                             ? hex4(p->s + p->pos + 2)
                             : -1;
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                    p->pos += 6;
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            /* \uXXXX (6 source bytes) never decodes to more than 4 bytes, nor a pair to more than 12 */
            n += put_utf8(o + n, cp);
            break;
        }
        default:
            fail(p, "bad escape in string");
            free(o);
            return NULL;
        }
    }
    p->pos = end + 1;
    o[n] = 0;
    *out_len = n;
    return o;
}

static bool parse_value(struct parser *p, struct tern_json *v, int depth);

static bool grow(struct parser *p, struct tern_json *v, size_t *cap, bool object) {
    if (v->len < *cap)
        return true;
    size_t nc = *cap ? *cap * 2 : 8;
    struct tern_json *ni = realloc(v->items, nc * sizeof *ni);
    if (ni)
        v->items = ni;
    if (object && ni) {
        char **nk = realloc(v->keys, nc * sizeof *nk);
        if (nk)
            v->keys = nk;
        size_t *nl = nk ? realloc(v->key_lens, nc * sizeof *nl) : NULL;
        if (nl)
            v->key_lens = nl;
        if (!nk || !nl)
            ni = NULL;
    }
    if (!ni) {
        fail(p, "out of memory");
        return false;
    }
    *cap = nc;
    return true;
}

static bool parse_container(struct parser *p, struct tern_json *v, int depth, bool object) {
    v->type = object ? TERN_JSON_OBJECT : TERN_JSON_ARRAY;
    p->pos++;
    size_t cap = 0;
    skip_ws(p);
    char close = object ? '}' : ']';
    if (p->pos < p->n && p->s[p->pos] == close) {
        p->pos++;
        return true;
    }
    for (;;) {
        skip_ws(p);
        if (!grow(p, v, &cap, object))
            return false;
        if (object) {
            if (p->pos >= p->n || p->s[p->pos] != '"') {
                fail(p, "expected a member name");
                return false;
            }
            size_t kl;
            char *k = parse_string(p, &kl);
            if (!k)
                return false;
            v->keys[v->len] = k;
            v->key_lens[v->len] = kl;
            skip_ws(p);
            if (p->pos >= p->n || p->s[p->pos] != ':') {
                free(k);
                fail(p, "expected ':'");
                return false;
            }
            p->pos++;
        }
        struct tern_json *item = &v->items[v->len];
        memset(item, 0, sizeof *item);
        v->len++; /* counted now so that a failure below frees what was built */
        if (!parse_value(p, item, depth + 1))
            return false;
        skip_ws(p);
        if (p->pos < p->n && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->n && p->s[p->pos] == close) {
            p->pos++;
            return true;
        }
        fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
        return false;
    }
}

static bool parse_number(struct parser *p, struct tern_json *v) {
    size_t start = p->pos;
    bool is_int = true;
    if (p->pos < p->n && p->s[p->pos] == '-')
        p->pos++;
    size_t digits = p->pos;
    while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
        p->pos++;
    if (p->pos == digits || (p->s[digits] == '0' && p->pos - digits > 1)) {
        fail(p, "bad number");
        return false;
    }
    if (p->pos < p->n && p->s[p->pos] == '.') {
        is_int = false;
        size_t f = ++p->pos;
        while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
        if (p->pos == f) {
            fail(p, "bad number");
            return false;
        }
    }
    if (p->pos < p->n && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        is_int = false;
        p->pos++;
        if (p->pos < p->n && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        size_t f = p->pos;
        while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
        if (p->pos == f) {
            fail(p, "bad number");
            return false;
        }
    }
    char tmp[64];
    size_t l = p->pos - start;
    char *buf = l < sizeof tmp ? tmp : malloc(l + 1);
    if (!buf) {
        fail(p, "out of memory");
        return false;
    }
    memcpy(buf, p->s + start, l);
    buf[l] = 0;
    v->type = TERN_JSON_NUMBER;
    v->number = strtod(buf, NULL);
    if (is_int) {
        errno = 0;
        long long ll = strtoll(buf, NULL, 10);
        if (errno == 0) {
            v->is_int = true;
            v->integer = ll;
        }
    }
    if (buf != tmp)
        free(buf);
    return true;
}

static bool literal(struct parser *p, const char *word) {
    size_t l = strlen(word);
    if (p->n - p->pos < l || memcmp(p->s + p->pos, word, l) != 0) {
        fail(p, "unexpected character");
        return false;
    }
    p->pos += l;
    return true;
}

static bool parse_value(struct parser *p, struct tern_json *v, int depth) {
    if (depth > JSON_MAX_DEPTH) {
        fail(p, "nesting too deep");
        return false;
    }
    skip_ws(p);
    if (p->pos >= p->n) {
        fail(p, "unexpected end of input");
        return false;
    }
    switch (p->s[p->pos]) {
    case '{':
        return parse_container(p, v, depth, true);
    case '[':
        return parse_container(p, v, depth, false);
    case '"':
        v->str = parse_string(p, &v->len);
        if (!v->str)
            return false;
        v->type = TERN_JSON_STRING;
        return true;
    case 't':
        v->type = TERN_JSON_BOOL;
        v->boolean = true;
        return literal(p, "true");
    case 'f':
        v->type = TERN_JSON_BOOL;
        return literal(p, "false");
    case 'n':
        v->type = TERN_JSON_NULL;
        return literal(p, "null");
    default:
        return parse_number(p, v);
    }
}

tern_status tern_json_parse(const char *text, size_t len, const char *name, struct tern_json **out) {
    if (!out || (!text && len))
        return TERN_ERR_ARG;
    *out = NULL;
    struct parser p = {text, len, 0, name ? name : "json", false};
    struct tern_json *v = calloc(1, sizeof *v);
    if (!v)
        return TERN_ERR_NOMEM;
    bool ok = parse_value(&p, v, 0);
    if (ok) {
        skip_ws(&p);
        if (p.pos != p.n) {
            fail(&p, "trailing characters after the value");
            ok = false;
        }
    }
    if (!ok) {
        tern_json_free(v);
        return TERN_ERR_FORMAT;
    }
    *out = v;
    return TERN_OK;
}

tern_status tern_json_parse_file(const char *path, struct tern_json **out) {
    if (!path || !out)
        return TERN_ERR_ARG;
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        tern_log_error("%s: cannot open: %s", path, strerror(errno));
        return TERN_ERR_IO;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return TERN_ERR_NOMEM;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    bool err = ferror(f);
    fclose(f);
    if (err) {
        tern_log_error("%s: read error", path);
        free(buf);
        return TERN_ERR_IO;
    }
    tern_status st = tern_json_parse(buf, n, path, out);
    free(buf);
    return st;
}

const struct tern_json *tern_json_get(const struct tern_json *v, const char *key) {
    if (!v || v->type != TERN_JSON_OBJECT)
        return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < v->len; i++)
        if (v->key_lens[i] == kl && memcmp(v->keys[i], key, kl) == 0)
            return &v->items[i];
    return NULL;
}

const struct tern_json *tern_json_get_type(const struct tern_json *v, const char *key,
                                           enum tern_json_type type) {
    const struct tern_json *m = tern_json_get(v, key);
    return m && m->type == type ? m : NULL;
}
