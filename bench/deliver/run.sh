#!/usr/bin/env bash
# The sluice-deliver benchmark, with its reference measured in the same run (bench-deliver's
# header says what is measured and how):
#
#   sink answering at once:   a plain libcurl multi client (one thread, N requests in flight)
#                             against sluice-deliver with 1, 2 and 4 processes, each with N in
#                             flight; ratio = deliveries/s over the client's req/s
#   sink answering in 50 ms:  one sluice-deliver process at concurrency 16, 64 and 256 against
#                             the client at the same concurrency and the ideal concurrency/50 ms
#
#   bench/deliver/run.sh [--events N] [--concurrency N] [--partitions N] [--client-seconds S]
#
# Everything runs on this machine and shares its cores: the sink, the client, the deliver
# processes, a private Kafka broker (deploy/local/kafka.sh on 127.0.0.1:39192/39193, data in a
# temporary directory) and Redis (started by deploy/local/services.sh when it does not answer;
# stopped again only if this script started it). Every process this script starts is stopped by
# its pid on exit. Environment: SLUICE_BENCH_BUILD (build-bench), the Release tree to build and
# run. Not part of tests/run.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
SLUICE_LOG_TAG=bench/deliver
# shellcheck source-path=SCRIPTDIR source=../../deploy/local/lib.sh
. "$here/../../deploy/local/lib.sh"

args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --events | --concurrency | --partitions | --client-seconds) args+=("$1" "$2"); shift 2 ;;
        *) die "usage: $0 [--events N] [--concurrency N] [--partitions N] [--client-seconds S]" ;;
    esac
done

KAFKA_PORT=39192
build="${SLUICE_BENCH_BUILD:-$SLUICE_ROOT/build-bench}"
case "$build" in /*) ;; *) build="$SLUICE_ROOT/$build" ;; esac
need_cmd cmake java

say "building sluice-deliver and the bench tools (Release) in $build"
cmake -S "$SLUICE_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)" --target sluice-deliver bench-deliver bench-deliver-sink \
    >/dev/null

work="$(mktemp -d /tmp/sluice-bench-deliver.XXXXXX)"
kafka_env=(SLUICE_KAFKA_PORT=$KAFKA_PORT SLUICE_KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
    SLUICE_KAFKA_RUN_DIR="$work/kafka")
cleanup() {
    env "${kafka_env[@]}" "$SLUICE_ROOT/deploy/local/kafka.sh" stop >/dev/null 2>&1 || true
    SLUICE_STATE_DIR="$work/state" "$SLUICE_ROOT/deploy/local/services.sh" stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

say "starting Redis (if it is not running) and a private Kafka broker on 127.0.0.1:$KAFKA_PORT"
SLUICE_STATE_DIR="$work/state" "$SLUICE_ROOT/deploy/local/services.sh" start >/dev/null
env "${kafka_env[@]}" "$SLUICE_ROOT/deploy/local/kafka.sh" start >/dev/null

say "$(uname -m), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
"$build/bin/bench-deliver" --bin "$build/bin" --brokers "127.0.0.1:$KAFKA_PORT" --work "$work" \
    "${args[@]}"
