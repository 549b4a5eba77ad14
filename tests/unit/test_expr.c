/* Unit tests of sl_expr: compiling, evaluating, the event JSON, the budget, threads. */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sl_cloudevent.h"
#include "sl_expr.h"
#include "sl_test.h"

extern char **environ;

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#else
#define UNDER_ASAN 0
#endif

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!j)
        sl_test_fail(__FILE__, __LINE__, "bad test JSON %s: %s", text, jerr.text);
    return j;
}

static char *dump(const json_t *j)
{
    return json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
}

/* Compiles, runs once as a mapping, and compares the compact JSON of the output. */
static void check_value(const char *program, const char *input, const char *expect)
{
    struct sl_err err;
    sl_expr_t *e = sl_expr_compile("t", program, &err);
    if (!e) {
        sl_test_fail(__FILE__, __LINE__, "%s: %s", program, err.msg);
        return;
    }
    json_t *in = parse(input);
    json_t *out = in ? sl_expr_value(e, in, &err) : NULL;
    char *got = out ? dump(out) : NULL;
    if (!got || strcmp(got, expect) != 0)
        sl_test_fail(__FILE__, __LINE__, "%s on %s gave %s, expected %s", program, input,
                     got ? got : err.msg, expect);
    free(got);
    json_decref(out);
    json_decref(in);
    sl_expr_destroy(e);
}

/* Compiles and runs once as a predicate; returns 1/0, or -1 with *err. */
static int run_bool(const char *program, const char *input, struct sl_err *err)
{
    sl_expr_t *e = sl_expr_compile("p", program, err);
    if (!e)
        return -1;
    json_t *in = parse(input);
    bool b = false;
    int rc = in ? sl_expr_bool(e, in, &b, err) : -1;
    json_decref(in);
    sl_expr_destroy(e);
    return rc == 0 ? (int)b : -1;
}

/* The runtime error message of a mapping, or "" when it succeeded. */
static void check_runtime_error(const char *program, const char *input, const char *needle)
{
    struct sl_err err;
    sl_expr_t *e = sl_expr_compile("rule-x", program, &err);
    if (!e) {
        sl_test_fail(__FILE__, __LINE__, "%s: %s", program, err.msg);
        return;
    }
    json_t *in = parse(input);
    json_t *out = sl_expr_value(e, in, &err);
    if (out) {
        sl_test_fail(__FILE__, __LINE__, "%s succeeded, expected an error with %s", program,
                     needle);
    } else {
        SL_CHECK_INT(err.code, SL_ERR_INVALID);
        SL_CHECK_CONTAINS(err.msg, "expression 'rule-x'");
        SL_CHECK_CONTAINS(err.msg, needle);
    }
    json_decref(out);
    json_decref(in);
    sl_expr_destroy(e);
}

static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- compiling ---- */

SL_TEST(compile_error_names_the_rule_and_quotes_jq)
{
    struct sl_err err;
    SL_CHECK(sl_expr_compile("stripe-charge", ".a +", &err) == NULL);
    SL_CHECK_INT(err.code, SL_ERR_CONFIG);
    SL_CHECK_CONTAINS(err.msg, "expression 'stripe-charge': syntax error, unexpected $end");
    SL_CHECK_CONTAINS(err.msg, "at <top-level>, line 1: .a +");
    /* The prelude that blocks env never shows in a message, and line numbers are the user's. */
    SL_CHECK(strstr(err.msg, "def env") == NULL);
    SL_CHECK(strstr(err.msg, "compile error") == NULL);
    SL_CHECK(sl_expr_compile("two-lines", ".a\n| .b +", &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "line 2: | .b +");
    SL_CHECK(sl_expr_compile("undefined", "nosuchfunction(1)", &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "expression 'undefined': nosuchfunction/1 is not defined");
    SL_CHECK(sl_expr_compile("empty", "  # only a comment\n", &err) == NULL);
    SL_CHECK_STR(err.msg, "expression 'empty' is empty");
    SL_CHECK(sl_expr_compile("", ".", &err) == NULL);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
}

SL_TEST(libjq_never_writes_to_stderr)
{
    char path[] = "/tmp/sl_expr_stderr_XXXXXX";
    int fd = mkstemp(path);
    SL_REQUIRE(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    struct sl_err err;
    SL_CHECK(sl_expr_compile("bad", "{", &err) == NULL);
    SL_CHECK_INT(run_bool("debug | true", "{\"a\":1}", &err), 1);
    SL_CHECK_INT(run_bool("stderr", "{\"a\":1}", &err), -1);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    struct stat st;
    SL_CHECK(fstat(fd, &st) == 0 && st.st_size == 0);
    close(fd);
    unlink(path);
}

SL_TEST(environment_is_not_reachable)
{
    struct sl_err err;
    static const char *const refused[] = {"$ENV.HOME",
                                          "$ ENV | length",
                                          "$# c\nENV",
                                          "\"\\($ENV.HOME)\"",
                                          "{$ENV}",
                                          "[1, (2 | $ENV)]",
                                          "\"(\\(\"x\" + ($ENV | tostring)))\""};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        SL_CHECK(sl_expr_compile("r", refused[i], &err) == NULL);
        SL_CHECK_INT(err.code, SL_ERR_CONFIG);
        SL_CHECK_CONTAINS(err.msg, "$ENV is not available in sluice expressions");
    }
    /* Not references: a string, a comment, a field, a longer name bound by the program. */
    check_value("\"$ENV\" # $ENV", "{}", "\"$ENV\"");
    check_value("{ENV: .ENV, \"\\\\($ENV)\": 1}", "{\"ENV\":2}", "{\"ENV\":2,\"\\\\($ENV)\":1}");
    check_value(". as $ENVX | $ENVX.a", "{\"a\":3}", "3");
    /* env is a function: it stays compilable (as a field or a key it is just a name) and
     * fails when called. */
    check_runtime_error("env.HOME", "{}", "env is not available in sluice expressions");
    check_runtime_error("def f: env; f | length", "{}", "env is not available");
    check_value("{env: .env}", "{\"env\":\"prod\"}", "{\"env\":\"prod\"}");
}

SL_TEST(inputs_modules_and_stderr_are_refused)
{
    struct sl_err err;
    check_runtime_error("input", "{}", "input is not available");
    check_runtime_error("[inputs]", "{}", "inputs is not available");
    check_runtime_error("stderr", "{}", "stderr is not available");
    check_runtime_error("\"m\" | modulemeta", "{}", "modulemeta is not available");
    SL_CHECK(sl_expr_compile("mod", "# lib\nimport \"x\" as x; .", &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "expression 'mod': modules (import, include) are not available");
    SL_CHECK(sl_expr_compile("inc", "include \"x\"; .", &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "modules (import, include)");
    check_value("$__loc__", "{}", "{\"file\":\"<top-level>\",\"line\":1}");
    check_value("input_filename", "{}", "null");
}

SL_TEST(home_jq_file_is_refused)
{
    char dir[] = "/tmp/sl_expr_home_XXXXXX";
    SL_REQUIRE(mkdtemp(dir) != NULL);
    char file[sizeof(dir) + 8];
    snprintf(file, sizeof(file), "%s/.jq", dir);
    FILE *f = fopen(file, "w");
    SL_REQUIRE(f != NULL);
    fputs("def probe: 42;\n", f);
    fclose(f);
    const char *home = getenv("HOME");
    char *saved = home ? strdup(home) : NULL;
    setenv("HOME", dir, 1);
    struct sl_err err;
    sl_expr_t *e = sl_expr_compile("homed", "probe", &err);
    SL_CHECK(e == NULL);
    SL_CHECK_CONTAINS(err.msg, "/.jq exists, and libjq 1.6 would include it");
    sl_expr_destroy(e);
    if (saved)
        setenv("HOME", saved, 1);
    else
        unsetenv("HOME");
    free(saved);
    unlink(file);
    rmdir(dir);
}

/* ---- evaluating ---- */

SL_TEST(runtime_errors)
{
    check_runtime_error(".a.b", "{\"a\":\"text\"}", "Cannot index string with string \"b\"");
    check_runtime_error("error(\"boom\")", "{}", "expression 'rule-x': boom");
    check_runtime_error("error({\"code\":7})", "{}", "error (not a string): {\"code\":7}");
    check_runtime_error("\"stop\" | halt_error", "{}", "halt_error: stop");
    check_runtime_error("halt", "{}", "called halt");
    check_runtime_error("1, error(\"second\")", "{}", "second");
    /* A predicate reports errors too, unless an output came first. */
    struct sl_err err;
    SL_CHECK_INT(run_bool("error(\"nope\")", "{}", &err), -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    SL_CHECK_CONTAINS(err.msg, "expression 'p': nope");
    SL_CHECK_INT(run_bool("1, error(\"later\")", "{}", &err), 1);
    /* After a halt or an error the same expression runs normally again. */
    sl_expr_t *e =
        sl_expr_compile("h", "if .h then halt elif .e then error(\"e\") else 1 end", &err);
    SL_REQUIRE(e != NULL);
    json_t *h = parse("{\"h\":true}"), *x = parse("{\"e\":true}"), *ok = parse("{}");
    for (int i = 0; i < 2; i++) {
        SL_CHECK(sl_expr_value(e, h, &err) == NULL);
        SL_CHECK_CONTAINS(err.msg, "called halt");
        SL_CHECK(sl_expr_value(e, x, &err) == NULL);
        json_t *one = sl_expr_value(e, ok, &err);
        SL_CHECK(one && json_integer_value(one) == 1);
        json_decref(one);
    }
    json_decref(h);
    json_decref(x);
    json_decref(ok);
    sl_expr_destroy(e);
}

/* libjq 1.6 dies (SIGSEGV in jv_array_set) setting an array element near index 2^31; the
 * prelude refuses such indices first. Each program runs in a child, so that a crash is a
 * failed check here rather than the end of the test binary. */
SL_TEST(absurd_array_indices_are_an_error_not_a_crash)
{
    static const char *const programs[] = {
        ".data.a[.data.n] = 1",
        ".data.a[.data.n] |= 1",
        ".data.a[.data.n] += 1",
        ".data.a[.data.n] //= 1",
        "setpath([\"data\", \"a\", .data.n]; 1)",
        "fromstream([[\"a\", .data.n], 1], [[\"a\", .data.n]])",
    };
    const char *input = "{\"data\":{\"a\":[0],\"n\":2147483647}}";
    for (size_t i = 0; i < sizeof(programs) / sizeof(programs[0]); i++) {
        fflush(NULL);
        pid_t pid = fork();
        SL_REQUIRE(pid >= 0);
        if (pid == 0) {
            struct sl_err err;
            sl_expr_t *e = sl_expr_compile("rule-x", programs[i], &err);
            json_t *in = parse(input);
            json_t *out = e && in ? sl_expr_value(e, in, &err) : NULL;
            bool refused = e && in && !out && err.code == SL_ERR_INVALID &&
                           strstr(err.msg, "array index 2147483647 is out of range") != NULL;
            if (!refused)
                fprintf(stderr, "%s: %s\n", programs[i], out ? "succeeded" : err.msg);
            _exit(refused ? 0 : 1);
        }
        int status = 0;
        SL_REQUIRE(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            sl_test_fail(__FILE__, __LINE__, "%s: %s %d", programs[i],
                         WIFSIGNALED(status) ? "killed by signal" : "failed with",
                         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
    /* Below the bound, and everything else about setting paths, works as in jq 1.6. */
    check_value(".a[3] = 1", "{\"a\":[0]}", "{\"a\":[0,null,null,1]}");
    check_value(".a[-1] |= . + 1", "{\"a\":[0,5]}", "{\"a\":[0,6]}");
    check_value("[1,2,3] | .[] |= empty", "null", "[2]");
    check_value(".a.b += 2 | .c //= 3", "{}", "{\"a\":{\"b\":2},\"c\":3}");
    check_value("fromstream(tostream)", "{\"a\":[1,{\"b\":2}]}", "{\"a\":[1,{\"b\":2}]}");
    check_value("setpath([\"x\", 2]; 1)", "null", "{\"x\":[null,null,1]}");
    check_value("(.[] | select(. > 1)) |= . * 10", "[1,2,3]", "[1,20,30]");
}

SL_TEST(predicates)
{
    struct sl_err err;
    const char *ev = "{\"source\":\"stripe\",\"type\":\"charge.succeeded\",\"data\":{\"n\":0}}";
    SL_CHECK_INT(run_bool(".source == \"stripe\" and .type == \"charge.succeeded\"", ev, &err), 1);
    SL_CHECK_INT(run_bool(".type | startswith(\"payment.\")", ev, &err), 0);
    SL_CHECK_INT(run_bool("null", ev, &err), 0);
    SL_CHECK_INT(run_bool(".missing", ev, &err), 0);
    SL_CHECK_INT(run_bool("empty", ev, &err), 0);
    SL_CHECK_INT(run_bool(".data.n", ev, &err), 1); /* 0 is true in jq */
    SL_CHECK_INT(run_bool("\"\"", ev, &err), 1);
    SL_CHECK_INT(run_bool("false, true", ev, &err), 0); /* the first output decides */
    SL_CHECK_INT(run_bool("error(null)", ev, &err), 0); /* libjq 1.6: same as empty */
}

SL_TEST(mappings)
{
    check_value("{type: \"payment.succeeded\", data: {id: .data.id, amount: .data.amount}}",
                "{\"type\":\"charge.succeeded\",\"data\":{\"id\":\"ch_1\",\"amount\":1250}}",
                "{\"type\":\"payment.succeeded\",\"data\":{\"id\":\"ch_1\",\"amount\":1250}}");
    check_value(".data.currency | ascii_upcase", "{\"data\":{\"currency\":\"eur\"}}", "\"EUR\"");
    check_value("1700000000 | todate", "{}", "\"2023-11-14T22:13:20Z\"");
    check_value("[.[] | select(. > 1)]", "[1,2,3]", "[2,3]");
    check_runtime_error("empty", "{}", "produced no output (a mapping must produce exactly one)");
    check_runtime_error("1, 2", "{}", "produced more than one output");
    check_runtime_error(".[]", "[1,2]", "produced more than one output");
}

SL_TEST(unicode_round_trips)
{
    const char *in =
        "{\"name\":\"Zo\\u00eb \\u5317\\u4eac \\ud83d\\ude00\",\"k\\u00e9y\":\"a\\u0000b\","
        "\"esc\":\"tab\\t quote\\\" slash\\\\\"}";
    struct sl_err err;
    sl_expr_t *e = sl_expr_compile("id", ".", &err);
    SL_REQUIRE(e != NULL);
    json_t *j = parse(in);
    json_t *out = sl_expr_value(e, j, &err);
    SL_REQUIRE(out != NULL);
    SL_CHECK(json_equal(j, out));
    SL_CHECK_INT(json_string_length(json_object_get(out, "k\xc3\xa9y")), 3);
    json_decref(out);
    json_decref(j);
    sl_expr_destroy(e);
    check_value(".name | length", "{\"name\":\"\\u5317\\u4eac\\ud83d\\ude00\"}", "3");
    check_value(".name | ascii_downcase", "{\"name\":\"\\u00c9A\"}",
                "\"\xc3\x89"
                "a\"");
}

SL_TEST(numbers_are_doubles)
{
    /* Exact up to 2^53; beyond, rounded to the nearest double (documented in sl_expr.h). */
    check_value(".", "9007199254740992", "9007199254740992");
    check_value(".", "9007199254740993", "9007199254740992");
    check_value(".", "-9007199254740993", "-9007199254740992");
    check_value(".", "9223372036854775807", "9.2233720368547758e18");
    check_value(". + 1", "41", "42");
    check_value(".", "1.5", "1.5");
    check_value(".", "2.0", "2"); /* integral reals come back as integers */
    check_value(".", "1e300", "1.0000000000000001e300");
    check_value("1 / 3", "null", "0.33333333333333331");
    check_value("[nan, infinite, -infinite]", "null",
                "[null,1.7976931348623157e308,-1.7976931348623157e308]");
}

/* ---- the event JSON ---- */

static void event_ce(struct sl_ce *ce, const char *content_type)
{
    struct sl_err err;
    sl_ce_init(ce);
    SL_CHECK_INT(sl_ce_set(ce, "type", "charge.succeeded", &err), 0);
    SL_CHECK_INT(sl_ce_set(ce, "source", "stripe", &err), 0);
    SL_CHECK_INT(sl_ce_set(ce, "id", "0193a1b2-0000-7000-8000-000000000001", &err), 0);
    SL_CHECK_INT(sl_ce_set(ce, "specversion", "1.0", &err), 0);
    SL_CHECK_INT(sl_ce_set(ce, "time", "2026-11-24T17:00:00Z", &err), 0);
    SL_CHECK_INT(sl_ce_set(ce, SL_CE_PARTITION_KEY, "cus_1", &err), 0);
    if (content_type)
        SL_CHECK_INT(sl_ce_set(ce, "datacontenttype", content_type, &err), 0);
}

static void check_event(const char *content_type, const void *data, size_t len,
                        const char *expect_tail)
{
    struct sl_ce ce;
    struct sl_err err;
    event_ce(&ce, content_type);
    json_t *ev = sl_expr_event_json(&ce, data, len, &err);
    char *got = ev ? dump(ev) : NULL;
    char expect[1024];
    snprintf(
        expect, sizeof(expect),
        "{\"specversion\":\"1.0\",\"id\":\"0193a1b2-0000-7000-8000-000000000001\","
        "\"source\":\"stripe\",\"type\":\"charge.succeeded\",\"time\":\"2026-11-24T17:00:00Z\","
        "\"partitionkey\":\"cus_1\"%s}",
        expect_tail);
    if (!got || strcmp(got, expect) != 0)
        sl_test_fail(__FILE__, __LINE__, "event JSON %s, expected %s", got ? got : err.msg, expect);
    free(got);
    json_decref(ev);
    sl_ce_free(&ce);
}

SL_TEST(event_json_shape)
{
    const char *body = "{\"id\":\"evt_1\",\"amount\":1250}";
    check_event(
        "application/json", body, strlen(body),
        ",\"datacontenttype\":\"application/json\",\"data\":{\"id\":\"evt_1\",\"amount\":1250}");
    check_event(NULL, body, strlen(body), ",\"data\":{\"id\":\"evt_1\",\"amount\":1250}");
    check_event(
        "application/cloudevents+json; charset=utf-8", "[1,2]", 5,
        ",\"datacontenttype\":\"application/cloudevents+json; charset=utf-8\",\"data\":[1,2]");
    check_event("text/plain", "hello \xc3\xa9", 8,
                ",\"datacontenttype\":\"text/plain\",\"data\":\"hello \xc3\xa9\"");
    check_event("application/octet-stream", "\xff\x00\x01", 3,
                ",\"datacontenttype\":\"application/octet-stream\",\"data_base64\":\"/wAB\"");
    check_event("application/json", "", 0, ",\"datacontenttype\":\"application/json\"");
    /* Beyond int64: read as a double, as jq would hold it anyway. */
    check_event(NULL, "{\"n\":123456789012345678901}", 27,
                ",\"data\":{\"n\":1.2345678901234568e20}");

    struct sl_ce ce;
    struct sl_err err;
    event_ce(&ce, "application/json");
    SL_CHECK(sl_expr_event_json(&ce, "{\"a\":", 5, &err) == NULL);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    SL_CHECK_CONTAINS(err.msg, "event data is not valid JSON");
    SL_CHECK_INT(sl_ce_set(&ce, "data", "x", &err), 0);
    SL_CHECK(sl_expr_event_json(&ce, "1", 1, &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "attribute 'data' collides");
    sl_ce_free(&ce);
}

SL_TEST(event_json_feeds_the_example_rules)
{
    struct sl_ce ce;
    struct sl_err err;
    event_ce(&ce, "application/json");
    const char *body = "{\"id\":\"evt_1\",\"type\":\"charge.succeeded\",\"created\":1700000000,"
                       "\"data\":{\"object\":{\"id\":\"ch_1\",\"customer\":\"cus_1\","
                       "\"amount\":1250,\"currency\":\"eur\"}}}";
    json_t *ev = sl_expr_event_json(&ce, body, strlen(body), &err);
    SL_REQUIRE(ev != NULL);
    sl_expr_t *when =
        sl_expr_compile("stripe-charge-to-payment",
                        ".source == \"stripe\" and .type == \"charge.succeeded\"", &err);
    sl_expr_t *map = sl_expr_compile(
        "stripe-charge-to-payment",
        "{type: \"payment.succeeded\", data: {payment_id: .data.data.object.id, customer_id: "
        ".data.data.object.customer, amount_minor: .data.data.object.amount, currency: "
        "(.data.data.object.currency | ascii_upcase), occurred_at: (.data.created | todate)}}",
        &err);
    SL_REQUIRE(when && map);
    bool b = false;
    SL_CHECK_INT(sl_expr_bool(when, ev, &b, &err), 0);
    SL_CHECK(b);
    json_t *out = sl_expr_value(map, ev, &err);
    char *got = out ? dump(out) : NULL;
    SL_CHECK_STR(got, "{\"type\":\"payment.succeeded\",\"data\":{\"payment_id\":\"ch_1\","
                      "\"customer_id\":\"cus_1\",\"amount_minor\":1250,\"currency\":\"EUR\","
                      "\"occurred_at\":\"2023-11-14T22:13:20Z\"}}");
    free(got);
    json_decref(out);
    json_decref(ev);
    sl_expr_destroy(when);
    sl_expr_destroy(map);
    sl_ce_free(&ce);
}

/* ---- the budget ---- */

static sl_expr_t *compile_budget(const char *program, unsigned cpu_ms, size_t max_output)
{
    struct sl_err err;
    sl_expr_t *e = sl_expr_compile("runaway", program, &err);
    if (!e) {
        sl_test_fail(__FILE__, __LINE__, "%s: %s", program, err.msg);
        return NULL;
    }
    struct sl_expr_budget b = {.cpu_ms = cpu_ms, .max_output_bytes = max_output};
    SL_CHECK_INT(sl_expr_set_budget(e, &b, &err), 0);
    return e;
}

/* Runs `program` with {"loop": true} (it must exceed a `cpu_ms` budget) and then with
 * {"loop": false, "x": 7} on the same expression, which must answer 7. */
static void check_budget_stops(const char *program, unsigned cpu_ms)
{
    struct sl_err err;
    struct sl_expr_stats before, after;
    sl_expr_stats(&before);
    sl_expr_t *e = compile_budget(program, cpu_ms, SL_EXPR_DEFAULT_MAX_OUTPUT);
    if (!e)
        return;
    json_t *loop = parse("{\"loop\":true}"), *calm = parse("{\"loop\":false,\"x\":7}");
    double t0 = thread_cpu_ms();
    json_t *out = sl_expr_value(e, loop, &err);
    double used = thread_cpu_ms() - t0;
    SL_CHECK(out == NULL);
    SL_CHECK_INT(err.code, SL_EXPR_ERR_BUDGET);
    char expect[96];
    snprintf(expect, sizeof(expect), "expression 'runaway' exceeded its budget (%u ms of CPU time)",
             cpu_ms);
    SL_CHECK_STR(err.msg, expect);
    SL_CHECK(!err.fatal);
    /* Stopped after the budget, not long after: 2 watchdog periods, plus room for time inside
     * libc, which is never interrupted (under AddressSanitizer every realloc of a growing array
     * copies it, in the sanitizer's runtime). */
    double slack = 2 * SL_EXPR_WATCHDOG_MS + (UNDER_ASAN ? 1000 : 100);
    if (used < cpu_ms || used > cpu_ms + slack)
        sl_test_fail(__FILE__, __LINE__, "%s: stopped after %.1f ms of CPU", program, used);
    json_decref(out);
    for (int i = 0; i < 3; i++) {
        out = sl_expr_value(e, calm, &err);
        char *got = out ? dump(out) : NULL;
        SL_CHECK_STR(got ? got : err.msg, "7");
        free(got);
        json_decref(out);
    }
    bool b = true;
    SL_CHECK_INT(sl_expr_bool(e, loop, &b, &err), -1);
    SL_CHECK_INT(err.code, SL_EXPR_ERR_BUDGET);
    sl_expr_stats(&after);
    SL_CHECK_INT(after.budget_exceeded - before.budget_exceeded, 2);
    SL_CHECK_INT(after.states_leaked - before.states_leaked, 2);
    json_decref(loop);
    json_decref(calm);
    sl_expr_destroy(e);
}

SL_TEST(budget_stops_runaway_programs)
{
    check_budget_stops("def f: f; if .loop then f else .x end", 50);
    check_budget_stops("if .loop then last(repeat(1)) else .x end", 50);
    check_budget_stops("if .loop then [range(1e12)] else .x end", 50);
    check_budget_stops("if .loop then 0 | until(false; . + 1) else .x end", 50);
    check_budget_stops("if .loop then [range(1e12) | tostring] | sort else .x end", 50);
    check_budget_stops("if .loop then reduce range(1e12) as $i (null; [.]) else .x end", 50);
    /* Catastrophic backtracking inside one search, which oniguruma's own retry limit would end
     * only after ~160 ms, and in a loop of short searches. */
    check_budget_stops("if .loop then (\"a\" * 40 + \"b\") | test(\"^(a+)+$\") else .x end", 20);
    check_budget_stops("if .loop then last(repeat(\"aaaaaaaaaaaaaaaaaaaaaaaaab\" | "
                       "test(\"^(a|aa)+$\"))) else .x end",
                       50);
}

SL_TEST(budget_bounds_the_output)
{
    struct sl_err err;
    sl_expr_t *e = compile_budget("[range(.n)]", 1000, 1000);
    SL_REQUIRE(e != NULL);
    json_t *big = parse("{\"n\":100000}"), *small = parse("{\"n\":3}");
    SL_CHECK(sl_expr_value(e, big, &err) == NULL);
    SL_CHECK_INT(err.code, SL_EXPR_ERR_BUDGET);
    SL_CHECK_STR(err.msg,
                 "expression 'runaway' exceeded its budget (output larger than 1000 bytes)");
    json_t *out = sl_expr_value(e, small, &err);
    char *got = out ? dump(out) : NULL;
    SL_CHECK_STR(got, "[0,1,2]");
    free(got);
    json_decref(out);
    json_decref(big);
    json_decref(small);
    sl_expr_destroy(e);
}

SL_TEST(deep_outputs_are_refused_and_freed_without_recursion)
{
    /* Refused for its size first, at a shallow level, with 400,000 levels below. */
    sl_expr_t *small = compile_budget("reduce range(.n) as $i (null; [.])", 20000, 100);
    SL_REQUIRE(small != NULL);
    json_t *n = parse("{\"n\":400000}");
    struct sl_err small_err;
    SL_CHECK(sl_expr_value(small, n, &small_err) == NULL);
    SL_CHECK_CONTAINS(small_err.msg, "output larger than 100 bytes");
    json_decref(n);
    sl_expr_destroy(small);

    struct sl_err err;
    /* 400,000 levels: libjq's recursive free would overflow an 8 MiB stack on them. */
    sl_expr_t *e =
        compile_budget("reduce range(.n) as $i (null; [.])", 20000, SL_EXPR_DEFAULT_MAX_OUTPUT);
    SL_REQUIRE(e != NULL);
    json_t *deep = parse("{\"n\":400000}"), *flat = parse("{\"n\":2}");
    SL_CHECK(sl_expr_value(e, deep, &err) == NULL);
    SL_CHECK_INT(err.code, SL_EXPR_ERR_BUDGET);
    SL_CHECK_CONTAINS(err.msg, "output nested deeper than 2048 levels");
    json_t *out = sl_expr_value(e, flat, &err);
    char *got = out ? dump(out) : NULL;
    SL_CHECK_STR(got, "[[null]]");
    free(got);
    json_decref(out);
    json_decref(deep);
    json_decref(flat);
    sl_expr_destroy(e);
}

SL_TEST(deep_input_is_refused)
{
    struct sl_err err;
    sl_expr_t *e = sl_expr_compile("deep", ".", &err);
    SL_REQUIRE(e != NULL);
    json_t *in = json_array(), *cur = in;
    for (int i = 0; i < SL_EXPR_MAX_DEPTH + 1; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    SL_CHECK(sl_expr_value(e, in, &err) == NULL);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    SL_CHECK_STR(err.msg, "expression 'deep': the input is nested too deeply");
    json_decref(in);
    sl_expr_destroy(e);
}

SL_TEST(a_converted_input_serves_many_evaluations_unchanged)
{
    struct sl_err err;
    json_t *doc = parse("{\"loop\":false,\"x\":7,\"data\":{\"list\":[1,2]}}");
    sl_expr_input_t *in = sl_expr_input_new(doc, &err);
    SL_REQUIRE(in != NULL);
    json_decref(doc); /* the input no longer refers to it */
    sl_expr_t *edit =
        sl_expr_compile("edit", ".x = 99 | .data.list += [3] | [.x, .data.list]", &err);
    sl_expr_t *read = sl_expr_compile("read", "[.x, .data.list]", &err);
    sl_expr_t *flip = sl_expr_compile("flip", ".loop = true", &err);
    sl_expr_t *runaway =
        compile_budget("def f: f; if .loop then f else .x end", 20, SL_EXPR_DEFAULT_MAX_OUTPUT);
    SL_REQUIRE(edit && read && flip && runaway);
    for (int i = 0; i < 3; i++) {
        json_t *out = sl_expr_value_in(edit, in, &err);
        char *got = out ? dump(out) : NULL;
        SL_CHECK_STR(got ? got : err.msg, "[99,[1,2,3]]");
        free(got);
        json_decref(out);
        out = sl_expr_value_in(read, in, &err);
        got = out ? dump(out) : NULL;
        SL_CHECK_STR(got ? got : err.msg, "[7,[1,2]]");
        free(got);
        json_decref(out);
    }
    bool yes = false;
    SL_CHECK_INT(sl_expr_bool_in(flip, in, &yes, &err), 0);
    SL_CHECK(yes);
    /* An evaluation abandoned by the budget leaves the input as it was. */
    json_t *loop = parse("{\"loop\":true}");
    sl_expr_input_t *looping = sl_expr_input_new(loop, &err);
    SL_REQUIRE(looping != NULL);
    SL_CHECK(sl_expr_value_in(runaway, looping, &err) == NULL);
    SL_CHECK_INT(err.code, SL_EXPR_ERR_BUDGET);
    json_t *out = sl_expr_value_in(runaway, in, &err);
    SL_CHECK(out && json_integer_value(out) == 7);
    json_decref(out);
    sl_expr_input_free(looping);
    json_decref(loop);
    sl_expr_input_free(in);
    sl_expr_destroy(edit);
    sl_expr_destroy(read);
    sl_expr_destroy(flip);
    sl_expr_destroy(runaway);

    /* Too deep: refused when it is converted. */
    json_t *deep = json_array(), *cur = deep;
    for (int i = 0; i < SL_EXPR_MAX_DEPTH + 1; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    SL_CHECK(sl_expr_input_new(deep, &err) == NULL);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    SL_CHECK_STR(err.msg, "the input is nested too deeply");
    json_decref(deep);
}

SL_TEST(budget_validation)
{
    struct sl_err err;
    sl_expr_t *e = sl_expr_compile("b", ".", &err);
    SL_REQUIRE(e != NULL);
    struct sl_expr_budget zero = {.cpu_ms = 0, .max_output_bytes = 10};
    SL_CHECK_INT(sl_expr_set_budget(e, &zero, &err), -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    sl_expr_destroy(e);
    sl_expr_destroy(NULL);
}

/* ---- threads ---- */

struct worker {
    sl_expr_t *when, *map, *loop;
    int id;
    int failures;
    bool block_signals;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct sl_err err;
    if (w->block_signals) {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, NULL);
    }
    for (int i = 0; i < 300; i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"type\":\"%s\",\"data\":{\"n\":%d}}",
                 i % 2 ? "payment.succeeded" : "contact.updated", w->id * 1000 + i);
        json_t *in = json_loads(text, 0, NULL);
        bool b = false;
        if (sl_expr_bool(w->when, in, &b, &err) != 0 || b != (i % 2 == 1))
            w->failures++;
        json_t *out = sl_expr_value(w->map, in, &err);
        if (!out || json_integer_value(out) != (json_int_t)(w->id * 1000 + i) * 2)
            w->failures++;
        json_decref(out);
        if (i % 100 == 0 && w->loop) {
            /* A runaway evaluation on this thread must not disturb the others. */
            if (sl_expr_bool(w->loop, in, &b, &err) != -1 || err.code != SL_EXPR_ERR_BUDGET)
                w->failures++;
        }
        json_decref(in);
    }
    return NULL;
}

SL_TEST(threads_share_an_expression)
{
    struct sl_err err;
    sl_expr_t *when = sl_expr_compile("when", ".type | startswith(\"payment.\")", &err);
    sl_expr_t *map = sl_expr_compile("map", ".data.n * 2", &err);
    sl_expr_t *loop = compile_budget("last(repeat(1))", 20, SL_EXPR_DEFAULT_MAX_OUTPUT);
    SL_REQUIRE(when && map && loop);
    enum { N = 6 };
    struct worker w[N];
    pthread_t tid[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct worker){.when = when,
                               .map = map,
                               .id = i,
                               .loop = i < 2 ? loop : NULL,
                               .block_signals = i == 1};
        SL_REQUIRE(pthread_create(&tid[i], NULL, worker_main, &w[i]) == 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(tid[i], NULL);
        SL_CHECK_INT(w[i].failures, 0);
    }
    /* The exited threads' states are gone; this thread's still work. */
    json_t *in = parse("{\"type\":\"payment.refunded\",\"data\":{\"n\":4}}");
    bool b = false;
    SL_CHECK_INT(sl_expr_bool(when, in, &b, &err), 0);
    SL_CHECK(b);
    json_decref(in);
    sl_expr_destroy(when);
    sl_expr_destroy(map);
    sl_expr_destroy(loop);
}

/* ---- out of memory, in a child process with a memory limit ---- */

/* The child: runs a program that doubles a string until an allocation fails, under a CPU
 * budget it cannot reach first. Exits 0 when that is a budget error and the same expression
 * works again afterwards. */
static int nomem_child(void)
{
    if (!UNDER_ASAN) {
        /* AddressSanitizer reserves terabytes of address space; it gets max_allocation_size_mb
         * from the parent instead of this limit. */
        struct rlimit rl = {.rlim_cur = 768u << 20, .rlim_max = 768u << 20};
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            return 2;
    }
    struct sl_err err;
    sl_expr_t *e = sl_expr_compile(
        "hungry", "if .grow then reduce range(40) as $i (\"12345678\"; . + .) | length else 1 end",
        &err);
    struct sl_expr_budget b = {.cpu_ms = 60000, .max_output_bytes = 1024};
    if (!e || sl_expr_set_budget(e, &b, &err) != 0)
        return 3;
    json_t *grow = json_loads("{\"grow\":true}", 0, NULL), *calm = json_loads("{}", 0, NULL);
    json_t *out = sl_expr_value(e, grow, &err);
    if (out || err.code != SL_EXPR_ERR_BUDGET ||
        strcmp(err.msg, "expression 'hungry' exceeded its budget (out of memory)") != 0) {
        printf("child: %s\n", out ? "no error" : err.msg);
        return 4;
    }
    out = sl_expr_value(e, calm, &err);
    if (!out || json_integer_value(out) != 1) {
        printf("child: after the abort: %s\n", out ? "wrong value" : err.msg);
        return 5;
    }
    json_decref(out);
    json_decref(grow);
    json_decref(calm);
    sl_expr_destroy(e);
    return 0;
}

SL_TEST(out_of_memory_is_a_budget_error)
{
    /* Everything the child needs is prepared before fork(): the parent has threads. */
    static char asan[] = "ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=256";
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + 2, sizeof(*envp));
    SL_REQUIRE(envp != NULL);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "ASAN_OPTIONS=", 13) != 0)
            envp[k++] = environ[i];
    envp[k++] = asan;
    char *argv[] = {"/proc/self/exe", "--nomem-child", NULL};
    fflush(stdout);
    pid_t pid = fork();
    SL_REQUIRE(pid >= 0);
    if (pid == 0) {
        execve(argv[0], argv, envp);
        _exit(127);
    }
    int status = 0;
    SL_REQUIRE(waitpid(pid, &status, 0) == pid);
    SL_CHECK(WIFEXITED(status));
    SL_CHECK_INT(WEXITSTATUS(status), 0);
    free(envp);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--nomem-child") == 0)
        return nomem_child();
    return sl_test_run_all();
}
