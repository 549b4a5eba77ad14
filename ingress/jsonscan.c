/*
 * jsonscan: see jsonscan.h for the contract.
 *
 * A recursive-descent validator. Each call carries a bit mask of the pointers whose tokens
 * matched the path so far ("alive"); a value at depth d completes every alive pointer with d
 * tokens, and an object member or array element passes on only the pointers whose next token
 * names it. Most of a body is scanned with an empty mask, so the pointers cost nothing there.
 * Recursion depth is bounded by JSONSCAN_MAX_DEPTH.
 *
 * Duplicate keys: every member name of the objects still open is kept on a stack (a pointer to
 * its bytes, decoded into an arena when it holds escapes, so "a" and "\u0061" meet); when an
 * object closes, its names are compared (pairwise when few, sorted when many) and popped.
 * The arena is sized once to the text, which bounds every decoded name, so the pointers into it
 * stay valid. Nothing is allocated for a body whose keys hold no escapes until the first key.
 */
#include "jsonscan.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(JSONSCAN_MAX_POINTERS <= 32, "the alive mask is an unsigned int");

struct jsonptr_tok {
    const char *s; /* unescaped, NUL-terminated, inside jsonptr.buf */
    size_t len;
    long long index; /* the token as an array index, or -1 when it is not one */
};

struct jsonptr {
    char text[JSONPTR_MAX_TEXT + 1];
    char buf[JSONPTR_MAX_TEXT + 1];
    size_t n;
    struct jsonptr_tok toks[JSONPTR_MAX_TOKENS];
};

/* ---- pointers ------------------------------------------------------------------------------- */

/* RFC 6901 array index: "0" or digits without a leading zero; 18 digits at most. */
static long long token_index(const char *s, size_t len)
{
    if (len == 0 || len > 18 || (len > 1 && s[0] == '0'))
        return -1;
    long long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

jsonptr_t *jsonptr_parse(const char *text, struct sl_err *err)
{
    size_t len = strlen(text);
    if (len > JSONPTR_MAX_TEXT) {
        sl_err_set(err, SL_ERR_INVALID, "JSON Pointer longer than %d bytes", JSONPTR_MAX_TEXT);
        return NULL;
    }
    if (len > 0 && text[0] != '/') {
        sl_err_set(err, SL_ERR_INVALID, "JSON Pointer '%s' must be empty or start with '/'", text);
        return NULL;
    }
    jsonptr_t *ptr = calloc(1, sizeof(*ptr));
    if (!ptr) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(ptr->text, text, len + 1);
    char *o = ptr->buf;
    for (size_t i = 0; i < len;) {
        if (ptr->n == JSONPTR_MAX_TOKENS) {
            sl_err_set(err, SL_ERR_INVALID, "JSON Pointer '%s' has more than %d tokens", text,
                       JSONPTR_MAX_TOKENS);
            goto fail;
        }
        i++; /* the '/' */
        struct jsonptr_tok *t = &ptr->toks[ptr->n++];
        t->s = o;
        /* Left to right, so "~01" is "~1" and not "/". */
        for (; i < len && text[i] != '/'; i++) {
            if (text[i] != '~') {
                *o++ = text[i];
            } else if (i + 1 < len && (text[i + 1] == '0' || text[i + 1] == '1')) {
                *o++ = text[i + 1] == '0' ? '~' : '/';
                i++;
            } else {
                sl_err_set(err, SL_ERR_INVALID,
                           "JSON Pointer '%s': '~' must be followed by 0 or 1 (~0 is '~', ~1 is "
                           "'/')",
                           text);
                goto fail;
            }
        }
        t->len = (size_t)(o - t->s);
        *o++ = '\0';
        t->index = token_index(t->s, t->len);
    }
    return ptr;
fail:
    free(ptr);
    return NULL;
}

void jsonptr_destroy(jsonptr_t *ptr)
{
    free(ptr);
}

const char *jsonptr_text(const jsonptr_t *ptr)
{
    return ptr->text;
}

/* ---- UTF-8 and escapes ---------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at p (Unicode 15, table 3-7), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return end - p >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (c == 0xE0)
            lo = 0xA0; /* no overlong forms */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
        return end - p >= 3 && p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c < 0xF5) {
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
        return end - p >= 4 && p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 &&
                       (p[3] & 0xC0) == 0x80
                   ? 4
                   : 0;
    }
    return 0;
}

bool jsonscan_utf8_valid(const void *s, size_t len)
{
    const unsigned char *p = s, *end = p + len;
    while (p < end) {
        size_t n = utf8_seq(p, end);
        if (!n)
            return false;
        p += n;
    }
    return true;
}

/* Four hex digits at p (p + 4 <= end checked by the caller) as a code unit, or -1. */
static long hex4(const unsigned char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* Resolves the escapes of validated string content [p, end) into out (NUL-terminated). */
static int decode_string(const unsigned char *p, const unsigned char *end, char *out, size_t size,
                         size_t *out_len)
{
    size_t o = 0;
    while (p < end) {
        unsigned char buf[4];
        size_t n = 1;
        if (*p != '\\') {
            buf[0] = *p++;
        } else if (p[1] != 'u') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            buf[0] = (unsigned char)to[strchr(from, p[1]) - from];
            p += 2;
        } else {
            unsigned long cp = (unsigned long)hex4(p + 2);
            p += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) { /* validated: a low surrogate follows */
                cp = 0x10000 + ((cp - 0xD800) << 10) + ((unsigned long)hex4(p + 2) - 0xDC00);
                p += 6;
            }
            if (cp < 0x80) {
                buf[0] = (unsigned char)cp;
            } else if (cp < 0x800) {
                buf[0] = (unsigned char)(0xC0 | cp >> 6);
                buf[1] = (unsigned char)(0x80 | (cp & 0x3F));
                n = 2;
            } else if (cp < 0x10000) {
                buf[0] = (unsigned char)(0xE0 | cp >> 12);
                buf[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
                buf[2] = (unsigned char)(0x80 | (cp & 0x3F));
                n = 3;
            } else {
                buf[0] = (unsigned char)(0xF0 | cp >> 18);
                buf[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
                buf[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
                buf[3] = (unsigned char)(0x80 | (cp & 0x3F));
                n = 4;
            }
        }
        if (o + n >= size)
            return -1;
        memcpy(out + o, buf, n);
        o += n;
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return 0;
}

/* ---- the scanner ---------------------------------------------------------------------------- */

/* A member name of an open object: its bytes as compared (raw, or decoded into the arena) and
 * where it was written, for the error offset. */
struct key {
    const unsigned char *cmp;
    size_t len;
    const unsigned char *at;
};

struct scan {
    const unsigned char *base, *p, *end;
    const jsonptr_t *const *ptrs;
    struct jsonscan_hit *hits;
    const char *why; /* the first error, a static string */
    bool no_memory;
    struct key *keys; /* the names of the open objects, innermost last */
    size_t n_keys, cap_keys;
    unsigned char *arena; /* decoded names with escapes; sized to the text at first use */
    size_t arena_used;
};

static int fail(struct scan *s, const char *why)
{
    s->why = why;
    return -1;
}

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static bool is_digit(const struct scan *s, const unsigned char *p)
{
    return p < s->end && *p >= '0' && *p <= '9';
}

/* s->p is at the opening quote; leaves s->p after the closing one. *escaped tells whether the
 * content holds a backslash (so it differs from its decoded form). */
static int scan_string(struct scan *s, bool *escaped)
{
    const unsigned char *p = s->p + 1, *end = s->end;
    bool esc = false;
    for (;;) {
        /* The common case, plain ASCII, in a tight loop. */
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        s->p = p;
        if (p == end)
            return fail(s, "unterminated string");
        if (*p == '"')
            break;
        if (*p < 0x20)
            return fail(s, "control character in a string (escape it)");
        if (*p >= 0x80) {
            size_t n = utf8_seq(p, end);
            if (!n)
                return fail(s, "invalid UTF-8");
            p += n;
            continue;
        }
        esc = true;
        if (end - p < 2)
            return fail(s, "unterminated string");
        if (p[1] != 'u') {
            if (!memchr("\"\\/bfnrt", p[1], 8))
                return fail(s, "invalid escape in a string");
            p += 2;
            continue;
        }
        long cu = end - p >= 6 ? hex4(p + 2) : -1;
        if (cu < 0)
            return fail(s, "\\u must be followed by four hex digits");
        if (cu == 0)
            return fail(s, "\\u0000 is not allowed in a string");
        if (cu >= 0xDC00 && cu <= 0xDFFF)
            return fail(s, "lone low surrogate escape");
        p += 6;
        if (cu >= 0xD800 && cu <= 0xDBFF) {
            long lo = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF) {
                s->p = p;
                return fail(s, "high surrogate escape without a low surrogate");
            }
            p += 6;
        }
    }
    s->p = p + 1;
    if (escaped)
        *escaped = esc;
    return 0;
}

/* jansson keeps an integer as a long long and refuses one out of its range ("too big
 * integer"); it refuses a real that overflows a double ("real number overflow"), not one that
 * underflows to zero. The number [start, end) is well-formed; `integer` when it has neither
 * fraction nor exponent. */
#define NUMBER_STACK_MAX 128
static int check_number_range(struct scan *s, const unsigned char *start, const unsigned char *end,
                              bool integer)
{
    size_t len = (size_t)(end - start);
    if (integer) {
        bool negative = *start == '-';
        const char *limit = negative ? "9223372036854775808" : "9223372036854775807";
        size_t digits = len - negative, limit_len = strlen(limit);
        if (digits > limit_len ||
            (digits == limit_len && memcmp(start + negative, limit, limit_len) > 0))
            return fail(s, "integer out of the 64-bit range");
        return 0;
    }
    char stack[NUMBER_STACK_MAX], *text = len < sizeof(stack) ? stack : malloc(len + 1);
    if (!text) {
        s->no_memory = true;
        return fail(s, "out of memory");
    }
    memcpy(text, start, len);
    text[len] = '\0';
    errno = 0;
    double v = strtod(text, NULL);
    bool overflow = (v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE;
    if (text != stack)
        free(text);
    return overflow ? fail(s, "number too large for a double") : 0;
}

static int scan_number(struct scan *s)
{
    const unsigned char *p = s->p, *start = s->p;
    bool integer = true;
    if (*p == '-')
        p++;
    if (p < s->end && *p == '0') {
        p++;
    } else if (is_digit(s, p) && *p != '0') {
        while (is_digit(s, p))
            p++;
    } else {
        s->p = p;
        return fail(s, "expected a digit");
    }
    if (p < s->end && *p == '.') {
        integer = false;
        p++;
        if (!is_digit(s, p)) {
            s->p = p;
            return fail(s, "expected a digit after '.'");
        }
        while (is_digit(s, p))
            p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        integer = false;
        p++;
        if (p < s->end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(s, p)) {
            s->p = p;
            return fail(s, "expected a digit in the exponent");
        }
        while (is_digit(s, p))
            p++;
    }
    s->p = p;
    if (check_number_range(s, start, p, integer) != 0) {
        s->p = start;
        return -1;
    }
    return 0;
}

static int scan_literal(struct scan *s, const char *word, size_t len)
{
    if ((size_t)(s->end - s->p) < len || memcmp(s->p, word, len) != 0)
        return fail(s, "invalid literal (expected true, false or null)");
    s->p += len;
    return 0;
}

static int scan_value(struct scan *s, unsigned alive, size_t depth);

#define KEYS_START    64 /* first size of the name stack; it doubles */
#define KEYS_PAIRWISE 16 /* objects with at most this many names are checked pair by pair */

/* Pushes the name whose raw bytes are [key, key+len). */
static int push_key(struct scan *s, const unsigned char *key, size_t len, bool escaped)
{
    if (s->n_keys == s->cap_keys) {
        size_t cap = s->cap_keys ? s->cap_keys * 2 : KEYS_START;
        struct key *keys = realloc(s->keys, cap * sizeof(*keys));
        if (!keys)
            goto nomem;
        s->keys = keys;
        s->cap_keys = cap;
    }
    struct key *k = &s->keys[s->n_keys];
    *k = (struct key){key, len, key};
    if (escaped) {
        size_t size = (size_t)(s->end - s->base) + 1, dlen;
        if (!s->arena && !(s->arena = malloc(size)))
            goto nomem;
        /* Never fails: a decoded name and its NUL are shorter than the name with its quotes,
         * and the names together are shorter than the text. */
        if (decode_string(key, key + len, (char *)s->arena + s->arena_used, size - s->arena_used,
                          &dlen) != 0)
            return fail(s, "internal error: a decoded key does not fit");
        k->cmp = s->arena + s->arena_used;
        k->len = dlen;
        s->arena_used += dlen + 1;
    }
    s->n_keys++;
    return 0;
nomem:
    s->no_memory = true;
    return fail(s, "out of memory");
}

static int key_order(const void *a, const void *b)
{
    const struct key *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->cmp, y->cmp, x->len);
}

/* Checks the names keys[first..n_keys) of the object that just closed, then pops them. jansson
 * (JSON_REJECT_DUPLICATES, as validate parses) refuses an object that repeats a name. */
static int close_object(struct scan *s, size_t first)
{
    struct key *k = s->keys + first;
    size_t n = s->n_keys - first;
    const unsigned char *dup = NULL;
    if (n <= KEYS_PAIRWISE) {
        for (size_t i = 1; i < n && !dup; i++)
            for (size_t j = 0; j < i && !dup; j++)
                if (key_order(&k[i], &k[j]) == 0)
                    dup = k[i].at;
    } else {
        qsort(k, n, sizeof(*k), key_order);
        for (size_t i = 1; i < n; i++)
            if (key_order(&k[i], &k[i - 1]) == 0) {
                const unsigned char *at = k[i].at > k[i - 1].at ? k[i].at : k[i - 1].at;
                if (!dup || at < dup)
                    dup = at;
            }
    }
    s->n_keys = first;
    if (dup) {
        s->p = dup - 1; /* the later name's opening quote */
        return fail(s, "duplicate object key");
    }
    return 0;
}

/* The pointers of `alive` whose token at `depth` is this member's key (raw bytes [key,
 * key+len), `escaped` when they hold escapes). Their earlier hits are cleared: with duplicate
 * keys the last member wins, as a whole. */
static unsigned match_key(struct scan *s, unsigned alive, size_t depth, const unsigned char *key,
                          size_t len, bool escaped)
{
    char decoded[JSONPTR_MAX_TEXT + 1];
    size_t dlen = len;
    const void *k = key;
    if (escaped) {
        if (decode_string(key, key + len, decoded, sizeof(decoded), &dlen) != 0)
            return 0; /* longer than any token */
        k = decoded;
    }
    unsigned next = 0;
    for (unsigned m = alive; m; m &= m - 1) {
        unsigned i = (unsigned)__builtin_ctz(m);
        const jsonptr_t *ptr = s->ptrs[i];
        if (ptr->n > depth && ptr->toks[depth].len == dlen &&
            memcmp(ptr->toks[depth].s, k, dlen) == 0) {
            next |= 1u << i;
            s->hits[i].kind = JSONSCAN_ABSENT;
        }
    }
    return next;
}

static int scan_object(struct scan *s, unsigned alive, size_t depth)
{
    size_t first = s->n_keys;
    s->p++; /* '{' */
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }
    for (;;) {
        skip_ws(s);
        if (s->p == s->end || *s->p != '"')
            return fail(s, s->p == s->end ? "unexpected end of input in an object"
                                          : "expected a string as object key");
        const unsigned char *key = s->p + 1;
        bool escaped;
        if (scan_string(s, &escaped) != 0)
            return -1;
        size_t key_len = (size_t)(s->p - 1 - key);
        if (push_key(s, key, key_len, escaped) != 0)
            return -1;
        unsigned next = alive ? match_key(s, alive, depth, key, key_len, escaped) : 0;
        skip_ws(s);
        if (s->p == s->end || *s->p != ':')
            return fail(s, "expected ':' after an object key");
        s->p++;
        if (scan_value(s, next, depth + 1) != 0)
            return -1;
        skip_ws(s);
        if (s->p == s->end)
            return fail(s, "unexpected end of input in an object");
        if (*s->p == '}') {
            s->p++;
            return close_object(s, first);
        }
        if (*s->p != ',')
            return fail(s, "expected ',' or '}' in an object");
        s->p++;
    }
}

static int scan_array(struct scan *s, unsigned alive, size_t depth)
{
    s->p++; /* '[' */
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }
    for (long long index = 0;; index++) {
        unsigned next = 0;
        for (unsigned m = alive; m; m &= m - 1) {
            unsigned i = (unsigned)__builtin_ctz(m);
            if (s->ptrs[i]->n > depth && s->ptrs[i]->toks[depth].index == index)
                next |= 1u << i;
        }
        if (scan_value(s, next, depth + 1) != 0)
            return -1;
        skip_ws(s);
        if (s->p == s->end)
            return fail(s, "unexpected end of input in an array");
        if (*s->p == ']') {
            s->p++;
            return 0;
        }
        if (*s->p != ',')
            return fail(s, "expected ',' or ']' in an array");
        s->p++;
    }
}

static int scan_value(struct scan *s, unsigned alive, size_t depth)
{
    skip_ws(s);
    if (s->p == s->end)
        return fail(s, "unexpected end of input, expected a value");
    const unsigned char *start = s->p;
    enum jsonscan_kind kind;
    int rc;
    switch (*s->p) {
    case '{':
    case '[':
        if (depth >= JSONSCAN_MAX_DEPTH)
            return fail(s, "nested too deeply");
        kind = *s->p == '{' ? JSONSCAN_OBJECT : JSONSCAN_ARRAY;
        rc = kind == JSONSCAN_OBJECT ? scan_object(s, alive, depth) : scan_array(s, alive, depth);
        break;
    case '"':
        kind = JSONSCAN_STRING;
        rc = scan_string(s, NULL);
        break;
    case 't':
        kind = JSONSCAN_TRUE;
        rc = scan_literal(s, "true", 4);
        break;
    case 'f':
        kind = JSONSCAN_FALSE;
        rc = scan_literal(s, "false", 5);
        break;
    case 'n':
        kind = JSONSCAN_NULL;
        rc = scan_literal(s, "null", 4);
        break;
    default:
        if (*s->p != '-' && !is_digit(s, s->p))
            return fail(s, "unexpected character, expected a value");
        kind = JSONSCAN_NUMBER;
        rc = scan_number(s);
    }
    if (rc != 0)
        return -1;
    for (unsigned m = alive; m; m &= m - 1) {
        unsigned i = (unsigned)__builtin_ctz(m);
        if (s->ptrs[i]->n == depth)
            s->hits[i] =
                (struct jsonscan_hit){kind, (size_t)(start - s->base), (size_t)(s->p - start)};
    }
    return 0;
}

int jsonscan(const void *text, size_t len, const jsonptr_t *const *ptrs, size_t n_ptrs,
             struct jsonscan_hit *hits, struct sl_err *err)
{
    if (n_ptrs > JSONSCAN_MAX_POINTERS)
        return sl_err_set(err, SL_ERR_INVALID, "more than %d JSON Pointers in one scan",
                          JSONSCAN_MAX_POINTERS);
    for (size_t i = 0; i < n_ptrs; i++)
        hits[i] = (struct jsonscan_hit){JSONSCAN_ABSENT, 0, 0};
    struct scan s = {.base = text,
                     .p = text,
                     .end = (const unsigned char *)text + len,
                     .ptrs = ptrs,
                     .hits = hits};
    skip_ws(&s);
    if (s.p == s.end)
        return sl_err_set(err, SL_ERR_INVALID, "malformed JSON: the body holds no JSON value");
    int rc = scan_value(&s, n_ptrs ? (1u << n_ptrs) - 1 : 0, 0);
    if (rc == 0) {
        skip_ws(&s);
        if (s.p != s.end)
            rc = fail(&s, "unexpected data after the JSON value");
    }
    free(s.keys);
    free(s.arena);
    if (rc == 0)
        return 0;
    for (size_t i = 0; i < n_ptrs; i++)
        hits[i] = (struct jsonscan_hit){JSONSCAN_ABSENT, 0, 0};
    if (s.no_memory)
        return sl_err_set(err, SL_ERR_NOMEM, "out of memory while checking the JSON body");
    return sl_err_set(err, SL_ERR_INVALID, "malformed JSON at byte %zu: %s", (size_t)(s.p - s.base),
                      s.why);
}

int jsonscan_text(const void *text, const struct jsonscan_hit *hit, char *out, size_t size,
                  size_t *out_len)
{
    const unsigned char *p = (const unsigned char *)text + hit->off;
    if (size == 0)
        return -1;
    if (hit->kind == JSONSCAN_STRING)
        return decode_string(p + 1, p + hit->len - 1, out, size, out_len);
    if (hit->kind != JSONSCAN_NUMBER || hit->len >= size)
        return -1;
    memcpy(out, p, hit->len);
    out[hit->len] = '\0';
    if (out_len)
        *out_len = hit->len;
    return 0;
}
