/*
 * sl_sign: HMAC-SHA256 and the Standard Webhooks signature, shared by inbound verification
 * (ingress/verify) and outbound signing (sluice-deliver), so that what one side signs the other
 * verifies byte for byte.
 *
 * A key (sl_hmac_t) is an HMAC-SHA256 context keyed once; every computation duplicates it, so
 * the key schedule is not redone per message and a key may be used from several threads at
 * once (EVP_MAC_CTX_dup takes it as const: openssl-threads(7)). The signed content is given as
 * parts, fed in order without copying.
 *
 * Standard Webhooks 1.0.0 (github.com/standard-webhooks/standard-webhooks): the signed content
 * is "<msg_id>.<timestamp>.<body>", the key is the base64 decoding of the secret after an
 * optional "whsec_" prefix (the reference libraries accept both forms), the signature is
 * "v1,<base64 HMAC-SHA256>"; a header carries several, separated by spaces, during a rotation.
 *
 * No secret ever reaches a message: failure reasons are fixed strings.
 */
#ifndef SL_SIGN_H
#define SL_SIGN_H

#include <stddef.h>

#define SL_SIGN_MAC_LEN 32  /* HMAC-SHA256 output */
#define SL_SIGN_KEY_MAX 512 /* bytes of one decoded key */
/* "v1," + the 44 base64 characters of a 32-byte MAC + NUL. */
#define SL_SIGN_SW_MAX 48

typedef struct sl_hmac sl_hmac_t;

/* A piece of signed content; empty pieces are allowed. */
struct sl_sign_part {
    const void *p;
    size_t n;
};

/* A key from raw bytes (1..SL_SIGN_KEY_MAX), or NULL when OpenSSL fails. The caller owns it
 * (sl_hmac_destroy); the bytes may be wiped as soon as this returns. */
sl_hmac_t *sl_hmac_new(const void *key, size_t len);
/* HMAC-SHA256 of the parts, in order. 0, or -1 when OpenSSL fails. */
int sl_hmac_compute(const sl_hmac_t *h, const struct sl_sign_part *parts, size_t n_parts,
                    unsigned char out[SL_SIGN_MAC_LEN]);
/* Frees the key (OpenSSL's HMAC clears its copy of the key bytes). NULL is a no-op. */
void sl_hmac_destroy(sl_hmac_t *h);

/* Strict standard base64 (RFC 4648 section 4, padded): any other byte, a misplaced '=' or
 * non-zero trailing bits are refused, so one value has exactly one accepted encoding.
 * Returns 0 with *out_len, or -1 (malformed, or more than out_max bytes). */
int sl_b64_decode(const char *in, size_t len, unsigned char *out, size_t out_max, size_t *out_len);

/* The Standard Webhooks key of `secret` ("whsec_<base64>" or bare base64). Returns 0 with *out
 * (the caller owns it), -1 with *why (a fixed reason: the secret is empty, too long or not
 * base64), or -2 when OpenSSL fails. */
int sl_sign_sw_key(const char *secret, sl_hmac_t **out, const char **why);

/* One webhook-signature entry, "v1,<base64>", over "<msg_id>.<ts>.<body>" into out.
 * msg_id must not be empty and ts must be >= 0. Returns 0, or -1 (bad arguments, OpenSSL). */
int sl_sign_sw(const sl_hmac_t *key, const char *msg_id, long long ts, const void *body, size_t len,
               char out[SL_SIGN_SW_MAX]);

/* Bearer keys stored as hashes (ingress's api-key scheme, sluice-admin's tokens): the index in
 * hashes[0..n) of the SHA-256 of key[0..len), or -1 when none matches, -2 when OpenSSL fails.
 * Every hash is compared in full, with no early exit and no branch on a byte of a hash, so the
 * time taken depends only on n. */
int sl_sign_key_lookup(const void *key, size_t len, const unsigned char (*hashes)[SL_SIGN_MAC_LEN],
                       size_t n);

#endif
