/* JSON mode's string patterns (JSON Schema's "pattern", and "format" through the patterns below):
 * an ECMA-262 regular expression of a subset, compiled to a DFA over the bytes a JSON string holds
 * raw, kept in the compiled schema beside the nodes (json_schema.h: struct pattern).
 *
 * The subset: literal characters (UTF-8), '.', classes ("[a-z_]", "[^,]"; their members ASCII),
 * the escapes \d \D \w \W \s \S, \t \n \r \f \v \0, \xHH, \uXXXX and escaped punctuation, groups
 * "( )" and "(?: )", '|', and the quantifiers * + ? {n} {n,} {n,m} (lazy or not: the same strings).
 * '^' may open the pattern and '$' close it; a pattern without them matches anywhere in the string,
 * as JSON Schema has it. Refused by name: backreferences, lookaround, \b, \p, anchors elsewhere.
 *
 * The DFA runs over the string's raw bytes (Thompson's construction, then subsets over classes of
 * bytes that every edge treats alike). Escapes are not taken in a string with a pattern: its text
 * is written raw, so characters JSON must escape (quotes, backslashes, control characters) never
 * occur in it, and states from which no accepting one can be reached through raw text are cut: a
 * string the mask lets begin can always end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_schema.h"

/* NFA states; the repetition a quantifier takes; groups within groups; the subset construction's
 * steps (a hostile pattern is refused within a fraction of a second) */
enum { MAX_NFA = 8192, MAX_REPEAT = 1000, MAX_GROUPS = 64, MAX_WORK = 20000000 };

typedef struct {
    uint64_t w[4];
} byteset;

static void set_range(byteset *s, int lo, int hi) {
    for (int b = lo; b <= hi; b++)
        s->w[b >> 6] |= 1ull << (b & 63);
}

static bool has(const byteset *s, int b) {
    return (s->w[b >> 6] >> (b & 63)) & 1;
}

/* One NFA state: up to two empty edges, or one edge on a set of bytes. */
struct nfa_state {
    int32_t eps[2], next;
    byteset set;
};

struct frag {
    int start, end; /* end: a state without edges yet */
};

struct parser {
    const char *re;
    size_t len, at;
    struct nfa_state *s;
    int n;
    char *why;
    size_t why_size;
    int depth; /* groups open */
    bool failed;
};

static int fail(struct parser *p, const char *what) {
    if (!p->failed)
        snprintf(p->why, p->why_size, "'pattern' '%.*s': %s", (int)(p->len < 60 ? p->len : 60), p->re, what);
    p->failed = true;
    return -1;
}

static int state(struct parser *p) {
    if (p->n == MAX_NFA)
        return fail(p, "too complex (its repetitions make too many states)");
    p->s[p->n] = (struct nfa_state){.eps = {-1, -1}, .next = -1};
    return p->n++;
}

static void link(struct parser *p, int from, int to) {
    if (from >= 0 && to >= 0)
        p->s[from].eps[p->s[from].eps[0] >= 0] = to;
}

static struct frag empty(struct parser *p) {
    const int s = state(p);
    return (struct frag){s, s};
}

static struct frag bytes(struct parser *p, const byteset *set) {
    const int a = state(p), b = state(p);
    if (a >= 0 && b >= 0)
        p->s[a].set = *set, p->s[a].next = b;
    return (struct frag){a, b};
}

static struct frag range(struct parser *p, int lo, int hi) {
    byteset s = {{0}};
    set_range(&s, lo, hi);
    return bytes(p, &s);
}

static struct frag concat(struct parser *p, struct frag a, struct frag b) {
    link(p, a.end, b.start);
    return (struct frag){a.start, b.end};
}

static struct frag either(struct parser *p, struct frag a, struct frag b) {
    const int s = state(p), e = state(p);
    link(p, s, a.start), link(p, s, b.start), link(p, a.end, e), link(p, b.end, e);
    return (struct frag){s, e};
}

/* f any number of times (many: star), or at most once */
static struct frag repeat(struct parser *p, struct frag f, bool many) {
    const int s = state(p), e = state(p);
    link(p, s, f.start);
    link(p, s, e);
    if (many)
        link(p, f.end, f.start);
    link(p, f.end, e);
    return (struct frag){s, e};
}

/* Any character U+0080 and up, as UTF-8 (ECMA's '.' leaves out U+2028 and U+2029: but_separators) */
static struct frag non_ascii(struct parser *p, bool but_separators) {
    struct frag two = concat(p, range(p, 0xc2, 0xdf), range(p, 0x80, 0xbf));
    struct frag three =
        concat(p, concat(p, range(p, 0xe0, 0xef), range(p, 0x80, 0xbf)), range(p, 0x80, 0xbf));
    if (but_separators) {
        byteset lead = {{0}}, last = {{0}};
        set_range(&lead, 0xe0, 0xef), lead.w[0xe2 >> 6] &= ~(1ull << (0xe2 & 63));
        set_range(&last, 0x80, 0xa7), set_range(&last, 0xaa, 0xbf);
        three = concat(p, concat(p, bytes(p, &lead), range(p, 0x80, 0xbf)), range(p, 0x80, 0xbf));
        three = either(
            p, three, concat(p, concat(p, range(p, 0xe2, 0xe2), range(p, 0x81, 0xbf)), range(p, 0x80, 0xbf)));
        three = either(p, three,
                       concat(p, concat(p, range(p, 0xe2, 0xe2), range(p, 0x80, 0x80)), bytes(p, &last)));
    }
    struct frag four = range(p, 0xf0, 0xf4);
    for (int i = 0; i < 3; i++)
        four = concat(p, four, range(p, 0x80, 0xbf));
    return either(p, either(p, two, three), four);
}

/* An ASCII set, and with non_ascii_too any character U+0080 and up besides */
static struct frag chars(struct parser *p, const byteset *ascii, bool non_ascii_too, bool but_separators) {
    const struct frag f = bytes(p, ascii);
    return non_ascii_too ? either(p, f, non_ascii(p, but_separators)) : f;
}

/* \d \w \s and their complements (upper case) within ASCII into set; false for another letter. \D and
 * \W also match every character past ASCII (the caller adds them), \S none. */
static bool class_escape(char c, byteset *set, bool *negated) {
    byteset s = {{0}};
    switch (c | 0x20) {
    case 'd':
        set_range(&s, '0', '9');
        break;
    case 'w':
        set_range(&s, '0', '9'), set_range(&s, 'A', 'Z'), set_range(&s, 'a', 'z'), set_range(&s, '_', '_');
        break;
    case 's': /* ASCII's: \s and \S leave Unicode's spaces past ASCII out (both stricter than ECMA) */
        set_range(&s, '\t', '\r'), set_range(&s, ' ', ' ');
        break;
    default:
        return false;
    }
    *negated = c >= 'A' && c <= 'Z';
    for (int i = 0; i < 4; i++)
        set->w[i] |= *negated ? ~s.w[i] & (i < 2 ? ~0ull : 0) : s.w[i];
    return true;
}

/* The code point of a character escape (\t \n \r \f \v \0 \xHH \uXXXX or punctuation) at p->at
 * (after the backslash); -1 when it is none of these (p->failed where it cannot be). */
static int32_t char_escape(struct parser *p) {
    const char c = p->re[p->at];
    static const char controls[] = "tnrfv0";
    static const char values[] = "\t\n\r\f\v";
    const char *k = c ? strchr(controls, c) : NULL;
    if (k) {
        p->at++;
        return c == '0' ? 0 : (unsigned char)values[k - controls];
    }
    if (c == 'x' || c == 'u') {
        const int digits = c == 'x' ? 2 : 4;
        int32_t v = 0;
        for (int i = 1; i <= digits; i++) {
            const char h = p->at + (size_t)i < p->len ? p->re[p->at + (size_t)i] : 0;
            const int d = h >= '0' && h <= '9'                     ? h - '0'
                          : (h | 0x20) >= 'a' && (h | 0x20) <= 'f' ? (h | 0x20) - 'a' + 10
                                                                   : -1;
            if (d < 0)
                return fail(p, "a \\x or \\u escape without its hex digits");
            v = v * 16 + d;
        }
        if (v >= 0xd800 && v < 0xe000)
            return fail(p, "\\u escapes of surrogates are not supported");
        p->at += (size_t)digits + 1;
        return v;
    }
    if (c && strchr("^$\\.*+?()[]{}|/-,:=!<>#&~%@'\"` ", c)) {
        p->at++;
        return (unsigned char)c;
    }
    return -1;
}

/* A code point as its UTF-8 bytes, one edge each */
static struct frag literal(struct parser *p, int32_t cp) {
    unsigned char b[4];
    int n = 0;
    if (cp < 0x80)
        b[n++] = (unsigned char)cp;
    else if (cp < 0x800)
        b[n++] = (unsigned char)(0xc0 | cp >> 6), b[n++] = (unsigned char)(0x80 | (cp & 63));
    else if (cp < 0x10000)
        b[n++] = (unsigned char)(0xe0 | cp >> 12), b[n++] = (unsigned char)(0x80 | (cp >> 6 & 63)),
        b[n++] = (unsigned char)(0x80 | (cp & 63));
    else
        b[n++] = (unsigned char)(0xf0 | cp >> 18), b[n++] = (unsigned char)(0x80 | (cp >> 12 & 63)),
        b[n++] = (unsigned char)(0x80 | (cp >> 6 & 63)), b[n++] = (unsigned char)(0x80 | (cp & 63));
    struct frag f = range(p, b[0], b[0]);
    for (int i = 1; i < n; i++)
        f = concat(p, f, range(p, b[i], b[i]));
    return f;
}

/* A class "[...]" at p->at (after '['): ASCII members, ranges, \d \w \s, escapes */
static struct frag char_class(struct parser *p) {
    const bool negated = p->at < p->len && p->re[p->at] == '^';
    p->at += negated;
    byteset set = {{0}};
    while (p->at < p->len && p->re[p->at] != ']') {
        int32_t lo;
        if (p->re[p->at] == '\\') {
            p->at++;
            bool neg = false;
            if (p->at < p->len && class_escape(p->re[p->at], &set, &neg)) {
                if (neg) {
                    fail(p, "\\D, \\W and \\S within a class are not supported");
                    return empty(p);
                }
                p->at++;
                continue;
            }
            if ((lo = char_escape(p)) < 0) {
                fail(p, "an escape it does not take within a class");
                return empty(p);
            }
        } else {
            lo = (unsigned char)p->re[p->at++];
        }
        int32_t hi = lo;
        if (p->at + 1 < p->len && p->re[p->at] == '-' && p->re[p->at + 1] != ']') {
            p->at++;
            if (p->re[p->at] == '\\') {
                p->at++;
                hi = char_escape(p);
            } else {
                hi = (unsigned char)p->re[p->at++];
            }
            if (hi < lo) {
                fail(p, "a class range out of order");
                return empty(p);
            }
        }
        if (hi >= 0x80) {
            fail(p, "characters past ASCII within a class are not supported");
            return empty(p);
        }
        set_range(&set, lo, hi);
    }
    if (p->at >= p->len) {
        fail(p, "a class without its ']'");
        return empty(p);
    }
    p->at++;
    if (negated)
        for (int i = 0; i < 2; i++)
            set.w[i] = ~set.w[i];
    return chars(p, &set, negated, false);
}

static struct frag alternation(struct parser *p);

/* One atom at p->at: a group, a class, '.', an escape or a character */
static struct frag atom(struct parser *p) {
    const unsigned char c = (unsigned char)p->re[p->at++];
    byteset set = {{0}};
    bool negated = false;
    switch (c) {
    case '(': {
        if (p->depth == MAX_GROUPS) {
            fail(p, "groups nest too deep");
            return empty(p);
        }
        if (p->at < p->len && p->re[p->at] == '?') {
            if (p->at + 1 >= p->len || p->re[p->at + 1] != ':') {
                fail(p, "lookaround and named groups are not supported");
                return empty(p);
            }
            p->at += 2;
        }
        p->depth++;
        const struct frag f = alternation(p);
        p->depth--;
        if (p->at >= p->len || p->re[p->at] != ')') {
            fail(p, "a group without its ')'");
            return f;
        }
        p->at++;
        return f;
    }
    case '[':
        return char_class(p);
    case '.':
        set_range(&set, 0, 0x7f), set.w[0] &= ~(1ull << '\n' | 1ull << '\r');
        return chars(p, &set, true, true);
    case '\\': {
        if (p->at >= p->len) {
            fail(p, "a trailing backslash");
            return empty(p);
        }
        if (class_escape(p->re[p->at], &set, &negated)) {
            const bool spaces = (p->re[p->at++] | 0x20) == 's';
            return chars(p, &set, negated && !spaces, false);
        }
        const int32_t cp = char_escape(p);
        if (cp >= 0)
            return literal(p, cp);
        fail(p, p->re[p->at] >= '1' && p->re[p->at] <= '9'
                    ? "backreferences are not supported"
                    : "the escape is not supported (\\b, \\p and the like)");
        return empty(p);
    }
    case '^':
    case '$':
        fail(p, "'^' and '$' are taken only at the pattern's ends");
        return empty(p);
    case '*':
    case '+':
    case '?':
        fail(p, "a quantifier without anything before it");
        return empty(p);
    default:
        break;
    }
    if (c < 0x80)
        return literal(p, c);
    /* a character past ASCII, as the schema's UTF-8 holds it */
    const int n = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
    struct frag f = range(p, c, c);
    for (int i = 0; i < n && p->at < p->len; i++, p->at++)
        f = concat(p, f, range(p, (unsigned char)p->re[p->at], (unsigned char)p->re[p->at]));
    return f;
}

/* A quantifier {n}, {n,} or {n,m} at p->at (on '{'): false, p->at unmoved, when it is not one (a
 * literal brace then) */
static bool braces(struct parser *p, int *lo, int *hi) {
    size_t at = p->at + 1;
    long a = 0, b = -1;
    const size_t d0 = at;
    for (; at < p->len && p->re[at] >= '0' && p->re[at] <= '9'; at++) /* past MAX_REPEAT it stops growing */
        a = a > MAX_REPEAT ? a : a * 10 + (p->re[at] - '0');
    if (at == d0)
        return false;
    if (at < p->len && p->re[at] == ',') {
        const size_t d1 = ++at;
        b = 0;
        for (; at < p->len && p->re[at] >= '0' && p->re[at] <= '9'; at++)
            b = b > MAX_REPEAT ? b : b * 10 + (p->re[at] - '0');
        if (at == d1)
            b = -1;
    } else {
        b = a;
    }
    if (at >= p->len || p->re[at] != '}')
        return false;
    p->at = at + 1;
    *lo = (int)a, *hi = (int)b;
    return true;
}

/* An atom and its quantifier: the atom's copies are its text parsed again */
static struct frag quantified(struct parser *p) {
    const size_t a0 = p->at;
    struct frag f = atom(p);
    const size_t a1 = p->at;
    int lo = 1, hi = 1;
    const char q = p->at < p->len ? p->re[p->at] : 0;
    if (q == '*' || q == '+' || q == '?')
        lo = q == '+', hi = q == '?' ? 1 : -1, p->at++;
    else if (!(q == '{' && braces(p, &lo, &hi)))
        return f;
    if (lo > MAX_REPEAT || hi > MAX_REPEAT || (hi >= 0 && hi < lo)) {
        fail(p, "a repetition out of order or past 1000");
        return f;
    }
    if (p->at < p->len && p->re[p->at] == '?') /* lazy: the same strings */
        p->at++;
    const size_t after = p->at;
    struct frag out = empty(p);
    for (int i = 0; i < (hi < 0 ? lo + 1 : hi) && !p->failed; i++) {
        struct frag copy = f;
        if (i > 0) {
            p->at = a0;
            copy = atom(p);
            p->at = a1;
        }
        out = concat(p, out, i < lo ? copy : repeat(p, copy, hi < 0));
    }
    p->at = after;
    return out;
}

static struct frag sequence(struct parser *p) {
    struct frag f = empty(p);
    while (p->at < p->len && p->re[p->at] != '|' && p->re[p->at] != ')' && !p->failed)
        f = concat(p, f, quantified(p));
    return f;
}

static struct frag alternation(struct parser *p) {
    struct frag f = sequence(p);
    while (p->at < p->len && p->re[p->at] == '|' && !p->failed) {
        p->at++;
        f = either(p, f, sequence(p));
    }
    return f;
}

/* ---------------------------------------------------------------- subsets */

struct builder {
    const struct nfa_state *s;
    int n, words;
    uint64_t *sets; /* [max_states][words]: the DFA's states as sets of NFA states */
    int n_states, max_states;
    int *table; /* [table_mask + 1]: 1 + a DFA state, by the hash of its set (open addressing) */
    uint64_t table_mask;
};

static void closure(const struct builder *b, uint64_t *set, int *stack) {
    int top = 0;
    for (int i = 0; i < b->n; i++)
        if ((set[i >> 6] >> (i & 63)) & 1)
            stack[top++] = i;
    while (top) {
        const int i = stack[--top];
        for (int k = 0; k < 2; k++) {
            const int j = b->s[i].eps[k];
            if (j >= 0 && !((set[j >> 6] >> (j & 63)) & 1)) {
                set[j >> 6] |= 1ull << (j & 63);
                stack[top++] = j;
            }
        }
    }
}

/* The DFA state of set (added when new); -1 when there is no room */
static int find(struct builder *b, const uint64_t *set) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < b->words; i++)
        h = (h ^ set[i]) * 0x100000001b3ull;
    for (h &= b->table_mask; b->table[h]; h = (h + 1) & b->table_mask)
        if (!memcmp(b->sets + (size_t)(b->table[h] - 1) * b->words, set, (size_t)b->words * 8))
            return b->table[h] - 1;
    if (b->n_states == b->max_states)
        return -1;
    memcpy(b->sets + (size_t)b->n_states * b->words, set, (size_t)b->words * 8);
    b->table[h] = b->n_states + 1;
    return b->n_states++;
}

/* Whether the pattern has a '|' outside groups and classes (to which an anchor would bind alone) */
static bool top_level_bar(const char *re, size_t len) {
    int depth = 0;
    bool in_class = false;
    for (size_t i = 0; i < len; i++) {
        if (re[i] == '\\')
            i++;
        else if (in_class)
            in_class = re[i] != ']';
        else if (re[i] == '[')
            in_class = true;
        else if (re[i] == '(' || re[i] == ')')
            depth += re[i] == '(' ? 1 : -1;
        else if (re[i] == '|' && depth == 0)
            return true;
    }
    return false;
}

/* Whether byte c can stand raw in a JSON string's text */
static bool raw(int c) {
    return c >= 0x20 && c != '"' && c != '\\';
}

int tern_json_pattern_compile(tern_json_schema *g, const char *re, size_t len, char *why, size_t why_size) {
    if (g->n_patterns == MAX_PATTERNS) {
        snprintf(why, why_size, "more than %d patterns", MAX_PATTERNS);
        return -1;
    }
    struct parser p = {
        .re = re, .len = len, .s = malloc(MAX_NFA * sizeof *p.s), .why = why, .why_size = why_size};
    if (!p.s) {
        snprintf(why, why_size, "out of memory");
        return -1;
    }
    const bool anchored_start = len > 0 && re[0] == '^';
    size_t backslashes = 0;
    while (backslashes + 1 < len && re[len - 2 - backslashes] == '\\')
        backslashes++;
    const bool anchored_end = len > (size_t)anchored_start && re[len - 1] == '$' && backslashes % 2 == 0;
    p.at = anchored_start;
    p.len = len - anchored_end;
    if ((anchored_start || anchored_end) && top_level_bar(re, len)) {
        fail(&p, "'^' or '$' with a '|' outside any group is not supported (write ^(a|b)$)");
        free(p.s);
        return -1;
    }
    byteset all = {{~0ull, ~0ull, 0, 0}};
    struct frag f = anchored_start ? empty(&p) : repeat(&p, chars(&p, &all, true, false), true);
    f = concat(&p, f, alternation(&p));
    if (p.at < p.len && !p.failed)
        fail(&p, p.re[p.at] == ')' ? "a ')' without its '('" : "unexpected text");
    if (!anchored_end)
        f = concat(&p, f, repeat(&p, chars(&p, &all, true, false), true));
    p.len = len;
    int result = -1;
    /* classes of bytes: those every edge treats alike */
    uint8_t cls[256] = {0};
    int n_classes = 1;
    for (int i = 0; i < p.n && !p.failed; i++) {
        if (p.s[i].next < 0)
            continue;
        int map[256][2];
        memset(map, -1, sizeof map);
        int next = 0;
        for (int c = 0; c < 256; c++) {
            int *m = &map[cls[c]][has(&p.s[i].set, c)];
            if (*m < 0)
                *m = next++;
            cls[c] = (uint8_t)*m;
        }
        n_classes = next;
    }
    struct builder b = {
        .s = p.s, .n = p.n, .words = (p.n + 63) / 64, .max_states = MAX_DFA_STATES - g->n_dfa_states};
    const int cells_left = MAX_DFA_CELLS - g->n_dfa_cells;
    if (b.max_states > cells_left / n_classes)
        b.max_states = cells_left / n_classes;
    b.sets = calloc((size_t)(b.max_states + 1) * (size_t)b.words, 8);
    for (b.table_mask = 1; b.table_mask < 2 * (uint64_t)b.max_states;)
        b.table_mask <<= 1;
    b.table = calloc(b.table_mask--, sizeof *b.table);
    int *stack = malloc((size_t)p.n * sizeof *stack);
    int32_t *trans = malloc((size_t)(b.max_states + 1) * (size_t)n_classes * sizeof *trans);
    uint64_t *set = calloc((size_t)b.words, 8);
    int *members = malloc((size_t)p.n * sizeof *members);
    if (!b.sets || !b.table || !stack || !trans || !set || !members) {
        snprintf(why, why_size, "out of memory");
        p.failed = true;
    }
    if (!p.failed) { /* the states reachable from the start, and their edges on each class */
        set[f.start >> 6] |= 1ull << (f.start & 63);
        closure(&b, set, stack);
        if (find(&b, set) < 0)
            fail(&p, "too complex (the schema's patterns fill their room)");
        int first[256]; /* a byte of each class */
        for (int c = 255; c >= 0; c--)
            first[cls[c]] = c;
        long work = 0;
        for (int d = 0; d < b.n_states && !p.failed; d++) {
            const uint64_t *from = b.sets + (size_t)d * b.words;
            int m = 0; /* the members with an edge on bytes */
            for (int i = 0; i < p.n; i++)
                if (((from[i >> 6] >> (i & 63)) & 1) && p.s[i].next >= 0)
                    members[m++] = i;
            for (int k = 0; k < n_classes && !p.failed; k++) {
                work += m + p.n + 3l * b.words; /* the edges, the closure, the search */
                if (work > MAX_WORK) {
                    fail(&p, "too complex (its automaton takes too long to build)");
                    break;
                }
                memset(set, 0, (size_t)b.words * 8);
                bool any = false;
                for (int j = 0; j < m; j++)
                    if (has(&p.s[members[j]].set, first[k]))
                        set[p.s[members[j]].next >> 6] |= 1ull << (p.s[members[j]].next & 63), any = true;
                if (!any) {
                    trans[d * n_classes + k] = -1;
                    continue;
                }
                closure(&b, set, stack);
                if ((trans[d * n_classes + k] = find(&b, set)) < 0)
                    fail(&p, "too complex (its automaton has too many states)");
            }
        }
    }
    if (!p.failed) { /* live states: an accepting one is reachable through raw text */
        bool *live = calloc((size_t)b.n_states, 1);
        bool raw_class[256] = {false};
        for (int c = 0; c < 256; c++)
            raw_class[cls[c]] |= raw(c);
        for (int d = 0; live && d < b.n_states; d++)
            live[d] = (b.sets[(size_t)d * b.words + (f.end >> 6)] >> (f.end & 63)) & 1;
        for (bool grew = true; live && grew;) {
            grew = false;
            for (int d = 0; d < b.n_states; d++)
                for (int k = 0; k < n_classes && !live[d]; k++)
                    if (raw_class[k] && trans[d * n_classes + k] >= 0 && live[trans[d * n_classes + k]])
                        live[d] = grew = true;
        }
        if (!live)
            snprintf(why, why_size, "out of memory");
        else if (!live[0])
            fail(&p, "no text a JSON string holds unescaped matches it");
        else {
            struct pattern *pt = &g->patterns[g->n_patterns];
            *pt = (struct pattern){
                .cell0 = g->n_dfa_cells, .state0 = g->n_dfa_states, .n_classes = (uint16_t)n_classes};
            memcpy(g->pattern_class[g->n_patterns], cls, 256);
            for (int d = 0; d < b.n_states; d++) {
                g->dfa_accept[pt->state0 + d] =
                    (b.sets[(size_t)d * b.words + (f.end >> 6)] >> (f.end & 63)) & 1;
                for (int k = 0; k < n_classes; k++) {
                    const int t = trans[d * n_classes + k];
                    g->dfa_next[pt->cell0 + d * n_classes + k] =
                        t >= 0 && live[t] && raw_class[k] ? (uint16_t)(t + 1) : 0;
                }
            }
            g->n_dfa_states = (uint16_t)(g->n_dfa_states + b.n_states);
            g->n_dfa_cells = (uint16_t)(g->n_dfa_cells + b.n_states * n_classes);
            result = g->n_patterns++;
        }
        free(live);
    }
    free(members);
    free(set);
    free(trans);
    free(stack);
    free(b.sets);
    free(b.table);
    free(p.s);
    return result;
}

bool tern_json_pattern_matches(const tern_json_schema *g, int pattern, const char *s, size_t len) {
    uint16_t st = 0;
    for (size_t i = 0; i < len; i++)
        if (!raw((unsigned char)s[i]) || !tern_json_pattern_next(g, pattern, &st, (unsigned char)s[i]))
            return false;
    return g->dfa_accept[g->patterns[pattern].state0 + st];
}
