/*
 * sl_jsonschema: JSON Schema validation on jansson (draft 2020-12; draft-07 also accepted).
 *
 * A schema set owns compiled schemas and the URI registry that `$ref` resolves through. The draft
 * of each schema resource comes from its `$schema` (2020-12 when absent, or the draft of the
 * schema that referenced it); a `$schema` naming another meta-schema is loaded and its
 * `$vocabulary` decides which keywords apply. The draft-07 and 2020-12 meta-schemas are built in.
 *
 *   sl_schema_set_t *set = sl_schema_set_new();
 *   sl_schema_set_map(set, "https://schemas.example.com/", "schemas", &err);   // optional
 *   const sl_schema_t *s = sl_schema_set_load_file(set, "schemas/canonical/payment.json", &err);
 *   int rc = sl_schema_validate(s, event, on_error, ctx, 50);
 *   ...
 *   sl_schema_set_destroy(set);   // frees every sl_schema_t it returned
 *
 * Life cycle and threads: load and add schemas first (at start-up, one thread; these calls
 * compile: they resolve every `$ref`, compile every `pattern` once and reject an invalid schema
 * with a clear error). Validation is then read-only: any number of threads may call
 * sl_schema_validate() on schemas of the same set at once, as long as no thread loads, adds,
 * maps or changes options on that set meanwhile.
 *
 * Formats are annotations by default, as 2020-12 says; sl_schema_set_assert_formats() turns them
 * into assertions (date-time, date, time, duration, email, hostname, ipv4, ipv6, uri,
 * uri-reference, uuid, json-pointer, relative-json-pointer, regex; other names stay annotations).
 *
 * Errors carry the instance location (a JSON Pointer, "" for the root), the keyword location
 * (the evaluation path through the schema, as a JSON Pointer, `$ref` segments included) and a
 * human message, e.g. "/data/amount", "/properties/data/properties/amount/minimum",
 * "-5 is less than 0".
 */
#ifndef SL_JSONSCHEMA_H
#define SL_JSONSCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "sl_err.h"

/* Nesting bound for validation: instance depth plus in-place schema applications ($ref, allOf,
 * ...). Reaching it reports an error (a `$ref` cycle, or an instance nested too deeply) rather
 * than exhausting the stack. */
#define SL_SCHEMA_MAX_DEPTH 512
/* Largest schema file read from disk. */
#define SL_SCHEMA_MAX_FILE_BYTES (16u * 1024u * 1024u)

typedef struct sl_schema_set sl_schema_set_t; /* owns compiled schemas and the URI registry */
typedef struct sl_schema sl_schema_t;         /* one compiled root schema, owned by its set */

/* Called once per validation error; the strings are valid only during the call. */
typedef void (*sl_schema_error_cb)(void *opaque, const char *instance_path,
                                   const char *keyword_location, const char *message);

/* A new, empty set; NULL when out of memory. */
sl_schema_set_t *sl_schema_set_new(void);

/* Frees the set and every schema it returned. NULL is a no-op. */
void sl_schema_set_destroy(sl_schema_set_t *set);

/* Formats as assertions (on) or annotations only (off, the default). Read at validation time. */
void sl_schema_set_assert_formats(sl_schema_set_t *set, bool on);

/* URIs that start with uri_prefix are loaded, on demand, from the file dir + the rest of the URI
 * (which may not contain ".." segments). Later mappings are tried first. Both strings are
 * copied. Returns 0, or -1 with *err filled (dir not a directory, bad prefix). */
int sl_schema_set_map(sl_schema_set_t *set, const char *uri_prefix, const char *dir,
                      struct sl_err *err) __attribute__((warn_unused_result));

/* Loads and compiles the schema in the file at path; its base URI is file:// + its absolute path,
 * so relative `$ref`s reach sibling files. Loading the same file again returns the same schema.
 * NULL with *err filled on an unreadable file, malformed JSON or an invalid schema; the set is
 * then as it was before the call. */
const sl_schema_t *sl_schema_set_load_file(sl_schema_set_t *set, const char *path,
                                           struct sl_err *err);

/* Compiles schema (the set keeps its own deep copy; the caller keeps ownership of schema).
 * base_uri is the absolute URI that relative references resolve against when the schema has no
 * absolute `$id`; NULL gives it a private URN. NULL with *err filled on an invalid schema; the
 * set is then as it was before the call. */
const sl_schema_t *sl_schema_set_add(sl_schema_set_t *set, const json_t *schema,
                                     const char *base_uri, struct sl_err *err);

/* Validates instance. Returns 1 when valid, 0 when invalid, -1 on an internal error (out of
 * memory). When invalid, reports up to max_errors errors through cb (every error found, not only
 * the first); cb NULL or max_errors 0 only answers valid or not, which is faster. */
int sl_schema_validate(const sl_schema_t *schema, const json_t *instance, sl_schema_error_cb cb,
                       void *opaque, size_t max_errors);

#endif
