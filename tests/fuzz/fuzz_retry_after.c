/*
 * Retry-After as destinations send it (workers/deliver/retry.c: dlv_retry_after_ms),
 * delta-seconds or an HTTP-date. An accepted value gives a delay from 0 up to the cap
 * (DLV_RETRY_AFTER_MAX_S), whatever the number or date written.
 */
#include <stdlib.h>

#include "fuzz.h"
#include "retry.h"

#define NOW_MS 1700000000123LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_INPUT_MAX)
        return 0;
    char *text = fuzz_strndup(data, size);
    long long delay = -1;
    if (dlv_retry_after_ms(text, NOW_MS, &delay) == 0 &&
        (delay < 0 || delay > DLV_RETRY_AFTER_MAX_S * 1000))
        fuzz_fail("Retry-After \"%.80s\" gives a delay of %lld ms", text, delay);
    free(text);
    return 0;
}
