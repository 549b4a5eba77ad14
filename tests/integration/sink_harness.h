/*
 * sink_harness: what the tests of the Postgres sinks (sluice-audit, sluice-deadletter) share:
 * a run with topics of its own on the test broker, a migrated schema of its own (or another
 * server's DSN), a pipeline file pointing at both, the worker as a child process, records with
 * any headers, and waits on Postgres and on /metrics that end on a state, not on time.
 *
 * Every helper fails the current test (and leaves it) when something does not work.
 */
#ifndef SINK_HARNESS_H
#define SINK_HARNESS_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <sys/types.h>

#include "pg_testenv.h"

struct sink_run {
    char prefix[128];
    char topic_ingress[256], topic_dlq[256], topic_audit[256], topic_validated[256];
    char dsn[PG_TEST_DSN_MAX];
    char config[4096];
    char group[128], admin[64];
    int admin_port;
    sl_pg_t *pg; /* on dsn, for the test's own queries */
};

/* Topics <prefix>ingress, validated, audit (3 partitions each) and dlq (1) on the test broker;
 * `dsn` (NULL: a new schema in the test database), migrated; a pipeline file with `extra`
 * YAML appended (sections for the stages: loop settings); a new group and admin port. */
void sink_setup(struct sink_run *r, const char *name, const char *dsn, const char *extra);
/* Destroys r->pg. */
void sink_teardown(struct sink_run *r);

/* Starts build/bin/<binary> with the run's config, group and admin port. */
pid_t sink_start(struct sink_run *r, const char *binary, const char *log);
/* A new consumer group for the next sink_start() (a second reader of the same topic). */
void sink_new_group(struct sink_run *r);

/* Produces one record and waits for the ack (one producer serves the whole process).
 * `headers`: name, value pairs, NULL-terminated (NULL: none). */
void sink_produce(const char *topic, const void *key, size_t key_len, const void *value, size_t len,
                  const char *const *headers);
/* The same without waiting (many records quickly); sink_produce_wait() waits for them all. */
void sink_produce_nowait(const char *topic, const void *key, size_t key_len, const void *value,
                         size_t len, const char *const *headers);
void sink_produce_wait(void);

/* Polls `sql` (its first column, a number) every 100 ms until it equals `want`, for at most
 * `timeout_ms`; returns the last value. */
long long sink_wait_int(sl_pg_t *pg, const char *sql, long long want, int timeout_ms);
/* The value of the series `series` (e.g. `sluice_audit_rows_total{result="existing"}`) on the
 * worker's /metrics; -1 when it is not there. */
double sink_metric(int admin_port, const char *series);
/* Polls the metric until it is at least `want`, for at most `timeout_ms`; returns the last. */
double sink_wait_metric(int admin_port, const char *series, double want, int timeout_ms);
/* Polls /readyz until its status is `status` and (when not NULL) its body contains `needle`;
 * returns the last status. The body goes to `body`. */
long sink_wait_ready(int admin_port, long status, const char *needle, char *body, size_t size,
                     int timeout_ms);

/* The sum of the end offsets (high watermarks) of every partition of `topic`. */
long long sink_end_offsets(const char *topic, int partitions);
/* The sum of the committed offsets of `group` on every partition of `topic` (a partition
 * without a committed offset counts 0). Reads them without joining the group. */
long long sink_committed(const char *group, const char *topic, int partitions);

/* Every record of `topic` (1..3 partitions) until `want` arrived or 60 s passed, and a moment
 * longer to see one too many. The caller frees them with sink_free_records(). */
size_t sink_read(const char *topic, int partitions, rd_kafka_message_t **msgs, size_t want,
                 rd_kafka_t **consumer);
void sink_free_records(rd_kafka_message_t **msgs, size_t n, rd_kafka_t *consumer);
/* The last header `name` of a record, as a string in buf; NULL when absent. */
const char *sink_header(const rd_kafka_message_t *m, const char *name, char *buf, size_t size);

/* Whether the file at `path` contains `needle`. */
int sink_file_contains(const char *path, const char *needle);

/* Releases the producer and drops the schemas the process created: call it after
 * sl_test_run_all(). */
void sink_cleanup(void);

#endif
