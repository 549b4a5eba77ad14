/*
 * auth: the bearer tokens of sluice-admin (admin.tokens in the pipeline file). A token is
 * configured as the hex SHA-256 of its text with a name and a role; a presented token is hashed
 * and compared with every configured hash in constant time (sl_sign_key_lookup), so neither the
 * configuration nor the timing gives a token away.
 */
#ifndef ADM_AUTH_H
#define ADM_AUTH_H

#include <stddef.h>

#include "sl_conf.h"
#include "sl_err.h"

#define ADM_AUTH_TOKENS_MAX 64
#define ADM_AUTH_NAME_MAX   64 /* bytes of a token's name */

enum adm_role { ADM_ROLE_VIEWER, ADM_ROLE_OPERATOR };

struct adm_identity {
    char name[ADM_AUTH_NAME_MAX + 1];
    enum adm_role role;
};

typedef struct adm_auth adm_auth_t;

/* The tokens of `conf` (admin.tokens; none: every request is refused). The caller owns the
 * result (adm_auth_destroy). NULL with *err (file:line) for a malformed hash or name. */
adm_auth_t *adm_auth_load(const sl_conf_t *conf, struct sl_err *err)
    __attribute__((warn_unused_result));
/* One token, for tests and for the loader: `sha256_hex` is 64 hex digits. 0, or -1 with *err. */
int adm_auth_add(adm_auth_t *auth, const char *name, const char *sha256_hex, enum adm_role role,
                 struct sl_err *err) __attribute__((warn_unused_result));
adm_auth_t *adm_auth_new(void);
void adm_auth_destroy(adm_auth_t *auth);

/* The identity of an Authorization header value ("Bearer <token>"; the scheme in any case).
 * Returns a pointer into `auth` (valid while it lives), or NULL for a missing, malformed or
 * unknown token. */
const struct adm_identity *adm_auth_check(const adm_auth_t *auth, const char *authorization);

const char *adm_role_name(enum adm_role role);

#endif
