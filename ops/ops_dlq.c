#include "ops_dlq.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_cloudevent.h"
#include "sl_pg_query.h"
#include "sl_sign.h"
#include "sl_text.h"

#define ACK_EXTRA_MS 5000 /* waited for an acknowledgement beyond the produce deadline */

/* ---- show ---- */

/* Whether data[0..len) is UTF-8 text without NUL bytes. */
static bool is_text(const unsigned char *data, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = data[i] ? sl_utf8_seq_len(data + i, len - i) : 0;
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* Sets row[text_name] to the decoded text of the base64 member `name` when it is UTF-8 text,
 * else null. */
static int add_text(json_t *row, const char *name, const char *text_name, struct sl_err *err)
{
    const char *b64 = json_string_value(json_object_get(row, name));
    if (!b64)
        return json_object_set_new(row, text_name, json_null());
    size_t in = strlen(b64), max = in / 4 * 3 + 1, len = 0;
    if (max > OPS_DLQ_PAYLOAD_MAX)
        return sl_err_set(err, SL_ERR_NOMEM, "%s: %zu bytes is more than is shown", name, max);
    unsigned char *buf = malloc(max);
    if (!buf)
        return sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    int rc = 0;
    if (sl_b64_decode(b64, in, buf, max, &len) != 0)
        rc = sl_err_set(err, SL_ERR_INTERNAL, "%s: the database's base64 does not decode", name);
    else if (is_text(buf, len))
        json_object_set_new(row, text_name, json_stringn((const char *)buf, len));
    else
        json_object_set_new(row, text_name, json_null());
    free(buf);
    return rc;
}

int ops_dlq_show(sl_pg_t *pg, long long id, json_t **row, struct sl_err *err)
{
    if (sl_pg_dead_letter(pg, id, row, err) != 0)
        return -1;
    if (add_text(*row, "payload", "payload_text", err) != 0 ||
        add_text(*row, "key", "key_text", err) != 0) {
        json_decref(*row);
        *row = NULL;
        return -1;
    }
    return 0;
}

/* ---- replay ---- */

/* The input topics of the stages a letter can go back to (without the prefix). */
static const struct {
    const char *stage, *topic;
} inputs[] = {
    {"validate", SL_TOPIC_INGRESS},
    {"transform", SL_TOPIC_VALIDATED},
    {"route", SL_TOPIC_NORMALIZED},
    {"deliver", SL_TOPIC_DELIVER},
};
#define N_INPUTS (sizeof(inputs) / sizeof(inputs[0]))

bool ops_dlq_replayable_stage(const char *stage)
{
    for (size_t i = 0; i < N_INPUTS; i++)
        if (strcmp(stage, inputs[i].stage) == 0)
            return true;
    return false;
}

struct ops_dlq {
    sl_pg_t *pg;
    const struct sl_kafka_settings *kafka;
    sl_producer_t *producer; /* made on the first real replay */
};

/* The acknowledgement of one record. */
struct ack {
    bool done, failed;
    int32_t partition;
    int64_t offset;
    char msg[SL_ERR_MSG_MAX];
};

static void on_report(void *opaque, int32_t partition, int64_t offset, const struct sl_err *err)
{
    struct ack *a = opaque;
    a->done = true;
    a->partition = partition;
    a->offset = offset;
    if (err) {
        a->failed = true;
        snprintf(a->msg, sizeof(a->msg), "%s", err->msg);
    }
}

/* The letter's row, locked for this transaction. */
static const char lock_sql[] =
    "SELECT event_id, stage, status, attempt, headers::text, encode(payload, 'hex'), "
    "encode(key, 'hex'), status_by, status_at FROM dead_letters WHERE id = $1::bigint FOR UPDATE";

static const char record_sql[] =
    "WITH r AS (INSERT INTO dead_letter_replays (dead_letter_id, replayed_by, to_stage, "
    "to_topic, attempt, partition, kafka_offset) VALUES ($1::bigint, $2, $3, $4, $5::integer, "
    "$6::integer, $7::bigint) RETURNING dead_letter_id) "
    "UPDATE dead_letters SET status = 'replayed', status_at = now(), status_by = $2 "
    "WHERE id = (SELECT dead_letter_id FROM r)";

/* Hex text (from encode(..., 'hex')) into a new buffer of *len bytes; NULL when out of
 * memory or malformed. */
static unsigned char *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex);
    unsigned char *out = malloc(n / 2 + 1);
    if (!out || sl_hex_decode(hex, n, out, n / 2) != 0) {
        free(out);
        return NULL;
    }
    *len = n / 2;
    return out;
}

/* The replayed record's headers from the stored ones (see ops_dlq.h). */
static rd_kafka_headers_t *replay_headers(const json_t *stored, int attempt, long long id)
{
    static const char *const dropped[] = {"ce_" SL_CE_STAGE, "ce_" SL_CE_REASON, "ce_" SL_CE_ERRORS,
                                          "ce_" SL_CE_ATTEMPT, "ce_" SL_CE_REPLAY};
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(json_object_size(stored) + 1);
    const char *name;
    const json_t *v;
    char num[24];
    json_object_foreach((json_t *)stored, name, v)
    {
        bool drop = !json_is_string(v);
        for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
            drop = drop || strcmp(name, dropped[i]) == 0;
        if (!drop)
            rd_kafka_header_add(hdrs, name, -1, json_string_value(v), -1);
    }
    snprintf(num, sizeof(num), "%d", attempt);
    rd_kafka_header_add(hdrs, "ce_" SL_CE_ATTEMPT, -1, num, -1);
    /* Tells validate's dedup that this is the event that claimed its key, put back on purpose
     * (ingress refuses sluice* attributes from senders, so no sender can claim it). */
    snprintf(num, sizeof(num), "%lld", id);
    rd_kafka_header_add(hdrs, "ce_" SL_CE_REPLAY, -1, num, -1);
    return hdrs;
}

/* Produces one record and waits for its acknowledgement. */
static int produce(ops_dlq_t *d, const char *topic, const unsigned char *key, size_t key_len,
                   const unsigned char *value, size_t len, rd_kafka_headers_t *hdrs,
                   struct ack *ack, struct sl_err *err)
{
    if (!d->producer && !(d->producer = sl_producer_new(d->kafka, "sluice-ops", on_report, err))) {
        rd_kafka_headers_destroy(hdrs);
        return -1;
    }
    if (sl_producer_send(d->producer, topic, key, key_len, value, len, hdrs, ack, err) != 0) {
        rd_kafka_headers_destroy(hdrs);
        return -1;
    }
    if (sl_producer_flush(d->producer, d->kafka->produce_timeout_ms + ACK_EXTRA_MS, err) != 0)
        return -1;
    if (!ack->done)
        return sl_err_set(err, SL_ERR_INTERNAL, "%s: no delivery report", topic);
    if (ack->failed)
        return sl_err_set(err, SL_ERR_KAFKA, "%s: not acknowledged: %s", topic, ack->msg);
    return 0;
}

ops_dlq_t *ops_dlq_new(sl_pg_t *pg, const struct sl_kafka_settings *kafka)
{
    ops_dlq_t *d = calloc(1, sizeof(*d));
    if (d) {
        d->pg = pg;
        d->kafka = kafka;
    }
    return d;
}

void ops_dlq_destroy(ops_dlq_t *d)
{
    if (!d)
        return;
    sl_producer_destroy(d->producer);
    free(d);
}

__attribute__((format(printf, 4, 5))) static int
result(struct ops_dlq_result *res, enum ops_dlq_outcome outcome, long long id, const char *fmt, ...)
{
    int n = snprintf(res->msg, sizeof(res->msg), "dead letter %lld: ", id);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(res->msg))
        vsnprintf(res->msg + n, sizeof(res->msg) - (size_t)n, fmt, ap);
    va_end(ap);
    res->outcome = outcome;
    return -1;
}

/* The topic of `to_stage` for a letter with `headers` into topic[size]. */
static int target_topic(ops_dlq_t *d, long long id, const char *to_stage, const json_t *headers,
                        char *topic, size_t size, struct ops_dlq_result *res)
{
    int n = -1;
    if (strcmp(to_stage, "deliver") == 0) {
        const char *dest = json_string_value(json_object_get(headers, "ce_" SL_CE_DESTINATION));
        if (!dest || !*dest)
            return result(res, OPS_DLQ_NO_TARGET, id,
                          "no ce_" SL_CE_DESTINATION " header, so no destination to deliver to; "
                          "replay it to route instead");
        char name[SL_TOPIC_NAME_MAX + 1];
        n = snprintf(name, sizeof(name), "%s%s", SL_TOPIC_DELIVER, dest);
        n = n > 0 && (size_t)n < sizeof(name) ? sl_kafka_topic_name(d->kafka, name, topic, size)
                                              : -1;
    } else if (!ops_dlq_replayable_stage(to_stage)) {
        return result(res, OPS_DLQ_NO_TARGET, id,
                      "failed at stage '%s', which has no input topic to replay into; choose one "
                      "with to_stage",
                      to_stage);
    } else {
        for (size_t i = 0; i < N_INPUTS; i++)
            if (strcmp(to_stage, inputs[i].stage) == 0)
                n = sl_kafka_topic_name(d->kafka, inputs[i].topic, topic, size);
    }
    if (n != 0)
        return result(res, OPS_DLQ_FAILED, id, "the topic name of stage %s is too long", to_stage);
    return 0;
}

int ops_dlq_replay(ops_dlq_t *d, long long id, const struct ops_dlq_replay_opts *o,
                   struct ops_dlq_result *res)
{
    struct sl_err err;
    char idtext[24], attempt_text[16], part[16], off[24];
    PGresult *r = NULL;
    json_t *headers = NULL;
    unsigned char *payload = NULL, *key = NULL;
    size_t payload_len = 0, key_len = 0;
    int rc = -1;
    memset(res, 0, sizeof(*res));
    res->partition = -1;
    snprintf(idtext, sizeof(idtext), "%lld", id);
    const char *params[] = {idtext};
    if (sl_pg_begin(d->pg, &err) != 0 || sl_pg_exec(d->pg, lock_sql, 1, params, &r, &err) != 0) {
        result(res, OPS_DLQ_FAILED, id, "%s", err.msg);
        goto out;
    }
    if (PQntuples(r) == 0) {
        result(res, OPS_DLQ_UNKNOWN, id, "no such id");
        goto out;
    }
    snprintf(res->event_id, sizeof(res->event_id), "%s",
             PQgetisnull(r, 0, 0) ? "-" : PQgetvalue(r, 0, 0));
    const char *stage = PQgetvalue(r, 0, 1), *status = PQgetvalue(r, 0, 2);
    res->attempt = atoi(PQgetvalue(r, 0, 3)) + 1;
    if (strcmp(status, "new") != 0 && !o->force) {
        result(res, OPS_DLQ_REFUSED, id,
               "already %s (by %s at %s); use --force (API: \"force\": true) to replay it again",
               status, PQgetvalue(r, 0, 7), PQgetvalue(r, 0, 8));
        goto out;
    }
    snprintf(res->to_stage, sizeof(res->to_stage), "%s", o->to_stage ? o->to_stage : stage);
    if (!(headers = json_loads(PQgetvalue(r, 0, 4), 0, NULL)) || !json_is_object(headers) ||
        !(payload = unhex(PQgetvalue(r, 0, 5), &payload_len)) ||
        (!PQgetisnull(r, 0, 6) && !(key = unhex(PQgetvalue(r, 0, 6), &key_len)))) {
        result(res, OPS_DLQ_FAILED, id, "unreadable row");
        goto out;
    }
    if (target_topic(d, id, res->to_stage, headers, res->topic, sizeof(res->topic), res) != 0)
        goto out;
    res->payload_len = payload_len;
    res->key_len = key_len;
    res->headers = json_object_size(headers);
    if (o->dry_run) {
        res->outcome = OPS_DLQ_DONE;
        rc = 0;
        goto out;
    }
    struct ack ack = {0};
    if (produce(d, res->topic, key, key_len, payload, payload_len,
                replay_headers(headers, res->attempt, id), &ack, &err) != 0) {
        result(res, OPS_DLQ_FAILED, id, "%s", err.msg);
        goto out;
    }
    res->partition = ack.partition;
    res->offset = ack.offset;
    snprintf(attempt_text, sizeof(attempt_text), "%d", res->attempt);
    snprintf(part, sizeof(part), "%d", (int)ack.partition);
    snprintf(off, sizeof(off), "%lld", (long long)ack.offset);
    const char *rec[] = {idtext, o->by, res->to_stage, res->topic, attempt_text, part, off};
    if (sl_pg_exec(d->pg, record_sql, 7, rec, NULL, &err) != 0 || sl_pg_commit(d->pg, &err) != 0) {
        result(res, OPS_DLQ_UNRECORDED, id,
               "produced to %s [%d] @%lld, but the replay is not recorded: %s", res->topic,
               (int)ack.partition, (long long)ack.offset, err.msg);
        goto out;
    }
    res->outcome = OPS_DLQ_DONE;
    rc = 0;
out:
    /* After a commit this is a no-op; otherwise it releases the lock and changes nothing. */
    sl_pg_rollback(d->pg);
    PQclear(r);
    json_decref(headers);
    free(payload);
    free(key);
    return rc;
}

int ops_dlq_select(sl_pg_t *pg, const char *source, const char *stage, const char *since,
                   bool force, int limit, long long **ids, size_t *n, struct sl_err *err)
{
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *params[] = {source, stage, since, force ? "true" : "false", lim};
    PGresult *res = NULL;
    *ids = NULL;
    *n = 0;
    if (sl_pg_exec(pg,
                   "SELECT id FROM dead_letters WHERE ($1::text IS NULL OR source = $1) "
                   "AND ($2::text IS NULL OR stage = $2) "
                   "AND ($3::timestamptz IS NULL OR received_at >= $3::timestamptz) "
                   "AND (status = 'new' OR ($4::boolean AND status = 'replayed')) "
                   "ORDER BY id LIMIT $5::integer",
                   5, params, &res, err) != 0)
        return -1;
    int rows = PQntuples(res);
    if (rows > 0 && !(*ids = calloc((size_t)rows, sizeof(**ids)))) {
        PQclear(res);
        return sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < rows; i++)
        (*ids)[i] = atoll(PQgetvalue(res, i, 0));
    *n = (size_t)rows;
    PQclear(res);
    return 0;
}

/* Only new letters: a replayed one has its story already, and discarding twice says nothing. */
static const char discard_sql[] =
    "WITH d AS (UPDATE dead_letters SET status = 'discarded', status_at = now(), status_by = $2 "
    "WHERE id = $1::bigint AND status = 'new' RETURNING id) "
    "SELECT (SELECT count(*) FROM d), (SELECT status FROM dead_letters WHERE id = $1::bigint), "
    "(SELECT event_id FROM dead_letters WHERE id = $1::bigint)";

int ops_dlq_discard(sl_pg_t *pg, long long id, const char *by, struct ops_dlq_result *res)
{
    struct sl_err err;
    char idtext[24];
    PGresult *r = NULL;
    memset(res, 0, sizeof(*res));
    res->partition = -1;
    snprintf(idtext, sizeof(idtext), "%lld", id);
    const char *params[] = {idtext, by};
    if (sl_pg_exec(pg, discard_sql, 2, params, &r, &err) != 0)
        return result(res, OPS_DLQ_FAILED, id, "%s", err.msg);
    int rc = 0;
    if (!PQgetisnull(r, 0, 2))
        snprintf(res->event_id, sizeof(res->event_id), "%s", PQgetvalue(r, 0, 2));
    if (strcmp(PQgetvalue(r, 0, 0), "1") == 0)
        res->outcome = OPS_DLQ_DONE;
    else if (PQgetisnull(r, 0, 1))
        rc = result(res, OPS_DLQ_UNKNOWN, id, "no such id");
    else
        rc = result(res, OPS_DLQ_REFUSED, id, "already %s", PQgetvalue(r, 0, 1));
    PQclear(r);
    return rc;
}
