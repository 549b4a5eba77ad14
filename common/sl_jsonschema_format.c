#include "sl_jsonschema_format.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

/* Longest string a checker looks at; longer ones are invalid for every format (a host name is at
 * most 253 bytes, a date-time about 40; URIs and pointers get generous room). */
#define FORMAT_MAX_LEN 8192

static const struct {
    const char *name;
    enum sl_schema_format format;
} format_names[] = {
    {"date-time", SL_SCHEMA_FORMAT_DATE_TIME},
    {"date", SL_SCHEMA_FORMAT_DATE},
    {"time", SL_SCHEMA_FORMAT_TIME},
    {"duration", SL_SCHEMA_FORMAT_DURATION},
    {"email", SL_SCHEMA_FORMAT_EMAIL},
    {"hostname", SL_SCHEMA_FORMAT_HOSTNAME},
    {"ipv4", SL_SCHEMA_FORMAT_IPV4},
    {"ipv6", SL_SCHEMA_FORMAT_IPV6},
    {"uri", SL_SCHEMA_FORMAT_URI},
    {"uri-reference", SL_SCHEMA_FORMAT_URI_REFERENCE},
    {"uuid", SL_SCHEMA_FORMAT_UUID},
    {"json-pointer", SL_SCHEMA_FORMAT_JSON_POINTER},
    {"relative-json-pointer", SL_SCHEMA_FORMAT_RELATIVE_JSON_POINTER},
    {"regex", SL_SCHEMA_FORMAT_REGEX},
};

enum sl_schema_format sl_schema_format_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++)
        if (strcmp(format_names[i].name, name) == 0)
            return format_names[i].format;
    return SL_SCHEMA_FORMAT_UNKNOWN;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* n decimal digits at s; their value in *out. */
static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* RFC 3339 full-date: YYYY-MM-DD with the month's real length (leap years included). */
static bool check_date(const char *s, size_t len)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, m, d;
    if (len != 10 || s[4] != '-' || s[7] != '-')
        return false;
    if (!digits(s, 4, &y) || !digits(s + 5, 2, &m) || !digits(s + 8, 2, &d))
        return false;
    if (m < 1 || m > 12 || d < 1)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= mdays[m - 1] + (m == 2 && leap);
}

/* RFC 3339 full-time: HH:MM:SS[.frac](Z|+HH:MM|-HH:MM). A leap second (:60) is valid only where
 * it is 23:59:60 in UTC. */
static bool check_time(const char *s, size_t len)
{
    int h, m, sec, oh = 0, om = 0;
    if (len < 9 || s[2] != ':' || s[5] != ':')
        return false;
    if (!digits(s, 2, &h) || !digits(s + 3, 2, &m) || !digits(s + 6, 2, &sec))
        return false;
    size_t i = 8;
    if (i < len && s[i] == '.') {
        size_t start = ++i;
        while (i < len && is_digit(s[i]))
            i++;
        if (i == start)
            return false;
    }
    if (i >= len)
        return false;
    int sign = 0;
    if (s[i] == 'Z' || s[i] == 'z') {
        if (i + 1 != len)
            return false;
    } else if (s[i] == '+' || s[i] == '-') {
        sign = s[i] == '+' ? 1 : -1;
        if (len - i != 6 || s[i + 3] != ':' || !digits(s + i + 1, 2, &oh) ||
            !digits(s + i + 4, 2, &om))
            return false;
    } else {
        return false;
    }
    if (h > 23 || m > 59 || sec > 60 || oh > 23 || om > 59)
        return false;
    if (sec == 60) {
        /* Shift to UTC: local = utc + offset. */
        int utc = ((h * 60 + m - sign * (oh * 60 + om)) % 1440 + 1440) % 1440;
        if (utc != 23 * 60 + 59)
            return false;
    }
    return true;
}

static bool check_date_time(const char *s, size_t len)
{
    if (len < 11 || (s[10] != 'T' && s[10] != 't'))
        return false;
    return check_date(s, 10) && check_time(s + 11, len - 11);
}

/* ISO 8601 duration as RFC 3339 appendix A has it: P[nY][nM][nD][T[nH][nM][nS]] or PnW. */
static bool check_duration(const char *s, size_t len)
{
    static const char date_units[] = "YMD", time_units[] = "HMS";
    size_t i = 1;
    bool any = false;
    if (len < 2 || s[0] != 'P')
        return false;
    if (s[len - 1] == 'W') {
        for (i = 1; i < len - 1; i++)
            if (!is_digit(s[i]))
                return false;
        return len > 2;
    }
    const char *units = date_units;
    size_t next = 0; /* units must appear in order, each at most once */
    while (i < len) {
        if (s[i] == 'T') {
            if (units == time_units)
                return false;
            units = time_units;
            next = 0;
            i++;
            if (i == len)
                return false;
            continue;
        }
        size_t start = i;
        while (i < len && is_digit(s[i]))
            i++;
        if (i == start || i == len)
            return false;
        const char *u = strchr(units + next, s[i]);
        if (!u || s[i] == '\0')
            return false;
        next = (size_t)(u - units) + 1;
        any = true;
        i++;
    }
    return any && s[len - 1] != 'T';
}

/* RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, each 1..63 bytes,
 * at most 253 bytes in all (a trailing dot is not accepted). */
static bool check_hostname(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!is_alpha(c) && !is_digit(c) && c != '-')
            return false;
        if (c == '-' && label == 0)
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0 && s[len - 1] != '-';
}

/* Dotted quad, each part 0..255 without leading zeros. */
static bool check_ipv4(const char *s, size_t len)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= len || s[i] != '.')
                return false;
            i++;
        }
        size_t start = i;
        int v = 0;
        while (i < len && is_digit(s[i]) && i - start < 3)
            v = v * 10 + (s[i++] - '0');
        if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
            return false;
    }
    return i == len;
}

/* RFC 4291 text form: eight groups of 1..4 hex digits, one "::" for a run of zero groups, and an
 * optional dotted quad for the last 32 bits. Zone identifiers are not accepted. */
static bool check_ipv6(const char *s, size_t len)
{
    int groups = 0;
    bool gap = false;
    size_t i = 0;
    if (len < 2)
        return false;
    if (s[0] == ':') {
        if (s[1] != ':')
            return false;
        gap = true;
        i = 2;
        if (i == len)
            return true;
    }
    while (i < len) {
        size_t start = i;
        while (i < len && is_hex(s[i]) && i - start < 5)
            i++;
        if (i < len && s[i] == '.') {
            /* The embedded IPv4 address ends the string and takes two groups. */
            if (!check_ipv4(s + start, len - start))
                return false;
            groups += 2;
            i = len;
            break;
        }
        if (i == start || i - start > 4)
            return false;
        groups++;
        if (i == len)
            break;
        if (s[i] != ':')
            return false;
        i++;
        if (i < len && s[i] == ':') {
            if (gap)
                return false;
            gap = true;
            i++;
            if (i == len)
                break;
        } else if (i == len) {
            return false; /* a single trailing colon */
        }
    }
    return gap ? groups < 8 : groups == 8;
}

/* RFC 5321 mailbox: dot-atom local part @ a host name or an address literal. */
static bool check_email(const char *s, size_t len)
{
    static const char atext[] = "!#$%&'*+-/=?^_`{|}~";
    const char *at = memchr(s, '@', len);
    if (!at)
        return false;
    size_t local = (size_t)(at - s);
    if (local == 0 || local > 64 || s[0] == '.' || s[local - 1] == '.')
        return false;
    for (size_t i = 0; i < local; i++) {
        char c = s[i];
        if (c == '.' && s[i + 1] == '.')
            return false;
        if (!is_alpha(c) && !is_digit(c) && c != '.' && !(c && strchr(atext, c)))
            return false;
    }
    const char *dom = at + 1;
    size_t dlen = len - local - 1;
    if (dlen >= 2 && dom[0] == '[' && dom[dlen - 1] == ']') {
        if (dlen > 7 && strncmp(dom + 1, "IPv6:", 5) == 0)
            return check_ipv6(dom + 6, dlen - 7);
        return check_ipv4(dom + 1, dlen - 2);
    }
    return check_hostname(dom, dlen);
}

/* RFC 3986 characters allowed in a component besides percent-escapes: unreserved, sub-delims and
 * the extra characters each component admits. */
static bool uri_char_ok(char c, const char *extra)
{
    static const char sub_delims[] = "-._~!$&'()*+,;=";
    if (is_alpha(c) || is_digit(c))
        return true;
    return c != '\0' && (strchr(sub_delims, c) || strchr(extra, c));
}

/* s[0..len) made of allowed characters and well-formed %XX escapes. */
static bool uri_part_ok(const char *s, size_t len, const char *extra)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            if (i + 2 >= len || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))
                return false;
            i += 2;
        } else if (!uri_char_ok(s[i], extra)) {
            return false;
        }
    }
    return true;
}

/* RFC 3986 URI (absolute = true: scheme required) or relative reference. */
static bool check_uri(const char *s, size_t len, bool absolute)
{
    size_t i = 0, rest;
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
    size_t colon = 0;
    bool has_scheme = false;
    if (len > 0 && is_alpha(s[0])) {
        for (i = 1; i < len; i++) {
            if (s[i] == ':') {
                has_scheme = true;
                colon = i;
                break;
            }
            if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '+' && s[i] != '-' && s[i] != '.')
                break;
        }
    }
    if (absolute && !has_scheme)
        return false;
    i = has_scheme ? colon + 1 : 0;
    /* fragment and query */
    const char *hash = memchr(s + i, '#', len - i);
    size_t end = hash ? (size_t)(hash - s) : len;
    if (hash && !uri_part_ok(hash + 1, len - end - 1, ":@/?"))
        return false;
    const char *q = memchr(s + i, '?', end - i);
    size_t pend = q ? (size_t)(q - s) : end;
    if (q && !uri_part_ok(q + 1, end - pend - 1, ":@/?"))
        return false;
    /* hier-part or relative-part */
    if (pend - i >= 2 && s[i] == '/' && s[i + 1] == '/') {
        size_t a = i + 2;
        const char *slash = memchr(s + a, '/', pend - a);
        size_t aend = slash ? (size_t)(slash - s) : pend;
        const char *host = s + a;
        size_t hlen = aend - a;
        const char *userat = memchr(host, '@', hlen);
        if (userat) {
            if (!uri_part_ok(host, (size_t)(userat - host), ":"))
                return false;
            hlen -= (size_t)(userat - host) + 1;
            host = userat + 1;
        }
        if (hlen > 0 && host[0] == '[') {
            const char *close = memchr(host, ']', hlen);
            if (!close || !check_ipv6(host + 1, (size_t)(close - host) - 1))
                return false;
            rest = hlen - (size_t)(close - host) - 1;
            host = close + 1;
        } else {
            const char *port = memchr(host, ':', hlen);
            size_t nlen = port ? (size_t)(port - host) : hlen;
            if (!uri_part_ok(host, nlen, ""))
                return false;
            rest = hlen - nlen;
            host += nlen;
        }
        if (rest > 0) {
            if (host[0] != ':')
                return false;
            for (size_t k = 1; k < rest; k++)
                if (!is_digit(host[k]))
                    return false;
        }
        i = aend;
    } else if (!has_scheme) {
        /* A relative path's first segment may not contain ':' (it would read as a scheme). */
        const char *slash = memchr(s + i, '/', pend - i);
        size_t seg = slash ? (size_t)(slash - s) : pend;
        if (memchr(s + i, ':', seg - i))
            return false;
    }
    return uri_part_ok(s + i, pend - i, ":@/");
}

static bool check_uuid(const char *s, size_t len)
{
    if (len != 36)
        return false;
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex(s[i]))
            return false;
    }
    return true;
}

/* RFC 6901: empty, or "/"-prefixed tokens where "~" is followed by 0 or 1. */
static bool check_json_pointer(const char *s, size_t len)
{
    if (len > 0 && s[0] != '/')
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '~' && (i + 1 >= len || (s[i + 1] != '0' && s[i + 1] != '1')))
            return false;
    return true;
}

/* draft-handrews-relative-json-pointer: a non-negative integer (no leading zeros), optionally an
 * index adjustment (+n / -n), then "#" or a JSON Pointer. */
static bool check_relative_json_pointer(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && is_digit(s[i]))
        i++;
    if (i == 0 || (s[0] == '0' && i > 1))
        return false;
    if (i < len && (s[i] == '+' || s[i] == '-')) {
        size_t start = ++i;
        while (i < len && is_digit(s[i]))
            i++;
        if (i == start || (s[start] == '0' && i - start > 1))
            return false;
    }
    if (i < len && s[i] == '#')
        return i + 1 == len;
    return check_json_pointer(s + i, len - i);
}

static bool check_regex(const char *s, size_t len)
{
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)s, len, PCRE2_UTF, &errcode, &erroff, NULL);
    if (!re)
        return false;
    pcre2_code_free(re);
    return true;
}

bool sl_schema_format_check(enum sl_schema_format format, const char *s, size_t len)
{
    if (format == SL_SCHEMA_FORMAT_UNKNOWN)
        return true;
    if (len > FORMAT_MAX_LEN || memchr(s, '\0', len))
        return false;
    switch (format) {
    case SL_SCHEMA_FORMAT_DATE_TIME:
        return check_date_time(s, len);
    case SL_SCHEMA_FORMAT_DATE:
        return check_date(s, len);
    case SL_SCHEMA_FORMAT_TIME:
        return check_time(s, len);
    case SL_SCHEMA_FORMAT_DURATION:
        return check_duration(s, len);
    case SL_SCHEMA_FORMAT_EMAIL:
        return check_email(s, len);
    case SL_SCHEMA_FORMAT_HOSTNAME:
        return check_hostname(s, len);
    case SL_SCHEMA_FORMAT_IPV4:
        return check_ipv4(s, len);
    case SL_SCHEMA_FORMAT_IPV6:
        return check_ipv6(s, len);
    case SL_SCHEMA_FORMAT_URI:
        return check_uri(s, len, true);
    case SL_SCHEMA_FORMAT_URI_REFERENCE:
        return check_uri(s, len, false);
    case SL_SCHEMA_FORMAT_UUID:
        return check_uuid(s, len);
    case SL_SCHEMA_FORMAT_JSON_POINTER:
        return check_json_pointer(s, len);
    case SL_SCHEMA_FORMAT_RELATIVE_JSON_POINTER:
        return check_relative_json_pointer(s, len);
    case SL_SCHEMA_FORMAT_REGEX:
        return check_regex(s, len);
    case SL_SCHEMA_FORMAT_UNKNOWN:
        break;
    }
    return true;
}
