/*
 * sluicectl_db: `sluicectl db`, the upkeep of the audit database.
 *
 *   sluicectl [--config FILE] db migrate [--dry-run] [--dir DIR] [--ahead DAYS]
 *   sluicectl [--config FILE] db partitions [--ahead DAYS] [--retain DAYS]
 *
 * The database is the pipeline file's postgres.dsn, else SLUICE_PG_DSN, else
 * postgresql://127.0.0.1:5432/sluice; a pipeline file is optional.
 *
 * migrate applies the pending migrations (sl_pg_migrate.h: each in a transaction, recorded,
 * idempotent, serialised by an advisory lock), then makes sure the audit trail has its daily
 * partitions for today and DAYS ahead (default 7), so a fresh database takes rows at once.
 * The migrations directory is --dir, else $SLUICE_SQL_DIR, else <bin>/../share/sluice/sql
 * (an installed layout), else the source tree's schemas/sql.
 *
 * partitions is the daily upkeep (a cron job or a Kubernetes CronJob): creates the partitions
 * of today and DAYS ahead, and with --retain drops those whose whole day is more than DAYS ago;
 * then lists them.
 *
 * Exit codes: 0 done, 1 the operation failed, 2 usage error.
 */
#ifndef SLUICECTL_DB_H
#define SLUICECTL_DB_H

/* `config` is the pipeline file or NULL; argv[0] is the subcommand, "migrate" or "partitions" (the
 * dispatcher's command table only calls it with those).
 * Returns the exit code. */
int sluicectl_db(const char *config, int argc, char **argv);

#endif
