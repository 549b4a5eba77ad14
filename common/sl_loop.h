/*
 * sl_loop: the one consume -> process -> produce loop that every transactional stage runs.
 *
 * Exactly-once inside Kafka (KIP-98/447, librdkafka's examples/transactions.c):
 *
 *   poll one record -> stage.process() -> outputs (or a dead letter) + one audit record are
 *   produced inside the open transaction -> every batch_max_events records or batch_max_wait,
 *   the consumer positions go into the transaction (send_offsets_to_transaction) and it
 *   commits. A failed commit that requires an abort rewinds every assigned partition to its
 *   committed offset, so nothing is lost and nothing is produced twice. A fenced or otherwise
 *   fatal producer ends the process (non-zero), for the supervisor to restart.
 *
 * Consumers read with isolation.level=read_committed, cooperative-sticky assignment, and
 * static membership when an instance id is given. The transactional.id is
 * "<group>-<instance>", stable across restarts, so a restarted process fences its zombie.
 *
 * Crash loops (sl_crashguard.h): before a batch's first record of a partition, a marker in Redis
 * names it; it is cleared once the batch is processed (before the commit, so a kill during the
 * commit is charged to no record). A restart that finds one replays that partition one record
 * per transaction, and a record that crashed the process max_crashes times is dead-lettered
 * with reason crashed_stage (and its audit record) without being processed again, so one
 * poison record never stalls a partition. A stage with `any_record` (its input is the
 * dead-letter topic) cannot dead-letter it again: it skips the record with an error log naming
 * topic, partition and offset (the record stays readable there until the topic's retention).
 *
 * SL_RETRY from the stage: the transaction is committed up to the event before, every
 * partition is paused (lag builds, visible), and the same event is offered again after an
 * exponential backoff. Records already fetched are never reordered.
 *
 * Threading: everything runs on the thread that calls sl_loop_run(), except sl_loop_ready()
 * and the metrics collect hook, which the admin thread calls (they take the loop's lock).
 */
#ifndef SL_LOOP_H
#define SL_LOOP_H

#include <stdbool.h>
#include <stddef.h>

#include "sl_conf.h"
#include "sl_err.h"
#include "sl_kafka.h"
#include "sl_live.h"
#include "sl_metrics.h"
#include "sl_stage.h"

typedef struct sl_loop sl_loop_t;

/* The rows of a stage section's `loop` sub-section. */
extern const struct sl_conf_key sl_loop_conf_keys[];

struct sl_loop_opts {
    const struct sl_stage *stage;
    void *stage_ctx;
    const struct sl_kafka_settings *kafka;
    const char *group_id;    /* consumer group; "<topic_prefix><stage>" by default (sl_group) */
    const char *instance_id; /* stable per replica; NULL: hostname, without static membership */
    int batch_max_events;
    int batch_max_wait_ms;
    int transaction_timeout_ms;
    int retry_initial_ms;
    int retry_max_ms;
    /* The crash guard (sl_crashguard.h): a record that crashed the process max_crashes times
     * is dead-lettered (crashed_stage) instead of being processed again; 0 turns it off. Its
     * markers live in Redis at redis_url (borrowed). */
    int max_crashes;
    const char *redis_url;
    int redis_timeout_ms;
    sl_metrics_t *metrics;
    sl_live_t *live; /* beaten at every turn of the loop; may be NULL */
};

/* Defaults for everything but stage, stage_ctx, kafka, metrics and live. */
void sl_loop_opts_default(struct sl_loop_opts *opts);
/* Overrides from the `<stage>.loop` section of the pipeline file (absent: defaults). */
int sl_loop_opts_load(struct sl_loop_opts *opts, const sl_conf_t *conf, struct sl_err *err);

/* Borrows everything in opts; they must outlive the loop. */
sl_loop_t *sl_loop_new(const struct sl_loop_opts *opts, struct sl_err *err)
    __attribute__((warn_unused_result));
/* Runs until sl_signal_stopping(); then commits what is done, leaves the group and returns 0.
 * Returns -1 on a fatal error (fenced producer, broken broker state) with *err filled. */
int sl_loop_run(sl_loop_t *loop, struct sl_err *err);
/* Readiness for /readyz: false while the stage waits on a dependency (SL_RETRY) or before
 * the transactional producer is initialised. */
bool sl_loop_ready(void *loop, char *why, size_t why_size);
void sl_loop_destroy(sl_loop_t *loop);

#endif
