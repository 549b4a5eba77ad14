#include "sl_text.h"

#include <stdbool.h>
#include <string.h>

int sl_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sl_hex_decode(const char *in, size_t len, unsigned char *out, size_t n)
{
    if (len != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = sl_hex_digit((unsigned char)in[2 * i]),
            lo = sl_hex_digit((unsigned char)in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

int sl_pct_decode(const char *s, size_t n, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = n - i >= 3 ? sl_hex_digit((unsigned char)s[i + 1]) : -1;
            int lo = n - i >= 3 ? sl_hex_digit((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= size)
            return -2;
        out[o++] = c;
    }
    if (size == 0)
        return -2;
    out[o] = '\0';
    return 0;
}

size_t sl_utf8_seq_len(const unsigned char *p, size_t n)
{
    size_t len;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        len = 2;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        len = 3;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] > 0x9F) ||
        (p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] > 0x8F))
        return 0;
    return len;
}

/* Whether s[0..n) is "." or "..", each '.' also as %2E or %2e. */
static bool dot_segment(const char *s, size_t n)
{
    size_t dots = 0;
    for (size_t i = 0; i < n; dots++) {
        if (s[i] == '.')
            i++;
        else if (n - i >= 3 && s[i] == '%' && s[i + 1] == '2' &&
                 (s[i + 2] == 'E' || s[i + 2] == 'e'))
            i += 3;
        else
            return false;
    }
    return dots == 1 || dots == 2;
}

int sl_url_refuse_dot_segments(const char *url, struct sl_err *err)
{
    const char *p = strstr(url, "://");
    if (!p)
        return 0;
    p += 3;
    p += strcspn(p, "/?#"); /* the authority */
    while (*p == '/') {
        const char *seg = p + 1;
        size_t n = strcspn(seg, "/?#");
        if (dot_segment(seg, n))
            return sl_err_set(err, SL_ERR_INVALID,
                              "the path has the dot segment \"%.*s\": refused, a server would "
                              "resolve it to another path",
                              (int)n, seg);
        p = seg + n;
    }
    return 0;
}
