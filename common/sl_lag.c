/* sl_lag: consumer lag of the pipeline's groups, from the broker. */
#include "sl_lag.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Pause before asking a moving group coordinator again. */
#define LAG_RETRY_MS 200

struct sl_lag {
    rd_kafka_t *rk;      /* a consumer that assign()s only: never joins its group, never commits */
    rd_kafka_queue_t *q; /* Admin API answers */
    /* Per partition of the read under way, aligned with its `out`: where the group resumes,
     * and whether its oldest record is known. */
    int64_t start[SL_LAG_MAX_PARTITIONS];
    bool done[SL_LAG_MAX_PARTITIONS];
};

int sl_lag_groups(const sl_conf_t *conf, const struct sl_kafka_settings *kafka,
                  struct sl_lag_group *out, size_t max, size_t *n, struct sl_err *err)
{
    static const struct {
        const char *stage, *input;
    } stages[] = {{"validate", SL_TOPIC_INGRESS},
                  {"transform", SL_TOPIC_VALIDATED},
                  {"route", SL_TOPIC_NORMALIZED}};
    const sl_conf_node_t *root = sl_conf_root(conf);
    const sl_conf_node_t *dests = sl_conf_get(root, "destinations");
    *n = 0;
    if (sizeof(stages) / sizeof(stages[0]) + sl_conf_count(dests) > max)
        return sl_err_set(err, SL_ERR_CONFIG, "more than %zu consumer groups", max);
    for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++) {
        struct sl_lag_group *g = &out[*n];
        char def[SL_GROUP_ID_MAX];
        const char *group;
        if (sl_group_id(kafka, stages[i].stage, def, sizeof(def), err) != 0 ||
            sl_conf_str(conf, sl_conf_get(sl_conf_get(root, stages[i].stage), "loop"), "group_id",
                        def, &group, err) != 0)
            return -1;
        memset(g, 0, sizeof(*g));
        snprintf(g->stage, sizeof(g->stage), "%s", stages[i].stage);
        snprintf(g->group, sizeof(g->group), "%s", group);
        if (sl_kafka_topic_name(kafka, stages[i].input, g->topic, sizeof(g->topic)) != 0)
            return sl_err_set(err, SL_ERR_CONFIG, "topic prefix too long");
        (*n)++;
    }
    for (size_t i = 0; i < sl_conf_count(dests); i++) {
        struct sl_lag_group *g = &out[*n];
        char suffix[SL_TOPIC_NAME_MAX];
        memset(g, 0, sizeof(*g));
        snprintf(g->stage, sizeof(g->stage), "deliver");
        int len = snprintf(g->destination, sizeof(g->destination), "%s", sl_conf_key(dests, i));
        int slen = snprintf(suffix, sizeof(suffix), SL_TOPIC_DELIVER "%s", g->destination);
        if (len < 0 || (size_t)len >= sizeof(g->destination) || slen < 0 ||
            (size_t)slen >= sizeof(suffix))
            return sl_err_set(err, SL_ERR_CONFIG, "destination name too long");
        if (sl_group_id(kafka, suffix, g->group, sizeof(g->group), err) != 0)
            return -1;
        if (sl_kafka_topic_name(kafka, suffix, g->topic, sizeof(g->topic)) != 0)
            return sl_err_set(err, SL_ERR_CONFIG, "topic prefix too long");
        (*n)++;
    }
    return 0;
}

sl_lag_t *sl_lag_new(const struct sl_kafka_settings *kafka, const char *client_id,
                     struct sl_err *err)
{
    char errstr[512];
    sl_lag_t *l = calloc(1, sizeof(*l));
    if (!l) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    rd_kafka_conf_t *conf = sl_kafka_conf_new(kafka, client_id, err);
    if (!conf)
        goto fail;
    /* It reads the first record after a committed offset and stops: small fetches, no
     * prefetching, partition ends reported, the isolation the stages consume with. librdkafka
     * assigns only with a group.id; the client id serves, as nothing joins or commits. */
    static const char *const props[][2] = {
        {"enable.auto.commit", "false"},   {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "true"},  {"isolation.level", "read_committed"},
        {"auto.offset.reset", "earliest"}, {"fetch.message.max.bytes", "65536"},
        {"queued.min.messages", "1"},      {"queued.max.messages.kbytes", "1024"},
        {"fetch.wait.max.ms", "100"},
    };
    bool ok = sl_kafka_conf_set(conf, "group.id", client_id, err) == 0;
    for (size_t i = 0; ok && i < sizeof(props) / sizeof(props[0]); i++)
        ok = sl_kafka_conf_set(conf, props[i][0], props[i][1], err) == 0;
    if (!ok) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    if (!(l->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr)))) {
        rd_kafka_conf_destroy(conf);
        sl_err_set(err, SL_ERR_KAFKA, "cannot create a Kafka client: %s", errstr);
        goto fail;
    }
    l->q = rd_kafka_queue_new(l->rk);
    return l;
fail:
    sl_lag_destroy(l);
    return NULL;
}

static int by_partition(const void *a, const void *b)
{
    const struct sl_lag_partition *x = a, *y = b;
    return (x->partition > y->partition) - (x->partition < y->partition);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* For each partition with records after its start offset (l->start): fetches
 * the first record a read_committed consumer gets from there. None before the partition's end:
 * only markers (or aborted records) remain, the lag is 0. A record: its age. Partitions that
 * answer neither before the deadline keep their lag with an unknown age. */
static int oldest(sl_lag_t *l, const char *topic, struct sl_lag_partition *p, size_t n,
                  int timeout_ms, struct sl_err *err)
{
    rd_kafka_topic_partition_list_t *assign = rd_kafka_topic_partition_list_new((int)n);
    size_t open = 0;
    for (size_t i = 0; i < n; i++) {
        l->done[i] = p[i].lag == 0;
        if (p[i].lag > 0) {
            rd_kafka_topic_partition_list_add(assign, topic, p[i].partition)->offset = l->start[i];
            p[i].age_seconds = -1;
            open++;
        }
    }
    int rc = 0;
    if (open == 0)
        goto out;
    rd_kafka_resp_err_t e = rd_kafka_assign(l->rk, assign);
    if (e) {
        rc = sl_err_set(err, SL_ERR_KAFKA, "assigning %s: %s", topic, rd_kafka_err2str(e));
        goto out;
    }
    int64_t deadline = mono_ms() + timeout_ms;
    while (open > 0 && mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(l->rk, 100);
        if (!m)
            continue;
        /* Which of ours it is; n for none (another topic: nothing of ours). */
        size_t i = m->rkt && strcmp(rd_kafka_topic_name(m->rkt), topic) == 0 ? 0 : n;
        while (i < n && p[i].partition != m->partition)
            i++;
        if (i < n && !l->done[i] && (!m->err || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)) {
            l->done[i] = true;
            open--;
            if (m->err) {
                p[i].lag = 0; /* only markers or aborted records were left */
                p[i].age_seconds = 0;
            } else {
                int64_t ts = rd_kafka_message_timestamp(m, NULL), now = wall_ms();
                p[i].age_seconds = ts < 0 ? -1 : ts >= now ? 0 : (double)(now - ts) / 1000.0;
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(l->rk, NULL);
out:
    rd_kafka_topic_partition_list_destroy(assign);
    return rc;
}

int sl_lag_read(sl_lag_t *l, const struct sl_lag_group *g, int timeout_ms,
                struct sl_lag_partition *out, size_t max, size_t *n, struct sl_err *err)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *committed = NULL;
    int rc = -1;
    *n = 0;
    if (max > SL_LAG_MAX_PARTITIONS)
        max = SL_LAG_MAX_PARTITIONS;

    rd_kafka_topic_t *rkt = rd_kafka_topic_new(l->rk, g->topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(l->rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (e || md->topic_cnt != 1 || md->topics[0].err) {
        sl_err_retriable(err, SL_ERR_UNAVAILABLE, "topic %s: %s", g->topic,
                         rd_kafka_err2str(e               ? e
                                          : md->topic_cnt ? md->topics[0].err
                                                          : e));
        goto out;
    }
    /* The group's coordinator can be moving (NOT_COORDINATOR right after a broker or the
     * offsets topic starts): a retriable answer is asked again within the timeout. */
    for (int64_t deadline = mono_ms() + timeout_ms;;) {
        struct sl_err why = {0};
        if ((committed = sl_group_committed(l->rk, l->q, g->group, g->topic, &why)))
            break;
        if (!why.retriable || mono_ms() >= deadline) {
            if (err)
                *err = why;
            goto out;
        }
        struct timespec pause = {0, LAG_RETRY_MS * 1000000L};
        nanosleep(&pause, NULL);
    }
    for (int i = 0; i < md->topics[0].partition_cnt && *n < max; i++) {
        struct sl_lag_partition *p = &out[*n];
        p->partition = md->topics[0].partitions[i].id;
        const rd_kafka_topic_partition_t *c =
            rd_kafka_topic_partition_list_find(committed, g->topic, p->partition);
        p->committed = c ? c->offset : -1;
        int64_t lo, hi;
        /* A read_committed client's ListOffsets answers the last stable offset. */
        e = rd_kafka_query_watermark_offsets(l->rk, g->topic, p->partition, &lo, &hi, timeout_ms);
        if (e) {
            sl_err_retriable(err, SL_ERR_UNAVAILABLE, "end offset of %s [%d]: %s", g->topic,
                             (int)p->partition, rd_kafka_err2str(e));
            goto out;
        }
        /* Nothing committed, or deleted by retention: the group starts at the first offset. */
        l->start[*n] = p->committed >= lo ? p->committed : lo;
        p->end = hi;
        p->lag = hi > l->start[*n] ? hi - l->start[*n] : 0;
        p->age_seconds = 0;
        (*n)++;
    }
    if (oldest(l, g->topic, out, *n, timeout_ms, err) != 0)
        goto out;
    qsort(out, *n, sizeof(*out), by_partition);
    rc = 0;
out:
    if (rc != 0)
        *n = 0;
    if (committed)
        rd_kafka_topic_partition_list_destroy(committed);
    if (md)
        rd_kafka_metadata_destroy(md);
    return rc;
}

void sl_lag_destroy(sl_lag_t *l)
{
    if (!l)
        return;
    if (l->q)
        rd_kafka_queue_destroy(l->q);
    if (l->rk) {
        rd_kafka_consumer_close(l->rk);
        rd_kafka_destroy(l->rk);
    }
    free(l);
}
