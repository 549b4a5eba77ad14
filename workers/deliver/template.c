#include "template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_expr.h"
#include "sl_text.h"

struct dlv_template {
    char *text;
    size_t n;                             /* parts */
    char *literal[DLV_URL_PARTS_MAX + 1]; /* before part i; the last one after every part */
    sl_expr_t *part[DLV_URL_PARTS_MAX];
};

void dlv_template_destroy(dlv_template_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i <= t->n && i <= DLV_URL_PARTS_MAX; i++)
        free(t->literal[i]);
    for (size_t i = 0; i < t->n; i++)
        sl_expr_destroy(t->part[i]);
    free(t->text);
    free(t);
}

dlv_template_t *dlv_template_new(const char *name, const char *text, struct sl_err *err)
{
    dlv_template_t *t = calloc(1, sizeof(*t));
    if (!t || !(t->text = strdup(text))) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    const char *scheme_end = strstr(text, "://");
    if ((strncmp(text, "http://", 7) != 0 && strncmp(text, "https://", 8) != 0) || !scheme_end) {
        sl_err_set(err, SL_ERR_CONFIG, "%s: must be an http:// or https:// URL", name);
        goto fail;
    }
    const char *path = strchr(scheme_end + 3, '/');
    const char *p = text;
    struct sl_err dot;
    if (sl_url_refuse_dot_segments(text, &dot) != 0) {
        /* Sent as written (CURLOPT_PATH_AS_IS), so a server would resolve it: write the path
         * it leads to instead. */
        sl_err_set(err, SL_ERR_CONFIG, "%s: %s", name, dot.msg);
        goto fail;
    }
    for (;;) {
        const char *open = strstr(p, "{{");
        if (!open) {
            if (!(t->literal[t->n] = strdup(p))) {
                sl_err_set(err, SL_ERR_NOMEM, "out of memory");
                goto fail;
            }
            break;
        }
        if (!path || open < path) {
            sl_err_set(err, SL_ERR_CONFIG, "%s: {{ }} parts may only follow the host", name);
            goto fail;
        }
        const char *close = strstr(open + 2, "}}");
        if (!close) {
            sl_err_set(err, SL_ERR_CONFIG, "%s: a {{ without its }}", name);
            goto fail;
        }
        if (t->n == DLV_URL_PARTS_MAX) {
            sl_err_set(err, SL_ERR_CONFIG, "%s: more than %d {{ }} parts", name, DLV_URL_PARTS_MAX);
            goto fail;
        }
        char part_name[SL_EXPR_MAX_NAME];
        snprintf(part_name, sizeof(part_name), "%.100s part %zu", name, t->n + 1);
        char *program = strndup(open + 2, (size_t)(close - open - 2));
        t->literal[t->n] = strndup(p, (size_t)(open - p));
        if (!program || !t->literal[t->n]) {
            free(program);
            sl_err_set(err, SL_ERR_NOMEM, "out of memory");
            goto fail;
        }
        t->part[t->n] = sl_expr_compile(part_name, program, err);
        free(program);
        if (!t->part[t->n])
            goto fail;
        t->n++;
        p = close + 2;
    }
    return t;
fail:
    dlv_template_destroy(t);
    return NULL;
}

bool dlv_template_dynamic(const dlv_template_t *t)
{
    return t->n > 0;
}

const char *dlv_template_text(const dlv_template_t *t)
{
    return t->text;
}

/* Appends s[0..n) percent-encoded (or as it is) to out; false when it does not fit. */
static bool append(char *out, size_t *len, const char *s, size_t n, bool encode)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool plain = !encode || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
        if (*len + (plain ? 1 : 3) >= DLV_URL_MAX)
            return false;
        if (plain) {
            out[(*len)++] = (char)c;
        } else {
            out[(*len)++] = '%';
            out[(*len)++] = hex[c >> 4];
            out[(*len)++] = hex[c & 15];
        }
    }
    out[*len] = '\0';
    return true;
}

char *dlv_template_render(const dlv_template_t *t, const json_t *event, struct sl_err *err)
{
    char *out = malloc(DLV_URL_MAX);
    size_t len = 0;
    if (!out) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    out[0] = '\0';
    for (size_t i = 0; i <= t->n; i++) {
        if (!append(out, &len, t->literal[i], strlen(t->literal[i]), false))
            goto too_long;
        if (i == t->n)
            break;
        json_t *v = sl_expr_value(t->part[i], event, err);
        if (!v)
            goto fail;
        char num[64];
        const char *s = NULL;
        size_t n = 0;
        if (json_is_string(v)) {
            s = json_string_value(v);
            n = json_string_length(v);
        } else if (json_is_integer(v)) {
            n = (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            s = num;
        } else if (json_is_real(v)) {
            n = (size_t)snprintf(num, sizeof(num), "%.17g", json_real_value(v));
            s = num;
        }
        bool ok = s && n > 0 && append(out, &len, s, n, true);
        json_decref(v);
        if (!s || n == 0) {
            sl_err_set(err, SL_ERR_INVALID,
                       "url part %zu gave no string or number to put in the URL", i + 1);
            goto fail;
        }
        if (!ok)
            goto too_long;
    }
    /* Values cannot hold '/' (it is encoded) but can be "." or "..", or end a literal "." into
     * one: a server would resolve that segment away and the request, with the destination's
     * credentials, would reach another path. Refused, never encoded: many servers decode %2E
     * before they resolve dot segments. The configured text has none (dlv_template_new). */
    if (sl_url_refuse_dot_segments(out, err) != 0)
        goto fail;
    char *fit = realloc(out, len + 1); /* events keep their URL: no 8 KiB each */
    return fit ? fit : out;
too_long:
    sl_err_set(err, SL_ERR_INVALID, "the URL would be longer than %d bytes", DLV_URL_MAX);
fail:
    free(out);
    return NULL;
}
