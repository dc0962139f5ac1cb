-- Organization membership and invitations (see the PostgreSQL twin,
-- ../postgres/0014_organization_members.sql, for the why of each). SQLite dialect.

CREATE TABLE organization_members (
    customer_id      BLOB PRIMARY KEY NOT NULL REFERENCES customers (id),
    organization_id  BLOB NOT NULL REFERENCES organizations (id),
    role             TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    joined_at        TEXT NOT NULL
) STRICT;

CREATE INDEX organization_members_organization ON organization_members (organization_id);

CREATE TABLE organization_invitations (
    id               BLOB PRIMARY KEY NOT NULL,
    organization_id  BLOB NOT NULL REFERENCES organizations (id),
    email            TEXT NOT NULL,
    invited_by       BLOB NOT NULL REFERENCES customers (id),
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    accepted_at      TEXT,
    accepted_by      BLOB REFERENCES customers (id),
    revoked_at       TEXT
) STRICT;

CREATE INDEX organization_invitations_organization ON organization_invitations
    (organization_id, created_at);
CREATE INDEX organization_invitations_email ON organization_invitations (email, created_at);

INSERT INTO organization_members (customer_id, organization_id, role, joined_at)
SELECT id, organization_id, 'member', updated_at FROM customers WHERE organization_id IS NOT NULL;
