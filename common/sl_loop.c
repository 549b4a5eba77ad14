#include "sl_loop.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sl_crashguard.h"
#include "sl_group.h"
#include "sl_log.h"
#include "sl_record.h"
#include "sl_redis.h"
#include "sl_signal.h"

/* How long one Kafka control call (init, commit, abort, seek) may take before it is retried
 * or treated as fatal. */
#define LOOP_CALL_TIMEOUT_MS 60000
/* Upper bound of partitions one replica tracks for lag. */
#define LOOP_MAX_PARTITIONS 1024

const struct sl_conf_key sl_loop_conf_keys[] = {
    {"group_id", SL_CK_STRING, "<topic_prefix><stage>", "Consumer group of the stage."},
    {"batch_max_events", SL_CK_INT, "1000", "Events per transaction at most.", NULL, 1, 100000},
    {"batch_max_wait", SL_CK_DURATION, "100ms",
     "Longest time a transaction stays open before it commits.", NULL, 1, 60000},
    {"transaction_timeout", SL_CK_DURATION, "60s",
     "transaction.timeout.ms: the broker aborts a transaction left open longer (a dead replica).",
     NULL, 1000, 900000},
    {"retry_initial", SL_CK_DURATION, "100ms", "First backoff when a dependency is down.", NULL, 1,
     60000},
    {"retry_max", SL_CK_DURATION, "30s", "Largest backoff when a dependency is down.", NULL, 1,
     600000},
    {"max_crashes", SL_CK_INT, "3",
     "A record that crashed the process this many times is dead-lettered (reason crashed_stage) "
     "instead of being processed again; the markers live in Redis; 0 turns the guard off.",
     NULL, 0, SL_CRASHGUARD_MAX_MAX},
    {NULL},
};

/* ------------------------------------------------------------------------------------------ */
/* The emit collector                                                                          */

struct emit_record {
    char topic[SL_TOPIC_NAME_MAX];
    rd_kafka_headers_t *hdrs;
    void *key;
    size_t key_len;
    void *value;
    size_t len;
};

struct sl_emit {
    const char *prefix;
    struct emit_record recs[SL_EMIT_MAX_RECORDS];
    size_t n;
    char reason[SL_EMIT_REASON_MAX];
    json_t *errors;
    size_t errors_dropped;
    json_t *detail;
};

static void emit_reset(struct sl_emit *out)
{
    for (size_t i = 0; i < out->n; i++) {
        if (out->recs[i].hdrs)
            rd_kafka_headers_destroy(out->recs[i].hdrs);
        free(out->recs[i].key);
        free(out->recs[i].value);
    }
    out->n = 0;
    out->reason[0] = '\0';
    json_array_clear(out->errors);
    out->errors_dropped = 0;
    json_object_clear(out->detail);
}

int sl_emit_record(struct sl_emit *out, const char *topic, const struct sl_ce *ce, const void *key,
                   size_t key_len, const void *value, size_t len, struct sl_err *err)
{
    if (out->n == SL_EMIT_MAX_RECORDS)
        return sl_err_set(err, SL_ERR_NOMEM, "more than %d output records for one event",
                          SL_EMIT_MAX_RECORDS);
    struct emit_record *r = &out->recs[out->n];
    int n = snprintf(r->topic, sizeof(r->topic), "%s%s", out->prefix, topic);
    if (n < 0 || (size_t)n >= sizeof(r->topic))
        return sl_err_set(err, SL_ERR_INVALID, "topic name %s%s too long", out->prefix, topic);
    r->hdrs = rd_kafka_headers_new(ce->n + 1);
    r->key = key_len ? malloc(key_len) : NULL;
    r->value = len ? malloc(len) : NULL;
    if ((key_len && !r->key) || (len && !r->value)) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (sl_ce_to_headers(ce, r->hdrs, err) != 0)
        goto fail;
    if (key_len)
        memcpy(r->key, key, key_len);
    if (len)
        memcpy(r->value, value, len);
    r->key_len = key_len;
    r->len = len;
    out->n++;
    return 0;
fail:
    rd_kafka_headers_destroy(r->hdrs);
    free(r->key);
    free(r->value);
    return -1;
}

void sl_emit_reason(struct sl_emit *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
    va_end(ap);
    for (char *p = out->reason; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

void sl_emit_error(struct sl_emit *out, const char *fmt, ...)
{
    if (json_array_size(out->errors) == SL_EMIT_MAX_ERRORS) {
        out->errors_dropped++;
        return;
    }
    char msg[SL_EMIT_REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_array_append_new(out->errors, json_string(msg));
}

json_t *sl_emit_detail(struct sl_emit *out)
{
    return out->detail;
}

struct sl_emit *sl_emit_new(const char *prefix)
{
    struct sl_emit *out = calloc(1, sizeof(*out));
    if (!out)
        return NULL;
    out->prefix = prefix;
    out->errors = json_array();
    out->detail = json_object();
    if (!out->errors || !out->detail) {
        sl_emit_free(out);
        return NULL;
    }
    return out;
}

void sl_emit_free(struct sl_emit *out)
{
    if (!out)
        return;
    emit_reset(out);
    json_decref(out->errors);
    json_decref(out->detail);
    free(out);
}

void sl_emit_clear(struct sl_emit *out)
{
    emit_reset(out);
}

size_t sl_emit_count(const struct sl_emit *out)
{
    return out->n;
}

void sl_emit_get_record(const struct sl_emit *out, size_t i, const char **topic, const void **key,
                        size_t *key_len, const void **value, size_t *len,
                        const rd_kafka_headers_t **hdrs)
{
    const struct emit_record *r = &out->recs[i];
    *topic = r->topic;
    *key = r->key;
    *key_len = r->key_len;
    *value = r->value;
    *len = r->len;
    *hdrs = r->hdrs;
}

const char *sl_emit_get_reason(const struct sl_emit *out)
{
    return out->reason;
}

const json_t *sl_emit_get_errors(const struct sl_emit *out, size_t *dropped)
{
    if (dropped)
        *dropped = out->errors_dropped;
    return out->errors;
}

/* ------------------------------------------------------------------------------------------ */
/* The loop                                                                                    */

struct partition_state {
    char topic[SL_TOPIC_NAME_MAX];
    int32_t partition;
    int64_t committed; /* next offset committed by us (or found committed at assignment) */
    int64_t end;       /* last stable offset from statistics; -1 unknown */
    sl_series_t *lag;
};

struct sl_loop {
    struct sl_loop_opts opts;
    char input_topic[SL_TOPIC_NAME_MAX];
    char group_id[SL_GROUP_ID_MAX];
    char legacy_group_id[SL_GROUP_ID_MAX]; /* "" when the group is configured */
    char transactional_id[SL_GROUP_ID_MAX + 256];
    rd_kafka_t *consumer;
    rd_kafka_t *producer;

    bool sink;     /* SL_STAGE_SINK: flush() + consumer commit instead of a transaction */
    bool txn_open; /* a batch is open: a transaction, or a sink's unflushed buffer */
    int txn_events;
    long long txn_started_ms;
    long long flush_retry_at_ms; /* sink: when to try a failed flush again; 0 = none */
    int flush_backoff_ms;
    bool fatal;
    bool assigned_once; /* the rebalance callback has assigned (sl_kafka_consumer_closable) */
    struct sl_err fatal_err;

    rd_kafka_message_t *held; /* event waiting for SL_RETRY backoff */
    /* A record read but not processed yet while the open batch is committed (the crash guard's
     * suspect, which goes alone): its partition's offset is its own, not the position past it. */
    const rd_kafka_message_t *unprocessed;
    int held_attempt;
    long long held_next_try_ms;
    int backoff_ms;
    bool paused;

    sl_crashguard_t *guard;
    sl_crashguard_topic_t *guarded; /* the input topic */
    unsigned long rewinds;          /* seeks back to the committed offsets so far */

    struct sl_emit emit;

    pthread_mutex_t lock; /* guards the fields below, read by the admin thread */
    bool initialised;
    char not_ready[256];
    struct partition_state parts[LOOP_MAX_PARTITIONS];
    size_t n_parts;

    /* metrics */
    sl_metric_t *m_lag;
    sl_series_t *m_passed, *m_filtered, *m_duplicate, *m_rejected, *m_retries;
    sl_series_t *m_records_out, *m_process, *m_commit, *m_committed, *m_aborted, *m_retrying;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sl_loop_opts_default(struct sl_loop_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->batch_max_events = 1000;
    opts->batch_max_wait_ms = 100;
    opts->transaction_timeout_ms = 60000;
    opts->retry_initial_ms = 100;
    opts->retry_max_ms = 30000;
    opts->max_crashes = SL_CRASHGUARD_DEFAULT_MAX;
    opts->redis_url = SL_REDIS_DEFAULT_URL;
    opts->redis_timeout_ms = 1000;
}

int sl_loop_opts_load(struct sl_loop_opts *opts, const sl_conf_t *conf, struct sl_err *err)
{
    const sl_conf_node_t *sec =
        sl_conf_get(sl_conf_get(sl_conf_root(conf), opts->stage->name), "loop");
    long long events, wait, txn, r0, r1, crashes;
    if (sl_conf_str(conf, sec, "group_id", opts->group_id, &opts->group_id, err) != 0 ||
        sl_conf_int(conf, sec, "batch_max_events", opts->batch_max_events, 1, 100000, &events,
                    err) != 0 ||
        sl_conf_duration_ms(conf, sec, "batch_max_wait", opts->batch_max_wait_ms, 1, 60000, &wait,
                            err) != 0 ||
        sl_conf_duration_ms(conf, sec, "transaction_timeout", opts->transaction_timeout_ms, 1000,
                            900000, &txn, err) != 0 ||
        sl_conf_duration_ms(conf, sec, "retry_initial", opts->retry_initial_ms, 1, 60000, &r0,
                            err) != 0 ||
        sl_conf_duration_ms(conf, sec, "retry_max", opts->retry_max_ms, 1, 600000, &r1, err) != 0 ||
        sl_conf_int(conf, sec, "max_crashes", opts->max_crashes, 0, SL_CRASHGUARD_MAX_MAX, &crashes,
                    err) != 0 ||
        sl_redis_settings(conf, &opts->redis_url, &opts->redis_timeout_ms, err) != 0)
        return -1;
    if (wait * 2 >= txn)
        return sl_conf_error(conf, sec, err,
                             "transaction_timeout must be well above batch_max_wait");
    opts->batch_max_events = (int)events;
    opts->batch_max_wait_ms = (int)wait;
    opts->transaction_timeout_ms = (int)txn;
    opts->retry_initial_ms = (int)r0;
    opts->retry_max_ms = (int)r1;
    opts->max_crashes = (int)crashes;
    return 0;
}

static void set_not_ready(sl_loop_t *loop, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_not_ready(sl_loop_t *loop, const char *fmt, ...)
{
    pthread_mutex_lock(&loop->lock);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(loop->not_ready, sizeof(loop->not_ready), fmt, ap);
        va_end(ap);
    } else {
        loop->not_ready[0] = '\0';
    }
    pthread_mutex_unlock(&loop->lock);
}

bool sl_loop_ready(void *opaque, char *why, size_t why_size)
{
    sl_loop_t *loop = opaque;
    pthread_mutex_lock(&loop->lock);
    bool ready = loop->initialised && !loop->not_ready[0];
    if (!ready)
        snprintf(why, why_size, "%s",
                 loop->initialised ? loop->not_ready : "initialising the Kafka transaction");
    pthread_mutex_unlock(&loop->lock);
    return ready;
}

/* Records an rd_kafka_error_t as the loop's fatal error; takes the error object. */
static void set_fatal(sl_loop_t *loop, const char *what, rd_kafka_error_t *error)
{
    loop->fatal = true;
    sl_err_set(&loop->fatal_err, SL_ERR_KAFKA, "%s: %s", what,
               error ? rd_kafka_error_string(error) : "unknown error");
    loop->fatal_err.fatal = true;
    SL_ERROR("%s", loop->fatal_err.msg);
    if (error)
        rd_kafka_error_destroy(error);
}

/* ---- partition bookkeeping (lag) ---- */

static struct partition_state *find_part(sl_loop_t *loop, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < loop->n_parts; i++)
        if (loop->parts[i].partition == partition && strcmp(loop->parts[i].topic, topic) == 0)
            return &loop->parts[i];
    return NULL;
}

static void track_assigned(sl_loop_t *loop, const rd_kafka_topic_partition_list_t *parts)
{
    /* What the group has committed is where this replica starts: the lag baseline. */
    rd_kafka_topic_partition_list_t *committed = rd_kafka_topic_partition_list_copy(parts);
    rd_kafka_resp_err_t rc = rd_kafka_committed(loop->consumer, committed, 10000);
    pthread_mutex_lock(&loop->lock);
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        struct partition_state *st = find_part(loop, p->topic, p->partition);
        if (!st && loop->n_parts < LOOP_MAX_PARTITIONS) {
            st = &loop->parts[loop->n_parts++];
            snprintf(st->topic, sizeof(st->topic), "%s", p->topic);
            st->partition = p->partition;
            char pbuf[16];
            snprintf(pbuf, sizeof(pbuf), "%d", (int)p->partition);
            st->lag = sl_metric_series(
                loop->m_lag, (const char *const[]){loop->opts.stage->name, p->topic, pbuf});
        }
        if (!st)
            continue;
        st->end = -1;
        st->committed = rc == 0 && committed->elems[i].offset >= 0 ? committed->elems[i].offset : 0;
    }
    pthread_mutex_unlock(&loop->lock);
    for (int i = 0; i < parts->cnt; i++)
        sl_crashguard_assigned(
            loop->guarded, parts->elems[i].partition,
            rc == 0 && committed->elems[i].offset >= 0 ? committed->elems[i].offset : -1);
    rd_kafka_topic_partition_list_destroy(committed);
}

static void track_revoked(sl_loop_t *loop, const rd_kafka_topic_partition_list_t *parts)
{
    pthread_mutex_lock(&loop->lock);
    for (int i = 0; i < parts->cnt; i++) {
        struct partition_state *st =
            find_part(loop, parts->elems[i].topic, parts->elems[i].partition);
        if (!st)
            continue;
        /* A partition this replica no longer owns has no lag of its own here. */
        sl_series_set(st->lag, 0);
        sl_crashguard_revoked(loop->guarded, st->partition);
        *st = loop->parts[--loop->n_parts];
    }
    pthread_mutex_unlock(&loop->lock);
}

static void track_committed(sl_loop_t *loop, const rd_kafka_topic_partition_list_t *offsets)
{
    pthread_mutex_lock(&loop->lock);
    for (int i = 0; i < offsets->cnt; i++) {
        struct partition_state *st =
            find_part(loop, offsets->elems[i].topic, offsets->elems[i].partition);
        if (st)
            st->committed = offsets->elems[i].offset;
    }
    pthread_mutex_unlock(&loop->lock);
}

/* Consumer statistics: the last stable offset per partition, the end of what a
 * read_committed consumer can read. Committed offsets do not appear there under transactions
 * (they go through the producer), hence our own bookkeeping above. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    sl_loop_t *loop = opaque;
    json_t *root = json_loadb(json, len, 0, NULL);
    json_t *topics = json_object_get(root, "topics");
    const char *tname;
    json_t *topic;
    pthread_mutex_lock(&loop->lock);
    json_object_foreach(topics, tname, topic)
    {
        const char *pname;
        json_t *p;
        json_object_foreach(json_object_get(topic, "partitions"), pname, p)
        {
            struct partition_state *st = find_part(loop, tname, atoi(pname));
            json_t *ls = json_object_get(p, "ls_offset");
            if (st && json_is_integer(ls) && json_integer_value(ls) >= 0)
                st->end = json_integer_value(ls);
        }
    }
    pthread_mutex_unlock(&loop->lock);
    json_decref(root);
    return 0; /* librdkafka frees json */
}

static void collect_lag(void *opaque)
{
    sl_loop_t *loop = opaque;
    pthread_mutex_lock(&loop->lock);
    for (size_t i = 0; i < loop->n_parts; i++) {
        const struct partition_state *st = &loop->parts[i];
        if (st->end >= 0)
            sl_series_set(st->lag, st->end > st->committed ? (double)(st->end - st->committed) : 0);
    }
    pthread_mutex_unlock(&loop->lock);
}

/* ---- transactions ---- */

static int begin_txn(sl_loop_t *loop)
{
    if (loop->txn_open)
        return 0;
    if (loop->sink) {
        loop->txn_open = true;
        loop->txn_events = 0;
        loop->txn_started_ms = now_ms();
        return 0;
    }
    rd_kafka_error_t *error = rd_kafka_begin_transaction(loop->producer);
    if (error) {
        set_fatal(loop, "begin_transaction", error);
        return -1;
    }
    loop->txn_open = true;
    loop->txn_events = 0;
    loop->txn_started_ms = now_ms();
    return 0;
}

/* Seeks every assigned partition back to its committed offset (the beginning when nothing is
 * committed): after an abort, the aborted records must be read and processed again. */
static int rewind_to_committed(sl_loop_t *loop)
{
    rd_kafka_topic_partition_list_t *assigned = NULL;
    loop->rewinds++;
    rd_kafka_resp_err_t rc = rd_kafka_assignment(loop->consumer, &assigned);
    int ret = -1;
    if (rc) {
        set_fatal(loop, "assignment", rd_kafka_error_new(rc, "%s", rd_kafka_err2str(rc)));
        goto out;
    }
    if (assigned->cnt == 0) {
        ret = 0;
        goto out;
    }
    rc = rd_kafka_committed(loop->consumer, assigned, LOOP_CALL_TIMEOUT_MS);
    if (rc) {
        set_fatal(loop, "committed", rd_kafka_error_new(rc, "%s", rd_kafka_err2str(rc)));
        goto out;
    }
    for (int i = 0; i < assigned->cnt; i++)
        if (assigned->elems[i].offset < 0)
            assigned->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    /* -1: librdkafka 2.0.2 divides a finite seek timeout by 1000 (#4230). */
    rd_kafka_error_t *error = rd_kafka_seek_partitions(loop->consumer, assigned, -1);
    if (error) {
        set_fatal(loop, "seek to committed offsets", error);
        goto out;
    }
    ret = 0;
out:
    if (assigned)
        rd_kafka_topic_partition_list_destroy(assigned);
    return ret;
}

static void drop_held(sl_loop_t *loop);

static int abort_and_rewind(sl_loop_t *loop, const char *why)
{
    SL_WARN("aborting the batch of %d events (%s); rewinding to committed offsets",
            loop->txn_events, why);
    if (loop->sink) {
        loop->opts.stage->discard(loop->opts.stage_ctx);
        /* Dead letters already queued may still reach the topic: they are re-sent when the
         * records are read again, which at-least-once allows. */
        loop->flush_retry_at_ms = 0;
    } else {
        rd_kafka_error_t *error = rd_kafka_abort_transaction(loop->producer, LOOP_CALL_TIMEOUT_MS);
        if (error) {
            set_fatal(loop, "abort_transaction", error);
            return -1;
        }
    }
    sl_series_add(loop->m_aborted, 1);
    loop->txn_open = false;
    loop->txn_events = 0;
    sl_crashguard_done(loop->guard); /* the batch is read again and marked again */
    drop_held(loop);
    return rewind_to_committed(loop);
}

/* The offsets to commit: every assigned partition's position (the next record to read, past
 * any transaction markers), except the partition of a held event, which stays at that event. */
static rd_kafka_topic_partition_list_t *commit_offsets(sl_loop_t *loop)
{
    rd_kafka_topic_partition_list_t *assigned = NULL;
    if (rd_kafka_assignment(loop->consumer, &assigned) != 0)
        return NULL;
    rd_kafka_position(loop->consumer, assigned);
    rd_kafka_topic_partition_list_t *offsets = rd_kafka_topic_partition_list_new(assigned->cnt);
    for (int i = 0; i < assigned->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &assigned->elems[i];
        int64_t offset = p->offset;
        if (loop->held && loop->held->partition == p->partition &&
            strcmp(rd_kafka_topic_name(loop->held->rkt), p->topic) == 0)
            offset = loop->held->offset;
        if (loop->unprocessed && loop->unprocessed->partition == p->partition &&
            strcmp(rd_kafka_topic_name(loop->unprocessed->rkt), p->topic) == 0 &&
            (offset < 0 || loop->unprocessed->offset < offset))
            offset = loop->unprocessed->offset;
        if (offset >= 0)
            rd_kafka_topic_partition_list_add(offsets, p->topic, p->partition)->offset = offset;
    }
    rd_kafka_topic_partition_list_destroy(assigned);
    return offsets;
}

/* Commits the open transaction with the consumer's offsets. Returns 0 when committed or
 * aborted-and-rewound (the loop goes on), -1 on a fatal error. */
static int commit_sink(sl_loop_t *loop);

static int commit_txn(sl_loop_t *loop)
{
    if (!loop->txn_open)
        return 0;
    if (loop->sink)
        return commit_sink(loop);
    /* The batch's records are processed: a death from here on (a kill during the commit) is no
     * record's doing, so the crash guard's markers go now rather than after the commit. */
    sl_crashguard_done(loop->guard);
    long long t0 = now_ms();
    rd_kafka_topic_partition_list_t *offsets = commit_offsets(loop);
    rd_kafka_consumer_group_metadata_t *cgmd = rd_kafka_consumer_group_metadata(loop->consumer);
    rd_kafka_error_t *error = NULL;
    int ret = -1;
    if (!offsets || !cgmd) {
        set_fatal(loop, "collecting offsets", NULL);
        goto out;
    }
    for (int attempt = 0;; attempt++) {
        if (offsets->cnt > 0)
            error = rd_kafka_send_offsets_to_transaction(loop->producer, offsets, cgmd,
                                                         LOOP_CALL_TIMEOUT_MS);
        if (!error)
            error = rd_kafka_commit_transaction(loop->producer, LOOP_CALL_TIMEOUT_MS);
        if (!error)
            break;
        if (rd_kafka_error_txn_requires_abort(error)) {
            char why[512];
            snprintf(why, sizeof(why), "%s", rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
            ret = abort_and_rewind(loop, why);
            goto out;
        }
        if (rd_kafka_error_is_retriable(error) && attempt < 10 && !rd_kafka_error_is_fatal(error)) {
            SL_WARN("commit_transaction: %s; retrying", rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
            error = NULL;
            continue;
        }
        set_fatal(loop, "commit_transaction", error);
        goto out;
    }
    sl_series_add(loop->m_committed, 1);
    sl_series_observe(loop->m_commit, (double)(now_ms() - t0) / 1000.0);
    track_committed(loop, offsets);
    loop->txn_open = false;
    loop->txn_events = 0;
    ret = 0;
out:
    if (cgmd)
        rd_kafka_consumer_group_metadata_destroy(cgmd);
    if (offsets)
        rd_kafka_topic_partition_list_destroy(offsets);
    return ret;
}

/* A sink's commit: flush() writes the batch outside Kafka, its dead letters are acknowledged,
 * then the consumer offsets are committed. A retriable flush failure keeps the batch, pauses,
 * and is retried after a backoff; a failed offset commit re-reads records the sink already
 * wrote, which its idempotent writes absorb. */
static void update_pause(sl_loop_t *loop);

static int commit_sink(sl_loop_t *loop)
{
    struct sl_err err;
    long long t0 = now_ms();
    sl_err_clear(&err);
    if (loop->opts.stage->flush(loop->opts.stage_ctx, &err) != 0) {
        if (!err.retriable || err.fatal) {
            loop->fatal = true;
            loop->fatal_err = err;
            loop->fatal_err.fatal = true;
            SL_ERROR("flush: %s", err.msg);
            return -1;
        }
        loop->flush_backoff_ms = !loop->flush_retry_at_ms ? loop->opts.retry_initial_ms
                                 : loop->flush_backoff_ms * 2 > loop->opts.retry_max_ms
                                     ? loop->opts.retry_max_ms
                                     : loop->flush_backoff_ms * 2;
        loop->flush_retry_at_ms = now_ms() + loop->flush_backoff_ms;
        sl_series_add(loop->m_retries, 1);
        SL_WARN("writing a batch of %d events failed, retrying in %d ms: %s", loop->txn_events,
                loop->flush_backoff_ms, err.msg);
        set_not_ready(loop, "waiting on a dependency: %s", err.msg);
        update_pause(loop);
        return 0;
    }
    sl_crashguard_done(loop->guard); /* the batch is written: see commit_txn */
    if (rd_kafka_flush(loop->producer, LOOP_CALL_TIMEOUT_MS) != 0)
        return abort_and_rewind(loop, "dead letters not acknowledged by Kafka");
    rd_kafka_topic_partition_list_t *offsets = commit_offsets(loop);
    rd_kafka_resp_err_t rc = offsets && offsets->cnt > 0
                                 ? rd_kafka_commit(loop->consumer, offsets, 0)
                                 : RD_KAFKA_RESP_ERR_NO_ERROR;
    loop->txn_open = false;
    loop->txn_events = 0;
    loop->flush_retry_at_ms = 0;
    if (rc) {
        SL_WARN("committing offsets: %s; reading the batch again", rd_kafka_err2str(rc));
        rd_kafka_topic_partition_list_destroy(offsets);
        update_pause(loop);
        return rewind_to_committed(loop);
    }
    sl_series_add(loop->m_committed, 1);
    sl_series_observe(loop->m_commit, (double)(now_ms() - t0) / 1000.0);
    if (offsets) {
        track_committed(loop, offsets);
        rd_kafka_topic_partition_list_destroy(offsets);
    }
    update_pause(loop);
    return 0;
}

/* ---- waiting on a dependency: a held event (SL_RETRY) or a failed sink flush ---- */

static void set_paused(sl_loop_t *loop, bool pause)
{
    rd_kafka_topic_partition_list_t *assigned = NULL;
    if (rd_kafka_assignment(loop->consumer, &assigned) == 0 && assigned->cnt > 0) {
        if (pause)
            rd_kafka_pause_partitions(loop->consumer, assigned);
        else
            rd_kafka_resume_partitions(loop->consumer, assigned);
    }
    if (assigned)
        rd_kafka_topic_partition_list_destroy(assigned);
    loop->paused = pause;
    sl_series_set(loop->m_retrying, pause ? 1 : 0);
}

/* Pauses every partition while the loop waits on a dependency, resumes (and reports ready)
 * once it waits on nothing. Nothing after the waiting point is read meanwhile, so order holds. */
static void update_pause(sl_loop_t *loop)
{
    bool waiting = loop->held || loop->flush_retry_at_ms;
    if (waiting != loop->paused)
        set_paused(loop, waiting);
    if (!waiting)
        set_not_ready(loop, NULL);
}

static void drop_held(sl_loop_t *loop)
{
    if (loop->held) {
        rd_kafka_message_destroy(loop->held);
        loop->held = NULL;
    }
    update_pause(loop);
}

/* ---- producing ---- */

static int produce(sl_loop_t *loop, const char *topic, const void *key, size_t key_len,
                   const void *value, size_t len, rd_kafka_headers_t *hdrs)
{
    for (;;) {
        rd_kafka_resp_err_t rc = rd_kafka_producev(
            loop->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, len),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (!rc)
            return 0;
        if (rc != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            SL_ERROR("produce to %s: %s", topic, rd_kafka_err2str(rc));
            rd_kafka_headers_destroy(hdrs);
            return -1;
        }
        /* A full local queue drains as the broker acknowledges: wait for that. */
        rd_kafka_poll(loop->producer, 100);
    }
}

static const char *verdict_name(enum sl_verdict v)
{
    switch (v) {
    case SL_PASS:
        return "passed";
    case SL_FILTERED:
        return "filtered";
    case SL_DUPLICATE:
        return "duplicate";
    case SL_REJECT:
        return "dead_lettered";
    case SL_RETRY:
        return "retry";
    }
    return "unknown";
}

/* The audit record (sl_record.h): one per event per stage, keyed by the event id, in the
 * transaction. */
static int produce_audit(sl_loop_t *loop, const rd_kafka_message_t *msg, const struct sl_ce *ce,
                         enum sl_verdict verdict, double seconds)
{
    char topic[SL_TOPIC_NAME_MAX];
    char *value = NULL;
    size_t len = 0;
    rd_kafka_headers_t *hdrs = NULL;
    struct sl_err err;
    sl_kafka_topic_name(loop->opts.kafka, SL_TOPIC_AUDIT, topic, sizeof(topic));
    const struct sl_audit a = {
        .stage = loop->opts.stage->name,
        .ce = ce,
        .topic = rd_kafka_topic_name(msg->rkt),
        .partition = msg->partition,
        .offset = msg->offset,
        .outcome = verdict_name(verdict),
        .seconds = seconds,
        .reason = loop->emit.reason,
        .errors = loop->emit.errors,
        .outputs = verdict == SL_PASS ? (long long)loop->emit.n : -1,
        .detail = loop->emit.detail,
    };
    if (sl_audit_build(&a, &value, &len, &hdrs, &err) != 0) {
        SL_ERROR("audit record: %s", err.msg);
        return -1;
    }
    const char *event_id = ce ? sl_ce_get(ce, "id") : NULL;
    int ret = produce(loop, topic, event_id, event_id ? strlen(event_id) : 0, value, len, hdrs);
    free(value);
    return ret;
}

/* The dead letter: the original payload, key and headers, plus the stage, the reason and the
 * errors as CloudEvents extensions (replacing any a previous dead-lettering left). */
static int produce_dead_letter(sl_loop_t *loop, const rd_kafka_message_t *msg)
{
    char topic[SL_TOPIC_NAME_MAX];
    sl_kafka_topic_name(loop->opts.kafka, SL_TOPIC_DLQ, topic, sizeof(topic));
    rd_kafka_headers_t *orig = NULL;
    if (rd_kafka_message_headers(msg, &orig) != 0)
        orig = NULL;
    rd_kafka_headers_t *hdrs =
        sl_dead_letter_headers(orig, loop->opts.stage->name,
                               loop->emit.reason[0] ? loop->emit.reason : "rejected by the stage",
                               loop->emit.errors, loop->emit.errors_dropped);
    return produce(loop, topic, msg->key, msg->key_len, msg->payload, msg->len, hdrs);
}

/* Handles one record: process, then outputs / dead letter + audit into the transaction.
 * Returns 0 to go on (the record is consumed or held for retry), -1 on a fatal error. */
static int handle(sl_loop_t *loop, rd_kafka_message_t *msg, int attempt)
{
    struct sl_ce ce;
    struct sl_err err;
    enum sl_verdict verdict;
    long long t0 = now_ms();
    bool ce_ok;

    /* The loop owns msg from here: a held event is detached, and re-held on SL_RETRY. */
    bool was_held = loop->held == msg;
    if (was_held)
        loop->held = NULL;
    /* The crash guard: a suspect record goes alone, in a transaction of its own. */
    bool alone = sl_crashguard_alone(loop->guarded, msg->partition, msg->offset);
    unsigned long rewinds = loop->rewinds;
    loop->unprocessed = msg;
    int committed = alone ? commit_txn(loop) : 0;
    loop->unprocessed = NULL;
    if (alone && (committed != 0 || loop->rewinds != rewinds)) {
        /* Fatal, or the batch was aborted: this record is read again after the rewind. */
        if (was_held)
            update_pause(loop);
        rd_kafka_message_destroy(msg);
        return loop->fatal ? -1 : 0;
    }
    int crashes = 0;
    bool crashed = sl_crashguard_enter(loop->guarded, msg->partition, msg->offset, &crashes) ==
                   SL_CRASHGUARD_CRASHED;
    sl_ce_init(&ce);
    emit_reset(&loop->emit);
    rd_kafka_headers_t *hdrs = NULL;
    ce_ok = rd_kafka_message_headers(msg, &hdrs) == 0 && sl_ce_from_headers(hdrs, &ce, &err) == 0;
    if (!ce_ok && loop->opts.stage->any_record) {
        if (hdrs)
            sl_ce_read_headers(hdrs, &ce);
        ce_ok = true;
    }
    if (crashed) {
        sl_emit_reason(&loop->emit,
                       SL_CRASHGUARD_REASON ": the record crashed sluice-%s %d times; it is not "
                                            "processed again",
                       loop->opts.stage->name, crashes);
        verdict = SL_REJECT;
    } else if (!ce_ok) {
        if (!hdrs)
            sl_err_set(&err, SL_ERR_INVALID, "the record has no headers");
        sl_emit_reason(&loop->emit, "not a CloudEvent: %s", err.msg);
        verdict = SL_REJECT;
    } else {
        struct sl_event ev = {
            .ce = &ce,
            .data = msg->payload,
            .len = msg->len,
            .key = msg->key,
            .key_len = msg->key_len,
            .topic = rd_kafka_topic_name(msg->rkt),
            .partition = msg->partition,
            .offset = msg->offset,
            .timestamp_ms = rd_kafka_message_timestamp(msg, NULL),
            .attempt = attempt,
        };
        verdict = loop->opts.stage->process(loop->opts.stage_ctx, &ev, &loop->emit);
    }
    double seconds = (double)(now_ms() - t0) / 1000.0;
    sl_series_observe(loop->m_process, seconds);
    const char *event_id = ce_ok ? sl_ce_get(&ce, "id") : NULL;

    if (verdict == SL_RETRY) {
        /* Commit what came before, then hold this event and pause: nothing after it is read
         * until it goes through. */
        if (!was_held)
            loop->backoff_ms = loop->opts.retry_initial_ms;
        else
            loop->backoff_ms = loop->backoff_ms * 2 > loop->opts.retry_max_ms
                                   ? loop->opts.retry_max_ms
                                   : loop->backoff_ms * 2;
        loop->held = msg;
        loop->held_attempt = attempt;
        loop->held_next_try_ms = now_ms() + loop->backoff_ms;
        sl_series_add(loop->m_retries, 1);
        sl_log(attempt == 1 ? SL_LOG_WARN : SL_LOG_INFO, event_id,
               "retrying in %d ms (attempt %d): %s", loop->backoff_ms, attempt,
               loop->emit.reason[0] ? loop->emit.reason : "the stage asked to retry");
        set_not_ready(loop, "waiting on a dependency: %s",
                      loop->emit.reason[0] ? loop->emit.reason : "retry");
        sl_ce_free(&ce);
        update_pause(loop);
        return commit_txn(loop);
    }

    int ret = -1;
    if (begin_txn(loop) != 0)
        goto out;
    if (crashed && loop->opts.stage->any_record) {
        /* The input is the dead-letter topic: a dead letter would come back here. */
        sl_log(SL_LOG_ERROR, event_id,
               "skipped %s [%d] offset %lld: %s (it stays readable there until retention)",
               rd_kafka_topic_name(msg->rkt), (int)msg->partition, (long long)msg->offset,
               loop->emit.reason);
        loop->txn_events++;
        ret = 0;
        goto out;
    }
    if (verdict == SL_PASS) {
        for (size_t i = 0; i < loop->emit.n; i++) {
            struct emit_record *r = &loop->emit.recs[i];
            rd_kafka_headers_t *rec_hdrs = r->hdrs;
            r->hdrs = NULL; /* produce() takes them, whatever happens */
            if (produce(loop, r->topic, r->key, r->key_len, r->value, r->len, rec_hdrs) != 0)
                goto produce_failed;
        }
        sl_series_add(loop->m_records_out, (double)loop->emit.n);
        sl_series_add(loop->m_passed, 1);
    } else if (verdict == SL_REJECT) {
        if (produce_dead_letter(loop, msg) != 0)
            goto produce_failed;
        sl_series_add(loop->m_rejected, 1);
        sl_log(SL_LOG_INFO, event_id, "dead-lettered: %s", loop->emit.reason);
    } else {
        sl_series_add(verdict == SL_FILTERED ? loop->m_filtered : loop->m_duplicate, 1);
    }
    if (!loop->sink && produce_audit(loop, msg, ce_ok ? &ce : NULL, verdict, seconds) != 0)
        goto produce_failed;
    loop->txn_events++;
    ret = alone ? commit_txn(loop) : 0;
    goto out;

produce_failed:
    /* Part of this event may be in the transaction: abort it all and read again. */
    ret = abort_and_rewind(loop, "a record could not be produced");
out:
    if (was_held)
        update_pause(loop);
    rd_kafka_message_destroy(msg);
    sl_ce_free(&ce);
    return ret;
}

/* ---- rebalancing ---- */

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    sl_loop_t *loop = opaque;
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        SL_INFO("assigned %d partitions", parts->cnt);
        loop->assigned_once = true;
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
        /* Newly assigned partitions start unpaused; keep the hold in force for all. */
        if (loop->paused)
            rd_kafka_pause_partitions(rk, parts);
        track_assigned(loop, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        SL_INFO("revoked %d partitions%s", parts->cnt,
                rd_kafka_assignment_lost(rk) ? " (lost)" : "");
        if (loop->txn_open && !loop->fatal) {
            if (rd_kafka_assignment_lost(rk))
                abort_and_rewind(loop, "partitions lost in a rebalance");
            else if (commit_txn(loop) == 0 && loop->sink && loop->txn_open)
                abort_and_rewind(loop, "the batch could not be written before a rebalance");
        }
        /* The held event's partition goes to another replica, which reads it from the
         * committed offset; any hold ends with the revocation. */
        drop_held(loop);
        track_revoked(loop, parts);
        if (cooperative)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            rd_kafka_assign(rk, NULL);
    } else {
        SL_ERROR("rebalance error: %s", rd_kafka_err2str(err));
        rd_kafka_assign(rk, NULL);
    }
    if (error) {
        SL_ERROR("rebalance: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
}

/* ---- set-up and the run loop ---- */

static rd_kafka_t *new_client(sl_loop_t *loop, rd_kafka_type_t type, const char *const *props,
                              struct sl_err *err)
{
    char client_id[300], errstr[512];
    snprintf(client_id, sizeof(client_id), "%s-%s", loop->group_id,
             type == RD_KAFKA_CONSUMER ? "consumer" : "producer");
    rd_kafka_conf_t *conf = sl_kafka_conf_new(loop->opts.kafka, client_id, err);
    if (!conf)
        return NULL;
    for (const char *const *p = props; *p; p += 2)
        if (sl_kafka_conf_set(conf, p[0], p[1], err) != 0) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    rd_kafka_conf_set_opaque(conf, loop);
    if (type == RD_KAFKA_CONSUMER) {
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
        rd_kafka_conf_set_stats_cb(conf, on_stats);
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        sl_err_set(err, SL_ERR_KAFKA, "cannot create Kafka %s: %s",
                   type == RD_KAFKA_CONSUMER ? "consumer" : "producer", errstr);
    }
    return rk;
}

sl_loop_t *sl_loop_new(const struct sl_loop_opts *opts, struct sl_err *err)
{
    sl_loop_t *loop = calloc(1, sizeof(*loop));
    char hostname[128] = "localhost", txn_timeout[32], buf[32];
    if (!loop) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&loop->lock, NULL);
    loop->opts = *opts;
    loop->sink = opts->stage->kind == SL_STAGE_SINK;
    loop->emit.prefix = opts->kafka->topic_prefix;
    loop->emit.errors = json_array();
    loop->emit.detail = json_object();
    const char *name = opts->stage->name;
    gethostname(hostname, sizeof(hostname) - 1);
    const char *instance = opts->instance_id ? opts->instance_id : hostname;
    if (opts->group_id) {
        snprintf(loop->group_id, sizeof(loop->group_id), "%s", opts->group_id);
    } else {
        if (sl_group_id(opts->kafka, name, loop->group_id, sizeof(loop->group_id), err) != 0)
            goto fail;
        snprintf(loop->legacy_group_id, sizeof(loop->legacy_group_id), "sluice-%s", name);
    }
    snprintf(loop->transactional_id, sizeof(loop->transactional_id), "%s-%s", loop->group_id,
             instance);
    if (sl_kafka_topic_name(opts->kafka, opts->stage->input, loop->input_topic,
                            sizeof(loop->input_topic)) != 0) {
        sl_err_set(err, SL_ERR_INVALID, "input topic name too long");
        goto fail;
    }

    sl_metrics_t *m = opts->metrics;
    const char *const stage_label[] = {"stage", NULL};
    const char *const verdict_labels[] = {"stage", "outcome", NULL};
    sl_metric_t *events = sl_metrics_counter(m, "sluice_stage_events_total",
                                             "Events handled, by outcome.", verdict_labels);
    loop->m_passed = sl_metric_series(events, (const char *const[]){name, "passed"});
    loop->m_filtered = sl_metric_series(events, (const char *const[]){name, "filtered"});
    loop->m_duplicate = sl_metric_series(events, (const char *const[]){name, "duplicate"});
    loop->m_rejected = sl_metric_series(events, (const char *const[]){name, "dead_lettered"});
    loop->m_retries = sl_metric_series(
        sl_metrics_counter(m, "sluice_stage_retries_total",
                           "Times the stage asked to retry an event (a dependency was down).",
                           stage_label),
        (const char *const[]){name});
    loop->m_retrying = sl_metric_series(
        sl_metrics_gauge(m, "sluice_stage_retrying",
                         "1 while the stage holds an event waiting on a dependency.", stage_label),
        (const char *const[]){name});
    loop->m_records_out =
        sl_metric_series(sl_metrics_counter(m, "sluice_stage_records_out_total",
                                            "Output records produced.", stage_label),
                         (const char *const[]){name});
    loop->m_process = sl_metric_series(
        sl_metrics_histogram(m, "sluice_stage_process_seconds", "Time in process() per event.",
                             stage_label, sl_metrics_latency_buckets, sl_metrics_latency_buckets_n),
        (const char *const[]){name});
    loop->m_commit = sl_metric_series(
        sl_metrics_histogram(m, "sluice_stage_commit_seconds",
                             "Time to commit a transaction (offsets included).", stage_label,
                             sl_metrics_latency_buckets, sl_metrics_latency_buckets_n),
        (const char *const[]){name});
    sl_metric_t *txns =
        sl_metrics_counter(m, "sluice_stage_transactions_total", "Kafka transactions, by result.",
                           (const char *const[]){"stage", "result", NULL});
    loop->m_committed = sl_metric_series(txns, (const char *const[]){name, "committed"});
    loop->m_aborted = sl_metric_series(txns, (const char *const[]){name, "aborted"});
    /* Only while this replica runs and only its own partitions: the group's lag, down stages
     * included, is sluice_consumer_lag, read from the broker by sluice-reconcile. */
    loop->m_lag = sl_metrics_gauge(
        m, "sluice_replica_lag",
        "Records after the committed offset on the partitions this replica owns, up to the last "
        "stable offset, as this replica sees them.",
        (const char *const[]){"stage", "topic", "partition", NULL});
    if (sl_metrics_on_collect(m, collect_lag, loop) != 0) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    const struct sl_crashguard_opts guard_opts = {
        .stage = name,
        .redis_url = opts->redis_url,
        .redis_timeout_ms = opts->redis_timeout_ms,
        .max_crashes = opts->max_crashes,
        .metrics = m,
    };
    if (!(loop->guard = sl_crashguard_new(&guard_opts, err)) ||
        !(loop->guarded = sl_crashguard_topic(loop->guard, loop->group_id, loop->input_topic,
                                              opts->batch_max_events, err)))
        goto fail;

    snprintf(txn_timeout, sizeof(txn_timeout), "%d", opts->transaction_timeout_ms);
    snprintf(buf, sizeof(buf), "%d", opts->kafka->linger_ms);
    /* A sink's producer only writes dead letters: idempotent, not transactional. The pairs
     * after the first two are the same for both. */
    const char *const producer_props[] = {loop->sink ? "enable.idempotence" : "transactional.id",
                                          loop->sink ? "true" : loop->transactional_id,
                                          loop->sink ? "enable.idempotence"
                                                     : "transaction.timeout.ms",
                                          loop->sink ? "true" : txn_timeout,
                                          "enable.idempotence",
                                          "true",
                                          "acks",
                                          "all",
                                          "linger.ms",
                                          buf,
                                          "compression.type",
                                          opts->kafka->compression,
                                          NULL};
    loop->producer = new_client(loop, RD_KAFKA_PRODUCER, producer_props, err);
    if (!loop->producer)
        goto fail;
    const char *const consumer_props[] = {"group.id",
                                          loop->group_id,
                                          "partition.assignment.strategy",
                                          "cooperative-sticky",
                                          "enable.auto.commit",
                                          "false",
                                          "enable.auto.offset.store",
                                          "false",
                                          "auto.offset.reset",
                                          "earliest",
                                          "isolation.level",
                                          "read_committed",
                                          "statistics.interval.ms",
                                          "5000",
                                          opts->instance_id ? "group.instance.id" : NULL,
                                          opts->instance_id,
                                          NULL};
    loop->consumer = new_client(loop, RD_KAFKA_CONSUMER, consumer_props, err);
    if (!loop->consumer)
        goto fail;
    rd_kafka_poll_set_consumer(loop->consumer);
    return loop;
fail:
    sl_loop_destroy(loop);
    return NULL;
}

static int init_transactions(sl_loop_t *loop, struct sl_err *err)
{
    /* The first call after a broker reset creates __transaction_state: be patient, and keep
     * trying on retriable errors until stopped. */
    while (!sl_signal_stopping()) {
        rd_kafka_error_t *error = rd_kafka_init_transactions(loop->producer, LOOP_CALL_TIMEOUT_MS);
        if (!error)
            return 0;
        if (!rd_kafka_error_is_retriable(error) || rd_kafka_error_is_fatal(error)) {
            sl_err_set(err, SL_ERR_KAFKA, "init_transactions (%s): %s", loop->transactional_id,
                       rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
            return -1;
        }
        SL_WARN("init_transactions: %s; retrying", rd_kafka_error_string(error));
        set_not_ready(loop, "Kafka transactions: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        sl_signal_wait(1000);
    }
    return sl_err_set(err, SL_ERR_INTERNAL, "stopped before Kafka was reachable");
}

int sl_loop_run(sl_loop_t *loop, struct sl_err *err)
{
    if (!loop->sink && init_transactions(loop, err) != 0)
        return sl_signal_stopping() ? 0 : -1;
    if (loop->legacy_group_id[0] &&
        sl_group_adopt(loop->consumer, loop->group_id, loop->legacy_group_id, loop->input_topic,
                       err) != 0)
        return sl_signal_stopping() ? 0 : -1;
    pthread_mutex_lock(&loop->lock);
    loop->initialised = true;
    loop->not_ready[0] = '\0';
    pthread_mutex_unlock(&loop->lock);

    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, loop->input_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t rc = rd_kafka_subscribe(loop->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (rc)
        return sl_err_set(err, SL_ERR_KAFKA, "subscribe to %s: %s", loop->input_topic,
                          rd_kafka_err2str(rc));
    SL_INFO("consuming %s as group %s (transactional.id %s)", loop->input_topic, loop->group_id,
            loop->transactional_id);

    while (!sl_signal_stopping() && !loop->fatal) {
        sl_live_beat(loop->opts.live);
        long long now = now_ms();
        int timeout = 100;
        if (loop->txn_open) {
            long long left = loop->txn_started_ms + loop->opts.batch_max_wait_ms - now;
            timeout = left < 0 ? 0 : left < timeout ? (int)left : timeout;
        }
        if (loop->flush_retry_at_ms) {
            long long left = loop->flush_retry_at_ms - now;
            if (left <= 0) {
                if (commit_txn(loop) != 0)
                    break;
                continue;
            }
            timeout = left < timeout ? (int)left : timeout;
        } else if (loop->held) {
            long long left = loop->held_next_try_ms - now;
            if (left <= 0) {
                rd_kafka_message_t *msg = loop->held;
                if (handle(loop, msg, loop->held_attempt + 1) != 0)
                    break;
                continue;
            }
            timeout = left < timeout ? (int)left : timeout;
        }
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(loop->consumer, timeout);
        rd_kafka_poll(loop->producer, 0);
        if (msg && msg->err == RD_KAFKA_RESP_ERR__FATAL) {
            /* The consumer is dead for good (say, a static member fenced by another process
             * with its instance id, as after a broker restart): polling it again would only
             * stall the partitions with /healthz still green. Stop; a restart helps. */
            char why[512];
            rd_kafka_resp_err_t cause = rd_kafka_fatal_error(loop->consumer, why, sizeof(why));
            rd_kafka_message_destroy(msg);
            set_fatal(loop, "consumer", rd_kafka_error_new(cause, "%s", why));
            break;
        }
        if (msg && msg->err) {
            if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                SL_WARN("consumer: %s", rd_kafka_message_errstr(msg));
            rd_kafka_message_destroy(msg);
        } else if (msg && loop->held) {
            /* Paused partitions do not deliver, but a record fetched before the pause can
             * slip through: put it back so order is kept. */
            rd_kafka_topic_partition_list_t *back = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(back, rd_kafka_topic_name(msg->rkt), msg->partition)
                ->offset = msg->offset;
            rd_kafka_error_t *error = rd_kafka_seek_partitions(loop->consumer, back, -1);
            if (error)
                rd_kafka_error_destroy(error);
            rd_kafka_topic_partition_list_destroy(back);
            rd_kafka_message_destroy(msg);
        } else if (msg && handle(loop, msg, 1) != 0) {
            break;
        }
        if (loop->txn_open && !loop->flush_retry_at_ms &&
            (loop->txn_events >= loop->opts.batch_max_events ||
             now_ms() - loop->txn_started_ms >= loop->opts.batch_max_wait_ms))
            if (commit_txn(loop) != 0)
                break;
    }

    if (!loop->fatal) {
        SL_INFO("stopping: committing what is done and leaving the group");
        drop_held(loop);
        loop->flush_retry_at_ms = 0;
        commit_txn(loop);
        if (loop->sink && loop->txn_open) /* the flush failed again: read it again later */
            loop->opts.stage->discard(loop->opts.stage_ctx);
    }
    if (sl_kafka_consumer_closable(loop->assigned_once))
        rd_kafka_consumer_close(loop->consumer);
    if (loop->fatal) {
        *err = loop->fatal_err;
        return -1;
    }
    return 0;
}

void sl_loop_destroy(sl_loop_t *loop)
{
    if (!loop)
        return;
    emit_reset(&loop->emit);
    json_decref(loop->emit.errors);
    json_decref(loop->emit.detail);
    if (loop->held)
        rd_kafka_message_destroy(loop->held);
    sl_kafka_consumer_destroy(loop->consumer, loop->assigned_once);
    if (loop->producer)
        rd_kafka_destroy(loop->producer);
    sl_crashguard_destroy(loop->guard);
    pthread_mutex_destroy(&loop->lock);
    free(loop);
}
