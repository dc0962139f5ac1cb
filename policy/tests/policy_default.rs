//! The shipped policy `deploy/policy/default.toml` loads and carries exactly the numbers of
//! `docs/policy.md`: tiers and their caps, thresholds with their actions and status, and the
//! dense BF16 peaks of the accelerator table.

use std::path::PathBuf;

use computegate_policy::{
    Action, MissingTimeLimit, Policy, Precision, RouteClass, RuleStatus, Scope, UnknownAccelerator,
    authorize_jurisdiction, authorize_route,
};

fn shipped() -> Policy {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/policy/default.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Policy::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn tiers_match_design() {
    let p = shipped();
    let names: Vec<&str> = p.tiers().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "unverified",
            "identity_verified",
            "organization_verified",
            "validated_end_user"
        ]
    );
    let caps = |name: &str| {
        let t = p.tier(name).unwrap();
        (t.max_accelerators_per_job, t.max_flop_per_run)
    };
    assert_eq!(caps("unverified"), (Some(8), Some(1e19)));
    assert_eq!(caps("identity_verified"), (Some(64), Some(1e22)));
    assert_eq!(caps("organization_verified"), (Some(4096), Some(1e25)));
    let veu = p.tier("validated_end_user").unwrap();
    assert_eq!(
        (
            veu.max_accelerators_per_job,
            veu.max_flop_per_run,
            veu.max_flop_per_customer_window
        ),
        (None, None, None),
        "validated end users have no cap"
    );
    assert_eq!(veu.reverify_every.map(|d| d.as_secs() / 86_400), Some(182));
}

#[test]
fn unverified_is_read_only_beyond_the_trial() {
    let p = shipped();
    let get = http::Method::GET;
    let post = http::Method::POST;
    assert!(authorize_route(&p, "unverified", "any", RouteClass::Authenticated, &get).is_ok());
    assert!(authorize_route(&p, "unverified", "jobs", RouteClass::JobSubmit, &post).is_ok());
    let denied =
        authorize_route(&p, "unverified", "any", RouteClass::Authenticated, &post).unwrap_err();
    assert_eq!(denied.required_tier.as_deref(), Some("identity_verified"));
    for tier in [
        "identity_verified",
        "organization_verified",
        "validated_end_user",
    ] {
        assert!(authorize_route(&p, tier, "any", RouteClass::Authenticated, &post).is_ok());
    }
}

#[test]
fn thresholds_match_design() {
    let p = shipped();
    let t: Vec<_> = p.thresholds().iter().collect();
    assert_eq!(t.len(), 4);

    let bio = t.iter().find(|t| t.label == "bio-sequence-1e23").unwrap();
    assert_eq!(bio.flop, 1e23);
    assert_eq!(bio.actions, [Action::Report, Action::Review]);
    assert_eq!(bio.status, RuleStatus::Recommended);
    assert!(bio.applies_when.is_some());
    assert!(bio.source.contains("14110") && bio.source.contains("4.2(b)(i)"));
    assert!(bio.notes.contains("revoked"));

    let gpai = t
        .iter()
        .find(|t| t.label == "eu-gpai-indicative-1e23")
        .unwrap();
    assert_eq!(gpai.flop, 1e23);
    assert_eq!(gpai.actions, [Action::Notify]);
    assert!(gpai.applies_when.is_none());
    assert!(gpai.source.contains("Guidelines"));

    let eu = t
        .iter()
        .find(|t| t.label == "eu-ai-act-systemic-1e25")
        .unwrap();
    assert_eq!(eu.flop, 1e25);
    assert!(eu.actions.contains(&Action::Report));
    assert_eq!(eu.status, RuleStatus::InForce);
    assert!(eu.source.contains("Art. 51(2)") && eu.source.contains("Art. 52(1)"));
    assert_eq!(eu.report_due_days, 14, "notify within two weeks");

    let us = t.iter().find(|t| t.label == "us-frontier-1e26").unwrap();
    assert_eq!(us.flop, 1e26);
    assert_eq!(us.actions, [Action::Report, Action::Review]);
    assert_eq!(us.status, RuleStatus::Proposed);
    for cite in ["14110", "702.7", "4E091"] {
        assert!(us.source.contains(cite), "{cite}");
    }
    for th in [eu, us] {
        assert_eq!(th.scopes, [Scope::Run, Scope::Organization, Scope::Group]);
        assert!(th.report_due_days <= 15);
    }
    assert!(t.iter().all(|t| t.is_active()));
}

#[test]
fn accelerator_table_matches_design() {
    let p = shipped();
    let bf16 = |name: &str| p.accelerator(name).unwrap().peak_flops.get(Precision::Bf16);
    assert_eq!(bf16("a100"), Some(312e12));
    assert_eq!(bf16("h100"), Some(989.4e12));
    assert_eq!(bf16("h200"), Some(989.4e12));
    assert_eq!(bf16("b200"), Some(2250e12));
    assert_eq!(bf16("tpu-v5p"), Some(459e12));
    for gfd in ["NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-SXM5-80GB"] {
        assert_eq!(p.accelerator(gfd).unwrap().type_key, "h100");
    }
    assert_eq!(
        p.accelerator("NVIDIA-A100-SXM4-80GB").unwrap().type_key,
        "a100"
    );
    assert_eq!(p.accelerator("NVIDIA-B200").unwrap().type_key, "b200");
    assert_eq!(
        p.accelerator("nvidia_h100_80gb_hbm3").unwrap().type_key,
        "h100"
    );
    // Every simulator fleet type is in the table.
    for sim in ["a100", "h100", "h200", "b200", "mi300x", "tpu-v5p"] {
        assert!(p.accelerator(sim).is_some(), "{sim}");
    }
    for a in p.accelerators() {
        assert!(!a.source.is_empty(), "{} has a source", a.type_key);
    }
    assert_eq!(p.table_version(), "2026-01");
    assert_eq!(p.utilization_default(), 0.4);
    assert_eq!(p.utilization_language_models(), 0.3);
    assert_eq!(p.default_precision(), Precision::Bf16);
    assert_eq!(p.unknown_accelerator(), UnknownAccelerator::Reject);
    assert_eq!(p.missing_time_limit(), MissingTimeLimit::Reject);
    assert_eq!(p.max_job_duration().as_secs(), 14 * 86_400);
}

#[test]
fn country_groups_and_jurisdiction_rules() {
    let p = shipped();
    for code in ["CU", "IR", "KP", "SY"] {
        assert!(
            p.country_group("embargoed").unwrap().contains(code),
            "{code}"
        );
        assert!(authorize_jurisdiction(&p, &[code]).is_err(), "{code}");
    }
    let frontier = p.country_group("restricted_frontier").unwrap();
    for code in ["CN", "MO", "RU"] {
        assert!(frontier.contains(code), "{code}");
    }
    assert!(p.country_group("high_risk").is_some());
    assert_eq!(p.jurisdiction().frontier.as_ref().unwrap().flop, 1e26);
    assert!(
        authorize_jurisdiction(&p, &["DE", "US"])
            .unwrap()
            .review_groups
            .is_empty()
    );
}

#[test]
fn the_reseller_pass_through_rule_is_the_documented_one() {
    let p = shipped();
    let rule = p.resellers();
    assert_eq!(rule.max_refused_share, 0.2);
    assert_eq!(rule.window, std::time::Duration::from_secs(24 * 3600));
    assert_eq!(rule.min_jobs, 20);

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/policy/default.toml");
    let text = std::fs::read_to_string(path).unwrap();
    for (from, to, key) in [
        (
            "max_refused_share = 0.2",
            "max_refused_share = 1.0",
            "resellers.max_refused_share",
        ),
        (
            "max_refused_share = 0.2",
            "max_refused_share = -0.1",
            "resellers.max_refused_share",
        ),
        (
            "window = \"24h\"\nmin_jobs",
            "window = \"0s\"\nmin_jobs",
            "resellers.window",
        ),
    ] {
        assert!(text.contains(from), "{from}");
        let err = Policy::from_toml(&text.replacen(from, to, 1)).unwrap_err();
        assert!(err.to_string().contains(key), "{to}: {err}");
    }
}
