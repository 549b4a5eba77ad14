#include "pg_testenv.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sl_id.h"
#include "sl_pg_migrate.h"
#include "sl_test.h"

#define SCHEMAS_MAX 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char schemas[SCHEMAS_MAX][64];
static int nschemas;

const char *pg_test_base_dsn(void)
{
    const char *env = getenv("SLUICE_TEST_PG_DSN");
    return env && *env ? env : "postgresql://sluice:sluice@127.0.0.1:5432/sluice_test";
}

static void require(int rc, const char *what, const struct sl_err *err)
{
    if (rc != 0) {
        sl_test_fail(__FILE__, __LINE__, "%s: %s", what, err->msg);
        sl_test_abort_current();
    }
}

sl_pg_t *pg_test_handle(const char *dsn, int statement_timeout_ms)
{
    struct sl_err err;
    struct sl_pg_opts opts = {.statement_timeout_ms = statement_timeout_ms,
                              .application_name = "sluice-test"};
    sl_pg_t *pg = sl_pg_new(dsn, &opts, &err);
    require(pg ? 0 : -1, "sl_pg_new", &err);
    return pg;
}

void pg_test_exec(sl_pg_t *pg, const char *sql)
{
    struct sl_err err;
    require(sl_pg_exec(pg, sql, 0, NULL, NULL, &err), sql, &err);
}

static PGresult *first_row(sl_pg_t *pg, const char *sql)
{
    struct sl_err err;
    PGresult *r;
    require(sl_pg_exec(pg, sql, 0, NULL, &r, &err), sql, &err);
    if (PQntuples(r) < 1) {
        PQclear(r);
        sl_test_fail(__FILE__, __LINE__, "%s: no row", sql);
        sl_test_abort_current();
    }
    return r;
}

long long pg_test_int(sl_pg_t *pg, const char *sql)
{
    PGresult *r = first_row(pg, sql);
    long long v = PQgetisnull(r, 0, 0) ? -1 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

long long pg_test_wait_int(sl_pg_t *pg, const char *sql, long long want)
{
    long long v = pg_test_int(pg, sql);
    for (int i = 0; v != want && i < 900; i++) {
        usleep(100000);
        v = pg_test_int(pg, sql);
    }
    return v;
}

const char *pg_test_str(sl_pg_t *pg, const char *sql, char *buf, size_t size)
{
    PGresult *r = first_row(pg, sql);
    snprintf(buf, size, "%s", PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0));
    PQclear(r);
    return buf;
}

void pg_test_schema(char *schema, char *dsn)
{
    char id[SL_UUID_STR_LEN + 1], hex[33], sql[160];
    sl_uuid_v7(id);
    size_t n = 0;
    for (const char *p = id; *p && n < 32; p++)
        if (*p != '-')
            hex[n++] = *p;
    hex[n] = '\0';
    snprintf(schema, 64, "sluice_test_%s", hex);
    const char *base = pg_test_base_dsn();
    /* The schema goes in the connection's options, as an operator would write it. */
    if (strncmp(base, "postgres://", 11) == 0 || strncmp(base, "postgresql://", 13) == 0)
        snprintf(dsn, PG_TEST_DSN_MAX, "%s%coptions=-csearch_path%%3D%s", base,
                 strchr(base, '?') ? '&' : '?', schema);
    else
        snprintf(dsn, PG_TEST_DSN_MAX, "%s options='-csearch_path=%s'", base, schema);

    sl_pg_t *pg = pg_test_handle(base, 0);
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schema);
    pg_test_exec(pg, sql);
    sl_pg_destroy(pg);
    pthread_mutex_lock(&lock);
    if (nschemas < SCHEMAS_MAX)
        snprintf(schemas[nschemas++], sizeof(schemas[0]), "%s", schema);
    pthread_mutex_unlock(&lock);
}

void pg_test_cleanup(void)
{
    struct sl_err err;
    char sql[160];
    sl_pg_t *pg = sl_pg_new(pg_test_base_dsn(), NULL, &err);
    for (int i = 0; pg && i < nschemas; i++) {
        snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", schemas[i]);
        if (sl_pg_exec(pg, sql, 0, NULL, NULL, &err) != 0)
            fprintf(stderr, "cleanup: %s\n", err.msg);
    }
    sl_pg_destroy(pg);
    nschemas = 0;
}

void pg_test_migrate(sl_pg_t *pg)
{
    struct sl_err err;
    struct sl_pg_migrate_result res;
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/schemas/sql", sl_test_source_dir());
    require(sl_pg_migrate(pg, dir, false, NULL, NULL, &res, &err), "migrate", &err);
}
