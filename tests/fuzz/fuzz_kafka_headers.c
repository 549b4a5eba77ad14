/*
 * CloudEvents attributes read back from Kafka record headers (common/sl_cloudevent.c:
 * sl_ce_from_headers, sl_ce_read_headers; common/sl_record.c: sl_dead_letter_headers), which
 * any producer to a topic can write. The input is one header a line, "name:value" with the
 * value's bytes as they are (a line without ':' is a header without a value). An event read
 * strictly must survive the trip back; the lenient read never holds more than SL_CE_MAX_ATTRS;
 * a dead letter made from any record carries its stage and reason.
 */
#include <string.h>

#include "fuzz.h"
#include "fuzz_cehttp.h"
#include "sl_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_INPUT_MAX)
        return 0;
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8);
    for (const uint8_t *p = data, *end = data + size; p < end;) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *line_end = nl ? nl : end;
        const uint8_t *colon = memchr(p, ':', (size_t)(line_end - p));
        const uint8_t *name_end = colon ? colon : line_end;
        rd_kafka_header_add(hdrs, (const char *)p, (ssize_t)(name_end - p),
                            colon ? colon + 1 : NULL, colon ? (ssize_t)(line_end - colon - 1) : 0);
        p = nl ? nl + 1 : end;
    }
    struct sl_ce ce;
    struct sl_err err;
    sl_ce_init(&ce);
    if (sl_ce_from_headers(hdrs, &ce, &err) == 0)
        fuzz_ce_roundtrip(&ce);
    sl_ce_free(&ce);
    sl_ce_init(&ce);
    sl_ce_read_headers(hdrs, &ce);
    if (ce.n > SL_CE_MAX_ATTRS)
        fuzz_fail("%zu attributes read from headers", ce.n);
    sl_ce_free(&ce);

    rd_kafka_headers_t *dl = sl_dead_letter_headers(hdrs, "validate", "schema", NULL, 0);
    sl_ce_init(&ce);
    sl_ce_read_headers(dl, &ce);
    const char *stage = sl_ce_get(&ce, SL_CE_STAGE), *reason = sl_ce_get(&ce, SL_CE_REASON);
    if (!stage || strcmp(stage, "validate") != 0 || !reason || strcmp(reason, "schema") != 0)
        fuzz_fail("a dead letter without its stage and reason");
    sl_ce_free(&ce);
    rd_kafka_headers_destroy(dl);
    rd_kafka_headers_destroy(hdrs);
    return 0;
}
