/*
 * retry: what follows one delivery attempt, as pure functions (STYLE habit 9: the attempt is
 * classified here, the engine owns the waiting).
 *
 *   2xx                                  delivered
 *   408, 425, 429, 5xx, no answer (0)    retried: timeouts and connection errors have no status
 *   anything else (3xx, other 4xx)       permanent: dead-lettered at once
 *
 * A destination's `status` section moves single codes between retried and permanent (a 409
 * that means "still processing", a 501 that will never work).
 *
 * The schedule: after the n-th failed attempt the next one waits min(max, initial * 2^(n-1)),
 * drawn uniformly from [0, that] with full jitter (AWS "Exponential Backoff And Jitter"), or
 * exactly that without jitter. A Retry-After on 429 or 503 replaces the backoff: the next
 * attempt never comes before the time the destination named. The event is given up (dead
 * letter) when it has had max_attempts attempts, or when the next attempt would come after its
 * max_age, counted from the record's timestamp: waiting past that point cannot help.
 */
#ifndef DLV_RETRY_H
#define DLV_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Status codes a destination may move between retried and permanent, each way. */
#define DLV_STATUS_OVERRIDES_MAX 32
/* Longest Retry-After honoured, in seconds (30 days, max_age's upper bound); more is capped. */
#define DLV_RETRY_AFTER_MAX_S (30LL * 86400)

enum dlv_class { DLV_DELIVERED, DLV_RETRY, DLV_PERMANENT };

struct dlv_status_rules {
    size_t n_retriable, n_permanent;
    int retriable[DLV_STATUS_OVERRIDES_MAX];
    int permanent[DLV_STATUS_OVERRIDES_MAX];
};

struct dlv_retry_policy {
    int max_attempts;     /* >= 1 */
    long long initial_ms; /* >= 1 */
    long long max_ms;     /* >= initial_ms */
    long long max_age_ms; /* >= 1 */
    bool jitter;          /* full jitter */
};

/* `status` is the HTTP status, or 0 when no answer came. `rules` may be NULL. */
enum dlv_class dlv_classify(const struct dlv_status_rules *rules, long status);

/* Whether a Retry-After on this status is honoured (429 and 503, RFC 9110 10.2.3). */
bool dlv_honours_retry_after(long status);

/* Retry-After as delta-seconds or an HTTP-date, relative to `now_unix_ms` (wall clock).
 * Returns 0 with *delay_ms >= 0 (a date in the past is 0; ceilinged to whole ms so that the
 * named second is never anticipated), or -1 when the value is neither. */
int dlv_retry_after_ms(const char *value, long long now_unix_ms, long long *delay_ms);

/* The backoff after `failed` (>= 1) failed attempts; `rnd` is a uniform 64-bit random number
 * (used only with jitter). */
long long dlv_backoff_ms(const struct dlv_retry_policy *p, int failed, uint64_t rnd);

enum dlv_next { DLV_NEXT_RETRY, DLV_NEXT_GIVE_UP_ATTEMPTS, DLV_NEXT_GIVE_UP_AGE };

/* After a retriable failure: retry in *delay_ms, or give up. `attempts` made so far (>= 1),
 * `retry_after_ms` the destination's Retry-After (< 0: none), `age_ms` the event's age now. */
enum dlv_next dlv_retry_next(const struct dlv_retry_policy *p, int attempts,
                             long long retry_after_ms, long long age_ms, uint64_t rnd,
                             long long *delay_ms);

#endif
