#include "sl_test.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>

#define SL_TEST_MAX 512

static struct {
    const char *name;
    sl_test_fn fn;
} tests[SL_TEST_MAX];
static size_t n_tests;
static int current_failures;
static bool current_skipped;
static jmp_buf current_jmp;

void sl_test_register(const char *name, sl_test_fn fn)
{
    if (n_tests == SL_TEST_MAX) {
        fprintf(stderr, "sl_test: more than %d tests in one executable\n", SL_TEST_MAX);
        abort();
    }
    tests[n_tests].name = name;
    tests[n_tests].fn = fn;
    n_tests++;
}

void sl_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stdout, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    current_failures++;
}

void sl_test_abort_current(void)
{
    longjmp(current_jmp, 1);
}

void sl_test_skip(const char *fmt, ...)
{
    va_list ap;
    fprintf(stdout, "    skipped: ");
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    current_skipped = true;
    longjmp(current_jmp, 1);
}

const char *sl_test_source_dir(void)
{
    const char *d = getenv("SLUICE_SOURCE_DIR");
    return d ? d : ".";
}

const char *sl_test_binary_dir(void)
{
    const char *d = getenv("SLUICE_BINARY_DIR");
    return d ? d : ".";
}

/* setjmp lives in its own frame so that the caller's counters are never live across it. */
static void run_one(sl_test_fn fn)
{
    if (setjmp(current_jmp) == 0)
        fn();
}

int sl_test_run_all(void)
{
    int passed = 0, failed = 0, skipped = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < n_tests; i++) {
        current_failures = 0;
        current_skipped = false;
        fprintf(stdout, "[ RUN  ] %s\n", tests[i].name);
        run_one(tests[i].fn);
        if (current_skipped) {
            skipped++;
            fprintf(stdout, "[ SKIP ] %s\n", tests[i].name);
        } else if (current_failures) {
            failed++;
            fprintf(stdout, "[ FAIL ] %s\n", tests[i].name);
        } else {
            passed++;
            fprintf(stdout, "[  OK  ] %s\n", tests[i].name);
        }
    }
    fprintf(stdout, "%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
