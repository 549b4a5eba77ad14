/*
 * sl_stage: what a stage author writes against. A stage is one struct of callbacks; the shared
 * consume-process-produce loop (sl_loop) does everything else, once, for every stage.
 *
 *   static const struct sl_stage validate_stage = {
 *       .name = "validate", .input = SL_TOPIC_INGRESS, .admin_port = 9181,
 *       .init = validate_init, .process = validate_process, .fini = validate_fini,
 *   };
 *   int main(int argc, char **argv) { return worker_main(argc, argv, &validate_stage); }
 *
 * process() sees one event at a time and answers with a verdict:
 *
 *   SL_PASS       the event goes on: the records it emitted (zero or more) are produced.
 *   SL_FILTERED   terminal: no rule wanted it (recorded in the audit trail, nothing produced).
 *   SL_DUPLICATE  terminal: the same business event was already accepted.
 *   SL_REJECT     the event is dead-lettered to <prefix>dlq with the stage, the reason and the
 *                 errors the stage gave, and the original payload, key and headers.
 *   SL_RETRY      a dependency is down (Redis, an HTTP lookup): the loop keeps the event,
 *                 commits nothing for it, backs off and calls process() again with the same
 *                 event. It never drops or dead-letters it for that.
 *
 * Records emitted during a call that does not end in SL_PASS are discarded.
 *
 * Two kinds of stage:
 *   SL_STAGE_KAFKA (validate, transform, route): every event yields exactly one audit record,
 *     in the same Kafka transaction as the outputs and the consumer offsets (exactly-once
 *     inside Kafka).
 *   SL_STAGE_SINK (audit, deadletter): process() buffers what it will write outside Kafka
 *     (Postgres); before the offsets are committed, the loop calls flush(), which writes the
 *     buffer. A retriable flush error pauses consumption and retries the same flush after a
 *     backoff, committing nothing meanwhile; when the loop has to give the records up (a
 *     rebalance, an abort), it calls discard() and reads them again later. So a sink sees a
 *     record at least once and its writes must be idempotent. Sinks write no audit records
 *     (the audit sink would audit itself); their dead letters are acknowledged before the
 *     offsets are committed.
 *
 * Threading: init, process and fini run on the loop's one thread.
 */
#ifndef SL_STAGE_H
#define SL_STAGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sl_cloudevent.h"
#include "sl_conf.h"
#include "sl_err.h"
#include "sl_metrics.h"

enum sl_verdict { SL_PASS, SL_FILTERED, SL_DUPLICATE, SL_REJECT, SL_RETRY };

/* One input event, valid for the duration of the process() call. */
struct sl_event {
    /* Its CloudEvents attributes; the required ones are guaranteed, except in a stage with
     * `any_record`, where a record that is not a CloudEvent arrives with whatever attributes
     * its headers carry (possibly none). */
    const struct sl_ce *ce;
    const void *data; /* the record value */
    size_t len;
    const void *key; /* the record key (partition key), may be NULL */
    size_t key_len;
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /* record timestamp, -1 when unknown */
    int attempt;          /* 1 on the first call, 2.. after SL_RETRY */
};

/* Collects what process() produces for one event. Owned by the loop. */
struct sl_emit;

/* Bounds on what one event may produce. */
#define SL_EMIT_MAX_RECORDS 64
#define SL_EMIT_MAX_ERRORS  100
#define SL_EMIT_REASON_MAX  1024

/* Queues one output record to `<prefix><topic>` (e.g. SL_TOPIC_VALIDATED). Everything is
 * copied. The attributes must hold the required CloudEvents ones. */
int sl_emit_record(struct sl_emit *out, const char *topic, const struct sl_ce *ce, const void *key,
                   size_t key_len, const void *value, size_t len, struct sl_err *err);
/* The reason of a SL_REJECT, SL_FILTERED, SL_DUPLICATE or SL_RETRY verdict: one line. */
void sl_emit_reason(struct sl_emit *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* One error of a rejected event (e.g. one schema violation); at most SL_EMIT_MAX_ERRORS are
 * kept, the rest counted. */
void sl_emit_error(struct sl_emit *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON object whose members go into this event's audit record under "detail" (borrowed;
 * add members with json_object_set_new). */
json_t *sl_emit_detail(struct sl_emit *out);

/* ---- A collector outside the loop, for stage tests without infrastructure ----
 * The loop makes its own collector and resets it before every process() call; a stage never
 * calls these. A test makes one, calls process() with an in-memory event, and reads what the
 * stage produced, exactly as the loop would use it. */

/* A new, empty collector whose records go to `<prefix><topic>`; `prefix` is borrowed and must
 * outlive it. NULL when out of memory. The caller owns it (sl_emit_free). */
struct sl_emit *sl_emit_new(const char *prefix);
/* Frees the collector and everything queued in it. NULL is a no-op. */
void sl_emit_free(struct sl_emit *out);
/* Forgets every record, the reason, the errors and the detail (the loop does this before each
 * event). */
void sl_emit_clear(struct sl_emit *out);
/* Output records queued. */
size_t sl_emit_count(const struct sl_emit *out);
/* The i-th queued record (i < sl_emit_count()): the full topic name, key (NULL when none),
 * value and headers, all borrowed from the collector. */
void sl_emit_get_record(const struct sl_emit *out, size_t i, const char **topic, const void **key,
                        size_t *key_len, const void **value, size_t *len,
                        const rd_kafka_headers_t **hdrs);
/* The reason given with sl_emit_reason(); "" when none. */
const char *sl_emit_get_reason(const struct sl_emit *out);
/* The errors given with sl_emit_error(): an array of strings, borrowed; *dropped (may be NULL)
 * counts those past SL_EMIT_MAX_ERRORS. */
const json_t *sl_emit_get_errors(const struct sl_emit *out, size_t *dropped);

/* What init() gets besides the pipeline file. */
struct sl_stage_env {
    const sl_conf_t *conf;
    sl_metrics_t *metrics; /* register the stage's own metrics here */
    const char *topic_prefix;
};

enum sl_stage_kind { SL_STAGE_KAFKA = 0, SL_STAGE_SINK };

struct sl_stage {
    const char *name; /* component, consumer group "<topic_prefix><name>", audit stage */
    enum sl_stage_kind kind;
    const char *description; /* one line for --help */
    const char *input;       /* topic consumed, without prefix, e.g. SL_TOPIC_INGRESS */
    int admin_port;          /* default admin listener port on 127.0.0.1 */
    /* false: the loop dead-letters a record that is not a CloudEvent. true: process() gets it
     * (for the dead-letter sink, whose input holds exactly the records others could not read:
     * dead-lettering them again would bring them back to it forever). */
    bool any_record;
    /* Builds the stage's context from the pipeline file; a config error fails start-up. */
    int (*init)(void **ctx, const struct sl_stage_env *env, struct sl_err *err);
    enum sl_verdict (*process)(void *ctx, const struct sl_event *in, struct sl_emit *out);
    /* SL_STAGE_SINK only: write what process() buffered since the last flush; 0, or -1 with
     * *err (retriable: tried again later; otherwise the process stops). */
    int (*flush)(void *ctx, struct sl_err *err);
    /* SL_STAGE_SINK only: forget what process() buffered since the last flush. */
    void (*discard)(void *ctx);
    void (*fini)(void *ctx);
};

#endif
