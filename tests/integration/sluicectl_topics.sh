#!/usr/bin/env bash
# `sluicectl topics create` against the test broker, twice: the first run creates every topic
# the example pipeline implies, the second creates none and still succeeds. A unique topic
# prefix keeps runs apart. Then the CLI's error paths: no config, a bad config.
# shellcheck source=../testlib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../testlib.sh"
ctl="$bin/sluicectl"

prefix="sluice-test-$(date +%s%N)."
# The example takes its prefix from SLUICE_TOPIC_PREFIX; its schema_dir is relative to the file,
# so keep the copy pointing at the source tree.
export SLUICE_TOPIC_PREFIX="$prefix"
sed "s|^schema_dir: .*|schema_dir: $SLUICE_SOURCE_DIR/schemas|" \
    "$SLUICE_SOURCE_DIR/deploy/examples/pipeline.yaml" > "$work/pipeline.yaml"
grep -q 'topic_prefix: "${SLUICE_TOPIC_PREFIX:-sluice.}"' "$work/pipeline.yaml" ||
    fail "the example no longer takes its prefix from SLUICE_TOPIC_PREFIX"

"$ctl" --config "$work/pipeline.yaml" topics create > "$work/first" || fail "first run failed"
grep -q "^8 topics, 8 created, 0 already existed" "$work/first" || { cat "$work/first"; fail "first run"; }
grep -qx "${prefix}deliver.crm" "$work/first" || fail "deliver.crm topic not listed"
"$ctl" --config "$work/pipeline.yaml" topics create > "$work/second" || fail "second run failed"
grep -q "^8 topics, 0 created, 8 already existed" "$work/second" || { cat "$work/second"; fail "second run"; }

# Usage and config errors: exit 2 and 1, each with a one-line message.
set +e
env -u SLUICE_CONFIG "$ctl" topics create 2> "$work/err"; rc=$?
set -e
[ "$rc" = 2 ] || fail "no config: exit $rc, expected 2"
grep -q "no pipeline file" "$work/err" || fail "no config: message"
printf 'kafka:\n  partitions: lots\n' > "$work/bad.yaml"
set +e
"$ctl" --config "$work/bad.yaml" topics create 2> "$work/err"; rc=$?
set -e
[ "$rc" = 1 ] || fail "bad config: exit $rc, expected 1"
grep -q "bad.yaml:2: kafka.partitions: expected an integer, got 'lots'" "$work/err" || { cat "$work/err"; fail "bad config: message"; }
echo "1 passed, 0 failed"
