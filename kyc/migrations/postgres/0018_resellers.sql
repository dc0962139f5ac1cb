-- Resellers and their end customers (docs/resellers.md):
-- * `resellers`: a KYB-verified organization staff marked as reseller, with its standing:
--   `active`, `flagged` (the pass-through rule found too many of its jobs refused for their end
--   customer; awaiting a compliance review) or `suspended` (by staff: none of its jobs run).
-- * `end_customers`: an end customer a reseller registered. Each is also a `customers` row (no
--   password, no credentials, never in an organization) so the ledger meters, thresholds and
--   reports it exactly as one of our own customers; this row says whose it is, how its
--   screening came out (`cleared`, `review`, `refused`) and holds its identity sealed
--   (AES-256-GCM under the master key, bound to the row id) like an application's payload.
-- * `reseller_refusals`: one row per reseller job refused for its end customer, for the
--   pass-through share (the other jobs are counted from `ledger_jobs`).
-- PostgreSQL dialect; keep in step with ../sqlite/0018_resellers.sql.

CREATE TABLE resellers (
    organization_id  UUID PRIMARY KEY REFERENCES organizations (id),
    status           TEXT NOT NULL CHECK (status IN ('active', 'flagged', 'suspended')),
    marked_at        TIMESTAMPTZ NOT NULL,
    marked_by        TEXT NOT NULL,
    flagged_at       TIMESTAMPTZ,
    refused_share    DOUBLE PRECISION,
    status_at        TIMESTAMPTZ NOT NULL
);

CREATE INDEX resellers_status ON resellers (status, status_at);

CREATE TABLE end_customers (
    id                      UUID PRIMARY KEY REFERENCES customers (id),
    reseller_id             UUID NOT NULL REFERENCES resellers (organization_id),
    kind                    TEXT NOT NULL CHECK (kind IN ('individual', 'organization')),
    screening               TEXT NOT NULL CHECK (screening IN ('cleared', 'review', 'refused')),
    screening_list_version  TEXT,
    screening_score         DOUBLE PRECISION,
    payload_sealed          BYTEA NOT NULL,
    created_at              TIMESTAMPTZ NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL
);

CREATE INDEX end_customers_reseller ON end_customers (reseller_id, created_at, id);

CREATE TABLE reseller_refusals (
    id           UUID PRIMARY KEY,
    reseller_id  UUID NOT NULL REFERENCES resellers (organization_id),
    reason       TEXT NOT NULL,
    occurred_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX reseller_refusals_time ON reseller_refusals (reseller_id, occurred_at);
