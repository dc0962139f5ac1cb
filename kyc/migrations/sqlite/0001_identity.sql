-- Identity and credentials: accounts, staff, the access log, signing keys, refresh tokens and
-- API keys. SQLite dialect; keep in step with ../postgres/0001_identity.sql.
-- Conventions: ids are 16-byte UUID blobs; timestamps are UTC RFC 3339 text with six fraction
-- digits (see kyc/src/store/timestamp.rs), so text order is time order; booleans are 0/1.

CREATE TABLE organizations (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE customers (
    id               BLOB PRIMARY KEY NOT NULL,
    email            TEXT NOT NULL UNIQUE,
    password_hash    TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('individual', 'organization')),
    status           TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'closed')),
    tier             TEXT NOT NULL,
    organization_id  BLOB REFERENCES organizations (id),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
) STRICT;

CREATE INDEX customers_organization ON customers (organization_id);

CREATE TABLE staff_users (
    id             BLOB PRIMARY KEY NOT NULL,
    email          TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL CHECK (role IN ('reviewer', 'senior_reviewer', 'auditor', 'admin')),
    password_hash  TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    disabled_at    TEXT
) STRICT;

CREATE TABLE access_log (
    id           BLOB PRIMARY KEY NOT NULL,
    occurred_at  TEXT NOT NULL,
    client_ip    TEXT,
    action       TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    subject      TEXT NOT NULL,
    actor        TEXT,
    detail       TEXT
) STRICT;

CREATE INDEX access_log_subject ON access_log (subject, occurred_at);
CREATE INDEX access_log_time ON access_log (occurred_at);

CREATE TABLE signing_keys (
    kid                 TEXT PRIMARY KEY NOT NULL,
    private_key_sealed  BLOB NOT NULL,
    public_key          BLOB NOT NULL,
    created_at          TEXT NOT NULL,
    not_after_verify    TEXT,
    active              INTEGER NOT NULL CHECK (active IN (0, 1))
) STRICT;

-- At most one key signs at a time.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (active) WHERE active = 1;

CREATE TABLE refresh_tokens (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    family_id   BLOB NOT NULL,
    subject     TEXT NOT NULL,
    issued_at   TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    revoked_at  TEXT
) STRICT;

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_subject ON refresh_tokens (subject);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    customer_id  BLOB NOT NULL REFERENCES customers (id),
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    revoked_at   TEXT
) STRICT;

CREATE INDEX api_keys_customer ON api_keys (customer_id);
