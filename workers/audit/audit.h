/*
 * audit: the sink from <prefix>audit into PostgreSQL (sluice-audit): the audit trail, one row
 * per audit record, and each event's state per destination (event_status).
 *
 * Per record (process()): the JSON is parsed into a row (record.h says what a record must hold
 * and how its members map to the columns of `audit`). A malformed record is dead-lettered with
 * the reason, never retried: one bad record must not stop the trail. Rows are buffered.
 *
 * Per batch (flush(), which the loop calls before it commits the consumer offsets), in ONE
 * transaction, steps 1 to 3 for each sub-batch (below), then step 4:
 *   1. The guard: a transaction-level advisory lock per audit partition of the batch
 *      (pg_advisory_xact_lock(hashtext(topic), partition), in partition order, so that two
 *      writers of the same partitions, a replica handing over in a rebalance or a second
 *      consumer group, take turns), then, in a statement that sees every batch committed under
 *      those locks before, whether any stored row lies within the batch's offset range on any
 *      of its partitions.
 *   2a. None (the usual case): the daily partitions the rows need are created
 *      (sluice_audit_partition_ensure per UTC day) and the rows are COPYed straight into
 *      `audit`. 2b. Some (the batch, or part of it, was written before): COPY into the
 *      session's staging table audit_stage, the partitions' check from it, then
 *      INSERT INTO audit ... ON CONFLICT (audit_topic, audit_partition, audit_offset, at)
 *      DO NOTHING (sl_pg_upsert_begin, joined to the transaction), which skips what is there.
 *      Why two paths: COPY inserts rows in bulk, INSERT ... SELECT one at a time with a
 *      speculative check, which costs twice as much (bench/audit); the guard makes the cheap
 *      one safe, and the staging table stays the answer whenever a row may be there.
 *   3. COPY the event_status rows the batch implies into audit_status_stage and apply them
 *      (below);
 *   4. COMMIT. Then the loop commits the offsets.
 * Idempotency: the key of an audit row is the record's own position on the audit topic plus
 * its "at" (which comes from the record, never from this process's clock), so a batch written
 * again (a crash after the COMMIT and before the offset commit, a rebalance, a second group
 * reading the same topic) inserts nothing twice: its positions are found by the guard and it
 * goes through the staging table; the event_status rules below give the same result however
 * often a record is applied. Postgres down, a lost connection (even during the COMMIT), a
 * timeout or a deadlock are retriable: the loop keeps the batch, pauses, reports why on
 * /readyz, and writes it again later; nothing is lost or committed meanwhile. Any other
 * database error (a missing migration, refused credentials) stops the process with the
 * server's message, for the supervisor to restart it once fixed; the same batch is then read
 * again. Every writer of `audit` must take the guard's locks (all sluice-audit replicas do).
 *
 * event_status (when `audit.event_status` is true, the default). One row per (event id,
 * destination); destination '' is the event before any route chose a destination. Only what
 * an audit record makes clear is written (audit_row_status() in record.h):
 *   outcome                                  row                 state
 *   filtered, dead_lettered                  (id, dest or '')    that outcome, terminal
 *   duplicate without a destination          (id, '')            duplicate, terminal
 *   duplicate naming a destination           (id, dest)          delivered, terminal (the
 *                                                                delivery ledger: sent before)
 *   delivered naming a destination           (id, dest)          delivered, terminal
 *   retry naming a destination               (id, dest)          pending
 *   passed whose detail.destinations names   (id, each dest)     pending
 *   destinations (route's decision)
 *   anything else (passed at validate, transform; records without an event id): nothing.
 * "dest" is detail.destination. The rules that make it order-proof and idempotent:
 *   - pending never overwrites: a terminal state never goes back to pending;
 *   - a terminal state replaces pending, or a terminal state whose terminal_at is not later
 *     than the record's "at" (the latest terminal state wins: a dead letter replayed and then
 *     delivered ends delivered);
 *   - a record about a destination at time t removes the event's '' row that became terminal
 *     at or before t (a dead-lettered event, replayed, got past routing after all), keeping
 *     its earlier accepted_at;
 *   - accepted_at only moves earlier; it is the acceptance time of record.h (the UUIDv7 time
 *     of ingress's event id, else the record's "at"); source, type and route are filled when
 *     they were unknown.
 * Within one sub-batch the same holds, resolved before the rows are staged (so that every key
 * appears once in the statement that applies them): the latest terminal record per row wins,
 * and a record about a destination drops a pre-routing row as late or earlier.
 *
 * Writing overlaps parsing: a writer thread of the stage's own holds the connection and
 * writes each AUDIT_SUB_ROWS rows into the batch's open transaction as they are parsed; flush()
 * writes the rest and commits. A failure anywhere rolls the whole transaction back, and the
 * next flush() writes the batch again from its first row. Large batches pay: per-batch costs
 * (the commit, the statements) spread over more rows; `audit.loop.batch_max_events: 10000` is
 * what bench/audit measures.
 *
 * Bounds: a batch holds at most `audit.loop.batch_max_events` rows (and never more than
 * 100352) in at most AUDIT_BATCH_BYTES of memory (a row takes about 4x its record); a record
 * that would pass that is held (SL_RETRY) until the batch before it is written.
 *
 * Metrics: sluice_audit_rows_total{result="inserted"|"existing"} (rows stored, and rows that
 * were there already), sluice_audit_batches_total{path="copy"|"staged"} (staged when any
 * sub-batch of the batch took step 2b), sluice_audit_status_rows_total (event_status rows written),
 * sluice_audit_batch_rows (rows per batch), sluice_audit_flush_seconds (one batch's
 * transaction), sluice_audit_flush_failures_total{error} (batches that failed, by sl_err code
 * name). Rejected records count in sluice_stage_events_total{stage="audit",
 * outcome="dead_lettered"}.
 *
 * Staging tables live in the session: not behind a transaction-pooling proxy.
 */
#ifndef AUDIT_H
#define AUDIT_H

#include "sl_stage.h"

/* Memory one batch's rows take at most. */
#define AUDIT_BATCH_BYTES (128 * 1024 * 1024)
/* Rows the writer thread takes at a time while the batch fills. */
#define AUDIT_SUB_ROWS 2000

extern const struct sl_stage audit_stage;

#endif
