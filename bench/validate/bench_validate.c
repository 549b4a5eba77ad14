/*
 * bench-validate: the measuring parts of bench/validate/run.sh.
 *
 *   bench-validate produce BROKERS TOPIC N      N Stripe-like charge.succeeded events (~1 KB),
 *                                              with the attributes sluice-ingress sets
 *   bench-validate drain BROKERS TOPIC PARTS N  wait (read_committed, from the current end) for
 *                                              N records; print the wall-clock ms of the first
 *                                              and the N-th: "first_ms last_ms count"
 *   bench-validate validator SCHEMA SECONDS     the validator alone on the calling thread: one
 *                                              payload, validated again and again
 *
 * drain starts at the end of the topic, so several runs can share one output topic; it prints
 * "ready" on stderr once assigned, so the caller starts the stage only then. Every event has its
 * own event id, idempotency key and Stripe ids, so dedup sees N distinct business events.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_cloudevent.h"
#include "sl_id.h"
#include "sl_jsonschema.h"
#include "sl_kafka.h"

#define PAYLOAD_MAX 2048
/* Customers the events are spread over (the partition key). */
#define CUSTOMERS 1000

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Event i: a charge.succeeded webhook as a Stripe-like processor sends it (about 1 KB). */
static int payload(char *buf, size_t size, long i, char *event_id, size_t id_size, char *customer,
                   size_t customer_size)
{
    snprintf(event_id, id_size, "evt_3QbEnch%010ld", i);
    snprintf(customer, customer_size, "cus_R4fTz%06ld", i % CUSTOMERS);
    int n = snprintf(
        buf, size,
        "{\"id\":\"%s\",\"object\":\"event\",\"api_version\":\"2024-06-20\",\"created\":%ld,"
        "\"type\":\"charge.succeeded\",\"livemode\":false,"
        "\"request\":{\"id\":\"req_Kq8r2VwX%08ld\",\"idempotency_key\":null},"
        "\"data\":{\"object\":{\"id\":\"ch_3QbEnc%010ld\",\"object\":\"charge\",\"amount\":%ld,"
        "\"amount_captured\":%ld,\"amount_refunded\":0,"
        "\"balance_transaction\":\"txn_3QbEnc%010ld\","
        "\"billing_details\":{\"address\":{\"city\":\"Berlin\",\"country\":\"DE\","
        "\"line1\":\"Torstrasse 140\",\"postal_code\":\"10119\",\"state\":null},"
        "\"email\":\"customer%ld@example.com\",\"name\":\"Jenny Rosen\",\"phone\":null},"
        "\"captured\":true,\"created\":%ld,"
        "\"currency\":\"eur\",\"customer\":\"%s\",\"description\":\"Order A-%ld\","
        "\"metadata\":{\"order_id\":\"A-%ld\",\"channel\":\"web\"},"
        "\"outcome\":{\"network_status\":\"approved_by_network\",\"risk_level\":\"normal\","
        "\"risk_score\":%ld,\"seller_message\":\"Payment complete.\",\"type\":\"authorized\"},"
        "\"paid\":true,\"payment_intent\":\"pi_3QbEnc%010ld\","
        "\"payment_method\":\"pm_1QbEnc%010ld\","
        "\"payment_method_details\":{\"card\":{\"brand\":\"visa\",\"country\":\"DE\","
        "\"exp_month\":12,\"exp_year\":2027,\"funding\":\"credit\",\"last4\":\"4242\","
        "\"network\":\"visa\"},\"type\":\"card\"},"
        "\"refunded\":false,\"status\":\"succeeded\"}}}",
        event_id, 1732460000 + i, i, i, 500 + i % 100000, 500 + i % 100000, i, i % CUSTOMERS,
        1732460000 + i, customer, i, i, i % 100, i, i);
    return n > 0 && (size_t)n < size ? n : -1;
}

static int cmd_produce(const char *brokers, const char *topic, long n)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    struct sl_ce ce;
    rd_kafka_headers_t *hdrs = NULL;
    size_t bytes = 0;
    int rc = 1;
    sl_kafka_settings_default(&s);
    s.brokers = brokers;
    sl_ce_init(&ce);
    sl_producer_t *p = sl_producer_new(&s, "bench-validate-producer", NULL, &err);
    if (!p)
        goto out;
    for (long i = 0; i < n; i++) {
        char buf[PAYLOAD_MAX], event_id[64], customer[64], id[SL_UUID_STR_LEN + 1];
        int len =
            payload(buf, sizeof(buf), i, event_id, sizeof(event_id), customer, sizeof(customer));
        if (len < 0) {
            sl_err_set(&err, SL_ERR_INVALID, "event %ld: payload too long", i);
            goto out;
        }
        sl_ce_free(&ce);
        sl_ce_init(&ce);
        sl_uuid_v7(id);
        hdrs = rd_kafka_headers_new(12);
        if (sl_ce_set(&ce, "specversion", "1.0", &err) != 0 ||
            sl_ce_set(&ce, "id", id, &err) != 0 || sl_ce_set(&ce, "source", "stripe", &err) != 0 ||
            sl_ce_set(&ce, "type", "charge.succeeded", &err) != 0 ||
            sl_ce_set(&ce, "time", "2026-11-24T17:30:00.123Z", &err) != 0 ||
            sl_ce_set(&ce, "datacontenttype", "application/json", &err) != 0 ||
            sl_ce_set(&ce, SL_CE_TRACEPARENT,
                      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &err) != 0 ||
            sl_ce_set(&ce, SL_CE_PARTITION_KEY, customer, &err) != 0 ||
            sl_ce_set(&ce, SL_CE_IDEMPOTENCY_KEY, event_id, &err) != 0 ||
            sl_ce_set(&ce, SL_CE_SOURCE_NAME, "stripe", &err) != 0 ||
            sl_ce_to_headers(&ce, hdrs, &err) != 0)
            goto out;
        bytes += (size_t)len;
        /* A full local queue drains as the broker acknowledges. */
        while (sl_producer_send(p, topic, customer, strlen(customer), buf, (size_t)len, hdrs, NULL,
                                &err) != 0) {
            if (!err.retriable)
                goto out;
            sl_producer_poll(p, 10);
        }
        hdrs = NULL; /* taken by the producer */
        sl_producer_poll(p, 0);
    }
    if (sl_producer_flush(p, 120000, &err) != 0)
        goto out;
    printf("%ld events, %.0f bytes each on average\n", n, n ? (double)bytes / (double)n : 0.0);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "bench-validate produce: %s\n", err.msg);
    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
    sl_ce_free(&ce);
    sl_producer_destroy(p);
    return rc;
}

static int cmd_drain(const char *brokers, const char *topic, int partitions, long n)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    char errstr[512] = "";
    long count = 0;
    long long first = 0, last = 0;
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(partitions);
    sl_kafka_settings_default(&s);
    s.brokers = brokers;
    rd_kafka_conf_t *conf = sl_kafka_conf_new(&s, "bench-validate-drain", &err);
    if (!conf || sl_kafka_conf_set(conf, "group.id", "bench-validate-drain", &err) != 0 ||
        sl_kafka_conf_set(conf, "isolation.level", "read_committed", &err) != 0 ||
        sl_kafka_conf_set(conf, "enable.auto.commit", "false", &err) != 0) {
        snprintf(errstr, sizeof(errstr), "%s", err.msg);
        goto out;
    }
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr))))
        goto out;
    conf = NULL; /* taken by rd_kafka_new() */
    rd_kafka_poll_set_consumer(rk);
    /* The end as of now, resolved before the stage starts: only this run's records count. */
    for (int i = 0; i < partitions; i++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t rc = rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &hi, 30000);
        if (rc) {
            snprintf(errstr, sizeof(errstr), "%s [%d]: %s", topic, i, rd_kafka_err2str(rc));
            goto out;
        }
        rd_kafka_topic_partition_list_add(parts, topic, i)->offset = hi;
    }
    rd_kafka_assign(rk, parts);
    fprintf(stderr, "ready\n");
    long long deadline = wall_ms() + 900000;
    while (count < n && wall_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err) {
            last = wall_ms();
            if (!count++)
                first = last;
        }
        rd_kafka_message_destroy(m);
    }
    printf("%lld %lld %ld\n", first, last, count);
    if (count < n)
        snprintf(errstr, sizeof(errstr), "%ld of %ld records within the deadline", count, n);
out:
    if (errstr[0])
        fprintf(stderr, "bench-validate drain: %s\n", errstr);
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return errstr[0] ? 1 : 0;
}

static int cmd_validator(const char *schema_path, double seconds)
{
    struct sl_err err;
    char buf[PAYLOAD_MAX], event_id[64], customer[64];
    int len = payload(buf, sizeof(buf), 42, event_id, sizeof(event_id), customer, sizeof(customer));
    sl_schema_set_t *set = sl_schema_set_new();
    const sl_schema_t *schema = set ? sl_schema_set_load_file(set, schema_path, &err) : NULL;
    json_t *instance = len > 0 ? json_loadb(buf, (size_t)len, 0, NULL) : NULL;
    int rc = 1;
    if (!schema || !instance || sl_schema_validate(schema, instance, NULL, NULL, 0) != 1) {
        fprintf(stderr, "bench-validate validator: %s\n",
                !schema ? (set ? err.msg : "out of memory") : "the payload is not valid");
        goto out;
    }
    /* Validation only, on the parsed instance; then what the stage does per event: parse,
     * validate, free. Each for `seconds`, checking the clock every 256 iterations. */
    long n_validate = 0, n_full = 0;
    double t0 = mono_s(), t1;
    do {
        for (int i = 0; i < 256; i++)
            n_validate += sl_schema_validate(schema, instance, NULL, NULL, 0) == 1;
    } while ((t1 = mono_s()) - t0 < seconds);
    double validate_s = t1 - t0;
    t0 = mono_s();
    do {
        for (int i = 0; i < 256; i++) {
            json_t *j =
                json_loadb(buf, (size_t)len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
            n_full += sl_schema_validate(schema, j, NULL, NULL, 0) == 1;
            json_decref(j);
        }
    } while ((t1 = mono_s()) - t0 < seconds);
    double full_s = t1 - t0;
    printf("%d %.0f %.0f\n", len, (double)n_validate / validate_s, (double)n_full / full_s);
    rc = 0;
out:
    json_decref(instance);
    sl_schema_set_destroy(set);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "produce") == 0)
        return cmd_produce(argv[2], argv[3], atol(argv[4]));
    if (argc == 6 && strcmp(argv[1], "drain") == 0)
        return cmd_drain(argv[2], argv[3], atoi(argv[4]), atol(argv[5]));
    if (argc == 4 && strcmp(argv[1], "validator") == 0)
        return cmd_validator(argv[2], atof(argv[3]));
    fprintf(stderr, "usage: bench-validate produce BROKERS TOPIC N\n"
                    "       bench-validate drain BROKERS TOPIC PARTITIONS N\n"
                    "       bench-validate validator SCHEMA SECONDS\n");
    return 2;
}
