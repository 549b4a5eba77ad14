/*
 * record: see record.h for the contract. Parsing is strict about the members that become
 * columns and about JSON itself (a value Postgres would refuse must never reach the COPY: one
 * bad record would stop the whole batch) and lenient about what is inside "detail", which
 * belongs to the stage that wrote it.
 *
 * The scanner is a recursive descent over the bytes with a depth bound. Decoded strings and
 * the copied JSON of "errors" and "detail" go into one block of 4 * len + 16 bytes, which
 * always suffices: a decoded string is never longer than its escaped form, the two copies
 * together are at most len, detail's own strings are decoded from its copy (at most len
 * again), and every string ends in one NUL where its input had two quotes.
 */
#include "record.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_text.h"

#define US_PER_S   1000000LL
#define S_PER_DAY  86400LL
#define INT32_TOP  2147483647LL
#define UUID_CHARS 36

/* ---- time ---- */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* n decimal digits at s into *out; -1 unless all n are digits (a NUL stops it early). */
static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int audit_time_parse(const char *s, int64_t *us)
{
    int y, mo, d, h, mi, sec, oh = 0, om = 0;
    if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return -1;
    const char *p = s + 19;
    int64_t frac = 0;
    if (*p == '.') {
        int n = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, n++)
            if (n < 6)
                frac = frac * 10 + (*p - '0');
        if (n < 1 || n > 9)
            return -1;
        for (; n < 6; n++)
            frac *= 10;
    }
    int sign = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && digits(p + 1, 2, &oh) == 0 && p[3] == ':' &&
               digits(p + 4, 2, &om) == 0) {
        sign = *p == '+' ? 1 : -1;
        p += 6;
    } else {
        return -1;
    }
    if (*p || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
        mi > 59 || sec > 60 || oh > 23 || om > 59)
        return -1;
    int64_t secs = days_from_civil(y, mo, d) * S_PER_DAY + h * 3600 + mi * 60 + sec -
                   sign * (oh * 3600 + om * 60);
    /* Within the years 1970..9999 in UTC too, so Postgres reads it in its plain form. */
    if (secs < 0 || secs >= days_from_civil(10000, 1, 1) * S_PER_DAY)
        return -1;
    *us = secs * US_PER_S + frac;
    return 0;
}

void audit_time_format(int64_t us, char *buf, size_t size)
{
    time_t secs = (time_t)(us / US_PER_S);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%06d+00", (int)((us % US_PER_S + US_PER_S) % US_PER_S));
}

/* The Unix time in microseconds inside a UUIDv7 (its first 48 bits are milliseconds), or -1
 * when `id` is not a UUID of version 7. */
static int64_t uuid_v7_us(const char *id)
{
    if (strlen(id) != UUID_CHARS || id[14] != '7')
        return -1;
    int64_t ms = 0;
    for (int i = 0; i < UUID_CHARS; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash != (id[i] == '-'))
            return -1;
        int v = dash ? 0 : sl_hex_digit((unsigned char)id[i]);
        if (v < 0)
            return -1;
        if (i < 13 && !dash)
            ms = ms * 16 + v;
    }
    return ms * 1000;
}

/* ---- the scanner ---- */

struct scan {
    const unsigned char *p, *start, *end;
    const char *what; /* the first thing found wrong; NULL while all is well */
};

static bool wrong(struct scan *s, const char *what)
{
    if (!s->what)
        s->what = what;
    return false;
}

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hex4(const unsigned char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int d = sl_hex_digit(p[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static char *utf8_put(char *o, int cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3F));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* The string at s->p (its opening quote). Decoded, with a NUL, at *out (which then points past
 * it) when out is not NULL; only checked otherwise. */
static bool scan_string(struct scan *s, char **out)
{
    static const char escapes[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
    char *o = out ? *out : NULL;
    if (s->p >= s->end || *s->p != '"')
        return wrong(s, "a string expected");
    s->p++;
    while (s->p < s->end) {
        unsigned char c = *s->p;
        if (c == '"') {
            s->p++;
            if (o) {
                *o++ = '\0';
                *out = o;
            }
            return true;
        }
        if (c < 0x20)
            return wrong(s, "a control character in a string");
        if (c != '\\') {
            size_t n = sl_utf8_seq_len(s->p, (size_t)(s->end - s->p));
            if (!n)
                return wrong(s, "a string that is not UTF-8");
            if (o) {
                memcpy(o, s->p, n);
                o += n;
            }
            s->p += n;
            continue;
        }
        if (s->end - s->p < 2)
            break;
        unsigned char e = s->p[1];
        s->p += 2;
        if (e == 'u') {
            int cp = s->end - s->p >= 4 ? hex4(s->p) : -1;
            if (cp < 0)
                return wrong(s, "a bad \\u escape");
            s->p += 4;
            if (cp == 0)
                return wrong(s, "\\u0000 in a string");
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return wrong(s, "a lone surrogate in a string");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int lo =
                    s->end - s->p >= 6 && s->p[0] == '\\' && s->p[1] == 'u' ? hex4(s->p + 2) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return wrong(s, "a lone surrogate in a string");
                s->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (o)
                o = utf8_put(o, cp);
            continue;
        }
        const char *m = e ? memchr(escapes, e, sizeof(escapes) - 1) : NULL;
        if (!m || (m - escapes) % 2)
            return wrong(s, "a bad escape in a string");
        if (o)
            *o++ = m[1];
    }
    return wrong(s, "an unterminated string");
}

static bool is_digit(const struct scan *s)
{
    return s->p < s->end && *s->p >= '0' && *s->p <= '9';
}

/* The number at s->p. *integer: it has neither fraction nor exponent and fits 64 bits (then
 * *iv holds it); *dv: its value (infinite when it does not fit a double). */
static bool scan_number(struct scan *s, bool *integer, int64_t *iv, double *dv)
{
    const unsigned char *start = s->p;
    bool plain = true;
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (!is_digit(s))
        return wrong(s, "a value expected");
    if (*s->p == '0')
        s->p++;
    else
        while (is_digit(s))
            s->p++;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        plain = false;
        if (!is_digit(s))
            return wrong(s, "a digit expected after the decimal point");
        while (is_digit(s))
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        plain = false;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!is_digit(s))
            return wrong(s, "a digit expected in the exponent");
        long exp = 0;
        while (is_digit(s)) {
            if (exp <= AUDIT_EXPONENT_MAX)
                exp = exp * 10 + (*s->p - '0');
            s->p++;
        }
        if (exp > AUDIT_EXPONENT_MAX)
            return wrong(s, "a number out of range");
    }
    size_t n = (size_t)(s->p - start);
    if (n > AUDIT_NUMBER_MAX)
        return wrong(s, "a number with too many digits");
    char text[AUDIT_NUMBER_MAX + 1];
    memcpy(text, start, n);
    text[n] = '\0';
    *integer = false;
    if (plain) {
        errno = 0;
        long long v = strtoll(text, NULL, 10);
        if (errno == 0) {
            *integer = true;
            *iv = v;
            *dv = (double)v;
            return true;
        }
    }
    *dv = strtod(text, NULL);
    return true;
}

static bool literal(struct scan *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return wrong(s, "a value expected");
    s->p += n;
    return true;
}

static bool scan_value(struct scan *s, int depth);

/* The object or array at s->p, whose closing bracket is `close`. */
static bool scan_container(struct scan *s, int depth, unsigned char close)
{
    if (depth >= AUDIT_DEPTH_MAX)
        return wrong(s, "nested too deeply");
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return true;
    }
    for (;;) {
        if (close == '}') {
            skip_ws(s);
            if (!scan_string(s, NULL))
                return false;
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':')
                return wrong(s, "':' expected");
            s->p++;
        }
        if (!scan_value(s, depth + 1))
            return false;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return true;
        }
        return wrong(s, close == '}' ? "',' or '}' expected" : "',' or ']' expected");
    }
}

/* Any value at s->p (after white space), only checked. */
static bool scan_value(struct scan *s, int depth)
{
    bool integer;
    int64_t iv;
    double dv;
    skip_ws(s);
    if (s->p >= s->end)
        return wrong(s, "a value expected");
    switch (*s->p) {
    case '{':
        return scan_container(s, depth, '}');
    case '[':
        return scan_container(s, depth, ']');
    case '"':
        return scan_string(s, NULL);
    case 't':
        return literal(s, "true");
    case 'f':
        return literal(s, "false");
    case 'n':
        return literal(s, "null");
    default:
        return scan_number(s, &integer, &iv, &dv);
    }
}

/* ---- members ---- */

/* What a member's value turned out to be. */
enum kind { K_NULL, K_STRING, K_NUMBER, K_OTHER };

struct member {
    enum kind kind;
    const char *str; /* K_STRING: decoded, in the block */
    bool integer;    /* K_NUMBER */
    int64_t iv;
    double dv;
    const char *json; /* the value's JSON text, copied into the block (when asked) */
};

/* The value of a member at s->p: strings are decoded into *o, numbers read, and with `copy`
 * the JSON text of an object or array is copied to *o as well. */
static bool read_member(struct scan *s, char **o, bool copy, struct member *m)
{
    memset(m, 0, sizeof(*m));
    skip_ws(s);
    if (s->p >= s->end)
        return wrong(s, "a value expected");
    const unsigned char *start = s->p;
    switch (*s->p) {
    case '"':
        m->kind = K_STRING;
        m->str = *o;
        return scan_string(s, o);
    case 'n':
        m->kind = K_NULL;
        return literal(s, "null");
    case '{':
    case '[':
    case 't':
    case 'f':
        m->kind = K_OTHER;
        if (!scan_value(s, 1))
            return false;
        if (copy) {
            size_t n = (size_t)(s->p - start);
            memcpy(*o, start, n);
            (*o)[n] = '\0';
            m->json = *o;
            *o += n + 1;
        }
        return true;
    default:
        m->kind = K_NUMBER;
        return scan_number(s, &m->integer, &m->iv, &m->dv);
    }
}

/* Walks the members of the object at s->p, calling on_member for each with its decoded name;
 * the callback reads the value (read_member or scan_value). */
typedef bool (*member_cb)(struct scan *s, const char *name, char **o, void *arg);

static bool each_member(struct scan *s, char **o, member_cb on_member, void *arg)
{
    skip_ws(s);
    if (s->p >= s->end || *s->p != '{')
        return wrong(s, "an object expected");
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return true;
    }
    for (;;) {
        char *name = *o, *after = *o;
        skip_ws(s);
        /* The name is decoded where the next value goes, and overwritten by it. */
        if (!scan_string(s, &after))
            return false;
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':')
            return wrong(s, "':' expected");
        s->p++;
        if (!on_member(s, name, o, arg))
            return false;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            return true;
        }
        return wrong(s, "',' or '}' expected");
    }
}

/* The record's members into the row; type errors into *bad (named), syntax errors into s. */
struct top {
    struct audit_row *row;
    const char *at;
    bool has_partition, has_offset;
    const char *bad_key, *bad_what;
};

static bool typed(struct top *t, const char *key, const char *what)
{
    if (!t->bad_key) {
        t->bad_key = key;
        t->bad_what = what;
    }
    return true;
}

static bool on_top(struct scan *s, const char *name, char **o, void *arg)
{
    static const char *const strings[] = {"event_id", "stage", "outcome", "reason",
                                          "source",   "type",  "topic",   "at"};
    struct top *t = arg;
    struct audit_row *r = t->row;
    const char **slots[] = {&r->event_id, &r->stage, &r->outcome, &r->reason,
                            &r->source,   &r->type,  &r->topic,   &t->at};
    char key[16];
    struct member m;
    /* Names are compared before the value overwrites them. */
    snprintf(key, sizeof(key), "%s", strlen(name) < sizeof(key) ? name : "");
    bool copy = strcmp(key, "errors") == 0 || strcmp(key, "detail") == 0;
    if (!read_member(s, o, copy, &m))
        return false;
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        if (strcmp(key, strings[i]) != 0)
            continue;
        if (m.kind != K_STRING && m.kind != K_NULL)
            return typed(t, strings[i], "must be a string");
        *slots[i] = m.kind == K_STRING ? m.str : NULL;
        return true;
    }
    bool number = m.kind == K_NUMBER, null = m.kind == K_NULL;
    if (strcmp(key, "partition") == 0) {
        if (!null && (!m.integer || m.iv < -1 || m.iv > INT32_TOP))
            return typed(t, "partition", "must be an integer in range");
        t->has_partition = !null;
        r->partition = (int32_t)m.iv;
    } else if (strcmp(key, "offset") == 0) {
        if (!null && !m.integer)
            return typed(t, "offset", "must be an integer in range");
        t->has_offset = !null;
        r->offset = m.iv;
    } else if (strcmp(key, "outputs") == 0) {
        if (!null && (!m.integer || m.iv < 0 || m.iv > INT32_TOP))
            return typed(t, "outputs", "must be an integer in range");
        r->has_outputs = !null;
        r->outputs = (int32_t)m.iv;
    } else if (strcmp(key, "seconds") == 0) {
        if (!null && (!number || !isfinite(m.dv)))
            return typed(t, "seconds", "must be a number");
        r->has_seconds = !null;
        r->seconds = m.dv;
    } else if (strcmp(key, "errors") == 0) {
        if (!null && !(m.json && m.json[0] == '['))
            return typed(t, "errors", "must be an array");
        r->errors = m.json;
    } else if (strcmp(key, "detail") == 0) {
        if (!null && !(m.json && m.json[0] == '{'))
            return typed(t, "detail", "must be an object");
        r->detail = m.json;
    }
    return true;
}

/* detail.destinations: its non-empty strings, one after the other at *o. */
static bool read_destinations(struct scan *s, char **o, struct audit_row *r)
{
    r->destinations = *o;
    r->n_destinations = 0;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return true;
    }
    for (;;) {
        skip_ws(s);
        if (s->p < s->end && *s->p == '"' && r->n_destinations < AUDIT_STATUS_MAX) {
            char *start = *o;
            if (!scan_string(s, o))
                return false;
            if (*start)
                r->n_destinations++;
            else
                *o = start; /* an empty name names nothing */
        } else if (!scan_value(s, 2)) {
            return false;
        }
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            return true;
        }
        return wrong(s, "',' or ']' expected");
    }
}

/* detail.routes when it is an array of exactly one string. */
static bool read_routes(struct scan *s, char **o, struct audit_row *r)
{
    const unsigned char *start = s->p;
    if (!scan_value(s, 1))
        return false;
    struct scan one = {.p = start + 1, .start = start, .end = s->p};
    char *name = *o;
    skip_ws(&one);
    if (one.p < one.end && *one.p == '"' && scan_string(&one, o)) {
        skip_ws(&one);
        if (one.p < one.end && *one.p == ']') {
            r->route = name;
            return true;
        }
    }
    *o = name;
    return true;
}

static bool on_detail(struct scan *s, const char *name, char **o, void *arg)
{
    struct audit_row *r = arg;
    char key[16];
    struct member m;
    snprintf(key, sizeof(key), "%s", strlen(name) < sizeof(key) ? name : "");
    skip_ws(s);
    if (strcmp(key, "destinations") == 0 && s->p < s->end && *s->p == '[')
        return read_destinations(s, o, r);
    if (strcmp(key, "routes") == 0 && s->p < s->end && *s->p == '[')
        return read_routes(s, o, r);
    if (!read_member(s, o, false, &m))
        return false;
    if (strcmp(key, "destination") == 0) {
        r->destination = m.kind == K_STRING && m.str[0] ? m.str : NULL;
    } else if (strcmp(key, "attempt") == 0 || strcmp(key, "status") == 0) {
        bool ok = m.kind == K_NUMBER && m.integer && m.iv >= 0 && m.iv <= INT32_TOP;
        *(key[0] == 'a' ? &r->has_attempt : &r->has_status) = ok;
        *(key[0] == 'a' ? &r->attempt : &r->status) = ok ? (int32_t)m.iv : 0;
    } else if (strcmp(key, "latency_ms") == 0) {
        r->has_latency = m.kind == K_NUMBER && isfinite(m.dv);
        r->latency_ms = m.dv;
    }
    return true;
}

/* The record's "at" (or its Kafka timestamp) as canonical text, and the acceptance time. */
static int read_times(struct audit_row *row, const char *text, int64_t timestamp_ms,
                      struct sl_err *err)
{
    int64_t at;
    if (text && audit_time_parse(text, &at) != 0)
        return sl_err_set(err, SL_ERR_INVALID,
                          "audit record: \"at\" is not an RFC 3339 time of the years 1970..9999");
    if (!text) {
        if (timestamp_ms < 0 || timestamp_ms >= days_from_civil(10000, 1, 1) * S_PER_DAY * 1000)
            return sl_err_set(err, SL_ERR_INVALID,
                              "audit record: \"at\" is missing and the record has no usable "
                              "timestamp");
        at = timestamp_ms * 1000;
    }
    audit_time_format(at, row->at, sizeof(row->at));
    if (row->event_id) {
        int64_t v7 = uuid_v7_us(row->event_id);
        bool recent =
            v7 >= 0 && v7 <= at && at - v7 <= AUDIT_ACCEPTED_LOOKBACK_DAYS * S_PER_DAY * US_PER_S;
        audit_time_format(recent ? v7 : at, row->accepted, sizeof(row->accepted));
    }
    return 0;
}

int audit_row_parse(struct audit_row *row, const void *data, size_t len, int64_t timestamp_ms,
                    struct sl_err *err)
{
    memset(row, 0, sizeof(*row));
    if (len > AUDIT_RECORD_MAX)
        return sl_err_set(err, SL_ERR_INVALID, "audit record of %zu bytes is over the limit of %d",
                          len, AUDIT_RECORD_MAX);
    if (!(row->text = malloc(4 * len + 16)))
        return sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    char *o = row->text;
    struct scan s = {.p = data, .start = data, .end = (const unsigned char *)data + len};
    struct top t = {.row = row};
    skip_ws(&s);
    if (s.p < s.end && *s.p != '{') {
        if (scan_value(&s, 0))
            sl_err_set(err, SL_ERR_INVALID, "audit record is not a JSON object");
        else
            sl_err_set(err, SL_ERR_INVALID, "audit record is not JSON: %s (byte %ld)", s.what,
                       (long)(s.p - s.start));
        goto fail;
    }
    if (each_member(&s, &o, on_top, &t))
        skip_ws(&s);
    if (!s.what && s.p != s.end)
        wrong(&s, "characters after the object");
    if (s.what) {
        sl_err_set(err, SL_ERR_INVALID, "audit record is not JSON: %s (byte %ld)", s.what,
                   (long)(s.p - s.start));
        goto fail;
    }
    if (t.bad_key) {
        sl_err_set(err, SL_ERR_INVALID, "audit record: \"%s\" %s", t.bad_key, t.bad_what);
        goto fail;
    }
    static const char *const required[] = {"stage", "outcome", "topic", "partition", "offset"};
    const bool present[] = {row->stage != NULL, row->outcome != NULL, row->topic != NULL,
                            t.has_partition, t.has_offset};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        if (!present[i]) {
            sl_err_set(err, SL_ERR_INVALID, "audit record: \"%s\" is missing", required[i]);
            goto fail;
        }
    if (!row->stage[0] || !row->outcome[0]) {
        sl_err_set(err, SL_ERR_INVALID, "audit record: \"%s\" must not be empty",
                   row->stage[0] ? "outcome" : "stage");
        goto fail;
    }
    if (read_times(row, t.at, timestamp_ms, err) != 0)
        goto fail;
    if (row->detail) {
        struct scan d = {.p = (const unsigned char *)row->detail,
                         .start = (const unsigned char *)row->detail,
                         .end = (const unsigned char *)row->detail + strlen(row->detail)};
        if (!each_member(&d, &o, on_detail, row)) {
            sl_err_set(err, SL_ERR_INTERNAL, "audit record: detail read twice differently");
            goto fail;
        }
        if (!row->has_latency && row->has_attempt && row->attempt >= 1 && row->has_seconds) {
            row->has_latency = true;
            row->latency_ms = row->seconds * 1000.0;
        }
    }
    return 0;
fail:
    free(row->text);
    row->text = NULL;
    return -1;
}

void audit_row_free(struct audit_row *row)
{
    free(row->text);
    row->text = NULL;
}

size_t audit_row_status(const struct audit_row *row, struct audit_status *out)
{
    const char *o = row->outcome, *dest = row->destination;
    if (!row->event_id || !*row->event_id)
        return 0;
    if (strcmp(o, "filtered") == 0 || strcmp(o, "dead_lettered") == 0) {
        out[0] = (struct audit_status){dest ? dest : "", o};
        return 1;
    }
    if (strcmp(o, "duplicate") == 0) {
        /* Naming a destination, it is the delivery ledger's "delivered before". */
        out[0] = (struct audit_status){dest ? dest : "", dest ? "delivered" : "duplicate"};
        return 1;
    }
    if (dest && (strcmp(o, "delivered") == 0 || strcmp(o, "retry") == 0)) {
        out[0] = (struct audit_status){dest, o[0] == 'd' ? "delivered" : "pending"};
        return 1;
    }
    if (strcmp(o, "passed") != 0)
        return 0;
    const char *d = row->destinations;
    for (size_t i = 0; i < row->n_destinations; i++) {
        out[i] = (struct audit_status){d, "pending"};
        d += strlen(d) + 1;
    }
    return row->n_destinations;
}
