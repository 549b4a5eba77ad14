#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sl_sign.h"
#include "sl_text.h"

#define TOKEN_MAX 4096 /* bytes of a presented token */

struct adm_auth {
    size_t n;
    struct adm_identity who[ADM_AUTH_TOKENS_MAX];
    unsigned char hash[ADM_AUTH_TOKENS_MAX][SL_SIGN_MAC_LEN];
};

adm_auth_t *adm_auth_new(void)
{
    return calloc(1, sizeof(adm_auth_t));
}

void adm_auth_destroy(adm_auth_t *auth)
{
    free(auth);
}

const char *adm_role_name(enum adm_role role)
{
    return role == ADM_ROLE_OPERATOR ? "operator" : "viewer";
}

int adm_auth_add(adm_auth_t *auth, const char *name, const char *sha256_hex, enum adm_role role,
                 struct sl_err *err)
{
    if (auth->n == ADM_AUTH_TOKENS_MAX)
        return sl_err_set(err, SL_ERR_CONFIG, "more than %d tokens", ADM_AUTH_TOKENS_MAX);
    if (!*name || strlen(name) > ADM_AUTH_NAME_MAX)
        return sl_err_set(err, SL_ERR_CONFIG, "a token's name must be 1 to %d bytes",
                          ADM_AUTH_NAME_MAX);
    if (sl_hex_decode(sha256_hex, strlen(sha256_hex), auth->hash[auth->n], SL_SIGN_MAC_LEN) != 0)
        return sl_err_set(err, SL_ERR_CONFIG,
                          "token %s: sha256 is not a SHA-256 in hex (64 hex digits)", name);
    snprintf(auth->who[auth->n].name, sizeof(auth->who[auth->n].name), "%s", name);
    auth->who[auth->n].role = role;
    auth->n++;
    return 0;
}

adm_auth_t *adm_auth_load(const sl_conf_t *conf, struct sl_err *err)
{
    adm_auth_t *auth = adm_auth_new();
    if (!auth) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    const sl_conf_node_t *tokens = sl_conf_find(sl_conf_root(conf), "admin.tokens");
    for (size_t i = 0; i < sl_conf_count(tokens); i++) {
        const sl_conf_node_t *t = sl_conf_item(tokens, i);
        const char *name, *hash, *role;
        if (sl_conf_str(conf, t, "name", NULL, &name, err) != 0 ||
            sl_conf_str(conf, t, "sha256", NULL, &hash, err) != 0 ||
            sl_conf_str(conf, t, "role", NULL, &role, err) != 0)
            goto fail;
        enum adm_role r = strcmp(role, "operator") == 0 ? ADM_ROLE_OPERATOR : ADM_ROLE_VIEWER;
        if (adm_auth_add(auth, name, hash, r, err) != 0) {
            char why[SL_ERR_MSG_MAX];
            snprintf(why, sizeof(why), "%s", err->msg);
            sl_conf_error(conf, t, err, "%s", why);
            goto fail;
        }
    }
    return auth;
fail:
    adm_auth_destroy(auth);
    return NULL;
}

const struct adm_identity *adm_auth_check(const adm_auth_t *auth, const char *authorization)
{
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    size_t len = strnlen(token, TOKEN_MAX + 1);
    if (len == 0 || len > TOKEN_MAX)
        return NULL;
    int which = sl_sign_key_lookup(token, len, auth->hash, auth->n);
    return which >= 0 ? &auth->who[which] : NULL;
}
