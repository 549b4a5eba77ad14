/*
 * sl_jsonschema_format: the checkers behind the JSON Schema `format` keyword. Internal to
 * sl_jsonschema.c; not part of libsluice's API.
 *
 * Each checker takes a string that jansson decoded (valid UTF-8, may contain NUL bytes, hence the
 * explicit length) and answers whether it is a valid instance of the format, following the RFCs
 * that JSON Schema 2020-12 names (RFC 3339 dates and times, RFC 5321 mailboxes without quoted
 * local parts, RFC 1123 host names, RFC 2673/4291 addresses, RFC 3986 URIs, RFC 4122 UUIDs, RFC
 * 6901 JSON Pointers). They are pure functions without allocation, except `regex`, which compiles
 * the pattern with PCRE2 to answer.
 */
#ifndef SL_JSONSCHEMA_FORMAT_H
#define SL_JSONSCHEMA_FORMAT_H

#include <stdbool.h>
#include <stddef.h>

enum sl_schema_format {
    SL_SCHEMA_FORMAT_UNKNOWN = 0, /* an annotation only, even when formats are asserted */
    SL_SCHEMA_FORMAT_DATE_TIME,
    SL_SCHEMA_FORMAT_DATE,
    SL_SCHEMA_FORMAT_TIME,
    SL_SCHEMA_FORMAT_DURATION,
    SL_SCHEMA_FORMAT_EMAIL,
    SL_SCHEMA_FORMAT_HOSTNAME,
    SL_SCHEMA_FORMAT_IPV4,
    SL_SCHEMA_FORMAT_IPV6,
    SL_SCHEMA_FORMAT_URI,
    SL_SCHEMA_FORMAT_URI_REFERENCE,
    SL_SCHEMA_FORMAT_UUID,
    SL_SCHEMA_FORMAT_JSON_POINTER,
    SL_SCHEMA_FORMAT_RELATIVE_JSON_POINTER,
    SL_SCHEMA_FORMAT_REGEX,
};

/* The format called name, or SL_SCHEMA_FORMAT_UNKNOWN. */
enum sl_schema_format sl_schema_format_lookup(const char *name);

/* Whether s (len bytes) is valid for format; always true for SL_SCHEMA_FORMAT_UNKNOWN. */
bool sl_schema_format_check(enum sl_schema_format format, const char *s, size_t len);

#endif
