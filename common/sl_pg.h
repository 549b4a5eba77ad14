/*
 * sl_pg: the one PostgreSQL client every Sluice binary uses (libpq >= 14, synchronous).
 *
 * What it is for: the audit trail, dead letters and reconciliation (schemas/sql/). Writers
 * stream rows with COPY; the idempotent form copies into a per-session staging table and moves
 * the rows with INSERT ... ON CONFLICT DO NOTHING, so a batch written twice (a sink that
 * crashed after Postgres committed but before Kafka did) is stored once.
 *
 * Threads: a handle wraps one libpq connection, which must not be used by two threads at once.
 * Use one handle per thread; never share one.
 *
 * Connections: sl_pg_new() only checks the DSN; the first call connects (so a worker starts
 * while Postgres is down). Every connection gets a connect timeout, TCP keepalives (a dead
 * server or network is noticed in about 25 s even in the middle of a query), the statement
 * timeout, TimeZone UTC and a notice receiver that logs server notices at debug level.
 * Connection parameters written in the DSN (connect_timeout, keepalives_*, application_name)
 * win over the handle's defaults; the statement timeout is the handle's, set after connecting.
 * A lost connection is dropped and the next call connects again. There is no back-off and no
 * automatic retry inside: a command that failed with the connection may or may not have run,
 * and only the caller knows whether running it again is safe.
 *
 * Errors (every call returns 0 or -1 with *err; messages name the server as
 * "postgres HOST:PORT/DB" and never contain the password or a parameter value):
 *   - cannot connect (down, refused, timeout, and also a refused password: libpq reports no
 *     error code for a failed connection attempt, so the message is what tells them apart),
 *     connection lost, server shutting down or starting up (SQLSTATE class 08, 57P01-57P03),
 *     out of resources (class 53: disk full, too many connections): SL_ERR_UNAVAILABLE,
 *     retriable. Postgres is down or busy: wait and call again.
 *   - statement or lock timeout (57014, 55P03), serialization failure or deadlock (40001,
 *     40P01): SL_ERR_TIMEOUT, retriable; the transaction is rolled back, run it again.
 *   - bad credentials or missing privileges reported by a live server (class 28, 42501):
 *     SL_ERR_CONFIG, fatal.
 *   - any other SQL error: SL_ERR_INVALID, not retriable, with the server's message and SQLSTATE
 *     (not its DETAIL, which may quote row data).
 *
 * Transactions: when the connection is lost inside a transaction (begun with sl_pg_begin() or a
 * BEGIN of your own), the transaction is gone with it, and the handle refuses every call
 * (SL_ERR_UNAVAILABLE, retriable) until sl_pg_rollback(): statements the caller meant to run
 * inside the transaction never run in autocommit on a new connection by accident.
 */
#ifndef SL_PG_H
#define SL_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "sl_conf.h"
#include "sl_err.h"

#define SL_PG_DEFAULT_DSN "postgresql://127.0.0.1:5432/sluice"
/* Longest DSN accepted. */
#define SL_PG_DSN_MAX 4096
/* Bytes a COPY buffers before sending them to the server (rows may be larger: a row is sent in
 * as many pieces as it needs). */
#define SL_PG_COPY_BUF 65536
/* Staging tables one connection keeps (one per table written with sl_pg_upsert_begin). */
#define SL_PG_STAGING_MAX 8
/* Longest table name, column list and SQL fragment of an upsert spec. */
#define SL_PG_SQL_PART_MAX 2048

typedef struct sl_pg sl_pg_t;
typedef struct sl_pg_copy sl_pg_copy_t;

/* Options of a handle; zero members take the defaults. */
struct sl_pg_opts {
    int connect_timeout_s;        /* default 5 (libpq's minimum is 2) */
    int statement_timeout_ms;     /* default 30000; -1: none (migrations, maintenance) */
    const char *application_name; /* default "sluice"; shows in pg_stat_activity */
};

/* The `postgres` section of the pipeline file: *dsn is the file's `dsn`, else SLUICE_PG_DSN,
 * else SL_PG_DEFAULT_DSN. The DSN (a postgresql:// URI or key=value pairs) is checked here, so a
 * bad one fails at start-up naming the file and line (or SLUICE_PG_DSN). `conf` may be NULL
 * (environment and default only). *dsn is borrowed from `conf` or the environment. */
int sl_pg_settings(const sl_conf_t *conf, const char **dsn, struct sl_err *err);

/* A handle for `dsn` (copied; wiped on destroy). `opts` may be NULL. Does not connect. The caller
 * owns the handle (sl_pg_destroy). */
sl_pg_t *sl_pg_new(const char *dsn, const struct sl_pg_opts *opts, struct sl_err *err)
    __attribute__((warn_unused_result));
/* Closes the connection (rolling back any open transaction) and wipes the DSN. NULL is a no-op;
 * an open COPY must have been ended or aborted first. */
void sl_pg_destroy(sl_pg_t *pg);

/* "postgres HOST:PORT/DB", for messages. */
const char *sl_pg_where(const sl_pg_t *pg);

/* Connects now unless connected: for a start-up check or a readiness probe. */
int sl_pg_connect(sl_pg_t *pg, struct sl_err *err) __attribute__((warn_unused_result));

/* The number of the current session (1 for the handle's first connection, then 2, ...), or 0
 * while not connected. What lives in a session (advisory locks, temporary tables, SET) is gone
 * when this changes. */
unsigned long sl_pg_session(const sl_pg_t *pg);

/* ---- statements ---- */

/* Runs one statement with `nparams` text parameters ($1..$n; a NULL element is SQL NULL). On
 * success, when `res` is not NULL, *res is the result (PGRES_COMMAND_OK or PGRES_TUPLES_OK),
 * owned by the caller (PQclear); otherwise the result is freed. On failure *res is NULL. */
int sl_pg_exec(sl_pg_t *pg, const char *sql, int nparams, const char *const *params, PGresult **res,
               struct sl_err *err) __attribute__((warn_unused_result));

/* Runs a script of several statements (simple query protocol), as migrations are written.
 * No parameters, no results. On an SQL error, *line (when not NULL) is the 1-based line of
 * `sql` the server pointed at, or 0 when it gave no position. */
int sl_pg_script(sl_pg_t *pg, const char *sql, int *line, struct sl_err *err)
    __attribute__((warn_unused_result));

/* BEGIN, COMMIT, ROLLBACK. sl_pg_commit() fails (SL_ERR_INVALID) when the server rolled the
 * transaction back instead (an earlier statement of it had failed), and fails retriable when the
 * connection was lost during the commit: then whether it committed is unknown, which is why
 * writes through this module are idempotent. sl_pg_rollback() always leaves the handle outside
 * any transaction, connected or not, and clears a lost transaction. */
int sl_pg_begin(sl_pg_t *pg, struct sl_err *err) __attribute__((warn_unused_result));
int sl_pg_commit(sl_pg_t *pg, struct sl_err *err) __attribute__((warn_unused_result));
void sl_pg_rollback(sl_pg_t *pg);

/* ---- COPY ---- */

/* COPY `table` (`columns`) FROM STDIN in text format. `table` and `columns` are SQL written by
 * the caller (constants, never input), e.g. "audit", "at, stage, outcome". Fields go in with
 * the functions below, in column order; sl_pg_copy_row() ends each row. Until the copy is ended
 * or aborted, the handle takes no other call. The copy handle is owned by the caller and freed
 * by sl_pg_copy_end() or sl_pg_copy_abort(). */
sl_pg_copy_t *sl_pg_copy_begin(sl_pg_t *pg, const char *table, const char *columns,
                               struct sl_err *err) __attribute__((warn_unused_result));

/* An idempotent batch: rows are copied into `staging`, a temporary table made once per
 * connection with just `columns` (CREATE TEMP TABLE staging ON COMMIT DELETE ROWS AS SELECT
 * columns FROM table WITH NO DATA), and sl_pg_copy_end() moves them with
 *     INSERT INTO table (columns) SELECT columns FROM staging ON CONFLICT conflict DO NOTHING
 * so rows that are already there (the same batch written again) are skipped. `conflict` is the
 * arbiter, e.g. "(audit_topic, audit_partition, audit_offset, at)"; NULL skips rows that
 * violate any unique constraint. `before` (may be NULL) is a statement run after the COPY and
 * before the INSERT, e.g. to create the partitions the staged rows need.
 * Outside a transaction the batch is its own transaction (BEGIN here, COMMIT in
 * sl_pg_copy_end()); inside the caller's transaction it joins it (and empties the staging table
 * after the move), so the caller can commit other writes, such as consumed offsets, atomically
 * with it. Temporary tables live in the session: not behind a transaction-pooling proxy. */
struct sl_pg_upsert {
    const char *table;
    const char *staging;
    const char *columns;
    const char *conflict;
    const char *before;
};
sl_pg_copy_t *sl_pg_upsert_begin(sl_pg_t *pg, const struct sl_pg_upsert *spec, struct sl_err *err)
    __attribute__((warn_unused_result));

/* Fields. Text is escaped for COPY's text format (backslash, tab, newline, carriage return); a
 * NULL string is SQL NULL (\N). Text must not contain a NUL byte (the row then fails). bytea
 * goes as hex. A failure (the connection, a NUL) is kept and reported by sl_pg_copy_row() and
 * sl_pg_copy_end(); later fields are ignored. */
void sl_pg_copy_text(sl_pg_copy_t *c, const char *s);
void sl_pg_copy_textn(sl_pg_copy_t *c, const char *s, size_t len);
void sl_pg_copy_null(sl_pg_copy_t *c);
void sl_pg_copy_int(sl_pg_copy_t *c, long long v);
void sl_pg_copy_double(sl_pg_copy_t *c, double v);
void sl_pg_copy_bytea(sl_pg_copy_t *c, const void *data, size_t len);
/* Ends a row: 0, or -1 with the first failure since the copy began. */
int sl_pg_copy_row(sl_pg_copy_t *c, struct sl_err *err) __attribute__((warn_unused_result));

/* Ends the copy and frees `c`, whatever happens. *rows (may be NULL): rows copied, or for an
 * upsert rows inserted (the rest were there already). A failed upsert is rolled back (its own
 * transaction, or the caller's, which must then roll back). */
int sl_pg_copy_end(sl_pg_copy_t *c, long long *rows, struct sl_err *err)
    __attribute__((warn_unused_result));
/* Abandons the copy and frees `c`: nothing of it is kept. An upsert's own transaction is rolled
 * back; a transaction of the caller's is left failed, for the caller to roll back. NULL is a
 * no-op. */
void sl_pg_copy_abort(sl_pg_copy_t *c);

#endif
