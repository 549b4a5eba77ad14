#include "sl_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_id.h"

void sl_record_time(char *buf, size_t size)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
}

int sl_record_headers(const char *stage, const char *type, const char *at,
                      rd_kafka_headers_t **hdrs, struct sl_err *err)
{
    char id[SL_UUID_STR_LEN + 1], source[128];
    struct sl_ce ce;
    int rc = -1;
    sl_ce_init(&ce);
    sl_uuid_v7(id);
    snprintf(source, sizeof(source), "sluice/%s", stage);
    rd_kafka_headers_t *h = rd_kafka_headers_new(6);
    if (sl_ce_set(&ce, "specversion", "1.0", err) != 0 || sl_ce_set(&ce, "id", id, err) != 0 ||
        sl_ce_set(&ce, "source", source, err) != 0 || sl_ce_set(&ce, "type", type, err) != 0 ||
        sl_ce_set(&ce, "time", at, err) != 0 ||
        sl_ce_set(&ce, "datacontenttype", "application/json", err) != 0 ||
        sl_ce_to_headers(&ce, h, err) != 0) {
        rd_kafka_headers_destroy(h);
        goto out;
    }
    *hdrs = h;
    rc = 0;
out:
    sl_ce_free(&ce);
    return rc;
}

int sl_audit_build(const struct sl_audit *a, char **value, size_t *len, rd_kafka_headers_t **hdrs,
                   struct sl_err *err)
{
    char at[SL_RECORD_TIME_MAX];
    sl_record_time(at, sizeof(at));
    const char *event_id = a->ce ? sl_ce_get(a->ce, "id") : NULL;
    const char *src = a->ce ? sl_ce_get(a->ce, SL_CE_SOURCE_NAME) : NULL;
    if (!src && a->ce)
        src = sl_ce_get(a->ce, "source");

    json_t *rec = json_pack("{s:s?, s:s, s:s, s:s?, s:s?, s:s, s:i, s:I, s:s, s:f}", "event_id",
                            event_id, "stage", a->stage, "outcome", a->outcome, "source", src,
                            "type", a->ce ? sl_ce_get(a->ce, "type") : NULL, "topic", a->topic,
                            "partition", (int)a->partition, "offset", (json_int_t)a->offset, "at",
                            at, "seconds", a->seconds);
    if (!rec)
        return sl_err_set(err, SL_ERR_NOMEM, "audit record: out of memory");
    if (a->reason && a->reason[0])
        json_object_set_new(rec, "reason", json_string(a->reason));
    if (json_array_size(a->errors))
        json_object_set(rec, "errors", (json_t *)a->errors);
    if (a->outputs >= 0)
        json_object_set_new(rec, "outputs", json_integer((json_int_t)a->outputs));
    if (json_object_size(a->detail))
        json_object_set(rec, "detail", (json_t *)a->detail);
    char *text = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    if (!text)
        return sl_err_set(err, SL_ERR_NOMEM, "audit record: out of memory");
    if (sl_record_headers(a->stage, "sluice.audit", at, hdrs, err) != 0) {
        free(text);
        return -1;
    }
    *value = text;
    *len = strlen(text);
    return 0;
}

rd_kafka_headers_t *sl_dead_letter_headers(const rd_kafka_headers_t *orig, const char *stage,
                                           const char *reason, const json_t *errors, size_t dropped)
{
    rd_kafka_headers_t *hdrs = orig ? rd_kafka_headers_copy(orig) : rd_kafka_headers_new(4);
    rd_kafka_header_remove(hdrs, "ce_" SL_CE_STAGE);
    rd_kafka_header_remove(hdrs, "ce_" SL_CE_REASON);
    rd_kafka_header_remove(hdrs, "ce_" SL_CE_ERRORS);
    rd_kafka_header_add(hdrs, "ce_" SL_CE_STAGE, -1, stage, -1);
    rd_kafka_header_add(hdrs, "ce_" SL_CE_REASON, -1, reason, -1);
    if (json_array_size(errors)) {
        /* Bounded: drop trailing errors until the list fits one header, and say how many. */
        json_t *list = json_copy((json_t *)errors);
        char *text = NULL;
        for (;;) {
            text = json_dumps(list, JSON_COMPACT);
            if (!text || strlen(text) <= SL_RECORD_ERRORS_MAX - 64 || json_array_size(list) <= 1)
                break;
            free(text);
            text = NULL;
            json_array_remove(list, json_array_size(list) - 1);
            dropped++;
        }
        if (text && dropped) {
            char more[64];
            snprintf(more, sizeof(more), "... and %zu more", dropped);
            json_array_append_new(list, json_string(more));
            free(text);
            text = json_dumps(list, JSON_COMPACT);
        }
        if (text)
            rd_kafka_header_add(hdrs, "ce_" SL_CE_ERRORS, -1, text, -1);
        free(text);
        json_decref(list);
    }
    return hdrs;
}
