//! Admission: caps, thresholds crossed by one job, by a lineage of fine-tunes and by a split
//! across linked accounts, review holds, validation and the audit records.

use computegate_kyc::audit::AuditFilter;
use computegate_kyc::ledger::{
    DenialReason, LedgerError, LinkAttribute, ReviewResolution, ReviewStatus, RunFilter, Verdict,
};
use computegate_policy::{Action, Scope};
use time::Duration;
use uuid::Uuid;

use super::fixtures::{DAY, admit, admitted, customer, job, organization, rule, staff, thresholds};
use crate::support::{Ctx, t0};

async fn per_run_cap_counts_the_whole_lineage(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let mut base = job(c, "base", 6e21);
    base.limits.max_flop_per_run = Some(1e22);
    let d = admitted(s, &base).await;
    assert_eq!(d.remaining_flop, Some(4e21));
    assert_eq!(d.run.run, d.run.lineage_root);

    // A fine-tune that would take the lineage past the cap is refused and reserves nothing.
    let mut ft = base.clone();
    ft.run_id = "ft".into();
    ft.parent_run_id = Some("base".into());
    ft.estimate_flop = 5e21;
    let d = admit(s, &ft).await;
    let Verdict::Denied(denial) = &d.verdict else {
        panic!("{d:?}")
    };
    assert_eq!(denial.reason, DenialReason::RunCap);
    assert_eq!(denial.limit_flop, Some(1e22));
    assert_eq!(d.remaining_flop, Some(4e21));
    assert_eq!(d.totals_after.lineage_flop, 6e21);

    // Exactly up to the cap is fine; the fine-tune joins the base's lineage.
    ft.estimate_flop = 4e21;
    let d = admitted(s, &ft).await;
    assert_eq!(d.remaining_flop, Some(0.0));
    assert_eq!(d.totals_after.lineage_flop, 1e22);
    let runs = s
        .ledger()
        .list_runs(&RunFilter {
            customer_id: Some(c),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), 2);
    let ft_row = runs.iter().find(|r| r.run_id == "ft").unwrap();
    assert_eq!(ft_row.lineage_root_run_id, "base");
    assert_eq!(ft_row.parent_run_id.as_deref(), Some("base"));
    assert_eq!(ft_row.lineage_flop, 1e22);
    assert_eq!(ft_row.jobs, 2);
    assert_eq!(ft_row.reserved_flop, 4e21);

    // Run ids are namespaced per customer: another customer's "base" is a new lineage.
    let other = customer(s).await;
    let d = admitted(s, &job(other, "base", 6e21)).await;
    assert_eq!(d.totals_after.lineage_flop, 6e21);
}

async fn customer_window_cap_and_concurrency(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let mut req = job(c, "r1", 600.0);
    req.limits.max_flop_per_customer_window = Some(1000.0);
    req.limits.window = DAY * 30;
    req.limits.max_concurrent_jobs = Some(2);
    admitted(s, &req).await;
    req.run_id = "r2".into();
    let d = admit(s, &req).await;
    let Verdict::Denied(denial) = &d.verdict else {
        panic!("{d:?}")
    };
    assert_eq!(denial.reason, DenialReason::CustomerWindowCap);
    assert_eq!(denial.limit_flop, Some(1000.0));
    assert_eq!(d.remaining_flop, Some(400.0));

    req.estimate_flop = 400.0;
    let d = admitted(s, &req).await;
    assert_eq!(d.totals_after.open_jobs, Some(2));
    assert_eq!(d.totals_after.customer_window_flop, 1000.0);

    // Two open jobs: a third is refused for concurrency whatever its size.
    req.estimate_flop = 0.0;
    let d = admit(s, &req).await;
    let Verdict::Denied(denial) = &d.verdict else {
        panic!("{d:?}")
    };
    assert_eq!(denial.reason, DenialReason::ConcurrentJobs { limit: 2 });

    // Outside the rolling window the earlier jobs no longer count toward the FLOP cap.
    req.limits.max_concurrent_jobs = None;
    req.estimate_flop = 900.0;
    req.now = t0() + Duration::days(31);
    let d = admitted(s, &req).await;
    assert_eq!(d.totals_after.customer_window_flop, 900.0);
    assert_eq!(s.ledger().open_reservations_count().await.unwrap(), 3);
}

async fn one_job_crosses_1e25_and_another_1e26(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let d = admitted(s, &job(c, "big", 2e25)).await;
    let labels: Vec<&str> = d.crossings.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "gpai_1e23_run",
            "eu_art51_1e25_run",
            "gpai_1e23_group",
            "eu_art51_1e25_group"
        ]
    );
    assert_eq!(
        d.report_ids.len(),
        1,
        "one report listing both report crossings"
    );
    let run_crossing = &d.crossings[1];
    assert_eq!(run_crossing.scope, Scope::Run);
    assert_eq!(run_crossing.scope_id, d.run.lineage_root);
    assert_eq!(run_crossing.previous_flop, 0.0);
    assert_eq!(run_crossing.projected_flop, 2e25);
    // The group of an unlinked customer is the customer.
    assert_eq!(d.crossings[3].scope_id, c);

    // A single job past 1e26 on a new run is held for review, and reserves nothing.
    let d = admit(s, &job(c, "frontier", 1.5e26)).await;
    let Verdict::HeldForReview { review_id } = d.verdict else {
        panic!("{d:?}")
    };
    assert!(d.report_ids.is_empty());
    assert_eq!(d.totals_after.group_flop, 2e25);
    let reviews = s
        .ledger()
        .list_job_reviews(Some(ReviewStatus::Pending), None, 10)
        .await
        .unwrap();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].id, review_id);
    assert_eq!(reviews[0].job_id, d.job_id);
    assert!(
        reviews[0]
            .crossings
            .iter()
            .all(|c| c.action == Action::Review)
    );
    assert_eq!(reviews[0].crossings.len(), 2, "run and group 1e26");
}

async fn a_lineage_of_fine_tunes_crosses_1e25(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let base = admitted(s, &job(c, "base", 6e24)).await;
    let mut ft1 = job(c, "ft1", 3e24);
    ft1.parent_run_id = Some("base".into());
    let d1 = admitted(s, &ft1).await;
    assert_eq!(d1.run.lineage_root, base.run.lineage_root);
    assert!(d1.crossings.iter().all(|x| x.threshold_flop < 1e25));

    // A fine-tune of the fine-tune: its own estimate is small, the lineage crosses 1e25.
    let mut ft2 = job(c, "ft2", 2e24);
    ft2.parent_run_id = Some("ft1".into());
    let d2 = admitted(s, &ft2).await;
    assert_eq!(d2.run.lineage_root, base.run.lineage_root);
    let x = d2
        .crossings
        .iter()
        .find(|x| x.label == "eu_art51_1e25_run")
        .expect("lineage crossing");
    assert_eq!(x.scope_id, base.run.lineage_root);
    // FLOP are IEEE doubles: 6e24 + 3e24 is 9e24 within one rounding step.
    assert!(
        (x.previous_flop - 9e24).abs() <= 9e24 * f64::EPSILON,
        "{x:?}"
    );
    assert_eq!(x.projected_flop, 1.1e25);
    assert_eq!(d2.report_ids.len(), 1);

    // A fine-tune of a parent never seen registers the parent as a new root.
    let mut orphan = job(c, "child", 1.0);
    orphan.parent_run_id = Some("unseen-base".into());
    let d = admitted(s, &orphan).await;
    assert_ne!(d.run.run, d.run.lineage_root);
    let runs = s
        .ledger()
        .list_runs(&RunFilter {
            customer_id: Some(c),
            ..Default::default()
        })
        .await
        .unwrap();
    let unseen = runs.iter().find(|r| r.run_id == "unseen-base").unwrap();
    assert_eq!(unseen.id, d.run.lineage_root);
    assert_eq!(unseen.jobs, 0);
}

async fn a_split_across_linked_accounts_is_caught(ctx: Ctx) {
    let s = &ctx.store;
    let a = customer(s).await;
    let b = customer(s).await;
    admitted(s, &job(a, "part-a", 6e25)).await;
    // Not linked yet: b alone stays below 1e26.
    let d = admitted(s, &job(b, "part-b", 3e25)).await;
    assert!(d.crossings.iter().all(|x| x.threshold_flop < 1e26));

    // Same payment card: linked automatically.
    let card = super::fixtures::hashed("card:4242-fingerprint");
    let out = s
        .ledger()
        .link_by_attribute(a, LinkAttribute::PaymentFingerprint, &card, t0())
        .await
        .unwrap();
    assert!(out.group.is_none(), "nobody shares it yet");
    let out = s
        .ledger()
        .link_by_attribute(b, LinkAttribute::PaymentFingerprint, &card, t0())
        .await
        .unwrap();
    let group = out.group.expect("linked");
    assert_eq!(group.members.len(), 2);

    // The group's rolling total now passes 1e26 with b's next part: held, as one run would be.
    let d = admit(s, &job(b, "part-b2", 2e25)).await;
    assert!(matches!(d.verdict, Verdict::HeldForReview { .. }), "{d:?}");
    let x = d
        .crossings
        .iter()
        .find(|x| x.label == "us_1e26_group")
        .unwrap();
    assert_eq!(x.scope_id, group.id);
    assert_eq!((x.previous_flop, x.projected_flop), (9e25, 1.1e26));
    assert_eq!(d.totals_after.group_flop, 9e25);
    assert_eq!(d.totals_after.customer_flop, 3e25);
}

async fn organization_scope_sums_members(ctx: Ctx) {
    let s = &ctx.store;
    let org = organization(s).await;
    let (a, b) = (customer(s).await, customer(s).await);
    let rules = thresholds(vec![rule(
        "org_1000",
        1000.0,
        Scope::Organization,
        Action::Report,
    )]);
    for (c, flop, crosses) in [(a, 600.0, false), (b, 500.0, true)] {
        let mut req = job(c, "r", flop);
        req.organization_id = Some(org);
        req.thresholds = rules.clone();
        let d = admitted(s, &req).await;
        assert_eq!(d.crossings.len(), usize::from(crosses), "{d:?}");
        if crosses {
            assert_eq!(d.crossings[0].scope_id, org);
            assert_eq!(d.totals_after.organization_flop, Some(1100.0));
        }
    }
}

/// Whatever instant the rolling window starts at — before, on or just after a job, on or just
/// before an hour — its total is exactly the jobs decided strictly after it, for the customer
/// and its organization, and a job released since counts no more. (A window total read by
/// the hour, as BENCHMARKS.md measured, must keep passing this.)
async fn the_window_total_is_exact_at_every_edge_of_an_hour(ctx: Ctx) {
    let s = &ctx.store;
    let (c, org) = (customer(s).await, organization(s).await);
    let hour = t0() + Duration::hours(5);
    let minutes = Duration::minutes;
    // Each job's FLOP a distinct power of two: a total names exactly the jobs it counts.
    let jobs = [
        (hour - minutes(10), 1.0),
        (hour, 2.0),
        (hour + minutes(20), 4.0),
        (hour + minutes(40), 8.0),
        (hour + minutes(60), 16.0),
        (hour + minutes(150), 32.0),
    ];
    let mut ids = Vec::new();
    for (i, (at, flop)) in jobs.iter().enumerate() {
        let mut req = job(c, &format!("r{i}"), *flop);
        req.organization_id = Some(org);
        req.thresholds = thresholds(Vec::new());
        req.now = *at;
        ids.push(admitted(s, &req).await.job_id);
    }
    let window_from = |start: time::OffsetDateTime| {
        let mut probe = job(c, "probe", 0.0);
        probe.organization_id = Some(org);
        probe.limits.window = DAY * 30;
        probe.thresholds = thresholds(Vec::new());
        probe.now = start + DAY * 30;
        // The threshold window (365 days) reaches back before every job: the customer's
        // total over it is all of them.
        probe
    };
    let expect = [
        (hour - minutes(60), 63.0),
        (hour - minutes(10), 62.0),
        (hour - Duration::microseconds(1), 62.0),
        (hour, 60.0),
        (hour + minutes(20), 56.0),
        (hour + minutes(59), 48.0),
        (hour + minutes(60), 32.0),
        (hour + minutes(61), 32.0),
        (hour + minutes(180), 0.0),
    ];
    for (start, total) in expect {
        let d = admitted(s, &window_from(start)).await;
        assert_eq!(
            d.totals_after.customer_window_flop, total,
            "window from {start}"
        );
        assert_eq!(
            d.totals_after.customer_flop, 63.0,
            "threshold window from {start}"
        );
        assert_eq!(d.totals_after.organization_flop, Some(63.0), "organization");
    }
    // A released job gives its FLOP back.
    s.ledger()
        .release_job(ids[2], "never started", hour + minutes(30))
        .await
        .unwrap();
    let d = admitted(s, &window_from(hour + minutes(10))).await;
    assert_eq!(d.totals_after.customer_window_flop, 56.0);
    let d = admitted(s, &window_from(hour - minutes(30))).await;
    assert_eq!(d.totals_after.customer_window_flop, 59.0);
    assert_eq!(d.totals_after.organization_flop, Some(59.0));
}

async fn a_review_approval_lapses_after_its_validity(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let req = job(c, "frontier", 2e26);
    let Verdict::HeldForReview { review_id } = admit(s, &req).await.verdict else {
        panic!("a 2e26 job is held");
    };
    s.ledger()
        .resolve_job_review(review_id, ReviewResolution::Approve, &staff(), "ok", t0())
        .await
        .unwrap();
    // Resubmitted just after the approval's validity: held again, and the approval stays
    // unconsumed (a new hold, a new decision).
    let mut late = req.clone();
    late.now = t0() + computegate_kyc::ledger::APPROVAL_VALIDITY + Duration::seconds(1);
    assert!(matches!(
        admit(s, &late).await.verdict,
        Verdict::HeldForReview { .. }
    ));
    // Within it (the last second): admitted on the approval.
    let mut in_time = req.clone();
    in_time.now = t0() + computegate_kyc::ledger::APPROVAL_VALIDITY;
    let d = admitted(s, &in_time).await;
    assert_eq!(d.approved_review, Some(review_id));
}

async fn review_hold_approval_and_resubmission(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let req = job(c, "frontier", 2e26);
    let held = admit(s, &req).await;
    let Verdict::HeldForReview { review_id } = held.verdict else {
        panic!("{held:?}")
    };

    // Only staff decide; unknown and repeated decisions are refused.
    let customer_actor = computegate_kyc::accounts::Actor::customer(c, None);
    let r = s
        .ledger()
        .resolve_job_review(
            review_id,
            ReviewResolution::Approve,
            &customer_actor,
            "x",
            t0(),
        )
        .await;
    assert!(matches!(r, Err(LedgerError::NotStaff)), "{r:?}");
    let r = s
        .ledger()
        .resolve_job_review(
            Uuid::now_v7(),
            ReviewResolution::Approve,
            &staff(),
            "x",
            t0(),
        )
        .await;
    assert!(matches!(r, Err(LedgerError::ReviewNotFound)));

    // Resubmitting before a decision is held again.
    let again = admit(s, &req).await;
    assert!(matches!(again.verdict, Verdict::HeldForReview { .. }));

    let officer = staff();
    let review = s
        .ledger()
        .resolve_job_review(
            review_id,
            ReviewResolution::Approve,
            &officer,
            "plan on file",
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(review.status, ReviewStatus::Approved);
    assert_eq!(review.decided_by.as_deref(), Some(officer.name.as_str()));
    let r = s
        .ledger()
        .resolve_job_review(review_id, ReviewResolution::Deny, &officer, "x", t0())
        .await;
    assert!(matches!(r, Err(LedgerError::ReviewAlreadyResolved)));

    // A different run or a different size does not use the approval.
    let mut other = req.clone();
    other.run_id = "other".into();
    assert!(matches!(
        admit(s, &other).await.verdict,
        Verdict::HeldForReview { .. }
    ));
    let mut bigger = req.clone();
    bigger.estimate_flop = 2.1e26;
    assert!(matches!(
        admit(s, &bigger).await.verdict,
        Verdict::HeldForReview { .. }
    ));

    // The same job (estimate within 1 %) passes once, with its report.
    let mut same = req.clone();
    same.estimate_flop = 2e26 * 1.005;
    let d = admitted(s, &same).await;
    assert_eq!(d.approved_review, Some(review_id));
    assert_eq!(d.report_ids.len(), 1);
    assert!(d.crossings.iter().any(|x| x.label == "us_1e26_run"));
    let consumed = s
        .ledger()
        .list_job_reviews(Some(ReviewStatus::Approved), None, 10)
        .await
        .unwrap();
    assert_eq!(consumed[0].consumed_by, Some(d.job_id));

    // The approval is used up; a denied review never admits.
    let mut fresh = job(c, "frontier-2", 2e26);
    fresh.now = t0() + Duration::hours(1);
    let held = admit(s, &fresh).await;
    let Verdict::HeldForReview { review_id } = held.verdict else {
        panic!("{held:?}")
    };
    s.ledger()
        .resolve_job_review(review_id, ReviewResolution::Deny, &officer, "no plan", t0())
        .await
        .unwrap();
    assert!(matches!(
        admit(s, &fresh).await.verdict,
        Verdict::HeldForReview { .. }
    ));
}

async fn block_threshold_and_bio_rule(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let mut bio = rule("bio", 1e23, Scope::Run, Action::Review);
    bio.bio_sequence_only = true;
    let rules = thresholds(vec![
        bio,
        rule("cap_1e24", 1e24, Scope::Customer, Action::Block),
    ]);
    let mut req = job(c, "proteins", 2e23);
    req.thresholds = rules.clone();
    admitted(s, &req).await;
    req.run_id = "proteins-2".into();
    req.bio_sequence = true;
    assert!(matches!(
        admit(s, &req).await.verdict,
        Verdict::HeldForReview { .. }
    ));
    req.estimate_flop = 8e23;
    let d = admit(s, &req).await;
    let Verdict::Denied(denial) = &d.verdict else {
        panic!("{d:?}")
    };
    assert_eq!(denial.reason, DenialReason::Threshold);
    assert_eq!(denial.threshold_label.as_deref(), Some("cap_1e24"));
    assert_eq!(denial.scope, Some(Scope::Customer));
    assert_eq!(denial.limit_flop, Some(1e24));
}

async fn bad_requests_change_nothing(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let head = s.audit().audit_head().await.unwrap().seq;
    for bad in [
        {
            let mut r = job(c, "r", f64::NAN);
            r.hardware_flop = None;
            r
        },
        job(c, "r", -1.0),
        job(c, "", 1.0),
        job(c, &"x".repeat(201), 1.0),
        job(c, "tab\there", 1.0),
        {
            let mut r = job(c, "r", 1.0);
            r.limits.max_flop_per_run = Some(f64::INFINITY);
            r
        },
    ] {
        let e = s.ledger().admit(&bad).await;
        assert!(matches!(e, Err(LedgerError::Invalid(_))), "{e:?}");
    }
    let ghost = s.ledger().admit(&job(Uuid::now_v7(), "r", 1.0)).await;
    assert!(
        matches!(ghost, Err(LedgerError::UnknownCustomer)),
        "{ghost:?}"
    );
    assert!(
        s.ledger()
            .list_runs(&RunFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.ledger().open_reservations_count().await.unwrap(), 0);
    assert_eq!(
        s.audit().audit_head().await.unwrap().seq,
        head,
        "nothing audited"
    );
}

async fn every_decision_is_audited_in_the_chain(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let ok = admitted(s, &job(c, "a", 2e25)).await;
    let held = admit(s, &job(c, "b", 2e26)).await;
    let mut capped = job(c, "c", 10.0);
    capped.limits.max_flop_per_run = Some(1.0);
    let denied = admit(s, &capped).await;
    let page = |action: &str| {
        let filter = AuditFilter {
            action: Some(action.to_owned()),
            ..Default::default()
        };
        async move { s.audit().audit_page(&filter).await.unwrap() }
    };
    let admitted_records = page("ledger.job.admitted").await;
    assert_eq!(admitted_records.len(), 1);
    assert_eq!(admitted_records[0].subject, format!("job:{}", ok.job_id));
    assert_eq!(admitted_records[0].actor, format!("customer:{c}"));
    assert_eq!(admitted_records[0].detail["run_id"], "a");
    assert_eq!(page("ledger.report.created").await.len(), 1);
    assert_eq!(
        page("ledger.job.held").await[0].subject,
        format!("job:{}", held.job_id)
    );
    let denial = &page("ledger.job.denied").await[0];
    assert_eq!(denial.subject, format!("job:{}", denied.job_id));
    assert_eq!(denial.detail["verdict"]["reason"]["kind"], "run_cap");
    let verification = s.audit().verify_audit_chain().await.unwrap();
    assert!(verification.first_broken.is_none());
    assert!(verification.records >= 4);
}

crate::store_suite!(
    per_run_cap_counts_the_whole_lineage,
    customer_window_cap_and_concurrency,
    one_job_crosses_1e25_and_another_1e26,
    a_lineage_of_fine_tunes_crosses_1e25,
    a_split_across_linked_accounts_is_caught,
    organization_scope_sums_members,
    the_window_total_is_exact_at_every_edge_of_an_hour,
    review_hold_approval_and_resubmission,
    a_review_approval_lapses_after_its_validity,
    block_threshold_and_bio_rule,
    bad_requests_change_nothing,
    every_decision_is_audited_in_the_chain,
);
