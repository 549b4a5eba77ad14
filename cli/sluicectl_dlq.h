/*
 * sluicectl_dlq: `sluicectl dlq`, the operator's hands on the dead letters that
 * sluice-deadletter stored (schemas/sql/0002_dead_letters.sql).
 *
 *   dlq list [--source S] [--stage S] [--since TIME] [--status new|replayed|discarded|all]
 *            [--limit N] [-o json|table]               newest first; default all, 100 rows;
 *                                                      JSON {"items": [...]}
 *   dlq show ID [-o json|table]                        every column; payload and key as text
 *                                                      when valid UTF-8, else base64
 *   dlq replay (ID... | --filter [--source S] [--stage S] [--since TIME] [--limit N])
 *              [--to-stage STAGE] [--dry-run] [--force] [--by NAME]
 *   dlq discard ID... [--by NAME]                      a new letter is handled without a
 *                                                      replay: status discarded, who, when
 *
 * TIME is an RFC 3339 time or a duration back from now (2h, 30m, 7d).
 *
 * Replay and discard are ops_dlq's (ops/ops_dlq.h: the record put back, the lock, the
 * refusal of a letter already replayed without --force, the row of the replay), the same code
 * as sluice-admin's API. With --filter, letters with status 'new' are replayed (with --force
 * also 'replayed' ones); at most --limit (default 100) per run, oldest first. --dry-run prints
 * what would go where and changes nothing. --by: default $SLUICE_OPERATOR, else the login name.
 *
 * The database: the pipeline file's postgres.dsn, else SLUICE_PG_DSN. replay needs the
 * pipeline file (brokers and topic prefix); list and show do not.
 *
 * Exit codes: 0 done, 1 a letter is unknown, refused or failed (the others are still replayed),
 * 2 usage error.
 */
#ifndef SLUICECTL_DLQ_H
#define SLUICECTL_DLQ_H

/* `config` is the pipeline file or NULL; argv[0] is the subcommand, one of "list", "show",
 * "replay" and "discard" (the dispatcher's command table only calls it with those). Returns the
 * exit code. */
int sluicectl_dlq(const char *config, int argc, char **argv);

#endif
