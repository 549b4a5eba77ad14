/* sluice-admin's API against the real PostgreSQL: a schema of its own, migrated, seeded with
 * the rows the workers write (event_status, audit, dead_letters, reconcile_hourly), and
 * sluice-admin as a child process on a free port. Checked:
 *   - auth: no token and an unknown token 401 (with WWW-Authenticate), whoami per role, the
 *     console's page without a token, any other asset only with one;
 *   - the security headers on the API, the console and /metrics; no-store on the API;
 *   - an embedded asset with its content type; an unknown path 404; a bad parameter 400
 *     naming it; an unknown id 404;
 *   - every read endpoint with its filters, and two pages through next_cursor. */
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_testenv.h"
#include "sl_pg_query.h"
#include "sl_test.h"
#include "sl_testenv.h"

#define BODY_MAX (1 << 20)
#define HEAD_MAX 8192

/* A viewer's and an operator's token; the pipeline file holds only their SHA-256. */
#define VIEWER   "viewer-token-1"
#define OPERATOR "operator-token-1"

static struct {
    bool up;
    pid_t pid;
    int port;
    char dsn[PG_TEST_DSN_MAX];
    sl_pg_t *pg;
} run;

struct answer {
    long status;
    char head[HEAD_MAX];
    size_t head_len;
    char *body;
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *opaque)
{
    struct answer *a = opaque;
    size_t len = size * n;
    if (a->len + len < BODY_MAX) {
        memcpy(a->body + a->len, p, len);
        a->len += len;
        a->body[a->len] = '\0';
    }
    return len;
}

static size_t on_head(char *p, size_t size, size_t n, void *opaque)
{
    struct answer *a = opaque;
    size_t len = size * n;
    if (a->head_len + len < HEAD_MAX) {
        memcpy(a->head + a->head_len, p, len);
        a->head_len += len;
        a->head[a->head_len] = '\0';
    }
    return len;
}

/* `method` `path` with `token` (NULL: none) and `body` (NULL: none). */
static struct answer call(const char *method, const char *path, const char *token, const char *body)
{
    struct answer a = {.body = calloc(1, BODY_MAX)};
    SL_REQUIRE(a.body);
    char url[4096], auth[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", run.port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    if (body) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_head);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &a);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    SL_CHECK_INT(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return a;
}

static json_t *json_of(const struct answer *a)
{
    json_error_t jerr;
    json_t *doc = json_loads(a->body, 0, &jerr);
    if (!doc)
        sl_test_fail(__FILE__, __LINE__, "not JSON (%s): %.200s", jerr.text, a->body);
    return doc;
}

/* GET `path` as the viewer: the status must be `status`; the body as JSON. */
static json_t *get(const char *path, long status)
{
    struct answer a = call("GET", path, VIEWER, NULL);
    if (a.status != status)
        sl_test_fail(__FILE__, __LINE__, "GET %s: %ld, want %ld: %.300s", path, a.status, status,
                     a.body);
    json_t *doc = json_of(&a);
    free(a.body);
    SL_REQUIRE(doc);
    return doc;
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

/* The hex SHA-256 of `token` into hex[65]. */
static void sha256_hex(const char *token, char *hex)
{
    unsigned char md[32];
    unsigned int len = 0;
    SL_REQUIRE(EVP_Digest(token, strlen(token), md, &len, EVP_sha256(), NULL) && len == 32);
    for (unsigned int i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
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
    sha256_hex(VIEWER, viewer);
    sha256_hex(OPERATOR, operator);
    snprintf(extra, sizeof(extra),
             "postgres:\n  dsn: \"%s\"\n"
             "admin:\n  listen: \"%s\"\n  tokens:\n"
             "    - {name: board, role: viewer, sha256: \"%s\"}\n"
             "    - {name: alice, role: operator, sha256: \"%s\"}\n",
             run.dsn, listen, viewer, operator);
    sl_testenv_unique("admin-api", prefix, sizeof(prefix));
    sl_testenv_config(prefix, extra, config, sizeof(config));
    const char *args[] = {"--config", config, NULL};
    run.pid = sl_testenv_spawn("sluice-admin", args, "admin-api");
    SL_REQUIRE(sl_testenv_wait_ready(run.port, 200, "ready", body, sizeof(body)) == 200);
    run.up = true;
}

SL_TEST(auth_tokens_and_roles)
{
    start();
    struct answer a = call("GET", "/api/v1/whoami", NULL, NULL);
    SL_CHECK_INT(a.status, 401);
    SL_CHECK_CONTAINS(a.head, "WWW-Authenticate: Bearer");
    SL_CHECK_CONTAINS(a.body, "\"code\":\"unauthorized\"");
    free(a.body);
    a = call("GET", "/api/v1/whoami", "not-a-token", NULL);
    SL_CHECK_INT(a.status, 401);
    free(a.body);
    /* The hash itself is not a token. */
    char hash[65];
    sha256_hex(VIEWER, hash);
    a = call("GET", "/api/v1/events", hash, NULL);
    SL_CHECK_INT(a.status, 401);
    free(a.body);
    json_t *doc = get("/api/v1/whoami", 200);
    SL_CHECK_STR(str(doc, "name"), "board");
    SL_CHECK_STR(str(doc, "role"), "viewer");
    json_decref(doc);
    a = call("GET", "/api/v1/whoami", OPERATOR, NULL);
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
        struct answer a = call("GET", paths[i], VIEWER, NULL);
        SL_CHECK_CONTAINS(a.head, csp);
        SL_CHECK_CONTAINS(a.head, "X-Content-Type-Options: nosniff");
        SL_CHECK_CONTAINS(a.head, "Referrer-Policy: no-referrer");
        if (strncmp(paths[i], "/api/", 5) == 0)
            SL_CHECK_CONTAINS(a.head, "Cache-Control: no-store");
        free(a.body);
    }
    /* The console's page is embedded, served without a token, as HTML. */
    struct answer a = call("GET", "/", NULL, NULL);
    SL_CHECK_INT(a.status, 200);
    SL_CHECK_CONTAINS(a.head, "Content-Type: text/html; charset=utf-8");
    SL_CHECK_CONTAINS(a.body, "<html");
    free(a.body);
    a = call("GET", "/index.html", NULL, NULL);
    SL_CHECK_INT(a.status, 200);
    free(a.body);
    a = call("GET", "/no-such-page.png", VIEWER, NULL);
    SL_CHECK_INT(a.status, 404);
    SL_CHECK_CONTAINS(a.body, "\"code\":\"not_found\"");
    free(a.body);
    json_t *doc = get("/api/v1/nothing/here", 404);
    SL_CHECK_STR(error_code(doc), "not_found");
    json_decref(doc);
    a = call("DELETE", "/api/v1/events", VIEWER, NULL);
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

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = sl_test_run_all();
    if (run.up)
        SL_CHECK_INT(sl_testenv_stop(run.pid, SIGTERM, 10000), 0);
    sl_pg_destroy(run.pg);
    pg_test_cleanup();
    curl_global_cleanup();
    return rc;
}
