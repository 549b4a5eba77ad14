#include "signer.h"

#include <stdlib.h>
#include <string.h>

#include "secret.h"
#include "sl_log.h"

struct dlv_signer {
    sl_hmac_t *fixed[DLV_SIGN_SECRETS_MAX]; /* from the pipeline file */
    size_t n_fixed;
    dlv_secret_t *file; /* NULL without secret_file */
    unsigned file_generation;
    sl_hmac_t *from_file[DLV_SIGN_SECRETS_MAX];
    size_t n_file;
};

static void drop_keys(sl_hmac_t **keys, size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        sl_hmac_destroy(keys[i]);
        keys[i] = NULL;
    }
    *n = 0;
}

/* Keys from a file's lines into keys[] (at most `room`). 0, or -1 with *err (keys unchanged). */
static int keys_from_lines(const char *text, size_t room, sl_hmac_t **keys, size_t *n,
                           struct sl_err *err)
{
    sl_hmac_t *built[DLV_SIGN_SECRETS_MAX] = {0};
    size_t nb = 0;
    const char *p = text;
    int rc = -1;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[DLV_SECRET_MAX + 1];
        memcpy(line, p, len);
        line[len] = '\0';
        while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = '\0';
        const char *why = NULL;
        if (len > 0) {
            if (nb == room) {
                sl_err_set(err, SL_ERR_CONFIG, "more than %d signing secrets",
                           DLV_SIGN_SECRETS_MAX);
                explicit_bzero(line, sizeof(line));
                goto out;
            }
            if (sl_sign_sw_key(line, &built[nb], &why) != 0) {
                sl_err_set(err, SL_ERR_CONFIG, "signing secret file, secret #%zu: %s", nb + 1,
                           why ? why : "cannot set up HMAC-SHA256");
                explicit_bzero(line, sizeof(line));
                goto out;
            }
            nb++;
        }
        explicit_bzero(line, sizeof(line));
        p = eol ? eol + 1 : p + len;
    }
    drop_keys(keys, n);
    memcpy(keys, built, nb * sizeof(*built));
    *n = nb;
    nb = 0;
    rc = 0;
out:
    drop_keys(built, &nb);
    return rc;
}

dlv_signer_t *dlv_signer_new(const char *const *secrets, size_t n, const char *secret_file,
                             struct sl_err *err)
{
    dlv_signer_t *s = calloc(1, sizeof(*s));
    if (!s) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (n > DLV_SIGN_SECRETS_MAX) {
        sl_err_set(err, SL_ERR_CONFIG, "more than %d signing secrets", DLV_SIGN_SECRETS_MAX);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        if (sl_sign_sw_key(secrets[i], &s->fixed[i], &why) != 0) {
            sl_err_set(err, SL_ERR_CONFIG, "signing secret #%zu %s", i + 1,
                       why ? why : "cannot be used (OpenSSL failed)");
            goto fail;
        }
        s->n_fixed++;
    }
    if (secret_file) {
        if (!(s->file = dlv_secret_new(NULL, secret_file, true, err)) ||
            keys_from_lines(dlv_secret_get(s->file, 0, false, &s->file_generation),
                            DLV_SIGN_SECRETS_MAX - s->n_fixed, s->from_file, &s->n_file, err) != 0)
            goto fail;
    }
    if (s->n_fixed + s->n_file == 0) {
        sl_err_set(err, SL_ERR_CONFIG, "signing needs at least one secret");
        goto fail;
    }
    return s;
fail:
    dlv_signer_destroy(s);
    return NULL;
}

void dlv_signer_destroy(dlv_signer_t *s)
{
    if (!s)
        return;
    drop_keys(s->fixed, &s->n_fixed);
    drop_keys(s->from_file, &s->n_file);
    dlv_secret_destroy(s->file);
    free(s);
}

int dlv_signer_sign(dlv_signer_t *s, long long now_ms, const char *msg_id, long long ts,
                    const void *body, size_t len, char *out, size_t size, struct sl_err *err)
{
    if (s->file) {
        unsigned gen;
        const char *text = dlv_secret_get(s->file, now_ms, false, &gen);
        if (gen != s->file_generation) {
            struct sl_err why;
            if (keys_from_lines(text, DLV_SIGN_SECRETS_MAX - s->n_fixed, s->from_file, &s->n_file,
                                &why) == 0)
                SL_INFO("signing with the %zu secret(s) of the rotated file", s->n_file);
            else
                SL_WARN("%s; signing with the previous secrets", why.msg);
            s->file_generation = gen;
        }
    }
    size_t used = 0;
    sl_hmac_t *const *lists[] = {s->fixed, s->from_file};
    const size_t counts[] = {s->n_fixed, s->n_file};
    for (size_t l = 0; l < 2; l++) {
        for (size_t i = 0; i < counts[l]; i++) {
            char sig[SL_SIGN_SW_MAX];
            if (sl_sign_sw(lists[l][i], msg_id, ts, body, len, sig) != 0)
                return sl_err_set(err, SL_ERR_INTERNAL, "cannot compute a webhook signature");
            size_t n = strlen(sig);
            if (used + (used ? 1 : 0) + n + 1 > size)
                return sl_err_set(err, SL_ERR_INVALID, "webhook-signature does not fit");
            if (used)
                out[used++] = ' ';
            memcpy(out + used, sig, n + 1);
            used += n;
        }
    }
    return 0;
}
