/*
 * verify: inbound webhook verification for sluice-ingress. Pure: no I/O, no clock, no logging;
 * the caller passes the header lookup, the raw body and the current time.
 *
 * Schemes (one per source, from the pipeline file):
 *   stripe             Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]; HMAC-SHA256 over
 *                      "<t>.<body>", key = the secret string as given (whsec_... included).
 *   github             X-Hub-Signature-256: sha256=<hex>; HMAC-SHA256 over the body.
 *   standard-webhooks  webhook-id, webhook-timestamp, webhook-signature ("v1,<base64>" entries
 *                      separated by spaces); HMAC-SHA256 over "<id>.<timestamp>.<body>", key =
 *                      base64 decoding of the secret after an optional "whsec_" prefix.
 *   hmac-sha256        a configured header holding [prefix]<hex or base64> of HMAC-SHA256 over
 *                      the body, key = the secret string as given.
 *                      github and hmac-sha256 sign no timestamp and no delivery id: a captured
 *                      request verifies forever. The source's replay guard (replay.h) is the
 *                      answer; verify_check_digest gives what it remembers.
 *   api-key            Authorization: Bearer <key>, or X-Api-Key: <key>; the SHA-256 of the key
 *                      must equal one of the configured hex SHA-256 hashes (no plaintext keys).
 *   none               accepts everything; for trusted internal networks only.
 *
 * Rotation: up to VERIFY_SECRETS_MAX secrets per source are active at once and a request passes
 * when its signature (or key) matches any of them. Timestamped schemes reject a timestamp further
 * than the tolerance from `now` in either direction, so a captured request cannot be replayed
 * later and a forged far-future one cannot be stockpiled.
 *
 * Work per request is bounded whatever the sender does: a header value longer than
 * VERIFY_HEADER_MAX is rejected before parsing, at most VERIFY_SIGNATURES_MAX signatures of a
 * header are considered (later ones are ignored), and one HMAC is computed per secret, never per
 * signature. All MAC and hash comparisons are over fixed 32-byte values with CRYPTO_memcmp, and
 * every (signature, secret) pair is compared without stopping at the first match.
 *
 * Failure reasons are fixed, static, non-secret strings for the 401 body and logs; they never
 * contain a secret, an expected signature, or any byte of the request.
 *
 * Thread safety: a verify_t is immutable after verify_new; verify_check may run on it from
 * several threads at once.
 */
#ifndef SLUICE_VERIFY_H
#define SLUICE_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "sl_err.h"

#define VERIFY_SECRETS_MAX       8    /* active secrets (or key hashes) per source */
#define VERIFY_SECRET_MAX        512  /* bytes of one secret as configured */
#define VERIFY_HEADER_MAX        4096 /* bytes of one header value we are willing to parse */
#define VERIFY_SIGNATURES_MAX    16   /* signatures of one header considered; the rest ignored */
#define VERIFY_HEADER_NAME_MAX   128  /* hmac-sha256: configured header name */
#define VERIFY_PREFIX_MAX        32   /* hmac-sha256: configured prefix such as "sha256=" */
#define VERIFY_TOLERANCE_DEFAULT 300  /* seconds, as Stripe and the Standard Webhooks libraries */
#define VERIFY_TOLERANCE_MAX     86400
#define VERIFY_SIGNATURE_OUT_MAX 128 /* enough for any header value the verify_sign_* write */
#define VERIFY_DIGEST_LEN        32  /* verify_check_digest: SHA-256 */

typedef struct verify verify_t;

enum verify_scheme {
    VERIFY_NONE,
    VERIFY_STRIPE,
    VERIFY_GITHUB,
    VERIFY_STANDARD_WEBHOOKS,
    VERIFY_HMAC_SHA256,
    VERIFY_API_KEY,
};

/* verify_check results. VERIFY_ERROR is ours (OpenSSL could not allocate), not the sender's:
 * answer 500/503, never 401 and never 202. */
enum verify_result {
    VERIFY_OK = 0,
    VERIFY_REJECTED = -1,
    VERIFY_ERROR = -2,
};

struct verify_opts {
    enum verify_scheme scheme;
    /* stripe, github, hmac-sha256: the shared secrets; standard-webhooks: "whsec_<base64>" (or
     * bare base64); api-key: hex SHA-256 of each accepted key. Empty for none. */
    const char *const *secrets;
    size_t n_secrets;
    const char *header; /* hmac-sha256 only, required: the header carrying the signature */
    const char *prefix; /* hmac-sha256 only, optional: e.g. "sha256=", matched exactly */
    bool base64;        /* hmac-sha256 only: the signature is base64 instead of hex */
    long tolerance_s;   /* stripe, standard-webhooks: 0 = VERIFY_TOLERANCE_DEFAULT */
};

/* Header lookup supplied by the caller: case-insensitive name, NUL-terminated value, NULL when
 * the header is absent. */
typedef const char *(*verify_header_fn)(void *opaque, const char *name);

/* "none", "stripe", "github", "standard-webhooks", "hmac-sha256", "api-key". 0 or -1. */
int verify_scheme_parse(const char *name, enum verify_scheme *out);
const char *verify_scheme_name(enum verify_scheme scheme);

/* Validates opts and copies everything it needs (opts and its strings may be freed after the
 * call). Rejects, with a message that names the secret's position but never its content: a
 * missing or empty secret, more than VERIFY_SECRETS_MAX, a standard-webhooks secret that is not
 * base64, an api-key hash that is not 64 hex digits, options that do not apply to the scheme. */
verify_t *verify_new(const struct verify_opts *opts, struct sl_err *err);

/* Wipes the secrets (OPENSSL_cleanse) and frees. NULL does nothing. */
void verify_destroy(verify_t *v);

/* Checks one request: `body` is the raw body exactly as received (NULL allowed when body_len is
 * 0), `now` the receiving time in Unix seconds. Returns VERIFY_OK with *reason NULL, or
 * VERIFY_REJECTED / VERIFY_ERROR with *reason set to a static string. */
int verify_check(const verify_t *v, verify_header_fn header, void *opaque, const void *body,
                 size_t body_len, time_t now, const char **reason)
    __attribute__((warn_unused_result));

/* verify_check, and on VERIFY_OK for a signing scheme the SHA-256 of the signed content (the
 * parts the MAC covers: "<t>.<body>" for stripe, "<id>.<timestamp>.<body>" for
 * standard-webhooks, the body for github and hmac-sha256) into digest[VERIFY_DIGEST_LEN]. Every
 * copy of one signed request has the same digest, whichever configured secret or which of its
 * signature entries verified it; only signing it again changes it. Otherwise (api-key, none, a
 * rejection) digest is all zero. A digest is not a secret: it can only confirm a guessed body. */
int verify_check_digest(const verify_t *v, verify_header_fn header, void *opaque, const void *body,
                        size_t body_len, time_t now, unsigned char *digest, const char **reason)
    __attribute__((warn_unused_result));

/* True for a header that carries a signature or a key and so must stay out of logs and Kafka
 * headers: Authorization, X-Api-Key, Stripe-Signature, X-Hub-Signature(-256), webhook-signature
 * whatever the scheme, plus v's configured hmac-sha256 header. v may be NULL. */
bool verify_header_is_credential(const verify_t *v, const char *name);

/* Signers, for tests, the load benchmark and outbound signing. Each writes a NUL-terminated
 * header value into out (VERIFY_SIGNATURE_OUT_MAX bytes always suffice) and returns 0 or -1. */

/* Stripe-Signature value "t=<ts>,v1=<hex>". */
int verify_sign_stripe(const char *secret, long ts, const void *body, size_t len, char *out,
                       size_t out_size, struct sl_err *err);
/* webhook-signature value "v1,<base64>"; secret as for verify_opts. */
int verify_sign_standard_webhooks(const char *secret, const char *msg_id, long ts, const void *body,
                                  size_t len, char *out, size_t out_size, struct sl_err *err);
/* "<prefix><hex or base64>" of HMAC-SHA256 over the body; github is prefix "sha256=", hex. */
int verify_sign_hmac_sha256(const char *secret, const char *prefix, bool base64, const void *body,
                            size_t len, char *out, size_t out_size, struct sl_err *err);

#endif
