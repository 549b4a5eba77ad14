/* sluice-route as a real process against the real broker: fan-out to two destinations, each
 * destination once when two rules name it, a rule's own partition key, no match recorded as
 * filtered, and a rule that fails at run time dead-lettered with its name. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sl_test.h"
#include "sl_testenv.h"

#define PIPELINE_ROUTES                                                                            \
    "destinations:\n"                                                                              \
    "  crm: { url: \"http://127.0.0.1:9/crm\" }\n"                                                 \
    "  warehouse: { url: \"http://127.0.0.1:9/warehouse\" }\n"                                     \
    "routes:\n"                                                                                    \
    "  - name: payments\n"                                                                         \
    "    when: '.type | startswith(\"payment.\")'\n"                                               \
    "    to: [crm, warehouse]\n"                                                                   \
    "  - name: payments-again\n"                                                                   \
    "    when: '.type == \"payment.succeeded\"'\n"                                                 \
    "    to: crm\n"                                                                                \
    "  - name: contacts\n"                                                                         \
    "    when: '.type == \"contact.updated\"'\n"                                                   \
    "    to: warehouse\n"                                                                          \
    "    partition_key: '.data.email'\n"                                                           \
    "  - name: explode\n"                                                                          \
    "    when: '.type == \"boom\" and (.data | error(\"kaboom\"))'\n"                              \
    "    to: crm\n"

static const char *header(rd_kafka_message_t *m, const char *name, char *buf, size_t size)
{
    rd_kafka_headers_t *h;
    const void *v;
    size_t n;
    if (rd_kafka_message_headers(m, &h) || rd_kafka_header_get_last(h, name, &v, &n))
        return NULL;
    snprintf(buf, size, "%.*s", (int)n, (const char *)v);
    return buf;
}

/* Reads `topic` until `want` records came (60 s at most), then 2 s more for extras; checks the
 * count and returns the consumer, which the caller closes after using `msgs`. */
static rd_kafka_t *read_topic(const char *topic, int partitions, rd_kafka_message_t **msgs,
                              size_t want, size_t *n)
{
    rd_kafka_t *c = sl_testenv_consumer(topic, partitions);
    *n = sl_testenv_consume(c, msgs, want, 60000);
    *n += sl_testenv_consume(c, msgs + *n, 1, 2000);
    return c;
}

static void release(rd_kafka_t *c, rd_kafka_message_t **msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rd_kafka_message_destroy(msgs[i]);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
}

SL_TEST(fan_out_keys_filtering_and_errors)
{
    char prefix[128], topic[256], config[4096], group[96], admin[64], buf[512];
    sl_testenv_unique("sluice-test-route", prefix, sizeof(prefix) - 1);
    strcat(prefix, ".");
    const char *names[] = {"normalized", "deliver.crm", "deliver.warehouse", "audit", "dlq"};
    for (size_t i = 0; i < 5; i++) {
        snprintf(topic, sizeof(topic), "%s%s", prefix, names[i]);
        sl_testenv_create_topic(topic, i == 4 ? 1 : 3);
    }
    sl_testenv_config(prefix, PIPELINE_ROUTES, config, sizeof(config));
    snprintf(topic, sizeof(topic), "%snormalized", prefix);
    sl_testenv_produce_typed(topic, "ev-pay", "payment.succeeded", "cus_1",
                             "{\"payment_id\":\"ch_1\",\"amount_minor\":1200}");
    sl_testenv_produce_typed(topic, "ev-contact", "contact.updated", "c_7",
                             "{\"contact_id\":\"c_7\",\"email\":\"ada@example.com\"}");
    sl_testenv_produce_typed(topic, "ev-other", "other.thing", "k", "{}");
    sl_testenv_produce_typed(topic, "ev-boom", "boom", "k", "{\"x\":1}");

    sl_testenv_unique("route-group", group, sizeof(group));
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", sl_testenv_free_port());
    const char *args[] = {"--config", config, "--group", group, "--admin-listen", admin, NULL};
    pid_t pid = sl_testenv_spawn("sluice-route", args, "route");

    rd_kafka_message_t *msgs[8];
    size_t n;
    snprintf(topic, sizeof(topic), "%sdeliver.crm", prefix);
    rd_kafka_t *c = read_topic(topic, 3, msgs, 1, &n);
    SL_CHECK_INT(n, 1); /* two rules name crm: it receives the payment once */
    if (n >= 1) {
        SL_CHECK_STR(header(msgs[0], "ce_id", buf, sizeof(buf)), "ev-pay");
        SL_CHECK_STR(header(msgs[0], "ce_sluiceroute", buf, sizeof(buf)), "payments");
        SL_CHECK(msgs[0]->key_len == 5 && memcmp(msgs[0]->key, "cus_1", 5) == 0);
        SL_CHECK(msgs[0]->len == strlen("{\"payment_id\":\"ch_1\",\"amount_minor\":1200}"));
    }
    release(c, msgs, n);

    snprintf(topic, sizeof(topic), "%sdeliver.warehouse", prefix);
    c = read_topic(topic, 3, msgs, 2, &n);
    SL_CHECK_INT(n, 2);
    for (size_t i = 0; i < n; i++) {
        header(msgs[i], "ce_id", buf, sizeof(buf));
        if (strcmp(buf, "ev-contact") == 0) {
            /* The contacts rule orders by email for this destination. */
            SL_CHECK(msgs[i]->key_len == 15 && memcmp(msgs[i]->key, "ada@example.com", 15) == 0);
            SL_CHECK_STR(header(msgs[i], "ce_partitionkey", buf, sizeof(buf)), "ada@example.com");
            SL_CHECK_STR(header(msgs[i], "ce_sluiceroute", buf, sizeof(buf)), "contacts");
        } else {
            SL_CHECK_STR(buf, "ev-pay");
        }
    }
    release(c, msgs, n);

    snprintf(topic, sizeof(topic), "%sdlq", prefix);
    c = read_topic(topic, 1, msgs, 1, &n);
    SL_CHECK_INT(n, 1);
    if (n >= 1) {
        SL_CHECK_STR(header(msgs[0], "ce_id", buf, sizeof(buf)), "ev-boom");
        SL_CHECK_CONTAINS(header(msgs[0], "ce_sluicereason", buf, sizeof(buf)),
                          "route 'explode': ");
        SL_CHECK_CONTAINS(buf, "kaboom");
    }
    release(c, msgs, n);

    snprintf(topic, sizeof(topic), "%saudit", prefix);
    c = read_topic(topic, 3, msgs, 4, &n);
    SL_CHECK_INT(n, 4);
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_loadb(msgs[i]->payload, msgs[i]->len, 0, NULL);
        const char *id = json_string_value(json_object_get(a, "event_id"));
        const char *outcome = json_string_value(json_object_get(a, "outcome"));
        if (id && strcmp(id, "ev-other") == 0) {
            SL_CHECK_STR(outcome, "filtered");
            SL_CHECK_STR(json_string_value(json_object_get(a, "reason")), "no route matched");
        } else if (id && strcmp(id, "ev-pay") == 0) {
            SL_CHECK_STR(outcome, "passed");
            json_t *to = json_object_get(json_object_get(a, "detail"), "destinations");
            SL_CHECK_INT(json_array_size(to), 2);
        }
        json_decref(a);
    }
    release(c, msgs, n);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
}

SL_TEST(bad_expression_fails_start_up_naming_the_rule)
{
    char config[4096];
    sl_testenv_config("sluice-test-route-bad.",
                      "destinations:\n  d: { url: \"http://127.0.0.1:9/\" }\n"
                      "routes:\n  - name: broken-rule\n    when: '.type ==='\n    to: d\n",
                      config, sizeof(config));
    const char *args[] = {"--config", config, "--admin-listen", "127.0.0.1:0", NULL};
    char log[4200], line[1024] = "";
    snprintf(log, sizeof(log), "%s/tests/route-bad.log", sl_test_binary_dir());
    unlink(log);
    pid_t pid = sl_testenv_spawn("sluice-route", args, "route-bad");
    SL_CHECK_INT(sl_testenv_stop(pid, 0, 30000), 2);
    FILE *f = fopen(log, "r");
    SL_REQUIRE(f);
    SL_CHECK(fgets(line, sizeof(line), f) != NULL);
    fclose(f);
    SL_CHECK_CONTAINS(line, "routes[0]: expression 'broken-rule': ");
}

SL_TEST_MAIN()
