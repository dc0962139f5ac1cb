-- no-transaction
-- Ledger refinements after 0005 (see the PostgreSQL twin for the why of each):
-- * job status `released` (reservation returned, counts nowhere);
-- * window indexes covering both FLOP columns;
-- * crossings looked up by (scope, label);
-- * a review hold says why it was raised;
-- * a job keeps the FLOP per accelerator-second its estimate used, so measured usage is charged
--   at the job's own rate.
--
-- SQLite cannot change a CHECK constraint in place, so ledger_jobs is rebuilt the documented way
-- (https://www.sqlite.org/lang_altertable.html#otheralter): foreign keys off outside the
-- transaction (other tables reference ledger_jobs), copy, swap, check, foreign keys on. Hence
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
                           'released', 'held_for_review', 'denied')),
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
    flop_per_accelerator_second REAL
) STRICT;

INSERT INTO ledger_jobs_new
    (id, customer_id, organization_id, run, lineage_root, status, decision, request_id, route,
     estimate_flop, hardware_flop, declared_flop, basis, table_version, accelerators,
     accelerator_type, bio_sequence, reserved_flop, used_flop, accelerator_seconds, decided_at,
     started_at, last_usage_at, finished_at)
SELECT id, customer_id, organization_id, run, lineage_root, status, decision, request_id, route,
       estimate_flop, hardware_flop, declared_flop, basis, table_version, accelerators,
       accelerator_type, bio_sequence, reserved_flop, used_flop, accelerator_seconds, decided_at,
       started_at, last_usage_at, finished_at
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

CREATE INDEX ledger_crossings_scope ON ledger_crossings (scope_id, label);

ALTER TABLE ledger_reviews ADD COLUMN hold_reason TEXT;

COMMIT;

PRAGMA foreign_keys = ON;
