#!/usr/bin/env bash
# bench/replay: the replay drill. How fast does a stage that was down catch up, and how fast
# does a stage rewound with `sluicectl replay --from` read its input again?
#
#   bench/replay/run.sh [--quick]
#
# The whole example pipeline runs on a private broker, Redis and PostgreSQL
# (tests/fault/pipeline.sh, as the fault matrix runs it) under a steady load of signed Stripe
# events from loadgen. Then:
#   steady   the load for WARM seconds: the stage keeps up; the steady rate is the accepted
#            events per second, and the largest lag seen is the stage's working lag;
#   restart  the stage is stopped (SIGTERM) for OUTAGE seconds while the load goes on, then
#            started again; measured: the backlog when it starts, the time from its start
#            until its group's lag is back at the working lag, and the catch-up rate, records
#            consumed per second meanwhile (the backlog plus what arrived);
#   rewind   the stage is stopped, its group rewound to where the outage began
#            (`sluicectl replay --stage STAGE --from TIME`), and started again: the same
#            figures, for records the pipeline has already processed once (downstream, dedup
#            and the delivery ledger make the second pass a no-op).
# The reference is the steady rate, measured in the same run: the ratio says how many times
# faster than the load a stage drains a backlog. Lag is the broker's view (`sluicectl lag`).
#
# Environment: SLUICE_BENCH_STAGE (transform; validate, transform or route),
# SLUICE_BENCH_RATE (200 events/s), SLUICE_BENCH_OUTAGE_S (180; --quick 20), SLUICE_BENCH_WARM_S
# (20; --quick 5), SLUICE_BENCH_BUILD (build, the Release tree). The test broker of that tree is
# used (started when not running, then stopped). Everything it starts it stops. Not part of
# tests/run.sh, except as the ctest replay_drill (--quick, label e2e), which checks that each
# phase gets back to the working lag and prints the figures without judging them.
set -uo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
here="$src/tests/fault"
build=${SLUICE_BENCH_BUILD:-${SLUICE_BINARY_DIR:-$src/build}}
case "$build" in /*) ;; *) build="$src/$build" ;; esac
bin="$build/bin"

say() { printf 'replay: %s\n' "$*" >&2; }
die() {
    say "$*"
    failed=1 # keeps the run directory (logs, data)
    exit 2
}

quick=0
case "${1:-}" in
--quick) quick=1 ;;
"") ;;
*) die "usage: bench/replay/run.sh [--quick]" ;;
esac
stage=${SLUICE_BENCH_STAGE:-transform}
rate=${SLUICE_BENCH_RATE:-200}
outage=${SLUICE_BENCH_OUTAGE_S:-$([ "$quick" = 1 ] && echo 20 || echo 180)}
warm=${SLUICE_BENCH_WARM_S:-$([ "$quick" = 1 ] && echo 5 || echo 20)}
case "$stage" in validate | transform | route) ;; *) die "SLUICE_BENCH_STAGE: validate, transform or route" ;; esac
CATCHUP_MAX_S=600 # bound of the wait for a phase to get back to the working lag

for tool in jq psql redis-server redis-cli curl; do
    command -v "$tool" > /dev/null || die "$tool is missing (deploy/local/install-deps.sh)"
done
for b in sluice-ingress sluice-validate sluice-transform sluice-route sluice-deliver \
    sluice-audit sluice-deadletter sluice-reconcile sluicectl destsim loadgen; do
    [ -x "$bin/$b" ] || die "$bin/$b is not built (cmake --build $build)"
done

BINARIES=(ingress validate transform route deliver audit deadletter reconcile)
READY_MAX_S=90
kind=replay seed=$$ keep=0
# shellcheck source=../../tests/fault/pipeline.sh
. "$here/pipeline.sh"

now_ms() { date +%s%3N; }
# The stage's group lag over all partitions, from the broker.
lag_now() {
    "$bin/sluicectl" --config "$conf" lag --stage "$stage" -o json 2>> "$logs/sluicectl.log" |
        jq '[.items[].lag] | add // 0'
}
accepted_now() { wc -l < "$run/accepted.txt"; }

# catch_up NAME: starts the stage, waits until its lag is back at the working lag and prints
# the phase's row; the backlog is the lag just before the start.
table=""
catch_up() {
    local name=$1 backlog t0 acc0 lag t1 acc1 secs rate_c
    backlog=$(lag_now)
    acc0=$(accepted_now)
    t0=$(now_ms)
    start_bin "$stage"
    while :; do
        lag=$(lag_now)
        [ -n "$lag" ] && [ "$lag" -le "$working_lag" ] && break
        [ $(($(now_ms) - t0)) -lt $((CATCHUP_MAX_S * 1000)) ] ||
            die "$name: the lag of $stage is still $lag after ${CATCHUP_MAX_S}s (see $logs)"
        supervise
        sleep 0.5
    done
    t1=$(now_ms)
    acc1=$(accepted_now)
    secs=$(awk -v ms=$((t1 - t0)) 'BEGIN { printf "%.1f", ms / 1000 }')
    # Consumed meanwhile: the backlog, what arrived, less what is still there.
    rate_c=$(awk -v b="$backlog" -v a=$((acc1 - acc0)) -v l="$lag" -v ms=$((t1 - t0)) \
        'BEGIN { printf "%.0f", (b + a - l) * 1000 / ms }')
    table+=$(printf '%-8s %9s %14s %16s %9s' "$name" "$backlog" "$secs" "$rate_c" \
        "$(awk -v c="$rate_c" -v s="$steady" 'BEGIN { printf "%.1f", c / s }')")$'\n'
    say "$name: backlog $backlog, back at the working lag after ${secs}s, $rate_c records/s"
}

say "pipeline up; steady load of $rate events/s, $stage stopped for ${outage}s"
: > "$run/accepted.txt"
"$bin/loadgen" --url "http://127.0.0.1:$http_port/v1/events/stripe" \
    --secret "$STRIPE_WEBHOOK_SECRET" --out "$run/accepted.txt" --rate "$rate" \
    --duration 86400 --count 100000000 --run-id "r$$" --invalid-every 0 \
    > "$logs/loadgen.txt" 2> "$logs/loadgen.err" &
loadgen_pid=$!

# steady: the accepted rate and the largest lag the running stage shows.
sleep 2
acc0=$(accepted_now) t0=$(now_ms) working_lag=0
while [ $(($(now_ms) - t0)) -lt $((warm * 1000)) ]; do
    lag=$(lag_now)
    [ -n "$lag" ] && [ "$lag" -gt "$working_lag" ] && working_lag=$lag
    sleep 0.5
done
steady=$(awk -v a=$(($(accepted_now) - acc0)) -v ms=$(($(now_ms) - t0)) \
    'BEGIN { printf "%.0f", a * 1000 / ms }')
[ "$steady" -gt 0 ] || die "no event was accepted in ${warm}s (see $logs)"
# A stage at rest between batches still shows the records of one batch window.
working_lag=$((working_lag > rate ? working_lag : rate))
say "steady: $steady events/s accepted, working lag of $stage up to $working_lag"

# restart: down for the outage, then started again.
outage_from=$(date -u +%Y-%m-%dT%H:%M:%SZ)
stop_bin "$stage" TERM
[ "$stop_rc" = 0 ] || die "$stage exited $stop_rc on SIGTERM"
sleep "$outage"
catch_up restart

# rewind: the group goes back to where the outage began; every record since is read again.
stop_bin "$stage" TERM
[ "$stop_rc" = 0 ] || die "$stage exited $stop_rc on SIGTERM"
# A transactional stage is a static member of its group: it stays a member after SIGTERM until
# its session times out, and replay refuses a group with members. Retry until then.
t0=$(now_ms)
until "$bin/sluicectl" --config "$conf" replay --stage "$stage" --from "$outage_from" \
    >> "$logs/sluicectl.log" 2>&1; do
    [ $(($(now_ms) - t0)) -lt 120000 ] || die "sluicectl replay failed for 120 s (see $logs/sluicectl.log)"
    sleep 2
done
catch_up rewind

kill -TERM "$loadgen_pid"
wait "$loadgen_pid"
loadgen_pid=""

echo
echo "replay drill: $stage stopped for ${outage}s under $steady events/s, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)"
printf '%-8s %9s %14s %16s %9s\n' phase backlog to_working_s catch_up_rec/s x_steady
printf '%s' "$table"
echo "backlog: records of the stage's input not yet consumed when it starts; to_working_s: from its"
echo "  start until its group's lag is back at the working lag ($working_lag, the most seen while it"
echo "  kept up); catch_up_rec/s: records consumed meanwhile per second; x_steady: that rate over"
echo "  the steady accepted rate ($steady events/s), measured in the same run"
