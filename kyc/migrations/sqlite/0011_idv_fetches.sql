-- Provider resources to fetch before an IDV outcome is known (Onfido's webhooks only announce
-- a check, report or workflow run). A row is written before the webhook is acknowledged and
-- worked by a background task with retries; `done` rows stay so replays remain duplicates.
CREATE TABLE idv_fetches (
    provider         TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    resource         TEXT NOT NULL CHECK (resource IN ('check', 'report', 'workflow_run')),
    resource_id      BLOB NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    attempts         INTEGER NOT NULL,
    next_attempt_at  TEXT NOT NULL,
    last_error       TEXT,
    received_at      TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (provider, event_id)
) STRICT;

CREATE INDEX idv_fetches_due ON idv_fetches (state, next_attempt_at);
