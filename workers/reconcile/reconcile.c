/*
 * reconcile: see reconcile.h for the contract. Every step is one SQL statement in the run's
 * transaction; C only carries the watermark between them, produces the alerts and keeps the
 * metrics. The session's temporary tables (rec_touched, rec_hours, rec_result) hold what one
 * run works on and empty themselves at COMMIT or ROLLBACK.
 */
#include "reconcile.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_cloudevent.h"
#include "sl_log.h"
#include "sl_pg.h"
#include "sl_record.h"

#define TIME_TEXT_MAX 64 /* timestamptz text from the server */

/* In the statements below, date_bin('1 hour', t, timestamptz '2000-01-01 00:00+00') is the UTC
 * hour an acceptance time falls in (the hour column of reconcile_hourly), and to_char(t AT TIME
 * ZONE 'UTC', ...) the RFC 3339 text of alert data. */
#define WINDOW "a.recorded_at > $1::timestamptz AND a.recorded_at <= $2::timestamptz"

struct rec {
    struct rec_settings s;
    sl_pg_t *pg;
    sl_producer_t *producer; /* NULL while alerts are off */

    /* Delivery reports of the run's alerts (served on the run's thread by the flush). */
    int produce_failures;
    struct sl_err produce_err;

    pthread_mutex_t lock; /* the readiness below, read by the admin thread */
    bool ok;
    char why[SL_ERR_MSG_MAX];

    sl_series_t *m_stuck, *m_unexplained, *m_seconds;
    sl_series_t *m_balanced, *m_unbalanced, *m_failed;
    sl_series_t *m_alert_stuck, *m_alert_dlq, *m_alert_circuit;
};

/* What one run found, for its reconcile_runs row and the metrics. */
struct run {
    char read_from[TIME_TEXT_MAX], read_to[TIME_TEXT_MAX];
    char run_id[32];
    char dlq_id[32]; /* the highest dead_letters.id counted */
    long long dead_letters, alerts, stuck, events, unbalanced_hours, unexplained;
};

/* ---- the statements ---- */

/* Replicas (and a restarted process overlapping the old one) take turns. */
static const char lock_sql[] = "SELECT pg_advisory_xact_lock(hashtext('sluice-reconcile'))";

/* $1 overlap. The last successful run's read_to minus the overlap (or the beginning), now(),
 * the last counted dead letter (NULL before the first run) and the highest one now. */
static const char window_sql[] =
    "WITH last AS (SELECT read_to, dead_letter_id FROM reconcile_runs "
    "WHERE status IN ('balanced', 'unbalanced') ORDER BY id DESC LIMIT 1) "
    "SELECT coalesce((SELECT read_to FROM last) - $1::interval, '-infinity'::timestamptz), "
    "now(), (SELECT dead_letter_id FROM last), (SELECT coalesce(max(id), 0) FROM dead_letters)";

static const char run_insert_sql[] =
    "INSERT INTO reconcile_runs (window_from, window_to, read_from, read_to) "
    "VALUES ($1::timestamptz, $2::timestamptz, $1::timestamptz, $2::timestamptz) RETURNING id";

static const char temp_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS rec_touched (event_id text PRIMARY KEY) "
    "ON COMMIT DELETE ROWS;\n"
    "CREATE TEMP TABLE IF NOT EXISTS rec_hours (hour timestamptz PRIMARY KEY) "
    "ON COMMIT DELETE ROWS;\n"
    "CREATE TEMP TABLE IF NOT EXISTS rec_result (hour timestamptz, source text, destination "
    "text, accepted bigint, delivered bigint, dead_lettered bigint, filtered bigint, duplicate "
    "bigint, pending bigint, stuck bigint, missing bigint, extra bigint) ON COMMIT DELETE ROWS;\n";

/* $1 read_from, $2 read_to: the events the window's audit rows are about. */
static const char touched_sql[] =
    "INSERT INTO rec_touched SELECT DISTINCT a.event_id FROM audit a WHERE " WINDOW
    " AND a.event_id <> '' ON CONFLICT DO NOTHING";

/* Acceptances: validate audits every record of <prefix>ingress; the earliest one counts. */
static const char accepted_sql[] =
    "INSERT INTO reconcile_events AS e (event_id, source, type, accepted_at) "
    "SELECT DISTINCT ON (a.event_id) a.event_id, coalesce(a.source, ''), a.type, "
    "sluice_accepted_at(a.event_id, a.at) FROM audit a WHERE " WINDOW
    " AND a.stage = 'validate' AND a.event_id <> '' ORDER BY a.event_id, a.at "
    "ON CONFLICT (event_id) DO UPDATE SET "
    "accepted_at = LEAST(e.accepted_at, EXCLUDED.accepted_at), "
    "source = CASE WHEN e.source = '' THEN EXCLUDED.source ELSE e.source END, "
    "type = coalesce(e.type, EXCLUDED.type)";

/* Routing decisions: the destinations a passed record names (the rule of audit_row_status). */
static const char routed_sql[] =
    "INSERT INTO reconcile_routed (event_id, destination) "
    "SELECT DISTINCT a.event_id, d FROM audit a CROSS JOIN LATERAL jsonb_array_elements_text("
    "CASE WHEN jsonb_typeof(a.detail -> 'destinations') = 'array' "
    "THEN a.detail -> 'destinations' ELSE '[]'::jsonb END) AS d WHERE " WINDOW
    " AND a.outcome = 'passed' AND a.event_id <> '' AND d <> '' ON CONFLICT DO NOTHING";

/* Accepted, and nothing decided yet: pending before routing. */
static const char unrouted_sql[] =
    "INSERT INTO event_status (event_id, destination, source, type, state, accepted_at) "
    "SELECT e.event_id, '', e.source, e.type, 'pending', e.accepted_at "
    "FROM reconcile_events e JOIN rec_touched t USING (event_id) "
    "WHERE NOT EXISTS (SELECT 1 FROM event_status s WHERE s.event_id = e.event_id) "
    "AND NOT EXISTS (SELECT 1 FROM reconcile_routed r WHERE r.event_id = e.event_id) "
    "ON CONFLICT DO NOTHING";

/* A pending row before routing goes once the event has a row for a destination. */
static const char routed_away_sql[] =
    "WITH gone AS (DELETE FROM event_status s WHERE s.destination = '' AND s.state = 'pending' "
    "AND EXISTS (SELECT 1 FROM event_status o WHERE o.event_id = s.event_id "
    "AND o.destination <> '') RETURNING s.accepted_at) "
    "INSERT INTO rec_hours SELECT DISTINCT date_bin('1 hour', accepted_at, timestamptz '2000-01-01 "
    "00:00+00') FROM gone ON CONFLICT DO NOTHING";

/* $1 deadline, $2 limit. Marks the oldest pending pairs past the deadline stuck, once. */
static const char stuck_sql[] =
    "WITH s AS (UPDATE event_status u SET stuck_at = now() FROM (SELECT event_id, destination "
    "FROM event_status WHERE state = 'pending' AND stuck_at IS NULL "
    "AND accepted_at < now() - $1::interval ORDER BY accepted_at LIMIT $2::integer) k "
    "WHERE u.event_id = k.event_id AND u.destination = k.destination AND u.state = 'pending' "
    "RETURNING u.event_id, u.destination, u.source, u.type, u.route, u.accepted_at, u.stuck_at) "
    "SELECT event_id, destination, source, type, route, to_char(accepted_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), to_char(stuck_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), floor(extract(epoch FROM stuck_at - "
    "accepted_at))::bigint, "
    "md5('sluice.alert.stuck/' || event_id || '/' || destination)::uuid::text "
    "FROM s ORDER BY accepted_at";

/* $1 the last counted dead letter, $2 the highest now: how many came, by stage, the alert id. */
static const char dlq_sql[] =
    "SELECT coalesce(sum(n), 0), coalesce(json_object_agg(stage, n), '{}')::text, "
    "md5('sluice.alert.dlq_growth/' || $1 || '/' || $2)::uuid::text, to_char(now() AT TIME ZONE "
    "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM (SELECT stage, count(*) AS n FROM "
    "dead_letters "
    "WHERE id > $1::bigint AND id <= $2::bigint GROUP BY stage) s";

/* $1, $2 the window, $3 limit: circuits sluice-deliver opened (its audit records of outcome
 * circuit_open), each with the alert id derived from the record's own position, unless that
 * alert is already booked (the overlap reads a record again). */
static const char circuit_sql[] =
    "SELECT detail ->> 'destination', coalesce(reason, ''), to_char(at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), a.id FROM (SELECT *, md5('sluice.alert.circuit_open/' "
    "|| audit_topic || '/' || audit_partition || '/' || audit_offset)::uuid::text AS id FROM "
    "audit WHERE stage = 'deliver' AND outcome = 'circuit_open' AND recorded_at > "
    "$1::timestamptz AND recorded_at <= $2::timestamptz) a WHERE NOT EXISTS (SELECT 1 FROM "
    "reconcile_events e WHERE e.event_id = a.id) ORDER BY at LIMIT $3::integer";

/* $1 id, $2 type, $3 destination: an alert is an event reconcile accepted and routed. */
static const char book_alert_sql[] =
    "WITH e AS (INSERT INTO reconcile_events (event_id, source, type, accepted_at) "
    "VALUES ($1, '" REC_SOURCE "', $2, now()) ON CONFLICT DO NOTHING), "
    "r AS (INSERT INTO reconcile_routed (event_id, destination) VALUES ($1, $3) "
    "ON CONFLICT DO NOTHING) "
    "INSERT INTO event_status (event_id, destination, source, type, state, accepted_at) "
    "VALUES ($1, $3, '" REC_SOURCE "', $2, 'pending', now()) ON CONFLICT DO NOTHING";

/* The hours to recompute: of the events read, and of every pending pair (time makes them
 * stuck). */
static const char hours_sql[] =
    "INSERT INTO rec_hours SELECT date_bin('1 hour', e.accepted_at, timestamptz '2000-01-01 "
    "00:00+00') FROM reconcile_events e "
    "JOIN rec_touched USING (event_id) "
    "UNION SELECT date_bin('1 hour', s.accepted_at, timestamptz '2000-01-01 00:00+00') FROM "
    "event_status s JOIN rec_touched USING (event_id) "
    "UNION SELECT date_bin('1 hour', accepted_at, timestamptz '2000-01-01 00:00+00') FROM "
    "event_status WHERE state = "
    "'pending' "
    "ON CONFLICT DO NOTHING";

/* Both accounts of the events of those hours, side by side per (event, destination): the book
 * of acceptances (a pair per routed destination, else '') and event_status. A pair counts in
 * the hour of its acceptance in the book, a state without a pair in its own. */
static const char result_sql[] =
    "INSERT INTO rec_result "
    "WITH ev AS (SELECT e.event_id FROM reconcile_events e JOIN rec_hours h "
    "ON e.accepted_at >= h.hour AND e.accepted_at < h.hour + interval '1 hour' "
    "UNION SELECT s.event_id FROM event_status s JOIN rec_hours h "
    "ON s.accepted_at >= h.hour AND s.accepted_at < h.hour + interval '1 hour'), "
    "pairs AS (SELECT e.event_id, coalesce(r.destination, '') AS destination, e.source, "
    "date_bin('1 hour', e.accepted_at, timestamptz '2000-01-01 00:00+00') AS hour "
    "FROM reconcile_events e JOIN ev USING (event_id) "
    "LEFT JOIN reconcile_routed r USING (event_id)), "
    "st AS (SELECT s.event_id, s.destination, s.source, "
    "date_bin('1 hour', s.accepted_at, timestamptz '2000-01-01 00:00+00') AS hour, "
    "s.state, s.stuck_at FROM event_status s JOIN ev USING (event_id)), "
    "j AS (SELECT coalesce(p.hour, s.hour) AS hour, coalesce(p.source, s.source) AS source, "
    "coalesce(p.destination, s.destination) AS destination, p.event_id IS NOT NULL AS acc, "
    "s.event_id IS NOT NULL AS has, s.state, s.stuck_at "
    "FROM pairs p FULL JOIN st s ON s.event_id = p.event_id AND s.destination = p.destination) "
    "SELECT hour, source, destination, "
    "count(*) FILTER (WHERE acc), "
    "count(*) FILTER (WHERE state = 'delivered'), "
    "count(*) FILTER (WHERE state = 'dead_lettered'), "
    "count(*) FILTER (WHERE state = 'filtered'), "
    "count(*) FILTER (WHERE state = 'duplicate'), "
    "count(*) FILTER (WHERE state = 'pending' AND stuck_at IS NULL), "
    "count(*) FILTER (WHERE state = 'pending' AND stuck_at IS NOT NULL), "
    "count(*) FILTER (WHERE acc AND NOT has), "
    "count(*) FILTER (WHERE has AND NOT acc) "
    "FROM j WHERE hour IN (SELECT hour FROM rec_hours) GROUP BY 1, 2, 3";

/* $1 run id. */
static const char hourly_sql[] =
    "INSERT INTO reconcile_hourly AS h (hour, source, destination, accepted, delivered, "
    "dead_lettered, filtered, duplicate, pending, stuck, explanation, run_id) "
    "SELECT hour, source, destination, accepted, delivered, dead_lettered, filtered, duplicate, "
    "pending, stuck, CASE WHEN missing > 0 OR extra > 0 THEN concat_ws('; ', "
    "CASE WHEN missing > 0 THEN missing || ' accepted event-destination pair(s) with no state in "
    "event_status (sluice-audit behind, or audit.event_status off)' END, "
    "CASE WHEN extra > 0 THEN extra || ' state(s) in event_status with no acceptance in the "
    "audit trail (a validate or route record missing, or not read yet)' END) END, "
    "$1::bigint FROM rec_result "
    "ON CONFLICT (hour, source, destination) DO UPDATE SET accepted = EXCLUDED.accepted, "
    "delivered = EXCLUDED.delivered, dead_lettered = EXCLUDED.dead_lettered, "
    "filtered = EXCLUDED.filtered, duplicate = EXCLUDED.duplicate, pending = EXCLUDED.pending, "
    "stuck = EXCLUDED.stuck, explanation = EXCLUDED.explanation, run_id = EXCLUDED.run_id, "
    "updated_at = now()";

static const char hourly_stale_sql[] =
    "DELETE FROM reconcile_hourly h USING rec_hours x WHERE h.hour = x.hour AND NOT EXISTS "
    "(SELECT 1 FROM rec_result r WHERE r.hour = h.hour AND r.source = h.source "
    "AND r.destination = h.destination)";

/* Pairs looked at, hours out of balance, sum of |unexplained|, the window of hours, and the
 * stuck pairs now. */
static const char summary_sql[] =
    "SELECT coalesce(sum(accepted), 0), count(*) FILTER (WHERE missing > 0 OR extra > 0 OR "
    "accepted <> delivered + dead_lettered + filtered + duplicate + pending + stuck), "
    "coalesce(sum(abs(accepted - delivered - dead_lettered - filtered - duplicate - pending - "
    "stuck)), 0), min(hour), max(hour) + interval '1 hour', "
    "(SELECT count(*) FROM event_status WHERE state = 'pending' AND stuck_at IS NOT NULL) "
    "FROM rec_result";

/* $1 id, $2 status, $3 events, $4 stuck, $5 $6 window (NULL: keep), $7 dead_letter_id,
 * $8 dead_letters, $9 alerts, $10 message. */
static const char run_finish_sql[] =
    "UPDATE reconcile_runs SET finished_at = clock_timestamp(), status = $2, events = "
    "$3::bigint, stuck = $4::bigint, window_from = coalesce($5::timestamptz, window_from), "
    "window_to = coalesce($6::timestamptz, window_to), dead_letter_id = $7::bigint, "
    "dead_letters = $8::bigint, alerts = $9::bigint, message = $10 WHERE id = $1::bigint";

static const char run_failed_sql[] =
    "INSERT INTO reconcile_runs (window_from, window_to, read_from, read_to, finished_at, "
    "status, message) VALUES ($1::timestamptz, $2::timestamptz, $1::timestamptz, "
    "$2::timestamptz, clock_timestamp(), 'failed', $3)";

/* ---- helpers ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void copy_field(PGresult *res, int row, int col, char *buf, size_t size)
{
    snprintf(buf, size, "%s", PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

static long long int_field(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static void on_delivery(void *opaque, int32_t partition, int64_t offset, const struct sl_err *err)
{
    rec_t *r = opaque;
    (void)partition;
    (void)offset;
    if (err) {
        r->produce_failures++;
        r->produce_err = *err;
    }
}

/* Queues one alert (a CloudEvent of `type` with `data`, keyed by `key`) to the alert topic. */
static int send_alert(rec_t *r, const char *id, const char *type, const char *key, json_t *data,
                      struct sl_err *err)
{
    char at[SL_RECORD_TIME_MAX];
    struct sl_ce ce;
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8);
    char *value = data ? json_dumps(data, JSON_COMPACT) : NULL;
    int rc = -1;
    sl_ce_init(&ce);
    sl_record_time(at, sizeof(at));
    if (!value || strlen(value) > REC_ALERT_MAX) {
        sl_err_set(err, SL_ERR_NOMEM, "alert %s: cannot encode its data", id);
        goto out;
    }
    if (sl_ce_set(&ce, "specversion", "1.0", err) != 0 || sl_ce_set(&ce, "id", id, err) != 0 ||
        sl_ce_set(&ce, "source", REC_SOURCE, err) != 0 || sl_ce_set(&ce, "type", type, err) != 0 ||
        sl_ce_set(&ce, "time", at, err) != 0 ||
        sl_ce_set(&ce, "datacontenttype", "application/json", err) != 0 ||
        sl_ce_set(&ce, SL_CE_ROUTE, "reconcile-alerts", err) != 0 ||
        sl_ce_to_headers(&ce, hdrs, err) != 0)
        goto out;
    for (int tries = 0;; tries++) {
        if (sl_producer_send(r->producer, r->s.alert_topic, key, strlen(key), value, strlen(value),
                             hdrs, r, err) == 0) {
            hdrs = NULL; /* taken */
            break;
        }
        if (!err->retriable || tries >= 100)
            goto out;
        sl_producer_poll(r->producer, 100); /* a full queue drains as the broker acks */
    }
    rc = 0;
out:
    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
    free(value);
    sl_ce_free(&ce);
    return rc;
}

/* Books an alert as an event reconcile accepted and routed to the alert destination. */
static int book_alert(rec_t *r, const char *id, const char *type, struct sl_err *err)
{
    const char *params[] = {id, type, r->s.alert_destination};
    return sl_pg_exec(r->pg, book_alert_sql, 3, params, NULL, err);
}

/* ---- the steps ---- */

static int step_window(rec_t *r, struct run *run, char *prev_dlq, size_t prev_size,
                       struct sl_err *err)
{
    char overlap[48];
    PGresult *res = NULL;
    snprintf(overlap, sizeof(overlap), "%lld milliseconds", r->s.overlap_ms);
    const char *params[] = {overlap};
    if (sl_pg_exec(r->pg, lock_sql, 0, NULL, NULL, err) != 0 ||
        sl_pg_exec(r->pg, window_sql, 1, params, &res, err) != 0)
        return -1;
    copy_field(res, 0, 0, run->read_from, sizeof(run->read_from));
    copy_field(res, 0, 1, run->read_to, sizeof(run->read_to));
    copy_field(res, 0, 2, prev_dlq, prev_size);
    copy_field(res, 0, 3, run->dlq_id, sizeof(run->dlq_id));
    PQclear(res);
    res = NULL;
    const char *window[] = {run->read_from, run->read_to};
    if (sl_pg_exec(r->pg, run_insert_sql, 2, window, &res, err) != 0)
        return -1;
    copy_field(res, 0, 0, run->run_id, sizeof(run->run_id));
    PQclear(res);
    return 0;
}

static int step_books(rec_t *r, const struct run *run, struct sl_err *err)
{
    const char *window[] = {run->read_from, run->read_to};
    if (sl_pg_script(r->pg, temp_sql, NULL, err) != 0 ||
        sl_pg_exec(r->pg, touched_sql, 2, window, NULL, err) != 0 ||
        sl_pg_exec(r->pg, accepted_sql, 2, window, NULL, err) != 0 ||
        sl_pg_exec(r->pg, routed_sql, 2, window, NULL, err) != 0 ||
        sl_pg_exec(r->pg, unrouted_sql, 0, NULL, NULL, err) != 0 ||
        sl_pg_exec(r->pg, routed_away_sql, 0, NULL, NULL, err) != 0)
        return -1;
    return 0;
}

static int step_stuck(rec_t *r, struct run *run, struct sl_err *err)
{
    char deadline[48], limit[16], deadline_s[32];
    PGresult *res = NULL;
    int rc = -1;
    snprintf(deadline, sizeof(deadline), "%lld milliseconds", r->s.deadline_ms);
    snprintf(limit, sizeof(limit), "%d", REC_ALERTS_MAX);
    snprintf(deadline_s, sizeof(deadline_s), "%lld", r->s.deadline_ms / 1000);
    const char *params[] = {deadline, limit};
    if (sl_pg_exec(r->pg, stuck_sql, 2, params, &res, err) != 0)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *event_id = PQgetvalue(res, i, 0), *dest = PQgetvalue(res, i, 1),
                   *source = PQgetvalue(res, i, 2), *alert_id = PQgetvalue(res, i, 8);
        sl_log(SL_LOG_WARN, event_id, "stuck: accepted %s, still pending for %s",
               PQgetvalue(res, i, 5), dest[0] ? dest : "routing");
        if (!r->producer || strcmp(source, REC_SOURCE) == 0)
            continue; /* no alerts, or the pair is an alert: its destination is the stuck one */
        json_t *data =
            json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s, s:s, s:I, s:I}", "event_id", event_id,
                      "source", source, "destination", dest, "type",
                      PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3), "route",
                      PQgetisnull(res, i, 4) ? NULL : PQgetvalue(res, i, 4), "accepted_at",
                      PQgetvalue(res, i, 5), "stuck_at", PQgetvalue(res, i, 6), "age_seconds",
                      (json_int_t)int_field(res, i, 7), "deadline_seconds",
                      (json_int_t)(r->s.deadline_ms / 1000));
        int sent = send_alert(r, alert_id, "sluice.alert.stuck", event_id, data, err);
        json_decref(data);
        if (sent != 0 || book_alert(r, alert_id, "sluice.alert.stuck", err) != 0)
            goto out;
        run->alerts++;
        sl_series_add(r->m_alert_stuck, 1);
    }
    rc = 0;
out:
    PQclear(res);
    return rc;
}

static int step_dlq(rec_t *r, struct run *run, const char *prev_dlq, struct sl_err *err)
{
    PGresult *res = NULL;
    int rc = -1;
    if (!prev_dlq[0])
        return 0; /* the first run takes the baseline: run->dlq_id */
    const char *params[] = {prev_dlq, run->dlq_id};
    if (sl_pg_exec(r->pg, dlq_sql, 2, params, &res, err) != 0)
        return -1;
    run->dead_letters = int_field(res, 0, 0);
    if (run->dead_letters > r->s.dlq_growth)
        SL_WARN("dead letters: %lld new since the last run (threshold %lld)", run->dead_letters,
                r->s.dlq_growth);
    if (run->dead_letters > r->s.dlq_growth && r->producer) {
        const char *alert_id = PQgetvalue(res, 0, 2);
        json_t *data =
            json_pack("{s:I, s:I, s:o?, s:s, s:s, s:s}", "new_dead_letters",
                      (json_int_t)run->dead_letters, "threshold", (json_int_t)r->s.dlq_growth,
                      "by_stage", json_loads(PQgetvalue(res, 0, 1), 0, NULL), "after_id", prev_dlq,
                      "through_id", run->dlq_id, "at", PQgetvalue(res, 0, 3));
        int sent = send_alert(r, alert_id, "sluice.alert.dlq_growth", "dlq", data, err);
        json_decref(data);
        if (sent != 0 || book_alert(r, alert_id, "sluice.alert.dlq_growth", err) != 0)
            goto out;
        run->alerts++;
        sl_series_add(r->m_alert_dlq, 1);
    }
    rc = 0;
out:
    PQclear(res);
    return rc;
}

static int step_circuit(rec_t *r, struct run *run, struct sl_err *err)
{
    char limit[16];
    PGresult *res = NULL;
    int rc = -1;
    snprintf(limit, sizeof(limit), "%d", REC_ALERTS_MAX);
    const char *params[] = {run->read_from, run->read_to, limit};
    if (sl_pg_exec(r->pg, circuit_sql, 3, params, &res, err) != 0)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *dest = PQgetvalue(res, i, 0), *alert_id = PQgetvalue(res, i, 3);
        SL_WARN("circuit of destination %s opened at %s", dest, PQgetvalue(res, i, 2));
        /* The alert destination's own circuit: an alert to it would wait behind that circuit. */
        if (!r->producer || strcmp(dest, r->s.alert_destination) == 0)
            continue;
        json_t *data = json_pack("{s:s, s:s, s:s}", "destination", dest, "reason",
                                 PQgetvalue(res, i, 1), "at", PQgetvalue(res, i, 2));
        int sent = send_alert(r, alert_id, "sluice.alert.circuit_open", dest, data, err);
        json_decref(data);
        if (sent != 0 || book_alert(r, alert_id, "sluice.alert.circuit_open", err) != 0)
            goto out;
        run->alerts++;
        sl_series_add(r->m_alert_circuit, 1);
    }
    rc = 0;
out:
    PQclear(res);
    return rc;
}

static int step_hourly(rec_t *r, struct run *run, struct sl_err *err)
{
    PGresult *res = NULL;
    char events[32], stuck[32], dead[32], alerts[32], from[TIME_TEXT_MAX], to[TIME_TEXT_MAX];
    char message[160];
    const char *id[] = {run->run_id};
    if (sl_pg_exec(r->pg, hours_sql, 0, NULL, NULL, err) != 0 ||
        sl_pg_exec(r->pg, result_sql, 0, NULL, NULL, err) != 0 ||
        sl_pg_exec(r->pg, hourly_sql, 1, id, NULL, err) != 0 ||
        sl_pg_exec(r->pg, hourly_stale_sql, 0, NULL, NULL, err) != 0 ||
        sl_pg_exec(r->pg, summary_sql, 0, NULL, &res, err) != 0)
        return -1;
    run->events = int_field(res, 0, 0);
    run->unbalanced_hours = int_field(res, 0, 1);
    run->unexplained = int_field(res, 0, 2);
    copy_field(res, 0, 3, from, sizeof(from));
    copy_field(res, 0, 4, to, sizeof(to));
    run->stuck = int_field(res, 0, 5);
    PQclear(res);
    snprintf(events, sizeof(events), "%lld", run->events);
    snprintf(stuck, sizeof(stuck), "%lld", run->stuck);
    snprintf(dead, sizeof(dead), "%lld", run->dead_letters);
    snprintf(alerts, sizeof(alerts), "%lld", run->alerts);
    snprintf(message, sizeof(message),
             "%lld pairs, %lld stuck, %lld hour rows out of balance, %lld new dead letters, %lld "
             "alerts",
             run->events, run->stuck, run->unbalanced_hours, run->dead_letters, run->alerts);
    const char *params[] = {run->run_id,
                            run->unbalanced_hours ? "unbalanced" : "balanced",
                            events,
                            stuck,
                            from[0] ? from : NULL,
                            to[0] ? to : NULL,
                            run->dlq_id,
                            dead,
                            alerts,
                            message};
    return sl_pg_exec(r->pg, run_finish_sql, 10, params, NULL, err);
}

/* The alerts of the run acknowledged by the broker, before the COMMIT. */
static int flush_alerts(rec_t *r, const struct run *run, struct sl_err *err)
{
    if (!r->producer || run->alerts == 0)
        return 0;
    if (sl_producer_flush(r->producer, REC_FLUSH_MS, err) != 0)
        return -1;
    if (r->produce_failures) {
        *err = r->produce_err;
        err->retriable = true; /* the next run sends them again, with the same ids */
        return -1;
    }
    return 0;
}

static void set_ready(rec_t *r, bool ok, const char *why)
{
    pthread_mutex_lock(&r->lock);
    r->ok = ok;
    snprintf(r->why, sizeof(r->why), "%s", why);
    pthread_mutex_unlock(&r->lock);
}

/* After a rolled-back run: a failed row, so operators see it (best effort: Postgres may be
 * the reason). */
static void record_failure(rec_t *r, const struct run *run, const struct sl_err *why)
{
    struct sl_err err;
    if (!run->read_from[0])
        return;
    const char *params[] = {run->read_from, run->read_to, why->msg};
    if (sl_pg_exec(r->pg, run_failed_sql, 3, params, NULL, &err) != 0)
        SL_DEBUG("cannot record the failed run: %s", err.msg);
}

int rec_run(rec_t *r, struct sl_err *err)
{
    struct run run = {0};
    char prev_dlq[32] = "";
    double started = now_s();
    r->produce_failures = 0;
    if (sl_pg_begin(r->pg, err) != 0 ||
        step_window(r, &run, prev_dlq, sizeof(prev_dlq), err) != 0 ||
        step_books(r, &run, err) != 0 || step_stuck(r, &run, err) != 0 ||
        step_dlq(r, &run, prev_dlq, err) != 0 || step_circuit(r, &run, err) != 0 ||
        step_hourly(r, &run, err) != 0 || flush_alerts(r, &run, err) != 0 ||
        sl_pg_commit(r->pg, err) != 0)
        goto fail;
    sl_series_set(r->m_stuck, (double)run.stuck);
    sl_series_set(r->m_unexplained, (double)run.unexplained);
    sl_series_add(run.unbalanced_hours ? r->m_unbalanced : r->m_balanced, 1);
    sl_series_observe(r->m_seconds, now_s() - started);
    set_ready(r, true, "");
    SL_INFO("run %s: %lld pairs, %lld stuck, %lld hour rows out of balance, %lld alerts",
            run.run_id, run.events, run.stuck, run.unbalanced_hours, run.alerts);
    return 0;
fail:
    sl_pg_rollback(r->pg);
    record_failure(r, &run, err);
    sl_series_add(r->m_failed, 1);
    set_ready(r, false, err->msg);
    return -1;
}

bool rec_ready(void *opaque, char *why, size_t size)
{
    rec_t *r = opaque;
    pthread_mutex_lock(&r->lock);
    bool ok = r->ok;
    snprintf(why, size, "%s", r->ok ? "" : r->why);
    pthread_mutex_unlock(&r->lock);
    return ok;
}

/* ---- settings and life ---- */

int rec_settings_load(const sl_conf_t *conf, const struct sl_kafka_settings *kafka,
                      struct rec_settings *s, struct sl_err *err)
{
    const sl_conf_node_t *sec = sl_conf_get(sl_conf_root(conf), "reconcile");
    const sl_conf_node_t *alerts = sec ? sl_conf_get(sec, "alerts") : NULL;
    const char *dest = NULL;
    memset(s, 0, sizeof(*s));
    if (sl_conf_duration_ms(conf, sec, "interval", 60000, 1000, 86400000, &s->interval_ms, err) ||
        sl_conf_duration_ms(conf, sec, "deadline", 3600000, 1000, 2592000000LL, &s->deadline_ms,
                            err) ||
        sl_conf_duration_ms(conf, sec, "overlap", 300000, 0, 86400000, &s->overlap_ms, err) ||
        sl_conf_duration_ms(conf, sec, "lag_interval", 15000, 1000, 3600000, &s->lag_interval_ms,
                            err) ||
        sl_conf_int(conf, alerts, "dlq_growth", 10, 0, 1000000000, &s->dlq_growth, err) ||
        sl_conf_str(conf, alerts, "destination", NULL, &dest, err))
        return -1;
    if (!dest || !*dest)
        return 0;
    const sl_conf_node_t *dests = sl_conf_get(sl_conf_root(conf), "destinations");
    if (!dests || !sl_conf_get(dests, dest))
        return sl_conf_error(conf, sl_conf_get(alerts, "destination"), err,
                             "'%s' is not a configured destination", dest);
    char name[SL_TOPIC_NAME_MAX];
    snprintf(s->alert_destination, sizeof(s->alert_destination), "%s", dest);
    snprintf(name, sizeof(name), SL_TOPIC_DELIVER "%s", dest);
    if (sl_kafka_topic_name(kafka, name, s->alert_topic, sizeof(s->alert_topic)) != 0)
        return sl_conf_error(conf, sl_conf_get(alerts, "destination"), err,
                             "the topic name of '%s' is too long", dest);
    return 0;
}

rec_t *rec_new(const struct rec_settings *s, const struct sl_kafka_settings *kafka, const char *dsn,
               sl_metrics_t *m, struct sl_err *err)
{
    rec_t *r = calloc(1, sizeof(*r));
    if (!r) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    r->s = *s;
    snprintf(r->why, sizeof(r->why), "no run yet");
    const struct sl_pg_opts opts = {.application_name = "sluice-reconcile"};
    if (!(r->pg = sl_pg_new(dsn, &opts, err)) ||
        (s->alert_topic[0] &&
         !(r->producer = sl_producer_new(kafka, "sluice-reconcile", on_delivery, err))))
        goto fail;
    sl_metric_t *stuck =
        sl_metrics_gauge(m, "sluice_reconcile_stuck_events",
                         "Event-destination pairs pending longer than reconcile.deadline.", NULL);
    sl_metric_t *unexplained = sl_metrics_gauge(
        m, "sluice_reconcile_unexplained",
        "Sum of |unexplained| over the hours the last run recomputed (0: the books balance).",
        NULL);
    sl_metric_t *runs = sl_metrics_counter(m, "sluice_reconcile_runs_total",
                                           "Runs, by status: balanced, unbalanced, failed.",
                                           (const char *const[]){"status", NULL});
    sl_metric_t *alerts =
        sl_metrics_counter(m, "sluice_reconcile_alerts_total", "Alert events produced, by type.",
                           (const char *const[]){"type", NULL});
    sl_metric_t *seconds =
        sl_metrics_histogram(m, "sluice_reconcile_run_seconds", "Time one successful run took.",
                             NULL, sl_metrics_latency_buckets, sl_metrics_latency_buckets_n);
    if (!stuck || !unexplained || !runs || !alerts || !seconds) {
        sl_err_set(err, SL_ERR_NOMEM, "cannot register the reconcile metrics");
        goto fail;
    }
    r->m_stuck = sl_metric_series(stuck, NULL);
    r->m_unexplained = sl_metric_series(unexplained, NULL);
    r->m_balanced = sl_metric_series(runs, (const char *const[]){"balanced"});
    r->m_unbalanced = sl_metric_series(runs, (const char *const[]){"unbalanced"});
    r->m_failed = sl_metric_series(runs, (const char *const[]){"failed"});
    r->m_alert_stuck = sl_metric_series(alerts, (const char *const[]){"stuck"});
    r->m_alert_dlq = sl_metric_series(alerts, (const char *const[]){"dlq_growth"});
    r->m_alert_circuit = sl_metric_series(alerts, (const char *const[]){"circuit_open"});
    r->m_seconds = sl_metric_series(seconds, NULL);
    return r;
fail:
    rec_destroy(r);
    return NULL;
}

void rec_destroy(rec_t *r)
{
    struct sl_err err;
    if (!r)
        return;
    if (r->producer && sl_producer_flush(r->producer, REC_FLUSH_MS, &err) != 0)
        SL_WARN("alerts not acknowledged at shutdown (the next run sends them again): %s", err.msg);
    sl_producer_destroy(r->producer);
    sl_pg_destroy(r->pg);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
