/* sl_live: the main loop's heartbeat, for /healthz. */
#include "sl_live.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct sl_live {
    long long timeout_ms;
    _Atomic long long last_ms; /* monotonic; 0: not armed yet */
};

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* +1 keeps a beat at the clock's origin distinct from "not armed". */
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1;
}

sl_live_t *sl_live_new(long long timeout_ms)
{
    sl_live_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->timeout_ms = timeout_ms;
    atomic_init(&l->last_ms, 0);
    return l;
}

sl_live_t *sl_live_load(const sl_conf_t *conf, const char *section, struct sl_err *err)
{
    long long timeout_ms;
    if (sl_conf_duration_ms(conf, sl_conf_get(sl_conf_root(conf), section), "liveness_timeout",
                            SL_LIVE_DEFAULT_MS, 0, SL_LIVE_MAX_MS, &timeout_ms, err) != 0)
        return NULL;
    sl_live_t *l = sl_live_new(timeout_ms);
    if (!l)
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    return l;
}

void sl_live_beat(sl_live_t *l)
{
    if (l)
        atomic_store_explicit(&l->last_ms, mono_ms(), memory_order_relaxed);
}

bool sl_live_ok(sl_live_t *l, char *why, size_t size)
{
    if (!l || l->timeout_ms == 0)
        return true;
    long long last = atomic_load_explicit(&l->last_ms, memory_order_relaxed);
    long long idle = last ? mono_ms() - last : 0;
    if (idle <= l->timeout_ms)
        return true;
    snprintf(why, size, "the main loop has not turned for %lld ms (liveness_timeout %lld ms)", idle,
             l->timeout_ms);
    return false;
}

void sl_live_destroy(sl_live_t *l)
{
    free(l);
}
