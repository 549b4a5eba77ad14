#include "sluicectl_dlq.h"

#include <errno.h>
#include <jansson.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "record.h"
#include "sl_cloudevent.h"
#include "sl_conf.h"
#include "sl_kafka.h"
#include "sl_pg.h"
#include "sl_pg_query.h"
#include "sl_pipeline.h"
#include "sl_sign.h"
#include "sl_text.h"
#include "sluicectl_common.h"

#define EXIT_USAGE      2
#define LIMIT_DEFAULT   100
#define REASON_COLUMN   60   /* characters of the reason in a listing */
#define OPERATOR_MAX    128  /* bytes of a --by name */
#define IDS_MAX         1000 /* ids named on one command line */
#define ACK_EXTRA_MS    5000 /* waited for an acknowledgement beyond the produce deadline */
#define DLQ_PAYLOAD_MAX (64u * 1024 * 1024) /* bytes of a payload decoded for display */

static const char usage[] =
    "usage: sluicectl [--config FILE] dlq list [--source S] [--stage S] [--since TIME]\n"
    "                 [--status new|replayed|discarded|all] [--limit N] [--json]\n"
    "       sluicectl [--config FILE] dlq show ID [--json]\n"
    "       sluicectl [--config FILE] dlq replay (ID... | --filter [--source S] [--stage S]\n"
    "                 [--since TIME] [--limit N]) [--to-stage STAGE] [--dry-run] [--force]\n"
    "                 [--by NAME]\n"
    "       sluicectl [--config FILE] dlq discard ID... [--by NAME]\n"
    "  TIME: RFC 3339 (2026-11-24T17:00:00Z) or a duration back from now (2h, 30m, 7d)\n"
    "  STAGE: validate, transform, route or deliver (default: the stage it failed at)\n"
    "  --force: replay a letter that was already replayed (or discarded) again\n"
    "  --by: who replays or discards (default $SLUICE_OPERATOR, else the login name)\n";

/* ---- shared ---- */

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

static long long num(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

/* A positive decimal id. */
static bool parse_id(const char *text, long long *id)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < 1)
        return false;
    *id = v;
    return true;
}

/* TIME (ctl_parse_time) as canonical UTC text into buf (AUDIT_TIME_MAX); -1 when it is not
 * one. */
static int since_text(const char *text, char *buf, size_t size)
{
    int64_t us;
    if (ctl_parse_time(text, &us) != 0)
        return -1;
    audit_time_format(us, buf, size);
    return 0;
}

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

static bool replayable_stage(const char *stage)
{
    for (size_t i = 0; i < N_INPUTS; i++)
        if (strcmp(stage, inputs[i].stage) == 0)
            return true;
    return false;
}

/* ---- list ---- */

static void print_list(const json_t *rows)
{
    size_t i;
    const json_t *row;
    printf("%-8s  %-32s  %-9s  %-16s  %-9s  %3s  %-36s  %s\n", "ID", "RECEIVED", "STAGE", "SOURCE",
           "STATUS", "ATT", "EVENT", "REASON");
    json_array_foreach(rows, i, row)
    {
        const char *reason = str(row, "reason");
        int cut = (int)strlen(reason) > REASON_COLUMN ? REASON_COLUMN - 3 : REASON_COLUMN;
        printf("%-8lld  %-32s  %-9s  %-16s  %-9s  %3lld  %-36s  %.*s%s\n", num(row, "id"),
               str(row, "received_at"), str(row, "stage"), str(row, "source"), str(row, "status"),
               num(row, "attempt"), str(row, "event_id"), cut, reason,
               cut < REASON_COLUMN ? "..." : "");
    }
    printf("%zu dead letter%s\n", json_array_size(rows), json_array_size(rows) == 1 ? "" : "s");
}

static int cmd_list(const sl_conf_t *conf, int argc, char **argv)
{
    struct sl_pg_dlq_filter f = {.limit = LIMIT_DEFAULT};
    bool as_json = false;
    char since[AUDIT_TIME_MAX];
    const char *bad = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            as_json = true;
            continue;
        }
        if (!v || v[0] == '-') {
            bad = a;
            break;
        }
        i++;
        if (strcmp(a, "--source") == 0) {
            f.source = v;
        } else if (strcmp(a, "--stage") == 0) {
            f.stage = v;
        } else if (strcmp(a, "--status") == 0) {
            if (strcmp(v, "all") == 0)
                f.status = NULL;
            else if (strcmp(v, "new") == 0 || strcmp(v, "replayed") == 0 ||
                     strcmp(v, "discarded") == 0)
                f.status = v;
            else {
                fprintf(stderr,
                        "sluicectl dlq list: --status '%s': use new, replayed, discarded or "
                        "all\n",
                        v);
                return EXIT_USAGE;
            }
        } else if (strcmp(a, "--since") == 0) {
            if (since_text(v, since, sizeof(since)) != 0) {
                fprintf(stderr,
                        "sluicectl dlq list: --since '%s' is neither an RFC 3339 time nor a "
                        "duration (2h, 30m, 7d)\n",
                        v);
                return EXIT_USAGE;
            }
            f.since = since;
        } else if (strcmp(a, "--limit") == 0) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > SL_PG_ROWS_MAX) {
                fprintf(stderr, "sluicectl dlq list: --limit '%s': use 1 to %d\n", v,
                        SL_PG_ROWS_MAX);
                return EXIT_USAGE;
            }
            f.limit = (int)n;
        } else {
            bad = a;
            break;
        }
    }
    if (bad) {
        fprintf(stderr, "sluicectl dlq list: unexpected argument '%s'\n%s", bad, usage);
        return EXIT_USAGE;
    }
    struct sl_err err;
    json_t *rows = NULL;
    sl_pg_t *pg = ctl_pg_open(conf, &err);
    if (!pg || sl_pg_dead_letters(pg, &f, &rows, &err) != 0) {
        fprintf(stderr, "sluicectl dlq list: %s\n", err.msg);
        sl_pg_destroy(pg);
        return EXIT_FAILURE;
    }
    ctl_print(rows, as_json, print_list);
    json_decref(rows);
    sl_pg_destroy(pg);
    return EXIT_SUCCESS;
}

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

/* Sets row[<name>_text] to the decoded text of the base64 member `name` when it is UTF-8
 * text, else null. */
static int add_text(json_t *row, const char *name, const char *text_name, struct sl_err *err)
{
    const char *b64 = json_string_value(json_object_get(row, name));
    if (!b64)
        return json_object_set_new(row, text_name, json_null());
    size_t in = strlen(b64), max = in / 4 * 3 + 1, len = 0;
    if (max > DLQ_PAYLOAD_MAX)
        return sl_err_set(err, SL_ERR_NOMEM, "%s: %zu bytes is more than sluicectl shows", name,
                          max);
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

static void print_show(const json_t *row)
{
    size_t i;
    const char *k;
    const json_t *v;
    printf("dead letter %lld\n", num(row, "id"));
    printf("  %-12s %s\n", "event_id", str(row, "event_id"));
    printf("  %-12s %s\n", "source", str(row, "source"));
    printf("  %-12s %s\n", "type", str(row, "type"));
    printf("  %-12s %s\n", "stage", str(row, "stage"));
    printf("  %-12s %s\n", "reason", str(row, "reason"));
    printf("  %-12s", "errors");
    if (json_array_size(json_object_get(row, "errors")) == 0)
        printf(" -\n");
    else
        printf("\n");
    json_array_foreach(json_object_get(row, "errors"), i, v)
        printf("    - %s\n", json_string_value(v));
    printf("  %-12s %lld\n", "attempt", num(row, "attempt"));
    printf("  %-12s %s", "status", str(row, "status"));
    if (json_is_string(json_object_get(row, "status_at")))
        printf(" (at %s by %s)", str(row, "status_at"), str(row, "status_by"));
    printf("\n");
    printf("  %-12s %s\n", "received_at", str(row, "received_at"));
    printf("  %-12s %s\n", "produced_at", str(row, "produced_at"));
    printf("  %-12s %s [%lld] @%lld\n", "read from", str(row, "topic"), num(row, "partition"),
           num(row, "offset"));
    printf("  headers\n");
    json_object_foreach((json_t *)json_object_get(row, "headers"), k, v)
    {
        char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        printf("    %s: %s\n", k, text ? text : json_string_value(v));
        free(text);
    }
    if (json_is_string(json_object_get(row, "key_text")))
        printf("  %-12s %s\n", "key", str(row, "key_text"));
    else
        printf("  %-12s %s%s\n", "key",
               json_is_string(json_object_get(row, "key")) ? "base64:" : "", str(row, "key"));
    bool text = json_is_string(json_object_get(row, "payload_text"));
    printf("  payload (%lld bytes, %s)\n", num(row, "payload_size"), text ? "text" : "base64");
    printf("%s\n", text ? str(row, "payload_text") : str(row, "payload"));
    const json_t *replays = json_object_get(row, "replays");
    printf("  replays      %zu\n", json_array_size(replays));
    json_array_foreach(replays, i, v)
        printf("    %s by %s to %s (%s [%lld] @%lld), attempt %lld\n", str(v, "replayed_at"),
               str(v, "replayed_by"), str(v, "to_stage"), str(v, "to_topic"), num(v, "partition"),
               num(v, "offset"), num(v, "attempt"));
}

static int cmd_show(const sl_conf_t *conf, int argc, char **argv)
{
    long long id = 0;
    bool as_json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            as_json = true;
        else if (id || !parse_id(argv[i], &id)) {
            fprintf(stderr,
                    "sluicectl dlq show: unexpected argument '%s' (an id is a positive "
                    "number)\n%s",
                    argv[i], usage);
            return EXIT_USAGE;
        }
    }
    if (!id) {
        fprintf(stderr, "sluicectl dlq show: no id\n%s", usage);
        return EXIT_USAGE;
    }
    struct sl_err err;
    json_t *row = NULL;
    int rc = EXIT_FAILURE;
    sl_pg_t *pg = ctl_pg_open(conf, &err);
    if (!pg || sl_pg_dead_letter(pg, id, &row, &err) != 0 ||
        add_text(row, "payload", "payload_text", &err) != 0 ||
        add_text(row, "key", "key_text", &err) != 0) {
        fprintf(stderr, "sluicectl dlq show: %s\n", err.msg);
        goto out;
    }
    ctl_print(row, as_json, print_show);
    rc = EXIT_SUCCESS;
out:
    json_decref(row);
    sl_pg_destroy(pg);
    return rc;
}

/* ---- replay ---- */

struct replay_opts {
    const char *to_stage; /* NULL: the letter's own stage */
    bool dry_run, force;
    char by[OPERATOR_MAX];
};

/* What one replay needs; everything is released by the caller. */
struct replay {
    sl_pg_t *pg;
    const struct sl_kafka_settings *kafka;
    sl_producer_t *producer; /* made on the first real replay */
    const struct replay_opts *o;
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
    if (!out || n % 2) {
        free(out);
        return NULL;
    }
    for (size_t i = 0; i < n / 2; i++) {
        int hi = sl_hex_digit(hex[2 * i]), lo = sl_hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(out);
            return NULL;
        }
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    *len = n / 2;
    return out;
}

/* The replayed record's headers from the stored ones (see sluicectl_dlq.h). */
static rd_kafka_headers_t *replay_headers(const json_t *stored, int attempt, long long id)
{
    static const char *const dropped[] = {"ce_" SL_CE_STAGE, "ce_" SL_CE_REASON, "ce_" SL_CE_ERRORS,
                                          "ce_" SL_CE_ATTEMPT, "ce_" SL_CE_REPLAY};
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(json_object_size(stored) + 1);
    const char *name;
    const json_t *v;
    char num[16];
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
static int produce(struct replay *r, const char *topic, const unsigned char *key, size_t key_len,
                   const unsigned char *value, size_t len, rd_kafka_headers_t *hdrs,
                   struct ack *ack, struct sl_err *err)
{
    if (!r->producer && !(r->producer = sl_producer_new(r->kafka, "sluicectl", on_report, err))) {
        rd_kafka_headers_destroy(hdrs);
        return -1;
    }
    if (sl_producer_send(r->producer, topic, key, key_len, value, len, hdrs, ack, err) != 0) {
        rd_kafka_headers_destroy(hdrs);
        return -1;
    }
    if (sl_producer_flush(r->producer, r->kafka->produce_timeout_ms + ACK_EXTRA_MS, err) != 0)
        return -1;
    if (!ack->done)
        return sl_err_set(err, SL_ERR_INTERNAL, "%s: no delivery report", topic);
    if (ack->failed)
        return sl_err_set(err, SL_ERR_KAFKA, "%s: not acknowledged: %s", topic, ack->msg);
    return 0;
}

/* Replays dead letter `id` (see sluicectl_dlq.h); prints one line. 0, or -1 after printing
 * why not. */
static int replay_one(struct replay *r, long long id)
{
    struct sl_err err;
    char idtext[24], topic[SL_TOPIC_NAME_MAX + 1], attempt_text[16], part[16], off[24];
    PGresult *res = NULL;
    json_t *headers = NULL;
    unsigned char *payload = NULL, *key = NULL;
    size_t payload_len = 0, key_len = 0;
    int rc = -1;
    snprintf(idtext, sizeof(idtext), "%lld", id);
    const char *params[] = {idtext};
    if (sl_pg_begin(r->pg, &err) != 0 || sl_pg_exec(r->pg, lock_sql, 1, params, &res, &err) != 0)
        goto fail;
    if (PQntuples(res) == 0) {
        fprintf(stderr, "sluicectl dlq replay: dead letter %lld: no such id\n", id);
        goto out;
    }
    const char *event_id = PQgetisnull(res, 0, 0) ? "-" : PQgetvalue(res, 0, 0);
    const char *stage = PQgetvalue(res, 0, 1), *status = PQgetvalue(res, 0, 2);
    int attempt = atoi(PQgetvalue(res, 0, 3)) + 1;
    if (strcmp(status, "new") != 0 && !r->o->force) {
        fprintf(stderr,
                "sluicectl dlq replay: dead letter %lld: already %s (by %s at %s); use --force "
                "to replay it again\n",
                id, status, PQgetvalue(res, 0, 7), PQgetvalue(res, 0, 8));
        goto out;
    }
    const char *to_stage = r->o->to_stage ? r->o->to_stage : stage;
    if (!(headers = json_loads(PQgetvalue(res, 0, 4), 0, NULL)) || !json_is_object(headers) ||
        !(payload = unhex(PQgetvalue(res, 0, 5), &payload_len)) ||
        (!PQgetisnull(res, 0, 6) && !(key = unhex(PQgetvalue(res, 0, 6), &key_len)))) {
        sl_err_set(&err, SL_ERR_INTERNAL, "unreadable row");
        goto fail;
    }
    int n;
    if (strcmp(to_stage, "deliver") == 0) {
        const char *dest = json_string_value(json_object_get(headers, "ce_" SL_CE_DESTINATION));
        if (!dest || !*dest) {
            fprintf(stderr,
                    "sluicectl dlq replay: dead letter %lld: no ce_" SL_CE_DESTINATION
                    " header, so no destination to deliver to; replay it to route instead\n",
                    id);
            goto out;
        }
        char name[SL_TOPIC_NAME_MAX + 1];
        n = snprintf(name, sizeof(name), "%s%s", SL_TOPIC_DELIVER, dest);
        n = n > 0 && (size_t)n < sizeof(name)
                ? sl_kafka_topic_name(r->kafka, name, topic, sizeof(topic))
                : -1;
    } else if (!replayable_stage(to_stage)) {
        fprintf(stderr,
                "sluicectl dlq replay: dead letter %lld failed at stage '%s', which has no "
                "input topic to replay into; choose one with --to-stage\n",
                id, to_stage);
        goto out;
    } else {
        n = -1;
        for (size_t i = 0; i < N_INPUTS; i++)
            if (strcmp(to_stage, inputs[i].stage) == 0)
                n = sl_kafka_topic_name(r->kafka, inputs[i].topic, topic, sizeof(topic));
    }
    if (n != 0) {
        sl_err_set(&err, SL_ERR_INVALID, "the topic name of stage %s is too long", to_stage);
        goto fail;
    }
    if (r->o->dry_run) {
        printf("dead letter %lld (event %s): would replay to %s: topic %s, attempt %d, %zu "
               "bytes, key %zu bytes, %zu headers\n",
               id, event_id, to_stage, topic, attempt, payload_len, key_len,
               json_object_size(headers));
        rc = 0;
        goto out;
    }
    struct ack ack = {0};
    if (produce(r, topic, key, key_len, payload, payload_len, replay_headers(headers, attempt, id),
                &ack, &err) != 0)
        goto fail;
    snprintf(attempt_text, sizeof(attempt_text), "%d", attempt);
    snprintf(part, sizeof(part), "%d", (int)ack.partition);
    snprintf(off, sizeof(off), "%lld", (long long)ack.offset);
    const char *rec[] = {idtext, r->o->by, to_stage, topic, attempt_text, part, off};
    if (sl_pg_exec(r->pg, record_sql, 7, rec, NULL, &err) != 0 || sl_pg_commit(r->pg, &err) != 0) {
        fprintf(stderr,
                "sluicectl dlq replay: dead letter %lld: produced to %s [%d] @%lld, but the "
                "replay is not recorded: %s\n",
                id, topic, (int)ack.partition, (long long)ack.offset, err.msg);
        goto out;
    }
    printf("dead letter %lld (event %s): replayed to %s: %s [%d] @%lld, attempt %d, by %s\n", id,
           event_id, to_stage, topic, (int)ack.partition, (long long)ack.offset, attempt, r->o->by);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "sluicectl dlq replay: dead letter %lld: %s\n", id, err.msg);
out:
    /* After a commit this is a no-op; otherwise it releases the lock and changes nothing. */
    sl_pg_rollback(r->pg);
    PQclear(res);
    json_decref(headers);
    free(payload);
    free(key);
    return rc;
}

/* The ids --filter selects, oldest first. */
static int select_ids(sl_pg_t *pg, const char *source, const char *stage, const char *since,
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

/* The default operator name: $SLUICE_OPERATOR, the login name, the user of the uid. */
static void default_operator(char *buf, size_t size)
{
    const char *env = getenv("SLUICE_OPERATOR");
    const char *login = env && *env ? env : getlogin();
    if (!login || !*login) {
        struct passwd *pw = getpwuid(geteuid());
        login = pw ? pw->pw_name : NULL;
    }
    if (login && *login)
        snprintf(buf, size, "%s", login);
    else
        snprintf(buf, size, "uid %u", (unsigned)geteuid());
}

static int cmd_replay(const char *config, const sl_conf_t *conf, int argc, char **argv)
{
    struct replay_opts o = {0};
    const char *source = NULL, *stage = NULL, *since_opt = NULL;
    bool filter = false;
    int limit = LIMIT_DEFAULT;
    long long *ids = NULL;
    size_t n = 0;
    char since[AUDIT_TIME_MAX];
    int rc = EXIT_USAGE;
    if (!(ids = calloc(IDS_MAX, sizeof(*ids)))) {
        fprintf(stderr, "sluicectl dlq replay: out of memory\n");
        return EXIT_FAILURE;
    }
    default_operator(o.by, sizeof(o.by));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--dry-run") == 0) {
            o.dry_run = true;
        } else if (strcmp(a, "--force") == 0) {
            o.force = true;
        } else if (strcmp(a, "--filter") == 0) {
            filter = true;
        } else if (v && strcmp(a, "--source") == 0) {
            source = argv[++i];
        } else if (v && strcmp(a, "--stage") == 0) {
            stage = argv[++i];
        } else if (v && strcmp(a, "--since") == 0) {
            since_opt = argv[++i];
        } else if (v && strcmp(a, "--to-stage") == 0) {
            o.to_stage = argv[++i];
        } else if (v && strcmp(a, "--by") == 0) {
            if (!*v || strlen(v) >= sizeof(o.by)) {
                fprintf(stderr, "sluicectl dlq replay: --by: 1 to %zu characters\n",
                        sizeof(o.by) - 1);
                goto out;
            }
            snprintf(o.by, sizeof(o.by), "%s", argv[++i]);
        } else if (v && strcmp(a, "--limit") == 0) {
            char *end;
            long l = strtol(argv[++i], &end, 10);
            if (*end || l < 1 || l > SL_PG_ROWS_MAX) {
                fprintf(stderr, "sluicectl dlq replay: --limit '%s': use 1 to %d\n", v,
                        SL_PG_ROWS_MAX);
                goto out;
            }
            limit = (int)l;
        } else if (a[0] != '-' && n < IDS_MAX && parse_id(a, &ids[n])) {
            n++;
        } else {
            fprintf(stderr,
                    "sluicectl dlq replay: unexpected argument '%s' (ids are positive numbers, "
                    "at most %d)\n%s",
                    a, IDS_MAX, usage);
            goto out;
        }
    }
    if (filter == (n > 0) || (!filter && (source || stage || since_opt))) {
        fprintf(stderr,
                "sluicectl dlq replay: name dead letter ids, or --filter with "
                "--source/--stage/--since, not both\n%s",
                usage);
        goto out;
    }
    if (o.to_stage && !replayable_stage(o.to_stage)) {
        fprintf(stderr,
                "sluicectl dlq replay: --to-stage '%s': use validate, transform, route or "
                "deliver\n",
                o.to_stage);
        goto out;
    }
    if (stage && !replayable_stage(stage) && strcmp(stage, "ingress") != 0) {
        fprintf(stderr, "sluicectl dlq replay: --stage '%s': unknown stage\n", stage);
        goto out;
    }
    if (since_opt && since_text(since_opt, since, sizeof(since)) != 0) {
        fprintf(stderr,
                "sluicectl dlq replay: --since '%s' is neither an RFC 3339 time nor a "
                "duration (2h, 30m, 7d)\n",
                since_opt);
        goto out;
    }
    if (!config) {
        fprintf(stderr, "sluicectl dlq replay: no pipeline file (--config FILE or "
                        "SLUICE_CONFIG): it names the brokers and the topics\n");
        goto out;
    }
    struct sl_err err;
    struct sl_kafka_settings kafka;
    struct replay r = {.kafka = &kafka, .o = &o};
    rc = EXIT_FAILURE;
    if (sl_kafka_settings_load(conf, &kafka, &err) != 0 || !(r.pg = ctl_pg_open(conf, &err))) {
        fprintf(stderr, "sluicectl dlq replay: %s\n", err.msg);
        goto out;
    }
    if (filter) {
        free(ids);
        if (select_ids(r.pg, source, stage, since_opt ? since : NULL, o.force, limit, &ids, &n,
                       &err) != 0) {
            fprintf(stderr, "sluicectl dlq replay: %s\n", err.msg);
            goto done;
        }
        if (n == 0)
            printf("no dead letters match\n");
    }
    int failed = 0;
    for (size_t i = 0; i < n; i++)
        failed += replay_one(&r, ids[i]) != 0;
    rc = failed ? EXIT_FAILURE : EXIT_SUCCESS;
    if (failed && n > 1)
        fprintf(stderr, "sluicectl dlq replay: %d of %zu dead letters not replayed\n", failed, n);
done:
    sl_producer_destroy(r.producer);
    sl_pg_destroy(r.pg);
out:
    free(ids);
    return rc;
}

/* A letter that is still new becomes discarded (handled: nothing to replay), with who and when.
 * Only new letters: a replayed one has its story already, and discarding twice says nothing. */
static const char discard_sql[] =
    "WITH d AS (UPDATE dead_letters SET status = 'discarded', status_at = now(), status_by = $2 "
    "WHERE id = $1::bigint AND status = 'new' RETURNING id) "
    "SELECT (SELECT count(*) FROM d), (SELECT status FROM dead_letters WHERE id = $1::bigint)";

static int cmd_discard(const sl_conf_t *conf, int argc, char **argv)
{
    char by[OPERATOR_MAX];
    long long ids[IDS_MAX];
    size_t n = 0;
    default_operator(by, sizeof(by));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && strcmp(a, "--by") == 0 && *v && strlen(v) < sizeof(by)) {
            snprintf(by, sizeof(by), "%s", argv[++i]);
        } else if (a[0] != '-' && n < IDS_MAX && parse_id(a, &ids[n])) {
            n++;
        } else {
            fprintf(stderr, "sluicectl dlq discard: unexpected argument '%s'\n%s", a, usage);
            return EXIT_USAGE;
        }
    }
    if (n == 0) {
        fprintf(stderr, "sluicectl dlq discard: no dead letter id\n%s", usage);
        return EXIT_USAGE;
    }
    struct sl_err err;
    int failed = 0;
    sl_pg_t *pg = ctl_pg_open(conf, &err);
    if (!pg) {
        fprintf(stderr, "sluicectl dlq discard: %s\n", err.msg);
        return EXIT_FAILURE;
    }
    for (size_t i = 0; i < n; i++) {
        char id[24];
        PGresult *res = NULL;
        snprintf(id, sizeof(id), "%lld", ids[i]);
        const char *params[] = {id, by};
        if (sl_pg_exec(pg, discard_sql, 2, params, &res, &err) != 0) {
            fprintf(stderr, "sluicectl dlq discard: dead letter %s: %s\n", id, err.msg);
            failed++;
        } else if (strcmp(PQgetvalue(res, 0, 0), "1") == 0) {
            printf("dead letter %s: discarded by %s\n", id, by);
        } else {
            if (PQgetisnull(res, 0, 1))
                fprintf(stderr, "sluicectl dlq discard: dead letter %s: no such id\n", id);
            else
                fprintf(stderr, "sluicectl dlq discard: dead letter %s: already %s\n", id,
                        PQgetvalue(res, 0, 1));
            failed++;
        }
        PQclear(res);
    }
    sl_pg_destroy(pg);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

int sluicectl_dlq(const char *config, int argc, char **argv)
{
    const char *cmd = argc >= 1 ? argv[0] : "";
    if (strcmp(cmd, "list") != 0 && strcmp(cmd, "show") != 0 && strcmp(cmd, "replay") != 0 &&
        strcmp(cmd, "discard") != 0) {
        fprintf(stderr, "sluicectl dlq: unknown subcommand '%s'\n%s", cmd, usage);
        return EXIT_USAGE;
    }
    struct sl_err err;
    sl_conf_t *conf = NULL;
    if (config && !(conf = sl_pipeline_load(config, &err))) {
        fprintf(stderr, "sluicectl dlq %s: %s\n", cmd, err.msg);
        return EXIT_USAGE;
    }
    int rc = strcmp(cmd, "list") == 0      ? cmd_list(conf, argc, argv)
             : strcmp(cmd, "show") == 0    ? cmd_show(conf, argc, argv)
             : strcmp(cmd, "discard") == 0 ? cmd_discard(conf, argc, argv)
                                           : cmd_replay(config, conf, argc, argv);
    sl_conf_destroy(conf);
    return rc;
}
