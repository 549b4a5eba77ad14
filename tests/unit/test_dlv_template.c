/* deliver's template.c: URLs with {{ jq }} parts. */
#include "sl_test.h"
#include "template.h"

#include <stdlib.h>
#include <string.h>

static json_t *event(void)
{
    return json_pack("{s:s, s:s, s:{s:s, s:i, s:f, s:o}}", "id", "ev-1", "type", "t", "data",
                     "customer", "cus/1 é?&=", "n", 42, "x", 1.5, "obj", json_object());
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
