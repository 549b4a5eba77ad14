/* sl_group: default consumer groups per pipeline; adopting an old group's offsets. */
#include "sl_group.h"

#include <stdio.h>
#include <string.h>

#include "sl_log.h"
#include "sl_signal.h"

/* How long one Admin API call may take before it counts as Kafka being unreachable. */
#define GROUP_CALL_TIMEOUT_MS 10000

int sl_group_id(const struct sl_kafka_settings *s, const char *name, char *buf, size_t size,
                struct sl_err *err)
{
    int n = snprintf(buf, size, "%s%s", s->topic_prefix, name);
    if (n < 0 || (size_t)n >= size || (size_t)n >= SL_GROUP_ID_MAX)
        return sl_err_set(err, SL_ERR_CONFIG, "consumer group %s%s: longer than %d bytes",
                          s->topic_prefix, name, SL_GROUP_ID_MAX - 1);
    return 0;
}

/* Waits for the answer to an Admin call on `q`; NULL with *err on a timeout or a request
 * error (both retriable: the broker may come back). */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, rd_kafka_event_type_t type,
                                    const char *what, struct sl_err *err)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, GROUP_CALL_TIMEOUT_MS + 2000);
    if (!ev) {
        sl_err_retriable(err, SL_ERR_TIMEOUT, "%s: no answer from Kafka", what);
        return NULL;
    }
    if (rd_kafka_event_type(ev) != type || rd_kafka_event_error(ev)) {
        sl_err_retriable(err, SL_ERR_UNAVAILABLE, "%s: %s", what,
                         rd_kafka_event_error(ev) ? rd_kafka_event_error_string(ev)
                                                  : "unexpected answer");
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

/* The one group result of a List/Alter answer, or NULL with *err. */
static const rd_kafka_group_result_t *group_result(const rd_kafka_group_result_t **g, size_t n,
                                                   const char *what, struct sl_err *err)
{
    if (n != 1) {
        sl_err_set(err, SL_ERR_KAFKA, "%s: %zu answers", what, n);
        return NULL;
    }
    const rd_kafka_error_t *gerr = rd_kafka_group_result_error(g[0]);
    if (gerr) {
        sl_err_retriable(err, SL_ERR_KAFKA, "%s: %s", what, rd_kafka_error_string(gerr));
        return NULL;
    }
    return g[0];
}

rd_kafka_topic_partition_list_t *sl_group_committed(rd_kafka_t *rk, rd_kafka_queue_t *q,
                                                    const char *group, const char *topic,
                                                    struct sl_err *err)
{
    char what[SL_GROUP_ID_MAX + 64];
    snprintf(what, sizeof(what), "committed offsets of group %s", group);
    rd_kafka_AdminOptions_t *ao =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    rd_kafka_AdminOptions_set_request_timeout(ao, GROUP_CALL_TIMEOUT_MS, NULL, 0);
    rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, NULL);
    rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, ao, q);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_topic_partition_list_t *out = NULL;
    rd_kafka_event_t *ev = admin_wait(q, RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT, what, err);
    if (!ev)
        goto out;
    size_t n;
    const rd_kafka_group_result_t **g = rd_kafka_ListConsumerGroupOffsets_result_groups(
        rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
    const rd_kafka_group_result_t *res = group_result(g, n, what, err);
    if (!res)
        goto out;
    const rd_kafka_topic_partition_list_t *parts = rd_kafka_group_result_partitions(res);
    out = rd_kafka_topic_partition_list_new(parts ? parts->cnt : 0);
    for (int i = 0; parts && i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        if (strcmp(p->topic, topic) == 0 && !p->err && p->offset >= 0)
            rd_kafka_topic_partition_list_add(out, p->topic, p->partition)->offset = p->offset;
    }
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    return out;
}

/* Commits `parts` to `group` (which must have no members). */
static int alter(rd_kafka_t *rk, rd_kafka_queue_t *q, const char *group,
                 const rd_kafka_topic_partition_list_t *parts, struct sl_err *err)
{
    char what[SL_GROUP_ID_MAX + 64];
    snprintf(what, sizeof(what), "committing adopted offsets to group %s", group);
    rd_kafka_AdminOptions_t *ao =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS);
    rd_kafka_AdminOptions_set_request_timeout(ao, GROUP_CALL_TIMEOUT_MS, NULL, 0);
    rd_kafka_AlterConsumerGroupOffsets_t *req =
        rd_kafka_AlterConsumerGroupOffsets_new(group, parts);
    rd_kafka_AlterConsumerGroupOffsets(rk, &req, 1, ao, q);
    rd_kafka_AlterConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(ao);
    int rc = -1;
    rd_kafka_event_t *ev =
        admin_wait(q, RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT, what, err);
    if (!ev)
        goto out;
    size_t n;
    const rd_kafka_group_result_t **g = rd_kafka_AlterConsumerGroupOffsets_result_groups(
        rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &n);
    const rd_kafka_group_result_t *res = group_result(g, n, what, err);
    if (!res)
        goto out;
    const rd_kafka_topic_partition_list_t *done = rd_kafka_group_result_partitions(res);
    for (int i = 0; done && i < done->cnt; i++)
        if (done->elems[i].err) {
            sl_err_retriable(err, SL_ERR_KAFKA, "%s, %s [%d]: %s", what, done->elems[i].topic,
                             (int)done->elems[i].partition, rd_kafka_err2str(done->elems[i].err));
            goto out;
        }
    rc = 0;
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    return rc;
}

static int adopt_once(rd_kafka_t *rk, rd_kafka_queue_t *q, const char *group, const char *legacy,
                      const char *topic, struct sl_err *err)
{
    rd_kafka_topic_partition_list_t *own = NULL, *old = NULL;
    int rc = -1;
    if (!(own = sl_group_committed(rk, q, group, topic, err)))
        goto out;
    if (own->cnt > 0) {
        rc = 0; /* the group has started: its own offsets rule */
        goto out;
    }
    if (!(old = sl_group_committed(rk, q, legacy, topic, err)))
        goto out;
    if (old->cnt == 0) {
        rc = 0; /* nothing to adopt: a new pipeline */
        goto out;
    }
    if (alter(rk, q, group, old, err) != 0) {
        /* A replica that joined meanwhile makes the group refuse; it adopted them itself
         * before joining, which the group's own offsets now show. */
        rd_kafka_topic_partition_list_destroy(own);
        if ((own = sl_group_committed(rk, q, group, topic, NULL)) && own->cnt > 0)
            rc = 0;
        goto out;
    }
    SL_INFO("group %s: adopted the committed offsets of %d partition(s) of %s from group %s "
            "(first start after the consumer groups were named after the pipeline)",
            group, old->cnt, topic, legacy);
    rc = 0;
out:
    if (own)
        rd_kafka_topic_partition_list_destroy(own);
    if (old)
        rd_kafka_topic_partition_list_destroy(old);
    return rc;
}

int sl_group_adopt(rd_kafka_t *rk, const char *group, const char *legacy, const char *topic,
                   struct sl_err *err)
{
    if (strcmp(group, legacy) == 0)
        return 0;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    int rc = sl_err_set(err, SL_ERR_UNAVAILABLE,
                        "stopped before the committed offsets of group %s were known", group);
    while (!sl_signal_stopping()) {
        struct sl_err e = {0};
        if ((rc = adopt_once(rk, q, group, legacy, topic, &e)) == 0 || !e.retriable) {
            if (rc != 0 && err)
                *err = e;
            break;
        }
        SL_WARN("%s; retrying", e.msg);
        sl_signal_wait(1000);
    }
    rd_kafka_queue_destroy(q);
    return rc;
}
