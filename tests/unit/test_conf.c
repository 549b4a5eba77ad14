/* Unit tests of sl_conf (YAML tree, env expansion, typed reads, key table) and of the pipeline
 * key table with the shipped example file. */
#include <stdlib.h>
#include <string.h>

#include "sl_conf.h"
#include "sl_pipeline.h"
#include "sl_test.h"

static sl_conf_t *load(const char *text, struct sl_err *err)
{
    return sl_conf_load_string("test.yaml", ".", text, strlen(text), err);
}

/* Loads and checks against the pipeline table; returns the error message ("" when valid). */
static const char *pipeline_error(const char *text, struct sl_err *err)
{
    sl_err_clear(err);
    sl_conf_t *conf = load(text, err);
    if (conf) {
        if (sl_conf_check(conf, sl_pipeline_keys, err) == 0)
            sl_pipeline_check(conf, err);
        sl_conf_destroy(conf);
    }
    return err->msg;
}

SL_TEST(good_file_typed_reads)
{
    struct sl_err err;
    sl_conf_t *conf = load("kafka:\n"
                           "  brokers: \"b1:9092,b2:9092\"\n"
                           "  partitions: 12\n"
                           "  produce_timeout: 1h30m\n"
                           "ingress:\n"
                           "  max_body_bytes: 64KiB\n"
                           "dedup: { window: 3d }\n"
                           "flags: { on: true }\n"
                           "list: [a, b, c]\n",
                           &err);
    SL_REQUIRE(conf);
    const sl_conf_node_t *root = sl_conf_root(conf);
    const char *s;
    long long v;
    bool b;
    SL_CHECK_INT(sl_conf_str(conf, sl_conf_get(root, "kafka"), "brokers", NULL, &s, &err), 0);
    SL_CHECK_STR(s, "b1:9092,b2:9092");
    SL_CHECK_INT(sl_conf_int(conf, sl_conf_find(root, "kafka"), "partitions", 1, 1, 100, &v, &err),
                 0);
    SL_CHECK_INT(v, 12);
    SL_CHECK_INT(
        sl_conf_duration_ms(conf, sl_conf_get(root, "kafka"), "produce_timeout", 0, 0, 0, &v, &err),
        0);
    SL_CHECK_INT(v, 5400000);
    SL_CHECK_INT(
        sl_conf_size(conf, sl_conf_get(root, "ingress"), "max_body_bytes", 0, 0, 0, &v, &err), 0);
    SL_CHECK_INT(v, 65536);
    SL_CHECK_INT(sl_conf_duration_ms(conf, sl_conf_get(root, "dedup"), "window", 0, 0, 0, &v, &err),
                 0);
    SL_CHECK_INT(v, 3LL * 86400000);
    SL_CHECK_INT(sl_conf_bool(conf, sl_conf_get(root, "flags"), "on", false, &b, &err), 0);
    SL_CHECK(b);
    /* Defaults for absent keys. */
    SL_CHECK_INT(sl_conf_int(conf, sl_conf_get(root, "kafka"), "absent", 7, 0, 0, &v, &err), 0);
    SL_CHECK_INT(v, 7);
    const sl_conf_node_t *list = sl_conf_get(root, "list");
    SL_CHECK_INT(sl_conf_count(list), 3);
    SL_CHECK_STR(sl_conf_keypath(sl_conf_item(list, 2)), "list[2]");
    SL_CHECK_INT(sl_conf_line(sl_conf_item(list, 2)), 9);
    SL_CHECK_STR(sl_conf_keypath(sl_conf_find(root, "kafka.partitions")), "kafka.partitions");
    sl_conf_destroy(conf);
}

SL_TEST(type_errors_name_file_line_and_key)
{
    struct sl_err err;
    sl_conf_t *conf = load("kafka:\n  partitions: many\n  linger: 5 minutes\n"
                           "ingress:\n  max_body_bytes: lots\n",
                           &err);
    SL_REQUIRE(conf);
    const sl_conf_node_t *root = sl_conf_root(conf);
    long long v;
    SL_CHECK_INT(sl_conf_int(conf, sl_conf_get(root, "kafka"), "partitions", 1, 1, 10, &v, &err),
                 -1);
    SL_CHECK_STR(err.msg, "test.yaml:2: kafka.partitions: expected an integer, got 'many'");
    SL_CHECK_INT(sl_conf_duration_ms(conf, sl_conf_get(root, "kafka"), "linger", 0, 0, 0, &v, &err),
                 -1);
    SL_CHECK_CONTAINS(err.msg, "test.yaml:3: kafka.linger: expected a duration");
    SL_CHECK_INT(
        sl_conf_size(conf, sl_conf_get(root, "ingress"), "max_body_bytes", 0, 0, 0, &v, &err), -1);
    SL_CHECK_CONTAINS(err.msg, "test.yaml:5: ingress.max_body_bytes: expected a size");
    sl_conf_destroy(conf);
}

SL_TEST(out_of_range)
{
    struct sl_err err;
    SL_CHECK_STR(pipeline_error("kafka:\n  partitions: 0\n", &err),
                 "test.yaml:2: kafka.partitions: '0' is out of range [1, 10000]");
}

SL_TEST(yaml_syntax_error_has_line)
{
    struct sl_err err;
    sl_conf_t *conf = load("kafka:\n  brokers: [unclosed\nredis: {}\n", &err);
    SL_CHECK(!conf);
    SL_CHECK_CONTAINS(err.msg, "test.yaml:");
    SL_CHECK_CONTAINS(err.msg, "YAML syntax error");
}

SL_TEST(duplicate_key)
{
    struct sl_err err;
    sl_conf_t *conf = load("kafka:\n  partitions: 1\n  partitions: 2\n", &err);
    SL_CHECK(!conf);
    SL_CHECK_STR(err.msg, "test.yaml:3: kafka.partitions: duplicate key (first at line 2)");
}

SL_TEST(alias_rejected)
{
    struct sl_err err;
    sl_conf_t *conf = load("a: &x 1\nb: *x\n", &err);
    SL_CHECK(!conf);
    SL_CHECK_CONTAINS(err.msg, "test.yaml:2: b: YAML aliases");
}

SL_TEST(top_level_must_be_map)
{
    struct sl_err err;
    sl_conf_t *conf = load("- a\n- b\n", &err);
    SL_CHECK(!conf);
    SL_CHECK_CONTAINS(err.msg, "the top level must be a map");
    conf = load("", &err); /* an empty file is an empty pipeline */
    SL_CHECK(conf);
    sl_conf_destroy(conf);
}

SL_TEST(env_expansion)
{
    struct sl_err err;
    setenv("SL_TEST_BROKERS", "k1:9092", 1);
    setenv("SL_TEST_EMPTY", "", 1);
    unsetenv("SL_TEST_UNSET");
    sl_conf_t *conf = load("a: \"${SL_TEST_BROKERS}\"\n"
                           "b: \"${SL_TEST_UNSET:-fallback}\"\n"
                           "c: \"x-${SL_TEST_BROKERS}-${SL_TEST_UNSET:-}-y\"\n"
                           "d: \"${SL_TEST_UNSET}\"\n"
                           "e: \"$${NOT_EXPANDED}\"\n"
                           "f: \"${SL_TEST_EMPTY:-used when empty}\"\n",
                           &err);
    SL_REQUIRE(conf);
    const sl_conf_node_t *root = sl_conf_root(conf);
    const char *s;
    SL_CHECK_INT(sl_conf_str(conf, root, "a", NULL, &s, &err), 0);
    SL_CHECK_STR(s, "k1:9092");
    SL_CHECK_INT(sl_conf_str(conf, root, "b", NULL, &s, &err), 0);
    SL_CHECK_STR(s, "fallback");
    SL_CHECK_INT(sl_conf_str(conf, root, "c", NULL, &s, &err), 0);
    SL_CHECK_STR(s, "x-k1:9092--y");
    SL_CHECK_INT(sl_conf_str(conf, root, "e", NULL, &s, &err), 0);
    SL_CHECK_STR(s, "${NOT_EXPANDED}");
    SL_CHECK_INT(sl_conf_str(conf, root, "f", NULL, &s, &err), 0);
    SL_CHECK_STR(s, "used when empty");
    /* An unset variable fails only when read, naming it. */
    SL_CHECK_INT(sl_conf_str(conf, root, "d", NULL, &s, &err), -1);
    SL_CHECK_STR(err.msg, "test.yaml:4: d: environment variable SL_TEST_UNSET is not set");
    sl_conf_destroy(conf);

    conf = load("a: \"${not valid}\"\n", &err);
    SL_CHECK(!conf);
    SL_CHECK_CONTAINS(err.msg, "test.yaml:1: a: malformed ${...}");
}

SL_TEST(unknown_keys_are_errors)
{
    struct sl_err err;
    SL_CHECK_STR(pipeline_error("kafka:\n  brokerz: x\n", &err),
                 "test.yaml:2: kafka.brokerz: unknown key (did you mean 'brokers'? known keys: "
                 "brokers, topic_prefix, partitions, replication_factor, produce_timeout, linger, "
                 "compression, max_message_bytes, properties)");
    SL_CHECK_CONTAINS(pipeline_error("nonsense: 1\n", &err),
                      "test.yaml:1: nonsense: unknown key (known keys: kafka,");
    SL_CHECK_CONTAINS(pipeline_error("sources:\n  s1:\n    verify: {scheme: none}\n"
                                     "    evnt_id: /id\n",
                                     &err),
                      "test.yaml:4: sources.s1.evnt_id: unknown key (did you mean 'event_id'?");
}

SL_TEST(enum_and_required_and_cross_checks)
{
    struct sl_err err;
    SL_CHECK_STR(pipeline_error("sources:\n  s1:\n    verify: {scheme: magic}\n", &err),
                 "test.yaml:3: sources.s1.verify.scheme: 'magic' is not one of: stripe, github, "
                 "standard-webhooks, hmac-sha256, api-key, none");
    SL_CHECK_STR(pipeline_error("sources:\n  s1:\n    event_id: /id\n", &err),
                 "test.yaml:3: sources.s1: missing required key 'verify'");
    SL_CHECK_STR(pipeline_error("sources:\n  s1:\n    verify: {scheme: stripe}\n", &err),
                 "test.yaml:3: sources.s1.verify: scheme stripe needs 'secret'");
    SL_CHECK_STR(pipeline_error("routes:\n  - name: r\n    to: [nowhere]\n", &err),
                 "test.yaml:3: routes[0].to[0]: no destination named 'nowhere'");
    SL_CHECK_STR(pipeline_error("destinations:\n  bad.name:\n    url: http://x\n", &err),
                 "test.yaml:3: destinations.bad.name: name must be 1-100 letters, digits, '-' or "
                 "'_'");
    SL_CHECK_STR(pipeline_error("destinations:\n  d:\n    url: http://x\n"
                                "routes:\n  - name: r\n    to: d\n",
                                &err),
                 "");
}

SL_TEST(example_pipeline_is_valid)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/deploy/examples/pipeline.yaml", sl_test_source_dir());
    setenv("STRIPE_WEBHOOK_SECRET", "whsec_test", 1);
    struct sl_err err;
    sl_conf_t *conf = sl_pipeline_load(path, &err);
    if (!conf)
        sl_test_fail(__FILE__, __LINE__, "%s", err.msg);
    SL_REQUIRE(conf);

    struct sl_kafka_settings kafka;
    SL_CHECK_INT(sl_kafka_settings_load(conf, &kafka, &err), 0);
    struct sl_topic_spec *specs;
    size_t n;
    SL_REQUIRE(sl_pipeline_topics(conf, &kafka, &specs, &n, &err) == 0);
    SL_CHECK_INT(n, 8);
    SL_CHECK_STR(specs[0].name, "sluice.ingress");
    SL_CHECK_STR(specs[6].name, "sluice.deliver.crm");
    SL_CHECK_STR(specs[7].name, "sluice.deliver.warehouse");
    SL_CHECK_INT(specs[7].partitions, 6);
    sl_pipeline_topics_free(specs, n);

    /* Every schema the example names exists under its schema_dir. */
    const char *schema_dir;
    SL_CHECK_INT(sl_conf_str(conf, sl_conf_root(conf), "schema_dir", NULL, &schema_dir, &err), 0);
    const sl_conf_node_t *sources = sl_conf_get(sl_conf_root(conf), "sources");
    for (size_t i = 0; i < sl_conf_count(sources); i++) {
        const sl_conf_node_t *schemas = sl_conf_get(sl_conf_item(sources, i), "schemas");
        for (size_t j = 0; j < sl_conf_count(schemas); j++) {
            const char *rel;
            SL_CHECK_INT(sl_conf_as_str(conf, sl_conf_item(schemas, j), &rel, &err), 0);
            char file[4096];
            snprintf(file, sizeof(file), "%s/%s/%s", sl_conf_dir(conf), schema_dir, rel);
            FILE *f = fopen(file, "r");
            if (!f)
                sl_test_fail(__FILE__, __LINE__, "schema %s is missing", file);
            else
                fclose(f);
        }
    }
    sl_conf_destroy(conf);
}

SL_TEST(reference_lists_every_section)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    SL_REQUIRE(f);
    sl_pipeline_write_reference(f);
    fclose(f);
    SL_CHECK_CONTAINS(buf, "| `kafka.brokers` | string |");
    SL_CHECK_CONTAINS(buf, "| `sources.<name>.verify.scheme` | enum: `stripe`");
    SL_CHECK_CONTAINS(buf, "| `routes[].to` |");
    free(buf);
}

SL_TEST_MAIN()
