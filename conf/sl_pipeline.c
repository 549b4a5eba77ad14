#include "sl_pipeline.h"

#include "sl_crashguard.h"
#include "sl_live.h"
#include "sl_loop.h"
#include "sl_redis.h"

#include <stdlib.h>
#include <string.h>

/* ---- ingress and sources ---- */

static const char *const verify_schemes[] = {
    "stripe", "github", "standard-webhooks", "hmac-sha256", "api-key", "none", NULL};
static const char *const encodings[] = {"hex", "base64", NULL};
static const char *const ce_modes[] = {"structured", "binary", NULL};

static const struct sl_conf_key verify_keys[] = {
    {"scheme", SL_CK_ENUM, NULL,
     "How requests from this source prove who sent them. stripe, standard-webhooks: HMAC over a "
     "timestamp and the body (replays refused outside tolerance). github, hmac-sha256: HMAC over "
     "the body only, no timestamp: a captured request verifies forever, so set replay_guard. "
     "api-key: a key, nothing signed. none: trusted networks only.",
     NULL, 0, 0, verify_schemes, true},
    {"secret", SL_CK_STRINGS, NULL,
     "Signing secret, or a list of secrets that are valid at once during a rotation. Use "
     "${VAR}: never write a secret in the file."},
    {"key_hashes", SL_CK_STRINGS, NULL,
     "api-key: hex SHA-256 hashes of the accepted keys (Authorization: Bearer or X-Api-Key)."},
    {"header", SL_CK_STRING, NULL, "hmac-sha256: the header that carries the signature."},
    {"prefix", SL_CK_STRING, NULL, "hmac-sha256: a prefix before the signature, e.g. sha256=."},
    {"encoding", SL_CK_ENUM, "hex", "hmac-sha256: how the signature is encoded.", NULL, 0, 0,
     encodings},
    {"tolerance", SL_CK_DURATION, "5m",
     "stripe, standard-webhooks: how far a signed timestamp may be from now, either way.", NULL,
     1000, 86400000},
    {"replay_guard", SL_CK_DURATION, NULL,
     "stripe, github, standard-webhooks, hmac-sha256: remember each verified request's signed "
     "content this long (in Redis, as a SHA-256) and write the same signed request only once: "
     "a repeat gets the first one's 202 without a new record, one racing the first gets 503. "
     "github and hmac-sha256 sign no timestamp, so without a guard a captured request can be "
     "replayed forever (with a new delivery header). Redis down: 503 + Retry-After (fail "
     "closed). Unset: no guard.",
     NULL, 1000, 30LL * 86400000},
    {NULL},
};

static const struct sl_conf_key source_keys[] = {
    {"verify", SL_CK_SECTION, NULL, "Inbound verification.", verify_keys, 0, 0, NULL, true},
    {"cloudevents", SL_CK_ENUM, "structured",
     "CloudEvents modes a signing source (stripe, github, standard-webhooks, hmac-sha256) "
     "accepts. structured: binary mode (ce-* headers) is refused with 400 unsigned_attributes, "
     "because no signature covers headers; id and type come from the signed body or the "
     "provider's headers. binary: ce-* headers set the attributes as sent - RISK: anyone holding "
     "one signed body can resend it under new ids and types (the idempotency key still comes "
     "from event_id when set; add verify.replay_guard). api-key and none always accept both.",
     NULL, 0, 0, ce_modes},
    {"event_id", SL_CK_STRING, NULL,
     "Where the source's own event id is: a JSON Pointer into the body (/id) or header:Name. "
     "It is the idempotency key for dedup; once set, a request without it is a 400. Prefer a "
     "pointer: no scheme signs headers (standard-webhooks' webhook-id excepted)."},
    {"event_type", SL_CK_STRING, NULL,
     "Where the event type is: a JSON Pointer or header:Name. Without it the type is "
     "<source>.event."},
    {"partition_key", SL_CK_STRING, NULL,
     "JSON Pointer or header:Name of the value that orders events (the Kafka record key). "
     "Without it, or when a request has none, the idempotency key."},
    {"schemas", SL_CK_STRING_MAP, NULL,
     "JSON Schema per event type (paths under schema_dir); \"*\" is the fallback."},
    {"require_schema", SL_CK_BOOL, "false",
     "Dead-letter events whose type has no schema (and no \"*\" fallback)."},
    {"dedup", SL_CK_BOOL, "true",
     "Drop (as duplicate) a later event with the same idempotency key within dedup.window. "
     "false for a source whose events carry no id of their own: ingress then makes a new key "
     "per request, and each would only cost a Redis key."},
    {"shed", SL_CK_BOOL, "false",
     "While ingress.admission says the pipeline is behind, answer this source's requests 429 "
     "with Retry-After (for providers that retry, such as Stripe or GitHub); a source that "
     "cannot wait keeps false and is always accepted."},
    {NULL},
};

static const struct sl_conf_key ingress_admission_keys[] = {
    {"max_lag", SL_CK_INT, NULL,
     "Records validate's consumer group may have still to consume (read from the broker every "
     "2 s, off the request path); above it, sources with `shed: true` get 429. Unset: no "
     "admission control. Broker unreachable for that read: every request is admitted.",
     NULL, 0, 1000000000000LL},
    {"retry_after", SL_CK_DURATION, "30s", "The Retry-After of a shed request (whole seconds).",
     NULL, 1000, 3600000},
    {NULL},
};

static const struct sl_conf_key ingress_keys[] = {
    {"listen", SL_CK_STRING, "0.0.0.0:8080", "Address of the public HTTP listener."},
    {"max_body_bytes", SL_CK_SIZE, "1MiB",
     "Largest accepted request body (413 above). With 32 KiB for the record's key and headers it "
     "must fit in kafka.max_message_bytes.",
     NULL, 1, 64 * 1024 * 1024},
    {"request_timeout", SL_CK_DURATION, "10s",
     "Deadline for Kafka to acknowledge a request's event; 503 with Retry-After after it.", NULL,
     100, 300000},
    {"idle_timeout", SL_CK_DURATION, "15s",
     "A connection silent for this long is closed (slow clients cannot hold slots).", NULL, 1000,
     3600000},
    {"read_timeout", SL_CK_DURATION, "10s",
     "Time a client has to send a request's headers, and again its body, however it trickles "
     "them; past it the connection is closed (the slowloris guard).",
     NULL, 1000, 3600000},
    {"max_connections", SL_CK_INT, "1000", "Open connections at most.", NULL, 1, 100000},
    {"max_connections_per_ip", SL_CK_INT, "100",
     "Open connections per client address at most (more are closed at once, and logged at most "
     "once a second); 0 = no limit, for a proxy or load balancer in front that connects from "
     "few addresses.",
     NULL, 0, 100000},
    {"admission", SL_CK_SECTION, NULL,
     "Admission control: shed the requests of sources with `shed: true` while validate's "
     "consumer lag is over a bound.",
     ingress_admission_keys},
    {"threads", SL_CK_INT, "2",
     "HTTP worker threads (at least 2: libmicrohttpd 0.9.75's single-thread mode stalls "
     "replies when many connections are open).",
     NULL, 2, 64},
    SL_LIVE_CONF_KEY,
    {NULL},
};

/* ---- validate ---- */

static const struct sl_conf_key dedup_keys[] = {
    {"window", SL_CK_DURATION, "72h",
     "How long a (source, idempotency key) pair is remembered; providers retry for days.", NULL,
     1000, 30LL * 86400000},
    {NULL},
};

/* ---- transform and route ---- */

static const char *const lookup_types[] = {"redis", "http", NULL};
static const char *const on_missing_modes[] = {"fail", "null", NULL};

/* One enrichment lookup of a transform rule (workers/transform/lookup.h has the semantics). */
static const struct sl_conf_key lookup_keys[] = {
    {"name", SL_CK_STRING, NULL,
     "The member of the mapping's input `.lookups` that holds the result (letters, digits, _).",
     NULL, 0, 0, NULL, true},
    {"type", SL_CK_ENUM, NULL,
     "redis: GET key, or HGET key field; http: GET url, a JSON answer cached in Redis.", NULL, 0, 0,
     lookup_types, true},
    {"key", SL_CK_STRING, NULL,
     "redis: jq giving the key (a string or integer; null: nothing to look up, a miss)."},
    {"field", SL_CK_STRING, NULL, "redis: jq giving the hash field (HGET); without it, GET."},
    {"json", SL_CK_BOOL, "false", "redis: the value is JSON text to parse, not a plain string."},
    {"url", SL_CK_STRING, NULL,
     "http: jq giving the URL, http:// or https:// (null: nothing to look up, a miss)."},
    {"headers", SL_CK_STRING_MAP, NULL,
     "http: request headers, e.g. Authorization (use ${VAR} for credentials)."},
    {"timeout", SL_CK_DURATION, "2s",
     "http: deadline of the whole request; past it the event is retried later.", NULL, 10, 30000},
    {"cache_ttl", SL_CK_DURATION, "5m",
     "http: how long an answer is kept in Redis and reused; 0: no cache (Redis not used).", NULL, 0,
     7LL * 86400000},
    {"max_bytes", SL_CK_SIZE, "256KiB",
     "http: largest answer accepted; a larger one dead-letters the event.", NULL, 1,
     16 * 1024 * 1024},
    {NULL},
};

static const struct sl_conf_key transform_keys[] = {
    {"name", SL_CK_STRING, NULL, "Rule name, for logs, metrics and dead letters.", NULL, 0, 0, NULL,
     true},
    {"when", SL_CK_STRING, "true", "jq predicate over the event."},
    {"lookups", SL_CK_LIST_OF, NULL,
     "Enrichment, in order, once the rule matched: each result goes into `.lookups.<name>` of "
     "the mapping's input (and of the later lookups' expressions).",
     lookup_keys},
    {"on_missing", SL_CK_ENUM, "fail",
     "A lookup that finds nothing (Redis nil, HTTP 404/410, a null key or URL): fail "
     "dead-letters the event, null (plain or quoted) goes on with null.",
     NULL, 0, 0, on_missing_modes},
    {"jq", SL_CK_STRING, NULL,
     "jq program whose one output is {type, data}: the event's new type and data.", NULL, 0, 0,
     NULL, true},
    {"schema", SL_CK_STRING, NULL,
     "Canonical JSON Schema (under schema_dir) the output data must satisfy; a mismatch is a "
     "dead letter."},
    {NULL},
};

static const struct sl_conf_key route_keys[] = {
    {"name", SL_CK_STRING, NULL, "Route name.", NULL, 0, 0, NULL, true},
    {"when", SL_CK_STRING, "true", "jq predicate over the normalized event."},
    {"to", SL_CK_STRINGS, NULL, "Destination name(s).", NULL, 0, 0, NULL, true},
    {"partition_key", SL_CK_STRING, NULL,
     "jq expression giving another partition key for these destinations."},
    {NULL},
};

/* ---- deliver ---- */

static const char *const auth_types[] = {
    "none", "bearer", "api-key", "basic", "oauth2-client-credentials", NULL};
static const char *const methods[] = {"POST", "PUT", "PATCH", NULL};
static const char *const orderings[] = {"per-key", "none", NULL};
static const char *const jitters[] = {"full", "none", NULL};
static const char *const sign_schemes[] = {"standard-webhooks", NULL};

static const struct sl_conf_key auth_keys[] = {
    {"type", SL_CK_ENUM, "none", "Credential kind.", NULL, 0, 0, auth_types},
    {"token", SL_CK_STRING, NULL, "bearer/api-key: the token (use ${VAR})."},
    {"token_file", SL_CK_STRING, NULL, "bearer/api-key: a file holding it, re-read on change."},
    {"header", SL_CK_STRING, "X-Api-Key", "api-key: the header name."},
    {"username", SL_CK_STRING, NULL, "basic: user name."},
    {"password", SL_CK_STRING, NULL, "basic: password (use ${VAR})."},
    {"password_file", SL_CK_STRING, NULL, "basic: a file holding the password, re-read on change."},
    {"token_url", SL_CK_STRING, NULL, "oauth2: the token endpoint."},
    {"client_id", SL_CK_STRING, NULL, "oauth2: client id."},
    {"client_secret", SL_CK_STRING, NULL, "oauth2: client secret (use ${VAR})."},
    {"client_secret_file", SL_CK_STRING, NULL,
     "oauth2: a file holding the client secret, re-read before each token request."},
    {"scope", SL_CK_STRING, NULL, "oauth2: requested scope."},
    {NULL},
};

static const struct sl_conf_key rate_limit_keys[] = {
    {"per_second", SL_CK_INT, NULL, "Sustained requests per second, across all replicas.", NULL, 1,
     1000000, NULL, true},
    {"burst", SL_CK_INT, "per_second", "Bucket size.", NULL, 1, 1000000},
    {NULL},
};

static const struct sl_conf_key retry_keys[] = {
    {"max_attempts", SL_CK_INT, "10", "Attempts before the event is dead-lettered.", NULL, 1, 1000},
    {"initial", SL_CK_DURATION, "1s", "First backoff.", NULL, 1, 86400000},
    {"max", SL_CK_DURATION, "1h", "Largest backoff.", NULL, 1, 7 * 86400000LL},
    {"max_age", SL_CK_DURATION, "72h", "Give up on an event older than this.", NULL, 1000,
     30 * 86400000LL},
    {"jitter", SL_CK_ENUM, "full", "Backoff jitter.", NULL, 0, 0, jitters},
    {NULL},
};

static const struct sl_conf_key sign_keys[] = {
    {"scheme", SL_CK_ENUM, NULL, "Outbound signature scheme.", NULL, 0, 0, sign_schemes, true},
    {"secret", SL_CK_STRINGS, NULL,
     "whsec_ secret, or several: each signs, so receivers can rotate (use ${VAR})."},
    {"secret_file", SL_CK_STRING, NULL,
     "A file with one whsec_ secret per line, re-read on change; signs along with `secret`."},
    {NULL},
};

static const struct sl_conf_key status_keys[] = {
    {"retriable", SL_CK_STRINGS, NULL,
     "Status codes to retry that would otherwise be permanent failures (e.g. 409)."},
    {"permanent", SL_CK_STRINGS, NULL,
     "Status codes to dead-letter at once that would otherwise be retried (e.g. 501)."},
    {NULL},
};

static const struct sl_conf_key circuit_keys[] = {
    {"failure_ratio", SL_CK_INT, "50", "Percent of failed attempts that opens the circuit.", NULL,
     1, 100},
    {"window", SL_CK_DURATION, "30s", "Window over which the ratio is measured.", NULL, 1000,
     3600000},
    {"min_requests", SL_CK_INT, "20", "Attempts in the window before the ratio counts.", NULL, 1,
     100000},
    {"cooldown", SL_CK_DURATION, "30s", "Open time before a half-open probe.", NULL, 100, 3600000},
    {NULL},
};

static const struct sl_conf_key destination_keys[] = {
    {"url", SL_CK_STRING, NULL,
     "Target URL; after the host it may hold {{ jq }} parts, each giving a string or number "
     "(percent-encoded), e.g. /customers/{{ .data.customer_id }}.",
     NULL, 0, 0, NULL, true},
    {"method", SL_CK_ENUM, "POST", "HTTP method.", NULL, 0, 0, methods},
    {"headers", SL_CK_STRING_MAP, NULL, "Extra request headers."},
    {"body", SL_CK_STRING, ".data",
     "The request body: .data sends the event's data byte for byte; any other jq program maps "
     "the event (a CloudEvents JSON object) to the JSON that is sent."},
    {"auth", SL_CK_SECTION, NULL, "Credentials.", auth_keys},
    {"timeout", SL_CK_DURATION, "10s", "Per-attempt deadline.", NULL, 100, 300000},
    {"concurrency", SL_CK_INT, "16", "Requests in flight at once.", NULL, 1, 10000},
    {"rate_limit", SL_CK_SECTION, NULL, "Token bucket shared by every replica.", rate_limit_keys},
    {"retry", SL_CK_SECTION, NULL, "Retry schedule.", retry_keys},
    {"ordering", SL_CK_ENUM, "per-key", "Keep each partition key's order, or not.", NULL, 0, 0,
     orderings},
    {"sign", SL_CK_SECTION, NULL, "Outbound signing.", sign_keys},
    {"circuit", SL_CK_SECTION, NULL, "Circuit breaker.", circuit_keys},
    {"status", SL_CK_SECTION, NULL,
     "Overrides of the status classes (2xx delivered; 408, 425, 429, 5xx retried; other "
     "codes permanent).",
     status_keys},
    {"ledger_ttl", SL_CK_DURATION, "7d",
     "How long a delivered event is remembered in the delivery ledger, so that a replay or a "
     "restart does not send it again.",
     NULL, 60000, 365 * 86400000LL},
    {NULL},
};

/* sluice-deliver's own section: how much it holds in memory. */
static const struct sl_conf_key deliver_keys[] = {
    {"max_events", SL_CK_INT, "10000",
     "Events held in memory at most (in flight, waiting or retrying); past it every partition "
     "pauses and lag builds.",
     NULL, 1, 1000000},
    {"max_events_per_partition", SL_CK_INT, "1000",
     "Events of one partition held at most; past it that partition pauses.", NULL, 1, 1000000},
    {"max_memory", SL_CK_SIZE, "256MiB",
     "Payload bytes held at most; past it every partition pauses.", NULL, 1024 * 1024,
     64LL * 1024 * 1024 * 1024},
    {"commit_interval", SL_CK_DURATION, "1s",
     "How often finished offsets are committed (always on shutdown and rebalance).", NULL, 10,
     60000},
    {"max_crashes", SL_CK_INT, "3",
     "A record that crashed sluice-deliver this many times is dead-lettered (reason "
     "crashed_stage) instead of being processed again; the markers live in Redis; 0 turns the "
     "guard off.",
     NULL, 0, SL_CRASHGUARD_MAX_MAX},
    SL_LIVE_CONF_KEY,
    {NULL},
};

/* ---- connections ---- */

static const struct sl_conf_key redis_keys[] = {
    {"url", SL_CK_STRING, "redis://127.0.0.1:6379/0", "Redis URL (SLUICE_REDIS_URL when unset)."},
    {"timeout", SL_CK_DURATION, "1s", "Per-command deadline.", NULL, 10, 60000},
    {"key_prefix", SL_CK_STRING, NULL,
     "Prefix of every key sluice keeps in Redis (default: kafka.topic_prefix); pipelines that "
     "share a Redis and a topic prefix need their own."},
    {NULL},
};

static const struct sl_conf_key postgres_keys[] = {
    {"dsn", SL_CK_STRING, "postgresql://127.0.0.1:5432/sluice",
     "libpq connection string (SLUICE_PG_DSN when unset)."},
    {NULL},
};

/* sluice-validate's own section. */
static const struct sl_conf_key validate_keys[] = {
    {"loop", SL_CK_SECTION, NULL, "Batching, transactions and retry of the shared loop.",
     sl_loop_conf_keys},
    {"assert_formats", SL_CK_BOOL, "false",
     "Treat JSON Schema `format` (date-time, email, uri, uuid, ipv4, ...) as an assertion "
     "rather than an annotation."},
    SL_LIVE_CONF_KEY,
    {NULL},
};

/* sluice-transform's own section. */
static const struct sl_conf_key transform_stage_keys[] = {
    {"loop", SL_CK_SECTION, NULL, "Batching, transactions and retry of the shared loop.",
     sl_loop_conf_keys},
    {"required", SL_CK_BOOL, "false",
     "Dead-letter events that no transform rule matches (otherwise they pass unchanged)."},
    {"assert_formats", SL_CK_BOOL, "true",
     "Treat `format` in canonical schemas (date-time, email, ...) as an assertion: canonical "
     "models are ours, so their formats are checked."},
    SL_LIVE_CONF_KEY,
    {NULL},
};

/* sluice-audit's own section. */
static const struct sl_conf_key audit_keys[] = {
    {"loop", SL_CK_SECTION, NULL,
     "Batching and retry of the shared loop: one batch is one Postgres transaction.",
     sl_loop_conf_keys},
    {"event_status", SL_CK_BOOL, "true",
     "Keep event_status (each event's state per destination) up to date from the audit "
     "records."},
    SL_LIVE_CONF_KEY,
    {NULL},
};

/* sluice-deadletter's own section. */
static const struct sl_conf_key deadletter_keys[] = {
    {"loop", SL_CK_SECTION, NULL,
     "Batching and retry of the shared loop: one batch is one Postgres transaction.",
     sl_loop_conf_keys},
    SL_LIVE_CONF_KEY,
    {NULL},
};

/* sluice-reconcile's own section (workers/reconcile/reconcile.h). */
static const struct sl_conf_key reconcile_alert_keys[] = {
    {"destination", SL_CK_STRING, NULL,
     "The configured destination that receives alert events (through "
     "<prefix>deliver.<destination>, so alerts get deliver's retries and ledger); none: no "
     "alerts."},
    {"dlq_growth", SL_CK_INT, "10",
     "Alert when more dead letters than this arrived since the last run.", NULL, 0, 1000000000},
    {NULL},
};

static const struct sl_conf_key reconcile_keys[] = {
    {"interval", SL_CK_DURATION, "1m", "Time between two runs.", NULL, 1000, 86400000},
    {"deadline", SL_CK_DURATION, "1h",
     "An event-destination pair still pending this long after acceptance is stuck.", NULL, 1000,
     2592000000LL},
    {"overlap", SL_CK_DURATION, "5m",
     "How far each run reads the audit trail again before the last run's end (rows of "
     "transactions that committed late).",
     NULL, 0, 86400000},
    {"lag_interval", SL_CK_DURATION, "15s",
     "How often the lag of every consumer group of the pipeline is read from the broker for "
     "sluice_consumer_lag and sluice_consumer_lag_seconds on this binary's /metrics.",
     NULL, 1000, 3600000},
    {"alerts", SL_CK_SECTION, NULL, "Alert events.", reconcile_alert_keys},
    SL_LIVE_CONF_KEY,
    {NULL},
};

/* ---- sluice-admin ---- */

static const char *const admin_roles[] = {"viewer", "operator", NULL};

static const struct sl_conf_key admin_token_keys[] = {
    {"name", SL_CK_STRING, NULL, "Who holds the token: shown by whoami and recorded with actions.",
     .required = true},
    {"sha256", SL_CK_STRING, NULL,
     "Hex SHA-256 of the token (64 hex digits); the token itself is never written here.",
     .required = true},
    {"role", SL_CK_ENUM, NULL, "viewer: read only; operator: read, replay, discard, pause.", NULL,
     0, 0, admin_roles, true},
    {NULL},
};

static const struct sl_conf_key admin_keys[] = {
    {"listen", SL_CK_STRING, "127.0.0.1:9190",
     "The one listener of sluice-admin: /api/v1/..., the console at /, /metrics /healthz "
     "/readyz."},
    {"tokens", SL_CK_LIST_OF, NULL,
     "Bearer tokens of the API and console, each {name, sha256, role}; no token, no access.",
     admin_token_keys},
    {"threads", SL_CK_INT, "4", "HTTP worker threads.", NULL, 1, 64},
    {"stages", SL_CK_STRING_MAP, NULL,
     "Admin listeners (host:port) of the stages the overview scrapes, by stage name; default each "
     "binary's default (ingress 127.0.0.1:9180 ... reconcile 127.0.0.1:9187)."},
    {NULL},
};

/* Each transactional stage's own section; `loop` tunes the shared loop for it. */
static const struct sl_conf_key stage_keys[] = {
    {"loop", SL_CK_SECTION, NULL, "Batching, transactions and retry of the shared loop.",
     sl_loop_conf_keys},
    SL_LIVE_CONF_KEY,
    {NULL},
};

const struct sl_conf_key sl_pipeline_keys[] = {
    {"kafka", SL_CK_SECTION, NULL, "Kafka connection and topics.", sl_kafka_conf_keys},
    {"redis", SL_CK_SECTION, NULL, "Redis: dedup keys, rate-limit tokens, delivery ledger.",
     redis_keys},
    {"postgres", SL_CK_SECTION, NULL, "PostgreSQL: audit trail and dead letters.", postgres_keys},
    {"schema_dir", SL_CK_STRING, "schemas",
     "Directory of JSON Schemas, relative to this file's directory."},
    {"ingress", SL_CK_SECTION, NULL, "The HTTP front door.", ingress_keys},
    {"sources", SL_CK_MAP_OF, NULL, "Systems that send events, by name (POST /v1/events/<name>).",
     source_keys},
    {"dedup", SL_CK_SECTION, NULL, "Duplicate detection.", dedup_keys},
    {"transforms", SL_CK_LIST_OF, NULL, "Ordered rules mapping events to canonical models.",
     transform_keys},
    {"routes", SL_CK_LIST_OF, NULL, "Rules sending events to destinations.", route_keys},
    {"destinations", SL_CK_MAP_OF, NULL, "Systems that receive events, by name.", destination_keys},
    {"validate", SL_CK_SECTION, NULL, "sluice-validate.", validate_keys},
    {"transform", SL_CK_SECTION, NULL, "sluice-transform.", transform_stage_keys},
    {"route", SL_CK_SECTION, NULL, "sluice-route.", stage_keys},
    {"deliver", SL_CK_SECTION, NULL, "sluice-deliver.", deliver_keys},
    {"audit", SL_CK_SECTION, NULL, "sluice-audit: the audit trail into Postgres.", audit_keys},
    {"deadletter", SL_CK_SECTION, NULL, "sluice-deadletter: dead letters into Postgres.",
     deadletter_keys},
    {"reconcile", SL_CK_SECTION, NULL,
     "sluice-reconcile: terminal states, stuck events, hourly books, alerts.", reconcile_keys},
    {"admin", SL_CK_SECTION, NULL, "sluice-admin: the admin API and the web console.", admin_keys},
    {NULL},
};

/* ------------------------------------------------------------------------------------------ */

/* Names that become part of a topic name or a URL path: Kafka's topic alphabet minus dots,
 * so that "deliver.<name>" stays unambiguous. */
static bool valid_entity_name(const char *name)
{
    size_t n = 0;
    for (const char *p = name; *p; p++, n++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return false;
    return n >= 1 && n <= 100;
}

static int check_names(const sl_conf_t *conf, const char *section, struct sl_err *err)
{
    const sl_conf_node_t *map = sl_conf_get(sl_conf_root(conf), section);
    for (size_t i = 0; i < sl_conf_count(map); i++)
        if (!valid_entity_name(sl_conf_key(map, i)))
            return sl_conf_error(conf, sl_conf_item(map, i), err,
                                 "name must be 1-100 letters, digits, '-' or '_'");
    return 0;
}

static int check_sources(const sl_conf_t *conf, struct sl_err *err)
{
    const sl_conf_node_t *sources = sl_conf_get(sl_conf_root(conf), "sources");
    for (size_t i = 0; i < sl_conf_count(sources); i++) {
        const sl_conf_node_t *verify = sl_conf_get(sl_conf_item(sources, i), "verify");
        const char *scheme;
        if (sl_conf_str(conf, verify, "scheme", "none", &scheme, err) != 0)
            return -1;
        bool needs_secret = strcmp(scheme, "none") != 0 && strcmp(scheme, "api-key") != 0;
        if (needs_secret && !sl_conf_get(verify, "secret"))
            return sl_conf_error(conf, verify, err, "scheme %s needs 'secret'", scheme);
        if (strcmp(scheme, "api-key") == 0 && !sl_conf_get(verify, "key_hashes"))
            return sl_conf_error(conf, verify, err, "scheme api-key needs 'key_hashes'");
        if (strcmp(scheme, "hmac-sha256") == 0 && !sl_conf_get(verify, "header"))
            return sl_conf_error(conf, verify, err, "scheme hmac-sha256 needs 'header'");
        if (!needs_secret && sl_conf_get(verify, "replay_guard"))
            return sl_conf_error(conf, sl_conf_get(verify, "replay_guard"), err,
                                 "scheme %s signs nothing a replay guard could remember", scheme);
    }
    return 0;
}

static int check_routes(const sl_conf_t *conf, struct sl_err *err)
{
    const sl_conf_node_t *root = sl_conf_root(conf);
    const sl_conf_node_t *routes = sl_conf_get(root, "routes");
    const sl_conf_node_t *dests = sl_conf_get(root, "destinations");
    for (size_t i = 0; i < sl_conf_count(routes); i++) {
        const sl_conf_node_t *to = sl_conf_get(sl_conf_item(routes, i), "to");
        size_t n = sl_conf_type(to) == SL_CONF_SEQ ? sl_conf_count(to) : 1;
        for (size_t j = 0; j < n; j++) {
            const sl_conf_node_t *item = sl_conf_type(to) == SL_CONF_SEQ ? sl_conf_item(to, j) : to;
            const char *name;
            if (sl_conf_as_str(conf, item, &name, err) != 0)
                return -1;
            if (!sl_conf_get(dests, name))
                return sl_conf_error(conf, item, err, "no destination named '%s'", name);
        }
    }
    return 0;
}

/* Exactly one of `a` and `b` in `map` (a secret as a value or as a file). */
static int one_of(const sl_conf_t *conf, const sl_conf_node_t *map, const char *what, const char *a,
                  const char *b, struct sl_err *err)
{
    bool has_a = sl_conf_get(map, a) != NULL, has_b = sl_conf_get(map, b) != NULL;
    if (has_a == has_b)
        return sl_conf_error(conf, map, err, "%s needs '%s' or '%s', one of them", what, a, b);
    return 0;
}

/* What the key table cannot say about a destination's credentials. Only presence is checked
 * here: values may name environment variables that only sluice-deliver's environment sets (it
 * checks the values, the URL, the body and the status codes when it loads the destination). */
static int check_destination(const sl_conf_t *conf, const sl_conf_node_t *d, struct sl_err *err)
{
    const char *type;
    const sl_conf_node_t *auth = sl_conf_get(d, "auth");
    if (sl_conf_str(conf, auth, "type", "none", &type, err) != 0)
        return -1;
    if ((strcmp(type, "bearer") == 0 || strcmp(type, "api-key") == 0) &&
        one_of(conf, auth, type, "token", "token_file", err) != 0)
        return -1;
    if (strcmp(type, "basic") == 0 &&
        (!sl_conf_get(auth, "username")
             ? sl_conf_error(conf, auth, err, "basic needs 'username'")
             : one_of(conf, auth, type, "password", "password_file", err)) != 0)
        return -1;
    if (strcmp(type, "oauth2-client-credentials") == 0) {
        if (!sl_conf_get(auth, "token_url") || !sl_conf_get(auth, "client_id"))
            return sl_conf_error(conf, auth, err, "%s needs 'token_url' and 'client_id'", type);
        if (one_of(conf, auth, type, "client_secret", "client_secret_file", err) != 0)
            return -1;
    }
    const sl_conf_node_t *sign = sl_conf_get(d, "sign");
    if (sign && !sl_conf_get(sign, "secret") && !sl_conf_get(sign, "secret_file"))
        return sl_conf_error(conf, sign, err, "signing needs 'secret' or 'secret_file'");
    return 0;
}

static int check_destinations(const sl_conf_t *conf, struct sl_err *err)
{
    const sl_conf_node_t *dests = sl_conf_get(sl_conf_root(conf), "destinations");
    for (size_t i = 0; i < sl_conf_count(dests); i++)
        if (check_destination(conf, sl_conf_item(dests, i), err) != 0)
            return -1;
    return 0;
}

/* A body the ingress accepts must fit in a Kafka record: otherwise it would be refused by
 * Kafka after the whole body was read, every time it is retried. */
static int check_record_size(const sl_conf_t *conf, struct sl_err *err)
{
    struct sl_kafka_settings kafka;
    const sl_conf_node_t *root = sl_conf_root(conf), *ingress = sl_conf_get(root, "ingress");
    long long body;
    if (sl_kafka_settings_load(conf, &kafka, err) != 0 ||
        sl_conf_size(conf, ingress, "max_body_bytes", SL_PIPELINE_MAX_BODY_DEFAULT, 1,
                     64 * 1024 * 1024, &body, err) != 0)
        return -1;
    if (body + SL_PIPELINE_RECORD_ALLOWANCE <= kafka.max_message_bytes)
        return 0;
    /* Point at the key the file sets (the other one is at its default). */
    const sl_conf_node_t *at = sl_conf_get(ingress, "max_body_bytes");
    if (!at)
        at = sl_conf_get(sl_conf_get(root, "kafka"), "max_message_bytes");
    return sl_conf_error(conf, at, err,
                         "ingress.max_body_bytes (%lld) plus %d bytes for the record's key and "
                         "headers exceed kafka.max_message_bytes (%lld): such a body could never "
                         "be written to Kafka; raise kafka.max_message_bytes (then run `sluicectl "
                         "topics create`) or lower ingress.max_body_bytes",
                         body, SL_PIPELINE_RECORD_ALLOWANCE, kafka.max_message_bytes);
}

/* The Redis URL (the file's, else SLUICE_REDIS_URL) as sl_redis_new() will take it: a URL no
 * binary could use (rediss://: no TLS) fails every binary and `config check` alike. */
static int check_redis(const sl_conf_t *conf, struct sl_err *err)
{
    const char *url;
    int timeout_ms;
    return sl_redis_settings(conf, &url, &timeout_ms, err);
}

int sl_pipeline_check(const sl_conf_t *conf, struct sl_err *err)
{
    if (check_redis(conf, err) != 0 || check_names(conf, "sources", err) != 0 ||
        check_names(conf, "destinations", err) != 0 || check_sources(conf, err) != 0 ||
        check_routes(conf, err) != 0 || check_destinations(conf, err) != 0 ||
        check_record_size(conf, err) != 0)
        return -1;
    return 0;
}

sl_conf_t *sl_pipeline_load(const char *path, struct sl_err *err)
{
    sl_conf_t *conf = sl_conf_load_file(path, err);
    if (!conf)
        return NULL;
    if (sl_conf_check(conf, sl_pipeline_keys, err) != 0 || sl_pipeline_check(conf, err) != 0) {
        sl_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

void sl_pipeline_topics_free(struct sl_topic_spec *specs, size_t n)
{
    for (size_t i = 0; specs && i < n; i++)
        free((char *)specs[i].name);
    free(specs);
}

int sl_pipeline_topics(const sl_conf_t *conf, const struct sl_kafka_settings *kafka,
                       struct sl_topic_spec **specs_out, size_t *n_out, struct sl_err *err)
{
    static const char *const fixed[] = {SL_TOPIC_INGRESS,  SL_TOPIC_VALIDATED, SL_TOPIC_NORMALIZED,
                                        SL_TOPIC_OUTCOMES, SL_TOPIC_DLQ,       SL_TOPIC_AUDIT};
    const size_t n_fixed = sizeof(fixed) / sizeof(fixed[0]);
    const sl_conf_node_t *dests = sl_conf_get(sl_conf_root(conf), "destinations");
    size_t n = n_fixed + sl_conf_count(dests);
    struct sl_topic_spec *specs = calloc(n, sizeof(*specs));
    if (!specs)
        return sl_err_set(err, SL_ERR_NOMEM, "out of memory");

    for (size_t i = 0; i < n; i++) {
        char suffix[SL_TOPIC_NAME_MAX], name[SL_TOPIC_NAME_MAX];
        if (i < n_fixed)
            snprintf(suffix, sizeof(suffix), "%s", fixed[i]);
        else
            snprintf(suffix, sizeof(suffix), SL_TOPIC_DELIVER "%s",
                     sl_conf_key(dests, i - n_fixed));
        if (sl_kafka_topic_name(kafka, suffix, name, sizeof(name)) != 0 ||
            !(specs[i].name = strdup(name))) {
            sl_pipeline_topics_free(specs, n);
            return sl_err_set(err, SL_ERR_INVALID, "topic name %s%s too long or out of memory",
                              kafka->topic_prefix, suffix);
        }
        specs[i].partitions = kafka->partitions;
        specs[i].replication_factor = kafka->replication_factor;
    }
    *specs_out = specs;
    *n_out = n;
    return 0;
}

void sl_pipeline_write_reference(FILE *out)
{
    fputs("# Pipeline file reference\n\n"
          "Generated by `sluicectl config reference`. Values may use ${VAR} and ${VAR:-default};\n"
          "durations take units (250ms, 30s, 5m, 72h, 3d); sizes take bytes or KiB/MiB/GiB.\n\n",
          out);
    sl_conf_write_reference(out, sl_pipeline_keys);
}

int sl_pipeline_join_path(char *out, size_t size, const char *dir, const char *path)
{
    int n =
        path[0] == '/' ? snprintf(out, size, "%s", path) : snprintf(out, size, "%s/%s", dir, path);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

int sl_pipeline_schema_dir(const sl_conf_t *conf, char *out, size_t size, struct sl_err *err)
{
    const sl_conf_node_t *root = sl_conf_root(conf);
    const char *dir;
    if (sl_conf_str(conf, root, "schema_dir", "schemas", &dir, err) != 0)
        return -1;
    if (sl_pipeline_join_path(out, size, sl_conf_dir(conf), dir) != 0)
        return sl_conf_error(conf, sl_conf_get(root, "schema_dir"), err, "path too long");
    return 0;
}
