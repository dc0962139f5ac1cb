-- Provider resources to fetch before an IDV outcome is known (Onfido's webhooks only announce
-- a check, report or workflow run). A row is written before the webhook is acknowledged and
-- worked by a background task with retries; `done` rows stay so replays remain duplicates.
CREATE TABLE idv_fetches (
    provider         TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    resource         TEXT NOT NULL CHECK (resource IN ('check', 'report', 'workflow_run')),
    resource_id      UUID NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    attempts         BIGINT NOT NULL,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    last_error       TEXT,
    received_at      TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, event_id)
);

CREATE INDEX idv_fetches_due ON idv_fetches (state, next_attempt_at);
