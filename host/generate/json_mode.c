/* JSON mode (see json_mode.h): the recognizer and the token mask (the schema compiler: json_schema.c). */
#include <stdlib.h>
#include <string.h>

#include "../../scheduler/log.h"
#include "json_schema.h"

/* ---------------------------------------------------------------- the recognizer */

/* What a level expects next (each string's three modes in this order: text_byte). */
enum {
    M_VALUE,     /* a value of its node */
    M_OBJ_FIRST, /* after '{': a key or '}' */
    M_OBJ_KEY,   /* after ',' in an object: a key */
    M_KEY,       /* inside a key */
    M_KEY_ESC,   /* after a backslash in a key (any_keys) */
    M_KEY_U,     /* in a key's \uXXXX (aux: hex digits read) */
    M_COLON,     /* after a key (pos: its value's node) */
    M_OBJ_AFTER, /* after a member's value: ',' or '}' */
    M_ARR_FIRST, /* after '[': a value or ']' */
    M_ARR_AFTER, /* after an item: ',' or ']' */
    M_STR,       /* inside a string value (cand: its characters, where their number is bounded) */
    M_STR_ESC,   /* after a backslash */
    M_STR_U,     /* in \uXXXX (aux: hex digits read; pos: the first was a 'd') */
    M_MINUS,     /* a number's '-' (aux: NUM_*; cand: its integer part, from the first digit) */
    M_ZERO,      /* its integer part is 0 */
    M_INT,       /* in its integer part */
    M_DOT,       /* after its '.' */
    M_FRAC,      /* in its fraction */
    M_EXP_MARK,  /* after its 'e' or 'E' */
    M_EXP_SIGN,  /* after the exponent's sign */
    M_EXP,       /* in its exponent */
    M_LIT,       /* in true, false or null (aux: which; pos: letters matched) */
    M_ENUM       /* in an enumerated number, true, false or null (cand, pos: as in a key) */
};

/* A number's flags (its frame's aux) */
enum {
    NUM_WHOLE = 1, /* an integer: no fraction or exponent */
    NUM_NEG = 2,   /* it began with '-' */
    NUM_FNZ = 4    /* a digit of its fraction so far is not 0 */
};

static const char *const LITERALS[3] = {"true", "false", "null"};

void tern_json_start(struct tern_json_state *st, const tern_json_schema *g) {
    st->g = g ? g : tern_json_any_object();
    st->n = 1;
    st->b[0].depth = 1;
    st->b[0].space = 0;
    st->b[0].done = false;
    st->b[0].f[0] = (struct tern_json_frame){.node = st->g->root, .mode = M_VALUE};
}

bool tern_json_complete(const struct tern_json_state *st) {
    for (int i = 0; i < st->n; i++)
        if (st->b[i].done)
            return true;
    return false;
}

static bool same_branch(const struct tern_json_branch *a, const struct tern_json_branch *b) {
    return a->depth == b->depth && a->space == b->space && a->done == b->done &&
           !memcmp(a->f, b->f, a->depth * sizeof *a->f);
}

bool tern_json_same(const struct tern_json_state *a, const struct tern_json_state *b) {
    bool same = a->g == b->g && a->n == b->n;
    for (int i = 0; same && i < a->n; i++)
        same = same_branch(&a->b[i], &b->b[i]);
    return same;
}

/* dst <- src: the levels in use (a step writes a level before it reads it) */
static void copy_branch(struct tern_json_branch *dst, const struct tern_json_branch *src) {
    dst->depth = src->depth;
    dst->space = src->space;
    dst->done = src->done;
    memcpy(dst->f, src->f, src->depth * sizeof *src->f);
}

/* A branch no reading of the text follows any more (done ones have no levels either) */
static void drop(struct tern_json_branch *b) {
    b->depth = 0, b->done = false;
}

static bool hex(unsigned char c) {
    return tern_json_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* The level's value is whole: back to its parent, which already expects what follows a value. */
static bool finish(struct tern_json_branch *b) {
    if (--b->depth == 0)
        b->done = true;
    return true;
}

static bool push(struct tern_json_branch *b, uint16_t node) {
    if (b->depth == TERN_JSON_MAX_DEPTH)
        return false;
    b->f[b->depth++] = (struct tern_json_frame){.node = node, .mode = M_VALUE};
    return true;
}

/* The properties a key may be next, from property `next` on: up to and with the first required
 * one (properties are written in the schema's order). */
static uint64_t next_keys(const tern_json_schema *g, const struct node *n, int next) {
    uint64_t m = 0;
    for (int i = next; i < n->n_props; i++) {
        m |= 1ull << i;
        if (g->props[n->prop0 + i].required)
            break;
    }
    return m;
}

static bool may_close(const tern_json_schema *g, const struct node *n, int next) {
    for (int i = next; i < n->n_props; i++)
        if (g->props[n->prop0 + i].required)
            return false;
    return true;
}

/* The keys an object of node n, with f->keys written, may write next: any key (any_keys) while
 * below maxProperties, or the properties next_keys gives whose choice leaves room for the required
 * ones after it within maxProperties and enough after it to reach minProperties. */
static uint64_t keys_left(const tern_json_schema *g, const struct node *n, const struct tern_json_frame *f) {
    if (n->max_props != UINT16_MAX && f->keys >= n->max_props)
        return 0;
    if (n->any_keys)
        return 1;
    uint64_t m = next_keys(g, n, f->count);
    int required_after = 0;
    for (int j = n->n_props - 1; j >= f->count; j--) {
        if ((n->max_props != UINT16_MAX && f->keys + 1 + required_after > n->max_props) ||
            f->keys + 1 + (n->n_props - j - 1) < n->min_props)
            m &= ~(1ull << j);
        required_after += g->props[n->prop0 + j].required;
    }
    return m;
}

/* Narrow the candidates of f (names[0 ..) of the schema) by byte c at position f->pos. */
static bool narrow(const tern_json_schema *g, struct tern_json_frame *f, const struct name *names, int n,
                   unsigned char c) {
    uint64_t m = 0;
    for (int i = 0; i < n; i++)
        if (((f->cand >> i) & 1) && names[i].len > f->pos &&
            (unsigned char)g->text[names[i].off + f->pos] == c)
            m |= 1ull << i;
    f->cand = m;
    f->pos++;
    return m != 0;
}

/* The candidate of f whose name ends here, -1 when none does. */
static int whole_name(const struct tern_json_frame *f, const struct name *names, int n) {
    for (int i = 0; i < n; i++)
        if (((f->cand >> i) & 1) && names[i].len == f->pos)
            return i;
    return -1;
}

/* ---- numbers within bounds (struct node's lo and hi, whole numbers) */

/* The bounds on a number's magnitude u (the number, or minus it where it is negative): a <= u (a < u
 * with a_ex), and u <= b (u < b) where has_b. (An integer's bounds are inclusive: json_schema.c
 * rounds them.) */
struct side {
    uint64_t a, b;
    bool a_ex, b_ex, has_b, empty;
};

static struct side side_of(const struct node *n, bool neg) {
    struct side s = {0};
    const uint8_t l = n->limits;
    if (!neg) {
        if ((l & LIM_LO) && n->lo >= 0)
            s.a = (uint64_t)n->lo, s.a_ex = l & LIM_LO_EX;
        if ((l & LIM_HI) && n->hi < 0)
            s.empty = true;
        else if (l & LIM_HI)
            s.b = (uint64_t)n->hi, s.b_ex = l & LIM_HI_EX, s.has_b = true;
    } else { /* -u >= lo: u <= -lo; -u <= hi: u >= -hi */
        if ((l & LIM_LO) && n->lo > 0)
            s.empty = true;
        else if (l & LIM_LO)
            s.b = (uint64_t)-n->lo, s.b_ex = l & LIM_LO_EX, s.has_b = true;
        if ((l & LIM_HI) && n->hi <= 0)
            s.a = (uint64_t)-n->hi, s.a_ex = l & LIM_HI_EX;
    }
    s.empty |= s.has_b && (s.a > s.b || (s.a == s.b && (s.a_ex || s.b_ex)));
    return s;
}

/* Some magnitude of the reals [L, L + W) ((L, L + W) with open) lies within s. Against whole
 * bounds, as inclusive ones for integers, that is so exactly when one of the integers L .. L + W - 1
 * does (or L + 1 .. with open). */
static bool meets(const struct side *s, uint64_t L, uint64_t W, bool open) {
    if (s->empty)
        return false;
    uint64_t lo = L, hi = L + W;
    bool lo_ex = open, hi_ex = true;
    if (s->a > L || (s->a == L && s->a_ex))
        lo = s->a, lo_ex = s->a_ex;
    if (s->has_b && s->b < hi)
        hi = s->b, hi_ex = s->b_ex;
    return lo < hi || (lo == hi && !lo_ex && !hi_ex);
}

/* The magnitude m itself lies within s. */
static bool holds(const struct side *s, uint64_t m) {
    return !s->empty && (m > s->a || (m == s->a && !s->a_ex)) &&
           (!s->has_b || m < s->b || (m == s->b && !s->b_ex));
}

/* Whether the number frame f reads (its sign, integer part m and fraction so far) can still lie
 * within its node's bounds, or, with ends, does as it stands. With whole bounds only these matter:
 * after a digit of the integer part it can grow to [m 10^j, (m + 1) 10^j) for any j, in its
 * fraction it lies in [m, m + 1), or in (m, m + 1) once a digit is not 0, where every value sits
 * alike against whole bounds. Numbers with bounds take no exponent. */
static bool in_range(const struct node *n, const struct tern_json_frame *f, bool ends) {
    if (!(n->limits & (LIM_LO | LIM_HI)))
        return true;
    const bool fnz = f->aux & NUM_FNZ;
    const struct side s = side_of(n, f->aux & NUM_NEG);
    const uint64_t m = f->cand;
    switch (f->mode) {
    case M_MINUS:
        return !s.empty;
    case M_ZERO:
        return ends ? holds(&s, 0) : meets(&s, 0, 1, false);
    case M_INT:
        if (ends)
            return holds(&s, m);
        for (uint64_t L = m, W = 1; !s.has_b || L <= s.b; L *= 10, W *= 10)
            if (meets(&s, L, W, false) || !s.has_b)
                return !s.empty;
        return false;
    case M_DOT:
        return meets(&s, m, 1, false);
    case M_FRAC:
        return fnz ? meets(&s, m, 1, true) : ends ? holds(&s, m) : meets(&s, m, 1, false);
    default:
        return false;
    }
}

/* ---- the recognizer's steps */

/* The first byte of a value of f's node, on branch b of st. Of an anyOf's alternatives that this byte
 * can begin, b follows the first, and a copy of b each other one (while there is room). */
static bool value_start(struct tern_json_state *st, struct tern_json_branch *b, struct tern_json_frame *f,
                        unsigned char c) {
    const tern_json_schema *g = st->g;
    const struct node *n = &g->nodes[f->node];
    if (n->n_alt) {
        int first = -1;
        for (int i = 0; i < n->n_alt; i++) {
            const uint16_t alt = g->alts[n->alt0 + i];
            if (!(tern_json_starts(c) & g->nodes[alt].types))
                continue;
            if (first < 0) {
                first = alt;
                continue;
            }
            if (st->n == TERN_JSON_MAX_BRANCHES)
                break;
            struct tern_json_branch *copy = &st->b[st->n++];
            copy_branch(copy, b);
            struct tern_json_frame *cf = &copy->f[f - b->f];
            cf->node = alt;
            if (!value_start(st, copy, cf, c))
                drop(copy);
        }
        if (first < 0)
            return false;
        f->node = (uint16_t)first;
        return value_start(st, b, f, c);
    }
    if (!(tern_json_starts(c) & n->types))
        return false;
    if (n->enumerated && c != '"') { /* the literals this byte begins */
        uint64_t m = 0;
        for (int i = 0; i < n->n_lit; i++)
            if ((unsigned char)g->text[g->enums[n->lit0 + i].off] == c)
                m |= 1ull << i;
        f->mode = M_ENUM, f->pos = 1, f->cand = m;
        return m != 0;
    }
    switch (c) {
    case '{':
        f->mode = M_OBJ_FIRST, f->count = 0, f->keys = 0;
        break;
    case '[':
        f->mode = M_ARR_FIRST, f->count = 0;
        break;
    case '"':
        f->mode = M_STR, f->pos = 0, f->aux = 0, f->cand = n->n_enum == 64 ? ~0ull : (1ull << n->n_enum) - 1;
        break;
    case 't':
    case 'f':
    case 'n':
        f->mode = M_LIT, f->aux = c == 't' ? 0 : c == 'f' ? 1 : 2, f->pos = 1;
        break;
    default: /* a number */
        f->aux = (uint8_t)((n->types & TY_NUM ? 0 : NUM_WHOLE) | (c == '-' ? NUM_NEG : 0));
        f->cand = c == '-' ? 0 : (uint64_t)(c - '0');
        f->mode = c == '-' ? M_MINUS : c == '0' ? M_ZERO : M_INT;
        return in_range(n, f, false);
    }
    return true;
}

/* A byte of a string of any text, whose modes are text (outside escapes), text + 1 (after a
 * backslash) and text + 2 (in \uXXXX): 1 the string goes on, 0 c is its closing quote, -1 c cannot
 * be there. The text is UTF-8 (RFC 3629: no overlong forms, surrogates or code points past
 * U+10FFFF): in text mode, aux holds the bytes a character still needs (bits 1:0) and which range
 * its next byte must lie in (bits 4:2, a row of UTF8_NEXT). */
static int text_byte(struct tern_json_frame *f, unsigned char c, int text) {
    static const uint8_t UTF8_NEXT[5][2] = {
        {0x80, 0xbf}, {0xa0, 0xbf}, {0x80, 0x9f}, {0x90, 0xbf}, {0x80, 0x8f}};
    if (f->mode == text) {
        if (f->aux) { /* inside a character */
            const uint8_t *r = UTF8_NEXT[f->aux >> 2];
            if (c < r[0] || c > r[1])
                return -1;
            f->aux = (uint8_t)((f->aux & 3) - 1);
            return 1;
        }
        if (c == '"')
            return 0;
        if (c == '\\')
            f->mode = (uint8_t)(text + 1);
        if (c < 0x80)
            return c >= 0x20 ? 1 : -1;
        if (c < 0xc2 || c > 0xf4)
            return -1;
        /* a lead byte: the bytes that follow it, and the range of the next one */
        const int more = c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
        const int next = c == 0xe0 ? 1 : c == 0xed ? 2 : c == 0xf0 ? 3 : c == 0xf4 ? 4 : 0;
        f->aux = (uint8_t)(more | next << 2);
        return 1;
    }
    if (f->mode == text + 1) {
        if (c == 'u')
            f->mode = (uint8_t)(text + 2), f->aux = 0;
        else if (c && strchr("\"\\/bfnrt", c))
            f->mode = (uint8_t)text;
        else
            return -1;
        return 1;
    }
    if (!hex(c))
        return -1;
    if (++f->aux == 4)
        f->mode = (uint8_t)text, f->aux = 0;
    return 1;
}

/* A string of node n with a bounded length (LIM_LEN) at byte c: counts the characters in f->cand
 * (UTF-8 lead bytes and escapes, one each) and keeps within max_len and min_len. A \u escape of
 * a surrogate (a character outside the BMP, as two escapes) is refused there: such characters are
 * written as UTF-8. */
static bool count_character(const struct node *n, struct tern_json_frame *f, unsigned char c) {
    if (f->mode == M_STR) {
        if (c == '"')
            return f->cand >= n->min_len;
        if ((c & 0xc0) == 0x80) /* a character goes on */
            return true;
        return f->cand++ < n->max_len;
    }
    if (f->mode == M_STR_U && f->aux == 0)
        f->pos = (c | 0x20) == 'd';
    else if (f->mode == M_STR_U && f->aux == 1 && f->pos)
        return !(tern_json_digit(c) ? c >= '8' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f');
    return true;
}

/* A string of node n with a pattern at byte c: its text raw (no escapes), along the pattern's DFA
 * (its state in f->pos); the closing quote where the DFA accepts. */
static bool pattern_byte(const tern_json_schema *g, const struct node *n, struct tern_json_frame *f,
                         unsigned char c) {
    const int p = n->pattern - 1;
    if (c == '"')
        return g->dfa_accept[g->patterns[p].state0 + f->pos];
    return c != '\\' && tern_json_pattern_next(g, p, &f->pos, c);
}

static bool step(struct tern_json_state *st, struct tern_json_branch *b, unsigned char c) {
    if (b->done)
        return false;
    const tern_json_schema *g = st->g;
    struct tern_json_frame *f = &b->f[b->depth - 1];
    const struct node *n = &g->nodes[f->node];
    int r;
    switch (f->mode) {
    case M_STR:
        if (n->enumerated) {
            if (c == '"')
                return whole_name(f, g->enums + n->enum0, n->n_enum) >= 0 && finish(b);
            return narrow(g, f, g->enums + n->enum0, n->n_enum, c);
        }
        /* fall through */
    case M_STR_ESC:
    case M_STR_U:
        if ((n->limits & LIM_LEN) && !count_character(n, f, c))
            return false;
        if (n->pattern && !pattern_byte(g, n, f, c))
            return false;
        r = text_byte(f, c, M_STR);
        return r > 0 || (r == 0 && finish(b));
    case M_KEY:
        if (!n->any_keys) { /* a property's name: its value's node is the property's */
            if (c != '"')
                return narrow(g, f, g->prop_names + n->prop0, n->n_props, c);
            const int i = whole_name(f, g->prop_names + n->prop0, n->n_props);
            if (i < 0)
                return false;
            f->count = (uint16_t)(i + 1), f->pos = g->props[n->prop0 + i].node, f->mode = M_COLON;
            f->keys += f->keys < UINT16_MAX;
            return true;
        }
        /* fall through */
    case M_KEY_ESC:
    case M_KEY_U:
        r = text_byte(f, c, M_KEY);
        if (r == 0) /* any key: any value */
            f->mode = M_COLON, f->pos = 0, f->keys += f->keys < UINT16_MAX;
        return r >= 0;
    case M_MINUS:
    case M_DOT:
    case M_EXP_SIGN:
        if (!tern_json_digit(c))
            return false;
        if (f->mode == M_MINUS)
            f->mode = c == '0' ? M_ZERO : M_INT, f->cand = (uint64_t)(c - '0');
        else if (f->mode == M_DOT)
            f->mode = M_FRAC, f->aux |= c != '0' ? NUM_FNZ : 0;
        else
            f->mode = M_EXP;
        return in_range(n, f, false);
    case M_EXP_MARK:
        if (c == '+' || c == '-')
            f->mode = M_EXP_SIGN;
        else if (tern_json_digit(c))
            f->mode = M_EXP;
        else
            return false;
        return true;
    case M_ZERO:
    case M_INT:
    case M_FRAC:
    case M_EXP:
        if (tern_json_digit(c) && f->mode != M_ZERO) {
            if (f->mode == M_INT) /* past every bound, it stays past them */
                f->cand = f->cand > TERN_JSON_MAX_BOUND ? f->cand : 10 * f->cand + (uint64_t)(c - '0');
            else if (f->mode == M_FRAC && c != '0')
                f->aux |= NUM_FNZ;
            return in_range(n, f, false);
        }
        if (c == '.' && f->mode <= M_INT && !(f->aux & NUM_WHOLE)) {
            f->mode = M_DOT;
            return in_range(n, f, false);
        }
        if ((c == 'e' || c == 'E') && f->mode != M_EXP && !(f->aux & NUM_WHOLE) &&
            !(n->limits & (LIM_LO | LIM_HI))) {
            f->mode = M_EXP_MARK;
            return true;
        }
        if (!in_range(n, f, true))
            return false;
        finish(b); /* the number ended (numbers lie inside the object): c comes after it */
        return step(st, b, c);
    case M_ENUM: {
        struct tern_json_frame next = *f;
        if (narrow(g, &next, g->enums + n->lit0, n->n_lit, c)) {
            *f = next;
            return true;
        }
        if (whole_name(f, g->enums + n->lit0, n->n_lit) < 0)
            return false;
        finish(b); /* the value ended, as a number does */
        return step(st, b, c);
    }
    case M_LIT: {
        const char *lit = LITERALS[f->aux];
        if (c != (unsigned char)lit[f->pos])
            return false;
        return !lit[++f->pos] ? finish(b) : true;
    }
    default:
        break;
    }
    /* between tokens: whitespace, a bounded run of it, inside the object */
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        if ((f->mode == M_VALUE && b->depth == 1) || b->space == TERN_JSON_MAX_SPACE)
            return false;
        b->space++;
        return true;
    }
    b->space = 0;
    switch (f->mode) {
    case M_VALUE:
        return value_start(st, b, f, c);
    case M_OBJ_FIRST:
    case M_OBJ_AFTER:
        if (c == '}')
            return f->keys >= n->min_props && (n->any_keys || may_close(g, n, f->count)) && finish(b);
        if (f->mode == M_OBJ_AFTER) {
            if (c != ',' || !keys_left(g, n, f))
                return false;
            f->mode = M_OBJ_KEY;
            return true;
        }
        /* fall through */
    case M_OBJ_KEY:
        if (c != '"')
            return false;
        f->mode = M_KEY, f->pos = 0, f->aux = 0;
        f->cand = keys_left(g, n, f);
        return f->cand != 0;
    case M_COLON:
        if (c != ':')
            return false;
        f->mode = M_OBJ_AFTER;
        return push(b, f->pos);
    case M_ARR_FIRST:
    case M_ARR_AFTER:
        if (c == ']')
            return f->count >= n->min_items && finish(b);
        if (f->mode == M_ARR_AFTER && c != ',')
            return false;
        if (f->count == n->max_items)
            return false;
        f->count++;
        if (!push(b, n->items))
            return false;
        if (f->mode == M_ARR_AFTER)
            return true;
        f->mode = M_ARR_AFTER;
        return value_start(st, b, &b->f[b->depth - 1], c);
    default:
        return false;
    }
}

/* The readings still going, each once (a dropped one has no levels and is not done) */
static void compact(struct tern_json_state *st) {
    int kept = 0;
    for (int k = 0; k < st->n; k++) {
        bool keep = st->b[k].depth || st->b[k].done;
        for (int j = 0; keep && j < kept; j++)
            keep = !same_branch(&st->b[j], &st->b[k]);
        if (keep && kept != k)
            copy_branch(&st->b[kept], &st->b[k]);
        kept += keep;
    }
    st->n = (uint8_t)kept;
}

bool tern_json_feed(struct tern_json_state *st, const char *bytes, size_t n) {
    size_t i = 0;
    while (i < n && st->n == 1) /* one reading, the common case: nothing to compact until it forks */
        if (!step(st, &st->b[0], (unsigned char)bytes[i++])) {
            drop(&st->b[0]);
            break;
        }
    compact(st);
    for (; i < n && st->n; i++) {
        const int before = st->n; /* branches a step adds have read this byte */
        for (int k = 0; k < before; k++)
            if (!step(st, &st->b[k], (unsigned char)bytes[i]))
                drop(&st->b[k]);
        compact(st);
    }
    return st->n > 0;
}

/* dst <- src: the branches and levels in use */
static void copy_state(struct tern_json_state *dst, const struct tern_json_state *src) {
    dst->g = src->g;
    dst->n = src->n;
    for (int i = 0; i < src->n; i++)
        copy_branch(&dst->b[i], &src->b[i]);
}

/* Where a reading stands, for tokens of UTF-8 without a quote, backslash or control byte (class
 * C_PLAIN below): S_NONE outside a string (or in an enumerated string: the recognizer runs them),
 * S_PLAIN in a string that takes any text (it takes them all), S_LENGTH in one of bounded length
 * (it takes those that fit), S_PATTERN in one with a pattern (it takes those its DFA can go on
 * after). Within a character, their first byte is refused already. */
enum { S_NONE, S_PLAIN, S_LENGTH, S_PATTERN };

static int string_kind(const tern_json_schema *g, const struct tern_json_branch *b) {
    if (b->done)
        return S_NONE;
    const struct tern_json_frame *f = &b->f[b->depth - 1];
    const struct node *n = &g->nodes[f->node];
    if (f->mode == M_KEY && n->any_keys)
        return S_PLAIN;
    if (f->mode != M_STR || n->enumerated)
        return S_NONE;
    return n->pattern ? S_PATTERN : n->limits & LIM_LEN ? S_LENGTH : S_PLAIN;
}

/* ---------------------------------------------------------------- the vocabulary */

/* A token's lead: its first byte (0-255), or one of these; its class: what its first byte leaves
 * to decide. */
enum { LEAD_NONE = 256, LEAD_EOG = 257 }; /* no bytes (control tokens); end of generation */
enum {
    C_DONE = 0,  /* one byte: its lead decides */
    C_REST = 1,  /* more bytes: the recognizer runs them */
    C_PLAIN = 2, /* more bytes, UTF-8 (its last character may stay open), none a quote, backslash or
                    control byte: a string between characters takes them, if it has room or a pattern
                    for them (string_kind) */
    C_CTRL = 4,  /* more bytes, the first of those three kinds a control byte: no string takes it */
    C_BAD = 8,   /* more bytes, none of those three kinds, not UTF-8 even where a character may stay open
                    at its end: no string between characters takes it (a synthetic vocabulary of random
                    merges has many) */
};

struct tern_json_vocab {
    int32_t n;
    uint16_t *lead;  /* [n] */
    uint8_t *cls;    /* [n] */
    uint16_t *chars; /* [n] C_PLAIN tokens: their characters */
    uint32_t *start; /* [n + 1] token id's bytes: bytes[start[id] .. start[id + 1]) */
    char *bytes;
};

void tern_json_vocab_free(tern_json_vocab *v) {
    if (!v)
        return;
    free(v->lead);
    free(v->cls);
    free(v->chars);
    free(v->start);
    free(v->bytes);
    free(v);
}

tern_status tern_json_vocab_create(const tern_tokenizer *tok, tern_json_vocab **out) {
    *out = NULL;
    const int32_t n = tern_tokenizer_n_vocab(tok);
    const size_t piece = tern_detok_max_bytes(tok) + 1;
    tern_json_vocab *v = calloc(1, sizeof *v);
    char *buf = malloc(piece);
    size_t cap = (size_t)n * 8, len = 0;
    if (v) {
        v->n = n;
        v->lead = malloc((size_t)n * sizeof *v->lead);
        v->cls = malloc((size_t)n);
        v->chars = malloc((size_t)n * sizeof *v->chars);
        v->start = malloc(((size_t)n + 1) * sizeof *v->start);
        v->bytes = malloc(cap);
    }
    bool ok = v && buf && v->lead && v->cls && v->chars && v->start && v->bytes;
    for (int32_t id = 0; ok && id < n; id++) {
        v->start[id] = (uint32_t)len;
        v->cls[id] = C_DONE;
        v->chars[id] = 0;
        if (tern_tokenizer_is_eog(tok, id)) {
            v->lead[id] = LEAD_EOG;
            continue;
        }
        size_t k = tern_tokenizer_token_type(tok, id) == TERN_TOKEN_CONTROL
                       ? 0
                       : tern_token_to_bytes(tok, id, false, buf, piece);
        k = k < piece ? k : piece;
        if (len + k > cap) {
            char *b = realloc(v->bytes, cap = 2 * (len + k));
            if (!(ok = b != NULL))
                break;
            v->bytes = b;
        }
        memcpy(v->bytes + len, buf, k);
        len += k;
        size_t i = 0;
        while (i < k && (unsigned char)buf[i] >= 0x20 && buf[i] != '"' && buf[i] != '\\')
            i++;
        struct tern_json_frame utf8 = {.mode = M_STR}; /* UTF-8 from between characters */
        for (size_t j = 0; j < i && utf8.mode == M_STR; j++) {
            utf8.mode = text_byte(&utf8, (unsigned char)buf[j], M_STR) == 1 ? M_STR : M_VALUE;
            v->chars[id] += ((unsigned char)buf[j] & 0xc0) != 0x80; /* a piece is far below 65536 */
        }
        v->lead[id] = k ? (unsigned char)buf[0] : LEAD_NONE;
        v->cls[id] = k <= 1                         ? C_DONE
                     : i == k                       ? (utf8.mode == M_STR ? C_PLAIN : C_REST | C_BAD)
                     : (unsigned char)buf[i] < 0x20 ? C_REST | C_CTRL
                                                    : C_REST;
    }
    free(buf);
    if (!ok) {
        tern_json_vocab_free(v);
        tern_log_error("out of memory for JSON mode's table of %d tokens", n);
        return TERN_ERR_NOMEM;
    }
    v->start[n] = (uint32_t)len;
    *out = v;
    return TERN_OK;
}

/* A reading in a string of bounded length (room: the characters it has room for; pattern -1) or
 * with a pattern (its DFA at state `at`), as plain tokens meet it */
struct fit {
    uint32_t room;
    int pattern;
    uint16_t at;
};

static int fits_of(const struct tern_json_state *st, struct fit *fits) {
    int n = 0;
    for (int i = 0; i < st->n; i++) {
        const struct tern_json_frame *f = &st->b[i].f[st->b[i].depth - 1];
        const struct node *nd = &st->g->nodes[f->node];
        const int kind = string_kind(st->g, &st->b[i]);
        if (kind == S_LENGTH)
            fits[n++] = (struct fit){.room = nd->max_len - (uint32_t)f->cand, .pattern = -1};
        if (kind == S_PATTERN)
            fits[n++] = (struct fit){.pattern = nd->pattern - 1, .at = f->pos};
    }
    return n;
}

/* Whether one of the readings fits[n] takes plain token id */
static bool plain_fits(const tern_json_schema *g, const tern_json_vocab *v, const struct fit *fits, int n,
                       int32_t id) {
    for (int i = 0; i < n; i++) {
        if (fits[i].pattern < 0) {
            if (v->chars[id] <= fits[i].room)
                return true;
            continue;
        }
        uint16_t at = fits[i].at;
        uint32_t k = v->start[id];
        while (k < v->start[id + 1] &&
               tern_json_pattern_next(g, fits[i].pattern, &at, (unsigned char)v->bytes[k]))
            k++;
        if (k == v->start[id + 1])
            return true;
    }
    return false;
}

int32_t tern_json_allowed(const tern_json_vocab *v, const struct tern_json_state *st, uint8_t *allowed,
                          int32_t n_vocab) {
    /* what each lead allows: most tokens are decided there without running the recognizer, and
     * inside a string so are the plain ones (below), those with a control byte before any quote
     * and those that are not UTF-8. One mask over the 2b4t shape's synthetic vocabulary of 128256
     * tokens (random merges: 38287 with quotes, backslashes or control bytes, 66107 not UTF-8),
     * one core (December 2026): after '{' 0.19 ms, in a string 1.28, in one with maxLength 1.43,
     * in one with a pattern 1.87, after ':' 1.03, in a number 0.66 (before strings were held to
     * UTF-8 and a state held several readings: 0.15, 1.01, -, -, 0.82, 0.51; running every token
     * from its first byte: 0.62, 1.50, -, -, 1.13, 0.97) */
    struct tern_json_state s;
    bool allow[LEAD_EOG + 1];
    for (int b = 0; b < 256; b++) {
        copy_state(&s, st);
        allow[b] = tern_json_feed(&s, (const char[]){(char)b}, 1);
    }
    allow[LEAD_NONE] = false;
    allow[LEAD_EOG] = tern_json_complete(st);
    /* Inside a string, the readings of one text stand in the same lexical place (in a string, an
     * escape, a character), so plain tokens (C_PLAIN) are decided without the recognizer where every
     * reading is in a string of the kinds string_kind names: all are kept where one takes any text,
     * else those one reading has room or a pattern for; a control byte no string takes. */
    int kinds = 0;
    bool between = true; /* characters */
    for (int i = 0; i < st->n; i++) {
        kinds |= 1 << string_kind(st->g, &st->b[i]);
        between &= !st->b[i].done && !st->b[i].f[st->b[i].depth - 1].aux;
    }
    const bool in_string = !(kinds & 1 << S_NONE), plain = kinds & 1 << S_PLAIN;
    struct fit fits[TERN_JSON_MAX_BRANCHES];
    const int n_fits = in_string && !plain ? fits_of(st, fits) : 0;
    const uint8_t run = in_string ? C_REST : C_REST | C_PLAIN,
                  refuse = in_string ? (uint8_t)(C_CTRL | (between ? C_BAD : 0)) : 0;
    int32_t kept = 0;
    for (int32_t id = v->n; id < n_vocab; id++)
        allowed[id] = 0;
    for (int32_t id = 0; id < v->n && id < n_vocab; id++) {
        bool keep = allow[v->lead[id]] && !(v->cls[id] & refuse);
        if (keep && (v->cls[id] & run)) {
            copy_state(&s, st);
            keep = tern_json_feed(&s, v->bytes + v->start[id], v->start[id + 1] - v->start[id]);
        } else if (keep && in_string && !plain && v->cls[id] == C_PLAIN) {
            keep = plain_fits(st->g, v, fits, n_fits, id);
        }
        kept += keep;
        allowed[id] = keep;
    }
    return kept;
}

void tern_json_advance(const tern_json_vocab *v, struct tern_json_state *st, int32_t id) {
    if (id >= 0 && id < v->n && v->lead[id] != LEAD_EOG)
        tern_json_feed(st, v->bytes + v->start[id], v->start[id + 1] - v->start[id]);
}
