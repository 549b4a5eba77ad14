/*
 * pause: an operator's fleet-wide pause of one destination (sluice-admin's
 * POST /api/v1/destinations/{name}/pause and /resume). Next to the 429 hold
 * ("<key prefix>deliver.<destination>:hold", which expires), the pause is the key
 * "<key prefix>deliver.<destination>:paused" holding {"by", "at", "reason"} as JSON, with no
 * TTL: it lasts until resumed. Every sluice-deliver replica reads it with the hold (every
 * DLV_HOLD_POLL_MS while it has events to send) and sends nothing for the destination while it
 * exists; events wait in their partitions, offsets uncommitted, and go out on resume.
 */
#ifndef DLV_PAUSE_H
#define DLV_PAUSE_H

#include <jansson.h>
#include <stddef.h>

#include "sl_err.h"
#include "sl_redis.h"

#define DLV_PAUSE_REASON_MAX 512 /* bytes of a reason */

/* The pause key of `destination` under `key_prefix` (sl_redis_key_prefix) into out. -1 when it
 * does not fit. */
int dlv_pause_key(const char *key_prefix, const char *destination, char *out, size_t size);

/* *paused: the pause on `key` ({"by", "at", "reason"}, the caller's), or NULL when there is
 * none. */
int dlv_pause_get(sl_redis_t *r, const char *key, json_t **paused, struct sl_err *err)
    __attribute__((warn_unused_result));
/* Pauses (again: the new who, when and why replace the old). `reason` may be NULL. *paused as
 * for dlv_pause_get. */
int dlv_pause_set(sl_redis_t *r, const char *key, const char *by, const char *reason,
                  json_t **paused, struct sl_err *err) __attribute__((warn_unused_result));
/* Resumes; resuming what is not paused is not an error. */
int dlv_pause_clear(sl_redis_t *r, const char *key, struct sl_err *err)
    __attribute__((warn_unused_result));

#endif
