#!/usr/bin/env bash
# Fuzzes every harness of tests/fuzz for a while and prints what each did, as a table:
# executions, executions per second, coverage (libFuzzer's cov: edges and ft: features), the
# size of the corpus it ended with, and whether it found something.
#
#   tests/fuzz/run.sh [SECONDS [HARNESS...]]     (default 5 seconds each, every harness)
#
# Builds build-fuzz/ (or $SLUICE_FUZZ_BUILD_DIR) with clang and -DSLUICE_FUZZ=ON first. Each
# harness starts from its committed corpus and regression inputs (read only) plus a working
# corpus of its own under <build>/fuzz-work/<harness>/, kept between runs so that longer runs
# build on shorter ones. A crash, leak or timeout leaves its input as
# <build>/fuzz-work/<harness>-crash-* (libFuzzer's artifact): copy it into
# tests/fuzz/regressions/<harness>/ with the fix. Exits 1 when any harness found something.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
cd "$root"
say() { printf 'tests/fuzz/run.sh: %s\n' "$*" >&2; }

seconds=${1:-5}
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { say "usage: $0 [SECONDS [HARNESS...]]"; exit 2; }
shift $(($# > 0 ? 1 : 0))
build=${SLUICE_FUZZ_BUILD_DIR:-$root/build-fuzz}

command -v clang > /dev/null || { say "clang is missing (deploy/local/install-deps.sh)"; exit 2; }
say "building $build (clang, SLUICE_FUZZ=ON)"
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DSLUICE_FUZZ=ON \
    -DSLUICE_TEST_KAFKA_PORT="${SLUICE_TEST_KAFKA_PORT:-19092}" > /dev/null
cmake --build "$build" --target sluice_fuzz -j "$(nproc)" > /dev/null

if [ $# -eq 0 ]; then
    mapfile -t harnesses < <(cd tests/fuzz/corpus && ls)
else
    harnesses=("$@")
fi

# Leaks are bugs here too; UBSan stops at the first report, with a stack.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
work="$build/fuzz-work"
mkdir -p "$work"
failed=0
printf '%-20s %8s %12s %9s %7s %8s %7s  %s\n' harness seconds execs exec/s cov ft corpus result
for h in "${harnesses[@]}"; do
    bin="$build/fuzz/fuzz_$h"
    [ -x "$bin" ] || { say "no harness $h ($bin)"; exit 2; }
    mkdir -p "$work/$h"
    inputs=("$work/$h" "tests/fuzz/corpus/$h")
    [ -d "tests/fuzz/regressions/$h" ] && inputs+=("tests/fuzz/regressions/$h")
    log="$work/$h.log"
    result=ok
    # -timeout: one input running longer is a hang; -rss_limit_mb bounds a runaway allocation.
    if ! "$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=25 -rss_limit_mb=2048 \
        -artifact_prefix="$work/$h-" "${inputs[@]}" > "$log" 2>&1; then
        why=$(grep -m1 -oE 'ERROR: [A-Za-z]+: [a-z-]+|fuzz: .*|runtime error: .*' "$log" ||
            echo "see the log")
        result="FOUND: $why ($log)"
        failed=1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    # The last status line: "#123 DONE cov: 456 ft: 789 corp: 12/345b ...".
    status=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$status")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$status")
    corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<< "$status")
    printf '%-20s %8s %12s %9s %7s %8s %7s  %s\n' "$h" "$seconds" "${execs:--}" "${rate:--}" \
        "${cov:--}" "${ft:--}" "${corp:--}" "$result"
done
exit "$failed"
