/*
 * offsets: which offset of one partition may be committed, while its records finish out of
 * order (many requests in flight, retries waiting, one key held back behind another).
 *
 *   consumed:   100  101  102  103  104  105
 *   finished:    x         x    x         x
 *   commit point = 101 (the lowest unfinished offset): after a crash the group resumes there,
 *   so nothing unfinished is skipped; 100 is forgotten, 102..105 stay tracked until 101 ends.
 *
 * Offsets are tracked in consumption order (increasing; gaps from transaction markers or
 * compaction are fine) in a ring that grows up to the capacity given at creation. A record
 * that would go past it is refused, so a partition whose oldest record is stuck (a key retrying
 * for hours) stops taking records after `capacity` more: the engine pauses it and lag shows.
 * Finishing is a binary search; the finished prefix is dropped at once.
 */
#ifndef DLV_OFFSETS_H
#define DLV_OFFSETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dlv_offsets dlv_offsets_t;

/* At most `capacity` (>= 1) offsets tracked at once. NULL when out of memory. */
dlv_offsets_t *dlv_offsets_new(size_t capacity);
void dlv_offsets_destroy(dlv_offsets_t *o);

/* Tracks `offset` as unfinished. Returns 0; -1 when it is not above every offset added so far
 * (a record seen twice) or the ring is full (or cannot grow). */
int dlv_offsets_add(dlv_offsets_t *o, int64_t offset) __attribute__((warn_unused_result));
/* Marks a tracked offset finished. Returns 0, or -1 when it is not tracked. */
int dlv_offsets_finish(dlv_offsets_t *o, int64_t offset);
/* The offset to commit: the lowest unfinished one, or one past the last added when all are
 * finished; -1 before anything was added. */
int64_t dlv_offsets_commit_point(const dlv_offsets_t *o);
/* Offsets tracked: the unfinished ones and the finished ones behind the lowest unfinished. */
size_t dlv_offsets_held(const dlv_offsets_t *o);
/* Whether one more offset fits. */
bool dlv_offsets_full(const dlv_offsets_t *o);

#endif
