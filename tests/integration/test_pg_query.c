/* Integration tests of the audit partitions and of the read-side queries (sl_pg_query) against
 * real PostgreSQL: rows land in their day's partition whatever the session's time zone, a
 * dropped partition takes exactly its rows, and each query returns what was inserted. */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "pg_testenv.h"
#include "sl_pg_query.h"
#include "sl_test.h"

/* This run's schema, migrated, made on first use. */
static const char *db(void)
{
    static char dsn[PG_TEST_DSN_MAX];
    if (!dsn[0]) {
        char schema[64];
        pg_test_schema(schema, dsn);
        sl_pg_t *pg = pg_test_handle(dsn, 0);
        pg_test_migrate(pg);
        sl_pg_destroy(pg);
    }
    return dsn;
}

/* A fresh migrated schema, for tests that count partitions. */
static sl_pg_t *fresh(void)
{
    char schema[64], dsn[PG_TEST_DSN_MAX];
    pg_test_schema(schema, dsn);
    sl_pg_t *pg = pg_test_handle(dsn, 0);
    pg_test_migrate(pg);
    return pg;
}

static const char *str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static long long num(const json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

/* ---- partitions ---- */

static void insert_audit(sl_pg_t *pg, const char *at, long long offset)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO audit (at, event_id, stage, outcome, topic, partition, kafka_offset,"
             " audit_topic, audit_partition, audit_offset)"
             " VALUES ('%s', 'e-%lld', 'validate', 'passed', 'sluice.ingress', 0, %lld,"
             " 'sluice.audit', 0, %lld)",
             at, offset, offset, offset);
    pg_test_exec(pg, sql);
}

SL_TEST(rows_land_in_their_days_partition)
{
    sl_pg_t *pg = fresh();
    SL_CHECK_INT(pg_test_int(pg, "SELECT sluice_audit_partitions_ensure('2024-03-09', "
                                 "'2024-03-12')"),
                 4);
    SL_CHECK_INT(pg_test_int(pg, "SELECT sluice_audit_partitions_ensure('2024-03-09', "
                                 "'2024-03-12')"),
                 0);
    /* Day bounds are UTC whatever the session's zone (here across a DST change). */
    pg_test_exec(pg, "SET TimeZone = 'America/New_York'");
    insert_audit(pg, "2024-03-09T00:00:00Z", 1);
    insert_audit(pg, "2024-03-09T23:59:59.999999Z", 2);
    insert_audit(pg, "2024-03-10T00:00:00Z", 3);
    insert_audit(pg, "2024-03-10T22:30:00-04:00", 4); /* 02:30 UTC on the 11th */
    insert_audit(pg, "2024-03-11T12:00:00Z", 5);
    insert_audit(pg, "2024-03-12T23:59:59Z", 6);
    static const char *const expect[] = {"",
                                         "audit_p20240309",
                                         "audit_p20240309",
                                         "audit_p20240310",
                                         "audit_p20240311",
                                         "audit_p20240311",
                                         "audit_p20240312"};
    for (int i = 1; i <= 6; i++) {
        char sql[160], part[64];
        snprintf(sql, sizeof(sql),
                 "SELECT tableoid::regclass::text FROM audit WHERE "
                 "audit_offset = %d",
                 i);
        SL_CHECK_STR(pg_test_str(pg, sql, part, sizeof(part)), expect[i]);
    }
    /* A day without a partition fails loudly rather than landing anywhere. */
    struct sl_err err;
    SL_CHECK(sl_pg_exec(pg,
                        "INSERT INTO audit (at, stage, outcome, topic, partition, kafka_offset,"
                        " audit_topic, audit_partition, audit_offset) VALUES ("
                        "'1999-01-01T00:00:00Z', 'v', 'passed', 't', 0, 0, 'a', 0, 0)",
                        0, NULL, NULL, &err) == -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    SL_CHECK_CONTAINS(err.msg, "no partition of relation");

    /* Retention: the whole days before the 11th go, with exactly their rows. */
    char names[128];
    SL_CHECK_STR(pg_test_str(pg,
                             "SELECT string_agg(n, ',' ORDER BY n) FROM "
                             "sluice_audit_partitions_drop('2024-03-11') AS n",
                             names, sizeof(names)),
                 "audit_p20240309,audit_p20240310");
    SL_CHECK_INT(pg_test_int(pg, "SELECT count(*) FROM audit"), 3);
    SL_CHECK_STR(pg_test_str(pg,
                             "SELECT string_agg(audit_offset::text, ',' ORDER BY audit_offset) "
                             "FROM audit",
                             names, sizeof(names)),
                 "4,5,6");
    sl_pg_destroy(pg);
}

SL_TEST(partition_upkeep_today_ahead_and_retention)
{
    sl_pg_t *pg = fresh();
    struct sl_err err;
    int created = -1;
    SL_REQUIRE(sl_pg_audit_partitions_ensure(pg, 3, &created, &err) == 0);
    SL_CHECK_INT(created, 4);
    SL_REQUIRE(sl_pg_audit_partitions_ensure(pg, 3, &created, &err) == 0);
    SL_CHECK_INT(created, 0);
    SL_CHECK(sl_pg_audit_partitions_ensure(pg, 400, &created, &err) == -1);
    /* An old day with a row, and today's row. */
    pg_test_exec(pg, "SELECT sluice_audit_partition_ensure('2001-02-03')");
    insert_audit(pg, "2001-02-03T10:00:00Z", 1);
    pg_test_exec(pg, "INSERT INTO audit (at, stage, outcome, topic, partition, kafka_offset,"
                     " audit_topic, audit_partition, audit_offset)"
                     " VALUES (now(), 'v', 'passed', 't', 0, 0, 'sluice.audit', 0, 2)");
    json_t *parts = NULL, *dropped = NULL;
    SL_REQUIRE(sl_pg_audit_partitions(pg, &parts, &err) == 0);
    SL_CHECK_INT(json_array_size(parts), 5);
    SL_CHECK_STR(str(json_array_get(parts, 0), "name"), "audit_p20010203");
    SL_CHECK_STR(str(json_array_get(parts, 0), "day"), "2001-02-03");
    json_decref(parts);

    SL_CHECK(sl_pg_audit_partitions_drop(pg, 0, &dropped, &err) == -1);
    SL_REQUIRE(sl_pg_audit_partitions_drop(pg, 1, &dropped, &err) == 0);
    SL_CHECK_INT(json_array_size(dropped), 1);
    SL_CHECK_STR(json_string_value(json_array_get(dropped, 0)), "audit_p20010203");
    json_decref(dropped);
    SL_CHECK_INT(pg_test_int(pg, "SELECT count(*) FROM audit"), 1);
    SL_REQUIRE(sl_pg_audit_partitions(pg, &parts, &err) == 0);
    SL_CHECK_INT(json_array_size(parts), 4);
    json_decref(parts);
    sl_pg_destroy(pg);
}

/* ---- the event timeline ---- */

SL_TEST(event_timeline)
{
    sl_pg_t *pg = pg_test_handle(db(), 0);
    struct sl_err err;
    pg_test_exec(pg, "SELECT sluice_audit_partitions_ensure('2024-06-01', '2024-06-02')");
    /* Inserted out of order; ingress and validate at the same instant. */
    pg_test_exec(
        pg, "INSERT INTO audit (at, event_id, stage, outcome, reason, errors, source, type,"
            " destination, attempt, status, latency_ms, seconds, outputs, detail, topic, partition,"
            " kafka_offset, audit_topic, audit_partition, audit_offset) VALUES"
            " ('2024-06-01T10:00:05Z', 'ev-1', 'deliver', 'retry', 'HTTP 503', NULL, 'stripe',"
            "  'payment.succeeded', 'crm', 1, 503, 120.5, 0.121, NULL, '{\"route\": \"payments\"}',"
            "  'sluice.deliver.crm', 2, 40, 'sluice.audit', 1, 100),"
            " ('2024-06-01T10:00:01Z', 'ev-1', 'validate', 'passed', NULL, NULL, 'stripe',"
            "  'charge.succeeded', NULL, NULL, NULL, NULL, 0.002, 1, NULL,"
            "  'sluice.ingress', 2, 10, 'sluice.audit', 1, 98),"
            " ('2024-06-01T10:00:01Z', 'ev-1', 'ingress', 'passed', NULL, NULL, 'stripe',"
            "  'charge.succeeded', NULL, NULL, NULL, NULL, 0.001, 1, NULL,"
            "  'http', 0, 0, 'sluice.audit', 1, 97),"
            " ('2024-06-01T10:00:09Z', 'ev-1', 'deliver', 'delivered', NULL, NULL, 'stripe',"
            "  'payment.succeeded', 'crm', 2, 200, 80, 0.081, NULL, NULL,"
            "  'sluice.deliver.crm', 2, 41, 'sluice.audit', 1, 101),"
            " ('2024-06-02T00:00:00Z', 'ev-2', 'validate', 'dead_lettered', 'schema',"
            "  '[\"/amount: expected integer\"]', 'crm', 'contact.updated', NULL, NULL, NULL, NULL,"
            "  0.003, NULL, NULL, 'sluice.ingress', 0, 11, 'sluice.audit', 0, 5)");
    json_t *rows = NULL;
    SL_REQUIRE(sl_pg_event_timeline(pg, "ev-1", &rows, &err) == 0);
    SL_REQUIRE(json_array_size(rows) == 4);
    static const char *const stages[] = {"ingress", "validate", "deliver", "deliver"};
    for (size_t i = 0; i < 4; i++)
        SL_CHECK_STR(str(json_array_get(rows, i), "stage"), stages[i]);
    json_t *retry = json_array_get(rows, 2), *done = json_array_get(rows, 3);
    SL_CHECK_STR(str(retry, "at"), "2024-06-01T10:00:05+00:00");
    SL_CHECK_STR(str(retry, "outcome"), "retry");
    SL_CHECK_STR(str(retry, "reason"), "HTTP 503");
    SL_CHECK_STR(str(retry, "destination"), "crm");
    SL_CHECK_INT(num(retry, "attempt"), 1);
    SL_CHECK_INT(num(retry, "status"), 503);
    SL_CHECK(json_real_value(json_object_get(retry, "latency_ms")) == 120.5);
    SL_CHECK_STR(str(json_object_get(retry, "detail"), "route"), "payments");
    SL_CHECK_STR(str(retry, "topic"), "sluice.deliver.crm");
    SL_CHECK_INT(num(retry, "partition"), 2);
    SL_CHECK_INT(num(retry, "offset"), 40);
    SL_CHECK(json_is_null(json_object_get(retry, "errors")));
    SL_CHECK(json_is_string(json_object_get(retry, "recorded_at")));
    SL_CHECK_STR(str(done, "outcome"), "delivered");
    SL_CHECK_INT(num(done, "attempt"), 2);
    json_decref(rows);

    SL_REQUIRE(sl_pg_event_timeline(pg, "ev-2", &rows, &err) == 0);
    SL_REQUIRE(json_array_size(rows) == 1);
    SL_CHECK_STR(
        json_string_value(json_array_get(json_object_get(json_array_get(rows, 0), "errors"), 0)),
        "/amount: expected integer");
    json_decref(rows);
    SL_REQUIRE(sl_pg_event_timeline(pg, "no-such-event", &rows, &err) == 0);
    SL_CHECK(json_is_array(rows) && json_array_size(rows) == 0);
    json_decref(rows);
    SL_CHECK(sl_pg_event_timeline(pg, "", &rows, &err) == -1);
    sl_pg_destroy(pg);
}

/* ---- dead letters ---- */

static const struct sl_pg_upsert dlq_spec = {
    .table = "dead_letters",
    .staging = "dead_letters_stage",
    .columns = "event_id, source, type, stage, reason, errors, attempt, headers, payload, key,"
               " topic, partition, kafka_offset, produced_at, received_at",
    .conflict = "(topic, partition, kafka_offset)",
};

static const unsigned char payload[] = {'{', '"', 'a', '"', ':', 0xff, 0x00, 0x01, '}'};

/* Five dead letters: sources stripe/crm, stages validate/transform, a day apart. */
static long long write_dead_letters(sl_pg_t *pg)
{
    struct sl_err err;
    long long inserted = -1;
    sl_pg_copy_t *c = sl_pg_upsert_begin(pg, &dlq_spec, &err);
    SL_REQUIRE(c);
    for (int i = 0; i < 5; i++) {
        char id[16], at[40], headers[128];
        snprintf(id, sizeof(id), "dl-%d", i);
        snprintf(at, sizeof(at), "2024-07-0%dT08:00:00Z", i + 1);
        snprintf(headers, sizeof(headers),
                 "{\"ce_id\": \"dl-%d\", \"ce_sluicestage\": \"validate\", "
                 "\"content-type\": \"application/json\"}",
                 i);
        sl_pg_copy_text(c, id);
        sl_pg_copy_text(c, i % 2 ? "crm" : "stripe");
        sl_pg_copy_text(c, "charge.succeeded");
        sl_pg_copy_text(c, i < 3 ? "validate" : "transform");
        sl_pg_copy_text(c, "schema validation failed");
        sl_pg_copy_text(c, "[\"/amount: expected integer\", \"tab\\there\"]");
        sl_pg_copy_int(c, 1);
        sl_pg_copy_text(c, headers);
        sl_pg_copy_bytea(c, payload, sizeof(payload));
        if (i == 0)
            sl_pg_copy_null(c);
        else
            sl_pg_copy_bytea(c, "cus_1", 5);
        sl_pg_copy_text(c, "sluice.dlq");
        sl_pg_copy_int(c, 0);
        sl_pg_copy_int(c, 500 + i);
        sl_pg_copy_text(c, at);
        sl_pg_copy_text(c, at);
        SL_REQUIRE(sl_pg_copy_row(c, &err) == 0);
    }
    if (sl_pg_copy_end(c, &inserted, &err) != 0)
        sl_test_fail(__FILE__, __LINE__, "dead letters: %s", err.msg);
    return inserted;
}

static void check_ids(json_t *rows, const char *expect)
{
    char got[128] = "";
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        size_t n = strlen(got);
        snprintf(got + n, sizeof(got) - n, "%s%s", i ? "," : "", str(row, "event_id"));
    }
    SL_CHECK_STR(got, expect);
}

SL_TEST(dead_letters_listing_and_one_in_full)
{
    char schema[64], dsn[PG_TEST_DSN_MAX];
    pg_test_schema(schema, dsn);
    sl_pg_t *pg = pg_test_handle(dsn, 0);
    pg_test_migrate(pg);
    struct sl_err err;
    SL_CHECK_INT(write_dead_letters(pg), 5);
    SL_CHECK_INT(write_dead_letters(pg), 0);
    pg_test_exec(pg, "UPDATE dead_letters SET status = 'replayed' WHERE event_id = 'dl-4'");
    pg_test_exec(
        pg,
        "INSERT INTO dead_letter_replays (dead_letter_id, replayed_by, replayed_at,"
        " to_stage, to_topic, attempt, partition, kafka_offset)"
        " SELECT id, 'alice', '2024-07-10T09:00:00Z'::timestamptz, 'validate', 'sluice.ingress',"
        " 2, 3, 77 FROM dead_letters WHERE event_id = 'dl-4'"
        " UNION ALL"
        " SELECT id, 'bob', '2024-07-11T09:00:00Z'::timestamptz, 'transform',"
        " 'sluice.validated', 3, NULL, NULL FROM dead_letters WHERE event_id = 'dl-4'");

    json_t *rows = NULL;
    SL_REQUIRE(sl_pg_dead_letters(pg, NULL, &rows, &err) == 0);
    check_ids(rows, "dl-4,dl-3,dl-2,dl-1,dl-0");
    json_t *first = json_array_get(rows, 0);
    SL_CHECK_STR(str(first, "stage"), "transform");
    SL_CHECK_STR(str(first, "status"), "replayed");
    SL_CHECK_STR(str(first, "received_at"), "2024-07-05T08:00:00+00:00");
    SL_CHECK_STR(str(first, "topic"), "sluice.dlq");
    SL_CHECK_INT(num(first, "offset"), 504);
    SL_CHECK_INT(num(first, "payload_size"), sizeof(payload));
    SL_CHECK_INT(num(first, "replay_count"), 2);
    json_decref(rows);

    struct sl_pg_dlq_filter f = {.source = "stripe"};
    SL_REQUIRE(sl_pg_dead_letters(pg, &f, &rows, &err) == 0);
    check_ids(rows, "dl-4,dl-2,dl-0");
    json_decref(rows);
    f = (struct sl_pg_dlq_filter){.stage = "validate", .since = "2024-07-02T00:00:00Z"};
    SL_REQUIRE(sl_pg_dead_letters(pg, &f, &rows, &err) == 0);
    check_ids(rows, "dl-2,dl-1");
    json_decref(rows);
    f = (struct sl_pg_dlq_filter){.status = "new", .limit = 2};
    SL_REQUIRE(sl_pg_dead_letters(pg, &f, &rows, &err) == 0);
    check_ids(rows, "dl-3,dl-2");
    /* The next page starts below the last id. */
    f.before_id = num(json_array_get(rows, 1), "id");
    json_decref(rows);
    SL_REQUIRE(sl_pg_dead_letters(pg, &f, &rows, &err) == 0);
    check_ids(rows, "dl-1,dl-0");
    json_decref(rows);
    f = (struct sl_pg_dlq_filter){.since = "yesterday-ish"};
    SL_CHECK(sl_pg_dead_letters(pg, &f, &rows, &err) == -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    f = (struct sl_pg_dlq_filter){.limit = SL_PG_ROWS_MAX + 1};
    SL_CHECK(sl_pg_dead_letters(pg, &f, &rows, &err) == -1);

    long long id = pg_test_int(pg, "SELECT id FROM dead_letters WHERE event_id = 'dl-4'");
    json_t *dl = NULL;
    SL_REQUIRE(sl_pg_dead_letter(pg, id, &dl, &err) == 0);
    SL_CHECK_INT(num(dl, "id"), id);
    SL_CHECK_STR(str(dl, "reason"), "schema validation failed");
    SL_CHECK_STR(json_string_value(json_array_get(json_object_get(dl, "errors"), 1)), "tab\there");
    SL_CHECK_STR(str(json_object_get(dl, "headers"), "content-type"), "application/json");
    SL_CHECK_STR(str(json_object_get(dl, "headers"), "ce_id"), "dl-4");
    unsigned char b64[64];
    EVP_EncodeBlock(b64, payload, sizeof(payload));
    SL_CHECK_STR(str(dl, "payload"), (const char *)b64);
    SL_CHECK_STR(str(dl, "key"), "Y3VzXzE="); /* cus_1 */
    SL_CHECK_STR(str(dl, "produced_at"), "2024-07-05T08:00:00+00:00");
    json_t *replays = json_object_get(dl, "replays");
    SL_REQUIRE(json_array_size(replays) == 2);
    SL_CHECK_STR(str(json_array_get(replays, 0), "replayed_by"), "alice");
    SL_CHECK_STR(str(json_array_get(replays, 0), "to_stage"), "validate");
    SL_CHECK_INT(num(json_array_get(replays, 0), "attempt"), 2);
    SL_CHECK_INT(num(json_array_get(replays, 0), "offset"), 77);
    SL_CHECK_STR(str(json_array_get(replays, 1), "replayed_by"), "bob");
    SL_CHECK(json_is_null(json_object_get(json_array_get(replays, 1), "offset")));
    json_decref(dl);

    id = pg_test_int(pg, "SELECT id FROM dead_letters WHERE event_id = 'dl-0'");
    SL_REQUIRE(sl_pg_dead_letter(pg, id, &dl, &err) == 0);
    SL_CHECK(json_is_null(json_object_get(dl, "key")));
    SL_CHECK_INT(json_array_size(json_object_get(dl, "replays")), 0);
    json_decref(dl);
    SL_CHECK(sl_pg_dead_letter(pg, 987654321, &dl, &err) == -1);
    SL_CHECK_INT(err.code, SL_ERR_NOT_FOUND);
    SL_CHECK_CONTAINS(err.msg, "987654321");
    sl_pg_destroy(pg);
}

SL_TEST(a_dead_letter_with_a_secret_header_is_refused)
{
    sl_pg_t *pg = pg_test_handle(db(), 0);
    struct sl_err err;
    SL_CHECK(sl_pg_exec(pg,
                        "INSERT INTO dead_letters (stage, reason, headers, payload, topic,"
                        " partition, kafka_offset) VALUES ('validate', 'r',"
                        " '{\"ce_id\": \"x\", \"authorization\": \"Bearer hunter2\"}', '\\x00',"
                        " 'sluice.dlq', 0, 1)",
                        0, NULL, NULL, &err) == -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    SL_CHECK_CONTAINS(err.msg, "dead_letters_headers_check");
    SL_CHECK(!strstr(err.msg, "hunter2")); /* the server's DETAIL quotes the row */
    sl_pg_destroy(pg);
}

/* ---- reconciliation ---- */

SL_TEST(reconcile_hourly_counts)
{
    sl_pg_t *pg = pg_test_handle(db(), 0);
    struct sl_err err;
    pg_test_exec(pg, "INSERT INTO reconcile_runs (window_from, window_to, status)"
                     " VALUES ('2024-08-01T00:00:00Z', '2024-08-01T03:00:00Z', 'unbalanced')");
    pg_test_exec(pg,
                 "INSERT INTO reconcile_hourly (hour, source, destination, accepted, delivered,"
                 " dead_lettered, filtered, duplicate, pending, stuck, explanation, run_id) VALUES"
                 " ('2024-08-01T00:00:00Z', 'stripe', 'crm', 10, 7, 1, 0, 1, 1, 0, NULL,"
                 "  (SELECT max(id) FROM reconcile_runs)),"
                 " ('2024-08-01T00:00:00Z', 'stripe', '', 12, 0, 0, 1, 1, 0, 0, NULL, NULL),"
                 " ('2024-08-01T01:00:00Z', 'crm', 'warehouse', 5, 3, 0, 0, 0, 0, 1,"
                 "  '1 record missing from sluice.outcomes', NULL),"
                 " ('2024-08-01T02:00:00Z', 'stripe', 'crm', 4, 4, 0, 0, 0, 0, 0, NULL, NULL)");
    json_t *rows = NULL;
    SL_REQUIRE(sl_pg_reconcile_hourly(pg, "2024-08-01T00:00:00Z", "2024-08-01T02:00:00Z", NULL,
                                      NULL, &rows, &err) == 0);
    SL_REQUIRE(json_array_size(rows) == 3);
    json_t *r0 = json_array_get(rows, 0), *r2 = json_array_get(rows, 2);
    SL_CHECK_STR(str(r0, "hour"), "2024-08-01T00:00:00+00:00");
    SL_CHECK_STR(str(r0, "destination"), "");
    SL_CHECK_INT(num(r0, "accepted"), 12);
    SL_CHECK_INT(num(r0, "unexplained"), 10);
    SL_CHECK_STR(str(json_array_get(rows, 1), "destination"), "crm");
    SL_CHECK_INT(num(json_array_get(rows, 1), "unexplained"), 0);
    SL_CHECK(json_is_integer(json_object_get(json_array_get(rows, 1), "run_id")));
    SL_CHECK_STR(str(r2, "source"), "crm");
    SL_CHECK_INT(num(r2, "stuck"), 1);
    SL_CHECK_INT(num(r2, "unexplained"), 1);
    SL_CHECK_STR(str(r2, "explanation"), "1 record missing from sluice.outcomes");
    json_decref(rows);
    SL_REQUIRE(
        sl_pg_reconcile_hourly(pg, "2024-08-01T00:00:00Z", NULL, "stripe", NULL, &rows, &err) == 0);
    SL_CHECK_INT(json_array_size(rows), 3);
    json_decref(rows);
    /* An hour must be a whole hour. */
    SL_CHECK(sl_pg_exec(pg,
                        "INSERT INTO reconcile_hourly (hour, source) VALUES "
                        "('2024-08-01T00:30:00Z', 'x')",
                        0, NULL, NULL, &err) == -1);
    SL_CHECK_CONTAINS(err.msg, "reconcile_hourly_hour_check");
    sl_pg_destroy(pg);
}

int main(void)
{
    int rc = sl_test_run_all();
    pg_test_cleanup();
    return rc;
}
