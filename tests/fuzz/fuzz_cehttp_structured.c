/*
 * CloudEvents over HTTP, structured content mode (ingress/cehttp.c: cehttp_structured): the
 * body is an application/cloudevents+json envelope. An accepted event must survive the trip
 * through Kafka record headers, and when the envelope has `data`, the compacted data that
 * cehttp_structured hands on must be the same JSON value as jansson reads there.
 */
#include <jansson.h>
#include <stdlib.h>

#include "fuzz.h"
#include "fuzz_cehttp.h"

#include "cehttp.h"

static void check_data(const uint8_t *body, size_t size, const char *out, size_t out_len)
{
    json_t *env = json_loadb((const char *)body, size, 0, NULL);
    json_t *want = json_object_get(env, "data");
    if (want && !json_is_null(want)) {
        json_error_t jerr;
        json_t *got = out ? json_loadb(out, out_len, JSON_DECODE_ANY, &jerr) : NULL;
        if (!got)
            fuzz_fail("the event's data is no longer JSON: %s", out ? jerr.text : "(none)");
        if (!json_equal(got, want))
            fuzz_fail("the event's data changed when compacted");
        json_decref(got);
    }
    json_decref(env);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_INPUT_MAX)
        return 0;
    struct sl_ce ce;
    struct sl_err err;
    char *out = NULL;
    size_t out_len = 0;
    sl_ce_init(&ce);
    int rc = cehttp_structured(data, size, &ce, &out, &out_len, &err);
    if (rc == CEHTTP_OK) {
        fuzz_ce_roundtrip(&ce);
        if (!out && out_len)
            fuzz_fail("data of %zu bytes without a buffer", out_len);
        check_data(data, size, out, out_len);
    } else if (rc != CEHTTP_INVALID && rc != CEHTTP_UNSUPPORTED) {
        fuzz_fail("cehttp_structured returned %d", rc);
    } else if (out) {
        fuzz_fail("a rejected event left data behind");
    }
    free(out);
    sl_ce_free(&ce);
    return 0;
}
