/*
 * sluicectl_lag: `sluicectl lag`, consumer lag per stage, topic and partition, from the broker.
 *
 * Every consumer group of the pipeline, read by sl_lag (see sl_lag.h for what lag means: records
 * still to consume, 0 on a transactional topic whose only unread offset is a commit marker).
 *
 * Output: a table (STAGE GROUP TOPIC PARTITION COMMITTED END LAG AGE_S; "-" for nothing
 * committed or an unknown age), or JSON lines with --json (committed -1 for nothing committed,
 * age_seconds -1 when unknown, destination on deliver groups).
 * Exit codes: 0 success, 1 Kafka could not be asked, 2 usage or config error.
 */
#ifndef SLUICECTL_LAG_H
#define SLUICECTL_LAG_H

#include "sl_conf.h"

/* argv[0] is "lag"; options follow. */
int sluicectl_lag(const sl_conf_t *conf, int argc, char **argv);

#endif
