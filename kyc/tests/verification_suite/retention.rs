//! Retention of application payloads: an ended application's payload is withdrawn once a newer
//! application past the draft stage replaces it (a newer draft does not), the dry run counts it
//! and changes nothing, every reader answers the marker instead of failing, and a second run
//! finds nothing.

use computegate_kyc::Store;
use computegate_kyc::accounts::{Actor, CustomerKind, StaffRole, Tier};
use computegate_kyc::crypto::MasterKey;
use computegate_kyc::retention::{RetentionPlan, RunKind};
use computegate_kyc::verification::{
    ApplicationStatus, CustomerCaller, DecisionRequest, ScreeningDecision, StaffDecision,
    VerificationError,
};
use computegate_policy::Policy;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::fixtures::*;
use crate::support::{Ctx, t0};

/// Runs retention under the shipped policy (verification: 731 days) at `now`; the
/// `verification` count.
async fn run(s: &Store, kind: RunKind, now: OffsetDateTime) -> u64 {
    let policy = Policy::from_toml(include_str!("../../../deploy/policy/default.toml")).unwrap();
    let plan = RetentionPlan::new(&policy, now);
    let counts = s
        .retention()
        .run_retention(&plan, kind, &Actor::system("test"), now)
        .await
        .unwrap()
        .expect("a manual or dry run acts");
    counts.counts["verification"]
}

/// The status and whether the payload is there, of `caller`'s application `id`.
async fn standing(
    s: &Store,
    key: &MasterKey,
    caller: &CustomerCaller,
    id: Uuid,
) -> (ApplicationStatus, bool) {
    let view = s
        .verification()
        .get_application(key, caller, id)
        .await
        .unwrap();
    assert_eq!(view.payload.is_some(), view.identity_purged_at.is_none());
    (view.status, view.payload.is_some())
}

async fn a_superseded_payload_is_withdrawn_and_readers_answer_the_marker(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let senior = staff(s, "senior@cg.example", StaffRole::SeniorReviewer).await;
    let alice = customer(s, "alice@cg.example", CustomerKind::Individual).await;

    // An approval that lapsed at day 400 (re-verification after 365 days).
    let old = pending(s, &key, &alice, &individual(), ScreeningDecision::Clear).await;
    let approve = DecisionRequest {
        action: StaffDecision::Approve {
            tier: Tier::new(Tier::IDENTITY_VERIFIED).unwrap(),
        },
        reason: "retention test decision".into(),
        reverify_after: Some(Duration::days(365)),
        evidence: Default::default(),
    };
    s.verification()
        .decide_application(&key, &senior, old, approve, t0())
        .await
        .unwrap();
    s.verification()
        .expire_due(t0() + Duration::days(400))
        .await
        .unwrap();
    assert_eq!(
        standing(s, &key, &alice, old).await,
        (ApplicationStatus::Expired, true)
    );

    // Two years and more after it lapsed, while the newer application is only a draft, the
    // lapsed one is still the customer's identity of record: kept.
    let draft_at = t0() + Duration::days(401);
    let newer = s
        .verification()
        .create_draft(&key, &alice, &individual(), draft_at)
        .await
        .unwrap()
        .id;
    let later = t0() + Duration::days(1200);
    assert_eq!(run(s, RunKind::Manual, later).await, 0);
    assert!(standing(s, &key, &alice, old).await.1);

    // Once the newer one is handed in, the lapsed one's payload goes; the dry run says so first
    // and changes nothing.
    s.verification()
        .submit_application(&key, &alice, newer, &rules(), later)
        .await
        .unwrap();
    assert_eq!(run(s, RunKind::DryRun, later).await, 1);
    assert!(
        standing(s, &key, &alice, old).await.1,
        "a dry run withdraws nothing"
    );
    assert_eq!(run(s, RunKind::Manual, later).await, 1);
    assert_eq!(
        standing(s, &key, &alice, old).await,
        (ApplicationStatus::Expired, false)
    );
    assert!(
        standing(s, &key, &alice, newer).await.1,
        "the newer one stays"
    );
    assert_eq!(
        count(
            &ctx,
            "SELECT COUNT(*) FROM verification_applications \
             WHERE identity_purged_at IS NOT NULL AND length(payload_sealed) = 0"
        )
        .await,
        1
    );

    // Readers: the owner's list and the staff case file carry the marker; the data plane's
    // jurisdictions fall back to the clear primary country; anything that needs the payload is
    // refused as purged, not a decryption failure.
    let list = s
        .verification()
        .customer_applications(&key, &alice, None, 10)
        .await
        .unwrap();
    let purged = list.iter().find(|a| a.id == old).expect("listed");
    assert!(purged.payload.is_none() && purged.identity_purged_at == Some(later));
    let file = s
        .verification()
        .application_for_staff(&key, &senior, old, later)
        .await
        .unwrap();
    assert!(file.application.payload.is_none());
    assert!(matches!(
        file.application.require_payload(),
        Err(VerificationError::IdentityPurged { at }) if at == later
    ));
    assert_eq!(
        s.verification()
            .verified_jurisdictions(&key, alice.customer_id)
            .await
            .unwrap(),
        ["GB"]
    );
    let submit = s
        .verification()
        .submit_application(&key, &alice, old, &rules(), later)
        .await;
    assert!(
        matches!(submit, Err(VerificationError::IdentityPurged { .. })),
        "{submit:?}"
    );

    // Idempotent.
    assert_eq!(run(s, RunKind::Manual, later).await, 0);
    chain_intact(s).await;
}

crate::store_suite!(a_superseded_payload_is_withdrawn_and_readers_answer_the_marker);
