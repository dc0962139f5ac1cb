-- Idempotency keys of job submissions (`Idempotency-Key` header on job_submit routes), shared by
-- every replica so a retry on any of them returns the first attempt's answer:
-- * a key is scoped to (customer, route) and claimed in the admission transaction of an
--   admitted job (`job_id`), so two concurrent attempts cannot both reserve; a held or denied
--   attempt, or one whose reservation is released (the upstream refused it), leaves no row;
-- * `fingerprint`: SHA-256 (hex) of the request's method, path and body; the same key with
--   another fingerprint is refused;
-- * `status` NULL while the first attempt is in flight; then its answer: `status`, a safe
--   subset of headers (`headers`, JSON array of [name, value]) and the body (`body`, NULL when
--   `body_omitted`: larger than the gateway stores);
-- * rows past `expires_at` are ignored and purged by the lease sweep.
-- PostgreSQL dialect; keep in step with ../sqlite/0015_idempotency_keys.sql.
CREATE TABLE idempotency_keys (
    customer_id   UUID NOT NULL,
    route         TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    job_id        UUID NOT NULL,
    status        INTEGER,
    headers       TEXT,
    body          BYTEA,
    body_omitted  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (customer_id, route, idem_key)
);

CREATE INDEX idempotency_keys_job ON idempotency_keys (job_id);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
