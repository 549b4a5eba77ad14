#include "overview.h"

#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pause.h"
#include "prom.h"
#include "sl_addr.h"
#include "sl_pg_query.h"

#define SCRAPE_TIMEOUT_MS 1500
#define SCRAPE_MAX        (8u * 1024 * 1024) /* bytes of one /metrics */
#define ADDR_MAX          256
#define PROMQL_MAX        1024
/* The window of Prometheus' rate() and increase(): four scrapes at Prometheus' default 15 s. */
#define PROM_WINDOW "1m"

/* The binaries and their default admin listeners (each binary's --admin-listen default). */
static const struct {
    const char *name, *addr;
} defaults[] = {
    {"ingress", "127.0.0.1:9180"},    {"validate", "127.0.0.1:9181"},
    {"transform", "127.0.0.1:9182"},  {"route", "127.0.0.1:9183"},
    {"deliver", "127.0.0.1:9184"},    {"audit", "127.0.0.1:9185"},
    {"deadletter", "127.0.0.1:9186"}, {"reconcile", "127.0.0.1:9187"},
};

struct stage {
    char name[64], addr[ADDR_MAX];
    /* The previous scrape: when, and the counters the rates come from. */
    bool have_prev;
    double prev_at, prev_in, prev_out;
};

struct adm_overview {
    const sl_conf_t *conf;
    pthread_mutex_t lock; /* the stages' previous samples */
    struct stage stages[ADM_OVERVIEW_STAGES_MAX];
    size_t n;
    char prom_url[ADM_OVERVIEW_URL_MAX]; /* admin.prometheus_url without a trailing '/', or "" */
};

static struct stage *stage_named(adm_overview_t *o, const char *name)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->stages[i].name, name) == 0)
            return &o->stages[i];
    if (o->n == ADM_OVERVIEW_STAGES_MAX)
        return NULL;
    struct stage *s = &o->stages[o->n++];
    snprintf(s->name, sizeof(s->name), "%s", name);
    return s;
}

adm_overview_t *adm_overview_new(const sl_conf_t *conf, struct sl_err *err)
{
    adm_overview_t *o = calloc(1, sizeof(*o));
    if (!o) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    o->conf = conf;
    pthread_mutex_init(&o->lock, NULL);
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        snprintf(stage_named(o, defaults[i].name)->addr, ADDR_MAX, "%s", defaults[i].addr);
    const sl_conf_node_t *map = sl_conf_find(sl_conf_root(conf), "admin.stages");
    for (size_t i = 0; i < sl_conf_count(map); i++) {
        const char *addr, *name = sl_conf_key(map, i);
        struct sockaddr_storage ss;
        socklen_t len;
        struct stage *s = strlen(name) < sizeof(s->name) ? stage_named(o, name) : NULL;
        if (!s) {
            sl_conf_error(conf, sl_conf_item(map, i), err,
                          "at most %d stages of names up to 63 bytes", ADM_OVERVIEW_STAGES_MAX);
            goto fail;
        }
        if (sl_conf_as_str(conf, sl_conf_item(map, i), &addr, err) != 0)
            goto fail;
        if (strlen(addr) >= ADDR_MAX || sl_addr_parse(addr, &ss, &len, err) != 0) {
            sl_conf_error(conf, sl_conf_item(map, i), err, "not a host:port");
            goto fail;
        }
        snprintf(s->addr, ADDR_MAX, "%s", addr);
    }
    /* A stage's name goes into PromQL label values, between quotes. */
    for (size_t i = 0; i < o->n; i++)
        if (strpbrk(o->stages[i].name, "\"\\")) {
            sl_err_set(err, SL_ERR_INVALID, "admin.stages: %s: a quote or backslash in the name",
                       o->stages[i].name);
            goto fail;
        }
    const sl_conf_node_t *url = sl_conf_find(sl_conf_root(conf), "admin.prometheus_url");
    const char *base;
    if (url && sl_conf_as_str(conf, url, &base, err) != 0)
        goto fail;
    if (url && snprintf(o->prom_url, sizeof(o->prom_url), "%s", base) >= (int)sizeof(o->prom_url)) {
        sl_conf_error(conf, url, err, "longer than %d bytes", ADM_OVERVIEW_URL_MAX - 1);
        goto fail;
    }
    for (size_t n = strlen(o->prom_url); n > 0 && o->prom_url[n - 1] == '/'; n--)
        o->prom_url[n - 1] = '\0';
    return o;
fail:
    adm_overview_destroy(o);
    return NULL;
}

void adm_overview_destroy(adm_overview_t *o)
{
    if (!o)
        return;
    pthread_mutex_destroy(&o->lock);
    free(o);
}

/* ---- scraping ---- */

struct body {
    char *p;
    size_t len;
    bool too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *opaque)
{
    struct body *b = opaque;
    size_t len = size * n;
    if (b->too_big || b->len + len >= SCRAPE_MAX) {
        b->too_big = true;
        return 0;
    }
    char *grown = realloc(b->p, b->len + len + 1);
    if (!grown)
        return 0;
    memcpy(grown + b->len, p, len);
    b->p = grown;
    b->len += len;
    b->p[b->len] = '\0';
    return len;
}

/* GET `url`: the status (0 when there was no answer, `why` says why) and the body (the caller
 * frees it). */
static long fetch_url(const char *url, char **text, char *why, size_t size)
{
    struct body b = {0};
    long status = 0;
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(why, size, "out of memory");
        return 0;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)SCRAPE_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        snprintf(why, size, "%s: %s", url, b.too_big ? "answer too large" : curl_easy_strerror(rc));
    curl_easy_cleanup(c);
    *text = b.p;
    return status;
}

/* GET http://<addr><path>, as fetch_url. */
static long fetch(const char *addr, const char *path, char **text, char *why, size_t size)
{
    char url[ADDR_MAX + 32];
    snprintf(url, sizeof(url), "http://%s%s", addr, path);
    return fetch_url(url, text, why, size);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct prefix_sum {
    const char *prefix;
    double sum;
};

static void sum_prefix(void *opaque, const char *v, double value)
{
    struct prefix_sum *ps = opaque;
    if (strncmp(v, ps->prefix, strlen(ps->prefix)) == 0)
        ps->sum += value;
}

/* A counter of a stage: `metric`'s samples whose `label` is `value` (or starts with it when
 * `prefix`); no label: all its samples. */
struct counter {
    const char *metric, *label, *value;
    bool prefix;
};

/* What goes in and out of a stage and its errors, by binary; the last entry (no name) is every
 * other stage's, the shared loop's metrics. Both sources read these. */
static const struct flow {
    const char *name;
    struct counter in, out, errors;
} flows[] = {
    {"ingress",
     {"sluice_ingress_requests_total", NULL, NULL, false},
     {"sluice_ingress_requests_total", "status", "2", true},
     {"sluice_ingress_requests_total", "status", "5", true}},
    {"deliver",
     {"sluice_deliver_attempts_total", NULL, NULL, false},
     {"sluice_deliver_outcomes_total", "outcome", "delivered", false},
     {"sluice_deliver_outcomes_total", "outcome", "dead_lettered", false}},
    {NULL,
     {"sluice_stage_events_total", NULL, NULL, false},
     {"sluice_stage_records_out_total", NULL, NULL, false},
     {"sluice_stage_events_total", "outcome", "dead_lettered", false}},
};

static const struct flow *flow_of(const char *name)
{
    size_t i = 0;
    while (flows[i].name && strcmp(flows[i].name, name) != 0)
        i++;
    return &flows[i];
}

/* `v` under `key` of `e`: a count (rounded) or a number; NAN (unknown) leaves it null. */
static void set_figure(json_t *e, const char *key, double v, bool count)
{
    if (!isnan(v))
        json_object_set_new(e, key, count ? json_integer((json_int_t)llround(v)) : json_real(v));
}

/* ---- source 1: each stage's own /metrics ---- */

static double scraped(const adm_prom_t *m, const struct counter *c)
{
    if (!c->label)
        return adm_prom_sum(m, c->metric, NULL, NULL);
    if (!c->prefix)
        return adm_prom_sum(m, c->metric, (const char *const[]){c->label, c->value, NULL}, NULL);
    struct prefix_sum ps = {c->value, 0};
    adm_prom_each(m, c->metric, NULL, c->label, sum_prefix, &ps);
    return ps.sum;
}

/* The lag of stage `name`: its consumer groups' lag as sluice-reconcile reads it from the broker
 * (sluice_consumer_lag{stage}, sl_lagwatch: it counts on while the stage is down), else the
 * stage's own view of its partitions (sluice_replica_lag). `broker` (reconcile's samples) and
 * `own` may be NULL. */
static double scraped_lag(const char *name, const adm_prom_t *broker, const adm_prom_t *own)
{
    bool found = false;
    double lag = broker ? adm_prom_sum(broker, "sluice_consumer_lag",
                                       (const char *const[]){"stage", name, NULL}, &found)
                        : 0;
    if (!found && own)
        lag = adm_prom_sum(own, "sluice_replica_lag", NULL, &found);
    return found ? lag : NAN;
}

/* One stage's entry: ready from its /readyz; with `scrape`, its rates and errors from its
 * /metrics (*metrics: its samples or NULL, the caller destroys them). The lag and, without
 * `scrape`, the other figures are set by the caller. */
static json_t *scrape_stage(adm_overview_t *o, struct stage *s, bool scrape, adm_prom_t **metrics)
{
    char why[512] = "", *text = NULL;
    adm_prom_t *m = NULL;
    json_t *e =
        json_pack("{s:s, s:s, s:b, s:n, s:n, s:n, s:n, s:n}", "name", s->name, "address", s->addr,
                  "ready", false, "reason", "rate_in", "rate_out", "errors", "lag");
    *metrics = NULL;
    if (!e)
        return NULL;
    long status = fetch(s->addr, "/readyz", &text, why, sizeof(why));
    if (status == 200) {
        json_object_set_new(e, "ready", json_true());
    } else if (status) {
        json_t *r = text ? json_loads(text, 0, NULL) : NULL;
        const char *detail = json_string_value(json_object_get(r, "detail"));
        snprintf(why, sizeof(why), "readyz %ld%s%s", status, detail ? ": " : "",
                 detail ? detail : "");
        json_decref(r);
    }
    free(text);
    text = NULL;
    if (scrape && status && fetch(s->addr, "/metrics", &text, why, sizeof(why)) == 200 && text &&
        (m = adm_prom_parse(text))) {
        const struct flow *f = flow_of(s->name);
        double in = scraped(m, &f->in), out = scraped(m, &f->out), at = now_s();
        set_figure(e, "errors", scraped(m, &f->errors), true);
        pthread_mutex_lock(&o->lock);
        /* A restarted process starts its counters again: no rate across it. */
        if (s->have_prev && at > s->prev_at && in >= s->prev_in && out >= s->prev_out) {
            json_object_set_new(e, "rate_in", json_real((in - s->prev_in) / (at - s->prev_at)));
            json_object_set_new(e, "rate_out", json_real((out - s->prev_out) / (at - s->prev_at)));
        }
        s->have_prev = true;
        s->prev_at = at;
        s->prev_in = in;
        s->prev_out = out;
        pthread_mutex_unlock(&o->lock);
    }
    free(text);
    if (why[0])
        json_object_set_new(e, "reason", json_string(why));
    *metrics = m;
    return e;
}

/* A destination's figures, whichever source filled them; NAN: unknown. */
struct dest_figures {
    json_t *attempts; /* {result: count} */
    double p50, p95, circuit, held;
};

static void add_attempts(void *opaque, const char *result, double value)
{
    json_object_set_new(opaque, result, json_integer((json_int_t)llround(value)));
}

/* Destination `name`'s figures from sluice-deliver's samples `m` (NULL: none). */
static void scraped_dest(const char *name, const adm_prom_t *m, struct dest_figures *d)
{
    const char *const match[] = {"destination", name, NULL};
    bool has_circuit = false, has_held = false;
    if (!m)
        return;
    adm_prom_each(m, "sluice_deliver_attempts_total", match, "result", add_attempts, d->attempts);
    double p50 = adm_prom_quantile(m, "sluice_deliver_attempt_seconds", match, 0.5);
    double p95 = adm_prom_quantile(m, "sluice_deliver_attempt_seconds", match, 0.95);
    d->p50 = p50 >= 0 ? p50 : NAN;
    d->p95 = p95 >= 0 ? p95 : NAN;
    d->circuit = adm_prom_sum(m, "sluice_deliver_circuit_state", match, &has_circuit);
    d->held = adm_prom_sum(m, "sluice_deliver_events_held", match, &has_held);
    if (!has_circuit)
        d->circuit = NAN;
    if (!has_held)
        d->held = NAN;
}

/* ---- source 2: Prometheus' HTTP API (admin.prometheus_url) ---- */

struct promq {
    const char *base;
    char why[512]; /* the first failure: later queries are not sent */
};

/* The instant vector `promql` evaluates to (the caller's), or NULL when Prometheus failed
 * (q->why says why). */
static json_t *promq_vector(struct promq *q, const char *promql)
{
    char url[ADM_OVERVIEW_URL_MAX + 3 * PROMQL_MAX + 32], *text = NULL;
    json_t *doc = NULL, *result = NULL;
    if (q->why[0])
        return NULL;
    char *esc = curl_easy_escape(NULL, promql, 0);
    if (!esc) {
        snprintf(q->why, sizeof(q->why), "out of memory");
        return NULL;
    }
    snprintf(url, sizeof(url), "%s/api/v1/query?query=%s", q->base, esc);
    curl_free(esc);
    long status = fetch_url(url, &text, q->why, sizeof(q->why));
    if (status) {
        doc = text ? json_loads(text, 0, NULL) : NULL;
        result = json_object_get(json_object_get(doc, "data"), "result");
        if (status == 200 && json_is_array(result)) {
            json_incref(result);
        } else {
            const char *detail = json_string_value(json_object_get(doc, "error"));
            snprintf(q->why, sizeof(q->why), "%s: %s: HTTP %ld%s%s", q->base, promql, status,
                     detail ? ": " : "", detail ? detail : "");
            result = NULL;
        }
    }
    free(text);
    json_decref(doc);
    return result;
}

/* A sample's value ([time, "value"]); NaN stays NaN (unknown). */
static double sample_value(const json_t *sample)
{
    const char *v = json_string_value(json_array_get(json_object_get(sample, "value"), 1));
    return v ? strtod(v, NULL) : NAN;
}

/* The one value of `promql` (printf-like), NAN when it has none or Prometheus failed. */
static double promq_value(struct promq *q, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static double promq_value(struct promq *q, const char *fmt, ...)
{
    char promql[PROMQL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(promql, sizeof(promql), fmt, ap);
    va_end(ap);
    json_t *r = promq_vector(q, promql);
    double v = json_array_size(r) ? sample_value(json_array_get(r, 0)) : NAN;
    json_decref(r);
    return v;
}

/* `c`'s series of the binary `component` (the scrape config's label) as a PromQL selector. */
static void selector(char *buf, size_t size, const struct counter *c, const char *component)
{
    if (!c->label)
        snprintf(buf, size, "%s{component=\"%s\"}", c->metric, component);
    else
        snprintf(buf, size, "%s{component=\"%s\",%s%s\"%s%s\"}", c->metric, component, c->label,
                 c->prefix ? "=~" : "=", c->value, c->prefix ? ".*" : "");
}

static void prometheus_stage(struct promq *q, json_t *e, const char *name)
{
    const struct flow *f = flow_of(name);
    char sel[PROMQL_MAX / 2];
    selector(sel, sizeof(sel), &f->in, name);
    set_figure(e, "rate_in", promq_value(q, "sum(rate(%s[" PROM_WINDOW "]))", sel), false);
    selector(sel, sizeof(sel), &f->out, name);
    set_figure(e, "rate_out", promq_value(q, "sum(rate(%s[" PROM_WINDOW "]))", sel), false);
    selector(sel, sizeof(sel), &f->errors, name);
    set_figure(e, "errors", promq_value(q, "sum(increase(%s[" PROM_WINDOW "]))", sel), true);
    set_figure(e, "lag",
               promq_value(q,
                           "sum(sluice_consumer_lag{stage=\"%s\"}) or "
                           "sum(sluice_replica_lag{component=\"%s\"})",
                           name, name),
               true);
}

static void prometheus_dest(struct promq *q, const char *name, struct dest_figures *d)
{
    char promql[PROMQL_MAX];
    size_t i;
    json_t *sample;
    snprintf(promql, sizeof(promql),
             "sum by (result) (increase(sluice_deliver_attempts_total{destination=\"%s\"}"
             "[" PROM_WINDOW "]))",
             name);
    json_t *r = promq_vector(q, promql);
    json_array_foreach(r, i, sample)
    {
        const char *result =
            json_string_value(json_object_get(json_object_get(sample, "metric"), "result"));
        double v = sample_value(sample);
        if (result && !isnan(v))
            add_attempts(d->attempts, result, v);
    }
    json_decref(r);
    d->p50 =
        promq_value(q,
                    "histogram_quantile(0.5, sum by (le) (rate("
                    "sluice_deliver_attempt_seconds_bucket{destination=\"%s\"}[" PROM_WINDOW "])))",
                    name);
    d->p95 =
        promq_value(q,
                    "histogram_quantile(0.95, sum by (le) (rate("
                    "sluice_deliver_attempt_seconds_bucket{destination=\"%s\"}[" PROM_WINDOW "])))",
                    name);
    d->circuit = promq_value(q, "max(sluice_deliver_circuit_state{destination=\"%s\"})", name);
    d->held = promq_value(q, "sum(sluice_deliver_events_held{destination=\"%s\"})", name);
}

/* ---- destinations: one shape, either source ---- */

static json_t *destination(const char *name, struct dest_figures *d, sl_redis_t *redis,
                           const char *key_prefix, bool *redis_down)
{
    static const char *const circuits[] = {"closed", "half_open", "open"};
    json_t *paused = NULL;
    const char *result;
    json_t *count;
    char key[512];
    struct sl_err err;
    double total = 0;
    json_object_foreach(d->attempts, result, count) total += (double)json_integer_value(count);
    double ok = (double)json_integer_value(json_object_get(d->attempts, "2xx"));
    if (!*redis_down && redis && dlv_pause_key(key_prefix, name, key, sizeof(key)) == 0 &&
        dlv_pause_get(redis, key, &paused, &err) != 0)
        *redis_down = true;
    int c = isnan(d->circuit) ? -1 : (int)d->circuit;
    return json_pack("{s:s, s:O, s:o, s:{s:o, s:o}, s:o, s:o, s:o}", "name", name, "attempts",
                     d->attempts, "success_ratio", total > 0 ? json_real(ok / total) : json_null(),
                     "latency_ms", "p50", isnan(d->p50) ? json_null() : json_real(d->p50 * 1000),
                     "p95", isnan(d->p95) ? json_null() : json_real(d->p95 * 1000), "circuit",
                     c >= 0 && c <= 2 ? json_string(circuits[c]) : json_null(), "paused",
                     paused ? paused : json_null(), "held",
                     isnan(d->held) ? json_null() : json_integer((json_int_t)llround(d->held)));
}

/* ---- the database's part ---- */

static const char books_sql[] =
    "SELECT json_build_object("
    " 'dead_letters', (SELECT json_build_object('new', count(*) FILTER (WHERE status = 'new'),"
    "  'total', count(*)) FROM dead_letters),"
    " 'stuck', (SELECT count(*) FROM event_status WHERE state = 'pending'"
    "  AND stuck_at IS NOT NULL),"
    " 'today', (SELECT json_build_object('accepted', coalesce(sum(accepted), 0),"
    "  'delivered', coalesce(sum(delivered), 0), 'dead_lettered', coalesce(sum(dead_lettered), 0),"
    "  'filtered', coalesce(sum(filtered), 0), 'duplicate', coalesce(sum(duplicate), 0),"
    "  'pending', coalesce(sum(pending + stuck), 0), 'unexplained', coalesce(sum(unexplained), 0))"
    "  FROM reconcile_hourly WHERE hour >= date_trunc('day', now() AT TIME ZONE 'UTC')"
    "  AT TIME ZONE 'UTC'))";

int adm_overview_build(adm_overview_t *o, sl_pg_t *pg, sl_redis_t *redis, const char *key_prefix,
                       json_t **doc)
{
    struct sl_err err;
    adm_prom_t *metrics[ADM_OVERVIEW_STAGES_MAX] = {NULL}, *deliver = NULL, *reconcile = NULL;
    json_t *books = NULL, *unavailable = json_object();
    json_t *stages = json_array(), *dests = json_array();
    bool redis_down = false;
    *doc = NULL;
    if (!stages || !dests || !unavailable)
        goto out;
    struct promq q = {.base = o->prom_url};
    bool from_prometheus = o->prom_url[0] != '\0';
    for (size_t i = 0; i < o->n; i++) {
        json_array_append_new(stages,
                              scrape_stage(o, &o->stages[i], !from_prometheus, &metrics[i]));
        if (strcmp(o->stages[i].name, "deliver") == 0)
            deliver = metrics[i];
        else if (strcmp(o->stages[i].name, "reconcile") == 0)
            reconcile = metrics[i];
    }
    for (size_t i = 0; i < o->n; i++) {
        json_t *e = json_array_get(stages, i);
        if (from_prometheus)
            prometheus_stage(&q, e, o->stages[i].name);
        else
            set_figure(e, "lag", scraped_lag(o->stages[i].name, reconcile, metrics[i]), true);
    }
    const sl_conf_node_t *map = sl_conf_get(sl_conf_root(o->conf), "destinations");
    for (size_t i = 0; i < sl_conf_count(map); i++) {
        const char *name = sl_conf_key(map, i);
        struct dest_figures d = {json_object(), NAN, NAN, NAN, NAN};
        if (from_prometheus)
            prometheus_dest(&q, name, &d);
        else
            scraped_dest(name, deliver, &d);
        json_array_append_new(dests, destination(name, &d, redis, key_prefix, &redis_down));
        json_decref(d.attempts);
    }
    if (q.why[0]) {
        char why[sizeof(q.why) + 128];
        snprintf(why, sizeof(why), "%s (the stages' rates, errors, lag; the destinations' figures)",
                 q.why);
        json_object_set_new(unavailable, "prometheus", json_string(why));
    }
    if (redis_down)
        json_object_set_new(unavailable, "redis", json_string("the pause of each destination"));
    if (!pg || sl_pg_query_json(pg, books_sql, 0, NULL, &books, &err) != 0) {
        json_object_set_new(unavailable, "postgres", json_string(pg ? err.msg : "no handle"));
        books = NULL;
    }
    *doc = json_pack("{s:O, s:O, s:O, s:O, s:O, s:O}", "stages", stages, "destinations", dests,
                     "dead_letters", books ? json_object_get(books, "dead_letters") : json_null(),
                     "stuck", books ? json_object_get(books, "stuck") : json_null(), "today",
                     books ? json_object_get(books, "today") : json_null(), "unavailable",
                     unavailable);
out:
    for (size_t i = 0; i < o->n; i++)
        adm_prom_destroy(metrics[i]);
    json_decref(books);
    json_decref(stages);
    json_decref(dests);
    json_decref(unavailable);
    return *doc ? 0 : -1;
}
