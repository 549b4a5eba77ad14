#include "ops_events.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_pg_query.h"
#include "sl_text.h"

/* The event's dead letters, oldest first, each with its replays. */
static const char dead_letters_sql[] =
    "SELECT coalesce(json_agg(json_build_object('id', d.id, 'stage', d.stage, "
    "'reason', d.reason, 'errors', d.errors, 'attempt', d.attempt, 'status', d.status, "
    "'received_at', d.received_at, 'status_at', d.status_at, 'status_by', d.status_by, "
    "'destination', d.headers->>'ce_sluicedestination', "
    "'replays', coalesce((SELECT json_agg(json_build_object('replayed_by', r.replayed_by, "
    "'replayed_at', r.replayed_at, 'to_stage', r.to_stage, 'to_topic', r.to_topic, "
    "'attempt', r.attempt, 'partition', r.partition, 'offset', r.kafka_offset) "
    "ORDER BY r.replayed_at, r.id) FROM dead_letter_replays r WHERE r.dead_letter_id = d.id), "
    "'[]')) ORDER BY d.received_at, d.id), '[]') "
    "FROM (SELECT * FROM dead_letters WHERE event_id = $1 ORDER BY id LIMIT $2::integer) AS d";

/* Its state per destination, as sluice-audit and sluice-reconcile keep it. */
static const char status_sql[] =
    "SELECT coalesce(json_agg(json_build_object('destination', destination, 'state', state, "
    "'route', route, 'accepted_at', accepted_at, 'terminal_at', terminal_at, "
    "'stuck_at', stuck_at) ORDER BY destination), '[]') "
    "FROM event_status WHERE event_id = $1";

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static bool is(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* The summary entry of `dest` in `dests`, made on first use. Borrowed from `dests`. */
static json_t *dest_entry(json_t *dests, const char *dest)
{
    size_t i;
    json_t *d;
    json_array_foreach(dests, i, d)
    {
        if (is(str(d, "destination"), dest))
            return d;
    }
    d = json_pack("{s:s, s:s, s:i, s:n, s:n, s:n}", "destination", dest, "outcome", "pending",
                  "attempts", 0, "last_status", "at", "state");
    json_array_append_new(dests, d);
    return d;
}

/* The outcome per destination (see ops_events.h): from the route rows (destinations chosen),
 * the deliver rows (each attempt, the last one decides) and event_status. */
static json_t *destinations_of(json_t *timeline, json_t *status)
{
    json_t *dests = json_array();
    json_t *row, *before = NULL; /* the last row of a stage before deliver */
    size_t i, k;
    json_array_foreach(timeline, i, row)
    {
        const char *stage = str(row, "stage"), *outcome = str(row, "outcome");
        json_t *detail = json_object_get(row, "detail");
        if (!is(stage, "deliver")) {
            before = row;
            const json_t *to;
            json_array_foreach(json_object_get(detail, "destinations"), k, to)
            {
                if (json_is_string(to))
                    dest_entry(dests, json_string_value(to));
            }
            continue;
        }
        const char *name = str(row, "destination");
        if (!name)
            name = str(detail, "destination");
        if (!name)
            continue;
        json_t *d = dest_entry(dests, name);
        json_t *attempt = json_object_get(row, "attempt");
        if (json_integer_value(attempt) > json_integer_value(json_object_get(d, "attempts")))
            json_object_set(d, "attempts", attempt);
        if (json_is_integer(json_object_get(row, "status")))
            json_object_set(d, "last_status", json_object_get(row, "status"));
        json_object_set(d, "at", json_object_get(row, "at"));
        const char *o = is(outcome, "retry")       ? "retrying"
                        : is(outcome, "duplicate") ? "delivered"
                                                   : outcome;
        json_object_set_new(d, "outcome", json_string(o ? o : "unknown"));
    }
    /* Ended before any route took it further: the event as a whole. */
    const char *last = before ? str(before, "outcome") : NULL;
    if (is(last, "filtered") || is(last, "duplicate") || is(last, "dead_lettered")) {
        json_t *d = dest_entry(dests, "");
        json_object_set_new(d, "outcome", json_string(last));
        json_object_set(d, "at", json_object_get(before, "at"));
    }
    json_array_foreach(status, i, row)
    {
        json_t *d = dest_entry(dests, str(row, "destination") ? str(row, "destination") : "");
        json_object_set(d, "state", json_object_get(row, "state"));
    }
    return dests;
}

/* The first non-null `key` of the timeline's rows. */
static json_t *first_of(const json_t *timeline, const char *key)
{
    size_t i;
    const json_t *row;
    json_array_foreach(timeline, i, row)
    {
        if (json_is_string(json_object_get(row, key)))
            return json_object_get(row, key);
    }
    return json_null();
}

int ops_event_story(sl_pg_t *pg, const char *id, json_t **doc, struct sl_err *err)
{
    char limit[16];
    json_t *timeline = NULL, *dls = NULL, *status = NULL;
    int rc = -1;
    *doc = NULL;
    snprintf(limit, sizeof(limit), "%d", SL_PG_ROWS_MAX);
    const char *params[] = {id, limit};
    if (sl_pg_event_timeline(pg, id, &timeline, err) != 0 ||
        sl_pg_query_json(pg, dead_letters_sql, 2, params, &dls, err) != 0 ||
        sl_pg_query_json(pg, status_sql, 1, params, &status, err) != 0)
        goto out;
    if (json_array_size(timeline) == 0 && json_array_size(dls) == 0 &&
        json_array_size(status) == 0) {
        sl_err_set(err, SL_ERR_NOT_FOUND,
                   "event %s: not found (no audit rows, dead letters or status in %s)", id,
                   sl_pg_where(pg));
        goto out;
    }
    *doc = json_pack("{s:s, s:O, s:O, s:O, s:O, s:O, s:o}", "event_id", id, "source",
                     first_of(timeline, "source"), "type", first_of(timeline, "type"), "timeline",
                     timeline, "dead_letters", dls, "event_status", status, "destinations",
                     destinations_of(timeline, status));
    rc = *doc ? 0 : sl_err_set(err, SL_ERR_NOMEM, "out of memory");
out:
    json_decref(timeline);
    json_decref(dls);
    json_decref(status);
    return rc;
}

/* ---- the listing ---- */

/* A cursor is the hex of "<accepted_at>\n<event_id>\n<destination>" of a page's last row:
 * opaque to clients, checked here before it reaches SQL. */
static int cursor_make(const json_t *row, char *out, size_t size)
{
    char text[OPS_CURSOR_MAX / 2];
    int n = snprintf(text, sizeof(text), "%s\n%s\n%s", str(row, "accepted_at"),
                     str(row, "event_id"), str(row, "destination"));
    if (n < 0 || (size_t)n >= sizeof(text) || (size_t)n * 2 + 1 > size)
        return -1;
    for (int i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", (unsigned char)text[i]);
    return 0;
}

/* The three parts of a cursor into parts[] (pointing into buf). */
static int cursor_parse(const char *cursor, char *buf, size_t size, const char *parts[3])
{
    size_t len = strlen(cursor);
    if (len == 0 || len % 2 || len / 2 >= size ||
        sl_hex_decode(cursor, len, (unsigned char *)buf, len / 2) != 0)
        return -1;
    buf[len / 2] = '\0';
    char *a = strchr(buf, '\n'), *b = a ? strchr(a + 1, '\n') : NULL;
    if (!a || !b || memchr(buf, '\0', len / 2))
        return -1;
    *a = *b = '\0';
    parts[0] = buf;
    parts[1] = a + 1;
    parts[2] = b + 1;
    return 0;
}

static bool valid_state(const char *s)
{
    static const char *const states[] = {"pending",  "delivered", "dead_lettered",
                                         "filtered", "duplicate", "stuck"};
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
        if (strcmp(s, states[i]) == 0)
            return true;
    return false;
}

/* Each filter is ($n IS NULL OR ...), folded away when absent. q matches the event id, or the
 * idempotency key that validate recorded in its audit detail or that a dead letter carries; the
 * audit side is bounded by `since` when given. One row more than the page tells whether there
 * is a next one. */
static const char list_sql[] =
    "SELECT coalesce(json_agg(json_build_object('event_id', s.event_id, 'source', s.source,"
    " 'type', s.type, 'destination', s.destination, 'state', s.state, 'route', s.route,"
    " 'accepted_at', s.accepted_at, 'terminal_at', s.terminal_at, 'stuck_at', s.stuck_at)"
    " ORDER BY s.accepted_at DESC, s.event_id DESC, s.destination DESC), '[]') "
    "FROM (SELECT * FROM event_status"
    " WHERE ($1::text IS NULL OR source = $1) AND ($2::text IS NULL OR type = $2)"
    " AND ($3::text IS NULL OR destination = $3)"
    " AND ($4::text IS NULL OR CASE WHEN $4 = 'stuck' THEN state = 'pending' AND stuck_at IS NOT"
    "  NULL ELSE state = $4 END)"
    " AND ($5::timestamptz IS NULL OR accepted_at >= $5::timestamptz)"
    " AND ($6::timestamptz IS NULL OR accepted_at < $6::timestamptz)"
    " AND ($7::text IS NULL OR event_id = $7"
    "  OR event_id IN (SELECT a.event_id FROM audit a WHERE a.stage = 'validate'"
    "   AND a.detail->>'idempotency_key' = $7"
    "   AND ($5::timestamptz IS NULL OR a.at >= $5::timestamptz))"
    "  OR event_id IN (SELECT d.event_id FROM dead_letters d"
    "   WHERE d.headers->>'ce_idempotencykey' = $7))"
    " AND ($8::timestamptz IS NULL OR (accepted_at, event_id, destination) <"
    "  ($8::timestamptz, $9::text, $10::text))"
    " ORDER BY accepted_at DESC, event_id DESC, destination DESC LIMIT $11::integer) AS s";

int ops_event_filter_check(const struct ops_event_filter *f, struct sl_err *err)
{
    char buf[OPS_CURSOR_MAX];
    const char *after[3];
    if (f->limit < 0 || f->limit > OPS_LIMIT_MAX)
        return sl_err_set(err, SL_ERR_INVALID, "limit: use 1 to %d", OPS_LIMIT_MAX);
    if (f->state && !valid_state(f->state))
        return sl_err_set(err, SL_ERR_INVALID,
                          "state: use pending, delivered, dead_lettered, filtered, duplicate or "
                          "stuck");
    if (f->cursor && cursor_parse(f->cursor, buf, sizeof(buf), after) != 0)
        return sl_err_set(err, SL_ERR_INVALID, "cursor: not a cursor of this listing");
    return 0;
}

int ops_events_list(sl_pg_t *pg, const struct ops_event_filter *f, json_t **page,
                    struct sl_err *err)
{
    char buf[OPS_CURSOR_MAX], lim[16], next[OPS_CURSOR_MAX + 1];
    const char *after[3] = {NULL, NULL, NULL};
    json_t *items = NULL;
    *page = NULL;
    int limit = f->limit ? f->limit : OPS_LIMIT_DEFAULT;
    if (ops_event_filter_check(f, err) != 0)
        return -1;
    if (f->cursor)
        cursor_parse(f->cursor, buf, sizeof(buf), after);
    snprintf(lim, sizeof(lim), "%d", limit + 1);
    const char *params[] = {f->source, f->type,  f->destination, f->state, f->since, f->until,
                            f->q,      after[0], after[1],       after[2], lim};
    if (sl_pg_query_json(pg, list_sql, 11, params, &items, err) != 0)
        return -1;
    json_t *cursor = json_null();
    if (json_array_size(items) > (size_t)limit) {
        json_array_remove(items, (size_t)limit);
        if (cursor_make(json_array_get(items, (size_t)limit - 1), next, sizeof(next)) != 0) {
            json_decref(items);
            return sl_err_set(err, SL_ERR_INTERNAL, "a row too long for a cursor");
        }
        cursor = json_string(next);
    }
    *page = json_pack("{s:o, s:o}", "items", items, "next_cursor", cursor);
    return *page ? 0 : sl_err_set(err, SL_ERR_NOMEM, "out of memory");
}
