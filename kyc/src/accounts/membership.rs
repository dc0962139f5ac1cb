//! Organization membership: who belongs to an organization and in which role, the owner's
//! invitations, and the pure rules of inviting and joining (the store operations are in
//! `organizations`).
//!
//! An organization comes into being with the KYB approval of its applicant, who becomes its
//! `owner` (kyc/src/verification/kyb.rs). The owner — while active and holding an organization
//! tier — invites email addresses; the customer registered with an invited address accepts
//! while the invitation is pending (7 days). Joining never changes a tier: every member is
//! verified individually, and the organization only adds a metering scope. A customer belongs
//! to at most one organization, and an organization account (one that applies for KYB itself)
//! never joins another.

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{CustomerKind, CustomerStatus, Tier};
use crate::names::stored_enum;
use crate::store::StoreError;

/// How long an invitation can be accepted.
pub const INVITATION_VALIDITY: Duration = Duration::days(7);

/// Most pending invitations one organization may have at once (bounds what an owner can make
/// the store hold).
pub const MAX_PENDING_INVITATIONS: i64 = 100;

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    /// The account whose KYB approval created (or re-verified) the organization; invites.
    Owner,
    /// Joined by accepting an invitation.
    Member,
}

stored_enum!(MemberRole { Owner => "owner", Member => "member" });

/// Where an invitation stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationState {
    /// May be accepted.
    Pending,
    /// Accepted; the invitee is (or was) a member.
    Accepted,
    /// Revoked by the owner.
    Revoked,
    /// Not accepted in time.
    Expired,
}

/// An owner's invitation of an email address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Invitation {
    /// Invitation id.
    pub id: Uuid,
    /// The organization to join.
    pub organization_id: Uuid,
    /// The invited address (normalized).
    pub email: String,
    /// The owner who invited.
    pub invited_by: Uuid,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Acceptable until.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When accepted.
    #[serde(with = "time::serde::rfc3339::option")]
    pub accepted_at: Option<OffsetDateTime>,
    /// Who accepted.
    pub accepted_by: Option<Uuid>,
    /// When revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// The acceptance token, only in the answer to the owner who created the invitation (the
    /// store keeps its SHA-256): the invitee needs it to accept.
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// An invitation addressed to the caller, with the organization's name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ReceivedInvitation {
    /// Invitation id.
    pub id: Uuid,
    /// The organization.
    pub organization_id: Uuid,
    /// Its name.
    pub organization_name: String,
    /// Acceptable until.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When it was sent (the list's order).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One member as the owner and staff see them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    /// Customer id.
    pub customer_id: Uuid,
    /// Their email.
    pub email: String,
    /// Their own verification tier.
    pub tier: Tier,
    /// Their account status.
    pub status: CustomerStatus,
    /// Owner or member.
    pub role: MemberRole,
    /// When they joined.
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
}

/// An organization with its members and (for its owner and staff) its invitations.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OrganizationView {
    /// Organization id.
    pub id: Uuid,
    /// Name (the legal name of its KYB application).
    pub name: String,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The caller's role, for a customer's view; `None` for staff.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub your_role: Option<MemberRole>,
    /// Members, owner first, then by joining time.
    pub members: Vec<Member>,
    /// Pending invitations (owner and staff only; empty for other members).
    pub invitations: Vec<Invitation>,
}

/// What the rules need to know about a customer acting on a membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberFacts {
    /// Their normalized email.
    pub email: String,
    /// Individual or organization account.
    pub kind: CustomerKind,
    /// Account status.
    pub status: CustomerStatus,
    /// Verification tier.
    pub tier: Tier,
    /// Their organization and role there, if any.
    pub membership: Option<(Uuid, MemberRole)>,
}

/// Why a membership operation was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// No such organization, invitation or member — or not the caller's to see.
    #[error("not found")]
    NotFound,
    /// Only the organization's owner may do this.
    #[error("only the organization's owner may do this")]
    NotOwner,
    /// The owner's account does not hold an organization tier.
    #[error("the owner's account does not hold an organization tier")]
    NotOrganizationTier,
    /// The caller's account is not active.
    #[error("the account is not active")]
    AccountNotActive,
    /// The invited address is not a plausible email.
    #[error("invalid email address")]
    InvalidEmail,
    /// The invitee already belongs to this organization.
    #[error("already a member of this organization")]
    AlreadyMember,
    /// The invitee belongs to another organization.
    #[error("already a member of another organization")]
    InAnotherOrganization,
    /// An organization account cannot join another organization.
    #[error("an organization account cannot join another organization")]
    OrganizationAccount,
    /// The invitation is no longer pending.
    #[error("the invitation is {0:?}")]
    NotPending(InvitationState),
    /// The address already has a pending invitation to this organization.
    #[error("the address already has a pending invitation")]
    AlreadyInvited,
    /// The organization has [`MAX_PENDING_INVITATIONS`] pending invitations.
    #[error("too many pending invitations")]
    TooManyInvitations,
    /// The organization's owner account is not active (suspended or closed): its invitations
    /// are not honoured.
    #[error("the organization's owner account is not active")]
    OrganizationInactive,
    /// A token could not be generated (the random number generator failed).
    #[error("token generation failed: {0}")]
    Token(String),
    /// The owner cannot be removed (suspend or close the owner's account instead).
    #[error("the owner cannot be removed")]
    OwnerNotRemovable,
    /// A staff removal needs a reason of 1..=1000 characters.
    #[error("a reason is required")]
    ReasonRequired,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

crate::store::from_sqlx!(MembershipError);

// === impl Invitation ===

impl Invitation {
    /// Where the invitation stands at `now`.
    pub fn state(&self, now: OffsetDateTime) -> InvitationState {
        if self.accepted_at.is_some() {
            InvitationState::Accepted
        } else if self.revoked_at.is_some() {
            InvitationState::Revoked
        } else if now >= self.expires_at {
            InvitationState::Expired
        } else {
            InvitationState::Pending
        }
    }
}

/// Whether `tier` is one a KYB approval grants (the tiers an owner must hold to invite).
pub fn is_organization_tier(tier: &Tier) -> bool {
    matches!(
        tier.as_str(),
        Tier::ORGANIZATION_VERIFIED | Tier::VALIDATED_END_USER
    )
}

/// Whether `inviter` may invite on behalf of their organization; returns the organization.
pub fn may_invite(inviter: &MemberFacts) -> Result<Uuid, MembershipError> {
    let Some((organization, MemberRole::Owner)) = inviter.membership else {
        return Err(MembershipError::NotOwner);
    };
    if inviter.status != CustomerStatus::Active {
        return Err(MembershipError::AccountNotActive);
    }
    if !is_organization_tier(&inviter.tier) {
        return Err(MembershipError::NotOrganizationTier);
    }
    Ok(organization)
}

/// Whether `joiner` may accept `invitation` at `now`. An invitation addressed to another email
/// is [`MembershipError::NotFound`]: it is not the caller's to see.
pub fn may_accept(
    invitation: &Invitation,
    joiner: &MemberFacts,
    now: OffsetDateTime,
) -> Result<(), MembershipError> {
    if !invitation.email.eq_ignore_ascii_case(&joiner.email) {
        return Err(MembershipError::NotFound);
    }
    match invitation.state(now) {
        InvitationState::Pending => {}
        other => return Err(MembershipError::NotPending(other)),
    }
    if joiner.status != CustomerStatus::Active {
        return Err(MembershipError::AccountNotActive);
    }
    if joiner.kind == CustomerKind::Organization {
        return Err(MembershipError::OrganizationAccount);
    }
    match joiner.membership {
        None => Ok(()),
        Some((org, _)) if org == invitation.organization_id => Err(MembershipError::AlreadyMember),
        Some(_) => Err(MembershipError::InAnotherOrganization),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2030-01-10 12:00 UTC);

    fn invitation(org: Uuid) -> Invitation {
        Invitation {
            id: Uuid::now_v7(),
            organization_id: org,
            email: "ada@example.com".into(),
            invited_by: Uuid::now_v7(),
            created_at: NOW - Duration::days(1),
            expires_at: NOW - Duration::days(1) + INVITATION_VALIDITY,
            accepted_at: None,
            accepted_by: None,
            revoked_at: None,
            token: None,
        }
    }

    fn facts(tier: &str, membership: Option<(Uuid, MemberRole)>) -> MemberFacts {
        MemberFacts {
            email: "ada@example.com".into(),
            kind: CustomerKind::Individual,
            status: CustomerStatus::Active,
            tier: Tier::new(tier).unwrap(),
            membership,
        }
    }

    #[test]
    fn an_invitation_is_pending_until_accepted_revoked_or_expired() {
        let mut inv = invitation(Uuid::now_v7());
        assert_eq!(inv.state(NOW), InvitationState::Pending);
        assert_eq!(inv.state(inv.expires_at), InvitationState::Expired);
        inv.revoked_at = Some(NOW);
        assert_eq!(inv.state(NOW), InvitationState::Revoked);
        inv.accepted_at = Some(NOW);
        assert_eq!(inv.state(NOW), InvitationState::Accepted);
    }

    #[test]
    fn only_an_active_owner_with_an_organization_tier_invites() {
        let org = Uuid::now_v7();
        let owner = facts(Tier::ORGANIZATION_VERIFIED, Some((org, MemberRole::Owner)));
        assert_eq!(may_invite(&owner).unwrap(), org);
        let veu = facts(Tier::VALIDATED_END_USER, Some((org, MemberRole::Owner)));
        assert_eq!(may_invite(&veu).unwrap(), org);
        let member = facts(Tier::ORGANIZATION_VERIFIED, Some((org, MemberRole::Member)));
        assert!(matches!(
            may_invite(&member),
            Err(MembershipError::NotOwner)
        ));
        let nobody = facts(Tier::ORGANIZATION_VERIFIED, None);
        assert!(matches!(
            may_invite(&nobody),
            Err(MembershipError::NotOwner)
        ));
        let lapsed = facts(Tier::UNVERIFIED, Some((org, MemberRole::Owner)));
        assert!(matches!(
            may_invite(&lapsed),
            Err(MembershipError::NotOrganizationTier)
        ));
        let mut suspended = owner.clone();
        suspended.status = CustomerStatus::Suspended;
        assert!(matches!(
            may_invite(&suspended),
            Err(MembershipError::AccountNotActive)
        ));
    }

    #[test]
    fn only_the_invited_individual_outside_any_organization_accepts_in_time() {
        let org = Uuid::now_v7();
        let inv = invitation(org);
        let joiner = facts(Tier::UNVERIFIED, None);
        may_accept(&inv, &joiner, NOW).unwrap();

        let mut other = joiner.clone();
        other.email = "eve@example.com".into();
        assert!(matches!(
            may_accept(&inv, &other, NOW),
            Err(MembershipError::NotFound)
        ));
        let mut shouting = joiner.clone();
        shouting.email = "ADA@example.com".into();
        may_accept(&inv, &shouting, NOW).unwrap();

        assert!(matches!(
            may_accept(&inv, &joiner, inv.expires_at),
            Err(MembershipError::NotPending(InvitationState::Expired))
        ));
        let elsewhere = facts(
            Tier::IDENTITY_VERIFIED,
            Some((Uuid::now_v7(), MemberRole::Member)),
        );
        assert!(matches!(
            may_accept(&inv, &elsewhere, NOW),
            Err(MembershipError::InAnotherOrganization)
        ));
        let here = facts(Tier::IDENTITY_VERIFIED, Some((org, MemberRole::Member)));
        assert!(matches!(
            may_accept(&inv, &here, NOW),
            Err(MembershipError::AlreadyMember)
        ));
        let mut company = joiner.clone();
        company.kind = CustomerKind::Organization;
        assert!(matches!(
            may_accept(&inv, &company, NOW),
            Err(MembershipError::OrganizationAccount)
        ));
        let mut closed = joiner;
        closed.status = CustomerStatus::Closed;
        assert!(matches!(
            may_accept(&inv, &closed, NOW),
            Err(MembershipError::AccountNotActive)
        ));
    }
}
