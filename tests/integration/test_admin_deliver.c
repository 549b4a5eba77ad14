/* sluice-admin's actions against a running sluice-deliver and destsim (deliver_harness), with
 * PostgreSQL for the dead letters and the record of actions:
 *   - pause: once deliver has seen the pause (its gauge sluice_deliver_paused is 1) an event
 *     produced for the destination is not sent; after resume it is delivered;
 *   - the overview: deliver's entry (ready, rates from two scrapes), the destination's
 *     attempts, success ratio, latency, circuit and pause, the database's counts;
 *   - a dead letter of deliver (a row as sluice-deadletter stores it) replayed through the API
 *     goes back to <prefix>deliver.<name> and is delivered to destsim. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin_client.h"
#include "deliver_harness.h"
#include "pg_testenv.h"
#include "sl_test.h"
#include "sl_testenv.h"

#define OPERATOR "operator-token-2"
#define WAIT_MS  90000
#define POLL_MS  100

static struct {
    bool up;
    dh_t *h;
    pid_t admin;
    int port;
    sl_pg_t *pg;
    char dsn[PG_TEST_DSN_MAX];
} run;

/* The harness's pipeline file, plus PostgreSQL and the admin section. */
static void start(void)
{
    char schema[64], listen[64], hash[65], body[1024];
    if (run.up)
        return;
    run.up = true;
    run.h = dh_new(&(struct dh_opts){.partitions = 1});
    pg_test_schema(schema, run.dsn);
    run.pg = pg_test_handle(run.dsn, 0);
    pg_test_migrate(run.pg);
    run.port = sl_testenv_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", run.port);
    admin_token_hash(OPERATOR, hash);
    dh_start(run.h, 0, NULL);
    /* Deliver has read the file: what it adds is sluice-admin's. */
    FILE *f = fopen(dh_config(run.h), "a");
    SL_REQUIRE(f);
    fprintf(f,
            "postgres:\n  dsn: \"%s\"\nadmin:\n  listen: \"%s\"\n  tokens:\n"
            "    - {name: alice, role: operator, sha256: \"%s\"}\n"
            "  stages: {deliver: \"127.0.0.1:%d\"}\n",
            run.dsn, listen, hash, dh_admin_port(run.h, 0));
    SL_REQUIRE(fclose(f) == 0);
    const char *args[] = {"--config", dh_config(run.h), NULL};
    run.admin = sl_testenv_spawn("sluice-admin", args, "admin-deliver");
    SL_REQUIRE(sl_testenv_wait_ready(run.port, 200, "ready", body, sizeof(body)) == 200);
}

/* The overview's entry named `name` in its array `what`. */
static const json_t *entry(const json_t *doc, const char *what, const char *name)
{
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(doc, what), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0)
            return e;
    }
    sl_test_fail(__FILE__, __LINE__, "no %s %s in the overview", what, name);
    return NULL;
}

static void stop(void)
{
    if (run.admin > 0 && sl_testenv_stop(run.admin, SIGTERM, 10000) != 0)
        fprintf(stderr, "sluice-admin did not stop cleanly\n");
    dh_destroy(run.h);
    sl_pg_destroy(run.pg);
}

/* Polls deliver's `series` until it is `want` (bounded). */
static void wait_metric(const char *series, double want)
{
    double v = -1;
    for (int waited = 0; waited < WAIT_MS; waited += POLL_MS) {
        if ((v = dh_metric(run.h, 0, series)) == want)
            return;
        usleep(POLL_MS * 1000);
    }
    sl_test_fail(__FILE__, __LINE__, "%s is %g, want %g", series, v, want);
}

SL_TEST(pause_holds_delivery_and_resume_releases_it)
{
    char path[256], series[256];
    start();
    snprintf(path, sizeof(path), "/api/v1/destinations/%s/pause", dh_dest(run.h));
    json_t *doc =
        admin_expect(run.port, "POST", path, OPERATOR, "{\"reason\": \"maintenance\"}", 200);
    json_t *paused = json_object_get(doc, "paused");
    SL_CHECK_STR(json_string_value(json_object_get(paused, "by")), "alice");
    SL_CHECK_STR(json_string_value(json_object_get(paused, "reason")), "maintenance");
    json_decref(doc);
    doc = admin_expect(run.port, "POST", "/api/v1/destinations/no-such-sink/pause", OPERATOR, NULL,
                       404);
    json_decref(doc);

    dh_produce(run.h, "ev-paused-1", "k1", "{\"n\":1}", NULL);
    dh_flush(run.h);
    /* Deliver has the event and has read the pause: nothing was sent. */
    snprintf(series, sizeof(series), "sluice_deliver_paused{destination=\"%s\"}", dh_dest(run.h));
    wait_metric(series, 1);
    json_t *counters = destsim_counters(dh_sim(run.h), NULL);
    SL_CHECK_INT(dh_count_2xx(counters), 0);
    json_decref(counters);
    /* The overview shows the pause. */
    doc = admin_expect(run.port, "GET", "/api/v1/overview", OPERATOR, NULL, 200);
    const json_t *dest = entry(doc, "destinations", dh_dest(run.h));
    SL_CHECK_STR(json_string_value(json_object_get(json_object_get(dest, "paused"), "by")),
                 "alice");
    json_decref(doc);

    snprintf(path, sizeof(path), "/api/v1/destinations/%s/resume", dh_dest(run.h));
    doc = admin_expect(run.port, "POST", path, OPERATOR, NULL, 200);
    SL_CHECK(json_is_null(json_object_get(doc, "paused")));
    json_decref(doc);
    dh_wait_2xx(run.h, 1);
    wait_metric(series, 0);
    /* The overview after the delivery: deliver ready with a rate (two scrapes), the
     * destination's attempt, ratio, latency, circuit; nothing paused. */
    json_decref(admin_expect(run.port, "GET", "/api/v1/overview", OPERATOR, NULL, 200));
    doc = admin_expect(run.port, "GET", "/api/v1/overview", OPERATOR, NULL, 200);
    const json_t *stage = entry(doc, "stages", "deliver");
    SL_CHECK(json_is_true(json_object_get(stage, "ready")));
    SL_CHECK(json_is_number(json_object_get(stage, "rate_in")));
    SL_CHECK(json_is_integer(json_object_get(stage, "lag")));
    dest = entry(doc, "destinations", dh_dest(run.h));
    SL_CHECK_INT(json_integer_value(json_object_get(json_object_get(dest, "attempts"), "2xx")), 1);
    SL_CHECK(json_real_value(json_object_get(dest, "success_ratio")) == 1.0);
    SL_CHECK(json_is_number(json_object_get(json_object_get(dest, "latency_ms"), "p95")));
    SL_CHECK_STR(json_string_value(json_object_get(dest, "circuit")), "closed");
    SL_CHECK(json_is_null(json_object_get(dest, "paused")));
    SL_CHECK_INT(json_integer_value(json_object_get(json_object_get(doc, "dead_letters"), "total")),
                 0);
    SL_CHECK_INT(json_object_size(json_object_get(doc, "unavailable")), 0);
    json_decref(doc);
    SL_CHECK_INT(pg_test_int(run.pg, "SELECT count(*) FROM admin_actions WHERE action IN "
                                     "('pause', 'resume') AND who = 'alice'"),
                 2); /* an unknown destination is refused before acting: no action */
}

SL_TEST(a_dead_letter_replayed_through_the_api_is_delivered)
{
    char sql[2048], path[128];
    start();
    /* The letter of an event that deliver gave up on, as sluice-deadletter stores it. */
    snprintf(sql, sizeof(sql),
             "INSERT INTO dead_letters (event_id, source, type, stage, reason, headers, payload,"
             " key, topic, partition, kafka_offset) VALUES ('ev-dead-1', 'test', 'test.event',"
             " 'deliver', 'HTTP 400', '{\"ce_specversion\": \"1.0\", \"ce_id\": \"ev-dead-1\","
             " \"ce_source\": \"test\", \"ce_type\": \"test.event\", \"content-type\":"
             " \"application/json\", \"ce_sluicedestination\": \"%s\"}', '{\"n\":2}', 'k2',"
             " 'x.dlq', 0, 1) RETURNING id",
             dh_dest(run.h));
    long long id = pg_test_int(run.pg, sql);
    snprintf(path, sizeof(path), "/api/v1/dead-letters/%lld/replay", id);
    json_t *doc = admin_expect(run.port, "POST", path, OPERATOR, "{}", 200);
    SL_CHECK_STR(json_string_value(json_object_get(doc, "event_id")), "ev-dead-1");
    SL_CHECK_STR(json_string_value(json_object_get(doc, "to_stage")), "deliver");
    json_decref(doc);
    dh_wait_2xx(run.h, 2); /* the first test's event and this one */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM dead_letter_replays WHERE dead_letter_id = %lld AND "
             "replayed_by = 'alice'",
             id);
    SL_CHECK_INT(pg_test_int(run.pg, sql), 1);
}

int main(void)
{
    int rc = sl_test_run_all();
    stop();
    pg_test_cleanup();
    return rc;
}
