/* See fuzz_cehttp.h. */
#include "fuzz_cehttp.h"

#include <string.h>

#include "fuzz.h"

void fuzz_ce_roundtrip(const struct sl_ce *ce)
{
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(SL_CE_MAX_ATTRS);
    struct sl_ce back;
    struct sl_err err;
    sl_ce_init(&back);
    if (sl_ce_to_headers(ce, hdrs, &err) != 0)
        fuzz_fail("an accepted event cannot become Kafka headers: %s", err.msg);
    if (sl_ce_from_headers(hdrs, &back, &err) != 0)
        fuzz_fail("an accepted event cannot be read back from Kafka headers: %s", err.msg);
    if (back.n != ce->n)
        fuzz_fail("%zu attributes went into Kafka headers, %zu came back", ce->n, back.n);
    for (size_t i = 0; i < ce->n; i++) {
        const char *v = sl_ce_get(&back, ce->attrs[i].name);
        if (!v || strcmp(v, ce->attrs[i].value) != 0)
            fuzz_fail("attribute %s changed on its way through Kafka headers", ce->attrs[i].name);
    }
    sl_ce_free(&back);
    rd_kafka_headers_destroy(hdrs);
}
