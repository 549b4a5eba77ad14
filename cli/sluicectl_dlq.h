/*
 * sluicectl_dlq: `sluicectl dlq`, the operator's hands on the dead letters that
 * sluice-deadletter stored (schemas/sql/0002_dead_letters.sql).
 *
 *   dlq list [--source S] [--stage S] [--since TIME] [--status new|replayed|discarded|all]
 *            [--limit N] [--json]                      newest first; default all, 100 rows
 *   dlq show ID [--json]                               every column; payload and key as text
 *                                                      when valid UTF-8, else base64
 *   dlq replay (ID... | --filter [--source S] [--stage S] [--since TIME] [--limit N])
 *              [--to-stage STAGE] [--dry-run] [--force] [--by NAME]
 *   dlq discard ID... [--by NAME]                      a new letter is handled without a
 *                                                      replay: status discarded, who, when
 *
 * TIME is an RFC 3339 time or a duration back from now (2h, 30m, 7d).
 *
 * Replay puts the original record back at the input topic of a stage (default: the stage it
 * failed at): validate <- <prefix>ingress, transform <- validated, route <- normalized,
 * deliver <- deliver.<the letter's ce_sluicedestination>. The record is the stored payload and
 * key with the stored headers (ce_* and content-type) minus ce_sluicestage, ce_sluicereason and
 * ce_sluiceerrors, and ce_sluiceattempt = the letter's attempt + 1. Per letter, in this order:
 *   1. BEGIN; the letter's row is locked (SELECT ... FOR UPDATE), so two operators replaying
 *      the same letter at once take turns and the second sees it replayed;
 *   2. a letter already replayed or discarded is refused unless --force;
 *   3. produce (sl_kafka producer: acks=all, idempotent) and wait for the acknowledgement;
 *   4. insert dead_letter_replays (who, to_stage, to_topic, attempt, partition, offset), set
 *      dead_letters.status = 'replayed', status_at, status_by; COMMIT.
 * A failure before 3 changes nothing. A commit that fails after 3 leaves the record on the
 * topic without its row: the message says so and names the topic, partition and offset. With
 * --filter, letters with status 'new' are replayed (with --force also 'replayed' ones); at most
 * --limit (default 100) per run, oldest first. --dry-run prints what would go where and changes
 * nothing (the lock is released by a rollback). --by: default $SLUICE_OPERATOR, else the login
 * name.
 *
 * Dedup downstream: a replayed record carries ce_sluicereplay (the dead letter's id). A letter of
 * validate never claimed its idempotency key (validate claims only valid events), so its replay
 * into <prefix>ingress passes validate's dedup as the first; a letter of a later stage sent back
 * to validate (--to-stage validate) meets the claim of its own original record, and validate
 * lets it through as a replay because the claim names the same event id. A deliver letter
 * replayed after the event was delivered after all is answered from the delivery ledger
 * ("duplicate"), not sent twice.
 *
 * The database: the pipeline file's postgres.dsn, else SLUICE_PG_DSN. replay needs the
 * pipeline file (brokers and topic prefix); list and show do not.
 *
 * Exit codes: 0 done, 1 a letter is unknown, refused or failed (the others are still replayed),
 * 2 usage error.
 */
#ifndef SLUICECTL_DLQ_H
#define SLUICECTL_DLQ_H

/* `config` is the pipeline file or NULL; argv[0] is the subcommand ("list", "show",
 * "replay"). Returns the exit code. */
int sluicectl_dlq(const char *config, int argc, char **argv);

#endif
