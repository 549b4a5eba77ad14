/* sluice-transform as a real process against the real broker, a private redis-server and a
 * destination simulator standing in for an internal API:
 *   - the example pipeline (deploy/examples/pipeline.yaml, unchanged) maps every fixture of
 *     tests/data/transform/ to exactly the expected record, GitHub's enriched from Redis;
 *   - the canonical-schema guard, a runtime error, pass-through and `transform.required`;
 *   - enrichment from Redis (GET, HGET, chained) and HTTP (cached in Redis): hits, misses with
 *     both on_missing modes;
 *   - outages: Redis killed mid-run, the API answering 503 and then too slowly: events are held
 *     (/readyz says why, nothing goes out) and each arrives exactly once afterwards. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "destsim_client.h"
#include "sl_cloudevent.h"
#include "sl_redis.h"
#include "redis_private.h"
#include "sl_test.h"
#include "sl_testenv.h"
#include "transform_fixture.h"

#define MAX_MSGS 128

struct run {
    struct sl_testenv_topics t;
    char config[4096];
    char group[128], admin[64];
    int admin_port;
};

/* A fresh prefix with its topics; `extra` (may be NULL) becomes the pipeline file, else the
 * caller runs the example file with SLUICE_TOPIC_PREFIX = r->t.prefix. */
static void setup(struct run *r, const char *name, const char *extra)
{
    sl_testenv_stage_topics(&r->t, name, "validated", "normalized");
    if (extra)
        sl_testenv_config(r->t.prefix, extra, r->config, sizeof(r->config));
    else
        snprintf(r->config, sizeof(r->config), "%s/deploy/examples/pipeline.yaml",
                 sl_test_source_dir());
    sl_testenv_unique("group", r->group, sizeof(r->group));
    r->admin_port = sl_testenv_free_port();
    snprintf(r->admin, sizeof(r->admin), "127.0.0.1:%d", r->admin_port);
}

static pid_t start(struct run *r, const char *log)
{
    const char *args[] = {"--config",       r->config, "--group", r->group,
                          "--admin-listen", r->admin,  NULL};
    return sl_testenv_spawn("sluice-transform", args, log);
}

/* ---- producing ---- */

static void on_report(void *opaque, int32_t partition, int64_t offset, const struct sl_err *err)
{
    *(int *)opaque = err ? -1 : 1;
}

/* Produces one record (takes hdrs) and waits for the ack. */
static void produce_raw(const char *topic, const char *key, rd_kafka_headers_t *hdrs,
                        const void *value, size_t len)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    int done = 0;
    sl_testenv_kafka(&s);
    sl_producer_t *p = sl_producer_new(&s, "test-transform-producer", on_report, &err);
    SL_REQUIRE(p);
    SL_REQUIRE(sl_producer_send(p, topic, key, strlen(key), value, len, hdrs, &done, &err) == 0);
    SL_REQUIRE(sl_producer_flush(p, 30000, &err) == 0);
    SL_CHECK_INT(done, 1);
    sl_producer_destroy(p);
}

static void produce_fixture(const char *topic, const json_t *fx)
{
    size_t len;
    char *payload = tf_payload(fx, &len);
    produce_raw(topic, tf_key(fx), tf_headers(fx), payload, len);
    free(payload);
}

/* An event as sluice-validate forwards it, from source `source`. */
static void produce(const char *topic, const char *id, const char *source, const char *type,
                    const char *key, const char *payload)
{
    struct sl_ce ce;
    struct sl_err err;
    sl_ce_init(&ce);
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8);
    SL_REQUIRE(sl_ce_set(&ce, "specversion", "1.0", &err) == 0 &&
               sl_ce_set(&ce, "id", id, &err) == 0 && sl_ce_set(&ce, "source", source, &err) == 0 &&
               sl_ce_set(&ce, "type", type, &err) == 0 &&
               sl_ce_set(&ce, "time", "2026-11-24T17:30:00.123Z", &err) == 0 &&
               sl_ce_set(&ce, "datacontenttype", "application/json", &err) == 0 &&
               sl_ce_set(&ce, SL_CE_SOURCE_NAME, source, &err) == 0 &&
               sl_ce_to_headers(&ce, hdrs, &err) == 0);
    sl_ce_free(&ce);
    produce_raw(topic, key, hdrs, payload, strlen(payload));
}

/* ---- reading back ---- */

static rd_kafka_message_t *find(rd_kafka_message_t **msgs, size_t n, const char *id)
{
    char buf[256];
    for (size_t i = 0; i < n; i++)
        if (sl_testenv_header(msgs[i], "ce_id", buf, sizeof(buf)) && strcmp(buf, id) == 0)
            return msgs[i];
    sl_test_fail(__FILE__, __LINE__, "no record with ce_id %s", id);
    return NULL;
}

/* The payload of the record with ce_id `id`, NUL-terminated into buf ("" when absent). */
static const char *payload_of(rd_kafka_message_t **msgs, size_t n, const char *id, char *buf,
                              size_t size)
{
    rd_kafka_message_t *m = find(msgs, n, id);
    snprintf(buf, size, "%.*s", m ? (int)m->len : 0, m ? (const char *)m->payload : "");
    return buf;
}

/* The audit record of event `id` (the record key). The caller decrefs it. */
static json_t *audit_of(rd_kafka_message_t **msgs, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (msgs[i]->key_len == strlen(id) && memcmp(msgs[i]->key, id, msgs[i]->key_len) == 0)
            return json_loadb(msgs[i]->payload, msgs[i]->len, 0, NULL);
    sl_test_fail(__FILE__, __LINE__, "no audit record for %s", id);
    return NULL;
}

static const char *jstr(json_t *obj, const char *path)
{
    json_t *v = obj;
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *save, *part = strtok_r(buf, ".", &save); part; part = strtok_r(NULL, ".", &save))
        v = json_object_get(v, part);
    return json_string_value(v);
}

/* ---- a private redis-server (redis_private), killed and restarted by the outage test ---- */

/* Runs one command on the private server; returns the reply (the caller frees it). */
static redisReply *redis_do(const rp_t *s, int argc, const char **argv)
{
    struct sl_err err;
    redisReply *reply = NULL;
    sl_redis_t *r = sl_redis_new(rp_url(s), 2000, &err);
    SL_REQUIRE(r);
    if (sl_redis_cmd(r, &reply, argc, argv, NULL, &err) != 0)
        sl_test_fail(__FILE__, __LINE__, "redis %s: %s", argv[0], err.msg);
    sl_redis_destroy(r);
    SL_REQUIRE(reply);
    return reply;
}

static void redis_run(const rp_t *s, int argc, const char **argv)
{
    freeReplyObject(redis_do(s, argc, argv));
}

/* ---- the tests ---- */

SL_TEST(example_pipeline_maps_every_fixture_exactly)
{
    rp_t *srv = rp_start("transform-redis");
    redis_run(srv, 4, (const char *[]){"HSET", "repo-owners", "octo-org/hello-world", "platform"});

    struct run r;
    setup(&r, "transform-examples", NULL);
    setenv("SLUICE_TOPIC_PREFIX", r.t.prefix, 1);
    setenv("SLUICE_REDIS_URL", rp_url(srv), 1);
    size_t n_rules = 0;
    for (; tf_example_rules[n_rules]; n_rules++) {
        json_t *in = tf_load(tf_example_rules[n_rules], "input");
        produce_fixture(r.t.in, in);
        json_decref(in);
    }
    /* A push to a repository nobody claimed: the rule's on_missing is null. */
    json_t *unclaimed = tf_load("github-push-to-code", "input");
    json_object_set_new(json_object_get(unclaimed, "headers"), "ce_id",
                        json_string("unclaimed-push"));
    json_object_set_new(json_object_get(json_object_get(unclaimed, "data"), "repository"),
                        "full_name", json_string("octo-org/unclaimed"));
    produce_fixture(r.t.in, unclaimed);
    json_decref(unclaimed);
    pid_t pid = start(&r, "transform-examples");

    rd_kafka_message_t *msgs[MAX_MSGS];
    rd_kafka_t *c;
    char buf[8192];
    size_t n =
        sl_testenv_read_all(r.t.out, 3, msgs, sizeof(msgs) / sizeof(msgs[0]), n_rules + 1, &c);
    SL_CHECK_INT(n, n_rules + 1);
    for (size_t i = 0; i < n_rules; i++) {
        json_t *want = tf_load(tf_example_rules[i], "expected");
        const char *id =
            json_string_value(json_object_get(json_object_get(want, "headers"), "ce_id"));
        rd_kafka_message_t *m = find(msgs, n, id);
        rd_kafka_headers_t *hdrs = NULL;
        if (m && rd_kafka_message_headers(m, &hdrs) == 0)
            tf_check_record(want, m->key, m->key_len, hdrs, m->payload, m->len,
                            tf_example_rules[i]);
        json_decref(want);
    }
    SL_CHECK_CONTAINS(payload_of(msgs, n, "unclaimed-push", buf, sizeof(buf)),
                      "\"repository\":\"octo-org/unclaimed\"");
    SL_CHECK_CONTAINS(buf, "\"owner_team\":null}");
    sl_testenv_free_records(msgs, n, c);

    n = sl_testenv_read_all(r.t.audit, 3, msgs, sizeof(msgs) / sizeof(msgs[0]), n_rules + 1, &c);
    SL_CHECK_INT(n, n_rules + 1);
    json_t *a = audit_of(msgs, n, "01936052-0a1b-7c2d-8e3f-405162738404");
    SL_CHECK_STR(jstr(a, "outcome"), "passed");
    SL_CHECK_STR(jstr(a, "stage"), "transform");
    SL_CHECK_STR(jstr(a, "detail.rule"), "github-push-to-code");
    SL_CHECK_STR(jstr(a, "detail.schema"), "canonical/code.pushed.json");
    SL_CHECK_STR(jstr(a, "detail.lookups.owner"), "found");
    json_decref(a);
    a = audit_of(msgs, n, "unclaimed-push");
    SL_CHECK_STR(jstr(a, "detail.lookups.owner"), "missing");
    json_decref(a);
    sl_testenv_free_records(msgs, n, c);

    SL_CHECK_INT(sl_testenv_http_get(r.admin_port, "/metrics", buf, sizeof(buf)), 200);
    SL_CHECK_CONTAINS(buf, "sluice_transform_events_total{rule=\"stripe-charge-to-payment\","
                           "result=\"mapped\"} 1\n");
    SL_CHECK_CONTAINS(buf, "sluice_transform_lookups_total{rule=\"github-push-to-code\","
                           "lookup=\"owner\",result=\"missing\"} 1\n");
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
    unsetenv("SLUICE_TOPIC_PREFIX");
    unsetenv("SLUICE_REDIS_URL");
    rp_destroy(srv);
}

#define GUARD_RULES                                                                                \
    "schema_dir: \"%s/schemas\"\n"                                                                 \
    "transforms:\n"                                                                                \
    "  - name: pay\n"                                                                              \
    "    when: '.sluicesource == \"shop\" and .type == \"order.paid\"'\n"                          \
    "    jq: >-\n"                                                                                 \
    "      {type: \"payment.succeeded\", data: {payment_id: .data.id, customer_id: .data.cust,\n"  \
    "       amount_minor: .data.amount, currency: .data.cur, occurred_at: .data.at}}\n"            \
    "    schema: canonical/payment.succeeded.json\n"                                               \
    "  - name: explode\n"                                                                          \
    "    when: '.type == \"boom\"'\n"                                                              \
    "    jq: 'error(\"kaboom: \" + .data.why)'\n"                                                  \
    "transform:\n"                                                                                 \
    "  required: %s\n"

SL_TEST(schema_guard_errors_pass_through_and_required)
{
    struct run r;
    char extra[4096];
    snprintf(extra, sizeof(extra), GUARD_RULES, sl_test_source_dir(), "false");
    setup(&r, "transform-guard", extra);
    static const char good[] = "{\"id\":\"p1\",\"cust\":\"c1\",\"amount\":1250,\"cur\":\"EUR\","
                               "\"at\":\"2026-11-24T17:30:00Z\"}";
    static const char other[] = "{\"anything\": [1, 2.5, \"x\"]}";
    produce(r.t.in, "ev-good", "shop", "order.paid", "c1", good);
    produce(r.t.in, "ev-broken", "shop", "order.paid", "c1",
            "{\"id\":\"p2\",\"cust\":\"c1\",\"amount\":\"12.50\",\"cur\":\"eur\","
            "\"at\":\"2026-11-24T17:30:00Z\"}");
    produce(r.t.in, "ev-other", "shop", "order.created", "c9", other);
    produce(r.t.in, "ev-boom", "shop", "boom", "k", "{\"why\":\"no reason\"}");
    pid_t pid = start(&r, "transform-guard");

    rd_kafka_message_t *msgs[MAX_MSGS];
    rd_kafka_t *c;
    char buf[4096];
    size_t n = sl_testenv_read_all(r.t.out, 3, msgs, sizeof(msgs) / sizeof(msgs[0]), 2, &c);
    SL_CHECK_INT(n, 2);
    SL_CHECK_STR(payload_of(msgs, n, "ev-good", buf, sizeof(buf)),
                 "{\"payment_id\":\"p1\",\"customer_id\":\"c1\",\"amount_minor\":1250,"
                 "\"currency\":\"EUR\",\"occurred_at\":\"2026-11-24T17:30:00Z\"}");
    SL_CHECK_STR(sl_testenv_header(find(msgs, n, "ev-good"), "ce_sluiceorigtype", buf, sizeof(buf)),
                 "order.paid");
    /* No rule: unchanged, byte for byte. */
    SL_CHECK_STR(payload_of(msgs, n, "ev-other", buf, sizeof(buf)), other);
    SL_CHECK_STR(sl_testenv_header(find(msgs, n, "ev-other"), "ce_type", buf, sizeof(buf)),
                 "order.created");
    sl_testenv_free_records(msgs, n, c);

    n = sl_testenv_read_all(r.t.dlq, 1, msgs, sizeof(msgs) / sizeof(msgs[0]), 2, &c);
    SL_CHECK_INT(n, 2);
    rd_kafka_message_t *m = find(msgs, n, "ev-broken");
    SL_CHECK_STR(sl_testenv_header(m, "ce_sluicestage", buf, sizeof(buf)), "transform");
    SL_CHECK_STR(sl_testenv_header(m, "ce_sluicereason", buf, sizeof(buf)),
                 "transform 'pay': the output does not match canonical/payment.succeeded.json: 2 "
                 "errors");
    json_t *errors = json_loads(sl_testenv_header(m, "ce_sluiceerrors", buf, sizeof(buf)), 0, NULL);
    SL_CHECK_INT(json_array_size(errors), 2);
    SL_CHECK_CONTAINS(json_string_value(json_array_get(errors, 0)), "/amount_minor: ");
    SL_CHECK_CONTAINS(json_string_value(json_array_get(errors, 1)), "/currency: ");
    json_decref(errors);
    /* The dead letter is the event as it came, for a replay once the mapping is fixed. */
    SL_CHECK_STR(sl_testenv_header(m, "ce_type", buf, sizeof(buf)), "order.paid");
    SL_CHECK_STR(sl_testenv_header(find(msgs, n, "ev-boom"), "ce_sluicereason", buf, sizeof(buf)),
                 "transform 'explode': expression 'explode': kaboom: no reason");
    sl_testenv_free_records(msgs, n, c);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);

    /* The same with transforms required: the event no rule maps is dead-lettered. */
    snprintf(extra, sizeof(extra), GUARD_RULES, sl_test_source_dir(), "true");
    setup(&r, "transform-required", extra);
    produce(r.t.in, "ev-other", "shop", "order.created", "c9", other);
    pid = start(&r, "transform-required");
    n = sl_testenv_read_all(r.t.dlq, 1, msgs, sizeof(msgs) / sizeof(msgs[0]), 1, &c);
    SL_CHECK_INT(n, 1);
    SL_CHECK_STR(sl_testenv_header(find(msgs, n, "ev-other"), "ce_sluicereason", buf, sizeof(buf)),
                 "no transform rule matched type order.created (transform.required is true)");
    sl_testenv_free_records(msgs, n, c);
    n = sl_testenv_read_all(r.t.audit, 3, msgs, sizeof(msgs) / sizeof(msgs[0]), 1, &c);
    SL_CHECK_INT(n, 1);
    json_t *a = audit_of(msgs, n, "ev-other");
    SL_CHECK_STR(jstr(a, "outcome"), "dead_lettered");
    SL_CHECK(json_is_null(json_object_get(json_object_get(a, "detail"), "rule")));
    json_decref(a);
    sl_testenv_free_records(msgs, n, c);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
}

/* A rule whose lookups read Redis (GET, then HGET with the first result) and an internal API
 * (cached for a minute); with on_missing fail a miss is a dead letter, with null it is null.
 * Format: name, type, API URL, on_missing. */
static const char enrich_rule[] =
    "  - name: %s\n"
    "    when: '.type == \"%s\"'\n"
    "    lookups:\n"
    "      - { name: account, type: redis, key: '\"acct:\" + .data.customer' }\n"
    "      - { name: plan, type: redis, key: '\"plans\"', field: .lookups.account }\n"
    "      - name: customer\n"
    "        type: http\n"
    "        url: '\"%s/customers/\" + (.data.customer | @uri)'\n"
    "        headers: { Authorization: \"Bearer t0ken\" }\n"
    "        timeout: 300ms\n"
    "        cache_ttl: 1m\n"
    "    on_missing: %s\n"
    "    jq: >-\n"
    "      {type: \"order.enriched\", data: {order: .data.id, account: .lookups.account,\n"
    "       plan: .lookups.plan, tier: .lookups.customer.tier}}\n";

/* A rule whose one lookup accepts 16 bytes at most. Format: API URL. */
static const char small_rule[] =
    "  - name: small\n"
    "    when: '.type == \"order.small\"'\n"
    "    lookups: [{ name: big, type: http, url: '\"%s/big\"', max_bytes: 16, cache_ttl: 0 }]\n"
    "    jq: '{type: \"t\", data: .lookups}'\n";

static void enrich_setup(struct run *r, const char *name, const rp_t *srv, const char *api)
{
    char extra[8192];
    int n = snprintf(extra, sizeof(extra),
                     "redis: { url: \"%s\", timeout: 300ms }\n"
                     "transform: { loop: { retry_max: 500ms } }\n"
                     "transforms:\n",
                     rp_url(srv));
    n += snprintf(extra + n, sizeof(extra) - (size_t)n, enrich_rule, "strict", "order.paid", api,
                  "fail");
    n += snprintf(extra + n, sizeof(extra) - (size_t)n, enrich_rule, "lenient",
                  "order.paid.lenient", api, "null");
    snprintf(extra + n, sizeof(extra) - (size_t)n, small_rule, api);
    setup(r, name, extra);
    redis_run(srv, 3, (const char *[]){"SET", "acct:cus_1", "acct_9"});
    redis_run(srv, 3, (const char *[]){"SET", "acct:cus_2", "acct_2"});
    redis_run(srv, 3, (const char *[]){"SET", "acct:cus_5", "acct_2"});
    redis_run(srv, 4, (const char *[]){"HSET", "plans", "acct_9", "pro"});
    redis_run(srv, 4, (const char *[]){"HSET", "plans", "acct_2", "basic"});
}

static const char *const api_rules[] = {
    "--rule",
    "path=/customers/cus_1 header:Authorization=\"Bearer t0ken\" status=200 "
    "body=\"{\\\"tier\\\":\\\"gold\\\"}\"",
    "--rule",
    "path=/customers/cus_5 status=200 body=\"not json\"",
    "--rule",
    "path=/big status=200 body=\"{\\\"tier\\\":\\\"gold, and much more than that\\\"}\"",
    "--rule",
    "path=/customers/* status=404",
    NULL};

SL_TEST(enrichment_hits_misses_and_the_cache)
{
    struct sl_err err;
    rp_t *srv = rp_start("transform-redis");
    destsim_t *api = destsim_start(NULL, api_rules, &err);
    if (!api)
        sl_test_fail(__FILE__, __LINE__, "destsim: %s", err.msg);
    SL_REQUIRE(api);
    struct run r;
    enrich_setup(&r, "transform-enrich", srv, destsim_url(api));
    produce(r.t.in, "hit-1", "shop", "order.paid", "cus_1",
            "{\"id\":\"o1\",\"customer\":\"cus_1\"}");
    produce(r.t.in, "hit-2", "shop", "order.paid", "cus_1",
            "{\"id\":\"o2\",\"customer\":\"cus_1\"}");
    /* No account in Redis: strict dead-letters it, lenient goes on with nulls (the plan's
     * field is then null, and the API answers 404). */
    produce(r.t.in, "miss-redis", "shop", "order.paid", "cus_3",
            "{\"id\":\"o3\",\"customer\":\"cus_3\"}");
    produce(r.t.in, "miss-lenient", "shop", "order.paid.lenient", "cus_3",
            "{\"id\":\"o4\",\"customer\":\"cus_3\"}");
    /* In Redis, but the API does not know the customer. */
    produce(r.t.in, "miss-http", "shop", "order.paid", "cus_2",
            "{\"id\":\"o5\",\"customer\":\"cus_2\"}");
    /* Answers that cannot be used: not JSON, and over the lookup's max_bytes. */
    produce(r.t.in, "not-json", "shop", "order.paid", "cus_5",
            "{\"id\":\"o6\",\"customer\":\"cus_5\"}");
    produce(r.t.in, "too-big", "shop", "order.small", "k", "{}");
    pid_t pid = start(&r, "transform-enrich");

    rd_kafka_message_t *msgs[MAX_MSGS];
    rd_kafka_t *c;
    char buf[4096], want[512];
    size_t n = sl_testenv_read_all(r.t.out, 3, msgs, sizeof(msgs) / sizeof(msgs[0]), 3, &c);
    SL_CHECK_INT(n, 3);
    SL_CHECK_STR(payload_of(msgs, n, "hit-1", buf, sizeof(buf)),
                 "{\"order\":\"o1\",\"account\":\"acct_9\",\"plan\":\"pro\",\"tier\":\"gold\"}");
    SL_CHECK_STR(payload_of(msgs, n, "hit-2", buf, sizeof(buf)),
                 "{\"order\":\"o2\",\"account\":\"acct_9\",\"plan\":\"pro\",\"tier\":\"gold\"}");
    SL_CHECK_STR(payload_of(msgs, n, "miss-lenient", buf, sizeof(buf)),
                 "{\"order\":\"o4\",\"account\":null,\"plan\":null,\"tier\":null}");
    sl_testenv_free_records(msgs, n, c);

    n = sl_testenv_read_all(r.t.dlq, 1, msgs, sizeof(msgs) / sizeof(msgs[0]), 4, &c);
    SL_CHECK_INT(n, 4);
    SL_CHECK_STR(
        sl_testenv_header(find(msgs, n, "miss-redis"), "ce_sluicereason", buf, sizeof(buf)),
        "transform 'strict': lookup 'account': redis GET acct:cus_3: not found "
        "(on_missing: fail)");
    snprintf(want, sizeof(want),
             "transform 'strict': lookup 'customer': HTTP 404 from %s/customers/cus_2 "
             "(on_missing: fail)",
             destsim_url(api));
    SL_CHECK_STR(sl_testenv_header(find(msgs, n, "miss-http"), "ce_sluicereason", buf, sizeof(buf)),
                 want);
    snprintf(want, sizeof(want),
             "transform 'strict': lookup 'customer': the answer of GET %s/customers/cus_5 is not "
             "JSON: ",
             destsim_url(api));
    SL_CHECK_CONTAINS(
        sl_testenv_header(find(msgs, n, "not-json"), "ce_sluicereason", buf, sizeof(buf)), want);
    snprintf(want, sizeof(want),
             "transform 'small': lookup 'big': the answer of %s/big is larger than 16 bytes",
             destsim_url(api));
    SL_CHECK_STR(sl_testenv_header(find(msgs, n, "too-big"), "ce_sluicereason", buf, sizeof(buf)),
                 want);
    sl_testenv_free_records(msgs, n, c);

    n = sl_testenv_read_all(r.t.audit, 3, msgs, sizeof(msgs) / sizeof(msgs[0]), 7, &c);
    SL_CHECK_INT(n, 7);
    json_t *a = audit_of(msgs, n, "hit-1");
    SL_CHECK_STR(jstr(a, "detail.lookups.account"), "found");
    SL_CHECK_STR(jstr(a, "detail.lookups.plan"), "found");
    SL_CHECK_STR(jstr(a, "detail.lookups.customer"), "found");
    json_decref(a);
    /* The second event's customer came from the cache in Redis. */
    a = audit_of(msgs, n, "hit-2");
    SL_CHECK_STR(jstr(a, "detail.lookups.customer"), "cached");
    json_decref(a);
    sl_testenv_free_records(msgs, n, c);

    /* The API saw cus_1 once (then the cache answered), each miss once (404s are not cached,
     * so a customer created later is found) and each unusable answer once. */
    json_t *st = destsim_stats(api, &err);
    SL_REQUIRE(st);
    SL_CHECK_INT(json_integer_value(json_object_get(st, "requests_total")), 5);
    SL_CHECK_INT(json_integer_value(json_object_get(json_object_get(st, "by_status"), "200")), 3);
    json_decref(st);
    redisReply *keys = redis_do(srv, 2, (const char *[]){"KEYS", "*lookup:*"});
    SL_CHECK_INT(keys->elements, 1);
    if (keys->elements == 1) {
        snprintf(want, sizeof(want), "%slookup:", r.t.prefix);
        SL_CHECK(strncmp(keys->element[0]->str, want, strlen(want)) == 0);
        redisReply *ttl = redis_do(srv, 2, (const char *[]){"PTTL", keys->element[0]->str});
        SL_CHECK(ttl->integer > 0 && ttl->integer <= 60000);
        freeReplyObject(ttl);
    }
    freeReplyObject(keys);

    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
    SL_CHECK_INT(destsim_stop(api), 0);
    rp_destroy(srv);
}

SL_TEST(outages_hold_events_and_lose_none)
{
    struct sl_err err;
    rp_t *srv = rp_start("transform-redis");
    const char *const api_args[] = {"--rule", "path=/customers/* status=503", NULL};
    destsim_t *api = destsim_start(NULL, api_args, &err);
    SL_REQUIRE(api);
    struct run r;
    enrich_setup(&r, "transform-outage", srv, destsim_url(api));
    pid_t pid = start(&r, "transform-outage");
    char body[8192], id[32], want[256];

    /* The API answers 503: the first event waits, and everything behind it. */
    enum { N = 6 };
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "ev-%d", i);
        produce(r.t.in, id, "shop", "order.paid", "cus_1", "{\"id\":\"o\",\"customer\":\"cus_1\"}");
        if (i == 0) {
            snprintf(want, sizeof(want), "lookup 'customer': HTTP 503 from %s/customers/cus_1",
                     destsim_url(api));
            SL_CHECK_INT(sl_testenv_wait_ready(r.admin_port, 503, want, body, sizeof(body)), 503);
            SL_CHECK_CONTAINS(body, "waiting on a dependency: transform 'strict': ");
        }
    }
    rd_kafka_message_t *msgs[MAX_MSGS];
    rd_kafka_t *c = sl_testenv_consumer(r.t.out, 3);
    SL_CHECK_INT(sl_testenv_consume(c, msgs, 1, 3000), 0);

    /* Then too slow for the lookup's deadline: still held. */
    SL_REQUIRE(destsim_set_rules(api,
                                 "path=/customers/* delay_ms=2000 status=200 "
                                 "body=\"{\\\"tier\\\":\\\"gold\\\"}\"",
                                 &err) == 0);
    SL_CHECK_INT(
        sl_testenv_wait_ready(r.admin_port, 503, "no answer within 300 ms", body, sizeof(body)),
        503);

    /* Then Redis dies, and the API comes back: held on Redis now. */
    rp_kill(srv);
    SL_REQUIRE(
        destsim_set_rules(api, "path=/customers/* status=200 body=\"{\\\"tier\\\":\\\"gold\\\"}\"",
                          &err) == 0);
    SL_CHECK_INT(sl_testenv_wait_ready(r.admin_port, 503,
                                       "lookup 'account': redis GET acct:cus_1: ", body,
                                       sizeof(body)),
                 503);
    SL_CHECK_INT(sl_testenv_consume(c, msgs, 1, 2000), 0);

    /* Redis is back (with its data): every event arrives once, in order (one key). */
    rp_restart(srv);
    size_t n = sl_testenv_consume(c, msgs, N, 60000);
    n += sl_testenv_consume(c, msgs + n, MAX_MSGS - n, 2000);
    SL_CHECK_INT(n, N);
    for (size_t i = 0; i < n; i++) {
        snprintf(want, sizeof(want), "ev-%zu", i);
        SL_CHECK_STR(sl_testenv_header(msgs[i], "ce_id", id, sizeof(id)), want);
    }
    sl_testenv_free_records(msgs, n, c);
    SL_CHECK_INT(sl_testenv_wait_ready(r.admin_port, 200, "", body, sizeof(body)), 200);
    SL_CHECK_INT(sl_testenv_http_get(r.admin_port, "/metrics", body, sizeof(body)), 200);
    SL_CHECK_CONTAINS(body, "sluice_transform_lookups_total{rule=\"strict\",lookup=\"customer\","
                            "result=\"retry\"}");
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
    SL_CHECK_INT(destsim_stop(api), 0);
    rp_destroy(srv);
}

SL_TEST(bad_mapping_stops_start_up_naming_the_rule)
{
    char config[4096], log[4200], text[8192] = "", name[96];
    sl_testenv_config(
        "sluice-test-transform-bad.",
        "transforms:\n  - name: broken-rule\n    jq: '{type: \"x\", data: .data |}'\n", config,
        sizeof(config));
    sl_testenv_unique("transform-bad", name, sizeof(name));
    const char *args[] = {"--config", config, "--admin-listen", "127.0.0.1:0", NULL};
    pid_t pid = sl_testenv_spawn("sluice-transform", args, name);
    SL_CHECK_INT(sl_testenv_stop(pid, 0, 30000), 2);
    snprintf(log, sizeof(log), "%s/tests/%s.log", sl_test_binary_dir(), name);
    FILE *f = fopen(log, "r");
    SL_REQUIRE(f);
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    text[len] = '\0';
    fclose(f);
    char want[4200];
    snprintf(want, sizeof(want), "%s:7: transforms[0].jq: expression 'broken-rule': ", config);
    SL_CHECK_CONTAINS(text, want);
}

SL_TEST_MAIN()
