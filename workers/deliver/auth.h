/*
 * auth: the credentials of one destination.
 *
 *   none                        no header
 *   bearer                      Authorization: Bearer <token>
 *   api-key                     <header>: <token>
 *   basic                       Authorization: Basic base64(<username>:<password>)
 *   oauth2-client-credentials   Authorization: Bearer <access token from token_url>
 *
 * Tokens, passwords and client secrets come from the pipeline file (${VAR}) or from files that
 * are re-read when they change (secret.h). OAuth2 (RFC 6749 section 4.4): one token per
 * destination, shared by all its requests; fetched when the first request needs it, again
 * before it expires (when less than a quarter of its lifetime, at most DLV_AUTH_REFRESH_MAX_MS,
 * is left) and at once after a 401. One fetch at a time: requests wait for it instead of each
 * asking for a token. The client authenticates with HTTP Basic (section 2.3.1: the scheme
 * every server must support), the body is grant_type=client_credentials[&scope=...]. A failed
 * fetch is retried with a backoff (DLV_AUTH_BACKOFF_*); requests wait meanwhile, and nothing
 * is dead-lettered because the token endpoint is down or refuses the client (an operator has to
 * act: the error is logged and /readyz says so).
 *
 * After a 401 the engine asks dlv_auth_rejected() whether a fresh credential is coming: for
 * OAuth2 the token is dropped (only when the rejected request used the current one, so a burst
 * of 401s costs one fetch); for files, the file is checked at once. Then the request is retried
 * once, right away.
 *
 * The engine performs the token request (over its HTTP multi) with what dlv_auth_fetch_begin()
 * prepares, and hands the answer to dlv_auth_fetch_done(); this module does no I/O of its own
 * besides reading secret files. Headers, bodies and messages never carry a secret into logs.
 */
#ifndef DLV_AUTH_H
#define DLV_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "sl_err.h"

#define DLV_AUTH_HEADER_MAX       12288 /* one credential header line, "Name: value" */
#define DLV_AUTH_TOKEN_MAX        8192  /* an access token (JWTs run to a few KB) */
#define DLV_AUTH_URL_MAX          2048
#define DLV_AUTH_FORM_MAX         2048      /* the token request body */
#define DLV_AUTH_RESPONSE_MAX     65536     /* the token endpoint's answer */
#define DLV_AUTH_DEFAULT_TTL_MS   3600000LL /* when the answer has no expires_in */
#define DLV_AUTH_REFRESH_MAX_MS   60000LL
#define DLV_AUTH_BACKOFF_MIN_MS   500LL
#define DLV_AUTH_BACKOFF_MAX_MS   30000LL
#define DLV_AUTH_FETCH_TIMEOUT_MS 10000L

enum dlv_auth_type {
    DLV_AUTH_NONE,
    DLV_AUTH_BEARER,
    DLV_AUTH_API_KEY,
    DLV_AUTH_BASIC,
    DLV_AUTH_OAUTH2,
};

/* Strings are borrowed for the duration of dlv_auth_new(). For each secret, the value or the
 * file, not both. */
struct dlv_auth_conf {
    enum dlv_auth_type type;
    const char *token, *token_file;       /* bearer, api-key */
    const char *header;                   /* api-key: the header name */
    const char *username;                 /* basic */
    const char *password, *password_file; /* basic */
    const char *token_url;                /* oauth2 */
    const char *client_id;
    const char *client_secret, *client_secret_file;
    const char *scope; /* may be NULL */
};

typedef struct dlv_auth dlv_auth_t;

int dlv_auth_type_parse(const char *name, enum dlv_auth_type *out);

dlv_auth_t *dlv_auth_new(const struct dlv_auth_conf *conf, struct sl_err *err)
    __attribute__((warn_unused_result));
void dlv_auth_destroy(dlv_auth_t *a);

/* The credential header line for a request starting now ("" for none) into out
 * (DLV_AUTH_HEADER_MAX bytes), with *generation naming the credential (for
 * dlv_auth_rejected). Returns true, or false when the request must wait for an OAuth2 token
 * (being fetched, or the last fetch failed and the backoff runs). */
bool dlv_auth_header(dlv_auth_t *a, long long now_ms, char *out, size_t size, unsigned *generation);

/* OAuth2: whether a token is held (valid or not). */
bool dlv_auth_held(const dlv_auth_t *a);
/* OAuth2: whether a token request should start now (none held or it expires soon, no fetch
 * running, no backoff). */
bool dlv_auth_fetch_due(const dlv_auth_t *a, long long now_ms);
/* When dlv_auth_header() may succeed or a fetch may be due again: the end of the backoff;
 * LLONG_MAX while a fetch runs (its answer wakes the engine), now_ms otherwise. */
long long dlv_auth_wake_ms(const dlv_auth_t *a, long long now_ms);

struct dlv_auth_fetch {
    char url[DLV_AUTH_URL_MAX];
    char authorization[DLV_AUTH_HEADER_MAX]; /* "Authorization: Basic ..." */
    char body[DLV_AUTH_FORM_MAX];
};
/* Prepares the token request and marks a fetch as running. 0, or -1 with *err (the secret
 * file could not be read: treated as a failed fetch). */
int dlv_auth_fetch_begin(dlv_auth_t *a, long long now_ms, struct dlv_auth_fetch *f,
                         struct sl_err *err);
/* The token endpoint's answer: HTTP status (0 when none came) and body. Returns 0 when a token
 * is now held, -1 with *err (a one-line reason without secrets) when the fetch failed and the
 * backoff starts. */
int dlv_auth_fetch_done(dlv_auth_t *a, long status, const char *body, size_t len, long long now_ms,
                        struct sl_err *err);

/* A request sent with credential `generation` was answered 401. Returns true when a
 * different credential is, or will soon be, available, so that one more attempt makes sense. */
bool dlv_auth_rejected(dlv_auth_t *a, unsigned generation, long long now_ms);

#endif
