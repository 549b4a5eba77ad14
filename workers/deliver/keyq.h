/*
 * keyq: per-key hold-back for `ordering: per-key`. Each partition key has a FIFO of the events
 * of that key that the engine holds; only the head may be in flight or waiting on a retry, and
 * the next one moves up when the head reaches its final outcome (delivered or dead-lettered).
 * A key that fails holds back only its own later events; every other key proceeds.
 *
 *   key "cus_A":  [A1 retrying] -> A2 -> A3        (A2, A3 wait)
 *   key "cus_B":  [B1 in flight]                    (B proceeds)
 *
 * The key is the Kafka record key, compared as bytes; events without a key are not ordered
 * and never enter a keyq. A key's entry exists only while one of its events is held, so the
 * table is bounded by the events in memory. Nodes are embedded in the events (intrusive); the
 * table owns copies of the keys.
 */
#ifndef DLV_KEYQ_H
#define DLV_KEYQ_H

#include <stdbool.h>
#include <stddef.h>

/* Embedded in the queued item; zero-initialise it. Do not touch the members. */
struct dlv_keyq_node {
    struct dlv_keyq_node *prev, *next;
    struct keyq_entry *entry; /* NULL while not queued */
};

typedef struct dlv_keyq dlv_keyq_t;

dlv_keyq_t *dlv_keyq_new(void);
/* Frees the table and the key copies; queued nodes are left as they are. NULL is a no-op. */
void dlv_keyq_destroy(dlv_keyq_t *q);

/* Appends `node` to the FIFO of `key` (len >= 1 bytes). Returns 1 when it is the head (no
 * earlier event of its key is held), 0 when it waits behind one, -1 when out of memory. */
int dlv_keyq_push(dlv_keyq_t *q, struct dlv_keyq_node *node, const void *key, size_t len)
    __attribute__((warn_unused_result));
/* Removes `node` from its FIFO, wherever it is. Returns the node that became the head because
 * of it (the next one, when `node` was the head), else NULL. */
struct dlv_keyq_node *dlv_keyq_remove(dlv_keyq_t *q, struct dlv_keyq_node *node);
bool dlv_keyq_is_head(const struct dlv_keyq_node *node);
bool dlv_keyq_queued(const struct dlv_keyq_node *node);
/* Keys with at least one event held. */
size_t dlv_keyq_keys(const dlv_keyq_t *q);

#endif
