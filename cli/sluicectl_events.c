#include "sluicectl_events.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops_events.h"
#include "sl_pg.h"
#include "sl_pipeline.h"
#include "sluicectl_common.h"

#define EXIT_USAGE 2
#define DETAIL_MAX 512 /* bytes of one DETAIL cell in the text output */
#define ERRORS_MAX 3   /* errors of a row spelled out in the text output */

static const char usage[] =
    "usage: sluicectl [--config FILE] events show ID [-o json|table]\n"
    "  the event's timeline from the audit database: every stage's decision, each delivery\n"
    "  attempt (destination, attempt, HTTP status, latency), its dead letters and replays, and\n"
    "  the outcome per destination\n";

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static bool is(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
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

int sluicectl_events_show(const char *config, int argc, char **argv)
{
    const char *id = NULL;
    enum ctl_output output = CTL_OUTPUT_TABLE;
    for (int i = 1; i < argc; i++) {
        int o = ctl_output_arg("events show", argc, argv, &i, &output);
        if (o < 0)
            return EXIT_USAGE;
        if (o > 0) {
            continue;
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
    sl_conf_t *conf = NULL;
    sl_pg_t *pg = NULL;
    json_t *doc = NULL;
    int rc = EXIT_USAGE;
    if (config && !(conf = sl_pipeline_load(config, &err)))
        goto fail;
    rc = EXIT_FAILURE;
    if (!(pg = ctl_pg_open(conf, 0, &err)) || ops_event_story(pg, id, &doc, &err) != 0)
        goto fail;
    ctl_print(doc, output, print_text);
    rc = EXIT_SUCCESS;
    goto out;
fail:
    fprintf(stderr, "sluicectl events show: %s\n", err.msg);
out:
    json_decref(doc);
    sl_pg_destroy(pg);
    sl_conf_destroy(conf);
    return rc;
}
