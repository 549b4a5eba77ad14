/*
 * bench-ingress-producer: the Kafka reference (b) of bench/ingress/run.sh. It produces the
 * records sluice-ingress would write for the benchmark's request (the same body as value, the
 * same ten CloudEvents headers, the same key) through the same producer (sl_producer: acks=all,
 * enable.idempotence=true, the pipeline's linger and compression), with no HTTP in front.
 *
 * Two modes. `--window 0` (open loop, as librdkafka's rdkafka_performance): records are
 * produced as fast as the producer's queue takes them; the rate is Kafka's capacity for these
 * records on this machine, and latency includes the time spent queued. `--window N` (closed
 * loop, like wrk): N records are kept in flight and each delivery report lets the next one go,
 * so the rate is what N concurrent clients could get from Kafka alone. Latency is produce() to
 * delivery report. After a warm-up, it measures for `--duration` seconds and prints one line:
 *
 *   RESULT rate=<records/s> p50_us=<> p99_us=<> p999_us=<> errors=<failed reports> total=<records>
 *
 * `total` counts every record delivered, warm-up included, so that a caller can divide the
 * process's CPU time by it.
 *
 *   bench-ingress-producer --brokers HOST:PORT --topic T --body FILE [--window 128]
 *                          [--duration 10] [--warmup 2] [--partitions 6] [--linger-ms 5]
 *
 * The topic is created when missing (partitions from --partitions); --create-only stops there
 * (the run script uses it to make sluice-ingress's topic).
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_cloudevent.h"
#include "sl_id.h"
#include "sl_kafka.h"
#include "sl_log.h"

#define BODY_MAX    (1024 * 1024)
#define SAMPLES_MAX (20 * 1000 * 1000) /* latency samples kept (4 bytes each) */
#define KEY         "cus_42"

struct run {
    long window, in_flight;
    int64_t measure_from_ns, measure_until_ns;
    uint32_t *samples; /* microseconds */
    size_t n_samples;
    long errors, delivered, total;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct run run;

/* The produce time travels as the record's opaque. */
static void on_report(void *opaque, int32_t partition, int64_t offset, const struct sl_err *err)
{
    int64_t sent = (int64_t)(intptr_t)opaque, now = now_ns();
    (void)partition, (void)offset;
    run.in_flight--;
    run.total += !err;
    if (sent < run.measure_from_ns || sent >= run.measure_until_ns)
        return;
    if (err) {
        run.errors++;
        return;
    }
    run.delivered++;
    if (run.n_samples < SAMPLES_MAX)
        run.samples[run.n_samples++] = (uint32_t)((now - sent) / 1000);
}

static int by_value(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t percentile(double p)
{
    if (!run.n_samples)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(run.n_samples - 1) + 0.5);
    return run.samples[i];
}

/* The attributes sluice-ingress gives a plain Stripe webhook, with fresh ids. */
static rd_kafka_headers_t *headers(struct sl_err *err)
{
    char id[SL_UUID_STR_LEN + 1];
    struct sl_ce ce;
    sl_uuid_v7(id);
    sl_ce_init(&ce);
    rd_kafka_headers_t *h = rd_kafka_headers_new(10);
    if (sl_ce_set(&ce, "specversion", "1.0", err) || sl_ce_set(&ce, "id", id, err) ||
        sl_ce_set(&ce, "source", "stripe", err) ||
        sl_ce_set(&ce, "type", "charge.succeeded", err) ||
        sl_ce_set(&ce, "time", "2026-11-24T17:30:00.123Z", err) ||
        sl_ce_set(&ce, "datacontenttype", "application/json", err) ||
        sl_ce_set(&ce, SL_CE_IDEMPOTENCY_KEY, "evt_3OqZ2bLkdIwHu7ix0J5Kf1Qx", err) ||
        sl_ce_set(&ce, SL_CE_TRACEPARENT, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                  err) ||
        sl_ce_set(&ce, SL_CE_PARTITION_KEY, KEY, err) ||
        sl_ce_set(&ce, SL_CE_SOURCE_NAME, "stripe", err) || sl_ce_to_headers(&ce, h, err)) {
        rd_kafka_headers_destroy(h);
        h = NULL;
    }
    sl_ce_free(&ce);
    return h;
}

static const char usage[] =
    "usage: bench-ingress-producer --brokers HOST:PORT --topic T --body "
    "FILE [--window N|0] [--duration S]\n"
    "       [--warmup S] [--partitions N] [--linger-ms MS] [--create-only]\n";

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"brokers", required_argument, NULL, 'b'},    {"topic", required_argument, NULL, 't'},
        {"body", required_argument, NULL, 'f'},       {"window", required_argument, NULL, 'w'},
        {"duration", required_argument, NULL, 'd'},   {"warmup", required_argument, NULL, 'u'},
        {"partitions", required_argument, NULL, 'p'}, {"linger-ms", required_argument, NULL, 'l'},
        {"create-only", no_argument, NULL, 'c'},      {NULL, 0, NULL, 0},
    };
    const char *brokers = NULL, *topic = NULL, *body_file = NULL;
    long duration = 10, warmup = 2, partitions = 6, linger = 5;
    bool create_only = false;
    int opt;
    run.window = 128;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'b':
            brokers = optarg;
            break;
        case 't':
            topic = optarg;
            break;
        case 'f':
            body_file = optarg;
            break;
        case 'w':
            run.window = atol(optarg);
            break;
        case 'd':
            duration = atol(optarg);
            break;
        case 'u':
            warmup = atol(optarg);
            break;
        case 'p':
            partitions = atol(optarg);
            break;
        case 'l':
            linger = atol(optarg);
            break;
        case 'c':
            create_only = true;
            break;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!brokers || !topic || !body_file || run.window < 0 || duration < 1 || partitions < 1) {
        fputs(usage, stderr);
        return 2;
    }
    sl_log_init("bench-producer", SL_LOG_WARN);

    static char body[BODY_MAX];
    FILE *f = fopen(body_file, "rb");
    size_t body_len = f ? fread(body, 1, sizeof(body), f) : 0;
    if (f)
        fclose(f);
    if (!body_len) {
        fprintf(stderr, "bench-ingress-producer: cannot read %s\n", body_file);
        return 1;
    }
    run.samples = malloc(SAMPLES_MAX * sizeof(*run.samples));
    if (!run.samples)
        return 1;

    struct sl_kafka_settings s;
    struct sl_err err;
    sl_kafka_settings_default(&s);
    s.brokers = brokers;
    s.linger_ms = (int)linger;
    struct sl_topic_spec spec = {topic, (int)partitions, 1};
    if (sl_kafka_create_topics(&s, &spec, 1, 30000, NULL, &err) != 0) {
        fprintf(stderr, "bench-ingress-producer: %s\n", err.msg);
        return 1;
    }
    if (create_only)
        return 0;
    sl_producer_t *p = sl_producer_new(&s, "bench-ingress-producer", on_report, &err);
    if (!p) {
        fprintf(stderr, "bench-ingress-producer: %s\n", err.msg);
        return 1;
    }
    int64_t start = now_ns();
    run.measure_from_ns = start + warmup * 1000000000LL;
    run.measure_until_ns = run.measure_from_ns + duration * 1000000000LL;
    while (now_ns() < run.measure_until_ns) {
        while (run.window == 0 || run.in_flight < run.window) {
            rd_kafka_headers_t *h = headers(&err);
            int64_t sent = now_ns();
            if (!h || sl_producer_send(p, topic, KEY, strlen(KEY), body, body_len, h,
                                       (void *)(intptr_t)sent, &err) != 0) {
                if (h)
                    rd_kafka_headers_destroy(h);
                if (!h || !err.retriable) /* a full queue is the open loop's back-pressure */
                    fprintf(stderr, "bench-ingress-producer: %s\n", err.msg);
                break;
            }
            run.in_flight++;
        }
        sl_producer_poll(p, 1);
    }
    sl_producer_flush(p, 30000, &err);
    sl_producer_destroy(p);

    qsort(run.samples, run.n_samples, sizeof(*run.samples), by_value);
    printf("RESULT rate=%.0f p50_us=%u p99_us=%u p999_us=%u errors=%ld total=%ld\n",
           (double)run.delivered / (double)duration, percentile(50), percentile(99),
           percentile(99.9), run.errors, run.total);
    free(run.samples);
    return run.errors ? 1 : 0;
}
