//! The customer's path: draft → submitted → screening → pending_review → approved, with
//! validation, ownership, encryption at rest and the audit trail.

use computegate_kyc::accounts::{CustomerKind, StaffRole, Tier};
use computegate_kyc::verification::{
    ApplicationPayload, ApplicationStatus, DecisionRequest, QueueFilter, ScreeningDecision,
    StaffDecision, VerificationError,
};
use time::Duration;

use crate::fixtures::*;
use crate::support::{Ctx, t0};

async fn full_lifecycle_changes_the_tier(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let alice = customer(s, "alice@example.com", CustomerKind::Individual).await;
    let reviewer = staff(s, "rev@cg.example", StaffRole::Reviewer).await;

    // A partial draft is fine; the full payload replaces it.
    let partial: ApplicationPayload =
        serde_json::from_str(r#"{"kind":"individual","individual":{"legal_name":"Ada"}}"#).unwrap();
    let draft = s
        .verification()
        .create_draft(&key, &alice, &partial, t0())
        .await
        .unwrap();
    assert_eq!(draft.status, ApplicationStatus::Draft);
    let updated = s
        .verification()
        .update_draft(&key, &alice, draft.id, &individual(), t0())
        .await
        .unwrap();
    assert_eq!(updated.payload, Some(individual()));

    let submitted = s
        .verification()
        .submit_application(&key, &alice, draft.id, &rules(), t0())
        .await
        .unwrap();
    assert_eq!(submitted.status, ApplicationStatus::Submitted);
    assert_eq!(submitted.submitted_at, Some(t0()));
    // Editing after submission is refused.
    let err = s
        .verification()
        .update_draft(&key, &alice, draft.id, &individual(), t0())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        VerificationError::NotEditable(ApplicationStatus::Submitted)
    ));

    let subjects = s
        .verification()
        .begin_application_screening(&key, draft.id, t0())
        .await
        .unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].name, "Ada María Ñúñez-Lovelace");
    assert_eq!(subjects[0].date_of_birth.as_deref(), Some("1990-12-10"));
    let recorded = s
        .verification()
        .record_application_screening(
            &key,
            draft.id,
            &screening(ScreeningDecision::Clear, 0.12),
            Some("GB"),
            &rules(),
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(recorded.status, ApplicationStatus::PendingReview);
    assert!(
        recorded
            .risk
            .factors
            .iter()
            .any(|f| f.code == "idv_missing")
    );

    let queue = s
        .verification()
        .application_queue(&QueueFilter::default())
        .await
        .unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].country.as_deref(), Some("GB"));
    // The keyset cursor continues after the last item seen: nothing follows the only one.
    let cursor = queue[0].cursor();
    assert_eq!(cursor, (queue[0].submitted_at.unwrap(), queue[0].id));
    let after = s
        .verification()
        .application_queue(&QueueFilter {
            after: Some(cursor),
            ..QueueFilter::default()
        })
        .await
        .unwrap();
    assert!(after.is_empty(), "{after:?}");
    assert_eq!(queue[0].risk_score, Some(i64::from(recorded.risk.score)));
    let none = s
        .verification()
        .application_queue(&QueueFilter {
            country: Some("DE".into()),
            ..QueueFilter::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    let none = s
        .verification()
        .application_queue(&QueueFilter {
            min_risk: Some(recorded.risk.score + 1),
            ..QueueFilter::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());

    s.verification()
        .claim_application(&reviewer, draft.id, t0())
        .await
        .unwrap();
    let file = s
        .verification()
        .application_for_staff(&key, &reviewer, draft.id, t0())
        .await
        .unwrap();
    assert_eq!(file.customer_email, "alice@example.com");
    assert_eq!(file.claimed_by, Some(reviewer.staff_id));
    assert_eq!(
        file.screening.as_ref().unwrap().decision,
        ScreeningDecision::Clear
    );
    assert_eq!(file.screening_parties.len(), 1);
    assert_eq!(file.risk.as_ref().unwrap().score, recorded.risk.score);

    let outcome = s
        .verification()
        .decide_application(
            &key,
            &reviewer,
            draft.id,
            DecisionRequest {
                action: StaffDecision::Approve {
                    tier: Tier::new(Tier::IDENTITY_VERIFIED).unwrap(),
                },
                reason: "passport and screening clear".into(),
                reverify_after: Some(Duration::days(365)),
                evidence: Default::default(),
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, ApplicationStatus::Approved);
    let c = s
        .accounts()
        .customer_by_id(alice.customer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.tier.as_str(), Tier::IDENTITY_VERIFIED);
    let view = s
        .verification()
        .get_application(&key, &alice, draft.id)
        .await
        .unwrap();
    assert_eq!(view.status, ApplicationStatus::Approved);
    assert_eq!(view.granted_tier.unwrap().as_str(), Tier::IDENTITY_VERIFIED);
    assert_eq!(view.expires_at, Some(t0() + Duration::days(365)));

    // Exactly one audit record per step, in order.
    assert_eq!(
        actions(s, &format!("application:{}", draft.id)).await,
        vec![
            "kyc.application.created",
            "kyc.application.updated",
            "kyc.application.submitted",
            "kyc.screening.started",
            "kyc.screening.completed",
            "kyc.application.claimed",
            "kyc.application.viewed",
            "kyc.application.approved",
        ]
    );
    let approved = s
        .audit()
        .audit_page(&computegate_kyc::audit::AuditFilter {
            action: Some("kyc.application.approved".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(approved[0].actor, format!("staff:{}", reviewer.staff_id));
    assert_eq!(approved[0].actor_ip, reviewer.client_ip);
    assert_eq!(approved[0].detail["customer_tier"], "identity_verified");
    assert_eq!(approved[0].detail["reason"], "passport and screening clear");
    chain_intact(s).await;
}

async fn validation_lists_every_bad_field(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let alice = customer(s, "alice@example.com", CustomerKind::Individual).await;
    let mut bad = individual();
    bad.individual.as_mut().unwrap().nationality = Some("XX".into());
    bad.individual.as_mut().unwrap().date_of_birth = Some("2020-01-01".into());
    let err = s
        .verification()
        .create_draft(&key, &alice, &bad, t0())
        .await
        .unwrap_err();
    let VerificationError::Invalid(errors) = err else {
        panic!("{err:?}")
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec!["individual.date_of_birth", "individual.nationality"]
    );

    // An incomplete draft cannot be submitted; every missing field is named.
    let partial: ApplicationPayload = serde_json::from_str(r#"{"kind":"individual"}"#).unwrap();
    let draft = s
        .verification()
        .create_draft(&key, &alice, &partial, t0())
        .await
        .unwrap();
    let err = s
        .verification()
        .submit_application(&key, &alice, draft.id, &rules(), t0())
        .await
        .unwrap_err();
    let VerificationError::Invalid(errors) = err else {
        panic!("{err:?}")
    };
    assert!(errors.len() >= 5, "{errors:?}");
    assert!(errors.iter().any(|e| e.field == "individual"));
    assert!(errors.iter().any(|e| e.field == "intended_use"));
    let view = s
        .verification()
        .get_application(&key, &alice, draft.id)
        .await
        .unwrap();
    assert_eq!(view.status, ApplicationStatus::Draft);
    // A second open application is refused.
    let err = s
        .verification()
        .create_draft(&key, &alice, &partial, t0())
        .await
        .unwrap_err();
    assert!(
        matches!(err, VerificationError::ApplicationInProgress { id, status }
            if id == view.id && status == ApplicationStatus::Draft),
        "{err:?}"
    );
    chain_intact(s).await;
}

async fn others_applications_are_not_found(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let alice = customer(s, "alice@example.com", CustomerKind::Individual).await;
    let mallory = customer(s, "mallory@example.com", CustomerKind::Individual).await;
    let app = s
        .verification()
        .create_draft(&key, &alice, &individual(), t0())
        .await
        .unwrap();
    for err in [
        s.verification()
            .get_application(&key, &mallory, app.id)
            .await
            .unwrap_err(),
        s.verification()
            .update_draft(&key, &mallory, app.id, &individual(), t0())
            .await
            .unwrap_err(),
        s.verification()
            .submit_application(&key, &mallory, app.id, &rules(), t0())
            .await
            .unwrap_err(),
        s.verification()
            .list_documents(&mallory, app.id)
            .await
            .unwrap_err(),
        s.verification()
            .get_application(&key, &alice, uuid::Uuid::now_v7())
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, VerificationError::NotFound), "{err:?}");
    }
    // Nothing changed.
    let view = s
        .verification()
        .get_application(&key, &alice, app.id)
        .await
        .unwrap();
    assert_eq!(view.status, ApplicationStatus::Draft);
    assert!(
        s.verification()
            .customer_applications(&key, &mallory, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.verification()
            .customer_applications(&key, &alice, None, 100)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn personal_data_is_encrypted_at_rest(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let alice = customer(s, "alice@example.com", CustomerKind::Individual).await;
    let app = s
        .verification()
        .create_draft(&key, &alice, &individual(), t0())
        .await
        .unwrap();
    let dump = raw_dump(&ctx).await;
    for secret in ["Lovelace", "123456789", "SW1Y", "1990-12-10", "card_fp"] {
        assert!(
            !dump.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} stored in clear"
        );
    }
    // Another master key cannot read it.
    let err = s
        .verification()
        .get_application(&crate::fixtures::key(), &alice, app.id)
        .await
        .unwrap_err();
    assert!(matches!(err, VerificationError::Crypto(_)));
    assert!(!err.is_client_error());
}

async fn embargoed_jurisdiction_is_rejected_at_submit(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let kim = customer(s, "kim@example.com", CustomerKind::Individual).await;
    let mut p = individual();
    p.individual.as_mut().unwrap().nationality = Some("KP".into());
    let app = s
        .verification()
        .create_draft(&key, &kim, &p, t0())
        .await
        .unwrap();
    let view = s
        .verification()
        .submit_application(&key, &kim, app.id, &rules(), t0())
        .await
        .unwrap();
    assert_eq!(view.status, ApplicationStatus::Rejected);
    assert_eq!(view.reason.as_deref(), Some("embargoed jurisdiction: KP"));
    assert_eq!(
        actions(s, &format!("application:{}", app.id)).await,
        vec![
            "kyc.application.created",
            "kyc.application.submitted",
            "kyc.application.auto_rejected"
        ]
    );
    chain_intact(s).await;
}

async fn request_info_then_resubmit(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let alice = customer(s, "alice@example.com", CustomerKind::Individual).await;
    let reviewer = staff(s, "rev@cg.example", StaffRole::Reviewer).await;
    let id = pending(s, &key, &alice, &individual(), ScreeningDecision::Clear).await;
    let out = s
        .verification()
        .decide_application(
            &key,
            &reviewer,
            id,
            DecisionRequest {
                action: StaffDecision::RequestInfo,
                reason: "please upload a readable passport scan".into(),
                reverify_after: None,
                evidence: Default::default(),
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(out.status, ApplicationStatus::NeedsInfo);
    let view = s
        .verification()
        .get_application(&key, &alice, id)
        .await
        .unwrap();
    assert_eq!(
        view.reason.as_deref(),
        Some("please upload a readable passport scan")
    );
    let mut p = individual();
    p.individual.as_mut().unwrap().phone = Some("+44 20 7946 0000".into());
    s.verification()
        .update_draft(&key, &alice, id, &p, t0())
        .await
        .unwrap();
    let view = s
        .verification()
        .submit_application(&key, &alice, id, &rules(), t0())
        .await
        .unwrap();
    assert_eq!(view.status, ApplicationStatus::Submitted);
    // Rejection after a second screening.
    s.verification()
        .begin_application_screening(&key, id, t0())
        .await
        .unwrap();
    s.verification()
        .record_application_screening(
            &key,
            id,
            &screening(ScreeningDecision::Clear, 0.0),
            None,
            &rules(),
            t0(),
        )
        .await
        .unwrap();
    let out = s
        .verification()
        .decide_application(
            &key,
            &reviewer,
            id,
            DecisionRequest {
                action: StaffDecision::Reject,
                reason: "declined".into(),
                reverify_after: None,
                evidence: Default::default(),
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(out.status, ApplicationStatus::Rejected);
    let c = s
        .accounts()
        .customer_by_id(alice.customer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.tier.as_str(), Tier::UNVERIFIED);
    chain_intact(s).await;
}

crate::store_suite!(
    full_lifecycle_changes_the_tier,
    validation_lists_every_bad_field,
    others_applications_are_not_found,
    personal_data_is_encrypted_at_rest,
    embargoed_jurisdiction_is_rejected_at_submit,
    request_info_then_resubmit,
);
