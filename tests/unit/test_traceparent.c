/*
 * test_traceparent: ingress/traceparent.[ch] against the W3C Trace Context rules (the
 * specification's own example header, the invalid forms it lists, future versions), formatting
 * round trips, and new traces (valid, distinct, from several threads).
 */
#include <pthread.h>

#include "sl_test.h"
#include "traceparent.h"

#define EXAMPLE "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

SL_TEST(specification_example_round_trips)
{
    struct traceparent tp;
    char out[TRACEPARENT_LEN + 1];
    SL_REQUIRE(traceparent_parse(EXAMPLE, &tp) == 0);
    SL_CHECK_INT(tp.trace_id[0], 0x4b);
    SL_CHECK_INT(tp.trace_id[15], 0x36);
    SL_CHECK_INT(tp.parent_id[0], 0x00);
    SL_CHECK_INT(tp.parent_id[7], 0xb7);
    SL_CHECK_INT(tp.flags, 1);
    traceparent_format(&tp, out);
    SL_CHECK_STR(out, EXAMPLE);
}

SL_TEST(invalid_headers_are_refused)
{
    static const char *const bad[] = {
        "",
        "00",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",   /* short */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* 00 must be exact */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  /* uppercase */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* forbidden version */
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* not hex */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  /* zero parent id */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",  /* shifted fields */
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", /* no '-' after the fields */
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* leading space */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct traceparent tp;
        if (traceparent_parse(bad[i], &tp) == 0)
            sl_test_fail(__FILE__, __LINE__, "accepted '%s'", bad[i]);
    }
}

SL_TEST(future_versions_are_read_by_their_first_fields)
{
    struct traceparent tp;
    char out[TRACEPARENT_LEN + 1];
    SL_REQUIRE(traceparent_parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-"
                                 "ever",
                                 &tp) == 0);
    traceparent_format(&tp, out);
    SL_CHECK_STR(out, EXAMPLE); /* propagated as the version we speak */
    SL_CHECK(traceparent_parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &tp) ==
             0);
}

static void *make_some(void *arg)
{
    char(*out)[TRACEPARENT_LEN + 1] = arg;
    for (int i = 0; i < 100; i++) {
        struct traceparent tp;
        traceparent_new(&tp);
        traceparent_format(&tp, out[i]);
    }
    return NULL;
}

SL_TEST(new_traces_are_valid_and_distinct)
{
    static char ids[4][100][TRACEPARENT_LEN + 1];
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        SL_REQUIRE(pthread_create(&t[i], NULL, make_some, ids[i]) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    int dup = 0, invalid = 0;
    for (int i = 0; i < 400; i++) {
        const char *a = ids[i / 100][i % 100];
        struct traceparent tp;
        if (traceparent_parse(a, &tp) != 0 || strncmp(a, "00-", 3) != 0 || strcmp(a + 52, "-00"))
            invalid++;
        for (int j = 0; j < i; j++)
            dup += strncmp(a + 3, ids[j / 100][j % 100] + 3, 32) == 0;
    }
    SL_CHECK_INT(invalid, 0);
    SL_CHECK_INT(dup, 0);
}

SL_TEST_MAIN()
