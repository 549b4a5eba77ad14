/*
 * replay: the per-source replay guard of sluice-ingress (`verify.replay_guard`), in Redis.
 *
 * github and hmac-sha256 sign the body only: no timestamp, no delivery id. A captured request
 * verifies forever, and a new X-GitHub-Delivery header makes it a new event for dedup. The guard
 * remembers the digest of each verified request's signed content (verify_check_digest) for the
 * source's window, and the same signed request is written to Kafka at most once per window.
 *
 * A claim lives in one key, <kafka.topic_prefix>replay:<source>:<hex digest>, in two steps, so
 * that a request whose write failed never blocks its own retry:
 *
 *   claim    SET key "p<event id>" for pending_ms, only when the key is absent
 *            (REPLAY_FIRST: write the record). pending_ms outlasts the Kafka deadline.
 *   settle   after the delivery report, if the key still holds our pending value:
 *              written  -> SET key "w<event id>" for the window (a later copy is a replay);
 *              failed   -> DEL key (the provider's retry of a 503 is accepted as new).
 *            A settle that cannot reach Redis leaves the pending value to expire within
 *            pending_ms: the guard then forgets that one request (it is not lost, and
 *            validate's dedup still sees it), rather than refusing its retry for the window.
 *
 * What a later request with the same digest gets:
 *   REPLAY_SEEN       the first copy is in Kafka: answer 202 with the first copy's event id and
 *                     write nothing. A provider's retry of a request whose 202 it never saw is
 *                     then acknowledged, and an attacker's replay changes nothing.
 *   REPLAY_IN_FLIGHT  the first copy is being written (or its process died within pending_ms):
 *                     503 + Retry-After; the retry finds it settled.
 * Redis unreachable: the call fails and the ingress answers 503 + Retry-After (fail closed: the
 * operator asked for the guard, and a replay let through cannot be taken back).
 *
 * Redis holds the digest (never a secret, never the body) and the event id.
 *
 * Threads: a replay_t holds a few Redis connections, one per concurrent caller (up to
 * `handles`); every function may be called from any thread. Each call is one round trip under
 * redis.timeout.
 */
#ifndef SLUICE_REPLAY_H
#define SLUICE_REPLAY_H

#include <stdbool.h>
#include <stddef.h>

#include "sl_cloudevent.h"
#include "sl_err.h"
#include "verify.h"

#define REPLAY_KEY_MAX     512 /* prefix + "replay:" + source + ":" + 64 hex digits */
#define REPLAY_ID_MAX      (SL_CE_MAX_VALUE + 1) /* an event id and its NUL */
#define REPLAY_HANDLES_MAX 64

typedef struct replay replay_t;

enum replay_result {
    REPLAY_FIRST = 0, /* claimed: write the record, then replay_settle */
    REPLAY_SEEN,      /* written before: *first_id is its event id */
    REPLAY_IN_FLIGHT, /* another copy is being written now */
};

/* One request's claim, held by the caller between replay_claim and replay_settle. Plain data;
 * fill nothing in it yourself. */
struct replay_ticket {
    bool held;
    long long window_ms;
    char key[REPLAY_KEY_MAX];
    char id[REPLAY_ID_MAX];
};

/* A guard on Redis at `url` (redis.url, see sl_redis.h) with `timeout_ms` per command, keys
 * under `topic_prefix`, `handles` (1..REPLAY_HANDLES_MAX) connections, and pending claims
 * that expire after `pending_ms`. Does not connect yet. The caller owns it. */
replay_t *replay_new(const char *url, int timeout_ms, const char *topic_prefix, unsigned handles,
                     long long pending_ms, struct sl_err *err) __attribute__((warn_unused_result));
void replay_destroy(replay_t *rp);

/* Claims `digest` of source `source` for event `event_id`, remembered for window_ms once
 * settled as written. On REPLAY_FIRST *ticket is held; on REPLAY_SEEN / REPLAY_IN_FLIGHT the
 * other copy's event id is in first_id[size]. -1 with *err when Redis cannot answer (or an id
 * or key is over its bound): nothing is held. */
int replay_claim(replay_t *rp, const char *source, const unsigned char digest[VERIFY_DIGEST_LEN],
                 const char *event_id, long long window_ms, struct replay_ticket *ticket,
                 enum replay_result *result, char *first_id, size_t size, struct sl_err *err)
    __attribute__((warn_unused_result));

/* Settles a held ticket (see the header comment) and releases it; a ticket that is not held
 * is left alone (returns 0). -1 with *err when Redis could not be told: the pending claim
 * expires on its own. */
int replay_settle(replay_t *rp, struct replay_ticket *ticket, bool written, struct sl_err *err);

#endif
