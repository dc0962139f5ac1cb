use super::*;
use crate::metering::tests::policy;

fn input(tier: &str, accelerators: u64, flop: f64, totals: Totals) -> AdmissionInput {
    AdmissionInput {
        tier: tier.into(),
        accelerators,
        estimate_flop: flop,
        totals,
        ..AdmissionInput::default()
    }
}

fn fresh() -> Totals {
    Totals {
        run: 0.0,
        customer: 0.0,
        organization: Some(0.0),
        group: Some(0.0),
    }
}

fn block(v: AdmissionVerdict) -> Block {
    match v {
        AdmissionVerdict::Block(b) => b,
        other => panic!("expected a block, got {other:?}"),
    }
}

fn crossed(v: &AdmissionVerdict, label: &str) -> Vec<(Scope, CrossingBasis)> {
    v.crossings()
        .iter()
        .filter(|c| c.threshold_label == label)
        .map(|c| (c.scope, c.basis))
        .collect()
}

const VEU: &str = "validated_end_user";
const E25: &str = "eu-ai-act-systemic-1e25";
const E26: &str = "us-frontier-1e26";

#[test]
fn tier_caps_block_with_the_required_tier() {
    let p = policy();
    let b = block(evaluate(&p, &input("unverified", 9, 1e15, fresh())));
    assert_eq!(b.reason, BlockReason::AcceleratorsPerJob);
    assert_eq!((b.limit_count, b.limit_flop), (Some(8), None));
    assert_eq!(b.required_tier.as_deref(), Some("identity_verified"));
    assert!(b.detail.contains("at most 8"), "{}", b.detail);

    let t = Totals {
        run: 9e21,
        customer: 9e21,
        ..fresh()
    };
    let b = block(evaluate(&p, &input("identity_verified", 8, 2e21, t)));
    assert_eq!(b.reason, BlockReason::FlopPerRun);
    assert_eq!(b.limit_flop, Some(1e22));
    assert_eq!(b.required_tier.as_deref(), Some("organization_verified"));

    let t = Totals {
        customer: 9.9e22,
        ..fresh()
    };
    let b = block(evaluate(&p, &input("identity_verified", 8, 2e21, t)));
    assert_eq!(b.reason, BlockReason::FlopPerCustomerWindow);
    assert_eq!(b.limit_flop, Some(1e23));
    assert_eq!(b.required_tier.as_deref(), Some("organization_verified"));

    let mut i = input("unverified", 1, 1e15, fresh());
    i.active_jobs = 2;
    let b = block(evaluate(&p, &i));
    assert_eq!(
        (b.reason, b.limit_count),
        (BlockReason::ConcurrentJobs, Some(2))
    );

    let b = block(evaluate(&p, &input("gold", 1, 1.0, fresh())));
    assert_eq!(b.reason, BlockReason::UnknownTier);

    // Exactly at the cap is allowed.
    let v = evaluate(&p, &input("unverified", 8, 1e19, fresh()));
    assert_eq!(v.decision(), "admit");
}

#[test]
fn remaining_budget_is_the_tighter_cap() {
    let p = policy();
    match evaluate(&p, &input("identity_verified", 8, 1e21, fresh())) {
        AdmissionVerdict::Admit {
            remaining_flop,
            crossings,
            declared_gap,
        } => {
            assert_eq!(remaining_flop, Some(9e21));
            assert!(crossings.is_empty());
            assert_eq!(declared_gap, None);
        }
        other => panic!("{other:?}"),
    }
    match evaluate(&p, &input(VEU, 8, 1e21, fresh())) {
        AdmissionVerdict::Admit { remaining_flop, .. } => assert_eq!(remaining_flop, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn eu_1e25_crossed_by_one_job_a_lineage_and_a_group() {
    let p = policy();
    // One job.
    let v = evaluate(&p, &input(VEU, 4096, 1.2e25, fresh()));
    assert_eq!(v.decision(), "admit", "1e25 reports, it does not hold");
    assert_eq!(
        crossed(&v, E25),
        vec![
            (Scope::Run, CrossingBasis::Estimate),
            (Scope::Organization, CrossingBasis::Estimate),
            (Scope::Group, CrossingBasis::Estimate)
        ]
    );
    let c = v
        .crossings()
        .iter()
        .find(|c| c.threshold_label == E25)
        .unwrap();
    assert_eq!(c.actions, vec![Action::Notify, Action::Report]);
    assert_eq!(c.report_due_days, Some(14));
    assert_eq!(c.status, RuleStatus::InForce);
    assert!(c.basis.is_projected());
    assert_eq!(
        crossed(&v, "eu-gpai-indicative-1e23"),
        vec![(Scope::Run, CrossingBasis::Estimate)]
    );

    // A lineage of fine-tunes: the run total already holds the base model's compute.
    let lineage = Totals {
        run: 9.5e24,
        customer: 9.5e24,
        organization: None,
        group: None,
    };
    let v = evaluate(&p, &input(VEU, 1024, 1e24, lineage));
    assert_eq!(
        crossed(&v, E25),
        vec![(Scope::Run, CrossingBasis::Estimate)]
    );
    assert!(
        crossed(&v, "eu-gpai-indicative-1e23").is_empty(),
        "already past 1e23"
    );

    // A run split across two linked accounts: only the group total crosses.
    let split = Totals {
        run: 0.0,
        customer: 0.0,
        organization: Some(0.0),
        group: Some(9.9e24),
    };
    let v = evaluate(&p, &input(VEU, 1024, 2e23, split));
    assert_eq!(
        crossed(&v, E25),
        vec![(Scope::Group, CrossingBasis::Estimate)]
    );

    // Already past: no second crossing.
    let past = Totals {
        run: 2e25,
        customer: 2e25,
        organization: Some(2e25),
        group: Some(2e25),
    };
    assert!(
        evaluate(&p, &input(VEU, 8, 1e24, past))
            .crossings()
            .is_empty()
    );
}

#[test]
fn us_1e26_holds_for_review_by_one_job_a_lineage_and_a_group() {
    let p = policy();
    let cases = [
        (fresh(), 1.5e26, Scope::Run),
        (
            Totals {
                run: 9.9e25,
                customer: 9.9e25,
                organization: None,
                group: None,
            },
            2e24,
            Scope::Run,
        ),
        (
            Totals {
                run: 0.0,
                customer: 0.0,
                organization: Some(1e24),
                group: Some(9.95e25),
            },
            1e24,
            Scope::Group,
        ),
    ];
    for (totals, flop, scope) in cases {
        let v = evaluate(&p, &input(VEU, 4096, flop, totals));
        match &v {
            AdmissionVerdict::Review { reasons, .. } => assert_eq!(
                reasons,
                &vec![ReviewReason::Threshold {
                    label: E26.into(),
                    flop: 1e26
                }]
            ),
            other => panic!("expected review, got {other:?}"),
        }
        assert!(
            crossed(&v, E26).contains(&(scope, CrossingBasis::Estimate)),
            "{scope}: {v:?}"
        );
    }
    // The organization tier's per-run cap does not hide a group crossing.
    let split = Totals {
        run: 0.0,
        customer: 0.0,
        organization: Some(0.0),
        group: Some(9.95e25),
    };
    let v = evaluate(&p, &input("organization_verified", 4096, 1e24, split));
    assert_eq!(v.decision(), "review");
}

#[test]
fn biological_sequence_threshold_needs_the_declaration() {
    let p = policy();
    let mut i = input(VEU, 512, 2e23, fresh());
    assert_eq!(evaluate(&p, &i).decision(), "admit");
    i.biological_sequence = true;
    let v = evaluate(&p, &i);
    assert_eq!(v.decision(), "review");
    assert_eq!(
        crossed(&v, "bio-sequence-1e23"),
        vec![(Scope::Run, CrossingBasis::Estimate)]
    );
}

#[test]
fn declared_totals_project_crossings_and_gaps_hold() {
    let p = policy();
    let mut i = input(VEU, 8, 1e22, fresh());
    i.declared_flop = Some(2e25);
    let v = evaluate(&p, &i);
    assert_eq!(v.decision(), "admit");
    assert_eq!(crossed(&v, E25)[0], (Scope::Run, CrossingBasis::Declared));
    assert_eq!(
        crossed(&v, "eu-gpai-indicative-1e23"),
        vec![(Scope::Run, CrossingBasis::Declared)]
    );
    i.declared_gap = true;
    match evaluate(&p, &i) {
        AdmissionVerdict::Review { reasons, .. } => {
            assert_eq!(reasons, vec![ReviewReason::DeclaredGap])
        }
        other => panic!("{other:?}"),
    }
    // Declarations never lower anything: caps use the hardware estimate.
    let mut i = input("identity_verified", 8, 2e22, fresh());
    i.declared_flop = Some(1e10);
    assert_eq!(block(evaluate(&p, &i)).reason, BlockReason::FlopPerRun);
}

#[test]
fn revoked_thresholds_do_not_fire_and_block_thresholds_block() {
    let text = include_str!("../../../../deploy/policy/default.toml");
    let revoked =
        Policy::from_toml(&text.replacen("status = \"proposed\"", "status = \"revoked\"", 1))
            .unwrap();
    let v = evaluate(&revoked, &input(VEU, 4096, 1.5e26, fresh()));
    assert_eq!(v.decision(), "admit");
    assert!(crossed(&v, E26).is_empty());

    let blocking = Policy::from_toml(&text.replacen(
        "action = [\"report\", \"review\"]\nsource = \"US EO 14110 §4.2(b)(i) (revoked",
        "action = \"block\"\nsource = \"US EO 14110 §4.2(b)(i) (revoked",
        1,
    ))
    .unwrap();
    let b = block(evaluate(&blocking, &input(VEU, 4096, 1.5e26, fresh())));
    assert_eq!(b.reason, BlockReason::Threshold);
    assert_eq!(b.threshold.as_deref(), Some(E26));
    assert_eq!(b.limit_flop, Some(1e26));
    assert_eq!(b.required_tier, None);
}

#[test]
fn frontier_restricted_parties_are_blocked_at_1e26() {
    let p = policy();
    let mut i = input(VEU, 4096, 1.5e26, fresh());
    i.frontier_restricted = true;
    let b = block(evaluate(&p, &i));
    assert_eq!(b.reason, BlockReason::FrontierJurisdiction);
    assert_eq!(b.limit_flop, Some(1e26));
    i.estimate_flop = 1e25;
    assert_eq!(evaluate(&p, &i).decision(), "admit");
    i.totals.group = Some(9.5e25);
    assert_eq!(
        block(evaluate(&p, &i)).reason,
        BlockReason::FrontierJurisdiction
    );
    // A declared frontier-scale run is refused even when this job is small.
    let mut small = input(VEU, 8, 1e21, fresh());
    small.frontier_restricted = true;
    small.declared_flop = Some(2e26);
    assert_eq!(
        block(evaluate(&p, &small)).reason,
        BlockReason::FrontierJurisdiction
    );
}

#[test]
fn measured_usage_crossings() {
    let p = policy();
    let t = Totals {
        run: 9.99e24,
        customer: 9.99e24,
        organization: None,
        group: Some(9.99e24),
    };
    let c = crossings(&p, &t, 2e22, CrossingBasis::Measured, false);
    let labels: Vec<(&str, Scope)> = c
        .iter()
        .map(|c| (c.threshold_label.as_str(), c.scope))
        .collect();
    assert_eq!(labels, vec![(E25, Scope::Run), (E25, Scope::Group)]);
    assert!(!c[0].basis.is_projected());
    assert!(crossings(&p, &t, 0.0, CrossingBasis::Measured, false).is_empty());
    assert!(crossings(&p, &t, f64::NAN, CrossingBasis::Measured, false).is_empty());
}

#[test]
fn input_from_spec_and_estimate() {
    let p = policy();
    let body = br#"{"gpu_type": "h100", "gpu_count": 8, "max_duration_hours": 1,
        "dataset": {"kind": "biological_sequence"}}"#;
    let (spec, est) =
        crate::metering::estimate_file(crate::metering::Profile::Generic, body, &p).unwrap();
    let i = AdmissionInput::new("identity_verified", &spec, &est);
    assert_eq!(i.accelerators, 8);
    assert_eq!(i.estimate_flop, est.hardware_flop);
    assert!(i.biological_sequence);
    assert_eq!(evaluate(&p, &i).decision(), "admit");
}
