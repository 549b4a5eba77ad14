-- The audit trail: one row per audit record that a stage produced to <prefix>audit (see
-- produce_audit in common/sl_loop.c), written by sluice-audit in batches (COPY into a staging
-- table, then INSERT ... ON CONFLICT DO NOTHING), so a batch written twice is stored once.
--
-- Append-only and partitioned by day (UTC) on `at`, so that retention is DROP TABLE of a day's
-- partition (sluice_audit_partitions_drop) instead of a DELETE that bloats the table and the
-- WAL. Daily rather than monthly: retention is then exact to the day, and one day's partition
-- stays small enough to index and to drop quickly at tens of thousands of rows per second.
--
-- The idempotency key is the audit record's own position on the audit topic
-- (audit_topic, audit_partition, audit_offset): the broker guarantees it unique for every record,
-- whoever produced it, and the same record read again has the same position. A unique
-- constraint on a partitioned table must contain the partition key, so `at` is part of the
-- primary key; that holds no weaker uniqueness because `at` comes from the record itself (its
-- "at", else its Kafka timestamp), never from the clock of the writer: the same record always
-- lands in the same partition with the same key. The coordinates of the event at the stage
-- (topic, partition, kafka_offset) are not unique: a replay of a stage's input audits the same
-- input record again, and that second processing is history worth keeping.
--
-- There is no DEFAULT partition: a row for a day without a partition fails loudly instead of
-- piling up where creating that day's partition later would have to move it. Writers create the
-- days they need first (sluice_audit_partition_ensure per distinct day of a batch), and
-- `sluicectl db migrate` / `sluicectl db partitions` create the coming days ahead of time.
CREATE TABLE audit (
    at              timestamptz      NOT NULL, -- when the stage decided (the record's "at")
    event_id        text,                      -- ce_id; NULL when the stage could not read it
    stage           text             NOT NULL, -- ingress, validate, transform, route, deliver
    outcome         text             NOT NULL, -- passed, filtered, duplicate, dead_lettered, ...
    reason          text,
    errors          jsonb,                     -- array of strings behind a rejection
    source          text,
    type            text,
    destination     text,                      -- deliver: the destination of this attempt
    attempt         integer,                   -- deliver: attempt number, from 1
    status          integer,                   -- deliver: the destination's HTTP status
    latency_ms      double precision,          -- deliver: the destination's response time
    seconds         double precision,          -- time the stage spent on the event
    outputs         integer,                   -- records produced when passed
    detail          jsonb,                     -- the stage's own members
    topic           text             NOT NULL, -- where the stage read the event
    partition       integer          NOT NULL,
    kafka_offset    bigint           NOT NULL,
    audit_topic     text             NOT NULL, -- where this audit record was read
    audit_partition integer          NOT NULL,
    audit_offset    bigint           NOT NULL,
    recorded_at     timestamptz      NOT NULL DEFAULT now(), -- when it reached Postgres
    PRIMARY KEY (audit_topic, audit_partition, audit_offset, at)
) PARTITION BY RANGE (at);

-- `sluicectl events show ID`: every row of one event, in time order.
CREATE INDEX audit_event ON audit (event_id, at);
-- Time-range scans inside a day (reconcile, dashboards): rows arrive nearly in `at` order, so a
-- BRIN index is a few pages per partition.
CREATE INDEX audit_at ON audit USING brin (at);

-- Creates the partition of `audit` for one UTC day [p_day, p_day + 1) unless it exists; true
-- when it created it. Safe to call concurrently and inside a writer's transaction: the
-- partition is made as a plain table and attached, which needs only SHARE UPDATE EXCLUSIVE on
-- `audit` (inserts and reads go on; a second creator waits and then finds it).
CREATE FUNCTION sluice_audit_partition_ensure(p_day date) RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    nsp  text;
    part text := 'audit_p' || to_char(p_day, 'YYYYMMDD');
    lo   timestamptz := p_day::timestamp AT TIME ZONE 'UTC';
    hi   timestamptz := (p_day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    SELECT n.nspname INTO STRICT nsp
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = 'audit'::regclass;
    IF to_regclass(format('%I.%I', nsp, part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Self-conflicting: creators take turns. Taking the lock also reads the catalog changes of
    -- the creator before us, so the second look below sees its partition.
    LOCK TABLE audit IN SHARE UPDATE EXCLUSIVE MODE;
    IF to_regclass(format('%I.%I', nsp, part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I.%I (LIKE %I.audit INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   nsp, part, nsp);
    EXECUTE format('ALTER TABLE %I.audit ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                   nsp, nsp, part, lo, hi);
    RETURN true;
END
$$;

-- Creates the partitions of the UTC days p_from .. p_to (inclusive) that do not exist yet;
-- returns how many it created. At most 366 days in one call (a bound against a unit mistake).
CREATE FUNCTION sluice_audit_partitions_ensure(p_from date, p_to date) RETURNS integer
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    created integer := 0;
BEGIN
    IF p_to < p_from OR p_to - p_from > 365 THEN
        RAISE EXCEPTION 'audit partitions: % .. % is not a range of 1 to 366 days', p_from, p_to;
    END IF;
    FOR d IN 0 .. p_to - p_from LOOP
        IF sluice_audit_partition_ensure(p_from + d) THEN
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$;

-- Retention: drops every daily partition whose whole day lies before p_before (UTC), and
-- returns the names of those it dropped, oldest first.
CREATE FUNCTION sluice_audit_partitions_drop(p_before date) RETURNS SETOF text
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid::regclass AS part, c.relname::text AS name
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'audit'::regclass
           AND c.relname ~ '^audit_p[0-9]{8}$'
           AND to_date(substr(c.relname, 8), 'YYYYMMDD') < p_before
         ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %s', r.part);
        RETURN NEXT r.name;
    END LOOP;
END
$$;
