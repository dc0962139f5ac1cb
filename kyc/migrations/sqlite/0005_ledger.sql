-- The compute ledger: training runs and their lineage, per-scope budget rows (the admission
-- locks), jobs with their reservations and measured usage, usage events, threshold crossings,
-- review holds, training-run reports and linked account groups.
-- SQLite dialect; keep in step with ../postgres/0005_ledger.sql. FLOP are REAL (IEEE double):
-- the totals regulators count reach 1e26, far past INTEGER. Conventions as in 0001_identity.sql:
-- UUID blobs, fixed-width UTC text timestamps, 0/1 booleans, JSON as text.

-- A run id is namespaced per customer. The lineage root (the run a chain of fine-tunes started
-- from) is fixed when the run is first seen and never changes.
CREATE TABLE ledger_runs (
    id             BLOB PRIMARY KEY NOT NULL,
    customer_id    BLOB NOT NULL REFERENCES customers (id),
    run_id         TEXT NOT NULL,
    parent_run_id  TEXT,
    lineage_root   BLOB NOT NULL,
    first_seen_at  TEXT NOT NULL,
    UNIQUE (customer_id, run_id)
) STRICT;

CREATE INDEX ledger_runs_lineage ON ledger_runs (lineage_root);
CREATE INDEX ledger_runs_first_seen ON ledger_runs (first_seen_at);

-- One row per budget scope. PostgreSQL locks these rows (SELECT … FOR UPDATE); SQLite's
-- BEGIN IMMEDIATE serializes writers, so the same queries run without the locking clause.
-- Lineage, customer and organization rows also carry lifetime totals; group rows are lock rows
-- only (group totals are summed from the members' jobs, so merging and unlinking need no
-- bookkeeping).
CREATE TABLE ledger_budgets (
    scope          TEXT NOT NULL CHECK (scope IN ('lineage', 'customer', 'organization', 'group')),
    scope_id       BLOB NOT NULL,
    used_flop      REAL NOT NULL DEFAULT 0.0,
    reserved_flop  REAL NOT NULL DEFAULT 0.0,
    PRIMARY KEY (scope, scope_id)
) STRICT;

-- Every admission decision, admitted or not. A job's charge is used_flop + reserved_flop and is
-- counted in rolling windows at decided_at.
CREATE TABLE ledger_jobs (
    id                   BLOB PRIMARY KEY NOT NULL,
    customer_id          BLOB NOT NULL REFERENCES customers (id),
    organization_id      BLOB,
    run                  BLOB NOT NULL REFERENCES ledger_runs (id),
    lineage_root         BLOB NOT NULL,
    status               TEXT NOT NULL CHECK (status IN
                           ('reserved', 'running', 'finished', 'held_for_review', 'denied')),
    decision             TEXT NOT NULL,
    request_id           TEXT NOT NULL,
    route                TEXT NOT NULL,
    estimate_flop        REAL NOT NULL,
    hardware_flop        REAL,
    declared_flop        REAL,
    basis                TEXT NOT NULL,
    table_version        TEXT NOT NULL,
    accelerators         INTEGER NOT NULL,
    accelerator_type     TEXT,
    bio_sequence         INTEGER NOT NULL CHECK (bio_sequence IN (0, 1)),
    reserved_flop        REAL NOT NULL,
    used_flop            REAL NOT NULL,
    accelerator_seconds  REAL NOT NULL,
    decided_at           TEXT NOT NULL,
    started_at           TEXT,
    last_usage_at        TEXT,
    finished_at          TEXT
) STRICT;

CREATE INDEX ledger_jobs_customer_time ON ledger_jobs (customer_id, decided_at);
CREATE INDEX ledger_jobs_organization_time ON ledger_jobs (organization_id, decided_at);
CREATE INDEX ledger_jobs_run ON ledger_jobs (run);
CREATE INDEX ledger_jobs_time ON ledger_jobs (decided_at);
CREATE INDEX ledger_jobs_open ON ledger_jobs (customer_id) WHERE status IN ('reserved', 'running');

-- Usage events from the compute platform, kept by event id so a replay changes nothing.
CREATE TABLE ledger_usage_events (
    event_id                   TEXT PRIMARY KEY NOT NULL,
    job_id                     BLOB NOT NULL REFERENCES ledger_jobs (id),
    kind                       TEXT NOT NULL CHECK (kind IN ('started', 'heartbeat', 'finished')),
    occurred_at                TEXT NOT NULL,
    accelerator_seconds_total  REAL,
    flop_per_accelerator_second REAL NOT NULL,
    used_flop_after            REAL NOT NULL
) STRICT;

CREATE INDEX ledger_usage_events_job ON ledger_usage_events (job_id);

-- A threshold crossed (previous < threshold <= projected) at admission or by measured usage.
CREATE TABLE ledger_crossings (
    id              BLOB PRIMARY KEY NOT NULL,
    job_id          BLOB NOT NULL REFERENCES ledger_jobs (id),
    phase           TEXT NOT NULL CHECK (phase IN ('admission', 'usage')),
    label           TEXT NOT NULL,
    threshold_flop  REAL NOT NULL,
    scope           TEXT NOT NULL CHECK (scope IN ('run', 'customer', 'organization', 'group')),
    scope_id        BLOB NOT NULL,
    action          TEXT NOT NULL CHECK (action IN ('notify', 'report', 'review', 'block')),
    previous_flop   REAL NOT NULL,
    projected_flop  REAL NOT NULL,
    occurred_at     TEXT NOT NULL
) STRICT;

CREATE INDEX ledger_crossings_job ON ledger_crossings (job_id);
CREATE INDEX ledger_crossings_time ON ledger_crossings (occurred_at);

-- A job held for a compliance decision. An approval is consumed by the next admission of the
-- same customer, run id and estimate (within 1 %).
CREATE TABLE ledger_reviews (
    id             BLOB PRIMARY KEY NOT NULL,
    job_id         BLOB NOT NULL REFERENCES ledger_jobs (id),
    customer_id    BLOB NOT NULL,
    run_id         TEXT NOT NULL,
    estimate_flop  REAL NOT NULL,
    thresholds     TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
    created_at     TEXT NOT NULL,
    decided_at     TEXT,
    decided_by     TEXT,
    reason         TEXT,
    consumed_by    BLOB,
    consumed_at    TEXT
) STRICT;

CREATE INDEX ledger_reviews_approved ON ledger_reviews (customer_id, run_id)
    WHERE status = 'approved' AND consumed_by IS NULL;
CREATE INDEX ledger_reviews_pending ON ledger_reviews (created_at) WHERE status = 'pending';

-- Large-training-run reports with their due dates.
CREATE TABLE ledger_reports (
    id                 BLOB PRIMARY KEY NOT NULL,
    job_id             BLOB NOT NULL REFERENCES ledger_jobs (id),
    customer_id        BLOB NOT NULL,
    organization_id    BLOB,
    run_id             TEXT NOT NULL,
    lineage_root       BLOB NOT NULL,
    thresholds         TEXT NOT NULL,
    identity_snapshot  TEXT,
    estimate_flop      REAL NOT NULL,
    hardware_flop      REAL,
    declared_flop      REAL,
    basis              TEXT NOT NULL,
    table_version      TEXT NOT NULL,
    accelerators       INTEGER NOT NULL,
    accelerator_type   TEXT,
    cumulative_flop    REAL NOT NULL,
    created_at         TEXT NOT NULL,
    due_at             TEXT NOT NULL,
    filed_at           TEXT,
    filed_by           TEXT,
    filing_reference   TEXT
) STRICT;

CREATE INDEX ledger_reports_due ON ledger_reports (due_at) WHERE filed_at IS NULL;
CREATE INDEX ledger_reports_created ON ledger_reports (created_at);
CREATE INDEX ledger_reports_customer ON ledger_reports (customer_id, created_at);

-- Linked account groups. A customer without a row here is a group of one.
CREATE TABLE ledger_groups (
    id          BLOB PRIMARY KEY NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE ledger_group_members (
    customer_id  BLOB PRIMARY KEY NOT NULL REFERENCES customers (id),
    group_id     BLOB NOT NULL REFERENCES ledger_groups (id),
    joined_at    TEXT NOT NULL,
    via          TEXT NOT NULL
) STRICT;

CREATE INDEX ledger_group_members_group ON ledger_group_members (group_id);

-- Linking attributes, only ever as SHA-256 hashes (never the raw owner, card or document).
CREATE TABLE ledger_link_attributes (
    kind         TEXT NOT NULL CHECK (kind IN
                   ('beneficial_owner', 'payment_fingerprint', 'id_document', 'organization')),
    value_hash   BLOB NOT NULL CHECK (length(value_hash) = 32),
    customer_id  BLOB NOT NULL REFERENCES customers (id),
    created_at   TEXT NOT NULL,
    PRIMARY KEY (kind, value_hash, customer_id)
) STRICT;

CREATE INDEX ledger_link_attributes_customer ON ledger_link_attributes (customer_id);

-- Customers staff unlinked: automatic linking leaves them alone until staff link them again.
CREATE TABLE ledger_link_exemptions (
    customer_id  BLOB PRIMARY KEY NOT NULL REFERENCES customers (id),
    actor        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    created_at   TEXT NOT NULL
) STRICT;
