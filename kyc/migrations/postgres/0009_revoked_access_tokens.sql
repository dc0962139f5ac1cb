-- Access tokens revoked before their expiry (logout). Kept until `expires_at`; every replica
-- loads the live ones at start and hears of new ones through cluster notices.
CREATE TABLE revoked_access_tokens (
    jti         TEXT PRIMARY KEY NOT NULL,
    subject     TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX revoked_access_tokens_expiry ON revoked_access_tokens (expires_at);
