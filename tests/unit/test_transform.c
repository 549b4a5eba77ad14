/* Unit tests of the transform stage without infrastructure: the real stage (init, process, fini)
 * on in-memory events through a free-standing collector (sl_emit_new). The example mappings run
 * from deploy/examples/pipeline.yaml against their fixtures (tests/data/transform/); everything
 * else from small pipelines written here. Redis and the HTTP API are ports nobody listens on,
 * which is exactly what an outage looks like to the stage; lookups that never reach them (a null
 * key) exercise `on_missing` for real. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sl_expr.h"
#include "sl_jsonschema.h"
#include "sl_metrics.h"
#include "sl_pipeline.h"
#include "sl_signal.h"
#include "sl_test.h"
#include "sl_testenv.h"
#include "transform.h"
#include "transform_fixture.h"

#define PREFIX "t."

/* A port with no listener, for Redis and HTTP. */
static int dead_port(void)
{
    static int port;
    if (!port)
        port = sl_testenv_free_port();
    return port;
}

static sl_conf_t *load_checked(sl_conf_t *conf, struct sl_err *err)
{
    if (conf &&
        (sl_conf_check(conf, sl_pipeline_keys, err) != 0 || sl_pipeline_check(conf, err) != 0)) {
        sl_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

/* A pipeline with the repository's schemas, a dead Redis, and `extra` (the transforms). */
static sl_conf_t *pipeline(const char *extra, struct sl_err *err)
{
    char text[16384], dir[4200];
    snprintf(dir, sizeof(dir), "%s/schemas", sl_test_source_dir());
    snprintf(text, sizeof(text),
             "redis: { url: \"redis://127.0.0.1:%d/0\", timeout: 200ms }\n"
             "schema_dir: .\n%s",
             dead_port(), extra);
    return load_checked(sl_conf_load_string("test.yaml", dir, text, strlen(text), err), err);
}

/* The shipped example, its Redis a dead port. */
static sl_conf_t *example(struct sl_err *err)
{
    char path[4096], url[64];
    snprintf(path, sizeof(path), "%s/deploy/examples/pipeline.yaml", sl_test_source_dir());
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", dead_port());
    setenv("SLUICE_REDIS_URL", url, 1);
    return sl_pipeline_load(path, err);
}

struct stage {
    sl_conf_t *conf;
    sl_metrics_t *metrics;
    void *ctx;
    struct sl_emit *out;
};

static void stage_start_conf(struct stage *st, sl_conf_t *conf, const struct sl_err *load_err)
{
    struct sl_err err;
    if (!conf)
        sl_test_fail(__FILE__, __LINE__, "pipeline: %s", load_err->msg);
    SL_REQUIRE(conf);
    st->conf = conf;
    st->metrics = sl_metrics_new();
    const struct sl_stage_env env = {st->conf, st->metrics, PREFIX};
    if (transform_stage.init(&st->ctx, &env, &err) != 0)
        sl_test_fail(__FILE__, __LINE__, "init: %s", err.msg);
    SL_REQUIRE(st->ctx);
    st->out = sl_emit_new(PREFIX);
    SL_REQUIRE(st->out);
}

static void stage_start(struct stage *st, const char *extra)
{
    struct sl_err err;
    sl_conf_t *conf = pipeline(extra, &err);
    stage_start_conf(st, conf, &err);
}

static void stage_stop(struct stage *st)
{
    sl_emit_free(st->out);
    transform_stage.fini(st->ctx);
    sl_metrics_destroy(st->metrics);
    sl_conf_destroy(st->conf);
}

static enum sl_verdict run_ce(struct stage *st, const struct sl_ce *ce, const char *key,
                              const void *payload, size_t len)
{
    const struct sl_event in = {
        .ce = ce,
        .data = payload,
        .len = len,
        .key = key,
        .key_len = strlen(key),
        .topic = PREFIX "validated",
        .partition = 0,
        .offset = 7,
        .timestamp_ms = -1,
        .attempt = 1,
    };
    sl_emit_clear(st->out);
    return transform_stage.process(st->ctx, &in, st->out);
}

/* An event from `source` of `type` with `payload`; `extra_attr` (may be NULL) is one more
 * attribute "name=value". */
static enum sl_verdict run(struct stage *st, const char *source, const char *type,
                           const char *payload, const char *extra_attr)
{
    struct sl_ce ce;
    struct sl_err err;
    sl_ce_init(&ce);
    SL_REQUIRE(sl_ce_set(&ce, "specversion", "1.0", &err) == 0 &&
               sl_ce_set(&ce, "id", "ev-1", &err) == 0 &&
               sl_ce_set(&ce, "source", source, &err) == 0 &&
               sl_ce_set(&ce, "type", type, &err) == 0 &&
               sl_ce_set(&ce, "time", "2026-11-24T17:30:00.123Z", &err) == 0 &&
               sl_ce_set(&ce, "datacontenttype", "application/json", &err) == 0 &&
               sl_ce_set(&ce, SL_CE_SOURCE_NAME, source, &err) == 0);
    if (extra_attr) {
        char name[64];
        const char *eq = strchr(extra_attr, '=');
        snprintf(name, sizeof(name), "%.*s", (int)(eq - extra_attr), extra_attr);
        SL_REQUIRE(sl_ce_set(&ce, name, eq + 1, &err) == 0);
    }
    enum sl_verdict v = run_ce(st, &ce, "key-1", payload, strlen(payload));
    sl_ce_free(&ce);
    return v;
}

static const char *reason(struct stage *st)
{
    return sl_emit_get_reason(st->out);
}

static const char *error_at(struct stage *st, size_t i)
{
    return json_string_value(json_array_get(sl_emit_get_errors(st->out, NULL), i));
}

static const char *detail_str(struct stage *st, const char *path)
{
    json_t *v = sl_emit_detail(st->out);
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *save, *part = strtok_r(buf, ".", &save); part; part = strtok_r(NULL, ".", &save))
        v = json_object_get(v, part);
    return json_string_value(v);
}

/* The one output record's payload, NUL-terminated into buf; its headers into *hdrs. */
static const char *output(struct stage *st, char *buf, size_t size, const rd_kafka_headers_t **hdrs)
{
    const char *topic;
    const void *key, *value;
    size_t key_len, len;
    const rd_kafka_headers_t *h;
    SL_REQUIRE(sl_emit_count(st->out) == 1);
    sl_emit_get_record(st->out, 0, &topic, &key, &key_len, &value, &len, &h);
    SL_CHECK_STR(topic, PREFIX "normalized");
    snprintf(buf, size, "%.*s", (int)len, (const char *)value);
    if (hdrs)
        *hdrs = h;
    return buf;
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

/* ---- the example mappings ---- */

/* Each input fixture is what sluice-validate lets through: it satisfies its source's schema. */
static void check_input_is_valid(const sl_conf_t *conf, const json_t *in, const char *rule)
{
    const char *source =
        json_string_value(json_object_get(json_object_get(in, "headers"), "ce_sluicesource"));
    const char *type =
        json_string_value(json_object_get(json_object_get(in, "headers"), "ce_type"));
    const sl_conf_node_t *root = sl_conf_root(conf);
    const sl_conf_node_t *path_node = sl_conf_get(
        sl_conf_get(sl_conf_get(sl_conf_get(root, "sources"), source), "schemas"), type);
    const char *rel, *dir;
    struct sl_err err;
    SL_REQUIRE(path_node && sl_conf_as_str(conf, path_node, &rel, &err) == 0 &&
               sl_conf_str(conf, root, "schema_dir", NULL, &dir, &err) == 0);
    char file[4096];
    snprintf(file, sizeof(file), "%s/%s/%s", sl_conf_dir(conf), dir, rel);
    sl_schema_set_t *set = sl_schema_set_new();
    const sl_schema_t *schema = sl_schema_set_load_file(set, file, &err);
    SL_REQUIRE(schema);
    if (sl_schema_validate(schema, json_object_get(in, "data"), NULL, NULL, 0) != 1)
        sl_test_fail(__FILE__, __LINE__, "%s: the input fixture does not satisfy %s", rule, rel);
    sl_schema_set_destroy(set);
}

SL_TEST(example_mappings_give_the_expected_records)
{
    struct stage st;
    struct sl_err err;
    sl_conf_t *conf = example(&err);
    stage_start_conf(&st, conf, &err);
    for (size_t i = 0; tf_example_rules[i]; i++) {
        const char *rule = tf_example_rules[i];
        json_t *in = tf_load(rule, "input"), *want = tf_load(rule, "expected");
        check_input_is_valid(st.conf, in, rule);
        struct sl_ce ce;
        size_t len;
        sl_ce_init(&ce);
        tf_ce(in, &ce);
        char *payload = tf_payload(in, &len);
        enum sl_verdict v = run_ce(&st, &ce, tf_key(in), payload, len);
        if (strcmp(rule, "github-push-to-code") == 0) {
            /* Its owner lookup asks Redis, which is down here: held, not dead-lettered. The
             * integration test checks the record with Redis up. */
            SL_CHECK_INT(v, SL_RETRY);
            SL_CHECK_CONTAINS(reason(&st), "transform 'github-push-to-code': lookup 'owner': "
                                           "redis HGET repo-owners octo-org/hello-world: ");
        } else {
            if (v != SL_PASS)
                sl_test_fail(__FILE__, __LINE__, "%s: verdict %d: %s", rule, v, reason(&st));
            SL_CHECK_INT(sl_emit_count(st.out), 1);
            if (sl_emit_count(st.out) == 1) {
                const char *topic;
                const void *key, *value;
                size_t key_len, vlen;
                const rd_kafka_headers_t *hdrs;
                sl_emit_get_record(st.out, 0, &topic, &key, &key_len, &value, &vlen, &hdrs);
                SL_CHECK_STR(topic, PREFIX "normalized");
                tf_check_record(want, key, key_len, hdrs, value, vlen, rule);
            }
            SL_CHECK_STR(detail_str(&st, "rule"), rule);
        }
        free(payload);
        sl_ce_free(&ce);
        json_decref(in);
        json_decref(want);
    }
    stage_stop(&st);
}

SL_TEST(example_config_checks)
{
    struct sl_err err;
    sl_conf_t *conf = example(&err);
    SL_REQUIRE(conf);
    if (transform_check_config(conf, &err) != 0)
        sl_test_fail(__FILE__, __LINE__, "%s", err.msg);
    sl_conf_destroy(conf);
}

/* ---- rules, pass-through, required ---- */

#define PAYMENT_RULE                                                                               \
    "  - name: pay\n"                                                                              \
    "    when: '.sluicesource == \"shop\" and .type == \"order.paid\"'\n"                          \
    "    jq: >-\n"                                                                                 \
    "      {type: \"payment.succeeded\", data: {payment_id: .data.id, customer_id: .data.cust,\n"  \
    "       amount_minor: .data.amount, currency: .data.cur, occurred_at: .data.at}}\n"            \
    "    schema: canonical/payment.succeeded.json\n"

SL_TEST(first_matching_rule_maps_and_attributes_are_kept)
{
    struct stage st;
    stage_start(&st, "transforms:\n" PAYMENT_RULE "  - name: second\n"
                     "    when: '.type == \"order.paid\"'\n"
                     "    jq: '{type: \"never\", data: 1}'\n");
    char buf[1024], h[256];
    const rd_kafka_headers_t *hdrs;
    SL_CHECK_INT(run(&st, "shop", "order.paid",
                     "{\"id\":\"p1\",\"cust\":\"c1\",\"amount\":1250,\"cur\":\"EUR\","
                     "\"at\":\"2026-11-24T17:30:00Z\"}",
                     "dataschema=https://shop.example.com/order.json"),
                 SL_PASS);
    SL_CHECK_STR(output(&st, buf, sizeof(buf), &hdrs),
                 "{\"payment_id\":\"p1\",\"customer_id\":\"c1\",\"amount_minor\":1250,"
                 "\"currency\":\"EUR\",\"occurred_at\":\"2026-11-24T17:30:00Z\"}");
    SL_CHECK_STR(header(hdrs, "ce_type", h, sizeof(h)), "payment.succeeded");
    SL_CHECK_STR(header(hdrs, "ce_sluiceorigtype", h, sizeof(h)), "order.paid");
    SL_CHECK_STR(header(hdrs, "ce_id", h, sizeof(h)), "ev-1");
    SL_CHECK_STR(header(hdrs, "ce_time", h, sizeof(h)), "2026-11-24T17:30:00.123Z");
    SL_CHECK_STR(header(hdrs, "content-type", h, sizeof(h)), "application/json");
    /* The old data's schema no longer describes the new data. */
    SL_CHECK(header(hdrs, "ce_dataschema", h, sizeof(h)) == NULL);
    SL_CHECK_STR(detail_str(&st, "rule"), "pay");
    SL_CHECK_STR(detail_str(&st, "original_type"), "order.paid");
    SL_CHECK_STR(detail_str(&st, "schema"), "canonical/payment.succeeded.json");
    stage_stop(&st);
}

SL_TEST(unmatched_events_pass_unchanged_or_are_dead_lettered_when_required)
{
    struct stage st;
    stage_start(&st, "transforms:\n" PAYMENT_RULE);
    char buf[1024], h[256];
    const rd_kafka_headers_t *hdrs;
    SL_CHECK_INT(run(&st, "shop", "order.created", "{\"id\": \"o1\",  \"n\": 1.5}",
                     "dataschema=https://shop.example.com/order.json"),
                 SL_PASS);
    /* Byte for byte, every attribute as it was. */
    SL_CHECK_STR(output(&st, buf, sizeof(buf), &hdrs), "{\"id\": \"o1\",  \"n\": 1.5}");
    SL_CHECK_STR(header(hdrs, "ce_type", h, sizeof(h)), "order.created");
    SL_CHECK_STR(header(hdrs, "ce_dataschema", h, sizeof(h)),
                 "https://shop.example.com/order.json");
    SL_CHECK(header(hdrs, "ce_sluiceorigtype", h, sizeof(h)) == NULL);
    SL_CHECK(json_is_null(json_object_get(sl_emit_detail(st.out), "rule")));
    stage_stop(&st);

    stage_start(&st, "transforms:\n" PAYMENT_RULE "transform: { required: true }\n");
    SL_CHECK_INT(run(&st, "shop", "order.created", "{}", NULL), SL_REJECT);
    SL_CHECK_STR(reason(&st),
                 "no transform rule matched type order.created (transform.required is true)");
    SL_CHECK_INT(sl_emit_count(st.out), 0);
    stage_stop(&st);
}

SL_TEST(canonical_schema_guard_dead_letters_with_every_error)
{
    struct stage st;
    stage_start(&st, "transforms:\n" PAYMENT_RULE);
    /* A broken mapping's output: an amount as text, a lower-case currency, a bad date, an
     * extra member. Nothing goes downstream. */
    SL_CHECK_INT(run(&st, "shop", "order.paid",
                     "{\"id\":\"p1\",\"cust\":\"c1\",\"amount\":\"12.50\",\"cur\":\"eur\","
                     "\"at\":\"yesterday\"}",
                     NULL),
                 SL_REJECT);
    SL_CHECK_STR(reason(&st), "transform 'pay': the output does not match "
                              "canonical/payment.succeeded.json: 3 errors");
    SL_CHECK_STR(error_at(&st, 0),
                 "/amount_minor: /properties/amount_minor/type: expected integer, "
                 "got string");
    SL_CHECK_CONTAINS(error_at(&st, 1), "/currency: /properties/currency/pattern: ");
    SL_CHECK_CONTAINS(error_at(&st, 2), "/occurred_at: /properties/occurred_at/format: ");
    SL_CHECK_INT(sl_emit_count(st.out), 0);
    stage_stop(&st);
}

SL_TEST(output_shape_runtime_errors_and_budget_name_the_rule)
{
    struct stage st;
    stage_start(&st, "transforms:\n"
                     "  - { name: scalar, when: '.type == \"a\"', jq: '42' }\n"
                     "  - { name: extra, when: '.type == \"b\"', jq: '{type: \"x\", data: 1, "
                     "key: 2}' }\n"
                     "  - { name: notype, when: '.type == \"c\"', jq: '{data: 1}' }\n"
                     "  - { name: nodata, when: '.type == \"d\"', jq: '{type: \"x\"}' }\n"
                     "  - { name: boom, when: '.type == \"e\"', jq: 'error(\"kaboom\")' }\n"
                     "  - { name: two, when: '.type == \"f\"', jq: '(1,2) | {type: \"x\", "
                     "data: .}' }\n"
                     "  - { name: forever, when: '.type == \"g\"', jq: 'def f: f; f' }\n"
                     "  - { name: badwhen, when: '.data.x | ascii_downcase', jq: '.' }\n");
    SL_CHECK_INT(run(&st, "s", "a", "{}", NULL), SL_REJECT);
    SL_CHECK_STR(reason(&st), "transform 'scalar': the mapping gave a number, not {type, data}");
    SL_CHECK_INT(run(&st, "s", "b", "{}", NULL), SL_REJECT);
    SL_CHECK_STR(
        reason(&st),
        "transform 'extra': the mapping's output has a member 'key' besides type and data");
    SL_CHECK_INT(run(&st, "s", "c", "{}", NULL), SL_REJECT);
    SL_CHECK_STR(reason(&st), "transform 'notype': the mapping's output needs a non-empty string "
                              "'type', not nothing");
    SL_CHECK_INT(run(&st, "s", "d", "{}", NULL), SL_REJECT);
    SL_CHECK_STR(reason(&st), "transform 'nodata': the mapping's output has no 'data'");
    SL_CHECK_INT(run(&st, "s", "e", "{}", NULL), SL_REJECT);
    SL_CHECK_STR(reason(&st), "transform 'boom': expression 'boom': kaboom");
    SL_CHECK_INT(run(&st, "s", "f", "{}", NULL), SL_REJECT);
    SL_CHECK_CONTAINS(reason(&st), "transform 'two': expression 'two' produced more than one");
    SL_CHECK_INT(run(&st, "s", "g", "{}", NULL), SL_REJECT);
    SL_CHECK_CONTAINS(reason(&st), "transform 'forever': expression 'forever' exceeded its budget");
    /* A `when` that fails is the rule's failure too (the rules before it did not match). */
    SL_CHECK_INT(run(&st, "s", "h", "{\"x\": 5}", NULL), SL_REJECT);
    SL_CHECK_CONTAINS(reason(&st), "transform 'badwhen': expression 'badwhen': ");
    /* A payload that is not JSON is refused before any rule. */
    SL_CHECK_INT(run(&st, "s", "a", "{\"x\":", NULL), SL_REJECT);
    SL_CHECK_CONTAINS(reason(&st), "event data: event data is not valid JSON");
    stage_stop(&st);
}

/* ---- lookups ---- */

#define LOOKUP_RULES                                                                               \
    "transforms:\n"                                                                                \
    "  - name: strict\n"                                                                           \
    "    when: '.type == \"strict\"'\n"                                                            \
    "    lookups:\n"                                                                               \
    "      - { name: account, type: redis, key: '.data.customer' }\n"                              \
    "    jq: '{type: \"t\", data: {account: .lookups.account}}'\n"                                 \
    "  - name: lenient\n"                                                                          \
    "    when: '.type == \"lenient\"'\n"                                                           \
    "    lookups:\n"                                                                               \
    "      - { name: account, type: redis, key: '.data.customer', field: '\"id\"' }\n"             \
    "      - { name: profile, type: http, cache_ttl: 0,\n"                                         \
    "          url: 'if .lookups.account then \"http://127.0.0.1:%d/p?token=s3cret\" else null "   \
    "end' }\n"                                                                                     \
    "    on_missing: null\n"                                                                       \
    "    jq: '{type: \"t\", data: .lookups}'\n"                                                    \
    "  - name: wrongkey\n"                                                                         \
    "    when: '.type == \"wrongkey\"'\n"                                                          \
    "    lookups: [{ name: a, type: redis, key: '.data' }]\n"                                      \
    "    jq: '{type: \"t\", data: 1}'\n"

static void lookup_stage(struct stage *st)
{
    char text[4096];
    snprintf(text, sizeof(text), LOOKUP_RULES, dead_port());
    stage_start(st, text);
}

SL_TEST(a_null_key_is_a_miss_that_on_missing_decides)
{
    struct stage st;
    char buf[1024];
    lookup_stage(&st);
    /* No customer: nothing to look up, so Redis (down) is never asked. */
    SL_CHECK_INT(run(&st, "s", "strict", "{}", NULL), SL_REJECT);
    SL_CHECK_STR(reason(&st), "transform 'strict': lookup 'account': the key is null: nothing to "
                              "look up (on_missing: fail)");
    SL_CHECK_STR(detail_str(&st, "lookups.account"), "missing");
    /* on_missing: null (written as YAML's null) goes on with null; the second lookup sees the
     * first one's null result and asks for nothing either. */
    SL_CHECK_INT(run(&st, "s", "lenient", "{}", NULL), SL_PASS);
    SL_CHECK_STR(output(&st, buf, sizeof(buf), NULL), "{\"account\":null,\"profile\":null}");
    SL_CHECK_STR(detail_str(&st, "lookups.profile"), "missing");
    /* A key that is not a string or an integer fails the event. */
    SL_CHECK_INT(run(&st, "s", "wrongkey", "{\"k\":1}", NULL), SL_REJECT);
    SL_CHECK_STR(reason(&st),
                 "transform 'wrongkey': lookup 'a': the key must be a string or an integer, not "
                 "an object");
    stage_stop(&st);
}

SL_TEST(unreachable_dependencies_hold_the_event)
{
    struct stage st;
    lookup_stage(&st);
    SL_CHECK_INT(run(&st, "s", "strict", "{\"customer\": \"cus_1\"}", NULL), SL_RETRY);
    SL_CHECK_CONTAINS(reason(&st),
                      "transform 'strict': lookup 'account': redis GET cus_1: redis 127.0.0.1:");
    SL_CHECK_INT(sl_emit_count(st.out), 0);
    stage_stop(&st);

    /* The HTTP API down (Redis never asked: no cache); the reason leaves out the query. */
    char text[4096];
    snprintf(text, sizeof(text),
             "transforms:\n"
             "  - name: web\n"
             "    lookups:\n"
             "      - { name: p, type: http, cache_ttl: 0, timeout: 500ms,\n"
             "          url: '\"http://127.0.0.1:%d/p/\" + .data.id + \"?token=s3cret\"' }\n"
             "    jq: '{type: \"t\", data: .lookups.p}'\n",
             dead_port());
    stage_start(&st, text);
    SL_CHECK_INT(run(&st, "s", "x", "{\"id\": \"42\"}", NULL), SL_RETRY);
    char want[128];
    snprintf(want, sizeof(want),
             "transform 'web': lookup 'p': GET http://127.0.0.1:%d/p/42: ", dead_port());
    SL_CHECK_CONTAINS(reason(&st), want);
    SL_CHECK(!strstr(reason(&st), "s3cret"));
    stage_stop(&st);
}

/* Issue 11 item 10: an id ".." would make GET /p/.. (the API's /), with the lookup's headers.
 * Refused before any request: the API here is down, so a request would hold the event. */
SL_TEST(lookup_urls_with_dot_segments_are_refused)
{
    struct stage st;
    char text[4096];
    snprintf(text, sizeof(text),
             "transforms:\n"
             "  - name: web\n"
             "    lookups:\n"
             "      - { name: p, type: http, cache_ttl: 0, timeout: 500ms,\n"
             "          url: '\"http://127.0.0.1:%d/p/\" + .data.id + \"/q?token=s3cret\"' }\n"
             "    jq: '{type: \"t\", data: .lookups.p}'\n",
             dead_port());
    stage_start(&st, text);
    const char *ids[] = {"{\"id\": \"..\"}", "{\"id\": \".\"}", "{\"id\": \"%2e%2E\"}"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        SL_CHECK_INT(run(&st, "s", "x", ids[i], NULL), SL_REJECT);
        SL_CHECK_CONTAINS(reason(&st), "dot segment");
        SL_CHECK(!strstr(reason(&st), "s3cret"));
    }
    /* Dots inside a segment are ordinary: asked (and held, the API being down). */
    SL_CHECK_INT(run(&st, "s", "x", "{\"id\": \"a..b\"}", NULL), SL_RETRY);
    stage_stop(&st);
}

/* ---- configuration errors name the file, the line and the key ---- */

static void check_config_error(const char *transforms, const char *want)
{
    struct sl_err err;
    sl_conf_t *conf = pipeline(transforms, &err);
    if (!conf) {
        SL_CHECK_CONTAINS(err.msg, want);
        return;
    }
    if (transform_check_config(conf, &err) == 0)
        sl_test_fail(__FILE__, __LINE__, "accepted: %s", transforms);
    else
        SL_CHECK_CONTAINS(err.msg, want);
    sl_conf_destroy(conf);
}

SL_TEST(config_errors)
{
    check_config_error("transforms:\n  - { name: r, jq: '{type: ' }\n",
                       "test.yaml:4: transforms[0].jq: expression 'r': ");
    check_config_error("transforms:\n  - { name: r, when: '.a ==', jq: '.' }\n",
                       "test.yaml:4: transforms[0].when: expression 'r': ");
    check_config_error("transforms:\n  - { name: r, jq: '.' }\n  - { name: r, jq: '.' }\n",
                       "test.yaml:5: transforms[1].name: another transform rule is named 'r'");
    check_config_error("transforms:\n  - { name: r, jq: '.', schema: canonical/nope.json }\n",
                       "test.yaml:4: transforms[0].schema: cannot load the schema: ");
    check_config_error("transforms:\n  - name: r\n    jq: '.'\n    lookups:\n"
                       "      - { name: a, type: redis, url: '\"http://x/\"' }\n",
                       "test.yaml:7: transforms[0].lookups[0].url: not a key of redis lookups");
    check_config_error("transforms:\n  - name: r\n    jq: '.'\n    lookups:\n"
                       "      - { name: a, type: http, key: '.k' }\n",
                       "transforms[0].lookups[0].key: not a key of http lookups");
    check_config_error("transforms:\n  - name: r\n    jq: '.'\n    lookups:\n"
                       "      - { name: a, type: redis }\n",
                       "transforms[0].lookups[0]: a redis lookup needs 'key'");
    check_config_error("transforms:\n  - name: r\n    jq: '.'\n    lookups:\n"
                       "      - { name: a, type: http }\n",
                       "transforms[0].lookups[0]: an http lookup needs 'url'");
    check_config_error("transforms:\n  - name: r\n    jq: '.'\n    lookups:\n"
                       "      - { name: my-account, type: redis, key: '.k' }\n",
                       "transforms[0].lookups[0].name: a lookup name is 1-64 letters");
    check_config_error("transforms:\n  - name: r\n    jq: '.'\n    lookups:\n"
                       "      - { name: a, type: redis, key: '.k' }\n"
                       "      - { name: a, type: redis, key: '.j' }\n",
                       "transforms[0].lookups[1].name: another lookup of this rule is named 'a'");
    check_config_error("transforms:\n  - name: r\n    jq: '.'\n    lookups:\n"
                       "      - { name: a, type: redis, key: '.k |' }\n",
                       "test.yaml:7: transforms[0].lookups[0].key: expression 'a.key': ");
    check_config_error("transforms:\n  - name: r\n    jq: '.'\n    lookups:\n"
                       "      - { name: a, type: http, url: '.u', headers: { \"X Y\": v } }\n",
                       "transforms[0].lookups[0].headers.X Y: not a valid header name or value");
    check_config_error("transforms:\n  - name: r\n    jq: '.'\n    on_missing: skip\n",
                       "transforms[0].on_missing");
}

SL_TEST(header_secrets_are_read_at_start_only)
{
    /* `sluicectl config check` runs where the stage's secrets are not: it checks the lookup
     * without them; the stage itself refuses to start without them. */
    unsetenv("SLUICE_TEST_UNSET_TOKEN");
    struct sl_err err;
    sl_conf_t *conf =
        pipeline("transforms:\n"
                 "  - name: r\n"
                 "    jq: '.'\n"
                 "    lookups:\n"
                 "      - name: p\n"
                 "        type: http\n"
                 "        url: '\"http://127.0.0.1:9/p\"'\n"
                 "        headers: { Authorization: \"Bearer ${SLUICE_TEST_UNSET_TOKEN}\" }\n",
                 &err);
    SL_REQUIRE(conf);
    SL_CHECK_INT(transform_check_config(conf, &err), 0);
    sl_metrics_t *metrics = sl_metrics_new();
    const struct sl_stage_env env = {conf, metrics, PREFIX};
    void *ctx = NULL;
    SL_CHECK_INT(transform_stage.init(&ctx, &env, &err), -1);
    SL_CHECK_CONTAINS(err.msg, "test.yaml:10: transforms[0].lookups[0].headers.Authorization: "
                               "environment variable SLUICE_TEST_UNSET_TOKEN is not set");
    sl_metrics_destroy(metrics);
    sl_conf_destroy(conf);
}

/* Last in this file: it uses up the process's budget aborts, after which every budget error is
 * fatal. */
SL_TEST(a_fatal_budget_error_dead_letters_then_stops_the_process)
{
    struct stage st;
    stage_start(&st, "transforms:\n  - { name: forever, jq: 'def f: f; f' }\n");
    SL_CHECK(!sl_signal_stopping());
    enum sl_verdict v = SL_PASS;
    for (int i = 0; i <= SL_EXPR_MAX_LEAKED + 1 && !sl_signal_stopping(); i++)
        v = run(&st, "s", "t", "{}", NULL);
    SL_CHECK_INT(v, SL_REJECT);
    SL_CHECK_CONTAINS(reason(&st), "transform 'forever': expression 'forever' exceeded its budget");
    SL_CHECK_CONTAINS(reason(&st), "restart the process");
    SL_CHECK(sl_signal_stopping());
    stage_stop(&st);
}

SL_TEST_MAIN()
