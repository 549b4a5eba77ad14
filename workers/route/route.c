#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_expr.h"
#include "sl_kafka.h"
#include "sl_log.h"
#include "sl_signal.h"

#define ROUTE_MAX_RULES        256
#define ROUTE_MAX_DESTINATIONS 256
#define ROUTE_MAX_KEY          1024 /* bytes of a partition key computed by a rule */

struct rule {
    const char *name; /* borrowed from the pipeline file */
    sl_expr_t *when;
    sl_expr_t *partition_key; /* NULL: keep the event's key */
    size_t n_to;
    size_t to[ROUTE_MAX_DESTINATIONS]; /* indexes into route_ctx.dests */
};

struct route_ctx {
    size_t n_rules;
    struct rule rules[ROUTE_MAX_RULES];
    size_t n_dests;
    const char *dests[ROUTE_MAX_DESTINATIONS]; /* borrowed destination names */
    sl_metric_t *m_routed;
    sl_series_t *m_filtered;
};

static void route_fini(void *opaque)
{
    struct route_ctx *ctx = opaque;
    if (!ctx)
        return;
    for (size_t i = 0; i < ctx->n_rules; i++) {
        sl_expr_destroy(ctx->rules[i].when);
        sl_expr_destroy(ctx->rules[i].partition_key);
    }
    free(ctx);
}

static int find_dest(struct route_ctx *ctx, const char *name)
{
    for (size_t i = 0; i < ctx->n_dests; i++)
        if (strcmp(ctx->dests[i], name) == 0)
            return (int)i;
    return -1;
}

/* Builds the rules from the pipeline file; every expression is compiled here, once. The
 * pipeline check already guaranteed that `to` names existing destinations. */
static struct route_ctx *route_build(const sl_conf_t *conf, struct sl_err *err)
{
    const sl_conf_node_t *root = sl_conf_root(conf);
    const sl_conf_node_t *dests = sl_conf_get(root, "destinations");
    const sl_conf_node_t *routes = sl_conf_get(root, "routes");
    struct route_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (sl_conf_count(dests) > ROUTE_MAX_DESTINATIONS || sl_conf_count(routes) > ROUTE_MAX_RULES) {
        sl_conf_error(conf, routes, err, "more than %d routes or destinations", ROUTE_MAX_RULES);
        goto fail;
    }
    for (size_t i = 0; i < sl_conf_count(dests); i++)
        ctx->dests[ctx->n_dests++] = sl_conf_key(dests, i);
    for (size_t i = 0; i < sl_conf_count(routes); i++) {
        const sl_conf_node_t *r = sl_conf_item(routes, i);
        struct rule *rule = &ctx->rules[ctx->n_rules++];
        const char *when, *key;
        if (sl_conf_str(conf, r, "name", NULL, &rule->name, err) != 0 ||
            sl_conf_str(conf, r, "when", "true", &when, err) != 0 ||
            sl_conf_str(conf, r, "partition_key", NULL, &key, err) != 0)
            goto fail;
        if (!(rule->when = sl_expr_compile(rule->name, when, err)) ||
            (key && !(rule->partition_key = sl_expr_compile(rule->name, key, err)))) {
            sl_err_prefix(err, "%s:%d: %s", sl_conf_file(conf), sl_conf_line(r),
                          sl_conf_keypath(r));
            goto fail;
        }
        const sl_conf_node_t *to = sl_conf_get(r, "to");
        size_t n = sl_conf_type(to) == SL_CONF_SEQ ? sl_conf_count(to) : 1;
        for (size_t j = 0; j < n; j++) {
            const char *name;
            if (sl_conf_as_str(conf, sl_conf_type(to) == SL_CONF_SEQ ? sl_conf_item(to, j) : to,
                               &name, err) != 0)
                goto fail;
            int d = find_dest(ctx, name);
            if (d < 0) {
                sl_conf_error(conf, to, err, "no destination named '%s'", name);
                goto fail;
            }
            rule->to[rule->n_to++] = (size_t)d;
        }
    }
    return ctx;
fail:
    route_fini(ctx);
    return NULL;
}

int route_check_config(const sl_conf_t *conf, struct sl_err *err)
{
    struct route_ctx *ctx = route_build(conf, err);
    route_fini(ctx);
    return ctx ? 0 : -1;
}

static int route_init(void **out, const struct sl_stage_env *env, struct sl_err *err)
{
    struct route_ctx *ctx = route_build(env->conf, err);
    if (!ctx)
        return -1;
    ctx->m_routed = sl_metrics_counter(env->metrics, "sluice_route_events_total",
                                       "Events sent to a destination, by route and destination.",
                                       (const char *const[]){"route", "destination", NULL});
    ctx->m_filtered =
        sl_metric_series(sl_metrics_counter(env->metrics, "sluice_route_filtered_total",
                                            "Events no route matched (terminal: filtered).", NULL),
                         NULL);
    *out = ctx;
    return 0;
}

/* The partition key a rule computes: a string as it is, any other JSON value compactly. */
static int rule_key(struct rule *rule, const sl_expr_input_t *event, char *buf, size_t size,
                    struct sl_err *err)
{
    json_t *v = sl_expr_value_in(rule->partition_key, event, err);
    if (!v)
        return -1;
    int rc = 0;
    if (json_is_string(v)) {
        if (json_string_length(v) >= size)
            rc = sl_err_set(err, SL_ERR_INVALID, "partition key longer than %zu bytes", size - 1);
        else
            memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    } else if (json_is_null(v)) {
        rc = sl_err_set(err, SL_ERR_INVALID, "partition key is null");
    } else {
        size_t n = json_dumpb(v, buf, size - 1, JSON_COMPACT | JSON_ENCODE_ANY);
        if (n == 0 || n >= size - 1)
            rc = sl_err_set(err, SL_ERR_INVALID, "partition key longer than %zu bytes", size - 2);
        else
            buf[n] = '\0';
    }
    json_decref(v);
    return rc;
}

/* An expression that failed: dead-letter, naming the rule. */
static enum sl_verdict rule_failed(struct sl_emit *out, const struct rule *rule,
                                   const struct sl_err *err)
{
    sl_emit_reason(out, "route '%s': %s", rule->name, err->msg);
    if (err->fatal) {
        /* Too many runaway expressions have leaked their state: dead-letter this event,
         * then stop cleanly so that the supervisor restarts the process with its memory. */
        SL_ERROR("route '%s': %s; stopping", rule->name, err->msg);
        sl_signal_request_stop();
    }
    return SL_REJECT;
}

static enum sl_verdict route_process(void *opaque, const struct sl_event *in, struct sl_emit *out)
{
    struct route_ctx *ctx = opaque;
    struct sl_err err;
    enum sl_verdict verdict = SL_FILTERED;
    bool sent[ROUTE_MAX_DESTINATIONS] = {false};
    struct sl_ce ce;
    sl_ce_init(&ce);
    /* Converted once for every rule's expressions. */
    json_t *doc = sl_expr_event_json(in->ce, in->data, in->len, &err);
    sl_expr_input_t *event = doc ? sl_expr_input_new(doc, &err) : NULL;
    json_t *matched = json_array();
    json_decref(doc);
    if (!event) {
        sl_emit_reason(out, "event data: %s", err.msg);
        verdict = err.code == SL_ERR_NOMEM ? SL_RETRY : SL_REJECT;
        goto out;
    }
    for (size_t r = 0; r < ctx->n_rules; r++) {
        struct rule *rule = &ctx->rules[r];
        bool yes;
        if (sl_expr_bool_in(rule->when, event, &yes, &err) != 0) {
            verdict = rule_failed(out, rule, &err);
            goto out;
        }
        if (!yes)
            continue;
        char key[ROUTE_MAX_KEY];
        const void *k = in->key;
        size_t k_len = in->key_len;
        if (rule->partition_key) {
            if (rule_key(rule, event, key, sizeof(key), &err) != 0) {
                verdict = rule_failed(out, rule, &err);
                goto out;
            }
            k = key;
            k_len = strlen(key);
        }
        json_array_append_new(matched, json_string(rule->name));
        for (size_t t = 0; t < rule->n_to; t++) {
            size_t d = rule->to[t];
            if (sent[d])
                continue; /* each destination receives an event once */
            sent[d] = true;
            char topic[SL_TOPIC_NAME_MAX];
            snprintf(topic, sizeof(topic), SL_TOPIC_DELIVER "%s", ctx->dests[d]);
            sl_ce_free(&ce);
            sl_ce_init(&ce);
            for (size_t a = 0; a < in->ce->n; a++)
                if (sl_ce_set(&ce, in->ce->attrs[a].name, in->ce->attrs[a].value, &err) != 0)
                    goto emit_failed;
            if ((rule->partition_key && sl_ce_set(&ce, SL_CE_PARTITION_KEY, key, &err) != 0) ||
                sl_ce_set(&ce, SL_CE_ROUTE, rule->name, &err) != 0 ||
                sl_emit_record(out, topic, &ce, k, k_len, in->data, in->len, &err) != 0)
                goto emit_failed;
            sl_series_add(
                sl_metric_series(ctx->m_routed, (const char *const[]){rule->name, ctx->dests[d]}),
                1);
            verdict = SL_PASS;
        }
    }
    if (verdict == SL_FILTERED) {
        sl_emit_reason(out, "no route matched");
        sl_series_add(ctx->m_filtered, 1);
    } else {
        json_t *to = json_array();
        for (size_t d = 0; d < ctx->n_dests; d++)
            if (sent[d])
                json_array_append_new(to, json_string(ctx->dests[d]));
        json_object_set_new(sl_emit_detail(out), "destinations", to);
        json_object_set(sl_emit_detail(out), "routes", matched);
    }
    goto out;
emit_failed:
    sl_emit_reason(out, "route output: %s", err.msg);
    verdict = SL_REJECT;
out:
    sl_ce_free(&ce);
    json_decref(matched);
    sl_expr_input_free(event);
    return verdict;
}

const struct sl_stage route_stage = {
    .name = "route",
    .description = "Sends normalized events to their destinations' topics (rules, fan-out).",
    .input = SL_TOPIC_NORMALIZED,
    .admin_port = 9183,
    .init = route_init,
    .process = route_process,
    .fini = route_fini,
};
