/*
 * crashshim: a crash on demand inside a real, unmodified Sluice binary, for the crash-loop
 * tests (tests/fault/test_crash_loop.c). Loaded with LD_PRELOAD, it stands in front of
 * libjq's jq_start(): when the input handed to a jq program contains CRASHSHIM_MARKER, the
 * process dies with SIGSEGV, as libjq 1.6 itself does on some inputs; any other input goes
 * to the real jq_start. So every binary that evaluates an operator's jq over an event
 * (sluice-transform's mappings, sluice-deliver's body mapping) can be made to crash on one
 * chosen record, without a test hook in production code.
 */

#include <dlfcn.h>
#include <jq.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>

#define CRASHSHIM_MARKER "crash-on-demand"

void jq_start(jq_state *jq, jv input, int flags)
{
    static void (*real)(jq_state *, jv, int);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "jq_start");
    jv text = jv_dump_string(jv_copy(input), 0);
    bool crash = jv_is_valid(text) && strstr(jv_string_value(text), CRASHSHIM_MARKER) != NULL;
    jv_free(text);
    if (crash) {
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
    }
    real(jq, input, flags);
}
