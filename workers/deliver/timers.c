#include "timers.h"

#include <limits.h>
#include <stdlib.h>

#define TIMERS_INITIAL 64

struct dlv_timers {
    struct dlv_timer **heap;
    size_t n, cap;
};

dlv_timers_t *dlv_timers_new(void)
{
    return calloc(1, sizeof(dlv_timers_t));
}

void dlv_timers_destroy(dlv_timers_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        t->heap[i]->slot = 0;
    free(t->heap);
    free(t);
}

static void place(dlv_timers_t *t, size_t i, struct dlv_timer *tm)
{
    t->heap[i] = tm;
    tm->slot = i + 1;
}

static void sift_up(dlv_timers_t *t, size_t i)
{
    struct dlv_timer *tm = t->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (t->heap[parent]->due_ms <= tm->due_ms)
            break;
        place(t, i, t->heap[parent]);
        i = parent;
    }
    place(t, i, tm);
}

static void sift_down(dlv_timers_t *t, size_t i)
{
    struct dlv_timer *tm = t->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= t->n)
            break;
        if (child + 1 < t->n && t->heap[child + 1]->due_ms < t->heap[child]->due_ms)
            child++;
        if (tm->due_ms <= t->heap[child]->due_ms)
            break;
        place(t, i, t->heap[child]);
        i = child;
    }
    place(t, i, tm);
}

int dlv_timers_arm(dlv_timers_t *t, struct dlv_timer *tm, long long due_ms)
{
    if (tm->slot) {
        size_t i = tm->slot - 1;
        long long old = tm->due_ms;
        tm->due_ms = due_ms;
        if (due_ms < old)
            sift_up(t, i);
        else
            sift_down(t, i);
        return 0;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : TIMERS_INITIAL;
        struct dlv_timer **heap = realloc(t->heap, cap * sizeof(*heap));
        if (!heap)
            return -1;
        t->heap = heap;
        t->cap = cap;
    }
    tm->due_ms = due_ms;
    place(t, t->n++, tm);
    sift_up(t, t->n - 1);
    return 0;
}

void dlv_timers_disarm(dlv_timers_t *t, struct dlv_timer *tm)
{
    if (!tm->slot)
        return;
    size_t i = tm->slot - 1;
    tm->slot = 0;
    struct dlv_timer *last = t->heap[--t->n];
    if (i == t->n)
        return;
    place(t, i, last);
    if (i > 0 && t->heap[(i - 1) / 2]->due_ms > last->due_ms)
        sift_up(t, i);
    else
        sift_down(t, i);
}

bool dlv_timer_armed(const struct dlv_timer *tm)
{
    return tm->slot != 0;
}

struct dlv_timer *dlv_timers_pop_due(dlv_timers_t *t, long long now_ms)
{
    if (t->n == 0 || t->heap[0]->due_ms > now_ms)
        return NULL;
    struct dlv_timer *tm = t->heap[0];
    dlv_timers_disarm(t, tm);
    return tm;
}

long long dlv_timers_next_due(const dlv_timers_t *t)
{
    return t->n ? t->heap[0]->due_ms : LLONG_MAX;
}

size_t dlv_timers_count(const dlv_timers_t *t)
{
    return t->n;
}
