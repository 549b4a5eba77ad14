#include "pause.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_record.h"

int dlv_pause_key(const char *key_prefix, const char *destination, char *out, size_t size)
{
    int n = snprintf(out, size, "%sdeliver.%s:paused", key_prefix, destination);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

int dlv_pause_get(sl_redis_t *r, const char *key, json_t **paused, struct sl_err *err)
{
    const char *argv[] = {"GET", key};
    redisReply *reply = NULL;
    *paused = NULL;
    if (sl_redis_cmd(r, &reply, 2, argv, NULL, err) != 0)
        return -1;
    int rc = 0;
    if (reply->type == REDIS_REPLY_STRING) {
        *paused = json_loadb(reply->str, reply->len, 0, NULL);
        /* Not ours (written by hand?): paused all the same, the text kept as the reason. */
        if (!json_is_object(*paused)) {
            json_decref(*paused);
            *paused =
                json_pack("{s:n, s:n, s:s%}", "by", "at", "reason", reply->str, (size_t)reply->len);
        }
        if (!*paused)
            rc = sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    }
    freeReplyObject(reply);
    return rc;
}

int dlv_pause_set(sl_redis_t *r, const char *key, const char *by, const char *reason,
                  json_t **paused, struct sl_err *err)
{
    char at[SL_RECORD_TIME_MAX];
    redisReply *reply = NULL;
    sl_record_time(at, sizeof(at));
    *paused = json_pack("{s:s, s:s, s:s?}", "by", by, "at", at, "reason", reason);
    char *text = *paused ? json_dumps(*paused, JSON_COMPACT) : NULL;
    if (!text) {
        json_decref(*paused);
        *paused = NULL;
        return sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    }
    const char *argv[] = {"SET", key, text};
    int rc = sl_redis_cmd(r, &reply, 3, argv, NULL, err);
    freeReplyObject(reply);
    free(text);
    if (rc != 0) {
        json_decref(*paused);
        *paused = NULL;
    }
    return rc;
}

int dlv_pause_clear(sl_redis_t *r, const char *key, struct sl_err *err)
{
    const char *argv[] = {"DEL", key};
    redisReply *reply = NULL;
    int rc = sl_redis_cmd(r, &reply, 2, argv, NULL, err);
    freeReplyObject(reply);
    return rc;
}
