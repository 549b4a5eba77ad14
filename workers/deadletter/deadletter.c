/*
 * deadletter: see deadletter.h for the contract. The stage's state is the Postgres handle (one
 * connection, used only on the loop's thread), the letters buffered since the last flush, and
 * the metric series.
 */
#include "deadletter.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_kafka.h"
#include "sl_log.h"
#include "sl_pg.h"
#include "sl_text.h"

#define TIME_MAX    40                /* "2026-11-24 17:30:00.123+00" and its NUL, with room */
#define TIME_MAX_MS 253402300800000LL /* 10000-01-01T00:00:00Z */

/* One buffered dead letter, every member owned. Text is valid UTF-8. */
struct letter {
    char *event_id, *source, *type; /* NULL: absent */
    char *stage, *reason;
    char *errors;  /* a JSON array; NULL: none */
    char *headers; /* a JSON object */
    int attempt;
    void *payload;
    size_t len;
    void *key; /* NULL: no key */
    size_t key_len;
    char *topic;
    int32_t partition;
    int64_t offset;
    char produced_at[TIME_MAX]; /* "": unknown */
};

struct deadletter {
    sl_pg_t *pg;
    struct letter *letters;
    size_t n, cap;
    size_t bytes;
    sl_series_t *m_inserted, *m_existing, *m_batch, *m_flush;
    sl_metric_t *m_failures;
};

static const struct sl_pg_upsert deadletter_spec = {
    .table = "dead_letters",
    .staging = "dead_letters_stage",
    .columns = "event_id, source, type, stage, reason, errors, attempt, headers, payload, key, "
               "topic, partition, kafka_offset, produced_at",
    .conflict = "(topic, partition, kafka_offset)",
};

static const double batch_buckets[] = {1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- building a letter ---- */

/* A copy of s (NUL-free, as CloudEvents attribute values are) that is valid UTF-8: every byte
 * that does not start a valid sequence becomes U+FFFD. NULL for NULL or out of memory. */
static char *utf8_copy(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;
    if (!out)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    while (n > 0) {
        size_t len = sl_utf8_seq_len(p, n);
        if (len) {
            memcpy(o, p, len);
            o += len;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            len = 1;
        }
        p += len;
        n -= len;
    }
    *o = '\0';
    return out;
}

/* The errors column: ce_sluiceerrors when it is a JSON array, else the text as the one element
 * of an array. */
static char *errors_json(const char *text)
{
    json_t *v = json_loads(text, 0, NULL);
    char *out = NULL;
    if (!json_is_array(v)) {
        json_decref(v);
        char *clean = utf8_copy(text);
        v = clean ? json_pack("[s]", clean) : NULL;
        free(clean);
    }
    if (v)
        out = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return out;
}

/* The CloudEvents attributes as the headers they travel in: ce_<name>, and content-type. The
 * only headers that reach the table. */
static char *headers_json(const struct sl_ce *ce)
{
    json_t *h = json_object();
    char *out = NULL;
    for (size_t i = 0; h && i < ce->n; i++) {
        char name[32];
        const char *attr = ce->attrs[i].name;
        if (strcmp(attr, "datacontenttype") == 0)
            snprintf(name, sizeof(name), "content-type");
        else
            snprintf(name, sizeof(name), "ce_%s", attr);
        char *value = utf8_copy(ce->attrs[i].value);
        if (!value || json_object_set_new(h, name, json_string(value)) != 0) {
            free(value);
            goto out;
        }
        free(value);
    }
    out = h ? json_dumps(h, JSON_COMPACT) : NULL;
out:
    json_decref(h);
    return out;
}

/* ce_sluiceattempt when it is an integer >= 1, else 1. */
static int attempt_of(const char *text)
{
    if (!text || *text < '0' || *text > '9')
        return 1;
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    return errno || *end || v < 1 || v > 2147483647L ? 1 : (int)v;
}

/* The Kafka timestamp `ms` as timestamptz text; "" when unknown or past the year 9999 (a
 * producer may set any timestamp; Postgres must never refuse the row). */
static void time_of(int64_t ms, char *buf, size_t size)
{
    buf[0] = '\0';
    if (ms < 0 || ms >= TIME_MAX_MS)
        return;
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03d+00", (int)(ms % 1000));
}

static void letter_free(struct letter *l)
{
    free(l->event_id);
    free(l->source);
    free(l->type);
    free(l->stage);
    free(l->reason);
    free(l->errors);
    free(l->headers);
    free(l->payload);
    free(l->key);
    free(l->topic);
    memset(l, 0, sizeof(*l));
}

static void *copy_bytes(const void *p, size_t n)
{
    void *out = malloc(n ? n : 1);
    if (out && n)
        memcpy(out, p, n);
    return out;
}

/* Builds the letter of `in`; 0, or -1 when out of memory (nothing is kept then). */
static int letter_build(struct letter *l, const struct sl_event *in)
{
    const struct sl_ce *ce = in->ce;
    const char *stage = sl_ce_get(ce, SL_CE_STAGE), *reason = sl_ce_get(ce, SL_CE_REASON);
    const char *errors = sl_ce_get(ce, SL_CE_ERRORS), *source = sl_ce_get(ce, SL_CE_SOURCE_NAME);
    memset(l, 0, sizeof(*l));
    l->event_id = utf8_copy(sl_ce_get(ce, "id"));
    l->source = utf8_copy(source ? source : sl_ce_get(ce, "source"));
    l->type = utf8_copy(sl_ce_get(ce, "type"));
    l->stage = utf8_copy(stage ? stage : "unknown");
    l->reason = utf8_copy(reason ? reason : "no reason given");
    l->errors = errors ? errors_json(errors) : NULL;
    l->headers = headers_json(ce);
    l->attempt = attempt_of(sl_ce_get(ce, SL_CE_ATTEMPT));
    l->payload = copy_bytes(in->data, in->len);
    l->len = in->len;
    l->key = in->key ? copy_bytes(in->key, in->key_len) : NULL;
    l->key_len = in->key_len;
    l->topic = strdup(in->topic);
    l->partition = in->partition;
    l->offset = in->offset;
    time_of(in->timestamp_ms, l->produced_at, sizeof(l->produced_at));
    /* id, source and type are absent only from a record that is not a CloudEvent (the loop
     * hands those to this stage too); any other NULL is OOM. */
    const char *id = sl_ce_get(ce, "id"), *type = sl_ce_get(ce, "type");
    if ((id && !l->event_id) || ((source || sl_ce_get(ce, "source")) && !l->source) ||
        (type && !l->type) || !l->stage || !l->reason || (errors && !l->errors) || !l->headers ||
        !l->payload || (in->key && !l->key) || !l->topic) {
        letter_free(l);
        return -1;
    }
    return 0;
}

static size_t letter_bytes(const struct letter *l)
{
    return l->len + l->key_len + strlen(l->headers) + (l->errors ? strlen(l->errors) : 0);
}

/* ---- the buffer ---- */

static void clear_letters(struct deadletter *d)
{
    for (size_t i = 0; i < d->n; i++)
        letter_free(&d->letters[i]);
    d->n = 0;
    d->bytes = 0;
}

static enum sl_verdict deadletter_process(void *ctx, const struct sl_event *in, struct sl_emit *out)
{
    struct deadletter *d = ctx;
    if (d->n > 0 && d->bytes + in->len > DEADLETTER_BATCH_BYTES) {
        sl_emit_reason(out, "dead-letter batch holds %zu bytes: writing it first", d->bytes);
        return SL_RETRY;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        struct letter *l = realloc(d->letters, cap * sizeof(*l));
        if (!l) {
            sl_emit_reason(out, "out of memory");
            return SL_RETRY;
        }
        d->letters = l;
        d->cap = cap;
    }
    struct letter *l = &d->letters[d->n];
    if (letter_build(l, in) != 0) {
        sl_emit_reason(out, "out of memory");
        return SL_RETRY;
    }
    d->n++;
    d->bytes += letter_bytes(l);
    return SL_PASS;
}

static void deadletter_discard(void *ctx)
{
    clear_letters(ctx);
}

/* ---- writing ---- */

static int copy_letters(struct deadletter *d, sl_pg_copy_t *c, struct sl_err *err)
{
    for (size_t i = 0; i < d->n; i++) {
        const struct letter *l = &d->letters[i];
        sl_pg_copy_text(c, l->event_id);
        sl_pg_copy_text(c, l->source);
        sl_pg_copy_text(c, l->type);
        sl_pg_copy_text(c, l->stage);
        sl_pg_copy_text(c, l->reason);
        sl_pg_copy_text(c, l->errors);
        sl_pg_copy_int(c, l->attempt);
        sl_pg_copy_text(c, l->headers);
        sl_pg_copy_bytea(c, l->payload, l->len);
        if (l->key)
            sl_pg_copy_bytea(c, l->key, l->key_len);
        else
            sl_pg_copy_null(c);
        sl_pg_copy_text(c, l->topic);
        sl_pg_copy_int(c, l->partition);
        sl_pg_copy_int(c, l->offset);
        sl_pg_copy_text(c, l->produced_at[0] ? l->produced_at : NULL);
        if (sl_pg_copy_row(c, err) != 0)
            return -1;
    }
    return 0;
}

static int deadletter_flush(void *ctx, struct sl_err *err)
{
    struct deadletter *d = ctx;
    long long inserted = 0;
    if (d->n == 0)
        return 0;
    double t0 = now_s();
    /* Outside a transaction: the batch is its own (BEGIN here, COMMIT in sl_pg_copy_end). */
    sl_pg_copy_t *c = sl_pg_upsert_begin(d->pg, &deadletter_spec, err);
    if (!c)
        goto fail;
    if (copy_letters(d, c, err) != 0) {
        sl_pg_copy_abort(c);
        goto fail;
    }
    if (sl_pg_copy_end(c, &inserted, err) != 0)
        goto fail;
    sl_series_add(d->m_inserted, (double)inserted);
    sl_series_add(d->m_existing, (double)((long long)d->n - inserted));
    sl_series_observe(d->m_batch, (double)d->n);
    sl_series_observe(d->m_flush, now_s() - t0);
    SL_INFO("stored %zu dead letters (%lld new)", d->n, inserted);
    clear_letters(d);
    return 0;
fail:
    sl_series_add(
        sl_metric_series(d->m_failures, (const char *const[]){sl_errcode_name(err->code)}), 1);
    return -1;
}

/* ---- life ---- */

static void deadletter_free(struct deadletter *d)
{
    if (!d)
        return;
    clear_letters(d);
    free(d->letters);
    sl_pg_destroy(d->pg);
    free(d);
}

static int deadletter_init(void **ctx, const struct sl_stage_env *env, struct sl_err *err)
{
    const char *dsn;
    struct deadletter *d = calloc(1, sizeof(*d));
    if (!d)
        return sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    const struct sl_pg_opts opts = {.application_name = "sluice-deadletter"};
    /* sl_pg_new() only checks the DSN: a bad one fails here, a Postgres that is down does
     * not (the first flush waits for it). */
    if (sl_pg_settings(env->conf, &dsn, err) != 0 || !(d->pg = sl_pg_new(dsn, &opts, err)))
        goto fail;
    sl_metrics_t *m = env->metrics;
    sl_metric_t *rows = sl_metrics_counter(
        m, "sluice_deadletter_rows_total",
        "Dead letters written: inserted, or existing (already stored: a batch written again).",
        (const char *const[]){"result", NULL});
    sl_metric_t *batch =
        sl_metrics_histogram(m, "sluice_deadletter_batch_rows", "Dead letters per written batch.",
                             NULL, batch_buckets, sizeof(batch_buckets) / sizeof(batch_buckets[0]));
    sl_metric_t *flush =
        sl_metrics_histogram(m, "sluice_deadletter_flush_seconds",
                             "Time to write one batch (its whole Postgres transaction).", NULL,
                             sl_metrics_latency_buckets, sl_metrics_latency_buckets_n);
    d->m_failures =
        sl_metrics_counter(m, "sluice_deadletter_flush_failures_total",
                           "Batches that could not be written (retried when retriable), by error.",
                           (const char *const[]){"error", NULL});
    if (!rows || !batch || !flush || !d->m_failures) {
        sl_err_set(err, SL_ERR_NOMEM, "cannot register the dead-letter metrics");
        goto fail;
    }
    d->m_inserted = sl_metric_series(rows, (const char *const[]){"inserted"});
    d->m_existing = sl_metric_series(rows, (const char *const[]){"existing"});
    d->m_batch = sl_metric_series(batch, NULL);
    d->m_flush = sl_metric_series(flush, NULL);
    SL_INFO("storing dead letters in %s", sl_pg_where(d->pg));
    *ctx = d;
    return 0;
fail:
    deadletter_free(d);
    return -1;
}

static void deadletter_fini(void *ctx)
{
    deadletter_free(ctx);
}

const struct sl_stage deadletter_stage = {
    .name = "deadletter",
    .kind = SL_STAGE_SINK,
    .description = "Stores every dead letter of <prefix>dlq in PostgreSQL (stage, reason, errors, "
                   "CloudEvents headers, payload) for inspection and replay.",
    .input = SL_TOPIC_DLQ,
    .admin_port = 9186,
    .any_record = true,
    .init = deadletter_init,
    .process = deadletter_process,
    .flush = deadletter_flush,
    .discard = deadletter_discard,
    .fini = deadletter_fini,
};
