/* Unit tests of the validate stage without infrastructure: the real stage (init, process,
 * fini) on in-memory events through a free-standing collector (sl_emit_new), with schemas
 * written to a directory of this run. Redis is a port nobody listens on, which is exactly what
 * a Redis outage looks like to the stage. The dedup decision itself (FIRST, SAME, DUPLICATE,
 * errors) is checked on the pure mapping, which is why this file includes validate.c. */
#include <sys/stat.h>

#include "sl_metrics.h"
#include "sl_pipeline.h"
#include "sl_test.h"
#include "sl_testenv.h"
#include "validate.c"

#define PREFIX "t."

/* A fresh directory with the schemas every test uses. */
static const char *schema_dir(void)
{
    static char dir[1024];
    if (dir[0])
        return dir;
    char name[96], path[1200];
    sl_testenv_unique("validate-unit", name, sizeof(name));
    snprintf(dir, sizeof(dir), "%s/tests/%s", sl_test_binary_dir(), name);
    SL_REQUIRE(mkdir(dir, 0755) == 0);
    static const char *const files[][2] = {
        {"order.json", "{\"type\":\"object\",\"required\":[\"id\",\"amount\"],"
                       "\"properties\":{\"id\":{\"type\":\"string\"},"
                       "\"amount\":{\"type\":\"integer\",\"minimum\":1},"
                       "\"email\":{\"type\":\"string\",\"format\":\"email\"},"
                       "\"lines\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}}}"},
        {"any.json", "{\"type\":\"object\"}"},
        {"broken.json", "{\"type\": 5}"},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i][0]);
        FILE *f = fopen(path, "w");
        SL_REQUIRE(f);
        fputs(files[i][1], f);
        fclose(f);
    }
    return dir;
}

/* A pipeline whose Redis is a port with no listener. */
static sl_conf_t *pipeline(const char *extra, struct sl_err *err)
{
    static int port;
    if (!port)
        port = sl_testenv_free_port();
    char text[4096];
    snprintf(text, sizeof(text),
             "redis: { url: \"redis://127.0.0.1:%d/0\", timeout: 200ms }\n"
             "schema_dir: .\n"
             "sources:\n"
             "  shop:\n"
             "    verify: { scheme: none }\n"
             "    schemas: { order.created: order.json, \"*\": any.json }\n"
             "  strict:\n"
             "    verify: { scheme: none }\n"
             "    schemas: { order.created: order.json }\n"
             "    require_schema: true\n"
             "    dedup: false\n"
             "  open:\n"
             "    verify: { scheme: none }\n"
             "    dedup: false\n"
             "%s",
             port, extra ? extra : "");
    sl_conf_t *conf = sl_conf_load_string("test.yaml", schema_dir(), text, strlen(text), err);
    if (conf &&
        (sl_conf_check(conf, sl_pipeline_keys, err) != 0 || sl_pipeline_check(conf, err) != 0)) {
        sl_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

struct stage {
    sl_conf_t *conf;
    sl_metrics_t *metrics;
    void *ctx;
    struct sl_emit *out;
};

static void stage_start(struct stage *st, const char *extra)
{
    struct sl_err err;
    st->conf = pipeline(extra, &err);
    if (!st->conf)
        sl_test_fail(__FILE__, __LINE__, "pipeline: %s", err.msg);
    SL_REQUIRE(st->conf);
    st->metrics = sl_metrics_new();
    const struct sl_stage_env env = {st->conf, st->metrics, PREFIX};
    if (validate_stage.init(&st->ctx, &env, &err) != 0)
        sl_test_fail(__FILE__, __LINE__, "init: %s", err.msg);
    SL_REQUIRE(st->ctx);
    st->out = sl_emit_new(PREFIX);
    SL_REQUIRE(st->out);
}

static void stage_stop(struct stage *st)
{
    sl_emit_free(st->out);
    validate_stage.fini(st->ctx);
    sl_metrics_destroy(st->metrics);
    sl_conf_destroy(st->conf);
}

/* Runs process() on one event; source or idempotency key NULL leaves the attribute out. */
static enum sl_verdict run(struct stage *st, const char *source, const char *type, const char *idem,
                           const char *payload)
{
    struct sl_ce ce;
    struct sl_err err;
    sl_ce_init(&ce);
    SL_REQUIRE(sl_ce_set(&ce, "specversion", "1.0", &err) == 0 &&
               sl_ce_set(&ce, "id", "ev-1", &err) == 0 &&
               sl_ce_set(&ce, "source", "test", &err) == 0 &&
               sl_ce_set(&ce, "type", type, &err) == 0 &&
               sl_ce_set(&ce, "datacontenttype", "application/json", &err) == 0);
    if (source)
        SL_REQUIRE(sl_ce_set(&ce, SL_CE_SOURCE_NAME, source, &err) == 0);
    if (idem)
        SL_REQUIRE(sl_ce_set(&ce, SL_CE_IDEMPOTENCY_KEY, idem, &err) == 0);
    const struct sl_event in = {
        .ce = &ce,
        .data = payload,
        .len = strlen(payload),
        .key = "key-1",
        .key_len = 5,
        .topic = PREFIX "ingress",
        .partition = 2,
        .offset = 41,
        .timestamp_ms = -1,
        .attempt = 1,
    };
    sl_emit_clear(st->out);
    enum sl_verdict verdict = validate_stage.process(st->ctx, &in, st->out);
    sl_ce_free(&ce);
    return verdict;
}

static const char *detail_str(struct stage *st, const char *name)
{
    return json_string_value(json_object_get(sl_emit_detail(st->out), name));
}

static const char *error_at(struct stage *st, size_t i)
{
    return json_string_value(json_array_get(sl_emit_get_errors(st->out, NULL), i));
}

static const char *header(const rd_kafka_headers_t *hdrs, const char *name, char *buf, size_t size)
{
    const void *v;
    size_t n;
    if (rd_kafka_header_get_last(hdrs, name, &v, &n))
        return NULL;
    snprintf(buf, size, "%.*s", (int)n, (const char *)v);
    return buf;
}

static const char valid_order[] = "{\"id\":\"o-1\",\"amount\":5}";

SL_TEST(schema_selection_by_type_fallback_and_require_schema)
{
    struct stage st;
    stage_start(&st, NULL);
    /* The type's own schema. The source dedups, but an event without an idempotency key
     * skips it (Redis is never asked: it is down). */
    SL_CHECK_INT(run(&st, "shop", "order.created", NULL, valid_order), SL_PASS);
    SL_CHECK_STR(detail_str(&st, "schema"), "order.json");
    SL_CHECK_STR(detail_str(&st, "dedup"), "no_key");
    /* Another type of the same source: the "*" fallback, which a non-object fails. */
    SL_CHECK_INT(run(&st, "shop", "order.cancelled", NULL, "{\"any\":true}"), SL_PASS);
    SL_CHECK_STR(detail_str(&st, "schema"), "any.json");
    SL_CHECK_INT(run(&st, "shop", "order.cancelled", NULL, "[1]"), SL_REJECT);
    SL_CHECK_STR(sl_emit_get_reason(st.out), "schema validation failed: 1 error against any.json");
    /* No schema, no fallback, require_schema: dead-lettered, whatever the payload. */
    SL_CHECK_INT(run(&st, "strict", "order.cancelled", "k", valid_order), SL_REJECT);
    SL_CHECK_STR(sl_emit_get_reason(st.out), "no schema for type order.cancelled of source strict");
    SL_CHECK_INT(sl_emit_count(st.out), 0);
    /* No schema and not required: passed unvalidated, and the audit detail says so. */
    SL_CHECK_INT(run(&st, "open", "anything", "k", "{\"free\":[1,2]}"), SL_PASS);
    SL_CHECK(json_is_null(json_object_get(sl_emit_detail(st.out), "schema")));
    SL_CHECK_CONTAINS(detail_str(&st, "note"), "unvalidated");
    SL_CHECK_STR(detail_str(&st, "dedup"), "off");
    /* The source's own id is in the audit detail, for a search by it. */
    SL_CHECK_STR(detail_str(&st, "idempotency_key"), "k");
    SL_CHECK_INT(sl_emit_count(st.out), 1);
    /* ... but still well-formed JSON. */
    SL_CHECK_INT(run(&st, "open", "anything", "k", "{\"free\":"), SL_REJECT);
    SL_CHECK_CONTAINS(sl_emit_get_reason(st.out), "malformed JSON at byte ");
    stage_stop(&st);
}

SL_TEST(unknown_source_and_missing_source_are_dead_lettered)
{
    struct stage st;
    stage_start(&st, NULL);
    SL_CHECK_INT(run(&st, "ghost", "order.created", "k", valid_order), SL_REJECT);
    SL_CHECK_STR(sl_emit_get_reason(st.out), "unknown source ghost (not in the pipeline file)");
    SL_CHECK_INT(run(&st, NULL, "order.created", "k", valid_order), SL_REJECT);
    SL_CHECK_STR(sl_emit_get_reason(st.out),
                 "no sluicesource attribute: not an event from sluice-ingress");
    SL_CHECK_INT(sl_emit_count(st.out), 0);
    stage_stop(&st);
}

SL_TEST(malformed_json_and_duplicate_keys_are_dead_lettered)
{
    struct stage st;
    stage_start(&st, NULL);
    SL_CHECK_INT(run(&st, "strict", "order.created", NULL, "{\"id\":\"o-1\",,}"), SL_REJECT);
    SL_CHECK_CONTAINS(sl_emit_get_reason(st.out), "malformed JSON at byte ");
    /* Two readings of one payload: the schema could check one and a later stage use the
     * other. */
    SL_CHECK_INT(
        run(&st, "strict", "order.created", NULL, "{\"id\":\"o-1\",\"amount\":5,\"amount\":-5}"),
        SL_REJECT);
    SL_CHECK_CONTAINS(sl_emit_get_reason(st.out), "duplicate object key");
    stage_stop(&st);
}

SL_TEST(invalid_event_lists_every_error)
{
    struct stage st;
    stage_start(&st, NULL);
    SL_CHECK_INT(run(&st, "strict", "order.created", NULL,
                     "{\"amount\":0,\"lines\":[1,\"two\"],\"email\":\"not an address\"}"),
                 SL_REJECT);
    SL_CHECK_STR(sl_emit_get_reason(st.out),
                 "schema validation failed: 3 errors against order.json");
    size_t dropped = 1;
    SL_CHECK_INT(json_array_size(sl_emit_get_errors(st.out, &dropped)), 3);
    SL_CHECK_INT(dropped, 0);
    /* Errors come in the schema's keyword order: required, then properties in order. */
    SL_CHECK_STR(error_at(&st, 0), "(root): /required: missing required property \"id\"");
    SL_CHECK_STR(error_at(&st, 1), "/amount: /properties/amount/minimum: 0 is less than 1");
    SL_CHECK_CONTAINS(error_at(&st, 2), "/lines/1: /properties/lines/items/type: ");
    SL_CHECK_INT(sl_emit_count(st.out), 0);

    /* Many errors: the reason counts them all, the collector keeps SL_EMIT_MAX_ERRORS. */
    char big[4096] = "{\"id\":\"o\",\"amount\":1,\"lines\":[";
    for (int i = 0; i < 150; i++)
        strcat(big, i ? ",\"x\"" : "\"x\"");
    strcat(big, "]}");
    SL_CHECK_INT(run(&st, "strict", "order.created", NULL, big), SL_REJECT);
    SL_CHECK_STR(sl_emit_get_reason(st.out),
                 "schema validation failed: 150 errors against order.json");
    SL_CHECK_INT(json_array_size(sl_emit_get_errors(st.out, &dropped)), SL_EMIT_MAX_ERRORS);
    SL_CHECK_INT(dropped, 150 - SL_EMIT_MAX_ERRORS);
    stage_stop(&st);
}

SL_TEST(valid_event_is_forwarded_unchanged)
{
    struct stage st;
    stage_start(&st, NULL);
    /* Odd spacing and key order: the bytes must come out as they went in. */
    const char payload[] = "{ \"amount\" : 5,\n  \"id\":\"o-1\" }";
    SL_CHECK_INT(run(&st, "strict", "order.created", "idem-1", payload), SL_PASS);
    SL_REQUIRE(sl_emit_count(st.out) == 1);
    const char *topic;
    const void *key, *value;
    size_t key_len, len;
    const rd_kafka_headers_t *hdrs;
    char buf[256];
    sl_emit_get_record(st.out, 0, &topic, &key, &key_len, &value, &len, &hdrs);
    SL_CHECK_STR(topic, PREFIX "validated");
    SL_CHECK(key_len == 5 && memcmp(key, "key-1", 5) == 0);
    SL_CHECK(len == strlen(payload) && memcmp(value, payload, len) == 0);
    SL_CHECK_STR(header(hdrs, "ce_id", buf, sizeof(buf)), "ev-1");
    SL_CHECK_STR(header(hdrs, "ce_type", buf, sizeof(buf)), "order.created");
    SL_CHECK_STR(header(hdrs, "ce_sluicesource", buf, sizeof(buf)), "strict");
    SL_CHECK_STR(header(hdrs, "ce_idempotencykey", buf, sizeof(buf)), "idem-1");
    SL_CHECK_STR(header(hdrs, "content-type", buf, sizeof(buf)), "application/json");
    SL_CHECK_STR(detail_str(&st, "schema"), "order.json");
    stage_stop(&st);
}

SL_TEST(redis_down_holds_the_event)
{
    struct stage st;
    stage_start(&st, NULL);
    SL_CHECK_INT(run(&st, "shop", "order.created", "idem-1", valid_order), SL_RETRY);
    SL_CHECK_CONTAINS(sl_emit_get_reason(st.out), "dedup: redis 127.0.0.1:");
    /* Invalid events never reach dedup: they are dead-lettered while Redis is down too. */
    SL_CHECK_INT(run(&st, "shop", "order.created", "idem-2", "{}"), SL_REJECT);
    stage_stop(&st);
}

/* The mapping from a claim to a verdict, on an in-memory event. */
static enum sl_verdict decide_as(struct stage *st, int rc, const struct sl_err *err,
                                 enum sl_redis_claim claim, const char *holder, const char *id,
                                 const char *replay)
{
    struct sl_ce ce;
    struct sl_err e;
    sl_ce_init(&ce);
    SL_REQUIRE(sl_ce_set(&ce, "id", id, &e) == 0 &&
               sl_ce_set(&ce, SL_CE_IDEMPOTENCY_KEY, "evt_9", &e) == 0);
    if (replay)
        SL_REQUIRE(sl_ce_set(&ce, SL_CE_REPLAY, replay, &e) == 0);
    const struct sl_event in = {.ce = &ce};
    sl_emit_clear(st->out);
    enum sl_verdict v = dedup_verdict(rc, err, claim, holder, &in, st->out);
    sl_ce_free(&ce);
    return v;
}

static enum sl_verdict decide(struct stage *st, int rc, const struct sl_err *err,
                              enum sl_redis_claim claim, const char *holder)
{
    return decide_as(st, rc, err, claim, holder, "ev-2", NULL);
}

SL_TEST(dedup_decision_mapping)
{
    struct stage st;
    struct sl_err err;
    stage_start(&st, NULL);
    sl_err_clear(&err);
    SL_CHECK_INT(decide(&st, 0, &err, SL_REDIS_CLAIM_FIRST, NULL), SL_PASS);
    SL_CHECK_STR(detail_str(&st, "dedup"), "first");
    /* The same record again (a crash, an abort): not a duplicate. */
    SL_CHECK_INT(decide(&st, 0, &err, SL_REDIS_CLAIM_SAME, NULL), SL_PASS);
    SL_CHECK_STR(detail_str(&st, "dedup"), "same");
    /* Another record holds the key: the sender retried. */
    SL_CHECK_INT(decide(&st, 0, &err, SL_REDIS_CLAIM_DUPLICATE, "t.ingress/0/7 ev-first 1"),
                 SL_DUPLICATE);
    SL_CHECK_STR(sl_emit_get_reason(st.out),
                 "duplicate of event ev-first 1 (idempotency key evt_9)");
    SL_CHECK_STR(detail_str(&st, "duplicate_of"), "ev-first 1");
    SL_CHECK_INT(decide(&st, 0, &err, SL_REDIS_CLAIM_DUPLICATE, NULL), SL_DUPLICATE);
    SL_CHECK_CONTAINS(sl_emit_get_reason(st.out), "the first claim has just expired");
    /* A dead letter put back by an operator: the event that holds the claim passes; the mark
     * on another event, or without a holder, changes nothing. */
    SL_CHECK_INT(
        decide_as(&st, 0, &err, SL_REDIS_CLAIM_DUPLICATE, "t.ingress/0/7 ev-2", "ev-2", "42"),
        SL_PASS);
    SL_CHECK_STR(detail_str(&st, "dedup"), "replay");
    SL_CHECK_INT(
        decide_as(&st, 0, &err, SL_REDIS_CLAIM_DUPLICATE, "t.ingress/0/7 ev-1", "ev-2", "42"),
        SL_DUPLICATE);
    SL_CHECK_INT(
        decide_as(&st, 0, &err, SL_REDIS_CLAIM_DUPLICATE, "t.ingress/0/7 ev-2", "ev-2", NULL),
        SL_DUPLICATE);
    SL_CHECK_INT(decide_as(&st, 0, &err, SL_REDIS_CLAIM_DUPLICATE, NULL, "ev-2", "42"),
                 SL_DUPLICATE);
    /* Redis down, Redis refusing the credentials, Redis answering an error: hold, never
     * decide. */
    sl_err_retriable(&err, SL_ERR_UNAVAILABLE, "redis 127.0.0.1:6379: connection refused");
    SL_CHECK_INT(decide(&st, -1, &err, SL_REDIS_CLAIM_FIRST, NULL), SL_RETRY);
    SL_CHECK_STR(sl_emit_get_reason(st.out), "dedup: redis 127.0.0.1:6379: connection refused");
    sl_err_set(&err, SL_ERR_CONFIG, "redis 127.0.0.1:6379: WRONGPASS invalid username-password");
    err.fatal = true;
    SL_CHECK_INT(decide(&st, -1, &err, SL_REDIS_CLAIM_FIRST, NULL), SL_RETRY);
    SL_CHECK_CONTAINS(sl_emit_get_reason(st.out), "WRONGPASS");
    sl_err_set(&err, SL_ERR_INVALID, "redis 127.0.0.1:6379: WRONGTYPE");
    SL_CHECK_INT(decide(&st, -1, &err, SL_REDIS_CLAIM_FIRST, NULL), SL_RETRY);
    stage_stop(&st);
}

SL_TEST(metrics_by_source_type_and_result)
{
    struct stage st;
    stage_start(&st, NULL);
    run(&st, "strict", "order.created", NULL, valid_order);
    run(&st, "strict", "order.created", NULL, "{}");
    run(&st, "strict", "other", NULL, "{}");
    run(&st, "shop", "order.cancelled", NULL, "{}");
    run(&st, "ghost", "x", NULL, "{}");
    run(&st, "shop", "order.created", "idem", valid_order); /* retry: not a final result */
    size_t len;
    char *text = sl_metrics_render(st.metrics, &len);
    SL_REQUIRE(text);
    SL_CHECK_CONTAINS(text, "sluice_validate_events_total{source=\"strict\",type=\"order.created\","
                            "result=\"valid\"} 1\n");
    SL_CHECK_CONTAINS(text, "sluice_validate_events_total{source=\"strict\",type=\"order.created\","
                            "result=\"invalid\"} 1\n");
    SL_CHECK_CONTAINS(
        text,
        "sluice_validate_events_total{source=\"strict\",type=\"_none\",result=\"no_schema\"} 1\n");
    SL_CHECK_CONTAINS(
        text, "sluice_validate_events_total{source=\"shop\",type=\"*\",result=\"valid\"} 1\n");
    SL_CHECK_CONTAINS(text, "sluice_validate_events_total{source=\"_unknown\",type=\"_unknown\","
                            "result=\"unknown_source\"} 1\n");
    SL_CHECK(!strstr(text, "source=\"shop\",type=\"order.created\""));
    SL_CHECK_CONTAINS(text, "sluice_validate_seconds_count{source=\"strict\"} 2\n");
    free(text);
    stage_stop(&st);
}

SL_TEST(assert_formats_is_configurable)
{
    struct stage st;
    const char payload[] = "{\"id\":\"o-1\",\"amount\":5,\"email\":\"not an address\"}";
    stage_start(&st, NULL);
    SL_CHECK_INT(run(&st, "strict", "order.created", NULL, payload), SL_PASS);
    stage_stop(&st);
    stage_start(&st, "validate: { assert_formats: true }\n");
    SL_CHECK_INT(run(&st, "strict", "order.created", NULL, payload), SL_REJECT);
    SL_CHECK_CONTAINS(error_at(&st, 0), "/email: /properties/email/format: ");
    stage_stop(&st);
}

SL_TEST(missing_or_invalid_schema_fails_start_up_naming_the_entry)
{
    struct sl_err err;
    sl_conf_t *conf = pipeline("  more:\n"
                               "    verify: { scheme: none }\n"
                               "    schemas:\n"
                               "      a.b: nowhere.json\n",
                               &err);
    SL_REQUIRE(conf);
    SL_CHECK_INT(validate_check_config(conf, &err), -1);
    SL_CHECK_CONTAINS(err.msg, "test.yaml:18: sources.more.schemas.a.b: cannot load the schema: ");
    SL_CHECK_CONTAINS(err.msg, "nowhere.json");
    /* init says the same (the binary prints it and exits 2). */
    sl_metrics_t *m = sl_metrics_new();
    const struct sl_stage_env env = {conf, m, PREFIX};
    void *ctx = NULL;
    struct sl_err init_err;
    SL_CHECK_INT(validate_stage.init(&ctx, &env, &init_err), -1);
    SL_CHECK_STR(init_err.msg, err.msg);
    sl_metrics_destroy(m);
    sl_conf_destroy(conf);

    conf = pipeline("  more:\n"
                    "    verify: { scheme: none }\n"
                    "    schemas: { \"*\": broken.json }\n",
                    &err);
    SL_REQUIRE(conf);
    SL_CHECK_INT(validate_check_config(conf, &err), -1);
    SL_CHECK_CONTAINS(err.msg, "test.yaml:17: sources.more.schemas.*: cannot load the schema: ");
    sl_conf_destroy(conf);

    conf = pipeline(NULL, &err);
    SL_REQUIRE(conf);
    SL_CHECK_INT(validate_check_config(conf, &err), 0);
    sl_conf_destroy(conf);
}

SL_TEST_MAIN()
