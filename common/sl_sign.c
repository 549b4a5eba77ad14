#include "sl_sign.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WHSEC "whsec_"

struct sl_hmac {
    EVP_MAC_CTX *ctx; /* keyed, never updated: each computation works on a duplicate */
};

sl_hmac_t *sl_hmac_new(const void *key, size_t len)
{
    if (!key || len == 0 || len > SL_SIGN_KEY_MAX)
        return NULL;
    sl_hmac_t *h = calloc(1, sizeof(*h));
    EVP_MAC *mac = h ? EVP_MAC_fetch(NULL, "HMAC", NULL) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (mac)
        h->ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context holds its own reference */
    if (!h || !h->ctx || !EVP_MAC_init(h->ctx, key, len, params)) {
        sl_hmac_destroy(h);
        return NULL;
    }
    return h;
}

int sl_hmac_compute(const sl_hmac_t *h, const struct sl_sign_part *parts, size_t n_parts,
                    unsigned char out[SL_SIGN_MAC_LEN])
{
    int rc = -1;
    size_t out_len = 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(h->ctx);
    if (!ctx)
        goto out;
    for (size_t i = 0; i < n_parts; i++)
        if (parts[i].n > 0 && !EVP_MAC_update(ctx, parts[i].p, parts[i].n))
            goto out;
    if (!EVP_MAC_final(ctx, out, &out_len, SL_SIGN_MAC_LEN) || out_len != SL_SIGN_MAC_LEN)
        goto out;
    rc = 0;
out:
    EVP_MAC_CTX_free(ctx);
    return rc;
}

void sl_hmac_destroy(sl_hmac_t *h)
{
    if (!h)
        return;
    EVP_MAC_CTX_free(h->ctx);
    free(h);
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int sl_b64_decode(const char *in, size_t len, unsigned char *out, size_t out_max, size_t *out_len)
{
    if (len == 0 || len % 4 != 0)
        return -1;
    size_t pad = in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
    if (len / 4 * 3 - pad > out_max)
        return -1;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len - pad; i++) {
        int d = b64_value((unsigned char)in[i]);
        if (d < 0)
            return -1;
        acc = acc << 6 | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return -1;
    *out_len = o;
    return 0;
}

int sl_sign_sw_key(const char *secret, sl_hmac_t **out, const char **why)
{
    unsigned char key[SL_SIGN_KEY_MAX];
    size_t key_len = 0;
    int rc = -1;

    size_t len = secret ? strnlen(secret, 2 * SL_SIGN_KEY_MAX + 1) : 0;
    if (len == 0) {
        *why = "is empty";
        goto out;
    }
    if (len > 2 * SL_SIGN_KEY_MAX) {
        *why = "is longer than the limit";
        goto out;
    }
    const char *b64 = strncmp(secret, WHSEC, strlen(WHSEC)) == 0 ? secret + strlen(WHSEC) : secret;
    if (sl_b64_decode(b64, strlen(b64), key, sizeof(key), &key_len) != 0 || key_len == 0) {
        *why = "is not base64 after the optional whsec_ prefix";
        goto out;
    }
    *out = sl_hmac_new(key, key_len);
    rc = *out ? 0 : -2;
out:
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

int sl_sign_sw(const sl_hmac_t *key, const char *msg_id, long long ts, const void *body, size_t len,
               char out[SL_SIGN_SW_MAX])
{
    unsigned char mac[SL_SIGN_MAC_LEN];
    char t[24];
    int rc = -1;

    if (!key || ts < 0 || !msg_id || !msg_id[0])
        goto out;
    snprintf(t, sizeof(t), "%lld", ts);
    const struct sl_sign_part parts[] = {
        {msg_id, strlen(msg_id)}, {".", 1}, {t, strlen(t)}, {".", 1}, {body, len}};
    if (sl_hmac_compute(key, parts, 5, mac) != 0)
        goto out;
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, mac, SL_SIGN_MAC_LEN); /* 44 chars + NUL */
    rc = 0;
out:
    OPENSSL_cleanse(mac, sizeof(mac));
    return rc;
}

int sl_sign_key_lookup(const void *key, size_t len, const unsigned char (*hashes)[SL_SIGN_MAC_LEN],
                       size_t n)
{
    unsigned char hash[SL_SIGN_MAC_LEN];
    unsigned int hash_len = 0;
    long found = -1;
    if (!EVP_Digest(key, len, hash, &hash_len, EVP_sha256(), NULL) || hash_len != SL_SIGN_MAC_LEN) {
        OPENSSL_cleanse(hash, sizeof(hash));
        return -2;
    }
    for (size_t k = 0; k < n; k++) {
        /* mask: all ones when hash k matches, else 0; the first match is kept. */
        long mask = -(long)(CRYPTO_memcmp(hash, hashes[k], SL_SIGN_MAC_LEN) == 0);
        long first = -(long)(found < 0);
        found = (found & ~(mask & first)) | ((long)k & mask & first);
    }
    OPENSSL_cleanse(hash, sizeof(hash));
    return (int)found;
}
