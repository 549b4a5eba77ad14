#include "actions.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_cloudevent.h"
#include "sl_pg_query.h"
#include "sl_record.h"

#define ACK_EXTRA_MS 5000 /* waited for an acknowledgement beyond the produce deadline */

struct adm_actions {
    const struct sl_kafka_settings *kafka;
    pthread_mutex_t lock; /* the producer is made once, and one flush at a time */
    sl_producer_t *producer;
};

/* The acknowledgement of one record. */
struct ack {
    bool done, failed;
    char msg[SL_ERR_MSG_MAX];
};

static void on_report(void *opaque, int32_t partition, int64_t offset, const struct sl_err *err)
{
    struct ack *a = opaque;
    a->done = true;
    if (err) {
        a->failed = true;
        snprintf(a->msg, sizeof(a->msg), "%s", err->msg);
    }
}

adm_actions_t *adm_actions_new(const struct sl_kafka_settings *kafka)
{
    adm_actions_t *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->kafka = kafka;
    pthread_mutex_init(&a->lock, NULL);
    return a;
}

void adm_actions_destroy(adm_actions_t *a)
{
    if (!a)
        return;
    sl_producer_destroy(a->producer);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static const char insert_sql[] =
    "INSERT INTO admin_actions (who, role, action, target, parameters, remote, result) "
    "VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7::jsonb) RETURNING id";

/* The audit record of `act` (row `id` of admin_actions), produced and acknowledged. */
static int audit(adm_actions_t *a, const struct adm_action *act, const char *id, const char *result,
                 struct sl_err *err)
{
    char topic[SL_TOPIC_NAME_MAX];
    char *value = NULL;
    size_t len = 0;
    rd_kafka_headers_t *hdrs = NULL;
    struct sl_ce ce;
    struct ack ack = {0};
    int rc = -1;
    sl_ce_init(&ce);
    json_t *detail = json_pack("{s:s, s:s, s:s, s:s, s:O?, s:s?, s:i, s:s}", "action_id", id, "who",
                               act->who->name, "role", adm_role_name(act->who->role), "target",
                               act->target, "parameters", act->parameters, "remote", act->remote,
                               "status", (int)act->status, "result", result);
    if (!detail) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (act->event_id && sl_ce_set(&ce, "id", act->event_id, err) != 0)
        goto out;
    const struct sl_audit rec = {
        .stage = "admin",
        .ce = act->event_id ? &ce : NULL,
        .topic = "",
        .partition = -1,
        .offset = -1,
        .outcome = act->action,
        .reason = act->status < 300 ? NULL : result,
        .outputs = -1,
        .detail = detail,
    };
    sl_kafka_topic_name(a->kafka, SL_TOPIC_AUDIT, topic, sizeof(topic));
    if (sl_audit_build(&rec, &value, &len, &hdrs, err) != 0)
        goto out;
    pthread_mutex_lock(&a->lock);
    if (!a->producer && !(a->producer = sl_producer_new(a->kafka, "sluice-admin", on_report, err)))
        rd_kafka_headers_destroy(hdrs);
    else if (sl_producer_send(a->producer, topic, act->event_id,
                              act->event_id ? strlen(act->event_id) : 0, value, len, hdrs, &ack,
                              err) != 0)
        rd_kafka_headers_destroy(hdrs);
    else if (sl_producer_flush(a->producer, a->kafka->produce_timeout_ms + ACK_EXTRA_MS, err) != 0)
        ;
    else if (!ack.done || ack.failed)
        sl_err_set(err, SL_ERR_KAFKA, "%s: not acknowledged: %s", topic,
                   ack.done ? ack.msg : "no delivery report");
    else
        rc = 0;
    pthread_mutex_unlock(&a->lock);
out:
    free(value);
    json_decref(detail);
    sl_ce_free(&ce);
    return rc;
}

int adm_actions_record(adm_actions_t *a, sl_pg_t *pg, const struct adm_action *act,
                       struct sl_err *err)
{
    json_t *empty = json_object();
    char *params = json_dumps(act->parameters ? act->parameters : empty, JSON_COMPACT);
    char *result = json_dumps(act->result, JSON_COMPACT);
    PGresult *res = NULL;
    int rc = -1;
    json_t *wrapped = json_pack("{s:i, s:O}", "status", (int)act->status, "answer", act->result);
    char *result_row = wrapped ? json_dumps(wrapped, JSON_COMPACT) : NULL;
    if (!params || !result || !result_row) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto out;
    }
    const char *values[] = {act->who->name, adm_role_name(act->who->role),
                            act->action,    act->target,
                            params,         act->remote,
                            result_row};
    if (sl_pg_exec(pg, insert_sql, 7, values, &res, err) != 0) {
        sl_err_prefix(err, "admin_actions");
        goto out;
    }
    if (audit(a, act, PQgetvalue(res, 0, 0), result, err) != 0) {
        sl_err_prefix(err, "the audit record of action %s", PQgetvalue(res, 0, 0));
        goto out;
    }
    rc = 0;
out:
    PQclear(res);
    free(result_row);
    json_decref(wrapped);
    free(result);
    free(params);
    json_decref(empty);
    return rc;
}

int adm_actions_list(sl_pg_t *pg, long long cursor, int limit, json_t **page, struct sl_err *err)
{
    char before[24], lim[16], next[24];
    json_t *items = NULL;
    snprintf(before, sizeof(before), "%lld", cursor);
    snprintf(lim, sizeof(lim), "%d", limit + 1);
    const char *params[] = {cursor > 0 ? before : NULL, lim};
    *page = NULL;
    if (sl_pg_query_json(pg,
                         "SELECT coalesce(json_agg(json_build_object('id', a.id, 'at', a.at,"
                         " 'who', a.who, 'role', a.role, 'action', a.action, 'target', a.target,"
                         " 'parameters', a.parameters, 'remote', a.remote, 'result', a.result)"
                         " ORDER BY a.id DESC), '[]') "
                         "FROM (SELECT * FROM admin_actions"
                         " WHERE ($1::bigint IS NULL OR id < $1::bigint)"
                         " ORDER BY id DESC LIMIT $2::integer) AS a",
                         2, params, &items, err) != 0)
        return -1;
    json_t *cur = json_null();
    if (json_array_size(items) > (size_t)limit) {
        json_array_remove(items, (size_t)limit);
        snprintf(next, sizeof(next), "%lld",
                 (long long)json_integer_value(
                     json_object_get(json_array_get(items, (size_t)limit - 1), "id")));
        cur = json_string(next);
    }
    *page = json_pack("{s:o, s:o}", "items", items, "next_cursor", cur);
    return *page ? 0 : sl_err_set(err, SL_ERR_NOMEM, "out of memory");
}
