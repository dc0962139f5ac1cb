-- The tamper-evident audit chain. PostgreSQL dialect; keep in step with ../sqlite/0002_audit.sql.
-- Each record stores SHA-256(prev_hash || canonical JSON of the record without `hash`); see
-- kyc/src/audit/mod.rs. `detail` is kept as the exact canonical JSON text that was hashed (TEXT,
-- not JSONB: JSONB would re-encode it and the hash could no longer be recomputed).

CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY CHECK (seq > 0),
    at         TIMESTAMPTZ NOT NULL,
    actor      TEXT NOT NULL,
    actor_ip   TEXT,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    prev_hash  BYTEA NOT NULL,
    hash       BYTEA NOT NULL
);

CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_subject ON audit_log (subject, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);

-- One row: the last sequence number and hash. Appends lock it (UPDATE … RETURNING), which makes
-- the chain one line even with writers in several processes.
CREATE TABLE audit_head (
    id    SMALLINT PRIMARY KEY CHECK (id = 1),
    seq   BIGINT NOT NULL,
    hash  BYTEA NOT NULL
);

INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- Append-only against mistakes in code. Someone with DDL rights can drop this; the hash chain
-- is what detects that.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;

CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
