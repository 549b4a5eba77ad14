/*
 * JSON Pointers (RFC 6901) as sources configure them (ingress/jsonscan.c: jsonptr_parse) and as
 * the scanner resolves them. The input is the pointer on its first line, then the body. The
 * parsed pointer must give its text back; resolved over a body that jansson also accepts, it must
 * find what an independent RFC 6901 walk over jansson's tree finds (the kind of the value).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_jsonref.h"
#include "jsonscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_INPUT_MAX)
        return 0;
    const uint8_t *body;
    size_t body_len;
    char *text = fuzz_first_line(data, size, &body, &body_len);
    struct sl_err err;
    jsonptr_t *ptr = jsonptr_parse(text, &err);
    if (!ptr)
        goto out;
    if (strcmp(jsonptr_text(ptr), text) != 0)
        fuzz_fail("jsonptr_text gives \"%s\" for \"%s\"", jsonptr_text(ptr), text);
    struct jsonscan_hit hit;
    const jsonptr_t *ptrs[1] = {ptr};
    json_t *root = json_loadb((const char *)body, body_len, JSON_DECODE_ANY, NULL);
    if (jsonscan(body, body_len, ptrs, 1, &hit, &err) == 0 && root &&
        hit.kind != fuzz_jansson_kind(fuzz_jansson_at(root, text)))
        fuzz_fail("pointer \"%s\": jsonscan finds kind %d, RFC 6901 over jansson kind %d", text,
                  hit.kind, fuzz_jansson_kind(fuzz_jansson_at(root, text)));
    json_decref(root);
out:
    jsonptr_destroy(ptr);
    free(text);
    return 0;
}
