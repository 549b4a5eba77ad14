/*
 * bench-audit: the producing part of bench/audit/run.sh.
 *
 *   bench-audit produce BROKERS TOPIC N    N audit records, as the pipeline writes them
 *
 * The records are those of N/5 events (N rounded down to a multiple of 5), each through the
 * whole pipeline: validate passed, transform passed, route passed to two destinations (crm,
 * warehouse), deliver delivered to each. Every record is the loop's JSON (common/sl_loop.c
 * produce_audit; deliver's attempts with destination, attempt and status in detail), keyed by
 * its event id (a UUIDv7, as sluice-ingress makes them), with the CloudEvents headers of a
 * sluice.audit event. The times start now and advance 1 ms per event. Prints the count and the
 * average record size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_cloudevent.h"
#include "sl_id.h"
#include "sl_kafka.h"

#define RECORD_MAX 1024
#define PER_EVENT  5

/* Record `k` (0..4) of event `e`, at `at`, into buf; its stage into *stage. */
static int record(char *buf, size_t size, long e, int k, const char *id, const char *at,
                  const char **stage)
{
    static const char *const stages[PER_EVENT] = {"validate", "transform", "route", "deliver",
                                                  "deliver"};
    static const char *const topics[PER_EVENT] = {"sluice.ingress", "sluice.validated",
                                                  "sluice.normalized", "sluice.deliver.crm",
                                                  "sluice.deliver.warehouse"};
    static const char *const details[PER_EVENT] = {
        ",\"outputs\":1,\"detail\":{\"schema\":\"sources/stripe/charge.succeeded.json\","
        "\"dedup\":\"first\"}",
        ",\"outputs\":1,\"detail\":{\"transform\":\"stripe-charge-to-payment\","
        "\"schema\":\"canonical/payment.succeeded.json\"}",
        ",\"outputs\":2,\"detail\":{\"destinations\":[\"crm\",\"warehouse\"],"
        "\"routes\":[\"payments\"]}",
        ",\"detail\":{\"destination\":\"crm\",\"attempt\":1,\"status\":200}",
        ",\"detail\":{\"destination\":\"warehouse\",\"attempt\":1,\"status\":204}",
    };
    *stage = stages[k];
    int n =
        snprintf(buf, size,
                 "{\"event_id\":\"%s\",\"stage\":\"%s\",\"outcome\":\"%s\",\"source\":\"stripe\","
                 "\"type\":\"%s\",\"topic\":\"%s\",\"partition\":%ld,\"offset\":%ld,"
                 "\"at\":\"%s\",\"seconds\":%.6f%s}",
                 id, stages[k], k < 3 ? "passed" : "delivered",
                 k == 0 ? "charge.succeeded" : "payment.succeeded", topics[k], e % 6, e / 6, at,
                 k < 3 ? 0.000150 + 0.00001 * k : 0.0421, details[k]);
    return n > 0 && (size_t)n < size ? n : -1;
}

static void iso_time(long long ms, char *buf, size_t size)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03dZ", (int)(ms % 1000));
}

static int cmd_produce(const char *brokers, const char *topic, long n)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    struct sl_ce ce;
    rd_kafka_headers_t *hdrs = NULL;
    size_t bytes = 0;
    long count = 0;
    int rc = 1;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long t0 = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    sl_kafka_settings_default(&s);
    s.brokers = brokers;
    sl_ce_init(&ce);
    sl_producer_t *p = sl_producer_new(&s, "bench-audit-producer", NULL, &err);
    if (!p)
        goto out;
    for (long e = 0; e < n / PER_EVENT; e++) {
        char event_id[SL_UUID_STR_LEN + 1], at[40];
        sl_uuid_v7(event_id);
        iso_time(t0 + e, at, sizeof(at));
        for (int k = 0; k < PER_EVENT; k++) {
            char buf[RECORD_MAX], id[SL_UUID_STR_LEN + 1], source[32];
            const char *stage;
            int len = record(buf, sizeof(buf), e, k, event_id, at, &stage);
            if (len < 0) {
                sl_err_set(&err, SL_ERR_INVALID, "record too long");
                goto out;
            }
            sl_ce_free(&ce);
            sl_ce_init(&ce);
            sl_uuid_v7(id);
            snprintf(source, sizeof(source), "sluice/%s", stage);
            hdrs = rd_kafka_headers_new(8);
            if (sl_ce_set(&ce, "specversion", "1.0", &err) != 0 ||
                sl_ce_set(&ce, "id", id, &err) != 0 ||
                sl_ce_set(&ce, "source", source, &err) != 0 ||
                sl_ce_set(&ce, "type", "sluice.audit", &err) != 0 ||
                sl_ce_set(&ce, "time", at, &err) != 0 ||
                sl_ce_set(&ce, "datacontenttype", "application/json", &err) != 0 ||
                sl_ce_to_headers(&ce, hdrs, &err) != 0)
                goto out;
            /* A full local queue drains as the broker acknowledges. */
            while (sl_producer_send(p, topic, event_id, strlen(event_id), buf, (size_t)len, hdrs,
                                    NULL, &err) != 0) {
                if (!err.retriable)
                    goto out;
                sl_producer_poll(p, 10);
            }
            hdrs = NULL; /* taken by the producer */
            sl_producer_poll(p, 0);
            bytes += (size_t)len;
            count++;
        }
    }
    if (sl_producer_flush(p, 300000, &err) != 0)
        goto out;
    printf("%ld audit records, %.0f bytes each on average\n", count,
           count ? (double)bytes / (double)count : 0.0);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "bench-audit produce: %s\n", err.msg);
    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
    sl_ce_free(&ce);
    sl_producer_destroy(p);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "produce") == 0)
        return cmd_produce(argv[2], argv[3], atol(argv[4]));
    fprintf(stderr, "usage: bench-audit produce BROKERS TOPIC N\n");
    return 2;
}
