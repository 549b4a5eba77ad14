/* deliver's template.c: URLs with {{ jq }} parts. */
#include "sl_test.h"
#include "template.h"

#include <stdlib.h>
#include <string.h>

static json_t *event(void)
{
    return json_pack("{s:s, s:s, s:{s:s, s:i, s:f, s:o, s:s, s:s}}", "id", "ev-1", "type", "t",
                     "data", "customer", "cus/1 é?&=", "n", 42, "x", 1.5, "obj", json_object(),
                     "dot", ".", "dots", "..");
}

static void render_is(const char *text, const char *want)
{
    struct sl_err err;
    dlv_template_t *t = dlv_template_new("u", text, &err);
    if (!t) {
        sl_test_fail(__FILE__, __LINE__, "%s: %s", text, err.msg);
        return;
    }
    json_t *ev = event();
    char *url = dlv_template_render(t, ev, &err);
    if (!url)
        sl_test_fail(__FILE__, __LINE__, "%s: %s", text, err.msg);
    else
        SL_CHECK_STR(url, want);
    free(url);
    json_decref(ev);
    dlv_template_destroy(t);
}

SL_TEST(static_urls_need_no_evaluation)
{
    struct sl_err err;
    dlv_template_t *t = dlv_template_new("u", "https://x.example/a?b=1", &err);
    SL_REQUIRE(t);
    SL_CHECK(!dlv_template_dynamic(t));
    SL_CHECK_STR(dlv_template_text(t), "https://x.example/a?b=1");
    dlv_template_destroy(t);
}

SL_TEST(parts_are_evaluated_and_percent_encoded)
{
    render_is("http://h/c/{{ .data.customer }}/p", "http://h/c/cus%2F1%20%C3%A9%3F%26%3D/p");
    render_is("http://h/{{.data.n}}/{{ .data.x }}?id={{ .id }}", "http://h/42/1.5?id=ev-1");
    render_is("https://h:8443/{{ .type + \"-\" + .id }}", "https://h:8443/t-ev-1");
}

static void bad_render(const char *text, const char *why)
{
    struct sl_err err;
    dlv_template_t *t = dlv_template_new("u", text, &err);
    SL_REQUIRE(t);
    json_t *ev = event();
    char *url = dlv_template_render(t, ev, &err);
    SL_CHECK(url == NULL);
    if (!url)
        SL_CHECK_CONTAINS(err.msg, why);
    free(url);
    json_decref(ev);
    dlv_template_destroy(t);
}

SL_TEST(parts_must_give_a_string_or_a_number)
{
    bad_render("http://h/{{ .data.obj }}", "no string or number");
    bad_render("http://h/{{ .data.missing }}", "no string or number");
    bad_render("http://h/{{ \"\" }}", "no string or number");
    bad_render("http://h/{{ error(\"boom\") }}", "boom");
    bad_render("http://h/{{ .data.n, .data.n }}", "output");
}

/* Issue 11 item 10: customer_id ".." made /ingest/../records, which reached /records. */
SL_TEST(parts_never_make_a_dot_segment)
{
    const char *tpl = "https://h/ingest/{{ .data.customer }}/records?c={{ .data.customer }}";
    const char *refused[] = {"..", ".", "%2E%2E"};
    struct sl_err err;
    dlv_template_t *t = dlv_template_new("u", tpl, &err);
    SL_REQUIRE(t);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        json_t *ev = json_pack("{s:{s:s}}", "data", "customer", refused[i]);
        char *url = dlv_template_render(t, ev, &err);
        if (i < 2) {
            SL_CHECK(url == NULL);
            if (!url)
                SL_CHECK_CONTAINS(err.msg, "dot segment");
        } else {
            /* "%" is encoded: the server sees the text "%2E%2E", not dots. */
            SL_CHECK_STR(url, "https://h/ingest/%252E%252E/records?c=%252E%252E");
        }
        free(url);
        json_decref(ev);
    }
    dlv_template_destroy(t);
    /* A literal "." and a part "." make ".."; dots inside a segment are ordinary text. */
    bad_render("http://h/a/.{{ .data.dot }}/b", "dot segment");
    render_is("http://h/a/{{ .data.customer | .[0:3] }}.json", "http://h/a/cus.json");
    render_is("http://h/a/{{ .id }}..{{ .id }}", "http://h/a/ev-1..ev-1");
    /* In the query, dots are data. */
    render_is("http://h/a?x={{ .data.dots }}", "http://h/a?x=..");
}

SL_TEST(dot_segments_in_the_configured_url_fail_at_start_up)
{
    struct sl_err err;
    const char *bad[] = {"https://h/a/../b", "https://h/./b", "https://h/a/%2e%2E/{{ .id }}",
                         "https://h/a/.."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dlv_template_t *t = dlv_template_new("u", bad[i], &err);
        SL_CHECK(t == NULL);
        if (!t)
            SL_CHECK_CONTAINS(err.msg, "dot segment");
        dlv_template_destroy(t);
    }
    dlv_template_t *t = dlv_template_new("u", "https://h/a.b/..c/?q=../x#..", &err);
    SL_CHECK(t != NULL);
    dlv_template_destroy(t);
}

SL_TEST(malformed_templates_fail_at_start_up)
{
    struct sl_err err;
    const char *bad[][2] = {
        {"ftp://h/x", "http:// or https://"},
        {"http://{{ .id }}.example/x", "only follow the host"},
        {"http://h/{{ .id ", "without its }}"},
        {"http://h/{{ .id | }}", "u part 1"},
        {"http://h/{{.a}}{{.a}}{{.a}}{{.a}}{{.a}}{{.a}}{{.a}}{{.a}}{{.a}}", "more than 8"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dlv_template_t *t = dlv_template_new("u", bad[i][0], &err);
        SL_CHECK(t == NULL);
        if (!t)
            SL_CHECK_CONTAINS(err.msg, bad[i][1]);
        dlv_template_destroy(t);
    }
}

SL_TEST_MAIN()
