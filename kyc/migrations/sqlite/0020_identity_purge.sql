-- Retention of identity payloads (kyc/src/retention, docs/retention.md). SQLite dialect; keep in
-- step with ../postgres/0020_identity_purge.sql.

-- An ended application's sealed payload (the applicant's form data) is withdrawn under the
-- `verification` class: `payload_sealed` is emptied and `identity_purged_at` set; the row, its
-- clear columns, review file and decision reason stay, and every reader shows the marker instead.
ALTER TABLE verification_applications ADD COLUMN identity_purged_at TEXT;

-- The same for a reseller's end customer once its account is closed: the row and its id stay
-- (its jobs, crossings and reports refer to it), the sealed identity goes.
ALTER TABLE end_customers ADD COLUMN identity_purged_at TEXT;
