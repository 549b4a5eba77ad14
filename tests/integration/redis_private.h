/*
 * redis_private: a redis-server of the test's own, for tests that kill and restart Redis under
 * a worker (an outage) without touching the shared one the other tests use.
 *
 *   rp_t *r = rp_start("deliver-outage");   // skips the test when redis-server is missing
 *   ... point the worker at rp_url(r) ...
 *   rp_kill(r);                              // SIGKILL: a crash
 *   rp_restart(r);                           // same port, same data
 *   rp_destroy(r);
 *
 * The server runs as a child of the test (SIGKILLed if the test dies first) on a free port,
 * in a fresh directory under <binary dir>/tests, and fsyncs every write to its append-only
 * file before it replies, so a SIGKILL loses nothing it acknowledged, as with a production
 * Redis that persists. Every wait is bounded (RP_START_MS); a server that does not answer in
 * time fails the current test, naming its log. One rp_t is for one thread.
 */
#ifndef REDIS_PRIVATE_H
#define REDIS_PRIVATE_H

#define RP_START_MS  10000 /* until the server answers PING */
#define RP_EXTRA_MAX 8     /* extra redis-server options */

typedef struct rp rp_t;

/* Starts the server; `name` tags its directory. The caller owns the handle (rp_destroy). */
rp_t *rp_start(const char *name);
/* The same with `extra` redis-server options (NULL-terminated, borrowed: they must outlive
 * r), after the defaults so that they override them, e.g. {"--appendonly", "no", NULL}. */
rp_t *rp_start_with(const char *name, const char *const *extra);
/* "redis://127.0.0.1:<port>/0", owned by r. */
const char *rp_url(const rp_t *r);
/* SIGKILL and reap; no-op when it is not running. */
void rp_kill(rp_t *r);
/* Starts it again on the same port and directory (its data comes back from the append-only
 * file); waits until it answers. */
void rp_restart(rp_t *r);
/* Kills it if running and frees r; NULL is a no-op. The directory stays for a look after a
 * failure. */
void rp_destroy(rp_t *r);

#endif
