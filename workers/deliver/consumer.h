/*
 * consumer: one destination's Kafka consumer, at-least-once with offsets committed by hand.
 *
 *   group <prefix>deliver.<destination> (each destination scales and lags on its own; each
 *   pipeline has its own, sl_group.h, adopting sluice-deliver-<destination>'s offsets once),
 *   topic <prefix>deliver.<destination>, read_committed, cooperative-sticky assignment,
 *   enable.auto.commit=false, enable.auto.offset.store=false, static membership with an
 *   instance id (a restarted replica takes its partitions back at once).
 *
 * Each assigned partition (dlv_part_t) tracks its records' offsets (offsets.h). The engine
 * calls dlv_part_finish() once a record's outcome is recorded; dlv_consumer_commit() commits
 * each partition's lowest unfinished offset when it moved (rd_kafka_commit with explicit
 * offsets: asynchronous in the loop, synchronous on revocation and shutdown). Nothing else is
 * ever committed, so a crash loses nothing: the group resumes at the first record whose
 * outcome was not recorded.
 *
 * Backpressure: a partition pauses when it holds max_events_per_partition unfinished records
 * (or its offset ring is full: records finished behind one that is stuck), and every partition
 * pauses while the engine says it is full; the pause shows as consumer lag. A record that
 * arrives for a paused partition (fetched before the pause) is put back with a seek, so none
 * is skipped and order is kept. Partitions resume below three quarters of their bound.
 *
 * Revocation (a rebalance or close): for each partition the engine's `revoked` hook drops its
 * events first (requests in flight are cancelled: the new owner sends them again, with the
 * same Idempotency-Key), then what is finished is committed, then the partition goes.
 *
 * Threading: everything, hooks included, runs on the engine's thread, inside the calls below.
 * The consumer's queue writes one byte to wake_fd when it goes from empty to non-empty
 * (records, rebalances, statistics, commit results), so the engine sleeps in one poll.
 */
#ifndef DLV_CONSUMER_H
#define DLV_CONSUMER_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sl_err.h"
#include "sl_kafka.h"
#include "sl_metrics.h"

#define DLV_PARTITIONS_MAX 4096    /* partition ids of one topic */
#define DLV_OFFSETS_MAX    65536   /* offsets tracked per partition (16 bytes each) */
#define DLV_FETCH_KBYTES   "16384" /* queued.max.messages.kbytes: the prefetch bound */

typedef struct dlv_consumer dlv_consumer_t;
typedef struct dlv_part dlv_part_t;

struct dlv_consumer_hooks {
    /* `part` was assigned (before any of its records). */
    void (*assigned)(void *opaque, dlv_part_t *part);
    /* A record of `part`, already tracked as unfinished; msg stays the consumer's. */
    void (*record)(void *opaque, dlv_part_t *part, const rd_kafka_message_t *msg);
    /* `part` is being revoked: forget its events now; it is freed after the call. */
    void (*revoked)(void *opaque, dlv_part_t *part);
    void *opaque;
};

struct dlv_consumer_opts {
    const struct sl_kafka_settings *kafka;
    const char *destination;
    const char *instance_id; /* NULL: no static membership */
    size_t max_per_partition;
    int wake_fd;
    sl_metric_t *lag; /* gauge {stage, topic, partition} */
    struct dlv_consumer_hooks hooks;
};

/* Borrows everything in opts (they must outlive the consumer). */
dlv_consumer_t *dlv_consumer_new(const struct dlv_consumer_opts *opts, struct sl_err *err)
    __attribute__((warn_unused_result));
/* Takes over the pre-pipeline group's offsets on a first start (sl_group_adopt), then
 * subscribes. */
int dlv_consumer_subscribe(dlv_consumer_t *c, struct sl_err *err);
/* Serves rebalances, statistics and commit results, and hands up to `max` records to the
 * record hook; when `accept` is false (the engine is full) records are put back and their
 * partitions paused. Returns true when it stopped at `max`: more may be waiting, and the
 * queue will not wake the engine for them. */
bool dlv_consumer_poll(dlv_consumer_t *c, size_t max, bool accept);
/* Commits every partition whose commit point moved. */
void dlv_consumer_commit(dlv_consumer_t *c, bool sync);
/* Pauses and resumes partitions by their bounds and the engine's fullness. */
void dlv_consumer_balance(dlv_consumer_t *c, bool full);
/* Commits what is finished and leaves the group (every partition is revoked through the
 * hook). */
void dlv_consumer_close(dlv_consumer_t *c);
void dlv_consumer_destroy(dlv_consumer_t *c);
size_t dlv_consumer_assigned(const dlv_consumer_t *c);
/* Why the engine must stop (a partition could not be tracked, out of memory; or the consumer
 * had a fatal error, such as a static member fenced), owned by the consumer; NULL while it need
 * not. */
const char *dlv_consumer_failed(const dlv_consumer_t *c);
const char *dlv_consumer_topic(const dlv_consumer_t *c);
/* The consumer group's id. */
const char *dlv_consumer_group(const dlv_consumer_t *c);

/* The engine finished a record of `part` (its outcome is recorded). */
void dlv_part_finish(dlv_part_t *p, int64_t offset);
int32_t dlv_part_id(const dlv_part_t *p);

#endif
