-- Retention per record class (kyc/src/retention). SQLite dialect; keep in step with
-- ../postgres/0019_retention.sql.

-- Redaction of expired audit records: `actor_ip` and `detail` give way to a marker and
-- `redacted_at` is set; `seq`, `at`, `actor`, `action`, `subject`, `prev_hash` and `hash` stay, so
-- every link still verifies (see kyc/src/audit/verify.rs). The update trigger now allows exactly
-- that change, once, and nothing else; deletes stay refused.
ALTER TABLE audit_log ADD COLUMN redacted_at TEXT;

DROP TRIGGER audit_log_no_update;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
WHEN NOT (
    OLD.redacted_at IS NULL AND NEW.redacted_at IS NOT NULL
    AND NEW.seq = OLD.seq AND NEW.at = OLD.at AND NEW.actor = OLD.actor
    AND NEW.action = OLD.action AND NEW.subject = OLD.subject
    AND NEW.prev_hash = OLD.prev_hash AND NEW.hash = OLD.hash
    AND NEW.actor_ip IS NULL AND NEW.detail = '{"redacted":true}'
)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only (a retention redaction is the only change allowed)');
END;

-- Purged documents keep their row (type, size, sha256) and lose their bytes.
ALTER TABLE verification_documents ADD COLUMN purged_at TEXT;

-- Redacted accounts keep their id (every record refers to it) and lose email and password.
ALTER TABLE customers ADD COLUMN redacted_at TEXT;

-- One row per UTC day on which the daily task ran: the replica that inserts it does the work, in
-- the same transaction, so the task acts once per day across the cluster.
CREATE TABLE retention_runs (
    day     TEXT PRIMARY KEY NOT NULL,
    ran_at  TEXT NOT NULL
) STRICT;
