#!/usr/bin/env bash
# `sluicectl config check`: the example pipeline passes (warning about unset secrets); broken
# files fail with exit 1 and a single line naming the file, the line and the key.
# shellcheck source=../testlib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../testlib.sh"
ctl="$bin/sluicectl"
passed=0

env -u STRIPE_WEBHOOK_SECRET "$ctl" config check "$SLUICE_SOURCE_DIR/deploy/examples/pipeline.yaml" \
    > "$work/out" 2> "$work/err" || { cat "$work/out" "$work/err"; fail "example pipeline rejected"; }
grep -q ": ok (3 sources, 4 transforms, 3 routes, 2 destinations)" "$work/out" || fail "summary"
grep -q "warning: .*pipeline.yaml:[0-9]*: sources.stripe.verify.secret\[0\]: environment variable STRIPE_WEBHOOK_SECRET is not set" "$work/err" \
    || { cat "$work/err"; fail "unset secret warning"; }
passed=$((passed + 1))

check_bad() { # name, yaml, expected message
    printf '%b' "$2" > "$work/$1.yaml"
    set +e
    "$ctl" config check "$work/$1.yaml" > /dev/null 2> "$work/err"; local rc=$?
    set -e
    [ "$rc" = 1 ] || fail "$1: exit $rc, expected 1"
    [ "$(wc -l < "$work/err")" = 1 ] || fail "$1: more than one line"
    grep -qF "$work/$1.yaml:$3" "$work/err" || { cat "$work/err"; fail "$1: message"; }
    passed=$((passed + 1))
}
check_bad unknown_key 'kafka:\n  brokers: x\n  partitons: 3\n' "3: kafka.partitons: unknown key (did you mean 'partitions'?"
check_bad bad_duration 'dedup:\n  window: forever\n' "2: dedup.window: expected a duration"
check_bad bad_route 'routes:\n  - name: r\n    to: ghost\n' "3: routes[0].to: no destination named 'ghost'"
check_bad syntax 'kafka: [\n' "2: YAML syntax error"
# Schemas compile as sluice-validate would compile them at start-up.
check_bad missing_schema 'sources:\n  s:\n    verify: { scheme: none }\n    schemas:\n      t: missing.json\n' \
    "5: sources.s.schemas.t: cannot load the schema: "
printf '{"type": 5}' > "$work/broken.json"
check_bad invalid_schema 'schema_dir: .\nsources:\n  s:\n    verify: { scheme: none }\n    schemas: { "*": broken.json }\n' \
    "5: sources.s.schemas.*: cannot load the schema: file://$work/broken.json#/type: must be a type name"
# Expressions and canonical schemas compile as sluice-transform and sluice-route would.
check_bad bad_mapping 'transforms:\n  - name: t\n    jq: "{type: "\n' \
    "3: transforms[0].jq: expression 't': syntax error"
check_bad bad_lookup 'transforms:\n  - name: t\n    jq: .\n    lookups:\n      - { name: a, type: http, key: .k }\n' \
    "5: transforms[0].lookups[0].key: not a key of http lookups"
check_bad missing_canonical 'transforms:\n  - name: t\n    jq: .\n    schema: nope.json\n' \
    "4: transforms[0].schema: cannot load the schema: "
check_bad bad_route_when 'destinations:\n  d: { url: "http://127.0.0.1:9/" }\nroutes:\n  - name: r\n    when: ".a =="\n    to: d\n' \
    "4: routes[0]: expression 'r': syntax error"
# Admission control, shedding and the lag exporter's keys.
check_bad bad_max_lag 'ingress:\n  admission: { max_lag: -1 }\n' \
    "2: ingress.admission.max_lag: '-1' is out of range [0, 1000000000000]"
check_bad bad_retry_after 'ingress:\n  admission: { max_lag: 10, retry_after: 0s }\n' \
    "2: ingress.admission.retry_after: '0s' is out of range [1000, 3600000] ms"
check_bad bad_shed 'sources:\n  s:\n    verify: { scheme: none }\n    shed: maybe\n' \
    "4: sources.s.shed: expected true or false, got 'maybe'"
check_bad bad_lag_interval 'reconcile:\n  lag_interval: 10ms\n' \
    "2: reconcile.lag_interval: '10ms' is out of range [1000, 3600000] ms"
# A Redis URL no binary can use is refused here too, as sl_redis_new() refuses it: no TLS.
check_bad rediss 'redis:\n  url: "rediss://cache.example:6380/0"\n' \
    "2: redis.url: redis url: rediss:// (TLS) is not supported"
printf 'kafka: { partitions: 1 }\n' > "$work/plain.yaml"
set +e
SLUICE_REDIS_URL=rediss://cache.example:6380 "$ctl" config check "$work/plain.yaml" > /dev/null \
    2> "$work/err"
rc=$?
set -e
[ "$rc" = 1 ] && grep -q "SLUICE_REDIS_URL: redis url: rediss:// (TLS) is not supported" "$work/err" ||
    { cat "$work/err"; fail "rediss:// from the environment: exit $rc"; }
passed=$((passed + 1))
# The record size chain: a body the ingress accepts must fit in a Kafka record.
check_bad body_over_message 'ingress:\n  listen: "127.0.0.1:0"\n  max_body_bytes: 4MiB\n' \
    "3: ingress.max_body_bytes: ingress.max_body_bytes (4194304) plus 32768 bytes for the record's key and headers exceed kafka.max_message_bytes (2097152)"
check_bad message_under_body 'kafka:\n  max_message_bytes: 1MiB\n' \
    "2: kafka.max_message_bytes: ingress.max_body_bytes (1048576) plus 32768 bytes"
check_bad message_max_property 'kafka:\n  properties:\n    message.max.bytes: "5000000"\n' \
    "3: kafka.properties.message.max.bytes: set kafka.max_message_bytes instead"
printf 'kafka:\n  max_message_bytes: 8MiB\ningress:\n  max_body_bytes: 8160KiB\n' > "$work/chain.yaml"
"$ctl" config check "$work/chain.yaml" > /dev/null 2> "$work/err" || { cat "$work/err"; fail "consistent chain rejected"; }
passed=$((passed + 1))

set +e
"$ctl" config check "$work/missing.yaml" 2> "$work/err"; rc=$?
set -e
[ "$rc" = 1 ] && grep -q "cannot open" "$work/err" || fail "missing file"
passed=$((passed + 1))
echo "$passed passed, 0 failed"
