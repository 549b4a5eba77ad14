#include "sluicectl_reconcile.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "record.h"
#include "sl_conf.h"
#include "sl_pg.h"
#include "sl_pg_query.h"
#include "sl_pipeline.h"
#include "sluicectl_common.h"

#define EXIT_USAGE     2
#define US_PER_HOUR    3600000000LL
#define STUCK_ROWS_MAX 1000 /* stuck pairs listed at most */

static const char usage[] = "usage: sluicectl [--config FILE] reconcile report [--since TIME] "
                            "[-o json|table]\n"
                            "  TIME: RFC 3339 (2026-11-24T17:00:00Z) or a duration back from now "
                            "(24h, 90m, 7d); default 24h\n";

/* The count columns of reconcile_hourly, in report order. */
static const char *const counts[] = {"accepted",  "delivered", "dead_lettered", "filtered",
                                     "duplicate", "pending",   "stuck",         "unexplained"};
#define N_COUNTS (sizeof(counts) / sizeof(counts[0]))

static const char stuck_sql[] =
    "SELECT coalesce(json_agg(json_build_object('event_id', event_id, 'source', source, "
    "'destination', destination, 'accepted_at', accepted_at, 'stuck_at', stuck_at, "
    "'age_seconds', floor(extract(epoch FROM now() - accepted_at))::bigint) "
    "ORDER BY accepted_at, event_id, destination), '[]')::text FROM (SELECT * FROM event_status "
    "WHERE state = 'pending' AND stuck_at IS NOT NULL AND accepted_at >= $1::timestamptz "
    "ORDER BY accepted_at, event_id, destination LIMIT $2::integer) AS s";

static const char last_run_sql[] =
    "SELECT json_build_object('id', id, 'started_at', started_at, 'finished_at', finished_at, "
    "'status', status, 'events', events, 'stuck', stuck, 'message', message)::text "
    "FROM reconcile_runs WHERE status <> 'running' ORDER BY id DESC LIMIT 1";

static json_t *totals_of(const json_t *hours)
{
    json_t *totals = json_object();
    long long sum[N_COUNTS] = {0};
    size_t i;
    const json_t *row;
    json_array_foreach(hours, i, row)
    {
        for (size_t c = 0; c < N_COUNTS; c++)
            sum[c] += json_integer_value(json_object_get(row, counts[c]));
    }
    for (size_t c = 0; c < N_COUNTS; c++)
        json_object_set_new(totals, counts[c], json_integer(sum[c]));
    return totals;
}

static const char *dest_text(const json_t *row)
{
    const char *d = json_string_value(json_object_get(row, "destination"));
    return d && *d ? d : "-";
}

static void print_counts(const json_t *row)
{
    for (size_t c = 0; c < N_COUNTS; c++)
        printf(" %13lld", (long long)json_integer_value(json_object_get(row, counts[c])));
    printf("\n");
}

static void print_text(const json_t *report)
{
    const json_t *hours = json_object_get(report, "hours");
    const json_t *row;
    size_t i;
    printf("reconciliation since %s\n\n", json_string_value(json_object_get(report, "since")));
    printf("%-26s %-20s %-20s", "HOUR", "SOURCE", "DESTINATION");
    for (size_t c = 0; c < N_COUNTS; c++) {
        char head[32];
        snprintf(head, sizeof(head), "%s", counts[c]);
        for (char *p = head; *p; p++)
            *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
        printf(" %13s", head);
    }
    printf("\n");
    json_array_foreach(hours, i, row)
    {
        printf("%-26s %-20s %-20s", json_string_value(json_object_get(row, "hour")),
               json_string_value(json_object_get(row, "source")), dest_text(row));
        print_counts(row);
    }
    printf("%-26s %-20s %-20s", "TOTAL", "", "");
    print_counts(json_object_get(report, "totals"));
    json_array_foreach(hours, i, row)
    {
        const char *why = json_string_value(json_object_get(row, "explanation"));
        if (why)
            printf("  %s %s -> %s: %s\n", json_string_value(json_object_get(row, "hour")),
                   json_string_value(json_object_get(row, "source")), dest_text(row), why);
    }
    const json_t *stuck = json_object_get(report, "stuck");
    printf("\nstuck: %zu\n", json_array_size(stuck));
    if (json_array_size(stuck) > 0)
        printf("%-40s %-20s %-20s %-34s %s\n", "EVENT", "SOURCE", "DESTINATION", "ACCEPTED_AT",
               "AGE");
    json_array_foreach(stuck, i, row)
    {
        long long age = json_integer_value(json_object_get(row, "age_seconds"));
        printf("%-40s %-20s %-20s %-34s %lldh%02lldm%02llds\n",
               json_string_value(json_object_get(row, "event_id")),
               json_string_value(json_object_get(row, "source")), dest_text(row),
               json_string_value(json_object_get(row, "accepted_at")), age / 3600, age / 60 % 60,
               age % 60);
    }
    const json_t *last = json_object_get(report, "last_run");
    if (json_is_object(last))
        printf("\nlast run: #%lld %s at %s: %s\n",
               (long long)json_integer_value(json_object_get(last, "id")),
               json_string_value(json_object_get(last, "status")),
               json_string_value(json_object_get(last, "finished_at")),
               json_string_value(json_object_get(last, "message"))
                   ? json_string_value(json_object_get(last, "message"))
                   : "");
    else
        printf("\nlast run: none (is sluice-reconcile running?)\n");
}

int sluicectl_reconcile_report(const char *config, int argc, char **argv)
{
    const char *since_opt = "24h";
    enum ctl_output output = CTL_OUTPUT_TABLE;
    int64_t since_us;
    for (int i = 1; i < argc; i++) {
        int o = ctl_output_arg("reconcile report", argc, argv, &i, &output);
        if (o < 0)
            return EXIT_USAGE;
        if (o > 0) {
            continue;
        } else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) {
            since_opt = argv[++i];
        } else {
            fprintf(stderr, "sluicectl reconcile report: unexpected argument '%s'\n%s", argv[i],
                    usage);
            return EXIT_USAGE;
        }
    }
    /* The hour TIME falls in: the books are kept per hour. */
    if (ctl_parse_time(since_opt, &since_us) != 0) {
        fprintf(stderr,
                "sluicectl reconcile report: --since '%s' is neither an RFC 3339 time nor a "
                "duration (24h, 90m, 7d)\n",
                since_opt);
        return EXIT_USAGE;
    }
    since_us -= since_us % US_PER_HOUR;
    struct sl_err err;
    char since[AUDIT_TIME_MAX], limit[16];
    sl_conf_t *conf = NULL;
    sl_pg_t *pg = NULL;
    json_t *hours = NULL, *stuck = NULL, *last = NULL, *out = NULL;
    int rc = EXIT_USAGE;
    if (config && !(conf = sl_pipeline_load(config, &err)))
        goto fail;
    if (!(pg = ctl_pg_open(conf, 0, &err)))
        goto fail;
    rc = EXIT_FAILURE;
    audit_time_format(since_us, since, sizeof(since));
    snprintf(limit, sizeof(limit), "%d", STUCK_ROWS_MAX);
    const char *params[] = {since, limit};
    if (sl_pg_reconcile_hourly(pg, since, NULL, NULL, NULL, &hours, &err) != 0 ||
        ctl_query_json(pg, stuck_sql, 2, params, &stuck, &err) != 0 ||
        ctl_query_json(pg, last_run_sql, 0, NULL, &last, &err) != 0)
        goto fail;
    out = json_pack("{s:s, s:O, s:o, s:O, s:O?}", "since", since, "hours", hours, "totals",
                    totals_of(hours), "stuck", stuck, "last_run", last);
    if (!out) {
        sl_err_set(&err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    ctl_print(out, output, print_text);
    rc = EXIT_SUCCESS;
    goto out;
fail:
    fprintf(stderr, "sluicectl reconcile report: %s\n", err.msg);
out:
    json_decref(out);
    json_decref(hours);
    json_decref(stuck);
    json_decref(last);
    sl_pg_destroy(pg);
    sl_conf_destroy(conf);
    return rc;
}
