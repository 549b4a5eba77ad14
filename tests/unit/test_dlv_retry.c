/* deliver's retry.c: classification, the backoff schedule, Retry-After parsing and the
 * give-up decision. */
#include "retry.h"
#include "sl_test.h"

#include <stdint.h>

static const struct dlv_retry_policy policy = {
    .max_attempts = 5, .initial_ms = 1000, .max_ms = 10000, .max_age_ms = 60000, .jitter = false};

SL_TEST(classify_default_rules)
{
    SL_CHECK_INT(dlv_classify(NULL, 200), DLV_DELIVERED);
    SL_CHECK_INT(dlv_classify(NULL, 204), DLV_DELIVERED);
    SL_CHECK_INT(dlv_classify(NULL, 299), DLV_DELIVERED);
    SL_CHECK_INT(dlv_classify(NULL, 0), DLV_RETRY); /* timeout, refused, reset */
    SL_CHECK_INT(dlv_classify(NULL, 408), DLV_RETRY);
    SL_CHECK_INT(dlv_classify(NULL, 425), DLV_RETRY);
    SL_CHECK_INT(dlv_classify(NULL, 429), DLV_RETRY);
    SL_CHECK_INT(dlv_classify(NULL, 500), DLV_RETRY);
    SL_CHECK_INT(dlv_classify(NULL, 503), DLV_RETRY);
    SL_CHECK_INT(dlv_classify(NULL, 599), DLV_RETRY);
    SL_CHECK_INT(dlv_classify(NULL, 400), DLV_PERMANENT);
    SL_CHECK_INT(dlv_classify(NULL, 401), DLV_PERMANENT);
    SL_CHECK_INT(dlv_classify(NULL, 404), DLV_PERMANENT);
    SL_CHECK_INT(dlv_classify(NULL, 409), DLV_PERMANENT);
    SL_CHECK_INT(dlv_classify(NULL, 422), DLV_PERMANENT);
    SL_CHECK_INT(dlv_classify(NULL, 301), DLV_PERMANENT);
    SL_CHECK_INT(dlv_classify(NULL, 100), DLV_PERMANENT);
}

SL_TEST(classify_overrides)
{
    struct dlv_status_rules r = {
        .n_retriable = 2, .retriable = {409, 423}, .n_permanent = 1, .permanent = {501}};
    SL_CHECK_INT(dlv_classify(&r, 409), DLV_RETRY);
    SL_CHECK_INT(dlv_classify(&r, 423), DLV_RETRY);
    SL_CHECK_INT(dlv_classify(&r, 501), DLV_PERMANENT);
    SL_CHECK_INT(dlv_classify(&r, 500), DLV_RETRY);
    SL_CHECK_INT(dlv_classify(&r, 400), DLV_PERMANENT);
    SL_CHECK_INT(dlv_classify(&r, 200), DLV_DELIVERED); /* 2xx cannot be moved */
}

SL_TEST(backoff_doubles_up_to_max)
{
    SL_CHECK_INT(dlv_backoff_ms(&policy, 1, 0), 1000);
    SL_CHECK_INT(dlv_backoff_ms(&policy, 2, 0), 2000);
    SL_CHECK_INT(dlv_backoff_ms(&policy, 3, 0), 4000);
    SL_CHECK_INT(dlv_backoff_ms(&policy, 4, 0), 8000);
    SL_CHECK_INT(dlv_backoff_ms(&policy, 5, 0), 10000);
    SL_CHECK_INT(dlv_backoff_ms(&policy, 1000, 0), 10000); /* no overflow for large counts */
}

SL_TEST(full_jitter_stays_within_the_cap)
{
    struct dlv_retry_policy p = policy;
    p.jitter = true;
    uint64_t x = 88172645463325252ULL;
    bool below_half = false, above_half = false;
    for (int i = 0; i < 10000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        long long d = dlv_backoff_ms(&p, 3, x);
        SL_CHECK(d >= 0 && d <= 4000);
        below_half |= d < 2000;
        above_half |= d > 2000;
    }
    SL_CHECK(below_half && above_half);
    SL_CHECK_INT(dlv_backoff_ms(&p, 3, 4000), 4000);
    SL_CHECK_INT(dlv_backoff_ms(&p, 3, 4001), 0);
}

SL_TEST(retry_after_seconds)
{
    long long d = -1;
    SL_CHECK_INT(dlv_retry_after_ms("120", 0, &d), 0);
    SL_CHECK_INT(d, 120000);
    SL_CHECK_INT(dlv_retry_after_ms(" 0 ", 0, &d), 0);
    SL_CHECK_INT(d, 0);
    SL_CHECK_INT(dlv_retry_after_ms("99999999999999999999", 0, &d), 0);
    SL_CHECK_INT(d, DLV_RETRY_AFTER_MAX_S * 1000);
    SL_CHECK_INT(dlv_retry_after_ms("", 0, &d), -1);
    SL_CHECK_INT(dlv_retry_after_ms("-5", 0, &d), -1);
    SL_CHECK_INT(dlv_retry_after_ms("1.5", 0, &d), -1);
    SL_CHECK_INT(dlv_retry_after_ms("soon", 0, &d), -1);
    SL_CHECK_INT(dlv_retry_after_ms(NULL, 0, &d), -1);
}

SL_TEST(retry_after_http_dates)
{
    /* Sun, 06 Nov 1994 08:49:37 GMT = 784111777, the RFC 9110 example, in its three forms. */
    const long long at = 784111777LL * 1000;
    long long d = -1;
    SL_CHECK_INT(dlv_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", at - 2500, &d), 0);
    SL_CHECK_INT(d, 2500);
    SL_CHECK_INT(dlv_retry_after_ms("Sunday, 06-Nov-94 08:49:37 GMT", at - 1000, &d), 0);
    SL_CHECK_INT(d, 1000);
    SL_CHECK_INT(dlv_retry_after_ms("Sun Nov  6 08:49:37 1994", at - 1, &d), 0);
    SL_CHECK_INT(d, 1);
    /* A date in the past means now. */
    SL_CHECK_INT(dlv_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", at + 5000, &d), 0);
    SL_CHECK_INT(d, 0);
    SL_CHECK_INT(dlv_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT and more nonsense that is "
                                    "far longer than any date could be",
                                    at, &d),
                 -1);
    /* A year that curl reads but no millisecond count holds (found by tests/fuzz): the cap. */
    SL_CHECK_INT(dlv_retry_after_ms("Nov498999999:T4", at, &d), 0);
    SL_CHECK_INT(d, DLV_RETRY_AFTER_MAX_S * 1000);
}

SL_TEST(honours_retry_after_on_429_and_503_only)
{
    SL_CHECK(dlv_honours_retry_after(429));
    SL_CHECK(dlv_honours_retry_after(503));
    SL_CHECK(!dlv_honours_retry_after(500));
    SL_CHECK(!dlv_honours_retry_after(502));
    SL_CHECK(!dlv_honours_retry_after(0));
}

SL_TEST(give_up_after_max_attempts)
{
    long long d = -1;
    SL_CHECK_INT(dlv_retry_next(&policy, 1, -1, 0, 0, &d), DLV_NEXT_RETRY);
    SL_CHECK_INT(d, 1000);
    SL_CHECK_INT(dlv_retry_next(&policy, 4, -1, 0, 0, &d), DLV_NEXT_RETRY);
    SL_CHECK_INT(d, 8000);
    SL_CHECK_INT(dlv_retry_next(&policy, 5, -1, 0, 0, &d), DLV_NEXT_GIVE_UP_ATTEMPTS);
    struct dlv_retry_policy once = policy;
    once.max_attempts = 1;
    SL_CHECK_INT(dlv_retry_next(&once, 1, -1, 0, 0, &d), DLV_NEXT_GIVE_UP_ATTEMPTS);
}

SL_TEST(give_up_when_the_next_attempt_would_pass_max_age)
{
    long long d = -1;
    SL_CHECK_INT(dlv_retry_next(&policy, 2, -1, 58000, 0, &d), DLV_NEXT_RETRY); /* 58 + 2 */
    SL_CHECK_INT(dlv_retry_next(&policy, 2, -1, 58001, 0, &d), DLV_NEXT_GIVE_UP_AGE);
    /* Retry-After replaces the backoff, both ways. */
    SL_CHECK_INT(dlv_retry_next(&policy, 1, 30000, 0, 0, &d), DLV_NEXT_RETRY);
    SL_CHECK_INT(d, 30000);
    SL_CHECK_INT(dlv_retry_next(&policy, 4, 0, 0, 0, &d), DLV_NEXT_RETRY);
    SL_CHECK_INT(d, 0);
    SL_CHECK_INT(dlv_retry_next(&policy, 1, 61000, 0, 0, &d), DLV_NEXT_GIVE_UP_AGE);
}

SL_TEST_MAIN()
