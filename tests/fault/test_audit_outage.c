/* A PostgreSQL outage under sluice-audit. The machine's PostgreSQL is shared and cannot be
 * stopped, so the test runs a private server (tests/fault/pg_private.sh: initdb into a
 * temporary directory, pg_ctl on a free port) and stops it (fast shutdown: every session is
 * cut) while records flow. While it is down the worker reports why on /readyz, keeps retrying
 * and commits no offset; records keep arriving on the topic. Once it is back, every record is
 * in the table exactly once and the offsets reach the end of the topic. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sink_harness.h"
#include "sl_id.h"
#include "sl_test.h"
#include "sl_testenv.h"

/* Large batches, so that the writer thread is in the middle of one when the server goes. */
#define LOOP_YAML                                                                                  \
    "audit:\n  loop: { batch_max_events: 10000, batch_max_wait: 200ms, retry_initial: 50ms, "      \
    "retry_max: 1s }\n"

/* What main() cleans up when a failed check left the test early. */
static char pg_dir[64];
static pid_t worker;

static void pg_private(const char *action, const char *dir, int port)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "%s/tests/fault/pg_private.sh %s %s %d", sl_test_source_dir(),
             action, dir, port);
    if (system(cmd) != 0) {
        sl_test_fail(__FILE__, __LINE__, "%s failed", cmd);
        sl_test_abort_current();
    }
}

/* Audit records first .. first+n-1, each its own event; waits for the broker's acks. */
static void produce_records(const struct sink_run *r, int first, int n)
{
    for (int i = first; i < first + n; i++) {
        char json[512], id[SL_UUID_STR_LEN + 1], event[32];
        snprintf(event, sizeof(event), "out-%05d", i);
        snprintf(json, sizeof(json),
                 "{\"event_id\":\"%s\",\"stage\":\"validate\",\"outcome\":\"passed\","
                 "\"source\":\"stripe\",\"type\":\"t\",\"topic\":\"in\",\"partition\":0,"
                 "\"offset\":%d,\"at\":\"2026-03-01T12:%02d:%02d.%03dZ\",\"seconds\":0.001}",
                 event, i, i / 60000 % 60, i / 1000 % 60, i % 1000);
        sl_uuid_v7(id);
        const char *const headers[] = {
            "ce_specversion", "1.0",     "ce_id",        id,  "ce_source",
            "sluice/test",    "ce_type", "sluice.audit", NULL};
        sink_produce_nowait(r->topic_audit, event, strlen(event), json, strlen(json), headers);
    }
    sink_produce_wait();
}

static long long wait_committed(const struct sink_run *r, long long want)
{
    long long v = sink_committed(r->group, r->topic_audit, 3);
    for (int waited = 0; v != want && waited < 60000; waited += 200) {
        usleep(200000);
        v = sink_committed(r->group, r->topic_audit, 3);
    }
    return v;
}

SL_TEST(a_postgres_outage_holds_the_batch_and_catches_up_exactly_once)
{
    enum { N1 = 2000, N2A = 3000, N2B = 3000, N = N1 + N2A + N2B };
    char dir[] = "/tmp/sluice-test-pg-XXXXXX", dsn[256], body[4096];
    SL_REQUIRE(mkdtemp(dir));
    snprintf(pg_dir, sizeof(pg_dir), "%s", dir);
    int port = sl_testenv_free_port();
    pg_private("start", dir, port);
    snprintf(dsn, sizeof(dsn), "postgresql://sluice@127.0.0.1:%d/postgres", port);
    struct sink_run r;
    sink_setup(&r, "audit-outage", dsn, LOOP_YAML);

    produce_records(&r, 0, N1);
    pid_t pid = worker = sink_start(&r, "sluice-audit", "audit-outage");
    SL_CHECK_INT(sink_wait_int(r.pg, "SELECT count(*) FROM audit", N1, 60000), N1);
    SL_CHECK_INT(wait_committed(&r, N1), N1);

    /* Records flow; the server goes down under them; more records come while it is down. */
    produce_records(&r, N1, N2A);
    pg_private("stop", dir, port);
    produce_records(&r, N1 + N2A, N2B);

    SL_CHECK_INT(sink_wait_ready(r.admin_port, 503, "postgres", body, sizeof(body), 60000), 503);
    SL_CHECK_CONTAINS(body, "waiting on a dependency");
    /* Nothing is committed while it is down, however often the batch is tried again. */
    const char *retries = "sluice_stage_retries_total{stage=\"audit\"}";
    double tried = sink_metric(r.admin_port, retries);
    long long committed = sink_committed(r.group, r.topic_audit, 3);
    SL_CHECK(sink_wait_metric(r.admin_port, retries, tried + 3, 60000) >= tried + 3);
    SL_CHECK_INT(sink_committed(r.group, r.topic_audit, 3), committed);
    SL_CHECK(committed >= N1 && committed < N);
    SL_CHECK(
        sink_metric(r.admin_port, "sluice_audit_flush_failures_total{error=\"unavailable\"}") >= 1);

    /* Back: everything arrives, once. */
    pg_private("start", dir, port);
    sink_teardown(&r); /* its session died with the server */
    r.pg = pg_test_handle(r.dsn, 0);
    SL_CHECK_INT(sink_wait_int(r.pg, "SELECT count(*) FROM audit", N, 120000), N);
    SL_CHECK_INT(pg_test_int(r.pg, "SELECT count(DISTINCT event_id) FROM audit"), N);
    SL_CHECK_INT(pg_test_int(r.pg, "SELECT count(DISTINCT (audit_partition, audit_offset)) FROM "
                                   "audit"),
                 N);
    SL_CHECK_INT(wait_committed(&r, N), N);
    SL_CHECK_INT(sink_wait_ready(r.admin_port, 200, NULL, body, sizeof(body), 30000), 200);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
    worker = 0;
    SL_CHECK_INT(pg_test_int(r.pg, "SELECT count(*) FROM audit"), N);
    sink_teardown(&r);
}

int main(void)
{
    int rc = sl_test_run_all();
    if (worker)
        sl_testenv_stop(worker, SIGKILL, 10000);
    if (pg_dir[0])
        pg_private("destroy", pg_dir, 0);
    sink_cleanup();
    return rc;
}
