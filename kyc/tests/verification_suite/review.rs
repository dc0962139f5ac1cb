//! Staff decisions: the four-eyes rule, conflicts of interest, screening overrides,
//! suspension and expiry.

use computegate_kyc::accounts::{Actor, CustomerKind, CustomerStatus, StaffRole, Tier};
use computegate_kyc::verification::{
    ApplicationStatus, DecisionRequest, DocumentLimits, DocumentType, DocumentUpload,
    ScreeningDecision, StaffDecision, TransitionError, VerificationError,
};
use time::Duration;

use crate::fixtures::*;
use crate::support::{Ctx, t0};

fn approve(tier: &str) -> StaffDecision {
    StaffDecision::Approve {
        tier: Tier::new(tier).unwrap(),
    }
}

fn compliance_plan() -> DocumentUpload {
    DocumentUpload {
        doc_type: DocumentType::CompliancePlan,
        declared_content_type: "application/pdf".into(),
        filename: Some("plan.pdf".into()),
        bytes: PDF.to_vec(),
    }
}

async fn top_tier_needs_two_distinct_seniors(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let org_member = customer(s, "cto@frontier.example", CustomerKind::Organization).await;
    let org = s
        .accounts()
        .create_organization("Frontier Models GmbH", &Actor::system("test"), t0())
        .await
        .unwrap();
    s.accounts()
        .add_organization_member(org.id, org_member.customer_id, &Actor::system("test"), t0())
        .await
        .unwrap();
    let id = pending(
        s,
        &key,
        &org_member,
        &organization(),
        ScreeningDecision::Clear,
    )
    .await;
    let s1 = staff(s, "s1@cg.example", StaffRole::SeniorReviewer).await;
    let s2 = staff(s, "s2@cg.example", StaffRole::SeniorReviewer).await;
    let reviewer = staff(s, "rev@cg.example", StaffRole::Reviewer).await;
    let mut tied = staff(s, "tied@cg.example", StaffRole::SeniorReviewer).await;
    tied.organization_ids = vec![org.id];
    let veu = || approve(Tier::VALIDATED_END_USER);
    let verification = s.verification();
    let decide = |who, d| {
        verification.decide_application(
            &key,
            who,
            id,
            DecisionRequest {
                action: d,
                reason: "VEU review".into(),
                reverify_after: Some(Duration::days(182)),
                evidence: Default::default(),
            },
            t0(),
        )
    };

    // No compliance plan yet.
    let err = decide(&s1, veu()).await.unwrap_err();
    assert!(
        matches!(
            err,
            VerificationError::Transition(TransitionError::CompliancePlanMissing)
        ),
        "{err:?}"
    );
    s.verification()
        .add_document(
            &key,
            &org_member,
            id,
            &compliance_plan(),
            &DocumentLimits::default(),
            t0(),
        )
        .await
        .unwrap();
    // A plain reviewer cannot grant the top tier; a senior of the applicant's organization
    // cannot either.
    let err = decide(&reviewer, veu()).await.unwrap_err();
    assert!(
        matches!(
            err,
            VerificationError::Transition(TransitionError::NotPermitted { .. })
        ),
        "{err:?}"
    );
    let err = decide(&tied, veu()).await.unwrap_err();
    assert!(
        matches!(
            err,
            VerificationError::Transition(TransitionError::ConflictOfInterest)
        ),
        "{err:?}"
    );

    // One senior alone is not enough.
    let first = decide(&s1, veu()).await.unwrap();
    assert_eq!(first.status, ApplicationStatus::PendingReview);
    assert_eq!(first.granted_tier, None);
    let c = s
        .accounts()
        .customer_by_id(org_member.customer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.tier.as_str(), Tier::UNVERIFIED);
    let err = decide(&s1, veu()).await.unwrap_err();
    assert!(
        matches!(
            err,
            VerificationError::Transition(TransitionError::DuplicateApprover)
        ),
        "{err:?}"
    );
    let file = s
        .verification()
        .application_for_staff(&key, &s2, id, t0())
        .await
        .unwrap();
    assert_eq!(file.approvals.len(), 1);
    assert_eq!(file.approvals[0].staff_id, s1.staff_id);

    // A second, distinct senior completes it.
    let second = decide(&s2, veu()).await.unwrap();
    assert_eq!(second.status, ApplicationStatus::Approved);
    let c = s
        .accounts()
        .customer_by_id(org_member.customer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.tier.as_str(), Tier::VALIDATED_END_USER);
    let acts = actions(s, &format!("application:{id}")).await;
    assert!(
        acts.ends_with(&[
            "kyc.application.approval_recorded".to_owned(),
            "kyc.application.viewed".to_owned(),
            "kyc.application.approved".to_owned(),
        ]),
        "{acts:?}"
    );
    chain_intact(s).await;
}

async fn reviewer_cannot_decide_own_case(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    // The same person holds a customer account and a staff account.
    let me = customer(s, "dual@example.com", CustomerKind::Individual).await;
    let id = pending(s, &key, &me, &individual(), ScreeningDecision::Clear).await;
    let myself = staff(s, "DUAL@example.com", StaffRole::SeniorReviewer).await;
    for d in [
        StaffDecision::Reject,
        StaffDecision::RequestInfo,
        approve(Tier::IDENTITY_VERIFIED),
    ] {
        let err = s
            .verification()
            .decide_application(
                &key,
                &myself,
                id,
                DecisionRequest {
                    action: d,
                    reason: "mine".into(),
                    reverify_after: None,
                    evidence: Default::default(),
                },
                t0(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                VerificationError::Transition(TransitionError::ConflictOfInterest)
            ),
            "{err:?}"
        );
    }
    let err = s
        .verification()
        .claim_application(&myself, id, t0())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        VerificationError::Transition(TransitionError::ConflictOfInterest)
    ));
    let err = s
        .verification()
        .application_for_staff(&key, &myself, id, t0())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        VerificationError::Transition(TransitionError::ConflictOfInterest)
    ));
    let c = s
        .accounts()
        .customer_by_id(me.customer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.tier.as_str(), Tier::UNVERIFIED);
    // Refusals leave no audit record of a decision.
    let acts = actions(s, &format!("application:{id}")).await;
    assert!(
        !acts
            .iter()
            .any(|a| a.contains("approved") || a.contains("rejected"))
    );
    chain_intact(s).await;
}

async fn screening_hit_blocks_approval_until_overridden(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let alice = customer(s, "alice@example.com", CustomerKind::Individual).await;
    let id = pending(s, &key, &alice, &individual(), ScreeningDecision::Hit).await;
    let reviewer = staff(s, "rev@cg.example", StaffRole::Reviewer).await;
    let senior = staff(s, "sen@cg.example", StaffRole::SeniorReviewer).await;
    let err = s
        .verification()
        .decide_application(
            &key,
            &reviewer,
            id,
            DecisionRequest {
                action: approve(Tier::IDENTITY_VERIFIED),
                reason: "ok".into(),
                reverify_after: None,
                evidence: Default::default(),
            },
            t0(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            VerificationError::Transition(TransitionError::ScreeningNotCleared)
        ),
        "{err:?}"
    );
    let err = s
        .verification()
        .override_application_screening(&reviewer, id, "false positive", t0())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        VerificationError::Transition(TransitionError::NotPermitted { .. })
    ));
    s.verification()
        .override_application_screening(
            &senior,
            id,
            "DOB and nationality contradict the entry",
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
                action: approve(Tier::IDENTITY_VERIFIED),
                reason: "ok".into(),
                reverify_after: None,
                evidence: Default::default(),
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(out.status, ApplicationStatus::Approved);
    let file = s
        .verification()
        .application_for_staff(&key, &senior, id, t0())
        .await
        .unwrap();
    assert_eq!(file.screening.unwrap().overridden_by, Some(senior.staff_id));
    assert!(
        file.risk
            .unwrap()
            .factors
            .iter()
            .any(|f| f.code == "screening_hit")
    );
    chain_intact(s).await;
}

async fn claims_are_respected(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let alice = customer(s, "alice@example.com", CustomerKind::Individual).await;
    let id = pending(s, &key, &alice, &individual(), ScreeningDecision::Clear).await;
    let r1 = staff(s, "r1@cg.example", StaffRole::Reviewer).await;
    let r2 = staff(s, "r2@cg.example", StaffRole::Reviewer).await;
    let auditor = staff(s, "aud@cg.example", StaffRole::Auditor).await;
    s.verification()
        .claim_application(&r1, id, t0())
        .await
        .unwrap();
    s.verification()
        .claim_application(&r1, id, t0())
        .await
        .unwrap();
    assert!(matches!(
        s.verification().claim_application(&r2, id, t0()).await,
        Err(VerificationError::ClaimedByOther)
    ));
    let err = s
        .verification()
        .decide_application(
            &key,
            &r2,
            id,
            DecisionRequest {
                action: StaffDecision::Reject,
                reason: "no".into(),
                reverify_after: None,
                evidence: Default::default(),
            },
            t0(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, VerificationError::ClaimedByOther));
    assert!(matches!(
        s.verification().claim_application(&auditor, id, t0()).await,
        Err(VerificationError::RoleNotPermitted)
    ));
    s.verification()
        .unclaim_application(&r1, id, t0())
        .await
        .unwrap();
    s.verification()
        .claim_application(&r2, id, t0())
        .await
        .unwrap();
    let err = s
        .verification()
        .decide_application(
            &key,
            &auditor,
            id,
            DecisionRequest {
                action: StaffDecision::Reject,
                reason: "no".into(),
                reverify_after: None,
                evidence: Default::default(),
            },
            t0(),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        VerificationError::Transition(TransitionError::NotPermitted { .. })
    ));
}

async fn suspend_resume_close_customer(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let alice = customer(s, "alice@example.com", CustomerKind::Individual).await;
    let id = pending(s, &key, &alice, &individual(), ScreeningDecision::Clear).await;
    let reviewer = staff(s, "rev@cg.example", StaffRole::Reviewer).await;
    let senior = staff(s, "sen@cg.example", StaffRole::SeniorReviewer).await;
    s.verification()
        .decide_application(
            &key,
            &reviewer,
            id,
            DecisionRequest {
                action: approve(Tier::IDENTITY_VERIFIED),
                reason: "ok".into(),
                reverify_after: None,
                evidence: Default::default(),
            },
            t0(),
        )
        .await
        .unwrap();

    s.verification()
        .suspend_customer(&reviewer, alice.customer_id, "abuse report #12", t0())
        .await
        .unwrap();
    let c = s
        .accounts()
        .customer_by_id(alice.customer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status, CustomerStatus::Suspended);
    assert_eq!(
        s.verification()
            .get_application(&key, &alice, id)
            .await
            .unwrap()
            .status,
        ApplicationStatus::Suspended
    );
    // Only seniors (or admins) lift it.
    let err = s
        .verification()
        .resume_customer(&reviewer, alice.customer_id, "cleared", t0())
        .await
        .unwrap_err();
    assert!(matches!(err, VerificationError::RoleNotPermitted));
    let err = s
        .verification()
        .resume_customer(&senior, alice.customer_id, " ", t0())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        VerificationError::Transition(TransitionError::ReasonRequired)
    ));
    s.verification()
        .resume_customer(&senior, alice.customer_id, "cleared", t0())
        .await
        .unwrap();
    let c = s
        .accounts()
        .customer_by_id(alice.customer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.status, c.tier.as_str()),
        (CustomerStatus::Active, Tier::IDENTITY_VERIFIED)
    );
    assert_eq!(
        s.verification()
            .get_application(&key, &alice, id)
            .await
            .unwrap()
            .status,
        ApplicationStatus::Approved
    );

    s.verification()
        .close_customer(&senior, alice.customer_id, "customer request", t0())
        .await
        .unwrap();
    let c = s
        .accounts()
        .customer_by_id(alice.customer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.status, c.tier.as_str()),
        (CustomerStatus::Closed, Tier::UNVERIFIED)
    );
    assert_eq!(
        s.verification()
            .get_application(&key, &alice, id)
            .await
            .unwrap()
            .status,
        ApplicationStatus::Closed
    );

    // A customer without an approved application can still be suspended (audited).
    let bob = customer(s, "bob@example.com", CustomerKind::Individual).await;
    s.verification()
        .suspend_customer(&reviewer, bob.customer_id, "fraud signal", t0())
        .await
        .unwrap();
    assert_eq!(
        actions(s, &format!("customer:{}", bob.customer_id)).await,
        vec!["customer.status.changed"]
    );
    assert_eq!(
        actions(s, &format!("application:{id}")).await[4..],
        [
            "kyc.application.approved",
            "kyc.application.suspended",
            "kyc.application.resumed",
            "kyc.application.closed"
        ]
    );
    chain_intact(s).await;
}

async fn approvals_expire_when_due(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let alice = customer(s, "alice@example.com", CustomerKind::Individual).await;
    let id = pending(s, &key, &alice, &individual(), ScreeningDecision::Clear).await;
    let reviewer = staff(s, "rev@cg.example", StaffRole::Reviewer).await;
    s.verification()
        .decide_application(
            &key,
            &reviewer,
            id,
            DecisionRequest {
                action: approve(Tier::IDENTITY_VERIFIED),
                reason: "ok".into(),
                reverify_after: Some(Duration::days(30)),
                evidence: Default::default(),
            },
            t0(),
        )
        .await
        .unwrap();
    assert!(
        s.verification()
            .expire_due(t0() + Duration::days(29))
            .await
            .unwrap()
            .is_empty()
    );
    let dropped = s
        .verification()
        .expire_due(t0() + Duration::days(30))
        .await
        .unwrap();
    assert_eq!(dropped, vec![alice.customer_id]);
    let c = s
        .accounts()
        .customer_by_id(alice.customer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.tier.as_str(), Tier::UNVERIFIED);
    assert_eq!(
        s.verification()
            .get_application(&key, &alice, id)
            .await
            .unwrap()
            .status,
        ApplicationStatus::Expired
    );
    assert!(
        s.verification()
            .expire_due(t0() + Duration::days(60))
            .await
            .unwrap()
            .is_empty()
    );
    let stats = s.verification().application_stats().await.unwrap();
    assert_eq!(stats.by_status, vec![(ApplicationStatus::Expired, 1)]);

    // Re-verification: a new application, approved, supersedes nothing left but works.
    let id2 = pending(s, &key, &alice, &individual(), ScreeningDecision::Clear).await;
    s.verification()
        .decide_application(
            &key,
            &reviewer,
            id2,
            DecisionRequest {
                action: approve(Tier::IDENTITY_VERIFIED),
                reason: "re-verified".into(),
                reverify_after: None,
                evidence: Default::default(),
            },
            t0(),
        )
        .await
        .unwrap();
    let c = s
        .accounts()
        .customer_by_id(alice.customer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.tier.as_str(), Tier::IDENTITY_VERIFIED);
    chain_intact(s).await;
}

async fn newer_approval_supersedes_older(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let alice = customer(s, "alice@example.com", CustomerKind::Individual).await;
    let reviewer = staff(s, "rev@cg.example", StaffRole::Reviewer).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let id = pending(s, &key, &alice, &individual(), ScreeningDecision::Clear).await;
        let request = DecisionRequest {
            action: approve(Tier::IDENTITY_VERIFIED),
            reason: "ok".into(),
            reverify_after: Some(Duration::days(30)),
            evidence: Default::default(),
        };
        s.verification()
            .decide_application(&key, &reviewer, id, request, t0())
            .await
            .unwrap();
        ids.push(id);
    }
    let first = s
        .verification()
        .get_application(&key, &alice, ids[0])
        .await
        .unwrap();
    assert_eq!(first.status, ApplicationStatus::Expired);
    assert_eq!(
        actions(s, &format!("application:{}", ids[0]))
            .await
            .last()
            .unwrap(),
        "kyc.application.superseded"
    );
    let second = s
        .verification()
        .get_application(&key, &alice, ids[1])
        .await
        .unwrap();
    assert_eq!(second.status, ApplicationStatus::Approved);
    // Only the live approval can lapse; it drops the tier.
    let dropped = s
        .verification()
        .expire_due(t0() + Duration::days(31))
        .await
        .unwrap();
    assert_eq!(dropped, vec![alice.customer_id]);
    chain_intact(s).await;
}

/// The console links a customer named elsewhere (an incident) to their newest case file.
async fn a_customers_newest_application_is_found(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let alice = customer(s, "alice@example.com", CustomerKind::Individual).await;
    let bob = customer(s, "bob@example.com", CustomerKind::Individual).await;
    let latest =
        |c: uuid::Uuid| async move { s.verification().latest_application_of(c).await.unwrap() };
    assert_eq!(latest(alice.customer_id).await, None, "never applied");
    let first = pending(s, &key, &alice, &individual(), ScreeningDecision::Clear).await;
    let reviewer = staff(s, "rev@cg.example", StaffRole::Reviewer).await;
    s.verification()
        .decide_application(
            &key,
            &reviewer,
            first,
            DecisionRequest {
                action: approve(Tier::IDENTITY_VERIFIED),
                reason: "ok".into(),
                reverify_after: None,
                evidence: Default::default(),
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(latest(alice.customer_id).await, Some(first));
    let second = s
        .verification()
        .create_draft(&key, &alice, &individual(), t0() + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(latest(alice.customer_id).await, Some(second.id));
    assert_eq!(
        latest(bob.customer_id).await,
        None,
        "another customer's is not theirs"
    );
}

crate::store_suite!(
    a_customers_newest_application_is_found,
    newer_approval_supersedes_older,
    top_tier_needs_two_distinct_seniors,
    reviewer_cannot_decide_own_case,
    screening_hit_blocks_approval_until_overridden,
    claims_are_respected,
    suspend_resume_close_customer,
    approvals_expire_when_due,
);
