/* Integration tests of sl_pg against the real PostgreSQL of the `services` fixture: statements
 * and their errors, an unreachable server, a backend killed under a live handle (reconnect, and
 * a transaction lost with it), COPY's text escaping, and the staging-table upsert that stores a
 * batch written twice once. Everything happens in schemas of this run's own (pg_testenv). */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pg_testenv.h"
#include "sl_pg.h"
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

static void check_unavailable(const struct sl_err *err)
{
    SL_CHECK_INT(err->code, SL_ERR_UNAVAILABLE);
    SL_CHECK(err->retriable);
    SL_CHECK(!err->fatal);
}

/* Terminates the backend of `victim` from another connection and waits until it has exited. */
static void kill_backend(sl_pg_t *victim)
{
    char sql[128], out[8];
    long long pid = pg_test_int(victim, "SELECT pg_backend_pid()");
    sl_pg_t *killer = pg_test_handle(pg_test_base_dsn(), 0);
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%lld, 60000)", pid);
    SL_CHECK_STR(pg_test_str(killer, sql, out, sizeof(out)), "t");
    sl_pg_destroy(killer);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    SL_REQUIRE(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    SL_REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    SL_REQUIRE(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- statements ---- */

SL_TEST(exec_with_parameters)
{
    sl_pg_t *pg = pg_test_handle(db(), 0);
    struct sl_err err;
    PGresult *r;
    const char *params[] = {"41", NULL, "tab\there"};
    SL_REQUIRE(sl_pg_exec(pg, "SELECT $1::int + 1, $2::text, $3::text", 3, params, &r, &err) == 0);
    SL_CHECK_STR(PQgetvalue(r, 0, 0), "42");
    SL_CHECK(PQgetisnull(r, 0, 1));
    SL_CHECK_STR(PQgetvalue(r, 0, 2), "tab\there");
    PQclear(r);
    SL_CHECK_INT(sl_pg_session(pg), 1);
    sl_pg_destroy(pg);
}

SL_TEST(session_settings)
{
    char buf[64], dsn[PG_TEST_DSN_MAX + 64];
    sl_pg_t *pg = pg_test_handle(db(), 0);
    SL_CHECK_STR(pg_test_str(pg, "SHOW TimeZone", buf, sizeof(buf)), "UTC");
    SL_CHECK_STR(pg_test_str(pg, "SHOW statement_timeout", buf, sizeof(buf)), "30s");
    SL_CHECK_STR(pg_test_str(pg, "SELECT current_setting('application_name')", buf, sizeof(buf)),
                 "sluice-test");
    sl_pg_destroy(pg);
    /* What the DSN says wins over the handle's defaults. */
    snprintf(dsn, sizeof(dsn), "%s&application_name=from-dsn", db());
    pg = pg_test_handle(dsn, -1);
    SL_CHECK_STR(pg_test_str(pg, "SELECT current_setting('application_name')", buf, sizeof(buf)),
                 "from-dsn");
    SL_CHECK_STR(pg_test_str(pg, "SHOW statement_timeout", buf, sizeof(buf)), "0");
    sl_pg_destroy(pg);
}

SL_TEST(sql_error_is_invalid_with_the_servers_message)
{
    sl_pg_t *pg = pg_test_handle(db(), 0);
    struct sl_err err;
    SL_CHECK(sl_pg_exec(pg, "SELECT * FROM no_such_table", 0, NULL, NULL, &err) == -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    SL_CHECK(!err.retriable);
    SL_CHECK_CONTAINS(err.msg, "relation \"no_such_table\" does not exist");
    SL_CHECK_CONTAINS(err.msg, "42P01");
    SL_CHECK_CONTAINS(err.msg, "postgres 127.0.0.1:5432/sluice_test");
    /* The same session goes on. */
    SL_CHECK_INT(pg_test_int(pg, "SELECT 7"), 7);
    SL_CHECK_INT(sl_pg_session(pg), 1);
    sl_pg_destroy(pg);
}

SL_TEST(commit_of_a_failed_transaction_fails)
{
    sl_pg_t *pg = pg_test_handle(db(), 0);
    struct sl_err err;
    pg_test_exec(pg, "CREATE TABLE failed_txn (v int)");
    SL_REQUIRE(sl_pg_begin(pg, &err) == 0);
    pg_test_exec(pg, "INSERT INTO failed_txn VALUES (1)");
    SL_CHECK(sl_pg_exec(pg, "SELECT 1/0", 0, NULL, NULL, &err) == -1);
    SL_CHECK_CONTAINS(err.msg, "22012");
    SL_CHECK(sl_pg_commit(pg, &err) == -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    SL_CHECK_CONTAINS(err.msg, "rolled back");
    SL_CHECK_INT(pg_test_int(pg, "SELECT count(*) FROM failed_txn"), 0);
    sl_pg_destroy(pg);
}

SL_TEST(statement_timeout_is_retriable)
{
    sl_pg_t *pg = pg_test_handle(db(), 200);
    struct sl_err err;
    SL_CHECK(sl_pg_exec(pg, "SELECT pg_sleep(60)", 0, NULL, NULL, &err) == -1);
    SL_CHECK_INT(err.code, SL_ERR_TIMEOUT);
    SL_CHECK(err.retriable);
    SL_CHECK_CONTAINS(err.msg, "57014");
    SL_CHECK_INT(pg_test_int(pg, "SELECT 1"), 1);
    SL_CHECK_INT(sl_pg_session(pg), 1);
    sl_pg_destroy(pg);
}

SL_TEST(script_reports_the_line)
{
    sl_pg_t *pg = pg_test_handle(db(), 0);
    struct sl_err err;
    int line = -1;
    SL_CHECK(sl_pg_script(pg, "CREATE TABLE script_ok (v int);\n-- é ✓\nSELEC 1;\n", &line, &err) ==
             -1);
    SL_CHECK_INT(line, 3);
    SL_CHECK_CONTAINS(err.msg, "syntax error");
    /* Statements of a script before the error ran in its implicit transaction: rolled back. */
    SL_CHECK_INT(pg_test_int(pg, "SELECT count(*) FROM pg_tables WHERE tablename = 'script_ok'"),
                 0);
    SL_CHECK(sl_pg_script(pg, "CREATE TABLE script_ok (v int); INSERT INTO script_ok VALUES (1);",
                          &line, &err) == 0);
    SL_CHECK_INT(pg_test_int(pg, "SELECT count(*) FROM script_ok"), 1);
    sl_pg_destroy(pg);
}

/* ---- an unreachable or failing server ---- */

SL_TEST(closed_port_is_unavailable_and_never_shows_the_password)
{
    char dsn[256], where[64];
    int port = free_port();
    snprintf(dsn, sizeof(dsn),
             "postgresql://sluice:s3cret-pw@127.0.0.1:%d/sluice_test?connect_timeout=2", port);
    snprintf(where, sizeof(where), "postgres 127.0.0.1:%d/sluice_test", port);
    struct sl_err err;
    sl_pg_t *pg = sl_pg_new(dsn, NULL, &err); /* does not connect */
    SL_REQUIRE(pg);
    for (int i = 0; i < 2; i++) {
        SL_CHECK(sl_pg_exec(pg, "SELECT 1", 0, NULL, NULL, &err) == -1);
        check_unavailable(&err);
        SL_CHECK_CONTAINS(err.msg, where);
        SL_CHECK_CONTAINS(err.msg, "cannot connect");
        SL_CHECK(!strstr(err.msg, "s3cret-pw"));
        SL_CHECK_INT(sl_pg_session(pg), 0);
    }
    SL_CHECK(sl_pg_connect(pg, &err) == -1);
    check_unavailable(&err);
    sl_pg_destroy(pg);
}

SL_TEST(a_killed_backend_is_replaced_on_the_next_call)
{
    sl_pg_t *pg = pg_test_handle(db(), 0);
    struct sl_err err;
    long long pid = pg_test_int(pg, "SELECT pg_backend_pid()");
    kill_backend(pg);
    /* The call that meets the dead connection fails: it may have been sent, so it is the
     * caller's to repeat. */
    SL_CHECK(sl_pg_exec(pg, "SELECT 1", 0, NULL, NULL, &err) == -1);
    check_unavailable(&err);
    SL_CHECK_CONTAINS(err.msg, "connection lost");
    SL_CHECK_INT(sl_pg_session(pg), 0);
    /* The next one connects again, with the session settings again. */
    SL_CHECK(pg_test_int(pg, "SELECT pg_backend_pid()") != pid);
    SL_CHECK_INT(sl_pg_session(pg), 2);
    char tz[16];
    SL_CHECK_STR(pg_test_str(pg, "SHOW TimeZone", tz, sizeof(tz)), "UTC");
    sl_pg_destroy(pg);
}

SL_TEST(a_transaction_lost_with_its_connection_is_refused_until_rollback)
{
    sl_pg_t *pg = pg_test_handle(db(), 0);
    struct sl_err err;
    pg_test_exec(pg, "CREATE TABLE lost_txn (v int)");
    SL_REQUIRE(sl_pg_begin(pg, &err) == 0);
    pg_test_exec(pg, "INSERT INTO lost_txn VALUES (1)");
    kill_backend(pg);
    SL_CHECK(sl_pg_exec(pg, "INSERT INTO lost_txn VALUES (2)", 0, NULL, NULL, &err) == -1);
    check_unavailable(&err);
    SL_CHECK_CONTAINS(err.msg, "transaction is lost");
    /* Not in autocommit on a new connection: refused until the caller rolls back. */
    SL_CHECK(sl_pg_exec(pg, "INSERT INTO lost_txn VALUES (3)", 0, NULL, NULL, &err) == -1);
    check_unavailable(&err);
    SL_CHECK_CONTAINS(err.msg, "roll back");
    SL_CHECK(sl_pg_commit(pg, &err) == -1);
    SL_CHECK(sl_pg_begin(pg, &err) == -1);
    sl_pg_rollback(pg);
    SL_CHECK_INT(pg_test_int(pg, "SELECT count(*) FROM lost_txn"), 0);
    sl_pg_destroy(pg);
}

/* ---- COPY ---- */

static const char *const texts[] = {
    "plain",
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "back\\slash",
    "\\N",
    "\\.",
    "ends with a backslash\\",
    "",
    "unicode: é ✓ 😀 中文",
    "all\t\n\r\\\\ of them",
};
#define NTEXTS (sizeof(texts) / sizeof(texts[0]))

SL_TEST(copy_escaping_round_trips)
{
    sl_pg_t *pg = pg_test_handle(db(), 0);
    struct sl_err err;
    pg_test_exec(pg, "CREATE TABLE esc (id int, s text, b bytea, d double precision)");
    unsigned char bytes[256];
    for (int i = 0; i < 256; i++)
        bytes[i] = (unsigned char)i;
    /* Longer than the COPY buffer, with escapes across its boundaries. */
    size_t biglen = 3 * SL_PG_COPY_BUF + 5;
    char *big = malloc(biglen + 1);
    SL_REQUIRE(big);
    for (size_t i = 0; i < biglen; i++)
        big[i] = "ab\tc\\d\ne\r"[i % 9];
    big[biglen] = '\0';

    sl_pg_copy_t *c = sl_pg_copy_begin(pg, "esc", "id, s, b, d", &err);
    SL_REQUIRE(c);
    for (size_t i = 0; i < NTEXTS; i++) {
        sl_pg_copy_int(c, (long long)i);
        sl_pg_copy_text(c, texts[i]);
        sl_pg_copy_bytea(c, bytes, i == 0 ? sizeof(bytes) : i);
        sl_pg_copy_double(c, i == 1 ? NAN : i == 2 ? -INFINITY : 0.1 * (double)i);
        SL_REQUIRE(sl_pg_copy_row(c, &err) == 0);
    }
    sl_pg_copy_int(c, 100);
    sl_pg_copy_text(c, NULL);
    sl_pg_copy_bytea(c, NULL, 0);
    sl_pg_copy_null(c);
    SL_REQUIRE(sl_pg_copy_row(c, &err) == 0);
    sl_pg_copy_int(c, 101);
    sl_pg_copy_text(c, big);
    sl_pg_copy_bytea(c, "", 0);
    sl_pg_copy_double(c, 1e300);
    SL_REQUIRE(sl_pg_copy_row(c, &err) == 0);
    long long rows = 0;
    SL_REQUIRE(sl_pg_copy_end(c, &rows, &err) == 0);
    SL_CHECK_INT(rows, NTEXTS + 2);

    PGresult *r;
    SL_REQUIRE(sl_pg_exec(pg, "SELECT id, s, encode(b, 'hex'), d::text FROM esc ORDER BY id", 0,
                          NULL, &r, &err) == 0);
    SL_REQUIRE(PQntuples(r) == (int)NTEXTS + 2);
    for (size_t i = 0; i < NTEXTS; i++) {
        SL_CHECK_STR(PQgetvalue(r, (int)i, 1), texts[i]);
        char hex[2 * sizeof(bytes) + 1];
        size_t n = i == 0 ? sizeof(bytes) : i;
        for (size_t k = 0; k < n; k++)
            snprintf(hex + 2 * k, 3, "%02x", bytes[k]);
        SL_CHECK_STR(PQgetvalue(r, (int)i, 2), hex);
    }
    SL_CHECK_STR(PQgetvalue(r, 1, 3), "NaN");
    SL_CHECK_STR(PQgetvalue(r, 2, 3), "-Infinity");
    for (size_t i = 3; i < NTEXTS; i++) /* every bit of the double, through %.17g */
        SL_CHECK(strtod(PQgetvalue(r, (int)i, 3), NULL) == 0.1 * (double)i);
    SL_CHECK(PQgetisnull(r, (int)NTEXTS, 1));
    SL_CHECK(PQgetisnull(r, (int)NTEXTS, 2));
    SL_CHECK(PQgetisnull(r, (int)NTEXTS, 3));
    SL_CHECK(PQgetlength(r, (int)NTEXTS + 1, 1) == (int)biglen);
    SL_CHECK(memcmp(PQgetvalue(r, (int)NTEXTS + 1, 1), big, biglen) == 0);
    SL_CHECK_STR(PQgetvalue(r, (int)NTEXTS + 1, 2), "");
    SL_CHECK_STR(PQgetvalue(r, (int)NTEXTS + 1, 3), "1e+300");
    PQclear(r);
    free(big);
    sl_pg_destroy(pg);
}

SL_TEST(copy_refuses_a_nul_byte_and_keeps_nothing)
{
    sl_pg_t *pg = pg_test_handle(db(), 0);
    struct sl_err err;
    pg_test_exec(pg, "CREATE TABLE nul (s text)");
    sl_pg_copy_t *c = sl_pg_copy_begin(pg, "nul", "s", &err);
    SL_REQUIRE(c);
    sl_pg_copy_text(c, "fine");
    SL_REQUIRE(sl_pg_copy_row(c, &err) == 0);
    sl_pg_copy_textn(c, "a\0b", 3);
    SL_CHECK(sl_pg_copy_row(c, &err) == -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    SL_CHECK_CONTAINS(err.msg, "NUL");
    /* While the COPY is open the handle takes nothing else. */
    SL_CHECK(sl_pg_exec(pg, "SELECT 1", 0, NULL, NULL, &err) == -1);
    SL_CHECK_CONTAINS(err.msg, "COPY is in progress");
    SL_CHECK(sl_pg_copy_end(c, NULL, &err) == -1);
    SL_CHECK_CONTAINS(err.msg, "NUL");
    SL_CHECK_INT(pg_test_int(pg, "SELECT count(*) FROM nul"), 0);
    SL_CHECK_INT(sl_pg_session(pg), 1);
    sl_pg_destroy(pg);
}

SL_TEST(copy_reports_the_servers_error)
{
    sl_pg_t *pg = pg_test_handle(db(), 0);
    struct sl_err err;
    pg_test_exec(pg, "CREATE TABLE typed (v int)");
    sl_pg_copy_t *c = sl_pg_copy_begin(pg, "typed", "v", &err);
    SL_REQUIRE(c);
    sl_pg_copy_int(c, 1);
    SL_REQUIRE(sl_pg_copy_row(c, &err) == 0);
    sl_pg_copy_text(c, "not a number");
    SL_REQUIRE(sl_pg_copy_row(c, &err) == 0); /* the server has not seen it yet */
    SL_CHECK(sl_pg_copy_end(c, NULL, &err) == -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    SL_CHECK_CONTAINS(err.msg, "invalid input syntax for type integer");
    SL_CHECK_CONTAINS(err.msg, "22P02");
    SL_CHECK_INT(pg_test_int(pg, "SELECT count(*) FROM typed"), 0);
    sl_pg_copy_abort(NULL);
    c = sl_pg_copy_begin(pg, "typed", "v", &err);
    SL_REQUIRE(c);
    sl_pg_copy_int(c, 2);
    SL_REQUIRE(sl_pg_copy_row(c, &err) == 0);
    sl_pg_copy_abort(c);
    SL_CHECK_INT(pg_test_int(pg, "SELECT count(*) FROM typed"), 0);
    sl_pg_destroy(pg);
}

/* ---- the idempotent batch ---- */

static const struct sl_pg_upsert audit_spec = {
    .table = "audit",
    .staging = "audit_stage",
    .columns = "at, event_id, stage, outcome, topic, partition, kafka_offset, audit_topic, "
               "audit_partition, audit_offset",
    .conflict = "(audit_topic, audit_partition, audit_offset, at)",
    .before = "SELECT sluice_audit_partition_ensure(d) FROM "
              "(SELECT DISTINCT (at AT TIME ZONE 'UTC')::date AS d FROM audit_stage) AS days",
};

/* Audit rows first .. first+n-1 of topic `atopic`: three days, offsets as given. */
static void stage_rows(sl_pg_copy_t *c, const char *atopic, int first, int n)
{
    struct sl_err err;
    for (int i = first; i < first + n; i++) {
        char at[40], id[32];
        snprintf(at, sizeof(at), "2024-05-%02dT12:00:00.%06dZ", 1 + i % 3, i);
        snprintf(id, sizeof(id), "event-%d", i);
        sl_pg_copy_text(c, at);
        sl_pg_copy_text(c, id);
        sl_pg_copy_text(c, "validate");
        sl_pg_copy_text(c, "passed");
        sl_pg_copy_text(c, "sluice.ingress");
        sl_pg_copy_int(c, i % 4);
        sl_pg_copy_int(c, 1000 + i);
        sl_pg_copy_text(c, atopic);
        sl_pg_copy_int(c, i % 3);
        sl_pg_copy_int(c, i);
        SL_REQUIRE(sl_pg_copy_row(c, &err) == 0);
    }
}

static long long write_batch(sl_pg_t *pg, const char *atopic, int first, int n)
{
    struct sl_err err;
    long long inserted = -1;
    sl_pg_copy_t *c = sl_pg_upsert_begin(pg, &audit_spec, &err);
    if (!c) {
        sl_test_fail(__FILE__, __LINE__, "upsert: %s", err.msg);
        sl_test_abort_current();
    }
    stage_rows(c, atopic, first, n);
    if (sl_pg_copy_end(c, &inserted, &err) != 0) {
        sl_test_fail(__FILE__, __LINE__, "upsert: %s", err.msg);
        sl_test_abort_current();
    }
    return inserted;
}

static long long count_topic(sl_pg_t *pg, const char *atopic)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM audit WHERE audit_topic = '%s'", atopic);
    return pg_test_int(pg, sql);
}

SL_TEST(a_batch_written_twice_stays_once)
{
    sl_pg_t *pg = pg_test_handle(db(), 0);
    SL_CHECK_INT(write_batch(pg, "twice", 0, 300), 300);
    SL_CHECK_INT(write_batch(pg, "twice", 0, 300), 0);
    SL_CHECK_INT(count_topic(pg, "twice"), 300);
    /* Half old, half new (a crash in the middle of the next batch). */
    SL_CHECK_INT(write_batch(pg, "twice", 150, 300), 150);
    SL_CHECK_INT(count_topic(pg, "twice"), 450);
    /* The before statement made the days' partitions. */
    SL_CHECK_INT(pg_test_int(pg, "SELECT count(DISTINCT tableoid) FROM audit WHERE audit_topic = "
                                 "'twice'"),
                 3);
    /* The staging table is empty after each batch (ON COMMIT DELETE ROWS). */
    SL_CHECK_INT(pg_test_int(pg, "SELECT count(*) FROM audit_stage"), 0);
    sl_pg_destroy(pg);
}

SL_TEST(a_batch_joins_the_callers_transaction)
{
    sl_pg_t *pg = pg_test_handle(db(), 0);
    struct sl_err err;
    pg_test_exec(pg, "CREATE TABLE offsets (topic text PRIMARY KEY, next bigint)");
    SL_REQUIRE(sl_pg_begin(pg, &err) == 0);
    SL_CHECK_INT(write_batch(pg, "joined", 0, 20), 20);
    SL_CHECK_INT(write_batch(pg, "joined", 10, 20), 10);
    pg_test_exec(pg, "INSERT INTO offsets VALUES ('joined', 30)");
    sl_pg_rollback(pg);
    SL_CHECK_INT(count_topic(pg, "joined"), 0);
    SL_CHECK_INT(pg_test_int(pg, "SELECT count(*) FROM offsets"), 0);

    SL_REQUIRE(sl_pg_begin(pg, &err) == 0);
    SL_CHECK_INT(write_batch(pg, "joined", 0, 20), 20);
    SL_CHECK_INT(write_batch(pg, "joined", 10, 20), 10);
    pg_test_exec(pg, "INSERT INTO offsets VALUES ('joined', 30)");
    SL_REQUIRE(sl_pg_commit(pg, &err) == 0);
    SL_CHECK_INT(count_topic(pg, "joined"), 30);
    SL_CHECK_INT(pg_test_int(pg, "SELECT next FROM offsets"), 30);
    sl_pg_destroy(pg);
}

SL_TEST(a_failed_batch_keeps_nothing)
{
    sl_pg_t *pg = pg_test_handle(db(), 0);
    struct sl_err err;
    sl_pg_copy_t *c = sl_pg_upsert_begin(pg, &audit_spec, &err);
    SL_REQUIRE(c);
    stage_rows(c, "failed", 0, 10);
    /* A row without its stage: NOT NULL fails the INSERT of the whole batch. */
    sl_pg_copy_text(c, "2024-05-01T00:00:00Z");
    sl_pg_copy_text(c, "event-x");
    sl_pg_copy_null(c);
    sl_pg_copy_text(c, "passed");
    sl_pg_copy_text(c, "sluice.ingress");
    sl_pg_copy_int(c, 0);
    sl_pg_copy_int(c, 0);
    sl_pg_copy_text(c, "failed");
    sl_pg_copy_int(c, 0);
    sl_pg_copy_int(c, 99);
    SL_REQUIRE(sl_pg_copy_row(c, &err) == 0);
    SL_CHECK(sl_pg_copy_end(c, NULL, &err) == -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    SL_CHECK_CONTAINS(err.msg, "23502");
    SL_CHECK_INT(count_topic(pg, "failed"), 0);
    /* The handle is outside any transaction and takes the next batch. */
    SL_CHECK_INT(write_batch(pg, "failed", 0, 10), 10);
    sl_pg_destroy(pg);
}

SL_TEST(a_batch_after_a_lost_connection_makes_its_staging_table_again)
{
    sl_pg_t *pg = pg_test_handle(db(), 0);
    struct sl_err err;
    SL_CHECK_INT(write_batch(pg, "reconnect", 0, 10), 10);
    kill_backend(pg);
    SL_CHECK(sl_pg_upsert_begin(pg, &audit_spec, &err) == NULL);
    check_unavailable(&err);
    /* The temporary table died with the session; the next batch makes it again. */
    SL_CHECK_INT(write_batch(pg, "reconnect", 5, 10), 5);
    SL_CHECK_INT(count_topic(pg, "reconnect"), 15);
    SL_CHECK_INT(sl_pg_session(pg), 2);
    sl_pg_destroy(pg);
}

SL_TEST(settings_from_file_environment_and_default)
{
    struct sl_err err;
    const char *dsn;
    unsetenv("SLUICE_PG_DSN");
    SL_REQUIRE(sl_pg_settings(NULL, &dsn, &err) == 0);
    SL_CHECK_STR(dsn, SL_PG_DEFAULT_DSN);
    setenv("SLUICE_PG_DSN", "postgresql://env@127.0.0.1/envdb", 1);
    SL_REQUIRE(sl_pg_settings(NULL, &dsn, &err) == 0);
    SL_CHECK_STR(dsn, "postgresql://env@127.0.0.1/envdb");
    static const char yaml[] = "postgres:\n  dsn: \"host=db dbname=file\"\n";
    sl_conf_t *conf = sl_conf_load_string("p.yaml", ".", yaml, sizeof(yaml) - 1, &err);
    SL_REQUIRE(conf);
    SL_REQUIRE(sl_pg_settings(conf, &dsn, &err) == 0);
    SL_CHECK_STR(dsn, "host=db dbname=file");
    sl_conf_destroy(conf);
    /* A bad DSN: named by file and line, never quoted (it may hold the password). */
    static const char bad[] = "postgres:\n  dsn: \"postgresql://u:pa%zzss@h/db\"\n";
    conf = sl_conf_load_string("p.yaml", ".", bad, sizeof(bad) - 1, &err);
    SL_REQUIRE(conf);
    SL_CHECK(sl_pg_settings(conf, &dsn, &err) == -1);
    SL_CHECK_CONTAINS(err.msg, "p.yaml:2: postgres.dsn");
    SL_CHECK(!strstr(err.msg, "pa%zzss"));
    sl_conf_destroy(conf);
    setenv("SLUICE_PG_DSN", "host='unterminated", 1);
    SL_CHECK(sl_pg_settings(NULL, &dsn, &err) == -1);
    SL_CHECK_CONTAINS(err.msg, "SLUICE_PG_DSN");
    unsetenv("SLUICE_PG_DSN");
}

int main(void)
{
    int rc = sl_test_run_all();
    pg_test_cleanup();
    return rc;
}
