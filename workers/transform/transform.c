/*
 * transform: see transform.h for the contract. This file is the stage's whole state: the rules
 * with their compiled expressions, schemas and lookups (built once at start-up, read-only
 * afterwards except for the lookups' connections), the Redis handle the lookups share, and the
 * metric series; process() runs on the loop's one thread.
 */
#include "transform.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lookup.h"
#include "sl_cloudevent.h"
#include "sl_expr.h"
#include "sl_jsonschema.h"
#include "sl_kafka.h"
#include "sl_log.h"
#include "sl_pipeline.h"
#include "sl_redis.h"
#include "sl_signal.h"

/* Longest schema path after joining it with the pipeline file's directory and schema_dir. */
#define TRANSFORM_PATH_MAX 4096
/* Schema violations collected per event at most (the dead letter keeps SL_EMIT_MAX_ERRORS). */
#define TRANSFORM_MAX_ERRORS 1000

/* Final results, the `result` label of sluice_transform_events_total. */
enum result { R_MAPPED, R_PASSED, R_UNMATCHED, R_MISSING, R_FAILED, R_INVALID, R_N };
static const char *const result_names[R_N] = {"mapped",  "passed", "unmatched",
                                              "missing", "failed", "invalid"};

/* Lookup outcomes, the `result` label of sluice_transform_lookups_total. */
enum lstat { L_FOUND, L_CACHED, L_MISSING, L_RETRY, L_FAILED, L_N };
static const char *const lstat_names[L_N] = {"found", "cached", "missing", "retry", "failed"};

struct rule_lookup {
    lookup_t *lookup;
    sl_series_t *counts[L_N]; /* made on first use */
};

struct rule {
    const char *name; /* borrowed from the pipeline file */
    sl_expr_t *when;  /* NULL: every event */
    sl_expr_t *jq;
    const char *schema_path;   /* as written in the file; NULL: no schema */
    const sl_schema_t *schema; /* owned by the stage's schema set */
    bool on_missing_null;
    size_t n_lookups;
    struct rule_lookup lookups[TRANSFORM_MAX_LOOKUPS];
    sl_series_t *events[R_N]; /* made on first use */
};

struct transform {
    sl_schema_set_t *schemas;
    struct rule *rules;
    size_t n_rules;
    struct rule none; /* the pseudo-rule "_none" of unmatched events, for metrics */
    bool required;
    sl_redis_t *redis; /* NULL when no lookup needs Redis */
    bool curl_ready;
    sl_metric_t *m_events, *m_lookups;
    sl_series_t *m_seconds[2]; /* by enum lookup_type */
};

/* ------------------------------------------------------------------------------------------ */
/* Building from the pipeline file                                                             */

static void transform_free(struct transform *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_rules; i++) {
        struct rule *r = &t->rules[i];
        sl_expr_destroy(r->when);
        sl_expr_destroy(r->jq);
        for (size_t j = 0; j < r->n_lookups; j++)
            lookup_destroy(r->lookups[j].lookup);
    }
    free(t->rules);
    sl_schema_set_destroy(t->schemas);
    sl_redis_destroy(t->redis);
    if (t->curl_ready)
        curl_global_cleanup();
    free(t);
}

/* Compiles the member `key` of rule node `r` into *out, naming the rule; *out stays NULL when
 * the member is absent. */
static int compile_expr(const sl_conf_t *conf, const sl_conf_node_t *r, const char *key,
                        const char *name, sl_expr_t **out, struct sl_err *err)
{
    const char *program;
    if (sl_conf_str(conf, r, key, NULL, &program, err) != 0)
        return -1;
    if (program && !(*out = sl_expr_compile(name, program, err))) {
        const sl_conf_node_t *at = sl_conf_get(r, key);
        sl_err_prefix(err, "%s:%d: %s", sl_conf_file(conf), sl_conf_line(at), sl_conf_keypath(at));
        return -1;
    }
    return 0;
}

static int build_lookups(const sl_conf_t *conf, const sl_conf_node_t *list, struct rule *rule,
                         struct sl_err *err)
{
    if (sl_conf_count(list) > TRANSFORM_MAX_LOOKUPS)
        return sl_conf_error(conf, list, err, "more than %d lookups in one rule",
                             TRANSFORM_MAX_LOOKUPS);
    for (size_t i = 0; i < sl_conf_count(list); i++) {
        const sl_conf_node_t *node = sl_conf_item(list, i);
        lookup_t *l = lookup_new(conf, node, err);
        if (!l)
            return -1;
        rule->lookups[rule->n_lookups++].lookup = l;
        for (size_t j = 0; j + 1 < rule->n_lookups; j++)
            if (strcmp(lookup_name(rule->lookups[j].lookup), lookup_name(l)) == 0)
                return sl_conf_error(conf, sl_conf_get(node, "name"), err,
                                     "another lookup of this rule is named '%s'", lookup_name(l));
    }
    return 0;
}

/* `on_missing: null` is YAML's null, which the accessors read as absent (the default, fail):
 * the key is looked up itself, so that the natural spelling means the mode "null", as the
 * quoted "null" does. */
static int read_on_missing(const sl_conf_t *conf, const sl_conf_node_t *r, bool *null_mode,
                           struct sl_err *err)
{
    const char *mode;
    for (size_t i = 0; i < sl_conf_count(r); i++)
        if (strcmp(sl_conf_key(r, i), "on_missing") == 0 &&
            sl_conf_type(sl_conf_item(r, i)) == SL_CONF_NULL) {
            *null_mode = true;
            return 0;
        }
    if (sl_conf_str(conf, r, "on_missing", "fail", &mode, err) != 0)
        return -1;
    *null_mode = strcmp(mode, "null") == 0;
    return 0;
}

static int build_rule(struct transform *t, const sl_conf_t *conf, const char *schema_dir,
                      const sl_conf_node_t *r, struct rule *rule, struct sl_err *err)
{
    if (sl_conf_str(conf, r, "name", NULL, &rule->name, err) != 0 ||
        sl_conf_str(conf, r, "schema", NULL, &rule->schema_path, err) != 0 ||
        read_on_missing(conf, r, &rule->on_missing_null, err) != 0)
        return -1;
    for (size_t i = 0; i + 1 < t->n_rules; i++)
        if (strcmp(t->rules[i].name, rule->name) == 0)
            return sl_conf_error(conf, sl_conf_get(r, "name"), err,
                                 "another transform rule is named '%s'", rule->name);
    /* `jq` is required by the key table; a rule without `when` takes every event. */
    if (compile_expr(conf, r, "when", rule->name, &rule->when, err) != 0 ||
        compile_expr(conf, r, "jq", rule->name, &rule->jq, err) != 0 ||
        build_lookups(conf, sl_conf_get(r, "lookups"), rule, err) != 0)
        return -1;
    if (rule->schema_path) {
        char full[TRANSFORM_PATH_MAX];
        struct sl_err load_err;
        const sl_conf_node_t *at = sl_conf_get(r, "schema");
        if (!*rule->schema_path ||
            sl_pipeline_join_path(full, sizeof(full), schema_dir, rule->schema_path) != 0)
            return sl_conf_error(conf, at, err, "schema path empty or too long");
        if (!(rule->schema = sl_schema_set_load_file(t->schemas, full, &load_err)))
            return sl_conf_error(conf, at, err, "cannot load the schema: %s", load_err.msg);
    }
    return 0;
}

/* Every rule, compiled; no connections, no metrics. */
static struct transform *transform_build(const sl_conf_t *conf, struct sl_err *err)
{
    const sl_conf_node_t *root = sl_conf_root(conf);
    const sl_conf_node_t *rules = sl_conf_get(root, "transforms");
    const sl_conf_node_t *section = sl_conf_get(root, "transform");
    char schema_dir[TRANSFORM_PATH_MAX];
    bool assert_formats;
    struct transform *t = calloc(1, sizeof(*t));
    if (!t || !(t->schemas = sl_schema_set_new())) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    t->none.name = "_none";
    if (sl_conf_bool(conf, section, "required", false, &t->required, err) != 0 ||
        sl_conf_bool(conf, section, "assert_formats", true, &assert_formats, err) != 0)
        goto fail;
    if (sl_pipeline_schema_dir(conf, schema_dir, sizeof(schema_dir), err) != 0)
        goto fail;
    sl_schema_set_assert_formats(t->schemas, assert_formats);
    size_t n = sl_conf_count(rules);
    if (n > TRANSFORM_MAX_RULES) {
        sl_conf_error(conf, rules, err, "more than %d transform rules", TRANSFORM_MAX_RULES);
        goto fail;
    }
    if (n && !(t->rules = calloc(n, sizeof(*t->rules)))) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    while (t->n_rules < n) {
        struct rule *rule = &t->rules[t->n_rules++]; /* counted first: freed on failure */
        if (build_rule(t, conf, schema_dir, sl_conf_item(rules, t->n_rules - 1), rule, err) != 0)
            goto fail;
    }
    return t;
fail:
    transform_free(t);
    return NULL;
}

int transform_check_config(const sl_conf_t *conf, struct sl_err *err)
{
    struct transform *t = transform_build(conf, err);
    transform_free(t);
    return t ? 0 : -1;
}

static int transform_init(void **ctx, const struct sl_stage_env *env, struct sl_err *err)
{
    struct transform *t = transform_build(env->conf, err);
    if (!t)
        return -1;
    bool needs_redis = false, needs_http = false;
    for (size_t i = 0; i < t->n_rules; i++)
        for (size_t j = 0; j < t->rules[i].n_lookups; j++) {
            needs_redis |= lookup_needs_redis(t->rules[i].lookups[j].lookup);
            needs_http |= lookup_type(t->rules[i].lookups[j].lookup) == LOOKUP_HTTP;
        }
    if (needs_http) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            sl_err_set(err, SL_ERR_INTERNAL, "libcurl cannot be initialised");
            goto fail;
        }
        t->curl_ready = true;
    }
    const char *key_prefix = NULL;
    if (needs_redis) {
        /* sl_redis_new() only parses the URL: a bad one fails here, a Redis that is down
         * does not (the events wait for it). */
        const char *url;
        int timeout_ms;
        if (sl_redis_key_prefix(env->conf, env->topic_prefix, &key_prefix, err) != 0 ||
            sl_redis_settings(env->conf, &url, &timeout_ms, err) != 0 ||
            !(t->redis = sl_redis_new(url, timeout_ms, err)))
            goto fail;
    }
    for (size_t i = 0; i < t->n_rules; i++)
        for (size_t j = 0; j < t->rules[i].n_lookups; j++)
            if (lookup_start(t->rules[i].lookups[j].lookup, t->redis, key_prefix, err) != 0)
                goto fail;
    t->m_events = sl_metrics_counter(env->metrics, "sluice_transform_events_total",
                                     "Events by the rule that mapped them (\"_none\": no rule "
                                     "matched) and final result.",
                                     (const char *const[]){"rule", "result", NULL});
    t->m_lookups = sl_metrics_counter(env->metrics, "sluice_transform_lookups_total",
                                      "Enrichment lookups by rule, lookup and outcome.",
                                      (const char *const[]){"rule", "lookup", "result", NULL});
    sl_metric_t *seconds = sl_metrics_histogram(
        env->metrics, "sluice_transform_lookup_seconds",
        "Time of one lookup, Redis or HTTP (cache included).", (const char *const[]){"type", NULL},
        sl_metrics_latency_buckets, sl_metrics_latency_buckets_n);
    if (!t->m_events || !t->m_lookups || !seconds) {
        sl_err_set(err, SL_ERR_NOMEM, "cannot register the transform metrics");
        goto fail;
    }
    t->m_seconds[LOOKUP_REDIS] = sl_metric_series(seconds, (const char *const[]){"redis"});
    t->m_seconds[LOOKUP_HTTP] = sl_metric_series(seconds, (const char *const[]){"http"});
    *ctx = t;
    return 0;
fail:
    transform_free(t);
    return -1;
}

static void transform_fini(void *ctx)
{
    transform_free(ctx);
}

/* ------------------------------------------------------------------------------------------ */
/* Per event                                                                                    */

static void count(struct transform *t, struct rule *rule, enum result r)
{
    if (!rule->events[r])
        rule->events[r] =
            sl_metric_series(t->m_events, (const char *const[]){rule->name, result_names[r]});
    sl_series_add(rule->events[r], 1);
}

static void count_lookup(struct transform *t, const struct rule *rule, struct rule_lookup *rl,
                         enum lstat s)
{
    if (!rl->counts[s])
        rl->counts[s] = sl_metric_series(
            t->m_lookups,
            (const char *const[]){rule->name, lookup_name(rl->lookup), lstat_names[s]});
    sl_series_add(rl->counts[s], 1);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A rule that failed for this event (an expression, a lookup): dead-letter it, naming the rule.
 * A fatal budget error (too many runaway expressions have leaked their state) also stops the
 * process after this dead letter, so that the supervisor restarts it with its memory. */
static enum sl_verdict rule_failed(struct transform *t, struct rule *rule, struct sl_emit *out,
                                   const char *what, const struct sl_err *err)
{
    sl_emit_reason(out, "transform '%s': %s%s", rule->name, what, err->msg);
    count(t, rule, R_FAILED);
    if (err->fatal) {
        SL_ERROR("transform '%s': %s%s; stopping", rule->name, what, err->msg);
        sl_signal_request_stop();
    }
    return SL_REJECT;
}

/* Step 2 of transform.h: the rule's lookups, their results into `.lookups` of `event`. */
static enum sl_verdict enrich(struct transform *t, struct rule *rule, const struct sl_event *in,
                              json_t *event, struct sl_emit *out)
{
    json_t *results = json_object(), *outcomes = json_object();
    if (!results || !outcomes || json_object_set_new(event, "lookups", results) != 0 ||
        json_object_set_new(sl_emit_detail(out), "lookups", outcomes) != 0) {
        sl_emit_reason(out, "transform '%s': out of memory", rule->name);
        return SL_RETRY;
    }
    for (size_t i = 0; i < rule->n_lookups; i++) {
        struct rule_lookup *rl = &rule->lookups[i];
        const char *name = lookup_name(rl->lookup);
        char what[LOOKUP_NAME_MAX + 16];
        snprintf(what, sizeof(what), "lookup '%s': ", name);
        struct sl_err err;
        json_t *value;
        bool cached;
        double t0 = now_seconds();
        enum lookup_result r = lookup_run(rl->lookup, event, &value, &cached, &err);
        sl_series_observe(t->m_seconds[lookup_type(rl->lookup)], now_seconds() - t0);
        switch (r) {
        case LOOKUP_FOUND:
            count_lookup(t, rule, rl, cached ? L_CACHED : L_FOUND);
            json_object_set_new(outcomes, name, json_string(cached ? "cached" : "found"));
            json_object_set_new(results, name, value);
            break;
        case LOOKUP_MISSING:
            count_lookup(t, rule, rl, L_MISSING);
            json_object_set_new(outcomes, name, json_string("missing"));
            if (!rule->on_missing_null) {
                sl_emit_reason(out, "transform '%s': lookup '%s': %s (on_missing: fail)",
                               rule->name, name, err.msg);
                count(t, rule, R_MISSING);
                return SL_REJECT;
            }
            json_object_set_new(results, name, json_null());
            break;
        case LOOKUP_RETRY:
            /* Retriable errors are the loop's to log (it holds the event); refused credentials
             * need an operator, so each attempt says so at error level. */
            count_lookup(t, rule, rl, L_RETRY);
            if (!err.retriable)
                sl_log(SL_LOG_ERROR, sl_ce_get(in->ce, "id"),
                       "transform '%s': lookup '%s': %s; holding the event until it succeeds",
                       rule->name, name, err.msg);
            sl_emit_reason(out, "transform '%s': lookup '%s': %s", rule->name, name, err.msg);
            return SL_RETRY;
        case LOOKUP_FAILED:
            count_lookup(t, rule, rl, L_FAILED);
            return rule_failed(t, rule, out, what, &err);
        }
    }
    return SL_PASS;
}

static const char *kind_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        break;
    }
    return "null";
}

/* Step 3's shape: exactly {"type": <non-empty string>, "data": <any>}. */
static int check_output(const json_t *res, const char **type, const json_t **data,
                        struct sl_err *err)
{
    if (!json_is_object(res))
        return sl_err_set(err, SL_ERR_INVALID, "the mapping gave %s, not {type, data}",
                          kind_of(res));
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)res, key, v)
    {
        if (strcmp(key, "type") != 0 && strcmp(key, "data") != 0)
            return sl_err_set(err, SL_ERR_INVALID,
                              "the mapping's output has a member '%.64s' besides type and data",
                              key);
    }
    const json_t *t = json_object_get(res, "type");
    if (!json_is_string(t) || json_string_length(t) == 0)
        return sl_err_set(err, SL_ERR_INVALID,
                          "the mapping's output needs a non-empty string 'type', not %s",
                          t ? kind_of(t) : "nothing");
    if (!(*data = json_object_get(res, "data")))
        return sl_err_set(err, SL_ERR_INVALID, "the mapping's output has no 'data'");
    *type = json_string_value(t);
    return 0;
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

/* Step 4's attributes: the input's, with the new type, the old one as sluiceorigtype, JSON
 * content, and no dataschema. */
static int output_ce(const struct sl_ce *in, const char *type, struct sl_ce *ce, struct sl_err *err)
{
    const char *orig = sl_ce_get(in, "type");
    for (size_t i = 0; i < in->n; i++) {
        const char *name = in->attrs[i].name, *value = in->attrs[i].value;
        if (strcmp(name, "dataschema") == 0)
            continue;
        if (strcmp(name, "type") == 0)
            value = type;
        if (sl_ce_set(ce, name, value, err) != 0)
            return -1;
    }
    if (sl_ce_set(ce, "datacontenttype", "application/json", err) != 0 ||
        sl_ce_set(ce, SL_CE_ORIGINAL_TYPE, orig, err) != 0)
        return -1;
    return 0;
}

/* Steps 2-4 for the rule that matched. */
/* `input` is `event` as converted for the rules' `when`; lookups add to the event, so a rule
 * with lookups maps the enriched event instead. */
static enum sl_verdict map(struct transform *t, struct rule *rule, const struct sl_event *in,
                           json_t *event, const sl_expr_input_t *input, struct sl_emit *out)
{
    json_t *detail = sl_emit_detail(out);
    json_object_set_new(detail, "rule", json_string(rule->name));
    json_object_set_new(detail, "original_type", json_string(sl_ce_get(in->ce, "type")));
    json_object_set_new(detail, "schema",
                        rule->schema_path ? json_string(rule->schema_path) : json_null());
    if (rule->n_lookups) {
        enum sl_verdict v = enrich(t, rule, in, event, out);
        if (v != SL_PASS)
            return v;
    }

    struct sl_err err;
    struct sl_ce ce;
    char *payload = NULL;
    enum sl_verdict verdict = SL_REJECT;
    sl_ce_init(&ce);
    json_t *res = rule->n_lookups ? sl_expr_value(rule->jq, event, &err)
                                  : sl_expr_value_in(rule->jq, input, &err);
    if (!res)
        return rule_failed(t, rule, out, "", &err);
    const char *type = NULL;
    const json_t *data = NULL;
    if (check_output(res, &type, &data, &err) != 0) {
        sl_emit_reason(out, "transform '%s': %s", rule->name, err.msg);
        count(t, rule, R_INVALID);
        goto out;
    }
    if (rule->schema) {
        struct collect c = {out, 0};
        int rc = sl_schema_validate(rule->schema, data, on_schema_error, &c, TRANSFORM_MAX_ERRORS);
        if (rc < 0) {
            sl_emit_reason(out, "transform '%s': schema validation ran out of memory", rule->name);
            verdict = SL_RETRY;
            goto out;
        }
        if (rc == 0) {
            sl_emit_reason(out, "transform '%s': the output does not match %s: %s%zu error%s",
                           rule->name, rule->schema_path,
                           c.n >= TRANSFORM_MAX_ERRORS ? "at least " : "", c.n,
                           c.n == 1 ? "" : "s");
            count(t, rule, R_INVALID);
            goto out;
        }
    }
    if (!(payload = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY))) {
        sl_emit_reason(out, "transform '%s': out of memory", rule->name);
        verdict = SL_RETRY;
        goto out;
    }
    size_t len = strlen(payload);
    if (len > TRANSFORM_MAX_DATA) {
        sl_emit_reason(out, "transform '%s': the output data is %zu bytes, more than %d",
                       rule->name, len, TRANSFORM_MAX_DATA);
        count(t, rule, R_INVALID);
        goto out;
    }
    if (output_ce(in->ce, type, &ce, &err) != 0) {
        sl_emit_reason(out, "transform '%s': output attributes: %s", rule->name, err.msg);
        count(t, rule, R_INVALID);
        goto out;
    }
    if (sl_emit_record(out, SL_TOPIC_NORMALIZED, &ce, in->key, in->key_len, payload, len, &err) !=
        0) {
        sl_emit_reason(out, "transform '%s': cannot queue the output: %s", rule->name, err.msg);
        verdict = err.code == SL_ERR_NOMEM ? SL_RETRY : SL_REJECT;
        goto out;
    }
    count(t, rule, R_MAPPED);
    verdict = SL_PASS;
out:
    sl_ce_free(&ce);
    free(payload);
    json_decref(res);
    return verdict;
}

/* No rule matched: pass unchanged, or dead-letter when transforms are required. */
static enum sl_verdict unmatched(struct transform *t, const struct sl_event *in,
                                 struct sl_emit *out)
{
    struct sl_err err;
    json_object_set_new(sl_emit_detail(out), "rule", json_null());
    if (t->required) {
        sl_emit_reason(out, "no transform rule matched type %s (transform.required is true)",
                       sl_ce_get(in->ce, "type"));
        count(t, &t->none, R_UNMATCHED);
        return SL_REJECT;
    }
    if (sl_emit_record(out, SL_TOPIC_NORMALIZED, in->ce, in->key, in->key_len, in->data, in->len,
                       &err) != 0) {
        sl_emit_reason(out, "cannot queue the output: %s", err.msg);
        return err.code == SL_ERR_NOMEM ? SL_RETRY : SL_REJECT;
    }
    count(t, &t->none, R_PASSED);
    return SL_PASS;
}

static enum sl_verdict transform_process(void *ctx, const struct sl_event *in, struct sl_emit *out)
{
    struct transform *t = ctx;
    struct sl_err err;
    enum sl_verdict verdict;
    json_t *event = sl_expr_event_json(in->ce, in->data, in->len, &err);
    if (!event) {
        sl_emit_reason(out, "event data: %s", err.msg);
        count(t, &t->none, R_FAILED);
        return err.code == SL_ERR_NOMEM ? SL_RETRY : SL_REJECT;
    }
    /* Converted once for every rule's `when` and the mapping. */
    sl_expr_input_t *input = sl_expr_input_new(event, &err);
    if (!input) {
        sl_emit_reason(out, "event data: %s", err.msg);
        count(t, &t->none, R_FAILED);
        verdict = err.code == SL_ERR_NOMEM ? SL_RETRY : SL_REJECT;
        goto out;
    }
    struct rule *rule = NULL;
    for (size_t i = 0; i < t->n_rules && !rule; i++) {
        bool yes = true;
        if (t->rules[i].when && sl_expr_bool_in(t->rules[i].when, input, &yes, &err) != 0) {
            verdict = rule_failed(t, &t->rules[i], out, "", &err);
            goto out;
        }
        if (yes)
            rule = &t->rules[i];
    }
    verdict = rule ? map(t, rule, in, event, input, out) : unmatched(t, in, out);
out:
    sl_expr_input_free(input);
    json_decref(event);
    return verdict;
}

const struct sl_stage transform_stage = {
    .name = "transform",
    .description = "Maps each event of <prefix>validated to its canonical model with the first "
                   "matching transform rule (jq, lookups in Redis or HTTP APIs, canonical "
                   "schema) and forwards it to <prefix>normalized.",
    .input = SL_TOPIC_VALIDATED,
    .admin_port = 9182,
    .init = transform_init,
    .process = transform_process,
    .fini = transform_fini,
};
