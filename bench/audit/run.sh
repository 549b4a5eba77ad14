#!/usr/bin/env bash
# bench/audit: audit rows per second that sluice-audit writes into PostgreSQL, against plain
# COPY of the same rows into the same table in the same run.
#
#   bench/audit/run.sh
#
# What it does: builds a Release tree; starts a private Kafka broker (deploy/local/kafka.sh on
# its own ports and run directory); makes a schema of its own in the test database and applies
# the migrations there (sluicectl db migrate); produces N audit records to <prefix>audit once
# (bench-audit: those of N/5 events through the whole pipeline, validate, transform, route to
# two destinations, one delivery to each, ~320 bytes each). Then, RUNS times, on emptied tables:
#   sluice-audit   a fresh consumer group drains the topic into `audit` as it always writes
#                  (the guard's locks and check, COPY straight in or through the staging table,
#                  the days' partitions) and keeps event_status (2 rows per event, from 4 that
#                  the records imply), in one transaction per batch; timed from the start of the
#                  process, and from its first written batch, to the moment its metrics count N
#                  rows inserted;
#   plain COPY     the very rows it wrote (exported with \copy ... TO, untimed) copied into the
#                  emptied `audit` table by psql \copy ... FROM in one transaction: no Kafka, no
#                  JSON, no guard, no event_status.
# Medians of the runs are printed, and the ratio of the worker's steady rate to plain COPY.
#
# Environment: SLUICE_BENCH_RECORDS (500000), SLUICE_BENCH_RUNS (3), SLUICE_BENCH_BUILD (build,
# the Release tree), SLUICE_BENCH_KAFKA_PORT (19796; the controller takes the next port, the
# worker's admin listener the one after), SLUICE_BENCH_PG_DSN (the test database,
# postgresql://sluice:sluice@127.0.0.1:5432/sluice_test), SLUICE_BENCH_BATCH (the worker's
# audit.loop.batch_max_events, 10000: large batches are how sluice-audit is meant to run).
# Everything it starts it stops; its schema is dropped and the broker's data deleted when it
# started the broker. Not part of tests/run.sh.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
records=${SLUICE_BENCH_RECORDS:-500000}
records=$((records / 5 * 5))
runs=${SLUICE_BENCH_RUNS:-3}
build=${SLUICE_BENCH_BUILD:-$root/build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
kport=${SLUICE_BENCH_KAFKA_PORT:-19796}
aport=$((kport + 2))
brokers="127.0.0.1:$kport"
base_dsn=${SLUICE_BENCH_PG_DSN:-postgresql://sluice:sluice@127.0.0.1:5432/sluice_test}
batch=${SLUICE_BENCH_BATCH:-10000}
work=$(mktemp -d)
bin="$build/bin"
columns="at, event_id, stage, outcome, reason, errors, source, type, destination, attempt, \
status, latency_ms, seconds, outputs, detail, topic, partition, kafka_offset, audit_topic, \
audit_partition, audit_offset"

export SLUICE_KAFKA_PORT=$kport SLUICE_KAFKA_CONTROLLER_PORT=$((kport + 1))
export SLUICE_KAFKA_RUN_DIR="$build/bench-audit-kafka"

say() { echo "bench/audit: $*" >&2; }
die() {
    say "$*"
    exit 1
}

started_kafka=0
worker_pid=
schema=
cleanup() {
    if [ -n "$worker_pid" ]; then
        kill "$worker_pid" 2> /dev/null || true
        wait "$worker_pid" 2> /dev/null || true
    fi
    if [ -n "$schema" ]; then
        psql -q "$base_dsn" -c "DROP SCHEMA IF EXISTS $schema CASCADE" > /dev/null 2>&1 || true
    fi
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
cmake --build "$build" -j"$(nproc)" --target sluice-audit sluicectl bench-audit \
    > "$work/build.log" || { tail -50 "$work/build.log"; die "build failed"; }

# ---- services ----
if ! "$root/deploy/local/kafka.sh" status > /dev/null 2>&1; then
    "$root/deploy/local/kafka.sh" start >&2
    started_kafka=1
fi
psql -q "$base_dsn" -c "SELECT 1" > /dev/null || die "PostgreSQL does not answer at $base_dsn"
schema="bench_audit_$(date +%s)_$$"
psql -q "$base_dsn" -c "CREATE SCHEMA $schema" > /dev/null
case "$base_dsn" in *\?*) sep='&' ;; *) sep='?' ;; esac
dsn="$base_dsn${sep}options=-csearch_path%3D$schema"

prefix="bench-audit-$(date +%s)."
cat > "$work/pipeline.yaml" << EOF
kafka: { brokers: "$brokers", topic_prefix: "$prefix", partitions: 6 }
postgres: { dsn: "$dsn" }
EOF
echo "audit: { loop: { batch_max_events: $batch } }" >> "$work/pipeline.yaml"
"$bin/sluicectl" --config "$work/pipeline.yaml" topics create > /dev/null
"$bin/sluicectl" --config "$work/pipeline.yaml" db migrate > /dev/null
say "producing $records audit records to ${prefix}audit"
# Its last line is the summary (librdkafka may log before it).
read -r _ _ _ bytes _ < <("$bin/bench-audit" produce "$brokers" "${prefix}audit" "$records" |
    tail -1)

# The worker's count of inserted rows (0 before its first batch).
inserted() {
    { curl -s "http://127.0.0.1:$aport/metrics" 2> /dev/null || true; } |
        awk '/^sluice_audit_rows_total\{result="inserted"\} / { v = $2 } END { print v + 0 }'
}

# ---- the runs ----
for run in $(seq "$runs"); do
    psql -q "$dsn" -c "TRUNCATE audit, event_status" > /dev/null
    t0=$(date +%s%3N)
    "$bin/sluice-audit" --config "$work/pipeline.yaml" --group "bench-audit-$run-$$" \
        --admin-listen "127.0.0.1:$aport" >> "$work/worker.log" 2>&1 &
    worker_pid=$!
    first=
    while :; do
        n=$(inserted)
        now=$(date +%s%3N)
        [ -z "$first" ] && [ "$n" -gt 0 ] && first=$now
        [ "$n" -ge "$records" ] && break
        kill -0 "$worker_pid" 2> /dev/null || { tail -20 "$work/worker.log"; die "the worker died"; }
        [ $((now - t0)) -lt 600000 ] || die "the worker did not finish within 10 minutes"
        sleep 0.02
    done
    last=$now
    ticks=$(awk '{print $14 + $15}' "/proc/$worker_pid/stat")
    batches=$(curl -s "http://127.0.0.1:$aport/metrics" |
        awk '/^sluice_audit_batch_rows_count / { print $2 }')
    kill -TERM "$worker_pid"
    wait "$worker_pid" || die "the worker did not stop cleanly (see $work/worker.log)"
    worker_pid=
    [ "$(psql -qtA "$dsn" -c "SELECT count(*) FROM audit")" = "$records" ] ||
        die "the table does not hold $records rows"
    status_rows=$(psql -qtA "$dsn" -c "SELECT count(*) FROM event_status")

    # The same rows, plain COPY into the same (emptied) table.
    psql -q "$dsn" -c "\\copy (SELECT $columns FROM audit) TO '$work/rows.tsv'"
    psql -q "$dsn" -c "TRUNCATE audit, event_status" > /dev/null
    c0=$(date +%s%3N)
    psql -q "$dsn" -c "\\copy audit ($columns) FROM '$work/rows.tsv'"
    c1=$(date +%s%3N)
    [ "$(psql -qtA "$dsn" -c "SELECT count(*) FROM audit")" = "$records" ] ||
        die "plain COPY did not store $records rows"

    awk -v n="$records" -v t0="$t0" -v first="$first" -v last="$last" -v c0="$c0" -v c1="$c1" \
        -v ticks="$ticks" -v hz="$(getconf CLK_TCK)" -v b="$batches" 'BEGIN {
            printf "%.0f %.0f %.0f %.2f %.0f\n", n * 1000 / (last - t0),
                n * 1000 / (last > first ? last - first : 1), n * 1000 / (c1 > c0 ? c1 - c0 : 1),
                ticks / hz * 1e6 / n, n / (b > 0 ? b : 1) }' >> "$work/results"
    say "run $run: $(tail -1 "$work/results") (worker rows/s from start, steady; plain COPY" \
        "rows/s; worker CPU us/row; rows/batch); event_status rows: $status_rows"
done

median() { # column
    sort -n -k"$1" "$work/results" | awk -v c="$1" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'
}
total=$(median 1) steady=$(median 2) copy=$(median 3) cpu=$(median 4) per_batch=$(median 5)

echo
echo "sluice-audit benchmark: $records audit records of ~$bytes bytes (5 per event), $runs runs" \
    "(medians), $(nproc) CPUs; broker, PostgreSQL and worker on the same host"
printf '%-44s %12s\n' "" "rows/s"
printf '%-44s %12s\n' "sluice-audit, from process start" "$total"
printf '%-44s %12s\n' "sluice-audit, steady (first batch -> last)" "$steady"
printf '%-44s %12s\n' "plain COPY of the same rows (psql \\copy)" "$copy"
printf '%-44s %11.2fx\n' "sluice-audit steady / plain COPY" \
    "$(awk -v a="$steady" -v b="$copy" 'BEGIN { print a / b }')"
echo "worker CPU: $cpu us per row; $per_batch rows per batch (batch_max_events $batch); 0.4" \
    "event_status rows per audit row written in the same transactions"
