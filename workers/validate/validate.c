/*
 * validate: see validate.h for the contract. This file is the stage's whole state: the
 * compiled schemas per source and type (built once at start-up, read-only afterwards), the
 * Redis handle for dedup, and the metric series; process() runs on the loop's one thread.
 */
#include "validate.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_cloudevent.h"
#include "sl_jsonschema.h"
#include "sl_kafka.h"
#include "sl_log.h"
#include "sl_pipeline.h"
#include "sl_redis.h"

/* Longest schema path after joining it with the pipeline file's directory and schema_dir. */
#define VALIDATE_PATH_MAX 4096
/* The dedup key and value (see validate.h): a topic name, a source name (<= 100), a few
 * separators and numbers, and one attribute value. */
#define VALIDATE_DEDUP_MAX (SL_TOPIC_NAME_MAX + SL_REDIS_KEY_PREFIX_MAX + 160 + SL_CE_MAX_VALUE)

/* Final results, the `result` label of sluice_validate_events_total. */
enum result {
    RESULT_VALID,
    RESULT_UNVALIDATED,
    RESULT_INVALID,
    RESULT_MALFORMED,
    RESULT_NO_SCHEMA,
    RESULT_UNKNOWN_SOURCE,
    RESULT_DUPLICATE,
    RESULT_N
};

static const char *const result_names[RESULT_N] = {
    "valid", "unvalidated", "invalid", "malformed", "no_schema", "unknown_source", "duplicate",
};

/* One `schemas` entry of a source (or a pseudo-entry for metrics: "_none", "_unknown"). */
struct entry {
    const char *type;              /* borrowed from the pipeline file */
    const char *path;              /* the path as written there (audit detail); NULL: none */
    const sl_schema_t *schema;     /* owned by the stage's schema set; NULL: none */
    sl_series_t *events[RESULT_N]; /* made on first use (most combinations never happen) */
};

struct source {
    const char *name;    /* borrowed from the pipeline file */
    struct entry *types; /* sorted by type, without "*" */
    size_t n_types;
    struct entry fallback; /* "*": schema NULL when there is none */
    struct entry none;     /* no schema applies */
    bool require_schema;
    bool dedup;
    sl_series_t *seconds;
};

struct validate {
    sl_schema_set_t *schemas;
    struct source *sources; /* sorted by name */
    size_t n_sources;
    struct entry unknown; /* events of no configured source */
    long long window_ms;
    const char *prefix;       /* Redis key prefix (sl_redis_key_prefix), borrowed */
    const char *topic_prefix; /* of the keys of earlier builds (validate.h, Upgrade), borrowed */
    sl_redis_t *redis;
    sl_metric_t *m_events;
};

static const double seconds_buckets[] = {5e-6, 1e-5,   2.5e-5, 5e-5, 1e-4,   2.5e-4, 5e-4,
                                         1e-3, 2.5e-3, 5e-3,   1e-2, 2.5e-2, 0.1,    1.0};

/* ------------------------------------------------------------------------------------------ */
/* Building from the pipeline file                                                             */

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->type, ((const struct entry *)b)->type);
}

static int source_cmp(const void *a, const void *b)
{
    return strcmp(((const struct source *)a)->name, ((const struct source *)b)->name);
}

static void validate_free(struct validate *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n_sources; i++)
        free(v->sources[i].types);
    free(v->sources);
    sl_schema_set_destroy(v->schemas);
    sl_redis_destroy(v->redis);
    free(v);
}

/* Loads the schema that `node` (a `schemas` member) names into *e. */
static int load_entry(struct validate *v, const sl_conf_t *conf, const char *schema_dir,
                      const sl_conf_node_t *node, const char *type, struct entry *e,
                      struct sl_err *err)
{
    const char *path;
    char full[VALIDATE_PATH_MAX];
    struct sl_err load_err;
    if (sl_conf_as_str(conf, node, &path, err) != 0)
        return -1;
    if (!*path || sl_pipeline_join_path(full, sizeof(full), schema_dir, path) != 0)
        return sl_conf_error(conf, node, err, "schema path empty or too long");
    e->type = type;
    e->path = path;
    if (!(e->schema = sl_schema_set_load_file(v->schemas, full, &load_err)))
        return sl_conf_error(conf, node, err, "cannot load the schema: %s", load_err.msg);
    return 0;
}

static int load_source(struct validate *v, const sl_conf_t *conf, const char *schema_dir,
                       const char *name, const sl_conf_node_t *sec, struct source *s,
                       struct sl_err *err)
{
    const sl_conf_node_t *schemas = sl_conf_get(sec, "schemas");
    size_t n = sl_conf_count(schemas);
    s->name = name;
    s->fallback.type = "*";
    s->none.type = "_none";
    if (sl_conf_bool(conf, sec, "require_schema", false, &s->require_schema, err) != 0 ||
        sl_conf_bool(conf, sec, "dedup", true, &s->dedup, err) != 0)
        return -1;
    if (n && !(s->types = calloc(n, sizeof(*s->types))))
        return sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *type = sl_conf_key(schemas, i);
        bool star = strcmp(type, "*") == 0;
        struct entry *e = star ? &s->fallback : &s->types[s->n_types++];
        if (load_entry(v, conf, schema_dir, sl_conf_item(schemas, i), type, e, err) != 0)
            return -1;
    }
    if (s->n_types) /* qsort() and bsearch() want a non-NULL base, even for 0 items */
        qsort(s->types, s->n_types, sizeof(*s->types), entry_cmp);
    return 0;
}

/* The settings and every schema, compiled; no Redis, no metrics. */
static struct validate *validate_build(const sl_conf_t *conf, struct sl_err *err)
{
    const sl_conf_node_t *root = sl_conf_root(conf);
    const sl_conf_node_t *sources = sl_conf_get(root, "sources");
    char schema_dir[VALIDATE_PATH_MAX];
    bool assert_formats;
    struct validate *v = calloc(1, sizeof(*v));
    if (!v || !(v->schemas = sl_schema_set_new())) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    v->unknown.type = "_unknown";
    if (sl_conf_bool(conf, sl_conf_get(root, "validate"), "assert_formats", false, &assert_formats,
                     err) != 0 ||
        sl_conf_duration_ms(conf, sl_conf_get(root, "dedup"), "window", 72LL * 3600 * 1000, 1000,
                            30LL * 86400 * 1000, &v->window_ms, err) != 0)
        goto fail;
    if (sl_pipeline_schema_dir(conf, schema_dir, sizeof(schema_dir), err) != 0)
        goto fail;
    sl_schema_set_assert_formats(v->schemas, assert_formats);

    size_t n = sl_conf_count(sources);
    if (n && !(v->sources = calloc(n, sizeof(*v->sources)))) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (; v->n_sources < n; v->n_sources++)
        if (load_source(v, conf, schema_dir, sl_conf_key(sources, v->n_sources),
                        sl_conf_item(sources, v->n_sources), &v->sources[v->n_sources], err) != 0) {
            v->n_sources++; /* so that validate_free() frees its types */
            goto fail;
        }
    if (v->n_sources)
        qsort(v->sources, v->n_sources, sizeof(*v->sources), source_cmp);
    return v;
fail:
    validate_free(v);
    return NULL;
}

int validate_check_config(const sl_conf_t *conf, struct sl_err *err)
{
    struct validate *v = validate_build(conf, err);
    validate_free(v);
    return v ? 0 : -1;
}

static int validate_init(void **ctx, const struct sl_stage_env *env, struct sl_err *err)
{
    const char *url;
    int timeout_ms;
    struct validate *v = validate_build(env->conf, err);
    if (!v)
        return -1;
    v->topic_prefix = env->topic_prefix;
    /* sl_redis_new() only parses the URL: a bad one fails here, a Redis that is down does not. */
    if (sl_redis_key_prefix(env->conf, env->topic_prefix, &v->prefix, err) != 0 ||
        sl_redis_settings(env->conf, &url, &timeout_ms, err) != 0 ||
        !(v->redis = sl_redis_new(url, timeout_ms, err)))
        goto fail;
    sl_redis_persistence_watch(v->redis, env->metrics);
    v->m_events = sl_metrics_counter(
        env->metrics, "sluice_validate_events_total",
        "Events by source, schemas entry that applied (\"*\", \"_none\") and final result.",
        (const char *const[]){"source", "type", "result", NULL});
    sl_metric_t *seconds = sl_metrics_histogram(
        env->metrics, "sluice_validate_seconds", "Time to parse and validate one event's payload.",
        (const char *const[]){"source", NULL}, seconds_buckets,
        sizeof(seconds_buckets) / sizeof(seconds_buckets[0]));
    if (!v->m_events || !seconds) {
        sl_err_set(err, SL_ERR_NOMEM, "cannot register the validate metrics");
        goto fail;
    }
    for (size_t i = 0; i < v->n_sources; i++)
        v->sources[i].seconds =
            sl_metric_series(seconds, (const char *const[]){v->sources[i].name});
    *ctx = v;
    return 0;
fail:
    validate_free(v);
    return -1;
}

static void validate_fini(void *ctx)
{
    validate_free(ctx);
}

/* ------------------------------------------------------------------------------------------ */
/* Per event                                                                                    */

static void count(const struct validate *v, const char *source, struct entry *e, enum result r)
{
    if (!e->events[r])
        e->events[r] =
            sl_metric_series(v->m_events, (const char *const[]){source, e->type, result_names[r]});
    sl_series_add(e->events[r], 1);
}

static struct source *find_source(struct validate *v, const char *name)
{
    const struct source key = {.name = name};
    return v->n_sources ? bsearch(&key, v->sources, v->n_sources, sizeof(key), source_cmp) : NULL;
}

/* The schemas entry for `type`: its own, else "*", else the source's "none" entry (whose
 * schema is NULL). */
static struct entry *select_entry(struct source *s, const char *type)
{
    const struct entry key = {.type = type};
    struct entry *e =
        s->n_types ? bsearch(&key, s->types, s->n_types, sizeof(key), entry_cmp) : NULL;
    if (e)
        return e;
    return s->fallback.schema ? &s->fallback : &s->none;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct collect {
    struct sl_emit *out;
    size_t n;
};

static void on_schema_error(void *opaque, const char *instance_path, const char *keyword_location,
                            const char *message)
{
    struct collect *c = opaque;
    c->n++;
    sl_emit_error(c->out, "%s: %s: %s", *instance_path ? instance_path : "(root)",
                  *keyword_location ? keyword_location : "(root)", message);
}

/* Steps 2-4 of validate.h: the schema, the parse, the validation. Returns SL_PASS to go on to
 * dedup, else the verdict (and *result). */
static enum sl_verdict check_payload(struct source *s, struct entry *e, const struct sl_event *in,
                                     struct sl_emit *out, enum result *result)
{
    const char *type = sl_ce_get(in->ce, "type");
    json_t *detail = sl_emit_detail(out);
    if (!e->schema && s->require_schema) {
        sl_emit_reason(out, "no schema for type %s of source %s", type, s->name);
        *result = RESULT_NO_SCHEMA;
        return SL_REJECT;
    }
    double t0 = now_seconds();
    json_error_t jerr;
    json_t *json = json_loadb(in->data, in->len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!json) {
        sl_emit_reason(out, "malformed JSON at byte %d: %s", jerr.position, jerr.text);
        *result = RESULT_MALFORMED;
        sl_series_observe(s->seconds, now_seconds() - t0);
        return SL_REJECT;
    }
    enum sl_verdict verdict = SL_PASS;
    if (!e->schema) {
        json_object_set_new(detail, "schema", json_null());
        json_object_set_new(detail, "note", json_string("no schema for this type: unvalidated"));
        *result = RESULT_UNVALIDATED;
        goto out;
    }
    json_object_set_new(detail, "schema", json_string(e->path));
    struct collect c = {out, 0};
    int rc = sl_schema_validate(e->schema, json, on_schema_error, &c, VALIDATE_MAX_ERRORS);
    if (rc < 0) {
        sl_emit_reason(out, "schema validation ran out of memory");
        verdict = SL_RETRY;
    } else if (rc == 0) {
        sl_emit_reason(out, "schema validation failed: %s%zu error%s against %s",
                       c.n >= VALIDATE_MAX_ERRORS ? "at least " : "", c.n, c.n == 1 ? "" : "s",
                       e->path);
        *result = RESULT_INVALID;
        verdict = SL_REJECT;
    } else {
        *result = RESULT_VALID;
    }
out:
    sl_series_observe(s->seconds, now_seconds() - t0);
    json_decref(json);
    return verdict;
}

/* What a dedup claim means for the event (validate.h). `rc`/`err` are the claim's outcome;
 * `holder` is the claim value found in Redis for a duplicate (NULL when it was gone). Pure:
 * no I/O, so that the unit tests cover every branch. */
static enum sl_verdict dedup_verdict(int rc, const struct sl_err *err, enum sl_redis_claim claim,
                                     const char *holder, const struct sl_event *in,
                                     struct sl_emit *out)
{
    json_t *detail = sl_emit_detail(out);
    if (rc != 0) {
        /* Retriable errors are the loop's to log (it holds the event); the others need an
         * operator, so each attempt says so at error level. */
        if (!err->retriable)
            sl_log(SL_LOG_ERROR, sl_ce_get(in->ce, "id"),
                   "dedup: %s; holding the event until Redis accepts the claim", err->msg);
        sl_emit_reason(out, "dedup: %s", err->msg);
        return SL_RETRY;
    }
    switch (claim) {
    case SL_REDIS_CLAIM_FIRST:
        json_object_set_new(detail, "dedup", json_string("first"));
        return SL_PASS;
    case SL_REDIS_CLAIM_SAME:
        json_object_set_new(detail, "dedup", json_string("same"));
        return SL_PASS;
    case SL_REDIS_CLAIM_DUPLICATE:
        break;
    }
    /* The holder is "<topic>/<partition>/<offset> <event id>"; anything else is shown whole. */
    const char *space = holder ? strchr(holder, ' ') : NULL;
    const char *first = space ? space + 1 : holder;
    const char *id = sl_ce_get(in->ce, "id");
    if (space && sl_ce_get(in->ce, SL_CE_REPLAY) && id && strcmp(first, id) == 0) {
        /* An operator put this very event back (sluicectl dlq replay): it is the one that
         * claimed the key, not a sender's retry, which never carries the replay mark. */
        json_object_set_new(detail, "dedup", json_string("replay"));
        return SL_PASS;
    }
    json_object_set_new(detail, "dedup", json_string("duplicate"));
    if (first) {
        json_object_set_new(detail, "duplicate_of", json_string(first));
        sl_emit_reason(out, "duplicate of event %s (idempotency key %s)", first,
                       sl_ce_get(in->ce, SL_CE_IDEMPOTENCY_KEY));
    } else {
        sl_emit_reason(out, "duplicate (idempotency key %s; the first claim has just expired)",
                       sl_ce_get(in->ce, SL_CE_IDEMPOTENCY_KEY));
    }
    return SL_DUPLICATE;
}

/* Reads the claim value of `key`, else of `old_key`, into holder (a duplicate's reason names
 * the first event). *found is false when both have expired meanwhile. */
static int read_holder(struct validate *v, const char *key, const char *old_key, char *holder,
                       size_t size, bool *found, struct sl_err *err)
{
    const char *argv[] = {"MGET", key, old_key};
    redisReply *reply;
    if (sl_redis_cmd(v->redis, &reply, 3, argv, NULL, err) != 0)
        return -1;
    *found = false;
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements && !*found; i++) {
        const redisReply *e = reply->element[i];
        *found = e->type == REDIS_REPLY_STRING;
        if (*found)
            snprintf(holder, size, "%.*s", (int)e->len, e->str);
    }
    freeReplyObject(reply);
    return 0;
}

/* Step 5's dedup: claims (source, idempotency key) for this record. */
static enum sl_verdict dedup(struct validate *v, const struct source *s, const struct sl_event *in,
                             struct sl_emit *out)
{
    const char *idem = sl_ce_get(in->ce, SL_CE_IDEMPOTENCY_KEY);
    json_t *detail = sl_emit_detail(out);
    /* The source's own id, in the audit trail so that an operator can find the event by it
     * (sluice-admin's /api/v1/events?q=). */
    if (idem && *idem)
        json_object_set_new(detail, "idempotency_key", json_string(idem));
    if (!s->dedup || !idem || !*idem) {
        json_object_set_new(detail, "dedup", json_string(s->dedup ? "no_key" : "off"));
        return SL_PASS;
    }
    char key[VALIDATE_DEDUP_MAX], old_key[VALIDATE_DEDUP_MAX], value[VALIDATE_DEDUP_MAX],
        holder[VALIDATE_DEDUP_MAX], scoped[SL_CE_SCOPED_ID_LEN + 1];
    struct sl_err err;
    enum sl_redis_claim claim = SL_REDIS_CLAIM_FIRST;
    bool found = false;
    if (sl_ce_scoped_id(in->ce, idem, scoped) != 0) {
        sl_emit_reason(out, "dedup: cannot hash the idempotency key");
        return SL_RETRY;
    }
    int n = snprintf(key, sizeof(key), "%sdedup.v2:%s:%s", v->prefix, s->name, scoped);
    int o = snprintf(old_key, sizeof(old_key), "%sdedup:%s:%s", v->topic_prefix, s->name, idem);
    int m = snprintf(value, sizeof(value), "%s/%d/%lld %s", in->topic, (int)in->partition,
                     (long long)in->offset, sl_ce_get(in->ce, "id"));
    if (n < 0 || (size_t)n >= sizeof(key) || o < 0 || (size_t)o >= sizeof(old_key) || m < 0 ||
        (size_t)m >= sizeof(value)) {
        /* Cannot happen within the attribute and topic bounds; never pass unchecked. */
        sl_emit_reason(out, "dedup key too long");
        return SL_RETRY;
    }
    int rc = sl_redis_dedup_claim(v->redis, key, old_key, value, v->window_ms, &claim, &err);
    if (rc == 0)
        sl_redis_persistence_check(v->redis); /* once: when Redis was down at start-up */
    if (rc == 0 && claim == SL_REDIS_CLAIM_DUPLICATE)
        rc = read_holder(v, key, old_key, holder, sizeof(holder), &found, &err);
    return dedup_verdict(rc, &err, claim, found ? holder : NULL, in, out);
}

static enum sl_verdict validate_process(void *ctx, const struct sl_event *in, struct sl_emit *out)
{
    struct validate *v = ctx;
    const char *name = sl_ce_get(in->ce, SL_CE_SOURCE_NAME);
    struct source *s = name ? find_source(v, name) : NULL;
    if (!s) {
        if (name)
            sl_emit_reason(out, "unknown source %s (not in the pipeline file)", name);
        else
            sl_emit_reason(out, "no %s attribute: not an event from sluice-ingress",
                           SL_CE_SOURCE_NAME);
        count(v, "_unknown", &v->unknown, RESULT_UNKNOWN_SOURCE);
        return SL_REJECT;
    }
    struct entry *e = select_entry(s, sl_ce_get(in->ce, "type"));
    enum result result = RESULT_VALID;
    enum sl_verdict verdict = check_payload(s, e, in, out, &result);
    if (verdict != SL_PASS)
        goto out;
    /* Queue the output first, so that nothing can fail after a claim (records of a call that
     * does not pass are discarded). */
    struct sl_err err;
    if (sl_emit_record(out, SL_TOPIC_VALIDATED, in->ce, in->key, in->key_len, in->data, in->len,
                       &err) != 0) {
        sl_emit_reason(out, "cannot queue the output: %s", err.msg);
        return SL_RETRY;
    }
    verdict = dedup(v, s, in, out);
    if (verdict == SL_DUPLICATE)
        result = RESULT_DUPLICATE;
out:
    if (verdict != SL_RETRY)
        count(v, s->name, e, result);
    return verdict;
}

const struct sl_stage validate_stage = {
    .name = "validate",
    .description = "Validates each event of <prefix>ingress against its source's JSON Schema, "
                   "drops duplicates (Redis), and forwards it to <prefix>validated.",
    .input = SL_TOPIC_INGRESS,
    .admin_port = 9181,
    .init = validate_init,
    .process = validate_process,
    .fini = validate_fini,
};
