#include "overview.h"

#include <curl/curl.h>
#include <pthread.h>
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

/* GET http://<addr><path>: the status (0 when there was no answer, `why` says why) and the body
 * (the caller frees it). */
static long fetch(const char *addr, const char *path, char **text, char *why, size_t size)
{
    char url[ADDR_MAX + 32];
    struct body b = {0};
    long status = 0;
    snprintf(url, sizeof(url), "http://%s%s", addr, path);
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

/* What goes in and out of `name` and its errors, from its own metrics. */
static void counters(const char *name, const adm_prom_t *m, double *in, double *out, double *errors)
{
    if (strcmp(name, "ingress") == 0) {
        struct prefix_sum ok = {"2"}, bad = {"5"};
        *in = adm_prom_sum(m, "sluice_ingress_requests_total", NULL, NULL);
        adm_prom_each(m, "sluice_ingress_requests_total", NULL, "status", sum_prefix, &ok);
        adm_prom_each(m, "sluice_ingress_requests_total", NULL, "status", sum_prefix, &bad);
        *out = ok.sum;
        *errors = bad.sum;
    } else if (strcmp(name, "deliver") == 0) {
        *in = adm_prom_sum(m, "sluice_deliver_attempts_total", NULL, NULL);
        *out = adm_prom_sum(m, "sluice_deliver_outcomes_total",
                            (const char *const[]){"outcome", "delivered", NULL}, NULL);
        *errors = adm_prom_sum(m, "sluice_deliver_outcomes_total",
                               (const char *const[]){"outcome", "dead_lettered", NULL}, NULL);
    } else {
        *in = adm_prom_sum(m, "sluice_stage_events_total", NULL, NULL);
        *out = adm_prom_sum(m, "sluice_stage_records_out_total", NULL, NULL);
        *errors = adm_prom_sum(m, "sluice_stage_events_total",
                               (const char *const[]){"outcome", "dead_lettered", NULL}, NULL);
    }
}

/* The lag of stage `name`: its consumer groups' lag as sluice-reconcile reads it from the broker
 * (sluice_consumer_lag{stage}, sl_lagwatch: it counts on while the stage is down), else the
 * stage's own view of its partitions (sluice_replica_lag). `broker` (reconcile's samples) and
 * `own` may be NULL. */
static json_t *stage_lag(const char *name, const adm_prom_t *broker, const adm_prom_t *own)
{
    bool found = false;
    double lag = broker ? adm_prom_sum(broker, "sluice_consumer_lag",
                                       (const char *const[]){"stage", name, NULL}, &found)
                        : 0;
    if (!found && own)
        lag = adm_prom_sum(own, "sluice_replica_lag", NULL, &found);
    return found ? json_integer((json_int_t)lag) : json_null();
}

/* One stage's entry (its lag is set once every stage was scraped); *metrics: its samples, or
 * NULL (the caller destroys them). */
static json_t *scrape_stage(adm_overview_t *o, struct stage *s, adm_prom_t **metrics)
{
    char why[512] = "", *text = NULL;
    json_t *e =
        json_pack("{s:s, s:s, s:b, s:n, s:n, s:n, s:n, s:n}", "name", s->name, "address", s->addr,
                  "ready", false, "reason", "rate_in", "rate_out", "errors", "lag");
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
    adm_prom_t *m = NULL;
    if (status && fetch(s->addr, "/metrics", &text, why, sizeof(why)) == 200 && text &&
        (m = adm_prom_parse(text))) {
        double in, out, errors, at = now_s();
        counters(s->name, m, &in, &out, &errors);
        json_object_set_new(e, "errors", json_integer((json_int_t)errors));
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

/* ---- destinations ---- */

static void add_attempts(void *opaque, const char *result, double value)
{
    json_object_set_new(opaque, result, json_integer((json_int_t)value));
}

static json_t *destination(const char *name, const adm_prom_t *m, sl_redis_t *redis,
                           const char *key_prefix, bool *redis_down)
{
    const char *const match[] = {"destination", name, NULL};
    static const char *const circuits[] = {"closed", "half_open", "open"};
    json_t *attempts = json_object(), *paused = NULL;
    char key[512];
    struct sl_err err;
    if (m)
        adm_prom_each(m, "sluice_deliver_attempts_total", match, "result", add_attempts, attempts);
    double total = m ? adm_prom_sum(m, "sluice_deliver_attempts_total", match, NULL) : 0;
    double ok = (double)json_integer_value(json_object_get(attempts, "2xx"));
    double p50 = m ? adm_prom_quantile(m, "sluice_deliver_attempt_seconds", match, 0.5) : -1;
    double p95 = m ? adm_prom_quantile(m, "sluice_deliver_attempt_seconds", match, 0.95) : -1;
    bool has_circuit = false, has_held = false;
    double circuit = m ? adm_prom_sum(m, "sluice_deliver_circuit_state", match, &has_circuit) : 0;
    double held = m ? adm_prom_sum(m, "sluice_deliver_events_held", match, &has_held) : 0;
    if (!*redis_down && redis && dlv_pause_key(key_prefix, name, key, sizeof(key)) == 0 &&
        dlv_pause_get(redis, key, &paused, &err) != 0)
        *redis_down = true;
    int c = (int)circuit;
    return json_pack("{s:s, s:o, s:o, s:{s:o, s:o}, s:o, s:o, s:o}", "name", name, "attempts",
                     attempts, "success_ratio", total > 0 ? json_real(ok / total) : json_null(),
                     "latency_ms", "p50", p50 >= 0 ? json_real(p50 * 1000) : json_null(), "p95",
                     p95 >= 0 ? json_real(p95 * 1000) : json_null(), "circuit",
                     has_circuit && c >= 0 && c <= 2 ? json_string(circuits[c]) : json_null(),
                     "paused", paused ? paused : json_null(), "held",
                     has_held ? json_integer((json_int_t)held) : json_null());
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
    for (size_t i = 0; i < o->n; i++) {
        json_array_append_new(stages, scrape_stage(o, &o->stages[i], &metrics[i]));
        if (strcmp(o->stages[i].name, "deliver") == 0)
            deliver = metrics[i];
        else if (strcmp(o->stages[i].name, "reconcile") == 0)
            reconcile = metrics[i];
    }
    for (size_t i = 0; i < o->n; i++)
        json_object_set_new(json_array_get(stages, i), "lag",
                            stage_lag(o->stages[i].name, reconcile, metrics[i]));
    const sl_conf_node_t *map = sl_conf_get(sl_conf_root(o->conf), "destinations");
    for (size_t i = 0; i < sl_conf_count(map); i++)
        json_array_append_new(
            dests, destination(sl_conf_key(map, i), deliver, redis, key_prefix, &redis_down));
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
