#include "keyq.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KEYQ_INITIAL_BUCKETS 64

struct keyq_entry {
    struct keyq_entry *chain; /* next entry in the bucket */
    uint64_t hash;
    struct dlv_keyq_node *head, *tail;
    size_t len;
    unsigned char key[]; /* len bytes */
};

struct dlv_keyq {
    struct keyq_entry **buckets;
    size_t n_buckets; /* a power of two */
    size_t n;
};

/* FNV-1a: keys are short (customer ids, account numbers) and not chosen to collide with each
 * other by anyone who could gain from it; the chains are bounded by the events held anyway. */
static uint64_t hash_bytes(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

dlv_keyq_t *dlv_keyq_new(void)
{
    dlv_keyq_t *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->buckets = calloc(KEYQ_INITIAL_BUCKETS, sizeof(*q->buckets));
    if (!q->buckets) {
        free(q);
        return NULL;
    }
    q->n_buckets = KEYQ_INITIAL_BUCKETS;
    return q;
}

void dlv_keyq_destroy(dlv_keyq_t *q)
{
    if (!q)
        return;
    for (size_t b = 0; b < q->n_buckets; b++) {
        struct keyq_entry *e = q->buckets[b];
        while (e) {
            struct keyq_entry *next = e->chain;
            for (struct dlv_keyq_node *n = e->head; n; n = n->next)
                n->entry = NULL;
            free(e);
            e = next;
        }
    }
    free(q->buckets);
    free(q);
}

/* Doubles the table when it holds more keys than buckets; a failure only costs speed. */
static void maybe_grow(dlv_keyq_t *q)
{
    if (q->n <= q->n_buckets)
        return;
    size_t nb = q->n_buckets * 2;
    struct keyq_entry **buckets = calloc(nb, sizeof(*buckets));
    if (!buckets)
        return;
    for (size_t b = 0; b < q->n_buckets; b++) {
        struct keyq_entry *e = q->buckets[b];
        while (e) {
            struct keyq_entry *next = e->chain;
            e->chain = buckets[e->hash & (nb - 1)];
            buckets[e->hash & (nb - 1)] = e;
            e = next;
        }
    }
    free(q->buckets);
    q->buckets = buckets;
    q->n_buckets = nb;
}

int dlv_keyq_push(dlv_keyq_t *q, struct dlv_keyq_node *node, const void *key, size_t len)
{
    uint64_t h = hash_bytes(key, len);
    struct keyq_entry *e = q->buckets[h & (q->n_buckets - 1)];
    while (e && !(e->hash == h && e->len == len && memcmp(e->key, key, len) == 0))
        e = e->chain;
    if (!e) {
        e = malloc(sizeof(*e) + len);
        if (!e)
            return -1;
        e->hash = h;
        e->len = len;
        e->head = e->tail = NULL;
        memcpy(e->key, key, len);
        e->chain = q->buckets[h & (q->n_buckets - 1)];
        q->buckets[h & (q->n_buckets - 1)] = e;
        q->n++;
        maybe_grow(q);
    }
    node->entry = e;
    node->next = NULL;
    node->prev = e->tail;
    if (e->tail)
        e->tail->next = node;
    else
        e->head = node;
    e->tail = node;
    return e->head == node ? 1 : 0;
}

static void drop_entry(dlv_keyq_t *q, struct keyq_entry *e)
{
    struct keyq_entry **p = &q->buckets[e->hash & (q->n_buckets - 1)];
    while (*p != e)
        p = &(*p)->chain;
    *p = e->chain;
    q->n--;
    free(e);
}

struct dlv_keyq_node *dlv_keyq_remove(dlv_keyq_t *q, struct dlv_keyq_node *node)
{
    struct keyq_entry *e = node->entry;
    if (!e)
        return NULL;
    bool was_head = e->head == node;
    if (node->prev)
        node->prev->next = node->next;
    else
        e->head = node->next;
    if (node->next)
        node->next->prev = node->prev;
    else
        e->tail = node->prev;
    node->prev = node->next = NULL;
    node->entry = NULL;
    if (!e->head) {
        drop_entry(q, e);
        return NULL;
    }
    return was_head ? e->head : NULL;
}

bool dlv_keyq_is_head(const struct dlv_keyq_node *node)
{
    return node->entry && node->entry->head == node;
}

bool dlv_keyq_queued(const struct dlv_keyq_node *node)
{
    return node->entry != NULL;
}

size_t dlv_keyq_keys(const dlv_keyq_t *q)
{
    return q->n;
}
