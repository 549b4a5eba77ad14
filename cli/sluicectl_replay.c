#include "sluicectl_replay.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_conf.h"
#include "sl_group.h"
#include "sl_kafka.h"
#include "sl_pipeline.h"
#include "sluicectl_common.h"

#define EXIT_USAGE         2
#define REPLAY_TIMEOUT_MS  15000 /* each request to the broker, unless --timeout says */
#define REPLAY_GROUP_MAX   SL_GROUP_ID_MAX
#define REPLAY_MEMBERS_MAX 1024 /* the names of active members in the refusal */

static const char usage[] =
    "usage: sluicectl [--config FILE] replay --stage STAGE [--destination NAME] --from TIME\n"
    "                                        [--group ID] [--dry-run]\n"
    "\n"
    "  Rewinds the stage's consumer group to the first record at or after TIME on every\n"
    "  partition of its input topic; the stage re-processes from there when started again.\n"
    "  The stage must be stopped (a group with members is refused). Partitions that have not\n"
    "  been processed up to TIME keep their offset: a replay never skips a record.\n"
    "\n"
    "  --stage STAGE       validate (input <prefix>ingress), transform (validated), route\n"
    "                      (normalized) or deliver (deliver.<destination>)\n"
    "  --destination NAME  the destination, for --stage deliver (group <prefix>deliver.NAME)\n"
    "  --from TIME         RFC 3339 (2026-11-24T20:00:00Z, ...+01:00) or a duration ago (-2h)\n"
    "  --group ID          the consumer group, when the stage runs with --group ID\n"
    "                      (default: <stage>.loop.group_id, else <prefix><stage>)\n"
    "  --dry-run           print committed and new offsets per partition; change nothing\n"
    "\n"
    "  --to is not supported: a rewound group reads to the end of the topic. Re-processing\n"
    "  after TO is harmless (validate's dedup passes the same record again, the delivery ledger\n"
    "  stops a second send), while re-producing a bounded range into the input topic would make\n"
    "  copies that validate drops as duplicates.\n";

/* What is being replayed. */
struct replay {
    const char *stage;
    char group[REPLAY_GROUP_MAX];
    char topic[SL_TOPIC_NAME_MAX];
    long long from_ms;
    bool dry_run;
};

/* Exactly `n` decimal digits at *p into *out; advances *p. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* RFC 3339 date-time (separator T, t or a space; optional fraction; Z or +-HH:MM) into
 * milliseconds since the epoch. */
static bool parse_rfc3339(const char *text, long long *out_ms)
{
    const char *p = text;
    int year, mon, day, hour, min, sec, oh = 0, om = 0, ms = 0;
    if (!digits(&p, 4, &year) || *p++ != '-' || !digits(&p, 2, &mon) || *p++ != '-' ||
        !digits(&p, 2, &day) || !strchr("Tt ", *p) || !*p++ || !digits(&p, 2, &hour) ||
        *p++ != ':' || !digits(&p, 2, &min) || *p++ != ':' || !digits(&p, 2, &sec))
        return false;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        for (int scale = 100; *p >= '0' && *p <= '9'; p++, scale /= 10)
            ms += scale * (*p - '0'); /* digits past milliseconds add 0 */
    }
    int sign = 0;
    if (*p == 'Z' || *p == 'z')
        p++;
    else if (*p == '+' || *p == '-') {
        sign = *p++ == '+' ? 1 : -1;
        if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
            return false;
    } else
        return false;
    if (*p || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 59)
        return false;
    struct tm tm = {.tm_year = year - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = day,
                    .tm_hour = hour,
                    .tm_min = min,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != day) /* timegm normalises 31 April to 1 May */
        return false;
    *out_ms = ((long long)t - sign * (oh * 3600LL + om * 60LL)) * 1000 + ms;
    return true;
}

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "2026-11-24T20:00:00.000Z" into buf. */
static void format_ms(long long ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char day[32];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03lldZ", day, ms % 1000);
}

/* TIME: RFC 3339, or "-DURATION" (that long before now). Returns 0, or -1 with a message. */
static int parse_time(const char *text, long long now_ms, long long *out_ms)
{
    long long ago;
    if (text[0] == '-' && sl_conf_parse_duration_ms(text + 1, &ago) == 0)
        *out_ms = now_ms - ago;
    else if (!parse_rfc3339(text, out_ms)) {
        fprintf(stderr,
                "sluicectl replay: --from '%s': not a time (RFC 3339 such as "
                "2026-11-24T20:00:00Z or 2026-11-24T21:00:00+01:00, or a duration ago such as "
                "-2h)\n",
                text);
        return -1;
    }
    if (*out_ms > now_ms) {
        char when[40];
        format_ms(*out_ms, when, sizeof(when));
        fprintf(stderr,
                "sluicectl replay: --from %s is in the future: there is nothing to "
                "replay yet\n",
                when);
        return -1;
    }
    if (*out_ms < 0) {
        fprintf(stderr, "sluicectl replay: --from '%s' is before 1970\n", text);
        return -1;
    }
    return 0;
}

/* The stage's input topic and group from the pipeline file. 0, or -1 with a message (a usage
 * or config error). */
static int resolve(const sl_conf_t *conf, const struct sl_kafka_settings *kafka, struct replay *r,
                   const char *destination, const char *group)
{
    static const struct {
        const char *stage, *input;
    } loops[] = {{"validate", SL_TOPIC_INGRESS},
                 {"transform", SL_TOPIC_VALIDATED},
                 {"route", SL_TOPIC_NORMALIZED}};
    struct sl_err err;
    const sl_conf_node_t *root = sl_conf_root(conf);
    char input[SL_TOPIC_NAME_MAX];
    const char *conf_group = NULL;
    char def[REPLAY_GROUP_MAX]; /* the default group; conf_group may point here */
    if (strcmp(r->stage, "deliver") == 0) {
        if (!destination) {
            fprintf(stderr, "sluicectl replay: --stage deliver needs --destination NAME (each "
                            "destination has its own topic and group)\n");
            return -1;
        }
        if (!sl_conf_get(sl_conf_get(root, "destinations"), destination)) {
            fprintf(stderr, "sluicectl replay: no destination '%s' in %s\n", destination,
                    sl_conf_file(conf));
            return -1;
        }
        snprintf(input, sizeof(input), SL_TOPIC_DELIVER "%s", destination);
        if (sl_group_id(kafka, input, r->group, sizeof(r->group), &err) != 0) {
            fprintf(stderr, "sluicectl replay: %s\n", err.msg);
            return -1;
        }
    } else {
        size_t i = 0;
        while (i < sizeof(loops) / sizeof(loops[0]) && strcmp(loops[i].stage, r->stage) != 0)
            i++;
        if (i == sizeof(loops) / sizeof(loops[0])) {
            fprintf(stderr,
                    "sluicectl replay: unknown stage '%s' (validate, transform, route, "
                    "deliver)\n",
                    r->stage);
            return -1;
        }
        if (destination) {
            fprintf(stderr, "sluicectl replay: --destination is for --stage deliver only\n");
            return -1;
        }
        if (sl_group_id(kafka, r->stage, def, sizeof(def), &err) != 0 ||
            sl_conf_str(conf, sl_conf_get(sl_conf_get(root, r->stage), "loop"), "group_id", def,
                        &conf_group, &err) != 0) {
            fprintf(stderr, "sluicectl replay: %s\n", err.msg);
            return -1;
        }
        snprintf(input, sizeof(input), "%s", loops[i].input);
    }
    const char *chosen = group ? group : conf_group ? conf_group : r->group;
    if (!*chosen || strlen(chosen) >= sizeof(r->group)) {
        fprintf(stderr, "sluicectl replay: group '%s': empty or too long\n", chosen);
        return -1;
    }
    memmove(r->group, chosen, strlen(chosen) + 1);
    if (sl_kafka_topic_name(kafka, input, r->topic, sizeof(r->topic)) != 0) {
        fprintf(stderr, "sluicectl replay: topic name for %s is too long\n", input);
        return -1;
    }
    return 0;
}

/* Waits for the one result of an Admin request on `q`; NULL with *err on a timeout or a
 * request-level error. The caller destroys the event. */
static rd_kafka_event_t *admin_result(rd_kafka_queue_t *q, const char *what, struct sl_err *err)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, ctl_timeout_ms(REPLAY_TIMEOUT_MS) + 5000);
    if (!ev) {
        sl_err_retriable(err, SL_ERR_TIMEOUT, "%s: no answer from Kafka", what);
        return NULL;
    }
    if (rd_kafka_event_error(ev)) {
        sl_err_set(err, SL_ERR_KAFKA, "%s: %s", what, rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

/* Refuses (returns -1 with the members named) unless the group has no members: offsets of a
 * running stage must not move under it. */
static int check_stopped(rd_kafka_t *rk, rd_kafka_queue_t *q, const struct replay *r,
                         const char *destination, struct sl_err *err)
{
    int rc = -1;
    const char *groups[] = {r->group};
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ANY);
    char errstr[256];
    rd_kafka_AdminOptions_set_request_timeout(ao, ctl_timeout_ms(REPLAY_TIMEOUT_MS), errstr,
                                              sizeof(errstr));
    rd_kafka_DescribeConsumerGroups(rk, groups, 1, ao, q);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_event_t *ev = admin_result(q, "describing the consumer group", err);
    if (!ev)
        return -1;
    size_t n = 0;
    const rd_kafka_ConsumerGroupDescription_t **d = rd_kafka_DescribeConsumerGroups_result_groups(
        rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
    if (n != 1) {
        sl_err_set(err, SL_ERR_KAFKA, "describing group %s: %zu answers", r->group, n);
        goto out;
    }
    const rd_kafka_error_t *gerr = rd_kafka_ConsumerGroupDescription_error(d[0]);
    if (gerr) {
        sl_err_set(err, SL_ERR_KAFKA, "describing group %s: %s", r->group,
                   rd_kafka_error_string(gerr));
        goto out;
    }
    rd_kafka_consumer_group_state_t state = rd_kafka_ConsumerGroupDescription_state(d[0]);
    size_t members = rd_kafka_ConsumerGroupDescription_member_count(d[0]);
    if (members == 0 && (state == RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY ||
                         state == RD_KAFKA_CONSUMER_GROUP_STATE_DEAD)) {
        rc = 0; /* DEAD: the group has never committed or has expired */
        goto out;
    }
    char names[REPLAY_MEMBERS_MAX] = "";
    size_t used = 0;
    for (size_t i = 0; i < members && used < sizeof(names); i++) {
        const rd_kafka_MemberDescription_t *m = rd_kafka_ConsumerGroupDescription_member(d[0], i);
        int w =
            snprintf(names + used, sizeof(names) - used, "%s%s@%s", i ? ", " : "",
                     rd_kafka_MemberDescription_client_id(m), rd_kafka_MemberDescription_host(m));
        used += w > 0 ? (size_t)w : 0;
    }
    char stop[SL_TOPIC_NAME_MAX + 64];
    if (destination)
        snprintf(stop, sizeof(stop), "stop every sluice-deliver serving %s first", destination);
    else
        snprintf(stop, sizeof(stop), "stop sluice-%s first", r->stage);
    /* The advice before the names: a long member list is what gets cut. */
    sl_err_set(err, SL_ERR_INVALID, "consumer group %s has %zu active member(s) (%s); %s: %s",
               r->group, members, rd_kafka_consumer_group_state_name(state), stop,
               members ? names : "none listed yet");
out:
    rd_kafka_event_destroy(ev);
    return rc;
}

/* Commits `parts` (offsets set) for the group; per-partition errors fail the whole replay. */
static int alter_offsets(rd_kafka_t *rk, rd_kafka_queue_t *q, const struct replay *r,
                         const rd_kafka_topic_partition_list_t *parts, struct sl_err *err)
{
    int rc = -1;
    rd_kafka_AlterConsumerGroupOffsets_t *alter =
        rd_kafka_AlterConsumerGroupOffsets_new(r->group, parts);
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ANY);
    char errstr[256];
    rd_kafka_AdminOptions_set_request_timeout(ao, ctl_timeout_ms(REPLAY_TIMEOUT_MS), errstr,
                                              sizeof(errstr));
    rd_kafka_AlterConsumerGroupOffsets(rk, &alter, 1, ao, q);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_AlterConsumerGroupOffsets_destroy(alter);
    rd_kafka_event_t *ev = admin_result(q, "resetting the group's offsets", err);
    if (!ev)
        return -1;
    size_t n = 0;
    const rd_kafka_group_result_t **g = rd_kafka_AlterConsumerGroupOffsets_result_groups(
        rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &n);
    if (n != 1) {
        sl_err_set(err, SL_ERR_KAFKA, "resetting group %s: %zu answers", r->group, n);
        goto out;
    }
    const rd_kafka_error_t *gerr = rd_kafka_group_result_error(g[0]);
    if (gerr) {
        sl_err_set(err, SL_ERR_KAFKA, "resetting group %s: %s (did the stage start?)", r->group,
                   rd_kafka_error_string(gerr));
        goto out;
    }
    const rd_kafka_topic_partition_list_t *res = rd_kafka_group_result_partitions(g[0]);
    for (int i = 0; res && i < res->cnt; i++)
        if (res->elems[i].err) {
            sl_err_set(err, SL_ERR_KAFKA, "resetting group %s, %s [%d]: %s (did the stage start?)",
                       r->group, res->elems[i].topic, (int)res->elems[i].partition,
                       rd_kafka_err2str(res->elems[i].err));
            goto out;
        }
    rc = 0;
out:
    rd_kafka_event_destroy(ev);
    return rc;
}

/* Looks up, prints and (unless a dry run) commits the new offsets. Returns the exit code. */
static int run(const struct sl_kafka_settings *kafka, const struct replay *r,
               const char *destination)
{
    struct sl_err err;
    char errstr[512];
    int rc = EXIT_FAILURE;
    rd_kafka_t *rk = NULL;
    rd_kafka_queue_t *q = NULL;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *committed = NULL, *at = NULL, *reset = NULL;

    /* A consumer handle that never subscribes: OffsetFetch, ListOffsets and the Admin API
     * without joining the group. */
    rd_kafka_conf_t *conf = sl_kafka_conf_new(kafka, "sluicectl-replay", &err);
    if (!conf || sl_kafka_conf_set(conf, "group.id", r->group, &err) != 0 ||
        sl_kafka_conf_set(conf, "enable.auto.commit", "false", &err) != 0) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        goto fail;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        sl_err_set(&err, SL_ERR_KAFKA, "cannot create a Kafka client: %s", errstr);
        goto fail;
    }
    q = rd_kafka_queue_new(rk);

    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, r->topic, NULL);
    rd_kafka_resp_err_t kerr =
        rd_kafka_metadata(rk, 0, rkt, &md, ctl_timeout_ms(REPLAY_TIMEOUT_MS));
    rd_kafka_topic_destroy(rkt);
    if (kerr) {
        sl_err_set(&err, SL_ERR_UNAVAILABLE, "topic %s: %s (brokers %s)", r->topic,
                   rd_kafka_err2str(kerr), kafka->brokers);
        goto fail;
    }
    if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt <= 0) {
        sl_err_set(&err, SL_ERR_NOT_FOUND, "no topic %s on %s (%s)", r->topic, kafka->brokers,
                   md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "no metadata");
        goto fail;
    }
    if (check_stopped(rk, q, r, destination, &err) != 0)
        goto fail;

    int np = md->topics[0].partition_cnt;
    committed = rd_kafka_topic_partition_list_new(np);
    at = rd_kafka_topic_partition_list_new(np);
    reset = rd_kafka_topic_partition_list_new(np);
    for (int i = 0; i < np; i++) {
        int32_t id = md->topics[0].partitions[i].id;
        rd_kafka_topic_partition_list_add(committed, r->topic, id);
        rd_kafka_topic_partition_list_add(at, r->topic, id)->offset = r->from_ms;
    }
    if ((kerr = rd_kafka_committed(rk, committed, ctl_timeout_ms(REPLAY_TIMEOUT_MS))) != 0) {
        sl_err_set(&err, SL_ERR_UNAVAILABLE, "committed offsets of %s: %s", r->group,
                   rd_kafka_err2str(kerr));
        goto fail;
    }
    if ((kerr = rd_kafka_offsets_for_times(rk, at, ctl_timeout_ms(REPLAY_TIMEOUT_MS))) != 0) {
        sl_err_set(&err, SL_ERR_UNAVAILABLE, "offsets for the time in %s: %s", r->topic,
                   rd_kafka_err2str(kerr));
        goto fail;
    }

    char when[40];
    format_ms(r->from_ms, when, sizeof(when));
    printf("replay %s: group %s, topic %s, from %s%s\n", r->stage, r->group, r->topic, when,
           r->dry_run ? " (dry run)" : "");
    printf("%9s %12s %12s %12s %12s  %s\n", "PARTITION", "COMMITTED", "NEW", "END", "TO READ",
           "NOTE");
    long long total = 0;
    for (int i = 0; i < np; i++) {
        const rd_kafka_topic_partition_t *c = &committed->elems[i];
        rd_kafka_topic_partition_t *a =
            rd_kafka_topic_partition_list_find(at, r->topic, c->partition);
        int64_t lo, hi;
        if (c->err || !a || a->err) {
            sl_err_set(&err, SL_ERR_KAFKA, "%s [%d]: %s", r->topic, (int)c->partition,
                       rd_kafka_err2str(c->err ? c->err
                                        : a    ? a->err
                                               : RD_KAFKA_RESP_ERR__NOENT));
            goto fail;
        }
        if ((kerr = rd_kafka_query_watermark_offsets(rk, r->topic, c->partition, &lo, &hi,
                                                     ctl_timeout_ms(REPLAY_TIMEOUT_MS))) != 0) {
            sl_err_set(&err, SL_ERR_UNAVAILABLE, "end offset of %s [%d]: %s", r->topic,
                       (int)c->partition, rd_kafka_err2str(kerr));
            goto fail;
        }
        /* No record at or after TIME: the end (nothing of this partition is replayed). */
        int64_t target = a->offset >= 0 ? a->offset : hi;
        char committed_text[24] = "-", new_text[24] = "-";
        const char *note;
        long long again = 0;
        if (c->offset < 0)
            note = "nothing committed: the stage starts at the earliest offset";
        else if (target >= c->offset)
            note = target == c->offset ? "unchanged" : "kept: not processed up to the time yet";
        else {
            note = "rewound";
            again = (long long)(c->offset - target);
            rd_kafka_topic_partition_list_add(reset, r->topic, c->partition)->offset = target;
        }
        if (c->offset >= 0) {
            snprintf(committed_text, sizeof(committed_text), "%lld", (long long)c->offset);
            snprintf(new_text, sizeof(new_text), "%lld",
                     (long long)(again > 0 ? target : c->offset));
        }
        total += again;
        printf("%9d %12s %12s %12lld %12lld  %s\n", (int)c->partition, committed_text, new_text,
               (long long)hi, again, note);
    }
    if (reset->cnt == 0) {
        printf("nothing to reset: no partition of %s was processed past %s\n", r->topic, when);
        rc = EXIT_SUCCESS;
        goto out;
    }
    if (r->dry_run) {
        printf("dry run: %d partition(s) would be rewound, %lld offset(s) read again; nothing "
               "changed\n",
               reset->cnt, total);
        rc = EXIT_SUCCESS;
        goto out;
    }
    if (alter_offsets(rk, q, r, reset, &err) != 0)
        goto fail;
    printf("reset group %s: %d partition(s) of %s rewound, %lld offset(s) will be read again "
           "when sluice-%s starts\n",
           r->group, reset->cnt, r->topic, total, r->stage);
    rc = EXIT_SUCCESS;
    goto out;
fail:
    fprintf(stderr, "sluicectl replay: %s\n", err.msg);
out:
    if (reset)
        rd_kafka_topic_partition_list_destroy(reset);
    if (at)
        rd_kafka_topic_partition_list_destroy(at);
    if (committed)
        rd_kafka_topic_partition_list_destroy(committed);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (q)
        rd_kafka_queue_destroy(q);
    if (rk)
        rd_kafka_destroy(rk);
    return rc;
}

int sluicectl_replay(const char *config, int argc, char **argv)
{
    struct replay r = {0};
    const char *from = NULL, *destination = NULL, *group = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--dry-run") == 0)
            r.dry_run = true;
        else if (strcmp(a, "--stage") == 0 && has_value)
            r.stage = argv[++i];
        else if (strcmp(a, "--from") == 0 && has_value)
            from = argv[++i];
        else if (strcmp(a, "--destination") == 0 && has_value)
            destination = argv[++i];
        else if (strcmp(a, "--group") == 0 && has_value)
            group = argv[++i];
        else if (strcmp(a, "--to") == 0) {
            fprintf(stderr,
                    "sluicectl replay: --to is not supported: the replay rewinds the stage's "
                    "consumer group, which then reads to the end of the topic (processing the "
                    "records after TO again is harmless: dedup and the delivery ledger); a "
                    "bounded re-produce into the input topic would make copies that validate "
                    "drops as duplicates\n");
            return EXIT_USAGE;
        } else {
            fprintf(stderr, "sluicectl replay: unexpected argument '%s'\n%s", a, usage);
            return EXIT_USAGE;
        }
    }
    if (!r.stage || !from) {
        fprintf(stderr, "sluicectl replay: --stage and --from are required\n%s", usage);
        return EXIT_USAGE;
    }
    if (!config) {
        fprintf(stderr, "sluicectl replay: no pipeline file (--config FILE or SLUICE_CONFIG)\n");
        return EXIT_USAGE;
    }
    if (parse_time(from, wall_ms(), &r.from_ms) != 0)
        return EXIT_USAGE;
    struct sl_err err;
    struct sl_kafka_settings kafka;
    int rc = EXIT_USAGE;
    sl_conf_t *conf = sl_pipeline_load(config, &err);
    if (!conf || sl_kafka_settings_load(conf, &kafka, &err) != 0) {
        fprintf(stderr, "sluicectl replay: %s\n", err.msg);
        goto out;
    }
    if (resolve(conf, &kafka, &r, destination, group) != 0)
        goto out;
    rc = run(&kafka, &r, destination);
out:
    sl_conf_destroy(conf);
    return rc;
}
