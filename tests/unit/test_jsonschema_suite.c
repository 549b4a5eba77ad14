/*
 * The official JSON-Schema-Test-Suite against sl_jsonschema, drafts 2020-12 and 07.
 *
 * The suite lives at <source dir>/tests/data/json-schema-test-suite (a copy of the upstream
 * JSON-Schema-Test-Suite, MIT, commit in its SOURCE file), or wherever
 * SLUICE_JSON_SCHEMA_SUITE points. Its remotes/ folder is what the suite expects to find at
 * http://localhost:1234/; that prefix is mapped onto it, so nothing touches the network.
 *
 * Each test case is validated twice, once answer-only and once collecting every error, and
 * passes when both answers match the suite's and the error count agrees with the answer (no
 * errors when valid, at least one when invalid).
 *
 * Prints passed/total per draft and keyword file and a total per draft, then compares with
 * tests/unit/jsonschema_baseline.txt ("draft keyword passed total" lines): fewer passes than
 * recorded in any file fails the test; more prints a note to update the baseline.
 */
#include "sl_jsonschema.h"
#include "sl_test.h"

#include <dirent.h>
#include <limits.h>

#define SUITE_ENV       "SLUICE_JSON_SCHEMA_SUITE"
#define BASELINE_MAX    256 /* lines in the baseline file */
#define FAILURES_SHOWN  40  /* failing cases printed per draft */
#define REMOTES_PREFIX  "http://localhost:1234/"
#define ERRORS_PER_CASE 1000
#define DRAFT7_URI      "http://json-schema.org/draft-07/schema#"

struct baseline_entry {
    char draft[32];
    char keyword[64];
    long passed, total;
};

static struct baseline_entry baseline[BASELINE_MAX];
static size_t n_baseline;
static bool baseline_loaded;

static void suite_dir(char *buf, size_t cap)
{
    const char *env = getenv(SUITE_ENV);
    if (env && *env)
        snprintf(buf, cap, "%s", env);
    else
        snprintf(buf, cap, "%s/tests/data/json-schema-test-suite", sl_test_source_dir());
}

static void load_baseline(void)
{
    char path[PATH_MAX], line[256];
    if (baseline_loaded)
        return;
    baseline_loaded = true;
    snprintf(path, sizeof(path), "%s/tests/unit/jsonschema_baseline.txt", sl_test_source_dir());
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("    note: no baseline at %s: every file counts as new\n", path);
        return;
    }
    while (fgets(line, sizeof(line), f) && n_baseline < BASELINE_MAX) {
        struct baseline_entry *e = &baseline[n_baseline];
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (sscanf(line, "%31s %63s %ld %ld", e->draft, e->keyword, &e->passed, &e->total) == 4)
            n_baseline++;
    }
    fclose(f);
}

static const struct baseline_entry *baseline_find(const char *draft, const char *keyword)
{
    for (size_t i = 0; i < n_baseline; i++)
        if (strcmp(baseline[i].draft, draft) == 0 && strcmp(baseline[i].keyword, keyword) == 0)
            return &baseline[i];
    return NULL;
}

static void count_error(void *opaque, const char *instance_path, const char *keyword_location,
                        const char *message)
{
    (void)instance_path;
    (void)keyword_location;
    (void)message;
    (*(size_t *)opaque)++;
}

static int json_file_filter(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 5 && strcmp(d->d_name + n - 5, ".json") == 0;
}

/* Runs one keyword file; adds to *passed and *total. */
static void run_file(const char *draft, const char *path, const char *remotes, long *passed,
                     long *total, int *shown)
{
    json_error_t jerr;
    json_t *groups = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    if (!json_is_array(groups)) {
        sl_test_fail(__FILE__, __LINE__, "%s: %s", path, jerr.text);
        json_decref(groups);
        return;
    }
    size_t gi;
    json_t *group;
    json_array_foreach(groups, gi, group)
    {
        struct sl_err err = {0};
        sl_schema_set_t *set = sl_schema_set_new();
        SL_REQUIRE(set != NULL);
        SL_REQUIRE(sl_schema_set_map(set, REMOTES_PREFIX, remotes, &err) == 0);
        /* The suite's draft is the folder's; the validator's default draft is 2020-12. */
        json_t *source = json_object_get(group, "schema");
        if (strcmp(draft, "draft7") == 0 && json_is_object(source) &&
            !json_object_get(source, "$schema"))
            json_object_set_new(source, "$schema", json_string(DRAFT7_URI));
        const sl_schema_t *schema = sl_schema_set_add(set, source, NULL, &err);
        const char *gdesc = json_string_value(json_object_get(group, "description"));
        size_t ti;
        json_t *test;
        json_array_foreach(json_object_get(group, "tests"), ti, test)
        {
            const char *tdesc = json_string_value(json_object_get(test, "description"));
            int expected = json_is_true(json_object_get(test, "valid")) ? 1 : 0;
            const json_t *data = json_object_get(test, "data");
            char why[SL_ERR_MSG_MAX + 64] = "";
            (*total)++;
            if (!schema) {
                snprintf(why, sizeof(why), "schema rejected: %s", err.msg);
            } else {
                size_t n_errors = 0;
                int quick = sl_schema_validate(schema, data, NULL, NULL, 0);
                int full =
                    sl_schema_validate(schema, data, count_error, &n_errors, ERRORS_PER_CASE);
                if (quick != expected || full != expected)
                    snprintf(why, sizeof(why), "got %d (with errors: %d), expected %d", quick, full,
                             expected);
                else if ((full == 1) != (n_errors == 0))
                    snprintf(why, sizeof(why), "answer %d but %zu errors reported", full, n_errors);
            }
            if (!why[0]) {
                (*passed)++;
            } else if ((*shown)++ < FAILURES_SHOWN) {
                printf("    FAIL %s %s: %s / %s: %s\n", draft, strrchr(path, '/') + 1, gdesc, tdesc,
                       why);
            }
        }
        sl_schema_set_destroy(set);
    }
    json_decref(groups);
}

static void run_draft(const char *draft)
{
    char root[PATH_MAX], dir[PATH_MAX + 64], remotes[PATH_MAX + 64];
    struct dirent **files = NULL;
    long draft_passed = 0, draft_total = 0;
    int shown = 0;
    suite_dir(root, sizeof(root));
    snprintf(dir, sizeof(dir), "%s/tests/%s", root, draft);
    snprintf(remotes, sizeof(remotes), "%s/remotes", root);
    load_baseline();
    int n = scandir(dir, &files, json_file_filter, alphasort);
    if (n <= 0) {
        sl_test_fail(__FILE__, __LINE__,
                     "no JSON-Schema-Test-Suite files in %s (set " SUITE_ENV " to the suite)", dir);
        free(files);
        return;
    }
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX + 512], keyword[64];
        long passed = 0, total = 0;
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]->d_name);
        snprintf(keyword, sizeof(keyword), "%.*s", (int)(strlen(files[i]->d_name) - 5),
                 files[i]->d_name);
        run_file(draft, path, remotes, &passed, &total, &shown);
        draft_passed += passed;
        draft_total += total;
        printf("    %s %-28s %4ld/%ld\n", draft, keyword, passed, total);
        const struct baseline_entry *b = baseline_find(draft, keyword);
        if (!b)
            printf("    note: %s %s is not in the baseline: add \"%s %s %ld %ld\"\n", draft,
                   keyword, draft, keyword, passed, total);
        else if (passed < b->passed)
            sl_test_fail(__FILE__, __LINE__, "regression: %s %s passes %ld, baseline %ld", draft,
                         keyword, passed, b->passed);
        else if (passed > b->passed)
            printf("    note: %s %s improved to %ld (baseline %ld): update the baseline\n", draft,
                   keyword, passed, b->passed);
        free(files[i]);
    }
    free(files);
    printf("    %s total %ld/%ld\n", draft, draft_passed, draft_total);
}

SL_TEST(suite_draft2020_12)
{
    run_draft("draft2020-12");
}

SL_TEST(suite_draft7)
{
    run_draft("draft7");
}

SL_TEST_MAIN()
