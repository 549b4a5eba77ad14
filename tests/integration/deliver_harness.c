#include "deliver_harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sl_cloudevent.h"
#include "sl_kafka.h"
#include "sl_redis.h"
#include "sl_test.h"
#include "sl_testenv.h"

#define POLL_MS         100
#define METRICS_MAX     (1024 * 1024)
#define SIDE_PARTITIONS 1 /* outcomes, dlq, audit */

struct dh {
    char prefix[128];
    char dest[32];
    char deliver_topic[256];
    char config[4096];
    int partitions;
    destsim_t *sim;
    pid_t pid[DH_PROCESSES_MAX];
    int admin[DH_PROCESSES_MAX];
    sl_producer_t *producer;
    struct sl_kafka_settings kafka;
    int acked, failed;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_report(void *opaque, int32_t partition, int64_t offset, const struct sl_err *err)
{
    dh_t *h = opaque;
    if (err)
        h->failed++;
    else
        h->acked++;
}

dh_t *dh_new(const struct dh_opts *o)
{
    struct sl_err err;
    dh_t *h = calloc(1, sizeof(*h));
    SL_REQUIRE(h);
    char id[64];
    sl_testenv_unique("dlv", id, sizeof(id));
    snprintf(h->prefix, sizeof(h->prefix), "%s.", id);
    snprintf(h->dest, sizeof(h->dest), "sink-%s", id + strlen(id) - 12); /* uuid's random end */
    snprintf(h->deliver_topic, sizeof(h->deliver_topic), "%sdeliver.%s", h->prefix, h->dest);
    h->partitions = o->partitions > 0 ? o->partitions : 3;
    h->sim = destsim_start(NULL, o->destsim_args, &err);
    if (!h->sim) {
        sl_test_fail(__FILE__, __LINE__, "destsim: %s", err.msg);
        sl_test_abort_current();
    }
    char *extra = NULL, redis[512] = "";
    if (o->redis_url || o->redis_key_prefix)
        snprintf(redis, sizeof(redis), "redis: { url: \"%s\"%s%s%s }\n",
                 o->redis_url ? o->redis_url : "${SLUICE_REDIS_URL:-" SL_REDIS_DEFAULT_URL "}",
                 o->redis_key_prefix ? ", key_prefix: \"" : "",
                 o->redis_key_prefix ? o->redis_key_prefix : "", o->redis_key_prefix ? "\"" : "");
    SL_REQUIRE(asprintf(&extra, "%sdestinations:\n  %s:\n    url: \"%s%s\"\n%s", redis, h->dest,
                        o->url ? o->url : destsim_url(h->sim),
                        o->url        ? ""
                        : o->url_path ? o->url_path
                                      : "/hook",
                        o->dest_yaml ? o->dest_yaml : "") > 0);
    sl_testenv_config(h->prefix, extra, h->config, sizeof(h->config));
    free(extra);

    char topic[256];
    sl_testenv_create_topic(h->deliver_topic, h->partitions);
    const char *const side[] = {"outcomes", "dlq", "audit"};
    for (size_t i = 0; i < 3; i++) {
        dh_topic(h, side[i], topic, sizeof(topic));
        sl_testenv_create_topic(topic, SIDE_PARTITIONS);
    }
    sl_testenv_kafka(&h->kafka);
    h->producer = sl_producer_new(&h->kafka, "deliver-test-producer", on_report, &err);
    SL_REQUIRE(h->producer);
    return h;
}

void dh_destroy(dh_t *h)
{
    if (!h)
        return;
    for (int i = 0; i < DH_PROCESSES_MAX; i++)
        if (h->pid[i] > 0)
            sl_testenv_stop(h->pid[i], SIGTERM, DH_STOP_MS);
    destsim_stop(h->sim);
    sl_producer_destroy(h->producer);
    unlink(h->config);
    free(h);
}

destsim_t *dh_sim(dh_t *h)
{
    return h->sim;
}

const char *dh_config(const dh_t *h)
{
    return h->config;
}

const char *dh_dest(const dh_t *h)
{
    return h->dest;
}

void dh_topic(const dh_t *h, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s", h->prefix, name);
}

void dh_start(dh_t *h, int i, const char *instance)
{
    char listen[64], log[256], body[256];
    SL_REQUIRE(i >= 0 && i < DH_PROCESSES_MAX);
    h->admin[i] = sl_testenv_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", h->admin[i]);
    snprintf(log, sizeof(log), "deliver-%s%d", h->prefix, i);
    const char *args[] = {
        "--config", h->config, "--admin-listen", listen, instance ? "--instance" : NULL,
        instance,   NULL};
    h->pid[i] = sl_testenv_spawn("sluice-deliver", args, log);
    long long deadline = now_ms() + DH_WAIT_MS;
    while (sl_testenv_http_get(h->admin[i], "/readyz", body, sizeof(body)) != 200) {
        if (now_ms() > deadline || kill(h->pid[i], 0) != 0) {
            sl_test_fail(__FILE__, __LINE__, "sluice-deliver #%d did not become ready (log %s)", i,
                         log);
            sl_test_abort_current();
        }
        usleep(POLL_MS * 1000);
    }
}

int dh_stop(dh_t *h, int i, int sig)
{
    if (h->pid[i] <= 0)
        return -1;
    int rc = sl_testenv_stop(h->pid[i], sig, DH_STOP_MS);
    h->pid[i] = 0;
    return rc;
}

long dh_readyz(const dh_t *h, int i, char *body, size_t size)
{
    return sl_testenv_http_get(h->admin[i], "/readyz", body, size);
}

int dh_admin_port(const dh_t *h, int i)
{
    return h->admin[i];
}

double dh_metric(const dh_t *h, int i, const char *series)
{
    char *text = malloc(METRICS_MAX);
    SL_REQUIRE(text);
    double v = -1;
    if (sl_testenv_http_get(h->admin[i], "/metrics", text, METRICS_MAX) == 200) {
        size_t n = strlen(series);
        for (char *line = text; line && *line;
             line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
            if (strncmp(line, series, n) == 0 && line[n] == ' ') {
                v = strtod(line + n + 1, NULL);
                break;
            }
        }
    }
    free(text);
    return v;
}

void dh_produce(dh_t *h, const char *id, const char *key, const char *data,
                const char *const *attrs)
{
    struct sl_err err;
    struct sl_ce ce;
    const char *topic = h->deliver_topic;
    sl_ce_init(&ce);
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8);
    SL_REQUIRE(sl_ce_set(&ce, "specversion", "1.0", &err) == 0 &&
               sl_ce_set(&ce, "id", id, &err) == 0 && sl_ce_set(&ce, "source", "test", &err) == 0 &&
               sl_ce_set(&ce, "type", "test.event", &err) == 0);
    for (const char *const *a = attrs; a && a[0]; a += 2)
        SL_REQUIRE(sl_ce_set(&ce, a[0], a[1], &err) == 0);
    SL_REQUIRE(sl_ce_to_headers(&ce, hdrs, &err) == 0);
    sl_ce_free(&ce);
    for (;;) {
        if (sl_producer_send(h->producer, topic, key, key ? strlen(key) : 0, data, strlen(data),
                             hdrs, h, &err) == 0)
            return;
        SL_REQUIRE(err.retriable);
        sl_producer_poll(h->producer, 100);
    }
}

void dh_flush(dh_t *h)
{
    struct sl_err err;
    if (sl_producer_flush(h->producer, DH_WAIT_MS, &err) != 0) {
        sl_test_fail(__FILE__, __LINE__, "producing events: %s", err.msg);
        sl_test_abort_current();
    }
    SL_CHECK_INT(h->failed, 0);
}

json_t *dh_wait_sim(dh_t *h, bool (*pred)(const json_t *, void *), void *arg, const char *what)
{
    struct sl_err err;
    long long deadline = now_ms() + DH_WAIT_MS;
    for (;;) {
        json_t *c = destsim_counters(h->sim, &err);
        if (c && pred(c, arg))
            return c;
        if (now_ms() > deadline) {
            char *text = c ? json_dumps(c, JSON_COMPACT) : NULL;
            sl_test_fail(__FILE__, __LINE__, "waiting for %s: gave up; destsim: %.2000s", what,
                         text ? text : err.msg);
            free(text);
            json_decref(c);
            sl_test_abort_current();
        }
        json_decref(c);
        usleep(POLL_MS * 1000);
    }
}

long dh_count_2xx(const json_t *counters)
{
    const char *code;
    json_t *n;
    long sum = 0;
    json_object_foreach((json_t *)json_object_get(counters, "by_status"), code, n)
    {
        if (code[0] == '2')
            sum += (long)json_integer_value(n);
    }
    return sum;
}

static bool has_2xx(const json_t *c, void *arg)
{
    return dh_count_2xx(c) >= *(long *)arg;
}

void dh_wait_2xx(dh_t *h, long n)
{
    char what[64];
    snprintf(what, sizeof(what), "%ld answers 2xx", n);
    json_decref(dh_wait_sim(h, has_2xx, &n, what));
}

size_t dh_read(dh_t *h, const char *name, struct dh_rec *out, size_t n, int timeout_ms)
{
    char topic[256];
    dh_topic(h, name, topic, sizeof(topic));
    int parts = strcmp(name, "deliver") == 0 ? h->partitions : SIDE_PARTITIONS;
    if (strcmp(name, "deliver") == 0)
        snprintf(topic, sizeof(topic), "%s", h->deliver_topic);
    rd_kafka_t *c = sl_testenv_consumer(topic, parts);
    rd_kafka_message_t **msgs = calloc(n ? n : 1, sizeof(*msgs));
    SL_REQUIRE(msgs);
    size_t got = sl_testenv_consume(c, msgs, n, timeout_ms);
    for (size_t i = 0; i < got; i++) {
        rd_kafka_message_t *m = msgs[i];
        rd_kafka_headers_t *hdrs = NULL;
        struct dh_rec *r = &out[i];
        r->value = strndup(m->payload ? m->payload : "", m->len);
        r->len = m->len;
        r->key = m->key ? strndup(m->key, m->key_len) : NULL;
        r->hdrs = rd_kafka_message_headers(m, &hdrs) == 0 ? rd_kafka_headers_copy(hdrs)
                                                          : rd_kafka_headers_new(1);
        r->partition = m->partition;
        r->offset = m->offset;
        SL_REQUIRE(r->value);
        rd_kafka_message_destroy(m); /* before the consumer goes: it waits for its messages */
    }
    free(msgs);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return got;
}

void dh_recs_free(struct dh_rec *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(recs[i].key);
        free(recs[i].value);
        rd_kafka_headers_destroy(recs[i].hdrs);
    }
}

bool dh_header(const struct dh_rec *r, const char *name, char *buf, size_t size)
{
    const void *v;
    size_t len;
    if (rd_kafka_header_get_last(r->hdrs, name, &v, &len) != 0 || len >= size)
        return false;
    memcpy(buf, v, len);
    buf[len] = '\0';
    return true;
}

json_t *dh_json(const struct dh_rec *r)
{
    return json_loadb(r->value, r->len, 0, NULL);
}
