/* The shared stage loop, through a real process (sluice-passthrough) against the real broker:
 * every verdict ends where it should (output, dead letter with stage, reason, errors and the
 * original headers; a record that is not a CloudEvent is dead-lettered too), one audit record
 * per event, and a stage that asks to retry holds the event: nothing is forwarded, lost or
 * reordered, /readyz says why, and everything flows once the dependency is back. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sl_cloudevent.h"
#include "sl_test.h"
#include "sl_testenv.h"

struct run {
    struct sl_testenv_topics t;
    char config[4096];
    char group[128], admin[64];
    int admin_port;
};

static void setup(struct run *r, const char *name)
{
    sl_testenv_stage_topics(&r->t, name, "ingress", "validated");
    sl_testenv_config(r->t.prefix, NULL, r->config, sizeof(r->config));
    sl_testenv_unique("group", r->group, sizeof(r->group));
    r->admin_port = sl_testenv_free_port();
    snprintf(r->admin, sizeof(r->admin), "127.0.0.1:%d", r->admin_port);
}

static pid_t start(struct run *r, const char *log)
{
    const char *args[] = {"--config",       r->config, "--group", r->group,
                          "--admin-listen", r->admin,  NULL};
    return sl_testenv_spawn("sluice-passthrough", args, log);
}

SL_TEST(verdicts_dead_letters_and_audit)
{
    struct run r;
    setup(&r, "loop");
    sl_testenv_produce_event(r.t.in, "ev-pass", "k1", "{\"hello\":1}");
    sl_testenv_produce_event(r.t.in, "ev-reject", "k2", "{\"reject\":true}");
    /* A record without CloudEvents headers. */
    struct sl_kafka_settings s;
    struct sl_err err;
    sl_testenv_kafka(&s);
    sl_producer_t *p = sl_producer_new(&s, "raw", NULL, &err);
    SL_REQUIRE(p && sl_producer_send(p, r.t.in, "k3", 2, "raw", 3, NULL, NULL, &err) == 0);
    SL_REQUIRE(sl_producer_flush(p, 30000, &err) == 0);
    sl_producer_destroy(p);

    pid_t pid = start(&r, "loop-verdicts");
    rd_kafka_message_t *msgs[8];
    rd_kafka_t *c;
    char buf[4096];

    size_t n = sl_testenv_read_all(r.t.out, 3, msgs, sizeof(msgs) / sizeof(msgs[0]), 1, &c);
    SL_CHECK_INT(n, 1);
    if (n >= 1) {
        SL_CHECK_STR(sl_testenv_header(msgs[0], "ce_id", buf, sizeof(buf)), "ev-pass");
        SL_CHECK(msgs[0]->len == 11 && memcmp(msgs[0]->payload, "{\"hello\":1}", 11) == 0);
        SL_CHECK(msgs[0]->key_len == 2 && memcmp(msgs[0]->key, "k1", 2) == 0);
    }
    sl_testenv_free_records(msgs, n, c);

    n = sl_testenv_read_all(r.t.dlq, 1, msgs, sizeof(msgs) / sizeof(msgs[0]), 2, &c);
    SL_CHECK_INT(n, 2);
    for (size_t i = 0; i < n; i++) {
        SL_CHECK_STR(sl_testenv_header(msgs[i], "ce_sluicestage", buf, sizeof(buf)), "passthrough");
        if (sl_testenv_header(msgs[i], "ce_id", buf, sizeof(buf))) {
            SL_CHECK_STR(buf, "ev-reject");
            SL_CHECK_STR(sl_testenv_header(msgs[i], "ce_type", buf, sizeof(buf)), "test.event");
            SL_CHECK_STR(sl_testenv_header(msgs[i], "ce_sluicereason", buf, sizeof(buf)),
                         "rejected on request");
            SL_CHECK_STR(sl_testenv_header(msgs[i], "ce_sluiceerrors", buf, sizeof(buf)),
                         "[\"/reject: the payload asked for it\",\"/: second error\"]");
            SL_CHECK(msgs[i]->len == 15 && memcmp(msgs[i]->payload, "{\"reject\":true}", 15) == 0);
        } else {
            SL_CHECK_CONTAINS(sl_testenv_header(msgs[i], "ce_sluicereason", buf, sizeof(buf)),
                              "not a CloudEvent: ");
            SL_CHECK(msgs[i]->len == 3 && memcmp(msgs[i]->payload, "raw", 3) == 0);
        }
    }
    sl_testenv_free_records(msgs, n, c);

    n = sl_testenv_read_all(r.t.audit, 3, msgs, sizeof(msgs) / sizeof(msgs[0]), 3, &c);
    SL_CHECK_INT(n, 3);
    int passed = 0, dead = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_loadb(msgs[i]->payload, msgs[i]->len, 0, NULL);
        SL_CHECK_STR(json_string_value(json_object_get(a, "stage")), "passthrough");
        const char *outcome = json_string_value(json_object_get(a, "outcome"));
        passed += outcome && strcmp(outcome, "passed") == 0;
        dead += outcome && strcmp(outcome, "dead_lettered") == 0;
        SL_CHECK_STR(sl_testenv_header(msgs[i], "ce_type", buf, sizeof(buf)), "sluice.audit");
        json_decref(a);
    }
    SL_CHECK_INT(passed, 1);
    SL_CHECK_INT(dead, 2);
    sl_testenv_free_records(msgs, n, c);

    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
}

SL_TEST(retry_holds_events_in_order_until_the_dependency_is_back)
{
    struct run r;
    setup(&r, "retry");
    char down[4200], body[8192], id[32];
    snprintf(down, sizeof(down), "%s.down", r.config);
    FILE *f = fopen(down, "w");
    SL_REQUIRE(f);
    fclose(f);
    setenv("SLUICE_PASSTHROUGH_DOWN_FILE", down, 1);
    enum { N = 20 };
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "ev-%02d", i);
        sl_testenv_produce_event(r.t.in, id, "same-key", id);
    }
    pid_t pid = start(&r, "loop-retry");
    unsetenv("SLUICE_PASSTHROUGH_DOWN_FILE");

    long status = -1;
    for (int i = 0; i < 600 && status != 503; i++) {
        status = sl_testenv_http_get(r.admin_port, "/readyz", body, sizeof(body));
        if (status != 503 || !strstr(body, "waiting on a dependency"))
            status = -1, usleep(100000);
    }
    SL_CHECK_INT(status, 503);
    SL_CHECK_CONTAINS(body, "dependency down");
    SL_CHECK_INT(sl_testenv_http_get(r.admin_port, "/metrics", body, sizeof(body)), 200);
    SL_CHECK_CONTAINS(body, "sluice_stage_retrying{stage=\"passthrough\"} 1\n");

    rd_kafka_message_t *msgs[N + 2];
    rd_kafka_t *c = sl_testenv_consumer(r.t.out, 3);
    SL_CHECK_INT(sl_testenv_consume(c, msgs, 1, 3000), 0); /* nothing passes while down */

    unlink(down);
    size_t n = sl_testenv_consume(c, msgs, N, 60000);
    n += sl_testenv_consume(c, msgs + n, 1, 2000);
    SL_CHECK_INT(n, N);
    for (size_t i = 0; i < n && i < N; i++) {
        char expect[32], got[64];
        snprintf(expect, sizeof(expect), "ev-%02zu", i);
        SL_CHECK_STR(sl_testenv_header(msgs[i], "ce_id", got, sizeof(got)), expect);
    }
    sl_testenv_free_records(msgs, n, c);
    SL_CHECK_INT(sl_testenv_http_get(r.admin_port, "/readyz", body, sizeof(body)), 200);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, c;
    if (!f)
        return 0;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

SL_TEST(sink_commits_only_after_its_flush_succeeds)
{
    struct run r;
    setup(&r, "sink");
    char down[4200], sink[4200], body[8192], id[32];
    snprintf(down, sizeof(down), "%s.down", r.config);
    snprintf(sink, sizeof(sink), "%s.sink", r.config);
    FILE *f = fopen(down, "w");
    SL_REQUIRE(f);
    fclose(f);
    enum { N = 30 };
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "sink-%02d", i);
        sl_testenv_produce_event(r.t.in, id, id, id);
    }
    setenv("SLUICE_PASSTHROUGH_DOWN_FILE", down, 1);
    setenv("SLUICE_PASSTHROUGH_SINK_FILE", sink, 1);
    pid_t pid = start(&r, "loop-sink");

    long status = -1;
    for (int i = 0; i < 600 && status != 503; i++) {
        status = sl_testenv_http_get(r.admin_port, "/readyz", body, sizeof(body));
        if (status != 503 || !strstr(body, "sink down"))
            status = -1, usleep(100000);
    }
    SL_CHECK_INT(status, 503);
    SL_CHECK_INT(count_lines(sink), 0);

    unlink(down);
    for (int i = 0; i < 600 && count_lines(sink) < N; i++)
        usleep(100000);
    SL_CHECK_INT(count_lines(sink), N);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);

    /* The offsets were committed after the flush: a new process of the group reads nothing
     * again, so the file keeps one line per event. */
    pid = start(&r, "loop-sink");
    for (int i = 0;
         i < 600 && sl_testenv_http_get(r.admin_port, "/readyz", body, sizeof(body)) != 200; i++)
        usleep(100000);
    rd_kafka_t *c = sl_testenv_consumer(r.t.in, 3); /* a pause that waits on Kafka, not time */
    rd_kafka_message_t *msgs[N + 1];
    size_t n = sl_testenv_consume(c, msgs, N, 30000);
    for (size_t i = 0; i < n; i++)
        rd_kafka_message_destroy(msgs[i]);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
    SL_CHECK_INT(count_lines(sink), N);
    unsetenv("SLUICE_PASSTHROUGH_DOWN_FILE");
    unsetenv("SLUICE_PASSTHROUGH_SINK_FILE");
    unlink(sink);
}

SL_TEST_MAIN()
