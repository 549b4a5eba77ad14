/*
 * OAuth2 token endpoint answers (workers/deliver/auth.c: dlv_auth_fetch_done), which come from
 * a remote system. The first byte of the input picks the HTTP status (odd: 200), the rest is
 * the body. A token that is taken must become one header line of visible ASCII (nothing a server
 * could read as a second header), usable at once; no message may show the client secret (unless the
 * endpoint's answer itself carries it: its `error` code is quoted, bounded to 63 token characters).
 */
#include <string.h>

#include "auth.h"
#include "fuzz.h"

#define SECRET "fuzz-client-secret"
#define NOW_MS 1700000000000LL
#define BEARER "Authorization: Bearer "

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > FUZZ_INPUT_MAX)
        return 0;
    static const struct dlv_auth_conf conf = {.type = DLV_AUTH_OAUTH2,
                                              .token_url = "https://auth.example.com/token",
                                              .client_id = "sluice",
                                              .client_secret = SECRET,
                                              .scope = "events:write"};
    struct sl_err err;
    dlv_auth_t *a = dlv_auth_new(&conf, &err);
    if (!a)
        fuzz_fail("dlv_auth_new: %s", err.msg);
    static struct dlv_auth_fetch f;
    static char header[DLV_AUTH_HEADER_MAX];
    unsigned generation = 0;
    if (dlv_auth_fetch_begin(a, NOW_MS, &f, &err) != 0)
        fuzz_fail("dlv_auth_fetch_begin: %s", err.msg);
    long status = data[0] & 1 ? 200 : 400 + data[0] % 100;
    if (dlv_auth_fetch_done(a, status, (const char *)data + 1, size - 1, NOW_MS, &err) == 0) {
        if (!dlv_auth_header(a, NOW_MS, header, sizeof(header), &generation))
            fuzz_fail("a token is held but no header comes of it");
        if (strncmp(header, BEARER, strlen(BEARER)) != 0 || strlen(header) == strlen(BEARER))
            fuzz_fail("the header is not a bearer token: %.80s", header);
        for (const char *p = header + strlen(BEARER); *p; p++)
            if (*p <= ' ' || *p >= 0x7f)
                fuzz_fail("the token endpoint's answer put byte 0x%02x into the header",
                          (unsigned char)*p);
    } else if (strstr(err.msg, SECRET) && !memmem(data, size, SECRET, strlen(SECRET))) {
        fuzz_fail("the message shows the client secret: %s", err.msg);
    }
    dlv_auth_destroy(a);
    return 0;
}
