/*
 * ops_dlq: the operator's hands on the dead letters that sluice-deadletter stored
 * (schemas/sql/0002_dead_letters.sql): show one, replay, discard. `sluicectl dlq` and
 * sluice-admin's /api/v1/dead-letters both act through this module, so a letter is replayed the
 * same way whoever asks.
 *
 * Replay puts the original record back at the input topic of a stage (default: the stage it
 * failed at): validate <- <prefix>ingress, transform <- validated, route <- normalized,
 * deliver <- deliver.<the letter's ce_sluicedestination>. The record is the stored payload and
 * key with the stored headers (ce_* and content-type) minus ce_sluicestage, ce_sluicereason and
 * ce_sluiceerrors, with ce_sluiceattempt = the letter's attempt + 1 and ce_sluicereplay = the
 * letter's id. Per letter, in this order:
 *   1. BEGIN; the letter's row is locked (SELECT ... FOR UPDATE), so two operators replaying
 *      the same letter at once take turns and the second sees it replayed;
 *   2. a letter already replayed or discarded is refused unless `force`;
 *   3. produce (acks=all, idempotent) and wait for the acknowledgement;
 *   4. insert dead_letter_replays (who, to_stage, to_topic, attempt, partition, offset), set
 *      dead_letters.status = 'replayed', status_at, status_by; COMMIT.
 * A failure before 3 changes nothing. A commit that fails after 3 leaves the record on the topic
 * without its row (OPS_DLQ_UNRECORDED names topic, partition and offset). A dry run changes
 * nothing (the lock is released by a rollback).
 *
 * Dedup downstream: a letter of validate never claimed its idempotency key, so its replay
 * passes validate's dedup as the first; a letter of a later stage sent back to validate meets
 * the claim of its own original record, and validate lets it through as a replay because the
 * claim names the same event id (ce_sluicereplay). A deliver letter replayed after the event was
 * delivered after all is answered from the delivery ledger, not sent twice.
 */
#ifndef OPS_DLQ_H
#define OPS_DLQ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sl_err.h"
#include "sl_kafka.h"
#include "sl_pg.h"

#define OPS_DLQ_BY_MAX      128                 /* bytes of who replays or discards */
#define OPS_DLQ_PAYLOAD_MAX (64u * 1024 * 1024) /* bytes of a payload decoded for display */
#define OPS_DLQ_ID_MAX      256                 /* bytes of an event id kept in a result */

/* A dead letter in full: sl_pg_dead_letter's row plus "payload_text" and "key_text" (the
 * decoded bytes when they are UTF-8 text, else null). SL_ERR_NOT_FOUND for an unknown id. */
int ops_dlq_show(sl_pg_t *pg, long long id, json_t **row, struct sl_err *err)
    __attribute__((warn_unused_result));

/* Whether `stage` has an input topic a letter can be replayed into. */
bool ops_dlq_replayable_stage(const char *stage);

struct ops_dlq_replay_opts {
    const char *to_stage; /* NULL: the letter's own stage */
    bool dry_run, force;
    const char *by; /* who: recorded with the replay */
};

enum ops_dlq_outcome {
    OPS_DLQ_DONE,       /* replayed (or, in a dry run, would be) */
    OPS_DLQ_UNKNOWN,    /* no such id */
    OPS_DLQ_REFUSED,    /* already replayed or discarded, and not `force` */
    OPS_DLQ_NO_TARGET,  /* no input topic for the stage, or no destination for deliver */
    OPS_DLQ_FAILED,     /* the database or Kafka failed: nothing changed */
    OPS_DLQ_UNRECORDED, /* produced, but the replay's row did not commit */
};

struct ops_dlq_result {
    enum ops_dlq_outcome outcome;
    char event_id[OPS_DLQ_ID_MAX];
    char to_stage[32];
    char topic[256];
    int attempt;
    int32_t partition; /* -1 in a dry run */
    int64_t offset;
    size_t payload_len, key_len, headers;
    char msg[SL_ERR_MSG_MAX]; /* why, for every outcome but DONE; starts "dead letter <id>: " */
};

typedef struct ops_dlq ops_dlq_t;

/* A replayer on `pg` and `kafka` (both borrowed: they must outlive it); its producer is made on
 * the first real replay. NULL when out of memory. */
ops_dlq_t *ops_dlq_new(sl_pg_t *pg, const struct sl_kafka_settings *kafka);
void ops_dlq_destroy(ops_dlq_t *d);

/* Replays letter `id` (see above); the outcome in *res. 0 when DONE, else -1. */
int ops_dlq_replay(ops_dlq_t *d, long long id, const struct ops_dlq_replay_opts *o,
                   struct ops_dlq_result *res);

/* The letters a bulk replay selects, oldest first: status new (with `force` also replayed), of
 * `source` and `stage` when not NULL, received at or after `since` (timestamptz text) when not
 * NULL; at most `limit`. *ids is the caller's (free). */
int ops_dlq_select(sl_pg_t *pg, const char *source, const char *stage, const char *since,
                   bool force, int limit, long long **ids, size_t *n, struct sl_err *err)
    __attribute__((warn_unused_result));

/* A new letter becomes discarded (handled: nothing to replay) with who and when. Only new
 * letters: OPS_DLQ_REFUSED for another status, OPS_DLQ_UNKNOWN for no such id. */
int ops_dlq_discard(sl_pg_t *pg, long long id, const char *by, struct ops_dlq_result *res);

#endif
