/*
 * sl_group: the consumer groups of a pipeline, and the hand-over of committed offsets from
 * the group names used before they were derived from the pipeline.
 *
 * Pipelines that share a Kafka cluster are isolated by their topic prefix; their consumer
 * groups (and the transactional ids built from them) must be too, or two pipelines' replicas
 * join one group, split each other's partitions and fence each other's producers. Every
 * default group is therefore "<topic_prefix><name>": "sluice.validate",
 * "sluice.deliver.crm": pipelines whose topic names are apart have their groups apart too.
 *
 * Upgrading: earlier versions used "sluice-<stage>" and "sluice-deliver-<destination>",
 * whatever the prefix. sl_group_adopt() runs before a consumer subscribes: when its group
 * has committed nothing on its input topic yet (the first start after the upgrade), it
 * copies the old group's committed offsets of that topic into the new group, so the stage
 * resumes where the old version stopped instead of at the earliest offset. Offsets are per
 * topic, so a pipeline only ever takes the positions of its own topics, even when pipelines
 * shared the old group. The old version must be stopped before the new one starts (a group
 * change is not a rolling upgrade: the two groups would read the same records).
 */
#ifndef SL_GROUP_H
#define SL_GROUP_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "sl_err.h"
#include "sl_kafka.h"

/* Longest group id we build (client ids and transactional ids append to it). */
#define SL_GROUP_ID_MAX 256

/* "<topic_prefix><name>" into buf; -1 with *err when it does not fit. */
int sl_group_id(const struct sl_kafka_settings *s, const char *name, char *buf, size_t size,
                struct sl_err *err);

/* The committed offsets of `group` on the partitions of `topic` (partitions with nothing
 * committed are left out: none committed is an empty list), read through the Admin API on
 * `rk` (any client handle; it does not join the group) with its answer awaited on `q` (a queue
 * of `rk`, owned by the caller). The caller destroys the list. NULL with *err (retriable when
 * Kafka did not answer) on an error. */
rd_kafka_topic_partition_list_t *sl_group_committed(rd_kafka_t *rk, rd_kafka_queue_t *q,
                                                    const char *group, const char *topic,
                                                    struct sl_err *err);

/* When `group` has no committed offset on any partition of `topic`, commits `legacy`'s
 * committed offsets of `topic` (if any) to `group`, through the Admin API on `rk` (any
 * client handle; call before it subscribes). Retries while Kafka is unreachable, until
 * sl_signal_stopping(). 0 when done or nothing to do; -1 with *err otherwise. */
int sl_group_adopt(rd_kafka_t *rk, const char *group, const char *legacy, const char *topic,
                   struct sl_err *err);

#endif
