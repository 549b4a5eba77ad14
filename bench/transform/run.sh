#!/usr/bin/env bash
# bench/transform: events per second through sluice-transform (the example mappings) and
# sluice-route (ten rules), each against the pass-through stage on the same loop and the same
# broker in the same run; then the transform stage's process() alone, and jq evaluations alone
# (bench/expr).
#
#   bench/transform/run.sh
#
# What it does: builds a Release tree; starts a private Kafka broker (deploy/local/kafka.sh on
# its own ports and run dir) and a private redis-server (no persistence) holding the one key the
# example's GitHub rule looks up; produces N events once to each stage's input:
#   <prefix>validated    the four example mappings' input fixtures (tests/data/transform) in
#                        turn: Stripe charge and refund, CRM contact, GitHub push (whose rule
#                        does an HGET in Redis), each with its own id
#   <rprefix>normalized  their expected outputs, for route
# then, RUNS times, lets each stage drain its input from the beginning with a fresh group:
#   transform-passthrough  build/bin/sluice-passthrough as "transform" (its loop settings,
#                          validated -> normalized): the loop's own cost
#   transform              sluice-transform with deploy/examples/pipeline.yaml, unchanged
#   route-passthrough      sluice-passthrough as "route" (normalized -> deliver.sink)
#   route                  sluice-route with ten rules (below); each event matches several, all
#                          naming the one destination `sink`, so it leaves once: every rule's
#                          `when` is evaluated for every event, the output count stays N
# A stage's time runs from its start to the moment the N-th output is visible to a
# read_committed consumer (the last transaction committed). Finally, on one core: the transform
# stage's process() alone (in-process, no Kafka; Redis for the GitHub lookup), and
# bench/expr's jq figures for the example pipeline.
# Medians of the runs are printed, with the ratio to the pass-through stage of the same run set.
#
# Environment: SLUICE_BENCH_EVENTS (40000), SLUICE_BENCH_RUNS (3), SLUICE_BENCH_BUILD (build,
# the Release tree), SLUICE_BENCH_KAFKA_PORT (19692; the controller takes the next port),
# SLUICE_BENCH_REDIS_PORT (19694). Everything it starts it stops; the broker's data is deleted
# when it started the broker. Not part of tests/run.sh.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
events=${SLUICE_BENCH_EVENTS:-40000}
runs=${SLUICE_BENCH_RUNS:-3}
build=${SLUICE_BENCH_BUILD:-$root/build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
kport=${SLUICE_BENCH_KAFKA_PORT:-19692}
rport=${SLUICE_BENCH_REDIS_PORT:-19694}
brokers="127.0.0.1:$kport"
fixtures="$root/tests/data/transform"
example="$root/deploy/examples/pipeline.yaml"
partitions=6 # the example's kafka.partitions; the route pipeline below uses the same
work=$(mktemp -d)
bin="$build/bin"

export SLUICE_KAFKA_PORT=$kport SLUICE_KAFKA_CONTROLLER_PORT=$((kport + 1))
export SLUICE_KAFKA_RUN_DIR="$build/bench-kafka-transform"

say() { echo "bench/transform: $*" >&2; }
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
cmake --build "$build" -j"$(nproc)" --target sluice-transform sluice-route sluice-passthrough \
    sluicectl bench-transform bench-expr > "$work/build.log" ||
    { tail -50 "$work/build.log"; die "build failed"; }

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
redis-cli -p "$rport" PING 2> /dev/null | grep -q PONG || { cat "$work/redis.log"; die "redis-server did not start"; }
redis-cli -p "$rport" HSET repo-owners octo-org/hello-world platform > /dev/null

# The example pipeline reads its connections and topic prefix from the environment.
stamp=$(date +%s)
prefix="bench-transform-$stamp."
rprefix="bench-route-$stamp."
export SLUICE_KAFKA_BROKERS=$brokers SLUICE_REDIS_URL="redis://127.0.0.1:$rport/0"
export SLUICE_TOPIC_PREFIX=$prefix
cat > "$work/route.yaml" << EOF
kafka: { brokers: "$brokers", topic_prefix: "$rprefix", partitions: $partitions }
destinations:
  sink: { url: "http://127.0.0.1:9/sink" }
routes:
  - { name: payments, when: '.type | startswith("payment.")', to: sink }
  - { name: large-payments, when: '.type == "payment.succeeded" and .data.amount_minor >= 100000', to: sink }
  - { name: refunds, when: '.type == "payment.refunded"', to: sink }
  - { name: euro, when: '.data.currency? == "EUR"', to: sink }
  - { name: contacts, when: '.type == "contact.updated"', to: sink }
  - { name: company-contacts, when: '.type == "contact.updated" and (.data.email | endswith("@example.com"))', to: sink }
  - { name: code, when: '.type == "code.pushed"', to: sink }
  - { name: main-branch, when: '.type == "code.pushed" and .data.ref_name == "main"', to: sink }
  - { name: from-crm, when: '.sluicesource == "crm"', to: sink }
  - { name: everything, when: 'true', to: sink }
EOF
"$bin/sluicectl" --config "$example" topics create > /dev/null
"$bin/sluicectl" --config "$work/route.yaml" topics create > /dev/null
say "producing $events events to ${prefix}validated and ${rprefix}normalized"
"$bin/bench-transform" produce "$brokers" "${prefix}validated" "$events" "$fixtures" input >&2
"$bin/bench-transform" produce "$brokers" "${rprefix}normalized" "$events" "$fixtures" expected >&2

# ---- the stages ----
# Runs one stage until the N-th output is committed; appends "total_eps steady_eps cpu_us" to
# $work/<name>. The pass-through stands in for the stage it is compared with (its name, group
# and loop settings), on the same topics.
measure() { # name, run, binary, config, topic prefix, input, output (unprefixed), as
    local name=$1 run=$2 binary=$3 config=$4 input=$6 output=$7 as=$8
    local topic=$5$output
    "$bin/bench-transform" drain "$brokers" "$topic" "$partitions" "$events" > "$work/drain.out" \
        2> "$work/drain.err" &
    drain_pid=$!
    for _ in $(seq 300); do
        grep -q ready "$work/drain.err" && break
        sleep 0.1
    done
    local t0
    t0=$(date +%s%3N)
    SLUICE_PASSTHROUGH_AS=$as SLUICE_PASSTHROUGH_INPUT=$input SLUICE_PASSTHROUGH_OUTPUT=$output \
        "$bin/$binary" --config "$config" --group "bench-$name-$run-$$" \
        --admin-listen "127.0.0.1:$((kport + 3))" >> "$work/$name.log" 2>&1 &
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
    measure transform-passthrough "$run" sluice-passthrough "$example" "$prefix" validated \
        normalized transform
    measure transform "$run" sluice-transform "$example" "$prefix" validated normalized transform
    measure route-passthrough "$run" sluice-passthrough "$work/route.yaml" "$rprefix" normalized \
        deliver.sink route
    measure route "$run" sluice-route "$work/route.yaml" "$rprefix" normalized deliver.sink route
done

median() { # file, column
    sort -n -k"$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'
}

# ---- without Kafka, one core ----
read -r process_eps process_us < <(taskset -c 0 "$bin/bench-transform" process "$example" \
    "$fixtures" 3)
# bench/expr wraps its event without the `sluicesource` attribute that sluice-ingress sets, which
# the example's rules test; for a plain webhook `source` is the same name, so it gets a copy of
# the example that tests that instead.
sed 's/\.sluicesource ==/.source ==/' "$example" > "$work/expr-pipeline.yaml"
taskset -c 0 "$bin/bench-expr" "$work/expr-pipeline.yaml" "$root/bench/expr/charge.succeeded.json" \
    1 1 > "$work/expr.out"

echo
echo "sluice-transform / sluice-route benchmark: $events events, $runs runs (medians), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
echo "broker, Redis, stage and reader on the same host; input: the four example mappings in turn"
printf '%-24s %12s %12s %10s %8s\n' stage "events/s" "steady/s" "CPU us/ev" "vs pt"
for pair in transform route; do
    pt=$(median "$work/$pair-passthrough" 1)
    for name in "$pair-passthrough" "$pair"; do
        total=$(median "$work/$name" 1)
        printf '%-24s %12s %12s %10s %7.2fx\n' "$name" "$total" "$(median "$work/$name" 2)" \
            "$(median "$work/$name" 3)" "$(awk -v a="$total" -v b="$pt" 'BEGIN { print a / b }')"
    done
done
echo
echo "transform process() alone, one core (example mappings in turn, Redis HGET for GitHub):"
printf '  %s events per CPU-second, %s CPU us/event\n' "$process_eps" "$process_us"
echo
echo "jq alone (bench/expr, one core, the example pipeline on a Stripe charge.succeeded):"
sed 's/^/  /' "$work/expr.out"
