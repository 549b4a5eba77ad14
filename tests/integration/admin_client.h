/*
 * admin_client: what the tests of sluice-admin use to call it: one HTTP request with a bearer
 * token and a body, the status, the response's headers and body; and the JSON of an answer
 * whose status is checked.
 */
#ifndef ADMIN_CLIENT_H
#define ADMIN_CLIENT_H

#include <jansson.h>
#include <stddef.h>

#define ADMIN_CLIENT_BODY_MAX (1 << 20)
#define ADMIN_CLIENT_HEAD_MAX 8192

struct admin_answer {
    long status; /* 0 when the request failed (the test fails too) */
    char head[ADMIN_CLIENT_HEAD_MAX];
    size_t head_len;
    char *body; /* NUL-terminated; the caller frees it */
    size_t len;
};

/* `method` http://127.0.0.1:<port><path> with `token` (NULL: none) and `body` (NULL: none). */
struct admin_answer admin_call(int port, const char *method, const char *path, const char *token,
                               const char *body);

/* The same, failing the test unless the status is `status`; the body as JSON (the caller's). */
json_t *admin_expect(int port, const char *method, const char *path, const char *token,
                     const char *body, long status);

/* The hex SHA-256 of `token` into hex[65]: what the pipeline file's admin.tokens hold. */
void admin_token_hash(const char *token, char *hex);

#endif
