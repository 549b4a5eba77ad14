/*
 * The JSON Schema format assertions (common/sl_jsonschema_format.c) over any string: the first
 * byte picks the format, the rest is the instance string. ipv4 and ipv6 must agree with
 * inet_pton(3), which implements the same RFCs (2673 dotted quads without leading zeros, 4291
 * text forms).
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sl_jsonschema_format.h"

#define N_FORMATS ((int)SL_SCHEMA_FORMAT_REGEX)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > FUZZ_INPUT_MAX)
        return 0;
    enum sl_schema_format format = (enum sl_schema_format)(1 + data[0] % N_FORMATS);
    const char *s = (const char *)data + 1;
    size_t len = size - 1;
    bool ok = sl_schema_format_check(format, s, len);
    if ((format == SL_SCHEMA_FORMAT_IPV4 || format == SL_SCHEMA_FORMAT_IPV6) &&
        !memchr(s, '\0', len)) {
        char *text = fuzz_strndup(s, len);
        unsigned char addr[16];
        int af = format == SL_SCHEMA_FORMAT_IPV4 ? AF_INET : AF_INET6;
        bool want = inet_pton(af, text, addr) == 1;
        if (ok != want)
            fuzz_fail("%s \"%.60s\": format check %d, inet_pton %d",
                      af == AF_INET ? "ipv4" : "ipv6", text, ok, want);
        free(text);
    }
    return 0;
}
