/*
 * sluicectl_events: `sluicectl events show ID [-o json|table]`, one event's story from the audit
 * database.
 *
 * The story is ops_events' (ops/ops_events.h), the same document sluice-admin serves at
 * /api/v1/events/{id}: every audit row of the event in time order, its dead letters with their
 * replays, its per-destination state and the outcome per destination. The database is the
 * pipeline file's postgres.dsn, else SLUICE_PG_DSN, else the default DSN; a pipeline file is
 * optional.
 *
 * Text output: a header line, aligned columns TIME STAGE OUTCOME DETAIL, the dead letters and
 * one final line per destination. -o json (or --json): the story as ops_event_story gives it.
 *
 * Exit codes: 0 shown, 1 unknown event or the database failed, 2 usage error.
 */
#ifndef SLUICECTL_EVENTS_H
#define SLUICECTL_EVENTS_H

/* `sluicectl events show`: `config` is the pipeline file or NULL; argv[0] is "show" (the
 * dispatcher's command table). Returns the exit code. */
int sluicectl_events_show(const char *config, int argc, char **argv);

#endif
