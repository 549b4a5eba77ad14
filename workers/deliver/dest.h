/*
 * dest: sluice-deliver's configuration, read from the pipeline file: each destination's
 * settings (`destinations.<name>`) and the `deliver` section. Parsing only (STYLE habit 17):
 * the engine builds its runtime state from these structs, and tests can build them by hand.
 *
 * Strings are borrowed from the sl_conf_t (which lives as long as the process), except the
 * secret file paths, which are resolved against the pipeline file's directory into the struct.
 * The URL template and the body mapping are compiled here (jq, sl_expr), so that a bad one
 * stops start-up; they are owned by the struct (dlv_dest_conf_free). Errors name the file, the
 * line and the key.
 *
 * `body`: ".data" (the default) sends the event's data byte for byte, with no evaluation; any
 * other jq program maps the event (a CloudEvents JSON object) to the JSON that is sent,
 * compactly, as application/json. `url` may hold {{ jq }} parts (template.h).
 *
 * Headers the engine sets itself cannot be configured (Idempotency-Key, traceparent,
 * webhook-*, ce-*, Content-Length, Host, Expect, Transfer-Encoding, and the credential header
 * when `auth` sets one); Content-Type and User-Agent may be (they replace the engine's).
 */
#ifndef DLV_DEST_H
#define DLV_DEST_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "auth.h"
#include "circuit.h"
#include "retry.h"
#include "template.h"
#include "signer.h"
#include "sl_conf.h"
#include "sl_expr.h"
#include "sl_err.h"

#define DLV_HEADERS_MAX 32  /* configured extra headers of one destination */
#define DLV_NAME_MAX    100 /* a destination's name (the pipeline file's own bound) */
#define DLV_PATH_MAX    PATH_MAX

struct dlv_dest_conf {
    const char *name;
    dlv_template_t *url; /* owned */
    sl_expr_t *body;     /* owned; NULL for .data */
    const char *method;
    size_t n_headers;
    const char *header_names[DLV_HEADERS_MAX];
    const char *header_values[DLV_HEADERS_MAX];
    long timeout_ms;
    int concurrency;
    bool rate_limited;
    long long per_second, burst;
    struct dlv_retry_policy retry;
    struct dlv_status_rules status;
    bool per_key; /* ordering: per-key */
    bool sign;
    size_t n_sign_secrets;
    const char *sign_secrets[DLV_SIGN_SECRETS_MAX];
    const char *sign_secret_file; /* NULL, or sign_file_path */
    struct dlv_circuit_conf circuit;
    struct dlv_auth_conf auth; /* its *_file members point into the paths below */
    long long ledger_ttl_ms;
    char sign_file_path[DLV_PATH_MAX];
    char token_file_path[DLV_PATH_MAX];
    char password_file_path[DLV_PATH_MAX];
    char client_secret_file_path[DLV_PATH_MAX];
};

/* The `deliver` section. */
struct dlv_settings {
    long long max_events;
    long long max_events_per_partition;
    long long max_memory;
    long long commit_interval_ms;
    long long max_crashes; /* the crash guard (sl_crashguard.h); 0: off */
};

/* Destination `name` (which must exist in `destinations`). On failure nothing is left to
 * free; on success, dlv_dest_conf_free() it. */
int dlv_dest_conf_load(const sl_conf_t *conf, const char *name, struct dlv_dest_conf *out,
                       struct sl_err *err);
void dlv_dest_conf_free(struct dlv_dest_conf *c);
int dlv_settings_load(const sl_conf_t *conf, struct dlv_settings *out, struct sl_err *err);

#endif
