/*
 * sluicectl_events: `sluicectl events show ID [--json]`, one event's story from the audit
 * database.
 *
 * What it reads (one handle on the pipeline file's postgres.dsn, else SLUICE_PG_DSN, else the
 * default DSN; a pipeline file is optional):
 *   - every `audit` row of the event in time order (sl_pg_event_timeline): each stage's
 *     decision, and for deliver each attempt with its destination, attempt number, HTTP status,
 *     latency and error (the deliver worker's audit detail);
 *   - its dead letters (dead_letters by event_id) with their replays (dead_letter_replays);
 *   - its per-destination state from event_status when that table has rows for it.
 *
 * Per destination the outcome is what the last deliver row for it says (delivered, retry ->
 * "retrying", dead_lettered, duplicate -> delivered by the ledger), "pending" for a destination
 * that a route chose and no deliver row names yet; event_status's state is shown beside it when
 * present. An event that a stage before deliver filtered, deduplicated or dead-lettered (and that
 * no later row took further) has the destination "" (the event as a whole), as in event_status.
 *
 * Text output: a header line, aligned columns TIME STAGE OUTCOME DETAIL, the dead letters and
 * one final line per destination. --json: one object
 *   {"event_id", "source", "type", "timeline": [audit rows as sl_pg_event_timeline gives them],
 *    "dead_letters": [{"id", "stage", "reason", "errors", "attempt", "status", "received_at",
 *                      "status_at", "status_by", "destination", "replays": [...]}],
 *    "event_status": [{"destination", "state", "route", "accepted_at", "terminal_at",
 *                      "stuck_at"}],
 *    "destinations": [{"destination", "outcome", "attempts", "last_status", "at",
 *                      "state"}]}
 *
 * Exit codes: 0 shown, 1 unknown event or the database failed, 2 usage error.
 */
#ifndef SLUICECTL_EVENTS_H
#define SLUICECTL_EVENTS_H

/* `config` is the pipeline file or NULL; argv[0] is the subcommand ("show"). Returns the exit
 * code. */
int sluicectl_events(const char *config, int argc, char **argv);

#endif
