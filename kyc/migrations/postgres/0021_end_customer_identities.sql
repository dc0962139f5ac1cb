-- The identity keys of end customers (docs/resellers.md, kyc/src/verification/resellers/identity.rs):
-- one row per key of an end customer — a person's name, date of birth and nationality, and its
-- identity document; an organization's registration — as an HMAC-SHA256 under a subkey of the
-- master key (never the identity in clear). The primary key makes one identity one end customer
-- per reseller: of two registrations racing on two replicas, only one inserts its keys, and the
-- other answers with the end customer that did. The hash index finds the same identity
-- registered by another reseller (shown to staff). End customers registered before this
-- migration have no keys (their identity is sealed; hashing needs the master key).
-- PostgreSQL dialect; keep in step with ../sqlite/0021_end_customer_identities.sql.

CREATE TABLE end_customer_identities (
    reseller_id      UUID NOT NULL REFERENCES resellers (organization_id),
    identity_hash    BYTEA NOT NULL CHECK (octet_length(identity_hash) = 32),
    end_customer_id  UUID NOT NULL REFERENCES end_customers (id),
    PRIMARY KEY (reseller_id, identity_hash)
);

CREATE INDEX end_customer_identities_hash ON end_customer_identities (identity_hash);
CREATE INDEX end_customer_identities_end_customer ON end_customer_identities (end_customer_id);
