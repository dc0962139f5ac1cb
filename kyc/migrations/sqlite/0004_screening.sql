-- Denied-party screening: imported list versions, their normalized entries, and screening
-- results. SQLite dialect; keep in step with ../postgres/0004_screening.sql.
-- Conventions as in 0001: ids are 16-byte UUID blobs, timestamps fixed-width UTC RFC 3339 text.

-- One row per imported list file (or SDN file set). A version becomes visible with its entries
-- in one transaction, so a half-imported list is never the latest.
CREATE TABLE screening_lists (
    id           BLOB PRIMARY KEY NOT NULL,
    format       TEXT NOT NULL CHECK (format IN ('csl', 'sdn', 'opensanctions')),
    source_file  TEXT NOT NULL,
    label        TEXT NOT NULL,
    -- Hex SHA-256 of the input (see kyc/src/screening/store.rs for multi-file lists).
    sha256       TEXT NOT NULL,
    entry_count  INTEGER NOT NULL CHECK (entry_count >= 0),
    imported_at  TEXT NOT NULL
) STRICT;

CREATE INDEX screening_lists_imported ON screening_lists (imported_at, id);

-- The normalized entry (kyc::screening::ListEntry) as JSON text, in list order (`seq`).
CREATE TABLE screening_entries (
    list_version_id  BLOB NOT NULL REFERENCES screening_lists (id) ON DELETE CASCADE,
    seq              INTEGER NOT NULL,
    entry_key        TEXT NOT NULL,
    entry            TEXT NOT NULL,
    PRIMARY KEY (list_version_id, seq)
) STRICT, WITHOUT ROWID;

CREATE UNIQUE INDEX screening_entries_key ON screening_entries (list_version_id, entry_key);

-- Every screening of an applicant, organization or beneficial owner, with the list version it
-- used and the explanation of the best match (NULL when there was no candidate at all).
CREATE TABLE screening_results (
    id               BLOB PRIMARY KEY NOT NULL,
    subject_ref      TEXT NOT NULL,
    list_version_id  BLOB NOT NULL REFERENCES screening_lists (id),
    score            REAL NOT NULL CHECK (score >= 0 AND score <= 1),
    decision         TEXT NOT NULL CHECK (decision IN ('clear', 'review', 'hit')),
    entry_key        TEXT,
    explanation      TEXT,
    screened_at      TEXT NOT NULL
) STRICT;

CREATE INDEX screening_results_subject ON screening_results (subject_ref, screened_at);
CREATE INDEX screening_results_version ON screening_results (list_version_id);
