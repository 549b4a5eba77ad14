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
#include "ops_dlq.h"
#include "sl_pg_query.h"
#include "sl_pipeline.h"
#include "sl_sign.h"
#include "sl_text.h"
#include "sluicectl_common.h"

#define EXIT_USAGE    2
#define LIMIT_DEFAULT 100
#define REASON_COLUMN 60   /* characters of the reason in a listing */
#define IDS_MAX       1000 /* ids named on one command line */

static const char usage[] =
    "usage: sluicectl [--config FILE] dlq list [--source S] [--stage S] [--since TIME]\n"
    "                 [--status new|replayed|discarded|all] [--limit N] [-o json|table]\n"
    "       sluicectl [--config FILE] dlq show ID [-o json|table]\n"
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

/* ---- list ---- */

static void print_list(const json_t *doc)
{
    size_t i;
    const json_t *row, *rows = json_object_get(doc, "items");
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
    enum ctl_output output = CTL_OUTPUT_TABLE;
    char since[AUDIT_TIME_MAX];
    const char *bad = NULL;
    for (int i = 1; i < argc; i++) {
        int o = ctl_output_arg("dlq list", argc, argv, &i, &output);
        if (o < 0)
            return EXIT_USAGE;
        if (o > 0)
            continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
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
    json_t *rows = NULL, *doc = NULL;
    int rc = EXIT_FAILURE;
    sl_pg_t *pg = ctl_pg_open(conf, 0, &err);
    if (!pg || sl_pg_dead_letters(pg, &f, &rows, &err) != 0) {
        fprintf(stderr, "sluicectl dlq list: %s\n", err.msg);
        goto out;
    }
    /* One object, as the other read commands and the admin API's listings: {"items": [...]}. */
    if (!(doc = json_pack("{s:O}", "items", rows))) {
        fprintf(stderr, "sluicectl dlq list: out of memory\n");
        goto out;
    }
    ctl_print(doc, output, print_list);
    rc = EXIT_SUCCESS;
out:
    json_decref(doc);
    json_decref(rows);
    sl_pg_destroy(pg);
    return rc;
}

/* ---- show ---- */

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
    enum ctl_output output = CTL_OUTPUT_TABLE;
    for (int i = 1; i < argc; i++) {
        int o = ctl_output_arg("dlq show", argc, argv, &i, &output);
        if (o < 0)
            return EXIT_USAGE;
        if (o == 0 && (id || !parse_id(argv[i], &id))) {
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
    sl_pg_t *pg = ctl_pg_open(conf, 0, &err);
    if (!pg || ops_dlq_show(pg, id, &row, &err) != 0) {
        fprintf(stderr, "sluicectl dlq show: %s\n", err.msg);
        goto out;
    }
    ctl_print(row, output, print_show);
    rc = EXIT_SUCCESS;
out:
    json_decref(row);
    sl_pg_destroy(pg);
    return rc;
}

/* ---- replay ---- */

struct replay_opts {
    struct ops_dlq_replay_opts o;
    char by[OPS_DLQ_BY_MAX];
};

/* Replays dead letter `id` and prints one line. 0, or -1 after printing why not. */
static int replay_one(ops_dlq_t *d, long long id, const struct ops_dlq_replay_opts *o)
{
    struct ops_dlq_result res;
    if (ops_dlq_replay(d, id, o, &res) != 0) {
        fprintf(stderr, "sluicectl dlq replay: %s\n", res.msg);
        return -1;
    }
    if (o->dry_run)
        printf("dead letter %lld (event %s): would replay to %s: topic %s, attempt %d, %zu "
               "bytes, key %zu bytes, %zu headers\n",
               id, res.event_id, res.to_stage, res.topic, res.attempt, res.payload_len, res.key_len,
               res.headers);
    else
        printf("dead letter %lld (event %s): replayed to %s: %s [%d] @%lld, attempt %d, by %s\n",
               id, res.event_id, res.to_stage, res.topic, (int)res.partition, (long long)res.offset,
               res.attempt, o->by);
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
    struct replay_opts ro = {0};
    struct ops_dlq_replay_opts *o = &ro.o;
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
    default_operator(ro.by, sizeof(ro.by));
    o->by = ro.by;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--dry-run") == 0) {
            o->dry_run = true;
        } else if (strcmp(a, "--force") == 0) {
            o->force = true;
        } else if (strcmp(a, "--filter") == 0) {
            filter = true;
        } else if (v && strcmp(a, "--source") == 0) {
            source = argv[++i];
        } else if (v && strcmp(a, "--stage") == 0) {
            stage = argv[++i];
        } else if (v && strcmp(a, "--since") == 0) {
            since_opt = argv[++i];
        } else if (v && strcmp(a, "--to-stage") == 0) {
            o->to_stage = argv[++i];
        } else if (v && strcmp(a, "--by") == 0) {
            if (!*v || strlen(v) >= sizeof(ro.by)) {
                fprintf(stderr, "sluicectl dlq replay: --by: 1 to %zu characters\n",
                        sizeof(ro.by) - 1);
                goto out;
            }
            snprintf(ro.by, sizeof(ro.by), "%s", argv[++i]);
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
    if (o->to_stage && !ops_dlq_replayable_stage(o->to_stage)) {
        fprintf(stderr,
                "sluicectl dlq replay: --to-stage '%s': use validate, transform, route or "
                "deliver\n",
                o->to_stage);
        goto out;
    }
    if (stage && !ops_dlq_replayable_stage(stage) && strcmp(stage, "ingress") != 0) {
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
    sl_pg_t *pg = NULL;
    ops_dlq_t *d = NULL;
    rc = EXIT_FAILURE;
    if (sl_kafka_settings_load(conf, &kafka, &err) != 0 || !(pg = ctl_pg_open(conf, 0, &err))) {
        fprintf(stderr, "sluicectl dlq replay: %s\n", err.msg);
        goto out;
    }
    /* The wait for the broker's acknowledgement of each record put back. */
    kafka.produce_timeout_ms = ctl_timeout_ms(kafka.produce_timeout_ms);
    if (!(d = ops_dlq_new(pg, &kafka))) {
        fprintf(stderr, "sluicectl dlq replay: out of memory\n");
        goto done;
    }
    if (filter) {
        free(ids);
        if (ops_dlq_select(pg, source, stage, since_opt ? since : NULL, o->force, limit, &ids, &n,
                           &err) != 0) {
            fprintf(stderr, "sluicectl dlq replay: %s\n", err.msg);
            goto done;
        }
        if (n == 0)
            printf("no dead letters match\n");
    }
    int failed = 0;
    for (size_t i = 0; i < n; i++)
        failed += replay_one(d, ids[i], o) != 0;
    rc = failed ? EXIT_FAILURE : EXIT_SUCCESS;
    if (failed && n > 1)
        fprintf(stderr, "sluicectl dlq replay: %d of %zu dead letters not replayed\n", failed, n);
done:
    ops_dlq_destroy(d);
    sl_pg_destroy(pg);
out:
    free(ids);
    return rc;
}

static int cmd_discard(const sl_conf_t *conf, int argc, char **argv)
{
    char by[OPS_DLQ_BY_MAX];
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
    sl_pg_t *pg = ctl_pg_open(conf, 0, &err);
    if (!pg) {
        fprintf(stderr, "sluicectl dlq discard: %s\n", err.msg);
        return EXIT_FAILURE;
    }
    for (size_t i = 0; i < n; i++) {
        struct ops_dlq_result res;
        if (ops_dlq_discard(pg, ids[i], by, &res) != 0) {
            fprintf(stderr, "sluicectl dlq discard: %s\n", res.msg);
            failed++;
        } else {
            printf("dead letter %lld: discarded by %s\n", ids[i], by);
        }
    }
    sl_pg_destroy(pg);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

int sluicectl_dlq(const char *config, int argc, char **argv)
{
    const char *cmd = argv[0];
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
