#include "sluicectl_lag.h"

#include <stdio.h>
#include <string.h>

#include "sl_lag.h"

#define LAG_TIMEOUT_MS 10000

/* Prints one group's lag per partition; -1 with *err when Kafka could not be asked. */
static int group_lag(sl_lag_t *reader, const struct sl_lag_group *g, bool json, struct sl_err *err)
{
    static struct sl_lag_partition parts[SL_LAG_MAX_PARTITIONS];
    size_t n;
    if (sl_lag_read(reader, g, LAG_TIMEOUT_MS, parts, SL_LAG_MAX_PARTITIONS, &n, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const struct sl_lag_partition *p = &parts[i];
        if (json) {
            printf("{\"stage\":\"%s\",\"group\":\"%s\",\"topic\":\"%s\",\"partition\":%d,"
                   "\"committed\":%lld,\"end\":%lld,\"lag\":%lld,\"age_seconds\":%.3f",
                   g->stage, g->group, g->topic, (int)p->partition, (long long)p->committed,
                   (long long)p->end, (long long)p->lag, p->age_seconds);
            if (g->destination[0])
                printf(",\"destination\":\"%s\"", g->destination);
            printf("}\n");
            continue;
        }
        char committed[24] = "-", age[24] = "-";
        if (p->committed >= 0)
            snprintf(committed, sizeof(committed), "%lld", (long long)p->committed);
        if (p->age_seconds >= 0)
            snprintf(age, sizeof(age), "%.1f", p->age_seconds);
        printf("%-10s %-32s %-40s %9d %12s %12lld %10lld %10s\n", g->stage, g->group, g->topic,
               (int)p->partition, committed, (long long)p->end, (long long)p->lag, age);
    }
    return 0;
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
    static struct sl_lag_group groups[SL_LAG_MAX_GROUPS];
    size_t n;
    if (sl_kafka_settings_load(conf, &kafka, &err) != 0 ||
        sl_lag_groups(conf, &kafka, groups, SL_LAG_MAX_GROUPS, &n, &err) != 0) {
        fprintf(stderr, "sluicectl lag: %s\n", err.msg);
        return 2;
    }
    sl_lag_t *reader = sl_lag_new(&kafka, "sluicectl-lag", &err);
    if (!reader) {
        fprintf(stderr, "sluicectl lag: %s\n", err.msg);
        return 1;
    }
    if (!json)
        printf("%-10s %-32s %-40s %9s %12s %12s %10s %10s\n", "STAGE", "GROUP", "TOPIC",
               "PARTITION", "COMMITTED", "END", "LAG", "AGE_S");
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (only && strcmp(only, groups[i].stage) != 0)
            continue;
        if (group_lag(reader, &groups[i], json, &err) != 0) {
            fprintf(stderr, "sluicectl lag: %s\n", err.msg);
            rc = 1;
        }
    }
    sl_lag_destroy(reader);
    return rc;
}
