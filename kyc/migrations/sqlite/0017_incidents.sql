-- Abuse incidents and the review flags raised by partners' threat-indicator bundles:
-- * `incidents`: one staff-recorded incident (a kind such as `account_sharing`, a description)
--   moving open → reported → closed (kyc/src/incidents/mod.rs).
-- * `incident_links`: what the incident is about: our customers, organizations and runs.
-- * `incident_indicators`: its indicators (client address, email domain, payment fingerprint,
--   document SHA-256, API key id). The normalized value is sealed with the master key (AES-GCM,
--   bound to the row id); `value_hash` is its keyed hash (HMAC-SHA256 under a key derived from
--   the master key), which import compares partners' indicators against.
-- * `incident_flags`: a partner's indicator that matched one of our customers: the partner's
--   context (bundle identity name, incident description, indicator type) and the keyed hash of
--   the matched value — never the partner's raw value. One flag per customer and partner
--   indicator, so importing a bundle twice changes nothing.
-- SQLite dialect; keep in step with ../postgres/0017_incidents.sql.

CREATE TABLE incidents (
    id           BLOB PRIMARY KEY NOT NULL,
    kind         TEXT NOT NULL,
    description  TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('open', 'reported', 'closed')),
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;

CREATE INDEX incidents_created ON incidents (created_at, id);

CREATE TABLE incident_links (
    incident_id  BLOB NOT NULL REFERENCES incidents (id),
    target_kind  TEXT NOT NULL CHECK (target_kind IN ('customer', 'organization', 'run')),
    target_id    BLOB NOT NULL,
    PRIMARY KEY (incident_id, target_kind, target_id)
) STRICT;

CREATE INDEX incident_links_target ON incident_links (target_kind, target_id);

CREATE TABLE incident_indicators (
    id            BLOB PRIMARY KEY NOT NULL,
    incident_id   BLOB NOT NULL REFERENCES incidents (id),
    position      INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('ipv4', 'ipv6', 'email_domain',
                      'payment_fingerprint', 'document_sha256', 'api_key_id')),
    value_sealed  BLOB NOT NULL,
    value_hash    BLOB NOT NULL CHECK (length(value_hash) = 32),
    UNIQUE (incident_id, position)
) STRICT;

CREATE INDEX incident_indicators_hash ON incident_indicators (value_hash);

CREATE TABLE incident_flags (
    id                  BLOB PRIMARY KEY NOT NULL,
    customer_id         BLOB NOT NULL REFERENCES customers (id),
    partner             TEXT NOT NULL,
    partner_indicator   TEXT NOT NULL,
    indicator_kind      TEXT NOT NULL CHECK (indicator_kind IN ('ipv4', 'ipv6', 'email_domain',
                            'payment_fingerprint', 'document_sha256', 'api_key_id')),
    value_hash          BLOB NOT NULL CHECK (length(value_hash) = 32),
    context             TEXT NOT NULL,
    bundle_id           TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    UNIQUE (customer_id, partner_indicator)
) STRICT;

CREATE INDEX incident_flags_customer ON incident_flags (customer_id, created_at);
