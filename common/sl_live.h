/*
 * sl_live: liveness, for /healthz. A binary's main loop calls sl_live_beat() at every turn; when
 * the last beat is older than the timeout, the loop is stuck (in a call that does not return, a
 * deadlock) and sl_live_ok() says so, so that an orchestrator restarts the process. It says
 * nothing about dependencies: a loop that waits for Kafka or Redis keeps turning (and beating);
 * that is /readyz's business.
 *
 * Liveness is armed by the first beat: start-up (creating clients, Kafka transactions, the first
 * group join) is the readiness probe's to judge, and is bounded by its own timeouts.
 *
 * The timeout is `<section>.liveness_timeout` of the binary's section (validate, transform,
 * route, deliver, audit, deadletter, reconcile, ingress): default 120s, above the longest call a
 * loop makes while a dependency is down (the shared loop's Kafka transaction calls wait up to
 * 60 s); 0 turns the check off.
 *
 * Beats and checks are lock-free and may come from any thread.
 */
#ifndef SL_LIVE_H
#define SL_LIVE_H

#include <stdbool.h>
#include <stddef.h>

#include "sl_conf.h"
#include "sl_err.h"

#define SL_LIVE_DEFAULT_MS 120000
#define SL_LIVE_MAX_MS     3600000

/* The key's row for each binary's section of the pipeline file's key table. */
#define SL_LIVE_CONF_KEY                                                                           \
    {                                                                                              \
        "liveness_timeout", SL_CK_DURATION, "120s",                                                \
            "/healthz answers 503 when the binary's main loop has not turned for this long "       \
            "(stuck in a call, a deadlock); 0: never.",                                            \
            NULL, 0, SL_LIVE_MAX_MS                                                                \
    }

typedef struct sl_live sl_live_t;

/* `timeout_ms` 0: sl_live_ok() is always true. NULL on OOM. The caller owns it. */
sl_live_t *sl_live_new(long long timeout_ms);
/* The same with `<section>.liveness_timeout` of `conf` (conf may be NULL: the default). NULL
 * with *err on a bad value or OOM. */
sl_live_t *sl_live_load(const sl_conf_t *conf, const char *section, struct sl_err *err)
    __attribute__((warn_unused_result));
/* The loop turned. NULL is a no-op. */
void sl_live_beat(sl_live_t *l);
/* Whether the loop is alive; when not, why into `why` (bounded). NULL is alive. */
bool sl_live_ok(sl_live_t *l, char *why, size_t size);
/* NULL is a no-op. */
void sl_live_destroy(sl_live_t *l);

#endif
