#include "sl_cloudevent.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const required_attrs[] = {"specversion", "id", "source", "type"};

#define CE_HEADER_PREFIX     "ce_"
#define CE_CONTENT_TYPE_ATTR "datacontenttype"
#define CE_CONTENT_TYPE_HDR  "content-type"

void sl_ce_init(struct sl_ce *ce)
{
    memset(ce, 0, sizeof(*ce));
}

void sl_ce_free(struct sl_ce *ce)
{
    for (size_t i = 0; i < ce->n; i++) {
        free(ce->attrs[i].name);
        free(ce->attrs[i].value);
    }
    ce->n = 0;
}

int sl_ce_valid_name(const char *name)
{
    size_t n = 0;
    for (const char *p = name; *p; p++, n++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return 0;
    return n >= 1 && n <= 20;
}

static struct sl_ce_attr *find(const struct sl_ce *ce, const char *name)
{
    for (size_t i = 0; i < ce->n; i++)
        if (strcmp(ce->attrs[i].name, name) == 0)
            return (struct sl_ce_attr *)&ce->attrs[i];
    return NULL;
}

int sl_ce_set_n(struct sl_ce *ce, const char *name, const char *value, size_t len,
                struct sl_err *err)
{
    if (!sl_ce_valid_name(name))
        return sl_err_set(err, SL_ERR_INVALID,
                          "CloudEvents attribute name '%.40s' must be 1-20 lowercase letters or "
                          "digits",
                          name);
    if (len > SL_CE_MAX_VALUE)
        return sl_err_set(err, SL_ERR_INVALID, "CloudEvents attribute '%s' longer than %d bytes",
                          name, SL_CE_MAX_VALUE);
    if (memchr(value, '\0', len))
        return sl_err_set(err, SL_ERR_INVALID, "CloudEvents attribute '%s' contains a NUL byte",
                          name);
    char *copy = strndup(value, len);
    if (!copy)
        return sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    struct sl_ce_attr *a = find(ce, name);
    if (a) {
        free(a->value);
        a->value = copy;
        return 0;
    }
    if (ce->n == SL_CE_MAX_ATTRS) {
        free(copy);
        return sl_err_set(err, SL_ERR_INVALID, "more than %d CloudEvents attributes",
                          SL_CE_MAX_ATTRS);
    }
    char *name_copy = strdup(name);
    if (!name_copy) {
        free(copy);
        return sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    }
    ce->attrs[ce->n].name = name_copy;
    ce->attrs[ce->n].value = copy;
    ce->n++;
    return 0;
}

int sl_ce_set(struct sl_ce *ce, const char *name, const char *value, struct sl_err *err)
{
    return sl_ce_set_n(ce, name, value, strlen(value), err);
}

const char *sl_ce_get(const struct sl_ce *ce, const char *name)
{
    const struct sl_ce_attr *a = find(ce, name);
    return a ? a->value : NULL;
}

static int check_required(const struct sl_ce *ce, struct sl_err *err)
{
    for (size_t i = 0; i < sizeof(required_attrs) / sizeof(required_attrs[0]); i++) {
        const char *v = sl_ce_get(ce, required_attrs[i]);
        if (!v || !*v)
            return sl_err_set(err, SL_ERR_INVALID,
                              "missing CloudEvents attribute '%s' (header " CE_HEADER_PREFIX "%s)",
                              required_attrs[i], required_attrs[i]);
    }
    const char *sv = sl_ce_get(ce, "specversion");
    if (strcmp(sv, "1.0") != 0)
        return sl_err_set(err, SL_ERR_INVALID, "unsupported CloudEvents specversion '%.20s'", sv);
    return 0;
}

int sl_ce_to_headers(const struct sl_ce *ce, rd_kafka_headers_t *hdrs, struct sl_err *err)
{
    if (check_required(ce, err) != 0)
        return -1;
    for (size_t i = 0; i < ce->n; i++) {
        const struct sl_ce_attr *a = &ce->attrs[i];
        char name[sizeof(CE_HEADER_PREFIX) + 20];
        if (strcmp(a->name, CE_CONTENT_TYPE_ATTR) == 0)
            strcpy(name, CE_CONTENT_TYPE_HDR);
        else
            snprintf(name, sizeof(name), CE_HEADER_PREFIX "%s", a->name);
        rd_kafka_resp_err_t rc = rd_kafka_header_add(hdrs, name, -1, a->value, -1);
        if (rc)
            return sl_err_set(err, SL_ERR_KAFKA, "cannot add header %s: %s", name,
                              rd_kafka_err2str(rc));
    }
    return 0;
}

/* Reads the attributes of `hdrs` into `ce`; strict: the first header that is not a valid
 * attribute fails (-1 with *err); otherwise it is skipped. */
static int read_headers(const rd_kafka_headers_t *hdrs, struct sl_ce *ce, bool strict,
                        struct sl_err *err)
{
    const char *name;
    const void *value;
    size_t size;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == 0; i++) {
        const char *attr;
        if (strcmp(name, CE_CONTENT_TYPE_HDR) == 0)
            attr = CE_CONTENT_TYPE_ATTR;
        else if (strncmp(name, CE_HEADER_PREFIX, strlen(CE_HEADER_PREFIX)) == 0)
            attr = name + strlen(CE_HEADER_PREFIX);
        else
            continue;
        if (sl_ce_set_n(ce, attr, value ? value : "", value ? size : 0, err) != 0 && strict) {
            sl_err_prefix(err, "header %s", name);
            return -1;
        }
    }
    return 0;
}

int sl_ce_from_headers(const rd_kafka_headers_t *hdrs, struct sl_ce *ce, struct sl_err *err)
{
    if (read_headers(hdrs, ce, true, err) != 0 || check_required(ce, err) != 0) {
        sl_ce_free(ce);
        return -1;
    }
    return 0;
}

void sl_ce_read_headers(const rd_kafka_headers_t *hdrs, struct sl_ce *ce)
{
    struct sl_err ignored;
    read_headers(hdrs, ce, false, &ignored);
}

/* One length-prefixed field of a scoped id (sl_ce_scoped_id). */
static bool digest_field(EVP_MD_CTX *md, const char *s)
{
    uint64_t n = s ? strlen(s) : 0;
    unsigned char len[8];
    for (int i = 7; i >= 0; i--, n >>= 8)
        len[i] = (unsigned char)(n & 0xff);
    return EVP_DigestUpdate(md, len, sizeof(len)) == 1 &&
           (!s || EVP_DigestUpdate(md, s, strlen(s)) == 1);
}

int sl_ce_scoped_id(const struct sl_ce *ce, const char *id, char out[SL_CE_SCOPED_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char sum[EVP_MAX_MD_SIZE];
    unsigned int sum_len = 0;
    int rc = -1;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        !digest_field(md, sl_ce_get(ce, SL_CE_SOURCE_NAME)) ||
        !digest_field(md, sl_ce_get(ce, "source")) || !digest_field(md, id) ||
        EVP_DigestFinal_ex(md, sum, &sum_len) != 1 || sum_len * 2 < SL_CE_SCOPED_ID_LEN)
        goto out;
    for (size_t i = 0; i < SL_CE_SCOPED_ID_LEN / 2; i++) {
        out[2 * i] = hex[sum[i] >> 4];
        out[2 * i + 1] = hex[sum[i] & 15];
    }
    out[SL_CE_SCOPED_ID_LEN] = '\0';
    rc = 0;
out:
    EVP_MD_CTX_free(md);
    return rc;
}
