/*
 * sl_lag: consumer lag of a pipeline's consumer groups, read from the broker (not from the
 * stages), so it keeps rising while a stage is down.
 *
 * The groups (sl_lag_groups): validate, transform and route, each `<prefix><stage>` or its
 * `<stage>.loop.group_id`, reading <prefix>ingress, <prefix>validated and <prefix>normalized;
 * and one deliver group per destination, `<prefix>deliver.<destination>` on
 * <prefix>deliver.<destination> (sl_group.h).
 *
 * Per partition (sl_lag_read): the group's committed offset (OffsetFetch through the Admin
 * API: it does not join the group, so it is safe while the stage runs), the end offset as a
 * read_committed consumer sees it (the last stable offset: records of an open transaction are
 * not counted yet), their difference, and the age of the oldest unconsumed record (the
 * timestamp of the first record a read_committed consumer gets from the committed offset).
 *
 * One meaning of lag: records the stage has still to consume. A transactional producer's
 * commit marker takes an offset of its own, so after a stage consumed everything a
 * transactional topic holds, the end offset is one past its committed offset; the record
 * fetch finds nothing to consume there and the lag is 0. While records do wait, the count is
 * end - committed and includes the markers among them (one per transaction): an upper bound
 * by at most the number of transactions still unread.
 *
 * A partition with nothing committed counts from its first offset (auto.offset.reset is
 * earliest everywhere), as does a committed offset that retention has deleted.
 *
 * Threads: one sl_lag_t on one thread at a time; sl_lag_groups has no state.
 */
#ifndef SL_LAG_H
#define SL_LAG_H

#include <stddef.h>
#include <stdint.h>

#include "sl_conf.h"
#include "sl_err.h"
#include "sl_group.h"
#include "sl_kafka.h"

/* Groups one pipeline has at most (the three stages and the destinations). */
#define SL_LAG_MAX_GROUPS 256
/* Partitions of one topic that sl_lag_read reports at most. */
#define SL_LAG_MAX_PARTITIONS 1024

struct sl_lag_group {
    char stage[16];        /* validate, transform, route, deliver */
    char destination[128]; /* deliver groups only; "" otherwise */
    char group[SL_GROUP_ID_MAX];
    char topic[SL_TOPIC_NAME_MAX];
};

/* The pipeline's groups in pipeline order (the stages, then the destinations in file order)
 * into out[0..max); *n says how many. -1 with *err on a config error or past `max`. */
int sl_lag_groups(const sl_conf_t *conf, const struct sl_kafka_settings *kafka,
                  struct sl_lag_group *out, size_t max, size_t *n, struct sl_err *err);

struct sl_lag_partition {
    int32_t partition;
    int64_t committed;  /* -1: nothing committed */
    int64_t end;        /* last stable offset */
    int64_t lag;        /* records to consume, 0 when none */
    double age_seconds; /* of the oldest unconsumed record; 0 when none, -1 when not known
                         * (it could not be fetched in time) */
};

typedef struct sl_lag sl_lag_t;

/* A reader with its own Kafka client (group.id `client_id`, which it never joins; `kafka` is
 * borrowed and must outlive it). Does not connect yet. The caller owns it (sl_lag_destroy). */
sl_lag_t *sl_lag_new(const struct sl_kafka_settings *kafka, const char *client_id,
                     struct sl_err *err) __attribute__((warn_unused_result));

/* The lag of group `g` on every partition of its topic (at most `max`; the rest are left out)
 * into `out`, *n of them, in partition order. Each broker call waits at most `timeout_ms`.
 * -1 with *err (retriable when Kafka did not answer) on an error; nothing is reported then. */
int sl_lag_read(sl_lag_t *l, const struct sl_lag_group *g, int timeout_ms,
                struct sl_lag_partition *out, size_t max, size_t *n, struct sl_err *err);

/* NULL is a no-op. */
void sl_lag_destroy(sl_lag_t *l);

#endif
