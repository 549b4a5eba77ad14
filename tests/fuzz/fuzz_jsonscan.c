/*
 * The ingress JSON scanner (ingress/jsonscan.c) over any body, with the pointers a source
 * typically configures. Checks that every hit lies inside the text and that its text can be
 * read back whatever the output buffer's size.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_jsonref.h"
#include "jsonscan.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_jsonptrs_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_INPUT_MAX)
        return 0;
    struct jsonscan_hit hits[FUZZ_N_POINTERS];
    struct sl_err err;
    (void)jsonscan_utf8_valid(data, size);
    if (jsonscan(data, size, fuzz_pointers, FUZZ_N_POINTERS, hits, &err) != 0) {
        if (!strstr(err.msg, "malformed JSON"))
            fuzz_fail("rejected without saying why: %s", err.msg);
        return 0;
    }
    for (size_t i = 0; i < FUZZ_N_POINTERS; i++) {
        if (hits[i].kind == JSONSCAN_ABSENT)
            continue;
        if (hits[i].off > size || hits[i].len > size - hits[i].off || hits[i].len == 0)
            fuzz_fail("hit %zu out of the text: off %zu len %zu size %zu", i, hits[i].off,
                      hits[i].len, size);
        /* Every size from 1 up: each either fits with a NUL after it or fails cleanly. */
        char out[64];
        for (size_t n = 1; n <= sizeof(out); n += 7) {
            size_t got = 0;
            memset(out, 'X', sizeof(out));
            if (jsonscan_text(data, &hits[i], out, n, &got) == 0 && (got >= n || out[got] != 0))
                fuzz_fail("jsonscan_text wrote %zu bytes into %zu without its NUL", got, n);
        }
        char *big = malloc(hits[i].len + 1);
        size_t got = 0;
        if (!big)
            fuzz_fail("out of memory");
        int rc = jsonscan_text(data, &hits[i], big, hits[i].len + 1, &got);
        bool readable = hits[i].kind == JSONSCAN_STRING || hits[i].kind == JSONSCAN_NUMBER;
        if (readable && rc != 0)
            fuzz_fail("a %s hit that jsonscan accepted cannot be read back",
                      hits[i].kind == JSONSCAN_STRING ? "string" : "number");
        if (rc == 0 && !jsonscan_utf8_valid(big, got))
            fuzz_fail("a value read back is not UTF-8");
        free(big);
    }
    return 0;
}
