#include "sluicectl_lag.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "sl_lag.h"
#include "sl_pipeline.h"
#include "sluicectl_common.h"

#define LAG_TIMEOUT_MS 10000 /* each broker call, unless --timeout says otherwise */

/* Appends one group's lag per partition to `items`; -1 with *err when Kafka could not be asked
 * (or out of memory). */
static int group_lag(sl_lag_t *reader, const struct sl_lag_group *g, json_t *items,
                     struct sl_err *err)
{
    static struct sl_lag_partition parts[SL_LAG_MAX_PARTITIONS];
    size_t n;
    if (sl_lag_read(reader, g, ctl_timeout_ms(LAG_TIMEOUT_MS), parts, SL_LAG_MAX_PARTITIONS, &n,
                    err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const struct sl_lag_partition *p = &parts[i];
        json_t *row = json_pack("{s:s, s:s?, s:s, s:s, s:i, s:I, s:I, s:I, s:f}", "stage", g->stage,
                                "destination", g->destination[0] ? g->destination : NULL, "group",
                                g->group, "topic", g->topic, "partition", (int)p->partition,
                                "committed", (json_int_t)p->committed, "end", (json_int_t)p->end,
                                "lag", (json_int_t)p->lag, "age_seconds", p->age_seconds);
        if (!row || json_array_append_new(items, row) != 0)
            return sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    }
    return 0;
}

static void print_table(const json_t *doc)
{
    size_t i;
    const json_t *row;
    printf("%-10s %-32s %-40s %9s %12s %12s %10s %10s\n", "STAGE", "GROUP", "TOPIC", "PARTITION",
           "COMMITTED", "END", "LAG", "AGE_S");
    json_array_foreach(json_object_get(doc, "items"), i, row)
    {
        long long committed = json_integer_value(json_object_get(row, "committed"));
        double age_s = json_real_value(json_object_get(row, "age_seconds"));
        char committed_text[24] = "-", age[24] = "-";
        if (committed >= 0)
            snprintf(committed_text, sizeof(committed_text), "%lld", committed);
        if (age_s >= 0)
            snprintf(age, sizeof(age), "%.1f", age_s);
        printf("%-10s %-32s %-40s %9lld %12s %12lld %10lld %10s\n",
               json_string_value(json_object_get(row, "stage")),
               json_string_value(json_object_get(row, "group")),
               json_string_value(json_object_get(row, "topic")),
               (long long)json_integer_value(json_object_get(row, "partition")), committed_text,
               (long long)json_integer_value(json_object_get(row, "end")),
               (long long)json_integer_value(json_object_get(row, "lag")), age);
    }
}

int sluicectl_lag(const char *config, int argc, char **argv)
{
    enum ctl_output output = CTL_OUTPUT_TABLE;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        int o = ctl_output_arg("lag", argc, argv, &i, &output);
        if (o < 0)
            return 2;
        if (o > 0)
            continue;
        if (strcmp(argv[i], "--stage") == 0 && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: sluicectl lag [--stage STAGE] [-o json|table]\n");
            return 2;
        }
    }
    if (!config) {
        fprintf(stderr, "sluicectl lag: no pipeline file (--config FILE or SLUICE_CONFIG)\n");
        return 2;
    }
    struct sl_err err;
    struct sl_kafka_settings kafka; /* borrows from conf */
    static struct sl_lag_group groups[SL_LAG_MAX_GROUPS];
    size_t n;
    sl_lag_t *reader = NULL;
    json_t *doc = NULL;
    int rc = 2;
    sl_conf_t *conf = sl_pipeline_load(config, &err);
    if (!conf || sl_kafka_settings_load(conf, &kafka, &err) != 0 ||
        sl_lag_groups(conf, &kafka, groups, SL_LAG_MAX_GROUPS, &n, &err) != 0)
        goto fail;
    rc = 1;
    if (!(doc = json_pack("{s:[]}", "items"))) {
        sl_err_set(&err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (!(reader = sl_lag_new(&kafka, "sluicectl-lag", &err)))
        goto fail;
    rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (only && strcmp(only, groups[i].stage) != 0)
            continue;
        if (group_lag(reader, &groups[i], json_object_get(doc, "items"), &err) != 0) {
            rc = 1;
            /* A broker that did not answer would make every other group wait as long. */
            if (err.retriable) {
                fprintf(stderr,
                        "sluicectl lag: %s (Kafka did not answer: the groups after it are not "
                        "read)\n",
                        err.msg);
                break;
            }
            fprintf(stderr, "sluicectl lag: %s\n", err.msg);
        }
    }
    /* The partitions that could be read, also when some group could not: the exit code says
     * whether the listing is complete. */
    ctl_print(doc, output, print_table);
    goto out;
fail:
    fprintf(stderr, "sluicectl lag: %s\n", err.msg);
out:
    sl_lag_destroy(reader);
    json_decref(doc);
    sl_conf_destroy(conf);
    return rc;
}
