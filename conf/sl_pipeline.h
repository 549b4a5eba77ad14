/*
 * sl_pipeline: the pipeline file's contract. Its key table (every section, every key, with
 * type, default and description: `sluicectl config reference` prints it), the checks that
 * span sections (a route naming an unknown destination), and the topics the file implies.
 *
 * Every binary loads the one file with sl_pipeline_load(), so an unknown key or a broken
 * reference stops every binary the same way, with the same message, before it does any work.
 */
#ifndef SL_PIPELINE_H
#define SL_PIPELINE_H

#include <stddef.h>
#include <stdio.h>

#include "sl_conf.h"
#include "sl_err.h"
#include "sl_kafka.h"

extern const struct sl_conf_key sl_pipeline_keys[];

/* ingress.max_body_bytes by default. */
#define SL_PIPELINE_MAX_BODY_DEFAULT (1024 * 1024)
/* What the ingress's record may add to the body: its key and headers. The CloudEvents headers
 * are copies of request headers, which all fit in the ingress's 16 KiB per connection; Sluice's
 * own (ids, names, time, trace context) are a few hundred bytes. sl_pipeline_check() refuses
 * a file where max_body_bytes plus this exceeds kafka.max_message_bytes (sl_kafka.h). */
#define SL_PIPELINE_RECORD_ALLOWANCE (32 * 1024)

/* Loads `path`, checks it against the key table and the cross-section rules. The caller owns
 * the result (sl_conf_destroy). */
sl_conf_t *sl_pipeline_load(const char *path, struct sl_err *err)
    __attribute__((warn_unused_result));
/* The cross-section rules alone, for a tree already loaded and key-checked: the Redis URL (see
 * sl_redis_settings), names, sources, routes, destinations, and the record size chain (ingress
 * body, Kafka message). */
int sl_pipeline_check(const sl_conf_t *conf, struct sl_err *err);

/* Every topic the file implies, with the partitions and replication factor of `kafka`. The
 * caller frees *specs and each name with sl_pipeline_topics_free(). */
int sl_pipeline_topics(const sl_conf_t *conf, const struct sl_kafka_settings *kafka,
                       struct sl_topic_spec **specs, size_t *n, struct sl_err *err);
void sl_pipeline_topics_free(struct sl_topic_spec *specs, size_t n);

void sl_pipeline_write_reference(FILE *out);

/* `path` as it is when absolute, else joined to `dir`, into out. -1 when it does not fit. */
int sl_pipeline_join_path(char *out, size_t size, const char *dir, const char *path);
/* The directory the file's schemas are read from: `schema_dir` (default "schemas"), relative
 * to the pipeline file's own directory, into out. 0, or -1 with a file:line error. */
int sl_pipeline_schema_dir(const sl_conf_t *conf, char *out, size_t size, struct sl_err *err);

#endif
