#include "sluicectl_lag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_group.h"
#include "sl_kafka.h"

#define LAG_TIMEOUT_MS 10000
#define LAG_MAX_GROUPS 256

struct lag_group {
    char stage[64];
    char group[SL_GROUP_ID_MAX];
    char topic[SL_TOPIC_NAME_MAX];
};

/* The stages' groups and input topics, in pipeline order. */
static int lag_groups(const sl_conf_t *conf, const struct sl_kafka_settings *kafka,
                      struct lag_group *out, size_t *n, struct sl_err *err)
{
    static const struct {
        const char *stage, *input;
    } stages[] = {{"validate", SL_TOPIC_INGRESS},
                  {"transform", SL_TOPIC_VALIDATED},
                  {"route", SL_TOPIC_NORMALIZED}};
    const sl_conf_node_t *root = sl_conf_root(conf);
    *n = 0;
    for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++) {
        struct lag_group *g = &out[(*n)++];
        char def[SL_GROUP_ID_MAX];
        const char *group;
        if (sl_group_id(kafka, stages[i].stage, def, sizeof(def), err) != 0 ||
            sl_conf_str(conf, sl_conf_get(sl_conf_get(root, stages[i].stage), "loop"), "group_id",
                        def, &group, err) != 0)
            return -1;
        snprintf(g->stage, sizeof(g->stage), "%s", stages[i].stage);
        snprintf(g->group, sizeof(g->group), "%s", group);
        sl_kafka_topic_name(kafka, stages[i].input, g->topic, sizeof(g->topic));
    }
    const sl_conf_node_t *dests = sl_conf_get(root, "destinations");
    for (size_t i = 0; i < sl_conf_count(dests) && *n < LAG_MAX_GROUPS; i++) {
        struct lag_group *g = &out[(*n)++];
        char suffix[SL_TOPIC_NAME_MAX];
        snprintf(g->stage, sizeof(g->stage), "deliver");
        snprintf(suffix, sizeof(suffix), SL_TOPIC_DELIVER "%s", sl_conf_key(dests, i));
        if (sl_group_id(kafka, suffix, g->group, sizeof(g->group), err) != 0)
            return -1;
        sl_kafka_topic_name(kafka, suffix, g->topic, sizeof(g->topic));
    }
    return 0;
}

/* Prints one group's lag per partition; returns the group's total, or -1 on an error. */
static long long group_lag(const struct sl_kafka_settings *kafka, const struct lag_group *g,
                           bool json, struct sl_err *err)
{
    char errstr[512];
    long long total = -1;
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    const struct rd_kafka_metadata *md = NULL;

    rd_kafka_conf_t *conf = sl_kafka_conf_new(kafka, "sluicectl-lag", err);
    if (!conf || sl_kafka_conf_set(conf, "group.id", g->group, err) != 0) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        return -1;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        sl_err_set(err, SL_ERR_KAFKA, "cannot create a Kafka client: %s", errstr);
        return -1;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, g->topic, NULL);
    rd_kafka_resp_err_t rc = rd_kafka_metadata(rk, 0, rkt, &md, LAG_TIMEOUT_MS);
    rd_kafka_topic_destroy(rkt);
    if (rc || md->topic_cnt != 1 || md->topics[0].err) {
        sl_err_retriable(err, SL_ERR_UNAVAILABLE, "topic %s: %s", g->topic,
                         rd_kafka_err2str(rc              ? rc
                                          : md->topic_cnt ? md->topics[0].err
                                                          : rc));
        goto out;
    }
    parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        rd_kafka_topic_partition_list_add(parts, g->topic, md->topics[0].partitions[i].id);
    rc = rd_kafka_committed(rk, parts, LAG_TIMEOUT_MS);
    if (rc) {
        sl_err_retriable(err, SL_ERR_UNAVAILABLE, "committed offsets of %s: %s", g->group,
                         rd_kafka_err2str(rc));
        goto out;
    }
    total = 0;
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        int64_t lo, hi;
        rc = rd_kafka_query_watermark_offsets(rk, g->topic, p->partition, &lo, &hi, LAG_TIMEOUT_MS);
        if (rc) {
            sl_err_retriable(err, SL_ERR_UNAVAILABLE, "end offset of %s [%d]: %s", g->topic,
                             (int)p->partition, rd_kafka_err2str(rc));
            total = -1;
            goto out;
        }
        /* Nothing committed: the group starts from the earliest offset (auto.offset.reset). */
        int64_t committed = p->offset >= 0 ? p->offset : lo;
        long long lag = hi > committed ? (long long)(hi - committed) : 0;
        total += lag;
        if (json)
            printf("{\"stage\":\"%s\",\"group\":\"%s\",\"topic\":\"%s\",\"partition\":%d,"
                   "\"committed\":%lld,\"end\":%lld,\"lag\":%lld}\n",
                   g->stage, g->group, g->topic, (int)p->partition,
                   p->offset >= 0 ? (long long)p->offset : -1LL, (long long)hi, lag);
        else {
            char committed_text[24] = "-";
            if (p->offset >= 0)
                snprintf(committed_text, sizeof(committed_text), "%lld", (long long)p->offset);
            printf("%-10s %-32s %-40s %9d %12s %12lld %10lld\n", g->stage, g->group, g->topic,
                   (int)p->partition, committed_text, (long long)hi, lag);
        }
    }
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_destroy(rk);
    return total;
}

int sluicectl_lag(const sl_conf_t *conf, int argc, char **argv)
{
    bool json = false;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--stage") == 0 && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: sluicectl lag [--stage STAGE] [--json]\n");
            return 2;
        }
    }
    struct sl_err err;
    struct sl_kafka_settings kafka;
    static struct lag_group groups[LAG_MAX_GROUPS];
    size_t n;
    if (sl_kafka_settings_load(conf, &kafka, &err) != 0 ||
        lag_groups(conf, &kafka, groups, &n, &err) != 0) {
        fprintf(stderr, "sluicectl lag: %s\n", err.msg);
        return 2;
    }
    if (!json)
        printf("%-10s %-32s %-40s %9s %12s %12s %10s\n", "STAGE", "GROUP", "TOPIC", "PARTITION",
               "COMMITTED", "END", "LAG");
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (only && strcmp(only, groups[i].stage) != 0)
            continue;
        if (group_lag(&kafka, &groups[i], json, &err) < 0) {
            fprintf(stderr, "sluicectl lag: %s\n", err.msg);
            rc = 1;
        }
    }
    return rc;
}
