-- Reconciliation: did every accepted event reach exactly one terminal state per route, and do
-- the hourly totals add up? Written by sluice-reconcile from the audit trail and
-- <prefix>outcomes; read by `sluicectl reconcile report` and `sluicectl events show`.

-- One row per event and destination: its terminal state, or pending. destination '' is the
-- event as a whole before routing (filtered, duplicate or dead-lettered before any route
-- chose a destination), so the key has no NULLs.
CREATE TABLE event_status (
    event_id    text        NOT NULL,
    destination text        NOT NULL DEFAULT '',
    source      text        NOT NULL,
    type        text,
    route       text,
    state       text        NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'delivered', 'dead_lettered', 'filtered',
                                 'duplicate')),
    accepted_at timestamptz NOT NULL,           -- when ingress accepted the event
    updated_at  timestamptz NOT NULL DEFAULT now(),
    terminal_at timestamptz,                    -- when it reached its state; NULL while pending
    stuck_at    timestamptz,                    -- when reconcile first reported it stuck
    CHECK ((state = 'pending') = (terminal_at IS NULL)),
    PRIMARY KEY (event_id, destination)
);

-- Stuck events: pending past the deadline, oldest first; stays as small as the backlog.
CREATE INDEX event_status_pending ON event_status (accepted_at) WHERE state = 'pending';
-- Hourly counts per source and destination.
CREATE INDEX event_status_accepted ON event_status (accepted_at, source, destination);

-- One run of the reconciler over a window of accepted times.
CREATE TABLE reconcile_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    window_from timestamptz NOT NULL,
    window_to   timestamptz NOT NULL CHECK (window_to > window_from),
    status      text        NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'balanced', 'unbalanced', 'failed')),
    events      bigint      NOT NULL DEFAULT 0, -- event-destination pairs looked at
    stuck       bigint      NOT NULL DEFAULT 0, -- of which pending past the deadline
    message     text                            -- why it failed, or a summary
);

CREATE INDEX reconcile_runs_started ON reconcile_runs (started_at);

-- Per UTC hour of acceptance, source and destination: how many event-destination pairs were
-- accepted, and where each one is now. Every accepted pair is in exactly one of the state
-- columns, so `unexplained` (generated) is 0 when the books balance; anything else is what
-- `explanation` has to account for (lost records, a reconciler that has not caught up).
CREATE TABLE reconcile_hourly (
    hour          timestamptz NOT NULL
                  CHECK (hour = date_bin('1 hour', hour, timestamptz '2000-01-01 00:00+00')),
    source        text        NOT NULL,
    destination   text        NOT NULL DEFAULT '',
    accepted      bigint      NOT NULL DEFAULT 0,
    delivered     bigint      NOT NULL DEFAULT 0,
    dead_lettered bigint      NOT NULL DEFAULT 0,
    filtered      bigint      NOT NULL DEFAULT 0,
    duplicate     bigint      NOT NULL DEFAULT 0,
    pending       bigint      NOT NULL DEFAULT 0, -- in flight, within the deadline
    stuck         bigint      NOT NULL DEFAULT 0, -- pending past the deadline
    unexplained   bigint      NOT NULL GENERATED ALWAYS AS
                  (accepted - delivered - dead_lettered - filtered - duplicate - pending - stuck)
                  STORED,
    explanation   text,
    run_id        bigint      REFERENCES reconcile_runs (id) ON DELETE SET NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hour, source, destination)
);
