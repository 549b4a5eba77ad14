/*
 * deadletter: the sink from <prefix>dlq into PostgreSQL (sluice-deadletter): one row of
 * `dead_letters` per dead letter, for operators to inspect and replay.
 *
 * A dead letter is the original record (payload, key, headers) with the extensions the stage
 * that gave up added: ce_sluicestage, ce_sluicereason, ce_sluiceerrors (a JSON array of
 * strings), and ce_sluiceattempt where the stage counts attempts. The row:
 *   event_id  ce_id             source   ce_sluicesource, else ce_source     type  ce_type
 *   stage     ce_sluicestage ("unknown" when absent)
 *   reason    ce_sluicereason ("no reason given" when absent)
 *   errors    ce_sluiceerrors when it is a JSON array; other text is kept as a one-element
 *             array holding that text; NULL when absent
 *   attempt   ce_sluiceattempt when it is an integer >= 1, else 1
 *   headers   the CloudEvents attributes as the headers they travel in (ce_<name>, and
 *             content-type), a JSON object of strings. Every other header (Authorization,
 *             signatures, cookies, API keys) is dropped before anything is buffered: a secret
 *             never reaches the table (which refuses other keys as well) or this process's log
 *   payload   the record value, byte for byte (bytea); key: the record key (bytea; NULL: none)
 *   topic, partition, kafka_offset   the dead letter's own position on the DLQ topic
 *   produced_at  the record's Kafka timestamp
 * Header values that are not valid UTF-8 are stored with each invalid byte replaced by U+FFFD
 * (the payload and key never change). Nothing here is ever dead-lettered again: whatever the
 * record holds, it is stored (a dead letter of the dead-letter sink would come back to it).
 * That includes a record that is not a CloudEvent at all (the dead letter of a raw record):
 * the loop hands it over with whatever attributes its headers carry (`any_record`), and
 * event_id, source and type stay NULL where absent.
 *
 * Per batch (flush()): COPY into the session's staging table, then INSERT INTO dead_letters
 * ... ON CONFLICT (topic, partition, kafka_offset) DO NOTHING, in one transaction
 * (sl_pg_upsert_begin). The key is the dead letter's position on its topic, so a batch written
 * again after a crash, a rebalance or by a second group is stored once. Postgres down, a lost
 * connection, a timeout: retriable, the loop waits and writes the batch again; any other
 * database error stops the process with the server's message.
 *
 * Bounds: a batch holds at most `deadletter.loop.batch_max_events` letters and
 * DEADLETTER_BATCH_BYTES of payload, key and header bytes; a letter that would pass that is
 * held (SL_RETRY) until the batch before it is written.
 *
 * Metrics: sluice_deadletter_rows_total{result="inserted"|"existing"},
 * sluice_deadletter_batch_rows, sluice_deadletter_flush_seconds,
 * sluice_deadletter_flush_failures_total{error}.
 */
#ifndef DEADLETTER_H
#define DEADLETTER_H

#include "sl_stage.h"

/* Payload, key and header bytes one batch buffers at most. */
#define DEADLETTER_BATCH_BYTES (64 * 1024 * 1024)

extern const struct sl_stage deadletter_stage;

#endif
