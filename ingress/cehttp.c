/*
 * cehttp: see cehttp.h.
 *
 * Structured mode reads the attributes with jansson (the envelope is small and parsed once) but
 * takes `data` from the body as written, with insignificant whitespace removed, rather than
 * re-serialising the tree: numbers and strings reach Kafka exactly as the sender wrote them
 * (jansson would print 0.1 as 0.10000000000000001), and it is cheaper.
 */
#include "cehttp.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jsonscan.h"

#define MEDIA_STRUCTURED  "application/cloudevents+json"
#define MEDIA_BATCH       "application/cloudevents-batch+json"
#define MEDIA_JSON        "application/json"
#define MEDIA_JSON_TYPE   "application/"
#define MEDIA_JSON_SUFFIX "+json"

static const char *const required_attrs[] = {"specversion", "id", "source", "type"};

/* ---- media types ---------------------------------------------------------------------------- */

enum cehttp_media cehttp_media_of(const char *content_type)
{
    if (!content_type)
        return CEHTTP_MEDIA_OTHER;
    const char *p = content_type;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t len = strcspn(p, "; \t");
    if (len == strlen(MEDIA_STRUCTURED) && strncasecmp(p, MEDIA_STRUCTURED, len) == 0)
        return CEHTTP_MEDIA_STRUCTURED;
    if (len == strlen(MEDIA_BATCH) && strncasecmp(p, MEDIA_BATCH, len) == 0)
        return CEHTTP_MEDIA_BATCH;
    if (len == strlen(MEDIA_JSON) && strncasecmp(p, MEDIA_JSON, len) == 0)
        return CEHTTP_MEDIA_JSON;
    size_t tlen = strlen(MEDIA_JSON_TYPE), slen = strlen(MEDIA_JSON_SUFFIX);
    if (len > tlen + slen && strncasecmp(p, MEDIA_JSON_TYPE, tlen) == 0 &&
        strncasecmp(p + len - slen, MEDIA_JSON_SUFFIX, slen) == 0 &&
        !memchr(p + tlen, '/', len - tlen))
        return CEHTTP_MEDIA_JSON;
    return CEHTTP_MEDIA_OTHER;
}

/* ---- shared checks -------------------------------------------------------------------------- */

/* Attribute values end up in Kafka headers, logs and replies: UTF-8, no control characters. */
static bool printable_utf8(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return jsonscan_utf8_valid(s, len);
}

static int check_required(const struct sl_ce *ce, const char *form, struct sl_err *err)
{
    for (size_t i = 0; i < sizeof(required_attrs) / sizeof(required_attrs[0]); i++) {
        const char *v = sl_ce_get(ce, required_attrs[i]);
        if (!v || !*v)
            return sl_err_set(err, SL_ERR_INVALID, "CloudEvents attribute '%s' is missing (%s%s)",
                              required_attrs[i], form, required_attrs[i]);
    }
    const char *sv = sl_ce_get(ce, "specversion");
    if (strcmp(sv, CEHTTP_SPECVERSION) != 0)
        return sl_err_set(err, SL_ERR_INVALID,
                          "CloudEvents specversion must be " CEHTTP_SPECVERSION);
    return 0;
}

/* ---- binary mode ---------------------------------------------------------------------------- */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes `in` into out[0..size); -1 on a malformed escape or when it does not fit. */
static int percent_decode(const char *in, char *out, size_t size, size_t *out_len)
{
    size_t o = 0;
    for (const char *p = in; *p; p++) {
        char c = *p;
        if (c == '%') {
            int hi = hexval((unsigned char)p[1]), lo = hi < 0 ? -1 : hexval((unsigned char)p[2]);
            if (lo < 0)
                return -1;
            c = (char)(hi << 4 | lo);
            p += 2;
        }
        if (o + 1 >= size)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    *out_len = o;
    return 0;
}

int cehttp_binary(const struct cehttp_header *hdrs, size_t n, bool (*skip)(void *, const char *),
                  void *skip_opaque, struct sl_ce *ce, struct sl_err *err)
{
    const size_t plen = strlen(CEHTTP_HEADER_PREFIX);
    for (size_t i = 0; i < n; i++) {
        const char *name = hdrs[i].name;
        if (strncasecmp(name, CEHTTP_HEADER_PREFIX, plen) != 0 || (skip && skip(skip_opaque, name)))
            continue;
        char attr[32], value[SL_CE_MAX_VALUE + 1];
        size_t alen = strlen(name + plen), vlen;
        if (alen >= sizeof(attr))
            return sl_err_set(err, SL_ERR_INVALID,
                              "header %.40s: CloudEvents attribute names have at most 20 "
                              "characters",
                              name);
        for (size_t j = 0; j <= alen; j++)
            attr[j] = (char)((name[plen + j] >= 'A' && name[plen + j] <= 'Z') ? name[plen + j] + 32
                                                                              : name[plen + j]);
        if (!sl_ce_valid_name(attr))
            return sl_err_set(err, SL_ERR_INVALID,
                              "header %.40s: CloudEvents attribute names are 1-20 letters or "
                              "digits",
                              name);
        if (percent_decode(hdrs[i].value, value, sizeof(value), &vlen) != 0)
            return sl_err_set(err, SL_ERR_INVALID,
                              "header %s: bad percent-encoding, or longer than %d bytes", name,
                              SL_CE_MAX_VALUE);
        if (!printable_utf8(value, vlen))
            return sl_err_set(err, SL_ERR_INVALID,
                              "header %s: the value must be UTF-8 without control characters",
                              name);
        if (sl_ce_set_n(ce, attr, value, vlen, err) != 0)
            return CEHTTP_INVALID;
    }
    return check_required(ce, "header " CEHTTP_HEADER_PREFIX, err) == 0 ? CEHTTP_OK
                                                                        : CEHTTP_INVALID;
}

/* ---- structured mode ------------------------------------------------------------------------ */

/* Strict, padded base64 (RFC 4648 section 4). */
static int b64_decode(const char *in, size_t len, char *out, size_t *out_len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (len % 4 != 0)
        return -1;
    size_t pad = len && in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
    unsigned long acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len - pad; i++) {
        const char *d = in[i] ? strchr(alphabet, in[i]) : NULL;
        if (!d)
            return -1;
        acc = acc << 6 | (unsigned long)(d - alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)(acc >> bits & 0xff);
        }
    }
    if (acc & ((1ul << bits) - 1))
        return -1; /* non-zero trailing bits: not the canonical encoding */
    *out_len = o;
    return 0;
}

/* Copies the validated JSON text [p, p+len) without insignificant whitespace. */
static size_t compact_json(const char *p, size_t len, char *out)
{
    size_t o = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (in_string) {
            out[o++] = c;
            if (c == '\\')
                out[o++] = p[++i];
            else if (c == '"')
                in_string = false;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            out[o++] = c;
            in_string = c == '"';
        }
    }
    return o;
}

/* The `data` member of the (valid) envelope as written, compacted, into a new buffer. */
static int copy_data(const void *body, size_t len, char **data, size_t *data_len,
                     struct sl_err *err)
{
    struct jsonscan_hit hit;
    jsonptr_t *ptr = jsonptr_parse("/data", err);
    if (!ptr)
        return -1;
    const jsonptr_t *ptrs[] = {ptr};
    int rc = jsonscan(body, len, ptrs, 1, &hit, err);
    jsonptr_destroy(ptr);
    if (rc != 0)
        return -1;
    if (!(*data = malloc(hit.len)))
        return sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    *data_len = compact_json((const char *)body + hit.off, hit.len, *data);
    return 0;
}

/* One member of the envelope as an attribute value, in its JSON spelling. */
static int attr_text(const char *name, json_t *v, char *buf, size_t size, const char **out,
                     struct sl_err *err)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        if (!printable_utf8(json_string_value(v), json_string_length(v)))
            return sl_err_set(err, SL_ERR_INVALID,
                              "CloudEvents attribute '%s' must be text without control "
                              "characters",
                              name);
        *out = json_string_value(v);
        return 0;
    case JSON_INTEGER:
        snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *out = buf;
        return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        *out = json_is_true(v) ? "true" : "false";
        return 0;
    default:
        return sl_err_set(err, SL_ERR_INVALID,
                          "CloudEvents attribute '%s' must be a string, an integer or a boolean",
                          name);
    }
}

int cehttp_structured(const void *body, size_t len, struct sl_ce *ce, char **data, size_t *data_len,
                      struct sl_err *err)
{
    json_error_t jerr;
    int rc = CEHTTP_INVALID;
    *data = NULL;
    *data_len = 0;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root) {
        sl_err_set(err, SL_ERR_INVALID, "malformed JSON at byte %d: %s", jerr.position, jerr.text);
        goto out;
    }
    if (!json_is_object(root)) {
        sl_err_set(err, SL_ERR_INVALID, "a structured CloudEvent must be a JSON object");
        goto out;
    }
    json_t *data_json = json_object_get(root, "data");
    json_t *data_b64 = json_object_get(root, "data_base64");
    if (data_json && data_b64) {
        sl_err_set(err, SL_ERR_INVALID, "a CloudEvent has 'data' or 'data_base64', not both");
        goto out;
    }
    if (data_b64 && !json_is_string(data_b64) && !json_is_null(data_b64)) {
        sl_err_set(err, SL_ERR_INVALID, "'data_base64' must be a string");
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        char num[32];
        const char *text = NULL;
        if (strcmp(key, "data") == 0 || strcmp(key, "data_base64") == 0 || json_is_null(v))
            continue;
        if (!sl_ce_valid_name(key)) {
            sl_err_set(err, SL_ERR_INVALID,
                       "CloudEvents attribute names are 1-20 lowercase letters or digits");
            goto out;
        }
        if (attr_text(key, v, num, sizeof(num), &text, err) != 0 ||
            sl_ce_set(ce, key, text, err) != 0)
            goto out;
    }
    if (check_required(ce, "member ", err) != 0)
        goto out;
    const char *dct = sl_ce_get(ce, "datacontenttype");
    if (!dct) {
        if (sl_ce_set(ce, "datacontenttype", MEDIA_JSON, err) != 0)
            goto out;
    } else if (cehttp_media_of(dct) != CEHTTP_MEDIA_JSON) {
        sl_err_set(err, SL_ERR_INVALID,
                   "datacontenttype must be JSON (application/json or application/*+json)");
        rc = CEHTTP_UNSUPPORTED;
        goto out;
    }

    if (data_json && !json_is_null(data_json)) {
        if (copy_data(body, len, data, data_len, err) != 0)
            goto out;
    } else if (data_b64 && json_is_string(data_b64)) {
        size_t blen = json_string_length(data_b64);
        if (!(*data = malloc(blen / 4 * 3 + 1))) {
            sl_err_set(err, SL_ERR_NOMEM, "out of memory");
            goto out;
        }
        if (b64_decode(json_string_value(data_b64), blen, *data, data_len) != 0) {
            sl_err_set(err, SL_ERR_INVALID, "'data_base64' is not valid padded base64");
            goto out;
        }
    }
    rc = CEHTTP_OK;
out:
    if (rc != CEHTTP_OK) {
        free(*data);
        *data = NULL;
        *data_len = 0;
    }
    json_decref(root);
    return rc;
}
