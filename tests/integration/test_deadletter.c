/* sluice-deadletter against the test broker and PostgreSQL: a dead letter made by a real stage
 * (sluice-passthrough rejecting an event) is stored with its stage, reason, errors, attempt,
 * CloudEvents headers and exact payload and key, while a secret-looking header (Authorization,
 * X-Api-Key) reaches neither the table nor the log; a hand-made dead letter with odd contents
 * is stored all the same, and the same dead letters written again stay once. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "sink_harness.h"
#include "sl_test.h"
#include "sl_testenv.h"

#define LOOP_YAML                                                                                  \
    "deadletter:\n  loop: { batch_max_wait: 50ms, retry_initial: 50ms, retry_max: 1s }\n"

#define SECRET "s3cr3t-4ee2b"

/* The payload, with a NUL and bytes that are not UTF-8: stored byte for byte. */
static const char payload[] = "{\"reject\":true,\"x\":\"\xff\xfe\"}\0tail";
#define PAYLOAD_LEN (sizeof(payload) - 1)

SL_TEST(a_dead_letter_of_a_real_stage_is_stored_without_secrets)
{
    struct sink_run r;
    char buf[4096], log[4200], hex[256];
    sink_setup(&r, "deadletter", NULL, LOOP_YAML);
    const char *const headers[] = {"ce_specversion",
                                   "1.0",
                                   "ce_id",
                                   "dl-1",
                                   "ce_source",
                                   "https://processor.example",
                                   "ce_type",
                                   "charge.succeeded",
                                   "content-type",
                                   "application/json",
                                   "ce_sluicesource",
                                   "stripe",
                                   "ce_traceparent",
                                   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                   "Authorization",
                                   "Bearer " SECRET,
                                   "X-Api-Key",
                                   SECRET,
                                   NULL};
    sink_produce(r.topic_ingress, "cust-42", 7, payload, PAYLOAD_LEN, headers);
    pid_t stage = sink_start(&r, "sluice-passthrough", "deadletter-passthrough");
    rd_kafka_message_t *msgs[4];
    rd_kafka_t *c;
    size_t n = sink_read(r.topic_dlq, 1, msgs, 1, &c);
    SL_CHECK_INT(n, 1);
    /* The stage kept every original header on the topic: the sink is what must drop them. */
    SL_CHECK(n == 1 && sink_header(msgs[0], "Authorization", buf, sizeof(buf)));
    sink_free_records(msgs, n, c);
    SL_CHECK_INT(sl_testenv_stop(stage, SIGTERM, 60000), 0);

    sink_new_group(&r);
    pid_t pid = sink_start(&r, "sluice-deadletter", "deadletter-real");
    SL_CHECK_INT(sink_wait_int(r.pg, "SELECT count(*) FROM dead_letters", 1, 60000), 1);
    SL_CHECK_STR(pg_test_str(r.pg,
                             "SELECT concat_ws('|', event_id, source, type, stage, reason, "
                             "errors, attempt, status, partition, kafka_offset, "
                             "produced_at IS NOT NULL) FROM dead_letters",
                             buf, sizeof(buf)),
                 "dl-1|stripe|charge.succeeded|passthrough|rejected on request|[\"/reject: the "
                 "payload asked for it\", \"/: second error\"]|1|new|0|0|t");
    SL_CHECK_STR(pg_test_str(r.pg, "SELECT topic FROM dead_letters", buf, sizeof(buf)),
                 r.topic_dlq);
    /* Exactly the CloudEvents headers and content-type. */
    SL_CHECK_STR(
        pg_test_str(r.pg,
                    "SELECT string_agg(k, ',' ORDER BY k COLLATE \"C\") FROM dead_letters, "
                    "jsonb_object_keys(headers) AS k",
                    buf, sizeof(buf)),
        "ce_id,ce_sluiceerrors,ce_sluicereason,ce_sluicesource,ce_sluicestage,ce_source,"
        "ce_specversion,ce_traceparent,ce_type,content-type");
    SL_CHECK_STR(
        pg_test_str(r.pg, "SELECT headers ->> 'content-type' FROM dead_letters", buf, sizeof(buf)),
        "application/json");
    /* The payload and key byte for byte. */
    size_t h = 0;
    for (size_t i = 0; i < PAYLOAD_LEN; i++)
        h += (size_t)snprintf(hex + h, sizeof(hex) - h, "%02x", (unsigned char)payload[i]);
    SL_CHECK_STR(
        pg_test_str(r.pg, "SELECT encode(payload, 'hex') FROM dead_letters", buf, sizeof(buf)),
        hex);
    SL_CHECK_STR(
        pg_test_str(r.pg, "SELECT convert_from(key, 'UTF8') FROM dead_letters", buf, sizeof(buf)),
        "cust-42");
    /* The secret is nowhere: not in the row (any column), not in the worker's log. */
    SL_CHECK_INT(pg_test_int(r.pg, "SELECT count(*) FROM dead_letters d WHERE d::text ILIKE "
                                   "'%" SECRET "%' OR d::text ILIKE '%authorization%'"),
                 0);
    SL_CHECK(sink_wait_metric(r.admin_port, "sluice_deadletter_rows_total{result=\"inserted\"}", 1,
                              10000) == 1);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
    snprintf(log, sizeof(log), "%s/tests/deadletter-real.log", sl_test_binary_dir());
    SL_CHECK(sink_file_contains(log, "stored 1 dead letters"));
    SL_CHECK(!sink_file_contains(log, SECRET));
    SL_CHECK_INT(sink_committed(r.group, r.topic_dlq, 1), sink_end_offsets(r.topic_dlq, 1));
    sink_teardown(&r);
}

SL_TEST(a_hand_made_dead_letter_is_stored_whatever_it_holds_and_only_once)
{
    struct sink_run r;
    char buf[4096];
    sink_setup(&r, "deadletter-odd", NULL, LOOP_YAML);
    /* No stage, no reason, errors that are not JSON, an attempt count, a value that is not
     * UTF-8, no key. */
    const char *const odd[] = {"ce_specversion",
                               "1.0",
                               "ce_id",
                               "dl-odd",
                               "ce_source",
                               "test",
                               "ce_type",
                               "test.event",
                               "ce_sluiceerrors",
                               "not json, just text",
                               "ce_sluiceattempt",
                               "3",
                               "ce_custom",
                               "\xff\xfeok",
                               NULL};
    sink_produce(r.topic_dlq, NULL, 0, "{}", 2, odd);
    /* An attempt count that is not one, and errors that are a JSON array. */
    const char *const plain[] = {"ce_specversion",
                                 "1.0",
                                 "ce_id",
                                 "dl-plain",
                                 "ce_source",
                                 "test",
                                 "ce_type",
                                 "test.event",
                                 "ce_sluicestage",
                                 "deliver",
                                 "ce_sluicereason",
                                 "HTTP 400",
                                 "ce_sluiceerrors",
                                 "[\"attempt 1: HTTP 400: bad\"]",
                                 "ce_sluiceattempt",
                                 "-2",
                                 NULL};
    sink_produce(r.topic_dlq, "k", 1, "", 0, plain);
    /* Not CloudEvents: the dead letter of a raw record (only the stage's own headers), and a
     * record with no headers at all. Stored, never dead-lettered again onto the DLQ. */
    const char *const raw[] = {"ce_sluicestage", "validate", "ce_sluicereason",
                               "not a CloudEvent: no ce_id", NULL};
    sink_produce(r.topic_dlq, NULL, 0, "raw", 3, raw);
    sink_produce(r.topic_dlq, NULL, 0, "bare", 4, NULL);

    pid_t pid = sink_start(&r, "sluice-deadletter", "deadletter-odd-1");
    SL_CHECK_INT(sink_wait_int(r.pg, "SELECT count(*) FROM dead_letters", 4, 60000), 4);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
    SL_CHECK_INT(sink_committed(r.group, r.topic_dlq, 1), 4);
    SL_CHECK_INT(sink_end_offsets(r.topic_dlq, 1), 4);
    SL_CHECK_STR(pg_test_str(r.pg,
                             "SELECT concat_ws('|', stage, reason, errors, attempt, key IS NULL, "
                             "headers ->> 'ce_custom', length(payload)) FROM dead_letters WHERE "
                             "event_id = 'dl-odd'",
                             buf, sizeof(buf)),
                 "unknown|no reason given|[\"not json, just text\"]|3|t|\xEF\xBF\xBD\xEF\xBF"
                 "\xBDok|2");
    SL_CHECK_STR(pg_test_str(r.pg,
                             "SELECT concat_ws('|', stage, reason, errors, attempt, "
                             "convert_from(key, 'UTF8'), length(payload)) FROM dead_letters WHERE "
                             "event_id = 'dl-plain'",
                             buf, sizeof(buf)),
                 "deliver|HTTP 400|[\"attempt 1: HTTP 400: bad\"]|1|k|0");
    SL_CHECK_STR(pg_test_str(r.pg,
                             "SELECT string_agg(concat_ws('|', event_id IS NULL, source IS NULL, "
                             "type IS NULL, stage, reason, headers::text, "
                             "convert_from(payload, 'UTF8')), ';' ORDER BY kafka_offset) FROM "
                             "dead_letters WHERE kafka_offset >= 2",
                             buf, sizeof(buf)),
                 "t|t|t|validate|not a CloudEvent: no ce_id|{\"ce_sluicestage\": \"validate\", "
                 "\"ce_sluicereason\": \"not a CloudEvent: no ce_id\"}|raw;"
                 "t|t|t|unknown|no reason given|{}|bare");

    /* A second group reads both again: nothing new. */
    sink_new_group(&r);
    pid = sink_start(&r, "sluice-deadletter", "deadletter-odd-2");
    SL_CHECK(sink_wait_metric(r.admin_port, "sluice_deadletter_rows_total{result=\"existing\"}", 4,
                              60000) == 4);
    SL_CHECK(sink_metric(r.admin_port, "sluice_deadletter_rows_total{result=\"inserted\"}") == 0);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
    SL_CHECK_INT(pg_test_int(r.pg, "SELECT count(*) FROM dead_letters"), 4);
    sink_teardown(&r);
}

int main(void)
{
    int rc = sl_test_run_all();
    sink_cleanup();
    return rc;
}
