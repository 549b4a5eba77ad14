#include "sl_pg_query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sl_pg_query_json(sl_pg_t *pg, const char *sql, int nparams, const char *const *params,
                     json_t **out, struct sl_err *err)
{
    PGresult *r;
    *out = NULL;
    if (sl_pg_exec(pg, sql, nparams, params, &r, err) != 0)
        return -1;
    int rc = 0;
    if (PQntuples(r) == 0 || PQnfields(r) != 1 || PQgetisnull(r, 0, 0)) {
        rc = sl_err_set(err, SL_ERR_NOT_FOUND, "%s: not found", sl_pg_where(pg));
    } else {
        json_error_t jerr;
        *out =
            json_loadb(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), JSON_DECODE_ANY, &jerr);
        if (!*out)
            rc = sl_err_set(err, SL_ERR_INTERNAL, "%s: the server's JSON does not parse: %s",
                            sl_pg_where(pg), jerr.text);
    }
    PQclear(r);
    return rc;
}

/* ---- audit partitions ---- */

int sl_pg_audit_partitions_ensure(sl_pg_t *pg, int ahead, int *created, struct sl_err *err)
{
    if (ahead < 0 || ahead > 365)
        return sl_err_set(err, SL_ERR_INVALID, "audit partitions: ahead must be 0 to 365 days");
    char days[16];
    snprintf(days, sizeof(days), "%d", ahead);
    const char *params[] = {days};
    PGresult *r;
    if (sl_pg_exec(pg,
                   "SELECT sluice_audit_partitions_ensure(d, d + $1::integer) "
                   "FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS d) AS today",
                   1, params, &r, err) != 0)
        return -1;
    if (created)
        *created = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int sl_pg_audit_partitions_drop(sl_pg_t *pg, int retain, json_t **dropped, struct sl_err *err)
{
    *dropped = NULL;
    if (retain < 1 || retain > 36500)
        return sl_err_set(err, SL_ERR_INVALID, "audit partitions: retain must be 1 to 36500 days");
    char days[16];
    snprintf(days, sizeof(days), "%d", retain);
    const char *params[] = {days};
    return sl_pg_query_json(
        pg,
        "SELECT coalesce(json_agg(name ORDER BY name), '[]') "
        "FROM sluice_audit_partitions_drop("
        "((now() - make_interval(days => $1::integer)) AT TIME ZONE 'UTC')::date) "
        "AS name",
        1, params, dropped, err);
}

int sl_pg_audit_partitions(sl_pg_t *pg, json_t **parts, struct sl_err *err)
{
    return sl_pg_query_json(
        pg,
        "SELECT coalesce(json_agg(json_build_object("
        " 'name', c.relname,"
        " 'day', CASE WHEN c.relname ~ '^audit_p[0-9]{8}$'"
        "        THEN to_char(to_date(substr(c.relname, 8), 'YYYYMMDD'), 'YYYY-MM-DD') END,"
        " 'rows', CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END)"
        " ORDER BY c.relname), '[]') "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'audit'::regclass",
        0, NULL, parts, err);
}

/* ---- reads ---- */

int sl_pg_event_timeline(sl_pg_t *pg, const char *event_id, json_t **rows, struct sl_err *err)
{
    *rows = NULL;
    if (!event_id || !*event_id)
        return sl_err_set(err, SL_ERR_INVALID, "event timeline: no event id");
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", SL_PG_ROWS_MAX);
    const char *params[] = {event_id, limit};
    return sl_pg_query_json(
        pg,
        "SELECT coalesce(json_agg(json_build_object("
        " 'at', a.at, 'stage', a.stage, 'outcome', a.outcome, 'reason', a.reason,"
        " 'errors', a.errors, 'source', a.source, 'type', a.type,"
        " 'destination', a.destination, 'attempt', a.attempt, 'status', a.status,"
        " 'latency_ms', a.latency_ms, 'seconds', a.seconds, 'outputs', a.outputs,"
        " 'detail', a.detail, 'topic', a.topic, 'partition', a.partition,"
        " 'offset', a.kafka_offset, 'recorded_at', a.recorded_at)"
        " ORDER BY a.at,"
        "  array_position(ARRAY['ingress', 'validate', 'transform', 'route', 'deliver'], a.stage),"
        "  a.attempt, a.audit_partition, a.audit_offset), '[]') "
        "FROM (SELECT * FROM audit WHERE event_id = $1 ORDER BY at LIMIT $2::integer) AS a",
        2, params, rows, err);
}

/* The members a listing and a single dead letter share. */
#define DLQ_MEMBERS                                                                                \
    " 'id', d.id, 'event_id', d.event_id, 'source', d.source, 'type', d.type,"                     \
    " 'stage', d.stage, 'reason', d.reason, 'attempt', d.attempt, 'status', d.status,"             \
    " 'received_at', d.received_at, 'topic', d.topic, 'partition', d.partition,"                   \
    " 'offset', d.kafka_offset, 'payload_size', octet_length(d.payload),"                          \
    " 'replay_count', (SELECT count(*) FROM dead_letter_replays r WHERE r.dead_letter_id = d.id)"

int sl_pg_dead_letters(sl_pg_t *pg, const struct sl_pg_dlq_filter *f, json_t **rows,
                       struct sl_err *err)
{
    static const struct sl_pg_dlq_filter none = {0};
    *rows = NULL;
    if (!f)
        f = &none;
    int limit = f->limit ? f->limit : 100;
    if (limit < 1 || limit > SL_PG_ROWS_MAX || f->before_id < 0)
        return sl_err_set(err, SL_ERR_INVALID,
                          "dead letters: limit must be 1 to %d, before_id 0 or more",
                          SL_PG_ROWS_MAX);
    char lim[16], before[24];
    snprintf(lim, sizeof(lim), "%d", limit);
    snprintf(before, sizeof(before), "%lld", f->before_id);
    const char *params[] = {
        f->source, f->stage, f->status,     f->since, f->before_id ? before : NULL,
        lim,       f->until, f->destination};
    /* Each filter is ($n IS NULL OR ...): the statement is planned with its values, so absent
     * filters fold away and the indexes of the present ones serve. */
    return sl_pg_query_json(pg,
                            "SELECT coalesce(json_agg(json_build_object(" DLQ_MEMBERS ")"
                            " ORDER BY d.id DESC), '[]') "
                            "FROM (SELECT * FROM dead_letters"
                            " WHERE ($1::text IS NULL OR source = $1)"
                            " AND ($2::text IS NULL OR stage = $2)"
                            " AND ($3::text IS NULL OR status = $3)"
                            " AND ($4::timestamptz IS NULL OR received_at >= $4::timestamptz)"
                            " AND ($5::bigint IS NULL OR id < $5::bigint)"
                            " AND ($7::timestamptz IS NULL OR received_at < $7::timestamptz)"
                            " AND ($8::text IS NULL OR headers->>'ce_sluicedestination' = $8)"
                            " ORDER BY id DESC LIMIT $6::integer) AS d",
                            8, params, rows, err);
}

int sl_pg_dead_letter(sl_pg_t *pg, long long id, json_t **row, struct sl_err *err)
{
    char num[24];
    snprintf(num, sizeof(num), "%lld", id);
    const char *params[] = {num};
    int rc = sl_pg_query_json(
        pg,
        "SELECT json_build_object(" DLQ_MEMBERS ","
        " 'errors', d.errors, 'headers', d.headers,"
        " 'payload', translate(encode(d.payload, 'base64'), E'\\n', ''),"
        " 'key', translate(encode(d.key, 'base64'), E'\\n', ''),"
        " 'produced_at', d.produced_at, 'status_at', d.status_at, 'status_by', d.status_by,"
        " 'replays', coalesce((SELECT json_agg(json_build_object("
        "   'replayed_by', r.replayed_by, 'replayed_at', r.replayed_at, 'to_stage', r.to_stage,"
        "   'to_topic', r.to_topic, 'attempt', r.attempt, 'partition', r.partition,"
        "   'offset', r.kafka_offset) ORDER BY r.replayed_at, r.id)"
        "  FROM dead_letter_replays r WHERE r.dead_letter_id = d.id), '[]')) "
        "FROM dead_letters d WHERE d.id = $1::bigint",
        1, params, row, err);
    if (rc != 0 && err && err->code == SL_ERR_NOT_FOUND)
        sl_err_set(err, SL_ERR_NOT_FOUND, "dead letter %lld: no such id", id);
    return rc;
}

int sl_pg_reconcile_hourly(sl_pg_t *pg, const char *since, const char *until, const char *source,
                           const char *destination, json_t **rows, struct sl_err *err)
{
    *rows = NULL;
    if (!since || !*since)
        return sl_err_set(err, SL_ERR_INVALID, "reconcile hourly: no start time");
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", SL_PG_ROWS_MAX);
    const char *params[] = {since, until, source, limit, destination};
    return sl_pg_query_json(
        pg,
        "SELECT coalesce(json_agg(json_build_object("
        " 'hour', h.hour, 'source', h.source, 'destination', h.destination,"
        " 'accepted', h.accepted, 'delivered', h.delivered, 'dead_lettered', h.dead_lettered,"
        " 'filtered', h.filtered, 'duplicate', h.duplicate, 'pending', h.pending,"
        " 'stuck', h.stuck, 'unexplained', h.unexplained, 'explanation', h.explanation,"
        " 'run_id', h.run_id, 'updated_at', h.updated_at)"
        " ORDER BY h.hour, h.source, h.destination), '[]') "
        "FROM (SELECT * FROM reconcile_hourly"
        " WHERE hour >= $1::timestamptz"
        " AND ($2::timestamptz IS NULL OR hour < $2::timestamptz)"
        " AND ($3::text IS NULL OR source = $3)"
        " AND ($5::text IS NULL OR destination = $5)"
        " ORDER BY hour, source, destination LIMIT $4::integer) AS h",
        5, params, rows, err);
}
