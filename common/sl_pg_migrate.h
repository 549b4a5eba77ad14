/*
 * sl_pg_migrate: applies the SQL migrations of a directory (schemas/sql/) to a database.
 *
 * A migration is a file NNNN_name.sql (four digits, then lowercase letters, digits and
 * underscores): plain SQL, applied in version order, each in its own transaction together with
 * its row in `schema_migrations` (version, name, checksum, applied_at), so a migration is
 * either applied and recorded or neither. A file must therefore not hold BEGIN, COMMIT or
 * anything that cannot run in a transaction (CREATE INDEX CONCURRENTLY), and must not change
 * the session (SET search_path).
 *
 * Where: the schema that the connection's search_path creates tables in (current_schema()),
 * `public` by default; a DSN with options=-csearch_path=NAME migrates schema NAME.
 *
 * Safe to run at every deploy and from several places at once:
 *   - idempotent: applied versions are skipped; a second run applies nothing;
 *   - serialised: a session advisory lock on (SL_PG_MIGRATE_LOCK, schema), taken as
 *       pg_advisory_lock(hashtext('sluice.migrate'), hashtext(current_schema()))
 *     makes a concurrent run wait, then find everything applied;
 *   - refuses (SL_ERR_CONFIG, nothing applied) when an applied file changed since (its SHA-256
 *     differs from the recorded one), when the database has a version the directory does not
 *     (an older sluicectl than the schema), or when a file would apply before an already
 *     applied version (migrations are only ever added at the end).
 */
#ifndef SL_PG_MIGRATE_H
#define SL_PG_MIGRATE_H

#include <stdbool.h>

#include "sl_err.h"
#include "sl_pg.h"

#define SL_PG_MIGRATE_LOCK "sluice.migrate"
/* Migration files in one directory at most, and the largest file. */
#define SL_PG_MIGRATIONS_MAX     1000
#define SL_PG_MIGRATION_FILE_MAX (1024 * 1024)
/* Longest migration name (the part between NNNN_ and .sql). */
#define SL_PG_MIGRATION_NAME_MAX 100

enum sl_pg_migrate_event {
    SL_PG_MIGRATE_WAITING,  /* another run holds the lock; this one waits for it */
    SL_PG_MIGRATE_PENDING,  /* dry run: this migration would be applied */
    SL_PG_MIGRATE_APPLYING, /* about to apply this migration */
    SL_PG_MIGRATE_APPLIED,  /* this migration is applied and recorded */
};

/* Progress, for a command line to print. `version` and `name` are 0 and "" for WAITING. */
typedef void (*sl_pg_migrate_cb)(void *opaque, enum sl_pg_migrate_event ev, int version,
                                 const char *name);

struct sl_pg_migrate_result {
    int files;       /* migrations in the directory */
    int applied;     /* applied by this run (dry run: that would be) */
    int version;     /* the schema's version afterwards (dry run: now); 0 when none */
    char schema[64]; /* the schema migrated */
};

/* Applies the pending migrations of `dir` through `pg` (a handle with no statement timeout
 * suits: a migration may rewrite a large table). With `dry_run`, checks everything the same
 * way, reports what would be applied and changes nothing (it takes no lock). `cb` may be NULL.
 * On failure nothing of the failing migration is kept (those before it are), and the message
 * names the file and, where the server says, the line: "schemas/sql/0002_x.sql:14: ...". */
int sl_pg_migrate(sl_pg_t *pg, const char *dir, bool dry_run, sl_pg_migrate_cb cb, void *opaque,
                  struct sl_pg_migrate_result *res, struct sl_err *err)
    __attribute__((warn_unused_result));

#endif
