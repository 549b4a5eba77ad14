/*
 * bench-transform: the measuring parts of bench/transform/run.sh.
 *
 *   bench-transform produce BROKERS TOPIC N DIR KIND   N events cycling through the example
 *                                              mappings' fixtures in DIR (tests/data/transform):
 *                                              KIND "input" (validated events, transform's
 *                                              input) or "expected" (normalized events, route's)
 *   bench-transform drain BROKERS TOPIC PARTS N  wait (read_committed, from the current end) for
 *                                              N records; print the wall-clock ms of the first
 *                                              and the N-th: "first_ms last_ms count"
 *   bench-transform process PIPELINE DIR SECONDS  the transform stage's process() alone on the
 *                                              calling thread, over the input fixtures in turn
 *                                              (lookups included: the pipeline's Redis must be
 *                                              up): "events_per_cpu_second cpu_us_per_event"
 *
 * Every produced event has its own id and idempotency key; record keys are the fixture's key
 * with one of KEYS suffixes, so the events spread over the partitions. drain starts at the end
 * of the topic, so several runs can share one output topic; it prints "ready" on stderr once
 * assigned, so the caller starts the stage only then.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_cloudevent.h"
#include "sl_id.h"
#include "sl_kafka.h"
#include "sl_metrics.h"
#include "sl_pipeline.h"
#include "transform.h"

/* The example mappings with fixtures (tests/data/transform/<rule>.<kind>.json). */
static const char *const rules[] = {"stripe-charge-to-payment", "stripe-refund-to-payment",
                                    "crm-contact-to-contact", "github-push-to-code"};
#define N_RULES (sizeof(rules) / sizeof(rules[0]))
#define KEYS    1000 /* distinct record keys per fixture */

/* One fixture: its attributes, key and payload. */
struct fixture {
    struct sl_ce ce;
    char key[256];
    char *payload;
    size_t len;
};

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fixtures_free(struct fixture *fx)
{
    for (size_t i = 0; i < N_RULES; i++) {
        sl_ce_free(&fx[i].ce);
        free(fx[i].payload);
    }
}

/* Loads DIR/<rule>.<kind>.json for every rule into fx (each initialised by the caller). */
static int fixtures_load(const char *dir, const char *kind, struct fixture *fx, struct sl_err *err)
{
    for (size_t i = 0; i < N_RULES; i++) {
        char path[4096];
        json_error_t jerr;
        snprintf(path, sizeof(path), "%s/%s.%s.json", dir, rules[i], kind);
        json_t *j = json_load_file(path, 0, &jerr);
        const char *name;
        json_t *value;
        if (!j)
            return sl_err_set(err, SL_ERR_INVALID, "%s: %s", path, jerr.text);
        snprintf(fx[i].key, sizeof(fx[i].key), "%s", json_string_value(json_object_get(j, "key")));
        fx[i].payload = json_dumps(json_object_get(j, "data"), JSON_COMPACT | JSON_ENCODE_ANY);
        fx[i].len = fx[i].payload ? strlen(fx[i].payload) : 0;
        bool ok = fx[i].payload != NULL;
        json_object_foreach(json_object_get(j, "headers"), name, value)
        {
            /* Headers are "ce_<attribute>", and content-type for datacontenttype. */
            const char *attr = strcmp(name, "content-type") == 0 ? "datacontenttype" : name + 3;
            ok = ok && sl_ce_set(&fx[i].ce, attr, json_string_value(value), err) == 0;
        }
        json_decref(j);
        if (!ok)
            return sl_err_set(err, SL_ERR_INVALID, "%s: unusable fixture", path);
    }
    return 0;
}

static int cmd_produce(const char *brokers, const char *topic, long n, const char *dir,
                       const char *kind)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    struct fixture fx[N_RULES];
    rd_kafka_headers_t *hdrs = NULL;
    size_t bytes = 0;
    int rc = 1;
    for (size_t i = 0; i < N_RULES; i++)
        sl_ce_init(&fx[i].ce);
    sl_kafka_settings_default(&s);
    s.brokers = brokers;
    sl_producer_t *p = NULL;
    if (fixtures_load(dir, kind, fx, &err) != 0 ||
        !(p = sl_producer_new(&s, "bench-transform-producer", NULL, &err)))
        goto out;
    for (long i = 0; i < n; i++) {
        struct fixture *f = &fx[i % (long)N_RULES];
        char id[SL_UUID_STR_LEN + 1], idem[64], key[300];
        sl_uuid_v7(id);
        snprintf(idem, sizeof(idem), "bench-%ld", i);
        snprintf(key, sizeof(key), "%s-%ld", f->key, i % KEYS);
        hdrs = rd_kafka_headers_new(16);
        if (sl_ce_set(&f->ce, "id", id, &err) != 0 ||
            sl_ce_set(&f->ce, SL_CE_IDEMPOTENCY_KEY, idem, &err) != 0 ||
            sl_ce_to_headers(&f->ce, hdrs, &err) != 0)
            goto out;
        bytes += f->len;
        /* A full local queue drains as the broker acknowledges. */
        while (sl_producer_send(p, topic, key, strlen(key), f->payload, f->len, hdrs, NULL, &err) !=
               0) {
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
        fprintf(stderr, "bench-transform produce: %s\n", err.msg);
    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
    sl_producer_destroy(p);
    fixtures_free(fx);
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
    rd_kafka_conf_t *conf = sl_kafka_conf_new(&s, "bench-transform-drain", &err);
    if (!conf || sl_kafka_conf_set(conf, "group.id", "bench-transform-drain", &err) != 0 ||
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
        fprintf(stderr, "bench-transform drain: %s\n", errstr);
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return errstr[0] ? 1 : 0;
}

static int cmd_process(const char *pipeline, const char *dir, double seconds)
{
    struct sl_err err;
    struct fixture fx[N_RULES];
    sl_conf_t *conf = NULL;
    sl_metrics_t *metrics = sl_metrics_new();
    struct sl_emit *out = sl_emit_new("bench.");
    void *ctx = NULL;
    int rc = 1;
    for (size_t i = 0; i < N_RULES; i++)
        sl_ce_init(&fx[i].ce);
    if (!metrics || !out) {
        sl_err_set(&err, SL_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (fixtures_load(dir, "input", fx, &err) != 0 || !(conf = sl_pipeline_load(pipeline, &err)))
        goto out;
    const struct sl_stage_env env = {conf, metrics, "bench."};
    if (transform_stage.init(&ctx, &env, &err) != 0) {
        ctx = NULL;
        goto out;
    }
    /* Once each, checked: a bench of dead letters or retries would measure the wrong thing. */
    long n = 0;
    for (size_t i = 0; i < N_RULES; i++) {
        struct sl_event ev = {.ce = &fx[i].ce,
                              .data = fx[i].payload,
                              .len = fx[i].len,
                              .key = fx[i].key,
                              .key_len = strlen(fx[i].key),
                              .topic = "bench",
                              .timestamp_ms = -1,
                              .attempt = 1};
        sl_emit_clear(out);
        if (transform_stage.process(ctx, &ev, out) != SL_PASS) {
            sl_err_set(&err, SL_ERR_INVALID, "%s: not mapped: %s", rules[i],
                       sl_emit_get_reason(out));
            goto out;
        }
    }
    double t0 = cpu_s(), t1;
    do {
        for (int b = 0; b < 64; b++, n++) {
            struct fixture *f = &fx[n % (long)N_RULES];
            struct sl_event ev = {.ce = &f->ce,
                                  .data = f->payload,
                                  .len = f->len,
                                  .key = f->key,
                                  .key_len = strlen(f->key),
                                  .topic = "bench",
                                  .timestamp_ms = -1,
                                  .attempt = 1};
            sl_emit_clear(out);
            transform_stage.process(ctx, &ev, out);
        }
    } while ((t1 = cpu_s()) - t0 < seconds);
    printf("%.0f %.1f\n", (double)n / (t1 - t0), (t1 - t0) * 1e6 / (double)n);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "bench-transform process: %s\n", err.msg);
    if (ctx)
        transform_stage.fini(ctx);
    sl_emit_free(out);
    sl_metrics_destroy(metrics);
    sl_conf_destroy(conf);
    fixtures_free(fx);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "produce") == 0)
        return cmd_produce(argv[2], argv[3], atol(argv[4]), argv[5], argv[6]);
    if (argc == 6 && strcmp(argv[1], "drain") == 0)
        return cmd_drain(argv[2], argv[3], atoi(argv[4]), atol(argv[5]));
    if (argc == 5 && strcmp(argv[1], "process") == 0)
        return cmd_process(argv[2], argv[3], atof(argv[4]));
    fprintf(stderr, "usage: bench-transform produce BROKERS TOPIC N FIXTURE_DIR input|expected\n"
                    "       bench-transform drain BROKERS TOPIC PARTITIONS N\n"
                    "       bench-transform process PIPELINE FIXTURE_DIR SECONDS\n");
    return 2;
}
