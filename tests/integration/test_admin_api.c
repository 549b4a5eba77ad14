/* sluice-admin's API against the real PostgreSQL: a schema of its own, migrated, seeded with
 * the rows the workers write (event_status, audit, dead_letters, reconcile_hourly), and
 * sluice-admin as a child process on a free port. Checked:
 *   - auth: no token and an unknown token 401 (with WWW-Authenticate), whoami per role, the
 *     console's page without a token, any other asset only with one;
 *   - the security headers on the API, the console and /metrics; no-store on the API;
 *   - an embedded asset with its content type; an unknown path 404; a bad parameter 400
 *     naming it; an unknown id 404;
 *   - every read endpoint with its filters, and two pages through next_cursor;
 *   - the actions: a viewer gets 403 on each; an operator's replay (dry run, real, refused),
 *     discard and bulk replay do what sluicectl dlq does (the record on the deliver topic),
 *     and each is recorded in admin_actions (GET /api/v1/actions) and on the audit topic. */
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_client.h"
#include "pg_testenv.h"
#include "sl_pg_query.h"
#include "sl_test.h"
#include "sl_testenv.h"

/* A viewer's and an operator's token; the pipeline file holds only their SHA-256. */
#define VIEWER   "viewer-token-1"
#define OPERATOR "operator-token-1"

static struct {
    bool up;
    pid_t pid;
    int port;
    char dsn[PG_TEST_DSN_MAX];
    sl_pg_t *pg;
    char prefix[96], audit_topic[128], deliver_topic[128];
} run;

/* GET `path` as the viewer, POST as the operator; the status must be `status`. */
static json_t *get(const char *path, long status)
{
    return admin_expect(run.port, "GET", path, VIEWER, NULL, status);
}

static json_t *post(const char *path, const char *body, long status)
{
    return admin_expect(run.port, "POST", path, OPERATOR, body, status);
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static const char *error_code(const json_t *doc)
{
    return str(json_object_get(doc, "error"), "code");
}

static void seed(void)
{
    struct sl_err err;
    SL_REQUIRE(sl_pg_audit_partitions_ensure(run.pg, 1, NULL, &err) == 0);
    /* Five events of shop and one of crm, a minute apart, each to one destination; e5 also to
     * a second one. e3 is stuck, e4 dead-lettered. */
    pg_test_exec(run.pg,
                 "INSERT INTO event_status (event_id, destination, source, type, route, state,"
                 " accepted_at, terminal_at, stuck_at) VALUES"
                 " ('e1', 'crm', 'shop', 'order.paid', 'r', 'delivered', now() - interval '6 min',"
                 "  now(), NULL),"
                 " ('e2', 'crm', 'shop', 'order.paid', 'r', 'delivered', now() - interval '5 min',"
                 "  now(), NULL),"
                 " ('e3', 'crm', 'shop', 'order.paid', 'r', 'pending', now() - interval '4 min',"
                 "  NULL, now()),"
                 " ('e4', 'crm', 'shop', 'order.paid', 'r', 'dead_lettered',"
                 "  now() - interval '3 min', now(), NULL),"
                 " ('e5', 'crm', 'shop', 'order.paid', 'r', 'delivered', now() - interval '2 min',"
                 "  now(), NULL),"
                 " ('e5', 'books', 'shop', 'order.paid', 'r', 'pending', now() - interval '2 min',"
                 "  NULL, NULL),"
                 " ('c1', 'crm', 'crm-in', 'contact.new', 'r', 'delivered',"
                 "  now() - interval '1 min', now(), NULL)");
    /* validate's row of e2 names the source's own id. */
    pg_test_exec(run.pg,
                 "INSERT INTO audit (at, event_id, stage, outcome, source, type, detail, topic,"
                 " partition, kafka_offset, audit_topic, audit_partition, audit_offset) VALUES"
                 " (now() - interval '5 min', 'e2', 'validate', 'passed', 'shop', 'order.paid',"
                 "  '{\"idempotency_key\": \"ord_777\", \"dedup\": \"first\"}', 't.ingress', 0, 1,"
                 "  't.audit', 0, 1),"
                 " (now() - interval '5 min', 'e2', 'deliver', 'delivered', 'shop', 'order.paid',"
                 "  '{}', 't.deliver.crm', 0, 1, 't.audit', 0, 2)");
    pg_test_exec(run.pg, "UPDATE audit SET destination = 'crm', attempt = 1, status = 200"
                         " WHERE stage = 'deliver'");
    /* Three dead letters: two of deliver for crm (one already replayed), one of validate. */
    pg_test_exec(run.pg,
                 "INSERT INTO dead_letters (event_id, source, type, stage, reason, headers,"
                 " payload, topic, partition, kafka_offset, status, received_at) VALUES"
                 " ('e4', 'shop', 'order.paid', 'deliver', 'HTTP 400',"
                 "  '{\"ce_sluicedestination\": \"crm\"}', '\\x7b7d', 't.dlq', 0, 1, 'new',"
                 "  now() - interval '3 min'),"
                 " ('e6', 'shop', 'order.paid', 'validate', 'schema', '{}', '\\x7b7d', 't.dlq',"
                 "  0, 2, 'new', now() - interval '2 min'),"
                 " ('e7', 'shop', 'order.paid', 'deliver', 'HTTP 422',"
                 "  '{\"ce_sluicedestination\": \"crm\"}', '\\x7b7d', 't.dlq', 0, 3, 'replayed',"
                 "  now() - interval '1 min')");
    pg_test_exec(run.pg,
                 "INSERT INTO reconcile_hourly (hour, source, destination, accepted, delivered,"
                 " pending) VALUES"
                 " (date_trunc('hour', now()), 'shop', 'crm', 5, 3, 1),"
                 " (date_trunc('hour', now()), 'shop', 'books', 1, 0, 1),"
                 " (date_trunc('hour', now()), 'crm-in', 'crm', 1, 1, 0),"
                 " (date_trunc('hour', now()) - interval '30 hours', 'shop', 'crm', 9, 9, 0)");
}

static void start(void)
{
    if (run.up)
        return;
    char schema[64], extra[2048], config[4096], prefix[64], listen[64], body[4096],
        viewer[65], operator[65];
    pg_test_schema(schema, run.dsn);
    run.pg = pg_test_handle(run.dsn, 0);
    pg_test_migrate(run.pg);
    seed();
    run.port = sl_testenv_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", run.port);
    admin_token_hash(VIEWER, viewer);
    admin_token_hash(OPERATOR, operator);
    snprintf(extra, sizeof(extra),
             "postgres:\n  dsn: \"%s\"\n"
             "admin:\n  listen: \"%s\"\n  tokens:\n"
             "    - {name: board, role: viewer, sha256: \"%s\"}\n"
             "    - {name: alice, role: operator, sha256: \"%s\"}\n",
             run.dsn, listen, viewer, operator);
    sl_testenv_unique("admin-api", prefix, sizeof(prefix));
    snprintf(run.prefix, sizeof(run.prefix), "%s.", prefix);
    snprintf(run.audit_topic, sizeof(run.audit_topic), "%saudit", run.prefix);
    snprintf(run.deliver_topic, sizeof(run.deliver_topic), "%sdeliver.crm", run.prefix);
    sl_testenv_create_topic(run.audit_topic, 1);
    sl_testenv_create_topic(run.deliver_topic, 1);
    sl_testenv_config(run.prefix, extra, config, sizeof(config));
    const char *args[] = {"--config", config, NULL};
    run.pid = sl_testenv_spawn("sluice-admin", args, "admin-api");
    SL_REQUIRE(sl_testenv_wait_ready(run.port, 200, "ready", body, sizeof(body)) == 200);
    run.up = true;
}

SL_TEST(auth_tokens_and_roles)
{
    start();
    struct admin_answer a = admin_call(run.port, "GET", "/api/v1/whoami", NULL, NULL);
    SL_CHECK_INT(a.status, 401);
    SL_CHECK_CONTAINS(a.head, "WWW-Authenticate: Bearer");
    SL_CHECK_CONTAINS(a.body, "\"code\":\"unauthorized\"");
    free(a.body);
    a = admin_call(run.port, "GET", "/api/v1/whoami", "not-a-token", NULL);
    SL_CHECK_INT(a.status, 401);
    free(a.body);
    /* The hash itself is not a token. */
    char hash[65];
    admin_token_hash(VIEWER, hash);
    a = admin_call(run.port, "GET", "/api/v1/events", hash, NULL);
    SL_CHECK_INT(a.status, 401);
    free(a.body);
    json_t *doc = get("/api/v1/whoami", 200);
    SL_CHECK_STR(str(doc, "name"), "board");
    SL_CHECK_STR(str(doc, "role"), "viewer");
    json_decref(doc);
    a = admin_call(run.port, "GET", "/api/v1/whoami", OPERATOR, NULL);
    SL_CHECK_INT(a.status, 200);
    SL_CHECK_CONTAINS(a.body, "\"name\":\"alice\",\"role\":\"operator\"");
    free(a.body);
}

SL_TEST(headers_assets_and_unknown_paths)
{
    static const char csp[] =
        "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'";
    start();
    const char *paths[] = {"/api/v1/whoami", "/", "/metrics", "/api/v1/nothing"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct admin_answer a = admin_call(run.port, "GET", paths[i], VIEWER, NULL);
        SL_CHECK_CONTAINS(a.head, csp);
        SL_CHECK_CONTAINS(a.head, "X-Content-Type-Options: nosniff");
        SL_CHECK_CONTAINS(a.head, "Referrer-Policy: no-referrer");
        if (strncmp(paths[i], "/api/", 5) == 0)
            SL_CHECK_CONTAINS(a.head, "Cache-Control: no-store");
        free(a.body);
    }
    /* The console's page is embedded, served without a token, as HTML. */
    struct admin_answer a = admin_call(run.port, "GET", "/", NULL, NULL);
    SL_CHECK_INT(a.status, 200);
    SL_CHECK_CONTAINS(a.head, "Content-Type: text/html; charset=utf-8");
    SL_CHECK_CONTAINS(a.body, "<html");
    free(a.body);
    a = admin_call(run.port, "GET", "/index.html", NULL, NULL);
    SL_CHECK_INT(a.status, 200);
    free(a.body);
    a = admin_call(run.port, "GET", "/no-such-page.png", VIEWER, NULL);
    SL_CHECK_INT(a.status, 404);
    SL_CHECK_CONTAINS(a.body, "\"code\":\"not_found\"");
    free(a.body);
    json_t *doc = get("/api/v1/nothing/here", 404);
    SL_CHECK_STR(error_code(doc), "not_found");
    json_decref(doc);
    a = admin_call(run.port, "DELETE", "/api/v1/events", VIEWER, NULL);
    SL_CHECK_INT(a.status, 405);
    free(a.body);
}

SL_TEST(bad_parameters_are_400_naming_them)
{
    start();
    const char *cases[][2] = {
        {"/api/v1/events?since=yesterday", "'since'"},
        {"/api/v1/events?until=2026-13-99", "'until'"},
        {"/api/v1/events?limit=0", "'limit'"},
        {"/api/v1/events?limit=501", "'limit'"},
        {"/api/v1/events?state=lost", "state"},
        {"/api/v1/events?cursor=zz", "cursor"},
        {"/api/v1/dead-letters?status=gone", "'status'"},
        {"/api/v1/dead-letters?cursor=-4", "'cursor'"},
        {"/api/v1/reconcile/hourly?since=soon", "'since'"},
        {"/api/v1/reconcile/stuck?limit=x", "'limit'"},
        {"/api/v1/events?sourse=shop", "'sourse': not a parameter"},
        {"/api/v1/overview?since=1h", "'since': not a parameter"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *doc = get(cases[i][0], 400);
        SL_CHECK_STR(error_code(doc), "bad_request");
        SL_CHECK_CONTAINS(str(json_object_get(doc, "error"), "message"), cases[i][1]);
        json_decref(doc);
    }
    json_t *doc = get("/api/v1/events/no-such-event", 404);
    SL_CHECK_STR(error_code(doc), "not_found");
    json_decref(doc);
    doc = get("/api/v1/dead-letters/999999", 404);
    SL_CHECK_STR(error_code(doc), "not_found");
    json_decref(doc);
}

/* The event ids of a page, joined by spaces, into buf. */
static const char *ids_of(const json_t *page, const char *key, char *buf, size_t size)
{
    size_t i, len = 0;
    const json_t *item;
    buf[0] = '\0';
    json_array_foreach(json_object_get(page, "items"), i, item)
    {
        const json_t *v = json_object_get(item, key);
        int n = json_is_string(v)
                    ? snprintf(buf + len, size - len, "%s%s", len ? " " : "", json_string_value(v))
                    : snprintf(buf + len, size - len, "%s%lld", len ? " " : "",
                               (long long)json_integer_value(v));
        if (n > 0 && (size_t)n < size - len)
            len += (size_t)n;
    }
    return buf;
}

SL_TEST(events_filters_and_two_pages)
{
    start();
    char ids[256], path[1024];
    json_t *doc = get("/api/v1/events?source=shop&destination=crm&limit=3", 200);
    SL_CHECK_STR(ids_of(doc, "event_id", ids, sizeof(ids)), "e5 e4 e3");
    const char *cursor = str(doc, "next_cursor");
    SL_REQUIRE(cursor);
    snprintf(path, sizeof(path), "/api/v1/events?source=shop&destination=crm&limit=3&cursor=%s",
             cursor);
    json_decref(doc);
    doc = get(path, 200);
    SL_CHECK_STR(ids_of(doc, "event_id", ids, sizeof(ids)), "e2 e1");
    SL_CHECK(json_is_null(json_object_get(doc, "next_cursor")));
    json_decref(doc);
    /* One row per event and destination; the other filters. */
    doc = get("/api/v1/events?type=contact.new", 200);
    SL_CHECK_STR(ids_of(doc, "event_id", ids, sizeof(ids)), "c1");
    json_decref(doc);
    doc = get("/api/v1/events?state=pending", 200);
    SL_CHECK_STR(ids_of(doc, "destination", ids, sizeof(ids)), "books crm");
    json_decref(doc);
    doc = get("/api/v1/events?state=stuck", 200);
    SL_CHECK_STR(ids_of(doc, "event_id", ids, sizeof(ids)), "e3");
    json_decref(doc);
    doc = get("/api/v1/events?since=150s&until=2099-01-01T00:00:00Z", 200);
    SL_CHECK_STR(ids_of(doc, "event_id", ids, sizeof(ids)), "c1 e5 e5");
    json_decref(doc);
    /* Search by event id and by the source's own id. */
    doc = get("/api/v1/events?q=e4", 200);
    SL_CHECK_STR(ids_of(doc, "event_id", ids, sizeof(ids)), "e4");
    json_decref(doc);
    doc = get("/api/v1/events?q=ord_777", 200);
    SL_CHECK_STR(ids_of(doc, "event_id", ids, sizeof(ids)), "e2");
    json_decref(doc);
    /* One event's story: the document of sluicectl events show --json. */
    doc = get("/api/v1/events/e2", 200);
    SL_CHECK_STR(str(doc, "event_id"), "e2");
    SL_CHECK_STR(str(doc, "source"), "shop");
    SL_CHECK_INT(json_array_size(json_object_get(doc, "timeline")), 2);
    const json_t *dest = json_array_get(json_object_get(doc, "destinations"), 0);
    SL_CHECK_STR(str(dest, "destination"), "crm");
    SL_CHECK_STR(str(dest, "outcome"), "delivered");
    SL_CHECK_STR(str(dest, "state"), "delivered");
    json_decref(doc);
}

SL_TEST(dead_letters_filters_and_two_pages)
{
    start();
    char ids[256], path[1024];
    json_t *doc = get("/api/v1/dead-letters?limit=2", 200);
    json_t *items = json_object_get(doc, "items");
    SL_CHECK_INT(json_array_size(items), 2);
    SL_CHECK_STR(str(json_array_get(items, 0), "event_id"), "e7");
    SL_CHECK_STR(str(json_array_get(items, 1), "event_id"), "e6");
    SL_REQUIRE(str(doc, "next_cursor"));
    snprintf(path, sizeof(path), "/api/v1/dead-letters?limit=2&cursor=%s", str(doc, "next_cursor"));
    json_decref(doc);
    doc = get(path, 200);
    SL_CHECK_STR(ids_of(doc, "event_id", ids, sizeof(ids)), "e4");
    SL_CHECK(json_is_null(json_object_get(doc, "next_cursor")));
    long long id =
        json_integer_value(json_object_get(json_array_get(json_object_get(doc, "items"), 0), "id"));
    json_decref(doc);
    doc = get("/api/v1/dead-letters?stage=deliver&status=new", 200);
    SL_CHECK_STR(ids_of(doc, "event_id", ids, sizeof(ids)), "e4");
    json_decref(doc);
    doc = get("/api/v1/dead-letters?destination=crm", 200);
    SL_CHECK_STR(ids_of(doc, "event_id", ids, sizeof(ids)), "e7 e4");
    json_decref(doc);
    doc = get("/api/v1/dead-letters?source=nobody", 200);
    SL_CHECK_INT(json_array_size(json_object_get(doc, "items")), 0);
    json_decref(doc);
    snprintf(path, sizeof(path), "/api/v1/dead-letters/%lld", id);
    doc = get(path, 200);
    SL_CHECK_STR(str(doc, "reason"), "HTTP 400");
    SL_CHECK_STR(str(doc, "payload"), "e30=");
    SL_CHECK_STR(str(doc, "payload_text"), "{}");
    json_decref(doc);
}

SL_TEST(reconcile_hourly_and_stuck)
{
    start();
    char ids[256];
    json_t *doc = get("/api/v1/reconcile/hourly", 200);
    SL_CHECK_INT(json_array_size(json_object_get(doc, "items")), 3); /* 24 h back by default */
    json_decref(doc);
    doc = get("/api/v1/reconcile/hourly?since=2d&source=shop&destination=crm", 200);
    SL_CHECK_INT(json_array_size(json_object_get(doc, "items")), 2);
    const json_t *last = json_array_get(json_object_get(doc, "items"), 1);
    SL_CHECK_INT(json_integer_value(json_object_get(last, "accepted")), 5);
    SL_CHECK_INT(json_integer_value(json_object_get(last, "unexplained")), 1);
    json_decref(doc);
    doc = get("/api/v1/reconcile/stuck", 200);
    SL_CHECK_STR(ids_of(doc, "event_id", ids, sizeof(ids)), "e3");
    json_decref(doc);
}

SL_TEST(a_viewer_gets_403_on_every_action)
{
    start();
    const char *paths[] = {"/api/v1/dead-letters/1/replay", "/api/v1/dead-letters/1/discard",
                           "/api/v1/dead-letters/replay", "/api/v1/destinations/crm/pause",
                           "/api/v1/destinations/crm/resume"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct admin_answer a = admin_call(run.port, "POST", paths[i], VIEWER, "{}");
        SL_CHECK_INT(a.status, 403);
        SL_CHECK_CONTAINS(a.body, "\"code\":\"forbidden\"");
        free(a.body);
        a = admin_call(run.port, "POST", paths[i], NULL, "{}");
        SL_CHECK_INT(a.status, 401);
        free(a.body);
    }
    /* Nothing changed, nothing recorded. */
    SL_CHECK_INT(pg_test_int(run.pg, "SELECT count(*) FROM dead_letters WHERE status_by IS NOT "
                                     "NULL AND status_by <> ''"),
                 0);
}

SL_TEST(an_operators_actions_act_and_are_recorded)
{
    start();
    char path[256], sql[256];
    long long e4 = pg_test_int(run.pg, "SELECT id FROM dead_letters WHERE event_id = 'e4'");
    long long e6 = pg_test_int(run.pg, "SELECT id FROM dead_letters WHERE event_id = 'e6'");
    /* Bad bodies and unknown letters. */
    snprintf(path, sizeof(path), "/api/v1/dead-letters/%lld/replay", e4);
    json_t *doc = post(path, "{\"to_stage\": \"nowhere\"}", 400);
    SL_CHECK_CONTAINS(str(json_object_get(doc, "error"), "message"), "to_stage");
    json_decref(doc);
    doc = post(path, "{\"dry_run\": \"yes\"}", 400);
    SL_CHECK_CONTAINS(str(json_object_get(doc, "error"), "message"), "dry_run");
    json_decref(doc);
    doc = post(path, "{\"colour\": 1}", 400);
    SL_CHECK_CONTAINS(str(json_object_get(doc, "error"), "message"), "colour");
    json_decref(doc);
    doc = post(path, "[1", 400);
    json_decref(doc);
    doc = post("/api/v1/dead-letters/999999/replay", "{}", 404);
    json_decref(doc);
    /* A dry run changes nothing. */
    doc = post(path, "{\"dry_run\": true}", 200);
    SL_CHECK(json_is_true(json_object_get(doc, "dry_run")));
    SL_CHECK_STR(str(doc, "topic"), run.deliver_topic);
    SL_CHECK_INT(json_integer_value(json_object_get(doc, "attempt")), 2);
    json_decref(doc);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM dead_letters WHERE id = %lld AND status = 'new'", e4);
    SL_CHECK_INT(pg_test_int(run.pg, sql), 1);
    /* The replay: the record is on the deliver topic, the letter replayed by alice. */
    doc = post(path, "", 200);
    SL_CHECK_STR(str(doc, "event_id"), "e4");
    SL_CHECK_INT(json_integer_value(json_object_get(doc, "offset")), 0);
    json_decref(doc);
    rd_kafka_message_t *msgs[4];
    rd_kafka_t *consumer = NULL;
    size_t n = sl_testenv_read_all(run.deliver_topic, 1, msgs, 4, 1, &consumer);
    SL_CHECK_INT(n, 1);
    char value[64];
    if (n == 1)
        SL_CHECK_STR(sl_testenv_header(msgs[0], "ce_sluicereplay", value, sizeof(value)),
                     (snprintf(path, sizeof(path), "%lld", e4), path));
    sl_testenv_free_records(msgs, n, consumer);
    snprintf(sql, sizeof(sql),
             "SELECT status || ' ' || status_by FROM dead_letters WHERE id = %lld", e4);
    SL_CHECK_STR(pg_test_str(run.pg, sql, value, sizeof(value)), "replayed alice");
    /* Again: refused (409) without force. */
    snprintf(path, sizeof(path), "/api/v1/dead-letters/%lld/replay", e4);
    doc = post(path, "{}", 409);
    SL_CHECK_STR(error_code(doc), "conflict");
    SL_CHECK_CONTAINS(str(json_object_get(doc, "error"), "message"), "already replayed");
    json_decref(doc);
    /* Discard: once. */
    snprintf(path, sizeof(path), "/api/v1/dead-letters/%lld/discard", e6);
    doc = post(path, NULL, 200);
    SL_CHECK_STR(str(doc, "status"), "discarded");
    json_decref(doc);
    doc = post(path, NULL, 409);
    json_decref(doc);
    /* Bulk, dry run: the count for a confirmation (e7 is replayed, so only with force). */
    doc = post("/api/v1/dead-letters/replay", "{\"stage\": \"deliver\", \"dry_run\": true}", 200);
    SL_CHECK_INT(json_integer_value(json_object_get(doc, "matched")), 0);
    json_decref(doc);
    doc = post("/api/v1/dead-letters/replay",
               "{\"stage\": \"deliver\", \"force\": true, \"dry_run\": true}", 200);
    SL_CHECK_INT(json_integer_value(json_object_get(doc, "matched")), 2);
    SL_CHECK_INT(json_integer_value(json_object_get(doc, "replayed")), 0);
    json_decref(doc);
    doc = post("/api/v1/dead-letters/replay", "{\"limit\": 0}", 400);
    json_decref(doc);

    /* Every action is in admin_actions, newest first, with who, role, target and result. */
    doc = get("/api/v1/actions?limit=3", 200);
    json_t *items = json_object_get(doc, "items");
    SL_CHECK_INT(json_array_size(items), 3);
    const json_t *last = json_array_get(items, 0);
    SL_CHECK_STR(str(last, "action"), "bulk_replay");
    SL_CHECK_STR(str(last, "who"), "alice");
    SL_CHECK_STR(str(last, "role"), "operator");
    SL_CHECK_STR(str(last, "remote"), "127.0.0.1");
    SL_REQUIRE(str(doc, "next_cursor"));
    snprintf(path, sizeof(path), "/api/v1/actions?limit=50&cursor=%s", str(doc, "next_cursor"));
    json_decref(doc);
    doc = get(path, 200);
    SL_CHECK_INT(json_array_size(json_object_get(doc, "items")), 5);
    SL_CHECK(json_is_null(json_object_get(doc, "next_cursor")));
    json_decref(doc);
    /* 8 actions: the requests refused before acting (bad bodies, a bad limit) are not actions;
     * dry runs and refusals of the letter itself are. */
    doc = get("/api/v1/actions", 200);
    items = json_object_get(doc, "items");
    size_t i;
    const json_t *item;
    int replays = 0, discards = 0, conflicts = 0;
    json_array_foreach(items, i, item)
    {
        long long status =
            json_integer_value(json_object_get(json_object_get(item, "result"), "status"));
        replays += strcmp(str(item, "action"), "replay") == 0;
        discards += strcmp(str(item, "action"), "discard") == 0;
        conflicts += status == 409;
    }
    SL_CHECK_INT(replays, 4); /* unknown (404), dry run, replay, refused */
    SL_CHECK_INT(discards, 2);
    SL_CHECK_INT(conflicts, 2);
    json_decref(doc);
    SL_CHECK_INT(pg_test_int(run.pg, "SELECT count(*) FROM admin_actions"), 8);
    /* ... and on the audit topic, stage admin, beside the event's own records. */
    rd_kafka_message_t *recs[16];
    n = sl_testenv_read_all(run.audit_topic, 1, recs, 16, 8, &consumer);
    SL_CHECK_INT(n, 8);
    int e4_replays = 0;
    for (size_t k = 0; k < n; k++) {
        json_t *rec = json_loadb(recs[k]->payload, recs[k]->len, 0, NULL);
        SL_CHECK_STR(str(rec, "stage"), "admin");
        e4_replays += str(rec, "event_id") && strcmp(str(rec, "event_id"), "e4") == 0 &&
                      strcmp(str(rec, "outcome"), "replay") == 0;
        json_decref(rec);
    }
    SL_CHECK_INT(e4_replays, 3); /* dry run, replay, refused */
    sl_testenv_free_records(recs, n, consumer);
}

/* With PostgreSQL out of reach: not ready, reads are 503 unavailable, the overview still
 * answers and names what is missing. */
SL_TEST(a_database_out_of_reach_is_unavailable_not_an_error)
{
    char extra[1024], config[4096], prefix[48], body[4096], hash[65];
    int port = sl_testenv_free_port();
    admin_token_hash(VIEWER, hash);
    snprintf(extra, sizeof(extra),
             "postgres:\n  dsn: \"postgresql://127.0.0.1:1/nowhere\"\n"
             "admin:\n  listen: \"127.0.0.1:%d\"\n  stages: {}\n  tokens:\n"
             "    - {name: board, role: viewer, sha256: \"%s\"}\n",
             port, hash);
    sl_testenv_unique("admin-nodb", prefix, sizeof(prefix));
    sl_testenv_config(prefix, extra, config, sizeof(config));
    const char *args[] = {"--config", config, NULL};
    pid_t pid = sl_testenv_spawn("sluice-admin", args, "admin-nodb");
    SL_CHECK_INT(sl_testenv_wait_ready(port, 503, "postgres", body, sizeof(body)), 503);
    json_t *doc = admin_expect(port, "GET", "/api/v1/events", VIEWER, NULL, 503);
    SL_CHECK_STR(error_code(doc), "unavailable");
    json_decref(doc);
    doc = admin_expect(port, "GET", "/api/v1/overview", VIEWER, NULL, 200);
    SL_CHECK(json_is_string(json_object_get(json_object_get(doc, "unavailable"), "postgres")));
    SL_CHECK(json_is_null(json_object_get(doc, "dead_letters")));
    json_decref(doc);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 10000), 0);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = sl_test_run_all();
    if (run.up && sl_testenv_stop(run.pid, SIGTERM, 10000) != 0)
        fprintf(stderr, "sluice-admin did not stop cleanly\n");
    sl_pg_destroy(run.pg);
    pg_test_cleanup();
    curl_global_cleanup();
    return rc;
}
