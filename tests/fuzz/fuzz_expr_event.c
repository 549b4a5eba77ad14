/*
 * Events into and out of jq (common/sl_expr.c): the conversion of an event's JSON, which comes
 * from outside, to jq's values and back, as every `when` rule and `jq` mapping does it. The
 * input is the event (JSON as validate parses it). `.` must give the event back, with numbers
 * as sl_expr.h says jq 1.6 holds them (doubles: integral values within int64 come back as
 * integers, others as reals), whether the event is converted per call or once for several
 * expressions (sl_expr_input_t); a conversion may fail only with an error.
 */
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "fuzz.h"
#include "sl_expr.h"

static sl_expr_t *identity, *paths;

/* At exit, before LeakSanitizer looks: libjq points at its stack by the block's end, which
 * LeakSanitizer does not count as a reference, so a live state's stack would be reported. */
static void destroy(void)
{
    sl_expr_destroy(identity);
    sl_expr_destroy(paths);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct sl_err err;
    if (!(identity = sl_expr_compile("fuzz.identity", ".", &err)) ||
        !(paths = sl_expr_compile("fuzz.paths", "[paths] | length", &err)))
        fuzz_fail("sl_expr_compile: %s", err.msg);
    atexit(destroy);
    return 0;
}

/* `v` with every number as a double, then back as sl_expr.h describes. */
static json_t *as_jq_sees_it(const json_t *v)
{
    json_t *out = NULL;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *member;
        out = json_object();
        json_object_foreach((json_t *)v, key, member)
            json_object_set_new(out, key, as_jq_sees_it(member));
        return out;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *item;
        out = json_array();
        json_array_foreach(v, i, item) json_array_append_new(out, as_jq_sees_it(item));
        return out;
    }
    case JSON_INTEGER:
    case JSON_REAL: {
        double d = json_number_value(v);
        if (d == trunc(d) && d >= -0x1p63 && d < 0x1p63)
            return json_integer((json_int_t)d);
        return json_real(d);
    }
    default:
        return json_incref((json_t *)v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_INPUT_MAX)
        return 0;
    json_t *doc =
        json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (!doc)
        return 0;
    struct sl_err err;
    json_t *want = as_jq_sees_it(doc);
    json_t *got = sl_expr_value(identity, doc, &err);
    if (got && !json_equal(got, want))
        fuzz_fail("`.` does not give the event back");
    sl_expr_input_t *in = sl_expr_input_new(doc, &err);
    if (in) {
        json_t *again = sl_expr_value_in(identity, in, &err);
        if (again && !json_equal(again, want))
            fuzz_fail("`.` over a converted input does not give the event back");
        if (!got != !again)
            fuzz_fail("converted per call and once disagree on whether `.` works");
        json_decref(again);
        json_decref(sl_expr_value_in(paths, in, &err));
        sl_expr_input_free(in);
    }
    json_decref(got);
    json_decref(want);
    json_decref(doc);
    return 0;
}
