/*
 * bench-expr: jq evaluations per second through sl_expr, for the rules of a pipeline file, on
 * one event. The measuring part of bench/expr/run.sh.
 *
 *   bench-expr PIPELINE EVENT_JSON [SECONDS_PER_ROW] [THREADS]
 *
 * The event is the payload of a `<source>` webhook wrapped as sluice sees it (CloudEvents JSON,
 * source "stripe", type from the payload's "type"). Rates are per second of the measuring
 * thread's CPU time, so that other load on the machine (printed first) does not skew them; the
 * threads rows give both, summed over the threads. Rows, each run for SECONDS_PER_ROW (1):
 *   references   building the event JSON; `true` (the input walk plus a trivial jq run, the
 *                floor of any evaluation); a json_dumps + jv_parse round trip alone (the
 *                alternative to the walk)
 *   rules        every transforms[].when and transforms[].jq over the event (a mapping whose
 *                `when` is false on it is not run: the stage would not), every routes[].when
 *                over the event the first matching transform produced
 *   per event    what the two stages evaluate for one event: transform `when`s in order until
 *                one holds, its mapping, then every route `when`; once on one thread and on
 *                THREADS threads (default: the online CPUs) sharing the same expressions
 */
#include <jq.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sl_cloudevent.h"
#include "sl_conf.h"
#include "sl_expr.h"

#define MAX_RULES   64
#define MAX_THREADS 64
#define BATCH       64

enum rule_kind { TRANSFORM_WHEN, TRANSFORM_JQ, ROUTE_WHEN };

struct rule {
    char label[160];
    enum rule_kind kind;
    sl_expr_t *e;
};

struct bench {
    struct rule rules[MAX_RULES];
    size_t n;
    json_t *event;      /* the webhook as sluice's expressions see it */
    json_t *normalized; /* the event after the first matching transform */
    double seconds;
};

static double now(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Calls fn(opaque) in batches for `seconds` of `clock`; returns calls per second of it, or -1
 * if one failed. */
static double rate_on(clockid_t clock, int (*fn)(void *), void *opaque, double seconds)
{
    long calls = 0;
    double t0 = now(clock), t = t0;
    while (t - t0 < seconds) {
        for (int i = 0; i < BATCH; i++)
            if (fn(opaque) != 0)
                return -1;
        calls += BATCH;
        t = now(clock);
    }
    return (double)calls / (t - t0);
}

static double rate(int (*fn)(void *), void *opaque, double seconds)
{
    return rate_on(CLOCK_THREAD_CPUTIME_ID, fn, opaque, seconds);
}

static void row(const char *label, const char *result, double per_second)
{
    if (per_second == 0)
        printf("  %-58s %-7s %12s\n", label, result, "not run");
    else if (per_second < 0)
        printf("  %-58s %-7s %12s\n", label, result, "FAILED");
    else
        printf("  %-58s %-7s %12.0f %10.2f\n", label, result, per_second, 1e6 / per_second);
}

/* ---- the workloads ---- */

struct one {
    sl_expr_t *e;
    const json_t *input;
    bool value; /* a mapping (sl_expr_value) rather than a predicate */
};

static int run_one(void *opaque)
{
    struct one *o = opaque;
    struct sl_err err;
    if (o->value) {
        json_t *out = sl_expr_value(o->e, o->input, &err);
        json_decref(out);
        return out ? 0 : -1;
    }
    bool b;
    return sl_expr_bool(o->e, o->input, &b, &err);
}

struct round_trip {
    const json_t *input;
};

static int run_round_trip(void *opaque)
{
    struct round_trip *r = opaque;
    size_t len = json_dumpb(r->input, NULL, 0, JSON_COMPACT);
    char *text = malloc(len);
    if (!text || json_dumpb(r->input, text, len, JSON_COMPACT) != len) {
        free(text);
        return -1;
    }
    jv v = jv_parse_sized(text, (int)len);
    int ok = jv_is_valid(v);
    jv_free(v);
    free(text);
    return ok ? 0 : -1;
}

struct build {
    const struct sl_ce *ce;
    const char *payload;
    size_t len;
};

static int run_build(void *opaque)
{
    struct build *b = opaque;
    struct sl_err err;
    json_t *ev = sl_expr_event_json(b->ce, b->payload, b->len, &err);
    json_decref(ev);
    return ev ? 0 : -1;
}

/* What transform and route evaluate for one event. */
static int run_event(void *opaque)
{
    struct bench *b = opaque;
    struct sl_err err;
    bool matched = false;
    for (size_t i = 0; i < b->n; i++) {
        struct rule *r = &b->rules[i];
        bool hold;
        if (r->kind == TRANSFORM_WHEN && !matched) {
            if (sl_expr_bool(r->e, b->event, &hold, &err) != 0)
                return -1;
            if (hold) {
                json_t *out = sl_expr_value(b->rules[i + 1].e, b->event, &err);
                if (!out)
                    return -1;
                json_decref(out);
                matched = true;
            }
        } else if (r->kind == ROUTE_WHEN) {
            if (sl_expr_bool(r->e, b->normalized, &hold, &err) != 0)
                return -1;
        }
    }
    return 0;
}

struct worker {
    struct bench *b;
    long events; /* -1 on a failure */
    double cpu;  /* seconds of this thread's CPU time they took */
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    /* The first evaluation on a thread compiles its own jq states: keep that out of the
     * measurement, as a stage does it once. */
    if (run_event(w->b) != 0) {
        w->events = -1;
        return NULL;
    }
    double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
    while (now(CLOCK_MONOTONIC) - t0 < w->b->seconds) {
        for (int i = 0; i < BATCH; i++)
            if (run_event(w->b) != 0) {
                w->events = -1;
                return NULL;
            }
        w->events += BATCH;
    }
    w->cpu = now(CLOCK_THREAD_CPUTIME_ID) - c0;
    return NULL;
}

/* ---- set-up ---- */

static int add_rule(struct bench *b, const sl_conf_t *conf, const sl_conf_node_t *item,
                    const char *section, size_t index, const char *key, enum rule_kind kind)
{
    struct sl_err err;
    const char *name, *program;
    if (sl_conf_str(conf, item, "name", "?", &name, &err) != 0 ||
        sl_conf_str(conf, item, key, "true", &program, &err) != 0) {
        fprintf(stderr, "bench-expr: %s\n", err.msg);
        return -1;
    }
    if (b->n == MAX_RULES) {
        fprintf(stderr, "bench-expr: more than %d rules\n", MAX_RULES);
        return -1;
    }
    struct rule *r = &b->rules[b->n];
    snprintf(r->label, sizeof(r->label), "%s[%zu] %s %s", section, index, name, key);
    r->kind = kind;
    r->e = sl_expr_compile(name, program, &err);
    if (!r->e) {
        fprintf(stderr, "bench-expr: %s\n", err.msg);
        return -1;
    }
    b->n++;
    return 0;
}

static int load_rules(struct bench *b, const char *path)
{
    struct sl_err err;
    sl_conf_t *conf = sl_conf_load_file(path, &err);
    int rc = -1;
    if (!conf) {
        fprintf(stderr, "bench-expr: %s\n", err.msg);
        return -1;
    }
    const sl_conf_node_t *transforms = sl_conf_get(sl_conf_root(conf), "transforms");
    const sl_conf_node_t *routes = sl_conf_get(sl_conf_root(conf), "routes");
    for (size_t i = 0; i < sl_conf_count(transforms); i++) {
        const sl_conf_node_t *t = sl_conf_item(transforms, i);
        if (add_rule(b, conf, t, "transforms", i, "when", TRANSFORM_WHEN) != 0 ||
            add_rule(b, conf, t, "transforms", i, "jq", TRANSFORM_JQ) != 0)
            goto out;
    }
    for (size_t i = 0; i < sl_conf_count(routes); i++)
        if (add_rule(b, conf, sl_conf_item(routes, i), "routes", i, "when", ROUTE_WHEN) != 0)
            goto out;
    rc = 0;
out:
    sl_conf_destroy(conf);
    return rc;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size > 0 && size < (1 << 24) && fseek(f, 0, SEEK_SET) == 0 &&
            (buf = malloc((size_t)size + 1)) && fread(buf, 1, (size_t)size, f) == (size_t)size) {
            buf[size] = '\0';
            *len = (size_t)size;
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

/* The event after the first transform whose `when` holds: its output's type and data. */
static json_t *normalize(struct bench *b)
{
    struct sl_err err;
    json_t *norm = json_deep_copy(b->event);
    for (size_t i = 0; i + 1 < b->n; i++) {
        bool hold = false;
        if (b->rules[i].kind != TRANSFORM_WHEN ||
            sl_expr_bool(b->rules[i].e, b->event, &hold, &err) != 0 || !hold)
            continue;
        json_t *out = sl_expr_value(b->rules[i + 1].e, b->event, &err);
        if (out) {
            json_object_set(norm, "type", json_object_get(out, "type"));
            json_object_set(norm, "data", json_object_get(out, "data"));
            json_decref(out);
        }
        break;
    }
    return norm;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: bench-expr PIPELINE EVENT_JSON [SECONDS_PER_ROW] [THREADS]\n");
        return 2;
    }
    static struct bench b;
    b.seconds = argc > 3 ? atof(argv[3]) : 1.0;
    long threads = argc > 4 ? atol(argv[4]) : sysconf(_SC_NPROCESSORS_ONLN);
    if (b.seconds <= 0 || threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "bench-expr: bad SECONDS_PER_ROW or THREADS (1..%d)\n", MAX_THREADS);
        return 2;
    }
    size_t len = 0;
    char *payload = read_file(argv[2], &len);
    json_t *parsed = payload ? json_loadb(payload, len, 0, NULL) : NULL;
    const char *type = json_string_value(json_object_get(parsed, "type"));
    if (!type || load_rules(&b, argv[1]) != 0) {
        fprintf(stderr, "bench-expr: cannot read %s, or it has no \"type\"\n", argv[2]);
        return 1;
    }
    struct sl_ce ce;
    struct sl_err err;
    sl_ce_init(&ce);
    if (sl_ce_set(&ce, "specversion", "1.0", &err) != 0 ||
        sl_ce_set(&ce, "id", "0193a1b2-7c3e-7000-8000-000000000042", &err) != 0 ||
        sl_ce_set(&ce, "source", "stripe", &err) != 0 || sl_ce_set(&ce, "type", type, &err) ||
        sl_ce_set(&ce, "time", "2026-11-24T17:00:00Z", &err) != 0 ||
        sl_ce_set(&ce, "datacontenttype", "application/json", &err) != 0 ||
        !(b.event = sl_expr_event_json(&ce, payload, len, &err))) {
        fprintf(stderr, "bench-expr: %s\n", err.msg);
        return 1;
    }
    b.normalized = normalize(&b);
    sl_expr_t *floor = sl_expr_compile("true", "true", &err);
    if (!floor) {
        fprintf(stderr, "bench-expr: %s\n", err.msg);
        return 1;
    }

    double load[1] = {0};
    getloadavg(load, 1);
    printf("bench/expr: event %zu bytes of JSON (payload %zu), %.1f CPU-s per row, load %.1f\n",
           json_dumpb(b.event, NULL, 0, JSON_COMPACT), len, b.seconds, load[0]);
    printf("  %-58s %-7s %12s %10s\n", "", "result", "per CPU-s", "CPU-us");
    printf("references\n");
    struct build bu = {.ce = &ce, .payload = payload, .len = len};
    row("build the event JSON (sl_expr_event_json)", "", rate(run_build, &bu, b.seconds));
    struct one o = {.e = floor, .input = b.event};
    row("`true`: input walk + jq_start/jq_next (the floor)", "true", rate(run_one, &o, b.seconds));
    struct round_trip rt = {.input = b.event};
    row("json_dumps + jv_parse + jv_free (round trip alone)", "",
        rate(run_round_trip, &rt, b.seconds));

    printf("rules of %s\n", argv[1]);
    for (size_t i = 0; i < b.n; i++) {
        struct rule *r = &b.rules[i];
        o = (struct one){.e = r->e,
                         .input = r->kind == ROUTE_WHEN ? b.normalized : b.event,
                         .value = r->kind == TRANSFORM_JQ};
        const char *result = "ok";
        bool hold = false;
        if (!o.value) {
            if (sl_expr_bool(r->e, o.input, &hold, &err) != 0)
                result = "error";
            else
                result = hold ? "true" : "false";
        } else if (sl_expr_bool(b.rules[i - 1].e, o.input, &hold, &err) != 0 || !hold) {
            row(r->label, "-", 0); /* its `when` is false here: the stage would not run it */
            continue;
        }
        row(r->label, result, rate(run_one, &o, b.seconds));
    }

    printf("per event (transform whens until a match + its mapping, every route when)\n");
    row("1 thread, events per CPU-second", "", rate(run_event, &b, b.seconds));
    struct worker w[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    for (long i = 0; i < threads; i++) {
        w[i] = (struct worker){.b = &b, .events = 0};
        pthread_create(&tid[i], NULL, worker_main, &w[i]);
    }
    long events = 0;
    double cpu = 0;
    for (long i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        events = w[i].events < 0 || events < 0 ? -1 : events + w[i].events;
        cpu += w[i].cpu;
    }
    /* Per CPU-second as well: equal to the one-thread row when the threads do not slow each
     * other down, whatever else runs on the machine. */
    char label[80];
    snprintf(label, sizeof(label), "%ld threads sharing them, events per CPU-second", threads);
    row(label, "", events < 0 ? -1 : (double)events / cpu);
    snprintf(label, sizeof(label), "%ld threads sharing them, events per wall-clock second",
             threads);
    row(label, "", events < 0 ? -1 : (double)events / b.seconds);

    struct sl_expr_stats st;
    sl_expr_stats(&st);
    printf("budget aborts during the run: %llu\n", (unsigned long long)st.budget_exceeded);
    for (size_t i = 0; i < b.n; i++)
        sl_expr_destroy(b.rules[i].e);
    sl_expr_destroy(floor);
    json_decref(b.event);
    json_decref(b.normalized);
    json_decref(parsed);
    sl_ce_free(&ce);
    free(payload);
    return 0;
}
