//! Unit tests of the pure admission rules and the typed outcome.

use std::time::Duration;

use crate::{Action, LedgerLimits, Scope, ThresholdPolicy, ThresholdRule};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;

const DAY: Duration = Duration::from_secs(86_400);

fn limits(run: Option<f64>, window: Option<f64>, jobs: Option<u32>) -> LedgerLimits {
    LedgerLimits {
        max_flop_per_run: run,
        max_flop_per_customer_window: window,
        window: DAY * 30,
        max_concurrent_jobs: jobs,
    }
}

fn rule(label: &str, flop: f64, scope: Scope, action: Action) -> ThresholdRule {
    ThresholdRule {
        label: label.into(),
        flop,
        scope,
        action,
        bio_sequence_only: false,
        report_due_days: 15,
    }
}

fn policy(rules: Vec<ThresholdRule>) -> ThresholdPolicy {
    ThresholdPolicy {
        rules,
        window: DAY * 365,
    }
}

fn snapshot(lineage: f64, customer: f64, group: f64, open_jobs: u64) -> Snapshot {
    Snapshot {
        lineage_root: Uuid::from_u128(1),
        customer_id: Uuid::from_u128(2),
        organization_id: None,
        group_id: Some(Uuid::from_u128(3)),
        totals: Totals {
            lineage_flop: lineage,
            customer_window_flop: customer,
            customer_flop: customer,
            organization_flop: None,
            group_flop: group,
            open_jobs: Some(open_jobs),
        },
        fired: Vec::new(),
    }
}

/// A job of `estimate` FLOP, projected with the same figure.
fn job(estimate: f64, bio_sequence: bool) -> JobFigures {
    JobFigures {
        estimate_flop: estimate,
        projected_flop: estimate,
        bio_sequence,
        hold_for_review: false,
    }
}

fn eval(
    l: &LedgerLimits,
    p: &ThresholdPolicy,
    bio: bool,
    s: &Snapshot,
    estimate: f64,
) -> Evaluation {
    evaluate(l, p, &job(estimate, bio), s)
}

#[test]
fn caps_deny_in_order_concurrency_run_window() {
    let none = policy(vec![]);
    let s = snapshot(90.0, 500.0, 500.0, 2);
    let e = eval(
        &limits(Some(100.0), Some(1000.0), Some(2)),
        &none,
        false,
        &s,
        1.0,
    );
    assert!(matches!(
        e.proposal,
        Proposal::Deny(Denial {
            reason: DenialReason::ConcurrentJobs { limit: 2 },
            ..
        })
    ));
    let e = eval(
        &limits(Some(100.0), Some(1000.0), Some(3)),
        &none,
        false,
        &s,
        11.0,
    );
    let Proposal::Deny(d) = e.proposal else {
        panic!("{e:?}")
    };
    assert_eq!(
        (d.reason, d.limit_flop),
        (DenialReason::RunCap, Some(100.0))
    );
    // Exactly at the cap is allowed.
    let e = eval(
        &limits(Some(100.0), Some(1000.0), None),
        &none,
        false,
        &s,
        10.0,
    );
    assert_eq!(e.proposal, Proposal::Admit);
    let e = eval(&limits(None, Some(505.0), None), &none, false, &s, 10.0);
    let Proposal::Deny(d) = e.proposal else {
        panic!("{e:?}")
    };
    assert_eq!(d.reason, DenialReason::CustomerWindowCap);
    assert_eq!(e.totals_if_admitted.lineage_flop, 100.0);
}

#[test]
fn remaining_is_the_tightest_cap() {
    let t = snapshot(40.0, 900.0, 0.0, 0).totals;
    assert_eq!(
        remaining_flop(&limits(Some(100.0), Some(1000.0), None), &t),
        Some(60.0)
    );
    assert_eq!(
        remaining_flop(&limits(Some(100.0), Some(950.0), None), &t),
        Some(50.0)
    );
    assert_eq!(remaining_flop(&limits(None, None, Some(1)), &t), None);
    assert_eq!(
        remaining_flop(&limits(Some(10.0), None, None), &t),
        Some(0.0)
    );
}

#[test]
fn a_threshold_fires_once_per_scope_when_first_reached() {
    let p = policy(vec![
        rule("t25", 1e25, Scope::Run, Action::Report),
        rule("t26", 1e26, Scope::Run, Action::Review),
    ]);
    let l = limits(None, None, None);
    let e = eval(&l, &p, false, &snapshot(9e24, 0.0, 0.0, 0), 1e24);
    assert_eq!(e.crossings.len(), 1);
    assert_eq!(e.crossings[0].label, "t25");
    assert_eq!(e.crossings[0].projected_flop, 1e25);
    assert_eq!(e.proposal, Proposal::Admit);
    // Already past and fired by an admitted job: nothing more.
    let mut past = snapshot(1e25, 0.0, 0.0, 0);
    past.fired = vec![(past.lineage_root, "t25".into())];
    assert!(eval(&l, &p, false, &past, 1e24).crossings.is_empty());
    // Past without having fired (e.g. accounts linked after the fact): fires now.
    past.fired.clear();
    let e = eval(&l, &p, false, &past, 1e24);
    assert_eq!(e.crossings.len(), 1);
    assert_eq!(e.crossings[0].previous_flop, 1e25);
    // `reached` lists what the store must look up.
    assert_eq!(
        reached(&p.rules, false, &past, 1e24),
        vec![(past.lineage_root, "t25".to_owned())]
    );
    // One job crossing both: review wins over report.
    let e = eval(&l, &p, false, &snapshot(0.0, 0.0, 0.0, 0), 2e26);
    assert_eq!(e.crossings.len(), 2);
    assert_eq!(e.proposal, Proposal::Review);
}

#[test]
fn one_threshold_listed_per_action_is_one_crossing_with_the_highest_action() {
    let mut report = rule("t", 100.0, Scope::Run, Action::Report);
    report.report_due_days = 10;
    let p = policy(vec![
        rule("t", 100.0, Scope::Run, Action::Notify),
        report,
        rule("t", 100.0, Scope::Group, Action::Notify),
    ]);
    let e = eval(
        &limits(None, None, None),
        &p,
        false,
        &snapshot(0.0, 0.0, 0.0, 0),
        100.0,
    );
    assert_eq!(e.crossings.len(), 2, "run and group are different scopes");
    assert_eq!(e.crossings[0].action, Action::Report);
    assert_eq!(e.crossings[0].report_due_days, 10);
    assert_eq!(e.crossings[1].scope, Scope::Group);
}

#[test]
fn declared_compute_projects_thresholds_and_callers_can_ask_for_review() {
    let p = policy(vec![rule("t", 1e25, Scope::Run, Action::Report)]);
    let l = limits(Some(1e24), None, None);
    let s = snapshot(0.0, 0.0, 0.0, 0);
    let mut j = job(1e23, false);
    j.projected_flop = 2e25;
    let e = evaluate(&l, &p, &j, &s);
    // Caps see the reserved estimate; thresholds the projection.
    assert_eq!(e.proposal, Proposal::Admit);
    assert_eq!(e.crossings.len(), 1);
    assert_eq!(e.crossings[0].projected_flop, 2e25);
    assert_eq!(e.totals_if_admitted.lineage_flop, 1e23);
    j.hold_for_review = true;
    assert_eq!(evaluate(&l, &p, &j, &s).proposal, Proposal::Review);
    // A denial still wins over a requested review.
    j.estimate_flop = 2e24;
    assert!(matches!(
        evaluate(&l, &p, &j, &s).proposal,
        Proposal::Deny(_)
    ));
}

#[test]
fn bio_rules_apply_only_to_bio_runs_and_block_beats_review() {
    let mut bio = rule("bio23", 1e23, Scope::Run, Action::Review);
    bio.bio_sequence_only = true;
    let p = policy(vec![bio, rule("grp", 5e23, Scope::Group, Action::Block)]);
    let l = limits(None, None, None);
    let s = snapshot(0.0, 0.0, 2e23, 0);
    assert_eq!(eval(&l, &p, false, &s, 2e23).proposal, Proposal::Admit);
    assert_eq!(eval(&l, &p, true, &s, 2e23).proposal, Proposal::Review);
    // The group total reaches the block threshold: denied although a review would also fire.
    let Proposal::Deny(d) = eval(&l, &p, true, &s, 3e23).proposal else {
        panic!()
    };
    assert_eq!(d.reason, DenialReason::Threshold);
    assert_eq!(d.threshold_label.as_deref(), Some("grp"));
    assert_eq!(d.scope, Some(Scope::Group));
}

#[test]
fn unlinked_customer_is_its_own_group_and_org_scope_needs_an_org() {
    let p = policy(vec![
        rule("g", 10.0, Scope::Group, Action::Notify),
        rule("o", 10.0, Scope::Organization, Action::Notify),
    ]);
    let mut s = snapshot(0.0, 5.0, 5.0, 0);
    s.group_id = None;
    let e = eval(&limits(None, None, None), &p, false, &s, 5.0);
    assert_eq!(e.crossings.len(), 1);
    assert_eq!(e.crossings[0].scope_id, s.customer_id);
}

#[test]
fn usage_growth_rechecks_thresholds() {
    let rules = vec![rule("t", 100.0, Scope::Customer, Action::Report)];
    let s = snapshot(0.0, 90.0, 90.0, 0);
    assert!(usage_crossings(&rules, false, &s, 0.0).is_empty());
    assert!(usage_crossings(&rules, false, &s, -5.0).is_empty());
    assert_eq!(usage_crossings(&rules, false, &s, 10.0).len(), 1);
}

#[test]
fn action_names_round_trip_and_order() {
    for a in [
        Action::Notify,
        Action::Report,
        Action::Review,
        Action::Block,
    ] {
        assert_eq!(a.as_str().parse::<Action>().unwrap(), a);
    }
    assert!(Action::Block > Action::Review);
    assert!(Action::Review > Action::Report);
}

proptest! {
    /// Whatever the totals and estimate, an admitted job never leaves a FLOP cap exceeded, and
    /// no block threshold is reached.
    #[test]
    fn admitted_jobs_respect_caps_and_blocks(
        lineage in 0.0f64..2e3,
        customer in 0.0f64..2e3,
        estimate in 0.0f64..1e3,
        run_cap in 1.0f64..2e3,
        window_cap in 1.0f64..3e3,
        block in 1.0f64..3e3,
    ) {
        let p = policy(vec![rule("b", block, Scope::Customer, Action::Block)]);
        let l = limits(Some(run_cap), Some(window_cap), None);
        let e = eval(&l, &p, false, &snapshot(lineage, customer, customer, 0), estimate);
        if e.proposal == Proposal::Admit {
            prop_assert!(lineage + estimate <= run_cap);
            prop_assert!(customer + estimate <= window_cap);
            prop_assert!(customer + estimate < block);
        }
    }
}

// --- the typed outcome ---

fn shipped_policy() -> crate::Policy {
    crate::Policy::from_toml(include_str!("../../../deploy/policy/default.toml"))
        .expect("the shipped policy is valid")
}

fn facts(tier: &str, accelerators: u64, estimate_flop: f64) -> JobFacts<'_> {
    JobFacts {
        tier,
        accelerators,
        estimate_flop,
    }
}

#[test]
fn precheck_refuses_unknown_tiers_and_too_many_accelerators() {
    let p = shipped_policy();
    assert_eq!(
        precheck(&p, &facts("unverified", 8, 1e18)).unwrap().name,
        "unverified"
    );

    let unknown = precheck(&p, &facts("gold", 1, 1e18)).unwrap_err();
    assert_eq!(unknown.reason, RefusalReason::UnknownTier);
    assert_eq!(
        unknown.to_string(),
        "the account's tier is not in the policy"
    );

    let wide = precheck(&p, &facts("unverified", 9, 1e18)).unwrap_err();
    assert_eq!(
        wide.reason,
        RefusalReason::AcceleratorsPerJob {
            requested: 9,
            limit: 8
        }
    );
    assert_eq!(
        wide.to_string(),
        "9 accelerators requested; tier `unverified` allows 8 per job"
    );
    assert_eq!(wide.required_tier.as_deref(), Some("identity_verified"));
    assert_eq!(wide.reason.metric_label(), "tier_limit");
}

#[test]
fn ledger_refusals_name_the_tier_that_fits_the_totals_with_the_job() {
    let p = shipped_policy();
    let before = Totals {
        lineage_flop: 9e21,
        customer_window_flop: 0.0,
        customer_flop: 0.0,
        organization_flop: None,
        group_flop: 0.0,
        open_jobs: Some(0),
    };
    let denial = Denial {
        reason: DenialReason::RunCap,
        limit_flop: Some(1e22),
        threshold_label: None,
        scope: None,
    };
    // 9e21 + 2e21 passes identity_verified's 1e22 per run: the next tier is named.
    let r = Refusal::ledger(&p, &facts("identity_verified", 8, 2e21), denial, &before);
    assert_eq!(r.required_tier.as_deref(), Some("organization_verified"));
    assert_eq!(r.limit_flop, Some(1e22));
    assert_eq!(r.reason.as_str(), "run_cap");
    assert_eq!(r.reason.metric_label(), "flop_cap");
    assert_eq!(
        r.to_string(),
        "the run (with its fine-tunes) would exceed tier `identity_verified`'s FLOP per run"
    );

    let block = Denial {
        reason: DenialReason::Threshold,
        limit_flop: Some(1e26),
        threshold_label: Some("us-frontier-1e26".into()),
        scope: Some(Scope::Run),
    };
    let r = Refusal::ledger(&p, &facts("validated_end_user", 8, 2e21), block, &before);
    assert_eq!(r.threshold.as_deref(), Some("us-frontier-1e26"));
    assert_eq!(r.reason.metric_label(), "threshold");
    let huge = Totals {
        lineage_flop: 2e25,
        ..before
    };
    let r = Refusal::ledger(&p, &facts("validated_end_user", 8, 1e18), r_denial(), &huge);
    assert_eq!(
        r.required_tier, None,
        "the caller's own tier is never named"
    );
    let r = Refusal::ledger(&p, &facts("identity_verified", 8, 1e18), r_denial(), &huge);
    assert_eq!(r.required_tier.as_deref(), Some("validated_end_user"));
}

fn r_denial() -> Denial {
    Denial {
        reason: DenialReason::RunCap,
        limit_flop: Some(1e19),
        threshold_label: None,
        scope: None,
    }
}

#[test]
fn account_refusals_name_no_tier_and_outcomes_label_metrics_from_enums() {
    let job = facts("identity_verified", 1, 1e18);
    let hold = Refusal::account(&job, RefusalReason::ScreeningHold);
    assert_eq!(hold.required_tier, None);
    assert_eq!(hold.reason.as_str(), "screening_hold");

    let cases = [
        (
            Outcome::Admitted(Admitted {
                job_id: "j".into(),
                run_id: "r".into(),
                estimate_flop: 1.0,
                remaining_flop: None,
                notices: vec![],
            }),
            ("admitted", "within_limits"),
        ),
        (
            Outcome::Held(Hold {
                review_id: "v".into(),
                reason: HoldReason::DeclaredGap { gap: "x".into() },
                estimate_flop: 1.0,
            }),
            ("held", "declared_gap"),
        ),
        (
            Outcome::Held(Hold {
                review_id: "v".into(),
                reason: HoldReason::ThresholdReview,
                estimate_flop: 1.0,
            }),
            ("held", "threshold_review"),
        ),
        (Outcome::Denied(hold), ("denied", "screening_hold")),
    ];
    for (outcome, (decision, reason)) in cases {
        let (d, r) = outcome.metric_labels();
        assert_eq!((d.as_str(), r), (decision, reason), "{outcome:?}");
    }
}

#[test]
fn end_customer_refusals_have_bounded_codes_one_metric_label_and_name_no_tier() {
    let job = facts("organization_verified", 1, 1e18);
    let mut codes = std::collections::HashSet::new();
    for why in EndCustomerRefusal::ALL {
        let refusal = Refusal::account(&job, RefusalReason::EndCustomer(why));
        assert_eq!(refusal.required_tier, None);
        assert_eq!(refusal.reason.as_str(), why.as_str());
        assert!(codes.insert(why.as_str()), "{why:?}");
        assert!(!refusal.to_string().is_empty());
        let (decision, reason) = Outcome::Denied(refusal).metric_labels();
        assert_eq!((decision.as_str(), reason), ("denied", "end_customer"));
    }
    // Only a reseller's failure to pass an identity through counts against it.
    let counted: Vec<_> = (EndCustomerRefusal::ALL.into_iter())
        .filter(|w| w.counts_against_pass_through())
        .collect();
    assert_eq!(
        counted,
        [
            EndCustomerRefusal::Missing,
            EndCustomerRefusal::Unknown,
            EndCustomerRefusal::NotCleared
        ]
    );
}

#[test]
fn notices_are_the_crossings_of_thresholds_with_a_notify_action() {
    let rules = [
        rule("eu", 10.0, Scope::Run, Action::Notify),
        rule("eu", 10.0, Scope::Run, Action::Report),
        rule("quiet", 5.0, Scope::Customer, Action::Report),
    ];
    let crossing = |label: &str, scope, action| Crossing {
        label: label.into(),
        threshold_flop: 10.0,
        scope,
        scope_id: uuid::Uuid::nil(),
        action,
        previous_flop: 0.0,
        projected_flop: 20.0,
        report_due_days: 14,
    };
    // A crossing carries its strongest action (report); the rules still say notify.
    let crossings = [
        crossing("eu", Scope::Run, Action::Report),
        crossing("quiet", Scope::Customer, Action::Report),
    ];
    let notices = Notice::from_crossings(&rules, &crossings);
    assert_eq!(
        notices,
        [Notice {
            label: "eu".into(),
            scope: Scope::Run,
            threshold_flop: 10.0
        }]
    );
}
