/*
 * transform_fixture: the example mappings' fixtures, tests/data/transform/<rule>.input.json and
 * <rule>.expected.json, shared by the unit, integration and e2e tests of sluice-transform.
 *
 * A fixture is a record as it sits in Kafka:
 *   {"key": "<record key>", "headers": {"<header>": "<value>", ...}, "data": <payload as JSON>}
 * with the headers in record order. The payload is `data` as compact JSON, members in file
 * order, which is also how the stage writes its output; so "the expected record" is exact: the
 * key, every header in order, and the payload bytes.
 */
#ifndef TRANSFORM_FIXTURE_H
#define TRANSFORM_FIXTURE_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "sl_cloudevent.h"

/* The rules of deploy/examples/pipeline.yaml that have fixtures, NULL-terminated. */
extern const char *const tf_example_rules[];

/* Loads tests/data/transform/<rule>.<kind>.json (kind "input" or "expected"); fails the test
 * when it cannot. The caller owns the result. */
json_t *tf_load(const char *rule, const char *kind);

/* The fixture's record key, borrowed from fx. */
const char *tf_key(const json_t *fx);

/* The fixture's headers, in order, as Kafka headers (the caller destroys them) or as
 * CloudEvents attributes (an initialised `ce` to fill; the caller frees it). */
rd_kafka_headers_t *tf_headers(const json_t *fx);
void tf_ce(const json_t *fx, struct sl_ce *ce);

/* The payload: `data` as compact JSON. The caller frees it. */
char *tf_payload(const json_t *fx, size_t *len);

/* Checks a record against an expected fixture (key, headers in order, payload bytes); each
 * difference is a test failure naming `what`. */
void tf_check_record(const json_t *expected, const void *key, size_t key_len,
                     const rd_kafka_headers_t *hdrs, const void *value, size_t len,
                     const char *what);

#endif
