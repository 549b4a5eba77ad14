/*
 * The Redis URL parser (common/sl_redis.c) over any text, as SLUICE_REDIS_URL or the pipeline
 * file may hold. Includes the module, as tests/unit/test_redis_url.c does, to check what
 * url_parse() fills in: a host, a port in 1..65535, a database >= 0, bounded credentials; and
 * that sl_redis_new (which does not connect) agrees with it.
 */
#include "../../common/sl_redis.c"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_INPUT_MAX)
        return 0;
    char *text = fuzz_strndup(data, size);
    struct redis_url u;
    struct sl_err err;
    int rc = url_parse(text, &u, &err);
    if (rc == 0) {
        if (!u.host[0] || u.port < 1 || u.port > 65535 || u.db < 0)
            fuzz_fail("redis url parsed to host \"%s\" port %d db %d", u.host, u.port, u.db);
        if (strlen(u.user) > SL_REDIS_CRED_MAX || strlen(u.password) > SL_REDIS_CRED_MAX)
            fuzz_fail("redis url credentials over their bound");
        if (u.user[0] && !u.password[0])
            fuzz_fail("a user without a password");
    }
    sl_redis_t *r = sl_redis_new(text, 1000, &err);
    if (!r != (rc != 0))
        fuzz_fail("url_parse and sl_redis_new disagree on the url");
    sl_redis_destroy(r);
    free(text);
    return 0;
}
