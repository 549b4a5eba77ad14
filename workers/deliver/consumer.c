#include "consumer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "offsets.h"
#include "sl_group.h"
#include "sl_log.h"

#define COMMIT_SYNC_NOTE "(synchronous)"

struct dlv_part {
    dlv_consumer_t *c;
    int32_t id;
    dlv_offsets_t *offsets;
    size_t held; /* records tracked and not finished */
    bool paused;
    int64_t committed; /* last commit point sent; -1 none */
    sl_series_t *lag;
};

struct dlv_consumer {
    struct dlv_consumer_opts o;
    char topic[SL_TOPIC_NAME_MAX];
    char group[SL_GROUP_ID_MAX];
    char legacy_group[SL_GROUP_ID_MAX]; /* before groups were named after the pipeline */
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    dlv_part_t *parts[DLV_PARTITIONS_MAX];
    size_t assigned;
    bool closing;
    bool assigned_once; /* the rebalance callback has assigned (sl_kafka_consumer_closable) */
    char failed[512];   /* why the engine must stop; "" while it need not */
};

static dlv_part_t *part_of(dlv_consumer_t *c, int32_t id)
{
    return id >= 0 && id < DLV_PARTITIONS_MAX ? c->parts[id] : NULL;
}

static void part_free(dlv_part_t *p)
{
    if (!p)
        return;
    if (p->lag)
        sl_series_set(p->lag, 0); /* no longer ours: no lag of ours either */
    dlv_offsets_destroy(p->offsets);
    free(p);
}

void dlv_part_finish(dlv_part_t *p, int64_t offset)
{
    if (dlv_offsets_finish(p->offsets, offset) == 0 && p->held > 0)
        p->held--;
}

int32_t dlv_part_id(const dlv_part_t *p)
{
    return p->id;
}

const char *dlv_consumer_topic(const dlv_consumer_t *c)
{
    return c->topic;
}

const char *dlv_consumer_group(const dlv_consumer_t *c)
{
    return c->group;
}

const char *dlv_consumer_failed(const dlv_consumer_t *c)
{
    return c->failed[0] ? c->failed : NULL;
}

size_t dlv_consumer_assigned(const dlv_consumer_t *c)
{
    return c->assigned;
}

/* One partition in a list, for the pause, resume, seek and commit calls. */
static rd_kafka_topic_partition_list_t *one(const dlv_consumer_t *c, int32_t id, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, c->topic, id)->offset = offset;
    return l;
}

static void set_paused(dlv_part_t *p, bool pause)
{
    if (p->paused == pause)
        return;
    rd_kafka_topic_partition_list_t *l = one(p->c, p->id, RD_KAFKA_OFFSET_INVALID);
    rd_kafka_resp_err_t rc =
        pause ? rd_kafka_pause_partitions(p->c->rk, l) : rd_kafka_resume_partitions(p->c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (rc) {
        SL_WARN("%s [%d]: %s: %s", p->c->topic, (int)p->id, pause ? "pause" : "resume",
                rd_kafka_err2str(rc));
        return;
    }
    p->paused = pause;
    SL_DEBUG("%s [%d] %s (%zu held)", p->c->topic, (int)p->id, pause ? "paused" : "resumed",
             p->held);
}

/* Puts a record back: the partition will be fetched from it again once resumed. */
static void put_back(dlv_part_t *p, int64_t offset)
{
    set_paused(p, true);
    rd_kafka_topic_partition_list_t *l = one(p->c, p->id, offset);
    /* Asynchronous (timeout 0): the seek is queued behind the pause on the partition. */
    rd_kafka_error_t *error = rd_kafka_seek_partitions(p->c->rk, l, 0);
    if (error) {
        SL_ERROR("%s [%d]: cannot seek back to %lld: %s", p->c->topic, (int)p->id,
                 (long long)offset, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Commits the commit points of `only` (NULL: every partition) that moved. */
static void commit(dlv_consumer_t *c, dlv_part_t *only, bool sync)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(only ? 1 : 8);
    for (int32_t id = 0; id < DLV_PARTITIONS_MAX; id++) {
        dlv_part_t *p = only ? (id == only->id ? only : NULL) : c->parts[id];
        if (!p)
            continue;
        int64_t point = dlv_offsets_commit_point(p->offsets);
        if (point >= 0 && point != p->committed) {
            rd_kafka_topic_partition_list_add(l, c->topic, id)->offset = point;
            p->committed = point;
        }
    }
    if (l->cnt > 0) {
        rd_kafka_resp_err_t rc = rd_kafka_commit(c->rk, l, sync ? 0 : 1);
        if (rc && rc != RD_KAFKA_RESP_ERR__NO_OFFSET)
            SL_WARN("%s: offset commit %s: %s", c->topic, sync ? COMMIT_SYNC_NOTE : "",
                    rd_kafka_err2str(rc));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

void dlv_consumer_commit(dlv_consumer_t *c, bool sync)
{
    commit(c, NULL, sync);
}

/* Asynchronous commit results: a failed one is sent again with the next commit. */
static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    dlv_consumer_t *c = opaque;
    if (!err || err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return;
    SL_WARN("%s: offset commit failed: %s; it will be sent again", c->topic, rd_kafka_err2str(err));
    for (int i = 0; offsets && i < offsets->cnt; i++) {
        dlv_part_t *p = part_of(c, offsets->elems[i].partition);
        if (p && p->committed == offsets->elems[i].offset)
            p->committed = -1;
    }
}

static void assign(dlv_consumer_t *c, const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        int32_t id = parts->elems[i].partition;
        if (id < 0 || id >= DLV_PARTITIONS_MAX || c->parts[id])
            continue;
        dlv_part_t *p = calloc(1, sizeof(*p));
        size_t cap =
            c->o.max_per_partition > DLV_OFFSETS_MAX ? c->o.max_per_partition : DLV_OFFSETS_MAX;
        if (!p || !(p->offsets = dlv_offsets_new(cap))) {
            /* Without its tracker the partition cannot be served: its records are dropped
             * untracked (never committed) and the engine stops, so a restart reads them. */
            SL_ERROR("%s [%d]: out of memory at assignment", c->topic, (int)id);
            free(p);
            snprintf(c->failed, sizeof(c->failed), "a partition could not be tracked");
            continue;
        }
        char pbuf[16];
        snprintf(pbuf, sizeof(pbuf), "%d", (int)id);
        p->c = c;
        p->id = id;
        p->committed = -1;
        p->lag = c->o.lag
                     ? sl_metric_series(c->o.lag, (const char *const[]){"deliver", c->topic, pbuf})
                     : NULL;
        c->parts[id] = p;
        c->assigned++;
        c->o.hooks.assigned(c->o.hooks.opaque, p);
    }
}

static void revoke(dlv_consumer_t *c, const rd_kafka_topic_partition_list_t *parts, bool lost)
{
    for (int i = 0; i < parts->cnt; i++) {
        dlv_part_t *p = part_of(c, parts->elems[i].partition);
        if (!p)
            continue;
        c->o.hooks.revoked(c->o.hooks.opaque, p);
        if (!lost)
            commit(c, p, true);
        c->parts[p->id] = NULL;
        c->assigned--;
        part_free(p);
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    dlv_consumer_t *c = opaque;
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        SL_INFO("%s: assigned %d partition(s)", c->topic, parts->cnt);
        c->assigned_once = true;
        assign(c, parts);
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
        /* A partition taken back after a lost assignment keeps librdkafka's pause flag from
         * before; ours starts unpaused, so make librdkafka agree (balance pauses again when
         * needed). */
        rd_kafka_resume_partitions(rk, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        bool lost = rd_kafka_assignment_lost(rk);
        SL_INFO("%s: revoked %d partition(s)%s", c->topic, parts->cnt, lost ? " (lost)" : "");
        revoke(c, parts, lost);
        if (cooperative)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            rd_kafka_assign(rk, NULL);
    } else {
        SL_ERROR("%s: rebalance error: %s", c->topic, rd_kafka_err2str(err));
        rd_kafka_assign(rk, NULL);
    }
    if (error) {
        SL_ERROR("%s: rebalance: %s", c->topic, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
}

/* Statistics: consumer_lag per partition (the last stable offset, for read_committed, minus
 * the committed offset), as librdkafka computes it. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    dlv_consumer_t *c = opaque;
    json_t *root = json_loadb(json, len, 0, NULL);
    json_t *parts =
        json_object_get(json_object_get(json_object_get(root, "topics"), c->topic), "partitions");
    const char *name;
    json_t *p;
    json_object_foreach(parts, name, p)
    {
        dlv_part_t *part = part_of(c, atoi(name));
        json_t *lag = json_object_get(p, "consumer_lag");
        if (part && part->lag && json_is_integer(lag) && json_integer_value(lag) >= 0)
            sl_series_set(part->lag, (double)json_integer_value(lag));
    }
    json_decref(root);
    return 0; /* librdkafka frees json */
}

dlv_consumer_t *dlv_consumer_new(const struct dlv_consumer_opts *o, struct sl_err *err)
{
    dlv_consumer_t *c = calloc(1, sizeof(*c));
    rd_kafka_conf_t *conf = NULL;
    char errstr[512], client_id[SL_GROUP_ID_MAX + 16];
    if (!c) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    c->o = *o;
    char suffix[SL_TOPIC_NAME_MAX];
    snprintf(suffix, sizeof(suffix), SL_TOPIC_DELIVER "%s", o->destination);
    if (sl_kafka_topic_name(o->kafka, suffix, c->topic, sizeof(c->topic)) != 0) {
        sl_err_set(err, SL_ERR_CONFIG, "topic name for destination %s is too long", o->destination);
        goto fail;
    }
    if (sl_group_id(o->kafka, suffix, c->group, sizeof(c->group), err) != 0)
        goto fail;
    snprintf(c->legacy_group, sizeof(c->legacy_group), "sluice-deliver-%s", o->destination);
    snprintf(client_id, sizeof(client_id), "%s-consumer", c->group);
    if (!(conf = sl_kafka_conf_new(o->kafka, client_id, err)))
        goto fail;
    const char *const props[] = {"group.id",
                                 c->group,
                                 "partition.assignment.strategy",
                                 "cooperative-sticky",
                                 "enable.auto.commit",
                                 "false",
                                 "enable.auto.offset.store",
                                 "false",
                                 "auto.offset.reset",
                                 "earliest",
                                 "isolation.level",
                                 "read_committed",
                                 "statistics.interval.ms",
                                 "5000",
                                 "queued.max.messages.kbytes",
                                 DLV_FETCH_KBYTES,
                                 o->instance_id ? "group.instance.id" : NULL,
                                 o->instance_id,
                                 NULL};
    for (const char *const *p = props; *p; p += 2)
        if (sl_kafka_conf_set(conf, p[0], p[1], err) != 0)
            goto fail;
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!c->rk) {
        sl_err_set(err, SL_ERR_KAFKA, "cannot create the Kafka consumer: %s", errstr);
        goto fail;
    }
    conf = NULL; /* the handle owns it */
    rd_kafka_poll_set_consumer(c->rk);
    c->queue = rd_kafka_queue_get_consumer(c->rk);
    if (!c->queue) {
        sl_err_set(err, SL_ERR_KAFKA, "no consumer queue");
        goto fail;
    }
    rd_kafka_queue_io_event_enable(c->queue, o->wake_fd, "c", 1);
    return c;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    dlv_consumer_destroy(c);
    return NULL;
}

int dlv_consumer_subscribe(dlv_consumer_t *c, struct sl_err *err)
{
    if (sl_group_adopt(c->rk, c->group, c->legacy_group, c->topic, err) != 0)
        return -1;
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, c->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t rc = rd_kafka_subscribe(c->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (rc)
        return sl_err_set(err, SL_ERR_KAFKA, "subscribe to %s: %s", c->topic, rd_kafka_err2str(rc));
    SL_INFO("consuming %s as group %s", c->topic, c->group);
    return 0;
}

bool dlv_consumer_poll(dlv_consumer_t *c, size_t max, bool accept)
{
    for (size_t n = 0; n < max; n++) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(c->rk, 0);
        if (!msg)
            return false;
        if (msg->err == RD_KAFKA_RESP_ERR__FATAL) {
            /* Dead for good (say, a static member fenced after a broker restart): polling on
             * would stall its partitions with /healthz green. The engine stops; a restart
             * helps. */
            char why[400];
            rd_kafka_fatal_error(c->rk, why, sizeof(why));
            snprintf(c->failed, sizeof(c->failed), "fatal consumer error: %s", why);
            rd_kafka_message_destroy(msg);
            return false;
        }
        if (msg->err) {
            if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                SL_WARN("%s: consumer: %s", c->topic, rd_kafka_message_errstr(msg));
            rd_kafka_message_destroy(msg);
            continue;
        }
        dlv_part_t *p = part_of(c, msg->partition);
        if (!p) {
            rd_kafka_message_destroy(msg);
            continue;
        }
        if (!accept || p->paused || p->held >= c->o.max_per_partition ||
            dlv_offsets_full(p->offsets)) {
            put_back(p, msg->offset);
        } else if (dlv_offsets_add(p->offsets, msg->offset) == 0) {
            p->held++;
            c->o.hooks.record(c->o.hooks.opaque, p, msg);
        } else {
            SL_DEBUG("%s [%d]: record %lld seen twice", c->topic, (int)p->id,
                     (long long)msg->offset);
        }
        rd_kafka_message_destroy(msg);
    }
    return true;
}

void dlv_consumer_balance(dlv_consumer_t *c, bool full)
{
    for (int32_t id = 0; id < DLV_PARTITIONS_MAX && c->assigned; id++) {
        dlv_part_t *p = c->parts[id];
        if (!p)
            continue;
        bool over = p->held >= c->o.max_per_partition || dlv_offsets_full(p->offsets);
        bool under = p->held <= c->o.max_per_partition * 3 / 4 &&
                     dlv_offsets_held(p->offsets) <= (size_t)DLV_OFFSETS_MAX * 3 / 4;
        if (full || over)
            set_paused(p, true);
        else if (p->paused && under)
            set_paused(p, false);
    }
}

void dlv_consumer_close(dlv_consumer_t *c)
{
    if (!c || !c->rk || c->closing)
        return;
    c->closing = true;
    commit(c, NULL, true);
    if (!sl_kafka_consumer_closable(c->assigned_once))
        return;
    rd_kafka_resp_err_t rc = rd_kafka_consumer_close(c->rk);
    if (rc)
        SL_WARN("%s: closing the consumer: %s", c->topic, rd_kafka_err2str(rc));
}

void dlv_consumer_destroy(dlv_consumer_t *c)
{
    if (!c)
        return;
    if (c->queue) {
        rd_kafka_queue_io_event_enable(c->queue, -1, NULL, 0);
        rd_kafka_queue_destroy(c->queue);
    }
    sl_kafka_consumer_destroy(c->rk, c->assigned_once);
    for (int32_t id = 0; id < DLV_PARTITIONS_MAX; id++)
        part_free(c->parts[id]);
    free(c);
}
