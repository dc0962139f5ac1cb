-- A threshold crossing may also be recorded when staff link two accounts (phase `link`): the
-- merged group's rolling total is re-checked at once (kyc/src/ledger/link_thresholds.rs).
-- Keep in step with ../sqlite/0007_link_crossings.sql.

ALTER TABLE ledger_crossings DROP CONSTRAINT ledger_crossings_phase_check;
ALTER TABLE ledger_crossings ADD CONSTRAINT ledger_crossings_phase_check
    CHECK (phase IN ('admission', 'usage', 'link'));
