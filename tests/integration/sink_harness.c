#include "sink_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sl_kafka.h"
#include "sl_test.h"
#include "sl_testenv.h"

#define METRICS_MAX (256 * 1024)

void sink_setup(struct sink_run *r, const char *name, const char *dsn, const char *extra)
{
    char yaml[8192];
    struct sl_testenv_topics t;
    sl_testenv_stage_topics(&t, name, "ingress", "validated");
    snprintf(r->prefix, sizeof(r->prefix), "%s", t.prefix);
    snprintf(r->topic_ingress, sizeof(r->topic_ingress), "%s", t.in);
    snprintf(r->topic_validated, sizeof(r->topic_validated), "%s", t.out);
    snprintf(r->topic_dlq, sizeof(r->topic_dlq), "%s", t.dlq);
    snprintf(r->topic_audit, sizeof(r->topic_audit), "%s", t.audit);
    if (dsn) {
        snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
    } else {
        char schema[64];
        pg_test_schema(schema, r->dsn);
    }
    r->pg = pg_test_handle(r->dsn, 0);
    pg_test_migrate(r->pg);
    snprintf(yaml, sizeof(yaml), "postgres:\n  dsn: \"%s\"\n%s", r->dsn, extra ? extra : "");
    sl_testenv_config(r->prefix, yaml, r->config, sizeof(r->config));
    sink_new_group(r);
    r->admin_port = sl_testenv_free_port();
    snprintf(r->admin, sizeof(r->admin), "127.0.0.1:%d", r->admin_port);
}

void sink_teardown(struct sink_run *r)
{
    sl_pg_destroy(r->pg);
    r->pg = NULL;
}

pid_t sink_start(struct sink_run *r, const char *binary, const char *log)
{
    const char *args[] = {"--config",       r->config, "--group", r->group,
                          "--admin-listen", r->admin,  NULL};
    return sl_testenv_spawn(binary, args, log);
}

void sink_new_group(struct sink_run *r)
{
    sl_testenv_unique("group", r->group, sizeof(r->group));
}

static sl_producer_t *producer;

void sink_produce_nowait(const char *topic, const void *key, size_t key_len, const void *value,
                         size_t len, const char *const *headers)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    if (!producer) {
        sl_testenv_kafka(&s);
        producer = sl_producer_new(&s, "sink-test-producer", NULL, &err);
        SL_REQUIRE(producer);
    }
    rd_kafka_headers_t *hdrs = NULL;
    if (headers) {
        hdrs = rd_kafka_headers_new(16);
        for (const char *const *h = headers; *h; h += 2)
            rd_kafka_header_add(hdrs, h[0], -1, h[1], -1);
    }
    while (sl_producer_send(producer, topic, key, key_len, value, len, hdrs, NULL, &err) != 0) {
        if (!err.retriable) {
            if (hdrs)
                rd_kafka_headers_destroy(hdrs);
            sl_test_fail(__FILE__, __LINE__, "produce to %s: %s", topic, err.msg);
            sl_test_abort_current();
        }
        sl_producer_poll(producer, 10); /* a full queue drains as the broker acknowledges */
    }
}

void sink_produce_wait(void)
{
    struct sl_err err;
    if (producer)
        SL_REQUIRE(sl_producer_flush(producer, 60000, &err) == 0);
}

void sink_produce(const char *topic, const void *key, size_t key_len, const void *value, size_t len,
                  const char *const *headers)
{
    sink_produce_nowait(topic, key, key_len, value, len, headers);
    sink_produce_wait();
}

void sink_cleanup(void)
{
    sl_producer_destroy(producer);
    producer = NULL;
    pg_test_cleanup();
}

long long sink_wait_int(sl_pg_t *pg, const char *sql, long long want, int timeout_ms)
{
    long long v = pg_test_int(pg, sql);
    for (int waited = 0; v != want && waited < timeout_ms; waited += 100) {
        usleep(100000);
        v = pg_test_int(pg, sql);
    }
    return v;
}

double sink_metric(int admin_port, const char *series)
{
    char *body = malloc(METRICS_MAX);
    double v = -1;
    SL_REQUIRE(body);
    if (sl_testenv_http_get(admin_port, "/metrics", body, METRICS_MAX) == 200) {
        size_t n = strlen(series);
        for (const char *line = body; line && *line; line = strchr(line, '\n')) {
            if (*line == '\n')
                line++;
            if (strncmp(line, series, n) == 0 && line[n] == ' ') {
                v = strtod(line + n + 1, NULL);
                break;
            }
        }
    }
    free(body);
    return v;
}

double sink_wait_metric(int admin_port, const char *series, double want, int timeout_ms)
{
    double v = sink_metric(admin_port, series);
    for (int waited = 0; v < want && waited < timeout_ms; waited += 100) {
        usleep(100000);
        v = sink_metric(admin_port, series);
    }
    return v;
}

long sink_wait_ready(int admin_port, long status, const char *needle, char *body, size_t size,
                     int timeout_ms)
{
    long got = -1;
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        got = sl_testenv_http_get(admin_port, "/readyz", body, size);
        if (got == status && (!needle || strstr(body, needle)))
            break;
        usleep(100000);
    }
    return got;
}

long long sink_end_offsets(const char *topic, int partitions)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    char errstr[512];
    sl_testenv_kafka(&s);
    rd_kafka_conf_t *conf = sl_kafka_conf_new(&s, "sink-test-watermarks", &err);
    SL_REQUIRE(conf);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    SL_REQUIRE(rk);
    long long sum = 0;
    rd_kafka_resp_err_t rc = 0;
    for (int i = 0; rc == 0 && i < partitions; i++) {
        int64_t lo, hi;
        rc = rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &hi, 30000);
        sum += hi;
    }
    rd_kafka_destroy(rk);
    if (rc) {
        sl_test_fail(__FILE__, __LINE__, "watermarks of %s: %s", topic, rd_kafka_err2str(rc));
        sl_test_abort_current();
    }
    return sum;
}

long long sink_committed(const char *group, const char *topic, int partitions)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    char errstr[512];
    sl_testenv_kafka(&s);
    rd_kafka_conf_t *conf = sl_kafka_conf_new(&s, "sink-test-offsets", &err);
    SL_REQUIRE(conf);
    SL_REQUIRE(sl_kafka_conf_set(conf, "group.id", group, &err) == 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    SL_REQUIRE(rk);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(partitions);
    for (int i = 0; i < partitions; i++)
        rd_kafka_topic_partition_list_add(list, topic, i);
    rd_kafka_resp_err_t rc = rd_kafka_committed(rk, list, 30000);
    long long sum = 0;
    for (int i = 0; rc == 0 && i < list->cnt; i++)
        if (list->elems[i].offset > 0)
            sum += list->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(rk);
    if (rc) {
        sl_test_fail(__FILE__, __LINE__, "committed offsets of %s: %s", group,
                     rd_kafka_err2str(rc));
        sl_test_abort_current();
    }
    return sum;
}

size_t sink_read(const char *topic, int partitions, rd_kafka_message_t **msgs, size_t want,
                 rd_kafka_t **consumer)
{
    *consumer = sl_testenv_consumer(topic, partitions);
    size_t n = sl_testenv_consume(*consumer, msgs, want, 60000);
    n += sl_testenv_consume(*consumer, msgs + n, 1, n == want ? 2000 : 0);
    return n;
}

void sink_free_records(rd_kafka_message_t **msgs, size_t n, rd_kafka_t *consumer)
{
    for (size_t i = 0; i < n; i++)
        rd_kafka_message_destroy(msgs[i]);
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
}

const char *sink_header(const rd_kafka_message_t *m, const char *name, char *buf, size_t size)
{
    rd_kafka_headers_t *h;
    const void *v;
    size_t n;
    if (rd_kafka_message_headers(m, &h) || rd_kafka_header_get_last(h, name, &v, &n))
        return NULL;
    snprintf(buf, size, "%.*s", (int)n, (const char *)v);
    return buf;
}

int sink_file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[8192];
    int found = 0;
    while (f && !found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}
