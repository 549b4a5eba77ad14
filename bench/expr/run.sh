#!/usr/bin/env bash
# bench/expr: jq evaluations per second through sl_expr (libjq 1.6) for the `when` predicates
# and `jq` mappings of the example pipeline, on a ~1 KB Stripe-like charge.succeeded event.
#
#   bench/expr/run.sh [PIPELINE] [EVENT_JSON]
#
# Defaults: deploy/examples/pipeline.yaml and bench/expr/charge.succeeded.json. Builds the
# Release tree, then runs build/bin/bench-expr once. References measured in the same run:
# building the event JSON, the trivial expression `true` (input conversion plus a jq run: the
# floor of every evaluation) and a json_dumps + jv_parse round trip (the alternative to walking
# jansson into jv).
#
# Environment: SLUICE_BENCH_BUILD (build, the Release tree), SLUICE_BENCH_SECONDS (1 per row),
# SLUICE_BENCH_THREADS (the online CPUs). Needs no broker and starts nothing. Not part of
# tests/run.sh.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
pipeline=${1:-$root/deploy/examples/pipeline.yaml}
event=${2:-$root/bench/expr/charge.succeeded.json}
build=${SLUICE_BENCH_BUILD:-$root/build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
seconds=${SLUICE_BENCH_SECONDS:-1}
threads=${SLUICE_BENCH_THREADS:-$(nproc)}

echo "bench/expr: building $build (Release)" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$build" --target bench-expr -j "$(nproc)" > /dev/null

echo "bench/expr: $(uname -m), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
exec "$build/bin/bench-expr" "$pipeline" "$event" "$seconds" "$threads"
