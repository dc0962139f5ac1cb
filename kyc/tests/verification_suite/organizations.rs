//! Organizations: a KYB approval creates the applicant's organization and makes it the owner
//! (a re-verification keeps it); the owner's invitations expire, can be revoked, and bind a
//! customer to one organization; staff removal keeps the owner. Time is passed in.

use computegate_kyc::accounts::membership::{InvitationState, MemberRole, MembershipError};
use computegate_kyc::accounts::{Actor, CustomerKind, CustomerStatus, StaffRole, Tier};
use computegate_kyc::verification::{
    CustomerCaller, DecisionRequest, ScreeningDecision, StaffDecision,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::fixtures::*;
use crate::support::{Ctx, t0};

/// Approves an organization application of `caller` at `organization_verified`.
pub(crate) async fn approve_kyb(
    s: &computegate_kyc::Store,
    key: &computegate_kyc::crypto::MasterKey,
    caller: &CustomerCaller,
    reviewer: &computegate_kyc::verification::StaffCaller,
    now: OffsetDateTime,
) {
    let id = pending(s, key, caller, &organization(), ScreeningDecision::Clear).await;
    let request = DecisionRequest {
        action: StaffDecision::Approve {
            tier: Tier::new(Tier::ORGANIZATION_VERIFIED).unwrap(),
        },
        reason: "KYB complete".into(),
        reverify_after: None,
        evidence: Default::default(),
    };
    s.verification()
        .decide_application(key, reviewer, id, request, now)
        .await
        .unwrap();
}

pub(crate) async fn organization_of(s: &computegate_kyc::Store, customer: Uuid) -> Option<Uuid> {
    s.accounts()
        .customer_by_id(customer)
        .await
        .unwrap()
        .unwrap()
        .organization_id
}

async fn kyb_approval_creates_the_organization_and_its_owner(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let owner = customer(s, "ceo@frontier.example", CustomerKind::Organization).await;
    let reviewer = staff(s, "rev@cg.example", StaffRole::Reviewer).await;
    approve_kyb(s, &key, &owner, &reviewer, t0()).await;
    let org = organization_of(s, owner.customer_id)
        .await
        .expect("organization");
    let view = s
        .accounts()
        .organization_of_customer(owner.customer_id, t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.name, "Frontier Models GmbH");
    assert_eq!(view.your_role, Some(MemberRole::Owner));
    assert_eq!(view.members.len(), 1);
    assert_eq!(
        actions(s, &format!("organization:{org}")).await,
        ["kyc.organization.created"]
    );

    // A re-verification keeps the organization.
    approve_kyb(s, &key, &owner, &reviewer, t0() + Duration::days(1)).await;
    assert_eq!(organization_of(s, owner.customer_id).await, Some(org));
    assert_eq!(
        actions(s, &format!("organization:{org}")).await,
        ["kyc.organization.created", "kyc.organization.linked"]
    );
    // An individual approval creates none.
    let person = customer(s, "ada@example.com", CustomerKind::Individual).await;
    let id = pending(s, &key, &person, &individual(), ScreeningDecision::Clear).await;
    let request = DecisionRequest {
        action: StaffDecision::Approve {
            tier: Tier::new(Tier::IDENTITY_VERIFIED).unwrap(),
        },
        reason: "KYC complete".into(),
        reverify_after: None,
        evidence: Default::default(),
    };
    s.verification()
        .decide_application(&key, &reviewer, id, request, t0())
        .await
        .unwrap();
    assert_eq!(organization_of(s, person.customer_id).await, None);
    chain_intact(s).await;
}

async fn invitations_expire_revoke_and_bind_one_organization(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let reviewer = staff(s, "rev@cg.example", StaffRole::Reviewer).await;
    let owner = customer(s, "ceo@frontier.example", CustomerKind::Organization).await;
    approve_kyb(s, &key, &owner, &reviewer, t0()).await;
    let org = organization_of(s, owner.customer_id).await.unwrap();
    let ada = customer(s, "ada@example.com", CustomerKind::Individual).await;
    let accounts = s.accounts();
    let actor = Actor::customer(owner.customer_id, None);
    let ada_actor = Actor::customer(ada.customer_id, None);

    // Not a member, not an owner: no invitations.
    let err = accounts
        .invite_member(ada.customer_id, "x@example.com", &ada_actor, t0())
        .await
        .unwrap_err();
    assert!(matches!(err, MembershipError::NotOwner), "{err:?}");

    // Expired after seven days.
    let old = accounts
        .invite_member(owner.customer_id, "Ada@Example.com", &actor, t0())
        .await
        .unwrap();
    assert_eq!(old.email, "ada@example.com");
    let late = t0() + Duration::days(7);
    let err = accounts
        .accept_invitation(
            ada.customer_id,
            old.id,
            old.token.as_deref().unwrap(),
            &ada_actor,
            late,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, MembershipError::NotPending(InvitationState::Expired)),
        "{err:?}"
    );
    // A fresh one, revoked, cannot be accepted either.
    let revoked = accounts
        .invite_member(owner.customer_id, "ada@example.com", &actor, late)
        .await
        .unwrap();
    let err = accounts
        .invite_member(owner.customer_id, "ada@example.com", &actor, late)
        .await
        .unwrap_err();
    assert!(matches!(err, MembershipError::AlreadyInvited), "{err:?}");
    accounts
        .revoke_invitation(owner.customer_id, revoked.id, &actor, late)
        .await
        .unwrap();
    let err = accounts
        .accept_invitation(
            ada.customer_id,
            revoked.id,
            revoked.token.as_deref().unwrap(),
            &ada_actor,
            late,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, MembershipError::NotPending(InvitationState::Revoked)),
        "{err:?}"
    );
    // The third is accepted; the tier is Ada's own.
    let third = accounts
        .invite_member(owner.customer_id, "ada@example.com", &actor, late)
        .await
        .unwrap();
    assert_eq!(
        accounts
            .invitations_received(ada.customer_id, late, None, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    let joined = accounts
        .accept_invitation(
            ada.customer_id,
            third.id,
            third.token.as_deref().unwrap(),
            &ada_actor,
            late,
        )
        .await
        .unwrap();
    assert_eq!(joined, org);
    let c = accounts
        .customer_by_id(ada.customer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.organization_id, Some(org));
    assert_eq!(c.tier.as_str(), Tier::UNVERIFIED);

    // Another organization's invitation cannot take her away.
    let rival = customer(s, "ceo@rival.example", CustomerKind::Organization).await;
    approve_kyb(s, &key, &rival, &reviewer, late).await;
    let rival_actor = Actor::customer(rival.customer_id, None);
    let poach = accounts
        .invite_member(rival.customer_id, "ada@example.com", &rival_actor, late)
        .await
        .unwrap();
    let err = accounts
        .accept_invitation(
            ada.customer_id,
            poach.id,
            poach.token.as_deref().unwrap(),
            &ada_actor,
            late,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, MembershipError::InAnotherOrganization),
        "{err:?}"
    );

    // Staff remove her, never the owner.
    let staff_actor = Actor::system("test");
    let err = accounts
        .remove_member(org, owner.customer_id, "no", &staff_actor, late)
        .await
        .unwrap_err();
    assert!(matches!(err, MembershipError::OwnerNotRemovable), "{err:?}");
    let err = accounts
        .remove_member(org, ada.customer_id, "  ", &staff_actor, late)
        .await
        .unwrap_err();
    assert!(matches!(err, MembershipError::ReasonRequired), "{err:?}");
    accounts
        .remove_member(org, ada.customer_id, "left the company", &staff_actor, late)
        .await
        .unwrap();
    assert_eq!(organization_of(s, ada.customer_id).await, None);
    let err = accounts
        .remove_member(org, ada.customer_id, "again", &staff_actor, late)
        .await
        .unwrap_err();
    assert!(matches!(err, MembershipError::NotFound), "{err:?}");
    let view = accounts
        .organization_view(org, late)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.members.len(), 1);
    assert!(view.invitations.is_empty());
    assert_eq!(
        actions(s, &format!("organization:{org}")).await,
        [
            "kyc.organization.created",
            "organization.invitation.created",
            "organization.invitation.created",
            "organization.invitation.revoked",
            "organization.invitation.created",
            "organization.member.joined",
            "organization.member.removed",
        ]
    );
    chain_intact(s).await;
}

/// An invitation speaks for its organization only while the owner's account is active.
async fn a_suspended_owners_invitations_are_not_honoured(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let reviewer = staff(s, "rev@cg.example", StaffRole::Reviewer).await;
    let owner = customer(s, "ceo@frontier.example", CustomerKind::Organization).await;
    approve_kyb(s, &key, &owner, &reviewer, t0()).await;
    let bob = customer(s, "bob@example.com", CustomerKind::Individual).await;
    let accounts = s.accounts();
    let actor = Actor::customer(owner.customer_id, None);
    let bob_actor = Actor::customer(bob.customer_id, None);
    let staff_actor = Actor::system("test");
    let invitation = accounts
        .invite_member(owner.customer_id, "bob@example.com", &actor, t0())
        .await
        .unwrap();
    // The address is not enough: the owner's token is (a wrong one reads as no invitation).
    let err = accounts
        .accept_invitation(
            bob.customer_id,
            invitation.id,
            "cgi_guess",
            &bob_actor,
            t0(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MembershipError::NotFound), "{err:?}");
    let set = |status| {
        accounts.set_customer_status(owner.customer_id, status, &staff_actor, "review", t0())
    };
    set(CustomerStatus::Suspended).await.unwrap();
    let err = accounts
        .accept_invitation(
            bob.customer_id,
            invitation.id,
            invitation.token.as_deref().unwrap(),
            &bob_actor,
            t0(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, MembershipError::OrganizationInactive),
        "{err:?}"
    );
    assert_eq!(organization_of(s, bob.customer_id).await, None);
    set(CustomerStatus::Active).await.unwrap();
    accounts
        .accept_invitation(
            bob.customer_id,
            invitation.id,
            invitation.token.as_deref().unwrap(),
            &bob_actor,
            t0(),
        )
        .await
        .unwrap();
    assert!(organization_of(s, bob.customer_id).await.is_some());
}

/// Received invitations and a customer's applications page by keyset: walking either with
/// the last item's `(created_at, id)` as the cursor yields every item once, ties included.
async fn invitations_and_applications_page_by_keyset(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let reviewer = staff(s, "rev@cg.example", StaffRole::Reviewer).await;
    let ada = customer(s, "ada@example.com", CustomerKind::Individual).await;
    // Three organizations invite Ada: two at one instant, one a minute later.
    for (i, at) in [t0(), t0(), t0() + Duration::minutes(1)]
        .into_iter()
        .enumerate()
    {
        let owner = customer(
            s,
            &format!("ceo{i}@org.example"),
            CustomerKind::Organization,
        )
        .await;
        approve_kyb(s, &key, &owner, &reviewer, t0()).await;
        let actor = Actor::customer(owner.customer_id, None);
        s.accounts()
            .invite_member(owner.customer_id, "ada@example.com", &actor, at)
            .await
            .unwrap();
    }
    let now = t0() + Duration::hours(1);
    let accounts = s.accounts();
    let whole = accounts
        .invitations_received(ada.customer_id, now, None, 100)
        .await
        .unwrap();
    assert_eq!(whole.len(), 3);
    for limit in [1, 2] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = accounts
                .invitations_received(ada.customer_id, now, after, limit)
                .await
                .unwrap();
            after = page.last().map(|i| (i.created_at, i.id));
            let short = page.len() < limit as usize;
            seen.extend(page);
            if short {
                break;
            }
        }
        assert_eq!(seen, whole, "invitations by {limit}");
    }

    // Three applications of one customer (each rejected before the next is opened).
    let reject = || DecisionRequest {
        action: StaffDecision::Reject,
        reason: "not enough".into(),
        reverify_after: None,
        evidence: Default::default(),
    };
    for _ in 0..3 {
        let id = pending(s, &key, &ada, &individual(), ScreeningDecision::Clear).await;
        s.verification()
            .decide_application(&key, &reviewer, id, reject(), t0())
            .await
            .unwrap();
    }
    let verification = s.verification();
    let whole: Vec<Uuid> = verification
        .customer_applications(&key, &ada, None, 100)
        .await
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(whole.len(), 3);
    for limit in [1, 2] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = verification
                .customer_applications(&key, &ada, after, limit)
                .await
                .unwrap();
            after = page.last().map(|a| (a.created_at, a.id));
            let short = page.len() < limit as usize;
            seen.extend(page.iter().map(|a| a.id));
            if short {
                break;
            }
        }
        assert_eq!(seen, whole, "applications by {limit}");
    }
}

crate::store_suite!(
    invitations_and_applications_page_by_keyset,
    kyb_approval_creates_the_organization_and_its_owner,
    invitations_expire_revoke_and_bind_one_organization,
    a_suspended_owners_invitations_are_not_honoured,
);
