/* The pipeline end to end with the shipped example (deploy/examples/pipeline.yaml, plus one
 * destination with HTTP basic auth, "archive", on the payments route): every Sluice binary as
 * a process against the test broker, Redis and a schema of its own in the test database, and
 * three destination simulators as the CRM (OAuth2 client credentials, bearer tokens required),
 * the warehouse (a static bearer token) and the archive (basic auth). A Stripe-signed
 * charge.succeeded posted to the ingress reaches <prefix>deliver.crm and <prefix>deliver.warehouse
 * normalized to payment.succeeded, exactly as the transform fixture expects, with the id the
 * ingress answered and the route's name; each simulator receives it once, with its credentials, the
 * Idempotency-Key of the event and destination and (CRM) a Standard Webhooks signature; the
 * audit trail holds each stage's decision and event_status says delivered to all three.
 *
 * Then the secret scan: the bytes of every configured secret (webhook secrets, the bearer
 * token, the basic password and its Authorization form, the OAuth client secret and the access
 * token destsim issued, the signing secret) appear in none of: each binary's stdout/stderr of
 * this run, the audit rows, dead letters and event_status rows in PostgreSQL, the outcomes,
 * dlq and audit topics (payloads, keys and headers), and each binary's /readyz and /metrics. */
#include <jansson.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "destsim_client.h"
#include "sl_cloudevent.h"
#include "ingress_harness.h"
#include "pg_testenv.h"
#include "sl_test.h"
#include "sl_testenv.h"
#include "transform_fixture.h"
#include "verify.h"

#define STRIPE_SECRET     "whsec_e2eTestSecretOnlyForThisRun0123"
#define CRM_CLIENT_SECRET "e2e-crm-client-secret"
#define CRM_SIGNING       "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define WAREHOUSE_TOKEN   "e2e-warehouse-token"
#define ARCHIVE_USER      "e2e-archive"
#define ARCHIVE_PASSWORD  "e2e-archive-password-0042"
#define CRM_WEBHOOK       "e2e-crm-secret"
#define GITHUB_WEBHOOK    "e2e-github-secret"
#define ADMIN_BODY_MAX    (1024 * 1024)
#define SECRETS_MAX       16

/* deliver takes no --group: its groups are per destination and named after the pipeline
 * (<prefix>deliver.<name>), and the run's prefix is its own, so they meet no other run's. */
static const char *const stages[] = {"validate", "transform",  "route",
                                     "audit",    "deadletter", "deliver"};
#define N_STAGES (sizeof(stages) / sizeof(stages[0]))

/* The one request destsim `d` received whose Idempotency-Key is `key`, waiting (90 s at most)
 * until it has answered it; a new reference (json_decref), NULL when none came. */
static json_t *received(destsim_t *d, const char *key)
{
    struct sl_err err;
    for (int i = 0; i < 900; i++) {
        json_t *stats = destsim_stats(d, &err), *req;
        size_t k;
        SL_REQUIRE(stats);
        json_array_foreach(json_object_get(stats, "requests"), k, req)
        {
            const char *got = json_string_value(
                json_object_get(json_object_get(req, "headers"), "Idempotency-Key"));
            if (got && strcmp(got, key) == 0) {
                json_incref(req);
                json_decref(stats);
                return req;
            }
        }
        json_decref(stats);
        usleep(100000);
    }
    return NULL;
}

/* The example with the archive destination added: written next to the build's tests, with
 * schema_dir made absolute (the example's is relative to its own directory). */
static void write_config(char *path, size_t size)
{
    char example[4096], *text = NULL;
    size_t len = 0;
    snprintf(example, sizeof(example), "%s/deploy/examples/pipeline.yaml", sl_test_source_dir());
    FILE *in = fopen(example, "r");
    SL_REQUIRE(in);
    FILE *mem = open_memstream(&text, &len);
    SL_REQUIRE(mem);
    char line[4096];
    while (fgets(line, sizeof(line), in)) {
        if (strncmp(line, "schema_dir:", 11) == 0) {
            fprintf(mem, "schema_dir: %s/schemas\n", sl_test_source_dir());
        } else if (strstr(line, "to: [crm, warehouse]")) {
            fputs("    to: [crm, warehouse, archive]\n", mem);
        } else {
            fputs(line, mem);
            if (strcmp(line, "destinations:\n") == 0)
                fputs("  archive:\n"
                      "    url: \"${ARCHIVE_URL}\"\n"
                      "    auth: { type: basic, username: \"${ARCHIVE_USER}\", password: "
                      "\"${ARCHIVE_PASSWORD}\" }\n",
                      mem);
        }
    }
    fclose(in);
    fclose(mem);
    SL_REQUIRE(strstr(text, "archive]") && strstr(text, "  archive:\n"));
    snprintf(path, size, "%s/tests/e2e-pipeline.yaml", sl_test_binary_dir());
    FILE *out = fopen(path, "w");
    SL_REQUIRE(out && fwrite(text, 1, len, out) == len && fclose(out) == 0);
    free(text);
}

/* The secrets to look for, borrowed or owned (`owned` marks what to free). */
struct secrets {
    const char *v[SECRETS_MAX];
    bool owned[SECRETS_MAX];
    size_t n;
};

static void secret_add(struct secrets *s, const char *v, bool owned)
{
    SL_REQUIRE(s->n < SECRETS_MAX && v && strlen(v) >= 8);
    s->owned[s->n] = owned;
    s->v[s->n++] = v;
}

/* How many secrets occur in buf[0..len); each one found is named with `where`. */
static int leaks(const struct secrets *s, const char *where, const void *buf, size_t len)
{
    int found = 0;
    for (size_t i = 0; buf && i < s->n; i++)
        if (memmem(buf, len, s->v[i], strlen(s->v[i]))) {
            printf("# secret #%zu (%.4s...) found in %s\n", i, s->v[i], where);
            found++;
        }
    return found;
}

/* The secrets in `log` (<build>/tests/<log>.log) past byte `from` (what this run wrote). */
static int leaks_in_log(const struct secrets *s, const char *log, long from)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/tests/%s.log", sl_test_binary_dir(), log);
    FILE *f = fopen(path, "r");
    SL_REQUIRE(f && fseek(f, from, SEEK_SET) == 0);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    SL_REQUIRE(mem);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, mem);
    fclose(f);
    fclose(mem);
    SL_CHECK(len > 0); /* every binary logs its start */
    int found = leaks(s, path, text, len);
    free(text);
    return found;
}

static long log_size(const char *log)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/tests/%s.log", sl_test_binary_dir(), log);
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* The secrets in every record of `topic` (payload, key and header values). */
static int leaks_in_topic(const struct secrets *s, const char *topic)
{
    struct records recs;
    int found = 0;
    harness_read_topic(topic, 64, 64, 5000, 0, &recs);
    for (size_t i = 0; i < recs.n; i++) {
        const rd_kafka_message_t *m = recs.m[i];
        rd_kafka_headers_t *hdrs = NULL;
        found += leaks(s, topic, m->payload, m->len) + leaks(s, topic, m->key, m->key_len);
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            const char *name;
            const void *v;
            size_t vlen;
            for (size_t h = 0; rd_kafka_header_get_all(hdrs, h, &name, &v, &vlen) == 0; h++)
                found += leaks(s, topic, v, vlen);
        }
    }
    printf("# %s: %zu record(s) scanned\n", topic, recs.n);
    records_free(&recs);
    return found;
}

/* The secrets in any row of `table` (the row as text). */
static int leaks_in_table(const struct secrets *s, sl_pg_t *pg, const char *table)
{
    int found = 0;
    char sql[1024];
    for (size_t i = 0; i < s->n; i++) {
        SL_REQUIRE(!strchr(s->v[i], '\''));
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s t WHERE strpos(t::text, '%s') > 0",
                 table, s->v[i]);
        long long rows = pg_test_int(pg, sql);
        if (rows != 0) {
            printf("# secret #%zu (%.4s...) found in %lld row(s) of %s\n", i, s->v[i], rows, table);
            found++;
        }
    }
    return found;
}

/* The secrets in GET /readyz and /metrics of the binary on `port`. */
static int leaks_in_admin(const struct secrets *s, int port, const char *name)
{
    char *body = malloc(ADMIN_BODY_MAX), where[128];
    SL_REQUIRE(body);
    int found = 0;
    static const char *const paths[] = {"/readyz", "/metrics"};
    for (size_t i = 0; i < 2; i++) {
        SL_CHECK(sl_testenv_http_get(port, paths[i], body, ADMIN_BODY_MAX) > 0);
        snprintf(where, sizeof(where), "%s %s", name, paths[i]);
        found += leaks(s, where, body, strlen(body));
    }
    free(body);
    return found;
}

static char *base64(const char *in)
{
    size_t len = strlen(in);
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    SL_REQUIRE(out);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)len);
    return out;
}

/* Polls GET /readyz on `port` until 200 (60 s at most). */
static bool wait_ready(int port)
{
    char body[1024];
    for (int i = 0; i < 600; i++) {
        if (sl_testenv_http_get(port, "/readyz", body, sizeof(body)) == 200)
            return true;
        usleep(100000);
    }
    return false;
}

SL_TEST(stripe_charge_reaches_both_destinations_normalized)
{
    char prefix[128], topic[256], config[4096], listen[64], admin[64], group[128];
    sl_testenv_unique("sluice-test-e2e", prefix, sizeof(prefix) - 1);
    strcat(prefix, ".");
    static const char *const topics[] = {
        "ingress",         "validated", "normalized", "deliver.crm", "deliver.warehouse",
        "deliver.archive", "dlq",       "audit",      "outcomes"};
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        snprintf(topic, sizeof(topic), "%s%s", prefix, topics[i]);
        sl_testenv_create_topic(topic, 3);
    }
    /* The example's ${VAR}s: this run's topics, and the secrets the ingress verifies with. */
    write_config(config, sizeof(config));
    setenv("SLUICE_TOPIC_PREFIX", prefix, 1);
    setenv("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET, 1);
    setenv("CRM_WEBHOOK_SECRET", CRM_WEBHOOK, 1);
    setenv("GITHUB_WEBHOOK_SECRET", GITHUB_WEBHOOK, 1);
    /* The destinations: two simulators; the audit database: a schema of this run's. */
    struct sl_err err;
    char url[512], schema[64], dsn[PG_TEST_DSN_MAX];
    const char *crm_args[] = {"--oauth-client", "sluice:" CRM_CLIENT_SECRET, "--require-bearer",
                              NULL};
    destsim_t *crm = destsim_start(NULL, crm_args, &err);
    SL_REQUIRE(crm);
    destsim_t *warehouse = destsim_start(NULL, NULL, &err);
    SL_REQUIRE(warehouse);
    destsim_t *archive = destsim_start(NULL, NULL, &err);
    SL_REQUIRE(archive);
    snprintf(url, sizeof(url), "%s/archive", destsim_url(archive));
    setenv("ARCHIVE_URL", url, 1);
    setenv("ARCHIVE_USER", ARCHIVE_USER, 1);
    setenv("ARCHIVE_PASSWORD", ARCHIVE_PASSWORD, 1);
    snprintf(url, sizeof(url), "%s/crm/payments", destsim_url(crm));
    setenv("CRM_API_URL", url, 1);
    snprintf(url, sizeof(url), "%s/_sim/oauth/token", destsim_url(crm));
    setenv("CRM_TOKEN_URL", url, 1);
    setenv("CRM_CLIENT_SECRET", CRM_CLIENT_SECRET, 1);
    setenv("CRM_SIGNING_SECRET", CRM_SIGNING, 1);
    snprintf(url, sizeof(url), "%s/ingest", destsim_url(warehouse));
    setenv("WAREHOUSE_URL", url, 1);
    setenv("WAREHOUSE_TOKEN", WAREHOUSE_TOKEN, 1);
    pg_test_schema(schema, dsn);
    setenv("SLUICE_PG_DSN", dsn, 1);
    sl_pg_t *pg = pg_test_handle(dsn, 0);
    pg_test_migrate(pg);

    int http_port = sl_testenv_free_port(), admin_port[N_STAGES + 1];
    pid_t pids[N_STAGES + 1];
    /* What each binary writes in this run starts at its log's present end. */
    char logs[N_STAGES + 1][64];
    long log_from[N_STAGES + 1];
    snprintf(logs[0], sizeof(logs[0]), "e2e-ingress");
    for (size_t i = 0; i < N_STAGES; i++)
        snprintf(logs[i + 1], sizeof(logs[i + 1]), "e2e-%s", stages[i]);
    for (size_t i = 0; i <= N_STAGES; i++)
        log_from[i] = log_size(logs[i]);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", http_port);
    admin_port[0] = sl_testenv_free_port();
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", admin_port[0]);
    const char *ingress_args[] = {"--config",       config, "--listen", listen,
                                  "--admin-listen", admin,  NULL};
    pids[0] = sl_testenv_spawn("sluice-ingress", ingress_args, logs[0]);
    for (size_t i = 0; i < N_STAGES; i++) {
        char name[64];
        admin_port[i + 1] = sl_testenv_free_port();
        snprintf(admin, sizeof(admin), "127.0.0.1:%d", admin_port[i + 1]);
        snprintf(name, sizeof(name), "sluice-%s", stages[i]);
        sl_testenv_unique(stages[i], group, sizeof(group));
        const char *args[] = {"--config", config, "--admin-listen", admin, "--group", group, NULL};
        if (strcmp(stages[i], "deliver") == 0)
            args[4] = NULL;
        pids[i + 1] = sl_testenv_spawn(name, args, logs[i + 1]);
    }
    SL_REQUIRE(wait_ready(admin_port[0]));

    /* The webhook, signed as Stripe signs it. */
    json_t *in = tf_load("stripe-charge-to-payment", "input");
    json_t *want = tf_load("stripe-charge-to-payment", "expected");
    size_t len;
    char *body = tf_payload(in, &len);
    char sig[VERIFY_SIGNATURE_OUT_MAX], sig_header[VERIFY_SIGNATURE_OUT_MAX + 32];
    SL_REQUIRE(verify_sign_stripe(STRIPE_SECRET, (long)time(NULL), body, len, sig, sizeof(sig),
                                  &err) == 0);
    snprintf(sig_header, sizeof(sig_header), "Stripe-Signature: %s", sig);
    const char *headers[] = {"Content-Type: application/json", sig_header, NULL};
    static struct http_reply reply;
    char id[128] = "";
    SL_CHECK_INT(http_request(http_port, "POST", "/v1/events/stripe", headers, body, len, &reply),
                 202);
    SL_REQUIRE(http_accepted_id(&reply, id, sizeof(id)));

    /* It reaches the three destinations of the `payments` route, normalized. */
    static const char *const dests[] = {"crm", "warehouse", "archive"};
    size_t want_len;
    char *want_payload = tf_payload(want, &want_len);
    for (size_t d = 0; d < 3; d++) {
        struct records recs;
        char buf[512];
        snprintf(topic, sizeof(topic), "%sdeliver.%s", prefix, dests[d]);
        harness_read_topic(topic, 8, 1, 90000, 2000, &recs);
        SL_CHECK_INT(recs.n, 1);
        if (recs.n >= 1) {
            const rd_kafka_message_t *m = recs.m[0];
            SL_CHECK_STR(record_header(m, "ce_id", buf, sizeof(buf)), id);
            SL_CHECK_STR(record_header(m, "ce_type", buf, sizeof(buf)), "payment.succeeded");
            SL_CHECK_STR(record_header(m, "ce_sluiceorigtype", buf, sizeof(buf)),
                         "charge.succeeded");
            SL_CHECK_STR(record_header(m, "ce_source", buf, sizeof(buf)), "stripe");
            SL_CHECK_STR(record_header(m, "ce_sluicesource", buf, sizeof(buf)), "stripe");
            SL_CHECK_STR(record_header(m, "ce_idempotencykey", buf, sizeof(buf)),
                         "evt_3QbEnch0000000042");
            SL_CHECK_STR(record_header(m, "ce_sluiceroute", buf, sizeof(buf)), "payments");
            SL_CHECK_STR(record_header(m, "content-type", buf, sizeof(buf)), "application/json");
            SL_CHECK(m->key_len == strlen(tf_key(want)) &&
                     memcmp(m->key, tf_key(want), m->key_len) == 0);
            SL_CHECK(m->len == want_len && memcmp(m->payload, want_payload, want_len) == 0);
        }
        records_free(&recs);
    }
    /* Nothing was dead-lettered on the way. */
    struct records dlq;
    snprintf(topic, sizeof(topic), "%sdlq", prefix);
    harness_read_topic(topic, 8, 0, 0, 2000, &dlq);
    SL_CHECK_INT(dlq.n, 0);
    records_free(&dlq);

    /* Each destination received it once, with its credentials and the event's key: the id
     * scoped to its source (deliver.h), then the destination. */
    char key[160], sql[512];
    sl_testenv_idempotency_key("stripe", "stripe", id, "crm", key, sizeof(key));
    json_t *req = received(crm, key);
    SL_REQUIRE(req);
    json_t *h = json_object_get(req, "headers");
    SL_CHECK_INT(json_integer_value(json_object_get(req, "status")), 200);
    SL_CHECK_STR(json_string_value(json_object_get(req, "path")), "/crm/payments");
    SL_CHECK_STR(json_string_value(json_object_get(req, "body")), want_payload);
    const char *bearer = json_string_value(json_object_get(h, "Authorization"));
    SL_REQUIRE(bearer && strncmp(bearer, "Bearer ", 7) == 0);
    char *oauth_token = strdup(bearer + 7); /* the access token destsim issued */
    SL_CHECK_STR(json_string_value(json_object_get(h, "webhook-id")), key);
    SL_CHECK(strncmp(json_string_value(json_object_get(h, "webhook-signature")), "v1,", 3) == 0);
    json_decref(req);
    sl_testenv_idempotency_key("stripe", "stripe", id, "warehouse", key, sizeof(key));
    req = received(warehouse, key);
    SL_REQUIRE(req);
    h = json_object_get(req, "headers");
    SL_CHECK_INT(json_integer_value(json_object_get(req, "status")), 200);
    SL_CHECK_STR(json_string_value(json_object_get(req, "body")), want_payload);
    SL_CHECK_STR(json_string_value(json_object_get(h, "Authorization")), "Bearer " WAREHOUSE_TOKEN);
    SL_CHECK_STR(json_string_value(json_object_get(h, "X-Sluice-Pipeline")), "example");
    json_decref(req);
    sl_testenv_idempotency_key("stripe", "stripe", id, "archive", key, sizeof(key));
    req = received(archive, key);
    SL_REQUIRE(req);
    h = json_object_get(req, "headers");
    char *basic_b64 = base64(ARCHIVE_USER ":" ARCHIVE_PASSWORD), basic[256];
    snprintf(basic, sizeof(basic), "Basic %s", basic_b64);
    SL_CHECK_INT(json_integer_value(json_object_get(req, "status")), 200);
    SL_CHECK_STR(json_string_value(json_object_get(req, "path")), "/archive");
    SL_CHECK_STR(json_string_value(json_object_get(h, "Authorization")), basic);
    json_decref(req);
    json_t *counters = destsim_counters(crm, &err);
    SL_REQUIRE(counters);
    SL_CHECK_INT(json_integer_value(json_object_get(counters, "requests_total")), 1);
    json_decref(counters);

    /* One final outcome per destination. */
    struct records outcomes;
    snprintf(topic, sizeof(topic), "%soutcomes", prefix);
    harness_read_topic(topic, 8, 3, 90000, 2000, &outcomes);
    SL_CHECK_INT(outcomes.n, 3);
    for (size_t i = 0; i < outcomes.n; i++) {
        json_t *o = json_loadb(outcomes.m[i]->payload, outcomes.m[i]->len, 0, NULL);
        SL_CHECK_STR(json_string_value(json_object_get(o, "event_id")), id);
        SL_CHECK_STR(json_string_value(json_object_get(o, "outcome")), "delivered");
        json_decref(o);
    }
    records_free(&outcomes);

    /* The audit trail: each stage's decision and the three deliveries; the event's state per
     * destination. */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM audit WHERE event_id = '%s' AND (stage, outcome, "
             "coalesce(destination, '')) IN (('validate', 'passed', ''), ('transform', "
             "'passed', ''), ('route', 'passed', ''), ('deliver', 'delivered', 'crm'), "
             "('deliver', 'delivered', 'warehouse'), ('deliver', 'delivered', 'archive'))",
             id);
    SL_CHECK_INT(pg_test_wait_int(pg, sql, 6), 6);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM event_status WHERE event_id = '%s' AND state = 'delivered' "
             "AND destination IN ('crm', 'warehouse', 'archive') AND source = 'stripe'",
             id);
    SL_CHECK_INT(pg_test_wait_int(pg, sql, 3), 3);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM audit WHERE event_id = '%s'", id);
    SL_CHECK_INT(pg_test_int(pg, sql), 6);

    /* The secret scan. Every secret of the pipeline file, the forms they take on the wire, and
     * the access token the CRM's token endpoint issued. */
    struct secrets secrets = {0};
    secret_add(&secrets, STRIPE_SECRET, false);
    secret_add(&secrets, CRM_WEBHOOK, false);
    secret_add(&secrets, GITHUB_WEBHOOK, false);
    secret_add(&secrets, CRM_CLIENT_SECRET, false);
    secret_add(&secrets, oauth_token, true);
    secret_add(&secrets, CRM_SIGNING, false);
    secret_add(&secrets, &CRM_SIGNING[strlen("whsec_")], false); /* the key's base64 */
    secret_add(&secrets, WAREHOUSE_TOKEN, false);
    secret_add(&secrets, ARCHIVE_PASSWORD, false);
    secret_add(&secrets, basic_b64, true); /* the Authorization header's credentials */
    int found = 0;
    for (size_t i = 0; i <= N_STAGES; i++)
        found += leaks_in_admin(&secrets, admin_port[i], logs[i]);
    static const char *const scanned[] = {"outcomes", "dlq", "audit"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(topic, sizeof(topic), "%s%s", prefix, scanned[i]);
        found += leaks_in_topic(&secrets, topic);
    }
    for (size_t i = 0; i <= N_STAGES; i++)
        SL_CHECK_INT(sl_testenv_stop(pids[i], SIGTERM, 60000), 0);
    /* After the stops, so that shutdown lines count too; the tables once the sinks are done. */
    for (size_t i = 0; i <= N_STAGES; i++)
        found += leaks_in_log(&secrets, logs[i], log_from[i]);
    found += leaks_in_table(&secrets, pg, "audit") + leaks_in_table(&secrets, pg, "dead_letters") +
             leaks_in_table(&secrets, pg, "event_status");
    SL_CHECK_INT(found, 0);
    for (size_t i = 0; i < secrets.n; i++)
        if (secrets.owned[i])
            free((char *)secrets.v[i]);
    SL_CHECK_INT(destsim_stop(crm), 0);
    SL_CHECK_INT(destsim_stop(warehouse), 0);
    SL_CHECK_INT(destsim_stop(archive), 0);
    sl_pg_destroy(pg);
    free(want_payload);
    free(body);
    json_decref(in);
    json_decref(want);
}

int main(void)
{
    int rc = sl_test_run_all();
    pg_test_cleanup();
    return rc;
}
