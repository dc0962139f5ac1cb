//! Threshold semantics beyond a single crossing: totals that get past a threshold without a
//! job crossing it (accounts linked after the fact), thresholds that already fired, projected
//! (declared) compute, and reviews the caller asks for.

use computegate_kyc::ledger::{
    AdmissionOptions, LinkAttribute, ReviewResolution, ReviewStatus, UsageKind, Verdict,
};

use super::fixtures::{admit, admitted, customer, job, recorded, staff, usage};
use crate::support::{Ctx, t0};

async fn a_split_linked_after_the_fact_fires_on_the_next_job(ctx: Ctx) {
    let s = &ctx.store;
    let (a, b) = (customer(s).await, customer(s).await);
    // Each alone stays below 1e26.
    admitted(s, &job(a, "late-a", 6e25)).await;
    admitted(s, &job(b, "late-b", 6e25)).await;
    // Found later: same beneficial owner. The group now holds 1.2e26 without any job having
    // crossed 1e26.
    let owner = super::fixtures::hashed("owner:late");
    for c in [a, b] {
        s.ledger()
            .link_by_attribute(c, LinkAttribute::BeneficialOwner, &owner, t0())
            .await
            .unwrap();
    }
    let d = admit(s, &job(a, "late-a2", 1.0)).await;
    assert!(matches!(d.verdict, Verdict::HeldForReview { .. }), "{d:?}");
    let x = d
        .crossings
        .iter()
        .find(|x| x.label == "us_1e26_group")
        .expect("group crossing");
    assert_eq!(x.previous_flop, 1.2e26);
    // The group is a new scope for 1e25 as well: reported once approved and admitted.
    assert!(d.crossings.iter().any(|x| x.label == "eu_art51_1e25_group"));
}

async fn a_threshold_fires_once_even_when_the_total_dips_and_grows_again(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let first = admitted(s, &job(c, "run", 2e25)).await;
    assert_eq!(first.report_ids.len(), 1);
    // The job finishes having used almost nothing: the lineage drops below 1e25 ...
    let end = UsageKind::Finished {
        accelerator_seconds_total: 1.0,
    };
    recorded(s, &usage(first.job_id, "fin", end, t0())).await;
    // ... and passes it again with the next job: already reported, no second report.
    let again = admitted(s, &job(c, "run", 2e25)).await;
    assert!(
        again
            .crossings
            .iter()
            .all(|x| x.label != "eu_art51_1e25_run"),
        "{again:?}"
    );
    assert!(again.report_ids.is_empty());
}

async fn declared_compute_projects_the_crossing_at_submission(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    // One H100-hour of hardware, but a declared 6·N·D of 2e25: the projection crosses 1e25.
    let req = job(c, "declared", 1.4e18);
    let options = AdmissionOptions {
        projected_flop: Some(2e25),
        hold_for_review: None,
        ..AdmissionOptions::default()
    };
    let d = s.ledger().admit_with(&req, &options).await.unwrap();
    assert_eq!(d.verdict, Verdict::Admitted);
    assert!(d.crossings.iter().any(|x| x.label == "eu_art51_1e25_run"));
    assert_eq!(
        d.report_ids.len(),
        1,
        "projected crossing reported at submission"
    );
    // Only the estimate is reserved.
    assert_eq!(d.totals_after.lineage_flop, 1.4e18);
    let bad = AdmissionOptions {
        projected_flop: Some(f64::NAN),
        hold_for_review: None,
        ..AdmissionOptions::default()
    };
    assert!(s.ledger().admit_with(&req, &bad).await.is_err());
}

async fn a_review_the_caller_asks_for_holds_until_approved(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let req = job(c, "gap", 1.4e18);
    let options = AdmissionOptions {
        projected_flop: None,
        hold_for_review: Some("declared estimate 29 000x the hardware estimate".into()),
        ..AdmissionOptions::default()
    };
    let d = s.ledger().admit_with(&req, &options).await.unwrap();
    let Verdict::HeldForReview { review_id } = d.verdict else {
        panic!("{d:?}")
    };
    let pending = s
        .ledger()
        .list_job_reviews(Some(ReviewStatus::Pending), None, 10)
        .await
        .unwrap();
    assert_eq!(pending[0].id, review_id);
    assert_eq!(
        pending[0].hold_reason.as_deref(),
        Some("declared estimate 29 000x the hardware estimate")
    );
    assert!(pending[0].crossings.is_empty());
    s.ledger()
        .resolve_job_review(review_id, ReviewResolution::Approve, &staff(), "ok", t0())
        .await
        .unwrap();
    let d = s.ledger().admit_with(&req, &options).await.unwrap();
    assert_eq!(d.verdict, Verdict::Admitted);
    assert_eq!(d.approved_review, Some(review_id));
}

crate::store_suite!(
    a_split_linked_after_the_fact_fires_on_the_next_job,
    a_threshold_fires_once_even_when_the_total_dips_and_grows_again,
    declared_compute_projects_the_crossing_at_submission,
    a_review_the_caller_asks_for_holds_until_approved,
);
