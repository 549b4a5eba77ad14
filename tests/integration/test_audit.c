/* sluice-audit against the test broker and PostgreSQL: the audit records of a real stage and
 * of every other shape (route's decision, delivery attempts) end up once in `audit` with their
 * columns, event_status follows the rules of workers/audit/audit.h, a malformed record is
 * dead-lettered with the reason instead of stopping the trail, and the same records written
 * again (a second consumer group over the same topic and schema: what a crash between the
 * Postgres commit and the offset commit amounts to) change nothing. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "sink_harness.h"
#include "sl_id.h"
#include "sl_test.h"
#include "sl_testenv.h"

#define LOOP_YAML "audit:\n  loop: { batch_max_wait: 50ms, retry_initial: 50ms, retry_max: 1s }\n"

static void produce_audit_nowait(const struct sink_run *r, const char *event_id, const char *stage,
                                 const char *outcome, const char *at, const char *members);

static void produce_audit(const struct sink_run *r, const char *event_id, const char *stage,
                          const char *outcome, const char *at, const char *members)
{
    produce_audit_nowait(r, event_id, stage, outcome, at, members);
    sink_produce_wait();
}

/* An audit record as the stages write it: the JSON, keyed by the event id, with the
 * CloudEvents headers of a sluice.audit event. `members` are the JSON members after the
 * common ones (starting with a comma, or ""). Not waiting for the broker's ack
 * (sink_produce_wait() waits). */
static void produce_audit_nowait(const struct sink_run *r, const char *event_id, const char *stage,
                                 const char *outcome, const char *at, const char *members)
{
    char json[2048], id[SL_UUID_STR_LEN + 1], source[64];
    snprintf(json, sizeof(json),
             "{\"event_id\":\"%s\",\"stage\":\"%s\",\"outcome\":\"%s\",\"source\":\"stripe\","
             "\"type\":\"charge.succeeded\",\"topic\":\"sluice.in\",\"partition\":1,\"offset\":7,"
             "\"at\":\"%s\",\"seconds\":0.001%s}",
             event_id, stage, outcome, at, members);
    sl_uuid_v7(id);
    snprintf(source, sizeof(source), "sluice/%s", stage);
    const char *const headers[] = {"ce_specversion",
                                   "1.0",
                                   "ce_id",
                                   id,
                                   "ce_source",
                                   source,
                                   "ce_type",
                                   "sluice.audit",
                                   "content-type",
                                   "application/json",
                                   NULL};
    sink_produce_nowait(r->topic_audit, event_id, strlen(event_id), json, strlen(json), headers);
}

static void produce_raw_audit(const struct sink_run *r, const char *json)
{
    char id[SL_UUID_STR_LEN + 1];
    sl_uuid_v7(id);
    const char *const headers[] = {"ce_specversion", "1.0",     "ce_id",        id,  "ce_source",
                                   "sluice/test",    "ce_type", "sluice.audit", NULL};
    sink_produce(r->topic_audit, "bad", 3, json, strlen(json), headers);
}

/* `column` of the audit row of `event_id` (which must have one row). */
static const char *audit_value(sl_pg_t *pg, const char *column, const char *event_id, char *buf,
                               size_t size)
{
    char sql[1024];
    snprintf(sql, sizeof(sql), "SELECT %s FROM audit WHERE event_id = '%s'", column, event_id);
    return pg_test_str(pg, sql, buf, size);
}

SL_TEST(audit_records_of_every_shape_are_stored_once_with_event_status)
{
    struct sink_run r;
    char buf[2048], body[4096];
    sink_setup(&r, "audit", NULL, LOOP_YAML);

    /* 1. A real stage's records: sluice-passthrough passes two events and dead-letters one. */
    sl_testenv_produce_event(r.topic_ingress, "pt-pass-1", "k1", "{\"n\":1}");
    sl_testenv_produce_event(r.topic_ingress, "pt-pass-2", "k2", "{\"n\":2}");
    sl_testenv_produce_event(r.topic_ingress, "pt-reject", "k3", "{\"reject\":true}");
    pid_t stage = sink_start(&r, "sluice-passthrough", "audit-passthrough");

    /* 2. Route's decision and delivery attempts for ev-r: crm retried then delivered,
     * warehouse dead-lettered. */
    produce_audit(&r, "ev-r", "route", "passed", "2026-01-10T10:00:00.000Z",
                  ",\"outputs\":2,\"detail\":{\"destinations\":[\"crm\",\"warehouse\"],"
                  "\"routes\":[\"payments\"]}");
    produce_audit(&r, "ev-r", "deliver", "retry", "2026-01-10T10:00:01.000Z",
                  ",\"reason\":\"HTTP 503\",\"seconds\":0.2,\"detail\":{\"destination\":\"crm\","
                  "\"attempt\":1,\"status\":503}");
    produce_audit(&r, "ev-r", "deliver", "delivered", "2026-01-10T10:00:03.000Z",
                  ",\"seconds\":0.05,\"detail\":{\"destination\":\"crm\",\"attempt\":2,"
                  "\"status\":200}");
    produce_audit(&r, "ev-r", "deliver", "dead_lettered", "2026-01-10T10:00:04.000Z",
                  ",\"reason\":\"HTTP 400\",\"detail\":{\"destination\":\"warehouse\","
                  "\"attempt\":1,\"status\":400}");
    /* A late retry record of crm (written before the delivery, read after): stays delivered. */
    produce_audit(&r, "ev-r", "deliver", "retry", "2026-01-10T10:00:02.000Z",
                  ",\"detail\":{\"destination\":\"crm\",\"attempt\":1,\"status\":503}");
    /* ev-x: dead-lettered at validate on the 9th, replayed and routed on the 11th. */
    produce_audit(&r, "ev-x", "validate", "dead_lettered", "2026-01-09T23:59:59.000Z",
                  ",\"reason\":\"schema validation failed\",\"errors\":[\"/a: required\"]");
    produce_audit(&r, "ev-x", "route", "passed", "2026-01-11T08:00:00.000Z",
                  ",\"detail\":{\"destinations\":[\"crm\"],\"routes\":[\"payments\"]}");
    /* ev-f: filtered at route. */
    produce_audit(&r, "ev-f", "route", "filtered", "2026-01-10T12:00:00.000Z",
                  ",\"reason\":\"no route matched\"");
    /* 3. Two malformed records. */
    produce_raw_audit(&r, "this is not json");
    produce_raw_audit(&r, "{\"outcome\":\"passed\",\"topic\":\"t\",\"partition\":0,\"offset\":1}");

    rd_kafka_message_t *msgs[16];
    rd_kafka_t *c;
    size_t n = sink_read(r.topic_audit, 3, msgs, 13, &c); /* 3 from the stage + 10 */
    SL_CHECK_INT(n, 13);
    sink_free_records(msgs, n, c);
    SL_CHECK_INT(sl_testenv_stop(stage, SIGTERM, 60000), 0);

    sink_new_group(&r);
    pid_t pid = sink_start(&r, "sluice-audit", "audit-shapes");
    SL_CHECK_INT(sink_wait_int(r.pg, "SELECT count(*) FROM audit", 11, 60000), 11);
    SL_CHECK_INT(pg_test_int(r.pg, "SELECT count(DISTINCT (audit_topic, audit_partition, "
                                   "audit_offset)) FROM audit"),
                 11);

    /* The real stage's rows. */
    SL_CHECK_INT(pg_test_int(r.pg, "SELECT count(*) FROM audit WHERE stage = 'passthrough' AND "
                                   "outcome = 'passed' AND outputs = 1"),
                 2);
    SL_CHECK_STR(pg_test_str(r.pg,
                             "SELECT reason || ' ' || errors::text FROM audit WHERE event_id = "
                             "'pt-reject'",
                             buf, sizeof(buf)),
                 "rejected on request [\"/reject: the payload asked for it\", \"/: second "
                 "error\"]");
    SL_CHECK_STR(audit_value(r.pg, "topic", "pt-reject", buf, sizeof(buf)), r.topic_ingress);
    SL_CHECK_STR(audit_value(r.pg, "audit_topic", "pt-pass-1", buf, sizeof(buf)), r.topic_audit);
    /* The delivery attempt's columns. */
    SL_CHECK_STR(pg_test_str(r.pg,
                             "SELECT concat_ws(',', destination, attempt, status, latency_ms, "
                             "reason, at) FROM audit WHERE event_id = 'ev-r' AND outcome = 'retry' "
                             "AND at = '2026-01-10T10:00:01Z'",
                             buf, sizeof(buf)),
                 "crm,1,503,200,HTTP 503,2026-01-10 10:00:01+00");
    SL_CHECK_INT(pg_test_int(r.pg, "SELECT count(*) FROM audit WHERE event_id = 'ev-r' AND "
                                   "stage = 'route' AND destination IS NULL AND detail -> "
                                   "'destinations' = '[\"crm\", \"warehouse\"]'"),
                 1);
    /* The days' partitions were made by the batch. */
    SL_CHECK_INT(pg_test_int(r.pg, "SELECT count(*) FROM pg_inherits WHERE inhparent = "
                                   "'audit'::regclass AND inhrelid::regclass::text IN "
                                   "('audit_p20260109', 'audit_p20260110', 'audit_p20260111')"),
                 3);

    /* event_status. */
    SL_CHECK_STR(pg_test_str(r.pg,
                             "SELECT string_agg(concat_ws(':', destination, state, route, "
                             "terminal_at), ' ' ORDER BY destination) FROM event_status WHERE "
                             "event_id = 'ev-r'",
                             buf, sizeof(buf)),
                 "crm:delivered:payments:2026-01-10 10:00:03+00 "
                 "warehouse:dead_lettered:payments:2026-01-10 10:00:04+00");
    SL_CHECK_STR(pg_test_str(r.pg,
                             "SELECT string_agg(concat_ws(':', destination, state, accepted_at), "
                             "' ') FROM event_status WHERE event_id = 'ev-x'",
                             buf, sizeof(buf)),
                 "crm:pending:2026-01-09 23:59:59+00");
    SL_CHECK_STR(pg_test_str(r.pg,
                             "SELECT concat_ws(':', destination, state, source) FROM event_status "
                             "WHERE event_id = 'ev-f'",
                             buf, sizeof(buf)),
                 ":filtered:stripe");
    SL_CHECK_STR(pg_test_str(r.pg,
                             "SELECT concat_ws(':', destination, state, source) FROM event_status "
                             "WHERE event_id = 'pt-reject'",
                             buf, sizeof(buf)),
                 ":dead_lettered:test");
    SL_CHECK_INT(pg_test_int(r.pg, "SELECT count(*) FROM event_status WHERE event_id LIKE "
                                   "'pt-pass-%'"),
                 0);

    /* The malformed records went to the DLQ with the reason (after the passthrough's one). */
    n = sink_read(r.topic_dlq, 1, msgs, 3, &c);
    SL_CHECK_INT(n, 3);
    int not_json = 0, no_stage = 0;
    for (size_t i = 0; i < n; i++) {
        if (!sink_header(msgs[i], "ce_sluicestage", buf, sizeof(buf)) || strcmp(buf, "audit"))
            continue;
        sink_header(msgs[i], "ce_sluicereason", buf, sizeof(buf));
        not_json += strstr(buf, "audit record is not JSON") != NULL;
        no_stage += strstr(buf, "\"stage\" is missing") != NULL;
    }
    SL_CHECK_INT(not_json, 1);
    SL_CHECK_INT(no_stage, 1);
    sink_free_records(msgs, n, c);

    SL_CHECK_INT(sink_wait_ready(r.admin_port, 200, NULL, body, sizeof(body), 10000), 200);
    SL_CHECK(sink_wait_metric(r.admin_port, "sluice_audit_rows_total{result=\"inserted\"}", 11,
                              10000) == 11);
    SL_CHECK(sink_metric(r.admin_port, "sluice_audit_batch_rows_count") >= 1);
    /* New positions: straight into the table. */
    SL_CHECK(sink_metric(r.admin_port, "sluice_audit_batches_total{path=\"copy\"}") >= 1);
    SL_CHECK(sink_metric(r.admin_port, "sluice_audit_batches_total{path=\"staged\"}") == 0);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
    /* The offsets were committed after the rows, up to the end of the topic. */
    SL_CHECK_INT(sink_committed(r.group, r.topic_audit, 3), sink_end_offsets(r.topic_audit, 3));
    sink_teardown(&r);
}

/* A fingerprint of the audit trail and event_status, to compare before and after. */
static const char fingerprint_sql[] =
    "SELECT md5(coalesce((SELECT string_agg(concat_ws('|', audit_topic, audit_partition, "
    "audit_offset, at, event_id, stage, outcome, destination, attempt, status), ',' ORDER BY "
    "audit_partition, audit_offset) FROM audit), '') || coalesce((SELECT "
    "string_agg(concat_ws('|', event_id, destination, state, accepted_at, terminal_at), ',' "
    "ORDER BY event_id, destination) FROM event_status), ''))";

SL_TEST(the_same_records_written_again_stay_once)
{
    struct sink_run r;
    char before[64], after[64];
    sink_setup(&r, "audit-twice", NULL, LOOP_YAML);
    enum { EVENTS = 300 };
    for (int i = 0; i < EVENTS; i++) {
        char id[32], at[40];
        snprintf(id, sizeof(id), "tw-%03d", i);
        /* Across a day boundary, so the batches need two partitions. */
        snprintf(at, sizeof(at), "2026-02-0%dT23:59:%02d.%03dZ", 1 + i % 2, i % 60, i);
        produce_audit(&r, id, "route", "passed", at, ",\"detail\":{\"destinations\":[\"crm\"]}");
        produce_audit(&r, id, "deliver", i % 3 ? "delivered" : "dead_lettered", at,
                      ",\"detail\":{\"destination\":\"crm\",\"attempt\":1,\"status\":200}");
    }
    pid_t pid = sink_start(&r, "sluice-audit", "audit-twice-1");
    SL_CHECK_INT(sink_wait_int(r.pg, "SELECT count(*) FROM audit", 2 * EVENTS, 60000), 2 * EVENTS);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
    pg_test_str(r.pg, fingerprint_sql, before, sizeof(before));
    SL_CHECK_INT(pg_test_int(r.pg, "SELECT count(*) FROM event_status WHERE state = 'delivered'"),
                 EVENTS - EVENTS / 3);

    /* A second reader of the whole topic: every record is written again. */
    sink_new_group(&r);
    pid = sink_start(&r, "sluice-audit", "audit-twice-2");
    SL_CHECK(sink_wait_metric(r.admin_port, "sluice_audit_rows_total{result=\"existing\"}",
                              2 * EVENTS, 60000) == 2 * EVENTS);
    SL_CHECK(sink_metric(r.admin_port, "sluice_audit_rows_total{result=\"inserted\"}") == 0);
    /* Every batch found its positions stored: through the staging table, none straight. */
    SL_CHECK(sink_metric(r.admin_port, "sluice_audit_batches_total{path=\"staged\"}") >= 1);
    SL_CHECK(sink_metric(r.admin_port, "sluice_audit_batches_total{path=\"copy\"}") == 0);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
    SL_CHECK_INT(pg_test_int(r.pg, "SELECT count(*) FROM audit"), 2 * EVENTS);
    SL_CHECK_STR(pg_test_str(r.pg, fingerprint_sql, after, sizeof(after)), before);
    sink_teardown(&r);
}

SL_TEST(a_large_batch_is_written_while_it_fills)
{
    struct sink_run r;
    char at[40], id[32], json[512];
    /* One batch of every record: the writer takes it in sub-batches of AUDIT_SUB_ROWS rows as
     * they are parsed, all in one transaction. Seven records per event, on one partition (one
     * key), so that every sub-batch boundary (a multiple of 2000, never of 7) splits an event. */
    sink_setup(&r, "audit-large", NULL,
               "audit:\n  loop: { batch_max_events: 10000, batch_max_wait: 3s }\n");
    enum { EVENTS = 1000, PER_EVENT = 7 };
    for (int i = 0; i < EVENTS; i++) {
        snprintf(id, sizeof(id), "lg-%05d", i);
        for (int k = 0; k < PER_EVENT; k++) {
            char uid[SL_UUID_STR_LEN + 1];
            snprintf(at, sizeof(at), "2026-04-01T10:%02d:%02d.%03dZ", i / 60 % 60, i % 60, k);
            snprintf(json, sizeof(json),
                     "{\"event_id\":\"%s\",\"stage\":\"%s\",\"outcome\":\"%s\",\"source\":\"s\","
                     "\"topic\":\"t\",\"partition\":0,\"offset\":%d,\"at\":\"%s\",\"detail\":%s}",
                     id, k ? "deliver" : "route",
                     k == 0              ? "passed"
                     : k < PER_EVENT - 1 ? "retry"
                                         : "delivered",
                     i, at,
                     k ? "{\"destination\":\"crm\",\"attempt\":1}"
                       : "{\"destinations\":[\"crm\"]}");
            sl_uuid_v7(uid);
            const char *const headers[] = {
                "ce_specversion", "1.0",     "ce_id",        uid, "ce_source",
                "sluice/test",    "ce_type", "sluice.audit", NULL};
            sink_produce_nowait(r.topic_audit, "one-key", 7, json, strlen(json), headers);
        }
    }
    sink_produce_wait();
    pid_t pid = sink_start(&r, "sluice-audit", "audit-large");
    SL_CHECK_INT(sink_wait_int(r.pg, "SELECT count(*) FROM audit", EVENTS * PER_EVENT, 60000),
                 EVENTS * PER_EVENT);
    SL_CHECK_INT(pg_test_int(r.pg, "SELECT count(DISTINCT (audit_partition, audit_offset)) FROM "
                                   "audit"),
                 EVENTS * PER_EVENT);
    SL_CHECK_INT(pg_test_int(r.pg, "SELECT count(*) FROM event_status WHERE state = 'delivered' "
                                   "AND destination = 'crm'"),
                 EVENTS);
    /* Written as it came, never failing and starting again. */
    SL_CHECK(sink_metric(r.admin_port, "sluice_audit_flush_failures_total{error=\"invalid\"}") <=
             0);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
    SL_CHECK_INT(sink_committed(r.group, r.topic_audit, 3), sink_end_offsets(r.topic_audit, 3));
    sink_teardown(&r);
}

int main(void)
{
    int rc = sl_test_run_all();
    sink_cleanup();
    return rc;
}
