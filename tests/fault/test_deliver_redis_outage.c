/*
 * Redis down under sluice-deliver, on a private redis-server (redis_private) that the test
 * kills and restarts. Redis holds the delivery ledger, so deliver must fail closed (deliver.h):
 * while Redis does not answer nothing is sent, /readyz answers 503 and says why, and the events
 * wait in memory; once Redis is back every event is delivered exactly once and the offsets
 * are committed.
 *
 * Twice: first Redis dies while deliver is idle, so that every event produced afterwards needs
 * a ledger check that cannot be made: destsim must see not one request until Redis is back.
 * Then Redis dies in the middle of a burst: requests already in flight (checked before the
 * crash) are answered, but their 2xx cannot be written to the ledger yet; those events must
 * not be sent again, only marked once Redis answers. The destination is an idempotent API
 * (destsim --idempotency): "exactly once" is one effect per event and not one request re-sent.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "deliver_harness.h"
#include "redis_private.h"
#include "sink_harness.h"
#include "sl_id.h"
#include "sl_test.h"

enum { PARTITIONS = 3, N_UP = 20, N_IDLE = 40, N_BURST = 400 };

static void produce_n(dh_t *h, const char *tag, int n)
{
    for (int i = 0; i < n; i++) {
        char id[64], uuid[SL_UUID_STR_LEN + 1];
        sl_uuid_v7(uuid);
        snprintf(id, sizeof(id), "%s-%s", tag, uuid);
        dh_produce(h, id, id, "{}", NULL); /* keyed by id: spread over every partition */
    }
    dh_flush(h);
}

static double metric(dh_t *h, const char *family, bool per_destination)
{
    char series[256];
    if (per_destination)
        snprintf(series, sizeof(series), "%s{destination=\"%s\"}", family, dh_dest(h));
    else
        snprintf(series, sizeof(series), "%s", family);
    return dh_metric(h, 0, series);
}

struct tally {
    long keys, once, replayed;
};

static struct tally tally(const json_t *c)
{
    struct tally t = {0};
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(c, "keys"), k, v)
    {
        t.keys++;
        t.once += json_integer_value(json_object_get(v, "effects")) == 1;
        t.replayed += (long)json_integer_value(json_object_get(v, "replayed"));
    }
    return t;
}

static bool delivered(const json_t *c, void *arg)
{
    return tally(c).once >= *(long *)arg;
}

static bool answered(const json_t *c, void *arg)
{
    return dh_count_2xx(c) >= *(long *)arg;
}

/* /readyz answers 503 naming Redis. */
static bool not_ready_for_redis(const json_t *c, void *arg)
{
    char body[1024];
    (void)c;
    return dh_readyz(arg, 0, body, sizeof(body)) == 503 && strstr(body, "redis");
}

static bool ready(const json_t *c, void *arg)
{
    char body[1024];
    (void)c;
    return dh_readyz(arg, 0, body, sizeof(body)) == 200;
}

struct waiting {
    dh_t *h;
    double held, errors; /* events held in memory, failed Redis calls: at least */
};

/* Every event of the outage is in memory and deliver kept trying Redis, and failing, since. */
static bool events_wait(const json_t *c, void *arg)
{
    struct waiting *w = arg;
    (void)c;
    return metric(w->h, "sluice_deliver_events_held", true) >= w->held &&
           metric(w->h, "sluice_deliver_redis_errors_total", false) >= w->errors;
}

struct committed {
    dh_t *h;
    long long want;
};

static bool all_committed(const json_t *c, void *arg)
{
    struct committed *w = arg;
    char name[128], topic[256];
    (void)c;
    snprintf(name, sizeof(name), "deliver.%s", dh_dest(w->h));
    dh_topic(w->h, name, topic, sizeof(topic));
    /* The destination's group is named after the pipeline, as its topic is. */
    return sink_committed(topic, topic, PARTITIONS) >= w->want;
}

SL_TEST(redis_outage_fails_closed_and_delivers_every_event_once)
{
    rp_t *redis = rp_start("dlv-redis");
    const char *args[] = {"--idempotency", "--rule", "delay_ms=20 status=200", NULL};
    dh_t *h = dh_new(&(struct dh_opts){.destsim_args = args,
                                       .partitions = PARTITIONS,
                                       .redis_url = rp_url(redis),
                                       .dest_yaml = "    ordering: none\n    concurrency: 4\n"});
    dh_start(h, 0, NULL);
    struct sl_err err;
    char body[1024];

    /* Redis up: delivered. */
    produce_n(h, "up", N_UP);
    long want = N_UP;
    json_decref(dh_wait_sim(h, delivered, &want, "the first events delivered"));

    /* Redis down while idle: the events are read, nothing is sent, /readyz says why. Three
     * failed calls after the events are all held: deliver kept trying and kept failing. */
    rp_kill(redis);
    produce_n(h, "idle", N_IDLE);
    json_decref(dh_wait_sim(h, not_ready_for_redis, h, "/readyz 503 naming redis"));
    double errors = metric(h, "sluice_deliver_redis_errors_total", false);
    struct waiting w = {h, N_IDLE, errors + 3};
    json_decref(dh_wait_sim(h, events_wait, &w, "the events waiting while Redis is down"));
    SL_CHECK_INT(dh_readyz(h, 0, body, sizeof(body)), 503);
    printf("Redis down: /readyz %s\n", body);
    json_t *c = destsim_counters(dh_sim(h), &err);
    SL_REQUIRE(c);
    SL_CHECK_INT(json_integer_value(json_object_get(c, "requests_total")), N_UP);
    json_decref(c);

    /* Redis back: all of them delivered, ready again. */
    rp_restart(redis);
    want = N_UP + N_IDLE;
    json_decref(dh_wait_sim(h, delivered, &want, "the held events delivered after Redis is back"));
    json_decref(dh_wait_sim(h, ready, h, "/readyz 200 again"));

    /* Redis dies in the middle of a burst, and comes back. */
    produce_n(h, "burst", N_BURST);
    want = N_UP + N_IDLE + N_BURST / 4;
    json_decref(dh_wait_sim(h, answered, &want, "a quarter of the burst answered"));
    rp_kill(redis);
    c = dh_wait_sim(h, not_ready_for_redis, h, "/readyz 503 naming redis (burst)");
    printf("Redis killed in the burst: %lld of %d answered when deliver noticed\n",
           (long long)dh_count_2xx(c) - N_UP - N_IDLE, N_BURST);
    json_decref(c);
    rp_restart(redis);
    want = N_UP + N_IDLE + N_BURST;
    json_decref(dh_wait_sim(h, delivered, &want, "the burst delivered after Redis is back"));

    c = destsim_counters(dh_sim(h), &err);
    SL_REQUIRE(c);
    struct tally t = tally(c);
    json_decref(c);
    printf("%ld keys, %ld with exactly one effect, %ld requests re-sent\n", t.keys, t.once,
           t.replayed);
    SL_CHECK_INT(t.keys, want);
    SL_CHECK_INT(t.once, want);
    SL_CHECK_INT(t.replayed, 0);

    /* Every offset committed: the ledger marks that waited for Redis were written. */
    struct committed cw = {h, want};
    json_decref(dh_wait_sim(h, all_committed, &cw, "every offset committed"));
    json_decref(dh_wait_sim(h, ready, h, "/readyz 200 after the second outage"));
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
    rp_destroy(redis);
}

SL_TEST_MAIN()
