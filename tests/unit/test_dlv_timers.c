/* deliver's timers.c: a min-heap; arm, re-arm, disarm and pop in deadline order. */
#include "sl_test.h"
#include "timers.h"

#include <limits.h>
#include <stdlib.h>

SL_TEST(pops_in_deadline_order)
{
    enum { N = 2000 };
    static struct dlv_timer t[N];
    dlv_timers_t *h = dlv_timers_new();
    SL_REQUIRE(h);
    SL_CHECK_INT(dlv_timers_next_due(h), LLONG_MAX);
    unsigned seed = 7;
    for (int i = 0; i < N; i++)
        SL_REQUIRE(dlv_timers_arm(h, &t[i], rand_r(&seed) % 100000) == 0);
    for (int i = 0; i < N; i += 3)
        dlv_timers_disarm(h, &t[i]);
    for (int i = 1; i < N; i += 3)
        SL_REQUIRE(dlv_timers_arm(h, &t[i], rand_r(&seed) % 100000) == 0); /* re-arm */
    SL_CHECK_INT(dlv_timers_count(h), N - (N + 2) / 3);
    SL_CHECK(dlv_timers_pop_due(h, -1) == NULL);
    long long last = -1;
    size_t popped = 0;
    struct dlv_timer *x;
    while ((x = dlv_timers_pop_due(h, 100000))) {
        SL_REQUIRE(x->due_ms >= last);
        SL_REQUIRE(!dlv_timer_armed(x));
        last = x->due_ms;
        popped++;
    }
    SL_CHECK_INT(popped, N - (N + 2) / 3);
    SL_CHECK_INT(dlv_timers_count(h), 0);
    dlv_timers_destroy(h);
}

SL_TEST(only_due_timers_pop)
{
    struct dlv_timer a = {0}, b = {0};
    dlv_timers_t *h = dlv_timers_new();
    SL_REQUIRE(h);
    SL_REQUIRE(dlv_timers_arm(h, &a, 50) == 0);
    SL_REQUIRE(dlv_timers_arm(h, &b, 10) == 0);
    SL_CHECK_INT(dlv_timers_next_due(h), 10);
    SL_CHECK(dlv_timers_pop_due(h, 9) == NULL);
    SL_CHECK(dlv_timers_pop_due(h, 10) == &b);
    SL_CHECK(dlv_timers_pop_due(h, 10) == NULL);
    SL_REQUIRE(dlv_timers_arm(h, &a, 5) == 0); /* moved earlier */
    SL_CHECK(dlv_timers_pop_due(h, 5) == &a);
    dlv_timers_disarm(h, &a); /* not armed: nothing happens */
    dlv_timers_destroy(h);
}

SL_TEST_MAIN()
