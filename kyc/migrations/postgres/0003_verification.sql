-- Verification: applications, staff approvals, encrypted documents and IDV webhook events.
-- PostgreSQL dialect; keep in step with ../sqlite/0003_verification.sql.
-- Personal data lives only in the *_sealed columns (AES-256-GCM under the master key, bound to
-- the row id); the clear columns hold what queues and filters need.

CREATE TABLE verification_applications (
    id                       UUID PRIMARY KEY,
    customer_id              UUID NOT NULL REFERENCES customers (id),
    kind                     TEXT NOT NULL CHECK (kind IN ('individual', 'organization')),
    status                   TEXT NOT NULL CHECK (status IN ('draft', 'submitted', 'screening',
                                 'pending_review', 'needs_info', 'approved', 'rejected',
                                 'suspended', 'expired', 'closed')),
    requested_tier           TEXT,
    country                  TEXT,
    payload_sealed           BYTEA NOT NULL,
    review_sealed            BYTEA,
    reason_sealed            BYTEA,
    screening_list_version   TEXT,
    screening_score          DOUBLE PRECISION,
    screening_decision       TEXT CHECK (screening_decision IN ('clear', 'review', 'hit')),
    screening_overridden_by  UUID,
    risk_score               BIGINT,
    idv_outcome              TEXT CHECK (idv_outcome IN ('verified', 'requires_input', 'failed')),
    granted_tier             TEXT,
    expires_at               TIMESTAMPTZ,
    claimed_by               UUID,
    claimed_at               TIMESTAMPTZ,
    version                  BIGINT NOT NULL,
    created_at               TIMESTAMPTZ NOT NULL,
    updated_at               TIMESTAMPTZ NOT NULL,
    submitted_at             TIMESTAMPTZ,
    decided_at               TIMESTAMPTZ
);

CREATE INDEX verification_applications_customer ON verification_applications (customer_id, created_at);
CREATE INDEX verification_applications_queue ON verification_applications (status, submitted_at);
CREATE INDEX verification_applications_expiry ON verification_applications (status, expires_at);

CREATE TABLE verification_approvals (
    application_id  UUID NOT NULL REFERENCES verification_applications (id),
    staff_id        UUID NOT NULL,
    tier            TEXT NOT NULL,
    approved_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (application_id, staff_id, tier)
);

CREATE TABLE verification_documents (
    id              UUID PRIMARY KEY,
    application_id  UUID NOT NULL REFERENCES verification_applications (id),
    doc_type        TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    size_bytes      BIGINT NOT NULL,
    sha256          BYTEA NOT NULL,
    wrapped_key     BYTEA NOT NULL,
    ciphertext      BYTEA NOT NULL,
    uploaded_at     TIMESTAMPTZ NOT NULL
);

CREATE INDEX verification_documents_application ON verification_documents (application_id, uploaded_at);

CREATE TABLE idv_events (
    provider        TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    application_id  UUID NOT NULL REFERENCES verification_applications (id),
    outcome         TEXT NOT NULL CHECK (outcome IN ('verified', 'requires_input', 'failed')),
    received_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, event_id)
);

CREATE INDEX idv_events_application ON idv_events (application_id, received_at);
