//! Random operation sequences against the store: every operation that succeeds leaves exactly
//! one audit record of its own (an approval may add automatic-link records), every refusal
//! leaves none, approval never happens without a cleared screening, and the chain stays intact.

use computegate_kyc::accounts::{CustomerKind, StaffRole, Tier};
use computegate_kyc::audit::AuditFilter;
use computegate_kyc::verification::{
    ApplicationStatus, DecisionRequest, ScreeningDecision, StaffDecision,
};

use crate::fixtures::*;
use crate::support::{Ctx, t0};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn random_sequences_audit_exactly_once(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let reviewer = staff(s, "rev@cg.example", StaffRole::Reviewer).await;
    let senior = staff(s, "sen@cg.example", StaffRole::SeniorReviewer).await;
    let admin = staff(s, "adm@cg.example", StaffRole::Admin).await;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut approvals = 0;
    for run in 0..4 {
        let alice = customer(s, &format!("a{run}@example.com"), CustomerKind::Individual).await;
        let app = s
            .verification()
            .create_draft(&key, &alice, &individual(), t0())
            .await
            .unwrap();
        let mut last_screening: Option<ScreeningDecision> = None;
        let mut overridden = false;
        for _ in 0..25 {
            let before = s.audit().audit_head().await.unwrap().seq;
            let staff_pick = match rng.next(3) {
                0 => &reviewer,
                1 => &senior,
                _ => &admin,
            };
            // Mostly the next natural step, sometimes anything at all.
            let status = s
                .verification()
                .get_application(&key, &alice, app.id)
                .await
                .unwrap()
                .status;
            let natural = match status {
                ApplicationStatus::Draft | ApplicationStatus::NeedsInfo => 0,
                ApplicationStatus::Submitted => 1,
                ApplicationStatus::Screening => 2,
                ApplicationStatus::PendingReview if rng.next(3) == 0 => 3,
                _ => 4,
            };
            let op = if rng.next(10) < 6 {
                natural
            } else {
                rng.next(9)
            };
            let decision = [
                ScreeningDecision::Clear,
                ScreeningDecision::Review,
                ScreeningDecision::Hit,
            ][rng.next(3) as usize];
            let ok = match op {
                0 => s
                    .verification()
                    .submit_application(&key, &alice, app.id, &rules(), t0())
                    .await
                    .is_ok(),
                1 => s
                    .verification()
                    .begin_application_screening(&key, app.id, t0())
                    .await
                    .is_ok(),
                2 => {
                    let r = s
                        .verification()
                        .record_application_screening(
                            &key,
                            app.id,
                            &screening(decision, 0.5),
                            None,
                            &rules(),
                            t0(),
                        )
                        .await;
                    if r.is_ok() {
                        last_screening = Some(decision);
                        overridden = false;
                    }
                    r.is_ok()
                }
                3 => {
                    let r = s
                        .verification()
                        .override_application_screening(staff_pick, app.id, "false positive", t0())
                        .await;
                    overridden |= r.is_ok();
                    r.is_ok()
                }
                4..=6 => {
                    let action = match op {
                        4 => StaffDecision::Approve {
                            tier: Tier::new(Tier::IDENTITY_VERIFIED).unwrap(),
                        },
                        5 => StaffDecision::Reject,
                        _ => StaffDecision::RequestInfo,
                    };
                    let request = DecisionRequest {
                        action,
                        reason: "random".into(),
                        reverify_after: None,
                        evidence: Default::default(),
                    };
                    let r = s
                        .verification()
                        .decide_application(&key, staff_pick, app.id, request, t0())
                        .await;
                    if let Ok(out) = &r
                        && out.status == ApplicationStatus::Approved
                    {
                        approvals += 1;
                        assert!(
                            last_screening == Some(ScreeningDecision::Clear) || overridden,
                            "approved on {last_screening:?} without override"
                        );
                    }
                    r.is_ok()
                }
                7 => s
                    .verification()
                    .update_draft(&key, &alice, app.id, &individual(), t0())
                    .await
                    .is_ok(),
                _ => s
                    .verification()
                    .suspend_customer(staff_pick, alice.customer_id, "random", t0())
                    .await
                    .is_ok(),
            };
            // An approval may also link the customer with an earlier run's account (every run
            // applies with the same person): those links are audited records of their own.
            let appended = s
                .audit()
                .audit_page(&AuditFilter {
                    after_seq: Some(before),
                    limit: 1000,
                    ..AuditFilter::default()
                })
                .await
                .unwrap();
            let own = appended
                .iter()
                .filter(|r| r.action != "ledger.group.linked")
                .count();
            assert_eq!(own, usize::from(ok), "op {op} ok={ok}: {appended:?}");
            if !ok || op != 4 {
                assert_eq!(appended.len(), own, "only approvals link: {appended:?}");
            }
        }
    }
    assert!(approvals > 0, "the sequence never reached approval");
    chain_intact(s).await;
}

crate::store_suite!(random_sequences_audit_exactly_once);
