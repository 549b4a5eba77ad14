/* See fuzz_jsonref.h. Written from RFC 6901, not from jsonscan.c, so that the two can disagree. */
#include "fuzz_jsonref.h"

#include <stdlib.h>

#include "fuzz.h"

const char *const fuzz_pointer_texts[FUZZ_N_POINTERS] = {
    "", "/id", "/type", "/data/object/customer", "/data/0", "/a~1b", "/~0/", "/0/1"};
const jsonptr_t *fuzz_pointers[FUZZ_N_POINTERS];

void fuzz_jsonptrs_init(void)
{
    for (size_t i = 0; i < FUZZ_N_POINTERS; i++) {
        struct sl_err err;
        if (!(fuzz_pointers[i] = jsonptr_parse(fuzz_pointer_texts[i], &err)))
            fuzz_fail("jsonptr_parse(%s): %s", fuzz_pointer_texts[i], err.msg);
    }
}

json_t *fuzz_jansson_at(json_t *root, const char *ptr)
{
    char tok[JSONPTR_MAX_TEXT + 1];
    json_t *v = root;
    if (*ptr && *ptr != '/')
        return NULL;
    while (v && *ptr == '/') {
        size_t n = 0;
        for (ptr++; *ptr && *ptr != '/' && n < JSONPTR_MAX_TEXT; ptr++) {
            if (*ptr == '~') {
                ptr++;
                if (*ptr != '0' && *ptr != '1')
                    return NULL;
                tok[n++] = *ptr == '0' ? '~' : '/';
            } else {
                tok[n++] = *ptr;
            }
        }
        tok[n] = '\0';
        if (json_is_object(v)) {
            v = json_object_get(v, tok);
        } else if (json_is_array(v)) {
            /* An index: decimal digits without leading zeros. */
            char *end = NULL;
            unsigned long idx = strtoul(tok, &end, 10);
            bool canonical = tok[0] >= '0' && tok[0] <= '9' && !*end && (tok[0] != '0' || n == 1);
            v = canonical ? json_array_get(v, idx) : NULL;
        } else {
            v = NULL;
        }
    }
    return v;
}

enum jsonscan_kind fuzz_jansson_kind(const json_t *v)
{
    if (!v)
        return JSONSCAN_ABSENT;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return JSONSCAN_OBJECT;
    case JSON_ARRAY:
        return JSONSCAN_ARRAY;
    case JSON_STRING:
        return JSONSCAN_STRING;
    case JSON_INTEGER:
    case JSON_REAL:
        return JSONSCAN_NUMBER;
    case JSON_TRUE:
        return JSONSCAN_TRUE;
    case JSON_FALSE:
        return JSONSCAN_FALSE;
    case JSON_NULL:
        return JSONSCAN_NULL;
    }
    return JSONSCAN_ABSENT;
}
