#include "source.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SOURCE_NAME_MAX 100

static const char *const field_names[SOURCE_FIELDS] = {
    [SOURCE_EVENT_ID] = "event_id",
    [SOURCE_EVENT_TYPE] = "event_type",
    [SOURCE_PARTITION_KEY] = "partition_key",
};

struct locator {
    jsonptr_t *ptr;                          /* a body locator, or NULL */
    char header[VERIFY_HEADER_NAME_MAX + 1]; /* a header locator, or "" */
    int hit;                                 /* index into the hits of source_pointers() */
};

struct source {
    char name[SOURCE_NAME_MAX + 1];
    verify_t *verify;
    enum verify_scheme scheme;
    bool binary;
    bool shed;
    long long guard_ms;
    struct locator loc[SOURCE_FIELDS];
    size_t n_ptrs;
    const jsonptr_t *ptrs[SOURCE_FIELDS];
};

struct sorted_entry {
    const source_t *src;
    size_t index; /* in file order */
};

struct source_set {
    size_t n;
    source_t **items;            /* in file order */
    struct sorted_entry *sorted; /* by name, for source_set_find */
};

const char *source_field_name(enum source_field field)
{
    return field_names[field];
}

/* HTTP header names are RFC 9110 tokens. */
static bool valid_header_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return false;
    return true;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SOURCE_NAME_MAX)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

static int locator_init(struct locator *loc, enum source_field field, const char *text,
                        struct sl_err *err)
{
    size_t plen = strlen(SOURCE_HEADER_LOCATOR);
    if (strncmp(text, SOURCE_HEADER_LOCATOR, plen) == 0) {
        const char *name = text + plen;
        if (strlen(name) > VERIFY_HEADER_NAME_MAX || !valid_header_name(name))
            return sl_err_set(err, SL_ERR_INVALID, "%s: '%.200s' is not a valid header name",
                              field_names[field], name);
        strcpy(loc->header, name);
        return 0;
    }
    if (text[0] != '/')
        return sl_err_set(err, SL_ERR_INVALID,
                          "%s: expected a JSON Pointer such as /id, or header:Name",
                          field_names[field]);
    loc->ptr = jsonptr_parse(text, err);
    if (!loc->ptr) {
        sl_err_prefix(err, "%s", field_names[field]);
        return -1;
    }
    return 0;
}

static bool scheme_signs_body(enum verify_scheme scheme)
{
    return scheme == VERIFY_STRIPE || scheme == VERIFY_GITHUB ||
           scheme == VERIFY_STANDARD_WEBHOOKS || scheme == VERIFY_HMAC_SHA256;
}

source_t *source_new(const struct source_opts *opts, struct sl_err *err)
{
    if (!opts->name || !valid_name(opts->name)) {
        sl_err_set(err, SL_ERR_INVALID, "source name must be 1-%d letters, digits, '-' or '_'",
                   SOURCE_NAME_MAX);
        return NULL;
    }
    source_t *src = calloc(1, sizeof(*src));
    if (!src) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    strcpy(src->name, opts->name);
    src->scheme = opts->verify.scheme;
    src->guard_ms = opts->replay_guard_ms;
    src->shed = opts->shed;
    bool signs = scheme_signs_body(src->scheme);
    src->binary = !signs || opts->cloudevents_binary;
    if (src->guard_ms < 0 || src->guard_ms > SOURCE_GUARD_MAX_MS || (src->guard_ms && !signs)) {
        sl_err_set(err, SL_ERR_INVALID,
                   signs ? "verify.replay_guard: at most 30 days"
                         : "verify.replay_guard: scheme %s signs nothing that could be "
                           "remembered; it applies to stripe, github, standard-webhooks and "
                           "hmac-sha256",
                   verify_scheme_name(src->scheme));
        goto fail;
    }
    for (int f = 0; f < SOURCE_FIELDS; f++) {
        src->loc[f].hit = -1;
        if (opts->locators[f] && locator_init(&src->loc[f], f, opts->locators[f], err) != 0)
            goto fail;
        if (src->loc[f].ptr) {
            src->loc[f].hit = (int)src->n_ptrs;
            src->ptrs[src->n_ptrs++] = src->loc[f].ptr;
        }
    }
    src->verify = verify_new(&opts->verify, err);
    if (!src->verify)
        goto fail;
    return src;
fail:
    source_destroy(src);
    return NULL;
}

void source_destroy(source_t *src)
{
    if (!src)
        return;
    for (int f = 0; f < SOURCE_FIELDS; f++)
        jsonptr_destroy(src->loc[f].ptr);
    verify_destroy(src->verify);
    free(src);
}

const char *source_name(const source_t *src)
{
    return src->name;
}

const verify_t *source_verifier(const source_t *src)
{
    return src->verify;
}

enum verify_scheme source_scheme(const source_t *src)
{
    return src->scheme;
}

bool source_signs_body(const source_t *src)
{
    return scheme_signs_body(src->scheme);
}

bool source_binary_allowed(const source_t *src)
{
    return src->binary;
}

bool source_sheds(const source_t *src)
{
    return src->shed;
}

long long source_replay_guard_ms(const source_t *src)
{
    return src->guard_ms;
}

size_t source_pointers(const source_t *src, const jsonptr_t **ptrs)
{
    memcpy(ptrs, src->ptrs, src->n_ptrs * sizeof(*ptrs));
    return src->n_ptrs;
}

static const char *kind_name(enum jsonscan_kind kind)
{
    switch (kind) {
    case JSONSCAN_TRUE:
    case JSONSCAN_FALSE:
        return "a boolean";
    case JSONSCAN_OBJECT:
        return "an object";
    case JSONSCAN_ARRAY:
        return "an array";
    case JSONSCAN_NUMBER:
        return "a number";
    default:
        return "null";
    }
}

int source_extract(const source_t *src, enum source_field field, const void *body,
                   const struct jsonscan_hit *hits, verify_header_fn header, void *opaque,
                   char *out, size_t size, struct sl_err *err)
{
    const struct locator *loc = &src->loc[field];
    const char *fname = field_names[field];
    bool optional = field == SOURCE_PARTITION_KEY;
    size_t len = 0;

    if (loc->header[0]) {
        const char *v = header(opaque, loc->header);
        if (!v || !*v) {
            if (optional)
                return 0;
            return sl_err_set(err, SL_ERR_INVALID, "%s: header %s is missing", fname, loc->header);
        }
        len = strlen(v);
        if (len >= size)
            return sl_err_set(err, SL_ERR_INVALID, "%s: header %s is longer than %zu bytes", fname,
                              loc->header, size - 1);
        memcpy(out, v, len + 1);
    } else if (loc->ptr) {
        const struct jsonscan_hit *hit = &hits[loc->hit];
        const char *where = jsonptr_text(loc->ptr);
        bool empty_string = hit->kind == JSONSCAN_STRING && hit->len == 2;
        if (hit->kind == JSONSCAN_ABSENT || hit->kind == JSONSCAN_NULL || empty_string) {
            if (optional)
                return 0;
            return sl_err_set(err, SL_ERR_INVALID, "%s: %s is %s in the body", fname, where,
                              hit->kind == JSONSCAN_ABSENT ? "missing"
                              : empty_string               ? "empty"
                                                           : "null");
        }
        bool number_ok = field != SOURCE_EVENT_TYPE;
        if (hit->kind != JSONSCAN_STRING && !(number_ok && hit->kind == JSONSCAN_NUMBER))
            return sl_err_set(err, SL_ERR_INVALID, "%s: %s is %s, expected a string%s", fname,
                              where, kind_name(hit->kind), number_ok ? " or a number" : "");
        if (jsonscan_text(body, hit, out, size, &len) != 0)
            return sl_err_set(err, SL_ERR_INVALID, "%s: %s is longer than %zu bytes", fname, where,
                              size - 1);
    } else {
        return 0;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            return sl_err_set(err, SL_ERR_INVALID, "%s contains control characters", fname);
    if (!jsonscan_utf8_valid(out, len))
        return sl_err_set(err, SL_ERR_INVALID, "%s is not valid UTF-8", fname);
    return 1;
}

/* ---- the sources of a pipeline file ---- */

/* Reads a string-or-list key into list[] (entries that expand to "" skipped). */
static int read_strings(const sl_conf_t *conf, const sl_conf_node_t *map, const char *key,
                        const char **list, size_t *n, struct sl_err *err)
{
    const sl_conf_node_t *node = sl_conf_get(map, key);
    bool seq = sl_conf_type(node) == SL_CONF_SEQ;
    size_t count = seq ? sl_conf_count(node) : node ? 1 : 0;
    *n = 0;
    for (size_t i = 0; i < count; i++) {
        const sl_conf_node_t *item = seq ? sl_conf_item(node, i) : node;
        const char *v;
        if (sl_conf_as_str(conf, item, &v, err) != 0)
            return -1;
        if (seq && !*v)
            continue;
        if (*n == VERIFY_SECRETS_MAX)
            return sl_conf_error(conf, node, err, "more than %d values", VERIFY_SECRETS_MAX);
        list[(*n)++] = v;
    }
    return 0;
}

static source_t *load_one(const sl_conf_t *conf, const char *name, const sl_conf_node_t *node,
                          struct sl_err *err)
{
    const sl_conf_node_t *vnode = sl_conf_get(node, "verify");
    const char *scheme, *encoding, *cloudevents, *secrets[VERIFY_SECRETS_MAX];
    long long tolerance_ms;
    struct source_opts o = {.name = name};
    if (sl_conf_str(conf, vnode, "scheme", NULL, &scheme, err) != 0)
        return NULL;
    if (verify_scheme_parse(scheme, &o.verify.scheme) != 0) {
        sl_conf_error(conf, vnode, err, "unknown verification scheme '%s'", scheme);
        return NULL;
    }
    bool api_key = o.verify.scheme == VERIFY_API_KEY;
    const char *list_key = api_key ? "key_hashes" : "secret";
    const char *other_key = api_key ? "secret" : "key_hashes";
    if (sl_conf_get(vnode, other_key)) {
        sl_conf_error(conf, sl_conf_get(vnode, other_key), err, "does not apply to scheme %s",
                      scheme);
        return NULL;
    }
    /* Tolerance and encoding are passed only when written, so that verify_new refuses them
     * for a scheme they do not apply to instead of them being ignored. */
    if (read_strings(conf, vnode, list_key, secrets, &o.verify.n_secrets, err) != 0 ||
        sl_conf_str(conf, vnode, "header", NULL, &o.verify.header, err) != 0 ||
        sl_conf_str(conf, vnode, "prefix", NULL, &o.verify.prefix, err) != 0 ||
        sl_conf_str(conf, vnode, "encoding", NULL, &encoding, err) != 0 ||
        sl_conf_duration_ms(conf, vnode, "tolerance", 0, 1000, VERIFY_TOLERANCE_MAX * 1000LL,
                            &tolerance_ms, err) != 0 ||
        sl_conf_duration_ms(conf, vnode, "replay_guard", 0, 1000, SOURCE_GUARD_MAX_MS,
                            &o.replay_guard_ms, err) != 0 ||
        sl_conf_str(conf, node, "cloudevents", "structured", &cloudevents, err) != 0 ||
        sl_conf_bool(conf, node, "shed", false, &o.shed, err) != 0)
        return NULL;
    o.cloudevents_binary = strcmp(cloudevents, "binary") == 0;
    o.verify.secrets = secrets;
    o.verify.base64 = encoding && strcmp(encoding, "base64") == 0;
    o.verify.tolerance_s = (long)(tolerance_ms / 1000);
    for (int f = 0; f < SOURCE_FIELDS; f++)
        if (sl_conf_str(conf, node, field_names[f], NULL, &o.locators[f], err) != 0)
            return NULL;
    source_t *src = source_new(&o, err);
    if (!src) {
        char msg[SL_ERR_MSG_MAX];
        snprintf(msg, sizeof(msg), "%s", err->msg);
        sl_conf_error(conf, node, err, "%s", msg);
    }
    return src;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct sorted_entry *)a)->src->name,
                  ((const struct sorted_entry *)b)->src->name);
}

source_set_t *source_set_load(const sl_conf_t *conf, struct sl_err *err)
{
    const sl_conf_node_t *sources = sl_conf_get(sl_conf_root(conf), "sources");
    size_t n = sl_conf_count(sources);
    if (n > SOURCE_SET_MAX) {
        sl_conf_error(conf, sources, err, "more than %d sources", SOURCE_SET_MAX);
        return NULL;
    }
    source_set_t *set = calloc(1, sizeof(*set));
    if (set) {
        set->items = calloc(n ? n : 1, sizeof(*set->items));
        set->sorted = calloc(n ? n : 1, sizeof(*set->sorted));
    }
    if (!set || !set->items || !set->sorted) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        set->items[i] = load_one(conf, sl_conf_key(sources, i), sl_conf_item(sources, i), err);
        if (!set->items[i])
            goto fail;
        set->n++;
    }
    for (size_t i = 0; i < n; i++)
        set->sorted[i] = (struct sorted_entry){set->items[i], i};
    qsort(set->sorted, n, sizeof(*set->sorted), by_name);
    return set;
fail:
    source_set_destroy(set);
    return NULL;
}

void source_set_destroy(source_set_t *set)
{
    if (!set)
        return;
    for (size_t i = 0; set->items && i < set->n; i++)
        source_destroy(set->items[i]);
    free(set->items);
    free(set->sorted);
    free(set);
}

size_t source_set_count(const source_set_t *set)
{
    return set->n;
}

const source_t *source_set_item(const source_set_t *set, size_t i)
{
    return set->items[i];
}

const source_t *source_set_find(const source_set_t *set, const char *name, size_t *index)
{
    size_t lo = 0, hi = set->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, set->sorted[mid].src->name);
        if (c == 0) {
            if (index)
                *index = set->sorted[mid].index;
            return set->sorted[mid].src;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}
