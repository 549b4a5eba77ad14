#!/usr/bin/env bash
# `sluicectl lag` against the test broker: events waiting for a stage show as lag on its input
# topic, with the age of the oldest; once a stage of that group has processed them (a
# transactional one, whose offsets go through the producer), the lag is 0, on a topic written
# transactionally too (test_lag covers a group that commits before a commit marker). The
# pass-through tool stands in for validate, then for transform.
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
    "$ctl" --config "$work/pipeline.yaml" lag --stage "$1" -o json | jq '[.items[].lag] | add // 0'
}
run_stage() { # stage input output: runs the pass-through tool as that stage until its lag is 0
    SLUICE_PASSTHROUGH_AS=$1 SLUICE_PASSTHROUGH_INPUT=$2 SLUICE_PASSTHROUGH_OUTPUT=$3 \
        "$bin/sluice-passthrough" --config "$work/pipeline.yaml" \
        --admin-listen 127.0.0.1:0 > "$work/stage.log" 2>&1 &
    local stage=$! lag
    for _ in $(seq 1 120); do
        lag=$(total_lag "$1")
        [ "$lag" = 0 ] && break
        sleep 0.5
    done
    kill -TERM "$stage"
    wait "$stage" || fail "$1 did not stop cleanly: $(tail -3 "$work/stage.log")"
    [ "$lag" = 0 ] || fail "lag of $1 after it ran: $lag"
}

for i in $(seq 1 10); do printf 'key-%d:{"n":%d}\n' "$i" "$i"; done |
    kcat -P -b "$SLUICE_KAFKA_BROKERS" -t "${prefix}ingress" -K: -H "ce_specversion=1.0" \
        -H "ce_id=lag-event" -H "ce_source=test" -H "ce_type=test.event" || fail "produce"

[ "$(total_lag validate)" = 10 ] || fail "lag before: $(total_lag validate), expected 10"
"$ctl" --config "$work/pipeline.yaml" lag > "$work/table" || fail "lag table"
grep -q "^STAGE .* LAG *AGE_S$" "$work/table" || fail "table header"
# Every partition holding waiting records knows their age (a number, not -1).
# --json is -o json.
"$ctl" --config "$work/pipeline.yaml" lag --stage validate --json > "$work/rows"
[ "$(jq '[.items[] | select(.lag > 0)] | length' "$work/rows")" -gt 0 ] || fail "no partition with lag"
jq -e 'all(.items[] | select(.lag > 0); .age_seconds >= 0)' "$work/rows" > /dev/null ||
    fail "unknown age: $(cat "$work/rows")"
# The documented shape: every row has every key; destination is named on deliver rows only.
"$ctl" --config "$work/pipeline.yaml" lag -o json > "$work/all"
jq -e '.items | length > 0 and all(.[]; keys == ["age_seconds", "committed", "destination",
    "end", "group", "lag", "partition", "stage", "topic"] and ((.stage == "deliver") ==
    (.destination == "sink")))' "$work/all" > /dev/null || fail "lag -o json shape: $(cat "$work/all")"
"$ctl" --config "$work/pipeline.yaml" lag -o table | grep -q "^STAGE .* LAG *AGE_S$" ||
    fail "-o table is not the table"
grep -q "^validate .*${prefix}validate .*${prefix}ingress" "$work/table" || fail "validate rows"
grep -q "^deliver .*${prefix}deliver.sink .*${prefix}deliver.sink" "$work/table" || fail "deliver rows"

run_stage validate ingress validated
# validate wrote them to validated in transactions: transform has them (and the markers) to read.
[ "$(total_lag transform)" -ge 10 ] || fail "transform lag before: $(total_lag transform)"
run_stage transform validated normalized

# A broker that does not answer: exit 1 with a message.
sed -i "s|brokers: \"[^\"]*\"|brokers: \"127.0.0.1:9\"|" "$work/pipeline.yaml"
set +e
"$ctl" --config "$work/pipeline.yaml" lag --stage validate > /dev/null 2> "$work/err"
rc=$?
set -e
[ "$rc" = 1 ] && grep -q "sluicectl lag: topic" "$work/err" || fail "unreachable broker: rc $rc"
echo "1 passed, 0 failed"
