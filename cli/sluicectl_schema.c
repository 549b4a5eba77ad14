#include "sluicectl_schema.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sl_err.h"
#include "sl_jsonschema.h"

#define EXIT_VALID         0
#define EXIT_INVALID       1
#define EXIT_TROUBLE       2
#define DEFAULT_MAX_ERRORS 100
#define MAX_ERRORS_LIMIT   100000
#define INSTANCE_MAX_BYTES (256u * 1024u * 1024u)
#define MAP_SPEC_MAX       4096

static const char usage[] =
    "usage: sluicectl schema check [--map URI-PREFIX=DIR]... [--assert-formats]\n"
    "                              [--max-errors N] SCHEMA INSTANCE...\n"
    "\n"
    "Validates each INSTANCE (a JSON file, or - for stdin) against SCHEMA (draft 2020-12, or\n"
    "draft-07 by its $schema) and prints every error as FILE: /instance/path: /keyword: message.\n"
    "\n"
    "  --map URI-PREFIX=DIR  load $ref URIs under URI-PREFIX from files under DIR (repeatable)\n"
    "  --assert-formats      make format (date-time, email, uuid, ...) an assertion\n"
    "  --max-errors N        errors shown per instance (default 100)\n"
    "\n"
    "Exit: 0 all valid, 1 some instance invalid, 2 bad schema, unreadable file or usage error.\n";

static void print_error(void *opaque, const char *instance_path, const char *keyword_location,
                        const char *message)
{
    printf("%s: %s: %s: %s\n", (const char *)opaque, *instance_path ? instance_path : "(root)",
           *keyword_location ? keyword_location : "(root)", message);
}

static json_t *load_instance(const char *path)
{
    json_error_t jerr;
    json_t *json;
    struct stat st;
    if (strcmp(path, "-") == 0) {
        json = json_loadf(stdin, JSON_DECODE_ANY, &jerr);
    } else {
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
            (unsigned long long)st.st_size > INSTANCE_MAX_BYTES) {
            fprintf(stderr, "sluicectl schema check: %s: larger than %u bytes\n", path,
                    INSTANCE_MAX_BYTES);
            return NULL;
        }
        json = json_load_file(path, JSON_DECODE_ANY, &jerr);
    }
    if (!json && jerr.line > 0)
        fprintf(stderr, "sluicectl schema check: %s:%d:%d: %s\n", path, jerr.line, jerr.column,
                jerr.text);
    else if (!json)
        fprintf(stderr, "sluicectl schema check: %s: %s\n", path, jerr.text);
    return json;
}

/* "--map PREFIX=DIR" into the set; the split is at the last '=' (URIs may contain '='). */
static int add_mapping(sl_schema_set_t *set, const char *spec)
{
    char buf[MAP_SPEC_MAX];
    struct sl_err err;
    const char *eq = strrchr(spec, '=');
    if (!eq || eq == spec || !eq[1] || strlen(spec) >= sizeof(buf)) {
        fprintf(stderr, "sluicectl schema check: --map wants URI-PREFIX=DIR, got \"%s\"\n", spec);
        return -1;
    }
    memcpy(buf, spec, (size_t)(eq - spec));
    buf[eq - spec] = '\0';
    if (sl_schema_set_map(set, buf, eq + 1, &err) != 0) {
        fprintf(stderr, "sluicectl schema check: %s\n", err.msg);
        return -1;
    }
    return 0;
}

int sluicectl_schema_check(int argc, char **argv)
{
    int rc = EXIT_TROUBLE, i = 1;
    size_t max_errors = DEFAULT_MAX_ERRORS;
    struct sl_err err;
    const sl_schema_t *schema;
    sl_schema_set_t *set = sl_schema_set_new();
    if (!set) {
        fprintf(stderr, "sluicectl schema check: out of memory\n");
        goto out;
    }
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--") == 0) {
            i++;
            break;
        } else if (strcmp(opt, "--assert-formats") == 0) {
            sl_schema_set_assert_formats(set, true);
        } else if (strcmp(opt, "--map") == 0 || strncmp(opt, "--map=", 6) == 0) {
            const char *spec = opt[5] == '=' ? opt + 6 : (i + 1 < argc ? argv[++i] : NULL);
            if (!spec) {
                fputs(usage, stderr);
                goto out;
            }
            if (add_mapping(set, spec) != 0)
                goto out;
        } else if (strcmp(opt, "--max-errors") == 0 || strncmp(opt, "--max-errors=", 13) == 0) {
            const char *v = opt[12] == '=' ? opt + 13 : (i + 1 < argc ? argv[++i] : NULL);
            char *end = NULL;
            unsigned long n = v ? strtoul(v, &end, 10) : 0;
            if (!v || !*v || *end || n == 0 || n > MAX_ERRORS_LIMIT) {
                fprintf(stderr, "sluicectl schema check: --max-errors wants 1..%d\n",
                        MAX_ERRORS_LIMIT);
                goto out;
            }
            max_errors = n;
        } else {
            fprintf(stderr, "sluicectl schema check: unknown option %s\n\n%s", opt, usage);
            goto out;
        }
    }
    if (argc - i < 2) {
        fputs(usage, stderr);
        goto out;
    }
    schema = sl_schema_set_load_file(set, argv[i], &err);
    if (!schema) {
        fprintf(stderr, "sluicectl schema check: %s\n", err.msg);
        goto out;
    }
    rc = EXIT_VALID;
    for (i++; i < argc; i++) {
        json_t *instance = load_instance(argv[i]);
        int valid =
            instance ? sl_schema_validate(schema, instance, print_error, argv[i], max_errors) : -1;
        json_decref(instance);
        if (valid < 0) {
            if (instance)
                fprintf(stderr, "sluicectl schema check: %s: out of memory\n", argv[i]);
            rc = EXIT_TROUBLE;
        } else if (valid == 0 && rc == EXIT_VALID) {
            rc = EXIT_INVALID;
        }
    }
    fflush(stdout);
out:
    sl_schema_set_destroy(set);
    return rc;
}
