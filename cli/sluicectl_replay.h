/*
 * sluicectl_replay: `sluicectl replay`, re-process a stage's input topic from a point in time
 * (after an outage, a bad deployment, a destination that lost data).
 *
 *   sluicectl [--config FILE] replay --stage STAGE [--destination NAME] --from TIME
 *                                    [--group ID] [--dry-run]
 *
 * How: the stage's consumer group is rewound. For every partition of the stage's input topic
 * the offset of the first record at or after TIME is looked up (offsets_for_times; a partition
 * with no such record gets its end offset) and committed for the group with the Admin API
 * (AlterConsumerGroupOffsets). The stage, when started again, reads from there. This only
 * happens while the group has no members: the group is described first and a group with
 * members is refused with their names ("stop sluice-<stage> first"); the broker itself also
 * refuses an offset commit from outside into a group with members, which covers a stage
 * started between the two requests.
 *
 * A replay never skips: a partition whose committed offset is already before TIME's offset
 * (the stage had not got that far) keeps its committed offset, and a partition with nothing
 * committed is left alone (the stages start such a partition from its earliest offset, which
 * includes TIME). So every record from TIME on is processed again, and nothing not yet
 * processed is passed over.
 *
 * Why a rewind rather than re-producing the range into the input topic: a copy of a record is
 * a new record. Validate's dedup claim names the Kafka record that claimed an idempotency key
 * (<topic>/<partition>/<offset>), so the same record read again gets SAME and passes, while a
 * copy would get DUPLICATE and be dropped: a re-produced replay into <prefix>ingress would
 * replay nothing. A rewind also keeps each partition's order and needs no second copy of the
 * data. The price is that the stage must be stopped while the offsets move (an outage replay
 * happens when the stage is down or has just been stopped anyway), and that a range cannot be
 * bounded: the stage reads from TIME to the end of the topic. For that reason --to is refused
 * with an explanation rather than silently ignored.
 *
 * Why it is safe to process records again:
 *   - validate: the same record gets SAME from its dedup claim and passes again;
 *   - validate, transform and route are transactional: they produce the events again (each
 *     with the same event id) into their output topic;
 *   - deliver: the delivery ledger in Redis (<deliver topic>:ledger:<event id>) is checked before
 *     sending; an event already delivered is not sent again (outcome "delivered" from the
 *     ledger, metric sluice_deliver_outcomes_total{outcome="already_delivered"}).
 * tests/fault/test_replay_outage.c checks this end to end.
 *
 * Stages, input topics and groups (the same as `sluicectl lag`):
 *   validate   <prefix>ingress                 validate.loop.group_id  (default <prefix>validate)
 *   transform  <prefix>validated               transform.loop.group_id (default <prefix>transform)
 *   route      <prefix>normalized              route.loop.group_id     (default <prefix>route)
 *   deliver    <prefix>deliver.<destination>   <prefix>deliver.<destination> (--destination)
 * --group ID names the group when the stage runs with its own --group.
 *
 * TIME: RFC 3339 ("2026-11-24T20:00:00Z", "2026-11-24 21:00:00.250+01:00"), or a duration ago
 * ("-2h", "-30m"). A TIME in the future is refused.
 *
 * Output: per partition the committed offset, the new one, the end offset and how many offsets
 * will be read again (in a topic written by transactions, the transaction markers take offsets
 * too, so this is an upper bound of the records), then what was reset. --dry-run prints the
 * same table and changes nothing.
 *
 * Exit codes: 0 done (or nothing to do), 1 the operation failed or was refused (group active,
 * no such topic, Kafka unreachable), 2 usage or config error.
 */
#ifndef SLUICECTL_REPLAY_H
#define SLUICECTL_REPLAY_H

/* `config` is the pipeline file or NULL (then a usage error); argv[0] is "replay". Returns the
 * exit code. */
int sluicectl_replay(const char *config, int argc, char **argv);

#endif
