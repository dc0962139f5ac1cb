//! Organization membership through the [`Verification`] service: the owner's invitations, a
//! customer accepting one, and staff reading and removing members. Every membership change is
//! announced to the data plane at once (`Notice::CustomerChanged` for the member, on every
//! replica), so the member's next job is metered in — or out of — the organization's scope.
//! Staff actions go through the conflict-of-interest guard like every staff action on a
//! customer; a refusal is audited as `kyc.staff_action.refused`.

use computegate_kyc::accounts::membership::{
    Invitation, MembershipError, OrganizationView, ReceivedInvitation,
};
use computegate_kyc::audit::{AuditAction, AuditEntry};
use computegate_kyc::verification::{CustomerCaller, StaffCaller, VerificationError};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Verification;

/// Why a staff operation on an organization failed: the membership rules, or the staff guard.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrganizationError {
    /// Refused or failed by the membership rules or the store.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// Refused by the staff guard (conflict of interest, unknown staff user).
    #[error(transparent)]
    Staff(#[from] VerificationError),
}

// === impl Verification ===

impl Verification {
    /// The caller (their organization's owner) invites `email`.
    pub async fn invite_member(
        &self,
        caller: &CustomerCaller,
        email: &str,
        now: OffsetDateTime,
    ) -> Result<Invitation, MembershipError> {
        self.store()
            .accounts()
            .invite_member(caller.customer_id, email, &caller.actor(), now)
            .await
    }

    /// The caller (their organization's owner) revokes a pending invitation.
    pub async fn revoke_invitation(
        &self,
        caller: &CustomerCaller,
        invitation_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<(), MembershipError> {
        self.store()
            .accounts()
            .revoke_invitation(caller.customer_id, invitation_id, &caller.actor(), now)
            .await
    }

    /// The caller accepts an invitation addressed to them, showing its token, and joins its
    /// organization; the data plane hears at once. Returns the organization.
    pub async fn accept_invitation(
        &self,
        caller: &CustomerCaller,
        invitation_id: Uuid,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Uuid, MembershipError> {
        let organization = self
            .store()
            .accounts()
            .accept_invitation(
                caller.customer_id,
                invitation_id,
                token,
                &caller.actor(),
                now,
            )
            .await?;
        self.customer_changed(caller.customer_id).await;
        Ok(organization)
    }

    /// The caller (a member, not the owner) leaves their organization; audited as a removal by
    /// the member, and the data plane hears at once. Returns the organization left.
    pub async fn leave_organization(
        &self,
        caller: &CustomerCaller,
        now: OffsetDateTime,
    ) -> Result<Uuid, MembershipError> {
        let organization = self
            .store()
            .accounts()
            .leave_organization(caller.customer_id, &caller.actor(), now)
            .await?;
        self.customer_changed(caller.customer_id).await;
        Ok(organization)
    }

    /// The caller's organization as they see it; `None` outside any organization.
    pub async fn organization_of(
        &self,
        customer_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Option<OrganizationView>, MembershipError> {
        self.store()
            .accounts()
            .organization_of_customer(customer_id, now)
            .await
    }

    /// A page of the pending invitations addressed to the caller, oldest first.
    pub async fn invitations_received(
        &self,
        customer_id: Uuid,
        now: OffsetDateTime,
        after: Option<(OffsetDateTime, Uuid)>,
        limit: u32,
    ) -> Result<Vec<ReceivedInvitation>, MembershipError> {
        self.store()
            .accounts()
            .invitations_received(customer_id, now, after, limit)
            .await
    }

    /// Organization `id` with its members and pending invitations, for a staff member tied to
    /// none of its members; the read is audited (`organization.membership.viewed`).
    pub async fn organization_for_staff(
        &self,
        caller: &StaffCaller,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<OrganizationView, OrganizationError> {
        let view = self
            .store()
            .accounts()
            .organization_view(id, now)
            .await?
            .ok_or(MembershipError::NotFound)?;
        let members: Vec<Uuid> = view.members.iter().map(|m| m.customer_id).collect();
        self.guard_staff_action(caller, &members, organization(id), "organization.view")
            .await?;
        let entry = AuditEntry::new(
            now,
            &caller.actor(),
            AuditAction::MembershipViewed,
            organization(id),
        );
        self.store()
            .audit()
            .record_audit(&entry)
            .await
            .map_err(MembershipError::Store)?;
        Ok(view)
    }

    /// Staff remove `customer_id` from organization `id` with `reason`; the data plane hears
    /// at once, so the member's next job is no longer in the organization's scope.
    pub async fn remove_member(
        &self,
        caller: &StaffCaller,
        id: Uuid,
        customer_id: Uuid,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<(), OrganizationError> {
        self.guard_staff_action(
            caller,
            &[customer_id],
            organization(id),
            "organization.remove_member",
        )
        .await?;
        self.store()
            .accounts()
            .remove_member(id, customer_id, reason, &caller.actor(), now)
            .await?;
        self.customer_changed(customer_id).await;
        Ok(())
    }
}

/// The audit subject of organization `id`.
fn organization(id: Uuid) -> String {
    format!("organization:{id}")
}
