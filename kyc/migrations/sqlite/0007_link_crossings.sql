-- A threshold crossing may also be recorded when staff link two accounts (phase `link`): the
-- merged group's rolling total is re-checked at once (kyc/src/ledger/link_thresholds.rs).
-- SQLite dialect; keep in step with ../postgres/0007_link_crossings.sql.
--
-- SQLite cannot change a CHECK constraint in place, so ledger_crossings is rebuilt the
-- documented way (https://www.sqlite.org/lang_altertable.html#otheralter). No table references
-- ledger_crossings, so foreign keys can stay on and the migration's own transaction suffices.

CREATE TABLE ledger_crossings_new (
    id              BLOB PRIMARY KEY NOT NULL,
    job_id          BLOB NOT NULL REFERENCES ledger_jobs (id),
    phase           TEXT NOT NULL CHECK (phase IN ('admission', 'usage', 'link')),
    label           TEXT NOT NULL,
    threshold_flop  REAL NOT NULL,
    scope           TEXT NOT NULL CHECK (scope IN ('run', 'customer', 'organization', 'group')),
    scope_id        BLOB NOT NULL,
    action          TEXT NOT NULL CHECK (action IN ('notify', 'report', 'review', 'block')),
    previous_flop   REAL NOT NULL,
    projected_flop  REAL NOT NULL,
    occurred_at     TEXT NOT NULL
) STRICT;

INSERT INTO ledger_crossings_new
    (id, job_id, phase, label, threshold_flop, scope, scope_id, action, previous_flop,
     projected_flop, occurred_at)
SELECT id, job_id, phase, label, threshold_flop, scope, scope_id, action, previous_flop,
       projected_flop, occurred_at
FROM ledger_crossings;

DROP TABLE ledger_crossings;
ALTER TABLE ledger_crossings_new RENAME TO ledger_crossings;

CREATE INDEX ledger_crossings_job ON ledger_crossings (job_id);
CREATE INDEX ledger_crossings_time ON ledger_crossings (occurred_at);
CREATE INDEX ledger_crossings_scope ON ledger_crossings (scope_id, label);
