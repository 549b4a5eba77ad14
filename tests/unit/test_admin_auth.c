/* sluice-admin's tokens (admin/auth.c on sl_sign_key_lookup): a presented token is hashed and
 * looked up among every configured hash; names and roles come back; malformed headers, unknown
 * tokens, the hash itself and overlong tokens are refused; bad configured hashes are errors.
 * The Prometheus text reader of the overview (admin/prom.c): sums by label, and quantiles of a
 * histogram as histogram_quantile computes them. */
#include <string.h>

#include "auth.h"
#include "prom.h"
#include "sl_sign.h"
#include "sl_test.h"

/* printf %s TOKEN | sha256sum */
#define HASH_ALPHA "8ed3f6ad685b959ead7022518e1af76cd816f8e8ec7ccdda1ed4018e8f2223f8" /* alpha */
#define HASH_BETA                                                                                  \
    "f44e64e74f3c4e2d7c2c3e5ba2e5b7ec0eaebd9a1c0a9e6d3e5e1c7f9d1a2b3c" /* of no test token */

SL_TEST(tokens_map_to_names_and_roles)
{
    struct sl_err err;
    adm_auth_t *auth = adm_auth_new();
    SL_REQUIRE(auth);
    SL_CHECK_INT(adm_auth_add(auth, "viewer-1", HASH_BETA, ADM_ROLE_VIEWER, &err), 0);
    SL_CHECK_INT(adm_auth_add(auth, "alice", HASH_ALPHA, ADM_ROLE_OPERATOR, &err), 0);
    const struct adm_identity *who = adm_auth_check(auth, "Bearer alpha");
    SL_REQUIRE(who);
    SL_CHECK_STR(who->name, "alice");
    SL_CHECK_STR(adm_role_name(who->role), "operator");
    /* The scheme in any case, spaces before the token. */
    SL_CHECK(adm_auth_check(auth, "bearer   alpha") == who);
    SL_CHECK(!adm_auth_check(auth, "Bearer alph"));
    SL_CHECK(!adm_auth_check(auth, "Bearer alpha "));
    SL_CHECK(!adm_auth_check(auth, "Bearer " HASH_ALPHA));
    SL_CHECK(!adm_auth_check(auth, "Basic alpha"));
    SL_CHECK(!adm_auth_check(auth, "alpha"));
    SL_CHECK(!adm_auth_check(auth, "Bearer "));
    SL_CHECK(!adm_auth_check(auth, NULL));
    static char big[5000];
    memset(big, 'a', sizeof(big) - 1);
    memcpy(big, "Bearer ", 7);
    SL_CHECK(!adm_auth_check(auth, big));
    adm_auth_destroy(auth);
}

SL_TEST(bad_hashes_and_names_are_refused)
{
    struct sl_err err;
    adm_auth_t *auth = adm_auth_new();
    SL_REQUIRE(auth);
    SL_CHECK_INT(adm_auth_add(auth, "x", "abc", ADM_ROLE_VIEWER, &err), -1);
    SL_CHECK_CONTAINS(err.msg, "64 hex digits");
    SL_CHECK_INT(adm_auth_add(auth, "x", HASH_ALPHA "00", ADM_ROLE_VIEWER, &err), -1);
    char bad[] = HASH_ALPHA;
    bad[10] = 'g';
    SL_CHECK_INT(adm_auth_add(auth, "x", bad, ADM_ROLE_VIEWER, &err), -1);
    SL_CHECK_INT(adm_auth_add(auth, "", HASH_ALPHA, ADM_ROLE_VIEWER, &err), -1);
    SL_CHECK(!adm_auth_check(auth, "Bearer alpha")); /* none was added */
    adm_auth_destroy(auth);
}

/* The lookup compares every hash (no early exit) and returns the first that matches. */
SL_TEST(key_lookup_returns_the_first_match)
{
    unsigned char hashes[3][SL_SIGN_MAC_LEN];
    memset(hashes, 0, sizeof(hashes));
    SL_CHECK_INT(sl_sign_key_lookup("alpha", 5, (const unsigned char(*)[SL_SIGN_MAC_LEN])hashes, 3),
                 -1);
    SL_CHECK_INT(sl_sign_key_lookup("alpha", 5, NULL, 0), -1);
    /* The hash of "alpha" at 1 and 2. */
    for (int i = 0; i < SL_SIGN_MAC_LEN; i++) {
        unsigned int v;
        sscanf(HASH_ALPHA + 2 * i, "%2x", &v);
        hashes[1][i] = hashes[2][i] = (unsigned char)v;
    }
    SL_CHECK_INT(sl_sign_key_lookup("alpha", 5, (const unsigned char(*)[SL_SIGN_MAC_LEN])hashes, 3),
                 1);
    SL_CHECK_INT(sl_sign_key_lookup("alphA", 5, (const unsigned char(*)[SL_SIGN_MAC_LEN])hashes, 3),
                 -1);
}

SL_TEST(prometheus_text_sums_and_quantiles)
{
    static const char text[] =
        "# HELP sluice_deliver_attempts_total Delivery attempts.\n"
        "# TYPE sluice_deliver_attempts_total counter\n"
        "sluice_deliver_attempts_total{destination=\"crm\",result=\"2xx\"} 8\n"
        "sluice_deliver_attempts_total{destination=\"crm\",result=\"5xx\"} 2\n"
        "sluice_deliver_attempts_total{destination=\"b\\\"q\",result=\"2xx\"} 5\n"
        "sluice_consumer_lag{stage=\"route\",topic=\"t\",partition=\"0\"} 3\n"
        "sluice_consumer_lag{stage=\"route\",topic=\"t\",partition=\"1\"} 4\n"
        "garbage line\n"
        "h_bucket{destination=\"crm\",le=\"0.1\"} 5\n"
        "h_bucket{destination=\"crm\",le=\"0.2\"} 9\n"
        "h_bucket{destination=\"crm\",le=\"+Inf\"} 10\n"
        "h_count{destination=\"crm\"} 10\n";
    adm_prom_t *p = adm_prom_parse(text);
    SL_REQUIRE(p);
    bool found;
    SL_CHECK(adm_prom_sum(p, "sluice_deliver_attempts_total", NULL, &found) == 15 && found);
    SL_CHECK(adm_prom_sum(p, "sluice_deliver_attempts_total",
                          (const char *const[]){"destination", "crm", NULL}, NULL) == 10);
    SL_CHECK(adm_prom_sum(p, "sluice_deliver_attempts_total",
                          (const char *const[]){"destination", "b\"q", NULL}, NULL) == 5);
    SL_CHECK(adm_prom_sum(p, "sluice_consumer_lag", NULL, NULL) == 7);
    adm_prom_sum(p, "absent", NULL, &found);
    SL_CHECK(!found);
    const char *const crm[] = {"destination", "crm", NULL};
    /* Rank 5 of 10 is the top of the first bucket; rank 9.5 lies in +Inf: the last bound. */
    SL_CHECK(adm_prom_quantile(p, "h", crm, 0.5) == 0.1);
    /* Rank 7 lies 2 of 4 into (0.1, 0.2]. */
    SL_CHECK(adm_prom_quantile(p, "h", crm, 0.7) > 0.1499 &&
             adm_prom_quantile(p, "h", crm, 0.7) < 0.1501);
    SL_CHECK(adm_prom_quantile(p, "h", crm, 0.95) == 0.2);
    SL_CHECK(adm_prom_quantile(p, "h", (const char *const[]){"destination", "x", NULL}, 0.5) == -1);
    adm_prom_destroy(p);
}

SL_TEST_MAIN()
