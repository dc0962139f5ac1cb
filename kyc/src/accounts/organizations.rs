//! Store operations on organization membership: the owner's invitations, accepting one, staff
//! removing a member, and the reads behind the customer and staff views. Each change writes
//! `organization_members` and `customers.organization_id` (the column metering and the data
//! plane read) together, with its audit record, in one transaction; the rules are in
//! [`super::membership`]. Callers publish `Notice::CustomerChanged` for the member afterwards.
//!
//! Concurrency: the acting customer's row is locked first (a no-op update, as in the
//! verification workflow); accepting marks the invitation only while it is still open, and the
//! members table's key keeps a customer in one organization.

use time::OffsetDateTime;
use uuid::Uuid;

use super::membership::{
    INVITATION_VALIDITY, Invitation, InvitationState, MAX_PENDING_INVITATIONS, Member, MemberRole,
    MembershipError, OrganizationView, ReceivedInvitation, may_accept, may_invite,
};
use super::membership_tx::{MembershipTx, tier_of};
use super::{Actor, Email, parse_column};
use crate::audit::{self, AuditAction, AuditEntry};
use crate::store::{AccountsStore, DbTime, StoreError, in_transaction, on_pool};

/// Longest staff reason for a removal, in characters.
pub const MAX_REMOVAL_REASON_CHARS: usize = 1000;

/// The invitation select in [`Invitation`] field order, as a literal for `concat!`.
macro_rules! invitation_select {
    () => {
        "SELECT id, organization_id, email, invited_by, created_at, expires_at, accepted_at, \
         accepted_by, revoked_at FROM organization_invitations "
    };
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    customer_id: Uuid,
    email: String,
    tier: String,
    status: String,
    role: String,
    joined_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct OrganizationRow {
    id: Uuid,
    name: String,
    created_at: OffsetDateTime,
}

// === impl AccountsStore ===

impl AccountsStore<'_> {
    /// The owner `owner_id` invites `email` to their organization (valid for
    /// [`INVITATION_VALIDITY`]); audited as `organization.invitation.created`.
    pub async fn invite_member(
        &self,
        owner_id: Uuid,
        email: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Invitation, MembershipError> {
        let email = Email::parse(email).map_err(|_| MembershipError::InvalidEmail)?;
        let email = email.as_str().to_owned();
        let id = Uuid::now_v7();
        let expires_at = now + INVITATION_VALIDITY;
        let token = new_token()?;
        let invitation = in_transaction!(self.store, |tx| {
            let owner = tx
                .lock_member(owner_id)
                .await?
                .ok_or(MembershipError::NotFound)?;
            let organization = may_invite(&owner)?;
            let member: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM customers WHERE email = $1 AND organization_id = $2",
            )
            .bind(&email)
            .bind(organization)
            .fetch_optional(&mut *tx)
            .await?;
            if member.is_some() {
                return Err(MembershipError::AlreadyMember);
            }
            let (pending, same): (i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN email = $2 THEN 1 ELSE 0 END), 0) \
                 FROM organization_invitations WHERE organization_id = $1 \
                 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $3",
            )
            .bind(organization)
            .bind(&email)
            .bind(DbTime::new(now))
            .fetch_one(&mut *tx)
            .await?;
            if same > 0 {
                return Err(MembershipError::AlreadyInvited);
            }
            if pending >= MAX_PENDING_INVITATIONS {
                return Err(MembershipError::TooManyInvitations);
            }
            sqlx::query(
                "INSERT INTO organization_invitations \
                 (id, organization_id, email, invited_by, created_at, expires_at, token_hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(organization)
            .bind(&email)
            .bind(owner_id)
            .bind(DbTime::new(now))
            .bind(DbTime::new(expires_at))
            .bind(token_hash(&token))
            .execute(&mut *tx)
            .await?;
            // The address stays out of the chain (personal data); the invitation id names it.
            let entry = AuditEntry::new(
                now,
                actor,
                AuditAction::InvitationCreated,
                format!("organization:{organization}"),
            )
            .with_detail(serde_json::json!({ "invitation_id": id, "invited_by": owner_id }));
            audit::append(&mut tx, &entry).await?;
            Invitation {
                id,
                organization_id: organization,
                email: email.clone(),
                invited_by: owner_id,
                created_at: DbTime::new(now).get(),
                expires_at: DbTime::new(expires_at).get(),
                accepted_at: None,
                accepted_by: None,
                revoked_at: None,
                token: Some(token.clone()),
            }
        });
        Ok(invitation)
    }

    /// The owner `owner_id` revokes a pending invitation of their organization (any other
    /// invitation is [`MembershipError::NotFound`]); audited as `organization.invitation.revoked`.
    pub async fn revoke_invitation(
        &self,
        owner_id: Uuid,
        invitation_id: Uuid,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<(), MembershipError> {
        in_transaction!(self.store, |tx| {
            let owner = tx
                .lock_member(owner_id)
                .await?
                .ok_or(MembershipError::NotFound)?;
            let organization = match owner.membership {
                Some((org, MemberRole::Owner)) => org,
                _ => return Err(MembershipError::NotOwner),
            };
            let invitation: Option<Invitation> =
                sqlx::query_as(concat!(invitation_select!(), "WHERE id = $1"))
                    .bind(invitation_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let invitation = invitation
                .filter(|i| i.organization_id == organization)
                .ok_or(MembershipError::NotFound)?;
            match invitation.state(now) {
                InvitationState::Pending => {}
                other => return Err(MembershipError::NotPending(other)),
            }
            sqlx::query("UPDATE organization_invitations SET revoked_at = $1 WHERE id = $2")
                .bind(DbTime::new(now))
                .bind(invitation_id)
                .execute(&mut *tx)
                .await?;
            let entry = AuditEntry::new(
                now,
                actor,
                AuditAction::InvitationRevoked,
                format!("organization:{organization}"),
            )
            .with_detail(serde_json::json!({ "invitation_id": invitation_id }));
            audit::append(&mut tx, &entry).await?;
        });
        Ok(())
    }

    /// `customer_id` accepts an invitation addressed to their email and joins its organization
    /// as a `member` (their tier unchanged); returns the organization. Audited as
    /// `organization.member.joined`.
    pub async fn accept_invitation(
        &self,
        customer_id: Uuid,
        invitation_id: Uuid,
        token: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Uuid, MembershipError> {
        let organization = in_transaction!(self.store, |tx| {
            let joiner = tx
                .lock_member(customer_id)
                .await?
                .ok_or(MembershipError::NotFound)?;
            let invitation: Option<Invitation> =
                sqlx::query_as(concat!(invitation_select!(), "WHERE id = $1"))
                    .bind(invitation_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let invitation = invitation.ok_or(MembershipError::NotFound)?;
            // The address alone proves nothing (sign-ups do not confirm it): the invitee shows
            // the token the owner was given. A wrong one is answered like an unknown invitation.
            let stored: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT token_hash FROM organization_invitations WHERE id = $1")
                    .bind(invitation_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if stored.as_deref() != Some(token_hash(token).as_slice()) {
                return Err(MembershipError::NotFound);
            }
            may_accept(&invitation, &joiner, now)?;
            // An invitation speaks for its organization only while the owner's account does:
            // one from a suspended or closed owner is not honoured.
            let owner_status: Option<String> = sqlx::query_scalar(
                "SELECT c.status FROM organization_members m \
                 JOIN customers c ON c.id = m.customer_id \
                 WHERE m.organization_id = $1 AND m.role = 'owner'",
            )
            .bind(invitation.organization_id)
            .fetch_optional(&mut *tx)
            .await?;
            if owner_status.as_deref() != Some("active") {
                return Err(MembershipError::OrganizationInactive);
            }
            let taken = sqlx::query(
                "UPDATE organization_invitations SET accepted_at = $1, accepted_by = $2 \
                 WHERE id = $3 AND accepted_at IS NULL AND revoked_at IS NULL",
            )
            .bind(DbTime::new(now))
            .bind(customer_id)
            .bind(invitation_id)
            .execute(&mut *tx)
            .await?;
            if taken.rows_affected() == 0 {
                return Err(MembershipError::NotPending(InvitationState::Accepted));
            }
            let organization = invitation.organization_id;
            tx.join(organization, customer_id, MemberRole::Member, now)
                .await?;
            let entry = AuditEntry::new(
                now,
                actor,
                AuditAction::MemberJoined,
                format!("organization:{organization}"),
            )
            .with_detail(serde_json::json!({
                "customer_id": customer_id,
                "invitation_id": invitation_id,
                "role": MemberRole::Member,
            }));
            audit::append(&mut tx, &entry).await?;
            organization
        });
        Ok(organization)
    }

    /// Staff remove `customer_id` from `organization_id` with a reason (the owner cannot be
    /// removed); audited as `organization.member.removed`. The member keeps their own tier.
    pub async fn remove_member(
        &self,
        organization_id: Uuid,
        customer_id: Uuid,
        reason: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<(), MembershipError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REMOVAL_REASON_CHARS {
            return Err(MembershipError::ReasonRequired);
        }
        in_transaction!(self.store, |tx| {
            let member = tx
                .lock_member(customer_id)
                .await?
                .ok_or(MembershipError::NotFound)?;
            match member.membership {
                Some((org, MemberRole::Member)) if org == organization_id => {}
                Some((org, MemberRole::Owner)) if org == organization_id => {
                    return Err(MembershipError::OwnerNotRemovable);
                }
                _ => return Err(MembershipError::NotFound),
            }
            sqlx::query("DELETE FROM organization_members WHERE customer_id = $1")
                .bind(customer_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE customers SET organization_id = NULL, updated_at = $1 WHERE id = $2",
            )
            .bind(DbTime::new(now))
            .bind(customer_id)
            .execute(&mut *tx)
            .await?;
            let entry = AuditEntry::new(
                now,
                actor,
                AuditAction::MemberRemoved,
                format!("organization:{organization_id}"),
            )
            .with_detail(serde_json::json!({ "customer_id": customer_id, "reason": reason }));
            audit::append(&mut tx, &entry).await?;
        });
        Ok(())
    }

    /// `customer_id`, a member (not the owner), leaves their organization: the removal of
    /// [`Self::remove_member`], with the member as actor. Returns the organization left.
    pub async fn leave_organization(
        &self,
        customer_id: Uuid,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Uuid, MembershipError> {
        let customer = self.customer_by_id(customer_id).await.map_err(store_of)?;
        let organization =
            (customer.and_then(|c| c.organization_id)).ok_or(MembershipError::NotFound)?;
        self.remove_member(
            organization,
            customer_id,
            "left the organization",
            actor,
            now,
        )
        .await?;
        Ok(organization)
    }

    /// The organization of `customer_id` as they see it (pending invitations only for its
    /// owner); `None` outside any organization.
    pub async fn organization_of_customer(
        &self,
        customer_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Option<OrganizationView>, MembershipError> {
        let Some(customer) = self.customer_by_id(customer_id).await.map_err(store_of)? else {
            return Ok(None);
        };
        let Some(organization) = customer.organization_id else {
            return Ok(None);
        };
        let Some(mut view) = self.organization_view(organization, now).await? else {
            return Ok(None);
        };
        let role = view
            .members
            .iter()
            .find(|m| m.customer_id == customer_id)
            .map(|m| m.role);
        if role != Some(MemberRole::Owner) {
            view.invitations.clear();
        }
        view.your_role = role;
        Ok(Some(view))
    }

    /// An organization with its members and pending invitations (for staff).
    pub async fn organization_view(
        &self,
        organization_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Option<OrganizationView>, MembershipError> {
        let org: Option<OrganizationRow> = on_pool!(self.store, |pool| {
            sqlx::query_as("SELECT id, name, created_at FROM organizations WHERE id = $1")
                .bind(organization_id)
                .fetch_optional(pool)
                .await?
        });
        let Some(org) = org else { return Ok(None) };
        // Members are those whose customer row names the organization; a row without a
        // membership (written before roles existed) counts as a plain member.
        let rows: Vec<MemberRow> = on_pool!(self.store, |pool| {
            sqlx::query_as(
                "SELECT c.id AS customer_id, c.email, c.tier, c.status, \
                 COALESCE(m.role, 'member') AS role, COALESCE(m.joined_at, c.updated_at) AS joined_at \
                 FROM customers c LEFT JOIN organization_members m \
                 ON m.customer_id = c.id AND m.organization_id = c.organization_id \
                 WHERE c.organization_id = $1 \
                 ORDER BY CASE WHEN m.role = 'owner' THEN 0 ELSE 1 END, joined_at, c.id",
            )
            .bind(organization_id)
            .fetch_all(pool)
            .await?
        });
        let invitations: Vec<Invitation> = on_pool!(self.store, |pool| {
            sqlx::query_as(concat!(
                invitation_select!(),
                "WHERE organization_id = $1 AND accepted_at IS NULL \
                 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at, id"
            ))
            .bind(organization_id)
            .bind(DbTime::new(now))
            .fetch_all(pool)
            .await?
        });
        let members = rows
            .into_iter()
            .map(MemberRow::into_member)
            .collect::<Result<_, _>>()?;
        Ok(Some(OrganizationView {
            id: org.id,
            name: org.name,
            created_at: org.created_at,
            your_role: None,
            members,
            invitations,
        }))
    }

    /// A page of the pending invitations addressed to `customer_id`'s email, oldest first: at
    /// most `limit`, after the `(created_at, id)` of `after` in that order (a keyset cursor: the
    /// last invitation of the previous page).
    pub async fn invitations_received(
        &self,
        customer_id: Uuid,
        now: OffsetDateTime,
        after: Option<(OffsetDateTime, Uuid)>,
        limit: u32,
    ) -> Result<Vec<ReceivedInvitation>, MembershipError> {
        let rows: Vec<ReceivedInvitation> = on_pool!(self.store, |pool| {
            sqlx::query_as(
                "SELECT i.id, i.organization_id, o.name AS organization_name, i.expires_at, \
                 i.created_at \
                 FROM organization_invitations i \
                 JOIN organizations o ON o.id = i.organization_id \
                 JOIN customers c ON c.email = i.email \
                 WHERE c.id = $1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL \
                 AND i.expires_at > $2 \
                 AND ($3 IS NULL OR i.created_at > $3 OR (i.created_at = $3 AND i.id > $4)) \
                 ORDER BY i.created_at, i.id LIMIT $5",
            )
            .bind(customer_id)
            .bind(DbTime::new(now))
            .bind(after.map(|(at, _)| DbTime::new(at)))
            .bind(after.map(|(_, id)| id))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}

/// Prefix of invitation acceptance tokens (`cgi_` + 32 random bytes, unpadded base64url).
const TOKEN_PREFIX: &str = "cgi_";

/// A new acceptance token.
fn new_token() -> Result<String, MembershipError> {
    use base64::Engine as _;
    let bytes: [u8; 32] =
        crate::crypto::random_bytes().map_err(|e| MembershipError::Token(e.to_string()))?;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Ok(format!("{TOKEN_PREFIX}{text}"))
}

/// What the store keeps of a token: its SHA-256.
fn token_hash(token: &str) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

fn store_of(e: super::AccountError) -> MembershipError {
    match e {
        super::AccountError::Store(e) => MembershipError::Store(e),
        _ => MembershipError::NotFound,
    }
}

// === impl MemberRow ===

impl MemberRow {
    fn into_member(self) -> Result<Member, StoreError> {
        Ok(Member {
            customer_id: self.customer_id,
            email: self.email,
            tier: tier_of(&self.tier)?,
            status: parse_column(&self.status, "customers.status")?,
            role: parse_column(&self.role, "organization_members.role")?,
            joined_at: self.joined_at,
        })
    }
}
