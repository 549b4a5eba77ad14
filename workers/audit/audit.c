/*
 * audit: see audit.h for the contract.
 *
 * Two threads. The loop's thread parses each record into a row (process()) and appends it to
 * the batch; the writer thread, which alone uses the Postgres connection, writes the batch in
 * sub-batches of AUDIT_SUB_ROWS rows into the batch's open transaction while the loop thread
 * goes on parsing, and on flush() writes the rest and commits. Parsing and writing overlap, so
 * a batch costs about the larger of the two instead of their sum. The rows live in chunks that
 * never move: the writer reads rows [written, ready) while the loop thread appends after
 * `ready`; rows are freed only when the writer is done with the batch (committed or rolled
 * back). A failed write rolls the transaction back and marks the batch failed: nothing more is
 * written until flush(), which starts the whole batch again from its first row.
 *
 *   loop thread                         writer thread (pg)
 *   process: parse, append; every       BEGIN (first sub-batch), guard, rows, event_status
 *            AUDIT_SUB_ROWS: ready = n  ...
 *   flush:   ready = n, finish; wait    the rest, COMMIT; result -> flush
 *   discard: abandon; wait              ROLLBACK
 */
#include "audit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "record.h"
#include "sl_kafka.h"
#include "sl_log.h"
#include "sl_pg.h"

/* Rows per chunk of the batch, and chunks at most: the loop's largest batch_max_events
 * (100000) fits. */
#define CHUNK_ROWS 1024
#define CHUNKS_MAX (100000 / CHUNK_ROWS + 1)

/* One buffered audit record: the row, and where the record was read. */
struct entry {
    struct audit_row row;
    char *topic;
    int32_t partition;
    int64_t offset;
};

struct audit {
    sl_pg_t *pg; /* the writer thread's alone once it runs */
    bool event_status;

    /* The batch, appended by the loop thread. */
    struct entry *chunks[CHUNKS_MAX];
    size_t n;         /* rows in the batch */
    size_t bytes;     /* their memory, against AUDIT_BATCH_BYTES */
    size_t published; /* the last `ready` the loop thread set */

    /* Shared, under lock. */
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* any change below; both threads wait on it */
    size_t ready;        /* rows [0, ready) may be written */
    bool finish;         /* flush(): write up to `ready` and commit; cleared when done */
    bool abandon;        /* discard(): roll back; cleared when done */
    bool stop;           /* fini() */
    bool failed;         /* the batch's transaction failed and was rolled back */
    struct sl_err failure;
    int result; /* of the last finish: 0 or -1 (failure) */

    /* The writer thread's own. */
    size_t written;               /* rows [0, written) are in the open transaction */
    bool in_txn;                  /* the batch's transaction is open */
    bool direct_all;              /* every sub-batch so far went straight into audit */
    long long inserted, statuses; /* of the open transaction */
    unsigned long session;        /* of the open transaction */
    double started_at;            /* when the open transaction began */
    /* The session in which audit_status_stage was made and committed (0: none yet). */
    unsigned long status_session;

    sl_series_t *m_inserted, *m_existing, *m_status, *m_batch, *m_flush, *m_direct, *m_staged;
    sl_metric_t *m_failures;
};

static struct entry *entry_at(const struct audit *a, size_t i)
{
    return &a->chunks[i / CHUNK_ROWS][i % CHUNK_ROWS];
}

#define AUDIT_COLUMNS                                                                              \
    "at, event_id, stage, outcome, reason, errors, source, type, destination, attempt, status, "   \
    "latency_ms, seconds, outputs, detail, topic, partition, kafka_offset, audit_topic, "          \
    "audit_partition, audit_offset"

static const struct sl_pg_upsert audit_spec = {
    .table = "audit",
    .staging = "audit_stage",
    .columns = AUDIT_COLUMNS,
    .conflict = "(audit_topic, audit_partition, audit_offset, at)",
    .before = "SELECT sluice_audit_partition_ensure(d) FROM "
              "(SELECT DISTINCT (at AT TIME ZONE 'UTC')::date AS d FROM audit_stage) AS days",
};

/* ---- the guard of the direct COPY (audit.h) ---- */

/* Writers of the same audit partitions take turns; in partition order, so never in a cycle. */
static const char guard_lock_sql[] =
    "SELECT pg_advisory_xact_lock(hashtext($1), p) FROM unnest($2::int[]) AS p";
/* Run after the locks, so that its snapshot sees every batch that held them before. */
static const char guard_check_sql[] =
    "SELECT EXISTS (SELECT 1 FROM unnest($2::int[], $3::bigint[], $4::bigint[]) AS r(p, lo, hi) "
    "JOIN audit a ON a.audit_topic = $1 AND a.audit_partition = r.p AND a.audit_offset BETWEEN "
    "r.lo AND r.hi)";
static const char ensure_days_sql[] =
    "SELECT sluice_audit_partition_ensure(d) FROM unnest($1::date[]) AS d";

/* ---- event_status: the statements of audit.h's rules, run in the batch's transaction ---- */

#define STATUS_STAGE   "audit_status_stage"
#define STATUS_COLUMNS "event_id, destination, source, type, route, state, at, accepted_at"

static const char status_stage_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS " STATUS_STAGE " (event_id text NOT NULL, destination text "
    "NOT NULL, source text NOT NULL, type text, route text, state text NOT NULL, at timestamptz "
    "NOT NULL, accepted_at timestamptz NOT NULL) ON COMMIT DELETE ROWS";

/* A stored pre-routing row that a record of the batch about a destination supersedes; the
 * event's rows keep its acceptance time. */
static const char status_supersede_stored_sql[] =
    "WITH routed AS (SELECT event_id, max(at) AS at FROM " STATUS_STAGE
    " WHERE destination <> '' GROUP BY event_id), "
    "gone AS (DELETE FROM event_status s USING routed r WHERE s.event_id = r.event_id AND "
    "s.destination = '' AND s.terminal_at <= r.at RETURNING s.event_id, s.accepted_at) "
    "UPDATE " STATUS_STAGE " b SET accepted_at = g.accepted_at FROM gone g "
    "WHERE b.event_id = g.event_id AND g.accepted_at < b.accepted_at";

/* TRUNCATE, not DELETE: the rows of every sub-batch would stay as dead tuples until COMMIT,
 * and each later sub-batch would scan them again. */
static const char status_clear_sql[] = "TRUNCATE " STATUS_STAGE;

/* The batch's rows, one per (event, destination) and already resolved within the batch (see
 * copy_status_rows), applied so that pending never overwrites and the latest terminal state
 * wins. */
static const char status_upsert_sql[] =
    "INSERT INTO event_status AS s (event_id, destination, source, type, route, state, "
    "accepted_at, terminal_at) "
    "SELECT event_id, destination, source, type, route, state, accepted_at, "
    "CASE WHEN state = 'pending' THEN NULL ELSE at END FROM " STATUS_STAGE " "
    "ON CONFLICT (event_id, destination) DO UPDATE SET "
    "state = CASE WHEN EXCLUDED.state <> 'pending' AND (s.state = 'pending' OR "
    "s.terminal_at <= EXCLUDED.terminal_at) THEN EXCLUDED.state ELSE s.state END, "
    "terminal_at = CASE WHEN EXCLUDED.state <> 'pending' AND (s.state = 'pending' OR "
    "s.terminal_at <= EXCLUDED.terminal_at) THEN EXCLUDED.terminal_at ELSE s.terminal_at END, "
    "accepted_at = LEAST(s.accepted_at, EXCLUDED.accepted_at), "
    "source = CASE WHEN s.source = '' THEN EXCLUDED.source ELSE s.source END, "
    "type = COALESCE(s.type, EXCLUDED.type), route = COALESCE(s.route, EXCLUDED.route), "
    "updated_at = now()";

static const double batch_buckets[] = {1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the batch (loop thread) ---- */

/* Frees the rows; only while the writer holds none of them (after a commit or a rollback). */
static void clear_entries(struct audit *a)
{
    for (size_t i = 0; i < a->n; i++) {
        struct entry *e = entry_at(a, i);
        audit_row_free(&e->row);
        free(e->topic);
    }
    a->n = 0;
    a->bytes = 0;
    a->published = 0;
}

static enum sl_verdict audit_process(void *ctx, const struct sl_event *in, struct sl_emit *out)
{
    struct audit *a = ctx;
    struct sl_err err;
    size_t need = 4 * in->len + 16 + sizeof(struct entry); /* record.h's block, and the entry */
    if (a->n > 0 && (a->bytes + need > AUDIT_BATCH_BYTES || a->n == CHUNKS_MAX * CHUNK_ROWS)) {
        sl_emit_reason(out, "audit batch of %zu rows holds %zu bytes: writing it first", a->n,
                       a->bytes);
        return SL_RETRY;
    }
    size_t c = a->n / CHUNK_ROWS;
    if (!a->chunks[c] && !(a->chunks[c] = malloc(CHUNK_ROWS * sizeof(struct entry)))) {
        sl_emit_reason(out, "out of memory");
        return SL_RETRY;
    }
    struct entry *e = entry_at(a, a->n);
    if (audit_row_parse(&e->row, in->data, in->len, in->timestamp_ms, &err) != 0) {
        if (err.code == SL_ERR_NOMEM) {
            sl_emit_reason(out, "out of memory");
            return SL_RETRY;
        }
        sl_emit_reason(out, "%s", err.msg);
        return SL_REJECT;
    }
    if (!(e->topic = strdup(in->topic))) {
        audit_row_free(&e->row);
        sl_emit_reason(out, "out of memory");
        return SL_RETRY;
    }
    e->partition = in->partition;
    e->offset = in->offset;
    a->n++;
    a->bytes += need;
    if (a->n - a->published >= AUDIT_SUB_ROWS) {
        pthread_mutex_lock(&a->lock);
        a->ready = a->published = a->n;
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
    }
    return SL_PASS;
}

/* ---- writing ---- */

static void copy_opt_int(sl_pg_copy_t *c, bool has, long long v)
{
    if (has)
        sl_pg_copy_int(c, v);
    else
        sl_pg_copy_null(c);
}

static int copy_audit_rows(struct audit *a, size_t from, size_t to, sl_pg_copy_t *c,
                           struct sl_err *err)
{
    for (size_t i = from; i < to; i++) {
        const struct entry *e = entry_at(a, i);
        const struct audit_row *r = &e->row;
        sl_pg_copy_text(c, r->at);
        sl_pg_copy_text(c, r->event_id);
        sl_pg_copy_text(c, r->stage);
        sl_pg_copy_text(c, r->outcome);
        sl_pg_copy_text(c, r->reason);
        sl_pg_copy_text(c, r->errors);
        sl_pg_copy_text(c, r->source);
        sl_pg_copy_text(c, r->type);
        sl_pg_copy_text(c, r->destination);
        copy_opt_int(c, r->has_attempt, r->attempt);
        copy_opt_int(c, r->has_status, r->status);
        if (r->has_latency)
            sl_pg_copy_double(c, r->latency_ms);
        else
            sl_pg_copy_null(c);
        if (r->has_seconds)
            sl_pg_copy_double(c, r->seconds);
        else
            sl_pg_copy_null(c);
        copy_opt_int(c, r->has_outputs, r->outputs);
        sl_pg_copy_text(c, r->detail);
        sl_pg_copy_text(c, r->topic);
        sl_pg_copy_int(c, r->partition);
        sl_pg_copy_int(c, r->offset);
        sl_pg_copy_text(c, e->topic);
        sl_pg_copy_int(c, e->partition);
        sl_pg_copy_int(c, e->offset);
        if (sl_pg_copy_row(c, err) != 0)
            return -1;
    }
    return 0;
}

/* One event_status row that a row of the batch implies. */
struct srow {
    const struct audit_row *r;
    struct audit_status st;
};

static bool pending(const struct srow *x)
{
    return strcmp(x->st.state, "pending") == 0;
}

/* By event, destination, then terminal before pending, then latest first ("at" is canonical
 * UTC text: its order is time order). */
static int srow_cmp(const void *x, const void *y)
{
    const struct srow *a = x, *b = y;
    int c = strcmp(a->r->event_id, b->r->event_id);
    if (!c)
        c = strcmp(a->st.destination, b->st.destination);
    if (!c)
        c = (int)pending(a) - (int)pending(b);
    if (!c)
        c = strcmp(b->r->at, a->r->at);
    return c;
}

/* Stages the event_status rows of the batch, resolved within it by audit.h's rules: per
 * (event, destination) its latest terminal row, else its latest pending one; an event's
 * pre-routing row left out when a row of the batch about a destination is as late or later;
 * the earliest acceptance time of the event's rows, and the route any of them named. Postgres
 * then sees each key once. *rows is how many were staged. */
static int copy_status_rows(struct audit *a, size_t from, size_t to, sl_pg_copy_t *c,
                            long long *rows, struct sl_err *err)
{
    struct audit_status st[AUDIT_STATUS_MAX];
    size_t n = 0, cap = 0;
    struct srow *all = NULL;
    int rc = -1;
    *rows = 0;
    for (size_t i = from; i < to; i++) {
        const struct audit_row *r = &entry_at(a, i)->row;
        size_t k = audit_row_status(r, st);
        if (n + k > cap) {
            size_t want = cap ? cap * 2 : 1024;
            while (want < n + k)
                want *= 2;
            struct srow *p = realloc(all, want * sizeof(*p));
            if (!p) {
                sl_err_set(err, SL_ERR_NOMEM, "out of memory");
                goto out;
            }
            all = p;
            cap = want;
        }
        for (size_t j = 0; j < k; j++)
            all[n++] = (struct srow){r, st[j]};
    }
    if (n)
        qsort(all, n, sizeof(*all), srow_cmp);
    for (size_t i = 0, end; i < n; i = end) {
        const char *first = all[i].r->accepted, *routed = NULL;
        for (end = i; end < n && strcmp(all[end].r->event_id, all[i].r->event_id) == 0; end++) {
            if (strcmp(all[end].r->accepted, first) < 0)
                first = all[end].r->accepted;
            if (all[end].st.destination[0] && (!routed || strcmp(all[end].r->at, routed) > 0))
                routed = all[end].r->at;
        }
        for (size_t g = i, next; g < end; g = next) {
            const struct srow *x = &all[g];
            const char *route = NULL, *source = NULL, *type = NULL;
            for (next = g; next < end && strcmp(all[next].st.destination, x->st.destination) == 0;
                 next++) {
                route = route ? route : all[next].r->route;
                source = source ? source : all[next].r->source;
                type = type ? type : all[next].r->type;
            }
            if (!x->st.destination[0] && routed && strcmp(x->r->at, routed) <= 0)
                continue;
            sl_pg_copy_text(c, x->r->event_id);
            sl_pg_copy_text(c, x->st.destination);
            sl_pg_copy_text(c, source ? source : "");
            sl_pg_copy_text(c, type);
            sl_pg_copy_text(c, x->st.destination[0] ? route : NULL);
            sl_pg_copy_text(c, x->st.state);
            sl_pg_copy_text(c, x->r->at);
            sl_pg_copy_text(c, first);
            if (sl_pg_copy_row(c, err) != 0)
                goto out;
            (*rows)++;
        }
    }
    rc = 0;
out:
    free(all);
    return rc;
}

/* Applies the batch's event_status rows (inside the batch's transaction); *written is how many
 * rows of event_status were inserted or updated. */
static int write_status(struct audit *a, size_t from, size_t to, long long *written,
                        struct sl_err *err)
{
    long long staged = 0;
    PGresult *res = NULL;
    *written = 0;
    if (sl_pg_session(a->pg) != a->status_session &&
        sl_pg_exec(a->pg, status_stage_sql, 0, NULL, NULL, err) != 0)
        return -1;
    sl_pg_copy_t *c = sl_pg_copy_begin(a->pg, STATUS_STAGE, STATUS_COLUMNS, err);
    if (!c)
        return -1;
    if (copy_status_rows(a, from, to, c, &staged, err) != 0) {
        sl_pg_copy_abort(c);
        return -1;
    }
    if (sl_pg_copy_end(c, NULL, err) != 0)
        return -1;
    if (staged == 0)
        return 0;
    if (sl_pg_exec(a->pg, status_supersede_stored_sql, 0, NULL, NULL, err) != 0 ||
        sl_pg_exec(a->pg, status_upsert_sql, 0, NULL, &res, err) != 0)
        return -1;
    *written = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    /* Emptied at COMMIT only: the next sub-batch of the transaction must not see these. */
    return sl_pg_exec(a->pg, status_clear_sql, 0, NULL, NULL, err);
}

/* A growable text for array parameters ("{1,2,3}"); `failed` once out of memory. */
struct text {
    char *s;
    size_t len, cap;
    bool failed;
};

static void text_add(struct text *t, const char *piece, size_t n)
{
    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *p = realloc(t->s, cap);
        if (!p) {
            t->failed = true;
            return;
        }
        t->s = p;
        t->cap = cap;
    }
    memcpy(t->s + t->len, piece, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static void text_num(struct text *t, long long v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%s%lld", t->len > 1 ? "," : "", v);
    text_add(t, num, (size_t)n);
}

struct span {
    int32_t partition;
    int64_t lo, hi;
};

static int span_cmp(const void *x, const void *y)
{
    const struct span *a = x, *b = y;
    return (a->partition > b->partition) - (a->partition < b->partition);
}

/* Locks the batch's audit partitions and tells whether no stored row lies in its offset
 * range on any of them: 1 (copy straight into audit), 0 (through the staging table), -1 with
 * *err. A batch of several topics (never: the stage reads one) takes the staging table. */
static int guard(struct audit *a, size_t from, size_t to, struct sl_err *err)
{
    struct span *spans = calloc(to - from, sizeof(*spans));
    struct text parts = {0}, los = {0}, his = {0};
    PGresult *res = NULL;
    size_t n = 0;
    int clear = -1;
    if (!spans) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto out;
    }
    const char *topic = entry_at(a, from)->topic;
    for (size_t i = from; i < to; i++) {
        const struct entry *e = entry_at(a, i);
        if (strcmp(e->topic, topic) != 0) {
            clear = 0;
            goto out;
        }
        size_t j = 0;
        while (j < n && spans[j].partition != e->partition)
            j++;
        if (j == n)
            spans[n++] = (struct span){e->partition, e->offset, e->offset};
        spans[j].lo = e->offset < spans[j].lo ? e->offset : spans[j].lo;
        spans[j].hi = e->offset > spans[j].hi ? e->offset : spans[j].hi;
    }
    qsort(spans, n, sizeof(*spans), span_cmp);
    text_add(&parts, "{", 1);
    text_add(&los, "{", 1);
    text_add(&his, "{", 1);
    for (size_t j = 0; j < n; j++) {
        text_num(&parts, spans[j].partition);
        text_num(&los, spans[j].lo);
        text_num(&his, spans[j].hi);
    }
    text_add(&parts, "}", 1);
    text_add(&los, "}", 1);
    text_add(&his, "}", 1);
    if (parts.failed || los.failed || his.failed) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto out;
    }
    const char *params[] = {topic, parts.s, los.s, his.s};
    if (sl_pg_exec(a->pg, guard_lock_sql, 2, params, NULL, err) != 0 ||
        sl_pg_exec(a->pg, guard_check_sql, 4, params, &res, err) != 0)
        goto out;
    clear = strcmp(PQgetvalue(res, 0, 0), "f") == 0;
out:
    PQclear(res);
    free(parts.s);
    free(los.s);
    free(his.s);
    free(spans);
    return clear;
}

/* Creates the daily partitions the batch's rows need (the staging path's `before` does the
 * same from the staging table). */
static int ensure_days(struct audit *a, size_t from, size_t to, struct sl_err *err)
{
    struct text days = {0};
    char last[11] = "";
    int rc = -1;
    text_add(&days, "{", 1);
    for (size_t i = from; i < to; i++) {
        const char *at = entry_at(a, i)->row.at; /* "YYYY-MM-DD ..." */
        if (strncmp(at, last, 10) == 0)
            continue;
        /* Rows arrive nearly in time order: a day already listed is seldom seen again, and a
         * repeat only costs a call that finds the partition there. */
        memcpy(last, at, 10);
        if (days.len > 1)
            text_add(&days, ",", 1);
        text_add(&days, at, 10);
    }
    text_add(&days, "}", 1);
    if (days.failed) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto out;
    }
    const char *params[] = {days.s};
    rc = sl_pg_exec(a->pg, ensure_days_sql, 1, params, NULL, err);
out:
    free(days.s);
    return rc;
}

/* The batch's rows into `audit`: straight (1) or through the staging table (0). */
static int write_rows(struct audit *a, size_t from, size_t to, int direct, long long *inserted,
                      struct sl_err *err)
{
    sl_pg_copy_t *c = NULL;
    if (direct) {
        if (ensure_days(a, from, to, err) != 0 ||
            !(c = sl_pg_copy_begin(a->pg, "audit", AUDIT_COLUMNS, err)))
            return -1;
    } else if (!(c = sl_pg_upsert_begin(a->pg, &audit_spec, err))) {
        return -1;
    }
    if (copy_audit_rows(a, from, to, c, err) != 0) {
        sl_pg_copy_abort(c);
        return -1;
    }
    return sl_pg_copy_end(c, inserted, err);
}

/* ---- the writer thread ---- */

/* Writes rows [from, to) into the batch's transaction, opening it first when needed. */
static int write_range(struct audit *a, size_t from, size_t to, struct sl_err *err)
{
    long long inserted = 0, statuses = 0;
    int direct;
    if (!a->in_txn) {
        if (sl_pg_begin(a->pg, err) != 0)
            return -1;
        a->in_txn = true;
        a->session = sl_pg_session(a->pg);
        a->started_at = now_s();
        a->inserted = a->statuses = 0;
        a->direct_all = true;
    }
    if ((direct = guard(a, from, to, err)) < 0 ||
        write_rows(a, from, to, direct, &inserted, err) != 0 ||
        (a->event_status && write_status(a, from, to, &statuses, err) != 0))
        return -1;
    a->inserted += inserted;
    a->statuses += statuses;
    a->direct_all = a->direct_all && direct;
    return 0;
}

static int commit(struct audit *a, size_t rows, struct sl_err *err)
{
    if (!a->in_txn)
        return 0; /* an empty batch */
    if (sl_pg_commit(a->pg, err) != 0)
        return -1;
    a->in_txn = false;
    if (a->event_status)
        a->status_session = a->session;
    sl_series_add(a->m_inserted, (double)a->inserted);
    sl_series_add(a->m_existing, (double)((long long)rows - a->inserted));
    sl_series_add(a->m_status, (double)a->statuses);
    sl_series_add(a->direct_all ? a->m_direct : a->m_staged, 1);
    sl_series_observe(a->m_batch, (double)rows);
    sl_series_observe(a->m_flush, now_s() - a->started_at);
    SL_DEBUG("audit batch: %zu rows, %lld new, %lld event_status rows", rows, a->inserted,
             a->statuses);
    return 0;
}

static void roll_back(struct audit *a)
{
    sl_pg_rollback(a->pg);
    a->in_txn = false;
    a->written = 0;
}

static void *writer(void *arg)
{
    struct audit *a = arg;
    struct sl_err err;
    pthread_mutex_lock(&a->lock);
    for (;;) {
        while (!a->stop && !a->abandon && !a->finish &&
               (a->failed || a->ready - a->written < AUDIT_SUB_ROWS))
            pthread_cond_wait(&a->cond, &a->lock);
        if (a->stop)
            break;
        if (a->abandon) {
            pthread_mutex_unlock(&a->lock);
            roll_back(a);
            pthread_mutex_lock(&a->lock);
            /* The batch is gone: nothing is ready until the next one is handed over. */
            a->ready = 0;
            a->abandon = a->failed = false;
            pthread_cond_broadcast(&a->cond);
            continue;
        }
        bool finishing = a->finish, was_failed = a->failed;
        size_t to = a->ready;
        int rc = was_failed ? -1 : 0;
        pthread_mutex_unlock(&a->lock);
        sl_err_clear(&err);
        if (rc == 0 && to > a->written && write_range(a, a->written, to, &err) != 0)
            rc = -1;
        if (rc == 0)
            a->written = to;
        if (rc == 0 && finishing && commit(a, to, &err) != 0)
            rc = -1;
        if (rc == 0 && finishing)
            a->written = 0;
        bool newly_failed = rc != 0 && !was_failed;
        if (newly_failed) {
            if (!finishing) /* flush() reports its own failures */
                SL_WARN("writing part of a batch failed; the whole batch is written again at "
                        "its end: %s",
                        err.msg);
            roll_back(a);
            sl_series_add(
                sl_metric_series(a->m_failures, (const char *const[]){sl_errcode_name(err.code)}),
                1);
        }
        pthread_mutex_lock(&a->lock);
        if (newly_failed) {
            a->failed = true;
            a->failure = err;
        }
        if (finishing) {
            /* Committed, the batch is the loop thread's to free: nothing is ready until the
             * next one is handed over (while `failed`, the batch waits for the next flush). */
            if (rc == 0)
                a->ready = 0;
            a->result = rc;
            a->finish = false;
            pthread_cond_broadcast(&a->cond);
        }
    }
    pthread_mutex_unlock(&a->lock);
    if (a->in_txn)
        roll_back(a);
    return NULL;
}

/* ---- flush and discard (loop thread) ---- */

static int audit_flush(void *ctx, struct sl_err *err)
{
    struct audit *a = ctx;
    if (a->n == 0)
        return 0;
    pthread_mutex_lock(&a->lock);
    /* A sub-batch failed earlier (its transaction is rolled back): the whole batch again. */
    a->failed = false;
    a->ready = a->published = a->n;
    a->finish = true;
    pthread_cond_broadcast(&a->cond);
    while (a->finish)
        pthread_cond_wait(&a->cond, &a->lock);
    int rc = a->result;
    if (rc != 0)
        *err = a->failure;
    pthread_mutex_unlock(&a->lock);
    if (rc == 0)
        clear_entries(a);
    return rc;
}

static void audit_discard(void *ctx)
{
    struct audit *a = ctx;
    pthread_mutex_lock(&a->lock);
    a->abandon = true;
    pthread_cond_broadcast(&a->cond);
    while (a->abandon)
        pthread_cond_wait(&a->cond, &a->lock);
    pthread_mutex_unlock(&a->lock);
    clear_entries(a);
}

/* ---- life ---- */

/* Stops the writer (rolling back what it holds) and frees everything. NULL is a no-op. */
static void audit_free(struct audit *a)
{
    if (!a)
        return;
    if (a->started) {
        pthread_mutex_lock(&a->lock);
        a->stop = true;
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
        pthread_join(a->thread, NULL);
    }
    clear_entries(a);
    for (size_t c = 0; c < CHUNKS_MAX; c++)
        free(a->chunks[c]);
    sl_pg_destroy(a->pg);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static int audit_init(void **ctx, const struct sl_stage_env *env, struct sl_err *err)
{
    const char *dsn;
    struct audit *a = calloc(1, sizeof(*a));
    if (!a)
        return sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
    const struct sl_pg_opts opts = {.application_name = "sluice-audit"};
    /* sl_pg_new() only checks the DSN: a bad one fails here, a Postgres that is down does
     * not (the first flush waits for it). */
    if (sl_conf_bool(env->conf, sl_conf_get(sl_conf_root(env->conf), "audit"), "event_status", true,
                     &a->event_status, err) != 0 ||
        sl_pg_settings(env->conf, &dsn, err) != 0 || !(a->pg = sl_pg_new(dsn, &opts, err)))
        goto fail;
    sl_metrics_t *m = env->metrics;
    sl_metric_t *rows = sl_metrics_counter(
        m, "sluice_audit_rows_total",
        "Audit rows written: inserted, or existing (already stored: a batch written again).",
        (const char *const[]){"result", NULL});
    sl_metric_t *status = sl_metrics_counter(m, "sluice_audit_status_rows_total",
                                             "event_status rows inserted or updated.", NULL);
    sl_metric_t *batches = sl_metrics_counter(
        m, "sluice_audit_batches_total",
        "Batches written, by path: copy (straight into audit) or staged (through the staging "
        "table, when some of its rows may be there already).",
        (const char *const[]){"path", NULL});
    sl_metric_t *batch =
        sl_metrics_histogram(m, "sluice_audit_batch_rows", "Audit rows per written batch.", NULL,
                             batch_buckets, sizeof(batch_buckets) / sizeof(batch_buckets[0]));
    sl_metric_t *flush =
        sl_metrics_histogram(m, "sluice_audit_flush_seconds",
                             "Time to write one batch (its whole Postgres transaction).", NULL,
                             sl_metrics_latency_buckets, sl_metrics_latency_buckets_n);
    a->m_failures =
        sl_metrics_counter(m, "sluice_audit_flush_failures_total",
                           "Batches that could not be written (retried when retriable), by error.",
                           (const char *const[]){"error", NULL});
    if (!rows || !status || !batches || !batch || !flush || !a->m_failures) {
        sl_err_set(err, SL_ERR_NOMEM, "cannot register the audit metrics");
        goto fail;
    }
    a->m_inserted = sl_metric_series(rows, (const char *const[]){"inserted"});
    a->m_existing = sl_metric_series(rows, (const char *const[]){"existing"});
    a->m_status = sl_metric_series(status, NULL);
    a->m_direct = sl_metric_series(batches, (const char *const[]){"copy"});
    a->m_staged = sl_metric_series(batches, (const char *const[]){"staged"});
    a->m_batch = sl_metric_series(batch, NULL);
    a->m_flush = sl_metric_series(flush, NULL);
    if (pthread_create(&a->thread, NULL, writer, a) != 0) {
        sl_err_set(err, SL_ERR_INTERNAL, "cannot start the audit writer thread");
        goto fail;
    }
    a->started = true;
    SL_INFO("writing the audit trail to %s%s", sl_pg_where(a->pg),
            a->event_status ? " (with event_status)" : "");
    *ctx = a;
    return 0;
fail:
    audit_free(a);
    return -1;
}

static void audit_fini(void *ctx)
{
    audit_free(ctx);
}

const struct sl_stage audit_stage = {
    .name = "audit",
    .kind = SL_STAGE_SINK,
    .description = "Stores every record of <prefix>audit in PostgreSQL (the audit trail, in "
                   "batches that a crash cannot duplicate) and keeps event_status up to date.",
    .input = SL_TOPIC_AUDIT,
    .admin_port = 9185,
    .init = audit_init,
    .process = audit_process,
    .flush = audit_flush,
    .discard = audit_discard,
    .fini = audit_fini,
};
