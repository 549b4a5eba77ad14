/*
 * sl_conf: the pipeline file (YAML) as an immutable tree with line numbers, `${VAR}` and
 * `${VAR:-default}` expanded from the environment, typed accessors, and a check against a key
 * table that rejects unknown keys.
 *
 * Every error names the file, the line and the key path, on one line:
 *     pipeline.yaml:14: sources.stripe.verify.tolerance: expected a duration such as 30s, 5m
 *
 * Environment expansion happens once, at load. A `${VAR}` whose variable is unset (and has no
 * default) does not fail the load: each binary reads only its own keys, so a secret that only
 * the ingress needs must not be required in the deliver worker's environment. Reading such a
 * value fails with "environment variable VAR is not set"; sl_conf_unset_vars() lists them.
 * `$${` is a literal `${`.
 *
 * Lifetime: nodes and strings are owned by the sl_conf_t and live until sl_conf_destroy().
 * A loaded sl_conf_t is read-only and may be shared between threads.
 *
 * YAML subset: maps, sequences and scalars. Aliases (*x) and non-string keys are rejected with
 * a clear error; duplicate keys in one map are errors. A plain `~`, `null` or empty value is
 * null, which the accessors treat as absent.
 */
#ifndef SL_CONF_H
#define SL_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "sl_err.h"

typedef struct sl_conf sl_conf_t;
typedef struct sl_conf_node sl_conf_node_t;

enum sl_conf_type { SL_CONF_NULL, SL_CONF_SCALAR, SL_CONF_MAP, SL_CONF_SEQ };

/* Files larger than this are refused: a pipeline file is configuration, not data. */
#define SL_CONF_MAX_FILE_BYTES (4 * 1024 * 1024)
#define SL_CONF_MAX_DEPTH      64

sl_conf_t *sl_conf_load_file(const char *path, struct sl_err *err)
    __attribute__((warn_unused_result));
/* `name` stands for the file in error messages; relative paths resolve against `dir`. */
sl_conf_t *sl_conf_load_string(const char *name, const char *dir, const char *text, size_t len,
                               struct sl_err *err) __attribute__((warn_unused_result));
void sl_conf_destroy(sl_conf_t *conf);

const char *sl_conf_file(const sl_conf_t *conf);
/* The directory of the file: the base for relative paths written in it. */
const char *sl_conf_dir(const sl_conf_t *conf);
const sl_conf_node_t *sl_conf_root(const sl_conf_t *conf);

/* ---- navigation (all accept NULL and return NULL / 0 for it) ---- */
enum sl_conf_type sl_conf_type(const sl_conf_node_t *node);
/* A map's member by key, or NULL when absent, null or `map` is not a map. */
const sl_conf_node_t *sl_conf_get(const sl_conf_node_t *map, const char *key);
/* Dotted lookup through maps: "kafka.brokers". */
const sl_conf_node_t *sl_conf_find(const sl_conf_node_t *node, const char *dotted);
/* Entries of a map or items of a sequence. */
size_t sl_conf_count(const sl_conf_node_t *node);
const sl_conf_node_t *sl_conf_item(const sl_conf_node_t *node, size_t i);
/* The i-th key of a map, in file order. */
const char *sl_conf_key(const sl_conf_node_t *map, size_t i);
int sl_conf_line(const sl_conf_node_t *node);
/* "sources.stripe.verify", "transforms[2].jq"; "" for the root. */
const char *sl_conf_keypath(const sl_conf_node_t *node);

/* ---- typed reads: of a node, or of a map member with a default when absent or null ---- */
int sl_conf_as_str(const sl_conf_t *conf, const sl_conf_node_t *node, const char **out,
                   struct sl_err *err);
int sl_conf_str(const sl_conf_t *conf, const sl_conf_node_t *map, const char *key, const char *def,
                const char **out, struct sl_err *err);
int sl_conf_int(const sl_conf_t *conf, const sl_conf_node_t *map, const char *key, long long def,
                long long min, long long max, long long *out, struct sl_err *err);
int sl_conf_bool(const sl_conf_t *conf, const sl_conf_node_t *map, const char *key, bool def,
                 bool *out, struct sl_err *err);
/* Durations: "250ms", "30s", "5m", "72h", "3d", "1h30m"; "0" alone is allowed. Milliseconds. */
int sl_conf_duration_ms(const sl_conf_t *conf, const sl_conf_node_t *map, const char *key,
                        long long def, long long min, long long max, long long *out,
                        struct sl_err *err);
/* Sizes: bytes, or with KiB/MiB/GiB (1024) or KB/MB/GB (1000). */
int sl_conf_size(const sl_conf_t *conf, const sl_conf_node_t *map, const char *key, long long def,
                 long long min, long long max, long long *out, struct sl_err *err);

/* Parsers shared with the key-table check, for a value already in hand. */
int sl_conf_parse_duration_ms(const char *text, long long *out);
int sl_conf_parse_size(const char *text, long long *out);

/* Formats "<file>:<line>: <keypath>: <message>" into *err for a caller's own semantic check
 * (a route naming an unknown destination, say). Returns -1. */
int sl_conf_error(const sl_conf_t *conf, const sl_conf_node_t *node, struct sl_err *err,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Calls `cb` for every value that references an unset environment variable. */
void sl_conf_unset_vars(const sl_conf_t *conf,
                        void (*cb)(void *opaque, const char *var, const sl_conf_node_t *node),
                        void *opaque);

/* ---- the key table ---- */
enum sl_conf_kind {
    SL_CK_STRING,
    SL_CK_INT,
    SL_CK_BOOL,
    SL_CK_DURATION,
    SL_CK_SIZE,
    SL_CK_ENUM,
    SL_CK_SECTION,    /* a map with the fixed keys in `children` */
    SL_CK_MAP_OF,     /* a map of user-chosen names, each a SECTION with `children` */
    SL_CK_LIST_OF,    /* a sequence, each item a SECTION with `children` */
    SL_CK_STRINGS,    /* a string or a sequence of strings */
    SL_CK_STRING_MAP, /* a map of user-chosen names to strings */
};

struct sl_conf_key {
    const char *name; /* NULL ends a table */
    enum sl_conf_kind kind;
    const char *def;  /* the default, as documentation; NULL when there is none */
    const char *desc; /* one sentence for the generated reference */
    const struct sl_conf_key *children;
    long long min, max;         /* INT (value), DURATION (ms), SIZE (bytes); min == max: none */
    const char *const *choices; /* ENUM: NULL-terminated */
    bool required;
};

/* Checks the whole tree against `root` (the keys of the top-level map). The first error wins;
 * unknown keys are errors that list the known ones (and suggest the closest). */
int sl_conf_check(const sl_conf_t *conf, const struct sl_conf_key *root, struct sl_err *err);

/* Writes a Markdown reference of the keys (what `sluicectl config reference` prints). */
void sl_conf_write_reference(FILE *out, const struct sl_conf_key *root);

#endif
