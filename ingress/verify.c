/*
 * verify: see verify.h for the schemes and the contract.
 *
 * Shape of a check: read the headers (bounded by VERIFY_HEADER_MAX), parse them into at most
 * VERIFY_SIGNATURES_MAX fixed 32-byte candidate MACs, check the timestamp window, then compute one
 * HMAC per configured secret over the signed parts and compare it with every candidate. The
 * body is fed to the MAC as it was received, in place: nothing is copied or re-serialised.
 *
 * Each secret becomes, in verify_new, an HMAC key (sl_sign: keyed once, duplicated per
 * computation, usable from several threads) so the key schedule is not recomputed per request
 * and the verify_t stays immutable. sl_sign holds the HMAC and the Standard Webhooks signature
 * that sluice-deliver signs outbound requests with, so both directions share one code path.
 */
#include "verify.h"
#include "sl_sign.h"
#include "sl_text.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAC_LEN    SL_SIGN_MAC_LEN /* HMAC-SHA256 and SHA-256 output */
#define HEX_LEN    (2 * MAC_LEN)
#define TS_DIGITS  18 /* fits in a long long; 10 digits cover Unix time until 2286 */
#define BEARER     "Bearer "
#define GITHUB_HDR "X-Hub-Signature-256"

/* Reasons: fixed strings, safe for a 401 body and logs. */
#define R_MISSING_STRIPE "missing Stripe-Signature header"
#define R_MISSING_GITHUB "missing X-Hub-Signature-256 header"
#define R_MISSING_SIG    "missing signature header"
#define R_MISSING_SW     "missing webhook-id, webhook-timestamp or webhook-signature header"
#define R_MISSING_KEY    "missing API key"
#define R_MALFORMED      "malformed signature header"
#define R_MALFORMED_TS   "malformed timestamp"
#define R_MALFORMED_KEY  "malformed API key header"
#define R_TOLERANCE      "timestamp outside tolerance"
#define R_NO_MATCH       "no signature matched"
#define R_KEY_NO_MATCH   "API key not accepted"
#define R_INTERNAL       "internal error during verification"

struct verify {
    enum verify_scheme scheme;
    long tolerance_s;
    size_t n_keys;
    sl_hmac_t *mac[VERIFY_SECRETS_MAX];                  /* HMAC schemes: keyed, never updated */
    unsigned char key_hash[VERIFY_SECRETS_MAX][MAC_LEN]; /* api-key */
    char header[VERIFY_HEADER_NAME_MAX + 1];             /* github, hmac-sha256 */
    char prefix[VERIFY_PREFIX_MAX + 1];
    size_t prefix_len;
    bool base64;
};

/* Candidate MACs taken from a request's header. */
struct cands {
    size_t n;
    unsigned char mac[VERIFY_SIGNATURES_MAX][MAC_LEN];
};

static const char *const scheme_names[] = {
    [VERIFY_NONE] = "none",
    [VERIFY_STRIPE] = "stripe",
    [VERIFY_GITHUB] = "github",
    [VERIFY_STANDARD_WEBHOOKS] = "standard-webhooks",
    [VERIFY_HMAC_SHA256] = "hmac-sha256",
    [VERIFY_API_KEY] = "api-key",
};
#define N_SCHEMES (sizeof(scheme_names) / sizeof(scheme_names[0]))

int verify_scheme_parse(const char *name, enum verify_scheme *out)
{
    for (size_t i = 0; name && i < N_SCHEMES; i++) {
        if (strcmp(name, scheme_names[i]) == 0) {
            *out = (enum verify_scheme)i;
            return 0;
        }
    }
    return -1;
}

const char *verify_scheme_name(enum verify_scheme scheme)
{
    return (size_t)scheme < N_SCHEMES ? scheme_names[scheme] : "unknown";
}

/* ---- encodings ------------------------------------------------------------------------------ */

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * n] = '\0';
}

/* ---- MACs ----------------------------------------------------------------------------------- */

/* The keyed context for one configured secret. The HMAC key is the secret's bytes, except for
 * standard-webhooks where it is the base64 decoding after an optional "whsec_" prefix
 * (sl_sign_sw_key, shared with outbound signing). Returns 0, or -1 with *why (a config
 * problem), or -2 (OpenSSL failed). */
static int secret_mac(enum verify_scheme scheme, const char *secret, sl_hmac_t **out,
                      const char **why)
{
    size_t key_len = strnlen(secret, VERIFY_SECRET_MAX + 1);
    if (key_len == 0) {
        *why = "is empty";
        return -1;
    }
    if (key_len > VERIFY_SECRET_MAX) {
        *why = "is longer than the limit";
        return -1;
    }
    if (scheme == VERIFY_STANDARD_WEBHOOKS)
        return sl_sign_sw_key(secret, out, why);
    *out = sl_hmac_new(secret, key_len);
    return *out ? 0 : -2;
}

/* SHA-256 of the signed content: what a replay guard remembers. Unlike a MAC it does not depend
 * on which secret (during a rotation) or which signature entry verified the request, so
 * stripping one of two signatures does not make a replay look new. */
static int content_digest(const struct sl_sign_part *parts, size_t n_parts,
                          unsigned char digest[MAC_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int len = 0;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (size_t i = 0; ok && i < n_parts; i++)
        ok = !parts[i].n || EVP_DigestUpdate(md, parts[i].p, parts[i].n);
    ok = ok && EVP_DigestFinal_ex(md, digest, &len) && len == MAC_LEN;
    EVP_MD_CTX_free(md);
    return ok ? 0 : -1;
}

/* Computes one MAC per configured key and compares it with every candidate. There is no early
 * exit on a match, so the time taken depends only on the number of keys and candidates. */
static int match_any(const verify_t *v, const struct sl_sign_part *parts, size_t n_parts,
                     const struct cands *c, unsigned char *digest, const char **reason)
{
    unsigned char expected[MAC_LEN];
    unsigned matched = 0;
    int rc = VERIFY_ERROR;

    *reason = R_INTERNAL;
    for (size_t k = 0; k < v->n_keys; k++) {
        if (sl_hmac_compute(v->mac[k], parts, n_parts, expected) != 0)
            goto out;
        for (size_t i = 0; i < c->n; i++)
            matched |= CRYPTO_memcmp(expected, c->mac[i], MAC_LEN) == 0;
    }
    if (matched && digest && content_digest(parts, n_parts, digest) != 0)
        goto out;
    rc = matched ? VERIFY_OK : VERIFY_REJECTED;
    *reason = matched ? NULL : R_NO_MATCH;
out:
    OPENSSL_cleanse(expected, sizeof(expected));
    return rc;
}

/* ---- request parsing ------------------------------------------------------------------------ */

enum hv { HV_OK, HV_MISSING, HV_TOO_LONG };

/* A header value with its length; an empty value counts as missing. */
static enum hv get_header(verify_header_fn header, void *opaque, const char *name, const char **val,
                          size_t *len)
{
    *val = header(opaque, name);
    if (!*val || !**val)
        return HV_MISSING;
    *len = strnlen(*val, VERIFY_HEADER_MAX + 1);
    return *len > VERIFY_HEADER_MAX ? HV_TOO_LONG : HV_OK;
}

/* Unix seconds written as 1..TS_DIGITS decimal digits and nothing else. */
static int parse_ts(const char *s, size_t n, long long *out)
{
    long long ts = 0;
    if (n == 0 || n > TS_DIGITS)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        ts = ts * 10 + (s[i] - '0');
    }
    *out = ts;
    return 0;
}

/* |now - ts| <= tolerance, in both directions: a stale request may be a replay; a future one
 * could be stockpiled for replay later. Unsigned differences cannot overflow. */
static bool within_tolerance(long long ts, time_t now, long tolerance_s)
{
    long long n = (long long)now;
    unsigned long long d = ts > n ? (unsigned long long)ts - (unsigned long long)n
                                  : (unsigned long long)n - (unsigned long long)ts;
    return d <= (unsigned long long)tolerance_s;
}

/* A candidate from hex or base64 text; anything that is not exactly one encoded 32-byte MAC is
 * skipped, as stripe-go skips an unreadable v1 entry next to a valid one. */
static void cands_add(struct cands *c, const char *s, size_t n, bool base64)
{
    size_t len = 0;
    int rc = base64 ? sl_b64_decode(s, n, c->mac[c->n], MAC_LEN, &len)
                    : sl_hex_decode(s, n, c->mac[c->n], MAC_LEN);
    if (rc == 0 && (!base64 || len == MAC_LEN))
        c->n++;
}

/* ---- schemes -------------------------------------------------------------------------------- */

/* Stripe-Signature: comma-separated key=value items; one t, v1 entries (the first
 * VERIFY_SIGNATURES_MAX considered), other schemes such as v0 ignored. */
static int check_stripe(const verify_t *v, verify_header_fn header, void *opaque, const void *body,
                        size_t body_len, time_t now, unsigned char *digest, const char **reason)
{
    const char *val, *t = NULL;
    size_t len, t_len = 0, n_v1 = 0;
    long long ts;
    struct cands c = {0};

    switch (get_header(header, opaque, "Stripe-Signature", &val, &len)) {
    case HV_MISSING:
        *reason = R_MISSING_STRIPE;
        return VERIFY_REJECTED;
    case HV_TOO_LONG:
        *reason = R_MALFORMED;
        return VERIFY_REJECTED;
    case HV_OK:
        break;
    }
    for (const char *p = val, *end = val + len; p < end;) {
        while (p < end && *p == ' ')
            p++;
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        const char *eq = memchr(p, '=', (size_t)(item_end - p));
        if (!eq || eq == p) {
            *reason = R_MALFORMED;
            return VERIFY_REJECTED;
        }
        size_t key_len = (size_t)(eq - p), value_len = (size_t)(item_end - eq - 1);
        if (key_len == 1 && p[0] == 't') {
            if (t) { /* two timestamps: which one was signed is ambiguous */
                *reason = R_MALFORMED;
                return VERIFY_REJECTED;
            }
            t = eq + 1;
            t_len = value_len;
        } else if (key_len == 2 && p[0] == 'v' && p[1] == '1' && n_v1++ < VERIFY_SIGNATURES_MAX) {
            cands_add(&c, eq + 1, value_len, false);
        }
        p = comma ? comma + 1 : end;
    }
    if (!t || n_v1 == 0) {
        *reason = R_MALFORMED;
        return VERIFY_REJECTED;
    }
    if (parse_ts(t, t_len, &ts) != 0) {
        *reason = R_MALFORMED_TS;
        return VERIFY_REJECTED;
    }
    if (!within_tolerance(ts, now, v->tolerance_s)) {
        *reason = R_TOLERANCE;
        return VERIFY_REJECTED;
    }
    /* Signed content: the timestamp as it appears in the header, ".", the raw body. */
    const struct sl_sign_part parts[] = {{t, t_len}, {".", 1}, {body, body_len}};
    return match_any(v, parts, 3, &c, digest, reason);
}

/* github and hmac-sha256: one header holding [prefix]<hex or base64 MAC of the body>. */
static int check_hmac(const verify_t *v, verify_header_fn header, void *opaque, const void *body,
                      size_t body_len, unsigned char *digest, const char **reason)
{
    const char *val;
    size_t len;
    struct cands c = {0};

    switch (get_header(header, opaque, v->header, &val, &len)) {
    case HV_MISSING:
        *reason = v->scheme == VERIFY_GITHUB ? R_MISSING_GITHUB : R_MISSING_SIG;
        return VERIFY_REJECTED;
    case HV_TOO_LONG:
        *reason = R_MALFORMED;
        return VERIFY_REJECTED;
    case HV_OK:
        break;
    }
    if (len < v->prefix_len || memcmp(val, v->prefix, v->prefix_len) != 0) {
        *reason = R_MALFORMED;
        return VERIFY_REJECTED;
    }
    cands_add(&c, val + v->prefix_len, len - v->prefix_len, v->base64);
    if (c.n == 0) {
        *reason = R_MALFORMED;
        return VERIFY_REJECTED;
    }
    const struct sl_sign_part parts[] = {{body, body_len}};
    return match_any(v, parts, 1, &c, digest, reason);
}

/* Standard Webhooks: webhook-signature is a space-separated list of "<version>,<signature>";
 * only v1 (HMAC-SHA256, base64) is ours, others such as v1a (ed25519) are ignored. */
static int check_standard_webhooks(const verify_t *v, verify_header_fn header, void *opaque,
                                   const void *body, size_t body_len, time_t now,
                                   unsigned char *digest, const char **reason)
{
    const char *id = NULL, *t = NULL, *sig = NULL;
    size_t id_len = 0, t_len = 0, sig_len = 0, n_v1 = 0;
    long long ts;
    struct cands c = {0};

    enum hv h_id = get_header(header, opaque, "webhook-id", &id, &id_len);
    enum hv h_t = get_header(header, opaque, "webhook-timestamp", &t, &t_len);
    enum hv h_sig = get_header(header, opaque, "webhook-signature", &sig, &sig_len);
    if (h_id == HV_MISSING || h_t == HV_MISSING || h_sig == HV_MISSING) {
        *reason = R_MISSING_SW;
        return VERIFY_REJECTED;
    }
    if (h_id != HV_OK || h_sig != HV_OK) {
        *reason = R_MALFORMED;
        return VERIFY_REJECTED;
    }
    if (h_t != HV_OK || parse_ts(t, t_len, &ts) != 0) {
        *reason = R_MALFORMED_TS;
        return VERIFY_REJECTED;
    }
    if (!within_tolerance(ts, now, v->tolerance_s)) {
        *reason = R_TOLERANCE;
        return VERIFY_REJECTED;
    }
    for (const char *p = sig, *end = sig + sig_len; p < end;) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *tok_end = sp ? sp : end;
        size_t tok_len = (size_t)(tok_end - p);
        if (tok_len > 3 && memcmp(p, "v1,", 3) == 0 && n_v1++ < VERIFY_SIGNATURES_MAX)
            cands_add(&c, p + 3, tok_len - 3, true);
        p = sp ? sp + 1 : end;
    }
    if (n_v1 == 0) {
        *reason = R_MALFORMED;
        return VERIFY_REJECTED;
    }
    const struct sl_sign_part parts[] = {
        {id, id_len}, {".", 1}, {t, t_len}, {".", 1}, {body, body_len}};
    return match_any(v, parts, 5, &c, digest, reason);
}

/* api-key: the presented key is hashed, so every comparison is over 32 bytes whatever its
 * length, and the configuration never holds a usable key. */
static int check_api_key(const verify_t *v, verify_header_fn header, void *opaque,
                         const char **reason)
{
    const char *val, *key = NULL;
    size_t len, key_len = 0;
    int rc = VERIFY_REJECTED;

    /* Authorization wins when it is a Bearer credential; any other scheme there (Basic from a
     * proxy, say) is not ours and leaves X-Api-Key to decide. The scheme name is
     * case-insensitive (RFC 9110 section 11.1). */
    enum hv h = get_header(header, opaque, "Authorization", &val, &len);
    if (h == HV_TOO_LONG) {
        *reason = R_MALFORMED_KEY;
        goto out;
    }
    if (h == HV_OK && len >= strlen(BEARER) && strncasecmp(val, BEARER, strlen(BEARER)) == 0) {
        key = val + strlen(BEARER);
        key_len = len - strlen(BEARER);
        while (key_len > 0 && *key == ' ') {
            key++;
            key_len--;
        }
    } else {
        h = get_header(header, opaque, "X-Api-Key", &val, &len);
        if (h == HV_TOO_LONG) {
            *reason = R_MALFORMED_KEY;
            goto out;
        }
        if (h == HV_OK) {
            key = val;
            key_len = len;
        }
    }
    if (key_len == 0) {
        *reason = R_MISSING_KEY;
        goto out;
    }
    int which = sl_sign_key_lookup(key, key_len, v->key_hash, v->n_keys);
    if (which == -2) {
        *reason = R_INTERNAL;
        rc = VERIFY_ERROR;
        goto out;
    }
    rc = which >= 0 ? VERIFY_OK : VERIFY_REJECTED;
    *reason = which >= 0 ? NULL : R_KEY_NO_MATCH;
out:
    return rc;
}

int verify_check(const verify_t *v, verify_header_fn header, void *opaque, const void *body,
                 size_t body_len, time_t now, const char **reason)
{
    return verify_check_digest(v, header, opaque, body, body_len, now, NULL, reason);
}

int verify_check_digest(const verify_t *v, verify_header_fn header, void *opaque, const void *body,
                        size_t body_len, time_t now, unsigned char *digest, const char **reason)
{
    *reason = NULL;
    if (digest)
        memset(digest, 0, VERIFY_DIGEST_LEN);
    switch (v->scheme) {
    case VERIFY_NONE:
        return VERIFY_OK;
    case VERIFY_STRIPE:
        return check_stripe(v, header, opaque, body, body_len, now, digest, reason);
    case VERIFY_GITHUB:
    case VERIFY_HMAC_SHA256:
        return check_hmac(v, header, opaque, body, body_len, digest, reason);
    case VERIFY_STANDARD_WEBHOOKS:
        return check_standard_webhooks(v, header, opaque, body, body_len, now, digest, reason);
    case VERIFY_API_KEY:
        return check_api_key(v, header, opaque, reason);
    }
    *reason = R_INTERNAL; /* fail closed on a corrupted handle */
    return VERIFY_ERROR;
}

bool verify_header_is_credential(const verify_t *v, const char *name)
{
    /* Every scheme's credential headers, not only this source's: a client may send any of them
     * to any source, and none of them is data. */
    static const char *const always[] = {"Authorization",       "X-Api-Key",
                                         "Stripe-Signature",    "X-Hub-Signature",
                                         "X-Hub-Signature-256", "webhook-signature"};
    for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++)
        if (strcasecmp(name, always[i]) == 0)
            return true;
    return v && v->header[0] && strcasecmp(name, v->header) == 0;
}

/* ---- construction --------------------------------------------------------------------------- */

/* Visible ASCII without separators: a header name or prefix is copied into requests' parsing
 * and logs, so control bytes and spaces are refused here rather than surprising later. */
static bool printable(const char *s, bool allow_colon)
{
    for (; *s; s++)
        if (*s <= ' ' || *s >= 0x7f || (*s == ':' && !allow_colon))
            return false;
    return true;
}

static int check_opts(const struct verify_opts *o, struct sl_err *err)
{
    const char *name = verify_scheme_name(o->scheme);
    bool timestamped = o->scheme == VERIFY_STRIPE || o->scheme == VERIFY_STANDARD_WEBHOOKS;

    if ((size_t)o->scheme >= N_SCHEMES)
        return sl_err_set(err, SL_ERR_CONFIG, "verify: unknown scheme %d", (int)o->scheme);
    if (o->scheme == VERIFY_NONE && o->n_secrets > 0)
        return sl_err_set(err, SL_ERR_CONFIG, "verify: scheme none takes no secret");
    if (o->scheme != VERIFY_NONE && (o->n_secrets == 0 || !o->secrets))
        return sl_err_set(err, SL_ERR_CONFIG, "verify: scheme %s needs at least one secret", name);
    if (o->n_secrets > VERIFY_SECRETS_MAX)
        return sl_err_set(err, SL_ERR_CONFIG, "verify: %zu secrets, at most %d are allowed",
                          o->n_secrets, VERIFY_SECRETS_MAX);
    for (size_t i = 0; i < o->n_secrets; i++)
        if (!o->secrets[i] || !o->secrets[i][0])
            return sl_err_set(err, SL_ERR_CONFIG, "verify: %s secret #%zu is empty", name, i + 1);
    if (o->scheme == VERIFY_HMAC_SHA256) {
        if (!o->header || !o->header[0] || strlen(o->header) > VERIFY_HEADER_NAME_MAX ||
            !printable(o->header, false))
            return sl_err_set(err, SL_ERR_CONFIG,
                              "verify: hmac-sha256 needs a header name (visible ASCII, no colon, "
                              "at most %d bytes)",
                              VERIFY_HEADER_NAME_MAX);
        if (o->prefix && (strlen(o->prefix) > VERIFY_PREFIX_MAX || !printable(o->prefix, true)))
            return sl_err_set(
                err, SL_ERR_CONFIG,
                "verify: hmac-sha256 prefix must be visible ASCII of at most %d bytes",
                VERIFY_PREFIX_MAX);
    } else if (o->header || o->prefix || o->base64) {
        return sl_err_set(err, SL_ERR_CONFIG,
                          "verify: header, prefix and base64 apply only to hmac-sha256, not %s",
                          name);
    }
    if (!timestamped && o->tolerance_s != 0)
        return sl_err_set(err, SL_ERR_CONFIG,
                          "verify: tolerance applies only to stripe and standard-webhooks, not %s",
                          name);
    if (o->tolerance_s < 0 || o->tolerance_s > VERIFY_TOLERANCE_MAX)
        return sl_err_set(err, SL_ERR_CONFIG,
                          "verify: tolerance must be between 1 and %d seconds (0 = default %d)",
                          VERIFY_TOLERANCE_MAX, VERIFY_TOLERANCE_DEFAULT);
    return 0;
}

verify_t *verify_new(const struct verify_opts *opts, struct sl_err *err)
{
    verify_t *v = NULL;
    const char *name;

    if (!opts) {
        sl_err_set(err, SL_ERR_INVALID, "verify: no options");
        goto fail;
    }
    if (check_opts(opts, err) != 0)
        goto fail;
    name = verify_scheme_name(opts->scheme);
    v = calloc(1, sizeof(*v));
    if (!v) {
        sl_err_set(err, SL_ERR_NOMEM, "verify: out of memory");
        goto fail;
    }
    v->scheme = opts->scheme;
    v->tolerance_s = opts->tolerance_s ? opts->tolerance_s : VERIFY_TOLERANCE_DEFAULT;
    v->base64 = opts->base64;
    if (opts->scheme == VERIFY_GITHUB) {
        snprintf(v->header, sizeof(v->header), "%s", GITHUB_HDR);
        snprintf(v->prefix, sizeof(v->prefix), "sha256=");
    } else if (opts->scheme == VERIFY_HMAC_SHA256) {
        snprintf(v->header, sizeof(v->header), "%s", opts->header);
        snprintf(v->prefix, sizeof(v->prefix), "%s", opts->prefix ? opts->prefix : "");
    }
    v->prefix_len = strlen(v->prefix);

    for (size_t i = 0; i < opts->n_secrets; i++, v->n_keys++) {
        const char *secret = opts->secrets[i], *why = NULL;
        if (opts->scheme == VERIFY_API_KEY) {
            if (sl_hex_decode(secret, strnlen(secret, HEX_LEN + 1), v->key_hash[i], MAC_LEN) != 0) {
                sl_err_set(err, SL_ERR_CONFIG,
                           "verify: api-key hash #%zu is not a SHA-256 in hex (64 hex digits)",
                           i + 1);
                goto fail;
            }
            continue;
        }
        int rc = secret_mac(opts->scheme, secret, &v->mac[i], &why);
        if (rc == -1) {
            sl_err_set(err, SL_ERR_CONFIG, "verify: %s secret #%zu %s", name, i + 1, why);
            goto fail;
        }
        if (rc != 0) {
            sl_err_set(err, SL_ERR_INTERNAL, "verify: OpenSSL could not set up HMAC-SHA256");
            goto fail;
        }
    }
    return v;
fail:
    verify_destroy(v);
    return NULL;
}

void verify_destroy(verify_t *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < VERIFY_SECRETS_MAX; i++)
        sl_hmac_destroy(v->mac[i]); /* the HMAC provider clears its key copy */
    OPENSSL_cleanse(v, sizeof(*v));
    free(v);
}

/* ---- signing -------------------------------------------------------------------------------- */

/* MAC of the parts under one secret, as verify would compute it for `scheme`. */
static int sign_parts(enum verify_scheme scheme, const char *secret,
                      const struct sl_sign_part *parts, size_t n_parts, unsigned char mac[MAC_LEN],
                      struct sl_err *err)
{
    sl_hmac_t *ctx = NULL;
    const char *why = NULL;
    int rc = -1;

    if (!secret) {
        sl_err_set(err, SL_ERR_INVALID, "verify: no signing secret");
        goto out;
    }
    rc = secret_mac(scheme, secret, &ctx, &why);
    if (rc == -1) {
        sl_err_set(err, SL_ERR_INVALID, "verify: %s signing secret %s", verify_scheme_name(scheme),
                   why);
        goto out;
    }
    if (rc != 0 || sl_hmac_compute(ctx, parts, n_parts, mac) != 0) {
        rc = sl_err_set(err, SL_ERR_INTERNAL, "verify: OpenSSL could not compute HMAC-SHA256");
        goto out;
    }
    rc = 0;
out:
    sl_hmac_destroy(ctx);
    return rc;
}

/* Formats "<a><b>" into out; -1 when it does not fit. */
static int put(char *out, size_t out_size, const char *a, const char *b, struct sl_err *err)
{
    int n = snprintf(out, out_size, "%s%s", a, b);
    if (n < 0 || (size_t)n >= out_size)
        return sl_err_set(err, SL_ERR_INVALID, "verify: output buffer of %zu bytes is too small",
                          out_size);
    return 0;
}

int verify_sign_stripe(const char *secret, long ts, const void *body, size_t len, char *out,
                       size_t out_size, struct sl_err *err)
{
    unsigned char mac[MAC_LEN];
    char t[32], head[48], hex[HEX_LEN + 1];
    int rc = -1;

    if (ts < 0) {
        sl_err_set(err, SL_ERR_INVALID, "verify: negative timestamp");
        goto out;
    }
    snprintf(t, sizeof(t), "%ld", ts);
    const struct sl_sign_part parts[] = {{t, strlen(t)}, {".", 1}, {body, len}};
    if (sign_parts(VERIFY_STRIPE, secret, parts, 3, mac, err) != 0)
        goto out;
    hex_encode(mac, MAC_LEN, hex);
    snprintf(head, sizeof(head), "t=%s,v1=", t);
    rc = put(out, out_size, head, hex, err);
out:
    OPENSSL_cleanse(mac, sizeof(mac));
    return rc;
}

int verify_sign_standard_webhooks(const char *secret, const char *msg_id, long ts, const void *body,
                                  size_t len, char *out, size_t out_size, struct sl_err *err)
{
    char sig[SL_SIGN_SW_MAX];
    sl_hmac_t *key = NULL;
    const char *why = NULL;
    int rc = -1;

    if (ts < 0 || !msg_id || !msg_id[0]) {
        sl_err_set(err, SL_ERR_INVALID, "verify: a message id and a timestamp >= 0 are needed");
        goto out;
    }
    int krc = secret ? sl_sign_sw_key(secret, &key, &why) : -1;
    if (krc == -1) {
        sl_err_set(err, SL_ERR_INVALID, "verify: standard-webhooks signing secret %s",
                   secret ? why : "is missing");
        goto out;
    }
    if (krc != 0 || sl_sign_sw(key, msg_id, ts, body, len, sig) != 0) {
        sl_err_set(err, SL_ERR_INTERNAL, "verify: OpenSSL could not compute HMAC-SHA256");
        goto out;
    }
    rc = put(out, out_size, sig, "", err);
out:
    OPENSSL_cleanse(sig, sizeof(sig));
    sl_hmac_destroy(key);
    return rc;
}

int verify_sign_hmac_sha256(const char *secret, const char *prefix, bool base64, const void *body,
                            size_t len, char *out, size_t out_size, struct sl_err *err)
{
    unsigned char mac[MAC_LEN];
    char enc[HEX_LEN + 1]; /* hex is the longer of the two encodings */
    int rc = -1;

    const struct sl_sign_part parts[] = {{body, len}};
    if (sign_parts(VERIFY_HMAC_SHA256, secret, parts, 1, mac, err) != 0)
        goto out;
    if (base64)
        EVP_EncodeBlock((unsigned char *)enc, mac, MAC_LEN);
    else
        hex_encode(mac, MAC_LEN, enc);
    rc = put(out, out_size, prefix ? prefix : "", enc, err);
out:
    OPENSSL_cleanse(mac, sizeof(mac));
    return rc;
}
