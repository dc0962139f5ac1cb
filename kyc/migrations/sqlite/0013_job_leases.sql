-- no-transaction
-- Job leases and closing, and reports withdrawn when a job never ran (see the PostgreSQL twin,
-- ../postgres/0013_job_leases.sql, for the why of each): status `closed`, `lease_expires_at`,
-- `closed_reason`, `closed_by`, `close_note` on ledger_jobs; `withdrawn_at`, `withdrawn_reason`
-- on ledger_reports.
--
-- SQLite cannot change a CHECK constraint in place, so ledger_jobs is rebuilt the documented way
-- (https://www.sqlite.org/lang_altertable.html#otheralter), as in 0006 (keeping 0012's upstream job ids): foreign keys off outside
-- the transaction (other tables reference ledger_jobs), copy, swap, foreign keys on. Hence
-- `no-transaction` above, with an explicit transaction here.

PRAGMA foreign_keys = OFF;

BEGIN IMMEDIATE;

CREATE TABLE ledger_jobs_new (
    id                   BLOB PRIMARY KEY NOT NULL,
    customer_id          BLOB NOT NULL REFERENCES customers (id),
    organization_id      BLOB,
    run                  BLOB NOT NULL REFERENCES ledger_runs (id),
    lineage_root         BLOB NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('reserved', 'running', 'finished',
                           'released', 'closed', 'held_for_review', 'denied')),
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
    finished_at          TEXT,
    flop_per_accelerator_second REAL,
    upstream             TEXT,
    upstream_job_id      TEXT,
    lease_expires_at     TEXT,
    closed_reason        TEXT CHECK (closed_reason IN ('lease_expired', 'customer', 'staff')),
    closed_by            TEXT,
    close_note           TEXT
) STRICT;

INSERT INTO ledger_jobs_new
    (id, customer_id, organization_id, run, lineage_root, status, decision, request_id, route,
     estimate_flop, hardware_flop, declared_flop, basis, table_version, accelerators,
     accelerator_type, bio_sequence, reserved_flop, used_flop, accelerator_seconds, decided_at,
     started_at, last_usage_at, finished_at, flop_per_accelerator_second, upstream,
     upstream_job_id)
SELECT id, customer_id, organization_id, run, lineage_root, status, decision, request_id, route,
       estimate_flop, hardware_flop, declared_flop, basis, table_version, accelerators,
       accelerator_type, bio_sequence, reserved_flop, used_flop, accelerator_seconds, decided_at,
       started_at, last_usage_at, finished_at, flop_per_accelerator_second, upstream,
       upstream_job_id
FROM ledger_jobs;

DROP TABLE ledger_jobs;
ALTER TABLE ledger_jobs_new RENAME TO ledger_jobs;

CREATE INDEX ledger_jobs_customer_time ON ledger_jobs
    (customer_id, decided_at, used_flop, reserved_flop);
CREATE INDEX ledger_jobs_organization_time ON ledger_jobs
    (organization_id, decided_at, used_flop, reserved_flop);
CREATE INDEX ledger_jobs_run ON ledger_jobs (run);
CREATE INDEX ledger_jobs_time ON ledger_jobs (decided_at);
CREATE INDEX ledger_jobs_open ON ledger_jobs (customer_id) WHERE status IN ('reserved', 'running');
CREATE INDEX ledger_jobs_lease ON ledger_jobs (lease_expires_at)
    WHERE status IN ('reserved', 'running');
CREATE UNIQUE INDEX ledger_jobs_upstream_job ON ledger_jobs (upstream, upstream_job_id)
    WHERE upstream_job_id IS NOT NULL;

ALTER TABLE ledger_reports ADD COLUMN withdrawn_at TEXT;
ALTER TABLE ledger_reports ADD COLUMN withdrawn_reason TEXT;

COMMIT;

PRAGMA foreign_keys = ON;
