/*
 * timers: a binary min-heap of deadlines (monotonic ms), for the retries scheduled in memory.
 * One heap for the whole engine: arming, disarming and taking the earliest are O(log n), so
 * thousands of events waiting on their backoff cost nothing while they wait, and no topic per
 * delay step is needed.
 *
 * A timer is embedded in its owner (container_of recovers it) and never allocated here; the
 * heap only holds pointers, and grows as needed (its size is bounded by the events the engine
 * holds, which are bounded).
 */
#ifndef DLV_TIMERS_H
#define DLV_TIMERS_H

#include <stdbool.h>
#include <stddef.h>

/* Embedded in the owner; zero-initialise it. Do not touch the members: use the functions. */
struct dlv_timer {
    long long due_ms;
    size_t slot; /* 1 + index in the heap; 0 while not armed */
};

typedef struct dlv_timers dlv_timers_t;

dlv_timers_t *dlv_timers_new(void);
/* Frees the heap; the timers (owned by others) are left as they are. NULL is a no-op. */
void dlv_timers_destroy(dlv_timers_t *t);

/* Arms `tm` for due_ms, or moves it there when already armed. -1 when out of memory. */
int dlv_timers_arm(dlv_timers_t *t, struct dlv_timer *tm, long long due_ms)
    __attribute__((warn_unused_result));
/* Disarms `tm`; nothing happens when it is not armed. */
void dlv_timers_disarm(dlv_timers_t *t, struct dlv_timer *tm);
bool dlv_timer_armed(const struct dlv_timer *tm);

/* The earliest timer due at or before now_ms, disarmed; NULL when none is due. */
struct dlv_timer *dlv_timers_pop_due(dlv_timers_t *t, long long now_ms);
/* When the earliest timer is due; LLONG_MAX when none is armed. */
long long dlv_timers_next_due(const dlv_timers_t *t);
size_t dlv_timers_count(const dlv_timers_t *t);

#endif
