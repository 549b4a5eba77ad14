/*
 * validate: the stage between <prefix>ingress and <prefix>validated (sluice-validate).
 *
 * For each event, in this order:
 *
 *   1. Its source is the `sluicesource` attribute that sluice-ingress sets. An event without
 *      it, or from a source the pipeline file does not list, is dead-lettered.
 *   2. Its schema is `sources.<source>.schemas.<type>`, else the source's "*" entry. Without
 *      either, a source with `require_schema: true` dead-letters the event ("no schema for type
 *      X of source Y"); any other source passes it unvalidated (the audit detail says so).
 *   3. The payload is parsed once. Malformed JSON (duplicate object keys included: two parsers
 *      could read two different events from it) is dead-lettered, schema or not.
 *   4. An invalid payload is dead-lettered with the reason "schema validation failed: N errors
 *      against <schema>" and one error per violation, "<instance path>: <keyword location>:
 *      <message>" ("(root)" for an empty path), every one of them (the loop keeps the first
 *      SL_EMIT_MAX_ERRORS in the dead letter and counts the rest).
 *   5. Dedup (below); then the record goes to <prefix>validated unchanged: the same attributes,
 *      key and payload bytes (never re-serialised). The audit detail names the schema used and
 *      the dedup decision.
 *
 * Dedup. One Redis key per business event, claimed for `dedup.window` (days are fine):
 *
 *     key    <key prefix>dedup.v2:<source>:<scoped id>    e.g. sluice.dedup.v2:stripe:3f2a...
 *     value  <topic>/<partition>/<offset> <event id>      e.g. sluice.ingress/3/1207 0190...
 *
 * The key prefix is redis.key_prefix, by default the topic prefix (sl_redis_key_prefix). The
 * scoped id is sl_ce_scoped_id() of (sluicesource, CloudEvents source, idempotency key):
 * an idempotency key is unique only within its source, so equal keys of two sources, or of two
 * CloudEvents sources posting through one sluice source, are two events.
 *
 * Upgrade. Earlier builds claimed "<topic prefix>dedup:<source>:<idempotency key>" (without
 * the CloudEvents source). The claim reads that key too, never writes it, and when it exists
 * it decides (sl_redis_dedup_claim's old_key), so a sender's retry of an event first claimed
 * before the upgrade is still a duplicate for the rest of its window. Within that one window,
 * an event whose old-format key another CloudEvents source holds is a duplicate as before the
 * upgrade. Remove the old key from the claim once this version has run for one dedup.window.
 *
 * The value names the Kafka record that claimed the key, and the claim compares it:
 *   - FIRST (nobody held the key): pass.
 *   - SAME (this very record holds it): the record is being processed again after a crash, an
 *     aborted transaction or a rebalance, and the transaction that forwarded it the first time
 *     never committed. Pass again: Kafka's transaction guarantees that only one of the two
 *     forwards is ever visible downstream. (An operator who rewinds the consumer group replays
 *     on purpose, and gets SAME too.)
 *   - DUPLICATE (another record holds it): a sender's retry of the same business event.
 *     SL_DUPLICATE, with the first event's id in the reason; nothing is forwarded. Except a
 *     dead letter put back by an operator (`sluicectl dlq replay` marks it ce_sluicereplay)
 *     whose event id is the one that holds the claim: the same event again, on purpose; it
 *     passes with dedup "replay". Senders cannot set the mark (ingress refuses sluice*
 *     attributes).
 * Why the record and not the event id alone: sluice-ingress keeps a CloudEvent's own `id`, and
 * a CloudEvents sender retries with the same id, so an event id cannot tell "the same record
 * again" from "the sender again"; the record's position can. An event without an idempotency
 * key, or from a source with `dedup: false`, skips dedup. Only valid events claim a key.
 *
 * Redis failures never decide an event's fate: the stage answers SL_RETRY, so the loop holds
 * the event (nothing after it is read), backs off, reports not-ready on /readyz, and goes on
 * when Redis answers. Nothing is dropped, dead-lettered or passed undeduplicated meanwhile. This
 * includes refused credentials (a fatal error in sl_redis terms): the stage logs an error on
 * every attempt and keeps holding rather than stopping, because a restart cannot fix a wrong
 * password either, while the hold keeps the event's place, shows on /readyz and
 * sluice_stage_retrying, and resumes by itself once Redis accepts the credentials (an ACL fixed
 * on the server; a changed secret needs the usual restart). Redis is connected lazily: the
 * stage starts while Redis is down.
 *
 * Start-up compiles every schema the pipeline file names, once; a missing or invalid one stops
 * the binary with file:line: key naming the pipeline entry. `validate.assert_formats` turns
 * `format` into an assertion.
 *
 * Metrics: sluice_validate_events_total{source,type,result} (type is the `schemas` entry that
 * applied: the type itself, "*", or "_none"; result: valid, unvalidated, invalid, malformed,
 * no_schema, unknown_source, duplicate) and sluice_validate_seconds{source} (parse + validate).
 */
#ifndef VALIDATE_H
#define VALIDATE_H

#include "sl_conf.h"
#include "sl_err.h"
#include "sl_stage.h"

/* Validation errors collected per event at most: bounds the work on a pathological payload. */
#define VALIDATE_MAX_ERRORS 10000

extern const struct sl_stage validate_stage;

/* What sluicectl config check runs for this stage: reads the validate settings and compiles
 * every schema the file names, as start-up would. 0, or -1 with *err naming file, line and
 * key. */
int validate_check_config(const sl_conf_t *conf, struct sl_err *err)
    __attribute__((warn_unused_result));

#endif
