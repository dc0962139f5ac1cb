-- Ledger refinements after 0005:
-- * a job the upstream refused or that never started is `released`: its reservation is returned
--   and it counts nowhere;
-- * the customer and organization window indexes carry both FLOP columns, so the rolling-window
--   sums read the index alone;
-- * crossings are looked up by (scope, label): a threshold fires the first time a scope's total
--   reaches it (kyc/src/ledger/decision.rs). Rows of held or denied jobs record what they would
--   have crossed; only admitted jobs' rows count as fired;
-- * a review hold says why it was raised (a threshold, or a declared/hardware estimate gap);
-- * a job keeps the FLOP per accelerator-second its estimate used (peak × utilization), so
--   measured accelerator-seconds are charged at the job's own rate. NULL for older jobs.

ALTER TABLE ledger_jobs DROP CONSTRAINT ledger_jobs_status_check;
ALTER TABLE ledger_jobs ADD CONSTRAINT ledger_jobs_status_check CHECK (status IN
    ('reserved', 'running', 'finished', 'released', 'held_for_review', 'denied'));

DROP INDEX ledger_jobs_customer_time;
DROP INDEX ledger_jobs_organization_time;
CREATE INDEX ledger_jobs_customer_time ON ledger_jobs (customer_id, decided_at)
    INCLUDE (used_flop, reserved_flop);
CREATE INDEX ledger_jobs_organization_time ON ledger_jobs (organization_id, decided_at)
    INCLUDE (used_flop, reserved_flop);

CREATE INDEX ledger_crossings_scope ON ledger_crossings (scope_id, label);

ALTER TABLE ledger_reviews ADD COLUMN hold_reason TEXT;

ALTER TABLE ledger_jobs ADD COLUMN flop_per_accelerator_second DOUBLE PRECISION;
