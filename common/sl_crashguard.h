/*
 * sl_crashguard: a record that crashes the consuming process again and again must not stall
 * its partition.
 *
 * A process that dies inside a record (a segfault in a library, an abort, the OOM killer)
 * restarts, resumes at the committed offset and meets the same record again: without help the
 * partition never moves and nothing says why. The guard leaves a marker in Redis before
 * records are processed, and a restart (on any node: Kubernetes moves pods) reads it:
 *
 *   key   <topic>:crashguard:<group>:<partition>
 *   value "<first offset> <-1 | the same offset> <crashes>"   (expires after SL_CRASHGUARD_TTL_MS)
 *
 * Normal operation costs one SET per partition per batch (at the batch's first record of the
 * partition, "F -1 0") and one pipelined DEL per batch once its records are processed
 * (done(), before the commit: a death during the commit is no record's doing). A marker
 * found at assignment means a process died while processing that partition from offset F on
 * (at or above the committed offset: a marker below it names a batch that was committed, and
 * is ignored). The new owner then replays that partition one
 * record at a time ("alone": the caller commits before and after each), for `walk` records
 * from F, marking each record alone ("O O c") with the crashes counted so far (c: one for the
 * batch that died). A process that dies on a record alone leaves a marker naming exactly that
 * record; the next owner counts one more crash, and once a record has crashed the process
 * max_crashes times, enter() answers SL_CRASHGUARD_CRASHED: the caller does not process it
 * again but dead-letters it with reason SL_CRASHGUARD_REASON, and the partition moves on. So a
 * poison record costs max_crashes restarts (the first, in a batch, finds it; the later ones
 * confirm it). Crashes not caused by a record (a node lost, a kill -9 during a batch) count
 * too, which is why one is not enough; a clean shutdown leaves no marker.
 *
 * Redis down: the guard steps aside (a warning once per outage, the gauge
 * sluice_crashguard_up 0, retried every SL_CRASHGUARD_RETRY_MS) and records are processed
 * unguarded: a crash loop during a Redis outage is not caught, and a process that dies with a
 * marker it could not clear may later count one crash too many (harmless below max_crashes).
 * The stage itself never waits on the guard longer than one Redis command deadline.
 *
 * Metrics (label stage): sluice_stage_crashes_total (deaths found by a restart),
 * sluice_stage_crashed_records_total (records dead-lettered for crashing the process),
 * sluice_crashguard_up.
 *
 * Threading: one thread uses a guard and its topics.
 */
#ifndef SL_CRASHGUARD_H
#define SL_CRASHGUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "sl_err.h"
#include "sl_metrics.h"

#define SL_CRASHGUARD_REASON         "crashed_stage"
#define SL_CRASHGUARD_DEFAULT_MAX    3
#define SL_CRASHGUARD_MAX_MAX        100
#define SL_CRASHGUARD_PARTITIONS_MAX 4096 /* partition ids of one topic */
#define SL_CRASHGUARD_MARKED_MAX     1024 /* partitions marked in one batch, over all topics */
#define SL_CRASHGUARD_TTL_MS         (7LL * 24 * 3600 * 1000)
#define SL_CRASHGUARD_RETRY_MS       5000 /* how long the guard steps aside after a Redis error */

typedef struct sl_crashguard sl_crashguard_t;
typedef struct sl_crashguard_topic sl_crashguard_topic_t;

struct sl_crashguard_opts {
    const char *stage;     /* the metrics' stage label and the log */
    const char *redis_url; /* sl_redis_new(); copied */
    int redis_timeout_ms;  /* per command */
    int max_crashes;       /* 1..SL_CRASHGUARD_MAX_MAX; 0 turns the guard off */
    sl_metrics_t *metrics; /* borrowed */
};

/* Does not connect (the first marker does). NULL with *err on a bad URL or out of memory. */
sl_crashguard_t *sl_crashguard_new(const struct sl_crashguard_opts *opts, struct sl_err *err)
    __attribute__((warn_unused_result));
/* Frees the guard and its topics; markers stay in Redis as they are. NULL is a no-op. */
void sl_crashguard_destroy(sl_crashguard_t *g);

/* The handle of `topic` consumed by `group` (both copied), owned by the guard. `walk`: how
 * many records to replay alone after a batch died (the largest batch, >= 1). */
sl_crashguard_topic_t *sl_crashguard_topic(sl_crashguard_t *g, const char *group, const char *topic,
                                           int walk, struct sl_err *err)
    __attribute__((warn_unused_result));

/* A partition was assigned; `committed` is where the group resumes (-1: unknown). Reads the
 * marker a dead process left (one GET). */
void sl_crashguard_assigned(sl_crashguard_topic_t *t, int32_t partition, int64_t committed);
/* A partition was revoked: its state is forgotten, its marker left for the next owner. */
void sl_crashguard_revoked(sl_crashguard_topic_t *t, int32_t partition);

/* True when the record at `offset` must be processed alone: commit what is open before
 * enter(), and commit right after the record. */
bool sl_crashguard_alone(const sl_crashguard_topic_t *t, int32_t partition, int64_t offset);

enum sl_crashguard_verdict {
    SL_CRASHGUARD_GO,     /* process it */
    SL_CRASHGUARD_CRASHED /* it crashed the process max_crashes times: dead-letter it */
};
/* Before processing the record at `offset`: marks it (the batch's first record of the
 * partition, or a record alone). *crashes (may be NULL) gets how often it crashed the
 * process. */
enum sl_crashguard_verdict sl_crashguard_enter(sl_crashguard_topic_t *t, int32_t partition,
                                               int64_t offset, int *crashes);
/* The batch's records (or the record alone) are processed, and what is left is committing
 * them: clears the markers set since the last call, in one round trip. */
void sl_crashguard_done(sl_crashguard_t *g);

#endif
