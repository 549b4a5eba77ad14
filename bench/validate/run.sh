#!/usr/bin/env bash
# bench/validate: events per second through sluice-validate, against the pass-through stage on
# the same loop and the same broker in the same run, and the JSON Schema validator alone on one
# core.
#
#   bench/validate/run.sh
#
# What it does: builds a Release tree; starts a private Kafka broker (deploy/local/kafka.sh on
# its own ports and run dir) and a private redis-server (no persistence); produces N Stripe-like
# charge.succeeded events (~1.1 KB, each its own business event) to <prefix>ingress once; then,
# RUNS times, lets each stage drain them from the beginning with a fresh consumer group:
#   passthrough        build/bin/sluice-passthrough: the loop's own cost (consume, transaction,
#                      audit record, produce)
#   validate           sluice-validate: parse, schemas/sources/stripe/charge.succeeded.json,
#                      one dedup claim in Redis per event
#   validate-nodedup   the same with `dedup: false`: the schema's cost alone on the loop
# A stage's time runs from its start to the moment the N-th output is visible to a
# read_committed consumer (the last transaction committed). Redis is flushed before each
# validate run, so every event is a first claim. Finally the validator alone: one payload,
# validated again and again on CPU 0 (taskset), with and without parsing.
# Medians of the runs are printed, with the ratio to the pass-through stage.
#
# Environment: SLUICE_BENCH_EVENTS (100000), SLUICE_BENCH_RUNS (3), SLUICE_BENCH_BUILD (build,
# the Release tree), SLUICE_BENCH_KAFKA_PORT (19592; the controller takes the next port),
# SLUICE_BENCH_REDIS_PORT (19594). Everything it starts it stops; the broker's data is deleted
# when it started the broker. Not part of tests/run.sh.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
events=${SLUICE_BENCH_EVENTS:-100000}
runs=${SLUICE_BENCH_RUNS:-3}
build=${SLUICE_BENCH_BUILD:-$root/build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
kport=${SLUICE_BENCH_KAFKA_PORT:-19592}
rport=${SLUICE_BENCH_REDIS_PORT:-19594}
brokers="127.0.0.1:$kport"
schema="$root/schemas/sources/stripe/charge.succeeded.json"
work=$(mktemp -d)
bin="$build/bin"

export SLUICE_KAFKA_PORT=$kport SLUICE_KAFKA_CONTROLLER_PORT=$((kport + 1))
export SLUICE_KAFKA_RUN_DIR="$build/bench-kafka"

say() { echo "bench/validate: $*" >&2; }
die() {
    say "$*"
    exit 1
}

started_kafka=0
redis_pid=
stage_pid=
drain_pid=
cleanup() {
    for pid in $stage_pid $drain_pid $redis_pid; do
        kill "$pid" 2> /dev/null || true
        wait "$pid" 2> /dev/null || true
    done
    if [ "$started_kafka" = 1 ]; then
        "$root/deploy/local/kafka.sh" reset > /dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# ---- build ----
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release > "$work/cmake.log" ||
        { cat "$work/cmake.log"; die "configure failed"; }
fi
grep -q "CMAKE_BUILD_TYPE:STRING=Release" "$build/CMakeCache.txt" ||
    die "$build is not a Release tree (set SLUICE_BENCH_BUILD)"
cmake --build "$build" -j"$(nproc)" --target sluice-validate sluice-passthrough sluicectl \
    bench-validate > "$work/build.log" || { tail -50 "$work/build.log"; die "build failed"; }

# ---- services ----
if ! "$root/deploy/local/kafka.sh" status > /dev/null 2>&1; then
    "$root/deploy/local/kafka.sh" start >&2
    started_kafka=1
fi
command -v redis-server > /dev/null || die "redis-server is not installed (deploy/local/install-deps.sh)"
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
    > "$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 100); do
    redis-cli -p "$rport" PING 2> /dev/null | grep -q PONG && break
    sleep 0.1
done
redis-cli -p "$rport" PING 2> /dev/null | grep -q PONG || die "redis-server did not start"

prefix="bench-$(date +%s)."
pipeline() { # file, dedup (true|false)
    cat > "$1" << EOF
kafka: { brokers: "$brokers", topic_prefix: "$prefix", partitions: 3 }
redis: { url: "redis://127.0.0.1:$rport/0" }
schema_dir: "$root/schemas"
sources:
  stripe:
    verify: { scheme: none }
    schemas:
      charge.succeeded: sources/stripe/charge.succeeded.json
      "*": sources/stripe/event.json
    dedup: $2
EOF
}
pipeline "$work/dedup.yaml" true
pipeline "$work/nodedup.yaml" false
"$bin/sluicectl" --config "$work/dedup.yaml" topics create > /dev/null
say "producing $events events to ${prefix}ingress"
"$bin/bench-validate" produce "$brokers" "${prefix}ingress" "$events" >&2

# ---- the stages ----
# Runs one stage until the N-th output is committed; appends "total_eps steady_eps cpu_us" to
# $work/<name>.
measure() { # name, run, binary, config, output topic
    local name=$1 run=$2 binary=$3 config=$4 topic=$5
    if [ "$name" != passthrough ]; then
        redis-cli -p "$rport" FLUSHALL > /dev/null
    fi
    "$bin/bench-validate" drain "$brokers" "$topic" 3 "$events" > "$work/drain.out" \
        2> "$work/drain.err" &
    drain_pid=$!
    for _ in $(seq 300); do
        grep -q ready "$work/drain.err" && break
        sleep 0.1
    done
    local t0
    t0=$(date +%s%3N)
    SLUICE_PASSTHROUGH_OUTPUT=normalized "$bin/$binary" --config "$config" \
        --group "bench-$name-$run-$$" --admin-listen "127.0.0.1:$((kport + 3))" \
        >> "$work/$name.log" 2>&1 &
    stage_pid=$!
    wait "$drain_pid" || { cat "$work/drain.err"; tail -20 "$work/$name.log"; die "$name: drain failed"; }
    drain_pid=
    # utime + stime of the stage, in clock ticks, before it is stopped.
    local ticks
    ticks=$(awk '{print $14 + $15}' "/proc/$stage_pid/stat")
    kill -TERM "$stage_pid"
    wait "$stage_pid" || die "$name: the stage did not stop cleanly (see its log)"
    stage_pid=
    read -r first last _ < "$work/drain.out"
    awk -v n="$events" -v t0="$t0" -v first="$first" -v last="$last" -v ticks="$ticks" \
        -v hz="$(getconf CLK_TCK)" 'BEGIN {
            printf "%.0f %.0f %.1f\n", n * 1000 / (last - t0),
                (n - 1) * 1000 / (last > first ? last - first : 1), ticks / hz * 1e6 / n }' \
        >> "$work/$name"
    say "run $run $name: $(tail -1 "$work/$name") (events/s from start, first->last, CPU us/event)"
}

for run in $(seq "$runs"); do
    measure passthrough "$run" sluice-passthrough "$work/dedup.yaml" "${prefix}normalized"
    measure validate "$run" sluice-validate "$work/dedup.yaml" "${prefix}validated"
    measure validate-nodedup "$run" sluice-validate "$work/nodedup.yaml" "${prefix}validated"
done

median() { # file, column
    sort -n -k"$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'
}

read -r bytes validate_only parse_validate < <(taskset -c 0 "$bin/bench-validate" validator \
    "$schema" 3)

pt=$(median "$work/passthrough" 1)
echo
echo "sluice-validate benchmark: $events events of ~$bytes bytes, $runs runs (medians), $(nproc) CPUs"
echo "broker, Redis, stage and reader on the same host"
printf '%-34s %12s %12s %10s %8s\n' stage "events/s" "steady/s" "CPU us/ev" "vs pt"
for name in passthrough validate validate-nodedup; do
    total=$(median "$work/$name" 1)
    printf '%-34s %12s %12s %10s %7.2fx\n' "$name" "$total" "$(median "$work/$name" 2)" \
        "$(median "$work/$name" 3)" "$(awk -v a="$total" -v b="$pt" 'BEGIN { print a / b }')"
done
echo
echo "validator alone, one core (schemas/sources/stripe/charge.succeeded.json, $bytes-byte payload):"
printf '  %s instances/s validated (parsed once)\n' "$validate_only"
printf '  %s instances/s parsed + validated (what the stage does per event)\n' "$parse_validate"
