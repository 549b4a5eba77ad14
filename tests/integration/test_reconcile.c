/* sluice-reconcile against the test broker and PostgreSQL, with the real sluice-audit between
 * them: audit records built by the stages' own producer (sl_audit_build) go to <prefix>audit,
 * sluice-audit stores them and keeps event_status, and sluice-reconcile (a child process)
 * reconciles. Checked: a pair routed to a destination that nobody delivers to becomes stuck
 * (stuck_at, the gauge, a report row) and sends exactly one alert event to
 * <prefix>deliver.<notify destination>; events with every known fate give exact hourly counts
 * with nothing unexplained, and `sluicectl reconcile report --json` agrees; the same records
 * again, a restart and a second replica running at once double nothing; a lost state shows as
 * unexplained with its explanation; bad report input is refused with exit 2. As the lag
 * exporter: with validate not running, the validate group's sluice_consumer_lag on reconcile's
 * /metrics rises as events are produced, with the oldest one's age; once a validate consumes
 * them, both fall to 0. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "sink_harness.h"
#include "sl_id.h"
#include "sl_record.h"
#include "sl_test.h"
#include "sl_testenv.h"

#define WAIT_MS     60000
#define SOURCE      "shop"
#define HEADERS_MAX 16 /* of one audit record */

/* Everything after sink_setup's postgres section: sluice-audit's loop, the destinations, and
 * the reconcile section with `deadline`. The overlap (how far back each run reads the audit
 * trail again) covers the longest audit transaction: a row's recorded_at is its
 * transaction's start, and it is visible only from the commit. On a loaded machine a batch
 * can take seconds between the two, so the test keeps a wide margin (production: 5 min). */
#define YAML_FMT                                                                                   \
    "audit:\n  loop: { batch_max_wait: 50ms, retry_initial: 50ms, retry_max: 1s }\n"               \
    "destinations:\n"                                                                              \
    "  crm: { url: \"http://127.0.0.1:9/crm\" }\n"                                                 \
    "  warehouse: { url: \"http://127.0.0.1:9/warehouse\" }\n"                                     \
    "  ops: { url: \"http://127.0.0.1:9/ops\" }\n"                                                 \
    "reconcile:\n  interval: 1s\n  deadline: %s\n  overlap: 60s\n  lag_interval: 1s\n"             \
    "  alerts: { destination: ops, dlq_growth: %d }\n"

struct rec_test {
    struct sink_run r;
    char topic_alerts[256];
    char admin[64];
    int admin_port;
    long long records; /* audit records produced */
};

static void setup(struct rec_test *t, const char *name, const char *deadline, int dlq_growth)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml), YAML_FMT, deadline, dlq_growth);
    sink_setup(&t->r, name, NULL, yaml);
    snprintf(t->topic_alerts, sizeof(t->topic_alerts), "%sdeliver.ops", t->r.prefix);
    sl_testenv_create_topic(t->topic_alerts, 1);
    t->records = 0;
}

static pid_t start_reconcile(struct rec_test *t, const char *log)
{
    t->admin_port = sl_testenv_free_port();
    snprintf(t->admin, sizeof(t->admin), "127.0.0.1:%d", t->admin_port);
    const char *args[] = {"--config", t->r.config, "--admin-listen", t->admin, NULL};
    return sl_testenv_spawn("sluice-reconcile", args, log);
}

/* One audit record built as the stages build it (sl_audit_build), keyed `key`, produced to
 * <prefix>audit without waiting for the ack. */
static void produce_audit(struct rec_test *t, const char *key, const struct sl_audit *a)
{
    struct sl_err err;
    char *value = NULL;
    size_t len = 0;
    rd_kafka_headers_t *hdrs = NULL;
    SL_REQUIRE(sl_audit_build(a, &value, &len, &hdrs, &err) == 0);
    /* The headers as name, value pairs for the harness's producer. */
    const char *pairs[2 * HEADERS_MAX + 1];
    char values[HEADERS_MAX][256];
    const char *name;
    const void *v;
    size_t vlen, k = 0;
    for (; k < HEADERS_MAX && rd_kafka_header_get_all(hdrs, k, &name, &v, &vlen) == 0; k++) {
        snprintf(values[k], sizeof(values[k]), "%.*s", (int)vlen, (const char *)v);
        pairs[2 * k] = name;
        pairs[2 * k + 1] = values[k];
    }
    pairs[2 * k] = NULL;
    sink_produce_nowait(t->r.topic_audit, key, strlen(key), value, len, pairs);
    rd_kafka_headers_destroy(hdrs);
    free(value);
    t->records++;
}

/* One audit record as a stage writes it (sl_audit_build) about event `id` of source SOURCE,
 * produced to <prefix>audit without waiting for the ack. `detail` is taken. */
static void audit(struct rec_test *t, const char *id, const char *stage, const char *outcome,
                  json_t *detail)
{
    struct sl_ce ce;
    struct sl_err err;
    sl_ce_init(&ce);
    SL_REQUIRE(sl_ce_set(&ce, "specversion", "1.0", &err) == 0 &&
               sl_ce_set(&ce, "id", id, &err) == 0 && sl_ce_set(&ce, "source", "test", &err) == 0 &&
               sl_ce_set(&ce, "type", "order.created", &err) == 0 &&
               sl_ce_set(&ce, SL_CE_SOURCE_NAME, SOURCE, &err) == 0);
    const struct sl_audit a = {
        .stage = stage,
        .ce = &ce,
        .topic = t->r.topic_ingress,
        .partition = 0,
        .offset = t->records,
        .outcome = outcome,
        .seconds = 0.001,
        .outputs = -1,
        .detail = detail,
    };
    produce_audit(t, id, &a);
    sl_ce_free(&ce);
    json_decref(detail);
}

/* The audit record sluice-deliver writes when the circuit of `dest` opens (no event). */
static void circuit_opened(struct rec_test *t, const char *dest)
{
    json_t *detail = json_pack("{s:s}", "destination", dest);
    const struct sl_audit a = {
        .stage = "deliver",
        .topic = t->r.topic_ingress,
        .partition = -1,
        .offset = -1,
        .outcome = "circuit_open",
        .reason = "circuit opened: failures over 50% in 30000 ms; probing in 30000 ms",
        .outputs = -1,
        .detail = detail,
    };
    produce_audit(t, dest, &a);
    json_decref(detail);
}

static void validated(struct rec_test *t, const char *id, const char *outcome)
{
    audit(t, id, "validate", outcome, NULL);
}

static void routed(struct rec_test *t, const char *id, const char *d1, const char *d2)
{
    json_t *to = json_pack("[s]", d1);
    if (d2)
        json_array_append_new(to, json_string(d2));
    audit(t, id, "route", "passed",
          json_pack("{s:o, s:[s]}", "destinations", to, "routes", "orders"));
}

static void delivered(struct rec_test *t, const char *id, const char *dest, const char *outcome)
{
    audit(t, id, "deliver", outcome,
          json_pack("{s:s, s:i, s:i}", "destination", dest, "attempt", 1, "status",
                    strcmp(outcome, "delivered") == 0 ? 200 : 400));
}

/* Waits until sluice-audit stored every record produced so far. */
static void wait_audit_stored(struct rec_test *t)
{
    sink_produce_wait();
    SL_CHECK_INT(sink_wait_int(t->r.pg, "SELECT count(*) FROM audit", t->records, WAIT_MS),
                 t->records);
}

/* Waits for two successful runs that began after this call (a run under way now may have
 * started before). */
static void wait_two_runs(struct rec_test *t)
{
    char sql[256];
    long long last = pg_test_int(t->r.pg, "SELECT coalesce(max(id), 0) FROM reconcile_runs");
    snprintf(sql, sizeof(sql),
             "SELECT least(count(*), 2) FROM reconcile_runs WHERE id > %lld AND status IN "
             "('balanced', 'unbalanced')",
             last);
    SL_REQUIRE(sink_wait_int(t->r.pg, sql, 2, WAIT_MS) == 2);
}

/* The sums of one (source, destination) over every hour: "accepted,delivered,dead_lettered,
 * filtered,duplicate,pending,stuck,unexplained". */
static const char *books(struct rec_test *t, const char *source, const char *dest, char *buf,
                         size_t size)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT concat_ws(',', sum(accepted), sum(delivered), sum(dead_lettered), "
             "sum(filtered), sum(duplicate), sum(pending), sum(stuck), sum(unexplained)) "
             "FROM reconcile_hourly WHERE source = '%s' AND destination = '%s'",
             source, dest);
    return pg_test_str(t->r.pg, sql, buf, size);
}

/* Runs <build>/bin/<bin> with `args`; returns its exit status, stdout into out (stderr goes to
 * ERR_FILE). */
#define ERR_FILE "test_reconcile.stderr"
static int run_bin(const char *bin, const char *args, char *out, size_t size)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "%s/bin/%s %s 2>%s/tests/" ERR_FILE, sl_test_binary_dir(), bin, args,
             sl_test_binary_dir());
    return sl_testenv_run(cmd, out, size);
}

static int sluicectl(const char *args, char *out, size_t size)
{
    return run_bin("sluicectl", args, out, size);
}

/* Whether the last run_bin()'s stderr contains `needle`. */
static void check_stderr(const char *what, const char *needle)
{
    char path[4200], err[4096];
    snprintf(path, sizeof(path), "%s/tests/" ERR_FILE, sl_test_binary_dir());
    FILE *f = fopen(path, "r");
    SL_REQUIRE(f);
    size_t n = fread(err, 1, sizeof(err) - 1, f);
    err[n] = '\0';
    fclose(f);
    if (!strstr(err, needle))
        sl_test_fail(__FILE__, __LINE__, "%s: stderr \"%s\" lacks \"%s\"", what, err, needle);
}

/* `sluicectl reconcile report --json` of the test's database. */
static json_t *report(struct rec_test *t)
{
    char args[4600], *out = malloc(1 << 20);
    SL_REQUIRE(out);
    snprintf(args, sizeof(args), "--config %s reconcile report --since 2h -o json", t->r.config);
    int rc = sluicectl(args, out, 1 << 20);
    json_t *j = json_loads(out, 0, NULL);
    free(out);
    SL_CHECK_INT(rc, 0);
    SL_REQUIRE(j);
    /* The documented shape: {"since", "hours": [...], "totals": {...}, "stuck": [...],
     * "last_run": {...} or null}. */
    const char *since = NULL;
    json_t *hours, *totals, *stuck, *last_run;
    SL_CHECK(json_unpack(j, "{s:s, s:o, s:o, s:o, s:o}", "since", &since, "hours", &hours, "totals",
                         &totals, "stuck", &stuck, "last_run", &last_run) == 0);
    SL_CHECK(json_is_array(hours) && json_is_object(totals) && json_is_array(stuck) &&
             (json_is_object(last_run) || json_is_null(last_run)));
    return j;
}

static long long total(const json_t *rep, const char *column)
{
    return json_integer_value(json_object_get(json_object_get(rep, "totals"), column));
}

/* The sum of `column` over the report's hour rows of one destination. */
static long long hours_sum(const json_t *rep, const char *dest, const char *column)
{
    long long sum = 0;
    size_t i;
    const json_t *row;
    json_array_foreach(json_object_get(rep, "hours"), i, row)
    {
        if (strcmp(json_string_value(json_object_get(row, "destination")), dest) == 0 &&
            strcmp(json_string_value(json_object_get(row, "source")), SOURCE) == 0)
            sum += json_integer_value(json_object_get(row, column));
    }
    return sum;
}

/* Every alert on <prefix>deliver.ops (expecting `want`, and seeing one too many). */
static size_t alerts(struct rec_test *t, size_t want, char *payload, size_t size, char *type,
                     char *source)
{
    rd_kafka_message_t *msgs[8];
    rd_kafka_t *consumer;
    size_t n = sink_read(t->topic_alerts, 1, msgs, want, &consumer);
    if (n > 0) {
        snprintf(payload, size, "%.*s", (int)msgs[0]->len, (const char *)msgs[0]->payload);
        SL_CHECK(sink_header(msgs[0], "ce_type", type, 64) != NULL);
        SL_CHECK(sink_header(msgs[0], "ce_source", source, 64) != NULL);
    }
    sink_free_records(msgs, n, consumer);
    return n;
}

SL_TEST(a_pair_nobody_delivers_becomes_stuck_and_alerts_once)
{
    struct rec_test t;
    char ok[SL_UUID_STR_LEN + 1], lost[SL_UUID_STR_LEN + 1], sql[512], buf[256];
    char payload[4096], type[64], source[64];
    setup(&t, "reconcile-stuck", "2s", 100);
    pid_t audit_pid = sink_start(&t.r, "sluice-audit", "reconcile-stuck-audit");
    /* One event delivered, one routed to crm, whose deliver worker is not running. */
    sl_uuid_v7(ok);
    sl_uuid_v7(lost);
    validated(&t, ok, "passed");
    routed(&t, ok, "crm", NULL);
    delivered(&t, ok, "crm", "delivered");
    validated(&t, lost, "passed");
    routed(&t, lost, "crm", NULL);
    wait_audit_stored(&t);
    pid_t rec = start_reconcile(&t, "reconcile-stuck");

    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM event_status WHERE event_id = '%s' AND destination = 'crm' "
             "AND state = 'pending' AND stuck_at IS NOT NULL",
             lost);
    SL_REQUIRE(sink_wait_int(t.r.pg, sql, 1, WAIT_MS) == 1);
    SL_CHECK(sink_wait_metric(t.admin_port, "sluice_reconcile_stuck_events", 1, WAIT_MS) >= 1);
    wait_two_runs(&t);
    SL_CHECK_STR(books(&t, SOURCE, "crm", buf, sizeof(buf)), "2,1,0,0,0,0,1,0");
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM event_status WHERE event_id = '%s' AND stuck_at IS NOT NULL",
             ok);
    SL_CHECK_INT(pg_test_int(t.r.pg, sql), 0);

    /* The report lists it. */
    json_t *rep = report(&t);
    const json_t *stuck = json_object_get(rep, "stuck");
    size_t i, found = 0;
    const json_t *row;
    json_array_foreach(stuck, i, row)
    {
        if (strcmp(json_string_value(json_object_get(row, "event_id")), lost) == 0) {
            found++;
            SL_CHECK_STR(json_string_value(json_object_get(row, "destination")), "crm");
            SL_CHECK_STR(json_string_value(json_object_get(row, "source")), SOURCE);
            SL_CHECK(json_integer_value(json_object_get(row, "age_seconds")) >= 2);
        }
    }
    SL_CHECK_INT(found, 1);
    SL_CHECK_INT(hours_sum(rep, "crm", "stuck"), 1);
    json_decref(rep);
    /* And so does the table for a terminal. */
    char args[4600], text[16384];
    snprintf(args, sizeof(args), "--config %s reconcile report --since 2h", t.r.config);
    SL_CHECK_INT(sluicectl(args, text, sizeof(text)), 0);
    SL_CHECK(strstr(text, lost) != NULL);
    SL_CHECK(strstr(text, "TOTAL") != NULL);
    SL_CHECK(strstr(text, "\nstuck: ") != NULL);

    /* Exactly one alert, about it, as a CloudEvent of reconcile. */
    SL_CHECK_INT(alerts(&t, 1, payload, sizeof(payload), type, source), 1);
    SL_CHECK_STR(type, "sluice.alert.stuck");
    SL_CHECK_STR(source, "sluice/reconcile");
    json_t *data = json_loads(payload, 0, NULL);
    SL_REQUIRE(data);
    SL_CHECK_STR(json_string_value(json_object_get(data, "event_id")), lost);
    SL_CHECK_STR(json_string_value(json_object_get(data, "destination")), "crm");
    json_decref(data);

    /* A restart sends nothing again: the pair was alerted, and the alert itself (pending for
     * ops, nobody delivers there either) becomes stuck without alerting about itself. */
    SL_CHECK_INT(sl_testenv_stop(rec, SIGTERM, 30000), 0);
    rec = start_reconcile(&t, "reconcile-stuck");
    SL_CHECK_INT(sink_wait_int(t.r.pg,
                               "SELECT count(*) FROM event_status WHERE source = "
                               "'sluice/reconcile' AND stuck_at IS NOT NULL",
                               1, WAIT_MS),
                 1);
    wait_two_runs(&t);
    SL_CHECK_INT(alerts(&t, 1, payload, sizeof(payload), type, source), 1);
    SL_CHECK_INT(pg_test_int(t.r.pg, "SELECT sum(alerts) FROM reconcile_runs"), 1);
    SL_CHECK_INT(
        pg_test_int(t.r.pg, "SELECT count(*) FROM reconcile_hourly WHERE unexplained <> 0"), 0);
    SL_CHECK_STR(books(&t, "sluice/reconcile", "ops", buf, sizeof(buf)), "1,0,0,0,0,0,1,0");

    SL_CHECK_INT(sl_testenv_stop(rec, SIGTERM, 30000), 0);
    SL_CHECK_INT(sl_testenv_stop(audit_pid, SIGTERM, 30000), 0);
    sink_teardown(&t.r);
}

SL_TEST(hourly_counts_balance_and_nothing_doubles)
{
    struct rec_test t;
    char id[8][SL_UUID_STR_LEN + 1], buf[256], sql[512];
    pid_t rec[2] = {0, 0};
    setup(&t, "reconcile-hourly", "1h", 100);
    pid_t audit_pid = sink_start(&t.r, "sluice-audit", "reconcile-hourly-audit");
    for (int pass = 0; pass < 2; pass++) {
        /* The second pass writes the same records again (new positions on the audit topic, as
         * a replay of the stages would): nothing may count twice. */
        for (int i = 0; pass == 0 && i < 8; i++)
            sl_uuid_v7(id[i]);
        validated(&t, id[0], "passed"); /* delivered */
        routed(&t, id[0], "crm", NULL);
        delivered(&t, id[0], "crm", "delivered");
        validated(&t, id[1], "passed"); /* dead-lettered by deliver */
        routed(&t, id[1], "crm", NULL);
        delivered(&t, id[1], "crm", "dead_lettered");
        validated(&t, id[2], "passed"); /* filtered: no route matched */
        audit(&t, id[2], "route", "filtered", NULL);
        validated(&t, id[3], "duplicate"); /* duplicate */
        validated(&t, id[4], "passed");    /* pending at crm */
        routed(&t, id[4], "crm", NULL);
        validated(&t, id[5], "passed"); /* fan-out: delivered to crm, pending at warehouse */
        routed(&t, id[5], "crm", "warehouse");
        delivered(&t, id[5], "crm", "delivered");
        validated(&t, id[6], "dead_lettered"); /* rejected by validate */
        validated(&t, id[7], "passed");        /* accepted, not routed yet */
        wait_audit_stored(&t);
        if (pass == 0)
            rec[0] = start_reconcile(&t, "reconcile-hourly");
        wait_two_runs(&t);

        /* accepted, delivered, dead_lettered, filtered, duplicate, pending, stuck, unexplained */
        SL_CHECK_STR(books(&t, SOURCE, "", buf, sizeof(buf)), "4,0,1,1,1,1,0,0");
        SL_CHECK_STR(books(&t, SOURCE, "crm", buf, sizeof(buf)), "4,2,1,0,0,1,0,0");
        SL_CHECK_STR(books(&t, SOURCE, "warehouse", buf, sizeof(buf)), "1,0,0,0,0,1,0,0");
        SL_CHECK_INT(pg_test_int(t.r.pg, "SELECT count(*) FROM event_status"), 9);
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM event_status WHERE event_id = '%s' AND destination = '' "
                 "AND state = 'pending'",
                 id[7]);
        SL_CHECK_INT(pg_test_int(t.r.pg, sql), 1);
        SL_CHECK_INT(pg_test_int(t.r.pg, "SELECT count(*) FROM reconcile_runs WHERE status <> "
                                         "'balanced' AND status <> 'running'"),
                     0);

        json_t *rep = report(&t);
        static const char *const columns[] = {"accepted", "delivered",  "dead_lettered",
                                              "filtered", "duplicate",  "pending",
                                              "stuck",    "unexplained"};
        static const long long want[] = {9, 2, 2, 1, 1, 3, 0, 0};
        for (size_t c = 0; c < sizeof(want) / sizeof(want[0]); c++) {
            SL_CHECK_INT(total(rep, columns[c]), want[c]);
            SL_CHECK_INT(hours_sum(rep, "", columns[c]) + hours_sum(rep, "crm", columns[c]) +
                             hours_sum(rep, "warehouse", columns[c]),
                         want[c]);
        }
        SL_CHECK_INT(json_array_size(json_object_get(rep, "stuck")), 0);
        SL_CHECK_STR(json_string_value(json_object_get(json_object_get(rep, "last_run"), "status")),
                     "balanced");
        json_decref(rep);

        if (pass == 0) {
            /* A restart, and a second replica running at the same time: they take turns. */
            SL_CHECK_INT(sl_testenv_stop(rec[0], SIGTERM, 30000), 0);
            rec[0] = start_reconcile(&t, "reconcile-hourly");
            rec[1] = start_reconcile(&t, "reconcile-hourly-2");
        }
    }
    SL_CHECK_INT(pg_test_int(t.r.pg, "SELECT count(*) FROM reconcile_events"), 8);
    SL_CHECK_INT(pg_test_int(t.r.pg, "SELECT count(*) FROM reconcile_routed"), 5);
    /* Incremental: only the very first run read the audit trail from its beginning. */
    SL_CHECK_INT(pg_test_int(t.r.pg, "SELECT count(*) FROM reconcile_runs WHERE read_from = "
                                     "'-infinity'"),
                 1);

    /* The event that was not routed yet is routed and delivered: its pending row before
     * routing goes, and it moves to its destination in the books. */
    routed(&t, id[7], "warehouse", NULL);
    delivered(&t, id[7], "warehouse", "delivered");
    wait_audit_stored(&t);
    wait_two_runs(&t);
    SL_CHECK_STR(books(&t, SOURCE, "", buf, sizeof(buf)), "3,0,1,1,1,0,0,0");
    SL_CHECK_STR(books(&t, SOURCE, "warehouse", buf, sizeof(buf)), "2,1,0,0,0,1,0,0");
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM event_status WHERE event_id = '%s' AND destination = ''", id[7]);
    SL_CHECK_INT(pg_test_int(t.r.pg, sql), 0);

    /* A state lost (as if sluice-audit had never written it): the books do not balance, and
     * say why. */
    snprintf(sql, sizeof(sql),
             "DELETE FROM event_status WHERE event_id = '%s' AND destination = 'crm'", id[4]);
    pg_test_exec(t.r.pg, sql);
    wait_two_runs(&t);
    SL_CHECK_STR(books(&t, SOURCE, "crm", buf, sizeof(buf)), "4,2,1,0,0,0,0,1");
    SL_CHECK_INT(pg_test_int(t.r.pg, "SELECT count(*) FROM reconcile_hourly WHERE destination = "
                                     "'crm' AND explanation LIKE '1 accepted event-destination "
                                     "pair(s) with no state in event_status%'"),
                 1);
    json_t *rep = report(&t);
    SL_CHECK_INT(total(rep, "unexplained"), 1);
    SL_CHECK_STR(json_string_value(json_object_get(json_object_get(rep, "last_run"), "status")),
                 "unbalanced");
    json_decref(rep);

    for (int i = 0; i < 2; i++)
        SL_CHECK_INT(sl_testenv_stop(rec[i], SIGTERM, 30000), 0);
    SL_CHECK_INT(sl_testenv_stop(audit_pid, SIGTERM, 30000), 0);
    sink_teardown(&t.r);
}

/* One dead letter from deliver, as sluice-deliver writes it, to <prefix>dlq. */
static void dead_letter(struct rec_test *t, int n)
{
    char id[32];
    snprintf(id, sizeof(id), "dl-%d", n);
    const char *const headers[] = {"ce_specversion",
                                   "1.0",
                                   "ce_id",
                                   id,
                                   "ce_source",
                                   "test",
                                   "ce_type",
                                   "test.event",
                                   "ce_sluicesource",
                                   SOURCE,
                                   "ce_sluicestage",
                                   "deliver",
                                   "ce_sluicereason",
                                   "HTTP 400",
                                   "ce_sluicedestination",
                                   "crm",
                                   NULL};
    sink_produce(t->r.topic_dlq, id, strlen(id), "{}", 2, headers);
}

SL_TEST(dead_letters_over_the_threshold_alert_once)
{
    struct rec_test t;
    char payload[4096], type[64], source[64];
    setup(&t, "reconcile-dlq", "1h", 2);
    pid_t rec = start_reconcile(&t, "reconcile-dlq");
    wait_two_runs(&t); /* the first run takes the baseline: no dead letters yet */
    pid_t dl = sink_start(&t.r, "sluice-deadletter", "reconcile-dlq-deadletter");
    for (int i = 0; i < 3; i++)
        dead_letter(&t, i);
    SL_REQUIRE(sink_wait_int(t.r.pg, "SELECT count(*) FROM dead_letters", 3, WAIT_MS) == 3);
    wait_two_runs(&t);
    SL_CHECK_INT(alerts(&t, 1, payload, sizeof(payload), type, source), 1);
    SL_CHECK_STR(type, "sluice.alert.dlq_growth");
    json_t *data = json_loads(payload, 0, NULL);
    SL_REQUIRE(data);
    SL_CHECK_INT(json_integer_value(json_object_get(data, "new_dead_letters")), 3);
    SL_CHECK_INT(json_integer_value(json_object_get(data, "threshold")), 2);
    SL_CHECK_INT(json_integer_value(json_object_get(json_object_get(data, "by_stage"), "deliver")),
                 3);
    json_decref(data);
    /* Growth under the threshold: no second alert. */
    dead_letter(&t, 3);
    SL_REQUIRE(sink_wait_int(t.r.pg, "SELECT count(*) FROM dead_letters", 4, WAIT_MS) == 4);
    wait_two_runs(&t);
    SL_CHECK_INT(alerts(&t, 1, payload, sizeof(payload), type, source), 1);
    SL_CHECK_INT(pg_test_int(t.r.pg, "SELECT sum(dead_letters) FROM reconcile_runs"), 4);
    SL_CHECK_INT(sink_metric(t.admin_port, "sluice_reconcile_alerts_total{type=\"dlq_growth\"}"),
                 1);
    SL_CHECK_INT(sl_testenv_stop(rec, SIGTERM, 30000), 0);
    SL_CHECK_INT(sl_testenv_stop(dl, SIGTERM, 30000), 0);
    sink_teardown(&t.r);
}

SL_TEST(an_opened_circuit_alerts_once)
{
    struct rec_test t;
    char payload[4096], type[64], source[64];
    setup(&t, "reconcile-circuit", "1h", 100);
    pid_t audit_pid = sink_start(&t.r, "sluice-audit", "reconcile-circuit-audit");
    pid_t rec = start_reconcile(&t, "reconcile-circuit");
    wait_two_runs(&t);
    /* crm's circuit opened; so did the alert destination's own, which gets no alert (it would
     * wait behind that very circuit). */
    circuit_opened(&t, "crm");
    circuit_opened(&t, "ops");
    wait_audit_stored(&t);
    wait_two_runs(&t);
    SL_CHECK_INT(alerts(&t, 1, payload, sizeof(payload), type, source), 1);
    SL_CHECK_STR(type, "sluice.alert.circuit_open");
    SL_CHECK_STR(source, "sluice/reconcile");
    json_t *data = json_loads(payload, 0, NULL);
    SL_REQUIRE(data);
    SL_CHECK_STR(json_string_value(json_object_get(data, "destination")), "crm");
    SL_CHECK_CONTAINS(json_string_value(json_object_get(data, "reason")), "circuit opened");
    json_decref(data);
    SL_CHECK_INT(sink_metric(t.admin_port, "sluice_reconcile_alerts_total{type=\"circuit_open\"}"),
                 1);
    /* A restart reads the record again (the overlap): still one alert. */
    SL_CHECK_INT(sl_testenv_stop(rec, SIGTERM, 30000), 0);
    rec = start_reconcile(&t, "reconcile-circuit-2");
    wait_two_runs(&t);
    SL_CHECK_INT(alerts(&t, 1, payload, sizeof(payload), type, source), 1);
    SL_CHECK_INT(sl_testenv_stop(rec, SIGTERM, 30000), 0);
    SL_CHECK_INT(sl_testenv_stop(audit_pid, SIGTERM, 30000), 0);
    sink_teardown(&t.r);
}

/* The sum over the 3 partitions of <prefix>ingress of the validate group's series `name` on
 * reconcile's /metrics (-1 while one is missing). */
static double validate_lag(const struct rec_test *t, const char *name)
{
    double sum = 0;
    for (int p = 0; p < 3; p++) {
        char series[1024];
        snprintf(series, sizeof(series),
                 "%s{stage=\"validate\",group=\"%svalidate\",topic=\"%s\",partition=\"%d\","
                 "destination=\"\"}",
                 name, t->r.prefix, t->r.topic_ingress, p);
        double v = sink_metric(t->admin_port, series);
        if (v < 0)
            return -1;
        sum += v;
    }
    return sum;
}

/* Polls validate_lag() until it is `want`; returns the last value. */
static double wait_validate_lag(const struct rec_test *t, double want)
{
    double v = validate_lag(t, "sluice_consumer_lag");
    for (int waited = 0; v != want && waited < WAIT_MS; waited += 100) {
        usleep(100000);
        v = validate_lag(t, "sluice_consumer_lag");
    }
    return v;
}

SL_TEST(lag_of_a_stopped_stage_rises_and_falls_once_it_consumes)
{
    struct rec_test t;
    setup(&t, "lag", "1h", 1000);
    pid_t rec = start_reconcile(&t, "reconcile-lag.log");
    sl_testenv_produce_ingress(t.r.topic_ingress, SOURCE, "lag-a-", "lag-a-", 0, 10);
    SL_CHECK(wait_validate_lag(&t, 10) == 10);
    sl_testenv_produce_ingress(t.r.topic_ingress, SOURCE, "lag-b-", "lag-b-", 0, 10);
    SL_CHECK(wait_validate_lag(&t, 20) == 20);
    /* The records are older than zero by the time they are read. */
    SL_CHECK(validate_lag(&t, "sluice_consumer_lag_seconds") > 0);

    /* A validate (the pass-through tool in its group) consumes them. */
    char admin[64];
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", sl_testenv_free_port());
    const char *args[] = {"--config", t.r.config, "--admin-listen", admin, NULL};
    setenv("SLUICE_PASSTHROUGH_AS", "validate", 1);
    pid_t stage = sl_testenv_spawn("sluice-passthrough", args, "passthrough-lag.log");
    unsetenv("SLUICE_PASSTHROUGH_AS");
    SL_CHECK(wait_validate_lag(&t, 0) == 0);
    SL_CHECK(validate_lag(&t, "sluice_consumer_lag_seconds") == 0);
    SL_CHECK_INT(sl_testenv_stop(stage, SIGTERM, 30000), 0);
    SL_CHECK_INT(sl_testenv_stop(rec, SIGTERM, 30000), 0);
    sink_teardown(&t.r);
}

SL_TEST(bad_input_is_refused_with_exit_2)
{
    char out[4096];
    static const char *const bad[] = {
        "reconcile report --since yesterday", "reconcile report --since 2026-13-01T00:00:00Z",
        "reconcile report --bogus", "reconcile report --since", "reconcile summary"};
    static const char *const says[] = {
        "--since 'yesterday' is neither an RFC 3339 time nor a duration",
        "--since '2026-13-01T00:00:00Z' is neither", "unexpected argument '--bogus'",
        "unexpected argument '--since'", "unknown subcommand 'summary'"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        SL_CHECK_INT(sluicectl(bad[i], out, sizeof(out)), 2);
        check_stderr(bad[i], says[i]);
    }
    /* The worker refuses a bad reconcile section with the file, line and key. */
    char config[4096], args[4200];
    sl_testenv_config("sluice-test-reconcile-bad.",
                      "destinations:\n  crm: { url: \"http://127.0.0.1:9/crm\" }\n"
                      "reconcile:\n  alerts: { destination: ops }\n",
                      config, sizeof(config));
    snprintf(args, sizeof(args), "--config %s", config);
    SL_CHECK_INT(run_bin("sluice-reconcile", args, out, sizeof(out)), 2);
    check_stderr("sluice-reconcile", ":8: reconcile.alerts.destination: 'ops' is not a configured "
                                     "destination");
}

int main(void)
{
    int rc = sl_test_run_all();
    sink_cleanup();
    return rc;
}
