#!/usr/bin/env bash
# `sluicectl db migrate` and `db partitions` against the test database, in a schema of this
# run's own (dropped at the end): a dry run, migrate from empty, again (nothing to apply), the
# DSN from a pipeline file, partitions with retention; then the error paths.
# shellcheck source=../testlib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../testlib.sh"
ctl="$bin/sluicectl"

base="${SLUICE_TEST_PG_DSN:-postgresql://sluice:sluice@127.0.0.1:5432/sluice_test}"
schema="sluice_test_cli_$(date +%s%N)_$$"
psql -X -q -v ON_ERROR_STOP=1 "$base" -c "CREATE SCHEMA $schema" || fail "create schema"
trap 'psql -X -q "$base" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null; rm -rf "$work"' EXIT
dsn="$base?options=-csearch_path%3D$schema"
export SLUICE_PG_DSN="$dsn"
unset SLUICE_CONFIG SLUICE_SQL_DIR

"$ctl" db migrate --dry-run > "$work/out" || { cat "$work/out"; fail "dry run"; }
grep -qx "would apply 0001_audit" "$work/out" || { cat "$work/out"; fail "dry run: list"; }
grep -q "^dry run: 5 of 5 migrations to apply; schema $schema at version 0" "$work/out" ||
    { cat "$work/out"; fail "dry run: summary"; }
[ "$(psql -X -At "$dsn" -c "select to_regclass('schema_migrations') is null")" = t ] ||
    fail "dry run created schema_migrations"

"$ctl" db migrate > "$work/out" || { cat "$work/out"; fail "migrate"; }
grep -qx "applied 0005_admin_actions" "$work/out" || { cat "$work/out"; fail "migrate: list"; }
grep -q "^5 applied: schema $schema at version 5" "$work/out" || { cat "$work/out"; fail "migrate: summary"; }
grep -q "^audit partitions: today and 7 days ahead in place (8 created)" "$work/out" ||
    { cat "$work/out"; fail "migrate: partitions"; }
grep -q "postgres 127.0.0.1:5432/sluice_test" "$work/out" || fail "migrate: where"
grep -q "sluice:sluice@" "$work/out" && fail "migrate: printed the credentials"

# Again, through a pipeline file's postgres.dsn (which wins over SLUICE_PG_DSN).
printf 'postgres:\n  dsn: "%s"\n' "$dsn" > "$work/pipeline.yaml"
SLUICE_PG_DSN=postgresql://127.0.0.1:1/nowhere "$ctl" --config "$work/pipeline.yaml" db migrate \
    --ahead 2 > "$work/out" || { cat "$work/out"; fail "second migrate"; }
grep -q "^nothing to apply: schema $schema at version 5 (5 migrations)" "$work/out" ||
    { cat "$work/out"; fail "second migrate: summary"; }
grep -q "(0 created)" "$work/out" || { cat "$work/out"; fail "second migrate: partitions"; }

# Retention: an old day's partition goes, today's stay.
psql -X -q "$dsn" -c "select sluice_audit_partition_ensure('2020-01-01')" > /dev/null
"$ctl" db partitions --ahead 1 --retain 30 > "$work/out" || { cat "$work/out"; fail "partitions"; }
grep -qx "dropped audit_p20200101" "$work/out" || { cat "$work/out"; fail "partitions: dropped"; }
today=$(date -u +%Y%m%d)
grep -q "^audit_p$today " "$work/out" || { cat "$work/out"; fail "partitions: today"; }
[ "$(grep -c '^audit_p' "$work/out")" = 8 ] || { cat "$work/out"; fail "partitions: list"; }

# Errors: usage (2), a missing directory and an unreachable database (1).
set +e
"$ctl" db migrate --bogus 2> "$work/err"; rc=$?
[ "$rc" = 2 ] || fail "usage: exit $rc"
"$ctl" db partitions --retain 0 2> "$work/err"; rc=$?
[ "$rc" = 2 ] || fail "retain 0: exit $rc"
"$ctl" db migrate --dir /nonexistent > /dev/null 2> "$work/err"; rc=$?
[ "$rc" = 1 ] || fail "bad dir: exit $rc"
grep -q "/nonexistent: not a directory" "$work/err" || { cat "$work/err"; fail "bad dir: message"; }
SLUICE_PG_DSN="postgresql://sluice:s3cret@127.0.0.1:1/x?connect_timeout=2" "$ctl" db migrate \
    > /dev/null 2> "$work/err"; rc=$?
set -e
[ "$rc" = 1 ] || fail "unreachable: exit $rc"
grep -q "cannot connect" "$work/err" || { cat "$work/err"; fail "unreachable: message"; }
grep -q "s3cret" "$work/err" && fail "unreachable: printed the password"
echo "1 passed, 0 failed"
