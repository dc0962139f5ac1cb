-- Job leases and closing, and approvals and reports given back when a job never ran:
-- * every admitted job gets a lease (`lease_expires_at`: its time limit plus the policy's
--   `lease_grace`); a background task closes a job whose lease ended without a final usage
--   event, charged at its reservation (kyc/src/ledger/close.rs);
-- * status `closed`: closed by lease expiry, by its customer or by staff (`closed_reason`
--   `lease_expired` | `customer` | `staff`, `closed_by` the actor, `close_note` staff's reason).
--   A closed job is no longer open (it frees its concurrency slot); its charge stays counted
--   (`reserved_flop` is the part not backed by measured usage) until a late `finished` usage
--   event corrects it to the measured amount;
-- * a report of a job whose reservation was released (the upstream refused it) is withdrawn
--   (`withdrawn_at`, `withdrawn_reason`): the job never ran.
-- PostgreSQL dialect; keep in step with ../sqlite/0013_job_leases.sql.

ALTER TABLE ledger_jobs DROP CONSTRAINT ledger_jobs_status_check;
ALTER TABLE ledger_jobs ADD CONSTRAINT ledger_jobs_status_check CHECK (status IN
    ('reserved', 'running', 'finished', 'released', 'closed', 'held_for_review', 'denied'));

ALTER TABLE ledger_jobs ADD COLUMN lease_expires_at TIMESTAMPTZ;
ALTER TABLE ledger_jobs ADD COLUMN closed_reason TEXT
    CHECK (closed_reason IN ('lease_expired', 'customer', 'staff'));
ALTER TABLE ledger_jobs ADD COLUMN closed_by TEXT;
ALTER TABLE ledger_jobs ADD COLUMN close_note TEXT;

-- The lease sweep's scan: open jobs by lease end.
CREATE INDEX ledger_jobs_lease ON ledger_jobs (lease_expires_at)
    WHERE status IN ('reserved', 'running');

ALTER TABLE ledger_reports ADD COLUMN withdrawn_at TIMESTAMPTZ;
ALTER TABLE ledger_reports ADD COLUMN withdrawn_reason TEXT;
