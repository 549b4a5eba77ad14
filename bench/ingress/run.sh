#!/usr/bin/env bash
# The sluice-ingress benchmark, with both of its references measured in the same run:
#
#   (a) HTTP   nginx answering 202 from a `return` directive, to the same wrk load
#   (b) Kafka  bench-ingress-producer: the same records through the same acks=all idempotent
#              producer, open loop (its capacity, as rdkafka_performance measures it) and closed
#              loop with as many in flight as wrk has connections
#   (c) sluice-ingress, with its broker on this machine
#
# wrk posts a ~1 KB Stripe-signed JSON webhook. The targets run in --runs rounds, (a), (b), (c)
# back to back. For each, the median run by req/s is printed with its p50/p99/p99.9, then the
# ratio of (c) to the combined limit 1/(1/a + 1/b), b being the better producer figure
# (target: >= 0.7), and the RSS of sluice-ingress while wrk holds 1,000 open connections
# (target: < 64 MB). --profile adds a perf (cpu-clock) profile of sluice-ingress.
#
# Everything runs on this machine and shares its cores (wrk, nginx or sluice-ingress, the
# broker): see reliability-and-performance.md B4. The broker is a private one (deploy/local/
# kafka.sh on ports 39092/39093, data in a temporary directory); every process this script
# starts is stopped by its pid on exit.
#
#   bench/ingress/run.sh [--duration SECONDS] [--connections N] [--threads N] [--runs N]
#                        [--linger MS] [--profile]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
SLUICE_LOG_TAG=bench/ingress # the prefix of lib.sh's messages
# shellcheck source-path=SCRIPTDIR source=../../deploy/local/lib.sh
. "$here/../../deploy/local/lib.sh"

duration=10 connections=512 threads=2 runs=3 linger=5 profile=0
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration="$2"; shift 2 ;;
        --connections) connections="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --linger) linger="$2"; shift 2 ;;
        --profile) profile=1; shift ;;
        *) die "usage: $0 [--duration S] [--connections N] [--threads N] [--runs N] [--linger MS] [--profile]" ;;
    esac
done

KAFKA_PORT=39092
HTTP_PORT=18080   # nginx
INGRESS_PORT=18081
SECRET="whsec_bench_$(openssl rand -hex 12)"

# ---- tools ----
if ! command -v wrk >/dev/null 2>&1; then
    say "installing wrk (Debian package)"
    as_root apt-get install -y -q wrk >/dev/null
fi
need_cmd wrk nginx openssl java kcat cmake
[ "$profile" = 0 ] || need_cmd perf

build="$SLUICE_ROOT/build-bench"
say "building sluice-ingress and bench-ingress-producer (Release) in $build"
cmake -S "$SLUICE_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)" --target sluice-ingress bench-ingress-producer >/dev/null

work="$(mktemp -d /tmp/sluice-bench-ingress.XXXXXX)"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    SLUICE_KAFKA_PORT=$KAFKA_PORT SLUICE_KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1)) \
        SLUICE_KAFKA_RUN_DIR="$work/kafka" "$SLUICE_ROOT/deploy/local/kafka.sh" stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
# wrk at 1,000 connections and the ingress serving them need more than 1,024 descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# ---- the request: a Stripe-like charge.succeeded event of about 1 KB, signed ----
description="$(head -c 330 /dev/zero | tr '\0' 'x')"
cat >"$work/body.json" <<EOF
{"id":"evt_3OqZ2bLkdIwHu7ix0J5Kf1Qx","object":"event","api_version":"2023-10-16","created":1700000000,"type":"charge.succeeded","livemode":false,"pending_webhooks":1,"request":{"id":"req_8fJ2kLmN0pQrSt","idempotency_key":"b7f4a1c2-3d4e-4f50-8a6b-7c8d9e0f1a2b"},"data":{"object":{"id":"ch_3OqZ2bLkdIwHu7ix0mYvXq9T","object":"charge","amount":12950,"amount_captured":12950,"currency":"eur","customer":"cus_42","description":"$description","paid":true,"captured":true,"status":"succeeded","payment_method":"pm_1OqZ2aLkdIwHu7ixW2s3","receipt_email":"jane.doe@example.com","metadata":{"order_id":"ord_100234","channel":"web"}}}}
EOF
body_len=$(stat -c %s "$work/body.json")
ts=$(date +%s)
sig=$( (printf '%s.' "$ts"; cat "$work/body.json") | openssl dgst -sha256 -hmac "$SECRET" | awk '{print $NF}')
cat >"$work/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Stripe-Signature"] = "t=$ts,v1=$sig"
local f = io.open("$work/body.json", "rb")
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT rate=%.0f p50_us=%d p99_us=%d p999_us=%d non2xx=%d errors=%d total=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), e.status, e.connect + e.read + e.write + e.timeout, summary.requests))
end
EOF

# Results: one line per run, "NAME rate p50_us p99_us p999_us non2xx errors cpu_us", cpu_us
# being the CPU time the serving side (server process, and the broker where Kafka is involved)
# spent per request. CPU time does not depend on what else the machine runs, req/s does.
CLK_TCK=$(getconf CLK_TCK)
ticks() { # PID...: their utime + stime, in clock ticks
    local pid sum=0
    for pid in "$@"; do
        sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$sum"
}
field() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" <<<" $1"; } # LINE KEY
record() { # NAME RESULT-LINE CPU-SECONDS
    local cpu_us
    cpu_us=$(awk -v s="$3" -v n="$(field "$2" total)" 'BEGIN { printf "%.1f", n ? s * 1e6 / n : 0 }')
    echo "$1 $(field "$2" rate) $(field "$2" p50_us) $(field "$2" p99_us) $(field "$2" p999_us)" \
        "$(field "$2" non2xx) $(field "$2" errors) $cpu_us" >>"$work/results"
    say "  round $round $1: rate=$(field "$2" rate)/s p50=$(field "$2" p50_us)us p99=$(field "$2" p99_us)us cpu=${cpu_us}us/req"
}
# run_wrk NAME URL PID...: one wrk run against URL, the CPU of PID... accounted to it.
run_wrk() {
    local name=$1 url=$2 t0 line
    shift 2
    t0=$(ticks "$@")
    line=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$work/post.lua" "$url" | grep '^RESULT')
    record "$name" "$line" "$(awk -v t="$(($(ticks "$@") - t0))" -v hz="$CLK_TCK" 'BEGIN { print t / hz }')"
}
# run_producer NAME WINDOW: one bench-ingress-producer run; its CPU and the broker's.
run_producer() {
    local t0 out cpu
    t0=$(ticks "$broker_pid")
    out=$(/usr/bin/time -f 'CPU %U %S' "$build/bin/bench-ingress-producer" --brokers "127.0.0.1:$KAFKA_PORT" \
        --topic bench.producer --body "$work/body.json" --window "$2" --duration "$duration" \
        --linger-ms "$linger" 2>&1)
    cpu=$(awk -v t="$(($(ticks "$broker_pid") - t0))" -v hz="$CLK_TCK" \
        '/^CPU/ { print $2 + $3 + t / hz }' <<<"$out")
    record "$1" "$(grep '^RESULT' <<<"$out") non2xx=0" "$cpu"
}
# median NAME: the run with the median rate, as "rate p50 p99 p999 non2xx errors cpu_us".
median() {
    grep "^$1 " "$work/results" | cut -d' ' -f2- | sort -n | awk '{a[NR]=$0} END {print a[int((NR + 1) / 2)]}'
}

# ---- the broker ----
say "starting a private Kafka broker on 127.0.0.1:$KAFKA_PORT"
SLUICE_KAFKA_PORT=$KAFKA_PORT SLUICE_KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1)) \
    SLUICE_KAFKA_RUN_DIR="$work/kafka" "$SLUICE_ROOT/deploy/local/kafka.sh" start >/dev/null

# ---- the three targets, all started before the first round ----
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  client_max_body_size 1m;
  client_body_temp_path $work/nginx;
  server {
    listen 127.0.0.1:$HTTP_PORT;
    location /v1/events/stripe {
      default_type application/json;
      return 202 '{"id":"01a20ea6-9e44-7cd5-b4a5-ba04f2da0971"}';
    }
  }
}
EOF
nginx -e stderr -p "$work/nginx" -c "$work/nginx/nginx.conf"
wait_for test -s "$work/nginx/nginx.pid" || die "nginx did not start"
nginx_pid=$(cat "$work/nginx/nginx.pid")
pids+=("$nginx_pid")

cat >"$work/pipeline.yaml" <<EOF
kafka:
  brokers: "127.0.0.1:$KAFKA_PORT"
  topic_prefix: "bench."
  partitions: 6
  linger: ${linger}ms
ingress:
  listen: "127.0.0.1:$INGRESS_PORT"
  max_connections: 2000
  max_connections_per_ip: 0 # wrk connects from one address
  threads: 2
sources:
  stripe:
    verify: { scheme: stripe, secret: "\${BENCH_STRIPE_SECRET}" }
    event_id: /id
    event_type: /type
    partition_key: /data/object/customer
EOF
"$build/bin/bench-ingress-producer" --brokers "127.0.0.1:$KAFKA_PORT" --topic bench.ingress \
    --body "$work/body.json" --create-only
BENCH_STRIPE_SECRET="$SECRET" "$build/bin/sluice-ingress" --config "$work/pipeline.yaml" \
    --admin-listen 127.0.0.1:0 >"$work/ingress.log" 2>&1 &
ingress_pid=$!
pids+=("$ingress_pid")
wait_for grep -q '"listening: ' "$work/ingress.log" || { cat "$work/ingress.log" >&2; die "sluice-ingress did not start"; }

# Rounds of (a), (b), (c) back to back, so that each round meets the same machine: the box is
# shared, and a load that comes and goes would otherwise favour whichever target ran alone.
nginx_worker=$(pgrep -P "$nginx_pid" | head -1)
broker_pid=$(cat "$work/kafka/kafka.pid")
say "$runs rounds of ${duration}s each: wrk -t$threads -c$connections, body $body_len bytes"
for round in $(seq 1 "$runs"); do
    run_wrk nginx "http://127.0.0.1:$HTTP_PORT/v1/events/stripe" "$nginx_worker"
    run_producer kafka-open 0
    run_producer kafka "$connections"
    run_wrk ingress "http://127.0.0.1:$INGRESS_PORT/v1/events/stripe" "$ingress_pid" "$broker_pid"
done

if [ "$profile" = 1 ]; then
    say "profiling sluice-ingress (perf record -e cpu-clock) over one more run"
    perf record -e cpu-clock -g -o "$work/perf.data" -p "$ingress_pid" -- sleep "$duration" \
        >/dev/null 2>&1 &
    perf_pid=$!
    wrk -t"$threads" -c"$connections" -d"${duration}s" -s "$work/post.lua" \
        "http://127.0.0.1:$INGRESS_PORT/v1/events/stripe" >/dev/null
    wait "$perf_pid" || true
    # By library, then the top symbols (self time). head ends the pipe early: not an error.
    { perf report -i "$work/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
        grep '%' | grep -v '^#' | head -8
      echo
      perf report -i "$work/perf.data" --stdio --no-children --sort dso,symbol -g none 2>/dev/null |
        grep '%' | grep -v '^#' | head -25; } >"$work/profile.txt" || true
fi

# RSS while 1,000 connections are open and busy.
say "RSS of sluice-ingress with 1,000 open connections"
rss_max=0
wrk -t"$threads" -c1000 -d"${duration}s" -s "$work/post.lua" \
    "http://127.0.0.1:$INGRESS_PORT/v1/events/stripe" >"$work/wrk1000.txt" &
wrk_pid=$!
while kill -0 "$wrk_pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$ingress_pid/status")
    [ "$rss" -gt "$rss_max" ] && rss_max=$rss
    sleep 0.2
done
wait "$wrk_pid" || true
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$ingress_pid/status")
c1000=$(grep '^RESULT' "$work/wrk1000.txt" || true)

kill -TERM "$ingress_pid"
wait "$ingress_pid" && stopped=0 || stopped=$?

# ---- report ----
read -r a_rate a_p50 a_p99 a_p999 a_non a_err a_cpu <<<"$(median nginx)"
read -r b_rate b_p50 b_p99 b_p999 _ _ b_cpu <<<"$(median kafka)"
read -r o_rate o_p50 o_p99 o_p999 _ _ o_cpu <<<"$(median kafka-open)"
read -r c_rate c_p50 c_p99 c_p999 c_non c_err c_cpu <<<"$(median ingress)"
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
row() { printf '%-26s %9s %8s %8s %9s %8s  %s\n' "$@"; }
echo
echo "sluice-ingress benchmark: $(nproc) CPUs, wrk -t$threads -c$connections -d${duration}s, body $body_len bytes, median of $runs rounds, linger ${linger}ms"
row target req/s p50_ms p99_ms p99.9_ms cpu_us notes
row "(a) nginx return 202" "$a_rate" "$(ms "$a_p50")" "$(ms "$a_p99")" "$(ms "$a_p999")" "$a_cpu" "non-2xx $a_non, errors $a_err; cpu: the nginx worker"
row "(b) librdkafka acks=all" "$b_rate" "$(ms "$b_p50")" "$(ms "$b_p99")" "$(ms "$b_p999")" "$b_cpu" "window $connections, like wrk; cpu: producer + broker"
row "    same, open loop" "$o_rate" "$(ms "$o_p50")" "$(ms "$o_p99")" "$(ms "$o_p999")" "$o_cpu" "capacity; its latency is queueing"
row "(c) sluice-ingress" "$c_rate" "$(ms "$c_p50")" "$(ms "$c_p99")" "$(ms "$c_p999")" "$c_cpu" "non-2xx $c_non, errors $c_err; cpu: sluice-ingress + broker"
# The Kafka reference is the better of the two producer figures: the stricter limit. The same
# ratio in CPU time per request does not move with the machine's other load.
awk -v a="$a_rate" -v b="$b_rate" -v o="$o_rate" -v c="$c_rate" -v ac="$a_cpu" -v bc="$b_cpu" \
    -v oc="$o_cpu" -v cc="$c_cpu" 'BEGIN {
    if (o > b) { b = o; bc = oc }
    limit = 1 / (1 / a + 1 / b)
    printf "combined limit 1/(1/a + 1/b) = %.0f req/s (b = %.0f); (c) / limit = %.2f (target >= 0.70)\n", limit, b, c / limit
    printf "in CPU per request: (a) + (b) = %.1f us, (c) = %.1f us; ratio %.2f\n", ac + bc, cc, (ac + bc) / cc }'
awk -v k="$rss_max" -v h="$hwm" 'BEGIN {
    printf "RSS of sluice-ingress at 1,000 connections: max %.1f MB sampled, %.1f MB peak (VmHWM) (target < 64 MB)\n", k / 1024, h / 1024 }'
echo "  wrk -c1000: $c1000"
echo "sluice-ingress stopped with status $stopped after SIGTERM"
if [ -s "$work/profile.txt" ]; then
    echo
    echo "sluice-ingress profile (perf cpu-clock, self time):"
    cat "$work/profile.txt"
fi
