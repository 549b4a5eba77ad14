/*
 * pg_testenv: what the PostgreSQL integration tests share.
 *
 * Every test run works in schemas of its own in the test database (SLUICE_TEST_PG_DSN, else
 * postgresql://sluice:sluice@127.0.0.1:5432/sluice_test, which the `services` fixture makes
 * sure exists): pg_test_schema() creates sluice_test_<random hex> and gives a DSN whose
 * search_path is that schema, so runs never see each other's tables; pg_test_cleanup() drops
 * every schema the process created (call it after sl_test_run_all()).
 *
 * Every helper fails the current test (and leaves it) when the database does not do what it
 * should.
 */
#ifndef PG_TESTENV_H
#define PG_TESTENV_H

#include <stddef.h>

#include "sl_pg.h"

#define PG_TEST_DSN_MAX 1024

/* The test database's DSN, without a schema. */
const char *pg_test_base_dsn(void);

/* A new empty schema; its name into schema[64], and a DSN that works in it into
 * dsn[PG_TEST_DSN_MAX]. */
void pg_test_schema(char *schema, char *dsn);

/* Drops the schemas this process created. */
void pg_test_cleanup(void);

/* A handle on `dsn` with `statement_timeout_ms` (0: the default). The caller destroys it. */
sl_pg_t *pg_test_handle(const char *dsn, int statement_timeout_ms);

/* Runs `sql` (no parameters), which must succeed. */
void pg_test_exec(sl_pg_t *pg, const char *sql);

/* The first column of the first row of `sql` as a number (NULL is -1) or as a string copied
 * into buf (NULL is ""). */
long long pg_test_int(sl_pg_t *pg, const char *sql);
const char *pg_test_str(sl_pg_t *pg, const char *sql, char *buf, size_t size);

/* Polls pg_test_int(sql) every 100 ms until it equals `want` (90 s at most): what a sink has
 * still to write. Returns the last value. */
long long pg_test_wait_int(sl_pg_t *pg, const char *sql, long long want);

/* Applies the repository's migrations (schemas/sql) through `pg`. */
void pg_test_migrate(sl_pg_t *pg);

#endif
