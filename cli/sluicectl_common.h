/*
 * sluicectl_common: what the subcommands share: the global --timeout, the output format of the
 * read commands (-o json|table, --json), opening the database of the pipeline file, reading one
 * JSON document from a query, and TIME arguments.
 *
 * Output contract of every read command (lag, events show, dlq list, dlq show, reconcile
 * report): -o table (the default) prints aligned text for people; -o json prints exactly one
 * JSON document and a newline on stdout, nothing else (errors and log records go to stderr).
 */
#ifndef SLUICECTL_COMMON_H
#define SLUICECTL_COMMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "sl_conf.h"
#include "sl_err.h"
#include "sl_pg.h"

/* The global --timeout, set once by main before a subcommand runs: every call to the broker or
 * to PostgreSQL waits at most this long. */
void ctl_set_timeout_ms(int ms);

/* The global --timeout in milliseconds, or `fallback` (the command's own default) when it was
 * not given. */
int ctl_timeout_ms(int fallback);

enum ctl_output { CTL_OUTPUT_TABLE = 0, CTL_OUTPUT_JSON };

/* Whether argv[*i] is an output option (--json, -o FORMAT, -oFORMAT, --output FORMAT,
 * --output=FORMAT; FORMAT json or table); consumes its value (advancing *i) into *out.
 * 1 consumed, 0 not an output option, -1 a bad or missing FORMAT (said on stderr, naming `cmd`). */
int ctl_output_arg(const char *cmd, int argc, char **argv, int *i, enum ctl_output *out);

/* A handle on the database of `conf` (NULL: SLUICE_PG_DSN or the default), its connect and
 * statement timeouts bounded by the global --timeout. `statement_timeout_ms` is the command's own
 * statement timeout (0: sl_pg's default, -1: none) when --timeout was not given. The caller
 * destroys it. NULL with *err. */
sl_pg_t *ctl_pg_open(const sl_conf_t *conf, int statement_timeout_ms, struct sl_err *err);

/* The JSON text of the first column of the first row of `sql` into *out (a new reference;
 * NULL when there is no row or the value is NULL). 0, or -1 with *err (also for text that is
 * not JSON). */
int ctl_query_json(sl_pg_t *pg, const char *sql, int n, const char *const *params, json_t **out,
                   struct sl_err *err);

/* TIME: an RFC 3339 time, or a duration back from now ("2h", "30m", "7d"), as microseconds
 * since the epoch. -1 when it is neither. */
int ctl_parse_time(const char *text, int64_t *us);

/* `doc` on stdout: compact JSON and a newline, or as `text` prints it. */
void ctl_print(const json_t *doc, enum ctl_output output, void (*text)(const json_t *doc));

#endif
