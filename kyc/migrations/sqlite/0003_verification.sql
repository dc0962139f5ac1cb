-- Verification: applications, staff approvals, encrypted documents and IDV webhook events.
-- SQLite dialect; keep in step with ../postgres/0003_verification.sql.
-- Personal data lives only in the *_sealed columns (AES-256-GCM under the master key, bound to
-- the row id); the clear columns hold what queues and filters need.

CREATE TABLE verification_applications (
    id                       BLOB PRIMARY KEY NOT NULL,
    customer_id              BLOB NOT NULL REFERENCES customers (id),
    kind                     TEXT NOT NULL CHECK (kind IN ('individual', 'organization')),
    status                   TEXT NOT NULL CHECK (status IN ('draft', 'submitted', 'screening',
                                 'pending_review', 'needs_info', 'approved', 'rejected',
                                 'suspended', 'expired', 'closed')),
    requested_tier           TEXT,
    country                  TEXT,
    payload_sealed           BLOB NOT NULL,
    review_sealed            BLOB,
    reason_sealed            BLOB,
    screening_list_version   TEXT,
    screening_score          REAL,
    screening_decision       TEXT CHECK (screening_decision IN ('clear', 'review', 'hit')),
    screening_overridden_by  BLOB,
    risk_score               INTEGER,
    idv_outcome              TEXT CHECK (idv_outcome IN ('verified', 'requires_input', 'failed')),
    granted_tier             TEXT,
    expires_at               TEXT,
    claimed_by               BLOB,
    claimed_at               TEXT,
    version                  INTEGER NOT NULL,
    created_at               TEXT NOT NULL,
    updated_at               TEXT NOT NULL,
    submitted_at             TEXT,
    decided_at               TEXT
) STRICT;

CREATE INDEX verification_applications_customer ON verification_applications (customer_id, created_at);
CREATE INDEX verification_applications_queue ON verification_applications (status, submitted_at);
CREATE INDEX verification_applications_expiry ON verification_applications (status, expires_at);

CREATE TABLE verification_approvals (
    application_id  BLOB NOT NULL REFERENCES verification_applications (id),
    staff_id        BLOB NOT NULL,
    tier            TEXT NOT NULL,
    approved_at     TEXT NOT NULL,
    PRIMARY KEY (application_id, staff_id, tier)
) STRICT;

CREATE TABLE verification_documents (
    id              BLOB PRIMARY KEY NOT NULL,
    application_id  BLOB NOT NULL REFERENCES verification_applications (id),
    doc_type        TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    size_bytes      INTEGER NOT NULL,
    sha256          BLOB NOT NULL,
    wrapped_key     BLOB NOT NULL,
    ciphertext      BLOB NOT NULL,
    uploaded_at     TEXT NOT NULL
) STRICT;

CREATE INDEX verification_documents_application ON verification_documents (application_id, uploaded_at);

CREATE TABLE idv_events (
    provider        TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    application_id  BLOB NOT NULL REFERENCES verification_applications (id),
    outcome         TEXT NOT NULL CHECK (outcome IN ('verified', 'requires_input', 'failed')),
    received_at     TEXT NOT NULL,
    PRIMARY KEY (provider, event_id)
) STRICT;

CREATE INDEX idv_events_application ON idv_events (application_id, received_at);
