#include "sl_cloudevent.h"

#include <stdbool.h>
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
