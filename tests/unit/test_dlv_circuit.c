/* deliver's circuit.c: opens on the failure ratio over the window once min_requests attempts
 * were seen, stays open for the cooldown, lets one probe through, and closes or re-opens on
 * the probe's answer. The clock is the test's. */
#include "circuit.h"
#include "sl_test.h"

static const struct dlv_circuit_conf conf = {
    .failure_pct = 50, .window_ms = 10000, .min_requests = 4, .cooldown_ms = 3000};

static void record(struct dlv_circuit *c, bool failure, long long now)
{
    enum dlv_circuit_ticket t;
    SL_REQUIRE(dlv_circuit_allow(c, now, &t));
    dlv_circuit_record(c, t, failure, now);
}

SL_TEST(opens_only_with_enough_requests_and_failures)
{
    struct dlv_circuit c;
    dlv_circuit_init(&c, &conf);
    record(&c, true, 1000);
    record(&c, true, 1001);
    record(&c, true, 1002);
    SL_CHECK_INT(dlv_circuit_state(&c, 1003), DLV_CIRCUIT_CLOSED); /* 3 < min_requests */
    record(&c, false, 1003);
    SL_CHECK_INT(dlv_circuit_state(&c, 1004), DLV_CIRCUIT_OPEN); /* 3 of 4 failed */

    dlv_circuit_init(&c, &conf);
    for (int i = 0; i < 10; i++)
        record(&c, i % 3 == 2, 2000 + i); /* 3 of 10 failed, never 50 % past 4 */
    SL_CHECK_INT(dlv_circuit_state(&c, 2100), DLV_CIRCUIT_CLOSED);
}

SL_TEST(old_results_leave_the_window)
{
    struct dlv_circuit c;
    dlv_circuit_init(&c, &conf);
    record(&c, true, 1000);
    record(&c, true, 1100);
    record(&c, true, 1200);
    /* 12 s later those three are out of the 10 s window: one more failure is 1 of 1 < 4. */
    record(&c, true, 13000);
    SL_CHECK_INT(dlv_circuit_state(&c, 13001), DLV_CIRCUIT_CLOSED);
}

SL_TEST(cooldown_probe_and_recovery)
{
    struct dlv_circuit c;
    enum dlv_circuit_ticket t1, t2;
    dlv_circuit_init(&c, &conf);
    for (int i = 0; i < 4; i++)
        record(&c, true, 1000);
    SL_CHECK_INT(dlv_circuit_state(&c, 1000), DLV_CIRCUIT_OPEN);
    SL_CHECK(!dlv_circuit_allow(&c, 3999, &t1));
    SL_CHECK_INT(dlv_circuit_reopen_ms(&c), 4000);
    SL_CHECK_INT(dlv_circuit_state(&c, 4000), DLV_CIRCUIT_HALF_OPEN);

    /* One probe at a time; a failed probe opens again for a full cooldown. */
    SL_CHECK(dlv_circuit_allow(&c, 4000, &t1));
    SL_CHECK_INT(t1, DLV_TICKET_PROBE);
    SL_CHECK(!dlv_circuit_allow(&c, 4001, &t2));
    dlv_circuit_record(&c, t1, true, 4500);
    SL_CHECK_INT(dlv_circuit_state(&c, 4500), DLV_CIRCUIT_OPEN);
    SL_CHECK(!dlv_circuit_allow(&c, 7499, &t1));

    /* An abandoned probe frees the slot for another. */
    SL_CHECK(dlv_circuit_allow(&c, 7500, &t1));
    dlv_circuit_abandon(&c, t1);
    SL_CHECK(dlv_circuit_allow(&c, 7501, &t2));
    SL_CHECK_INT(t2, DLV_TICKET_PROBE);
    dlv_circuit_record(&c, t2, false, 7600);
    SL_CHECK_INT(dlv_circuit_state(&c, 7600), DLV_CIRCUIT_CLOSED);

    /* Closed with a clean window: the failures before do not count. */
    record(&c, true, 7700);
    record(&c, false, 7701);
    record(&c, false, 7702);
    record(&c, false, 7703);
    SL_CHECK_INT(dlv_circuit_state(&c, 7704), DLV_CIRCUIT_CLOSED);
}

SL_TEST(late_results_do_not_count)
{
    struct dlv_circuit c;
    enum dlv_circuit_ticket in_flight[3];
    dlv_circuit_init(&c, &conf);
    for (int i = 0; i < 3; i++)
        SL_REQUIRE(dlv_circuit_allow(&c, 1000, &in_flight[i]));
    for (int i = 0; i < 4; i++)
        record(&c, true, 1000);
    SL_CHECK_INT(dlv_circuit_state(&c, 1000), DLV_CIRCUIT_OPEN);
    /* Requests started before it opened answer now: neither close nor extend it. */
    dlv_circuit_record(&c, in_flight[0], false, 2000);
    dlv_circuit_record(&c, in_flight[1], true, 3000);
    SL_CHECK_INT(dlv_circuit_reopen_ms(&c), 4000);
    SL_CHECK_INT(dlv_circuit_state(&c, 4000), DLV_CIRCUIT_HALF_OPEN);
    /* ... nor decide the half-open state in place of the probe. */
    dlv_circuit_record(&c, in_flight[2], false, 4001);
    SL_CHECK_INT(dlv_circuit_state(&c, 4002), DLV_CIRCUIT_HALF_OPEN);
    SL_CHECK_STR(dlv_circuit_state_name(DLV_CIRCUIT_HALF_OPEN), "half_open");
}

SL_TEST_MAIN()
