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
-- SQLite dialect; keep in step with ../postgres/0018_resellers.sql.

CREATE TABLE resellers (
    organization_id  BLOB PRIMARY KEY NOT NULL REFERENCES organizations (id),
    status           TEXT NOT NULL CHECK (status IN ('active', 'flagged', 'suspended')),
    marked_at        TEXT NOT NULL,
    marked_by        TEXT NOT NULL,
    flagged_at       TEXT,
    refused_share    REAL,
    status_at        TEXT NOT NULL
) STRICT;

CREATE INDEX resellers_status ON resellers (status, status_at);

CREATE TABLE end_customers (
    id                      BLOB PRIMARY KEY NOT NULL REFERENCES customers (id),
    reseller_id             BLOB NOT NULL REFERENCES resellers (organization_id),
    kind                    TEXT NOT NULL CHECK (kind IN ('individual', 'organization')),
    screening               TEXT NOT NULL CHECK (screening IN ('cleared', 'review', 'refused')),
    screening_list_version  TEXT,
    screening_score         REAL,
    payload_sealed          BLOB NOT NULL,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL
) STRICT;

CREATE INDEX end_customers_reseller ON end_customers (reseller_id, created_at, id);

CREATE TABLE reseller_refusals (
    id           BLOB PRIMARY KEY NOT NULL,
    reseller_id  BLOB NOT NULL REFERENCES resellers (organization_id),
    reason       TEXT NOT NULL,
    occurred_at  TEXT NOT NULL
) STRICT;

CREATE INDEX reseller_refusals_time ON reseller_refusals (reseller_id, occurred_at);
