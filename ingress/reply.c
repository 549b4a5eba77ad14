#include "reply.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"

#define REPLACEMENT "\\ufffd" /* U+FFFD for a byte that is not well-formed UTF-8 */
#define ESCAPE_MAX  6         /* the longest escape we write for one input byte */

/* Bytes of the UTF-8 sequence that starts with `lead`, by its high bits (validated after). */
static size_t utf8_len(unsigned char lead)
{
    return lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
}

/* Appends s as JSON string content to out[*o..cap): whole characters only, stopping before one
 * that would not fit. Returns false when it had to stop. */
static bool append_escaped(char *out, size_t cap, size_t *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    while (p < end) {
        char esc[ESCAPE_MAX];
        const void *src = esc;
        size_t n, used = 1;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\', esc[1] = (char)*p, n = 2;
        } else if (*p < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[*p >> 4], esc[5] = hex[*p & 15], n = 6;
        } else if (*p < 0x80) {
            esc[0] = (char)*p, n = 1;
        } else {
            used = utf8_len(*p);
            if ((size_t)(end - p) >= used && jsonscan_utf8_valid(p, used)) {
                src = p, n = used;
            } else {
                src = REPLACEMENT, n = strlen(REPLACEMENT), used = 1;
            }
        }
        if (*o + n > cap)
            return false;
        memcpy(out + *o, src, n);
        *o += n;
        p += used;
    }
    return true;
}

size_t reply_error_json(char *out, size_t size, const char *error, const char *detail)
{
    static const char head[] = "{\"error\":\"", mid[] = "\",\"detail\":\"", tail[] = "\"}";
    /* Room for the fixed parts is reserved first, so the detail is what gets cut. */
    size_t cap = size - 1 - (sizeof(tail) - 1), o = 0;
    memcpy(out, head, sizeof(head) - 1);
    o += sizeof(head) - 1;
    if (append_escaped(out, cap - (sizeof(mid) - 1), &o, error)) {
        memcpy(out + o, mid, sizeof(mid) - 1);
        o += sizeof(mid) - 1;
        append_escaped(out, cap, &o, detail ? detail : "");
    } else { /* an error code never gets this long; keep the body well-formed anyway */
        memcpy(out + o, mid, sizeof(mid) - 1);
        o += sizeof(mid) - 1;
    }
    memcpy(out + o, tail, sizeof(tail));
    return o + sizeof(tail) - 1;
}

char *reply_accepted_json(const char *id, size_t *len)
{
    static const char head[] = "{\"id\":\"", tail[] = "\"}";
    size_t cap = sizeof(head) + ESCAPE_MAX * strlen(id) + sizeof(tail);
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t o = sizeof(head) - 1;
    memcpy(out, head, o);
    append_escaped(out, cap, &o, id); /* always fits: cap allows the longest escape per byte */
    memcpy(out + o, tail, sizeof(tail));
    *len = o + sizeof(tail) - 1;
    return out;
}
