/*
 * sluicectl_common: what the subcommands that read the audit database share (events, dlq,
 * reconcile): opening the database of the pipeline file, reading one JSON document from a
 * query, TIME arguments, and printing a document as JSON or as text.
 */
#ifndef SLUICECTL_COMMON_H
#define SLUICECTL_COMMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "sl_conf.h"
#include "sl_err.h"
#include "sl_pg.h"

/* A handle on the database of `conf` (NULL: SLUICE_PG_DSN or the default). The caller destroys
 * it. NULL with *err. */
sl_pg_t *ctl_pg_open(const sl_conf_t *conf, struct sl_err *err);

/* The JSON text of the first column of the first row of `sql` into *out (a new reference;
 * NULL when there is no row or the value is NULL). 0, or -1 with *err (also for text that is
 * not JSON). */
int ctl_query_json(sl_pg_t *pg, const char *sql, int n, const char *const *params, json_t **out,
                   struct sl_err *err);

/* TIME: an RFC 3339 time, or a duration back from now ("2h", "30m", "7d"), as microseconds
 * since the epoch. -1 when it is neither. */
int ctl_parse_time(const char *text, int64_t *us);

/* `doc` on stdout: compact JSON and a newline, or as `text` prints it. */
void ctl_print(const json_t *doc, bool as_json, void (*text)(const json_t *doc));

#endif
