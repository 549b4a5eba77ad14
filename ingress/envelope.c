#include "envelope.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jsonscan.h"
#include "reply.h"
#include "sl_id.h"
#include "traceparent.h"

#define DEFAULT_TYPE_SUFFIX ".event"
#define RESERVED_PREFIX     "sluice"

void envelope_format_time(const struct timespec *ts, char out[ENVELOPE_TIME_LEN + 1])
{
    struct tm tm;
    char buf[64]; /* what the compiler cannot prove of tm's ranges, it must have room for */
    gmtime_r(&ts->tv_sec, &tm);
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts->tv_nsec / 1000000) % 1000);
    memcpy(out, buf, ENVELOPE_TIME_LEN);
    out[ENVELOPE_TIME_LEN] = '\0';
}

/* Sets the result for a rejection; returns the status. */
static int reject(int status, const char *code, const char **error, struct sl_err *err,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int reject(int status, const char *code, const char **error, struct sl_err *err,
                  const char *fmt, ...)
{
    *error = code;
    if (fmt && err) {
        va_list ap;
        va_start(ap, fmt);
        char msg[SL_ERR_MSG_MAX];
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        sl_err_set(err, status == 503 ? SL_ERR_NOMEM : SL_ERR_INVALID, "%s", msg);
    }
    return status;
}

/* A failure already described in *err: out of memory is ours (503), the rest the sender's. */
static int rejected(int status, const char *code, const char **error, struct sl_err *err)
{
    if (err && err->code == SL_ERR_NOMEM)
        return reject(503, REPLY_INTERNAL, error, NULL, NULL);
    return reject(status, code, error, NULL, NULL);
}

static bool is_reserved(const char *name)
{
    return strncmp(name, RESERVED_PREFIX, strlen(RESERVED_PREFIX)) == 0 ||
           strcmp(name, SL_CE_IDEMPOTENCY_KEY) == 0;
}

static bool has_ce_headers(const struct envelope_request *rq)
{
    for (size_t i = 0; i < rq->n_headers; i++)
        if (strncasecmp(rq->headers[i].name, CEHTTP_HEADER_PREFIX "specversion",
                        sizeof(CEHTTP_HEADER_PREFIX "specversion")) == 0)
            return true;
    return false;
}

/* Credential headers never become attributes, whatever their name (a configured hmac-sha256
 * header could start with "ce-"). */
static bool skip_credential(void *opaque, const char *name)
{
    return verify_header_is_credential(opaque, name);
}

int envelope_build(const struct envelope_request *rq, struct envelope *out, const char **error,
                   struct sl_err *err)
{
    const source_t *src = rq->source;
    const char *name = source_name(src);
    struct sl_ce *ce = &out->ce;
    char time_text[ENVELOPE_TIME_LEN + 1];
    char value[SOURCE_VALUE_MAX + 1];
    int status = 0;

    memset(out, 0, sizeof(*out));
    sl_ce_init(ce);

    enum cehttp_media media = cehttp_media_of(rq->content_type);
    if (media == CEHTTP_MEDIA_BATCH)
        return reject(415, REPLY_MEDIA_TYPE, error, err,
                      "CloudEvents batch mode is not supported: send one event per request");
    if (media == CEHTTP_MEDIA_OTHER)
        return reject(415, REPLY_MEDIA_TYPE, error, err,
                      "Content-Type must be application/json, application/*+json or "
                      "application/cloudevents+json");

    /* 1. The attributes the request brings, and the record value. A signature over the body
     *    does not cover ce-* headers: on a signing source they would let anyone holding one
     *    signed body resend it under new ids (see source.h). */
    bool binary = media != CEHTTP_MEDIA_STRUCTURED && has_ce_headers(rq);
    bool cloudevent = media == CEHTTP_MEDIA_STRUCTURED || binary;
    if (binary && !source_binary_allowed(src))
        return reject(400, REPLY_UNSIGNED_ATTRS, error, err,
                      "source '%s' verifies a signature over the body, which does not cover "
                      "ce-* headers: send the event in structured mode "
                      "(application/cloudevents+json) or as a plain webhook",
                      name);
    out->value = rq->body;
    out->value_len = rq->body_len;
    if (media == CEHTTP_MEDIA_STRUCTURED) {
        int rc = cehttp_structured(rq->body, rq->body_len, ce, &out->owned, &out->value_len, err);
        if (rc != CEHTTP_OK) {
            status = rejected(rc == CEHTTP_UNSUPPORTED ? 415 : 400,
                              rc == CEHTTP_UNSUPPORTED ? REPLY_MEDIA_TYPE : REPLY_INVALID_EVENT,
                              error, err);
            goto fail;
        }
        out->value = out->owned;
    } else if (cloudevent) {
        if (cehttp_binary(rq->headers, rq->n_headers, skip_credential, (void *)source_verifier(src),
                          ce, err) != CEHTTP_OK ||
            sl_ce_set(ce, "datacontenttype", rq->content_type, err) != 0) {
            status = rejected(400, REPLY_INVALID_EVENT, error, err);
            goto fail;
        }
    }
    for (size_t i = 0; cloudevent && i < ce->n; i++) {
        if (is_reserved(ce->attrs[i].name)) {
            status = reject(400, REPLY_INVALID_EVENT, error, err,
                            "CloudEvents attribute '%s' is reserved for Sluice", ce->attrs[i].name);
            goto fail;
        }
    }

    /* 2. The data must be JSON; the source's body locators are read in the same pass. */
    const jsonptr_t *ptrs[SOURCE_FIELDS];
    struct jsonscan_hit hits[SOURCE_FIELDS];
    size_t n_ptrs = source_pointers(src, ptrs);
    bool has_data = !(media == CEHTTP_MEDIA_STRUCTURED && !out->owned);
    if (has_data && jsonscan(out->value, out->value_len, ptrs, n_ptrs, hits, err) != 0) {
        status = rejected(400, REPLY_MALFORMED_JSON, error, err);
        goto fail;
    }
    if (!has_data)
        memset(hits, 0, sizeof(hits));

#define EXTRACT(field)                                                                             \
    source_extract(src, field, out->value, hits, rq->header, rq->header_opaque, value,             \
                   sizeof(value), err)

    /* 3. Identity: a plain webhook gets its attributes here. */
    if (!cloudevent) {
        char id[SL_UUID_STR_LEN + 1];
        sl_uuid_v7(id);
        int found = EXTRACT(SOURCE_EVENT_TYPE);
        if (found < 0)
            goto invalid;
        if (sl_ce_set(ce, "specversion", CEHTTP_SPECVERSION, err) != 0 ||
            sl_ce_set(ce, "id", id, err) != 0 || sl_ce_set(ce, "source", name, err) != 0)
            goto invalid;
        if (!found)
            snprintf(value, sizeof(value), "%s" DEFAULT_TYPE_SUFFIX, name);
        if (sl_ce_set(ce, "type", value, err) != 0)
            goto invalid;
        envelope_format_time(&rq->received, time_text);
        if (sl_ce_set(ce, "time", time_text, err) != 0 ||
            sl_ce_set(ce, "datacontenttype", rq->content_type, err) != 0)
            goto invalid;
        found = EXTRACT(SOURCE_EVENT_ID);
        if (found < 0 || sl_ce_set(ce, SL_CE_IDEMPOTENCY_KEY, found ? value : id, err) != 0)
            goto invalid;
    } else {
        if (!sl_ce_get(ce, "time")) {
            envelope_format_time(&rq->received, time_text);
            if (sl_ce_set(ce, "time", time_text, err) != 0)
                goto invalid;
        }
        /* A signing source that opted into binary mode: its ce-id is unsigned, so the
         * idempotency key is still the signed event_id when one is configured. */
        int found = binary && source_signs_body(src) ? EXTRACT(SOURCE_EVENT_ID) : 0;
        if (found < 0 ||
            sl_ce_set(ce, SL_CE_IDEMPOTENCY_KEY, found ? value : sl_ce_get(ce, "id"), err) != 0)
            goto invalid;
    }

    /* 4. Trace context: the request's, else the event's, else a new trace. */
    struct traceparent tp;
    char tp_text[TRACEPARENT_LEN + 1];
    const char *event_tp = sl_ce_get(ce, SL_CE_TRACEPARENT);
    if ((!rq->traceparent || traceparent_parse(rq->traceparent, &tp) != 0) &&
        (!event_tp || traceparent_parse(event_tp, &tp) != 0))
        traceparent_new(&tp);
    traceparent_format(&tp, tp_text);
    if (sl_ce_set(ce, SL_CE_TRACEPARENT, tp_text, err) != 0)
        goto invalid;

    /* 5. Partition key and the source name. */
    int found = EXTRACT(SOURCE_PARTITION_KEY);
    if (found < 0)
        goto invalid;
    const char *key = value, *event_key = sl_ce_get(ce, SL_CE_PARTITION_KEY);
    if (!found)
        key = event_key && *event_key ? event_key : sl_ce_get(ce, SL_CE_IDEMPOTENCY_KEY);
    if (sl_ce_set(ce, SL_CE_PARTITION_KEY, key, err) != 0 ||
        sl_ce_set(ce, SL_CE_SOURCE_NAME, name, err) != 0)
        goto invalid;
#undef EXTRACT

    out->key = sl_ce_get(ce, SL_CE_PARTITION_KEY);
    out->key_len = strlen(out->key);
    out->id = sl_ce_get(ce, "id");
    return 0;

invalid:
    status = rejected(400, REPLY_INVALID_EVENT, error, err);
fail:
    envelope_free(out);
    return status;
}

void envelope_free(struct envelope *env)
{
    sl_ce_free(&env->ce);
    free(env->owned);
    memset(env, 0, sizeof(*env));
}
