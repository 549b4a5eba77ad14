/*
 * replay: see replay.h for the claim's two steps and what each answer means.
 *
 * A claim's value is one letter and the event id: 'p' while the record is being written, 'w'
 * once Kafka has it. Both steps are Lua scripts, so a claim and its check are one atomic
 * round trip. Connections are pooled: a caller takes a free handle (waiting while all are in
 * use, which cannot last longer than one command's deadline) and gives it back.
 */
#include "replay.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_redis.h"

#define PENDING 'p'
#define WRITTEN 'w'
_Static_assert(REPLAY_FIRST == 0 && REPLAY_SEEN == 1 && REPLAY_IN_FLIGHT == 2,
               "the claim script returns these numbers");

/* KEYS[1] the claim; ARGV[1] "p<id>", ARGV[2] pending ms. Returns {enum replay_result, the
 * other copy's id}: 0 claimed, 1 another copy written, 2 another copy pending. */
static const char claim_lua[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then\n"
    "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "  return {0, ''}\n"
    "end\n"
    "if string.sub(v, 1, 1) == 'p' then return {2, string.sub(v, 2)} end\n"
    "return {1, string.sub(v, 2)}\n";

/* KEYS[1] the claim; ARGV[1] "p<id>", ARGV[2] "w<id>", ARGV[3] window ms, or 0 to release.
 * Touches the key only while it is ours (or gone: a pending value that expired under a slow
 * write is written again). */
static const char settle_lua[] = "local v = redis.call('GET', KEYS[1])\n"
                                 "if v and v ~= ARGV[1] then return 0 end\n"
                                 "if ARGV[3] == '0' then\n"
                                 "  if v then redis.call('DEL', KEYS[1]) end\n"
                                 "else\n"
                                 "  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n"
                                 "end\n"
                                 "return 1\n";

struct replay {
    char prefix[REPLAY_KEY_MAX];
    long long pending_ms;
    sl_redis_script_t *claim, *settle;
    pthread_mutex_t lock;
    pthread_cond_t freed;
    unsigned n;
    unsigned n_free;
    sl_redis_t *all[REPLAY_HANDLES_MAX];
    sl_redis_t *free_list[REPLAY_HANDLES_MAX];
};

replay_t *replay_new(const char *url, int timeout_ms, const char *topic_prefix, unsigned handles,
                     long long pending_ms, struct sl_err *err)
{
    if (handles < 1 || handles > REPLAY_HANDLES_MAX || pending_ms <= 0 ||
        strlen(topic_prefix) + 64 >= REPLAY_KEY_MAX) {
        sl_err_set(err, SL_ERR_INVALID, "replay guard: bad settings");
        return NULL;
    }
    replay_t *rp = calloc(1, sizeof(*rp));
    if (!rp) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(rp->prefix, sizeof(rp->prefix), "%sreplay:", topic_prefix);
    rp->pending_ms = pending_ms;
    pthread_mutex_init(&rp->lock, NULL);
    pthread_cond_init(&rp->freed, NULL);
    if (!(rp->claim = sl_redis_script_new(claim_lua, err)) ||
        !(rp->settle = sl_redis_script_new(settle_lua, err)))
        goto fail;
    for (; rp->n < handles; rp->n++) {
        rp->all[rp->n] = sl_redis_new(url, timeout_ms, err);
        if (!rp->all[rp->n])
            goto fail;
        rp->free_list[rp->n_free++] = rp->all[rp->n];
    }
    return rp;
fail:
    replay_destroy(rp);
    return NULL;
}

void replay_destroy(replay_t *rp)
{
    if (!rp)
        return;
    for (unsigned i = 0; i < rp->n; i++)
        sl_redis_destroy(rp->all[i]);
    sl_redis_script_destroy(rp->claim);
    sl_redis_script_destroy(rp->settle);
    pthread_cond_destroy(&rp->freed);
    pthread_mutex_destroy(&rp->lock);
    free(rp);
}

static sl_redis_t *take(replay_t *rp)
{
    pthread_mutex_lock(&rp->lock);
    while (rp->n_free == 0)
        pthread_cond_wait(&rp->freed, &rp->lock);
    sl_redis_t *r = rp->free_list[--rp->n_free];
    pthread_mutex_unlock(&rp->lock);
    return r;
}

static void give_back(replay_t *rp, sl_redis_t *r)
{
    pthread_mutex_lock(&rp->lock);
    rp->free_list[rp->n_free++] = r;
    pthread_cond_signal(&rp->freed);
    pthread_mutex_unlock(&rp->lock);
}

/* Runs one script on a pooled connection. */
static int run(replay_t *rp, const sl_redis_script_t *s, redisReply **reply, int argc,
               const char **argv, struct sl_err *err)
{
    sl_redis_t *r = take(rp);
    int rc = sl_redis_script_run(r, s, reply, 1, argc, argv, NULL, err);
    give_back(rp, r);
    if (rc != 0)
        sl_err_prefix(err, "replay guard");
    return rc;
}

int replay_claim(replay_t *rp, const char *source, const unsigned char digest[VERIFY_DIGEST_LEN],
                 const char *event_id, long long window_ms, struct replay_ticket *ticket,
                 enum replay_result *result, char *first_id, size_t size, struct sl_err *err)
{
    static const char hex[] = "0123456789abcdef";
    char digest_hex[2 * VERIFY_DIGEST_LEN + 1], pending[REPLAY_ID_MAX + 1], ms[24];
    redisReply *reply = NULL;
    int rc = -1;

    ticket->held = false;
    for (size_t i = 0; i < VERIFY_DIGEST_LEN; i++) {
        digest_hex[2 * i] = hex[digest[i] >> 4];
        digest_hex[2 * i + 1] = hex[digest[i] & 0xf];
    }
    digest_hex[2 * VERIFY_DIGEST_LEN] = '\0';
    int n = snprintf(ticket->key, sizeof(ticket->key), "%s%s:%s", rp->prefix, source, digest_hex);
    int m = snprintf(ticket->id, sizeof(ticket->id), "%s", event_id);
    if (n < 0 || (size_t)n >= sizeof(ticket->key) || m < 0 || (size_t)m >= sizeof(ticket->id)) {
        sl_err_set(err, SL_ERR_INVALID, "replay guard: key or event id over its bound");
        goto out;
    }
    snprintf(pending, sizeof(pending), "%c%s", PENDING, event_id);
    snprintf(ms, sizeof(ms), "%lld", rp->pending_ms);
    const char *argv[] = {ticket->key, pending, ms};
    if (run(rp, rp->claim, &reply, 3, argv, err) != 0)
        goto out;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_STRING || reply->element[0]->integer < 0 ||
        reply->element[0]->integer > 2) {
        sl_err_set(err, SL_ERR_INTERNAL, "replay guard: unexpected reply from the claim script");
        goto out;
    }
    *result = (enum replay_result)reply->element[0]->integer;
    snprintf(first_id, size, "%.*s", (int)reply->element[1]->len, reply->element[1]->str);
    ticket->held = *result == REPLAY_FIRST;
    ticket->window_ms = window_ms;
    rc = 0;
out:
    freeReplyObject(reply);
    return rc;
}

int replay_settle(replay_t *rp, struct replay_ticket *ticket, bool written, struct sl_err *err)
{
    char pending[REPLAY_ID_MAX + 1], done[REPLAY_ID_MAX + 1], ms[24];
    redisReply *reply = NULL;
    if (!ticket->held)
        return 0;
    ticket->held = false;
    snprintf(pending, sizeof(pending), "%c%s", PENDING, ticket->id);
    snprintf(done, sizeof(done), "%c%s", WRITTEN, ticket->id);
    snprintf(ms, sizeof(ms), "%lld", written ? ticket->window_ms : 0LL);
    const char *argv[] = {ticket->key, pending, done, ms};
    int rc = run(rp, rp->settle, &reply, 4, argv, err);
    freeReplyObject(reply);
    return rc;
}
