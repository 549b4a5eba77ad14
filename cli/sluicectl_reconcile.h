/*
 * sluicectl_reconcile: `sluicectl reconcile report`, the books that sluice-reconcile keeps.
 *
 *   sluicectl [--config FILE] reconcile report [--since TIME] [-o json|table]
 *
 * TIME is an RFC 3339 time (2026-11-24T17:00:00Z) or a duration back from now (24h, 90m, 7d;
 * default 24h); the report starts at the UTC hour that contains it. It shows, per hour of
 * acceptance, source and destination (destination "-": before routing), the pairs accepted
 * and where each one is (delivered, dead-lettered, filtered, duplicate, pending, stuck),
 * `unexplained` (0 when the books balance) with its explanation; the totals of those rows;
 * the stuck pairs accepted since TIME (event id, source, destination, accepted at, age); and
 * the last finished run of sluice-reconcile. -o json (or --json) prints one object: {"since",
 * "hours":
 * [...], "totals": {...}, "stuck": [...], "last_run": {...} or null}.
 *
 * The database is the pipeline file's postgres.dsn, else SLUICE_PG_DSN, else the default; a
 * pipeline file is optional. Exit codes: 0 done, 1 the database could not be read, 2 usage
 * error (a bad TIME, an unknown option).
 */
#ifndef SLUICECTL_RECONCILE_H
#define SLUICECTL_RECONCILE_H

/* `sluicectl reconcile report`: `config` is the pipeline file or NULL; argv[0] is "report" (the
 * dispatcher's command table). Returns the exit code. */
int sluicectl_reconcile_report(const char *config, int argc, char **argv);

#endif
