/*
 * sluicectl_lag: `sluicectl lag`, consumer lag per stage, topic and partition, from the broker.
 *
 * For each stage's consumer group (from the pipeline file: <prefix><stage> or its
 * `<stage>.loop.group_id`; <prefix>deliver.<destination> for delivery), the group's committed
 * offsets (OffsetFetch: it does not join the group, so it is safe while the stage runs) are
 * compared with each partition's end offset. Transactional stages commit their offsets through
 * the producer, which a consumer's own statistics never see; the group's committed offsets are
 * the truth either way. A partition with nothing committed counts from its first offset.
 *
 * Output: a table (STAGE GROUP TOPIC PARTITION COMMITTED END LAG), or JSON lines with --json.
 * Exit codes: 0 success, 1 Kafka could not be asked, 2 usage or config error.
 */
#ifndef SLUICECTL_LAG_H
#define SLUICECTL_LAG_H

#include "sl_conf.h"

/* argv[0] is "lag"; options follow. */
int sluicectl_lag(const sl_conf_t *conf, int argc, char **argv);

#endif
