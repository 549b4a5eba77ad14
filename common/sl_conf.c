/*
 * sl_conf: YAML (libyaml's event parser) into an immutable node tree.
 *
 * The tree is built by a recursive descent over parser events, bounded in depth and file size.
 * Each node keeps its line and its key path so that every later error, including the semantic
 * checks that stages do on their own sections, can name the file, the line and the key.
 */
#include "sl_conf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct sl_conf_node {
    enum sl_conf_type type;
    int line;
    char *keypath;
    char *value;     /* SCALAR: the expanded text; NULL when it names an unset variable */
    char *unset_var; /* SCALAR: the first unset variable it references, or NULL */
    size_t n;        /* MAP entries or SEQ items */
    char **keys;     /* MAP: n keys */
    sl_conf_node_t **items;
};

struct sl_conf {
    char *file;
    char *dir;
    sl_conf_node_t *root;
};

static void node_free(sl_conf_node_t *node)
{
    if (!node)
        return;
    for (size_t i = 0; i < node->n; i++) {
        if (node->keys)
            free(node->keys[i]);
        node_free(node->items[i]);
    }
    free(node->keys);
    free(node->items);
    free(node->keypath);
    free(node->value);
    free(node->unset_var);
    free(node);
}

void sl_conf_destroy(sl_conf_t *conf)
{
    if (!conf)
        return;
    node_free(conf->root);
    free(conf->file);
    free(conf->dir);
    free(conf);
}

/* ------------------------------------------------------------------------------------------ */
/* Environment expansion                                                                       */

/* Growable string with a hard maximum (the file size bounds every expanded value's input, but a
 * variable's value is not bounded by the file). */
#define EXPAND_MAX (1024 * 1024)

struct strbuf {
    char *p;
    size_t len, cap;
    bool overflow;
};

static void sb_add(struct strbuf *sb, const char *s, size_t n)
{
    if (sb->overflow)
        return;
    if (sb->len + n + 1 > EXPAND_MAX) {
        sb->overflow = true;
        return;
    }
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 64;
        while (cap < sb->len + n + 1)
            cap *= 2;
        char *p = realloc(sb->p, cap);
        if (!p) {
            sb->overflow = true;
            return;
        }
        sb->p = p;
        sb->cap = cap;
    }
    memcpy(sb->p + sb->len, s, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}

static bool is_var_char(char c, bool first)
{
    return c == '_' || isalpha((unsigned char)c) || (!first && isdigit((unsigned char)c));
}

/* Expands ${VAR} and ${VAR:-default} in `in`. On success *out is the new string (owned by the
 * caller) and *unset the first unset variable without default (owned), or NULL. Returns -1
 * with a message in `why` for a malformed reference. */
static int expand_env(const char *in, char **out, char **unset, char *why, size_t why_size)
{
    struct strbuf sb = {0};
    *out = NULL;
    *unset = NULL;
    sb_add(&sb, "", 0);
    for (const char *p = in; *p;) {
        if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
            sb_add(&sb, "${", 2);
            p += 3;
            continue;
        }
        if (!(p[0] == '$' && p[1] == '{')) {
            sb_add(&sb, p, 1);
            p++;
            continue;
        }
        const char *name = p + 2, *q = name;
        while (*q && is_var_char(*q, q == name))
            q++;
        if (q == name) {
            snprintf(why, why_size, "malformed ${...}: expected a variable name after '${'");
            goto fail;
        }
        size_t name_len = (size_t)(q - name);
        const char *def = NULL;
        size_t def_len = 0;
        if (q[0] == ':' && q[1] == '-') {
            def = q + 2;
            const char *e = strchr(def, '}');
            if (!e) {
                snprintf(why, why_size, "malformed ${...}: missing '}'");
                goto fail;
            }
            def_len = (size_t)(e - def);
            q = e;
        }
        if (*q != '}') {
            snprintf(why, why_size, "malformed ${...}: expected '}' or ':-' after the name");
            goto fail;
        }
        char var[256];
        if (name_len >= sizeof(var)) {
            snprintf(why, why_size, "environment variable name too long");
            goto fail;
        }
        memcpy(var, name, name_len);
        var[name_len] = '\0';
        const char *val = getenv(var);
        if (val && *val)
            sb_add(&sb, val, strlen(val));
        else if (def)
            sb_add(&sb, def, def_len);
        else if (val)
            ; /* set but empty: an empty value, as in the shell */
        else if (!*unset)
            *unset = strdup(var);
        p = q + 1;
    }
    if (sb.overflow) {
        snprintf(why, why_size, "expanded value longer than %d bytes", EXPAND_MAX);
        goto fail;
    }
    *out = sb.p;
    return 0;
fail:
    free(sb.p);
    free(*unset);
    *unset = NULL;
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Parsing                                                                                     */

struct parser {
    yaml_parser_t yp;
    const char *name;
    struct sl_err *err;
};

static int perr(struct parser *ps, int line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int perr(struct parser *ps, int line, const char *path, const char *fmt, ...)
{
    char msg[SL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (path && *path)
        return sl_err_set(ps->err, SL_ERR_CONFIG, "%s:%d: %s: %s", ps->name, line, path, msg);
    return sl_err_set(ps->err, SL_ERR_CONFIG, "%s:%d: %s", ps->name, line, msg);
}

static int next_event(struct parser *ps, yaml_event_t *ev)
{
    if (yaml_parser_parse(&ps->yp, ev))
        return 0;
    int line = (int)ps->yp.problem_mark.line + 1;
    return perr(ps, line, NULL, "YAML syntax error: %s%s%s",
                ps->yp.problem ? ps->yp.problem : "unknown", ps->yp.context ? " " : "",
                ps->yp.context ? ps->yp.context : "");
}

static char *path_join_key(const char *parent, const char *key)
{
    size_t n = strlen(parent) + strlen(key) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s%s", parent, *parent ? "." : "", key);
    return p;
}

static char *path_join_index(const char *parent, size_t i)
{
    size_t n = strlen(parent) + 24;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s[%zu]", parent, i);
    return p;
}

static bool is_null_scalar(const yaml_event_t *ev)
{
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)ev->data.scalar.value;
    return !*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

static int append_child(sl_conf_node_t *parent, char *key, sl_conf_node_t *child)
{
    sl_conf_node_t **items = realloc(parent->items, (parent->n + 1) * sizeof(*items));
    if (!items)
        return -1;
    parent->items = items;
    if (parent->type == SL_CONF_MAP) {
        char **keys = realloc(parent->keys, (parent->n + 1) * sizeof(*keys));
        if (!keys)
            return -1;
        parent->keys = keys;
        keys[parent->n] = key;
    }
    items[parent->n++] = child;
    return 0;
}

/* Builds the node that starts with `ev` (consumed). `path` is taken (owned by the node). */
static sl_conf_node_t *parse_node(struct parser *ps, yaml_event_t *ev, char *path, int depth)
{
    sl_conf_node_t *node = calloc(1, sizeof(*node));
    if (!node) {
        free(path);
        sl_err_set(ps->err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    node->keypath = path;
    node->line = (int)ev->start_mark.line + 1;
    if (!path)
        goto nomem;
    if (depth > SL_CONF_MAX_DEPTH) {
        perr(ps, node->line, path, "nesting deeper than %d levels", SL_CONF_MAX_DEPTH);
        goto fail;
    }

    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        perr(ps, node->line, path, "YAML aliases (*%s) are not supported; repeat the value",
             (const char *)ev->data.alias.anchor);
        goto fail;
    case YAML_SCALAR_EVENT: {
        if (is_null_scalar(ev)) {
            node->type = SL_CONF_NULL;
            return node;
        }
        node->type = SL_CONF_SCALAR;
        char why[160];
        if (expand_env((const char *)ev->data.scalar.value, &node->value, &node->unset_var, why,
                       sizeof(why)) != 0) {
            perr(ps, node->line, path, "%s", why);
            goto fail;
        }
        if (node->unset_var) {
            free(node->value);
            node->value = NULL;
        }
        return node;
    }
    case YAML_SEQUENCE_START_EVENT:
        node->type = SL_CONF_SEQ;
        for (;;) {
            yaml_event_t item;
            if (next_event(ps, &item) != 0)
                goto fail;
            if (item.type == YAML_SEQUENCE_END_EVENT) {
                yaml_event_delete(&item);
                return node;
            }
            sl_conf_node_t *child =
                parse_node(ps, &item, path_join_index(path, node->n), depth + 1);
            yaml_event_delete(&item);
            if (!child)
                goto fail;
            if (append_child(node, NULL, child) != 0) {
                node_free(child);
                goto nomem;
            }
        }
    case YAML_MAPPING_START_EVENT:
        node->type = SL_CONF_MAP;
        for (;;) {
            yaml_event_t kev, vev;
            if (next_event(ps, &kev) != 0)
                goto fail;
            if (kev.type == YAML_MAPPING_END_EVENT) {
                yaml_event_delete(&kev);
                return node;
            }
            if (kev.type != YAML_SCALAR_EVENT) {
                perr(ps, (int)kev.start_mark.line + 1, path, "map keys must be plain strings");
                yaml_event_delete(&kev);
                goto fail;
            }
            char *key = strdup((const char *)kev.data.scalar.value);
            int kline = (int)kev.start_mark.line + 1;
            yaml_event_delete(&kev);
            if (!key)
                goto nomem;
            for (size_t i = 0; i < node->n; i++) {
                if (strcmp(node->keys[i], key) == 0) {
                    char *kp = path_join_key(path, key);
                    perr(ps, kline, kp ? kp : path, "duplicate key (first at line %d)",
                         node->items[i]->line);
                    free(kp);
                    free(key);
                    goto fail;
                }
            }
            if (next_event(ps, &vev) != 0) {
                free(key);
                goto fail;
            }
            sl_conf_node_t *child = parse_node(ps, &vev, path_join_key(path, key), depth + 1);
            yaml_event_delete(&vev);
            if (!child) {
                free(key);
                goto fail;
            }
            if (append_child(node, key, child) != 0) {
                free(key);
                node_free(child);
                goto nomem;
            }
        }
    default:
        perr(ps, node->line, path, "unexpected YAML event");
        goto fail;
    }
nomem:
    sl_err_set(ps->err, SL_ERR_NOMEM, "%s: out of memory", ps->name);
fail:
    node_free(node);
    return NULL;
}

sl_conf_t *sl_conf_load_string(const char *name, const char *dir, const char *text, size_t len,
                               struct sl_err *err)
{
    struct parser ps = {.name = name, .err = err};
    sl_conf_t *conf = calloc(1, sizeof(*conf));
    yaml_event_t ev;
    bool parser_ready = false;

    if (!conf)
        goto nomem;
    conf->file = strdup(name);
    conf->dir = strdup(dir ? dir : ".");
    if (!conf->file || !conf->dir)
        goto nomem;
    if (!yaml_parser_initialize(&ps.yp))
        goto nomem;
    parser_ready = true;
    yaml_parser_set_input_string(&ps.yp, (const unsigned char *)text, len);

    /* STREAM-START, then DOCUMENT-START or STREAM-END (an empty file is an empty map). */
    for (;;) {
        if (next_event(&ps, &ev) != 0)
            goto fail;
        yaml_event_type_t t = ev.type;
        if (t == YAML_STREAM_START_EVENT || t == YAML_DOCUMENT_START_EVENT) {
            yaml_event_delete(&ev);
            continue;
        }
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            conf->root = calloc(1, sizeof(*conf->root));
            if (!conf->root || !(conf->root->keypath = strdup("")))
                goto nomem;
            conf->root->type = SL_CONF_MAP;
            conf->root->line = 1;
            break;
        }
        conf->root = parse_node(&ps, &ev, strdup(""), 0);
        yaml_event_delete(&ev);
        if (!conf->root)
            goto fail;
        if (conf->root->type == SL_CONF_NULL) {
            conf->root->type = SL_CONF_MAP;
        } else if (conf->root->type != SL_CONF_MAP) {
            perr(&ps, conf->root->line, NULL, "the top level must be a map of sections");
            goto fail;
        }
        /* Exactly one document. */
        if (next_event(&ps, &ev) != 0)
            goto fail;
        bool doc_end = ev.type == YAML_DOCUMENT_END_EVENT;
        int line = (int)ev.start_mark.line + 1;
        yaml_event_delete(&ev);
        if (!doc_end || next_event(&ps, &ev) != 0) {
            if (!doc_end)
                perr(&ps, line, NULL, "unexpected content after the document");
            goto fail;
        }
        bool stream_end = ev.type == YAML_STREAM_END_EVENT;
        line = (int)ev.start_mark.line + 1;
        yaml_event_delete(&ev);
        if (!stream_end) {
            perr(&ps, line, NULL, "only one YAML document per file is allowed");
            goto fail;
        }
        break;
    }
    yaml_parser_delete(&ps.yp);
    return conf;

nomem:
    sl_err_set(err, SL_ERR_NOMEM, "%s: out of memory", name);
fail:
    if (parser_ready)
        yaml_parser_delete(&ps.yp);
    sl_conf_destroy(conf);
    return NULL;
}

sl_conf_t *sl_conf_load_file(const char *path, struct sl_err *err)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL, *dir = NULL;
    sl_conf_t *conf = NULL;

    if (!f) {
        sl_err_set(err, SL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    text = malloc(SL_CONF_MAX_FILE_BYTES + 1);
    if (!text) {
        sl_err_set(err, SL_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    size_t len = fread(text, 1, SL_CONF_MAX_FILE_BYTES + 1, f);
    if (ferror(f)) {
        sl_err_set(err, SL_ERR_IO, "%s: read error", path);
        goto out;
    }
    if (len > SL_CONF_MAX_FILE_BYTES) {
        sl_err_set(err, SL_ERR_CONFIG, "%s: larger than %d bytes", path, SL_CONF_MAX_FILE_BYTES);
        goto out;
    }
    dir = strdup(path);
    if (!dir) {
        sl_err_set(err, SL_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    conf = sl_conf_load_string(path, dir, text, len, err);
out:
    if (f)
        fclose(f);
    free(text);
    free(dir);
    return conf;
}

/* ------------------------------------------------------------------------------------------ */
/* Navigation                                                                                  */

const char *sl_conf_file(const sl_conf_t *conf)
{
    return conf->file;
}

const char *sl_conf_dir(const sl_conf_t *conf)
{
    return conf->dir;
}

const sl_conf_node_t *sl_conf_root(const sl_conf_t *conf)
{
    return conf ? conf->root : NULL;
}

enum sl_conf_type sl_conf_type(const sl_conf_node_t *node)
{
    return node ? node->type : SL_CONF_NULL;
}

const sl_conf_node_t *sl_conf_get(const sl_conf_node_t *map, const char *key)
{
    if (!map || map->type != SL_CONF_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i], key) == 0)
            return map->items[i]->type == SL_CONF_NULL ? NULL : map->items[i];
    return NULL;
}

const sl_conf_node_t *sl_conf_find(const sl_conf_node_t *node, const char *dotted)
{
    char part[256];
    const char *p = dotted;
    while (node && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof(part))
            return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        node = sl_conf_get(node, part);
        p += n + (dot ? 1 : 0);
    }
    return node;
}

size_t sl_conf_count(const sl_conf_node_t *node)
{
    return node && (node->type == SL_CONF_MAP || node->type == SL_CONF_SEQ) ? node->n : 0;
}

const sl_conf_node_t *sl_conf_item(const sl_conf_node_t *node, size_t i)
{
    return i < sl_conf_count(node) ? node->items[i] : NULL;
}

const char *sl_conf_key(const sl_conf_node_t *map, size_t i)
{
    return map && map->type == SL_CONF_MAP && i < map->n ? map->keys[i] : NULL;
}

int sl_conf_line(const sl_conf_node_t *node)
{
    return node ? node->line : 0;
}

const char *sl_conf_keypath(const sl_conf_node_t *node)
{
    return node ? node->keypath : "";
}

int sl_conf_error(const sl_conf_t *conf, const sl_conf_node_t *node, struct sl_err *err,
                  const char *fmt, ...)
{
    char msg[SL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (node && *node->keypath)
        return sl_err_set(err, SL_ERR_CONFIG, "%s:%d: %s: %s", conf->file, node->line,
                          node->keypath, msg);
    return sl_err_set(err, SL_ERR_CONFIG, "%s:%d: %s", conf->file, node ? node->line : 1, msg);
}

/* ------------------------------------------------------------------------------------------ */
/* Typed reads                                                                                 */

int sl_conf_as_str(const sl_conf_t *conf, const sl_conf_node_t *node, const char **out,
                   struct sl_err *err)
{
    if (!node || node->type != SL_CONF_SCALAR)
        return sl_conf_error(conf, node, err, "expected a string");
    if (node->unset_var)
        return sl_conf_error(conf, node, err, "environment variable %s is not set",
                             node->unset_var);
    *out = node->value;
    return 0;
}

int sl_conf_str(const sl_conf_t *conf, const sl_conf_node_t *map, const char *key, const char *def,
                const char **out, struct sl_err *err)
{
    const sl_conf_node_t *node = sl_conf_get(map, key);
    if (!node) {
        *out = def;
        return 0;
    }
    return sl_conf_as_str(conf, node, out, err);
}

static int parse_ll(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

int sl_conf_parse_duration_ms(const char *text, long long *out)
{
    static const struct {
        const char *unit;
        long long ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    if (strcmp(text, "0") == 0) {
        *out = 0;
        return 0;
    }
    long long total = 0;
    const char *p = text;
    if (!*p)
        return -1;
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return -1;
        char *end;
        errno = 0;
        long long n = strtoll(p, &end, 10);
        if (errno)
            return -1;
        size_t ulen = 0;
        while (isalpha((unsigned char)end[ulen]))
            ulen++;
        long long mult = 0;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
            if (strlen(units[i].unit) == ulen && strncmp(end, units[i].unit, ulen) == 0)
                mult = units[i].ms;
        if (!mult || n > LLONG_MAX / mult || total > LLONG_MAX - n * mult)
            return -1;
        total += n * mult;
        p = end + ulen;
    }
    *out = total;
    return 0;
}

int sl_conf_parse_size(const char *text, long long *out)
{
    static const struct {
        const char *unit;
        long long mult;
    } units[] = {{"", 1},          {"B", 1},     {"KiB", 1024},   {"MiB", 1048576},
                 {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000}};
    char *end;
    if (!isdigit((unsigned char)*text))
        return -1;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (errno)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) == 0) {
            if (n > LLONG_MAX / units[i].mult)
                return -1;
            *out = n * units[i].mult;
            return 0;
        }
    }
    return -1;
}

enum num_kind { NUM_INT, NUM_DURATION, NUM_SIZE };

static int read_number(const sl_conf_t *conf, const sl_conf_node_t *node, enum num_kind kind,
                       long long min, long long max, long long *out, struct sl_err *err)
{
    static const char *const expected[] = {
        [NUM_INT] = "an integer",
        [NUM_DURATION] = "a duration such as 250ms, 30s, 5m, 72h or 3d",
        [NUM_SIZE] = "a size such as 1048576, 64KiB or 1MiB",
    };
    const char *text = NULL;
    if (sl_conf_as_str(conf, node, &text, err) != 0) {
        if (node && node->type != SL_CONF_SCALAR)
            return sl_conf_error(conf, node, err, "expected %s", expected[kind]);
        return -1;
    }
    long long v;
    int rc = kind == NUM_INT        ? parse_ll(text, &v)
             : kind == NUM_DURATION ? sl_conf_parse_duration_ms(text, &v)
                                    : sl_conf_parse_size(text, &v);
    if (rc != 0)
        return sl_conf_error(conf, node, err, "expected %s, got '%s'", expected[kind], text);
    if (min != max && (v < min || v > max))
        return sl_conf_error(conf, node, err, "'%s' is out of range [%lld, %lld]%s", text, min, max,
                             kind == NUM_DURATION ? " ms"
                             : kind == NUM_SIZE   ? " bytes"
                                                  : "");
    *out = v;
    return 0;
}

static int read_member_number(const sl_conf_t *conf, const sl_conf_node_t *map, const char *key,
                              enum num_kind kind, long long def, long long min, long long max,
                              long long *out, struct sl_err *err)
{
    const sl_conf_node_t *node = sl_conf_get(map, key);
    if (!node) {
        *out = def;
        return 0;
    }
    return read_number(conf, node, kind, min, max, out, err);
}

int sl_conf_int(const sl_conf_t *conf, const sl_conf_node_t *map, const char *key, long long def,
                long long min, long long max, long long *out, struct sl_err *err)
{
    return read_member_number(conf, map, key, NUM_INT, def, min, max, out, err);
}

int sl_conf_duration_ms(const sl_conf_t *conf, const sl_conf_node_t *map, const char *key,
                        long long def, long long min, long long max, long long *out,
                        struct sl_err *err)
{
    return read_member_number(conf, map, key, NUM_DURATION, def, min, max, out, err);
}

int sl_conf_size(const sl_conf_t *conf, const sl_conf_node_t *map, const char *key, long long def,
                 long long min, long long max, long long *out, struct sl_err *err)
{
    return read_member_number(conf, map, key, NUM_SIZE, def, min, max, out, err);
}

static int read_bool(const sl_conf_t *conf, const sl_conf_node_t *node, bool *out,
                     struct sl_err *err)
{
    const char *text = NULL;
    if (sl_conf_as_str(conf, node, &text, err) != 0)
        return -1;
    if (strcmp(text, "true") == 0)
        *out = true;
    else if (strcmp(text, "false") == 0)
        *out = false;
    else
        return sl_conf_error(conf, node, err, "expected true or false, got '%s'", text);
    return 0;
}

int sl_conf_bool(const sl_conf_t *conf, const sl_conf_node_t *map, const char *key, bool def,
                 bool *out, struct sl_err *err)
{
    const sl_conf_node_t *node = sl_conf_get(map, key);
    if (!node) {
        *out = def;
        return 0;
    }
    return read_bool(conf, node, out, err);
}

static void walk_unset(const sl_conf_node_t *node,
                       void (*cb)(void *opaque, const char *var, const sl_conf_node_t *node),
                       void *opaque)
{
    if (node->unset_var)
        cb(opaque, node->unset_var, node);
    for (size_t i = 0; i < node->n; i++)
        walk_unset(node->items[i], cb, opaque);
}

void sl_conf_unset_vars(const sl_conf_t *conf,
                        void (*cb)(void *opaque, const char *var, const sl_conf_node_t *node),
                        void *opaque)
{
    walk_unset(conf->root, cb, opaque);
}

/* ------------------------------------------------------------------------------------------ */
/* The key table check                                                                         */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return SIZE_MAX;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diag + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static int unknown_key(const sl_conf_t *conf, const sl_conf_node_t *value,
                       const struct sl_conf_key *keys, const char *key, struct sl_err *err)
{
    char known[300] = "";
    size_t len = 0;
    const char *closest = NULL;
    size_t best = 3; /* only suggest names at most 2 edits away */
    for (const struct sl_conf_key *k = keys; k->name; k++) {
        int n = snprintf(known + len, sizeof(known) - len, "%s%s", len ? ", " : "", k->name);
        if (n > 0 && (size_t)n < sizeof(known) - len)
            len += (size_t)n;
        size_t d = edit_distance(key, k->name);
        if (d < best) {
            best = d;
            closest = k->name;
        }
    }
    if (closest)
        return sl_conf_error(conf, value, err, "unknown key (did you mean '%s'? known keys: %s)",
                             closest, known);
    return sl_conf_error(conf, value, err, "unknown key (known keys: %s)", known);
}

static int check_node(const sl_conf_t *conf, const sl_conf_node_t *node,
                      const struct sl_conf_key *spec, struct sl_err *err);

static int check_section(const sl_conf_t *conf, const sl_conf_node_t *node,
                         const struct sl_conf_key *keys, struct sl_err *err)
{
    if (node->type == SL_CONF_NULL)
        goto required;
    if (node->type != SL_CONF_MAP)
        return sl_conf_error(conf, node, err, "expected a map of keys");
    for (size_t i = 0; i < node->n; i++) {
        const struct sl_conf_key *k = keys;
        while (k->name && strcmp(k->name, node->keys[i]) != 0)
            k++;
        if (!k->name)
            return unknown_key(conf, node->items[i], keys, node->keys[i], err);
        if (node->items[i]->type != SL_CONF_NULL && check_node(conf, node->items[i], k, err))
            return -1;
    }
required:
    for (const struct sl_conf_key *k = keys; k->name; k++)
        if (k->required && !sl_conf_get(node, k->name))
            return sl_conf_error(conf, node, err, "missing required key '%s'", k->name);
    return 0;
}

static int check_node(const sl_conf_t *conf, const sl_conf_node_t *node,
                      const struct sl_conf_key *spec, struct sl_err *err)
{
    switch (spec->kind) {
    case SL_CK_STRING:
        if (node->type != SL_CONF_SCALAR)
            return sl_conf_error(conf, node, err, "expected a string");
        return 0;
    case SL_CK_INT:
    case SL_CK_DURATION:
    case SL_CK_SIZE: {
        if (node->unset_var)
            return 0; /* cannot be checked until it is set; reading it will say so */
        long long v;
        enum num_kind k = spec->kind == SL_CK_INT        ? NUM_INT
                          : spec->kind == SL_CK_DURATION ? NUM_DURATION
                                                         : NUM_SIZE;
        return read_number(conf, node, k, spec->min, spec->max, &v, err);
    }
    case SL_CK_BOOL: {
        bool b;
        return node->unset_var ? 0 : read_bool(conf, node, &b, err);
    }
    case SL_CK_ENUM: {
        if (node->type != SL_CONF_SCALAR)
            return sl_conf_error(conf, node, err, "expected one of the names listed below");
        if (node->unset_var)
            return 0;
        char choices[256] = "";
        size_t len = 0;
        for (const char *const *c = spec->choices; *c; c++) {
            if (strcmp(*c, node->value) == 0)
                return 0;
            int n = snprintf(choices + len, sizeof(choices) - len, "%s%s", len ? ", " : "", *c);
            if (n > 0 && (size_t)n < sizeof(choices) - len)
                len += (size_t)n;
        }
        return sl_conf_error(conf, node, err, "'%s' is not one of: %s", node->value, choices);
    }
    case SL_CK_SECTION:
        return check_section(conf, node, spec->children, err);
    case SL_CK_MAP_OF:
        if (node->type != SL_CONF_MAP)
            return sl_conf_error(conf, node, err, "expected a map of named entries");
        for (size_t i = 0; i < node->n; i++)
            if (check_section(conf, node->items[i], spec->children, err) != 0)
                return -1;
        return 0;
    case SL_CK_LIST_OF:
        if (node->type != SL_CONF_SEQ)
            return sl_conf_error(conf, node, err, "expected a list");
        for (size_t i = 0; i < node->n; i++)
            if (check_section(conf, node->items[i], spec->children, err) != 0)
                return -1;
        return 0;
    case SL_CK_STRINGS:
        if (node->type == SL_CONF_SCALAR)
            return 0;
        if (node->type != SL_CONF_SEQ)
            return sl_conf_error(conf, node, err, "expected a string or a list of strings");
        for (size_t i = 0; i < node->n; i++)
            if (node->items[i]->type != SL_CONF_SCALAR)
                return sl_conf_error(conf, node->items[i], err, "expected a string");
        return 0;
    case SL_CK_STRING_MAP:
        if (node->type != SL_CONF_MAP)
            return sl_conf_error(conf, node, err, "expected a map of names to strings");
        for (size_t i = 0; i < node->n; i++)
            if (node->items[i]->type != SL_CONF_SCALAR)
                return sl_conf_error(conf, node->items[i], err, "expected a string");
        return 0;
    }
    return sl_conf_error(conf, node, err, "internal: unknown key kind");
}

int sl_conf_check(const sl_conf_t *conf, const struct sl_conf_key *root, struct sl_err *err)
{
    return check_section(conf, conf->root, root, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Reference documentation                                                                     */

static const char *kind_name(enum sl_conf_kind kind)
{
    switch (kind) {
    case SL_CK_STRING:
        return "string";
    case SL_CK_INT:
        return "integer";
    case SL_CK_BOOL:
        return "bool";
    case SL_CK_DURATION:
        return "duration";
    case SL_CK_SIZE:
        return "size";
    case SL_CK_ENUM:
        return "enum";
    case SL_CK_SECTION:
        return "section";
    case SL_CK_MAP_OF:
        return "map of named entries";
    case SL_CK_LIST_OF:
        return "list";
    case SL_CK_STRINGS:
        return "string or list of strings";
    case SL_CK_STRING_MAP:
        return "map of strings";
    }
    return "?";
}

static void write_keys(FILE *out, const char *prefix, const struct sl_conf_key *keys)
{
    for (const struct sl_conf_key *k = keys; k->name; k++) {
        fprintf(out, "| `%s%s` | %s", prefix, k->name, kind_name(k->kind));
        if (k->kind == SL_CK_ENUM) {
            fputs(": ", out);
            for (const char *const *c = k->choices; *c; c++)
                fprintf(out, "%s`%s`", c == k->choices ? "" : ", ", *c);
        }
        fprintf(out, " | %s | %s%s |\n", k->def ? k->def : (k->required ? "required" : "-"),
                k->desc ? k->desc : "", k->required ? " Required." : "");
    }
    for (const struct sl_conf_key *k = keys; k->name; k++) {
        if (!k->children)
            continue;
        char sub[256];
        snprintf(sub, sizeof(sub), "%s%s%s.", prefix, k->name,
                 k->kind == SL_CK_MAP_OF    ? ".<name>"
                 : k->kind == SL_CK_LIST_OF ? "[]"
                                            : "");
        write_keys(out, sub, k->children);
    }
}

void sl_conf_write_reference(FILE *out, const struct sl_conf_key *root)
{
    fputs("| key | type | default | description |\n|---|---|---|---|\n", out);
    write_keys(out, "", root);
}
