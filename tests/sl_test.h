/*
 * sl_test: the minimal harness every Sluice test executable uses.
 *
 *   SL_TEST(name) { SL_CHECK(x == 1); SL_CHECK_STR(a, "b"); }
 *   int main(void) { return sl_test_run_all(); }   // or SL_TEST_MAIN()
 *
 * Tests register themselves through a constructor; sl_test_run_all() runs them in order of
 * definition, prints one line per test and a closing "N passed, N failed" line, and returns
 * non-zero when any check failed. A failed check does not stop the test (so one run shows every
 * failure); SL_REQUIRE does.
 */
#ifndef SL_TEST_H
#define SL_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sl_test_fn)(void);

void sl_test_register(const char *name, sl_test_fn fn);
int sl_test_run_all(void);
void sl_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Jumps out of the current test (after a failure that makes the rest meaningless). */
void sl_test_abort_current(void) __attribute__((noreturn));
/* Directory of the source tree and build tree (from ctest's environment; "." otherwise). */
const char *sl_test_source_dir(void);
const char *sl_test_binary_dir(void);
/* Skips the current test with a reason; counted as skipped, not passed. Use only for a missing
 * optional tool, never for a missing service that the test fixture is supposed to start. */
void sl_test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define SL_TEST(name)                                                                              \
    static void sl_test_##name(void);                                                              \
    __attribute__((constructor)) static void sl_test_reg_##name(void)                              \
    {                                                                                              \
        sl_test_register(#name, sl_test_##name);                                                   \
    }                                                                                              \
    static void sl_test_##name(void)

#define SL_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond))                                                                               \
            sl_test_fail(__FILE__, __LINE__, "check failed: %s", #cond);                           \
    } while (0)

#define SL_REQUIRE(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            sl_test_fail(__FILE__, __LINE__, "required: %s", #cond);                               \
            sl_test_abort_current();                                                               \
        }                                                                                          \
    } while (0)

#define SL_CHECK_INT(a, b)                                                                         \
    do {                                                                                           \
        long long sl_a_ = (long long)(a), sl_b_ = (long long)(b);                                  \
        if (sl_a_ != sl_b_)                                                                        \
            sl_test_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", #a, sl_a_, #b,     \
                         sl_b_);                                                                   \
    } while (0)

#define SL_CHECK_STR(a, b)                                                                         \
    do {                                                                                           \
        const char *sl_a_ = (a), *sl_b_ = (b);                                                     \
        if (!sl_a_ || !sl_b_ || strcmp(sl_a_, sl_b_) != 0)                                         \
            sl_test_fail(__FILE__, __LINE__, "%s == \"%s\", expected \"%s\"", #a,                  \
                         sl_a_ ? sl_a_ : "(null)", sl_b_ ? sl_b_ : "(null)");                      \
    } while (0)

/* Substring check: `hay` contains `needle`. */
#define SL_CHECK_CONTAINS(hay, needle)                                                             \
    do {                                                                                           \
        const char *sl_h_ = (hay), *sl_n_ = (needle);                                              \
        if (!sl_h_ || !strstr(sl_h_, sl_n_))                                                       \
            sl_test_fail(__FILE__, __LINE__, "%s == \"%s\" does not contain \"%s\"", #hay,         \
                         sl_h_ ? sl_h_ : "(null)", sl_n_);                                         \
    } while (0)

#define SL_TEST_MAIN()                                                                             \
    int main(void)                                                                                 \
    {                                                                                              \
        return sl_test_run_all();                                                                  \
    }

#endif
