/*
 * sl_redis: the one Redis client every stage uses (hiredis 0.14.1, synchronous API).
 *
 * What it is for: dedup keys (validate), rate-limit buckets, fleet-wide holds and the delivery
 * ledger (deliver). Everything is a short command or one Lua script under a per-command
 * deadline, so a stage can turn any failure into "retry later" without ever hanging.
 *
 * Threads: a handle wraps one hiredis context, which is not thread-safe. Use one handle per
 * thread (or guard it with your own lock); never share one between threads. A script
 * (sl_redis_script_t) is immutable once made and may be shared.
 *
 * Connections: sl_redis_new() only parses the URL; the first call connects (so a stage starts
 * while Redis is down). Every connection gets TCP keepalive, the command deadline as its socket
 * send/receive timeout, AUTH and SELECT as the URL says. Any connection failure, timeout or I/O
 * error drops the connection and the next call connects again (with AUTH and SELECT again).
 * There is no back-off inside: the caller's "retry later" is the back-off.
 *
 * Errors (every call returns 0 or -1 with *err):
 *   - cannot connect, no answer within the deadline, connection lost: SL_ERR_UNAVAILABLE,
 *     retriable. The command may or may not have run on the server.
 *   - an error reply: SL_ERR_INVALID, not retriable, with Redis's message; except LOADING, BUSY,
 *     MASTERDOWN, TRYAGAIN, CLUSTERDOWN, READONLY (a demoted master after a failover: the
 *     connection is also dropped so that the next one finds the new master), NOREPLICAS and OOM
 *     (maxmemory reached), which are SL_ERR_UNAVAILABLE and retriable: Redis will take the same
 *     command later, and dead-lettering events meanwhile would be wrong.
 *   - wrong credentials or missing permissions (AUTH or SELECT refused, NOAUTH, WRONGPASS,
 *     NOPERM): SL_ERR_CONFIG, fatal, not retriable. No event can succeed until an operator
 *     acts, so a stage should stop instead of dead-lettering everything.
 * Messages name the endpoint ("redis 127.0.0.1:6379: ...") and never contain the password.
 *
 * The process must ignore SIGPIPE (sl_signal_install() does): hiredis writes with write(2),
 * and a write to a connection that Redis has closed must be an error return, not a death.
 */
#ifndef SL_REDIS_H
#define SL_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "sl_conf.h"
#include "sl_err.h"
#include "sl_metrics.h"

#define SL_REDIS_DEFAULT_URL "redis://127.0.0.1:6379/0"
/* Longest URL accepted, and longest user name or password (after percent-decoding). */
#define SL_REDIS_URL_MAX  2048
#define SL_REDIS_CRED_MAX 512
/* Commands in one sl_redis_pipeline() call, and keys + arguments of one script call. */
#define SL_REDIS_PIPELINE_MAX    4096
#define SL_REDIS_SCRIPT_ARGS_MAX 64
/* Largest Lua source of a script. */
#define SL_REDIS_SCRIPT_MAX (64 * 1024)
/* Longest TTL or hold of the helpers below (365 days): more is a unit mistake. */
#define SL_REDIS_TTL_MAX_MS (365LL * 24 * 3600 * 1000)

typedef struct sl_redis sl_redis_t;
typedef struct sl_redis_script sl_redis_script_t;

/* The `redis` section of the pipeline file: *url is the file's `url`, else SLUICE_REDIS_URL,
 * else SL_REDIS_DEFAULT_URL; *timeout_ms is `timeout` (default 1s). The URL is checked here,
 * so a bad one fails at start-up naming the file and line (or SLUICE_REDIS_URL). `conf` may
 * be NULL (defaults only). *url is borrowed from `conf` or the environment. */
int sl_redis_settings(const sl_conf_t *conf, const char **url, int *timeout_ms, struct sl_err *err);

/* Longest key prefix (redis.key_prefix). */
#define SL_REDIS_KEY_PREFIX_MAX 128

/* The prefix of every key sluice keeps in Redis (dedup claims, the delivery ledger, rate-limit
 * buckets, holds, the lookup cache): the `redis` section's `key_prefix`, else `topic_prefix`
 * (the pipeline's kafka.topic_prefix), so that pipelines sharing a Redis never meet. Set it
 * when two pipelines with one topic prefix (on two Kafka clusters) share a Redis. 1 to
 * SL_REDIS_KEY_PREFIX_MAX letters, digits, '.', '_' and '-': no ':', which separates what
 * follows, so no two prefixes make one key. *prefix is borrowed from `conf` or topic_prefix.
 * A bad one fails naming the file and line. `conf` may be NULL. */
int sl_redis_key_prefix(const sl_conf_t *conf, const char *topic_prefix, const char **prefix,
                        struct sl_err *err) __attribute__((warn_unused_result));

/* A handle for `url`:
 *     redis://[[user]:password@]host[:port][/db]
 * host is a name, an IPv4 address or a bracketed IPv6 address; port defaults to 6379 and db
 * to 0. With a user, AUTH user password (Redis 6 ACL); with only a password, AUTH password.
 * User and password are percent-decoded: write '@', ':', '/', '?', '#' and '%' in them as
 * %40, %3A, %2F, %3F, %23, %25. No TLS (rediss://), no unix sockets, no query parameters.
 * `timeout_ms` (> 0) bounds the connect and every send and receive of a command (not the
 * host name lookup, which is getaddrinfo's own: in a cluster, the local resolver). Does not
 * connect. The caller owns the handle (sl_redis_destroy). */
sl_redis_t *sl_redis_new(const char *url, int timeout_ms, struct sl_err *err)
    __attribute__((warn_unused_result));
/* Closes the connection and wipes the credentials. NULL is a no-op. */
void sl_redis_destroy(sl_redis_t *r);

/* ---- commands ---- */

/* Runs one command, binary safe (`argvlen` NULL means every argument is a C string). On
 * success *reply is a reply that is not an error, owned by the caller (freeReplyObject). On
 * failure *reply is NULL. */
int sl_redis_cmd(sl_redis_t *r, redisReply **reply, int argc, const char **argv,
                 const size_t *argvlen, struct sl_err *err) __attribute__((warn_unused_result));

struct sl_redis_command {
    int argc;
    const char **argv;
    const size_t *argvlen; /* NULL: C strings */
};

/* Sends `n` (<= SL_REDIS_PIPELINE_MAX) commands in one round trip and reads their replies.
 * Returns 0 when every reply arrived: replies[i] is the i-th reply, which may be an error
 * reply (check each one with sl_redis_reply_check()); the caller frees them
 * (sl_redis_replies_free). On a transport failure returns -1 with every replies[i] NULL; any
 * prefix of the commands may have run, so batch only what is safe to send again. */
int sl_redis_pipeline(sl_redis_t *r, size_t n, const struct sl_redis_command *cmds,
                      redisReply **replies, struct sl_err *err) __attribute__((warn_unused_result));
/* 0 when `reply` is not an error reply; otherwise -1 with *err classified as above. */
int sl_redis_reply_check(const sl_redis_t *r, const redisReply *reply, struct sl_err *err);
/* Frees replies[0..n) and sets each to NULL. */
void sl_redis_replies_free(redisReply **replies, size_t n);

/* ---- Lua scripts ---- */

/* A script from its source (copied), with its SHA1 computed locally. The caller owns it
 * (sl_redis_script_destroy); it may be shared between threads and handles. */
sl_redis_script_t *sl_redis_script_new(const char *lua, struct sl_err *err)
    __attribute__((warn_unused_result));
void sl_redis_script_destroy(sl_redis_script_t *s);
/* The 40 hex digits of the SHA1 that EVALSHA uses. */
const char *sl_redis_script_sha(const sl_redis_script_t *s);

/* Runs `s` with EVALSHA. The first `numkeys` of argv are KEYS, the rest ARGV (argc <=
 * SL_REDIS_SCRIPT_ARGS_MAX). When Redis does not have the script (NOSCRIPT: after a restart,
 * a failover or SCRIPT FLUSH), runs it once with EVAL, which also caches it, so later calls
 * are EVALSHA again. *reply as for sl_redis_cmd(). */
int sl_redis_script_run(sl_redis_t *r, const sl_redis_script_t *s, redisReply **reply, int numkeys,
                        int argc, const char **argv, const size_t *argvlen, struct sl_err *err)
    __attribute__((warn_unused_result));

/* ---- domain helpers: each one round trip, atomic on the server ---- */

enum sl_redis_claim {
    SL_REDIS_CLAIM_FIRST,    /* the key did not exist: it now holds event_id */
    SL_REDIS_CLAIM_SAME,     /* the key holds this same event_id */
    SL_REDIS_CLAIM_DUPLICATE /* the key holds another event id */
};

/* Dedup claim: SET key event_id NX PX ttl_ms, then compare.
 *   FIRST: nobody had claimed `key`; this event now holds it for ttl_ms. Process it.
 *   SAME: `key` is held by this very event id: the same Kafka record processed again after a
 *         crash or an aborted transaction (or a retry of this call after a timeout, when the
 *         first SET did run). NOT a duplicate: process it again. The TTL is left as it was.
 *   DUPLICATE: `key` is held by another event id: the sender retried the same business event
 *         (a provider's webhook retry). Record it as a duplicate; do not forward it.
 * `key` names the business event (source + idempotency key); `event_id` is the id that
 * ingress assigned to this delivery of it (ce_id). 0 < ttl_ms <= SL_REDIS_TTL_MAX_MS.
 * `old_key` (NULL: none) is the same event's key in an earlier key format, read only, for the
 * window after a change of format: when it exists, its value decides (SAME when it holds
 * event_id, else DUPLICATE) and nothing is claimed; when it does not, `key` is claimed. */
int sl_redis_dedup_claim(sl_redis_t *r, const char *key, const char *old_key, const char *event_id,
                         long long ttl_ms, enum sl_redis_claim *result, struct sl_err *err)
    __attribute__((warn_unused_result));

/* Token bucket shared by every holder of `key` (all replicas), on the Redis server's clock:
 * `capacity` tokens at most, refilled at `per_second` tokens per second, and a take of `cost`
 * tokens either succeeds whole (*allowed true) or takes nothing (*allowed false,
 * *retry_after_ms > 0: when `cost` tokens will be there, if nobody else takes them first).
 * 1 <= cost <= capacity; per_second > 0; a full refill must take at most
 * SL_REDIS_TTL_MAX_MS. The key expires once the bucket would be full again. A take that
 * fails with a timeout may have taken its tokens: limits err on the safe side. */
int sl_redis_bucket_take(sl_redis_t *r, const char *key, long long capacity, double per_second,
                         long long cost, bool *allowed, long long *retry_after_ms,
                         struct sl_err *err) __attribute__((warn_unused_result));

/* A fleet-wide pause (after a 429 with Retry-After, say): holds `key` for hold_ms from now
 * (server clock), keeping the later of the existing and the new deadline. 0 < hold_ms <=
 * SL_REDIS_TTL_MAX_MS. */
int sl_redis_hold_set(sl_redis_t *r, const char *key, long long hold_ms, struct sl_err *err)
    __attribute__((warn_unused_result));
/* *remaining_ms: how long the hold on `key` lasts still; 0 when there is none. */
int sl_redis_hold_get(sl_redis_t *r, const char *key, long long *remaining_ms, struct sl_err *err)
    __attribute__((warn_unused_result));

/* Delivery ledger: mark `key` (event id + destination) delivered for ttl_ms, and ask whether
 * it was. 0 < ttl_ms <= SL_REDIS_TTL_MAX_MS. */
int sl_redis_ledger_mark(sl_redis_t *r, const char *key, long long ttl_ms, struct sl_err *err)
    __attribute__((warn_unused_result));
int sl_redis_ledger_seen(sl_redis_t *r, const char *key, bool *seen, struct sl_err *err)
    __attribute__((warn_unused_result));

/* ---- persistence ---- */

/* Whether the server keeps its data over a restart, as it reports it (CONFIG GET appendonly,
 * CONFIG GET save). Dedup claims and the delivery ledger live only in Redis: without
 * persistence a Redis restart forgets them (README, "When Redis loses its data"). */
enum sl_redis_persist {
    SL_REDIS_PERSIST_UNKNOWN = -1, /* not asked yet, or CONFIG refused (managed Redis, ACL) */
    SL_REDIS_PERSIST_NONE = 0,     /* appendonly no and save "" */
    SL_REDIS_PERSIST_ON = 1,       /* an append-only file or RDB snapshots */
};

/* Asks the server. A refused CONFIG (an error reply: renamed or disabled command, ACL) is not
 * an error: *out is UNKNOWN. -1 with *err (retriable) only when Redis cannot be reached. */
int sl_redis_persistence(sl_redis_t *r, enum sl_redis_persist *out, struct sl_err *err)
    __attribute__((warn_unused_result));

/* Reports the persistence of r's server from the process that owns r: registers the gauge
 * sluice_redis_persistence (1 on, 0 none, -1 unknown; -1 until known) in `m`, then checks at
 * once when Redis answers. Call once, at start-up (`m` must outlive r). */
void sl_redis_persistence_watch(sl_redis_t *r, sl_metrics_t *m);
/* Checks once, if not done yet (cheap afterwards: call it after any call that reached Redis):
 * sets the gauge, logs a warning when there is no persistence (info otherwise), and sets the
 * readiness note "redis" of the registry (shown in /readyz, which stays ready). */
void sl_redis_persistence_check(sl_redis_t *r);

#endif
