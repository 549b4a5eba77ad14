#!/usr/bin/env bash
# Runs every test of Sluice, from a fresh clone on a fresh Debian 12 machine:
#   1. installs what is missing (apt), fetches the Kafka jars once (Maven Central),
#   2. starts Redis and PostgreSQL if they are not running (and stops them again at the end),
#   3. checks formatting (clang-format),
#   4. builds the normal build (build/, Release) and the sanitizer build (build-asan/, Debug
#      with AddressSanitizer + UndefinedBehaviorSanitizer),
#   5. runs ctest (labels unit, integration, e2e, fault, browser) in both trees at once, each line of
#      output prefixed with its tree. Integration tests start a private Kafka broker per build
#      tree (build/: ports 19092/19093, or SLUICE_TEST_KAFKA_PORT and the next one; build-asan/:
#      those plus 10) and stop it afterwards. The trees share only Redis and PostgreSQL, where
#      every test keeps to keys and rows of its own. The unit run includes the fuzz label: every
#      committed fuzz corpus and regression input through its harness.
#   6. fuzzes every harness of tests/fuzz for a few seconds (build-fuzz/, clang with libFuzzer;
#      SLUICE_FUZZ_SECONDS each, default 5), when clang is installed.
# Exits non-zero when anything fails. Usage: tests/run.sh [ctest arguments...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$root"
start=$(date +%s)
say() { printf 'tests/run.sh: %s\n' "$*"; }

deploy/local/install-deps.sh
# A state directory of this run's own: services.sh stops only what it records there, so a
# developer's stack (deploy/local/up.sh) is never stopped by a test run.
export SLUICE_STATE_DIR="$root/.run/test-state"
deploy/local/services.sh start
trap 'deploy/local/services.sh stop || true' EXIT
deploy/local/kafka.sh fetch

say "checking formatting (clang-format)"
mapfile -t sources < <(git ls-files -co --exclude-standard -- '*.c' '*.h')
clang-format --dry-run --Werror "${sources[@]}"

jobs=$(nproc)
kafka_port=${SLUICE_TEST_KAFKA_PORT:-19092}
for variant in build:Release:$kafka_port build-asan:Debug:$((kafka_port + 10)); do
    IFS=: read -r dir type port <<< "$variant"
    say "building $dir ($type)"
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DSLUICE_TEST_KAFKA_PORT="$port" > /dev/null
    cmake --build "$dir" -j "$jobs"
done

# LeakSanitizer stays on; UBSan prints a stack for every report.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# Most tests wait on brokers, processes and timeouts, not on the CPU: the two trees' suites
# run side by side, which nearly halves the wall time on two cores.
ctest_pids=()
for dir in build build-asan; do
    say "ctest in $dir"
    (ctest --test-dir "$dir" --output-on-failure -L 'unit|integration|e2e|fault|browser' "$@" 2>&1 |
        sed -u "s/^/[$dir] /") &
    ctest_pids+=($!)
done
ctest_failed=0
for pid in "${ctest_pids[@]}"; do
    wait "$pid" || ctest_failed=1
done
[ "$ctest_failed" = 0 ] || { say "ctest failed (the lines above name the tree)"; exit 1; }
if command -v clang > /dev/null; then
    say "fuzzing each harness for ${SLUICE_FUZZ_SECONDS:-5} s (build-fuzz/)"
    tests/fuzz/run.sh "${SLUICE_FUZZ_SECONDS:-5}"
else
    say "clang is not installed: no fuzzing (the fuzz inputs ran in ctest)"
fi
say "all tests passed in $(($(date +%s) - start)) s"
