/*
 * template: a destination URL with jq parts, e.g.
 *
 *     https://crm.example.com/api/customers/{{ .data.customer_id }}/payments
 *
 * Each {{ ... }} is a jq program (sl_expr), compiled once at start-up and evaluated over the
 * event as a CloudEvents JSON object. Its one output must be a string or a number; it is
 * percent-encoded (everything but RFC 3986's unreserved characters), so a value can never leave
 * its path segment or query value, and parts are allowed only after the host: the scheme and
 * the host are always the configured ones. A URL without parts is used as it is, with no
 * evaluation at all.
 *
 * Dot segments. A rendered path segment that is "." or ".." (a value "..", or a value "."
 * after a literal ".") is refused: the event is dead-lettered with the reason, never sent.
 * A server or proxy would resolve it (RFC 3986 remove_dot_segments, many after decoding %2E,
 * so encoding the dots is no defence) and the request, with the destination's credentials,
 * would reach another path: /ingest/../records is /records. The configured URL may not have
 * one either, and libcurl sends every path as written (CURLOPT_PATH_AS_IS), never resolving
 * it itself. Empty values are refused as before, so a part never makes an empty segment.
 */
#ifndef DLV_TEMPLATE_H
#define DLV_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>

#include "sl_err.h"

#define DLV_URL_PARTS_MAX 8    /* {{ }} parts in one URL */
#define DLV_URL_MAX       8192 /* bytes of a rendered URL */

typedef struct dlv_template dlv_template_t;

/* Parses and compiles `text` (an http:// or https:// URL); `name` names it in errors (e.g.
 * "destinations.crm.url"). SL_ERR_CONFIG on a malformed URL or part. The caller owns it. */
dlv_template_t *dlv_template_new(const char *name, const char *text, struct sl_err *err)
    __attribute__((warn_unused_result));
void dlv_template_destroy(dlv_template_t *t);

/* Whether the URL has parts to evaluate. */
bool dlv_template_dynamic(const dlv_template_t *t);
/* The URL as configured (the URL itself when it has no parts). */
const char *dlv_template_text(const dlv_template_t *t);

/* The URL for one event (the caller frees it), or NULL with *err: a part failed, gave
 * something other than a string or number or an empty string, made a dot segment (above), or
 * the URL grew past DLV_URL_MAX. A budget error
 * keeps sl_expr's code and fatal flag. */
char *dlv_template_render(const dlv_template_t *t, const json_t *event, struct sl_err *err);

#endif
