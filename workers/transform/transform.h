/*
 * transform: sluice-transform, the stage between <prefix>validated and <prefix>normalized that
 * maps events to canonical models and enriches them.
 *
 * Rules (the pipeline's `transforms`, in file order) are jq programs over the event as a
 * CloudEvents JSON object ({"specversion","id","source","type","time",...,"data"}, every
 * attribute included, e.g. `sluicesource`, the configured source it came in through):
 *
 *   1. The first rule whose `when` holds (no `when`: every event) maps the event; later rules
 *      are not asked.
 *   2. Its `lookups` run in order (lookup.h); each result becomes `.lookups.<name>` of the input
 *      of the later lookups and of the mapping (`lookups` is reserved there: an event attribute
 *      of that name is replaced). A miss follows the rule's `on_missing` (fail:
 *      dead letter; null: the result is null). A lookup whose dependency is down or busy holds
 *      the event (SL_RETRY, the reason on /readyz) until it answers: nothing behind it is read
 *      meanwhile, and nothing is dead-lettered for it.
 *   3. Its `jq` must give exactly one output, {"type": <string>, "data": <any JSON>}, nothing
 *      else. `data` is checked against the rule's `schema` (a canonical JSON Schema under
 *      schema_dir; formats are assertions unless `transform.assert_formats: false`).
 *   4. The record to <prefix>normalized keeps the input's key and every attribute (id, source,
 *      time, traceparent, partitionkey, sluicesource, ...) except: `type` is the new type, the
 *      old one goes to `sluiceorigtype`, `datacontenttype` is application/json, and a
 *      `dataschema` (it described the old data) is dropped. The payload is `data` as compact
 *      JSON, members in the order the mapping built them.
 *
 * An event no rule matches passes unchanged (the same attributes, key and payload bytes), or is
 * dead-lettered with `transform.required: true`. Everything that goes wrong for one event is a
 * dead letter naming the rule: "transform '<rule>': ..." for an expression that fails at run
 * time or runs out of its budget (a fatal budget error also stops the process after the dead
 * letter, as sl_expr asks), a lookup that fails or misses with on_missing: fail, an output that
 * is not {type, data}, data over TRANSFORM_MAX_DATA, or data that does not match the schema
 * (every violation listed as "<instance path>: <keyword location>: <message>"). So a broken
 * mapping never sends malformed data downstream. Payloads that are not JSON (under a JSON
 * content type) are dead-lettered before any rule runs.
 *
 * Start-up compiles every expression and schema once; a broken one stops the binary with
 * "<file>:<line>: <key>: ..." naming the rule. transform_check_config() runs the same checks for
 * `sluicectl config check`, without connecting anywhere.
 *
 * Audit detail: {"rule": <name or null>, "original_type", "schema", "lookups": {"<name>":
 * "found"|"cached"|"missing"}}. Metrics: sluice_transform_events_total{rule,result} (result:
 * mapped, passed, unmatched, missing, failed, invalid), sluice_transform_lookups_total{rule,
 * lookup,result} (found, cached, missing, retry, failed) and
 * sluice_transform_lookup_seconds{type} (redis, http).
 */
#ifndef TRANSFORM_H
#define TRANSFORM_H

#include "sl_conf.h"
#include "sl_err.h"
#include "sl_stage.h"

#define TRANSFORM_MAX_RULES   256
#define TRANSFORM_MAX_LOOKUPS 16 /* per rule */
/* Bytes of an output payload: with the largest headers sl_ce allows (32 x 4 KiB) the record
 * stays below librdkafka's default message.max.bytes (1,000,000). */
#define TRANSFORM_MAX_DATA (800 * 1024)

extern const struct sl_stage transform_stage;

/* What sluicectl config check runs for this stage: compiles every rule's expressions, lookups
 * and schema, as start-up would. 0, or -1 with *err naming file, line and key. */
int transform_check_config(const sl_conf_t *conf, struct sl_err *err)
    __attribute__((warn_unused_result));

#endif
