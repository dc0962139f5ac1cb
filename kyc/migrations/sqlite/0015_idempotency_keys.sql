-- Idempotency keys of job submissions (see the PostgreSQL twin,
-- ../postgres/0015_idempotency_keys.sql, for the why of each column).
CREATE TABLE idempotency_keys (
    customer_id   BLOB NOT NULL,
    route         TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    job_id        BLOB NOT NULL,
    status        INTEGER,
    headers       TEXT,
    body          BLOB,
    body_omitted  INTEGER NOT NULL DEFAULT 0 CHECK (body_omitted IN (0, 1)),
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    PRIMARY KEY (customer_id, route, idem_key)
) STRICT;

CREATE INDEX idempotency_keys_job ON idempotency_keys (job_id);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
