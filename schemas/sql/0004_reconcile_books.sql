-- sluice-reconcile's own books, beside the tables of 0003_reconcile.sql (whose columns stay as
-- they are). The reconciler compares two independent accounts of every event:
--   - what was accepted, and where route sent it: reconcile_events and reconcile_routed, read
--     from the audit trail (validate writes one audit record for every record on
--     <prefix>ingress; route's record of a passed event names its destinations);
--   - where each event-destination pair is now: event_status, kept by sluice-audit from every
--     audit record (and by sluice-reconcile for events accepted and not yet routed).
-- reconcile_hourly's `unexplained` is the difference between the two.

-- When ingress accepted an event, as sluice-audit computes it (workers/audit/record.h): the
-- time inside a UUIDv7 event id when it lies within 30 days before the record's `at`, else
-- `at`. The same rule on both sides puts an event in the same hour in both accounts.
CREATE FUNCTION sluice_accepted_at(p_event_id text, p_at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_event_id ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-7[0-9a-fA-F]{3}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
             AND v7 <= p_at AND p_at - v7 <= interval '30 days'
        THEN v7 ELSE p_at END
      FROM (SELECT to_timestamp(('x' || lpad(substr(replace(p_event_id, '-', ''), 1, 12), 16, '0'))
                                ::bit(64)::bigint / 1000.0) AS v7) AS t
$$;

-- One row per accepted event: an audit record of stage validate (whatever its outcome), or an
-- alert that sluice-reconcile itself put into the pipeline (source 'sluice/reconcile').
CREATE TABLE reconcile_events (
    event_id    text        PRIMARY KEY,
    source      text        NOT NULL,
    type        text,
    accepted_at timestamptz NOT NULL
);
CREATE INDEX reconcile_events_accepted ON reconcile_events (accepted_at);

-- The destinations route sent an event to (every route record of it that passed, unioned).
-- An accepted event without a row here is one pair with destination ''.
CREATE TABLE reconcile_routed (
    event_id    text NOT NULL,
    destination text NOT NULL,
    PRIMARY KEY (event_id, destination)
);

-- The watermark: each run reads the audit rows recorded in (read_from, read_to]; the next run
-- starts at the last successful read_to minus `reconcile.overlap` (rows of a transaction that
-- began before read_to and committed after it). dead_letter_id: the highest dead_letters.id
-- counted for DLQ growth; dead_letters: how many were new in this run; alerts: alert events
-- this run produced.
ALTER TABLE reconcile_runs
    ADD COLUMN read_from      timestamptz,
    ADD COLUMN read_to        timestamptz,
    ADD COLUMN dead_letter_id bigint,
    ADD COLUMN dead_letters   bigint NOT NULL DEFAULT 0,
    ADD COLUMN alerts         bigint NOT NULL DEFAULT 0;

-- The reconciler reads the audit trail by the time rows reached Postgres; rows arrive in that
-- order, so a BRIN index is a few pages per partition.
CREATE INDEX audit_recorded ON audit USING brin (recorded_at);
