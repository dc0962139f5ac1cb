-- Organization invitations carry a one-time acceptance token (its SHA-256 here; the token itself
-- is shown once, to the inviting owner, who hands it to the invitee). Email addresses are not
-- confirmed at sign-up, so the address alone does not prove the invitee is the person invited.
-- Invitations created before this migration have no token and cannot be accepted (re-invite).
-- PostgreSQL dialect; keep in step with ../sqlite/0016_invitation_tokens.sql.

ALTER TABLE organization_invitations ADD COLUMN token_hash BYTEA;
