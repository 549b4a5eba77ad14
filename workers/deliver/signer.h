/*
 * signer: outbound Standard Webhooks signatures of one destination (sl_sign does the HMAC, the
 * same code ingress verifies with). Each request carries
 *
 *   webhook-id: <msg id>    webhook-timestamp: <unix seconds>
 *   webhook-signature: v1,<sig under secret 1> v1,<sig under secret 2> ...
 *
 * one signature per configured secret, so a receiver can rotate: configure the new secret
 * next to the old one, let the receiver switch, then drop the old one. Secrets come from the
 * pipeline file (`sign.secret`, via ${VAR}) and/or a file with one secret per line
 * (`sign.secret_file`), which is re-read when it changes (secret.h); the keys are rebuilt only
 * then.
 */
#ifndef DLV_SIGNER_H
#define DLV_SIGNER_H

#include <stddef.h>

#include "sl_err.h"
#include "sl_sign.h"

#define DLV_SIGN_SECRETS_MAX 8 /* secrets signing at once */
/* The longest webhook-signature value: one entry per secret, separated by spaces. */
#define DLV_SIGN_HEADER_MAX (DLV_SIGN_SECRETS_MAX * SL_SIGN_SW_MAX)

typedef struct dlv_signer dlv_signer_t;

/* `secrets` (n of them) and/or `secret_file` (NULL for none); at least one secret in all, at
 * most DLV_SIGN_SECRETS_MAX. Fails, naming the secret's position but never its content, on a
 * secret that is not whsec_/base64. The caller owns the result. */
dlv_signer_t *dlv_signer_new(const char *const *secrets, size_t n, const char *secret_file,
                             struct sl_err *err) __attribute__((warn_unused_result));
void dlv_signer_destroy(dlv_signer_t *s);

/* The webhook-signature value for (msg_id, ts, body) into out (DLV_SIGN_HEADER_MAX bytes).
 * Re-reads the secret file first when due. 0, or -1 with *err. */
int dlv_signer_sign(dlv_signer_t *s, long long now_ms, const char *msg_id, long long ts,
                    const void *body, size_t len, char *out, size_t size, struct sl_err *err);

#endif
