//! The countries a customer is verified in, as the data plane reads them: nothing until an
//! application is approved, then every country the latest approved one names, plus those of the
//! organization's approved KYB application for each member.

use computegate_kyc::Store;
use computegate_kyc::accounts::{Actor, CustomerKind, StaffRole, Tier};
use computegate_kyc::crypto::MasterKey;
use computegate_kyc::verification::{
    DecisionRequest, ScreeningDecision, StaffCaller, StaffDecision,
};
use time::Duration;
use uuid::Uuid;

use crate::fixtures::*;
use crate::support::{Ctx, t0};

async fn approve(s: &Store, key: &MasterKey, who: &StaffCaller, app: Uuid, tier: &str, days: i64) {
    s.verification()
        .decide_application(
            key,
            who,
            app,
            DecisionRequest {
                action: StaffDecision::Approve {
                    tier: Tier::new(tier).unwrap(),
                },
                reason: "jurisdiction test decision".into(),
                reverify_after: Some(Duration::days(365)),
                evidence: Default::default(),
            },
            t0() + Duration::days(days),
        )
        .await
        .unwrap();
}

async fn sorted(s: &Store, key: &MasterKey, customer: Uuid) -> Vec<String> {
    let mut out = s
        .verification()
        .verified_jurisdictions(key, customer)
        .await
        .unwrap();
    out.sort();
    out
}

async fn verified_jurisdictions_come_from_approved_applications(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let senior = staff(s, "senior@cg.example", StaffRole::SeniorReviewer).await;

    // An individual: nothing while the application is pending, its countries once approved.
    let alice = customer(s, "alice@cg.example", CustomerKind::Individual).await;
    assert!(sorted(s, &key, alice.customer_id).await.is_empty());
    let app = pending(s, &key, &alice, &individual(), ScreeningDecision::Clear).await;
    assert!(
        sorted(s, &key, alice.customer_id).await.is_empty(),
        "a pending application is self-declared"
    );
    approve(s, &key, &senior, app, Tier::IDENTITY_VERIFIED, 0).await;
    assert_eq!(sorted(s, &key, alice.customer_id).await, ["GB"]);

    // An organization: every member is verified where the organization's KYB names.
    let org = s
        .accounts()
        .create_organization("Frontier Models GmbH", &Actor::system("test"), t0())
        .await
        .unwrap();
    let applicant = customer(s, "cto@frontier.example", CustomerKind::Organization).await;
    let member = customer(s, "dev@frontier.example", CustomerKind::Organization).await;
    for c in [&applicant, &member] {
        s.accounts()
            .add_organization_member(org.id, c.customer_id, &Actor::system("test"), t0())
            .await
            .unwrap();
    }
    let kyb = pending(
        s,
        &key,
        &applicant,
        &organization(),
        ScreeningDecision::Clear,
    )
    .await;
    assert!(sorted(s, &key, member.customer_id).await.is_empty());
    approve(s, &key, &senior, kyb, Tier::ORGANIZATION_VERIFIED, 1).await;
    // Headquarters, jurisdiction and parent DE; the representative's and an owner's US.
    assert_eq!(sorted(s, &key, applicant.customer_id).await, ["DE", "US"]);
    assert_eq!(sorted(s, &key, member.customer_id).await, ["DE", "US"]);
    // Unknown customers have none.
    assert!(sorted(s, &key, Uuid::new_v4()).await.is_empty());
    // Reading them needs the master key the payload was sealed with.
    assert!(
        s.verification()
            .verified_jurisdictions(&MasterKey::generate().unwrap(), alice.customer_id)
            .await
            .is_err()
    );
}

crate::store_suite!(verified_jurisdictions_come_from_approved_applications);
