#include "offsets.h"

#include <stdbool.h>
#include <stdlib.h>

#define OFFSETS_INITIAL 64

struct entry {
    int64_t offset;
    bool done;
};

struct dlv_offsets {
    struct entry *ring;
    size_t cap, max; /* current and largest ring size */
    size_t head, n;  /* oldest entry, entries held */
    int64_t next;    /* one past the last offset added; -1 before the first */
};

dlv_offsets_t *dlv_offsets_new(size_t capacity)
{
    if (capacity == 0)
        return NULL;
    dlv_offsets_t *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->max = capacity;
    o->cap = capacity < OFFSETS_INITIAL ? capacity : OFFSETS_INITIAL;
    o->ring = calloc(o->cap, sizeof(*o->ring));
    if (!o->ring) {
        free(o);
        return NULL;
    }
    o->next = -1;
    return o;
}

void dlv_offsets_destroy(dlv_offsets_t *o)
{
    if (!o)
        return;
    free(o->ring);
    free(o);
}

static struct entry *at(const dlv_offsets_t *o, size_t i)
{
    return &o->ring[(o->head + i) % o->cap];
}

/* Doubles the ring (up to max), unrolling it so that the oldest entry is at index 0. */
static int grow(dlv_offsets_t *o)
{
    size_t cap = o->cap * 2 > o->max ? o->max : o->cap * 2;
    struct entry *ring = malloc(cap * sizeof(*ring));
    if (!ring)
        return -1;
    for (size_t i = 0; i < o->n; i++)
        ring[i] = *at(o, i);
    free(o->ring);
    o->ring = ring;
    o->cap = cap;
    o->head = 0;
    return 0;
}

bool dlv_offsets_full(const dlv_offsets_t *o)
{
    return o->n >= o->max;
}

int dlv_offsets_add(dlv_offsets_t *o, int64_t offset)
{
    if (offset < 0 || (o->next >= 0 && offset < o->next) || o->n >= o->max)
        return -1;
    if (o->n == o->cap && grow(o) != 0)
        return -1;
    *at(o, o->n) = (struct entry){offset, false};
    o->n++;
    o->next = offset + 1;
    return 0;
}

int dlv_offsets_finish(dlv_offsets_t *o, int64_t offset)
{
    size_t lo = 0, hi = o->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (at(o, mid)->offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == o->n || at(o, lo)->offset != offset || at(o, lo)->done)
        return -1;
    at(o, lo)->done = true;
    while (o->n > 0 && at(o, 0)->done) {
        o->head = (o->head + 1) % o->cap;
        o->n--;
    }
    return 0;
}

int64_t dlv_offsets_commit_point(const dlv_offsets_t *o)
{
    return o->n > 0 ? at(o, 0)->offset : o->next;
}

size_t dlv_offsets_held(const dlv_offsets_t *o)
{
    return o->n;
}
