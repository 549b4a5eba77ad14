/*
 * secret: a credential given in the pipeline file (through ${VAR}) or in a file, where a file
 * is re-read when it changes on disk, so that a rotated Kubernetes secret (an atomic symlink
 * swap of the mounted directory) is picked up without a restart.
 *
 * A file is checked with stat(2) at most every DLV_SECRET_CHECK_MS, or at once when forced
 * (after a 401); it is re-read only when its inode, size or modification time moved. Trailing
 * whitespace (the newline of `echo > file`) is dropped. A single-line secret must not contain
 * control characters (it goes into a header); a multi-line one is a list, one secret per line.
 * A file that cannot be read, or holds something invalid, keeps the value read last (a
 * warning is logged once per change); at creation it is an error.
 *
 * The value is wiped when replaced and when the secret is destroyed. Never log it.
 */
#ifndef DLV_SECRET_H
#define DLV_SECRET_H

#include <stdbool.h>

#include "sl_err.h"

#define DLV_SECRET_MAX      8192 /* bytes of a secret or secret file */
#define DLV_SECRET_CHECK_MS 1000

typedef struct dlv_secret dlv_secret_t;

/* Exactly one of `value` and `path` (absolute, or relative to the working directory). Reads
 * the file now. The caller owns the result. */
dlv_secret_t *dlv_secret_new(const char *value, const char *path, bool multi_line,
                             struct sl_err *err) __attribute__((warn_unused_result));
void dlv_secret_destroy(dlv_secret_t *s);

/* The current value (owned by s, valid until the next call). Checks the file as described
 * above; `force` checks it now. *generation (may be NULL) changes whenever the value does. */
const char *dlv_secret_get(dlv_secret_t *s, long long now_ms, bool force, unsigned *generation);
bool dlv_secret_is_file(const dlv_secret_t *s);

#endif
