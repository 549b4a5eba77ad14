/*
 * The JSON Schema compiler and validator (common/sl_jsonschema.c): a schema, FUZZ_SEP, an
 * instance. The schema is compiled (with formats asserted when the instance's first byte is odd,
 * so both modes run); when it compiles and the instance is JSON, it is validated twice: with an
 * error callback and without. Both must agree, and an invalid instance must report at least one
 * error, with locations that are JSON Pointers.
 */
#include <jansson.h>
#include <string.h>

#include "fuzz.h"
#include "sl_jsonschema.h"

#define MAX_ERRORS 20

struct errors {
    size_t n;
};

static void on_error(void *opaque, const char *instance_path, const char *keyword_location,
                     const char *message)
{
    struct errors *e = opaque;
    if (!instance_path || !keyword_location || !message || !*message)
        fuzz_fail("an error without its locations or message");
    if ((*instance_path && *instance_path != '/') ||
        (*keyword_location && *keyword_location != '/'))
        fuzz_fail("an error location that is not a JSON Pointer: \"%s\" \"%s\"", instance_path,
                  keyword_location);
    e->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_INPUT_MAX)
        return 0;
    const uint8_t *a, *b;
    size_t alen, blen;
    fuzz_split(data, size, &a, &alen, &b, &blen);
    json_t *schema = json_loadb((const char *)a, alen, JSON_DECODE_ANY, NULL);
    json_t *instance = json_loadb((const char *)b, blen, JSON_DECODE_ANY, NULL);
    sl_schema_set_t *set = sl_schema_set_new();
    if (!set)
        fuzz_fail("out of memory");
    struct sl_err err;
    const sl_schema_t *s = schema ? sl_schema_set_add(set, schema, NULL, &err) : NULL;
    if (s && instance) {
        sl_schema_set_assert_formats(set, blen && (b[0] & 1));
        struct errors e = {0};
        int with_cb = sl_schema_validate(s, instance, on_error, &e, MAX_ERRORS);
        int plain = sl_schema_validate(s, instance, NULL, NULL, 0);
        if (with_cb < 0 || plain < 0)
            fuzz_fail("validation failed internally");
        if (with_cb != plain)
            fuzz_fail("valid %d with an error callback, %d without", with_cb, plain);
        if (with_cb == 0 && e.n == 0)
            fuzz_fail("invalid without any error reported");
        if (with_cb == 1 && e.n != 0)
            fuzz_fail("valid with %zu errors reported", e.n);
        if (e.n > MAX_ERRORS)
            fuzz_fail("%zu errors reported, at most %d asked for", e.n, MAX_ERRORS);
    }
    sl_schema_set_destroy(set);
    json_decref(schema);
    json_decref(instance);
    return 0;
}
