/*
 * CloudEvents over HTTP, binary content mode (ingress/cehttp.c: cehttp_binary and the
 * Content-Type classification). The input is "Name: value" header lines, as a client sends
 * them. An accepted event must survive the trip through Kafka record headers.
 */
#include "fuzz.h"
#include "fuzz_cehttp.h"

#include "cehttp.h"
#include "verify.h"

static bool is_credential(void *opaque, const char *name)
{
    return verify_header_is_credential(NULL, name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_INPUT_MAX)
        return 0;
    struct fuzz_headers h;
    fuzz_headers_parse(&h, data, size);
    struct cehttp_header hdrs[FUZZ_HEADERS_MAX];
    for (size_t i = 0; i < h.n; i++)
        hdrs[i] = (struct cehttp_header){h.names[i], h.values[i]};
    (void)cehttp_media_of(fuzz_headers_get(&h, "Content-Type"));
    struct sl_ce ce;
    struct sl_err err;
    sl_ce_init(&ce);
    int rc = cehttp_binary(hdrs, h.n, is_credential, NULL, &ce, &err);
    if (rc == CEHTTP_OK)
        fuzz_ce_roundtrip(&ce);
    else if (rc != CEHTTP_INVALID)
        fuzz_fail("cehttp_binary returned %d", rc);
    sl_ce_free(&ce);
    fuzz_headers_free(&h);
    return 0;
}
