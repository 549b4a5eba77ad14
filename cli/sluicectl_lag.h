/*
 * sluicectl_lag: `sluicectl lag`, consumer lag per stage, topic and partition, from the broker.
 *
 * Every consumer group of the pipeline, read by sl_lag (see sl_lag.h for what lag means: records
 * still to consume, 0 on a transactional topic whose only unread offset is a commit marker).
 *
 * Output (-o table, the default): STAGE GROUP TOPIC PARTITION COMMITTED END LAG AGE_S, "-" for
 * nothing committed or an unknown age. -o json (alias --json): one object
 *   {"items": [{"stage", "destination", "group", "topic", "partition", "committed", "end", "lag",
 *               "age_seconds"}, ...]}
 * with committed -1 for nothing committed, age_seconds -1 when unknown, destination the
 * destination's name on deliver groups and null on the others. The partitions of groups that could
 * not be read are missing (exit 1, the reason on stderr). Exit codes: 0 success, 1 Kafka could not
 * be asked, 2 usage or config error.
 */
#ifndef SLUICECTL_LAG_H
#define SLUICECTL_LAG_H

/* `config` is the pipeline file or NULL (then a usage error); argv[0] is "lag", options
 * follow. Returns the exit code. */
int sluicectl_lag(const char *config, int argc, char **argv);

#endif
