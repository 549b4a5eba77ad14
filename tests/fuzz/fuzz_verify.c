/*
 * Every inbound signature scheme's header parsing (ingress/verify.c): stripe, github,
 * standard-webhooks, hmac-sha256 (hex with a prefix, and base64) and api-key. The first byte of
 * the input picks the scheme; the rest is "Name: value" header lines, an empty line, the body.
 *
 * Checks: every answer is OK or REJECTED with a fixed reason, never an error; and the signers
 * agree with the verifier: the body signed by verify_sign_* (with the timestamp and webhook-id
 * the input carries, when they parse) always verifies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "verify.h"

#define NOW       1700000000L
#define SECRET    "whsec_fuzz"
#define SW_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define KEY_SHA256                                                                                 \
    "231e9b2f757db8d48ecd0711b60135e1cc57a3a807be9dc12638856f17a7872c" /* fuzz-key                 \
                                                                        */

enum variant { V_STRIPE, V_GITHUB, V_STANDARD_WEBHOOKS, V_HMAC_HEX, V_HMAC_B64, V_API_KEY, N_V };

static verify_t *verifiers[N_V];

static verify_t *make(enum verify_scheme scheme, const char *secret, const char *header,
                      const char *prefix, bool base64)
{
    const char *secrets[] = {secret, "second-secret-for-rotation"};
    struct verify_opts o = {.scheme = scheme,
                            .secrets = secrets,
                            .n_secrets = scheme == VERIFY_API_KEY ? 1 : 2,
                            .header = header,
                            .prefix = prefix,
                            .base64 = base64};
    if (scheme == VERIFY_STANDARD_WEBHOOKS)
        secrets[1] = "whsec_c2Vjb25kLXNlY3JldA==";
    struct sl_err err;
    verify_t *v = verify_new(&o, &err);
    if (!v)
        fuzz_fail("verify_new(%s): %s", verify_scheme_name(scheme), err.msg);
    return v;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    verifiers[V_STRIPE] = make(VERIFY_STRIPE, SECRET, NULL, NULL, false);
    verifiers[V_GITHUB] = make(VERIFY_GITHUB, SECRET, NULL, NULL, false);
    verifiers[V_STANDARD_WEBHOOKS] = make(VERIFY_STANDARD_WEBHOOKS, SW_SECRET, NULL, NULL, false);
    verifiers[V_HMAC_HEX] = make(VERIFY_HMAC_SHA256, SECRET, "X-Signature", "sha256=", false);
    verifiers[V_HMAC_B64] = make(VERIFY_HMAC_SHA256, SECRET, "X-Signature", NULL, true);
    verifiers[V_API_KEY] = make(VERIFY_API_KEY, KEY_SHA256, NULL, NULL, false);
    return 0;
}

/* The request's headers, or the one header a signer wrote (`override`) in its place. */
struct lookup {
    const struct fuzz_headers *h;
    const char *override_name, *override_value;
};

static const char *lookup(void *opaque, const char *name)
{
    const struct lookup *l = opaque;
    if (l->override_name && strcasecmp(name, l->override_name) == 0)
        return l->override_value;
    return fuzz_headers_get(l->h, name);
}

static void check(const verify_t *v, struct lookup *l, const uint8_t *body, size_t len,
                  bool must_pass)
{
    const char *reason = NULL;
    int rc = verify_check(v, lookup, l, body, len, NOW, &reason);
    if (rc == VERIFY_OK && reason)
        fuzz_fail("accepted with a reason: %s", reason);
    if (rc == VERIFY_REJECTED && !reason)
        fuzz_fail("rejected without a reason");
    if (rc != VERIFY_OK && rc != VERIFY_REJECTED)
        fuzz_fail("verify_check returned %d (%s) on a request", rc, reason ? reason : "");
    if (must_pass && rc != VERIFY_OK)
        fuzz_fail("a request signed by verify_sign_* is rejected: %s", reason);
}

/* Signs the body as a sender would and checks that it passes. */
static void sign_and_check(enum variant var, struct lookup *l, const uint8_t *body, size_t len)
{
    char sig[VERIFY_SIGNATURE_OUT_MAX];
    struct sl_err err;
    int rc = 0;
    const char *t = fuzz_headers_get(l->h, "webhook-timestamp");
    const char *id = fuzz_headers_get(l->h, "webhook-id");
    switch (var) {
    case V_STRIPE:
        rc = verify_sign_stripe(SECRET, NOW, body, len, sig, sizeof(sig), &err);
        l->override_name = "Stripe-Signature";
        break;
    case V_GITHUB:
        rc = verify_sign_hmac_sha256(SECRET, "sha256=", false, body, len, sig, sizeof(sig), &err);
        l->override_name = "X-Hub-Signature-256";
        break;
    case V_STANDARD_WEBHOOKS:
        /* Only when the request's own id and timestamp would pass: the signer signs them as
         * given, the verifier reads them back from the headers. */
        if (!id || !*id || strlen(id) > VERIFY_HEADER_MAX || !t || strcmp(t, "1700000000") != 0)
            return;
        rc = verify_sign_standard_webhooks(SW_SECRET, id, NOW, body, len, sig, sizeof(sig), &err);
        l->override_name = "webhook-signature";
        break;
    case V_HMAC_HEX:
        rc = verify_sign_hmac_sha256(SECRET, "sha256=", false, body, len, sig, sizeof(sig), &err);
        l->override_name = "X-Signature";
        break;
    case V_HMAC_B64:
        rc = verify_sign_hmac_sha256(SECRET, NULL, true, body, len, sig, sizeof(sig), &err);
        l->override_name = "X-Signature";
        break;
    case V_API_KEY:
        snprintf(sig, sizeof(sig), "Bearer fuzz-key");
        l->override_name = "Authorization";
        break;
    case N_V:
        return;
    }
    if (rc != 0)
        fuzz_fail("signing failed: %s", err.msg);
    l->override_value = sig;
    check(verifiers[var], l, body, len, true);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > FUZZ_INPUT_MAX)
        return 0;
    enum variant var = (enum variant)(data[0] % N_V);
    struct fuzz_headers h;
    fuzz_headers_parse(&h, data + 1, size - 1);
    for (size_t i = 0; i < h.n; i++)
        (void)verify_header_is_credential(verifiers[var], h.names[i]);
    struct lookup l = {.h = &h};
    check(verifiers[var], &l, h.body, h.body_len, false);
    sign_and_check(var, &l, h.body, h.body_len);
    fuzz_headers_free(&h);
    return 0;
}
