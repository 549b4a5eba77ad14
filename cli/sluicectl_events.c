#include "sluicectl_events.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_pg.h"
#include "sl_pg_query.h"
#include "sl_pipeline.h"
#include "sluicectl_common.h"

#define EXIT_USAGE 2
#define DETAIL_MAX 512 /* bytes of one DETAIL cell in the text output */
#define ERRORS_MAX 3   /* errors of a row spelled out in the text output */

static const char usage[] =
    "usage: sluicectl [--config FILE] events show ID [--json]\n"
    "  the event's timeline from the audit database: every stage's decision, each delivery\n"
    "  attempt (destination, attempt, HTTP status, latency), its dead letters and replays, and\n"
    "  the outcome per destination\n";

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
    "'[]')) ORDER BY d.received_at, d.id), '[]')::text "
    "FROM (SELECT * FROM dead_letters WHERE event_id = $1 ORDER BY id LIMIT $2::integer) AS d";

/* Its state per destination, as sluice-audit and sluice-reconcile keep it. */
static const char status_sql[] =
    "SELECT coalesce(json_agg(json_build_object('destination', destination, 'state', state, "
    "'route', route, 'accepted_at', accepted_at, 'terminal_at', terminal_at, "
    "'stuck_at', stuck_at) ORDER BY destination), '[]')::text "
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

/* The outcome per destination (see sluicectl_events.h): from the route rows (destinations
 * chosen), the deliver rows (each attempt, the last one decides) and event_status. */
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

/* Appends printf output to buf (size bytes), keeping what fits. */
__attribute__((format(printf, 4, 5))) static void cat(char *buf, size_t size, size_t *len,
                                                      const char *fmt, ...)
{
    if (*len >= size - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = *len + (size_t)n < size - 1 ? *len + (size_t)n : size - 1;
}

/* The DETAIL cell of one audit row. */
static void row_detail(const json_t *row, char *buf, size_t size)
{
    size_t len = 0;
    const json_t *detail = json_object_get(row, "detail"), *v;
    const char *reason = str(row, "reason");
    size_t i;
    buf[0] = '\0';
    if (is(str(row, "stage"), "deliver")) {
        const char *dest =
            str(row, "destination") ? str(row, "destination") : str(detail, "destination");
        cat(buf, size, &len, "%s", dest ? dest : "?");
        if (json_is_integer(json_object_get(row, "attempt")))
            cat(buf, size, &len, " attempt %lld",
                (long long)json_integer_value(json_object_get(row, "attempt")));
        if (json_is_integer(json_object_get(row, "status")))
            cat(buf, size, &len, ": HTTP %lld",
                (long long)json_integer_value(json_object_get(row, "status")));
        if (json_is_number(json_object_get(row, "latency_ms")))
            cat(buf, size, &len, ", %.1f ms",
                json_number_value(json_object_get(row, "latency_ms")));
    } else if (json_array_size(json_object_get(detail, "destinations")) > 0) {
        cat(buf, size, &len, "->");
        json_array_foreach(json_object_get(detail, "destinations"), i, v)
            cat(buf, size, &len, "%s %s", i ? "," : "", json_string_value(v));
        if (json_array_size(json_object_get(detail, "routes")) > 0) {
            cat(buf, size, &len, " (route");
            json_array_foreach(json_object_get(detail, "routes"), i, v)
                cat(buf, size, &len, "%s %s", i ? "," : "", json_string_value(v));
            cat(buf, size, &len, ")");
        }
    } else {
        /* Another stage's own members (validate: schema, dedup; transform: rule, ...), the
         * scalar ones as name=value. */
        const char *k;
        json_object_foreach((json_t *)detail, k, v)
        {
            if (json_is_string(v))
                cat(buf, size, &len, "%s%s=%s", len ? " " : "", k, json_string_value(v));
            else if (json_is_integer(v))
                cat(buf, size, &len, "%s%s=%lld", len ? " " : "", k,
                    (long long)json_integer_value(v));
            else if (json_is_boolean(v))
                cat(buf, size, &len, "%s%s=%s", len ? " " : "", k,
                    json_is_true(v) ? "true" : "false");
        }
    }
    if (reason && *reason)
        cat(buf, size, &len, "%s%s", len ? "; " : "", reason);
    if (str(detail, "error") && !is(str(detail, "error"), reason))
        cat(buf, size, &len, "%s%s", len ? "; " : "", str(detail, "error"));
    const json_t *errors = json_object_get(row, "errors");
    json_array_foreach(errors, i, v)
    {
        if (i == ERRORS_MAX) {
            cat(buf, size, &len, " ... and %zu more", json_array_size(errors) - i);
            break;
        }
        cat(buf, size, &len, "%s%s", len ? "; " : "", json_string_value(v));
    }
    /* Line breaks from a destination's answer would break the columns. */
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
}

static void print_text(const json_t *doc)
{
    const json_t *row, *r;
    size_t i, k;
    char detail[DETAIL_MAX];
    printf("event %s  source %s  type %s\n\n", str(doc, "event_id"),
           str(doc, "source") ? str(doc, "source") : "-",
           str(doc, "type") ? str(doc, "type") : "-");
    printf("%-32s  %-9s  %-13s  %s\n", "TIME", "STAGE", "OUTCOME", "DETAIL");
    json_array_foreach(json_object_get(doc, "timeline"), i, row)
    {
        row_detail(row, detail, sizeof(detail));
        printf("%-32s  %-9s  %-13s  %s\n", str(row, "at"), str(row, "stage"), str(row, "outcome"),
               detail);
    }
    const json_t *dls = json_object_get(doc, "dead_letters");
    if (json_array_size(dls) > 0)
        printf("\ndead letters:\n");
    json_array_foreach(dls, i, row)
    {
        printf("  #%lld  %s  at %s%s%s (attempt %lld): %s  [%s]\n",
               (long long)json_integer_value(json_object_get(row, "id")), str(row, "received_at"),
               str(row, "stage"), str(row, "destination") ? " -> " : "",
               str(row, "destination") ? str(row, "destination") : "",
               (long long)json_integer_value(json_object_get(row, "attempt")), str(row, "reason"),
               str(row, "status"));
        json_array_foreach(json_object_get(row, "replays"), k, r) printf(
            "      replayed %s by %s to %s (%s [%lld] @%lld), attempt %lld\n",
            str(r, "replayed_at"), str(r, "replayed_by"), str(r, "to_stage"), str(r, "to_topic"),
            (long long)json_integer_value(json_object_get(r, "partition")),
            (long long)json_integer_value(json_object_get(r, "offset")),
            (long long)json_integer_value(json_object_get(r, "attempt")));
    }
    printf("\n");
    json_array_foreach(json_object_get(doc, "destinations"), i, row)
    {
        const char *name = str(row, "destination");
        printf("%-20s  %-13s", *name ? name : "(event)", str(row, "outcome"));
        long long attempts = json_integer_value(json_object_get(row, "attempts"));
        if (attempts > 0)
            printf("  after %lld attempt%s", attempts, attempts == 1 ? "" : "s");
        if (json_is_integer(json_object_get(row, "last_status")))
            printf(", last HTTP %lld",
                   (long long)json_integer_value(json_object_get(row, "last_status")));
        if (str(row, "at"))
            printf("  at %s", str(row, "at"));
        if (str(row, "state"))
            printf("  (event_status: %s)", str(row, "state"));
        printf("\n");
    }
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

static int show(const char *config, int argc, char **argv)
{
    const char *id = NULL;
    bool as_json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            as_json = true;
        } else if (argv[i][0] != '-' && !id) {
            id = argv[i];
        } else {
            fprintf(stderr, "sluicectl events show: unexpected argument '%s'\n%s", argv[i], usage);
            return EXIT_USAGE;
        }
    }
    if (!id || !*id) {
        fprintf(stderr, "sluicectl events show: no event id\n%s", usage);
        return EXIT_USAGE;
    }
    struct sl_err err;
    char limit[16];
    sl_conf_t *conf = NULL;
    sl_pg_t *pg = NULL;
    json_t *timeline = NULL, *dls = NULL, *status = NULL, *doc = NULL;
    int rc = EXIT_USAGE;
    if (config && !(conf = sl_pipeline_load(config, &err)))
        goto fail;
    rc = EXIT_FAILURE;
    if (!(pg = ctl_pg_open(conf, &err)))
        goto fail;
    snprintf(limit, sizeof(limit), "%d", SL_PG_ROWS_MAX);
    const char *params[] = {id, limit};
    if (sl_pg_event_timeline(pg, id, &timeline, &err) != 0 ||
        ctl_query_json(pg, dead_letters_sql, 2, params, &dls, &err) != 0 ||
        ctl_query_json(pg, status_sql, 1, params, &status, &err) != 0)
        goto fail;
    if (json_array_size(timeline) == 0 && json_array_size(dls) == 0 &&
        json_array_size(status) == 0) {
        fprintf(stderr,
                "sluicectl events show: event %s: not found (no audit rows, dead letters or "
                "status in %s)\n",
                id, sl_pg_where(pg));
        goto out;
    }
    doc = json_pack("{s:s, s:O, s:O, s:O, s:O, s:O, s:o}", "event_id", id, "source",
                    first_of(timeline, "source"), "type", first_of(timeline, "type"), "timeline",
                    timeline, "dead_letters", dls, "event_status", status, "destinations",
                    destinations_of(timeline, status));
    if (!doc) {
        sl_err_set(&err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    ctl_print(doc, as_json, print_text);
    rc = EXIT_SUCCESS;
    goto out;
fail:
    fprintf(stderr, "sluicectl events show: %s\n", err.msg);
out:
    json_decref(doc);
    json_decref(timeline);
    json_decref(dls);
    json_decref(status);
    sl_pg_destroy(pg);
    sl_conf_destroy(conf);
    return rc;
}

int sluicectl_events(const char *config, int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "show") == 0)
        return show(config, argc, argv);
    fprintf(stderr, "sluicectl events: unknown subcommand '%s'\n%s", argc ? argv[0] : "", usage);
    return EXIT_USAGE;
}
