/*
 * The W3C traceparent header (ingress/traceparent.c) as a client sends it. A header that parses
 * must format back to a header that parses to the same ids and flags; a version-00 header is
 * canonical (lowercase hex, exactly 55 characters), so it must format back to itself.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "traceparent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_INPUT_MAX)
        return 0;
    char *text = fuzz_strndup(data, size);
    struct traceparent tp, again;
    if (traceparent_parse(text, &tp) == 0) {
        char out[TRACEPARENT_LEN + 1];
        traceparent_format(&tp, out);
        if (traceparent_parse(out, &again) != 0 || memcmp(&tp, &again, sizeof(tp)) != 0)
            fuzz_fail("a parsed traceparent does not survive formatting: %s", out);
        if (strncmp(text, "00-", 3) == 0 && strcmp(text, out) != 0)
            fuzz_fail("version 00 header %.60s formats as %s", text, out);
    }
    free(text);
    return 0;
}
