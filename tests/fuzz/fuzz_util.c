/* Helpers shared by the fuzz harnesses (see fuzz.h). */
#include "fuzz.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

char *fuzz_strndup(const void *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        fuzz_fail("out of memory");
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

void fuzz_split(const uint8_t *data, size_t size, const uint8_t **a, size_t *alen,
                const uint8_t **b, size_t *blen)
{
    const size_t seplen = strlen(FUZZ_SEP);
    const uint8_t *sep = size >= seplen ? memmem(data, size, FUZZ_SEP, seplen) : NULL;
    *a = data;
    *alen = sep ? (size_t)(sep - data) : size;
    *b = sep ? sep + seplen : data + size;
    *blen = sep ? size - *alen - seplen : 0;
}

char *fuzz_first_line(const uint8_t *data, size_t size, const uint8_t **rest, size_t *rest_len)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t len = nl ? (size_t)(nl - data) : size;
    *rest = nl ? nl + 1 : data + size;
    *rest_len = nl ? size - len - 1 : 0;
    return fuzz_strndup(data, len);
}

void fuzz_headers_parse(struct fuzz_headers *h, const uint8_t *data, size_t size)
{
    const uint8_t *end = memmem(data, size, "\n\n", 2);
    size_t block_len = end ? (size_t)(end - data) : size;
    *h = (struct fuzz_headers){.block = fuzz_strndup(data, block_len)};
    h->body = end ? end + 2 : data + size;
    h->body_len = end ? size - block_len - 2 : 0;
    /* The copy stops at an embedded NUL, as a C string header value would. */
    for (char *line = h->block, *next; line && *line && h->n < FUZZ_HEADERS_MAX; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        const char *value = colon + 1;
        if (*value == ' ')
            value++;
        h->names[h->n] = line;
        h->values[h->n++] = value;
    }
}

void fuzz_headers_free(struct fuzz_headers *h)
{
    free(h->block);
    h->block = NULL;
}

const char *fuzz_headers_get(const struct fuzz_headers *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->names[i], name) == 0)
            return h->values[i];
    return NULL;
}
