/* sluice-validate as a real process against the real broker and Redis: valid events reach
 * <prefix>validated byte for byte with their key and headers; invalid, malformed, unknown-source
 * and schema-less (require_schema) events are dead-lettered with every error; a sender's retry
 * is a duplicate (audited, not forwarded) while the same record processed again after a crash is
 * not; and a Redis outage in the middle of a run holds events (nothing forwarded, /readyz 503)
 * until Redis is back, after which every event arrives exactly once. Schemas are the
 * repository's (schemas/sources/...). */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sl_cloudevent.h"
#include "sl_redis.h"
#include "redis_private.h"
#include "sl_test.h"
#include "sl_testenv.h"

#define MAX_MSGS 128

struct run {
    struct sl_testenv_topics t;
    char config[4096];
    char group[128], admin[64];
    int admin_port;
};

/* The sources every test uses, after `redis` settings (may be ""). */
static void setup(struct run *r, const char *name, const char *redis)
{
    char extra[4096];
    sl_testenv_stage_topics(&r->t, name, "ingress", "validated");
    snprintf(extra, sizeof(extra),
             "%s"
             "schema_dir: \"%s/schemas\"\n"
             "sources:\n"
             "  stripe:\n"
             "    verify: { scheme: none }\n"
             "    schemas:\n"
             "      charge.succeeded: sources/stripe/charge.succeeded.json\n"
             "      \"*\": sources/stripe/event.json\n"
             "  crm:\n"
             "    verify: { scheme: none }\n"
             "    schemas: { contact.updated: sources/crm/contact.updated.json }\n"
             "    require_schema: true\n"
             "  open:\n"
             "    verify: { scheme: none }\n"
             "validate:\n"
             "  loop: { retry_max: 1s }\n",
             redis, sl_test_source_dir());
    sl_testenv_config(r->t.prefix, extra, r->config, sizeof(r->config));
    sl_testenv_unique("group", r->group, sizeof(r->group));
    r->admin_port = sl_testenv_free_port();
    snprintf(r->admin, sizeof(r->admin), "127.0.0.1:%d", r->admin_port);
}

static pid_t start(struct run *r, const char *log)
{
    const char *args[] = {"--config",       r->config, "--group", r->group,
                          "--admin-listen", r->admin,  NULL};
    return sl_testenv_spawn("sluice-validate", args, log);
}

/* ---- producing events as sluice-ingress writes them ---- */

struct ev {
    const char *id, *source, *type, *idem; /* source, idem NULL: attribute left out */
    const char *key, *value;
    int32_t partition; /* filled by produce() */
    int64_t offset;
    const char *ce_source; /* the CloudEvents source; NULL: `source` */
};

static void on_report(void *opaque, int32_t partition, int64_t offset, const struct sl_err *err)
{
    struct ev *e = opaque;
    e->partition = err ? -1 : partition;
    e->offset = err ? -1 : offset;
}

/* The attributes of `e` as sluice-ingress sets them. */
static void ce_of(const struct ev *e, struct sl_ce *ce)
{
    struct sl_err err;
    sl_ce_init(ce);
    SL_REQUIRE(sl_ce_set(ce, "specversion", "1.0", &err) == 0 &&
               sl_ce_set(ce, "id", e->id, &err) == 0 &&
               sl_ce_set(ce, "source",
                         e->ce_source ? e->ce_source
                         : e->source  ? e->source
                                      : "elsewhere",
                         &err) == 0 &&
               sl_ce_set(ce, "type", e->type, &err) == 0 &&
               sl_ce_set(ce, "time", "2026-11-24T17:30:00.123Z", &err) == 0 &&
               sl_ce_set(ce, "datacontenttype", "application/json", &err) == 0 &&
               sl_ce_set(ce, SL_CE_TRACEPARENT,
                         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &err) == 0 &&
               sl_ce_set(ce, SL_CE_PARTITION_KEY, e->key, &err) == 0);
    if (e->idem)
        SL_REQUIRE(sl_ce_set(ce, SL_CE_IDEMPOTENCY_KEY, e->idem, &err) == 0);
    if (e->source)
        SL_REQUIRE(sl_ce_set(ce, SL_CE_SOURCE_NAME, e->source, &err) == 0);
}

/* Produces every event in order and waits for the acks; fills each one's partition/offset. */
static void produce(const char *topic, struct ev *evs, size_t n)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    sl_testenv_kafka(&s);
    sl_producer_t *p = sl_producer_new(&s, "test-validate-producer", on_report, &err);
    SL_REQUIRE(p);
    for (size_t i = 0; i < n; i++) {
        struct sl_ce ce;
        ce_of(&evs[i], &ce);
        rd_kafka_headers_t *hdrs = rd_kafka_headers_new(12);
        SL_REQUIRE(sl_ce_to_headers(&ce, hdrs, &err) == 0);
        sl_ce_free(&ce);
        evs[i].partition = -1;
        SL_REQUIRE(sl_producer_send(p, topic, evs[i].key, strlen(evs[i].key), evs[i].value,
                                    strlen(evs[i].value), hdrs, &evs[i], &err) == 0);
    }
    SL_REQUIRE(sl_producer_flush(p, 30000, &err) == 0);
    sl_producer_destroy(p);
    for (size_t i = 0; i < n; i++)
        SL_REQUIRE(evs[i].partition >= 0);
}

/* ---- reading back ---- */

/* The audit records, by event id (the record key). The caller decrefs each. */
static json_t *audit_of(rd_kafka_message_t **msgs, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (msgs[i]->key_len == strlen(id) && memcmp(msgs[i]->key, id, msgs[i]->key_len) == 0)
            return json_loadb(msgs[i]->payload, msgs[i]->len, 0, NULL);
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

/* The record as it came in: same value, key and headers (names, values, order). */
static void check_unchanged(rd_kafka_message_t *m, const struct ev *e)
{
    SL_REQUIRE(m);
    SL_CHECK(m->len == strlen(e->value) && memcmp(m->payload, e->value, m->len) == 0);
    SL_CHECK(m->key_len == strlen(e->key) && memcmp(m->key, e->key, m->key_len) == 0);
    struct sl_ce ce;
    struct sl_err err;
    ce_of(e, &ce);
    rd_kafka_headers_t *want = rd_kafka_headers_new(12), *got = NULL;
    SL_REQUIRE(sl_ce_to_headers(&ce, want, &err) == 0);
    sl_ce_free(&ce);
    SL_REQUIRE(rd_kafka_message_headers(m, &got) == 0);
    SL_CHECK_INT(rd_kafka_header_cnt(got), rd_kafka_header_cnt(want));
    for (size_t i = 0; i < rd_kafka_header_cnt(want); i++) {
        const char *wn, *gn;
        const void *wv, *gv;
        size_t wl, gl;
        SL_REQUIRE(rd_kafka_header_get_all(want, i, &wn, &wv, &wl) == 0);
        if (rd_kafka_header_get_all(got, i, &gn, &gv, &gl) != 0) {
            sl_test_fail(__FILE__, __LINE__, "header %zu (%s) missing", i, wn);
            continue;
        }
        SL_CHECK_STR(gn, wn);
        SL_CHECK(gl == wl && memcmp(gv, wv, wl) == 0);
    }
    rd_kafka_headers_destroy(want);
}

/* ---- the tests ---- */

static const char charge_fmt[] =
    "{\"id\":\"evt_%s\",\"object\":\"event\",\"type\":\"charge.succeeded\",\"created\":1732467000,"
    "\"livemode\":false,\"data\":{\"object\":{\"id\":\"ch_3PqRsT\",\"object\":\"charge\","
    "\"amount\":%d,\"currency\":\"%s\",%s\"status\":\"succeeded\",\"description\":null,"
    "\"metadata\":{\"order\":\"A-1\"}}}}";

static void charge(char *buf, size_t size, const char *id, int amount, const char *currency,
                   const char *customer)
{
    snprintf(buf, size, charge_fmt, id, amount, currency, customer);
}

SL_TEST(valid_invalid_unknown_and_schemaless_events)
{
    struct run r;
    setup(&r, "validate", "");
    char valid[1024], invalid[1024];
    charge(valid, sizeof(valid), "1Valid", 2000, "usd", "\"customer\":\"cus_9Abc\",");
    /* Three errors: amount below 1, currency not lowercase, customer missing. */
    charge(invalid, sizeof(invalid), "2Invalid", 0, "USD", "");
    struct ev evs[] = {
        {"ev-valid", "stripe", "charge.succeeded", "evt_1Valid", "cus_9Abc", valid},
        {"ev-invalid", "stripe", "charge.succeeded", "evt_2Invalid", "cus_x", invalid},
        {"ev-ghost", "ghost", "charge.succeeded", "g-1", "k", valid},
        {"ev-malformed", "stripe", "charge.succeeded", "evt_3", "k", "{\"id\":"},
        {"ev-noschema", "crm", "contact.deleted", "crm-1", "k", "{\"contact\":{}}"},
        {"ev-open", "open", "open.anything", "open-1", "k-open", "{\"free\": [1, 2]}"},
    };
    produce(r.t.in, evs, sizeof(evs) / sizeof(evs[0]));
    pid_t pid = start(&r, "validate-verdicts");

    rd_kafka_message_t *msgs[MAX_MSGS];
    rd_kafka_t *c;
    char buf[4096];
    size_t n = sl_testenv_read_all(r.t.out, 3, msgs, sizeof(msgs) / sizeof(msgs[0]), 2, &c);
    SL_CHECK_INT(n, 2);
    check_unchanged(sl_testenv_find(msgs, n, "ev-valid"), &evs[0]);
    check_unchanged(sl_testenv_find(msgs, n, "ev-open"), &evs[5]);
    sl_testenv_free_records(msgs, n, c);

    n = sl_testenv_read_all(r.t.dlq, 1, msgs, sizeof(msgs) / sizeof(msgs[0]), 4, &c);
    SL_CHECK_INT(n, 4);
    rd_kafka_message_t *m = sl_testenv_find(msgs, n, "ev-invalid");
    SL_REQUIRE(m);
    SL_CHECK_STR(sl_testenv_header(m, "ce_sluicestage", buf, sizeof(buf)), "validate");
    SL_CHECK_STR(sl_testenv_header(m, "ce_sluicereason", buf, sizeof(buf)),
                 "schema validation failed: 3 errors against sources/stripe/charge.succeeded.json");
    json_t *errors = json_loads(sl_testenv_header(m, "ce_sluiceerrors", buf, sizeof(buf)), 0, NULL);
    SL_CHECK_INT(json_array_size(errors), 3);
    SL_CHECK_STR(json_string_value(json_array_get(errors, 0)),
                 "/data/object: /properties/data/properties/object/$ref/required: missing "
                 "required property \"customer\"");
    SL_CHECK_STR(json_string_value(json_array_get(errors, 1)),
                 "/data/object/amount: /properties/data/properties/object/$ref/properties/amount/"
                 "minimum: 0 is less than 1");
    SL_CHECK_STR(json_string_value(json_array_get(errors, 2)),
                 "/data/object/currency: /properties/data/properties/object/$ref/properties/"
                 "currency/pattern: \"USD\" does not match the pattern \"^[a-z]{3}$\"");
    json_decref(errors);
    SL_CHECK(m->len == strlen(invalid) && memcmp(m->payload, invalid, m->len) == 0);
    SL_CHECK_STR(sl_testenv_header(sl_testenv_find(msgs, n, "ev-ghost"), "ce_sluicereason", buf,
                                   sizeof(buf)),
                 "unknown source ghost (not in the pipeline file)");
    SL_CHECK_CONTAINS(sl_testenv_header(sl_testenv_find(msgs, n, "ev-malformed"), "ce_sluicereason",
                                        buf, sizeof(buf)),
                      "malformed JSON at byte ");
    SL_CHECK_STR(sl_testenv_header(sl_testenv_find(msgs, n, "ev-noschema"), "ce_sluicereason", buf,
                                   sizeof(buf)),
                 "no schema for type contact.deleted of source crm");
    sl_testenv_free_records(msgs, n, c);

    n = sl_testenv_read_all(r.t.audit, 3, msgs, sizeof(msgs) / sizeof(msgs[0]), 6, &c);
    SL_CHECK_INT(n, 6);
    json_t *a = audit_of(msgs, n, "ev-valid");
    SL_CHECK_STR(jstr(a, "outcome"), "passed");
    SL_CHECK_STR(jstr(a, "stage"), "validate");
    SL_CHECK_STR(jstr(a, "source"), "stripe");
    SL_CHECK_STR(jstr(a, "detail.schema"), "sources/stripe/charge.succeeded.json");
    SL_CHECK_STR(jstr(a, "detail.dedup"), "first");
    json_decref(a);
    a = audit_of(msgs, n, "ev-open");
    SL_CHECK_STR(jstr(a, "outcome"), "passed");
    SL_CHECK(json_is_null(json_object_get(json_object_get(a, "detail"), "schema")));
    SL_CHECK_CONTAINS(jstr(a, "detail.note"), "unvalidated");
    json_decref(a);
    a = audit_of(msgs, n, "ev-invalid");
    SL_CHECK_STR(jstr(a, "outcome"), "dead_lettered");
    SL_CHECK_INT(json_array_size(json_object_get(a, "errors")), 3);
    json_decref(a);
    sl_testenv_free_records(msgs, n, c);

    SL_CHECK_INT(sl_testenv_http_get(r.admin_port, "/metrics", buf, sizeof(buf)), 200);
    SL_CHECK_CONTAINS(buf, "sluice_validate_events_total{source=\"stripe\",type=\"charge."
                           "succeeded\",result=\"invalid\"} 1\n");
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
}

/* A handle on the shared Redis the `services` fixture runs (SLUICE_REDIS_URL). */
static sl_redis_t *shared_redis(void)
{
    struct sl_err err;
    const char *url;
    int timeout_ms;
    SL_REQUIRE(sl_redis_settings(NULL, &url, &timeout_ms, &err) == 0);
    sl_redis_t *redis = sl_redis_new(url, 2000, &err);
    SL_REQUIRE(redis);
    return redis;
}

/* Claims the dedup key of (source, idem) for the record at topic/partition/offset, as the
 * stage would have before a crash, in the key format of the builds before the scoped id
 * (validate.h, Upgrade): so the cases below also show that claims made before an upgrade
 * still count after it. */
static void preclaim(sl_redis_t *redis, const struct run *r, const char *source, const char *idem,
                     const char *topic, int32_t partition, int64_t offset, const char *id)
{
    char key[512], value[512];
    struct sl_err err;
    redisReply *reply;
    snprintf(key, sizeof(key), "%sdedup:%s:%s", r->t.prefix, source, idem);
    snprintf(value, sizeof(value), "%s/%d/%lld %s", topic, (int)partition, (long long)offset, id);
    const char *argv[] = {"SET", key, value, "PX", "600000"};
    SL_REQUIRE(sl_redis_cmd(redis, &reply, 5, argv, NULL, &err) == 0);
    freeReplyObject(reply);
}

SL_TEST(duplicates_are_audited_and_reprocessed_records_pass)
{
    struct run r;
    setup(&r, "validate-dedup", "");
    char a[1024], b[1024], cev[1024], d[1024], e[1024];
    charge(a, sizeof(a), "A1", 100, "eur", "\"customer\":\"cus_A\",");
    charge(b, sizeof(b), "A1", 100, "eur", "\"customer\":\"cus_A\",");
    charge(cev, sizeof(cev), "C1", 300, "eur", "\"customer\":\"cus_C\",");
    charge(d, sizeof(d), "D1", 400, "eur", "\"customer\":\"cus_D\",");
    charge(e, sizeof(e), "E1", 500, "eur", "\"customer\":\"cus_E\",");
    /* The record key is the idempotency key (ingress's default partition key), so every
     * delivery of one business event is on one partition, in order. */
    struct ev evs[] = {
        /* A webhook and the provider's retry: ingress gave each delivery its own id. */
        {"a-1", "stripe", "charge.succeeded", "evt_A1", "evt_A1", a},
        {"a-2", "stripe", "charge.succeeded", "evt_A1", "evt_A1", b},
        /* A CloudEvent sent twice: both records carry the sender's id. Two records are two
         * deliveries, so the second is a duplicate even with the same id (the event id alone
         * could not tell this from the crash case below; the record's position can). */
        {"c-1", "stripe", "charge.succeeded", "c-1", "c-1", cev},
        {"c-1", "stripe", "charge.succeeded", "c-1", "c-1", cev},
        /* The crash case: this record's claim is already in Redis (set below), as after a
         * crash or an aborted transaction between the claim and the commit. */
        {"d-1", "stripe", "charge.succeeded", "evt_D1", "evt_D1", d},
        /* A claim held by another record: a duplicate even though no earlier record is in
         * this topic (its first delivery was, say, before a replay). */
        {"e-2", "stripe", "charge.succeeded", "evt_E1", "evt_E1", e},
        /* No idempotency key: no dedup. */
        {"f-1", "open", "open.thing", NULL, "f", "{}"},
    };
    produce(r.t.in, evs, sizeof(evs) / sizeof(evs[0]));
    sl_redis_t *redis = shared_redis();
    preclaim(redis, &r, "stripe", "evt_D1", r.t.in, evs[4].partition, evs[4].offset, "d-1");
    preclaim(redis, &r, "stripe", "evt_E1", r.t.in, 0, 0, "e-1");
    sl_redis_destroy(redis);
    pid_t pid = start(&r, "validate-dedup");

    rd_kafka_message_t *msgs[MAX_MSGS];
    rd_kafka_t *c;
    char buf[512];
    size_t n = sl_testenv_read_all(r.t.out, 3, msgs, sizeof(msgs) / sizeof(msgs[0]), 4, &c);
    SL_CHECK_INT(n, 4);
    check_unchanged(sl_testenv_find(msgs, n, "a-1"), &evs[0]);
    check_unchanged(sl_testenv_find(msgs, n, "c-1"), &evs[2]);
    check_unchanged(sl_testenv_find(msgs, n, "d-1"), &evs[4]);
    check_unchanged(sl_testenv_find(msgs, n, "f-1"), &evs[6]);
    SL_CHECK(!sl_testenv_find(msgs, n, "a-2") && !sl_testenv_find(msgs, n, "e-2"));
    sl_testenv_free_records(msgs, n, c);

    n = sl_testenv_read_all(r.t.audit, 3, msgs, sizeof(msgs) / sizeof(msgs[0]), 7, &c);
    SL_CHECK_INT(n, 7);
    int passed = 0, duplicate = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *au = json_loadb(msgs[i]->payload, msgs[i]->len, 0, NULL);
        const char *outcome = jstr(au, "outcome");
        const char *id = jstr(au, "event_id");
        SL_REQUIRE(outcome && id);
        passed += strcmp(outcome, "passed") == 0;
        duplicate += strcmp(outcome, "duplicate") == 0;
        if (strcmp(id, "a-2") == 0) {
            SL_CHECK_STR(outcome, "duplicate");
            SL_CHECK_STR(jstr(au, "reason"), "duplicate of event a-1 (idempotency key evt_A1)");
            SL_CHECK_STR(jstr(au, "detail.duplicate_of"), "a-1");
        } else if (strcmp(id, "d-1") == 0) {
            SL_CHECK_STR(outcome, "passed");
            SL_CHECK_STR(jstr(au, "detail.dedup"), "same");
        } else if (strcmp(id, "e-2") == 0) {
            SL_CHECK_STR(outcome, "duplicate");
            SL_CHECK_STR(jstr(au, "reason"), "duplicate of event e-1 (idempotency key evt_E1)");
        } else if (strcmp(id, "f-1") == 0) {
            SL_CHECK_STR(jstr(au, "detail.dedup"), "no_key");
        }
        json_decref(au);
    }
    SL_CHECK_INT(passed, 4);
    SL_CHECK_INT(duplicate, 3);
    sl_testenv_free_records(msgs, n, c);
    SL_CHECK_INT(sl_testenv_http_get(r.admin_port, "/metrics", buf, sizeof(buf)), 200);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
}

/* Idempotency keys are unique only within their source (issue 11): equal keys of two
 * CloudEvents sources posting through one sluice source, or of two sluice sources, are two
 * events; the same source twice is a duplicate. */
SL_TEST(equal_idempotency_keys_of_two_sources_both_pass)
{
    struct run r;
    setup(&r, "validate-scoped", "");
    static const char other[] = "{\"id\":\"evt_B\",\"object\":\"event\",\"type\":"
                                "\"other.event\",\"created\":1,\"data\":{\"object\":{}}}";
    /* id, sluice source, type, idempotency key, record key, payload, -, -, CE source */
    struct ev evs[] = {
        {"o-1", "open", "order.created", "order-124", "order-124", "{}", 0, 0, "urn:crm"},
        {"o-2", "open", "order.created", "order-124", "order-124", "{}", 0, 0, "urn:apikey"},
        {"o-3", "open", "order.created", "order-124", "order-124", "{}", 0, 0, "urn:crm"},
        {"s-1", "stripe", "other.event", "order-124", "order-124", other, 0, 0, "urn:crm"},
    };
    produce(r.t.in, evs, sizeof(evs) / sizeof(evs[0]));
    pid_t pid = start(&r, "validate-scoped");

    rd_kafka_message_t *msgs[MAX_MSGS];
    rd_kafka_t *c;
    size_t n = sl_testenv_read_all(r.t.out, 3, msgs, sizeof(msgs) / sizeof(msgs[0]), 3, &c);
    SL_CHECK_INT(n, 3);
    check_unchanged(sl_testenv_find(msgs, n, "o-1"), &evs[0]);
    check_unchanged(sl_testenv_find(msgs, n, "o-2"), &evs[1]);
    check_unchanged(sl_testenv_find(msgs, n, "s-1"), &evs[3]);
    SL_CHECK(!sl_testenv_find(msgs, n, "o-3"));
    sl_testenv_free_records(msgs, n, c);

    n = sl_testenv_read_all(r.t.audit, 3, msgs, sizeof(msgs) / sizeof(msgs[0]), 4, &c);
    SL_CHECK_INT(n, 4);
    json_t *a = audit_of(msgs, n, "o-3");
    SL_CHECK_STR(jstr(a, "outcome"), "duplicate");
    SL_CHECK_STR(jstr(a, "reason"), "duplicate of event o-1 (idempotency key order-124)");
    json_decref(a);
    a = audit_of(msgs, n, "o-2");
    SL_CHECK_STR(jstr(a, "detail.dedup"), "first");
    json_decref(a);
    sl_testenv_free_records(msgs, n, c);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
}

/* Claims live under redis.key_prefix when it is set (two pipelines with one topic prefix on
 * one Redis): a claim there counts, one under the topic prefix does not. */
SL_TEST(claims_live_under_the_redis_key_prefix)
{
    struct run r;
    char kp[96], redis[160];
    sl_testenv_unique("kp", kp, sizeof(kp) - 1);
    strncat(kp, ".", sizeof(kp) - strlen(kp) - 1);
    snprintf(redis, sizeof(redis), "redis: { key_prefix: \"%s\" }\n", kp);
    setup(&r, "validate-keyprefix", redis);
    struct ev evs[] = {
        {"k-1", "open", "order.created", "order-1", "order-1", "{}", 0, 0, NULL},
        {"k-2", "open", "order.created", "order-2", "order-2", "{}", 0, 0, NULL},
    };
    produce(r.t.in, evs, sizeof(evs) / sizeof(evs[0]));
    sl_redis_t *redis_h = shared_redis();
    const char *prefixes[] = {kp, r.t.prefix};
    for (int i = 0; i < 2; i++) {
        struct sl_ce ce;
        struct sl_err err;
        char scoped[SL_CE_SCOPED_ID_LEN + 1], key[512];
        redisReply *reply;
        ce_of(&evs[i], &ce);
        SL_REQUIRE(sl_ce_scoped_id(&ce, evs[i].idem, scoped) == 0);
        sl_ce_free(&ce);
        snprintf(key, sizeof(key), "%sdedup.v2:open:%s", prefixes[i], scoped);
        const char *argv[] = {"SET", key, "elsewhere/0/0 first", "PX", "600000"};
        SL_REQUIRE(sl_redis_cmd(redis_h, &reply, 5, argv, NULL, &err) == 0);
        freeReplyObject(reply);
    }
    sl_redis_destroy(redis_h);
    pid_t pid = start(&r, "validate-keyprefix");
    rd_kafka_message_t *msgs[MAX_MSGS];
    rd_kafka_t *c;
    size_t n = sl_testenv_read_all(r.t.audit, 3, msgs, sizeof(msgs) / sizeof(msgs[0]), 2, &c);
    SL_CHECK_INT(n, 2);
    json_t *a = audit_of(msgs, n, "k-1");
    SL_CHECK_STR(jstr(a, "outcome"), "duplicate");
    json_decref(a);
    a = audit_of(msgs, n, "k-2");
    SL_CHECK_STR(jstr(a, "outcome"), "passed");
    SL_CHECK_STR(jstr(a, "detail.dedup"), "first");
    json_decref(a);
    sl_testenv_free_records(msgs, n, c);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
}

SL_TEST(redis_outage_holds_events_and_loses_none)
{
    signal(SIGPIPE, SIG_IGN);
    char redis[256], body[8192];
    rp_t *srv = rp_start("validate-redis");

    struct run r;
    snprintf(redis, sizeof(redis), "redis: { url: \"%s\", timeout: 300ms }\n", rp_url(srv));
    setup(&r, "validate-outage", redis);
    pid_t pid = start(&r, "validate-outage");

    /* Before: 20 events flow through. */
    enum { N1 = 20, N2 = 20, RETRIES = 5 };
    static char ids[N1 + N2 + RETRIES][32], idems[N1 + N2 + RETRIES][32];
    struct ev evs[N1 + N2 + RETRIES];
    for (int i = 0; i < N1 + N2 + RETRIES; i++) {
        /* The last RETRIES are a provider's retries of the first events. */
        int biz = i < N1 + N2 ? i : i - N1 - N2;
        snprintf(ids[i], sizeof(ids[i]), "ev-%02d", i);
        snprintf(idems[i], sizeof(idems[i]), "evt_B%02d", biz);
        evs[i] = (struct ev){ids[i],
                             "stripe",
                             "other.event",
                             idems[i],
                             idems[i],
                             "{\"id\":\"evt_B\",\"object\":\"event\",\"type\":\"other.event\","
                             "\"created\":1,\"data\":{\"object\":{}}}"};
    }
    produce(r.t.in, evs, N1);
    rd_kafka_message_t *msgs[MAX_MSGS];
    rd_kafka_t *c = sl_testenv_consumer(r.t.out, 3);
    size_t n = sl_testenv_consume(c, msgs, N1, 60000);
    SL_CHECK_INT(n, N1);

    /* Redis dies; new events and retries of old ones arrive meanwhile. */
    rp_kill(srv);
    produce(r.t.in, evs + N1, N2 + RETRIES);
    SL_CHECK_INT(sl_testenv_wait_ready(r.admin_port, 503, "dedup: redis", body, sizeof(body)), 503);
    SL_CHECK_CONTAINS(body, "waiting on a dependency");
    /* Nothing is forwarded undeduplicated while Redis is away. */
    SL_CHECK_INT(sl_testenv_consume(c, msgs + n, 1, 3000), 0);

    /* Redis is back with its claims: every new event arrives once, no retry does. */
    rp_restart(srv);
    n += sl_testenv_consume(c, msgs + n, N2, 60000);
    n += sl_testenv_consume(c, msgs + n, MAX_MSGS - n, 2000);
    SL_CHECK_INT(n, N1 + N2);
    int seen[N1 + N2] = {0};
    char buf[64];
    for (size_t i = 0; i < n; i++) {
        const char *id = sl_testenv_header(msgs[i], "ce_id", buf, sizeof(buf));
        int k = id ? atoi(id + 3) : -1;
        SL_CHECK(k >= 0 && k < N1 + N2);
        if (k >= 0 && k < N1 + N2)
            seen[k]++;
    }
    for (int k = 0; k < N1 + N2; k++)
        if (seen[k] != 1)
            sl_test_fail(__FILE__, __LINE__, "event ev-%02d forwarded %d times", k, seen[k]);
    sl_testenv_free_records(msgs, n, c);

    n = sl_testenv_read_all(r.t.audit, 3, msgs, sizeof(msgs) / sizeof(msgs[0]), N1 + N2 + RETRIES,
                            &c);
    SL_CHECK_INT(n, N1 + N2 + RETRIES);
    int duplicate = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *au = json_loadb(msgs[i]->payload, msgs[i]->len, 0, NULL);
        duplicate += jstr(au, "outcome") && strcmp(jstr(au, "outcome"), "duplicate") == 0;
        json_decref(au);
    }
    SL_CHECK_INT(duplicate, RETRIES);
    sl_testenv_free_records(msgs, n, c);

    SL_CHECK_INT(sl_testenv_wait_ready(r.admin_port, 200, "", body, sizeof(body)), 200);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
    rp_destroy(srv);
}

SL_TEST(missing_schema_stops_start_up)
{
    char config[4096], log[4200], text[8192] = "";
    sl_testenv_config("sluice-test-unused.",
                      "sources:\n"
                      "  s:\n"
                      "    verify: { scheme: none }\n"
                      "    schemas: { t: /nonexistent/schema.json }\n",
                      config, sizeof(config));
    char name[96];
    sl_testenv_unique("validate-bad-schema", name, sizeof(name));
    const char *args[] = {"--config", config, NULL};
    pid_t pid = sl_testenv_spawn("sluice-validate", args, name);
    SL_CHECK_INT(sl_testenv_stop(pid, 0, 30000), 2);
    snprintf(log, sizeof(log), "%s/tests/%s.log", sl_test_binary_dir(), name);
    FILE *f = fopen(log, "r");
    SL_REQUIRE(f);
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    text[len] = '\0';
    fclose(f);
    char want[4200];
    snprintf(want, sizeof(want), "%s:8: sources.s.schemas.t: cannot load the schema: ", config);
    SL_CHECK_CONTAINS(text, want);
}

SL_TEST_MAIN()
