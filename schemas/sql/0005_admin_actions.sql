-- sluice-admin's record of every action taken through its API (replay, bulk replay, discard,
-- pause, resume; dry runs too): who, with which role, what, on what, with which parameters,
-- from where, with what result, when. Append-only; GET /api/v1/actions lists it newest first
-- (keyset on the primary key).
-- Each action also goes to the audit trail (stage 'admin'), beside the event it touched.
CREATE TABLE admin_actions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    who        text        NOT NULL,             -- the token's name
    role       text        NOT NULL CHECK (role IN ('viewer', 'operator')),
    action     text        NOT NULL,             -- replay, bulk_replay, discard, pause, resume
    target     text        NOT NULL,             -- a dead letter's id, a destination's name, a filter
    parameters jsonb       NOT NULL DEFAULT '{}', -- the request's body
    remote     text,                             -- the client's address
    result     jsonb       NOT NULL              -- {"status": HTTP status, ...what it did or why not}
);
