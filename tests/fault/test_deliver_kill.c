/*
 * sluice-deliver killed with SIGKILL in the middle of a burst, three times, and restarted each
 * time with the same instance id (static membership: it takes its partitions back at once).
 * The destination is an idempotent API (destsim --idempotency, as Stripe's Idempotency-Key):
 * the first request of a key answered 2xx performs the business action (an "effect"), a later
 * request with that key gets the stored answer without a second one.
 *
 * Every event delivered, none twice: afterwards destsim saw exactly N keys (a re-send under
 * another key would be a second key, and so a second effect) and each had exactly one effect;
 * each event has a "delivered" outcome.
 *
 * Re-sent requests: an event whose 2xx was recorded (delivery ledger, outcome acknowledged)
 * before the kill is never sent again: the restarted process finds it in the ledger. What no
 * sender can avoid is the request in flight at the moment of the kill: the destination
 * answered it, but the process died before it could record that, so it is sent again after
 * the restart with the same Idempotency-Key, and destsim replays its stored answer. There are
 * at most as many per kill as requests can be in flight (the destination's concurrency); the
 * test checks that bound and prints the count. A clean stop (SIGTERM) re-sends nothing at
 * all: the last phase checks that exactly.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver_harness.h"
#include "sl_id.h"
#include "sl_test.h"

enum { N = 2000, KILLS = 3, CONCURRENCY = 16 };

struct progress {
    long want;
};

static bool reached(const json_t *c, void *arg)
{
    return dh_count_2xx(c) >= ((struct progress *)arg)->want;
}

struct tally {
    long keys;     /* distinct Idempotency-Keys seen */
    long once;     /* keys with exactly one effect */
    long more;     /* keys with more than one effect */
    long replayed; /* requests answered from the stored answer: re-sent after a 2xx */
};

static struct tally tally(const json_t *c)
{
    struct tally t = {0};
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(c, "keys"), k, v)
    {
        long effects = (long)json_integer_value(json_object_get(v, "effects"));
        t.keys++;
        t.once += effects == 1;
        t.more += effects > 1;
        t.replayed += (long)json_integer_value(json_object_get(v, "replayed"));
    }
    return t;
}

static struct tally count_keys(dh_t *h)
{
    struct sl_err err;
    json_t *c = destsim_counters(dh_sim(h), &err);
    SL_REQUIRE(c);
    struct tally t = tally(c);
    json_decref(c);
    return t;
}

static bool all_delivered(const json_t *c, void *arg)
{
    return tally(c).once >= *(long *)arg;
}

static void produce_burst(dh_t *h, const char *tag, long n)
{
    for (long i = 0; i < n; i++) {
        char id[64], uuid[SL_UUID_STR_LEN + 1];
        sl_uuid_v7(uuid);
        snprintf(id, sizeof(id), "%s-%s", tag, uuid);
        dh_produce(h, id, id, "{\"burst\":true}", NULL);
    }
    dh_flush(h);
}

SL_TEST(kill_9_during_a_burst_loses_nothing_and_resends_only_what_was_in_flight)
{
    const char *args[] = {"--idempotency", "--rule", "delay_ms=20 status=200", NULL};
    dh_t *h = dh_new(&(struct dh_opts){.destsim_args = args,
                                       .partitions = 4,
                                       .dest_yaml = "    ordering: none\n    concurrency: 16\n"
                                                    "    retry: { initial: 50ms, max: 1s }\n"});
    char instance[64];
    snprintf(instance, sizeof(instance), "kill-%s", dh_dest(h));
    dh_start(h, 0, instance);
    produce_burst(h, "kill", N);

    for (int k = 1; k <= KILLS; k++) {
        struct progress p = {(long)N * k / (KILLS + 1)};
        json_decref(dh_wait_sim(h, reached, &p, "progress before the kill"));
        SL_CHECK_INT(dh_stop(h, 0, SIGKILL), 128 + SIGKILL);
        dh_start(h, 0, instance);
    }
    long want = N;
    json_decref(dh_wait_sim(h, all_delivered, &want, "every event delivered"));
    struct tally t = count_keys(h);
    printf("%d events, %d kills: %ld keys, %ld with one effect, %ld with more; %ld requests "
           "re-sent after their 2xx (in flight at a kill; bound %d)\n",
           N, KILLS, t.keys, t.once, t.more, t.replayed, KILLS * CONCURRENCY);
    SL_CHECK_INT(t.keys, N);
    SL_CHECK_INT(t.once, N);
    SL_CHECK_INT(t.more, 0);
    SL_CHECK(t.replayed <= KILLS * CONCURRENCY);

    /* Every event has its outcome, "delivered" (some have two: those re-sent, and those
     * whose outcome was written again after a restart found them in the ledger). The outcomes
     * trail the 2xx answers a little: read until all are there. */
    enum { OUTS_MAX = 3 * N };
    static struct dh_rec outs[OUTS_MAX];
    size_t ids_seen = 0;
    for (int round = 0; round < 10 && ids_seen < N; round++) {
        size_t n = dh_read(h, "outcomes", outs, OUTS_MAX, 3000);
        json_t *ids = json_object();
        for (size_t i = 0; i < n; i++) {
            json_t *o = dh_json(&outs[i]);
            SL_CHECK_STR(json_string_value(json_object_get(o, "outcome")), "delivered");
            json_object_set_new(ids, json_string_value(json_object_get(o, "event_id")),
                                json_true());
            json_decref(o);
        }
        ids_seen = json_object_size(ids);
        json_decref(ids);
        dh_recs_free(outs, n);
    }
    SL_CHECK_INT(ids_seen, N);

    /* A clean stop in the middle of a second burst: not one event twice. */
    SL_REQUIRE(destsim_reset(dh_sim(h), &(struct sl_err){0}) == 0);
    produce_burst(h, "term", N);
    struct progress p = {N / 2};
    json_decref(dh_wait_sim(h, reached, &p, "half of the second burst"));
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_start(h, 0, instance);
    json_decref(dh_wait_sim(h, all_delivered, &want, "the second burst delivered"));
    t = count_keys(h);
    printf("second burst, SIGTERM and restart: %ld keys, %ld with one effect, %ld re-sent\n",
           t.keys, t.once, t.replayed);
    SL_CHECK_INT(t.keys, N);
    SL_CHECK_INT(t.once, N);
    SL_CHECK_INT(t.replayed, 0);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
}

/* A consumer that Kafka fences for good (a second process joins with the same static instance
 * id, as the broker does to a member after its restart when a commit races the re-join) stops
 * sluice-deliver with the reason, instead of leaving the destination's partitions stalled
 * behind a green /healthz. Found by tests/fault/matrix.sh (kafka-kill9). */
SL_TEST(a_fenced_consumer_stops_deliver)
{
    dh_t *h = dh_new(&(struct dh_opts){0});
    char instance[SL_UUID_STR_LEN + 1];
    sl_uuid_v7(instance);
    dh_start(h, 0, instance);
    dh_start(h, 1, instance);
    /* The first one is fenced: it exits non-zero (a supervisor restarts it) within the bound. */
    int status = dh_stop(h, 0, 0);
    SL_CHECK(status != -1 && status != 0);
    SL_CHECK_INT(dh_stop(h, 1, SIGTERM), 0);
    dh_destroy(h);
}

SL_TEST_MAIN()
