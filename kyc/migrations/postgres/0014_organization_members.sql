-- Organization membership and invitations:
-- * `organization_members`: one row per customer in an organization (a customer is in at most
--   one), with its role: `owner` (the account whose KYB approval created or re-verified the
--   organization) or `member` (joined by accepting an owner's invitation).
--   `customers.organization_id` stays the value metering and the data plane read; both are
--   written in one transaction (kyc/src/accounts/organizations.rs).
-- * `organization_invitations`: an owner's invitation of an email address (normalized), valid
--   until `expires_at`, then accepted (`accepted_at`, `accepted_by`) or revoked (`revoked_at`).
-- * Customers already holding an organization (set before this table existed) become members.
-- PostgreSQL dialect; keep in step with ../sqlite/0014_organization_members.sql.

CREATE TABLE organization_members (
    customer_id      UUID PRIMARY KEY REFERENCES customers (id),
    organization_id  UUID NOT NULL REFERENCES organizations (id),
    role             TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    joined_at        TIMESTAMPTZ NOT NULL
);

CREATE INDEX organization_members_organization ON organization_members (organization_id);

CREATE TABLE organization_invitations (
    id               UUID PRIMARY KEY,
    organization_id  UUID NOT NULL REFERENCES organizations (id),
    email            TEXT NOT NULL,
    invited_by       UUID NOT NULL REFERENCES customers (id),
    created_at       TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    accepted_at      TIMESTAMPTZ,
    accepted_by      UUID REFERENCES customers (id),
    revoked_at       TIMESTAMPTZ
);

CREATE INDEX organization_invitations_organization ON organization_invitations
    (organization_id, created_at);
CREATE INDEX organization_invitations_email ON organization_invitations (email, created_at);

INSERT INTO organization_members (customer_id, organization_id, role, joined_at)
SELECT id, organization_id, 'member', updated_at FROM customers WHERE organization_id IS NOT NULL;
