/*
 * sl_jsonschema: JSON Schema compiled once, validated many times from many threads.
 *
 *   load / add ──► document (the set's own copy) ──► index ──► compile ──► sl_schema_t
 *
 * Index walks a document through the keywords that hold subschemas (never into `const`, `enum` or
 * unknown keywords) and gives every subschema object a `struct sinfo`: its schema resource (base
 * URI, draft, vocabularies) and its JSON Pointer, for error messages. `$id`, `$anchor` and
 * `$dynamicAnchor` register URIs in the set's registry. Compile turns each reachable subschema
 * object into one `struct node`, memoised per JSON object so that `$ref` cycles become pointer
 * cycles; `$ref` targets are resolved (loading documents through the URI mappings or the built-in
 * meta-schemas), regexes compiled, keyword values checked. A schema that cannot compile is
 * rejected with "<uri>#<pointer>/<keyword>: <why>".
 *
 * Validation walks nodes and instance together and allocates almost nothing: the instance and
 * keyword paths are linked lists on the C stack, rendered only when an error is reported; the bit
 * sets behind unevaluatedProperties/unevaluatedItems live on the stack up to BITS_INLINE members;
 * the one PCRE2 match data of a call is created at its first pattern and freed at its end (and
 * propertyNames wraps each member name in a jansson string). Nodes are never written after
 * compile, so validation is safe from several threads.
 *
 * Memory: every compiled structure lives in the set's arena; documents and regexes are released
 * by sl_schema_set_destroy(). The registry is append-only vectors (the truth) plus hash maps
 * (indexes over them); a failed load or add truncates the vectors, clears the compiled nodes it
 * attached to older subschemas (the journal), and rebuilds the maps, so the set is as before.
 */
#include "sl_jsonschema.h"
#include "sl_text.h"

#include "sl_jsonschema_format.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define URI_MAX             4096                   /* longest URI, after resolution */
#define ARENA_CHUNK_BYTES   (64u * 1024u)          /* arena grows by this much */
#define ARENA_MAX_BYTES     (256u * 1024u * 1024u) /* compiled form of one set */
#define VEC_MAX_ITEMS       (1u << 22)             /* documents, subschemas, names... per set */
#define MAPPINGS_MAX        64                     /* sl_schema_set_map() calls per set */
#define META_CHAIN_MAX      8                      /* meta-schemas built on meta-schemas */
#define COMPILE_MAX_DEPTH   1024                   /* nested subschemas while compiling */
#define RENDER_SEGS_MAX     1024                   /* path segments shown in one error */
#define RENDER_MAX          2048                   /* a rendered path in an error */
#define MESSAGE_MAX         512                    /* an error message */
#define LOCATION_SHOWN_MAX  160                    /* schema location shown in a load error */
#define VALUE_TEXT_MAX      48                     /* bytes of a string value quoted in a message */
#define UNIQUE_PAIRWISE_MAX 32                     /* uniqueItems: longer arrays are hashed */
#define BITS_INLINE         256                    /* evaluated members tracked without malloc */

enum draft { DRAFT_07 = 7, DRAFT_2020 = 2020 };

/* Vocabularies that switch keywords on (2020-12 `$vocabulary`); draft-07 has them all. */
enum {
    VOCAB_CORE = 1u << 0,
    VOCAB_APPLICATOR = 1u << 1,
    VOCAB_UNEVALUATED = 1u << 2,
    VOCAB_VALIDATION = 1u << 3,
    VOCAB_FORMAT_ASSERTION = 1u << 4,
    VOCAB_DEFAULT = VOCAB_CORE | VOCAB_APPLICATOR | VOCAB_UNEVALUATED | VOCAB_VALIDATION,
};

static const struct {
    const char *uri;
    unsigned bit; /* 0: known, annotations only */
} vocabularies[] = {
    {"https://json-schema.org/draft/2020-12/vocab/core", VOCAB_CORE},
    {"https://json-schema.org/draft/2020-12/vocab/applicator", VOCAB_APPLICATOR},
    {"https://json-schema.org/draft/2020-12/vocab/unevaluated", VOCAB_UNEVALUATED},
    {"https://json-schema.org/draft/2020-12/vocab/validation", VOCAB_VALIDATION},
    {"https://json-schema.org/draft/2020-12/vocab/meta-data", 0},
    {"https://json-schema.org/draft/2020-12/vocab/format-annotation", 0},
    {"https://json-schema.org/draft/2020-12/vocab/format-assertion", VOCAB_FORMAT_ASSERTION},
    {"https://json-schema.org/draft/2020-12/vocab/content", 0},
};

enum {
    TYPE_NULL = 1u << 0,
    TYPE_BOOLEAN = 1u << 1,
    TYPE_OBJECT = 1u << 2,
    TYPE_ARRAY = 1u << 3,
    TYPE_NUMBER = 1u << 4,
    TYPE_INTEGER = 1u << 5,
    TYPE_STRING = 1u << 6,
};

static const char *const type_names[] = {"null",   "boolean", "object", "array",
                                         "number", "integer", "string"};

/* ---- containers: arena, vector, hash map --------------------------------------------------- */

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

struct arena {
    struct arena_chunk *head;
    size_t total;
};

/* Zeroed, max-aligned memory that lives until arena_free(); NULL at the bound or out of memory. */
static void *arena_alloc(struct arena *arena, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    struct arena_chunk *ch = arena->head;
    if (!ch || ch->cap - ch->used < n) {
        size_t cap = n > ARENA_CHUNK_BYTES ? n : ARENA_CHUNK_BYTES;
        if (arena->total + cap > ARENA_MAX_BYTES)
            return NULL;
        ch = malloc(sizeof(*ch) + cap);
        if (!ch)
            return NULL;
        ch->next = arena->head;
        ch->used = 0;
        ch->cap = cap;
        arena->head = ch;
        arena->total += cap;
    }
    void *p = (unsigned char *)ch->data + ch->used;
    ch->used += n;
    memset(p, 0, n);
    return p;
}

static char *arena_strndup(struct arena *arena, const char *s, size_t n)
{
    char *p = arena_alloc(arena, n + 1);
    if (p)
        memcpy(p, s, n);
    return p;
}

static void arena_free(struct arena *arena)
{
    struct arena_chunk *ch = arena->head;
    while (ch) {
        struct arena_chunk *next = ch->next;
        free(ch);
        ch = next;
    }
    arena->head = NULL;
    arena->total = 0;
}

struct vec {
    void **v;
    size_t n, cap;
};

static int vec_push(struct vec *vec, void *p)
{
    if (vec->n == vec->cap) {
        if (vec->cap >= VEC_MAX_ITEMS)
            return -1;
        size_t cap = vec->cap ? vec->cap * 2 : 16;
        void **v = realloc(vec->v, cap * sizeof(*v));
        if (!v)
            return -1;
        vec->v = v;
        vec->cap = cap;
    }
    vec->v[vec->n++] = p;
    return 0;
}

/* Open addressing, linear probing; keys are C strings or (ptr_keys) the pointers themselves.
 * Keys and values are borrowed: they live in the arena or the documents. */
struct map_slot {
    const void *key;
    void *val;
};

struct map {
    struct map_slot *slots;
    size_t cap, n; /* cap is 0 or a power of two */
    bool ptr_keys;
};

static uint64_t map_hash(const struct map *map, const void *key)
{
    uint64_t h = 1469598103934665603u;
    if (map->ptr_keys) {
        h ^= (uint64_t)(uintptr_t)key;
        h *= 1099511628211u;
        return h ^ (h >> 31);
    }
    for (const unsigned char *s = key; *s; s++) {
        h ^= *s;
        h *= 1099511628211u;
    }
    return h;
}

static bool map_key_eq(const struct map *map, const void *a, const void *b)
{
    return map->ptr_keys ? a == b : strcmp(a, b) == 0;
}

static void *map_get(const struct map *map, const void *key)
{
    if (map->cap == 0)
        return NULL;
    for (size_t i = map_hash(map, key) & (map->cap - 1);; i = (i + 1) & (map->cap - 1)) {
        if (!map->slots[i].key)
            return NULL;
        if (map_key_eq(map, map->slots[i].key, key))
            return map->slots[i].val;
    }
}

/* Inserts or replaces. Never fails when the map already held the key or has room (rebuilds). */
static int map_put(struct map *map, const void *key, void *val)
{
    if ((map->n + 1) * 4 > map->cap * 3) {
        size_t cap = map->cap ? map->cap * 2 : 64;
        if (cap > 2 * (size_t)VEC_MAX_ITEMS)
            return -1;
        struct map_slot *slots = calloc(cap, sizeof(*slots));
        if (!slots)
            return -1;
        struct map old = *map;
        map->slots = slots;
        map->cap = cap;
        map->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.slots[i].key)
                (void)map_put(map, old.slots[i].key, old.slots[i].val);
        free(old.slots);
    }
    size_t i = map_hash(map, key) & (map->cap - 1);
    while (map->slots[i].key && !map_key_eq(map, map->slots[i].key, key))
        i = (i + 1) & (map->cap - 1);
    if (!map->slots[i].key)
        map->n++;
    map->slots[i].key = key;
    map->slots[i].val = val;
    return 0;
}

static void map_clear(struct map *map)
{
    if (map->cap)
        memset(map->slots, 0, map->cap * sizeof(*map->slots));
    map->n = 0;
}

/* ---- bounded string building --------------------------------------------------------------- */

/* Appends into a fixed buffer; `overflow` records that something was cut. */
struct sbuf {
    char *p;
    size_t len, cap;
    bool overflow;
};

static void sb_init(struct sbuf *sb, char *buf, size_t cap)
{
    sb->p = buf;
    sb->len = 0;
    sb->cap = cap;
    sb->overflow = false;
    buf[0] = '\0';
}

static void sb_add(struct sbuf *sb, const char *s, size_t n)
{
    if (n > sb->cap - 1 - sb->len) {
        n = sb->cap - 1 - sb->len;
        sb->overflow = true;
    }
    memcpy(sb->p + sb->len, s, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}

static void sb_adds(struct sbuf *sb, const char *s)
{
    sb_add(sb, s, strlen(s));
}

static void sb_printf(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sb->p + sb->len, sb->cap - sb->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sb->cap - sb->len) {
        sb->overflow = true;
        sb->len = sb->cap - 1;
    } else {
        sb->len += (size_t)n;
    }
}

/* A JSON Pointer reference token: "~" as "~0", "/" as "~1". */
static void sb_add_token(struct sbuf *sb, const char *s)
{
    for (; *s; s++) {
        if (*s == '~')
            sb_add(sb, "~0", 2);
        else if (*s == '/')
            sb_add(sb, "~1", 2);
        else
            sb_add(sb, s, 1);
    }
}

/* ---- URIs (RFC 3986) ------------------------------------------------------------------------ */

struct uri_parts {
    const char *scheme, *auth, *path, *query, *frag;
    size_t scheme_len, auth_len, path_len, query_len, frag_len;
    bool has_auth, has_query, has_frag;
};

static bool is_scheme_char(char c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return !first && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.');
}

static void uri_parse(const char *s, struct uri_parts *u)
{
    memset(u, 0, sizeof(*u));
    size_t i = 0;
    while (s[i] && is_scheme_char(s[i], i == 0))
        i++;
    if (i > 0 && s[i] == ':') {
        u->scheme = s;
        u->scheme_len = i;
        s += i + 1;
    }
    if (s[0] == '/' && s[1] == '/') {
        u->has_auth = true;
        u->auth = s + 2;
        u->auth_len = strcspn(u->auth, "/?#");
        s = u->auth + u->auth_len;
    }
    u->path = s;
    u->path_len = strcspn(s, "?#");
    s += u->path_len;
    if (*s == '?') {
        u->has_query = true;
        u->query = s + 1;
        u->query_len = strcspn(u->query, "#");
        s = u->query + u->query_len;
    }
    if (*s == '#') {
        u->has_frag = true;
        u->frag = s + 1;
        u->frag_len = strlen(u->frag);
    }
}

/* RFC 3986 5.2.4, appending the result to out. */
static void remove_dot_segments(const char *path, size_t len, struct sbuf *out)
{
    char in[URI_MAX];
    if (len >= sizeof(in)) {
        out->overflow = true;
        return;
    }
    memcpy(in, path, len);
    in[len] = '\0';
    size_t base = out->len; /* output before this call is not ours to pop */
    char *p = in;
    while (*p) {
        if (strncmp(p, "../", 3) == 0) {
            p += 3;
        } else if (strncmp(p, "./", 2) == 0) {
            p += 2;
        } else if (strncmp(p, "/./", 3) == 0) {
            p += 2;
        } else if (strcmp(p, "/.") == 0) {
            p[1] = '\0';
        } else if (strncmp(p, "/../", 4) == 0 || strcmp(p, "/..") == 0) {
            if (p[3] == '/')
                p += 3;
            else
                p[1] = '\0';
            while (out->len > base && out->p[out->len - 1] != '/')
                out->len--;
            if (out->len > base)
                out->len--;
            out->p[out->len] = '\0';
        } else if (strcmp(p, ".") == 0 || strcmp(p, "..") == 0) {
            p += strlen(p);
        } else {
            size_t n = strcspn(p + 1, "/") + 1;
            sb_add(out, p, n);
            p += n;
        }
    }
}

/* Resolves ref against base (which may be NULL) into out (URI_MAX bytes). -1 when too long. */
static int uri_resolve(const char *base, const char *ref, char *out)
{
    struct uri_parts b, r;
    struct sbuf sb;
    sb_init(&sb, out, URI_MAX);
    uri_parse(ref, &r);
    if (!r.scheme && !base) {
        /* nothing to resolve against: a relative reference stays relative */
        sb_add(&sb, ref, strlen(ref) - (r.has_frag ? r.frag_len + 1 : 0));
        goto frag;
    }
    if (r.scheme) {
        sb_add(&sb, r.scheme, r.scheme_len);
        sb_add(&sb, ":", 1);
        if (r.has_auth) {
            sb_add(&sb, "//", 2);
            sb_add(&sb, r.auth, r.auth_len);
        }
        if (r.has_auth || (r.path_len > 0 && r.path[0] == '/'))
            remove_dot_segments(r.path, r.path_len, &sb);
        else
            sb_add(&sb, r.path, r.path_len); /* urn:..., tag:...: opaque */
        if (r.has_query) {
            sb_add(&sb, "?", 1);
            sb_add(&sb, r.query, r.query_len);
        }
        goto frag;
    }
    uri_parse(base, &b);
    sb_add(&sb, b.scheme, b.scheme_len);
    if (b.scheme)
        sb_add(&sb, ":", 1);
    if (r.has_auth) {
        sb_add(&sb, "//", 2);
        sb_add(&sb, r.auth, r.auth_len);
        remove_dot_segments(r.path, r.path_len, &sb);
        if (r.has_query) {
            sb_add(&sb, "?", 1);
            sb_add(&sb, r.query, r.query_len);
        }
        goto frag;
    }
    if (b.has_auth) {
        sb_add(&sb, "//", 2);
        sb_add(&sb, b.auth, b.auth_len);
    }
    if (r.path_len == 0) {
        sb_add(&sb, b.path, b.path_len);
        if (r.has_query || b.has_query) {
            sb_add(&sb, "?", 1);
            if (r.has_query)
                sb_add(&sb, r.query, r.query_len);
            else
                sb_add(&sb, b.query, b.query_len);
        }
        goto frag;
    }
    if (r.path[0] == '/') {
        remove_dot_segments(r.path, r.path_len, &sb);
    } else {
        char merged[URI_MAX];
        struct sbuf m;
        sb_init(&m, merged, sizeof(merged));
        if (b.has_auth && b.path_len == 0) {
            sb_add(&m, "/", 1);
        } else {
            size_t keep = b.path_len;
            while (keep > 0 && b.path[keep - 1] != '/')
                keep--;
            sb_add(&m, b.path, keep);
        }
        sb_add(&m, r.path, r.path_len);
        if (m.overflow)
            return -1;
        if (b.has_auth || merged[0] == '/')
            remove_dot_segments(merged, m.len, &sb);
        else
            sb_add(&sb, merged, m.len);
    }
    if (r.has_query) {
        sb_add(&sb, "?", 1);
        sb_add(&sb, r.query, r.query_len);
    }
frag:
    if (r.has_frag && r.frag_len > 0) {
        sb_add(&sb, "#", 1);
        sb_add(&sb, r.frag, r.frag_len);
    }
    return sb.overflow ? -1 : 0;
}

/* "file://" + the absolute path, percent-encoding what RFC 3986 does not allow in a path. */
static int file_uri(const char *abs_path, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    struct sbuf sb;
    sb_init(&sb, out, URI_MAX);
    sb_adds(&sb, "file://");
    for (const unsigned char *p = (const unsigned char *)abs_path; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("/-._~!$&'()*+,;=:@", *p)) {
            sb_add(&sb, (const char *)p, 1);
        } else {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            sb_add(&sb, esc, 3);
        }
    }
    return sb.overflow ? -1 : 0;
}

/* ---- the set: registry of documents, resources, anchors and subschemas ------------------------
 */

struct node;

/* A schema resource: a document root or a subschema with `$id`. */
struct resource {
    const char *uri; /* absolute, without fragment: the base URI inside it */
    json_t *json;    /* its root object (or boolean), borrowed from its document */
    int draft;
    unsigned vocab;
    struct anchor *anchors; /* rebuilt from set->anchors on rollback */
};

/* `$anchor`, `$dynamicAnchor`, or a draft-07 `"$id": "#name"`. */
struct anchor {
    struct anchor *next;
    struct resource *res;
    const char *name;
    json_t *json;
    bool dynamic;
    const struct node *node; /* dynamic anchors: compiled target, for `$dynamicRef` at run time */
};

/* One registry entry: a URI (no fragment) naming a resource. */
struct name {
    const char *uri;
    struct resource *res;
};

/* What index found out about one subschema object. */
struct sinfo {
    json_t *json;
    struct resource *res;
    const char *ptr;         /* JSON Pointer from res->json, for error messages */
    const struct node *node; /* once compiled */
    sl_schema_t *handle;
};

struct sl_schema {
    const struct sl_schema_set *set;
    const struct node *root;
};

struct mapping {
    char *prefix;
    char *dir;
};

struct sl_schema_set {
    struct arena arena;
    struct map names; /* URI -> struct name * */
    struct map infos; /* json_t * -> struct sinfo * (ptr_keys) */
    struct vec docs;  /* json_t *: the documents, one reference each */
    struct vec name_list, info_list, anchor_list;
    struct vec regexes; /* pcre2_code * */
    /* Sinfos and anchors given a node or handle since the last checkpoint: rollback clears them. */
    struct vec journal_infos, journal_anchors;
    struct mapping mappings[MAPPINGS_MAX];
    size_t n_mappings;
    bool assert_formats;
    unsigned long anon_count;
    int compile_depth, index_depth, meta_depth;
};

/* The draft-07 and 2020-12 meta-schemas (json-schema.org, as packaged by the MIT-licensed
 * jsonschema-specifications), minified, so that `$ref`s to them and `$schema`s built on their
 * vocabularies work without network access. */
static const struct {
    const char *uri;
    const char *json;
} builtin_docs[] = {
    {"http://json-schema.org/draft-07/schema",
     "{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"$id\":\"http://json-schema.or"
     "g/draft-07/schema#\",\"title\":\"Core schema meta-schema\",\"definitions\":{\"schemaArra"
     "y\":{\"type\":\"array\",\"minItems\":1,\"items\":{\"$ref\":\"#\"}},\"nonNegativeInteger"
     "\":{\"type\":\"integer\",\"minimum\":0},\"nonNegativeIntegerDefault0\":{\"allOf\":[{\"$r"
     "ef\":\"#/definitions/nonNegativeInteger\"},{\"default\":0}]},\"simpleTypes\":{\"enum\":["
     "\"array\",\"boolean\",\"integer\",\"null\",\"number\",\"object\",\"string\"]},\"stringAr"
     "ray\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"uniqueItems\":true,\"default"
     "\":[]}},\"type\":[\"object\",\"boolean\"],\"properties\":{\"$id\":{\"type\":\"string\","
     "\"format\":\"uri-reference\"},\"$schema\":{\"type\":\"string\",\"format\":\"uri\"},\"$re"
     "f\":{\"type\":\"string\",\"format\":\"uri-reference\"},\"$comment\":{\"type\":\"string\""
     "},\"title\":{\"type\":\"string\"},\"description\":{\"type\":\"string\"},\"default\":true"
     ",\"readOnly\":{\"type\":\"boolean\",\"default\":false},\"examples\":{\"type\":\"array\","
     "\"items\":true},\"multipleOf\":{\"type\":\"number\",\"exclusiveMinimum\":0},\"maximum\":"
     "{\"type\":\"number\"},\"exclusiveMaximum\":{\"type\":\"number\"},\"minimum\":{\"type\":"
     "\"number\"},\"exclusiveMinimum\":{\"type\":\"number\"},\"maxLength\":{\"$ref\":\"#/defin"
     "itions/nonNegativeInteger\"},\"minLength\":{\"$ref\":\"#/definitions/nonNegativeIntegerD"
     "efault0\"},\"pattern\":{\"type\":\"string\",\"format\":\"regex\"},\"additionalItems\":{"
     "\"$ref\":\"#\"},\"items\":{\"anyOf\":[{\"$ref\":\"#\"},{\"$ref\":\"#/definitions/schemaA"
     "rray\"}],\"default\":true},\"maxItems\":{\"$ref\":\"#/definitions/nonNegativeInteger\"},"
     "\"minItems\":{\"$ref\":\"#/definitions/nonNegativeIntegerDefault0\"},\"uniqueItems\":{\""
     "type\":\"boolean\",\"default\":false},\"contains\":{\"$ref\":\"#\"},\"maxProperties\":{"
     "\"$ref\":\"#/definitions/nonNegativeInteger\"},\"minProperties\":{\"$ref\":\"#/definitio"
     "ns/nonNegativeIntegerDefault0\"},\"required\":{\"$ref\":\"#/definitions/stringArray\"},"
     "\"additionalProperties\":{\"$ref\":\"#\"},\"definitions\":{\"type\":\"object\",\"additio"
     "nalProperties\":{\"$ref\":\"#\"},\"default\":{}},\"properties\":{\"type\":\"object\",\"a"
     "dditionalProperties\":{\"$ref\":\"#\"},\"default\":{}},\"patternProperties\":{\"type\":"
     "\"object\",\"additionalProperties\":{\"$ref\":\"#\"},\"propertyNames\":{\"format\":\"reg"
     "ex\"},\"default\":{}},\"dependencies\":{\"type\":\"object\",\"additionalProperties\":{\""
     "anyOf\":[{\"$ref\":\"#\"},{\"$ref\":\"#/definitions/stringArray\"}]}},\"propertyNames\":"
     "{\"$ref\":\"#\"},\"const\":true,\"enum\":{\"type\":\"array\",\"items\":true},\"type\":{"
     "\"anyOf\":[{\"$ref\":\"#/definitions/simpleTypes\"},{\"type\":\"array\",\"items\":{\"$re"
     "f\":\"#/definitions/simpleTypes\"},\"minItems\":1,\"uniqueItems\":true}]},\"format\":{\""
     "type\":\"string\"},\"contentMediaType\":{\"type\":\"string\"},\"contentEncoding\":{\"typ"
     "e\":\"string\"},\"if\":{\"$ref\":\"#\"},\"then\":{\"$ref\":\"#\"},\"else\":{\"$ref\":\"#"
     "\"},\"allOf\":{\"$ref\":\"#/definitions/schemaArray\"},\"anyOf\":{\"$ref\":\"#/definitio"
     "ns/schemaArray\"},\"oneOf\":{\"$ref\":\"#/definitions/schemaArray\"},\"not\":{\"$ref\":"
     "\"#\"}},\"default\":true}"},
    {"https://json-schema.org/draft/2020-12/schema",
     "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"$id\":\"https://json-sch"
     "ema.org/draft/2020-12/schema\",\"$vocabulary\":{\"https://json-schema.org/draft/2020-12/"
     "vocab/core\":true,\"https://json-schema.org/draft/2020-12/vocab/applicator\":true,\"http"
     "s://json-schema.org/draft/2020-12/vocab/unevaluated\":true,\"https://json-schema.org/dra"
     "ft/2020-12/vocab/validation\":true,\"https://json-schema.org/draft/2020-12/vocab/meta-da"
     "ta\":true,\"https://json-schema.org/draft/2020-12/vocab/format-annotation\":true,\"https"
     "://json-schema.org/draft/2020-12/vocab/content\":true},\"$dynamicAnchor\":\"meta\",\"tit"
     "le\":\"Core and Validation specifications meta-schema\",\"allOf\":[{\"$ref\":\"meta/core"
     "\"},{\"$ref\":\"meta/applicator\"},{\"$ref\":\"meta/unevaluated\"},{\"$ref\":\"meta/vali"
     "dation\"},{\"$ref\":\"meta/meta-data\"},{\"$ref\":\"meta/format-annotation\"},{\"$ref\":"
     "\"meta/content\"}],\"type\":[\"object\",\"boolean\"],\"$comment\":\"This meta-schema als"
     "o defines keywords that have appeared in previous drafts in order to prevent incompatibl"
     "e extensions as they remain in common use.\",\"properties\":{\"definitions\":{\"$comment"
     "\":\"\\\"definitions\\\" has been replaced by \\\"$defs\\\".\",\"type\":\"object\",\"add"
     "itionalProperties\":{\"$dynamicRef\":\"#meta\"},\"deprecated\":true,\"default\":{}},\"de"
     "pendencies\":{\"$comment\":\"\\\"dependencies\\\" has been split and replaced by \\\"dep"
     "endentSchemas\\\" and \\\"dependentRequired\\\" in order to serve their differing semant"
     "ics.\",\"type\":\"object\",\"additionalProperties\":{\"anyOf\":[{\"$dynamicRef\":\"#meta"
     "\"},{\"$ref\":\"meta/validation#/$defs/stringArray\"}]},\"deprecated\":true,\"default\":"
     "{}},\"$recursiveAnchor\":{\"$comment\":\"\\\"$recursiveAnchor\\\" has been replaced by "
     "\\\"$dynamicAnchor\\\".\",\"$ref\":\"meta/core#/$defs/anchorString\",\"deprecated\":true"
     "},\"$recursiveRef\":{\"$comment\":\"\\\"$recursiveRef\\\" has been replaced by \\\"$dyna"
     "micRef\\\".\",\"$ref\":\"meta/core#/$defs/uriReferenceString\",\"deprecated\":true}}}"},
    {"https://json-schema.org/draft/2020-12/meta/core",
     "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"$id\":\"https://json-sch"
     "ema.org/draft/2020-12/meta/core\",\"$vocabulary\":{\"https://json-schema.org/draft/2020-"
     "12/vocab/core\":true},\"$dynamicAnchor\":\"meta\",\"title\":\"Core vocabulary meta-schem"
     "a\",\"type\":[\"object\",\"boolean\"],\"properties\":{\"$id\":{\"$ref\":\"#/$defs/uriRef"
     "erenceString\",\"$comment\":\"Non-empty fragments not allowed.\",\"pattern\":\"^[^#]*#?$"
     "\"},\"$schema\":{\"$ref\":\"#/$defs/uriString\"},\"$ref\":{\"$ref\":\"#/$defs/uriReferen"
     "ceString\"},\"$anchor\":{\"$ref\":\"#/$defs/anchorString\"},\"$dynamicRef\":{\"$ref\":\""
     "#/$defs/uriReferenceString\"},\"$dynamicAnchor\":{\"$ref\":\"#/$defs/anchorString\"},\"$"
     "vocabulary\":{\"type\":\"object\",\"propertyNames\":{\"$ref\":\"#/$defs/uriString\"},\"a"
     "dditionalProperties\":{\"type\":\"boolean\"}},\"$comment\":{\"type\":\"string\"},\"$defs"
     "\":{\"type\":\"object\",\"additionalProperties\":{\"$dynamicRef\":\"#meta\"}}},\"$defs\""
     ":{\"anchorString\":{\"type\":\"string\",\"pattern\":\"^[A-Za-z_][-A-Za-z0-9._]*$\"},\"ur"
     "iString\":{\"type\":\"string\",\"format\":\"uri\"},\"uriReferenceString\":{\"type\":\"st"
     "ring\",\"format\":\"uri-reference\"}}}"},
    {"https://json-schema.org/draft/2020-12/meta/applicator",
     "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"$id\":\"https://json-sch"
     "ema.org/draft/2020-12/meta/applicator\",\"$vocabulary\":{\"https://json-schema.org/draft"
     "/2020-12/vocab/applicator\":true},\"$dynamicAnchor\":\"meta\",\"title\":\"Applicator voc"
     "abulary meta-schema\",\"type\":[\"object\",\"boolean\"],\"properties\":{\"prefixItems\":"
     "{\"$ref\":\"#/$defs/schemaArray\"},\"items\":{\"$dynamicRef\":\"#meta\"},\"contains\":{"
     "\"$dynamicRef\":\"#meta\"},\"additionalProperties\":{\"$dynamicRef\":\"#meta\"},\"proper"
     "ties\":{\"type\":\"object\",\"additionalProperties\":{\"$dynamicRef\":\"#meta\"},\"defau"
     "lt\":{}},\"patternProperties\":{\"type\":\"object\",\"additionalProperties\":{\"$dynamic"
     "Ref\":\"#meta\"},\"propertyNames\":{\"format\":\"regex\"},\"default\":{}},\"dependentSch"
     "emas\":{\"type\":\"object\",\"additionalProperties\":{\"$dynamicRef\":\"#meta\"},\"defau"
     "lt\":{}},\"propertyNames\":{\"$dynamicRef\":\"#meta\"},\"if\":{\"$dynamicRef\":\"#meta\""
     "},\"then\":{\"$dynamicRef\":\"#meta\"},\"else\":{\"$dynamicRef\":\"#meta\"},\"allOf\":{"
     "\"$ref\":\"#/$defs/schemaArray\"},\"anyOf\":{\"$ref\":\"#/$defs/schemaArray\"},\"oneOf\""
     ":{\"$ref\":\"#/$defs/schemaArray\"},\"not\":{\"$dynamicRef\":\"#meta\"}},\"$defs\":{\"sc"
     "hemaArray\":{\"type\":\"array\",\"minItems\":1,\"items\":{\"$dynamicRef\":\"#meta\"}}}}"},
    {"https://json-schema.org/draft/2020-12/meta/unevaluated",
     "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"$id\":\"https://json-sch"
     "ema.org/draft/2020-12/meta/unevaluated\",\"$vocabulary\":{\"https://json-schema.org/draf"
     "t/2020-12/vocab/unevaluated\":true},\"$dynamicAnchor\":\"meta\",\"title\":\"Unevaluated "
     "applicator vocabulary meta-schema\",\"type\":[\"object\",\"boolean\"],\"properties\":{\""
     "unevaluatedItems\":{\"$dynamicRef\":\"#meta\"},\"unevaluatedProperties\":{\"$dynamicRef"
     "\":\"#meta\"}}}"},
    {"https://json-schema.org/draft/2020-12/meta/validation",
     "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"$id\":\"https://json-sch"
     "ema.org/draft/2020-12/meta/validation\",\"$vocabulary\":{\"https://json-schema.org/draft"
     "/2020-12/vocab/validation\":true},\"$dynamicAnchor\":\"meta\",\"title\":\"Validation voc"
     "abulary meta-schema\",\"type\":[\"object\",\"boolean\"],\"properties\":{\"type\":{\"anyO"
     "f\":[{\"$ref\":\"#/$defs/simpleTypes\"},{\"type\":\"array\",\"items\":{\"$ref\":\"#/$def"
     "s/simpleTypes\"},\"minItems\":1,\"uniqueItems\":true}]},\"const\":true,\"enum\":{\"type"
     "\":\"array\",\"items\":true},\"multipleOf\":{\"type\":\"number\",\"exclusiveMinimum\":0}"
     ",\"maximum\":{\"type\":\"number\"},\"exclusiveMaximum\":{\"type\":\"number\"},\"minimum"
     "\":{\"type\":\"number\"},\"exclusiveMinimum\":{\"type\":\"number\"},\"maxLength\":{\"$re"
     "f\":\"#/$defs/nonNegativeInteger\"},\"minLength\":{\"$ref\":\"#/$defs/nonNegativeInteger"
     "Default0\"},\"pattern\":{\"type\":\"string\",\"format\":\"regex\"},\"maxItems\":{\"$ref"
     "\":\"#/$defs/nonNegativeInteger\"},\"minItems\":{\"$ref\":\"#/$defs/nonNegativeIntegerDe"
     "fault0\"},\"uniqueItems\":{\"type\":\"boolean\",\"default\":false},\"maxContains\":{\"$r"
     "ef\":\"#/$defs/nonNegativeInteger\"},\"minContains\":{\"$ref\":\"#/$defs/nonNegativeInte"
     "ger\",\"default\":1},\"maxProperties\":{\"$ref\":\"#/$defs/nonNegativeInteger\"},\"minPr"
     "operties\":{\"$ref\":\"#/$defs/nonNegativeIntegerDefault0\"},\"required\":{\"$ref\":\"#/"
     "$defs/stringArray\"},\"dependentRequired\":{\"type\":\"object\",\"additionalProperties\""
     ":{\"$ref\":\"#/$defs/stringArray\"}}},\"$defs\":{\"nonNegativeInteger\":{\"type\":\"inte"
     "ger\",\"minimum\":0},\"nonNegativeIntegerDefault0\":{\"$ref\":\"#/$defs/nonNegativeInteg"
     "er\",\"default\":0},\"simpleTypes\":{\"enum\":[\"array\",\"boolean\",\"integer\",\"null"
     "\",\"number\",\"object\",\"string\"]},\"stringArray\":{\"type\":\"array\",\"items\":{\"t"
     "ype\":\"string\"},\"uniqueItems\":true,\"default\":[]}}}"},
    {"https://json-schema.org/draft/2020-12/meta/meta-data",
     "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"$id\":\"https://json-sch"
     "ema.org/draft/2020-12/meta/meta-data\",\"$vocabulary\":{\"https://json-schema.org/draft/"
     "2020-12/vocab/meta-data\":true},\"$dynamicAnchor\":\"meta\",\"title\":\"Meta-data vocabu"
     "lary meta-schema\",\"type\":[\"object\",\"boolean\"],\"properties\":{\"title\":{\"type\""
     ":\"string\"},\"description\":{\"type\":\"string\"},\"default\":true,\"deprecated\":{\"ty"
     "pe\":\"boolean\",\"default\":false},\"readOnly\":{\"type\":\"boolean\",\"default\":false"
     "},\"writeOnly\":{\"type\":\"boolean\",\"default\":false},\"examples\":{\"type\":\"array"
     "\",\"items\":true}}}"},
    {"https://json-schema.org/draft/2020-12/meta/format-annotation",
     "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"$id\":\"https://json-sch"
     "ema.org/draft/2020-12/meta/format-annotation\",\"$vocabulary\":{\"https://json-schema.or"
     "g/draft/2020-12/vocab/format-annotation\":true},\"$dynamicAnchor\":\"meta\",\"title\":\""
     "Format vocabulary meta-schema for annotation results\",\"type\":[\"object\",\"boolean\"]"
     ",\"properties\":{\"format\":{\"type\":\"string\"}}}"},
    {"https://json-schema.org/draft/2020-12/meta/format-assertion",
     "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"$id\":\"https://json-sch"
     "ema.org/draft/2020-12/meta/format-assertion\",\"$vocabulary\":{\"https://json-schema.org"
     "/draft/2020-12/vocab/format-assertion\":true},\"$dynamicAnchor\":\"meta\",\"title\":\"Fo"
     "rmat vocabulary meta-schema for assertion results\",\"type\":[\"object\",\"boolean\"],\""
     "properties\":{\"format\":{\"type\":\"string\"}}}"},
    {"https://json-schema.org/draft/2020-12/meta/content",
     "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"$id\":\"https://json-sch"
     "ema.org/draft/2020-12/meta/content\",\"$vocabulary\":{\"https://json-schema.org/draft/20"
     "20-12/vocab/content\":true},\"$dynamicAnchor\":\"meta\",\"title\":\"Content vocabulary m"
     "eta-schema\",\"type\":[\"object\",\"boolean\"],\"properties\":{\"contentEncoding\":{\"ty"
     "pe\":\"string\"},\"contentMediaType\":{\"type\":\"string\"},\"contentSchema\":{\"$dynami"
     "cRef\":\"#meta\"}}}"},
};

struct checkpoint {
    size_t docs, names, infos, anchors, regexes;
};

static struct checkpoint set_checkpoint(struct sl_schema_set *set)
{
    set->journal_infos.n = 0;
    set->journal_anchors.n = 0;
    set->compile_depth = 0;
    set->index_depth = 0;
    set->meta_depth = 0;
    return (struct checkpoint){set->docs.n, set->name_list.n, set->info_list.n, set->anchor_list.n,
                               set->regexes.n};
}

static int journal(struct vec *list, void *item, struct sl_err *err)
{
    if (vec_push(list, item) != 0)
        return sl_err_set(err, SL_ERR_NOMEM, "out of memory compiling a schema");
    return 0;
}

static void set_rollback(struct sl_schema_set *set, const struct checkpoint *cp)
{
    for (size_t i = 0; i < set->journal_infos.n; i++) {
        struct sinfo *si = set->journal_infos.v[i];
        si->node = NULL;
        si->handle = NULL;
    }
    for (size_t i = 0; i < set->journal_anchors.n; i++)
        ((struct anchor *)set->journal_anchors.v[i])->node = NULL;
    set->journal_infos.n = 0;
    set->journal_anchors.n = 0;
    for (size_t i = cp->docs; i < set->docs.n; i++)
        json_decref(set->docs.v[i]);
    for (size_t i = cp->regexes; i < set->regexes.n; i++)
        pcre2_code_free(set->regexes.v[i]);
    set->docs.n = cp->docs;
    set->regexes.n = cp->regexes;
    set->name_list.n = cp->names;
    set->info_list.n = cp->infos;
    set->anchor_list.n = cp->anchors;
    /* The maps only grew, so re-inserting what is left cannot fail. */
    map_clear(&set->names);
    for (size_t i = 0; i < set->name_list.n; i++) {
        struct name *nm = set->name_list.v[i];
        (void)map_put(&set->names, nm->uri, nm);
        nm->res->anchors = NULL;
    }
    map_clear(&set->infos);
    for (size_t i = 0; i < set->info_list.n; i++) {
        struct sinfo *si = set->info_list.v[i];
        (void)map_put(&set->infos, si->json, si);
    }
    for (size_t i = 0; i < set->anchor_list.n; i++) {
        struct anchor *a = set->anchor_list.v[i];
        a->next = a->res->anchors;
        a->res->anchors = a;
    }
}

static int nomem(struct sl_err *err)
{
    return sl_err_set(err, SL_ERR_NOMEM, "out of memory (or over %u MiB) compiling schemas",
                      ARENA_MAX_BYTES >> 20);
}

/* "<uri>#<ptr>[/<kw>[/<tok>]]: <message>" into *err, the location cut in the middle when longer
 * than LOCATION_SHOWN_MAX so that the message still shows. */
static int schema_error(struct sl_err *err, const char *uri, const char *ptr, const char *kw,
                        const char *tok, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int schema_error(struct sl_err *err, const char *uri, const char *ptr, const char *kw,
                        const char *tok, const char *fmt, ...)
{
    char full[URI_MAX], msg[MESSAGE_MAX];
    struct sbuf sb;
    va_list ap;
    sb_init(&sb, full, sizeof(full));
    sb_printf(&sb, "%s#%s", uri, ptr);
    if (kw) {
        sb_add(&sb, "/", 1);
        sb_adds(&sb, kw);
    }
    if (tok) {
        sb_add(&sb, "/", 1);
        sb_add_token(&sb, tok);
    }
    if (sb.len > LOCATION_SHOWN_MAX) {
        size_t head = LOCATION_SHOWN_MAX / 3, tail = LOCATION_SHOWN_MAX - head - 3;
        memmove(full + head + 3, full + sb.len - tail, tail + 1);
        memcpy(full + head, "...", 3);
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return sl_err_set(err, SL_ERR_INVALID, "%s: %s", full, msg);
}

/* Registers uri (copied) as a name of res; a URI names one resource only. */
static int add_name(struct sl_schema_set *set, const char *uri, struct resource *res,
                    struct sl_err *err)
{
    struct name *nm = map_get(&set->names, uri);
    if (nm) {
        if (nm->res == res)
            return 0;
        return sl_err_set(err, SL_ERR_INVALID, "%s: this URI already names another schema", uri);
    }
    nm = arena_alloc(&set->arena, sizeof(*nm));
    char *copy = arena_strndup(&set->arena, uri, strlen(uri));
    if (!nm || !copy)
        return nomem(err);
    nm->uri = copy;
    nm->res = res;
    if (vec_push(&set->name_list, nm) != 0 || map_put(&set->names, nm->uri, nm) != 0)
        return nomem(err);
    return 0;
}

static struct resource *fetch(struct sl_schema_set *set, const char *uri, int default_draft,
                              struct sl_err *err);

/* The vocabularies that a 2020-12 meta-schema lists in `$vocabulary` (inherited when it has
 * none); an unknown vocabulary that it requires is an error. value names it, for messages. */
static int meta_vocabularies(json_t *meta, int meta_draft, unsigned inherited, const char *value,
                             unsigned *vocab, struct sl_err *err)
{
    json_t *voc = json_is_object(meta) ? json_object_get(meta, "$vocabulary") : NULL;
    const char *key;
    json_t *required;
    if (!voc || meta_draft != DRAFT_2020) {
        *vocab = inherited;
        return 0;
    }
    if (!json_is_object(voc))
        return sl_err_set(err, SL_ERR_INVALID, "%s: $vocabulary must be an object", value);
    *vocab = 0;
    json_object_foreach(voc, key, required)
    {
        size_t i = 0, n = sizeof(vocabularies) / sizeof(vocabularies[0]);
        while (i < n && strcmp(vocabularies[i].uri, key) != 0)
            i++;
        if (i < n)
            *vocab |= vocabularies[i].bit;
        else if (json_is_true(required))
            return sl_err_set(err, SL_ERR_INVALID,
                              "$schema: %s requires the unsupported vocabulary %s", value, key);
    }
    return 0;
}

/* Draft and vocabularies that the meta-schema named by a `$schema` value defines. */
static int meta_lookup(struct sl_schema_set *set, const char *value, int *draft, unsigned *vocab,
                       struct sl_err *err)
{
    char uri[URI_MAX];
    size_t len = strlen(value);
    if (len >= sizeof(uri))
        return sl_err_set(err, SL_ERR_INVALID, "$schema: URI too long");
    memcpy(uri, value, len + 1);
    if (len > 0 && uri[len - 1] == '#')
        uri[len - 1] = '\0';
    const char *rest = strstr(uri, "://json-schema.org/");
    if (rest && (strncmp(uri, "http:", 5) == 0 || strncmp(uri, "https:", 6) == 0)) {
        rest += strlen("://json-schema.org/");
        if (strcmp(rest, "draft/2020-12/schema") == 0) {
            *draft = DRAFT_2020;
            *vocab = VOCAB_DEFAULT;
            return 0;
        }
        if (strcmp(rest, "draft-07/schema") == 0) {
            *draft = DRAFT_07;
            *vocab = VOCAB_DEFAULT;
            return 0;
        }
        if (strncmp(rest, "draft", 5) == 0 || strcmp(rest, "schema") == 0)
            return sl_err_set(err, SL_ERR_INVALID,
                              "$schema: %s is not supported (use draft 2020-12 or draft-07)",
                              value);
    }
    /* A custom meta-schema: its own draft, and the vocabularies it lists. */
    if (set->meta_depth >= META_CHAIN_MAX)
        return sl_err_set(err, SL_ERR_INVALID, "$schema: meta-schemas nested too deeply at %s",
                          value);
    set->meta_depth++;
    struct resource *meta = fetch(set, uri, DRAFT_2020, err);
    set->meta_depth--;
    if (!meta) {
        sl_err_prefix(err, "$schema");
        return -1;
    }
    *draft = meta->draft;
    return meta_vocabularies(meta->json, meta->draft, meta->vocab, value, vocab, err);
}

/* A resource for json at uri; its draft comes from its `$schema`, else it inherits. */
static struct resource *new_resource(struct sl_schema_set *set, const char *uri, json_t *json,
                                     int draft, unsigned vocab, struct sl_err *err)
{
    struct resource *res = arena_alloc(&set->arena, sizeof(*res));
    char *copy = arena_strndup(&set->arena, uri, strlen(uri));
    if (!res || !copy) {
        nomem(err);
        return NULL;
    }
    json_t *meta = json_is_object(json) ? json_object_get(json, "$schema") : NULL;
    if (meta) {
        if (!json_is_string(meta)) {
            sl_err_set(err, SL_ERR_INVALID, "%s: $schema must be a string", uri);
            return NULL;
        }
        const char *mv = json_string_value(meta);
        json_t *id = json_object_get(json, "$id");
        size_t mlen = strcspn(mv, "#");
        bool self = (strlen(uri) == mlen && strncmp(uri, mv, mlen) == 0) ||
                    (json_is_string(id) && strcspn(json_string_value(id), "#") == mlen &&
                     strncmp(json_string_value(id), mv, mlen) == 0);
        /* A custom meta-schema that describes itself follows 2020-12 and its own vocabularies
         * (looking it up would recurse into itself). */
        if (self)
            draft = DRAFT_2020;
        if ((self ? meta_vocabularies(json, DRAFT_2020, VOCAB_DEFAULT, mv, &vocab, err)
                  : meta_lookup(set, mv, &draft, &vocab, err)) != 0) {
            sl_err_prefix(err, "%s", uri);
            return NULL;
        }
    }
    res->uri = copy;
    res->json = json;
    res->draft = draft;
    res->vocab = vocab;
    return res;
}

static bool valid_anchor_name(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

static int add_anchor(struct sl_schema_set *set, struct resource *res, const char *name,
                      json_t *json, bool dynamic, struct sl_err *err)
{
    if (!valid_anchor_name(name))
        return sl_err_set(err, SL_ERR_INVALID, "%s: \"%s\" is not a valid anchor name", res->uri,
                          name);
    for (struct anchor *a = res->anchors; a; a = a->next) {
        if (strcmp(a->name, name) != 0)
            continue;
        if (a->json == json) {
            a->dynamic = a->dynamic || dynamic;
            return 0;
        }
        return sl_err_set(err, SL_ERR_INVALID, "%s: anchor \"%s\" is defined twice", res->uri,
                          name);
    }
    struct anchor *a = arena_alloc(&set->arena, sizeof(*a));
    char *copy = arena_strndup(&set->arena, name, strlen(name));
    if (!a || !copy || vec_push(&set->anchor_list, a) != 0)
        return nomem(err);
    a->res = res;
    a->name = copy;
    a->json = json;
    a->dynamic = dynamic;
    a->next = res->anchors;
    res->anchors = a;
    return 0;
}

/* Where subschemas live, per draft. Index and compile agree on this table. */
enum sub_shape { SUB_ONE, SUB_MAP, SUB_ARRAY, SUB_ONE_OR_ARRAY, SUB_DEPS };

static const struct {
    const char *keyword;
    enum sub_shape shape;
    bool draft07, draft2020;
} sub_keywords[] = {
    {"additionalProperties", SUB_ONE, true, true},
    {"propertyNames", SUB_ONE, true, true},
    {"contains", SUB_ONE, true, true},
    {"not", SUB_ONE, true, true},
    {"if", SUB_ONE, true, true},
    {"then", SUB_ONE, true, true},
    {"else", SUB_ONE, true, true},
    {"items", SUB_ONE, false, true},
    {"items", SUB_ONE_OR_ARRAY, true, false},
    {"additionalItems", SUB_ONE, true, false},
    {"unevaluatedProperties", SUB_ONE, false, true},
    {"unevaluatedItems", SUB_ONE, false, true},
    {"properties", SUB_MAP, true, true},
    {"patternProperties", SUB_MAP, true, true},
    {"definitions", SUB_MAP, true, false},
    {"$defs", SUB_MAP, false, true},
    {"dependentSchemas", SUB_MAP, false, true},
    {"dependencies", SUB_DEPS, true, false},
    {"allOf", SUB_ARRAY, true, true},
    {"anyOf", SUB_ARRAY, true, true},
    {"oneOf", SUB_ARRAY, true, true},
    {"prefixItems", SUB_ARRAY, false, true},
};

/* ptr + "/" + token (escaped) [+ "/" + token2], in the arena. Not inlined: its buffer must not
 * stay on the stack while index_schema recurses. */
__attribute__((noinline)) static const char *child_ptr(struct sl_schema_set *set, const char *ptr,
                                                       const char *tok, const char *tok2)
{
    char buf[URI_MAX];
    struct sbuf sb;
    sb_init(&sb, buf, sizeof(buf));
    sb_adds(&sb, ptr);
    sb_add(&sb, "/", 1);
    sb_add_token(&sb, tok);
    if (tok2) {
        sb_add(&sb, "/", 1);
        sb_add_token(&sb, tok2);
    }
    return arena_strndup(&set->arena, buf, sb.len);
}

static int index_schema(struct sl_schema_set *set, json_t *s, struct resource *res, const char *ptr,
                        struct sl_err *err);

static int index_sub(struct sl_schema_set *set, json_t *sub, struct resource *res, const char *ptr,
                     const char *tok, const char *tok2, struct sl_err *err)
{
    if (!json_is_object(sub))
        return 0;
    const char *p = child_ptr(set, ptr, tok, tok2);
    if (!p)
        return nomem(err);
    return index_schema(set, sub, res, p, err);
}

/* Indexes the subschemas of s, in the keywords that hold them for its draft. */
static int index_children(struct sl_schema_set *set, json_t *s, struct resource *res,
                          const char *ptr, struct sl_err *err)
{
    for (size_t k = 0; k < sizeof(sub_keywords) / sizeof(sub_keywords[0]); k++) {
        if (!(res->draft == DRAFT_07 ? sub_keywords[k].draft07 : sub_keywords[k].draft2020))
            continue;
        const char *kw = sub_keywords[k].keyword;
        json_t *v = json_object_get(s, kw);
        const char *key;
        json_t *sub;
        size_t i;
        if (!v)
            continue;
        switch (sub_keywords[k].shape) {
        case SUB_ONE_OR_ARRAY:
            if (!json_is_array(v))
                goto one;
            /* fall through */
        case SUB_ARRAY:
            json_array_foreach(v, i, sub)
            {
                char idx[24];
                snprintf(idx, sizeof(idx), "%zu", i);
                if (index_sub(set, sub, res, ptr, kw, idx, err) != 0)
                    return -1;
            }
            break;
        case SUB_ONE:
        one:
            if (index_sub(set, v, res, ptr, kw, NULL, err) != 0)
                return -1;
            break;
        case SUB_MAP:
        case SUB_DEPS:
            if (!json_is_object(v))
                break;
            json_object_foreach(v, key, sub)
            {
                if (index_sub(set, sub, res, ptr, kw, key, err) != 0)
                    return -1;
            }
            break;
        }
    }
    return 0;
}

/* The `$id` of s (not a resource root yet): a draft-07 "#name" anchor, or a new embedded resource
 * that *res then becomes. Kept out of index_schema's frame, which recursion multiplies. */
__attribute__((noinline)) static int index_id(struct sl_schema_set *set, json_t *s, json_t *id,
                                              struct resource **res, const char *ptr,
                                              struct sl_err *err)
{
    char abs[URI_MAX];
    struct resource *outer = *res;
    if (!json_is_string(id))
        return schema_error(err, outer->uri, ptr, "$id", NULL, "must be a string");
    const char *idv = json_string_value(id);
    if (outer->draft == DRAFT_07 && idv[0] == '#')
        return idv[1] ? add_anchor(set, outer, idv + 1, s, false, err) : 0;
    if (uri_resolve(outer->uri, idv, abs) != 0)
        return schema_error(err, outer->uri, ptr, "$id", NULL, "URI too long");
    char *hash = strchr(abs, '#');
    if (hash) {
        *hash = '\0';
        if (outer->draft != DRAFT_07)
            return schema_error(err, outer->uri, ptr, "$id", NULL,
                                "must not contain a fragment (use $anchor)");
    }
    struct resource *sub = new_resource(set, abs, s, outer->draft, outer->vocab, err);
    if (!sub || add_name(set, abs, sub, err) != 0)
        return -1;
    *res = sub;
    return hash ? add_anchor(set, sub, hash + 1, s, false, err) : 0;
}

/* Records s (an object) and the subschemas below it; registers `$id`s and anchors. */
static int index_schema(struct sl_schema_set *set, json_t *s, struct resource *res, const char *ptr,
                        struct sl_err *err)
{
    if (!json_is_object(s) || map_get(&set->infos, s))
        return 0;
    if (set->index_depth >= COMPILE_MAX_DEPTH)
        return schema_error(err, res->uri, ptr, NULL, NULL, "schema nested deeper than %d levels",
                            COMPILE_MAX_DEPTH);
    json_t *id = json_object_get(s, "$id");
    /* draft-07: `$ref` makes every sibling keyword, `$id` included, be ignored */
    if (res->draft == DRAFT_07 && json_object_get(s, "$ref"))
        id = NULL;
    if (id && res->json != s) {
        struct resource *outer = res;
        if (index_id(set, s, id, &res, ptr, err) != 0)
            return -1;
        if (res != outer)
            ptr = "";
    }
    if (res->draft == DRAFT_2020) {
        json_t *a = json_object_get(s, "$anchor");
        json_t *d = json_object_get(s, "$dynamicAnchor");
        if ((a && !json_is_string(a)) || (d && !json_is_string(d)))
            return schema_error(err, res->uri, ptr, NULL, NULL,
                                "$anchor and $dynamicAnchor must be strings");
        if (a && add_anchor(set, res, json_string_value(a), s, false, err) != 0)
            return -1;
        if (d && add_anchor(set, res, json_string_value(d), s, true, err) != 0)
            return -1;
    }
    struct sinfo *si = arena_alloc(&set->arena, sizeof(*si));
    if (!si || vec_push(&set->info_list, si) != 0 || map_put(&set->infos, s, si) != 0)
        return nomem(err);
    si->json = s;
    si->res = res;
    si->ptr = ptr;

    set->index_depth++;
    int rc = index_children(set, s, res, ptr, err);
    set->index_depth--;
    return rc;
}

/* Takes the reference to json: the set owns it from here, success or not. */
static struct resource *add_document(struct sl_schema_set *set, json_t *json, const char *uri,
                                     int default_draft, struct sl_err *err)
{
    if (vec_push(&set->docs, json) != 0) {
        json_decref(json);
        nomem(err);
        return NULL;
    }
    struct resource *res = new_resource(set, uri, json, default_draft, VOCAB_DEFAULT, err);
    if (!res)
        return NULL;
    json_t *id = json_is_object(json) ? json_object_get(json, "$id") : NULL;
    if (res->draft == DRAFT_07 && json_object_get(json, "$ref"))
        id = NULL;
    if (id && json_is_string(id) && json_string_value(id)[0] != '#') {
        char abs[URI_MAX];
        if (uri_resolve(uri, json_string_value(id), abs) != 0) {
            sl_err_set(err, SL_ERR_INVALID, "%s: $id too long", uri);
            return NULL;
        }
        char *hash = strchr(abs, '#');
        if (hash && res->draft != DRAFT_07 && hash[1]) {
            sl_err_set(err, SL_ERR_INVALID, "%s#/$id: must not contain a fragment (use $anchor)",
                       uri);
            return NULL;
        }
        if (hash)
            *hash = '\0';
        char *copy = arena_strndup(&set->arena, abs, strlen(abs));
        if (!copy) {
            nomem(err);
            return NULL;
        }
        res->uri = copy;
        if (add_name(set, copy, res, err) != 0)
            return NULL;
    }
    if (add_name(set, uri, res, err) != 0 || index_schema(set, json, res, "", err) != 0)
        return NULL;
    return res;
}

static json_t *load_json_file(const char *path, struct sl_err *err)
{
    struct stat st;
    json_error_t jerr;
    if (stat(path, &st) != 0) {
        sl_err_set(err, errno == ENOENT ? SL_ERR_NOT_FOUND : SL_ERR_IO, "%s: %s", path,
                   strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || (uintmax_t)st.st_size > SL_SCHEMA_MAX_FILE_BYTES) {
        sl_err_set(err, SL_ERR_IO, "%s: not a regular file of at most %u bytes", path,
                   SL_SCHEMA_MAX_FILE_BYTES);
        return NULL;
    }
    json_t *json = json_load_file(path, JSON_DECODE_ANY, &jerr);
    if (!json && jerr.line > 0)
        sl_err_set(err, SL_ERR_INVALID, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
    else if (!json)
        sl_err_set(err, SL_ERR_IO, "%s: %s", path, jerr.text);
    return json;
}

/* The document in the file at path, known in the registry also as file://<realpath>. */
static struct resource *fetch_file(struct sl_schema_set *set, const char *uri, const char *path,
                                   int default_draft, struct sl_err *err)
{
    char real[PATH_MAX], furi[URI_MAX];
    if (!realpath(path, real)) {
        sl_err_set(err, errno == ENOENT ? SL_ERR_NOT_FOUND : SL_ERR_IO, "%s: %s", path,
                   strerror(errno));
        return NULL;
    }
    if (file_uri(real, furi) != 0) {
        sl_err_set(err, SL_ERR_INVALID, "%s: path too long", path);
        return NULL;
    }
    struct name *nm = map_get(&set->names, furi);
    if (nm) {
        if (uri && add_name(set, uri, nm->res, err) != 0)
            return NULL;
        return nm->res;
    }
    json_t *json = load_json_file(real, err);
    if (!json)
        return NULL;
    /* Relative references inside resolve against the URI the document was asked for. */
    struct resource *res = add_document(set, json, uri ? uri : furi, default_draft, err);
    if (res && uri && add_name(set, furi, res, err) != 0)
        return NULL;
    return res;
}

/* The resource that uri (absolute, no fragment) names: known already, built in, under a mapped
 * prefix, or a file:// URI. */
static struct resource *fetch(struct sl_schema_set *set, const char *uri, int default_draft,
                              struct sl_err *err)
{
    struct name *nm = map_get(&set->names, uri);
    if (nm)
        return nm->res;
    for (size_t i = 0; i < sizeof(builtin_docs) / sizeof(builtin_docs[0]); i++) {
        if (strcmp(builtin_docs[i].uri, uri) != 0)
            continue;
        json_error_t jerr;
        json_t *json = json_loads(builtin_docs[i].json, 0, &jerr);
        if (!json) {
            sl_err_set(err, SL_ERR_INTERNAL, "%s: built-in meta-schema: %s", uri, jerr.text);
            return NULL;
        }
        return add_document(set, json, uri, DRAFT_2020, err);
    }
    for (size_t i = set->n_mappings; i-- > 0;) {
        const struct mapping *m = &set->mappings[i];
        size_t plen = strlen(m->prefix);
        if (strncmp(uri, m->prefix, plen) != 0)
            continue;
        char rel[URI_MAX], path[PATH_MAX + URI_MAX];
        const char *rest = uri + plen;
        if (sl_pct_decode(rest, strlen(rest), rel, sizeof(rel)) != 0 || strstr(rel, "?") ||
            strcmp(rel, "..") == 0 || strncmp(rel, "../", 3) == 0 || strstr(rel, "/../") ||
            (strlen(rel) >= 3 && strcmp(rel + strlen(rel) - 3, "/..") == 0)) {
            sl_err_set(err, SL_ERR_INVALID, "%s: not a file path under the mapping of %s", uri,
                       m->prefix);
            return NULL;
        }
        snprintf(path, sizeof(path), "%s/%s", m->dir, rel);
        struct resource *res = fetch_file(set, uri, path, default_draft, err);
        if (!res)
            sl_err_prefix(err, "%s", uri);
        return res;
    }
    if (strncmp(uri, "file://", 7) == 0) {
        char path[PATH_MAX];
        const char *p = uri + 7;
        if (strncmp(p, "localhost/", 10) == 0)
            p += 9;
        if (p[0] != '/' || sl_pct_decode(p, strlen(p), path, sizeof(path)) != 0) {
            sl_err_set(err, SL_ERR_INVALID, "%s: not a local file URI", uri);
            return NULL;
        }
        return fetch_file(set, uri, path, default_draft, err);
    }
    sl_err_set(err, SL_ERR_NOT_FOUND,
               "%s: no schema has this URI (load it, or map its prefix to a directory)", uri);
    return NULL;
}

/* ---- compiled schemas ---------------------------------------------------------------------- */

struct prop {
    const char *name;
    const struct node *node;
};

struct pattern_prop {
    pcre2_code *re;
    const char *src;
    const struct node *node;
};

struct dep_required {
    const char *name;
    const char **names;
    size_t n;
};

struct dep_schema {
    const char *name;
    const struct node *node;
};

struct node_list {
    const struct node **v;
    size_t n;
};

/* One compiled subschema. Absent keywords are NULL pointers, -1 counts or empty lists. Keyword
 * names that differ between drafts (items/prefixItems, dependencies/...) are kept for error
 * locations. */
struct node {
    const struct resource *res;
    bool boolean, value; /* a boolean schema: nothing else is set */
    bool assert_format;  /* the format-assertion vocabulary is on */
    unsigned types;      /* TYPE_* mask; 0 when there is no "type" */
    const struct node *ref, *dynref;
    const char *dyn_anchor; /* $dynamicRef that resolves through the dynamic scope */
    const json_t *enum_values, *const_value;
    const json_t *minimum, *maximum, *xminimum, *xmaximum, *multiple_of;
    long long min_length, max_length;
    pcre2_code *pattern;
    const char *pattern_src;
    enum sl_schema_format format;
    const char *format_name;
    struct node_list prefix;
    const char *prefix_kw;
    const struct node *items;
    const char *items_kw;
    const struct node *contains;
    long long min_contains, max_contains;
    bool has_min_contains;
    long long min_items, max_items;
    bool unique_items;
    const struct node *uneval_items;
    struct prop *props; /* sorted by name */
    size_t n_props;
    struct pattern_prop *pprops;
    size_t n_pprops;
    const struct node *additional, *property_names, *uneval_props;
    const char **required;
    size_t n_required;
    struct dep_required *dep_req;
    size_t n_dep_req;
    const char *dep_req_kw;
    struct dep_schema *dep_sch;
    size_t n_dep_sch;
    const char *dep_sch_kw;
    long long min_props, max_props;
    struct node_list all_of, any_of, one_of;
    const struct node *not_, *if_, *then_, *else_;
    bool has_object, has_array, has_string, has_number, has_applicators;
};

static const struct node node_true = {.boolean = true, .value = true};
static const struct node node_false = {.boolean = true, .value = false};

static int kw_error(struct sl_err *err, const struct sinfo *si, const char *kw, const char *tok,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* schema_error at keyword kw (and member tok) of the schema si. */
static int kw_error(struct sl_err *err, const struct sinfo *si, const char *kw, const char *tok,
                    const char *fmt, ...)
{
    char msg[MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return schema_error(err, si->res->uri, si->ptr, kw, tok, "%s", msg);
}

static const struct node *compile_schema(struct sl_schema_set *set, json_t *s, struct sl_err *err);

static const struct node *compile_sub(struct sl_schema_set *set, const struct sinfo *si,
                                      json_t *sub, const char *kw, const char *tok,
                                      struct sl_err *err)
{
    if (json_is_boolean(sub))
        return json_is_true(sub) ? &node_true : &node_false;
    if (!json_is_object(sub)) {
        kw_error(err, si, kw, tok, "must be a schema (an object or a boolean)");
        return NULL;
    }
    if (!map_get(&set->infos, sub) && index_sub(set, sub, si->res, si->ptr, kw, tok, err) != 0)
        return NULL;
    return compile_schema(set, sub, err);
}

/* Follows a JSON Pointer (already percent-decoded) from root. *anc is updated to the deepest
 * indexed object on the way, which gives an unindexed target its base URI. */
static json_t *walk_pointer(struct sl_schema_set *set, json_t *root, const char *ptr,
                            struct sinfo **anc)
{
    json_t *cur = root;
    while (*ptr == '/' && cur) {
        char tok[URI_MAX];
        size_t n = 0;
        for (ptr++; *ptr && *ptr != '/'; ptr++) {
            char c = *ptr;
            if (c == '~') {
                if (ptr[1] != '0' && ptr[1] != '1')
                    return NULL;
                c = ptr[1] == '0' ? '~' : '/';
                ptr++;
            }
            if (n + 1 >= sizeof(tok))
                return NULL;
            tok[n++] = c;
        }
        tok[n] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_get(cur, tok);
        } else if (json_is_array(cur)) {
            char *end;
            unsigned long long idx = strtoull(tok, &end, 10);
            if (n == 0 || *end || (tok[0] == '0' && n > 1) || tok[0] == '-' || tok[0] == '+')
                return NULL;
            cur = json_array_get(cur, (size_t)idx);
        } else {
            return NULL;
        }
        struct sinfo *si = cur ? map_get(&set->infos, cur) : NULL;
        if (si)
            *anc = si;
    }
    return *ptr ? NULL : cur;
}

/* The JSON value that a `$ref`/`$dynamicRef` value of the schema si points to, loading and
 * indexing documents as needed. For `$dynamicRef`, *dyn_anchor is set when the target is a
 * `$dynamicAnchor` of that name. Not inlined: its buffers must not stay on the stack while
 * compile recurses into the target. */
__attribute__((noinline)) static json_t *ref_target(struct sl_schema_set *set,
                                                    const struct sinfo *si, const char *kw,
                                                    const char *ref, const char **dyn_anchor,
                                                    struct sl_err *err)
{
    char abs[URI_MAX], frag[URI_MAX];
    if (uri_resolve(si->res->uri, ref, abs) != 0) {
        kw_error(err, si, kw, NULL, "URI too long");
        return NULL;
    }
    char *hash = strchr(abs, '#');
    const char *raw = "";
    if (hash) {
        *hash = '\0';
        raw = hash + 1;
    }
    if (sl_pct_decode(raw, strlen(raw), frag, sizeof(frag)) != 0) {
        kw_error(err, si, kw, NULL, "bad percent-encoding in \"%s\"", ref);
        return NULL;
    }
    struct resource *res = fetch(set, abs, si->res->draft, err);
    if (!res) {
        char cause[SL_ERR_MSG_MAX];
        snprintf(cause, sizeof(cause), "%s", err ? err->msg : "");
        kw_error(err, si, kw, NULL, "cannot resolve \"%s\": %s", ref, cause);
        return NULL;
    }
    json_t *target = res->json;
    if (frag[0] == '/') {
        struct sinfo *anc = map_get(&set->infos, res->json);
        target = walk_pointer(set, res->json, frag, &anc);
        if (!target) {
            kw_error(err, si, kw, NULL, "cannot resolve \"%s\": no such location", ref);
            return NULL;
        }
        if (json_is_object(target) && !map_get(&set->infos, target)) {
            const char *p = arena_strndup(&set->arena, frag, strlen(frag));
            if (!p) {
                nomem(err);
                return NULL;
            }
            if (index_schema(set, target, anc ? anc->res : res, p, err) != 0)
                return NULL;
        }
    } else if (frag[0]) {
        struct anchor *a = res->anchors;
        while (a && strcmp(a->name, frag) != 0)
            a = a->next;
        if (!a) {
            kw_error(err, si, kw, NULL, "cannot resolve \"%s\": %s has no anchor \"%s\"", ref,
                     res->uri, frag);
            return NULL;
        }
        target = a->json;
        if (dyn_anchor && a->dynamic)
            *dyn_anchor = a->name;
    }
    if (!json_is_boolean(target) && !json_is_object(target)) {
        kw_error(err, si, kw, NULL, "\"%s\" does not point to a schema", ref);
        return NULL;
    }
    return target;
}

/* Resolves a `$ref`/`$dynamicRef` value of the schema si and compiles its target. */
static const struct node *resolve_ref(struct sl_schema_set *set, const struct sinfo *si,
                                      const char *kw, const char *ref, const char **dyn_anchor,
                                      struct sl_err *err)
{
    json_t *target = ref_target(set, si, kw, ref, dyn_anchor, err);
    return target ? compile_schema(set, target, err) : NULL;
}

/* A count keyword (minLength, maxItems, ...): a non-negative integer; *out stays as it was when
 * the keyword is absent. */
static int get_count(const struct sinfo *si, const char *kw, long long *out, struct sl_err *err)
{
    json_t *v = json_object_get(si->json, kw);
    if (!v)
        return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 9.0e18 &&
        json_real_value(v) == floor(json_real_value(v))) {
        *out = (long long)json_real_value(v);
        return 0;
    }
    return kw_error(err, si, kw, NULL, "must be a non-negative integer");
}

static int get_number(const struct sinfo *si, const char *kw, const json_t **out,
                      struct sl_err *err)
{
    json_t *v = json_object_get(si->json, kw);
    if (!v)
        return 0;
    if (!json_is_number(v))
        return kw_error(err, si, kw, NULL, "must be a number");
    *out = v;
    return 0;
}

/* General_Category long names that ECMA-262 accepts in \p{...} and PCRE2 10.42 does not. */
static const struct {
    const char *lng, *shrt;
} category_names[] = {
    {"Letter", "L"},
    {"Cased_Letter", "L&"},
    {"Uppercase_Letter", "Lu"},
    {"Lowercase_Letter", "Ll"},
    {"Titlecase_Letter", "Lt"},
    {"Modifier_Letter", "Lm"},
    {"Other_Letter", "Lo"},
    {"Mark", "M"},
    {"Combining_Mark", "M"},
    {"Nonspacing_Mark", "Mn"},
    {"Spacing_Mark", "Mc"},
    {"Enclosing_Mark", "Me"},
    {"Number", "N"},
    {"Decimal_Number", "Nd"},
    {"digit", "Nd"},
    {"Letter_Number", "Nl"},
    {"Other_Number", "No"},
    {"Punctuation", "P"},
    {"punct", "P"},
    {"Connector_Punctuation", "Pc"},
    {"Dash_Punctuation", "Pd"},
    {"Open_Punctuation", "Ps"},
    {"Close_Punctuation", "Pe"},
    {"Initial_Punctuation", "Pi"},
    {"Final_Punctuation", "Pf"},
    {"Other_Punctuation", "Po"},
    {"Symbol", "S"},
    {"Math_Symbol", "Sm"},
    {"Currency_Symbol", "Sc"},
    {"Modifier_Symbol", "Sk"},
    {"Other_Symbol", "So"},
    {"Separator", "Z"},
    {"Space_Separator", "Zs"},
    {"Line_Separator", "Zl"},
    {"Paragraph_Separator", "Zp"},
    {"Other", "C"},
    {"Control", "Cc"},
    {"cntrl", "Cc"},
    {"Format", "Cf"},
    {"Surrogate", "Cs"},
    {"Private_Use", "Co"},
    {"Unassigned", "Cn"},
};

static const char *category_short(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(category_names) / sizeof(category_names[0]); i++)
        if (strlen(category_names[i].lng) == len && memcmp(category_names[i].lng, name, len) == 0)
            return category_names[i].shrt;
    return NULL;
}

/* Rewrites the Unicode property spellings of ECMA-262 that PCRE2 lacks: \p{Letter},
 * \p{General_Category=Letter} and \p{gc=Lu} to \p{L} / \p{Lu}, \p{Script=Greek} and
 * \p{sc=Greek} to \p{sc:Greek}, \p{Script_Extensions=Greek} and \p{scx=Greek} to
 * \p{scx:Greek}. Everything else is copied. out has room for len + 1 bytes: no rewrite grows. */
static void ecma_properties(const char *src, size_t len, struct sbuf *out)
{
    for (size_t i = 0; i < len; i++) {
        const char *close;
        if (src[i] != '\\' || i + 1 >= len) {
            sb_add(out, src + i, 1);
            continue;
        }
        if ((src[i + 1] != 'p' && src[i + 1] != 'P') || i + 2 >= len || src[i + 2] != '{' ||
            !(close = memchr(src + i + 3, '}', len - i - 3))) {
            sb_add(out, src + i, 2); /* an escape: its second byte is never a backslash */
            i++;
            continue;
        }
        const char *body = src + i + 3, *eq = memchr(body, '=', (size_t)(close - body));
        const char *name = body, *value = eq ? eq + 1 : body, *shrt;
        size_t nlen = eq ? (size_t)(eq - body) : 0, vlen = (size_t)(close - value);
        sb_add(out, src + i, 3);
        if (eq && ((nlen == 16 && memcmp(name, "General_Category", 16) == 0) ||
                   (nlen == 2 && memcmp(name, "gc", 2) == 0))) {
            shrt = category_short(value, vlen);
            if (shrt)
                sb_adds(out, shrt);
            else
                sb_add(out, value, vlen);
        } else if (eq && ((nlen == 6 && memcmp(name, "Script", 6) == 0) ||
                          (nlen == 2 && memcmp(name, "sc", 2) == 0))) {
            sb_adds(out, "sc:");
            sb_add(out, value, vlen);
        } else if (eq && ((nlen == 17 && memcmp(name, "Script_Extensions", 17) == 0) ||
                          (nlen == 3 && memcmp(name, "scx", 3) == 0))) {
            sb_adds(out, "scx:");
            sb_add(out, value, vlen);
        } else if (!eq && (shrt = category_short(body, vlen))) {
            sb_adds(out, shrt);
        } else {
            sb_add(out, body, (size_t)(close - body));
        }
        sb_add(out, "}", 1);
        i = (size_t)(close - src);
    }
}

static pcre2_code *compile_regex(struct sl_schema_set *set, const struct sinfo *si, const char *kw,
                                 json_t *src, struct sl_err *err)
{
    int code;
    PCRE2_SIZE off;
    size_t len = json_string_length(src);
    struct sbuf sb;
    char *buf = malloc(len + 1);
    if (!buf) {
        nomem(err);
        return NULL;
    }
    sb_init(&sb, buf, len + 1);
    ecma_properties(json_string_value(src), len, &sb);
    if (sb.overflow) {
        free(buf);
        kw_error(err, si, kw, NULL, "cannot translate regular expression \"%s\"",
                 json_string_value(src));
        return NULL;
    }
    /* ECMA-262 semantics where PCRE2 differs by default: `$` matches only at the very end. */
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)buf, sb.len, PCRE2_UTF | PCRE2_DOLLAR_ENDONLY, &code, &off, NULL);
    free(buf);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof(msg));
        kw_error(err, si, kw, NULL, "invalid regular expression \"%s\": %s", json_string_value(src),
                 (const char *)msg);
        return NULL;
    }
    /* JIT is an optimisation: without it (unsupported CPU, no executable memory) matching still
     * works through the interpreter. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    if (vec_push(&set->regexes, re) != 0) {
        pcre2_code_free(re);
        nomem(err);
        return NULL;
    }
    return re;
}

static int compile_list(struct sl_schema_set *set, const struct sinfo *si, const char *kw,
                        struct node_list *out, struct sl_err *err)
{
    json_t *v = json_object_get(si->json, kw);
    if (!v)
        return 0;
    if (!json_is_array(v) ||
        (json_array_size(v) == 0 && strcmp(kw, "prefixItems") != 0 && strcmp(kw, "items") != 0))
        return kw_error(err, si, kw, NULL, "must be a non-empty array of schemas");
    out->n = json_array_size(v);
    out->v = arena_alloc(&set->arena, (out->n + 1) * sizeof(*out->v));
    if (!out->v)
        return nomem(err);
    for (size_t i = 0; i < out->n; i++) {
        char idx[24];
        snprintf(idx, sizeof(idx), "%zu", i);
        out->v[i] = compile_sub(set, si, json_array_get(v, i), kw, idx, err);
        if (!out->v[i])
            return -1;
    }
    return 0;
}

static const struct node *compile_one(struct sl_schema_set *set, const struct sinfo *si,
                                      const char *kw, int *rc, struct sl_err *err)
{
    json_t *v = json_object_get(si->json, kw);
    if (!v)
        return NULL;
    const struct node *n = compile_sub(set, si, v, kw, NULL, err);
    if (!n)
        *rc = -1;
    return n;
}

/* A string array without duplicates (required, dependentRequired values); borrowed strings. */
static int string_list(struct sl_schema_set *set, const struct sinfo *si, const char *kw,
                       const char *tok, json_t *v, const char ***out, size_t *n, struct sl_err *err)
{
    if (!json_is_array(v))
        return kw_error(err, si, kw, tok, "must be an array of strings");
    *n = json_array_size(v);
    *out = arena_alloc(&set->arena, (*n + 1) * sizeof(**out));
    if (!*out)
        return nomem(err);
    for (size_t i = 0; i < *n; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_string(e))
            return kw_error(err, si, kw, tok, "must be an array of strings");
        (*out)[i] = json_string_value(e);
        for (size_t j = 0; j < i; j++)
            if (strcmp((*out)[j], (*out)[i]) == 0)
                return kw_error(err, si, kw, tok, "\"%s\" is listed twice", (*out)[i]);
    }
    return 0;
}

static int compile_type(const struct sinfo *si, struct node *node, struct sl_err *err)
{
    json_t *v = json_object_get(si->json, "type");
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (!v)
        return 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        size_t t = 0, nt = sizeof(type_names) / sizeof(type_names[0]);
        while (json_is_string(e) && t < nt && strcmp(type_names[t], json_string_value(e)) != 0)
            t++;
        if (!json_is_string(e) || t == nt)
            return kw_error(err, si, "type", NULL,
                            "must be a type name (null, boolean, object, array, number, integer, "
                            "string) or an array of them");
        node->types |= 1u << t;
    }
    return 0;
}

static int compile_validation(struct sl_schema_set *set, const struct sinfo *si, struct node *node,
                              struct sl_err *err)
{
    json_t *s = si->json, *v;
    if (compile_type(si, node, err) != 0)
        return -1;
    if ((v = json_object_get(s, "enum"))) {
        if (!json_is_array(v))
            return kw_error(err, si, "enum", NULL, "must be an array");
        node->enum_values = v;
    }
    node->const_value = json_object_get(s, "const");
    if (get_number(si, "multipleOf", &node->multiple_of, err) != 0 ||
        get_number(si, "minimum", &node->minimum, err) != 0 ||
        get_number(si, "maximum", &node->maximum, err) != 0 ||
        get_number(si, "exclusiveMinimum", &node->xminimum, err) != 0 ||
        get_number(si, "exclusiveMaximum", &node->xmaximum, err) != 0)
        return -1;
    if (node->multiple_of && json_number_value(node->multiple_of) <= 0)
        return kw_error(err, si, "multipleOf", NULL, "must be greater than 0");
    if (get_count(si, "minLength", &node->min_length, err) != 0 ||
        get_count(si, "maxLength", &node->max_length, err) != 0 ||
        get_count(si, "minItems", &node->min_items, err) != 0 ||
        get_count(si, "maxItems", &node->max_items, err) != 0 ||
        get_count(si, "minProperties", &node->min_props, err) != 0 ||
        get_count(si, "maxProperties", &node->max_props, err) != 0)
        return -1;
    if (si->res->draft == DRAFT_2020) {
        node->has_min_contains = json_object_get(s, "minContains") != NULL;
        if (get_count(si, "minContains", &node->min_contains, err) != 0 ||
            get_count(si, "maxContains", &node->max_contains, err) != 0)
            return -1;
    }
    if ((v = json_object_get(s, "uniqueItems"))) {
        if (!json_is_boolean(v))
            return kw_error(err, si, "uniqueItems", NULL, "must be a boolean");
        node->unique_items = json_is_true(v);
    }
    if ((v = json_object_get(s, "pattern"))) {
        if (!json_is_string(v))
            return kw_error(err, si, "pattern", NULL, "must be a string");
        node->pattern_src = json_string_value(v);
        if (!(node->pattern = compile_regex(set, si, "pattern", v, err)))
            return -1;
    }
    if ((v = json_object_get(s, "required")) &&
        string_list(set, si, "required", NULL, v, &node->required, &node->n_required, err) != 0)
        return -1;
    if (si->res->draft == DRAFT_2020 && (v = json_object_get(s, "dependentRequired"))) {
        if (!json_is_object(v))
            return kw_error(err, si, "dependentRequired", NULL, "must be an object");
        node->dep_req_kw = "dependentRequired";
        node->dep_req =
            arena_alloc(&set->arena, (json_object_size(v) + 1) * sizeof(*node->dep_req));
        if (!node->dep_req)
            return nomem(err);
        const char *key;
        json_t *e;
        json_object_foreach(v, key, e)
        {
            struct dep_required *d = &node->dep_req[node->n_dep_req++];
            d->name = key;
            if (string_list(set, si, "dependentRequired", key, e, &d->names, &d->n, err) != 0)
                return -1;
        }
    }
    return 0;
}

static int prop_cmp(const void *a, const void *b)
{
    return strcmp(((const struct prop *)a)->name, ((const struct prop *)b)->name);
}

static int compile_object_applicators(struct sl_schema_set *set, const struct sinfo *si,
                                      struct node *node, struct sl_err *err)
{
    json_t *s = si->json, *v, *e;
    const char *key;
    int rc = 0;
    if ((v = json_object_get(s, "properties"))) {
        if (!json_is_object(v))
            return kw_error(err, si, "properties", NULL, "must be an object of schemas");
        node->props = arena_alloc(&set->arena, (json_object_size(v) + 1) * sizeof(*node->props));
        if (!node->props)
            return nomem(err);
        json_object_foreach(v, key, e)
        {
            struct prop *p = &node->props[node->n_props++];
            p->name = key;
            if (!(p->node = compile_sub(set, si, e, "properties", key, err)))
                return -1;
        }
        qsort(node->props, node->n_props, sizeof(*node->props), prop_cmp);
    }
    if ((v = json_object_get(s, "patternProperties"))) {
        if (!json_is_object(v))
            return kw_error(err, si, "patternProperties", NULL, "must be an object of schemas");
        node->pprops = arena_alloc(&set->arena, (json_object_size(v) + 1) * sizeof(*node->pprops));
        if (!node->pprops)
            return nomem(err);
        json_object_foreach(v, key, e)
        {
            struct pattern_prop *p = &node->pprops[node->n_pprops++];
            json_t *src = json_string(key);
            p->src = key;
            p->re = src ? compile_regex(set, si, "patternProperties", src, err) : NULL;
            json_decref(src);
            if (!src)
                return nomem(err);
            if (!p->re || !(p->node = compile_sub(set, si, e, "patternProperties", key, err)))
                return -1;
        }
    }
    node->additional = compile_one(set, si, "additionalProperties", &rc, err);
    node->property_names = compile_one(set, si, "propertyNames", &rc, err);
    if (rc != 0)
        return -1;
    const char *deps = si->res->draft == DRAFT_2020 ? "dependentSchemas" : "dependencies";
    if ((v = json_object_get(s, deps))) {
        if (!json_is_object(v))
            return kw_error(err, si, deps, NULL, "must be an object");
        size_t n = json_object_size(v) + 1;
        node->dep_sch = arena_alloc(&set->arena, n * sizeof(*node->dep_sch));
        if (!node->dep_sch)
            return nomem(err);
        node->dep_sch_kw = deps;
        if (si->res->draft == DRAFT_07) {
            node->dep_req_kw = deps;
            node->dep_req = arena_alloc(&set->arena, n * sizeof(*node->dep_req));
            if (!node->dep_req)
                return nomem(err);
        }
        json_object_foreach(v, key, e)
        {
            if (si->res->draft == DRAFT_07 && json_is_array(e)) {
                struct dep_required *d = &node->dep_req[node->n_dep_req++];
                d->name = key;
                if (string_list(set, si, deps, key, e, &d->names, &d->n, err) != 0)
                    return -1;
                continue;
            }
            struct dep_schema *d = &node->dep_sch[node->n_dep_sch++];
            d->name = key;
            if (!(d->node = compile_sub(set, si, e, deps, key, err)))
                return -1;
        }
    }
    return 0;
}

static int compile_applicators(struct sl_schema_set *set, const struct sinfo *si, struct node *node,
                               struct sl_err *err)
{
    json_t *s = si->json;
    int rc = 0;
    if (compile_list(set, si, "allOf", &node->all_of, err) != 0 ||
        compile_list(set, si, "anyOf", &node->any_of, err) != 0 ||
        compile_list(set, si, "oneOf", &node->one_of, err) != 0)
        return -1;
    node->not_ = compile_one(set, si, "not", &rc, err);
    if (rc == 0 && json_object_get(s, "if")) {
        node->if_ = compile_one(set, si, "if", &rc, err);
        if (rc == 0)
            node->then_ = compile_one(set, si, "then", &rc, err);
        if (rc == 0)
            node->else_ = compile_one(set, si, "else", &rc, err);
    }
    if (rc == 0)
        node->contains = compile_one(set, si, "contains", &rc, err);
    if (rc != 0)
        return -1;
    if (si->res->draft == DRAFT_2020) {
        node->prefix_kw = "prefixItems";
        node->items_kw = "items";
        if (compile_list(set, si, "prefixItems", &node->prefix, err) != 0)
            return -1;
        node->items = compile_one(set, si, "items", &rc, err);
    } else if (json_is_array(json_object_get(s, "items"))) {
        /* draft-07: an items array is 2020-12's prefixItems, additionalItems its items */
        node->prefix_kw = "items";
        node->items_kw = "additionalItems";
        if (compile_list(set, si, "items", &node->prefix, err) != 0)
            return -1;
        node->items = compile_one(set, si, "additionalItems", &rc, err);
    } else {
        node->items_kw = "items";
        node->items = compile_one(set, si, "items", &rc, err);
    }
    if (rc != 0)
        return -1;
    return compile_object_applicators(set, si, node, err);
}

static int compile_node(struct sl_schema_set *set, const struct sinfo *si, struct node *node,
                        struct sl_err *err)
{
    json_t *s = si->json, *v;
    unsigned vocab = si->res->vocab;
    int rc = 0;
    node->res = si->res;
    node->assert_format = (vocab & VOCAB_FORMAT_ASSERTION) != 0;
    node->min_length = node->max_length = node->min_items = node->max_items = -1;
    node->min_props = node->max_props = node->max_contains = -1;
    node->min_contains = 1;
    if ((v = json_object_get(s, "$ref"))) {
        if (!json_is_string(v))
            return kw_error(err, si, "$ref", NULL, "must be a string");
        if (!(node->ref = resolve_ref(set, si, "$ref", json_string_value(v), NULL, err)))
            return -1;
        if (si->res->draft == DRAFT_07)
            return 0; /* draft-07 ignores every keyword beside $ref */
    }
    if (si->res->draft == DRAFT_2020 && (v = json_object_get(s, "$dynamicRef"))) {
        if (!json_is_string(v))
            return kw_error(err, si, "$dynamicRef", NULL, "must be a string");
        node->dynref =
            resolve_ref(set, si, "$dynamicRef", json_string_value(v), &node->dyn_anchor, err);
        if (!node->dynref)
            return -1;
    }
    if ((v = json_object_get(s, "format"))) {
        if (!json_is_string(v))
            return kw_error(err, si, "format", NULL, "must be a string");
        node->format_name = json_string_value(v);
        node->format = sl_schema_format_lookup(node->format_name);
    }
    if ((vocab & VOCAB_VALIDATION) && compile_validation(set, si, node, err) != 0)
        return -1;
    if ((vocab & VOCAB_APPLICATOR) && compile_applicators(set, si, node, err) != 0)
        return -1;
    if (si->res->draft == DRAFT_2020 && (vocab & VOCAB_UNEVALUATED)) {
        node->uneval_props = compile_one(set, si, "unevaluatedProperties", &rc, err);
        if (rc == 0)
            node->uneval_items = compile_one(set, si, "unevaluatedItems", &rc, err);
        if (rc != 0)
            return -1;
    }
    node->has_object = node->n_props || node->n_pprops || node->additional ||
                       node->property_names || node->n_required || node->n_dep_req ||
                       node->n_dep_sch || node->min_props >= 0 || node->max_props >= 0 ||
                       node->uneval_props;
    node->has_array = node->prefix.n || node->items || node->contains || node->min_items >= 0 ||
                      node->max_items >= 0 || node->unique_items || node->uneval_items;
    node->has_string = node->min_length >= 0 || node->max_length >= 0 || node->pattern ||
                       node->format != SL_SCHEMA_FORMAT_UNKNOWN;
    node->has_number =
        node->minimum || node->maximum || node->xminimum || node->xmaximum || node->multiple_of;
    node->has_applicators =
        node->all_of.n || node->any_of.n || node->one_of.n || node->not_ || node->if_;
    return 0;
}

/* The node for s (a boolean, or an indexed object), compiled once. */
static const struct node *compile_schema(struct sl_schema_set *set, json_t *s, struct sl_err *err)
{
    if (json_is_boolean(s))
        return json_is_true(s) ? &node_true : &node_false;
    struct sinfo *si = map_get(&set->infos, s);
    if (!si) {
        sl_err_set(err, SL_ERR_INTERNAL, "schema compiled before it was indexed");
        return NULL;
    }
    if (si->node)
        return si->node;
    if (set->compile_depth >= COMPILE_MAX_DEPTH) {
        schema_error(err, si->res->uri, si->ptr, NULL, NULL, "schema nested deeper than %d levels",
                     COMPILE_MAX_DEPTH);
        return NULL;
    }
    struct node *node = arena_alloc(&set->arena, sizeof(*node));
    if (!node || journal(&set->journal_infos, si, err) != 0) {
        nomem(err);
        return NULL;
    }
    si->node = node; /* before the keywords, so that a $ref cycle finds it */
    set->compile_depth++;
    int rc = compile_node(set, si, node, err);
    set->compile_depth--;
    return rc == 0 ? node : NULL;
}

/* Every `$dynamicAnchor` target known to the set, so that `$dynamicRef` can jump to it at run
 * time. Compiling may load documents with more anchors: the loop reads the growing list. */
static int compile_dynamic_anchors(struct sl_schema_set *set, struct sl_err *err)
{
    for (size_t i = 0; i < set->anchor_list.n; i++) {
        struct anchor *a = set->anchor_list.v[i];
        if (!a->dynamic || a->node)
            continue;
        const struct node *n = compile_schema(set, a->json, err);
        if (!n || journal(&set->journal_anchors, a, err) != 0)
            return -1;
        a->node = n;
    }
    return 0;
}

static const sl_schema_t *make_handle(struct sl_schema_set *set, json_t *json, struct sl_err *err)
{
    const struct node *root = compile_schema(set, json, err);
    if (!root || compile_dynamic_anchors(set, err) != 0)
        return NULL;
    struct sinfo *si = json_is_object(json) ? map_get(&set->infos, json) : NULL;
    if (si && si->handle)
        return si->handle;
    sl_schema_t *h = arena_alloc(&set->arena, sizeof(*h));
    if (!h || (si && journal(&set->journal_infos, si, err) != 0)) {
        nomem(err);
        return NULL;
    }
    h->set = set;
    h->root = root;
    if (si)
        si->handle = h;
    return h;
}

/* ---- validation ---------------------------------------------------------------------------- */

/* A path segment on the C stack: a property name or keyword (name), else an array index. */
struct seg {
    const struct seg *up;
    const char *name;
    size_t index;
};

/* The dynamic scope: schema resources entered on the way to the current node, innermost first. */
struct scope {
    const struct scope *up;
    const struct resource *res;
};

/* Which members of the current object (by iteration position) or array (by index) some valid
 * subschema evaluated: the annotations behind unevaluatedProperties/unevaluatedItems. */
struct bits {
    uint64_t *w;
    size_t n;
    uint64_t inline_w[BITS_INLINE / 64];
};

struct vctx {
    sl_schema_error_cb cb;
    void *opaque;
    size_t max_errors, n_errors;
    unsigned quiet; /* > 0 inside a branch whose failure is not an error (anyOf, not, if...) */
    unsigned depth;
    bool assert_formats;
    bool aborted; /* depth bound reached: the result is "invalid", whatever `not` says */
    bool oom;
    pcre2_match_data *md;
};

static bool bits_init(struct vctx *c, struct bits *b, size_t n)
{
    b->n = n;
    if (n <= BITS_INLINE) {
        b->w = b->inline_w;
        memset(b->inline_w, 0, sizeof(b->inline_w));
        return true;
    }
    b->w = calloc((n + 63) / 64, sizeof(uint64_t));
    if (!b->w)
        c->oom = true;
    return b->w != NULL;
}

static void bits_free(struct bits *b)
{
    if (b->w != b->inline_w)
        free(b->w);
}

static void bits_set(struct bits *b, size_t i)
{
    if (b && i < b->n)
        b->w[i / 64] |= (uint64_t)1 << (i % 64);
}

static bool bits_get(const struct bits *b, size_t i)
{
    return i < b->n && (b->w[i / 64] >> (i % 64)) & 1;
}

static void bits_or(struct bits *dst, const struct bits *src)
{
    for (size_t i = 0; i < (dst->n + 63) / 64; i++)
        dst->w[i] |= src->w[i];
}

/* Whether to stop at the first failure: nothing more will be reported. */
static bool fail_fast(const struct vctx *c)
{
    return c->quiet > 0 || c->n_errors >= c->max_errors || c->aborted || c->oom;
}

static void render_path(const struct seg *seg, char *buf, size_t cap)
{
    const struct seg *v[RENDER_SEGS_MAX];
    size_t n = 0;
    bool cut = false;
    struct sbuf sb;
    for (; seg; seg = seg->up) {
        if (n == RENDER_SEGS_MAX) {
            cut = true;
            break;
        }
        v[n++] = seg;
    }
    sb_init(&sb, buf, cap);
    if (cut)
        sb_adds(&sb, "/...");
    while (n-- > 0) {
        sb_add(&sb, "/", 1);
        if (v[n]->name)
            sb_add_token(&sb, v[n]->name);
        else
            sb_printf(&sb, "%zu", v[n]->index);
    }
}

static void report(struct vctx *c, const struct seg *ip, const struct seg *kp, const char *kw,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Reports one error at instance path ip, keyword location kp + kw (kw may be NULL). */
static void report(struct vctx *c, const struct seg *ip, const struct seg *kp, const char *kw,
                   const char *fmt, ...)
{
    if (c->quiet > 0 || c->n_errors >= c->max_errors)
        return;
    char ipath[RENDER_MAX], kpath[RENDER_MAX], msg[MESSAGE_MAX];
    struct seg k = {kp, kw, 0};
    va_list ap;
    render_path(ip, ipath, sizeof(ipath));
    render_path(kw ? &k : kp, kpath, sizeof(kpath));
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* One line each: member names from the instance may hold control characters. */
    for (char *p = ipath; *p; p++)
        *p = (unsigned char)*p < 0x20 ? '?' : *p;
    for (char *p = msg; *p; p++)
        *p = (unsigned char)*p < 0x20 ? '?' : *p;
    c->n_errors++;
    c->cb(c->opaque, ipath, kpath, msg);
}

/* The shortest decimal text that reads back as v. */
static void format_real(double v, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, cap, "%.17g", v);
}

/* A short description of v for messages: scalars as JSON (strings cut), containers by kind. */
static const char *describe(const json_t *v, char *buf, size_t cap)
{
    struct sbuf sb;
    sb_init(&sb, buf, cap);
    switch (json_typeof(v)) {
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v), n = len < VALUE_TEXT_MAX ? len : VALUE_TEXT_MAX;
        while (n < len && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--; /* do not cut a UTF-8 sequence */
        sb_add(&sb, "\"", 1);
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)s[i] < 0x20)
                sb_add(&sb, "?", 1);
            else if (s[i] == '"' || s[i] == '\\')
                sb_printf(&sb, "\\%c", s[i]);
            else
                sb_add(&sb, s + i, 1);
        }
        sb_adds(&sb, n < len ? "...\"" : "\"");
        break;
    }
    case JSON_INTEGER:
        sb_printf(&sb, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        format_real(json_real_value(v), buf, cap);
        break;
    case JSON_TRUE:
        sb_adds(&sb, "true");
        break;
    case JSON_FALSE:
        sb_adds(&sb, "false");
        break;
    case JSON_NULL:
        sb_adds(&sb, "null");
        break;
    case JSON_OBJECT:
        sb_adds(&sb, "an object");
        break;
    case JSON_ARRAY:
        sb_adds(&sb, "an array");
        break;
    }
    return buf;
}

static bool is_integral(const json_t *v)
{
    if (json_is_integer(v))
        return true;
    double d = json_is_real(v) ? json_real_value(v) : NAN;
    return isfinite(d) && d == floor(d);
}

static const char *instance_type(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        break;
    }
    return "null";
}

static bool type_ok(unsigned types, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return types & TYPE_OBJECT;
    case JSON_ARRAY:
        return types & TYPE_ARRAY;
    case JSON_STRING:
        return types & TYPE_STRING;
    case JSON_INTEGER:
        return types & (TYPE_INTEGER | TYPE_NUMBER);
    case JSON_REAL:
        return (types & TYPE_NUMBER) || ((types & TYPE_INTEGER) && is_integral(v));
    case JSON_TRUE:
    case JSON_FALSE:
        return types & TYPE_BOOLEAN;
    case JSON_NULL:
        break;
    }
    return types & TYPE_NULL;
}

/* -1, 0, 1 as a < b, a == b, a > b, by mathematical value. long double holds every int64. */
static int num_cmp(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return (x > y) - (x < y);
    }
    long double x = json_is_integer(a) ? (long double)json_integer_value(a) : json_real_value(a);
    long double y = json_is_integer(b) ? (long double)json_integer_value(b) : json_real_value(b);
    return (x > y) - (x < y);
}

/* JSON equality: numbers by value (1 == 1.0), objects regardless of member order. */
static bool json_eq(const json_t *a, const json_t *b, unsigned depth)
{
    if (json_is_number(a) && json_is_number(b))
        return num_cmp(a, b) == 0;
    if (json_typeof(a) != json_typeof(b))
        return false;
    if (depth > SL_SCHEMA_MAX_DEPTH)
        return a == b;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_eq(json_array_get(a, i), json_array_get(b, i), depth + 1))
                return false;
        return true;
    case JSON_OBJECT: {
        const char *key;
        json_t *va;
        if (json_object_size(a) != json_object_size(b))
            return false;
        /* jansson's iteration API is not const-qualified; nothing is modified. */
        json_object_foreach((json_t *)a, key, va)
        {
            const json_t *vb = json_object_get(b, key);
            if (!vb || !json_eq(va, vb, depth + 1))
                return false;
        }
        return true;
    }
    default:
        return true;
    }
}

/* A hash that agrees with json_eq: numbers by value (1 and 1.0 alike), members in any order. */
static uint64_t json_hash(const json_t *v, unsigned depth)
{
    uint64_t h = 1469598103934665603u ^ (uint64_t)json_typeof(v);
    switch (json_typeof(v)) {
    case JSON_INTEGER:
    case JSON_REAL: {
        double d = json_number_value(v);
        if (json_is_integer(v) || (d == floor(d) && fabs(d) < 9.0e18)) {
            h = (uint64_t)(json_is_integer(v) ? json_integer_value(v) : (json_int_t)d);
        } else {
            memcpy(&h, &d, sizeof(h));
        }
        return h * 0x9E3779B97F4A7C15u;
    }
    case JSON_STRING:
        for (size_t i = 0; i < json_string_length(v); i++)
            h = (h ^ (unsigned char)json_string_value(v)[i]) * 1099511628211u;
        return h;
    case JSON_ARRAY:
        if (depth > SL_SCHEMA_MAX_DEPTH)
            return h;
        for (size_t i = 0; i < json_array_size(v); i++)
            h = (h ^ json_hash(json_array_get(v, i), depth + 1)) * 1099511628211u;
        return h;
    case JSON_OBJECT: {
        const char *key;
        json_t *member;
        uint64_t sum = 0;
        if (depth > SL_SCHEMA_MAX_DEPTH)
            return h;
        json_object_foreach((json_t *)v, key, member)
        {
            uint64_t kh = 1469598103934665603u;
            for (const char *k = key; *k; k++)
                kh = (kh ^ (unsigned char)*k) * 1099511628211u;
            sum += (kh ^ json_hash(member, depth + 1)) * 0x9E3779B97F4A7C15u;
        }
        return h ^ sum;
    }
    default:
        return h;
    }
}

struct hashed_item {
    uint64_t hash;
    size_t index;
};

static int hashed_item_cmp(const void *a, const void *b)
{
    const struct hashed_item *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Whether the array holds two equal items (then *first < *second name them); -1 out of memory.
 * Short arrays are compared pairwise; long ones sorted by hash, so that a hostile array of a
 * hundred thousand items costs n log n, not n^2. */
static int find_duplicate(struct vctx *c, const json_t *array, size_t *first, size_t *second)
{
    size_t len = json_array_size(array);
    if (len <= UNIQUE_PAIRWISE_MAX) {
        for (size_t i = 0; i < len; i++)
            for (size_t j = i + 1; j < len; j++)
                if (json_eq(json_array_get(array, i), json_array_get(array, j), 0)) {
                    *first = i;
                    *second = j;
                    return 1;
                }
        return 0;
    }
    struct hashed_item *items = malloc(len * sizeof(*items));
    int found = 0;
    if (!items) {
        c->oom = true;
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        items[i] = (struct hashed_item){json_hash(json_array_get(array, i), 0), i};
    qsort(items, len, sizeof(*items), hashed_item_cmp);
    for (size_t i = 0; i < len && !found; i++)
        for (size_t j = i + 1; j < len && items[j].hash == items[i].hash && !found; j++)
            if (json_eq(json_array_get(array, items[i].index),
                        json_array_get(array, items[j].index), 0)) {
                *first = items[i].index;
                *second = items[j].index;
                found = 1;
            }
    free(items);
    return found;
}

/* 1 match, 0 no match (a matching error, e.g. invalid UTF-8 or a match limit, counts as no
 * match), -1 out of memory. */
static int re_match(struct vctx *c, const pcre2_code *re, const char *s, size_t len)
{
    if (!c->md) {
        /* One ovector pair is enough to learn whether it matched, for any pattern. */
        c->md = pcre2_match_data_create(1, NULL);
        if (!c->md) {
            c->oom = true;
            return -1;
        }
    }
    int rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, c->md, NULL);
    return rc >= 0;
}

static size_t utf8_length(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

static bool eval(struct vctx *c, const struct node *n, const json_t *inst, const struct seg *ip,
                 const struct seg *kp, const struct scope *sc, struct bits *ann);

/* Evaluates n on inst in place (same instance location) after a keyword segment. */
static bool eval_kw(struct vctx *c, const struct node *n, const json_t *inst, const struct seg *ip,
                    const struct seg *kp, const char *kw, const struct scope *sc, struct bits *ann)
{
    struct seg k = {kp, kw, 0};
    return eval(c, n, inst, ip, &k, sc, ann);
}

/* As eval_kw, with a second keyword segment: a name (properties/x) or an index (allOf/2). */
static bool eval_kw2(struct vctx *c, const struct node *n, const json_t *inst, const struct seg *ip,
                     const struct seg *kp, const char *kw, const char *name, size_t index,
                     const struct scope *sc, struct bits *ann)
{
    struct seg k = {kp, kw, 0}, k2 = {&k, name, index};
    return eval(c, n, inst, ip, &k2, sc, ann);
}

static bool eval_number(struct vctx *c, const struct node *n, const json_t *inst,
                        const struct seg *ip, const struct seg *kp)
{
    char a[64], b[64];
    bool ok = true;
    if (n->minimum && num_cmp(inst, n->minimum) < 0) {
        report(c, ip, kp, "minimum", "%s is less than %s", describe(inst, a, sizeof(a)),
               describe(n->minimum, b, sizeof(b)));
        ok = false;
    }
    if (n->xminimum && num_cmp(inst, n->xminimum) <= 0) {
        report(c, ip, kp, "exclusiveMinimum", "%s is not greater than %s",
               describe(inst, a, sizeof(a)), describe(n->xminimum, b, sizeof(b)));
        ok = false;
    }
    if (n->maximum && num_cmp(inst, n->maximum) > 0) {
        report(c, ip, kp, "maximum", "%s is greater than %s", describe(inst, a, sizeof(a)),
               describe(n->maximum, b, sizeof(b)));
        ok = false;
    }
    if (n->xmaximum && num_cmp(inst, n->xmaximum) >= 0) {
        report(c, ip, kp, "exclusiveMaximum", "%s is not less than %s",
               describe(inst, a, sizeof(a)), describe(n->xmaximum, b, sizeof(b)));
        ok = false;
    }
    if (n->multiple_of) {
        bool multiple;
        if (json_is_integer(inst) && json_is_integer(n->multiple_of)) {
            multiple = json_integer_value(inst) % json_integer_value(n->multiple_of) == 0;
        } else {
            /* Decimal fractions are inexact in binary (19.99 / 0.01 = 1998.9999999999998), so
             * a quotient within 1e-9 (relative) of an integer counts; an overflowing one not. */
            double q = json_number_value(inst) / json_number_value(n->multiple_of);
            multiple = isfinite(q) && fabs(q - nearbyint(q)) <= 1e-9 * fmax(1.0, fabs(q));
        }
        if (!multiple) {
            report(c, ip, kp, "multipleOf", "%s is not a multiple of %s",
                   describe(inst, a, sizeof(a)), describe(n->multiple_of, b, sizeof(b)));
            ok = false;
        }
    }
    return ok;
}

static bool eval_string(struct vctx *c, const struct node *n, const json_t *inst,
                        const struct seg *ip, const struct seg *kp)
{
    char a[VALUE_TEXT_MAX + 16];
    const char *s = json_string_value(inst);
    size_t len = json_string_length(inst);
    bool ok = true;
    if (n->min_length >= 0 || n->max_length >= 0) {
        size_t cps = utf8_length(s, len);
        if (n->min_length >= 0 && cps < (unsigned long long)n->min_length) {
            report(c, ip, kp, "minLength", "%s is shorter than %lld characters",
                   describe(inst, a, sizeof(a)), n->min_length);
            ok = false;
        }
        if (n->max_length >= 0 && cps > (unsigned long long)n->max_length) {
            report(c, ip, kp, "maxLength", "%s is longer than %lld characters",
                   describe(inst, a, sizeof(a)), n->max_length);
            ok = false;
        }
    }
    if (!ok && fail_fast(c))
        return false;
    if (n->pattern) {
        int m = re_match(c, n->pattern, s, len);
        if (m < 0)
            return false;
        if (m == 0) {
            report(c, ip, kp, "pattern", "%s does not match the pattern \"%s\"",
                   describe(inst, a, sizeof(a)), n->pattern_src);
            ok = false;
        }
    }
    if (n->format != SL_SCHEMA_FORMAT_UNKNOWN && (c->assert_formats || n->assert_format) &&
        !sl_schema_format_check(n->format, s, len)) {
        report(c, ip, kp, "format", "%s is not a valid %s", describe(inst, a, sizeof(a)),
               n->format_name);
        ok = false;
    }
    return ok;
}

static const struct prop *find_prop(const struct node *n, const char *key)
{
    size_t lo = 0, hi = n->n_props;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int cmp = strcmp(key, n->props[mid].name);
        if (cmp == 0)
            return &n->props[mid];
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static bool is_false(const struct node *n)
{
    return n->boolean && !n->value;
}

/* properties, patternProperties, additionalProperties and propertyNames: one pass over the
 * members, marking those evaluated in ann. */
static bool eval_members(struct vctx *c, const struct node *n, const json_t *inst,
                         const struct seg *ip, const struct seg *kp, const struct scope *sc,
                         struct bits *ann)
{
    const char *key;
    json_t *val;
    size_t i = 0;
    bool ok = true;
    json_object_foreach((json_t *)inst, key, val)
    {
        struct seg is = {ip, key, 0};
        bool matched = false;
        const struct prop *p = n->n_props ? find_prop(n, key) : NULL;
        if (p) {
            matched = true;
            if (!eval_kw2(c, p->node, val, &is, kp, "properties", key, 0, sc, NULL)) {
                ok = false;
                if (fail_fast(c))
                    return false;
            }
        }
        for (size_t j = 0; j < n->n_pprops; j++) {
            const struct pattern_prop *pp = &n->pprops[j];
            int m = re_match(c, pp->re, key, strlen(key));
            if (m < 0)
                return false;
            if (m == 0)
                continue;
            matched = true;
            if (!eval_kw2(c, pp->node, val, &is, kp, "patternProperties", pp->src, 0, sc, NULL)) {
                ok = false;
                if (fail_fast(c))
                    return false;
            }
        }
        if (!matched && n->additional) {
            matched = true;
            bool v;
            if (is_false(n->additional)) {
                report(c, ip, kp, "additionalProperties", "property \"%s\" is not allowed", key);
                v = false;
            } else {
                v = eval_kw(c, n->additional, val, &is, kp, "additionalProperties", sc, NULL);
            }
            if (!v) {
                ok = false;
                if (fail_fast(c))
                    return false;
            }
        }
        if (matched)
            bits_set(ann, i);
        if (n->property_names) {
            json_t *name = json_stringn_nocheck(key, strlen(key)); /* keys are valid UTF-8 */
            if (!name) {
                c->oom = true;
                return false;
            }
            bool v = eval_kw(c, n->property_names, name, &is, kp, "propertyNames", sc, NULL);
            json_decref(name);
            if (!v) {
                ok = false;
                if (fail_fast(c))
                    return false;
            }
        }
        i++;
    }
    return ok;
}

static bool eval_object(struct vctx *c, const struct node *n, const json_t *inst,
                        const struct seg *ip, const struct seg *kp, const struct scope *sc,
                        struct bits *ann)
{
    size_t size = json_object_size(inst);
    bool ok = true;
#define OBJECT_FAIL()                                                                              \
    do {                                                                                           \
        ok = false;                                                                                \
        if (fail_fast(c))                                                                          \
            return false;                                                                          \
    } while (0)
    if (n->min_props >= 0 && size < (unsigned long long)n->min_props) {
        report(c, ip, kp, "minProperties", "object has %zu properties, fewer than %lld", size,
               n->min_props);
        OBJECT_FAIL();
    }
    if (n->max_props >= 0 && size > (unsigned long long)n->max_props) {
        report(c, ip, kp, "maxProperties", "object has %zu properties, more than %lld", size,
               n->max_props);
        OBJECT_FAIL();
    }
    for (size_t i = 0; i < n->n_required; i++) {
        if (!json_object_get(inst, n->required[i])) {
            report(c, ip, kp, "required", "missing required property \"%s\"", n->required[i]);
            OBJECT_FAIL();
        }
    }
    for (size_t i = 0; i < n->n_dep_req; i++) {
        const struct dep_required *d = &n->dep_req[i];
        if (!json_object_get(inst, d->name))
            continue;
        for (size_t j = 0; j < d->n; j++) {
            if (!json_object_get(inst, d->names[j])) {
                struct seg k = {kp, n->dep_req_kw, 0};
                report(c, ip, &k, d->name, "property \"%s\" requires property \"%s\"", d->name,
                       d->names[j]);
                OBJECT_FAIL();
            }
        }
    }
    if ((n->n_props || n->n_pprops || n->additional || n->property_names) &&
        !eval_members(c, n, inst, ip, kp, sc, ann))
        OBJECT_FAIL();
    for (size_t i = 0; i < n->n_dep_sch; i++) {
        const struct dep_schema *d = &n->dep_sch[i];
        if (json_object_get(inst, d->name) &&
            !eval_kw2(c, d->node, inst, ip, kp, n->dep_sch_kw, d->name, 0, sc, ann))
            OBJECT_FAIL();
    }
#undef OBJECT_FAIL
    return ok;
}

static bool eval_array(struct vctx *c, const struct node *n, const json_t *inst,
                       const struct seg *ip, const struct seg *kp, const struct scope *sc,
                       struct bits *ann)
{
    size_t len = json_array_size(inst);
    bool ok = true;
#define ARRAY_FAIL()                                                                               \
    do {                                                                                           \
        ok = false;                                                                                \
        if (fail_fast(c))                                                                          \
            return false;                                                                          \
    } while (0)
    if (n->min_items >= 0 && len < (unsigned long long)n->min_items) {
        report(c, ip, kp, "minItems", "array has %zu items, fewer than %lld", len, n->min_items);
        ARRAY_FAIL();
    }
    if (n->max_items >= 0 && len > (unsigned long long)n->max_items) {
        report(c, ip, kp, "maxItems", "array has %zu items, more than %lld", len, n->max_items);
        ARRAY_FAIL();
    }
    if (n->unique_items) {
        size_t first = 0, second = 0;
        int dup = find_duplicate(c, inst, &first, &second);
        if (dup < 0)
            return false;
        if (dup) {
            report(c, ip, kp, "uniqueItems", "items %zu and %zu are equal", first, second);
            ARRAY_FAIL();
        }
    }
    for (size_t i = 0; i < len && i < n->prefix.n; i++) {
        struct seg is = {ip, NULL, i};
        if (!eval_kw2(c, n->prefix.v[i], json_array_get(inst, i), &is, kp, n->prefix_kw, NULL, i,
                      sc, NULL))
            ARRAY_FAIL();
        bits_set(ann, i);
    }
    if (n->items) {
        for (size_t i = n->prefix.n; i < len; i++) {
            struct seg is = {ip, NULL, i};
            if (is_false(n->items)) {
                report(c, &is, kp, n->items_kw, "no item is allowed at index %zu", i);
                ARRAY_FAIL();
            } else if (!eval_kw(c, n->items, json_array_get(inst, i), &is, kp, n->items_kw, sc,
                                NULL)) {
                ARRAY_FAIL();
            }
            bits_set(ann, i);
        }
    }
    if (n->contains) {
        size_t matches = 0;
        c->quiet++;
        for (size_t i = 0; i < len; i++) {
            struct seg is = {ip, NULL, i};
            if (eval_kw(c, n->contains, json_array_get(inst, i), &is, kp, "contains", sc, NULL)) {
                matches++;
                bits_set(ann, i);
                /* without annotations to collect or a maximum, enough is enough */
                if (!ann && n->max_contains < 0 && matches >= (unsigned long long)n->min_contains)
                    break;
            }
        }
        c->quiet--;
        if (c->aborted || c->oom)
            return false;
        if (matches < (unsigned long long)n->min_contains) {
            if (n->has_min_contains)
                report(c, ip, kp, "minContains",
                       "%zu items match the contains schema, fewer than %lld", matches,
                       n->min_contains);
            else
                report(c, ip, kp, "contains", "no item matches the contains schema");
            ARRAY_FAIL();
        }
        if (n->max_contains >= 0 && matches > (unsigned long long)n->max_contains) {
            report(c, ip, kp, "maxContains", "%zu items match the contains schema, more than %lld",
                   matches, n->max_contains);
            ARRAY_FAIL();
        }
    }
#undef ARRAY_FAIL
    return ok;
}

/* anyOf, oneOf, allOf, not, if/then/else. Branches that may fail without making the schema fail
 * run quiet; those that may bring annotations get their own bit set, merged when they pass. */
static bool eval_applicators(struct vctx *c, const struct node *n, const json_t *inst,
                             const struct seg *ip, const struct seg *kp, const struct scope *sc,
                             struct bits *ann)
{
    bool ok = true;
    struct bits tmp;
#define APPLY_FAIL()                                                                               \
    do {                                                                                           \
        ok = false;                                                                                \
        if (fail_fast(c))                                                                          \
            return false;                                                                          \
    } while (0)
    for (size_t i = 0; i < n->all_of.n; i++)
        if (!eval_kw2(c, n->all_of.v[i], inst, ip, kp, "allOf", NULL, i, sc, ann))
            APPLY_FAIL();
    if (n->any_of.n) {
        bool any = false;
        for (size_t i = 0; i < n->any_of.n && !(any && !ann); i++) {
            if (ann && !bits_init(c, &tmp, ann->n))
                return false;
            c->quiet++;
            bool v =
                eval_kw2(c, n->any_of.v[i], inst, ip, kp, "anyOf", NULL, i, sc, ann ? &tmp : NULL);
            c->quiet--;
            if (v && ann)
                bits_or(ann, &tmp);
            if (ann)
                bits_free(&tmp);
            any = any || v;
        }
        if (c->aborted || c->oom)
            return false;
        if (!any) {
            report(c, ip, kp, "anyOf", "value matches none of the %zu alternatives", n->any_of.n);
            APPLY_FAIL();
        }
    }
    if (n->one_of.n) {
        size_t first = 0, second = 0, count = 0;
        struct bits win;
        if (ann && !bits_init(c, &win, ann->n))
            return false;
        for (size_t i = 0; i < n->one_of.n && count < 2; i++) {
            if (ann && !bits_init(c, &tmp, ann->n))
                break;
            c->quiet++;
            bool v =
                eval_kw2(c, n->one_of.v[i], inst, ip, kp, "oneOf", NULL, i, sc, ann ? &tmp : NULL);
            c->quiet--;
            if (v) {
                if (count++ == 0) {
                    first = i;
                    if (ann)
                        bits_or(&win, &tmp);
                } else {
                    second = i;
                }
            }
            if (ann)
                bits_free(&tmp);
        }
        if (ann) {
            if (count == 1)
                bits_or(ann, &win);
            bits_free(&win);
        }
        if (c->aborted || c->oom)
            return false;
        if (count == 0) {
            report(c, ip, kp, "oneOf", "value matches none of the %zu alternatives", n->one_of.n);
            APPLY_FAIL();
        } else if (count > 1) {
            report(c, ip, kp, "oneOf",
                   "value matches alternatives %zu and %zu, but exactly one must match", first,
                   second);
            APPLY_FAIL();
        }
    }
    if (n->not_) {
        c->quiet++;
        bool v = eval_kw(c, n->not_, inst, ip, kp, "not", sc, NULL);
        c->quiet--;
        if (c->aborted || c->oom)
            return false;
        if (v) {
            report(c, ip, kp, "not", "value must not match the schema");
            APPLY_FAIL();
        }
    }
    if (n->if_ && (n->then_ || n->else_ || ann)) {
        if (ann && !bits_init(c, &tmp, ann->n))
            return false;
        c->quiet++;
        bool v = eval_kw(c, n->if_, inst, ip, kp, "if", sc, ann ? &tmp : NULL);
        c->quiet--;
        if (v && ann)
            bits_or(ann, &tmp);
        if (ann)
            bits_free(&tmp);
        if (c->aborted || c->oom)
            return false;
        const struct node *branch = v ? n->then_ : n->else_;
        if (branch && !eval_kw(c, branch, inst, ip, kp, v ? "then" : "else", sc, ann))
            APPLY_FAIL();
    }
#undef APPLY_FAIL
    return ok;
}

static bool eval_unevaluated(struct vctx *c, const struct node *n, const json_t *inst,
                             const struct seg *ip, const struct seg *kp, const struct scope *sc,
                             struct bits *ann)
{
    bool ok = true;
    if (json_is_object(inst)) {
        const char *key;
        json_t *val;
        size_t i = 0;
        json_object_foreach((json_t *)inst, key, val)
        {
            struct seg is = {ip, key, 0};
            bool v = true;
            if (bits_get(ann, i)) {
                i++;
                continue;
            }
            if (is_false(n->uneval_props)) {
                report(c, ip, kp, "unevaluatedProperties", "property \"%s\" is not allowed", key);
                v = false;
            } else {
                v = eval_kw(c, n->uneval_props, val, &is, kp, "unevaluatedProperties", sc, NULL);
            }
            if (!v) {
                ok = false;
                if (fail_fast(c))
                    return false;
            }
            bits_set(ann, i++);
        }
        return ok;
    }
    for (size_t i = 0; i < json_array_size(inst); i++) {
        struct seg is = {ip, NULL, i};
        bool v;
        if (bits_get(ann, i))
            continue;
        if (is_false(n->uneval_items)) {
            report(c, &is, kp, "unevaluatedItems", "no item is allowed at index %zu", i);
            v = false;
        } else {
            v = eval_kw(c, n->uneval_items, json_array_get(inst, i), &is, kp, "unevaluatedItems",
                        sc, NULL);
        }
        if (!v) {
            ok = false;
            if (fail_fast(c))
                return false;
        }
        bits_set(ann, i);
    }
    return ok;
}

/* The target of a `$dynamicRef` to a dynamic anchor: the outermost resource in the dynamic scope
 * that defines the anchor wins; the statically resolved target otherwise. */
static const struct node *dynamic_target(const struct node *n, const struct scope *sc)
{
    const struct node *found = n->dynref;
    for (; sc; sc = sc->up)
        for (const struct anchor *a = sc->res->anchors; a; a = a->next)
            if (a->dynamic && a->node && strcmp(a->name, n->dyn_anchor) == 0) {
                found = a->node;
                break;
            }
    return found;
}

static bool eval_keywords(struct vctx *c, const struct node *n, const json_t *inst,
                          const struct seg *ip, const struct seg *kp, const struct scope *sc,
                          struct bits *ann)
{
    bool ok = true;
    char a[VALUE_TEXT_MAX + 16];
#define FAIL()                                                                                     \
    do {                                                                                           \
        ok = false;                                                                                \
        if (fail_fast(c))                                                                          \
            return false;                                                                          \
    } while (0)
    if (n->ref && !eval_kw(c, n->ref, inst, ip, kp, "$ref", sc, ann))
        FAIL();
    if (n->dynref) {
        const struct node *target = n->dyn_anchor ? dynamic_target(n, sc) : n->dynref;
        if (!eval_kw(c, target, inst, ip, kp, "$dynamicRef", sc, ann))
            FAIL();
    }
    if (n->types && !type_ok(n->types, inst)) {
        char want[128];
        struct sbuf sb;
        sb_init(&sb, want, sizeof(want));
        for (size_t t = 0; t < sizeof(type_names) / sizeof(type_names[0]); t++)
            if (n->types & (1u << t))
                sb_printf(&sb, "%s%s", sb.len ? " or " : "", type_names[t]);
        report(c, ip, kp, "type", "expected %s, got %s", want, instance_type(inst));
        FAIL();
    }
    if (n->const_value && !json_eq(inst, n->const_value, 0)) {
        char b[VALUE_TEXT_MAX + 16];
        report(c, ip, kp, "const", "%s is not the required value %s", describe(inst, a, sizeof(a)),
               describe(n->const_value, b, sizeof(b)));
        FAIL();
    }
    if (n->enum_values) {
        size_t i = 0, count = json_array_size(n->enum_values);
        while (i < count && !json_eq(inst, json_array_get(n->enum_values, i), 0))
            i++;
        if (i == count) {
            char list[256];
            struct sbuf sb;
            sb_init(&sb, list, sizeof(list));
            for (i = 0; i < count && !sb.overflow; i++) {
                char b[VALUE_TEXT_MAX + 16];
                sb_printf(&sb, "%s%s", i ? ", " : "",
                          describe(json_array_get(n->enum_values, i), b, sizeof(b)));
            }
            report(c, ip, kp, "enum", "%s is not one of %s%s", describe(inst, a, sizeof(a)), list,
                   sb.overflow ? "..." : "");
            FAIL();
        }
    }
    switch (json_typeof(inst)) {
    case JSON_OBJECT:
        if (n->has_object && !eval_object(c, n, inst, ip, kp, sc, ann))
            FAIL();
        break;
    case JSON_ARRAY:
        if (n->has_array && !eval_array(c, n, inst, ip, kp, sc, ann))
            FAIL();
        break;
    case JSON_STRING:
        if (n->has_string && !eval_string(c, n, inst, ip, kp))
            FAIL();
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        if (n->has_number && !eval_number(c, n, inst, ip, kp))
            FAIL();
        break;
    default:
        break;
    }
    if (n->has_applicators && !eval_applicators(c, n, inst, ip, kp, sc, ann))
        FAIL();
    /* last: they see what every other keyword here evaluated */
    if (((n->uneval_props && json_is_object(inst)) || (n->uneval_items && json_is_array(inst))) &&
        !eval_unevaluated(c, n, inst, ip, kp, sc, ann))
        FAIL();
#undef FAIL
    return ok;
}

/* Validates inst against n. ann, when not NULL, collects the members that n evaluated (only
 * when n is valid: a caller that may go on after a failure discards it). */
static bool eval(struct vctx *c, const struct node *n, const json_t *inst, const struct seg *ip,
                 const struct seg *kp, const struct scope *sc, struct bits *ann)
{
    if (c->aborted || c->oom)
        return false;
    if (n->boolean) {
        if (!n->value)
            report(c, ip, kp, NULL, "no value is allowed here (false schema)");
        return n->value;
    }
    if (c->depth >= SL_SCHEMA_MAX_DEPTH) {
        /* Reported even inside a quiet branch: it decides the result. */
        unsigned quiet = c->quiet;
        c->quiet = 0;
        report(c, ip, kp, NULL,
               "nesting deeper than %d levels (an instance nested too deeply, or a $ref cycle)",
               SL_SCHEMA_MAX_DEPTH);
        c->quiet = quiet;
        c->aborted = true;
        return false;
    }
    struct scope here = {sc, n->res};
    if (n->res != sc->res)
        sc = &here;
    struct bits local;
    bool own =
        (n->uneval_props && json_is_object(inst)) || (n->uneval_items && json_is_array(inst));
    if (own && !bits_init(c, &local,
                          json_is_object(inst) ? json_object_size(inst) : json_array_size(inst)))
        return false;
    c->depth++;
    bool ok = eval_keywords(c, n, inst, ip, kp, sc, own ? &local : ann);
    c->depth--;
    if (own) {
        if (ok && ann)
            bits_or(ann, &local);
        bits_free(&local);
    }
    return ok;
}

/* ---- API ----------------------------------------------------------------------------------- */

sl_schema_set_t *sl_schema_set_new(void)
{
    sl_schema_set_t *set = calloc(1, sizeof(*set));
    if (set)
        set->infos.ptr_keys = true;
    return set;
}

void sl_schema_set_destroy(sl_schema_set_t *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->docs.n; i++)
        json_decref(set->docs.v[i]);
    for (size_t i = 0; i < set->regexes.n; i++)
        pcre2_code_free(set->regexes.v[i]);
    for (size_t i = 0; i < set->n_mappings; i++) {
        free(set->mappings[i].prefix);
        free(set->mappings[i].dir);
    }
    free(set->docs.v);
    free(set->name_list.v);
    free(set->info_list.v);
    free(set->anchor_list.v);
    free(set->regexes.v);
    free(set->journal_infos.v);
    free(set->journal_anchors.v);
    free(set->names.slots);
    free(set->infos.slots);
    arena_free(&set->arena);
    free(set);
}

void sl_schema_set_assert_formats(sl_schema_set_t *set, bool on)
{
    set->assert_formats = on;
}

int sl_schema_set_map(sl_schema_set_t *set, const char *uri_prefix, const char *dir,
                      struct sl_err *err)
{
    struct uri_parts u;
    char real[PATH_MAX];
    struct stat st;
    if (!uri_prefix || !dir)
        return sl_err_set(err, SL_ERR_INVALID, "schema mapping: prefix and directory required");
    uri_parse(uri_prefix, &u);
    if (!u.scheme || u.has_frag || strlen(uri_prefix) >= URI_MAX)
        return sl_err_set(err, SL_ERR_INVALID,
                          "schema mapping: \"%s\" is not an absolute URI prefix", uri_prefix);
    if (!realpath(dir, real) || stat(real, &st) != 0 || !S_ISDIR(st.st_mode))
        return sl_err_set(err, SL_ERR_NOT_FOUND, "schema mapping: %s: not a directory", dir);
    if (set->n_mappings == MAPPINGS_MAX)
        return sl_err_set(err, SL_ERR_INVALID, "schema mapping: more than %d mappings",
                          MAPPINGS_MAX);
    struct mapping *m = &set->mappings[set->n_mappings];
    m->prefix = strdup(uri_prefix);
    m->dir = strdup(real);
    if (!m->prefix || !m->dir) {
        free(m->prefix);
        free(m->dir);
        return sl_err_set(err, SL_ERR_NOMEM, "schema mapping: out of memory");
    }
    set->n_mappings++;
    return 0;
}

const sl_schema_t *sl_schema_set_load_file(sl_schema_set_t *set, const char *path,
                                           struct sl_err *err)
{
    struct checkpoint cp = set_checkpoint(set);
    const sl_schema_t *schema = NULL;
    struct resource *res = fetch_file(set, NULL, path, DRAFT_2020, err);
    if (res)
        schema = make_handle(set, res->json, err);
    if (!schema)
        set_rollback(set, &cp);
    return schema;
}

const sl_schema_t *sl_schema_set_add(sl_schema_set_t *set, const json_t *schema,
                                     const char *base_uri, struct sl_err *err)
{
    char uri[URI_MAX];
    struct uri_parts u;
    if (!schema) {
        sl_err_set(err, SL_ERR_INVALID, "no schema given");
        return NULL;
    }
    if (base_uri) {
        uri_parse(base_uri, &u);
        if (!u.scheme || uri_resolve(NULL, base_uri, uri) != 0) {
            sl_err_set(err, SL_ERR_INVALID, "base URI \"%s\" is not an absolute URI", base_uri);
            return NULL;
        }
        uri[strcspn(uri, "#")] = '\0';
    } else {
        snprintf(uri, sizeof(uri), "urn:sluice:schema:%lu", ++set->anon_count);
    }
    struct checkpoint cp = set_checkpoint(set);
    const sl_schema_t *handle = NULL;
    json_t *copy = json_deep_copy(schema);
    if (!copy) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory copying a schema");
        return NULL;
    }
    struct resource *res = add_document(set, copy, uri, DRAFT_2020, err);
    if (res)
        handle = make_handle(set, res->json, err);
    if (!handle)
        set_rollback(set, &cp);
    return handle;
}

int sl_schema_validate(const sl_schema_t *schema, const json_t *instance, sl_schema_error_cb cb,
                       void *opaque, size_t max_errors)
{
    if (!schema || !instance)
        return -1;
    struct vctx c = {
        .cb = cb,
        .opaque = opaque,
        .max_errors = cb ? max_errors : 0,
        .assert_formats = schema->set->assert_formats,
    };
    struct scope top = {NULL, schema->root->res};
    bool ok = eval(&c, schema->root, instance, NULL, NULL, &top, NULL);
    pcre2_match_data_free(c.md);
    if (c.oom)
        return -1;
    return ok && !c.aborted ? 1 : 0;
}
