#!/usr/bin/env bash
# `sluicectl lag` against the test broker: events waiting for a stage show as lag on its input
# topic; once a stage of that group has processed them (a transactional one, whose offsets go
# through the producer), the lag is 0. The pass-through tool stands in for validate.
# shellcheck source=../testlib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../testlib.sh"
ctl="$bin/sluicectl"
prefix="sluice-test-lag-$(date +%s%N)."
cat > "$work/pipeline.yaml" <<YAML
kafka: { brokers: "$SLUICE_KAFKA_BROKERS", topic_prefix: "$prefix", partitions: 3 }
destinations:
  sink: { url: "http://127.0.0.1:9/never" }
YAML
"$ctl" --config "$work/pipeline.yaml" topics create > /dev/null || fail "topics create"

total_lag() { # stage -> the sum of its lag over partitions
    "$ctl" --config "$work/pipeline.yaml" lag --stage "$1" --json |
        sed -n 's/.*"lag":\([0-9]*\)}/\1/p' | awk '{s += $1} END {print s + 0}'
}

for i in $(seq 1 10); do printf 'key-%d:{"n":%d}\n' "$i" "$i"; done |
    kcat -P -b "$SLUICE_KAFKA_BROKERS" -t "${prefix}ingress" -K: -H "ce_specversion=1.0" \
        -H "ce_id=lag-event" -H "ce_source=test" -H "ce_type=test.event" || fail "produce"

[ "$(total_lag validate)" = 10 ] || fail "lag before: $(total_lag validate), expected 10"
"$ctl" --config "$work/pipeline.yaml" lag > "$work/table" || fail "lag table"
grep -q "^STAGE .* LAG$" "$work/table" || fail "table header"
grep -q "^validate .*${prefix}validate .*${prefix}ingress" "$work/table" || fail "validate rows"
grep -q "^deliver .*${prefix}deliver.sink .*${prefix}deliver.sink" "$work/table" || fail "deliver rows"

SLUICE_PASSTHROUGH_AS=validate "$bin/sluice-passthrough" --config "$work/pipeline.yaml" \
    --admin-listen 127.0.0.1:0 > "$work/stage.log" 2>&1 &
stage=$!
lag=10
for _ in $(seq 1 120); do
    lag=$(total_lag validate)
    [ "$lag" = 0 ] && break
    sleep 0.5
done
kill -TERM "$stage"
wait "$stage" || fail "the stage did not stop cleanly: $(tail -3 "$work/stage.log")"
[ "$lag" = 0 ] || fail "lag after the stage ran: $lag"

# A broker that does not answer: exit 1 with a message.
sed -i "s|brokers: \"[^\"]*\"|brokers: \"127.0.0.1:9\"|" "$work/pipeline.yaml"
set +e
"$ctl" --config "$work/pipeline.yaml" lag --stage validate > /dev/null 2> "$work/err"
rc=$?
set -e
[ "$rc" = 1 ] && grep -q "sluicectl lag: topic" "$work/err" || fail "unreachable broker: rc $rc"
echo "1 passed, 0 failed"
