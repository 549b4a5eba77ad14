#include "sl_crashguard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_kafka.h"
#include "sl_log.h"
#include "sl_redis.h"

#define KEY_MAX   (SL_TOPIC_NAME_MAX + 512)
#define VALUE_MAX 80
#define GROUP_MAX 256

/* What this process knows of one partition. */
struct cg_part {
    sl_crashguard_topic_t *t;
    int32_t id;
    bool marked;          /* a marker of the open batch is in Redis */
    int64_t suspect_from; /* a process died processing from here; -1: no suspicion */
    int64_t single;       /* the marker named this record alone; -1: a batch */
    int walk_left;        /* records still to process alone */
    int crashes;          /* charged to each record processed alone */
    char key[KEY_MAX];
};

struct sl_crashguard_topic {
    sl_crashguard_t *g;
    sl_crashguard_topic_t *next;
    char group[GROUP_MAX];
    char topic[SL_TOPIC_NAME_MAX];
    int walk;
    struct cg_part *parts[SL_CRASHGUARD_PARTITIONS_MAX];
};

struct sl_crashguard {
    struct sl_crashguard_opts o;
    char stage[64];
    sl_redis_t *redis;
    sl_crashguard_topic_t *topics;
    struct cg_part *marked[SL_CRASHGUARD_MARKED_MAX];
    size_t n_marked;
    long long off_until; /* stepped aside after a Redis error until then (monotonic ms) */
    bool down;           /* the outage was logged */
    sl_series_t *m_crashes, *m_crashed, *m_up;
};

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool usable(const sl_crashguard_t *g)
{
    return g->o.max_crashes > 0 && mono_ms() >= g->off_until;
}

static void redis_failed(sl_crashguard_t *g, const char *what, const struct sl_err *err)
{
    g->off_until = mono_ms() + SL_CRASHGUARD_RETRY_MS;
    sl_series_set(g->m_up, 0);
    if (!g->down)
        SL_WARN("crash guard: %s: %s; records are processed without the guard until Redis "
                "answers (a crash loop meanwhile is not caught)",
                what, err->msg);
    g->down = true;
}

static void redis_worked(sl_crashguard_t *g)
{
    if (g->down)
        SL_INFO("crash guard: Redis answers again; the guard is back");
    g->down = false;
    sl_series_set(g->m_up, 1);
}

sl_crashguard_t *sl_crashguard_new(const struct sl_crashguard_opts *o, struct sl_err *err)
{
    if (o->max_crashes < 0 || o->max_crashes > SL_CRASHGUARD_MAX_MAX) {
        sl_err_set(err, SL_ERR_CONFIG, "max_crashes must be between 0 and %d",
                   SL_CRASHGUARD_MAX_MAX);
        return NULL;
    }
    sl_crashguard_t *g = calloc(1, sizeof(*g));
    if (!g) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    g->o = *o;
    snprintf(g->stage, sizeof(g->stage), "%s", o->stage);
    g->o.stage = g->stage;
    g->o.redis_url = NULL; /* copied into the handle */
    if (o->max_crashes > 0 && !(g->redis = sl_redis_new(o->redis_url, o->redis_timeout_ms, err))) {
        free(g);
        return NULL;
    }
    static const char *const label[] = {"stage", NULL};
    sl_metric_t *crashes = sl_metrics_counter(
        o->metrics, "sluice_stage_crashes_total",
        "Times a restart found that a process died while processing records (a crash-guard "
        "marker was left).",
        label);
    sl_metric_t *crashed = sl_metrics_counter(
        o->metrics, "sluice_stage_crashed_records_total",
        "Records dead-lettered (crashed_stage) because they crashed the process max_crashes times.",
        label);
    sl_metric_t *up = sl_metrics_gauge(
        o->metrics, "sluice_crashguard_up",
        "1 while the crash guard reaches Redis; 0 while records are processed unguarded.", label);
    g->m_crashes = sl_metric_series(crashes, (const char *const[]){g->stage});
    g->m_crashed = sl_metric_series(crashed, (const char *const[]){g->stage});
    g->m_up = sl_metric_series(up, (const char *const[]){g->stage});
    sl_series_set(g->m_up, o->max_crashes > 0 ? 1 : 0);
    return g;
}

void sl_crashguard_destroy(sl_crashguard_t *g)
{
    if (!g)
        return;
    sl_crashguard_topic_t *t = g->topics;
    while (t) {
        sl_crashguard_topic_t *next = t->next;
        for (int32_t i = 0; i < SL_CRASHGUARD_PARTITIONS_MAX; i++)
            free(t->parts[i]);
        free(t);
        t = next;
    }
    sl_redis_destroy(g->redis);
    free(g);
}

sl_crashguard_topic_t *sl_crashguard_topic(sl_crashguard_t *g, const char *group, const char *topic,
                                           int walk, struct sl_err *err)
{
    if (strlen(group) >= GROUP_MAX || strlen(topic) >= SL_TOPIC_NAME_MAX || walk < 1) {
        sl_err_set(err, SL_ERR_INVALID, "crash guard: bad group, topic or walk");
        return NULL;
    }
    sl_crashguard_topic_t *t = calloc(1, sizeof(*t));
    if (!t) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    t->g = g;
    snprintf(t->group, sizeof(t->group), "%s", group);
    snprintf(t->topic, sizeof(t->topic), "%s", topic);
    t->walk = walk;
    t->next = g->topics;
    g->topics = t;
    return t;
}

static void key_of(const sl_crashguard_topic_t *t, int32_t partition, char *key, size_t size)
{
    snprintf(key, size, "%s:crashguard:%s:%d", t->topic, t->group, (int)partition);
}

static struct cg_part *part_of(const sl_crashguard_topic_t *t, int32_t partition)
{
    return partition >= 0 && partition < SL_CRASHGUARD_PARTITIONS_MAX ? t->parts[partition] : NULL;
}

void sl_crashguard_assigned(sl_crashguard_topic_t *t, int32_t partition, int64_t committed)
{
    sl_crashguard_t *g = t->g;
    if (partition < 0 || partition >= SL_CRASHGUARD_PARTITIONS_MAX)
        return;
    struct cg_part *p = t->parts[partition];
    if (!p && !(p = t->parts[partition] = calloc(1, sizeof(*p)))) {
        SL_ERROR("crash guard: out of memory; %s [%d] is not guarded", t->topic, (int)partition);
        return;
    }
    *p = (struct cg_part){.t = t, .id = partition, .suspect_from = -1, .single = -1};
    key_of(t, partition, p->key, sizeof(p->key));
    if (!usable(g))
        return;
    const char *argv[] = {"GET", p->key};
    redisReply *reply = NULL;
    struct sl_err err;
    if (sl_redis_cmd(g->redis, &reply, 2, argv, NULL, &err) != 0) {
        redis_failed(g, "reading the marker", &err);
        return;
    }
    redis_worked(g);
    long long first = -1, last = -1;
    int crashes = 0;
    bool found = reply->type == REDIS_REPLY_STRING &&
                 sscanf(reply->str, "%lld %lld %d", &first, &last, &crashes) == 3 && first >= 0;
    freeReplyObject(reply);
    if (!found || (committed >= 0 && first < committed))
        return; /* none, or from a batch committed just before its process died */
    sl_series_add(g->m_crashes, 1);
    p->suspect_from = first;
    p->crashes = crashes + 1;
    if (last == first) {
        p->single = first;
        p->walk_left = 1;
        SL_WARN("crash guard: a process died processing %s [%d] offset %lld alone: %d crash(es) "
                "of %d before it is dead-lettered (%s)",
                t->topic, (int)partition, first, p->crashes, g->o.max_crashes,
                SL_CRASHGUARD_REASON);
    } else {
        p->walk_left = t->walk;
        SL_WARN("crash guard: a process died processing %s [%d] from offset %lld; replaying up "
                "to %d record(s) from there one at a time to find the one that crashes it",
                t->topic, (int)partition, first, t->walk);
    }
}

void sl_crashguard_revoked(sl_crashguard_topic_t *t, int32_t partition)
{
    struct cg_part *p = part_of(t, partition);
    if (!p)
        return;
    sl_crashguard_t *g = t->g;
    for (size_t i = 0; i < g->n_marked; i++)
        if (g->marked[i] == p)
            g->marked[i] = g->marked[--g->n_marked];
    free(p);
    t->parts[partition] = NULL;
}

bool sl_crashguard_alone(const sl_crashguard_topic_t *t, int32_t partition, int64_t offset)
{
    const struct cg_part *p = part_of(t, partition);
    return p && p->walk_left > 0 && offset >= p->suspect_from && usable(t->g);
}

/* SET key value PX ttl; false when Redis failed (the guard then steps aside). */
static bool mark(struct cg_part *p, int64_t first, int64_t last, int crashes)
{
    sl_crashguard_t *g = p->t->g;
    if (!p->marked && g->n_marked == SL_CRASHGUARD_MARKED_MAX)
        return false;
    char value[VALUE_MAX], ttl[24];
    snprintf(value, sizeof(value), "%lld %lld %d", (long long)first, (long long)last, crashes);
    snprintf(ttl, sizeof(ttl), "%lld", SL_CRASHGUARD_TTL_MS);
    const char *argv[] = {"SET", p->key, value, "PX", ttl};
    redisReply *reply = NULL;
    struct sl_err err;
    if (sl_redis_cmd(g->redis, &reply, 5, argv, NULL, &err) != 0) {
        redis_failed(g, "setting a marker", &err);
        return false;
    }
    freeReplyObject(reply);
    redis_worked(g);
    if (!p->marked)
        g->marked[g->n_marked++] = p;
    p->marked = true;
    return true;
}

enum sl_crashguard_verdict sl_crashguard_enter(sl_crashguard_topic_t *t, int32_t partition,
                                               int64_t offset, int *crashes)
{
    sl_crashguard_t *g = t->g;
    struct cg_part *p = part_of(t, partition);
    if (crashes)
        *crashes = 0;
    if (!p || !usable(g))
        return SL_CRASHGUARD_GO;
    if (!sl_crashguard_alone(t, partition, offset)) {
        /* Records before a suspect one (deliver resumes below it) leave its marker alone. */
        if (!p->marked && p->walk_left == 0)
            mark(p, offset, -1, 0);
        return SL_CRASHGUARD_GO;
    }
    /* A record alone: charged with the crashes so far when it is the one the marker named, or
     * any record of the batch that died. */
    int charged = p->single < 0 || p->single == offset ? p->crashes : 0;
    if (--p->walk_left == 0)
        p->suspect_from = -1;
    if (crashes)
        *crashes = charged;
    if (charged >= g->o.max_crashes) {
        sl_series_add(g->m_crashed, 1);
        SL_ERROR("crash guard: %s [%d] offset %lld crashed the process %d time(s): "
                 "dead-lettering it (%s) without processing it again",
                 t->topic, (int)partition, (long long)offset, charged, SL_CRASHGUARD_REASON);
        if (!p->marked && g->n_marked < SL_CRASHGUARD_MARKED_MAX) {
            g->marked[g->n_marked++] = p; /* done() removes its marker */
            p->marked = true;
        }
        return SL_CRASHGUARD_CRASHED;
    }
    mark(p, offset, offset, charged);
    return SL_CRASHGUARD_GO;
}

void sl_crashguard_done(sl_crashguard_t *g)
{
    if (g->n_marked == 0)
        return;
    const char *argv[SL_CRASHGUARD_MARKED_MAX][2];
    struct sl_redis_command cmds[SL_CRASHGUARD_MARKED_MAX];
    redisReply *replies[SL_CRASHGUARD_MARKED_MAX];
    size_t n = g->n_marked;
    for (size_t i = 0; i < n; i++) {
        struct cg_part *p = g->marked[i];
        argv[i][0] = "DEL";
        argv[i][1] = p->key;
        cmds[i] = (struct sl_redis_command){2, argv[i], NULL};
        p->marked = false;
    }
    g->n_marked = 0;
    if (mono_ms() < g->off_until)
        return; /* left to expire; a restart may count one crash too many */
    struct sl_err err;
    if (sl_redis_pipeline(g->redis, n, cmds, replies, &err) != 0) {
        redis_failed(g, "clearing markers", &err);
        return;
    }
    sl_redis_replies_free(replies, n);
    redis_worked(g);
}
