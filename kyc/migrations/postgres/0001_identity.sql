-- Identity and credentials: accounts, staff, the access log, signing keys, refresh tokens and
-- API keys. PostgreSQL dialect; keep in step with ../sqlite/0001_identity.sql.

CREATE TABLE organizations (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE customers (
    id               UUID PRIMARY KEY,
    email            TEXT NOT NULL UNIQUE,
    password_hash    TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('individual', 'organization')),
    status           TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'closed')),
    tier             TEXT NOT NULL,
    organization_id  UUID REFERENCES organizations (id),
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

CREATE INDEX customers_organization ON customers (organization_id);

CREATE TABLE staff_users (
    id             UUID PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL CHECK (role IN ('reviewer', 'senior_reviewer', 'auditor', 'admin')),
    password_hash  TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    disabled_at    TIMESTAMPTZ
);

CREATE TABLE access_log (
    id           UUID PRIMARY KEY,
    occurred_at  TIMESTAMPTZ NOT NULL,
    client_ip    TEXT,
    action       TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    subject      TEXT NOT NULL,
    actor        TEXT,
    detail       TEXT
);

CREATE INDEX access_log_subject ON access_log (subject, occurred_at);
CREATE INDEX access_log_time ON access_log (occurred_at);

CREATE TABLE signing_keys (
    kid                 TEXT PRIMARY KEY,
    private_key_sealed  BYTEA NOT NULL,
    public_key          BYTEA NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    not_after_verify    TIMESTAMPTZ,
    active              BOOLEAN NOT NULL
);

-- At most one key signs at a time.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (active) WHERE active;

CREATE TABLE refresh_tokens (
    token_hash  BYTEA PRIMARY KEY,
    family_id   UUID NOT NULL,
    subject     TEXT NOT NULL,
    issued_at   TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_subject ON refresh_tokens (subject);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    customer_id  UUID NOT NULL REFERENCES customers (id),
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    scopes       JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

CREATE INDEX api_keys_customer ON api_keys (customer_id);
