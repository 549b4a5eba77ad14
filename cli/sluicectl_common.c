#include "sluicectl_common.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <time.h>

#include "record.h"

sl_pg_t *ctl_pg_open(const sl_conf_t *conf, struct sl_err *err)
{
    const char *dsn;
    const struct sl_pg_opts opts = {.application_name = "sluicectl"};
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

void ctl_print(const json_t *doc, bool as_json, void (*text)(const json_t *doc))
{
    if (!as_json) {
        text(doc);
        return;
    }
    json_dumpf(doc, stdout, JSON_COMPACT);
    printf("\n");
}
