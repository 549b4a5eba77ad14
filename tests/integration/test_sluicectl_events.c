/* `sluicectl events show` and `sluicectl dlq list|show|replay` against the real workers: a
 * pipeline of its own (topic prefix, Postgres schema, destination name) with sluice-route,
 * sluice-deliver, sluice-audit and sluice-deadletter as child processes and destsim as the
 * destination. Events go into <prefix>normalized; destsim's rules (per Idempotency-Key)
 * decide each event's fate. Checked:
 *   - the timeline of a delivered, a retried-then-delivered (500 then 200) and a dead-lettered
 *     (400) event, in text and --json: the stages, each attempt with its HTTP status, the
 *     dead letter, and the outcome per destination;
 *   - a dead letter replayed after destsim was switched to 200: --dry-run changes nothing (the
 *     deliver topic's end offsets, dead_letters, dead_letter_replays), the replay is delivered
 *     2xx exactly once for its Idempotency-Key, the letter is 'replayed' with a
 *     dead_letter_replays row of attempt 2, and a second replay without --force is refused;
 *   - bad input: unknown ids, a bad --since, an unknown stage, an unreachable database, no
 *     pipeline file for a replay: a clear message and exit 1 (failure) or 2 (usage). */
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "destsim_client.h"
#include "sl_cloudevent.h"
#include "sink_harness.h"
#include "sl_test.h"
#include "sl_testenv.h"

#define WAIT_MS       90000
#define OUT_MAX       (1 << 20)
#define DELIVER_PARTS 3

static const char *const workers[] = {"sluice-validate", "sluice-transform",  "sluice-route",
                                      "sluice-audit",    "sluice-deadletter", "sluice-deliver"};
#define VALIDATE  0 /* its index in workers[] */
#define N_WORKERS (sizeof(workers) / sizeof(workers[0]))

/* The one pipeline every test of this file uses, started by the first test that needs it. */
static struct {
    bool up;
    struct sink_run r;
    destsim_t *sim;
    char dest[32];
    char topic_normalized[256], topic_deliver[256];
    char schema[1024]; /* the JSON Schema of order.created, which a test rewrites */
    pid_t pids[N_WORKERS];
    char groups[N_WORKERS][128], admins[N_WORKERS][64];
} run;

/* Order events must have these members. */
static void write_schema(const char *required)
{
    FILE *f = fopen(run.schema, "w");
    SL_REQUIRE(f);
    fprintf(f,
            "{\"type\": \"object\", \"required\": [%s], \"properties\": "
            "{\"amount_minor\": {\"type\": \"integer\"}}}\n",
            required);
    SL_REQUIRE(fclose(f) == 0);
}

static void start_worker(size_t i)
{
    char log[64];
    snprintf(log, sizeof(log), "sluicectl-events-%s", workers[i] + strlen("sluice-"));
    const char *args[] = {"--config",    run.r.config, "--admin-listen", run.admins[i], "--group",
                          run.groups[i], NULL};
    if (strcmp(workers[i], "sluice-deliver") == 0)
        args[4] = NULL; /* its groups are per destination */
    run.pids[i] = sl_testenv_spawn(workers[i], args, log);
}

static void start_pipeline(void)
{
    if (run.up)
        return;
    struct sl_err err;
    char id[96], yaml[6144];
    run.sim = destsim_start(NULL, NULL, &err);
    if (!run.sim) {
        sl_test_fail(__FILE__, __LINE__, "destsim: %s", err.msg);
        sl_test_abort_current();
    }
    sl_testenv_unique("sink", id, sizeof(id));
    snprintf(run.dest, sizeof(run.dest), "sink-%s", id + strlen(id) - 12);
    snprintf(run.schema, sizeof(run.schema), "%s/tests/%s.schema.json", sl_test_binary_dir(), id);
    write_schema("\"order\", \"amount_minor\"");
    snprintf(yaml, sizeof(yaml),
             "sources:\n  shop:\n    verify: { scheme: none }\n"
             "    schemas: { order.created: \"%s\" }\n"
             "audit:\n  loop: { batch_max_wait: 50ms, retry_initial: 50ms, retry_max: 1s }\n"
             "deadletter:\n  loop: { batch_max_wait: 50ms, retry_initial: 50ms, retry_max: 1s }\n"
             "destinations:\n  %s:\n    url: \"%s/hook\"\n"
             "    retry: { max_attempts: 3, initial: 50ms, max: 200ms, jitter: none }\n"
             "routes:\n  - name: all\n    when: 'true'\n    to: %s\n",
             run.schema, run.dest, destsim_url(run.sim), run.dest);
    sink_setup(&run.r, "sluicectl-events", NULL, yaml);
    snprintf(run.topic_normalized, sizeof(run.topic_normalized), "%snormalized", run.r.prefix);
    snprintf(run.topic_deliver, sizeof(run.topic_deliver), "%sdeliver.%s", run.r.prefix, run.dest);
    char topic[256];
    sl_testenv_create_topic(run.topic_normalized, 3);
    sl_testenv_create_topic(run.topic_deliver, DELIVER_PARTS);
    snprintf(topic, sizeof(topic), "%soutcomes", run.r.prefix);
    sl_testenv_create_topic(topic, 1);
    for (size_t i = 0; i < N_WORKERS; i++) {
        snprintf(run.admins[i], sizeof(run.admins[i]), "127.0.0.1:%d", sl_testenv_free_port());
        sl_testenv_unique("group", run.groups[i], sizeof(run.groups[i]));
        start_worker(i);
    }
    run.up = true;
}

static void stop_pipeline(void)
{
    if (!run.up)
        return;
    for (size_t i = 0; i < N_WORKERS; i++)
        sl_testenv_stop(run.pids[i], SIGTERM, 60000);
    destsim_stop(run.sim);
    sink_teardown(&run.r);
    unlink(run.schema);
    run.up = false;
}

/* A fresh event id for `what`. */
static void event_id(const char *what, char *buf, size_t size)
{
    sl_testenv_unique(what, buf, size);
}

/* The Idempotency-Key deliver sends for event `id` (of produce_data's sources). */
static void idem_key(const char *id, char *buf, size_t size)
{
    sl_testenv_idempotency_key("shop", "test", id, run.dest, buf, size);
}

/* An order event of source "shop" into <prefix>ingress, as sluice-ingress writes it (the event
 * id is also its idempotency key, so validate's dedup claims it). */
static void produce_data(const char *id, const char *data)
{
    const char *const headers[] = {"ce_specversion",
                                   "1.0",
                                   "ce_id",
                                   id,
                                   "ce_source",
                                   "test",
                                   "ce_type",
                                   "order.created",
                                   "content-type",
                                   "application/json",
                                   "ce_" SL_CE_SOURCE_NAME,
                                   "shop",
                                   "ce_" SL_CE_IDEMPOTENCY_KEY,
                                   id,
                                   NULL};
    sink_produce(run.r.topic_ingress, id, strlen(id), data, strlen(data), headers);
}

static void produce(const char *id)
{
    produce_data(id, "{\"order\":\"o-1\",\"amount_minor\":1200}");
}

/* A number from the test's database: the first column of the SQL that `fmt` makes. */
__attribute__((format(printf, 1, 2))) static long long db_int(const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    SL_REQUIRE(n > 0 && (size_t)n < sizeof(sql));
    return pg_test_int(run.r.pg, sql);
}

/* Waits until the audit trail holds the route row and one final deliver row of `id`, and (for
 * a dead-lettered event) its dead letter. */
static void wait_final(const char *id, const char *outcome)
{
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT (SELECT count(*) FROM audit WHERE event_id = '%s' AND stage = 'route') + "
             "(SELECT count(*) FROM audit WHERE event_id = '%s' AND stage = 'deliver' AND "
             "outcome = '%s') + (SELECT count(*) FROM dead_letters WHERE event_id = '%s')",
             id, id, outcome, id);
    long long want = strcmp(outcome, "dead_lettered") == 0 ? 3 : 2;
    SL_CHECK_INT(sink_wait_int(run.r.pg, sql, want, WAIT_MS), want);
}

/* Runs sluicectl with the pipeline file (when `with_config`) and `args`; returns its exit
 * status, stdout into out and stderr into err (both NUL-terminated). */
static int sluicectl(bool with_config, const char *env, const char *args, char *out, char *err)
{
    char cmd[16384], errfile[4200];
    snprintf(errfile, sizeof(errfile), "%s/tests/test_sluicectl_events.stderr",
             sl_test_binary_dir());
    snprintf(cmd, sizeof(cmd), "env -u SLUICE_CONFIG %s %s/bin/sluicectl %s%s %s 2>%s",
             env ? env : "", sl_test_binary_dir(), with_config ? "--config " : "",
             with_config ? run.r.config : "", args, errfile);
    FILE *p = popen(cmd, "r");
    SL_REQUIRE(p);
    size_t n = fread(out, 1, OUT_MAX - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    FILE *f = fopen(errfile, "r");
    SL_REQUIRE(f);
    n = fread(err, 1, OUT_MAX - 1, f);
    err[n] = '\0';
    fclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct io {
    char *out, *err;
};

static struct io io_new(void)
{
    struct io io = {malloc(OUT_MAX), malloc(OUT_MAX)};
    SL_REQUIRE(io.out && io.err);
    return io;
}

static void io_free(struct io *io)
{
    free(io->out);
    free(io->err);
}

/* `events show ID --json`, which must succeed. */
static json_t *show_json(const char *id)
{
    struct io io = io_new();
    char args[256];
    snprintf(args, sizeof(args), "events show %s --json", id);
    int rc = sluicectl(true, NULL, args, io.out, io.err);
    json_t *doc = json_loads(io.out, 0, NULL);
    if (rc != 0 || !doc)
        sl_test_fail(__FILE__, __LINE__, "events show %s --json: exit %d: %s%s", id, rc, io.out,
                     io.err);
    io_free(&io);
    SL_REQUIRE(doc);
    /* The documented shape. */
    json_t *timeline, *dead_letters, *event_status, *destinations, *source, *type;
    const char *event_id = NULL;
    SL_CHECK(json_unpack(doc, "{s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "event_id", &event_id,
                         "source", &source, "type", &type, "timeline", &timeline, "dead_letters",
                         &dead_letters, "event_status", &event_status, "destinations",
                         &destinations) == 0);
    SL_CHECK(json_is_array(timeline) && json_is_array(dead_letters) &&
             json_is_array(event_status) && json_is_array(destinations));
    return doc;
}

/* The deliver rows of a timeline, in order. */
static size_t deliver_rows(const json_t *doc, const json_t **rows, size_t max)
{
    size_t i, n = 0;
    const json_t *row;
    json_array_foreach(json_object_get(doc, "timeline"), i, row)
    {
        const char *stage = json_string_value(json_object_get(row, "stage"));
        if (stage && strcmp(stage, "deliver") == 0 && n < max)
            rows[n++] = row;
    }
    return n;
}

static bool has_stage(const json_t *doc, const char *stage, const char *outcome)
{
    size_t i;
    const json_t *row;
    json_array_foreach(json_object_get(doc, "timeline"), i, row)
    {
        if (strcmp(json_string_value(json_object_get(row, "stage")), stage) == 0 &&
            strcmp(json_string_value(json_object_get(row, "outcome")), outcome) == 0)
            return true;
    }
    return false;
}

static void check_attempt(const json_t *row, int attempt, int status, const char *outcome)
{
    SL_CHECK_STR(json_string_value(json_object_get(row, "destination")), run.dest);
    SL_CHECK_INT(json_integer_value(json_object_get(row, "attempt")), attempt);
    SL_CHECK_INT(json_integer_value(json_object_get(row, "status")), status);
    SL_CHECK_STR(json_string_value(json_object_get(row, "outcome")), outcome);
    SL_CHECK(json_is_number(json_object_get(row, "latency_ms")));
}

/* The summary entry of the run's destination. */
static const json_t *dest_summary(const json_t *doc)
{
    const json_t *dests = json_object_get(doc, "destinations");
    SL_CHECK_INT(json_array_size(dests), 1);
    const json_t *d = json_array_get(dests, 0);
    SL_REQUIRE(d);
    SL_CHECK_STR(json_string_value(json_object_get(d, "destination")), run.dest);
    return d;
}

/* The text output of `events show ID`, which must succeed, into io->out. */
static void show_text(const char *id, struct io *io)
{
    char args[256];
    snprintf(args, sizeof(args), "events show %s", id);
    SL_CHECK_INT(sluicectl(true, NULL, args, io->out, io->err), 0);
    printf("$ sluicectl %s\n%s", args, io->out); /* for whoever reads the test's log */
    SL_CHECK_CONTAINS(io->out, "TIME");
    SL_CHECK_CONTAINS(io->out, "STAGE");
    SL_CHECK_CONTAINS(io->out, "OUTCOME");
    SL_CHECK_CONTAINS(io->out, id);
}

/* The line of the text output that starts with the destination's name (the final line). */
static const char *final_line(const char *out, char *buf, size_t size)
{
    char head[64];
    snprintf(head, sizeof(head), "\n%s ", run.dest);
    const char *p = strstr(out, head);
    if (!p)
        return "";
    p++;
    size_t n = strcspn(p, "\n");
    snprintf(buf, size, "%.*s", (int)(n < size ? n : size - 1), p);
    return buf;
}

/* Reads `topic` from the beginning until the record of event `id` with ce_sluiceattempt
 * `attempt` came (WAIT_MS at most); checks that it carries none of the dead letter's
 * extensions, its content type and key. */
static void check_replayed_record(const char *topic, int partitions, const char *id,
                                  const char *attempt)
{
    rd_kafka_t *c = sl_testenv_consumer(topic, partitions);
    bool found = false;
    char buf[256];
    for (int waited = 0; !found && waited < WAIT_MS; waited += 500) {
        rd_kafka_message_t *m = NULL;
        if (sl_testenv_consume(c, &m, 1, 500) == 0)
            continue;
        const char *got = sink_header(m, "ce_id", buf, sizeof(buf));
        if (got && strcmp(got, id) == 0 && sink_header(m, "ce_" SL_CE_ATTEMPT, buf, sizeof(buf)) &&
            strcmp(buf, attempt) == 0) {
            found = true;
            SL_CHECK(!sink_header(m, "ce_" SL_CE_STAGE, buf, sizeof(buf)));
            SL_CHECK(!sink_header(m, "ce_" SL_CE_REASON, buf, sizeof(buf)));
            SL_CHECK(!sink_header(m, "ce_" SL_CE_ERRORS, buf, sizeof(buf)));
            SL_CHECK_STR(sink_header(m, "content-type", buf, sizeof(buf)), "application/json");
            SL_CHECK(m->key_len == strlen(id) && memcmp(m->key, id, m->key_len) == 0);
        }
        rd_kafka_message_destroy(m);
    }
    SL_CHECK(found);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
}

SL_TEST(events_show_delivered_retried_dead_lettered)
{
    struct sl_err err;
    char ok[96], retried[96], dead[96], rules[1024], k1[160], k2[160], line[512];
    start_pipeline();
    event_id("ev-ok", ok, sizeof(ok));
    event_id("ev-retry", retried, sizeof(retried));
    event_id("ev-dead", dead, sizeof(dead));
    idem_key(retried, k1, sizeof(k1));
    idem_key(dead, k2, sizeof(k2));
    snprintf(rules, sizeof(rules), "key=%s status=500 times=1\nkey=%s status=400\nstatus=200\n", k1,
             k2);
    SL_REQUIRE(destsim_set_rules(run.sim, rules, &err) == 0);
    produce(ok);
    produce(retried);
    produce(dead);
    wait_final(ok, "delivered");
    wait_final(retried, "delivered");
    wait_final(dead, "dead_lettered");

    /* (a) delivered at the first attempt. */
    json_t *doc = show_json(ok);
    const json_t *rows[8];
    SL_CHECK_STR(json_string_value(json_object_get(doc, "event_id")), ok);
    SL_CHECK(has_stage(doc, "validate", "passed"));
    SL_CHECK(has_stage(doc, "transform", "passed"));
    SL_CHECK(has_stage(doc, "route", "passed"));
    SL_CHECK_INT(deliver_rows(doc, rows, 8), 1);
    check_attempt(rows[0], 1, 200, "delivered");
    const json_t *d = dest_summary(doc);
    SL_CHECK_STR(json_string_value(json_object_get(d, "outcome")), "delivered");
    SL_CHECK_INT(json_integer_value(json_object_get(d, "attempts")), 1);
    SL_CHECK_INT(json_integer_value(json_object_get(d, "last_status")), 200);
    SL_CHECK_STR(json_string_value(json_object_get(d, "state")), "delivered");
    SL_CHECK_INT(json_array_size(json_object_get(doc, "dead_letters")), 0);
    json_decref(doc);
    struct io io = io_new();
    show_text(ok, &io);
    SL_CHECK_CONTAINS(io.out, "validate");
    SL_CHECK_CONTAINS(io.out, "transform");
    SL_CHECK_CONTAINS(io.out, "route");
    SL_CHECK_CONTAINS(io.out, "attempt 1: HTTP 200");
    SL_CHECK_CONTAINS(final_line(io.out, line, sizeof(line)), "delivered");
    SL_CHECK_CONTAINS(line, "after 1 attempt, last HTTP 200");

    /* (b) 500, then 200 at the second attempt. */
    doc = show_json(retried);
    SL_CHECK_INT(deliver_rows(doc, rows, 8), 2);
    check_attempt(rows[0], 1, 500, "retry");
    check_attempt(rows[1], 2, 200, "delivered");
    d = dest_summary(doc);
    SL_CHECK_STR(json_string_value(json_object_get(d, "outcome")), "delivered");
    SL_CHECK_INT(json_integer_value(json_object_get(d, "attempts")), 2);
    json_decref(doc);
    show_text(retried, &io);
    SL_CHECK_CONTAINS(io.out, "attempt 1: HTTP 500");
    SL_CHECK_CONTAINS(io.out, "attempt 2: HTTP 200");
    SL_CHECK_CONTAINS(io.out, "retry");
    SL_CHECK_CONTAINS(final_line(io.out, line, sizeof(line)), "delivered");
    SL_CHECK_CONTAINS(line, "after 2 attempts, last HTTP 200");

    /* (c) 400: dead-lettered at the first attempt. */
    doc = show_json(dead);
    SL_CHECK_INT(deliver_rows(doc, rows, 8), 1);
    check_attempt(rows[0], 1, 400, "dead_lettered");
    d = dest_summary(doc);
    SL_CHECK_STR(json_string_value(json_object_get(d, "outcome")), "dead_lettered");
    const json_t *dls = json_object_get(doc, "dead_letters");
    SL_CHECK_INT(json_array_size(dls), 1);
    SL_CHECK_STR(json_string_value(json_object_get(json_array_get(dls, 0), "stage")), "deliver");
    SL_CHECK_STR(json_string_value(json_object_get(json_array_get(dls, 0), "destination")),
                 run.dest);
    SL_CHECK_STR(json_string_value(json_object_get(json_array_get(dls, 0), "status")), "new");
    json_decref(doc);
    show_text(dead, &io);
    SL_CHECK_CONTAINS(io.out, "attempt 1: HTTP 400");
    SL_CHECK_CONTAINS(io.out, "dead letters:");
    SL_CHECK_CONTAINS(final_line(io.out, line, sizeof(line)), "dead_lettered");

    /* An operator decides the 400 needs no replay: discarded, once; a replay then needs
     * --force. */
    char args[128];
    long long dl = db_int("SELECT id FROM dead_letters WHERE event_id = '%s'", dead);
    snprintf(args, sizeof(args), "dlq discard --by tester %lld", dl);
    SL_CHECK_INT(sluicectl(true, NULL, args, io.out, io.err), 0);
    SL_CHECK_CONTAINS(io.out, "discarded by tester");
    SL_CHECK_INT(db_int("SELECT count(*) FROM dead_letters WHERE id = %lld AND status = "
                        "'discarded' AND status_by = 'tester' AND status_at IS NOT NULL",
                        dl),
                 1);
    SL_CHECK_INT(sluicectl(true, NULL, args, io.out, io.err), 1);
    SL_CHECK_CONTAINS(io.err, "already discarded");
    snprintf(args, sizeof(args), "dlq replay --by tester %lld", dl);
    SL_CHECK_INT(sluicectl(true, NULL, args, io.out, io.err), 1);
    SL_CHECK_CONTAINS(io.err, "--force");
    io_free(&io);
}

SL_TEST(dlq_replay_then_delivered)
{
    struct sl_err err;
    char id[96], key[160], rules[512], args[512], sql[1024];
    start_pipeline();
    event_id("ev-replay", id, sizeof(id));
    idem_key(id, key, sizeof(key));
    snprintf(rules, sizeof(rules), "key=%s status=400\nstatus=200\n", key);
    SL_REQUIRE(destsim_set_rules(run.sim, rules, &err) == 0);
    produce(id);
    wait_final(id, "dead_lettered");
    long long dl = db_int("SELECT id FROM dead_letters WHERE event_id = '%s'", id);
    SL_REQUIRE(dl > 0);
    SL_CHECK_INT(db_int("SELECT attempt FROM dead_letters WHERE event_id = '%s'", id), 1);
    SL_REQUIRE(destsim_set_rules(run.sim, "status=200\n", &err) == 0);
    struct io io = io_new();

    /* The listing and the letter in full. */
    snprintf(args, sizeof(args), "dlq list --stage deliver --since 1h --status new -o json");
    SL_CHECK_INT(sluicectl(true, NULL, args, io.out, io.err), 0);
    SL_CHECK_CONTAINS(io.out, id);
    /* The documented shape: {"items": [{...}]}, one row per letter. */
    json_t *list = json_loads(io.out, 0, NULL), *items = NULL, *first = NULL;
    SL_REQUIRE(list);
    SL_CHECK(json_unpack(list, "{s:o}", "items", &items) == 0 && json_array_size(items) == 1);
    first = json_array_get(items, 0);
    json_int_t list_id = 0, attempt = 0, partition = 0, offset = 0, size = 0, replays = -1;
    const char *l_event = NULL, *l_source, *l_type, *l_stage, *l_reason, *l_status, *l_at, *l_topic;
    SL_CHECK(
        json_unpack(first, "{s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:I}",
                    "id", &list_id, "event_id", &l_event, "source", &l_source, "type", &l_type,
                    "stage", &l_stage, "reason", &l_reason, "attempt", &attempt, "status",
                    &l_status, "received_at", &l_at, "topic", &l_topic, "partition", &partition,
                    "offset", &offset, "payload_size", &size, "replay_count", &replays) == 0);
    SL_CHECK_INT(list_id, dl);
    SL_CHECK_STR(l_event, id);
    SL_CHECK_INT(replays, 0);
    json_decref(list);
    snprintf(args, sizeof(args), "dlq show %lld", dl);
    SL_CHECK_INT(sluicectl(true, NULL, args, io.out, io.err), 0);
    SL_CHECK_CONTAINS(io.out, "\"amount_minor\":1200"); /* the payload, as text */
    SL_CHECK_CONTAINS(io.out, "ce_sluicedestination: ");
    SL_CHECK_CONTAINS(io.out, "HTTP 400");
    snprintf(args, sizeof(args), "dlq show %lld --json", dl);
    SL_CHECK_INT(sluicectl(true, NULL, args, io.out, io.err), 0);
    json_t *full = json_loads(io.out, 0, NULL);
    SL_REQUIRE(full);
    /* The documented shape: the listing's members and the letter's own. */
    json_t *errors, *headers, *payload, *key_of, *replays_of, *status_at;
    SL_CHECK(json_unpack(full, "{s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "id", &list_id,
                         "event_id", &l_event, "errors", &errors, "headers", &headers, "payload",
                         &payload, "key", &key_of, "replays", &replays_of, "status_at",
                         &status_at) == 0);
    SL_CHECK(json_is_array(errors) && json_is_object(headers) && json_is_array(replays_of));
    /* -o json is --json. */
    snprintf(args, sizeof(args), "dlq show %lld -o json", dl);
    SL_CHECK_INT(sluicectl(true, NULL, args, io.out, io.err), 0);
    json_t *again = json_loads(io.out, 0, NULL);
    SL_CHECK(json_equal(again, full));
    json_decref(again);
    SL_CHECK_STR(json_string_value(json_object_get(full, "payload_text")),
                 "{\"order\":\"o-1\",\"amount_minor\":1200}");
    SL_CHECK_STR(json_string_value(json_object_get(full, "key_text")), id);
    SL_CHECK_STR(json_string_value(
                     json_object_get(json_object_get(full, "headers"), "ce_" SL_CE_DESTINATION)),
                 run.dest);
    json_decref(full);

    /* A dry run changes nothing. */
    long long end = sink_end_offsets(run.topic_deliver, DELIVER_PARTS);
    snprintf(args, sizeof(args), "dlq replay --dry-run --by tester %lld", dl);
    SL_CHECK_INT(sluicectl(true, NULL, args, io.out, io.err), 0);
    SL_CHECK_CONTAINS(io.out, "would replay to deliver");
    SL_CHECK_CONTAINS(io.out, run.topic_deliver);
    SL_CHECK_CONTAINS(io.out, "attempt 2");
    SL_CHECK_INT(sink_end_offsets(run.topic_deliver, DELIVER_PARTS), end);
    SL_CHECK_INT(db_int("SELECT count(*) FROM dead_letters WHERE event_id = '%s' AND "
                        "status = 'new' AND status_at IS NULL",
                        id),
                 1);
    SL_CHECK_INT(db_int("SELECT count(*) FROM dead_letter_replays r JOIN dead_letters d "
                        "ON d.id = r.dead_letter_id WHERE d.event_id = '%s'",
                        id),
                 0);

    /* The replay: delivered 2xx exactly once for the key, and recorded. */
    snprintf(args, sizeof(args), "dlq replay --by tester %lld", dl);
    SL_CHECK_INT(sluicectl(true, NULL, args, io.out, io.err), 0);
    SL_CHECK_CONTAINS(io.out, "replayed to deliver");
    SL_CHECK_INT(sink_end_offsets(run.topic_deliver, DELIVER_PARTS), end + 1);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM audit WHERE event_id = '%s' AND stage = 'deliver' AND "
             "outcome = 'delivered'",
             id);
    SL_CHECK_INT(sink_wait_int(run.r.pg, sql, 1, WAIT_MS), 1);
    json_t *counters = destsim_counters(run.sim, &err);
    SL_REQUIRE(counters);
    const json_t *k = json_object_get(json_object_get(counters, "keys"), key);
    SL_CHECK_INT(json_integer_value(json_object_get(k, "2xx")), 1);
    SL_CHECK_INT(json_integer_value(json_object_get(k, "requests")), 2); /* the 400, the 200 */
    json_decref(counters);
    SL_CHECK_INT(db_int("SELECT count(*) FROM dead_letters WHERE event_id = '%s' AND "
                        "status = 'replayed' AND status_by = 'tester' AND status_at IS NOT NULL",
                        id),
                 1);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM dead_letter_replays WHERE dead_letter_id = %lld AND "
             "replayed_by = 'tester' AND to_stage = 'deliver' AND to_topic = '%s' AND "
             "attempt = 2 AND partition IS NOT NULL AND kafka_offset IS NOT NULL",
             dl, run.topic_deliver);
    SL_CHECK_INT(pg_test_int(run.r.pg, sql), 1);
    check_replayed_record(run.topic_deliver, DELIVER_PARTS, id, "2");

    /* The timeline tells it: dead letter, replay, delivered. */
    json_t *doc = show_json(id);
    const json_t *d = dest_summary(doc);
    SL_CHECK_STR(json_string_value(json_object_get(d, "outcome")), "delivered");
    const json_t *dls = json_object_get(doc, "dead_letters");
    SL_CHECK_STR(json_string_value(json_object_get(json_array_get(dls, 0), "status")), "replayed");
    SL_CHECK_INT(json_array_size(json_object_get(json_array_get(dls, 0), "replays")), 1);
    json_decref(doc);

    /* Once is enough unless forced. */
    snprintf(args, sizeof(args), "dlq replay --by tester %lld", dl);
    SL_CHECK_INT(sluicectl(true, NULL, args, io.out, io.err), 1);
    SL_CHECK_CONTAINS(io.err, "already replayed");
    SL_CHECK_CONTAINS(io.err, "--force");
    SL_CHECK_INT(sink_end_offsets(run.topic_deliver, DELIVER_PARTS), end + 1);
    SL_CHECK_INT(db_int("SELECT count(*) FROM dead_letter_replays r JOIN dead_letters d "
                        "ON d.id = r.dead_letter_id WHERE d.event_id = '%s'",
                        id),
                 1);

    /* Forced, and all the way back to validate: validate's dedup lets the event that claimed
     * the key through as a replay (not a duplicate), and the delivery ledger keeps the
     * destination from getting it twice. */
    snprintf(args, sizeof(args), "dlq replay --by tester --force --to-stage validate %lld", dl);
    SL_CHECK_INT(sluicectl(true, NULL, args, io.out, io.err), 0);
    SL_CHECK_CONTAINS(io.out, "replayed to validate");
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM audit WHERE event_id = '%s' AND stage = 'validate' AND "
             "outcome = 'passed' AND detail ->> 'dedup' = 'replay'",
             id);
    SL_CHECK_INT(sink_wait_int(run.r.pg, sql, 1, WAIT_MS), 1);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM audit WHERE event_id = '%s' AND stage = 'deliver' AND "
             "outcome = 'duplicate'",
             id);
    SL_CHECK_INT(sink_wait_int(run.r.pg, sql, 1, WAIT_MS), 1);
    counters = destsim_counters(run.sim, &err);
    SL_REQUIRE(counters);
    k = json_object_get(json_object_get(counters, "keys"), key);
    SL_CHECK_INT(json_integer_value(json_object_get(k, "2xx")), 1);
    SL_CHECK_INT(json_integer_value(json_object_get(k, "requests")), 2);
    json_decref(counters);
    io_free(&io);
}

/* A letter of validate goes back to <prefix>ingress, and validate's dedup lets it through: an
 * invalid event never claimed its idempotency key. */
SL_TEST(dlq_replay_at_validate_after_the_schema_is_fixed)
{
    char id[96], sql[1024];
    start_pipeline();
    event_id("ev-invalid", id, sizeof(id));
    produce_data(id, "{\"amount_minor\":700}"); /* no "order" */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM dead_letters WHERE event_id = '%s' AND stage = 'validate'", id);
    SL_CHECK_INT(sink_wait_int(run.r.pg, sql, 1, WAIT_MS), 1);
    long long dl = db_int("SELECT id FROM dead_letters WHERE event_id = '%s'", id);
    SL_REQUIRE(dl > 0);

    /* The schema is fixed and validate restarted with it. */
    write_schema("\"amount_minor\"");
    SL_CHECK_INT(sl_testenv_stop(run.pids[VALIDATE], SIGTERM, 60000), 0);
    start_worker(VALIDATE);

    /* Chosen by a filter this time: the run's only new letter of validate. */
    struct io io = io_new();
    char line[256];
    SL_CHECK_INT(sluicectl(true, NULL,
                           "dlq replay --filter --stage validate --source shop --since 1h "
                           "--by tester",
                           io.out, io.err),
                 0);
    snprintf(line, sizeof(line), "dead letter %lld (event %s): replayed to validate", dl, id);
    SL_CHECK_CONTAINS(io.out, line);
    SL_CHECK_CONTAINS(io.out, run.r.topic_ingress);
    check_replayed_record(run.r.topic_ingress, 3, id, "2");
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM audit WHERE event_id = '%s' AND stage = 'deliver' AND "
             "outcome = 'delivered'",
             id);
    SL_CHECK_INT(sink_wait_int(run.r.pg, sql, 1, WAIT_MS), 1);
    SL_CHECK_INT(db_int("SELECT count(*) FROM audit WHERE event_id = '%s' AND stage = 'validate' "
                        "AND outcome = 'passed' AND detail->>'dedup' = 'first'",
                        id),
                 1);
    SL_CHECK_INT(db_int("SELECT count(*) FROM dead_letter_replays r JOIN dead_letters d ON "
                        "d.id = r.dead_letter_id WHERE d.event_id = '%s' AND r.to_stage = "
                        "'validate' AND r.attempt = 2 AND d.status = 'replayed'",
                        id),
                 1);
    json_t *doc = show_json(id);
    SL_CHECK(has_stage(doc, "validate", "dead_lettered"));
    SL_CHECK(has_stage(doc, "validate", "passed"));
    SL_CHECK_STR(json_string_value(json_object_get(dest_summary(doc), "outcome")), "delivered");
    json_decref(doc);
    io_free(&io);
}

SL_TEST(bad_input)
{
    start_pipeline();
    struct io io = io_new();
    /* Unknown ids. */
    SL_CHECK_INT(sluicectl(true, NULL, "events show no-such-event", io.out, io.err), 1);
    SL_CHECK_CONTAINS(io.err, "event no-such-event: not found");
    SL_CHECK_INT(sluicectl(true, NULL, "dlq show 987654321", io.out, io.err), 1);
    SL_CHECK_CONTAINS(io.err, "dead letter 987654321: no such id");
    SL_CHECK_INT(sluicectl(true, NULL, "dlq replay 987654321", io.out, io.err), 1);
    SL_CHECK_CONTAINS(io.err, "dead letter 987654321: no such id");
    SL_CHECK_INT(sluicectl(true, NULL, "dlq discard 987654321", io.out, io.err), 1);
    SL_CHECK_CONTAINS(io.err, "dead letter 987654321: no such id");
    SL_CHECK_INT(sluicectl(true, NULL, "dlq discard", io.out, io.err), 2);
    SL_CHECK_CONTAINS(io.err, "no dead letter id");
    SL_CHECK_INT(sluicectl(true, NULL, "dlq show abc", io.out, io.err), 2);
    SL_CHECK_CONTAINS(io.err, "positive number");
    /* Bad --since, unknown stage and status. */
    SL_CHECK_INT(sluicectl(true, NULL, "dlq list --since yesterday", io.out, io.err), 2);
    SL_CHECK_CONTAINS(io.err, "--since 'yesterday' is neither an RFC 3339 time nor a duration");
    SL_CHECK_INT(sluicectl(true, NULL, "dlq replay --filter --since 5parsecs", io.out, io.err), 2);
    SL_CHECK_CONTAINS(io.err, "--since '5parsecs'");
    SL_CHECK_INT(sluicectl(true, NULL, "dlq replay --to-stage egress 1", io.out, io.err), 2);
    SL_CHECK_CONTAINS(io.err, "--to-stage 'egress': use validate, transform, route or deliver");
    SL_CHECK_INT(sluicectl(true, NULL, "dlq replay --filter --stage nowhere", io.out, io.err), 2);
    SL_CHECK_CONTAINS(io.err, "--stage 'nowhere': unknown stage");
    SL_CHECK_INT(sluicectl(true, NULL, "dlq list --status lost", io.out, io.err), 2);
    SL_CHECK_CONTAINS(io.err, "--status 'lost'");
    SL_CHECK_INT(sluicectl(true, NULL, "dlq replay 1 --filter", io.out, io.err), 2);
    SL_CHECK_CONTAINS(io.err, "not both");
    SL_CHECK_INT(sluicectl(true, NULL, "events show", io.out, io.err), 2);
    SL_CHECK_CONTAINS(io.err, "no event id");
    /* No pipeline file for a replay; a database that is not there. */
    SL_CHECK_INT(sluicectl(false, NULL, "dlq replay 1", io.out, io.err), 2);
    SL_CHECK_CONTAINS(io.err, "no pipeline file");
    SL_CHECK_INT(sluicectl(false, "SLUICE_PG_DSN=postgresql://127.0.0.1:1/none",
                           "events show some-id", io.out, io.err),
                 1);
    SL_CHECK_CONTAINS(io.err, "postgres 127.0.0.1:1/none: cannot connect");
    SL_CHECK_INT(
        sluicectl(false, "SLUICE_PG_DSN=postgresql://127.0.0.1:1/none", "dlq list", io.out, io.err),
        1);
    SL_CHECK_CONTAINS(io.err, "cannot connect");
    io_free(&io);
}

int main(void)
{
    int rc = sl_test_run_all();
    stop_pipeline();
    sink_cleanup();
    return rc;
}
