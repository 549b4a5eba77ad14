-- Dead letters: what sluice-deadletter reads from <prefix>dlq (the original payload, key and
-- headers plus ce_sluicestage, ce_sluicereason, ce_sluiceerrors), for operators to inspect,
-- replay or discard. Written like the audit trail (COPY into a staging table, INSERT ... ON
-- CONFLICT DO NOTHING), keyed by the record's position on the dead-letter topic, so a batch
-- written twice is stored once.
--
-- Not partitioned: dead letters are few, they change state (replayed, discarded), and an
-- operator may need one from months ago. `id` is what operators type (`sluicectl dlq show 42`).

-- True when every key of `h` is a header that may be stored: ce_* attributes and content-type.
-- Everything else (authorization, signatures, cookies, API keys) may hold a secret.
CREATE FUNCTION sluice_headers_storable(h jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT
AS $$
    SELECT jsonb_typeof(h) = 'object'
       AND NOT EXISTS (SELECT 1 FROM jsonb_object_keys(h) AS k
                        WHERE k !~ '^(ce_[a-z0-9]+|content-type)$')
$$;

CREATE TABLE dead_letters (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     text,                   -- ce_id
    source       text,                   -- ce_sluicesource, else ce_source
    type         text,                   -- ce_type
    stage        text        NOT NULL,   -- ce_sluicestage: the stage that gave up
    reason       text        NOT NULL,   -- ce_sluicereason
    errors       jsonb,                  -- ce_sluiceerrors: array of strings
    attempt      integer     NOT NULL DEFAULT 1 CHECK (attempt >= 1), -- ce_sluiceattempt
    -- Only ce_* attributes and content-type, as a JSON object of strings: the database refuses
    -- anything else, so a writer's mistake cannot store a secret.
    headers      jsonb       NOT NULL DEFAULT '{}' CHECK (sluice_headers_storable(headers)),
    payload      bytea       NOT NULL,   -- the record value, byte for byte
    key          bytea,                  -- the record key (partition key)
    topic        text        NOT NULL,   -- where the dead letter was read
    partition    integer     NOT NULL,
    kafka_offset bigint      NOT NULL,
    produced_at  timestamptz,            -- the record's Kafka timestamp
    received_at  timestamptz NOT NULL DEFAULT now(),
    status       text        NOT NULL DEFAULT 'new'
                 CHECK (status IN ('new', 'replayed', 'discarded')),
    status_at    timestamptz,            -- when status last changed (NULL while new)
    status_by    text,                   -- who changed it
    UNIQUE (topic, partition, kafka_offset)
);

-- `sluicectl dlq list [--source] [--stage] [--since]`, newest first.
CREATE INDEX dead_letters_received ON dead_letters (received_at, id);
CREATE INDEX dead_letters_source ON dead_letters (source, received_at);
CREATE INDEX dead_letters_stage ON dead_letters (stage, received_at);
-- DLQ growth (reconcile's alert) and "what is still to handle".
CREATE INDEX dead_letters_status ON dead_letters (status, received_at);
-- From an event's timeline to its dead letters.
CREATE INDEX dead_letters_event ON dead_letters (event_id);

-- Every replay of a dead letter: who put it back, when, at which stage (input topic), with
-- which attempt count; the record's position once Kafka acknowledged it.
CREATE TABLE dead_letter_replays (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dead_letter_id bigint      NOT NULL REFERENCES dead_letters (id) ON DELETE CASCADE,
    replayed_by    text        NOT NULL,
    replayed_at    timestamptz NOT NULL DEFAULT now(),
    to_stage       text        NOT NULL,
    to_topic       text        NOT NULL,
    attempt        integer     NOT NULL CHECK (attempt >= 1),
    partition      integer,
    kafka_offset   bigint
);

CREATE INDEX dead_letter_replays_letter ON dead_letter_replays (dead_letter_id, replayed_at);
