#include "sluicectl_common.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "record.h"

#define PG_CONNECT_MIN_S 2 /* libpq's least connect_timeout */

static int timeout_ms; /* 0: --timeout not given */

void ctl_set_timeout_ms(int ms)
{
    timeout_ms = ms;
}

int ctl_timeout_ms(int fallback)
{
    return timeout_ms > 0 ? timeout_ms : fallback;
}

int ctl_output_arg(const char *cmd, int argc, char **argv, int *i, enum ctl_output *out)
{
    const char *a = argv[*i], *v;
    if (strcmp(a, "--json") == 0) {
        *out = CTL_OUTPUT_JSON;
        return 1;
    }
    if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0)
        v = *i + 1 < argc ? argv[++*i] : "";
    else if (strncmp(a, "--output=", 9) == 0)
        v = a + 9;
    else if (strncmp(a, "-o", 2) == 0)
        v = a + 2;
    else
        return 0;
    if (strcmp(v, "json") == 0)
        *out = CTL_OUTPUT_JSON;
    else if (strcmp(v, "table") == 0)
        *out = CTL_OUTPUT_TABLE;
    else {
        fprintf(stderr, "sluicectl %s: output format '%s': use -o json or -o table\n", cmd, v);
        return -1;
    }
    return 1;
}

sl_pg_t *ctl_pg_open(const sl_conf_t *conf, int statement_timeout_ms, struct sl_err *err)
{
    const char *dsn;
    struct sl_pg_opts opts = {.statement_timeout_ms = statement_timeout_ms,
                              .application_name = "sluicectl"};
    if (timeout_ms > 0) {
        /* libpq counts the connect timeout in whole seconds, at least 2. */
        int s = (timeout_ms + 999) / 1000;
        opts.connect_timeout_s = s < PG_CONNECT_MIN_S ? PG_CONNECT_MIN_S : s;
        opts.statement_timeout_ms = timeout_ms;
    }
    if (sl_pg_settings(conf, &dsn, err) != 0)
        return NULL;
    return sl_pg_new(dsn, &opts, err);
}

int ctl_query_json(sl_pg_t *pg, const char *sql, int n, const char *const *params, json_t **out,
                   struct sl_err *err)
{
    PGresult *res = NULL;
    *out = NULL;
    if (sl_pg_exec(pg, sql, n, params, &res, err) != 0)
        return -1;
    int rc = 0;
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)) {
        json_error_t jerr;
        if (!(*out = json_loads(PQgetvalue(res, 0, 0), 0, &jerr)))
            rc = sl_err_set(err, SL_ERR_INTERNAL, "%s: unreadable JSON from the database: %s",
                            sl_pg_where(pg), jerr.text);
    }
    PQclear(res);
    return rc;
}

int ctl_parse_time(const char *text, int64_t *us)
{
    long long ms;
    if (sl_conf_parse_duration_ms(text, &ms) == 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        *us = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000 - ms * 1000;
        return *us < 0 ? -1 : 0;
    }
    return audit_time_parse(text, us) != 0 ? -1 : 0;
}

void ctl_print(const json_t *doc, enum ctl_output output, void (*text)(const json_t *doc))
{
    if (output != CTL_OUTPUT_JSON) {
        text(doc);
        return;
    }
    json_dumpf(doc, stdout, JSON_COMPACT);
    printf("\n");
}
